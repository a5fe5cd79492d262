"""Header scan of a DICOM export tree: every file's identifying tags (no pixel data), grouped into
series, with the ROI names / segment labels and references of RTSTRUCT and SEG objects."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SeriesRecord", "scan_tree"]

_TAGS = [
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "StudyDate",
    "SeriesInstanceUID",
    "SeriesDescription",
    "Modality",
    "FrameOfReferenceUID",
    "SOPClassUID",
    "NumberOfFrames",
]


@dataclass
class SeriesRecord:
    """One series (image series, RTSTRUCT or SEG object) found in the tree.

    ``folders`` are where its files lie; for RTSTRUCT / SEG, ``files`` is the object file(s),
    ``referenced_series`` the image series they reference and ``roi_names`` their ROIs or segments.
    """

    patient_id: str
    study_uid: str
    study_date: str
    series_uid: str
    modality: str
    frame_of_reference: str
    description: str
    files: list[str] = field(default_factory=list)
    referenced_series: list[str] = field(default_factory=list)
    roi_names: list[str] = field(default_factory=list)

    @property
    def folders(self) -> list[str]:
        return sorted({str(Path(f).parent) for f in self.files})

    @property
    def is_mask(self) -> bool:
        return self.modality in ("RTSTRUCT", "SEG")


def _files(root: Path) -> list[Path]:
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            if not name.startswith(".") and not name.lower().endswith(
                (".txt", ".md", ".csv", ".json", ".nii", ".gz")
            ):
                found.append(Path(folder) / name)
    return sorted(found)


def scan_tree(root: str | Path, *, on_file: Callable[[int, int], None] | None = None) -> list[SeriesRecord]:
    """Scan ``root`` recursively; non-DICOM files are skipped.

    ``on_file(done, total)`` is called as files are read (a progress bar).
    """
    import pydicom

    from radfeat.dicom.rtstruct import read_rtstruct
    from radfeat.dicom.seg import segment_labels

    files = _files(Path(root))
    records: dict[str, SeriesRecord] = {}
    for done, path in enumerate(files, 1):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
        except Exception:  # noqa: BLE001 - not DICOM
            ds = None
        if on_file is not None:
            on_file(done, len(files))
        if ds is None or "SeriesInstanceUID" not in ds:
            continue
        uid = str(ds.SeriesInstanceUID)
        modality = str(getattr(ds, "Modality", ""))
        key = f"{uid}|{path}" if modality in ("RTSTRUCT", "SEG") else uid  # each mask object on its own
        record = records.get(key)
        if record is None:
            record = records[key] = SeriesRecord(
                patient_id=str(getattr(ds, "PatientID", "") or getattr(ds, "PatientName", "") or "unknown"),
                study_uid=str(getattr(ds, "StudyInstanceUID", "")),
                study_date=str(getattr(ds, "StudyDate", "") or ""),
                series_uid=uid,
                modality=modality,
                frame_of_reference=str(getattr(ds, "FrameOfReferenceUID", "") or ""),
                description=str(getattr(ds, "SeriesDescription", "") or "").strip(),
            )
        record.files.append(str(path))
    for record in records.values():
        if record.modality == "RTSTRUCT":
            structure = read_rtstruct(record.files[0])
            record.roi_names = structure.names
            record.referenced_series = structure.referenced_series_uids
            record.frame_of_reference = record.frame_of_reference or structure.frame_of_reference_uid
        elif record.modality == "SEG":
            record.roi_names = list(segment_labels(record.files[0]).values())
            ds = pydicom.dcmread(record.files[0], stop_before_pixels=True)
            record.referenced_series = [
                str(s.SeriesInstanceUID) for s in getattr(ds, "ReferencedSeriesSequence", []) or []
            ]
    return sorted(records.values(), key=lambda r: (r.patient_id, r.study_uid, r.modality, r.series_uid))
