"""One exception hierarchy for radfeat.

Every error a user can cause carries the case, the file and a hint on how to fix it. Subclasses also
inherit the matching built-in (``ValueError``, ``OSError``) so generic handlers keep working.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "RadfeatError",
    "ImageReadError",
    "SUVConversionError",
    "MaskError",
    "GeometryError",
    "ManifestError",
    "CaseFailure",
]


class RadfeatError(Exception):
    """Base class of radfeat's errors.

    Parameters
    ----------
    message : str
        What went wrong, with the numbers.
    case_id : str, optional
        The cohort case the error belongs to.
    path : str or Path, optional
        The offending file or folder.
    hint : str, optional
        How to fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        case_id: str | None = None,
        path: str | Path | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.case_id = case_id
        self.path = str(path) if path is not None else None
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        if self.case_id is not None:
            parts.append(f"case {self.case_id!r}")
        if self.path is not None:
            parts.append(f"file {self.path}")
        head = f"[{', '.join(parts)}] " if parts else ""
        tail = f" Hint: {self.hint}" if self.hint else ""
        return f"{head}{self.message}{tail}"

    def with_case(self, case_id: str) -> RadfeatError:
        """Return the same error annotated with ``case_id`` (keeps the type and the cause)."""
        self.case_id = case_id
        self.args = (self._format(),)
        return self


class ImageReadError(RadfeatError, OSError):
    """An image or DICOM series cannot be read."""


class SUVConversionError(RadfeatError, ValueError):
    """A PET volume cannot be converted to SUVbw (missing or unsupported DICOM information)."""


class MaskError(RadfeatError, ValueError):
    """A mask is empty or does not contain the requested label value."""


class GeometryError(RadfeatError, ValueError):
    """Image and mask grids disagree (size, spacing, origin or direction)."""


class ManifestError(RadfeatError, ValueError):
    """The cohort manifest itself is malformed (missing columns, unreadable file)."""


class CaseFailure(RadfeatError, RuntimeError):
    """A case could not be processed; ``stage`` says where (read, ct_radiomics, habitats, …)."""

    def __init__(self, message: str, *, stage: str, **kwargs) -> None:
        self.stage = stage
        super().__init__(f"{stage}: {message}", **kwargs)
