"""Compiled kernels for the texture matrices: one pass over the ROI voxels per matrix family.

The NumPy builders in :mod:`radfeat.features.ibsi.matrices` spend their time in whole-box array passes
(one per direction or neighbour) and, for zones, in a connected-component filter; these kernels visit
each ROI voxel once and look its 26 (or 8) neighbours up in place. They are compiled by numba on first
use and cached on disk (``cache=True``: seconds once per installation, milliseconds after).

Every kernel takes the same flat grid: ``grey`` — the grey levels (int32, ``1..n_levels`` inside the
ROI, **0 outside**) of the box padded by one empty plane on every side, raveled in C order —, ``roi``
— the flat indices of the ROI voxels, ascending —, and ``offsets`` — neighbour or direction offsets as
flat index steps. ``plane`` is the number of voxels per padded z-plane when counts are wanted per slice
(slice = ``index // plane - 1``), else 0. Counts equal the NumPy builders' exactly (tests run both).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "cooccurrence_counts",
    "run_length_counts",
    "equal_level_zones",
    "dependence_counts",
    "neighbourhood_difference_sums",
]

_JIT = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def _slice(i, plane):  # pragma: no cover - compiled
    return i // plane - 1 if plane > 0 else 0


@numba.njit(**_JIT)
def cooccurrence_counts(grey, roi, offsets, plane, n_slices, n_levels):  # pragma: no cover - compiled
    """Symmetric co-occurrence counts (n_slices, directions, n_levels, n_levels)."""
    out = np.zeros((n_slices, offsets.shape[0], n_levels, n_levels))
    for i in roi:
        s = _slice(i, plane)
        a = grey[i] - 1
        for d in range(offsets.shape[0]):
            b = grey[i + offsets[d]] - 1
            if b >= 0:
                out[s, d, a, b] += 1.0
                out[s, d, b, a] += 1.0
    return out


@numba.njit(**_JIT)
def run_length_counts(grey, roi, offsets, plane, n_slices, n_levels, longest):  # pragma: no cover
    """Run-length counts (n_slices, directions, n_levels, longest): a run starts at a ROI voxel whose
    predecessor along the direction is outside the ROI or of another grey level; it is walked forward."""
    out = np.zeros((n_slices, offsets.shape[0], n_levels, longest))
    for i in roi:
        s = _slice(i, plane)
        a = grey[i]
        for d in range(offsets.shape[0]):
            step = offsets[d]
            if grey[i - step] == a:
                continue  # inside a run that started earlier
            length = 1
            j = i + step
            while grey[j] == a:
                length += 1
                j += step
            out[s, d, a - 1, length - 1] += 1.0
    return out


@numba.njit(**_JIT)
def equal_level_zones(grey, roi, offsets, plane, distance, with_distance):  # pragma: no cover
    """Connected sets of ROI voxels of equal grey level (neighbours at ``offsets``), by flood fill.

    Returns, per zone, its size, grey level, slice (of its first voxel; 0 when ``plane`` is 0) and the
    smallest ``distance`` of its voxels (a flat grid like ``grey``, read only when ``with_distance``)."""
    n = roi.shape[0]
    seen = np.zeros(grey.shape[0], dtype=np.bool_)
    stack = np.empty(n, dtype=np.int64)
    sizes = np.empty(n, dtype=np.int64)
    greys = np.empty(n, dtype=np.int64)
    slices = np.empty(n, dtype=np.int64)
    nearest = np.zeros(n, dtype=np.int64)
    n_zones = 0
    for i in roi:
        if seen[i]:
            continue
        a = grey[i]
        seen[i] = True
        stack[0] = i
        top = 1
        size = 0
        low = distance[i] if with_distance else 0
        while top > 0:
            top -= 1
            c = stack[top]
            size += 1
            if with_distance and distance[c] < low:
                low = distance[c]
            for d in range(offsets.shape[0]):
                j = c + offsets[d]
                if grey[j] == a and not seen[j]:
                    seen[j] = True
                    stack[top] = j
                    top += 1
        sizes[n_zones] = size
        greys[n_zones] = a
        slices[n_zones] = _slice(i, plane)
        nearest[n_zones] = low
        n_zones += 1
    return sizes[:n_zones], greys[:n_zones], slices[:n_zones], nearest[:n_zones]


@numba.njit(**_JIT)
def dependence_counts(grey, roi, offsets, plane, n_slices, n_levels, alpha):  # pragma: no cover
    """NGLDM counts (n_slices, n_levels, 1 + len(offsets)): ROI voxels of grey level i with j ROI
    neighbours within ``alpha`` grey levels of their own."""
    out = np.zeros((n_slices, n_levels, offsets.shape[0] + 1))
    for i in roi:
        a = grey[i]
        count = 0
        for d in range(offsets.shape[0]):
            b = grey[i + offsets[d]]
            if b > 0 and abs(b - a) <= alpha:
                count += 1
        out[_slice(i, plane), a - 1, count] += 1.0
    return out


@numba.njit(**_JIT)
def neighbourhood_difference_sums(grey, roi, offsets, plane, n_slices, n_levels):  # pragma: no cover
    """NGTDM ``s_i`` and ``n_i`` (two (n_slices, n_levels) arrays): |i − mean grey level of the voxel's
    ROI neighbours| summed per grey level, over ROI voxels with at least one ROI neighbour."""
    s_sum = np.zeros((n_slices, n_levels))
    n_count = np.zeros((n_slices, n_levels))
    for i in roi:
        total = 0.0
        neighbours = 0.0
        for d in range(offsets.shape[0]):
            b = grey[i + offsets[d]]
            if b > 0:
                total += b
                neighbours += 1.0
        if neighbours > 0:
            a = grey[i]
            s = _slice(i, plane)
            s_sum[s, a - 1] += abs(a - total / neighbours)
            n_count[s, a - 1] += 1.0
    return s_sum, n_count
