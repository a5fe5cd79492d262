"""``radfeat import``: a DICOM export folder → a cohort manifest that ``validate`` and ``extract`` take."""

from __future__ import annotations

from pathlib import Path

import typer

from radfeat.errors import RadfeatError
from radfeat_cli.common import EXIT_DATA, EXIT_USAGE, err, error, out

app = typer.Typer()


@app.command("import")
def import_dicom(
    root: Path = typer.Argument(
        ..., help="Folder of a DICOM export (CT, PET, RTSTRUCT / SEG), searched recursively."
    ),
    output: Path = typer.Option(Path("manifest.csv"), "--output", "-o", help="Manifest to write (CSV)."),
    roi: str | None = typer.Option(
        None, "--roi", help="Tumour ROI / segment: exact name, else a regular expression (e.g. 'GTV.*')."
    ),
    nifti_cache: Path | None = typer.Option(
        None,
        "--nifti-cache",
        help="Also write NIfTI copies (CT, mask, PET in SUV, PET mask) here; the manifest points at them.",
    ),
    ct_only: bool = typer.Option(False, "--ct-only", help="Accept studies without a PET series."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Scan a DICOM export, pair CT, PET and tumour masks per patient, write a manifest.

    Studies that cannot be paired without guessing (two CTs, no PET, ROI missing or matching several)
    are listed with the choices and a hint; the manifest holds the others.

    Example: radfeat import export/ --roi 'GTV.*' -o cohort/manifest.csv
    """
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from radfeat.dicom.importer import pair_studies
    from radfeat.dicom.scan import scan_tree
    from radfeat.utils.atomic import write_text

    if not root.is_dir():
        error(f"{root} is not a folder. Hint: give the folder of the DICOM export")
        raise typer.Exit(EXIT_USAGE)
    try:
        if quiet:
            records = scan_tree(root)
        else:
            columns = (TextColumn("[bold]scan"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=err) as bar:
                task = bar.add_task("scan", total=None)
                records = scan_tree(
                    root, on_file=lambda done, total: bar.update(task, completed=done, total=total)
                )
        output.parent.mkdir(parents=True, exist_ok=True)
        result = pair_studies(records, roi=roi, require_pet=not ct_only, relative_to=output.parent.resolve())
        rows, unconverted = result.rows, []
        if nifti_cache is not None and rows:
            rows, unconverted = _write_nifti_cache(
                rows, output.parent.resolve(), nifti_cache.resolve(), quiet
            )
    except RadfeatError as exc:
        error(exc)
        raise typer.Exit(EXIT_DATA) from None
    n_series = sum(1 for r in records if not r.is_mask)
    n_masks = sum(1 for r in records if r.is_mask)
    out.print(
        f"scanned {root}: {len({r.patient_id for r in records})} patient(s), {n_series} image series, "
        f"{n_masks} mask object(s)",
        markup=False,
    )
    if rows:
        write_text(pd.DataFrame(rows).to_csv(index=False), output)
        out.print(f"manifest: {output} ({len(rows)} case(s)); next: radfeat validate {output}", markup=False)
    for problem in result.problems:
        err.print(f"not imported: {problem}", markup=False)
    if result.problems or unconverted:
        count = len(result.problems) + len(unconverted)
        err.print(f"{count} study/studies not imported (listed above)", markup=False)
        raise typer.Exit(EXIT_DATA)
    if not rows:
        error("no case found. Hint: the folder needs CT series with an RTSTRUCT or DICOM-SEG")
        raise typer.Exit(EXIT_DATA)


def _write_nifti_cache(
    rows: list[dict], base: Path, cache: Path, quiet: bool
) -> tuple[list[dict], list[str]]:
    """Read each case once through the case loader and write NIfTI copies; rows then point at them.
    Returns the converted rows and the ids of the cases that could not be read (each reported)."""
    import os

    from radfeat.case import load_case
    from radfeat.utils.atomic import write_image

    converted, failed = [], []
    for row in rows:
        absolute = {
            k: (str((base / v).resolve()) if k in ("ct", "pet", "mask", "pet_mask") else v)
            for k, v in row.items()
        }
        try:
            case = load_case(absolute)
        except RadfeatError as exc:  # this case is left out; the others are written
            err.print(f"not imported: {row['case_id']}: {exc}", markup=False)
            failed.append(str(row["case_id"]))
            continue
        folder = cache / str(row["case_id"])
        names = {"ct": case.ct, "mask": case.mask, "pet": case.pet, "pet_mask": case.pet_mask}
        new = {
            k: v
            for k, v in row.items()
            if k not in ("ct", "pet", "mask", "pet_mask", "roi", "pet_roi") and not k.endswith("_series")
        }
        for key, image in names.items():
            if image is None:
                continue
            path = folder / f"{key}.nii.gz"
            write_image(image, path)
            new[key] = os.path.relpath(path, base)
        if case.pet is not None:
            new["pet_units"] = "SUV"
        new["source_ct"] = row["ct"]
        converted.append(new)
        if not quiet:
            err.print(f"{row['case_id']}: NIfTI written to {folder}", markup=False)
    return converted, failed
