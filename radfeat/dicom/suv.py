"""PET DICOM headers → SUV, following the SUV-computation manual (Vácha et al., oncoray/suv_computation)
and the QIBA vendor-neutral rules.

The conversion is a pure function of the slice headers (:func:`suv_conversion`): it returns one
multiplier per slice, applied to the *rescaled* stored values (``RescaleSlope × SV + RescaleIntercept``,
as ITK reads them). Rules, in the order they are applied:

* **Units** (0054,1001): ``BQML`` (Bq/mL); ``CNTS`` with the Philips SUV scale factor (7053,1000) or
  activity-concentration scale factor (7053,1009); ``GML`` (already SUV; ``SUVType`` (0054,1006) BW, LBM,
  LBMJAMES128, LBMJANMA or IBW is converted back to body weight); ``CM2ML`` (SUVbsa, Du Bois).
* **Dose** (0018,1074) below 100 kBq is read as MBq (no PET tracer is injected at < 100 kBq).
* **DecayCorrection** (0054,1102): ``ADMIN`` (no decay), ``START`` (dose decayed to the reference time),
  ``NONE`` (each slice corrected from its own acquisition time over its frame). A missing tag is never
  assumed: it fails naming the tag unless the caller gives an explicit override.
* **Reference time** for ``START``: SeriesDate/Time when not after the earliest acquisition; otherwise
  (a post-processed series) the GE private scan date-time (0009,100D); otherwise back-computed from the
  earliest slice's AcquisitionTime, FrameReferenceTime and ActualFrameDuration
  (t_ref = t_acq + T_ave − Δt, T_ave = ln(λT / (1 − e^(−λT))) / λ); otherwise that AcquisitionTime.
* **Injection time**: RadiopharmaceuticalStartDateTime, else the StartTime on the series date; a scan
  that seems to precede the injection by more than 12 h crossed midnight. Time-zone offsets in a
  DateTime value and TimezoneOffsetFromUTC (0008,0201) are honoured.

The output variant is SUVbw unless asked otherwise: ``lbm`` (James, LBMJAMES128), ``lbm_janma``
(Janmahasatian), ``bsa`` (Du Bois, cm²/mL) or ``ibw`` (ideal body weight); the variant is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from radfeat.errors import SUVConversionError

__all__ = [
    "SUV_VARIANTS",
    "SUVInfo",
    "SUVConversion",
    "suv_conversion",
    "suv_scale_factor",
    "lean_body_mass_james",
    "lean_body_mass_janmahasatian",
    "ideal_body_weight",
    "body_surface_area_du_bois",
]

#: Output variants: SUV normalised to body weight, lean body mass (James / Janmahasatian), body surface
#: area or ideal body weight.
SUV_VARIANTS = ("bw", "lbm", "lbm_janma", "bsa", "ibw")

PHILIPS_SUV_SCALE_FACTOR = (0x7053, 0x1000)
PHILIPS_ACTIVITY_SCALE_FACTOR = (0x7053, 0x1009)
GE_SCAN_DATETIME = (0x0009, 0x100D)


# --------------------------------------------------------------------------------------------------
# Body-size formulas (W kg, H cm); sex "O" takes the mean of the male and female values.
# --------------------------------------------------------------------------------------------------


def _by_sex(sex: str, male: float, female: float) -> float:
    sex = (sex or "").upper()[:1]
    return male if sex == "M" else female if sex == "F" else (male + female) / 2.0


def lean_body_mass_james(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body mass (kg), James 1976 (LBMJAMES128): 1.10 W − 128 (W/H)² (M), 1.07 W − 148 (W/H)² (F)."""
    ratio = (weight_kg / height_cm) ** 2
    return _by_sex(sex, 1.10 * weight_kg - 128 * ratio, 1.07 * weight_kg - 148 * ratio)


def _lean_body_mass_morgan(weight_kg: float, height_cm: float, sex: str) -> float:
    ratio = (weight_kg / height_cm) ** 2
    return _by_sex(sex, 1.10 * weight_kg - 120 * ratio, 1.07 * weight_kg - 148 * ratio)


