"""Multi-centre study commands: ``batch-effect`` (scanner / centre effect before and after ComBat)."""

from __future__ import annotations

from pathlib import Path

import typer

from radfeat_cli.common import EXIT_USAGE, err, error, out

app = typer.Typer()


def names(text: str | None) -> list[str]:
    """``"age, sex"`` → ``["age", "sex"]``."""
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def warn_confounding(data) -> None:
    """Print a warning when the label's prevalence differs across the harmonisation batches."""
    from models.harmonise import batch_columns, label_batch_association

    batch = batch_columns(data.X.columns)
    if batch and len(set(data.y)) == 2:
        found = label_batch_association(data.y, data.X[batch[0]].astype(str).to_numpy())
        if found["warning"]:
            err.print(f"warning: {found['warning']}", markup=False)


def write_batch_effect(data, output: Path) -> dict:
    """The batch-effect report of a dataset loaded with a batch column, printed in one line per stage."""
    from models.batch_effect import dataset_batch_effect, write_batch_effect_report

    effect = dataset_batch_effect(data)
    paths = write_batch_effect_report(effect, output)
    for _, row in effect.summary.iterrows():
        out.print(
            f"batch effect {row['stage']}: {row['location effect (q < 0.05)']:.0%} of "
            f"{row['features']} features differ across {effect.batch_column} (q < 0.05), batch "
            f"separability AUC {row['batch separability AUC']:.3f}",
            markup=False,
        )
    out.print(f"batch-effect report: {paths['markdown']}", markup=False)
    return paths


@app.command("batch-effect")
def batch_effect(
    table: Path = typer.Argument(..., help="Feature table (radfeat Parquet/CSV, or a foreign CSV)."),
    harmonise: str = typer.Option(..., "--harmonise", help="Batch column: scanner, centre, cohort."),
    protect: str | None = typer.Option(
        None, "--protect", help="Covariates whose effect ComBat keeps, e.g. age,sex."
    ),
    label: str | None = typer.Option(
        None, "--label", help="Outcome column, never a feature (and never protected)."
    ),
    output: Path = typer.Option(Path("batch_effect"), "--output", "-o", help="Report folder."),
) -> None:
    """How much of each feature is scanner / centre: per-feature tests across batches (FDR), batch
    separability and a PCA plot, before and after ComBat; Markdown + HTML.

    Example: radfeat batch-effect features.parquet --harmonise scanner --label egfr -o batch_effect/
    """
    from models.data import load_dataset

    if not table.is_file():
        error(f"table not found: {table} (give a radfeat table or a CSV/Parquet file)")
        raise typer.Exit(EXIT_USAGE)
    try:
        frame = None
        if label is None:  # describe every case: a constant stand-in label
            from models.data import read_feature_table

            frame, provenance = read_feature_table(table)
            frame = frame.assign(_no_label=0)
            frame.attrs["radfeat"] = provenance
        data = load_dataset(
            frame if frame is not None else table,
            label or "_no_label",
            harmonise=harmonise,
            protect=names(protect) or None,
            name=table.name.split(".")[0],
        )
        write_batch_effect(data, output)
        if label is not None:
            warn_confounding(data)
    except ValueError as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    err.print("note: 'after' harmonises the whole table, for description only", markup=False)
