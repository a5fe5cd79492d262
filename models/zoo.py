"""Model families as scikit-learn Pipelines, each with a compact tuning grid and an Optuna search space.

No family re-weights classes: every model outputs probabilities on the scale of the training
prevalence, so out-of-fold predictions from different folds (and, in nested CV, different chosen
families) can be pooled into one AUC, and Brier score and calibration stay meaningful.

With a batch column (``batch__<column>``, a table loaded with ``batch=``), the first step is ComBat
harmonisation (:class:`models.harmonise.ComBatHarmoniser`), refitted in every training fold.

Every pipeline is ``missingness filter → median imputation → zero-variance filter → standardisation →
correlation filter (|r| > 0.9) → feature selection → model``; all steps are fitted inside the training
fold. Baselines (SUVmax alone, clinical, combined) select their columns by name first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.selection import (
    CorrelationFilter,
    KeepColumns,
    L1Selector,
    MissingnessFilter,
    ModelSelector,
    MRMRSelector,
    UnivariateSelector,
)

__all__ = [
    "Param",
    "SELECT_SPACE",
    "SUVMAX_COLUMN",
    "Family",
    "FAMILIES",
    "BASELINES",
    "PlattSVC",
    "get_family",
    "build_pipeline",
    "SELECTORS",
    "family_names",
]

SELECTORS = ("none", "anova", "mannwhitney", "mrmr", "l1", "model")
#: Prefix of clinical covariate columns (``load_dataset(clinical=[...])`` creates them).
CLINICAL_PREFIX = "clin_"


def _selector(name: str, k: int, random_state: int):
    if name == "none":
        return None
    if name in ("anova", "mannwhitney"):
        return UnivariateSelector(k=k, test=name)
    if name == "mrmr":
        return MRMRSelector(k=k)
    if name == "l1":
        return L1Selector(C=0.1, random_state=random_state)
    if name == "model":
        return ModelSelector(k=k, random_state=random_state)
    raise ValueError(f"selector must be one of {SELECTORS}, got {name!r}")


def build_pipeline(
    model,
    *,
    select: str = "anova",
    k: int = 20,
    correlation: float | None = 0.9,
    columns: list[str] | None = None,
    random_state: int = 0,
    harmonise: tuple[str, list[str]] | None = None,
) -> Pipeline:
    """The standard in-fold pipeline around ``model`` (see the module docstring); ``harmonise`` is
    ``(batch column, protected covariate columns)``."""
    steps: list[tuple[str, Any]] = []
    if harmonise is not None:
        from models.harmonise import ComBatHarmoniser

        steps.append(("harmonise", ComBatHarmoniser(harmonise[0], protect=tuple(harmonise[1]))))
    if columns:
        steps.append(("columns", KeepColumns(columns)))
    steps += [
        ("missing", MissingnessFilter(0.2)),
        ("impute", SimpleImputer(strategy="median")),
        ("variance", VarianceThreshold(0.0)),
        ("scale", StandardScaler()),
    ]
    if correlation:
        steps.append(("correlation", CorrelationFilter(correlation)))
    selector = _selector(select, k, random_state)
    if selector is not None:
        steps.append(("select", selector))
    steps.append(("model", model))
    return Pipeline(steps)


@dataclass(frozen=True)
class Param:
    """One dimension of an Optuna search space, declared as data (so it can be hashed and shown).

    ``kind`` is ``"float"``, ``"int"`` or ``"categorical"``; ``low``/``high``/``log`` for numbers,
    ``choices`` for categories.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        raise ValueError(
            f"parameter {self.name!r}: kind must be float, int or categorical, got {self.kind!r}"
        )

    def describe(self) -> dict:
        """Plain JSON data (lists, numbers, strings)."""
        out = {k: v for k, v in asdict(self).items() if v not in (None, (), False) or k == "name"}
        if "choices" in out:
            out["choices"] = list(out["choices"])
        return out


