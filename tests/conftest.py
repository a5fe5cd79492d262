"""Shared fixtures: the real-data folder (../shared/data) and small synthetic cohorts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RADFEAT_SHARED_DATA", REPO.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = (
        f"real-data folder {path} is absent (it sits beside the repository as ../shared/data; "
        "set RADFEAT_SHARED_DATA to point elsewhere)"
    )
    if os.environ.get("CI"):
        pytest.fail(message + " — CI must have it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder; skips with a reason on a user's fresh clone, fails in CI."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def sts_case(shared_data: Path):
    """Folder of one real sarcoma PET/CT case (PET in SUV, PET and CT on different grids)."""
    return _require(shared_data / "sts_petct" / "STS_001")


@pytest.fixture(scope="session")
def synth_cohort(tmp_path_factory) -> Path:
    """A 12-case synthetic cohort with NIfTI PET in SUV; returns the manifest path."""
    from radfeat.synth import make_cohort

    return make_cohort(tmp_path_factory.mktemp("cohort"), n_cases=12, seed=7)
