"""Ablation runner: every variant trained with the same splits and seeds, out-of-fold AUCs with DeLong
95 % CIs, ACC/SEN/SPEC with Wilson CIs, Brier and calibration, and paired DeLong and McNemar tests
against the full model (and the classical comparators and SUVmax on the same folds)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from models.fusion.cv import SPLIT_PROTOCOL
from models.fusion.data import FeaturePrep, FusionData
from models.fusion.net import FusionConfig
from models.fusion.train import FusionCVResult, TrainConfig, cross_validate_fusion

__all__ = ["Ablation", "ABLATIONS", "run_ablations", "ablation_table"]


@dataclass(frozen=True)
class Ablation:
    """What a variant changes. ``changes``: :class:`~models.fusion.net.FusionConfig` switches;
    ``drop_groups``: feature-token groups removed; ``token_modalities``: keep only tokens computed from
    these image modalities (:func:`~models.fusion.data.token_modalities`; a habitat clustered on CT and
    PET is a PET token too); ``drop_heterogeneity``: remove habitat, PET-heterogeneity and PET-texture
    tokens together (:func:`~models.fusion.data.is_heterogeneity`)."""

    description: str
    changes: Mapping = field(default_factory=dict)
    drop_groups: tuple[str, ...] = ()
    token_modalities: tuple[str, ...] | None = None
    drop_heterogeneity: bool = False

    def dropped_columns(self, data: FusionData) -> tuple[str, ...]:
        """The feature columns of ``data`` this variant must not see."""
        from models.fusion.data import is_heterogeneity, token_modalities

        columns = [c for cols in data.groups.values() for c in cols]
        out = []
        for c in columns:
            if self.token_modalities is not None and not token_modalities(c, data.habitat_mode) <= set(
                self.token_modalities
            ):
                out.append(c)
            elif self.drop_heterogeneity and is_heterogeneity(c):
                out.append(c)
        return tuple(out)


#: The variants of DMDP's ablation study, each exactly what its name says (``single_task`` trains one
#: model per task with the same features and splits).
ABLATIONS: dict[str, Ablation] = {
    "full": Ablation("CT + PET images, every feature token, cross-attention, both tasks"),
    "single_task": Ablation("one model per task, otherwise as full"),
    "ct_only": Ablation(
        "CT image and CT-derived tokens only", {"modalities": ("ct",)}, token_modalities=("ct",)
    ),
    "pet_only": Ablation(
        "PET image and PET-derived tokens only", {"modalities": ("pet",)}, token_modalities=("pet",)
    ),
    "image_only": Ablation("CT + PET images, no feature tokens", {"use_features": False}),
    "features_only": Ablation("feature tokens, no image", {"modalities": ()}),
    "no_heterogeneity": Ablation(
        "without heterogeneity: habitat, PET heterogeneity and PET texture tokens removed together",
        drop_heterogeneity=True,
    ),
    "concat_fusion": Ablation("concatenation instead of cross-attention", {"fusion": "concat"}),
    "one_scale": Ablation("scale-1 image tokens only", {"scales": 1}),
    "no_habitat": Ablation("without habitat tokens", drop_groups=("habitat",)),
    "no_pet_descriptors": Ablation("without PET-descriptor tokens", drop_groups=("pet",)),
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
    spec = ABLATIONS[name]
    variant_prep = replace(
        prep,
        drop_groups=tuple(prep.drop_groups) + spec.drop_groups,
        drop_columns=tuple(prep.drop_columns) + spec.dropped_columns(data),
    )
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
        replace(model_cfg, **spec.changes),
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
        spec = ABLATIONS[name]
        if any(g not in data.groups for g in spec.drop_groups) or (
            not data.groups and name in ("features_only", "image_only", "no_heterogeneity")
        ):
            if progress:
                progress({"variant": name, "skipped": "the data have no such feature group"})
            continue
        if spec.drop_heterogeneity and not spec.dropped_columns(data):
            if progress:
                progress({"variant": name, "skipped": "the data have no heterogeneity token"})
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
    spec = ABLATIONS.get(name)  # the baseline CNN is keyed like a variant, without an ablation
    settings = {
        "variant": name,
        "ablation": {}
        if spec is None
        else {
            **{k: v for k, v in asdict(spec).items() if k != "description"},
            "dropped": spec.dropped_columns(data),
        },
        "model": asdict(model_cfg),
        "train": asdict(train_cfg),
        "prep": {"k": prep.k_per_group, "drop": list(prep.drop_groups), "cols": list(prep.drop_columns)},
        "splits": [n_splits, n_repeats],
        "split_protocol": SPLIT_PROTOCOL,
    }
    h.update(repr(sorted(settings.items())).encode())
    return h.hexdigest()[:12]


def describe_variant(name: str) -> str:
    """What a result row is: an ablation's description, a classical comparator or the baseline CNN."""
    from models.fusion.comparators import CLASSICAL_PREFIX

    if name in ABLATIONS:
        return ABLATIONS[name].description
    if name == "suvmax":
        return "SUVmax alone (logistic model fitted on each training part)"
    if name == "egfr_dls":
        return "EGFR-DLS-like residual CNN on 64 × 64 [PET, CT, fused] slices, slice → patient mean"
    if name.startswith(CLASSICAL_PREFIX):
        return f"classical {name[len(CLASSICAL_PREFIX) :]} (nested tuning) on the feature-token columns"
    return name


