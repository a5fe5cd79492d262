"""One call from a cohort to a finished fusion study: cross-validated variants, the ablation table
with DeLong comparisons, out-of-fold predictions, ROC figures per task and Grad-CAM overlays
(what ``radfeat train`` runs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from models.fusion.ablation import ABLATIONS, ablation_table, run_ablations
from models.fusion.data import FeaturePrep, FusionData
from models.fusion.net import FusionConfig
from models.fusion.train import FusionCVResult, TrainConfig, enable_compilation_cache

__all__ = ["PRESETS", "FusionRun", "run_fusion_study"]

#: Named (model, training) configurations. ``tiny`` is for tests, notebooks and the demo on a CPU.
PRESETS: dict[str, tuple[FusionConfig, TrainConfig]] = {
    "tiny": (
        FusionConfig(d=16, heads=2, blocks=1),
        TrainConfig(epochs=20, batch_size=16, lr=2e-3, patience=6),
    ),
    "small": (FusionConfig(d=32, heads=4, blocks=1), TrainConfig(epochs=40, batch_size=32, lr=1e-3)),
    "default": (FusionConfig(), TrainConfig()),
}


@dataclass
class FusionRun:
    """Outputs of :func:`run_fusion_study`."""

    results: dict[str, FusionCVResult]
    table: pd.DataFrame
    paths: dict[str, Path] = field(default_factory=dict)


def run_fusion_study(
    data: FusionData,
    out_dir: str | Path,
    *,
    model_cfg: FusionConfig | None = None,
    train_cfg: TrainConfig | None = None,
    variants: Sequence[str] = ("full",),
    n_splits: int = 5,
    n_repeats: int = 1,
    prep: FeaturePrep | None = None,
    comparators: dict[str, FusionCVResult] | None = None,
    n_gradcam: int = 4,
    baseline_data: FusionData | None = None,
    progress: Callable[[dict], None] | None = None,
) -> FusionRun:
    """Cross-validate the variants, write ``results.csv``/``results.md`` (ablation table),
    ``oof_predictions.csv``, ``roc_<task>.png`` and ``gradcam/<task>/<case>.png``; return them.
    ``baseline_data`` (the same cases as 64 × 64 slices, :data:`models.fusion.baseline_cnn.DLS_PATCH`)
    adds the EGFR-DLS-like CNN as a row ``egfr_dls`` on the same splits; ``comparators`` (classical
    families and SUVmax on the same folds, :func:`models.fusion.comparators.classical_on_fusion_folds`)
    join the table, the ROC and calibration figures and the DeLong / McNemar comparisons."""
    from models.figures import plot_roc
    from models.fusion.gradcam import attention_maps, save_overlays
    from radfeat.utils.atomic import atomic_path, write_text

    enable_compilation_cache()
    model_cfg, train_cfg = model_cfg or PRESETS["default"][0], train_cfg or PRESETS["default"][1]
    model_cfg = replace(model_cfg, tasks=data.tasks, n_classes=(2,) * len(data.tasks))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if "full" not in variants:
        variants = ("full", *variants)
    results = run_ablations(
        data,
        model_cfg,
        train_cfg,
        variants,
        n_splits=n_splits,
        n_repeats=n_repeats,
        prep=prep,
        progress=progress,
        out_dir=out,
    )
    if baseline_data is not None:
        from models.fusion.ablation import _variant_key
        from models.fusion.baseline_cnn import dls_config
        from models.fusion.train import cross_validate_fusion

        if progress:
            progress({"variant": "egfr_dls", "started": True})
        dls_cfg = dls_config(data.tasks)
        key = _variant_key("egfr_dls", baseline_data, dls_cfg, train_cfg, FeaturePrep(), n_splits, n_repeats)
        # checkpointed like the variants: a rerun resumes it (finished folds are read back at once)
        results["egfr_dls"] = cross_validate_fusion(
            baseline_data, dls_cfg, train_cfg, n_splits=n_splits, n_repeats=n_repeats,
            progress=progress, checkpoint_dir=out / "checkpoints" / f"egfr_dls_{key}",
        )  # fmt: skip
    results.update(comparators or {})
    table = ablation_table(results)
    paths: dict[str, Path] = {}
    with atomic_path(out / "results.csv") as tmp:
        table.to_csv(tmp, index=False)
    paths["results"] = out / "results.csv"
    write_text(_markdown(table, n_splits, n_repeats), out / "results.md")
    paths["report"] = out / "results.md"
    oof = pd.concat([r.predictions.assign(variant=n) for n, r in results.items()], ignore_index=True)
    with atomic_path(out / "oof_predictions.csv") as tmp:
        oof.to_csv(tmp, index=False)
    paths["predictions"] = out / "oof_predictions.csv"
    import json

    histories = {name: res.histories for name, res in results.items() if res.histories}
    if histories:  # per variant, per fold: every epoch's loss, validation AUCs and time
        write_text(json.dumps(histories, indent=1, default=float), out / "histories.json")
        paths["histories"] = out / "histories.json"
    for task in data.tasks:
        curves, y = {}, None
        for name, res in results.items():
            s = res.case_scores(task)
            s = s[s["y"] >= 0].sort_values("case_id")
            if y is None:
                y = s["y"].to_numpy().astype(int)
            if len(s) == len(y):
                curves[name] = s["score"].to_numpy()
        if y is not None and len(np.unique(y)) == 2:
            fig = plot_roc(y, curves, title=f"{task}: out-of-fold ROC", n_boot=100)
            with atomic_path(out / f"roc_{task}.png") as tmp:
                fig.savefig(tmp, dpi=110, format="png")
            import matplotlib.pyplot as plt

            plt.close(fig)
            paths[f"roc_{task}"] = out / f"roc_{task}.png"
            # reliability of the calibrated probabilities (comparators' probabilities beside them)
            from models.figures import plot_calibration

            shown = {n: c for n, c in curves.items() if 0 <= c.min() and c.max() <= 1}
            fig = plot_calibration(y, shown, n_bins=5, title=f"{task}: out-of-fold calibration")
            with atomic_path(out / f"calibration_{task}.png") as tmp:
                fig.savefig(tmp, dpi=110, format="png")
            plt.close(fig)
            paths[f"calibration_{task}"] = out / f"calibration_{task}.png"
    full = results["full"]
    if n_gradcam:
        mass = _gradcam_outputs(results, data, baseline_data, n_gradcam, out, comparators or {})
        if mass is not None:
            with atomic_path(out / "gradcam" / "map_mass.csv") as tmp:
                mass.to_csv(tmp, index=False)
            paths["map_mass"] = out / "gradcam" / "map_mass.csv"
            paths["gradcam"] = out / "gradcam"
    if (
        full.example is not None
        and n_gradcam
        and len(model_cfg.modalities) == 2
        and model_cfg.fusion == "cross"
    ):
        fitted, test_idx = full.example
        show = np.asarray(test_idx)[:n_gradcam]
        att = attention_maps(fitted.model, data, fitted.prep, show)
        save_overlays(
            data,
            show,
            att,
            out / "attention",
            title="CLS → image-token attention (full model)",
            colorbar_label="attention weight (0–1, scaled per map)",
        )
    return FusionRun(results, table, paths)


def _gradcam_outputs(
    results: dict[str, FusionCVResult],
    data: FusionData,
    baseline_data: FusionData | None,
    n_gradcam: int,
    out: Path,
    comparators: dict,
    margin_mm: float = 4.0,
) -> pd.DataFrame | None:
    """HiResCAM of every image variant trained in this run (its first fold's model on that fold's test
    cases) and of the EGFR-DLS baseline: the core / margin / outside mass table over all those cases
    (``layer`` scale1, and the finer ``fine`` maps of the full model and the baseline), overlays of the
    first ``n_gradcam`` cases for the full model (``gradcam/<task>``, ``gradcam/fine/<task>``) and the
    baseline (``gradcam/egfr_dls/<task>``). The margin is ``margin_mm`` wide on every patch grid."""
    from models.fusion.gradcam import grad_cam, map_mass_table, save_overlays

    tables = []
    for name, res in results.items():
        if name in comparators or res.example is None:
            continue  # classical comparators, or a variant read back from an earlier run
        fitted, test_idx = res.example
        source = baseline_data if name == "egfr_dls" else data
        if source is None or not fitted.model.config.uses_images:
            continue  # no image pathway (features only)
        test_idx = np.asarray(test_idx)
        view, mid = source.ct.shape[1] // 2, source.ct.shape[2] // 2
        margin_px = max(1, int(round(margin_mm / source.spec.pixel_mm)))
        layers = ("scale1", "fine") if name in ("full", "egfr_dls") else ("scale1",)
        for layer in layers:
            cams_by_task = {
                task: grad_cam(fitted.model, source, fitted.prep, test_idx, task, layer=layer)
                for task in fitted.model.config.tasks
            }
            mask = source.mask[test_idx, view, mid]
            tables.append(map_mass_table(cams_by_task, mask, margin_px).assign(variant=name, layer=layer))
            if name not in ("full", "egfr_dls"):
                continue
            show = test_idx[:n_gradcam]
            for task, cams in cams_by_task.items():
                parts = ["egfr_dls"] * (name == "egfr_dls") + ["fine"] * (layer == "fine") + [task]
                folder = out.joinpath("gradcam", *parts)
                what = "EGFR-DLS baseline" if name == "egfr_dls" else "full model"
                save_overlays(
                    source,
                    show,
                    {m: c[: len(show)] for m, c in cams.items()},
                    folder,
                    title=f"HiResCAM ({layer} map) of the predicted {task} class ({what}, fold 1 test case)",
                )
    if not tables:
        return None
    mass = pd.concat(tables, ignore_index=True)
    return mass[["variant", "layer", *[c for c in mass.columns if c not in ("variant", "layer")]]]


def _markdown(table: pd.DataFrame, n_splits: int, n_repeats: int) -> str:
    lines = [
        "# Fusion network: cross-validated variants",
        "",
        f"Out-of-fold patient predictions, stratified {n_splits}-fold × {n_repeats} (made as `radfeat "
        "benchmark` makes its splits for the same table order, label, fold count and seed). "
        "The network's probabilities are Platt-calibrated on each fold model's validation cases (inside its "
        "training part). AUC with DeLong 95 % CI; ACC/SEN/SPEC at thresholds learned on each fold's "
        "training part (its positive share, on the calibrated scale; never the test cases); Brier score "
        "and calibration slope of the out-of-fold probabilities (ideal 1); p DeLong: paired DeLong test "
        "of the AUC against the full model; p McNemar: McNemar's test of the paired calls at those "
        "thresholds. Classical comparators and SUVmax (when present) ran on the same folds.",
        "",
        "| task | variant | n | AUC (95 % CI) | ACC | SEN | SPEC | Brier | cal. slope | p DeLong "
        "| p McNemar |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(v, spec=".3f"):
        return "—" if v is None or pd.isna(v) else format(v, spec)

    for _, r in table.iterrows():
        lines.append(
            f"| {r.task} | {r.variant} | {r.n} | {r.auc:.3f} ({r.ci_low:.3f}–{r.ci_high:.3f}) | "
            f"{fmt(r.acc)} | {fmt(r.sen)} | {fmt(r.spec)} | {fmt(r.get('brier'))} | "
            f"{fmt(r.get('calibration_slope'), '.2f')} | {fmt(r.get('p_vs_full'), '.3g')} | "
            f"{fmt(r.get('mcnemar_p_vs_full'), '.3g')} |"
        )
    lines += ["", "Variants:", ""]
    for name, text in dict.fromkeys(zip(table["variant"], table["description"], strict=True)):
        lines.append(f"- `{name}`: {text}")
    return "\n".join(lines) + "\n"


def parse_variants(text: str) -> tuple[str, ...]:
    """``"all"``, ``"none"`` or a comma-separated list of :data:`ABLATIONS` names."""
    if text == "all":
        return tuple(ABLATIONS)
    if text in ("none", ""):
        return ("full",)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; choose from {sorted(ABLATIONS)} or 'all'")
    return names
