"""Intensity-based statistics, intensity histogram and intensity-volume histogram (IBSI 1, 3.3–3.5).

Pure functions of the ROI's voxel values (1-D arrays); keys are IBSI tags. Kurtosis is IBSI's *excess*
kurtosis (pyradiomics reports kurtosis, 3 more). Percentiles interpolate linearly between order
statistics (NumPy's default), as MIRP does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["intensity_statistics", "intensity_histogram", "intensity_volume_histogram"]


def _moments(x: np.ndarray, prefix: str) -> dict[str, float]:
    mean = float(x.mean())
    centred = x - mean
    m2 = float((centred**2).mean())
    p10, p25, p50, p75, p90 = (float(v) for v in np.percentile(x, [10, 25, 50, 75, 90]))
    robust = x[(x >= p10) & (x <= p90)]
    return {
        f"{prefix}_mean": mean,
        f"{prefix}_var": m2,
        f"{prefix}_skew": float((centred**3).mean()) / m2**1.5 if m2 > 0 else 0.0,
        f"{prefix}_kurt": float((centred**4).mean()) / m2**2 - 3.0 if m2 > 0 else 0.0,
        f"{prefix}_median": p50,
        f"{prefix}_min": float(x.min()),
        f"{prefix}_p10": p10,
        f"{prefix}_p90": p90,
        f"{prefix}_max": float(x.max()),
        f"{prefix}_iqr": p75 - p25,
        f"{prefix}_range": float(x.max() - x.min()),
        f"{prefix}_mad": float(np.abs(centred).mean()),
        f"{prefix}_rmad": float(np.abs(robust - robust.mean()).mean()),
        f"{prefix}_medad": float(np.abs(x - p50).mean()),
        f"{prefix}_cov": float(np.sqrt(m2)) / mean if mean != 0 else float("nan"),
        f"{prefix}_qcod": (p75 - p25) / (p75 + p25) if p75 + p25 != 0 else float("nan"),
    }


def intensity_statistics(values: np.ndarray, voxel_volume_mm3: float = 1.0) -> dict[str, float]:
    """The 18 IBSI intensity-based statistics of the ROI's intensities (HU, SUV, …).

    ``stat_energy`` is Σ x² (IBSI; pyradiomics' ``TotalEnergy`` multiplies it by the voxel volume,
    ``voxel_volume_mm3`` is accepted for that and left at 1 for IBSI)."""
    x = np.asarray(values, dtype=float).ravel()
    out = _moments(x, "stat")
    out["stat_energy"] = float((x**2).sum()) * voxel_volume_mm3
    out["stat_rms"] = float(np.sqrt((x**2).mean()))
    return out


def intensity_histogram(levels: np.ndarray, n_levels: int) -> dict[str, float]:
    """The 23 IBSI intensity-histogram features of the ROI's discretised grey levels (1..``n_levels``)."""
    g = np.asarray(levels).ravel().astype(np.int64)
    out = _moments(g.astype(float), "ih")
    counts = np.bincount(g - 1, minlength=n_levels).astype(float)
    p = counts / counts.sum()
    nz = p[p > 0]
    mean = out["ih_mean"]
    modes = np.flatnonzero(counts == counts.max()) + 1
    out["ih_mode"] = float(modes[np.argmin(np.abs(modes - mean))])  # ties: the mode nearest the mean
    out["ih_entropy"] = float(-(nz * np.log2(nz)).sum())
    out["ih_uniformity"] = float((p**2).sum())
    if n_levels > 1:
        gradient = np.gradient(counts)  # central differences inside, one-sided at both ends (IBSI 3.4)
    else:
        gradient = np.zeros(1)
    out["ih_max_grad"] = float(gradient.max())
    out["ih_max_grad_g"] = float(np.argmax(gradient) + 1)
    out["ih_min_grad"] = float(gradient.min())
    out["ih_min_grad_g"] = float(np.argmin(gradient) + 1)
    return dict(sorted(out.items(), key=lambda kv: _IH_ORDER.index(kv[0])))


_IH_ORDER = [
    "ih_mean", "ih_var", "ih_skew", "ih_kurt", "ih_median", "ih_min", "ih_p10", "ih_p90", "ih_max",
    "ih_mode", "ih_iqr", "ih_range", "ih_mad", "ih_rmad", "ih_medad", "ih_cov", "ih_qcod", "ih_entropy",
    "ih_uniformity", "ih_max_grad", "ih_max_grad_g", "ih_min_grad", "ih_min_grad_g",
]  # fmt: skip


def intensity_volume_histogram(
    values: np.ndarray, step: float = 1.0, minimum: float | None = None, maximum: float | None = None
) -> dict[str, float]:
    """IBSI intensity-volume histogram features of the ROI's (discretised or binned) intensities.

    Intensities are taken on the grid ``minimum, minimum + step, …, maximum`` (default: the ROI's
    minimum and maximum; step 1 for grey levels). ``ν(i)`` is the fraction of the volume with intensity
    ≥ i and ``γ(i) = (i − minimum) / (maximum − minimum)``. ``V_x`` is the largest ν with γ ≥ x;
    ``I_x`` is the *smallest* intensity present in at most x of the volume (ν ≤ x) — IBSI's definition,
    not the value at the x-hottest voxel. The area under the IVH curve has no IBSI consensus value.
    """
    x = np.asarray(values, dtype=float).ravel()
    lo = float(x.min()) if minimum is None else float(minimum)
    hi = float(x.max()) if maximum is None else float(maximum)
    n_steps = int(round((hi - lo) / step)) + 1
    grid = lo + step * np.arange(n_steps)
    x_sorted = np.sort(x)
    nu = 1.0 - np.searchsorted(x_sorted, grid - 1e-9 * step, side="left") / len(x)
    gamma = (grid - lo) / (hi - lo) if hi > lo else np.zeros(n_steps)

    def volume_at(fraction: float) -> float:
        chosen = nu[gamma >= fraction - 1e-12]
        return float(chosen.max()) if chosen.size else 0.0

    def intensity_at(fraction: float) -> float:
        chosen = grid[nu <= fraction + 1e-12]
        return float(chosen.min()) if chosen.size else hi + step

    v10, v90, i10, i90 = volume_at(0.1), volume_at(0.9), intensity_at(0.1), intensity_at(0.9)
    return {
        "ivh_v10": v10,
        "ivh_v90": v90,
        "ivh_i10": i10,
        "ivh_i90": i90,
        "ivh_diff_v10_v90": v10 - v90,
        "ivh_diff_i10_i90": i10 - i90,
    }
