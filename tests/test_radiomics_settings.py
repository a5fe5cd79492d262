"""Every pyradiomics setting the schema accepts is honoured (values equal plain pyradiomics) or refused
by name. Before, ``resegmentRange`` passed the schema and was silently ignored."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from radiomics import featureextractor

from radfeat.features.radiomics import REFUSED_SETTINGS, RadiomicsEngine
from radfeat.settings import load_settings


def _params(image_types, classes=("shape", "firstorder", "glcm"), **setting):
    return {"imageType": image_types, "featureClass": {c: [] for c in classes}, "setting": setting}


def _plain(params, image, mask) -> dict[str, float]:
    result = featureextractor.RadiomicsFeatureExtractor(params).execute(image, mask)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics")}


def _assert_parity(ours: dict, plain: dict, rtol: float = 1e-6) -> None:
    assert set(ours) == set(plain), set(ours) ^ set(plain)
    worst = max(plain, key=lambda k: abs(ours[k] - plain[k]) / max(abs(plain[k]), 1e-12))
    diff = abs(ours[worst] - plain[worst]) / max(abs(plain[worst]), 1e-12)
    assert diff < rtol, f"{worst}: {ours[worst]} vs {plain[worst]}"


@pytest.fixture(scope="module")
def ibsi_ct(shared_data):
    folder = shared_data / "ibsi" / "ibsi_1_ct_radiomics_phantom" / "nifti"
    image = sitk.ReadImage(str(folder / "image" / "phantom.nii.gz"))
    mask = sitk.ReadImage(str(folder / "mask" / "mask.nii.gz"))
    return image, mask


@pytest.mark.realdata
@pytest.mark.parametrize(
    "setting",
    [
        {"binWidth": 25, "resegmentRange": [-500, 400]},
        {"binWidth": 25, "resegmentRange": [-500, 400], "resegmentShape": True},
        {"binWidth": 25, "resegmentRange": [-3, 3], "resegmentMode": "sigma"},
    ],
    ids=["absolute", "absolute-shape", "sigma"],
)
def test_resegmentation_on_the_ibsi_ct_phantom(ibsi_ct, setting):
    image, mask = ibsi_ct
    params = _params({"Original": {}}, **setting)
    ours = RadiomicsEngine(params).extract(image, {"tumour": mask})["tumour"]
    plain = _plain(params, image, mask)
    _assert_parity(ours, plain)
    if setting.get("resegmentMode", "absolute") == "absolute":
        assert ours["original_firstorder_Minimum"] == -500  # -1000 (air) before re-segmentation
        without = RadiomicsEngine(_params({"Original": {}}, binWidth=25)).extract(image, {"t": mask})["t"]
        changed = [k for k in ours if "shape" not in k and ours[k] != without[k]]
        assert len(changed) >= 30  # the setting is not ignored


def _blob():
    rng = np.random.default_rng(1)
    z, y, x = np.mgrid[0:30, 0:48, 0:48]
    r2 = (z - 15) ** 2 + (y - 24) ** 2 + (x - 24) ** 2
    arr = 200 * np.exp(-r2 / 120.0) + rng.normal(0, 20, z.shape) - 50
    image = sitk.GetImageFromArray(arr.astype(np.float32))
    image.SetSpacing((0.8, 0.8, 2.0))
    mask = sitk.GetImageFromArray((r2 < 100).astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask


@pytest.mark.parametrize(
    "image_types,setting",
    [
        ({"Original": {}, "LoG": {"sigma": [2.0]}}, {"binWidth": 10, "preCrop": True, "padDistance": 3}),
        ({"Original": {}}, {"binWidth": 0.1, "normalize": True, "normalizeScale": 1, "removeOutliers": 2}),
        ({"Original": {}}, {"binCount": 16, "force2D": True, "force2Ddimension": 0}),
        (
            {"Original": {}},
            {
                "binWidth": 10,
                "resampledPixelSpacing": [1.5, 1.5, 1.5],
                "interpolator": "sitkBSpline",
                "resegmentRange": [0, 150],
            },
        ),
        ({"Original": {}}, {"binWidth": 10, "resegmentRange": [0.3], "resegmentMode": "relative"}),
        (
            {"Original": {}},
            {"binWidth": 10, "distances": [1, 2], "symmetricalGLCM": False, "weightingNorm": "euclidean"},
        ),
    ],
    ids=[
        "preCrop-LoG",
        "normalize-outliers",
        "force2D-binCount",
        "resampled-resegment",
        "relative",
        "glcm-options",
    ],
)
def test_settings_match_plain_pyradiomics(image_types, setting):
    image, mask = _blob()
    params = _params(image_types, **setting)
    ours = RadiomicsEngine(params).extract(image, {"tumour": mask})["tumour"]
    _assert_parity(ours, _plain(params, image, mask))


@pytest.mark.parametrize("key,value", [("label", 2), ("label_channel", 1), ("additionalInfo", True)])
def test_settings_radfeat_cannot_honour_are_refused_by_name(tmp_path, key, value):
    with pytest.raises(ValueError, match=key):
        RadiomicsEngine(_params({"Original": {}}, **{key: value}))
    settings = tmp_path / "s.yaml"
    settings.write_text(f"ct:\n  setting: {{{key}: {str(value).lower()}}}\n")
    with pytest.raises(ValueError, match=f"section 'ct'.*{key}"):
        load_settings(settings)
    assert key in REFUSED_SETTINGS


def test_voxel_based_block_is_refused():
    params = {**_params({"Original": {}}), "voxelSetting": {"kernelRadius": 2}}
    with pytest.raises(ValueError, match="voxelSetting"):
        RadiomicsEngine(params)
