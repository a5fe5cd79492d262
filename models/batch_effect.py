"""Batch-effect report: how much of each feature is scanner / centre, before and after ComBat.

Descriptive, for the methods section and the reviewer: the table's batch effect (per-feature
Kruskal–Wallis test across batches with Benjamini–Hochberg FDR; share of features with q < 0.05;
how well a classifier tells the batches apart; a PCA plot coloured by batch), then the same after
ComBat learned on **all** cases of the table. The models never see that whole-table harmonisation:
``--harmonise`` refits ComBat inside every training fold (:mod:`models.harmonise`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models import stats as st
from models.results import benjamini_hochberg

__all__ = [
    "feature_batch_tests",
    "batch_separability",
    "BatchEffect",
    "batch_effect",
    "dataset_batch_effect",
    "write_batch_effect_report",
]

#: FDR level at which a feature counts as batch-affected.
ALPHA = 0.05


def feature_batch_tests(X: pd.DataFrame, batch: np.ndarray) -> pd.DataFrame:
    """Per feature: Kruskal–Wallis H and p across batches (as R's ``kruskal.test``), the ε² effect
    size (H / (n − 1)) and the Benjamini–Hochberg q over features.

    Missing values are left out per feature; a feature constant within the table has p = 1.
    """
    batch = np.asarray(batch).astype(str)
    levels = sorted(set(batch))
    rows = []
    for col in X.columns:
        values = X[col].to_numpy(dtype=float)
        groups = [values[(batch == b) & ~np.isnan(values)] for b in levels]
        groups = [g for g in groups if len(g)]
        if len(groups) < 2 or np.nanstd(values) == 0:
            rows.append((col, 0.0, 1.0, 0.0))
            continue
        with np.errstate(all="ignore"):
            res = st.kruskal_test(*groups)
        rows.append((col, res.statistic, res.p_value, res.extra["epsilon_squared"]))
    out = pd.DataFrame(rows, columns=["feature", "kruskal_h", "p_location", "epsilon_squared"])
    out["p_location"] = out["p_location"].fillna(1.0)
    out["q_location"] = benjamini_hochberg(out["p_location"].to_numpy()) if len(out) else []
    return out


def _standardised(X: pd.DataFrame) -> np.ndarray:
    values = X.to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        med = np.nanmedian(values, axis=0)
        values = np.where(np.isnan(values), med, values)
        sd = values.std(axis=0)
    keep = np.isfinite(sd) & (sd > 0)
    return (values[:, keep] - values[:, keep].mean(axis=0)) / sd[keep]


def batch_separability(X: pd.DataFrame, batch: np.ndarray, seed: int = 0) -> float:
    """How well the features tell the batches apart: 5-fold cross-validated AUC (one-vs-rest, macro)
    of an L2 logistic regression on standardised features; 0.5 = indistinguishable."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    batch = np.asarray(batch).astype(str)
    levels, counts = np.unique(batch, return_counts=True)
    if len(levels) < 2:
        return float("nan")
    Z = _standardised(X)
    folds = StratifiedKFold(n_splits=int(min(5, counts.min())), shuffle=True, random_state=seed)
    if folds.n_splits < 2:
        return float("nan")
    proba = cross_val_predict(
        LogisticRegression(C=0.1, max_iter=2000), Z, batch, cv=folds, method="predict_proba"
    )
    if len(levels) == 2:
        return float(roc_auc_score(batch == levels[1], proba[:, 1]))
    return float(roc_auc_score(batch, proba, multi_class="ovr", average="macro"))


@dataclass
class BatchEffect:
    """The report's numbers: per-feature tests ``before`` / ``after``, shares of batch-affected
    features, separability AUCs, the PCA scores (cases × 2) and the batches."""

    batch_column: str
    batch: np.ndarray
    before: pd.DataFrame
    after: pd.DataFrame
    summary: pd.DataFrame
    pca_before: np.ndarray
    pca_after: np.ndarray
    notes: list[str] = field(default_factory=list)


def _pca(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import PCA

    Z = _standardised(X)
    pca = PCA(n_components=min(2, Z.shape[1]), random_state=0).fit(Z)
    return pca.transform(Z), pca.explained_variance_ratio_


def batch_effect(
    X: pd.DataFrame, batch: np.ndarray, batch_column: str, protect: pd.DataFrame | None = None
) -> BatchEffect:
    """Batch effect of the feature columns ``X`` (cases × features) across ``batch``, before and after
    ComBat learned on all these cases (``protect``: covariate columns whose effect is kept)."""
    from models.harmonise import ComBatHarmoniser
    from models.harmonise import batch_column as batch_name

    name = batch_name(batch_column)
    frame = X.reset_index(drop=True).copy()
    frame[name] = np.asarray(batch).astype(str)
    protected = []
    if protect is not None and protect.shape[1]:
        for col in protect.columns:
            frame[col] = protect[col].to_numpy()
            protected.append(col)
    harmoniser = ComBatHarmoniser(name, protect=tuple(protected)).fit(frame)
    after = harmoniser.transform(frame)[list(X.columns)]
    before_tests = feature_batch_tests(X.reset_index(drop=True), batch)
    after_tests = feature_batch_tests(after, batch)
    pca_b, var_b = _pca(X)
    pca_a, var_a = _pca(after)
    rows = []
    for stage, tests, frame_ in (("before", before_tests, X), ("after ComBat", after_tests, after)):
        rows.append(
            {
                "stage": stage,
                "features": len(tests),
                "location effect (q < 0.05)": float((tests["q_location"] < ALPHA).mean()),
                "median ε²": float(tests["epsilon_squared"].median()),
                "batch separability AUC": batch_separability(frame_, batch),
            }
        )
    notes = [
        f"PCA variance explained: PC1 {var_b[0]:.0%}, PC2 {var_b[-1]:.0%} before; "
        f"PC1 {var_a[0]:.0%}, PC2 {var_a[-1]:.0%} after",
        f"{len(harmoniser.passthrough_)} feature(s) without spread left unchanged",
    ]
    return BatchEffect(
        batch_column,
        np.asarray(batch).astype(str),
        before_tests,
        after_tests,
        pd.DataFrame(rows),
        pca_b,
        pca_a,
        notes,
    )


def _pca_figure(effect: BatchEffect):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.3))
    levels = sorted(set(effect.batch))
    colours = plt.get_cmap("tab10")
    for ax, scores, title in (
        (axes[0], effect.pca_before, "before"),
        (axes[1], effect.pca_after, "after ComBat"),
    ):
        for i, level in enumerate(levels):
            rows = effect.batch == level
            y = scores[rows, 1] if scores.shape[1] > 1 else np.zeros(rows.sum())
            ax.scatter(scores[rows, 0], y, s=14, alpha=0.75, color=colours(i % 10), label=level)
        ax.set_title(f"{title}", fontsize=10)
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
    axes[0].legend(title=effect.batch_column, fontsize=8)
    fig.suptitle(f"Feature space coloured by {effect.batch_column}", fontsize=11)
    fig.tight_layout()
    return fig


