"""Header scan of a DICOM export tree: every file's identifying tags (no pixel data), grouped into
series, with the ROI names / segment labels and references of RTSTRUCT and SEG objects."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SeriesRecord", "scan_tree", "UNREADABLE"]

#: Modality given to a file that starts like DICOM but cannot be parsed (cut short, corrupt).
UNREADABLE = "UNREADABLE"

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
    error: str = ""  # why a mask object could not be read (the import lists its study)

    @property
    def folders(self) -> list[str]:
        return sorted({str(Path(f).parent) for f in self.files})

    @property
    def is_mask(self) -> bool:
        return self.modality in ("RTSTRUCT", "SEG")


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


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

    files = _files(Path(root))
    records: dict[str, SeriesRecord] = {}
    for done, path in enumerate(files, 1):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
        except Exception as exc:  # noqa: BLE001 - not DICOM, or a DICOM file that is cut or corrupt
            ds = None
            if _has_dicom_preamble(path):
                records[str(path)] = SeriesRecord(
                    "unknown",
                    "",
                    "",
                    "",
                    UNREADABLE,
                    "",
                    "",
                    [str(path)],
                    error=f"{type(exc).__name__}: {exc}",
                )
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
        if record.is_mask and not record.error:
            try:
                _read_mask_object(record)
            except Exception as exc:  # noqa: BLE001 - one bad object must not stop the scan
                record.error = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
    return sorted(records.values(), key=lambda r: (r.patient_id, r.study_uid, r.modality, r.series_uid))


def _read_mask_object(record: SeriesRecord) -> None:
    """ROI names / segment labels and referenced series of an RTSTRUCT or SEG record."""
    import pydicom

    from radfeat.dicom.rtstruct import read_rtstruct
    from radfeat.dicom.seg import segment_labels

    if record.modality == "RTSTRUCT":
        structure = read_rtstruct(record.files[0])
        record.roi_names = structure.names
        record.referenced_series = structure.referenced_series_uids
        record.frame_of_reference = record.frame_of_reference or structure.frame_of_reference_uid
    else:
        record.roi_names = list(segment_labels(record.files[0]).values())
        ds = pydicom.dcmread(record.files[0], stop_before_pixels=True)
        record.referenced_series = [
            str(s.SeriesInstanceUID) for s in getattr(ds, "ReferencedSeriesSequence", []) or []
        ]
