"""Training and evaluation of the fusion network: jit-compiled steps, AdamW with a warm-up + cosine
schedule (no decay on embeddings, norms and biases), on-device augmentation, masked multi-task loss
(Kendall uncertainty weighting, equal weights or GradNorm), early stopping on the validation mean
AUC, checkpoints (``.npz`` arrays + JSON, no pickle) with resume, and patient-level cross-validation
on the classical benchmark's splits.

Reproducibility: the shuffling of epoch e uses ``numpy.random.default_rng([seed, e])``, the device
randomness ``fold_in(key(seed), step)`` and the model's own ``nnx.Rngs(seed)``; a rerun on the same
device gives the same predictions, and a resumed run continues the same sequence.
"""

from __future__ import annotations

import collections
import functools
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import nnx

from models.fusion.data import FeaturePrep, FusionData
from models.fusion.net import FusionConfig, FusionNet

__all__ = [
    "TrainConfig",
    "FitResult",
    "TRACE_COUNTS",
    "enable_compilation_cache",
    "make_model",
    "fit",
    "predict",
    "cross_validate_fusion",
    "FusionCVResult",
    "save_checkpoint",
    "load_checkpoint",
]

#: How often each jitted function was traced (compiled) in this process; the benchmark checks that
#: training does not recompile after the first step.
TRACE_COUNTS: collections.Counter = collections.Counter()


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


# ------------------------------------------------------------------------------------------ batches
def _model_inputs(data: FusionData, prep: FeaturePrep, idx: np.ndarray, views: np.ndarray) -> dict:
    """Arrays for cases ``idx`` at views ``views``: images (B, H, W, S)."""
    return {
        "ct": np.transpose(data.ct[idx, views], (0, 2, 3, 1)),
        "pet": np.transpose(data.pet[idx, views], (0, 2, 3, 1)),
        "x": prep.transform(data, idx),
    }


def _static_inputs(prep: FeaturePrep) -> dict:
    return {
        "groups": np.asarray(prep.group_of_, dtype=np.int32),
        "feature_on": np.ones(prep.n_features, dtype=bool),
    }


def _pad(batch: dict, size: int) -> dict:
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


def _labelled(data: FusionData, tasks, idx) -> dict:
    y = {t: data.labels[t][idx] for t in tasks}
    return {"y": {t: np.maximum(v, 0) for t, v in y.items()}, "y_on": {t: (v >= 0) for t, v in y.items()}}


# ----------------------------------------------------------------------------------------- model
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
def _adamw(weight_decay: float) -> optax.GradientTransformation:
    """AdamW without its learning rate (gradient clipping at norm 1, Adam moments, decoupled weight
    decay on kernels, sign flip); the step multiplies by the scheduled learning rate. Keeping the
    schedule out of the transformation keeps one compiled step for every fold and run length."""
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.scale_by_adam(),
        optax.add_decayed_weights(weight_decay, mask=_decay_mask),
        optax.scale(-1.0),
    )


def lr_schedule(cfg: TrainConfig, steps_per_epoch: int):
    """Linear warm-up over ``warmup_epochs`` to ``lr``, then cosine decay to ``lr / 100``."""
    total = max(cfg.epochs * steps_per_epoch, 2)
    warmup = min(max(cfg.warmup_epochs * steps_per_epoch, 1), total - 1)
    return optax.warmup_cosine_decay_schedule(0.0, cfg.lr, warmup, total, end_value=cfg.lr * 0.01)


# ------------------------------------------------------------------------------------------- loss
def _task_losses(logits: dict, batch: dict, pos_weight: dict, tasks) -> jax.Array:
    """Masked mean loss per task (n_tasks,): BCE (binary, with positive-class weight) or CE."""
    losses = []
    for t in tasks:
        lg, y, on = logits[t], batch["y"][t], batch["y_on"][t] * batch["w"]
        if lg.shape[-1] == 1:
            z = lg[:, 0]
            yf = y.astype(jnp.float32)
            per = -(pos_weight[t] * yf * jax.nn.log_sigmoid(z) + (1 - yf) * jax.nn.log_sigmoid(-z))
        else:
            per = optax.softmax_cross_entropy_with_integer_labels(lg, y)
        losses.append(jnp.sum(per * on) / jnp.maximum(jnp.sum(on), 1.0))
    return jnp.stack(losses)


