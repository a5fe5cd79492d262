"""Masked multi-task loss and its weighting: Kendall uncertainty, equal, or GradNorm (with its state)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from models.fusion.net import FusionNet

__all__ = ["task_losses", "combine_losses", "GradNormState", "gradnorm_update"]


def task_losses(logits: dict, batch: dict, pos_weight: dict, tasks) -> jax.Array:
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


def combine_losses(losses: jax.Array, model: FusionNet, weighting: str, gn_weights: jax.Array) -> jax.Array:
    if weighting == "kendall":
        s = model.log_vars[...]
        return jnp.sum(jnp.exp(-s) * losses + 0.5 * s)
    if weighting == "gradnorm":
        return jnp.sum(jax.lax.stop_gradient(gn_weights) * losses)
    return jnp.sum(losses)


class GradNormState(nnx.Module):
    """Task weights of GradNorm (Chen et al. 2018), updated each step toward equal training rates
    (α = 1.5) from the gradient norms of each weighted task loss at the shared CLS representation."""

    def __init__(self, n_tasks: int, alpha: float = 1.5, lr: float = 0.025) -> None:
        self.weights = nnx.Variable(jnp.ones((n_tasks,)))
        self.initial = nnx.Variable(jnp.zeros((n_tasks,)))
        self.alpha, self.lr = alpha, lr


def gradnorm_update(model, gn, batch, pos_weight, tasks, cls, losses):
    cls = jax.lax.stop_gradient(cls)

    def head_losses(c):
        return task_losses(model.logits(c, batch), batch, pos_weight, tasks)

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
