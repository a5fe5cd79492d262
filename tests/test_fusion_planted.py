"""The planted-signal cohorts (models.fusion.planted): the signal is where the name says, and only
there, so a fusion-vs-parts comparison on them measures what it claims to."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.fusion.planted import SIGNAL_LOCATIONS, planted_fusion_data


def _tumour_mean(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    axes = tuple(range(1, images.ndim))
    return (images * mask).sum(axes) / mask.sum(axes)


def _oracle_aucs(signal: str) -> dict[str, tuple[float, float, float]]:
    """Per task: AUC of the image read-out (tumour mean of PET for egfr, CT for subtype), of the
    planted feature column, and of their standardised sum."""
    data = planted_fusion_data(400, signal, seed=3)
    out = {}
    for task, images in (("egfr", data.pet), ("subtype", data.ct)):
        y = data.labels[task]
        image = _tumour_mean(images, data.mask)
        feature = data.features[f"pet_tumour_suv_planted_{task}"].to_numpy()
        both = image / image.std() + feature / feature.std()
        out[task] = tuple(roc_auc_score(y, v) for v in (image, feature, both))
    return out


@pytest.mark.parametrize("signal", SIGNAL_LOCATIONS)
def test_the_signal_is_where_its_name_says(signal):
    for task, (image, feature, both) in _oracle_aucs(signal).items():
        if signal == "images":
            assert image > 0.85 and abs(feature - 0.5) < 0.08, task
        elif signal == "features":
            assert feature > 0.85 and abs(image - 0.5) < 0.08, task
        elif signal == "complementary":  # each part sees half; together they see it all
            assert 0.7 < image < 0.88 and 0.7 < feature < 0.88, task
            assert both > max(image, feature) + 0.08, task
        else:
            assert max(abs(image - 0.5), abs(feature - 0.5), abs(both - 0.5)) < 0.08, task


def test_the_cohort_is_reproducible_and_shaped_like_real_patches():
    a = planted_fusion_data(20, "complementary", seed=1, size=16, n_views=3)
    b = planted_fusion_data(20, "complementary", seed=1, size=16, n_views=3)
    assert a.ct.shape == a.pet.shape == a.mask.shape == (20, 3, 3, 16, 16)
    assert a.ct.dtype == np.float32 and -1.0 <= a.ct.min() and a.ct.max() <= 1.0
    assert np.array_equal(a.ct, b.ct) and np.array_equal(a.pet, b.pet)
    assert all(np.array_equal(a.labels[t], b.labels[t]) for t in a.tasks)
    assert a.groups == {"pet": list(a.features.columns)}
    # consecutive views overlap by two slices, as extract_patches' views do with view_step 1
    assert np.array_equal(a.ct[:, 0, 1:], a.ct[:, 1, :2])
    c = planted_fusion_data(20, "complementary", seed=2, size=16, n_views=3)
    assert not np.array_equal(a.ct, c.ct)


def test_an_unknown_signal_location_is_refused():
    with pytest.raises(ValueError, match="signal must be one of"):
        planted_fusion_data(10, "everywhere")
