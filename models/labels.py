"""One label encoder, one positive-class rule, for the classical models and the fusion network.

Rule (:func:`encode_binary`):

* two numeric levels (0/1, 1/2, …): the larger is positive, unless ``positive`` names one;
* two text levels (``adenocarcinoma`` / ``squamous``): ``positive`` must name one — radfeat never
  guesses which class a sensitivity refers to;
* missing values are refused (classical benchmark) or coded ``-1`` with ``allow_missing`` (the fusion
  network's multi-task loss masks them);
* more than two levels: refused, unless ``positive`` names one of them — then one-vs-rest (that class
  against all others, the negative class named ``"not <positive>"``).

Codes: 1 = positive, 0 = negative, -1 = missing.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["encode_binary", "LabelEncoding"]


class LabelEncoding(NamedTuple):
    """Int codes (1 positive, 0 negative, -1 missing), ``[negative, positive]`` names, positive name."""

    codes: np.ndarray
    classes: list[str]
    positive: str


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def encode_binary(
    values, positive: str | None = None, *, allow_missing: bool = False, name: str | None = None
) -> LabelEncoding:
    """Encode a two-class label column by the rule in the module docstring.

    Raises
    ------
    ValueError
        Naming the column, the classes found and the fix (``--positive CLASS``).
    """
    s = pd.Series(values)
    name = name or (str(s.name) if s.name is not None else "label")
    missing = s.isna().to_numpy()
    if missing.any() and not allow_missing:
        raise ValueError(
            f"label {name!r} has {int(missing.sum())} missing value(s); drop those cases first "
            "(radfeat benchmark --drop-missing drops them and prints how many)"
        )
    present = s[~missing]
    numeric = pd.api.types.is_numeric_dtype(present)
    levels = sorted({_text(v) for v in present}, key=lambda v: (float(v), v) if numeric else (0, v))
    one_vs_rest = len(levels) > 2 and positive is not None and _text(positive) in levels
    if len(levels) != 2 and not one_vs_rest:
        raise ValueError(
            f"label {name!r} must have exactly two classes, found {levels[:6]}"
            + ("; for one-vs-rest name the positive class (--positive CLASS)" if len(levels) > 2 else "")
        )
    if positive is None:
        if not numeric:
            raise ValueError(
                f"label {name!r} has classes {levels}; say which is positive (e.g. --positive {levels[1]})"
            )
        positive = levels[1]  # the larger numeric level
    positive = _text(positive)
    if positive not in levels:
        raise ValueError(f"positive class {positive!r} not among label {name!r} classes {levels}")
    # One-vs-rest when the user named one of several classes.
    negative = "not " + positive if one_vs_rest else next(v for v in levels if v != positive)
    codes = np.full(len(s), -1, dtype=np.int32)
    text = np.array([_text(v) for v in s.to_numpy()], dtype=object)
    codes[~missing] = (text[~missing] == positive).astype(np.int32)
    return LabelEncoding(codes, [negative, positive], positive)
