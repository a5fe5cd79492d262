"""Inputs of the fusion network: tumour-centred PET/CT patches, feature tokens, task labels.

Patches are resampled in physical space onto one grid per case centred on the tumour centroid
(:class:`PatchSpec`: in-plane ``size`` pixels of ``pixel_mm``, ``n_slices`` axial slices of ``slice_mm``
per view, ``n_views`` views stepped by ``view_step`` slices along z), so PET and CT share the grid and
the peritumoural margin is ``size * pixel_mm / 2`` minus the tumour radius. CT is clipped to
``hu_window`` and scaled to [-1, 1]; SUV is clipped to [0, ``suv_max``] and divided by 5.

Feature tokens come from named column groups of a radfeat table (:data:`FEATURE_GROUPS`); the
per-group column choice, imputation and scaling are fitted on the training fold only
(:class:`FeaturePrep`). Labels: one integer class per task, -1 where missing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import SimpleITK as sitk

if TYPE_CHECKING:
    from radfeat.synth import PhenotypeLinks

__all__ = [
    "PatchSpec",
    "FusionData",
    "FeaturePrep",
    "FEATURE_GROUPS",
    "extract_patches",
    "build_fusion_data",
    "synthetic_fusion_data",
]

#: Positive classes of the synthetic cohort's text labels (radfeat never guesses one).
SYNTH_POSITIVE = {"subtype": "squamous"}

#: Column groups of a radfeat table usable as feature tokens (regular expressions on column names).
FEATURE_GROUPS = {
    "habitat": r"^(hab_|ct_hab\d|pet_hab\d)",
    "pet": r"^pet_tumour_suv_",
    "ct": r"^ct_tumour_",
    "pet_radiomics": r"^pet_tumour_(?!suv_)",
}

#: PET descriptors of the spread of uptake rather than its level or volume (DMDP's metabolic
#: heterogeneity): SD, CoV, HI, heterogeneity factor, AUC-CSH, the intensity-volume histogram.
PET_HETEROGENEITY = r"^pet_tumour_suv_(SUVsd|CoV|HI|HF|AUC_CSH|V10|V90|I10|I90)$"
#: PET texture (pyradiomics' matrix families): intratumoural heterogeneity of uptake as well.
PET_TEXTURE = r"^pet_tumour_.*_(glcm|glrlm|glszm|gldm|ngtdm)_"


def token_modalities(column: str, habitat_mode: str = "ct+pet") -> frozenset[str]:
    """The image modalities a feature column is computed from: ``pet_tumour_*`` → PET, ``ct_tumour_*``
    → CT; habitat columns also carry the modalities their sub-regions were clustered on
    (``habitat_mode`` ``ct`` or ``ct+pet``), so a CT-only model never sees a PET-defined habitat.
    Other columns (clinical) carry none."""
    if re.match(FEATURE_GROUPS["habitat"], column):
        clustered = {"ct"} if habitat_mode == "ct" else {"ct", "pet"}
        return frozenset(clustered | ({"pet"} if column.startswith("pet_hab") else set()))
    if column.startswith("pet_tumour_"):
        return frozenset({"pet"})
    if column.startswith("ct_tumour_"):
        return frozenset({"ct"})
    return frozenset()


def is_heterogeneity(column: str) -> bool:
    """A heterogeneity token: every habitat column, the PET heterogeneity descriptors and PET texture
    (what DMDP's "without heterogeneity" ablation removes together)."""
    return bool(
        re.match(FEATURE_GROUPS["habitat"], column)
        or re.match(PET_HETEROGENEITY, column)
        or re.match(PET_TEXTURE, column)
    )


@dataclass(frozen=True)
class PatchSpec:
    """Patch geometry: in-plane ``size`` × ``size`` pixels of ``pixel_mm`` mm; ``n_slices`` slices of
    ``slice_mm`` mm per view (the channels: 3 = 2.5D; a larger value makes a thick 3D slab);
    ``n_views`` views per case, ``view_step`` slices apart along z (training samples several views per
    patient; evaluation averages over them)."""

    size: int = 32
    pixel_mm: float = 2.0
    n_slices: int = 3
    slice_mm: float = 2.0
    n_views: int = 5
    view_step: int = 1
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    suv_max: float = 20.0

    @property
    def depth(self) -> int:
        return self.n_slices + self.view_step * (self.n_views - 1)


def _reference(centre_mm: np.ndarray, spec: PatchSpec) -> sitk.Image:
    ref = sitk.Image([spec.size, spec.size, spec.depth], sitk.sitkFloat32)
    spacing = np.array([spec.pixel_mm, spec.pixel_mm, spec.slice_mm])
    ref.SetSpacing(spacing.tolist())
    extent = (np.array([spec.size, spec.size, spec.depth]) - 1) * spacing
    ref.SetOrigin((centre_mm - extent / 2).tolist())
    return ref


def scale_ct(hu: np.ndarray, spec: PatchSpec) -> np.ndarray:
    lo, hi = spec.hu_window
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo) * 2 - 1).astype(np.float32)


