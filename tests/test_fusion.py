"""The fusion network on synthetic PET/CT cohorts (CPU, tiny configuration): patches, in-fold feature
preparation, every ablation switch, one compilation, exact resume, planted signal learned and no
signal not invented, Grad-CAM on the tumour, and the `radfeat train` command."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from models.fusion.ablation import ABLATIONS, ablation_table
from models.fusion.data import FeaturePrep, synthetic_fusion_data
from models.fusion.gradcam import (
    CAM_CHUNK,
    cam_mass_inside,
    cam_mass_regions,
    grad_cam,
    grad_cam_compilations,
    map_mass_table,
)
from models.fusion.net import FusionConfig, FusionNet
from models.fusion.run import PRESETS
from models.fusion.train import (
    TRACE_COUNTS,
    FusionCVResult,
    TrainConfig,
    cross_validate_fusion,
    fit,
    fusion_splits,
    predict,
)
from radfeat.synth import PhenotypeLinks

TINY_MODEL, TINY_TRAIN = PRESETS["tiny"]
#: Enough capacity to learn the planted phenotypes from 120 cases in a minute or two on a CPU.
SIGNAL_MODEL = FusionConfig(d=32, heads=2, blocks=1)
SIGNAL_TRAIN = TrainConfig(epochs=30, batch_size=16, lr=2e-3, patience=8, min_epochs=10)


#: The default subtype link (SUV, necrosis) caps a logistic regression on the features at AUC ≈ 0.80 on
#: 120 cases, too close to the 0.8 bar to test learning; a clearer planted link leaves room.
CLEAR_LINKS = PhenotypeLinks(suv_log_squamous=0.7, necrosis_squamous=0.9)


@pytest.fixture(scope="module")
def signal_data(tmp_path_factory):
    return synthetic_fusion_data(
        tmp_path_factory.mktemp("sig"), 120, seed=1, signal=1.0, jobs=2, links=CLEAR_LINKS
    )


@pytest.fixture(scope="module")
def signal_cv(signal_data):
    return cross_validate_fusion(signal_data, SIGNAL_MODEL, SIGNAL_TRAIN, n_splits=5)


def test_patches_are_tumour_centred_and_scaled(signal_data):
    d = signal_data
    n, V, S, H, W = d.ct.shape
    assert (V, S, H, W) == (5, 3, 32, 32) and d.pet.shape == d.ct.shape == d.mask.shape
    mid = d.mask[:, V // 2, S // 2]
    assert mid.sum(axis=(1, 2)).min() > 0  # every case has tumour on its central slice
    yy, xx = np.nonzero(mid.sum(axis=0))
    assert abs(yy.mean() - (H - 1) / 2) < 2 and abs(xx.mean() - (W - 1) / 2) < 2
    assert -1.0 <= d.ct.min() and d.ct.max() <= 1.0 and d.pet.min() >= 0
    # Tumour brighter on PET than its surroundings.
    inside = (d.pet * d.mask).sum() / d.mask.sum()
    assert inside > 2 * (d.pet * (1 - d.mask)).sum() / (1 - d.mask).sum()


def test_feature_preparation_sees_training_cases_only(signal_data):
    d = signal_data
    train = np.arange(0, 60)
    prep = FeaturePrep(k_per_group=8).fit(d, train)
    before = prep.transform(d, train).copy()
    changed = d.features.copy()
    d2 = type(d)(**{**d.__dict__, "features": changed})
    changed.iloc[60:] = changed.iloc[60:] * 100 + 7  # test rows only
    prep2 = FeaturePrep(k_per_group=8).fit(d2, train)
    assert prep2.columns_ == prep.columns_
    np.testing.assert_array_equal(prep2.transform(d2, train), before)
    np.testing.assert_allclose(prep.median_, np.nanmedian(d.features[prep.columns_].iloc[train], axis=0))
    assert prep.n_features == 8
    assert FeaturePrep(drop_groups=("pet",)).fit(d, train).n_features == 0


@pytest.mark.parametrize("variant", sorted(ABLATIONS))
def test_every_ablation_switch_gives_both_task_logits(variant):
    from flax import nnx

    cfg = FusionConfig(d=8, heads=2, n_features=5, **ABLATIONS[variant].changes)
    model = FusionNet(cfg, rngs=nnx.Rngs(0))
    B = 2
    batch = {
        "ct": np.zeros((B, 32, 32, 3), np.float32),
        "pet": np.ones((B, 32, 32, 3), np.float32),
        "x": np.ones((B, 5), np.float32),
        "groups": np.zeros(5, np.int32),
        "feature_on": np.ones(5, bool),
    }
    logits, aux = model(batch)
    assert set(logits) == {"egfr", "subtype"} and logits["egfr"].shape == (B, 1)
    assert ("maps" in aux) == bool(cfg.modalities)


def test_the_device_schedule_equals_optax():
    """The learning rate computed inside the step equals optax's warm-up + cosine schedule."""
    import optax

    from models.fusion.device import schedule_arrays, scheduled_lr

    cfg = TrainConfig(epochs=7, lr=3e-3, warmup_epochs=2)
    total, warmup = cfg.epochs * 11, cfg.warmup_epochs * 11
    reference = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, warmup, total, end_value=cfg.lr * 0.01)
    arrays = schedule_arrays(cfg.lr, cfg.epochs, cfg.warmup_epochs, 11)
    for step in (0, 1, 10, 21, 22, 23, 40, 76, 77, 100):
        assert float(scheduled_lr(arrays, np.int32(step))) == pytest.approx(
            float(reference(step)), rel=1e-5, abs=1e-9
        )


