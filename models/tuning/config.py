"""Settings of a study (:class:`TuneConfig`), its result record, names and settings hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from models.data import table_fingerprint
from models.zoo import get_family
from radfeat.errors import RadfeatError

__all__ = [
    "SAMPLERS",
    "PRUNERS",
    "HASH_ATTR",
    "HEARTBEAT_ATTR",
    "StudyMismatchError",
    "TuneConfig",
    "TuneResult",
    "data_fingerprint",
    "study_name",
    "settings_hash",
]

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")
HASH_ATTR = "radfeat:settings_hash"
HEARTBEAT_ATTR = "radfeat:heartbeat"


class StudyMismatchError(RadfeatError, ValueError):
    """An existing study was created with different settings than the ones given now."""


@dataclass(frozen=True)
class TuneConfig:
    """Settings of one Optuna study.

    ``n_trials`` is the total over all workers (complete + pruned); ``timeout`` (s) bounds one worker.
    ``worker`` offsets the sampler seed so that parallel workers do not propose the same points (give
    each worker its own index; one worker with ``worker=0`` is fully reproducible). ``heartbeat_interval``
    and ``grace_period`` (s): a RUNNING trial whose heartbeat is older than the grace period is taken
    as dead and retried up to ``max_retry`` times.
    """

    n_trials: int = 100
    timeout: float | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    inner_splits: int = 5
    inner_repeats: int = 2
    seed: int = 0
    n_startup_trials: int = 10
    n_warmup_steps: int = 2
    worker: int = 0
    heartbeat_interval: int = 30
    grace_period: int = 90
    max_retry: int = 2

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner must be one of {PRUNERS}, got {self.pruner!r}")
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be at least 1, got {self.n_trials}")
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError("grace_period must exceed heartbeat_interval (a live trial would look dead)")


@dataclass
class TuneResult:
    """What a finished (or interrupted) worker leaves: the study's best and its trial counts."""

    study_name: str
    storage: str
    family: str
    best_params: dict
    best_value: float
    n_complete: int
    n_pruned: int
    n_failed: int
    artifacts: dict[str, str] = field(default_factory=dict)


def data_fingerprint(X: pd.DataFrame, y: np.ndarray) -> str:
    """Hash of the feature values, column names and labels (16 hex characters)."""
    return table_fingerprint(X, np.asarray(y, dtype=np.int64))


def study_name(label: str, family: str, fingerprint: str, seed: int) -> str:
    """Deterministic study name, e.g. ``radfeat-egfr-xgb-3f2a9c01d4e5b6a7-s0``."""
    safe = "".join(c if c.isalnum() or c in "_." else "_" for c in str(label))
    return f"radfeat-{safe}-{family}-{fingerprint}-s{seed}"


def settings_hash(family: str, config: TuneConfig, fingerprint: str, label: str) -> str:
    """Hash of everything that shapes the search (not the budget: ``n_trials``/``timeout`` may grow)."""
    shaping = {
        k: v
        for k, v in asdict(config).items()
        if k not in {"n_trials", "timeout", "worker", "heartbeat_interval", "grace_period", "max_retry"}
    }
    payload = json.dumps(
        {
            "family": family,
            "space": get_family(family).describe_space(),
            "config": shaping,
            "data": fingerprint,
            "label": label,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
