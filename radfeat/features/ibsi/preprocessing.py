"""IBSI 1 image processing before feature computation (chapter 2): interpolation, re-segmentation,
discretisation. Pure functions on (z, y, x) arrays with spacing in mm.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "interpolate",
    "resegment",
    "discretise_fixed_bin_number",
    "discretise_fixed_bin_size",
]


def _centre_aligned_grid(shape: tuple[int, ...], spacing: tuple[float, ...], new_spacing: tuple[float, ...]):
    """New grid size and, per axis, the new voxel centres in old index units (IBSI 2.4: grid alignment by
    centre; n_new = ceil(n · s / s_new))."""
    sizes, coordinates = [], []
    for n, s, t in zip(shape, spacing, new_spacing, strict=True):
        m = int(math.ceil(round(n * s / t, 6)))
        offset = (s * (n - 1) - t * (m - 1)) / 2.0  # mm from the old first centre to the new first centre
        sizes.append(m)
        coordinates.append((offset + t * np.arange(m)) / s)
    return tuple(sizes), coordinates


def interpolate(
    image: np.ndarray,
    mask: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    new_spacing_zyx: tuple[float, float, float],
    order: int = 1,
    mask_threshold: float = 0.5,
    round_intensities: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Image and mask on a new grid of ``new_spacing_zyx`` (mm) aligned by centre (IBSI 2.4).

    ``order`` 1 is (tri/bi)linear, 3 the cubic spline; points beyond the outer voxel centres take the
    nearest value. The mask is interpolated linearly and kept where ≥ ``mask_threshold`` (partial-volume
    0.5). Keep an axis' spacing to leave it as it is (2D interpolation: the slice spacing unchanged).
    """
    from scipy import ndimage

    shape, axes = _centre_aligned_grid(image.shape, tuple(spacing_zyx), tuple(new_spacing_zyx))
    grid = np.meshgrid(*axes, indexing="ij")
    coordinates = np.stack([g.ravel() for g in grid])
    values = ndimage.map_coordinates(np.asarray(image, dtype=float), coordinates, order=order, mode="nearest")
    weights = ndimage.map_coordinates(np.asarray(mask, dtype=float), coordinates, order=1, mode="nearest")
    values = values.reshape(shape)
    if round_intensities:
        values = np.round(values)
    return values, weights.reshape(shape) >= mask_threshold


def resegment(
    image: np.ndarray,
    mask: np.ndarray,
    intensity_range: tuple[float | None, float | None] | None = None,
    outlier_sigma: float | None = None,
) -> np.ndarray:
    """The intensity mask: ROI voxels within ``intensity_range`` (inclusive; None = open) and, when
    ``outlier_sigma`` is set, within mean ± sigma · SD of the ROI's intensities (IBSI 2.5)."""
    keep = np.asarray(mask, dtype=bool).copy()
    if intensity_range is not None:
        lo, hi = intensity_range
        if lo is not None:
            keep &= image >= lo
        if hi is not None:
            keep &= image <= hi
    if outlier_sigma is not None:
        values = image[keep]
        mean, sd = float(values.mean()), float(values.std())
        keep &= (image >= mean - outlier_sigma * sd) & (image <= mean + outlier_sigma * sd)
    return keep


def discretise_fixed_bin_number(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Grey levels 1..``n_bins`` of equal width between the values' minimum and maximum (IBSI 2.7, FBN)."""
    x = np.asarray(values, dtype=float)
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.ones(x.shape, dtype=np.int64)
    levels = np.floor(n_bins * (x - lo) / (hi - lo)).astype(np.int64) + 1
    return np.minimum(levels, n_bins)


def discretise_fixed_bin_size(
    values: np.ndarray, bin_width: float, minimum: float | None = None
) -> np.ndarray:
    """Grey levels ``floor((x − minimum) / bin_width) + 1`` (IBSI 2.7, FBS); ``minimum``: the lower
    re-segmentation bound, else the values' minimum."""
    x = np.asarray(values, dtype=float)
    lo = float(x.min()) if minimum is None else float(minimum)
    return np.floor((x - lo) / bin_width + 1e-9).astype(np.int64) + 1
