"""A text value in a numeric feature column never removes that feature silently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.data import load_dataset


def _csv(tmp_path, suvmax_cells: dict[int, str], extra: dict | None = None):
    rng = np.random.default_rng(0)
    n = 40
    frame = pd.DataFrame(
        {
            "case_id": [f"P{i:02d}" for i in range(n)],
            "egfr": rng.integers(0, 2, n),
            "pet_tumour_suv_SUVmax": np.round(rng.uniform(2, 15, n), 2).astype(object),
            "ct_tumour_original_firstorder_Mean": rng.normal(0, 1, n),
            **(extra or {}),
        }
    )
    for row, text in suvmax_cells.items():
        frame.loc[row, "pet_tumour_suv_SUVmax"] = text
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


def test_na_token_is_a_missing_value_not_a_dropped_column(tmp_path):
    path = _csv(tmp_path, {3: "n/a", 7: "NA"})
    data = load_dataset(path, "egfr")
    assert "pet_tumour_suv_SUVmax" in data.X.columns  # before: the column vanished ("1 feature")
    assert np.isnan(data.X["pet_tumour_suv_SUVmax"].iloc[3]) and np.isnan(
        data.X["pet_tumour_suv_SUVmax"].iloc[7]
    )
    assert data.X["pet_tumour_suv_SUVmax"].notna().sum() == 38
    assert any("P03" in n and "n/a" in n and "pet_tumour_suv_SUVmax" in n for n in data.notes)


def test_decimal_comma_fails_naming_column_rows_and_values(tmp_path):
    path = _csv(tmp_path, {5: "12,5", 9: "3,25"})
    with pytest.raises(ValueError, match=r"pet_tumour_suv_SUVmax.*P05='12,5'.*P09='3,25'.*decimal comma"):
        load_dataset(path, "egfr")


def test_other_text_in_a_feature_column_fails_clearly(tmp_path):
    path = _csv(tmp_path, {2: "<0.5"})
    with pytest.raises(ValueError, match=r"pet_tumour_suv_SUVmax.*P02='<0.5'"):
        load_dataset(path, "egfr")


def test_text_columns_of_a_foreign_table_are_listed_as_dropped(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "ID": range(30),
            "f1": rng.normal(size=30),
            "sex": rng.choice(["M", "F"], 30),
            "Target": rng.integers(0, 2, 30),
        }
    )
    path = tmp_path / "foreign.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(path, "Target")
    assert list(data.X.columns) == ["f1"]
    assert "sex" in data.dropped and "not numeric" in data.dropped["sex"]


def test_every_feature_column_follows_the_documented_scheme():
    from radfeat.features.pet import pet_descriptors
    from radfeat.features.radiomics import RadiomicsEngine, column_name
    from radfeat.settings import load_settings
    from radfeat.table import parse_column

    settings = load_settings()
    names = [column_name("ct", "tumour", k) for k in RadiomicsEngine(settings["ct"]).feature_keys()]
    names += [column_name("pet", "hab2", k) for k in RadiomicsEngine(settings["pet"]).feature_keys()]
    suv = np.random.default_rng(0).uniform(1, 8, (9, 9, 9))
    names += [f"pet_tumour_suv_{k}" for k in pet_descriptors(suv, suv > 2, (4.0, 4.0, 4.0))]
    names += ["hab_h1_volume_ml", "hab_msi_contrast", "hab_ith_score_3d", "hab_diversity_shannon"]
    parsed = [parse_column(n) for n in names]
    assert {p.modality for p in parsed} == {"ct", "pet", "hab"}
    glcm = parse_column("ct_tumour_wavelet-LLH_glcm_Contrast")
    assert (glcm.image_type, glcm.family, glcm.feature) == ("wavelet-LLH", "glcm", "Contrast")
    assert parse_column("pet_tumour_suv_SUVpeak").feature == "SUVpeak"
    for not_a_feature in ("pet_units", "pet_mask", "case_id", "clin_age", "diagnostics_hab1_ct"):
        with pytest.raises(ValueError, match="docs/columns.md"):
            parse_column(not_a_feature)
