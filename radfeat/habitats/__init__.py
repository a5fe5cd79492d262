"""Habitats (tumour sub-regions): voxel maps → supervoxels → population model → label maps → features.

* :mod:`~radfeat.habitats.settings` — :class:`HabitatSettings`, the ``habitats`` settings block;
* :mod:`~radfeat.habitats.maps` — per-voxel features on a common grid, stage-1 supervoxels, clean-up
  (pure functions of images);
* :mod:`~radfeat.habitats.model` — :class:`HabitatModel`, the stage-2 population model (fit / apply);
* :mod:`~radfeat.habitats.persistence` — model files (NPZ + JSON, checksummed, no pickle);
* :mod:`~radfeat.habitats.workflow` — from manifest rows: fit on training cases only, features of a
  case (volumes, MSI/ITH, per-habitat SUV and radiomics).

Leakage guard: :func:`fit_habitat_model` reads only the training cases it is given; in
cross-validation refit in every training fold (:class:`models.fold_features.HabitatFoldFeatures`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name → submodule. Imported on first use (PEP 562), so that reading the ``habitats`` settings
#: block (every ``radfeat extract``) does not import SciPy's image code.
_EXPORTS = {
    "HabitatMaps": "maps",
    "Supervoxels": "maps",
    "clean_fragments": "maps",
    "local_entropy": "maps",
    "supervoxels": "maps",
    "voxel_feature_maps": "maps",
    "HabitatModel": "model",
    "HabitatSettings": "settings",
    "case_supervoxels": "workflow",
    "fit_habitat_model": "workflow",
    "habitat_case_features": "workflow",
    "habitat_masks": "workflow",
    "habitat_settings": "workflow",
    "labels_dir_for": "workflow",
    "model_summary": "workflow",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"radfeat.habitats.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'radfeat.habitats' has no attribute {name!r}")


if TYPE_CHECKING:
    from radfeat.habitats.maps import (
        HabitatMaps,
        Supervoxels,
        clean_fragments,
        local_entropy,
        supervoxels,
        voxel_feature_maps,
    )
    from radfeat.habitats.model import HabitatModel
    from radfeat.habitats.settings import HabitatSettings
    from radfeat.habitats.workflow import (
        case_supervoxels,
        fit_habitat_model,
        habitat_case_features,
        habitat_masks,
        habitat_settings,
        labels_dir_for,
        model_summary,
    )

__all__ = [
    "HabitatSettings",
    "HabitatMaps",
    "Supervoxels",
    "HabitatModel",
    "local_entropy",
    "voxel_feature_maps",
    "supervoxels",
    "clean_fragments",
    "case_supervoxels",
    "fit_habitat_model",
    "habitat_case_features",
    "habitat_masks",
    "habitat_settings",
    "labels_dir_for",
    "model_summary",
]
