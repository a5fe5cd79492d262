"""Seeded, stratified bootstrap confidence intervals for any metric, and paired model comparison."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["BootstrapResult", "bootstrap_ci", "paired_bootstrap_test", "stratified_indices"]

Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimate, percentile CI, bootstrap SD, and for comparisons a normal p-value."""

    estimate: float
    ci_lower: float
    ci_upper: float
    std: float
    n_boot: int
    p_value: float | None = None


def stratified_indices(y: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) resample indices drawn with replacement within each class of ``y``."""
    y = np.asarray(y)
    out = np.empty((n_boot, y.size), dtype=np.int64)
    pos = 0
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        out[:, pos : pos + members.size] = rng.choice(members, size=(n_boot, members.size))
        pos += members.size
    return out


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from models.stats._roc import _placements

    cases, controls = s[y == 1][None, :], s[y == 0][None, :]
    return float(_placements(cases, controls)[0][0])


def bootstrap_ci(
    y_true,
    y_score,
    metric: Metric | None = None,
    *,
    n_boot: int = 2000,
    conf_level: float = 0.95,
    stratified: bool = True,
    random_state: int = 0,
) -> BootstrapResult:
    """Percentile bootstrap CI of ``metric(y_true, y_score)`` (default: ROC AUC, direction "<").

    Stratified resampling (default) keeps the case/control counts, as pROC's ``ci.auc(method="bootstrap")``.
    Replicates where the metric is undefined (NaN) are dropped.
    """
    metric = metric or _auc
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    rng = np.random.default_rng(random_state)
    idx = stratified_indices(y, n_boot, rng) if stratified else rng.integers(0, y.size, (n_boot, y.size))
    reps = np.array([metric(y[i], s[i]) for i in idx], dtype=float)
    reps = reps[np.isfinite(reps)]
    alpha = 1 - conf_level
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(float(metric(y, s)), float(lo), float(hi), float(reps.std(ddof=1)), reps.size)


def paired_bootstrap_test(
    y_true,
    score_a,
    score_b,
    metric: Metric | None = None,
    *,
    n_boot: int = 2000,
    conf_level: float = 0.95,
    stratified: bool = True,
    random_state: int = 0,
) -> BootstrapResult:
    """Bootstrap the difference metric(a) − metric(b) on the same resamples (pROC's bootstrap test).

    p-value: two-sided normal with D = Δ / SD(Δ*), as ``roc.test(method="bootstrap")``.
    """
    metric = metric or _auc
    y = np.asarray(y_true)
    a, b = np.asarray(score_a, float), np.asarray(score_b, float)
    rng = np.random.default_rng(random_state)
    idx = stratified_indices(y, n_boot, rng) if stratified else rng.integers(0, y.size, (n_boot, y.size))
    diffs = np.array([metric(y[i], a[i]) - metric(y[i], b[i]) for i in idx], dtype=float)
    diffs = diffs[np.isfinite(diffs)]
    diff = metric(y, a) - metric(y, b)
    sd = float(diffs.std(ddof=1))
    alpha = 1 - conf_level
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    p = float(2 * stats.norm.sf(abs(diff) / sd)) if sd > 0 else 1.0
    return BootstrapResult(float(diff), float(lo), float(hi), sd, diffs.size, p)
