"""Optuna studies: deterministic names, resume (also after SIGKILL), settings checks, global trial cap
with two workers on a real PostgreSQL server and on a journal file, pruning, nested use."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from models.cv import CVConfig, cross_validate
from models.data import load_dataset
from models.tuning import (
    OptunaTuner,
    StudyMismatchError,
    TuneConfig,
    data_fingerprint,
    finished_trials,
    open_study,
    study_name,
    tune,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
RADFEAT = [sys.executable, "-m", "radfeat_cli"]


def _table(n: int = 120, p: int = 40, seed: int = 0, noise: float = 0.8) -> pd.DataFrame:
    """Label driven by f0 only; the other columns are noise."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"f{i}" for i in range(p)])
    X["egfr"] = (X["f0"] + noise * rng.normal(size=n) > 0).astype(int)
    X.insert(0, "case_id", [f"c{i:03d}" for i in range(n)])
    return X


@pytest.fixture
def table_csv(tmp_path) -> Path:
    path = tmp_path / "table.csv"
    _table().to_csv(path, index=False)
    return path


def _xy(frame: pd.DataFrame):
    return frame.drop(columns=["case_id", "egfr"]), frame["egfr"].to_numpy()


def _load(storage_url: str, name: str):
    if storage_url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        backend = optuna.storages.JournalStorage(JournalFileBackend(storage_url.removeprefix("journal:")))
        return optuna.load_study(study_name=name, storage=backend)
    return optuna.load_study(study_name=name, storage=storage_url)


def test_study_name_is_deterministic_and_keyed_by_data_label_family_seed():
    X, y = _xy(_table())
    fp = data_fingerprint(X, y)
    assert fp == data_fingerprint(X.copy(), y.copy())
    name = study_name("egfr", "xgb", fp, 0)
    assert re.fullmatch(r"radfeat-egfr-xgb-[0-9a-f]{16}-s0", name)
    # The same in a fresh process (no dependence on hash randomisation or object identity).
    code = (
        "import sys; sys.path.insert(0, 'tests'); from test_tuning import _xy, _table; "
        "from models.tuning import data_fingerprint, study_name; X, y = _xy(_table()); "
        "print(study_name('egfr', 'xgb', data_fingerprint(X, y), 0))"
    )
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == name
    names = {
        study_name("egfr", "xgb", fp, 0),
        study_name("subtype", "xgb", fp, 0),
        study_name("egfr", "lr", fp, 0),
        study_name("egfr", "xgb", fp, 1),
        study_name("egfr", "xgb", data_fingerprint(X.iloc[:-1], y[:-1]), 0),
    }
    assert len(names) == 5


def test_study_settings_hash_follows_the_declared_space_not_source_text(monkeypatch):
    """The search space is hashed from its declaration (data), so reformatting zoo.py keeps resume
    working, while a changed range is a different study."""
    from dataclasses import replace

    import models.zoo as zoo
    from models.tuning import settings_hash

    config = TuneConfig()
    before = settings_hash("lr", config, "fp", "egfr")
    space = zoo.FAMILIES["lr"].describe_space()
    assert json.loads(json.dumps(space)) == space  # plain data
    same = replace(zoo.FAMILIES["lr"], space=tuple(replace(p) for p in zoo.FAMILIES["lr"].space))
    monkeypatch.setitem(zoo.FAMILIES, "lr", same)
    assert settings_hash("lr", config, "fp", "egfr") == before
    wider = tuple(replace(p, high=100.0) if p.name == "C" else p for p in same.space)
    monkeypatch.setitem(zoo.FAMILIES, "lr", replace(same, space=wider))
    assert settings_hash("lr", config, "fp", "egfr") != before


