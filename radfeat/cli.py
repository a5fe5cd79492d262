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
    out.print(f"{report.manifest}: {len(report.problems)} problem(s)", markup=False)
    for problem in report.problems:
        out.print(f"[{problem.code}] {problem}", markup=False, soft_wrap=True)
    n_bad = len(report.unusable_cases)
    out.print(f"{n_bad} of {report.n_cases} cases unusable" if n_bad else "warnings only")


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("radfeat_demo"), "--out", help="Output folder."),
    cases: int = typer.Option(24, "--cases", "-n", min=4, help="Number of synthetic patients."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Synthesise a PET/CT cohort and run every radfeat stage on it; print where results went."""
    from radfeat.demo import run_demo

    with err.status("running the radfeat demo…"):
        result = run_demo(out_dir, cases, seed)
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
