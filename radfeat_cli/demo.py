"""``radfeat demo``: synthesise a cohort and run every pipeline stage that exists on it (the app layer:
it uses both radfeat and models)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from radfeat_cli.common import EXIT_DATA, Progress, err, out, print_report

if TYPE_CHECKING:  # the command line starts without them (every `radfeat` call pays imports)
    from radfeat.manifest import ValidationReport

__all__ = ["DemoResult", "run_demo", "app"]

app = typer.Typer()


@dataclass
class DemoResult:
    """Where the demo put its outputs."""

    out_dir: Path
    manifest: Path
    validation: ValidationReport
    outputs: dict[str, Path] = field(default_factory=dict)
    n_features: int = 0
    #: (model, task, "AUC 0.88 (0.80–0.95)") for every model family and fusion variant.
    headline: list[tuple[str, str, str]] = field(default_factory=list)


def run_demo(
    out_dir: str | Path = "radfeat_demo",
    n_cases: int = 24,
    seed: int = 0,
    jobs: int = 2,
    progress=None,
    log=None,
) -> DemoResult:
    """Synthesise ``n_cases`` PET/CT cases into ``out_dir``, validate them, extract the feature table,
    compare model families for EGFR with nested CV (small settings), lock a model on the ``train``
    cohort and evaluate it on the ``external`` cohort (extracted from its scans with the model's
    settings), and end with a small fusion-network run (both tasks, out-of-fold AUCs, Grad-CAM).
    """
    from radfeat.extract import extract_table
    from radfeat.manifest import validate_manifest
    from radfeat.synth import make_cohort

    out = Path(out_dir)
    manifest = make_cohort(out / "cohort", n_cases=n_cases, seed=seed, external_fraction=1 / 3)
    report = validate_manifest(manifest)
    (out / "validation.json").write_text(report.to_json())
    outputs = {"cohort manifest": manifest, "validation report": out / "validation.json"}
    result = DemoResult(out, manifest, report, outputs)
    if not report.ok:
        return result
    extraction = extract_table(manifest, out / "features.parquet", jobs=jobs, progress=progress)
    outputs["feature table"] = extraction.table_path
    result.n_features = len(extraction.table.columns)
    say = log or (lambda message: None)
    say("batch effect: the external cohort's scanner before and after ComBat")
    outputs["batch-effect report"], summary = batch_effect_run(extraction.table_path, out / "batch_effect")
    result.headline += summary
    say("benchmark: nested CV of lr, rf and xgb for EGFR (about a minute)")
    outputs["model-family report"] = benchmark_families(
        extraction.table, out / "benchmark", jobs=jobs, progress=progress
    )
    result.headline += _headline(out / "benchmark" / "results.csv", "family", "egfr")
    say("lifecycle: lock `auto` on the train cohort, score the external cohort from its scans, evaluate")
    locked = lifecycle_run(manifest, extraction.table_path, out, jobs=jobs, progress=progress)
    outputs["locked model"] = locked["model"]
    outputs["external-cohort evaluation"] = locked["report"]
    result.headline += locked["headline"]
    say("fusion network: 2-fold CV, 4 epochs, both tasks, Grad-CAM (about a minute on 2 cores)")
    fusion = fusion_run(manifest, extraction.table, out / "fusion", jobs=jobs, progress=progress)
    if fusion is not None:
        outputs["fusion network results"] = fusion
        result.headline += _headline(out / "fusion" / "results.csv", "variant", None)
    say("checklist: the CLEAR / METRICS items radfeat can answer from this study folder")
    outputs["reporting checklist"] = checklist_run(out)
    return result


def checklist_run(out: Path) -> Path:
    """Fill the reporting checklist from the demo's own folder; return its Markdown path."""
    from models.checklist import fill_checklist, gather_evidence, write_checklist

    table = fill_checklist(gather_evidence(out))
    return write_checklist(table, out / "checklist")["markdown"]


