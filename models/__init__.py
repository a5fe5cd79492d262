"""models: everything that learns from a radfeat feature table (classical zoo, CV, statistics, fusion).

Only :mod:`models.fusion` imports JAX, so the classical path stays light.
"""

__all__: list[str] = []
