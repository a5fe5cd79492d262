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

from models.fusion.data import FeaturePrep, FusionData
from models.fusion.net import FusionNet

__all__ = ["grad_cam", "attention_maps", "cam_mass_inside", "save_overlays"]


def _batch(data: FusionData, prep: FeaturePrep, idx: np.ndarray, view: int) -> dict:
    from models.fusion.batches import model_inputs as _model_inputs
    from models.fusion.batches import static_inputs as _static_inputs

    views = np.full(len(idx), view)
    batch = {**_model_inputs(data, prep, idx, views), **_static_inputs(prep)}
    return jax.tree.map(jnp.asarray, batch)


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
) -> dict[str, np.ndarray]:
    """Class-activation maps per modality for cases ``idx`` at the central view: arrays (n, H, W) in
    [0, 1] (all zero where no location speaks for the target).

    ``method="gradcam"``: channel weights α_c = spatial mean of ∂z/∂A_c, map = ReLU(Σ_c α_c A_c)
    (Selvaraju et al. 2017). ``method="hirescam"`` (default): map = ReLU(Σ_c ∂z/∂A_c · A_c) element-wise
    (Draelos & Carin 2020), the first-order contribution of each location to the logit, which does
    not smear one location's gradient over the whole map. ``target="predicted"`` explains each case's
    predicted class (z = the logit for a positive prediction, −logit for a negative one; the predicted
    class's logit for a multi-class task); ``"positive"`` always explains the positive (last) class.
    """
    if method not in ("gradcam", "hirescam"):
        raise ValueError(f"method must be 'gradcam' or 'hirescam', got {method!r}")
    if target not in ("predicted", "positive"):
        raise ValueError(f"target must be 'predicted' or 'positive', got {target!r}")
    model.eval()
    view = data.ct.shape[1] // 2 if view is None else view
    batch = _batch(data, prep, np.asarray(idx), view)
    H = W = data.ct.shape[-1]
    shape = (len(idx), H // 4, W // 4, model.config.d)  # the scale-1 maps
    zeros = {m: jnp.zeros(shape) for m in model.config.modalities}

    def target_weights(z):  # (n, 1) sign of the explained binary logit, or (n, K) one-hot class
        z = jax.lax.stop_gradient(z)
        if z.shape[-1] == 1:
            return jnp.where(z >= 0, 1.0, -1.0) if target == "predicted" else jnp.ones_like(z)
        cls = jnp.argmax(z, -1) if target == "predicted" else jnp.full(len(z), z.shape[-1] - 1)
        return jax.nn.one_hot(cls, z.shape[-1])

    def explained(delta):
        out, aux = model(batch, cam_delta=delta)
        z = out[task]
        return jnp.sum(z * target_weights(z)), aux["maps"]

    grads, maps = jax.grad(explained, has_aux=True)(zeros)
    cams = {}
    for m, g in grads.items():
        A = maps[m]  # (n, h, w, d)
        weights = g.mean(axis=(1, 2), keepdims=True) if method == "gradcam" else g
        cam = jax.nn.relu(jnp.sum(weights * A, axis=-1))  # (n, h, w)
        cam = jax.image.resize(cam, (cam.shape[0], H, W), "bilinear")
        cam = cam / (cam.max(axis=(1, 2), keepdims=True) + 1e-12)
        cams[m] = np.asarray(cam)
    model.train()
    return cams


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
    h = H // 4
    n1 = h * h
    out = {}
    cfg = model.config
    per_scale = [n1, (H // 8) ** 2][: cfg.scales]
    offset = 0
    for s, n in enumerate(per_scale):
        mods = cfg.modalities if (len(cfg.modalities) == 2 and cfg.fusion == "cross") else ("fused",)
        for m in mods:
            if s == 0:
                a = w[:, offset : offset + n].reshape(-1, h, h)
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
