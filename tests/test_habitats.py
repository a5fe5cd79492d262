"""Habitats: recovery of known sub-regions, stability, leakage guard, heterogeneity maths, workflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from radfeat.features.heterogeneity import diversity, ith_score, msi_features, msi_matrix
from radfeat.habitats import (
    HabitatModel,
    HabitatSettings,
    Supervoxels,
    clean_fragments,
    local_entropy,
    supervoxels,
    voxel_feature_maps,
)
from radfeat.synth import habitat_phantom, make_cohort
from radfeat_cli.main import app

runner = CliRunner()
#: The phantoms are on a 1 × 1 × 2 mm CT grid: keep it (a 2 mm grid would blur their thin rims).
PHANTOM = HabitatSettings(grid_spacing_mm=None, k_range=(3, 3))


def _phantoms(seeds):
    return {f"P{s}": habitat_phantom(np.random.default_rng(s)) for s in seeds}


def _fit_apply(settings, train, test):
    maps = {k: voxel_feature_maps(ct, m, pet, settings) for k, (ct, pet, m, _) in {**train, **test}.items()}
    sv = {k: supervoxels(v, settings) for k, v in maps.items()}
    model = HabitatModel(settings).fit({k: sv[k] for k in train})
    labels = {
        k: sitk.GetArrayFromImage(maps[k].to_grid(model.apply(maps[k], sv[k]), test[k][0])) for k in test
    }
    return model, labels


def test_habitats_recover_known_subregions():
    train, test = _phantoms(range(4)), _phantoms(range(10, 14))
    model, labels = _fit_apply(PHANTOM, train, test)
    for case, (_, _, _, truth) in test.items():
        inside = truth > 0
        ari = adjusted_rand_score(truth[inside], labels[case][inside])
        assert ari >= 0.8, f"{case}: ARI {ari:.3f}"
        # Habitats are ordered by mean SUV then HU: 1 necrosis, 2 ground glass, 3 solid rim.
        agreement = np.mean(labels[case][inside] == truth[inside])
        assert agreement > 0.9
    suv = model.habitat_means_[:, model.feature_names_.index("suv")]
    assert np.all(np.diff(suv) > 0)


def test_labels_stable_under_case_order_and_seed():
    train, test = _phantoms(range(4)), _phantoms([20])
    _, a = _fit_apply(PHANTOM, train, test)
    _, b = _fit_apply(PHANTOM, dict(reversed(list(train.items()))), test)
    np.testing.assert_array_equal(a["P20"], b["P20"])
    other_seed = HabitatSettings(grid_spacing_mm=None, k_range=(3, 3), random_state=7)
    _, c = _fit_apply(other_seed, train, test)
    inside = test["P20"][3] > 0
    assert np.mean(a["P20"][inside] == c["P20"][inside]) > 0.95  # same habitat numbering


def test_calinski_harabasz_chooses_k_on_separated_supervoxels():
    rng = np.random.default_rng(0)
    centres = np.array([[-2, -2, 0, 0], [0, 2, 1, 1], [2, -1, 3, -1]], float)

    def fake_case(n=40):
        lab = rng.integers(0, 3, n)
        means = centres[lab] + 0.2 * rng.standard_normal((n, 4))
        return Supervoxels(np.zeros(0, int), means, means.copy(), np.full(n, 20))

    model = HabitatModel(HabitatSettings(k_range=(2, 8))).fit({f"c{i}": fake_case() for i in range(5)})
    assert model.k_ == 3
    assert model.scores_[3]["silhouette"] > 0.7
    gmm = HabitatModel(HabitatSettings(k_range=(2, 6), method="gmm")).fit(
        {f"c{i}": fake_case() for i in range(5)}
    )
    assert gmm.k_ == 3
    new = fake_case()
    assert len(np.unique(gmm.predict_supervoxels(new))) == 3


def test_model_save_load_round_trip_is_safe_and_identical(tmp_path):
    train, test = _phantoms(range(3)), _phantoms([30])
    ct, pet, mask, _ = test["P30"]
    for method in ("kmeans", "gmm"):
        s = HabitatSettings(grid_spacing_mm=None, k_range=(3, 3), method=method)
        maps = voxel_feature_maps(ct, mask, pet, s)
        model = HabitatModel(s).fit(
            {k: supervoxels(voxel_feature_maps(c, m, p, s), s) for k, (c, p, m, _) in train.items()}
        )
        model.save(tmp_path / method)
        loaded = HabitatModel.load(tmp_path / method)
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(model.apply(maps)), sitk.GetArrayFromImage(loaded.apply(maps))
        )
        assert loaded.train_ids_ == sorted(train) and loaded.fingerprint() == model.fingerprint()
        with np.load(tmp_path / method / "habitat_model.npz", allow_pickle=False) as data:
            assert all(data[k].dtype != object for k in data.files)
    with pytest.raises(AttributeError, match="not fitted"):
        HabitatModel(PHANTOM).apply(maps)


def test_ct_only_mode_needs_no_pet():
    ((ct, pet, mask, truth),) = _phantoms([5]).values()
    s = HabitatSettings(grid_spacing_mm=None, mode="ct")
    maps = voxel_feature_maps(ct, mask, None, s)
    assert maps.names == ("ct_hu", "ct_entropy") and maps.pet is None
    with pytest.raises(ValueError, match="needs a PET"):
        voxel_feature_maps(ct, mask, None, HabitatSettings())


def test_local_entropy_values():
    roi = np.ones((5, 5, 5), bool)
    flat = np.zeros((5, 5, 5))
    assert np.allclose(local_entropy(flat, roi), 0.0)
    checker = (np.indices((5, 5, 5)).sum(axis=0) % 2).astype(float)
    centre = local_entropy(checker, roi, box=3, bins=2)[2, 2, 2]
    p = 13 / 27  # 13 of the 27 neighbours share the centre's parity class opposite
    assert centre == pytest.approx(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))


def test_ith_score_msi_and_diversity_by_hand():
    # 2D: habitat 1 in one piece of 4 px; habitat 2 in two pieces (2 px and 1 px).
    lab = np.array([[1, 1, 0, 2], [1, 1, 0, 0], [0, 0, 0, 2], [0, 0, 0, 2]])
    # S_total = 7; Σ S_max/n = 4/1 + 2/2 = 5 → ITH = 1 − 5/7.
    assert ith_score(lab) == pytest.approx(1 - 5 / 7)
    assert ith_score(np.ones((3, 3), int)) == 0.0
    # 3D MSI on a 1×1×3 strip [1, 2, 2]: face pairs (1,2) ×1, (2,2) ×1, and the border with region 0:
    # along x: 0-1, 2-0; along y and z each voxel touches 0 twice → 6 more for 1 (4 of them: y,z) …
    strip = np.array([[[1, 2, 2]]])
    m = msi_matrix(strip, 2)
    assert m[1, 2] == m[2, 1] == 1 and m[2, 2] == 1
    assert (
        m[0, 1] == 5 and m[0, 2] == 2 * 4 + 1
    )  # voxel 1: 4 lateral + 1 end; voxels 2: 4 lateral each + 1 end
    assert m[0, 0] == 0
    f = msi_features(m)
    total = m[np.triu_indices(3)].sum()
    assert f["p_1_2"] == pytest.approx(1 / total) and f["p_0_2"] == pytest.approx(9 / total)
    assert sum(v for k, v in f.items() if k.startswith("p_")) == pytest.approx(1.0)
    d = diversity(np.array([0.5, 0.5]))
    assert d["shannon"] == pytest.approx(np.log(2)) and d["simpson"] == pytest.approx(0.5)


def test_clean_fragments_absorbs_small_pieces():
    arr = np.ones((1, 8, 8), np.uint8)
    arr[0, 0:4, 0:4] = 2  # main habitat-2 region (16 px)
    arr[0, 6, 6] = 2  # a 1-voxel fragment inside habitat 1
    img = sitk.GetImageFromArray(arr)
    out = sitk.GetArrayFromImage(clean_fragments(img, min_voxels=3))
    assert out[0, 6, 6] == 1 and (out[0, 0:4, 0:4] == 2).all()


def test_fit_never_reads_test_cases(tmp_path, monkeypatch):
    """Leakage guard: fitting reads only the training cases' files."""
    import radfeat.habitats.workflow as workflow
    import radfeat.io as image_io
    from radfeat.manifest import load_manifest
    from radfeat.settings import load_settings

    manifest = make_cohort(tmp_path, n_cases=6, seed=4, external_fraction=0.5)
    rows = load_manifest(manifest).table.to_dict("records")
    train_ids = ["SYN0000", "SYN0001", "SYN0002"]
    seen: list[str] = []
    real_read = image_io.read_image

    def spy(path, *a, **k):
        seen.append(str(path))
        return real_read(path, *a, **k)

    monkeypatch.setattr(image_io, "read_image", spy)  # every reader goes through load_case → read_image
    for case in ("SYN0003", "SYN0004", "SYN0005"):  # test cases made unreadable
        for f in (tmp_path / "cases" / case).iterdir():
            f.write_bytes(b"not an image")
    model = workflow.fit_habitat_model(rows, train_ids, load_settings())
    assert model.train_ids_ == train_ids
    assert seen and all(any(t in p for t in train_ids) for p in seen)
    with pytest.raises(Exception, match="not in the manifest"):
        workflow.fit_habitat_model(rows, ["NOPE"], load_settings())


