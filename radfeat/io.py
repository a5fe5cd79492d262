"""Read images and masks (NIfTI, NRRD, MHA, DICOM series) and convert PET to SUVbw.

All readers return :class:`SimpleITK.Image` objects; ``sitk.GetArrayFromImage`` gives arrays in
(z, y, x) order. Physical units are mm. Only this module and :mod:`radfeat.manifest` touch paths.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radfeat.errors import ImageReadError, MaskError, SUVConversionError
from radfeat.filecheck import check_complete

__all__ = [
    "SUVInfo",
    "is_dicom_series",
    "dicom_series_files",
    "read_image",
    "ImageHeader",
    "read_image_information",
    "read_mask",
    "read_pet_suv",
    "suv_info_from_dicom",
    "suv_scale_factor",
]


def is_dicom_series(path: str | Path) -> bool:
    """True when ``path`` is a folder (read as a DICOM series) rather than a single volume file."""
    return Path(path).is_dir()


def dicom_series_files(folder: str | Path) -> list[str]:
    """Return the sorted slice files of the one DICOM series in ``folder``.

    Raises
    ------
    ImageReadError
        When the folder holds no DICOM series or several (name the one to use by giving its own folder).
    """
    folder = Path(folder)
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise ImageReadError(
            "folder holds no readable DICOM series",
            path=folder,
            hint="point the manifest at the folder that contains the .dcm slices of one series",
        )
    if len(series_ids) > 1:
        raise ImageReadError(
            f"folder holds {len(series_ids)} DICOM series ({', '.join(series_ids[:3])}…)",
            path=folder,
            hint="put each series in its own folder and point the manifest at one of them",
        )
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0]))


def read_image(path: str | Path, pixel_type: int | None = sitk.sitkFloat64) -> sitk.Image:
    """Read a volume file or a DICOM series folder.

    Parameters
    ----------
    path : str or Path
        A NIfTI/NRRD/MHA file or a folder holding one DICOM series.
    pixel_type : int or None, default=sitk.sitkFloat64
        SimpleITK pixel type of the returned image (DICOM rescale slope/intercept applied per slice);
        ``None`` keeps the stored type (as pyradiomics reads files).

    Returns
    -------
    SimpleITK.Image
        The 3D image in physical space (mm).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError("file not found", path=path, hint="check the path in the manifest")
    check_complete(path)  # ITK zero-fills truncated files without an error
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(dicom_series_files(path))
            if pixel_type is not None:
                reader.SetOutputPixelType(pixel_type)
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(path), sitk.sitkUnknown if pixel_type is None else pixel_type)
    except ImageReadError:
        raise
    except RuntimeError as exc:
        raise ImageReadError(
            f"cannot read image ({str(exc).strip().splitlines()[-1] if str(exc).strip() else exc})",
            path=path,
            hint="check that the file is a complete NIfTI/NRRD/MHA volume or a DICOM series folder",
        ) from exc
    if image.GetDimension() != 3:
        raise ImageReadError(
            f"expected a 3D volume, got {image.GetDimension()}D",
            path=path,
            hint="radfeat works on 3D volumes; convert 4D/2D data first",
        )
    return image


