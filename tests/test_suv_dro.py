"""PET → SUV against known answers.

* The 17 SUV digital reference objects (oncoray/suv_computation): every object gives SUVbw min / median /
  max inside the mask 0.20 / 1.00 / 4.00 to the two decimals the reference states. Tolerance: ±0.005
  (two decimals), widened to one stored quantisation step where the object's own integer storage cannot
  carry two decimals (DRO_2_3 stores SUVbsa with RescaleSlope 0.01: one step is 3.8 % of the median).
  The step is computed from each object's header, not listed here.
* Eight vendor metadata sets (cornerstonejs/calculate-suv): the SUVbw factor to 1e-6 relative.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset

from radfeat.dicom.series import series_slices
from radfeat.dicom.suv import PHILIPS_ACTIVITY_SCALE_FACTOR, PHILIPS_SUV_SCALE_FACTOR, suv_conversion
from radfeat.io import read_pet_suv

#: The rule each object exercises must show in the conversion record.
NOTE_FOR = {
    "DRO_2_1": "LBMJAMES128",
    "DRO_2_2": "IBW",
    "DRO_2_3": "SUVbsa",
    "DRO_2_4": "(7053,1000)",
    "DRO_2_5": "(7053,1009)",
    "DRO_3_0": "MBq",
    "DRO_3_1": "ADMIN",
    "DRO_3_2": "FrameReferenceTime",
    "DRO_3_4": "NONE",
}


def _objects(shared: object):
    return list(csv.DictReader(open(shared / "dicom" / "suv_dro" / "DRO" / "DRO_list.csv")))


def _quantisation_step(folder, factors) -> float:
    """One stored integer unit in SUVbw: max over slices of RescaleSlope × the slice's SUV factor."""
    slices = series_slices(folder)
    return max(float(h.RescaleSlope) * f for h, f in zip(slices.headers, factors, strict=True))


@pytest.mark.realdata
def test_every_suv_reference_object_gives_the_known_suv(shared_data):
    root = shared_data / "dicom" / "suv_dro" / "DRO"
    rows = _objects(shared_data)
    assert len(rows) == 17
    widened = []
    for row in rows:
        folder = root / row["ID"] / "PT"
        suv, info = read_pet_suv(folder, case_id=row["ID"])
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(root / row["ID"] / "mask" / "DRO_mask.nii.gz"))) > 0
        values = sitk.GetArrayFromImage(suv)[mask]
        got = np.array([values.min(), np.median(values), values.max()])
        expected = np.array(
            [float(row[k]) for k in ("SUVmin_expected", "SUVmed_expected", "SUVmax_expected")]
        )
        if not np.array_equal(np.round(got, 2), expected):
            # Only where the stored integers cannot carry two decimals: within one stored step.
            step = _quantisation_step(folder, suv_conversion(series_slices(folder).headers).factors)
            assert step > 0.005 and np.all(np.abs(got - expected) <= step), (
                row["ID"],
                row["Description"],
                got,
            )
            widened.append(row["ID"])
        if row["ID"] in NOTE_FOR:
            assert any(NOTE_FOR[row["ID"]] in n for n in info.notes), (row["ID"], info.notes)
    assert widened == ["DRO_2_3"]


_RADIOPHARMACEUTICAL = (
    "RadiopharmaceuticalStartTime",
    "RadiopharmaceuticalStartDateTime",
    "RadionuclideTotalDose",
    "RadionuclideHalfLife",
)


def _dataset(instance: dict) -> Dataset:
    """A PET header from calculate-suv's instance JSON (radiopharmaceutical tags in their sequence)."""
    ds, item = Dataset(), Dataset()
    ds.Modality = "PT"
    for key, value in instance.items():
        if key == "PhilipsPETPrivateGroup":
            if "SUVScaleFactor" in value:
                ds.add_new(PHILIPS_SUV_SCALE_FACTOR, "DS", value["SUVScaleFactor"].strip())
            if "ActivityConcentrationScaleFactor" in value:
                ds.add_new(
                    PHILIPS_ACTIVITY_SCALE_FACTOR, "DS", value["ActivityConcentrationScaleFactor"].strip()
                )
        elif key in _RADIOPHARMACEUTICAL:
            setattr(item, key, value)
        else:
            setattr(ds, key, value)
    ds.RadiopharmaceuticalInformationSequence = [item]
    return ds


@pytest.mark.realdata
def test_vendor_metadata_sets_give_the_expected_suvbw_factor(shared_data):
    root = shared_data / "dicom" / "suv_vendor_metadata"
    expected = list(csv.DictReader(open(root / "expected_suvbw_factors.csv")))
    assert len(expected) == 8
    for row in expected:
        headers = [_dataset(d) for d in json.loads((root / f"{row['dataset']}-instances.json").read_text())]
        factors = suv_conversion(headers, case_id=row["dataset"]).factors
        np.testing.assert_allclose(factors, float(row["suvbw_factor"]), rtol=1e-6, err_msg=row["dataset"])