def scale_suv(suv: np.ndarray, spec: PatchSpec) -> np.ndarray:
    return (np.clip(suv, 0, spec.suv_max) / 5.0).astype(np.float32)


def _views(volume: np.ndarray, spec: PatchSpec) -> np.ndarray:
    """(depth, H, W) → (n_views, n_slices, H, W)."""
    return np.stack(
        [volume[v * spec.view_step : v * spec.view_step + spec.n_slices] for v in range(spec.n_views)]
    )


def extract_patches(row: dict, spec: PatchSpec, settings: dict | None = None) -> dict[str, np.ndarray]:
    """CT, PET and mask patches of one manifest row: arrays (n_views, n_slices, size, size).

    The case is read with :func:`radfeat.case.load_case` (same checks, label rule and messages as
    extraction); the mask patch marks the patch pixels at least half covered by the tumour.
    """
    from radfeat.case import load_case
    from radfeat.geometry import mask_centroid_mm, mask_on_grid, resample_to_reference

    case = load_case(row, settings, pet=True)
    ref = _reference(mask_centroid_mm(case.mask), spec)
    ct_p = sitk.GetArrayFromImage(resample_to_reference(case.ct_float, ref, "linear", spec.hu_window[0]))
    pet_p = sitk.GetArrayFromImage(resample_to_reference(case.pet, ref, "linear", 0.0))
    mask_p = sitk.GetArrayFromImage(mask_on_grid(case.mask, ref, 0.5))
    return {
        "ct": _views(scale_ct(ct_p, spec), spec),
        "pet": _views(scale_suv(pet_p, spec), spec),
        "mask": _views(mask_p.astype(np.uint8), spec),
    }


def _patches_or_error(row: dict, spec: PatchSpec) -> tuple[dict | None, str]:
    """``(patches, "")`` or ``(None, reason)`` for a case that cannot be read (the batch goes on)."""
    try:
        return extract_patches(row, spec), ""
    except Exception as exc:  # noqa: BLE001 - every unreadable case is reported, none stops the batch
        return None, f"{type(exc).__name__}: {exc}"


@dataclass
class FusionData:
    """A cohort ready for the network. Patch arrays are (cases, views, slices, H, W) float32."""

    case_ids: np.ndarray
    ct: np.ndarray
    pet: np.ndarray
    mask: np.ndarray
    labels: dict[str, np.ndarray]
    classes: dict[str, list[str]]
    features: pd.DataFrame | None = None
    groups: dict[str, list[str]] = field(default_factory=dict)
    cohort: np.ndarray | None = None
    spec: PatchSpec = field(default_factory=PatchSpec)
    #: The modalities the table's habitats were clustered on (its provenance; ``ct+pet`` when unknown).
    habitat_mode: str = "ct+pet"

    def __len__(self) -> int:
        return len(self.case_ids)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.labels)

    def n_classes(self, task: str) -> int:
        return len(self.classes[task])


