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

Modules by job: :mod:`~models.tuning.config` (settings, names, hash), :mod:`~models.tuning.storage`,
:mod:`~models.tuning.study` (open / resume / optimise, heartbeat), :mod:`~models.tuning.artifacts`
and :mod:`~models.tuning.run` (:func:`tune`, :class:`OptunaTuner`).
"""

from __future__ import annotations

from models.tuning.artifacts import write_study_artifacts
from models.tuning.config import (
    PRUNERS,
    SAMPLERS,
    StudyMismatchError,
    TuneConfig,
    TuneResult,
    data_fingerprint,
    settings_hash,
    study_name,
)
from models.tuning.run import OptunaTuner, tune
from models.tuning.storage import resolve_storage
from models.tuning.study import finished_trials, open_study, optimize

__all__ = [
    "TuneConfig",
    "TuneResult",
    "StudyMismatchError",
    "OptunaTuner",
    "SAMPLERS",
    "PRUNERS",
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
