"""The multi-centre commands on one extracted synthetic cohort (``radfeat synth``: its external cohort is
a shifted scanner, its follow-up has the TKI / immunotherapy interaction) and on a real table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from radfeat_cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def synth_table(tmp_path_factory):
    from radfeat.extract import extract_table
    from radfeat.synth import make_cohort

    root = tmp_path_factory.mktemp("multicentre")
    manifest = make_cohort(root / "c", n_cases=30, seed=6, external_fraction=0.4)
    extract_table(manifest, root / "f.parquet", jobs=2)
    return root / "f.parquet"


def _run(*args) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())


@pytest.mark.slow  # shares a 30-case extraction (about 40 s) and fits a model
def test_batch_effect_falls_after_combat_on_the_external_scanner(synth_table, tmp_path):
    _run("batch-effect", synth_table, "--harmonise", "cohort", "--label", "egfr", "-o", tmp_path / "be")
    summary = pd.read_csv(tmp_path / "be" / "summary.csv").set_index("stage")
    before, after = summary.loc["before"], summary.loc["after ComBat"]
    assert before["location effect (q < 0.05)"] > 0.05 > after["location effect (q < 0.05)"]
    assert before["batch separability AUC"] > 0.9 > after["batch separability AUC"]
    features = pd.read_csv(tmp_path / "be" / "features.csv")
    assert (features.q_location_before >= features.p_location_before - 1e-12).all()  # BH never lowers p
    for name in ("pca.png", "pca.svg", "report.html"):
        assert (tmp_path / "be" / name).stat().st_size > 1000


@pytest.mark.slow  # shares a 30-case extraction (about 40 s) and fits a model
def test_describe_shows_the_planted_links_and_the_cohort_shift(synth_table, tmp_path):
    printed = _run("describe", synth_table, "--by", "egfr", "--by", "cohort", "-o", tmp_path / "d")
    assert "by egfr:" in printed and "by cohort:" in printed
    egfr = pd.read_csv(tmp_path / "d" / "features_egfr.csv").set_index("feature")
    assert egfr.loc["pet_tumour_suv_SUVmax", "effect_size"] < 0.5  # EGFR-mutant: lower SUVmax (synth)
    t1 = pd.read_csv(tmp_path / "d" / "table1_egfr.csv")
    assert {"subtype", "age", "sex", "smoking", "treatment", "cohort"} <= set(t1.variable)


@pytest.mark.slow  # shares a 30-case extraction (about 40 s) and fits a model
def test_fit_predict_survival_on_the_synthetic_cohort(synth_table, tmp_path):
    fast = ["--families", "lr,nb", "--cv", "3x1", "--inner", "3x1", "-q"]
    _run("fit", synth_table, "--label", "egfr", *fast, "--harmonise", "cohort", "-o", tmp_path / "m")
    _run("predict", tmp_path / "m", synth_table, "-o", tmp_path / "p.csv")
    pred = pd.read_csv(tmp_path / "p.csv")
    ext = pred[pred.cohort == "external"]
    assert ext.harmonisation.str.contains("new batch external estimated from 12 cases").all()
    printed = _run(
        "survival",
        tmp_path / "p.csv",
        "--time",
        "pfs_months",
        "--event",
        "progression",
        "--group-by",
        "treatment",
        "--table",
        synth_table,
        "-o",
        tmp_path / "s",
    )
    assert "18 training-cohort case(s) left out" in printed
    logrank = pd.read_csv(tmp_path / "s" / "logrank.csv").set_index("subgroup")
    assert logrank.loc["all", "n"] == 12 and (tmp_path / "s" / "km_all.png").is_file()
    # the study folder now holds a table, a model, predictions and reports: fill the checklist
    import shutil

    shutil.copy(synth_table, tmp_path / "features.parquet")
    _run("evaluate", tmp_path / "p.csv", "--label", "egfr", "--by", "cohort", "-o", tmp_path / "evaluation")
    printed = _run("checklist", tmp_path)
    assert "items answered from the study's files" in printed
    items = pd.read_csv(tmp_path / "checklist" / "checklist.csv").set_index("item")
    answered = items[items.status == "answered by radfeat"].index
    for topic in (
        "Feature extraction software and version",
        "Intensity discretisation",
        "Data partitioning",
        "Harmonisation of multi-centre data",
        "Survival analysis of the model score",
    ):
        assert topic in answered, topic
    assert "ComBat" in items.loc["Harmonisation of multi-centre data", "answer"]
    assert "bin width 25" in items.loc["Intensity discretisation", "answer"]
    assert items.loc["Data partitioning", "evidence"] == "m/model_card.json"
    assert (items.status == "author").sum() >= 10
    assert (tmp_path / "checklist" / "checklist.html").stat().st_size > 1000


def test_harmonised_benchmark_on_a_real_table_with_a_simulated_second_centre(shared_data, tmp_path):
    """NSCLC-Radiogenomics (radMLBench) split into two 'centres', the second read by a scanner that
    scales and offsets every feature: ComBat inside the folds runs and the batch effect falls."""
    table = pd.read_csv(shared_data / "radmlbench" / "datasets" / "NSCLC-Radiogenomics.gz")
    features = list(table.columns[:-2])[:60]
    rng = np.random.default_rng(0)
    centre = np.where(rng.random(len(table)) < 0.5, "A", "B")
    shifted = table[features].copy()
    b = centre == "B"
    shifted.loc[b] = shifted.loc[b] * 1.3 + shifted.std() * 0.8
    frame = shifted.assign(ID=table.ID, Target=table.Target, centre=centre)
    frame.to_csv(tmp_path / "t.csv", index=False)
    printed = _run(
        "benchmark",
        tmp_path / "t.csv",
        "--label",
        "Target",
        "--families",
        "lr",
        "--cv",
        "3x1",
        "--inner",
        "3x1",
        "--harmonise",
        "centre",
        "-q",
        "-o",
        tmp_path / "b",
    )
    assert "lr AUC" in printed
    summary = pd.read_csv(tmp_path / "b" / "batch_effect" / "summary.csv").set_index("stage")
    assert (
        summary.loc["before", "location effect (q < 0.05)"]
        > 0.5
        > summary.loc["after ComBat", "location effect (q < 0.05)"]
    )
    # the checklist of this real-table study folder cites the benchmark's run.json
    _run("checklist", tmp_path)
    items = pd.read_csv(tmp_path / "checklist" / "checklist.csv").set_index("item")
    assert items.loc["Harmonisation of multi-centre data", "evidence"] == "b/run.json"
    assert "ComBat across centre" in items.loc["Harmonisation of multi-centre data", "answer"]
    assert items.loc["Batch effect assessed", "status"] == "answered by radfeat"
