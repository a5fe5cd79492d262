"""Read one DICOM image series (CT or PET) from a folder: slices grouped by SeriesInstanceUID, ordered
along the slice normal, checked for missing/duplicate slices, and — when the slice spacing is not
uniform (e.g. GE whole-body PET, 3.19–3.29 mm) — resampled to a regular grid along the normal, the
resampling recorded in the returned notes.

Multi-frame (enhanced) objects are one file holding all slices; ITK reads them as a 3D volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radfeat.errors import ImageReadError

__all__ = [
    "SPACING_TOLERANCE",
    "SeriesSlices",
    "series_slices",
    "read_series",
    "regular_positions",
]

#: Relative deviation of a slice distance from the median above which the spacing counts as irregular.
SPACING_TOLERANCE = 0.01


@dataclass
class SeriesSlices:
    """The slice files of one series, ordered along the slice normal, with their headers.

    Attributes
    ----------
    folder : Path
    series_uid : str
    files : list of str
        Ordered by position along the slice normal (ascending).
    headers : list of pydicom.Dataset
        Headers only (no pixel data), same order.
    positions : numpy.ndarray
        Position (mm) of each slice along the normal; empty for a multi-frame object.
    """

    folder: Path
    series_uid: str
    files: list[str]
    headers: list[Any]
    positions: np.ndarray = field(default_factory=lambda: np.array([]))

    @property
    def modality(self) -> str:
        return str(getattr(self.headers[0], "Modality", ""))

    @property
    def multiframe(self) -> bool:
        return len(self.files) == 1 and int(getattr(self.headers[0], "NumberOfFrames", 1) or 1) > 1

    @property
    def irregular(self) -> bool:
        """True when the slice distances differ from their median by more than :data:`SPACING_TOLERANCE`."""
        if self.positions.size < 3:
            return False
        steps = np.diff(self.positions)
        usual = float(np.median(steps))
        return bool(np.max(np.abs(steps - usual)) > SPACING_TOLERANCE * usual)


def _normal(ds: Any) -> np.ndarray | None:
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is None or len(iop) != 6:
        return None
    return np.cross(np.array(iop[:3], float), np.array(iop[3:], float))


def series_slices(folder: str | Path, series_uid: str | None = None) -> SeriesSlices:
    """The image slices of one series in ``folder`` (files of other series and non-image objects ignored).

    Raises
    ------
    ImageReadError
        No image series, several without ``series_uid``, the UID not found, duplicate positions or
        missing slices (a gap > 1.5 × the usual distance).
    """
    import pydicom

    folder = Path(folder)
    groups: dict[str, list[tuple[str, Any]]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not a DICOM file: skipped, as viewers do
            continue
        if "ImagePositionPatient" not in ds and int(getattr(ds, "NumberOfFrames", 1) or 1) <= 1:
            continue  # RTSTRUCT, SEG without per-file position, reports…
        if str(getattr(ds, "Modality", "")) in ("SEG", "RTSTRUCT", "SR", "REG"):
            continue
        groups.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((str(path), ds))
    if not groups:
        raise ImageReadError(
            "folder holds no readable DICOM series of images",
            path=folder,
            hint="point the manifest at the folder that contains the .dcm slices of the series",
        )
    if series_uid:
        if series_uid not in groups:
            raise ImageReadError(
                f"SeriesInstanceUID {series_uid} is not in the folder (found: {', '.join(sorted(groups))})",
                path=folder,
                hint="correct the series column of the manifest, or run `radfeat import` again",
            )
        chosen = series_uid
    elif len(groups) > 1:
        listing = "; ".join(
            f"{uid} ({str(getattr(items[0][1], 'Modality', '?'))}, {len(items)} files, "
            f"{str(getattr(items[0][1], 'SeriesDescription', '') or '').strip() or 'no description'})"
            for uid, items in sorted(groups.items())
        )
        raise ImageReadError(
            f"folder holds {len(groups)} DICOM image series: {listing}",
            path=folder,
            hint="name the one to use in the manifest's ct_series / pet_series column (its "
            "SeriesInstanceUID), or run `radfeat import` on the folder",
        )
    else:
        chosen = next(iter(groups))
    items = groups[chosen]
    normal = _normal(items[0][1])
    if len(items) == 1 or normal is None:
        return SeriesSlices(folder, chosen, [f for f, _ in items], [d for _, d in items])
    positions = np.array([float(np.dot(np.array(d.ImagePositionPatient, float), normal)) for _, d in items])
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    slices = SeriesSlices(
        folder, chosen, [items[i][0] for i in order], [items[i][1] for i in order], positions
    )
    _check_positions(slices)
    return slices


def _check_positions(slices: SeriesSlices, gap_factor: float = 1.5) -> None:
    steps = np.diff(slices.positions)
    if steps.size == 0:
        return
    if np.any(steps <= 1e-6):
        raise ImageReadError(
            f"DICOM series has {int(np.sum(steps <= 1e-6))} slice(s) at the same position (duplicates)",
            path=slices.folder,
            hint="keep one copy of each slice",
        )
    if steps.size < 2:
        return
    usual = float(np.median(steps))
    gaps = np.flatnonzero(steps > gap_factor * usual)
    if gaps.size:
        i = int(gaps[0])
        raise ImageReadError(
            f"DICOM series has missing slices: {gaps.size} gap(s); first gap {steps[i]:.2f} mm between "
            f"{slices.positions[i]:.2f} and {slices.positions[i + 1]:.2f} mm (usual distance {usual:.2f} mm)",
            path=slices.folder,
            hint="export the complete series again from the PACS",
        )


def regular_positions(positions: np.ndarray) -> np.ndarray:
    """Regular slice positions (mm) from the first slice, at the median distance, covering the series."""
    step = float(np.median(np.diff(positions)))
    count = int(np.floor((positions[-1] - positions[0]) / step + 1e-6)) + 1
    return positions[0] + step * np.arange(count)


def _resample_along_normal(array: np.ndarray, positions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Linear interpolation of (z, y, x) slices from ``positions`` to ``targets`` (mm, ascending)."""
    upper = np.clip(np.searchsorted(positions, targets, side="right"), 1, positions.size - 1)
    lower = upper - 1
    weight = (targets - positions[lower]) / (positions[upper] - positions[lower])
    weight = np.clip(weight, 0.0, 1.0)[:, None, None]
    return array[lower] * (1.0 - weight) + array[upper] * weight


