"""The fusion network through the same door: a fold ensemble locked on the training cohort, saved as a
model folder of the classical model's shape, applied to new cases.

**Final model = the ensemble of the cross-validation fold models** (mean probability per task), not a
refit with the cross-validated epoch count. Each fold model's epoch was chosen by early stopping on its
own validation split, so no epoch count has to be transferred to a differently sized training set;
no extra training run is needed; averaging k models lowers the variance that dominates small cohorts
(nnU-Net's practice); and the training-cohort CV estimate is the performance of exactly these members
(each scored on the cases it never saw), a slightly conservative estimate for their average.

Each member's probabilities are Platt-calibrated on its own validation split (stored with it in the
card); thresholds per task come from the calibrated out-of-fold training scores
(:func:`models.thresholds.locked_threshold`), and new cases are scored on the same calibrated scale.
Arrays are stored as ``.npz`` (no pickle), the network, patch and feature-preparation settings as JSON
in the model card; the folder is written and checksummed as a classical model's
(:func:`models.lifecycle.store.write_model_folder`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from models.fusion.calibration import PlattScaling, calibrate
from models.fusion.data import FeaturePrep, FusionData, PatchSpec
from models.fusion.net import FusionConfig
from models.lifecycle.store import ModelFolderError, _versions, read_card, write_model_folder

__all__ = ["LockedFusion", "fit_locked_fusion", "save_fusion_model", "load_fusion_model", "predict_fusion"]


@dataclass
class LockedFusion:
    """Fold models (``FitResult``-like: ``model`` and ``prep``), per-task thresholds, classes and the card."""

    members: list
    tasks: tuple[str, ...]
    classes: dict[str, list[str]]
    thresholds: dict[str, float]
    threshold_rule: str
    spec: PatchSpec
    card: dict = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return str(self.card.get("fingerprint", ""))

    @property
    def feature_columns(self) -> list[str]:
        cols: list[str] = []
        for m in self.members:
            cols += [c for c in m.prep.columns_ if c not in cols]
        return cols


def fit_locked_fusion(
    data: FusionData,
    model_cfg: FusionConfig,
    train_cfg,
    *,
    n_splits: int = 5,
    threshold_rule: str = "youden",
    prep: FeaturePrep | None = None,
    progress=None,
) -> tuple[LockedFusion, object]:
    """Cross-validate on the training cases of ``data`` (all of them: select the training cohort when
    building it) and keep the fold models as the locked ensemble; return it and the CV result."""
    from models.fusion.train import cross_validate_fusion
    from models.results import result_row
    from models.thresholds import locked_threshold

    model_cfg = replace(model_cfg, tasks=data.tasks, n_classes=(2,) * len(data.tasks))
    cv = cross_validate_fusion(
        data, model_cfg, train_cfg, n_splits=n_splits, prep=prep, progress=progress, keep_models=True
    )
    thresholds, estimates = {}, {}
    for task in data.tasks:
        cases = cv.case_scores(task)
        cases = cases[cases["y"] >= 0]
        thresholds[task] = locked_threshold(cases["y"], cases["score"], threshold_rule)
        row = result_row(cases["y"], cases["score"], cases["margin"])
        estimates[task] = {k: float(row[k]) for k in ("auc", "auc_ci_low", "auc_ci_high", "brier")}
        estimates[task]["auc_oof"] = estimates[task].pop("auc")
    locked = LockedFusion(cv.models, data.tasks, dict(data.classes), thresholds, threshold_rule, data.spec)
    locked.card = {
        "cv_estimate": estimates,
        "training": {
            "n_cases": int(len(data)),
            "n_positive": {t: int((data.labels[t] == 1).sum()) for t in data.tasks},
            "prevalence": {t: float((data.labels[t][data.labels[t] >= 0] == 1).mean()) for t in data.tasks},
            "cohorts": sorted(set(data.cohort)) if data.cohort is not None else None,
        },
        "cv": {"outer": f"{n_splits}x1", "seed": train_cfg.seed, "epochs": train_cfg.epochs},
        "train_config": {k: v for k, v in asdict(train_cfg).items()},
        "best_epochs": [int(m.best_epoch) for m in cv.models],
    }
    return locked, cv


def _prep_dict(prep: FeaturePrep) -> dict:
    return {
        "k_per_group": prep.k_per_group,
        "drop_groups": list(prep.drop_groups),
        "drop_columns": list(prep.drop_columns),
        "columns": list(prep.columns_),
        "group_of": [int(g) for g in prep.group_of_],
        "group_names": list(prep.group_names_),
        "median": np.asarray(prep.median_, float).tolist(),
        "scale": np.asarray(prep.scale_, float).tolist(),
    }


def _prep_from(d: dict) -> FeaturePrep:
    prep = FeaturePrep(
        k_per_group=int(d["k_per_group"]),
        drop_groups=tuple(d["drop_groups"]),
        drop_columns=tuple(d.get("drop_columns", ())),
    )
    prep.columns_, prep.group_of_, prep.group_names_ = (
        list(d["columns"]),
        list(d["group_of"]),
        list(d["group_names"]),
    )
    prep.median_, prep.scale_ = np.asarray(d["median"], float), np.asarray(d["scale"], float)
    return prep


def save_fusion_model(locked: LockedFusion, folder: str | Path, table_provenance: dict | None = None) -> Path:
    """Write the fold ensemble (arrays as ``members/fold_NN.npz``) and its model card into ``folder``
    (replaced atomically)."""
    from flax import nnx

    from models.fusion.checkpoints import _flatten

    def build(tmp: Path) -> dict:
        (tmp / "members").mkdir()
        members = []
        for i, m in enumerate(locked.members):
            arrays = _flatten(nnx.to_pure_dict(nnx.state(m.model)))
            name = f"members/fold_{i:02d}.npz"
            with open(tmp / name, "wb") as fh:
                np.savez(fh, **arrays)
            members.append(
                {
                    "file": name,
                    "config": _config_dict(m.model.config),
                    "prep": _prep_dict(m.prep),
                    "best_epoch": int(m.best_epoch),
                    "calibration": {t: c.to_dict() for t, c in getattr(m, "calibration", {}).items()},
                    "weight": 1.0 / len(locked.members),
                }
            )
        return {
            "kind": "fusion",
            "family": "fusion fold ensemble",
            "tasks": list(locked.tasks),
            "classes": locked.classes,
            "positive": {t: locked.classes[t][-1] for t in locked.tasks},
            "thresholds": locked.thresholds,
            "threshold_rule": locked.threshold_rule,
            "final_model": "ensemble of the cross-validation fold models (mean probability); see "
            "models.lifecycle.fusion for why",
            "patch_spec": asdict(locked.spec),
            "features": locked.feature_columns,
            "members": members,
            **{k: v for k, v in locked.card.items() if k not in ("fingerprint", "files", "table")},
            "versions": {**_versions(), **_jax_versions()},
        }

    locked.card = write_model_folder(folder, build, _markdown, table_provenance)
    return Path(folder)


def _jax_versions() -> dict[str, str]:
    from radfeat.utils.versions import library_versions

    return library_versions("jax", "flax", "optax")


def _config_dict(cfg: FusionConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def _markdown(card: dict) -> str:
    lines = [
        f"# Model card: fusion network, tasks {', '.join(card['tasks'])}",
        "",
        f"- fingerprint: `{card['fingerprint']}` (created {card['created']})",
        f"- final model: {card['final_model']}; {len(card['members'])} members, best epochs "
        f"{card['best_epochs']}",
        f"- training cohort: {card['training']['n_cases']} cases",
        f"- feature tokens: {len(card['features'])} columns; patches {card['patch_spec']}",
    ]
    for task in card["tasks"]:
        e = card["cv_estimate"][task]
        lines.append(
            f"- `{task}` = `{card['positive'][task]}`: CV AUC {e['auc_oof']:.3f} ({e['auc_ci_low']:.3f}–"
            f"{e['auc_ci_high']:.3f}); threshold {card['thresholds'][task]:.4f} (`{card['threshold_rule']}`)"
        )
    lines += ["", "## Library versions", ""] + [f"- {k} {v}" for k, v in card["versions"].items()]
    return "\n".join(lines) + "\n"


@dataclass
class _Member:
    model: object
    prep: FeaturePrep
    best_epoch: int
    calibration: dict = field(default_factory=dict)


def load_fusion_model(folder: str | Path) -> LockedFusion:
    """Load a fusion model folder, verifying every file first."""
    from flax import nnx

    from models.fusion.checkpoints import _unflatten
    from models.fusion.steps import make_model

    folder = Path(folder)
    card = read_card(folder)
    if card.get("kind") != "fusion":
        raise ModelFolderError(f"{folder}: a {card.get('kind')!r} model, not a fusion network")
    members = []
    for m in card["members"]:
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in m["config"].items()}
        model = make_model(FusionConfig(**cfg), 0)
        with np.load(folder / m["file"], allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        state = nnx.state(model)
        try:
            nnx.replace_by_pure_dict(state, _unflatten(nnx.to_pure_dict(state), arrays))
        except KeyError as exc:
            raise ModelFolderError(f"{folder / m['file']}: arrays do not match the network ({exc})") from None
        nnx.update(model, state)
        calibration = {t: PlattScaling.from_dict(c) for t, c in (m.get("calibration") or {}).items()}
        members.append(_Member(model, _prep_from(m["prep"]), int(m["best_epoch"]), calibration))
    spec = card["patch_spec"]
    spec = PatchSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    return LockedFusion(
        members,
        tuple(card["tasks"]),
        {t: list(c) for t, c in card["classes"].items()},
        {t: float(v) for t, v in card["thresholds"].items()},
        card["threshold_rule"],
        spec,
        card,
    )


def predict_fusion(locked: LockedFusion, data: FusionData, carry: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per case and task: ``case_id``, ``task``, ``score`` (mean over the fold models of their
    calibrated probabilities),
    ``predicted_positive`` / ``predicted_class`` at the locked threshold, ``threshold``,
    ``positive_class``, ``model_fingerprint``; ``carry`` (indexed by case id: labels, cohort) joined."""
    from models.fusion.steps import predict

    idx = np.arange(len(data))
    rows = []
    # each fold model's probabilities on its own calibrated scale (as in the CV the threshold came from)
    probs = [
        calibrate(predict(m.model, data, idx, m.prep), getattr(m, "calibration", None))
        for m in locked.members
    ]
    for task in locked.tasks:
        score = np.mean([p[task] if p[task].ndim == 1 else p[task][:, -1] for p in probs], axis=0)
        positive = locked.classes[task][-1]
        t = locked.thresholds[task]
        rows.append(
            pd.DataFrame(
                {
                    "case_id": data.case_ids,
                    "task": task,
                    "score": score,
                    "predicted_positive": score >= t,
                    "predicted_class": np.where(score >= t, positive, locked.classes[task][0]),
                    "threshold": t,
                    "positive_class": positive,
                    "model_fingerprint": locked.fingerprint,
                }
            )
        )
    out = pd.concat(rows, ignore_index=True)
    if carry is not None and len(carry.columns):
        out = out.merge(carry, left_on="case_id", right_index=True, how="left")
    return out
