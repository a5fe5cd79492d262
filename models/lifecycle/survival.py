"""Survival on model scores: does a locked model's score stratify progression-free survival, and does
that depend on the treatment (EGFR-DLS: high scores did well on TKIs, badly on immunotherapy)?

From ``radfeat predict`` output joined with follow-up columns, per treatment group and overall:

* Kaplan–Meier curves of the model-positive and model-negative groups (the **locked** threshold),
  numbers at risk, log-rank test, median survival with CI;
* Cox hazard ratios per SD of the score and for model-positive vs model-negative, with 95 % CI,
  optionally adjusted for covariates (Efron ties, as R's ``coxph``);
* Harrell's C of the score with its infinitesimal-jackknife CI (R ``concordance``);
* the score × treatment interaction: Cox model with both main effects and their product, each
  interaction's HR with CI and the likelihood-ratio test of all interaction terms.

The score is standardised once over all analysed cases (so HRs per SD compare across groups).
Training-cohort cases are left out unless asked for: their scores are apparent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from models import stats as st
from models.results import format_p as _fmt_p

__all__ = ["SurvivalAnalysis", "survival_on_scores", "write_survival_report", "event_indicator"]

#: Name of the whole analysed set in the tables.
ALL = "all"


def event_indicator(values: pd.Series, column: str) -> np.ndarray:
    """0/1 events from numbers, booleans or yes/no-like text; anything else is refused by name."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(int).to_numpy()
    if pd.api.types.is_numeric_dtype(values):
        bad = ~values.isin([0, 1])
        if bad.any():
            raise ValueError(
                f"event column {column!r} must be 0 (censored) or 1 (event); found "
                f"{sorted(values[bad].unique())[:5]}"
            )
        return values.astype(int).to_numpy()
    text = values.astype(str).str.strip().str.lower()
    mapping = {"1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0, "event": 1, "censored": 0}
    bad = ~text.isin(mapping)
    if bad.any():
        raise ValueError(
            f"event column {column!r} must be 0/1, true/false, yes/no or event/censored; found "
            f"{sorted(values[bad].astype(str).unique())[:5]}"
        )
    return text.map(mapping).to_numpy(int)


@dataclass
class SurvivalAnalysis:
    """Tables of the analysis (see the module docstring) and the analysed frame (``_time``, ``_event``,
    ``_z`` = standardised score, ``_group`` = model-positive/negative, ``_treatment``)."""

    logrank: pd.DataFrame
    cox: pd.DataFrame
    concordance: pd.DataFrame
    interaction: pd.DataFrame
    data: pd.DataFrame
    time: str
    event: str
    group_by: str | None
    adjust: list[str]
    notes: list[str] = field(default_factory=list)


def _covariates(frame: pd.DataFrame, adjust: list[str]) -> pd.DataFrame:
    from models.data import clinical_columns

    if not adjust:
        return pd.DataFrame(index=range(len(frame)))
    cov = clinical_columns(frame.reset_index(drop=True), adjust)
    cov.columns = [c.removeprefix("clin_") for c in cov.columns]
    return cov


def _cox_rows(part: pd.DataFrame, cov: pd.DataFrame, subgroup: str) -> list[dict]:
    rows = []
    for term, column in (("score per SD", "_z"), ("model-positive vs negative", "_positive")):
        if part[column].nunique() < 2 or part["_event"].sum() < 2:
            continue
        frame = pd.concat([part[["_time", "_event", column]].reset_index(drop=True), cov], axis=1)
        names = [column, *cov.columns]
        try:
            fit = st.cox_ph(frame, "_time", "_event", names)
        except (np.linalg.LinAlgError, ValueError) as exc:
            rows.append({"subgroup": subgroup, "term": term, "note": f"Cox model failed: {exc}"})
            continue
        r = fit.table.loc[column]
        rows.append(
            {
                "subgroup": subgroup,
                "term": term,
                "n": len(part),
                "events": int(part["_event"].sum()),
                "hr": float(r.hr),
                "hr_ci_lower": float(r.hr_ci_lower),
                "hr_ci_upper": float(r.hr_ci_upper),
                "p": float(r.p),
                "adjusted_for": ", ".join(cov.columns),
            }
        )
    return rows


def survival_on_scores(
    frame: pd.DataFrame,
    time: str,
    event: str,
    *,
    group_by: str | None = None,
    adjust: list[str] | None = None,
    include_training: bool = False,
    task: str | None = None,
) -> SurvivalAnalysis:
    """Survival analysis of the ``score`` / ``predicted_positive`` columns of ``frame`` (predictions
    with follow-up columns ``time`` (e.g. months) and ``event`` (1 = progression / death)). A fusion
    model's predictions hold one row per case and task: ``task`` picks one (required when several)."""
    adjust = list(adjust or [])
    if "task" in frame.columns:
        tasks = sorted(set(frame["task"].astype(str)))
        if task is None and len(tasks) > 1:
            raise ValueError(f"the predictions hold tasks {tasks}: choose one with --task")
        if task is not None and task not in tasks:
            raise ValueError(f"the predictions hold tasks {tasks}, not {task!r}")
        frame = frame[frame["task"].astype(str) == (task or tasks[0])]
    for column in (time, event, "score", "predicted_positive", *([group_by] if group_by else []), *adjust):
        if column not in frame.columns:
            raise ValueError(
                f"column {column!r} is not in the predictions (join the follow-up columns with --table); "
                f"columns include {list(frame.columns)[:12]}"
            )
    notes: list[str] = []
    data = frame.reset_index(drop=True).copy()
    if "training_cohort" in data.columns and not include_training:
        training = data["training_cohort"].astype(str).str.lower().isin(["true", "1"])
        if training.any():
            notes.append(
                f"{int(training.sum())} training-cohort case(s) left out (apparent scores; "
                "--include-training keeps them)"
            )
            data = data.loc[~training.to_numpy()].reset_index(drop=True)
    data["_time"] = pd.to_numeric(data[time], errors="coerce")
    needed = ["_time", "score", event, *adjust, *([group_by] if group_by else [])]
    missing = data[needed].isna().any(axis=1) | (data["_time"] < 0)
    if missing.any():
        notes.append(f"{int(missing.sum())} case(s) without {', '.join(needed[:1] + needed[2:])} left out")
        data = data.loc[~missing.to_numpy()].reset_index(drop=True)
    if len(data) < 3:
        raise ValueError(f"{len(data)} analysable case(s): a survival analysis needs more")
    data["_event"] = event_indicator(data[event], event)
    score = data["score"].astype(float)
    data["_z"] = (score - score.mean()) / score.std(ddof=1) if score.std(ddof=1) > 0 else 0.0
    positive = data["predicted_positive"].astype(str).str.lower().isin(["true", "1"])
    data["_positive"] = positive.astype(float)
    data["_group"] = np.where(positive, "model-positive", "model-negative")
    data["_treatment"] = data[group_by].astype(str) if group_by else ALL
    cov = _covariates(data, adjust)
    subgroups = [ALL] + (sorted(data["_treatment"].unique()) if group_by else [])
    logrank, cox, concordance = [], [], []
    for sub in subgroups:
        rows = np.ones(len(data), bool) if sub == ALL else (data["_treatment"] == sub).to_numpy()
        part = data.loc[rows].reset_index(drop=True)
        row = {"subgroup": sub, "n": len(part), "events": int(part["_event"].sum())}
        for g in ("model-positive", "model-negative"):
            sel = part["_group"] == g
            row[f"n {g}"] = int(sel.sum())
            if sel.any():
                med, lo, hi = st.km_median(part.loc[sel, "_time"], part.loc[sel, "_event"])
                row[f"median {g}"], row[f"median {g} ci_lower"], row[f"median {g} ci_upper"] = med, lo, hi
        if part["_group"].nunique() == 2 and part["_event"].sum() > 0:
            lr = st.logrank_test(part["_time"], part["_event"], part["_group"])
            row.update(logrank_chisq=lr.chisq, logrank_p=lr.p_value)
        logrank.append(row)
        cox += _cox_rows(part, cov.loc[rows].reset_index(drop=True), sub)
        try:
            c = st.harrell_c(part["_time"], part["_event"], part["score"])
            concordance.append(
                {
                    "subgroup": sub,
                    "c_index": c.c_index,
                    "std_err": c.std_err,
                    "ci_lower": c.ci_lower,
                    "ci_upper": c.ci_upper,
                    "comparable_pairs": c.n_comparable,
                }
            )
        except ValueError as exc:
            notes.append(f"{sub}: {exc}")
    interaction = pd.DataFrame()
    if group_by and data["_treatment"].nunique() > 1:
        interaction = _interaction(data, cov, group_by)
    return SurvivalAnalysis(
        pd.DataFrame(logrank),
        pd.DataFrame(cox),
        pd.DataFrame(concordance),
        interaction,
        data,
        time,
        event,
        group_by,
        adjust,
        notes,
    )


def _interaction(data: pd.DataFrame, cov: pd.DataFrame, group_by: str) -> pd.DataFrame:
    """Cox model score + treatment + score × treatment (+ covariates): each interaction's HR (the
    ratio of the per-SD HR in that treatment to the reference treatment's) and the LR test."""
    levels = sorted(data["_treatment"].unique())
    dummies = pd.DataFrame(
        {f"{group_by}={lv}": (data["_treatment"] == lv).astype(float) for lv in levels[1:]}
    )
    products = pd.DataFrame({f"score per SD × {c}": data["_z"] * dummies[c] for c in dummies.columns})
    base = pd.concat([data[["_time", "_event", "_z"]], dummies, cov], axis=1)
    full = pd.concat([base, products], axis=1)
    main = ["_z", *dummies.columns, *cov.columns]
    fit_full = st.cox_ph(full, "_time", "_event", [*main, *products.columns])
    fit_main = st.cox_ph(base, "_time", "_event", main)
    lr = 2 * (fit_full.loglik - fit_main.loglik)
    p_lr = float(stats.chi2.sf(lr, products.shape[1]))
    rows = []
    for term in products.columns:
        r = fit_full.table.loc[term]
        rows.append(
            {
                "term": term,
                "reference": f"{group_by}={levels[0]}",
                "hr": float(r.hr),
                "hr_ci_lower": float(r.hr_ci_lower),
                "hr_ci_upper": float(r.hr_ci_upper),
                "p": float(r.p),
                "lr_chisq": float(lr),
                "lr_df": products.shape[1],
                "lr_p": p_lr,
            }
        )
    return pd.DataFrame(rows)


def _fmt(v: float, digits: int = 3) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


def write_survival_report(analysis: SurvivalAnalysis, out_dir, *, title: str | None = None) -> dict:
    """Write ``logrank.csv``, ``cox.csv``, ``concordance.csv``, ``interaction.csv``, one Kaplan–Meier
    figure per subgroup (PNG + SVG, numbers at risk) and ``report.md`` / ``report.html``."""
    import html
    from pathlib import Path

    import matplotlib.pyplot as plt

    from models.figures import plot_kaplan_meier, save
    from radfeat.utils.atomic import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict = {}
    for name in ("logrank", "cox", "concordance", "interaction"):
        paths[name] = out / f"{name}.csv"
        write_text(getattr(analysis, name).to_csv(index=False), paths[name])
    figures = []
    data = analysis.data
    for sub in analysis.logrank["subgroup"]:
        part = data if sub == ALL else data[data["_treatment"] == sub]
        fig = plot_kaplan_meier(part["_time"], part["_event"], part["_group"].to_numpy())
        row = analysis.logrank.set_index("subgroup").loc[sub]
        p = row.get("logrank_p", np.nan)
        fig.axes[0].set_title(f"{analysis.time}: {sub} (n {len(part)}; log-rank p {_fmt_p(p)})", fontsize=10)
        fig.axes[-1].set_xlabel(analysis.time)
        stem = "km_" + "".join(ch if ch.isalnum() else "_" for ch in str(sub))
        for ext in ("png", "svg"):
            paths[f"{stem}_{ext}"] = out / f"{stem}.{ext}"
            save(fig, paths[f"{stem}_{ext}"])
        plt.close(fig)
        figures.append(stem)
    heading = title or f"Survival on model scores: {analysis.time}"
    km = pd.DataFrame(
        {
            "subgroup": analysis.logrank["subgroup"],
            "n (events)": [
                f"{n} ({e})" for n, e in zip(analysis.logrank["n"], analysis.logrank["events"], strict=True)
            ],
            **{
                f"median {g} (95% CI)": [
                    f"{_fmt(r.get(f'median {g}'))} ({_fmt(r.get(f'median {g} ci_lower'))}–"
                    f"{_fmt(r.get(f'median {g} ci_upper'))}), n {int(r.get(f'n {g}', 0))}"
                    for _, r in analysis.logrank.iterrows()
                ]
                for g in ("model-positive", "model-negative")
            },
            "log-rank p": [
                _fmt_p(v)
                for v in analysis.logrank.get("logrank_p", pd.Series(np.nan, index=analysis.logrank.index))
            ],
        }
    )
    cox = analysis.cox
    cox_shown = pd.DataFrame(
        {
            "subgroup": cox.get("subgroup", []),
            "term": cox.get("term", []),
            "HR (95% CI)": [
                f"{_fmt(r.hr)} ({_fmt(r.hr_ci_lower)}–{_fmt(r.hr_ci_upper)})"
                if "hr" in r and np.isfinite(r.hr)
                else r.get("note", "")
                for _, r in cox.iterrows()
            ],
            "p": [_fmt_p(r.get("p", np.nan)) for _, r in cox.iterrows()],
            "adjusted for": cox.get("adjusted_for", []),
        }
    )
    conc = analysis.concordance
    conc_shown = pd.DataFrame(
        {
            "subgroup": conc.get("subgroup", []),
            "Harrell's C (95% CI)": [
                f"{r.c_index:.3f} ({r.ci_lower:.3f}–{r.ci_upper:.3f})" for _, r in conc.iterrows()
            ],
            "comparable pairs": conc.get("comparable_pairs", []),
        }
    )
    lines = [
        f"# {heading}",
        "",
        "Groups at the model's locked threshold; Cox models with Efron ties"
        + (f", adjusted for {', '.join(analysis.adjust)}" if analysis.adjust else "")
        + "; HR per SD of the score (standardised over all analysed cases); Harrell's C with the "
        "infinitesimal-jackknife CI (R survival), the score read as a risk: C > 0.5 when higher scores "
        "progress earlier, C < 0.5 when they progress later (1 − C is then the favourable-marker C).",
        "",
        "## Kaplan–Meier and log-rank",
        "",
        km.to_markdown(index=False),
        "",
        "## Cox proportional hazards",
        "",
        cox_shown.to_markdown(index=False) if len(cox_shown) else "(not estimable)",
        "",
        "## Concordance",
        "",
        conc_shown.to_markdown(index=False) if len(conc_shown) else "(not estimable)",
        "",
    ]
    if len(analysis.interaction):
        it = analysis.interaction
        shown = pd.DataFrame(
            {
                "interaction": it.term,
                "reference": it.reference,
                "HR ratio (95% CI)": [
                    f"{_fmt(r.hr)} ({_fmt(r.hr_ci_lower)}–{_fmt(r.hr_ci_upper)})" for _, r in it.iterrows()
                ],
                "Wald p": it.p.map(_fmt_p),
            }
        )
        lines += [
            f"## Score × {analysis.group_by} interaction",
            "",
            f"Likelihood-ratio test of the interaction: χ² {it.lr_chisq.iloc[0]:.2f} on "
            f"{it.lr_df.iloc[0]} df, p {_fmt_p(it.lr_p.iloc[0])}.",
            "",
            shown.to_markdown(index=False),
            "",
        ]
    if analysis.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in analysis.notes] + [""]
    lines += [f"![{f}]({f}.png)" for f in figures] + [""]
    paths["markdown"] = out / "report.md"
    write_text("\n".join(lines), paths["markdown"])
    body = f"<p>{html.escape(lines[2])}</p><h2>Kaplan–Meier and log-rank</h2>{km.to_html(index=False)}"
    body += f"<h2>Cox proportional hazards</h2>{cox_shown.to_html(index=False)}"
    body += f"<h2>Concordance</h2>{conc_shown.to_html(index=False)}"
    if len(analysis.interaction):
        body += (
            f"<h2>Score × {html.escape(str(analysis.group_by))} interaction</h2>{shown.to_html(index=False)}"
        )
    body += "".join(f"<p>{html.escape(n)}</p>" for n in analysis.notes)
    body += "".join(f"<img src='{f}.svg' width='520'>" for f in figures)
    paths["html"] = out / "report.html"
    write_text(
        f"<html><head><meta charset='utf-8'><title>{html.escape(heading)}</title></head><body>"
        f"<h1>{html.escape(heading)}</h1>{body}</body></html>",
        paths["html"],
    )
    return paths
