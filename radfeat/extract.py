"""``extract_table``: a cohort manifest in, one wide versioned feature table out.

The runner composes feature providers (:mod:`radfeat.providers`): whole-tumour radiomics, PET
descriptors and, with a fitted habitat model, habitat features. Each provider has its own cache key,
so changing one provider's settings recomputes that provider only.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from radfeat.errors import ManifestError
from radfeat.manifest import load_manifest
from radfeat.providers import HabitatFeatures, IBSIRadiomics, PETDescriptors, WholeTumourRadiomics
from radfeat.providers.base import FeatureProvider
from radfeat.runner import RunSummary, run_cases, utc_now, write_failures
from radfeat.settings import load_settings, settings_hash
from radfeat.table import write_table

__all__ = [
    "ExtractionResult",
    "extract_table",
    "extract_case",
    "default_providers",
    "library_versions",
    "ibsi_identifiers",
]

TABLE_VERSION = 2


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a feature table depends on (its provenance)."""
    from radfeat.utils.versions import library_versions as versions

    return {
        "python": platform.python_version(),
        **versions("radfeat", "pyradiomics-bhklab", "SimpleITK", "numpy", "pandas", "pyarrow", "PyWavelets"),
    }


_IBSI_COLUMN = re.compile(r"^(ct|pet)_tumour_ibsi(?:-(?P<filter>[A-Za-z0-9-]+))?_(?P<tag>.+)$")


def ibsi_identifiers(columns) -> dict[str, dict[str, str]]:
    """IBSI identity (tag, code, feature name, aggregation) of the IBSI engine's columns, for citing."""
    from radfeat.features.ibsi import ibsi_catalogue

    catalogue = ibsi_catalogue()
    out = {}
    for column in columns:
        match = _IBSI_COLUMN.match(str(column))
        if match and match["tag"] in catalogue:
            ident = {"tag": match["tag"], **catalogue[match["tag"]]}
            if match["filter"]:
                ident["filter"] = match["filter"]
            out[str(column)] = ident
    return out


def default_providers(settings: dict[str, Any]) -> list[FeatureProvider]:
    """Whole-tumour radiomics (the settings' ``engine``: ``pyradiomics``; ``radfeat``, the same columns and
    values from radfeat's matrices; ``ibsi``, radfeat's IBSI engine; or ``both`` pyradiomics and IBSI)
    and PET descriptors."""
    engine = settings.get("engine", "pyradiomics")
    providers: list[FeatureProvider] = []
    if engine in ("pyradiomics", "radfeat", "both"):
        providers.append(WholeTumourRadiomics(settings))
    if engine in ("ibsi", "both"):
        providers.append(IBSIRadiomics(settings))
    return [*providers, PETDescriptors(settings)]


def extract_case(row: dict[str, Any], settings: dict[str, Any], providers=None) -> dict[str, float]:
    """All features of one manifest row (absolute paths) in this process: load once, run the providers.

    Raises
    ------
    CaseFailure
        With the stage (read, ct_radiomics, pet_descriptors, pet_radiomics, habitats), file and hint.
    """
    from radfeat.case import load_case
    from radfeat.providers.base import pet_need

    providers = providers if providers is not None else default_providers(settings)
    case = load_case(row, settings, pet=pet_need(providers))
    features: dict[str, float] = {}
    for provider in providers:
        features.update(provider.compute(case))
    return features


@dataclass
class ExtractionResult:
    """The written table, the failures file (if any) and the run summary. After an interruption
    (``summary.interrupted``) nothing is written: ``table`` holds the finished cases only."""

    table_path: Path
    failures_path: Path | None
    summary: RunSummary
    table: pd.DataFrame


