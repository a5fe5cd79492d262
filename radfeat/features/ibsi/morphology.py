"""IBSI 1 morphological features (3.1) of a ROI: mesh, voxel, PCA, bounding-shape and spatial features.

The mesh is marching cubes at iso-level 0.5 (vertices midway between inside and outside voxel centres),
area and signed-tetrahedron volume from :func:`radfeat.features.mesh.mesh_coefficients`. The
morphological mask gives the shape; the intensity mask (after re-segmentation) gives the intensities for
the centre of mass shift, integrated intensity and Moran's I / Geary's C. Lengths in mm, areas mm²,
volumes mm³. The oriented minimum bounding box and minimum-volume enclosing ellipsoid densities have no
IBSI consensus value and are not computed.
"""

from __future__ import annotations

import math

import numpy as np

from radfeat.features.mesh import mesh_coefficients, mesh_vertices

__all__ = ["morphology_features", "ellipsoid_surface_area", "spatial_autocorrelation"]


def ellipsoid_surface_area(a: float, b: float, c: float, terms: int = 20) -> float:
    """Surface area (mm²) of an ellipsoid with semi-axes a ≥ b ≥ c (mm): IBSI's Legendre series."""
    from scipy.special import eval_legendre

    alpha = math.sqrt(max(0.0, 1.0 - b**2 / a**2))
    beta = math.sqrt(max(0.0, 1.0 - c**2 / a**2))
    if alpha * beta == 0:
        x = 1.0
    else:
        x = (alpha**2 + beta**2) / (2.0 * alpha * beta)
    total = sum(
        (alpha * beta) ** nu / (1.0 - 4.0 * nu**2) * float(eval_legendre(nu, x)) for nu in range(terms + 1)
    )
    return 4.0 * math.pi * a * b * total


def spatial_autocorrelation(
    image: np.ndarray, intensity_mask: np.ndarray, spacing_zyx: tuple[float, float, float]
) -> tuple[float, float]:
    """(Moran's I, Geary's C) with inverse-distance weights over all pairs of ROI voxels (IBSI 3.1.24–25).

    All pairs exactly, on the voxel grid: the weighted sums over pairs are correlations of the (centred,
    masked) image with the kernel w(offset) = 1 / |offset · spacing|, done by FFT — O(n log n) instead of
    O(n²) pairs (7.8·10⁹ on the IBSI CT phantom)."""
    from scipy.signal import fftconvolve

    mask = np.asarray(intensity_mask, dtype=bool)
    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(mask))
    mask = mask[box]
    x = np.asarray(image, dtype=float)[box]
    n = int(mask.sum())
    centred = np.where(mask, x - x[mask].mean(), 0.0)
    denominator = float((centred**2).sum())
    if n < 2 or denominator == 0:
        return float("nan"), float("nan")
    grids = np.meshgrid(*[np.arange(-(k - 1), k) * s for k, s in zip(mask.shape, spacing_zyx, strict=True)],
                        indexing="ij")  # fmt: skip
    distance = np.sqrt(sum(g**2 for g in grids))
    with np.errstate(divide="ignore"):
        kernel = np.where(distance > 0, 1.0 / distance, 0.0)
    inside = mask.astype(float)

    def correlate(a: np.ndarray) -> np.ndarray:
        full = fftconvolve(a, kernel, mode="same")
        return full

    near_inside = correlate(inside)
    weight_sum = float((inside * near_inside).sum())
    moran = float((centred * correlate(centred)).sum())
    geary = 2.0 * (float((centred**2 * near_inside).sum()) - moran)
    return n / weight_sum * moran / denominator, (n - 1) * geary / (2.0 * weight_sum * denominator)


def morphology_features(
    morphological_mask: np.ndarray,
    intensity_mask: np.ndarray,
    image: np.ndarray,
    spacing_zyx: tuple[float, float, float],
) -> dict[str, float]:
    """The IBSI morphological features (with consensus values) of a (z, y, x) ROI; ``image`` in its
    own units (HU, SUV), ``spacing_zyx`` in mm."""
    from scipy.spatial import ConvexHull

    spacing = np.asarray(spacing_zyx, dtype=float)
    morph = np.pad(np.asarray(morphological_mask, dtype=bool), 1)
    area, volume, diameters = mesh_coefficients(morph, spacing)
    vertices = mesh_vertices(morph, spacing)
    n_voxels = int(np.count_nonzero(morphological_mask))
    voxel_volume = float(np.prod(spacing))
    positions = np.stack(np.nonzero(morphological_mask), axis=1) * spacing
    intensity_positions = np.stack(np.nonzero(intensity_mask), axis=1) * spacing
    intensities = np.asarray(image, dtype=float)[np.asarray(intensity_mask, dtype=bool)]

    eigen = np.sort(np.linalg.eigvalsh(np.cov(positions.T)))[::-1] if n_voxels > 1 else np.zeros(3)
    eigen = np.clip(eigen, 0.0, None)
    major, minor, least = (4.0 * math.sqrt(e) for e in eigen)
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    aabb_volume = float(np.prod(extent))
    aabb_area = 2.0 * float(extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2])
    a, b, c = major / 2.0, minor / 2.0, least / 2.0
    hull = ConvexHull(vertices)
    geometric_centre = positions.mean(axis=0)
    weighted_centre = (intensity_positions * intensities[:, None]).sum(axis=0) / intensities.sum()
    moran, geary = spatial_autocorrelation(image, intensity_mask, spacing_zyx)
    sphere_term = (36.0 * math.pi * volume**2) ** (1.0 / 3.0)
    return {
        "morph_volume": volume,
        "morph_vol_approx": n_voxels * voxel_volume,
        "morph_area_mesh": area,
        "morph_av": area / volume,
        "morph_comp_1": volume / (math.sqrt(math.pi) * area**1.5),
        "morph_comp_2": 36.0 * math.pi * volume**2 / area**3,
        "morph_sph_dispr": area / sphere_term,
        "morph_sphericity": sphere_term / area,
        "morph_asphericity": (area**3 / (36.0 * math.pi * volume**2)) ** (1.0 / 3.0) - 1.0,
        "morph_com": float(np.linalg.norm(geometric_centre - weighted_centre)),
        "morph_diam": float(diameters[3]),
        "morph_pca_maj_axis": major,
        "morph_pca_min_axis": minor,
        "morph_pca_least_axis": least,
        "morph_pca_elongation": math.sqrt(eigen[1] / eigen[0]) if eigen[0] > 0 else 0.0,
        "morph_pca_flatness": math.sqrt(eigen[2] / eigen[0]) if eigen[0] > 0 else 0.0,
        "morph_vol_dens_aabb": volume / aabb_volume,
        "morph_area_dens_aabb": area / aabb_area,
        "morph_vol_dens_aee": volume / (4.0 * math.pi * a * b * c / 3.0) if c > 0 else float("nan"),
        "morph_area_dens_aee": area / ellipsoid_surface_area(a, b, c) if c > 0 else float("nan"),
        "morph_vol_dens_conv_hull": volume / float(hull.volume),
        "morph_area_dens_conv_hull": area / float(hull.area),
        "morph_integ_int": volume * float(intensities.mean()),
        "morph_moran_i": moran,
        "morph_geary_c": geary,
    }
