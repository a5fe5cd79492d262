"""Hospital data in: RTSTRUCT and DICOM-SEG masks against their ground truth, the GE BQML whole-body PET
with irregular slices, `radfeat import` on the shared DICOM tree, and the DICOM route giving the same PET
descriptors as the NIfTI route.

Tolerances: RTSTRUCT and SEG masks must agree with their NIfTI / NRRD ground truth voxel for voxel (0
differing voxels); SUV of the GE series to the 3 decimals its known answer gives.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radfeat.dicom.rtstruct import AmbiguousROI, ROINotFound, rasterise_roi, read_rtstruct, select_roi
from radfeat.dicom.seg import read_segment, segment_labels, write_label_map_seg
from radfeat.dicom.series import read_series, series_slices
from radfeat.dicom.suv import suv_conversion
from radfeat.errors import MaskError
from radfeat.io import read_image, read_pet_suv

pytestmark = pytest.mark.realdata


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


@pytest.mark.parametrize("patient", ["STS_002", "STS_003"])
@pytest.mark.parametrize("modality", ["CT", "PET"])
def test_rtstruct_placed_by_position_reproduces_the_nifti_masks_exactly(shared_data, patient, modality):
    """The RTSTRUCTs reference the original, uncropped slices: placing by UID would give nothing."""
    root = shared_data / "dicom" / "sts_rtstruct" / patient / modality
    slices = series_slices(root / "image")
    image, _ = read_series(slices, pixel_type=None)
    structure = read_rtstruct(root / "mask" / "RS.dcm")
    present = {str(h.SOPInstanceUID) for h in slices.headers}
    import pydicom

    ds = pydicom.dcmread(root / "mask" / "RS.dcm")
    referenced = {
        str(c.ContourImageSequence[0].ReferencedSOPInstanceUID)
        for c in ds.ROIContourSequence[0].ContourSequence
    }
    assert not referenced & present  # the references point at slices that are not in the export
    mask, notes = rasterise_roi(structure.rois[0], image)
    truth = _array(sitk.ReadImage(str(shared_data / "sts_petct" / patient / f"{modality}_mask.nii.gz"))) > 0
    assert int((_array(mask).astype(bool) ^ truth).sum()) == 0
    assert truth.sum() > 400 and notes == []


def test_rtstruct_even_odd_rule_holes_and_contours_outside(tmp_path):
    """A ring (outer + inner contour) leaves the hole empty; a plane beyond the image is reported."""
    from radfeat.dicom.rtstruct import StructureROI

    image = sitk.Image([20, 20, 5], sitk.sitkUInt8)
    square = lambda lo, hi, z: np.array([[lo, lo, z], [hi, lo, z], [hi, hi, z], [lo, hi, z]], float)  # noqa: E731
    roi = StructureROI(1, "ring", [square(2.5, 15.5, 2.0), square(6.5, 11.5, 2.0), square(2.5, 15.5, 40.0)])
    mask, notes = rasterise_roi(roi, image)
    plane = _array(mask)[2].astype(bool)
    assert plane[4, 4] and not plane[9, 9] and plane.sum() == 13 * 13 - 5 * 5
    assert _array(mask)[[0, 1, 3, 4]].sum() == 0
    assert any("outside the image's slices" in n for n in notes)
    with pytest.raises(MaskError, match="covers no voxel"):
        rasterise_roi(StructureROI(2, "far", [square(2.5, 15.5, 99.0)]), image)


def test_roi_selection_exact_then_regex_and_never_guessed():
    names = ["GTV_Mass", "GTV_Edema", "PTV"]
    assert select_roi(names, "GTV_Mass") == 0
    assert select_roi(names, "gtv_edema") == 1
    assert select_roi(names, "P.*") == 2
    with pytest.raises(AmbiguousROI, match="matches 2"):
        select_roi(names, "GTV.*")
    with pytest.raises(AmbiguousROI, match="none chosen"):
        select_roi(names, None)
    with pytest.raises(ROINotFound, match="choices"):
        select_roi(names, "CTV")


def test_dicom_seg_segments_equal_the_nrrd_ground_truth(shared_data):
    """One-segment liver SEG and five overlapping segments, each read on its own on the CT grid."""
    root = shared_data / "dicom" / "seg_dcmqi"
    ct = read_image(root / "ct-3slice", pixel_type=None)
    liver, label = read_segment(root / "liver.dcm", ct)
    truth = _array(sitk.ReadImage(str(root / "liver_seg.nrrd"))) > 0
    assert label == "Liver" and int((_array(liver).astype(bool) ^ truth).sum()) == 0
    labels = segment_labels(root / "partial_overlaps.dcm")
    assert len(labels) == 5
    in_file = {1: 1, 4: 1, 5: 1, 2: 2, 3: 3}  # dcmqi writes overlapping segments to separate label maps
    masks = {}
    for number, name in labels.items():
        masks[number], got = read_segment(root / "partial_overlaps.dcm", ct, segment=str(number))
        truth = _array(sitk.ReadImage(str(root / f"partial_overlaps-{in_file[number]}.nrrd"))) == number
        assert got == name and int((_array(masks[number]).astype(bool) ^ truth).sum()) == 0
    # Overlaps are kept: some voxels are in two segments.
    assert (_array(masks[1]).astype(bool) & _array(masks[2]).astype(bool)).any()
    by_label, _ = read_segment(root / "partial_overlaps.dcm", ct, segment="orange")
    assert np.array_equal(_array(by_label), _array(masks[2]))
    with pytest.raises(MaskError, match="several segments"):
        read_segment(root / "partial_overlaps.dcm", ct)


def test_fractional_seg_is_thresholded_and_habitat_maps_round_trip_as_seg(shared_data, tmp_path):
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    root = shared_data / "dicom" / "seg_dcmqi" / "ct-3slice"
    slices = series_slices(root)
    ct, _ = read_series(slices, pixel_type=None)
    labels = np.zeros(_array(ct).shape, np.uint8)
    labels[:, 100:200, 100:200] = 1
    labels[:, 220:260, 150:300] = 2
    label_map = sitk.GetImageFromArray(labels)
    label_map.CopyInformation(ct)
    seg_path = write_label_map_seg(
        label_map, slices.files, tmp_path / "habitats.seg.dcm", segment_names=["hab1", "hab2"]
    )
    for number in (1, 2):
        back, name = read_segment(seg_path, ct, segment=number)
        assert name == f"hab{number}" and np.array_equal(_array(back), (labels == number).astype(np.uint8))
    # Fractional: a ramp 0…1 along x, thresholded at 0.5 (and at 0.8 when asked).
    ramp = np.tile(
        np.linspace(0, 1, labels.shape[2], dtype=np.float32), (labels.shape[0], labels.shape[1], 1)
    )
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test", family=codes.cid7162.ArtificialIntelligence, version="1"
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="ramp",
        segmented_property_category=codes.cid7150.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    sources = [pydicom.dcmread(f) for f in slices.files]
    for ds in sources:
        del ds.SpecificCharacterSet  # empty in this export; highdicom wants a valid one or none
    fractional = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=ramp,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
        max_fractional_value=255,
    )
    fractional.save_as(tmp_path / "fractional.dcm")
    half, _ = read_segment(tmp_path / "fractional.dcm", ct)
    high, _ = read_segment(tmp_path / "fractional.dcm", ct, threshold=0.8)
    stored = np.round(ramp * 255) / 255
    assert np.array_equal(_array(half).astype(bool), stored >= 0.5)
    assert np.array_equal(_array(high).astype(bool), stored >= 0.8)


def test_ge_bqml_whole_body_pet_with_irregular_slices(shared_data):
    """SUVbw factor 2.42903e-4; GTV_Mass 5,095 voxels, SUVmax 7.911, SUVmean 2.555 on the stored slices;
    the regular-grid route (what extraction uses) records the resampling and keeps the answer."""
    root = shared_data / "dicom" / "pet_bqml_ge" / "STS_001" / "FDG_PET"
    slices = series_slices(root / "image")
    assert slices.irregular and len(slices.files) == 267
    conversion = suv_conversion(slices.headers)
    assert conversion.info.scale_factor == pytest.approx(2.42903e-4, rel=1e-5)
    assert conversion.info.decay_time_s == pytest.approx(45 * 60 + 11)
    structure = read_rtstruct(root / "mask" / "1-1.dcm")
    roi = structure.rois[select_roi(structure.names, "GTV_Mass")]
    stored, _ = read_series(slices, slice_factors=conversion.factors, irregular="keep")
    mask, _ = rasterise_roi(roi, stored, slice_positions=slices.positions)
    values = _array(stored)[_array(mask) > 0]
    assert values.size == 5095
    assert round(float(values.max()), 3) == 7.911 and round(float(values.mean()), 3) == 2.555
    suv, info = read_pet_suv(root / "image")
    assert any("non-uniform slice spacing 3.190–3.290 mm" in n for n in info.notes)
    assert suv.GetSpacing()[2] == pytest.approx(3.27, abs=0.01)
    regular_mask, _ = rasterise_roi(roi, suv)
    regular = _array(suv)[_array(regular_mask) > 0]
    assert regular.max() == pytest.approx(7.911, rel=0.01) and regular.mean() == pytest.approx(
        2.555, rel=0.01
    )
    with pytest.raises(Exception, match="not uniform"):
        read_series(slices, irregular="refuse")


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "COLUMNS": "400"}  # long paths on one line (rich folds words at the width)
    return subprocess.run(
        [sys.executable, "-m", "radfeat_cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env=env,
    )


FAST = """
ct:
  imageType: {Original: {}}
  featureClass: {firstorder: []}
