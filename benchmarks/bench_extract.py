"""Extraction speed as the user meets it: radfeat against pyradiomics on the same cases and settings.

Run: ``python benchmarks/bench_extract.py [--repeats 2] [--sets a,b] [--quick]``. Every timing caps
ITK / BLAS / OpenMP at one thread and interleaves the two tools (A B B A …) so that load on the machine
falls on both; every section compares the values (largest relative difference, must stay below 1e-6).

1. **Whole process**: the ``radfeat extract`` command against the ``pyradiomics`` command line on a
   10-case lung batch (lung1 and lung2 of ../shared/data/pyradiomics, five times each, as separate
   cases), file reading, start-up and table writing included: wall and CPU seconds, peak memory (RSS of
   the process).
2. **Per case**: the per-case function the command runs (``radfeat.extract.extract_case``: load and
   check the case, every provider) against ``RadiomicsFeatureExtractor.execute(image_path, mask_path)``,
   in one process, on lung1, lung2 and a 188k-voxel sarcoma CT, with each engine (``--engines``):
   ``pyradiomics`` (pyradiomics' C texture matrices) and ``radfeat`` (radfeat's own compiled matrices),
   both with pyradiomics' values.
3. **Throughput**: the 12 real sarcoma PET/CT cases with the default settings, ``jobs=1`` and ``2``.

Feature sets: (a) the original image, 107 features; (b) original + LoG σ 1, 2, 3 mm + wavelet, 1,130.
Targets (issue 18): (a) ≥ 5× per case on lung2 and ≥ 4× for the whole process; (b) ≥ 3×; 2 jobs
≥ 1.8× 1 job; peak memory ≤ pyradiomics'. Own engine (``radfeat``): (a) ≥ 6× on lung1 / lung2, ≥ 17× on
the sarcoma; (b) ≥ 30× over the three cases.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved_many, machine, print_table, require_data  # noqa: E402

FAMILIES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
FEATURE_SETS = {
    "a": ("original", {"Original": {}}),
    "b": ("original+LoG(1,2,3)+wavelet", {"Original": {}, "LoG": {"sigma": [1.0, 2.0, 3.0]}, "Wavelet": {}}),
}
#: One thread for every library in the timed processes.
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
}


def _params(image_types: dict) -> dict:
    return {"imageType": image_types, "featureClass": {c: [] for c in FAMILIES}, "setting": {"binWidth": 25}}


#: pyradiomics' own defaults for the settings radfeat's default CT block sets otherwise (a settings
#: file overrides ``setting`` keys one by one, so they are given explicitly).
PYRADIOMICS_DEFAULTS = {
    "resampledPixelSpacing": None,
    "interpolator": "sitkBSpline",
    "padDistance": 5,
    "voxelArrayShift": 0,
    "minimumROIDimensions": 2,
    "minimumROISize": None,
}


def _radfeat_settings(params: dict) -> dict:
    ct = {**params, "setting": {**PYRADIOMICS_DEFAULTS, **params["setting"]}}
    return {"ct": ct, "pet": None, "pet_descriptors": {"enabled": False}}


def _max_rel_diff(ours: dict[str, float], plain: dict[str, float]) -> float:
    missing = set(plain) ^ set(ours)
    if missing:
        raise AssertionError(f"feature sets differ: {sorted(missing)[:5]}")
    return max(abs(ours[k] - plain[k]) / max(abs(plain[k]), 1e-12) for k in plain)


# --------------------------------------------------------------------------------------------------
# 1. whole process
# --------------------------------------------------------------------------------------------------


def _run_process(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """Wall s, CPU s (user + system) and peak RSS (MiB) of one child process."""
    env = {**os.environ, **ONE_THREAD}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _command(tool: str, bin_dir: Path, out: Path) -> list[str]:
    """The command a user types, on the batch written by :func:`bench_process`."""
    if tool == "pyradiomics":
        return [str(bin_dir / "pyradiomics"), "batch.csv", "-p", "params.yaml", "-o", str(out), "-f", "csv"]
    return [
        str(bin_dir / "radfeat"),
        "extract",
        "manifest.csv",
        "-o",
        str(out),
        "--settings",
        "radfeat.yaml",
        "-q",
    ]


def bench_process(sets: list[str], repeats: int, n_cases: int) -> None:
    folder = require_data("pyradiomics")
    bin_dir = Path(sys.executable).parent
    rows = []
    for key in sets:
        name, image_types = FEATURE_SETS[key]
        params = _params(image_types)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            cases = [("lung1", "lung2")[i % 2] for i in range(n_cases)]
            manifest = pd.DataFrame(
                {
                    "case_id": [f"{c}_{i}" for i, c in enumerate(cases)],
                    "ct": [str(folder / f"{c}_image.nrrd") for c in cases],
                    "mask": [str(folder / f"{c}_label.nrrd") for c in cases],
                }
            )
            manifest.to_csv(tmp / "manifest.csv", index=False)
            manifest.rename(columns={"ct": "Image", "mask": "Mask"})[["Image", "Mask"]].to_csv(
                tmp / "batch.csv", index=False
            )
            (tmp / "params.yaml").write_text(yaml.safe_dump(params))
            (tmp / "radfeat.yaml").write_text(yaml.safe_dump(_radfeat_settings(params)))
            runs: dict[str, list[tuple[float, float, float]]] = {"pyradiomics": [], "radfeat": []}
            outputs = {}

            order = ["pyradiomics", "radfeat", "radfeat", "pyradiomics"]
            for r in range(repeats):
                for tool in order if r % 2 == 0 else order[::-1]:
                    out = tmp / f"{tool}_{len(runs[tool])}.csv"
                    runs[tool].append(_run_process(_command(tool, bin_dir, out), tmp))
                    outputs[tool] = out
            plain = pd.read_csv(outputs["pyradiomics"])
            ours = pd.read_csv(outputs["radfeat"], dtype={"case_id": str}).set_index("case_id")
            diff = 0.0
            for i, case_id in enumerate(manifest["case_id"]):
                p = {
                    k: float(v)
                    for k, v in plain.iloc[i].items()
                    if k.startswith(("original_", "log-", "wavelet-"))
                }
                o = {k: float(ours.loc[case_id, f"ct_tumour_{k}"]) for k in p}
                diff = max(diff, _max_rel_diff(o, p))
            med = {t: [statistics.median(v[j] for v in runs[t]) for j in range(3)] for t in runs}
            rows.append(
                [
                    name,
                    n_cases,
                    med["pyradiomics"][0],
                    med["radfeat"][0],
                    med["pyradiomics"][0] / med["radfeat"][0],
                    med["pyradiomics"][1] / med["radfeat"][1],
                    med["pyradiomics"][2],
                    med["radfeat"][2],
                    f"{diff:.1e}",
                ]
            )
    print_table(
        f"Whole process, {n_cases}-case lung batch: `radfeat extract` vs the `pyradiomics` command line "
        f"(1 thread, interleaved, median of {2 * repeats} runs each)",
        [
            "feature set",
            "cases",
            "pyradiomics wall s",
            "radfeat wall s",
            "speed-up × (wall)",
            "speed-up × (CPU)",
            "pyradiomics peak MiB",
            "radfeat peak MiB",
            "max rel diff",
        ],
        rows,
    )


# --------------------------------------------------------------------------------------------------
# 2. per case
# --------------------------------------------------------------------------------------------------


def bench_per_case(sets: list[str], repeats: int, quick: bool, engines: list[str]) -> None:
    import radiomics
    from radiomics import featureextractor

    from radfeat.extract import default_providers, extract_case
    from radfeat.settings import load_settings
    from radfeat.utils.threads import thread_caps

    thread_caps(1)
    radiomics.setVerbosity(logging.ERROR)
    lung = require_data("pyradiomics")
    cases = {c: (lung / f"{c}_image.nrrd", lung / f"{c}_label.nrrd") for c in ("lung1", "lung2")}
    if not quick:
        sts = require_data("sts_petct", "STS_005")
        cases["STS_005 CT"] = (sts / "CT_image.nii.gz", sts / "CT_mask.nii.gz")
    rows = []
    totals: dict[tuple[str, str], float] = {}
    for key in sets:
        name, image_types = FEATURE_SETS[key]
        params = _params(image_types)
        runs_by_engine = {}
        for engine in engines:
            settings = load_settings()
            settings.update(_radfeat_settings(params))
            settings["engine"] = engine
            runs_by_engine[engine] = (settings, default_providers(settings))
        extractor = featureextractor.RadiomicsFeatureExtractor(params)  # its defaults, as users run it
        for case, (image, mask) in cases.items():
            row = {"case_id": case, "ct": str(image), "mask": str(mask)}

            def plain(i=str(image), m=str(mask), ext=extractor):
                return ext.execute(i, m)

            callables = {"plain": plain}
            for engine, (settings, providers) in runs_by_engine.items():
                callables[engine] = lambda r=row, s=settings, p=providers: extract_case(r, s, p)
            seconds = interleaved_many(callables, repeats)
            p = {k: float(v) for k, v in plain().items() if not k.startswith("diagnostics")}
            for engine in engines:
                o = {k.removeprefix("ct_tumour_"): v for k, v in callables[engine]().items()}
                ratio = seconds["plain"] / seconds[engine]
                rows.append([name, case, engine, len(p), seconds["plain"], seconds[engine], ratio,
                             f"{_max_rel_diff(o, p):.1e}"])  # fmt: skip
                totals[(name, engine)] = totals.get((name, engine), 0.0) + seconds[engine]
            totals[(name, "plain")] = totals.get((name, "plain"), 0.0) + seconds["plain"]
    print_table(
        "Per case, in one process, file read included (1 thread, interleaved, median of "
        f"{2 * repeats}): `extract_case` (engine: pyradiomics = pyradiomics' C matrices, radfeat = radfeat's "
        "own compiled matrices, both pyradiomics' values) vs `RadiomicsFeatureExtractor.execute`",
        [
            "feature set",
            "case",
            "engine",
            "features",
            "pyradiomics s",
            "radfeat s",
            "speed-up ×",
            "max rel diff",
        ],
        rows,
    )
    for key in sets:
        name = FEATURE_SETS[key][0]
        for engine in engines:
            ratio = totals[(name, "plain")] / totals[(name, engine)]
            print(f"{name}, engine {engine}: {ratio:.2f}× over the {len(cases)} cases (summed seconds)")


# --------------------------------------------------------------------------------------------------
# 3. sarcoma throughput, 1 and 2 jobs
# --------------------------------------------------------------------------------------------------


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
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = _sts_manifest(Path(tmp), cases)
        seconds = {}
        for jobs in (1, 2):
            t0 = time.perf_counter()
            result = extract_table(
                manifest, Path(tmp) / f"f{jobs}.parquet", settings=settings, jobs=jobs, force=True
            )
            seconds[jobs] = time.perf_counter() - t0
            tables[jobs] = result.table
            rows.append(
                [
                    jobs,
                    len(result.table),
                    len(result.summary.failures),
                    len(result.table.columns),
                    seconds[jobs] / len(cases),
                    60 * len(cases) / seconds[jobs],
                ]
            )
    numeric = tables[1].select_dtypes("number").columns
    same = np.allclose(
        tables[1][numeric], tables[2].loc[tables[1].index, numeric], rtol=0, atol=0, equal_nan=True
    )
    print_table(
        f"{len(cases)} real sarcoma PET/CT cases, default settings (CT original+LoG+wavelet at 1 mm, "
        "PET texture at 3 mm, PET descriptors)",
        ["jobs", "cases ok", "failed", "columns", "s per case", "cases per minute"],
        rows,
    )
    print(f"\nparallel speed-up, 2 jobs over 1: {seconds[1] / seconds[2]:.2f}× (tables identical: {same})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2, help="pairs of interleaved runs (A B B A)")
    parser.add_argument("--sets", default="a,b", help="feature sets: a (original), b (+ LoG + wavelet)")
    parser.add_argument("--cases", type=int, default=10, help="cases in the whole-process batch")
    parser.add_argument("--quick", action="store_true", help="no sarcoma CT per case, 4 sarcoma cases")
    parser.add_argument("--skip", default="", help="sections to skip: process, case, sarcoma")
    parser.add_argument(
        "--engines",
        default="pyradiomics,radfeat",
        help="radfeat engines timed per case (pyradiomics, radfeat)",
    )
    args = parser.parse_args()
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    skip = {s.strip() for s in args.skip.split(",")}
    print(f"# bench_extract on {machine()}")
    if "process" not in skip:
        bench_process(sets, args.repeats, args.cases)
    if "case" not in skip:
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        bench_per_case(sets, args.repeats, args.quick, engines)
    if "sarcoma" not in skip:
        bench_sarcoma_throughput(args.quick)


if __name__ == "__main__":
    main()
