"""Grad-CAM on the scale-1 token maps and CLS→image attention maps, with PNG overlays.

Grad-CAM (Selvaraju et al. 2017) and its element-wise variant HiResCAM (Draelos & Carin 2020) per task
and modality, from the gradient of the explained logit with respect to the scale-1 feature map A
(h × w × d), bilinearly upsampled to the patch (H × W) and normalised to [0, 1]. The gradient is
taken through an additive zero tensor on the map (``cam_delta`` of the network), so no hooks are needed.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from models.fusion.data import FeaturePrep, FusionData
from models.fusion.net import FusionNet

__all__ = [
    "grad_cam",
    "grad_cam_compilations",
    "attention_maps",
    "cam_mass_inside",
    "cam_mass_regions",
    "map_mass_table",
    "save_overlays",
    "CAM_CHUNK",
]


def _batch(data: FusionData, prep: FeaturePrep, idx: np.ndarray, view: int) -> dict:
    from models.fusion.batches import model_inputs as _model_inputs
    from models.fusion.batches import static_inputs as _static_inputs

    views = np.full(len(idx), view)
    batch = {**_model_inputs(data, prep, idx, views), **_static_inputs(prep)}
    return jax.tree.map(jnp.asarray, batch)


#: Cases per compiled Grad-CAM call: every request is cut (and the last piece padded) to this size,
#: so calls with any number of cases reuse one compilation.
CAM_CHUNK = 16
#: Compiled Grad-CAM functions by (graph definition, task, method, target, map size).
_CAM_FUNCTIONS: dict = {}


def grad_cam_compilations() -> int:
    """How many Grad-CAM programs have been compiled in this process (for tests and benchmarks)."""
    return sum(f._cache_size() for f in _CAM_FUNCTIONS.values())


def _cam_function(graphdef, task: str, method: str, target: str, size: tuple[int, int], layer: str):
    """The jitted map function of one network structure (the weights are an argument, so every
    model of that structure — each fold, each retrained model — shares the compilation)."""
    key = (graphdef, task, method, target, size, layer)
    if key in _CAM_FUNCTIONS:
        return _CAM_FUNCTIONS[key]
    from flax import nnx

    def target_weights(z):  # (n, 1) sign of the explained binary logit, or (n, K) one-hot class
        z = jax.lax.stop_gradient(z)
        if z.shape[-1] == 1:
            return jnp.where(z >= 0, 1.0, -1.0) if target == "predicted" else jnp.ones_like(z)
        cls = jnp.argmax(z, -1) if target == "predicted" else jnp.full(len(z), z.shape[-1] - 1)
        return jax.nn.one_hot(cls, z.shape[-1])

    @jax.jit
    def cams_of(state, batch, zeros):
        model = nnx.merge(graphdef, state)

        def explained(delta):
            out, aux = model(batch, cam_delta=delta, cam_layer=layer)
            z = out[task]
            return jnp.sum(z * target_weights(z)), aux["maps"]

        grads, maps = jax.grad(explained, has_aux=True)(zeros)
        cams = {}
        for m, g in grads.items():
            A = maps[m]  # (n, h, w, d), or (n, s, h, w, d) from the 3D stem
            spatial = tuple(range(1, A.ndim - 1))
            weights = g.mean(axis=spatial, keepdims=True) if method == "gradcam" else g
            cam = jax.nn.relu(jnp.sum(weights * A, axis=-1))  # (n, [s,] h, w)
            cam = jax.image.resize(cam, (cam.shape[0], *size), "linear")  # (n, [S,] H, W)
            if cam.ndim == 4:  # 3D: the patch's central slice, the one the overlays show
                cam = cam[:, size[0] // 2]
            cams[m] = cam / (cam.max(axis=(1, 2), keepdims=True) + 1e-12)
        return cams

    _CAM_FUNCTIONS[key] = cams_of
    return cams_of


def grad_cam(
    model: FusionNet,
    data: FusionData,
    prep: FeaturePrep,
    idx: np.ndarray,
    task: str,
    view: int | None = None,
    *,
    method: str = "hirescam",
    target: str = "predicted",
    layer: str = "scale1",
) -> dict[str, np.ndarray]:
    """Class-activation maps per modality for cases ``idx`` at the central view: arrays (n, H, W) in
    [0, 1] (all zero where no location speaks for the target).

    ``method="gradcam"``: channel weights α_c = spatial mean of ∂z/∂A_c, map = ReLU(Σ_c α_c A_c)
    (Selvaraju et al. 2017). ``method="hirescam"`` (default): map = ReLU(Σ_c ∂z/∂A_c · A_c) element-wise
    (Draelos & Carin 2020), the first-order contribution of each location to the logit, which does
    not smear one location's gradient over the whole map. ``target="predicted"`` explains each case's
    predicted class (z = the logit for a positive prediction, −logit for a negative one; the predicted
    class's logit for a multi-class task); ``"positive"`` always explains the positive (last) class.

    Compiled once per network structure, task, method and target (:data:`CAM_CHUNK` cases a call):
    later calls — other cases, other folds' models of the same structure — compile nothing.
    """
    from flax import nnx

    if method not in ("gradcam", "hirescam"):
        raise ValueError(f"method must be 'gradcam' or 'hirescam', got {method!r}")
    if target not in ("predicted", "positive"):
        raise ValueError(f"target must be 'predicted' or 'positive', got {target!r}")
    if layer not in ("scale1", "fine"):
        raise ValueError(f"layer must be 'scale1' or 'fine', got {layer!r}")
    idx = np.asarray(idx)
    view = data.ct.shape[1] // 2 if view is None else view
    H = W = data.ct.shape[-1]
    shapes = model.cam_shapes(H, W, layer)
    if len(idx) == 0:
        return {m: np.zeros((0, H, W)) for m in shapes}
    size = (data.ct.shape[2], H, W) if model.config.stem == "3d" else (H, W)
    model.eval()
    try:
        graphdef, state = nnx.split(model)
        cams_of = _cam_function(graphdef, task, method, target, size, layer)
        zeros = {m: jnp.zeros((CAM_CHUNK, *shape)) for m, shape in shapes.items()}
        pieces: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(idx), CAM_CHUNK):
            chunk = idx[start : start + CAM_CHUNK]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], CAM_CHUNK - len(chunk))])
            out = cams_of(state, _batch(data, prep, padded, view), zeros)
            for m, cam in out.items():
                pieces.setdefault(m, []).append(np.asarray(cam)[: len(chunk)])
    finally:
        model.train()
    return {m: np.concatenate(p) for m, p in pieces.items()}


def attention_maps(
    model: FusionNet, data: FusionData, prep: FeaturePrep, idx: np.ndarray, view: int | None = None
) -> dict[str, np.ndarray]:
    """CLS→image attention (mean over heads) on the scale-1 tokens of each modality, upsampled to the
    patch: arrays (n, H, W) in [0, 1]. Only for the cross-attention two-modality model."""
    model.eval()
    view = data.ct.shape[1] // 2 if view is None else view
    batch = _batch(data, prep, np.asarray(idx), view)
    _, aux = model(batch)
    model.train()
    w = np.asarray(aux["cls_attention"]).mean(axis=1)  # (n, tokens)
    H = data.ct.shape[-1]
    out = {}
    cfg = model.config
    sizes = cfg.map_sizes()
    offset = 0
    for s, shape in enumerate(sizes):
        n = int(np.prod(shape))
        mods = cfg.modalities if (len(cfg.modalities) == 2 and cfg.fusion == "cross") else ("fused",)
        for m in mods:
            if s == 0:
                a = w[:, offset : offset + n].reshape(-1, *shape)
                if a.ndim == 4:  # 3D tokens: the depth cell of the central slice
                    a = a[:, (data.ct.shape[2] // 2) * shape[0] // data.ct.shape[2]]
                a = np.asarray(jax.image.resize(a, (a.shape[0], H, H), "bilinear"))
                out[m] = a / (a.max(axis=(1, 2), keepdims=True) + 1e-12)
            offset += n
    return out


def cam_mass_inside(cam: np.ndarray, mask: np.ndarray, dilate_px: int = 3) -> np.ndarray:
    """Share of each map's mass (n, H, W) inside the tumour mask (n, H, W) dilated by ``dilate_px``."""
    from scipy import ndimage

    out = []
    for c, m in zip(cam, mask, strict=True):
        region = ndimage.binary_dilation(m > 0, iterations=dilate_px) if dilate_px else m > 0
        out.append(float(c[region].sum() / max(c.sum(), 1e-12)))
    return np.array(out)


def cam_mass_regions(cam: np.ndarray, mask: np.ndarray, margin_px: int = 2) -> dict[str, np.ndarray]:
    """Share of each map's mass (n, H, W) in the tumour **core** (the mask eroded by ``margin_px``), the
    **margin** (within ``margin_px`` of the tumour boundary, inside or out) and **outside**; per case,
    summing to 1. With a uniform map the shares equal the regions' areas (the chance level). An all-zero
    map (nothing in the image speaks for the target) has no mass to share: its shares are NaN."""
    from scipy import ndimage

    out: dict[str, list[float]] = {"core": [], "margin": [], "outside": []}
    for c, m in zip(cam, mask, strict=True):
        inside = m > 0
        core = ndimage.binary_erosion(inside, iterations=margin_px) if margin_px else inside
        near = ndimage.binary_dilation(inside, iterations=margin_px) if margin_px else inside
        total = float(c.sum())
        if not total > 0:
            for values in out.values():
                values.append(float("nan"))
            continue
        out["core"].append(float(c[core].sum()) / total)
        out["margin"].append(float(c[near & ~core].sum()) / total)
        out["outside"].append(float(c[~near].sum()) / total)
    return {k: np.array(v) for k, v in out.items()}


def map_mass_table(
    cams_by_task: dict[str, dict[str, np.ndarray]], mask: np.ndarray, margin_px: int = 2
) -> pd.DataFrame:
    """One row per task and modality: mean and SD over cases of the core / margin / outside mass shares
    (:func:`cam_mass_regions`) beside the regions' area shares (what a uniform map would give). ``n``
    counts the cases whose map has mass; ``n_empty`` those whose map is all zero (left out of the means)."""
    rows = []
    area = cam_mass_regions(np.ones(mask.shape), mask, margin_px)
    for task, cams in cams_by_task.items():
        for modality, cam in cams.items():
            shares = cam_mass_regions(cam, mask, margin_px)
            has_mass = ~np.isnan(shares["core"])
            n = int(has_mass.sum())
            row = {
                "task": task,
                "modality": modality,
                "n": n,
                "n_empty": len(cam) - n,
                "margin_px": margin_px,
            }
            for region, values in shares.items():
                kept = values[has_mass]
                row[f"{region}_mass"] = float(kept.mean()) if n else float("nan")
                row[f"{region}_mass_sd"] = float(kept.std(ddof=1)) if n > 1 else float("nan")
                row[f"{region}_area"] = float(area[region].mean())
            rows.append(row)
    return pd.DataFrame(rows)


def save_overlays(
    data: FusionData,
    idx: np.ndarray,
    cams: dict[str, np.ndarray],
    out_dir: str | Path,
    *,
    title: str = "Grad-CAM",
    view: int | None = None,
    colorbar_label: str = "relative importance (0–1, scaled per map)",
) -> list[Path]:
    """One PNG per case: CT and PET central slices with the map overlaid (values below 5 % of the
    map's maximum left transparent, so the anatomy stays visible), the tumour outline, a colour bar
    with its meaning and the pixel size. A map that is all zero (nothing speaks for the target) is
    said so in the panel instead of being drawn as a flat wash."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radfeat.utils.atomic import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    view = data.ct.shape[1] // 2 if view is None else view
    mid = data.ct.shape[2] // 2
    paths = []
    pixel_mm = data.spec.pixel_mm
    for i, case in enumerate(idx):
        fig, axes = plt.subplots(1, 2, figsize=(7, 3.4), layout="constrained")
        shown = None
        for ax, (m, img, cmap, label) in zip(
            axes,
            (("ct", data.ct, "gray", "CT (HU window)"), ("pet", data.pet, "gray_r", "PET (SUV)")),
            strict=True,
        ):
            ax.imshow(img[case, view, mid], cmap=cmap)
            cam = cams.get(m, cams.get("fused"))
            if cam is not None and float(np.max(cam[i])) > 0:
                layer = np.ma.masked_less(cam[i], 0.05 * float(np.max(cam[i])))
                shown = ax.imshow(layer, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            elif cam is not None:
                ax.text(0.5, 0.06, "map is all zero: nothing here speaks for this class", color="white",
                        ha="center", fontsize=7, transform=ax.transAxes,
                        bbox={"facecolor": "black", "alpha": 0.7, "lw": 0})  # fmt: skip
            ax.contour(data.mask[case, view, mid], levels=[0.5], colors="w", linewidths=0.8)
            ax.set_title(label, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{img.shape[-1]} px × {pixel_mm:g} mm; white: tumour outline", fontsize=7)
        if shown is not None:
            bar = fig.colorbar(shown, ax=list(axes), shrink=0.8)
            bar.set_label(colorbar_label, fontsize=8)
        fig.suptitle(f"{title} — case {data.case_ids[case]}", fontsize=9)
        path = out_dir / f"{data.case_ids[case]}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        paths.append(path)
    return paths