def _combine(losses: jax.Array, model: FusionNet, weighting: str, gn_weights: jax.Array) -> jax.Array:
    if weighting == "kendall":
        s = model.log_vars[...]
        return jnp.sum(jnp.exp(-s) * losses + 0.5 * s)
    if weighting == "gradnorm":
        return jnp.sum(jax.lax.stop_gradient(gn_weights) * losses)
    return jnp.sum(losses)


# ----------------------------------------------------------------------------------- augmentation
def _augment(batch: dict, key: jax.Array, modalities) -> dict:
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


# ------------------------------------------------------------------------------------------ steps
@nnx.jit(static_argnames=("weighting", "augment", "weight_decay", "feature_dropout"))
def _train_step(
    model,
    opt_state,
    gn,
    batch,
    pos_weight,
    key,
    lr,
    weighting: str,
    augment: bool,
    weight_decay: float,
    feature_dropout: float = 0.0,
):
    TRACE_COUNTS["train_step"] += 1  # runs at trace time only
    tasks = model.config.tasks
    aug_key, drop_key = jax.random.split(key)
    if augment:
        batch = _augment(batch, aug_key, model.config.modalities)
    if feature_dropout > 0 and model.config.uses_features and model.config.uses_images:
        keep = jax.random.bernoulli(drop_key, 1.0 - feature_dropout, (batch["x"].shape[0], 1))
        batch = {**batch, "x": jnp.where(keep, batch["x"], 0.0)}

    def loss_fn(model):
        logits, aux = model(batch)
        losses = _task_losses(logits, batch, pos_weight, tasks)
        return _combine(losses, model, weighting, gn.weights[...]), (losses, aux["cls"])

    (loss, (losses, cls)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    params = nnx.state(model, nnx.Param)
    updates, opt_state = _adamw(weight_decay).update(grads, opt_state, params)
    updates = jax.tree.map(lambda u: lr * u, updates)
    nnx.update(model, optax.apply_updates(params, updates))
    if weighting == "gradnorm":
        _gradnorm_update(model, gn, batch, pos_weight, tasks, cls, losses)
    return loss, losses, opt_state


class GradNormState(nnx.Module):
    """Task weights of GradNorm (Chen et al. 2018), updated each step toward equal training rates
    (α = 1.5) from the gradient norms of each weighted task loss at the shared CLS representation."""

    def __init__(self, n_tasks: int, alpha: float = 1.5, lr: float = 0.025) -> None:
        self.weights = nnx.Variable(jnp.ones((n_tasks,)))
        self.initial = nnx.Variable(jnp.zeros((n_tasks,)))
        self.alpha, self.lr = alpha, lr


def _gradnorm_update(model, gn, batch, pos_weight, tasks, cls, losses):
    cls = jax.lax.stop_gradient(cls)

    def head_losses(c):
        logits = {t: h(c) for t, h in zip(tasks, model.heads, strict=True)}
        return _task_losses(logits, batch, pos_weight, tasks)

    jac = jax.jacrev(head_losses)(cls)  # (n_tasks, B, d)
    g = jnp.sqrt(jnp.sum(jac.reshape(len(tasks), -1) ** 2, axis=1)) + 1e-12
    w = gn.weights[...]
    init = jnp.where(gn.initial[...] > 0, gn.initial[...], jax.lax.stop_gradient(losses) + 1e-12)
    gn.initial[...] = init
    ratio = (losses / init) / jnp.mean(losses / init)
    target = jnp.mean(w * g) * ratio**gn.alpha
    w = w - gn.lr * jnp.sign(w * g - target) * g
    w = jnp.clip(w, 1e-3, None)
    gn.weights[...] = w * len(tasks) / jnp.sum(w)


@nnx.jit
def _predict_step(model, batch):
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
    static = _static_inputs(prep)
    for start in range(0, len(cases), batch_size):
        c, v = cases[start : start + batch_size], views[start : start + batch_size]
        n = len(c)
        batch = _pad({**_model_inputs(data, prep, c, v), "w": np.ones(n, np.float32)}, batch_size)
        batch.update(static)
        probs = _predict_step(model, jax.tree.map(jnp.asarray, batch))
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


# ------------------------------------------------------------------------------------- checkpoints
def _flatten(tree) -> dict[str, np.ndarray]:
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            flat["prngkey:" + key] = np.asarray(jax.random.key_data(leaf))
        else:
            flat[key] = np.asarray(leaf)
    return flat


def _unflatten(template, arrays: dict[str, np.ndarray]):
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    new = []
    for path, leaf in leaves:
        key = "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            new.append(jax.random.wrap_key_data(jnp.asarray(arrays["prngkey:" + key])))
        else:
            new.append(jnp.asarray(arrays[key]))
    return jax.tree_util.tree_unflatten(treedef, new)


def save_checkpoint(
    path: str | Path, model, opt_state=None, meta: dict | None = None, best=None, gradnorm=None
) -> Path:
    """Model, optimizer state, best-so-far parameters and GradNorm task weights as arrays in one
    ``.npz``, metadata in ``.json``, written as one checked pair (the JSON records the NPZ's SHA-256;
    :func:`radfeat.utils.atomic.write_pair`), so a resume never mixes two epochs."""
    from radfeat.utils.atomic import write_pair

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"model/{k}": v for k, v in _flatten(nnx.to_pure_dict(nnx.state(model))).items()}
    if opt_state is not None:
        arrays.update({f"opt/{k}": v for k, v in _flatten(opt_state).items()})
    if best is not None:
        arrays.update({f"best/{k}": v for k, v in _flatten(best).items()})
    if gradnorm is not None:
        arrays.update(
            {f"gradnorm/{k}": v for k, v in _flatten(nnx.to_pure_dict(nnx.state(gradnorm))).items()}
        )

    def write_arrays(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    write_pair({path.with_suffix(".npz"): write_arrays}, path.with_suffix(".json"), meta or {})
    return path.with_suffix(".npz")


def load_checkpoint(
    path: str | Path, model, opt_state=None, gradnorm=None
) -> tuple[dict, object | None, object | None]:
    """Restore arrays saved by :func:`save_checkpoint` into ``model`` (and ``gradnorm``); returns the
    metadata, the best-so-far parameters (a pure dict) and the optimizer state (shaped like
    ``opt_state``) when saved.

    Raises
    ------
    radfeat.utils.atomic.IncompleteWriteError
        When the arrays do not match the metadata (an interrupted write).
    """
    from radfeat.utils.atomic import read_pair_manifest

    path = Path(path)
    meta = read_pair_manifest(path.with_suffix(".json"))
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}

    def part(prefix):
        return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

    state = nnx.state(model)
    pure = _unflatten(nnx.to_pure_dict(state), part("model/"))
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    restored_opt = None
    if opt_state is not None and part("opt/"):
        restored_opt = _unflatten(opt_state, part("opt/"))
    best = None
    if part("best/"):
        best = _unflatten(nnx.to_pure_dict(nnx.state(model, nnx.Param)), part("best/"))
    if gradnorm is not None and part("gradnorm/"):
        gn_state = nnx.state(gradnorm)
        nnx.replace_by_pure_dict(gn_state, _unflatten(nnx.to_pure_dict(gn_state), part("gradnorm/")))
        nnx.update(gradnorm, gn_state)
    return {k: v for k, v in meta.items() if k != "members"}, best, restored_opt


