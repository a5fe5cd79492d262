"""Optuna hyper-parameter studies that persist, resume, prune and scale out.

One study per (feature table and labels, label name, family, seed); for nested CV the table is the
outer training part, so each outer fold gets its own study. The study name is deterministic
(:func:`study_name`), so rerunning the same command resumes the same study (``load_if_exists``); the
settings that shape the search (family search space, inner CV, sampler, pruner, data) are hashed and
stored as a study attribute, and a rerun with different settings under the same name is refused
(:class:`StudyMismatchError`) instead of silently mixing two searches.

Storage (:func:`resolve_storage`):

* default ``sqlite:///<outdir>/optuna.db``: embedded, nothing to install;
* ``journal:<path>`` (or a path ending in ``.journal``/``.log``): an append-only JournalStorage file for
  many processes on one shared disk;
* any SQLAlchemy URL, e.g. ``postgresql+psycopg2://user@host/db``: many machines.

The trial cap is global: every worker stops once the study holds ``n_trials`` finished (complete or
pruned) trials (Optuna's ``MaxTrialsCallback``; concurrent workers may overshoot by at most one trial
each). A worker that dies leaves a RUNNING trial; its heartbeat goes stale and the next worker fails it
and enqueues it again with the same parameters (Optuna's heartbeat on RDB storages; for journal files
the same protocol is done here with a heartbeat thread), so no trial is lost.

The objective is the family's inner-CV AUC (:func:`models.cv.inner_cv_auc`, feature selection inside
each fold) with ``trial.report`` after every fold, so the pruner (median or successive halving) stops
hopeless trials early. Samplers are seeded (TPE by default).

The results can be browsed with ``optuna-dashboard sqlite:///<outdir>/optuna.db`` (``pip install
optuna-dashboard``; for a journal file ``optuna-dashboard <path>.journal``).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.cv import inner_cv_auc
from models.data import table_fingerprint
from models.zoo import get_family
from radfeat.errors import RadfeatError

__all__ = [
    "TuneConfig",
    "TuneResult",
    "StudyMismatchError",
    "OptunaTuner",
    "data_fingerprint",
    "study_name",
    "settings_hash",
    "resolve_storage",
    "open_study",
    "optimize",
    "tune",
    "write_study_artifacts",
    "finished_trials",
]

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")
_HASH_ATTR = "radfeat:settings_hash"
_HEARTBEAT_ATTR = "radfeat:heartbeat"


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


def _is_journal(storage: str) -> bool:
    return storage.startswith("journal:") or storage.endswith((".journal", ".log"))


def resolve_storage(storage: str | None, outdir: str | Path, config: TuneConfig | None = None):
    """``(optuna storage object, URL-like string)`` for a storage argument (see the module docstring)."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    config = config or TuneConfig()
    if storage is None:
        Path(outdir).mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{Path(outdir).resolve() / 'optuna.db'}"
    if _is_journal(storage):
        from optuna.storages.journal import JournalFileBackend

        path = Path(storage.removeprefix("journal:")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path))), f"journal:{path}"
    if "://" not in storage:
        raise ValueError(
            f"storage {storage!r} is neither a database URL (sqlite:///..., postgresql://...) nor a "
            "journal file (journal:<path> or a path ending in .journal)"
        )
    engine_kwargs = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = optuna.storages.RDBStorage(
            storage,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=config.heartbeat_interval,
            grace_period=config.grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=config.max_retry),
        )
    return rdb, storage


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
    found = study.user_attrs.get(_HASH_ATTR)
    if found is None:
        study.set_user_attr(_HASH_ATTR, expected)
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
                    trial.set_user_attr(_HEARTBEAT_ATTR, time.time())
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
            last = t.user_attrs.get(_HEARTBEAT_ATTR)
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

    from radfeat.utils.threads import thread_caps

    thread_caps(1)
    is_journal = _is_journal(str(study.user_attrs.get("storage", "")))
    heartbeat = _JournalHeartbeat(study, config) if is_journal else None
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


def write_study_artifacts(study, outdir: str | Path) -> dict[str, str]:
    """Best parameters (JSON), the trial table (CSV and Parquet), optimisation-history and
    parameter-importance figures (PNG) under ``outdir``; written atomically. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    from radfeat.utils.atomic import atomic_path, write_text

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    trials = study.trials_dataframe(multi_index=False)
    for suffix, writer in (("csv", lambda d, p: d.to_csv(p, index=False)), ("parquet", _to_parquet)):
        path = outdir / f"trials.{suffix}"
        with atomic_path(path) as tmp:
            writer(trials, tmp)
        paths[f"trials_{suffix}"] = str(path)
    done = [t for t in finished_trials(study) if t.value is not None]
    complete = [t for t in done if t.state.name == "COMPLETE"]
    summary = {
        "study": study.study_name,
        "storage": study.user_attrs.get("storage"),
        "family": study.user_attrs.get("family"),
        "label": study.user_attrs.get("label"),
        "n_complete": len(complete),
        "n_pruned": len(done) - len(complete),
        "best_value": study.best_value if complete else None,
        "best_params": _best_params(study) if complete else None,
        "best_trial": study.best_trial.number if complete else None,
        "settings": study.user_attrs.get("settings"),
    }
    write_text(json.dumps(summary, indent=2, default=str), outdir / "best_params.json")
    paths["best_params"] = str(outdir / "best_params.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if complete:
            ax = optuna.visualization.matplotlib.plot_optimization_history(study)
            _save(ax, outdir / "history.png", plt)
            paths["history"] = str(outdir / "history.png")
        if len(complete) >= 2 and len({json.dumps(t.params, sort_keys=True) for t in complete}) >= 2:
            try:
                ax = optuna.visualization.matplotlib.plot_param_importances(study)
            except (RuntimeError, ValueError, ZeroDivisionError):  # e.g. no parameter varied
                ax = None
            if ax is not None:
                _save(ax, outdir / "importance.png", plt)
                paths["importance"] = str(outdir / "importance.png")
    return paths


def _to_parquet(frame: pd.DataFrame, path) -> None:
    frame = frame.copy()
    for col in frame.columns:  # durations and mixed-type params do not round-trip to Arrow as-is
        if frame[col].dtype == object or str(frame[col].dtype).startswith("timedelta"):
            frame[col] = frame[col].astype(str)
    frame.to_parquet(path, index=False)


def _save(ax, path: Path, plt) -> None:
    from radfeat.utils.atomic import atomic_path

    fig = ax.figure if hasattr(ax, "figure") else plt.gcf()
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _best_params(study) -> dict:
    best = study.best_trial
    return dict(best.user_attrs.get("params", best.params))


def _result(study, family: str, artifacts: dict[str, str]) -> TuneResult:
    done = finished_trials(study)
    complete = [t for t in done if t.state.name == "COMPLETE"]
    n_failed = sum(t.state.name == "FAIL" for t in study.get_trials(deepcopy=False))
    return TuneResult(
        study_name=study.study_name,
        storage=str(study.user_attrs.get("storage")),
        family=family,
        best_params=_best_params(study) if complete else {},
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
