"""Batches for the jitted steps: model inputs of (case, view) pairs, static inputs, padding, labels."""

from __future__ import annotations

import numpy as np

from models.fusion.data import FeaturePrep, FusionData

__all__ = ["model_inputs", "static_inputs", "pad_batch", "labelled"]


def model_inputs(data: FusionData, prep: FeaturePrep, idx: np.ndarray, views: np.ndarray) -> dict:
    """Arrays for cases ``idx`` at views ``views``: images (B, H, W, S)."""
    return {
        "ct": np.transpose(data.ct[idx, views], (0, 2, 3, 1)),
        "pet": np.transpose(data.pet[idx, views], (0, 2, 3, 1)),
        "x": prep.transform(data, idx),
    }


def static_inputs(prep: FeaturePrep) -> dict:
    return {
        "groups": np.asarray(prep.group_of_, dtype=np.int32),
        "feature_on": np.ones(prep.n_features, dtype=bool),
    }


def pad_batch(batch: dict, size: int) -> dict:
    n = len(batch["w"])
    if n == size:
        return batch
    out = {}
    for k, v in batch.items():
        if isinstance(v, dict):
            out[k] = {
                t: np.concatenate([a, np.zeros((size - n, *a.shape[1:]), a.dtype)]) for t, a in v.items()
            }
        else:
            out[k] = np.concatenate([v, np.zeros((size - n, *v.shape[1:]), v.dtype)])
    return out


def labelled(data: FusionData, tasks, idx) -> dict:
    y = {t: data.labels[t][idx] for t in tasks}
    return {"y": {t: np.maximum(v, 0) for t, v in y.items()}, "y_on": {t: (v >= 0) for t, v in y.items()}}
