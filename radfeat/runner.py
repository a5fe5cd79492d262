"""Batch execution: cache, resume, failure records, progress, joblib (local) or Dask (cluster).

Every finished case is written atomically to ``<table>.cache/`` under a key made of the case id, the
input fingerprint and the settings hash, so a rerun after Ctrl-C, a crash or ``kill -9`` skips what is
done and yields the same table. A failing case is recorded (stage, error, hint) and never stops the
others; it does not get a row in the table.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from radfeat._atomic import atomic_path, write_text

__all__ = ["CaseCache", "CaseTimeout", "RunSummary", "run_cases", "thread_caps", "with_timeout"]

#: Environment variables that cap BLAS/OpenMP threads in worker processes.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def thread_caps(n: int = 1) -> None:
    """Cap ITK, BLAS and OpenMP threads of this process (called at the start of every task)."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    for var in THREAD_ENV:
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def _safe(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", case_id)


@dataclass(frozen=True)
class CaseCache:
    """One JSON file per finished case: ``<case>__<key>.json`` (features) or ``….failed.json``."""

    folder: Path

    def key(self, case_id: str, fingerprint: str, settings_hash: str) -> str:
        import hashlib

        return hashlib.sha256(f"{case_id}|{fingerprint}|{settings_hash}".encode()).hexdigest()[:16]

    def _path(self, case_id: str, key: str, failed: bool = False) -> Path:
        return self.folder / f"{_safe(case_id)}__{key}{'.failed' if failed else ''}.json"

    def load(self, case_id: str, key: str) -> dict | None:
        path = self._path(case_id, key)
        return json.loads(path.read_text()) if path.exists() else None

    def load_failure(self, case_id: str, key: str) -> dict | None:
        path = self._path(case_id, key, failed=True)
        return json.loads(path.read_text()) if path.exists() else None

    def store(self, case_id: str, key: str, record: dict, failed: bool = False) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text(json.dumps(record, allow_nan=True), self._path(case_id, key, failed))
        other = self._path(case_id, key, not failed)
        if other.exists():
            other.unlink()

    def forget(self, case_id: str, key: str) -> None:
        for failed in (False, True):
            path = self._path(case_id, key, failed)
            if path.exists():
                path.unlink()


@dataclass
class RunSummary:
    """What a batch run did: counts, failures and per-case results (in manifest order)."""

    n_cases: int
    n_done: int = 0
    n_cached: int = 0
    failures: list[dict] = field(default_factory=list)
    results: dict[str, dict] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0


class CaseTimeout(BaseException):
    """A case ran past its time limit.

    A ``BaseException`` on purpose: pyradiomics catches ``Exception`` inside every feature getter and
    returns NaN, so an ``Exception`` raised by the timer would turn a timed-out case into a row of NaN
    features cached as a success.
    """


def _async_raise(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedule ``exc`` in another thread (``None`` clears a pending one); CPython's documented C API."""
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else ctypes.c_void_p(0)
    )


def with_timeout(fn: Callable[[], Any], seconds: float | None) -> Any:
    """Run ``fn`` and raise :class:`CaseTimeout` if it takes longer than ``seconds``.

    In a process's main thread (local workers) a SIGALRM timer interrupts ``fn``; in other threads
    (Dask workers) a watchdog thread raises :class:`CaseTimeout` inside the worker thread at its next
    Python instruction. In both cases a timer that fired is remembered: if ``fn`` swallowed the
    exception and returned anyway, the result is discarded and :class:`CaseTimeout` raised, so a
    timed-out case never yields features.
    """
    if not seconds:
        return fn()
    fired = threading.Event()
    if threading.current_thread() is threading.main_thread():

        def handler(signum, frame):
            fired.set()
            raise CaseTimeout

        previous = signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, float(seconds))
        try:
            result = fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    else:
        target = threading.get_ident()
        lock = threading.Lock()
        finished = threading.Event()

        def watchdog() -> None:
            if finished.wait(float(seconds)):
                return
            with lock:
                if not finished.is_set():
                    fired.set()
                    _async_raise(target, CaseTimeout)

        guard = threading.Thread(target=watchdog, daemon=True, name="radfeat-case-timeout")
        guard.start()
        try:
            result = fn()
        finally:
            with lock:
                finished.set()
                if fired.is_set():
                    _async_raise(target, None)  # not yet delivered: cancel, raised below instead
    if fired.is_set():
        raise CaseTimeout
    return result


