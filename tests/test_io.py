"""Image reading and PET DICOM → SUVbw conversion."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest
import SimpleITK as sitk

from radfeat.errors import ImageReadError, MaskError, SUVConversionError
from radfeat.io import read_image, read_image_information, read_mask, read_pet_suv
from radfeat.synth import write_pet_dicom_series


def _suv_volume(value: float = 2.0) -> sitk.Image:
    arr = np.full((5, 6, 7), 1.0, dtype=np.float32)
    arr[2, 3, 4] = value
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((4.0, 4.0, 3.0))
    img.SetOrigin((-10.0, 5.0, 20.0))
    return img


def test_suv_conversion_recovers_the_planted_suv(tmp_path):
    """Known answer: the writer stores SUV 4.5 as Bq/mL for this weight, dose and uptake time; reading
    it back must give 4.5 (int16 quantisation only). The 17 reference objects are in test_suv_dro.py."""
    weight_kg, dose_bq, uptake_s = 80.0, 3.7e8, 75 * 60.0
    folder = write_pet_dicom_series(
        _suv_volume(4.5),
        tmp_path / "pet",
        patient_weight_kg=weight_kg,
        injected_dose_bq=dose_bq,
        injection_time=datetime(2024, 1, 2, 8, 30),
        uptake_time_s=uptake_s,
    )
    raw = sitk.GetArrayFromImage(read_image(folder))[2, 3, 4]  # Bq/mL after rescale slope
    assert raw == pytest.approx(4.5 * 3.7e8 * 0.6227 / 80000, rel=1e-3)  # decay 2^(-75 min / 109.77 min)
    suv, info = read_pet_suv(folder)
    assert sitk.GetArrayFromImage(suv)[2, 3, 4] == pytest.approx(4.5, rel=1e-4)
    assert sitk.GetArrayFromImage(suv)[0, 0, 0] == pytest.approx(1.0, rel=1e-4)
    assert info.decay_time_s == pytest.approx(uptake_s)
    assert info.patient_weight_kg == weight_kg and not info.notes
    # Geometry survives the DICOM round trip.
    assert np.allclose(suv.GetOrigin(), (-10.0, 5.0, 20.0))
    assert np.allclose(suv.GetSpacing(), (4.0, 4.0, 3.0))


def test_suv_decay_across_midnight(tmp_path):
    folder = write_pet_dicom_series(
        _suv_volume(),
        tmp_path / "pet",
        injection_time=datetime(2024, 1, 2, 23, 40),
        uptake_time_s=3600.0,
    )
    _, info = read_pet_suv(folder)
    assert info.decay_time_s == pytest.approx(3600.0)


@pytest.mark.parametrize(
    ("kwargs", "match", "fix"),
    [
        ({"include_weight": False}, "PatientWeight", "pet_units=SUV"),
        ({"include_dose": False}, "RadionuclideTotalDose", "pet_units=SUV"),
        ({"units": "CNTS"}, r"CNTS .*\(7053,1000\)", "Philips private tags"),
        ({"units": "PROPCPS"}, "Units .* 'PROPCPS'", "pet_units=SUV"),
        ({"decay_correction": None}, r"DecayCorrection \(0054,1102\) is missing", "pet_decay_correction"),
    ],
)
def test_suv_conversion_errors_name_the_tag_and_the_fix(tmp_path, kwargs, match, fix):
    folder = write_pet_dicom_series(_suv_volume(), tmp_path / "pet", **kwargs)
    with pytest.raises(SUVConversionError, match=match) as info:
        read_pet_suv(folder, case_id="P7")
    assert "case 'P7'" in str(info.value)
    assert str(folder) in str(info.value)
    assert fix in str(info.value)


def test_missing_decay_correction_is_never_assumed_but_an_explicit_override_is_recorded(tmp_path):
    folder = write_pet_dicom_series(_suv_volume(), tmp_path / "pet", decay_correction=None)
    start, info = read_pet_suv(folder, decay_correction="START")
    reference = write_pet_dicom_series(_suv_volume(), tmp_path / "ref")
    expected, _ = read_pet_suv(reference)
    assert np.allclose(sitk.GetArrayFromImage(start), sitk.GetArrayFromImage(expected))
    assert any("START given explicitly" in n for n in info.notes)


def test_suv_variants_scale_body_weight_suv_by_the_normaliser(tmp_path):
    """SUVlbm = SUVbw · LBM / W; SUVbsa = SUVbw · BSA[cm²] / W[g] (recorded as the variant)."""
    from radfeat.dicom.suv import body_surface_area_du_bois, lean_body_mass_james

    folder = write_pet_dicom_series(_suv_volume(), tmp_path / "pet", patient_weight_kg=80.0)
    import pydicom

    for f in sorted(folder.iterdir()):  # a height and sex for the body-size formulas
        ds = pydicom.dcmread(f)
        ds.PatientSize, ds.PatientSex = "1.80", "F"
        ds.save_as(f)
    bw, _ = read_pet_suv(folder)
    lbm, info = read_pet_suv(folder, variant="lbm")
    bsa, _ = read_pet_suv(folder, variant="bsa")
    ratio = lean_body_mass_james(80.0, 180.0, "F") / 80.0
    assert info.variant == "lbm" and 0.6 < ratio < 0.9
    assert np.allclose(sitk.GetArrayFromImage(lbm), sitk.GetArrayFromImage(bw) * ratio)
    area = body_surface_area_du_bois(80.0, 180.0) * 1e4 / 80000.0
    assert np.allclose(sitk.GetArrayFromImage(bsa), sitk.GetArrayFromImage(bw) * area)


def test_gml_units_accepted_when_manifest_says_suv(tmp_path):
    folder = write_pet_dicom_series(_suv_volume(), tmp_path / "pet", units="GML")
    image, info = read_pet_suv(folder, pet_units="SUV")
    assert info is None and image.GetSize() == (7, 6, 5)


def test_nifti_pet_needs_pet_units_suv(tmp_path):
    path = tmp_path / "pet.nii.gz"
    sitk.WriteImage(_suv_volume(), str(path))
    with pytest.raises(SUVConversionError, match="pet_units=SUV"):
        read_pet_suv(path, case_id="A")
    image, info = read_pet_suv(path, pet_units="SUV")
    assert info is None
    assert sitk.GetArrayFromImage(image).max() == pytest.approx(2.0)


def test_unreadable_and_missing_images(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="cannot read"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="cannot read"):
        read_image_information(bad)
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "absent.nrrd")
    with pytest.raises(ImageReadError, match="no readable DICOM series"):
        read_image(tmp_path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_formats_round_trip(tmp_path, suffix):
    img = _suv_volume()
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(img, str(path))
    back = read_image(path)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img))
    assert np.allclose(back.GetOrigin(), img.GetOrigin())
    header = read_image_information(path)
    assert header.GetSize() == img.GetSize()


def test_read_mask_label_selection_and_errors(tmp_path):
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[1, 1, 1] = 2
    arr[2, 2, 2] = 3
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    mask = read_mask(path, label=3)
    assert sitk.GetArrayFromImage(mask).sum() == 1
    with pytest.raises(MaskError, match=r"label value 1 not present; values found: \[2, 3\]"):
        read_mask(path, label=1, case_id="X")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8)), str(path))
    with pytest.raises(MaskError, match="empty"):
        read_mask(path)


def test_read_mask_keeps_integer_types_and_checks_float_maps(tmp_path):
    arr = np.zeros((5, 6, 7), np.int16)
    arr[1:3, 2:4, 2:5] = 7
    arr[4, 0, 0] = -2
    path = tmp_path / "int16.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    mask = read_mask(path, label=7)
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(mask), (arr == 7).astype(np.uint8))
    with pytest.raises(MaskError, match=r"values found: \[-2, 7\]"):
        read_mask(path, label=1)
    # Float label maps: near-integer values are their nearest integer, anything else is refused.
    floats = arr.astype(np.float32) + np.float32(1e-7) * (arr != 0)
    fpath = tmp_path / "float.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(floats), str(fpath))
    assert sitk.GetArrayFromImage(read_mask(fpath, label=7)).sum() == (arr == 7).sum()
    floats[1, 2, 2] = 6.5
    sitk.WriteImage(sitk.GetImageFromArray(floats), str(fpath))
    with pytest.raises(MaskError, match="non-integer"):
        read_mask(fpath, label=7, case_id="C1")
    floats[1, 2, 2] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(floats), str(fpath))
    with pytest.raises(MaskError, match="non-integer"):
        read_mask(fpath, label=7)
    vector = sitk.Compose([sitk.GetImageFromArray((arr == 7).astype(np.uint8))] * 2)
    vpath = tmp_path / "vector.nrrd"
    sitk.WriteImage(vector, str(vpath))
    with pytest.raises(MaskError, match="components per voxel"):
        read_mask(vpath)


def test_suv_scale_factor_formula():
    from radfeat.io import SUVInfo, suv_scale_factor

    t0 = datetime(2024, 1, 1, 10)
    info = SUVInfo("BQML", 70.0, 4e8, 6586.2, t0, t0.replace(hour=11), "START")
    assert suv_scale_factor(info) == pytest.approx(70000.0 / (4e8 * math.exp(-math.log(2) * 3600 / 6586.2)))
    admin = SUVInfo("BQML", 70.0, 4e8, 6586.2, t0, t0.replace(hour=11), "ADMIN")
    assert suv_scale_factor(admin) == pytest.approx(70000.0 / 4e8)
