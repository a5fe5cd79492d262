"""Habitats (sub-regions): voxel feature maps, two-stage clustering with fit / apply, label maps.

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

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

__all__ = [
    "HabitatSettings",
    "HabitatMaps",
    "local_entropy",
    "voxel_feature_maps",
    "supervoxels",
    "HabitatModel",
    "clean_fragments",
]


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


@dataclass
class HabitatModel:
    """Stage-2 population model of habitats: fit on training cases' supervoxels, apply to any case.

    Follows the scikit-learn contract: parameters in ``__init__`` only, learned state ends in ``_``.

    Parameters
    ----------
    settings : HabitatSettings
        ``k_range``, ``method`` and ``random_state`` are used here.

    Attributes
    ----------
    k_ : int
        Number of habitats chosen by Calinski–Harabasz.
    centers_ : ndarray of shape (k_, n_features)
        Cluster centres in the per-patient z-scored feature space, ordered so that habitat 1 has the
        lowest mean SUV (then HU) and habitat k the highest.
    scores_ : dict
        Per candidate k: Calinski–Harabasz and silhouette.
    habitat_means_ : ndarray of shape (k_, n_features)
        Size-weighted raw means (HU, bits, SUV, bits) of each ordered habitat in the training data.
    train_ids_ : list of str
        The cases the model was fitted on (its provenance and leakage record).
    """

    settings: HabitatSettings = field(default_factory=HabitatSettings)

    def fit(self, tables: dict[str, Supervoxels]) -> HabitatModel:
        """Fit on the supervoxels of the training cases only ({case_id: Supervoxels})."""
        from sklearn.metrics import calinski_harabasz_score, silhouette_score

        if len(tables) < 1:
            raise ValueError("HabitatModel.fit needs the supervoxels of at least one training case")
        s = self.settings
        ordered = [tables[case] for case in sorted(tables)]  # case order must not matter
        x = np.vstack([t.means for t in ordered])
        raw = np.vstack([t.raw_means for t in ordered])
        weights = np.concatenate([t.sizes for t in ordered]).astype(float)
        k_lo, k_hi = s.k_range
        k_hi = min(k_hi, len(np.unique(x, axis=0)) - 1)
        if k_hi < k_lo:
            raise ValueError(
                f"only {x.shape[0]} distinct supervoxels in the training cases; need more than {k_lo}"
            )
        scores, fits = {}, {}
        for k in range(k_lo, k_hi + 1):
            labels, centers, extra = self._cluster(x, k)
            if len(np.unique(labels)) < 2:
                continue
            sil = silhouette_score(x, labels, sample_size=min(2000, x.shape[0]), random_state=s.random_state)
            scores[k] = {
                "calinski_harabasz": float(calinski_harabasz_score(x, labels)),
                "silhouette": float(sil),
            }
            fits[k] = (labels, centers, extra)
        if not scores:
            raise ValueError("no k in k_range gave two or more habitats on the training supervoxels")
        k = max(scores, key=lambda kk: scores[kk]["calinski_harabasz"])
        labels, centers, extra = fits[k]
        habitat_raw = np.array(
            [np.average(raw[labels == j], axis=0, weights=weights[labels == j]) for j in range(k)]
        )
        order = self._order(habitat_raw)
        self.k_ = k
        self.centers_ = centers[order]
        self.habitat_means_ = habitat_raw[order]
        self.scores_ = scores
        self.gmm_ = {key: value[order] for key, value in extra.items()} if extra else {}
        self.train_ids_ = sorted(tables)
        self.feature_names_ = list(s.feature_names)
        return self

    def _cluster(self, x: np.ndarray, k: int):
        s = self.settings
        if s.method == "kmeans":
            from sklearn.cluster import KMeans

            km = KMeans(n_clusters=k, n_init=10, random_state=s.random_state).fit(x)
            return km.labels_, km.cluster_centers_, {}
        from sklearn.mixture import GaussianMixture

        gm = GaussianMixture(
            n_components=k, covariance_type="full", random_state=s.random_state, n_init=3
        ).fit(x)
        extra = {"weights": gm.weights_, "covariances": gm.covariances_}
        return gm.predict(x), gm.means_, extra

    def _order(self, habitat_raw: np.ndarray) -> np.ndarray:
        names = list(self.settings.feature_names)
        suv = habitat_raw[:, names.index("suv")] if "suv" in names else np.zeros(len(habitat_raw))
        hu = habitat_raw[:, names.index("ct_hu")]
        return np.lexsort((hu, suv))  # primary key last: SUV, then HU

    def _check_fitted(self) -> None:
        if not hasattr(self, "centers_"):
            raise AttributeError("this HabitatModel is not fitted yet; call fit() or HabitatModel.load()")

    def predict_supervoxels(self, sv: Supervoxels) -> np.ndarray:
        """Habitat (1..k) of each supervoxel of a new case."""
        self._check_fitted()
        if self.settings.method == "kmeans" or not self.gmm_:
            d = ((sv.means[:, None, :] - self.centers_[None, :, :]) ** 2).sum(axis=2)
            return d.argmin(axis=1) + 1
        from scipy.stats import multivariate_normal

        logp = np.column_stack(
            [
                np.log(w) + multivariate_normal(mean=m, cov=c, allow_singular=True).logpdf(sv.means)
                for w, m, c in zip(self.gmm_["weights"], self.centers_, self.gmm_["covariances"], strict=True)
            ]
        )
        return logp.argmax(axis=1) + 1

    def apply(self, maps: HabitatMaps, sv: Supervoxels | None = None) -> sitk.Image:
        """Habitat label map (UInt8, 0 outside the tumour, 1..k inside) of a case, after clean-up."""
        self._check_fitted()
        sv = sv if sv is not None else supervoxels(maps, self.settings)
        voxel_labels = self.predict_supervoxels(sv)[sv.labels]
        image = maps.label_image(voxel_labels.astype(np.uint8))
        return clean_fragments(image, self.settings.min_fragment_voxels)

    # Persistence: JSON + NPZ (no pickle).
    def save(self, folder: str | Path) -> Path:
        """Write ``habitat_model.json`` (settings, k, scores, training ids) and ``habitat_model.npz``."""
        from radfeat._atomic import atomic_path, write_text

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": "radfeat-habitat-model",
            "version": 1,
            "settings": asdict(self.settings),
            "k": self.k_,
            "scores": {str(k): v for k, v in self.scores_.items()},
            "train_ids": self.train_ids_,
            "feature_names": self.feature_names_,
        }
        arrays = {"centers": self.centers_, "habitat_means": self.habitat_means_}
        arrays.update({f"gmm_{k}": v for k, v in self.gmm_.items()})
        with atomic_path(folder / "habitat_model.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        write_text(json.dumps(meta, indent=2), folder / "habitat_model.json")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> HabitatModel:
        folder = Path(folder)
        meta_path = folder / "habitat_model.json"
        if not meta_path.exists():
            raise FileNotFoundError(
                f"no habitat model in {folder} (habitat_model.json missing); run `radfeat habitats fit` first"
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != "radfeat-habitat-model":
            raise ValueError(f"{meta_path} is not a radfeat habitat model")
        model = cls(HabitatSettings.from_dict(meta["settings"]))
        with np.load(folder / "habitat_model.npz", allow_pickle=False) as data:
            model.centers_ = data["centers"]
            model.habitat_means_ = data["habitat_means"]
            model.gmm_ = {k[4:]: data[k] for k in data.files if k.startswith("gmm_")}
        model.k_ = int(meta["k"])
        model.scores_ = {int(k): v for k, v in meta["scores"].items()}
        model.train_ids_ = list(meta["train_ids"])
        model.feature_names_ = list(meta["feature_names"])
        return model

    def fingerprint(self) -> str:
        """Hash of the fitted state (part of cache keys of applied features)."""
        import hashlib

        self._check_fitted()
        h = hashlib.sha256(self.centers_.tobytes())
        h.update(json.dumps(asdict(self.settings), sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]


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
