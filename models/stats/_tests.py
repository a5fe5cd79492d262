"""Classic tests with R-compatible defaults: McNemar, Fisher, Wilcoxon, Mann–Whitney, Spearman, Kendall.

Each returns a :class:`TestResult`; options are named as in R (``correct``, ``exact``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from scipy.stats.contingency import odds_ratio
from statsmodels.stats.contingency_tables import mcnemar as _sm_mcnemar

__all__ = [
    "TestResult",
    "mcnemar_test",
    "fisher_test",
    "wilcoxon_test",
    "mann_whitney_test",
    "spearman_test",
    "kendall_test",
    "welch_t_test",
    "welch_anova",
    "kruskal_test",
    "chisq_test",
]


@dataclass(frozen=True)
class TestResult:
    """A test statistic (named as R prints it), its p-value and extras (estimate, CI, method)."""

    statistic: float
    p_value: float
    method: str
    extra: dict = field(default_factory=dict)

    __test__ = False  # not a pytest class


def _check_alternative(alternative: str) -> str:
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    return alternative


def mcnemar_test(table, *, correct: bool = True, exact: bool = False) -> TestResult:
    """McNemar's test on a paired 2×2 table (R ``mcnemar.test`` default: χ² with continuity correction).

    Parameters
    ----------
    table : array-like of shape (2, 2)
        Counts; off-diagonal cells are the discordant pairs. Build it from two classifiers' correctness
        with ``pd.crosstab(correct_a, correct_b)``.
    exact : bool, default=False
        The exact binomial test instead (statsmodels' default, not R's).
    """
    table = np.asarray(table, dtype=float)
    if table.shape != (2, 2):
        raise ValueError(f"McNemar needs a 2×2 table, got shape {table.shape}")
    res = _sm_mcnemar(table, exact=exact, correction=correct)
    method = "exact binomial" if exact else ("chi2, continuity corrected" if correct else "chi2")
    return TestResult(float(res.statistic), float(res.pvalue), f"McNemar ({method})")


def fisher_test(table, *, alternative: str = "two-sided", conf_level: float = 0.95) -> TestResult:
    """Fisher's exact test with R's conditional maximum-likelihood odds ratio and its CI."""
    _check_alternative(alternative)
    table = np.asarray(table, dtype=np.int64)
    res = stats.fisher_exact(table, alternative=alternative)
    cond = odds_ratio(table, kind="conditional")
    ci = cond.confidence_interval(conf_level, alternative=alternative)
    return TestResult(
        float(cond.statistic),
        float(res.pvalue),
        "Fisher's exact test",
        {
            "odds_ratio": float(cond.statistic),
            "ci_lower": float(ci.low),
            "ci_upper": float(ci.high),
            "sample_odds_ratio": float(res.statistic),
        },
    )


def wilcoxon_test(
    x, y=None, *, alternative: str = "two-sided", exact: bool | None = None, correct: bool = True
) -> TestResult:
    """Wilcoxon signed-rank test as R's ``wilcox.test(x, y, paired=TRUE)``.

    The statistic is V = W+ (sum of ranks of positive differences x − y). ``exact=None`` follows R:
    exact when n < 50 and there are no ties or zeros, else the normal approximation with continuity
    correction (``correct``) and tie correction.
    """
    _check_alternative(alternative)
    d = np.asarray(x, float) - (0.0 if y is None else np.asarray(y, float))
    d = d[d != 0]
    ranks = stats.rankdata(np.abs(d))
    v = float(ranks[d > 0].sum())
    ties = len(np.unique(np.abs(d))) < d.size
    if exact is None:
        exact = d.size < 50 and not ties
    method = "exact" if exact else "asymptotic"
    res = stats.wilcoxon(d, alternative=alternative, method=method, correction=correct and not exact)
    label = "exact" if exact else ("normal approx., continuity corrected" if correct else "normal approx.")
    return TestResult(v, float(res.pvalue), f"Wilcoxon signed rank ({label})")


def mann_whitney_test(
    x, y, *, alternative: str = "two-sided", exact: bool | None = None, correct: bool = True
) -> TestResult:
    """Wilcoxon rank-sum / Mann–Whitney test as R's ``wilcox.test(x, y)``: W = U of ``x``.

    ``exact=None``: exact when both samples have < 50 values and no ties (R's rule). ``extra["auc"]``
    is W / (n_x n_y), the probability that x > y.
    """
    _check_alternative(alternative)
    x, y = np.asarray(x, float), np.asarray(y, float)
    ties = len(np.unique(np.concatenate([x, y]))) < x.size + y.size
    if exact is None:
        exact = x.size < 50 and y.size < 50 and not ties
    res = stats.mannwhitneyu(
        x,
        y,
        alternative=alternative,
        method="exact" if exact else "asymptotic",
        use_continuity=correct,
    )
    return TestResult(
        float(res.statistic),
        float(res.pvalue),
        "Mann-Whitney U (" + ("exact" if exact else "normal approx.") + ")",
        {"auc": float(res.statistic) / (x.size * y.size)},
    )


def _spearman_exact_sf(s_stat: float, n: int, lower: bool) -> float:
    """P(S <= s) (lower) or P(S >= s) by enumerating all n! rank permutations (n <= 9)."""
    base = np.arange(1, n + 1)
    s_all = np.fromiter(
        (int(((base - np.array(p)) ** 2).sum()) for p in itertools.permutations(base)),
        dtype=np.int64,
        count=math.factorial(n),
    )
    return float(np.mean(s_all <= s_stat + 1e-9) if lower else np.mean(s_all >= s_stat - 1e-9))


def _spearman_edgeworth_sf(s_stat: float, n: int, lower: bool) -> float:
    """AS 89 (Best & Roberts 1975) Edgeworth series for P(S >= s) (or <=), used for 9 < n < 1290."""
    n3 = n * (n * n - 1) / 3.0
    js = n3 - s_stat if lower else s_stat
    if js <= 0:
        return 1.0
    if js > n3:
        return 0.0
    c = (0.2274, 0.2531, 0.1745, 0.0758, 0.1033, 0.3932, 0.0879, 0.0151, 0.0072, 0.0831, 0.0131, 4.6e-4)
    b = 1.0 / n
    x = (6.0 * (js - 1) * b / (n * n - 1) - 1) * math.sqrt(1 / b - 1)
    y = x * x
    u = (
        x
        * b
        * (
            c[0]
            + b * (c[1] + c[2] * b)
            + y
            * (
                -c[3]
                + b * (c[4] + c[5] * b)
                - y * b * (c[6] + c[7] * b - y * (c[8] - c[9] * b + y * b * (c[10] - c[11] * y)))
            )
        )
    )
    p = u / math.exp(y / 2) + stats.norm.sf(x)
    return float(min(1.0, max(0.0, p)))


def spearman_test(x, y, *, alternative: str = "two-sided", exact: bool | None = None) -> TestResult:
    """Spearman's rho with R's p-value: exact for n < 1290 without ties (enumeration for n <= 9, AS 89
    Edgeworth series above), else the t approximation. ``extra["S"]`` = (n³ − n)(1 − rho) / 6.
    """
    _check_alternative(alternative)
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = x.size
    rho = float(stats.spearmanr(x, y).statistic)
    s_stat = (n**3 - n) * (1 - rho) / 6.0
    ties = len(np.unique(x)) < n or len(np.unique(y)) < n
    if exact is None:
        exact = n < 1290 and not ties
    if exact:
        tail = _spearman_exact_sf if n <= 9 else _spearman_edgeworth_sf
        p_greater = tail(s_stat, n, lower=True)  # rho large <=> S small
        p_less = tail(s_stat, n, lower=False)
        p = {"greater": p_greater, "less": p_less, "two-sided": min(1.0, 2 * min(p_greater, p_less))}[
            alternative
        ]
        method = "exact" if n <= 9 else "AS 89 Edgeworth"
    else:
        p = float(stats.spearmanr(x, y, alternative=alternative).pvalue)
        method = "t approximation"
    return TestResult(rho, float(p), f"Spearman's rho ({method})", {"S": s_stat})


def kendall_test(x, y, *, alternative: str = "two-sided") -> TestResult:
    """Kendall's tau-b; exact p-value without ties for small n (scipy's rule, as R)."""
    _check_alternative(alternative)
    res = stats.kendalltau(x, y, alternative=alternative)
    return TestResult(float(res.statistic), float(res.pvalue), "Kendall's tau")


def welch_t_test(x, y, *, conf_level: float = 0.95) -> TestResult:
    """Welch two-sample t-test as R's ``t.test(x, y)``: t, Welch–Satterthwaite df, two-sided p, and the
    CI of mean(x) − mean(y) (``extra``: ``estimate``, ``ci_lower``, ``ci_upper``, ``df``)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    res = stats.ttest_ind(x, y, equal_var=False)
    ci = res.confidence_interval(conf_level)
    return TestResult(
        float(res.statistic),
        float(res.pvalue),
        "Welch two-sample t-test",
        {
            "estimate": float(x.mean() - y.mean()),
            "ci_lower": float(ci.low),
            "ci_upper": float(ci.high),
            "df": float(res.df),
        },
    )


