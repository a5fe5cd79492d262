"""EGFR-DLS-like baseline (Mu et al. 2020): a small residual CNN on 64 × 64 axial slices with three
channels [PET, CT, PET+CT fused], trained per slice; patient score = mean over the slices (views).

Use it through the same training code as the fusion network: ``FusionConfig(architecture="egfr_dls",
use_features=False)`` on data built with :data:`DLS_PATCH` (64 px of 1 mm, one slice per view).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models.fusion.data import PatchSpec
from models.fusion.net import FusionConfig

__all__ = ["DLS_PATCH", "ResidualCNN", "dls_config"]

#: 64 × 64 slices of 1 mm, 7 slices per patient, 2 mm apart.
DLS_PATCH = PatchSpec(size=64, pixel_mm=1.0, n_slices=1, slice_mm=2.0, n_views=7, view_step=1)


def dls_config(tasks=("egfr",), width: int = 16) -> FusionConfig:
    """Baseline configuration (image-only, PET and CT)."""
    return FusionConfig(d=width, tasks=tuple(tasks), n_classes=(2,) * len(tasks), use_features=False,
                        architecture="egfr_dls", patch=64, in_slices=1)  # fmt: skip


class ResBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs) -> None:
        self.c1 = nnx.Conv(cin, cout, (3, 3), strides=stride, rngs=rngs)
        self.c2 = nnx.Conv(cout, cout, (3, 3), rngs=rngs)
        self.n1, self.n2 = nnx.LayerNorm(cout, rngs=rngs), nnx.LayerNorm(cout, rngs=rngs)
        self.skip = (
            nnx.Conv(cin, cout, (1, 1), strides=stride, rngs=rngs) if (stride != 1 or cin != cout) else None
        )

    def __call__(self, x):
        h = jax.nn.relu(self.n1(self.c1(x)))
        h = self.n2(self.c2(h))
        return jax.nn.relu(h + (x if self.skip is None else self.skip(x)))


class ResidualCNN(nnx.Module):
    """stem (3→w) → residual stages w, 2w, 4w (stride 2) → global average pool → one head per task.
    ``__call__(batch) -> (logits per task, aux)`` like :class:`models.fusion.net.FusionNet`."""

    def __init__(self, config: FusionConfig, *, rngs: nnx.Rngs) -> None:
        self.config = config
        w = config.d
        self.stem = nnx.Conv(3 * config.in_slices, w, (3, 3), rngs=rngs)
        self.stages = nnx.List(
            [
                ResBlock(w, w, 1, rngs=rngs),
                ResBlock(w, 2 * w, 2, rngs=rngs),
                ResBlock(2 * w, 4 * w, 2, rngs=rngs),
            ]
        )
        self.drop = nnx.Dropout(config.dropout, rngs=rngs)
        self.heads = nnx.List([nnx.Linear(4 * w, 1 if k == 2 else k, rngs=rngs) for k in config.n_classes])
        self.log_vars = nnx.Param(jnp.zeros((len(config.tasks),)))

    def cam_shapes(self, H: int, W: int, layer: str = "scale1") -> dict[str, tuple[int, int, int]]:
        """The map Grad-CAM explains (one, of the fused input: key ``fused``): ``scale1`` the last
        stage (H/4 × W/4 × 4w, the classic Grad-CAM layer), ``fine`` the first stage (H × W × w)."""
        w = self.config.d
        return {"fused": (H, W, w) if layer == "fine" else (H // 4, W // 4, 4 * w)}

    def __call__(self, batch: dict, cam_delta: dict | None = None, cam_layer: str = "scale1"):
        pet, ct = batch["pet"], batch["ct"]
        x = jnp.concatenate([pet, ct, 0.5 * (pet + ct)], axis=-1)  # [PET, CT, fused]
        x = jax.nn.relu(self.stem(x))
        maps = {}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if (i == 0 and cam_layer == "fine") or (i == len(self.stages) - 1 and cam_layer == "scale1"):
                if cam_delta is not None:
                    x = x + cam_delta["fused"]
                maps["fused"] = x
        feat = self.drop(x.mean(axis=(1, 2)))
        return self.logits(feat, batch), {"cls": feat, "maps": maps}

    def logits(self, feat: jax.Array, batch: dict | None = None) -> dict[str, jax.Array]:
        """Per task, the head on the pooled features (B, 4w)."""
        return {t: h(feat) for t, h in zip(self.config.tasks, self.heads, strict=True)}
