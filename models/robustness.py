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
