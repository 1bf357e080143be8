"""Validating ``.npy`` headers before trusting them.

A header can promise more data than the file holds, or hold pickled objects; both
are refused here, before NumPy allocates the declared size or unpickles anything.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import files

if TYPE_CHECKING:  # imported where an archive is read, not at every start
    import zipfile


class NpyHeaderError(Exception):
    """What is wrong with an .npy header (the caller adds the file and exit code)."""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No Python warnings while NumPy evaluates .npy headers (a damaged one can make
    Python warn on stderr: an invalid escape is a SyntaxWarning from Python 3.12)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def load(src: str | Path | IO[bytes]) -> Iterator[Any]:
    """``np.load(src, allow_pickle=False)`` (an ``NpzFile`` or an array) whose file
    is closed on the way out whatever happens: given a path, ``np.load`` opens the
    file itself and leaves it open when the archive turns out unreadable (the
    exception's traceback holds it), which a long-running caller (a server, a
    library user looping over files) would run out of descriptors on."""
    with contextlib.ExitStack() as stack:
        fh = stack.enter_context(open(src, "rb")) if isinstance(src, (str, Path)) else src
        with quiet():
            loaded = np.load(fh, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            stack.enter_context(loaded)
        yield loaded


def read_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """(shape, fortran_order, dtype, header length) of an .npy stream at its start."""
    fmt = np.lib.format
    with quiet():
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
    if any(d < 0 for d in shape):
        raise NpyHeaderError(f"header declares a negative dimension {shape}")
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


class Member(NamedTuple):
    """An ``.npz`` member's array, as its header declares it."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype[Any]
    offset: int  # where the data starts in the member

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.float64)) * self.dtype.itemsize


def zip_members(src: Any, cap: int = 1 << 62) -> dict[str, Member]:
    """Every ``.npy`` member of an ``.npz`` (path or file object), keyed by array
    name, checked from its directory entry and header alone: nothing is inflated
    beyond the header, so a member declaring terabytes costs nothing. ``cap``:
    the most bytes one member may declare."""
    import zipfile

    size: int | None = None
    with contextlib.suppress(OSError, TypeError, ValueError, AttributeError):
        size = os.stat(src).st_size if isinstance(src, (str, Path)) else len(src.getbuffer())
    out: dict[str, Member] = {}
    try:
        with zipfile.ZipFile(src) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[:-4]
                problem = files.member_problem(info, cap, size)
                if problem is not None:
                    raise NpyHeaderError(f"array {key!r}: the archive member {problem}; refused")
                try:
                    with zf.open(info) as fh:
                        shape, fortran, dtype, offset = read_header(fh)
                except NpyHeaderError as exc:
                    raise NpyHeaderError(f"array {key!r}: {exc}") from None
                except (OSError, EOFError, RuntimeError, NotImplementedError) as exc:
                    raise NpyHeaderError(f"array {key!r}: unreadable member ({exc})") from None
                try:
                    check(shape, dtype, info.file_size - offset)
                except NpyHeaderError as exc:
                    raise NpyHeaderError(f"array {key!r}: {exc}") from None
                out[key] = Member(info, shape, fortran, dtype, offset)
    except zipfile.BadZipFile as exc:
        raise NpyHeaderError(f"broken .npz archive ({exc})") from exc
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as exc:
        # NotImplementedError: a zip "version" or method zipfile cannot read.
        raise NpyHeaderError(f"unreadable .npz archive ({exc})") from exc
    return out


def check_zip_members(src: Any, cap: int = 1 << 62) -> None:
    """Check every ``.npy`` member of an ``.npz`` (see ``zip_members``)."""
    zip_members(src, cap)
