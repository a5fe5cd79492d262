"""Tuning speed on NSCLC-Radiogenomics: TPE + median pruning against random search without pruning
(same trial budget, same seeds), and one worker against two sharing a journal-file study.

Run: ``python benchmarks/bench_tuning.py [--family xgb] [--trials 40] [--seeds 3]``.
The objective is the family's inner stratified 5-fold × 2 CV AUC on the whole table (the search a user
runs with ``radfeat tune``). "Time to target" is the wall time from the study's first trial until the
best-so-far inner AUC first reaches the target; the default target is the lowest of the final best
values over all runs of both methods (a level every run reaches), so the time is always defined.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, require_data  # noqa: E402


def trace(study) -> list[tuple[float, float]]:
    """(seconds since the first trial started, best-so-far value) after each finished trial."""
    trials = [t for t in study.trials if t.datetime_complete is not None]
    t0 = min(t.datetime_start for t in trials)
    best, out = float("-inf"), []
    for t in sorted(trials, key=lambda t: t.datetime_complete):
        if t.state.name == "COMPLETE" and t.value is not None:
            best = max(best, t.value)
        out.append(((t.datetime_complete - t0).total_seconds(), best))
    return out


def time_to(points: list[tuple[float, float]], target: float) -> float:
    return next((s for s, b in points if b >= target - 1e-12), float("inf"))


def main() -> None:
    import optuna

    from models.data import load_radmlbench
    from models.tuning import TuneConfig, tune

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--family", default="xgb")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_radmlbench(require_data("radmlbench", "datasets", "NSCLC-Radiogenomics.gz"))
    print(
        f"# bench_tuning on {machine()}: NSCLC-Radiogenomics ({len(data)} cases, {data.X.shape[1]} "
        f"features), family {args.family}, {args.trials} trials, seeds 0..{args.seeds - 1}",
        flush=True,
    )
    methods = {"TPE + median pruning": ("tpe", "median"), "random, no pruning": ("random", "none")}
    runs: dict[str, list] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for method, (sampler, pruner) in methods.items():
                config = TuneConfig(n_trials=args.trials, sampler=sampler, pruner=pruner, seed=seed)
                t0 = time.perf_counter()
                out = Path(tmp) / f"{sampler}{seed}"
                result = tune(data.X, data.y, args.family, config, outdir=out, artifacts=False)
                wall = time.perf_counter() - t0
                study = optuna.load_study(study_name=result.study_name, storage=result.storage)
                runs[method].append((result, wall, trace(study)))
                print(
                    f"seed {seed} {method:22s} best {result.best_value:.3f} pruned {result.n_pruned:2d} "
                    f"{wall:6.1f} s",
                    flush=True,
                )
        target = args.target or min(r.best_value for rs in runs.values() for r, _, _ in rs)
        rows = []
        for method, rs in runs.items():
            rows.append(
                [
                    method,
                    statistics.median(r.best_value for r, _, _ in rs),
                    statistics.median(r.n_pruned for r, _, _ in rs),
                    statistics.median(w for _, w, _ in rs),
                    statistics.median(time_to(p, target) for _, _, p in rs),
                ]
            )
        ratio_total = rows[1][3] / rows[0][3]
        ratio_target = rows[1][4] / rows[0][4]
        print_table(
            f"Search methods, median over {args.seeds} seeds (target inner AUC {target:.3f})",
            ["method", "best inner AUC", "pruned trials", "wall s (budget)", "s to target"],
            rows,
        )
        print(
            f"\nrandom/no-pruning ÷ TPE+pruning: {ratio_total:.2f}× wall for the budget, "
            f"{ratio_target:.2f}× time to target"
        )

        # 1 vs 2 workers on one journal-file study, through the CLI (separate processes).
        table = Path(tmp) / "nsclc.csv"
        frame = data.X.copy()
        frame.insert(0, "case_id", data.ids)
        frame["label"] = data.y
        frame.to_csv(table, index=False)
        walls = {}
        for n_workers in (1, 2):
            journal = Path(tmp) / f"w{n_workers}.journal"
            cmds = [
                [
                    sys.executable, "-m", "radfeat_cli", "tune", str(table), "--label", "label",
                    "--family", args.family, "--trials", str(args.trials), "--storage", f"journal:{journal}",
                    "--study", "bench", "--worker", str(w), "-o", str(Path(tmp) / f"o{n_workers}{w}"), "-q",
                ]
                for w in range(n_workers)
            ]  # fmt: skip
            t0 = time.perf_counter()
            procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in cmds]
            codes = [p.wait() for p in procs]
            walls[n_workers] = time.perf_counter() - t0
            if any(codes):
                sys.exit(f"a worker failed: exit codes {codes}")
        print_table(
            f"Workers on one JournalStorage study ({args.trials} trials in total, TPE + pruning)",
            ["workers", "wall s", "speed-up"],
            [[1, walls[1], 1.0], [2, walls[2], walls[1] / walls[2]]],
        )


if __name__ == "__main__":
    main()
