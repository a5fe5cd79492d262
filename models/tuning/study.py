"""Open or resume a study (settings hash checked), run trials with pruning and a global trial cap, and
the heartbeat that retries trials of dead workers on storages without one."""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from models.cv import inner_cv_auc
from models.tuning.config import (
    HASH_ATTR,
    HEARTBEAT_ATTR,
    StudyMismatchError,
    TuneConfig,
    data_fingerprint,
    settings_hash,
    study_name,
)
from models.tuning.storage import is_journal, resolve_storage
from models.zoo import get_family
from radfeat.utils.threads import thread_caps

__all__ = ["open_study", "finished_trials", "optimize"]


def _sampler(config: TuneConfig, n_existing: int = 0):
    """Seeded sampler. The seed also moves with the worker index and with the number of trials the study
    already holds, so a resumed or parallel worker does not replay the points already tried (a fresh
    single-worker study stays exactly reproducible)."""
    import optuna

    seed = config.seed + 100_003 * config.worker + 7_919 * n_existing
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=config.n_startup_trials)


def _pruner(config: TuneConfig):
    import optuna

    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=config.n_warmup_steps)
    if config.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=config.n_warmup_steps + 1)
    return optuna.pruners.NopPruner()


def open_study(
    family: str,
    X: pd.DataFrame,
    y: np.ndarray,
    config: TuneConfig,
    *,
    label: str = "label",
    storage: str | None = None,
    outdir: str | Path = ".",
    name: str | None = None,
):
    """Create or load (resume) the study for this family and data; check its settings hash."""
    import optuna

    get_family(family)
    fingerprint = data_fingerprint(X, y)
    name = name or study_name(label, family, fingerprint, config.seed)
    expected = settings_hash(family, config, fingerprint, label)
    for attempt in range(6):
        try:
            backend, url = resolve_storage(storage, outdir, config)
            study = optuna.create_study(
                storage=backend,
                study_name=name,
                direction="maximize",
                load_if_exists=True,
                sampler=_sampler(config),
                pruner=_pruner(config),
            )
            break
        except Exception as exc:  # workers starting together race to create the schema / the study
            if attempt == 5 or type(exc).__module__.split(".")[0] != "sqlalchemy":
                raise
            time.sleep(0.2 * (attempt + 1) + 0.3 * np.random.default_rng().random())
    found = study.user_attrs.get(HASH_ATTR)
    if found is None:
        study.set_user_attr(HASH_ATTR, expected)
        study.set_user_attr("family", family)
        study.set_user_attr("label", label)
        study.set_user_attr("data_fingerprint", fingerprint)
        study.set_user_attr("settings", {k: v for k, v in asdict(config).items() if k != "worker"})
    elif found != expected:
        raise StudyMismatchError(
            f"study {name!r} in {url} was created with other settings (hash {found}, now {expected}: "
            f"family, search space, inner CV, sampler, pruner, seed or data differ)",
            path=url,
            hint="resume with the original settings, or give a new --study name / another --storage",
        )
    study.set_user_attr("storage", url)  # for artefacts; harmless to rewrite
    study.sampler = _sampler(config, len(study.get_trials(deepcopy=False)))
    return study


def finished_trials(study) -> list:
    """Complete and pruned trials (the ones the trial cap counts)."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


class _JournalHeartbeat:
    """Heartbeat for storages without one (JournalStorage), through Optuna's public API only.

    A thread stamps the running trial's user attribute ``radfeat:heartbeat`` (``Trial.set_user_attr``);
    :meth:`reap` fails RUNNING trials whose stamp is older than the grace period (``Study.tell`` with
    ``TrialState.FAIL``) and queues them again with Optuna's ``RetryHeartbeatStaleTrialCallback``, as
    Optuna's RDB heartbeat does."""

    def __init__(self, study, config: TuneConfig) -> None:
        self.study, self.config = study, config
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, trial) -> None:
        def beat() -> None:
            while True:
                try:
                    trial.set_user_attr(HEARTBEAT_ATTR, time.time())
                except Exception:  # trial finished meanwhile
                    return
                if self._stop.wait(self.config.heartbeat_interval):
                    return

        self._stop.clear()
        self._thread = threading.Thread(target=beat, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def reap(self) -> list[int]:
        """Fail and re-enqueue RUNNING trials whose heartbeat is older than the grace period."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback
        from optuna.trial import TrialState

        now, reaped = time.time(), []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            last = t.user_attrs.get(HEARTBEAT_ATTR)
            if last is None and t.datetime_start is not None:
                last = t.datetime_start.timestamp()
            if last is None or now - last <= self.config.grace_period:
                continue
            try:
                frozen = self.study.tell(t.number, state=TrialState.FAIL)
            except Exception:  # another worker reaped it first, or it just finished
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                RetryHeartbeatStaleTrialCallback(max_retry=self.config.max_retry)(self.study, frozen)
            reaped.append(t.number)
        return reaped


def optimize(
    study,
    family: str,
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray | None,
    config: TuneConfig,
    *,
    callbacks: list | None = None,
) -> None:
    """Run trials until the study holds ``config.n_trials`` finished trials (all workers together),
    ``config.timeout`` passes, or the process is stopped. Safe to call again: it resumes."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    thread_caps(1)
    journal = is_journal(str(study.user_attrs.get("storage", "")))
    heartbeat = _JournalHeartbeat(study, config) if journal else None
    worker = f"{socket.gethostname()}:{os.getpid()}"
    fam = get_family(family)

    def objective(trial) -> float:
        params = fam.suggest(trial)
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("params", params)  # the pipeline's parameters, derived ones included

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"inner fold {step + 1}: mean AUC {value:.3f}")

        if heartbeat is not None:
            heartbeat.start(trial)
        try:
            return inner_cv_auc(
                family,
                params,
                X,
                y,
                groups,
                config.inner_splits,
                config.seed,
                report=report,
                n_repeats=config.inner_repeats,
            )
        finally:
            if heartbeat is not None:
                heartbeat.stop()

    def reap(study, _trial) -> None:
        heartbeat.reap()

    if heartbeat is not None:
        heartbeat.reap()
    remaining = config.n_trials - len(finished_trials(study))
    if remaining <= 0:
        return
    cap = MaxTrialsCallback(config.n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=config.timeout,
            callbacks=[cap, *([reap] if heartbeat is not None else []), *(callbacks or [])],
            gc_after_trial=False,
        )
