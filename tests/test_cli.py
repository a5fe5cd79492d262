"""The command line, run in-process."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from radfeat import __version__
from radfeat_cli.main import app

runner = CliRunner()


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "synth", "validate"):
        assert command in result.stdout


def test_synth_command_writes_a_valid_cohort(tmp_path):
    result = runner.invoke(app, ["synth", str(tmp_path), "-n", "3", "--seed", "4", "--signal", "0.5"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / "manifest.csv")
    assert len(df) == 3 and {"egfr", "subtype", "sex", "smoking", "age", "cohort"} <= set(df.columns)
    params = json.loads((tmp_path / "synth_params.json").read_text())
    assert params["signal"] == 0.5 and params["seed"] == 4
    bad = runner.invoke(app, ["synth", str(tmp_path / "x"), "--pet-format", "png"])
    assert bad.exit_code == 2


def test_demo_runs_end_to_end(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--cases", "10"])
    assert result.exit_code == 0, result.output
    assert "cohort manifest" in result.stdout
    report = json.loads((tmp_path / "demo" / "validation.json").read_text())
    assert report["ok"] and report["n_cases"] == 10
    table = pd.read_parquet(tmp_path / "demo" / "features.parquet")
    assert len(table) == 10 and "ct_tumour_wavelet-LLH_glcm_Contrast" in table.columns
    assert "feature table" in result.stdout
    report = (tmp_path / "demo" / "benchmark" / "report.md").read_text()
    assert "auto" in report and "DeLong" in report
    # Headline numbers, not only paths: every family and fusion variant with its AUC and CI.
    assert "headline numbers" in result.stdout
    results = pd.read_csv(tmp_path / "demo" / "benchmark" / "results.csv")
    xgb = results.set_index("family").loc["xgb"]
    assert f"AUC {xgb.auc_oof:.2f} ({xgb.auc_ci_low:.2f}–{xgb.auc_ci_high:.2f})" in result.stdout
    assert "fusion full" in result.stdout
    # The batch-effect report: the external cohort's scanner shift, before and after ComBat.
    summary = pd.read_csv(tmp_path / "demo" / "batch_effect" / "summary.csv").set_index("stage")
    assert (
        summary.loc["before", "batch separability AUC"]
        > summary.loc["after ComBat", "batch separability AUC"]
    )
    assert "batch effect (cohort)" in result.stdout
    # The reporting checklist, filled from the demo's own folder.
    checklist = pd.read_csv(tmp_path / "demo" / "checklist" / "checklist.csv").set_index("item")
    assert checklist.loc["Feature extraction software and version", "status"] == "answered by radfeat"
    assert "pyradiomics-bhklab" in checklist.loc["Feature extraction software and version", "answer"]
    # (the 10-case demo's 3 external cases may hold one class: then "partly", still citing the evaluation)
    assert checklist.loc["External validation", "evidence"] == "external_evaluation/metrics.csv"
    assert (
        checklist.loc[
            "Reference standard: how the label (e.g. EGFR status, histology) was determined", "status"
        ]
        == "author"
    )
    # The lifecycle: a model locked on `train`, the external cohort extracted from its scans and evaluated.
    assert (
        "locked auto: training-cohort CV" in result.stdout and "locked auto: external cohort" in result.stdout
    )
    card = json.loads((tmp_path / "demo" / "model" / "model_card.json").read_text())
    assert card["training"]["cohorts"] == ["train"] and card["table"]["settings_hash"]
    predictions = pd.read_csv(tmp_path / "demo" / "external_predictions.csv")
    assert (
        set(predictions.cohort) == {"external"}
        and (predictions.model_fingerprint == card["fingerprint"]).all()
    )
    assert (tmp_path / "demo" / "external_evaluation" / "report.md").is_file()
    # results tables hold plain numbers (CIs in their own columns), never tuples or reprs
    for csv in (
        tmp_path / "demo" / "benchmark" / "results.csv",
        tmp_path / "demo" / "fusion" / "results.csv",
    ):
        frame = pd.read_csv(csv)
        text = frame.select_dtypes(exclude="number")
        assert not text.apply(lambda c: c.astype(str).str.contains(r"np\.|\(", regex=True)).any().any(), csv
    assert "benchmark: nested CV" in result.output and "fusion network: 2-fold CV" in result.output
    assert "± nan" not in report and "(1 repeat)" in report
