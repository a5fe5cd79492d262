"""Cohort description: "Table 1" of clinical variables and univariate comparisons of feature groups
between the classes of a label (or across cohorts, which shows cohort shift).

Tests follow the variable's type, with R's defaults (:mod:`models.stats`):

* a number, two groups: Mann–Whitney (``wilcox.test``), effect = AUC = P(value in the second group >
  value in the first) with DeLong CI; ``parametric``: Welch's t (``t.test``), effect = difference in
  means with its CI;
* a number, three or more groups: Kruskal–Wallis (``kruskal.test``), effect ε² = H/(n−1);
  ``parametric``: Welch's ANOVA (``oneway.test``), effect η²; CIs by stratified percentile bootstrap;
* a category, 2 × 2: Fisher's exact test, conditional odds ratio with exact CI (``fisher.test``);
  larger tables: Pearson's χ² (``chisq.test``), or a Monte-Carlo permutation p of χ² when an expected
  count is below 5; effect Cramér's V with bootstrap CI.

Feature comparisons are adjusted by Benjamini–Hochberg over the features compared for one label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models import stats as st
from models.results import benjamini_hochberg
from models.results import format_p as _fmt_p

__all__ = [
    "FEATURE_GROUPS",
    "feature_group_columns",
    "clinical_variables",
    "compare_variable",
    "table_one",
    "compare_features",
    "Description",
    "describe",
    "write_description",
]

#: Named feature groups (column regular expressions; see docs/columns.md).
FEATURE_GROUPS: dict[str, str] = {
    "metabolic": (
        r"^pet_tumour_suv_(SUVmax|SUVmean|SUVpeak|SUVpeak_global|VOI_ml|MTV\w*|SUVmean_MTV\w*|TLG\w*)$"
    ),
    "heterogeneity": (
        r"^(pet_tumour_suv_(SUVsd|CoV|HI|HF|AUC_CSH|V10|V90|I10|I90)|hab_(ith|diversity|msi)_\w+)$"
    ),
    "habitat": r"^(hab_(?!k$)|ct_hab\d|pet_hab\d)",
    "ct_radiomics": r"^ct_tumour_",
    "pet_radiomics": r"^pet_tumour_(?!suv_)",
}
#: Groups compared when none is named.
DEFAULT_GROUPS = ("metabolic", "heterogeneity", "habitat")
N_BOOT = 500
MC_PERMUTATIONS = 10_000


def feature_group_columns(columns, groups) -> dict[str, str]:
    """``{column: group}`` for the columns matching each named group (or a regular expression given
    in place of a name); the first matching group wins."""
    out: dict[str, str] = {}
    for group in groups:
        pattern = re.compile(FEATURE_GROUPS.get(group, group))
        for col in columns:
            if isinstance(col, str) and col not in out and pattern.search(col):
                out[col] = group
    return out


def clinical_variables(frame: pd.DataFrame, exclude=()) -> list[str]:
    """Columns of a radfeat table that describe the patients (not paths, ids, features or diagnostics):
    numbers, or text with at most 20 levels."""
    from radfeat.manifest import RESERVED_COLUMNS
    from radfeat.table import feature_columns

    skip = ((set(RESERVED_COLUMNS) | set(feature_columns(frame))) - {"cohort"}) | set(exclude)
    out = []
    for col in frame.columns:
        if col in skip or str(col).startswith(("diagnostics_", "hab_", "Unnamed")):
            continue
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values) or values.dropna().astype(str).nunique() <= 20:
            out.append(col)
    return out


def _levels(values: pd.Series) -> list:
    present = values.dropna().unique().tolist()
    try:
        return sorted(present)
    except TypeError:
        return sorted(present, key=str)


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and values.dropna().nunique() > 2


def _bootstrap(groups: list[np.ndarray], statistic, seed: int, n_boot: int = N_BOOT) -> tuple[float, float]:
    """Percentile CI of ``statistic(groups)`` resampling within each group (stratified)."""
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        sample = [g[rng.integers(0, len(g), len(g))] for g in groups]
        with np.errstate(all="ignore"):
            value = statistic(sample)
        if np.isfinite(value):
            reps.append(value)
    if len(reps) < n_boot // 2:
        return float("nan"), float("nan")
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return float(lo), float(hi)


def _eta_squared(groups: list[np.ndarray]) -> float:
    values = np.concatenate(groups)
    total = ((values - values.mean()) ** 2).sum()
    between = sum(len(g) * (g.mean() - values.mean()) ** 2 for g in groups)
    return float(between / total) if total > 0 else float("nan")


def _epsilon_squared(groups: list[np.ndarray]) -> float:
    if len({float(v) for g in groups for v in g}) < 2:
        return float("nan")
    return st.kruskal_test(*groups).extra["epsilon_squared"]


def _cramers_v(codes: np.ndarray, groups: np.ndarray) -> float:
    table = pd.crosstab(codes, groups).to_numpy()
    if min(table.shape) < 2:
        return float("nan")
    return st.chisq_test(table, correct=False).extra["cramers_v"]


def _result(test, statistic, p, effect, effect_size, ci_low, ci_high) -> dict:
    return {
        "test": test,
        "statistic": statistic,
        "p": p,
        "effect": effect,
        "effect_size": effect_size,
        "ci_low": ci_low,
        "ci_high": ci_high,
    }


def compare_variable(
    values: pd.Series, groups: pd.Series, *, parametric: bool = False, seed: int = 0
) -> dict:
    """One variable across the groups: ``{test, statistic, p, effect, effect_size, ci_low, ci_high}``
    (see the module docstring); missing values of either are left out."""
    keep = values.notna().to_numpy() & groups.notna().to_numpy()
    values, groups = values[keep], groups[keep]
    levels = _levels(groups)
    out = _result("", np.nan, np.nan, "", np.nan, np.nan, np.nan)  # not testable: the reason as "test"
    if len(levels) < 2:
        return {**out, "test": "one group only"}
    if _is_numeric(values):
        parts = [values[groups == g].to_numpy(float) for g in levels]
        if min(len(p) for p in parts) < 2:
            return {**out, "test": "a group has fewer than 2 values"}
        if len(levels) == 2:
            if parametric:
                res = st.welch_t_test(parts[1], parts[0])
                return _result(
                    "Welch t-test",
                    res.statistic,
                    res.p_value,
                    f"mean difference ({levels[1]} − {levels[0]})",
                    res.extra["estimate"],
                    res.extra["ci_lower"],
                    res.extra["ci_upper"],
                )
            res = st.mann_whitney_test(parts[1], parts[0])
            y = np.r_[np.ones(len(parts[1])), np.zeros(len(parts[0]))]
            auc = st.roc_auc(y, np.r_[parts[1], parts[0]])
            return _result(
                "Mann-Whitney U",
                res.statistic,
                res.p_value,
                f"AUC = P({levels[1]} > {levels[0]})",
                auc.auc,
                auc.ci_lower,
                auc.ci_upper,
            )
        if parametric:
            res = st.welch_anova(*parts)
            lo, hi = _bootstrap(parts, _eta_squared, seed)
            return _result("Welch ANOVA", res.statistic, res.p_value, "η²", _eta_squared(parts), lo, hi)
        res = st.kruskal_test(*parts)
        lo, hi = _bootstrap(parts, _epsilon_squared, seed)
        return _result(
            "Kruskal-Wallis", res.statistic, res.p_value, "ε²", res.extra["epsilon_squared"], lo, hi
        )
    codes = values.astype(str).to_numpy()
    table = pd.crosstab(codes, groups.astype(str).to_numpy()).to_numpy()
    if table.shape[0] < 2:
        return {**out, "test": "one level only"}
    if table.shape == (2, 2):
        res = st.fisher_test(table)
        row_levels = sorted(set(codes))
        return _result(
            "Fisher's exact test",
            res.statistic,
            res.p_value,
            f"odds ratio of {row_levels[1]} ({levels[1]} vs {levels[0]})",
            res.extra["odds_ratio"],
            res.extra["ci_lower"],
            res.extra["ci_upper"],
        )
    res = st.chisq_test(table, correct=False)
    test, p = "Pearson's χ²", res.p_value
    labels = groups.astype(str).to_numpy()
    if res.extra["min_expected"] < 5:
        test, p = "χ² (Monte-Carlo p: an expected count < 5)", _monte_carlo_chi2(codes, labels, seed)
    by_group = [codes[labels == g] for g in sorted(set(labels))]
    lo, hi = _bootstrap(
        by_group,
        lambda parts: _cramers_v(
            np.concatenate(parts), np.repeat(np.arange(len(parts)), [len(x) for x in parts])
        ),
        seed,
    )
    return _result(test, res.statistic, p, "Cramér's V", res.extra["cramers_v"], lo, hi)


def _chi2(table: np.ndarray) -> float:
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    with np.errstate(all="ignore"):
        return float(np.nansum((table - expected) ** 2 / expected))


def _monte_carlo_chi2(codes: np.ndarray, labels: np.ndarray, seed: int, n: int = MC_PERMUTATIONS) -> float:
    """Permutation p of Pearson's χ² with the margins fixed, as R's ``chisq.test(simulate.p.value=TRUE)``:
    (1 + #{χ²_perm ≥ χ²_obs}) / (1 + n)."""
    rows = np.unique(codes, return_inverse=True)[1]
    cols = np.unique(labels, return_inverse=True)[1]
    shape = (rows.max() + 1, cols.max() + 1)
    observed = _chi2(np.bincount(rows * shape[1] + cols, minlength=shape[0] * shape[1]).reshape(shape))
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n):
        perm = rng.permutation(cols)
        table = np.bincount(rows * shape[1] + perm, minlength=shape[0] * shape[1]).reshape(shape)
        hits += _chi2(table) >= observed - 1e-9
    return (1 + hits) / (1 + n)


