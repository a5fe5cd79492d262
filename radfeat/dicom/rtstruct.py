"""RTSTRUCT → binary mask on the grid of the image it is used with.

Contours are placed by their **position**, never by the SOP Instance UIDs they reference (exports cropped
or re-sliced after contouring reference slices that no longer exist): each contour plane goes to the
image slice whose centre is nearest, a voxel belongs to the ROI when its **centre** lies inside the
polygon, and the contours of one plane combine by the **even–odd rule** (a contour inside another is a
hole, one inside a hole is an island). The same contours rasterise on the CT grid for CT features and
directly on the PET grid for PET features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radfeat.errors import MaskError

__all__ = [
    "RTStruct",
    "StructureROI",
    "read_rtstruct",
    "select_roi",
    "rasterise_roi",
    "AmbiguousROI",
    "ROINotFound",
]


class AmbiguousROI(ValueError):
    """Several ROIs (or segments) fit the choice, or none was chosen among several."""


class ROINotFound(ValueError):
    """No ROI (or segment) fits the choice."""


@dataclass
class StructureROI:
    """One ROI of a structure set: its number, name and closed planar contours (N×3 arrays, mm)."""

    number: int
    name: str
    contours: list[np.ndarray] = field(default_factory=list)
    skipped: int = 0  # POINT / OPEN_PLANAR contours (not areas)


@dataclass
class RTStruct:
    """A structure set read from an RTSTRUCT file."""

    path: Path
    frame_of_reference_uid: str
    referenced_series_uids: list[str]
    rois: list[StructureROI]

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rois]


def read_rtstruct(path: str | Path) -> RTStruct:
    """Read the ROIs and their contours (no geometry needed yet)."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001
        raise MaskError(f"cannot read the RTSTRUCT ({exc})", path=path, hint="check the file") from exc
    if str(getattr(ds, "Modality", "")) != "RTSTRUCT":
        raise MaskError(
            f"file Modality is {getattr(ds, 'Modality', 'missing')!r}, not RTSTRUCT",
            path=path,
            hint="give the structure-set file (or a DICOM-SEG / label-map volume) as the mask",
        )
    names = {int(r.ROINumber): str(r.ROIName) for r in getattr(ds, "StructureSetROISequence", [])}
    frames = [str(r.ReferencedFrameOfReferenceUID) for r in getattr(ds, "StructureSetROISequence", [])]
    series: list[str] = []
    for ref in getattr(ds, "ReferencedFrameOfReferenceSequence", []):
        for study in getattr(ref, "RTReferencedStudySequence", []):
            for s in getattr(study, "RTReferencedSeriesSequence", []):
                series.append(str(s.SeriesInstanceUID))
        frames.append(str(getattr(ref, "FrameOfReferenceUID", "")))
    rois = {n: StructureROI(n, name) for n, name in names.items()}
    for item in getattr(ds, "ROIContourSequence", []):
        roi = rois.setdefault(int(item.ReferencedROINumber), StructureROI(int(item.ReferencedROINumber), "?"))
        for contour in getattr(item, "ContourSequence", []):
            if str(getattr(contour, "ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                roi.skipped += 1
                continue
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            if len(points) >= 3:
                roi.contours.append(points)
    frame = next((f for f in frames if f), "")
    return RTStruct(path, frame, series, sorted(rois.values(), key=lambda r: r.number))


def select_roi(names: list[str], spec: str | int | None, *, what: str = "ROI") -> int:
    """Index of the one ROI (or segment) that ``spec`` names.

    ``spec`` is tried as an exact name, then case-insensitively, then as a regular expression matched
    against the whole name; ``None`` picks the only ROI. Raises :class:`ROINotFound` or
    :class:`AmbiguousROI` (both ``ValueError``) listing the choices.
    """
    if spec is None or (isinstance(spec, float) and np.isnan(spec)) or str(spec).strip() == "":
        if len(names) == 1:
            return 0
        raise AmbiguousROI(f"several {what}s and none chosen; choices: {names}")
    text = str(spec).strip()
    for rule in (lambda n: n == text, lambda n: n.lower() == text.lower()):
        hits = [i for i, n in enumerate(names) if rule(n)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise AmbiguousROI(f"{len(hits)} {what}s are named {text!r}; choices: {names}")
    try:
        pattern = re.compile(text, re.IGNORECASE)
    except re.error:
        pattern = None
    hits = [i for i, n in enumerate(names) if pattern is not None and pattern.fullmatch(n)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise AmbiguousROI(
            f"{text!r} matches {len(hits)} {what}s {[names[i] for i in hits]}; choices: {names}"
        )
    raise ROINotFound(f"no {what} matches {text!r}; choices: {names}")


def _contour_plane_index(points_index: np.ndarray) -> float:
    return float(np.mean(points_index[:, 2]))


def rasterise_roi(
    roi: StructureROI,
    reference: sitk.Image,
    *,
    slice_positions: np.ndarray | None = None,
    path: Any = None,
    case_id: str | None = None,
) -> tuple[sitk.Image, list[str]]:
    """The ROI as a UInt8 mask (1 inside) on ``reference``'s grid, and notes on what was left out.

    ``slice_positions`` (mm along the slice normal, one per slice) places contour planes on slices
    that are not evenly spaced (a series read with ``irregular="keep"``).

    Raises
    ------
    MaskError
        When no contour lands on the image (every plane outside its slices).
    """
    from matplotlib.path import Path as PolygonPath

    size = reference.GetSize()
    spacing = np.array(reference.GetSpacing())
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    origin = np.array(reference.GetOrigin())
    to_index = np.linalg.inv(direction @ np.diag(spacing))
    planes: dict[float, list[np.ndarray]] = {}
    for points in roi.contours:
        index = (points - origin) @ to_index.T
        if slice_positions is not None:
            normal = direction[:, 2]
            depth = float(np.mean(points @ normal))
            index[:, 2] = np.interp(
                depth, slice_positions, np.arange(len(slice_positions)), left=-1e9, right=1e9
            )
        planes.setdefault(round(_contour_plane_index(index), 3), []).append(index[:, :2])
    notes: list[str] = []
    if roi.skipped:
        notes.append(f"{roi.skipped} non-area contour(s) (POINT/OPEN_PLANAR) of {roi.name!r} ignored")
    levels = np.array(sorted(planes))
    mask = np.zeros((size[2], size[1], size[0]), np.uint8)
    if levels.size == 0:
        raise MaskError(
            f"ROI {roi.name!r} has no closed contour", case_id=case_id, path=path, hint="choose another ROI"
        )
    # Each slice takes the nearest contour plane within half a slice — or, when at least three planes are
    # evenly spaced more sparsely than the slices (contours rasterised on a finer grid), within half the
    # plane spacing.
    reach = 0.5
    if levels.size >= 3:
        gaps = np.diff(levels)
        usual = float(np.median(gaps))
        if np.all(np.abs(gaps - usual) <= 0.1 * usual):
            reach = max(0.5, usual / 2.0)
    used: set[float] = set()
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    for k in range(size[2]):
        distance = np.abs(levels - k)
        nearest = int(np.argmin(distance))
        if distance[nearest] > reach + 1e-6:
            continue
        level = float(levels[nearest])
        used.add(level)
        inside = np.zeros((size[1], size[0]), bool)
        for polygon in planes[level]:
            lo = np.maximum(np.floor(polygon.min(axis=0)).astype(int), 0)
            hi = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + 1, [size[0], size[1]])
            if np.any(hi <= lo):
                continue
            sub_x, sub_y = xx[lo[1] : hi[1], lo[0] : hi[0]], yy[lo[1] : hi[1], lo[0] : hi[0]]
            centres = np.column_stack([sub_x.ravel(), sub_y.ravel()]).astype(float)
            hit = PolygonPath(polygon).contains_points(centres).reshape(sub_x.shape)
            inside[lo[1] : hi[1], lo[0] : hi[0]] ^= hit  # even–odd: holes and islands
        mask[k] = inside
    outside_planes = [lv for lv in levels if lv not in used]
    if outside_planes:
        notes.append(
            f"{len(outside_planes)} contour plane(s) of {roi.name!r} outside the image's slices (z index "
            f"{min(outside_planes):.1f}…{max(outside_planes):.1f} of 0…{size[2] - 1})"
        )
    all_xy = np.concatenate([p for lv in planes for p in planes[lv]])
    if np.any(all_xy < -0.5) or np.any(all_xy > np.array([size[0], size[1]]) - 0.5):
        notes.append(
            f"contours of {roi.name!r} reach outside the image in-plane; the mask is cut at the border"
        )
    if not mask.any():
        raise MaskError(
            f"ROI {roi.name!r} covers no voxel of the image (its contours lie outside the series)",
            case_id=case_id,
            path=path,
            hint="pair the RTSTRUCT with the series it was drawn on (same FrameOfReferenceUID)",
        )
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(reference)
    return image, notes
