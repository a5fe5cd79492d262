"""Texture matrices of IBSI 1 (chapter 3.6–3.11), vectorised over slices and directions.

Every builder takes a discretised (z, y, x) image of grey levels ``1..n_levels`` (int), a boolean ROI
mask of the same shape and returns counts per *slice* (first axis; length 1 when ``by_slice`` is false)
and, for the directional matrices, per *direction* (second axis). The aggregation methods of IBSI
(2D / 2.5D / 3D, averaged / merged) are sums and means over those two axes, done in
:mod:`radfeat.features.ibsi.aggregation`. Slices are planes of equal z (axial for the usual image
orientation). Neighbourhoods are Chebyshev distance 1: 8 neighbours in a slice, 26 in 3D.

Two implementations give the same counts: compiled kernels (:mod:`radfeat.features.ibsi.kernels`, one
pass over the ROI voxels; used when numba is installed) and whole-array NumPy passes (the reference,
and the fallback). ``RADFEAT_MATRIX_BACKEND=numpy`` (or ``numba``) forces one; see
:func:`matrix_backend`. Every builder takes an optional ``grid`` (:class:`KernelGrid` of the same levels
and mask) so that several builders on one ROI share the kernels' set-up; the NumPy path ignores it.
"""

from __future__ import annotations

import itertools
import os

import numpy as np

__all__ = [
    "DIRECTIONS_2D",
    "DIRECTIONS_3D",
    "cooccurrence_matrices",
    "run_length_matrices",
    "zone_matrices",
    "neighbourhood_difference",
    "dependence_matrices",
    "matrix_backend",
    "KernelGrid",
    "shared_grid",
]

#: The 13 unique (dz, dy, dx) directions of 3D (one of each ± pair), in lexicographic order.
DIRECTIONS_3D: tuple[tuple[int, int, int], ...] = tuple(
    d for d in itertools.product((-1, 0, 1), repeat=3) if d > (0, 0, 0)
)
#: The 4 in-slice directions (0°, 45°, 90°, 135°).
DIRECTIONS_2D: tuple[tuple[int, int, int], ...] = tuple(d for d in DIRECTIONS_3D if d[0] == 0)

MATRIX_BACKENDS = ("auto", "numba", "numpy")


def matrix_backend() -> str:
    """``"numba"`` or ``"numpy"``: the environment variable ``RADFEAT_MATRIX_BACKEND`` (``auto`` —
    numba when it imports —, ``numba`` or ``numpy``)."""
    choice = os.environ.get("RADFEAT_MATRIX_BACKEND", "auto").strip().lower() or "auto"
    if choice not in MATRIX_BACKENDS:
        raise ValueError(f"RADFEAT_MATRIX_BACKEND={choice!r} not known; valid: {list(MATRIX_BACKENDS)}")
    if choice == "numpy":
        return "numpy"
    try:
        import radfeat.features.ibsi.kernels  # noqa: F401
    except ImportError:
        if choice == "numba":
            raise
        return "numpy"
    return "numba"


class KernelGrid:
    """The compiled kernels' flat grid of one (levels, mask) pair (:mod:`radfeat.features.ibsi.kernels`):
    grey levels with 0 outside the ROI on the box padded by one empty plane, raveled, and the ROI's flat
    indices. Build it once and pass it as ``grid=`` to every builder called on the same pair."""

    def __init__(self, levels: np.ndarray, mask: np.ndarray) -> None:
        shape = tuple(n + 2 for n in mask.shape)
        grey = np.zeros(shape, dtype=np.int32)
        grey[1:-1, 1:-1, 1:-1] = np.where(mask, levels, 0)
        self.grey = grey.ravel()
        self.roi = np.flatnonzero(self.grey)
        if len(self.roi) != int(np.count_nonzero(mask)):
            raise ValueError("texture matrices need grey levels >= 1 at every ROI voxel")
        self.strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
        self.n_planes = mask.shape[0]
        self.box = tuple(mask.shape)
        self.max_level = int(self.grey.max(initial=0))

    def steps(self, offsets) -> np.ndarray:
        """(dz, dy, dx) offsets as flat index steps."""
        return np.asarray(offsets, dtype=np.int64).reshape(-1, 3) @ self.strides

    def slicing(self, by_slice: bool) -> tuple[int, int]:
        """(voxels per padded plane or 0, number of slices counted)."""
        return (int(self.strides[0]), self.n_planes) if by_slice else (0, 1)

    def flat(self, volume: np.ndarray) -> np.ndarray:
        """A (z, y, x) volume of the box on this grid (int64, padded with 0, raveled)."""
        return np.pad(volume.astype(np.int64), 1).ravel()