def _summary(values: pd.Series, parametric: bool) -> str:
    v = values.dropna().astype(float)
    if not len(v):
        return "—"
    if parametric:
        return f"{v.mean():.3g} ± {v.std():.3g}"
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return f"{med:.3g} [{q1:.3g}–{q3:.3g}]"


def table_one(
    frame: pd.DataFrame, by: str, variables, *, parametric: bool = False, seed: int = 0
) -> pd.DataFrame:
    """ "Table 1": one row per numeric variable (median [IQR] or mean ± SD) and per level of a
    categorical one (n (%) of the column's cases), per group of ``by`` and overall, with the test,
    p and effect size (CI) on the variable's first row."""
    groups = frame[by]
    levels = _levels(groups)
    rows = []
    for var in variables:
        if var == by or var not in frame.columns:
            continue
        values = frame[var]
        result = compare_variable(values, groups, parametric=parametric, seed=seed)
        base = {"variable": var, "level": "", "missing": int(values.isna().sum())}
        numbers = {k: result[k] for k in ("test", "p", "effect", "effect_size", "ci_low", "ci_high")}
        if _is_numeric(values):
            cells = {f"{by}={g}": _summary(values[groups == g], parametric) for g in levels}
            rows.append({**base, "overall": _summary(values, parametric), **cells, **numbers})
            continue
        text = values.astype("string")
        for i, level in enumerate(_levels(text)):
            cells = {}
            for g in levels:
                part = text[groups == g].dropna()
                cells[f"{by}={g}"] = (
                    f"{int((part == level).sum())} ({(part == level).mean():.0%})" if len(part) else "—"
                )
            overall = text.dropna()
            rows.append(
                {
                    **base,
                    "level": str(level),
                    "overall": f"{int((overall == level).sum())} ({(overall == level).mean():.0%})",
                    **cells,
                    **(numbers if i == 0 else {}),
                }
            )
    return pd.DataFrame(rows)


