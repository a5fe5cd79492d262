"""A timed-out case never gets a row, even when the timer fires inside a pyradiomics feature getter
(which catches ``Exception`` and returns NaN), on local workers and on Dask worker threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from radfeat.extract import extract_table
from radfeat.runner import CaseTimeout, with_timeout
from radfeat.synth import make_cohort

SETTINGS = """
ct:
  imageType: {Original: {}}
  featureClass: {firstorder: [], glcm: []}
  setting: {resampledPixelSpacing: [2.0, 2.0, 2.0]}
pet: null
pet_descriptors: {enabled: false}
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("timeout")
    settings = folder / "s.yaml"
    settings.write_text(SETTINGS)
    return make_cohort(folder / "cohort", n_cases=2, seed=3), settings


@pytest.fixture
def slow_glcm(monkeypatch):
    """One GLCM getter that takes 4 s: the timer fires inside pyradiomics' texture computation."""
    from radiomics import glcm

    def slow(self):
        for _ in range(40):
            time.sleep(0.1)
        return 1.0

    monkeypatch.setattr(glcm.RadiomicsGLCM, "getJointEnergyFeatureValue", slow)


def test_pyradiomics_swallows_an_exception_raised_in_a_getter(slow_glcm):
    """The defect: an ``Exception`` from a timer inside a getter becomes NaN, not an error."""
    import numpy as np
    import SimpleITK as sitk

    from radfeat.features.radiomics import RadiomicsEngine

    class Plain(Exception):
        pass

    arr = np.random.default_rng(0).normal(100, 10, (12, 12, 12))
    image = sitk.GetImageFromArray(arr)
    mask = sitk.GetImageFromArray((arr * 0 + 1).astype(np.uint8))
    engine = RadiomicsEngine({"imageType": {"Original": {}}, "featureClass": {"glcm": ["JointEnergy"]}})
    import signal

    def handler(signum, frame):
        raise Plain

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        values = engine.extract(image, {"roi": mask})["roi"]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert np.isnan(values["original_glcm_JointEnergy"])


def test_local_timeout_inside_texture_gives_no_row(tmp_path, cohort, slow_glcm):
    manifest, settings = cohort
    t0 = time.perf_counter()
    result = extract_table(manifest, tmp_path / "t.parquet", settings_path=settings, timeout_s=1.5)
    assert time.perf_counter() - t0 < 7.0  # interrupted, not run to the end (2 × 4 s)
    assert len(result.table) == 0
    assert {f["stage"] for f in result.summary.failures} == {"timeout"}
    records = list((tmp_path / "t.parquet.cache").rglob("*.json"))
    assert records and all(p.name.endswith(".failed.json") for p in records)  # no success cached


def test_thread_timeout_raises_inside_the_worker_thread():
    """Dask runs cases in worker threads, where SIGALRM is unavailable: the watchdog path."""
    out: dict = {}

    def work():
        try:
            for _ in range(100):
                time.sleep(0.05)
        except Exception:  # noqa: BLE001 - a getter that swallows everything, as pyradiomics does
            return "swallowed"
        return "finished"

    def run():
        try:
            out["value"] = with_timeout(work, 0.3)
        except CaseTimeout:
            out["value"] = "timeout"
        out["elapsed"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert out["value"] == "timeout" and out["elapsed"] < 2.0


def test_swallowed_timeout_is_still_a_timeout():
    """Even code that catches BaseException cannot turn a fired timer into a success."""

    def work():
        try:
            for _ in range(40):
                time.sleep(0.05)
        except BaseException:  # noqa: BLE001
            return "swallowed"
        return "finished"

    with pytest.raises(CaseTimeout):
        with_timeout(work, 0.2)
    assert with_timeout(lambda: 7, 5.0) == 7


def test_dask_timeout_inside_texture_gives_no_row(tmp_path, cohort, slow_glcm):
    import distributed

    manifest, settings = cohort
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        result = extract_table(
            manifest,
            tmp_path / "d.parquet",
            settings_path=settings,
            timeout_s=1.5,
            scheduler=cluster.scheduler_address,
        )
    assert len(result.table) == 0
    assert {f["stage"] for f in result.summary.failures} == {"timeout"}


def test_a_call_past_its_limit_fails_even_when_the_signal_never_reaches_it(monkeypatch):
    """The limit is wall-clock: with the timer never firing (here: never armed), a call that ran past
    its limit still raises CaseTimeout instead of returning its result."""
    import radfeat.runner as runner

    monkeypatch.setattr(runner.signal, "setitimer", lambda *args: (0.0, 0.0))

    def work():
        time.sleep(0.1)
        return "finished"

    with pytest.raises(CaseTimeout):
        with_timeout(work, 0.02)
    assert with_timeout(lambda: 7, 5.0) == 7
