"""radfeat survival: Kaplan–Meier by locked-threshold group, Cox HRs, Harrell's C, score × treatment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models import stats as st
from models.lifecycle.survival import event_indicator, survival_on_scores
from radfeat.synth import draw_follow_up
from radfeat_cli.main import app

runner = CliRunner()


def _predictions(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Scores that track EGFR status; follow-up drawn as radfeat synth does (TKIs help EGFR-mutant
    patients, immunotherapy harms them)."""
    rng = np.random.default_rng(seed)
    egfr = rng.integers(0, 2, n)
    follow = pd.DataFrame(
        [draw_follow_up(np.random.default_rng([seed, i, 1]), int(e)) for i, e in enumerate(egfr)]
    )
    score = 1 / (1 + np.exp(-(2 * egfr - 1 + rng.normal(0, 1, n))))
    return follow.assign(
        case_id=[f"C{i:03d}" for i in range(n)],
        score=score,
        predicted_positive=score >= 0.5,
        age=rng.normal(62, 9, n).round(),
        training_cohort=np.arange(n) < 40,
    )


def test_survival_on_scores_finds_the_treatment_interaction():
    frame = _predictions()
    analysis = survival_on_scores(frame, "pfs_months", "progression", group_by="treatment", adjust=["age"])
    assert analysis.notes[0].startswith("40 training-cohort case(s) left out")
    data = analysis.data
    assert len(data) == 260 and np.isclose(data["_z"].std(), 1.0)
    cox = analysis.cox.set_index(["subgroup", "term"])
    assert cox.loc[("TKI", "model-positive vs negative"), "hr_ci_upper"] < 1.0
    assert cox.loc[("ICI", "score per SD"), "hr"] > 1.0
    # each number is the models.stats function on the same cases
    tki = data[data._treatment == "TKI"].reset_index(drop=True)
    ref = st.cox_ph(tki.assign(age=tki.age), "_time", "_event", ["_positive", "age"]).table.loc["_positive"]
    assert cox.loc[("TKI", "model-positive vs negative"), "hr"] == pytest.approx(ref.hr, rel=1e-10)
    lr = st.logrank_test(tki._time, tki._event, tki._group)
    assert analysis.logrank.set_index("subgroup").loc["TKI", "logrank_p"] == pytest.approx(lr.p_value)
    c = st.harrell_c(data._time, data._event, data.score)
    assert analysis.concordance.set_index("subgroup").loc["all", "c_index"] == pytest.approx(c.c_index)
    inter = analysis.interaction.iloc[0]
    assert inter.term == "score per SD × treatment=TKI" and inter.hr < 1 and inter.lr_p < 0.05
    kept = survival_on_scores(frame, "pfs_months", "progression", include_training=True)
    assert len(kept.data) == 300


def test_events_are_read_strictly_and_missing_columns_named():
    assert list(event_indicator(pd.Series(["yes", "No", "event", "censored"]), "e")) == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="event column 'e' must be 0"):
        event_indicator(pd.Series([0, 1, 2]), "e")
    with pytest.raises(ValueError, match="column 'os_months' is not in the predictions"):
        survival_on_scores(_predictions(), "os_months", "progression")
    fusion = pd.concat([_predictions().assign(task="egfr"), _predictions(seed=1).assign(task="subtype")])
    with pytest.raises(ValueError, match="choose one with --task"):
        survival_on_scores(fusion, "pfs_months", "progression")
    one = survival_on_scores(fusion, "pfs_months", "progression", task="subtype", include_training=True)
    assert len(one.data) == 300 and np.allclose(one.data.score, _predictions(seed=1).score)


def test_survival_command_joins_follow_up_from_a_table(tmp_path):
    frame = _predictions()
    frame[["case_id", "score", "predicted_positive", "training_cohort"]].to_csv(
        tmp_path / "p.csv", index=False
    )
    frame[["case_id", "pfs_months", "progression", "treatment", "age"]].to_csv(
        tmp_path / "t.csv", index=False
    )
    res = runner.invoke(
        app,
        [
            "survival",
            str(tmp_path / "p.csv"),
            "--time",
            "pfs_months",
            "--event",
            "progression",
            "--group-by",
            "treatment",
            "--adjust",
            "age",
            "--table",
            str(tmp_path / "t.csv"),
            "-o",
            str(tmp_path / "s"),
        ],
    )
    assert res.exit_code == 0, res.output
    printed = " ".join(res.output.split())
    assert "interaction score per SD × treatment=TKI" in printed and "TKI: HR model-positive" in printed
    for name in ("km_all.png", "km_TKI.svg", "km_ICI.png", "cox.csv", "interaction.csv", "report.html"):
        assert (tmp_path / "s" / name).stat().st_size > 100
    report = (tmp_path / "s" / "report.md").read_text()
    assert "Harrell's C" in report and "Likelihood-ratio test of the interaction" in report
    bad = runner.invoke(app, ["survival", str(tmp_path / "p.csv"), "--time", "pfs", "--event", "x"])
    assert bad.exit_code == 2 and "'pfs'" in " ".join(bad.output.split())


def test_survival_on_real_follow_up(shared_data, tmp_path):
    """R survival's ovarian data with age as the score: the HR per SD is R's coxph coefficient for age
    (0.16162 per year, ovarian.Rout.save) times the SD of age; the log-rank test of age > median groups
    equals models.stats' (matched to survdiff)."""
    ovarian = pd.read_csv(shared_data / "stats" / "surv_ovarian.csv")
    frame = ovarian.assign(
        case_id=np.arange(len(ovarian)).astype(str),
        score=ovarian.age,
        predicted_positive=ovarian.age > ovarian.age.median(),
    )
    frame.to_csv(tmp_path / "ovarian.csv", index=False)
    res = runner.invoke(
        app,
        [
            "survival",
            str(tmp_path / "ovarian.csv"),
            "--time",
            "futime",
            "--event",
            "fustat",
            "-o",
            str(tmp_path / "s"),
        ],
    )
    assert res.exit_code == 0, res.output
    cox = pd.read_csv(tmp_path / "s" / "cox.csv").set_index("term")
    assert cox.loc["score per SD", "hr"] == pytest.approx(np.exp(0.16162 * ovarian.age.std()), rel=1e-4)
    logrank = pd.read_csv(tmp_path / "s" / "logrank.csv").iloc[0]
    group = np.where(frame.predicted_positive, "model-positive", "model-negative")
    assert logrank.logrank_p == pytest.approx(st.logrank_test(ovarian.futime, ovarian.fustat, group).p_value)