#: Feature selection dimensions shared by most families.
SELECT_SPACE = (
    Param("select", "categorical", choices=("anova", "mrmr", "none")),
    Param("k", "int", 4, 64, log=True),
)


@dataclass(frozen=True)
class Family:
    """A model family: how to build its pipeline from parameters, and where to search them.

    ``grid`` is the compact candidate list for nested CV; ``space`` the Optuna search space, declared
    as :class:`Param` data (its description, not source code, keys a study: reformatting this file does
    not break a resume). Common pipeline parameters: ``select`` (selector name), ``k`` (features
    kept), ``correlation``.
    """

    name: str
    title: str
    make_model: Callable[[dict, int], Any]
    grid: tuple[dict, ...]
    space: tuple[Param, ...]
    columns: Callable[[list[str]], list[str]] | None = None
    default: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)

    def suggest(self, trial) -> dict:
        """Parameters of one Optuna trial: the space's suggestions plus the family's fixed ones."""
        return {**self.fixed, **{p.name: p.suggest(trial) for p in self.space}}

    def describe_space(self) -> list[dict]:
        """The search space as plain data (hashed into study settings)."""
        return [p.describe() for p in self.space] + ([{"fixed": self.fixed}] if self.fixed else [])

    def build(
        self, params: dict | None, random_state: int = 0, feature_names: list[str] | None = None
    ) -> Pipeline:
        from models.harmonise import PROTECT_PREFIX, batch_columns, harmoniser_columns

        p = {**self.default, **(params or {})}
        all_names = list(feature_names or [])
        batch = batch_columns(all_names)
        if len(batch) > 1:
            raise ValueError(f"one batch column at most (--harmonise), got {batch}")
        harmonise = (batch[0], [n for n in all_names if n.startswith(PROTECT_PREFIX)]) if batch else None
        skip = set(harmoniser_columns(all_names))
        names = [n for n in all_names if n not in skip]
        columns = self.columns(names) if self.columns else None
        if self.columns is not None and not columns:
            hint = (
                "; the clinical baseline uses clin_* columns: name the clinical columns with "
                "--clinical age,sex,smoking (models.data.load_dataset(clinical=[...]))"
                if self.name in ("clinical", "combined")
                else ""
            )
            raise ValueError(f"family {self.name!r}: none of its columns are in the table{hint}")
        if self.columns is None and any(n.startswith(CLINICAL_PREFIX) for n in names):
            # A radiomics family never sees the clinical covariates (the `combined` baseline does).
            columns = [n for n in names if not n.startswith(CLINICAL_PREFIX)]
        return build_pipeline(
            self.make_model(p, random_state),
            select=p.get("select", "anova"),
            k=int(p.get("k", 20)),
            correlation=p.get("correlation", 0.9),
            columns=columns,
            random_state=random_state,
            harmonise=harmonise,
        )


def _lr(p, rs):
    from sklearn.linear_model import LogisticRegression

    l1 = float(p.get("l1_ratio", 0.0))
    solver = "liblinear" if l1 in (0.0, 1.0) else "saga"
    return LogisticRegression(C=p.get("C", 1.0), l1_ratio=l1, solver=solver, max_iter=5000, random_state=rs)


