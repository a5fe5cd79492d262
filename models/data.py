"""Feature tables → X, y, groups, cohort; feature discovery; patient-level and cohort splits.

Reads radfeat tables (namespaced feature columns, provenance) and foreign ones such as radMLBench
(features first, then ``ID``, then a binary ``Target``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Dataset", "load_dataset", "load_radmlbench", "discover_features", "cohort_split", "binary_labels"]

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
    """Map a label column to 0/1. Numeric 0/1 (or two numeric levels: the larger is positive) or
    strings with ``positive`` naming the positive class.
    """
    s = pd.Series(values)
    if s.isna().any():
        raise ValueError(
            f"label {s.name!r} has {int(s.isna().sum())} missing value(s); drop those cases first"
        )
    levels = sorted(s.unique().tolist(), key=str)
    if len(levels) != 2:
        raise ValueError(f"label {s.name!r} must have exactly two classes, found {levels[:6]}")
    if positive is None:
        if pd.api.types.is_numeric_dtype(s):
            positive = str(max(levels))
        else:
            raise ValueError(
                f"label {s.name!r} has classes {levels}; say which is positive (e.g. --positive {levels[1]})"
            )
    if str(positive) not in {str(v) for v in levels}:
        raise ValueError(f"positive class {positive!r} not among label {s.name!r} classes {levels}")
    return (s.astype(str) == str(positive)).to_numpy(int), str(positive)


def discover_features(table: pd.DataFrame, exclude: set[str] | None = None) -> list[str]:
    """Feature columns: radfeat's namespaced columns when present, else every numeric column that is not
    an id, label, cohort or one of ``exclude``.
    """
    from radfeat.table import feature_columns

    exclude = {c.lower() for c in (exclude or set())}
    namespaced = [c for c in feature_columns(table) if c.lower() not in exclude]
    if namespaced:
        return [c for c in namespaced if pd.api.types.is_numeric_dtype(table[c])]
    return [
        c
        for c in table.columns
        if c.lower() not in NON_FEATURE | exclude and pd.api.types.is_numeric_dtype(table[c])
    ]


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
) -> Dataset:
    """Load a feature table (Parquet/CSV/gzip CSV or a DataFrame) as a :class:`Dataset`.

    Parameters
    ----------
    label : str
        The outcome column (``egfr``, ``Target``…).
    features : list of str, optional
        Feature columns; discovered with :func:`discover_features` when omitted (the label, ids,
        groups, cohort and clinical string columns are never features).
    """
    if isinstance(source, pd.DataFrame):
        table = source.copy()
        name = name or "table"
    else:
        path = Path(source)
        name = name or path.name.split(".")[0]
        if path.suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, compression="infer")
    if table.index.name and table.index.name not in table.columns:
        table = table.reset_index()
    if label not in table.columns:
        raise ValueError(
            f"label column {label!r} not in the table; columns include {list(table.columns)[:8]}"
        )
    id_column = id_column or next(
        (c for c in ("case_id", "ID", "id", "patient_id") if c in table.columns), None
    )
    excluded = {label, *(exclude or set()), *(c for c in (id_column, group_column, cohort_column) if c)}
    cols = features or discover_features(table, excluded)
    if not cols:
        raise ValueError("no numeric feature columns found; pass features=[...]")
    y, pos = binary_labels(table[label], positive)
    ids = table[id_column].astype(str).to_numpy() if id_column else np.arange(len(table)).astype(str)
    return Dataset(
        X=table[cols].astype(float).reset_index(drop=True),
        y=y,
        ids=ids,
        groups=table[group_column].astype(str).to_numpy() if group_column else None,
        cohort=table[cohort_column].astype(str).to_numpy()
        if cohort_column and cohort_column in table
        else None,
        name=name,
        label=label,
        positive=pos,
    )


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
