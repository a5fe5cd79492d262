"""Threshold metrics with binomial CIs, the Youden cut-off and the training-median cut-off."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from models.stats._roc import resolve_direction, roc_coords

__all__ = ["ThresholdMetrics", "threshold_metrics", "youden_threshold", "median_threshold"]

_CI_METHODS = {"wilson": "wilson", "clopper-pearson": "beta", "exact": "beta"}


@dataclass(frozen=True)
class ThresholdMetrics:
    """Sensitivity, specificity, accuracy, PPV and NPV at one cut-off, each with a CI.

    ``table`` has one row per metric with columns estimate, ci_lower, ci_upper, successes, trials.
    """

    threshold: float
    direction: str
    ci_method: str
    table: pd.DataFrame

    def __getitem__(self, metric: str) -> float:
        return float(self.table.loc[metric, "estimate"])


def threshold_metrics(
    y_true,
    y_score,
    threshold: float,
    *,
    direction: str = "<",
    ci_method: str = "wilson",
    conf_level: float = 0.95,
) -> ThresholdMetrics:
    """Confusion-matrix metrics at ``threshold`` (pROC rule: positive iff score >= t for ``"<"``).

    Parameters
    ----------
    ci_method : {"wilson", "clopper-pearson"}, default="wilson"
    """
    if ci_method not in _CI_METHODS:
        raise ValueError(f"ci_method must be one of {sorted(_CI_METHODS)}, got {ci_method!r}")
    direction = resolve_direction(y_true, y_score, direction)
    row = roc_coords(y_true, y_score, direction=direction, thresholds=np.array([threshold])).iloc[0]
    tp, fp, tn, fn = (int(row[k]) for k in ("tp", "fp", "tn", "fn"))
    counts = {
        "sensitivity": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "accuracy": (tp + tn, tp + tn + fp + fn),
        "ppv": (tp, tp + fp),
        "npv": (tn, tn + fn),
    }
    rows = {}
    for name, (k, n) in counts.items():
        if n == 0:
            rows[name] = (np.nan, np.nan, np.nan, k, n)
            continue
        lo, hi = proportion_confint(k, n, alpha=1 - conf_level, method=_CI_METHODS[ci_method])
        rows[name] = (k / n, float(lo), float(hi), k, n)
    table = pd.DataFrame.from_dict(
        rows, orient="index", columns=["estimate", "ci_lower", "ci_upper", "successes", "trials"]
    )
    return ThresholdMetrics(float(threshold), direction, ci_method, table)


def youden_threshold(y_true, y_score, *, direction: str = "<") -> float:
    """The cut-off maximising sensitivity + specificity (pROC ``coords(best, method="youden")``).

    Ties: the lowest such threshold, as pROC reports the first.
    """
    coords = roc_coords(y_true, y_score, direction=direction)
    finite = coords[np.isfinite(coords["threshold"])]
    return float(finite.loc[finite["youden"].idxmax(), "threshold"])


def median_threshold(train_scores) -> float:
    """The median of the training scores, a cut-off fixed before looking at the test set."""
    return float(np.median(np.asarray(train_scores, dtype=float)))
