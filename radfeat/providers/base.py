"""The feature-provider contract: one family of features of a :class:`~radfeat.case.Case`.

A provider owns

* ``name`` — unique, used in cache file names and provenance;
* :meth:`~FeatureProvider.settings_used` — **only** the settings that change its values (so editing
  ``run.timeout_s`` or the habitat block does not recompute whole-tumour radiomics);
* ``version`` — bumped when its maths changes; with the libraries it depends on it is part of
  :meth:`~FeatureProvider.cache_key`;
* :meth:`~FeatureProvider.compute` — ``Case → {column: value}``, raising
  :class:`~radfeat.errors.CaseFailure` with a stage name; never a half-filled result;
* ``pet`` — whether it needs the PET (``True``), uses it when present (``None``) or not at all
  (``False``), so the case loader reads only what is needed.

Providers are picklable (workers receive them); heavy state (radiomics engines, a habitat model) is
built lazily in each worker and never pickled.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from radfeat.errors import CaseFailure, RadfeatError
from radfeat.utils.hashing import stable_hash
from radfeat.utils.versions import library_versions

__all__ = ["FeatureProvider", "stage", "pet_need", "library_versions"]


#: Heavy per-process state of providers (engines, models), keyed by (cache key, what).
_WORKER_STATE: dict[tuple[str, str], Any] = {}


class FeatureProvider(ABC):
    """Base class of feature providers (see the module docstring for the contract)."""

    name: str = "provider"
    version: int = 1
    #: Distributions whose version is part of the cache key.
    libraries: tuple[str, ...] = ("radfeat",)
    pet: bool | None = None

    @abstractmethod
    def settings_used(self) -> dict[str, Any]:
        """The settings (and fitted models' fingerprints) that determine this provider's values."""

    @abstractmethod
    def compute(self, case) -> dict[str, float]:
        """Features of one case."""

    def cache_key(self) -> str:
        """Content key: provider name and version, the settings it uses, its libraries' versions."""
        return stable_hash(
            {
                "provider": self.name,
                "version": self.version,
                "settings": self.settings_used(),
                "libraries": library_versions(*self.libraries),
            }
        )

    def worker_state(self, what: str, build):
        """Per-process cache of heavy state (built once per worker and cache key, never pickled)."""
        key = (self.cache_key(), what)
        if key not in _WORKER_STATE:
            if len(_WORKER_STATE) > 32:
                _WORKER_STATE.clear()
            _WORKER_STATE[key] = build()
        return _WORKER_STATE[key]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, key={self.cache_key()})"


_HINTS = {
    "ct_radiomics": "a very small or thin mask cannot give texture features; check the segmentation",
    "pet_radiomics": "a tumour of a few PET voxels cannot give texture; disable PET radiomics "
    "(pet: null in the settings) or check the mask",
    "pet_descriptors": "check that the PET is in SUV and the mask overlaps the tumour",
    "habitats": "a tumour of a few voxels cannot be split into habitats; check the mask",
}


@contextmanager
def stage(name: str, case_id: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Time a stage; turn radfeat and numeric/library errors raised in it into a :class:`CaseFailure`."""
    t0 = time.perf_counter()
    try:
        yield
    except CaseFailure:
        raise
    except RadfeatError as exc:
        raise CaseFailure(exc.message, stage=name, case_id=case_id, path=exc.path, hint=exc.hint) from exc
    except (ValueError, RuntimeError, ArithmeticError, MemoryError, FileNotFoundError) as exc:
        raise CaseFailure(
            f"{type(exc).__name__}: {exc}",
            stage=name,
            case_id=case_id,
            hint=_HINTS.get(name, "see the error message"),
        ) from exc
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


def pet_need(providers) -> bool | None:
    """What the case loader must read of the PET for these providers: required (``True``) if any
    requires it, else if present (``None``) if any uses it, else not at all (``False``)."""
    needs = [p.pet for p in providers]
    if any(n is True for n in needs):
        return True
    if any(n is None for n in needs):
        return None
    return False
