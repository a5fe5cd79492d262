"""Whole-tumour IBSI 1 features of CT and PET from radfeat's own engine (:mod:`radfeat.features.ibsi`)."""

from __future__ import annotations

import copy
from typing import Any

import SimpleITK as sitk

from radfeat.case import case_reading_settings
from radfeat.features.ibsi import DEFAULT_BLOCKS, engine_runs, ibsi_features
from radfeat.providers.base import FeatureProvider, stage

__all__ = ["IBSIRadiomics", "ibsi_blocks", "IBSI_IMAGE_TYPE", "ibsi_column"]

#: The image-type part of the engine's column names: ``ct_tumour_ibsi_cm_joint_max_3D_avg``.
IBSI_IMAGE_TYPE = "ibsi"


def ibsi_column(modality: str, tag: str, image_type: str = IBSI_IMAGE_TYPE) -> str:
    """Column of an IBSI tag: ``{modality}_tumour_ibsi_{tag}``, or ``…_ibsi-<filter>_{tag}`` for a
    filter's response map (the tag's prefix is the family)."""
    return f"{modality}_tumour_{image_type}_{tag}"


def ibsi_blocks(settings: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The engine's settings per modality: the settings' ``ibsi`` block over
    :data:`~radfeat.features.ibsi.DEFAULT_BLOCKS` (a modality set to ``null`` is off)."""
    block = settings.get("ibsi") or {}
    out: dict[str, dict[str, Any] | None] = {}
    for modality in ("ct", "pet"):
        if modality in block and block[modality] is None:
            out[modality] = None
        else:
            out[modality] = {
                **copy.deepcopy(DEFAULT_BLOCKS[modality]),
                **copy.deepcopy(block.get(modality) or {}),
            }
    return out


class IBSIRadiomics(FeatureProvider):
    """``ct_tumour_ibsi_<IBSI tag>`` and ``pet_tumour_ibsi_<IBSI tag>`` columns (settings ``ibsi.ct`` /
    ``ibsi.pet`` over the engine's defaults, see :func:`ibsi_blocks`), and ``…_ibsi-<name>_<tag>`` for
    each IBSI 2 filter in the block's ``filters``. PET features are computed when the case has a PET."""

    name = "ibsi"
    version = 1
    libraries = ("radfeat", "numpy", "scipy", "SimpleITK")
    pet = None

    def __init__(self, settings: dict[str, Any]) -> None:
        self.blocks = ibsi_blocks(settings)
        self.reading = case_reading_settings(settings)

    def settings_used(self) -> dict[str, Any]:
        return {"blocks": self.blocks, "reading": self.reading}

    def compute(self, case, timings: dict | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        images = {"ct": (case.ct, case.mask), "pet": (case.pet, case.pet_mask)}
        for modality, block in self.blocks.items():
            image, mask = images[modality]
            if block is None or image is None:
                continue
            array = sitk.GetArrayViewFromImage(image)
            roi = sitk.GetArrayViewFromImage(mask) > 0
            for image_type, settings in engine_runs(block):
                with stage(f"{modality}_ibsi", case.case_id, timings):
                    values = ibsi_features(array, roi, image.GetSpacing(), settings)
                out.update({ibsi_column(modality, tag, image_type): v for tag, v in values.items()})
        return out
