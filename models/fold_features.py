"""Features that must be learned inside each training fold, computed per outer fold.

Habitat features depend on the population habitat model, which is fitted on training cases. Passing a
:class:`HabitatFoldFeatures` to :func:`models.cv.cross_validate` refits that model on every outer
training part (reading only those cases' images) and computes the habitat features of the fold's
training and test cases with it; the test cases never influence the model that describes them.

Inner tuning inside an outer fold uses the outer-training habitat model for all inner folds (refitting
per inner fold would multiply the cost by the inner fold count); the outer estimate stays honest.

A fold-feature hook must give a content :meth:`cache_key` (its inputs' fingerprints, the settings it
uses and its code version): cached folds are reused only when that key is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["HabitatFoldFeatures"]

#: Bump when the fold-wise habitat computation changes.
VERSION = 1


@dataclass
class HabitatFoldFeatures:
    """Fold-wise habitat features from manifest rows (absolute paths) and radfeat settings.

    Calling it with ``(train_ids, case_ids)`` fits the habitat model on ``train_ids`` only and returns
    a DataFrame of numeric habitat features (``hab_*``, and per-habitat radiomics unless
    ``settings["habitats"]["radiomics"]`` is false) indexed by ``case_ids``. ``fitted_on`` records the
    training ids of every model fitted (the leakage audit trail).
    """

    rows: list[dict]
    settings: dict[str, Any]
    fitted_on: list[list[str]] = field(default_factory=list)
    #: Stage-1 supervoxels of each case, computed once and reused by every fold (they depend on the
    #: case alone: no information crosses between patients or folds).
    stage1: Any = field(default=None, repr=False)

    def cache_key(self) -> str:
        """Hash of every case's input fingerprint, the settings habitats use and the code version."""
        from radfeat.case import input_fingerprint
        from radfeat.utils.hashing import stable_hash
        from radfeat.utils.versions import library_versions

        used = {
            "habitats": self.settings.get("habitats"),
            "radiomics": {m: self.settings.get(m) for m in ("ct", "pet")}
            if (self.settings.get("habitats") or {}).get("radiomics", True)
            else None,
            "mask_label": (self.settings.get("run") or {}).get("mask_label", 1),
        }
        inputs = sorted((str(r["case_id"]), input_fingerprint(r)) for r in self.rows)
        return stable_hash(
            {
                "hook": "habitats",
                "version": VERSION,
                "inputs": inputs,
                "settings": used,
                "libraries": library_versions("radfeat", "pyradiomics-bhklab", "scikit-learn", "SimpleITK"),
            }
        )

    def __call__(self, train_ids, case_ids) -> pd.DataFrame:
        from radfeat.habitats.stage1 import Stage1Store
        from radfeat.habitats.workflow import fit_habitat_model, habitat_case_features

        if self.stage1 is None:
            self.stage1 = Stage1Store()
        train_ids = sorted(map(str, train_ids))
        model = fit_habitat_model(self.rows, train_ids, self.settings, stage1=self.stage1)
        self.fitted_on.append(list(model.train_ids_))
        by_id = {str(r["case_id"]): r for r in self.rows}
        features = {}
        for case in map(str, case_ids):
            values = habitat_case_features(by_id[case], model, self.settings, stage1=self.stage1)
            features[case] = {k: v for k, v in values.items() if isinstance(v, (int, float))}
        return pd.DataFrame.from_dict(features, orient="index")
