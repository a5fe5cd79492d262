"""Whole-region radiomics via pyradiomics: preprocess once, filter once, extract for many masks.

:class:`RadiomicsEngine` gives the values of ``radiomics.featureextractor.RadiomicsFeatureExtractor``
on the same settings, while doing less work:

* no provenance hashing or full-volume label statistics (``additionalInfo`` is off);
* without resampling, the image is cropped to the union bounding box of all masks plus the margin the
  filters need (:func:`filter_margin_voxels`) **before** LoG / wavelet filtering;
* each filtered image is computed once per modality and reused for every mask of the case (the
  habitat engine passes many masks).

Returned keys are pyradiomics' ``<imageType>_<featureClass>_<Feature>``; :func:`column_name` turns them
into table columns ``{modality}_{region}_{imageType}_{family}_{feature}``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import SimpleITK as sitk

from radfeat.features.fastpaths import pyradiomics_fast_paths

__all__ = [
    "MATRIX_BACKENDS",
    "matrix_backend",
    "radfeat_matrices_apply",
    "RadiomicsEngine",
    "filter_margin_voxels",
    "column_name",
    "make_extractor",
    "check_supported",
    "REFUSED_SETTINGS",
]

#: Gaussian widths (σ) of context after which the recursive LoG filter's boundary effect is below
#: 1e-7 relative (measured on lung1 against full-image filtering).
LOG_MARGIN_SIGMAS = 12.0


#: pyradiomics settings the schema accepts but radfeat cannot honour, with the reason and the fix.
#: Every other setting is honoured with pyradiomics' values (tests/test_radiomics_settings.py).
REFUSED_SETTINGS = {
    "label": "radfeat passes binary masks; set the label with run.mask_label or a `mask_label` "
    "manifest column",
    "label_channel": "vector (multi-channel) masks are not supported; export one label map per ROI",
    "additionalInfo": "radfeat records provenance (versions, settings, input fingerprints) in the "
    "table's metadata; remove additionalInfo",
}
#: Top-level pyradiomics blocks radfeat refuses.
REFUSED_BLOCKS = {
    "voxelSetting": "voxel-based (feature map) extraction is not supported; remove voxelSetting"
}


def check_supported(params: Mapping[str, Any]) -> None:
    """Refuse, by name, pyradiomics settings that radfeat would otherwise accept and ignore."""
    for block, reason in REFUSED_BLOCKS.items():
        if params.get(block):
            raise ValueError(f"pyradiomics block {block!r} is not supported: {reason}")
    setting = params.get("setting") or {}
    for key, value in setting.items():
        if key in REFUSED_SETTINGS and not (key == "additionalInfo" and value is False):
            raise ValueError(f"setting {key!r} is not supported by radfeat: {REFUSED_SETTINGS[key]}")
    for name, custom in (params.get("imageType") or {}).items():
        for key in custom or {}:
            if key in REFUSED_SETTINGS:
                raise ValueError(
                    f"imageType {name!r}: setting {key!r} is not supported by radfeat: "
                    f"{REFUSED_SETTINGS[key]}"
                )


def _schema_settings() -> set[str]:
    import os

    import radiomics
    import yaml

    schema = os.path.join(os.path.dirname(radiomics.__file__), "schemas", "paramSchema.yaml")
    with open(schema) as fh:
        return set(yaml.safe_load(fh)["mapping"]["setting"]["mapping"])


def check_setting_names(params: Mapping[str, Any]) -> None:
    """Unknown setting names fail with the closest valid name (instead of raw schema-validator output)."""
    import difflib

    valid = _schema_settings()
    blocks = [("setting", params.get("setting") or {})]
    blocks += [(f"imageType {n}", c or {}) for n, c in (params.get("imageType") or {}).items()]
    for where, block in blocks:
        for key in block:
            if key not in valid:
                close = difflib.get_close_matches(key, sorted(valid), n=1)
                raise ValueError(
                    f"{where}: {key!r} is not a pyradiomics setting"
                    + (f"; did you mean {close[0]!r}?" if close else "")
                    + f" Valid settings: {', '.join(sorted(valid))}"
                )


def make_extractor(params: Mapping[str, Any]):
    """A pyradiomics extractor from a parameter dict (imageType / featureClass / setting).

    pyradiomics validates the dict against its schema; an invalid dict raises ``ValueError`` naming
    the offending key. Settings radfeat cannot honour (:data:`REFUSED_SETTINGS`) raise too.
    """
    import radiomics
    from radiomics import featureextractor

    check_supported(params)
    check_setting_names(params)

    radiomics.setVerbosity(logging.ERROR)  # pyradiomics logs per-feature notes at WARNING
    try:
        extractor = featureextractor.RadiomicsFeatureExtractor(dict(params))
    except Exception as exc:  # pykwalify SchemaError and friends
        raise ValueError(f"invalid pyradiomics parameters: {exc}") from exc
    extractor.settings["additionalInfo"] = False
    return extractor


def filter_margin_voxels(params: Mapping[str, Any], spacing: tuple[float, ...]) -> np.ndarray:
    """Voxels of context (x, y, z) the enabled filters need around the ROI to give full-image values.

    LoG: ``LOG_MARGIN_SIGMAS`` × the largest σ (mm). Wavelet: the filter length times 2^levels (the
    stationary wavelet transform dilates its filters at each level). Original: 1 voxel.
    """
    image_types = params.get("imageType") or {"Original": {}}
    setting = params.get("setting") or {}
    spacing = np.asarray(spacing, dtype=float)
    margin = np.ones(3)
    for name, custom in image_types.items():
        opts = {**setting, **(custom or {})}
        if name == "LoG":
            sigma = max(opts.get("sigma") or [0.0])
            margin = np.maximum(margin, np.ceil(LOG_MARGIN_SIGMAS * sigma / spacing) + 2)
        elif name == "Wavelet":
            import pywt

            length = pywt.Wavelet(opts.get("wavelet", "coif1")).dec_len
            levels = opts.get("start_level", 0) + opts.get("level", 1)
            margin = np.maximum(margin, length * 2**levels + 2)
        elif name != "Original":
            margin = np.maximum(margin, 3)
    return margin.astype(int)


#: Extra input voxels kept around the resampling region: the cubic B-spline prefilter's influence
#: decays as 0.268^n, below 1e-9 after 16 voxels.
BSPLINE_MARGIN_VOXELS = 16


def _resample_cropped(
    image: sitk.Image,
    mask: sitk.Image,
    bbox_lo: np.ndarray,
    bbox_hi: np.ndarray,
    settings: Mapping[str, Any],
) -> tuple[sitk.Image, sitk.Image]:
    """pyradiomics' ``resampleImage`` grid, computed from the full mask geometry, sampled from an input
    image cropped to the ROI plus what the interpolator needs (so B-spline coefficients are not built
    for the whole volume). ``bbox_lo``/``bbox_hi`` are inclusive (x, y, z) indices of the ROI.

    The grid (origin aligned to the mask's voxel 0, ROI bounding box plus ``padDistance`` new voxels,
    mask direction) is the one pyradiomics builds; values agree to ~1e-9.
    """
    from radiomics import imageoperations

    mask_spacing = np.array(mask.GetSpacing())
    new_spacing = np.array(settings["resampledPixelSpacing"], dtype=float)
    new_spacing = np.where(new_spacing == 0, mask_spacing, new_spacing)
    bb_size = bbox_hi - bbox_lo + 1
    new_spacing = np.where(bb_size != 1, new_spacing, mask_spacing)
    pad = settings.get("padDistance", 5)
    if np.allclose(np.array(image.GetSpacing()), new_spacing):
        return imageoperations.resampleImage(image, mask, **settings)
    ratio = mask_spacing / new_spacing
    lo = np.floor((bbox_lo - 0.5) * ratio - pad)
    hi = np.ceil((bbox_lo + bb_size - 0.5) * ratio + pad)
    lo = np.where(lo < 0, 0, lo)
    hi = np.minimum(hi, np.ceil(np.array(mask.GetSize()) * ratio) - 1)
    size = [int(v) for v in hi - lo + 1]
    origin = mask.TransformContinuousIndexToPhysicalPoint(
        [float(v) for v in 0.5 * (new_spacing - mask_spacing) / mask_spacing + lo / ratio]
    )
    grid = sitk.Image(size, mask.GetPixelID())
    grid.SetSpacing([float(v) for v in new_spacing])
    grid.SetOrigin(origin)
    grid.SetDirection(mask.GetDirection())
    # Input region: the grid's physical extent in image indices, plus the interpolation margin.
    corners = [
        grid.TransformIndexToPhysicalPoint([int(c) for c in corner])
        for corner in np.array(np.meshgrid(*[[0, n - 1] for n in size])).reshape(3, -1).T
    ]
    idx = np.array([image.TransformPhysicalPointToContinuousIndex(c) for c in corners])
    img_size = np.array(image.GetSize())
    start = np.clip(np.floor(idx.min(axis=0)) - BSPLINE_MARGIN_VOXELS, 0, img_size - 1).astype(int)
    stop = np.clip(np.ceil(idx.max(axis=0)) + BSPLINE_MARGIN_VOXELS, 0, img_size - 1).astype(int)
    cropped = sitk.RegionOfInterest(image, [int(v) for v in stop - start + 1], [int(v) for v in start])
    interpolator = settings.get("interpolator", sitk.sitkBSpline)
    if isinstance(interpolator, str):
        interpolator = getattr(sitk, interpolator)
    resampled = sitk.Resample(cropped, grid, sitk.Transform(), interpolator, 0.0, image.GetPixelID())
    resampled_mask = sitk.Resample(
        mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID()
    )
    return resampled, resampled_mask


def _union_bbox(masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper (inclusive) (z, y, x) index of the voxels set in any mask (one reduction per
    mask: slices with any voxel, then rows and columns within those slices only)."""
    lo = np.full(3, np.iinfo(np.int64).max)
    hi = np.full(3, -1)
    for m in masks:
        z = np.flatnonzero(m.any(axis=(1, 2)))
        if not z.size:
            continue
        slab = m[z[0] : z[-1] + 1]
        y = np.flatnonzero(slab.any(axis=(0, 2)))
        x = np.flatnonzero(slab.any(axis=(0, 1)))
        for axis, nz in enumerate((z, y, x)):
            lo[axis] = min(lo[axis], nz[0])
            hi[axis] = max(hi[axis], nz[-1])
    return lo, hi


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and a.GetSpacing() == b.GetSpacing()
        and a.GetOrigin() == b.GetOrigin()
        and a.GetDirection() == b.GetDirection()
    )


