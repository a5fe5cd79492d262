"""The cohort manifest: one row per case, paths relative to the manifest file.

Columns: ``case_id``, ``ct``, ``mask`` (required); ``pet``, ``pet_mask``, ``pet_units``, ``mask_label``,
``cohort``, label and clinical columns (optional, carried through to the feature table). Images are
volume files or DICOM series folders (``ct_series`` / ``pet_series``: the SeriesInstanceUID when a
folder holds several); masks are label-map volumes, RTSTRUCT or DICOM-SEG files (``roi`` / ``pet_roi``:
the ROI or segment, by name, regular expression or segment number); ``pet_decay_correction`` overrides a
missing DecayCorrection tag. ``radfeat import`` writes such a manifest from a DICOM export.

:func:`validate_manifest` checks every row and reports **all** problems in one pass, each naming the
row, the case, the column and the path, with a hint on how to fix it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radfeat.errors import (
    ImageReadError,
    ManifestError,
    MaskError,
    RadfeatError,
    SUVConversionError,
)
from radfeat.geometry import compare_geometry
from radfeat.io import (
    _normalise_pet_units,
    dicom_object_modality,
    is_dicom_series,
    read_image_information,
    read_mask,
    read_mask_on,
    suv_info_from_dicom,
)

__all__ = [
    "REQUIRED_COLUMNS",
    "PATH_COLUMNS",
    "Problem",
    "ValidationReport",
    "Manifest",
    "load_manifest",
    "validate_manifest",
]

REQUIRED_COLUMNS = ("case_id", "ct", "mask")
PATH_COLUMNS = ("ct", "pet", "mask", "pet_mask")
#: Columns with a meaning to radfeat; every other column is a label or clinical covariate.
#: Optional columns that say how to read a case (DICOM series UIDs, ROI names, decay override).
READ_COLUMNS = ("ct_series", "pet_series", "roi", "pet_roi", "pet_decay_correction")
RESERVED_COLUMNS = (*PATH_COLUMNS, *READ_COLUMNS, "case_id", "pet_units", "mask_label", "cohort")


@dataclass(frozen=True)
class Problem:
    """One problem found in the manifest.

    ``row`` is the 1-based data row (the header is row 0), ``severity`` is ``"error"`` (the case
    cannot be used) or ``"warning"``.
    """

    row: int | None
    case_id: str | None
    column: str | None
    path: str | None
    code: str
    message: str
    hint: str
    severity: str = "error"

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.case_id is not None:
            where.append(f"case {self.case_id!r}")
        if self.column is not None:
            where.append(f"column {self.column}")
        loc = ", ".join(where) or "manifest"
        path = f" ({self.path})" if self.path else ""
        return f"{self.severity.upper()} {loc}{path}: {self.message}. Hint: {self.hint}"


@dataclass
class ValidationReport:
    """All problems of one manifest; ``ok`` is False when any case is unusable."""

    manifest: str
    n_cases: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def unusable_cases(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in self.errors:
            seen.setdefault(str(p.case_id), None)
        return list(seen)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "n_cases": self.n_cases,
            "ok": self.ok,
            "n_errors": len(self.errors),
            "n_warnings": len(self.problems) - len(self.errors),
            "unusable_cases": self.unusable_cases,
            "problems": [asdict(p) for p in self.problems],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass(frozen=True)
class Manifest:
    """A loaded manifest: the table with absolute paths, and where it came from."""

    table: pd.DataFrame
    path: Path

    @property
    def case_ids(self) -> list[str]:
        return self.table["case_id"].tolist()

    def label_columns(self) -> list[str]:
        """Columns that are neither paths nor reserved (labels and clinical covariates)."""
        return [c for c in self.table.columns if c not in RESERVED_COLUMNS]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per case (absolute paths; empty cells as ``None``), as the per-case functions take."""
        return [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in self.table.to_dict("records")
        ]

    def row(self, case_id: str) -> pd.Series:
        return self.table.loc[self.table["case_id"] == case_id].iloc[0]


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ManifestError("manifest not found", path=path, hint="check the path")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"case_id": str}, keep_default_na=True)
    except Exception as exc:  # noqa: BLE001 - any parser error becomes a manifest error
        raise ManifestError(
            f"cannot read manifest ({exc})",
            path=path,
            hint="give a CSV (comma-separated, with a header) or a Parquet file",
        ) from exc


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def load_manifest(path: str | Path) -> Manifest:
    """Read a CSV/Parquet manifest and resolve its paths relative to the manifest's folder.

    Raises
    ------
    ManifestError
        When the file cannot be read or a required column is missing.
    """
    path = Path(path).resolve()
    table = _read_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(
            f"required column(s) missing: {', '.join(missing)}; found: {', '.join(map(str, table.columns))}",
            path=path,
            hint="a manifest needs at least case_id, ct and mask columns (pet is usual)",
        )
    table = table.copy()
    table["case_id"] = ["" if _is_blank(v) else str(v).strip() for v in table["case_id"].tolist()]
    for column in PATH_COLUMNS:
        if column in table.columns:
            table[column] = [
                None if _is_blank(v) else str((path.parent / str(v).strip()).resolve())
                for v in table[column].tolist()
            ]
    return Manifest(table=table.reset_index(drop=True), path=path)


