"""One way to read a case: :func:`load_case` turns a manifest row into a checked :class:`Case`.

Extraction (every feature provider), habitats, the fusion network's patches and validation all read
cases through here, so a case passes or fails the same way everywhere, with the same message:

* the mask label: the row's ``mask_label``, else the settings' ``run.mask_label``, else 1
  (:func:`mask_label_for`);
* images complete (:func:`radfeat.filecheck.check_complete`), 3D, masks integer-valued and non-empty;
* DICOM folders read by series (``ct_series`` / ``pet_series``: the SeriesInstanceUID when a folder
  holds several);
* the mask: a label-map volume on the image's grid (size, spacing, origin, direction within
  ``GEOMETRY_TOLERANCE`` × the spacing), else refused — a mask is never silently given the image's
  geometry; or an RTSTRUCT / DICOM-SEG (``roi`` names the ROI or segment) rasterised on the image grid;
* PET in SUV (:func:`radfeat.io.read_pet_suv`; ``pet_decay_correction`` overrides a missing tag, the
  settings' ``run.suv_variant`` chooses SUVbw/lbm/bsa/ibw), its mask from ``pet_mask``, else the same
  RTSTRUCT/SEG rasterised **directly on the PET grid**, else the CT label map's covered volume fraction
  on the PET grid (:func:`radfeat.geometry.mask_on_grid`);
* no NaN or infinite voxel inside a mask.

Every failure is a :class:`~radfeat.errors.CaseFailure` at stage ``read`` naming the case, the file
and the fix.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radfeat.errors import CaseFailure, RadfeatError

__all__ = [
    "Case",
    "load_case",
    "case_reading_settings",
    "mask_label_for",
    "input_fingerprint",
    "pet_mask_from_ct",
    "GEOMETRY_TOLERANCE",
    "PET_MASK_COVERAGE",
]

#: Relative tolerance (× spacing) for origin/spacing, absolute for direction cosines.
GEOMETRY_TOLERANCE = 1e-3
#: Fraction of a PET voxel's volume the CT mask must cover for the voxel to belong to the PET VOI.
PET_MASK_COVERAGE = 0.5

#: Optional text columns of a row that change how a case is read.
_OPTIONAL_TEXT = ("ct_series", "pet_series", "roi", "pet_roi", "pet_decay_correction")

_GEOMETRY_HINT = "resample the mask onto the image grid, or re-export it from the image series"


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and str(value) != ""


def case_reading_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The settings that change how :func:`load_case` reads a case (``run.mask_label``,
    ``run.suv_variant``): every feature provider puts them in its cache key."""
    run = (settings or {}).get("run") or {}
    return {"mask_label": int(run.get("mask_label", 1)), "suv_variant": str(run.get("suv_variant", "bw"))}


def mask_label_for(row: dict[str, Any], settings: dict[str, Any] | None = None) -> int:
    """The tumour's label value: the row's ``mask_label``, else ``run.mask_label``, else 1."""
    if _present(row.get("mask_label")):
        try:
            return int(float(row["mask_label"]))
        except (TypeError, ValueError):
            raise CaseFailure(
                f"mask_label {row['mask_label']!r} is not an integer",
                stage="read",
                case_id=str(row.get("case_id")),
                hint="set mask_label to the integer label value of the tumour",
            ) from None
    return case_reading_settings(settings)["mask_label"]


@dataclass
class Case:
    """A checked case: images in physical space (mm), masks on their images' grids.

    Attributes
    ----------
    case_id : str
    row : dict
        The manifest row (absolute paths).
    label : int
        The mask label value that was used.
    ct : SimpleITK.Image
        CT in HU in its stored pixel type (as pyradiomics reads files).
    mask : SimpleITK.Image
        UInt8 tumour mask (1 inside) on the CT grid.
    pet : SimpleITK.Image or None
        PET in SUVbw (float64).
    pet_mask : SimpleITK.Image or None
        UInt8 tumour mask on the PET grid.
    suv_info : dict or None
        The SUV conversion record (DICOM PET), for provenance.
    notes : list of str
        How the masks were obtained (ROI chosen, contours outside the image, resampling).
    """

    case_id: str
    row: dict[str, Any]
    label: int
    ct: sitk.Image
    mask: sitk.Image
    pet: sitk.Image | None = None
    pet_mask: sitk.Image | None = None
    suv_info: dict | None = None
    notes: list[str] = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def ct_float(self) -> sitk.Image:
        """CT as float64 (habitat maps, patches)."""
        if "ct_float" not in self._cache:
            self._cache["ct_float"] = sitk.Cast(self.ct, sitk.sitkFloat64)
        return self._cache["ct_float"]


def _fail(message: str, case_id: str, path: Any, hint: str) -> CaseFailure:
    return CaseFailure(message, stage="read", case_id=case_id, path=path, hint=hint)


