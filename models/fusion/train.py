"""Training and evaluation of the fusion network: jit-compiled steps, AdamW with a warm-up + cosine
schedule (no decay on embeddings, norms and biases), on-device augmentation, masked multi-task loss
(Kendall uncertainty weighting, equal weights or GradNorm), early stopping on the validation mean
AUC, checkpoints (``.npz`` arrays + JSON, no pickle) with resume, and patient-level cross-validation
on the classical benchmark's splits.

Reproducibility: the shuffling of epoch e uses ``numpy.random.default_rng([seed, e])``, the device
randomness ``fold_in(key(seed), step)`` and the model's own ``nnx.Rngs(seed)``; a rerun on the same
device gives the same predictions, and a resumed run continues the same sequence.

The work is split by job: :mod:`~models.fusion.config` (settings, compilation cache),
:mod:`~models.fusion.batches`, :mod:`~models.fusion.augment`, :mod:`~models.fusion.losses`
(Kendall / equal / GradNorm), :mod:`~models.fusion.steps` (model, optimiser, jitted steps,
prediction), :mod:`~models.fusion.checkpoints`, :mod:`~models.fusion.loop` (one model's training) and
:mod:`~models.fusion.cv` (cross-validation). This module gathers the public names.
"""

from __future__ import annotations

from models.fusion.checkpoints import load_checkpoint, save_checkpoint
from models.fusion.config import TrainConfig, enable_compilation_cache
from models.fusion.cv import FusionCVResult, cross_validate_fusion, fusion_splits
from models.fusion.loop import FitResult, fit
from models.fusion.steps import TRACE_COUNTS, make_model, predict, validation_auc

__all__ = [
    "TrainConfig",
    "FitResult",
    "TRACE_COUNTS",
    "enable_compilation_cache",
    "make_model",
    "fit",
    "predict",
    "validation_auc",
    "cross_validate_fusion",
    "fusion_splits",
    "FusionCVResult",
    "save_checkpoint",
    "load_checkpoint",
]
