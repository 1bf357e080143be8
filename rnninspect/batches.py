"""Input batches read or made a block of samples at a time, never whole.

The engine walks a batch in chunks of samples (``x[start:stop]``); these objects
give it each chunk as a fresh array and hold nothing else, so a batch far larger
than memory runs in bounded memory:

* ``NpyFileRows``: an ``.npy`` file read with ``os.preadv`` at each chunk's offset.
  It is never memory-mapped: a mapped file truncated by another process kills the
  reader with SIGBUS, where a short read is an error this module reports.
* ``ZipMemberRows``: an ``.npy`` member of an ``.npz``, inflated as it is read.
* ``RandomRows``: ``--random``: ``np.random.RandomState(seed).randn(N, T, D)`` (or
  ``randint`` ids), drawn a chunk at a time: the same numbers as the one-shot call,
  since RandomState draws in C order and each chunk continues the stream.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .errors import InputArrayError
from .model import Array

if TYPE_CHECKING:  # imported where an archive is read, not at every start
    import zipfile


class Rows:
    """A (N, ...) batch read a block of rows at a time: ``shape``, ``dtype``,
    ``ndim``, ``len()``, and ``rows[i]`` / ``rows[a:b]`` (fresh arrays)."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | slice) -> Array:
        N = self.shape[0]
        if isinstance(index, slice):
            start, stop, step = index.indices(N)
            if step != 1:
                raise IndexError("rows are read in contiguous blocks")
            return self.read(start, max(start, stop))
        i = int(index)
        if i < 0:
            i += N
        if not 0 <= i < N:
            raise IndexError(f"row {index} is out of range for {N} rows")
        row: Array = self.read(i, i + 1)[0]
        return row

    def __array__(self, dtype: Any = None, copy: Any = None) -> Array:
        whole = self.read(0, self.shape[0])
        return whole if dtype is None else whole.astype(dtype)

    def read(self, start: int, stop: int) -> Array:
        raise NotImplementedError


def _row_bytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    return int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize


class NpyFileRows(Rows):
    """An ``.npy`` file (its header already checked against its size), read with
    positioned reads. The file is opened once: renaming another file over the name
    changes nothing; a truncation shows as a short read and is an input error."""

    def __init__(
        self,
        path: Path,
        where: str,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        fortran: bool,
        offset: int,
    ) -> None:
        self.where = where
        self.shape = shape
        self.dtype = dtype
        self.fortran = fortran
        self.offset = offset
        self.fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self.fd)

    def read(self, start: int, stop: int) -> Array:
        n = stop - start
        if not self.fortran or len(self.shape) < 2:
            out = np.empty((n, *self.shape[1:]), self.dtype)
            self._read_into(out, self.offset + start * _row_bytes(self.shape, self.dtype))
            return out
        # Column-major: each (t, d, ...) holds the N samples contiguously, so a
        # block of samples is prod(shape[1:]) runs of n values.
        N = self.shape[0]
        rest = self.shape[1:]
        runs = int(np.prod(rest, dtype=np.int64))
        buf = np.empty((runs, n), self.dtype)
        item = self.dtype.itemsize
        for j in range(runs):
            self._read_into(buf[j], self.offset + (j * N + start) * item)
        # buf[j] is the j-th (t, d, ...) in Fortran order: reversed axes in C order.
        return buf.reshape(*reversed(rest), n).transpose()

    def _read_into(self, out: Array, at: int) -> None:
        view = out.reshape(-1).view(np.uint8).data
        done = 0
        while done < len(view):
            try:
                got = os.preadv(self.fd, [view[done:]], at + done)
            except OSError as exc:
                raise InputArrayError(f"{self.where}: cannot read ({exc.strerror or exc})") from exc
            if got == 0:
                size = os.fstat(self.fd).st_size
                raise InputArrayError(
                    f"{self.where}: the file ended at {size:,} bytes while being read "
                    f"(its header declares {self.offset + self._nbytes():,}): "
                    "was it truncated or rewritten during the run?"
                )
            done += got

    def _nbytes(self) -> int:
        return self.shape[0] * _row_bytes(self.shape, self.dtype)


