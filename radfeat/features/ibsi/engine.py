"""radfeat's own IBSI 1 feature engine: one image and ROI in, every IBSI feature (by tag) out.

The steps follow IBSI 1's processing scheme: interpolation (grid aligned by centre), partial-volume mask,
re-segmentation (range, outliers) giving the intensity mask, discretisation (fixed bin number or size),
then morphology (morphological mask), local intensity, intensity statistics, intensity histogram,
intensity-volume histogram and the six texture families under every aggregation.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass, field

import numpy as np

from radfeat.features.ibsi.aggregation import TEXTURE_FAMILIES, texture_features
from radfeat.features.ibsi.intensity import (
    intensity_histogram,
    intensity_statistics,
    intensity_volume_histogram,
)
from radfeat.features.ibsi.morphology import morphology_features
from radfeat.features.ibsi.preprocessing import (
    discretise_fixed_bin_number,
    discretise_fixed_bin_size,
    interpolate,
    resegment,
)
from radfeat.features.pet import suv_peak

__all__ = ["IBSISettings", "ibsi_features", "engine_runs", "FAMILIES", "DEFAULT_BLOCKS", "ENGINES"]

FAMILIES = ("morphology", "local_intensity", "statistics", "histogram", "ivh", *TEXTURE_FAMILIES)
_DISCRETISATIONS = ("none", "fixed_bin_size", "fixed_bin_number")
#: Values of the settings' ``engine`` key: which engine computes the whole-tumour radiomics.
ENGINES = ("pyradiomics", "radfeat", "ibsi", "both")
#: The engine's settings per modality when the settings' ``ibsi`` block does not give them: CT as IBSI
#: CT-phantom configuration C (2 mm isotropic, linear, HU rounded, [-1000, 400] HU, 25 HU bins, IVH in
#: 2.5 HU bins), PET on a 3 mm grid with 0.25 SUV bins (IVH 0.1 SUV).
DEFAULT_BLOCKS: dict[str, dict] = {
    "ct": {
        "new_spacing_mm": [2.0, 2.0, 2.0], "interpolation_order": 1, "round_intensities": True,
        "resegment_range": [-1000, 400], "discretisation": "fixed_bin_size", "bin_width": 25,
        "ivh_discretisation": "fixed_bin_size", "ivh_bin_width": 2.5,
    },
    "pet": {
        "new_spacing_mm": [3.0, 3.0, 3.0], "interpolation_order": 1, "discretisation": "fixed_bin_size",
        "bin_width": 0.25, "ivh_discretisation": "fixed_bin_size", "ivh_bin_width": 0.1,
    },
}  # fmt: skip


@dataclass(frozen=True)
class IBSISettings:
    """Processing and feature settings of the IBSI engine (IBSI 1 chapter 2 and table 5.1 names).

    Attributes:
        new_spacing_mm: (x, y, z) target voxel size in mm, or None for no interpolation; keep the z
            spacing of the image for in-slice (2D) interpolation.
        interpolation_order: 1 (linear) or 3 (cubic spline) for the image; the mask is linear.
        mask_threshold: partial-volume threshold of the interpolated mask.
        round_intensities: round interpolated intensities to integers (CT in HU).
        resegment_range: (lower, upper) intensity bounds of the intensity mask; None for none.
        outlier_sigma: also drop voxels outside mean ± this many SD; None for none.
        discretisation / bin_width / bin_count: texture and histogram grey levels ("none" takes the
            intensities as grey levels, as the IBSI digital phantom does).
        ivh_discretisation / ivh_bin_width / ivh_bin_count: the same for the intensity-volume histogram.
        families: which of :data:`FAMILIES` to compute.
        filter: an IBSI 2 filter (``{"kind": "laws", "kernel": "L5E5E5", …}``, see
            :func:`radfeat.features.ibsi.filters.apply_filter`) applied to the (interpolated) image; the
            intensity features are then those of its response map inside the intensity mask, which is
            still re-segmented on the unfiltered image (IBSI 2).
        peak_sphere_ml: sphere of the local and global intensity peaks (1 mL: radius 6.2 mm).
        peak_sphere_rule: ``voxel_centre`` (IBSI) or ``exact_volume`` (partial-volume weights, exactly
            ``peak_sphere_ml``), see :data:`radfeat.features.pet.PEAK_SPHERE_RULES`.
        ngldm_alpha: NGLDM coarseness (grey levels within which neighbours depend).
    """

    new_spacing_mm: tuple[float, float, float] | None = None
    interpolation_order: int = 1
    mask_threshold: float = 0.5
    round_intensities: bool = False
    resegment_range: tuple[float | None, float | None] | None = None
    outlier_sigma: float | None = None
    discretisation: str = "fixed_bin_number"
    bin_width: float = 25.0
    bin_count: int = 32
    ivh_discretisation: str = "none"
    ivh_bin_width: float = 2.5
    ivh_bin_count: int = 1000
    families: tuple[str, ...] = field(default=FAMILIES)
    filter: dict | None = None
    peak_sphere_ml: float = 1.0
    peak_sphere_rule: str = "voxel_centre"
    ngldm_alpha: int = 0

    @classmethod
    def from_mapping(cls, block: dict) -> IBSISettings:
        """Settings from a YAML / JSON mapping (lists become tuples); ``ValueError`` names an unknown key."""
        known = set(cls.__dataclass_fields__)
        unknown = set(block) - known
        if unknown:
            raise ValueError(f"unknown IBSI engine setting(s) {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in block.items()})

    def __post_init__(self) -> None:
        for name in ("discretisation", "ivh_discretisation"):
            if getattr(self, name) not in _DISCRETISATIONS:
                raise ValueError(f"{name} must be one of {_DISCRETISATIONS}, not {getattr(self, name)!r}")
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown feature families {sorted(unknown)}; choose from {FAMILIES}")
        from radfeat.features.pet import PEAK_SPHERE_RULES

        if self.peak_sphere_rule not in PEAK_SPHERE_RULES:
            raise ValueError(
                f"peak_sphere_rule must be one of {PEAK_SPHERE_RULES}, not {self.peak_sphere_rule!r}"
            )
        if self.interpolation_order not in (0, 1, 3):
            raise ValueError("interpolation_order must be 0 (nearest), 1 (linear) or 3 (cubic spline)")


_FILTER_NAME = re.compile(r"^[A-Za-z0-9-]+$")


def _check_filter(name: str, spec: dict) -> None:
    from radfeat.features.ibsi.filters import FILTERS

    if not isinstance(spec, dict) or spec.get("kind") not in FILTERS:
        raise ValueError(f"filter {name!r}: give kind, one of {sorted(FILTERS)}")
    accepted = set(inspect.signature(FILTERS[spec["kind"]]).parameters) - {"image", "spacing_zyx"}
    unknown = set(spec) - accepted - {"kind", "families", "by_slice"}
    if unknown:
        raise ValueError(f"filter {name!r} ({spec['kind']}): unknown option(s) {sorted(unknown)}; "
                         f"valid: {sorted(accepted)}")  # fmt: skip


def engine_runs(block: dict) -> list[tuple[str, IBSISettings]]:
    """(image type, settings) of every computation a settings block asks for: ``ibsi`` for the image
    itself, then ``ibsi-<name>`` for each entry of its ``filters`` mapping (an IBSI 2 filter spec, see
    :func:`radfeat.features.ibsi.filters.apply_filter`, with optional ``families``, default intensity
    statistics only, as IBSI 2 reports them). ``ValueError`` names a bad filter or option."""
    block = dict(block)
    filters = block.pop("filters", None) or {}
    base = IBSISettings.from_mapping(block)
    runs = [("ibsi", base)]
    for name, spec in filters.items():
        if not _FILTER_NAME.match(str(name)):
            raise ValueError(
                f"filter name {name!r}: letters, digits and '-' only (it becomes part of column names)"
            )
        _check_filter(name, spec)
        spec = dict(spec)
        families = tuple(spec.pop("families", ("statistics",)))
        runs.append((f"ibsi-{name}", dataclasses.replace(base, filter=spec, families=families)))
    return runs


def _discretise(
    values: np.ndarray, method: str, width: float, count: int, minimum: float | None
) -> tuple[np.ndarray, int]:
    """(grey levels, number of grey levels N_g) of the ROI's intensities."""
    if method == "fixed_bin_number":
        return discretise_fixed_bin_number(values, count), count
    if method == "fixed_bin_size":
        levels = discretise_fixed_bin_size(values, width, minimum)
        return levels, int(levels.max())
    levels = np.rint(values).astype(np.int64)
    if levels.min() < 1:
        raise ValueError(
            "discretisation 'none' needs integer intensities ≥ 1 (grey levels); choose a bin width or count"
        )
    return levels, int(levels.max())


