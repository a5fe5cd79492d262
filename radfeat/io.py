"""Read images and masks (NIfTI, NRRD, MHA, DICOM series) and convert PET to SUVbw.

All readers return :class:`SimpleITK.Image` objects; ``sitk.GetArrayFromImage`` gives arrays in
(z, y, x) order. Physical units are mm. Only this module and :mod:`radfeat.manifest` touch paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radfeat.dicom.suv import SUVInfo, suv_conversion, suv_scale_factor
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
    "read_mask_on",
    "dicom_object_modality",
    "empty_image_like",
    "read_pet_suv",
    "suv_info_from_dicom",
    "suv_scale_factor",
]


def is_dicom_series(path: str | Path) -> bool:
    """True when ``path`` is a folder (read as a DICOM series) rather than a single volume file."""
    return Path(path).is_dir()


def dicom_series_files(folder: str | Path, series_uid: str | None = None) -> list[str]:
    """The slice files of one DICOM image series in ``folder``, ordered along the slice normal.

    Raises
    ------
    ImageReadError
        No image series in the folder, several and no ``series_uid``, or slices missing/duplicated
        (:func:`radfeat.dicom.series.series_slices`).
    """
    from radfeat.dicom.series import series_slices

    return series_slices(folder, series_uid).files


def read_image(
    path: str | Path, pixel_type: int | None = sitk.sitkFloat64, *, series_uid: str | None = None
) -> sitk.Image:
    """Read a volume file or a DICOM series folder.

    Parameters
    ----------
    path : str or Path
        A NIfTI/NRRD/MHA file or a folder holding one DICOM series.
    pixel_type : int or None, default=sitk.sitkFloat64
        SimpleITK pixel type of the returned image (DICOM rescale slope/intercept applied per slice);
        ``None`` keeps the stored type (as pyradiomics reads files).
    series_uid : str, optional
        SeriesInstanceUID of the series to read when a DICOM folder holds several.

    Returns
    -------
    SimpleITK.Image
        The 3D image in physical space (mm).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError("file not found", path=path, hint="check the path in the manifest")
    if path.is_dir():  # slices grouped, ordered and checked for gaps by series_slices
        from radfeat.dicom.series import read_series, series_slices

        image, _ = read_series(series_slices(path, series_uid), pixel_type=pixel_type)
        return image
    check_complete(path)  # ITK zero-fills truncated files without an error
    try:
        image = sitk.ReadImage(str(path), sitk.sitkUnknown if pixel_type is None else pixel_type)
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