class ZipMemberRows(Rows):
    """A C-order ``.npy`` member of an ``.npz``, inflated as the rows are read (in
    order; going back restarts the stream). Only what the header declares is read,
    whatever the member would inflate to."""

    def __init__(
        self,
        source: Path | IO[bytes],
        info: zipfile.ZipInfo,
        where: str,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        offset: int,
    ) -> None:
        self.where = where
        self.shape = shape
        self.dtype = dtype
        self.offset = offset
        self.info = info
        # The open archive and member stream, in a holder of their own: the finalizer
        # must not refer to ``self``, or it would keep the rows (and the file) alive
        # for the life of the process.
        import zipfile

        self.open: _OpenMember = _OpenMember(zipfile.ZipFile(source))
        self.pos = 0  # position in the member of self.open.fh
        weakref.finalize(self, self.open.close)

    def read(self, start: int, stop: int) -> Array:
        import zipfile

        at = self.offset + start * _row_bytes(self.shape, self.dtype)
        out = np.empty((stop - start, *self.shape[1:]), self.dtype)
        view = out.reshape(-1).view(np.uint8).data
        try:
            fh = self.open.fh
            if fh is None or self.pos > at:
                if fh is not None:
                    fh.close()
                fh = self.open.fh = self.open.zf.open(self.info)
                self.pos = 0
            while self.pos < at:  # skip forward (decompressing: a stream)
                skipped = len(fh.read(min(1 << 20, at - self.pos)))
                if not skipped:
                    break
                self.pos += skipped
            done = 0
            while done < len(view) and self.pos == at + done:
                chunk = fh.read(min(1 << 22, len(view) - done))
                if not chunk:
                    break
                view[done : done + len(chunk)] = chunk
                done += len(chunk)
                self.pos += len(chunk)
        except (OSError, EOFError, zipfile.BadZipFile, RuntimeError, ValueError) as exc:
            raise InputArrayError(f"{self.where}: broken .npz member ({exc})") from exc
        except NotImplementedError as exc:
            raise InputArrayError(f"{self.where}: unsupported .npz member ({exc})") from exc
        if done < len(view):
            raise InputArrayError(
                f"{self.where}: array {self.info.filename[:-4]!r} ends early: its data stops "
                f"before the {self.shape} its header declares"
            )
        return out


class _OpenMember:
    """An open archive and the stream of one member in it, if one is open."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        self.fh: IO[bytes] | None = None

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
        self.zf.close()


class RandomRows(Rows):
    """``RandomState(seed).randn(*shape)`` as float32 (or ``randint(low, high,
    shape)`` ids), drawn a block of rows at a time. Reading the rows in order draws
    each value once; reading back restarts the stream where this batch starts.

    ``start``: the stream's state where this batch's draws begin (a later input of
    a model with several: the values of the inputs before it drawn already); by
    default, ``RandomState(seed)`` fresh."""

    def __init__(
        self,
        shape: tuple[int, ...],
        seed: int | None,
        ids: tuple[int, int] | None = None,
        start: dict[str, Any] | None = None,
    ) -> None:
        self.shape = shape
        self.ids = ids
        self.dtype = np.dtype(np.int64) if ids is not None else np.dtype(np.float32)
        if start is None:
            # No seed: one drawn from the OS, kept, so reading back gives the same rows.
            seed = int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else seed
            start = np.random.RandomState(seed).get_state(legacy=False)
        self.start = start
        self._restart()

    @staticmethod
    def draw(
        state: np.random.RandomState, shape: tuple[int, ...], ids: tuple[int, int] | None
    ) -> Array:
        """``shape``'s values drawn from ``state``, as the one-shot call draws them
        (ids ``(0, 1)``: only id 0 exists, zeros, nothing drawn)."""
        if ids is None:
            out: Array = state.randn(*shape).astype(np.float32)
            return out
        low, high = ids
        if high - low < 2 and low == 0:
            return np.zeros(shape, dtype=np.int64)
        return state.randint(low, high, size=shape, dtype=np.int64)

    @classmethod
    def streams(
        cls, batches: list[tuple[tuple[int, ...], tuple[int, int] | None]], seed: int | None
    ) -> list[RandomRows]:
        """One batch per (shape, ids), drawn one after the other from one stream, as
        ``np.random.seed(S); x1 = randn(...); x2 = randn(...)`` draws them: each
        later batch starts where the one before ends (found by drawing it, a chunk
        at a time, and dropping the values)."""
        out = [cls(batches[0][0], seed, batches[0][1])]
        for shape, ids in batches[1:]:
            before = out[-1]
            N = before.shape[0]
            before.read(N - 1, N)  # every row drawn, in chunks: the stream is past them
            out.append(cls(shape, None, ids, before.state.get_state(legacy=False)))
            before._restart()
        return out

    def _restart(self) -> None:
        self.state = np.random.RandomState()
        self.state.set_state(self.start)
        self.next_row = 0

    def _draw(self, n: int) -> Array:
        return self.draw(self.state, (n, *self.shape[1:]), self.ids)

    def read(self, start: int, stop: int) -> Array:
        if start < self.next_row:
            self._restart()
        while self.next_row < start:  # skip, drawing as the one-shot call would
            n = min(start - self.next_row, max(1, (1 << 22) // max(1, self._row_values())))
            self._draw(n)
            self.next_row += n
        out = self._draw(stop - start)
        self.next_row = stop
        return out

    def _row_values(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64))
