"""Where studies live: sqlite (default), a JournalStorage file (many processes, one disk) or any
SQLAlchemy URL such as PostgreSQL (many machines)."""

from __future__ import annotations

import warnings
from pathlib import Path

from models.tuning.config import TuneConfig

__all__ = ["is_journal", "resolve_storage"]


def is_journal(storage: str) -> bool:
    return storage.startswith("journal:") or storage.endswith((".journal", ".log"))


def resolve_storage(storage: str | None, outdir: str | Path, config: TuneConfig | None = None):
    """``(optuna storage object, URL-like string)`` for a storage argument (see the module docstring)."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    config = config or TuneConfig()
    if storage is None:
        Path(outdir).mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{Path(outdir).resolve() / 'optuna.db'}"
    if is_journal(storage):
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

    def open_rdb():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                storage,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=config.heartbeat_interval,
                grace_period=config.grace_period,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=config.max_retry),
            )

    return _retry_schema_race(open_rdb), storage


def _retry_schema_race(open_rdb, attempts: int = 5):
    """Open an RDB storage, retrying when another worker is creating the same schema at that moment.

    Optuna creates its tables on first use; two workers starting together on an empty PostgreSQL
    database race on ``CREATE TABLE`` and the loser gets a unique-constraint violation (its tables
    exist a moment later). The race is retried with a growing pause; any other error is raised.
    """
    import time

    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            return open_rdb()
        except (IntegrityError, ProgrammingError) as exc:
            text = str(exc).lower()
            racing = "already exists" in text or "duplicate key" in text or "unique" in text
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
