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


def _replicates(
    y: np.ndarray, statistic: Callable[[np.ndarray], float], n_boot: int, stratified: bool, seed: int
) -> np.ndarray:
    """``statistic(indices)`` over ``n_boot`` seeded resamples; undefined (NaN) replicates dropped."""
    rng = np.random.default_rng(seed)
    idx = stratified_indices(y, n_boot, rng) if stratified else rng.integers(0, y.size, (n_boot, y.size))
    reps = np.array([statistic(i) for i in idx], dtype=float)
    return reps[np.isfinite(reps)]


def _percentiles(reps: np.ndarray, conf_level: float) -> tuple[float, float]:
    alpha = 1 - conf_level
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


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
    reps = _replicates(y, lambda i: metric(y[i], s[i]), n_boot, stratified, random_state)
    lo, hi = _percentiles(reps, conf_level)
    return BootstrapResult(float(metric(y, s)), lo, hi, float(reps.std(ddof=1)), reps.size)


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
    diffs = _replicates(
        y, lambda i: metric(y[i], a[i]) - metric(y[i], b[i]), n_boot, stratified, random_state
    )
    diff = metric(y, a) - metric(y, b)
    sd = float(diffs.std(ddof=1))
    lo, hi = _percentiles(diffs, conf_level)
    p = float(2 * stats.norm.sf(abs(diff) / sd)) if sd > 0 else 1.0
    return BootstrapResult(float(diff), lo, hi, sd, diffs.size, p)
