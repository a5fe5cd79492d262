"""Survival analysis matching R's ``survival``: Kaplan–Meier (log CI), median, log-rank, Cox PH.

Cox models use statsmodels' PHReg (Efron or Breslow ties); no lifelines dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "kaplan_meier",
    "km_median",
    "LogRankResult",
    "logrank_test",
    "CoxResult",
    "cox_ph",
    "ConcordanceResult",
    "harrell_c",
]


def kaplan_meier(time, event, *, conf_level: float = 0.95) -> pd.DataFrame:
    """Kaplan–Meier estimate at each distinct event time, with R's default ``conf.type="log"`` CI.

    Returns columns time, n_risk, n_event, n_censor, survival, std_err (Greenwood SE of S),
    ci_lower, ci_upper (upper capped at 1; NaN where S = 0).
    """
    t = np.asarray(time, float)
    d = np.asarray(event).astype(bool)
    if t.shape != d.shape:
        raise ValueError("time and event must have the same length")
    times = np.unique(t)
    z = stats.norm.ppf(0.5 + conf_level / 2)
    rows, s, green = [], 1.0, 0.0
    for ti in times:
        at = t == ti
        n_risk = int((t >= ti).sum())
        n_event = int((at & d).sum())
        n_censor = int((at & ~d).sum())
        if n_event:
            s *= 1 - n_event / n_risk
            green += n_event / (n_risk * (n_risk - n_event)) if n_risk > n_event else np.inf
        rows.append((ti, n_risk, n_event, n_censor, s, green))
    out = pd.DataFrame(rows, columns=["time", "n_risk", "n_event", "n_censor", "survival", "_g"])
    with np.errstate(invalid="ignore", over="ignore"):
        se_log = np.sqrt(out["_g"].to_numpy())
        surv = out["survival"].to_numpy()
        out["std_err"] = surv * se_log
        lower = surv * np.exp(-z * se_log)
        upper = np.minimum(1.0, surv * np.exp(z * se_log))
    valid = (surv > 0) & np.isfinite(se_log)
    out["ci_lower"] = np.where(valid, lower, np.nan)
    out["ci_upper"] = np.where(valid, upper, np.nan)
    return out.drop(columns="_g")


def km_median(time, event, *, conf_level: float = 0.95) -> tuple[float, float, float]:
    """Median survival and its CI as R's ``print.survfit``: (median, lower, upper); NaN when not reached.

    The median is the first time S(t) <= 0.5 (the midpoint to the next event time when S equals 0.5
    exactly on an interval); the CI limits are the first times the upper / lower CI bound <= 0.5.
    """
    km = kaplan_meier(time, event, conf_level=conf_level)
    km = km[km["n_event"] > 0]

    def first_below(values: np.ndarray) -> float:
        idx = np.flatnonzero(values <= 0.5 + 1e-12)
        if idx.size == 0:
            return float("nan")
        i = idx[0]
        if abs(values[i] - 0.5) < 1e-12 and i + 1 < len(values):
            return float((km["time"].iloc[i] + km["time"].iloc[i + 1]) / 2)
        return float(km["time"].iloc[i])

    upper_band = km["ci_upper"].fillna(0.0).to_numpy()
    lower_band = km["ci_lower"].fillna(0.0).to_numpy()
    return first_below(km["survival"].to_numpy()), first_below(lower_band), first_below(upper_band)


@dataclass(frozen=True)
class LogRankResult:
    """Log-rank test (R ``survdiff``, rho = 0): chi² with groups − 1 df, observed and expected events."""

    chisq: float
    p_value: float
    df: int
    observed: pd.Series
    expected: pd.Series
    variance: np.ndarray


def logrank_test(time, event, group) -> LogRankResult:
    """Log-rank test of equal survival across the levels of ``group``."""
    t = np.asarray(time, float)
    d = np.asarray(event).astype(bool)
    g = np.asarray(group)
    levels = pd.unique(g)
    if len(levels) < 2:
        raise ValueError("log-rank needs at least two groups")
    k = len(levels)
    obs, exp = np.zeros(k), np.zeros(k)
    var = np.zeros((k, k))
    for ti in np.unique(t[d]):
        at_risk = t >= ti
        n = at_risk.sum()
        events = (t == ti) & d
        dt = events.sum()
        n_g = np.array([(at_risk & (g == lv)).sum() for lv in levels], float)
        d_g = np.array([(events & (g == lv)).sum() for lv in levels], float)
        obs += d_g
        exp += dt * n_g / n
        if n > 1:
            factor = dt * (n - dt) / (n * n * (n - 1))
            var += factor * (np.diag(n_g * n) - np.outer(n_g, n_g))
    diff = (obs - exp)[:-1]
    chisq = float(diff @ np.linalg.solve(var[:-1, :-1], diff))
    return LogRankResult(
        chisq,
        float(stats.chi2.sf(chisq, k - 1)),
        k - 1,
        pd.Series(obs, index=levels),
        pd.Series(exp, index=levels),
        var,
    )


@dataclass(frozen=True)
class CoxResult:
    """Cox PH fit: per-covariate table (coef, hr, se, z, p, hr CI), log-likelihoods and LR test."""

    table: pd.DataFrame
    loglik: float
    loglik_null: float
    lr_chisq: float
    lr_p: float
    ties: str
    covariance: np.ndarray
    model: object


def cox_ph(
    data: pd.DataFrame,
    duration: str,
    event: str,
    covariates: list[str],
    *,
    ties: str = "efron",
    conf_level: float = 0.95,
) -> CoxResult:
    """Cox proportional-hazards model (statsmodels PHReg). ``ties``: ``"efron"`` (R's default) or
    ``"breslow"``. Wald z tests per covariate and the likelihood-ratio test against the null model.
    """
    from statsmodels.duration.hazard_regression import PHReg

    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', got {ties!r}")
    x = data[covariates].to_numpy(float)
    model = PHReg(data[duration].to_numpy(float), x, status=data[event].to_numpy(int), ties=ties)
    fit = model.fit()
    params, bse = np.asarray(fit.params), np.asarray(fit.bse)
    z = params / bse
    q = stats.norm.ppf(0.5 + conf_level / 2)
    table = pd.DataFrame(
        {
            "coef": params,
            "hr": np.exp(params),
            "se": bse,
            "z": z,
            "p": 2 * stats.norm.sf(np.abs(z)),
            "hr_ci_lower": np.exp(params - q * bse),
            "hr_ci_upper": np.exp(params + q * bse),
        },
        index=covariates,
    )
    ll = float(model.loglike(params))
    ll0 = float(model.loglike(np.zeros_like(params)))
    lr = 2 * (ll - ll0)
    return CoxResult(
        table,
        ll,
        ll0,
        lr,
        float(stats.chi2.sf(lr, len(covariates))),
        ties,
        np.asarray(fit.cov_params()),
        model,
    )


@dataclass(frozen=True)
class ConcordanceResult:
    """Harrell's C: concordant share of comparable pairs (ties in the score count ½), its
    infinitesimal-jackknife standard error (R ``survival::concordance``), normal CI, pair counts."""

    c_index: float
    std_err: float
    ci_lower: float
    ci_upper: float
    n_comparable: int
    conf_level: float


def harrell_c(time, event, score, *, conf_level: float = 0.95) -> ConcordanceResult:
    """Harrell's concordance of a risk ``score`` (higher = shorter survival) with censored times, as
    R's ``concordance()`` / the ``coxph`` summary: a pair is comparable when the earlier time is an
    event (an event and a censoring at the same time count, the censored case lasting longer; two
    events at the same time do not); a tie in the score counts ½. The standard error is the
    infinitesimal jackknife's, √Σᵢ(∂C/∂wᵢ)²; O(n²) memory in pairs of cases.
    """
    t = np.asarray(time, float)
    d = np.asarray(event).astype(bool)
    s = np.asarray(score, float)
    if not (t.shape == d.shape == s.shape):
        raise ValueError("time, event and score must have the same length")
    if np.isnan(t).any() or np.isnan(s).any():
        raise ValueError("time and score must not be missing")
    # comparable[i, j]: case i fails first (its event is observed), j lasts longer
    comparable = d[:, None] & ((t[:, None] < t[None, :]) | ((t[:, None] == t[None, :]) & ~d[None, :]))
    kernel = np.where(s[:, None] > s[None, :], 1.0, np.where(s[:, None] == s[None, :], 0.5, 0.0))
    kernel = kernel * comparable
    n_pairs = comparable.sum()
    if n_pairs == 0:
        raise ValueError(
            "no comparable pair: Harrell's C needs at least one observed event before another time"
        )
    c = kernel.sum() / n_pairs
    concordant_i = kernel.sum(axis=1) + kernel.sum(axis=0)
    pairs_i = comparable.sum(axis=1) + comparable.sum(axis=0)
    influence = (concordant_i - c * pairs_i) / n_pairs
    se = float(np.sqrt((influence**2).sum()))
    z = stats.norm.ppf(0.5 + conf_level / 2)
    return ConcordanceResult(
        float(c), se, float(max(0.0, c - z * se)), float(min(1.0, c + z * se)), int(n_pairs), conf_level
    )