def test_bfloat16_computation_keeps_float32_parameters(signal_data):
    """``dtype="bfloat16"``: same parameters (float32) and nearly the same outputs as float32; it trains."""
    import jax
    from flax import nnx

    from models.fusion.steps import make_model

    prep = FeaturePrep(k_per_group=4).fit(signal_data, np.arange(40))
    cfg = replace(TINY_MODEL, n_features=prep.n_features, n_groups=len(prep.group_names_))
    f32, b16 = make_model(cfg, 0), make_model(replace(cfg, dtype="bfloat16"), 0)
    for a, b in zip(
        jax.tree.leaves(nnx.state(f32, nnx.Param)), jax.tree.leaves(nnx.state(b16, nnx.Param)), strict=True
    ):
        assert b.dtype == np.float32 and np.array_equal(a, b)
    p32 = predict(f32, signal_data, np.arange(8), prep)
    p16 = predict(b16, signal_data, np.arange(8), prep)
    for t in p32:
        np.testing.assert_allclose(p16[t], p32[t], atol=0.03)
    cfg_train = TrainConfig(epochs=2, batch_size=16, min_epochs=1, select_from_epoch=0)
    res = fit(replace(TINY_MODEL, dtype="bfloat16"), cfg_train, signal_data, np.arange(40))
    assert all(np.isfinite(h["loss"]) for h in res.history)
    with pytest.raises(ValueError, match="dtype"):
        FusionConfig(dtype="float16")


