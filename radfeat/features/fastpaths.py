"""Faster routes to pyradiomics' own values, switched on around radfeat's calls into pyradiomics.

:func:`pyradiomics_fast_paths` replaces, for the duration of a block, three pyradiomics internals by
equivalents that return the same numbers:

* the shape class's marching-cubes coefficients (:class:`radfeat.features.mesh.TableBackend`: no
  all-pairs loop over the mesh vertices);
* ``imageoperations.getBinEdges``, which takes the ROI's minimum and maximum with Python's built-in
  ``min`` / ``max`` (one Python step per voxel): the edges depend on those two numbers only, so they
  are computed by NumPy and handed to the original function;
* ``imageoperations.binImage``: every texture class bins the same (image, mask) again; within the
  block the first result is reused (keyed by the content of both arrays and the binning settings), so
  each filtered image is discretised once per mask for all feature classes.

Tests compare every feature with and without the block (``tests/test_fastpaths.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import numpy as np

__all__ = ["pyradiomics_fast_paths"]

#: Settings that change the discretisation.
_BINNING_KEYS = ("binWidth", "binCount")


def _digest(array: np.ndarray) -> bytes:
    data = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{data.dtype.str}{data.shape}".encode())
    h.update(memoryview(data).cast("B"))
    return h.digest()


def _numpy_bin_edges(original):
    def get_bin_edges(parameterValues, **kwargs):  # noqa: N803 - pyradiomics' keyword
        values = np.asarray(parameterValues)
        if values.size == 0 or not np.issubdtype(values.dtype, np.number):
            return original(parameterValues, **kwargs)
        # Both branches (binWidth and binCount) depend only on the minimum and maximum.
        return original(np.array([values.min(), values.max()], dtype=values.dtype), **kwargs)

    return get_bin_edges


def _memoised_bin_image(original, memo: dict):
    def bin_image(parameterMatrix, parameterMatrixCoordinates=None, **kwargs):  # noqa: N803
        if parameterMatrixCoordinates is None or not isinstance(parameterMatrixCoordinates, np.ndarray):
            return original(parameterMatrix, parameterMatrixCoordinates, **kwargs)
        key = (
            _digest(parameterMatrix),
            _digest(parameterMatrixCoordinates),
            tuple(repr(kwargs.get(k)) for k in _BINNING_KEYS),
        )
        if key not in memo:
            memo[key] = original(parameterMatrix, parameterMatrixCoordinates, **kwargs)
        matrix, edges = memo[key]
        return matrix.copy(), np.array(edges, copy=True)

    return bin_image


@contextlib.contextmanager
def pyradiomics_fast_paths() -> Iterator[None]:
    """Within the block pyradiomics computes its usual values by the faster routes listed above."""
    from radiomics import imageoperations, shape

    from radfeat.features.mesh import TableBackend

    saved = (shape.cShape, imageoperations.getBinEdges, imageoperations.binImage)
    memo: dict = {}
    shape.cShape = TableBackend(saved[0])
    imageoperations.getBinEdges = _numpy_bin_edges(saved[1])
    imageoperations.binImage = _memoised_bin_image(saved[2], memo)
    try:
        yield
    finally:
        shape.cShape, imageoperations.getBinEdges, imageoperations.binImage = saved
        memo.clear()
