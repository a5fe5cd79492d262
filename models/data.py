"""Feature tables → X, y, groups, cohort; feature discovery; patient-level and cohort splits.

Reads radfeat tables (namespaced feature columns, provenance) and foreign ones such as radMLBench
(features first, then ``ID``, then a binary ``Target``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Dataset", "load_dataset", "load_radmlbench", "discover_features", "cohort_split", "binary_labels"]

#: Case-id columns looked for, in this order, when none is named.
ID_COLUMNS = ("case_id", "ID", "id", "patient_id")
#: Columns that are never features in a foreign table.
NON_FEATURE = {"id", "case_id", "target", "patient_id", "cohort", "group", "split", "fold"}


@dataclass
class Dataset:
    """A modelling table: features X (cases × features), binary y, ids, optional groups and cohort.

    Attributes
    ----------
    X : DataFrame of shape (n_cases, n_features)
    y : ndarray of int, shape (n_cases,)
        1 = positive class (e.g. EGFR-mutant), 0 = negative.
    ids : ndarray of str
    groups : ndarray or None
        Patient ids when a patient has several rows (lesions, time points); splits keep them together.
    cohort : ndarray or None
        e.g. ``train`` / ``external`` for external validation.
    name, label : str
    """

    X: pd.DataFrame
    y: np.ndarray
    ids: np.ndarray
    groups: np.ndarray | None = None
    cohort: np.ndarray | None = None
    name: str = "table"
    label: str = "label"
    positive: str = "1"
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    def subset(self, mask: np.ndarray) -> Dataset:
        mask = np.asarray(mask)
        return Dataset(
            self.X.loc[mask].reset_index(drop=True)
            if mask.dtype == bool
            else self.X.iloc[mask].reset_index(drop=True),
            self.y[mask],
            self.ids[mask],
            None if self.groups is None else self.groups[mask],
            None if self.cohort is None else self.cohort[mask],
            self.name,
            self.label,
            self.positive,
            dict(self.dropped),
            list(self.notes),
            self.provenance,
        )

    def __len__(self) -> int:
        return len(self.y)

    def fingerprint(self) -> str:
        """Hash of features, labels and ids (keys studies and cached CV results)."""
        return table_fingerprint(self.X, self.y, self.ids)


def table_fingerprint(X: pd.DataFrame, y: np.ndarray, ids=None) -> str:
    """Hash (16 hex characters) of feature values, labels, case ids (optional) and column names."""
    import hashlib

    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    h.update(np.asarray(y).tobytes())
    if ids is not None:
        h.update("|".join(map(str, ids)).encode())
    h.update("|".join(map(str, X.columns)).encode())
    return h.hexdigest()[:16]


def binary_labels(values: pd.Series, positive: str | None = None) -> tuple[np.ndarray, str]:
    """Map a label column to 0/1 with the one positive-class rule of :func:`models.labels.encode_binary`."""
    from models.labels import encode_binary

    encoded = encode_binary(values, positive)
    return encoded.codes.astype(int), encoded.positive


#: Cell texts read as a missing value (compared lower-case, stripped).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "none", "null", "-", "?", "#n/a", "missing", "nd"})
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+([eE][+-]?\d+)?$")


def discover_features(table: pd.DataFrame, exclude: set[str] | None = None) -> list[str]:
    """Candidate feature columns: radfeat's namespaced columns when present (whatever their dtype: they
    must be numbers, see :func:`parse_numeric_columns`), else every column that is not an id, label,
    cohort or one of ``exclude``.
    """
    from radfeat.table import feature_columns

    exclude = {c.lower() for c in (exclude or set())}
    namespaced = [c for c in feature_columns(table) if c.lower() not in exclude]
    if namespaced:
        return namespaced
    return [c for c in table.columns if str(c).lower() not in NON_FEATURE | exclude]


def parse_numeric_columns(
    table: pd.DataFrame, columns: list[str], *, required: set[str] | None = None, ids=None
) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """Read ``columns`` of ``table`` as float, never dropping a feature without saying so.

    Text cells that are a missing-value token (:data:`MISSING_TOKENS`: ``n/a``, ``NA``, ``-`` …) become
    NaN (imputed inside the training folds) and are reported. A column with any other non-numeric cell
    (``12,5`` with a decimal comma, ``<0.5``, ``high``) raises ``ValueError`` naming the column, the rows
    and the values when it is ``required`` (a radfeat feature column) or mostly numeric; a column that
    is mostly text (e.g. ``sex`` in a foreign table) is dropped and listed with the reason.

    Returns
    -------
    (frame of float, dropped {column: reason}, notes [str])
    """
    required = required or set()
    ids = np.asarray(ids) if ids is not None else np.asarray(table.index.astype(str))
    out, dropped, notes = {}, {}, []
    for col in columns:
        values = table[col]
        if pd.api.types.is_bool_dtype(values):
            out[col] = values.astype(float).to_numpy()
            continue
        if pd.api.types.is_numeric_dtype(values):
            out[col] = values.astype(float).to_numpy()
            continue
        text = values.astype("string").str.strip()
        missing = values.isna().to_numpy() | text.str.lower().isin(MISSING_TOKENS).fillna(True).to_numpy()
        parsed = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=float)
        bad = ~missing & np.isnan(parsed)
        tokens = sorted(set(text[missing & values.notna().to_numpy()].tolist()))
        if not bad.any():
            out[col] = parsed
            if tokens:
                rows = ids[missing & values.notna().to_numpy()]
                notes.append(
                    f"column {col!r}: {len(rows)} value(s) {tokens[:5]} read as missing (rows "
                    f"{', '.join(map(str, rows[:5]))}{'…' if len(rows) > 5 else ''}); "
                    "imputed inside the folds"
                )
            continue
        n_numeric = int((~missing & ~np.isnan(parsed)).sum())
        bad_values = text[bad].tolist()
        if col in required or n_numeric >= bad.sum():
            rows = ids[bad]
            comma = all(_DECIMAL_COMMA.match(v or "") for v in bad_values)
            hint = (
                "the values use a decimal comma: write numbers with '.' as the decimal separator "
                "(or read the CSV with decimal=',' and save it again)"
                if comma
                else "fix or blank these cells (empty, NA or n/a are read as missing)"
            )
            listed = ", ".join(f"{r}={v!r}" for r, v in list(zip(rows, bad_values, strict=True))[:8])
            raise ValueError(
                f"feature column {col!r} has {int(bad.sum())} non-numeric value(s): {listed}"
                f"{' …' if bad.sum() > 8 else ''}. Hint: {hint}"
            )
        dropped[col] = f"not numeric (values like {sorted(set(bad_values))[:3]})"
    frame = pd.DataFrame(out, columns=[c for c in columns if c in out])
    return frame, dropped, notes


def read_feature_table(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """``(frame, provenance)`` of a radfeat table or a foreign CSV/Parquet file; CSV cells stay text
    where they are not numbers (a stray ``n/a`` is reported by :func:`parse_numeric_columns`, not
    hidden), provenance is ``{}`` when the file has none."""
    from radfeat.table import read_provenance

    path = Path(path)
    if path.suffix in (".parquet", ".pq"):
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path, compression="infer", keep_default_na=False, na_values=[""])
    try:
        provenance = read_provenance(path)
    except (OSError, ValueError, KeyError):
        provenance = {}
    return table, provenance


def load_dataset(
    source: str | Path | pd.DataFrame,
    label: str,
    *,
    positive: str | None = None,
    features: list[str] | None = None,
    id_column: str | None = None,
    group_column: str | None = None,
    cohort_column: str | None = "cohort",
    exclude: set[str] | None = None,
    name: str | None = None,
    drop_missing: bool = False,
    clinical: list[str] | None = None,
    harmonise: str | None = None,
    protect: list[str] | None = None,
) -> Dataset:
    """Load a feature table (Parquet/CSV/gzip CSV or a DataFrame) as a :class:`Dataset`.

    ``drop_missing`` drops the cases without a label (the count is in ``notes``) instead of refusing.
    ``clinical`` names clinical covariate columns (e.g. ``age``, ``sex``, ``smoking``): numeric ones
    become ``clin_<name>``, text ones one-hot ``clin_<name>_<level>`` (first level dropped); only the
    ``clinical`` and ``combined`` baselines use them. ``harmonise`` names a batch column (scanner,
    centre): its labels become the column ``batch__<name>`` that the pipelines' ComBat step
    (:mod:`models.harmonise`) learns from inside every training fold; ``protect`` names covariates whose
    effect ComBat keeps (``cov__<name>``; never the label: a new case's label is unknown).

    Parameters
    ----------
    label : str
        The outcome column (``egfr``, ``Target``…).
    features : list of str, optional
        Feature columns; discovered with :func:`discover_features` when omitted (the label, ids,
        groups, cohort and clinical string columns are never features).
    """
    provenance: dict = {}
    if isinstance(source, pd.DataFrame):
        table = source.copy()
        name = name or "table"
        provenance = dict(source.attrs.get("radfeat", {}))
    else:
        name = name or Path(source).name.split(".")[0]
        table, provenance = read_feature_table(source)
    if table.index.name and table.index.name not in table.columns:
        table = table.reset_index()
    if label not in table.columns:
        raise ValueError(
            f"label column {label!r} not in the table; columns include {list(table.columns)[:8]}"
        )
    id_column = id_column or next((c for c in ID_COLUMNS if c in table.columns), None)
    excluded = {
        label,
        *(exclude or set()),
        *(c for c in (id_column, group_column, cohort_column, harmonise) if c),
        *(protect or []),
    }
    cols = features or discover_features(table, excluded)
    ids = table[id_column].astype(str).to_numpy() if id_column else np.arange(len(table)).astype(str)
    from radfeat.table import feature_columns

    required = set(features or []) | set(feature_columns(table[cols])) if cols else set()
    X, dropped, notes = parse_numeric_columns(table, cols, required=required, ids=ids)
    if clinical:
        X = pd.concat([X, clinical_columns(table, clinical)], axis=1)
    if harmonise:
        X = pd.concat([X, harmoniser_input(table, harmonise, protect or [], label, ids)], axis=1)
    elif protect:
        raise ValueError("protect= names covariates of the harmonisation: give harmonise= (--harmonise) too")
    if X.shape[1] == 0:
        raise ValueError(
            "no numeric feature columns found; pass features=[...]"
            + (f" (dropped: {dropped})" if dropped else "")
        )
    if label in table.columns and not pd.api.types.is_numeric_dtype(table[label]):
        lab = table[label].astype("string").str.strip()
        table[label] = lab.where(~lab.str.lower().isin(MISSING_TOKENS).fillna(True))
    unlabelled = table[label].isna().to_numpy()
    if drop_missing and unlabelled.any():
        keep = ~unlabelled
        notes.append(
            f"{int(unlabelled.sum())} case(s) without a {label!r} label dropped (--drop-missing): "
            + ", ".join(map(str, ids[unlabelled][:10]))
            + (" …" if unlabelled.sum() > 10 else "")
        )
        table, X, ids = table.loc[keep].reset_index(drop=True), X.loc[keep].reset_index(drop=True), ids[keep]
    n_levels = table[label].dropna().astype(str).nunique()
    y, pos = binary_labels(table[label], positive)
    if n_levels > 2:
        notes.append(f"label {label!r} has {n_levels} classes: {pos!r} against all others (one-vs-rest)")
    return Dataset(
        X=X.reset_index(drop=True),
        y=y,
        ids=ids,
        groups=table[group_column].astype(str).to_numpy() if group_column else None,
        cohort=table[cohort_column].astype(str).to_numpy()
        if cohort_column and cohort_column in table
        else None,
        name=name,
        label=label,
        positive=pos,
        dropped=dropped,
        notes=notes,
        provenance=provenance,
    )


def clinical_columns(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Clinical covariates as ``clin_*`` columns: numbers kept, text one-hot (first level dropped)."""
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ValueError(
            f"clinical column(s) {missing} not in the table; columns include {list(table.columns)[:12]}"
        )
    parts = []
    for name in names:
        values = table[name]
        if pd.api.types.is_numeric_dtype(values):
            parts.append(values.astype(float).rename(f"clin_{name}").reset_index(drop=True))
            continue
        text = values.astype("string").str.strip()
        text = text.where(~text.str.lower().isin(MISSING_TOKENS).fillna(True))
        levels = sorted(text.dropna().unique().tolist())
        for level in levels[1:]:
            column = (text == level).astype(float).where(text.notna())
            parts.append(column.rename(f"clin_{name}_{level}").reset_index(drop=True))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=range(len(table)))


