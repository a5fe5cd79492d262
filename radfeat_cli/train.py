"""The fusion-network command: ``train``."""

from __future__ import annotations

from pathlib import Path

import typer

from radfeat.errors import RadfeatError
from radfeat_cli.common import EXIT_USAGE, Progress, err, error, out

app = typer.Typer()


def _check_folds(manifest: Path, table: Path | None, tasks, positive: dict, folds: int) -> None:
    """Refuse, before any patch is extracted, more folds than the rarest class of the first task has
    cases (stratified splits need one per fold); suggest the largest feasible ``--folds``."""
    import pandas as pd

    from models.labels import encode_binary
    from radfeat.manifest import load_manifest

    rows = load_manifest(manifest).table
    source = rows
    if tasks and tasks[0] not in rows.columns and table is not None:
        from radfeat.table import read_table

        source = read_table(table).reset_index()
    if not tasks or tasks[0] not in source.columns:
        return  # build_fusion_data names the missing label
    codes = encode_binary(
        pd.Series(source[tasks[0]].to_numpy(), name=tasks[0]), positive.get(tasks[0]), allow_missing=True
    ).codes
    rarest = int(min((codes == 0).sum(), (codes == 1).sum()))
    if folds > rarest:
        raise ValueError(
            f"--folds {folds} needs at least {folds} cases of each {tasks[0]!r} class; the rarest class has "
            f"{rarest}. Hint: use --folds {max(rarest, 2)}"
            + (" (or add cases)" if rarest >= 2 else "; this cohort is too small to cross-validate")
        )


def _cohort_ids(manifest: Path, table: Path | None, cohort: str) -> list[str]:
    """Case ids of ``cohort`` (the manifest's ``cohort`` column, else the table's)."""
    from radfeat.manifest import load_manifest

    rows = load_manifest(manifest).table
    source = rows
    if "cohort" not in rows.columns and table is not None:
        from radfeat.table import read_table

        source = read_table(table).reset_index()
    if "cohort" not in source.columns:
        raise ValueError(
            f"--train-cohort {cohort!r}: neither the manifest nor the table has a `cohort` column"
        )
    values = source["cohort"].astype(str)
    if cohort not in set(values):
        raise ValueError(
            f"--train-cohort {cohort!r} is not a cohort of {manifest}; found {sorted(set(values))}"
        )
    return source.loc[values == cohort, "case_id"].astype(str).tolist()


def _lock(data, table, model_cfg, train_cfg, folds, threshold, output: Path, quiet: bool) -> None:
    """Cross-validate on the training cohort, keep the fold ensemble, save the model folder."""
    from models.lifecycle.fusion import fit_locked_fusion, save_fusion_model
    from radfeat.table import read_provenance

    err.print(
        f"locking the fusion network on {len(data)} training cases: {folds}-fold CV, the fold models "
        "become the ensemble",
        markup=False,
    )
    with Progress(quiet, title="fusion: fold models", unit="epochs") as bar:
        bar({"total": folds * train_cfg.epochs})
        locked, cv = fit_locked_fusion(
            data,
            model_cfg,
            train_cfg,
            n_splits=folds,
            threshold_rule=threshold,
            progress=lambda r: (
                bar({"case_id": f"fold {r.get('fold')} epoch {r.get('epoch')}", "ok": True})
                if "epoch" in r
                else None
            ),
        )
    provenance = read_provenance(table) if table is not None else {}
    save_fusion_model(locked, output, provenance)
    from radfeat.utils.atomic import write_text

    work = output.with_name(output.name + ".work")
    work.mkdir(parents=True, exist_ok=True)  # patient-level CV predictions stay outside the model folder
    write_text(cv.predictions.to_csv(index=False), work / "oof_predictions.csv")
    for task, e in locked.card["cv_estimate"].items():
        out.print(
            f"{task}: training-cohort CV AUC {e['auc_oof']:.3f} "
            f"({e['auc_ci_low']:.3f}–{e['auc_ci_high']:.3f}); "
            f"threshold {locked.thresholds[task]:.4f} ({threshold})",
            markup=False,
        )
    out.print(f"model folder: {output} (fingerprint {locked.fingerprint}; {len(locked.members)} fold models)")


def _patch_spec(patch_mode: str, slices: int | None):
    """The patch geometry of ``--patch-mode``: 2.5D, 3 slices and 5 views a slice apart; 3D, a slab of
    16 slices (32 mm) and 2 views two slices apart (a z-shift per epoch, little extra memory)."""
    from models.fusion.data import PatchSpec

    if patch_mode not in ("2.5d", "3d"):
        raise ValueError(f"--patch-mode must be 2.5d or 3d, got {patch_mode!r}")
    if patch_mode == "3d":
        return PatchSpec(n_slices=slices or 16, n_views=2, view_step=2)
    return PatchSpec(n_slices=slices or 3)


