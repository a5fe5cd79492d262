"""Operating thresholds learned from training data only, and case-level decisions from them.

A threshold for ACC/SEN/SPEC may never come from the cases it is evaluated on. In cross-validation
each outer fold learns its own threshold from its training part (:func:`training_threshold`); a case
is then called positive in a repeat when its score reaches its fold's threshold. Over repeats the
case's decision uses the mean *margin* (score − its fold's threshold), so the case-level table has one
decision per case, every one made with a threshold that never saw that case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["THRESHOLD_RULES", "LOCK_RULES", "training_threshold", "locked_threshold", "case_decisions"]

#: ``prevalence``: the share of positives in the training part (the models output probabilities on
#: the training prevalence scale, so this calls a case positive when its risk is above average).
THRESHOLD_RULES = ("prevalence",)


def training_threshold(y_train: np.ndarray, rule: str = "prevalence") -> float:
    """The probability cut-off learned from 0/1 training labels (missing labels, coded < 0, ignored)."""
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    y = np.asarray(y_train)
    y = y[y >= 0]
    if y.size == 0:
        raise ValueError("no labelled training case to learn a threshold from")
    return float(np.mean(y == 1))


#: Rules for a locked model's operating threshold (:func:`locked_threshold`); ``sensitivity:0.9`` and
#: ``specificity:0.9`` name a target.
LOCK_RULES = ("youden", "prevalence", "sensitivity:<target>", "specificity:<target>")


def locked_threshold(y_train, scores, rule: str = "youden") -> float:
    """The operating threshold of a locked model, from training labels and **out-of-fold** training
    scores (never the cases it will be applied to); a case is positive when its score ≥ threshold.

    ``youden``: maximal sensitivity + specificity (pROC's rule); ``prevalence``: the training positive
    share; ``sensitivity:T``: the highest threshold whose training sensitivity is ≥ T;
    ``specificity:T``: the lowest threshold whose training specificity is ≥ T.
    """
    from models.stats import roc_coords, youden_threshold

    y = np.asarray(y_train)
    s = np.asarray(scores, float)
    keep = (y >= 0) & np.isfinite(s)
    y, s = y[keep].astype(int), s[keep]
    if len(np.unique(y)) != 2:
        raise ValueError("a locked threshold needs both classes among the training cases")
    if rule == "youden":
        return youden_threshold(y, s, direction="<")
    if rule == "prevalence":
        return float(np.mean(y == 1))
    kind, _, value = rule.partition(":")
    if kind not in ("sensitivity", "specificity") or not value:
        raise ValueError(f"threshold rule must be one of {LOCK_RULES}, got {rule!r}")
    try:
        target = float(value)
    except ValueError:
        raise ValueError(f"threshold rule {rule!r}: the target must be a number in (0, 1]") from None
    if not 0 < target <= 1:
        raise ValueError(f"threshold rule {rule!r}: the target must be in (0, 1]")
    coords = roc_coords(y, s, direction="<")
    coords = coords[np.isfinite(coords["threshold"])]
    ok = coords[coords[kind] >= target - 1e-12]
    if ok.empty:
        raise ValueError(f"no threshold reaches {kind} {target} on the training cases")
    return float(ok["threshold"].max() if kind == "sensitivity" else ok["threshold"].min())


def case_decisions(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per case: label, mean score, mean margin over repeats and the decision (margin ≥ 0).

    ``predictions`` has one row per case × repeat with ``case_id``, ``y``, ``score`` and ``threshold``
    (the fold's training threshold).
    """
    frame = predictions.assign(margin=predictions["score"] - predictions["threshold"])
    out = frame.groupby("case_id", sort=True).agg(
        y=("y", "first"), score=("score", "mean"), margin=("margin", "mean")
    )
    out["positive"] = out["margin"] >= 0
    return out.reset_index()
