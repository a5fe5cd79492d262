"""Habitat workflow from manifest rows: fit the population model on training cases, features of a case.

The maths is in :mod:`radfeat.habitats.maps`, :mod:`radfeat.habitats.model` and
:mod:`radfeat.features.heterogeneity`; cases are read with :func:`radfeat.case.load_case` (the same
checks and messages as extraction). Batch application (parallel, cached, failures recorded) is the
:class:`radfeat.providers.habitats.HabitatFeatures` provider run by ``radfeat extract --habitats`` /
``radfeat habitats apply``.

Leakage guard, for cross-validation: ``fit_habitat_model(rows, train_ids=fold_train_ids)`` reads
**only** the listed cases; ``habitat_case_features(case, model, settings)`` applies the fitted model
to any other case. Refit inside every training fold.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radfeat.case import Case, case_reading_settings, load_case
from radfeat.errors import ManifestError
from radfeat.features.heterogeneity import heterogeneity_features
from radfeat.features.radiomics import RadiomicsEngine, matrix_backend
from radfeat.habitats.maps import HabitatMaps, Supervoxels, supervoxels, voxel_feature_maps
from radfeat.habitats.model import HabitatModel
from radfeat.habitats.settings import HabitatSettings
from radfeat.habitats.stage1 import Stage1Store, stage1_key

__all__ = [
    "case_supervoxels",
    "fit_habitat_model",
    "habitat_case_features",
    "habitat_engines",
    "habitat_masks",
    "habitat_settings",
    "labels_dir_for",
    "model_summary",
]


def habitat_settings(settings: dict[str, Any]) -> HabitatSettings:
    """The ``habitats`` block of the radfeat settings as a :class:`HabitatSettings`."""
    return HabitatSettings.from_settings(settings)


def _load(row_or_case: dict | Case, hs: HabitatSettings, settings: dict[str, Any]) -> Case:
    if isinstance(row_or_case, Case):
        if hs.mode == "ct+pet" and row_or_case.pet is None:
            raise ValueError(
                f"case {row_or_case.case_id!r} has no PET; habitat mode 'ct+pet' needs one (or use mode 'ct')"
            )
        return row_or_case
    return load_case(row_or_case, settings, pet=True if hs.mode == "ct+pet" else False)


def case_supervoxels(
    row: dict | Case, settings: dict[str, Any], store: Stage1Store | None = None
) -> tuple[HabitatMaps, Supervoxels]:
    """Voxel maps and stage-1 supervoxels of one case (from ``store`` when it holds them for exactly
    these inputs and settings; computed and kept there otherwise)."""
    hs = habitat_settings(settings)
    case = _load(row, hs, settings)
    maps = voxel_feature_maps(case.ct_float, case.mask, case.pet if hs.mode == "ct+pet" else None, hs)
    return maps, _supervoxels_of(case, maps, hs, settings, store)


def _supervoxels_of(
    case: Case, maps: HabitatMaps, hs: HabitatSettings, settings: dict[str, Any], store: Stage1Store | None
) -> Supervoxels:
    if store is None:
        return supervoxels(maps, hs)
    key = stage1_key(case.row, hs, case_reading_settings(settings))
    sv = store.load(case.case_id, key, maps.n_voxels)
    if sv is None:
        sv = supervoxels(maps, hs)
        store.save(case.case_id, key, sv)
    return sv


def _stage1(row: dict, settings: dict[str, Any], store: Stage1Store | None) -> Supervoxels:
    return case_supervoxels(row, settings, store)[1]


def fit_habitat_model(
    rows: Iterable[dict],
    train_ids: Iterable[str],
    settings: dict[str, Any],
    *,
    jobs: int = 1,
    progress=None,
    stage1: Stage1Store | str | Path | None = None,
) -> HabitatModel:
    """Fit the population habitat model on the training cases only.

    Parameters
    ----------
    rows : iterable of dict
        Manifest rows (absolute paths). Only rows whose ``case_id`` is in ``train_ids`` are read.
    train_ids : iterable of str
        The training cases. Unknown ids raise ``ManifestError``.
    progress : callable, optional
        Called with ``{"total": n}`` and then once per case whose supervoxels are done.
    stage1 : Stage1Store or path, optional
        Where the training cases' stage-1 supervoxels are kept (and reused when already there for the
        same inputs and settings): ``habitats fit`` keeps them in the model folder for ``apply``.
    """
    from joblib import Parallel, delayed

    train = set(map(str, train_ids))
    chosen = [r for r in rows if str(r["case_id"]) in train]
    missing = train - {str(r["case_id"]) for r in chosen}
    if missing:
        raise ManifestError(
            f"training case id(s) not in the manifest: {sorted(missing)[:10]}",
            hint="check --train-ids against the manifest's case_id column",
        )
    if not chosen:
        raise ManifestError("no training cases given", hint="pass --train-ids or --cohort")
    if progress:
        progress({"total": len(chosen)})
    store = stage1 if isinstance(stage1, Stage1Store) or stage1 is None else Stage1Store(stage1)
    # A memory store lives in this process: parallel workers compute, this process keeps the results.
    in_workers = store if store is None or store.folder is not None or jobs == 1 else None
    results = Parallel(n_jobs=jobs, return_as="generator")(
        delayed(_stage1)(r, settings, in_workers) for r in chosen
    )
    hs, reading = habitat_settings(settings), case_reading_settings(settings)
    sv = {}
    for row, case_sv in zip(chosen, results, strict=True):
        sv[str(row["case_id"])] = case_sv
        if store is not None and in_workers is None:
            store.save(str(row["case_id"]), stage1_key(row, hs, reading), case_sv)
        if progress:
            progress({"case_id": str(row["case_id"]), "ok": True})
    return HabitatModel(hs).fit(sv)


def habitat_engines(settings: dict[str, Any], mode: str) -> dict[str, RadiomicsEngine]:
    """Per-habitat radiomics engines: each modality's feature set on its native grid.

    Resampling settings are dropped, so every habitat is measured on the voxels its label map marks
    and the values equal pyradiomics run on the same image and habitat mask.
    """
    if not (settings.get("habitats") or {}).get("radiomics", True):
        return {}
    engines = {}
    for modality in ("ct", "pet") if mode == "ct+pet" else ("ct",):
        block = copy.deepcopy(settings.get(modality))
        if not block:
            continue
        setting = block.setdefault("setting", {})
        setting.pop("resampledPixelSpacing", None)
        setting.pop("interpolator", None)
        block.get("featureClass", {}).pop("shape", None)  # habitat volumes are reported separately
        engines[modality] = RadiomicsEngine(block, matrices=matrix_backend(settings))
    return engines


def habitat_case_features(
    row: dict | Case,
    model: HabitatModel,
    settings: dict[str, Any],
    *,
    labels_dir: str | Path | None = None,
    engines: dict[str, RadiomicsEngine] | None = None,
    stage1: Stage1Store | None = None,
) -> dict[str, Any]:
    """Apply a fitted habitat model to one case (a manifest row or a loaded :class:`Case`) and compute
    its habitat features.

    Columns: ``hab_h{i}_volume_ml`` / ``_fraction`` / ``_components`` (habitat grid),
    ``hab_h{i}_SUVmean`` / ``_SUVmax`` (native PET grid), ``hab_msi_*``, ``hab_ith_score_3d`` / ``_2d``,
    ``hab_diversity_*``, and per-habitat radiomics ``ct_hab{i}_<key>`` / ``pet_hab{i}_<key>`` on the
    native CT / PET grids, each filter computed once for all habitats (NaN when the habitat is absent
    or too small, with the reason in ``diagnostics_hab{i}_<modality>``). Writes
    ``<case>_habitats.nii.gz`` on the CT grid to ``labels_dir`` when given, and
    ``<case>_habitats.seg.dcm`` (DICOM-SEG on the CT series) when the CT is a DICOM series.
    ``stage1``: supervoxels kept at fitting (:class:`~radfeat.habitats.stage1.Stage1Store`), reused
    for the cases it holds with the same inputs and settings.
    """
    hs = model.settings
    case = _load(row, hs, settings)
    pet = case.pet if hs.mode == "ct+pet" else None
    maps = voxel_feature_maps(case.ct_float, case.mask, pet, hs)
    labels_img = model.apply(maps, _supervoxels_of(case, maps, hs, settings, stage1))
    labels = sitk.GetArrayFromImage(labels_img)
    k = model.k_
    voxel_ml = float(np.prod(labels_img.GetSpacing())) / 1000.0
    out: dict[str, Any] = {"hab_k": float(k)}
    out.update({f"hab_{key}": v for key, v in heterogeneity_features(labels, k, voxel_ml).items()})
    # Per-habitat intensities and radiomics on each modality's native grid (the habitat map is moved
    # there with nearest neighbour), so SUVmax is not lowered by interpolation.
    ct = case.ct_float
    native = {"ct": (ct, maps.to_grid(labels_img, ct))}
    if pet is not None:
        native["pet"] = (pet, maps.to_grid(labels_img, pet))
        suv = sitk.GetArrayViewFromImage(pet)
        on_pet = sitk.GetArrayViewFromImage(native["pet"][1])
        for h in range(1, k + 1):
            inside = on_pet == h
            out[f"hab_h{h}_SUVmean"] = float(suv[inside].mean()) if inside.any() else np.nan
            out[f"hab_h{h}_SUVmax"] = float(suv[inside].max()) if inside.any() else np.nan
    engines = engines if engines is not None else habitat_engines(settings, hs.mode)
    for modality, engine in engines.items():
        image, grid_labels = native[modality]
        values, errors = engine.extract_with_errors(image, habitat_masks(grid_labels, k))
        for region, feats in values.items():
            out.update({f"{modality}_{region}_{key}": v for key, v in feats.items()})
            out[f"diagnostics_{region}_{modality}"] = errors.get(region, "ok")
    if labels_dir is not None:
        from radfeat.utils.atomic import write_image

        write_image(native["ct"][1], Path(labels_dir) / f"{case.case_id}_habitats.nii.gz")
        _write_habitat_seg(case, native["ct"][1], k, Path(labels_dir) / f"{case.case_id}_habitats.seg.dcm")
    return out


def _write_habitat_seg(case: Case, labels: sitk.Image, k: int, path: Path) -> None:
    """Beside the NIfTI label map: a DICOM-SEG on the CT series when the CT came from DICOM slices on
    their own (regular) grid, so the habitats open in a viewer next to the scan."""
    from radfeat.dicom.series import series_slices

    ct_path = Path(str(case.row["ct"]))
    if not ct_path.is_dir():
        return
    series = case.row.get("ct_series")
    slices = series_slices(ct_path, str(series) if isinstance(series, str) and series else None)
    if slices.irregular or slices.multiframe:
        return  # resampled or enhanced: no one-to-one source slices
    from radfeat.dicom.seg import write_label_map_seg

    write_label_map_seg(labels, slices.files, path, segment_names=[f"habitat {h}" for h in range(1, k + 1)])


def habitat_masks(labels: sitk.Image, k: int) -> dict[str, sitk.Image]:
    """One binary mask per habitat (``hab1`` … ``habk``) from a label map."""
    masks = {}
    for h in range(1, k + 1):
        m = sitk.Cast(labels == h, sitk.sitkUInt8)
        m.CopyInformation(labels)
        masks[f"hab{h}"] = m
    return masks


def labels_dir_for(out_path: str | Path) -> Path:
    """Folder of the habitat label maps written beside a table: ``<table stem>_labels``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.stem + "_labels")


def model_summary(model: HabitatModel) -> pd.DataFrame:
    """One row per habitat: mean HU, SUV (and entropies) in the training data, ordered 1..k."""
    table = pd.DataFrame(model.habitat_means_, columns=model.feature_names_)
    table.index = [f"hab{h}" for h in range(1, model.k_ + 1)]
    table.attrs["settings"] = asdict(model.settings)
    return table
