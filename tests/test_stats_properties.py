"""Property tests of the statistics module (hypothesis) and behaviour on edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from models import stats as st


@hst.composite
def labelled_scores(draw, min_each: int = 3, max_each: int = 30, tied: bool = True):
    n_cases = draw(hst.integers(min_each, max_each))
    n_controls = draw(hst.integers(min_each, max_each))
    levels = draw(hst.integers(3, 12)) if tied else None
    seed = draw(hst.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    shift = draw(hst.floats(-1.5, 1.5))
    scores = np.r_[rng.normal(shift, 1, n_cases), rng.normal(0, 1, n_controls)]
    if tied:
        scores = np.round(scores * levels / 3) / levels  # coarse grid → many ties
    y = np.r_[np.ones(n_cases, int), np.zeros(n_controls, int)]
    return y, scores


@settings(max_examples=60, deadline=None)
@given(labelled_scores())
def test_reversed_score_gives_one_minus_auc_and_direction_is_never_flipped(data):
    y, s = data
    a = st.roc_auc(y, s, direction="<")
    b = st.roc_auc(y, -s, direction="<")
    assert b.auc == pytest.approx(1 - a.auc, abs=1e-12)
    assert b.variance == pytest.approx(a.variance, rel=1e-9, abs=1e-15)
    assert st.roc_auc(y, s, direction=">").auc == pytest.approx(1 - a.auc, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(labelled_scores())
def test_auc_and_variance_invariant_to_monotone_transforms(data):
    y, s = data
    a = st.roc_auc(y, s)
    b = st.roc_auc(y, np.exp(3 * s) + 7)
    assert b.auc == pytest.approx(a.auc, abs=1e-12)
    assert b.variance == pytest.approx(a.variance, rel=1e-9, abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(labelled_scores())
def test_auc_equals_pairwise_probability_and_sklearn(data):
    from sklearn.metrics import roc_auc_score

    y, s = data
    cases, controls = s[y == 1], s[y == 0]
    pairwise = (cases[:, None] > controls[None, :]).mean() + 0.5 * (
        cases[:, None] == controls[None, :]
    ).mean()
    assert st.roc_auc(y, s).auc == pytest.approx(pairwise, abs=1e-12)
    assert st.roc_auc(y, s).auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_variance_agrees_with_large_bootstrap(seed):
    """DeLong's variance is the bootstrap variance to within Monte-Carlo error (ties included)."""
    rng = np.random.default_rng(seed)
    n_cases, n_controls = 60, 90
    s = np.r_[rng.normal(0.8, 1, n_cases), rng.normal(0, 1, n_controls)]
    s = np.round(s * 2) / 2  # ties
    y = np.r_[np.ones(n_cases, int), np.zeros(n_controls, int)]
    delong = st.roc_auc(y, s).variance
    boot = st.bootstrap_ci(y, s, n_boot=4000, random_state=seed)
    # SD of a sample variance from B draws ≈ var·sqrt(2/(B−1)); allow 4 SDs plus the O(1/n) bias.
    assert boot.std**2 == pytest.approx(delong, rel=4 * np.sqrt(2 / 3999) + 0.05)


def test_paired_delong_on_identical_scores_and_bootstrap_difference():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(40, int), np.zeros(40, int)]
    a = np.r_[rng.normal(1, 1, 40), rng.normal(0, 1, 40)]
    b = a + rng.normal(0, 2, 80)
    same = st.delong_test(y, a, a)
    assert same.statistic == 0.0 and same.p_value == 1.0
    d = st.delong_test(y, a, b)
    boot = st.paired_bootstrap_test(y, a, b, n_boot=2000, random_state=1)
    assert boot.estimate == pytest.approx(d.difference)
    assert (boot.p_value < 0.05) == (d.p_value < 0.05)
    # Seeded: same seed, same result.
    assert st.paired_bootstrap_test(y, a, b, n_boot=200, random_state=3) == st.paired_bootstrap_test(
        y, a, b, n_boot=200, random_state=3
    )


