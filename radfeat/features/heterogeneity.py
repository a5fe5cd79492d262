"""Spatial heterogeneity of a habitat label map: volumes, components, MSI matrix, ITH score, diversity.

Pure functions on label arrays in (z, y, x) order: 0 = outside the tumour, 1..k = habitats.

References
----------
Wu et al. (2018), Radiology 288:26-35, multiregional spatial interaction (MSI) matrix.
    doi:10.1148/radiol.2018172133
Li et al. (2023), Eur Radiol 33:893-903, ITHscore. doi:10.1007/s00330-022-09055-0
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = [
    "habitat_volumes",
    "msi_matrix",
    "msi_features",
    "ith_score",
    "largest_slice",
    "diversity",
    "heterogeneity_features",
]

_STRUCTURE_3D = np.ones((3, 3, 3), bool)


def habitat_volumes(labels: np.ndarray, k: int, voxel_ml: float) -> dict[str, float]:
    """Per habitat: volume (mL), fraction of the tumour, and 3D connected components (26-connectivity)."""
    total = int((labels > 0).sum())
    out: dict[str, float] = {}
    for h in range(1, k + 1):
        region = labels == h
        n = int(region.sum())
        out[f"h{h}_volume_ml"] = n * voxel_ml
        out[f"h{h}_fraction"] = n / total if total else math.nan
        out[f"h{h}_components"] = float(ndimage.label(region, structure=_STRUCTURE_3D)[1]) if n else 0.0
    return out


def msi_matrix(labels: np.ndarray, k: int) -> np.ndarray:
    """MSI matrix (Wu et al. 2018): counts of face-adjacent voxel pairs between regions 0..k.

    Region 0 is the tissue just outside the tumour (voxels with label 0 that touch it), so the matrix
    records how each habitat borders the others and the tumour boundary. Entry [i, j] = [j, i] is the
    number of unordered adjacent pairs joining i and j, (k+1, k+1); background–background pairs are
    not counted.
    """
    m = np.zeros((k + 1, k + 1), dtype=np.int64)
    padded = np.pad(labels.astype(np.int64), 1, constant_values=0)
    for axis in range(3):
        a = np.moveaxis(padded, axis, 0)
        first, second = a[:-1].ravel(), a[1:].ravel()
        keep = (first > 0) | (second > 0)
        np.add.at(m, (first[keep], second[keep]), 1)
    return m + m.T - np.diag(np.diag(m))


def msi_features(matrix: np.ndarray) -> dict[str, float]:
    """Features of an MSI matrix of unordered pair counts (as :func:`msi_matrix` returns).

    ``p_i_j`` (i <= j) is the share of adjacent voxel pairs joining regions i and j. Contrast,
    dissimilarity, homogeneity, energy and entropy use the symmetric, normalised co-occurrence matrix
    (each pair counted in both directions, as a symmetric GLCM) over region indices.
    """
    counts = np.asarray(matrix, dtype=float)
    pairs = np.triu(counts)
    total_pairs = pairs.sum()
    cooc = counts + np.diag(np.diag(counts))
    p = cooc / cooc.sum() if total_pairs else np.zeros_like(cooc)
    i, j = np.indices(p.shape)
    out = {
        "contrast": float(((i - j) ** 2 * p).sum()),
        "dissimilarity": float((np.abs(i - j) * p).sum()),
        "homogeneity": float((p / (1.0 + np.abs(i - j))).sum()),
        "energy": float((p**2).sum()),
        "entropy": float(-(p[p > 0] * np.log2(p[p > 0])).sum()),
    }
    for a in range(p.shape[0]):
        for b in range(a, p.shape[1]):
            out[f"p_{a}_{b}"] = float(pairs[a, b] / total_pairs) if total_pairs else 0.0
    return out


def ith_score(labels: np.ndarray, connectivity: int | None = None) -> float:
    """ITH score (Li et al. 2023): 1 − Σ_i (S_i,max / n_i) / S_total.

    S_i,max is the size of habitat i's largest connected component, n_i its number of components,
    S_total the tumour size (voxels in 3D, pixels in 2D). 0 for a single homogeneous region; towards 1
    for many scattered fragments. ``connectivity`` defaults to full (8 in 2D, 26 in 3D).
    """
    labels = np.asarray(labels)
    total = int((labels > 0).sum())
    if total == 0:
        return math.nan
    structure = ndimage.generate_binary_structure(labels.ndim, connectivity or labels.ndim)
    acc = 0.0
    for h in np.unique(labels[labels > 0]):
        comps, n = ndimage.label(labels == h, structure=structure)
        acc += np.bincount(comps.ravel())[1:].max() / n
    return float(1.0 - acc / total)


def largest_slice(labels: np.ndarray) -> np.ndarray:
    """The axial slice (z) with the most tumour pixels, as a 2D label array."""
    return labels[int(np.argmax((labels > 0).sum(axis=(1, 2))))]


def diversity(fractions: np.ndarray) -> dict[str, float]:
    """Shannon (natural log) and Simpson (1 − Σ p²) diversity of habitat fractions."""
    p = np.asarray(fractions, dtype=float)
    p = p[p > 0]
    return {"shannon": float(-(p * np.log(p)).sum()), "simpson": float(1.0 - (p**2).sum())}


def heterogeneity_features(labels: np.ndarray, k: int, voxel_ml: float) -> dict[str, float]:
    """All habitat-level features of one case (keys without the ``hab_`` prefix)."""
    out = habitat_volumes(labels, k, voxel_ml)
    fractions = np.array([out[f"h{h}_fraction"] for h in range(1, k + 1)])
    out["n_present"] = float((fractions > 0).sum())
    out.update({f"msi_{key}": v for key, v in msi_features(msi_matrix(labels, k)).items()})
    out["ith_score_3d"] = ith_score(labels)
    out["ith_score_2d"] = ith_score(largest_slice(labels))
    out.update({f"diversity_{key}": v for key, v in diversity(fractions).items()})
    return out
