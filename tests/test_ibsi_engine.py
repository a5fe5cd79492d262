"""radfeat's own IBSI 1 engine against the IBSI consensus values (digital phantom, CT phantom A–E).

A value passes when it is within the consensus tolerance, after rounding to 3 significant digits (IBSI's
convention) or as it is. The counts per configuration are fixed: the test fails if any count drops, and
if a listed deviation starts to agree (then the list must be updated).
"""

from __future__ import annotations

import collections

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radfeat.features.ibsi import IBSISettings, ibsi_catalogue, ibsi_features

pytestmark = pytest.mark.realdata

#: IBSI 1 table 5.1: the CT-phantom configurations (2D: A, B; 3D: C, D, E).
CT_CONFIGURATIONS = {
    "a": dict(resegment_range=(-500, 400), discretisation="fixed_bin_size", bin_width=25),
    "b": dict(new_spacing_mm=(2.0, 2.0, 3.0), round_intensities=True, resegment_range=(-500, 400),
              discretisation="fixed_bin_number", bin_count=32),
    "c": dict(new_spacing_mm=(2.0, 2.0, 2.0), round_intensities=True, resegment_range=(-1000, 400),
              discretisation="fixed_bin_size", bin_width=25, ivh_discretisation="fixed_bin_size",
              ivh_bin_width=2.5),
    "d": dict(new_spacing_mm=(2.0, 2.0, 2.0), round_intensities=True, outlier_sigma=3.0,
              discretisation="fixed_bin_number", bin_count=32),
    "e": dict(new_spacing_mm=(2.0, 2.0, 2.0), interpolation_order=3, round_intensities=True,
              resegment_range=(-1000, 400), outlier_sigma=3.0, discretisation="fixed_bin_number",
              bin_count=32, ivh_discretisation="fixed_bin_number", ivh_bin_count=1000),
}  # fmt: skip

#: Values outside their tolerance. Every preprocessing diagnostic of IBSI (grid size, interpolated
#: intensity range and mean, mask voxel counts before and after re-segmentation) is within its
#: reference tolerance for these configurations; the mesh of the interpolated mask gives a sphericity
#: of 0.7205 against 0.723 ± 0.003, so compactness 2 and asphericity (its cube and inverse) fall just
#: outside theirs. The four zone / dependence values of D move with the exact outlier bounds.
KNOWN_DEVIATIONS = {
    "c": {"morph_comp_2", "morph_asphericity"},
    "d": {
        "morph_comp_2",
        "morph_asphericity",
        "szm_szlge_3D",
        "szm_zsnu_3D",
        "szm_zs_entr_3D",
        "ngl_ldlge_3D",
    },
    "e": {"morph_comp_2", "morph_asphericity"},
}
#: Consensus values the engine reproduces per configuration (of those it computes: not the diagnostics).
EXPECTED = {"a": (346, 346), "b": (346, 346), "c": (208, 210), "d": (204, 210), "e": (208, 210)}


def _reference(path) -> dict[str, tuple[float, float]]:
    table = pd.read_csv(path, sep=";").dropna(subset=["reference value"])
    return {r.tag: (float(r["reference value"]), float(r.tolerance)) for _, r in table.iterrows()}


def _passes(value: float, reference: float, tolerance: float) -> bool:
    return abs(float(f"{value:.3g}") - reference) <= tolerance or abs(value - reference) <= tolerance


def _score(values: dict[str, float], reference: dict[str, tuple[float, float]]):
    passed, failed = collections.Counter(), set()
    for tag, (ref, tol) in reference.items():
        if tag not in values:
            continue
        if _passes(values[tag], ref, tol):
            passed[tag.split("_")[0]] += 1
        else:
            failed.add(tag)
    return passed, failed


def test_digital_phantom_all_482_values(shared_data, capsys):
    folder = shared_data / "ibsi" / "ibsi_1_digital_phantom" / "nifti"
    image = sitk.ReadImage(str(folder / "image" / "phantom.nii.gz"))
    mask = sitk.ReadImage(str(folder / "mask" / "mask.nii.gz"))
    values = ibsi_features(
        sitk.GetArrayFromImage(image),
        sitk.GetArrayFromImage(mask) > 0,
        image.GetSpacing(),
        IBSISettings(discretisation="none"),  # the phantom's grey levels are used as they are
    )
    reference = _reference(shared_data / "ibsi" / "ibsi_1_reference_values_mirp" / "ibsi_1_dig_phantom.csv")
    passed, failed = _score(values, reference)
    with capsys.disabled():
        print(
            f"\nIBSI 1 digital phantom, radfeat engine: {sum(passed.values())}/{len(reference)} "
            f"{dict(passed)}"
        )
    assert not failed, sorted(failed)
    assert len(reference) == 482 and sum(passed.values()) == 482
    # Every computed feature is catalogued with its IBSI code, and every catalogued one is computed.
    assert set(values) == set(ibsi_catalogue())


@pytest.fixture(scope="module")
def ct_phantom(shared_data):
    folder = shared_data / "ibsi" / "ibsi_1_ct_radiomics_phantom" / "nifti"
    image = sitk.ReadImage(str(folder / "image" / "phantom.nii.gz"))
    mask = sitk.ReadImage(str(folder / "mask" / "mask.nii.gz"))
    # As upstream advises: float32, rounded to the nearest integer (HU).
    array = np.rint(sitk.GetArrayFromImage(image).astype(np.float32)).astype(float)
    return array, sitk.GetArrayFromImage(mask) > 0, image.GetSpacing()


@pytest.mark.parametrize("config", sorted(CT_CONFIGURATIONS))
def test_ct_phantom_configuration(ct_phantom, shared_data, config, capsys):
    array, mask, spacing = ct_phantom
    values = ibsi_features(array, mask, spacing, IBSISettings(**CT_CONFIGURATIONS[config]))
    folder = shared_data / "ibsi" / "ibsi_1_reference_values_mirp"
    reference = _reference(folder / f"ibsi_1_chest_config_{config}.csv")
    passed, failed = _score(values, reference)
    computed = sum(1 for tag in reference if tag in values)
    with capsys.disabled():
        print(
            f"\nIBSI 1 CT phantom config {config.upper()}: {sum(passed.values())}/{computed} {dict(passed)}"
        )
    assert failed == KNOWN_DEVIATIONS.get(config, set())
    assert (sum(passed.values()), computed) == EXPECTED[config]
    # The morphological, statistical and histogram families are complete in every configuration.
    assert (passed["morph"], passed["stat"], passed["ih"], passed["ivh"]) >= (23, 18, 23, 6)