class PlattSVC(ClassifierMixin, BaseEstimator):
    """SVC whose probabilities are a monotone logistic map of its decision function (Platt 1999).

    As scikit-learn's ``SVC(probability=True)`` and ``CalibratedClassifierCV`` do, the sigmoid is fitted
    on **internal cross-validated** decision values (``cv`` stratified folds of the training data),
    never on the SVM's own training predictions, which are over-confident. The final SVM is fitted on
    all training data and the sigmoid's slope is kept positive, so the ranking (and AUC) is the SVM's
    own. No class re-weighting (the zoo's rule: probabilities on the training prevalence scale).
    """

    def __init__(self, kernel="rbf", C=1.0, gamma="scale", cv=5, random_state=None):
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.cv = cv
        self.random_state = random_state

    def _svc(self):
        from sklearn.svm import SVC

        return SVC(kernel=self.kernel, C=self.C, gamma=self.gamma, random_state=self.random_state)

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        y = np.asarray(y)
        self.svm_ = self._svc().fit(X, y)
        self.classes_ = self.svm_.classes_
        n_splits = int(min(self.cv, np.bincount(np.searchsorted(self.classes_, y)).min()))
        if n_splits >= 2:
            folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state or 0)
            d = cross_val_predict(self._svc(), X, y, cv=folds, method="decision_function")
        else:  # too few cases of a class for internal CV: the training decision values must do
            d = self.svm_.decision_function(X)
        platt = LogisticRegression(C=1.0).fit(np.asarray(d).reshape(-1, 1), y)
        self.slope_ = max(float(platt.coef_[0, 0]), 1e-6)
        self.intercept_ = float(platt.intercept_[0])
        return self

    def decision_function(self, X):
        return self.svm_.decision_function(X)

    def predict_proba(self, X):
        p = 1.0 / (1.0 + np.exp(-(self.slope_ * self.decision_function(X) + self.intercept_)))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def _svm(kernel):
    def make(p, rs):
        return PlattSVC(kernel=kernel, C=p.get("C", 1.0), gamma=p.get("gamma", "scale"), random_state=rs)

    return make


def _forest(kind: str):
    """Random forest (``"rf"``) or extra trees (``"et"``) with the shared parameters."""

    def make(p, rs):
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        cls = RandomForestClassifier if kind == "rf" else ExtraTreesClassifier
        return cls(
            n_estimators=p.get("n_estimators", 300),
            max_features=p.get("max_features", "sqrt"),
            min_samples_leaf=p.get("min_samples_leaf", 1),
            n_jobs=1,
            random_state=rs,
        )

    return make


def _xgb(p, rs):
    from xgboost import XGBClassifier

    return XGBClassifier(
        n_estimators=p.get("n_estimators", 200),
        max_depth=p.get("max_depth", 2),
        learning_rate=p.get("learning_rate", 0.05),
        subsample=p.get("subsample", 0.8),
        colsample_bytree=p.get("colsample_bytree", 0.5),
        min_child_weight=p.get("min_child_weight", 1),
        tree_method="hist",
        n_jobs=1,
        random_state=rs,
        eval_metric="logloss",
        verbosity=0,
    )


def _knn(p, rs):
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=p.get("n_neighbors", 15), weights="distance")


def _nb(p, rs):
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB(var_smoothing=p.get("var_smoothing", 1e-9))


def _lda(p, rs):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")


