"""Benchmark reports: a results table per family, comparisons declared in advance, figures, Markdown/HTML.

Per family the table gives the mean and SD over repeats of the AUC pooled over outer folds (the
protocol's headline figure) and, on the out-of-fold probability of each case averaged over repeats,
the AUC with its DeLong 95 % CI, ACC/SEN/SPEC with Wilson CIs at thresholds learned from each fold's
training part (:mod:`models.thresholds`), and the Brier score.

p-values are never computed against the best family chosen on the same predictions (a post-hoc
comparison). They test each family against a comparator **declared in advance** (``reference``: by
default ``suvmax`` when it was benchmarked), Holm-corrected over the families compared; the all-pairs
table (``pairwise.csv``) is Holm-corrected over all pairs.
"""

from __future__ import annotations

import html
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from models import stats
from models.cv import CVResult
from models.results import holm, result_row

__all__ = ["results_table", "pairwise_table", "baseline_columns", "write_report", "holm"]


def _cases(cv: CVResult, family: str, index=None) -> pd.DataFrame:
    cases = cv.case_scores(family).set_index("case_id")
    return cases if index is None else cases.loc[index]


def default_reference(cv: CVResult) -> str | None:
    """``suvmax`` when it was benchmarked (the field's standard comparator), else none."""
    return "suvmax" if "suvmax" in set(cv.predictions["family"]) else None


def results_table(
    cv: CVResult, cutoff: float | str = "training", reference: str | None = "default"
) -> pd.DataFrame:
    """One row per family (best mean AUC first).

    Parameters
    ----------
    cutoff : float or "training", default="training"
        ``"training"``: each outer fold's threshold learned on its training part (the training
        prevalence; case decisions from the mean margin over repeats). A number: a fixed probability
        cut-off declared in advance.
    reference : str or None, default="default"
        The comparator declared in advance for the paired DeLong test (``"default"``:
        :func:`default_reference`); ``None``: no p-values in this table (see :func:`pairwise_table`).
    """
    summary = cv.summary()
    if reference == "default":
        reference = default_reference(cv)
    if reference is not None and reference not in summary.index:
        raise ValueError(f"reference {reference!r} was not benchmarked; families: {list(summary.index)}")
    index = _cases(cv, summary.index[0]).index
    ref_cases = _cases(cv, reference, index) if reference else None
    rows = []
    for family, row in summary.iterrows():
        cases = _cases(cv, family, index)
        if cutoff == "training":
            margin = cases["margin"]
        else:  # a fixed cut-off declared in advance
            margin = cases["score"] - float(cutoff)
        reference_score = None
        if ref_cases is not None and family != reference:
            reference_score = ref_cases["score"]
        metrics = result_row(cases["y"], np.clip(cases["score"], 0, 1), margin, reference_score)
        metrics["auc_oof"] = metrics.pop("auc")
        rows.append(
            {
                "family": family,
                "mean_auc": row["mean_auc"],
                "sd_auc": row["sd_auc"],
                "n_repeats": int(row["n_repeats"]),
                **metrics,
            }
        )
    table = pd.DataFrame(rows).set_index("family")
    table["p_vs_reference_holm"] = holm(table["p_vs_reference"])
    table.attrs["cutoff"] = cutoff
    table.attrs["reference"] = reference
    return table


def pairwise_table(cv: CVResult) -> pd.DataFrame:
    """Paired DeLong test of every pair of families on the case-averaged predictions, Holm-corrected
    over all pairs (the exploratory comparison; declared comparisons are in :func:`results_table`)."""
    families = list(cv.summary().index)
    index = _cases(cv, families[0]).index
    cases = {f: _cases(cv, f, index) for f in families}
    rows = []
    for a, b in combinations(families, 2):
        y = cases[a]["y"]
        try:
            t = stats.delong_test(y, cases[a]["score"], cases[b]["score"])
            z, p = t.statistic, t.p_value
        except ValueError:
            z = p = np.nan
        rows.append(
            {
                "family_a": a,
                "family_b": b,
                "auc_a": stats.roc_auc(y, cases[a]["score"], direction="<").auc,
                "auc_b": stats.roc_auc(y, cases[b]["score"], direction="<").auc,
                "z": z,
                "p": p,
            }
        )
    table = pd.DataFrame(rows, columns=["family_a", "family_b", "auc_a", "auc_b", "z", "p"])
    table["p_holm"] = holm(table["p"]) if len(table) else []
    return table


