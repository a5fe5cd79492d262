"""Extraction settings: one validated YAML file with PET/CT defaults; its hash keys every cache."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULT_SETTINGS_PATH", "load_settings", "settings_hash", "validate_settings", "dump_settings"]

DEFAULT_SETTINGS_PATH = Path(__file__).with_name("default.yaml")
MODALITIES = ("ct", "pet")
_TOP_KEYS = {"version", *MODALITIES, "pet_descriptors", "habitats", "run", "engine", "ibsi"}
_DESCRIPTOR_KEYS = {
    "enabled",
    "peak_sphere_ml",
    "peak_sphere_rule",
    "mtv_percent_of_max",
    "mtv_absolute_suv",
    "heterogeneity_factor_range",
}
_RUN_KEYS = {"timeout_s", "mask_label", "suv_variant"}


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if key in ("imageType", "featureClass"):
            out[key] = copy.deepcopy(value)  # replace whole sets, never merge feature lists
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate_settings(settings: dict[str, Any], source: str = "settings") -> dict[str, Any]:
    """Check every key; pyradiomics validates each modality block against its schema.

    Raises
    ------
    ValueError
        Naming the offending key, where it came from and the valid choices.
    """
    unknown = set(settings) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{source}: unknown top-level key(s) {sorted(unknown)}; valid: {sorted(_TOP_KEYS)}")
    for modality in MODALITIES:
        block = settings.get(modality)
        if block is None:
            continue
        from radfeat.features.radiomics import make_extractor

        try:
            make_extractor(block)
        except ValueError as exc:
            raise ValueError(f"{source}: section {modality!r}: {exc}") from None
    from radfeat.features.ibsi import DEFAULT_BLOCKS, ENGINES, engine_runs

    engine = settings.get("engine", "pyradiomics")
    if engine not in ENGINES:
        raise ValueError(f"{source}: engine {engine!r} not known; valid: {list(ENGINES)}")
    ibsi = settings.get("ibsi") or {}
    if not isinstance(ibsi, dict) or set(ibsi) - set(MODALITIES):
        raise ValueError(f"{source}: ibsi must map ct / pet to engine settings, got {ibsi!r}")
    for modality, block in ibsi.items():
        if block is not None:
            try:
                engine_runs({**DEFAULT_BLOCKS[modality], **block})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{source}: ibsi.{modality}: {exc}") from None
    descriptors = settings.get("pet_descriptors") or {}
    bad = set(descriptors) - _DESCRIPTOR_KEYS
    if bad:
        raise ValueError(
            f"{source}: pet_descriptors: unknown key(s) {sorted(bad)}; valid: {sorted(_DESCRIPTOR_KEYS)}"
        )
    from radfeat.features.pet import PEAK_SPHERE_RULES

    rule = descriptors.get("peak_sphere_rule", "voxel_centre")
    if rule not in PEAK_SPHERE_RULES:
        raise ValueError(
            f"{source}: pet_descriptors.peak_sphere_rule {rule!r} not known; valid: {list(PEAK_SPHERE_RULES)}"
        )
    lo, hi = descriptors.get("heterogeneity_factor_range", [40, 80])
    if not 0 < lo < hi <= 100:
        raise ValueError(
            f"{source}: heterogeneity_factor_range must satisfy 0 < lo < hi <= 100, got {[lo, hi]}"
        )
    try:
        from radfeat.habitats.settings import HabitatSettings

        HabitatSettings.from_settings(settings)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from None
    bad = set(settings.get("run") or {}) - _RUN_KEYS
    if bad:
        raise ValueError(f"{source}: run: unknown key(s) {sorted(bad)}; valid: {sorted(_RUN_KEYS)}")
    from radfeat.dicom.suv import SUV_VARIANTS

    variant = (settings.get("run") or {}).get("suv_variant", "bw")
    if variant not in SUV_VARIANTS:
        raise ValueError(f"{source}: run.suv_variant {variant!r} not known; valid: {list(SUV_VARIANTS)}")
    return settings


def load_settings(path: str | Path | None = None) -> dict[str, Any]:
    """The default settings, overridden by the YAML file at ``path`` (validated).

    Sections ``ct`` / ``pet`` may be ``null`` to switch a modality off; ``imageType`` and
    ``featureClass`` replace the defaults wholesale, ``setting`` keys override one by one.
    """
    defaults = yaml.safe_load(DEFAULT_SETTINGS_PATH.read_text())
    if path is None:
        return validate_settings(defaults, str(DEFAULT_SETTINGS_PATH))
    path = Path(path)
    try:
        user = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read settings file {path}: {exc}") from exc
    if not isinstance(user, dict):
        raise ValueError(f"settings file {path} must hold a mapping at top level")
    merged = _merge(defaults, {k: v for k, v in user.items() if v is not None})
    for modality in MODALITIES:
        if modality in user and user[modality] is None:
            merged[modality] = None
    return validate_settings(merged, str(path))


def settings_hash(settings: dict[str, Any]) -> str:
    """SHA-256 (16 hex digits) of the canonical JSON of the settings: the cache and provenance key."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def dump_settings(settings: dict[str, Any]) -> str:
    """YAML text of the effective settings."""
    return yaml.safe_dump(settings, sort_keys=False)
