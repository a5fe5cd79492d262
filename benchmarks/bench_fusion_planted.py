"""Does fusion earn its place? The full model against its image-only and features-only parts on cohorts
whose signal is planted in the images only, in the features only, or split between them
(:mod:`models.fusion.planted`), with the same folds and seeds (:func:`models.fusion.ablation.run_ablations`)
and paired DeLong tests at α = 0.05.

The claim (issue 17): full is not significantly worse than the better part when one part holds the
signal, and significantly better than each part when the signal is complementary. The verdict column
says, per scenario and task, whether it holds in this run.

Run: ``python benchmarks/bench_fusion_planted.py [--cases 400] [--folds 3] [--preset tiny]
[--epochs 40] [--patience 12] [--scenarios complementary,images,features]`` (about 4 min per scenario
on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table  # noqa: E402

ALPHA = 0.05


def main() -> None:
    from models.fusion.ablation import ablation_table, run_ablations
    from models.fusion.planted import fusion_verdict, planted_fusion_data
    from models.fusion.run import PRESETS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--epochs", type=int, default=40, help="override the preset's epochs (0: keep)")
    parser.add_argument("--patience", type=int, default=12, help="override the preset's patience (0: keep)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed")
    parser.add_argument("--scenarios", default="complementary,images,features")
    args = parser.parse_args()

    model_cfg, train_cfg = PRESETS[args.preset]
    if args.epochs:
        train_cfg = replace(train_cfg, epochs=args.epochs)
    if args.patience:
        train_cfg = replace(train_cfg, patience=args.patience)
    rows = []
    for scenario in args.scenarios.split(","):
        data = planted_fusion_data(args.cases, scenario, seed=args.seed)
        cfg = replace(model_cfg, patch=data.ct.shape[-1], in_slices=data.ct.shape[2])
        t0 = time.perf_counter()
        results = run_ablations(
            data, cfg, train_cfg, ["full", "image_only", "features_only"], n_splits=args.folds
        )
        seconds = time.perf_counter() - t0
        table = ablation_table(results)
        for task in data.tasks:
            part = table[table["task"] == task].set_index("variant")
            cells = [
                f"{part.loc[v, 'auc']:.3f} [{part.loc[v, 'ci_low']:.3f}, {part.loc[v, 'ci_high']:.3f}]"
                for v in ("full", "image_only", "features_only")
            ]
            p = [f"{part.loc[v, 'p_vs_full']:.3g}" for v in ("image_only", "features_only")]
            claim = fusion_verdict(table, scenario, task, ALPHA)
            rows.append([scenario, task, *cells, *p, claim, f"{seconds:.0f}"])
    print_table(
        f"Fusion vs its parts on planted cohorts ({args.cases} cases, {args.folds}-fold CV, preset "
        f"{args.preset}, epochs {train_cfg.epochs}, DeLong α = {ALPHA}) — {machine()}",
        [
            "signal",
            "task",
            "full AUC",
            "image-only AUC",
            "features-only AUC",
            "p image-only",
            "p features-only",
            "claim",
            "s",
        ],  # fmt: skip
        rows,
    )


if __name__ == "__main__":
    main()