def compare_features(
    frame: pd.DataFrame, by: str, columns: dict[str, str], *, parametric: bool = False, seed: int = 0
) -> pd.DataFrame:
    """Per feature (``{column: group}``): group medians, test, p, Benjamini–Hochberg q over these
    features, effect size and CI; sorted by p."""
    groups = frame[by]
    levels = _levels(groups)
    rows = []
    for col, group in columns.items():
        values = pd.to_numeric(frame[col], errors="coerce")
        result = compare_variable(values, groups, parametric=parametric, seed=seed)
        medians = {f"median {by}={g}": float(values[groups == g].median()) for g in levels}
        rows.append({"feature": col, "group": group, **medians, **result})
    out = pd.DataFrame(rows)
    if len(out):
        p = out["p"].fillna(1.0).to_numpy()
        out["q"] = benjamini_hochberg(p)
        out = out.sort_values(["p", "feature"], kind="stable").reset_index(drop=True)
    return out


@dataclass
class Description:
    """Per ``by`` column: its Table 1 and its feature comparisons, and notes (cases left out)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    features: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    parametric: bool = False


def describe(
    frame: pd.DataFrame,
    by: list[str],
    *,
    variables: list[str] | None = None,
    groups=DEFAULT_GROUPS,
    parametric: bool = False,
    seed: int = 0,
) -> Description:
    """Table 1 and feature comparisons for each column of ``by`` (a label, the subtype, the cohort).

    ``variables``: the Table 1 rows (default :func:`clinical_variables`); ``groups``: feature groups
    (:data:`FEATURE_GROUPS` names or regular expressions).
    """
    from models.data import MISSING_TOKENS

    out = Description(parametric=parametric)
    for column in by:
        if column not in frame.columns:
            raise ValueError(
                f"--by column {column!r} is not in the table; columns include {list(frame.columns)[:12]}"
            )
    columns = feature_group_columns(frame.columns, groups)
    for column in by:
        part = frame.copy()
        text = part[column].astype("string").str.strip()
        missing = text.isna() | text.str.lower().isin(MISSING_TOKENS).fillna(True)
        if missing.any():
            out.notes.append(f"{column}: {int(missing.sum())} case(s) without a value left out")
        part = part.loc[~missing.to_numpy()].reset_index(drop=True)
        if not pd.api.types.is_numeric_dtype(part[column]):
            part[column] = part[column].astype(str).str.strip()
        chosen = variables if variables is not None else clinical_variables(part, exclude=[column])
        out.tables[column] = table_one(part, column, chosen, parametric=parametric, seed=seed)
        out.features[column] = compare_features(part, column, columns, parametric=parametric, seed=seed)
    if not columns:
        out.notes.append(f"no feature column matches the groups {list(groups)}")
    return out


def _fmt_effect(row) -> str:
    value = row.get("effect_size", np.nan)
    if value is None or np.isnan(value):
        return ""
    low, high = row.get("ci_low", np.nan), row.get("ci_high", np.nan)
    ci = f" ({low:.3g}–{high:.3g})" if not (np.isnan(low) or np.isnan(high)) else ""
    return f"{row['effect']} {row['effect_size']:.3g}{ci}"


def _readable_table_one(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.copy()
    shown["p"] = [_fmt_p(v) if isinstance(v, float) else "" for v in shown.get("p", [])]
    shown["effect (95% CI)"] = [_fmt_effect(r) for _, r in table.iterrows()]
    return shown.drop(
        columns=[c for c in ("effect", "effect_size", "ci_low", "ci_high") if c in shown]
    ).fillna("")


def _readable_features(features: pd.DataFrame, top: int) -> pd.DataFrame:
    head = features.head(top)
    shown = head[["feature", "group", *[c for c in head.columns if c.startswith("median ")], "test"]].copy()
    for c in shown.columns:
        if c.startswith("median "):
            shown[c] = head[c].map("{:.3g}".format)
    shown["p"] = head["p"].map(_fmt_p)
    shown["q (BH)"] = head["q"].map(_fmt_p)
    shown["effect (95% CI)"] = [_fmt_effect(r) for _, r in head.iterrows()]
    return shown


def _feature_figure(frame: pd.DataFrame, by: str, features: list[str]):
    import matplotlib.pyplot as plt

    n = len(features)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
    levels = _levels(frame[by])
    rng = np.random.default_rng(0)
    for ax, feat in zip(axes.ravel(), features, strict=False):
        parts = [
            pd.to_numeric(frame.loc[frame[by] == g, feat], errors="coerce").dropna().to_numpy()
            for g in levels
        ]
        shown = [i for i, p in enumerate(parts) if len(p) > 1]
        if shown:
            ax.violinplot([parts[i] for i in shown], positions=shown, showextrema=False)
            ax.boxplot([parts[i] for i in shown], positions=shown, widths=0.18, showfliers=False)
        for i, p in enumerate(parts):
            ax.scatter(i + rng.uniform(-0.08, 0.08, len(p)), p, s=6, alpha=0.5, color="k")
        ax.set_xticks(range(len(levels)), [str(g) for g in levels], fontsize=8)
        ax.set_title(feat.replace("_tumour", "").replace("_original", ""), fontsize=7.5)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"Features that differ most by {by}", fontsize=10)
    fig.tight_layout()
    return fig


def write_description(
    description: Description,
    frame: pd.DataFrame,
    out_dir,
    *,
    title: str = "Cohort description",
    top: int = 15,
) -> dict:
    """Write per ``by`` column ``table1_<by>.csv``, ``features_<by>.csv`` and ``features_<by>.png``/``.svg``
    (violin + box plots of the six features with the smallest p), and ``report.md`` / ``report.html``."""
    import html
    from pathlib import Path

    import matplotlib.pyplot as plt

    from models.figures import save
    from radfeat.utils.atomic import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict = {}
    kind = (
        "mean ± SD; Welch t / Welch ANOVA"
        if description.parametric
        else "median [IQR]; Mann–Whitney / Kruskal–Wallis"
    )
    lines = [
        f"# {title}",
        "",
        f"Numbers: {kind}; categories: n (%), Fisher's exact test (2 × 2) or Pearson's χ² (Monte-Carlo p "
        "when an expected count is below 5). Effect sizes with 95 % CIs (DeLong for AUC, exact for the odds "
        "ratio, t for mean differences, stratified bootstrap otherwise). Feature p-values are adjusted by "
        "Benjamini–Hochberg over the features compared for each column (q).",
        "",
    ]
    body = f"<p>{html.escape(lines[2])}</p>"
    for by, table in description.tables.items():
        stem = "".join(ch if ch.isalnum() else "_" for ch in by)
        features = description.features[by]
        paths[f"table1_{stem}"] = out / f"table1_{stem}.csv"
        write_text(table.to_csv(index=False), paths[f"table1_{stem}"])
        paths[f"features_{stem}"] = out / f"features_{stem}.csv"
        write_text(features.to_csv(index=False), paths[f"features_{stem}"])
        t1 = _readable_table_one(table) if len(table) else pd.DataFrame()
        lines += [
            f"## By `{by}`",
            "",
            "### Table 1",
            "",
            t1.to_markdown(index=False) if len(t1) else "(no variables)",
            "",
        ]
        body += f"<h2>By {html.escape(by)}</h2><h3>Table 1</h3>" + (
            t1.to_html(index=False) if len(t1) else ""
        )
        if len(features):
            n_sig = int((features["q"] < 0.05).sum())
            groups = ", ".join(f"{g} ({n})" for g, n in features["group"].value_counts().items())
            shown = _readable_features(features, top)
            lines += [
                f"### Features ({len(features)} compared: {groups}; {n_sig} with q < 0.05)",
                "",
                shown.to_markdown(index=False),
                "",
            ]
            body += f"<h3>Features: {n_sig} of {len(features)} with q &lt; 0.05</h3>" + shown.to_html(
                index=False
            )
            fig = _feature_figure(frame.loc[frame[by].notna()], by, list(features["feature"].head(6)))
            for ext in ("png", "svg"):
                paths[f"figure_{stem}_{ext}"] = out / f"features_{stem}.{ext}"
                save(fig, paths[f"figure_{stem}_{ext}"])
            plt.close(fig)
            lines += [f"![features by {by}](features_{stem}.png)", ""]
            body += f"<img src='features_{stem}.svg' width='820'>"
    if description.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in description.notes] + [""]
        body += "".join(f"<p>{html.escape(n)}</p>" for n in description.notes)
    paths["markdown"] = out / "report.md"
    write_text("\n".join(lines), paths["markdown"])
    paths["html"] = out / "report.html"
    write_text(
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>",
        paths["html"],
    )
    return paths
