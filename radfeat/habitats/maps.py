"""Habitat voxel maps: per-voxel features on a common grid, stage-1 supervoxels, fragment clean-up.

Recipe (SCIENCE.md, "Habitats"):

1. Common grid: CT grid resampled to ``grid_spacing_mm`` (isotropic) or kept; PET resampled onto it.
   CT HU clipped to ``hu_clip``.
2. Voxel features inside the ROI: CT HU, CT local entropy, SUV, SUV local entropy (``entropy_box``³
   box, ``entropy_bins`` bins); winsorised at ``winsor`` percentiles and z-scored **per patient**.
   ``mode="ct"`` keeps the CT features only (DMDP).
3. Stage 1, per patient: k-means supervoxels,
   n = min(``max_supervoxels``, voxels // ``voxels_per_supervoxel``).
4. Stage 2, population: :class:`HabitatModel` clusters the supervoxel means of the **training cases
   only** (k-means or GMM), choosing k in ``k_range`` by Calinski–Harabasz (silhouette reported), and
   orders habitats by mean SUV then HU so label 1..k means the same in every patient.
5. Clean-up: fragments smaller than ``min_fragment_voxels`` join their neighbours' majority label.

Leakage guard: :meth:`HabitatModel.fit` sees only what it is given. In cross-validation, build the
supervoxel tables of the training fold's cases, fit, then :meth:`HabitatModel.apply` to the others
(:func:`fit_habitat_model` / :func:`apply_habitat_model` do this from manifest rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radfeat.habitats.settings import HabitatSettings

__all__ = [
    "HabitatMaps",
    "Supervoxels",
    "local_entropy",
    "voxel_feature_maps",
    "supervoxels",
    "clean_fragments",
]


def local_entropy(values: np.ndarray, roi: np.ndarray, box: int = 3, bins: int = 32) -> np.ndarray:
    """Shannon entropy (bits) of the ``bins``-level histogram in a ``box``³ neighbourhood, per voxel.

    Values are discretised over their range inside ``roi``; neighbours outside the ROI do not count.
    Vectorised: one box filter per grey level, no per-voxel loop. Shape (z, y, x) in and out.
    """
    inside = values[roi]
    lo, hi = float(inside.min()), float(inside.max())
    levels = np.zeros(values.shape, dtype=np.int16)
    if hi > lo:
        levels = np.clip(((values - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1).astype(np.int16)
    weight = roi.astype(np.float32)
    count = ndimage.uniform_filter(weight, size=box, mode="constant")
    entropy = np.zeros(values.shape, dtype=np.float64)
    for b in np.unique(levels[roi]):
        p = ndimage.uniform_filter(((levels == b) & roi).astype(np.float32), size=box, mode="constant")
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(count > 0, p / count, 0.0)
            entropy -= np.where(p > 0, p * np.log2(p), 0.0)
    return entropy


@dataclass
class HabitatMaps:
    """Voxel features of one case on its common grid.

    Attributes
    ----------
    features : ndarray of shape (n_voxels, n_features)
        Winsorised, per-patient z-scored features of the ROI voxels (for clustering).
    raw : ndarray of shape (n_voxels, n_features)
        The same features before scaling (HU, bits, SUV), used to order habitats.
    index : tuple of 3 ndarrays
        (z, y, x) indices of the ROI voxels in ``reference``.
    reference : SimpleITK.Image
        The common grid (cropped around the ROI), UInt8 ROI mask.
    ct, pet : SimpleITK.Image
        CT (HU) and PET (SUV, or None in CT mode) on the common grid.
    names : tuple of str
    """

    features: np.ndarray
    raw: np.ndarray
    index: tuple[np.ndarray, np.ndarray, np.ndarray]
    reference: sitk.Image
    ct: sitk.Image
    pet: sitk.Image | None
    names: tuple[str, ...]

    @property
    def n_voxels(self) -> int:
        return self.features.shape[0]

    def to_grid(self, labels: sitk.Image, reference: sitk.Image) -> sitk.Image:
        """A label map moved (nearest neighbour) onto another grid, e.g. the original CT."""
        return sitk.Resample(labels, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)

    def label_image(self, labels: np.ndarray) -> sitk.Image:
        """A UInt8 label map on the common grid from per-voxel labels (0 outside the ROI)."""
        arr = np.zeros(sitk.GetArrayViewFromImage(self.reference).shape, np.uint8)
        arr[self.index] = labels
        image = sitk.GetImageFromArray(arr)
        image.CopyInformation(self.reference)
        return image


def _winsor_zscore(x: np.ndarray, winsor: tuple[float, float]) -> np.ndarray:
    lo, hi = np.percentile(x, winsor, axis=0)
    clipped = np.clip(x, lo, hi)
    sd = clipped.std(axis=0)
    return (clipped - clipped.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def voxel_feature_maps(
    ct: sitk.Image,
    mask: sitk.Image,
    pet: sitk.Image | None = None,
    settings: HabitatSettings | None = None,
) -> HabitatMaps:
    """Voxel feature maps inside the ROI on a common grid (see the module docstring).

    Parameters
    ----------
    ct : SimpleITK.Image
        CT in HU; its grid (resampled to ``grid_spacing_mm`` if set) is the common grid.
    mask : SimpleITK.Image
        Tumour mask on the CT grid (voxels > 0).
    pet : SimpleITK.Image, optional
        PET in SUV on any grid (resampled linearly onto the common grid). Required in "ct+pet" mode.
    """
    from radfeat.geometry import crop_to_roi, mask_on_grid, resample_isotropic, resample_to_reference

    s = settings or HabitatSettings()
    if s.mode == "ct+pet" and pet is None:
        raise ValueError("habitat mode 'ct+pet' needs a PET image; use mode 'ct' for CT-only habitats")
    margin = float(max(ct.GetSpacing()) * (s.entropy_box + 1))
    if s.grid_spacing_mm:
        margin = max(margin, s.grid_spacing_mm * (s.entropy_box + 1))
    ct_crop, mask_crop = crop_to_roi(sitk.Cast(ct, sitk.sitkFloat64), mask, margin)
    if s.grid_spacing_mm:
        reference = resample_isotropic(ct_crop, s.grid_spacing_mm, "linear", s.hu_clip[0])
        mask_grid = mask_on_grid(mask_crop, reference, 0.5)  # covered volume fraction >= 1/2
        ct_grid = reference
    else:
        ct_grid = ct_crop
        mask_grid = sitk.Cast(mask_crop > 0, sitk.sitkUInt8)
    mask_grid.CopyInformation(ct_grid)
    roi = sitk.GetArrayFromImage(mask_grid) > 0
    if roi.sum() < 2:
        raise ValueError(f"tumour has {int(roi.sum())} voxel(s) on the habitat grid; too small for habitats")
    hu = np.clip(sitk.GetArrayFromImage(ct_grid), *s.hu_clip)
    ct_clipped = sitk.GetImageFromArray(hu)
    ct_clipped.CopyInformation(ct_grid)
    columns = [hu[roi], local_entropy(hu, roi, s.entropy_box, s.entropy_bins)[roi]]
    pet_grid = None
    if s.mode == "ct+pet":
        pet_grid = resample_to_reference(sitk.Cast(pet, sitk.sitkFloat64), ct_grid, "linear", 0.0)
        suv = sitk.GetArrayFromImage(pet_grid)
        columns += [suv[roi], local_entropy(suv, roi, s.entropy_box, s.entropy_bins)[roi]]
    raw = np.column_stack(columns)
    return HabitatMaps(
        features=_winsor_zscore(raw, s.winsor),
        raw=raw,
        index=np.nonzero(roi),
        reference=mask_grid,
        ct=ct_clipped,
        pet=pet_grid,
        names=s.feature_names,
    )


@dataclass
class Supervoxels:
    """Stage-1 result of one case: per-voxel supervoxel id, supervoxel means (scaled and raw), sizes."""

    labels: np.ndarray
    means: np.ndarray
    raw_means: np.ndarray
    sizes: np.ndarray


def supervoxels(maps: HabitatMaps, settings: HabitatSettings | None = None) -> Supervoxels:
    """Stage 1: k-means into n = min(max, voxels // per) supervoxels (seeded).

    With ``spatial_weight`` > 0 the voxel position (mm, divided by the expected supervoxel diameter)
    joins the features, SLIC-style, so supervoxels are compact pieces of tumour and their means
    average out voxel noise; 0 clusters on the features alone.
    """
    from sklearn.cluster import KMeans

    s = settings or HabitatSettings()
    n = int(max(1, min(s.max_supervoxels, maps.n_voxels // s.voxels_per_supervoxel)))
    n = min(n, len(np.unique(maps.features, axis=0)))
    x = maps.features
    if s.spatial_weight > 0 and n > 1:
        spacing = np.array(maps.reference.GetSpacing())[::-1]  # z, y, x
        coords = np.column_stack(maps.index) * spacing
        diameter = (maps.n_voxels * np.prod(spacing) / n) ** (1.0 / 3.0)
        x = np.hstack([x, s.spatial_weight * coords / diameter])
    if n <= 1:
        labels = np.zeros(maps.n_voxels, dtype=np.int64)
    else:
        labels = KMeans(n_clusters=n, n_init=1, random_state=s.random_state).fit_predict(x)
    ids = np.unique(labels)
    means = np.array([maps.features[labels == i].mean(axis=0) for i in ids])
    raw_means = np.array([maps.raw[labels == i].mean(axis=0) for i in ids])
    sizes = np.array([(labels == i).sum() for i in ids])
    remap = np.zeros(labels.max() + 1, dtype=np.int64)
    remap[ids] = np.arange(ids.size)
    return Supervoxels(remap[labels], means, raw_means, sizes)


def clean_fragments(labels: sitk.Image, min_voxels: int, max_iter: int = 10) -> sitk.Image:
    """Give every connected fragment (26-connectivity) smaller than ``min_voxels`` the majority label of
    its neighbouring tumour voxels; repeats until stable. A habitat's largest component is kept
    whatever its size; background (0) is never changed.
    """
    arr = sitk.GetArrayFromImage(labels).astype(np.int64)
    if min_voxels <= 1:
        return labels
    structure = np.ones((3, 3, 3), bool)
    for _ in range(max_iter):
        changed = False
        for value in np.unique(arr[arr > 0]):
            comps, n = ndimage.label(arr == value, structure=structure)
            if n <= 1:
                continue
            sizes = np.bincount(comps.ravel())
            sizes[0] = 0
            largest = int(sizes.argmax())
            for comp in np.flatnonzero(sizes < min_voxels):
                if comp in (0, largest):
                    continue
                region = comps == comp
                ring = ndimage.binary_dilation(region, structure) & ~region & (arr > 0)
                if not ring.any():
                    continue
                neighbours = np.bincount(arr[ring], minlength=int(value) + 1)
                neighbours[value] = 0
                if neighbours.max() == 0:
                    continue
                arr[region] = neighbours.argmax()
                changed = True
        if not changed:
            break
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(labels)
    return out
