"""The benchmark scripts run (a benchmark that no longer imports reports nothing): the fusion
benchmark on a small cohort, checking its one-compilation guarantees in its output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_fusion_runs_and_reports_no_recompilation():
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_fusion.py"), "--steps", "2", "--cases", "16"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| compilations of the train step | 1 |" in run.stdout
    assert "| Grad-CAM compilations after the first call | 0 |" in run.stdout


@pytest.mark.slow
@pytest.mark.realdata
def test_bench_extract_runs_both_tools_and_their_values_agree(shared_data):
    import os

    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_extract.py"), "--sets", "a", "--repeats", "1"]
    cmd += ["--cases", "2", "--quick", "--skip", "sarcoma"]
    env = {**os.environ, "RADFEAT_SHARED_DATA": str(shared_data)}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| original |")]
    assert len(rows) == 5  # the whole-process row and lung1, lung2 per case with each engine
    assert sum("| pyradiomics |" in r for r in rows) == 2 and sum("| radfeat |" in r for r in rows) == 2
    for row in rows:
        assert float(row.strip("| ").split("|")[-1]) < 1e-6, row  # max relative difference


@pytest.mark.slow
@pytest.mark.realdata
def test_bench_ibsi_runs_and_reports_equal_values(shared_data):
    import os

    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_ibsi.py"), "--repeats", "1", "--quick"]
    env = {**os.environ, "RADFEAT_SHARED_DATA": str(shared_data)}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    ibsi_rows = [line for line in run.stdout.splitlines() if line.startswith("| lung") and "/104" in line]
    assert len(ibsi_rows) == 2
    for row in ibsi_rows:  # all shared definitions but kurtosis and the three PCA axis lengths
        assert row.strip("| ").split("|")[-1].strip() == "100/104", row
    matrix_rows = [
        line for line in run.stdout.splitlines() if line.startswith("| lung") and "/104" not in line
    ]
    assert len(matrix_rows) == 2
    for row in matrix_rows:
        assert float(row.strip("| ").split("|")[-1]) < 1e-6, row