def baseline_columns(cv: CVResult) -> dict[str, list[str]]:
    """The exact columns each baseline family (SUVmax alone, clinical, combined) used."""
    from models.zoo import BASELINES

    used = {}
    for family in sorted(set(cv.predictions["family"])):
        if family in BASELINES and BASELINES[family].columns is not None:
            used[family] = BASELINES[family].columns(cv.feature_names)
    return used


def _fmt(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=table.index)
    out["AUC mean ± SD (repeats)"] = [
        f"{m:.3f} ± {s:.3f}" if n > 1 else f"{m:.3f} (1 repeat)"
        for m, s, n in zip(table.mean_auc, table.sd_auc, table.n_repeats, strict=True)
    ]
    out["AUC (95% DeLong CI), case-averaged"] = [
        f"{a:.3f} ({lo:.3f}–{hi:.3f})"
        for a, lo, hi in zip(table.auc_oof, table.auc_ci_low, table.auc_ci_high, strict=True)
    ]
    out["ACC"] = table.accuracy.map("{:.2f}".format)
    out["SEN (95% CI)"] = [
        f"{v:.2f} ({lo:.2f}–{hi:.2f})"
        for v, lo, hi in zip(
            table.sensitivity, table.sensitivity_ci_low, table.sensitivity_ci_high, strict=True
        )
    ]
    out["SPEC (95% CI)"] = [
        f"{v:.2f} ({lo:.2f}–{hi:.2f})"
        for v, lo, hi in zip(
            table.specificity, table.specificity_ci_low, table.specificity_ci_high, strict=True
        )
    ]
    out["Brier"] = table.brier.map("{:.3f}".format)
    reference = table.attrs.get("reference")
    if reference:
        out[f"DeLong p vs {reference} (Holm)"] = [
            "—" if np.isnan(p) else f"{p:.3g} ({ph:.3g})"
            for p, ph in zip(table.p_vs_reference, table.p_vs_reference_holm, strict=True)
        ]
    return out


def _markdown(frame: pd.DataFrame, index: bool = True) -> str:
    return frame.to_markdown(index=index) if _has_tabulate() else frame.to_string(index=index)


