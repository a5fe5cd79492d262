"""Shared helpers for the benchmarks: data location, timing, and table printing."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RADFEAT_SHARED_DATA", REPO.parent / "shared" / "data"))


def require_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        sys.exit(f"benchmark data not found: {path} (set RADFEAT_SHARED_DATA)")
    return path


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n## {title}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |")


def interleaved(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median seconds of two callables timed A B B A …, after one warm-up call each."""
    times = interleaved_many({"first": first, "second": second}, repeats)
    return times["first"], times["second"]


def interleaved_many(callables: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each callable timed A B C C B A …, after one warm-up call each."""
    for run in callables.values():
        run()
    names = list(callables)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names + names[::-1] if r % 2 == 0 else names[::-1] + names:
            t0 = time.perf_counter()
            callables[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}