def extract_table(
    manifest_path: str | Path,
    out_path: str | Path,
    *,
    settings_path: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    timeout_s: float | None = None,
    force: bool = False,
    retry_failed: bool = False,
    progress: Callable[[dict], None] | None = None,
    habitat_model: str | Path | None = None,
    habitats_only: bool = False,
) -> ExtractionResult:
    """Extract every case of a manifest into one table (Parquet or CSV by ``out_path``'s suffix).

    Parameters
    ----------
    manifest_path : str or Path
        Cohort manifest (CSV or Parquet).
    out_path : str or Path
        The table; ``<out>.cache/`` holds finished cases, ``<out>.failures.csv`` the failed ones.
    settings_path, settings :
        A YAML file (merged over the defaults) or an already loaded settings dict.
    jobs : int, default=1
        Local worker processes (loky); ITK/BLAS threads are capped at 1 per worker.
    scheduler : str, optional
        ``tcp://host:port`` of a Dask scheduler: the same per-case function runs on its workers
        (they must see the same file paths).
    timeout_s : float, optional
        Per-case limit (default from the settings' ``run.timeout_s``), on local and Dask workers.
    habitat_model : str or Path, optional
        A fitted habitat model folder: habitat features join the table, label maps go to
        ``<out>_labels/``. ``habitats_only`` skips the whole-tumour features.
    """
    out_path = Path(out_path)
    settings = settings if settings is not None else load_settings(settings_path)
    manifest = load_manifest(manifest_path)
    ids = manifest.table["case_id"]
    bad = sorted(set(ids[ids.duplicated()])) + (["<empty>"] if (ids == "").any() else [])
    if bad:
        raise ManifestError(
            f"case ids must be unique and non-empty; offending: {bad[:10]}",
            path=manifest.path,
            hint="run `radfeat validate` and fix the case_id column",
        )
    rows = manifest.rows()
    providers: list[FeatureProvider] = [] if habitats_only else default_providers(settings)
    habitats = None
    if habitat_model is not None:
        from radfeat.habitats.workflow import labels_dir_for

        habitats = HabitatFeatures(habitat_model, settings, labels_dir=labels_dir_for(out_path))
        providers.append(habitats)
    if not providers:
        raise ValueError("nothing to extract: habitats_only needs a habitat model")
    timeout = timeout_s if timeout_s is not None else (settings.get("run") or {}).get("timeout_s")
    summary = run_cases(
        rows,
        providers,
        cache_dir=out_path.with_name(out_path.name + ".cache"),
        settings=settings,
        jobs=jobs,
        scheduler=scheduler,
        timeout_s=timeout,
        force=force,
        retry_failed=retry_failed,
        progress=progress,
    )
    original = (
        pd.read_csv(manifest.path, dtype={"case_id": str})
        if manifest.path.suffix.lower() != ".parquet"
        else pd.read_parquet(manifest.path)
    )
    original["case_id"] = manifest.table["case_id"].to_numpy()
    done = [r["case_id"] for r in rows if r["case_id"] in summary.results]
    features = pd.DataFrame.from_dict({c: summary.results[c] for c in done}, orient="index")
    features.index.name = "case_id"
    carried = original.set_index("case_id").loc[done]
    table = carried.join(features) if len(done) else carried
    provenance = {
        "radfeat_table_version": TABLE_VERSION,
        "created": utc_now(),
        "manifest": str(manifest.path),
        "settings": settings,
        "settings_hash": settings_hash(settings),
        "providers": {p.name: {"cache_key": p.cache_key(), "version": p.version} for p in providers},
        "versions": library_versions(),
        "input_fingerprints": summary.fingerprints,
        "n_cases": len(rows),
        "n_extracted": len(done),
        "n_failed": len({f["case_id"] for f in summary.failures}),
        "complete": not summary.interrupted,
    }
    ibsi_columns = ibsi_identifiers(table.columns)
    provenance["engine"] = settings.get("engine", "pyradiomics")
    if ibsi_columns:
        provenance["ibsi_identifiers"] = ibsi_columns
    if habitats is not None:
        model = habitats.model()
        provenance["habitat_model"] = {
            "path": habitats.model_dir,
            "k": model.k_,
            "mode": model.settings.mode,  # the modalities the habitats were clustered on
            "train_ids": model.train_ids_,
            "fingerprint": model.fingerprint(),
        }
    if summary.interrupted:
        # Never a partial table under the final name: finished cases are in the cache, a rerun resumes.
        return ExtractionResult(out_path, None, summary, table)
    write_table(table, out_path, provenance)
    failures = write_failures(summary.failures, out_path.with_name(out_path.name + ".failures.csv"))
    return ExtractionResult(out_path, failures, summary, table)