def write_report(
    cv: CVResult,
    out_dir: str | Path,
    *,
    references: pd.DataFrame | None = None,
    cutoff: float | str = "training",
    reference: str | None = "default",
    dropped: dict[str, str] | None = None,
    notes: list[str] | None = None,
    top_roc: int = 5,
) -> dict[str, Path]:
    """Write ``results.csv``, ``pairwise.csv``, ``predictions.csv``, ``roc.png``, ``calibration.png``,
    ``report.md`` and ``report.html`` into ``out_dir``; return their paths.

    ``references``: optional rows (label, auc, note) printed next to our figures (e.g. published AUCs).
    ``reference``: the comparator declared in advance (see :func:`results_table`). ``dropped`` and
    ``notes``: columns left out of the model with the reason, and how values were read (both listed).
    """
    from models import figures
    from radfeat.utils.atomic import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = results_table(cv, cutoff, reference)
    pairs = pairwise_table(cv)
    paths = {
        "results": out / "results.csv",
        "pairwise": out / "pairwise.csv",
        "predictions": out / "predictions.csv",
    }
    write_text(table.to_csv(), paths["results"])
    write_text(pairs.to_csv(index=False), paths["pairwise"])
    write_text(cv.predictions.to_csv(index=False), paths["predictions"])
    shown = [f for f in table.index if f in ("auto", "auto_select")]
    shown += [f for f in table.index if f not in shown][: max(0, top_roc - len(shown))]
    y = cv.case_scores(table.index[0]).set_index("case_id")["y"]
    scores = {f: cv.case_scores(f).set_index("case_id").loc[y.index, "score"].to_numpy() for f in shown}
    paths["roc"] = out / "roc.png"
    figures.plot_roc(
        y.to_numpy(),
        scores,
        path=paths["roc"],
        n_boot=200,
        title=f"{cv.dataset}: {cv.label} = {cv.positive} — out-of-fold ROC (mean over repeats)",
    )
    paths["calibration"] = out / "calibration.png"
    figures.plot_calibration(
        y.to_numpy(),
        {f: np.clip(s, 0, 1) for f, s in scores.items()},
        path=paths["calibration"],
        n_bins=5,
        title=f"{cv.dataset}: {cv.label} = {cv.positive} — calibration (out-of-fold)",
    )
    import matplotlib.pyplot as plt

    plt.close("all")

    cfg = cv.config
    ref = table.attrs["reference"]
    lines = [
        f"# Model-family benchmark: {cv.dataset}, label `{cv.label}`",
        "",
        f"Outer stratified {cfg.n_splits}-fold × {cfg.n_repeats} repeats"
        + (
            f", inner {cfg.inner_splits}-fold × {cfg.inner_repeats} tuning (nested)"
            if cfg.nested
            else " (fixed parameters, not nested)"
        )
        + f"; seed {cfg.random_state}. AUC pooled over the outer test folds of each repeat, mean ± SD over "
        "repeats. Case-averaged columns use each case's out-of-fold probability averaged over repeats. "
        + (
            "ACC/SEN/SPEC: each outer fold's threshold is the positive share of its training part "
            "(never the test cases); a case is positive when its mean margin to those thresholds is ≥ 0."
            if cutoff == "training"
            else f"ACC/SEN/SPEC at the fixed cut-off probability ≥ {float(cutoff):.3f}."
        ),
        "",
        (
            f"p-values: paired DeLong test against `{ref}`, declared in advance; Holm-corrected over "
            "the families compared in parentheses. All pairs (exploratory, Holm over all pairs): "
            "`pairwise.csv`."
            if ref
            else "No comparator declared (`--reference`): no p-values in this table; all pairs with "
            "Holm correction are in `pairwise.csv`."
        ),
        "",
    ]
    if "auto" in table.index or "auto_select" in table.index:
        weights = cv.auto_weights()
        lines += [
            f"`auto`: combination of the inner-tuned families (rule `{cfg.auto_rule}`, weights "
            "learned on each outer training part's inner out-of-fold predictions; mean weights "
            + (", ".join(f"{n} {w:.2f}" for n, w in weights.items() if w >= 0.005) or "—")
            + "); `auto_select`: one family per outer fold chosen by the inner CV (simplest family not "
            "significantly worse than the best).",
            "",
        ]
    lines += [_markdown(_fmt(table)), ""]
    used = baseline_columns(cv)
    if used:
        lines += ["Baselines use exactly these columns:", ""]
        lines += [
            f"- `{family}`: {', '.join(f'`{c}`' for c in cols) or '(none)'}" for family, cols in used.items()
        ]
        lines += [""]
    if cv.folds and cv.folds[0].get("auto_family"):
        lines += [
            "`auto_select` choices over outer folds: "
            + ", ".join(f"{k} ×{v}" for k, v in cv.auto_choices().items()),
            "",
        ]
    if dropped:
        lines += ["## Columns not used", ""]
        lines += [f"- `{c}`: {reason}" for c, reason in dropped.items()]
        lines += [""]
    if notes:
        lines += ["## Notes on the input table", ""] + [f"- {n}" for n in notes] + [""]
    if references is not None and len(references):
        lines += ["## Published references", "", _markdown(references, index=False), ""]
    lines += ["![ROC](roc.png)", "", "![Calibration](calibration.png)", ""]
    markdown = "\n".join(lines)
    paths["markdown"] = out / "report.md"
    write_text(markdown, paths["markdown"])
    body = (
        "".join(f"<p>{html.escape(line)}</p>" for line in lines[1:8] if line)
        + _fmt(table).to_html()
        + (references.to_html(index=False) if references is not None else "")
    )
    page = (
        f"<html><head><meta charset='utf-8'><title>{html.escape(cv.dataset)}</title></head><body>"
        f"<h1>{html.escape(lines[0][2:])}</h1>{body}<img src='roc.png' width='480'>"
        f"<img src='calibration.png' width='480'></body></html>"
    )
    paths["html"] = out / "report.html"
    write_text(page, paths["html"])
    return paths


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False
