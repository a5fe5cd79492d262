"""Shared pieces of the command modules: consoles, exit codes, error lines, progress bars, reports.

Exit codes: 0 success; 1 some cases are unusable or failed (data problem); 2 usage error.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

__all__ = [
    "out",
    "err",
    "EXIT_OK",
    "EXIT_DATA",
    "EXIT_USAGE",
    "error",
    "Progress",
    "print_report",
    "report_extraction",
]

out = Console()
err = Console(stderr=True)

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2


#: ``radfeat --debug``: show the traceback of a handled error instead of only its one-line message.
DEBUG = {"on": False}


def error(message) -> None:
    """An error line on stderr, never wrapped or cut (it names the case, the file and the fix).

    With ``radfeat --debug``, called while an exception is being handled, re-raises it so the full
    traceback is shown.
    """
    typer.echo(str(message), err=True)
    if DEBUG["on"] and sys.exc_info()[1] is not None:
        raise  # noqa: PLE0704 - the exception being handled by the caller


def print_report(report) -> None:
    if not report.problems:
        out.print(f"[green]OK[/green]: {report.n_cases} cases, no problems ({report.manifest})")
        return
    # Plain text: a problem line names the case, the file and the fix; it must never be cut.
    typer.echo(f"{report.manifest}: {len(report.problems)} problem(s)")
    for problem in report.problems:
        typer.echo(f"[{problem.code}] {problem}")
    n_bad = len(report.unusable_cases)
    out.print(f"{n_bad} of {report.n_cases} cases unusable" if n_bad else "warnings only")


def report_extraction(result) -> None:
    """Print where the table went; exit 1 (listing them) when cases failed, 130 when interrupted."""
    summary = result.summary
    if summary.interrupted:
        error(
            f"interrupted: {summary.n_done} of {summary.n_cases} cases are finished and cached; no table was "
            f"written to {result.table_path}. Rerun the same command to resume."
        )
        raise typer.Exit(130)
    cached = f"{summary.n_cached} from cache"
    if summary.n_cached_failed:
        cached += f", {summary.n_cached_failed} failed in an earlier run (--retry-failed to retry)"
    typer.echo(
        f"table: {result.table_path} ({len(result.table)} cases × {len(result.table.columns)} columns; "
        f"{cached}, {summary.seconds:.1f} s)"
    )
    if result.failures_path:
        err.print(f"{len(summary.failures)} case(s) failed; see {result.failures_path}", markup=False)
        for f in summary.failures[:10]:
            err.print(f"  {f['case_id']} [{f['stage']}] {f['error']} Hint: {f['hint']}", markup=False)
        raise typer.Exit(EXIT_DATA)


class Progress:
    """A rich progress bar (done / failed / rate / ETA) fed by the runner's status callback.

    Each ``{"total": n}`` message starts a new bar (``"title"`` and ``"unit"`` keys name the stage), so
    one instance can follow several stages (the demo: cases, then folds).
    """

    def __init__(self, quiet: bool, title: str = "extract", unit: str = "cases") -> None:
        self.quiet = quiet
        self.title = title
        self.unit = unit
        self.done = self.failed = 0

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if self.quiet:
            return self._log
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self.bar.start()
        self.task = None
        return self._update

    def _log(self, status: dict) -> None:
        if "total" in status:
            err.print(f"{status.get('title', self.title)}: {status['total']} to do")
            return
        state = "ok" if status.get("ok") else f"FAILED [{status.get('stage')}] {status.get('error')}"
        err.print(f"{status['case_id']}: {'cached ' if status.get('cached') else ''}{state}", markup=False)

    def _update(self, status: dict) -> None:
        import time

        if "total" in status:
            if self.task is not None:
                self.bar.update(self.task, completed=self.bar.tasks[self.task].total)
            self.t0 = time.perf_counter()
            self.done = self.failed = 0
            self.unit = status.get("unit", self.unit)
            self.task = self.bar.add_task(
                status.get("title", self.title), total=status["total"], failed=0, rate=""
            )
            return
        self.done += 1
        self.failed += 0 if status.get("ok") else 1
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(
            self.task,
            completed=self.done,
            failed=self.failed,
            rate=f"{60 * self.done / elapsed:.1f} {self.unit}/min",
        )

    def __exit__(self, *exc) -> None:
        if not self.quiet:
            self.bar.stop()


def split_names(text: str | None) -> list[str]:
    """A comma-separated option (``"age, sex"``) as names (``["age", "sex"]``); empty for ``None``."""
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def read_table(path):
    """``(frame, provenance)`` of a radfeat table or a foreign CSV/Parquet, ``case_id`` as a column."""
    from models.data import read_feature_table

    frame, provenance = read_feature_table(path)
    if frame.index.name and frame.index.name not in frame.columns:
        frame = frame.reset_index()
    return frame, provenance