# ------------------------------------------------------------------------------------------- fit
@dataclass
class FitResult:
    """A trained model with its feature preparation and per-epoch history."""

    model: FusionNet
    prep: FeaturePrep
    history: list[dict]
    best_epoch: int
    best_val_auc: float


def _split_validation(data: FusionData, train_idx: np.ndarray, cfg: TrainConfig, task: str):
    from sklearn.model_selection import train_test_split

    y = data.labels[task][train_idx]
    n_val = max(int(round(cfg.val_fraction * len(train_idx))), 2)
    strat = y if np.bincount(y + 1).min() >= 2 else None
    tr, va = train_test_split(train_idx, test_size=n_val, stratify=strat, random_state=cfg.seed)
    return np.sort(tr), np.sort(va)


def fit(
    model_cfg: FusionConfig,
    train_cfg: TrainConfig,
    data: FusionData,
    train_idx: np.ndarray,
    *,
    val_idx: np.ndarray | None = None,
    prep: FeaturePrep | None = None,
    checkpoint: str | Path | None = None,
    progress: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train on ``train_idx`` (early stopping on ``val_idx``, default a stratified ``val_fraction`` of
    the training cases), fitting the feature preparation on the training cases only. With
    ``checkpoint`` the run saves after every epoch and resumes from it."""
    cfg = train_cfg
    tasks = model_cfg.tasks
    if val_idx is None:
        train_idx, val_idx = _split_validation(data, np.asarray(train_idx), cfg, tasks[0])
    prep = (prep or FeaturePrep()).fit(data, train_idx, tasks[0])
    model_cfg = replace(
        model_cfg,
        n_features=prep.n_features if model_cfg.use_features else 0,
        n_groups=max(len(prep.group_names_), 1),
        in_slices=data.ct.shape[2],
        patch=data.ct.shape[-1],
        n_classes=tuple(data.n_classes(t) for t in tasks),
    )
    if not model_cfg.use_features:
        prep.columns_, prep.group_of_ = [], []
    model = make_model(model_cfg, cfg.seed)
    V = data.ct.shape[1]
    samples = len(train_idx) * V
    steps = max(samples // cfg.batch_size, 1)
    opt_state = _adamw(cfg.weight_decay).init(nnx.state(model, nnx.Param))
    schedule = lr_schedule(cfg, steps)
    gn = GradNormState(len(tasks))
    pos_weight = {}
    for t in tasks:
        y = data.labels[t][train_idx]
        y = y[y >= 0]
        pos = max(int((y == 1).sum()), 1)
        pos_weight[t] = jnp.float32(
            (len(y) - pos) / pos if cfg.class_weight and data.n_classes(t) == 2 else 1.0
        )
    static = _static_inputs(prep)
    history, best_auc, best_epoch, best_state, start = [], -np.inf, -1, None, 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.with_suffix(".json").exists() and ckpt.with_suffix(".npz").exists():
        from radfeat.utils.atomic import IncompleteWriteError

        try:
            meta, best_state, opt_state = load_checkpoint(ckpt, model, opt_state, gradnorm=gn)
        except IncompleteWriteError:  # interrupted between the two renames: nothing restored, start again
            pass
        else:
            history, best_auc, best_epoch = meta["history"], meta["best_auc"], meta["best_epoch"]
            start = meta["epoch"] + 1
    base_key = jax.random.key(cfg.seed)
    model.train()
    for epoch in range(start, cfg.epochs):
        if epoch - max(best_epoch, cfg.select_from_epoch) > cfg.patience and epoch >= cfg.min_epochs:
            break
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(samples)
        cases, views = train_idx[order // V], order % V
        losses = []
        for s in range(steps):
            sl = slice(s * cfg.batch_size, (s + 1) * cfg.batch_size)
            c, v = cases[sl], views[sl]
            batch = {
                **_model_inputs(data, prep, c, v),
                **_labelled(data, tasks, c),
                "w": np.ones(len(c), np.float32),
            }
            batch = _pad(batch, cfg.batch_size)
            batch.update(static)
            key = jax.random.fold_in(base_key, epoch * 100_003 + s)
            loss, _, opt_state = _train_step(
                model,
                opt_state,
                gn,
                jax.tree.map(jnp.asarray, batch),
                pos_weight,
                key,
                jnp.float32(schedule(epoch * steps + s)),
                weighting=cfg.loss_weighting,
                augment=cfg.augment,
                weight_decay=cfg.weight_decay,
                feature_dropout=cfg.feature_dropout,
            )
            losses.append(float(loss))
        val = validation_auc(model, data, val_idx, prep, cfg.eval_batch_size)
        known = [a for a in val.values() if a is not None]
        mean_auc = float(np.mean(known)) if known else float("nan")
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            **{f"val_auc_{t}": a for t, a in val.items()},
            "val_mean_auc": mean_auc,
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        if np.isfinite(mean_auc) and mean_auc > best_auc and epoch >= cfg.select_from_epoch:
            best_auc, best_epoch = mean_auc, epoch
            best_state = nnx.to_pure_dict(nnx.state(model, nnx.Param))  # immutable arrays: no copy needed
        if ckpt is not None:
            meta = {"epoch": epoch, "history": history, "best_auc": best_auc, "best_epoch": best_epoch}
            save_checkpoint(ckpt, model, opt_state, meta, best_state, gradnorm=gn)
        if progress:
            progress(record)
    if best_state is not None:
        state = nnx.state(model, nnx.Param)
        nnx.replace_by_pure_dict(state, best_state)
        nnx.update(model, state)
    return FitResult(model, prep, history, best_epoch, float(best_auc))


# -------------------------------------------------------------------------------------------- CV
@dataclass
class FusionCVResult:
    """Out-of-fold patient predictions: one row per case × repeat × task (``score`` is the positive-class
    probability of a binary task)."""

    predictions: pd.DataFrame
    histories: list[list[dict]] = field(default_factory=list)
    model_config: dict = field(default_factory=dict)
    seconds: float = 0.0
    #: The first fold's trained model and its test case indices (for Grad-CAM and attention maps).
    example: tuple[FitResult, np.ndarray] | None = None

    def case_scores(self, task: str) -> pd.DataFrame:
        """Per case: label, mean score over repeats, mean margin to the folds' training thresholds and
        the decision (:func:`models.thresholds.case_decisions`)."""
        from models.thresholds import case_decisions

        part = self.predictions[self.predictions["task"] == task]
        if "threshold" not in part.columns:  # results written before thresholds were recorded
            part = part.assign(threshold=np.nan)
        return case_decisions(part)

    def auc(self, task: str) -> float:
        s = self.case_scores(task)
        s = s[s["y"] >= 0]
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(s["y"], s["score"]))


def fusion_splits(data: FusionData, n_splits: int = 5, n_repeats: int = 1, seed: int = 0):
    """The classical benchmark's patient-level splits (:func:`models.cv.outer_splits`), stratified on the
    first task: the same table order, label and seed give the same folds as ``radfeat benchmark``."""
    from models.cv import outer_splits
    from models.data import Dataset

    y = data.labels[data.tasks[0]]
    ds = Dataset(X=pd.DataFrame({"_": np.zeros(len(y))}), y=y, ids=data.case_ids)
    return outer_splits(ds, n_splits, n_repeats, seed)


def cross_validate_fusion(
    data: FusionData,
    model_cfg: FusionConfig,
    train_cfg: TrainConfig,
    *,
    n_splits: int = 5,
    n_repeats: int = 1,
    prep: FeaturePrep | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: Callable[[dict], None] | None = None,
) -> FusionCVResult:
    """Train one model per outer fold (same architecture → one compilation for all folds) and collect
    the out-of-fold patient predictions for every task."""
    from models.thresholds import training_threshold

    t0 = time.perf_counter()
    rows, histories, example = [], [], None
    tasks = [t for t in model_cfg.tasks if t in data.labels]
    for r, f, tr, te in fusion_splits(data, n_splits, n_repeats, train_cfg.seed):
        ckpt = Path(checkpoint_dir) / f"r{r}_f{f}" if checkpoint_dir else None

        def tick(rec, r=r, f=f):
            if progress:
                progress({"repeat": r, "fold": f, **rec})

        cfg = replace(train_cfg, seed=train_cfg.seed + 1000 * r + f)
        res = fit(
            model_cfg, cfg, data, tr, prep=replace(prep or FeaturePrep()), checkpoint=ckpt, progress=tick
        )
        probs = predict(res.model, data, te, res.prep, cfg.eval_batch_size)
        histories.append(res.history)
        if example is None:
            example = (res, te)
        for t in tasks:
            p = probs[t]
            threshold = training_threshold(data.labels[t][tr])  # this fold's training cases only
            for i, case in enumerate(te):
                score = float(p[i]) if p.ndim == 1 else float(p[i, -1])
                rows.append((t, r, f, data.case_ids[case], int(data.labels[t][case]), score, threshold))
    predictions = pd.DataFrame(rows, columns=["task", "repeat", "fold", "case_id", "y", "score", "threshold"])
    return FusionCVResult(predictions, histories, asdict(model_cfg), time.perf_counter() - t0, example)
