"""Model-side units: selectors, data loading, CV mechanics and resume, family choice, report, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from typer.testing import CliRunner

from models import selection
from models.cv import AUTO, AUTO_SELECT, CVConfig, choose_family, cross_validate, outer_splits
from models.data import cohort_split, load_dataset
from models.report import results_table, write_report
from models.zoo import BASELINES, FAMILIES, get_family


def _toy(n=120, p=30, seed=0, signal=1.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-signal * X[:, 0] - signal * X[:, 1]))).astype(int)
    frame = pd.DataFrame(X, columns=[f"ct_tumour_original_firstorder_F{i}" for i in range(p)])
    frame["case_id"] = [f"C{i:03d}" for i in range(n)]
    frame["egfr"] = y
    frame["subtype"] = np.where(rng.uniform(size=n) < 0.5, "adenocarcinoma", "squamous")
    frame["cohort"] = np.where(np.arange(n) < n * 0.75, "train", "external")
    return frame


def test_selectors_keep_signal_and_names():
    frame = _toy()
    X = frame.filter(like="ct_")
    X["dup"] = X.iloc[:, 0] * 2 + 1e-6  # perfectly correlated copy of the signal feature
    y = frame["egfr"].to_numpy()
    corr = selection.CorrelationFilter(0.9).fit(X, y)
    kept = list(corr.get_feature_names_out())
    assert ("dup" in kept) != ("ct_tumour_original_firstorder_F0" in kept)
    for sel in (
        selection.UnivariateSelector(k=2),
        selection.UnivariateSelector(k=2, test="mannwhitney"),
        selection.MRMRSelector(k=2),
        selection.ModelSelector(k=3),
    ):
        names = set(sel.fit(X.drop(columns="dup"), y).get_feature_names_out())
        assert {"ct_tumour_original_firstorder_F0", "ct_tumour_original_firstorder_F1"} & names, type(sel)
    l1 = selection.L1Selector(C=0.05).fit(X.drop(columns="dup"), y)
    assert l1.support_[:2].any() and l1.support_.sum() < 30
    Xn = X.copy()
    Xn.iloc[:50, 3] = np.nan
    assert (
        "ct_tumour_original_firstorder_F3"
        not in selection.MissingnessFilter(0.2).fit(Xn).get_feature_names_out()
    )
    keep = selection.KeepColumns(["dup"]).fit(X)
    assert list(keep.transform(X).columns) == ["dup"]
    # Pandas output survives a pipeline.
    pipe = make_pipeline(selection.UnivariateSelector(k=3)).set_output(transform="pandas")
    assert list(pipe.fit_transform(X, y).columns)[0].startswith(("ct_", "dup"))


def test_load_dataset_radfeat_table_and_cohorts():
    frame = _toy()
    data = load_dataset(frame, "egfr")
    assert data.X.shape == (120, 30) and set(data.y) == {0, 1}
    assert "cohort" not in data.X.columns and "egfr" not in data.X.columns
    sub = load_dataset(frame, "subtype", positive="squamous")
    assert sub.y.sum() == (frame.subtype == "squamous").sum()
    with pytest.raises(ValueError, match="say which is positive"):
        load_dataset(frame, "subtype")
    with pytest.raises(ValueError, match="not in the table"):
        load_dataset(frame, "kras")
    train, external = cohort_split(data)
    assert len(train) == 90 and len(external) == 30


def test_outer_splits_partition_every_repeat():
    data = load_dataset(_toy(), "egfr")
    splits = outer_splits(data, 5, 3, random_state=1)
    for r in range(3):
        tests = np.concatenate([te for rr, _, _, te in splits if rr == r])
        assert sorted(tests) == list(range(120))
    grouped = load_dataset(_toy().assign(patient=lambda d: d.case_id.str[:3]), "egfr", group_column="patient")
    for _, _, tr, te in outer_splits(grouped, 3, 1):
        assert not set(grouped.groups[tr]) & set(grouped.groups[te])


def test_nested_cv_predicts_each_case_once_per_repeat_and_resumes(tmp_path, monkeypatch):
    data = load_dataset(_toy(), "egfr")
    config = CVConfig(n_splits=3, n_repeats=2, inner_splits=3, inner_repeats=1)
    result = cross_validate(data, ["lr", "nb"], config, cache_dir=tmp_path)
    counts = result.predictions.groupby(["family", "repeat"]).case_id.nunique()
    assert (counts == 120).all()
    assert {AUTO, AUTO_SELECT, "lr", "nb"} == set(result.predictions.family)
    # `auto`: per fold, the convex combination of the families' outer predictions with the weights
    # learned on that fold's inner out-of-fold predictions (which cover exactly its training part).
    for fold in result.folds:
        weights = fold["auto_weights"]
        assert set(weights) == {"lr", "nb"} and abs(sum(weights.values()) - 1) < 1e-9
        assert len(fold["inner_oof"]["lr"]) == len(fold["train_ids"]) == 120 - len(fold["test_ids"])
        assert not set(fold["train_ids"]) & set(fold["test_ids"])
        combined = sum(w * np.asarray(fold["predictions"][n]) for n, w in weights.items())
        np.testing.assert_allclose(fold["predictions"][AUTO], combined, rtol=1e-12)
    assert result.summary().loc["lr", "mean_auc"] > 0.75  # planted signal is found
    # Every chosen parameter set came from the family's grid (inner CV only).
    for fold in result.folds:
        assert fold["params"]["lr"] in [dict(p) for p in FAMILIES["lr"].grid]
    # A rerun reads the cached folds and computes nothing.
    import models.cv as cvmod

    monkeypatch.setattr(
        cvmod, "_fold_task", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed"))
    )
    again = cross_validate(data, ["lr", "nb"], config, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(again.predictions, result.predictions)
    # Another `auto` rule recombines the cached inner predictions: nothing is refitted.
    from dataclasses import replace

    mean = cross_validate(data, ["lr", "nb"], replace(config, auto_rule="mean"), cache_dir=tmp_path)
    for fold in mean.folds:
        assert fold["auto_weights"] == {"lr": 0.5, "nb": 0.5}
        expected = (np.asarray(fold["predictions"]["lr"]) + np.asarray(fold["predictions"]["nb"])) / 2
        np.testing.assert_allclose(fold["predictions"][AUTO], expected, rtol=1e-12)


def test_choose_family_prefers_simpler_unless_clearly_better():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(60, int), np.zeros(60, int)]
    good = y + rng.normal(0, 0.5, 120)
    same = good + rng.normal(0, 0.05, 120)
    weak = y + rng.normal(0, 3.0, 120)
    assert choose_family({"lr": 0.80, "xgb": 0.81}, {"lr": same, "xgb": good}, y) == "lr"
    assert choose_family({"lr": 0.60, "xgb": 0.90}, {"lr": weak, "xgb": good}, y) == "xgb"


def test_report_files_and_table(tmp_path):
    data = load_dataset(_toy(), "egfr")
    result = cross_validate(
        data, ["lr", "nb"], CVConfig(n_splits=3, n_repeats=2, inner_splits=3, inner_repeats=1)
    )
    # Thresholds come from each fold's training part only (never from the test cases).
    for r, f, tr, te in outer_splits(data, 3, 2, 0):
        fold = next(x for x in result.folds if x["repeat"] == r and x["fold"] == f)
        assert fold["threshold"] == pytest.approx(data.y[tr].mean())
        assert set(fold["test_ids"]) == set(data.ids[te])
    table = results_table(result)  # no comparator declared: no p-values (no post-hoc "vs best")
    assert table.attrs["reference"] is None and table["p_vs_reference"].isna().all()
    cases = result.case_scores("lr")
    expected_sen = (cases["positive"] & (cases["y"] == 1)).sum() / (cases["y"] == 1).sum()
    assert table.loc["lr", "sensitivity"] == pytest.approx(expected_sen)
    declared = results_table(result, reference="nb")
    assert np.isnan(declared.loc["nb", "p_vs_reference"]) and 0 <= declared.loc["lr", "p_vs_reference"] <= 1
    assert (declared["p_vs_reference_holm"].dropna() >= declared["p_vs_reference"].dropna()).all()
    paths = write_report(result, tmp_path, reference="nb")
    for key in ("results", "pairwise", "predictions", "roc", "calibration", "markdown", "html"):
        assert paths[key].exists() and paths[key].stat().st_size > 100
    written = pd.read_csv(paths["results"], index_col=0)
    for column in ("sensitivity_ci_low", "sensitivity_ci_high", "specificity_ci_low", "auc_ci_low"):
        assert pd.api.types.is_float_dtype(written[column]), column  # plain numbers, not tuples
    pairs = pd.read_csv(paths["pairwise"])
    families = set(result.predictions["family"])
    assert len(pairs) == len(families) * (len(families) - 1) // 2
    assert (pairs["p_holm"] >= pairs["p"] - 1e-12).all()
    text = paths["markdown"].read_text()
    assert "DeLong p vs nb (Holm)" in text and "training part" in text and "vs best" not in text


def test_baselines_use_their_columns():
    frame = _toy()
    frame["pet_tumour_suv_SUVmax"] = frame["ct_tumour_original_firstorder_F0"] + 5
    frame["hab_h1_SUVmax"] = frame["ct_tumour_original_firstorder_F1"] + 5  # must not join the baseline
    frame["pet_hab2_original_firstorder_SUVmax"] = 1.0
    frame["clin_age"] = np.arange(len(frame))
    data = load_dataset(
        frame, "egfr", features=[c for c in frame.columns if c.startswith(("ct_", "pet_", "clin_", "hab_"))]
    )
    pipe = BASELINES["suvmax"].build(None, 0, list(data.X.columns)).fit(data.X, data.y)
    assert list(pipe.named_steps["columns"].columns) == ["pet_tumour_suv_SUVmax"]
    with pytest.raises(ValueError, match="unknown model family"):
        get_family("deepforest")


def test_cli_benchmark_on_a_table(tmp_path):
    from radfeat_cli.main import app

    path = tmp_path / "table.csv"
    _toy().to_csv(path, index=False)
    result = CliRunner().invoke(
        app,
        [
            "benchmark",
            str(path),
            "--label",
            "egfr",
            "--families",
            "lr,nb",
            "--cv",
            "3x1",
            "--inner",
            "3x1",
            "-o",
            str(tmp_path / "res"),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "res" / "report.html").exists() and "auto" in result.stdout
    bad = CliRunner().invoke(app, ["benchmark", str(path), "--label", "egfr", "--families", "nope"])
    assert bad.exit_code == 2
    missing = CliRunner().invoke(app, ["benchmark", str(tmp_path / "absent.csv"), "--label", "egfr"])
    assert missing.exit_code == 2 and "table not found" in missing.output
