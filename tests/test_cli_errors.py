"""Usage errors are one line with the fix and exit code 2 (tracebacks only with --debug); runs that are
interrupted never leave a partial table; the summary tells cached failures apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from radfeat.synth import make_cohort
from radfeat_cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("errs"), n_cases=6, seed=5, external_fraction=0)


def _one_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    return result.output


def test_missing_manifest_is_a_usage_error(tmp_path):
    for command in (["validate"], ["extract"]):
        result = runner.invoke(app, [*command, str(tmp_path / "absent.csv")])
        assert result.exit_code == 2, (command, result.output)
        assert "manifest not found" in _one_line(result) and "cases unusable" not in result.output


def test_manifest_without_required_columns_names_them(tmp_path):
    path = tmp_path / "m.csv"
    pd.DataFrame({"case_id": ["a"], "image": ["x.nii.gz"], "mask": ["m.nii.gz"]}).to_csv(path, index=False)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "required column(s) missing: ct" in _one_line(result)


def test_settings_typo_names_the_closest_setting(tmp_path, cohort):
    bad = tmp_path / "s.yaml"
    bad.write_text("ct:\n  setting:\n    binWidht: 25\n")
    result = runner.invoke(
        app, ["extract", str(cohort), "--settings", str(bad), "-o", str(tmp_path / "t.parquet")]
    )
    assert result.exit_code == 2
    assert "'binWidht' is not a pyradiomics setting; did you mean 'binWidth'?" in _one_line(result)


def test_unusable_optuna_storage_is_a_usage_error(tmp_path):
    rng = np.random.default_rng(0)
    table = tmp_path / "t.csv"
    frame = pd.DataFrame(
        {"f1": rng.normal(size=30), "f2": rng.normal(size=30), "egfr": rng.integers(0, 2, 30)}
    )
    frame.to_csv(table, index=False)
    for storage in ("nonsense://x", f"sqlite:///{tmp_path}/no/such/folder/o.db"):
        args = ["tune", str(table), "--label", "egfr", "--family", "lr", "--trials", "1"]
        result = runner.invoke(app, [*args, "--storage", storage, "-o", str(tmp_path / "o"), "-q"])
        assert result.exit_code == 2, (storage, result.output)
        assert "cannot open the Optuna storage" in _one_line(result) and "Hint:" in result.output


def test_train_with_too_few_cases_for_the_folds_says_so_before_the_work(cohort, tmp_path):
    result = runner.invoke(
        app, ["train", str(cohort), "--folds", "5", "--preset", "tiny", "-o", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "Hint: use --folds" in _one_line(result)
    assert not list(tmp_path.iterdir())  # nothing was computed


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", "extract", str(tmp_path / "absent.csv")])
    assert result.exit_code != 0 and result.exception is not None
    assert "manifest not found" in str(result.exception)


def test_interrupted_extraction_leaves_no_partial_table(tmp_path, cohort, monkeypatch):
    import radfeat.runner as runner_module

    real = runner_module._iterate

    def interrupt_after_two(*args, **kwargs):
        for i, status in enumerate(real(*args, **kwargs)):
            yield status
            if i == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(runner_module, "_iterate", interrupt_after_two)
    out = tmp_path / "t.parquet"
    settings = tmp_path / "s.yaml"
    settings.write_text("ct:\n  imageType: {Original: {}}\n  featureClass: {firstorder: []}\npet: null\n")
    result = runner.invoke(app, ["extract", str(cohort), "-o", str(out), "--settings", str(settings), "-q"])
    assert result.exit_code == 130
    assert not out.exists() and "no table was written" in result.output and "2 of 6" in result.output
    monkeypatch.setattr(runner_module, "_iterate", real)
    resumed = runner.invoke(app, ["extract", str(cohort), "-o", str(out), "--settings", str(settings), "-q"])
    assert resumed.exit_code == 0 and out.exists() and "2 from cache" in resumed.output


def test_summary_tells_cached_failures_apart(tmp_path, cohort):
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(cohort.parent, copy)
    (copy / "cases" / "SYN0001" / "ct.nii.gz").write_bytes(b"corrupt")
    settings = tmp_path / "s.yaml"
    settings.write_text("ct:\n  imageType: {Original: {}}\n  featureClass: {firstorder: []}\npet: null\n")
    args = [
        "extract",
        str(copy / "manifest.csv"),
        "-o",
        str(tmp_path / "t.parquet"),
        "--settings",
        str(settings),
        "-q",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 1
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "5 from cache, 1 failed in an earlier run (--retry-failed to retry)" in again.output


def test_validate_warns_of_a_roi_below_the_minimum_size(tmp_path, cohort):
    import shutil

    import SimpleITK as sitk

    copy = tmp_path / "c"
    shutil.copytree(cohort.parent, copy)
    mask_path = copy / "cases" / "SYN0002" / "mask.nii.gz"
    dot = sitk.ReadImage(str(mask_path)) * 0
    dot[20, 20, 10] = 1
    sitk.WriteImage(dot, str(mask_path))
    result = runner.invoke(app, ["validate", str(copy / "manifest.csv")])
    assert result.exit_code == 0  # a warning: the case is not unusable for every setting
    assert (
        "[small_roi] WARNING" in result.output
        and "SYN0002" in result.output
        and "1 voxel(s)" in result.output
    )


def test_labels_missing_or_with_three_classes(tmp_path):
    from models.data import load_dataset

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "case_id": [f"C{i}" for i in range(30)],
            "ct_tumour_original_firstorder_Mean": rng.normal(size=30),
            "egfr": [np.nan, np.nan, *rng.integers(0, 2, 28)],
            "histology": rng.choice(["adeno", "squamous", "large cell"], 30),
        }
    )
    with pytest.raises(ValueError, match="--drop-missing"):
        load_dataset(frame, "egfr")
    data = load_dataset(frame, "egfr", drop_missing=True)
    assert len(data) == 28 and any("2 case(s) without a 'egfr' label dropped" in n for n in data.notes)
    with pytest.raises(ValueError, match="one-vs-rest"):
        load_dataset(frame, "histology")
    ovr = load_dataset(frame, "histology", positive="squamous")
    assert ovr.y.sum() == (frame["histology"] == "squamous").sum()
    assert any("one-vs-rest" in n for n in ovr.notes)


def test_clinical_baseline_from_named_clinical_columns(tmp_path, cohort):
    """The synthetic cohort's clinical columns are age, sex and smoking (no clin_ prefix)."""
    rng = np.random.default_rng(1)
    manifest = pd.read_csv(cohort)
    frame = pd.concat([manifest] * 5, ignore_index=True)
    frame["case_id"] = [f"P{i:02d}" for i in range(len(frame))]
    frame["egfr"] = rng.integers(0, 2, len(frame))
    frame["ct_tumour_original_firstorder_Mean"] = rng.normal(size=len(frame))
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    args = [
        "benchmark",
        str(path),
        "--label",
        "egfr",
        "--families",
        "lr,clinical",
        "--cv",
        "2x1",
        "--no-nested",
    ]
    refused = runner.invoke(app, [*args, "-o", str(tmp_path / "a"), "-q"])
    assert refused.exit_code == 2 and "--clinical age,sex,smoking" in _one_line(refused)
    ok = runner.invoke(app, [*args, "--clinical", "age,sex,smoking", "-o", str(tmp_path / "b"), "-q"])
    assert ok.exit_code == 0, ok.output
    report = (tmp_path / "b" / "report.md").read_text()
    assert "`clinical`: `clin_age`" in report and "clin_sex_" in report


def test_radiomics_families_never_see_clinical_columns():
    from models.zoo import get_family

    names = ["ct_tumour_original_firstorder_Mean", "clin_age", "clin_sex_M"]
    lr = get_family("lr").build(None, 0, names)
    assert list(lr.named_steps["columns"].columns) == ["ct_tumour_original_firstorder_Mean"]
    combined = get_family("combined").build(None, 0, names)
    assert set(combined.named_steps["columns"].columns) == set(names)