def _headline(results_csv: Path, model_column: str, task: str | None) -> list[tuple[str, str, str]]:
    """``(model, task, "AUC a (lo–hi)")`` rows from a results table (classical or fusion)."""
    import pandas as pd

    table = pd.read_csv(results_csv)
    auc = "auc_oof" if "auc_oof" in table.columns else "auc"
    rows = []
    for _, r in table.iterrows():
        label = f"fusion {r[model_column]}" if model_column == "variant" else str(r[model_column])
        text = f"AUC {r[auc]:.2f} ({r['auc_ci_low']:.2f}–{r['auc_ci_high']:.2f})"
        rows.append((label, str(r["task"]) if task is None else task, text))
    return rows


def batch_effect_run(table_path: Path, out_dir: Path) -> tuple[Path, list[tuple[str, str, str]]]:
    """The batch-effect report across the cohorts (``external`` is a shifted scanner) and its headline:
    the share of features with a scanner effect before and after ComBat."""
    from models.batch_effect import dataset_batch_effect, write_batch_effect_report
    from models.data import load_dataset

    data = load_dataset(table_path, "egfr", harmonise="cohort", cohort_column=None)
    effect = dataset_batch_effect(data)
    paths = write_batch_effect_report(effect, out_dir, title="Scanner effect of the external cohort")
    before, after = effect.summary.iloc[0], effect.summary.iloc[1]
    key = "location effect (q < 0.05)"
    return paths["markdown"], [
        (
            "batch effect (cohort)",
            "features",
            f"{before[key]:.0%} differ by scanner (q < 0.05) → {after[key]:.0%} after ComBat; "
            f"separability AUC {before['batch separability AUC']:.2f} → "
            f"{after['batch separability AUC']:.2f}",
        )
    ]


def lifecycle_run(manifest: Path, table_path: Path, out: Path, jobs: int = 2, progress=None) -> dict:
    """Lock an ``auto`` model (lr + rf + xgb, small CV) on the ``train`` cohort, extract the ``external``
    cohort from its manifest with the model's settings, score and evaluate it: the study's verdict next
    to the internal CV estimate."""
    import pandas as pd

    from models.cv import CVConfig
    from models.data import load_dataset
    from models.lifecycle import fit_locked, save_model
    from models.lifecycle.evaluate import evaluate_predictions, write_evaluation_report
    from radfeat.table import read_provenance, read_table
    from radfeat.utils.atomic import write_text
    from radfeat_cli.lifecycle import score_source

    table = read_table(table_path).reset_index()
    provenance = read_provenance(table_path)
    train = table[table["cohort"] == "train"].reset_index(drop=True)
    train.attrs["radfeat"] = provenance
    data = load_dataset(train, "egfr", name="demo training cohort")
    config = CVConfig(n_splits=3, n_repeats=1, inner_splits=2, inner_repeats=1, n_jobs=jobs)
    if progress:
        progress({"total": 3, "title": "lifecycle: training-cohort CV", "unit": "folds"})
    model, _ = fit_locked(
        data,
        families=["lr", "rf", "xgb"],
        config=config,
        comparators=["suvmax"],
        cache_dir=out / "model.work" / "folds",
        progress=(lambda s: progress({"case_id": f"fold {s['fold']}", "ok": True})) if progress else None,
    )
    save_model(model, out / "model", provenance)
    cohort = pd.read_csv(manifest, dtype={"case_id": str})
    external_manifest = manifest.with_name("external_manifest.csv")  # paths stay relative to the cohort
    write_text(cohort[cohort["cohort"] == "external"].to_csv(index=False), external_manifest)
    predictions = out / "external_predictions.csv"
    scored, _ = score_source(
        model, out / "model", external_manifest, predictions, jobs=jobs, progress=progress
    )
    write_text(scored.to_csv(index=False), predictions)
    evaluation = evaluate_predictions(scored, "egfr", by="cohort")
    paths = write_evaluation_report(evaluation, out / "external_evaluation", card=model.card)
    est = model.card["cv_estimate"]
    headline = [
        (
            "locked auto: training-cohort CV",
            "egfr",
            f"AUC {est['auc_oof']:.2f} ({est['auc_ci_low']:.2f}–{est['auc_ci_high']:.2f})",
        )
    ]
    for _, r in evaluation.metrics.iterrows():
        if r["cohort"] == "external":
            name = (
                "locked auto: external cohort" if r["model"] == "model" else f"locked {r['model']}: external"
            )
            headline.append((name, "egfr", f"AUC {r.auc:.2f} ({r.auc_ci_low:.2f}–{r.auc_ci_high:.2f})"))
    if len(headline) == 1:  # a tiny external cohort with one class: no AUC, and the demo says so
        reason = "; ".join(n for n in evaluation.notes if "one class" in n) or "no labelled external case"
        headline.append(("locked auto: external cohort", "egfr", f"not estimable ({reason})"))
    return {"model": out / "model" / "model_card.md", "report": paths["markdown"], "headline": headline}


