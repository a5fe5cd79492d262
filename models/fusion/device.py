"""The training step as the Flax performance guide has it: the cohort resident on the device, batches
gathered there, a functional ``nnx.split`` / ``merge`` step with donated buffers and the learning-rate
schedule inside, and no host synchronisation per step.

* :func:`device_cohort` uploads every case's patches (N, V, S, H, W), scaled feature tokens (N, F)
  and labels once per model; a step receives only the (B,) case and view indices of its batch and
  gathers the images on the device.
* :func:`train_step` is one ``jax.jit`` over pure pytrees (parameters, other model state, optimiser
  and GradNorm state, all donated), compiled once per network structure and batch size: every fold,
  run length and learning-rate schedule reuses it (the schedule's numbers are arguments, not
  constants). It returns the loss as a device scalar; the loop fetches an epoch's losses at once.
* ``FusionConfig(dtype="bfloat16")`` computes convolutions, attention and MLPs in bfloat16 with float32
  parameters, optimiser state and losses (for GPUs with bf16 units).

:data:`~models.fusion.steps.TRACE_COUNTS` counts the traces of the step ("train_step").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from models.fusion.augment import augment_batch
from models.fusion.data import FeaturePrep, FusionData
from models.fusion.losses import combine_losses, gradnorm_update, task_losses
from models.fusion.steps import TRACE_COUNTS, adamw

__all__ = ["device_cohort", "ema_update", "schedule_arrays", "scheduled_lr", "train_step"]


def device_cohort(data: FusionData, prep: FeaturePrep, tasks) -> dict:
    """The cohort on the default device: ``ct``/``pet`` (N, V, S, H, W) float32, ``x`` (N, F) scaled
    tokens (the preparation fitted on the training cases is applied to every case; only training
    cases are ever gathered), ``y`` / ``y_on`` per task (N,), ``groups`` / ``feature_on`` (F,)."""
    y = {t: np.asarray(data.labels[t]) for t in tasks}
    host = {
        "ct": np.asarray(data.ct, np.float32),
        "pet": np.asarray(data.pet, np.float32),
        "x": prep.transform(data),
        "y": {t: np.maximum(v, 0).astype(np.int32) for t, v in y.items()},
        "y_on": {t: v >= 0 for t, v in y.items()},
        "groups": np.asarray(prep.group_of_, dtype=np.int32),
        "feature_on": np.ones(prep.n_features, dtype=bool),
    }
    return jax.device_put(host)


def schedule_arrays(
    peak_lr: float, epochs: int, warmup_epochs: int, steps_per_epoch: int, ema_half_life: float = 0.0
) -> jax.Array:
    """(peak, warm-up steps, total steps, EMA decay per step) of the warm-up + cosine schedule and the
    parameter average as one float32 array, so the step reads them as data (a fold with another step
    count does not recompile). ``ema_half_life`` in epochs (0: no average): the per-step decay is
    ``0.5 ** (1 / (ema_half_life · steps_per_epoch))``, the same averaging window in epochs whatever the
    cohort and batch size."""
    total = max(epochs * steps_per_epoch, 2)
    warmup = min(max(warmup_epochs * steps_per_epoch, 1), total - 1)
    decay = 0.5 ** (1.0 / (ema_half_life * steps_per_epoch)) if ema_half_life > 0 else 0.0
    return jnp.asarray([peak_lr, warmup, total, decay], jnp.float32)


def ema_update(ema, params, schedule: jax.Array, step: jax.Array):
    """One step of the exponential moving average of the parameters, ``ema ← ema + (1 − β)(θ − ema)``;
    β is the schedule's decay, capped by ``(1 + t) / (10 + t)`` early in the run so the average is not
    anchored at the random initialisation (the warm-up of timm's ``ModelEmaV2``)."""
    t = step.astype(jnp.float32)
    beta = jnp.minimum(schedule[3], (1.0 + t) / (10.0 + t))
    return jax.tree.map(lambda e, p: e + (1.0 - beta) * (p - e), ema, params)


def scheduled_lr(schedule: jax.Array, step: jax.Array) -> jax.Array:
    """Linear warm-up from 0 to the peak, then cosine decay to peak / 100 (optax's
    ``warmup_cosine_decay_schedule`` with ``end_value = peak / 100``), at ``step``."""
    peak, warmup, total = schedule[0], schedule[1], schedule[2]
    step = step.astype(jnp.float32)
    end = peak * 0.01
    rising = peak * step / warmup
    t = jnp.clip((step - warmup) / (total - warmup), 0.0, 1.0)
    falling = end + (peak - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * t))
    return jnp.where(step < warmup, rising, falling)


