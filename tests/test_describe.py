"""radfeat describe: Table 1 and univariate feature comparisons with the right test per type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models import stats as st
from models.describe import compare_variable, describe, feature_group_columns, table_one
from radfeat_cli.main import app

runner = CliRunner()


def _cohort(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    egfr = np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]
    return pd.DataFrame(
        {
            "case_id": [f"P{i:03d}" for i in range(n)],
            "egfr": egfr,
            "subtype": rng.choice(["adenocarcinoma", "squamous", "other"], n),
            "cohort": np.where(np.arange(n) % 4 == 0, "external", "train"),
            "age": rng.normal(60, 8, n).round(),
            "sex": np.where(np.arange(n) % 3 == 0, "F", "M"),
            "pet_tumour_suv_SUVmax": rng.lognormal(1.5, 0.3, n) * np.where(egfr == 1, 0.6, 1.0),
            "pet_tumour_suv_CoV": rng.normal(0.3, 0.05, n),
            "hab_ith_score_3d": rng.normal(0.5, 0.1, n),
            "ct_tumour_original_firstorder_Mean": rng.normal(0, 1, n),
        }
    )


def test_groups_and_test_choice_by_type():
    frame = _cohort()
    cols = feature_group_columns(frame.columns, ["metabolic", "heterogeneity", "habitat"])
    assert cols == {
        "pet_tumour_suv_SUVmax": "metabolic",
        "pet_tumour_suv_CoV": "heterogeneity",
        "hab_ith_score_3d": "heterogeneity",
    }
    # a number, two groups: Mann-Whitney p of R's wilcox.test and the AUC with its DeLong CI
    num = compare_variable(frame.pet_tumour_suv_SUVmax, frame.egfr)
    x = frame.pet_tumour_suv_SUVmax[frame.egfr == 1]
    ref = st.mann_whitney_test(x, frame.pet_tumour_suv_SUVmax[frame.egfr == 0])
    auc = st.roc_auc(frame.egfr, frame.pet_tumour_suv_SUVmax)
    assert num["test"] == "Mann-Whitney U" and num["p"] == ref.p_value
    assert (num["effect_size"], num["ci_low"], num["ci_high"]) == (auc.auc, auc.ci_lower, auc.ci_upper)
    assert num["effect_size"] < 0.3  # EGFR-mutant tumours have a lower SUVmax here
    par = compare_variable(frame.age, frame.egfr, parametric=True)
    assert par["test"] == "Welch t-test" and par["ci_low"] < par["effect_size"] < par["ci_high"]
    three = compare_variable(frame.age, frame.subtype, seed=1)
    assert three["test"] == "Kruskal-Wallis" and three["ci_low"] <= three["effect_size"] <= three["ci_high"]
    assert compare_variable(frame.age, frame.subtype, seed=1) == three  # seeded bootstrap
    # a 2 x 2 category: Fisher with R's conditional odds ratio, oriented second level, second group
    sex = compare_variable(frame.sex, frame.egfr)
    table = pd.crosstab(frame.sex, frame.egfr).to_numpy()
    assert sex["test"] == "Fisher's exact test" and sex["p"] == st.fisher_test(table).p_value
    assert sex["effect"] == "odds ratio of M (1 vs 0)"
    # a larger table with small expected counts: Monte-Carlo p close to the χ² p of a large sample
    small = compare_variable(
        frame.subtype.iloc[:20], frame.egfr.iloc[:20].replace({1: 0}).where(np.arange(20) % 2 == 0, 1)
    )
    assert small["test"].startswith("χ² (Monte-Carlo") and 0 < small["p"] <= 1
    big = pd.concat([frame] * 5, ignore_index=True)
    mc = compare_variable(big.subtype, big.cohort)
    exact = st.chisq_test(pd.crosstab(big.subtype, big.cohort).to_numpy(), correct=False)
    assert mc["test"] == "Pearson's χ²" and mc["p"] == pytest.approx(exact.p_value)


def test_table_one_counts_and_summaries():
    frame = _cohort()
    frame.loc[[0, 1], "age"] = np.nan
    t1 = table_one(frame, "egfr", ["age", "sex"])
    age = t1[t1.variable == "age"].iloc[0]
    q1, med, q3 = np.percentile(frame.age[frame.egfr == 1].dropna(), [25, 50, 75])
    assert age["egfr=1"] == f"{med:.3g} [{q1:.3g}–{q3:.3g}]" and age.missing == 2
    female = t1[(t1.variable == "sex") & (t1.level == "F")].iloc[0]
    n_f1 = int(((frame.sex == "F") & (frame.egfr == 1)).sum())
    assert female["egfr=1"] == f"{n_f1} ({n_f1 / 40:.0%})" and female.test == "Fisher's exact test"
    male = t1[(t1.variable == "sex") & (t1.level == "M")].iloc[0]
    assert pd.isna(male.test) or male.test == ""  # the test is on the variable's first row only


def test_describe_adjusts_features_and_shows_cohort_shift(tmp_path):
    frame = _cohort(n=120, seed=2)
    ext = frame.cohort == "external"
    frame.loc[ext, "pet_tumour_suv_CoV"] += 0.08  # the external scanner's shift
    result = describe(frame, ["egfr", "cohort"])
    by_cohort = result.features["cohort"].set_index("feature")
    assert by_cohort.loc["pet_tumour_suv_CoV", "q"] < 0.001
    features = result.features["egfr"]
    assert features.iloc[0].feature == "pet_tumour_suv_SUVmax" and features.iloc[0].q < 0.001
    assert (features.q >= features.p - 1e-15).all()
    assert set(result.tables["egfr"].variable) == {"subtype", "cohort", "age", "sex"}
    frame.loc[3, "egfr"] = np.nan
    assert describe(frame, ["egfr"]).notes == ["egfr: 1 case(s) without a value left out"]
    with pytest.raises(ValueError, match="--by column 'stage'"):
        describe(frame, ["stage"])


def test_describe_command_on_a_table(tmp_path):
    path = tmp_path / "t.csv"
    _cohort().to_csv(path, index=False)
    res = runner.invoke(
        app, ["describe", str(path), "--by", "egfr", "--by", "subtype", "-o", str(tmp_path / "d")]
    )
    assert res.exit_code == 0, res.output
    printed = " ".join(res.output.split())  # rich wraps long lines
    assert "by egfr:" in printed and "strongest pet_tumour_suv_SUVmax" in printed
    for name in (
        "table1_egfr.csv",
        "features_subtype.csv",
        "features_egfr.png",
        "features_egfr.svg",
        "report.html",
    ):
        assert (tmp_path / "d" / name).stat().st_size > 200
    report = (tmp_path / "d" / "report.md").read_text()
    assert "Table 1" in report and "Benjamini" in report and "AUC = P(1 > 0)" in report
    bad = runner.invoke(app, ["describe", str(path), "--by", "stage", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "'stage'" in bad.output


def test_describe_on_a_real_radiomics_table(shared_data, tmp_path):
    """NSCLC-Radiogenomics (radMLBench, EGFR): first-order CT features compared by the outcome."""
    table = pd.read_csv(shared_data / "radmlbench" / "datasets" / "NSCLC-Radiogenomics.gz")
    table.to_csv(tmp_path / "nsclc.csv", index=False)
    res = runner.invoke(
        app,
        [
            "describe",
            str(tmp_path / "nsclc.csv"),
            "--by",
            "Target",
            "--features",
            "firstorder",
            "--clinical",
            "",
            "-o",
            str(tmp_path / "d"),
        ],
    )
    assert res.exit_code == 0, res.output
    features = pd.read_csv(tmp_path / "d" / "features_Target.csv")
    assert len(features) > 10 and features.test.eq("Mann-Whitney U").all()
    col = features.iloc[0].feature
    y = table.Target.to_numpy()
    assert features.iloc[0].p == pytest.approx(
        st.mann_whitney_test(table[col][y == 1], table[col][y == 0]).p_value
    )
