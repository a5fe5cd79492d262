"""Multi-centre study commands: ``describe`` (Table 1 and feature comparisons by class or cohort),
``batch-effect`` (scanner / centre effect before and after ComBat) and ``checklist`` (CLEAR / METRICS
items filled from a study folder)."""

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


@app.command()
def describe(
    table: Path = typer.Argument(..., help="Feature table (radfeat Parquet/CSV) with its clinical columns."),
    by: list[str] = typer.Option(..., "--by", help="Column to compare by (repeat): egfr, subtype, cohort."),
    clinical: str | None = typer.Option(
        None, "--clinical", help="Table 1 variables, e.g. age,sex,smoking (default: every clinical column)."
    ),
    features: str = typer.Option(
        "metabolic,heterogeneity,habitat",
        "--features",
        help="Feature groups compared: metabolic, heterogeneity, habitat, ct_radiomics, pet_radiomics, or a "
        "regular expression of column names.",
    ),
    parametric: bool = typer.Option(
        False, "--parametric", help="Mean ± SD with Welch t / ANOVA instead of median [IQR] with rank tests."
    ),
    seed: int = typer.Option(0, help="Seed of the bootstrap CIs and Monte-Carlo p-values."),
    output: Path = typer.Option(Path("describe"), "--output", "-o", help="Report folder."),
) -> None:
    """Table 1 of the clinical variables and univariate comparisons of feature groups between the classes
    of each --by column (right test per type, effect sizes with CIs, Benjamini–Hochberg FDR, violin plots);
    --by cohort shows cohort shift. Markdown + HTML.

    Example: radfeat describe features.parquet --by egfr --by subtype --by cohort -o describe/
    """
    from models.data import read_feature_table
    from models.describe import describe as run_describe
    from models.describe import write_description

    if not table.is_file():
        error(f"table not found: {table} (give a radfeat table or a CSV/Parquet file)")
        raise typer.Exit(EXIT_USAGE)
    frame, _ = read_feature_table(table)
    if frame.index.name and frame.index.name not in frame.columns:
        frame = frame.reset_index()
    try:
        result = run_describe(
            frame,
            list(by),
            variables=names(clinical) or None,
            groups=names(features),
            parametric=parametric,
            seed=seed,
        )
    except (ValueError, KeyError) as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    paths = write_description(result, frame, output, title=f"Cohort description: {table.name}")
    for column, comparison in result.features.items():
        n_sig = int((comparison["q"] < 0.05).sum()) if len(comparison) else 0
        top = comparison.iloc[0] if len(comparison) else None
        out.print(
            f"by {column}: {len(result.tables[column])} Table 1 row(s); {n_sig} of {len(comparison)} "
            "feature(s) differ (q < 0.05)"
            + (f", strongest {top.feature} (p {top.p:.2g})" if top is not None else ""),
            markup=False,
        )
    for note in result.notes:
        err.print(f"note: {note}", markup=False)
    out.print(f"report: {paths['markdown']} ({paths['html']})", markup=False)


@app.command()
def checklist(
    study: Path = typer.Argument(
        ..., help="Study folder: feature table, model folder, reports (e.g. a demo output)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Folder (default: STUDY/checklist)."),
) -> None:
    """Fill the CLEAR / METRICS items software can answer from a study folder's provenance (settings,
    versions, model card, CV, harmonisation, evaluation), each with its evidence file; the rest are left
    for the authors. Markdown + HTML + CSV.

    Example: radfeat checklist study/ -o study/checklist
    """
    from models.checklist import ANSWERED, AUTHOR, PARTLY, fill_checklist, gather_evidence, write_checklist

    try:
        evidence = gather_evidence(study)
    except ValueError as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    table = fill_checklist(evidence)
    paths = write_checklist(table, output or study / "checklist")
    counts = table["status"].value_counts()
    out.print(
        f"checklist: {counts.get(ANSWERED, 0)} items answered from the study's files, "
        f"{counts.get(PARTLY, 0)} "
        f"partly, {counts.get(AUTHOR, 0)} for the authors → {paths['markdown']}",
        markup=False,
    )
