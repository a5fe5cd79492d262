"""Is a volume file complete? ITK zero-fills the voxels missing from a truncated file without an error.

:func:`check_complete` compares the bytes a file holds with the bytes its own header promises:

* NIfTI-1/2 (``.nii``, ``.nii.gz``): ``vox_offset`` + voxel count × ``bitpix`` / 8;
* NRRD (``.nrrd``, ``.nhdr`` with detached data): header ``sizes`` × ``type`` size, for raw, gzip and
  bzip2 encodings, attached or detached (``data file``);
* MetaImage (``.mha``, ``.mhd``): ``DimSize`` × channels × ``ElementType`` size, raw or zlib-compressed;
* a DICOM series (folder): slice positions along the slice normal without gaps (a gap larger than 1.5 ×
  the usual slice distance means missing slices).

A compressed stream that ends before its end-of-stream marker is reported too. Every failure is an
:class:`~radfeat.errors.ImageReadError` naming the file, what is missing and how to fix it.
"""

from __future__ import annotations

import bz2
import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from radfeat.errors import ImageReadError

__all__ = ["check_complete"]

_CHUNK = 1 << 22
_HINT = "the file is truncated or corrupt: copy or export it again (compare its size with the source)"

_NRRD_TYPES = {
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: (
        "short",
        "short int",
        "signed short",
        "signed short int",
        "int16",
        "int16_t",
        "ushort",
        "unsigned short",
        "unsigned short int",
        "uint16",
        "uint16_t",
    ),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: (
        "longlong",
        "long long",
        "long long int",
        "signed long long",
        "signed long long int",
        "int64",
        "int64_t",
        "ulonglong",
        "unsigned long long",
        "unsigned long long int",
        "uint64",
        "uint64_t",
        "double",
    ),
}
_NRRD_SIZE = {name: size for size, names in _NRRD_TYPES.items() for name in names}
_MET_SIZE = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}


def _fail(path: Path, message: str) -> ImageReadError:
    return ImageReadError(message, path=path, hint=_HINT)


def _stream_length(path: Path, offset: int, kind: str) -> int:
    """Decompressed length of the ``kind`` ("gzip", "zlib", "bz2") stream starting at ``offset``.

    Raises ImageReadError when the stream ends before its end-of-stream marker or is corrupt.
    """
    if kind == "zlib":
        decomp = zlib.decompressobj()
    elif kind == "gzip":
        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    else:
        decomp = bz2.BZ2Decompressor()
    total = 0
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                total += len(decomp.decompress(chunk))
                if decomp.eof:
                    break
            if kind != "bz2":
                total += len(decomp.flush())
    except (zlib.error, OSError, EOFError) as exc:
        raise _fail(path, f"compressed data is corrupt ({exc})") from exc
    if not decomp.eof:
        raise _fail(path, f"compressed {kind} stream ends early (after {total} decompressed bytes)")
    return total


def _gzip_length(path: Path, offset: int, expected: int) -> int:
    """Decompressed length of a gzip stream, read from its trailer when it matches ``expected``.

    The last 4 bytes of a gzip file hold the uncompressed size (mod 2^32); in a truncated file they are
    arbitrary compressed bytes, so a match means the stream is complete (O(1), no decompression).
    Otherwise the stream is decompressed to find where it ends (and to name the fault).
    """
    size = path.stat().st_size
    if size - offset >= 18:  # smallest gzip member: 10-byte header + 8-byte trailer
        with open(path, "rb") as fh:
            fh.seek(size - 4)
            trailer = int.from_bytes(fh.read(4), "little")
        if trailer == expected % (1 << 32):
            return expected
    return _stream_length(path, offset, "gzip")


def _nifti_expected(header: bytes, path: Path) -> int:
    for endian in "<>":
        (size,) = struct.unpack(endian + "i", header[:4])
        if size == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if size == 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            vox_offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        raise _fail(path, "not a NIfTI file (header size is neither 348 nor 540)")
    n_dim = max(1, min(int(dims[0]), 7))
    count = int(np.prod([max(int(d), 1) for d in dims[1 : n_dim + 1]], dtype=np.int64))
    return max(vox_offset, 352 if size == 348 else 544) + count * max(int(bitpix), 1) // 8


def _check_nifti(path: Path, compressed: bool) -> None:
    if compressed:
        try:
            with gzip.open(path, "rb") as fh:
                header = fh.read(544)
        except (OSError, EOFError) as exc:
            raise _fail(path, f"cannot read image: not a valid gzip-compressed NIfTI ({exc})") from exc
    else:
        with open(path, "rb") as fh:
            header = fh.read(544)
    if len(header) < 348:
        raise _fail(path, f"NIfTI header is incomplete ({len(header)} of 348 bytes)")
    expected = _nifti_expected(header, path)
    have = _gzip_length(path, 0, expected) if compressed else path.stat().st_size
    if have < expected:
        raise _fail(path, f"voxel data is incomplete: {have} of {expected} bytes ({have / expected:.0%})")


