"""ComBat harmonisation: the library's estimates, learned only inside training folds, stored with a locked
model, new scanners mapped onto the training reference; the batch-effect report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models.cv import CVConfig, cross_validate, outer_splits
from models.data import load_dataset
from models.harmonise import ComBatHarmoniser
from radfeat_cli.main import app

runner = CliRunner()
SHIFT = {"A": (0.0, 1.0), "B": (2.5, 1.8), "C": (-1.5, 0.6)}  # location, scale per scanner


def _table(n: int = 120, seed: int = 0, p: int = 12, signal: float = 1.0) -> pd.DataFrame:
    """``p`` features with a location and scale effect per scanner; ``F0`` carries the label, every
    feature an age effect (0.05 per year)."""
    rng = np.random.default_rng(seed)
    scanner = rng.choice(list(SHIFT), n)
    y = rng.integers(0, 2, n)
    age = rng.normal(62, 9, n)
    X = rng.normal(size=(n, p)) + 0.05 * (age - 62)[:, None]
    X[:, 0] += signal * y
    loc = np.array([SHIFT[s][0] for s in scanner])[:, None]
    scale = np.array([SHIFT[s][1] for s in scanner])[:, None]
    X = X * scale + loc
    cols = [f"ct_tumour_original_firstorder_F{i}" for i in range(p)]
    return pd.DataFrame(X, columns=cols).assign(
        case_id=[f"P{i:03d}" for i in range(n)], egfr=y, scanner=scanner, age=age
    )


def _frame(table: pd.DataFrame, batch: str = "scanner") -> pd.DataFrame:
    feats = [c for c in table.columns if c.startswith("ct_")]
    return table[feats].assign(**{f"batch__{batch}": table[batch].to_numpy()})


# ------------------------------------------------------------------------------------------ the transformer
def test_combat_equals_neuroharmonize_on_its_training_data():
    from neuroHarmonize import harmonizationLearn

    table = _table()
    frame = _frame(table)
    feats = [c for c in frame.columns if c.startswith("ct_")]
    ours = ComBatHarmoniser("batch__scanner").fit(frame).transform(frame)
    _, reference = harmonizationLearn(
        table[feats].to_numpy(), pd.DataFrame({"SITE": table.scanner.to_numpy()}), seed=0
    )
    assert list(ours.columns) == feats  # the batch column is consumed
    np.testing.assert_allclose(ours.to_numpy(), reference, rtol=1e-10, atol=1e-10)


def test_combat_removes_scanner_effects_keeps_protected_ones_and_maps_new_scanners():
    table = _table(n=240, seed=1)
    feats = [c for c in table.columns if c.startswith("ct_")]
    frame = _frame(table).assign(cov__age=table.age.to_numpy())
    fitted = ComBatHarmoniser("batch__scanner", protect=("cov__age",)).fit(frame)
    out = fitted.transform(frame)
    assert list(out.columns) == feats  # batch and protected covariate consumed
    means = out.groupby(table.scanner.to_numpy()).mean()
    sds = out.groupby(table.scanner.to_numpy()).std()
    raw_means = table.groupby("scanner")[feats].mean()
    assert (raw_means.max() - raw_means.min()).min() > 3.0
    assert (means.max() - means.min()).max() < 0.5 and (sds.max() / sds.min()).max() < 1.4
    # the age effect (0.05 per year, i.e. r ≈ 0.4) survives; the label signal in F0 too
    r_age = np.corrcoef(table.age, out[feats].mean(axis=1))[0, 1]
    assert r_age > 0.5
    assert out[feats[0]][table.egfr == 1].mean() - out[feats[0]][table.egfr == 0].mean() > 0.6
    # a scanner never seen in training: estimated from its own cases against the training reference
    new = _table(n=40, seed=2)
    new_frame = _frame(new.assign(scanner="D")).assign(cov__age=new.age.to_numpy())
    new_frame[feats] = new_frame[feats] * 2.0 + 4.0
    mapped = fitted.transform(new_frame)
    assert np.abs(mapped[feats].mean() - out[feats].mean()).max() < 0.6
    assert np.abs(mapped[feats].std() / out[feats].std() - 1).max() < 0.35
    with pytest.raises(ValueError, match="'D' \\(4 case.*fewer than 5 cases"):
        fitted.transform(new_frame.iloc[:4])
    # missing values stay missing (imputed later, in the fold); constant features pass through
    holey = frame.copy()
    holey.iloc[3, 1] = np.nan
    holey["ct_tumour_original_shape_Const"] = 7.0
    result = ComBatHarmoniser("batch__scanner", protect=("cov__age",)).fit(holey).transform(holey)
    assert np.isnan(result.iloc[3, 1]) and not np.isnan(result.iloc[4, 1])
    assert (result["ct_tumour_original_shape_Const"] == 7.0).all()


def test_one_training_batch_is_the_reference():
    table = _table(n=60, seed=3)
    one = _frame(table.assign(scanner="A"))
    fitted = ComBatHarmoniser("batch__scanner").fit(one)
    np.testing.assert_allclose(fitted.transform(one).to_numpy(), one.iloc[:, :-1].to_numpy(), atol=1e-12)


def test_batches_too_small_to_learn_and_a_protected_label_are_refused():
    table = _table(n=40)
    table.loc[0, "scanner"] = "lonely"
    with pytest.raises(ValueError, match="'lonely' \\(1 case\\).*merge"):
        ComBatHarmoniser("batch__scanner").fit(_frame(table))
    with pytest.raises(ValueError, match="label 'egfr' cannot be a protected covariate"):
        load_dataset(_table(), "egfr", harmonise="scanner", protect=["egfr"])
    gap = _table()
    gap.loc[[4, 9], "scanner"] = ""
    with pytest.raises(ValueError, match="2 case\\(s\\) have no 'scanner'.*P004, P009"):
        load_dataset(gap, "egfr", harmonise="scanner")


# ------------------------------------------------------------------------------------------ inside the folds
def test_harmonisation_is_fitted_inside_every_training_fold(monkeypatch):
    """A spy records the cases every ComBat fit sees: each is inside the training part of one outer
    fold (inner folds are smaller subsets), never a test case of it; the outer refits see all of it."""
    table = _table(n=90, seed=4)
    table["ct_tumour_original_firstorder_CaseIndex"] = np.arange(len(table), dtype=float)
    data = load_dataset(table, "egfr", harmonise="scanner")
    config = CVConfig(n_splits=3, n_repeats=2, inner_splits=3, inner_repeats=1)
    seen: list[frozenset] = []
    original = ComBatHarmoniser.fit

    def spy(self, X, y=None):
        seen.append(frozenset(X["ct_tumour_original_firstorder_CaseIndex"].astype(int)))
        return original(self, X, y)

    monkeypatch.setattr(ComBatHarmoniser, "fit", spy)
    cross_validate(data, ["lr"], config)
    splits = outer_splits(data, 3, 2, 0)
    trains = [frozenset(tr) for _, _, tr, _ in splits]
    everyone = frozenset(range(len(table)))
    assert seen and all(any(s <= tr for tr in trains) for s in seen)
    assert not any(s == everyone for s in seen)
    assert all(tr in seen for tr in trains)  # each outer training part fitted once as a whole
    # the folds stratify on label × scanner: every training fold holds every scanner
    for tr in trains:
        assert set(table.scanner.iloc[list(tr)]) == set(SHIFT)


def test_permuted_labels_stay_at_chance_with_harmonisation():
    """Leakage test with ComBat in the pipeline: noise features, a strong scanner effect, labels
    unrelated to anything → nested CV at chance, averaged over permutations."""
    aucs = []
    for seed in range(4):
        table = _table(n=90, seed=10 + seed, p=60, signal=0.0)
        data = load_dataset(table, "egfr", harmonise="scanner")
        config = CVConfig(n_splits=3, n_repeats=1, inner_splits=3, inner_repeats=1, random_state=seed)
        aucs.append(cross_validate(data, ["lr"], config).summary().loc["lr", "mean_auc"])
    assert abs(np.mean(aucs) - 0.5) < 0.07, aucs


def test_harmonisation_recovers_a_signal_blurred_by_a_scanner():
    """Scanner B reads the signal feature 2.5× wider and 3 SD higher (the label is independent of the
    scanner): ComBat inside the folds restores its discrimination; a linear model cannot undo it."""
    gains = []
    for seed in range(2):
        rng = np.random.default_rng(seed)
        n = 160
        y = rng.integers(0, 2, n)
        scanner = rng.choice(["A", "B"], n)
        X = rng.normal(size=(n, 6))
        X[:, 0] += 1.0 * y
        X[scanner == "B", 0] = X[scanner == "B", 0] * 2.5 + 3.0
        cols = [f"ct_tumour_original_firstorder_F{i}" for i in range(6)]
        table = pd.DataFrame(X, columns=cols)
        table = table.assign(case_id=np.arange(n).astype(str), egfr=y, scanner=scanner)
        config = CVConfig(n_splits=5, n_repeats=1, inner_splits=3, inner_repeats=1)
        plain = cross_validate(load_dataset(table, "egfr"), ["lr"], config)
        harmonised = cross_validate(load_dataset(table, "egfr", harmonise="scanner"), ["lr"], config)
        gains.append(harmonised.summary().loc["lr", "mean_auc"] - plain.summary().loc["lr", "mean_auc"])
    assert min(gains) > 0.04 and np.mean(gains) > 0.06, gains


def test_label_batch_association_matches_r_and_warns_of_confounding():
    """R: fisher.test(matrix(c(3, 1, 1, 3), 2)) p = 0.4857 (Fisher's tea tasting); chisq.test of
    Agresti's party identification by gender (762 327 468 / 484 239 477): X-squared = 30.07, df = 2,
    p = 2.954e-07."""
    from models.harmonise import label_batch_association

    tea = label_batch_association([1, 1, 1, 0, 1, 0, 0, 0], ["milk"] * 4 + ["tea"] * 4)
    assert tea["test"] == "Fisher's exact test" and tea["p"] == pytest.approx(0.4857, abs=5e-5)
    assert tea["warning"] is None and tea["prevalence"] == {"milk": 0.75, "tea": 0.25}
    counts = {"dem": (762, 484), "ind": (327, 239), "rep": (468, 477)}  # (female, male) per party
    party = np.concatenate([[p] * (f + m) for p, (f, m) in counts.items()])
    male = np.concatenate([[0] * f + [1] * m for f, m in counts.values()])
    agresti = label_batch_association(male, party)
    assert agresti["test"] == "Pearson's chi-squared test"
    assert agresti["p"] == pytest.approx(2.954e-07, rel=1e-3)
    assert "removes part of the label's effect" in agresti["warning"]


# ------------------------------------------------------------------------------------------ report and CLI
def test_batch_tests_match_r():
    """R's kruskal.test help example (Hollander & Wolfe 1973, p. 116): chi-squared = 0.77143, df = 2,
    p-value = 0.68; p.adjust(c(0.01, 0.04, 0.03, 0.005, 0.2, 0.5), "BH") = 0.03 0.06 0.06 0.03 0.24 0.5."""
    from models.batch_effect import feature_batch_tests
    from models.results import benjamini_hochberg

    values = [2.9, 3.0, 2.5, 2.6, 3.2, 3.8, 2.7, 4.0, 2.4, 2.8, 3.4, 3.7, 2.2, 2.0]
    batch = ["normal"] * 5 + ["airway"] * 4 + ["asbestosis"] * 5
    row = feature_batch_tests(pd.DataFrame({"fev": values}), np.array(batch)).iloc[0]
    assert row.kruskal_h == pytest.approx(0.77143, abs=5e-6)
    assert row.p_location == pytest.approx(0.68, abs=5e-3)
    assert row.epsilon_squared == pytest.approx(0.77143 / 13, abs=1e-6)
    np.testing.assert_allclose(
        benjamini_hochberg([0.01, 0.04, 0.03, 0.005, 0.2, 0.5]),
        [0.03, 0.06, 0.06, 0.03, 0.24, 0.5],
        atol=1e-12,
    )


def test_fit_and_predict_with_harmonisation_through_the_cli(tmp_path):
    table = _table(n=150, seed=7)
    table["cohort"] = np.where(np.arange(150) < 110, "train", "external")
    table.loc[table.cohort == "external", "scanner"] = "D"  # the external cohort: a new scanner
    feats = [c for c in table.columns if c.startswith("ct_")]
    table.loc[table.cohort == "external", feats] = table.loc[table.cohort == "external", feats] * 1.5 + 3
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    fast = ["--families", "lr,nb", "--cv", "3x1", "--inner", "3x1", "-q"]
    res = runner.invoke(
        app,
        [
            "fit",
            str(path),
            "--label",
            "egfr",
            "--harmonise",
            "scanner",
            "--protect",
            "age",
            *fast,
            "-o",
            str(tmp_path / "model"),
        ],
    )
    assert res.exit_code == 0, res.output
    from models.lifecycle import load_model, read_card

    card = read_card(tmp_path / "model")
    harm = card["harmonisation"]
    assert harm["batch_column"] == "scanner" and harm["protected"] == ["age"]
    assert set(harm["training_batches"]) == set(SHIFT) and sum(harm["training_batches"].values()) == 110
    assert "batch__scanner" in card["required_features"]
    model = load_model(tmp_path / "model")  # skops trusts the harmoniser
    assert model.harmoniser().batches_ == sorted(SHIFT)
    res = runner.invoke(app, ["predict", str(tmp_path / "model"), str(path), "-o", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "p.csv")
    ext = pred[pred.cohort == "external"]
    assert ext.harmonisation.str.contains("new batch D estimated from 40 cases").all()
    # the locked threshold stays meaningful on the shifted scanner; without ComBat the calls collapse
    res = runner.invoke(app, ["fit", str(path), "--label", "egfr", *fast, "-o", str(tmp_path / "plain")])
    assert res.exit_code == 0, res.output
    runner.invoke(app, ["predict", str(tmp_path / "plain"), str(path), "-o", str(tmp_path / "plain.csv")])
    plain = pd.read_csv(tmp_path / "plain.csv")
    plain_rate = plain[plain.cohort == "external"].predicted_positive.mean()
    rate = ext.predicted_positive.mean()
    assert 0.25 < rate < 0.75 and abs(plain_rate - 0.5) > 0.35, (rate, plain_rate)
    # the batch column may be named differently in a new table; too few cases of a new scanner: listed
    few = table[table.cohort == "external"].head(3).rename(columns={"scanner": "site"})
    few.to_csv(tmp_path / "few.csv", index=False)
    res = runner.invoke(
        app,
        [
            "predict",
            str(tmp_path / "model"),
            str(tmp_path / "few.csv"),
            "--harmonise",
            "site",
            "-o",
            str(tmp_path / "few_pred.csv"),
        ],
    )
    assert res.exit_code == 1
    listed = pd.read_csv(tmp_path / "few_pred.not_scored.csv")
    assert len(listed) == 3 and listed.reason.str.contains("needs at least 5 cases").all()
    res = runner.invoke(
        app, ["predict", str(tmp_path / "model"), str(tmp_path / "few.csv"), "-o", str(tmp_path / "x.csv")]
    )
    assert res.exit_code == 2 and "'scanner' is not in the table" in res.output
