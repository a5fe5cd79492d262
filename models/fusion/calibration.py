"""Probability calibration of a trained fusion model on its own training data (Platt scaling).

The network is trained with class-weighted losses and selected on validation AUC, so its outputs rank
cases but are not risks: a case at 0.5 is not a 50 % risk, and a threshold at the training prevalence
then calls most cases positive. Each model is therefore recalibrated on the validation split of its
own training part (the cases that chose its epoch; never a test case) by Platt scaling,
``p' = σ(a · logit p + b)`` with Platt's (1999) smoothed targets, so that a handful of validation
cases cannot drive the fit to 0 / 1. The slope is kept positive: the calibrated score ranks the cases
exactly as the network does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

__all__ = ["PlattScaling", "fit_platt", "calibrate", "IDENTITY"]

_EPS = 1e-6
#: The smallest slope allowed: calibration never reverses or flattens the ranking completely.
MIN_SLOPE = 1e-3


@dataclass(frozen=True)
class PlattScaling:
    """``p' = σ(slope · logit p + intercept)``; fitted on ``n`` validation cases (0: not fitted)."""

    slope: float = 1.0
    intercept: float = 0.0
    n: int = 0

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
        return special.expit(self.slope * special.logit(p) + self.intercept)

    def to_dict(self) -> dict[str, float]:
        return {"slope": float(self.slope), "intercept": float(self.intercept), "n": int(self.n)}

    @classmethod
    def from_dict(cls, d: dict | None) -> PlattScaling:
        return cls(**d) if d else IDENTITY


#: No recalibration (models saved before calibration existed, or a validation split of one class).
IDENTITY = PlattScaling()


def fit_platt(y: np.ndarray, p: np.ndarray) -> PlattScaling:
    """Platt scaling of probabilities ``p`` (n,) against 0/1 labels ``y`` (n,; < 0 = unknown, ignored).

    Minimises the log loss against Platt's targets ``(N₊ + 1) / (N₊ + 2)`` and ``1 / (N₋ + 2)`` with the
    slope bounded below by :data:`MIN_SLOPE`. Without both classes the identity is returned.
    """
    y = np.asarray(y)
    p = np.asarray(p, float)
    keep = (y >= 0) & np.isfinite(p)
    y, p = y[keep].astype(int), p[keep]
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return IDENTITY
    target = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    z = special.logit(np.clip(p, _EPS, 1 - _EPS))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = theta
        t = a * z + b
        q = special.expit(t)
        value = np.sum(np.logaddexp(0.0, t) - target * t)  # cross-entropy against the targets
        g = q - target
        return float(value), np.array([np.sum(g * z), np.sum(g)])

    start = np.array([1.0, special.logit((n_pos + 1.0) / (n_pos + n_neg + 2.0))])
    res = optimize.minimize(
        loss, start, jac=True, method="L-BFGS-B", bounds=[(MIN_SLOPE, None), (None, None)]
    )
    return PlattScaling(float(res.x[0]), float(res.x[1]), len(y))


def calibrate(probs: dict[str, np.ndarray], calibration: dict[str, PlattScaling] | None) -> dict:
    """``probs`` (task → (n,) positive-class probability, or (n, K)) with each binary task's Platt
    scaling applied; tasks without one (multi-class, or no calibration) pass through."""
    calibration = calibration or {}
    return {t: (calibration[t](p) if t in calibration and np.ndim(p) == 1 else p) for t, p in probs.items()}
