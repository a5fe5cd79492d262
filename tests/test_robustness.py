"""Feature robustness: image perturbations (Zwanenburg et al. 2019), ICC per feature, stable features."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from models import stats as st
from models.robustness import feature_icc, robustness_summary, stable_features
from radfeat import perturb
from radfeat_cli.main import app

runner = CliRunner()
FAST = (
    "ct:\n  imageType: {Original: {}}\n  featureClass: {firstorder: [], shape: [], glcm: []}\n"
    "pet:\n  imageType: {Original: {}}\n  featureClass: {firstorder: []}\n"
)


def _phantom(sd: float = 20.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:30, :48, :48]
    ball = ((x - 24) ** 2 + (y - 24) ** 2 + ((z - 15) * 2) ** 2) < 12**2
    ct = sitk.GetImageFromArray(
        (np.where(ball, 40.0, -800.0) + rng.normal(0, sd, ball.shape)).astype(np.float32)
    )
    ct.SetSpacing((1.0, 1.0, 2.0))
    mask = sitk.GetImageFromArray(ball.astype(np.uint8))
    mask.CopyInformation(ct)
    return ct, mask


def _volume(mask) -> int:
    return int(sitk.GetArrayViewFromImage(mask).sum())


def test_perturbations_do_what_they_say():
    ct, mask = _phantom(sd=20.0)
    assert perturb.estimate_noise_sd(ct) == pytest.approx(20.0, rel=0.1)
    noisy = perturb.add_noise(ct, 20.0, np.random.default_rng(1))
    assert perturb.estimate_noise_sd(noisy) == pytest.approx(20.0 * np.sqrt(2), rel=0.1)
    moved = perturb.translate(mask, (3.0, 0.0, 4.0), mask=True)
    c0, c1 = perturb._centroid(mask), perturb._centroid(moved)
    assert np.allclose(np.subtract(c1, c0), (3.0, 0.0, 4.0), atol=0.05)
    for change in (-0.2, 0.1, 0.2):
        assert _volume(perturb.adapt_volume(mask, change)) / _volume(mask) == pytest.approx(
            1 + change, abs=0.02
        )
    rng = np.random.default_rng(2)
    contour = perturb.randomise_contour(ct, mask, rng)
    a, b = sitk.GetArrayViewFromImage(mask) > 0, sitk.GetArrayViewFromImage(contour) > 0
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert 0.7 < dice < 1.0  # a different but close contour
    one = perturb.perturb_case(ct, mask, None, np.random.default_rng(5))
    two = perturb.perturb_case(ct, mask, None, np.random.default_rng(5))
    assert one[3] == two[3] and np.array_equal(
        sitk.GetArrayViewFromImage(one[1]), sitk.GetArrayViewFromImage(two[1])
    )
    with pytest.raises(ValueError, match="use letters of N T R V C"):
        perturb.perturb_case(ct, mask, None, np.random.default_rng(0), "NX")


def test_feature_icc_is_icc_1_1_and_families_are_summarised():
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 1, 12)
    rows = [
        {
            "source_case": f"c{i}",
            "perturbation": k,
            "ct_tumour_original_firstorder_Mean": t + rng.normal(0, 0.1),
            "ct_tumour_original_glcm_Contrast": rng.normal(),
            "pet_tumour_suv_SUVmax": t + rng.normal(0, 0.05),
        }
        for i, t in enumerate(truth)
        for k in range(3)
    ]
    table = pd.DataFrame(rows)
    icc = feature_icc(table, [c for c in table.columns if c.startswith(("ct_", "pet_"))]).set_index("feature")
    wide = table.pivot(
        index="source_case", columns="perturbation", values="ct_tumour_original_firstorder_Mean"
    )
    ref = st.icc(wide.to_numpy()).loc["ICC1"]
    assert icc.loc["ct_tumour_original_firstorder_Mean", "icc"] == pytest.approx(ref["ICC"])
    assert icc.loc["ct_tumour_original_firstorder_Mean", "ci_lower"] == pytest.approx(ref["ci_lower"])
    assert icc.loc["ct_tumour_original_glcm_Contrast", "icc"] < 0.5
    assert stable_features(icc.reset_index(), 0.9) == [
        "ct_tumour_original_firstorder_Mean",
        "pet_tumour_suv_SUVmax",
    ]
    summary = robustness_summary(icc.reset_index()).set_index(["modality", "family"])
    assert (
        summary.loc[("ct", "glcm"), "share_robust"] == 0
        and summary.loc[("pet", "PET descriptors"), "robust"] == 1
    )
    assert summary.loc[("all", "all"), "features"] == 3


def test_robustness_command_and_stable_features_in_benchmark_and_fit(tmp_path):
    from radfeat.synth import make_cohort

    manifest = make_cohort(tmp_path / "c", n_cases=5, seed=3, external_fraction=0)
    (tmp_path / "fast.yaml").write_text(FAST)
    res = runner.invoke(
        app,
        [
            "robustness",
            str(manifest),
            "-n",
            "3",
            "--settings",
            str(tmp_path / "fast.yaml"),
            "-o",
            str(tmp_path / "rob"),
            "-q",
            "-j",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    robust = pd.read_csv(tmp_path / "rob" / "robust.csv")
    assert len(robust) > 40 and robust.n_cases.max() == 5  # a feature missing in a copy drops that case
    summary = pd.read_csv(tmp_path / "rob" / "summary.csv")
    assert {"firstorder", "shape", "glcm", "PET descriptors"} <= set(summary.family)
    assert "features robust" in " ".join(res.output.split())
    # a rerun reuses the perturbed copies (same files, same values)
    before = (tmp_path / "rob" / "cases" / "SYN0000" / "p0.json").read_text()
    again = runner.invoke(
        app,
        [
            "robustness",
            str(manifest),
            "-n",
            "3",
            "--settings",
            str(tmp_path / "fast.yaml"),
            "-o",
            str(tmp_path / "rob"),
            "-q",
        ],
    )
    assert again.exit_code == 0 and (tmp_path / "rob" / "cases" / "SYN0000" / "p0.json").read_text() == before
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "rob" / "robust.csv"), robust)
    # test-retest mode reads repeats from the manifest: the perturbed copies as "repeat scans"
    repeats = pd.read_csv(tmp_path / "rob" / "perturbed_manifest.csv").rename(
        columns={"source_case": "patient_id", "perturbation": "repeat"}
    )
    repeats.to_csv(tmp_path / "rob" / "repeats.csv", index=False)
    res = runner.invoke(
        app,
        [
            "robustness",
            str(tmp_path / "rob" / "repeats.csv"),
            "--repeat-column",
            "repeat",
            "--settings",
            str(tmp_path / "fast.yaml"),
            "-o",
            str(tmp_path / "retest"),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    retest = pd.read_csv(tmp_path / "retest" / "robust.csv")
    np.testing.assert_allclose(retest.icc.to_numpy(), robust.icc.to_numpy(), equal_nan=True, atol=1e-9)
    # benchmark and fit restricted to the robust features
    table = pd.DataFrame(
        np.random.default_rng(0).normal(size=(60, len(robust))), columns=robust.feature
    ).assign(case_id=[f"P{i}" for i in range(60)], egfr=np.r_[np.ones(30, int), np.zeros(30, int)])
    table.to_csv(tmp_path / "t.csv", index=False)
    keep = set(robust.feature[robust.icc >= 0.5])
    args = ["--stable-features", str(tmp_path / "rob" / "robust.csv"), "--icc", "0.5"]
    res = runner.invoke(
        app,
        [
            "benchmark",
            str(tmp_path / "t.csv"),
            "--label",
            "egfr",
            "--families",
            "lr",
            "--cv",
            "3x1",
            "--inner",
            "3x1",
            *args,
            "-q",
            "-o",
            str(tmp_path / "b"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"{len(keep)} feature(s) kept" in " ".join(res.output.split())
    assert json.loads((tmp_path / "b" / "run.json").read_text())["stable_features"]["icc"] == 0.5
    res = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "t.csv"),
            "--label",
            "egfr",
            "--families",
            "lr,nb",
            "--cv",
            "3x1",
            "--inner",
            "3x1",
            *args,
            "-q",
            "-o",
            str(tmp_path / "m"),
        ],
    )
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert set(card["features"]) == keep and card["table"]["stable_features"]["n_kept"] == len(keep)


def test_robustness_on_real_sarcoma_pet_ct(shared_data, tmp_path):
    """Three real soft-tissue-sarcoma PET/CT cases (PET in SUV, PET and CT on different grids), two
    perturbed copies each: every case is perturbed and extracted, PET descriptors more robust than CT
    texture is not asserted (3 cases), only that the ICCs are computed for both modalities."""
    cases = ["STS_001", "STS_002", "STS_003"]
    root = shared_data / "sts_petct"
    pd.DataFrame(
        {
            "case_id": cases,
            "ct": [str(root / c / "CT_image.nii.gz") for c in cases],
            "mask": [str(root / c / "CT_mask.nii.gz") for c in cases],
            "pet": [str(root / c / "PET_image.nii.gz") for c in cases],
            "pet_units": "SUV",
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "fast.yaml").write_text(
        "ct:\n  imageType: {Original: {}}\n  featureClass: {firstorder: []}\n"
        "pet:\n  imageType: {Original: {}}\n  featureClass: {firstorder: []}\n"
    )
    res = runner.invoke(
        app,
        [
            "robustness",
            str(tmp_path / "m.csv"),
            "-n",
            "2",
            "--settings",
            str(tmp_path / "fast.yaml"),
            "-o",
            str(tmp_path / "rob"),
            "-q",
            "-j",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    robust = pd.read_csv(tmp_path / "rob" / "robust.csv")
    assert set(robust.n_cases) == {3}
    assert robust.feature.str.startswith("ct_").any() and robust.feature.str.startswith("pet_").any()
    assert robust.icc.notna().mean() > 0.8


def test_habitat_features_and_maps_under_perturbation(tmp_path):
    """With a habitat model, habitat features get ICCs and each case's habitat maps an adjusted Rand
    index and per-habitat Dice across its perturbed copies."""
    from radfeat.synth import make_cohort

    manifest = make_cohort(tmp_path / "c", n_cases=4, seed=5, external_fraction=0)
    fit = runner.invoke(
        app, ["habitats", "fit", str(manifest), "--cohort", "train", "-o", str(tmp_path / "hm")]
    )
    assert fit.exit_code == 0, fit.output
    (tmp_path / "fast.yaml").write_text(
        "ct:\n  imageType: {Original: {}}\n  featureClass: {firstorder: []}\n"
        "pet:\n  imageType: {Original: {}}\n  featureClass: {firstorder: []}\n"
    )
    res = runner.invoke(
        app,
        [
            "robustness",
            str(manifest),
            "-n",
            "3",
            "--settings",
            str(tmp_path / "fast.yaml"),
            "--habitat-model",
            str(tmp_path / "hm"),
            "-o",
            str(tmp_path / "rob"),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    robust = pd.read_csv(tmp_path / "rob" / "robust.csv")
    assert robust.feature.str.startswith("hab_").any() and robust.feature.str.contains("_hab1_").any()
    stability = pd.read_csv(tmp_path / "rob" / "habitat_stability.csv")
    assert len(stability) == 4 and (stability.copies == 3).all()
    assert stability.adjusted_rand.between(-0.5, 1).all() and "dice_hab0" not in stability.columns
    dice = stability.filter(like="dice_hab")
    assert dice.shape[1] >= 2 and ((dice >= 0) & (dice <= 1)).all().all()
    assert "habitat maps: adjusted Rand" in " ".join(res.output.split())


def test_stable_features_are_rechosen_inside_every_training_fold():
    """The fold-wise filter's ICC equals ICC(1,1) of the same cases, and cross-validation calls it on
    each outer training part only."""
    from models.cv import CVConfig, cross_validate, outer_splits
    from models.data import load_dataset
    from models.robustness import FoldStableFeatures

    rng = np.random.default_rng(1)
    n, k = 60, 3
    names = [f"ct_tumour_original_firstorder_F{i}" for i in range(6)]
    noise = np.array([0.05, 0.1, 0.3, 0.6, 1.0, 2.0])  # F0 robust … F5 not
    truth = rng.normal(size=(n, len(names)))
    copies = pd.DataFrame(
        [
            {
                "source_case": f"P{i}",
                "perturbation": c,
                **dict(zip(names, truth[i] + rng.normal(0, noise), strict=True)),
            }
            for i in range(n)
            for c in range(k)
        ]
    )
    filt = FoldStableFeatures(copies, threshold=0.9)
    subset = [f"P{i}" for i in range(0, n, 2)]
    part = copies[copies.source_case.isin(subset)]
    ref = feature_icc(part, names)
    np.testing.assert_allclose(filt.icc(subset), ref.icc.to_numpy(), rtol=1e-10)
    assert filt(subset) == [f for f, v in zip(names, ref.icc, strict=True) if v >= 0.9]
    y = (truth[:, 0] + rng.normal(0, 1, n) > 0).astype(int)
    table = pd.DataFrame(truth, columns=names).assign(case_id=[f"P{i}" for i in range(n)], egfr=y)
    data = load_dataset(table, "egfr")
    result = cross_validate(
        data, ["lr"], CVConfig(n_splits=3, n_repeats=1, inner_splits=3, inner_repeats=1), column_filter=filt
    )
    trains = [sorted(data.ids[tr]) for _, _, tr, _ in outer_splits(data, 3, 1, 0)]
    assert filt.fitted_on[-3:] == trains  # each outer training part, never a test case
    assert all(f["kept_columns"] in (2, 3) for f in result.folds)


def test_the_robustness_folder_gives_fold_wise_stable_features_in_fit(tmp_path):
    from radfeat.synth import make_cohort

    manifest = make_cohort(tmp_path / "c", n_cases=12, seed=3, external_fraction=0)
    (tmp_path / "fast.yaml").write_text(FAST)
    res = runner.invoke(
        app,
        [
            "robustness",
            str(manifest),
            "-n",
            "2",
            "--settings",
            str(tmp_path / "fast.yaml"),
            "-o",
            str(tmp_path / "rob"),
            "-q",
            "-j",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    robust = pd.read_csv(tmp_path / "rob" / "robust.csv")
    copies = pd.read_parquet(tmp_path / "rob" / "features.parquet").reset_index()
    first = copies[copies.perturbation == 0]
    table = first[list(robust.feature)].assign(
        case_id=first.source_case.to_numpy(), egfr=pd.read_csv(manifest).egfr.to_numpy()
    )
    table.to_csv(tmp_path / "t.csv", index=False)
    res = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "t.csv"),
            "--label",
            "egfr",
            "--families",
            "lr,nb",
            "--cv",
            "3x1",
            "--inner",
            "3x1",
            "--stable-features",
            str(tmp_path / "rob"),
            "--icc",
            "0.8",
            "-q",
            "-o",
            str(tmp_path / "m"),
        ],
    )
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["table"]["stable_features"]["chosen"] == "inside every training fold"
    from models.robustness import FoldStableFeatures

    final = FoldStableFeatures(copies, 0.8)(list(table.case_id))  # the final model: all training cases
    assert [f for f in card["features"] if f.startswith(("ct_", "pet_"))] == [
        f for f in robust.feature if f in final
    ]
    # too few training cases with copies: a clear refusal, not an empty model
    few = FoldStableFeatures(copies, 0.8, source="rob")
    with pytest.raises(ValueError, match="only 2 of 2 training cases have perturbed copies"):
        few(list(table.case_id[:2]))


def test_perturbed_copies_are_reused_only_for_the_same_chain_seed_and_inputs(tmp_path):
    """A rerun with another chain or seed, or after a case's files changed, draws the copies again
    instead of silently reusing the old ones."""
    import os

    from radfeat.perturb import write_perturbed_cohort
    from radfeat.synth import make_cohort

    manifest = make_cohort(tmp_path / "c", n_cases=1, seed=2, external_fraction=0)
    out = tmp_path / "p"
    record = out / "cases" / "SYN0000" / "p0.json"
    write_perturbed_cohort(manifest, out, n_perturbations=1, chain="N", seed=0)
    first = json.loads(record.read_text())
    write_perturbed_cohort(manifest, out, n_perturbations=1, chain="N", seed=0)
    assert json.loads(record.read_text()) == first  # same inputs: reused
    write_perturbed_cohort(manifest, out, n_perturbations=1, chain="V", seed=0)
    second = json.loads(record.read_text())
    assert second["key"] != first["key"] and second["done"]["noise_ct"] == 0.0  # drawn again, V only
    listed = pd.read_csv(out / "perturbed_manifest.csv")
    assert listed.chain.tolist() == ["V"]
    write_perturbed_cohort(manifest, out, n_perturbations=1, chain="V", seed=1)
    assert json.loads(record.read_text())["key"] != second["key"]
    ct = tmp_path / "c" / "cases" / "SYN0000" / "ct.nii.gz"
    os.utime(ct, ns=(ct.stat().st_atime_ns, ct.stat().st_mtime_ns + 10**9))  # the scan was replaced
    before = json.loads(record.read_text())["key"]
    write_perturbed_cohort(manifest, out, n_perturbations=1, chain="V", seed=1)
    assert json.loads(record.read_text())["key"] != before