def fusion_run(manifest: Path, table, out_dir: Path, jobs: int = 2, progress=None) -> Path | None:
    """A small cross-validated run of the PET/CT fusion network (tiny preset, 2 folds, 4 epochs) on the
    demo cohort with PET-descriptor tokens; ``None`` when jax is not installed."""
    try:
        from models.fusion.data import build_fusion_data
        from models.fusion.run import PRESETS, run_fusion_study
    except ImportError:
        return None
    from dataclasses import replace

    model_cfg, train_cfg = PRESETS["tiny"]
    data = build_fusion_data(
        manifest, table, groups=("habitat", "pet"), positive={"subtype": "squamous"}, jobs=jobs
    )
    epochs = 4
    if progress:
        progress({"total": 2 * epochs, "title": "fusion network: epochs", "unit": "epochs"})

    def tick(record: dict) -> None:
        if progress and "epoch" in record:
            progress({"case_id": f"epoch {record['epoch']}", "ok": True})

    run = run_fusion_study(
        data,
        out_dir,
        model_cfg=model_cfg,
        train_cfg=replace(train_cfg, epochs=epochs, min_epochs=1),
        n_splits=2,
        n_gradcam=2,
        progress=tick,
    )
    return run.paths["report"]


def benchmark_families(table, out_dir: Path, jobs: int = 2, progress=None) -> Path:
    """A quick nested-CV comparison of three families for EGFR on the demo table (small settings)."""
    import numpy as np

    from models.cv import CVConfig, cross_validate
    from models.data import load_dataset
    from models.report import write_report

    data = load_dataset(table, "egfr", name="synthetic demo cohort")
    smallest = int(np.bincount(data.y).min())
    folds = max(2, min(5, smallest))
    config = CVConfig(
        n_splits=folds,
        n_repeats=1,
        inner_splits=max(2, min(3, smallest - smallest // folds)),
        inner_repeats=1,
        n_jobs=jobs,
    )
    if progress:
        progress({"total": folds, "title": "benchmark: outer folds", "unit": "folds"})
    result = cross_validate(
        data,
        ["lr", "rf", "xgb"],
        config,
        cache_dir=out_dir / "folds",
        progress=(lambda s: progress({"case_id": f"fold {s['fold']}", "ok": True})) if progress else None,
    )
    return write_report(result, out_dir)["markdown"]


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("radfeat_demo"), "--output", "-o", "--out", help="Output folder."),
    cases: int = typer.Option(24, "--cases", "-n", min=4, help="Number of synthetic patients."),
    seed: int = typer.Option(0, help="Random seed."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Worker processes."),
) -> None:
    """Synthesise a PET/CT cohort and run every stage on it: validation, feature table, model-family
    benchmark and a small fusion-network run; print the outputs and the headline AUCs.

    Example: radfeat demo -o radfeat_demo -n 24
    """
    err.print(f"radfeat demo: {cases} synthetic PET/CT cases → {out_dir}")
    with Progress(quiet=False) as progress:
        result = run_demo(
            out_dir, cases, seed, jobs=jobs, progress=progress, log=lambda m: err.print(m, markup=False)
        )
    table = Table(title="radfeat demo: outputs")
    table.add_column("stage")
    table.add_column("path", overflow="fold")
    for stage, path in result.outputs.items():
        table.add_row(stage, str(path))
    out.print(table)
    if result.headline:
        numbers = Table(
            title="headline numbers (95 % DeLong CI; out-of-fold unless external; tiny demo settings)"
        )
        for column in ("model", "task", "AUC (95 % CI)"):
            numbers.add_column(column)
        for row in result.headline:
            numbers.add_row(*row)
        out.print(numbers)
    if not result.validation.ok:
        print_report(result.validation)
        raise typer.Exit(EXIT_DATA)
