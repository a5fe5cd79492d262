"""Apply a locked model to a feature table: the per-case predictions ``radfeat predict`` writes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.lifecycle.locked import LockedModel
from models.lifecycle.store import check_table

__all__ = ["model_input", "predict_frame", "PREDICTION_COLUMNS"]

#: Leading columns of a predictions table (comparator columns follow).
PREDICTION_COLUMNS = (
    "case_id",
    "score",
    "predicted_positive",
    "predicted_class",
    "threshold",
    "positive_class",
    "model_fingerprint",
)


def model_input(
    card: dict, table: pd.DataFrame, batch_column: str | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The model's feature columns from ``table`` (numbers parsed as in training; clinical covariates
    one-hot encoded with the training levels; the harmonisation batch read from the card's batch
    column, or ``batch_column`` when the new table names it differently), and the case ids."""
    from models.data import ID_COLUMNS, clinical_columns, harmoniser_input, parse_numeric_columns
    from models.harmonise import batch_column as batch_name
    from models.harmonise import harmoniser_columns

    frame = table.reset_index() if table.index.name and table.index.name not in table.columns else table
    id_column = next((c for c in ID_COLUMNS if c in frame.columns), None)
    ids = frame[id_column].astype(str).to_numpy() if id_column else np.arange(len(frame)).astype(str)
    clinical = (card.get("table") or {}).get("clinical") or []
    harmonise = (card.get("table") or {}).get("harmonise")
    radiomics = [
        f for f in card["features"] if not f.startswith("clin_") and f not in harmoniser_columns([f])
    ]
    X, _, _ = parse_numeric_columns(
        frame, [c for c in radiomics if c in frame.columns], required=set(radiomics), ids=ids
    )
    if clinical:
        clin = clinical_columns(frame, clinical)
        for name in (f for f in card["features"] if f.startswith("clin_")):
            if name not in clin:
                # a level absent from this cohort: 0 where the covariate is known
                base = next((c for c in clinical if name.startswith(f"clin_{c}_")), None)
                known = frame[base].notna().to_numpy() if base else np.zeros(len(frame), bool)
                clin[name] = np.where(known, 0.0, np.nan)
        X = pd.concat([X.reset_index(drop=True), clin.reset_index(drop=True)], axis=1)
    if harmonise:
        source = batch_column or harmonise["batch"]
        extra = harmoniser_input(frame, source, harmonise.get("protect") or [], ids=ids, allow_missing=True)
        extra = extra.rename(columns={batch_name(source): batch_name(harmonise["batch"])})
        for name in (f for f in harmoniser_columns(card["features"]) if f not in extra):
            extra[name] = 0.0  # a one-hot level of a protected covariate absent from this cohort
        X = pd.concat([X.reset_index(drop=True), extra.reset_index(drop=True)], axis=1)
    return X, ids


def predict_frame(
    model: LockedModel,
    table: pd.DataFrame,
    provenance: dict | None = None,
    *,
    check_settings: bool = True,
    source: str = "the table",
    batch_column: str | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """Predictions for every case of ``table`` that can be scored, and ``{case_id, reason}`` for the
    others. Refuses (:class:`models.lifecycle.ModelFolderError`) a table extracted with other settings,
    another habitat model or without the model's features.

    Carried through: the label column (when present, for ``radfeat evaluate``) and ``cohort``.
    """
    card = model.card
    X, ids = model_input(card, table, batch_column)
    check_table(card if check_settings else {**card, "table": {}}, provenance or {}, X.columns, source=source)
    scored, not_scored = model.predict_table(X, ids)
    negative = f"not {model.positive}"
    scored.insert(3, "predicted_class", np.where(scored["predicted_positive"], model.positive, negative))
    scored["positive_class"] = model.positive
    scored["model_fingerprint"] = model.fingerprint
    for name, comp in model.comparators.items():
        scored[f"threshold_{name}"] = comp.threshold
        scored[f"predicted_positive_{name}"] = scored[f"predicted_positive_{name}"].astype("boolean")
    frame = table.reset_index() if table.index.name and table.index.name not in table.columns else table
    training = (card.get("training") or {}).get("cohorts") or []
    cohort_column = (card.get("training") or {}).get("cohort_column") or "cohort"
    carry = [c for c in (model.label, cohort_column) if c in frame.columns and c not in scored.columns]
    if carry:
        extra = frame[carry].copy()
        extra.insert(0, "case_id", ids)
        scored = scored.merge(extra, on="case_id", how="left")
    if cohort_column in scored.columns and training:
        # the locked model saw these cases: their metrics are apparent, never an estimate
        scored["training_cohort"] = scored[cohort_column].astype(str).isin(training)
    return scored, not_scored