def _encode_labels(values: pd.Series, positive: str | None) -> tuple[np.ndarray, list[str]]:
    """Codes (1 positive, 0 negative, -1 missing) and ``[negative, positive]`` by the one rule of
    :func:`models.labels.encode_binary` (text labels need their positive class named)."""
    from models.labels import encode_binary

    encoded = encode_binary(values, positive, allow_missing=True)
    return encoded.codes, encoded.classes


def _clean_label(v):
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return v


def build_fusion_data(
    manifest: str | Path,
    table: str | Path | pd.DataFrame | None = None,
    *,
    tasks: Sequence[str] = ("egfr", "subtype"),
    positive: dict[str, str] | None = None,
    groups: Sequence[str] = ("habitat", "pet"),
    spec: PatchSpec | None = None,
    jobs: int = 1,
    cases: Sequence[str] | None = None,
    require_labels: bool = True,
    classes: dict[str, list[str]] | None = None,
    failures: list[dict] | None = None,
) -> FusionData:
    """Patches for every manifest case, labels for ``tasks`` (from the manifest, else the table) and the
    chosen feature-column groups of ``table`` (rows matched by ``case_id``).

    ``cases``: only these case ids are read (e.g. the training cohort: no other case's images are
    opened). ``require_labels=False`` (scoring new patients): a task without a label column gets
    missing labels (-1) and the class names of ``classes``. ``failures``: a list to collect
    ``{case_id, reason}`` of cases whose images cannot be read; they are left out and the rest are
    built (without it, the first such case stops the build).

    A case whose images cannot be read stops the build with an error naming the case and file (fix the
    manifest with ``radfeat validate`` first).
    """
    from joblib import Parallel, delayed

    from radfeat.manifest import load_manifest
    from radfeat.table import read_table

    spec = spec or PatchSpec()
    rows = load_manifest(manifest).rows()
    if cases is not None:
        wanted = {str(c) for c in cases}
        rows = [r for r in rows if str(r["case_id"]) in wanted]
        if not rows:
            raise ValueError(f"none of the {len(wanted)} requested case(s) is in the manifest {manifest}")
    if failures is None:
        patches = Parallel(n_jobs=jobs)(delayed(extract_patches)(r, spec) for r in rows)
    else:
        results = Parallel(n_jobs=jobs)(delayed(_patches_or_error)(r, spec) for r in rows)
        failures += [
            {"case_id": str(r["case_id"]), "reason": e} for r, (_, e) in zip(rows, results, strict=True) if e
        ]
        rows = [r for r, (_, e) in zip(rows, results, strict=True) if not e]
        patches = [p for p, e in results if not e]
        if not rows:
            raise ValueError(f"no case of {manifest} could be read: {failures[:3]}")
    ids = np.array([str(r["case_id"]) for r in rows])
    frame = None
    provenance: dict = {}
    if table is not None:
        from radfeat.table import read_provenance

        provenance = (
            dict(table.attrs.get("radfeat", {}))
            if isinstance(table, pd.DataFrame)
            else read_provenance(table)
        )
        frame = table if isinstance(table, pd.DataFrame) else read_table(table)
        frame = frame.set_index("case_id") if "case_id" in frame.columns else frame
        frame.index = frame.index.astype(str)
        missing = sorted(set(ids) - set(frame.index))
        if missing:
            raise ValueError(f"{len(missing)} manifest case(s) absent from the feature table: {missing[:5]}")
        frame = frame.loc[ids]
    label_source = pd.DataFrame(rows).set_index("case_id")
    classes_given = classes
    labels, classes = {}, {}
    positive = positive or {}
    for task in tasks:
        source = label_source if task in label_source.columns else frame
        if (source is None or task not in source.columns) and not require_labels:
            labels[task] = np.full(len(ids), -1, dtype=int)
            classes[task] = list((classes_given or {}).get(task, ["0", "1"]))
            continue
        if source is None or task not in source.columns:
            raise ValueError(f"label column {task!r} is in neither the manifest nor the feature table")
        values = source[task].map(_clean_label) if source is label_source else source[task]
        try:
            labels[task], classes[task] = _encode_labels(values.reindex(ids), positive.get(task))
        except ValueError:
            if require_labels:
                raise
            # scoring: labels are not used, and a small new cohort may hold one class only
            labels[task] = np.full(len(ids), -1, dtype=int)
            classes[task] = list((classes_given or {}).get(task, ["0", "1"]))
    features, columns = None, {}
    if frame is not None:
        for g in groups:
            if g not in FEATURE_GROUPS:
                raise ValueError(f"unknown feature group {g!r}; choose from {sorted(FEATURE_GROUPS)}")
            pattern = re.compile(FEATURE_GROUPS[g])
            cols = [c for c in frame.columns if isinstance(c, str) and pattern.match(c)]
            cols = [c for c in cols if pd.api.types.is_numeric_dtype(frame[c])]
            if cols:
                columns[g] = cols
        if "habitat" in columns:
            from models.leakage import check_habitat_columns

            check_habitat_columns(
                columns["habitat"],
                ids,
                provenance,
                fix="drop the habitat group (--groups pet), or fit the habitat model on an independent "
                "cohort; radfeat train does not refit habitats inside its folds yet",
            )
        used = [c for cols in columns.values() for c in cols]
        features = frame[used].astype(float).reset_index(drop=True) if used else None
    cohort = label_source["cohort"].reindex(ids).astype(str).to_numpy() if "cohort" in label_source else None
    return FusionData(
        case_ids=ids,
        ct=np.stack([p["ct"] for p in patches]),
        pet=np.stack([p["pet"] for p in patches]),
        mask=np.stack([p["mask"] for p in patches]),
        labels=labels,
        classes=classes,
        features=features,
        groups=columns,
        cohort=cohort,
        spec=spec,
        habitat_mode=str((provenance.get("habitat_model") or {}).get("mode") or "ct+pet"),
    )


