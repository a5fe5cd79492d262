"""IBSI 2 convolutional filters: mean, Laplacian of Gaussian, Laws, Gabor, separable wavelets (Haar,
Daubechies, Coiflet; undecimated) and the Simoncelli non-separable wavelet.

Pure functions of a (z, y, x) array; lengths in mm with the voxel spacing (z, y, x) mm. Boundary
conditions use IBSI 2's names: ``constant`` (zero padding), ``nearest``, ``periodic`` and ``mirror``
(the edge voxel repeated: d c b a | a b c d). ``by_slice`` filters each axial slice in 2D. Rotation
invariance pools the response over the 24 right-angle rotations of the volume (4 in a slice): the
image is rotated, filtered and rotated back, which is exact for any kernel. Checked against the IBSI 2
phase-1 reference response maps (``tests/test_ibsi_filters.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

__all__ = [
    "BOUNDARY_MODES",
    "LAWS_KERNELS",
    "mean_filter",
    "laplacian_of_gaussian",
    "laws_filter",
    "gabor_filter",
    "separable_wavelet",
    "simoncelli_wavelet",
    "FILTERS",
    "apply_filter",
]

#: IBSI 2 boundary conditions → SciPy's ``mode`` names.
BOUNDARY_MODES = {"constant": "constant", "nearest": "nearest", "periodic": "wrap", "mirror": "reflect"}
_PAD_MODES = {"constant": "constant", "nearest": "edge", "periodic": "wrap", "mirror": "symmetric"}

#: Laws' 1-D kernels, normalised as IBSI 2 gives them.
LAWS_KERNELS = {
    "L3": np.array([1.0, 2.0, 1.0]) / math.sqrt(6.0),
    "E3": np.array([-1.0, 0.0, 1.0]) / math.sqrt(2.0),
    "S3": np.array([-1.0, 2.0, -1.0]) / math.sqrt(6.0),
    "L5": np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / math.sqrt(70.0),
    "E5": np.array([-1.0, -2.0, 0.0, 2.0, 1.0]) / math.sqrt(10.0),
    "S5": np.array([-1.0, 0.0, 2.0, 0.0, -1.0]) / math.sqrt(6.0),
    "W5": np.array([-1.0, 2.0, 0.0, -2.0, 1.0]) / math.sqrt(10.0),
    "R5": np.array([1.0, -4.0, 6.0, -4.0, 1.0]) / math.sqrt(70.0),
}


def _mode(boundary: str) -> str:
    if boundary not in BOUNDARY_MODES:
        raise ValueError(f"boundary {boundary!r} not known; valid: {list(BOUNDARY_MODES)}")
    return BOUNDARY_MODES[boundary]


def _per_slice(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(s) for s in image])


def _rotations(by_slice: bool):
    """(forward, inverse) array maps of the 24 proper right-angle rotations (4 in-slice ones)."""
    if by_slice:
        for k in range(4):
            yield (lambda a, k=k: np.rot90(a, k, axes=(1, 2))), (lambda a, k=k: np.rot90(a, -k, axes=(1, 2)))
        return
    for order in itertools.permutations(range(3)):
        parity = 1 if sum(order[i] > order[j] for i in range(3) for j in range(i + 1, 3)) % 2 == 0 else -1
        for signs in itertools.product((1, -1), repeat=3):
            if parity * math.prod(signs) != 1:
                continue
            flips = tuple(a for a in range(3) if signs[a] < 0)

            def forward(a, order=order, flips=flips):
                b = np.transpose(a, order)
                return np.flip(b, flips) if flips else b

            def inverse(b, order=order, flips=flips):
                b = np.flip(b, flips) if flips else b
                return np.transpose(b, np.argsort(order))

            yield forward, inverse


def _rotation_invariant(
    image: np.ndarray, filt: Callable[[np.ndarray], np.ndarray], by_slice: bool, pooling: str
) -> np.ndarray:
    responses = [inverse(filt(forward(image))) for forward, inverse in _rotations(by_slice)]
    if pooling == "max":
        return np.max(responses, axis=0)
    if pooling == "mean":
        return np.mean(responses, axis=0)
    raise ValueError(f"pooling {pooling!r} not known; valid: ['max', 'mean']")


def mean_filter(
    image: np.ndarray, support: int = 15, boundary: str = "mirror", by_slice: bool = False
) -> np.ndarray:
    """Mean over a cube (square) of ``support`` voxels per side (IBSI 2, 2.1)."""
    from scipy import ndimage

    size = (1, support, support) if by_slice else support
    return ndimage.uniform_filter(np.asarray(image, dtype=float), size, mode=_mode(boundary))


def laplacian_of_gaussian(
    image: np.ndarray,
    sigma_mm: float,
    spacing_zyx: tuple[float, float, float],
    truncate: float = 4.0,
    boundary: str = "mirror",
    by_slice: bool = False,
) -> np.ndarray:
    """Laplacian of Gaussian with scale ``sigma_mm``, kernel cut at ``truncate`` σ (IBSI 2, 2.2)."""
    from scipy import ndimage

    image = np.asarray(image, dtype=float)
    sigma = tuple(sigma_mm / s for s in spacing_zyx)
    mode = _mode(boundary)
    if by_slice:
        return _per_slice(
            image, lambda s: ndimage.gaussian_laplace(s, sigma[1:], mode=mode, truncate=truncate)
        )
    return ndimage.gaussian_laplace(image, sigma, mode=mode, truncate=truncate)


def _separable(image: np.ndarray, kernels_xyz, mode: str, by_slice: bool) -> np.ndarray:
    """Convolve with 1-D kernels along x, y (and z): the first kernel runs along x (last array axis)."""
    from scipy import ndimage

    out = np.asarray(image, dtype=float)
    for kernel, axis in zip(kernels_xyz, (2, 1) if by_slice else (2, 1, 0), strict=True):
        out = ndimage.convolve1d(out, kernel, axis=axis, mode=mode)
    return out


def laws_filter(
    image: np.ndarray,
    kernel: str = "E5L5S5",
    boundary: str = "mirror",
    by_slice: bool = False,
    rotation_invariant: bool = False,
    pooling: str = "max",
    energy_distance: int | None = None,
) -> np.ndarray:
    """Laws' kernel response (IBSI 2, 2.3): ``kernel`` names the 1-D kernels for x, y (and z), e.g.
    ``E5L5S5`` or ``L5S5`` in a slice; optional rotation invariance (pooled over rotations) and the
    energy map (mean |response| within ``energy_distance`` voxels, Chebyshev), computed after pooling."""
    from scipy import ndimage

    names = [kernel[i : i + 2] for i in range(0, len(kernel), 2)]
    if len(names) != (2 if by_slice else 3) or any(n not in LAWS_KERNELS for n in names):
        raise ValueError(
            f"Laws kernel {kernel!r}: give {2 if by_slice else 3} of {sorted(LAWS_KERNELS)}, x first"
        )
    mode = _mode(boundary)
    kernels = [LAWS_KERNELS[n] for n in names]

    def filt(a: np.ndarray) -> np.ndarray:
        return _separable(a, kernels, mode, by_slice)

    out = _rotation_invariant(image, filt, by_slice, pooling) if rotation_invariant else filt(image)
    if energy_distance is not None:
        width = 2 * energy_distance + 1
        out = ndimage.uniform_filter(np.abs(out), (1, width, width) if by_slice else width, mode=mode)
    return out


def _gabor_kernel(sigma_mm, wavelength_mm, gamma, theta, spacing_rc, truncate) -> np.ndarray:
    """Complex 2-D Gabor kernel (rows, columns) on a grid of ``spacing_rc`` mm; its support covers
    ``truncate`` standard deviations of the Gaussian envelope along both of its axes (σ and σ/γ)."""
    reach = truncate * sigma_mm * max(1.0, 1.0 / gamma)
    rr, rc = (int(math.floor(reach / s + 0.5)) for s in spacing_rc)
    y, x = np.mgrid[-rr : rr + 1, -rc : rc + 1].astype(float)
    y, x = y * spacing_rc[0], x * spacing_rc[1]
    xt = x * math.cos(theta) + y * math.sin(theta)
    yt = -x * math.sin(theta) + y * math.cos(theta)
    envelope = np.exp(-(xt**2 + gamma**2 * yt**2) / (2.0 * sigma_mm**2))
    return envelope * np.exp(1j * 2.0 * math.pi * xt / wavelength_mm)


def _gabor_slices(volume: np.ndarray, kernel: np.ndarray, boundary: str) -> np.ndarray:
    """|volume ∗ kernel| in every slice along axis 0 (FFT convolution of the padded slices)."""
    from scipy import signal

    pr, pc = (n // 2 for n in kernel.shape)
    padded = np.pad(volume, ((0, 0), (pr, pr), (pc, pc)), mode=_PAD_MODES[boundary])
    return np.abs(signal.fftconvolve(padded, kernel[None], mode="valid", axes=(1, 2)))


def gabor_filter(
    image: np.ndarray,
    sigma_mm: float,
    wavelength_mm: float,
    gamma: float,
    theta_deg: float,
    spacing_zyx: tuple[float, float, float],
    boundary: str = "mirror",
    rotation_invariant: bool = False,
    theta_step_deg: float = 45.0,
    orthogonal_planes: bool = False,
    truncate: float = 4.0,
) -> np.ndarray:
    """Modulus of the 2-D Gabor response in the axial slices (IBSI 2, 2.4): Gaussian envelope of scale
    ``sigma_mm`` and aspect ``gamma``, wavelength ``wavelength_mm``, orientation ``theta_deg`` (x → y).
    ``rotation_invariant`` averages the orientations θ, θ + step, … over the full turn;
    ``orthogonal_planes`` averages the axial, coronal and sagittal responses."""
    _mode(boundary)
    image = np.asarray(image, dtype=float)
    if rotation_invariant:
        turn = 180.0 if (180.0 / theta_step_deg).is_integer() else 360.0  # |response| repeats after 180°
        thetas = theta_deg + theta_step_deg * np.arange(int(round(turn / theta_step_deg)))
    else:
        thetas = np.array([theta_deg])
    plane_axes = (0, 1, 2) if orthogonal_planes else (0,)
    responses = []
    for axis in plane_axes:
        volume = np.moveaxis(image, axis, 0)
        rc = tuple(s for a, s in enumerate(spacing_zyx) if a != axis)
        total = sum(
            _gabor_slices(
                volume, _gabor_kernel(sigma_mm, wavelength_mm, gamma, math.radians(t), rc, truncate), boundary
            )
            for t in thetas
        )
        responses.append(np.moveaxis(total / len(thetas), 0, axis))
    return np.mean(responses, axis=0)


def _dilated(kernel: np.ndarray, level: int) -> np.ndarray:
    """The à-trous filter of ``level``: 2^(level−1) − 1 zeros after every tap."""
    step = 2 ** (level - 1)
    out = np.zeros(len(kernel) * step)
    out[::step] = kernel
    return out


def separable_wavelet(
    image: np.ndarray,
    wavelet: str = "db2",
    response: str = "LHL",
    level: int = 1,
    boundary: str = "mirror",
    rotation_invariant: bool = False,
    pooling: str = "mean",
    by_slice: bool = False,
) -> np.ndarray:
    """Undecimated separable wavelet response (IBSI 2, 2.5): ``response`` gives the low (L) or high (H)
    pass filter for x, y (and z; two letters with ``by_slice``); level j filters the level j − 1 all-low
    response with the dilated filters. Filters are PyWavelets' decomposition filters (``haar``, ``db2``,
    ``coif1`` …)."""
    import pywt

    n_axes = 2 if by_slice else 3
    if len(response) != n_axes or set(response) - {"L", "H"}:
        raise ValueError(f"wavelet response {response!r}: {n_axes} letters L or H, x first")
    bank = pywt.Wavelet(wavelet)
    low, high = np.asarray(bank.dec_lo), np.asarray(bank.dec_hi)
    mode = _mode(boundary)

    def filt(a: np.ndarray) -> np.ndarray:
        out = a
        for j in range(1, level + 1):
            letters = response if j == level else "L" * n_axes
            kernels = [_dilated(low if c == "L" else high, j) for c in letters]
            out = _separable(out, kernels, mode, by_slice)
        return out

    image = np.asarray(image, dtype=float)
    return _rotation_invariant(image, filt, by_slice, pooling) if rotation_invariant else filt(image)


def simoncelli_wavelet(image: np.ndarray, level: int = 1, by_slice: bool = False) -> np.ndarray:
    """Simoncelli non-separable (isotropic) wavelet band of ``level`` (IBSI 2, 2.6), applied in the
    Fourier domain (periodic boundary): ψ(ν) = cos(π/2 · log2(2ν / ν_max)) for ν_max/4 < ν ≤ ν_max,
    ν_max = 2^(1−level); ν is sampled on a symmetric grid from −1 to 1 along every axis (of the slice
    with ``by_slice``)."""
    image = np.asarray(image, dtype=float)
    axes = (1, 2) if by_slice else (0, 1, 2)
    grids = np.meshgrid(*[np.linspace(-1.0, 1.0, image.shape[a]) for a in axes], indexing="ij")
    nu = np.sqrt(sum(g**2 for g in grids))
    nu_max = 2.0 ** (1 - level)
    band = (nu > nu_max / 4) & (nu <= nu_max)
    response = np.zeros(nu.shape)
    response[band] = np.cos(math.pi / 2 * np.log2(2.0 * nu[band] / nu_max))
    transfer = np.fft.ifftshift(response)
    return np.real(np.fft.ifftn(np.fft.fftn(image, axes=axes) * transfer, axes=axes))


FILTERS = {
    "mean": mean_filter,
    "laplacian_of_gaussian": laplacian_of_gaussian,
    "laws": laws_filter,
    "gabor": gabor_filter,
    "separable_wavelet": separable_wavelet,
    "simoncelli": simoncelli_wavelet,
}
_NEEDS_SPACING = {"laplacian_of_gaussian", "gabor"}


def apply_filter(image: np.ndarray, spacing_zyx: tuple[float, float, float], spec: dict) -> np.ndarray:
    """The response map of ``spec`` = ``{"kind": <one of FILTERS>, <that filter's keyword arguments>}``;
    ``spacing_zyx`` (mm) is passed to the filters whose sizes are in mm."""
    options = dict(spec)
    kind = options.pop("kind", None)
    if kind not in FILTERS:
        raise ValueError(f"filter kind {kind!r} not known; valid: {sorted(FILTERS)}")
    if kind in _NEEDS_SPACING:
        options["spacing_zyx"] = tuple(spacing_zyx)
    if kind == "gabor" and options.pop("by_slice", True) is False:
        options.setdefault("orthogonal_planes", True)
    try:
        return FILTERS[kind](image, **options)
    except TypeError as exc:
        raise ValueError(f"filter {kind!r}: {exc}") from None
