"""Cohorts with a planted signal whose location is known: in the images only, in the feature tokens
only, or split between them (complementary). They answer the question an ablation table cannot answer
on real data: does the fusion model use both inputs when both carry information, and does it lose
nothing when only one does?

Every case has a tumour (a disk of radius 3–5 px through all slices) in a CT and a PET patch and a row
of feature tokens; per task two independent latent variables are drawn, one shown by the images and
one by the features:

* the **image latent** of the first task shifts the tumour's SUV (PET), that of the second task its
  HU (CT), each under voxel noise;
* the **feature latent** of each task is one feature column (plus measurement noise) among
  ``n_noise_features`` pure-noise columns; no feature is computable from the images.

The label of each task is ``1[signal + noise > 0]`` where ``signal`` is the image latent
(``"images"``), the feature latent (``"features"``), their normalised sum (``"complementary"``: each
part alone sees half the signal) or nothing (``"none"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.fusion.data import FusionData, PatchSpec, scale_ct, scale_suv

__all__ = ["SIGNAL_LOCATIONS", "planted_fusion_data", "fusion_verdict"]

SIGNAL_LOCATIONS = ("images", "features", "complementary", "none")


def planted_fusion_data(
    n_cases: int = 240,
    signal: str = "complementary",
    *,
    seed: int = 0,
    label_noise: float = 0.35,
    size: int = 16,
    n_views: int = 2,
    n_noise_features: int = 6,
    n_slices: int = 3,
    tasks: tuple[str, ...] = ("egfr", "subtype"),
) -> FusionData:
    """A :class:`~models.fusion.data.FusionData` of ``n_cases`` with the signal planted where ``signal``
    says (see the module docstring). Patches (cases, ``n_views``, 3, ``size``, ``size``) on a 2 mm
    grid, scaled as real patches are (CT window [-1000, 400] HU, SUV / 5); feature group ``pet`` with
    columns ``pet_tumour_suv_planted_<task>`` and ``pet_tumour_suv_noise<j>``. ``label_noise``: SD of
    the label noise relative to a unit-variance signal; ``n_slices`` per view (3: 2.5D; 8 or more for
    the 3D stem)."""
    if signal not in SIGNAL_LOCATIONS:
        raise ValueError(f"signal must be one of {SIGNAL_LOCATIONS}, got {signal!r}")
    if len(tasks) > 2:
        raise ValueError("the planted cohort has at most two tasks (PET and CT image signals)")
    rng = np.random.default_rng(seed)
    spec = PatchSpec(size=size, n_slices=n_slices, n_views=n_views, view_step=1)
    depth = spec.depth
    z_img = rng.standard_normal((n_cases, len(tasks)))
    z_feat = rng.standard_normal((n_cases, len(tasks)))
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    ct = np.empty((n_cases, depth, size, size), np.float32)
    pet = np.empty_like(ct)
    mask = np.empty((n_cases, depth, size, size), np.uint8)
    for i in range(n_cases):
        cy, cx = rng.uniform(-1.5, 1.5, 2)
        radius = rng.uniform(3.0, 5.0)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        inside = np.broadcast_to(disk, (depth, size, size))
        suv_shift = 1.5 * z_img[i, 0]
        hu_shift = 60.0 * z_img[i, 1] if len(tasks) > 1 else 0.0
        hu = np.where(inside, 20.0 + hu_shift, -800.0) + rng.normal(0, 40.0, (depth, size, size))
        suv = np.where(inside, 6.0 + suv_shift, 0.8) + rng.normal(0, 0.8, (depth, size, size))
        ct[i], pet[i], mask[i] = scale_ct(hu, spec), scale_suv(np.maximum(suv, 0), spec), inside
    views = np.stack([np.arange(v, v + spec.n_slices) for v in range(n_views)])  # (V, S) slice indices
    columns = {
        f"pet_tumour_suv_planted_{t}": z_feat[:, k] + rng.normal(0, 0.2, n_cases) for k, t in enumerate(tasks)
    }
    columns |= {f"pet_tumour_suv_noise{j}": rng.standard_normal(n_cases) for j in range(n_noise_features)}
    features = pd.DataFrame(columns)
    latent = {
        "images": z_img,
        "features": z_feat,
        "complementary": (z_img + z_feat) / np.sqrt(2.0),
        "none": np.zeros_like(z_img),
    }[signal]
    noise = rng.standard_normal(latent.shape) * (label_noise if signal != "none" else 1.0)
    labels = {t: (latent[:, k] + noise[:, k] > 0).astype(int) for k, t in enumerate(tasks)}
    return FusionData(
        case_ids=np.array([f"planted{i:04d}" for i in range(n_cases)]),
        ct=ct[:, views],
        pet=pet[:, views],
        mask=mask[:, views],
        labels=labels,
        classes={t: ["0", "1"] for t in tasks},
        features=features,
        groups={"pet": list(features.columns)},
        spec=spec,
    )


#: The part that holds the signal in a one-sided scenario.
BETTER_PART = {"images": "image_only", "features": "features_only"}


def fusion_verdict(table: pd.DataFrame, scenario: str, task: str, alpha: float = 0.05) -> str:
    """Whether fusion earns its place for one scenario and task of an ablation table
    (:func:`models.fusion.ablation.ablation_table` with rows ``full``, ``image_only``,
    ``features_only``; ``p_vs_full`` the paired DeLong p-value): "holds" when the full model is
    significantly better than each part (``complementary``) or not significantly worse than the part
    that holds the signal (``images`` / ``features``); otherwise "not shown" or "significantly worse"."""
    rows = table[table["task"] == task].set_index("variant")
    full = rows.loc["full", "auc"]
    if scenario == "complementary":
        parts = rows.loc[["image_only", "features_only"]]
        ok = bool((full > parts["auc"]).all() and (parts["p_vs_full"] < alpha).all())
        return "holds" if ok else "not shown"
    if scenario not in BETTER_PART:
        raise ValueError(f"scenario must be complementary, images or features, got {scenario!r}")
    part = rows.loc[BETTER_PART[scenario]]
    worse = part["auc"] > full and part["p_vs_full"] < alpha
    return "significantly worse" if worse else "holds"
