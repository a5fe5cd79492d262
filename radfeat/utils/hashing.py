"""Stable content hashes: cache keys and provenance are derived from content, never from names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["stable_hash", "file_digest"]


def stable_hash(payload: Any, n: int = 16) -> str:
    """SHA-256 (``n`` hex digits) of the canonical JSON of ``payload`` (keys sorted, no whitespace)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:n]


def file_digest(path: str | Path, n: int = 64) -> str:
    """SHA-256 of a file's bytes (``n`` hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]
