"""PET SUV descriptors on the native PET grid (:func:`radfeat.features.pet.pet_descriptors`)."""

from __future__ import annotations

import copy
from typing import Any

import SimpleITK as sitk

from radfeat.case import case_reading_settings
from radfeat.features.pet import pet_descriptors
from radfeat.features.radiomics import column_name
from radfeat.providers.base import FeatureProvider, stage

__all__ = ["PETDescriptors"]


class PETDescriptors(FeatureProvider):
    """``pet_tumour_suv_<descriptor>`` columns (SUVmax, SUVpeak, MTV, TLG, …) of cases with a PET.

    Uses the settings' ``pet_descriptors`` block and how cases are read
    (:func:`radfeat.case.case_reading_settings`).
    """

    name = "pet_descriptors"
    version = 2  # 2: SUVpeak_sphere_ml, peak_sphere_rule
    libraries = ("radfeat", "numpy", "scipy")
    pet = None

    def __init__(self, settings: dict[str, Any]) -> None:
        block = copy.deepcopy(settings.get("pet_descriptors") or {})
        self.enabled = bool(block.pop("enabled", True))
        self.options = block
        self.reading = case_reading_settings(settings)

    def settings_used(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "options": self.options,
            "reading": self.reading,
        }

    def compute(self, case, timings: dict | None = None) -> dict[str, float]:
        if not self.enabled or case.pet is None:
            return {}
        with stage("pet_descriptors", case.case_id, timings):
            values = pet_descriptors(
                sitk.GetArrayViewFromImage(case.pet),
                sitk.GetArrayViewFromImage(case.pet_mask) > 0,
                case.pet.GetSpacing(),
                **self.options,
            )
        return {column_name("pet", "tumour", f"suv_{k}"): v for k, v in values.items()}