def test_rerun_resumes_to_the_total_and_refuses_other_settings(tmp_path):
    X, y = _xy(_table())
    config = TuneConfig(n_trials=6, inner_splits=3, inner_repeats=1, pruner="none")
    first = tune(X, y, "lr", config, label="egfr", outdir=tmp_path)
    assert first.n_complete == 6
    numbers_before = [t.number for t in finished_trials(_load(first.storage, first.study_name))]
    again = tune(X, y, "lr", config, label="egfr", outdir=tmp_path)  # already at the total: no new trial
    assert again.n_complete == 6 and again.best_value == first.best_value
    more = tune(X, y, "lr", TuneConfig(**{**config.__dict__, "n_trials": 9}), label="egfr", outdir=tmp_path)
    study = _load(more.storage, more.study_name)
    numbers = [t.number for t in finished_trials(study)]
    assert numbers[:6] == numbers_before and numbers == list(range(9))
    with pytest.raises(StudyMismatchError, match="other settings"):
        open_study("lr", X, y, TuneConfig(n_trials=9, inner_splits=5), label="egfr", outdir=tmp_path)
    # The artefacts a user looks at.
    for name in ("best_params.json", "trials.csv", "trials.parquet", "history.png", "importance.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    best = json.loads((tmp_path / "best_params.json").read_text())
    assert best["best_value"] == pytest.approx(more.best_value) and best["n_complete"] == 9
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 9


def test_same_seed_same_study_result(tmp_path):
    X, y = _xy(_table())
    config = TuneConfig(n_trials=8, inner_splits=3, inner_repeats=1, n_startup_trials=4)
    a = tune(X, y, "lr", config, outdir=tmp_path / "a", artifacts=False)
    b = tune(X, y, "lr", config, outdir=tmp_path / "b", artifacts=False)
    assert a.best_params == b.best_params and a.best_value == b.best_value


def _tune_cmd(table: Path, out: Path, *extra: str) -> list[str]:
    return [*RADFEAT, "tune", str(table), "--label", "egfr", "-o", str(out), "--quiet", *extra]


def test_sigkill_mid_study_then_resume_loses_and_duplicates_nothing(table_csv, tmp_path):
    out = tmp_path / "tune"
    url = f"sqlite:///{out / 'optuna.db'}"
    total = 8
    cmd = _tune_cmd(
        table_csv,
        out,
        "--family",
        "rf",
        "--trials",
        str(total),
        "--inner",
        "5x1",
        "--pruner",
        "none",
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "3",
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    name = None
    deadline = time.time() + 120
    killed_number = None
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            summaries = optuna.get_all_study_summaries(storage=url)
        except Exception:
            continue
        if not summaries:
            continue
        name = summaries[0].study_name
        study = _load(url, name)
        done = finished_trials(study)
        running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        if len(done) >= 2 and running:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_number = running[0].number
            break
    assert killed_number is not None, f"could not kill mid-trial: {proc.communicate()}"
    before = {t.number: t.value for t in finished_trials(_load(url, name))}
    assert len(before) < total
    time.sleep(3.5)  # let the dead worker's heartbeat go stale
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    study = _load(url, name)
    done = finished_trials(study)
    assert len(done) == total  # exactly the requested total: nothing lost, nothing extra
    assert {t.number: t.value for t in done if t.number in before} == before  # kept as they were
    states = {t.number: t.state for t in study.trials}
    assert states[killed_number] == optuna.trial.TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed_number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == study.trials[killed_number].params  # the same point, run again
    assert len({json.dumps(t.params, sort_keys=True) for t in done}) == total  # no point done twice


# ----------------------------------------------------------------------------------- distributed
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL cluster in a temp folder, listening on loopback only."""
    reason = None
    bindir = _pg_bin()
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        reason = "psycopg2 is not installed (pip install -e '.[test]')"
    if bindir is None:
        reason = "no PostgreSQL server binaries (apt-get install postgresql; .ci/run does this)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
        pytest.skip(reason)
    as_user: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="radfeat-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root: use the postgres system user
        shutil.chown(workdir, user="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = workdir / "data", _free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)

    init = run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    started = None
    if init.returncode == 0:
        started = run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(workdir / "server.log"),
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off",
            "start",
        )
    if init.returncode != 0 or started is None or started.returncode != 0:
        detail = (init.stderr or "") + ("" if started is None else started.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests, but the server did not start: {detail}")
        pytest.skip(f"PostgreSQL could not be started here: {detail.strip()[:300]}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


def _two_workers(table: Path, out: Path, storage: str, total: int):
    cmds = [
        _tune_cmd(
            table,
            out / f"w{w}",
            "--family",
            "lr",
            "--trials",
            str(total),
            "--inner",
            "5x2",
            "--storage",
            storage,
            "--study",
            "shared-study",
            "--worker",
            str(w),
        )
        for w in (0, 1)
    ]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    for p in procs:
        _, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
    study = _load(storage, "shared-study")
    done = finished_trials(study)
    # The cap is global; each concurrent worker may finish at most the one trial it had started.
    assert total <= len(done) <= total + 1
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) == 2, f"both workers should have run trials, saw {workers}"
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    return study


def test_two_workers_share_one_study_on_postgresql(table_csv, tmp_path, postgres_url):
    study = _two_workers(table_csv, tmp_path, postgres_url, total=24)
    assert study.user_attrs["family"] == "lr"


def _open_storage_in_a_process(url: str, barrier_file: str) -> str:
    from models.tuning.storage import resolve_storage

    while not Path(barrier_file).exists():  # start together: the race needs simultaneous first opens
        time.sleep(0.001)
    try:
        resolve_storage(url, tempfile.gettempdir())
        return "ok"
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return f"{type(exc).__name__}: {exc}"


def test_workers_opening_an_empty_postgresql_database_together_all_succeed(postgres_url, tmp_path):
    """Optuna creates its schema on first open; simultaneous first opens race on CREATE TABLE."""
    import multiprocessing as mp

    import psycopg2

    ctx = mp.get_context("spawn")
    admin = psycopg2.connect(postgres_url.replace("postgresql+psycopg2", "postgresql"))
    admin.autocommit = True
    outcomes = []
    with ctx.Pool(4) as pool:
        for round_ in range(3):
            name = f"race_{round_}_{os.getpid()}"
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name}")
            url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
            barrier = tmp_path / f"go{round_}"
            pending = [pool.apply_async(_open_storage_in_a_process, (url, str(barrier))) for _ in range(4)]
            time.sleep(1.5)  # let the spawned workers import and wait at the barrier
            barrier.touch()
            outcomes += [p.get(timeout=120) for p in pending]
    admin.close()
    assert outcomes == ["ok"] * 12, [o for o in outcomes if o != "ok"]


def test_two_workers_share_one_study_on_a_journal_file(table_csv, tmp_path):
    _two_workers(table_csv, tmp_path, f"journal:{tmp_path / 'optuna.journal'}", total=24)


@pytest.mark.slow
# ----------------------------------------------------------------------------------------- pruning
def test_pruning_stops_hopeless_trials_and_saves_work(tmp_path):
    """On a table where one feature carries the signal among 400 noise features, most random
    configurations (no selection, strong shrinkage, large k) are bad: the median pruner stops them after
    a few inner folds, and the search still finds as good a model."""
    X, y = _xy(_table(n=150, p=400, noise=0.6))
    runs = {}
    for pruner in ("median", "none"):
        config = TuneConfig(
            n_trials=30, sampler="random", pruner=pruner, inner_splits=5, inner_repeats=2, n_warmup_steps=2
        )
        result = tune(X, y, "lr", config, outdir=tmp_path / pruner, artifacts=False)
        study = _load(result.storage, result.study_name)
        folds_fitted = sum(len(t.intermediate_values) for t in study.trials)
        runs[pruner] = (result, folds_fitted)
    pruned, full = runs["median"], runs["none"]
    assert full[0].n_pruned == 0 and full[1] == 30 * 10
    assert pruned[0].n_pruned >= 8, pruned[0]
    assert pruned[1] <= 0.75 * full[1], (pruned[1], full[1])
    assert pruned[0].best_value >= full[0].best_value - 0.02


# ------------------------------------------------------------------------------------------ nested
def test_nested_cv_with_optuna_runs_one_resumable_study_per_fold(tmp_path):
    frame = _table()
    data = load_dataset(frame, "egfr", id_column="case_id")
    tuner = OptunaTuner(TuneConfig(n_trials=4, inner_splits=3, inner_repeats=1), outdir=str(tmp_path))
    config = CVConfig(n_splits=3, n_repeats=1, inner_splits=3, inner_repeats=1)
    result = cross_validate(data, ["lr", "nb"], config, tuner=tuner, cache_dir=tmp_path / "folds")
    summaries = optuna.get_all_study_summaries(storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert len(summaries) == 3 * 2  # one study per outer fold and family
    assert all(s.n_trials == 4 for s in summaries)
    summary = result.summary()
    assert summary.loc["lr", "mean_auc"] > 0.75  # f0 carries the signal
    assert {"auto_select", "auto"} <= set(summary.index)  # the stacked auto over the tuned lr and nb
    assert all(f["inner_auc"]["lr"] > 0.5 for f in result.folds)


def test_cli_benchmark_with_optuna_tuner(table_csv, tmp_path):
    out = tmp_path / "bench"
    cmd = [
        *RADFEAT,
        "benchmark",
        str(table_csv),
        "--label",
        "egfr",
        "--families",
        "lr",
        "--cv",
        "3x1",
        "--inner",
        "3x1",
        "--tuner",
        "optuna",
        "--trials",
        "3",
        "-o",
        str(out),
        "--quiet",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (out / "report.md").exists() and (out / "optuna.db").exists()
    bad = subprocess.run([*cmd, "--no-nested"], capture_output=True, text=True)
    assert bad.returncode == 2 and "needs --nested" in bad.stderr


def test_cli_tune_writes_artefacts_and_refuses_a_mismatched_resume(table_csv, tmp_path):
    out = tmp_path / "t"
    run = subprocess.run(
        _tune_cmd(table_csv, out, "--family", "lr", "--trials", "5", "--inner", "3x1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "best inner-CV AUC" in run.stdout and "optuna-dashboard" in run.stdout
    assert json.loads((out / "best_params.json").read_text())["n_complete"] == 5
    other = subprocess.run(
        _tune_cmd(table_csv, out, "--family", "lr", "--trials", "5", "--inner", "5x1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert other.returncode == 2 and "other settings" in other.stderr


def test_journal_storage_retries_a_trial_whose_worker_died(tmp_path):
    """JournalStorage has no heartbeat of its own: ours fails the silent trial and enqueues it again."""
    X, y = _xy(_table())
    config = TuneConfig(n_trials=3, inner_splits=3, inner_repeats=1, heartbeat_interval=1, grace_period=2)
    storage = f"journal:{tmp_path / 'j.journal'}"
    study = open_study("lr", X, y, config, storage=storage, outdir=tmp_path)
    dead = study.ask()  # a worker took this trial and died: RUNNING, never told
    dead.suggest_categorical("select", ["anova", "mrmr", "none"])
    time.sleep(2.5)
    result = tune(X, y, "lr", config, storage=storage, outdir=tmp_path, artifacts=False)
    study = _load(result.storage, result.study_name)
    assert study.trials[dead.number].state == optuna.trial.TrialState.FAIL
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].state == optuna.trial.TrialState.COMPLETE
    assert retry[0].params["select"] == dead.params["select"]
    assert result.n_complete == 3
