"""IBSI texture aggregation (IBSI 1, 3.6.1): 2D / 2.5D / 3D, averaged or merged, named by tag suffix.

* ``_2D_avg``: a matrix per slice and in-slice direction; features averaged;
* ``_2D_comb``: per slice, the 4 directions merged; features averaged over slices ("slice-merged");
* ``_2_5D_avg``: per in-slice direction, the slices merged; averaged over directions ("direction-merged");
* ``_2_5D_comb``: slices and in-slice directions merged ("merged");
* ``_3D_avg`` / ``_3D_comb``: the 13 3D directions, averaged / merged;
* ``_2D`` / ``_2_5D`` / ``_3D`` (GLSZM, GLDZM, NGTDM, NGLDM): per slice averaged / slices merged / 3D.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from radfeat.features.ibsi.matrices import (
    DIRECTIONS_2D,
    DIRECTIONS_3D,
    KernelGrid,
    cooccurrence_matrices,
    dependence_matrices,
    neighbourhood_difference,
    run_length_matrices,
    shared_grid,
    zone_matrices,
)
from radfeat.features.ibsi.texture import glcm_features, ngtdm_features, size_matrix_features

__all__ = ["TEXTURE_FAMILIES", "DIRECTIONAL_AGGREGATIONS", "ZONE_AGGREGATIONS", "texture_features"]

TEXTURE_FAMILIES = ("glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")
DIRECTIONAL_AGGREGATIONS = ("2D_avg", "2D_comb", "2_5D_avg", "2_5D_comb", "3D_avg", "3D_comb")
ZONE_AGGREGATIONS = ("2D", "2_5D", "3D")


def _mean(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}


def _directional(
    matrices_2d: np.ndarray | None,
    matrices_3d: np.ndarray | None,
    features: Callable[[np.ndarray], dict[str, float]],
) -> dict[str, dict[str, float]]:
    """Features of (slices, dirs, …) 2D and (1, dirs, …) 3D matrices under the six aggregations."""

    def averaged(matrices) -> dict[str, float]:
        return _mean([features(m) for m in matrices if m.sum() > 0])

    out: dict[str, dict[str, float]] = {}
    if matrices_2d is not None:
        slices = [s for s in range(matrices_2d.shape[0]) if matrices_2d[s].sum() > 0]
        merged_dirs = matrices_2d.sum(axis=0)
        out["2D_avg"] = averaged([matrices_2d[s, d] for s in slices for d in range(matrices_2d.shape[1])])
        out["2D_comb"] = averaged([matrices_2d[s].sum(axis=0) for s in slices])
        out["2_5D_avg"] = averaged(list(merged_dirs))
        out["2_5D_comb"] = features(merged_dirs.sum(axis=0))
    if matrices_3d is not None:
        out["3D_avg"] = averaged(list(matrices_3d[0]))
        out["3D_comb"] = features(matrices_3d[0].sum(axis=0))
    return out


def _by_slice(
    per_slice: list[np.ndarray] | None,
    volume: np.ndarray | None,
    features: Callable[[np.ndarray, float], dict[str, float]],
    voxels_per_slice: np.ndarray,
) -> dict[str, dict[str, float]]:
    """2D (per slice, averaged), 2.5D (slices merged) and 3D; ``voxels_per_slice``: ROI voxels per slice."""
    total = float(voxels_per_slice.sum())
    out: dict[str, dict[str, float]] = {}
    if per_slice is not None:
        filled = [z for z, m in enumerate(per_slice) if m.sum() > 0]
        out["2D"] = _mean([features(per_slice[z], float(voxels_per_slice[z])) for z in filled])
        out["2_5D"] = features(sum(per_slice[z] for z in filled), total)
    if volume is not None:
        out["3D"] = features(volume, total)
    return out


def _run_features(m: np.ndarray) -> dict[str, float]:
    # Σ_j j·r_ij: the voxels behind a run-length matrix (all ROI voxels once per direction merged).
    return size_matrix_features(m, float((m * np.arange(1, m.shape[1] + 1)).sum()), "rlm")


def _size_features(family: str) -> Callable[[np.ndarray, float], dict[str, float]]:
    return lambda m, n_voxels: size_matrix_features(m, n_voxels, family)


def _pad_last(a: np.ndarray | None, b: np.ndarray | None):
    present = [m for m in (a, b) if m is not None]
    width = max(m.shape[-1] for m in present)

    def pad(m):
        return None if m is None else np.pad(m, [(0, 0)] * (m.ndim - 1) + [(0, width - m.shape[-1])])

    return pad(a), pad(b)


def texture_features(
    levels: np.ndarray,
    mask: np.ndarray,
    n_levels: int,
    families: Iterable[str] = TEXTURE_FAMILIES,
    ngldm_alpha: int = 0,
    morphological_mask: np.ndarray | None = None,
    dimensions: tuple[str, ...] = ("2D", "2_5D", "3D"),
    grid: KernelGrid | None = None,
) -> dict[str, float]:
    """Every IBSI texture feature of a discretised (z, y, x) image (levels ``1..n_levels``) in a ROI (the
    intensity mask), under every aggregation, keyed by IBSI tag (e.g. ``cm_joint_max_3D_avg``,
    ``szm_sze_2D``). GLDZM distances are measured in ``morphological_mask`` (default: ``mask``).
    ``dimensions`` limits the work to some of 2D, 2.5D (both from the per-slice matrices) and 3D;
    ``grid``: the compiled kernels' grid of these levels and mask, when the caller has one."""
    families = tuple(families)
    unknown = set(families) - set(TEXTURE_FAMILIES)
    if unknown:
        raise ValueError(f"unknown texture families {sorted(unknown)}; choose from {TEXTURE_FAMILIES}")
    levels = np.where(mask, levels, 1).astype(np.int64)
    if grid is None:
        grid = shared_grid(levels, mask)  # one set-up for every family below
    voxels_per_slice = mask.sum(axis=(1, 2)).astype(float)
    out: dict[str, float] = {}

    def add(results: dict[str, dict[str, float]]) -> None:
        for suffix, values in results.items():
            out.update({f"{tag}_{suffix}": value for tag, value in values.items()})

    slicewise = "2D" in dimensions or "2_5D" in dimensions
    volumetric = "3D" in dimensions

    def both(build_2d, build_3d):
        return (build_2d() if slicewise else None), (build_3d() if volumetric else None)

    def first(pair, index=0):
        return None if pair is None else pair[index]

    if "glcm" in families:
        add(_directional(*both(
            lambda: cooccurrence_matrices(levels, mask, n_levels, DIRECTIONS_2D, by_slice=True, grid=grid),
            lambda: cooccurrence_matrices(levels, mask, n_levels, DIRECTIONS_3D, grid=grid),
        ), glcm_features))  # fmt: skip
    if "glrlm" in families:
        runs_2d, runs_3d = _pad_last(*both(
            lambda: run_length_matrices(levels, mask, n_levels, DIRECTIONS_2D, by_slice=True, grid=grid),
            lambda: run_length_matrices(levels, mask, n_levels, DIRECTIONS_3D, grid=grid),
        ))  # fmt: skip
        add(_directional(runs_2d, runs_3d, _run_features))
    if "glszm" in families or "gldzm" in families:
        need_distances = "gldzm" in families
        zones_2d, zones_3d = both(
            lambda: zone_matrices(levels, mask, n_levels, True, morphological_mask, need_distances, grid),
            lambda: zone_matrices(levels, mask, n_levels, False, morphological_mask, need_distances, grid),
        )
        for family, index, tag in (("glszm", 0, "szm"), ("gldzm", 1, "dzm")):
            if family in families:
                a, b = _pad_last(first(zones_2d, index), first(zones_3d, index))
                add(
                    _by_slice(None if a is None else list(a), first(b), _size_features(tag), voxels_per_slice)
                )
    if "ngtdm" in families:

        def ngtdm(sn: np.ndarray, _n_voxels: float) -> dict[str, float]:
            return ngtdm_features(sn[0], sn[1])

        d2, d3 = both(
            lambda: neighbourhood_difference(levels, mask, n_levels, by_slice=True, grid=grid),
            lambda: neighbourhood_difference(levels, mask, n_levels, grid=grid),
        )
        stacked_2d = None if d2 is None else [np.stack([d2[0][z], d2[1][z]]) for z in range(len(d2[0]))]
        volume = None if d3 is None else np.stack([d3[0][0], d3[1][0]])
        add(_by_slice(stacked_2d, volume, ngtdm, voxels_per_slice))
    if "ngldm" in families:
        a, b = _pad_last(*both(
            lambda: dependence_matrices(levels, mask, n_levels, by_slice=True, alpha=ngldm_alpha, grid=grid),
            lambda: dependence_matrices(levels, mask, n_levels, alpha=ngldm_alpha, grid=grid),
        ))  # fmt: skip
        add(_by_slice(None if a is None else list(a), first(b), _size_features("ngl"), voxels_per_slice))
    return out
