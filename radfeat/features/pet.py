"""PET SUV descriptors on the native PET grid (resampling would lower SUVmax).

All functions are pure: arrays in (z, y, x) order, the tumour mask as a boolean array on the PET grid,
voxel spacing (x, y, z) in mm. Definitions follow SCIENCE.md ("PET descriptors") and IBSI where one
exists.

References
----------
Boellaard et al. (2015), EANM guidelines v2.0, EJNMMI 42:328-354. doi:10.1007/s00259-014-2961-x
El Naqa et al. (2009), cumulative SUV-volume histograms, Pattern Recognit 42:1162-1171.
Zwanenburg et al. (2020), IBSI, Radiology 295:328-338 (local and global intensity peak, IVH).
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "suv_peak",
    "sphere_kernel",
    "peak_sphere_volume_ml",
    "PEAK_SPHERE_RULES",
    "metabolic_tumour_volume_ml",
    "cumulative_suv_volume_histogram",
    "auc_csh",
    "heterogeneity_factor",
    "intensity_volume_histogram",
    "pet_descriptors",
]


#: SUVpeak sphere rules: ``voxel_centre`` (IBSI: the voxels whose centres lie in the sphere, whose volume
#: then depends on the grid: 0.69–1.08 mL for a "1 mL" sphere on clinical PET grids) or ``exact_volume``
#: (each voxel weighted by the fraction of it inside the sphere: exactly the stated volume).
PEAK_SPHERE_RULES = ("voxel_centre", "exact_volume")
_SUBSAMPLES = 20  # per axis and boundary voxel, for the fraction of a voxel inside the sphere


@functools.lru_cache(maxsize=64)
def sphere_kernel(
    radius_mm: float, spacing_xyz: tuple[float, float, float], rule: str = "voxel_centre"
) -> np.ndarray:
    """Weights (z, y, x) of the voxels around a centre voxel for a sphere of ``radius_mm``.

    ``voxel_centre``: 1 for voxels whose centres lie within the radius, else 0. ``exact_volume``: the
    fraction of each voxel inside the sphere — 1 for voxels wholly inside, 20³ sub-voxel points for those
    the surface cuts, whose fractions are then scaled so that the weights times the voxel volume sum to
    the sphere's volume exactly."""
    if rule not in PEAK_SPHERE_RULES:
        raise ValueError(f"peak sphere rule {rule!r} not known; valid: {list(PEAK_SPHERE_RULES)}")
    sx, sy, sz = (float(v) for v in spacing_xyz)
    if rule == "voxel_centre":
        rz, ry, rx = (int(math.floor(radius_mm / s)) for s in (sz, sy, sx))
        z, y, x = np.ogrid[-rz : rz + 1, -ry : ry + 1, -rx : rx + 1]
        return ((z * sz) ** 2 + (y * sy) ** 2 + (x * sx) ** 2 <= radius_mm**2 + 1e-9).astype(float)
    rz, ry, rx = (int(math.floor(radius_mm / s + 0.5)) for s in (sz, sy, sx))
    spacing = np.array([sz, sy, sx])
    centres = (
        np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in (rz, ry, rx)], indexing="ij"), -1) * spacing
    )
    nearest = np.sqrt((np.maximum(np.abs(centres) - spacing / 2, 0.0) ** 2).sum(-1))
    farthest = np.sqrt(((np.abs(centres) + spacing / 2) ** 2).sum(-1))
    weights = (farthest <= radius_mm).astype(float)  # wholly inside
    boundary = np.argwhere((nearest < radius_mm) & (farthest > radius_mm))
    offsets = ((np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES - 0.5)[:, None] * spacing[None, :]
    sub = np.stack(np.meshgrid(offsets[:, 0], offsets[:, 1], offsets[:, 2], indexing="ij"), -1).reshape(-1, 3)
    for index in boundary:
        points = centres[tuple(index)] + sub
        weights[tuple(index)] = np.mean((points**2).sum(-1) <= radius_mm**2)
    # Scale the boundary fractions so that the weights hold the sphere's volume exactly.
    inside_voxels = float((farthest <= radius_mm).sum())
    target = 4.0 / 3.0 * math.pi * radius_mm**3 / float(np.prod(spacing)) - inside_voxels
    on_edge = (nearest < radius_mm) & (farthest > radius_mm)
    weights[on_edge] *= target / weights[on_edge].sum()
    return weights


def peak_sphere_volume_ml(spacing_xyz, sphere_ml: float = 1.0, rule: str = "voxel_centre") -> float:
    """The volume (mL) the SUVpeak sphere actually averages over on this grid (voxel-centre rule: the
    voxels counted × voxel volume; exact-volume rule: ``sphere_ml``)."""
    kernel = sphere_kernel(_peak_radius_mm(sphere_ml), tuple(float(s) for s in spacing_xyz), rule)
    return float(kernel.sum() * np.prod(spacing_xyz) / 1000.0)


def _peak_radius_mm(sphere_ml: float) -> float:
    return (3.0 * sphere_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)


def _sphere_means(suv: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Weighted mean SUV within the sphere around every voxel (voxels outside the image are left out)."""
    from scipy import ndimage  # imported here: CT-only runs never need it

    total = ndimage.convolve(suv.astype(float), kernel, mode="constant", cval=0.0)
    count = ndimage.convolve(np.ones(suv.shape), kernel, mode="constant", cval=0.0)
    return total / count


def suv_peak(
    suv: np.ndarray, mask: np.ndarray, spacing_xyz, sphere_ml: float = 1.0, rule: str = "voxel_centre"
) -> tuple[float, float]:
    """Local and global SUVpeak: mean SUV in a ``sphere_ml`` sphere (1 mL → radius 6.20 mm).

    Local (IBSI "local intensity peak"): the sphere centred on the hottest tumour voxel (the highest
    sphere mean when several voxels share the maximum). Global: the highest sphere mean centred on any
    tumour voxel. The sphere takes image voxels inside or outside the mask, as the definition asks;
    ``rule`` chooses which (:data:`PEAK_SPHERE_RULES`).
    """
    kernel = sphere_kernel(_peak_radius_mm(sphere_ml), tuple(float(s) for s in spacing_xyz), rule)
    # Only the region around the tumour is needed.
    pad = np.array(kernel.shape) // 2
    nz = np.nonzero(mask)
    lo = np.maximum(np.array([a.min() for a in nz]) - pad, 0)
    hi = np.minimum(np.array([a.max() for a in nz]) + pad + 1, suv.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    means = _sphere_means(suv[box], kernel)
    m = mask[box]
    values = suv[box][m]
    hottest = values == values.max()
    local = float(means[m][hottest].max())
    return local, float(means[m].max())


def metabolic_tumour_volume_ml(
    suv_in_voi: np.ndarray, threshold_suv: float, voxel_ml: float
) -> tuple[float, np.ndarray]:
    """Volume (mL) of the VOI voxels with SUV >= ``threshold_suv`` and the boolean selection."""
    selected = suv_in_voi >= threshold_suv
    return float(selected.sum() * voxel_ml), selected


def cumulative_suv_volume_histogram(suv_in_voi: np.ndarray, step: float = 0.01):
    """CSH: x in [0, 1] (fraction of SUVmax) → fraction of the VOI with SUV >= x·SUVmax."""
    x = np.linspace(0.0, 1.0, int(round(1.0 / step)) + 1)
    sorted_suv = np.sort(suv_in_voi)
    above = sorted_suv.size - np.searchsorted(sorted_suv, x * sorted_suv[-1] - 1e-12, side="left")
    return x, above / sorted_suv.size


def auc_csh(suv_in_voi: np.ndarray, step: float = 0.01) -> float:
    """Area under the cumulative SUV-volume histogram (trapezoid); equals SUVmean/SUVmax in the continuum."""
    x, frac = cumulative_suv_volume_histogram(suv_in_voi, step)
    return float(np.trapezoid(frac, x))


def heterogeneity_factor(
    suv_in_voi: np.ndarray, voxel_ml: float, percent_range: tuple[float, float] = (40.0, 80.0)
) -> float:
    """Slope (mL per % SUVmax) of MTV against its threshold over ``percent_range`` in 1 % steps.

    More negative means volume falls faster with the threshold (more heterogeneous uptake).
    """
    pct = np.arange(percent_range[0], percent_range[1] + 0.5, 1.0)
    vmax = suv_in_voi.max()
    volumes = np.array([(suv_in_voi >= p / 100.0 * vmax).sum() * voxel_ml for p in pct])
    return float(np.polyfit(pct, volumes, 1)[0])


def intensity_volume_histogram(suv_in_voi: np.ndarray) -> dict[str, float]:
    """IVH summaries (IBSI, continuous intensities): V10/V90 and I10/I90.

    V_x: fraction of the VOI with SUV >= SUVmin + x % of (SUVmax − SUVmin).
    I_x: the lowest SUV within the hottest x % of the VOI volume.
    """
    lo, hi = float(suv_in_voi.min()), float(suv_in_voi.max())
    span = hi - lo
    sorted_desc = np.sort(suv_in_voi)[::-1]
    n = sorted_desc.size

    def v(x: float) -> float:
        return float(np.mean(suv_in_voi >= lo + x * span - 1e-12)) if span > 0 else 1.0

    def i(x: float) -> float:
        k = max(1, int(math.ceil(x * n - 1e-9)))
        return float(sorted_desc[k - 1])

    return {"V10": v(0.10), "V90": v(0.90), "I10": i(0.10), "I90": i(0.90)}


def pet_descriptors(
    suv: np.ndarray,
    mask: np.ndarray,
    spacing_xyz,
    *,
    peak_sphere_ml: float = 1.0,
    peak_sphere_rule: str = "voxel_centre",
    mtv_percent_of_max: float = 41.0,
    mtv_absolute_suv: float = 2.5,
    heterogeneity_factor_range: tuple[float, float] = (40.0, 80.0),
) -> dict[str, float]:
    """All SUV descriptors of one tumour.

    Parameters
    ----------
    suv : ndarray of shape (z, y, x)
        PET in SUVbw on its native grid.
    mask : ndarray of bool, same shape
        The tumour VOI on the PET grid.
    spacing_xyz : sequence of 3 floats
        Voxel size in mm.

    Returns
    -------
    dict with SUVmax, SUVmean, SUVsd (VOI, population SD), SUVpeak (local), SUVpeak_global,
    SUVpeak_sphere_ml (the volume the peak sphere averages over, ``peak_sphere_rule``), VOI_ml,
    MTV{p}_ml and SUVmean_MTV{p} and TLG{p} (SUV·mL) at p % SUVmax, the same at the
    absolute threshold (``MTV_SUV2p5_ml`` …), CoV, HI (SUVmax/SUVmean), HF (mL per % SUVmax),
    AUC_CSH, V10, V90, I10, I90.

    Raises
    ------
    ValueError
        For an empty mask, shape mismatch or non-finite SUV inside the VOI.
    """
    suv = np.asarray(suv, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    if suv.shape != mask.shape:
        raise ValueError(f"SUV array {suv.shape} and mask {mask.shape} differ in shape")
    if not mask.any():
        raise ValueError("PET mask is empty on the PET grid")
    voi = suv[mask]
    if not np.all(np.isfinite(voi)):
        raise ValueError(f"{int((~np.isfinite(voi)).sum())} tumour voxel(s) have NaN/inf SUV")
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    suv_max, suv_mean = float(voi.max()), float(voi.mean())
    local_peak, global_peak = suv_peak(suv, mask, spacing_xyz, peak_sphere_ml, peak_sphere_rule)
    out = {
        "SUVmax": suv_max,
        "SUVmean": suv_mean,
        "SUVsd": float(voi.std()),
        "SUVpeak": local_peak,
        "SUVpeak_global": global_peak,
        "SUVpeak_sphere_ml": peak_sphere_volume_ml(spacing_xyz, peak_sphere_ml, peak_sphere_rule),
        "VOI_ml": float(voi.size * voxel_ml),
    }
    pct_tag = f"{mtv_percent_of_max:g}".replace(".", "p")
    abs_tag = f"SUV{mtv_absolute_suv:g}".replace(".", "p")
    for tag, threshold in (
        (pct_tag, mtv_percent_of_max / 100.0 * suv_max),
        (f"_{abs_tag}", mtv_absolute_suv),
    ):
        mtv, sel = metabolic_tumour_volume_ml(voi, threshold, voxel_ml)
        mean = float(voi[sel].mean()) if sel.any() else 0.0
        out[f"MTV{tag}_ml"] = mtv
        out[f"SUVmean_MTV{tag}"] = mean if sel.any() else math.nan
        out[f"TLG{tag}"] = mean * mtv
    out["CoV"] = float(voi.std() / suv_mean) if suv_mean > 0 else math.nan
    out["HI"] = suv_max / suv_mean if suv_mean > 0 else math.nan
    out["HF"] = heterogeneity_factor(voi, voxel_ml, tuple(heterogeneity_factor_range))
    out["AUC_CSH"] = auc_csh(voi)
    out.update(intensity_volume_histogram(voi))
    return out
