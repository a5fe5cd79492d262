"""One label encoder and one positive-class rule for the classical models and the fusion network."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.data import binary_labels
from models.fusion.data import _encode_labels
from models.labels import encode_binary


def test_numeric_labels_larger_level_is_positive():
    codes, classes, positive = encode_binary(pd.Series([1, 2, 2, 1], name="grade"))
    assert codes.tolist() == [0, 1, 1, 0] and classes == ["1", "2"] and positive == "2"
    assert encode_binary([0.0, 1.0, 1.0]).classes == ["0", "1"]  # 1.0 reads as "1"


def test_text_labels_need_their_positive_class_named():
    values = pd.Series(["adenocarcinoma", "squamous", "squamous"], name="subtype")
    with pytest.raises(ValueError, match=r"subtype.*--positive squamous"):
        encode_binary(values)
    codes, classes, _ = encode_binary(values, "adenocarcinoma")
    assert codes.tolist() == [1, 0, 0] and classes == ["squamous", "adenocarcinoma"]
    with pytest.raises(ValueError, match="not among"):
        encode_binary(values, "small cell")


def test_missing_and_multiclass():
    values = pd.Series([1, np.nan, 0], name="egfr")
    with pytest.raises(ValueError, match="1 missing"):
        encode_binary(values)
    assert encode_binary(values, allow_missing=True).codes.tolist() == [1, -1, 0]
    with pytest.raises(ValueError, match="one-vs-rest"):
        encode_binary(pd.Series(["a", "b", "c"], name="histology"))


def test_classical_and_fusion_encode_the_same_column_identically():
    values = pd.Series(["squamous", "adenocarcinoma", "squamous", "adenocarcinoma"], name="subtype")
    y, positive = binary_labels(values, "squamous")
    codes, classes = _encode_labels(values, "squamous")
    assert y.tolist() == codes.tolist() and classes[-1] == positive == "squamous"
    with pytest.raises(ValueError, match="--positive"):
        _encode_labels(values, None)  # the fusion path no longer picks "the last in sort order"