def _read_text_header(path: Path, terminator: bytes, limit: int = 1 << 20) -> tuple[str, int]:
    with open(path, "rb") as fh:
        blob = fh.read(limit)
    end = blob.find(terminator)
    if end < 0:
        return blob.decode("latin-1"), len(blob)
    return blob[:end].decode("latin-1"), end + len(terminator)


def _check_nrrd(path: Path) -> None:
    text, offset = _read_text_header(path, b"\n\n")
    if "\r\n\r\n" in text:
        text = text.split("\r\n\r\n")[0]
    fields: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.lstrip("=").strip()
    try:
        sizes = [int(v) for v in fields["sizes"].split()]
        element = _NRRD_SIZE[fields["type"].strip().lower()]
    except (KeyError, ValueError):
        return  # a header ITK will reject on its own
    expected = int(np.prod(sizes, dtype=np.int64)) * element
    encoding = fields.get("encoding", "raw").lower()
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        if data_file.split()[0].upper() == "LIST" or "%" in data_file:
            return  # multi-file data sets: ITK lists the files itself
        data_path = (path.parent / data_file).resolve()
        if not data_path.exists():
            raise ImageReadError(
                f"detached NRRD data file {data_file!r} not found",
                path=path,
                hint=f"copy {data_file} next to the header, or fix its `data file:` field",
            )
        target, offset = data_path, 0
    else:
        target = path
    skip = int(fields.get("byte skip", "0") or 0)
    offset += max(skip, 0)
    if encoding in ("raw",):
        have = target.stat().st_size - offset
    elif encoding in ("gzip", "gz"):
        have = _gzip_length(target, offset, expected)
    elif encoding in ("bzip2", "bz2"):
        have = _stream_length(target, offset, "bz2")
    else:
        return  # ascii / hex: ITK's parser fails on short data itself
    if have < expected:
        raise _fail(target, f"voxel data is incomplete: {have} of {expected} bytes ({have / expected:.0%})")


def _check_meta(path: Path) -> None:
    with open(path, "rb") as fh:
        blob = fh.read(1 << 20)
    start = blob.find(b"ElementDataFile")
    if start < 0:
        return
    text = blob[:start].decode("latin-1")
    line_end = blob.find(b"\n", start)
    data_line = blob[start : line_end if line_end >= 0 else len(blob)].decode("latin-1")
    offset = (line_end + 1) if line_end >= 0 else len(blob)
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip()
    try:
        dims = [int(v) for v in fields["DimSize"].split()]
        element = _MET_SIZE[fields["ElementType"]]
    except (KeyError, ValueError):
        return
    channels = int(fields.get("ElementNumberOfChannels", "1") or 1)
    expected = int(np.prod(dims, dtype=np.int64)) * element * channels
    data_name = data_line.partition("=")[2].strip()
    if data_name.upper() == "LOCAL":
        target = path
    elif data_name.upper().startswith("LIST") or "%" in data_name:
        return
    else:
        target, offset = (path.parent / data_name).resolve(), 0
        if not target.exists():
            raise ImageReadError(
                f"MetaImage data file {data_name!r} not found",
                path=path,
                hint=f"copy {data_name} next to the header, or fix its ElementDataFile field",
            )
    header_skip = int(fields.get("HeaderSize", "0") or 0)
    if header_skip > 0 and target != path:
        offset = header_skip
    if fields.get("CompressedData", "False").lower() == "true":
        have = _stream_length(target, offset, "zlib")
    else:
        have = target.stat().st_size - offset
    if have < expected:
        raise _fail(target, f"voxel data is incomplete: {have} of {expected} bytes ({have / expected:.0%})")


def check_complete(path: str | Path) -> None:
    """Raise :class:`ImageReadError` when a volume file holds fewer bytes than its header promises.

    Formats radfeat does not know are left to ITK. DICOM folders are checked with
    :func:`check_dicom_slices`.
    """
    path = Path(path)
    if path.is_dir():
        from radfeat.dicom.series import series_slices

        series_slices(path)  # groups by series, refuses gaps and duplicates
        return
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        _check_nifti(path, compressed=True)
    elif name.endswith(".nii"):
        _check_nifti(path, compressed=False)
    elif name.endswith((".nrrd", ".nhdr")):
        _check_nrrd(path)
    elif name.endswith((".mha", ".mhd")):
        _check_meta(path)
    elif name.endswith(".gz"):
        _stream_length(path, 0, "gzip")
