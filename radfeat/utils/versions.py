"""Installed versions of the libraries a result depends on (cache keys and provenance)."""

from __future__ import annotations

import functools

__all__ = ["library_versions"]


@functools.cache
def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def library_versions(*distributions: str) -> dict[str, str]:
    """``{distribution: version}`` (``"not installed"`` when absent)."""
    return {dist: _version(dist) for dist in distributions}
