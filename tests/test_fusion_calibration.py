"""Platt scaling of the fusion network's outputs, fitted on each fold's validation cases only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import special

from models.fusion.calibration import IDENTITY, MIN_SLOPE, PlattScaling, calibrate, fit_platt


def test_platt_recovers_a_known_miscalibration_and_matches_logistic_regression():
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, 20_000)
    y = rng.uniform(size=p.size) < special.expit(2.0 * special.logit(p) - 0.5)
    fitted = fit_platt(y.astype(int), p)
    assert fitted.slope == pytest.approx(2.0, abs=0.1) and fitted.intercept == pytest.approx(-0.5, abs=0.1)
    glm = sm.GLM(y.astype(float), sm.add_constant(special.logit(p)), family=sm.families.Binomial()).fit()
    # Platt's smoothed targets differ from 0/1 by 1/(N+2): negligible at this size
    assert fitted.slope == pytest.approx(glm.params[1], abs=2e-3)
    assert fitted.intercept == pytest.approx(glm.params[0], abs=2e-3)
    assert fitted.n == p.size


def test_platt_keeps_the_ranking_and_ignores_unknown_labels():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 30)
    y = (p < 0.5).astype(int)  # anti-calibrated: the bound keeps the slope positive
    fitted = fit_platt(y, p)
    assert fitted.slope >= MIN_SLOPE
    q = fitted(p)
    assert np.array_equal(np.argsort(q, kind="stable"), np.argsort(p, kind="stable"))
    with_unknown = fit_platt(np.concatenate([y, [-1, -1]]), np.concatenate([p, [0.99, 0.01]]))
    assert with_unknown == fitted
    assert fit_platt(np.ones(5, int), p[:5]) is IDENTITY  # one class: nothing to learn
    assert PlattScaling.from_dict(fitted.to_dict()) == fitted


def test_small_validation_split_gives_moderate_probabilities():
    """Eight separable validation cases: Platt's targets stop the fit at finite, non-0/1 outputs."""
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    q = fit_platt(y, p)(p)
    assert 0.05 < q.min() and q.max() < 0.95
    assert calibrate({"a": p, "b": np.ones((8, 3))}, {"a": IDENTITY})["b"].shape == (8, 3)


@pytest.fixture(scope="module")
def small_cv(tmp_path_factory):
    from models.fusion.data import synthetic_fusion_data
    from models.fusion.run import PRESETS
    from models.fusion.train import cross_validate_fusion

    data = synthetic_fusion_data(tmp_path_factory.mktemp("cal"), 36, seed=4, signal=1.0, jobs=2)
    model_cfg, train_cfg = PRESETS["tiny"]
    train_cfg = replace(train_cfg, epochs=2, min_epochs=1, select_from_epoch=0)
    return data, cross_validate_fusion(data, model_cfg, train_cfg, n_splits=3, keep_models=True)


def test_cv_scores_are_calibrated_on_each_folds_validation_cases(small_cv):
    """``score`` is the fold model's Platt scaling (fitted on validation cases inside the training part,
    never a test case) applied to ``score_raw``; thresholds are the training prevalence."""
    from models.fusion.train import fusion_splits, predict

    data, cv = small_cv
    splits = fusion_splits(data, 3, 1, 0)
    for (_, f, tr, te), member in zip(splits, cv.models, strict=True):
        assert set(member.val_idx) <= set(tr) and not set(member.val_idx) & set(te)
        val = predict(member.model, data, member.val_idx, member.prep)
        for task in data.tasks:
            refit = fit_platt(data.labels[task][member.val_idx], val[task])
            assert refit == member.calibration[task]
            rows = cv.predictions[(cv.predictions["fold"] == f) & (cv.predictions["task"] == task)]
            np.testing.assert_allclose(rows["score"], member.calibration[task](rows["score_raw"]), rtol=1e-6)
            y = data.labels[task][tr]
            assert rows["threshold"].iloc[0] == pytest.approx(np.mean(y[y >= 0] == 1))


