"""Whole-tumour radiomics of CT and PET (pyradiomics definitions, :class:`RadiomicsEngine`)."""

from __future__ import annotations

import copy
from typing import Any

from radfeat.case import case_reading_settings
from radfeat.features.radiomics import RadiomicsEngine, column_name, matrix_backend
from radfeat.providers.base import FeatureProvider, stage

__all__ = ["WholeTumourRadiomics"]


class WholeTumourRadiomics(FeatureProvider):
    """``ct_tumour_<pyradiomics key>`` and ``pet_tumour_<pyradiomics key>`` columns (pyradiomics' values;
    with ``engine: radfeat`` the texture and first-order features come from radfeat's own matrices).

    Uses the settings' ``ct`` and ``pet`` blocks (``null`` switches a modality off) and how cases are
    read (:func:`radfeat.case.case_reading_settings`). PET radiomics are computed when the case has a PET.
    """

    name = "radiomics"
    version = 1
    libraries = ("radfeat", "pyradiomics-bhklab", "SimpleITK", "PyWavelets", "numpy")
    pet = None

    def __init__(self, settings: dict[str, Any]) -> None:
        self.blocks = {m: copy.deepcopy(settings.get(m)) for m in ("ct", "pet")}
        self.reading = case_reading_settings(settings)
        self.matrices = matrix_backend(settings)

    def settings_used(self) -> dict[str, Any]:
        used = {"blocks": self.blocks, "reading": self.reading}
        if self.matrices != "pyradiomics":  # (pyradiomics' own matrices: the keys of earlier versions)
            used["matrices"] = self.matrices
        return used

    def engines(self) -> dict[str, RadiomicsEngine]:
        return self.worker_state(
            "engines",
            lambda: {m: RadiomicsEngine(b, matrices=self.matrices) for m, b in self.blocks.items() if b},
        )

    def compute(self, case, timings: dict | None = None) -> dict[str, float]:
        engines = self.engines()
        out: dict[str, float] = {}
        if "ct" in engines:
            with stage("ct_radiomics", case.case_id, timings):
                values = engines["ct"].extract(case.ct, {"tumour": case.mask})["tumour"]
                out.update({column_name("ct", "tumour", k): v for k, v in values.items()})
        if "pet" in engines and case.pet is not None:
            with stage("pet_radiomics", case.case_id, timings):
                values = engines["pet"].extract(case.pet, {"tumour": case.pet_mask})["tumour"]
                out.update({column_name("pet", "tumour", k): v for k, v in values.items()})
        return out
