"""Validating ``.npy`` headers before trusting them.

A header can promise more data than the file holds, or hold pickled objects; both
are refused here, before NumPy allocates the declared size or unpickles anything.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np


class NpyHeaderError(Exception):
    """What is wrong with an .npy header (the caller adds the file and exit code)."""


def read_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """(shape, fortran_order, dtype, header length) of an .npy stream at its start."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise NpyHeaderError(f"unsupported .npy version {version}")
    except NpyHeaderError:
        raise
    except Exception as exc:  # NumPy's header parser raises ValueError, TokenError, ...
        raise NpyHeaderError(f"broken .npy header ({type(exc).__name__}: {exc})") from exc
    return tuple(int(d) for d in shape), bool(fortran), np.dtype(dtype), fh.tell()


def check(shape: tuple[int, ...], dtype: np.dtype[Any], available: int) -> None:
    """Refuse object dtypes and headers declaring more bytes than ``available``."""
    if dtype.hasobject:
        raise NpyHeaderError("holds Python objects (pickle); refused")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared > available:
        raise NpyHeaderError(
            f"header declares {shape} {dtype} ({declared:,} bytes) but the file holds {available:,}"
        )


def check_path(path: Path) -> tuple[tuple[int, ...], np.dtype[Any]]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        shape, _, dtype, offset = read_header(fh)
    check(shape, dtype, size - offset)
    return shape, dtype


def check_zip_members(src: Any) -> None:
    """Check every ``.npy`` member of an ``.npz`` (path or file object)."""
    try:
        with zipfile.ZipFile(src) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    shape, _, dtype, offset = read_header(fh)
                try:
                    check(shape, dtype, info.file_size - offset)
                except NpyHeaderError as exc:
                    raise NpyHeaderError(f"array {info.filename[:-4]!r}: {exc}") from None
    except zipfile.BadZipFile as exc:
        raise NpyHeaderError(f"broken .npz archive ({exc})") from exc