def _ivh(
    values: np.ndarray, settings: IBSISettings, minimum: float | None, maximum: float | None
) -> dict[str, float]:
    if settings.ivh_discretisation == "fixed_bin_number":
        levels = discretise_fixed_bin_number(values, settings.ivh_bin_count)
        return intensity_volume_histogram(levels, 1.0, 1.0, float(settings.ivh_bin_count))
    if settings.ivh_discretisation == "fixed_bin_size":
        lo = float(values.min()) if minimum is None else minimum
        width = settings.ivh_bin_width
        centres = lo + (discretise_fixed_bin_size(values, width, lo) - 0.5) * width  # bin centres
        hi_level = discretise_fixed_bin_size(
            np.array([values.max() if maximum is None else maximum]), width, lo
        )[0]
        return intensity_volume_histogram(centres, width, lo + 0.5 * width, lo + (hi_level - 0.5) * width)
    return intensity_volume_histogram(values, 1.0, minimum, maximum)


def ibsi_features(
    image: np.ndarray,
    mask: np.ndarray,
    spacing_xyz: tuple[float, float, float],
    settings: IBSISettings | None = None,
) -> dict[str, float]:
    """Every IBSI 1 feature of ``settings.families`` for a (z, y, x) image (HU, SUV, …) and boolean ROI
    mask; ``spacing_xyz`` in mm (SimpleITK order). Keys are IBSI tags (``morph_volume``,
    ``cm_joint_max_3D_avg`` …); lengths mm, areas mm², volumes mm³."""
    settings = settings or IBSISettings()
    spacing_zyx = tuple(float(s) for s in spacing_xyz)[::-1]
    image = np.asarray(image, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    if not mask.any():
        raise ValueError("the ROI mask is empty")
    if settings.new_spacing_mm is not None:
        new_zyx = tuple(float(s) for s in settings.new_spacing_mm)[::-1]
        image, mask = interpolate(
            image, mask, spacing_zyx, new_zyx, settings.interpolation_order,  # type: ignore[arg-type]
            settings.mask_threshold, settings.round_intensities,
        )  # fmt: skip
        spacing_zyx = new_zyx
        if not mask.any():
            raise ValueError("the ROI mask is empty after interpolation")
    intensity_mask = resegment(image, mask, settings.resegment_range, settings.outlier_sigma)
    if not intensity_mask.any():
        raise ValueError("no ROI voxel is left after re-segmentation; widen resegment_range")
    if settings.filter is not None:
        from radfeat.features.ibsi.filters import apply_filter

        image = apply_filter(image, spacing_zyx, settings.filter)  # type: ignore[arg-type]
    # Crop to the ROI (the peak sphere needs a margin of image around it).
    margin = [int(np.ceil(8.0 / s)) for s in spacing_zyx]
    nz = np.nonzero(mask)
    box = tuple(
        slice(max(0, int(a.min()) - m), min(n, int(a.max()) + m + 1))
        for a, m, n in zip(nz, margin, image.shape, strict=True)
    )
    image, mask, intensity_mask = image[box], mask[box], intensity_mask[box]
    values = image[intensity_mask]
    lower, upper = settings.resegment_range or (None, None)
    if settings.filter is not None:
        lower = upper = None  # the range bounds the unfiltered intensities, not the response
    families = settings.families
    out: dict[str, float] = {}
    if "morphology" in families:
        out.update(morphology_features(mask, intensity_mask, image, spacing_zyx))  # type: ignore[arg-type]
    if "local_intensity" in families:
        local, global_ = suv_peak(
            image, intensity_mask, spacing_zyx[::-1], settings.peak_sphere_ml, settings.peak_sphere_rule
        )
        out.update({"loc_peak_loc": local, "loc_peak_glob": global_})
    if "statistics" in families:
        out.update(intensity_statistics(values))
    levels_roi, n_levels = _discretise(
        values, settings.discretisation, settings.bin_width, settings.bin_count, lower
    )
    if "histogram" in families:
        out.update(intensity_histogram(levels_roi, n_levels))
    if "ivh" in families:
        out.update(_ivh(values, settings, lower, upper))
    texture = [f for f in families if f in TEXTURE_FAMILIES]
    if texture:
        levels = np.ones(image.shape, dtype=np.int64)
        levels[intensity_mask] = levels_roi
        out.update(texture_features(levels, intensity_mask, n_levels, texture, settings.ngldm_alpha, mask))
    return out
