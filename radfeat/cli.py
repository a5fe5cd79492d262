"""The ``radfeat`` command line. Each command parses, calls one library function and prints.

Exit codes: 0 success; 1 some cases are unusable or failed (data problem); 2 usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from radfeat import __version__
from radfeat.errors import RadfeatError

app = typer.Typer(
    name="radfeat",
    help="PET/CT radiomics: cohort manifest → feature table → honest models and statistics.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold patient identifiers
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2


def _error(message) -> None:
    """An error line on stderr, never wrapped or cut (it names the case, the file and the fix)."""
    typer.echo(str(message), err=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"radfeat {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """PET/CT radiomics feature tables, model benchmarks, statistics and a fusion network."""


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., help="Folder to write the cohort into."),
    cases: int = typer.Option(40, "--cases", "-n", min=1, help="Number of patients."),
    seed: int = typer.Option(0, help="Random seed (same seed, same cohort)."),
    signal: float = typer.Option(
        1.0, min=0.0, max=1.0, help="Label→image link strength; 0 = labels independent of images."
    ),
    external_fraction: float = typer.Option(
        0.25, min=0.0, max=1.0, help="Share of cases in the shifted-scanner 'external' cohort."
    ),
    pet_format: str = typer.Option("nifti", help="nifti (SUV volumes) or dicom (BQML series)."),
) -> None:
    """Write a synthetic PET/CT cohort (NIfTI + manifest.csv) with planted label–phenotype links."""
    from radfeat.synth import make_cohort

    if pet_format not in ("nifti", "dicom"):
        err.print(f"--pet-format must be nifti or dicom, got {pet_format!r}")
        raise typer.Exit(EXIT_USAGE)
    manifest = make_cohort(
        out_dir,
        cases,
        seed=seed,
        signal=signal,
        external_fraction=external_fraction,
        pet_format=pet_format,
    )
    out.print(f"wrote {cases} cases; manifest: {manifest}")


@app.command()
def validate(
    manifest: Path = typer.Argument(..., help="Cohort manifest (CSV or Parquet)."),
    label: int = typer.Option(1, help="Mask label value (a `mask_label` column overrides per case)."),
    json_out: bool = typer.Option(False, "--json", help="Print a machine-readable JSON report."),
    headers_only: bool = typer.Option(
        False, "--headers-only", help="Only check ids and file existence (no image reading)."
    ),
) -> None:
    """Check a manifest and every file it names; report all problems at once."""
    from radfeat.manifest import validate_manifest

    report = validate_manifest(manifest, label, check_images=not headers_only)
    if json_out:
        sys.stdout.write(report.to_json() + "\n")
    else:
        _print_report(report)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_DATA)


def _print_report(report) -> None:
    if not report.problems:
        out.print(f"[green]OK[/green]: {report.n_cases} cases, no problems ({report.manifest})")
        return
    # Plain text: a problem line names the case, the file and the fix; it must never be cut.
    typer.echo(f"{report.manifest}: {len(report.problems)} problem(s)")
    for problem in report.problems:
        typer.echo(f"[{problem.code}] {problem}")
    n_bad = len(report.unusable_cases)
    out.print(f"{n_bad} of {report.n_cases} cases unusable" if n_bad else "warnings only")


@app.command()
def extract(
    manifest: Path = typer.Argument(..., help="Cohort manifest (CSV or Parquet)."),
    output: Path = typer.Option(Path("features.parquet"), "--output", "-o", help="Table (.parquet or .csv)."),
    settings: Path | None = typer.Option(None, "--settings", help="YAML settings merged over the defaults."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Local worker processes."),
    scheduler: str | None = typer.Option(None, help="Dask scheduler address, e.g. tcp://host:8786."),
    timeout: float | None = typer.Option(None, help="Per-case time limit in s (default from settings)."),
    force: bool = typer.Option(False, "--force", help="Recompute every case, ignoring the cache."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Recompute cases that failed before."),
    print_settings: bool = typer.Option(False, "--print-settings", help="Print effective settings, exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; log lines only."),
    habitats: Path | None = typer.Option(
        None, "--habitats", help="Fitted habitat model folder: join habitat features into the table."
    ),
) -> None:
    """Extract CT/PET radiomics and PET descriptors for every case into one feature table."""
    from radfeat.errors import RadfeatError
    from radfeat.settings import dump_settings, load_settings

    try:
        effective = load_settings(settings)
    except ValueError as exc:
        err.print(f"[red]settings error[/red]: {exc}", markup=True)
        raise typer.Exit(EXIT_USAGE) from None
    if print_settings:
        sys.stdout.write(dump_settings(effective))
        raise typer.Exit(EXIT_OK)
    from radfeat.extract import extract_table

    try:
        with _progress(quiet) as progress:
            result = extract_table(
                manifest,
                output,
                settings=effective,
                jobs=jobs,
                scheduler=scheduler,
                timeout_s=timeout,
                force=force,
                retry_failed=retry_failed,
                progress=progress,
                habitat_model=habitats,
            )
    except (RadfeatError, FileNotFoundError) as exc:
        _error(exc)
        raise typer.Exit(EXIT_DATA) from None
    _report_extraction(result)


def _report_extraction(result) -> None:
    """Print where the table went; exit 1 (listing them) when cases failed, 130 when interrupted."""
    summary = result.summary
    out.print(
        f"table: {result.table_path} ({len(result.table)} cases × {len(result.table.columns)} columns; "
        f"{summary.n_cached} from cache, {summary.seconds:.1f} s)",
        markup=False,
    )
    if summary.interrupted:
        err.print("interrupted: finished cases are cached; rerun the same command to resume")
        raise typer.Exit(130)
    if result.failures_path:
        err.print(f"{len(summary.failures)} case(s) failed; see {result.failures_path}", markup=False)
        for f in summary.failures[:10]:
            err.print(f"  {f['case_id']} [{f['stage']}] {f['error']} Hint: {f['hint']}", markup=False)
        raise typer.Exit(EXIT_DATA)


class _progress:
    """A rich progress bar (done / failed / rate / ETA) fed by the runner's status callback."""

    def __init__(self, quiet: bool, title: str = "extract", unit: str = "cases") -> None:
        self.quiet = quiet
        self.title = title
        self.unit = unit
        self.done = self.failed = 0

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if self.quiet:
            return self._log
        self.bar = Progress(
            TextColumn(f"[bold]{self.title}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self.bar.start()
        self.task = None
        return self._update

    def _log(self, status: dict) -> None:
        if "total" in status:
            err.print(f"{self.title}: {status['total']} to do")
            return
        state = "ok" if status.get("ok") else f"FAILED [{status.get('stage')}] {status.get('error')}"
        err.print(f"{status['case_id']}: {'cached ' if status.get('cached') else ''}{state}", markup=False)

    def _update(self, status: dict) -> None:
        import time

        if "total" in status:
            self.t0 = time.perf_counter()
            self.task = self.bar.add_task(self.title, total=status["total"], failed=0, rate="")
            return
        self.done += 1
        self.failed += 0 if status.get("ok") else 1
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(
            self.task,
            completed=self.done,
            failed=self.failed,
            rate=f"{60 * self.done / elapsed:.1f} {self.unit}/min",
        )

    def __exit__(self, *exc) -> None:
        if not self.quiet:
            self.bar.stop()


habitats_app = typer.Typer(
    help="Habitat (sub-region) model: fit on training cases, apply to a cohort.", no_args_is_help=True
)
app.add_typer(habitats_app, name="habitats")


@habitats_app.command("fit")
def habitats_fit(
    manifest: Path = typer.Argument(..., help="Cohort manifest."),
    output: Path = typer.Option(Path("habitat_model"), "--output", "-o", help="Model folder to write."),
    train_ids: str | None = typer.Option(None, "--train-ids", help="Comma-separated training case ids."),
    cohort: str | None = typer.Option(None, "--cohort", help="Use the cases of this `cohort` value."),
    settings: Path | None = typer.Option(None, "--settings", help="YAML settings (habitats block)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1),
) -> None:
    """Fit the population habitat model on the training cases only (no other case is read)."""
    from radfeat.errors import RadfeatError
    from radfeat.habitats import fit_habitat_model, model_summary
    from radfeat.manifest import load_manifest
    from radfeat.settings import load_settings

    if (train_ids is None) == (cohort is None):
        err.print("give exactly one of --train-ids or --cohort")
        raise typer.Exit(EXIT_USAGE)
    try:
        effective = load_settings(settings)
        loaded = load_manifest(manifest)
        table = loaded.table
        if cohort is not None:
            if "cohort" not in table.columns:
                err.print("the manifest has no `cohort` column; use --train-ids")
                raise typer.Exit(EXIT_USAGE)
            ids = table.loc[table["cohort"].astype(str) == cohort, "case_id"].tolist()
        else:
            ids = [i.strip() for i in train_ids.split(",") if i.strip()]
        rows = loaded.rows()
        model = fit_habitat_model(rows, ids, effective, jobs=jobs)
    except (RadfeatError, ValueError) as exc:
        _error(exc)
        raise typer.Exit(EXIT_DATA) from None
    model.save(output)
    out.print(
        f"habitat model: {output} (k = {model.k_} chosen by Calinski-Harabasz on "
        f"{len(model.train_ids_)} training cases)",
        markup=False,
    )
    out.print(model_summary(model).round(2).to_string(), markup=False)


@habitats_app.command("apply")
def habitats_apply(
    manifest: Path = typer.Argument(..., help="Cohort manifest."),
    model: Path = typer.Option(..., "--model", help="Fitted habitat model folder."),
    output: Path = typer.Option(Path("habitat_features.parquet"), "--output", "-o"),
    settings: Path | None = typer.Option(None, "--settings", help="YAML settings (radiomics sets)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1),
    force: bool = typer.Option(False, "--force"),
    retry_failed: bool = typer.Option(False, "--retry-failed"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Apply a fitted habitat model: label maps (NIfTI) and habitat features for every case."""
    from radfeat.errors import RadfeatError
    from radfeat.extract import extract_table
    from radfeat.habitats import labels_dir_for
    from radfeat.settings import load_settings

    try:
        effective = load_settings(settings)
        with _progress(quiet) as progress:
            result = extract_table(
                manifest,
                output,
                settings=effective,
                habitat_model=model,
                habitats_only=True,
                jobs=jobs,
                force=force,
                retry_failed=retry_failed,
                progress=progress,
            )
    except (RadfeatError, FileNotFoundError, ValueError) as exc:
        _error(exc)
        raise typer.Exit(EXIT_DATA) from None
    out.print(f"label maps: {labels_dir_for(output)}", markup=False)
    _report_extraction(result)


@app.command()
def benchmark(
    table: Path = typer.Argument(..., help="Feature table (radfeat Parquet/CSV, or a foreign CSV)."),
    label: str = typer.Option(..., "--label", help="Outcome column, e.g. egfr."),
    positive: str | None = typer.Option(None, help="Positive class for a string label (e.g. squamous)."),
    families: str = typer.Option(
        "lr,svm_linear,svm_rbf,rf,et,xgb,knn,nb,lda", help="Comma-separated families."
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
    no_habitat_columns: bool = typer.Option(
        False, "--no-habitat-columns", help="Drop the table's habitat columns (hab_*, ct_hab*, pet_hab*)."
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
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Compare model families with honest (nested) repeated CV; write a report with figures."""
    from models.cv import CVConfig, cross_validate
    from models.data import load_dataset
    from models.report import write_report

    if not table.is_file():
        err.print(f"table not found: {table} (give a radfeat table or a CSV/Parquet file)", markup=False)
        raise typer.Exit(EXIT_USAGE)
    names = [n.strip() for n in families.split(",") if n.strip()]
    names = [m for n in names for m in (("svm_linear", "svm_rbf") if n == "svm" else (n,))]
    try:
        inner_folds, inner_repeats = (int(v) for v in inner.lower().split("x"))
        config = CVConfig.parse(
            cv,
            nested=nested,
            inner_splits=inner_folds,
            inner_repeats=inner_repeats,
            n_jobs=jobs,
            random_state=seed,
        )
        data = load_dataset(table, label, positive=positive)
        if no_habitat_columns:
            from models.leakage import habitat_columns

            stale = habitat_columns(data.X.columns)
            data.X = data.X.drop(columns=stale)
            data.dropped.update(dict.fromkeys(stale, "habitat column (--no-habitat-columns)"))
        from models.zoo import get_family

        for n in names:
            get_family(n)
        if reference is not None and reference not in names:
            raise ValueError(f"--reference {reference!r} must be one of the benchmarked families {names}")
        if tuner not in ("grid", "optuna"):
            raise ValueError(f"--tuner must be 'grid' or 'optuna', got {tuner!r}")
        if tuner == "optuna" and not nested:
            raise ValueError("--tuner optuna needs --nested (tuning happens in the inner CV)")
    except ValueError as exc:
        _error(exc)
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

    with _progress(quiet, title="outer folds", unit="folds") as progress:
        progress({"total": total})
        try:
            result = cross_validate(
                data,
                names,
                config,
                cache_dir=output / "folds",
                fold_features=hook,
                tuner=optuna_tuner,
                progress=lambda s: progress(
                    {"case_id": f"r{s['repeat']}f{s['fold']}", "ok": True, "cached": s.get("cached")}
                ),
            )
        except LeakageError as exc:
            _error(exc)
            raise typer.Exit(EXIT_USAGE) from None
    paths = write_report(result, output, reference=reference, dropped=data.dropped, notes=data.notes)
    summary = result.summary()
    for family, row in summary.iterrows():
        out.print(f"{family:12s} AUC {row.mean_auc:.3f} ± {row.sd_auc:.3f}", markup=False)
    out.print(f"report: {paths['markdown']} ({paths['html']})", markup=False)


@app.command()
def tune(
    table: Path = typer.Argument(..., help="Feature table (radfeat Parquet/CSV, or a foreign CSV)."),
    label: str = typer.Option(..., "--label", help="Outcome column, e.g. egfr."),
    family: str = typer.Option("xgb", "--family", help="Model family to tune (see `radfeat benchmark`)."),
    positive: str | None = typer.Option(None, help="Positive class for a string label."),
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
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Tune one family's hyper-parameters in a persistent Optuna study (resumes; several workers may
    share a storage); write best parameters, the trial table and figures."""
    import optuna

    from models.data import load_dataset
    from models.tuning import StudyMismatchError, TuneConfig
    from models.tuning import tune as run_tune

    if not table.is_file():
        err.print(f"table not found: {table} (give a radfeat table or a CSV/Parquet file)", markup=False)
        raise typer.Exit(EXIT_USAGE)
    try:
        inner_folds, inner_repeats = (int(v) for v in inner.lower().split("x"))
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
        data = load_dataset(table, label, positive=positive)
    except ValueError as exc:
        _error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    err.print(
        f"{data.name}: {len(data)} cases, {data.X.shape[1]} features; tuning {family} "
        f"({sampler} sampler, {pruner} pruner, {trials} trials in total)",
        markup=False,
    )
    with _progress(quiet, title=f"tune {family}", unit="trials") as progress:
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
            _error(exc)
            raise typer.Exit(EXIT_USAGE) from None
    out.print(
        f"study {result.study_name} ({result.storage}): {result.n_complete} complete, "
        f"{result.n_pruned} pruned, {result.n_failed} failed",
        markup=False,
    )
    if result.n_complete:
        out.print(f"best inner-CV AUC {result.best_value:.3f} with {result.best_params}", markup=False)
    out.print(f"artefacts: {output}  (browse: optuna-dashboard {result.storage.removeprefix('journal:')})")


@app.command()
def train(
    manifest: Path = typer.Argument(..., help="Cohort manifest (images, masks, labels)."),
    table: Path | None = typer.Option(None, "--table", help="Feature table for the feature tokens."),
    tasks: str = typer.Option("egfr,subtype", "--tasks", help="Comma-separated label columns (1 or 2)."),
    positive: str = typer.Option(
        "", "--positive", help="Positive class per task, e.g. subtype=squamous (default: last in sort order)."
    ),
    groups: str = typer.Option("habitat,pet", "--groups", help="Feature-token column groups."),
    ablation: str = typer.Option(
        "none", "--ablation", help="'all', 'none' or a list, e.g. ct_only,concat_fusion."
    ),
    baseline: bool = typer.Option(False, "--baseline/--no-baseline", help="Add the EGFR-DLS-like CNN."),
    folds: int = typer.Option(5, "--folds", min=2),
    repeats: int = typer.Option(1, "--repeats", min=1),
    preset: str = typer.Option("default", "--preset", help="tiny, small or default."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override the preset's epochs."),
    seed: int = typer.Option(0, help="Seed of splits, initialisation, shuffling and augmentation."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Processes for patch extraction."),
    output: Path = typer.Option(Path("fusion_runs"), "--output", "-o"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train and cross-validate the PET/CT fusion network (both tasks), its ablations and baseline;
    write the results table, ROC figures and Grad-CAM overlays."""
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
        group_list = tuple(g.strip() for g in groups.split(",") if g.strip())
        data = build_fusion_data(manifest, table, tasks=task_list, positive=pos, groups=group_list, jobs=jobs)
        baseline_data = None
        if baseline:
            from models.fusion.baseline_cnn import DLS_PATCH

            baseline_data = build_fusion_data(
                manifest, None, tasks=task_list, positive=pos, spec=DLS_PATCH, jobs=jobs
            )
    except (ValueError, RadfeatError, FileNotFoundError) as exc:
        _error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    err.print(
        f"{len(data)} cases; tasks {', '.join(f'{t} {data.classes[t]}' for t in data.tasks)}; feature groups "
        f"{ {g: len(c) for g, c in data.groups.items()} }; variants {', '.join(variants)}",
        markup=False,
    )

    def progress(rec: dict) -> None:
        if quiet:
            return
        if "variant" in rec:
            err.print(f"[{rec['variant']}] {rec.get('skipped', 'training')}", markup=False)
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
        progress=progress,
    )
    for _, r in run.table.iterrows():
        out.print(
            f"{r.task:10s} {r.variant:20s} AUC {r.auc:.3f} ({r.ci_low:.3f}-{r.ci_high:.3f})", markup=False
        )
    out.print(f"results: {run.paths['report']}", markup=False)


@app.command()
def info(table: Path = typer.Argument(..., help="A radfeat feature table.")) -> None:
    """Print a table's provenance: versions, settings hash, cases, feature counts."""
    from radfeat.table import feature_columns, read_provenance, read_table

    if not table.exists():
        err.print(f"table not found: {table}")
        raise typer.Exit(EXIT_USAGE)
    frame = read_table(table)
    prov = read_provenance(table)
    features = feature_columns(frame)
    out.print(f"{table}: {len(frame)} cases, {len(features)} feature columns", markup=False)
    families: dict[str, int] = {}
    for c in features:
        prefix = "_".join(c.split("_")[:2])
        families[prefix] = families.get(prefix, 0) + 1
    for prefix, n in families.items():
        out.print(f"  {prefix}_*: {n}", markup=False)
    if not prov:
        out.print("no radfeat provenance in this table")
        return
    for key in ("created", "manifest", "settings_hash", "n_cases", "n_extracted", "n_failed"):
        out.print(f"{key}: {prov.get(key)}", markup=False)
    out.print("versions: " + ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items()), markup=False)


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("radfeat_demo"), "--out", help="Output folder."),
    cases: int = typer.Option(24, "--cases", "-n", min=4, help="Number of synthetic patients."),
    seed: int = typer.Option(0, help="Random seed."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Worker processes."),
) -> None:
    """Synthesise a PET/CT cohort and run every radfeat stage on it; print where results went."""
    from radfeat.demo import run_demo

    err.print(f"radfeat demo: {cases} synthetic PET/CT cases → {out_dir}")
    with _progress(quiet=False) as progress:
        result = run_demo(out_dir, cases, seed, jobs=jobs, progress=progress)
    table = Table(title="radfeat demo: outputs")
    table.add_column("stage")
    table.add_column("path", overflow="fold")
    for stage, path in result.outputs.items():
        table.add_row(stage, str(path))
    out.print(table)
    if not result.validation.ok:
        _print_report(result.validation)
        raise typer.Exit(EXIT_DATA)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
