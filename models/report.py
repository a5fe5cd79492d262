"""Benchmark reports: a results table per family, paired DeLong tests, figures, Markdown and HTML.

Per family the table gives the mean and SD over repeats of the AUC pooled over outer folds (the
protocol's headline figure) and, on the out-of-fold probability of each case averaged over repeats,
the AUC with its DeLong 95 % CI, ACC/SEN/SPEC at the stated cut-off with Wilson CIs, the Brier score,
and the paired DeLong test against the best family.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from models import stats
from models.cv import CVResult

__all__ = ["results_table", "write_report"]


def results_table(cv: CVResult, cutoff: float | str = "prevalence") -> pd.DataFrame:
    """One row per family (best mean AUC first).

    Parameters
    ----------
    cutoff : float or "prevalence", default="prevalence"
        Probability at or above which a case is called positive. ``"prevalence"`` uses the share of
        positives in the table: the models output probabilities on the prevalence scale, so 0.5 would
        call almost nobody positive on an imbalanced outcome.
    """
    summary = cv.summary()
    prevalence = float(cv.predictions.drop_duplicates("case_id")["y"].mean())
    t = prevalence if cutoff == "prevalence" else float(cutoff)
    best = summary.index[0]
    best_cases = cv.case_scores(best).set_index("case_id")
    rows = []
    for family, row in summary.iterrows():
        cases = cv.case_scores(family).set_index("case_id").loc[best_cases.index]
        auc = stats.roc_auc(cases["y"], cases["score"])
        tm = stats.threshold_metrics(cases["y"], cases["score"], t)
        test = stats.delong_test(cases["y"], best_cases["score"], cases["score"]) if family != best else None
        rows.append(
            {
                "family": family,
                "mean_auc": row["mean_auc"],
                "sd_auc": row["sd_auc"],
                "auc_oof": auc.auc,
                "auc_ci_low": auc.ci_lower,
                "auc_ci_high": auc.ci_upper,
                "accuracy": tm["accuracy"],
                "sensitivity": tm["sensitivity"],
                "sensitivity_ci": (
                    tm.table.loc["sensitivity", "ci_lower"],
                    tm.table.loc["sensitivity", "ci_upper"],
                ),
                "specificity": tm["specificity"],
                "specificity_ci": (
                    tm.table.loc["specificity", "ci_lower"],
                    tm.table.loc["specificity", "ci_upper"],
                ),
                "brier": stats.brier_score(cases["y"], np.clip(cases["score"], 0, 1)),
                "delong_p_vs_best": np.nan if test is None else test.p_value,
            }
        )
    table = pd.DataFrame(rows).set_index("family")
    table.attrs["cutoff"] = t
    table.attrs["best"] = best
    return table


def _fmt(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=table.index)
    out["AUC mean ± SD (repeats)"] = [
        f"{m:.3f} ± {s:.3f}" for m, s in zip(table.mean_auc, table.sd_auc, strict=True)
    ]
    out["AUC (95% DeLong CI), case-averaged"] = [
        f"{a:.3f} ({lo:.3f}–{hi:.3f})"
        for a, lo, hi in zip(table.auc_oof, table.auc_ci_low, table.auc_ci_high, strict=True)
    ]
    out["ACC"] = table.accuracy.map("{:.2f}".format)
    out["SEN (95% CI)"] = [
        f"{v:.2f} ({c[0]:.2f}–{c[1]:.2f})"
        for v, c in zip(table.sensitivity, table.sensitivity_ci, strict=True)
    ]
    out["SPEC (95% CI)"] = [
        f"{v:.2f} ({c[0]:.2f}–{c[1]:.2f})"
        for v, c in zip(table.specificity, table.specificity_ci, strict=True)
    ]
    out["Brier"] = table.brier.map("{:.3f}".format)
    out["DeLong p vs best"] = table.delong_p_vs_best.map(lambda p: "—" if np.isnan(p) else f"{p:.3g}")
    return out


def write_report(
    cv: CVResult,
    out_dir: str | Path,
    *,
    references: pd.DataFrame | None = None,
    cutoff: float | str = "prevalence",
    top_roc: int = 5,
) -> dict[str, Path]:
    """Write ``results.csv``, ``predictions.csv``, ``roc.png``, ``calibration.png``, ``report.md`` and
    ``report.html`` into ``out_dir``; return their paths.

    ``references``: optional rows (label, auc, note) printed next to our figures (e.g. published AUCs).
    """
    from models import figures
    from radfeat.utils.atomic import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = results_table(cv, cutoff)
    paths = {"results": out / "results.csv", "predictions": out / "predictions.csv"}
    write_text(table.to_csv(), paths["results"])
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
        title=f"{cv.dataset}: {cv.label} (out-of-fold, averaged over repeats)",
    )
    paths["calibration"] = out / "calibration.png"
    figures.plot_calibration(
        y.to_numpy(), {f: np.clip(s, 0, 1) for f, s in scores.items()}, path=paths["calibration"], n_bins=5
    )
    import matplotlib.pyplot as plt

    plt.close("all")

    cfg = cv.config
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
        f"Cut-off for ACC/SEN/SPEC: probability ≥ {table.attrs['cutoff']:.3f}"
        + (" (the prevalence)." if cutoff == "prevalence" else "."),
        "",
        "`auto`: soft vote of the inner-tuned "
        + " + ".join(cfg.auto_members)
        + "; `auto_select`: one family "
        "per outer fold chosen by the inner CV (simplest family not significantly worse than the best).",
        "",
        _fmt(table).to_markdown() if _has_tabulate() else _fmt(table).to_string(),
        "",
    ]
    if cv.folds and cv.folds[0].get("auto_family"):
        lines += [
            "`auto_select` choices over outer folds: "
            + ", ".join(f"{k} ×{v}" for k, v in cv.auto_choices().items()),
            "",
        ]
    if references is not None and len(references):
        lines += [
            "## Published references",
            "",
            references.to_markdown(index=False) if _has_tabulate() else references.to_string(index=False),
            "",
        ]
    lines += ["![ROC](roc.png)", "", "![Calibration](calibration.png)", ""]
    markdown = "\n".join(lines)
    paths["markdown"] = out / "report.md"
    write_text(markdown, paths["markdown"])
    body = (
        "".join(f"<p>{html.escape(line)}</p>" for line in lines[:6] if line)
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
