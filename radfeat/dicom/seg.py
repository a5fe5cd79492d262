"""DICOM-SEG in and out, with highdicom.

* :func:`read_segment` — one segment (chosen by number or label) as a binary mask on the grid of the
  image it is used with; fractional segments are thresholded (default 0.5 of the maximum), overlapping
  segments stay separate (each is read on its own).
* :func:`write_label_map_seg` — a label map on a DICOM CT series (habitats 1…k) as a DICOM-SEG that a
  viewer opens next to the scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from radfeat.errors import MaskError

__all__ = ["segment_labels", "read_segment", "write_label_map_seg"]


def _segread(path: str | Path):
    import highdicom as hd

    try:
        return hd.seg.segread(str(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad mask file
        raise MaskError(
            f"cannot read the DICOM-SEG ({type(exc).__name__}: {exc})",
            path=path,
            hint="check that the file is a DICOM Segmentation object",
        ) from exc


def segment_labels(path: str | Path) -> dict[int, str]:
    """Segment number → label of a DICOM-SEG file."""
    seg = _segread(path)
    return {int(d.segment_number): str(d.segment_label) for d in seg.SegmentSequence}


def _choose(labels: dict[int, str], spec: Any, path: Any, case_id: str | None) -> int:
    from radfeat.dicom.rtstruct import select_roi

    text = "" if spec is None else str(spec).strip()
    if text.lower() in ("nan", "none"):
        text = ""
    if text.isdigit() and int(text) in labels:
        return int(text)
    numbers = list(labels)
    try:
        return numbers[select_roi([labels[n] for n in numbers], text or None, what="segment")]
    except ValueError as exc:
        numbers_and_labels = ", ".join(f"{n}: {label}" for n, label in labels.items())
        raise MaskError(
            f"{exc} (segment numbers {numbers_and_labels})",
            case_id=case_id,
            path=path,
            hint="set the manifest's `roi` column (or --roi) to a segment number or label",
        ) from None


def read_segment(
    path: str | Path,
    reference: sitk.Image | None = None,
    *,
    segment: str | int | None = None,
    threshold: float = 0.5,
    case_id: str | None = None,
) -> tuple[sitk.Image, str]:
    """One segment of a DICOM-SEG as a UInt8 mask (1 inside), and its label.

    Parameters
    ----------
    path : str or Path
    reference : SimpleITK.Image, optional
        The image the mask is used with: the segment is moved onto its grid (nearest neighbour for
        binary, linear then ``threshold`` for fractional segments). Without it, the SEG's own grid.
    segment : int or str, optional
        Segment number, label (exact, case-insensitive or a regular expression); the only segment
        when omitted.
    threshold : float
        For FRACTIONAL segments: the fraction (0–1) at or above which a voxel is inside.
    """
    seg = _segread(path)
    labels = {int(d.segment_number): str(d.segment_label) for d in seg.SegmentSequence}
    number = _choose(labels, segment, path, case_id)
    fractional = "FRACTIONAL" in str(seg.segmentation_type)
    volume = seg.get_volume(segment_numbers=[number], combine_segments=False, dtype=np.float32)
    image = (
        volume.squeeze_channel().to_simpleitk()
        if volume.number_of_channel_dimensions
        else volume.to_simpleitk()
    )
    image = sitk.Cast(image, sitk.sitkFloat32)
    if reference is not None:
        interpolator = sitk.sitkLinear if fractional else sitk.sitkNearestNeighbor
        image = sitk.Resample(image, reference, sitk.Transform(), interpolator, 0.0, sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(image)
    inside = values >= threshold if fractional else values > 0.5
    if not inside.any():
        raise MaskError(
            f"segment {number} ({labels[number]!r}) covers no voxel"
            + (" of the image" if reference is not None else ""),
            case_id=case_id,
            path=path,
            hint="pair the SEG with the series it was made on (same FrameOfReferenceUID), or another segment",
        )
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(image)
    return mask, labels[number]


def write_label_map_seg(
    labels: sitk.Image,
    source_files: list[str],
    path: str | Path,
    *,
    segment_names: list[str],
    series_description: str = "radfeat habitats",
) -> Path:
    """Write a label map (values 1…len(segment_names) on the source series' own grid) as a DICOM-SEG.

    ``source_files`` are the series' slice files in the order of the label map's z axis. Written to a
    temporary name, then renamed.
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from radfeat import __version__

    sources = [pydicom.dcmread(f) for f in source_files]
    for ds in sources:  # an empty SpecificCharacterSet (seen in exports) means the default repertoire
        if "SpecificCharacterSet" in ds and not str(ds.SpecificCharacterSet or "").strip():
            del ds.SpecificCharacterSet
    array = sitk.GetArrayFromImage(labels).astype(np.uint8)
    if array.shape[0] != len(sources) or array.shape[1:] != (int(sources[0].Rows), int(sources[0].Columns)):
        raise MaskError(
            f"label map {array.shape} is not on the series grid ({len(sources)} × {sources[0].Rows} × "
            f"{sources[0].Columns})",
            path=path,
            hint="DICOM-SEG export needs the label map on the CT series' own slices (not resampled)",
        )
    algorithm = hd.AlgorithmIdentificationSequence(
        name="radfeat habitats", family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=name,
            segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for i, name in enumerate(segment_names)
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="radfeat",
        manufacturer_model_name="radfeat",
        software_versions=__version__,
        device_serial_number="0",
        series_description=series_description,
        omit_empty_frames=False,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    seg.save_as(tmp)
    tmp.replace(path)
    return path
