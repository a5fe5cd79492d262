"""Intraclass correlation (Shrout & Fleiss 1979; McGraw & Wong 1996) with F tests and CIs.

Forms: ICC1 (one-way random), ICC2 (two-way random, absolute agreement), ICC3 (two-way mixed,
consistency) for single raters, and ICC1k/ICC2k/ICC3k for the mean of k raters. Values, F, df and CIs
match R's ``psych::ICC``.

References
----------
Shrout & Fleiss (1979), Psychol Bull 86:420-428. doi:10.1037/0033-2909.86.2.420
McGraw & Wong (1996), Psychol Methods 1:30-46. doi:10.1037/1082-989X.1.1.30
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["icc", "anova_mean_squares", "icc_by_feature", "select_stable_features"]

ICC_FORMS = ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k")


def _to_matrix(data, targets: str | None, raters: str | None, ratings: str | None) -> np.ndarray:
    if isinstance(data, pd.DataFrame) and targets is not None:
        wide = data.pivot_table(index=targets, columns=raters, values=ratings, aggfunc="first")
        return wide.to_numpy(dtype=float)
    return np.asarray(data, dtype=float)


def anova_mean_squares(matrix: np.ndarray) -> dict[str, float]:
    """Two-way ANOVA mean squares of an (n targets, k raters) matrix: BMS, WMS, JMS, EMS."""
    x = np.asarray(matrix, float)
    if x.ndim != 2 or np.isnan(x).any():
        raise ValueError("ICC needs a complete (n_targets, k_raters) matrix without missing ratings")
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_total = ((x - grand) ** 2).sum()
    ss_within = ss_total - ss_rows
    ss_error = ss_total - ss_rows - ss_cols
    return {
        "BMS": ss_rows / (n - 1),
        "WMS": ss_within / (n * (k - 1)),
        "JMS": ss_cols / (k - 1),
        "EMS": ss_error / ((n - 1) * (k - 1)),
    }


def icc(
    data,
    targets: str | None = None,
    raters: str | None = None,
    ratings: str | None = None,
    *,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """All six ICC forms with F, df1, df2, p-value and CI.

    Parameters
    ----------
    data : array-like of shape (n_targets, k_raters) or long DataFrame
        With a long DataFrame give the ``targets``, ``raters`` and ``ratings`` column names.

    Returns
    -------
    DataFrame indexed by form (ICC1, ICC2, ICC3, ICC1k, ICC2k, ICC3k) with columns
    ICC, F, df1, df2, pval, ci_lower, ci_upper.
    """
    x = _to_matrix(data, targets, raters, ratings)
    n, k = x.shape
    if n < 2 or k < 2:
        raise ValueError(f"ICC needs at least 2 targets and 2 raters, got {n} × {k}")
    ms = anova_mean_squares(x)
    bms, wms, jms, ems = ms["BMS"], ms["WMS"], ms["JMS"], ms["EMS"]
    alpha = 1 - conf_level
    df_one = (n - 1, n * (k - 1))
    df_two = (n - 1, (n - 1) * (k - 1))

    icc1 = (bms - wms) / (bms + (k - 1) * wms)
    icc2 = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    icc3 = (bms - ems) / (bms + (k - 1) * ems)
    icc1k = (bms - wms) / bms
    icc2k = (bms - ems) / (bms + (jms - ems) / n)
    icc3k = (bms - ems) / bms

    f1 = bms / wms
    f3 = bms / ems
    f1_lo = f1 / stats.f.ppf(1 - alpha / 2, *df_one)
    f1_hi = f1 * stats.f.ppf(1 - alpha / 2, df_one[1], df_one[0])
    f3_lo = f3 / stats.f.ppf(1 - alpha / 2, *df_two)
    f3_hi = f3 * stats.f.ppf(1 - alpha / 2, df_two[1], df_two[0])

    # ICC2: Satterthwaite-type df for the CI (McGraw & Wong 1996, as psych::ICC).
    fj = jms / ems
    vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    vd = (n - 1) * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    v = vn / vd
    f_u = stats.f.ppf(1 - alpha / 2, n - 1, v)
    f_l = stats.f.ppf(1 - alpha / 2, v, n - 1)
    icc2_lo = n * (bms - f_u * ems) / (f_u * (k * jms + (k * n - k - n) * ems) + n * bms)
    icc2_hi = n * (f_l * bms - ems) / (k * jms + (k * n - k - n) * ems + n * f_l * bms)

    rows = {
        "ICC1": (icc1, f1, *df_one, (f1_lo - 1) / (f1_lo + k - 1), (f1_hi - 1) / (f1_hi + k - 1)),
        "ICC2": (icc2, f3, *df_two, icc2_lo, icc2_hi),
        "ICC3": (icc3, f3, *df_two, (f3_lo - 1) / (f3_lo + k - 1), (f3_hi - 1) / (f3_hi + k - 1)),
        "ICC1k": (icc1k, f1, *df_one, 1 - 1 / f1_lo, 1 - 1 / f1_hi),
        "ICC2k": (
            icc2k,
            f3,
            *df_two,
            icc2_lo * k / (1 + icc2_lo * (k - 1)),
            icc2_hi * k / (1 + icc2_hi * (k - 1)),
        ),
        "ICC3k": (icc3k, f3, *df_two, 1 - 1 / f3_lo, 1 - 1 / f3_hi),
    }
    out = pd.DataFrame.from_dict(
        rows, orient="index", columns=["ICC", "F", "df1", "df2", "ci_lower", "ci_upper"]
    )
    out.insert(4, "pval", stats.f.sf(out["F"], out["df1"], out["df2"]))
    out.attrs["satterthwaite_df"] = v
    out.attrs["mean_squares"] = ms
    return out


def icc_by_feature(
    table: pd.DataFrame,
    targets: str,
    raters: str,
    features: list[str] | None = None,
    *,
    form: str = "ICC2",
) -> pd.Series:
    """ICC of every feature column across raters (readers, segmentations, perturbations).

    ``table`` is long: one row per (target, rater) with feature columns. Returns a Series of ICCs
    indexed by feature; NaN for a feature without between-target variance.
    """
    if form not in ICC_FORMS:
        raise ValueError(f"form must be one of {ICC_FORMS}, got {form!r}")
    features = features or [c for c in table.columns if c not in (targets, raters)]
    values = {}
    for feature in features:
        matrix = table.pivot_table(index=targets, columns=raters, values=feature, aggfunc="first")
        with np.errstate(divide="ignore", invalid="ignore"):
            values[feature] = float(icc(matrix.to_numpy(float)).loc[form, "ICC"])
    return pd.Series(values, name=form)


def select_stable_features(
    table: pd.DataFrame,
    targets: str,
    raters: str,
    features: list[str] | None = None,
    *,
    threshold: float = 0.75,
    form: str = "ICC2",
) -> list[str]:
    """Feature columns whose ICC (default ICC(2,1), absolute agreement) is at least ``threshold``."""
    scores = icc_by_feature(table, targets, raters, features, form=form)
    return scores[scores >= threshold].index.tolist()
