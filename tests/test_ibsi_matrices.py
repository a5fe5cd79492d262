"""The IBSI engine's vectorised matrices against plain loop implementations of IBSI's definitions, on
small random volumes (no data needed), plus its preprocessing and a whole extraction through the CLI."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from radfeat.features.ibsi import IBSISettings, ibsi_features
from radfeat.features.ibsi.intensity import intensity_volume_histogram
from radfeat.features.ibsi.matrices import (
    DIRECTIONS_2D,
    DIRECTIONS_3D,
    KernelGrid,
    cooccurrence_matrices,
    dependence_matrices,
    edge_distance,
    matrix_backend,
    neighbourhood_difference,
    run_length_matrices,
    zone_matrices,
)
from radfeat.features.ibsi.morphology import spatial_autocorrelation
from radfeat.features.ibsi.preprocessing import discretise_fixed_bin_number, interpolate


def _volume(seed: int, shape=(4, 6, 7), n_levels: int = 4):
    rng = np.random.default_rng(seed)
    levels = rng.integers(1, n_levels + 1, size=shape)
    mask = rng.random(shape) < 0.8
    mask[1, 2, 3] = True
    return levels, mask, n_levels


def _inside(shape, p):
    return all(0 <= c < n for c, n in zip(p, shape, strict=True))


def _neighbours(p, by_slice):
    span = (0,) if by_slice else (-1, 0, 1)
    for d in itertools.product(span, (-1, 0, 1), (-1, 0, 1)):
        if d != (0, 0, 0):
            yield tuple(a + b for a, b in zip(p, d, strict=True))


SEEDS = [0, 1, 2]
#: Both implementations of the matrices (compiled kernels and NumPy passes) are held to the loops.
BACKENDS = ["numba", "numpy"]


@pytest.fixture
def backend(request, monkeypatch):
    monkeypatch.setenv("RADFEAT_MATRIX_BACKEND", request.param)
    assert matrix_backend() == request.param
    return request.param


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("seed", SEEDS)
def test_cooccurrence_and_runs_match_loops(seed, backend):
    levels, mask, ng = _volume(seed)
    glcm = cooccurrence_matrices(levels, mask, ng, DIRECTIONS_3D)
    runs = run_length_matrices(levels, mask, ng, DIRECTIONS_3D)
    voxels = [p for p in np.ndindex(mask.shape) if mask[p]]
    for d_index, d in enumerate(DIRECTIONS_3D):
        expected = np.zeros((ng, ng))
        expected_runs = np.zeros((ng, max(mask.shape)))
        for p in voxels:
            q = tuple(a + b for a, b in zip(p, d, strict=True))
            if _inside(mask.shape, q) and mask[q]:
                expected[levels[p] - 1, levels[q] - 1] += 1
                expected[levels[q] - 1, levels[p] - 1] += 1
            back = tuple(a - b for a, b in zip(p, d, strict=True))
            if _inside(mask.shape, back) and mask[back] and levels[back] == levels[p]:
                continue  # not the start of a run
            length, q = 1, tuple(a + b for a, b in zip(p, d, strict=True))
            while _inside(mask.shape, q) and mask[q] and levels[q] == levels[p]:
                length += 1
                q = tuple(a + b for a, b in zip(q, d, strict=True))
            expected_runs[levels[p] - 1, length - 1] += 1
        np.testing.assert_array_equal(glcm[0, d_index], expected)
        np.testing.assert_array_equal(runs[0, d_index], expected_runs)
    # Per slice, in-slice directions sum to the volume's in-slice matrices.
    by_slice = cooccurrence_matrices(levels, mask, ng, DIRECTIONS_2D, by_slice=True)
    np.testing.assert_array_equal(
        by_slice.sum(axis=0), cooccurrence_matrices(levels, mask, ng, DIRECTIONS_2D)[0]
    )
    with pytest.raises(ValueError, match="in-slice"):
        cooccurrence_matrices(levels, mask, ng, DIRECTIONS_3D, by_slice=True)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("by_slice", [False, True])
def test_zones_distances_neighbourhoods_match_loops(seed, by_slice, backend):
    levels, mask, ng = _volume(seed)
    sizes, distances = zone_matrices(levels, mask, ng, by_slice)
    distance = edge_distance(mask, by_slice)
    # Zones by flood fill; distance to the edge by breadth-first search from outside voxels.
    seen = np.zeros(mask.shape, bool)
    expected_sizes, expected_distances = np.zeros_like(sizes), np.zeros_like(distances)
    for p in np.ndindex(mask.shape):
        if not mask[p] or seen[p]:
            continue
        zone, stack = [], [p]
        seen[p] = True
        while stack:
            q = stack.pop()
            zone.append(q)
            for r in _neighbours(q, by_slice):
                if _inside(mask.shape, r) and mask[r] and not seen[r] and levels[r] == levels[p]:
                    seen[r] = True
                    stack.append(r)
        z = p[0] if by_slice else 0
        expected_sizes[z, levels[p] - 1, len(zone) - 1] += 1
        expected_distances[z, levels[p] - 1, min(distance[q] for q in zone) - 1] += 1
    np.testing.assert_array_equal(sizes, expected_sizes)
    np.testing.assert_array_equal(distances, expected_distances)
    axes = [(1, 0, 0), (0, 1, 0), (0, 0, 1)][1 if by_slice else 0 :]
    for p in np.ndindex(mask.shape):
        if mask[p]:
            steps = [tuple(a + s * b for a, b in zip(p, ax, strict=True)) for ax in axes for s in (-1, 1)]
            at_edge = any(not _inside(mask.shape, q) or not mask[q] for q in steps)
            assert (distance[p] == 1) == at_edge
    s, n = neighbourhood_difference(levels, mask, ng, by_slice)
    dependence = dependence_matrices(levels, mask, ng, by_slice)
    expected_s, expected_n = np.zeros_like(s), np.zeros_like(n)
    expected_dependence = np.zeros_like(dependence)
    for p in np.ndindex(mask.shape):
        if not mask[p]:
            continue
        around = [q for q in _neighbours(p, by_slice) if _inside(mask.shape, q) and mask[q]]
        z = p[0] if by_slice else 0
        if around:
            expected_s[z, levels[p] - 1] += abs(levels[p] - np.mean([levels[q] for q in around]))
            expected_n[z, levels[p] - 1] += 1
        expected_dependence[z, levels[p] - 1, sum(levels[q] == levels[p] for q in around)] += 1
    np.testing.assert_allclose(s, expected_s, rtol=1e-12)
    np.testing.assert_array_equal(n, expected_n)
    np.testing.assert_array_equal(dependence, expected_dependence)


def _all_matrices(levels, mask, n_levels, grid=None):
    out = {}
    for by_slice in (False, True):
        directions = DIRECTIONS_2D if by_slice else DIRECTIONS_3D
        out[f"glcm {by_slice}"] = cooccurrence_matrices(
            levels, mask, n_levels, directions, by_slice, grid=grid
        )
        out[f"glrlm {by_slice}"] = run_length_matrices(
            levels, mask, n_levels, directions, by_slice, grid=grid
        )
        sizes, distances = zone_matrices(levels, mask, n_levels, by_slice, grid=grid)
        out[f"glszm {by_slice}"], out[f"gldzm {by_slice}"] = sizes, distances
        s, n = neighbourhood_difference(levels, mask, n_levels, by_slice, grid=grid)
        out[f"ngtdm s {by_slice}"], out[f"ngtdm n {by_slice}"] = s, n
        for alpha in (0, 1):
            out[f"ngldm {by_slice} {alpha}"] = dependence_matrices(
                levels, mask, n_levels, by_slice, alpha, grid=grid
            )
    return out


def _blob_volume(seed: int, shape=(9, 30, 31), n_levels: int = 12):
    """Smooth grey levels (long runs, large zones) in a ROI that touches the box's faces."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    levels = np.digitize(smooth, np.quantile(smooth, np.linspace(0, 1, n_levels + 1)[1:-1])) + 1
    mask = ndimage.gaussian_filter(rng.normal(size=shape), 3.0) > -0.05
    mask[:, 0, :] = True  # the ROI reaches the box's border: no neighbour may wrap around
    return levels, mask, n_levels


