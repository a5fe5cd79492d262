"""The model factory, the optimiser and its schedule, the jitted predict step and prediction (the
train step is :func:`models.fusion.device.train_step`).

``TRACE_COUNTS`` counts the traces (compilations) of the jitted steps in this process, so tests and
the benchmark can check that nothing recompiles.
"""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from models.fusion.batches import model_inputs, pad_batch, static_inputs
from models.fusion.data import FeaturePrep, FusionData
from models.fusion.net import FusionConfig, FusionNet

__all__ = [
    "TRACE_COUNTS",
    "make_model",
    "adamw",
    "predict_step",
    "predict",
    "validation_auc",
]

#: How often each jitted function was traced (compiled) in this process; the benchmark checks that
#: training does not recompile after the first step.
TRACE_COUNTS: collections.Counter = collections.Counter()


def make_model(config: FusionConfig, seed: int) -> FusionNet:
    """The DMDP fusion network, or the EGFR-DLS-like baseline (``architecture="egfr_dls"``)."""
    rngs = nnx.Rngs(params=seed, dropout=seed + 1)
    if config.architecture == "egfr_dls":
        from models.fusion.baseline_cnn import ResidualCNN

        return ResidualCNN(config, rngs=rngs)
    return FusionNet(config, rngs=rngs)


def _decay_mask(params):
    """AdamW decay only on conv/linear kernels (not embeddings, norms, biases, loss weights)."""

    def decide(path, _):
        return any(getattr(p, "key", getattr(p, "name", p)) == "kernel" for p in path)

    return jax.tree_util.tree_map_with_path(decide, params)


@functools.cache
def adamw(weight_decay: float) -> optax.GradientTransformation:
    """AdamW without its learning rate (gradient clipping at norm 1, Adam moments, decoupled weight
    decay on kernels, sign flip); the step multiplies by the scheduled learning rate. Keeping the
    schedule out of the transformation keeps one compiled step for every fold and run length."""
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.scale_by_adam(),
        optax.add_decayed_weights(weight_decay, mask=_decay_mask),
        optax.scale(-1.0),
    )


@nnx.jit
def predict_step(model, batch):
    TRACE_COUNTS["predict_step"] += 1
    logits, _ = model(batch)
    return {
        t: (jax.nn.sigmoid(v[:, 0]) if v.shape[-1] == 1 else jax.nn.softmax(v, -1)) for t, v in logits.items()
    }


def predict(
    model: FusionNet, data: FusionData, idx: np.ndarray, prep: FeaturePrep, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Patient-level probabilities for cases ``idx``: the mean over the views (positive-class probability
    for a binary task (n,), class probabilities (n, K) otherwise)."""
    model.eval()
    V = data.ct.shape[1]
    cases = np.repeat(idx, V)
    views = np.tile(np.arange(V), len(idx))
    out: dict[str, list] = {t: [] for t in model.config.tasks}
    static = static_inputs(prep)
    for start in range(0, len(cases), batch_size):
        c, v = cases[start : start + batch_size], views[start : start + batch_size]
        n = len(c)
        batch = pad_batch({**model_inputs(data, prep, c, v), "w": np.ones(n, np.float32)}, batch_size)
        batch.update(static)
        probs = predict_step(model, jax.tree.map(jnp.asarray, batch))
        for t, p in probs.items():
            out[t].append(np.asarray(p)[:n])
    result = {}
    for t, parts in out.items():
        p = np.concatenate(parts)
        p = p.reshape(len(idx), V, *p.shape[1:]).mean(axis=1)
        result[t] = p
    model.train()
    return result


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    on = y >= 0
    if len(np.unique(y[on])) < 2:
        return None
    if p.ndim == 1:
        return float(roc_auc_score(y[on], p[on]))
    return float(roc_auc_score(y[on], p[on], multi_class="ovr"))


def validation_auc(model, data, idx, prep, batch_size=64) -> dict[str, float | None]:
    probs = predict(model, data, idx, prep, batch_size)
    return {t: _auc(data.labels[t][idx], p) for t, p in probs.items()}
