"""Checkpoints of a training run: arrays (model, optimizer, best-so-far, GradNorm) in ``.npz``, metadata in
``.json``, written as one checked pair; no pickle."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["save_checkpoint", "load_checkpoint"]


def _flatten(tree) -> dict[str, np.ndarray]:
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            flat["prngkey:" + key] = np.asarray(jax.random.key_data(leaf))
        else:
            flat[key] = np.asarray(leaf)
    return flat


def _unflatten(template, arrays: dict[str, np.ndarray]):
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    new = []
    for path, leaf in leaves:
        key = "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            new.append(jax.random.wrap_key_data(jnp.asarray(arrays["prngkey:" + key])))
        else:
            new.append(jnp.asarray(arrays[key]))
    return jax.tree_util.tree_unflatten(treedef, new)


def save_checkpoint(
    path: str | Path,
    model,
    opt_state=None,
    meta: dict | None = None,
    best=None,
    gradnorm=None,
    ema=None,
) -> Path:
    """Model, optimizer state, best-so-far parameters, GradNorm task weights and the exponential moving
    average of the parameters (``ema``, a parameter state) as arrays in one
    ``.npz``, metadata in ``.json``, written as one checked pair (the JSON records the NPZ's SHA-256;
    :func:`radfeat.utils.atomic.write_pair`), so a resume never mixes two epochs."""
    from radfeat.utils.atomic import write_pair

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"model/{k}": v for k, v in _flatten(nnx.to_pure_dict(nnx.state(model))).items()}
    if opt_state is not None:
        arrays.update({f"opt/{k}": v for k, v in _flatten(opt_state).items()})
    if best is not None:
        arrays.update({f"best/{k}": v for k, v in _flatten(best).items()})
    if ema is not None:
        arrays.update({f"ema/{k}": v for k, v in _flatten(nnx.to_pure_dict(ema)).items()})
    if gradnorm is not None:
        arrays.update(
            {f"gradnorm/{k}": v for k, v in _flatten(nnx.to_pure_dict(nnx.state(gradnorm))).items()}
        )

    def write_arrays(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    write_pair({path.with_suffix(".npz"): write_arrays}, path.with_suffix(".json"), meta or {})
    return path.with_suffix(".npz")


def load_checkpoint(
    path: str | Path, model, opt_state=None, gradnorm=None, ema=None
) -> tuple[dict, object | None, object | None, object | None]:
    """Restore arrays saved by :func:`save_checkpoint` into ``model`` (and ``gradnorm``); returns the
    metadata, the best-so-far parameters (a pure dict), the optimizer state (shaped like
    ``opt_state``) and the parameter average (shaped like the parameter state ``ema``) when saved.

    Raises
    ------
    radfeat.utils.atomic.IncompleteWriteError
        When the arrays do not match the metadata (an interrupted write).
    """
    from radfeat.utils.atomic import read_pair_manifest

    path = Path(path)
    meta = read_pair_manifest(path.with_suffix(".json"))
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}

    def part(prefix):
        return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

    state = nnx.state(model)
    pure = _unflatten(nnx.to_pure_dict(state), part("model/"))
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    restored_opt = None
    if opt_state is not None and part("opt/"):
        restored_opt = _unflatten(opt_state, part("opt/"))
    best = None
    if part("best/"):
        best = _unflatten(nnx.to_pure_dict(nnx.state(model, nnx.Param)), part("best/"))
    if gradnorm is not None and part("gradnorm/"):
        gn_state = nnx.state(gradnorm)
        nnx.replace_by_pure_dict(gn_state, _unflatten(nnx.to_pure_dict(gn_state), part("gradnorm/")))
        nnx.update(gradnorm, gn_state)
    restored_ema = None
    if ema is not None and part("ema/"):
        restored_ema = jax.tree.map(jnp.copy, ema)
        nnx.replace_by_pure_dict(restored_ema, _unflatten(nnx.to_pure_dict(ema), part("ema/")))
    return {k: v for k, v in meta.items() if k != "members"}, best, restored_opt, restored_ema