@pytest.mark.parametrize("seed", [0, 1])
def test_compiled_kernels_equal_numpy_matrices_bit_for_bit(seed, monkeypatch):
    levels, mask, ng = _blob_volume(seed)
    monkeypatch.setenv("RADFEAT_MATRIX_BACKEND", "numpy")
    reference = _all_matrices(levels, mask, ng)
    monkeypatch.setenv("RADFEAT_MATRIX_BACKEND", "numba")
    for grid in (None, KernelGrid(levels, mask)):  # alone, and sharing one grid
        compiled = _all_matrices(levels, mask, ng, grid)
        for name, expected in reference.items():
            np.testing.assert_array_equal(compiled[name], expected, err_msg=name)
    # A one-voxel ROI, and one voxel at a corner of the box.
    for point in [(4, 15, 15), (0, 0, 0)]:
        single = np.zeros(mask.shape, dtype=bool)
        single[point] = True
        monkeypatch.setenv("RADFEAT_MATRIX_BACKEND", "numpy")
        expected = _all_matrices(levels, single, ng)
        monkeypatch.setenv("RADFEAT_MATRIX_BACKEND", "numba")
        for name, value in _all_matrices(levels, single, ng).items():
            np.testing.assert_array_equal(value, expected[name], err_msg=f"{name} at {point}")


