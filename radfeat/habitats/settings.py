"""Parameters of the habitat recipe (the ``habitats`` block of the radfeat settings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["HabitatSettings"]


@dataclass(frozen=True)
class HabitatSettings:
    """Parameters of the habitat recipe (defaults from SCIENCE.md)."""

    mode: str = "ct+pet"
    grid_spacing_mm: float | None = 2.0
    hu_clip: tuple[float, float] = (-1000.0, 400.0)
    entropy_box: int = 3
    entropy_bins: int = 32
    winsor: tuple[float, float] = (5.0, 95.0)
    max_supervoxels: int = 50
    voxels_per_supervoxel: int = 20
    k_range: tuple[int, int] = (2, 8)
    method: str = "kmeans"
    min_fragment_voxels: int = 10
    spatial_weight: float = 0.0
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("ct", "ct+pet"):
            raise ValueError(f"habitat mode must be 'ct' or 'ct+pet', got {self.mode!r}")
        if self.method not in ("kmeans", "gmm"):
            raise ValueError(f"habitat method must be 'kmeans' or 'gmm', got {self.method!r}")
        lo, hi = self.k_range
        if not 2 <= lo <= hi:
            raise ValueError(f"k_range must satisfy 2 <= lo <= hi, got {self.k_range}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> HabitatSettings:
        values = dict(values or {})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"habitats: unknown key(s) {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}"
            )
        for key in ("hu_clip", "winsor", "k_range"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> HabitatSettings:
        """The ``habitats`` block of the radfeat settings (its workflow-only ``radiomics`` switch aside)."""
        block = dict(settings.get("habitats") or {})
        block.pop("radiomics", None)
        return cls.from_dict(block)

    @property
    def feature_names(self) -> tuple[str, ...]:
        if self.mode == "ct":
            return ("ct_hu", "ct_entropy")
        return ("ct_hu", "ct_entropy", "suv", "suv_entropy")
