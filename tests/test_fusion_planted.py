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


def test_the_verdict_reads_the_ablation_table():
    import pandas as pd

    from models.fusion.planted import fusion_verdict

    def table(full, image, feat, p_image, p_feat):
        return pd.DataFrame(
            {
                "variant": ["full", "image_only", "features_only"],
                "task": "egfr",
                "auc": [full, image, feat],
                "p_vs_full": [np.nan, p_image, p_feat],
            }
        )

    assert fusion_verdict(table(0.9, 0.8, 0.7, 0.01, 0.001), "complementary", "egfr") == "holds"
    assert fusion_verdict(table(0.9, 0.8, 0.88, 0.01, 0.3), "complementary", "egfr") == "not shown"
    assert fusion_verdict(table(0.85, 0.9, 0.5, 0.2, 0.0), "images", "egfr") == "holds"
    assert fusion_verdict(table(0.75, 0.9, 0.5, 0.001, 0.0), "images", "egfr") == "significantly worse"
    assert fusion_verdict(table(0.75, 0.9, 0.5, 0.001, 0.0), "features", "egfr") == "holds"
    with pytest.raises(ValueError, match="scenario"):
        fusion_verdict(table(0.9, 0.8, 0.7, 0.01, 0.001), "none", "egfr")


@pytest.mark.slow
def test_fusion_beats_each_part_when_the_signal_is_complementary():
    """Issue 17's claim with the default network and training settings (the ``tiny`` width, 40 epochs):
    on 400 cases whose labels need both the images and the feature tokens, the full model is
    significantly better than its image-only and its features-only part on both tasks (paired DeLong
    on the same 3-fold out-of-fold predictions, α = 0.05). The images-only and features-only
    scenarios are in benchmarks/bench_fusion_planted.py."""
    from dataclasses import replace

    from models.fusion.ablation import ablation_table, run_ablations
    from models.fusion.planted import fusion_verdict
    from models.fusion.run import PRESETS

    data = planted_fusion_data(400, "complementary", seed=0)
    model_cfg, train_cfg = PRESETS["tiny"]
    model_cfg = replace(model_cfg, patch=data.ct.shape[-1], in_slices=data.ct.shape[2])
    train_cfg = replace(train_cfg, epochs=40, patience=12)
    results = run_ablations(data, model_cfg, train_cfg, ["full", "image_only", "features_only"], n_splits=3)
    table = ablation_table(results)
    for task in data.tasks:
        assert fusion_verdict(table, "complementary", task) == "holds", table[table["task"] == task]
