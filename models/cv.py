"""Honest cross-validation: repeated stratified k-fold and nested CV with out-of-fold predictions.

Nested CV runs one task per outer fold: every candidate (family, parameters) is scored by a repeated
inner stratified k-fold **on the outer training part only**; each family's best candidate is refitted
on the outer training part and predicts the outer test part. Two automatic choices use the inner CV
only:

* ``auto``: a combination of the benchmarked radiomics families with convex weights learned on the
  families' **inner** out-of-fold predictions by ``auto_rule`` (:mod:`models.ensemble`; default
  ``guarded_vote``: the LR + XGBoost vote, a member replaced by the inner-best family only on
  significant evidence; Super Learner rules ``nnls``, ``nnloglik``, ``hill_climb`` on request),
  applied to their outer-test predictions, without any outer test case being seen;
* ``auto_select``: one family per outer fold by :func:`choose_family` (simplest family not
  significantly worse than the inner-CV best).

On small radiomics tables a hard per-fold family choice is fragile (the inner winner is often the
model that fits that training split best, not the one that generalises) and collapses to one family;
the stacked combination does not bet on one noisy choice. Both are reported. Nothing from an outer
test fold is seen before its prediction. Outer folds run in parallel (joblib) and are cached, so a
rerun resumes.

Grouped data (several rows per patient) use group-aware splits at both levels.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from models.data import Dataset
from models.zoo import FAMILIES, get_family, predict_scores
from radfeat.utils.versions import library_versions

__all__ = [
    "CVConfig",
    "CVResult",
    "outer_splits",
    "cross_validate",
    "inner_cv_auc",
    "choose_family",
    "AUTO",
    "AUTO_SELECT",
]

AUTO = "auto"
AUTO_SELECT = "auto_select"
#: Bumped when what a cached fold holds changes (2: per-fold training thresholds; 3: ``auto`` only
#: when all its members were benchmarked; 4: ``auto`` stacked on inner out-of-fold predictions, which
#: each fold now keeps).
CACHE_PROTOCOL = 4


@dataclass(frozen=True)
class CVConfig:
    """Outer ``n_splits`` × ``n_repeats`` stratified folds; ``inner_splits`` × ``inner_repeats`` for tuning
    (nested). Repeating the inner CV steadies the choice on small tables (few positives per fold)."""

    n_splits: int = 5
    n_repeats: int = 10
    inner_splits: int = 5
    inner_repeats: int = 2
    nested: bool = True
    random_state: int = 0
    n_jobs: int = 1
    auto_rule: str = "guarded_vote"

    @classmethod
    def parse(cls, text: str, **kwargs) -> CVConfig:
        """``"5x10"`` → 5 folds × 10 repeats."""
        folds, repeats = parse_folds(text)
        return cls(n_splits=folds, n_repeats=repeats, **kwargs)


def parse_folds(text: str, option: str = "--cv") -> tuple[int, int]:
    """``"5x10"`` → ``(5, 10)`` (folds, repeats); anything else is refused naming ``option``."""
    try:
        folds, repeats = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{option} must look like 5x10 (folds x repeats), got {text!r}") from None
    return folds, repeats


def _splitter(n_splits: int, seed: int, grouped: bool):
    if grouped:
        return StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def split_strata(X: pd.DataFrame, y: np.ndarray, n_splits: int) -> np.ndarray:
    """What the folds stratify on: the label, and label × batch when ``X`` carries a batch column
    (``--harmonise``), so every training fold holds every batch in proportion and ComBat can learn
    it. Label × batch cells with fewer than ``n_splits`` cases are pooled per label."""
    from models.harmonise import batch_columns

    y = np.asarray(y)
    batch = batch_columns(getattr(X, "columns", []))
    if not batch:
        return y
    return pooled_strata(y, X[batch[0]].astype(str).to_numpy(), n_splits=n_splits)


def pooled_strata(first, *others, n_splits: int) -> np.ndarray:
    """Stratification cells ``first|other|…`` (e.g. label × batch, or the labels of several tasks);
    cells with fewer than ``n_splits`` cases are pooled by ``first`` (``first|*``)."""
    first = np.asarray(first).astype(str)
    cells = first
    for other in others:
        cells = np.char.add(np.char.add(cells, "|"), np.asarray(other).astype(str))
    values, counts = np.unique(cells, return_counts=True)
    small = np.isin(cells, values[counts < n_splits])
    return np.where(small, np.char.add(first, "|*"), cells)


def outer_splits(data: Dataset, n_splits: int, n_repeats: int, random_state: int = 0):
    """(repeat, fold, train_idx, test_idx) for every outer fold; repeat r uses seed random_state + r.
    Stratified on the label (and batch when harmonising, :func:`split_strata`)."""
    out = []
    strata = split_strata(data.X, data.y, n_splits)
    for r in range(n_repeats):
        splitter = _splitter(n_splits, random_state + r, data.groups is not None)
        for f, (tr, te) in enumerate(splitter.split(data.X, strata, data.groups)):
            out.append((r, f, tr, te))
    return out


def inner_cv_auc(
    family: str,
    params: dict,
    X: pd.DataFrame,
    y: np.ndarray,
    groups,
    n_splits: int,
    seed: int,
    report: Callable[[int, float], None] | None = None,
    n_repeats: int = 1,
    return_oof: bool = False,
) -> float | tuple[float, np.ndarray]:
    """Inner-CV AUC of a candidate: out-of-fold predictions pooled over each of ``n_repeats`` inner
    stratified k-folds (the outer protocol's statistic), averaged over the repeats.

    Pooling matters on small tables: an inner test fold may hold only 3 positives, so per-fold AUCs
    are too noisy to choose between candidates. ``report(step, value)`` is called after each fold with
    the mean AUC of the folds so far (an intermediate value for Optuna pruning). With ``return_oof``
    also returns the out-of-fold scores averaged over the repeats.
    """
    fam = get_family(family)
    step, fold_aucs, repeat_aucs, oofs = 0, [], [], []
    strata = split_strata(X, y, n_splits)
    for r in range(n_repeats):
        oof = np.full(len(y), np.nan)
        for tr, te in _splitter(n_splits, seed + 7919 * r, groups is not None).split(X, strata, groups):
            pipe = fam.build(params, seed, list(X.columns))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipe.fit(X.iloc[tr], y[tr])
                oof[te] = predict_scores(pipe, X.iloc[te])
            if len(np.unique(y[te])) == 2:
                fold_aucs.append(roc_auc_score(y[te], oof[te]))
            if report is not None:
                report(step, float(np.mean(fold_aucs)) if fold_aucs else 0.5)
            step += 1
        repeat_aucs.append(roc_auc_score(y, oof))
        oofs.append(oof)
    if return_oof:
        return float(np.mean(repeat_aucs)), np.mean(oofs, axis=0)
    return float(np.mean(repeat_aucs))


#: z of the paired DeLong difference a more complex family must reach to be preferred
#: (one-sided α = 0.05).
MARGIN_Z = 1.645
#: Simplest first: the rule prefers earlier families on near-ties.
COMPLEXITY = (
    "lr",
    "lda",
    "nb",
    "svm_linear",
    "knn",
    "svm_rbf",
    "rf",
    "et",
    "xgb",
    "suvmax",
    "clinical",
    "combined",
)


def _complexity(name: str) -> int:
    return COMPLEXITY.index(name) if name in COMPLEXITY else len(COMPLEXITY)


#: Families the stacked ``auto`` may combine (the radiomics families; never a baseline comparator).
STACKABLE = frozenset(FAMILIES)


def choose_family(inner_auc: dict[str, float], oof: dict[str, np.ndarray], y: np.ndarray) -> str:
    """Simplest family not clearly worse than the inner-CV best (a one-standard-error-style rule,
    Breiman et al. 1984, with the paired DeLong test on AUC).

    The candidate with the best inner AUC is compared with each simpler family (order
    :data:`COMPLEXITY`) by a paired DeLong test on the same inner out-of-fold predictions; the simplest
    family with z < :data:`MARGIN_Z` (not significantly worse, one-sided 5 %) is chosen. On small tables
    near-equal candidates swap places by chance, and the inner winner tends to be the one that fits the
    particular training split best; this rule keeps the steadier, simpler model unless the more
    complex one is clearly better.
    """
    from models.stats import delong_test

    best = max(inner_auc, key=lambda n: inner_auc[n])
    rank = {n: _complexity(n) for n in inner_auc}
    for name in sorted(inner_auc, key=lambda n: rank[n]):
        if name == best:
            return best
        try:
            z = delong_test(y, oof[best], oof[name]).statistic
        except ValueError:
            continue
        if z < MARGIN_Z:
            return name
    return best


def _candidates(families: Sequence[str], nested: bool) -> list[tuple[str, dict]]:
    out = []
    for name in families:
        fam = get_family(name)
        grid = fam.grid if nested else fam.grid[:1]
        out += [(name, dict(p)) for p in grid]
    return out


@dataclass
class TunedFamilies:
    """What the inner CV chose on one training set: per family ``best`` (inner AUC, parameters), the
    inner out-of-fold scores of each best candidate, the ``auto_select`` family and the stacked
    ``auto`` weights (``None`` when not applicable), the whole candidate record and the seed."""

    best: dict[str, tuple[float, dict]]
    oof: dict[str, np.ndarray]
    chosen: str | None
    weights: dict[str, float] | None
    inner: list[dict]
    seed: int


def tune_families(
    Xtr: pd.DataFrame,
    ytr: np.ndarray,
    gtr: np.ndarray | None,
    families: Sequence[str],
    config: CVConfig,
    seed: int,
    tuner: Callable | None = None,
) -> TunedFamilies:
    """Tune every family on one training set by inner CV (grid or ``tuner``) and learn the automatic
    choices (``auto_select`` family, stacked ``auto`` weights) from the inner out-of-fold predictions.

    The same function serves each outer fold of :func:`cross_validate` and the final fit on a whole
    training cohort (:func:`models.lifecycle.fit_locked`): only the rows passed in are ever used.
    """
    families = list(families)
    record: list[dict] = []
    best: dict[str, tuple[float, dict]] = {}
    oof: dict[str, np.ndarray] = {}

    def inner(name: str, params: dict) -> tuple[float, np.ndarray]:
        return inner_cv_auc(
            name,
            params,
            Xtr,
            ytr,
            gtr,
            config.inner_splits,
            seed,
            n_repeats=config.inner_repeats,
            return_oof=True,
        )

    if config.nested and tuner is not None:
        for name in families:
            params, score = tuner(name, Xtr, ytr, gtr, seed)
            record.append({"family": name, "params": params, "inner_auc": score})
            best[name] = (score, params)
            if name in STACKABLE:  # the stacked `auto` needs the tuned candidate's inner predictions
                _, oof[name] = inner(name, params)
    elif config.nested:
        for name, params in _candidates(families, True):
            score, scores = inner(name, params)
            record.append({"family": name, "params": params, "inner_auc": score})
            if name not in best or score > best[name][0]:
                best[name] = (score, params)
                oof[name] = scores
    else:
        for name, params in _candidates(families, False):
            best[name] = (float("nan"), params)
    chosen, weights = None, None
    if config.nested and len(best) > 1:
        scores_by_family = {n: s for n, (s, _) in best.items()}
        if all(n in oof for n in best):
            chosen = choose_family(scores_by_family, oof, ytr)
        else:  # an external tuner gave no inner predictions of a baseline: plain best inner AUC
            chosen = max(best, key=lambda n: (best[n][0], -families.index(n)))
        stack = [n for n in sorted(oof, key=_complexity) if n in STACKABLE]
        if len(stack) >= 2:  # the stacked combination only over two or more radiomics families
            from models.ensemble import stacking_weights

            weights = stacking_weights({n: oof[n] for n in stack}, ytr, config.auto_rule)
    return TunedFamilies(best, oof, chosen, weights, record, seed)


def fit_tuned(tuned: TunedFamilies, Xtr: pd.DataFrame, ytr: np.ndarray) -> dict:
    """Each family's best candidate refitted on the whole training set: ``{family: Pipeline}``."""
    pipes = {}
    for name, (_, params) in tuned.best.items():
        pipe = get_family(name).build(params, tuned.seed, list(Xtr.columns))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(Xtr, ytr)
        pipes[name] = pipe
    return pipes


def _fold_task(
    data: Dataset,
    families: list[str],
    config: CVConfig,
    repeat: int,
    fold: int,
    train: np.ndarray,
    test: np.ndarray,
    tuner: Callable | None,
    fold_features: Callable | None = None,
    column_filter: Callable | None = None,
) -> dict:
    from radfeat.utils.threads import thread_caps

    thread_caps(1)
    X = data.X
    fitted_on = None
    if fold_features is not None:
        # Fold-learned features (e.g. habitats): fitted on this outer training part only.
        extra = fold_features(data.ids[train], np.concatenate([data.ids[train], data.ids[test]]))
        extra = extra.reindex(data.ids).reset_index(drop=True)
        X = pd.concat([data.X.reset_index(drop=True), extra], axis=1)
        fitted_on = getattr(fold_features, "fitted_on", [None])[-1]
    kept = None
    if column_filter is not None:  # e.g. robust features: chosen on this outer training part only
        from models.robustness import select_columns

        kept = column_filter(data.ids[train])
        X = select_columns(X, kept)
    Xtr, ytr = X.iloc[train].reset_index(drop=True), data.y[train]
    gtr = None if data.groups is None else data.groups[train]
    seed = config.random_state + 1000 * repeat + fold
    tuned = tune_families(Xtr, ytr, gtr, families, config, seed, tuner)
    predictions = {}
    for name, pipe in fit_tuned(tuned, Xtr, ytr).items():
        predictions[name] = predict_scores(pipe, X.iloc[test]).tolist()
    if tuned.chosen is not None:
        predictions[AUTO_SELECT] = predictions[tuned.chosen]
    if tuned.weights is not None:
        from models.ensemble import combine

        predictions[AUTO] = combine(predictions, tuned.weights).tolist()
    best, oof, chosen, weights, inner = tuned.best, tuned.oof, tuned.chosen, tuned.weights, tuned.inner
    from models.thresholds import training_threshold

    return {
        "repeat": repeat,
        "fold": fold,
        "threshold": training_threshold(ytr),  # learned from this fold's training part only
        "test_ids": data.ids[test].tolist(),
        "y": data.y[test].tolist(),
        "predictions": predictions,
        "params": {n: p for n, (_, p) in best.items()},
        "inner_auc": {n: s for n, (s, _) in best.items()},
        "auto_family": chosen,
        "auto_weights": weights,
        "inner": inner,
        "train_ids": data.ids[train].tolist(),
        "train_y": data.y[train].tolist(),
        "auto_rule": config.auto_rule,
        "inner_oof": {n: np.asarray(v).tolist() for n, v in oof.items()},
        "fold_features_fitted_on": fitted_on,
        "kept_columns": None if kept is None else len(kept),
    }


@dataclass
class CVResult:
    """Out-of-fold predictions (one row per case × repeat × family) and the tuning record."""

    predictions: pd.DataFrame
    folds: list[dict]
    config: CVConfig
    dataset: str
    label: str
    feature_names: list[str] = field(default_factory=list)
    positive: str = "1"

    def auc_per_repeat(self) -> pd.DataFrame:
        """AUC pooled over the outer test folds of each repeat (rows: repeat, columns: family)."""
        rows = []
        for (family, repeat), part in self.predictions.groupby(["family", "repeat"]):
            if part["y"].nunique() == 2:
                rows.append(
                    {"family": family, "repeat": repeat, "auc": roc_auc_score(part["y"], part["score"])}
                )
        return pd.DataFrame(rows).pivot(index="repeat", columns="family", values="auc")

    def summary(self) -> pd.DataFrame:
        """Mean and SD over repeats of the pooled AUC, per family (best first)."""
        per = self.auc_per_repeat()
        table = pd.DataFrame({"mean_auc": per.mean(), "sd_auc": per.std(ddof=1), "n_repeats": per.count()})
        return table.sort_values("mean_auc", ascending=False)

    def case_scores(self, family: str) -> pd.DataFrame:
        """Per case: out-of-fold score averaged over repeats (for DeLong CIs and figures), mean margin
        to the folds' training thresholds and the decision (:func:`models.thresholds.case_decisions`)."""
        from models.thresholds import case_decisions

        return case_decisions(self.predictions[self.predictions["family"] == family])

    def auto_weights(self) -> pd.Series:
        """Mean weight of each family in the stacked ``auto`` over the outer folds (sums to 1)."""
        rows = [f["auto_weights"] for f in self.folds if f.get("auto_weights")]
        if not rows:
            return pd.Series(dtype=float)
        return pd.DataFrame(rows).fillna(0.0).mean().sort_values(ascending=False)

    def auto_choices(self) -> pd.Series:
        """How often each family was the ``auto_select`` choice over the outer folds."""
        return pd.Series([f["auto_family"] for f in self.folds]).value_counts()


def _key(
    data: Dataset, families, config: CVConfig, repeat: int, fold: int, tuner_name: str, fold_key: str = ""
) -> str:
    payload = json.dumps(
        {
            "data": data.fingerprint(),
            "families": list(families),
            "grids": {f: [dict(p) for p in get_family(f).grid] for f in families},
            # the `auto` rule is applied to the cached inner predictions on loading (restack): no refit
            "config": {k: v for k, v in asdict(config).items() if k not in ("n_jobs", "auto_rule")},
            "repeat": repeat,
            "fold": fold,
            "tuner": tuner_name,
            "protocol": CACHE_PROTOCOL,
            "libraries": library_versions("radfeat", "scikit-learn", "xgboost", "numpy", "scipy"),
            **({"fold_features": fold_key} if fold_key else {}),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def restack(fold: dict, rule: str) -> dict:
    """A fold result with ``auto`` recombined by ``rule`` from its stored inner out-of-fold and outer
    predictions (changing the rule never refits a model)."""
    from models.ensemble import combine, stacking_weights

    oof = fold.get("inner_oof") or {}
    stack = [n for n in sorted(oof, key=_complexity) if n in STACKABLE]
    if len(stack) < 2 or fold.get("auto_rule") == rule:
        return fold
    y_train = fold.get("train_y")
    if y_train is None:
        return fold
    weights = stacking_weights({n: oof[n] for n in stack}, y_train, rule)
    predictions = {**fold["predictions"], AUTO: combine(fold["predictions"], weights).tolist()}
    return {**fold, "predictions": predictions, "auto_weights": weights, "auto_rule": rule}


def cross_validate(
    data: Dataset,
    families: Sequence[str],
    config: CVConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    tuner: Callable | None = None,
    tuner_name: str = "grid",
    progress: Callable[[dict], None] | None = None,
    fold_features: Callable | None = None,
    column_filter: Callable | None = None,
) -> CVResult:
    """Repeated (and, by default, nested) stratified CV of several model families on one table.

    Parameters
    ----------
    families : sequence of str
        Names from :data:`models.zoo.FAMILIES` / :data:`models.zoo.BASELINES`.
    config : CVConfig
        Folds, repeats, inner folds, nested or not, seed, parallel jobs.
    cache_dir : path, optional
        One JSON per finished outer fold; a rerun with the same data and settings resumes.
    tuner : callable, optional
        ``tuner(family, X, y, groups, seed) -> (params, inner_auc)`` replacing the grid (e.g. Optuna).
    fold_features : callable, optional
        ``fold_features(train_ids, case_ids) -> DataFrame`` of features learned on the outer training
        part (e.g. :class:`models.fold_features.HabitatFoldFeatures`), joined to X in every fold.
    column_filter : callable, optional
        ``column_filter(train_ids) -> [feature columns to keep]`` learned on the outer training part
        (e.g. :class:`models.robustness.FoldStableFeatures`); needs a ``cache_key()`` too.
    """
    from joblib import Parallel, delayed

    config = config or CVConfig()
    if tuner is not None and tuner_name == "grid":
        tuner_name = getattr(tuner, "name", type(tuner).__name__)
    families = list(families)
    for name in families:
        get_family(name)
    if len(np.unique(data.y)) != 2:
        raise ValueError("cross-validation needs both classes in the label")
    from models.leakage import check_habitat_columns, drop_habitat_columns

    if fold_features is None:
        check_habitat_columns(data.X.columns, data.ids, data.provenance)
    else:
        # The table's own habitat columns were learned outside the folds: the fold-wise ones replace them.
        data = drop_habitat_columns(data, "habitat column of the table; refitted in every fold")
    splits = outer_splits(data, config.n_splits, config.n_repeats, config.random_state)
    cache = Path(cache_dir) if cache_dir else None
    results: dict[tuple[int, int], dict] = {}
    todo = []
    fold_key = ""
    if fold_features is not None:
        if not callable(getattr(fold_features, "cache_key", None)):
            raise TypeError(
                "fold_features must have a cache_key() method giving a content hash of its inputs and "
                "settings (see models.fold_features.HabitatFoldFeatures)"
            )
        fold_key = str(fold_features.cache_key())
    if column_filter is not None:
        fold_key += "|filter:" + str(column_filter.cache_key())
    for r, f, tr, te in splits:
        key = _key(data, families, config, r, f, tuner_name, fold_key)
        path = cache / f"fold_r{r}_f{f}_{key}.json" if cache else None
        if path is not None and path.exists():
            results[(r, f)] = restack(json.loads(path.read_text()), config.auto_rule)
            if progress:
                progress({"repeat": r, "fold": f, "cached": True, "total": len(splits)})
        else:
            todo.append((r, f, tr, te, path))

    def finish(res: dict, path: Path | None) -> None:
        results[(res["repeat"], res["fold"])] = res
        if path is not None:
            from radfeat.utils.atomic import write_text

            write_text(json.dumps(res), path)
        if progress:
            progress(
                {
                    "repeat": res["repeat"],
                    "fold": res["fold"],
                    "cached": False,
                    "total": len(splits),
                    "auto_family": res["auto_family"],
                }
            )

    tasks = (
        delayed(_fold_task)(data, families, config, r, f, tr, te, tuner, fold_features, column_filter)
        for r, f, tr, te, _ in todo
    )
    paths = {(r, f): p for r, f, _, _, p in todo}
    if config.n_jobs == 1:
        for r, f, tr, te, path in todo:
            finish(
                _fold_task(data, families, config, r, f, tr, te, tuner, fold_features, column_filter), path
            )
    else:
        for res in Parallel(n_jobs=config.n_jobs, return_as="generator_unordered")(tasks):
            finish(res, paths[(res["repeat"], res["fold"])])

    rows = []
    for (r, f), res in sorted(results.items()):
        for family, scores in res["predictions"].items():
            for cid, y, s in zip(res["test_ids"], res["y"], scores, strict=True):
                rows.append((family, r, f, cid, y, s, res["threshold"]))
    predictions = pd.DataFrame(
        rows, columns=["family", "repeat", "fold", "case_id", "y", "score", "threshold"]
    )
    folds = [results[k] for k in sorted(results)]
    return CVResult(predictions, folds, config, data.name, data.label, list(data.X.columns), data.positive)


def external_validation(
    train: Dataset, test: Dataset, family: str, params: dict | None = None, random_state: int = 0
) -> pd.DataFrame:
    """Fit one family on the training cohort, predict the external cohort: case_id, y, score."""
    fam = get_family(family)
    pipe = fam.build(params or dict(fam.grid[0]), random_state, list(train.X.columns))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(train.X, train.y)
    return pd.DataFrame({"case_id": test.ids, "y": test.y, "score": predict_scores(pipe, test.X)})
