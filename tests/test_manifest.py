"""Manifest validation on a corpus of broken manifests: every problem found in one pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from radfeat.manifest import load_manifest, validate_manifest
from radfeat.synth import make_cohort, write_pet_dicom_series
from radfeat_cli.main import app


@pytest.fixture()
def broken_cohort(tmp_path) -> tuple[Path, dict[str, str]]:
    """A cohort in which every case but two has exactly one planted problem.

    Returns the manifest path and {case_id: expected problem code}.
    """
    manifest = make_cohort(tmp_path, n_cases=10, seed=3, external_fraction=0.0)
    df = pd.read_csv(manifest, dtype={"case_id": str}, keep_default_na=False)
    cases = tmp_path / "cases"
    expected: dict[str, str] = {}

    # SYN0000, SYN0001: fine.
    df.loc[2, "ct"] = "cases/SYN0002/does_not_exist.nii.gz"
    expected["SYN0002"] = "missing_file"
    (cases / "SYN0003" / "ct.nii.gz").write_bytes(b"\x00garbage, not a NIfTI file")
    expected["SYN0003"] = "unreadable_image"
    empty = sitk.ReadImage(str(cases / "SYN0004" / "mask.nii.gz")) * 0
    sitk.WriteImage(empty, str(cases / "SYN0004" / "mask.nii.gz"))
    expected["SYN0004"] = "empty_mask"
    df["mask_label"] = np.nan
    df.loc[5, "mask_label"] = 4
    expected["SYN0005"] = "mask_label_absent"
    moved = sitk.ReadImage(str(cases / "SYN0006" / "mask.nii.gz"))
    moved.SetOrigin(tuple(np.array(moved.GetOrigin()) + np.array([0.0, 0.0, 7.5])))
    sitk.WriteImage(moved, str(cases / "SYN0006" / "mask.nii.gz"))
    expected["SYN0006"] = "geometry_mismatch"
    df.loc[7, "pet_units"] = ""
    expected["SYN0007"] = "pet_no_suv"
    pet = sitk.ReadImage(str(cases / "SYN0008" / "pet.nii.gz"))
    write_pet_dicom_series(pet, cases / "SYN0008" / "pet_dicom", include_weight=False)
    df.loc[8, "pet"] = "cases/SYN0008/pet_dicom"
    df.loc[8, "pet_units"] = ""
    expected["SYN0008"] = "pet_no_suv"
    # Duplicate id: row 9 reuses SYN0001's id.
    df.loc[9, "case_id"] = "SYN0001"
    expected["SYN0001"] = "duplicate_case_id"
    # An extra row with an empty id and no mask.
    extra = df.iloc[[0]].copy()
    extra["case_id"] = ""
    extra["mask"] = ""
    df = pd.concat([df, extra], ignore_index=True)
    df["mask_label"] = ["" if pd.isna(v) else int(v) for v in df["mask_label"]]
    df.to_csv(manifest, index=False)
    return manifest, expected


def test_every_problem_reported_in_one_pass(broken_cohort):
    manifest, expected = broken_cohort
    report = validate_manifest(manifest)
    assert not report.ok
    found = {(p.case_id, p.code) for p in report.problems}
    for case, code in expected.items():
        assert (case, code) in found, f"{code} not reported for {case}: {report.problems}"
    assert (None, "empty_case_id") in found
    assert (None, "missing_path") in found
    assert "SYN0000" not in report.unusable_cases
    # Each problem names its row and case, the path where there is one, and a hint.
    for p in report.problems:
        assert p.row is not None and p.hint
        text = str(p)
        assert f"row {p.row}" in text
        if p.code in ("missing_file", "unreadable_image", "empty_mask", "geometry_mismatch"):
            assert p.path and p.path in text
    mismatch = next(p for p in report.problems if p.code == "geometry_mismatch")
    assert "origin" in mismatch.message
    absent = next(p for p in report.problems if p.code == "mask_label_absent")
    assert "values found: [1]" in absent.message


def test_cli_validate_json_and_exit_code(broken_cohort):
    manifest, expected = broken_cohort
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(manifest), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert set(expected) <= set(payload["unusable_cases"])
    codes = {p["code"] for p in payload["problems"]}
    assert {"missing_file", "unreadable_image", "empty_mask", "geometry_mismatch"} <= codes
    human = runner.invoke(app, ["validate", str(manifest)])
    assert human.exit_code == 1
    assert "SYN0006" in human.stdout and "geometry_mismatch" in human.stdout


def test_clean_manifest_passes_and_paths_resolve_relative_to_manifest(synth_cohort, tmp_path):
    report = validate_manifest(synth_cohort)
    assert report.ok, report.problems
    # Copy the cohort elsewhere and run from another working directory: relative paths still resolve.
    copy = tmp_path / "moved"
    shutil.copytree(synth_cohort.parent, copy)
    manifest = load_manifest(copy / "manifest.csv")
    assert all(Path(p).is_file() and str(copy) in p for p in manifest.table["ct"])
    assert "egfr" in manifest.label_columns() and "ct" not in manifest.label_columns()
    assert CliRunner().invoke(app, ["validate", str(copy / "manifest.csv")]).exit_code == 0


def test_parquet_manifest_and_missing_columns(synth_cohort, tmp_path):
    df = pd.read_csv(synth_cohort, dtype={"case_id": str})
    df["ct"] = [str(synth_cohort.parent / p) for p in df["ct"]]
    df["pet"] = [str(synth_cohort.parent / p) for p in df["pet"]]
    df["mask"] = [str(synth_cohort.parent / p) for p in df["mask"]]
    pq = tmp_path / "m.parquet"
    df.to_parquet(pq)
    assert validate_manifest(pq).ok
    df.drop(columns=["mask"]).to_csv(tmp_path / "nomask.csv", index=False)
    report = validate_manifest(tmp_path / "nomask.csv")
    assert not report.ok and report.problems[0].code == "manifest"
    assert "mask" in report.problems[0].message


def test_dicom_pet_with_suv_tags_validates(tmp_path):
    manifest = make_cohort(tmp_path, n_cases=2, seed=1, pet_format="dicom")
    assert validate_manifest(manifest).ok