def _signal_data(n: int = 40, seed: int = 0):
    """A FusionData whose feature columns carry the labels (images blank): enough for the comparators."""
    import pandas as pd

    from models.fusion.data import FusionData

    rng = np.random.default_rng(seed)
    egfr = np.tile([0, 1], n // 2)
    subtype = rng.permutation(egfr)
    cols = {
        "pet_tumour_suv_SUVmax": 5 + 2 * subtype + rng.normal(size=n),
        "pet_tumour_suv_CoV": 0.3 + 0.2 * egfr + rng.normal(0, 0.1, n),
        "pet_tumour_suv_MTV41_ml": rng.lognormal(2, 0.5, n),
    }
    images = np.zeros((n, 1, 1, 8, 8), np.float32)
    return FusionData(
        case_ids=np.array([f"c{i:02d}" for i in range(n)]), ct=images, pet=images, mask=images,
        labels={"egfr": egfr, "subtype": subtype}, classes={"egfr": ["0", "1"], "subtype": ["0", "1"]},
        features=pd.DataFrame(cols), groups={"pet": list(cols)},
    )  # fmt: skip


def test_classical_comparators_run_on_the_fusion_folds_and_resume(tmp_path, monkeypatch):
    import models.cv as cv_module
    from models.fusion.comparators import classical_on_fusion_folds
    from models.fusion.cv import fusion_splits

    data = _signal_data()
    kwargs = dict(n_splits=4, seed=3, inner=(2, 1), out_dir=tmp_path)
    res = classical_on_fusion_folds(data, ["lr", "nb", "suvmax"], **kwargs)
    assert set(res) == {"classical_lr", "classical_nb", "classical_auto", "suvmax"}
    fold_of = {data.case_ids[c]: f for _, f, _, te in fusion_splits(data, 4, 1, 3) for c in te}
    for name, r in res.items():
        p = r.predictions
        assert len(p) == 2 * len(data)  # every case once per task
        assert all(fold_of[c] == f for c, f in zip(p["case_id"], p["fold"], strict=True)), name
    # SUVmax alone: within a fold the score is monotone in SUVmax (a one-feature logistic model)
    s = res["suvmax"].predictions
    s = s[(s["task"] == "subtype") & (s["fold"] == 0)]
    suv = data.features.set_index(data.case_ids).loc[s["case_id"], "pet_tumour_suv_SUVmax"].to_numpy()
    assert np.array_equal(np.argsort(s["score"].to_numpy()), np.argsort(suv))
    assert res["classical_lr"].auc("egfr") > 0.75 and res["suvmax"].auc("subtype") > 0.75
    calls = []
    monkeypatch.setattr(cv_module, "_fold_task", lambda *a, **k: calls.append(1))
    again = classical_on_fusion_folds(data, ["lr", "nb", "suvmax"], **kwargs)
    assert not calls  # read back from variants/classical_<key>.csv
    for name in res:
        np.testing.assert_allclose(again[name].predictions["score"], res[name].predictions["score"])


def test_ablation_table_adds_mcnemar_and_calibration_against_the_full_model():
    import pandas as pd

    from models.fusion.ablation import ablation_table
    from models.fusion.cv import FusionCVResult
    from models.stats import calibration_intercept_slope, mcnemar_test

    rng = np.random.default_rng(2)
    n = 80
    y = np.tile([0, 1], n // 2)
    ids = [f"c{i}" for i in range(n)]
    full_p = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.15, n), 0.01, 0.99)
    other_p = rng.uniform(0.01, 0.99, n)

    def result(p):
        return FusionCVResult(
            pd.DataFrame({"task": "egfr", "repeat": 0, "fold": 0, "case_id": ids, "y": y, "score": p,
                          "threshold": 0.5})
        )  # fmt: skip

    table = ablation_table({"full": result(full_p), "suvmax": result(other_p)}).set_index("variant")
    a, b = full_p >= 0.5, other_p >= 0.5
    ok_a, ok_b = a == y.astype(bool), b == y.astype(bool)
    expected = mcnemar_test(
        [[np.sum(ok_a & ok_b), np.sum(ok_a & ~ok_b)], [np.sum(~ok_a & ok_b), np.sum(~ok_a & ~ok_b)]]
    )
    assert table.loc["suvmax", "mcnemar_p_vs_full"] == pytest.approx(expected.p_value)
    assert np.isnan(table.loc["full", "mcnemar_p_vs_full"])
    cal = calibration_intercept_slope(y, full_p)
    assert table.loc["full", "calibration_slope"] == pytest.approx(cal.slope)
    assert table.loc["suvmax", "description"].startswith("SUVmax alone")
