"""PET descriptors on analytic phantoms with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radfeat.features.pet import auc_csh, heterogeneity_factor, pet_descriptors, suv_peak


def _sphere(radius_vox: float, shape=(48, 48, 48)):
    z, y, x = np.indices(shape)
    c = (np.array(shape) - 1) / 2
    return np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= radius_vox


def test_uniform_sphere():
    mask = _sphere(12)
    suv = np.where(mask, 8.0, 1.0)
    d = pet_descriptors(suv, mask, (1.0, 1.0, 1.0))
    assert d["SUVmax"] == d["SUVmean"] == d["SUVpeak"] == d["SUVpeak_global"] == 8.0
    assert d["CoV"] == 0 and d["HI"] == 1
    assert d["MTV41_ml"] == pytest.approx(mask.sum() / 1000) == d["VOI_ml"]
    assert d["MTV41_ml"] == pytest.approx(4 / 3 * math.pi * 12**3 / 1000, rel=0.02)
    assert d["TLG41"] == pytest.approx(8.0 * d["MTV41_ml"])
    assert d["MTV_SUV2p5_ml"] == d["VOI_ml"]
    assert d["AUC_CSH"] == pytest.approx(1.0)
    assert d["HF"] == pytest.approx(0.0, abs=1e-12)


def test_linear_gradient_auc_csh_is_mean_over_max():
    shape = (10, 10, 400)
    suv = np.broadcast_to(np.linspace(0.0025, 1.0, shape[2]), shape).copy()
    mask = np.ones(shape, bool)
    d = pet_descriptors(suv, mask, (2.0, 2.0, 2.0))
    assert d["AUC_CSH"] == pytest.approx(d["SUVmean"] / d["SUVmax"], abs=0.006)
    assert d["AUC_CSH"] == pytest.approx(0.5, abs=0.006)
    # MTV at 41 % SUVmax keeps the top 59 % of a uniform ramp.
    assert d["MTV41_ml"] / d["VOI_ml"] == pytest.approx(0.59, abs=0.01)
    # Heterogeneity factor: −1 % of the volume per % threshold.
    assert d["HF"] == pytest.approx(-d["VOI_ml"] / 100, rel=0.02)
    assert d["V10"] == pytest.approx(0.90, abs=0.01) and d["V90"] == pytest.approx(0.10, abs=0.01)
    assert d["I10"] == pytest.approx(0.90, abs=0.01) and d["I90"] == pytest.approx(0.10, abs=0.01)


def test_auc_csh_continuum_limit_on_random_uptake():
    rng = np.random.default_rng(0)
    values = rng.gamma(4.0, 1.0, 200000)
    assert auc_csh(values, step=0.001) == pytest.approx(values.mean() / values.max(), abs=2e-3)


def test_suv_peak_sphere_is_one_ml_and_peak_below_max():
    # A hot single voxel in a uniform background: SUVpeak averages ~1 mL around it.
    suv = np.ones((41, 41, 41))
    suv[20, 20, 20] = 1001.0
    mask = np.zeros(suv.shape, bool)
    mask[18:23, 18:23, 18:23] = True
    local, global_ = suv_peak(suv, mask, (1.0, 1.0, 1.0))
    n_in_sphere = round(1000 / (local - 1.0))  # (1000 + n) / n = local
    assert n_in_sphere == pytest.approx(4 / 3 * math.pi * 6.2035**3, rel=0.03)
    assert global_ == pytest.approx(local)
    # The global peak can exceed the local one when the hottest voxel is isolated.
    suv2 = np.ones((41, 41, 41))
    suv2[10, 20, 20] = 5.0
    suv2[28:36, 16:24, 16:24] = 4.0
    mask2 = np.ones(suv2.shape, bool)
    local2, global2 = suv_peak(suv2, mask2, (1.0, 1.0, 1.0))
    assert global2 > local2


def test_heterogeneity_factor_more_negative_for_heterogeneous_uptake():
    mask = _sphere(10)
    z, y, x = np.indices(mask.shape)
    r = np.sqrt((z - 23.5) ** 2 + (y - 23.5) ** 2 + (x - 23.5) ** 2)
    smooth = np.where(mask, 10.0, 1.0)
    peaked = np.where(mask, 10.0 * np.exp(-(r**2) / 50), 1.0)
    assert heterogeneity_factor(peaked[mask], 0.001) < heterogeneity_factor(smooth[mask], 0.001)


def test_errors_name_the_problem():
    mask = _sphere(3, (10, 10, 10))
    with pytest.raises(ValueError, match="empty"):
        pet_descriptors(np.ones((10, 10, 10)), np.zeros((10, 10, 10), bool), (1, 1, 1))
    suv = np.ones((10, 10, 10))
    suv[5, 5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pet_descriptors(suv, mask, (1, 1, 1))
    with pytest.raises(ValueError, match="differ in shape"):
        pet_descriptors(np.ones((9, 10, 10)), mask, (1, 1, 1))


def test_one_voxel_tumour_still_has_descriptors():
    mask = np.zeros((9, 9, 9), bool)
    mask[4, 4, 4] = True
    d = pet_descriptors(np.where(mask, 3.0, 1.0), mask, (4.0, 4.0, 4.0))
    assert d["SUVmax"] == 3.0 and d["VOI_ml"] == pytest.approx(0.064)
    assert 1.0 < d["SUVpeak"] < 3.0


@pytest.mark.parametrize("spacing", [(4.0, 4.0, 4.0), (2.73, 2.73, 3.27), (4.07, 4.07, 2.0), (1.0, 1.0, 1.0)])
def test_exact_volume_sphere_holds_the_stated_volume(spacing):
    """The voxel-centre rule's "1 mL" sphere holds 0.69–1.08 mL depending on the grid; the exact-volume
    rule holds 1 mL on every grid, and both are recorded as SUVpeak_sphere_ml."""
    from radfeat.features.pet import peak_sphere_volume_ml, sphere_kernel

    exact = peak_sphere_volume_ml(spacing, 1.0, "exact_volume")
    assert exact == pytest.approx(1.0, rel=1e-12)
    centre = peak_sphere_volume_ml(spacing, 1.0, "voxel_centre")
    assert 0.5 < centre < 1.5
    kernel = sphere_kernel(6.2035, spacing, "exact_volume")
    assert kernel.max() <= 1.0 + 1e-9 and kernel.min() >= 0.0  # fractions of voxels
    assert kernel[tuple(n // 2 for n in kernel.shape)] == pytest.approx(1.0)
    # A uniform field of 3 SUV: both rules give 3; a linear ramp's peak is its centre value (symmetry).
    suv = np.full((31, 31, 31), 3.0)
    mask = np.zeros(suv.shape, bool)
    mask[15, 15, 15] = True
    for rule in ("voxel_centre", "exact_volume"):
        local, global_ = suv_peak(suv, mask, spacing, 1.0, rule)
        assert local == pytest.approx(3.0) and global_ == pytest.approx(3.0)
    ramp = np.broadcast_to(np.arange(31.0)[None, None, :], suv.shape).copy()
    local, _ = suv_peak(ramp, mask, spacing, 1.0, "exact_volume")
    assert local == pytest.approx(15.0)
    d = pet_descriptors(suv, mask, spacing, peak_sphere_rule="exact_volume")
    assert d["SUVpeak_sphere_ml"] == pytest.approx(1.0)
    assert pet_descriptors(suv, mask, spacing)["SUVpeak_sphere_ml"] == pytest.approx(centre)
    with pytest.raises(ValueError, match="rule"):
        suv_peak(suv, mask, spacing, 1.0, "ball")


def test_exact_volume_sphere_mean_equals_a_fine_grid_sphere_mean():
    """Coarse 4 mm voxels of random uptake, seen on a 9× finer grid (each coarse voxel 9³ fine ones, so
    the coarse centre is a fine voxel's centre): the fine grid's voxel-centre sphere is nearly the true
    sphere. The exact-volume mean on the coarse grid matches it; the coarse voxel-centre mean does not."""
    rng = np.random.default_rng(0)
    coarse = rng.gamma(2.0, 2.0, size=(7, 7, 7))
    mask = np.zeros(coarse.shape, bool)
    mask[3, 3, 3] = True
    fine = np.repeat(np.repeat(np.repeat(coarse, 9, 0), 9, 1), 9, 2)
    offsets = (np.arange(63) - 31) * 4 / 9
    z, y, x = np.meshgrid(offsets, offsets, offsets, indexing="ij")
    ball = z**2 + y**2 + x**2 <= (3000 / (4 * np.pi)) ** (2 / 3)  # the fine voxel centres in 1 mL
    reference = fine[ball].mean()
    exact, _ = suv_peak(coarse, mask, (4.0, 4.0, 4.0), 1.0, "exact_volume")
    centre, _ = suv_peak(coarse, mask, (4.0, 4.0, 4.0), 1.0, "voxel_centre")
    assert exact == pytest.approx(reference, rel=5e-3)
    assert abs(exact - reference) < abs(centre - reference) / 3