def _token_data(habitat_mode: str):
    """A FusionData of 12 cases with one column of every token kind (no images needed)."""
    import pandas as pd

    from models.fusion.data import FusionData

    rng = np.random.default_rng(0)
    groups = {
        "habitat": ["hab_h1_volume_fraction", "ct_hab1_original_firstorder_Mean", "pet_hab1_SUVmean"],
        "pet": ["pet_tumour_suv_SUVmax", "pet_tumour_suv_CoV", "pet_tumour_suv_MTV41_ml"],
        "ct": ["ct_tumour_original_glcm_Contrast", "ct_tumour_original_shape_Sphericity"],
        "pet_radiomics": ["pet_tumour_original_glcm_Contrast", "pet_tumour_original_firstorder_Mean"],
    }
    cols = [c for g in groups.values() for c in g]
    n = 12
    images = np.zeros((n, 1, 1, 8, 8), np.float32)
    y = np.tile([0, 1], n // 2)
    return FusionData(
        case_ids=np.array([f"c{i}" for i in range(n)]), ct=images, pet=images, mask=images,
        labels={"egfr": y, "subtype": y[::-1].copy()}, classes={"egfr": ["0", "1"], "subtype": ["0", "1"]},
        features=pd.DataFrame(rng.normal(size=(n, len(cols))), columns=cols), groups=groups,
        habitat_mode=habitat_mode,
    )  # fmt: skip


@pytest.mark.parametrize("habitat_mode", ["ct+pet", "ct"])
def test_modality_ablations_keep_only_that_modalitys_tokens(habitat_mode):
    """CT-only sees CT tokens (and habitats only when they were clustered on CT alone), PET-only PET
    tokens; without heterogeneity drops habitats, PET heterogeneity and PET texture together."""
    d = _token_data(habitat_mode)
    kept = {}
    for name in ("full", "ct_only", "pet_only", "no_heterogeneity"):
        spec = ABLATIONS[name]
        prep = FeaturePrep(k_per_group=10, drop_columns=spec.dropped_columns(d)).fit(d, np.arange(12))
        kept[name] = set(prep.columns_)
    everything = {c for g in d.groups.values() for c in g}
    assert kept["full"] == everything
    ct_habitats = {"hab_h1_volume_fraction", "ct_hab1_original_firstorder_Mean"}
    ct_tumour = {"ct_tumour_original_glcm_Contrast", "ct_tumour_original_shape_Sphericity"}
    assert kept["ct_only"] == (ct_tumour | ct_habitats if habitat_mode == "ct" else ct_tumour)
    pet = {c for c in everything if c.startswith("pet_tumour_")}
    assert kept["pet_only"] == pet  # habitats are CT-defined (ct) or CT+PET-defined: never PET alone
    assert kept["no_heterogeneity"] == {
        "pet_tumour_suv_SUVmax", "pet_tumour_suv_MTV41_ml", "pet_tumour_original_firstorder_Mean",
        *ct_tumour,
    }  # fmt: skip
    assert ABLATIONS["ct_only"].changes["modalities"] == ("ct",)
    assert ABLATIONS["pet_only"].changes["modalities"] == ("pet",)


def test_each_variant_trains_on_its_own_tokens(monkeypatch):
    """The runner hands each variant the preparation its name promises (spy on the CV call)."""
    import models.fusion.ablation as ablation

    d = _token_data("ct+pet")
    seen = {}

    def spy(data, model_cfg, train_cfg, *, prep, **kwargs):
        seen[model_cfg.modalities, model_cfg.fusion] = set(prep.drop_columns)
        return FusionCVResult(__import__("pandas").DataFrame())

    monkeypatch.setattr(ablation, "cross_validate_fusion", spy)
    ablation.run_ablations(d, TINY_MODEL, TINY_TRAIN, ("full", "ct_only", "pet_only", "concat_fusion"))
    assert seen[("ct", "pet"), "cross"] == set()
    assert seen[("ct", "pet"), "concat"] == set()
    assert seen[("ct",), "cross"] == {c for c in d.features.columns if not c.startswith("ct_tumour_")}
    assert seen[("pet",), "cross"] == {c for c in d.features.columns if not c.startswith("pet_tumour_")}


def test_a_training_part_smaller_than_one_batch_trains(signal_data):
    """Fewer training samples than the batch size (a tiny cohort, as in the demo): the epoch's batch
    repeats the permutation instead of failing to reshape it."""
    cfg = TrainConfig(epochs=2, batch_size=64, min_epochs=1, patience=100, select_from_epoch=0)
    res = fit(TINY_MODEL, cfg, signal_data, np.arange(8))
    assert len(res.history) == 2 and all(np.isfinite(h["loss"]) for h in res.history)


@pytest.mark.parametrize(("weighting", "ema"), [("equal", 0.0), ("gradnorm", 0.0), ("equal", 1.0)])
def test_one_compilation_and_exact_resume(signal_data, tmp_path, weighting, ema):
    d = signal_data
    cfg = TrainConfig(
        epochs=3, batch_size=16, min_epochs=1, patience=100, loss_weighting=weighting, ema_half_life=ema
    )
    full = fit(TINY_MODEL, cfg, d, np.arange(40), checkpoint=tmp_path / "a")
    after_first = TRACE_COUNTS["train_step"]
    assert after_first >= 1  # the step was traced (by this fit or an earlier one in this process)
    again = fit(TINY_MODEL, cfg, d, np.arange(40, 80))  # other cases, same shapes: no new trace
    assert TRACE_COUNTS["train_step"] == after_first
    # another training-set size (other steps per epoch, another schedule) and run length: no new trace
    again = fit(TINY_MODEL, replace(cfg, epochs=2), d, np.arange(30, 85))
    assert TRACE_COUNTS["train_step"] == after_first
    del again

    class Interrupt(Exception):
        pass

    def stop_after_first(record):
        if record["epoch"] == 0:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(TINY_MODEL, cfg, d, np.arange(40), checkpoint=tmp_path / "b", progress=stop_after_first)
    resumed = fit(TINY_MODEL, cfg, d, np.arange(40), checkpoint=tmp_path / "b")
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    test = np.arange(70, 80)
    for task in d.tasks:
        np.testing.assert_allclose(
            predict(resumed.model, d, test, resumed.prep)[task], predict(full.model, d, test, full.prep)[task]
        )


def test_the_weight_average_follows_its_half_life():
    """The in-step average equals the recursion ``e ← e + (1 − β_t)(θ_t − e)`` with ``β_t`` the
    half-life's decay capped by ``(1 + t) / (10 + t)``; after one half-life (in epochs) of constant
    weights the distance to them has halved."""
    import jax.numpy as jnp

    from models.fusion.device import ema_update, schedule_arrays

    steps = 50
    schedule = schedule_arrays(1e-3, 10, 1, steps, ema_half_life=2.0)
    beta = 0.5 ** (1 / (2.0 * steps))
    assert float(schedule[3]) == pytest.approx(beta, rel=1e-6)
    rng = np.random.default_rng(0)
    thetas = rng.normal(size=(300, 3)).astype(np.float32)
    ema, ref = {"w": jnp.zeros(3)}, np.zeros(3)
    for t, theta in enumerate(thetas):
        ema = ema_update(ema, {"w": jnp.asarray(theta)}, schedule, jnp.int32(t))
        b = min(beta, (1 + t) / (10 + t))
        ref = ref + (1 - b) * (theta - ref)
    np.testing.assert_allclose(np.asarray(ema["w"]), ref, rtol=1e-4, atol=1e-6)
    # late in a run (the warm-up cap above beta): two epochs of constant weights halve the gap
    ema, target = {"w": jnp.zeros(1)}, {"w": jnp.ones(1)}
    for t in range(10_000, 10_000 + 2 * steps):
        ema = ema_update(ema, target, schedule, jnp.int32(t))
    assert float(ema["w"][0]) == pytest.approx(0.5, rel=1e-4)
    assert float(schedule_arrays(1e-3, 10, 1, steps)[3]) == 0.0  # no average by default


def test_unimodal_auxiliary_heads_train_each_pathway_and_leave_predictions_to_the_fused_head(signal_data):
    """With ``aux_weight`` a model with images and feature tokens has an image-only and a features-only
    head per task; their loss reaches the image read-out token, and predictions come from the fused
    head alone (zeroing the auxiliary heads changes nothing)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from models.fusion.batches import model_inputs, static_inputs
    from models.fusion.steps import make_model, predict_step

    d = signal_data
    prep = FeaturePrep().fit(d, np.arange(60))
    cfg = replace(TINY_MODEL, n_features=prep.n_features, n_groups=len(prep.group_names_), aux_weight=0.5)
    assert cfg.uses_aux_heads and not replace(cfg, use_features=False).uses_aux_heads
    model = make_model(cfg, 0)
    batch = jax.tree.map(
        jnp.asarray,
        {**model_inputs(d, prep, np.arange(8), np.zeros(8, int)), **static_inputs(prep), "w": np.ones(8)},
    )
    _, aux = model(batch)
    assert set(aux["aux_logits"]) == {"images", "features"}
    assert all(v.shape == (8, 1) for branch in aux["aux_logits"].values() for v in branch.values())
    assert "aux_logits" not in make_model(replace(cfg, aux_weight=0.0), 0)(batch)[1]

    from models.fusion.losses import task_losses

    batch = {**batch, "y": {t: jnp.asarray(np.maximum(d.labels[t][:8], 0)) for t in d.tasks},
             "y_on": {t: jnp.ones(8, bool) for t in d.tasks}}  # fmt: skip
    weights = {t: jnp.float32(1.0) for t in d.tasks}

    def aux_loss(m):
        _, a = m(batch)
        return jnp.mean(task_losses(a["aux_logits"]["images"], batch, weights, d.tasks))

    grads = nnx.grad(aux_loss)(model)
    assert float(jnp.abs(grads["cls_image"][...]).sum()) > 0
    model.eval()
    before = predict_step(model, batch)
    for heads in model.aux_heads.values():
        for head in heads:
            head.kernel[...] = jnp.zeros_like(head.kernel[...])
    after = predict_step(model, batch)
    for t in d.tasks:
        np.testing.assert_array_equal(np.asarray(before[t]), np.asarray(after[t]))


def test_feature_noise_changes_training_and_is_checked(signal_data):
    quiet = TrainConfig(epochs=1, batch_size=16, min_epochs=1, select_from_epoch=0, feature_noise=0.0)
    noisy = replace(quiet, feature_noise=0.5)
    a = fit(TINY_MODEL, quiet, signal_data, np.arange(60)).history[0]["loss"]
    b = fit(TINY_MODEL, noisy, signal_data, np.arange(60)).history[0]["loss"]
    assert a != b
    with pytest.raises(ValueError, match="feature_noise"):
        TrainConfig(feature_noise=-0.1)
    with pytest.raises(ValueError, match="aux_weight"):
        FusionConfig(aux_weight=-1.0)


@pytest.mark.parametrize("weighting", ["kendall", "gradnorm"])
def test_other_loss_weightings_train(signal_data, weighting):
    cfg = TrainConfig(epochs=2, batch_size=16, min_epochs=1, loss_weighting=weighting)
    res = fit(TINY_MODEL, cfg, signal_data, np.arange(60))
    assert all(np.isfinite(h["loss"]) for h in res.history)


def test_splits_stratify_on_both_labels_and_equal_the_benchmarks_for_one_task(signal_data):
    import pandas as pd

    from models.cv import outer_splits
    from models.data import load_dataset
    from models.fusion.cv import joint_strata

    d = signal_data
    table = pd.DataFrame({"case_id": d.case_ids, "egfr": d.labels["egfr"], "f": np.arange(len(d))})
    classical = outer_splits(load_dataset(table, "egfr", id_column="case_id"), 5, 2, 0)
    one_task = type(d)(**{**d.__dict__, "labels": {"egfr": d.labels["egfr"]}})
    ours = fusion_splits(one_task, 5, 2, 0)
    assert all(np.array_equal(a[3], b[3]) for a, b in zip(classical, ours, strict=True))
    # two tasks: every EGFR x subtype combination spread over the folds in proportion
    strata = joint_strata(d, 5)
    for _, _, _, test in fusion_splits(d, 5, 1, 0):
        for cell in np.unique(strata):
            n = (strata == cell).sum()
            assert abs((strata[test] == cell).sum() - n / 5) <= 1, cell


def test_feature_tokens_are_ranked_for_every_task(signal_data):
    """A feature that separates only the subtype reaches the tokens of a dual-task model, not those of
    an EGFR-only one."""
    d = signal_data
    features = d.features.copy()
    sub = d.labels[d.tasks[1]]
    features["pet_tumour_suv_SubtypeOnly"] = np.where(sub == 1, 3.0, 0.0) + np.random.default_rng(0).normal(
        0, 0.1, len(sub)
    )
    groups = {**d.groups, "pet": [*d.groups["pet"], "pet_tumour_suv_SubtypeOnly"]}
    d2 = type(d)(**{**d.__dict__, "features": features, "groups": groups})
    train = np.arange(60)
    both = FeaturePrep(k_per_group=4).fit(d2, train)
    egfr_only = FeaturePrep(k_per_group=4).fit(d2, train, d.tasks[0])
    assert "pet_tumour_suv_SubtypeOnly" in both.columns_
    assert "pet_tumour_suv_SubtypeOnly" not in egfr_only.columns_
    assert both.n_features == egfr_only.n_features == 4 * len(d.groups)


def test_a_checkpoint_resumes_only_its_own_fold(signal_data, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=16, min_epochs=1, patience=100)
    fit(TINY_MODEL, cfg, signal_data, np.arange(40), checkpoint=tmp_path / "c")
    other = fit(TINY_MODEL, cfg, signal_data, np.arange(40, 80), checkpoint=tmp_path / "c")
    fresh = fit(TINY_MODEL, cfg, signal_data, np.arange(40, 80))
    assert [h["loss"] for h in other.history] == [h["loss"] for h in fresh.history]


def test_map_mass_in_core_margin_and_outside():
    mask = np.zeros((2, 32, 32))
    mask[:, 8:24, 8:24] = 1
    uniform = np.ones((2, 32, 32))
    shares = cam_mass_regions(uniform, mask, margin_px=2)
    np.testing.assert_allclose(shares["core"], 12 * 12 / 32**2)
    # Two 4-connected dilations of the 16 × 16 square: 20 × 20 less 3 pixels at each corner.
    np.testing.assert_allclose(shares["margin"], (20 * 20 - 4 * 3 - 12 * 12) / 32**2)
    np.testing.assert_allclose(shares["core"] + shares["margin"] + shares["outside"], 1.0)
    ring = np.zeros((2, 32, 32))
    ring[:, 7, 8:24] = 1.0  # one row just outside the tumour edge
    assert cam_mass_regions(ring, mask)["margin"].tolist() == [1.0, 1.0]
    table = map_mass_table({"egfr": {"ct": uniform, "pet": ring}}, mask)
    assert list(table["modality"]) == ["ct", "pet"]
    assert table.loc[0, "core_mass"] == pytest.approx(table.loc[0, "core_area"])
    assert table.loc[1, "margin_mass"] == 1.0 and table.loc[1, "margin_area"] < 0.3
    # An all-zero map has no mass to share: it is counted apart, not averaged in as zero everywhere.
    half_empty = ring.copy()
    half_empty[1] = 0
    assert np.isnan(cam_mass_regions(half_empty, mask)["core"][1])
    row = map_mass_table({"egfr": {"pet": half_empty}}, mask).iloc[0]
    assert (row["n"], row["n_empty"]) == (1, 1) and row["margin_mass"] == 1.0


def test_gradcam_compiles_once_for_every_model_of_a_structure(signal_data):
    """The second and later Grad-CAM calls compile nothing — other cases, more cases than one chunk,
    another fold's model — and the jitted maps equal the eager computation."""
    import jax

    d = signal_data
    cfg = TrainConfig(epochs=1, batch_size=16, min_epochs=1)
    a = fit(TINY_MODEL, cfg, d, np.arange(40))
    b = fit(TINY_MODEL, cfg, d, np.arange(40, 80))
    first = grad_cam(a.model, d, a.prep, np.arange(80, 83), "egfr")
    compiled = grad_cam_compilations()
    many = grad_cam(b.model, d, b.prep, np.arange(80, 81 + CAM_CHUNK), "egfr")
    assert grad_cam_compilations() == compiled
    assert many["ct"].shape == (CAM_CHUNK + 1, *d.ct.shape[-2:])
    with jax.disable_jit():
        eager = grad_cam(a.model, d, a.prep, np.arange(80, 83), "egfr")
    assert set(first) == set(eager) == {"ct", "pet"}
    for m in first:
        np.testing.assert_allclose(first[m], eager[m], atol=1e-5)
    alone = grad_cam(a.model, d, a.prep, np.array([81]), "egfr")  # the chunk's other cases do not matter
    np.testing.assert_allclose(alone["pet"][0], first["pet"][1], atol=1e-6)
    assert grad_cam_compilations() == compiled
    # the finer map: its own compilation once, then none; twice the resolution of the scale-1 map
    fine = grad_cam(a.model, d, a.prep, np.arange(80, 83), "egfr", layer="fine")
    compiled = grad_cam_compilations()
    grad_cam(b.model, d, b.prep, np.arange(83, 90), "egfr", layer="fine")
    assert grad_cam_compilations() == compiled
    H = d.ct.shape[-1]
    assert fine["ct"].shape == first["ct"].shape and 0 <= fine["ct"].min() and fine["ct"].max() <= 1
    assert a.model.cam_shapes(H, H, "fine")["ct"][:2] == (H // 2, H // 2)
    with pytest.raises(ValueError, match="layer"):
        grad_cam(a.model, d, a.prep, np.arange(2), "egfr", layer="input")


def test_gradcam_of_the_egfr_dls_baseline(signal_data):
    """The baseline CNN has Grad-CAM too (one map of its fused input, ``fused``), jitted: a second
    call compiles nothing; its fine map is at the full 64-px resolution."""
    from models.fusion.baseline_cnn import dls_config

    d = signal_data  # 32-px patches stand in for the 64-px slices: the network is size-agnostic
    cfg = replace(dls_config(("egfr", "subtype"), width=8), patch=32, in_slices=d.ct.shape[2])
    res = fit(cfg, TrainConfig(epochs=1, batch_size=16, min_epochs=1), d, np.arange(40))
    coarse = grad_cam(res.model, d, res.prep, np.arange(80, 84), "subtype")
    compiled = grad_cam_compilations()
    again = grad_cam(res.model, d, res.prep, np.arange(84, 90), "subtype")
    assert grad_cam_compilations() == compiled
    assert set(coarse) == set(again) == {"fused"} and coarse["fused"].shape == (4, 32, 32)
    fine = grad_cam(res.model, d, res.prep, np.arange(80, 84), "subtype", layer="fine")
    assert res.model.cam_shapes(32, 32, "fine")["fused"][:2] == (32, 32) and fine["fused"].max() <= 1


@pytest.mark.slow
def test_planted_signal_is_learned_for_both_tasks(signal_cv):
    aucs = {t: signal_cv.auc(t) for t in ("egfr", "subtype")}
    assert min(aucs.values()) >= 0.8, aucs


@pytest.mark.slow
def test_gradcam_concentrates_on_the_tumour_and_margin(signal_data, signal_cv):
    """HiResCAM of the predicted class, at the scale-1 and the finer layer: most of each PET map's mass
    (where both tasks' planted signals sit: uptake shift, necrotic core) lies on the tumour and a 6 mm
    margin, about a quarter of the patch, and its peak lies there; every CT and PET map with mass is
    concentrated there beyond chance (all-zero maps, nothing speaking for the class, are left out as in
    the map-mass table). The classic Grad-CAM weighting is also available."""
    from scipy import ndimage

    fitted, test_idx = signal_cv.example
    d = signal_data
    V, S = d.ct.shape[1] // 2, d.ct.shape[2] // 2
    region = d.mask[test_idx, V, S]
    area = cam_mass_inside(np.ones(region.shape), region, dilate_px=3).mean()
    assert area < 0.35
    dilated = [ndimage.binary_dilation(m > 0, iterations=3) for m in region]
    for task in ("egfr", "subtype"):
        for layer in ("scale1", "fine"):
            cams = grad_cam(fitted.model, d, fitted.prep, test_idx, task, layer=layer)
            assert set(cams) == {"ct", "pet"}
            inside = {}
            for modality, c in cams.items():
                has_mass = c.reshape(len(c), -1).max(axis=1) > 0
                inside[modality] = cam_mass_inside(c[has_mass], region[has_mass], dilate_px=3).mean()
            assert inside["pet"] > 0.5 and min(inside.values()) > 1.25 * area, (task, layer, inside, area)
            peaks = [np.unravel_index(np.argmax(c), c.shape) for c in cams["pet"]]
            assert np.mean([m[p] for p, m in zip(peaks, dilated, strict=True)]) >= 0.5, (task, layer)
        classic = grad_cam(fitted.model, d, fitted.prep, test_idx, task, method="gradcam")
        assert all(c.shape == region.shape and 0 <= c.min() and c.max() <= 1 for c in classic.values())
    with pytest.raises(ValueError, match="method"):
        grad_cam(fitted.model, d, fitted.prep, test_idx, "egfr", method="scorecam")


@pytest.mark.slow
def test_no_signal_gives_chance_auc(tmp_path):
    """Each task on its own: its DeLong 95 % CI covers 0.5 (a leak giving 0.65 on 80 cases fails)."""
    from models.stats import roc_auc

    d = synthetic_fusion_data(tmp_path, 80, seed=2, signal=0.0, jobs=2)
    res = cross_validate_fusion(d, TINY_MODEL, TINY_TRAIN, n_splits=5)
    for task in ("egfr", "subtype"):
        s = res.case_scores(task)
        s = s[s["y"] >= 0]
        auc = roc_auc(s["y"], s["score"], direction="<")
        assert auc.ci_lower <= 0.5 <= auc.ci_upper, (task, auc.auc, auc.ci_lower, auc.ci_upper)
        assert auc.ci_upper - auc.ci_lower < 0.4  # an informative interval, not a vacuous one


@pytest.mark.slow
def test_ablation_table_compares_with_delong(signal_cv):
    """A variant with random scores is significantly worse than the full model; metrics at the training
    thresholds match an independent count."""
    from models.stats import roc_auc

    rng = np.random.default_rng(0)
    noise = FusionCVResult(signal_cv.predictions.assign(score=rng.uniform(size=len(signal_cv.predictions))))
    table = ablation_table({"full": signal_cv, "noise": noise})
    assert set(table["task"]) == {"egfr", "subtype"}
    worse = table[table["variant"] == "noise"]
    assert (worse["p_vs_full"] < 0.01).all(), worse
    for _, row in table[table["variant"] == "full"].iterrows():
        s = signal_cv.case_scores(row["task"])
        s = s[s["y"] >= 0]
        assert row["auc"] == pytest.approx(roc_auc(s["y"], s["score"], direction="<").auc)
        positive = s["margin"] >= 0
        assert row["sen"] == pytest.approx((positive & (s["y"] == 1)).sum() / (s["y"] == 1).sum())
        assert row["spec"] == pytest.approx((~positive & (s["y"] == 0)).sum() / (s["y"] == 0).sum())


@pytest.mark.slow
def test_cli_train_writes_results_figures_and_gradcam(tmp_path):
    from radfeat.synth import make_cohort

    manifest = make_cohort(tmp_path / "cohort", 24, seed=3, external_fraction=0)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "radfeat_cli", "train", str(manifest), "--preset", "tiny", "--epochs", "2",
           "--folds", "2", "--ablation", "one_scale", "--baseline", "-o", str(out), "-q"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    import pandas as pd

    table = pd.read_csv(out / "results.csv")
    assert set(table["variant"]) == {"full", "one_scale", "egfr_dls"}
    assert table["p_vs_full"].dropna().between(0, 1).all()
    for name in ("results.md", "oof_predictions.csv", "roc_egfr.png", "roc_subtype.png"):
        assert (out / name).stat().st_size > 0
    import json

    histories = json.loads((out / "histories.json").read_text())
    assert set(histories) >= {"full", "one_scale"} and len(histories["full"]) == 2  # per fold
    assert {"epoch", "loss", "val_mean_auc"} <= set(histories["full"][0][0])
    assert "no --table" in run.stderr and "image-only" in run.stderr
    # the baseline checkpoints every fold like the variants: a rerun resumes it instead of retraining
    assert len({p.name[:5] for p in (out / "checkpoints").glob("egfr_dls_*/r0_f*")}) == 2
    for folder in ("egfr", "fine/egfr", "egfr_dls/egfr", "egfr_dls/fine/subtype"):
        assert len(list((out / "gradcam" / folder).glob("*.png"))) > 0, folder
    mass = pd.read_csv(out / "gradcam" / "map_mass.csv")
    assert set(mass["task"]) == {"egfr", "subtype"} and set(mass["variant"]) == {
        "full",
        "one_scale",
        "egfr_dls",
    }
    assert set(mass.loc[mass["variant"] == "egfr_dls", "modality"]) == {"fused"}
    assert set(mass.loc[mass["variant"] != "egfr_dls", "modality"]) == {"ct", "pet"}
    assert set(mass.loc[mass["variant"] == "full", "layer"]) == {"scale1", "fine"}
    shares = mass[["core_mass", "margin_mass", "outside_mass"]].sum(axis=1)
    np.testing.assert_allclose(shares[mass["n"] > 0], 1.0, atol=1e-6)
    bad = subprocess.run([*cmd[:-3], "--ablation", "nonsense", "-q"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown ablation" in bad.stderr


@pytest.mark.slow
def test_cli_ablations_write_each_variant_as_it_finishes_and_resume_after_a_crash(tmp_path, monkeypatch):
    """Real presets through the CLI (features-only included: its feature count is known only after the
    in-fold preparation); a crash in the third variant loses neither of the first two."""
    import pandas as pd
    from typer.testing import CliRunner

    import models.fusion.ablation as ablation
    from radfeat.extract import extract_table
    from radfeat.settings import load_settings
    from radfeat.synth import make_cohort
    from radfeat_cli.main import app

    manifest = make_cohort(tmp_path / "cohort", 16, seed=5, external_fraction=0)
    settings = load_settings()
    settings["ct"] = settings["pet"] = None  # PET descriptors only: the feature tokens of this test
    extract_table(manifest, tmp_path / "t.parquet", settings=settings, jobs=2)
    cmd = ["train", str(manifest), "--table", str(tmp_path / "t.parquet"), "--groups", "pet",
           "--preset", "tiny", "--epochs", "2", "--folds", "2", "--ablation",
           "features_only,ct_only,no_heterogeneity", "--classical", "--classical-families", "lr",
           "--classical-inner", "2x1", "-o", str(tmp_path / "runs")]  # fmt: skip
    real = ablation._run_variant

    def crash_on_ct_only(name, *args, **kwargs):
        if name == "ct_only":
            raise RuntimeError("killed")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(ablation, "_run_variant", crash_on_ct_only)
    first = CliRunner().invoke(app, cmd)
    assert isinstance(first.exception, RuntimeError)
    finished = sorted(p.name.split("_")[0] for p in (tmp_path / "runs" / "variants").glob("*.csv"))
    # classical_<key>.csv (comparators first), features_only_<key>.csv and full_<key>.csv
    assert finished == ["classical", "features", "full"]
    monkeypatch.setattr(ablation, "_run_variant", real)
    calls = []
    monkeypatch.setattr(
        ablation, "_run_variant", lambda name, *a, **k: calls.append(name) or real(name, *a, **k)
    )
    second = CliRunner().invoke(app, cmd)
    assert second.exit_code == 0, second.output
    assert (
        "[features_only] finished before" in second.output and "[classical] finished before" in second.output
    )
    assert calls == ["full", "ct_only", "no_heterogeneity"]
    table = pd.read_csv(tmp_path / "runs" / "results.csv")
    assert {"full", "features_only", "ct_only", "no_heterogeneity", "classical_lr", "suvmax"} <= set(
        table["variant"]
    )
    assert set(table.loc[table["variant"] == "suvmax", "task"]) == {"egfr"}  # 2 squamous: too few to tune
    assert "[classical (subtype)] a training part holds" in first.output
    compared = table[table["variant"] != "full"]
    assert compared["p_vs_full"].between(0, 1).all() and compared["mcnemar_p_vs_full"].between(0, 1).all()
    assert table["brier"].between(0, 1).all()
    report = (tmp_path / "runs" / "results.md").read_text()
    assert "p McNemar" in report and "`suvmax`: SUVmax alone" in report
    assert (tmp_path / "runs" / "calibration_egfr.png").stat().st_size > 0
