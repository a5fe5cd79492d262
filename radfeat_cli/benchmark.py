"""Classical model commands: ``benchmark`` (nested CV of model families) and ``tune`` (Optuna)."""

from __future__ import annotations

from pathlib import Path

import typer

from radfeat_cli.common import (
    EXIT_USAGE,
    Progress,
    err,
    error,
    out,
    split_names,
)

app = typer.Typer()


@app.command()
def benchmark(
    table: Path = typer.Argument(..., help="Feature table (radfeat Parquet/CSV, or a foreign CSV)."),
    label: str = typer.Option(..., "--label", help="Outcome column, e.g. egfr."),
    positive: str | None = typer.Option(None, help="Positive class for a string label (e.g. squamous)."),
    drop_missing: bool = typer.Option(
        False, "--drop-missing", help="Drop cases without a label (the count is printed) instead of refusing."
    ),
    families: str = typer.Option(
        "lr,svm_linear,svm_rbf,rf,et,xgb,knn,nb,lda",
        help="Comma-separated model families (lr, svm = svm_linear + svm_rbf, rf, et, xgb, knn, nb, lda) and "
        "baselines (suvmax: pet_tumour_suv_SUVmax alone; clinical: clin_* columns; combined).",
    ),
    cv: str = typer.Option("5x10", "--cv", help="Outer folds x repeats."),
    nested: bool = typer.Option(True, "--nested/--no-nested", help="Tune in an inner CV (default) or not."),
    inner: str = typer.Option("5x2", "--inner", help="Inner folds x repeats for tuning."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Parallel outer folds."),
    seed: int = typer.Option(0, help="Random seed of the splits and models."),
    output: Path = typer.Option(Path("benchmark_results"), "--output", "-o", help="Results folder."),
    habitats: Path | None = typer.Option(
        None,
        "--habitats-manifest",
        help="Cohort manifest: refit the habitat model inside every training fold and add its features.",
    ),
    tuner: str = typer.Option(
        "grid", "--tuner", help="Inner tuning: 'grid' (compact grid) or 'optuna' (a study per fold)."
    ),
    trials: int = typer.Option(30, "--trials", min=1, help="Optuna trials per family and outer fold."),
    storage: str | None = typer.Option(
        None, "--storage", help="Optuna storage for --tuner optuna (default sqlite in the output folder)."
    ),
    clinical: str | None = typer.Option(
        None,
        "--clinical",
        help="Clinical covariate columns for the clinical / combined baselines, e.g. age,sex,smoking.",
    ),
    no_habitat_columns: bool = typer.Option(
        False, "--no-habitat-columns", help="Drop the table's habitat columns (hab_*, ct_hab*, pet_hab*)."
    ),
    stable_features: Path | None = typer.Option(
        None,
        "--stable-features",
        help="`radfeat robustness` folder (ICC re-chosen inside every training fold) or its robust.csv (a "
        "fixed list): use only the features robust at --icc.",
    ),
    icc_threshold: float = typer.Option(
        0.9, "--icc", help="ICC a feature must reach with --stable-features."
    ),
    harmonise: str | None = typer.Option(
        None,
        "--harmonise",
        help="Batch column (scanner / centre): ComBat harmonisation learned inside every training fold; "
        "writes a batch-effect report (batch_effect/).",
    ),
    protect: str | None = typer.Option(
        None, "--protect", help="Covariates whose effect ComBat keeps, e.g. age,sex (never the label)."
    ),
    settings: Path | None = typer.Option(
        None,
        "--settings",
        help="Settings for the per-fold habitat refit (default: the settings the table was extracted with).",
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="Comparator declared in advance for the DeLong p-values (default: suvmax when benchmarked).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; log lines only."),
) -> None:
    """Compare model families with honest (nested) repeated CV; write a report with figures.

    Example: radfeat benchmark features.parquet --label egfr --families lr,rf,xgb,suvmax --cv 5x10 -o results/
    """
    from models.cv import CVConfig, cross_validate, parse_folds
    from models.data import load_dataset
    from models.report import write_report

    if not table.is_file():
        err.print(f"table not found: {table} (give a radfeat table or a CSV/Parquet file)", markup=False)
        raise typer.Exit(EXIT_USAGE)
    names = [n.strip() for n in families.split(",") if n.strip()]
    names = [m for n in names for m in (("svm_linear", "svm_rbf") if n == "svm" else (n,))]
    try:
        inner_folds, inner_repeats = parse_folds(inner, "--inner")
        config = CVConfig.parse(
            cv,
            nested=nested,
            inner_splits=inner_folds,
            inner_repeats=inner_repeats,
            n_jobs=jobs,
            random_state=seed,
        )
        clinical_names = split_names(clinical)
        protect_names = split_names(protect)
        data = load_dataset(
            table,
            label,
            positive=positive,
            drop_missing=drop_missing,
            clinical=clinical_names or None,
            harmonise=harmonise,
            protect=protect_names or None,
        )
        if no_habitat_columns:
            from models.leakage import drop_habitat_columns

            data = drop_habitat_columns(data, "habitat column (--no-habitat-columns)")
        column_filter = None
        if stable_features is not None:
            from radfeat_cli.multicentre import stable_feature_filter

            data, column_filter = stable_feature_filter(data, stable_features, icc_threshold)
        from models.zoo import get_family

        for n in names:
            get_family(n).build(None, seed, list(data.X.columns))  # fails now if its columns are absent
        if reference is not None and reference not in names:
            raise ValueError(f"--reference {reference!r} must be one of the benchmarked families {names}")
        if tuner not in ("grid", "optuna"):
            raise ValueError(f"--tuner must be 'grid' or 'optuna', got {tuner!r}")
        if tuner == "optuna" and not nested:
            raise ValueError("--tuner optuna needs --nested (tuning happens in the inner CV)")
    except ValueError as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    optuna_tuner = None
    if tuner == "optuna":
        import optuna

        from models.tuning import OptunaTuner, TuneConfig

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optuna_tuner = OptunaTuner(
            TuneConfig(n_trials=trials, inner_splits=inner_folds, inner_repeats=inner_repeats),
            storage=storage,
            outdir=str(output),
            label=label,
        )
    err.print(
        f"{data.name}: {len(data)} cases ({int(data.y.sum())} positive '{data.positive}'), "
        f"{data.X.shape[1]} features; families {', '.join(names)}",
        markup=False,
    )
    if harmonise:
        from radfeat_cli.multicentre import warn_confounding

        warn_confounding(data)
    for column, reason in data.dropped.items():
        err.print(f"  dropped column {column}: {reason}", markup=False)
    for note in data.notes:
        err.print(f"  note: {note}", markup=False)
    hook = None
    if habitats is not None:
        from models.fold_features import HabitatFoldFeatures
        from radfeat.manifest import load_manifest
        from radfeat.settings import load_settings, validate_settings

        rows = load_manifest(habitats).rows()
        if settings is not None:
            fold_settings = load_settings(settings)
        elif data.provenance.get("settings"):
            fold_settings = validate_settings(data.provenance["settings"], f"{table} (provenance)")
        else:
            err.print(
                "the table records no extraction settings: give --settings for the habitat refit",
                markup=False,
            )
            raise typer.Exit(EXIT_USAGE)
        hook = HabitatFoldFeatures(rows, fold_settings)
    total = config.n_splits * config.n_repeats
    from models.leakage import LeakageError

    with Progress(quiet, title="outer folds", unit="folds") as progress:
        progress({"total": total})
        try:
            result = cross_validate(
                data,
                names,
                config,
                cache_dir=output / "folds",
                fold_features=hook,
                column_filter=column_filter,
                tuner=optuna_tuner,
                progress=lambda s: progress(
                    {"case_id": f"r{s['repeat']}f{s['fold']}", "ok": True, "cached": s.get("cached")}
                ),
            )
        except LeakageError as exc:
            error(exc)
            raise typer.Exit(EXIT_USAGE) from None
    paths = write_report(result, output, reference=reference, dropped=data.dropped, notes=data.notes)
    stable = (
        {
            "file": str(stable_features),
            "icc": icc_threshold,
            "chosen": "inside every training fold" if column_filter is not None else "fixed list",
        }
        if stable_features is not None
        else None
    )
    _write_run(
        output,
        table,
        data,
        names,
        config,
        tuner,
        harmonise,
        protect_names,
        habitats,
        no_habitat_columns,
        stable,
    )
    if harmonise:
        from radfeat_cli.multicentre import write_batch_effect

        write_batch_effect(data, output / "batch_effect")
    summary = result.summary()
    for family, row in summary.iterrows():
        out.print(f"{family:12s} AUC {row.mean_auc:.3f} ± {row.sd_auc:.3f}", markup=False)
    out.print(f"report: {paths['markdown']} ({paths['html']})", markup=False)


def _write_run(
    output, table, data, names, config, tuner, harmonise, protect, habitats, no_habitat, stable=None
) -> None:
    """``run.json``: what this benchmark ran on and how (read by ``radfeat checklist``)."""
    import json

    from radfeat.utils.atomic import write_text
    from radfeat.utils.versions import library_versions

    run = {
        "command": "benchmark",
        "table": str(table),
        "table_settings_hash": data.provenance.get("settings_hash"),
        "label": data.label,
        "positive": data.positive,
        "n_cases": len(data),
        "n_positive": int(data.y.sum()),
        "families": names,
        "cv": f"{config.n_splits}x{config.n_repeats}",
        "inner": f"{config.inner_splits}x{config.inner_repeats}" if config.nested else None,
        "nested": config.nested,
        "tuner": tuner,
        "seed": config.random_state,
        "harmonise": {"batch": harmonise, "protect": protect} if harmonise else None,
        "habitats_refit_in_folds": habitats is not None,
        "habitat_columns_dropped": no_habitat,
        "stable_features": stable,
        "versions": library_versions(
            "radfeat", "scikit-learn", "xgboost", "optuna", "neuroHarmonize", "numpy", "scipy"
        ),
    }
    write_text(json.dumps(run, indent=2, default=str), output / "run.json")


def _check_storage(storage: str | None, output: Path, config) -> None:
    """Open the Optuna storage once before any work, so a bad URL, a missing folder or an unreachable
    server is a one-line usage error (exit 2), never a driver traceback after the data are loaded."""
    from models.tuning import resolve_storage

    try:
        resolve_storage(storage, output, config)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, driver and file errors alike
        error(
            f"cannot open the Optuna storage {storage or '(default sqlite in ' + str(output) + ')'}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Hint: give "
            "sqlite:///path/file.db (its folder must exist), journal:<file>, or a reachable "
            "postgresql+psycopg2://user@host/db"
        )
        raise typer.Exit(EXIT_USAGE) from None


@app.command()
def tune(
    table: Path = typer.Argument(..., help="Feature table (radfeat Parquet/CSV, or a foreign CSV)."),
    label: str = typer.Option(..., "--label", help="Outcome column, e.g. egfr."),
    family: str = typer.Option("xgb", "--family", help="Model family to tune (see `radfeat benchmark`)."),
    positive: str | None = typer.Option(None, help="Positive class for a string label."),
    drop_missing: bool = typer.Option(
        False, "--drop-missing", help="Drop cases without a label (the count is printed) instead of refusing."
    ),
    trials: int = typer.Option(100, "--trials", min=1, help="Total trials of the study (all workers)."),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="sqlite:///file.db (default <output>/optuna.db), journal:<file> (many processes, one disk) "
        "or any SQLAlchemy URL such as postgresql+psycopg2://user@host/db (many machines).",
    ),
    study: str | None = typer.Option(None, "--study", help="Study name (default: derived from the data)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Stop this worker after S seconds."),
    sampler: str = typer.Option("tpe", help="tpe or random."),
    pruner: str = typer.Option("median", help="median, halving or none."),
    inner: str = typer.Option("5x2", "--inner", help="Inner CV folds x repeats of the objective."),
    seed: int = typer.Option(0, help="Seed of the sampler, the inner folds and the models."),
    worker: int = typer.Option(0, help="Worker index (0, 1, ...): offsets the sampler seed."),
    heartbeat: int = typer.Option(30, "--heartbeat-interval", min=1, help="Seconds between heartbeats."),
    grace: int = typer.Option(90, "--grace-period", min=2, help="A trial silent this long (s) is retried."),
    output: Path = typer.Option(Path("tune_results"), "--output", "-o", help="Artefacts folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; log lines only."),
) -> None:
    """Tune one family's hyper-parameters in a persistent Optuna study (resumes; several workers may
    share a storage); write best parameters, the trial table and figures.

    Example: radfeat tune features.parquet --label egfr --family xgb --trials 200 --storage journal:s.journal
    """
    import optuna

    from models.cv import parse_folds
    from models.data import load_dataset
    from models.tuning import StudyMismatchError, TuneConfig
    from models.tuning import tune as run_tune

    if not table.is_file():
        err.print(f"table not found: {table} (give a radfeat table or a CSV/Parquet file)", markup=False)
        raise typer.Exit(EXIT_USAGE)
    try:
        inner_folds, inner_repeats = parse_folds(inner, "--inner")
        config = TuneConfig(
            n_trials=trials,
            timeout=timeout,
            sampler=sampler,
            pruner=pruner,
            inner_splits=inner_folds,
            inner_repeats=inner_repeats,
            seed=seed,
            worker=worker,
            heartbeat_interval=heartbeat,
            grace_period=grace,
        )
        from models.zoo import get_family

        get_family(family)
        data = load_dataset(table, label, positive=positive, drop_missing=drop_missing)
    except ValueError as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _check_storage(storage, output, config)
    err.print(
        f"{data.name}: {len(data)} cases, {data.X.shape[1]} features; tuning {family} "
        f"({sampler} sampler, {pruner} pruner, {trials} trials in total)",
        markup=False,
    )
    with Progress(quiet, title=f"tune {family}", unit="trials") as progress:
        progress({"total": trials})

        def tick(study, trial) -> None:
            if trial.state.name in ("COMPLETE", "PRUNED"):
                progress({"case_id": f"trial {trial.number}", "ok": True})

        try:
            result = run_tune(
                data.X,
                data.y,
                family,
                config,
                groups=data.groups,
                label=label,
                storage=storage,
                name=study,
                outdir=output,
                callbacks=[tick],
            )
        except StudyMismatchError as exc:
            error(exc)
            raise typer.Exit(EXIT_USAGE) from None
    out.print(
        f"study {result.study_name} ({result.storage}): {result.n_complete} complete, "
        f"{result.n_pruned} pruned, {result.n_failed} failed",
        markup=False,
    )
    if result.n_complete:
        out.print(f"best inner-CV AUC {result.best_value:.3f} with {result.best_params}", markup=False)
    out.print(f"artefacts: {output}  (browse: optuna-dashboard {result.storage.removeprefix('journal:')})")
