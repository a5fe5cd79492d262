"""Texture feature formulas of IBSI 1 on one matrix each (pure functions, values keyed by IBSI tag stem).

* :func:`glcm_features`: the 25 GLCM features of a symmetric co-occurrence matrix (IBSI 3.6);
* :func:`size_matrix_features`: the features shared by GLRLM, GLSZM, GLDZM and NGLDM — a matrix of grey
  level i (rows, 1..N_g) against a run length / zone size / zone distance / dependence count j
  (columns, 1..N_j) — under each family's own tag names (IBSI 3.7, 3.8, 3.9, 3.11);
* :func:`ngtdm_features`: the 5 NGTDM features from ``s_i`` and ``n_i`` (IBSI 3.10).

Logarithms are base 2. Grey levels absent from the ROI take part as empty rows, as in IBSI.
"""

from __future__ import annotations

import numpy as np

__all__ = ["glcm_features", "size_matrix_features", "ngtdm_features", "SIZE_MATRIX_TAGS"]


def _entropy(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum())


def glcm_features(matrix: np.ndarray) -> dict[str, float]:
    """The 25 IBSI GLCM features of one (N_g, N_g) co-occurrence matrix (counts or probabilities)."""
    n_levels = matrix.shape[0]
    p = matrix / matrix.sum()
    i = np.arange(1, n_levels + 1, dtype=float)[:, None]
    j = i.T
    p_i = p.sum(axis=1)
    p_j = p.sum(axis=0)
    k_diff = np.abs(i - j).astype(int)
    k_sum = (i + j).astype(int)
    p_diff = np.bincount(k_diff.ravel(), weights=p.ravel(), minlength=n_levels)
    p_sum = np.bincount(k_sum.ravel(), weights=p.ravel(), minlength=2 * n_levels + 1)
    k = np.arange(len(p_diff), dtype=float)
    s = np.arange(len(p_sum), dtype=float)
    mu = float((i * p).sum())
    mu_i = float((i[:, 0] * p_i).sum())
    mu_j = float((j[0] * p_j).sum())
    sigma_i = np.sqrt(float(((i[:, 0] - mu_i) ** 2 * p_i).sum()))
    sigma_j = np.sqrt(float(((j[0] - mu_j) ** 2 * p_j).sum()))
    diff_avg = float((k * p_diff).sum())
    sum_avg = float((s * p_sum).sum())
    hxy = _entropy(p)
    hx = _entropy(p_i)
    outer = p_i[:, None] * p_j[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_outer = np.where(outer > 0, np.log2(np.where(outer > 0, outer, 1.0)), 0.0)
    hxy1 = float(-(p * log_outer).sum())
    hxy2 = float(-(outer * log_outer).sum())
    cluster = i + j - mu_i - mu_j
    correlation = (
        float(((i - mu_i) * (j - mu_j) * p).sum()) / (sigma_i * sigma_j) if sigma_i * sigma_j > 0 else 1.0
    )
    return {
        "cm_joint_max": float(p.max()),
        "cm_joint_avg": mu,
        "cm_joint_var": float(((i - mu) ** 2 * p).sum()),
        "cm_joint_entr": hxy,
        "cm_diff_avg": diff_avg,
        "cm_diff_var": float(((k - diff_avg) ** 2 * p_diff).sum()),
        "cm_diff_entr": _entropy(p_diff),
        "cm_sum_avg": sum_avg,
        "cm_sum_var": float(((s - sum_avg) ** 2 * p_sum).sum()),
        "cm_sum_entr": _entropy(p_sum),
        "cm_energy": float((p**2).sum()),
        "cm_contrast": float(((i - j) ** 2 * p).sum()),
        "cm_dissimilarity": float((np.abs(i - j) * p).sum()),
        "cm_inv_diff": float((p / (1.0 + np.abs(i - j))).sum()),
        "cm_inv_diff_norm": float((p / (1.0 + np.abs(i - j) / n_levels)).sum()),
        "cm_inv_diff_mom": float((p / (1.0 + (i - j) ** 2)).sum()),
        "cm_inv_diff_mom_norm": float((p / (1.0 + (i - j) ** 2 / n_levels**2)).sum()),
        "cm_inv_var": float((p_diff[1:] / k[1:] ** 2).sum()),
        "cm_corr": correlation,
        "cm_auto_corr": float((i * j * p).sum()),
        "cm_clust_tend": float((cluster**2 * p).sum()),
        "cm_clust_shade": float((cluster**3 * p).sum()),
        "cm_clust_prom": float((cluster**4 * p).sum()),
        "cm_info_corr1": (hxy - hxy1) / hx if hx > 0 else 0.0,
        "cm_info_corr2": float(np.sqrt(max(0.0, 1.0 - np.exp(-2.0 * (hxy2 - hxy))))),
    }


#: Generic size-matrix feature → tag stem per family (IBSI names the same formula per family).
SIZE_MATRIX_TAGS: dict[str, dict[str, str]] = {
    "rlm": {
        "short": "sre", "long": "lre", "low_grey": "lgre", "high_grey": "hgre",
        "short_low": "srlge", "short_high": "srhge", "long_low": "lrlge", "long_high": "lrhge",
        "glnu": "glnu", "glnu_norm": "glnu_norm", "snu": "rlnu", "snu_norm": "rlnu_norm",
        "percentage": "r_perc", "grey_var": "gl_var", "size_var": "rl_var", "size_entropy": "rl_entr",
    },
    "szm": {
        "short": "sze", "long": "lze", "low_grey": "lgze", "high_grey": "hgze",
        "short_low": "szlge", "short_high": "szhge", "long_low": "lzlge", "long_high": "lzhge",
        "glnu": "glnu", "glnu_norm": "glnu_norm", "snu": "zsnu", "snu_norm": "zsnu_norm",
        "percentage": "z_perc", "grey_var": "gl_var", "size_var": "zs_var", "size_entropy": "zs_entr",
    },
    "dzm": {
        "short": "sde", "long": "lde", "low_grey": "lgze", "high_grey": "hgze",
        "short_low": "sdlge", "short_high": "sdhge", "long_low": "ldlge", "long_high": "ldhge",
        "glnu": "glnu", "glnu_norm": "glnu_norm", "snu": "zdnu", "snu_norm": "zdnu_norm",
        "percentage": "z_perc", "grey_var": "gl_var", "size_var": "zd_var", "size_entropy": "zd_entr",
    },
    "ngl": {
        "short": "lde", "long": "hde", "low_grey": "lgce", "high_grey": "hgce",
        "short_low": "ldlge", "short_high": "ldhge", "long_low": "hdlge", "long_high": "hdhge",
        "glnu": "glnu", "glnu_norm": "glnu_norm", "snu": "dcnu", "snu_norm": "dcnu_norm",
        "percentage": "dc_perc", "grey_var": "gl_var", "size_var": "dc_var", "size_entropy": "dc_entr",
        "energy": "dc_energy",
    },
}  # fmt: skip


def size_matrix_features(matrix: np.ndarray, n_voxels: float, family: str) -> dict[str, float]:
    """The IBSI features of one (N_g, N_j) grey-level × size matrix of ``family`` ("rlm", "szm", "dzm",
    "ngl"); ``n_voxels`` is the voxel count behind the matrix (for the percentage feature)."""
    total = float(matrix.sum())
    p = matrix / total
    i = np.arange(1, matrix.shape[0] + 1, dtype=float)[:, None]
    j = np.arange(1, matrix.shape[1] + 1, dtype=float)[None, :]
    r_i = matrix.sum(axis=1)
    r_j = matrix.sum(axis=0)
    mu_i = float((i * p).sum())
    mu_j = float((j * p).sum())
    generic = {
        "short": float((r_j / j[0] ** 2).sum()) / total,
        "long": float((r_j * j[0] ** 2).sum()) / total,
        "low_grey": float((r_i / i[:, 0] ** 2).sum()) / total,
        "high_grey": float((r_i * i[:, 0] ** 2).sum()) / total,
        "short_low": float((matrix / (i**2 * j**2)).sum()) / total,
        "short_high": float((matrix * i**2 / j**2).sum()) / total,
        "long_low": float((matrix * j**2 / i**2).sum()) / total,
        "long_high": float((matrix * i**2 * j**2).sum()) / total,
        "glnu": float((r_i**2).sum()) / total,
        "glnu_norm": float((r_i**2).sum()) / total**2,
        "snu": float((r_j**2).sum()) / total,
        "snu_norm": float((r_j**2).sum()) / total**2,
        "percentage": total / n_voxels,
        "grey_var": float(((i - mu_i) ** 2 * p).sum()),
        "size_var": float(((j - mu_j) ** 2 * p).sum()),
        "size_entropy": _entropy(p),
        "energy": float((p**2).sum()),
    }
    tags = SIZE_MATRIX_TAGS[family]
    return {f"{family}_{tags[name]}": value for name, value in generic.items() if name in tags}


def ngtdm_features(s: np.ndarray, n: np.ndarray) -> dict[str, float]:
    """The 5 IBSI NGTDM features from per-grey-level sums ``s`` (N_g,) and voxel counts ``n`` (N_g,)."""
    n_valid = float(n.sum())
    p = n / n_valid
    present = p > 0
    i = np.arange(1, len(p) + 1, dtype=float)
    n_present = int(present.sum())
    ps = float((p * s).sum())
    s_total = float(s.sum())
    pi, pj = p[present][:, None], p[present][None, :]
    ii, jj = i[present][:, None], i[present][None, :]
    si, sj = s[present][:, None], s[present][None, :]
    contrast = (
        float((pi * pj * (ii - jj) ** 2).sum()) / (n_present * (n_present - 1)) * s_total / n_valid
        if n_present > 1
        else 0.0
    )
    busy_denominator = float(np.abs(ii * pi - jj * pj).sum())
    return {
        "ngt_coarseness": 1.0 / ps if ps > 0 else 1e6,
        "ngt_contrast": contrast,
        "ngt_busyness": ps / busy_denominator if busy_denominator > 0 else 0.0,
        "ngt_complexity": float((np.abs(ii - jj) * (pi * si + pj * sj) / (pi + pj)).sum()) / n_valid,
        "ngt_strength": float(((pi + pj) * (ii - jj) ** 2).sum()) / s_total if s_total > 0 else 0.0,
    }
