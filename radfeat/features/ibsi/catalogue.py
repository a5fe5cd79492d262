"""IBSI identity of every feature the engine computes: tag → IBSI code, name, family, aggregation.

``catalogue.csv`` beside this module lists the 482 IBSI 1 features with a digital-phantom consensus
value (codes and names as in the IBSI reference manual; aggregation in its words).
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

__all__ = ["ibsi_catalogue", "IBSI_FAMILY_PREFIXES"]

#: IBSI tag prefix of each feature family.
IBSI_FAMILY_PREFIXES = {
    "morph": "morphology",
    "loc": "local intensity",
    "stat": "intensity-based statistics",
    "ih": "intensity histogram",
    "ivh": "intensity-volume histogram",
    "cm": "GLCM",
    "rlm": "GLRLM",
    "szm": "GLSZM",
    "dzm": "GLDZM",
    "ngt": "NGTDM",
    "ngl": "NGLDM",
}


@functools.lru_cache(maxsize=1)
def ibsi_catalogue() -> dict[str, dict[str, str]]:
    """``{tag: {"ibsi_code", "feature", "family", "aggregation"}}`` for every catalogued IBSI tag."""
    with open(Path(__file__).with_name("catalogue.csv"), newline="", encoding="utf-8") as handle:
        return {
            row["tag"]: {k: row[k] for k in ("ibsi_code", "feature", "family", "aggregation")}
            for row in csv.DictReader(handle)
        }