def harmoniser_input(
    table: pd.DataFrame,
    batch: str,
    protect: list[str],
    label: str | None = None,
    ids=None,
    allow_missing: bool = False,
) -> pd.DataFrame:
    """The columns the ComBat step reads: ``batch__<batch>`` (labels as text) and ``cov__*`` protected
    covariates (numbers kept, text one-hot as :func:`clinical_columns`). Refuses a missing batch label
    (unless ``allow_missing``: left missing, so the case is not scored) or protecting the label, naming
    the cases / the reason."""
    from models.harmonise import PROTECT_PREFIX, batch_column

    if batch not in table.columns:
        raise ValueError(
            f"--harmonise column {batch!r} is not in the table; columns include {list(table.columns)[:12]}"
        )
    if label is not None and label in protect:
        raise ValueError(
            f"the label {label!r} cannot be a protected covariate of the harmonisation: harmonising a "
            "new case would need its label, which is what the model predicts"
        )
    text = table[batch].astype("string").str.strip()
    missing = (text.isna() | text.str.lower().isin(MISSING_TOKENS).fillna(True)).to_numpy()
    if missing.any() and not allow_missing:
        ids = np.asarray(ids if ids is not None else table.index.astype(str))
        raise ValueError(
            f"{int(missing.sum())} case(s) have no {batch!r} (the --harmonise batch): "
            + ", ".join(map(str, ids[missing][:8]))
            + ". Hint: fill the scanner / centre of every case"
        )
    labels = text.to_numpy(dtype=object)
    labels[missing] = np.nan
    out = pd.DataFrame({batch_column(batch): labels})
    if protect:
        cov = clinical_columns(table, protect)
        cov.columns = [PROTECT_PREFIX + c.removeprefix("clin_") for c in cov.columns]
        out = pd.concat([out, cov.reset_index(drop=True)], axis=1)
    return out


def load_radmlbench(path: str | Path) -> Dataset:
    """A radMLBench table: feature columns, then ``ID``, then binary ``Target``."""
    table = pd.read_csv(path, compression="gzip")
    if list(table.columns[-2:]) != ["ID", "Target"]:
        raise ValueError(f"{path}: expected the last two columns to be ID and Target")
    return load_dataset(
        table,
        "Target",
        features=list(table.columns[:-2]),
        id_column="ID",
        cohort_column=None,
        name=Path(path).name.split(".")[0],
    )


def cohort_split(data: Dataset, train: str = "train") -> tuple[Dataset, Dataset]:
    """(training cohort, every other cohort) for external validation."""
    if data.cohort is None:
        raise ValueError("the table has no cohort column; external validation needs one")
    is_train = data.cohort == train
    if not is_train.any() or is_train.all():
        raise ValueError(
            f"cohort {train!r} must hold some but not all cases; found {sorted(set(data.cohort))}"
        )
    return data.subset(is_train), data.subset(~is_train)