@dataclass
class FeaturePrep:
    """Feature tokens fitted on a training fold: per group the ``k_per_group`` columns ranked by ANOVA F
    against **each task** and taken from the tasks' rankings in turns (the union of the per-task top
    features, so a feature that only predicts the subtype is not lost to an EGFR-only ranking), median
    imputation, robust scaling (median / IQR), clip ±5. ``drop_groups`` removes whole groups (the
    "without habitat / PET descriptors" ablations), ``drop_columns`` single columns (the per-modality
    and "without heterogeneity" ablations)."""

    k_per_group: int = 16
    drop_groups: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()

    def fit(self, data: FusionData, train_idx: np.ndarray, tasks=None) -> FeaturePrep:
        """Fit on the cases ``train_idx``; ``tasks``: a task name or sequence (default all of
        ``data``'s tasks; a single-task model ranks on its own task only)."""
        from sklearn.feature_selection import f_classif

        self.columns_: list[str] = []
        self.group_of_: list[int] = []
        self.group_names_ = [g for g in data.groups if g not in self.drop_groups]
        if data.features is None:
            self.median_ = self.scale_ = np.zeros(0)
            return self
        tasks = [tasks] if isinstance(tasks, str) else list(tasks or data.tasks)
        dropped = set(self.drop_columns)
        self.group_names_ = [g for g in self.group_names_ if any(c not in dropped for c in data.groups[g])]
        for gi, g in enumerate(self.group_names_):
            cols = [c for c in data.groups[g] if c not in dropped]
            X = data.features[cols].iloc[train_idx].to_numpy()
            X = np.where(np.isnan(X), np.nanmedian(X, axis=0), X)
            rankings = []
            for task in tasks:
                y = data.labels[task][train_idx]
                known = y >= 0
                Xk = X[known]
                ok = np.nanstd(Xk, axis=0) > 0
                F = np.zeros(len(cols))
                if ok.any() and len(np.unique(y[known])) > 1:
                    with np.errstate(all="ignore"):
                        F[ok] = np.nan_to_num(f_classif(Xk[:, ok], y[known])[0], nan=0.0)
                order = np.argsort(-F, kind="stable")
                rankings.append([cols[i] for i in order if ok[i]])
            ranked: list[str] = []
            for position in range(max((len(r) for r in rankings), default=0)):
                for ranking in rankings:  # the tasks' rankings in turns
                    if position < len(ranking) and ranking[position] not in ranked:
                        ranked.append(ranking[position])
            ranked = ranked[: self.k_per_group]
            self.columns_ += ranked
            self.group_of_ += [gi] * len(ranked)
        X = data.features[self.columns_].iloc[train_idx].to_numpy()
        self.median_ = np.nanmedian(X, axis=0) if self.columns_ else np.zeros(0)
        q75, q25 = (np.nanpercentile(X, q, axis=0) for q in (75, 25)) if self.columns_ else (0, 0)
        scale = np.asarray(q75 - q25, dtype=float) / 1.349
        std = np.nanstd(X, axis=0) if self.columns_ else np.zeros(0)
        self.scale_ = np.where(scale > 1e-12, scale, np.where(std > 1e-12, std, 1.0))
        return self

    @property
    def n_features(self) -> int:
        return len(self.columns_)

    def transform(self, data: FusionData, idx: np.ndarray | None = None) -> np.ndarray:
        """(cases, n_features) float32 scaled tokens' values."""
        n = len(data) if idx is None else len(idx)
        if not self.columns_:
            return np.zeros((n, 0), np.float32)
        frame = data.features[self.columns_]
        X = (frame if idx is None else frame.iloc[idx]).to_numpy()
        X = np.where(np.isnan(X), self.median_, X)
        return np.clip((X - self.median_) / self.scale_, -5, 5).astype(np.float32)


