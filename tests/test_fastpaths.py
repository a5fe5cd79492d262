"""pyradiomics' values by faster routes: the table-driven marching-cubes coefficients equal
pyradiomics' C loop, and the engine's fast paths (mesh, bin edges, one binning per image and mask)
change no feature value."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from radiomics import _cshape, featureextractor

from radfeat.features import mesh
from radfeat.features.fastpaths import pyradiomics_fast_paths
from radfeat.features.radiomics import RadiomicsEngine

ALL_CLASSES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


def _assert_coefficients_equal(mask: np.ndarray, spacing: np.ndarray) -> None:
    ref_area, ref_volume, ref_diameters = _cshape.calculate_coefficients(mask, spacing)
    area, volume, diameters = mesh.mesh_coefficients(mask, spacing)
    assert area == pytest.approx(ref_area, rel=1e-12, abs=1e-9)
    assert volume == pytest.approx(ref_volume, rel=1e-12, abs=1e-9)
    # Diameters are maxima over the same vertex coordinates: exactly equal.
    assert diameters == tuple(ref_diameters)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 0.9), (3.27, 0.976, 0.976)])
def test_mesh_coefficients_equal_pyradiomics_c_loop_on_random_masks(spacing):
    rng = np.random.default_rng(11)
    spacing = np.array(spacing)
    for _ in range(60):
        inner = rng.integers(1, 12, 3)
        mask = np.zeros(inner + 2, dtype=bool)  # pyradiomics pads with one background voxel
        mask[1:-1, 1:-1, 1:-1] = rng.random(inner) < rng.uniform(0.05, 0.95)
        if mask.any():
            _assert_coefficients_equal(mask, spacing)


def test_mesh_coefficients_on_degenerate_and_smooth_shapes():
    spacing = np.array([2.0, 0.8, 0.8])
    single = np.zeros((3, 3, 3), dtype=bool)
    single[1, 1, 1] = True
    line = np.zeros((3, 3, 12), dtype=bool)
    line[1, 1, 1:-1] = True
    plate = np.zeros((3, 14, 14), dtype=bool)
    plate[1, 1:-1, 1:-1] = True
    z, y, x = np.mgrid[0:24, 0:40, 0:40]
    ball = ((z - 12) / 10) ** 2 + ((y - 20) / 17) ** 2 + ((x - 20) / 15) ** 2 < 1
    for mask in (single, line, plate, ball):
        _assert_coefficients_equal(mask, spacing)


def test_configuration_tables_are_cached_per_spacing():
    first = mesh.configuration_tables((2.0, 1.0, 1.0))
    assert mesh.configuration_tables((2.0, 1.0, 1.0)) is first
    assert not np.array_equal(mesh.configuration_tables((1.0, 1.0, 1.0))[0], first[0])
    area, volume0, gradient = first
    assert area[0] == area[255] == 0 and volume0[0] == 0 and not gradient[255].any()


@pytest.mark.realdata
def test_mesh_coefficients_on_real_tumour_masks(shared_data):
    for path in (
        shared_data / "pyradiomics" / "lung2_label.nrrd",
        shared_data / "sts_petct" / "STS_005" / "CT_mask.nii.gz",  # 188k voxels
    ):
        image = sitk.ReadImage(str(path))
        mask = sitk.GetArrayFromImage(image) == 1
        nonzero = np.nonzero(mask)
        box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in nonzero)
        _assert_coefficients_equal(np.pad(mask[box], 1), np.array(image.GetSpacing()[::-1]))


def _lumpy_tumour():
    """A 12k-voxel tumour with heterogeneous texture on an anisotropic CT-like grid."""
    rng = np.random.default_rng(5)
    z, y, x = np.mgrid[0:36, 0:64, 0:64]
    r2 = ((z - 18) / 11.0) ** 2 + ((y - 32) / 20.0) ** 2 + ((x - 30) / 17.0) ** 2
    arr = 180 * np.exp(-3 * r2) + 60 * np.sin(y / 3.0) * (r2 < 1) + rng.normal(0, 25, z.shape) - 40
    image = sitk.GetImageFromArray(arr.astype(np.float32))
    image.SetSpacing((0.9, 0.9, 2.5))
    lumps = rng.random(z.shape) < 0.03
    mask = sitk.GetImageFromArray(((r2 < 1) & ~(lumps & (r2 > 0.8))).astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask


@pytest.mark.parametrize(
    "image_types,setting",
    [
        ({"Original": {}, "LoG": {"sigma": [1.0, 3.0]}, "Wavelet": {}}, {"binWidth": 25}),
        ({"Original": {}}, {"binCount": 32}),
    ],
    ids=["original-LoG-wavelet-binWidth", "binCount"],
)
def test_fast_paths_change_no_feature_value(monkeypatch, image_types, setting):
    monkeypatch.setattr(mesh, "SMALL_MASK_VOXELS", 0)  # the table route for every mask
    image, mask = _lumpy_tumour()
    assert sitk.GetArrayViewFromImage(mask).sum() > 10_000
    params = {"imageType": image_types, "featureClass": {c: [] for c in ALL_CLASSES}, "setting": setting}
    ours = RadiomicsEngine(params).extract(image, {"tumour": mask})["tumour"]
    plain = featureextractor.RadiomicsFeatureExtractor(params).execute(image, mask)
    plain = {k: float(v) for k, v in plain.items() if not k.startswith("diagnostics")}
    assert set(ours) == set(plain)
    worst = max(plain, key=lambda k: abs(ours[k] - plain[k]) / max(abs(plain[k]), 1e-12))
    assert abs(ours[worst] - plain[worst]) <= 1e-9 * max(abs(plain[worst]), 1e-12), worst


def test_fast_paths_restore_pyradiomics_and_bin_each_image_once(monkeypatch):
    from radiomics import imageoperations, shape

    before = (shape.cShape, imageoperations.getBinEdges, imageoperations.binImage)
    calls = []
    original_digitize = np.digitize

    def counting_digitize(*args, **kwargs):
        calls.append(1)
        return original_digitize(*args, **kwargs)

    monkeypatch.setattr(np, "digitize", counting_digitize)
    image, mask = _lumpy_tumour()
    params = {"imageType": {"Original": {}}, "featureClass": {c: [] for c in ALL_CLASSES}, "setting": {}}
    RadiomicsEngine(params).extract(image, {"tumour": mask})
    # firstorder, glcm, glrlm, glszm, gldm, ngtdm share one discretisation of the image in the mask.
    assert len(calls) == 1
    with pytest.raises(RuntimeError):
        with pyradiomics_fast_paths():
            raise RuntimeError("boom")
    assert (shape.cShape, imageoperations.getBinEdges, imageoperations.binImage) == before


def _mask_image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    mask = sitk.GetImageFromArray(array.astype(np.uint32))
    mask.CopyInformation(like)
    return mask


@pytest.mark.parametrize(
    ("voxels", "settings"),
    [
        ("blob", {}),
        ("blob", {"minimumROISize": 10_000}),  # too small
        ("none", {}),  # label absent
        ("one", {}),  # a single voxel
        ("line", {}),  # 1D: fewer than minimumROIDimensions = 2
        ("plane", {"minimumROIDimensions": 3}),
        ("plane", {"minimumROIDimensions": 2, "minimumROISize": 3}),
    ],
)
def test_check_mask_equals_pyradiomics_check(voxels, settings):
    from radiomics import imageoperations

    from radfeat.features.radiomics import check_mask

    rng = np.random.default_rng(3)
    image = sitk.GetImageFromArray(rng.normal(size=(12, 20, 18)))
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((-4.0, 3.0, 10.0))
    array = np.zeros((12, 20, 18), dtype=np.uint32)
    if voxels == "blob":
        array[3:9, 5:14, 2:11] = rng.random((6, 9, 9)) < 0.7
    elif voxels == "one":
        array[4, 4, 4] = 1
    elif voxels == "line":
        array[4, 4, 2:9] = 1
    elif voxels == "plane":
        array[4, 3:9, 2:9] = 1
    mask = _mask_image(array, image)

    def outcome(check):
        try:
            bbox, corrected = check(image, mask, label=1, **settings)
        except ValueError as exc:
            return str(exc)
        return tuple(int(v) for v in bbox), corrected

    ours, theirs = outcome(check_mask), outcome(imageoperations.checkMask)
    assert ours == theirs
    # A mask on another grid goes to pyradiomics' own check (here: its geometry-mismatch message).
    moved = _mask_image(array, image)
    moved.SetOrigin((-4.0, 3.0, 30.0))
    with pytest.raises(ValueError, match="geometry mismatch"):
        check_mask(image, moved, label=1, **settings)
