"""Features of one case: read → align → radiomics (CT, PET) → PET descriptors. One function per stage.

:func:`extract_case` is the unit of work the runner sends to joblib or Dask workers. It raises
:class:`CaseFailure` naming the stage, the file and a hint; it never returns a half-filled row.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radfeat.errors import RadfeatError
from radfeat.features.pet import pet_descriptors
from radfeat.features.radiomics import RadiomicsEngine, column_name
from radfeat.io import read_image, read_mask, read_pet_suv

__all__ = ["CaseFailure", "CaseResult", "extract_case", "input_fingerprint", "pet_mask_from_ct"]

#: Fraction of a PET voxel the CT mask must cover for the voxel to belong to the PET VOI.
PET_MASK_COVERAGE = 0.5


class CaseFailure(RadfeatError, RuntimeError):
    """A case could not be processed; ``stage`` says where."""

    def __init__(self, message: str, *, stage: str, **kwargs: Any) -> None:
        self.stage = stage
        super().__init__(f"{stage}: {message}", **kwargs)


@dataclass
class CaseResult:
    """Feature values of one case (column → value) and seconds spent per stage."""

    case_id: str
    features: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)


def input_fingerprint(row: dict[str, Any]) -> str:
    """Hash of the case's input files (path, size, modification time; every file of a DICOM folder).

    Cheap (no voxel data read); any change to an input invalidates the cached result.
    """
    h = hashlib.sha256()
    for column in ("ct", "pet", "mask", "pet_mask", "pet_units", "mask_label"):
        value = row.get(column)
        h.update(f"{column}={value}".encode())
        if column in ("ct", "pet", "mask", "pet_mask") and isinstance(value, str):
            path = Path(value)
            files = sorted(path.iterdir()) if path.is_dir() else [path]
            for f in files:
                try:
                    st = f.stat()
                    h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
                except OSError:
                    h.update(f"{f.name}:missing".encode())
    return h.hexdigest()[:16]


def pet_mask_from_ct(ct_mask: sitk.Image, pet: sitk.Image) -> sitk.Image:
    """Move a CT-grid mask onto the PET grid: the PET voxels whose volume the CT mask covers at least
    :data:`PET_MASK_COVERAGE` (volume fraction, :func:`radfeat.geometry.mask_coverage`)."""
    from radfeat.geometry import mask_on_grid

    return mask_on_grid(ct_mask, pet, PET_MASK_COVERAGE)


@contextmanager
def _stage(name: str, case_id: str, timings: dict[str, float]) -> Iterator[None]:
    """Time a stage; turn radfeat and numeric/library errors raised in it into a :class:`CaseFailure`."""
    t0 = time.perf_counter()
    try:
        yield
    except CaseFailure:
        raise
    except RadfeatError as exc:
        raise CaseFailure(exc.message, stage=name, case_id=case_id, path=exc.path, hint=exc.hint) from exc
    except (ValueError, RuntimeError, ArithmeticError, MemoryError) as exc:
        raise CaseFailure(
            f"{type(exc).__name__}: {exc}", stage=name, case_id=case_id, hint=_hint_for(name)
        ) from exc
    finally:
        timings[name] = time.perf_counter() - t0


def _hint_for(stage: str) -> str:
    return {
        "read": "run `radfeat validate` on the manifest to see what is wrong with the inputs",
        "ct_radiomics": "a very small or thin mask cannot give texture features; check the segmentation",
        "pet_radiomics": "a tumour of a few PET voxels cannot give texture; disable PET radiomics "
        "(pet: null in the settings) or check the mask",
        "pet_descriptors": "check that the PET is in SUV and the mask overlaps the tumour",
    }.get(stage, "see the error message")


def _check_finite(image: sitk.Image, mask: sitk.Image, what: str, path: str, case_id: str) -> None:
    values = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(mask) > 0]
    bad = int((~np.isfinite(values)).sum())
    if bad:
        raise CaseFailure(
            f"{bad} voxel(s) inside the mask are NaN or infinite",
            stage="read",
            case_id=case_id,
            path=path,
            hint=f"repair the {what} volume (NaN voxels) or exclude the case",
        )


def extract_case(
    row: dict[str, Any],
    settings: dict[str, Any],
    engines: dict[str, RadiomicsEngine] | None = None,
) -> CaseResult:
    """All features of one manifest row (absolute paths, as :func:`radfeat.manifest.load_manifest` gives).

    Columns: ``ct_tumour_<pyradiomics key>``, ``pet_tumour_<pyradiomics key>``,
    ``pet_tumour_suv_<descriptor>``.

    Raises
    ------
    CaseFailure
        With the stage (read, ct_radiomics, pet_descriptors, pet_radiomics), file and hint.
    """
    case_id = str(row["case_id"])
    label = int(row["mask_label"]) if _present(row.get("mask_label")) else settings["run"]["mask_label"]
    engines = engines if engines is not None else build_engines(settings)
    timings: dict[str, float] = {}
    features: dict[str, float] = {}

    with _stage("read", case_id, timings):
        ct = read_image(row["ct"], pixel_type=None)
        ct_mask = read_mask(row["mask"], label, case_id=case_id)
        if not _same_grid(ct, ct_mask):
            _raise_grid(ct, ct_mask, row, case_id)
        ct_mask.CopyInformation(ct)
        if ct.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
            _check_finite(ct, ct_mask, "CT", row["ct"], case_id)

    if "ct" in engines:
        with _stage("ct_radiomics", case_id, timings):
            values = engines["ct"].extract(ct, {"tumour": ct_mask})["tumour"]
            features.update({column_name("ct", "tumour", k): v for k, v in values.items()})

    if _present(row.get("pet")):
        with _stage("read", case_id, timings):
            pet, _ = read_pet_suv(row["pet"], row.get("pet_units"), case_id=case_id)
            if _present(row.get("pet_mask")):
                pet_mask = read_mask(row["pet_mask"], label, case_id=case_id)
                if not _same_grid(pet, pet_mask):
                    _raise_grid(pet, pet_mask, {**row, "mask": row["pet_mask"]}, case_id)
                pet_mask.CopyInformation(pet)
            else:
                pet_mask = pet_mask_from_ct(ct_mask, pet)
            if not sitk.GetArrayViewFromImage(pet_mask).any():
                raise CaseFailure(
                    "the tumour covers no PET voxel (mask moved onto the PET grid is empty)",
                    stage="read",
                    case_id=case_id,
                    path=row["pet"],
                    hint="check that PET and CT share a frame of reference, or give a pet_mask",
                )
            _check_finite(pet, pet_mask, "PET", row["pet"], case_id)
        descriptor_settings = settings.get("pet_descriptors") or {}
        if descriptor_settings.get("enabled", True):
            with _stage("pet_descriptors", case_id, timings):
                opts = {k: v for k, v in descriptor_settings.items() if k != "enabled"}
                values = pet_descriptors(
                    sitk.GetArrayViewFromImage(pet),
                    sitk.GetArrayViewFromImage(pet_mask) > 0,
                    pet.GetSpacing(),
                    **opts,
                )
                features.update({column_name("pet", "tumour", f"suv_{k}"): v for k, v in values.items()})
        if "pet" in engines:
            with _stage("pet_radiomics", case_id, timings):
                values = engines["pet"].extract(pet, {"tumour": pet_mask})["tumour"]
                features.update({column_name("pet", "tumour", k): v for k, v in values.items()})
    return CaseResult(case_id, features, timings)


def build_engines(settings: dict[str, Any]) -> dict[str, RadiomicsEngine]:
    """One radiomics engine per enabled modality (validated once, reused for every case)."""
    return {m: RadiomicsEngine(settings[m]) for m in ("ct", "pet") if settings.get(m)}


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and str(value) != ""


def _same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-3) -> bool:
    from radfeat.geometry import compare_geometry

    return not compare_geometry(a, b, tolerance)


def _raise_grid(image: sitk.Image, mask: sitk.Image, row: dict, case_id: str) -> None:
    from radfeat.geometry import compare_geometry

    detail = "; ".join(str(m) for m in compare_geometry(image, mask))
    raise CaseFailure(
        f"image/mask geometry mismatch: {detail}",
        stage="read",
        case_id=case_id,
        path=row["mask"],
        hint="resample the mask onto the image grid, or re-export it from the image series",
    )
