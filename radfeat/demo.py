"""``radfeat demo``: synthesise a cohort and run every pipeline stage that exists on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from radfeat.manifest import ValidationReport, validate_manifest
from radfeat.synth import make_cohort

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    """Where the demo put its outputs."""

    out_dir: Path
    manifest: Path
    validation: ValidationReport
    outputs: dict[str, Path] = field(default_factory=dict)
    n_features: int = 0


def run_demo(
    out_dir: str | Path = "radfeat_demo",
    n_cases: int = 24,
    seed: int = 0,
    jobs: int = 2,
    progress=None,
) -> DemoResult:
    """Synthesise ``n_cases`` PET/CT cases into ``out_dir``, validate them and extract the feature table.

    Later stages (habitats, model benchmark, fusion network) append their outputs to
    :attr:`DemoResult.outputs` as they are added to radfeat.
    """
    from radfeat.extract import extract_table

    out = Path(out_dir)
    manifest = make_cohort(out / "cohort", n_cases=n_cases, seed=seed)
    report = validate_manifest(manifest)
    (out / "validation.json").write_text(report.to_json())
    outputs = {"cohort manifest": manifest, "validation report": out / "validation.json"}
    result = DemoResult(out, manifest, report, outputs)
    if not report.ok:
        return result
    extraction = extract_table(manifest, out / "features.parquet", jobs=jobs, progress=progress)
    outputs["feature table"] = extraction.table_path
    result.n_features = len(extraction.table.columns)
    return result
