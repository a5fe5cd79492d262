"""Leakage and unfair comparisons refused at the joins: habitat columns learned on test cases, Platt
scaling on the SVM's own training predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models.cv import CVConfig, cross_validate
from models.data import load_dataset
from models.leakage import LeakageError, check_habitat_columns


def _table(n=40, seed=0, train_ids=None):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "case_id": [f"C{i:02d}" for i in range(n)],
            "egfr": rng.integers(0, 2, n),
            "ct_tumour_original_firstorder_Mean": rng.normal(size=n),
            "hab_msi_contrast": rng.normal(size=n),
            "ct_hab1_original_firstorder_Mean": rng.normal(size=n),
        }
    )
    if train_ids is not None:
        frame.attrs["radfeat"] = {"habitat_model": {"train_ids": train_ids, "fingerprint": "x"}}
    return frame


def test_habitat_columns_fitted_on_evaluated_cases_are_refused():
    frame = _table(train_ids=["C00", "C01", "C02", "X99"])
    data = load_dataset(frame, "egfr")
    with pytest.raises(LeakageError, match=r"2 habitat column.*fitted on 3 of the 40 cases.*C00") as info:
        cross_validate(data, ["lr"], CVConfig(n_splits=2, n_repeats=1, nested=False))
    assert "--habitats-manifest" in str(info.value) and "--no-habitat-columns" in str(info.value)
    no_record = load_dataset(_table(), "egfr")
    with pytest.raises(LeakageError, match="no record"):
        cross_validate(no_record, ["lr"], CVConfig(n_splits=2, n_repeats=1, nested=False))


def test_habitat_model_from_an_independent_cohort_is_allowed():
    data = load_dataset(_table(train_ids=["EXT1", "EXT2"]), "egfr")
    result = cross_validate(data, ["lr"], CVConfig(n_splits=2, n_repeats=1, nested=False))
    assert "hab_msi_contrast" in result.feature_names


def test_fold_refit_replaces_the_tables_habitat_columns():
    data = load_dataset(_table(train_ids=["C00"]), "egfr")

    class Hook:
        def cache_key(self):
            return "k"

        def __call__(self, train_ids, case_ids):
            return pd.DataFrame({"hab_fold": np.arange(len(case_ids), dtype=float)}, index=list(case_ids))

    result = cross_validate(
        data, ["lr"], CVConfig(n_splits=2, n_repeats=1, nested=False), fold_features=Hook()
    )
    assert result.feature_names == ["ct_tumour_original_firstorder_Mean"]  # stale hab_* dropped


def test_cli_benchmark_refuses_then_runs_without_habitat_columns(tmp_path):
    from radfeat_cli.main import app

    frame = _table(train_ids=None)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    meta = {"habitat_model": {"train_ids": list(frame["case_id"][:10])}}
    from radfeat.table import write_table

    write_table(frame.set_index("case_id"), path, meta)
    args = [
        "benchmark",
        str(path),
        "--label",
        "egfr",
        "--families",
        "lr",
        "--cv",
        "2x1",
        "--no-nested",
        "-o",
        str(tmp_path / "r"),
        "-q",
    ]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert "fitted on 10 of the 40 cases" in refused.output
    ok = CliRunner().invoke(app, [*args, "--no-habitat-columns"])
    assert ok.exit_code == 0, ok.output
    report = (tmp_path / "r" / "report.md").read_text()
    assert "hab_msi_contrast" in report and "--no-habitat-columns" in report  # listed as not used


def test_check_habitat_columns_names_the_overlap():
    check_habitat_columns(["ct_tumour_x"], ["A"], {})  # no habitat columns: nothing to check
    with pytest.raises(LeakageError, match="A, B"):
        check_habitat_columns(["hab_k"], ["A", "B", "C"], {"habitat_model": {"train_ids": ["A", "B"]}})


def test_fusion_data_refuses_leaky_habitat_tokens(tmp_path):
    from models.fusion.data import build_fusion_data
    from radfeat.manifest import load_manifest
    from radfeat.synth import make_cohort

    manifest = make_cohort(tmp_path / "c", n_cases=4, seed=2)
    ids = load_manifest(manifest).case_ids
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {"case_id": ids, "hab_msi_contrast": rng.normal(size=4), "pet_tumour_suv_SUVmax": rng.normal(size=4)}
    )
    table.attrs["radfeat"] = {"habitat_model": {"train_ids": ids[:2]}}
    with pytest.raises(LeakageError, match="--groups pet"):
        build_fusion_data(manifest, table, tasks=("egfr",), groups=("habitat", "pet"))
    data = build_fusion_data(manifest, table, tasks=("egfr",), groups=("pet",))
    assert list(data.groups) == ["pet"]


def test_platt_svc_calibrates_on_internal_cv_not_its_own_training_predictions():
    """On pure noise a flexible SVM separates its training cases; a sigmoid fitted on those decision
    values gives confident, meaningless probabilities. Internal CV gives ~ the prevalence."""
    from models.zoo import PlattSVC

    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(120, 10)), (rng.uniform(size=120) < 0.3).astype(int)
    X_new = rng.normal(size=(400, 10))
    model = PlattSVC(kernel="rbf", C=10.0, random_state=0).fit(X, y)
    p = model.predict_proba(X_new)[:, 1]
    assert abs(p.mean() - y.mean()) < 0.08 and p.std() < 0.1
    # The old rule (sigmoid on the training decision values) for contrast:
    from sklearn.linear_model import LogisticRegression

    d_train = model.svm_.decision_function(X).reshape(-1, 1)
    in_sample = LogisticRegression().fit(d_train, y)
    p_old = in_sample.predict_proba(model.svm_.decision_function(X_new).reshape(-1, 1))[:, 1]
    assert p_old.std() > 2 * p.std()
    assert model.svm_.class_weight is None
    order = np.argsort(model.decision_function(X_new))
    assert np.all(np.diff(p[order]) >= -1e-12)  # monotone: the SVM's own ranking
    assert json.dumps(model.get_params())  # plain parameters