def lean_body_mass_janmahasatian(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body mass (kg), Janmahasatian: 9270 W / (6680 + 216 BMI) (M), 9270 W / (8780 + 244 BMI) (F)."""
    bmi = weight_kg / (height_cm / 100.0) ** 2
    return _by_sex(sex, 9270 * weight_kg / (6680 + 216 * bmi), 9270 * weight_kg / (8780 + 244 * bmi))


def ideal_body_weight(height_cm: float, sex: str) -> float:
    """Ideal body weight (kg): 48.0 + 1.06 (H − 152) (M), 45.5 + 0.91 (H − 152) (F)."""
    return _by_sex(sex, 48.0 + 1.06 * (height_cm - 152), 45.5 + 0.91 * (height_cm - 152))


def body_surface_area_du_bois(weight_kg: float, height_cm: float) -> float:
    """Body surface area (m²), Du Bois: 0.007184 H^0.725 W^0.425."""
    return 0.007184 * height_cm**0.725 * weight_kg**0.425


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SUVInfo:
    """How a PET series was converted to SUV (the provenance record).

    Attributes
    ----------
    units : str
        Units (0054,1001) of the stored values, e.g. ``"BQML"``.
    patient_weight_kg : float
    injected_dose_bq : float
        RadionuclideTotalDose in Bq at injection (after the MBq rule).
    half_life_s : float
    injection_time : datetime or None
    reference_time : datetime or None
        The time the images are decay-corrected to (``START``); ``None`` for ADMIN / NONE / GML.
    decay_correction : str
        ``START``, ``ADMIN`` or ``NONE`` (or the override given).
    notes : tuple of str
        Every non-default interpretation (MBq dose, reference-time rule, vendor factor, resampling).
    variant : str
        Output variant (:data:`SUV_VARIANTS`), ``"bw"`` by default.
    suv_type : str
        SUVType (0054,1006) of stored GML/CM2ML values.
    patient_height_cm, patient_sex
        Used by the LBM / IBW / BSA variants and by GML/CM2ML back-conversion.
    scale_factor : float or None
        The multiplier when it is the same for every slice.
    """

    units: str
    patient_weight_kg: float
    injected_dose_bq: float
    half_life_s: float
    injection_time: datetime | None
    reference_time: datetime | None
    decay_correction: str
    notes: tuple[str, ...] = ()
    variant: str = "bw"
    suv_type: str = ""
    patient_height_cm: float | None = None
    patient_sex: str = ""
    scale_factor: float | None = None

    @property
    def decay_time_s(self) -> float:
        """Seconds from injection to the reference time (0 unless DecayCorrection is START)."""
        if self.decay_correction != "START" or self.reference_time is None or self.injection_time is None:
            return 0.0
        return (self.reference_time - self.injection_time).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("injection_time", "reference_time"):
            d[key] = d[key].isoformat() if d[key] is not None else None
        d["notes"] = list(self.notes)
        return d


@dataclass(frozen=True)
class SUVConversion:
    """Per-slice multipliers (``factors[k]`` for the k-th header given) and their record."""

    factors: np.ndarray
    info: SUVInfo


def suv_scale_factor(info: SUVInfo) -> float:
    """SUVbw multiplier for Bq/mL: W [g] / (D [Bq] · 2^(−Δt / T½)), Δt = :attr:`SUVInfo.decay_time_s`."""
    decayed_dose = info.injected_dose_bq * math.exp(-math.log(2.0) * info.decay_time_s / info.half_life_s)
    return info.patient_weight_kg * 1000.0 / decayed_dose


# --------------------------------------------------------------------------------------------------
# Date-time parsing
# --------------------------------------------------------------------------------------------------


def _tz(offset: str | None) -> timezone | None:
    if not offset:
        return None
    text = str(offset).strip()
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    sign = 1 if text[0] == "+" else -1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[3:5])))


def parse_da_tm(date: Any, time: Any, tz: timezone | None = None) -> datetime | None:
    """A DICOM DA + TM pair as a datetime (date 1900-01-01 when absent); ``None`` without a time."""
    if time in (None, ""):
        return None
    text = str(time).strip().replace(":", "")
    if len(text) < 2:
        return None
    hh = int(text[0:2])
    mm = int(text[2:4]) if len(text) >= 4 else 0
    ss = float(text[4:]) if len(text) > 4 else 0.0
    day = str(date).strip().replace("-", "")[:8] if date not in (None, "") else ""
    base = datetime.strptime(day, "%Y%m%d") if day else datetime(1900, 1, 1)
    value = base + timedelta(hours=hh, minutes=mm, seconds=ss)
    return value.replace(tzinfo=tz) if tz is not None else value


def parse_dt(value: Any, tz: timezone | None = None) -> datetime | None:
    """A DICOM DT value (YYYYMMDDHHMMSS.FFFFFF&ZZXX) as a datetime, its own offset taking precedence."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    own = None
    for sign in "+-":
        if sign in text[8:]:
            cut = text.rindex(sign)
            own, text = _tz(text[cut:]), text[:cut]
    if len(text) < 8:
        return None
    return parse_da_tm(text[:8], text[8:] or "000000", own or tz)


def _same_clock(a: datetime, b: datetime) -> tuple[datetime, datetime]:
    """Compare an aware and a naive time: the naive one is taken to be in the aware one's zone."""
    if (a.tzinfo is None) != (b.tzinfo is None):
        if a.tzinfo is None:
            a = a.replace(tzinfo=b.tzinfo)
        else:
            b = b.replace(tzinfo=a.tzinfo)
    return a, b


# --------------------------------------------------------------------------------------------------
# The conversion
# --------------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        out = float(value[0] if isinstance(value, (list, tuple)) else value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _private(ds: Any, tag: tuple[int, int]) -> float | None:
    try:
        element = ds.get(tag)
    except Exception:  # noqa: BLE001 - a malformed private element counts as absent
        return None
    return _number(getattr(element, "value", None)) if element is not None else None


def _average_count_rate_time(frame_s: float, decay_constant: float) -> float:
    """T_ave = ln(λT / (1 − e^(−λT))) / λ: when, in a frame of T s, the decaying count rate is its mean."""
    x = decay_constant * frame_s
    return math.log(x / -math.expm1(-x)) / decay_constant


def suv_conversion(
    headers: Sequence[Any],
    *,
    variant: str = "bw",
    decay_correction: str | None = None,
    case_id: str | None = None,
    path: Any = None,
) -> SUVConversion:
    """Per-slice SUV multipliers for a PET series from its slice headers (pydicom datasets).

    Parameters
    ----------
    headers : sequence of pydicom.Dataset
        One per slice, in the order the image's slices are stored (pixel data not needed).
    variant : {"bw", "lbm", "lbm_janma", "bsa", "ibw"}
        Output normalisation (module docstring).
    decay_correction : {"START", "ADMIN", "NONE"}, optional
        Explicit override where DecayCorrection (0054,1102) is missing or known to be wrong.

    Raises
    ------
    SUVConversionError
        Naming the missing or unusable tag and how to proceed.
    """
    if variant not in SUV_VARIANTS:
        raise SUVConversionError(
            f"SUV variant {variant!r} not known",
            case_id=case_id,
            path=path,
            hint=f"use one of {SUV_VARIANTS}",
        )
    if not headers:
        raise SUVConversionError(
            "no PET slice headers", case_id=case_id, path=path, hint="give the PET series"
        )

    def fail(message: str, hint: str) -> SUVConversionError:
        return SUVConversionError(message, case_id=case_id, path=path, hint=hint)

    first = headers[0]
    notes: list[str] = []
    modality = str(getattr(first, "Modality", "PT") or "PT")
    if modality not in ("PT", "PET"):
        raise fail(
            f"series Modality is {modality!r}, not PT", "point the manifest's `pet` column at the PET series"
        )
    units = str(getattr(first, "Units", "") or "").strip().upper()
    suv_type = str(getattr(first, "SUVType", "") or "").strip().upper()
    weight = _number(getattr(first, "PatientWeight", None))
    if weight is None or weight <= 0:
        raise fail(
            "PatientWeight (0010,1030) is missing or zero",
            "add the patient weight in kg to the DICOM header, or supply SUV volumes with pet_units=SUV",
        )
    height_m = _number(getattr(first, "PatientSize", None))
    height_cm = height_m * 100.0 if height_m else None
    sex = str(getattr(first, "PatientSex", "") or "").strip().upper()

    def body_size(kind: str, why: str) -> float:
        """Normaliser in kg (LBM, IBW) or cm² (BSA) for ``kind``."""
        if height_cm is None:
            raise fail(
                f"PatientSize (0010,1020) is missing and {why} needs the height",
                "add the patient height in m to the DICOM header, or ask for SUVbw",
            )
        if kind in ("LBM", "LBMJAMES128", "lbm"):
            value = (lean_body_mass_james if kind != "LBM" else _lean_body_mass_morgan)(
                weight, height_cm, sex
            )
        elif kind in ("LBMJANMA", "lbm_janma"):
            value = lean_body_mass_janmahasatian(weight, height_cm, sex)
        elif kind in ("IBW", "ibw"):
            value = ideal_body_weight(height_cm, sex)
        else:  # BSA
            value = body_surface_area_du_bois(weight, height_cm) * 1e4
        if sex not in ("M", "F") and kind not in ("BSA", "bsa"):
            notes.append(
                f"PatientSex {sex or 'missing'!r}: {kind} is the mean of the male and female formulas"
            )
        if not value > 0:
            raise fail(
                f"{why}: {kind} is not positive for W={weight} kg, H={height_cm} cm", "check PatientSize"
            )
        return value

    # Body-weight SUV per stored unit, before the output variant.
    factors = np.ones(len(headers))
    dose = half_life = injection = reference = None
    decay = None
    if units in ("GML", "CM2ML"):
        if units == "CM2ML":
            # SUVbsa = C·BSA[cm²]/D and SUVbw = C·W[g]/D.
            factors[:] = weight * 1000.0 / body_size("BSA", "Units CM2ML (SUVbsa)")
            notes.append("stored SUVbsa (Units CM2ML) converted to SUVbw with Du Bois BSA")
        elif suv_type in ("", "BW"):
            pass
        elif suv_type in ("LBM", "LBMJAMES128", "LBMJANMA", "IBW"):
            factors[:] = weight / body_size(suv_type, f"SUVType {suv_type}")
            notes.append(f"stored SUV of SUVType {suv_type} (Units GML) converted to SUVbw")
        else:
            raise fail(
                f"SUVType (0054,1006) {suv_type!r} with Units GML is not a DICOM SUV type",
                "expected BW, LBM, LBMJAMES128, LBMJANMA or IBW; or supply SUVbw volumes with pet_units=SUV",
            )
    else:
        if units == "CNTS":
            suv_f = _private(first, PHILIPS_SUV_SCALE_FACTOR)
            act_f = _private(first, PHILIPS_ACTIVITY_SCALE_FACTOR)
            if suv_f:
                factors[:] = [(_private(h, PHILIPS_SUV_SCALE_FACTOR) or suv_f) for h in headers]
                notes.append("Units CNTS: Philips SUV scale factor (7053,1000)")
                units_done = True
            elif act_f:
                factors[:] = [(_private(h, PHILIPS_ACTIVITY_SCALE_FACTOR) or act_f) for h in headers]
                notes.append("Units CNTS: Philips activity concentration scale factor (7053,1009) to Bq/mL")
                units_done = False
            else:
                raise fail(
                    "Units (0054,1001) is CNTS and neither the Philips SUV scale factor (7053,1000) nor the "
                    "activity concentration scale factor (7053,1009) is present (or they are 0)",
                    "export the series with its Philips private tags, or as BQML from the scanner",
                )
        elif units == "BQML":
            units_done = False
        else:
            raise fail(
                f"PET Units (0054,1001) is {units or 'missing'!r}; radfeat converts BQML, CNTS (Philips), "
                "GML and CM2ML",
                "export the PET in Bq/mL (BQML), or convert it to SUVbw and set pet_units=SUV",
            )
        if not units_done:
            bw, dose, half_life, injection, reference, decay = _body_weight_factors(
                headers, weight, decay_correction, fail, notes
            )
            factors *= bw
    if variant != "bw":
        normaliser = body_size(variant, f"SUV variant {variant}")
        # SUVx = SUVbw · X / W[g or kg]: BSA in cm² against W in g, LBM/IBW in kg against W in kg.
        factors *= normaliser / (weight * 1000.0 if variant == "bsa" else weight)
        notes.append(
            f"output SUV{variant} (normaliser {normaliser:.4g} {'cm²' if variant == 'bsa' else 'kg'})"
        )
    uniform = float(factors[0]) if np.allclose(factors, factors[0], rtol=1e-12, atol=0) else None
    info = SUVInfo(
        units=units,
        patient_weight_kg=weight,
        injected_dose_bq=float(dose) if dose is not None else float("nan"),
        half_life_s=float(half_life) if half_life is not None else float("nan"),
        injection_time=injection,
        reference_time=reference,
        decay_correction=decay or str(getattr(first, "DecayCorrection", "") or ""),
        notes=tuple(notes),
        variant=variant,
        suv_type=suv_type,
        patient_height_cm=height_cm,
        patient_sex=sex,
        scale_factor=uniform,
    )
    return SUVConversion(factors, info)


def _body_weight_factors(headers, weight, decay_override, fail, notes):
    """SUVbw multiplier per slice for Bq/mL values; returns (factors, dose, half-life, injection, ref, DC)."""
    first = headers[0]
    seq = getattr(first, "RadiopharmaceuticalInformationSequence", None)
    if not seq:
        raise fail(
            "RadiopharmaceuticalInformationSequence (0054,0016) is missing",
            "the injected dose and time are needed for SUV; export the series with its PET header",
        )
    item = seq[0]
    dose = _number(getattr(item, "RadionuclideTotalDose", None))
    if dose is None or dose <= 0:
        raise fail(
            "RadionuclideTotalDose (0018,1074) is missing or zero",
            "add the injected dose in Bq, or supply SUV volumes with pet_units=SUV",
        )
    if dose < 1e5:
        notes.append(f"RadionuclideTotalDose {dose:g} read as MBq")
        dose *= 1e6
    half_life = _number(getattr(item, "RadionuclideHalfLife", None))
    if half_life is None or half_life <= 0:
        raise fail(
            "RadionuclideHalfLife (0018,1075) is missing",
            "add the half-life in s (F-18: 6586.2, Ga-68: 4057.7), or supply SUV volumes with pet_units=SUV",
        )
    decay_constant = math.log(2.0) / half_life
    tz = _tz(getattr(first, "TimezoneOffsetFromUTC", None))
    series_date = getattr(first, "SeriesDate", None) or getattr(first, "AcquisitionDate", None)
    injection = parse_dt(getattr(item, "RadiopharmaceuticalStartDateTime", None), tz)
    if injection is None:
        injection = parse_da_tm(series_date, getattr(item, "RadiopharmaceuticalStartTime", None), tz)
        if injection is not None and not getattr(first, "SeriesDate", None):
            notes.append("injection date taken from AcquisitionDate")
    if injection is None:
        raise fail(
            "neither RadiopharmaceuticalStartDateTime (0018,1078) nor RadiopharmaceuticalStartTime "
            "(0018,1072) is present",
            "add the injection time, or supply SUV volumes with pet_units=SUV",
        )
    given = str(getattr(first, "DecayCorrection", "") or "").strip().upper()
    decay = (decay_override or given).strip().upper()
    if decay_override and given and decay_override.upper() != given:
        notes.append(f"DecayCorrection {given} overridden as {decay}")
    elif decay_override and not given:
        notes.append(f"DecayCorrection missing; {decay} given explicitly")
    if not decay:
        raise fail(
            "DecayCorrection (0054,1102) is missing",
            "radfeat does not assume it: set the manifest column pet_decay_correction to START, ADMIN or "
            "NONE after checking the scanner's protocol",
        )
    if decay not in ("START", "ADMIN", "NONE"):
        raise fail(
            f"DecayCorrection (0054,1102) is {decay!r}; START, ADMIN or NONE expected",
            "set pet_decay_correction in the manifest, or supply SUV volumes with pet_units=SUV",
        )
    acquisitions = [
        parse_da_tm(
            getattr(h, "AcquisitionDate", None) or series_date, getattr(h, "AcquisitionTime", None), tz
        )
        for h in headers
    ]

    def after_injection(t: datetime) -> tuple[datetime, float]:
        """``t`` on the injection's clock (a day on when it crossed midnight) and seconds since injection."""
        t, inj = _same_clock(t, injection)
        if t < inj and inj - t > timedelta(hours=12):
            t += timedelta(days=1)  # times without a usable date: the scan crossed midnight
        if t < inj:
            raise fail(
                f"scan time {t} is before the injection time {inj}",
                "check RadiopharmaceuticalStartDateTime/StartTime and the series/acquisition times",
            )
        return t, (t - inj).total_seconds()

    if decay == "ADMIN":
        notes.append("DecayCorrection ADMIN: no decay of the dose")
        return np.full(len(headers), weight * 1000.0 / dose), dose, half_life, injection, None, decay
    if decay == "NONE":
        factors = np.empty(len(headers))
        for k, (h, t_acq) in enumerate(zip(headers, acquisitions, strict=True)):
            frame = _number(getattr(h, "ActualFrameDuration", None))
            if t_acq is None or frame is None or frame <= 0:
                raise fail(
                    "DecayCorrection NONE needs AcquisitionTime (0008,0032) and ActualFrameDuration "
                    f"(0018,1242) on every slice; slice {k + 1} lacks them",
                    "export the complete PET headers, or reconstruct with decay correction",
                )
            x = decay_constant * frame / 1000.0
            _, elapsed = after_injection(t_acq)
            # Mean activity over the frame back to injection: λT/(1−e^(−λT)) · e^(λ(t_acq − t_inj)).
            factors[k] = weight * 1000.0 / dose * (x / -math.expm1(-x)) * math.exp(decay_constant * elapsed)
        notes.append(
            "DecayCorrection NONE: each slice decay-corrected from its AcquisitionTime over its frame"
        )
        return factors, dose, half_life, injection, None, decay
    # START: the reference time (QIBA order).
    series = parse_da_tm(getattr(first, "SeriesDate", None), getattr(first, "SeriesTime", None), tz)
    known = [(t, h) for t, h in zip(acquisitions, headers, strict=True) if t is not None]
    earliest = min(known, key=lambda th: th[0]) if known else None
    if series is not None and (earliest is None or series <= earliest[0]):
        reference = series
    elif earliest is None:
        raise fail(
            "neither SeriesTime (0008,0031) nor AcquisitionTime (0008,0032) is present",
            "the scan time is needed for decay correction; supply SUV volumes with pet_units=SUV",
        )
    else:
        ge_scan = getattr(first.get(GE_SCAN_DATETIME), "value", None) if hasattr(first, "get") else None
        t_acq, h = earliest
        frame = _number(getattr(h, "ActualFrameDuration", None))
        frame_ref = _number(getattr(h, "FrameReferenceTime", None))
        if ge_scan not in (None, "") and parse_dt(ge_scan, tz) is not None:
            reference = parse_dt(ge_scan, tz)
            notes.append(
                "SeriesTime after AcquisitionTime: decay reference from GE private scan date-time (0009,100D)"
            )
        elif frame and frame_ref:
            t_ave = _average_count_rate_time(frame / 1000.0, decay_constant)
            reference = t_acq + timedelta(seconds=t_ave - frame_ref / 1000.0)
            notes.append(
                "SeriesTime after AcquisitionTime: decay reference back-computed as AcquisitionTime + "
                "T_ave − FrameReferenceTime"
            )
        else:
            reference = t_acq
            notes.append("SeriesTime after AcquisitionTime: decay reference = earliest AcquisitionTime")
    reference, elapsed = after_injection(reference)
    factor = weight * 1000.0 / (dose * math.exp(-decay_constant * elapsed))
    return np.full(len(headers), factor), dose, half_life, injection, reference, decay