def test_cli_fit_apply_and_extract_join(tmp_path):
    manifest = make_cohort(tmp_path / "c", n_cases=6, seed=8, external_fraction=0.5)
    fitted = runner.invoke(
        app, ["habitats", "fit", str(manifest), "--cohort", "train", "-o", str(tmp_path / "m")]
    )
    assert fitted.exit_code == 0, fitted.output
    assert "Calinski-Harabasz" in fitted.stdout
    out = tmp_path / "hab.parquet"
    applied = runner.invoke(
        app, ["habitats", "apply", str(manifest), "--model", str(tmp_path / "m"), "-o", str(out), "-q"]
    )
    assert applied.exit_code == 0, applied.output
    table = pd.read_parquet(out)
    k = int(table["hab_k"].iloc[0])
    assert len(table) == 6 and {f"hab_h{h}_fraction" for h in range(1, k + 1)} <= set(table.columns)
    fractions = table[[f"hab_h{h}_fraction" for h in range(1, k + 1)]].sum(axis=1)
    np.testing.assert_allclose(fractions, 1.0)
    assert any(c.startswith("ct_hab1_original_glcm_") for c in table.columns)
    assert any(c.startswith("pet_hab1_original_firstorder_") for c in table.columns)
    labels = sorted((tmp_path / "hab_labels").glob("*_habitats.nii.gz"))
    assert len(labels) == 6
    ct = sitk.ReadImage(str(tmp_path / "c" / "cases" / "SYN0000" / "ct.nii.gz"))
    assert sitk.ReadImage(str(labels[0])).GetSize() == ct.GetSize()
    missing = runner.invoke(app, ["habitats", "fit", str(manifest), "-o", str(tmp_path / "x")])
    assert missing.exit_code == 2


