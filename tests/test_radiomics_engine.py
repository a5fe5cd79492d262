"""radfeat's radiomics engine gives plain pyradiomics' values (max relative difference < 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from radiomics import featureextractor

from radfeat.features.radiomics import RadiomicsEngine, filter_margin_voxels

FAMILIES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
FILTERED = {"Original": {}, "LoG": {"sigma": [1.0, 2.0, 3.0]}, "Wavelet": {}}


def _params(image_types, **setting):
    return {"imageType": image_types, "featureClass": {c: [] for c in FAMILIES}, "setting": setting}


def _plain(params, image, mask) -> dict[str, float]:
    result = featureextractor.RadiomicsFeatureExtractor(params).execute(image, mask)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics")}


def _max_rel_diff(ours: dict, plain: dict) -> tuple[float, str]:
    assert set(ours) == set(plain), set(ours) ^ set(plain)
    worst = max(plain, key=lambda k: abs(ours[k] - plain[k]) / max(abs(plain[k]), 1e-12))
    return abs(ours[worst] - plain[worst]) / max(abs(plain[worst]), 1e-12), worst


@pytest.mark.realdata
@pytest.mark.parametrize(
    "setting",
    [
        {"binWidth": 25},
        {"binWidth": 25, "resampledPixelSpacing": [1.0, 1.0, 1.0], "interpolator": "sitkBSpline"},
    ],
    ids=["native-grid", "resampled-1mm"],
)
def test_lung1_parity_with_plain_pyradiomics(shared_data, setting):
    folder = shared_data / "pyradiomics"
    image = sitk.ReadImage(str(folder / "lung1_image.nrrd"))
    mask = sitk.ReadImage(str(folder / "lung1_label.nrrd"))
    params = _params(FILTERED, **setting)
    plain = _plain(params, image, mask)
    ours = RadiomicsEngine(params).extract(image, {"tumour": mask == 1})["tumour"]
    assert len(ours) > 1000  # original + 3 LoG + 8 wavelet images × 7 families
    diff, worst = _max_rel_diff(ours, plain)
    assert diff < 1e-6, f"{worst}: {ours[worst]} vs {plain[worst]}"


@pytest.mark.realdata
def test_sarcoma_pet_parity_with_plain_pyradiomics(shared_data):
    folder = shared_data / "sts_petct" / "STS_003"
    pet = sitk.ReadImage(str(folder / "PET_image.nii.gz"))
    mask = sitk.ReadImage(str(folder / "PET_mask.nii.gz"))
    for setting in (
        {"binWidth": 0.25},
        {"binWidth": 0.25, "resampledPixelSpacing": [3.0, 3.0, 3.0], "interpolator": "sitkLinear"},
    ):
        params = _params({"Original": {}, "LoG": {"sigma": [3.0, 5.0]}}, **setting)
        plain = _plain(params, pet, mask)
        ours = RadiomicsEngine(params).extract(pet, {"tumour": mask})["tumour"]
        diff, worst = _max_rel_diff(ours, plain)
        assert diff < 1e-6, f"{setting}: {worst}: {ours[worst]} vs {plain[worst]}"


def _blob_case():
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[0:40, 0:60, 0:60]
    arr = 100 * np.exp(-((z - 20) ** 2 + (y - 30) ** 2 + (x - 30) ** 2) / 150.0) + rng.normal(0, 5, z.shape)
    image = sitk.GetImageFromArray(arr.astype(np.float32))
    image.SetSpacing((0.8, 0.8, 2.0))
    inner = ((z - 20) ** 2 + (y - 30) ** 2 + (x - 30) ** 2) < 36
    outer = (((z - 20) ** 2 + (y - 30) ** 2 + (x - 30) ** 2) < 144) & ~inner
    masks = {}
    for name, m in (("core", inner), ("rim", outer)):
        img = sitk.GetImageFromArray(m.astype(np.uint8))
        img.CopyInformation(image)
        masks[name] = img
    return image, masks


def test_many_masks_equal_one_mask_at_a_time():
    """Filtering once for several masks gives each mask's own values (the habitat path)."""
    image, masks = _blob_case()
    params = _params(FILTERED, binWidth=5)
    together = RadiomicsEngine(params).extract(image, masks)
    for name, mask in masks.items():
        alone = RadiomicsEngine(params).extract(image, {name: mask})[name]
        plain = _plain(params, image, mask)
        diff, worst = _max_rel_diff(together[name], plain)
        assert diff < 1e-6, f"{name} {worst}"
        assert _max_rel_diff(alone, plain)[0] < 1e-6


def test_filter_margin_covers_log_and_wavelet():
    params = _params({"Original": {}, "LoG": {"sigma": [1.0, 3.0]}, "Wavelet": {"level": 2}})
    margin = filter_margin_voxels(params, (0.5, 0.5, 2.0))
    assert margin[0] >= 12 * 3.0 / 0.5 and margin[2] >= 12 * 3.0 / 2.0
    assert filter_margin_voxels(_params({"Original": {}}), (1, 1, 1)).tolist() == [1, 1, 1]


def test_invalid_settings_and_bad_masks_raise_clearly():
    with pytest.raises(ValueError, match="binWidht"):
        RadiomicsEngine(_params({"Original": {}}, binWidht=25))
    image, masks = _blob_case()
    empty = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(image)
    with pytest.raises(ValueError, match="region 'gone' is empty"):
        RadiomicsEngine(_params({"Original": {}})).extract(image, {"gone": empty})
    one = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    one.CopyInformation(image)
    one[30, 30, 20] = 1
    with pytest.raises(ValueError, match="region 'dot'"):
        RadiomicsEngine(_params({"Original": {}}, minimumROISize=5)).extract(image, {"dot": one})


def test_tolerant_extraction_gives_nan_with_reason_for_small_regions():
    image, masks = _blob_case()
    tiny = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    tiny.CopyInformation(image)
    tiny[30, 30, 20] = 1
    engine = RadiomicsEngine(_params({"Original": {}}, binWidth=5))
    values, errors = engine.extract_with_errors(image, {"core": masks["core"], "dot": tiny})
    assert set(errors) == {"dot"} and "single voxel" in errors["dot"]
    assert set(values["dot"]) == set(values["core"]) == set(engine.feature_keys())
    assert all(np.isnan(v) for v in values["dot"].values())
    assert not any(np.isnan(v) for v in values["core"].values())
