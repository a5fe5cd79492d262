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

__all__ = ["THRESHOLD_RULES", "training_threshold", "case_decisions"]

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
