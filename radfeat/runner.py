"""Batch execution: per-provider cache, resume, failure records, progress, joblib (local) or Dask.

The unit of work is a case: a worker loads it once (:func:`radfeat.case.load_case`) and runs every
feature provider whose result is not cached yet. Each provider's result is written atomically to
``<table>.cache/`` under a key made of the case id, the input fingerprint and **that provider's**
cache key (the settings it uses, its version, its libraries), so

* a rerun after Ctrl-C, a crash or ``kill -9`` skips what is done and yields the same table;
* editing one provider's settings recomputes that provider only.

A failing provider is recorded (stage, error, hint) and never stops the others or other cases; a case
gets a row only when every provider succeeded. A timed-out case never yields features
(:func:`with_timeout`).
"""

from __future__ import annotations

import json
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

from radfeat.utils.atomic import atomic_path, write_text
from radfeat.utils.threads import thread_caps

__all__ = [
    "CaseCache",
    "CaseTimeout",
    "RunSummary",
    "estimated_cost",
    "largest_first",
    "run_cases",
    "thread_caps",
    "with_timeout",
]


def _safe(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", case_id)


@dataclass(frozen=True)
class CaseCache:
    """One JSON file per finished (case, provider): ``<case>__<provider>__<key>.json`` (or
    ``….failed.json``)."""

    folder: Path

    def key(self, case_id: str, fingerprint: str, provider_key: str) -> str:
        import hashlib

        return hashlib.sha256(f"{case_id}|{fingerprint}|{provider_key}".encode()).hexdigest()[:16]

    def _path(self, case_id: str, provider: str, key: str, failed: bool = False) -> Path:
        return self.folder / f"{_safe(case_id)}__{provider}__{key}{'.failed' if failed else ''}.json"

    def load(self, case_id: str, provider: str, key: str) -> dict | None:
        path = self._path(case_id, provider, key)
        return json.loads(path.read_text()) if path.exists() else None

    def load_failure(self, case_id: str, provider: str, key: str) -> dict | None:
        path = self._path(case_id, provider, key, failed=True)
        return json.loads(path.read_text()) if path.exists() else None

    def store(self, case_id: str, provider: str, key: str, record: dict, failed: bool = False) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text(json.dumps(record, allow_nan=True), self._path(case_id, provider, key, failed))
        other = self._path(case_id, provider, key, not failed)
        if other.exists():
            other.unlink()

    def forget(self, case_id: str, provider: str, key: str) -> None:
        for failed in (False, True):
            path = self._path(case_id, provider, key, failed)
            if path.exists():
                path.unlink()


@dataclass
class RunSummary:
    """What a batch run did: counts, failures and per-case results (in manifest order)."""

    n_cases: int
    n_done: int = 0
    n_cached: int = 0
    n_cached_failed: int = 0
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
    timed-out case never yields features. A call that ran past ``seconds`` without the timer reaching
    it (a blocked signal) fails the same way.
    """
    if not seconds:
        return fn()
    fired = threading.Event()
    started = time.monotonic()
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
    # The limit is wall-clock: a case that took longer fails even if no signal reached it (a signal can
    # stay undelivered while it is blocked, or while the interpreter is inside one long C call).
    if fired.is_set() or time.monotonic() - started > float(seconds):
        raise CaseTimeout
    return result


def _failure(row: dict, exc: BaseException, timeout_s: float | None = None) -> dict:
    if isinstance(exc, CaseTimeout):
        return {
            "case_id": row["case_id"],
            "stage": "timeout",
            "error": f"case took longer than {timeout_s:g} s",
            "hint": "raise run.timeout_s in the settings (--timeout), or check the case's size",
            "path": "",
        }
    return {
        "case_id": row["case_id"],
        "stage": getattr(exc, "stage", "unexpected"),
        "error": getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
        "hint": getattr(exc, "hint", None) or "report this with the case's files",
        "path": getattr(exc, "path", None) or "",
    }


def execute_task(task: dict[str, Any], timeout_s: float | None) -> dict:
    """Run the missing providers of one case in a worker and cache each outcome; returns a small
    status record (``ok`` when every provider succeeded).

    The case is loaded once for all providers. A failing provider is recorded and the others still
    run; a failure to load the case, or a timeout, is recorded for every provider not yet done.
    """
    from radfeat.case import load_case
    from radfeat.providers.base import pet_need

    thread_caps(1)
    cache = CaseCache(Path(task["cache"]))
    row, todo = task["row"], task["todo"]
    t0 = time.perf_counter()
    finished: dict[str, dict] = {}

    def work() -> None:
        case = load_case(row, task["settings"], pet=pet_need([p for p, _ in todo]))
        for provider, key in todo:
            timings: dict[str, float] = {}
            t1 = time.perf_counter()
            try:
                features = provider.compute(case, timings)
            except Exception as exc:  # noqa: BLE001 - isolate the provider, record why
                record = {**_failure(row, exc), "seconds": time.perf_counter() - t1}
                cache.store(row["case_id"], provider.name, key, record, failed=True)
                finished[provider.name] = record
                continue
            record = {
                "case_id": row["case_id"],
                "provider": provider.name,
                "features": features,
                "timings": timings,
                "seconds": time.perf_counter() - t1,
            }
            cache.store(row["case_id"], provider.name, key, record)
            finished[provider.name] = record

    try:
        with_timeout(work, timeout_s)
    except (Exception, CaseTimeout) as exc:  # noqa: BLE001 - the case failed to load or timed out
        record = {**_failure(row, exc, timeout_s), "seconds": time.perf_counter() - t0}
        for provider, key in todo:
            if provider.name not in finished:
                cache.store(row["case_id"], provider.name, key, record, failed=True)
                finished[provider.name] = record
    failed = [r for r in finished.values() if "features" not in r]
    status = {"case_id": row["case_id"], "ok": not failed, "seconds": time.perf_counter() - t0}
    if failed:
        status.update({k: failed[0].get(k, "") for k in ("stage", "error", "hint", "path")})
    return status


def _bytes(path: Any) -> int:
    if not isinstance(path, str) or not path:
        return 0
    p = Path(path)
    try:
        return sum(f.stat().st_size for f in p.iterdir()) if p.is_dir() else p.stat().st_size
    except OSError:
        return 0


def estimated_cost(row: dict[str, Any]) -> float:
    """A cheap size of a case for scheduling (no voxel read): bytes of its mask files — the compressed
    size of a label map grows with the tumour, which drives filtering and texture time — then of its
    images."""
    masks = _bytes(row.get("mask")) + _bytes(row.get("pet_mask"))
    images = _bytes(row.get("ct")) + _bytes(row.get("pet"))
    return masks + 1e-3 * images


def largest_first(tasks: list[dict]) -> list[dict]:
    """Tasks ordered by :func:`estimated_cost`, largest first, so that with several workers the long
    cases start early and do not run alone at the end (longest-processing-time scheduling)."""
    return sorted(tasks, key=lambda t: -estimated_cost(t["row"]))


def _iterate(tasks: list[dict], timeout_s, jobs: int, scheduler: str | None) -> Iterator[dict]:
    if jobs > 1 or scheduler:
        tasks = largest_first(tasks)
    if scheduler:
        from distributed import Client, as_completed

        with Client(scheduler, timeout="30s") as client:
            futures = client.map(execute_task, tasks, timeout_s=timeout_s, pure=False)
            for future in as_completed(futures):
                yield future.result()
        return
    if jobs == 1:
        for task in tasks:
            yield execute_task(task, timeout_s)
        return
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", inner_max_num_threads=1):
        parallel = Parallel(n_jobs=jobs, return_as="generator_unordered")
        yield from parallel(delayed(execute_task)(t, timeout_s) for t in tasks)


def run_cases(
    rows: list[dict[str, Any]],
    providers: list,
    *,
    cache_dir: str | Path,
    settings: dict[str, Any] | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    timeout_s: float | None = None,
    force: bool = False,
    retry_failed: bool = False,
    progress: Callable[[dict], None] | None = None,
) -> RunSummary:
    """Run every provider on every row whose result is not cached yet; return every row's outcome.

    Parameters
    ----------
    rows : list of dict
        Manifest rows with absolute paths and a ``case_id``.
    providers : list of FeatureProvider
        Picklable providers (sent to worker processes / Dask workers); their features are merged in
        this order.
    settings : dict, optional
        radfeat settings for the case loader (``run.mask_label``).
    force : bool
        Recompute everything. ``retry_failed``: recompute providers whose last attempt failed.
    progress : callable, optional
        Called once with ``{"total": n}``, then with each status record as cases finish (done, failed
        or found in the cache).
    """
    from radfeat.case import input_fingerprint

    t0 = time.perf_counter()
    cache = CaseCache(Path(cache_dir))
    summary = RunSummary(n_cases=len(rows))
    summary.fingerprints = {row["case_id"]: input_fingerprint(row) for row in rows}
    provider_keys = {p.name: p.cache_key() for p in providers}
    names = [p.name for p in providers]
    if len(set(names)) != len(names):
        raise ValueError(f"provider names must be unique, got {names}")
    keys = {
        c: {n: cache.key(c, fp, provider_keys[n]) for n in names} for c, fp in summary.fingerprints.items()
    }
    tasks, cached_status = [], []
    for row in rows:
        case = row["case_id"]
        todo, failed_cached = [], False
        for provider in providers:
            key = keys[case][provider.name]
            if force:
                cache.forget(case, provider.name, key)
            elif cache.load(case, provider.name, key) is not None:
                continue
            elif cache.load_failure(case, provider.name, key) is not None and not retry_failed:
                failed_cached = True
                continue
            todo.append((provider, key))
        if todo:
            tasks.append({"row": row, "todo": todo, "cache": str(cache.folder), "settings": settings or {}})
        elif failed_cached:
            summary.n_cached_failed += 1
            record = next(
                r
                for r in (cache.load_failure(case, p.name, keys[case][p.name]) for p in providers)
                if r is not None
            )
            cached_status.append(
                {
                    "case_id": case,
                    "cached": True,
                    "ok": False,
                    "stage": record.get("stage"),
                    "error": record.get("error"),
                }
            )
        else:
            summary.n_cached += 1
            cached_status.append({"case_id": case, "cached": True, "ok": True})
    if progress:
        progress({"total": len(rows)})
        for status in cached_status:
            progress(status)
    try:
        for status in _iterate(tasks, timeout_s, jobs, scheduler):
            if progress:
                progress(status)
    except KeyboardInterrupt:
        summary.interrupted = True
    for row in rows:
        case = row["case_id"]
        merged: dict[str, Any] = {}
        complete = True
        for name in names:
            key = keys[case][name]
            done = cache.load(case, name, key)
            if done is not None:
                merged.update(done["features"])
                continue
            complete = False
            failed = cache.load_failure(case, name, key)
            if failed is not None:
                entry = {k: failed.get(k, "") for k in ("case_id", "stage", "error", "hint", "path")}
                if entry not in summary.failures:  # a load failure is recorded once per provider
                    summary.failures.append(entry)
        if complete:
            summary.results[case] = merged
            summary.n_done += 1
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