def shared_grid(levels: np.ndarray, mask: np.ndarray) -> KernelGrid | None:
    """A :class:`KernelGrid` to share between builders when the compiled kernels are in use, else None."""
    return KernelGrid(levels, mask) if matrix_backend() == "numba" else None


def _kernel_grid(
    levels: np.ndarray, mask: np.ndarray, grid: KernelGrid | None, n_levels: int | None = None
) -> KernelGrid:
    """``grid`` (or a new one), checked against the builder's inputs: the kernels index their output by
    grey level without bounds checks, so a level above ``n_levels`` must be refused here."""
    grid = KernelGrid(levels, mask) if grid is None else grid
    if grid.box != tuple(mask.shape):
        raise ValueError(f"kernel grid of a {grid.box} box given for a {tuple(mask.shape)} mask")
    if n_levels is not None and grid.max_level > n_levels:
        raise ValueError(f"grey level {grid.max_level} in the ROI is above n_levels = {n_levels}")
    return grid


def _slice_index(mask: np.ndarray, by_slice: bool) -> tuple[np.ndarray, int]:
    """z of every voxel (broadcast grid) and the number of slices (1 when not by slice)."""
    if not by_slice:
        return np.zeros(mask.shape, dtype=np.int64), 1
    return np.broadcast_to(np.arange(mask.shape[0])[:, None, None], mask.shape), mask.shape[0]


