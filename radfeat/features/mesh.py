"""pyradiomics' marching-cubes shape coefficients, computed per cube configuration.

pyradiomics' shape class calls ``radiomics._cshape.calculate_coefficients(mask, spacing)``: a
marching-cubes mesh of the (z, y, x) boolean mask with vertices midway between inside and outside
voxels, giving the surface area (mm²), the signed-tetrahedron mesh volume (mm³) and four maximum
diameters (mm) from an all-pairs loop over the mesh vertices — quadratic in the vertex count, 0.2 s on a
25k-voxel lung tumour and 1.3 s on a 190k-voxel sarcoma.

:func:`mesh_coefficients` returns the same numbers (to ~1e-13 relative) without building the mesh:

* every cube's triangles depend only on its 8 corner bits (its configuration, 0–255), so the surface
  area is a sum of per-configuration areas, and the mesh volume, a sum of ``a · (b × c) / 6`` over
  triangles, is per configuration ``V0 + t · S`` (``t``: the cube's corner in mm, ``S``: the cube's
  vector area / 6). The three per-configuration tables are measured once per voxel spacing with
  pyradiomics' own C function on single cubes (:func:`configuration_tables`), so they follow its
  triangulation exactly;
* the mesh vertices are the midpoints of the grid edges whose two voxels differ; the largest pairwise
  distance is reached on the convex hull (3D), and per plane of equal z, y or x coordinate on the hull
  of that plane's vertices (the three 2D diameters), planes visited in order of their bounding-box
  diagonal so that most are never searched.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

__all__ = [
    "mesh_coefficients",
    "mesh_vertices",
    "configuration_tables",
    "cube_configurations",
    "TableBackend",
    "SMALL_MASK_VOXELS",
]

#: Below this many mask voxels pyradiomics' C loop is faster than the table route (same values).
SMALL_MASK_VOXELS = 4000
#: Brute-force all pairs when a point set is this small; a convex hull (SciPy's Qhull) above.
_BRUTE_FORCE_POINTS = 2500


def _corner_bits(configuration: int) -> np.ndarray:
    """The (2, 2, 2) boolean cube of one configuration; bit ``4·dz + 2·dy + dx`` is corner (dz, dy, dx)."""
    return np.array([(configuration >> b) & 1 for b in range(8)], dtype=bool).reshape(2, 2, 2)


@functools.lru_cache(maxsize=32)
def configuration_tables(spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-configuration surface area (256,), volume at the origin (256,) and volume gradient (256, 3).

    ``spacing`` is (z, y, x) in mm, as pyradiomics passes it. A cube of configuration ``c`` with corner
    index ``i`` (z, y, x) contributes ``area[c]`` to the surface area and
    ``volume0[c] + (i · spacing) · gradient[c]`` to the mesh volume. Measured with pyradiomics' C function:
    one cube for ``area`` and ``volume0``; two cubes along each axis (the first one holding only the
    shared face) for ``gradient``.
    """
    from radiomics import _cshape

    spacing_arr = np.asarray(spacing, dtype=float)
    area = np.zeros(256)
    volume0 = np.zeros(256)
    gradient = np.zeros((256, 3))
    for configuration in range(1, 255):
        cube = _corner_bits(configuration)
        area[configuration], volume0[configuration], _ = _cshape.calculate_coefficients(cube, spacing_arr)
        for axis in range(3):
            shape = [2, 2, 2]
            shape[axis] = 3
            pair = np.zeros(shape, dtype=bool)
            upper = [slice(None)] * 3
            upper[axis] = slice(1, 3)
            pair[tuple(upper)] = cube
            lower = np.ascontiguousarray(pair.take([0, 1], axis=axis))
            both = _cshape.calculate_coefficients(pair, spacing_arr)[1]
            first = _cshape.calculate_coefficients(lower, spacing_arr)[1]
            gradient[configuration, axis] = (both - first - volume0[configuration]) / spacing_arr[axis]
    return area, volume0, gradient


def cube_configurations(mask: np.ndarray) -> np.ndarray:
    """Configuration (0–255) of every cube of 2×2×2 neighbouring voxels of a (z, y, x) boolean mask;
    shape ``mask.shape - 1``."""
    nz, ny, nx = (n - 1 for n in mask.shape)
    out = np.zeros((nz, ny, nx), dtype=np.uint8)
    bit = 0
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                corner = mask[dz : dz + nz, dy : dy + ny, dx : dx + nx]
                out |= corner.astype(np.uint8) << np.uint8(bit)
                bit += 1
    return out


def _exact_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between paired rows, summed per coordinate in pyradiomics' order."""
    d2 = np.zeros(len(a))
    for k in range(a.shape[1]):
        d2 += (a[:, k] - b[:, k]) ** 2
    return np.sqrt(d2)


def _max_pairwise_distance(points: np.ndarray) -> float:
    """Largest Euclidean distance between rows of ``points`` (n, d), exactly as the all-pairs loop gives it.

    Large sets are cut to their convex hull's vertices first. The all-pairs step finds the candidate
    pairs with a matrix product (centred coordinates, squared distances ``|a|² + |b|² − 2 a·b``) and
    recomputes the pairs near the maximum from the coordinates, so rounding cannot pick another pair.
    """
    if len(points) < 2:
        return 0.0
    if len(points) > _BRUTE_FORCE_POINTS:
        from scipy.spatial import ConvexHull, QhullError

        with contextlib.suppress(QhullError):  # collinear / coplanar: all points below
            points = points[ConvexHull(points).vertices]
    centred = points - points.mean(axis=0)
    norms = (centred**2).sum(axis=1)
    approx = norms[:, None] + norms[None, :] - 2.0 * (centred @ centred.T)
    top = approx.max()
    slack = 1e-9 * max(float(norms.max()), 1.0) * 16
    i, j = np.nonzero(approx >= top - slack)
    return float(_exact_distance(points[i], points[j]).max())


