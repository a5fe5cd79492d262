"""Every reference value in ../shared/data/stats (pROC, psych::ICC, R survival, dcurves, R stats).

Tolerances follow that folder's README: full-precision values to ~1e-9 relative; values given to
fewer digits to their printed precision; R's Fisher conditional-OR CI to rtol 5e-3.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models import stats as st

pytestmark = pytest.mark.realdata
RTOL = 1e-9


@pytest.fixture(scope="module")
def ref(shared_data):
    return shared_data / "stats"


@pytest.fixture(scope="module")
def asah(ref):
    df = pd.read_csv(ref / "aSAH.csv")
    df["y"] = (df["outcome"] == "Poor").astype(int)
    return df


def _tol(value: float, note: str) -> dict:
    if isinstance(note, str) and "10 d.p." in note:
        return {"abs": 1e-9}
    return {"rel": RTOL, "abs": 1e-12}


def _proc_rows(ref):
    table = pd.read_csv(ref / "proc_reference.csv")
    return [pytest.param(r, id=f"{r.what}|{r.predictors}|{r.direction}") for r in table.itertuples()]


def test_proc_reference_file_is_fully_covered(ref):
    """Completeness: every row kind in the pROC file has a handler below (no silent gaps)."""
    known = re.compile(
        r"^(auc|var_auc_delong|ci_auc_delong_(lower|auc|upper)|cov_auc_delong|"
        r"roc_test_delong_(paired|unpaired)_\w+|partial_auc\[.*\]|coords_best_youden_.+|"
        r"coords_at_threshold_[0-9.]+_.+)$"
    )
    table = pd.read_csv(ref / "proc_reference.csv")
    unknown = [w for w in table["what"] if not known.match(w)]
    assert not unknown


def _data_for(asah, ref, predictors: str):
    if predictors.startswith("numacc"):
        num = pd.read_csv(ref / "proc_numacc.csv")
        x = np.array([float.fromhex(h) for h in num["predictor_hex"]])
        return (num["response"] == 2).astype(int).to_numpy(), x
    if "subset gender==Female" in predictors:
        sub = asah[asah["gender"] == "Female"]
        return sub["y"].to_numpy(), sub[predictors.split()[0]].to_numpy(float)
    return asah["y"].to_numpy(), asah[predictors].to_numpy(float)


def test_proc_reference_values(asah, ref):
    table = pd.read_csv(ref / "proc_reference.csv")
    checked = 0
    for row in table.itertuples():
        what, preds, direction, expected = row.what, row.predictors, row.direction, row.value
        tol = _tol(expected, row.note)
        if what == "auc":
            y, x = _data_for(asah, ref, preds)
            d = "auto" if preds.startswith("numacc") else direction
            got = st.roc_auc(y, x, direction=d).auc
        elif what == "var_auc_delong":
            y, x = _data_for(asah, ref, preds)
            got = st.roc_auc(y, x, direction=direction).variance
        elif what.startswith("ci_auc_delong_"):
            y, x = _data_for(asah, ref, preds)
            res = st.roc_auc(y, x, direction=direction)
            got = {"lower": res.ci_lower, "auc": res.auc, "upper": res.ci_upper}[what.rsplit("_", 1)[1]]
            # The same CI holds for the negated predictor with direction ">".
            neg = st.roc_auc(y, -x, direction=">")
            assert (neg.ci_lower, neg.ci_upper) == pytest.approx((res.ci_lower, res.ci_upper), rel=1e-12)
        elif what == "cov_auc_delong":
            a, b = preds.split(";")
            _, cov = st.delong_covariance(asah["y"], asah[a], asah[b], direction=direction)
            got = cov[0, 1]
        elif what.startswith("roc_test_delong_"):
            a, b = preds.split(";")
            paired = "_paired_" in what
            key = what.split("paired_", 1)[1]
            alternative = {"p_greater": "greater", "p_less": "less"}.get(key, "two-sided")
            if paired:
                res = st.delong_test(asah["y"], asah[a], asah[b], alternative=alternative)
            else:
                res = st.delong_test_unpaired(asah["y"], asah[a], asah["y"], asah[b], alternative=alternative)
            got = {
                "Z": res.statistic,
                "D": res.statistic,
                "df": res.df,
                "p_two_sided": res.p_value,
                "p_greater": res.p_value,
                "p_less": res.p_value,
                "diff_ci_lower": res.ci_lower,
                "diff_ci_upper": res.ci_upper,
            }[key]
            if key == "Z" and paired and a != b:  # swapping the curves negates Z
                swapped = st.delong_test(asah["y"], asah[b], asah[a])
                assert swapped.statistic == pytest.approx(-res.statistic, rel=1e-12)
        elif what.startswith("partial_auc["):
            spec = what[len("partial_auc[") : -1].split()
            focus = {"sp": "specificity", "se": "sensitivity"}[spec[0]]
            hi, lo = (float(v) for v in spec[1].split("-"))
            got = st.partial_auc(
                asah["y"],
                asah[preds],
                bounds=(hi, lo),
                focus=focus,
                correct="mcclish_corrected" in what,
                direction=direction,
            )
        elif what.startswith("coords_best_youden_"):
            metric = what[len("coords_best_youden_") :]
            t = st.youden_threshold(asah["y"], asah[preds], direction=direction)
            if metric == "threshold":
                got = t
            else:
                c = st.roc_coords(asah["y"], asah[preds], direction=direction, thresholds=np.array([t]))
                got = c[metric.replace(".", "_")].iloc[0]
        elif what.startswith("coords_at_threshold_"):
            m = re.match(r"coords_at_threshold_([0-9.]+)_(.+)", what)
            t, metric = float(m.group(1)), m.group(2)
            c = st.roc_coords(asah["y"], asah[preds], direction=direction, thresholds=np.array([t]))
            got = c[metric].iloc[0]
            tm = st.threshold_metrics(asah["y"], asah[preds], t, direction=direction)
            if metric in tm.table.index and np.isfinite(expected):
                assert tm[metric] == pytest.approx(expected, rel=RTOL, abs=1e-12)
        else:  # pragma: no cover - guarded by the completeness test
            raise AssertionError(what)
        assert got == pytest.approx(expected, **tol), f"{what} {preds} {direction}: {got} vs {expected}"
        checked += 1
    assert checked == len(table)


def test_proc_coords_every_threshold(asah, ref):
    expected = pd.read_csv(ref / "proc_coords_s100b.csv")
    got = st.roc_coords(asah["y"], asah["s100b"], direction="<")
    assert np.allclose(got["threshold"], expected["threshold"], rtol=1e-12, equal_nan=True)
    for ours, theirs in [
        ("sensitivity", "sensitivity"),
        ("specificity", "specificity"),
        ("accuracy", "accuracy"),
        ("tp", "tp"),
        ("fp", "fp"),
        ("tn", "tn"),
        ("fn", "fn"),
        ("ppv", "ppv"),
        ("npv", "npv"),
        ("youden", "youden"),
        ("closest_topleft", "closest.topleft"),
        ("lr_pos", "lr_pos"),
        ("lr_neg", "lr_neg"),
    ]:
        np.testing.assert_allclose(
            got[ours].to_numpy(float),
            expected[theirs].to_numpy(float),
            rtol=1e-9,
            atol=1e-9,
            equal_nan=True,
            err_msg=ours,
        )


def test_icc_reference_values(ref):
    table = pd.read_csv(ref / "icc_reference.csv")
    sf = pd.read_csv(ref / "icc_shrout_fleiss.csv").set_index("target").to_numpy(float)
    wine = pd.read_csv(ref / "icc_wine_long.csv")
    results = {"shrout_fleiss": st.icc(sf), "wine": st.icc(wine, "Wine", "Judge", "Scores")}
    columns = {
        "": "ICC",
        "F": "F",
        "df1": "df1",
        "df2": "df2",
        "pval": "pval",
        "ci95_lower": "ci_lower",
        "ci95_upper": "ci_upper",
    }
    for row in table.itertuples():
        res = results[row.dataset]
        if row.what in ("BMS", "WMS", "JMS", "EMS"):
            got = res.attrs["mean_squares"][row.what]
        elif row.what == "ICC2_ci_satterthwaite_df":
            got = res.attrs["satterthwaite_df"]
        else:
            form, _, rest = row.what.partition("_")
            got = res.loc[form, columns[rest]]
        assert got == pytest.approx(row.value, rel=1e-9, abs=1e-12), f"{row.dataset} {row.what}"


def test_icc_feature_filter_keeps_stable_features():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=30)
    rows = []
    for reader in ("r1", "r2", "r3"):
        rows += [
            {"case": i, "reader": reader, "stable": t + rng.normal(0, 0.1), "noisy": rng.normal()}
            for i, t in enumerate(truth)
        ]
    long = pd.DataFrame(rows)
    scores = st.icc_by_feature(long, "case", "reader")
    assert scores["stable"] > 0.95 and scores["noisy"] < 0.3
    assert st.select_stable_features(long, "case", "reader", threshold=0.75) == ["stable"]


def _surv_rows(ref, dataset):
    table = pd.read_csv(ref / "survival_reference.csv")
    return table[table["dataset"] == dataset]


def test_kaplan_meier_logrank_cox_aml(ref):
    aml = pd.read_csv(ref / "surv_aml.csv")
    aml["nonmaintained"] = (aml["x"] == "Nonmaintained").astype(int)
    lr = st.logrank_test(aml["time"], aml["status"], aml["x"])
    cox = {t: st.cox_ph(aml, "time", "status", ["nonmaintained"], ties=t) for t in ("efron", "breslow")}
    for row in _surv_rows(ref, "aml").itertuples():
        what = row.what
        if what.startswith("km_") and what != "km_median":
            g = aml[aml["x"] == row.group]
            km = st.kaplan_meier(g["time"], g["status"]).set_index("time")
            col = {"km_survival": "survival", "km_n_risk": "n_risk"}.get(what)
            if col is None:
                col = "std_err" if "std_err" in what else ("ci_lower" if "lower" in what else "ci_upper")
            got = km.loc[float(row.time), col]
        elif what == "km_median":
            g = aml[aml["x"] == row.group]
            got = st.km_median(g["time"], g["status"])[0]
        elif what == "logrank_chisq":
            got = lr.chisq
        elif what == "logrank_p":
            got = lr.p_value
        elif what == "logrank_expected":
            got = lr.expected[row.group]
        elif what == "logrank_variance":
            got = lr.variance[0, 0]
        else:
            kind, ties = re.match(r"cox_(\w+)\[(\w+)\]", what).groups()
            fit = cox[ties]
            got = {
                "coef": fit.table["coef"].iloc[0],
                "hr": fit.table["hr"].iloc[0],
                "se": fit.table["se"].iloc[0],
                "z": fit.table["z"].iloc[0],
                "p_wald": fit.table["p"].iloc[0],
                "loglik": fit.loglik,
                "lr_chisq": fit.lr_chisq,
            }[kind]
        tol = 1e-6 if what.startswith("cox") else 1e-9
        if np.isnan(row.value):  # R prints NaN/NA where S = 0
            assert np.isnan(got), f"aml {what} {row.group} {row.time}: R gives NA, got {got}"
            continue
        assert got == pytest.approx(row.value, rel=tol, abs=1e-12), f"aml {what} {row.group} {row.time}"
        if isinstance(row.r_printed, str) and re.fullmatch(r"-?[0-9.]+", row.r_printed):
            digits = len(row.r_printed.split(".")[1]) if "." in row.r_printed else 0
            assert abs(got - float(row.r_printed)) <= 0.5 * 10**-digits + 1e-12


def test_median_ci_matches_r_print(ref):
    aml = pd.read_csv(ref / "surv_aml.csv")
    g = aml[aml["x"] == "Maintained"]
    median, lower, upper = st.km_median(g["time"], g["status"])
    assert (median, lower) == (31.0, 18.0) and np.isnan(upper)  # R: 31 (0.95LCL 18, UCL NA)


def test_kaplan_meier_logrank_cox_ovarian(ref):
    ov = pd.read_csv(ref / "surv_ovarian.csv")
    km = st.kaplan_meier(ov["futime"], ov["fustat"]).set_index("time")
    lr = st.logrank_test(ov["futime"], ov["fustat"], ov["rx"])
    for row in _surv_rows(ref, "ovarian").itertuples():
        what = row.what
        if what.startswith("km_"):
            col = {"km_survival": "survival", "km_n_risk": "n_risk"}.get(what)
            if col is None:
                col = "std_err" if "std_err" in what else ("ci_lower" if "lower" in what else "ci_upper")
            got = km.loc[float(row.time), col]
            tol = 1e-9
        elif what.startswith("logrank"):
            got = lr.chisq if what == "logrank_chisq" else lr.p_value
            tol = 1e-9
        else:
            kind, formula = re.match(r"cox_(\w+)\[(.+)\]", what).groups()
            fit = st.cox_ph(ov, "futime", "fustat", formula.split("+"))
            got = (
                fit.lr_chisq
                if kind == "lr_chisq"
                else fit.table.loc[
                    row.group, {"coef": "coef", "hr": "hr", "se": "se", "z": "z", "p_wald": "p"}[kind]
                ]
            )
            tol = 1e-6
        if np.isnan(row.value):
            assert np.isnan(got), f"ovarian {what} {row.group}: R gives NA, got {got}"
            continue
        assert got == pytest.approx(row.value, rel=tol, abs=1e-12), f"ovarian {what} {row.group}"


def test_cox_closed_forms_therneau_grambsch(ref):
    tg = pd.read_csv(ref / "surv_tg_test1.csv")
    fits = {t: st.cox_ph(tg, "time", "status", ["x"], ties=t) for t in ("efron", "breslow")}
    for row in _surv_rows(ref, "tg_test1").itertuples():
        kind, ties = re.match(r"cox_(\w+)\[(\w+)\]", row.what).groups()
        fit = fits[ties]
        if kind == "coef_after_1_newton_iter":
            beta0 = np.zeros(1)
            step = np.linalg.solve(fit.model.hessian(beta0), fit.model.score(beta0))
            got = float(beta0[0] - step[0])
        else:
            got = {
                "coef": fit.table["coef"].iloc[0],
                "var": fit.covariance[0, 0],
                "loglik": fit.loglik,
                "loglik0": fit.loglik_null,
            }[kind]
        assert got == pytest.approx(row.value, rel=1e-7), row.what


def test_decision_curve_matches_r_dcurves(ref):
    df = pd.read_csv(ref / "dca_df_binary.csv")
    expected = pd.read_csv(ref / "dca_reference_r_famhistory.csv")
    thresholds = np.round(np.arange(0, 1, 0.01), 2)
    got = st.decision_curve(df["cancer"], {"famhistory": df["famhistory"].to_numpy(float)}, thresholds)
    got["threshold"] = got["threshold"].round(2)
    expected["threshold"] = expected["threshold"].round(2)
    merged = expected.merge(got, on=["label", "threshold"], suffixes=("", "_ours"), validate="1:1")
    assert len(merged) == len(expected) == 300
    for col in ("net_benefit", "tp_rate", "fp_rate", "test_pos_rate"):
        np.testing.assert_allclose(merged[f"{col}_ours"], merged[col], atol=1e-12, err_msg=col)
    derived = pd.read_csv(ref / "dca_reference_derived_cancerpredmarker.csv")
    nb = st.net_benefit(df["cancer"], df["cancerpredmarker"], derived["threshold"])
    np.testing.assert_allclose(nb, derived["net_benefit"], atol=1e-12)


# Data vectors of R's `stats` help-page examples (Agresti 1990; Hollander & Wolfe 1973; Fisher 1962).
DEPRESSION_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
DEPRESSION_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
CHORIO_X = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
CHORIO_Y = [1.15, 0.88, 0.90, 0.74, 1.21]
TUNA_X = [44.4, 45.9, 41.9, 53.3, 44.7, 44.1, 50.7, 45.2, 60.1]
TUNA_Y = [2.6, 3.1, 2.5, 5.0, 3.6, 4.0, 5.2, 2.8, 3.8]


def _classic(ref):
    table = pd.read_csv(ref / "classic_tests_reference.csv")
    return {(r.test, r.data.split()[0], r.what): r for r in table.itertuples()}


def test_classic_tests_match_r(ref):
    rows = _classic(ref)

    def check(test, what, got, rtol=1e-9, data=None):
        data = (
            data
            or {
                "mcnemar": "Agresti",
                "fisher": "TeaTasting",
                "wilcoxon_signed_rank": "H&W",
                "mann_whitney": "H&W",
                "spearman": "H&W",
                "kendall": "H&W",
            }[test]
        )
        row = rows[(test, data, what)]
        expected = row.value if np.isfinite(row.value) else float(row.r_printed)
        assert got == pytest.approx(expected, rel=rtol, abs=1e-12), f"{test} {data} {what}"

    perf = [[794, 86], [150, 570]]
    mc = st.mcnemar_test(perf)
    check("mcnemar", "chisq (continuity corrected)", mc.statistic)
    check("mcnemar", "p", mc.p_value, data="Performance")
    check(
        "mcnemar",
        "p exact binomial (not in R example)",
        st.mcnemar_test(perf, exact=True).p_value,
        data="Performance",
    )

    tea = [[3, 1], [1, 3]]
    check("fisher", "p (alternative=greater)", st.fisher_test(tea, alternative="greater").p_value)
    check("fisher", "p (two-sided)", st.fisher_test(tea).p_value)
    check("fisher", "odds ratio (conditional MLE)", st.fisher_test(tea).statistic, rtol=5e-6)
    check(
        "fisher",
        "odds ratio CI lower (alt=greater)",
        st.fisher_test(tea, alternative="greater").extra["ci_lower"],
        rtol=5e-3,
    )
    conv = [[2, 15], [10, 3]]
    check(
        "fisher", "p (alternative=less)", st.fisher_test(conv, alternative="less").p_value, data="Convictions"
    )
    res = st.fisher_test(conv)
    check("fisher", "p (two-sided)", res.p_value, data="Convictions")
    check("fisher", "odds ratio (conditional MLE)", res.statistic, rtol=5e-6, data="Convictions")
    check("fisher", "OR 95% CI lower", res.extra["ci_lower"], rtol=5e-3, data="Convictions")
    check("fisher", "OR 95% CI upper", res.extra["ci_upper"], rtol=5e-3, data="Convictions")

    w = st.wilcoxon_test(DEPRESSION_X, DEPRESSION_Y, alternative="greater")
    check("wilcoxon_signed_rank", "V (alt=greater)", w.statistic)
    check("wilcoxon_signed_rank", "p exact (alt=greater)", w.p_value)
    check("wilcoxon_signed_rank", "p exact two-sided", st.wilcoxon_test(DEPRESSION_X, DEPRESSION_Y).p_value)
    check(
        "wilcoxon_signed_rank",
        "p normal approx, no correction (alt=less)",
        st.wilcoxon_test(DEPRESSION_Y, DEPRESSION_X, alternative="less", exact=False, correct=False).p_value,
    )
    tied = st.wilcoxon_test([4, 3, 2], [3, 2, 1])  # R: falls back to normal approx + continuity
    check("wilcoxon_signed_rank", "p approx + continuity (ties)", tied.p_value, data="4:2")
    assert tied.statistic == 6.0  # R's V = W+

    mw = st.mann_whitney_test(CHORIO_X, CHORIO_Y, alternative="greater")
    check("mann_whitney", "W=U_x (alt=greater)", mw.statistic)
    check("mann_whitney", "p exact (alt=greater)", mw.p_value)
    check(
        "mann_whitney",
        "p asymptotic no correction (alt=greater)",
        st.mann_whitney_test(CHORIO_X, CHORIO_Y, alternative="greater", exact=False, correct=False).p_value,
    )
    check("mann_whitney", "AUC = U/(n1*n2)", mw.extra["auc"])
    # The Mann-Whitney AUC is the ROC AUC.
    y = np.r_[np.ones(len(CHORIO_X)), np.zeros(len(CHORIO_Y))]
    assert st.roc_auc(y, np.r_[CHORIO_X, CHORIO_Y]).auc == pytest.approx(mw.extra["auc"])

    sp = st.spearman_test(TUNA_X, TUNA_Y, alternative="greater")
    check("spearman", "rho", sp.statistic)
    check("spearman", "S = (n^3-n)(1-rho)/6", sp.extra["S"])
    check("spearman", "p exact permutation (alt=greater)", sp.p_value)
    assert sp.p_value == pytest.approx(
        float(rows[("spearman", "H&W", "p exact (alt=greater)")].r_printed), abs=5e-5
    )
    kt = st.kendall_test(TUNA_X, TUNA_Y, alternative="greater")
    check("kendall", "tau", kt.statistic)
    check("kendall", "p exact (alt=greater)", kt.p_value)


def test_classic_reference_file_is_fully_covered(ref):
    handled = {
        "mcnemar",
        "fisher",
        "wilcoxon_signed_rank",
        "mann_whitney",
        "spearman",
        "kendall",
    }
    assert set(pd.read_csv(ref / "classic_tests_reference.csv")["test"]) <= handled


def test_tests_of_radfeat_describe_match_r_help_examples():
    """R stats help examples (stats-Ex.Rout.save): t.test(extra ~ group, data = sleep): t = -1.8608,
    df = 17.776, p = 0.07939, 95 % CI -3.3654832 0.2054832; oneway.test on the same: F = 3.4626,
    p = 0.07939; kruskal.test (Hollander & Wolfe p. 116): chi-squared = 0.77143, p = 0.68;
    chisq.test(M) (Agresti 2007, party by gender): X-squared = 30.07, df = 2, p = 2.954e-07;
    chisq.test(TeaTasting) with Yates: X-squared = 0.5, p = 0.4795."""
    from models import stats as st

    g1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    g2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    t = st.welch_t_test(g1, g2)
    assert t.statistic == pytest.approx(-1.8608, abs=5e-5) and t.extra["df"] == pytest.approx(
        17.776, abs=5e-4
    )
    assert t.p_value == pytest.approx(0.07939, abs=5e-6)
    assert t.extra["ci_lower"] == pytest.approx(-3.3654832, abs=5e-8)
    assert t.extra["ci_upper"] == pytest.approx(0.2054832, abs=5e-8)
    anova = st.welch_anova(g1, g2)
    assert anova.statistic == pytest.approx(3.4626, abs=5e-5) and anova.p_value == pytest.approx(
        0.07939, abs=5e-6
    )
    kw = st.kruskal_test([2.9, 3.0, 2.5, 2.6, 3.2], [3.8, 2.7, 4.0, 2.4], [2.8, 3.4, 3.7, 2.2, 2.0])
    assert kw.statistic == pytest.approx(0.77143, abs=5e-6) and kw.p_value == pytest.approx(0.68, abs=5e-3)
    chi = st.chisq_test([[762, 327, 468], [484, 239, 477]])
    assert chi.statistic == pytest.approx(30.07, abs=5e-3) and chi.extra["df"] == 2
    assert chi.p_value == pytest.approx(2.954e-07, rel=5e-4)
    # Cramér's V from R's printed X-squared: sqrt(30.07 / (2757 * (2 - 1)))
    assert chi.extra["cramers_v"] == pytest.approx(np.sqrt(30.070149 / 2757), abs=1e-6)
    tea = st.chisq_test([[3, 1], [1, 3]])
    assert tea.statistic == pytest.approx(0.5, abs=1e-12) and tea.p_value == pytest.approx(0.4795, abs=5e-5)


def test_harrell_c_matches_r_coxph_summary_on_aml(shared_data):
    """R survival: summary(coxph(Surv(time, status) ~ x, data = aml)) prints
    "Concordance= 0.619 (se = 0.063)" (the infinitesimal-jackknife standard error)."""
    from models import stats as st

    aml = pd.read_csv(shared_data / "stats" / "surv_aml.csv")
    c = st.harrell_c(aml.time, aml.status, (aml.x == "Nonmaintained").astype(float))
    assert c.c_index == pytest.approx(0.619, abs=5e-4) and c.std_err == pytest.approx(0.063, abs=5e-4)
    assert c.ci_lower == pytest.approx(c.c_index - 1.959964 * c.std_err, abs=1e-6)
    # reversing the score reverses the concordance; ties in the score count one half
    assert st.harrell_c(
        aml.time, aml.status, -(aml.x == "Nonmaintained").astype(float)
    ).c_index == pytest.approx(1 - c.c_index, abs=1e-12)
    assert st.harrell_c(aml.time, aml.status, np.zeros(len(aml))).c_index == 0.5
