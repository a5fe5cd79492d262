"""Atomic file writes: write to a temporary sibling, fsync it, rename it over the target, fsync the folder.

A reader never sees a half-written file. Files that belong together (a CSV table and its metadata, a
model's arrays and its description) are written with :func:`write_pair`: the companion JSON records
the SHA-256 of every member, and :func:`read_pair_manifest` refuses a set whose members do not match
(an interrupted update), so a pair appears together or not at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "write_text",
    "write_image",
    "write_pair",
    "read_pair_manifest",
    "IncompleteWriteError",
]


class IncompleteWriteError(OSError):
    """Files written together do not match each other (an interrupted or mixed update)."""


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffixes); fsync and rename it onto ``path`` on success.

    The temporary name keeps the full suffix (``.nii.gz``) so writers that pick a format by
    extension still work. On error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        if tmp.exists():
            _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_image(image: Any, path: str | Path, compress: bool = True) -> Path:
    """Write a SimpleITK image atomically (format from the extension)."""
    import SimpleITK as sitk

    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_pair(
    members: dict[str, Callable[[Path], None]], manifest_path: str | Path, meta: dict[str, Any]
) -> Path:
    """Write several files and the JSON that describes them as one unit.

    Parameters
    ----------
    members : dict of path → writer
        Each writer writes its file to the temporary path it is given.
    manifest_path : path
        The JSON written last: ``meta`` plus ``"members": {file name: sha256}``.

    A reader (:func:`read_pair_manifest`) checks every member against its recorded SHA-256, so a crash
    between two renames leaves a set that is refused, never a mixed one.
    """
    from radfeat.utils.hashing import file_digest

    digests = {}
    for target, writer in members.items():
        target = Path(target)
        with atomic_path(target) as tmp:
            writer(tmp)
            digests[target.name] = file_digest(tmp)
    write_text(json.dumps({**meta, "members": digests}, indent=2, default=str), manifest_path)
    return Path(manifest_path)


def read_pair_manifest(manifest_path: str | Path) -> dict[str, Any]:
    """The JSON written by :func:`write_pair`, after checking each member's SHA-256.

    Raises
    ------
    IncompleteWriteError
        When a member is missing or differs from what the JSON recorded.
    """
    from radfeat.utils.hashing import file_digest

    manifest_path = Path(manifest_path)
    meta = json.loads(manifest_path.read_text())
    for name, digest in (meta.get("members") or {}).items():
        member = manifest_path.parent / name
        if not member.exists():
            raise IncompleteWriteError(
                f"{member} is missing although {manifest_path.name} lists it (interrupted write); "
                "write the files again"
            )
        if file_digest(member) != digest:
            raise IncompleteWriteError(
                f"{member} does not match {manifest_path.name} (interrupted or mixed update); "
                "write the files again"
            )
    return meta