@pytest.mark.parametrize(
    ("y", "match"),
    [([1, 0, 0, 0], "at least 2 cases"), ([1, 1, 1, 0], "2 controls"), ([1, 2, 0, 0], "binary")],
)
def test_sensible_errors(y, match):
    with pytest.raises(ValueError, match=match):
        st.roc_auc(np.array(y), np.array([0.1, 0.2, 0.3, 0.4]))


def test_auto_direction_is_reported_not_hidden():
    y = np.array([1, 1, 1, 0, 0, 0])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert st.roc_auc(y, s).auc == 0.0  # explicit "<": no silent flip
    auto = st.roc_auc(y, s, direction="auto")
    assert auto.direction == ">" and auto.auc == 1.0


def test_threshold_metrics_cis_and_cutoffs():
    y = np.r_[np.ones(50, int), np.zeros(50, int)]
    s = np.r_[np.linspace(0.3, 1.0, 50), np.linspace(0.0, 0.7, 50)]
    from statsmodels.stats.proportion import proportion_confint

    m = st.threshold_metrics(y, s, 0.5, ci_method="wilson")
    cp = st.threshold_metrics(y, s, 0.5, ci_method="clopper-pearson")
    positive = s >= 0.5  # pROC's rule
    counts = {
        "sensitivity": ((positive & (y == 1)).sum(), (y == 1).sum()),
        "specificity": ((~positive & (y == 0)).sum(), (y == 0).sum()),
        "accuracy": ((positive == (y == 1)).sum(), len(y)),
        "ppv": ((positive & (y == 1)).sum(), positive.sum()),
        "npv": ((~positive & (y == 0)).sum(), (~positive).sum()),
    }
    for metric, (k, n) in counts.items():  # an independent implementation: statsmodels
        assert m.table.loc[metric, "estimate"] == pytest.approx(k / n)
        lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert (m.table.loc[metric, "ci_lower"], m.table.loc[metric, "ci_upper"]) == pytest.approx((lo, hi))
        lo, hi = proportion_confint(k, n, alpha=0.05, method="beta")
        assert (cp.table.loc[metric, "ci_lower"], cp.table.loc[metric, "ci_upper"]) == pytest.approx((lo, hi))
    assert 0.3 < st.youden_threshold(y, s) < 0.7
    assert st.median_threshold(s[:50]) == pytest.approx(0.65)
    with pytest.raises(ValueError, match="ci_method"):
        st.threshold_metrics(y, s, 0.5, ci_method="wald")


def test_calibration_of_a_perfectly_calibrated_model():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, 20000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    cal = st.calibration_intercept_slope(y, p)
    assert cal.slope_ci[0] < 1 < cal.slope_ci[1]
    assert cal.intercept_ci[0] < 0 < cal.intercept_ci[1]
    over = st.calibration_intercept_slope(y, np.clip(p**0.5, 0, 1))  # overconfident high risks
    assert over.intercept < 0
    curve = st.reliability_curve(y, p, n_bins=10)
    assert np.allclose(curve["observed"], curve["mean_predicted"], atol=0.03)
    chi2, pval, df = st.hosmer_lemeshow(y, p)
    assert df == 8 and pval > 0.001
    assert st.brier_score(y, p) < st.brier_score(y, np.full_like(p, 0.5))
    with pytest.raises(ValueError, match="probabilities"):
        st.brier_score(y, p * 3)


def test_net_benefit_of_perfect_model_is_prevalence():
    y = np.r_[np.ones(30), np.zeros(70)]
    nb = st.net_benefit(y, y.copy(), [0.1, 0.5, 0.9])
    assert np.allclose(nb, 0.3)
    dc = st.decision_curve(y, {"perfect": y.copy()}, [0.2])
    treat_all = dc[dc.label == "Treat All"].net_benefit.iloc[0]
    assert treat_all == pytest.approx(0.3 - 0.7 * 0.25)
