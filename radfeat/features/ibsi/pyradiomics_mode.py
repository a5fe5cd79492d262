"""pyradiomics' definitions on radfeat's own matrices: the 107 features of pyradiomics' original image.

:func:`pyradiomics_features` takes an image and mask as pyradiomics holds them after its own
preprocessing (resampled, cropped: give it the arrays pyradiomics would see) and returns pyradiomics'
keys (``original_glcm_Contrast`` …) with pyradiomics' values: bins from pyradiomics' bin edges
(``binWidth`` aligned to multiples of the width, or ``binCount``), kurtosis (not excess), energy with
``voxelArrayShift``, PCA axes of the population covariance, GLCM / GLRLM averaged over the 13 3D
directions, the zone families in 3D, the maximal correlation coefficient, and the 2D maximum diameters.
The texture matrices are :mod:`radfeat.features.ibsi.matrices` (one vectorised pass per family); the
shape coefficients :func:`radfeat.features.mesh.mesh_coefficients` (pyradiomics' marching cubes).
"""

from __future__ import annotations

import math

import numpy as np

from radfeat.features.ibsi.aggregation import texture_features
from radfeat.features.ibsi.matrices import DIRECTIONS_3D, cooccurrence_matrices, shared_grid
from radfeat.features.ibsi.pyradiomics_names import GLCM, GLDM, GLRLM, GLSZM, NGTDM
from radfeat.features.ibsi.texture import glcm_features
from radfeat.features.mesh import mesh_coefficients

__all__ = ["pyradiomics_features", "pyradiomics_class_features", "pyradiomics_levels", "SUPPORTED_CLASSES"]

#: The feature classes computed here besides shape (shape: :func:`pyradiomics_features`).
SUPPORTED_CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")

_EPS = np.spacing(1)


def pyradiomics_levels(
    values: np.ndarray, bin_width: float | None = 25.0, bin_count: int | None = None
) -> np.ndarray:
    """pyradiomics' grey levels of the ROI's intensities: ``numpy.digitize`` with its bin edges."""
    from radiomics import imageoperations

    values = np.asarray(values, dtype=float)
    extremes = np.array([values.min(), values.max()])  # pyradiomics' edges depend on these only
    if bin_count is not None:
        edges = imageoperations.getBinEdges(extremes, binCount=bin_count)
    else:
        edges = imageoperations.getBinEdges(extremes, binWidth=bin_width)
    return np.digitize(values, edges).astype(np.int64)


def _first_order(x: np.ndarray, levels: np.ndarray, voxel_mm3: float, shift: float) -> dict[str, float]:
    mean = float(x.mean())
    centred = x - mean
    m2 = float((centred**2).mean())
    p10, p25, p50, p75, p90 = (float(v) for v in np.percentile(x, [10, 25, 50, 75, 90]))
    robust = x[(x >= p10) & (x <= p90)]
    counts = np.bincount(levels)[1:].astype(float)
    p = counts[counts > 0] / counts.sum()
    energy = float(((x + shift) ** 2).sum())
    return {
        "Energy": energy,
        "TotalEnergy": voxel_mm3 * energy,
        "Entropy": float(-(p * np.log2(p + _EPS)).sum()),
        "Minimum": float(x.min()),
        "10Percentile": p10,
        "90Percentile": p90,
        "Maximum": float(x.max()),
        "Mean": mean,
        "Median": p50,
        "InterquartileRange": p75 - p25,
        "Range": float(x.max() - x.min()),
        "MeanAbsoluteDeviation": float(np.abs(centred).mean()),
        "RobustMeanAbsoluteDeviation": float(np.abs(robust - robust.mean()).mean()),
        "RootMeanSquared": math.sqrt(energy / x.size),
        "Skewness": float((centred**3).mean()) / m2**1.5 if m2 > 0 else 0.0,
        "Kurtosis": float((centred**4).mean()) / m2**2 if m2 > 0 else 0.0,
        "Variance": m2,
        "Uniformity": float((p**2).sum()),
    }


def _shape(mask: np.ndarray, spacing_zyx: np.ndarray) -> dict[str, float]:
    area, volume, (d_slice, d_column, d_row, d_3d) = mesh_coefficients(np.pad(mask, 1), spacing_zyx)
    positions = np.stack(np.nonzero(mask), axis=1) * spacing_zyx
    centred = positions - positions.mean(axis=0)
    eigen = np.sort(np.linalg.eigvalsh(centred.T @ centred / len(positions)))  # population covariance
    eigen = np.where(eigen < 0, 0.0, eigen)
    least, minor, major = eigen
    return {
        "Elongation": math.sqrt(minor / major) if major > 0 else 0.0,
        "Flatness": math.sqrt(least / major) if major > 0 else 0.0,
        "LeastAxisLength": 4.0 * math.sqrt(least),
        "MajorAxisLength": 4.0 * math.sqrt(major),
        "Maximum2DDiameterColumn": d_column,
        "Maximum2DDiameterRow": d_row,
        "Maximum2DDiameterSlice": d_slice,
        "Maximum3DDiameter": d_3d,
        "MeshVolume": volume,
        "MinorAxisLength": 4.0 * math.sqrt(minor),
        "Sphericity": (36.0 * math.pi * volume**2) ** (1.0 / 3.0) / area,
        "SurfaceArea": area,
        "SurfaceVolumeRatio": area / volume,
        "VoxelVolume": float(mask.sum() * np.prod(spacing_zyx)),
    }


