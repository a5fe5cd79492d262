"""A model locked on a training cohort: tuned and refitted on training cases only, with its operating
threshold and its comparators, ready to score independent cohorts and new patients.

:func:`fit_locked` is what ``radfeat fit`` runs:

1. **CV estimate** — the whole procedure (inner tuning, automatic choice) cross-validated on the
   training cohort with :func:`models.cv.cross_validate`, the same nested machinery as ``radfeat
   benchmark``; the estimate of the chosen family with its DeLong CI goes into the model card.
2. **Threshold** — from the out-of-fold training scores of that CV (each case scored by a model that
   never saw it), by a rule recorded in the card (:func:`models.thresholds.locked_threshold`).
3. **Final model** — the same tuning (:func:`models.cv.tune_families`) on all training cases, each
   family's best candidate refitted on them; ``auto`` keeps its members with their weights.
4. **Comparators** declared now for the later tests (SUVmax alone, a clinical model), fitted on the
   training cases with their own thresholds by the same rule.

Only the rows of the :class:`models.data.Dataset` passed in are ever read: select the training cohort
before (:func:`models.data.cohort_split`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.cv import (
    AUTO,
    AUTO_SELECT,
    STACKABLE,
    CVConfig,
    CVResult,
    cross_validate,
    fit_tuned,
    tune_families,
)
from models.data import Dataset
from models.zoo import BASELINES, get_family, predict_scores

__all__ = ["Member", "Comparator", "LockedModel", "fit_locked", "used_features", "DEFAULT_FAMILIES"]

#: The families ``auto`` combines by default (as ``radfeat benchmark``).
DEFAULT_FAMILIES = ("lr", "svm_linear", "svm_rbf", "rf", "et", "xgb", "knn", "nb", "lda")


@dataclass
class Member:
    """One fitted pipeline of a locked model and its weight in the combination (1 for one family)."""

    family: str
    params: dict
    weight: float
    pipeline: object

    def scores(self, X: pd.DataFrame) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return predict_scores(self.pipeline, X)


@dataclass
class Comparator:
    """A comparator declared at fit time (e.g. ``suvmax``), fitted on the training cases, with its own
    locked threshold; ``columns`` are the exact columns it reads."""

    name: str
    title: str
    columns: list[str]
    member: Member
    threshold: float
    cv_auc: dict = field(default_factory=dict)


def used_features(pipeline, features: Sequence[str]) -> list[str]:
    """The input columns that reach the final estimator of a fitted pipeline (after the in-fold
    filters and selection), in input order."""
    names = list(pipeline[:-1].get_feature_names_out(list(features)))
    keep = set(names)
    return [f for f in features if f in keep]


@dataclass
class LockedModel:
    """A locked model: members (weights sum to 1), the feature columns it reads in order, the
    operating threshold and its rule, the comparators, and the model card (a dict, see
    :mod:`models.lifecycle.store`)."""

    label: str
    positive: str
    family: str
    features: list[str]
    members: list[Member]
    threshold: float
    threshold_rule: str
    comparators: dict[str, Comparator] = field(default_factory=dict)
    card: dict = field(default_factory=dict)
    #: Features missing in some training cases (e.g. SUVmean of an empty SUV ≥ 2.5 region): imputed in
    #: training, so imputed for a new case too (and listed in its ``imputed`` column).
    imputable: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """Content hash of the saved model folder (empty before :func:`models.lifecycle.save_model`)."""
        return str(self.card.get("fingerprint", ""))

    def required_features(self) -> list[str]:
        """Columns some member actually uses (a case missing one of them cannot be scored), and the
        harmoniser's batch label and protected covariates."""
        from models.harmonise import harmoniser_columns

        used: set[str] = set(harmoniser_columns(self.features))
        for m in self.members:
            used |= set(used_features(m.pipeline, self.features))
        return [f for f in self.features if f in used]

    def harmoniser(self):
        """The fitted ComBat step of the first member (every member learned the same), or None."""
        steps = getattr(self.members[0].pipeline, "named_steps", {}) if self.members else {}
        return steps.get("harmonise")

    def scores(self, X: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class, shape (n_cases,): the weighted mean of the members."""
        frame = X[self.features]
        return np.sum([m.weight * m.scores(frame) for m in self.members], axis=0)

    def predict_table(self, X: pd.DataFrame, ids: Sequence[str]) -> tuple[pd.DataFrame, list[dict]]:
        """Score every case that has the features the model uses.

        Returns ``(scored, not_scored)``: one row per scored case (``case_id``, ``score``,
        ``predicted_positive`` at the locked threshold, ``threshold``, and per comparator
        ``score_<name>`` / ``predicted_positive_<name>``, ``imputed``), and ``{case_id, reason}`` for the
        others: a feature the model uses is missing and was never missing in training (imputing it
        would give a number the training data never supported).
        """
        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise ValueError(_missing_message(missing))
        ids = np.asarray(ids).astype(str)
        frame = X[self.features].reset_index(drop=True)
        needed = self.required_features()
        imputable = [f for f in needed if f in set(self.imputable)]
        gaps = frame[[f for f in needed if f not in set(imputable)]].isna()
        ok = ~gaps.any(axis=1).to_numpy()
        harmoniser = self.harmoniser()
        harmonisation = None
        if harmoniser is not None:
            ok, harmonisation, too_few = _harmonisable(harmoniser, frame, ok)
        else:
            too_few = {}
        not_scored = [
            {
                "case_id": str(cid),
                "reason": "missing value of feature(s) the model uses: "
                + ", ".join(gaps.columns[gaps.iloc[i].to_numpy()][:5])
                + (" …" if gaps.iloc[i].sum() > 5 else ""),
            }
            for i, cid in enumerate(ids)
            if not ok[i] and i not in too_few
        ] + [{"case_id": str(ids[i]), "reason": reason} for i, reason in too_few.items()]
        out = pd.DataFrame({"case_id": ids[ok]})
        if ok.any():
            scores = self.scores(frame.loc[ok])
            out["score"] = scores
            out["predicted_positive"] = scores >= self.threshold
        else:
            out["score"] = pd.Series(dtype=float)
            out["predicted_positive"] = pd.Series(dtype=bool)
        out["threshold"] = self.threshold
        if harmonisation is not None:
            out["harmonisation"] = harmonisation[ok]
        filled = frame.loc[ok, imputable].isna()
        out["imputed"] = [";".join(filled.columns[row]) for row in filled.to_numpy()] if imputable else ""
        for name, comp in self.comparators.items():
            values = np.full(len(out), np.nan)
            rows = frame.loc[ok]
            have = ~rows[comp.columns].isna().any(axis=1).to_numpy()
            step = getattr(comp.member.pipeline, "named_steps", {}).get("harmonise")
            if step is not None and have.any():  # a new scanner with too few cases here: no comparator score
                small = [b for b, n in step.new_batches(rows.loc[have]).items() if n < step.min_new_batch]
                have &= ~rows[step.batch_column].astype(str).isin(small).to_numpy()
            if have.any():  # the comparator's pipeline picks its own columns by name
                values[have] = comp.member.scores(rows.loc[have])
            out[f"score_{name}"] = values
            out[f"predicted_positive_{name}"] = np.where(np.isnan(values), np.nan, values >= comp.threshold)
        return out, not_scored


def _harmonisable(harmoniser, frame: pd.DataFrame, ok: np.ndarray):
    """``(ok, how, too_few)``: cases of a batch unseen in training are scorable only with at least
    ``min_new_batch`` scorable cases of that batch (its batch effect is estimated from them); ``how``
    says per case how it was harmonised, ``too_few`` maps refused row numbers to the reason."""
    batches = frame[harmoniser.batch_column].astype(str).to_numpy()
    seen = np.isin(batches, harmoniser.batches_)
    how = np.array(
        [f"ComBat, learned batch {b}" if k else "" for b, k in zip(batches, seen, strict=True)], dtype=object
    )
    too_few: dict[int, str] = {}
    ok = ok.copy()
    for batch in sorted(set(batches[~seen])):
        rows = (batches == batch) & ok
        n = int(rows.sum())
        if n >= harmoniser.min_new_batch:
            how[batches == batch] = f"ComBat, new batch {batch} estimated from {n} cases"
            continue
        for i in np.flatnonzero(rows):
            too_few[int(i)] = (
                f"batch {batch!r} was not in the training data and has {n} case(s) here; its batch "
                f"effect needs at least {harmoniser.min_new_batch} cases of that scanner / centre "
                f"scored together (training batches: {', '.join(harmoniser.batches_)})"
            )
        ok[rows] = False
    return ok, how, too_few


def _missing_message(missing: list[str]) -> str:
    return (
        f"the table lacks {len(missing)} feature column(s) the model was trained on: "
        + ", ".join(missing[:8])
        + (" …" if len(missing) > 8 else "")
        + ". Hint: extract the table with the model's settings (`radfeat predict MODEL manifest.csv` "
        "does it for you)"
    )


def _cv_estimate(cv: CVResult, name: str) -> dict:
    from models.results import result_row

    summary = cv.summary()
    cases = cv.case_scores(name)
    row = result_row(cases["y"], np.clip(cases["score"], 0, 1), cases["margin"])
    return {
        "family": name,
        "mean_auc": float(summary.loc[name, "mean_auc"]),
        "sd_auc": float(summary.loc[name, "sd_auc"]) if summary.loc[name, "n_repeats"] > 1 else None,
        "auc_oof": float(row["auc"]),
        "auc_ci_low": float(row["auc_ci_low"]),
        "auc_ci_high": float(row["auc_ci_high"]),
        "brier": float(row["brier"]),
    }


def fit_locked(
    data: Dataset,
    *,
    family: str = AUTO,
    families: Sequence[str] = DEFAULT_FAMILIES,
    config: CVConfig | None = None,
    threshold_rule: str = "youden",
    comparators: Sequence[str] = (),
    tuner: Callable | None = None,
    cache_dir=None,
    progress: Callable[[dict], None] | None = None,
    fold_features: Callable | None = None,
    column_filter: Callable | None = None,
) -> tuple[LockedModel, CVResult]:
    """Tune, estimate, threshold and refit on the training cases of ``data`` (see the module docstring).

    Parameters
    ----------
    family : str
        ``auto`` (combination of ``families``, :mod:`models.ensemble`), ``auto_select`` (one family
        chosen by the inner CV) or one family name.
    config : CVConfig
        Folds of the CV estimate and of the inner tuning (the final model is tuned with the same inner
        CV on all training cases).
    threshold_rule : str
        :data:`models.thresholds.LOCK_RULES`.
    comparators : sequence of str
        Baselines (``suvmax``, ``clinical``, ``combined``) to fit now and test against later.
    fold_features : callable, optional
        Features learned from data (habitats) refitted inside every CV training fold for the estimate
        (:class:`models.fold_features.HabitatFoldFeatures`); the final model uses the table's own
        columns, learned on the training cohort.
    column_filter : callable, optional
        Columns chosen on training cases (:class:`models.robustness.FoldStableFeatures`): re-chosen in
        every CV training fold for the estimate and on all training cases for the final model.
    """
    from models.thresholds import locked_threshold

    config = config or CVConfig(n_splits=5, n_repeats=2)
    if family in (AUTO, AUTO_SELECT):
        tuned_families = [f for f in families if f in STACKABLE]
        if len(tuned_families) < 2:
            raise ValueError(f"--family {family} combines two or more families; got {list(families)}")
    else:
        get_family(family)
        tuned_families = [family]
    for name in comparators:
        if name not in BASELINES:
            raise ValueError(f"comparator {name!r} must be one of {sorted(BASELINES)}")
        get_family(name).build(None, 0, list(data.X.columns))  # fails now if its columns are absent
    if len(np.unique(data.y)) != 2:
        raise ValueError("the training cohort needs both classes of the label")
    cv = cross_validate(
        data,
        [*tuned_families, *comparators],
        config,
        cache_dir=cache_dir,
        tuner=tuner,
        progress=progress,
        fold_features=fold_features,
        column_filter=column_filter,
    )
    estimates = {name: _cv_estimate(cv, name) for name in [family, *comparators]}
    oof = cv.case_scores(family)
    threshold = locked_threshold(oof["y"], oof["score"], threshold_rule)

    from models.leakage import habitat_columns

    hab = habitat_columns(data.X.columns)
    if hab:  # the final model may use them only if their habitat model saw no case outside this cohort
        info = (data.provenance or {}).get("habitat_model") or {}
        outside = sorted({str(t) for t in info.get("train_ids") or []} - {str(i) for i in data.ids})
        if info.get("train_ids") is None or outside:
            from models.leakage import LeakageError

            raise LeakageError(
                f"{len(hab)} habitat column(s) come from a habitat model fitted on "
                + (
                    f"cases outside the training cohort ({', '.join(outside[:5])}…)"
                    if outside
                    else "unrecorded cases"
                )
                + ": the locked model would carry information from them",
                hint="fit the habitat model on the training cohort (radfeat habitats fit MANIFEST --cohort "
                "train) and extract again, or drop the habitat columns (--no-habitat-columns)",
            )
    X, y, groups = data.X.reset_index(drop=True), data.y, data.groups
    if column_filter is not None:
        from models.robustness import select_columns

        X = select_columns(X, column_filter(data.ids))
    tuned = tune_families(X, y, groups, tuned_families, config, config.random_state, tuner)
    pipes = fit_tuned(tuned, X, y)
    if family == AUTO:
        weights = {n: w for n, w in (tuned.weights or {}).items() if w > 0}
    elif family == AUTO_SELECT:
        weights = {tuned.chosen: 1.0}
    else:
        weights = {family: 1.0}
    members = [Member(n, dict(tuned.best[n][1]), float(w), pipes[n]) for n, w in weights.items()]

    locked_comparators = {}
    for name in comparators:
        fam = get_family(name)
        params = dict(fam.grid[0])
        pipe = fam.build(params, config.random_state, list(X.columns))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(X, y)
        comp_oof = cv.case_scores(name)
        locked_comparators[name] = Comparator(
            name,
            fam.title,
            fam.columns(list(X.columns)) if fam.columns else list(X.columns),
            Member(name, params, 1.0, pipe),
            locked_threshold(comp_oof["y"], comp_oof["score"], threshold_rule),
            estimates[name],
        )
    model = LockedModel(
        label=data.label,
        positive=data.positive,
        family=family,
        features=list(X.columns),
        members=members,
        threshold=float(threshold),
        threshold_rule=threshold_rule,
        comparators=locked_comparators,
        imputable=[c for c in X.columns if X[c].isna().any()],
    )
    model.card = {
        "training": {
            "n_cases": int(len(y)),
            "n_positive": int(y.sum()),
            "prevalence": float(y.mean()),
            "cohorts": sorted(set(data.cohort)) if data.cohort is not None else None,
        },
        "cv_estimate": estimates[family],
        "cv": {
            "outer": f"{config.n_splits}x{config.n_repeats}",
            "inner": f"{config.inner_splits}x{config.inner_repeats}",
            "seed": config.random_state,
            "tuner": getattr(tuner, "name", "grid") if tuner is not None else "grid",
            "families": tuned_families,
            "auto_rule": config.auto_rule if family == AUTO else None,
        },
        "final_tuning": {
            "inner_auc": {n: float(s) for n, (s, _) in tuned.best.items()},
            "auto_select_family": tuned.chosen,
        },
    }
    harmoniser = model.harmoniser()
    if harmoniser is not None:
        from models.harmonise import source_column

        model.card["harmonisation"] = {
            "method": "ComBat (neuroHarmonize"
            + (", empirical Bayes)" if getattr(harmoniser, "eb_", False) else ", no empirical Bayes)"),
            "batch_column": source_column(harmoniser.batch_column),
            "protected": [p.removeprefix("cov__") for p in harmoniser.protect],
            "training_batches": dict(harmoniser.batch_counts_),
            "min_new_batch": int(harmoniser.min_new_batch),
            "harmonised_features": len(harmoniser.harmonised_),
            "fitted_in": "every CV training fold (estimate) and all training cases (final model)",
        }
    return model, cv