def write_batch_effect_report(effect: BatchEffect, out_dir: str | Path, title: str | None = None) -> dict:
    """Write ``summary.csv``, ``features.csv`` (per-feature tests before / after), ``pca.png``/``.svg``,
    ``report.md`` and ``report.html``; return their paths."""
    import matplotlib.pyplot as plt

    from models.figures import save
    from radfeat.utils.atomic import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "summary.csv", "features": out / "features.csv"}
    write_text(effect.summary.to_csv(index=False), paths["summary"])
    merged = effect.before.merge(effect.after, on="feature", suffixes=("_before", "_after"))
    write_text(merged.to_csv(index=False), paths["features"])
    fig = _pca_figure(effect)
    for ext in ("png", "svg"):
        paths[f"pca_{ext}"] = out / f"pca.{ext}"
        save(fig, paths[f"pca_{ext}"])
    plt.close(fig)
    counts = pd.Series(effect.batch).value_counts().sort_index()
    shown = effect.summary.copy()
    shown["location effect (q < 0.05)"] = shown["location effect (q < 0.05)"].map("{:.0%}".format)
    shown["median ε²"] = shown["median ε²"].map("{:.3f}".format)
    shown["batch separability AUC"] = shown["batch separability AUC"].map("{:.3f}".format)
    top = merged.sort_values("kruskal_h_before", ascending=False).head(10)
    top_shown = pd.DataFrame(
        {
            "feature": top.feature,
            "ε² before": top.epsilon_squared_before.map("{:.3f}".format),
            "q before": top.q_location_before.map("{:.2g}".format),
            "ε² after": top.epsilon_squared_after.map("{:.3f}".format),
            "q after": top.q_location_after.map("{:.2g}".format),
        }
    )
    heading = title or f"Batch effect across `{effect.batch_column}`"
    intro = (
        f"{len(effect.batch)} cases in {len(counts)} batches ("
        + ", ".join(f"{b}: {n}" for b, n in counts.items())
        + "). Location: Kruskal–Wallis test per feature, Benjamini–Hochberg FDR "
        f"at {ALPHA}; ε² = H/(n−1). Separability: 5-fold CV AUC of a logistic regression telling the "
        "batches apart (0.5 = indistinguishable). 'After' is ComBat learned on all cases of this table, "
        "for description only: models learn ComBat inside every training fold (--harmonise)."
    )
    lines = [
        f"# {heading}",
        "",
        intro,
        "",
        shown.to_markdown(index=False),
        "",
        "## Features with the largest batch effect",
        "",
        top_shown.to_markdown(index=False),
        "",
        *[f"- {n}" for n in effect.notes],
        "",
        "![PCA](pca.png)",
        "",
    ]
    paths["markdown"] = out / "report.md"
    write_text("\n".join(lines), paths["markdown"])
    page = (
        f"<html><head><meta charset='utf-8'><title>{html.escape(heading)}</title></head><body>"
        f"<h1>{html.escape(heading.replace('`', ''))}</h1><p>{html.escape(intro)}</p>"
        + shown.to_html(index=False)
        + "<h2>Features with the largest batch effect</h2>"
        + top_shown.to_html(index=False)
        + "".join(f"<p>{html.escape(n)}</p>" for n in effect.notes)
        + "<img src='pca.svg' width='800'></body></html>"
    )
    paths["html"] = out / "report.html"
    write_text(page, paths["html"])
    return paths


def dataset_batch_effect(data) -> BatchEffect:
    """:func:`batch_effect` of a :class:`models.data.Dataset` loaded with ``harmonise=`` (its radiomics
    columns, batch labels and protected covariates)."""
    from models.harmonise import PROTECT_PREFIX, batch_columns, harmoniser_columns, source_column

    batch = batch_columns(data.X.columns)
    if not batch:
        raise ValueError("the table was loaded without a batch column: give --harmonise COLUMN")
    skip = set(harmoniser_columns(data.X.columns))
    features = [c for c in data.X.columns if c not in skip and not str(c).startswith("clin_")]
    protect = data.X[[c for c in data.X.columns if str(c).startswith(PROTECT_PREFIX)]]
    return batch_effect(
        data.X[features], data.X[batch[0]].astype(str).to_numpy(), source_column(batch[0]), protect
    )
