"""Synthetic cohort: determinism, the documented label–phenotype link, and signal=0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import stats

from radfeat.io import read_image, read_mask
from radfeat.synth import make_cohort, synthesize_case


def _suvmax(manifest, case_id) -> float:
    root = manifest.parent
    return float(sitk.GetArrayFromImage(read_image(root / "cases" / case_id / "pet.nii.gz")).max())


def test_same_seed_same_cohort_different_seed_differs(tmp_path):
    a = make_cohort(tmp_path / "a", n_cases=3, seed=11)
    b = make_cohort(tmp_path / "b", n_cases=3, seed=11)
    c = make_cohort(tmp_path / "c", n_cases=3, seed=12)
    for name in ("ct.nii.gz", "pet.nii.gz", "mask.nii.gz"):
        x = sitk.GetArrayFromImage(sitk.ReadImage(str(a.parent / "cases/SYN0001" / name)))
        y = sitk.GetArrayFromImage(sitk.ReadImage(str(b.parent / "cases/SYN0001" / name)))
        z = sitk.GetArrayFromImage(sitk.ReadImage(str(c.parent / "cases/SYN0001" / name)))
        assert np.array_equal(x, y)
        assert not np.array_equal(x, z)
    da, db = pd.read_csv(a), pd.read_csv(b)
    pd.testing.assert_frame_equal(da, db)


def test_case_independent_of_cohort_size(tmp_path):
    small = make_cohort(tmp_path / "s", n_cases=2, seed=5, external_fraction=0.0)
    big = make_cohort(tmp_path / "b", n_cases=4, seed=5, external_fraction=0.0)
    x = sitk.GetArrayFromImage(sitk.ReadImage(str(small.parent / "cases/SYN0001/ct.nii.gz")))
    y = sitk.GetArrayFromImage(sitk.ReadImage(str(big.parent / "cases/SYN0001/ct.nii.gz")))
    assert np.array_equal(x, y)


def test_phantom_anatomy_is_realistic():
    case = synthesize_case("X", np.random.default_rng([0, 0]))
    hu = sitk.GetArrayFromImage(case.ct)
    mask = sitk.GetArrayFromImage(case.mask).astype(bool)
    suv = sitk.GetArrayFromImage(case.pet)
    assert -900 < np.median(hu) < -780  # lung parenchyma dominates the field of view
    assert hu[mask].max() > -100  # the nodule has a solid part
    assert case.pet.GetSpacing()[0] > case.ct.GetSpacing()[0]  # PET grid is coarser
    assert 0.4 < np.median(suv) < 1.0  # background SUV
    assert suv.max() > 2.0


def _draw(n: int, signal: float) -> pd.DataFrame:
    rows = []
    for i in range(n):
        case = synthesize_case(f"C{i}", np.random.default_rng([2024, i]), signal=signal)
        suv = sitk.GetArrayFromImage(case.pet)
        rows.append({**case.clinical, **case.truth, "suvmax": float(suv.max())})
    return pd.DataFrame(rows)


def test_label_phenotype_link_is_planted_and_removable():
    strong = _draw(60, signal=1.0)
    mut, wt = strong[strong.egfr == 1], strong[strong.egfr == 0]
    assert mut.suvmax.mean() < wt.suvmax.mean()
    assert mut.ggo_fraction.mean() > wt.ggo_fraction.mean() + 0.15
    assert stats.mannwhitneyu(mut.suvmax, wt.suvmax).pvalue < 0.01
    sq = strong[strong.subtype == "squamous"]
    ad = strong[strong.subtype == "adenocarcinoma"]
    assert sq.suvmax.mean() > ad.suvmax.mean()
    assert sq.necrosis.mean() > ad.necrosis.mean()

    none = _draw(60, signal=0.0)
    mut0, wt0 = none[none.egfr == 1], none[none.egfr == 0]
    # Same clinical draws (labels depend on the seed only), phenotype independent of labels.
    assert (none.egfr.values == strong.egfr.values).all()
    assert stats.mannwhitneyu(mut0.ggo_fraction, wt0.ggo_fraction).pvalue > 0.01
    assert abs(mut0.ggo_fraction.mean() - wt0.ggo_fraction.mean()) < 0.1


def test_external_cohort_has_scanner_shift(tmp_path):
    manifest = make_cohort(tmp_path, n_cases=4, seed=2, external_fraction=0.5)
    df = pd.read_csv(manifest)
    assert list(df.cohort) == ["train", "train", "external", "external"]
    ct_int = read_image(manifest.parent / df.ct[0])
    ct_ext = read_image(manifest.parent / df.ct[3])
    assert ct_ext.GetSpacing()[2] > ct_int.GetSpacing()[2]
    assert read_mask(manifest.parent / df["mask"][3]).GetSize() == ct_ext.GetSize()
