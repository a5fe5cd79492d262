"""Habitat speed: maps + stage 1 + apply per case, and per-habitat radiomics against pyradiomics.

Run: ``python benchmarks/bench_habitats.py [--quick]``. Prints (1) seconds per case for voxel maps,
supervoxels and model application on the 12 real sarcoma PET/CT cases and on a 50-case synthetic
cohort, and (2) radfeat's per-habitat radiomics (each filter once, all habitat masks) against calling
pyradiomics' extractor once per habitat mask with the same settings (original + LoG σ 1,2,3 mm +
wavelet), with pyradiomics' C texture matrices and with radfeat's own (``matrices="radfeat"``: compiled
kernels), interleaved (best of two runs each), checking the values agree. Peer numbers (HABIT) are
in ../shared/docs/ANCHORS.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, require_data  # noqa: E402

from radfeat.habitats import HabitatModel, HabitatSettings, supervoxels, voxel_feature_maps  # noqa: E402
from radfeat.io import read_image, read_mask, read_pet_suv  # noqa: E402

HABITAT_RADIOMICS = {
    "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 2.0, 3.0]}, "Wavelet": {}},
    "featureClass": {c: [] for c in ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")},
    "setting": {"binWidth": 25, "voxelArrayShift": 1000},
}


def _sarcoma_cases(limit: int | None):
    cases = sorted(p for p in require_data("sts_petct").iterdir() if p.is_dir())[:limit]
    for c in cases:
        ct = read_image(c / "CT_image.nii.gz")
        mask = read_mask(c / "CT_mask.nii.gz")
        mask.CopyInformation(ct)
        pet, _ = read_pet_suv(c / "PET_image.nii.gz", "SUV")
        yield c.name, ct, mask, pet


def _synthetic_cases(n: int):
    from radfeat.synth import synthesize_case

    for i in range(n):
        case = synthesize_case(f"S{i}", np.random.default_rng([0, i]))
        yield case.case_id, case.ct, case.mask, case.pet


def time_pipeline(name: str, cases, settings: HabitatSettings, n_train: int):
    maps, sv, t_maps, t_sv = {}, {}, 0.0, 0.0
    for case_id, ct, mask, pet in cases:
        t0 = time.perf_counter()
        maps[case_id] = voxel_feature_maps(ct, mask, pet, settings)
        t1 = time.perf_counter()
        sv[case_id] = supervoxels(maps[case_id], settings)
        t2 = time.perf_counter()
        t_maps += t1 - t0
        t_sv += t2 - t1
    ids = sorted(maps)
    t0 = time.perf_counter()
    model = HabitatModel(settings).fit({k: sv[k] for k in ids[:n_train]})
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels = {k: model.apply(maps[k], sv[k]) for k in ids}
    t_apply = time.perf_counter() - t0
    n = len(ids)
    voxels = np.mean([m.n_voxels for m in maps.values()])
    row = [
        name,
        n,
        f"{voxels:.0f}",
        t_maps / n,
        t_sv / n,
        t_apply / n,
        t_fit,
        (t_maps + t_sv + t_apply) / n,
        model.k_,
    ]
    return row, maps, labels, model


def bench_radiomics(cases, maps, labels, model, n_cases: int):
    import radiomics
    from radiomics import featureextractor

    from radfeat.features.radiomics import RadiomicsEngine

    radiomics.setVerbosity(logging.ERROR)
    rows = []
    engines = {m: RadiomicsEngine(HABITAT_RADIOMICS, matrices=m) for m in ("pyradiomics", "radfeat")}
    plain_extractor = featureextractor.RadiomicsFeatureExtractor(HABITAT_RADIOMICS)
    from radfeat.habitats import habitat_masks

    for case_id, ct, _, _ in cases[:n_cases]:
        # As the habitat workflow does: the habitat map on the native CT grid, CT read as stored.
        image = sitk.Cast(ct, sitk.sitkFloat32)
        on_ct = maps[case_id].to_grid(labels[case_id], ct)
        masks = {
            n: m
            for n, m in habitat_masks(on_ct, model.k_).items()
            if sitk.GetArrayViewFromImage(m).sum() >= 30
        }

        def plain_run(masks=masks, image=image):
            out = {}
            for name, m in masks.items():
                result = plain_extractor.execute(image, m)
                out[name] = {k: float(v) for k, v in result.items() if not k.startswith("diagnostics")}
            return out

        runs = {
            "plain": plain_run,
            **{m: (lambda e=e, image=image, masks=masks: e.extract_with_errors(image, masks)[0])
               for m, e in engines.items()},
        }  # fmt: skip
        seconds = {name: [] for name in runs}
        values = {}
        for name in [*runs, *reversed(runs)]:  # interleaved: A B C C B A
            t0 = time.perf_counter()
            values[name] = runs[name]()
            seconds[name].append(time.perf_counter() - t0)
        t = {name: min(v) for name, v in seconds.items()}
        plain = values["plain"]
        diff = max(
            abs(values[m][n][k] - plain[n][k]) / max(abs(plain[n][k]), 1e-12)
            for m in engines
            for n in masks
            for k in plain[n]
        )
        rows.append(
            [
                case_id,
                len(masks),
                t["plain"],
                t["pyradiomics"],
                t["radfeat"],
                t["plain"] / t["pyradiomics"],
                t["plain"] / t["radfeat"],
                f"{diff:.1e}",
            ]
        )
    print_table(
        "Per-habitat CT radiomics on the native CT grid (original + LoG 1,2,3 mm + wavelet, 1 thread): "
        "pyradiomics once per habitat mask vs radfeat, each filter once for all habitats",
        [
            "case",
            "habitats",
            "pyradiomics s",
            "radfeat (pyradiomics' C matrices) s",
            "radfeat (own matrices) s",
            "speed-up × (C matrices)",
            "speed-up × (own matrices)",
            "max rel diff",
        ],
        rows,
    )
    for column, label in ((5, "pyradiomics' C matrices"), (6, "own matrices")):
        print(
            f"median speed-up, {label}: {np.median([r[column] for r in rows]):.2f}× (target ≥ 4× for k = 3)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 sarcoma and 10 synthetic cases")
    args = parser.parse_args()
    from radfeat.utils.threads import thread_caps

    thread_caps(1)
    print(f"# bench_habitats on {machine()} (1 thread)")
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    settings = HabitatSettings(k_range=(3, 3))
    rows = []
    sarcoma = list(_sarcoma_cases(4 if args.quick else None))
    row, maps, labels, model = time_pipeline("sarcoma PET/CT", sarcoma, settings, n_train=6)
    rows.append(row)
    row_s, *_ = time_pipeline("synthetic", _synthetic_cases(10 if args.quick else 50), settings, n_train=30)
    rows.append(row_s)
    print_table(
        "Habitat pipeline, seconds per case (2 mm grid, CT + PET, k = 3)",
        [
            "cohort",
            "cases",
            "ROI voxels (mean)",
            "maps s",
            "supervoxels s",
            "apply s",
            "fit s (once)",
            "maps+stage 1+apply s",
            "k",
        ],
        rows,
    )
    bench_radiomics(sarcoma, maps, labels, model, 4 if args.quick else 12)


if __name__ == "__main__":
    main()
