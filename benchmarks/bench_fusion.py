"""Fusion-network speed: train-step time and samples/s of the default configuration (d=64, two scales,
batch 32, 32×32×3 patches), no recompilation after the first step, peak device memory, and optionally
the wall time of 5-fold CV × all ablations on a synthetic cohort.

Run: ``python benchmarks/bench_fusion.py [--steps 30] [--cases 64] [--dtype bfloat16]
[--full-cv --cases 400]``.
On a GPU install the CUDA build first (``pip install -e '.[gpu]'``); JAX picks the device itself.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table  # noqa: E402


def main() -> None:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from models.fusion.ablation import ABLATIONS, run_ablations
    from models.fusion.config import enable_compilation_cache
    from models.fusion.data import FeaturePrep, synthetic_fusion_data
    from models.fusion.device import device_cohort, schedule_arrays, train_step
    from models.fusion.losses import GradNormState
    from models.fusion.net import FusionConfig
    from models.fusion.steps import TRACE_COUNTS, adamw, make_model
    from models.fusion.train import TrainConfig, fit

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cases", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--fit-epochs", type=int, default=3, help="epochs of the timed `fit` (0: skip)")
    parser.add_argument("--full-cv", action="store_true", help="also time 5-fold CV × all ablations")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    enable_compilation_cache()
    device = jax.devices()[0]
    print(
        f"# bench_fusion on {machine()}; JAX {jax.__version__} device {device.platform}: {device.device_kind}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = synthetic_fusion_data(Path(tmp) / "cohort", args.cases, seed=0, jobs=2)
        print(f"cohort of {len(data)} cases built in {time.perf_counter() - t0:.1f} s", flush=True)
        prep = FeaturePrep().fit(data, np.arange(len(data)))
        cfg = FusionConfig(n_features=prep.n_features, n_groups=len(prep.group_names_), dtype=args.dtype)
        model = make_model(cfg, 0)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        n_params = sum(x.size for x in jax.tree.leaves(params))
        opt_state = adamw(1e-5).init(params)
        gn_graphdef, gn_state = nnx.split(GradNormState(2))
        pos_weight = {t: jnp.float32(1.0) for t in cfg.tasks}
        cohort = device_cohort(data, prep, cfg.tasks)  # resident: a step uploads only its indices
        schedule = schedule_arrays(1e-3, 10, 1, args.steps + 1, TrainConfig().ema_half_life)
        rng = np.random.default_rng(0)
        V = data.ct.shape[1]
        tc = TrainConfig()  # the defaults a user trains with
        static = dict(graphdef=graphdef, gn_graphdef=gn_graphdef, weighting=tc.loss_weighting,
                      augment=tc.augment, weight_decay=tc.weight_decay, feature_dropout=tc.feature_dropout,
                      feature_noise=tc.feature_noise)  # fmt: skip
        cases = jnp.asarray(rng.integers(0, len(data), (args.steps + 1, args.batch)), jnp.int32)
        views = jnp.asarray(rng.integers(0, V, (args.steps + 1, args.batch)), jnp.int32)
        base_key = jax.random.key(0)

        def step(s, state):
            count = jnp.asarray([s, s], jnp.int32)
            return train_step(*state, cohort, cases[s], views[s], pos_weight, base_key, count, schedule,
                              **static)  # fmt: skip

        traces0 = TRACE_COUNTS["train_step"]
        ema = jax.tree.map(jnp.copy, params) if TrainConfig().ema_half_life > 0 else None
        state = (params, rest, opt_state, gn_state, ema)
        t = time.perf_counter()
        out = step(0, state)
        jax.block_until_ready(out[5])
        first = time.perf_counter() - t
        state = out[:5]
        t = time.perf_counter()
        losses = []
        for s in range(1, args.steps + 1):  # dispatched back to back: no host sync until the end
            out = step(s, state)
            state = out[:5]
            losses.append(out[5])
        jax.block_until_ready(losses)
        step_s = (time.perf_counter() - t) / args.steps
        traces = TRACE_COUNTS["train_step"] - traces0
        assert traces == 1, f"training recompiled: {traces} traces for {args.steps + 1} steps"
        assert np.isfinite(np.asarray(jnp.stack(losses))).all()
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        peak = (stats or {}).get("peak_bytes_in_use")
        nnx.update(model, state[0], state[1])
        rows = [
            ["parameters", f"{n_params:,}"],
            ["computation dtype", args.dtype],
            ["first step (compile + run), s", f"{first:.2f}"],
            ["train step (mean of back-to-back steps), ms", f"{1000 * step_s:.1f}"],
            ["samples/s (train step)", f"{args.batch / step_s:.0f}"],
            ["compilations of the train step", traces],
            ["peak device memory, MiB", "n/a (CPU)" if peak is None else f"{peak / 2**20:.0f}"],
        ]
        if args.fit_epochs:
            # what the user runs: `fit` (validation, early-stopping bookkeeping and all), compiled already
            tc = TrainConfig(epochs=args.fit_epochs, batch_size=args.batch, min_epochs=1, select_from_epoch=0)
            t = time.perf_counter()
            res = fit(cfg, tc, data, np.arange(len(data)))
            wall = time.perf_counter() - t
            n_train = len(data) - len(res.val_idx)  # the cases fit trained on (the rest chose the epoch)
            trained = len(res.history) * max(n_train * V // args.batch, 1) * args.batch
            rows.append([f"samples/s through fit ({len(res.history)} epochs, validation included)",
                         f"{trained / wall:.0f}"])  # fmt: skip
        from models.fusion.gradcam import grad_cam, grad_cam_compilations

        cam_cases = np.arange(min(32, len(data)))
        cam_times = []
        for _ in range(3):  # the first call compiles; the later ones must not
            t = time.perf_counter()
            grad_cam(model, data, prep, cam_cases, "egfr")
            cam_times.append(time.perf_counter() - t)
            if len(cam_times) == 1:
                compiled_after_first = grad_cam_compilations()
        rows += [
            [f"Grad-CAM first call ({len(cam_cases)} cases, compile + run), s", f"{cam_times[0]:.2f}"],
            ["Grad-CAM later calls, ms per case", f"{1000 * np.median(cam_times[1:]) / len(cam_cases):.1f}"],
            ["Grad-CAM compilations after the first call", grad_cam_compilations() - compiled_after_first],
        ]
        print_table(f"Default configuration, batch {args.batch}, augmentation on", ["measure", "value"], rows)
        if args.full_cv:
            t0 = time.perf_counter()
            results = run_ablations(
                data, FusionConfig(), TrainConfig(epochs=args.epochs), tuple(ABLATIONS), n_splits=5
            )
            wall = time.perf_counter() - t0
            print_table(
                f"5-fold CV × {len(results)} variants on {len(data)} cases ({args.epochs} epochs max)",
                ["variant", "AUC egfr", "AUC subtype"],
                [[n, r.auc("egfr"), r.auc("subtype")] for n, r in results.items()],
            )
            print(f"\nwall time: {wall:.0f} s ({wall / 60:.1f} min)")


if __name__ == "__main__":
    main()