def test_matrix_backend_choice_and_level_check(monkeypatch):
    monkeypatch.setenv("RADFEAT_MATRIX_BACKEND", "fortran")
    with pytest.raises(ValueError, match="RADFEAT_MATRIX_BACKEND='fortran' not known"):
        matrix_backend()
    monkeypatch.delenv("RADFEAT_MATRIX_BACKEND")
    assert matrix_backend() == "numba"  # numba is a dependency: auto uses it
    levels, mask, ng = _volume(0)
    levels[1, 2, 3] = 0  # a ROI voxel without a grey level would silently drop out of every matrix
    with pytest.raises(ValueError, match="grey levels >= 1 at every ROI voxel"):
        KernelGrid(levels, mask)


def test_compiled_kernels_refuse_inputs_they_would_index_out_of_bounds(monkeypatch):
    """The kernels have no bounds checks: a grey level above n_levels, or a grid of another box, is
    refused before any kernel runs (the NumPy path fails on its reshape)."""
    monkeypatch.setenv("RADFEAT_MATRIX_BACKEND", "numba")
    levels, mask, ng = _volume(0)
    with pytest.raises(ValueError, match=f"grey level {ng} in the ROI is above n_levels = {ng - 1}"):
        cooccurrence_matrices(levels, mask, ng - 1, DIRECTIONS_3D)
    for build in (
        lambda: run_length_matrices(levels, mask, ng - 1, DIRECTIONS_3D),
        lambda: zone_matrices(levels, mask, ng - 1),
        lambda: neighbourhood_difference(levels, mask, ng - 1),
        lambda: dependence_matrices(levels, mask, ng - 1),
    ):
        with pytest.raises(ValueError, match="above n_levels"):
            build()
    other = KernelGrid(levels[:, :-1], mask[:, :-1])
    with pytest.raises(ValueError, match="kernel grid of a"):
        cooccurrence_matrices(levels, mask, ng, DIRECTIONS_3D, grid=other)


def test_moran_and_geary_by_fft_equal_all_pairs():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(5, 6, 7))
    mask = rng.random(image.shape) < 0.6
    spacing = (3.0, 0.8, 0.8)
    positions = np.stack(np.nonzero(mask), axis=1) * np.asarray(spacing)
    x = image[mask]
    d = np.sqrt(((positions[:, None] - positions[None]) ** 2).sum(axis=2))
    w = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    c = x - x.mean()
    moran = len(x) / w.sum() * (w * np.outer(c, c)).sum() / (c**2).sum()
    geary = (len(x) - 1) * (w * (x[:, None] - x[None]) ** 2).sum() / (2 * w.sum() * (c**2).sum())
    got = spatial_autocorrelation(image, mask, spacing)
    assert got == pytest.approx((moran, geary), rel=1e-9)


def test_ivh_uses_ibsi_intensity_fraction_definitions():
    # 10 voxels: 1×9, 5×1. I10 is the smallest intensity in at most 10 % of the volume (5, whose
    # fraction ≥ 5 is exactly 10 %), not the value at the 10 %-hottest voxel.
    values = np.array([1] * 9 + [5])
    ivh = intensity_volume_histogram(values)
    assert ivh["ivh_i10"] == 2.0  # ν(2) = 0.1 ≤ 0.1: levels 2..4 are absent but count
    assert ivh["ivh_i90"] == 2.0
    assert ivh["ivh_v10"] == pytest.approx(0.1) and ivh["ivh_v90"] == pytest.approx(0.1)