def validate_manifest(
    path: str | Path,
    label: int = 1,
    *,
    check_images: bool = True,
    geometry_tolerance: float = 1e-3,
    min_roi_voxels: int = 8,
) -> ValidationReport:
    """Check a manifest and every file it names; return all problems found (never stops early).

    Parameters
    ----------
    path : str or Path
        The manifest (CSV or Parquet).
    label : int, default=1
        Mask label value, unless a row gives its own ``mask_label``.
    check_images : bool, default=True
        Read image headers and masks (False: only file existence and ids).
    geometry_tolerance : float, default=1e-3
        Relative tolerance (× spacing) for origin/spacing and absolute for direction cosines.
    min_roi_voxels : int, default=8
        A tumour with fewer voxels gets a warning (the radiomics settings' ``minimumROISize``: such a
        case fails in extraction).
    """
    try:
        manifest = load_manifest(path)
    except ManifestError as exc:
        report = ValidationReport(manifest=str(path), n_cases=0)
        report.problems.append(Problem(None, None, None, str(path), "manifest", exc.message, exc.hint or ""))
        return report
    table = manifest.table
    report = ValidationReport(manifest=str(manifest.path), n_cases=len(table))
    add = report.problems.append

    counts = table["case_id"].value_counts()
    for i, row in table.iterrows():
        rownum = int(i) + 1
        case = row["case_id"] or None
        if case is None:
            add(
                Problem(
                    rownum,
                    None,
                    "case_id",
                    None,
                    "empty_case_id",
                    "case_id is empty",
                    "give every row a unique case_id",
                )
            )
        elif counts[case] > 1:
            add(
                Problem(
                    rownum,
                    case,
                    "case_id",
                    None,
                    "duplicate_case_id",
                    f"case_id appears {counts[case]} times",
                    "case ids must be unique; rename or drop the duplicate rows",
                )
            )
        for problem in _check_row(row, rownum, label, check_images, geometry_tolerance, min_roi_voxels):
            add(problem)
    return report