def _classical_spec(table: Path | None, data, families: str, inner: str):
    """(families, inner folds, extra columns) of ``--classical``: the families named, plus ``suvmax``
    when the table has the whole-tumour SUVmax (taken from the table if it is not a token column)."""
    from models.cv import parse_folds
    from models.zoo import SUVMAX_COLUMN, get_family
    from radfeat.table import read_table

    if table is None:
        raise ValueError("--classical needs --table: the classical models are fitted on its feature columns")
    names = [n.strip() for n in families.split(",") if n.strip()]
    for n in names:
        get_family(n)  # an unknown family fails before any training
    frame = read_table(table)
    frame = frame.set_index("case_id") if "case_id" in frame.columns else frame
    frame.index = frame.index.astype(str)
    extra = None
    if SUVMAX_COLUMN in frame.columns:
        names.append("suvmax")
        if data.features is None or SUVMAX_COLUMN not in data.features.columns:
            extra = frame.loc[data.case_ids, [SUVMAX_COLUMN]].astype(float).reset_index(drop=True)
    return list(dict.fromkeys(names)), parse_folds(inner, "--classical-inner"), extra


@app.command()
def train(
    manifest: Path = typer.Argument(..., help="Cohort manifest (images, masks, labels)."),
    table: Path | None = typer.Option(None, "--table", help="Feature table for the feature tokens."),
    tasks: str = typer.Option("egfr,subtype", "--tasks", help="Comma-separated label columns (1 or 2)."),
    positive: str = typer.Option(
        "subtype=squamous",
        "--positive",
        help="Positive class of each text-labelled task, e.g. subtype=squamous (numeric 0/1: 1 is positive).",
    ),
    groups: str = typer.Option("habitat,pet", "--groups", help="Feature-token column groups."),
    ablation: str = typer.Option(
        "none", "--ablation", help="'all', 'none' or a list, e.g. ct_only,concat_fusion."
    ),
    baseline: bool = typer.Option(False, "--baseline/--no-baseline", help="Add the EGFR-DLS-like CNN."),
    classical: bool = typer.Option(
        False,
        "--classical/--no-classical",
        help="Add the classical model families and SUVmax, trained on the same folds and feature columns, to "
        "the DeLong / McNemar table (needs --table).",
    ),
    classical_families: str = typer.Option(
        "lr,svm_linear,svm_rbf,rf,et,xgb,knn,nb,lda",
        "--classical-families",
        help="With --classical: the families (as radfeat benchmark's --families); the stacked auto is added.",
    ),
    classical_inner: str = typer.Option(
        "5x2", "--classical-inner", help="With --classical: inner folds x repeats tuning each family."
    ),
    folds: int = typer.Option(5, "--folds", min=2, help="Outer cross-validation folds (patient level)."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Repeats of the outer CV with new splits."),
    preset: str = typer.Option("default", "--preset", help="tiny, small or default."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override the preset's epochs."),
    patch_mode: str = typer.Option(
        "2.5d",
        "--patch-mode",
        help="2.5d: a patch's slices are the channels of 2D convolutions (the CPU default); 3d: a slab "
        "of --slices slices through 3D convolutions (DMDP's input; best on a GPU).",
    ),
    slices: int | None = typer.Option(
        None, "--slices", min=1, help="Slices (2 mm) per patch: default 3 for 2.5d, 16 for 3d."
    ),
    seed: int = typer.Option(0, help="Seed of splits, initialisation, shuffling and augmentation."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Processes for patch extraction."),
    output: Path = typer.Option(
        Path("fusion_runs"), "--output", "-o", help="Results folder (tables, figures, predictions)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch log lines."),
    train_cohort: str | None = typer.Option(
        None,
        "--train-cohort",
        help="Lock a model: cross-validate on this cohort's cases only (manifest `cohort` column) and save "
        "the fold ensemble as a model folder in --output (for `radfeat predict` / `evaluate`).",
    ),
    threshold: str = typer.Option(
        "youden",
        "--threshold",
        help="With --train-cohort: threshold rule (youden, prevalence, sensitivity:0.9…).",
    ),
) -> None:
    """Train and cross-validate the PET/CT fusion network (both tasks), its ablations and baseline;
    write the results table, ROC figures and Grad-CAM overlays.

    Example: radfeat train cohort/manifest.csv --table features.parquet --ablation all --baseline -o runs/
    """
    from dataclasses import replace

    try:
        from models.fusion.data import build_fusion_data
        from models.fusion.run import PRESETS, parse_variants, run_fusion_study
    except ImportError as exc:  # jax/flax missing
        err.print(f"the fusion network needs jax and flax: {exc} (pip install -e .)", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    try:
        if preset not in PRESETS:
            raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {preset!r}")
        variants = parse_variants(ablation)
        task_list = tuple(t.strip() for t in tasks.split(",") if t.strip())
        pos = dict(kv.split("=", 1) for kv in positive.split(",") if kv.strip())
        model_cfg, train_cfg = PRESETS[preset]
        train_cfg = replace(train_cfg, seed=seed, **({"epochs": epochs} if epochs else {}))
        spec = _patch_spec(patch_mode, slices)
        model_cfg = replace(model_cfg, stem=patch_mode)
        group_list = tuple(g.strip() for g in groups.split(",") if g.strip())
        train_ids = None
        if train_cohort is not None:
            if variants != ("full",) or baseline or repeats != 1:
                raise ValueError(
                    "--train-cohort locks the full model only: run ablations, --baseline and --repeats "
                    "without it (cross-validation study), then lock with --train-cohort"
                )
            from models.thresholds import locked_threshold

            locked_threshold([0, 1], [0.2, 0.8], threshold)  # a bad rule fails before any training
            train_ids = _cohort_ids(manifest, table, train_cohort)
        _check_folds(manifest, table, task_list, pos, folds)
        data = build_fusion_data(
            manifest, table, tasks=task_list, positive=pos, groups=group_list, jobs=jobs, cases=train_ids,
            spec=spec,
        )  # fmt: skip
        comparator_spec = None
        if classical:
            comparator_spec = _classical_spec(table, data, classical_families, classical_inner)
        baseline_data = None
        if baseline:
            from models.fusion.baseline_cnn import DLS_PATCH

            baseline_data = build_fusion_data(
                manifest, None, tasks=task_list, positive=pos, spec=DLS_PATCH, jobs=jobs
            )
    except (ValueError, RadfeatError, FileNotFoundError) as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    if table is None:
        err.print(
            "note: no --table, so no feature tokens: the 'full' model is image-only (give --table with "
            "habitat / PET-descriptor columns for the fusion of images and features)",
            markup=False,
        )
    err.print(
        f"{len(data)} cases; tasks {', '.join(f'{t} {data.classes[t]}' for t in data.tasks)}; feature groups "
        f"{ {g: len(c) for g, c in data.groups.items()} }; variants {', '.join(variants)}",
        markup=False,
    )

    comparators = None
    if comparator_spec is not None:
        from models.fusion.comparators import classical_on_fusion_folds

        families, inner, extra = comparator_spec
        err.print(
            f"classical comparators on the same {folds}-fold splits: {', '.join(families)} (inner CV "
            f"{inner[0]}x{inner[1]})",
            markup=False,
        )
        comparators = classical_on_fusion_folds(
            data, families, n_splits=folds, n_repeats=repeats, seed=seed, inner=inner,
            extra_columns=extra, out_dir=output,
            progress=lambda r: err.print(f"[{r['variant']}] {r['skipped']}", markup=False)
            if "skipped" in r else None,
        )  # fmt: skip

    # One bar over the models to train (variant × fold × repeat; single-task trains one per task), fed
    # by the epoch records: a model is done when the next one starts. Epoch lines go above the bar.
    trained = variants if "full" in variants else ("full", *variants)
    per_fold = {v: (len(data.tasks) if v == "single_task" else 1) for v in trained}
    total = folds * repeats * (sum(per_fold.values()) + (1 if baseline_data is not None else 0))
    state = {"key": None}

    if train_cohort is not None:
        _lock(data, table, model_cfg, train_cfg, folds, threshold, output, quiet)
        return

    with Progress(quiet, title="fusion: models trained", unit="models") as bar:
        bar({"total": total})

        def progress(rec: dict) -> None:
            if "variant" in rec:
                if not quiet:
                    err.print(f"[{rec['variant']}] {rec.get('skipped', 'training')}", markup=False)
                return
            if rec.get("epoch") == 0 and state["key"] is not None:  # a new model starts: one more done
                bar({"case_id": str(state["key"]), "ok": True})
            state["key"] = f"model trained (repeat {rec.get('repeat')}, fold {rec.get('fold')})"
            if quiet:
                return
            aucs = " ".join(
                f"{k[8:]} {v:.3f}" for k, v in rec.items() if k.startswith("val_auc_") and v is not None
            )
            err.print(
                f"  r{rec['repeat']} fold {rec['fold']} epoch {rec['epoch']:3d} loss {rec['loss']:.4f} "
                f"val AUC {aucs}",
                markup=False,
            )

        run = run_fusion_study(
            data,
            output,
            model_cfg=model_cfg,
            train_cfg=train_cfg,
            variants=variants,
            n_splits=folds,
            n_repeats=repeats,
            baseline_data=baseline_data,
            comparators=comparators,
            progress=progress,
        )
        if state["key"] is not None:
            bar({"case_id": state["key"], "ok": True})
    for _, r in run.table.iterrows():
        out.print(
            f"{r.task:10s} {r.variant:20s} AUC {r.auc:.3f} ({r.ci_low:.3f}-{r.ci_high:.3f})", markup=False
        )
    out.print(f"results: {run.paths['report']}", markup=False)
