"""On-device augmentation of a batch (inside the jitted training step)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["INTENSITY_JITTER", "augment_batch"]

#: SD of the random (gain, offset) per sample and modality, in the scaled units of
#: :func:`models.fusion.data.scale_ct` (1 unit = 700 HU with the default window) and
#: :func:`~models.fusion.data.scale_suv` (1 unit = 5 SUV). What scanners really vary: CT numbers are
#: calibrated (water within ±5 HU), so CT gets a 5 HU offset and no gain; PET quantification varies
#: by a few per cent between scanners and reconstructions, so PET gets a 5 % gain and no offset. A
#: larger CT jitter (35 HU) erases tumour density differences of tens of HU, which are signal.
INTENSITY_JITTER: dict[str, tuple[float, float]] = {"ct": (0.0, 5.0 / 700.0), "pet": (0.05, 0.0)}


def augment_batch(batch: dict, key: jax.Array, modalities) -> dict:
    """Same random flip, shift (±2 px), rotation (±10°) for CT and PET; intensity jitter per modality
    (:data:`INTENSITY_JITTER`)."""
    from jax.scipy.ndimage import map_coordinates

    if not modalities:
        return batch
    B, H, W, S = batch[modalities[0]].shape
    k = jax.random.split(key, 6)
    angle = jax.random.uniform(k[0], (B,), minval=-0.175, maxval=0.175)
    shift = jax.random.uniform(k[1], (B, 2), minval=-2.0, maxval=2.0)
    flip_x = jax.random.bernoulli(k[2], 0.5, (B,))
    flip_y = jax.random.bernoulli(k[3], 0.5, (B,))
    yy, xx = jnp.meshgrid(jnp.arange(H) - (H - 1) / 2, jnp.arange(W) - (W - 1) / 2, indexing="ij")

    def warp(img, a, sh, fx, fy):  # img (H, W, S)
        c, s = jnp.cos(a), jnp.sin(a)
        src_y = c * yy - s * xx + (H - 1) / 2 + sh[0]
        src_x = s * yy + c * xx + (W - 1) / 2 + sh[1]
        src_x = jnp.where(fx, W - 1 - src_x, src_x)
        src_y = jnp.where(fy, H - 1 - src_y, src_y)
        return jax.vmap(
            lambda ch: map_coordinates(ch, [src_y, src_x], order=1, mode="nearest"), in_axes=2, out_axes=2
        )(img)

    out = dict(batch)
    for i, m in enumerate(modalities):
        warped = jax.vmap(warp)(batch[m], angle, shift, flip_x, flip_y)
        gain_sd, offset_sd = INTENSITY_JITTER.get(m, (0.05, 0.05))
        gain = 1 + gain_sd * jax.random.normal(jax.random.fold_in(k[4], i), (B, 1, 1, 1))
        offset = offset_sd * jax.random.normal(jax.random.fold_in(k[5], i), (B, 1, 1, 1))
        out[m] = warped * gain + offset
    return out
