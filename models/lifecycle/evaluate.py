"""Per-cohort evaluation of a locked model's predictions: the tables and figures a paper needs.

For each cohort (and all cases together): AUC with its DeLong 95 % CI; ACC/SEN/SPEC/PPV/NPV with Wilson
CIs at the **locked** threshold (the one in the predictions, learned on the training cohort); Brier
score; calibration intercept and slope with CIs (Cox 1958; Van Calster 2016); net benefit at the
locked threshold; the paired DeLong test against each comparator declared at fit time and McNemar's
test (R's default, continuity corrected) of the model's and the SUVmax rule's correct calls at their
locked thresholds. Figures (PNG and SVG): ROC of all cohorts, per cohort ROC of model and
comparators, calibration and decision curves.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models import stats
from models.results import result_row

__all__ = ["EvaluationResult", "evaluate_predictions", "write_evaluation_report", "comparator_names"]

ALL = "all cases"
HELD_OUT = "all held-out cases"


@dataclass
class EvaluationResult:
    """``metrics``: one row per (cohort, model); ``comparisons``: the model against each comparator per
    cohort; ``curves``: decision-curve tables per cohort; ``y`` / ``scores`` for the figures."""

    label: str
    positive: str
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    data: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def comparator_names(frame: pd.DataFrame) -> list[str]:
    """Comparators present in a predictions table (columns ``score_<name>``)."""
    return [c.removeprefix("score_") for c in frame.columns if c.startswith("score_")]


def _metrics_row(cohort: str, model: str, y: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    metrics = result_row(y, score, score - float(threshold))  # positive iff score ≥ locked threshold
    metrics.pop("p_vs_reference")
    row: dict = {"cohort": cohort, "model": model, "n_positive": int(y.sum()), "threshold": float(threshold)}
    row.update(metrics)
    in_unit = score.min() >= 0 and score.max() <= 1
    if in_unit:
        try:
            cal = stats.calibration_intercept_slope(y, score)
            row.update(
                calibration_intercept=cal.intercept,
                calibration_intercept_ci_low=cal.intercept_ci[0],
                calibration_intercept_ci_high=cal.intercept_ci[1],
                calibration_slope=cal.slope,
                calibration_slope_ci_low=cal.slope_ci[0],
                calibration_slope_ci_high=cal.slope_ci[1],
            )
        except Exception:  # noqa: BLE001 - perfect separation or a constant score: no logistic fit
            pass
        row["net_benefit_at_threshold"] = float(stats.net_benefit(y, score, [float(threshold)])[0])
    return row


def evaluate_predictions(
    frame: pd.DataFrame, label: str, *, positive: str | None = None, by: str | None = None
) -> EvaluationResult:
    """Evaluate ``radfeat predict`` output (see the module docstring).

    Parameters
    ----------
    frame : DataFrame
        ``case_id``, ``score``, ``threshold``, the label column and, per comparator, ``score_<name>``
        (its locked threshold in ``threshold_<name>`` or in the model card) — as written by predict.
    label : str
        The outcome column; ``positive`` defaults to the ``positive_class`` column of the predictions.
    by : str, optional
        Cohort column: one evaluation per cohort, plus all cases together.
    """
    from models.labels import encode_binary

    if label not in frame.columns:
        raise ValueError(
            f"label column {label!r} not in the predictions; columns: {list(frame.columns)[:12]}. Hint: "
            "predict copies the label from its input table or manifest: add it there, or join it"
        )
    if "task" in frame.columns:  # a multi-task (fusion) model: one row per case and task
        if label not in set(frame["task"]):
            raise ValueError(f"the predictions hold tasks {sorted(set(frame['task']))}, not {label!r}")
        frame = frame[frame["task"] == label]
    if positive is None and "positive_class" in frame.columns:
        positive = str(frame["positive_class"].dropna().iloc[0])
    notes = []
    labelled = frame[frame[label].notna() & (frame[label].astype(str).str.strip() != "")].copy()
    if len(labelled) < len(frame):
        notes.append(f"{len(frame) - len(labelled)} case(s) without a {label!r} label left out")
    try:
        codes = encode_binary(labelled[label], positive, name=label)
        labelled["_y"] = codes.codes.astype(int)
        positive = codes.positive
    except ValueError:
        # one class present (a small cohort): with the model's positive class known, still well defined
        from models.labels import _text

        levels = {_text(v) for v in labelled[label]}
        if positive is None or len(levels) != 1:
            raise
        labelled["_y"] = np.array([_text(v) == _text(positive) for v in labelled[label]], dtype=int)
    if by is not None and by not in labelled.columns:
        raise ValueError(
            f"--by {by!r} is not a column of the predictions; columns: {list(frame.columns)[:12]}"
        )
    groups: dict[str, pd.DataFrame] = {}
    apparent: set[str] = set()
    if by is not None:
        for name, part in labelled.groupby(by, sort=True):
            groups[str(name)] = part
            if "training_cohort" in part and part["training_cohort"].astype(bool).all():
                apparent.add(str(name))
    held_out = labelled
    if "training_cohort" in labelled:
        held_out = labelled[~labelled["training_cohort"].astype(bool)]
        n_train = len(labelled) - len(held_out)
        if n_train:
            notes.append(
                f"{n_train} case(s) are from the training cohort: the locked model was fitted on them, so "
                "their metrics are apparent (optimistic), shown only for reference; the estimate for the "
                "training cohort is the model card's cross-validated one"
            )
    if by is None or len(groups) > 1:
        pooled = ALL if len(held_out) == len(labelled) else HELD_OUT
        if len(held_out) and (by is None or len([g for g in groups if g not in apparent]) > 1):
            groups[pooled] = held_out
        elif by is None:
            groups[ALL] = labelled
            apparent.add(ALL)
    comps = comparator_names(labelled)
    rows, comparisons, curves, data = [], [], {}, {}
    for cohort, part in groups.items():
        y = part["_y"].to_numpy()
        if len(np.unique(y)) < 2:
            notes.append(f"cohort {cohort!r}: one class only ({len(y)} cases): no AUC")
            continue
        score = part["score"].to_numpy(float)
        data[cohort] = part
        rows.append(_metrics_row(cohort, "model", y, score, float(part["threshold"].iloc[0])))
        rows[-1]["apparent"] = cohort in apparent
        probs = {"model": score}
        for comp in comps:
            s = part[f"score_{comp}"].to_numpy(float)
            ok = ~np.isnan(s)
            thr_col = f"threshold_{comp}"
            if not ok.any() or len(np.unique(y[ok])) < 2:
                continue
            rows.append(_metrics_row(cohort, comp, y[ok], s[ok], float(part[thr_col].iloc[0])))
            rows[-1]["apparent"] = cohort in apparent
            if ok.all():
                probs[comp] = s
            test = stats.delong_test(y[ok], score[ok], s[ok])  # difference: model − comparator
            mc_p = mc_stat = np.nan
            model_right = (score[ok] >= part["threshold"].iloc[0]) == (y[ok] == 1)
            comp_right = (s[ok] >= part[thr_col].iloc[0]) == (y[ok] == 1)
            table = pd.crosstab(model_right, comp_right).reindex(
                index=[True, False], columns=[True, False], fill_value=0
            )
            if table.to_numpy()[0, 1] + table.to_numpy()[1, 0] > 0:
                mc = stats.mcnemar_test(table.to_numpy())
                mc_stat, mc_p = mc.statistic, mc.p_value
            comparisons.append(
                {
                    "cohort": cohort,
                    "comparator": comp,
                    "n": int(ok.sum()),
                    "auc_model": test.auc_a,
                    "auc_comparator": test.auc_b,
                    "auc_difference": test.difference,
                    "auc_difference_ci_low": test.ci_lower,
                    "auc_difference_ci_high": test.ci_upper,
                    "delong_z": test.statistic,
                    "delong_p": test.p_value,
                    "mcnemar_statistic": mc_stat,
                    "mcnemar_p": mc_p,
                    "both_correct": int(table.loc[True, True]),
                    "model_only_correct": int(table.loc[True, False]),
                    "comparator_only_correct": int(table.loc[False, True]),
                    "both_wrong": int(table.loc[False, False]),
                }
            )
        curves[cohort] = stats.decision_curve(
            y, {k: v for k, v in probs.items() if v.min() >= 0 and v.max() <= 1}, np.arange(0.01, 0.99, 0.01)
        )
    metrics = pd.DataFrame(rows)
    return EvaluationResult(
        label=label,
        positive=str(positive),
        metrics=metrics,
        comparisons=pd.DataFrame(comparisons),
        curves=curves,
        data=data,
        notes=notes,
    )


def _ci(v, lo, hi, digits=3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    return f"{v:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def _readable(metrics: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "cohort": [
                f"{c} (training: apparent)" if a else c
                for c, a in zip(
                    metrics["cohort"], metrics.get("apparent", [False] * len(metrics)), strict=True
                )
            ],
            "model": metrics["model"],
            "n (pos)": [f"{n} ({p})" for n, p in zip(metrics["n"], metrics["n_positive"], strict=True)],
            "AUC (95% DeLong CI)": [
                _ci(a, lo, hi)
                for a, lo, hi in zip(metrics.auc, metrics.auc_ci_low, metrics.auc_ci_high, strict=True)
            ],
        }
    )
    for metric, title in (
        ("accuracy", "ACC"),
        ("sensitivity", "SEN"),
        ("specificity", "SPEC"),
        ("ppv", "PPV"),
        ("npv", "NPV"),
    ):
        out[f"{title} (95% CI)"] = [
            _ci(v, lo, hi, 2)
            for v, lo, hi in zip(
                metrics[metric], metrics[f"{metric}_ci_low"], metrics[f"{metric}_ci_high"], strict=True
            )
        ]
    out["Brier"] = metrics["brier"].map(lambda v: "—" if pd.isna(v) else f"{v:.3f}")
    for name in ("calibration_intercept", "calibration_slope"):
        if name in metrics:
            out[name.replace("_", " ") + " (95% CI)"] = [
                _ci(v, lo, hi, 2)
                for v, lo, hi in zip(
                    metrics[name], metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"], strict=True
                )
            ]
    return out


def _save_both(fig, out: Path, stem: str) -> list[Path]:
    from models.figures import save

    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    for p in paths:
        save(fig, p)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def write_evaluation_report(
    result: EvaluationResult, out_dir: str | Path, *, title: str | None = None, card: dict | None = None
) -> dict[str, Path]:
    """Write ``metrics.csv``, ``comparisons.csv``, ``decision_curves.csv``, the figures (PNG + SVG),
    ``report.md`` and ``report.html`` into ``out_dir``; return their paths."""
    import matplotlib.pyplot as plt

    from models import figures
    from radfeat.utils.atomic import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {
        "metrics": out / "metrics.csv",
        "comparisons": out / "comparisons.csv",
        "decision_curves": out / "decision_curves.csv",
    }
    write_text(result.metrics.to_csv(index=False), paths["metrics"])
    write_text(result.comparisons.to_csv(index=False), paths["comparisons"])
    curves = (
        pd.concat([c.assign(cohort=k) for k, c in result.curves.items()], ignore_index=True)
        if result.curves
        else pd.DataFrame()
    )
    write_text(curves.to_csv(index=False), paths["decision_curves"])
    figs: list[str] = []
    cohorts = [c for c in result.data if c != ALL] or list(result.data)
    if cohorts:
        fig, ax = plt.subplots(figsize=(5.5, 5.5))
        for cohort in cohorts:
            part = result.data[cohort]
            figures.plot_roc(
                part["_y"].to_numpy(),
                {cohort: part["score"].to_numpy(float)},
                ax=ax,
                ci_band=False,
                title=None,
            )
        ax.legend(loc="lower right", fontsize=7.5, title="AUC (95% DeLong CI)")
        ax.set_title(f"{result.label} = {result.positive}: locked model, ROC per cohort", fontsize=10)
        paths["roc_cohorts"], _ = _save_both(fig, out, "roc_cohorts")
        figs.append("roc_cohorts")
    for cohort, part in result.data.items():
        stem = "".join(ch if ch.isalnum() else "_" for ch in cohort)
        y = part["_y"].to_numpy()
        scores = {"model": part["score"].to_numpy(float)}
        for comp in comparator_names(part):
            s = part[f"score_{comp}"].to_numpy(float)
            if not np.isnan(s).any():
                scores[comp] = s
        fig = figures.plot_roc(y, scores, n_boot=200, title=f"{cohort}: model and comparators")
        paths[f"roc_{stem}"], _ = _save_both(fig, out, f"roc_{stem}")
        probs = {k: v for k, v in scores.items() if v.min() >= 0 and v.max() <= 1}
        fig = figures.plot_calibration(
            y, probs, n_bins=5 if len(y) < 100 else 10, title=f"{cohort}: calibration"
        )
        paths[f"calibration_{stem}"], _ = _save_both(fig, out, f"calibration_{stem}")
        fig = figures.plot_decision_curve(y, probs)
        fig.axes[0].set_title(f"{cohort}: decision curve", fontsize=10)
        paths[f"decision_curve_{stem}"], _ = _save_both(fig, out, f"decision_curve_{stem}")
        figs += [f"roc_{stem}", f"calibration_{stem}", f"decision_curve_{stem}"]
    readable = _readable(result.metrics) if len(result.metrics) else pd.DataFrame()
    lines = [f"# {title or 'Evaluation of a locked model'}: `{result.label}` = `{result.positive}`", ""]
    if card:
        cv = card.get("cv_estimate", {})
        threshold = card.get("threshold")
        if card.get("kind") == "fusion":  # per-task thresholds and estimates
            cv = cv.get(result.label, {})
            threshold = (card.get("thresholds") or {}).get(result.label, float("nan"))
        lines += [
            f"Model `{card.get('fingerprint')}` ({card.get('family')}), locked on "
            f"{card['training']['n_cases']} training cases; threshold {threshold:.4f} "
            f"(`{card['threshold_rule']}`, training out-of-fold scores). Internal CV estimate on the "
            f"training cohort: AUC {cv.get('auc_oof', float('nan')):.3f} "
            f"({cv.get('auc_ci_low', float('nan')):.3f}–{cv.get('auc_ci_high', float('nan')):.3f}).",
            "",
        ]
    lines += [
        "AUC with DeLong 95 % CI; ACC/SEN/SPEC/PPV/NPV with Wilson 95 % CIs at the locked thresholds (never "
        "re-chosen on these cases); calibration intercept (slope fixed at 1) and slope with Wald CIs.",
        "",
        readable.to_markdown(index=False) if len(readable) else "(no cohort with both classes)",
        "",
    ]
    if len(result.comparisons):
        c = result.comparisons
        lines += [
            "## Against the comparators declared at fit time",
            "",
            "Paired DeLong test of the AUCs; McNemar's test (continuity corrected) of correct calls at the "
            "locked thresholds.",
            "",
        ]
        shown = pd.DataFrame(
            {
                "cohort": c.cohort,
                "comparator": c.comparator,
                "n": c.n,
                "AUC model": c.auc_model.map("{:.3f}".format),
                "AUC comparator": c.auc_comparator.map("{:.3f}".format),
                "DeLong p": c.delong_p.map("{:.3g}".format),
                "McNemar p": c.mcnemar_p.map(lambda v: "—" if pd.isna(v) else f"{v:.3g}"),
                "discordant (model / comparator right)": [
                    f"{a} / {b}" for a, b in zip(c.model_only_correct, c.comparator_only_correct, strict=True)
                ],
            }
        )
        lines += [shown.to_markdown(index=False), ""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    lines += [f"![{f}]({f}.png)" for f in figs] + [""]
    paths["markdown"] = out / "report.md"
    write_text("\n".join(lines), paths["markdown"])
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines[1:5] if line)
    body += readable.to_html(index=False) if len(readable) else ""
    if len(result.comparisons):
        body += "<h2>Against the comparators declared at fit time</h2>" + shown.to_html(index=False)
    body += "".join(f"<p>{html.escape(n)}</p>" for n in result.notes)
    body += "".join(f"<img src='{f}.svg' width='460'>" for f in figs)
    page = (
        f"<html><head><meta charset='utf-8'><title>{html.escape(result.label)}</title></head><body>"
        f"<h1>{html.escape(lines[0][2:])}</h1>{body}</body></html>"
    )
    paths["html"] = out / "report.html"
    write_text(page, paths["html"])
    return paths