def read_series(
    slices: SeriesSlices,
    *,
    pixel_type: int | None = sitk.sitkFloat64,
    slice_factors: np.ndarray | None = None,
    irregular: str = "resample",
) -> tuple[sitk.Image, list[str]]:
    """Read the voxels of ``slices`` (rescale slope/intercept applied) as one 3D image.

    Parameters
    ----------
    slices : SeriesSlices
    pixel_type : int or None
        Output pixel type; ``None`` keeps the stored type (ignored when resampling or scaling: float64).
    slice_factors : array, optional
        One multiplier per slice (SUV conversion), applied before any resampling.
    irregular : {"resample", "refuse", "keep"}
        What to do with non-uniform slice spacing; ``"keep"`` returns the stored slices (z spacing the
        median distance, true positions in ``slices.positions``), for checks against native references.

    Returns
    -------
    image, notes
        The image on a regular grid and what was done to get it (for provenance).
    """
    notes: list[str] = []
    try:
        if slices.multiframe:
            image = sitk.ReadImage(slices.files[0], sitk.sitkFloat64 if pixel_type is None else pixel_type)
            notes.append("multi-frame DICOM object read as one volume")
        else:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(slices.files)
            need_float = slice_factors is not None or (slices.irregular and irregular != "keep")
            if need_float:
                reader.SetOutputPixelType(sitk.sitkFloat64)
            elif pixel_type is not None:
                reader.SetOutputPixelType(pixel_type)
            # ITK warns about non-uniform sampling; radfeat handles it below and records it in the notes.
            warnings_on = sitk.ProcessObject.GetGlobalWarningDisplay()
            sitk.ProcessObject.SetGlobalWarningDisplay(warnings_on and not slices.irregular)
            try:
                image = reader.Execute()
            finally:
                sitk.ProcessObject.SetGlobalWarningDisplay(warnings_on)
    except RuntimeError as exc:
        raise ImageReadError(
            f"cannot read the DICOM series ({(str(exc).strip().splitlines() or [exc])[-1]})",
            path=slices.folder,
            hint="check that the series is complete and uncompressed or in a transfer syntax GDCM reads",
        ) from exc
    if image.GetDimension() != 3:
        raise ImageReadError(
            f"expected a 3D volume, got {image.GetDimension()}D", path=slices.folder, hint="give a 3D series"
        )
    if slice_factors is None and not (slices.irregular and irregular != "keep"):
        return image, notes
    array = sitk.GetArrayFromImage(image)
    if slice_factors is not None:
        if len(slice_factors) != array.shape[0]:
            raise ImageReadError(
                f"{len(slice_factors)} slice factors for {array.shape[0]} slices",
                path=slices.folder,
                hint="a multi-frame PET needs per-frame headers; export it as single-slice files",
            )
        array = array * np.asarray(slice_factors, float)[:, None, None]
    spacing = list(image.GetSpacing())
    if slices.irregular and irregular == "keep":
        spacing[2] = float(np.median(np.diff(slices.positions)))
    if slices.irregular and irregular != "keep":
        steps = np.diff(slices.positions)
        if irregular == "refuse":
            raise ImageReadError(
                f"slice spacing is not uniform ({steps.min():.3f}–{steps.max():.3f} mm)",
                path=slices.folder,
                hint="allow radfeat to resample it to a regular grid, or resample the series first",
            )
        targets = regular_positions(slices.positions)
        array = _resample_along_normal(array, slices.positions, targets)
        spacing[2] = float(targets[1] - targets[0])
        notes.append(
            f"non-uniform slice spacing {steps.min():.3f}–{steps.max():.3f} mm: "
            f"{len(slices.positions)} slices resampled (linear, along the slice normal) to "
            f"{len(targets)} slices at {spacing[2]:.4f} mm"
        )
    out = sitk.GetImageFromArray(array)
    out.SetOrigin(image.GetOrigin())
    out.SetDirection(image.GetDirection())
    out.SetSpacing(spacing)
    return out, notes


