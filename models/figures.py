"""Publication figures from the statistics module: ROC, calibration, decision curve, Kaplan–Meier.

Every function draws on a new (or given) matplotlib Axes, returns the Figure and, with ``path``, saves it
(format from the suffix: .png, .svg, .pdf). Uses the non-interactive Agg backend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from models import stats as st  # noqa: E402
from models.stats._bootstrap import stratified_indices  # noqa: E402

__all__ = ["plot_roc", "plot_calibration", "plot_decision_curve", "plot_kaplan_meier", "save"]


def save(fig: plt.Figure, path: str | Path | None, dpi: int = 150) -> plt.Figure:
    """Save ``fig`` to ``path`` (atomically: temp file then rename) when a path is given."""
    if path is not None:
        from radfeat.utils.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    return fig


def _roc_curve(y, s) -> tuple[np.ndarray, np.ndarray]:
    c = st.roc_coords(y, s, direction="<")
    return 1 - c["specificity"].to_numpy(), c["sensitivity"].to_numpy()


def _sensitivity_band(y, s, grid, n_boot, conf_level, seed) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y, s = np.asarray(y), np.asarray(s, float)
    curves = []
    for idx in stratified_indices(y, n_boot, rng):
        fpr, tpr = _roc_curve(y[idx], s[idx])
        order = np.lexsort((tpr, fpr))
        curves.append(np.interp(grid, fpr[order], tpr[order]))
    alpha = 1 - conf_level
    lo, hi = np.quantile(np.array(curves), [alpha / 2, 1 - alpha / 2], axis=0)
    return lo, hi


def plot_roc(
    y_true,
    scores: dict[str, np.ndarray],
    *,
    path: str | Path | None = None,
    ci_band: bool = True,
    n_boot: int = 300,
    conf_level: float = 0.95,
    random_state: int = 0,
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """ROC curves of several models on one plot; legend "name: AUC 0.88 (0.81–0.95)" (DeLong CI).

    The shaded band is a stratified-bootstrap CI of sensitivity at each false-positive rate, drawn for
    the first model only (several overlapping bands merge into one blob; ``ci_band="all"`` draws
    every band). Curves cycle through line styles, so identical curves stay visible.
    """
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 5.5))
    grid = np.linspace(0, 1, 101)
    styles = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
    y = np.asarray(y_true)
    for k, (name, s) in enumerate(scores.items()):
        res = st.roc_auc(y_true, s)
        fpr, tpr = _roc_curve(y_true, s)
        order = np.lexsort((tpr, fpr))
        (line,) = ax.plot(
            fpr[order],
            tpr[order],
            lw=2.2 if k == 0 else 1.6,
            ls=styles[k % len(styles)],
            zorder=3 + k,  # later (thinner, dashed) curves on top: identical curves stay visible
            label=f"{name}: AUC {res.auc:.2f} ({res.ci_lower:.2f}–{res.ci_upper:.2f})",
        )
        if ci_band and (k == 0 or ci_band == "all"):
            lo, hi = _sensitivity_band(y_true, s, grid, n_boot, conf_level, random_state)
            ax.fill_between(
                grid, lo, hi, color=line.get_color(), alpha=0.15, lw=0, zorder=1,
                label=f"{round(100 * conf_level)}% bootstrap band of {name}",
            )  # fmt: skip
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(xlabel="1 − specificity", ylabel="Sensitivity", xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
    ax.legend(loc="lower right", fontsize=7.5, title=f"AUC ({round(100 * conf_level)}% DeLong CI)")
    n_pos = int(np.sum(y == 1))
    subtitle = f"n = {len(y)} ({n_pos} positive)"
    ax.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=10)
    return save(fig, path)


def plot_calibration(
    y_true,
    probabilities: dict[str, np.ndarray],
    *,
    n_bins: int = 10,
    path: str | Path | None = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Reliability diagram (binned observed vs predicted with Wilson CIs); legend gives the calibration
    intercept and slope and the Brier score. Models cycle through line styles and markers so that
    coinciding curves stay visible; the title gives the number of cases and bins."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 5.5))
    styles = ("-", "--", "-.", ":")
    markers = ("o", "s", "^", "D", "v", "P")
    y = np.asarray(y_true)
    for k, (name, p) in enumerate(probabilities.items()):
        curve = st.reliability_curve(y_true, p, n_bins=n_bins)
        cal = st.calibration_intercept_slope(y_true, p)
        ax.errorbar(
            curve["mean_predicted"],
            curve["observed"],
            # clipped at 0: at an observed share of 0 or 1 the Wilson bound equals it up to rounding
            yerr=np.clip(
                [curve["observed"] - curve["ci_lower"], curve["ci_upper"] - curve["observed"]], 0, None
            ),
            marker=markers[k % len(markers)],
            ls=styles[k % len(styles)],
            ms=4,
            capsize=2,
            elinewidth=0.8,
            zorder=3 + k,
            label=f"{name}: intercept {cal.intercept:.2f}, slope {cal.slope:.2f}, "
            f"Brier {st.brier_score(y_true, p):.3f}",
        )
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(
        xlabel="Predicted probability", ylabel="Observed fraction (95% Wilson CI)", xlim=(0, 1), ylim=(0, 1)
    )
    ax.legend(loc="upper left", fontsize=7)
    subtitle = f"n = {len(y)} ({int(np.sum(y == 1))} positive), {n_bins} bins of predicted risk"
    ax.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=10)
    return save(fig, path)


def plot_decision_curve(
    y_true,
    probabilities: dict[str, np.ndarray],
    *,
    thresholds=None,
    path: str | Path | None = None,
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """Net benefit of each model against treat-all and treat-none (Vickers & Elkin 2006)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4))
    pt = np.arange(0.01, 0.99, 0.01) if thresholds is None else np.asarray(thresholds, float)
    table = st.decision_curve(y_true, probabilities, pt)
    prevalence = float(np.mean(y_true))
    for label, part in table.groupby("label", sort=False):
        style = {"Treat All": dict(color="grey", ls="--"), "Treat None": dict(color="black", lw=0.8)}
        ax.plot(part["threshold"], part["net_benefit"], label=label, **style.get(label, {}))
    ax.set(
        xlabel="Threshold probability",
        ylabel="Net benefit",
        ylim=(-0.05, max(prevalence * 1.1, 0.05)),
        xlim=(pt.min(), pt.max()),
    )
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_kaplan_meier(
    time,
    event,
    group=None,
    *,
    path: str | Path | None = None,
    risk_times=None,
    ci: bool = True,
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """Kaplan–Meier curves (log-transformed CI, as R) per group with the numbers at risk below."""
    time, event = np.asarray(time, float), np.asarray(event)
    groups = np.zeros(time.size, dtype=int) if group is None else np.asarray(group)
    levels = list(dict.fromkeys(groups.tolist()))
    if ax is None:
        fig, (ax, ax_risk) = plt.subplots(
            2, 1, figsize=(6, 4.8), sharex=True, gridspec_kw={"height_ratios": [4, 1]}
        )
    else:
        fig, ax_risk = ax.figure, None
    risk_times = np.linspace(0, time.max(), 6) if risk_times is None else np.asarray(risk_times)
    for i, level in enumerate(levels):
        sel = groups == level
        km = st.kaplan_meier(time[sel], event[sel])
        t = np.r_[0.0, km["time"].to_numpy()]
        s = np.r_[1.0, km["survival"].to_numpy()]
        label = "all" if group is None else str(level)
        (line,) = ax.step(t, s, where="post", label=label)
        if ci:
            lo = np.r_[1.0, km["ci_lower"].fillna(0).to_numpy()]
            hi = np.r_[1.0, km["ci_upper"].fillna(0).to_numpy()]
            ax.fill_between(t, lo, hi, step="post", alpha=0.15, color=line.get_color(), lw=0)
        censored = km[km["n_censor"] > 0]
        ax.plot(censored["time"], censored["survival"], "|", color=line.get_color(), ms=8)
        if ax_risk is not None:
            at_risk = [int((time[sel] >= rt).sum()) for rt in risk_times]
            for rt, n in zip(risk_times, at_risk, strict=True):
                ax_risk.text(
                    rt,
                    len(levels) - 1 - i,
                    str(n),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=line.get_color(),
                )
    ax.set(ylabel="Survival probability", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    if ax_risk is not None:
        ax_risk.set(
            yticks=range(len(levels)),
            yticklabels=[str(v) for v in levels[::-1]],
            ylim=(-0.5, len(levels) - 0.5),
            xlabel="Time",
            title="Number at risk",
        )
        ax_risk.title.set_fontsize(8)
        for side in ("top", "right", "left"):
            ax_risk.spines[side].set_visible(False)
        ax_risk.tick_params(left=False)
    return save(fig, path)
