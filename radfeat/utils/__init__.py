"""Shared utilities used by every layer (radfeat, models, the CLI): public, small, dependency-light.

* :mod:`radfeat.utils.atomic` — crash-safe writes (temporary file, fsync, rename) and file pairs that
  appear together or not at all;
* :mod:`radfeat.utils.threads` — cap ITK/BLAS/OpenMP threads in worker processes;
* :mod:`radfeat.utils.hashing` — stable content hashes for cache keys and provenance;
* :mod:`radfeat.utils.versions` — library versions (part of cache keys and provenance).
"""

from radfeat.utils.atomic import atomic_path, read_pair_manifest, write_image, write_pair, write_text
from radfeat.utils.hashing import file_digest, stable_hash
from radfeat.utils.threads import THREAD_ENV, thread_caps
from radfeat.utils.versions import library_versions

__all__ = [
    "atomic_path",
    "write_text",
    "write_image",
    "write_pair",
    "read_pair_manifest",
    "stable_hash",
    "file_digest",
    "thread_caps",
    "THREAD_ENV",
    "library_versions",
]