def _grid(base: list[dict], ks=(8, 32), all_features: bool = False) -> tuple[dict, ...]:
    """Candidates: each base setting with ANOVA top-k (after the |r| > 0.9 filter) and, optionally, with
    all features and no correlation filter."""
    grid = [{**b, "select": "anova", "k": k} for b in base for k in ks]
    if all_features:
        grid += [{**b, "select": "none", "correlation": None} for b in base]
    return tuple(grid)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "lr",
            "Logistic regression (L1/L2/elastic net)",
            _lr,
            _grid(
                [{"C": 0.1, "l1_ratio": 0.0}, {"C": 1.0, "l1_ratio": 0.0}, {"C": 1.0, "l1_ratio": 1.0}],
                ks=(16,),
                all_features=True,
            ),
            (
                *SELECT_SPACE,
                Param("C", "float", 1e-3, 10, log=True),
                Param("l1_ratio", "categorical", choices=(0.0, 0.5, 1.0)),
            ),
        ),
        Family(
            "svm_linear",
            "Linear SVM",
            _svm("linear"),
            _grid([{"C": 0.01}, {"C": 0.1}], ks=(16,), all_features=True),
            (*SELECT_SPACE, Param("C", "float", 1e-4, 1, log=True)),
        ),
        Family(
            "svm_rbf",
            "RBF SVM",
            _svm("rbf"),
            _grid([{"C": 1.0}, {"C": 10.0}], ks=(16,), all_features=True),
            (
                *SELECT_SPACE,
                Param("C", "float", 1e-2, 100, log=True),
                Param("gamma", "float", 1e-4, 1, log=True),
            ),
        ),
        Family(
            "rf",
            "Random forest",
            _forest("rf"),
            (
                {"select": "none", "correlation": None, "min_samples_leaf": 3},
                {"select": "anova", "k": 32, "min_samples_leaf": 3},
            ),
            (
                *SELECT_SPACE,
                Param("min_samples_leaf", "int", 1, 10),
                Param("max_features", "categorical", choices=("sqrt", "log2", 0.3)),
            ),
        ),
        Family(
            "et",
            "Extra trees",
            _forest("et"),
            (
                {"select": "none", "correlation": None, "min_samples_leaf": 3},
                {"select": "anova", "k": 32, "min_samples_leaf": 3},
            ),
            (*SELECT_SPACE, Param("min_samples_leaf", "int", 1, 10)),
        ),
        Family(
            "xgb",
            "XGBoost (hist)",
            _xgb,
            (
                {"select": "none", "correlation": None, "max_depth": 2},
                {"select": "anova", "k": 32, "max_depth": 3},
            ),
            (
                *SELECT_SPACE,
                Param("max_depth", "int", 1, 6),
                Param("learning_rate", "float", 0.01, 0.3, log=True),
                Param("n_estimators", "int", 50, 400, log=True),
                Param("subsample", "float", 0.5, 1.0),
                Param("colsample_bytree", "float", 0.2, 1.0),
            ),
        ),
        Family(
            "knn",
            "k-nearest neighbours",
            _knn,
            _grid([{"n_neighbors": 15}], ks=(8, 32), all_features=True),
            (*SELECT_SPACE, Param("n_neighbors", "int", 3, 40)),
        ),
        Family(
            "nb",
            "Gaussian naive Bayes",
            _nb,
            _grid([{}], ks=(4, 16)),
            (*SELECT_SPACE, Param("var_smoothing", "float", 1e-12, 1e-3, log=True)),
        ),
        Family("lda", "Shrinkage LDA", _lda, _grid([{}], ks=(8, 32), all_features=True), SELECT_SPACE),
    ]
}


def _cols(pattern: str) -> Callable[[list[str]], list[str]]:
    import re

    rx = re.compile(pattern)
    return lambda names: [n for n in names if rx.search(n)]


#: The SUVmax comparator: exactly the whole-tumour SUVmax column (never a habitat's SUVmax).
SUVMAX_COLUMN = "pet_tumour_suv_SUVmax"


def _exact(*columns: str) -> Callable[[list[str]], list[str]]:
    return lambda names: [c for c in columns if c in names]


BASELINES: dict[str, Family] = {
    "suvmax": Family(
        "suvmax",
        "SUVmax alone",
        _lr,
        ({"select": "none", "C": 1e6},),
        (),
        fixed={"select": "none"},
        columns=_exact(SUVMAX_COLUMN),
        default={"correlation": None},
    ),
    "clinical": Family(
        "clinical",
        "Clinical model",
        _lr,
        ({"select": "none", "C": 1.0},),
        (),
        fixed={"select": "none"},
        columns=_cols(r"^clin_"),
        default={"correlation": None},
    ),
    "combined": Family(
        "combined",
        "Clinical + SUVmax + radiomics",
        _lr,
        ({"select": "anova", "k": 8, "C": 0.5},),
        SELECT_SPACE,
        columns=_cols(r"^(clin_|ct_|pet_)"),
        default={},
    ),
}


def family_names() -> list[str]:
    return [*FAMILIES, *BASELINES]


def get_family(name: str) -> Family:
    if name in FAMILIES:
        return FAMILIES[name]
    if name in BASELINES:
        return BASELINES[name]
    raise ValueError(f"unknown model family {name!r}; choose from {family_names()}")


def predict_scores(pipeline: Pipeline, X) -> np.ndarray:
    """Probability of the positive class."""
    return pipeline.predict_proba(X)[:, 1]
