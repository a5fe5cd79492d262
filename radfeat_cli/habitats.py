"""Habitat commands: ``habitats fit`` (training cases only) and ``habitats apply``."""

from __future__ import annotations

from pathlib import Path

import typer

from radfeat.errors import RadfeatError
from radfeat_cli.common import (
    EXIT_DATA,
    EXIT_USAGE,
    Progress,
    err,
    error,
    out,
    report_extraction,
)

app = typer.Typer(
    help="Habitat (sub-region) model: fit on training cases, apply to a cohort.", no_args_is_help=True
)


@app.command("fit")
def habitats_fit(
    manifest: Path = typer.Argument(..., help="Cohort manifest."),
    output: Path = typer.Option(Path("habitat_model"), "--output", "-o", help="Model folder to write."),
    train_ids: str | None = typer.Option(None, "--train-ids", help="Comma-separated training case ids."),
    cohort: str | None = typer.Option(None, "--cohort", help="Use the cases of this `cohort` value."),
    settings: Path | None = typer.Option(None, "--settings", help="YAML settings (habitats block)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes (threads capped at 1 each)."),
) -> None:
    """Fit the population habitat model on the training cases only (no other case is read).

    Example: radfeat habitats fit cohort/manifest.csv --cohort train -o habitat_model/
    """
    from radfeat.habitats import fit_habitat_model, model_summary
    from radfeat.habitats.stage1 import STAGE1_DIR
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
        with Progress(quiet=False, title="habitats fit: supervoxels") as progress:
            model = fit_habitat_model(
                rows, ids, effective, jobs=jobs, progress=progress, stage1=Path(output) / STAGE1_DIR
            )
    except (RadfeatError, ValueError) as exc:
        error(exc)
        raise typer.Exit(EXIT_DATA) from None
    model.save(output)
    out.print(
        f"habitat model: {output} (k = {model.k_} chosen by Calinski-Harabasz on "
        f"{len(model.train_ids_)} training cases)",
        markup=False,
    )
    out.print(model_summary(model).round(2).to_string(), markup=False)


@app.command("apply")
def habitats_apply(
    manifest: Path = typer.Argument(..., help="Cohort manifest."),
    model: Path = typer.Option(..., "--model", help="Fitted habitat model folder."),
    output: Path = typer.Option(
        Path("habitat_features.parquet"), "--output", "-o", help="Habitat feature table (.parquet or .csv)."
    ),
    settings: Path | None = typer.Option(None, "--settings", help="YAML settings (radiomics sets)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes (threads capped at 1 each)."),
    force: bool = typer.Option(False, "--force", help="Recompute every case, ignoring the cache."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Recompute cases that failed before."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; log lines only."),
) -> None:
    """Apply a fitted habitat model: label maps (NIfTI) and habitat features for every case.

    Example: radfeat habitats apply cohort/manifest.csv --model habitat_model/ -o habitats.parquet
    """
    from radfeat.extract import extract_table
    from radfeat.habitats import labels_dir_for
    from radfeat.settings import load_settings

    try:
        effective = load_settings(settings)
        with Progress(quiet) as progress:
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
        error(exc)
        raise typer.Exit(EXIT_DATA) from None
    out.print(f"label maps: {labels_dir_for(output)}", markup=False)
    report_extraction(result)
