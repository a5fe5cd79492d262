"""On-device augmentation of a batch (inside the jitted training step)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["augment_batch"]


def augment_batch(batch: dict, key: jax.Array, modalities) -> dict:
    """Same random flip, shift (±2 px), rotation (±10°) for CT and PET; intensity jitter per modality."""
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
        gain = 1 + 0.05 * jax.random.normal(jax.random.fold_in(k[4], i), (B, 1, 1, 1))
        offset = 0.05 * jax.random.normal(jax.random.fold_in(k[5], i), (B, 1, 1, 1))
        out[m] = warped * gain + offset
    return out