@dataclass(frozen=True)
class ImageHeader:
    """Grid of a volume without its voxels: size (x, y, z), spacing (mm), origin (mm), direction."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    # Same accessors as SimpleITK images, so geometry helpers accept either.
    def GetSize(self) -> tuple[int, int, int]:  # noqa: N802
        return self.size

    def GetSpacing(self) -> tuple[float, float, float]:  # noqa: N802
        return self.spacing

    def GetOrigin(self) -> tuple[float, float, float]:  # noqa: N802
        return self.origin

    def GetDirection(self) -> tuple[float, ...]:  # noqa: N802
        return self.direction


def _header_of(reader: sitk.ImageFileReader) -> ImageHeader:
    return ImageHeader(
        tuple(reader.GetSize()),
        tuple(reader.GetSpacing()),
        tuple(reader.GetOrigin()),
        tuple(reader.GetDirection()),
    )


def read_image_information(path: str | Path) -> ImageHeader:
    """Read only the grid (size, spacing, origin, direction) of a volume or DICOM series.

    No voxel data is kept; the file is checked for completeness (:func:`radfeat.filecheck.check_complete`:
    a compressed stream is decompressed once, a DICOM series' slice positions are read). For a DICOM
    series the first and last slice headers give the slice count and the z spacing.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError("file not found", path=path, hint="check the path in the manifest")
    check_complete(path)
    try:
        if not path.is_dir():
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            header = _header_of(reader)
            if len(header.size) != 3:
                raise ImageReadError(
                    f"expected a 3D volume, got {len(header.size)}D",
                    path=path,
                    hint="radfeat works on 3D volumes; convert 4D/2D data first",
                )
            return header
        files = dicom_series_files(path)
        headers = []
        for name in (files[0], files[-1]):
            reader = sitk.ImageFileReader()
            reader.SetFileName(name)
            reader.ReadImageInformation()
            headers.append(_header_of(reader))
    except ImageReadError:
        raise
    except RuntimeError as exc:
        raise ImageReadError(
            "cannot read image header",
            path=path,
            hint="check that the file is a complete NIfTI/NRRD/MHA volume or a DICOM series folder",
        ) from exc
    first, last = headers
    n = len(files)
    dz = float(np.linalg.norm(np.subtract(last.origin, first.origin))) / (n - 1) if n > 1 else 1.0
    size = (first.size[0], first.size[1], n)
    spacing = (first.spacing[0], first.spacing[1], dz or first.spacing[2])
    return ImageHeader(size, spacing, first.origin, first.direction)


def read_mask(
    path: str | Path,
    label: int = 1,
    *,
    case_id: str | None = None,
) -> sitk.Image:
    """Read an integer label map and return the binary mask (UInt8, 1 inside) of one label value.

    Raises
    ------
    MaskError
        When the mask is empty or ``label`` is not among its values (the message lists the values found).
    """
    image = read_image(path, sitk.sitkFloat64)
    values = sitk.GetArrayViewFromImage(image)
    if not np.all(np.isfinite(values)) or not np.allclose(values, np.round(values)):
        raise MaskError(
            "mask has non-integer values",
            case_id=case_id,
            path=path,
            hint="masks must be integer label maps (0 background); re-export the segmentation",
        )
    present = np.unique(values.astype(np.int64))
    foreground = present[present != 0]
    if foreground.size == 0:
        raise MaskError(
            "mask is empty (no voxel > 0)",
            case_id=case_id,
            path=path,
            hint="re-export the segmentation or drop the case from the manifest",
        )
    if label not in present:
        raise MaskError(
            f"label value {label} not present; values found: {foreground.tolist()[:10]}",
            case_id=case_id,
            path=path,
            hint="set the mask label (--label or a `mask_label` column) to one of those values",
        )
    binary = sitk.Cast(image == float(label), sitk.sitkUInt8)
    binary.CopyInformation(image)
    return binary


# --------------------------------------------------------------------------------------------------
# PET → SUVbw
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SUVInfo:
    """What is needed to turn activity concentration (Bq/mL) into SUVbw (g/mL).

    Attributes
    ----------
    units : str
        DICOM Units (0054,1001), e.g. ``"BQML"``.
    patient_weight_kg : float
        PatientWeight (0010,1030) in kg.
    injected_dose_bq : float
        RadionuclideTotalDose (0018,1074) in Bq at injection time.
    half_life_s : float
        RadionuclideHalfLife (0018,1075) in s.
    injection_time : datetime
        RadiopharmaceuticalStart(Date)Time.
    reference_time : datetime
        The time the image is decay-corrected to (SeriesTime, else the earliest AcquisitionTime).
    decay_correction : str
        DecayCorrection (0054,1102): ``"START"`` or ``"ADMIN"``.
    notes : tuple of str
        How non-default tags were interpreted (dose in MBq, decay reference), for provenance.
    """

    units: str
    patient_weight_kg: float
    injected_dose_bq: float
    half_life_s: float
    injection_time: datetime
    reference_time: datetime
    decay_correction: str
    notes: tuple[str, ...] = ()

    @property
    def decay_time_s(self) -> float:
        """Seconds from injection to the reference time (0 when DecayCorrection is ADMIN)."""
        if self.decay_correction == "ADMIN":
            return 0.0
        return (self.reference_time - self.injection_time).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["injection_time"] = self.injection_time.isoformat()
        d["reference_time"] = self.reference_time.isoformat()
        d["scale_factor"] = suv_scale_factor(self)
        return d


def suv_scale_factor(info: SUVInfo) -> float:
    """Multiplier from Bq/mL to SUVbw: weight [g] / (injected dose decayed to the reference time [Bq]).

    SUVbw = C [Bq/mL] · W [g] / (D [Bq] · 2^(−Δt / T½)).
    """
    decayed_dose = info.injected_dose_bq * math.exp(-math.log(2.0) * info.decay_time_s / info.half_life_s)
    return info.patient_weight_kg * 1000.0 / decayed_dose


def _parse_dicom_datetime(date: str | None, time: str | None) -> datetime | None:
    if not time:
        return None
    time = str(time).strip()
    hh, mm = int(time[0:2]), int(time[2:4]) if len(time) >= 4 else 0
    ss = float(time[4:]) if len(time) > 4 else 0.0
    base = datetime.strptime(str(date).strip()[:8], "%Y%m%d") if date else datetime(1900, 1, 1)
    return base + timedelta(hours=hh, minutes=mm, seconds=ss)


def _parse_dicom_dt(value: str | None) -> datetime | None:
    if not value:
        return None
    value = str(value).strip().split("+")[0].split("-")[0]
    return _parse_dicom_datetime(value[:8], value[8:] or "000000")


def suv_info_from_dicom(folder: str | Path, *, case_id: str | None = None) -> SUVInfo:
    """Read the SUVbw tags of a PET DICOM series (first slice; AcquisitionTime over all slices).

    Raises
    ------
    SUVConversionError
        For Units other than BQML, missing PatientWeight, dose, half-life or times, or DecayCorrection
        NONE. The message names the missing tag; the hint says how to proceed.
    """
    import pydicom

    files = dicom_series_files(folder)
    first = pydicom.dcmread(files[0], stop_before_pixels=True)

    def fail(message: str, hint: str) -> SUVConversionError:
        return SUVConversionError(message, case_id=case_id, path=folder, hint=hint)

    if getattr(first, "Modality", "PT") not in ("PT", "PET"):
        raise fail(
            f"series Modality is {first.Modality!r}, not PT",
            "point the manifest's `pet` column at the PET series",
        )
    units = str(getattr(first, "Units", "")).upper()
    if units != "BQML":
        raise fail(
            f"PET Units (0054,1001) is {units or 'missing'!r}; only BQML can be converted to SUVbw",
            "convert the volume to SUV with the vendor's tool and set pet_units=SUV in the manifest"
            + (" (GML already means SUVbw)" if units == "GML" else ""),
        )
    weight = getattr(first, "PatientWeight", None)
    if weight in (None, "") or float(weight) <= 0:
        raise fail(
            "PatientWeight (0010,1030) is missing or zero",
            "add the patient weight in kg to the DICOM header, or supply SUV volumes with pet_units=SUV",
        )
    seq = getattr(first, "RadiopharmaceuticalInformationSequence", None)
    if not seq:
        raise fail(
            "RadiopharmaceuticalInformationSequence (0054,0016) is missing",
            "the injected dose and time are needed for SUV; export the series with its PET header",
        )
    item = seq[0]
    dose = getattr(item, "RadionuclideTotalDose", None)
    if dose in (None, "") or float(dose) <= 0:
        raise fail(
            "RadionuclideTotalDose (0018,1074) is missing or zero",
            "add the injected dose in Bq, or supply SUV volumes with pet_units=SUV",
        )
    dose = float(dose)
    if dose < 1e5:
        # No PET tracer is injected at < 100 kBq: the dose was stored in MBq (as some systems do).
        dose *= 1e6
        dose_note = f"RadionuclideTotalDose {dose / 1e6:g} read as MBq"
    else:
        dose_note = None
    half_life = getattr(item, "RadionuclideHalfLife", None)
    if half_life in (None, "") or float(half_life) <= 0:
        raise fail(
            "RadionuclideHalfLife (0018,1075) is missing",
            "add the half-life in s (F-18: 6586.2 s), or supply SUV volumes with pet_units=SUV",
        )
    injection = _parse_dicom_dt(getattr(item, "RadiopharmaceuticalStartDateTime", None))
    if injection is None:
        injection = _parse_dicom_datetime(
            getattr(first, "SeriesDate", None) or getattr(first, "AcquisitionDate", None),
            getattr(item, "RadiopharmaceuticalStartTime", None),
        )
    if injection is None:
        raise fail(
            "RadiopharmaceuticalStartTime (0018,1072) is missing",
            "add the injection time, or supply SUV volumes with pet_units=SUV",
        )
    decay_correction = str(getattr(first, "DecayCorrection", "START")).upper() or "START"
    if decay_correction not in ("START", "ADMIN"):
        raise fail(
            f"DecayCorrection (0054,1102) is {decay_correction!r}; START or ADMIN is required",
            "reconstruct with decay correction, or supply SUV volumes with pet_units=SUV",
        )
    notes: list[str] = []
    reference = _parse_dicom_datetime(getattr(first, "SeriesDate", None), getattr(first, "SeriesTime", None))
    # Earliest acquisition over all slices (and that slice's frame timing), for the QIBA checks below.
    earliest = None
    for f in files:
        ds = pydicom.dcmread(
            f,
            stop_before_pixels=True,
            specific_tags=["AcquisitionDate", "AcquisitionTime", "ActualFrameDuration", "FrameReferenceTime"],
        )
        t = _parse_dicom_datetime(getattr(ds, "AcquisitionDate", None), getattr(ds, "AcquisitionTime", None))
        if t is not None and (earliest is None or t < earliest[0]):
            earliest = (t, getattr(ds, "ActualFrameDuration", None), getattr(ds, "FrameReferenceTime", None))
    ge_scan = first.get((0x0009, 0x100D))  # GE private scan date-time (the decay reference)
    if reference is None and earliest is not None:
        reference = earliest[0]
    elif reference is not None and earliest is not None and reference > earliest[0]:
        # SeriesTime after the first acquisition: the series was re-created (post-processing), so
        # SeriesTime is not the decay-correction time (QIBA / SUV-computation manual).
        if ge_scan is not None and str(ge_scan.value).strip():
            reference = _parse_dicom_dt(str(ge_scan.value))
            notes.append("decay reference from GE private scan date-time (0009,100D)")
        elif earliest[1] not in (None, "") and earliest[2] not in (None, ""):
            # FrameReferenceTime: ms from the decay reference to the frame's mid-activity time.
            reference = earliest[0] + timedelta(milliseconds=float(earliest[1]) / 2.0 - float(earliest[2]))
            notes.append(
                "SeriesTime after AcquisitionTime: decay reference = AcquisitionTime + "
                "ActualFrameDuration/2 - FrameReferenceTime"
            )
        else:
            raise fail(
                "SeriesTime (0008,0031) is after the earliest AcquisitionTime (0008,0032) and the frame "
                "timing tags (ActualFrameDuration, FrameReferenceTime) are missing, so the "
                "decay-correction time is unknown",
                "export the original (not post-processed) PET series, or supply SUV volumes with "
                "pet_units=SUV",
            )
    if reference is None:
        raise fail(
            "neither SeriesTime (0008,0031) nor AcquisitionTime (0008,0032) is present",
            "the scan time is needed for decay correction; supply SUV volumes with pet_units=SUV",
        )
    if reference < injection and injection - reference > timedelta(hours=12):
        # Scan after midnight with only times known: the series date was not given.
        reference += timedelta(days=1)
    if reference < injection:
        raise fail(
            f"scan time {reference.time()} is before injection time {injection.time()}",
            "check RadiopharmaceuticalStartTime and SeriesTime",
        )
    if dose_note:
        notes.append(dose_note)
    return SUVInfo(
        units=units,
        patient_weight_kg=float(weight),
        injected_dose_bq=float(dose),
        half_life_s=float(half_life),
        injection_time=injection,
        reference_time=reference,
        decay_correction=decay_correction,
        notes=tuple(notes),
    )


def read_pet_suv(
    path: str | Path,
    pet_units: str | None = None,
    *,
    case_id: str | None = None,
) -> tuple[sitk.Image, SUVInfo | None]:
    """Read a PET volume in SUVbw.

    Parameters
    ----------
    path : str or Path
        A DICOM series folder (converted from BQML using its tags) or a volume file.
    pet_units : {"SUV", None}, default=None
        ``"SUV"`` when the volume is already in SUVbw (e.g. NIfTI exports). A volume file without
        DICOM tags is accepted only with ``"SUV"``.

    Returns
    -------
    image : SimpleITK.Image
        PET in SUVbw (float64).
    info : SUVInfo or None
        The conversion record, ``None`` when the input was already in SUV.
    """
    units = _normalise_pet_units(pet_units)
    if units == "SUV":
        return read_image(path), None
    if not is_dicom_series(path):
        raise SUVConversionError(
            "PET volume file has no DICOM header to convert it to SUV",
            case_id=case_id,
            path=path,
            hint="if the volume is already in SUVbw set pet_units=SUV in the manifest; "
            "otherwise give the PET DICOM series folder",
        )
    info = suv_info_from_dicom(path, case_id=case_id)
    image = read_image(path)
    return image * suv_scale_factor(info), info


def _normalise_pet_units(pet_units: Any) -> str | None:
    if pet_units is None or (isinstance(pet_units, float) and math.isnan(pet_units)):
        return None
    text = str(pet_units).strip().upper()
    if text in ("", "NAN", "NONE", "AUTO", "BQML", "DICOM"):
        return None
    if text in ("SUV", "SUVBW", "GML", "G/ML"):
        return "SUV"
    raise SUVConversionError(
        f"pet_units {pet_units!r} not understood",
        hint="use SUV for volumes already in SUVbw, or leave it empty for DICOM series",
    )
