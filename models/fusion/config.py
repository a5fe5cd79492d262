"""Optimisation settings of the fusion network and JAX's persistent compilation cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jax

__all__ = ["TrainConfig", "enable_compilation_cache"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``lr`` peak learning rate after ``warmup_epochs`` of linear warm-up, then
    cosine decay; ``patience`` epochs without a better validation mean AUC stop training (never before
    ``min_epochs``); ``val_fraction`` of the training cases (stratified) is held out for it."""

    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_epochs: int = 3
    patience: int = 12
    min_epochs: int = 8
    val_fraction: float = 0.2
    loss_weighting: str = "kendall"
    class_weight: bool = True
    augment: bool = True
    seed: int = 0
    eval_batch_size: int = 64
    #: Epochs before this one are never kept as "best" (a half-warmed-up model can win by chance on a
    #: small validation split).
    select_from_epoch: int = 5
    #: Share of training samples whose feature tokens are replaced by the training median (0 after
    #: scaling), as if the table were missing: modality dropout, so the image pathway cannot lean on
    #: the features alone (it keeps learning, and its Grad-CAM maps stay meaningful).
    feature_dropout: float = 0.5
    #: Platt-scale each model's probabilities on its validation cases (:mod:`models.fusion.calibration`).
    calibrate: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")
        if self.loss_weighting not in ("kendall", "equal", "gradnorm"):
            raise ValueError(
                f"loss_weighting must be kendall, equal or gradnorm, got {self.loss_weighting!r}"
            )


def enable_compilation_cache(path: str | Path | None = None) -> Path:
    """Turn on JAX's persistent compilation cache (default ``~/.cache/radfeat/jax``; env
    ``RADFEAT_JAX_CACHE``) so a second run skips XLA compilation."""
    path = Path(path or os.environ.get("RADFEAT_JAX_CACHE", Path.home() / ".cache" / "radfeat" / "jax"))
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return path
