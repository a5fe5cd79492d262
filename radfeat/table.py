"""The feature table: one row per case, manifest columns then namespaced feature columns.

Parquet (default) keeps provenance in the file's metadata under the key ``radfeat``; CSV output
writes the same provenance to ``<table>.meta.json``. Feature columns are
``{modality}_{region}_{image_type}_{family}_{feature}``; :func:`feature_columns` finds them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from radfeat.utils.atomic import atomic_path, read_pair_manifest, write_pair

__all__ = [
    "FEATURE_PREFIXES",
    "FeatureName",
    "feature_columns",
    "parse_column",
    "write_table",
    "read_table",
    "read_provenance",
]

#: Namespaces of feature columns (modality or habitat-level features).
FEATURE_PREFIXES = ("ct_", "pet_", "hab_")
_FEATURE_RE = re.compile(rf"^({'|'.join(p.rstrip('_') for p in FEATURE_PREFIXES)})_[A-Za-z0-9]+_")
METADATA_KEY = b"radfeat"


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The feature columns of a radfeat table (namespaced ``ct_…``, ``pet_…``, ``hab_…``)."""
    return [c for c in table.columns if isinstance(c, str) and _FEATURE_RE.match(c)]


@dataclass(frozen=True)
class FeatureName:
    """The parts of a feature column name (see ``docs/columns.md``).

    ``modality``: ``ct``, ``pet`` or ``hab`` (habitat-level); ``region``: ``tumour``, ``hab1`` … or, for
    habitat-level columns, the feature group (``h1``, ``msi``, ``ith``, ``diversity``); ``image_type``:
    pyradiomics' image type (``original``, ``wavelet-LLH``, ``log-sigma-1-0-mm-3D``) or ``suv`` for the
    PET descriptors; ``family``: the IBSI family acronym (``firstorder``, ``glcm`` …; ``None`` for
    descriptors and habitat-level columns); ``feature``: the feature itself.
    """

    modality: str
    region: str
    image_type: str | None
    family: str | None
    feature: str


_RADIOMICS_FAMILIES = {"shape", "shape2D", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}
#: IBSI tag prefixes: the families of the IBSI engine's columns (``ct_tumour_ibsi_cm_joint_max_3D_avg``).
_IBSI_FAMILIES = {"morph", "loc", "stat", "ih", "ivh", "cm", "rlm", "szm", "dzm", "ngt", "ngl"}


def parse_column(name: str) -> FeatureName:
    """Split a feature column into its parts; ``ValueError`` for a column outside the scheme.

    Examples: ``ct_tumour_original_glcm_Contrast`` → (ct, tumour, original, glcm, Contrast);
    ``pet_tumour_suv_SUVpeak`` → (pet, tumour, suv, None, SUVpeak); ``hab_h2_volume_ml`` →
    (hab, h2, None, None, volume_ml).
    """
    if not _FEATURE_RE.match(name):
        raise ValueError(
            f"{name!r} is not a radfeat feature column ({{modality}}_{{region}}_{{image_type}}_{{family}}_"
            "{feature} with modality ct, pet or hab; see docs/columns.md)"
        )
    modality, region, rest = name.split("_", 2)
    if modality == "hab":
        return FeatureName(modality, region, None, None, rest)
    image_type, _, tail = rest.partition("_")
    family, _, feature = tail.partition("_")
    if image_type == "suv":
        return FeatureName(modality, region, "suv", None, tail)
    known = _IBSI_FAMILIES if image_type.split("-")[0] == "ibsi" else _RADIOMICS_FAMILIES
    if family not in known or not feature:
        raise ValueError(f"{name!r}: unknown feature family {family!r}; see docs/columns.md")
    return FeatureName(modality, region, image_type, family, feature)


def write_table(table: pd.DataFrame, path: str | Path, provenance: dict[str, Any]) -> Path:
    """Write atomically as Parquet (``.parquet``) or CSV (``.csv``) with provenance metadata."""
    path = Path(path)
    text = json.dumps(provenance, default=str, sort_keys=True)
    if path.suffix.lower() == ".csv":
        # Table and metadata as one unit: the JSON records the CSV's SHA-256 (checked on reading).
        write_pair(
            {path: lambda tmp: table.to_csv(tmp, index=True)},
            path.with_name(path.name + ".meta.json"),
            json.loads(text),
        )
        return path
    arrow = pa.Table.from_pandas(table, preserve_index=True)
    metadata = {**(arrow.schema.metadata or {}), METADATA_KEY: text.encode()}
    arrow = arrow.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a radfeat (or any) feature table, Parquet or CSV, indexed by ``case_id`` when present."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        meta = path.with_name(path.name + ".meta.json")
        if meta.exists():
            read_pair_manifest(meta)  # refuses a table that does not match its metadata
        table = pd.read_csv(path, dtype={"case_id": str})
        return table.set_index("case_id") if "case_id" in table.columns else table
    return pd.read_parquet(path)


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance dict written with the table (empty when the table has none)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        meta = path.with_name(path.name + ".meta.json")
        if not meta.exists():
            return {}
        return {k: v for k, v in read_pair_manifest(meta).items() if k != "members"}
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else {}
