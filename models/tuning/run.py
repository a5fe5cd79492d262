"""Task-level entry points: :func:`tune` (open, optimise, write artefacts) and :class:`OptunaTuner` (the
``tuner`` of nested cross-validation: one persistent study per family and outer fold)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.tuning.artifacts import best_params, write_study_artifacts
from models.tuning.config import TuneConfig, TuneResult, data_fingerprint, study_name
from models.tuning.study import finished_trials, open_study, optimize
from models.zoo import get_family

__all__ = ["tune", "OptunaTuner"]


def _result(study, family: str, artifacts: dict[str, str]) -> TuneResult:
    done = finished_trials(study)
    complete = [t for t in done if t.state.name == "COMPLETE"]
    n_failed = sum(t.state.name == "FAIL" for t in study.get_trials(deepcopy=False))
    return TuneResult(
        study_name=study.study_name,
        storage=str(study.user_attrs.get("storage")),
        family=family,
        best_params=best_params(study) if complete else {},
        best_value=float(study.best_value) if complete else float("nan"),
        n_complete=len(complete),
        n_pruned=len(done) - len(complete),
        n_failed=n_failed,
        artifacts=artifacts,
    )


def tune(
    X: pd.DataFrame,
    y: np.ndarray,
    family: str,
    config: TuneConfig | None = None,
    *,
    groups: np.ndarray | None = None,
    label: str = "label",
    storage: str | None = None,
    name: str | None = None,
    outdir: str | Path = "tune_results",
    artifacts: bool = True,
    callbacks: list | None = None,
) -> TuneResult:
    """Open (or resume) the study, run this worker's share of trials, write the artefacts.

    ``X`` (cases × features) and ``y`` (0/1) are the table to tune on: the whole table for a one-off
    study, or an outer training part in nested CV. Returns the best parameters and trial counts.
    """
    config = config or TuneConfig()
    study = open_study(family, X, y, config, label=label, storage=storage, outdir=outdir, name=name)
    optimize(study, family, X, y, groups, config, callbacks=callbacks)
    paths = write_study_artifacts(study, outdir) if artifacts else {}
    return _result(study, family, paths)


@dataclass
class OptunaTuner:
    """The ``tuner`` of :func:`models.cv.cross_validate`: one persistent study per family and outer
    fold (named from the training part's fingerprint and the fold seed), so an interrupted nested
    benchmark resumes its studies too. All studies share one storage (default
    ``<outdir>/optuna.db``); browse them with ``optuna-dashboard``."""

    config: TuneConfig = field(default_factory=TuneConfig)
    storage: str | None = None
    outdir: str = "tune_results"
    label: str = "label"

    @property
    def name(self) -> str:
        """Cache key part for cross_validate: changes when the study settings or budget change."""
        return f"optuna-{self.config.sampler}-{self.config.pruner}-{self.config.n_trials}-{self.storage}"

    def __call__(self, family: str, X, y, groups, seed: int) -> tuple[dict, float]:
        from dataclasses import replace

        config = replace(self.config, seed=seed)
        X = X.reset_index(drop=True)
        name = study_name(self.label, family, data_fingerprint(X, y), seed)
        result = tune(
            X,
            y,
            family,
            config,
            groups=groups,
            label=self.label,
            storage=self.storage,
            name=name,
            outdir=self.outdir,
            artifacts=False,
        )
        if not result.n_complete:  # every trial pruned or failed: fall back to the default candidate
            return dict(get_family(family).grid[0]), float("nan")
        return dict(result.best_params), result.best_value