def _edge_vertices(mask: np.ndarray) -> np.ndarray:
    """Mesh vertices as doubled (z, y, x) indices (int64, (n, 3)): the midpoints of the grid edges whose
    two voxels differ."""
    parts = []
    for axis in range(3):
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(0, -1), slice(1, None)
        index = np.stack(np.nonzero(mask[tuple(lower)] != mask[tuple(upper)]), axis=1).astype(np.int64) * 2
        index[:, axis] += 1
        parts.append(index)
    return np.concatenate(parts)


def mesh_vertices(mask: np.ndarray, spacing: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """Marching-cubes mesh vertices (n, 3) in mm, (z, y, x) order, of a (z, y, x) boolean mask whose border
    voxels are 0: the midpoints of the grid edges whose two voxels differ (iso-level 0.5)."""
    doubled = _edge_vertices(np.ascontiguousarray(mask, dtype=bool))
    return doubled * (np.asarray(spacing, dtype=float) / 2.0)


def _row_extremes(doubled: np.ndarray, along: int) -> np.ndarray:
    """Indices of the vertices that are first or last along axis ``along`` within their line (equal
    other two coordinates): every convex-hull vertex of the set, or of any plane through it, is one."""
    others = [a for a in range(3) if a != along]
    order = np.lexsort((doubled[:, along], doubled[:, others[1]], doubled[:, others[0]]))
    line = doubled[order][:, others]
    new_line = np.ones(len(order), dtype=bool)
    new_line[1:] = np.any(line[1:] != line[:-1], axis=1)
    last = np.roll(new_line, -1)
    last[-1] = True
    return order[new_line | last]


def _plane_diameter(doubled: np.ndarray, points: np.ndarray, axis: int) -> float:
    """Largest distance between two vertices sharing their ``axis`` coordinate (pyradiomics' 2D
    diameters compare that coordinate for equality)."""
    other = [a for a in range(3) if a != axis]
    keep = _row_extremes(doubled, other[1])  # in each plane, the ends of its lines along other[1]
    order = keep[np.argsort(doubled[keep, axis], kind="stable")]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(doubled[order, axis])) + 1])
    stops = np.append(starts[1:], len(order))
    flat = points[order][:, other]
    # Upper bound per plane: its 2D bounding-box diagonal; search planes from the largest bound down.
    extent = np.maximum.reduceat(flat, starts, axis=0) - np.minimum.reduceat(flat, starts, axis=0)
    bounds = np.sqrt((extent**2).sum(axis=1))
    best = 0.0
    for i in np.argsort(bounds)[::-1]:
        if bounds[i] <= best:
            break
        best = max(best, _max_pairwise_distance(flat[starts[i] : stops[i]]))
    return best


def mesh_coefficients(
    mask: np.ndarray, spacing: np.ndarray | tuple[float, float, float]
) -> tuple[float, float, tuple[float, float, float, float]]:
    """``(surface area mm², mesh volume mm³, (max 2D diameter slice, column, row, max 3D diameter) mm)``
    of a (z, y, x) boolean mask whose border voxels are 0, equal to pyradiomics'
    ``_cshape.calculate_coefficients(mask, spacing)``; ``spacing`` (z, y, x) mm."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    spacing_t = tuple(float(s) for s in spacing)
    area, volume0, gradient = configuration_tables(spacing_t)  # type: ignore[arg-type]
    configurations = cube_configurations(mask).ravel()
    counts = np.bincount(configurations, minlength=256)
    surface_area = float(counts @ area)
    volume = float(counts @ volume0)
    cube_index = np.unravel_index(np.arange(configurations.size), tuple(n - 1 for n in mask.shape))
    for axis in range(3):
        position_sum = np.bincount(configurations, weights=cube_index[axis] * spacing_t[axis], minlength=256)
        volume += float(position_sum @ gradient[:, axis])
    doubled = _edge_vertices(mask)
    if doubled.size == 0:
        return surface_area, volume, (0.0, 0.0, 0.0, 0.0)
    points = doubled * (np.asarray(spacing_t) / 2.0)
    diameters = tuple(_plane_diameter(doubled, points, axis) for axis in range(3))
    # A hull vertex is an end of its line along every axis: keep those (1,970 of 11,380 on lung2).
    ends = np.zeros((3, len(doubled)), dtype=bool)
    for axis in range(3):
        ends[axis, _row_extremes(doubled, axis)] = True
    hull_candidates = points[ends.all(axis=0)]
    return surface_area, volume, (*diameters, _max_pairwise_distance(hull_candidates))  # type: ignore[return-value]


class TableBackend:
    """Stands in for ``radiomics._cshape`` in pyradiomics' shape class: :func:`mesh_coefficients` for
    masks of at least :data:`SMALL_MASK_VOXELS` voxels, the C loop below (same values)."""

    def __init__(self, original) -> None:
        self._original = original

    def calculate_coefficients(self, mask, spacing):
        if int(np.count_nonzero(mask)) < SMALL_MASK_VOXELS:
            return self._original.calculate_coefficients(mask, spacing)
        return mesh_coefficients(mask, spacing)

    def __getattr__(self, name):
        return getattr(self._original, name)