def read_image_information(path: str | Path, *, series_uid: str | None = None) -> ImageHeader:
    """Read only the grid (size, spacing, origin, direction) of a volume or DICOM series.

    No voxel data is kept; the file is checked for completeness (:func:`radfeat.filecheck.check_complete`:
    a compressed stream is decompressed once). For a DICOM series the slice headers give the grid (the
    regular grid it is read on when its spacing is not uniform).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError("file not found", path=path, hint="check the path in the manifest")
    if path.is_dir():
        from radfeat.dicom.series import series_header

        return series_header(path, series_uid)
    check_complete(path)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ImageReadError(
            "cannot read image header",
            path=path,
            hint="check that the file is a complete NIfTI/NRRD/MHA volume or a DICOM series folder",
        ) from exc
    header = _header_of(reader)
    if len(header.size) != 3:
        raise ImageReadError(
            f"expected a 3D volume, got {len(header.size)}D",
            path=path,
            hint="radfeat works on 3D volumes; convert 4D/2D data first",
        )
    return header


def read_mask(
    path: str | Path,
    label: int = 1,
    *,
    case_id: str | None = None,
) -> sitk.Image:
    """Read an integer label map and return the binary mask (UInt8, 1 inside) of one label value.

    The file is read in its stored pixel type (a UInt8 / Int16 label map stays 1–2 bytes a voxel) and
    compared with ``label`` in one pass. Only a floating-point file is checked for non-integer values,
    on its non-zero voxels; the values present are listed only when ``label`` is absent.

    Raises
    ------
    MaskError
        When the mask is empty, not integer-valued, a vector image, or ``label`` is not among its values
        (the message lists the values found).
    """
    image = read_image(path, pixel_type=None)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise MaskError(
            f"mask has {image.GetNumberOfComponentsPerPixel()} components per voxel",
            case_id=case_id,
            path=path,
            hint="masks must be scalar integer label maps (0 background); export one label map per ROI",
        )
    values = sitk.GetArrayViewFromImage(image)
    is_float = image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64)
    if is_float:
        foreground = values[values != 0]  # NaN != 0: NaN voxels stay in and fail the check
        if not np.all(np.isfinite(foreground)) or np.any(np.abs(foreground - np.rint(foreground)) > 1e-6):
            raise MaskError(
                "mask has non-integer values",
                case_id=case_id,
                path=path,
                hint="masks must be integer label maps (0 background); re-export the segmentation",
            )
        inside = np.rint(values) == label  # float maps: the nearest integer is the label
    else:
        inside = values == label
    if not inside.any():  # the label is absent: list what is there (the slow pass, on errors only)
        present = np.unique(values[values != 0])
        if present.size == 0:
            raise MaskError(
                "mask is empty (no voxel > 0)",
                case_id=case_id,
                path=path,
                hint="re-export the segmentation or drop the case from the manifest",
            )
        found = np.rint(present).astype(np.int64).tolist()[:10]
        raise MaskError(
            f"label value {label} not present; values found: {found}",
            case_id=case_id,
            path=path,
            hint="set the mask label (--label or a `mask_label` column) to one of those values",
        )
    binary = sitk.GetImageFromArray(inside.view(np.uint8))
    binary.CopyInformation(image)
    return binary


# --------------------------------------------------------------------------------------------------
# PET → SUV (rules in :mod:`radfeat.dicom.suv`)
# --------------------------------------------------------------------------------------------------


def suv_info_from_dicom(
    folder: str | Path,
    *,
    case_id: str | None = None,
    series_uid: str | None = None,
    variant: str = "bw",
    decay_correction: str | None = None,
) -> SUVInfo:
    """The SUV conversion record of a PET DICOM series (headers only; raises what
    :func:`radfeat.dicom.suv.suv_conversion` raises)."""
    from radfeat.dicom.series import series_slices

    slices = series_slices(folder, series_uid)
    return suv_conversion(
        slices.headers, variant=variant, decay_correction=decay_correction, case_id=case_id, path=folder
    ).info


def read_pet_suv(
    path: str | Path,
    pet_units: str | None = None,
    *,
    case_id: str | None = None,
    series_uid: str | None = None,
    variant: str = "bw",
    decay_correction: str | None = None,
) -> tuple[sitk.Image, SUVInfo | None]:
    """Read a PET volume in SUV (SUVbw unless ``variant`` says otherwise).

    Parameters
    ----------
    path : str or Path
        A DICOM series folder (converted from BQML using its tags) or a volume file.
    pet_units : {"SUV", None}, default=None
        ``"SUV"`` when the volume is already in SUVbw (e.g. NIfTI exports). A volume file without
        DICOM tags is accepted only with ``"SUV"``.
    series_uid : str, optional
        The SeriesInstanceUID when the folder holds several series.
    variant : {"bw", "lbm", "lbm_janma", "bsa", "ibw"}
        SUV normalisation (:data:`radfeat.dicom.suv.SUV_VARIANTS`), DICOM input only.
    decay_correction : {"START", "ADMIN", "NONE"}, optional
        Explicit override of DecayCorrection (0054,1102).

    Returns
    -------
    image : SimpleITK.Image
        PET in SUVbw (float64).
    info : SUVInfo or None
        The conversion record, ``None`` when the input was already in SUV.
    """
    units = _normalise_pet_units(pet_units)
    if units == "SUV":
        return read_image(path, series_uid=series_uid), None
    if not is_dicom_series(path):
        raise SUVConversionError(
            "PET volume file has no DICOM header to convert it to SUV",
            case_id=case_id,
            path=path,
            hint="if the volume is already in SUVbw set pet_units=SUV in the manifest; "
            "otherwise give the PET DICOM series folder",
        )
    from dataclasses import replace

    from radfeat.dicom.series import read_series, series_slices

    slices = series_slices(path, series_uid)
    conversion = suv_conversion(
        slices.headers, variant=variant, decay_correction=decay_correction, case_id=case_id, path=path
    )
    image, notes = read_series(slices, slice_factors=conversion.factors)
    info = conversion.info
    if notes:
        info = replace(info, notes=(*info.notes, *notes))
    return image, info


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


# --------------------------------------------------------------------------------------------------
# Masks from DICOM objects (RTSTRUCT, DICOM-SEG) or label-map volumes
# --------------------------------------------------------------------------------------------------


def dicom_object_modality(path: str | Path) -> str | None:
    """``"RTSTRUCT"``, ``"SEG"`` … for a single DICOM file, ``None`` for anything else (volumes, folders)."""
    path = Path(path)
    if not path.is_file() or path.name.lower().endswith(
        (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
    ):
        return None
    with open(path, "rb") as fh:
        head = fh.read(132)
    if head[128:132] != b"DICM" and not path.name.lower().endswith(".dcm"):
        return None
    import pydicom

    try:
        return str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"]).Modality)
    except Exception:  # noqa: BLE001 - unreadable: let the volume reader give its message
        return None


def empty_image_like(header: Any) -> sitk.Image:
    """A UInt8 image on the grid of ``header`` (an image or :class:`ImageHeader`), for rasterising."""
    image = sitk.Image([int(v) for v in header.GetSize()], sitk.sitkUInt8)
    image.SetSpacing(header.GetSpacing())
    image.SetOrigin(header.GetOrigin())
    image.SetDirection(header.GetDirection())
    return image


def read_mask_on(
    path: str | Path,
    reference: Any,
    *,
    label: int = 1,
    roi: Any = None,
    slice_positions: np.ndarray | None = None,
    case_id: str | None = None,
) -> tuple[sitk.Image, list[str]]:
    """The tumour mask for ``reference`` (an image or header): an RTSTRUCT ROI or a DICOM-SEG segment
    rasterised on its grid (``roi`` names it), or a label-map volume's ``label`` (on its own grid, which
    the caller checks against the image). Returns the UInt8 mask and notes for provenance."""
    modality = dicom_object_modality(path)
    if modality == "RTSTRUCT":
        from radfeat.dicom.rtstruct import rasterise_roi, read_rtstruct, select_roi

        structure = read_rtstruct(path)
        try:
            chosen = structure.rois[select_roi(structure.names, roi)]
        except ValueError as exc:
            raise MaskError(
                str(exc),
                case_id=case_id,
                path=path,
                hint="set the manifest's `roi` column (or --roi) to one ROI name",
            ) from None
        reference = reference if isinstance(reference, sitk.Image) else empty_image_like(reference)
        mask, notes = rasterise_roi(
            chosen, reference, slice_positions=slice_positions, path=path, case_id=case_id
        )
        return mask, [f"mask: RTSTRUCT ROI {chosen.name!r}", *notes]
    if modality == "SEG":
        from radfeat.dicom.seg import read_segment

        reference = reference if isinstance(reference, sitk.Image) else empty_image_like(reference)
        mask, name = read_segment(path, reference, segment=roi, case_id=case_id)
        return mask, [f"mask: DICOM-SEG segment {name!r}"]
    if modality is not None:
        raise MaskError(
            f"DICOM file of Modality {modality} is not a mask",
            case_id=case_id,
            path=path,
            hint="give an RTSTRUCT, a DICOM-SEG or a label-map volume as the mask",
        )
    return read_mask(path, label, case_id=case_id), []
