"""ComBat harmonisation of feature columns across scanners / centres, learned inside the training fold.

ComBat (Johnson et al. 2007; Fortin et al. 2018, neuroHarmonize) models each feature as
``x = α + Cβ + γ_batch + δ_batch·ε``: a location (γ) and scale (δ) effect per batch, shrunk by
empirical Bayes across features, removed while protected covariates ``C`` (e.g. age, sex) keep their
effect. :class:`ComBatHarmoniser` is a scikit-learn transformer, the first step of a model pipeline
when a table is loaded with ``batch=`` (``--harmonise COLUMN``): its batch labels travel as the column
``batch__<COLUMN>`` of ``X``, so every training fold (outer and inner) learns its own estimates and a
locked model stores them.

* A batch seen in training is adjusted with its learned estimates (``neuroHarmonize.harmonizationApply``).
* A batch **not** seen in training (a new centre in an external cohort) is estimated against the
  training reference from its own cases (at least ``min_new_batch``): standardised with the training
  grand mean, covariate effects and pooled variance, its γ and δ estimated with neuroCombat's
  empirical Bayes (``it_sol``), as a new site is added to a learned model. This reads the new batch's
  feature values, never a label. (neuroHarmonize 2.4.5's own new-site path fails on shapes; 2.5
  requires numpy < 2.)
* The label is never a protected covariate: a test case's label would be needed to harmonise it.

Features with no spread in the training fold and clinical covariates (``clin_*``) pass through
unchanged; missing values are filled with the training median for the estimation and stay missing
afterwards (imputed later in the pipeline, as without harmonisation).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "BATCH_PREFIX",
    "PROTECT_PREFIX",
    "harmoniser_columns",
    "label_batch_association",
    "ComBatHarmoniser",
    "batch_column",
    "batch_columns",
    "source_column",
]

#: Prefix of the column of ``X`` that carries the batch label (``batch__scanner``).
BATCH_PREFIX = "batch__"
#: Prefix of covariate columns whose effect ComBat protects (``cov__age``); no model reads them.
PROTECT_PREFIX = "cov__"
CLINICAL_PREFIX = "clin_"


def batch_column(column: str) -> str:
    """The ``X`` column carrying batch labels read from the table column ``column``."""
    return f"{BATCH_PREFIX}{column}"


def source_column(name: str) -> str:
    """The table column a ``batch__…`` column was read from."""
    return name.removeprefix(BATCH_PREFIX)


def batch_columns(names: Iterable[str]) -> list[str]:
    """The batch-label columns among ``names``."""
    return [n for n in names if isinstance(n, str) and n.startswith(BATCH_PREFIX)]


def harmoniser_columns(names: Iterable[str]) -> list[str]:
    """Columns only the harmoniser reads (batch labels and protected covariates)."""
    return [n for n in names if isinstance(n, str) and n.startswith((BATCH_PREFIX, PROTECT_PREFIX))]


def label_batch_association(y, batch) -> dict:
    """Does the label's prevalence differ across batches? Fisher's exact test for two batches (as R's
    ``fisher.test``), Pearson's χ² otherwise (``chisq.test``). When it does, ComBat — which cannot
    protect the label — removes part of the label's effect together with the batch effect.

    Returns ``{"test", "p", "prevalence": {batch: share positive}, "n": {batch: cases}, "warning"}``
    (``warning`` is a sentence when p < 0.05, else None).
    """
    from models import stats as st

    y = np.asarray(y).astype(int)
    batch = np.asarray(batch).astype(str)
    levels = sorted(set(batch))
    table = np.array([[np.sum((batch == b) & (y == k)) for k in (0, 1)] for b in levels])
    prevalence = {b: float(t[1] / t.sum()) for b, t in zip(levels, table, strict=True)}
    if len(levels) < 2 or (table.sum(axis=0) == 0).any():
        test, p = "none", 1.0
    elif len(levels) == 2:
        test, p = "Fisher's exact test", st.fisher_test(table).p_value
    else:
        test, p = "Pearson's chi-squared test", st.chisq_test(table, correct=False).p_value
    warning = None
    if p < 0.05:
        shown = ", ".join(f"{b} {v:.0%}" for b, v in prevalence.items())
        warning = (
            f"the label's prevalence differs across batches ({shown}; {test} p = {p:.2g}): ComBat cannot "
            "protect the label, so it removes part of the label's effect with the batch effect; report "
            "results with and without --harmonise"
        )
    return {
        "test": test,
        "p": p,
        "prevalence": prevalence,
        "n": {b: int(t.sum()) for b, t in zip(levels, table, strict=True)},
        "warning": warning,
    }


class ComBatHarmoniser(TransformerMixin, BaseEstimator):
    """ComBat location/scale harmonisation across the batches of ``batch_column`` (see the module docstring).

    Parameters
    ----------
    batch_column : str
        Column of ``X`` holding batch labels (``batch__scanner``); dropped from the output.
    protect : sequence of str
        Numeric covariate columns of ``X`` whose effect is kept (``cov__age``); dropped from the output.
    empirical_bayes : bool
        Shrink batch estimates across features (ComBat's default); off for a single feature.
    min_new_batch : int
        Fewest cases of a batch unseen in training that may be harmonised from their own values.

    Attributes
    ----------
    batches_ : list of str
        Batches learned in ``fit`` with their training case counts in ``batch_counts_``.
    harmonised_ : list of str
        Feature columns adjusted; ``passthrough_`` those left unchanged (no training spread).
    """

    def __init__(
        self,
        batch_column: str,
        protect: Sequence[str] = (),
        empirical_bayes: bool = True,
        min_new_batch: int = 5,
    ):
        self.batch_column = batch_column
        self.protect = protect
        self.empirical_bayes = empirical_bayes
        self.min_new_batch = min_new_batch

    # -- fitting -----------------------------------------------------------------------------------------
    def _columns(self, X: pd.DataFrame) -> list[str]:
        if not hasattr(X, "columns") or self.batch_column not in X.columns:
            raise ValueError(
                f"ComBatHarmoniser needs a DataFrame with the batch column {self.batch_column!r}"
            )
        skip = {self.batch_column, *self.protect}
        return [
            c
            for c in X.columns
            if c not in skip and not str(c).startswith((CLINICAL_PREFIX, BATCH_PREFIX, PROTECT_PREFIX))
        ]

    def _covariates(self, X: pd.DataFrame, batches: np.ndarray) -> pd.DataFrame:
        covars = pd.DataFrame({"SITE": batches})
        for name in self.protect:
            if name not in X.columns:
                raise ValueError(f"protected covariate {name!r} is not a column of the table")
            values = pd.to_numeric(X[name], errors="coerce").to_numpy(float)
            if np.isnan(values).any():
                raise ValueError(
                    f"protected covariate {name!r} is missing for {int(np.isnan(values).sum())} case(s); "
                    "ComBat needs it for every case (fill it or do not protect it)"
                )
            covars[name] = values
        return covars

    def fit(self, X: pd.DataFrame, y=None):
        from neuroHarmonize import harmonizationLearn

        features = self._columns(X)
        batches = X[self.batch_column].astype(str).to_numpy()
        labels, counts = np.unique(batches, return_counts=True)
        small = [f"{b!r} ({n} case)" for b, n in zip(labels, counts, strict=True) if n < 2]
        if small:
            raise ValueError(
                f"batch(es) {', '.join(small)} of {self.batch_column.removeprefix(BATCH_PREFIX)!r} have "
                "fewer than 2 training cases; ComBat cannot estimate a batch effect from one case: "
                "merge them with a similar batch or drop them"
            )
        values = X[features].to_numpy(dtype=float) if features else np.zeros((len(X), 0))
        with np.errstate(all="ignore"):
            fill = np.nan_to_num(np.nanmedian(values, axis=0), nan=0.0) if features else np.zeros(0)
            spread = np.nanstd(values, axis=0) if features else np.zeros(0)
        keep = np.isfinite(spread) & (spread > 1e-12 * np.maximum(1.0, np.abs(fill)))
        self.features_ = features
        self.harmonised_ = [f for f, k in zip(features, keep, strict=True) if k]
        self.passthrough_ = [f for f, k in zip(features, keep, strict=True) if not k]
        self.harmonised_fill_ = fill[keep]  # training medians of the adjusted features
        self.batches_ = [str(b) for b in labels]
        self.batch_counts_ = {str(b): int(n) for b, n in zip(labels, counts, strict=True)}
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        if not self.harmonised_:
            return self
        data = self._filled(values[:, keep])
        covars = self._covariates(X, batches)
        eb = bool(self.empirical_bayes) and data.shape[1] > 1
        with warnings.catch_warnings():  # neuroHarmonize uses np.matrix internally
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            model, _ = harmonizationLearn(data, covars, eb=eb, seed=0)
        self.B_hat_ = np.asarray(model["B_hat"], float)
        self.stand_mean_ = np.asarray(model["stand_mean"], float)[:, :1]
        self.var_pooled_ = np.asarray(model["var_pooled"], float)
        self.gamma_star_ = np.asarray(model["gamma_star"], float)
        self.delta_star_ = np.asarray(model["delta_star"], float)
        self.eb_ = eb
        if len(self.batches_) == 1:
            # one batch: nothing to remove from it (ComBat's unbiased δ̂ would rescale it by n/(n−1));
            # it is the reference new batches are mapped onto
            self.gamma_star_ = np.zeros_like(self.gamma_star_)
            self.delta_star_ = np.ones_like(self.delta_star_)
        return self

    def _filled(self, values: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(values), self.harmonised_fill_, values)

    # -- applying ----------------------------------------------------------------------------------------
    def _model(self) -> dict:
        """The fitted estimates as the model dict neuroHarmonize's apply reads."""
        return {
            "SITE_labels": np.asarray(self.batches_, dtype=object),
            "B_hat": self.B_hat_,
            "stand_mean": self.stand_mean_,
            "var_pooled": self.var_pooled_,
            "gamma_star": self.gamma_star_,
            "delta_star": self.delta_star_,
            "info_dict": {"ref_level": None},
            "smooth_model": {"perform_smoothing": False, "smooth_cols": []},
        }

    def new_batches(self, X: pd.DataFrame) -> dict[str, int]:
        """Batches of ``X`` not seen in training, with their case counts."""
        check_is_fitted(self, "batches_")
        values = X[self.batch_column].astype(str)
        counts = values[~values.isin(self.batches_)].value_counts()
        return {str(b): int(n) for b, n in counts.items()}

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` without the batch and protected columns, harmonised features in place (same row order)."""
        check_is_fitted(self, "batches_")
        out = X.drop(columns=[self.batch_column, *self.protect]).copy()
        if not self.harmonised_ or len(X) == 0:
            return out
        small = {b: n for b, n in self.new_batches(X).items() if n < self.min_new_batch}
        if small:
            listed = ", ".join(f"{b!r} ({n} case(s))" for b, n in small.items())
            raise ValueError(
                f"batch(es) {listed} of {source_column(self.batch_column)!r} were not in the training "
                f"data and have fewer than {self.min_new_batch} cases to estimate their batch effect "
                f"from; known batches: {self.batches_}. Score them together with more cases of the "
                "same scanner / centre"
            )
        from neuroHarmonize import harmonizationApply

        values = X[self.harmonised_].to_numpy(dtype=float)
        missing = np.isnan(values)
        data = self._filled(values)
        batches = X[self.batch_column].astype(str).to_numpy()
        covars = self._covariates(X, batches)
        adjusted = np.full_like(data, np.nan)
        known = np.isin(batches, self.batches_)
        if known.any():
            adjusted[known] = harmonizationApply(
                data[known], covars.loc[known].reset_index(drop=True), self._model()
            )
        for batch in sorted(set(batches[~known])):
            rows = batches == batch
            adjusted[rows] = self._new_batch(data[rows], covars.loc[rows].reset_index(drop=True))
        adjusted[missing] = np.nan
        out[self.harmonised_] = adjusted
        return out

    def _new_batch(self, data: np.ndarray, covars: pd.DataFrame) -> np.ndarray:
        """Harmonise the cases of one batch unseen in training against the training reference."""
        from neuroCombat.neuroCombat import aprior, bprior, it_sol

        n_batches = len(self.batches_)
        cov = covars.drop(columns="SITE").to_numpy(dtype=float)
        mod_mean = (cov @ self.B_hat_[n_batches:]).T if cov.shape[1] else 0.0  # (features, cases)
        sd = np.sqrt(self.var_pooled_)  # (features, 1)
        s = (data.T - self.stand_mean_ - mod_mean) / sd
        gamma_hat = s.mean(axis=1)
        delta_hat = s.var(axis=1, ddof=1)
        delta_hat[delta_hat == 0] = 1.0
        if self.eb_ and s.shape[0] > 1:
            gamma_star, delta_star = it_sol(
                s,
                gamma_hat,
                delta_hat,
                gamma_hat.mean(),
                gamma_hat.var(ddof=1),
                aprior(delta_hat),
                bprior(delta_hat),
            )
        else:
            gamma_star, delta_star = gamma_hat, delta_hat
        adjusted = (s - gamma_star[:, None]) / np.sqrt(delta_star)[:, None] * sd + self.stand_mean_ + mod_mean
        return adjusted.T

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_in_")
        names = self.feature_names_in_ if input_features is None else np.asarray(input_features, object)
        drop = {self.batch_column, *self.protect}
        return np.asarray([n for n in names if n not in drop], dtype=object)