def _gather(cohort: dict, cases: jax.Array, views: jax.Array) -> dict:
    """A batch of (case, view) pairs from the resident cohort: images (B, H, W, S)."""
    return {
        "ct": jnp.transpose(cohort["ct"][cases, views], (0, 2, 3, 1)),
        "pet": jnp.transpose(cohort["pet"][cases, views], (0, 2, 3, 1)),
        "x": cohort["x"][cases],
        "y": {t: v[cases] for t, v in cohort["y"].items()},
        "y_on": {t: v[cases] for t, v in cohort["y_on"].items()},
        "w": jnp.ones(cases.shape[0], jnp.float32),
        "groups": cohort["groups"],
        "feature_on": cohort["feature_on"],
    }


@functools.partial(
    jax.jit,
    static_argnames=(
        "graphdef",
        "gn_graphdef",
        "weighting",
        "augment",
        "weight_decay",
        "feature_dropout",
        "feature_noise",
    ),
    donate_argnames=("params", "rest", "opt_state", "gn_state", "ema"),
)
def train_step(
    params,
    rest,
    opt_state,
    gn_state,
    ema,
    cohort: dict,
    cases: jax.Array,
    views: jax.Array,
    pos_weight: dict,
    base_key: jax.Array,
    count: jax.Array,
    schedule: jax.Array,
    *,
    graphdef,
    gn_graphdef,
    weighting: str,
    augment: bool,
    weight_decay: float,
    feature_dropout: float = 0.0,
    feature_noise: float = 0.0,
):
    """One optimisation step on the batch ``cases``/``views`` (B,) of the resident ``cohort``.

    ``count`` (2,) int32: ``[randomness counter, step index in the run]``; the first keys the
    augmentation / dropout randomness (``fold_in(base_key, counter)``), the second sets the learning
    rate from ``schedule`` (:func:`schedule_arrays`). ``ema`` is the running average of ``params``
    (:func:`ema_update`), or None for no average.
    Returns ``(params, rest, opt_state, gn_state, ema, loss, per-task losses)``.
    """
    TRACE_COUNTS["train_step"] += 1  # runs at trace time only
    model = nnx.merge(graphdef, params, rest)  # the performance guide's pattern: merge, update, split
    gn = nnx.merge(gn_graphdef, gn_state)
    config = model.config
    tasks = config.tasks
    key = jax.random.fold_in(base_key, count[0])
    aug_key, drop_key = jax.random.split(key)
    noise_key = jax.random.fold_in(key, 2)
    batch = _gather(cohort, cases, views)
    if augment:
        batch = augment_batch(batch, aug_key, config.modalities)
    if feature_noise > 0 and config.uses_features:
        batch = {**batch, "x": batch["x"] + feature_noise * jax.random.normal(noise_key, batch["x"].shape)}
    if feature_dropout > 0 and config.uses_features and config.uses_images:
        keep = jax.random.bernoulli(drop_key, 1.0 - feature_dropout, (batch["x"].shape[0], 1))
        batch = {**batch, "x": jnp.where(keep, batch["x"], 0.0)}

    def loss_fn(m):
        logits, aux = m(batch)
        losses = task_losses(logits, batch, pos_weight, tasks)
        total = combine_losses(losses, m, weighting, gn.weights[...])
        for branch in aux.get("aux_logits", {}).values():  # unimodal auxiliary heads (FusionConfig)
            total = total + config.aux_weight * jnp.mean(task_losses(branch, batch, pos_weight, tasks))
        return total, (losses, aux["cls"])

    (loss, (losses, cls)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    lr = scheduled_lr(schedule, count[1])
    current = nnx.state(model, nnx.Param)
    updates, opt_state = adamw(weight_decay).update(grads, opt_state, current)
    updates = jax.tree.map(lambda u: lr * u, updates)
    nnx.update(model, optax.apply_updates(current, updates))
    if weighting == "gradnorm":
        gradnorm_update(model, gn, batch, pos_weight, tasks, cls, losses)
    _, params, new_rest = nnx.split(model, nnx.Param, ...)
    if ema is not None:
        ema = ema_update(ema, params, schedule, count[1])
    return params, new_rest, opt_state, nnx.state(gn), ema, loss, losses