def check_mask(image: sitk.Image, mask: sitk.Image, **settings: Any) -> tuple[np.ndarray, sitk.Image | None]:
    """pyradiomics' ``imageoperations.checkMask`` (bounding box ``(L_x, U_x, L_y, U_y, L_z, U_z)``, same
    checks and messages) by NumPy reductions when ``mask`` (label 1) lies on exactly ``image``'s grid;
    pyradiomics' own function (ITK label statistics over the whole grid) otherwise."""
    from radiomics import imageoperations

    if not _same_grid(image, mask) or int(settings.get("label", 1)) != 1:
        return imageoperations.checkMask(image, mask, **settings)
    view = sitk.GetArrayViewFromImage(mask) == 1
    lo, hi = _union_bbox([view])
    if hi[0] < 0:
        raise ValueError("Label (1) not present in mask")
    bbox = np.array([v for axis in (2, 1, 0) for v in (lo[axis], hi[axis])])
    min_dims = settings.get("minimumROIDimensions", 2)
    ndims = int(np.sum((bbox[1::2] - bbox[0::2] + 1) > 1))
    if ndims == 0:
        raise ValueError("mask only contains 1 segmented voxel! Cannot extract features for a single voxel.")
    if ndims < min_dims:
        raise ValueError(
            f"mask has too few dimensions (number of dimensions {ndims}, minimum required {min_dims})"
        )
    min_size = settings.get("minimumROISize")
    if min_size is not None:
        size = int(np.count_nonzero(view))
        if size <= min_size:
            raise ValueError(f"Size of the ROI is too small (minimum size: {min_size:g}, ROI size: {size:g}")
    return bbox, None


