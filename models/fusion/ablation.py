"""Ablation runner: every variant trained with the same splits and seeds, out-of-fold AUCs with DeLong
95 % CIs, ACC/SEN/SPEC with Wilson CIs, and paired DeLong tests against the full model (and, when
given, the best classical family)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from models.fusion.cv import SPLIT_PROTOCOL
from models.fusion.data import FeaturePrep, FusionData
from models.fusion.net import FusionConfig
from models.fusion.train import FusionCVResult, TrainConfig, cross_validate_fusion

__all__ = ["ABLATIONS", "run_ablations", "ablation_table"]

#: Variant name → (model-config changes, feature groups dropped). "single_task" trains one model per task.
ABLATIONS: dict[str, tuple[dict, tuple[str, ...]]] = {
    "full": ({}, ()),
    "single_task": ({}, ()),
    "ct_only": ({"modalities": ("ct",)}, ()),
    "pet_only": ({"modalities": ("pet",)}, ()),
    "image_only": ({"use_features": False}, ()),
    "features_only": ({"modalities": ()}, ()),
    "concat_fusion": ({"fusion": "concat"}, ()),
    "one_scale": ({"scales": 1}, ()),
    "no_habitat": ({}, ("habitat",)),
    "no_pet_descriptors": ({}, ("pet",)),
}


def _run_variant(
    name: str,
    data: FusionData,
    model_cfg: FusionConfig,
    train_cfg: TrainConfig,
    prep: FeaturePrep,
    n_splits: int,
    n_repeats: int,
    progress,
    checkpoint_dir=None,
) -> FusionCVResult:
    changes, dropped = ABLATIONS[name]
    variant_prep = replace(prep, drop_groups=tuple(prep.drop_groups) + dropped)
    if name == "single_task":
        parts, seconds = [], 0.0
        for task in model_cfg.tasks:
            cfg = replace(model_cfg, tasks=(task,), n_classes=(2,))
            res = cross_validate_fusion(
                data,
                cfg,
                train_cfg,
                n_splits=n_splits,
                n_repeats=n_repeats,
                prep=variant_prep,
                progress=progress,
                checkpoint_dir=None if checkpoint_dir is None else f"{checkpoint_dir}/{task}",
            )
            parts.append(res.predictions)
            seconds += res.seconds
        return FusionCVResult(pd.concat(parts, ignore_index=True), seconds=seconds)
    return cross_validate_fusion(
        data,
        replace(model_cfg, **changes),
        train_cfg,
        n_splits=n_splits,
        n_repeats=n_repeats,
        prep=variant_prep,
        progress=progress,
        checkpoint_dir=checkpoint_dir,
    )


def run_ablations(
    data: FusionData,
    model_cfg: FusionConfig,
    train_cfg: TrainConfig,
    variants: Sequence[str] = tuple(ABLATIONS),
    *,
    n_splits: int = 5,
    n_repeats: int = 1,
    prep: FeaturePrep | None = None,
    progress: Callable[[dict], None] | None = None,
    out_dir=None,
) -> dict[str, FusionCVResult]:
    """Cross-validate each variant (same splits and seeds). Variants that remove something the data do
    not have (e.g. ``no_habitat`` without habitat columns, or feature-token variants without a table)
    are skipped, with the reason in ``progress``.

    With ``out_dir``, every finished variant's out-of-fold predictions are written at once to
    ``variants/<name>_<key>.csv`` and every fold checkpoints each epoch under ``checkpoints/``: a rerun
    after a crash or a kill reads the finished variants, resumes the interrupted fold where it stopped
    and loses nothing (``key`` hashes the data, configurations and splits, so a changed run starts
    afresh)."""
    from pathlib import Path

    prep = prep or FeaturePrep()
    results = {}
    out = Path(out_dir) if out_dir is not None else None
    for name in variants:
        if name not in ABLATIONS:
            raise ValueError(f"unknown ablation {name!r}; choose from {sorted(ABLATIONS)}")
        changes, dropped = ABLATIONS[name]
        if any(g not in data.groups for g in dropped) or (
            not data.groups and name in ("features_only", "image_only")
        ):
            if progress:
                progress({"variant": name, "skipped": "the data have no such feature group"})
            continue
        key = _variant_key(name, data, model_cfg, train_cfg, prep, n_splits, n_repeats)
        done = out / "variants" / f"{name}_{key}.csv" if out is not None else None
        # `full` is rerun from its checkpoints (quick): its first fold model feeds Grad-CAM
        if done is not None and done.exists() and name != "full":
            if progress:
                progress({"variant": name, "skipped": "finished before: read from " + done.name})
            results[name] = FusionCVResult(pd.read_csv(done, dtype={"case_id": str}))
            continue
        if progress:
            progress({"variant": name, "started": True})
        ckpt = None if out is None else out / "checkpoints" / f"{name}_{key}"
        results[name] = _run_variant(
            name, data, model_cfg, train_cfg, prep, n_splits, n_repeats, progress, checkpoint_dir=ckpt
        )
        if done is not None:
            from radfeat.utils.atomic import write_text

            write_text(results[name].predictions.to_csv(index=False), done)
    return results


def _variant_key(name, data: FusionData, model_cfg, train_cfg, prep, n_splits, n_repeats) -> str:
    """Hash of what a variant's result depends on: cases, labels, patches, feature values, settings."""
    import hashlib
    from dataclasses import asdict

    h = hashlib.sha256()
    for array in (data.ct, data.pet, data.mask, *(data.labels[t] for t in data.tasks)):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update("|".join(map(str, data.case_ids)).encode())
    if data.features is not None:
        h.update(pd.util.hash_pandas_object(data.features, index=False).to_numpy().tobytes())
    settings = {
        "variant": name,
        "ablation": ABLATIONS[name][0],
        "model": asdict(model_cfg),
        "train": asdict(train_cfg),
        "prep": {"k": prep.k_per_group, "drop": list(prep.drop_groups)},
        "splits": [n_splits, n_repeats],
        "split_protocol": SPLIT_PROTOCOL,
    }
    h.update(repr(sorted(settings.items())).encode())
    return h.hexdigest()[:12]


