"""Stage 2: the population habitat model (fit on the training cases' supervoxels, apply to any case)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radfeat.habitats.maps import HabitatMaps, Supervoxels, clean_fragments, supervoxels
from radfeat.habitats.settings import HabitatSettings

__all__ = ["HabitatModel"]


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

    def save(self, folder: str | Path) -> Path:
        """Write the fitted model to ``folder`` (see :func:`radfeat.habitats.persistence.save_model`)."""
        from radfeat.habitats.persistence import save_model

        return save_model(self, folder)

    @classmethod
    def load(cls, folder: str | Path) -> HabitatModel:
        """Read a model written by :meth:`save`, refusing an incomplete or mismatched pair of files."""
        from radfeat.habitats.persistence import load_model

        return load_model(folder)

    def fingerprint(self) -> str:
        """Hash of the fitted state (centres, habitat means, GMM parameters, k, settings, training ids):
        part of the cache key of every feature computed with this model."""
        import hashlib

        self._check_fitted()
        h = hashlib.sha256()
        for name, array in [
            ("centers", self.centers_),
            ("means", self.habitat_means_),
            *sorted(self.gmm_.items()),
        ]:
            h.update(name.encode())
            h.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        h.update(
            json.dumps(
                {"k": self.k_, "settings": asdict(self.settings), "train_ids": self.train_ids_},
                sort_keys=True,
                default=str,
            ).encode()
        )
        return h.hexdigest()[:16]
