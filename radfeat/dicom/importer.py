"""DICOM export tree → cohort manifest (what ``radfeat import`` does).

Per patient and study: the CT series, the PET series in the same frame of reference, and the tumour mask
(an RTSTRUCT ROI or DICOM-SEG segment chosen by ``roi``) drawn on the CT — paired through the series the
mask references, else the FrameOfReferenceUID. A mask that references the PET series becomes the
``pet_mask`` (its contours are rasterised on the PET grid). Nothing ambiguous is guessed: a study with
two candidate CTs, no PET, no matching ROI or several is reported with the choices and a hint, and left
out of the manifest.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radfeat.dicom.rtstruct import AmbiguousROI, ROINotFound, select_roi
from radfeat.dicom.scan import UNREADABLE, SeriesRecord

__all__ = ["ImportProblem", "ImportResult", "pair_studies"]


@dataclass(frozen=True)
class ImportProblem:
    """Why a patient's study is not in the manifest, with the choices found and the fix."""

    patient_id: str
    study_uid: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"patient {self.patient_id} (study …{self.study_uid[-12:]}): {self.message}. Hint: {self.hint}"


@dataclass
class ImportResult:
    rows: list[dict[str, Any]]
    problems: list[ImportProblem]


def _describe(record: SeriesRecord) -> str:
    return f"{record.series_uid} ({record.description or 'no description'}, {len(record.files)} files)"


def _mask_choice(
    masks: list[SeriesRecord], roi: str | None
) -> tuple[list[tuple[SeriesRecord, str]], list[str]]:
    """Masks with exactly one ROI matching ``roi``; and errors of masks where the choice is ambiguous."""
    hits, errors = [], []
    for mask in masks:
        try:
            hits.append((mask, mask.roi_names[select_roi(mask.roi_names, roi)]))
        except AmbiguousROI as exc:
            errors.append(f"{Path(mask.files[0]).name}: {exc}")
        except ROINotFound:
            pass  # this object does not hold the tumour; another may
    return hits, errors


def pair_studies(
    records: list[SeriesRecord],
    *,
    roi: str | None = None,
    require_pet: bool = True,
    relative_to: str | Path | None = None,
) -> ImportResult:
    """Manifest rows (one per patient study with a tumour mask) and the studies that could not be paired."""
    unreadable = [r for r in records if r.modality == UNREADABLE]
    by_study: dict[tuple[str, str], list[SeriesRecord]] = defaultdict(list)
    for record in records:
        if record.modality != UNREADABLE:
            by_study[(record.patient_id, record.study_uid)].append(record)
    studies_per_patient = Counter(patient for patient, _ in by_study)
    rows: list[dict[str, Any]] = []
    problems = [
        ImportProblem(
            "unknown",
            "",
            f"cannot read {r.files[0]} ({r.error}); its patient and study are unknown",
            "re-export the file (it looks cut short or corrupt), or remove it from the export",
        )
        for r in unreadable
    ]

    def place(path: str) -> str:
        return os.path.relpath(path, relative_to) if relative_to is not None else str(Path(path).resolve())

    for (patient, study), items in sorted(by_study.items()):

        def problem(message: str, hint: str) -> None:
            problems.append(ImportProblem(patient, study, message, hint))  # noqa: B023

        cts = [r for r in items if r.modality == "CT"]
        pets = [r for r in items if r.modality in ("PT", "PET")]
        masks = [r for r in items if r.is_mask]
        if not masks:
            problem("no RTSTRUCT or DICOM-SEG in the study", "export the tumour contours with the images")
            continue
        if not cts:
            problem(
                f"no CT series (found: {', '.join(sorted({r.modality for r in items}))})",
                "radfeat's cases need a CT; export the CT series of this study",
            )
            continue
        broken = [m for m in masks if m.error]
        if broken:
            problem(
                "; ".join(f"cannot read {m.files[0]} ({m.error})" for m in broken),
                "re-export the structure set / segmentation, or remove the broken file from the export",
            )
            continue
        hits, errors = _mask_choice(masks, roi)
        if errors:
            problem(
                "; ".join(errors), "give --roi an exact ROI name or a regular expression matching one ROI"
            )
            continue
        # The CT: the one a matching mask references, else the only one.
        referenced = {s for mask, _ in hits for s in mask.referenced_series}
        ct_choices = [c for c in cts if c.series_uid in referenced] or cts
        if len(ct_choices) > 1:
            problem(
                f"{len(ct_choices)} CT series: " + "; ".join(_describe(c) for c in ct_choices),
                "keep one CT per study in the export, or contour on one of them",
            )
            continue
        ct = ct_choices[0]
        if len(ct.folders) > 1:
            problem(
                f"CT series {ct.series_uid} is split over {len(ct.folders)} folders",
                "put a series in one folder",
            )
            continue
        # Masks drawn on this CT: those referencing it; else those in its frame of reference (or without
        # references) that do not reference a PET series.
        pet_uids = {p.series_uid for p in pets}

        def unreferenced_on_ct(m: SeriesRecord) -> bool:
            if not m.referenced_series:
                return True
            return m.frame_of_reference == ct.frame_of_reference and not pet_uids & set(m.referenced_series)  # noqa: B023

        on_ct = [(m, n) for m, n in hits if ct.series_uid in m.referenced_series] or [
            (m, n) for m, n in hits if unreferenced_on_ct(m)
        ]
        if not on_ct:
            names = {f"{Path(m.files[0]).parent.name}/{Path(m.files[0]).name}": m.roi_names for m in masks}
            problem(
                f"no mask ROI matches {roi!r} on the CT" if roi else "no mask drawn on the CT",
                f"choose --roi among {names}",
            )
            continue
        if len(on_ct) > 1:
            problem(
                "several masks match: " + "; ".join(f"{Path(m.files[0]).name} ROI {n!r}" for m, n in on_ct),
                "narrow --roi so that it matches one ROI",
            )
            continue
        mask, roi_name = on_ct[0]
        same_frame = [p for p in pets if p.frame_of_reference == ct.frame_of_reference] or pets
        if len(same_frame) > 1:
            problem(
                f"{len(same_frame)} PET series: " + "; ".join(_describe(p) for p in same_frame),
                "keep one PET series (e.g. the attenuation-corrected one) per study in the export",
            )
            continue
        if not same_frame and require_pet:
            problem("no PET series in the study", "export the PET series, or import with --ct-only")
            continue
        row: dict[str, Any] = {
            "case_id": patient
            if studies_per_patient[patient] == 1
            else f"{patient}_{items[0].study_date or study[-6:]}",
            "ct": place(ct.folders[0]),
            "ct_series": ct.series_uid,
            "mask": place(mask.files[0]),
            "roi": roi_name,
        }
        if same_frame:
            pet = same_frame[0]
            row.update(pet=place(pet.folders[0]), pet_series=pet.series_uid)
            on_pet = [(m, n) for m, n in hits if pet.series_uid in m.referenced_series]
            if len(on_pet) == 1:
                row.update(pet_mask=place(on_pet[0][0].files[0]), pet_roi=on_pet[0][1])
        row["patient_id"] = patient
        rows.append(row)
    return ImportResult(rows, problems)
