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


def run_demo(out_dir: str | Path = "radfeat_demo", n_cases: int = 24, seed: int = 0) -> DemoResult:
    """Synthesise ``n_cases`` PET/CT cases into ``out_dir`` and validate the manifest.

    Later stages (feature extraction, habitats, model benchmark, fusion network) append their
    outputs to :attr:`DemoResult.outputs` as they are added to radfeat.
    """
    out = Path(out_dir)
    manifest = make_cohort(out / "cohort", n_cases=n_cases, seed=seed)
    report = validate_manifest(manifest)
    (out / "validation.json").write_text(report.to_json())
    outputs = {"cohort manifest": manifest, "validation report": out / "validation.json"}
    return DemoResult(out, manifest, report, outputs)
