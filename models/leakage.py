"""Leakage guards at the joins: features learned from cases that are later tested on.

Habitat features (``hab_*``, ``ct_hab{i}_*``, ``pet_hab{i}_*``) come from a population habitat model
fitted on some cases; a table's provenance records which (``habitat_model.train_ids``). Using those
columns in a cross-validation whose test folds contain any of those cases leaks the test cases into
their own features. :func:`check_habitat_columns` refuses that, naming the overlap and the fixes:
refit the habitat model inside every training fold (``--habitats-manifest``), drop the columns, or
fit the habitat model on an independent cohort.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from radfeat.errors import RadfeatError

__all__ = [
    "LeakageError",
    "HABITAT_COLUMN",
    "habitat_columns",
    "check_habitat_columns",
    "drop_habitat_columns",
]

#: Columns whose values depend on a fitted habitat model.
HABITAT_COLUMN = re.compile(r"^(hab_|ct_hab\d|pet_hab\d)")


class LeakageError(RadfeatError, ValueError):
    """Features would be learned from cases the evaluation tests on."""


def habitat_columns(columns: Iterable[str]) -> list[str]:
    """The habitat-model-dependent columns among ``columns``."""
    return [c for c in columns if isinstance(c, str) and HABITAT_COLUMN.match(c)]


def check_habitat_columns(
    columns: Sequence[str],
    case_ids: Iterable[str],
    provenance: dict | None,
    *,
    fix: str = "refit the habitat model inside every training fold (radfeat benchmark "
    "--habitats-manifest MANIFEST), drop the habitat columns (--no-habitat-columns), or fit the "
    "habitat model on an independent cohort",
) -> None:
    """Refuse habitat columns whose habitat model was fitted on any of ``case_ids`` (or on unknown cases).

    Raises
    ------
    LeakageError
        Naming how many columns, the overlapping cases and the fix.
    """
    cols = habitat_columns(columns)
    if not cols:
        return
    info = (provenance or {}).get("habitat_model") or {}
    train_ids = info.get("train_ids")
    if train_ids is None:
        raise LeakageError(
            f"the table has {len(cols)} habitat column(s) (e.g. {cols[0]}) but no record of the cases "
            "their habitat model was fitted on, so they may leak test cases into their own features",
            hint=fix,
        )
    ids = {str(c) for c in case_ids}
    overlap = sorted(ids & {str(t) for t in train_ids})
    if overlap:
        raise LeakageError(
            f"{len(cols)} habitat column(s) (e.g. {cols[0]}) come from a habitat model fitted on "
            f"{len(overlap)} of the {len(ids)} cases evaluated here ({', '.join(overlap[:5])}"
            f"{', …' if len(overlap) > 5 else ''}); each of them is tested on features learned from "
            "itself",
            hint=fix,
        )


def drop_habitat_columns(data, reason: str):
    """A copy of a :class:`models.data.Dataset` without its habitat columns, listed as dropped."""
    from dataclasses import replace

    stale = habitat_columns(data.X.columns)
    if not stale:
        return data
    return replace(
        data, X=data.X.drop(columns=stale), dropped={**data.dropped, **dict.fromkeys(stale, reason)}
    )