class RadiomicsEngine:
    """pyradiomics features of one image for several region masks, each filter applied once.

    Parameters
    ----------
    params : mapping
        A pyradiomics parameter dict (``imageType``, ``featureClass``, ``setting``), validated by
        pyradiomics' schema when the engine is built.
    crop : bool, default=True
        Crop to the masks' bounding box plus :func:`filter_margin_voxels` before filtering (no effect
        when resampling, which pyradiomics already restricts to the ROI plus ``padDistance``).
    """

    def __init__(self, params: Mapping[str, Any], crop: bool = True, matrices: str = "pyradiomics") -> None:
        if matrices not in MATRIX_BACKENDS:
            raise ValueError(f"matrices {matrices!r} not known; valid: {list(MATRIX_BACKENDS)}")
        self.params = params
        self.crop = crop
        self.matrices = matrices
        self._extractor = make_extractor(params)

    @property
    def settings(self) -> dict[str, Any]:
        return self._extractor.settings

    def extract(self, image: sitk.Image, masks: Mapping[str, sitk.Image]) -> dict[str, dict[str, float]]:
        """Features per region; any region that cannot be computed raises ``ValueError`` naming it.

        See :meth:`extract_with_errors` for the tolerant variant (NaN with a reason).
        """
        values, errors = self.extract_with_errors(image, masks)
        if errors:
            name, reason = next(iter(errors.items()))
            raise ValueError(reason if reason.startswith("region") else f"region {name!r}: {reason}")
        return values

    def feature_keys(self) -> list[str]:
        """The keys this engine returns for a valid region (computed once on a small test blob)."""
        if not hasattr(self, "_keys"):
            z, y, x = np.indices((24, 24, 24))
            blob = ((z - 12) ** 2 + (y - 12) ** 2 + (x - 12) ** 2) < 49
            rng = np.random.default_rng(0)
            image = sitk.GetImageFromArray((100 * blob + rng.normal(0, 10, blob.shape)).astype(np.float32))
            mask = sitk.GetImageFromArray(blob.astype(np.uint8))
            mask.CopyInformation(image)
            self._keys = list(self.extract(image, {"blob": mask})["blob"])
        return self._keys

    def extract_with_errors(
        self, image: sitk.Image, masks: Mapping[str, sitk.Image]
    ) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
        """Features per region, tolerating regions that cannot be computed.

        Returns ``(values, errors)``: a region that is empty or fails pyradiomics' checks (too small,
        too thin) gets NaN for every key of :meth:`feature_keys` and its reason in ``errors``.
        """
        valid = {n: m for n, m in masks.items() if sitk.GetArrayViewFromImage(m).any()}
        errors = {n: f"region {n!r} is empty" for n in masks if n not in valid}
        values: dict[str, dict[str, float]] = {}
        if valid:
            values, more = self._extract(image, valid)
            errors.update(more)
        if errors:
            nan = dict.fromkeys(self.feature_keys(), math.nan)
            for name in errors:
                values[name] = dict(nan)
        return {n: values[n] for n in masks}, errors

    def _extract(
        self, image: sitk.Image, masks: Mapping[str, sitk.Image]
    ) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
        """Features per region.

        Parameters
        ----------
        image : SimpleITK.Image
            The modality's image (HU or SUV).
        masks : mapping of str to SimpleITK.Image
            Binary masks (1 inside) on the image grid, keyed by region name.

        Returns
        -------
        (dict region → {pyradiomics key: value}, dict region → reason) for regions failing
        pyradiomics' checks (too small, empty after resampling).
        """
        from radiomics import imageoperations

        ext = self._extractor
        settings = dict(ext.settings)
        settings["label"] = 1
        resample = settings.get("resampledPixelSpacing") is not None and settings.get("interpolator")

        views = {name: sitk.GetArrayViewFromImage(m) for name, m in masks.items()}
        lo, hi = _union_bbox(list(views.values()))
        full_shape = np.array(next(iter(views.values())).shape)
        if settings.get("normalize"):
            # pyradiomics normalises with the statistics of the whole image, before any cropping.
            image = imageoperations.normalizeImage(image, **settings)
        pre_crop = bool(settings.get("preCrop")) and not resample
        start, stop = np.zeros(3, dtype=int), full_shape
        if self.crop and not resample and not pre_crop:
            margin = filter_margin_voxels(self.params, image.GetSpacing())[::-1]  # z, y, x
            start = np.maximum(lo - margin, 0)
            stop = np.minimum(hi + margin + 1, full_shape)
            index = [int(v) for v in start[::-1]]
            extent = [int(v) for v in (stop - start)[::-1]]
            image = sitk.RegionOfInterest(image, extent, index)
            masks = {n: sitk.RegionOfInterest(m, extent, index) for n, m in masks.items()}
        # The union of the masks, built on the cropped region only (no full-grid pass).
        region = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
        union_arr = np.zeros(tuple(int(v) for v in stop - start), dtype=np.uint8)
        for view in views.values():
            union_arr |= view[region] > 0

        union = sitk.GetImageFromArray(union_arr)
        union.CopyInformation(image)
        if pre_crop:
            # pyradiomics' preCrop: image and mask cut to the ROI bounding box + padDistance before
            # filtering (filters then see that box only). With several masks the box is their union.
            union32 = sitk.Cast(union, sitk.sitkUInt32)
            bbox, _ = imageoperations.checkMask(image, union32, **settings)
            if bbox is None:
                raise ValueError("mask checks failed during pre-crop")
            image, union32 = imageoperations.cropToTumorMask(image, union32, bbox, **settings)
            union = sitk.Cast(union32, sitk.sitkUInt8)
            masks = {
                n: sitk.Resample(m, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, m.GetPixelID())
                for n, m in masks.items()
            }
        if resample and self.crop:
            image, union = _resample_cropped(image, union, lo[::-1], hi[::-1], settings)
        elif resample:
            image, union = imageoperations.resampleImage(image, union, **settings)
        if resample:
            masks = {
                n: sitk.Resample(m, union, sitk.Transform(), sitk.sitkNearestNeighbor, 0, m.GetPixelID())
                for n, m in masks.items()
            }

        checked: dict[str, tuple[Any, sitk.Image, sitk.Image]] = {}
        errors: dict[str, str] = {}
        resegment = settings.get("resegmentRange") is not None
        for name, mask in masks.items():
            mask = sitk.Cast(mask > 0, sitk.sitkUInt32)
            mask.CopyInformation(image)
            try:
                bbox, corrected = check_mask(image, mask, **settings)
                if corrected is not None:
                    mask = corrected
                shape_mask = texture_mask = mask
                if bbox is not None and resegment:
                    # As pyradiomics' execute(): resegment on the (resampled) image, check again and
                    # use the new bounding box; shape keeps the original mask unless resegmentShape.
                    texture_mask = imageoperations.resegmentMask(image, mask, **settings)
                    bbox, _ = check_mask(image, texture_mask, **settings)
                    if settings.get("resegmentShape"):
                        shape_mask = texture_mask
            except ValueError as exc:
                errors[name] = f"region {name!r}: {exc}"
                continue
            if bbox is None:
                errors[name] = (
                    f"region {name!r}: mask fails pyradiomics' checks (too small, or outside the image "
                    f"after resampling; minimumROIDimensions={settings.get('minimumROIDimensions', 2)}, "
                    f"minimumROISize={settings.get('minimumROISize')})"
                )
                continue
            checked[name] = (bbox, shape_mask, texture_mask)

        out: dict[str, dict[str, float]] = {name: {} for name in checked}
        with pyradiomics_fast_paths() as fast:  # pyradiomics' values by faster routes (features.fastpaths)
            for name, (bbox, shape_mask, _) in checked.items():
                out[name].update(ext.computeShape(image, shape_mask, bbox, **settings))

            for image_type, custom in ext.enabledImagetypes.items():
                args = {**settings, **custom}
                generator = getattr(imageoperations, f"get{image_type}Image")(image, union, **args)
                for filtered, type_name, kwargs in generator:
                    for name, (bbox, _, mask) in checked.items():
                        fast.new_image()
                        cropped, cropped_mask = imageoperations.cropToTumorMask(filtered, mask, bbox)
                        if self.matrices == "radfeat" and radfeat_matrices_apply(kwargs, ext.enabledFeatures):
                            out[name].update(_radfeat_class_features(cropped, cropped_mask, type_name, kwargs,
                                                                     ext.enabledFeatures))  # fmt: skip
                        else:
                            out[name].update(ext.computeFeatures(cropped, cropped_mask, type_name, **kwargs))
        return {name: {k: _to_float(v) for k, v in feats.items()} for name, feats in out.items()}, errors


