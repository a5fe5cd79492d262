"""Every cache key is derived from content: inputs' fingerprints, the settings that affect the result
and the code version — never from a class or folder name, never from unrelated settings."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radfeat.extract import extract_table
from radfeat.settings import load_settings
from radfeat.synth import make_cohort

FAST = """
ct:
  imageType: {Original: {}}
  featureClass: {firstorder: [], glcm: []}
  setting: {resampledPixelSpacing: [2.0, 2.0, 2.0]}
pet:
  imageType: {Original: {}}
  featureClass: {firstorder: []}
habitats: {radiomics: false, max_supervoxels: 20}
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("keys")
    (folder / "s.yaml").write_text(FAST)
    return make_cohort(folder / "cohort", n_cases=4, seed=11), load_settings(folder / "s.yaml")


def _files(cache: Path, provider: str) -> set[str]:
    return {p.name for p in cache.glob(f"*__{provider}__*.json")}


def test_each_provider_hashes_only_the_settings_it_uses(tmp_path, cohort):
    manifest, settings = cohort
    out = tmp_path / "t.parquet"
    cache = tmp_path / "t.parquet.cache"
    first = extract_table(manifest, out, settings=settings)
    radiomics, descriptors = _files(cache, "radiomics"), _files(cache, "pet_descriptors")
    assert len(radiomics) == len(descriptors) == 4
    # Settings no whole-tumour provider uses: nothing is recomputed.
    edited = copy.deepcopy(settings)
    edited["habitats"]["k_range"] = [3, 5]
    edited["run"]["timeout_s"] = 123
    again = extract_table(manifest, out, settings=edited)
    assert again.summary.n_cached == 4
    pd.testing.assert_frame_equal(again.table, first.table)
    # A PET-descriptor setting: only that provider is recomputed.
    edited["pet_descriptors"]["peak_sphere_ml"] = 0.5
    third = extract_table(manifest, out, settings=edited)
    assert third.summary.n_cached == 0
    assert _files(cache, "radiomics") == radiomics
    assert len(_files(cache, "pet_descriptors") - descriptors) == 4
    changed = [c for c in first.table.columns if c.startswith("pet_tumour_suv_SUVpeak")]
    assert changed and not np.allclose(third.table[changed], first.table[changed])
    same = [c for c in first.table.columns if c.startswith("ct_tumour_")]
    pd.testing.assert_frame_equal(third.table[same], first.table[same])


def test_every_case_reading_setting_is_in_every_provider_key(tmp_path, cohort):
    """``run.mask_label`` and ``run.suv_variant`` change how a case is read, so every provider's
    cached features must be keyed by them (a cache reused after an SUV-variant change is wrong)."""
    from radfeat.extract import default_providers
    from radfeat.habitats import fit_habitat_model
    from radfeat.manifest import load_manifest
    from radfeat.providers.habitats import HabitatFeatures

    manifest, settings = cohort
    rows = load_manifest(manifest).rows()
    model_dir = tmp_path / "model"
    fixed = copy.deepcopy(settings)
    fixed["habitats"]["k_range"] = [2, 2]
    fit_habitat_model(rows, [r["case_id"] for r in rows], fixed).save(model_dir)

    def keys(s: dict) -> list[str]:
        return [p.cache_key() for p in (*default_providers(s), HabitatFeatures(model_dir, s))]

    base = keys(settings)
    for key, value in (("suv_variant", "lbm"), ("mask_label", 2)):
        edited = copy.deepcopy(settings)
        edited["run"][key] = value
        assert all(a != b for a, b in zip(base, keys(edited), strict=True)), key


