"""One results-table row per model, the same for the classical benchmark and the fusion network.

:func:`result_row` gives, on case-level predictions, the AUC with its DeLong 95 % CI,
ACC/SEN/SPEC/PPV/NPV with Wilson CIs at thresholds learned on training data (the case's ``margin`` to
its folds' training thresholds, :mod:`models.thresholds`), the Brier score and the paired DeLong test
against a reference model declared in advance. :func:`holm` and :func:`benjamini_hochberg` adjust a
family of p-values; :func:`format_p` prints one in a report.
"""

from __future__ import annotations

import numpy as np

from models import stats

__all__ = ["result_row", "holm", "benjamini_hochberg", "format_p", "METRICS"]

#: Threshold metrics reported (each with a Wilson 95 % CI).
METRICS = ("accuracy", "sensitivity", "specificity", "ppv", "npv")


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (statsmodels' ``multipletests``); NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q), as R's ``p.adjust(p, "BH")``."""
    from scipy import stats as sps

    return sps.false_discovery_control(np.asarray(p_values, float), method="bh")


def format_p(p) -> str:
    """A p-value as a report prints it: ``<0.001``, three decimals, or ``—`` when missing."""
    if p is None or not np.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def result_row(y, score, margin=None, reference_score=None) -> dict[str, float]:
    """Metrics of one model on case-level predictions.

    Parameters
    ----------
    y : array-like of shape (n_cases,)
        0/1 labels.
    score : array-like of shape (n_cases,)
        The model's score (probability of the positive class when it is one).
    margin : array-like of shape (n_cases,), optional
        Score minus the case's training-derived threshold (mean over repeats); the case is called
        positive when it is ≥ 0. Without it the threshold metrics are NaN (never computed from the
        evaluated cases' own prevalence).
    reference_score : array-like of shape (n_cases,), optional
        The declared comparator's scores on the same cases: adds the paired DeLong p-value.
    """
    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    auc = stats.roc_auc(y, score, direction="<")
    row: dict[str, float] = {
        "n": int(len(y)),
        "auc": auc.auc,
        "auc_ci_low": auc.ci_lower,
        "auc_ci_high": auc.ci_upper,
    }
    if margin is not None and not np.isnan(np.asarray(margin, float)).any():
        tm = stats.threshold_metrics(y, np.asarray(margin, float), 0.0, direction="<")
        for metric in METRICS:
            row[metric] = float(tm[metric])
            row[f"{metric}_ci_low"] = float(tm.table.loc[metric, "ci_lower"])
            row[f"{metric}_ci_high"] = float(tm.table.loc[metric, "ci_upper"])
    else:
        for metric in METRICS:
            row[metric] = row[f"{metric}_ci_low"] = row[f"{metric}_ci_high"] = np.nan
    in_unit = score.min() >= 0 and score.max() <= 1
    row["brier"] = stats.brier_score(y, score) if in_unit else np.nan
    row["p_vs_reference"] = np.nan
    if reference_score is not None:
        try:
            row["p_vs_reference"] = stats.delong_test(y, np.asarray(reference_score, float), score).p_value
        except ValueError:  # identical or degenerate predictions
            pass
    return row