@pytest.mark.realdata
def test_sarcoma_petct_cases_run_end_to_end(tmp_path, shared_data):
    from radfeat.extract import extract_table
    from radfeat.habitats import fit_habitat_model
    from radfeat.settings import load_settings

    cases = sorted(p for p in (shared_data / "sts_petct").iterdir() if p.is_dir())[:4]
    rows = [
        {
            "case_id": c.name,
            "ct": str(c / "CT_image.nii.gz"),
            "mask": str(c / "CT_mask.nii.gz"),
            "pet": str(c / "PET_image.nii.gz"),
            "pet_units": "SUV",
        }
        for c in cases
    ]
    manifest = tmp_path / "sts.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    settings = load_settings()
    settings["habitats"]["radiomics"] = False  # keep the test short; radiomics is covered above
    model = fit_habitat_model(rows, [r["case_id"] for r in rows[:2]], settings)
    model.save(tmp_path / "model")
    result = extract_table(
        manifest,
        tmp_path / "h.parquet",
        settings=settings,
        habitat_model=tmp_path / "model",
        habitats_only=True,
    )
    assert len(result.table) == 4 and not result.summary.failures
    assert (result.table["hab_ith_score_3d"].between(0, 1)).all()
    assert result.table["hab_h1_SUVmean"].notna().all()