def test_habitat_model_refitted_into_the_same_folder_recomputes(tmp_path, cohort):
    from radfeat.habitats import fit_habitat_model
    from radfeat.manifest import load_manifest

    manifest, settings = cohort
    rows = load_manifest(manifest).rows()
    ids = [r["case_id"] for r in rows]
    model_dir = tmp_path / "model"
    out = tmp_path / "h.parquet"
    fixed = copy.deepcopy(settings)
    fixed["habitats"]["k_range"] = [2, 2]
    fit_habitat_model(rows, ids, fixed).save(model_dir)
    first = extract_table(manifest, out, settings=fixed, habitat_model=model_dir, habitats_only=True)
    assert set(first.table["hab_k"]) == {2.0}
    fixed["habitats"]["k_range"] = [3, 3]
    fit_habitat_model(rows, ids, fixed).save(model_dir)  # same folder, new model
    second = extract_table(manifest, out, settings=fixed, habitat_model=model_dir, habitats_only=True)
    assert second.summary.n_cached == 0
    assert set(second.table["hab_k"]) == {3.0}  # before: the old model, cached per process by path


def test_habitat_fold_features_key_follows_inputs_and_settings(tmp_path, cohort):
    from models.fold_features import HabitatFoldFeatures
    from radfeat.manifest import load_manifest

    manifest, settings = cohort
    rows = load_manifest(manifest).rows()
    key = HabitatFoldFeatures(rows, settings).cache_key()
    assert HabitatFoldFeatures(copy.deepcopy(rows), copy.deepcopy(settings)).cache_key() == key
    other = copy.deepcopy(settings)
    other["run"]["timeout_s"] = 5
    assert HabitatFoldFeatures(rows, other).cache_key() == key  # not a habitat setting
    other["habitats"]["k_range"] = [2, 3]
    assert HabitatFoldFeatures(rows, other).cache_key() != key
    moved = copy.deepcopy(rows)
    moved[0]["mask"] = rows[1]["mask"]  # a changed manifest
    assert HabitatFoldFeatures(moved, settings).cache_key() != key
    image = Path(rows[2]["ct"])
    image.write_bytes(image.read_bytes())  # same path, new file (size/mtime)
    import os

    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10_000_000))
    assert HabitatFoldFeatures(rows, settings).cache_key() != key


def test_cross_validation_reuses_folds_only_under_the_same_hook_key(tmp_path):
    from models.cv import CVConfig, cross_validate
    from models.data import load_dataset

    rng = np.random.default_rng(0)
    n = 40
    frame = pd.DataFrame({"ct_tumour_original_firstorder_F0": rng.normal(size=n)})
    frame["case_id"] = [f"C{i}" for i in range(n)]
    frame["egfr"] = (frame.iloc[:, 0] + rng.normal(size=n) > 0).astype(int)
    data = load_dataset(frame, "egfr")

    class Hook:
        def __init__(self, key: str, shift: float) -> None:
            self.key, self.shift, self.calls = key, shift, 0

        def cache_key(self) -> str:
            return self.key

        def __call__(self, train_ids, case_ids):
            self.calls += 1
            values = rng.normal(size=len(case_ids)) + self.shift
            return pd.DataFrame({"hab_x": values}, index=list(case_ids))

    config = CVConfig(n_splits=2, n_repeats=1, nested=False)
    a = Hook("A", 0.0)
    cross_validate(data, ["lr"], config, cache_dir=tmp_path, fold_features=a)
    assert a.calls == 2
    again = Hook("A", 5.0)
    cross_validate(data, ["lr"], config, cache_dir=tmp_path, fold_features=again)
    assert again.calls == 0  # same key: cached folds
    changed = Hook("B", 5.0)
    cross_validate(data, ["lr"], config, cache_dir=tmp_path, fold_features=changed)
    assert changed.calls == 2  # before: keyed by the class name "Hook", reused stale folds

    class NoKey:
        def __call__(self, train_ids, case_ids):
            return pd.DataFrame(index=list(case_ids))

    with pytest.raises(TypeError, match="cache_key"):
        cross_validate(data, ["lr"], config, cache_dir=tmp_path, fold_features=NoKey())
