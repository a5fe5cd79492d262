"""Grid operations in physical space (mm): resampling, PET→CT alignment, ROI cropping, checks.

SimpleITK images carry origin, spacing and direction, so PET and CT on different grids align by their
physical coordinates. Arrays from ``sitk.GetArrayFromImage`` are (z, y, x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from radfeat.errors import GeometryError, MaskError

__all__ = [
    "GeometryMismatch",
    "compare_geometry",
    "resample_to_reference",
    "resample_isotropic",
    "align_pet_to_ct",
    "physical_bounding_box",
    "crop_to_physical_box",
    "crop_to_roi",
    "mask_volume_ml",
    "mask_centroid_mm",
    "mask_coverage",
    "mask_on_grid",
]

#: Sub-samples per reference voxel and axis are chosen so that each mask voxel is hit about twice per
#: axis, capped here (the fraction is then exact to about 1 / (2 · cap) per axis).
MAX_SUPERSAMPLE = 10
#: Samples of one coverage computation at most (memory bound: 1 byte each).
MAX_COVERAGE_SAMPLES = 150_000_000

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
}


@dataclass(frozen=True)
class GeometryMismatch:
    """One disagreement between two grids: which property, and both values."""

    field: str
    image: tuple[float, ...]
    mask: tuple[float, ...]

    def __str__(self) -> str:
        fmt = ", ".join
        return (
            f"{self.field} image ({fmt(f'{v:g}' for v in self.image)}) vs "
            f"mask ({fmt(f'{v:g}' for v in self.mask)})"
        )


def compare_geometry(
    image: sitk.Image | sitk.ImageFileReader,
    mask: sitk.Image | sitk.ImageFileReader,
    tolerance: float = 1e-3,
) -> list[GeometryMismatch]:
    """List the grid properties on which ``image`` and ``mask`` differ.

    Accepts images or header-only readers. Spacing and origin are compared with an absolute
    tolerance of ``tolerance`` × the image spacing (mm); direction cosines with ``tolerance``.
    Returns an empty list when the grids agree.
    """
    out: list[GeometryMismatch] = []
    size_i, size_m = tuple(image.GetSize()), tuple(mask.GetSize())
    if size_i != size_m:
        out.append(GeometryMismatch("size", size_i, size_m))
    sp_i, sp_m = np.array(image.GetSpacing()), np.array(mask.GetSpacing())
    tol_mm = tolerance * sp_i
    if np.any(np.abs(sp_i - sp_m) > tol_mm):
        out.append(GeometryMismatch("spacing", tuple(sp_i), tuple(sp_m)))
    or_i, or_m = np.array(image.GetOrigin()), np.array(mask.GetOrigin())
    if np.any(np.abs(or_i - or_m) > tol_mm):
        out.append(GeometryMismatch("origin", tuple(or_i), tuple(or_m)))
    di_i, di_m = np.array(image.GetDirection()), np.array(mask.GetDirection())
    if np.any(np.abs(di_i - di_m) > tolerance):
        out.append(GeometryMismatch("direction", tuple(di_i), tuple(di_m)))
    return out


def resample_to_reference(
    image: sitk.Image,
    reference: sitk.Image,
    interpolator: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample ``image`` onto the grid of ``reference`` (identity transform, physical space).

    Parameters
    ----------
    interpolator : {"linear", "nearest", "bspline"}, default="linear"
        ``"nearest"`` for masks and label maps.
    default_value : float, default=0.0
        Value outside ``image``'s field of view (e.g. -1000 HU for CT, 0 SUV for PET).
    """
    return sitk.Resample(
        image,
        reference,
        sitk.Transform(),
        _interpolator(interpolator),
        float(default_value),
        image.GetPixelID(),
    )


