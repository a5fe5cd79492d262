"""Fusion-network speed: train-step time and samples/s of the default configuration (d=64, two scales,
batch 32, 32×32×3 patches), no recompilation after the first step, peak device memory, and optionally
the wall time of 5-fold CV × all ablations on a synthetic cohort.

Run: ``python benchmarks/bench_fusion.py [--steps 30] [--cases 64] [--full-cv --cases 400]``.
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
    from models.fusion.batches import labelled as _labelled
    from models.fusion.batches import model_inputs as _model_inputs
    from models.fusion.batches import static_inputs as _static_inputs
    from models.fusion.config import enable_compilation_cache
    from models.fusion.data import FeaturePrep, synthetic_fusion_data
    from models.fusion.losses import GradNormState
    from models.fusion.net import FusionConfig
    from models.fusion.steps import TRACE_COUNTS, make_model
    from models.fusion.steps import adamw as _adamw
    from models.fusion.steps import train_step as _train_step
    from models.fusion.train import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cases", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
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
        cfg = FusionConfig(n_features=prep.n_features, n_groups=len(prep.group_names_))
        model = make_model(cfg, 0)
        params = nnx.state(model, nnx.Param)
        n_params = sum(x.size for x in jax.tree.leaves(params))
        opt_state = _adamw(1e-5).init(params)
        gn = GradNormState(2)
        pos_weight = {t: jnp.float32(1.0) for t in cfg.tasks}
        rng = np.random.default_rng(0)
        V = data.ct.shape[1]

        def batch():
            c = rng.integers(0, len(data), args.batch)
            v = rng.integers(0, V, args.batch)
            b = {**_model_inputs(data, prep, c, v), **_labelled(data, cfg.tasks, c)}
            b.update(_static_inputs(prep), w=np.ones(args.batch, np.float32))
            return jax.tree.map(jnp.asarray, b)

        traces0 = TRACE_COUNTS["train_step"]
        times = []
        for step in range(args.steps + 1):
            b = batch()
            key = jax.random.key(step)
            t = time.perf_counter()
            loss, _, opt_state = _train_step(
                model, opt_state, gn, b, pos_weight, key, jnp.float32(1e-3),
                weighting="kendall", augment=True, weight_decay=1e-5,
            )  # fmt: skip
            jax.block_until_ready(loss)
            times.append(time.perf_counter() - t)
        traces = TRACE_COUNTS["train_step"] - traces0
        assert traces == 1, f"training recompiled: {traces} traces for {args.steps + 1} steps"
        step_s = float(np.median(times[1:]))
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        peak = (stats or {}).get("peak_bytes_in_use")
        rows = [
            ["parameters", f"{n_params:,}"],
            ["first step (compile + run), s", f"{times[0]:.2f}"],
            ["train step (median), ms", f"{1000 * step_s:.1f}"],
            ["samples/s", f"{args.batch / step_s:.0f}"],
            ["compilations of the train step", traces],
            ["peak device memory, MiB", "n/a (CPU)" if peak is None else f"{peak / 2**20:.0f}"],
        ]
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
