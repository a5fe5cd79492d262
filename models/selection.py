"""In-fold feature selection transformers (scikit-learn API; fitted on training folds only).

Each keeps pandas column names through ``get_feature_names_out`` so a selected radiomics signature
stays readable. Pure scoring functions are separate from the estimators, as in scikit-learn.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_selection import SelectorMixin, f_classif
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "MissingnessFilter",
    "CorrelationFilter",
    "UnivariateSelector",
    "MRMRSelector",
    "L1Selector",
    "ModelSelector",
    "KeepColumns",
    "mann_whitney_scores",
    "mrmr_order",
]


class _Selector(SelectorMixin, BaseEstimator):
    """Base: subclasses set ``support_`` in ``fit``."""

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


class MissingnessFilter(_Selector):
    """Drop features with more than ``max_missing`` (fraction) missing values in the training fold."""

    def __init__(self, max_missing: float = 0.2):
        self.max_missing = max_missing

    def fit(self, X, y=None):
        X = validate_data(self, X, ensure_all_finite="allow-nan")
        self.missing_fraction_ = np.isnan(X).mean(axis=0)
        self.support_ = self.missing_fraction_ <= self.max_missing
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class CorrelationFilter(_Selector):
    """Drop one of every pair of features with |Pearson r| > ``threshold`` (fitted on the training fold).

    Features are visited in order of decreasing variance-normalised relevance (|t| of the class
    difference when ``y`` is given, else their order); a feature is kept when it is not too correlated
    with any feature already kept.
    """

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold

    def fit(self, X, y=None):
        X = validate_data(self, X)
        n_features = X.shape[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.abs(np.corrcoef(X, rowvar=False))
        corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
        if y is not None and len(np.unique(y)) == 2:
            score, _ = f_classif(X, y)
            order = np.argsort(-np.nan_to_num(score, nan=-1.0), kind="stable")
        else:
            order = np.arange(n_features)
        keep: list[int] = []
        for j in order:
            if not keep or corr[j, keep].max() <= self.threshold:
                keep.append(j)
        self.support_ = np.zeros(n_features, bool)
        self.support_[keep] = True
        return self


def mann_whitney_scores(X, y) -> tuple[np.ndarray, np.ndarray]:
    """|AUC − 0.5| of each feature (the Mann–Whitney effect size) and two-sided p-values."""
    X, y = np.asarray(X, float), np.asarray(y)
    res = stats.mannwhitneyu(X[y == 1], X[y == 0], axis=0)
    auc = res.statistic / ((y == 1).sum() * (y == 0).sum())
    return np.abs(auc - 0.5), res.pvalue


class UnivariateSelector(_Selector):
    """Keep the ``k`` features with the best univariate score: ``"anova"`` (F test) or ``"mannwhitney"``."""

    def __init__(self, k: int = 20, test: str = "anova"):
        self.k = k
        self.test = test

    def fit(self, X, y):
        X, y = validate_data(self, X, y)
        if self.test == "anova":
            score, _ = f_classif(X, y)
        elif self.test == "mannwhitney":
            score, _ = mann_whitney_scores(X, y)
        else:
            raise ValueError(f"test must be 'anova' or 'mannwhitney', got {self.test!r}")
        self.scores_ = np.nan_to_num(score, nan=0.0)
        k = min(self.k, X.shape[1])
        top = np.argsort(-self.scores_, kind="stable")[:k]
        self.support_ = np.zeros(X.shape[1], bool)
        self.support_[top] = True
        return self


def mrmr_order(X: np.ndarray, y: np.ndarray, k: int) -> list[int]:
    """Greedy mRMR (F-statistic relevance / mean |r| redundancy, the "FCQ" variant; Ding & Peng 2005)."""
    relevance = np.nan_to_num(f_classif(X, y)[0], nan=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.abs(np.corrcoef(X, rowvar=False)), nan=0.0)
    corr = np.atleast_2d(corr)
    chosen = [int(np.argmax(relevance))]
    candidates = set(range(X.shape[1])) - set(chosen)
    while len(chosen) < min(k, X.shape[1]) and candidates:
        idx = np.array(sorted(candidates))
        redundancy = corr[np.ix_(idx, chosen)].mean(axis=1)
        score = relevance[idx] / np.maximum(redundancy, 1e-3)
        best = int(idx[np.argmax(score)])
        chosen.append(best)
        candidates.remove(best)
    return chosen


class MRMRSelector(_Selector):
    """Minimum-redundancy maximum-relevance selection of ``k`` features."""

    def __init__(self, k: int = 20):
        self.k = k

    def fit(self, X, y):
        X, y = validate_data(self, X, y)
        self.order_ = mrmr_order(X, y, self.k)
        self.support_ = np.zeros(X.shape[1], bool)
        self.support_[self.order_] = True
        return self


class L1Selector(_Selector):
    """Features with a non-zero coefficient in an L1 logistic regression (inverse strength ``C``);
    falls back to the single largest |coefficient| … or the best ANOVA feature when none survives.
    """

    def __init__(self, C: float = 0.1, random_state: int | None = 0):
        self.C = C
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression

        X, y = validate_data(self, X, y)
        model = LogisticRegression(
            l1_ratio=1.0,
            solver="liblinear",
            C=self.C,
            random_state=self.random_state,
            class_weight="balanced",
        )
        model.fit(X, y)
        coef = np.abs(model.coef_.ravel())
        self.support_ = coef > 0
        if not self.support_.any():
            self.support_[int(np.argmax(np.nan_to_num(f_classif(X, y)[0], nan=0.0)))] = True
        return self


class ModelSelector(_Selector):
    """The ``k`` features with the largest impurity importance in an extra-trees forest (seeded)."""

    def __init__(self, k: int = 20, n_estimators: int = 200, random_state: int | None = 0):
        self.k = k
        self.n_estimators = n_estimators
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.ensemble import ExtraTreesClassifier

        X, y = validate_data(self, X, y)
        forest = ExtraTreesClassifier(
            n_estimators=self.n_estimators, random_state=self.random_state, n_jobs=1
        )
        self.importances_ = forest.fit(X, y).feature_importances_
        top = np.argsort(-self.importances_, kind="stable")[: min(self.k, X.shape[1])]
        self.support_ = np.zeros(X.shape[1], bool)
        self.support_[top] = True
        return self


class KeepColumns(TransformerMixin, BaseEstimator):
    """Keep a fixed list of named columns (e.g. features that passed an ICC stability filter)."""

    def __init__(self, columns=None):
        self.columns = columns

    def fit(self, X, y=None):
        if not hasattr(X, "columns"):
            raise TypeError("KeepColumns needs a DataFrame with named columns")
        missing = [c for c in (self.columns or []) if c not in X.columns]
        if missing:
            raise ValueError(f"columns not in the table: {missing[:5]}")
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X):
        check_is_fitted(self, "feature_names_in_")
        return X[list(self.columns)]

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.columns, dtype=object)
