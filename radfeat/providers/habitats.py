"""Habitat features of a case from a fitted population habitat model (:mod:`radfeat.habitats`)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from radfeat.case import case_reading_settings
from radfeat.errors import CaseFailure
from radfeat.providers.base import FeatureProvider, stage

__all__ = ["HabitatFeatures"]


class HabitatFeatures(FeatureProvider):
    """``hab_*`` columns and per-habitat radiomics ``ct_hab{i}_*`` / ``pet_hab{i}_*``.

    Parameters
    ----------
    model_dir : path
        A fitted habitat model folder (``radfeat habitats fit``).
    settings : dict
        radfeat settings: the ``habitats`` block is the model's; the ``ct`` / ``pet`` blocks give the
        per-habitat radiomics (when ``habitats.radiomics`` is on); how cases are read
        (:func:`radfeat.case.case_reading_settings`).
    labels_dir : path, optional
        Where to write each case's label map (``<case>_habitats.nii.gz``).

    The cache key holds the model's fingerprint (its fitted state), never its folder name: a model
    refitted into the same folder recomputes every case. A worker that finds another model in the
    folder than the one the run started with fails the case instead of mixing two models.
    """

    name = "habitats"
    version = 1
    libraries = ("radfeat", "pyradiomics-bhklab", "SimpleITK", "scikit-learn", "scipy", "numpy")

    def __init__(self, model_dir: str | Path, settings: dict[str, Any], labels_dir: str | Path | None = None):
        from radfeat.habitats.model import HabitatModel

        self.model_dir = str(Path(model_dir).resolve())
        model = HabitatModel.load(self.model_dir)
        self.model_fingerprint = model.fingerprint()
        self.mode = model.settings.mode
        self.radiomics = bool((settings.get("habitats") or {}).get("radiomics", True))
        self.blocks = {m: copy.deepcopy(settings.get(m)) for m in ("ct", "pet")} if self.radiomics else {}
        self.reading = case_reading_settings(settings)
        self.settings = {
            "ct": self.blocks.get("ct"),
            "pet": self.blocks.get("pet"),
            "habitats": {**(settings.get("habitats") or {}), "radiomics": self.radiomics},
            "run": dict(self.reading),
        }
        if settings.get("engine") == "radfeat":
            self.settings["engine"] = "radfeat"  # radfeat's matrices for the per-habitat radiomics
        self.labels_dir = str(labels_dir) if labels_dir is not None else None
        self._model = model

    @property
    def pet(self) -> bool:  # type: ignore[override]
        return self.mode == "ct+pet"

    def settings_used(self) -> dict[str, Any]:
        return {
            "model": self.model_fingerprint,
            "radiomics_blocks": self.blocks,
            "reading": self.reading,
            **({"engine": "radfeat"} if self.settings.get("engine") == "radfeat" else {}),
        }

    def model(self):
        """The fitted model this run started with (loaded once per worker, checked by fingerprint)."""
        from radfeat.habitats.model import HabitatModel

        def load():
            model = getattr(self, "_model", None) or HabitatModel.load(self.model_dir)
            if model.fingerprint() != self.model_fingerprint:
                raise CaseFailure(
                    f"the habitat model in {self.model_dir} changed during the run "
                    f"(fingerprint {model.fingerprint()}, expected {self.model_fingerprint})",
                    stage="habitats",
                    path=self.model_dir,
                    hint="do not refit a model while it is being applied; run the command again",
                )
            return model

        return self.worker_state("model", load)

    def engines(self):
        from radfeat.habitats.workflow import habitat_engines

        return self.worker_state("engines", lambda: habitat_engines(self.settings, self.mode))

    def stage1(self):
        """The training cases' supervoxels kept by ``habitats fit`` (read only; keys checked per case)."""
        from radfeat.habitats.stage1 import STAGE1_DIR, Stage1Store

        return self.worker_state(
            "stage1", lambda: Stage1Store(Path(self.model_dir) / STAGE1_DIR, read_only=True)
        )

    def compute(self, case, timings: dict | None = None) -> dict[str, Any]:
        from radfeat.habitats.workflow import habitat_case_features

        model = self.model()
        with stage("habitats", case.case_id, timings):
            return habitat_case_features(
                case,
                model,
                self.settings,
                labels_dir=self.labels_dir,
                engines=self.engines(),
                stage1=self.stage1(),
            )
