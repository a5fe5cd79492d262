"""Synthetic PET/CT cohorts with a documented, tunable link between labels and image phenotype.

Used by ``radfeat demo``, the tests and the benchmarks. Each case is a small chest CT field of view
(lung parenchyma ≈ −850 HU, chest wall, a rib, a nodule with solid and ground-glass parts, optional
spiculation and necrosis), a PET volume in SUVbw on a coarser grid with PET-like blur and noise, a
tumour mask on the CT grid, labels and clinical columns.

The label–phenotype link (see :class:`PhenotypeLinks`), scaled by ``signal`` in [0, 1]:

* **EGFR-mutant** tumours have more ground-glass (volume fraction +``ggo_egfr``) and lower SUVmax
  (log-SUVmax ``suv_log_egfr``).
* **Squamous** tumours have higher SUVmax (log-SUVmax ``suv_log_squamous``) and a necrotic core with
  probability ``necrosis_squamous`` (``necrosis_base`` otherwise).
* With ``signal=0`` the image phenotype is drawn independently of the labels.

The clinical link (``clinical_signal``) is separate: squamous is more likely in male smokers, EGFR
mutation in female never-smokers with adenocarcinoma, as in East-Asian NSCLC cohorts.

Cases drawn with a ``cohort`` of ``"external"`` come from a different "scanner": +15 HU offset, 1.5×
CT noise, 2.5 mm slices instead of 2 mm, broader PET blur and a 8 % PET calibration shift.

Follow-up (drawn from its own stream, so the images do not depend on it): ``treatment`` (``TKI`` for
75 % of EGFR-mutant and 25 % of wild-type patients, ``ICI`` otherwise), ``pfs_months`` and
``progression`` (1 = progressed, 0 = censored; uniform censoring 6–30 months). Progression-free
survival is exponential with a 10-month median; EGFR-mutant patients progress at 0.35× the rate on a
TKI and 1.8× on immunotherapy (the treatment interaction EGFR-DLS reports).

Everything is deterministic for a seed: case *i* draws from ``numpy.random.default_rng([seed, i])``
(follow-up from ``[seed, i, 1]``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from radfeat.utils.atomic import write_image, write_text

__all__ = [
    "PhenotypeLinks",
    "SyntheticCase",
    "synthesize_case",
    "make_cohort",
    "write_pet_dicom_series",
    "F18_HALF_LIFE_S",
]

F18_HALF_LIFE_S = 6586.2


@dataclass(frozen=True)
class PhenotypeLinks:
    """Effect sizes of the label → image phenotype link (multiplied by ``signal``).

    Attributes
    ----------
    ggo_egfr : float
        Added ground-glass volume fraction for EGFR-mutant tumours.
    suv_log_egfr : float
        Shift of log(SUVmax target) for EGFR-mutant tumours (negative: lower uptake).
    suv_log_squamous : float
        Shift of log(SUVmax target) for squamous tumours.
    necrosis_squamous, necrosis_base : float
        Probability of a necrotic core in squamous / other tumours (blended by ``signal``).
    """

    ggo_egfr: float = 0.35
    suv_log_egfr: float = -0.45
    suv_log_squamous: float = 0.45
    necrosis_squamous: float = 0.75
    necrosis_base: float = 0.10


@dataclass
class SyntheticCase:
    """One synthetic patient: images (SimpleITK, CT in HU, PET in SUVbw), mask, labels, truth."""

    case_id: str
    ct: sitk.Image
    pet: sitk.Image
    mask: sitk.Image
    clinical: dict
    truth: dict


def draw_follow_up(rng: np.random.Generator, egfr: int) -> dict:
    """``treatment``, ``pfs_months`` and ``progression`` of one patient (see the module docstring)."""
    tki = rng.random() < (0.75 if egfr else 0.25)
    rate = math.log(2) / 10.0 * ((0.35 if tki else 1.8) if egfr else 1.0)
    pfs = rng.exponential(1 / rate)
    censor = rng.uniform(6.0, 30.0)
    return {
        "treatment": "TKI" if tki else "ICI",
        "pfs_months": round(float(min(pfs, censor)), 2),
        "progression": int(pfs <= censor),
    }


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (field.std() + 1e-12)


def _draw_labels(rng: np.random.Generator, clinical_signal: float) -> dict:
    male = rng.random() < 0.55
    smoking = rng.choice(["never", "former", "current"], p=[0.45, 0.30, 0.25])
    smoker = smoking != "never"
    logit_sq = -1.3 + clinical_signal * (0.9 * male + 1.2 * smoker)
    squamous = rng.random() < 1 / (1 + math.exp(-logit_sq))
    if squamous:
        egfr = rng.random() < 0.05 + 0.05 * (1 - clinical_signal)
    else:
        logit_egfr = -0.6 + clinical_signal * (0.8 * (not male) + 1.0 * (not smoker) - 0.4)
        egfr = rng.random() < 1 / (1 + math.exp(-logit_egfr))
    return {
        "egfr": int(egfr),
        "subtype": "squamous" if squamous else "adenocarcinoma",
        "age": int(np.clip(rng.normal(64, 9), 35, 88)),
        "sex": "M" if male else "F",
        "smoking": str(smoking),
    }


def _draw_phenotype(rng: np.random.Generator, labels: dict, signal: float, links: PhenotypeLinks) -> dict:
    egfr = labels["egfr"] if signal > 0 else 0
    squamous = labels["subtype"] == "squamous" if signal > 0 else False
    ggo = float(np.clip(rng.beta(2, 5) + signal * links.ggo_egfr * egfr, 0.0, 0.85))
    log_suv = math.log(6.0) + 0.3 * rng.standard_normal()
    log_suv += signal * (links.suv_log_egfr * egfr + links.suv_log_squamous * squamous)
    p_necrosis = links.necrosis_base + signal * squamous * (links.necrosis_squamous - links.necrosis_base)
    return {
        "radius_mm": float(rng.uniform(9.0, 16.0)),
        "ggo_fraction": ggo,
        "suv_target": float(np.clip(math.exp(log_suv), 1.5, 25.0)),
        "necrosis": bool(rng.random() < p_necrosis),
        "spiculated": bool(rng.random() < 0.4),
    }


def synthesize_case(
    case_id: str,
    rng: np.random.Generator,
    *,
    signal: float = 1.0,
    clinical_signal: float = 1.0,
    external: bool = False,
    links: PhenotypeLinks | None = None,
) -> SyntheticCase:
    """Draw one synthetic PET/CT case.

    Grids: CT 96 × 96 voxels of 1.0 mm in-plane, 40 (internal) or 32 (external) slices of 2.0 / 2.5 mm;
    PET 4.0 mm isotropic with a sub-voxel origin shift. Arrays are (z, y, x).
    """
    links = links or PhenotypeLinks()
    labels = _draw_labels(rng, clinical_signal)
    pheno = _draw_phenotype(rng, labels, signal, links)

    dz = 2.5 if external else 2.0
    nz = 32 if external else 40
    shape = (nz, 96, 96)
    spacing = np.array([1.0, 1.0, dz])  # x, y, z (mm)
    origin = np.array([-48.0, -48.0, -nz * dz / 2])
    zz, yy, xx = np.meshgrid(
        *(origin[::-1][a] + spacing[::-1][a] * np.arange(shape[a]) for a in range(3)), indexing="ij"
    )

    # Anatomy: lung (ellipse in-plane), chest wall + a rib behind it (posterior, +y).
    wall_y = 30.0 + rng.uniform(-3, 3)
    lung = yy < wall_y
    hu = np.where(lung, -850.0, 40.0)
    fat = (yy >= wall_y) & (yy < wall_y + 4)
    hu[fat] = -90.0
    rib = ((yy - (wall_y + 10)) ** 2 + (zz - rng.uniform(-8, 8)) ** 2) < 16.0
    hu[rib] = 700.0
    hu += 25.0 * _smooth_noise(rng, shape, 2.0) * lung  # parenchymal texture

    # Tumour: irregular ellipsoid in the lung.
    center = np.array([rng.uniform(-10, 10), rng.uniform(-12, 8), rng.uniform(-6, 6)])  # x, y, z
    radius = pheno["radius_mm"]
    axes = radius * rng.uniform(0.85, 1.15, size=3)
    dist = np.sqrt(
        ((xx - center[0]) / axes[0]) ** 2
        + ((yy - center[1]) / axes[1]) ** 2
        + ((zz - center[2]) / axes[2]) ** 2
    )
    dist = dist + 0.08 * _smooth_noise(rng, shape, 3.0)
    tumour = (dist <= 1.0) & (yy < wall_y - 1)
    solid_r = (1.0 - pheno["ggo_fraction"]) ** (1.0 / 3.0)
    solid = tumour & (dist <= solid_r)
    ggo_region = tumour & ~solid
    necrotic = solid & (dist <= 0.45 * solid_r) if pheno["necrosis"] else np.zeros(shape, bool)
    texture = _smooth_noise(rng, shape, 1.5)
    hu[ggo_region] = -560.0 + 60.0 * texture[ggo_region]
    hu[solid] = 35.0 + 20.0 * texture[solid]
    hu[necrotic] = 12.0 + 8.0 * texture[necrotic]
    if pheno["spiculated"]:
        for _ in range(int(rng.integers(4, 9))):
            u = rng.standard_normal(3)
            u /= np.linalg.norm(u)
            t = np.clip((xx - center[0]) * u[0] + (yy - center[1]) * u[1] + (zz - center[2]) * u[2], 0, None)
            d_line = np.sqrt(
                (xx - center[0] - t * u[0]) ** 2
                + (yy - center[1] - t * u[1]) ** 2
                + (zz - center[2] - t * u[2]) ** 2
            )
            spike = (d_line < 0.9) & (t > radius * 0.8) & (t < radius * rng.uniform(1.4, 1.9)) & lung
            hu[spike & ~tumour] = -150.0

    ct_noise = 30.0 if external else 20.0
    hu = hu + ct_noise * rng.standard_normal(shape) + (15.0 if external else 0.0)
    hu = np.clip(hu, -1024, 3071)

    # PET activity (SUV) on the CT grid, then blur and move to a coarse grid.
    suv_hr = np.where(lung, 0.55, 1.0)
    suv_hr[rib] = 1.3
    heter = np.clip(0.85 + 0.12 * _smooth_noise(rng, shape, 2.5), 0.5, 1.1)
    suv_hr[ggo_region] = 0.9 + 0.15 * pheno["suv_target"] * (1 - dist[ggo_region])
    suv_hr[solid] = pheno["suv_target"] * heter[solid]
    suv_hr[necrotic] = 0.7
    fwhm_mm = 7.5 if external else 6.0
    sigma_vox = (fwhm_mm / 2.3548) / spacing[::-1]
    suv_blur = ndimage.gaussian_filter(suv_hr, sigma_vox)

    ct_img = sitk.GetImageFromArray(hu.astype(np.float32))
    ct_img.SetSpacing(tuple(spacing))
    ct_img.SetOrigin(tuple(origin))
    mask_img = sitk.GetImageFromArray(tumour.astype(np.uint8))
    mask_img.CopyInformation(ct_img)
    blur_img = sitk.GetImageFromArray(suv_blur.astype(np.float32))
    blur_img.CopyInformation(ct_img)

    pet_spacing = (4.0, 4.0, 4.0)
    pet_origin = tuple(origin + rng.uniform(0.0, 2.0, size=3) - 1.0)
    extent = spacing * np.array(shape[::-1])
    pet_size = [int(math.ceil(e / s)) for e, s in zip(extent, pet_spacing, strict=True)]
    pet_ref = sitk.Image(pet_size, sitk.sitkFloat32)
    pet_ref.SetSpacing(pet_spacing)
    pet_ref.SetOrigin(pet_origin)
    pet_img = sitk.Resample(blur_img, pet_ref, sitk.Transform(), sitk.sitkLinear, 0.55)
    pet_arr = sitk.GetArrayFromImage(pet_img).astype(np.float64)
    pet_arr *= 1.08 if external else 1.0
    pet_arr = pet_arr * (1.0 + 0.08 * rng.standard_normal(pet_arr.shape)) + 0.03 * rng.standard_normal(
        pet_arr.shape
    )
    pet_out = sitk.GetImageFromArray(np.clip(pet_arr, 0.0, None).astype(np.float32))
    pet_out.CopyInformation(pet_img)

    truth = dict(pheno)
    truth["tumour_voxels"] = int(tumour.sum())
    truth["necrosis"] = bool(pheno["necrosis"])
    return SyntheticCase(case_id, ct_img, pet_out, mask_img, labels, truth)


def write_pet_dicom_series(
    suv: sitk.Image,
    folder: str | Path,
    *,
    patient_weight_kg: float = 72.0,
    injected_dose_bq: float = 3.5e8,
    injection_time: datetime = datetime(2024, 3, 5, 9, 0, 0),
    uptake_time_s: float = 3600.0,
    half_life_s: float = F18_HALF_LIFE_S,
    case_id: str = "synthetic",
    seed: int = 0,
    units: str = "BQML",
    include_weight: bool = True,
    include_dose: bool = True,
    decay_correction: str | None = "START",
) -> Path:
    """Write a PET volume given in SUVbw as a DICOM series in Bq/mL with realistic SUV tags.

    Activity = SUV × (dose decayed over ``uptake_time_s``) / weight [g]; DecayCorrection START with
    SeriesTime = injection + uptake. Each slice is int16 with its own RescaleSlope. The ``include_*``,
    ``units`` and ``decay_correction`` (``None``: tag left out) switches write deliberately incomplete
    headers for error-path tests.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    decayed = injected_dose_bq * math.exp(-math.log(2) * uptake_time_s / half_life_s)
    activity = sitk.GetArrayFromImage(suv).astype(np.float64) * decayed / (patient_weight_kg * 1000.0)
    scan_time = injection_time + timedelta(seconds=uptake_time_s)
    entropy = [case_id, str(seed)]
    study_uid = generate_uid(entropy_srcs=[*entropy, "study"])
    series_uid = generate_uid(entropy_srcs=[*entropy, "series"])
    frame_uid = generate_uid(entropy_srcs=[*entropy, "frame"])
    pet_sop_class = "1.2.840.10008.5.1.4.1.1.128"
    spacing, origin = suv.GetSpacing(), suv.GetOrigin()
    direction = np.array(suv.GetDirection()).reshape(3, 3)
    for k in range(activity.shape[0]):
        sop_uid = generate_uid(entropy_srcs=[*entropy, "slice", str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = pet_sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = pet_sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "PT"
        ds.PatientID = case_id
        ds.PatientName = case_id
        if include_weight:
            ds.PatientWeight = f"{patient_weight_kg:g}"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = scan_time.strftime("%Y%m%d")
        ds.SeriesTime = ds.AcquisitionTime = scan_time.strftime("%H%M%S.%f")
        ds.Units = units
        if decay_correction is not None:
            ds.DecayCorrection = decay_correction
        ds.CorrectedImage = ["ATTN", "DECY"]
        item = Dataset()
        item.Radiopharmaceutical = "Fluorodeoxyglucose"
        item.RadiopharmaceuticalStartTime = injection_time.strftime("%H%M%S.%f")
        item.RadiopharmaceuticalStartDateTime = injection_time.strftime("%Y%m%d%H%M%S.%f")
        if include_dose:
            item.RadionuclideTotalDose = f"{injected_dose_bq:.6g}"
        item.RadionuclideHalfLife = f"{half_life_s:g}"
        ds.RadiopharmaceuticalInformationSequence = [item]
        position = np.array(origin) + direction @ np.array([0.0, 0.0, k * spacing[2]])
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[0]:g}"]
        ds.SliceThickness = f"{spacing[2]:g}"
        ds.InstanceNumber = k + 1
        plane = activity[k]
        slope = max(float(plane.max()), 1e-6) / 32000.0
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = "0"
        stored = np.round(plane / float(ds.RescaleSlope)).astype(np.int16)
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.PixelData = stored.tobytes()
        pydicom.dcmwrite(folder / f"slice_{k:04d}.dcm", ds, enforce_file_format=True)
    return folder


def make_cohort(
    out_dir: str | Path,
    n_cases: int = 40,
    *,
    seed: int = 0,
    signal: float = 1.0,
    clinical_signal: float = 1.0,
    external_fraction: float = 0.25,
    pet_format: str = "nifti",
    links: PhenotypeLinks | None = None,
) -> Path:
    """Write a synthetic cohort (NIfTI + ``manifest.csv`` + ``truth.csv``); return the manifest path.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (``cases/<case_id>/`` plus the two CSV files).
    n_cases : int, default=40
    seed : int, default=0
    signal : float, default=1.0
        Strength of the label → image link in [0, 1]; 0 makes labels independent of the images.
    clinical_signal : float, default=1.0
        Strength of the clinical → label link.
    external_fraction : float, default=0.25
        Share of cases in the ``external`` cohort (shifted scanner); the rest are ``train``.
    pet_format : {"nifti", "dicom"}, default="nifti"
        ``"dicom"`` writes PET as a BQML DICOM series with SUV tags (manifest ``pet_units`` empty).
    """
    if not 0.0 <= signal <= 1.0:
        raise ValueError(f"signal must be in [0, 1], got {signal}")
    if pet_format not in ("nifti", "dicom"):
        raise ValueError(f"pet_format must be 'nifti' or 'dicom', got {pet_format!r}")
    out = Path(out_dir)
    n_external = int(round(n_cases * external_fraction))
    rows, truths = [], []
    for i in range(n_cases):
        case_id = f"SYN{i:04d}"
        external = i >= n_cases - n_external
        rng = np.random.default_rng([seed, i])
        case = synthesize_case(
            case_id,
            rng,
            signal=signal,
            clinical_signal=clinical_signal,
            external=external,
            links=links,
        )
        case_dir = out / "cases" / case_id
        write_image(case.ct, case_dir / "ct.nii.gz")
        write_image(case.mask, case_dir / "mask.nii.gz")
        if pet_format == "dicom":
            write_pet_dicom_series(case.pet, case_dir / "pet_dicom", case_id=case_id, seed=seed)
            pet_path, pet_units = f"cases/{case_id}/pet_dicom", ""
        else:
            write_image(case.pet, case_dir / "pet.nii.gz")
            pet_path, pet_units = f"cases/{case_id}/pet.nii.gz", "SUV"
        rows.append(
            {
                "case_id": case_id,
                "ct": f"cases/{case_id}/ct.nii.gz",
                "pet": pet_path,
                "mask": f"cases/{case_id}/mask.nii.gz",
                "pet_units": pet_units,
                **case.clinical,
                **draw_follow_up(np.random.default_rng([seed, i, 1]), case.clinical["egfr"]),
                "cohort": "external" if external else "train",
            }
        )
        truths.append({"case_id": case_id, **case.truth})
    manifest = out / "manifest.csv"
    write_text(pd.DataFrame(truths).to_csv(index=False), out / "truth.csv")
    write_text(pd.DataFrame(rows).to_csv(index=False), manifest)
    params = {
        "n_cases": n_cases,
        "seed": seed,
        "signal": signal,
        "clinical_signal": clinical_signal,
        "external_fraction": external_fraction,
        "pet_format": pet_format,
        "links": asdict(links or PhenotypeLinks()),
    }
    write_text(pd.Series(params).to_json(indent=2), out / "synth_params.json")
    return manifest


def habitat_phantom(
    rng: np.random.Generator, *, radius_mm: float = 14.0, noise_hu: float = 15.0, noise_suv: float = 0.08
) -> tuple[sitk.Image, sitk.Image, sitk.Image, np.ndarray]:
    """A tumour made of three known sub-regions, for habitat tests.

    Necrotic core (≈15 HU, SUV ≈ 0.5, smooth), solid viable rim (≈40 HU, SUV ≈ 8, heterogeneous) and a
    ground-glass crescent on one side (≈ −550 HU, SUV ≈ 2.5, mottled), in lung at −850 HU; all on a
    1 mm in-plane × 2 mm grid, PET with mild blur.

    Returns
    -------
    ct, pet, mask : SimpleITK.Image
        CT (HU), PET (SUV) and the tumour mask, all on the CT grid.
    truth : ndarray of int, (z, y, x)
        0 outside, 1 necrosis, 2 ground glass, 3 solid rim (the order of mean SUV).
    """
    shape = (32, 64, 64)
    spacing = np.array([1.0, 1.0, 2.0])
    zz, yy, xx = np.indices(shape).astype(float)
    zz, yy, xx = zz * spacing[2], yy * spacing[1], xx * spacing[0]
    c = np.array([32.0, 32.0, 32.0]) + rng.uniform(-3, 3, 3)
    r = np.sqrt((xx - c[0]) ** 2 + (yy - c[1]) ** 2 + (zz - c[2]) ** 2)
    tumour = r <= radius_mm
    core = r <= radius_mm * rng.uniform(0.4, 0.5)
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    side = ((xx - c[0]) * direction[0] + (yy - c[1]) * direction[1] + (zz - c[2]) * direction[2]) / radius_mm
    ggo = tumour & ~core & (side > 0.35)
    truth = np.zeros(shape, np.int64)
    truth[tumour] = 3
    truth[ggo] = 2
    truth[core] = 1
    # Each sub-region has its own level and texture: smooth necrosis, mottled ground glass,
    # heterogeneous viable tumour. ``noise_hu`` / ``noise_suv`` scale the texture amplitudes.
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    texture /= texture.std()
    hu = np.full(shape, -850.0) + noise_hu * rng.standard_normal(shape)
    for label, level, amp in ((3, 40.0, 2.0), (2, -550.0, 4.0), (1, 15.0, 0.3)):
        region = truth == label
        hu[region] = (
            level + noise_hu * amp * texture[region] + 0.5 * noise_hu * rng.standard_normal(region.sum())
        )
    suv = np.full(shape, 0.6)
    for label, level, amp in ((3, 8.0, 2.5), (2, 2.5, 1.0), (1, 0.5, 0.3)):
        region = truth == label
        suv[region] = level * (1 + noise_suv * amp * texture[region])
    suv = ndimage.gaussian_filter(suv, 0.6) * (1 + 0.5 * noise_suv * rng.standard_normal(shape))
    images = []
    for arr in (hu, np.clip(suv, 0, None), tumour.astype(np.uint8)):
        img = sitk.GetImageFromArray(arr.astype(np.uint8 if arr.dtype == np.uint8 else np.float32))
        img.SetSpacing(tuple(spacing))
        images.append(img)
    return images[0], images[1], images[2], truth