pet:
  imageType: {Original: {}}
  featureClass: {firstorder: []}
"""


def test_import_the_shared_dicom_tree_then_extract_equals_the_nifti_route(shared_data, tmp_path):
    done = _cli(
        "import",
        str(shared_data / "dicom"),
        "--roi",
        "GTV_Mass.*",
        "-o",
        "dicom/manifest.csv",
        "-q",
        cwd=tmp_path,
    )
    # Studies without a CT (the SUV objects, the GE PET) and the SEG study are listed, not guessed.
    assert done.returncode == 1, done.stderr
    said = " ".join(done.stderr.split())  # rich wraps long lines
    assert "patient STS_001" in said and "no CT series" in said
    assert "patient 99000" in said and "choose --roi among" in said
    manifest = pd.read_csv(tmp_path / "dicom" / "manifest.csv")
    assert sorted(manifest.case_id) == ["STS_002", "STS_003"]
    assert list(manifest.roi) == ["GTV_Mass_CT"] * 2 and list(manifest.pet_roi) == ["GTV_Mass_PET"] * 2
    assert _cli("validate", "dicom/manifest.csv", cwd=tmp_path).returncode == 0
    nifti = pd.DataFrame(
        {
            "case_id": ["STS_002", "STS_003"],
            "ct": [str(shared_data / "sts_petct" / p / "CT_image.nii.gz") for p in ("STS_002", "STS_003")],
            "mask": [str(shared_data / "sts_petct" / p / "CT_mask.nii.gz") for p in ("STS_002", "STS_003")],
            "pet": [str(shared_data / "sts_petct" / p / "PET_image.nii.gz") for p in ("STS_002", "STS_003")],
            "pet_mask": [
                str(shared_data / "sts_petct" / p / "PET_mask.nii.gz") for p in ("STS_002", "STS_003")
            ],
            "pet_units": "SUV",
        }
    )
    nifti.to_csv(tmp_path / "nifti.csv", index=False)
    (tmp_path / "fast.yaml").write_text(FAST)
    for name, source in (("dicom", "dicom/manifest.csv"), ("nifti", "nifti.csv")):
        done = _cli("extract", source, "-o", f"{name}.csv", "--settings", "fast.yaml", "-q", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    a = pd.read_csv(tmp_path / "dicom.csv").set_index("case_id").sort_index()
    b = pd.read_csv(tmp_path / "nifti.csv").set_index("case_id").sort_index()
    descriptors = [c for c in b.columns if c.startswith("pet_tumour_suv_")]
    assert len(descriptors) >= 8
    # PET in the DICOM route is converted from the GML series (float32 in the NIfTI export: 1e-5).
    pd.testing.assert_frame_equal(a[descriptors], b[descriptors], rtol=1e-5)
    # CT: the same HU in both routes (the NIfTI copy stores float, the DICOM series int16, which
    # pyradiomics keeps through resampling), so first-order features agree to about 1 HU.
    assert np.allclose(
        a["ct_tumour_original_firstorder_Mean"], b["ct_tumour_original_firstorder_Mean"], atol=1.0
    )


def test_import_nifti_cache_and_problems_name_patient_and_fix(shared_data, tmp_path):
    done = _cli(
        "import",
        str(shared_data / "dicom" / "sts_rtstruct"),
        "--roi",
        "GTV_Mass.*",
        "-o",
        "m.csv",
        "--nifti-cache",
        "nifti",
        "-q",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    manifest = pd.read_csv(tmp_path / "m.csv")
    assert set(manifest.pet_units) == {"SUV"} and all(p.endswith(".nii.gz") for p in manifest.ct)
    cached = _array(sitk.ReadImage(str(tmp_path / manifest["mask"][0]))) > 0
    truth = _array(sitk.ReadImage(str(shared_data / "sts_petct" / "STS_002" / "CT_mask.nii.gz"))) > 0
    assert np.array_equal(cached, truth)
    # No --roi: the SEG study with five segments is listed with its choices.
    done = _cli("import", str(shared_data / "dicom" / "seg_dcmqi"), "-o", "s.csv", "-q", cwd=tmp_path)
    said = " ".join(done.stderr.split())
    assert done.returncode == 1 and "several ROIs and none chosen" in said and "GREEN" in said
    assert "give --roi" in said


def _study_tail(path) -> str:
    import pydicom

    return str(
        pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"]).StudyInstanceUID
    )[-12:]


def test_a_broken_mask_object_is_listed_and_the_other_patients_are_imported(shared_data, tmp_path):
    import shutil

    export = tmp_path / "export"
    shutil.copytree(shared_data / "dicom" / "sts_rtstruct", export)
    import pydicom
    from pydicom.uid import generate_uid

    cut = export / "STS_002" / "CT" / "mask" / "cut.dcm"
    cut.write_bytes((export / "STS_002" / "CT" / "mask" / "RS.dcm").read_bytes()[:2000])  # cut short
    # A file that says it is a DICOM-SEG but is not one (highdicom cannot read it) in STS_003's study.
    not_seg = pydicom.dcmread(sorted((export / "STS_003" / "CT" / "image").iterdir())[0])
    not_seg.Modality, not_seg.SeriesInstanceUID = "SEG", generate_uid()
    fake = export / "STS_003" / "CT" / "mask" / "seg.dcm"
    not_seg.save_as(fake)
    done = _cli("import", str(export), "--roi", "GTV_Mass.*", "-o", "m.csv", "-q", cwd=tmp_path)
    said = " ".join(done.stderr.split())
    assert done.returncode == 1
    assert f"patient STS_003 (study …{_study_tail(fake)}): cannot read {fake}" in said
    assert f"cannot read {cut}" in said and "re-export" in said
    # STS_002's own files are intact: the cut extra file does not cost it its row.
    assert list(pd.read_csv(tmp_path / "m.csv").case_id) == ["STS_002"]