def _check_row(
    row: pd.Series, rownum: int, default_label: int, check_images: bool, tol: float, min_roi: int = 8
) -> list[Problem]:
    case = row["case_id"] or None
    problems: list[Problem] = []

    def problem(column: str | None, code: str, message: str, hint: str, severity: str = "error"):
        path = row.get(column) if column in PATH_COLUMNS else None
        problems.append(Problem(rownum, case, column, path, code, message, hint, severity))

    present: dict[str, str] = {}
    for column in PATH_COLUMNS:
        value = row.get(column)
        if value is None or _is_blank(value):
            if column in REQUIRED_COLUMNS:
                problem(
                    column,
                    "missing_path",
                    f"no {column} path given",
                    f"fill the {column} column for this case",
                )
            continue
        if not Path(value).exists():
            problem(
                column,
                "missing_file",
                "file not found",
                "check the path; paths are relative to the manifest's folder",
            )
            continue
        present[column] = value

    label = default_label
    if "mask_label" in row.index and not _is_blank(row["mask_label"]):
        try:
            label = int(float(row["mask_label"]))
        except ValueError:
            problem(
                "mask",
                "bad_mask_label",
                f"mask_label {row['mask_label']!r} is not an integer",
                "set mask_label to the integer label value of the tumour",
            )

    try:
        pet_units = _normalise_pet_units(row.get("pet_units"))
    except SUVConversionError as exc:
        problem("pet", "bad_pet_units", exc.message, exc.hint or "")
        pet_units = None

    if not check_images:
        return problems

    def text(column: str) -> str | None:
        value = row.get(column)
        return None if value is None or _is_blank(value) else str(value).strip()

    headers: dict[str, Any] = {}
    dicom_masks: dict[str, str] = {}
    for column, value in present.items():
        if column in ("mask", "pet_mask") and dicom_object_modality(value) is not None:
            dicom_masks[column] = value  # rasterised on its image's grid below
            continue
        try:
            headers[column] = read_image_information(value, series_uid=text(f"{column}_series"))
        except (ImageReadError, SUVConversionError) as exc:
            problem(column, "unreadable_image", exc.message, exc.hint or "")

    for mask_col, image_col in (("mask", "ct"), ("pet_mask", "pet")):
        if mask_col in dicom_masks and image_col in headers:
            roi_spec = (text("pet_roi") or text("roi")) if mask_col == "pet_mask" else text("roi")
            try:
                roi, _ = read_mask_on(dicom_masks[mask_col], headers[image_col], roi=roi_spec, case_id=case)
                headers[mask_col] = headers[image_col]
            except MaskError as exc:
                problem(mask_col, "mask_roi", exc.message, exc.hint or "")
            continue
        if mask_col not in headers:
            continue
        try:
            roi = read_mask(present[mask_col], label, case_id=case)
            n_voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(roi)))
            if n_voxels < min_roi:
                problem(
                    mask_col,
                    "small_roi",
                    f"the tumour has {n_voxels} voxel(s), fewer than the minimum ROI size {min_roi}",
                    "check the segmentation (and the mask label); radiomics needs a larger ROI, so this "
                    "case will fail in extraction",
                    severity="warning",
                )
        except MaskError as exc:
            code = "empty_mask" if "empty" in exc.message else "mask_label_absent"
            if "non-integer" in exc.message:
                code = "mask_not_integer"
            problem(mask_col, code, exc.message, exc.hint or "")
        except ImageReadError as exc:
            problem(mask_col, "unreadable_image", exc.message, exc.hint or "")
        if image_col in headers:
            mismatches = compare_geometry(headers[image_col], headers[mask_col], tol)
            if mismatches:
                problem(
                    mask_col,
                    "geometry_mismatch",
                    f"{mask_col} grid differs from {image_col}: " + "; ".join(str(m) for m in mismatches),
                    f"resample the mask onto the {image_col} grid, or re-export it from the "
                    f"{image_col} series",
                )

    if "pet" in headers:
        if is_dicom_series(present["pet"]):
            if pet_units != "SUV":
                try:
                    suv_info_from_dicom(
                        present["pet"],
                        case_id=case,
                        series_uid=text("pet_series"),
                        decay_correction=text("pet_decay_correction"),
                    )
                except RadfeatError as exc:
                    problem("pet", "pet_no_suv", exc.message, exc.hint or "")
        elif pet_units != "SUV":
            problem(
                "pet",
                "pet_no_suv",
                "PET volume has no DICOM header and pet_units is not SUV",
                "set pet_units=SUV if the volume is already in SUVbw, or give the DICOM series",
            )
    if "ct" in headers and "pet" in headers:
        ct_hdr, pet_hdr = headers["ct"], headers["pet"]
        if not _boxes_overlap(ct_hdr, pet_hdr):
            problem(
                "pet",
                "no_overlap",
                "PET and CT fields of view do not overlap in physical space",
                "check that PET and CT are from the same study and frame of reference",
            )
    return problems


def _physical_extent(header: Any) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corner (mm) of the voxel centres of an image or header reader."""
    origin = np.array(header.GetOrigin())
    direction = np.array(header.GetDirection()).reshape(3, 3)
    span = np.array(header.GetSpacing()) * (np.array(header.GetSize()) - 1)
    unit_corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    corners = origin + (unit_corners * span) @ direction.T
    return corners.min(axis=0), corners.max(axis=0)


def _boxes_overlap(a: Any, b: Any) -> bool:
    lo_a, hi_a = _physical_extent(a)
    lo_b, hi_b = _physical_extent(b)
    return bool(np.all(hi_a >= lo_b) and np.all(hi_b >= lo_a))
