"""Feature robustness from perturbed copies (or repeat scans) of the same cases: ICC per feature with
its CI, the share of robust features per family and modality, and the stable-feature list that
``benchmark`` / ``fit`` restrict to (``--stable-features robust.csv --icc 0.9``).

ICC(1,1) (one-way random, single measurement) over the copies, as Zwanenburg et al. (2019); a feature
is robust when its ICC (or, with ``bound="lower"``, the lower 95 % confidence limit) is at least the
threshold (0.90 there). The ICC uses feature values only, never a label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import stats as st

__all__ = [
    "feature_icc",
    "robustness_summary",
    "stable_features",
    "read_stable_features",
    "restrict_to_stable",
    "habitat_map_stability",
    "FoldStableFeatures",
    "select_columns",
]


def feature_icc(
    table: pd.DataFrame,
    features: list[str],
    *,
    case: str = "source_case",
    copy: str = "perturbation",
    form: str = "ICC1",
) -> pd.DataFrame:
    """Per feature: ICC (``form``, default ICC(1,1)) across the copies of each case with its 95 % CI,
    the number of cases used (a case missing the feature in any copy is left out)."""
    rows = []
    for feature in features:
        wide = table.pivot_table(index=case, columns=copy, values=feature, aggfunc="first")
        wide = wide.dropna()
        value = lo = hi = np.nan
        if len(wide) >= 3 and wide.shape[1] >= 2 and np.nanstd(wide.to_numpy()) > 0:
            with np.errstate(all="ignore"):
                res = st.icc(wide.to_numpy(float)).loc[form]
            value, lo, hi = float(res["ICC"]), float(res["ci_lower"]), float(res["ci_upper"])
        rows.append({"feature": feature, "icc": value, "ci_lower": lo, "ci_upper": hi, "n_cases": len(wide)})
    return pd.DataFrame(rows)


def _family(feature: str) -> tuple[str, str]:
    from radfeat.table import parse_column

    try:
        parsed = parse_column(feature)
    except (ValueError, KeyError):
        return ("other", "other")
    modality, region, image_type, family = parsed.modality, parsed.region, parsed.image_type, parsed.family
    if modality == "hab":
        return "habitat", "habitat-level"
    if region.startswith("hab"):
        modality = f"{modality} habitat"
    if image_type == "suv":
        return modality, "PET descriptors"
    return modality, family or "other"


def robustness_summary(icc: pd.DataFrame, threshold: float = 0.9, bound: str = "point") -> pd.DataFrame:
    """Share of robust features per modality and feature family (and overall)."""
    value = icc["ci_lower"] if bound == "lower" else icc["icc"]
    parts = icc.assign(
        robust=value >= threshold,
        modality=[_family(f)[0] for f in icc.feature],
        family=[_family(f)[1] for f in icc.feature],
    )
    groups = parts.groupby(["modality", "family"])
    out = groups.agg(features=("feature", "size"), robust=("robust", "sum")).reset_index()
    total = pd.DataFrame(
        [{"modality": "all", "family": "all", "features": len(parts), "robust": int(parts.robust.sum())}]
    )
    out = pd.concat([out, total], ignore_index=True)
    out["share_robust"] = out["robust"] / out["features"].where(out["features"] > 0)
    return out


def stable_features(icc: pd.DataFrame, threshold: float = 0.9, bound: str = "point") -> list[str]:
    """Features whose ICC (or lower CI limit) is at least ``threshold``."""
    value = icc["ci_lower"] if bound == "lower" else icc["icc"]
    return icc.loc[value >= threshold, "feature"].tolist()


def read_stable_features(path, threshold: float = 0.9, bound: str = "point") -> list[str]:
    """The stable features of a ``robust.csv`` written by ``radfeat robustness``."""
    table = pd.read_csv(path)
    missing = {"feature", "icc", "ci_lower"} - set(table.columns)
    if missing:
        raise ValueError(
            f"{path} lacks column(s) {sorted(missing)}: give the robust.csv of `radfeat robustness`"
        )
    return stable_features(table, threshold, bound)


def restrict_to_stable(data, path, threshold: float = 0.9, bound: str = "point"):
    """``data`` (a :class:`models.data.Dataset`) with only the feature columns that ``robust.csv``
    lists as robust; clinical covariates and harmonisation columns stay. A note says how many were
    dropped as not robust and how many were not assessed. The list comes from feature values under
    perturbation (no label), so restricting before the folds leaks nothing about the outcome."""
    from dataclasses import replace

    from models.harmonise import harmoniser_columns

    keep = set(read_stable_features(path, threshold, bound))
    assessed = set(pd.read_csv(path)["feature"])
    passthrough = set(harmoniser_columns(data.X.columns)) | {
        c for c in data.X.columns if str(c).startswith("clin_")
    }
    features = [c for c in data.X.columns if c not in passthrough]
    kept = [c for c in features if c in keep]
    if not kept:
        raise ValueError(
            f"no feature of the table is robust in {path} at ICC ≥ {threshold}: lower --icc or check that "
            "robust.csv comes from the same extraction settings"
        )
    not_robust = [c for c in features if c in assessed and c not in keep]
    unassessed = [c for c in features if c not in assessed]
    note = (
        f"--stable-features {path} ({'lower CI limit of ' if bound == 'lower' else ''}ICC ≥ {threshold}): "
        f"{len(kept)} "
        f"feature(s) kept, {len(not_robust)} not robust, {len(unassessed)} not assessed dropped"
    )
    columns = [c for c in data.X.columns if c in keep or c in passthrough]
    return replace(
        data,
        X=data.X[columns],
        dropped={
            **data.dropped,
            **dict.fromkeys(not_robust, "not robust"),
            **dict.fromkeys(unassessed, "robustness not assessed"),
        },
        notes=[*data.notes, note],
    )


def habitat_map_stability(labels_dir, copies: pd.DataFrame) -> pd.DataFrame:
    """Agreement of the habitat maps of a case's perturbed copies, per case: the adjusted Rand index
    of the habitat labels and the Dice coefficient of each habitat, averaged over all pairs of copies,
    on the voxels both copies place in the tumour (label maps on the CT grid, as
    ``radfeat extract --habitats`` writes them). ``copies``: ``case_id``, ``source_case``."""
    from itertools import combinations
    from pathlib import Path

    import SimpleITK as sitk
    from sklearn.metrics import adjusted_rand_score

    rows = []
    for source, part in copies.groupby("source_case"):
        maps = []
        for cid in part["case_id"]:
            path = Path(labels_dir) / f"{cid}_habitats.nii.gz"
            if path.is_file():
                maps.append(sitk.GetArrayFromImage(sitk.ReadImage(str(path))))
        if len(maps) < 2 or len({m.shape for m in maps}) > 1:
            continue
        aris, dice = [], {}
        for a, b in combinations(maps, 2):
            both = (a > 0) & (b > 0)
            if both.sum() > 1:
                aris.append(adjusted_rand_score(a[both], b[both]))
            for h in sorted((set(np.unique(a)) | set(np.unique(b))) - {0}):
                na, nb = (a == h).sum(), (b == h).sum()
                if na + nb:
                    dice.setdefault(int(h), []).append(2 * ((a == h) & (b == h)).sum() / (na + nb))
        rows.append(
            {
                "case": source,
                "copies": len(maps),
                "adjusted_rand": float(np.mean(aris)) if aris else np.nan,
                **{f"dice_hab{h}": float(np.mean(v)) for h, v in sorted(dice.items())},
            }
        )
    return pd.DataFrame(rows)


class FoldStableFeatures:
    """The stable-feature filter recomputed **inside every training fold**: ICC(1,1) of each feature
    over the perturbed copies of that fold's training cases only (cases absent from the robustness
    cohort are simply not counted), features at or above ``threshold`` kept.

    ``copies`` is the long table ``radfeat robustness`` writes (``features.parquet``: ``source_case``,
    ``perturbation`` and the feature columns). Calling it with the training case ids returns the kept
    columns; sufficient statistics per case (mean and within-case sum of squares over the copies) make
    a fold's ICCs one vectorised pass.
    """

    def __init__(self, copies: pd.DataFrame, threshold: float = 0.9, *, source: str = ""):
        from radfeat.table import feature_columns

        for column in ("source_case", "perturbation"):
            if column not in copies.columns:
                raise ValueError(
                    f"the robustness table has no {column!r} column: give the folder (or features.parquet) "
                    "written by `radfeat robustness`"
                )
        self.threshold = float(threshold)
        self.source = source
        self.features = feature_columns(copies)
        wide = copies.sort_values(["source_case", "perturbation"])
        cases = wide["source_case"].astype(str)
        counts = cases.value_counts()
        self.k = int(counts.max())
        full = counts[counts == self.k].index
        wide = wide[cases.isin(full)]
        self.case_ids = np.asarray(sorted(full), dtype=str)
        values = wide[self.features].to_numpy(float).reshape(len(self.case_ids), self.k, len(self.features))
        self.valid = np.isfinite(values).all(axis=1)  # (cases, features): every copy present
        filled = np.where(np.isfinite(values), values, 0.0)
        self.means = filled.mean(axis=1)
        self.within = ((filled - self.means[:, None, :]) ** 2).sum(axis=1)
        self.fitted_on: list[list[str]] = []
        self._key = None

    def icc(self, case_ids) -> np.ndarray:
        """ICC(1,1) per feature over ``case_ids`` (NaN with fewer than 3 usable cases or no spread)."""
        rows = np.isin(self.case_ids, np.asarray(case_ids, dtype=str))
        valid = self.valid[rows]
        means, within = self.means[rows], self.within[rows]
        n = valid.sum(axis=0).astype(float)
        k = self.k
        with np.errstate(all="ignore"):
            grand = np.where(valid, means, 0.0).sum(axis=0) / n
            bms = k * np.where(valid, (means - grand) ** 2, 0.0).sum(axis=0) / (n - 1)
            wms = np.where(valid, within, 0.0).sum(axis=0) / (n * (k - 1))
            icc = (bms - wms) / (bms + (k - 1) * wms)
        return np.where((n >= 3) & np.isfinite(icc), icc, np.nan)

    def __call__(self, train_ids) -> list[str]:
        """The features robust on these training cases.

        Raises
        ------
        ValueError
            When fewer than 3 of them have perturbed copies, or no feature reaches the threshold.
        """
        self.fitted_on.append(sorted(map(str, train_ids)))
        n = int(np.isin(self.case_ids, np.asarray(train_ids, dtype=str)).sum())
        if n < 3:
            raise ValueError(
                f"only {n} of {len(train_ids)} training cases have perturbed copies in "
                f"{self.source or 'the '}"
                "robustness table; the ICC needs at least 3: run `radfeat robustness` on the training "
                "cohort, or give its robust.csv for a fixed list"
            )
        icc = self.icc(train_ids)
        kept = [f for f, v in zip(self.features, icc, strict=True) if np.isfinite(v) and v >= self.threshold]
        if not kept:
            raise ValueError(
                f"no feature reaches ICC ≥ {self.threshold} on these {n} training cases: lower --icc"
            )
        return kept

    def cache_key(self) -> str:
        """Content hash of the copies' statistics and the threshold (keys cached folds)."""
        if self._key is None:
            import hashlib

            h = hashlib.sha256()
            for array in (self.means, self.within, self.valid):
                h.update(np.ascontiguousarray(array).tobytes())
            h.update("|".join(self.case_ids).encode() + "|".join(self.features).encode())
            h.update(f"{self.threshold}|{self.k}|v1".encode())
            self._key = h.hexdigest()[:16]
        return self._key


def select_columns(X: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    """``X`` with only the ``keep`` features; clinical, harmonisation and non-radfeat columns stay."""
    from models.harmonise import harmoniser_columns
    from radfeat.table import feature_columns

    radiomics = set(feature_columns(X))
    passthrough = set(harmoniser_columns(X.columns))
    kept = set(keep)
    return X[[c for c in X.columns if c in passthrough or c not in radiomics or c in kept]]
