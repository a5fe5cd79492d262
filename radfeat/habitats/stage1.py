"""Stage-1 supervoxels kept between fitting and applying a habitat model.

Stage 1 (per-patient k-means into supervoxels, :func:`radfeat.habitats.maps.supervoxels`) uses only
the case's own voxels and a fixed seed, so its result depends on the case's input files, how the case
is read and the ``habitats`` settings — nothing from other patients. ``radfeat habitats fit`` computes
it for every training case; :class:`Stage1Store` keeps those results so that applying the model to the
same cases (``habitats apply``, ``extract --habitats``) and refitting in every cross-validation fold
reuse them instead of clustering again. A stored result is used only when its key (input fingerprint,
reading settings, habitat settings, format version) matches and its voxel count equals the case's
tumour voxels on the habitat grid; anything else is recomputed.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from radfeat.habitats.maps import Supervoxels
from radfeat.habitats.settings import HabitatSettings

__all__ = ["Stage1Store", "stage1_key", "STAGE1_DIR"]

#: Sub-folder of a habitat model folder holding its training cases' supervoxels.
STAGE1_DIR = "stage1"
_FORMAT = 1


def stage1_key(row: dict[str, Any], habitat: HabitatSettings, reading: dict[str, Any]) -> str:
    """Hash of what stage 1 of a case depends on: its input files (:func:`radfeat.case.input_fingerprint`),
    how it is read and the habitat settings."""
    from radfeat.case import input_fingerprint
    from radfeat.utils.hashing import stable_hash

    return stable_hash(
        {
            "format": _FORMAT,
            "inputs": input_fingerprint(row),
            "reading": reading,
            "habitats": asdict(habitat),
        }
    )


class Stage1Store:
    """Supervoxels per case, in ``folder`` (one ``<case>.npz`` each, written atomically) or, with
    ``folder=None``, in memory (cross-validation within one process)."""

    def __init__(self, folder: str | Path | None = None, *, read_only: bool = False) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.read_only = read_only
        self._memory: dict[str, tuple[str, Supervoxels]] = {}

    def _path(self, case_id: str) -> Path:
        assert self.folder is not None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in case_id)
        return self.folder / f"{safe}.npz"

    def load(self, case_id: str, key: str, n_voxels: int) -> Supervoxels | None:
        """The stored supervoxels of ``case_id`` when stored under ``key`` for ``n_voxels`` voxels."""
        if self.folder is None:
            key_sv = self._memory.get(case_id)
            found = key_sv[1] if key_sv is not None and key_sv[0] == key else None
        else:
            path = self._path(case_id)
            if not path.exists():
                return None
            try:
                with np.load(path, allow_pickle=False) as data:
                    if str(data["key"]) != key or str(data["case_id"]) != case_id:
                        return None
                    found = Supervoxels(
                        data["labels"].astype(np.int64),
                        data["means"],
                        data["raw_means"],
                        data["sizes"],
                    )
            except (OSError, KeyError, ValueError):  # unreadable or foreign file: recompute
                return None
        if found is None or found.labels.shape != (n_voxels,):
            return None
        return found

    def save(self, case_id: str, key: str, sv: Supervoxels) -> None:
        """Keep ``sv`` for ``case_id`` under ``key`` (no-op when read-only)."""
        if self.read_only:
            return
        if self.folder is None:
            self._memory[case_id] = (key, sv)
            return
        from radfeat.utils.atomic import atomic_path

        self.folder.mkdir(parents=True, exist_ok=True)
        n = int(sv.means.shape[0])
        labels = sv.labels.astype(np.uint16 if n < 2**16 else np.int64)
        with atomic_path(self._path(case_id)) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                key=np.array(key),
                case_id=np.array(case_id),
                labels=labels,
                means=sv.means,
                raw_means=sv.raw_means,
                sizes=sv.sizes,
            )