def resample_isotropic(
    image: sitk.Image,
    spacing_mm: float | tuple[float, float, float],
    interpolator: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample onto a grid of the given spacing (mm) covering the same physical extent.

    The new grid keeps the origin and direction; its size is ``ceil(extent / spacing)`` per axis.
    """
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))
    old_spacing = np.array(image.GetSpacing())
    old_size = np.array(image.GetSize())
    new_size = np.maximum(1, np.ceil(old_size * old_spacing / spacing - 1e-6)).astype(int)
    return sitk.Resample(
        image,
        [int(v) for v in new_size],
        sitk.Transform(),
        _interpolator(interpolator),
        image.GetOrigin(),
        tuple(float(v) for v in spacing),
        image.GetDirection(),
        float(default_value),
        image.GetPixelID(),
    )


def align_pet_to_ct(pet: sitk.Image, ct: sitk.Image, default_suv: float = 0.0) -> sitk.Image:
    """Linear resampling of a PET volume (SUV) onto the CT grid."""
    return resample_to_reference(pet, ct, "linear", default_suv)


def physical_bounding_box(mask: sitk.Image, margin_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounding box (mm, x/y/z) of the voxels > 0 of ``mask``, grown by ``margin_mm``.

    The box spans voxel edges (centres ± half a voxel), so a one-voxel mask has the voxel's extent.
    """
    array = sitk.GetArrayViewFromImage(mask)
    nz = np.nonzero(array)
    if nz[0].size == 0:
        raise MaskError("mask is empty; no bounding box", hint="check the mask label value")
    lo_idx = np.array([nz[2].min(), nz[1].min(), nz[0].min()], dtype=float) - 0.5
    hi_idx = np.array([nz[2].max(), nz[1].max(), nz[0].max()], dtype=float) + 0.5
    corners = np.array(
        [
            mask.TransformContinuousIndexToPhysicalPoint([float(c[0]), float(c[1]), float(c[2])])
            for c in _box_corners(lo_idx, hi_idx)
        ]
    )
    return corners.min(axis=0) - margin_mm, corners.max(axis=0) + margin_mm


def crop_to_physical_box(image: sitk.Image, lower_mm: np.ndarray, upper_mm: np.ndarray) -> sitk.Image:
    """Crop ``image`` to the voxels whose centres lie in [lower_mm, upper_mm] (clipped to the image)."""
    corners = _box_corners(np.asarray(lower_mm, float), np.asarray(upper_mm, float))
    idx = np.array([image.TransformPhysicalPointToContinuousIndex([float(v) for v in c]) for c in corners])
    size = np.array(image.GetSize())
    lo = np.clip(np.ceil(idx.min(axis=0) - 1e-6), 0, size - 1).astype(int)
    hi = np.clip(np.floor(idx.max(axis=0) + 1e-6), 0, size - 1).astype(int)
    if np.any(hi < lo):
        raise GeometryError(
            "region of interest lies outside the image",
            hint="check that image and mask belong to the same scan (origin/direction)",
        )
    return sitk.RegionOfInterest(image, [int(v) for v in hi - lo + 1], [int(v) for v in lo])


def crop_to_roi(
    image: sitk.Image, mask: sitk.Image, margin_mm: float = 10.0
) -> tuple[sitk.Image, sitk.Image]:
    """Crop ``image`` and ``mask`` to the mask's bounding box plus ``margin_mm`` (physical space).

    ``image`` and ``mask`` may be on different grids (e.g. PET with a CT mask); each is cropped on its
    own grid to the same physical box.
    """
    lower, upper = physical_bounding_box(mask, margin_mm)
    return crop_to_physical_box(image, lower, upper), crop_to_physical_box(mask, lower, upper)


def mask_volume_ml(mask: sitk.Image) -> float:
    """Volume of the voxels > 0 in mL (voxel count × voxel volume in mm³ / 1000)."""
    count = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    return count * float(np.prod(mask.GetSpacing())) / 1000.0


def mask_centroid_mm(mask: sitk.Image) -> np.ndarray:
    """Centroid (x, y, z) in mm of the voxels > 0, in physical coordinates."""
    nz = np.nonzero(sitk.GetArrayViewFromImage(mask))
    if nz[0].size == 0:
        raise MaskError("mask is empty; no centroid", hint="check the mask label value")
    mean_index = [float(nz[2].mean()), float(nz[1].mean()), float(nz[0].mean())]
    return np.array(mask.TransformContinuousIndexToPhysicalPoint(mean_index))


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def _interpolator(name: str) -> int:
    try:
        return _INTERPOLATORS[name]
    except KeyError:
        raise ValueError(f"interpolator {name!r} not known; choose one of {sorted(_INTERPOLATORS)}") from None


def mask_coverage(mask: sitk.Image, reference: sitk.Image, supersample: int | None = None) -> sitk.Image:
    """Fraction (0–1) of each ``reference`` voxel's volume covered by the voxels > 0 of ``mask``.

    Each reference voxel is sampled on a regular sub-grid of ``supersample``³ points (by default about
    two points per mask voxel along each axis, at most :data:`MAX_SUPERSAMPLE`), each point taking the
    mask value of the mask voxel it falls in (nearest neighbour). Unlike a linearly interpolated mask
    read at voxel centres, this is the covered volume fraction, so a threshold of 0.5 means "at least
    half of the voxel lies in the ROI". Only the reference voxels near the ROI are sampled.

    Parameters
    ----------
    mask : SimpleITK.Image
        Binary or label mask on any grid (e.g. the CT), voxels > 0 inside.
    reference : SimpleITK.Image
        The target grid (e.g. the PET).
    supersample : int, optional
        Sub-samples per reference voxel and axis (the same on every axis).

    Returns
    -------
    SimpleITK.Image
        Float32 fractions on the ``reference`` grid.
    """
    out = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.float32)
    inside = sitk.Cast(mask > 0, sitk.sitkUInt8)
    inside.CopyInformation(mask)
    if not sitk.GetArrayViewFromImage(inside).any():
        image = sitk.GetImageFromArray(out)
        image.CopyInformation(reference)
        return image
    ref_spacing = np.array(reference.GetSpacing())
    lower, upper = physical_bounding_box(inside, margin_mm=float(ref_spacing.max()))
    corners = _box_corners(lower, upper)
    idx = np.array(
        [reference.TransformPhysicalPointToContinuousIndex([float(v) for v in c]) for c in corners]
    )
    size = np.array(reference.GetSize())
    lo = np.clip(np.floor(idx.min(axis=0)), 0, size - 1).astype(int)
    hi = np.clip(np.ceil(idx.max(axis=0)), 0, size - 1).astype(int)
    if np.any(idx.max(axis=0) < 0) or np.any(idx.min(axis=0) > size - 1):
        image = sitk.GetImageFromArray(out)
        image.CopyInformation(reference)
        return image
    extent = hi - lo + 1
    if supersample is None:
        ratio = ref_spacing / np.array(mask.GetSpacing()).min()
        supersample = int(np.clip(np.ceil(2 * ratio.max()), 1, MAX_SUPERSAMPLE))
    while supersample > 1 and int(np.prod(extent)) * supersample**3 > MAX_COVERAGE_SAMPLES:
        supersample -= 1
    s = int(supersample)
    fine_spacing = ref_spacing / s
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    # Centre of sub-sample 0 of voxel ``lo``: the voxel's corner plus half a sub-sample, in mm.
    start_index = lo - 0.5 + 0.5 / s
    origin = np.array(reference.GetOrigin()) + direction @ (start_index * ref_spacing)
    fine = sitk.Resample(
        inside,
        [int(v) for v in extent * s],
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        [float(v) for v in origin],
        [float(v) for v in fine_spacing],
        reference.GetDirection(),
        0,
        sitk.sitkUInt8,
    )
    arr = sitk.GetArrayViewFromImage(fine)  # (z, y, x)
    ez, ey, ex = extent[::-1]
    frac = arr.reshape(ez, s, ey, s, ex, s).mean(axis=(1, 3, 5), dtype=np.float64)
    out[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1] = frac
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(reference)
    return image


def mask_on_grid(mask: sitk.Image, reference: sitk.Image, min_coverage: float = 0.5) -> sitk.Image:
    """A mask moved onto another grid: reference voxels at least ``min_coverage`` covered (UInt8)."""
    covered = sitk.GetArrayFromImage(mask_coverage(mask, reference)) >= min_coverage
    image = sitk.GetImageFromArray(covered.astype(np.uint8))
    image.CopyInformation(reference)
    return image