def _shifted(array: np.ndarray, offset: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(``array`` at k, ``array`` at k + offset) for every k where both lie in the grid."""
    src, dst = [], []
    for d, n in zip(offset, array.shape, strict=True):
        src.append(slice(max(0, -d), n - max(0, d)))
        dst.append(slice(max(0, d), n - max(0, -d)))
    return array[tuple(src)], array[tuple(dst)]


def cooccurrence_matrices(
    levels: np.ndarray,
    mask: np.ndarray,
    n_levels: int,
    directions: tuple[tuple[int, int, int], ...],
    by_slice: bool = False,
    grid: KernelGrid | None = None,
) -> np.ndarray:
    """Symmetric grey-level co-occurrence counts at distance 1: (slices, directions, n_levels, n_levels).

    A pair counts when both voxels lie in the ROI; each pair is counted in both orders (IBSI's
    symmetric matrix). ``by_slice`` requires in-slice directions (dz = 0).
    """
    if by_slice and any(offset[0] != 0 for offset in directions):
        raise ValueError("slice-wise co-occurrence needs in-slice directions")
    if matrix_backend() == "numba":
        from radfeat.features.ibsi.kernels import cooccurrence_counts

        grid = _kernel_grid(levels, mask, grid, n_levels)
        return cooccurrence_counts(
            grid.grey, grid.roi, grid.steps(directions), *grid.slicing(by_slice), n_levels
        )
    z_of, n_slices = _slice_index(mask, by_slice)
    out = np.zeros((n_slices, len(directions), n_levels, n_levels))
    for d_index, offset in enumerate(directions):
        m0, m1 = _shifted(mask, offset)
        g0, g1 = _shifted(levels, offset)
        both = m0 & m1
        z = _shifted(z_of, offset)[0][both]
        flat = (z * n_levels + (g0[both] - 1)) * n_levels + (g1[both] - 1)
        counts = np.bincount(flat, minlength=n_slices * n_levels * n_levels).reshape(
            n_slices, n_levels, n_levels
        )
        out[:, d_index] = counts + counts.transpose(0, 2, 1)
    return out


def run_length_matrices(
    levels: np.ndarray,
    mask: np.ndarray,
    n_levels: int,
    directions: tuple[tuple[int, int, int], ...],
    by_slice: bool = False,
    grid: KernelGrid | None = None,
) -> np.ndarray:
    """Grey-level run-length counts: (slices, directions, n_levels, longest possible run).

    A run is a maximal line of ROI voxels of equal grey level along a direction; voxels outside the ROI
    end runs. Every ROI voxel points to its predecessor along the direction when that one continues
    the run (in the ROI, same grey level), else to itself; pointer jumping (⌈log2 n⌉ gathers) takes
    every voxel to its run's first voxel, and a run's length is how many voxels reach it.
    """
    longest = int(max(mask.shape))
    if matrix_backend() == "numba":
        from radfeat.features.ibsi.kernels import run_length_counts

        grid = _kernel_grid(levels, mask, grid, n_levels)
        steps = grid.steps(directions)
        return run_length_counts(grid.grey, grid.roi, steps, *grid.slicing(by_slice), n_levels, longest)
    coords = np.stack(np.nonzero(mask), axis=1).astype(np.int64)  # (n, 3) z, y, x
    n = len(coords)
    grey = levels[mask].astype(np.int64)
    z_of, n_slices = _slice_index(mask, by_slice)
    slices = z_of[mask].astype(np.int64)
    padded = np.array(mask.shape) + 2
    strides = np.array([padded[1] * padded[2], padded[2], 1], dtype=np.int64)
    flat = (coords + 1) @ strides
    compact = np.full(int(np.prod(padded)), -1, dtype=np.int64)
    compact[flat] = np.arange(n)
    own = np.arange(n)
    out = np.zeros((n_slices, len(directions), n_levels, longest))
    for d_index, offset in enumerate(directions):
        predecessor = compact[flat - np.asarray(offset, dtype=np.int64) @ strides]
        continues = (predecessor >= 0) & (grey[np.maximum(predecessor, 0)] == grey)
        first = np.where(continues, predecessor, own)
        reach = max(int(mask.shape[a]) for a in range(3) if offset[a] != 0)
        for _ in range(max(1, int(np.ceil(np.log2(max(reach, 2)))))):
            first = first[first]
        lengths = np.bincount(first, minlength=n)
        starts = np.flatnonzero(lengths)
        index = (slices[starts] * n_levels + (grey[starts] - 1)) * longest + (lengths[starts] - 1)
        out[:, d_index] = np.bincount(index, minlength=n_slices * n_levels * longest).reshape(
            n_slices, n_levels, longest
        )
    return out


def _connectivity(by_slice: bool) -> np.ndarray:
    structure = np.ones((3, 3, 3), dtype=bool)
    if by_slice:
        structure[0] = structure[2] = False
    return structure


def edge_distance(mask: np.ndarray, by_slice: bool = False) -> np.ndarray:
    """Distance (in voxels) of every ROI voxel to the ROI edge, 1 at the edge: taxicab (6-connected in
    3D, 4-connected within a slice), the image border counting as outside (IBSI 3.9, GLDZM)."""
    from scipy import ndimage

    padded = np.pad(mask, 1)
    metric = np.zeros((3, 3, 3), dtype=bool)
    metric[1, 1, :] = metric[1, :, 1] = True
    if not by_slice:
        metric[:, 1, 1] = True
    distance = ndimage.distance_transform_cdt(padded, metric=metric)
    return distance[1:-1, 1:-1, 1:-1]


def _equal_level_zones(levels: np.ndarray, mask: np.ndarray, by_slice: bool) -> tuple[np.ndarray, int]:
    """Labels (0 outside the ROI) of the connected sets of ROI voxels of equal grey level: 26-connected,
    or 8-connected within each slice (slices then kept apart by empty planes), in one SimpleITK pass."""
    import SimpleITK as sitk

    grey = np.where(mask, levels, 0).astype(np.int32)
    if by_slice:
        spaced = np.zeros((2 * grey.shape[0] - 1, *grey.shape[1:]), dtype=np.int32)
        spaced[::2] = grey
        grey = spaced
    labels = sitk.GetArrayFromImage(
        sitk.ScalarConnectedComponent(sitk.GetImageFromArray(grey), 0.0, True)
    ).astype(np.int64)
    if by_slice:
        labels = labels[::2]
    labels[~mask] = 0
    return labels, int(labels.max())


def zone_matrices(
    levels: np.ndarray,
    mask: np.ndarray,
    n_levels: int,
    by_slice: bool = False,
    distance_mask: np.ndarray | None = None,
    distances: bool = True,
    grid: KernelGrid | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Size-zone and distance-zone counts of the same zones: ((slices, n_levels, largest zone),
    (slices, n_levels, largest distance)); the second is ``None`` unless ``distances``.

    A zone is a connected set of ROI voxels of equal grey level (26-connected in 3D, 8-connected in a
    slice). Its distance is the smallest edge distance (:func:`edge_distance`) of its voxels, measured
    in ``distance_mask`` (IBSI: the morphological mask, before re-segmentation; default ``mask``).
    """
    n_slices = mask.shape[0] if by_slice else 1
    distance = None
    if distances:
        distance = edge_distance(mask if distance_mask is None else distance_mask, by_slice)
    size, grey, zone_slice, nearest = _zones(levels, mask, n_levels, by_slice, distance, grid)
    largest = int(size.max())
    size_flat = (zone_slice * n_levels + grey - 1) * largest + size - 1
    size_zone = np.bincount(size_flat, minlength=n_slices * n_levels * largest)
    size_zone = size_zone.reshape(n_slices, n_levels, largest).astype(float)
    if not distances:
        return size_zone, None
    farthest = int(nearest.max())
    dist_flat = (zone_slice * n_levels + grey - 1) * farthest + nearest - 1
    distance_zone = np.bincount(dist_flat, minlength=n_slices * n_levels * farthest)
    return size_zone, distance_zone.reshape(n_slices, n_levels, farthest).astype(float)


def _zones(
    levels: np.ndarray,
    mask: np.ndarray,
    n_levels: int,
    by_slice: bool,
    distance: np.ndarray | None,
    grid: KernelGrid | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per zone (any order): size, grey level, slice (0 unless ``by_slice``) and smallest ``distance``
    (zeros when ``distance`` is None)."""
    if matrix_backend() == "numba":
        from radfeat.features.ibsi.kernels import equal_level_zones

        grid = _kernel_grid(levels, mask, grid, n_levels)
        flat_distance = grid.flat(distance) if distance is not None else np.zeros(1, dtype=np.int64)
        steps = grid.steps(_neighbour_offsets(by_slice))
        plane = grid.slicing(by_slice)[0]
        return equal_level_zones(grid.grey, grid.roi, steps, plane, flat_distance, distance is not None)
    z_of, _ = _slice_index(mask, by_slice)
    labels, n_zones = _equal_level_zones(levels, mask, by_slice)
    inside = labels > 0
    lab = labels[inside]
    present = np.zeros(n_zones + 1, dtype=bool)
    present[lab] = True
    size = np.bincount(lab, minlength=n_zones + 1)
    grey = np.zeros(n_zones + 1, dtype=np.int64)
    grey[lab] = levels[inside]
    zone_slice = np.zeros(n_zones + 1, dtype=np.int64)
    zone_slice[lab] = z_of[inside]
    keep = np.flatnonzero(present)
    nearest = np.zeros(len(keep), dtype=np.int64)
    if distance is not None:
        from scipy import ndimage

        nearest = ndimage.minimum(distance, labels, keep).astype(np.int64)
    return size[keep], grey[keep], zone_slice[keep], nearest


def _neighbour_offsets(by_slice: bool) -> list[tuple[int, int, int]]:
    span = (0,) if by_slice else (-1, 0, 1)
    return [d for d in itertools.product(span, (-1, 0, 1), (-1, 0, 1)) if d != (0, 0, 0)]


def _neighbour_sums(values: np.ndarray, offsets: list[tuple[int, int, int]]) -> np.ndarray:
    """Sum over the neighbours (at ``offsets``) of every voxel; outside the grid counts 0."""
    padded = np.pad(values, 1)
    total = np.zeros(values.shape, dtype=values.dtype)
    nz, ny, nx = values.shape
    for dz, dy, dx in offsets:
        total += padded[1 + dz : 1 + dz + nz, 1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx]
    return total


def neighbourhood_difference(
    levels: np.ndarray,
    mask: np.ndarray,
    n_levels: int,
    by_slice: bool = False,
    grid: KernelGrid | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NGTDM sums ``s_i`` and voxel counts ``n_i`` per slice: two (slices, n_levels) arrays.

    ``s_i`` sums |i − Ā| over the ROI voxels of grey level i, Ā the mean grey level of the voxel's
    neighbours in the ROI; voxels without a neighbour in the ROI are left out (IBSI 3.10).
    """
    offsets = _neighbour_offsets(by_slice)
    if matrix_backend() == "numba":
        from radfeat.features.ibsi.kernels import neighbourhood_difference_sums

        grid = _kernel_grid(levels, mask, grid, n_levels)
        steps = grid.steps(offsets)
        return neighbourhood_difference_sums(grid.grey, grid.roi, steps, *grid.slicing(by_slice), n_levels)
    inside = mask.astype(np.float64)
    grey = np.where(mask, levels, 0).astype(np.float64)
    neighbours = _neighbour_sums(inside, offsets)
    valid = mask & (neighbours > 0)
    mean = _neighbour_sums(grey, offsets)[valid] / neighbours[valid]
    g = levels[valid].astype(np.int64)
    z_of, n_slices = _slice_index(mask, by_slice)
    flat = z_of[valid] * n_levels + g - 1
    size = n_slices * n_levels
    s = np.bincount(flat, weights=np.abs(g - mean), minlength=size).reshape(n_slices, n_levels)
    n = np.bincount(flat, minlength=size).reshape(n_slices, n_levels).astype(float)
    return s, n


def dependence_matrices(
    levels: np.ndarray,
    mask: np.ndarray,
    n_levels: int,
    by_slice: bool = False,
    alpha: int = 0,
    grid: KernelGrid | None = None,
) -> np.ndarray:
    """NGLDM counts (slices, n_levels, 1 + number of neighbours): voxels of grey level i whose
    neighbourhood holds j − 1 ROI voxels within ``alpha`` grey levels of their own (IBSI 3.11; j counts
    the voxel itself, as pyradiomics' GLDM does)."""
    offsets = _neighbour_offsets(by_slice)
    if matrix_backend() == "numba":
        from radfeat.features.ibsi.kernels import dependence_counts

        grid = _kernel_grid(levels, mask, grid, n_levels)
        steps = grid.steps(offsets)
        return dependence_counts(grid.grey, grid.roi, steps, *grid.slicing(by_slice), n_levels, alpha)
    padded_g = np.pad(levels.astype(np.int64), 1)
    padded_m = np.pad(mask, 1)
    nz, ny, nx = levels.shape
    dependent = np.zeros(levels.shape, dtype=np.int64)
    for dz, dy, dx in offsets:
        window = (slice(1 + dz, 1 + dz + nz), slice(1 + dy, 1 + dy + ny), slice(1 + dx, 1 + dx + nx))
        dependent += padded_m[window] & (np.abs(padded_g[window] - levels) <= alpha)
    z_of, n_slices = _slice_index(mask, by_slice)
    width = len(offsets) + 1
    flat = (z_of[mask] * n_levels + levels[mask].astype(np.int64) - 1) * width + dependent[mask]
    counts = np.bincount(flat, minlength=n_slices * n_levels * width)
    return counts.reshape(n_slices, n_levels, width).astype(float)