def _mcnemar_p(y: np.ndarray, positive: np.ndarray, ref_positive: np.ndarray) -> float:
    """McNemar's test (continuity-corrected, R's default) of the paired correct / wrong calls."""
    from models.stats import mcnemar_test

    ok, ref_ok = positive == y.astype(bool), ref_positive == y.astype(bool)
    table = [[int((ref_ok & ok).sum()), int((ref_ok & ~ok).sum())],
             [int((~ref_ok & ok).sum()), int((~ref_ok & ~ok).sum())]]  # fmt: skip
    if table[0][1] + table[1][0] == 0:
        return 1.0  # identical calls on every case
    return float(mcnemar_test(table).p_value)


def ablation_table(results: dict[str, FusionCVResult], reference: str = "full") -> pd.DataFrame:
    """One row per (variant or comparator, task): AUC [DeLong 95 % CI], ACC/SEN/SPEC at thresholds
    learned on each fold's training part (:mod:`models.thresholds`), Brier, calibration intercept and
    slope, the paired DeLong p-value against ``reference`` and McNemar's p-value of the paired calls
    at those thresholds. Comparators (:func:`models.fusion.comparators.classical_on_fusion_folds`)
    are results like the variants and are compared the same way, on the cases both scored."""
    from models.results import result_row
    from models.stats import calibration_intercept_slope

    scores: dict[tuple[str, str], pd.DataFrame] = {}
    for name, res in results.items():
        if res.predictions.empty:
            continue
        for task in res.predictions["task"].unique():
            s = res.case_scores(task)
            scores[(name, task)] = s[s["y"] >= 0].set_index("case_id")
    rows = []
    for (name, task), s in scores.items():
        ref = scores.get((reference, task))
        if ref is not None and name != reference:
            s = s.loc[s.index.intersection(ref.index)]
        y = s["y"].to_numpy().astype(int)
        if len(np.unique(y)) < 2:
            continue
        margin = s["margin"].to_numpy() if "margin" in s else None
        reference_score, mcnemar = None, np.nan
        if ref is not None and name != reference:
            reference_score = ref["score"].reindex(s.index).to_numpy()
            if margin is not None and np.isfinite(margin).all():
                mcnemar = _mcnemar_p(y, margin >= 0, ref["margin"].reindex(s.index).to_numpy() >= 0)
        score = s["score"].to_numpy()
        metrics = result_row(y, score, margin, reference_score)
        intercept = slope = np.nan
        if 0 <= score.min() and score.max() <= 1:
            try:
                cal = calibration_intercept_slope(y, score)
                intercept, slope = cal.intercept, cal.slope
            except Exception:  # noqa: BLE001 - separation or a constant score: no calibration line
                pass
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
                "calibration_intercept": intercept,
                "calibration_slope": slope,
                "p_vs_" + reference: metrics["p_vs_reference"],
                "mcnemar_p_vs_" + reference: mcnemar,
                "description": describe_variant(name),
            }
        )
    return pd.DataFrame(rows).sort_values(["task", "auc"], ascending=[True, False]).reset_index(drop=True)