def _check_grid(image: sitk.Image, mask: sitk.Image, mask_path: str, image_col: str, case_id: str) -> None:
    from radfeat.geometry import compare_geometry

    mismatches = compare_geometry(image, mask, GEOMETRY_TOLERANCE)
    if mismatches:
        raise _fail(
            f"image/mask geometry mismatch ({image_col} vs its mask): " + "; ".join(map(str, mismatches)),
            case_id,
            mask_path,
            _GEOMETRY_HINT,
        )
    mask.CopyInformation(image)  # differences within the tolerance only


def _check_finite(image: sitk.Image, mask: sitk.Image, what: str, path: str, case_id: str) -> None:
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return
    values = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(mask) > 0]
    bad = int((~np.isfinite(values)).sum())
    if bad:
        raise _fail(
            f"{bad} voxel(s) inside the mask are NaN or infinite",
            case_id,
            path,
            f"repair the {what} volume (NaN voxels) or exclude the case",
        )


def load_case(
    row: dict[str, Any],
    settings: dict[str, Any] | None = None,
    *,
    pet: bool | None = None,
) -> Case:
    """Read and check one manifest row (absolute paths, as :meth:`Manifest.rows` gives).

    Parameters
    ----------
    row : dict
        ``case_id``, ``ct``, ``mask``; optionally ``pet``, ``pet_mask``, ``pet_units``, ``mask_label``.
    settings : dict, optional
        radfeat settings (for ``run.mask_label``).
    pet : bool, optional
        Read the PET: ``None`` when the row has one, ``True`` to require it, ``False`` to skip it.

    Raises
    ------
    CaseFailure
        Stage ``read``, with the case, the file and a hint.
    """
    from radfeat.io import dicom_object_modality, read_image, read_mask_on, read_pet_suv

    case_id = str(row["case_id"])
    label = mask_label_for(row, settings)
    text = {k: (str(row[k]).strip() if _present(row.get(k)) else None) for k in _OPTIONAL_TEXT}
    try:
        ct = read_image(row["ct"], pixel_type=None, series_uid=text["ct_series"])
        mask, notes = read_mask_on(row["mask"], ct, label=label, roi=text["roi"], case_id=case_id)
        _check_grid(ct, mask, row["mask"], "ct", case_id)
        _check_finite(ct, mask, "CT", row["ct"], case_id)
        case = Case(case_id, row, label, ct, mask, notes=notes)
        want_pet = _present(row.get("pet")) if pet is None else pet
        if want_pet and not _present(row.get("pet")):
            raise _fail(
                "this step needs a PET image and the row has none",
                case_id,
                None,
                "add the PET in the manifest's `pet` column, or use a CT-only setting (habitats mode: ct)",
            )
        if want_pet:
            image, info = read_pet_suv(
                row["pet"],
                row.get("pet_units"),
                case_id=case_id,
                series_uid=text["pet_series"],
                variant=case_reading_settings(settings)["suv_variant"],
                decay_correction=text["pet_decay_correction"],
            )
            pet_roi = text["pet_roi"] or text["roi"]
            if _present(row.get("pet_mask")):
                pet_mask, notes = read_mask_on(
                    row["pet_mask"], image, label=label, roi=pet_roi, case_id=case_id
                )
                _check_grid(image, pet_mask, row["pet_mask"], "pet", case_id)
            elif dicom_object_modality(row["mask"]) is not None:
                # Contours / segments rasterised on the PET grid itself, not a resampled CT mask.
                pet_mask, notes = read_mask_on(row["mask"], image, label=label, roi=pet_roi, case_id=case_id)
            else:
                pet_mask, notes = pet_mask_from_ct(mask, image), []
            case.notes.extend(f"PET {n}" for n in notes)
            if not sitk.GetArrayViewFromImage(pet_mask).any():
                raise _fail(
                    "the tumour covers no PET voxel (mask moved onto the PET grid is empty)",
                    case_id,
                    row["pet"],
                    "check that PET and CT share a frame of reference, or give a pet_mask",
                )
            _check_finite(image, pet_mask, "PET", row["pet"], case_id)
            case.pet, case.pet_mask = image, pet_mask
            case.suv_info = info.to_dict() if info is not None else None
    except CaseFailure:
        raise
    except RadfeatError as exc:
        raise CaseFailure(exc.message, stage="read", case_id=case_id, path=exc.path, hint=exc.hint) from exc
    return case


def pet_mask_from_ct(ct_mask: sitk.Image, pet: sitk.Image) -> sitk.Image:
    """A CT-grid mask on the PET grid: the PET voxels whose volume the CT mask covers at least
    :data:`PET_MASK_COVERAGE` (volume fraction, :func:`radfeat.geometry.mask_coverage`)."""
    from radfeat.geometry import mask_on_grid

    return mask_on_grid(ct_mask, pet, PET_MASK_COVERAGE)


def input_fingerprint(row: dict[str, Any]) -> str:
    """Hash of the case's input files (path, size, modification time; every file of a DICOM folder)
    and of the columns that change how they are read. Cheap: no voxel data read."""
    h = hashlib.sha256()
    for column in ("ct", "pet", "mask", "pet_mask", "pet_units", "mask_label", *_OPTIONAL_TEXT):
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