def test_habitat_model_is_refitted_inside_each_cv_training_fold(tmp_path):
    """Classical benchmark with habitat features: the population model sees only training cases."""
    from models.cv import CVConfig, cross_validate
    from models.data import load_dataset
    from models.fold_features import HabitatFoldFeatures
    from radfeat.manifest import load_manifest
    from radfeat.settings import load_settings

    manifest = make_cohort(tmp_path, n_cases=12, seed=11, external_fraction=0)
    rows = load_manifest(manifest).table.to_dict("records")
    settings = load_settings()
    settings["habitats"].update(radiomics=False, k_range=[2, 3])
    labels = pd.read_csv(manifest, dtype={"case_id": str})
    table = labels[["case_id", "egfr"]].assign(ct_tumour_original_firstorder_Dummy=0.0)
    data = load_dataset(table, "egfr")
    hook = HabitatFoldFeatures(rows, settings)
    result = cross_validate(
        data,
        ["lr"],
        CVConfig(n_splits=3, n_repeats=1, inner_splits=2, inner_repeats=1, nested=False),
        fold_features=hook,
    )
    assert len(result.folds) == 3
    for fold in result.folds:
        trained = set(fold["fold_features_fitted_on"])
        assert trained and not trained & set(fold["test_ids"])
        assert trained | set(fold["test_ids"]) == set(data.ids)


def test_stage1_supervoxels_kept_at_fit_are_reused_identically(tmp_path, monkeypatch):
    """`habitats fit` keeps the training cases' supervoxels; applying the model to those cases reuses
    them (no second k-means) with identical features; changed inputs are clustered again."""
    import os

    import radfeat.habitats.workflow as workflow
    from radfeat.habitats.stage1 import Stage1Store
    from radfeat.manifest import load_manifest
    from radfeat.settings import load_settings

    manifest = make_cohort(tmp_path / "c", n_cases=4, seed=8, external_fraction=0.5)
    rows = load_manifest(manifest).rows()
    settings = load_settings()
    settings["habitats"]["radiomics"] = False
    train = [r["case_id"] for r in rows[:2]]
    store_dir = tmp_path / "model" / "stage1"
    model = workflow.fit_habitat_model(rows, train, settings, stage1=store_dir)
    assert sorted(p.stem for p in store_dir.glob("*.npz")) == sorted(train)
    fresh = {r["case_id"]: workflow.habitat_case_features(r, model, settings) for r in rows}

    clustered: list[int] = []
    real = workflow.supervoxels

    def spy(maps, s=None):
        clustered.append(maps.n_voxels)
        return real(maps, s)

    monkeypatch.setattr(workflow, "supervoxels", spy)
    store = Stage1Store(store_dir, read_only=True)
    reused = {r["case_id"]: workflow.habitat_case_features(r, model, settings, stage1=store) for r in rows}
    assert len(clustered) == len(rows) - len(train)  # only the cases the model was not fitted on
    pd.testing.assert_frame_equal(pd.DataFrame(reused), pd.DataFrame(fresh))
    # A training case whose CT file changed is clustered again, and a read-only store is not written.
    ct = Path(rows[0]["ct"])
    os.utime(ct, ns=(ct.stat().st_atime_ns, ct.stat().st_mtime_ns + 10**9))
    before = (store_dir / f"{rows[0]['case_id']}.npz").stat().st_mtime_ns
    workflow.habitat_case_features(rows[0], model, settings, stage1=store)
    assert len(clustered) == len(rows) - len(train) + 1
    assert (store_dir / f"{rows[0]['case_id']}.npz").stat().st_mtime_ns == before


def test_cv_folds_cluster_each_case_once(tmp_path, monkeypatch):
    """Stage 1 depends on the case alone: across CV folds every case is clustered once."""
    import radfeat.habitats.workflow as workflow
    from models.fold_features import HabitatFoldFeatures
    from radfeat.manifest import load_manifest
    from radfeat.settings import load_settings

    manifest = make_cohort(tmp_path, n_cases=6, seed=12, external_fraction=0)
    rows = load_manifest(manifest).rows()
    settings = load_settings()
    settings["habitats"].update(radiomics=False, k_range=[2, 3])
    clustered: list[int] = []
    real = workflow.supervoxels
    monkeypatch.setattr(workflow, "supervoxels", lambda m, s=None: clustered.append(1) or real(m, s))
    hook = HabitatFoldFeatures(rows, settings)
    ids = [r["case_id"] for r in rows]
    first = hook(ids[:4], ids)
    hook(ids[2:], ids)
    assert len(clustered) == len(ids)
    fresh = HabitatFoldFeatures(rows, settings)(ids[:4], ids)
    pd.testing.assert_frame_equal(first, fresh)
