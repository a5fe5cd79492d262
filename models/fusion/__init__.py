"""DMDP-style PET/CT fusion network in JAX/Flax NNX (only this package imports jax)."""
