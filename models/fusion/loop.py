"""The training loop of one model: in-fold feature preparation, validation split, epochs, early
stopping, best-epoch selection, checkpoints and exact resume.

Reproducibility: the shuffling of epoch e uses ``numpy.random.default_rng([seed, e])``, the device
randomness ``fold_in(key(seed), step)`` and the model's own ``nnx.Rngs(seed)``; a rerun on the same
device gives the same predictions, and a resumed run continues the same sequence.

The steps are :func:`models.fusion.device.train_step` (functional, donated buffers, the cohort on the
device): the host uploads an epoch's batch indices once and reads the epoch's losses once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.fusion.calibration import PlattScaling, fit_platt
from models.fusion.checkpoints import load_checkpoint, save_checkpoint
from models.fusion.config import TrainConfig
from models.fusion.data import FeaturePrep, FusionData
from models.fusion.device import device_cohort, schedule_arrays, train_step
from models.fusion.losses import GradNormState
from models.fusion.net import FusionConfig, FusionNet
from models.fusion.steps import adamw, make_model, predict, validation_auc

__all__ = ["FitResult", "fit"]


@dataclass
class FitResult:
    """A trained model with its feature preparation, per-epoch history, the validation cases that chose
    its epoch and the Platt scaling fitted on them (:mod:`models.fusion.calibration`)."""

    model: FusionNet
    prep: FeaturePrep
    history: list[dict]
    best_epoch: int
    best_val_auc: float
    val_idx: np.ndarray | None = None
    calibration: dict[str, PlattScaling] = field(default_factory=dict)


def _fold_key(data: FusionData, train_idx, val_idx) -> str:
    """Hash of the training and validation case ids: a checkpoint resumes only the same fold."""
    import hashlib

    ids = np.asarray(data.case_ids).astype(str)
    text = ",".join(ids[np.asarray(train_idx)]) + "|" + ",".join(ids[np.asarray(val_idx)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    prep = (prep or FeaturePrep()).fit(data, train_idx, tasks)
    if not model_cfg.modalities and not prep.n_features:
        raise ValueError(
            "a features-only model needs feature tokens, but no feature column is left after the "
            f"preparation (groups {list(data.groups)}, dropped {list(prep.drop_groups)}); give --table "
            "with habitat or PET-descriptor columns"
        )
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
    opt_state = adamw(cfg.weight_decay).init(nnx.state(model, nnx.Param))
    schedule = schedule_arrays(cfg.lr, cfg.epochs, cfg.warmup_epochs, steps, cfg.ema_half_life)
    gn = GradNormState(len(tasks))
    pos_weight = {}
    for t in tasks:
        y = data.labels[t][train_idx]
        y = y[y >= 0]
        pos = max(int((y == 1).sum()), 1)
        pos_weight[t] = jnp.float32(
            (len(y) - pos) / pos if cfg.class_weight and data.n_classes(t) == 2 else 1.0
        )
    history, best_auc, best_epoch, best_state, start = [], -np.inf, -1, None, 0
    # the running average of the weights (TrainConfig.ema_half_life), updated inside every step
    ema = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param)) if cfg.ema_half_life > 0 else None
    ckpt = Path(checkpoint) if checkpoint else None
    fold = _fold_key(data, train_idx, val_idx)
    if ckpt is not None and ckpt.with_suffix(".json").exists() and ckpt.with_suffix(".npz").exists():
        from radfeat.utils.atomic import IncompleteWriteError, read_pair_manifest

        try:
            saved = read_pair_manifest(ckpt.with_suffix(".json"))
            # the same fold, and an average if this run keeps one (an older checkpoint has none)
            same_fold = saved.get("fold") == fold and saved.get("ema_half_life", 0.0) == cfg.ema_half_life
        except (IncompleteWriteError, ValueError, KeyError):
            same_fold = False
        try:
            if not same_fold:  # another fold's (or an older version's) checkpoint: never resumed
                raise IncompleteWriteError("checkpoint of other training cases")
            meta, best_state, opt_state, saved_ema = load_checkpoint(
                ckpt, model, opt_state, gradnorm=gn, ema=ema
            )
        except IncompleteWriteError:  # interrupted between the two renames: nothing restored, start again
            pass
        else:
            history, best_auc, best_epoch = meta["history"], meta["best_auc"], meta["best_epoch"]
            start = meta["epoch"] + 1
            ema = saved_ema
    base_key = jax.random.key(cfg.seed)
    model.train()
    # The functional step (models.fusion.device): cohort resident on the device, batches gathered
    # there, buffers donated, one host synchronisation per epoch (its losses).
    cohort = device_cohort(data, prep, tasks)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    gn_graphdef, gn_state = nnx.split(gn)
    static = {
        "graphdef": graphdef,
        "gn_graphdef": gn_graphdef,
        "weighting": cfg.loss_weighting,
        "augment": cfg.augment,
        "weight_decay": cfg.weight_decay,
        "feature_dropout": cfg.feature_dropout,
        "feature_noise": cfg.feature_noise,
    }
    for epoch in range(start, cfg.epochs):
        if epoch - max(best_epoch, cfg.select_from_epoch) > cfg.patience and epoch >= cfg.min_epochs:
            break
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(samples)
        # fewer samples than one batch (a tiny training part): the permutation is repeated to fill it
        order = np.resize(order, steps * cfg.batch_size).reshape(steps, cfg.batch_size)
        cases = jnp.asarray(train_idx[order // V], jnp.int32)  # (steps, B), one upload per epoch
        views = jnp.asarray(order % V, jnp.int32)
        counts = jnp.asarray(
            np.stack([epoch * 100_003 + np.arange(steps), epoch * steps + np.arange(steps)], axis=1),
            jnp.int32,
        )
        losses = []
        for s in range(steps):
            params, rest, opt_state, gn_state, ema, loss, _ = train_step(
                params, rest, opt_state, gn_state, ema, cohort, cases[s], views[s], pos_weight,
                base_key, counts[s], schedule, **static,
            )  # fmt: skip
            losses.append(loss)
        epoch_loss = float(np.mean(np.asarray(jnp.stack(losses))))  # the epoch's one host sync
        nnx.update(model, params, rest)
        nnx.update(gn, gn_state)
        if ema is not None:  # validated, selected and returned: the averaged weights
            nnx.update(model, ema)
        val = validation_auc(model, data, val_idx, prep, cfg.eval_batch_size)
        known = [a for a in val.values() if a is not None]
        mean_auc = float(np.mean(known)) if known else float("nan")
        record = {
            "epoch": epoch,
            "loss": epoch_loss,
            **{f"val_auc_{t}": a for t, a in val.items()},
            "val_mean_auc": mean_auc,
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        if np.isfinite(mean_auc) and mean_auc > best_auc and epoch >= cfg.select_from_epoch:
            best_auc, best_epoch = mean_auc, epoch
            # a copy: the next step donates (reuses) the current parameter buffers
            best_state = jax.tree.map(jnp.copy, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
        if ema is not None:
            nnx.update(model, params)  # the raw weights are what training continues from
        if ckpt is not None:
            meta = {
                "epoch": epoch,
                "history": history,
                "best_auc": best_auc,
                "best_epoch": best_epoch,
                "fold": fold,
                "ema_half_life": cfg.ema_half_life,
            }
            save_checkpoint(ckpt, model, opt_state, meta, best_state, gradnorm=gn, ema=ema)
        if progress:
            progress(record)
    nnx.update(model, params, rest)
    nnx.update(gn, gn_state)
    if best_state is not None:
        state = nnx.state(model, nnx.Param)
        nnx.replace_by_pure_dict(state, best_state)
        nnx.update(model, state)
    # Probabilities calibrated on the validation cases of this training part (never a test case)
    val_probs = predict(model, data, val_idx, prep, cfg.eval_batch_size)
    calibration = {
        t: fit_platt(data.labels[t][val_idx], p)
        for t, p in val_probs.items()
        if np.ndim(p) == 1 and cfg.calibrate
    }
    return FitResult(model, prep, history, best_epoch, float(best_auc), np.asarray(val_idx), calibration)
