"""Truncated or incomplete image files are refused (ITK would zero-fill them silently)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from radfeat.errors import ImageReadError
from radfeat.filecheck import check_complete
from radfeat.io import read_image, read_image_information
from radfeat.manifest import validate_manifest


def _volume() -> sitk.Image:
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.normal(0, 100, (20, 30, 30)).astype(np.int16))
    image.SetSpacing((1.0, 1.0, 2.0))
    return image


def _truncate(path: Path, keep: float = 1 / 3) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize(
    "name,compress",
    [
        ("a.nii.gz", True),
        ("a.nii", False),
        ("a.nrrd", True),
        ("a.nrrd", False),
        ("a.mha", True),
        ("a.mha", False),
    ],
)
def test_truncated_files_are_refused_with_the_file_named(tmp_path, name, compress):
    path = tmp_path / name
    sitk.WriteImage(_volume(), str(path), useCompression=compress)
    check_complete(path)  # the intact file passes
    assert read_image(path).GetSize() == (30, 30, 20)
    _truncate(path)
    # ITK itself reads the truncated file (zero-filled) for some of these formats: radfeat must not.
    with pytest.raises(ImageReadError, match="incomplete|ends early|corrupt") as info:
        read_image(path)
    assert str(path) in str(info.value) and "Hint" in str(info.value)
    with pytest.raises(ImageReadError):
        read_image_information(path)


def test_itk_alone_accepts_a_truncated_nii_gz(tmp_path):
    """The defect this guards against: ITK reads a cut .nii.gz without an error."""
    path = tmp_path / "a.nii.gz"
    sitk.WriteImage(_volume(), str(path), useCompression=True)
    _truncate(path, 0.5)
    try:
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError:
        pytest.skip("this ITK build rejects truncated gzip streams itself")
    assert (arr == 0).mean() > 0.2  # zero-filled voxels


def test_nrrd_with_missing_detached_data_is_refused(tmp_path):
    header = tmp_path / "a.nhdr"
    sitk.WriteImage(_volume(), str(header))
    raw = next(p for p in tmp_path.iterdir() if p.name != "a.nhdr")
    raw.unlink()
    with pytest.raises(ImageReadError, match="detached NRRD data file"):
        read_image(header)


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    from radfeat.synth import write_pet_dicom_series

    arr = np.ones((12, 8, 8), np.float32)
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((4.0, 4.0, 3.0))
    folder = write_pet_dicom_series(image, tmp_path / "pet")
    read_image(folder)  # complete series reads
    files = sorted(folder.iterdir())
    files[5].unlink()
    with pytest.raises(ImageReadError, match="missing slices") as info:
        read_image(folder)
    assert "3.00 mm" in str(info.value) and str(folder) in str(info.value)


def test_validate_rejects_a_truncated_nii_gz(tmp_path, synth_cohort):
    from radfeat_cli.main import app

    manifest = pd.read_csv(synth_cohort)
    case_dir = tmp_path / "c"
    case_dir.mkdir()
    rows = []
    for _, row in manifest.head(2).iterrows():
        row = row.copy()
        for col in ("ct", "mask", "pet"):
            src = Path(synth_cohort).parent / row[col]
            dst = case_dir / f"{row['case_id']}_{col}.nii.gz"
            dst.write_bytes(src.read_bytes())
            row[col] = dst.name
        rows.append(row)
    bad_ct = case_dir / f"{rows[0]['case_id']}_ct.nii.gz"
    _truncate(bad_ct)
    path = case_dir / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    report = validate_manifest(path)
    assert not report.ok
    assert report.unusable_cases == [rows[0]["case_id"]]
    assert any(p.path == str(bad_ct.resolve()) and p.code == "unreadable_image" for p in report.errors)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert bad_ct.name in result.stdout and "ends early" in result.stdout


@pytest.mark.realdata
def test_real_files_pass_the_completeness_check(shared_data):
    for path in (
        shared_data / "pyradiomics" / "lung1_image.nrrd",
        shared_data / "pyradiomics" / "lung2_label.nrrd",
        shared_data / "sts_petct" / "STS_001" / "CT_image.nii.gz",
        shared_data / "sts_petct" / "STS_001" / "PET_mask.nii.gz",
        shared_data / "dicom" / "sts_rtstruct" / "STS_003" / "CT" / "image",
        shared_data / "dicom" / "pet_bqml_ge" / "STS_001" / "FDG_PET" / "image",
    ):
        check_complete(path)
