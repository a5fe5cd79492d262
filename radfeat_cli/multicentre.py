"""Multi-centre study commands: ``describe`` (Table 1 and feature comparisons by class or cohort),
``batch-effect`` (scanner / centre effect before and after ComBat) and ``checklist`` (CLEAR / METRICS
items filled from a study folder)."""

from __future__ import annotations

from pathlib import Path

import typer

from radfeat_cli.common import EXIT_USAGE, err, error, out, read_table, split_names

app = typer.Typer()


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
            protect=split_names(protect) or None,
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
    from models.describe import describe as run_describe
    from models.describe import write_description

    if not table.is_file():
        error(f"table not found: {table} (give a radfeat table or a CSV/Parquet file)")
        raise typer.Exit(EXIT_USAGE)
    frame, _ = read_table(table)
    try:
        result = run_describe(
            frame,
            list(by),
            variables=split_names(clinical) or None,
            groups=split_names(features),
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


@app.command()
def robustness(
    manifest: Path = typer.Argument(..., help="Cohort manifest (CT, PET, mask per case)."),
    output: Path = typer.Option(Path("robustness"), "--output", "-o", help="Results folder."),
    chain: str = typer.Option(
        "NTVC",
        "--chain",
        help="Perturbations: N noise, T translation, R rotation, V volume adaptation, C contour "
        "randomisation (NTVC: fewest false positives in Zwanenburg et al. 2019).",
    ),
    perturbations: int = typer.Option(5, "--perturbations", "-n", min=2, help="Perturbed copies per case."),
    repeat_column: str | None = typer.Option(
        None, "--repeat-column", help="Test-retest instead: the manifest's scan-repeat column (1, 2, …)."
    ),
    patient_column: str = typer.Option(
        "patient_id", "--patient-column", help="With --repeat-column: the column naming the patient."
    ),
    settings: Path | None = typer.Option(None, "--settings", help="Extraction settings (YAML)."),
    habitat_model: Path | None = typer.Option(
        None, "--habitat-model", help="Habitat model folder: habitat features' robustness too."
    ),
    icc_threshold: float = typer.Option(0.9, "--icc", help="ICC a robust feature reaches."),
    bound: str = typer.Option("point", "--bound", help="'point' (ICC) or 'lower' (lower 95 % CI limit)."),
    seed: int = typer.Option(0, help="Seed of the perturbations."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Extraction workers."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Feature robustness by image perturbation (Zwanenburg et al. 2019) or test-retest scans: ICC(1,1)
    per feature with CI, the share of robust features per family and modality, and robust.csv for
    `benchmark` / `fit --stable-features robust.csv --icc 0.9`.

    Example: radfeat robustness manifest.csv --chain NTVC -n 5 -o robustness/
    """
    from models.robustness import feature_icc, robustness_summary, stable_features
    from radfeat.errors import RadfeatError
    from radfeat.extract import extract_table
    from radfeat.perturb import write_perturbed_cohort
    from radfeat.settings import load_settings
    from radfeat.table import feature_columns
    from radfeat.utils.atomic import write_text
    from radfeat_cli.common import Progress

    if bound not in ("point", "lower"):
        error(f"--bound must be 'point' or 'lower', got {bound!r}")
        raise typer.Exit(EXIT_USAGE)
    try:
        loaded = load_settings(settings) if settings is not None else None
        with Progress(quiet) as progress:
            if repeat_column is None:
                source, failures = write_perturbed_cohort(
                    manifest, output, n_perturbations=perturbations, chain=chain, seed=seed, settings=loaded
                )
                case, copy = "source_case", "perturbation"
            else:
                source, failures, case, copy = manifest, [], patient_column, repeat_column
            result = extract_table(
                source,
                output / "features.parquet",
                settings=loaded,
                jobs=jobs,
                progress=progress,
                habitat_model=habitat_model,
            )
    except (RadfeatError, ValueError) as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    table = result.table.reset_index() if result.table.index.name else result.table
    for column in (case, copy):
        if column not in table.columns:
            error(f"the table has no {column!r} column: name it with --patient-column / --repeat-column")
            raise typer.Exit(EXIT_USAGE)
    features = feature_columns(table)
    icc = feature_icc(table, features, case=case, copy=copy)
    icc["robust"] = icc["feature"].isin(stable_features(icc, icc_threshold, bound))
    summary = robustness_summary(icc, icc_threshold, bound)
    write_text(icc.to_csv(index=False), output / "robust.csv")
    write_text(summary.to_csv(index=False), output / "summary.csv")
    habitat = None
    if habitat_model is not None and repeat_column is None:
        from models.robustness import habitat_map_stability
        from radfeat.habitats import labels_dir_for

        habitat = habitat_map_stability(labels_dir_for(output / "features.parquet"), table)
        write_text(habitat.to_csv(index=False), output / "habitat_stability.csv")
    design = (
        f"test-retest ({repeat_column} repeats per {patient_column})"
        if repeat_column
        else f"{perturbations} perturbed copies per case, chain {chain}, seed {seed}"
    )
    lines = [
        "# Feature robustness",
        "",
        f"{table[case].nunique()} cases, {design}; ICC(1,1) with 95 % CI; robust: "
        f"{'lower CI limit' if bound == 'lower' else 'ICC'} ≥ {icc_threshold}.",
        "",
        summary.assign(share_robust=summary.share_robust.map("{:.0%}".format)).to_markdown(index=False),
        "",
    ]
    if habitat is not None and len(habitat):
        lines += [
            "## Habitat maps",
            "",
            "Adjusted Rand index of the habitat labels and Dice per habitat between perturbed copies "
            "(mean over pairs, voxels inside both tumour masks).",
            "",
            habitat.round(3).to_markdown(index=False),
            "",
        ]
    if failures or result.summary.failures:
        lines += ["## Cases left out", ""] + [
            f"- {f['case_id']}: {f.get('error')}" for f in [*failures, *result.summary.failures]
        ]
    write_text("\n".join(lines) + "\n", output / "report.md")
    total = summary.iloc[-1]
    out.print(
        f"robustness: {int(total.robust)} of {int(total.features)} features robust "
        f"({total.share_robust:.0%}) "
        f"→ {output / 'robust.csv'}",
        markup=False,
    )
    for _, row in summary.iloc[:-1].iterrows():
        out.print(f"  {row.modality} {row.family}: {row.share_robust:.0%} of {row.features}", markup=False)
    if habitat is not None and len(habitat):
        out.print(
            f"  habitat maps: adjusted Rand {habitat.adjusted_rand.mean():.2f} (mean over {len(habitat)} "
            "cases)",
            markup=False,
        )
    for f in failures:
        err.print(f"left out: {f['case_id']}: {f['error']}", markup=False)


def stable_feature_filter(data, path: Path, threshold: float):
    """``(data, column_filter)`` for ``--stable-features PATH``: a ``radfeat robustness`` folder (or its
    ``features.parquet``) gives a filter recomputed inside every training fold; a ``robust.csv`` a fixed
    list applied now (chosen on the whole robustness cohort, without labels)."""
    import pandas as pd

    from models.robustness import FoldStableFeatures, restrict_to_stable

    if path.is_dir():
        path = path / "features.parquet"
    if path.suffix == ".parquet":
        if not path.is_file():
            raise ValueError(f"{path} not found: give the folder written by `radfeat robustness`")
        copies = pd.read_parquet(path)
        if copies.index.name and copies.index.name not in copies.columns:
            copies = copies.reset_index()
        column_filter = FoldStableFeatures(copies, threshold, source=str(path))
        data.notes.append(
            f"--stable-features {path}: features with ICC(1,1) ≥ {threshold} over the perturbed copies of "
            "each training fold's cases (recomputed inside every fold)"
        )
        return data, column_filter
    return restrict_to_stable(data, path, threshold), None
