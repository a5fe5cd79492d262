"""Physical-space resampling and cropping, on a real sarcoma PET/CT case with different grids."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radfeat.geometry import (
    align_pet_to_ct,
    compare_geometry,
    crop_to_roi,
    mask_centroid_mm,
    mask_volume_ml,
    resample_isotropic,
    resample_to_reference,
)
from radfeat.io import read_image, read_mask

pytestmark = pytest.mark.realdata


def test_pet_mask_onto_ct_grid_preserves_volume_and_centroid(sts_case):
    ct = read_image(sts_case / "CT_image.nii.gz")
    pet = read_image(sts_case / "PET_image.nii.gz")
    pet_mask = read_mask(sts_case / "PET_mask.nii.gz")
    assert compare_geometry(ct, pet), "the case is meant to have PET and CT on different grids"
    on_ct = resample_to_reference(pet_mask, ct, "nearest")
    v_pet, v_ct = mask_volume_ml(pet_mask), mask_volume_ml(on_ct)
    assert v_ct == pytest.approx(v_pet, rel=0.03)
    shift = np.abs(mask_centroid_mm(on_ct) - mask_centroid_mm(pet_mask))
    assert np.all(shift <= np.array(pet.GetSpacing()))
    # The PET-drawn and CT-drawn masks of the same tumour meet after alignment.
    ct_mask = read_mask(sts_case / "CT_mask.nii.gz")
    assert np.all(np.abs(mask_centroid_mm(ct_mask) - mask_centroid_mm(on_ct)) <= np.array(pet.GetSpacing()))


def test_pet_resampled_onto_ct_keeps_uptake_location(sts_case):
    ct = read_image(sts_case / "CT_image.nii.gz")
    pet = read_image(sts_case / "PET_image.nii.gz")
    pet_on_ct = align_pet_to_ct(pet, ct)
    assert pet_on_ct.GetSize() == ct.GetSize()
    ct_mask = sitk.GetArrayFromImage(read_mask(sts_case / "CT_mask.nii.gz")).astype(bool)
    suv = sitk.GetArrayFromImage(pet_on_ct)
    # Tumour uptake exceeds the surrounding tissue on the aligned grid.
    assert suv[ct_mask].mean() > 1.5 * np.median(suv[~ct_mask & (suv > 0)])
    # Linear interpolation cannot exceed the native maximum.
    assert suv.max() <= sitk.GetArrayFromImage(pet).max() + 1e-6


def test_crop_to_roi_in_physical_space(sts_case):
    pet = read_image(sts_case / "PET_image.nii.gz")
    ct_mask = read_mask(sts_case / "CT_mask.nii.gz")
    pet_crop, mask_crop = crop_to_roi(pet, ct_mask, margin_mm=10.0)
    assert mask_volume_ml(mask_crop) == pytest.approx(mask_volume_ml(ct_mask))
    # The PET crop covers the mask's physical box plus the margin (to within one PET voxel).
    lo = np.array(pet_crop.GetOrigin())
    hi = lo + np.array(pet_crop.GetSpacing()) * (np.array(pet_crop.GetSize()) - 1)
    m_lo = np.array(mask_crop.GetOrigin())
    m_hi = m_lo + np.array(mask_crop.GetSpacing()) * (np.array(mask_crop.GetSize()) - 1)
    tol = np.array(pet.GetSpacing())
    assert np.all(lo <= m_lo + tol) and np.all(hi >= m_hi - tol)
    assert np.prod(pet_crop.GetSize()) < np.prod(pet.GetSize())


def test_isotropic_resampling_extent_and_mask_volume(sts_case):
    mask = read_mask(sts_case / "CT_mask.nii.gz")
    iso = resample_isotropic(mask, 2.0, "nearest")
    assert iso.GetSpacing() == (2.0, 2.0, 2.0)
    extent = np.array(mask.GetSpacing()) * np.array(mask.GetSize())
    assert np.all(np.abs(np.array(iso.GetSize()) * 2.0 - extent) <= 2.0)
    assert mask_volume_ml(iso) == pytest.approx(mask_volume_ml(mask), rel=0.05)


def test_compare_geometry_reports_each_field():
    a = sitk.Image([4, 5, 6], sitk.sitkUInt8)
    b = sitk.Image([4, 5, 7], sitk.sitkUInt8)
    b.SetSpacing((1.0, 1.0, 2.0))
    b.SetOrigin((0.0, 3.0, 0.0))
    fields = {m.field for m in compare_geometry(a, b)}
    assert fields == {"size", "spacing", "origin"}
    assert compare_geometry(a, a) == []


def _ct_mask(arr: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(arr.astype(np.uint8))
    image.SetSpacing(spacing)
    return image


def test_mask_coverage_conserves_the_roi_volume():
    from radfeat.geometry import mask_coverage

    z, y, x = np.mgrid[0:60, 0:60, 0:60]
    ct = _ct_mask(((z - 30) ** 2 + (y - 28) ** 2 + (x - 31) ** 2) < 120)
    pet = sitk.Image([16, 16, 16], sitk.sitkFloat32)
    pet.SetSpacing((4.0, 4.0, 4.0))
    pet.SetOrigin((-1.3, 0.7, 2.1))
    cover = sitk.GetArrayFromImage(mask_coverage(ct, pet))
    assert cover.min() >= 0 and cover.max() <= 1
    assert cover.sum() * 64 == pytest.approx(sitk.GetArrayViewFromImage(ct).sum(), rel=1e-9)


def test_pet_mask_is_the_covered_fraction_not_the_centre_value():
    """A 1 mm-thin slab of CT mask through the centre of 4 mm PET voxels covers 25 % of them: a linearly
    interpolated mask read at the voxel centre says 100 % and kept them (the old rule)."""
    from radfeat.case import pet_mask_from_ct
    from radfeat.geometry import mask_coverage

    arr = np.zeros((16, 16, 16), np.uint8)
    arr[4:12, 4:12, 5] = 1  # x = 5 mm: one 1 mm slice (voxel edges 4.5–5.5 mm)
    ct = _ct_mask(arr)
    pet = sitk.Image([4, 4, 4], sitk.sitkFloat32)
    pet.SetSpacing((4.0, 4.0, 4.0))
    pet.SetOrigin((5.0, 1.5, 1.5))  # PET voxel centres at x = 5, 9, … mm (edges 3–7 mm)
    cover = sitk.GetArrayFromImage(mask_coverage(ct, pet))
    assert cover.max() == pytest.approx(0.25)
    old = sitk.Resample(sitk.Cast(ct, sitk.sitkFloat32), pet, sitk.Transform(), sitk.sitkLinear, 0.0)
    assert sitk.GetArrayViewFromImage(old).max() == pytest.approx(1.0)  # the old rule's view
    assert not sitk.GetArrayViewFromImage(pet_mask_from_ct(ct, pet)).any()
    thick = np.zeros_like(arr)
    thick[4:12, 4:12, 3:7] = 1  # x = 2.5–6.5 mm: 3.5 of the 4 mm of the first PET voxel column
    cover = sitk.GetArrayFromImage(mask_coverage(_ct_mask(thick), pet))
    assert cover.max() == pytest.approx(0.875)
    assert sitk.GetArrayViewFromImage(pet_mask_from_ct(_ct_mask(thick), pet)).any()