def execute_task(task: dict[str, Any], work: Callable[[dict], dict], timeout_s: float | None) -> dict:
    """Run one case in a worker and cache the outcome; returns a small status record.

    ``work(row)`` returns the case's features; any exception becomes a failure record with the stage,
    the error and a hint (from :class:`radfeat.pipeline.CaseFailure` when it is one).
    """
    thread_caps(1)
    cache = CaseCache(Path(task["cache"]))
    row, key = task["row"], task["key"]
    t0 = time.perf_counter()
    try:
        features = with_timeout(lambda: work(row), timeout_s)
    except CaseTimeout:
        record = {
            "case_id": row["case_id"],
            "stage": "timeout",
            "error": f"case took longer than {timeout_s:g} s",
            "hint": "raise run.timeout_s in the settings (--timeout), or check the case's size",
            "path": "",
        }
    except Exception as exc:  # noqa: BLE001 - isolate the case, record why
        record = {
            "case_id": row["case_id"],
            "stage": getattr(exc, "stage", "unexpected"),
            "error": getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
            "hint": getattr(exc, "hint", None) or "report this with the case's files",
            "path": getattr(exc, "path", None) or "",
        }
    else:
        record = {"case_id": row["case_id"], "features": features, "seconds": time.perf_counter() - t0}
        cache.store(row["case_id"], key, record)
        return {"case_id": row["case_id"], "ok": True, "seconds": record["seconds"]}
    record["seconds"] = time.perf_counter() - t0
    cache.store(row["case_id"], key, record, failed=True)
    return {"case_id": row["case_id"], "ok": False, **record}


def _iterate(tasks: list[dict], work, timeout_s, jobs: int, scheduler: str | None) -> Iterator[dict]:
    if scheduler:
        from distributed import Client, as_completed

        with Client(scheduler, timeout="30s") as client:
            futures = client.map(execute_task, tasks, work=work, timeout_s=timeout_s, pure=False)
            for future in as_completed(futures):
                yield future.result()
        return
    if jobs == 1:
        for task in tasks:
            yield execute_task(task, work, timeout_s)
        return
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", inner_max_num_threads=1):
        parallel = Parallel(n_jobs=jobs, return_as="generator_unordered")
        yield from parallel(delayed(execute_task)(t, work, timeout_s) for t in tasks)


def run_cases(
    rows: list[dict[str, Any]],
    work: Callable[[dict], dict],
    *,
    cache_dir: str | Path,
    fingerprint: Callable[[dict], str],
    settings_hash: str,
    jobs: int = 1,
    scheduler: str | None = None,
    timeout_s: float | None = None,
    force: bool = False,
    retry_failed: bool = False,
    progress: Callable[[dict], None] | None = None,
) -> RunSummary:
    """Run ``work`` on every row not already cached; return every row's outcome.

    Parameters
    ----------
    rows : list of dict
        Manifest rows with absolute paths and a ``case_id``.
    work : callable
        Picklable ``row → features`` function (run in worker processes / Dask workers).
    fingerprint : callable
        ``row → str`` hash of the inputs (part of the cache key).
    force : bool
        Recompute every case. ``retry_failed``: recompute cases whose last attempt failed.
    progress : callable, optional
        Called once with ``{"total": n}``, then with each status record as cases finish (done, failed
        or found in the cache).
    """
    t0 = time.perf_counter()
    cache = CaseCache(Path(cache_dir))
    summary = RunSummary(n_cases=len(rows))
    summary.fingerprints = {row["case_id"]: fingerprint(row) for row in rows}
    keys = {c: cache.key(c, fp, settings_hash) for c, fp in summary.fingerprints.items()}
    tasks = []
    for row in rows:
        case = row["case_id"]
        key = keys[case]
        if force:
            cache.forget(case, key)
        elif cache.load(case, key) is not None:
            summary.n_cached += 1
            continue
        elif cache.load_failure(case, key) is not None and not retry_failed:
            summary.n_cached += 1
            continue
        tasks.append({"row": row, "key": key, "cache": str(cache.folder)})
    if progress:
        progress({"total": len(rows)})
        for row in rows:
            if row["case_id"] not in {t["row"]["case_id"] for t in tasks}:
                progress(
                    {
                        "case_id": row["case_id"],
                        "cached": True,
                        "ok": cache.load(row["case_id"], keys[row["case_id"]]) is not None,
                    }
                )
    try:
        for status in _iterate(tasks, work, timeout_s, jobs, scheduler):
            if progress:
                progress(status)
    except KeyboardInterrupt:
        summary.interrupted = True
    for row in rows:
        case = row["case_id"]
        key = keys[case]
        done = cache.load(case, key)
        if done is not None:
            summary.results[case] = done["features"]
            summary.n_done += 1
            continue
        failed = cache.load_failure(case, key)
        if failed is not None:
            summary.failures.append(
                {k: failed.get(k, "") for k in ("case_id", "stage", "error", "hint", "path")}
            )
    summary.seconds = time.perf_counter() - t0
    return summary


def write_failures(failures: list[dict], path: str | Path) -> Path | None:
    """``<table>.failures.csv`` (case_id, stage, error, hint, path); removed when nothing failed."""
    path = Path(path)
    if not failures:
        if path.exists():
            path.unlink()
        return None
    with atomic_path(path) as tmp:
        pd.DataFrame(failures, columns=["case_id", "stage", "error", "hint", "path"]).to_csv(tmp, index=False)
    return path


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
