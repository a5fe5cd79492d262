"""Patient-level cross-validation of the fusion network on the classical benchmark's splits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from models.fusion.calibration import calibrate
from models.fusion.config import TrainConfig
from models.fusion.data import FeaturePrep, FusionData
from models.fusion.loop import FitResult, fit
from models.fusion.net import FusionConfig
from models.fusion.steps import predict

__all__ = ["FusionCVResult", "fusion_splits", "cross_validate_fusion"]


@dataclass
class FusionCVResult:
    """Out-of-fold patient predictions: one row per case × repeat × task (``score`` is the positive-class
    probability of a binary task, Platt-calibrated on the fold's validation cases; ``score_raw`` the
    network's own output; ``threshold`` the fold's training prevalence, on the calibrated scale)."""

    predictions: pd.DataFrame
    histories: list[list[dict]] = field(default_factory=list)
    model_config: dict = field(default_factory=dict)
    seconds: float = 0.0
    #: The first fold's trained model and its test case indices (for Grad-CAM and attention maps).
    example: tuple[FitResult, np.ndarray] | None = None
    #: Every fold's trained model (with ``keep_models``): the members of a locked fold ensemble.
    models: list[FitResult] = field(default_factory=list)

    def case_scores(self, task: str) -> pd.DataFrame:
        """Per case: label, mean score over repeats, mean margin to the folds' training thresholds and
        the decision (:func:`models.thresholds.case_decisions`)."""
        from models.thresholds import case_decisions

        part = self.predictions[self.predictions["task"] == task]
        if "threshold" not in part.columns:  # results written before thresholds were recorded
            part = part.assign(threshold=np.nan)
        return case_decisions(part)

    def auc(self, task: str) -> float:
        s = self.case_scores(task)
        s = s[s["y"] >= 0]
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(s["y"], s["score"]))


#: Bumped when the folds or the feature preparation change (2: folds stratified on every task's label;
#: feature tokens ranked per task) so cached variant results and checkpoints are not reused.
SPLIT_PROTOCOL = 2


def joint_strata(data: FusionData, n_splits: int) -> np.ndarray:
    """What the folds stratify on: the combination of every task's label (unknown labels are a level
    of their own); combinations with fewer than ``n_splits`` cases are pooled by the first task's label."""
    from models.cv import pooled_strata

    labels = [np.asarray(data.labels[t]).astype(int) for t in data.tasks]
    return pooled_strata(*labels, n_splits=n_splits)


def fusion_splits(data: FusionData, n_splits: int = 5, n_repeats: int = 1, seed: int = 0):
    """Patient-level splits by :func:`models.cv.outer_splits` stratified on the joint labels of all
    tasks (:func:`joint_strata`), so each fold holds every EGFR × subtype combination in proportion.
    With one task they are exactly ``radfeat benchmark``'s folds (same table order, label and seed)."""
    from models.cv import outer_splits
    from models.data import Dataset

    strata = joint_strata(data, n_splits) if len(data.tasks) > 1 else data.labels[data.tasks[0]]
    codes = np.unique(strata, return_inverse=True)[1]
    ds = Dataset(X=pd.DataFrame({"_": np.zeros(len(codes))}), y=codes, ids=data.case_ids)
    return outer_splits(ds, n_splits, n_repeats, seed)


def cross_validate_fusion(
    data: FusionData,
    model_cfg: FusionConfig,
    train_cfg: TrainConfig,
    *,
    n_splits: int = 5,
    n_repeats: int = 1,
    prep: FeaturePrep | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: Callable[[dict], None] | None = None,
    keep_models: bool = False,
) -> FusionCVResult:
    """Train one model per outer fold (same architecture → one compilation for all folds) and collect
    the out-of-fold patient predictions for every task; ``keep_models`` keeps every fold's model."""
    from models.thresholds import training_threshold

    t0 = time.perf_counter()
    rows, histories, example, models = [], [], None, []
    tasks = [t for t in model_cfg.tasks if t in data.labels]
    for r, f, tr, te in fusion_splits(data, n_splits, n_repeats, train_cfg.seed):
        ckpt = Path(checkpoint_dir) / f"r{r}_f{f}" if checkpoint_dir else None

        def tick(rec, r=r, f=f):
            if progress:
                progress({"repeat": r, "fold": f, **rec})

        cfg = replace(train_cfg, seed=train_cfg.seed + 1000 * r + f)
        res = fit(
            model_cfg, cfg, data, tr, prep=replace(prep or FeaturePrep()), checkpoint=ckpt, progress=tick
        )
        raw = predict(res.model, data, te, res.prep, cfg.eval_batch_size)
        probs = calibrate(raw, res.calibration)  # Platt scaling fitted on this fold's validation cases
        histories.append(res.history)
        if example is None:
            example = (res, te)
        if keep_models:
            models.append(res)
        for t in tasks:
            p = probs[t]
            threshold = training_threshold(data.labels[t][tr])  # this fold's training cases only
            q = raw[t]
            for i, case in enumerate(te):
                score = float(p[i]) if p.ndim == 1 else float(p[i, -1])
                score_raw = float(q[i]) if q.ndim == 1 else float(q[i, -1])
                y = int(data.labels[t][case])
                rows.append((t, r, f, data.case_ids[case], y, score, score_raw, threshold))
    predictions = pd.DataFrame(
        rows, columns=["task", "repeat", "fold", "case_id", "y", "score", "score_raw", "threshold"]
    )
    return FusionCVResult(
        predictions, histories, asdict(model_cfg), time.perf_counter() - t0, example, models
    )
