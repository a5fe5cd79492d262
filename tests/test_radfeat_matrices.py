"""``engine: radfeat``: pyradiomics' feature definitions on radfeat's own matrices give pyradiomics'
values (1e-6 relative) through the whole extraction path; settings it cannot honour fall back to
pyradiomics' own matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radfeat.features.radiomics import RadiomicsEngine, radfeat_matrices_apply
from radfeat.settings import load_settings


def _max_rel(a: dict[str, float], b: dict[str, float]) -> float:
    assert set(a) == set(b)
    worst = 0.0
    for key, x in a.items():
        y = b[key]
        if np.isnan(x) and np.isnan(y):
            continue
        worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-12))
    return worst


def test_which_settings_radfeat_matrices_honour():
    assert radfeat_matrices_apply({"binWidth": 25}, {"glcm": [], "firstorder": ["Mean"], "shape": []})
    assert radfeat_matrices_apply({"binCount": 16, "voxelArrayShift": 1000}, {"gldm": [], "ngtdm": []})
    for settings in ({"distances": [1, 2]}, {"force2D": True}, {"weightingNorm": "manhattan"}, {"gldm_a": 1},
                     {"symmetricalGLCM": False}):  # fmt: skip
        assert not radfeat_matrices_apply(settings, {"glcm": []})
    assert not radfeat_matrices_apply({}, {"firstorder": ["StandardDeviation"]})  # deprecated: pyradiomics
    assert not radfeat_matrices_apply({}, {"glcm": ["SumVariance"]})
    with pytest.raises(ValueError, match="matrices"):
        RadiomicsEngine({"imageType": {"Original": {}}}, matrices="numba")


def _blob_case(seed: int):
    rng = np.random.default_rng(seed)
    z, y, x = np.indices((20, 28, 28))
    blob = ((z - 10) / 7) ** 2 + ((y - 14) / 10) ** 2 + ((x - 13) / 9) ** 2 < 1
    image = sitk.GetImageFromArray((60 * blob + 40 * rng.standard_normal(blob.shape) - 20).astype(np.float32))
    image.SetSpacing((0.9, 0.9, 2.5))
    mask = sitk.GetImageFromArray(blob.astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "setting",
    [{"binWidth": 10}, {"binCount": 24, "voxelArrayShift": 1000},
     {"binWidth": 5, "resampledPixelSpacing": [1.0, 1.0, 1.0], "interpolator": "sitkBSpline"}],
)  # fmt: skip
def test_radfeat_matrices_equal_pyradiomics_on_synthetic_blobs(seed, setting):
    params = {
        "imageType": {"Original": {}, "LoG": {"sigma": [1.0]}},
        "featureClass": {c: [] for c in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")},
        "setting": setting,
    }
    image, mask = _blob_case(seed)
    plain = RadiomicsEngine(params).extract(image, {"t": mask})["t"]
    ours = RadiomicsEngine(params, matrices="radfeat").extract(image, {"t": mask})["t"]
    assert len(plain) == 2 * 93 + 14  # original and LoG: 93 non-shape features each, shape once
    assert _max_rel(plain, ours) < 1e-6


def test_engine_radfeat_table_equals_pyradiomics_table(synth_cohort, tmp_path):
    from radfeat.extract import extract_table

    manifest = pd.read_csv(synth_cohort).head(3)
    for column in ("ct", "pet", "mask"):
        manifest[column] = [str(synth_cohort.parent / p) for p in manifest[column]]
    small = tmp_path / "manifest.csv"
    manifest.to_csv(small, index=False)
    settings = load_settings()
    settings["ct"]["imageType"] = {"Original": {}}
    plain = extract_table(small, tmp_path / "plain.parquet", settings=settings).table
    settings["engine"] = "radfeat"
    ours = extract_table(small, tmp_path / "ours.parquet", settings=settings).table
    columns = [c for c in plain.columns if c.startswith(("ct_tumour_original_", "pet_tumour_original_"))]
    assert len(columns) > 150 and list(ours.columns) == list(plain.columns)
    a, b = plain[columns].to_numpy(float), ours[columns].to_numpy(float)
    assert np.nanmax(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)) < 1e-6


@pytest.mark.realdata
@pytest.mark.parametrize("case", ["lung1", "lung2", "STS_005"])
def test_radfeat_matrices_equal_pyradiomics_on_real_cases(shared_data, case):
    """The default CT feature set (1 mm B-spline, 25 HU bins, original + LoG + wavelet on lung1; original
    only on the larger cases) on lung1, lung2 and the 188k-voxel sarcoma CT."""
    if case == "STS_005":
        folder = shared_data / "sts_petct" / "STS_005"
        image_path, mask_path = folder / "CT_image.nii.gz", folder / "CT_mask.nii.gz"
    else:
        folder = shared_data / "pyradiomics"
        image_path, mask_path = folder / f"{case}_image.nrrd", folder / f"{case}_label.nrrd"
    block = load_settings()["ct"]
    if case != "lung1":
        block = {**block, "imageType": {"Original": {}}}
    image = sitk.ReadImage(str(image_path))
    mask = sitk.Cast(sitk.ReadImage(str(mask_path)) > 0, sitk.sitkUInt8)
    plain = RadiomicsEngine(block).extract(image, {"t": mask})["t"]
    ours = RadiomicsEngine(block, matrices="radfeat").extract(image, {"t": mask})["t"]
    assert len(plain) >= 107
    assert _max_rel(plain, ours) < 1e-6


@pytest.mark.slow
@pytest.mark.realdata
def test_engine_radfeat_table_equals_pyradiomics_on_the_sarcoma_cohort(shared_data, tmp_path):
    """``radfeat extract`` with ``engine: radfeat`` on the 12 real sarcoma PET/CT cases (CT and PET
    texture, original image, radfeat's default grids) gives the pyradiomics-backed table to 1e-6."""
    from radfeat.extract import extract_table

    cases = sorted(p for p in (shared_data / "sts_petct").iterdir() if p.is_dir())
    rows = [{"case_id": c.name, "ct": str(c / "CT_image.nii.gz"), "mask": str(c / "CT_mask.nii.gz"),
             "pet": str(c / "PET_image.nii.gz"), "pet_mask": str(c / "PET_mask.nii.gz"), "pet_units": "SUV"}
            for c in cases]  # fmt: skip
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    settings = load_settings()
    settings["ct"]["imageType"] = {"Original": {}}
    plain = extract_table(manifest, tmp_path / "plain.parquet", settings=settings, jobs=2).table
    ours = extract_table(
        manifest, tmp_path / "ours.parquet", settings={**settings, "engine": "radfeat"}, jobs=2
    )
    assert len(plain) == len(ours.table) == 12 and not ours.summary.failures
    columns = [c for c in plain.columns if c.startswith(("ct_tumour_original_", "pet_tumour_original_"))]
    assert len(columns) == 2 * 107 - 14  # PET radiomics have no shape class in the defaults
    a, b = plain[columns].to_numpy(float), ours.table.loc[plain.index, columns].to_numpy(float)
    assert np.nanmax(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)) < 1e-6