#: Who computes the texture matrices and non-shape features: pyradiomics' C extension, or radfeat's
#: vectorised matrices with pyradiomics' definitions (:mod:`radfeat.features.ibsi.pyradiomics_mode`).
MATRIX_BACKENDS = ("pyradiomics", "radfeat")
_PYRADIOMICS_DEFAULTS = {"distances": [1], "force2D": False, "symmetricalGLCM": True, "weightingNorm": None,
                         "gldm_a": 0}  # fmt: skip


@functools.lru_cache(maxsize=1)
def _default_feature_names() -> dict[str, tuple[str, ...]]:
    from radiomics import getFeatureClasses

    classes = getFeatureClasses()
    return {c: tuple(n for n, deprecated in classes[c].getFeatureNames().items() if not deprecated)
            for c in ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")}  # fmt: skip


def matrix_backend(settings: Mapping[str, Any]) -> str:
    """The matrix backend a radfeat settings dict asks for: ``radfeat`` for ``engine: radfeat``, else
    ``pyradiomics``."""
    return "radfeat" if settings.get("engine") == "radfeat" else "pyradiomics"


def radfeat_matrices_apply(settings: Mapping[str, Any], enabled: Mapping[str, Any]) -> bool:
    """Whether radfeat's matrices give pyradiomics' values for these settings and enabled features:
    distance 1, 3D, symmetric GLCM, no angle weighting, GLDM alpha 0, and only the non-deprecated
    features of firstorder / GLCM / GLRLM / GLSZM / GLDM / NGTDM (anything else: pyradiomics computes)."""
    for key, default in _PYRADIOMICS_DEFAULTS.items():
        if settings.get(key, default) != default:
            return False
    names = _default_feature_names()
    for cls, wanted in enabled.items():
        if cls == "shape":
            continue
        if cls not in names or any(w not in names[cls] for w in wanted or ()):
            return False
    return True


def _radfeat_class_features(
    image: sitk.Image,
    mask: sitk.Image,
    type_name: str,
    settings: Mapping[str, Any],
    enabled: Mapping[str, Any],
) -> dict[str, float]:
    """pyradiomics' ``computeFeatures`` keys and values (non-shape classes) from radfeat's matrices."""
    from radfeat.features.ibsi.pyradiomics_mode import pyradiomics_class_features

    classes = tuple(c for c in enabled if c != "shape")
    if not classes:
        return {}
    values = pyradiomics_class_features(
        sitk.GetArrayViewFromImage(image),
        sitk.GetArrayViewFromImage(mask) > 0,
        image.GetSpacing(),
        classes,
        bin_width=settings.get("binWidth", 25),
        bin_count=settings.get("binCount"),
        voxel_array_shift=float(settings.get("voxelArrayShift", 0) or 0),
    )
    out = {}
    for cls in classes:
        wanted = enabled[cls] or _default_feature_names()[cls]
        out.update({f"{type_name}_{cls}_{name}": values[cls][name] for name in wanted})
    return out


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def column_name(modality: str, region: str, key: str) -> str:
    """``original_glcm_Contrast`` → ``ct_tumour_original_glcm_Contrast`` (the table convention)."""
    return f"{modality}_{region}_{key}"
