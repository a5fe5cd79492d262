"""The study lifecycle: fit → predict → evaluate, locked models that are safe to move and to trust."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models import stats
from models.cv import CVConfig
from models.data import load_dataset, load_radmlbench
from models.ensemble import STACKING_RULES, stacking_weights
from models.lifecycle import ModelFolderError, fit_locked, load_model, read_card, save_model
from models.lifecycle.apply import predict_frame
from models.lifecycle.store import card_fingerprint
from models.thresholds import locked_threshold
from radfeat.utils.hashing import file_digest
from radfeat_cli.main import app

runner = CliRunner()
FAST = ["--families", "lr,nb", "--cv", "3x1", "--inner", "3x1", "-q"]


def _table(n: int = 150, seed: int = 0, external_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    y = (X[:, 0] + 0.6 * X[:, 7] + rng.normal(size=n) > 0).astype(int)
    cohort = np.where(np.arange(n) < 100, "train", np.where(np.arange(n) < 125, "ext_a", "ext_b"))
    X[cohort != "train"] += external_shift
    cols = [f"ct_tumour_original_firstorder_F{i}" for i in range(7)] + ["pet_tumour_suv_SUVmax"]
    return pd.DataFrame(X, columns=cols).assign(
        case_id=[f"P{i:03d}" for i in range(n)], egfr=np.where(y == 1, "mutant", "wild"), cohort=cohort
    )


def _fit(tmp_path, frame: pd.DataFrame, name: str = "model", extra=()) -> tuple:
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    res = runner.invoke(
        app,
        [
            "fit",
            str(path),
            "--label",
            "egfr",
            "--positive",
            "mutant",
            *FAST,
            *extra,
            "-o",
            str(tmp_path / name),
        ],
    )
    assert res.exit_code == 0, res.output
    return path, tmp_path / name


# ------------------------------------------------------------------------------------------ units
def test_stacking_weights_are_convex_and_follow_the_signal():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    strong = np.clip(0.5 + 0.35 * (2 * y - 1) + rng.normal(0, 0.2, 200), 0, 1)
    noise = rng.uniform(size=200)
    for rule in STACKING_RULES:
        w = stacking_weights({"lr": noise, "xgb": strong}, y, rule)
        assert set(w) == {"lr", "xgb"} and abs(sum(w.values()) - 1) < 1e-9 and min(w.values()) >= 0
        if rule not in ("mean", "guarded_vote"):
            assert w["xgb"] > 0.8, (rule, w)  # a useless candidate gets (almost) no weight
    # guarded vote: the LR + XGBoost vote stays unless the inner CV shows a member significantly worse
    # than the best family, which then takes its place
    assert stacking_weights({"lr": noise, "xgb": strong}, y, "guarded_vote") == {"lr": 0.5, "xgb": 0.5}
    fair = np.clip(strong + rng.normal(0, 0.05, 200), 0, 1)
    w = stacking_weights({"lr": noise, "knn": strong, "xgb": fair}, y, "guarded_vote")
    assert w == {"lr": 0.0, "knn": 0.5, "xgb": 0.5}, w
    near = strong + rng.normal(0, 0.01, 200)  # not significantly worse than the best: kept
    assert stacking_weights({"lr": near, "knn": strong, "xgb": fair}, y, "guarded_vote")["knn"] == 0.0
    assert stacking_weights({"lr": noise, "xgb": strong}, y, "mean") == {"lr": 0.5, "xgb": 0.5}
    # identical candidates: greedy selection keeps the first (simplest) one
    assert stacking_weights({"lr": strong, "xgb": strong.copy()}, y, "hill_climb")["lr"] == 1.0
    with pytest.raises(ValueError, match="stacking rule"):
        stacking_weights({"lr": noise}, y, "vote")


def test_locked_threshold_rules_use_training_scores_only():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.45, 0.35])
    assert locked_threshold(y, s, "prevalence") == 0.5
    assert locked_threshold(y, s, "youden") == stats.youden_threshold(y, s)
    t = locked_threshold(y, s, "sensitivity:1")
    assert (s[y == 1] >= t).all() and t > s[y == 0].min()
    t = locked_threshold(y, s, "specificity:1")
    assert (s[y == 0] < t).all()
    with pytest.raises(ValueError, match="threshold rule"):
        locked_threshold(y, s, "f1")


# ------------------------------------------------------------------------------------------ CLI
def test_fit_predict_evaluate_by_cohort(tmp_path):
    table, model = _fit(tmp_path, _table())
    card = read_card(model)
    assert card["training"] == {**card["training"], "n_cases": 100, "cohorts": ["train"]}
    assert [m["family"] for m in card["members"]] and abs(
        sum(m["weight"] for m in card["members"]) - 1
    ) < 1e-9
    assert card["comparators"][0]["name"] == "suvmax"  # declared by default when the column is present
    assert all(len(d) == 64 for d in card["files"].values()) and (model / "model_card.md").is_file()
    res = runner.invoke(app, ["predict", str(model), str(table), "-o", str(tmp_path / "pred.csv")])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "pred.csv", dtype={"case_id": str})
    assert len(pred) == 150 and (pred.model_fingerprint == card["fingerprint"]).all()
    assert ((pred.score >= card["threshold"]) == pred.predicted_positive).all()
    assert set(pred.predicted_class) <= {"mutant", "not mutant"}
    assert pred.training_cohort.sum() == 100
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "pred.csv"),
            "--label",
            "egfr",
            "--by",
            "cohort",
            "--model",
            str(model),
            "-o",
            str(tmp_path / "report"),
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = pd.read_csv(tmp_path / "report" / "metrics.csv")
    ext = pred[pred.cohort == "ext_a"]
    row = metrics[(metrics.cohort == "ext_a") & (metrics.model == "model")].iloc[0]
    y = (ext.egfr == "mutant").astype(int).to_numpy()
    assert row.auc == pytest.approx(stats.roc_auc(y, ext.score.to_numpy()).auc, abs=1e-12)
    assert row.sensitivity == pytest.approx(ext[y == 1].predicted_positive.mean(), abs=1e-12)
    assert bool(metrics[metrics.cohort == "train"].apparent.all())
    pooled = metrics[metrics.cohort == "all held-out cases"]
    assert (pooled.n == 50).all()  # the training cases never enter the pooled external estimate
    comparisons = pd.read_csv(tmp_path / "report" / "comparisons.csv")
    assert {"delong_p", "mcnemar_p", "auc_difference_ci_low"} <= set(comparisons.columns)
    for name in ("roc_cohorts.png", "roc_cohorts.svg", "calibration_ext_a.svg", "decision_curve_ext_b.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000
    report = (tmp_path / "report" / "report.md").read_text()
    assert "apparent" in report and "Internal CV estimate" in report and "McNemar" in report


def test_held_out_cohorts_are_never_read_during_fitting(tmp_path):
    """Scrambling every held-out case (features and labels) changes nothing in the locked model."""
    frame = _table()
    scrambled = frame.copy()
    held = scrambled.cohort != "train"
    rng = np.random.default_rng(7)
    features = [c for c in frame.columns if c.startswith(("ct_", "pet_"))]
    scrambled.loc[held, features] = rng.normal(100, 50, size=(int(held.sum()), len(features)))
    scrambled.loc[held, "egfr"] = rng.choice(["mutant", "wild", "n/a"], int(held.sum()))
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _, a = _fit(tmp_path / "a", frame)
    _, b = _fit(tmp_path / "b", scrambled)
    card_a, card_b = read_card(a), read_card(b)
    assert card_a["files"] == card_b["files"]  # byte-identical pipelines, comparators and thresholds
    assert card_a["fingerprint"] == card_b["fingerprint"]  # the same model, reproducibly
    assert card_a["threshold"] == card_b["threshold"] and card_a["cv_estimate"] == card_b["cv_estimate"]


def test_a_saved_model_scores_identically_in_a_fresh_process(tmp_path):
    frame = _table(seed=3)
    data = load_dataset(frame[frame.cohort == "train"], "egfr", positive="mutant")
    config = CVConfig(n_splits=3, n_repeats=1, inner_splits=3, inner_repeats=1)
    model, _ = fit_locked(data, families=["lr", "xgb", "knn"], config=config, comparators=["suvmax"])
    save_model(model, tmp_path / "model")
    assert any(m.family == "xgb" for m in model.members) or "xgb" in model.card["final_tuning"]["inner_auc"]
    in_process, _ = predict_frame(model, frame)
    frame.to_csv(tmp_path / "t.csv", index=False)
    code = (
        "import pandas as pd, sys; from models.lifecycle import load_model; "
        "from models.lifecycle.apply import predict_frame; m = load_model(sys.argv[1]); "
        "p, _ = predict_frame(m, pd.read_csv(sys.argv[2])); p.to_json(sys.argv[3], double_precision=15)"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tmp_path / "model"),
            str(tmp_path / "t.csv"),
            str(tmp_path / "p.json"),
        ],
        check=True,
    )
    fresh = pd.read_json(tmp_path / "p.json")
    np.testing.assert_allclose(fresh.score.to_numpy(), in_process.score.to_numpy(), rtol=1e-13, atol=0)
    np.testing.assert_allclose(fresh.score_suvmax.to_numpy(), in_process.score_suvmax.to_numpy(), rtol=1e-13)
    xgb_json = list((tmp_path / "model" / "members").glob("*.xgb.json"))
    if any(m.family == "xgb" for m in model.members):
        assert xgb_json and json.loads(xgb_json[0].read_text())["learner"]  # XGBoost's own JSON
    assert not list((tmp_path / "model").rglob("*.pkl"))


class Untrusted:  # stands for code a tampered file would make skops build
    pass


def test_tampered_or_untrusted_model_folders_fail_clearly(tmp_path):
    table, model = _fit(tmp_path, _table())
    pred = ["predict", str(model), str(table), "-o", str(tmp_path / "p.csv")]
    member = sorted((model / "members").glob("*.skops"))[0]
    original = member.read_bytes()
    member.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    res = runner.invoke(app, pred)
    assert res.exit_code == 2 and member.name in res.output and "modified after saving" in res.output
    member.write_bytes(original)
    card_path = model / "model_card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "threshold": 0.01}))
    res = runner.invoke(app, pred)
    assert res.exit_code == 2 and "fingerprint" in res.output
    # an untrusted type, with checksums and fingerprint made to match: refused by type, not by hash
    import skops.io as sio

    sio.dump({"pre": None, "pipeline": Untrusted()}, member)
    card["files"][f"members/{member.name}"] = file_digest(member)
    card["fingerprint"] = card_fingerprint(card)
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelFolderError, match="does not trust: .*Untrusted"):
        load_model(model)
    res = runner.invoke(app, ["predict", str(tmp_path / "nowhere"), str(table)])
    assert res.exit_code == 2 and "model_card.json" in res.output


def test_mismatched_tables_and_unscorable_cases(tmp_path):
    from radfeat.table import write_table

    frame = _table()
    frame.loc[frame.case_id == "P001", "ct_tumour_original_firstorder_F1"] = np.nan  # missing in training
    settings = {"ct": {"setting": {"binWidth": 25}}, "pet": {"setting": {"binWidth": 0.25}}}
    write_table(
        frame.set_index("case_id"), tmp_path / "train.parquet", {"settings": settings, "settings_hash": "aaa"}
    )
    res = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "train.parquet"),
            "--label",
            "egfr",
            "--positive",
            "mutant",
            *FAST,
            "-o",
            str(tmp_path / "m"),
        ],
    )
    assert res.exit_code == 0, res.output
    other = {"ct": {"setting": {"binWidth": 10}}, "pet": {"setting": {"binWidth": 0.25}}}
    write_table(
        frame.set_index("case_id"), tmp_path / "other.parquet", {"settings": other, "settings_hash": "bbb"}
    )
    res = runner.invoke(
        app, ["predict", str(tmp_path / "m"), str(tmp_path / "other.parquet"), "-o", str(tmp_path / "p.csv")]
    )
    assert (
        res.exit_code == 2
        and "other settings" in res.output
        and "ct.setting.binWidth: model 25, table 10" in res.output
    )
    frame.to_csv(tmp_path / "plain.csv", index=False)  # no provenance: cannot be verified
    res = runner.invoke(app, ["predict", str(tmp_path / "m"), str(tmp_path / "plain.csv")])
    assert res.exit_code == 2 and "records no extraction settings" in res.output
    lacking = frame.drop(columns=["ct_tumour_original_firstorder_F3"])
    write_table(
        lacking.set_index("case_id"),
        tmp_path / "lacking.parquet",
        {"settings": settings, "settings_hash": "aaa"},
    )
    res = runner.invoke(app, ["predict", str(tmp_path / "m"), str(tmp_path / "lacking.parquet")])
    assert res.exit_code == 2 and "ct_tumour_original_firstorder_F3" in res.output
    gap = frame.copy()
    gap.loc[gap.case_id == "P120", "ct_tumour_original_firstorder_F0"] = np.nan  # never missing in training
    gap.loc[gap.case_id == "P121", "ct_tumour_original_firstorder_F1"] = np.nan  # imputed, as in training
    write_table(
        gap.set_index("case_id"), tmp_path / "gap.parquet", {"settings": settings, "settings_hash": "aaa"}
    )
    res = runner.invoke(
        app, ["predict", str(tmp_path / "m"), str(tmp_path / "gap.parquet"), "-o", str(tmp_path / "g.csv")]
    )
    assert (
        res.exit_code == 1
        and "not scored: P120" in res.output
        and "ct_tumour_original_firstorder_F0" in res.output
    )
    scored = pd.read_csv(tmp_path / "g.csv", dtype={"case_id": str}, keep_default_na=False)
    assert scored.set_index("case_id").loc["P121", "imputed"] == "ct_tumour_original_firstorder_F1"
    assert (scored.set_index("case_id").drop(index=["P001", "P121"]).imputed == "").all()
    assert len(scored) == 149 and "P120" not in set(scored.case_id)
    assert pd.read_csv(tmp_path / "g.not_scored.csv").case_id.tolist() == ["P120"]


@pytest.mark.realdata
def test_lifecycle_on_a_real_table_split_into_pseudo_cohorts(shared_data, tmp_path):
    """LNDb (173 nodules): a seeded stratified 60/40 split into `train` and `external`; the locked model
    generalises to the unseen pseudo-cohort about as the training-cohort CV estimate says."""
    from sklearn.model_selection import train_test_split

    data = load_radmlbench(shared_data / "radmlbench" / "datasets" / "LNDb.gz")
    frame = data.X.assign(ID=data.ids, Target=data.y)
    train_idx, _ = train_test_split(np.arange(len(frame)), test_size=0.4, stratify=data.y, random_state=0)
    frame["cohort"] = np.where(np.isin(np.arange(len(frame)), train_idx), "train", "external")
    frame.to_csv(tmp_path / "lndb.csv", index=False)
    res = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "lndb.csv"),
            "--label",
            "Target",
            "--families",
            "lr,nb,lda",
            "--cv",
            "5x1",
            "--inner",
            "3x1",
            "-q",
            "-o",
            str(tmp_path / "m"),
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["predict", str(tmp_path / "m"), str(tmp_path / "lndb.csv"), "-o", str(tmp_path / "p.csv")]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "p.csv"),
            "--label",
            "Target",
            "--by",
            "cohort",
            "--model",
            str(tmp_path / "m"),
            "-o",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv").set_index(["cohort", "model"])
    card = read_card(tmp_path / "m")
    external = metrics.loc[("external", "model")]
    assert external.n == 70 and 0.70 <= external.auc <= 0.95  # LNDb's honest nested-CV AUCs: ~0.77–0.83
    assert external.auc_ci_low <= card["cv_estimate"]["auc_oof"] + 0.1
    assert metrics.loc[("train", "model")].apparent


# ------------------------------------------------------------------------------------------ fusion
@pytest.mark.slow
def test_fusion_model_locked_on_train_scores_the_external_cohort(tmp_path):
    """`radfeat train --train-cohort train` never opens an external case (their images are made
    unreadable first); the saved fold ensemble scores every readable case of the manifest, lists the
    unreadable ones, and `radfeat evaluate` reads its per-task predictions."""
    from radfeat.synth import make_cohort

    manifest = make_cohort(tmp_path / "cohort", 20, seed=2, external_fraction=0.3)
    rows = pd.read_csv(manifest)
    external = rows[rows.cohort == "external"]
    originals = {}
    for ct in external.ct:
        path = manifest.parent / ct
        originals[path] = path.read_bytes()
        path.write_bytes(b"not an image")
    res = runner.invoke(
        app,
        [
            "train",
            str(manifest),
            "--preset",
            "tiny",
            "--epochs",
            "3",
            "--folds",
            "2",
            "--train-cohort",
            "train",
            "-q",
            "-o",
            str(tmp_path / "model"),
        ],
    )
    assert res.exit_code == 0, res.output
    card = read_card(tmp_path / "model")
    assert card["kind"] == "fusion" and card["training"]["n_cases"] == 14 and len(card["members"]) == 2
    assert set(card["thresholds"]) == {"egfr", "subtype"} and card["training"]["cohorts"] == ["train"]
    assert all(f.endswith((".npz", ".json", ".md")) for f in card["files"])
    # unreadable external cases: listed, the rest scored
    res = runner.invoke(
        app, ["predict", str(tmp_path / "model"), str(manifest), "-o", str(tmp_path / "p.csv")]
    )
    assert res.exit_code == 1 and all(f"not scored: {c}" in res.output for c in external.case_id), res.output
    for path, data in originals.items():
        path.write_bytes(data)
    res = runner.invoke(
        app, ["predict", str(tmp_path / "model"), str(manifest), "-o", str(tmp_path / "p.csv")]
    )
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "p.csv")
    assert len(pred) == 40 and set(pred.task) == {"egfr", "subtype"}
    assert (pred.model_fingerprint == card["fingerprint"]).all() and pred.training_cohort.sum() == 28
    res = runner.invoke(
        app, ["predict", str(tmp_path / "model"), str(manifest), "-o", str(tmp_path / "p2.csv")]
    )
    np.testing.assert_array_equal(pred.score, pd.read_csv(tmp_path / "p2.csv").score)  # the same scores again
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "p.csv"),
            "--label",
            "egfr",
            "--by",
            "cohort",
            "--model",
            str(tmp_path / "model"),
            "-o",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv")
    ext = metrics[(metrics.cohort == "external") & (metrics.model == "model")]
    assert len(ext) == 1 and ext.n.iloc[0] == 6 and not ext.apparent.iloc[0]  # seed 2: both classes
    assert bool(metrics[metrics.cohort == "train"].apparent.all())
    assert "Internal CV estimate" in (tmp_path / "r" / "report.md").read_text()


def test_fit_with_the_optuna_tuner(tmp_path):
    frame = _table(n=120)
    table, model = _fit(
        tmp_path, frame, extra=("--tuner", "optuna", "--trials", "3", "--comparators", "none")
    )
    card = read_card(model)
    assert card["cv"]["tuner"] != "grid" and card["comparators"] == []
    assert all(m["family"] in ("lr", "nb") for m in card["members"])
    res = runner.invoke(app, ["predict", str(model), str(table), "-o", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output and "score_suvmax" not in pd.read_csv(tmp_path / "p.csv").columns


def test_habitat_columns_in_a_locked_model(tmp_path):
    """The CV estimate refits habitats per fold (a hook here); the final model keeps the table's habitat
    columns only when their habitat model saw no case outside the training cohort."""
    from models.leakage import LeakageError

    frame = _table().assign(hab_msi_contrast=lambda f: f["ct_tumour_original_firstorder_F0"] * 0.5)
    train = frame[frame.cohort == "train"].reset_index(drop=True)
    calls = []

    class Hook:
        def cache_key(self):
            return "hook"

        def __call__(self, train_ids, case_ids):
            calls.append(set(train_ids))
            return pd.DataFrame({"hab_msi_contrast": np.zeros(len(case_ids))}, index=list(case_ids))

    config = CVConfig(n_splits=3, n_repeats=1, inner_splits=3, inner_repeats=1)
    train.attrs["radfeat"] = {"habitat_model": {"train_ids": list(train.case_id), "fingerprint": "h"}}
    data = load_dataset(train, "egfr", positive="mutant")
    model, cv = fit_locked(data, family="lr", config=config, fold_features=Hook())
    assert len(calls) == 3 and all(c < set(train.case_id) for c in calls)  # refitted inside each fold
    assert "hab_msi_contrast" in model.features and "hab_msi_contrast" not in cv.feature_names
    train.attrs["radfeat"] = {"habitat_model": {"train_ids": [*train.case_id, "P140"], "fingerprint": "h"}}
    with pytest.raises(LeakageError, match="outside the training cohort.*P140"):
        fit_locked(
            load_dataset(train, "egfr", positive="mutant"), family="lr", config=config, fold_features=Hook()
        )
    with pytest.raises(
        LeakageError, match="--habitats-manifest"
    ):  # no per-fold refit: the estimate would leak
        fit_locked(load_dataset(train, "egfr", positive="mutant"), family="lr", config=config)
