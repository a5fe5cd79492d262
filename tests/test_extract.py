"""`radfeat extract` end to end: failure isolation, resume after kill -9, force/retry, Dask cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from radfeat.extract import extract_table
from radfeat.settings import load_settings
from radfeat.synth import make_cohort
from radfeat.table import feature_columns, read_provenance, read_table
from radfeat_cli.main import app

runner = CliRunner()

#: Light settings so end-to-end tests run in seconds: original-image CT and PET features.
FAST_SETTINGS = """
ct:
  imageType: {Original: {}}
  featureClass: {shape: [], firstorder: [], glcm: [], glszm: []}
  setting: {resampledPixelSpacing: [2.0, 2.0, 2.0]}
pet:
  imageType: {Original: {}}
  featureClass: {firstorder: [], glcm: []}
"""


@pytest.fixture(scope="module")
def fast_settings(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("settings") / "fast.yaml"
    path.write_text(FAST_SETTINGS)
    return path


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("cohort"), n_cases=8, seed=21)


def _break_cases(manifest: Path) -> dict[str, str]:
    """Plant one problem in each of five cases; return {case: expected failing stage}."""
    cases = manifest.parent / "cases"
    (cases / "SYN0001" / "ct.nii.gz").write_bytes(b"corrupt")
    empty = sitk.ReadImage(str(cases / "SYN0002" / "mask.nii.gz")) * 0
    sitk.WriteImage(empty, str(cases / "SYN0002" / "mask.nii.gz"))
    moved = sitk.ReadImage(str(cases / "SYN0003" / "mask.nii.gz"))
    moved.SetOrigin((5.0, 0.0, 0.0))
    sitk.WriteImage(moved, str(cases / "SYN0003" / "mask.nii.gz"))
    ct = sitk.ReadImage(str(cases / "SYN0004" / "ct.nii.gz"))
    arr = sitk.GetArrayFromImage(ct)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(cases / "SYN0004" / "mask.nii.gz"))) > 0
    arr[mask] = np.nan
    nan_ct = sitk.GetImageFromArray(arr)
    nan_ct.CopyInformation(ct)
    # NRRD keeps NaN; ITK's NIfTI reader turns NaN into 0 on reading.
    sitk.WriteImage(nan_ct, str(cases / "SYN0004" / "ct.nrrd"))
    df = pd.read_csv(manifest, dtype={"case_id": str})
    df.loc[df.case_id == "SYN0004", "ct"] = "cases/SYN0004/ct.nrrd"
    # SYN0005: a one-voxel tumour and no PET (with a PET it already fails at reading: a single CT
    # voxel covers no PET voxel by half), so CT radiomics is where it fails.
    df.loc[df.case_id == "SYN0005", ["pet", "pet_units"]] = ""
    df.to_csv(manifest, index=False)
    dot = sitk.ReadImage(str(cases / "SYN0005" / "mask.nii.gz")) * 0
    dot[48, 48, 20] = 1
    sitk.WriteImage(dot, str(cases / "SYN0005" / "mask.nii.gz"))
    return {
        "SYN0001": "read",
        "SYN0002": "read",
        "SYN0003": "read",
        "SYN0004": "read",
        "SYN0005": "ct_radiomics",
    }


def test_extract_isolates_failures_and_records_them(tmp_path, fast_settings):
    manifest = make_cohort(tmp_path / "cohort", n_cases=7, seed=3)
    expected = _break_cases(manifest)
    out = tmp_path / "features.parquet"
    result = runner.invoke(
        app,
        [
            "extract",
            str(manifest),
            "-o",
            str(out),
            "--settings",
            str(fast_settings),
            "--jobs",
            "2",
            "--quiet",
        ],
    )
    assert result.exit_code == 1, result.output
    table = read_table(out)
    assert sorted(table.index) == ["SYN0000", "SYN0006"]  # no blank rows for failed cases
    assert not table[feature_columns(table)].isna().all(axis=1).any()
    failures = pd.read_csv(tmp_path / "features.parquet.failures.csv").set_index("case_id")
    assert set(failures.index) == set(expected)
    for case, stage in expected.items():
        assert failures.loc[case, "stage"] == stage, failures.loc[case].to_dict()
        assert isinstance(failures.loc[case, "hint"], str) and failures.loc[case, "hint"]
    assert "cannot read" in failures.loc["SYN0001", "error"]
    assert "empty" in failures.loc["SYN0002", "error"]
    assert "geometry mismatch" in failures.loc["SYN0003", "error"]
    assert "NaN" in failures.loc["SYN0004", "error"]
    assert "single voxel" in failures.loc["SYN0005", "error"]
    assert "SYN0003" in result.output and "failed" in result.output

    # Fix a case and retry only the failed ones; the fixed case joins the table.
    fresh = make_cohort(tmp_path / "fresh", n_cases=7, seed=3)
    shutil.copy(fresh.parent / "cases/SYN0001/ct.nii.gz", manifest.parent / "cases/SYN0001/ct.nii.gz")
    again = extract_table(manifest, out, settings_path=fast_settings, retry_failed=True)
    assert "SYN0001" in again.table.index and len(again.summary.failures) == 4
    assert again.summary.n_cached == 2


def test_per_case_timeout_fails_the_case_not_the_batch(tmp_path, fast_settings, cohort):
    result = extract_table(cohort, tmp_path / "t.parquet", settings_path=fast_settings, timeout_s=1e-3)
    assert len(result.table) == 0
    assert {f["stage"] for f in result.summary.failures} == {"timeout"}
    assert "timeout" in result.summary.failures[0]["hint"]


def _complete_cases(cache: Path) -> int:
    """Cases with a cached result of every provider (one JSON per case and provider)."""
    if not cache.exists():
        return 0
    by_case: dict[str, set[str]] = {}
    for p in cache.glob("*.json"):
        if not p.name.endswith(".failed.json"):
            case, provider, _ = p.name.split("__")
            by_case.setdefault(case, set()).add(provider)
    return sum(providers == {"radiomics", "pet_descriptors"} for providers in by_case.values())


def test_resume_after_kill_gives_identical_table(tmp_path, fast_settings, cohort):
    reference = extract_table(cohort, tmp_path / "ref" / "f.parquet", settings_path=fast_settings).table
    out = tmp_path / "run" / "f.parquet"
    cache = out.with_name("f.parquet.cache")
    cmd = [
        sys.executable,
        "-m",
        "radfeat_cli",
        "extract",
        str(cohort),
        "-o",
        str(out),
        "--settings",
        str(fast_settings),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and _complete_cases(cache) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = _complete_cases(cache)
    assert 3 <= n_before < 8, "the run should have been killed part-way"
    assert not out.exists()
    resumed = extract_table(cohort, out, settings_path=fast_settings)
    assert resumed.summary.n_cached >= n_before
    pd.testing.assert_frame_equal(resumed.table, reference, check_exact=True)
    pd.testing.assert_frame_equal(read_table(out), reference, check_exact=True)
    forced = extract_table(cohort, out, settings_path=fast_settings, force=True)
    assert forced.summary.n_cached == 0
    pd.testing.assert_frame_equal(forced.table, reference, check_exact=True)


def test_settings_change_invalidates_cache_and_provenance(tmp_path, fast_settings, cohort):
    out = tmp_path / "f.parquet"
    first = extract_table(cohort, out, settings_path=fast_settings)
    prov = read_provenance(out)
    assert prov["settings_hash"] and prov["n_extracted"] == 8
    assert set(prov["input_fingerprints"]) == set(first.table.index)
    assert prov["versions"]["pyradiomics-bhklab"]
    settings = load_settings(fast_settings)
    settings["ct"]["setting"]["binWidth"] = 50
    second = extract_table(cohort, out, settings=settings)
    assert second.summary.n_cached == 0
    assert read_provenance(out)["settings_hash"] != prov["settings_hash"]
    # Manifest columns are carried through unchanged.
    manifest = pd.read_csv(cohort, dtype={"case_id": str}).set_index("case_id")
    for column in ("egfr", "subtype", "cohort", "age"):
        assert (second.table[column] == manifest.loc[second.table.index, column]).all()
    names = feature_columns(second.table)
    assert any(n.startswith("ct_tumour_original_glcm_") for n in names)
    assert "pet_tumour_suv_SUVmax" in names and "pet_tumour_suv_SUVpeak" in names


def test_csv_output_info_and_print_settings(tmp_path, fast_settings, cohort):
    out = tmp_path / "f.csv"
    result = runner.invoke(app, ["extract", str(cohort), "-o", str(out), "--settings", str(fast_settings)])
    assert result.exit_code == 0, result.output
    assert out.exists() and json.loads((tmp_path / "f.csv.meta.json").read_text())["n_cases"] == 8
    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0 and "8 cases" in info.stdout and "settings_hash" in info.stdout
    shown = runner.invoke(app, ["extract", str(cohort), "--print-settings"])
    assert shown.exit_code == 0 and "binWidth: 25" in shown.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("ct:\n  setting:\n    binWidht: 3\n")
    refused = runner.invoke(app, ["extract", str(cohort), "-o", str(out), "--settings", str(bad)])
    assert refused.exit_code == 2 and "binWidht" in refused.output


def test_pet_dicom_cohort_extracts_suv(tmp_path, fast_settings):
    nifti = make_cohort(tmp_path / "n", n_cases=2, seed=9, external_fraction=0)
    dicom = make_cohort(tmp_path / "d", n_cases=2, seed=9, external_fraction=0, pet_format="dicom")
    a = extract_table(nifti, tmp_path / "n.parquet", settings_path=fast_settings).table
    b = extract_table(dicom, tmp_path / "d.parquet", settings_path=fast_settings).table
    # int16 storage of the DICOM series quantises SUV by ~1e-4 relative.
    np.testing.assert_allclose(b["pet_tumour_suv_SUVmax"], a["pet_tumour_suv_SUVmax"], rtol=1e-3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dask_cluster_gives_the_local_table(tmp_path, fast_settings, cohort):
    """A real scheduler and two worker processes on loopback run the same per-case function."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        time.sleep(2)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        local = extract_table(cohort, tmp_path / "local.parquet", settings_path=fast_settings).table
        remote = runner.invoke(
            app,
            [
                "extract",
                str(cohort),
                "-o",
                str(tmp_path / "dask.parquet"),
                "--settings",
                str(fast_settings),
                "--scheduler",
                address,
                "--quiet",
            ],
        )
        assert remote.exit_code == 0, remote.output
        pd.testing.assert_frame_equal(read_table(tmp_path / "dask.parquet"), local, check_exact=True)
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_largest_cases_are_scheduled_first_and_the_table_keeps_manifest_order(tmp_path, fast_settings):
    import SimpleITK as sitk

    from radfeat.runner import largest_first

    rows = []
    for name, radius in (("small", 4), ("large", 10), ("medium", 7)):
        z, y, x = np.mgrid[0:24, 0:24, 0:24]
        ball = ((z - 12) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 <= radius**2).astype(np.uint8)
        mask = tmp_path / f"{name}_mask.nii.gz"
        sitk.WriteImage(sitk.GetImageFromArray(ball), str(mask))
        ct = tmp_path / f"{name}_ct.nii.gz"
        noise = np.random.default_rng(radius).normal(0, 30, ball.shape) + 60 * ball
        sitk.WriteImage(sitk.GetImageFromArray(noise.astype(np.int16)), str(ct))
        rows.append({"case_id": name, "ct": str(ct), "mask": str(mask)})
    order = [t["row"]["case_id"] for t in largest_first([{"row": r} for r in rows])]
    assert order == ["large", "medium", "small"]
    manifest = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    result = extract_table(manifest, tmp_path / "t.parquet", settings_path=fast_settings, jobs=2)
    assert list(result.table.index) == ["small", "large", "medium"]
