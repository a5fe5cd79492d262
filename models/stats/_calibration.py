"""Calibration (Brier, intercept and slope, reliability curve, Hosmer–Lemeshow) and decision curves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

__all__ = [
    "CalibrationResult",
    "brier_score",
    "calibration_intercept_slope",
    "reliability_curve",
    "hosmer_lemeshow",
    "net_benefit",
    "decision_curve",
]

_EPS = 1e-12


def _prob(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_prob differ in shape: {y.shape} vs {p.shape}")
    if np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise ValueError("y_prob must be probabilities in [0, 1]; use predict_proba, not decision scores")
    return y, p


def brier_score(y_true, y_prob) -> float:
    """Mean squared difference between predicted probability and outcome (0 = perfect)."""
    y, p = _prob(y_true, y_prob)
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class CalibrationResult:
    """Calibration-in-the-large intercept (slope fixed at 1) and the calibration slope, with CIs."""

    intercept: float
    intercept_ci: tuple[float, float]
    slope: float
    slope_ci: tuple[float, float]


def calibration_intercept_slope(y_true, y_prob, *, conf_level: float = 0.95) -> CalibrationResult:
    """Logistic recalibration of the linear predictor lp = logit(p).

    Slope: coefficient of lp in ``logit P(y) = a + b·lp`` (ideal 1). Intercept: ``a`` in
    ``logit P(y) = a + offset(lp)`` (calibration-in-the-large, ideal 0). Cox (1958), Van Calster (2016).
    """
    y, p = _prob(y_true, y_prob)
    lp = np.log(np.clip(p, _EPS, 1 - _EPS) / np.clip(1 - p, _EPS, 1 - _EPS))
    alpha = 1 - conf_level
    slope_fit = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit()
    icpt_fit = sm.GLM(y, np.ones_like(lp), family=sm.families.Binomial(), offset=lp).fit()
    s_lo, s_hi = slope_fit.conf_int(alpha)[1]
    i_lo, i_hi = icpt_fit.conf_int(alpha)[0]
    return CalibrationResult(
        float(icpt_fit.params[0]),
        (float(i_lo), float(i_hi)),
        float(slope_fit.params[1]),
        (float(s_lo), float(s_hi)),
    )


def reliability_curve(y_true, y_prob, *, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Binned observed vs predicted risk with Wilson CIs of the observed fraction.

    ``strategy``: ``"quantile"`` (equal counts) or ``"uniform"`` (equal widths on [0, 1]).
    Returns columns bin, n, mean_predicted, observed, ci_lower, ci_upper.
    """
    from statsmodels.stats.proportion import proportion_confint

    y, p = _prob(y_true, y_prob)
    if strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0, 1, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in np.unique(bins):
        sel = bins == b
        k, n = int(y[sel].sum()), int(sel.sum())
        lo, hi = proportion_confint(k, n, method="wilson")
        rows.append((int(b), n, float(p[sel].mean()), k / n, float(lo), float(hi)))
    return pd.DataFrame(rows, columns=["bin", "n", "mean_predicted", "observed", "ci_lower", "ci_upper"])


def hosmer_lemeshow(y_true, y_prob, *, n_groups: int = 10) -> tuple[float, float, int]:
    """Hosmer–Lemeshow goodness of fit over risk deciles: (chi², p, df = groups − 2)."""
    y, p = _prob(y_true, y_prob)
    order = np.argsort(p, kind="mergesort")
    groups = np.array_split(order, n_groups)
    chi2 = 0.0
    for g in groups:
        obs, exp, n = y[g].sum(), p[g].sum(), len(g)
        if n == 0:
            continue
        pi = exp / n
        chi2 += (obs - exp) ** 2 / max(n * pi * (1 - pi), _EPS)
    df = len([g for g in groups if len(g)]) - 2
    return float(chi2), float(stats.chi2.sf(chi2, df)), df


def net_benefit(y_true, y_prob, thresholds, *, harm: float = 0.0) -> np.ndarray:
    """Net benefit of treating when risk >= pt: TP/N − FP/N · pt/(1 − pt) − harm (Vickers 2006).

    A threshold of 0 counts everyone positive (R dcurves replaces 0 by 1e-9 for positivity).
    """
    y, p = _prob(y_true, y_prob)
    pt = np.asarray(thresholds, dtype=float)
    cut = np.where(pt == 0, 1e-9, pt)
    positive = p[None, :] >= cut[:, None]
    n = y.size
    tp = (positive & (y == 1)).sum(axis=1) / n
    fp = (positive & (y == 0)).sum(axis=1) / n
    with np.errstate(divide="ignore"):
        return tp - fp * pt / (1 - pt) - harm


def decision_curve(
    y_true, predictions: dict[str, np.ndarray], thresholds=None, *, harm: dict | None = None
) -> pd.DataFrame:
    """Decision-curve table: net benefit of each model, treat-all and treat-none over thresholds.

    Returns a long DataFrame with columns label, threshold, test_pos_rate, tp_rate, fp_rate,
    net_benefit (as R/Python ``dcurves``).
    """
    y = np.asarray(y_true, dtype=float)
    pt = np.arange(0.0, 1.0, 0.01) if thresholds is None else np.asarray(thresholds, float)
    prev = y.mean()
    frames = [
        pd.DataFrame(
            {
                "label": "Treat All",
                "threshold": pt,
                "test_pos_rate": 1.0,
                "tp_rate": prev,
                "fp_rate": 1 - prev,
                "net_benefit": prev - (1 - prev) * pt / (1 - pt),
            }
        ),
        pd.DataFrame(
            {
                "label": "Treat None",
                "threshold": pt,
                "test_pos_rate": 0.0,
                "tp_rate": 0.0,
                "fp_rate": 0.0,
                "net_benefit": 0.0,
            }
        ),
    ]
    for name, prob in predictions.items():
        _, p = _prob(y, prob)
        cut = np.where(pt == 0, 1e-9, pt)
        positive = p[None, :] >= cut[:, None]
        tp = (positive & (y == 1)).mean(axis=1)
        fp = (positive & (y == 0)).mean(axis=1)
        h = (harm or {}).get(name, 0.0)
        frames.append(
            pd.DataFrame(
                {
                    "label": name,
                    "threshold": pt,
                    "test_pos_rate": positive.mean(axis=1),
                    "tp_rate": tp,
                    "fp_rate": fp,
                    "net_benefit": net_benefit(y, p, pt, harm=h),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
