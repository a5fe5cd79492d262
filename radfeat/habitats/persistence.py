"""Habitat model files: ``habitat_model.npz`` (arrays, no pickle) and ``habitat_model.json`` (the rest).

The JSON is written last and records the SHA-256 of the NPZ (:func:`radfeat.utils.atomic.write_pair`):
a refit interrupted between the two renames, or arrays from another model, are refused on loading.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from radfeat.utils.atomic import IncompleteWriteError, read_pair_manifest, write_pair

if TYPE_CHECKING:
    from radfeat.habitats.model import HabitatModel

__all__ = ["save_model", "load_model", "MODEL_JSON", "MODEL_NPZ"]

MODEL_JSON = "habitat_model.json"
MODEL_NPZ = "habitat_model.npz"
FORMAT = "radfeat-habitat-model"


def save_model(model: HabitatModel, folder: str | Path) -> Path:
    """Write a fitted model (settings, k, scores, training ids, centres) into ``folder``."""
    model._check_fitted()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "version": 2,
        "settings": asdict(model.settings),
        "k": model.k_,
        "scores": {str(k): v for k, v in model.scores_.items()},
        "train_ids": model.train_ids_,
        "feature_names": model.feature_names_,
        "fingerprint": model.fingerprint(),
    }
    arrays = {"centers": model.centers_, "habitat_means": model.habitat_means_}
    arrays.update({f"gmm_{k}": v for k, v in model.gmm_.items()})

    def write_arrays(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    write_pair({folder / MODEL_NPZ: write_arrays}, folder / MODEL_JSON, meta)
    return folder


def load_model(folder: str | Path) -> HabitatModel:
    """Read a model written by :func:`save_model`.

    Raises
    ------
    FileNotFoundError
        No model in ``folder``.
    ValueError
        Not a radfeat habitat model, or its two files do not belong together (interrupted write).
    """
    from radfeat.habitats.model import HabitatModel
    from radfeat.habitats.settings import HabitatSettings

    folder = Path(folder)
    meta_path = folder / MODEL_JSON
    if not meta_path.exists():
        raise FileNotFoundError(
            f"no habitat model in {folder} ({MODEL_JSON} missing); run `radfeat habitats fit` first"
        )
    try:
        meta = read_pair_manifest(meta_path)
    except IncompleteWriteError as exc:
        raise ValueError(f"habitat model in {folder} is incomplete: {exc}; fit it again") from exc
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path} is not a radfeat habitat model")
    if MODEL_NPZ not in (meta.get("members") or {}):
        raise ValueError(
            f"{meta_path} was written by an older radfeat without checksums; fit the model again"
        )
    model = HabitatModel(HabitatSettings.from_dict(meta["settings"]))
    with np.load(folder / MODEL_NPZ, allow_pickle=False) as data:
        model.centers_ = data["centers"]
        model.habitat_means_ = data["habitat_means"]
        model.gmm_ = {k[4:]: data[k] for k in data.files if k.startswith("gmm_")}
    model.k_ = int(meta["k"])
    model.scores_ = {int(k): v for k, v in meta["scores"].items()}
    model.train_ids_ = list(meta["train_ids"])
    model.feature_names_ = list(meta["feature_names"])
    if meta.get("fingerprint") and meta["fingerprint"] != model.fingerprint():
        raise ValueError(f"habitat model in {folder} does not match its recorded fingerprint; fit it again")
    return model
