"""The DMDP-style fusion network (Flax NNX).

Inputs per sample: CT and PET patches (H, W, S) with the S axial slices as channels, and F scaled
feature values with their group index. Shapes below: B batch, d model width, n tokens.

* **Feature tokens** (FT-Transformer): value x_j → x_j·W_j + b_j + group embedding, a learned CLS token
  in front.
* **Image tokens**: a conv stem per modality gives a scale-1 map (H/4 × W/4 × d) and a scale-2 map
  (H/8 × W/8 × d); each map is flattened into tokens with learned position and modality embeddings.
  With ``stem="3d"`` the S slices of a patch are a third spatial axis instead of channels: 3D
  convolutions give maps (S/4 × H/4 × W/4 × d) and (S/8 × H/8 × W/8 × d) (sizes rounded up), whose
  tokens enter the same fusion (DMDP's 3D input); the batch format stays (B, H, W, S).
* **Fusion per scale**: bidirectional cross-attention CT↔PET (CT tokens query PET tokens and vice
  versa), or — the ablation — channel concatenation and a linear projection.
* **Read-out**: CLS and feature tokens attend to each other, then cross-attend to the fused image
  tokens of all scales; the CLS token feeds one head per task (1 logit for a binary task, K for K
  classes).
* **Unimodal auxiliary heads** (``aux_weight > 0``, a model with images and features): the CLS token
  after the feature blocks (features only) and a second CLS token that reads the image tokens alone
  (same read-out blocks) each feed heads of their own, trained with the fused heads and ignored at
  prediction. Joint training otherwise lets the easier input (here the feature tokens, which a
  network can memorise on a small cohort) starve the other — "modality competition" (Huang et al.
  2022; Du et al. 2023, "uni-modal teacher") — and the fused model ends below its image-only part.

Every ablation is a :class:`FusionConfig` switch (see :data:`models.fusion.ablation.ABLATIONS`).
``cam_delta`` adds a tensor to the scale-1 maps: its gradient is the gradient with respect to those
maps (Grad-CAM, :mod:`models.fusion.gradcam`).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["FusionConfig", "FusionNet", "Attention"]


@dataclass(frozen=True)
class FusionConfig:
    """Architecture switches. ``modalities`` () with ``use_features`` is the features-only model;
    ``use_features=False`` the image-only model; ``fusion="concat"`` replaces cross-attention;
    ``scales=1`` keeps the scale-1 tokens only."""

    d: int = 64
    heads: int = 4
    blocks: int = 1
    in_slices: int = 3
    patch: int = 32
    scales: int = 2
    modalities: tuple[str, ...] = ("ct", "pet")
    use_features: bool = True
    fusion: str = "cross"
    tasks: tuple[str, ...] = ("egfr", "subtype")
    n_classes: tuple[int, ...] = (2, 2)
    n_features: int = 0
    n_groups: int = 1
    dropout: float = 0.1
    mlp_ratio: int = 2
    architecture: str = "dmdp"
    #: Learned register tokens appended to every image key/value set (Darcet et al. 2024): a place for
    #: global information, so no image token turns into an attention sink (which shows up as a fixed
    #: hot spot in every Grad-CAM map).
    registers: int = 4
    #: Computation dtype of convolutions, attention and MLPs ("bfloat16" on GPUs with bf16 units);
    #: parameters, softmax, heads and losses stay float32.
    dtype: str = "float32"
    #: "2.5d": the S slices of a patch are the stem's input channels (2D convolutions, the CPU default);
    #: "3d": they are a depth axis (3D convolutions; patches of 8–32 slices).
    stem: str = "2.5d"
    #: Weight of the unimodal auxiliary losses (image-only and features-only heads, each the mean of
    #: its task losses) added to the fused loss; 0 switches the auxiliary heads off. 0.5 measured on the
    #: complementary planted cohort: subtype AUC 0.780 → 0.802, EGFR 0.861 → 0.880 (240 cases).
    aux_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
        if self.architecture not in ("dmdp", "egfr_dls"):
            raise ValueError(f"architecture must be 'dmdp' or 'egfr_dls', got {self.architecture!r}")
        if self.fusion not in ("cross", "concat"):
            raise ValueError(f"fusion must be 'cross' or 'concat', got {self.fusion!r}")
        if self.stem not in ("2.5d", "3d"):
            raise ValueError(f"stem must be '2.5d' or '3d', got {self.stem!r}")
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {self.aux_weight}")
        if self.scales not in (1, 2):
            raise ValueError(f"scales must be 1 or 2, got {self.scales}")
        # n_features is 0 until the feature preparation of a fold fills it in (fit checks it then)
        if not self.modalities and not self.use_features:
            raise ValueError("a model needs images (modalities) or feature tokens")
        if self.patch % 8:
            raise ValueError(f"patch size must be a multiple of 8, got {self.patch}")
        if len(self.tasks) != len(self.n_classes):
            raise ValueError("tasks and n_classes must have the same length")

    @property
    def compute_dtype(self):
        return jnp.bfloat16 if self.dtype == "bfloat16" else jnp.float32

    @property
    def uses_images(self) -> bool:
        return bool(self.modalities)

    @property
    def uses_features(self) -> bool:
        return self.use_features and self.n_features > 0

    def map_sizes(self) -> list[tuple[int, ...]]:
        """Spatial shape of the scale-1 and scale-2 maps: (H/4, W/4) and (H/8, W/8), with the depth
        ``ceil(S/4)``, ``ceil(S/8)`` in front for the 3D stem."""
        sizes = []
        for f in (4, 8)[: self.scales]:
            plane = (self.patch // f, self.patch // f)
            sizes.append(((self.in_slices + f - 1) // f, *plane) if self.stem == "3d" else plane)
        return sizes

    @property
    def uses_aux_heads(self) -> bool:
        """Unimodal auxiliary heads: only a model with both images and feature tokens has them."""
        return self.aux_weight > 0 and self.uses_images and self.uses_features


class Attention(nnx.Module):
    """Multi-head attention returning the attention weights (B, heads, n_q, n_kv) as well."""

    def __init__(self, d: int, heads: int, *, rngs: nnx.Rngs, dtype=jnp.float32) -> None:
        self.heads = heads
        self.q = nnx.Linear(d, d, rngs=rngs, dtype=dtype)
        self.k = nnx.Linear(d, d, rngs=rngs, dtype=dtype)
        self.v = nnx.Linear(d, d, rngs=rngs, dtype=dtype)
        self.o = nnx.Linear(d, d, rngs=rngs, dtype=dtype)

    def __call__(self, xq: jax.Array, xkv: jax.Array, key_mask: jax.Array | None = None):
        B, nq, d = xq.shape
        h = self.heads

        def split(t):
            return t.reshape(B, -1, h, d // h).transpose(0, 2, 1, 3)

        q, k, v = split(self.q(xq)), split(self.k(xkv)), split(self.v(xkv))
        logits = jnp.einsum("bhqc,bhkc->bhqk", q, k).astype(jnp.float32) / jnp.sqrt(d // h)
        if key_mask is not None:
            logits = jnp.where(key_mask[:, None, None, :], logits, -1e9)
        weights = jax.nn.softmax(logits, axis=-1)
        out = (
            jnp.einsum("bhqk,bhkc->bhqc", weights.astype(v.dtype), v).transpose(0, 2, 1, 3).reshape(B, nq, d)
        )
        return self.o(out), weights


class Block(nnx.Module):
    """Pre-norm (cross-)attention block: x + Attn(LN x, LN kv); x + MLP(LN x)."""

    def __init__(
        self, d: int, heads: int, mlp_ratio: int, dropout: float, *, rngs: nnx.Rngs, dtype=jnp.float32
    ) -> None:
        self.ln_q = nnx.LayerNorm(d, rngs=rngs)
        self.ln_kv = nnx.LayerNorm(d, rngs=rngs)
        self.attn = Attention(d, heads, rngs=rngs, dtype=dtype)
        self.ln_mlp = nnx.LayerNorm(d, rngs=rngs)
        self.fc1 = nnx.Linear(d, mlp_ratio * d, rngs=rngs, dtype=dtype)
        self.fc2 = nnx.Linear(mlp_ratio * d, d, rngs=rngs, dtype=dtype)
        self.drop = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x, kv=None, key_mask=None):
        kv_in = self.ln_q(x) if kv is None else self.ln_kv(kv)
        a, w = self.attn(self.ln_q(x), kv_in, key_mask)
        x = x + self.drop(a)
        x = x + self.drop(self.fc2(jax.nn.gelu(self.fc1(self.ln_mlp(x)))))
        return x, w


class ConvStem(nnx.Module):
    """(B, H, W, S) → scale-1 map (B, H/4, W/4, d) and scale-2 map (B, H/8, W/8, d) (and the finer
    H/2 map the Grad-CAM ``fine`` layer explains)."""

    def __init__(self, in_ch: int, d: int, *, rngs: nnx.Rngs, dtype=jnp.float32) -> None:
        c = max(d // 2, 8)
        self.c1 = nnx.Conv(in_ch, c, (3, 3), rngs=rngs, dtype=dtype)
        self.c2 = nnx.Conv(c, c, (3, 3), strides=2, rngs=rngs, dtype=dtype)
        self.c3 = nnx.Conv(c, d, (3, 3), strides=2, rngs=rngs, dtype=dtype)
        self.c4 = nnx.Conv(d, d, (3, 3), strides=2, rngs=rngs, dtype=dtype)
        self.n1, self.n2 = nnx.LayerNorm(c, rngs=rngs), nnx.LayerNorm(c, rngs=rngs)
        self.n3, self.n4 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)

    def __call__(self, x, cam_delta=None, cam_layer: str = "scale1"):
        """Scale-1 and scale-2 maps and the ``fine`` map (B, H/2, W/2, c) after the second convolution;
        ``cam_delta`` is added to the ``cam_layer`` map (Grad-CAM)."""
        return self._maps(x, cam_delta, cam_layer)

    def _maps(self, x, cam_delta, cam_layer: str):
        x = jax.nn.gelu(self.c1(x))
        x = jax.nn.gelu(self.c2(x))
        if cam_delta is not None and cam_layer == "fine":
            x = x + cam_delta
        fine = x
        s1 = jax.nn.gelu(self.n3(self.c3(x)))
        if cam_delta is not None and cam_layer == "scale1":
            s1 = s1 + cam_delta
        s2 = jax.nn.gelu(self.n4(self.c4(s1)))
        return s1, s2, fine


class ConvStem3D(ConvStem):
    """The 3D stem: (B, H, W, S) → scale-1 map (B, S/4, H/4, W/4, d), scale-2 map (B, S/8, H/8, W/8, d)
    and the ``fine`` map (B, S/2, H/2, W/2, c) (depths rounded up), by 3 × 3 × 3 convolutions that
    stride every axis."""

    def __init__(self, d: int, *, rngs: nnx.Rngs, dtype=jnp.float32) -> None:
        c = max(d // 2, 8)
        k = (3, 3, 3)
        self.c1 = nnx.Conv(1, c, k, rngs=rngs, dtype=dtype)
        self.c2 = nnx.Conv(c, c, k, strides=2, rngs=rngs, dtype=dtype)
        self.c3 = nnx.Conv(c, d, k, strides=2, rngs=rngs, dtype=dtype)
        self.c4 = nnx.Conv(d, d, k, strides=2, rngs=rngs, dtype=dtype)
        self.n3, self.n4 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)

    def __call__(self, x, cam_delta=None, cam_layer: str = "scale1"):
        x = jnp.transpose(x, (0, 3, 1, 2))[..., None]  # (B, S, H, W, 1): slices as depth
        return self._maps(x, cam_delta, cam_layer)


class FusionNet(nnx.Module):
    """See the module docstring. ``__call__(batch) -> (logits per task, aux)``; ``aux`` holds the
    scale-1 maps and the CLS→image attention weights."""

    def __init__(self, config: FusionConfig, *, rngs: nnx.Rngs) -> None:
        cfg = self.config = config
        d = cfg.d
        dt = cfg.compute_dtype
        if cfg.stem == "3d":
            self.stems = nnx.Dict({m: ConvStem3D(d, rngs=rngs, dtype=dt) for m in cfg.modalities})
        else:
            self.stems = nnx.Dict(
                {m: ConvStem(cfg.in_slices, d, rngs=rngs, dtype=dt) for m in cfg.modalities}
            )
        sizes = [int(np.prod(shape)) for shape in cfg.map_sizes()]
        init = nnx.initializers.normal(0.02)
        self.pos = nnx.List([nnx.Param(init(rngs.params(), (n, d))) for n in sizes])
        self.modality = nnx.Param(init(rngs.params(), (2, d)))
        self.reg = nnx.Param(init(rngs.params(), (cfg.scales, cfg.registers, d)))
        two = len(cfg.modalities) == 2
        if two and cfg.fusion == "cross":
            self.ct_from_pet = nnx.List(
                [Block(d, cfg.heads, cfg.mlp_ratio, cfg.dropout, rngs=rngs, dtype=dt) for _ in sizes]
            )
            self.pet_from_ct = nnx.List(
                [Block(d, cfg.heads, cfg.mlp_ratio, cfg.dropout, rngs=rngs, dtype=dt) for _ in sizes]
            )
        elif cfg.modalities:
            self.mix = nnx.List(
                [nnx.Linear(d * len(cfg.modalities), d, rngs=rngs, dtype=dt) for _ in sizes] if two else []
            )
            self.self_blocks = nnx.List(
                [Block(d, cfg.heads, cfg.mlp_ratio, cfg.dropout, rngs=rngs, dtype=dt) for _ in sizes]
            )
        if cfg.uses_features:
            self.feat_w = nnx.Param(init(rngs.params(), (cfg.n_features, d)))
            self.feat_b = nnx.Param(jnp.zeros((cfg.n_features, d)))
            self.group_emb = nnx.Param(init(rngs.params(), (max(cfg.n_groups, 1), d)))
        self.cls = nnx.Param(init(rngs.params(), (1, 1, d)))
        self.token_blocks = nnx.List(
            [Block(d, cfg.heads, cfg.mlp_ratio, cfg.dropout, rngs=rngs, dtype=dt) for _ in range(cfg.blocks)]
            if cfg.uses_features
            else []
        )
        self.read_blocks = nnx.List(
            [Block(d, cfg.heads, cfg.mlp_ratio, cfg.dropout, rngs=rngs, dtype=dt) for _ in range(cfg.blocks)]
            if cfg.uses_images
            else []
        )
        self.ln_out = nnx.LayerNorm(d, rngs=rngs)
        self.heads = nnx.List([nnx.Linear(d, 1 if k == 2 else k, rngs=rngs) for k in cfg.n_classes])
        self.log_vars = nnx.Param(jnp.zeros((len(cfg.tasks),)))  # Kendall uncertainty weights
        if cfg.uses_aux_heads:
            self.cls_image = nnx.Param(init(rngs.params(), (1, 1, d)))
            self.ln_aux = nnx.Dict({b: nnx.LayerNorm(d, rngs=rngs) for b in ("images", "features")})
            self.aux_heads = nnx.Dict(
                {
                    b: nnx.List([nnx.Linear(d, 1 if k == 2 else k, rngs=rngs) for k in cfg.n_classes])
                    for b in ("images", "features")
                }
            )

    def cam_shapes(self, H: int, W: int, layer: str = "scale1") -> dict[str, tuple[int, ...]]:
        """Per modality, the ([s,] h, w, channels) of the map Grad-CAM explains at ``layer``: ``scale1``
        (the scale-1 token map, H/4) or ``fine`` (the stem's H/2 map); s the depth of the 3D stem's map."""
        cfg = self.config
        f, c = (2, max(cfg.d // 2, 8)) if layer == "fine" else (4, cfg.d)
        depth = ((cfg.in_slices + f - 1) // f,) if cfg.stem == "3d" else ()
        return {m: (*depth, H // f, W // f, c) for m in cfg.modalities}

    def image_tokens(self, batch: dict, cam_delta: dict | None = None, cam_layer: str = "scale1"):
        """Fused image tokens (B, n, d) over all scales and the ``cam_layer`` maps per modality."""
        cfg = self.config
        maps = {}
        per_scale = {m: [] for m in cfg.modalities}
        for m in cfg.modalities:
            delta = None if cam_delta is None else cam_delta.get(m)
            s1, s2, fine = self.stems[m](batch[m], delta, cam_layer)
            maps[m] = fine if cam_layer == "fine" else s1
            for s, fmap in enumerate((s1, s2)[: cfg.scales]):
                B, d = fmap.shape[0], fmap.shape[-1]
                modality_index = 0 if m == "ct" else 1
                per_scale[m].append(
                    fmap.reshape(B, -1, d) + self.pos[s][None] + self.modality[modality_index]
                )
        B = next(iter(per_scale.values()))[0].shape[0]
        fused = []
        for s in range(cfg.scales):
            reg = jnp.broadcast_to(self.reg[s][None], (B, cfg.registers, cfg.d))
            if len(cfg.modalities) == 2 and cfg.fusion == "cross":
                ct, pet = per_scale["ct"][s], per_scale["pet"][s]
                ct2, _ = self.ct_from_pet[s](ct, jnp.concatenate([pet, reg], axis=1))
                pet2, _ = self.pet_from_ct[s](pet, jnp.concatenate([ct, reg], axis=1))
                fused.append(jnp.concatenate([ct2, pet2], axis=1))
            else:
                tokens = [per_scale[m][s] for m in cfg.modalities]
                x = self.mix[s](jnp.concatenate(tokens, axis=-1)) if len(tokens) == 2 else tokens[0]
                n = x.shape[1]
                fused.append(self.self_blocks[s](jnp.concatenate([x, reg], axis=1))[0][:, :n])
        registers = jnp.broadcast_to(self.reg[0][None], (B, cfg.registers, cfg.d))
        return jnp.concatenate([*fused, registers], axis=1), maps

    def encode(self, batch: dict, cam_delta: dict | None = None, cam_layer: str = "scale1"):
        """The CLS representation (B, d) and aux outputs."""
        cfg = self.config
        B = batch["ct"].shape[0] if "ct" in batch else batch["x"].shape[0]
        tokens = jnp.broadcast_to(self.cls[...], (B, 1, cfg.d))
        if cfg.uses_features:
            x = batch["x"][..., None] * self.feat_w[None] + self.feat_b[None]
            x = x + self.group_emb[batch["groups"]][None]
            tokens = jnp.concatenate([tokens, x], axis=1)
            key_mask = jnp.concatenate(
                [jnp.ones((B, 1), bool), jnp.broadcast_to(batch["feature_on"][None], (B, cfg.n_features))],
                axis=1,
            )
            for blk in self.token_blocks:
                tokens, _ = blk(tokens, key_mask=key_mask)
        aux: dict = {}
        branch_cls = {}
        if cfg.uses_aux_heads:
            branch_cls["features"] = tokens[:, 0]
        if cfg.uses_images:
            img, maps = self.image_tokens(batch, cam_delta, cam_layer)
            aux["maps"] = maps
            for blk in self.read_blocks:
                tokens, w = blk(tokens, img)
            aux["cls_attention"] = w[:, :, 0, :]  # (B, heads, n_image_tokens + registers)
            if cfg.uses_aux_heads:
                image_cls = jnp.broadcast_to(self.cls_image[...], (B, 1, cfg.d))
                for blk in self.read_blocks:
                    image_cls, _ = blk(image_cls, img)
                branch_cls["images"] = image_cls[:, 0]
        if branch_cls:
            aux["aux_logits"] = {
                b: {
                    t: head(self.ln_aux[b](c.astype(jnp.float32)))
                    for t, head in zip(cfg.tasks, self.aux_heads[b], strict=True)
                }
                for b, c in branch_cls.items()
            }
        return self.ln_out(tokens[:, 0].astype(jnp.float32)), aux

    def __call__(self, batch: dict, cam_delta: dict | None = None, cam_layer: str = "scale1"):
        cls, aux = self.encode(batch, cam_delta, cam_layer)
        aux["cls"] = cls
        return self.logits(cls, batch), aux

    def logits(self, cls: jax.Array, batch: dict | None = None) -> dict[str, jax.Array]:
        """Per task, the head on the CLS representation (B, d)."""
        return {t: head(cls) for t, head in zip(self.config.tasks, self.heads, strict=True)}