def synthetic_fusion_data(
    out_dir: str | Path,
    n_cases: int = 64,
    *,
    seed: int = 0,
    signal: float = 1.0,
    spec: PatchSpec | None = None,
    jobs: int = 1,
    links: PhenotypeLinks | None = None,
) -> FusionData:
    """A synthetic cohort (``radfeat synth``) with PET descriptors as feature tokens: quick to build for
    tests, notebooks and benchmarks. ``signal=0`` makes labels independent of images and features
    (the clinical link is switched off as well); ``links`` (:class:`radfeat.synth.PhenotypeLinks`) sets
    the effect sizes of the planted label → phenotype link."""
    from joblib import Parallel, delayed

    from radfeat.manifest import load_manifest
    from radfeat.synth import make_cohort

    manifest = make_cohort(
        out_dir,
        n_cases,
        seed=seed,
        signal=signal,
        clinical_signal=signal,
        external_fraction=0,
        links=links,
    )
    rows = load_manifest(manifest).rows()
    table = pd.DataFrame(Parallel(n_jobs=jobs)(delayed(_pet_descriptor_row)(r) for r in rows))
    return build_fusion_data(
        manifest, table, groups=("habitat", "pet"), positive=SYNTH_POSITIVE, spec=spec, jobs=jobs
    )


def _pet_descriptor_row(row: dict) -> dict:
    """PET descriptors of one case through the extraction pipeline (radiomics switched off)."""
    from radfeat.extract import extract_case
    from radfeat.settings import load_settings

    settings = {**load_settings(), "ct": None, "pet": None}
    return {"case_id": str(row["case_id"]), **extract_case(row, settings)}
