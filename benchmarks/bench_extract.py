"""Extraction speed: radfeat against plain pyradiomics on the same cases and settings, same process.

Run: ``python benchmarks/bench_extract.py [--repeats 3] [--quick]``. Prints per-case seconds, the
speed ratio and the largest relative difference between the two (must stay below 1e-6), then
throughput on the 12 real sarcoma PET/CT cases with 1 and 2 jobs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median_seconds, print_table, require_data  # noqa: E402

FAMILIES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
FEATURE_SETS = {
    "original": {"Original": {}},
    "original+LoG(1,2,3)+wavelet": {"Original": {}, "LoG": {"sigma": [1.0, 2.0, 3.0]}, "Wavelet": {}},
}


def _params(image_types: dict) -> dict:
    return {"imageType": image_types, "featureClass": {c: [] for c in FAMILIES}, "setting": {"binWidth": 25}}


def bench_pyradiomics_cases(repeats: int, cases: list[str]) -> None:
    import radiomics
    from radiomics import featureextractor

    from radfeat.features.radiomics import RadiomicsEngine

    radiomics.setVerbosity(logging.ERROR)
    folder = require_data("pyradiomics")
    rows = []
    for set_name, image_types in FEATURE_SETS.items():
        params = _params(image_types)
        for case in cases:
            image_path, mask_path = str(folder / f"{case}_image.nrrd"), str(folder / f"{case}_label.nrrd")
            plain_extractor = featureextractor.RadiomicsFeatureExtractor(params)  # default diagnostics

            def plain(ext=plain_extractor, i=image_path, m=mask_path):
                return ext.execute(i, m)

            engine = RadiomicsEngine(params)

            def ours(eng=engine, i=image_path, m=mask_path):
                image, mask = sitk.ReadImage(i), sitk.ReadImage(m)
                return eng.extract(image, {"tumour": mask == 1})["tumour"]

            t_plain = median_seconds(plain, repeats)
            t_ours = median_seconds(ours, repeats)
            a = {k: float(v) for k, v in plain().items() if not k.startswith("diagnostics")}
            b = ours()
            diff = max(abs(b[k] - a[k]) / max(abs(a[k]), 1e-12) for k in a)
            rows.append([set_name, case, len(a), t_plain, t_ours, t_plain / t_ours, f"{diff:.1e}"])
    print_table(
        f"Whole-tumour CT radiomics, file read included, 1 thread, median of {repeats} after 1 warm-up",
        ["feature set", "case", "features", "pyradiomics s", "radfeat s", "speed-up ×", "max rel diff"],
        rows,
    )


def _sts_manifest(folder: Path, cases: list[Path]) -> Path:
    rows = [
        {
            "case_id": c.name,
            "ct": str(c / "CT_image.nii.gz"),
            "mask": str(c / "CT_mask.nii.gz"),
            "pet": str(c / "PET_image.nii.gz"),
            "pet_mask": str(c / "PET_mask.nii.gz"),
            "pet_units": "SUV",
        }
        for c in cases
    ]
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def bench_sarcoma_throughput(quick: bool) -> None:
    from radfeat.extract import extract_table
    from radfeat.settings import load_settings

    cases = sorted(p for p in require_data("sts_petct").iterdir() if p.is_dir())
    if quick:
        cases = cases[:4]
    settings = load_settings()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        manifest = _sts_manifest(Path(tmp), cases)
        seconds = {}
        for jobs in (1, 2):
            t0 = time.perf_counter()
            result = extract_table(
                manifest, Path(tmp) / f"f{jobs}.parquet", settings=settings, jobs=jobs, force=True
            )
            seconds[jobs] = time.perf_counter() - t0
            n_ok = len(result.table)
            rows.append(
                [
                    jobs,
                    n_ok,
                    len(result.summary.failures),
                    len(result.table.columns),
                    seconds[jobs] / len(cases),
                    60 * len(cases) / seconds[jobs],
                ]
            )
    print_table(
        f"{len(cases)} real sarcoma PET/CT cases, default settings (CT original+LoG+wavelet at 1 mm, "
        "PET texture at 3 mm, PET descriptors)",
        ["jobs", "cases ok", "failed", "columns", "s per case", "cases per minute"],
        rows,
    )
    print(f"\nparallel speed-up, 2 jobs over 1: {seconds[1] / seconds[2]:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="lung1 only, 4 sarcoma cases")
    args = parser.parse_args()
    print(f"# bench_extract on {machine()}")
    bench_pyradiomics_cases(args.repeats, ["lung1"] if args.quick else ["lung1", "lung2"])
    bench_sarcoma_throughput(args.quick)


if __name__ == "__main__":
    main()
