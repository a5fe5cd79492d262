"""Faster routes to pyradiomics' own values, switched on around radfeat's calls into pyradiomics.

:func:`pyradiomics_fast_paths` replaces, for the duration of a block, three pyradiomics internals by
equivalents that return the same numbers:

* the shape class's marching-cubes coefficients (:class:`radfeat.features.mesh.TableBackend`: no
  all-pairs loop over the mesh vertices);
* ``imageoperations.getBinEdges``, which takes the ROI's minimum and maximum with Python's built-in
  ``min`` / ``max`` (one Python step per voxel): the edges depend on those two numbers only, so they
  are computed by NumPy and handed to the original function;
* ``imageoperations.binImage``: every texture class bins the same (image, mask) again; within the
  block the first result is reused (found by comparing both arrays and the binning settings), so
  each filtered image is discretised once per mask for all feature classes.

Tests compare every feature with and without the block (``tests/test_fastpaths.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["FastPaths", "pyradiomics_fast_paths"]

#: Settings that change the discretisation.
_BINNING_KEYS = ("binWidth", "binCount")


def _numpy_bin_edges(original):
    def get_bin_edges(parameterValues, **kwargs):  # noqa: N803 - pyradiomics' keyword
        values = np.asarray(parameterValues)
        if values.size == 0 or not np.issubdtype(values.dtype, np.number):
            return original(parameterValues, **kwargs)
        # Both branches (binWidth and binCount) depend only on the minimum and maximum.
        return original(np.array([values.min(), values.max()], dtype=values.dtype), **kwargs)

    return get_bin_edges


class _BinningMemo:
    """The last few ``binImage`` results, found again by comparing the inputs (``np.array_equal``:
    exact, and cheaper than hashing them). :meth:`forget` starts a new image."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.entries: list[tuple[np.ndarray, np.ndarray, tuple, Any]] = []

    def forget(self) -> None:
        self.entries.clear()

    def wrap(self, original):
        def bin_image(parameterMatrix, parameterMatrixCoordinates=None, **kwargs):  # noqa: N803
            if not isinstance(parameterMatrixCoordinates, np.ndarray):
                return original(parameterMatrix, parameterMatrixCoordinates, **kwargs)
            binning = tuple(repr(kwargs.get(k)) for k in _BINNING_KEYS)
            result = next(
                (
                    entry[3]
                    for entry in self.entries
                    if entry[2] == binning
                    and entry[0].shape == parameterMatrix.shape
                    and entry[0].dtype == parameterMatrix.dtype
                    and np.array_equal(entry[1], parameterMatrixCoordinates)
                    and np.array_equal(entry[0], parameterMatrix)
                ),
                None,
            )
            if result is None:
                result = original(parameterMatrix, parameterMatrixCoordinates, **kwargs)
                self.entries.append(
                    (parameterMatrix.copy(), parameterMatrixCoordinates.copy(), binning, result)
                )
                del self.entries[: -self.size]
            discretised, edges = result
            return discretised.copy(), np.array(edges, copy=True)

        return bin_image


class FastPaths:
    """Handle of an active :func:`pyradiomics_fast_paths` block."""

    def __init__(self) -> None:
        self.binning = _BinningMemo()

    def new_image(self) -> None:
        """Drop remembered discretisations (call before each filtered image, to bound memory)."""
        self.binning.forget()


@contextlib.contextmanager
def pyradiomics_fast_paths() -> Iterator[FastPaths]:
    """Within the block pyradiomics computes its usual values by the faster routes listed above."""
    from radiomics import imageoperations, shape

    from radfeat.features.mesh import TableBackend

    saved = (shape.cShape, imageoperations.getBinEdges, imageoperations.binImage)
    handle = FastPaths()
    shape.cShape = TableBackend(saved[0])
    imageoperations.getBinEdges = _numpy_bin_edges(saved[1])
    imageoperations.binImage = handle.binning.wrap(saved[2])
    try:
        yield handle
    finally:
        shape.cShape, imageoperations.getBinEdges, imageoperations.binImage = saved
        handle.new_image()