def ablation_table(
    results: dict[str, FusionCVResult],
    reference: str = "full",
    classical: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per (variant, task): AUC [DeLong 95 % CI], ACC/SEN/SPEC at thresholds learned on each
    fold's training part (:mod:`models.thresholds`), and the paired DeLong p-value against
    ``reference``. ``classical`` maps a task to case scores (``case_id``, ``score`` and, for
    ACC/SEN/SPEC, ``margin`` to its own training thresholds) of a classical model, added as a row and
    compared the same way."""
    from models.results import result_row

    scores: dict[tuple[str, str], pd.DataFrame] = {}
    for name, res in results.items():
        for task in res.predictions["task"].unique():
            s = res.case_scores(task)
            scores[(name, task)] = s[s["y"] >= 0].set_index("case_id")
    for task, frame in (classical or {}).items():
        base = next((v for (n, t), v in scores.items() if t == task), None)
        if base is not None:
            indexed = frame.set_index("case_id").reindex(base.index)
            margin = indexed["margin"] if "margin" in indexed else pd.Series(np.nan, index=base.index)
            scores[("classical", task)] = pd.DataFrame(
                {"y": base["y"], "score": indexed["score"], "margin": margin}
            ).dropna(subset=["score"])
    rows = []
    for (name, task), s in scores.items():
        y = s["y"].to_numpy().astype(int)
        if len(np.unique(y)) < 2:
            continue
        margin = s["margin"].to_numpy() if "margin" in s else None
        ref = scores.get((reference, task))
        reference_score = None
        if ref is not None and name != reference:
            reference_score = ref["score"].reindex(s.index).to_numpy()
        metrics = result_row(y, s["score"].to_numpy(), margin, reference_score)
        rows.append(
            {
                "variant": name,
                "task": task,
                **metrics,
                "ci_low": metrics["auc_ci_low"],
                "ci_high": metrics["auc_ci_high"],
                "acc": metrics["accuracy"],
                "sen": metrics["sensitivity"],
                "spec": metrics["specificity"],
                "p_vs_" + reference: metrics["p_vs_reference"],
            }
        )
    return pd.DataFrame(rows).sort_values(["task", "auc"], ascending=[True, False]).reset_index(drop=True)
