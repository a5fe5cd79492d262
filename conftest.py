"""Collection rules for the whole suite (tests/ and notebooks/): slow tests run in CI only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Notebooks executed in CI (and with RADFEAT_RUN_SLOW=1) only: they train the fusion network.
SLOW_NOTEBOOKS = {"dmdp_fusion.ipynb"}


def pytest_collection_modifyitems(config, items):
    """Slow tests run when RADFEAT_RUN_SLOW=1 or in CI; otherwise they skip with that reason."""
    if os.environ.get("RADFEAT_RUN_SLOW") == "1" or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="slow test: set RADFEAT_RUN_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords or Path(str(item.fspath)).name in SLOW_NOTEBOOKS:
            item.add_marker(skip)