def welch_anova(*groups) -> TestResult:
    """Welch's one-way ANOVA (unequal variances) as R's ``oneway.test(y ~ g)``: F, df and p."""
    arrays = [np.asarray(g, float) for g in groups]
    res = stats.f_oneway(*arrays, equal_var=False)
    return TestResult(float(res.statistic), float(res.pvalue), "Welch one-way ANOVA")


def kruskal_test(*groups) -> TestResult:
    """Kruskal–Wallis rank-sum test as R's ``kruskal.test`` (tie-corrected χ² approximation);
    ``extra["epsilon_squared"]`` = H / (n − 1)."""
    arrays = [np.asarray(g, float) for g in groups]
    n = sum(a.size for a in arrays)
    res = stats.kruskal(*arrays)
    return TestResult(
        float(res.statistic),
        float(res.pvalue),
        "Kruskal-Wallis rank sum test",
        {"df": len(arrays) - 1, "epsilon_squared": float(res.statistic) / (n - 1) if n > 1 else 0.0},
    )


def chisq_test(table, *, correct: bool = True) -> TestResult:
    """Pearson's χ² test of independence as R's ``chisq.test`` (Yates' continuity correction for a
    2 × 2 table when ``correct``); ``extra``: df, smallest expected count, Cramér's V."""
    table = np.asarray(table, float)
    res = stats.chi2_contingency(table, correction=correct)
    n = table.sum()
    k = min(table.shape) - 1
    plain = stats.chi2_contingency(table, correction=False).statistic
    yates = table.shape == (2, 2) and correct
    return TestResult(
        float(res.statistic),
        float(res.pvalue),
        "Pearson's chi-squared test" + (" with Yates' continuity correction" if yates else ""),
        {
            "df": int(res.dof),
            "min_expected": float(res.expected_freq.min()),
            "cramers_v": float(np.sqrt(plain / (n * k))) if n and k else 0.0,
        },
    )
