"""Feature-table commands: ``synth``, ``validate``, ``extract``, ``info``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from radfeat.errors import ManifestError, RadfeatError
from radfeat_cli.common import (
    EXIT_DATA,
    EXIT_OK,
    EXIT_USAGE,
    Progress,
    err,
    error,
    out,
    print_report,
    report_extraction,
)

app = typer.Typer()


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
    """Write a synthetic PET/CT cohort (NIfTI + manifest.csv) with planted label–phenotype links.

    Example: radfeat synth cohort/ -n 40 --seed 0 --signal 1.0
    """
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
    """Check a manifest and every file it names; report all problems at once.

    Example: radfeat validate cohort/manifest.csv --json
    """
    from radfeat.manifest import load_manifest, validate_manifest

    try:
        load_manifest(manifest)  # the manifest itself (file, columns): a usage error, exit 2
    except ManifestError as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    from radfeat.settings import load_settings

    ct_settings = (load_settings().get("ct") or {}).get("setting") or {}
    report = validate_manifest(
        manifest,
        label,
        check_images=not headers_only,
        min_roi_voxels=int(ct_settings.get("minimumROISize") or 2),
    )
    if json_out:
        sys.stdout.write(report.to_json() + "\n")
    else:
        print_report(report)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_DATA)


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
    """Extract CT/PET radiomics and PET descriptors for every case into one feature table.

    Example: radfeat extract cohort/manifest.csv -o features.parquet --jobs 2
    """
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
        with Progress(quiet) as progress:
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
    except ManifestError as exc:  # the manifest file itself is missing or malformed
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    except (RadfeatError, FileNotFoundError) as exc:
        error(exc)
        raise typer.Exit(EXIT_DATA) from None
    report_extraction(result)


@app.command()
def info(
    table: Path = typer.Argument(..., help="A radfeat feature table."),
    ibsi: bool = typer.Option(False, "--ibsi", help="List every IBSI-engine column with its IBSI code."),
) -> None:
    """Print a table's provenance: engine, versions, settings hash, cases, feature counts, IBSI codes.

    Example: radfeat info features.parquet --ibsi
    """
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
    engine = prov.get("engine") or (prov.get("settings") or {}).get("engine", "pyradiomics")
    out.print(f"engine: {engine}", markup=False)
    identifiers = prov.get("ibsi_identifiers") or {}
    if identifiers:
        out.print(f"IBSI identifiers: {len(identifiers)} columns carry one (--ibsi lists them)", markup=False)
    if ibsi:
        for column, ident in identifiers.items():
            aggregation = f", {ident['aggregation']}" if ident.get("aggregation") else ""
            out.print(
                f"  {column}: IBSI {ident['ibsi_code']} ({ident['feature']}{aggregation})", markup=False
            )
