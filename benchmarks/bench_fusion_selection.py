"""How stable is the fusion network's epoch selection on a small cohort? The same cross-validation
repeated with several training seeds (validation split, initialisation, shuffling, augmentation),
with and without an exponential moving average of the weights (``TrainConfig.ema_half_life``),
interleaved seed by seed.

Per setting and task: the mean out-of-fold AUC over seeds, its SD over seeds (how much the verdict
depends on the seed), and the selection optimism — the validation AUC at the chosen epoch minus the
test AUC of that fold (how much the choice followed validation noise) — with the mean chosen epoch.

Run: ``python benchmarks/bench_fusion_selection.py [--cases 200] [--seeds 5] [--half-life 2]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table  # noqa: E402


def _fold_optimism(result, data, from_epoch: int) -> tuple[float, float]:
    """Mean over folds of (best validation mean AUC − the fold's test mean AUC) and the chosen epoch."""
    from sklearn.metrics import roc_auc_score

    preds = result.predictions
    gaps, epochs = [], []
    for fold, history in enumerate(result.histories):
        part = preds[preds["fold"] == fold]
        test = []
        for task in data.tasks:
            p = part[(part["task"] == task) & (part["y"] >= 0)]
            if p["y"].nunique() == 2:
                test.append(roc_auc_score(p["y"], p["score_raw"]))
        chosen = max((h for h in history if h["epoch"] >= from_epoch), key=lambda h: h["val_mean_auc"])
        gaps.append(chosen["val_mean_auc"] - float(np.mean(test)))
        epochs.append(chosen["epoch"])
    return float(np.mean(gaps)), float(np.mean(epochs))


def main() -> None:
    from models.fusion.cv import cross_validate_fusion
    from models.fusion.planted import planted_fusion_data
    from models.fusion.run import PRESETS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--half-life", type=float, default=2.0, help="EMA half-life in epochs")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--signal", default="complementary")
    args = parser.parse_args()

    data = planted_fusion_data(args.cases, args.signal, seed=0)
    model_cfg, train_cfg = PRESETS["tiny"]
    model_cfg = replace(model_cfg, patch=data.ct.shape[-1], in_slices=data.ct.shape[2])
    train_cfg = replace(train_cfg, epochs=args.epochs, patience=12)
    settings = {"last-best epoch": 0.0, f"EMA (half-life {args.half_life:g} epochs)": args.half_life}
    runs: dict[str, list] = {name: [] for name in settings}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        names = list(settings) if seed % 2 == 0 else list(settings)[::-1]  # interleaved
        for name in names:
            cfg = replace(train_cfg, seed=seed, ema_half_life=settings[name])
            result = cross_validate_fusion(data, model_cfg, cfg, n_splits=args.folds)
            aucs = {t: result.auc(t) for t in data.tasks}
            optimism, epoch = _fold_optimism(result, data, cfg.select_from_epoch)
            runs[name].append((aucs, optimism, epoch))
            print(f"seed {seed} {name}: {aucs} optimism {optimism:+.3f} epoch {epoch:.1f}", flush=True)
    rows = []
    for name, values in runs.items():
        for task in data.tasks:
            aucs = np.array([v[0][task] for v in values])
            optimism = np.mean([v[1] for v in values])
            epoch = np.mean([v[2] for v in values])
            rows.append([name, task, f"{aucs.mean():.3f}", f"{aucs.std(ddof=1):.3f}", f"{optimism:+.3f}",
                         f"{epoch:.1f}"])  # fmt: skip
    print_table(
        f"Epoch selection over {args.seeds} training seeds ({args.signal} planted cohort, "
        f"{args.cases} cases, {args.folds}-fold CV, {args.epochs} epochs; "
        f"{time.perf_counter() - t0:.0f} s) — {machine()}",
        ["setting", "task", "mean AUC", "SD over seeds", "selection optimism", "mean chosen epoch"],
        rows,
    )


if __name__ == "__main__":
    main()