def series_header(folder: str | Path, series_uid: str | None = None):
    """The grid a series is read on (:class:`radfeat.io.ImageHeader`), from its headers alone."""
    from radfeat.io import ImageHeader

    slices = series_slices(folder, series_uid)
    first = slices.headers[0]
    if slices.multiframe:
        reader = sitk.ImageFileReader()
        reader.SetFileName(slices.files[0])
        reader.ReadImageInformation()
        return ImageHeader(
            tuple(reader.GetSize()),
            tuple(reader.GetSpacing()),
            tuple(reader.GetOrigin()),
            tuple(reader.GetDirection()),
        )
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    iop = np.array(first.ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    if slices.positions.size > 1:
        positions = regular_positions(slices.positions) if slices.irregular else slices.positions
        dz = float(np.median(np.diff(positions)))
        count = positions.size
    else:
        dz = float(getattr(first, "SliceThickness", 1.0) or 1.0)
        count = 1
    direction = (iop[0], iop[3], normal[0], iop[1], iop[4], normal[1], iop[2], iop[5], normal[2])
    return ImageHeader(
        (int(first.Columns), int(first.Rows), count),
        (col_spacing, row_spacing, dz),
        tuple(float(v) for v in first.ImagePositionPatient),
        tuple(float(v) for v in direction),
    )