def _maximal_correlation_coefficient(glcm: np.ndarray) -> float:
    """pyradiomics' MCC: √ of the second largest eigenvalue of Q, per direction, averaged."""
    values = []
    for matrix in glcm:
        total = matrix.sum()
        if total == 0:
            continue
        present = matrix.sum(axis=1) > 0  # pyradiomics drops grey levels absent from the ROI
        p = matrix[np.ix_(present, present)] / total
        if p.shape[0] < 2:
            values.append(1.0)
            continue
        px, py = p.sum(axis=1), p.sum(axis=0)
        # Q(i, j) = Σ_k p(i, k) p(j, k) / (px(i) py(k) + ε), summed over k in order as pyradiomics does:
        # ε is not negligible next to the products of rare levels' marginals (1e-6 of the MCC on wavelets).
        q = p[:, None, 0] * p[None, :, 0] / (px[:, None] * py[0] + _EPS)
        for k in range(1, p.shape[1]):
            q += p[:, None, k] * p[None, :, k] / (px[:, None] * py[k] + _EPS)
        eigen = np.sort(np.linalg.eigvals(q).real)
        values.append(math.sqrt(max(eigen[-2], 0.0)))
    return float(np.mean(values))


def pyradiomics_class_features(
    image: np.ndarray,
    mask: np.ndarray,
    spacing_xyz: tuple[float, float, float],
    classes: tuple[str, ...] = SUPPORTED_CLASSES,
    bin_width: float | None = 25.0,
    bin_count: int | None = None,
    voxel_array_shift: float = 0.0,
) -> dict[str, dict[str, float]]:
    """``{class: {pyradiomics feature name: value}}`` of the non-shape classes of one (image, mask), as
    pyradiomics' ``computeFeatures`` gives them (every non-deprecated feature of each class)."""
    image = np.asarray(image, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    spacing_zyx = np.asarray(spacing_xyz, dtype=float)[::-1]
    values = image[mask]
    roi_levels = pyradiomics_levels(values, bin_width, bin_count)
    n_levels = int(roi_levels.max())
    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(mask))
    cropped = mask[box]
    levels = np.ones(cropped.shape, dtype=np.int64)
    levels[cropped] = roi_levels
    families = {"glrlm": "glrlm", "glszm": "glszm", "gldm": "ngldm", "ngtdm": "ngtdm"}
    grid = shared_grid(levels, cropped)
    wanted = tuple(families[c] for c in classes if c in families)
    texture = texture_features(levels, cropped, n_levels, wanted, dimensions=("3D",), grid=grid)
    if "glcm" in classes:  # one pass for the features (averaged over directions) and the MCC
        glcm = cooccurrence_matrices(levels, cropped, n_levels, DIRECTIONS_3D, grid=grid)[0]
        per_direction = [glcm_features(m) for m in glcm if m.sum() > 0]
        texture.update(
            {f"{k}_3D_avg": float(np.mean([d[k] for d in per_direction])) for k in per_direction[0]}
        )
    out: dict[str, dict[str, float]] = {}
    if "firstorder" in classes:
        out["firstorder"] = _first_order(values, roi_levels, float(np.prod(spacing_zyx)), voxel_array_shift)
    for cls, names, suffix in (
        ("glcm", GLCM, "_3D_avg"),
        ("glrlm", GLRLM, "_3D_avg"),
        ("glszm", GLSZM, "_3D"),
        ("gldm", GLDM, "_3D"),
        ("ngtdm", NGTDM, "_3D"),
    ):
        if cls in classes:
            out[cls] = {name: texture[tag + suffix] for name, tag in names.items()}
    if "glcm" in classes:
        out["glcm"]["MCC"] = _maximal_correlation_coefficient(glcm)
    return out


def pyradiomics_features(
    image: np.ndarray,
    mask: np.ndarray,
    spacing_xyz: tuple[float, float, float],
    bin_width: float | None = 25.0,
    bin_count: int | None = None,
    voxel_array_shift: float = 0.0,
) -> dict[str, float]:
    """pyradiomics' 107 default features of the original image (keys ``original_<class>_<Feature>``).

    ``image`` and ``mask`` are (z, y, x) arrays as pyradiomics holds them after its preprocessing;
    ``spacing_xyz`` in mm; ``bin_width`` / ``bin_count`` and ``voxel_array_shift`` as pyradiomics'
    ``binWidth`` / ``binCount`` / ``voxelArrayShift``."""
    mask = np.asarray(mask, dtype=bool)
    spacing_zyx = np.asarray(spacing_xyz, dtype=float)[::-1]
    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(mask))
    out = {f"original_shape_{k}": v for k, v in _shape(mask[box], spacing_zyx).items()}
    classes = pyradiomics_class_features(image, mask, spacing_xyz, SUPPORTED_CLASSES, bin_width, bin_count,
                                         voxel_array_shift)  # fmt: skip
    for cls, values in classes.items():
        out.update({f"original_{cls}_{name}": v for name, v in values.items()})
    return out
