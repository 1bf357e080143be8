"""Trace entries to HDF5 (``trace -o states.h5``): one dataset per entry, the layout
LSTMVis-style viewers read (a (N, T, M) float array per named state).

An entry's ``.npz`` key may hold ``/`` (``lstm/c``, ``bidi/forward``), which HDF5
reads as a group path, and ``lstm`` is itself an entry: so each dataset sits at the
root under its key with ``/`` written as ``.`` (``lstm.c``), and keeps the key in its
attribute ``key``. Chunks of samples are written as they come (the file can be
larger than memory); the file appears at its path only once complete, like every
other output.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError
from .model import Array


def dataset_name(key: str) -> str:
    """The dataset a trace key is stored as: ``lstm/c`` -> ``lstm.c``."""
    return key.replace("/", ".")


class H5Sink:
    """``ArraySink``'s interface (``write`` chunks along N, ``commit``, ``abort``)
    for an HDF5 file."""

    def __init__(self, path: Path, total_rows: int) -> None:
        self.path = path
        self.total = total_rows
        self._rows: dict[str, int] = {}
        from . import signals
        from .outputs import temp_beside

        try:
            with signals.deferred():  # no way out between creating and recording it
                fd, self._tmp = temp_beside(path)
                os.close(fd)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        try:
            import h5py

            self._h5: Any = h5py.File(self._tmp, "w")
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
            raise

    def write(self, arrays: Mapping[str, Array]) -> None:
        try:
            for key, chunk in arrays.items():
                name = dataset_name(key)
                if name not in self._h5:
                    ds = self._h5.create_dataset(
                        name,
                        shape=(self.total, *chunk.shape[1:]),
                        dtype=chunk.dtype,
                        track_times=False,
                    )
                    ds.attrs["key"] = key
                    self._rows[name] = 0
                start = self._rows[name]
                self._h5[name][start : start + len(chunk)] = np.asarray(chunk)
                self._rows[name] = start + len(chunk)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write ({exc})") from exc

    def commit(self) -> None:
        try:
            self._h5.flush()
            self._h5.close()
            with open(self._tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            from .outputs import publish

            publish(self._tmp, self.path)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc
        finally:
            self.abort()

    def abort(self) -> None:
        from . import signals

        with signals.deferred():  # a second signal must not cut the cleanup short
            with contextlib.suppress(Exception):
                self._h5.close()
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)


def read(path: str | Path) -> dict[str, Array]:
    """A ``trace -o states.h5`` file back as ``{npz key: array}``."""
    import h5py

    with h5py.File(path, "r") as h5:
        return {str(ds.attrs.get("key", name)): ds[()] for name, ds in h5.items()}