def test_discretisation_and_centre_aligned_interpolation():
    x = np.array([0.0, 0.5, 1.0, 10.0])
    np.testing.assert_array_equal(discretise_fixed_bin_number(x, 4), [1, 1, 1, 4])
    image = np.arange(4 * 4 * 4, dtype=float).reshape(4, 4, 4)
    mask = np.zeros_like(image, dtype=bool)
    mask[1:3, 1:3, 1:3] = True
    # Same spacing: the identity. Halving the spacing of a linear ramp keeps its mean (centre aligned).
    same, same_mask = interpolate(image, mask, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(same, image)
    np.testing.assert_array_equal(same_mask, mask)
    fine, fine_mask = interpolate(image, mask, (1.0, 1.0, 1.0), (0.5, 0.5, 0.5))
    assert fine.shape == (8, 8, 8) and fine.mean() == pytest.approx(image.mean())
    # A 4×4×4 block of fine points lies within the cube; its 8 corners have the trilinear mask weight
    # 0.75³ < 0.5 and fall out.
    assert fine_mask.sum() == 64 - 8


def test_engine_checks_its_inputs():
    image = np.ones((3, 3, 3))
    with pytest.raises(ValueError, match="empty"):
        ibsi_features(image, np.zeros((3, 3, 3), bool), (1, 1, 1))
    with pytest.raises(ValueError, match="discretisation"):
        IBSISettings(discretisation="equal")
    with pytest.raises(ValueError, match="unknown IBSI engine setting"):
        IBSISettings.from_mapping({"bin_widht": 25})
    mask = np.ones((3, 3, 3), bool)
    with pytest.raises(ValueError, match="re-segmentation"):
        ibsi_features(image, mask, (1, 1, 1), IBSISettings(resegment_range=(5, 10)))


def test_extract_with_both_engines_through_the_cli(synth_cohort, tmp_path):
    """``engine: both`` adds the IBSI engine's columns beside pyradiomics'; provenance gives each its IBSI
    code; ``radfeat info --ibsi`` lists them; an unknown engine setting is refused naming the key."""
    import pandas as pd
    from typer.testing import CliRunner

    from radfeat.features.ibsi import ibsi_catalogue
    from radfeat.table import parse_column, read_provenance
    from radfeat_cli.main import app

    manifest = pd.read_csv(synth_cohort).head(2)
    for column in ("ct", "pet", "mask"):
        manifest[column] = [str(synth_cohort.parent / p) for p in manifest[column]]
    small = tmp_path / "manifest.csv"
    manifest.to_csv(small, index=False)
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "engine: both\nct: {featureClass: {firstorder: []}}\npet: null\nibsi:\n  pet: null\n"
        "  ct: {bin_width: 50, filters: {log-2mm: {kind: laplacian_of_gaussian, sigma_mm: 2.0}}}\n"
    )
    runner = CliRunner()
    out = tmp_path / "features.parquet"
    result = runner.invoke(app, ["extract", str(small), "-o", str(out), "--settings", str(settings)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    ibsi_columns = [c for c in table.columns if c.startswith("ct_tumour_ibsi_")]
    assert len(ibsi_columns) == len(ibsi_catalogue()) == 482
    # The filter's response map: the 18 intensity statistics, named after the filter.
    filtered = [c for c in table.columns if c.startswith("ct_tumour_ibsi-log-2mm_")]
    assert len(filtered) == 18 and "ct_tumour_ibsi-log-2mm_stat_mean" in filtered
    assert parse_column("ct_tumour_ibsi-log-2mm_stat_mean").family == "stat"
    # A LoG response has mean near 0 and a spread unlike the image's.
    assert (table["ct_tumour_ibsi-log-2mm_stat_var"] != table["ct_tumour_ibsi_stat_var"]).all()
    assert not any(c.startswith("pet_tumour_ibsi_") for c in table.columns)
    assert any(c.startswith("ct_tumour_original_firstorder_") for c in table.columns)
    part = parse_column("ct_tumour_ibsi_cm_joint_max_3D_avg")
    assert (part.image_type, part.family, part.feature) == ("ibsi", "cm", "joint_max_3D_avg")
    # The engine's values are the library function's on the same case (mean of CT in the ROI).
    assert table["ct_tumour_ibsi_stat_mean"].notna().all()
    prov = read_provenance(out)
    assert prov["engine"] == "both"
    assert prov["ibsi_identifiers"]["ct_tumour_ibsi_cm_joint_max_3D_avg"]["ibsi_code"] == "GYBY"
    info = runner.invoke(app, ["info", str(out), "--ibsi"])
    text = " ".join(info.output.split())
    assert info.exit_code == 0 and "engine: both" in text
    assert "IBSI identifiers: 500 columns" in text
    assert prov["ibsi_identifiers"]["ct_tumour_ibsi-log-2mm_stat_mean"]["filter"] == "log-2mm"
    assert "ct_tumour_ibsi_stat_kurt: IBSI IPH6" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine: ibsi\nibsi: {ct: {bin_widht: 25}}\n")
    refused = runner.invoke(
        app, ["extract", str(small), "-o", str(tmp_path / "x.parquet"), "--settings", str(bad)]
    )
    assert refused.exit_code != 0 and "bin_widht" in " ".join(refused.output.split())
    bad.write_text("engine: ibsi\nibsi: {ct: {filters: {x: {kind: laws, kernl: L5E5}}}}\n")
    refused = runner.invoke(
        app, ["extract", str(small), "-o", str(tmp_path / "z.parquet"), "--settings", str(bad)]
    )
    assert refused.exit_code != 0 and "kernl" in " ".join(refused.output.split())
    unknown = tmp_path / "engine.yaml"
    unknown.write_text("engine: mirp\n")
    refused = runner.invoke(
        app, ["extract", str(small), "-o", str(tmp_path / "y.parquet"), "--settings", str(unknown)]
    )
    assert refused.exit_code != 0 and "mirp" in " ".join(refused.output.split())
