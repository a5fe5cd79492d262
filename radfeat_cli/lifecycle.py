"""The study lifecycle: ``fit`` (lock a model on the training cohort), ``predict`` (score new cases from
a table or a cohort manifest) and ``evaluate`` (per-cohort report)."""

from __future__ import annotations

from pathlib import Path

import typer

from radfeat_cli.common import (
    EXIT_DATA,
    EXIT_USAGE,
    Progress,
    err,
    error,
    out,
    read_table,
    split_names,
)

app = typer.Typer()


@app.command()
def fit(
    table: Path = typer.Argument(..., help="Feature table (radfeat Parquet/CSV, or a foreign CSV)."),
    label: str = typer.Option(..., "--label", help="Outcome column, e.g. egfr."),
    output: Path = typer.Option(..., "--output", "-o", help="Model folder to write."),
    positive: str | None = typer.Option(None, help="Positive class for a string label (e.g. squamous)."),
    cohort_column: str = typer.Option("cohort", "--cohort-column", help="Column naming each case's cohort."),
    train: str = typer.Option("train", "--train", help="The training cohort (the only rows ever used)."),
    family: str = typer.Option(
        "auto", "--family", help="auto (combination of --families), auto_select, or one family."
    ),
    families: str = typer.Option(
        "lr,svm_linear,svm_rbf,rf,et,xgb,knn,nb,lda", help="Families tuned for auto / auto_select."
    ),
    cv: str = typer.Option("5x2", "--cv", help="Outer folds x repeats of the training-cohort CV estimate."),
    inner: str = typer.Option("5x2", "--inner", help="Inner folds x repeats for tuning."),
    threshold: str = typer.Option(
        "youden",
        "--threshold",
        help="Operating threshold rule: youden, prevalence, sensitivity:0.9, specificity:0.9.",
    ),
    comparators: str | None = typer.Option(
        None,
        "--comparators",
        help="Baselines to lock for later tests (default: suvmax when its column is present).",
    ),
    clinical: str | None = typer.Option(
        None, "--clinical", help="Clinical columns for the clinical comparator."
    ),
    tuner: str = typer.Option("grid", "--tuner", help="grid or optuna."),
    trials: int = typer.Option(30, "--trials", min=1, help="Optuna trials per family and fold."),
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
        help="Batch column (scanner / centre): ComBat harmonisation learned inside every training fold.",
    ),
    protect: str | None = typer.Option(
        None, "--protect", help="Covariates whose effect ComBat keeps, e.g. age,sex (never the label)."
    ),
    no_habitat_columns: bool = typer.Option(
        False, "--no-habitat-columns", help="Drop the table's habitat columns."
    ),
    habitats_manifest: Path | None = typer.Option(
        None,
        "--habitats-manifest",
        help="Cohort manifest: refit the habitat model inside every CV training fold for the estimate "
        "(the final model keeps the table's habitat columns, learned on the training cohort).",
    ),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop training cases without a label."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Parallel outer folds."),
    seed: int = typer.Option(0, help="Seed of the splits and models."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Lock a model on the training cohort: tune by inner CV, estimate by CV, threshold on out-of-fold
    training scores, refit on all training cases; write a model folder with its model card.

    Example: radfeat fit features.parquet --label egfr --cohort-column cohort --train train -o model/
    """
    from models.cv import CVConfig, parse_folds
    from models.data import load_dataset
    from models.leakage import LeakageError
    from models.lifecycle import fit_locked, save_model
    from radfeat.utils.hashing import file_digest

    if not table.is_file():
        error(f"table not found: {table} (give a radfeat table or a CSV/Parquet file)")
        raise typer.Exit(EXIT_USAGE)
    try:
        frame, provenance = read_table(table)
        if cohort_column in frame.columns:
            cohorts = frame[cohort_column].astype(str)
            if train not in set(cohorts):
                raise ValueError(
                    f"--train {train!r} is not a value of the {cohort_column!r} column; "
                    f"found {sorted(set(cohorts))}"
                )
            held_out = int((cohorts != train).sum())
            frame = frame[cohorts == train].reset_index(drop=True)  # held-out cohorts are never read again
        else:
            held_out = 0
            err.print(
                f"no {cohort_column!r} column: every case of the table is a training case", markup=False
            )
        frame.attrs["radfeat"] = provenance
        data_columns = set(frame.columns)
        clinical_names = split_names(clinical)
        data = load_dataset(
            frame,
            label,
            positive=positive,
            cohort_column=cohort_column,
            drop_missing=drop_missing,
            clinical=clinical_names or None,
            name=table.name.split(".")[0],
            harmonise=harmonise,
            protect=split_names(protect) or None,
        )
        if no_habitat_columns:
            from models.leakage import drop_habitat_columns

            data = drop_habitat_columns(data, "habitat column (--no-habitat-columns)")
        column_filter = None
        if stable_features is not None:
            from radfeat_cli.multicentre import stable_feature_filter

            data, column_filter = stable_feature_filter(data, stable_features, icc_threshold)
        folds, repeats = parse_folds(cv)
        inner_folds, inner_repeats = parse_folds(inner, "--inner")
        config = CVConfig(
            n_splits=folds,
            n_repeats=repeats,
            inner_splits=inner_folds,
            inner_repeats=inner_repeats,
            n_jobs=jobs,
            random_state=seed,
        )
        if comparators is None:
            from models.zoo import SUVMAX_COLUMN

            comps = ["suvmax"] if SUVMAX_COLUMN in data.X.columns else []
        else:
            comps = [c.strip() for c in comparators.split(",") if c.strip() and c.strip() != "none"]
        names = [n.strip() for n in families.split(",") if n.strip()]
        from models.thresholds import locked_threshold

        locked_threshold([0, 1], [0.2, 0.8], threshold)  # a bad rule fails now, not after the CV
        optuna_tuner = None
        if tuner == "optuna":
            import optuna

            from models.tuning import OptunaTuner, TuneConfig

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            optuna_tuner = OptunaTuner(
                TuneConfig(n_trials=trials, inner_splits=inner_folds, inner_repeats=inner_repeats),
                outdir=str(output.with_name(output.name + ".work")),
                label=label,
            )
        elif tuner != "grid":
            raise ValueError(f"--tuner must be grid or optuna, got {tuner!r}")
    except ValueError as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    err.print(
        f"training cohort {train!r}: {len(data)} cases ({int(data.y.sum())} positive '{data.positive}'), "
        f"{data.X.shape[1]} features; {held_out} held-out case(s) set aside unread; family {family}"
        + (f"; comparators {', '.join(comps)}" if comps else ""),
        markup=False,
    )
    if harmonise:
        from radfeat_cli.multicentre import warn_confounding

        warn_confounding(data)
    for note in data.notes:
        err.print(f"  note: {note}", markup=False)
    hook = None
    if habitats_manifest is not None:
        from models.fold_features import HabitatFoldFeatures
        from radfeat.manifest import load_manifest
        from radfeat.settings import validate_settings

        if not provenance.get("settings"):
            error(f"{table} records no extraction settings: the per-fold habitat refit needs them")
            raise typer.Exit(EXIT_USAGE)
        training_ids = set(map(str, data.ids))
        rows = [r for r in load_manifest(habitats_manifest).rows() if str(r["case_id"]) in training_ids]
        hook = HabitatFoldFeatures(rows, validate_settings(provenance["settings"], f"{table} (provenance)"))
    with Progress(quiet, title="training-cohort CV", unit="folds") as progress:
        progress({"total": folds * repeats})
        try:
            model, _ = fit_locked(
                data,
                family=family,
                families=names,
                config=config,
                threshold_rule=threshold,
                comparators=comps,
                tuner=optuna_tuner,
                fold_features=hook,
                column_filter=column_filter,
                cache_dir=output.with_name(output.name + ".work") / "folds",
                progress=lambda s: progress({"case_id": f"r{s['repeat']}f{s['fold']}", "ok": True}),
            )
        except (ValueError, LeakageError) as exc:
            error(exc)
            raise typer.Exit(EXIT_USAGE) from None
    model.card.setdefault("table", {})["clinical"] = clinical_names or None
    if harmonise:
        model.card["table"]["harmonise"] = {"batch": harmonise, "protect": split_names(protect)}
    if stable_features is not None:
        source = stable_features / "features.parquet" if stable_features.is_dir() else stable_features
        model.card["table"]["stable_features"] = {
            "file": source.name,
            "sha256": file_digest(source),
            "icc": icc_threshold,
            "chosen": "inside every training fold" if column_filter is not None else "fixed list",
            "n_kept": len(model.features),
        }
    model.card["training"]["table"] = table.name
    model.card["training"]["cohort_column"] = (
        cohort_column if held_out or cohort_column in data_columns else None
    )
    save_model(model, output, provenance)
    est = model.card["cv_estimate"]
    out.print(
        f"locked {family}: "
        + ", ".join(f"{m.family} {m.weight:.2f}" for m in model.members)
        + f"; training-cohort CV AUC {est['auc_oof']:.3f} "
        f"({est['auc_ci_low']:.3f}–{est['auc_ci_high']:.3f}); "
        f"threshold {model.threshold:.4f} ({threshold})",
        markup=False,
    )
    out.print(f"model folder: {output} (fingerprint {model.fingerprint}; card {output / 'model_card.md'})")


def _looks_like_manifest(frame, card: dict) -> bool:
    from radfeat.manifest import REQUIRED_COLUMNS

    has_features = any(f in frame.columns for f in card["features"])
    return not has_features and all(c in frame.columns for c in REQUIRED_COLUMNS)


def score_source(
    model,
    model_dir: Path,
    source: Path,
    output: Path,
    *,
    jobs: int = 1,
    progress=None,
    batch_column: str | None = None,
):
    """``(scored, not_scored)`` for a feature table, or for a cohort manifest extracted first with the
    model's locked settings (and its own habitat model) into ``<output stem>.features.parquet``.

    Raises :class:`models.lifecycle.ModelFolderError` for a table the model cannot score (other
    settings, missing features) and radfeat's errors for a manifest that cannot be read.
    """
    from models.lifecycle import ModelFolderError
    from models.lifecycle.apply import predict_frame
    from radfeat.extract import extract_table

    frame, provenance = read_table(source)
    failures: list[dict] = []
    if _looks_like_manifest(frame, model.card):
        settings = (model.card.get("table") or {}).get("settings")
        if not settings:
            raise ModelFolderError(
                f"{model_dir}: the model card records no extraction settings, so radfeat cannot extract "
                f"{source} as the training table was; give a feature table instead"
            )
        habitat_dir = Path(model_dir) / "habitat_model"
        features_path = output.with_name(output.stem + ".features.parquet")
        err.print(
            f"{source}: a cohort manifest; extracting with the model's settings → {features_path}",
            markup=False,
        )
        result = extract_table(
            source,
            features_path,
            settings=settings,
            jobs=jobs,
            progress=progress,
            habitat_model=habitat_dir if habitat_dir.is_dir() else None,
        )
        failures = [
            {
                "case_id": f["case_id"],
                "reason": f"feature extraction failed ({f.get('stage')}): {f.get('error')}",
            }
            for f in result.summary.failures
        ]
        frame, provenance = read_table(features_path)
    scored, not_scored = predict_frame(
        model, frame, provenance, source=str(source), batch_column=batch_column
    )
    return scored, failures + not_scored


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="Model folder written by `radfeat fit`."),
    source: Path = typer.Argument(
        ..., help="A feature table, or a cohort manifest (extracted with the model's settings)."
    ),
    output: Path = typer.Option(Path("predictions.csv"), "--output", "-o", help="Predictions CSV."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Extraction workers (manifest input)."),
    table: Path | None = typer.Option(
        None, "--table", help="Fusion models: the feature table of the manifest's cases (else extracted)."
    ),
    gradcam: Path | None = typer.Option(
        None, "--gradcam", help="Fusion models: write Grad-CAM overlays per case and task into this folder."
    ),
    harmonise: str | None = typer.Option(
        None,
        "--harmonise",
        help="Harmonised models: the batch column of this table (default: the one named at fit time).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Score new cases with a locked model: score, class at the locked threshold and the model's
    fingerprint per case; cases that cannot be scored are listed with the reason. Fusion models read
    a cohort manifest (images) and write one row per case and task.

    Example: radfeat predict model/ external_manifest.csv -o predictions.csv
    """
    from models.lifecycle import ModelFolderError, load_model, read_card
    from radfeat.errors import RadfeatError
    from radfeat.utils.atomic import write_text

    try:
        if read_card(model_dir).get("kind") == "fusion":
            try:
                _predict_fusion(model_dir, source, table, output, jobs=jobs, gradcam=gradcam, quiet=quiet)
            except (RadfeatError, FileNotFoundError) as exc:
                error(exc)
                raise typer.Exit(EXIT_DATA) from None
            return
        model = load_model(model_dir)
    except (ModelFolderError, ValueError) as exc:  # a bad folder, or a table the model cannot score
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    if not source.is_file():
        error(f"input not found: {source} (give a feature table or a cohort manifest)")
        raise typer.Exit(EXIT_USAGE)

    try:
        with Progress(quiet) as progress:
            scored, not_scored = score_source(
                model, model_dir, source, output, jobs=jobs, progress=progress, batch_column=harmonise
            )
    except (ModelFolderError, ValueError) as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    except (RadfeatError, FileNotFoundError) as exc:
        error(exc)
        raise typer.Exit(EXIT_DATA) from None
    write_text(scored.to_csv(index=False), output)
    _finish_predictions(
        output,
        not_scored,
        f"{len(scored)} case(s) scored with model {model.fingerprint} "
        f"({int(scored['predicted_positive'].sum())} "
        f"predicted '{model.positive}' at threshold {model.threshold:.4f}) → {output}",
    )


def _finish_predictions(output: Path, not_scored: list[dict], summary: str) -> None:
    """Write (or remove a stale) ``<output>.not_scored.csv``, print the summary and every case left
    out with its reason; exit 1 when any was."""
    import pandas as pd

    from radfeat.utils.atomic import write_text

    listing = output.with_name(output.stem + ".not_scored.csv")
    if not_scored:
        write_text(pd.DataFrame(not_scored).to_csv(index=False), listing)
    elif listing.exists():
        listing.unlink()
    out.print(summary, markup=False)
    if not_scored:
        for row in not_scored:
            typer.echo(f"not scored: {row['case_id']}: {row['reason']}", err=True)
        typer.echo(f"{len(not_scored)} case(s) not scored (listed in {listing})", err=True)
        raise typer.Exit(EXIT_DATA)


def _predict_fusion(
    model_dir: Path,
    source: Path,
    table: Path | None,
    output: Path,
    *,
    jobs: int,
    gradcam: Path | None,
    quiet: bool,
) -> None:
    """The fusion branch of ``predict``: patches from the manifest, feature tokens from ``table`` (or
    extracted with the model's settings), the fold ensemble's mean probability per task."""
    import numpy as np

    from models.fusion.data import build_fusion_data
    from models.lifecycle import ModelFolderError, check_table
    from models.lifecycle.fusion import load_fusion_model, predict_fusion
    from radfeat.errors import RadfeatError
    from radfeat.manifest import load_manifest
    from radfeat.utils.atomic import write_text

    locked = load_fusion_model(model_dir)
    if not source.is_file():
        raise ModelFolderError(
            f"manifest not found: {source} (a fusion model reads images: give a cohort manifest)"
        )
    try:
        rows = load_manifest(source).table
    except RadfeatError as exc:
        raise ModelFolderError(f"{source}: a fusion model needs a cohort manifest: {exc}") from None
    provenance: dict = {}
    frame = None
    if locked.feature_columns:
        if table is None:
            settings = (locked.card.get("table") or {}).get("settings")
            if not settings:
                raise ModelFolderError(
                    f"{model_dir}: the model uses feature tokens but records no extraction settings; "
                    "give --table"
                )
            from radfeat.extract import extract_table

            table = output.with_name(output.stem + ".features.parquet")
            habitat_dir = Path(model_dir) / "habitat_model"
            with Progress(quiet) as progress:
                extract_table(
                    source,
                    table,
                    settings=settings,
                    jobs=jobs,
                    progress=progress,
                    habitat_model=habitat_dir if habitat_dir.is_dir() else None,
                )
        frame, provenance = read_table(table)
        check_table(locked.card, provenance, frame.columns, source=str(table))
    failures: list[dict] = []
    groups = sorted({g for m in locked.members for g in m.prep.group_names_})
    data = build_fusion_data(
        source,
        frame,
        tasks=locked.tasks,
        positive=locked.card["positive"],
        groups=groups or ("pet",),
        spec=locked.spec,
        jobs=jobs,
        require_labels=False,
        classes=locked.classes,
        failures=failures,
    )
    carry_source = rows.set_index("case_id")
    if frame is not None:
        extra = frame.set_index("case_id") if "case_id" in frame.columns else frame
        carry_source = carry_source.join(extra[[c for c in extra.columns if c not in carry_source.columns]])
    carry = carry_source[[c for c in (*locked.tasks, "cohort") if c in carry_source.columns]]
    carry.index = carry.index.astype(str)
    scored = predict_fusion(locked, data, carry)
    training = (locked.card.get("training") or {}).get("cohorts") or []
    if "cohort" in scored.columns and training:  # the ensemble saw these cases: apparent metrics only
        scored["training_cohort"] = scored["cohort"].astype(str).isin(training)
    write_text(scored.to_csv(index=False), output)
    if gradcam is not None:
        from models.fusion.gradcam import grad_cam, save_overlays

        idx = np.arange(len(data))
        first = locked.members[0]
        for task in locked.tasks:
            cams = grad_cam(first.model, data, first.prep, idx, task)
            save_overlays(
                data,
                idx,
                cams,
                gradcam / task,
                title=f"HiResCAM of the predicted {task} class (fold-1 model)",
            )
    _finish_predictions(
        output,
        failures,
        f"{len(data)} case(s) × {len(locked.tasks)} task(s) scored with fusion model "
        f"{locked.fingerprint} → {output}",
    )


@app.command()
def evaluate(
    predictions: Path = typer.Argument(..., help="Predictions CSV written by `radfeat predict`."),
    label: str = typer.Option(..., "--label", help="Outcome column, e.g. egfr."),
    by: str | None = typer.Option(None, "--by", help="Cohort column: one evaluation per cohort."),
    positive: str | None = typer.Option(
        None, help="Positive class (default: the model's, from the predictions)."
    ),
    model_dir: Path | None = typer.Option(
        None, "--model", help="The model folder: its card joins the report."
    ),
    output: Path = typer.Option(Path("evaluation"), "--output", "-o", help="Report folder."),
) -> None:
    """Per-cohort evaluation: AUC with DeLong CI, ACC/SEN/SPEC/PPV/NPV at the locked threshold with CIs,
    Brier, calibration, decision curves, DeLong and McNemar against the comparators; Markdown + HTML.

    Example: radfeat evaluate predictions.csv --label egfr --by cohort -o report/
    """
    import pandas as pd

    from models.lifecycle import ModelFolderError, read_card
    from models.lifecycle.evaluate import evaluate_predictions, write_evaluation_report

    if not predictions.is_file():
        error(f"predictions not found: {predictions} (write them with `radfeat predict`)")
        raise typer.Exit(EXIT_USAGE)
    frame = pd.read_csv(predictions, dtype={"case_id": str})
    card = None
    try:
        if model_dir is not None:
            card = read_card(model_dir)
            stated = set(frame.get("model_fingerprint", pd.Series(dtype=str)).dropna().astype(str))
            if stated and stated != {card["fingerprint"]}:
                raise ModelFolderError(
                    f"{predictions} was written by model(s) {sorted(stated)}, not by {model_dir} "
                    f"({card['fingerprint']}): give the model folder that made them"
                )
        for col in ("score", "threshold"):
            if col not in frame.columns:
                raise ValueError(
                    f"{predictions}: no {col!r} column; write predictions with `radfeat predict`"
                )
        result = evaluate_predictions(frame, label, positive=positive, by=by)
    except (ValueError, ModelFolderError) as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    paths = write_evaluation_report(result, output, card=card)
    for _, r in result.metrics[result.metrics["model"] == "model"].iterrows():
        out.print(
            f"{r.cohort}: n {r.n} ({r.n_positive} positive) AUC {r.auc:.3f} "
            f"({r.auc_ci_low:.3f}–{r.auc_ci_high:.3f}), "
            f"SEN {r.sensitivity:.2f} SPEC {r.specificity:.2f} at the locked threshold",
            markup=False,
        )
    for note in result.notes:
        err.print(f"note: {note}", markup=False)
    out.print(f"report: {paths['markdown']} ({paths['html']})", markup=False)


@app.command()
def survival(
    predictions: Path = typer.Argument(..., help="Predictions CSV written by `radfeat predict`."),
    time: str = typer.Option(..., "--time", help="Follow-up time column, e.g. pfs_months."),
    event: str = typer.Option(..., "--event", help="Event column (1 = progression / death, 0 = censored)."),
    group_by: str | None = typer.Option(
        None, "--group-by", help="Treatment column: curves, HRs and C per treatment, and the interaction."
    ),
    adjust: str | None = typer.Option(None, "--adjust", help="Cox adjustment covariates, e.g. age,sex."),
    table: Path | None = typer.Option(
        None,
        "--table",
        help="Table with the follow-up columns, joined on case_id (else read from PREDICTIONS).",
    ),
    include_training: bool = typer.Option(
        False, "--include-training", help="Keep training-cohort cases (their scores are apparent)."
    ),
    task: str | None = typer.Option(None, "--task", help="Fusion-model predictions: the task's score."),
    output: Path = typer.Option(Path("survival"), "--output", "-o", help="Report folder."),
) -> None:
    """Survival by the locked model's score: Kaplan–Meier by locked-threshold group with numbers at risk
    and log-rank p, Cox HR per SD and for the group with 95 % CI (adjustable), Harrell's C with CI, and the
    score × treatment interaction; Markdown + HTML.

    Example: radfeat survival predictions.csv --time pfs_months --event progression --group-by treatment
    """
    import pandas as pd

    from models.lifecycle.survival import survival_on_scores, write_survival_report

    if not predictions.is_file():
        error(f"predictions not found: {predictions} (write them with `radfeat predict`)")
        raise typer.Exit(EXIT_USAGE)
    frame = pd.read_csv(predictions, dtype={"case_id": str})
    try:
        if table is not None:
            extra, _ = read_table(table)
            if "case_id" not in extra.columns:
                raise ValueError(f"{table} has no case_id column to join on")
            extra = extra.assign(case_id=extra["case_id"].astype(str))
            columns = [c for c in extra.columns if c not in frame.columns or c == "case_id"]
            frame = frame.merge(extra[columns], on="case_id", how="left")
        analysis = survival_on_scores(
            frame,
            time,
            event,
            group_by=group_by,
            adjust=split_names(adjust),
            include_training=include_training,
            task=task,
        )
    except ValueError as exc:
        error(exc)
        raise typer.Exit(EXIT_USAGE) from None
    paths = write_survival_report(analysis, output)
    for _, row in analysis.logrank.iterrows():
        out.print(
            f"{row.subgroup}: n {row.n} ({row.events} events), log-rank p "
            f"{row.get('logrank_p', float('nan')):.3g}",
            markup=False,
        )
    for _, row in analysis.cox.iterrows():
        if "hr" in row and pd.notna(row.hr):
            out.print(
                f"{row.subgroup}: HR {row.term} {row.hr:.2f} ({row.hr_ci_lower:.2f}–{row.hr_ci_upper:.2f}), "
                f"p {row.p:.3g}",
                markup=False,
            )
    for _, row in analysis.interaction.iterrows():
        out.print(
            f"interaction {row.term}: HR {row.hr:.2f}, p {row.p:.3g} (LR p {row.lr_p:.3g})", markup=False
        )
    for note in analysis.notes:
        err.print(f"note: {note}", markup=False)
    out.print(f"report: {paths['markdown']} ({paths['html']})", markup=False)
