"""``extract_table``: a cohort manifest in, one wide versioned feature table out."""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from radfeat.errors import ManifestError
from radfeat.manifest import load_manifest
from radfeat.pipeline import build_engines, extract_case, input_fingerprint
from radfeat.runner import RunSummary, run_cases, utc_now, write_failures
from radfeat.settings import load_settings, settings_hash
from radfeat.table import write_table

__all__ = ["ExtractionResult", "extract_table", "library_versions"]

_ENGINES: dict[str, Any] = {}


def _features_of(row: dict, settings: dict, key: str, habitats=None, habitats_only: bool = False) -> dict:
    """Worker entry point: engines are built once per worker process and settings hash."""
    features: dict = {}
    if not habitats_only:
        if key not in _ENGINES:
            _ENGINES.clear()
            _ENGINES[key] = build_engines(settings)
        features.update(extract_case(row, settings, _ENGINES[key]).features)
    if habitats is not None:
        features.update(habitats(row))
    return features


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("radfeat", "pyradiomics-bhklab", "SimpleITK", "numpy", "pandas", "pyarrow", "PyWavelets"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


@dataclass
class ExtractionResult:
    """The written table, the failures file (if any) and the run summary."""

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
    s_hash = settings_hash(settings)
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
    habitats = None
    if habitat_model is not None:
        from radfeat.features.habitats import HabitatModel
        from radfeat.habitats import habitat_work

        model = HabitatModel.load(habitat_model)
        habitats = habitat_work(habitat_model, settings, out_path)
        s_hash = settings_hash(
            {"settings": s_hash, "habitat_model": model.fingerprint(), "habitats_only": habitats_only}
        )
    timeout = timeout_s if timeout_s is not None else (settings.get("run") or {}).get("timeout_s")
    summary = run_cases(
        rows,
        functools.partial(
            _features_of, settings=settings, key=s_hash, habitats=habitats, habitats_only=habitats_only
        ),
        cache_dir=out_path.with_name(out_path.name + ".cache"),
        fingerprint=input_fingerprint,
        settings_hash=s_hash,
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
        "radfeat_table_version": 1,
        "created": utc_now(),
        "manifest": str(manifest.path),
        "settings": settings,
        "settings_hash": s_hash,
        "versions": library_versions(),
        "input_fingerprints": summary.fingerprints,
        "n_cases": len(rows),
        "n_extracted": len(done),
        "n_failed": len(summary.failures),
    }
    if habitat_model is not None:
        provenance["habitat_model"] = {
            "path": str(Path(habitat_model).resolve()),
            "k": model.k_,
            "train_ids": model.train_ids_,
            "fingerprint": model.fingerprint(),
        }
    write_table(table, out_path, provenance)
    failures = write_failures(summary.failures, out_path.with_name(out_path.name + ".failures.csv"))
    return ExtractionResult(out_path, failures, summary, table)
