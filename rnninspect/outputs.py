"""Writing result arrays: ``.npy``, ``.npz``, ``.csv`` (2-D at most), ``.json``.

Every write goes to a temporary file beside the target and is renamed over it only
when complete, so a failed write (no space, no permission, interrupted) never leaves
a partial file or destroys an earlier result.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import OutputError
from .model import Array

SUFFIXES = (".npy", ".npz", ".csv", ".json")


def check_target(path: str | Path, allowed: tuple[str, ...] = SUFFIXES) -> Path:
    """Validate an output path before any work is done."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise OutputError(
            f"{path}: unknown output extension {suffix or '(none)'!r}; "
            f"use one of {', '.join(allowed)}"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: directory {parent} does not exist")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: no permission to write in {parent}")
    return path


def publish(tmp: str, path: Path) -> None:
    """Rename a finished temporary file over ``path``, with the permissions a plain
    ``open(path, "w")`` would give (``mkstemp`` makes it owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` on success."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        publish(tmp, path)
    except OSError as exc:
        _unlink(tmp)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def float_text(value: float, dtype: np.dtype[Any]) -> str:
    """Shortest text that reads back to exactly the same value in ``dtype``."""
    if not np.isfinite(value):
        return "null"  # JSON has no NaN/Inf; a warning on stderr says where they are
    if dtype == np.float32:
        return str(np.float32(value))
    return repr(float(value))


def json_array(a: Array) -> str:
    """A nested JSON list; floats round-trip their dtype exactly."""
    if a.dtype.kind in "iub":
        return json.dumps(a.tolist())
    dt = a.dtype
    flat = [float_text(v, dt) for v in a.reshape(-1).tolist()]
    return _nest(flat, a.shape)


def _nest(flat: list[str], shape: tuple[int, ...]) -> str:
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return "[" + ", ".join(flat) + "]"
    step = int(np.prod(shape[1:], dtype=np.int64))
    parts = [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
    return "[" + ", ".join(parts) + "]"


def array_document(a: Array, key: str = "output") -> str:
    """``{"shape", "dtype", key}`` as JSON text."""
    return (
        '{"shape": '
        + json.dumps(list(a.shape))
        + ', "dtype": '
        + json.dumps(str(a.dtype))
        + f', "{key}": '
        + json_array(a)
        + "}"
    )


def arrays_document(arrays: Mapping[str, Array], key: str = "states") -> str:
    """``{"layers": {name: {"shape", "dtype", key}}}`` as JSON text."""
    parts = [json.dumps(name) + ": " + array_document(a, key) for name, a in arrays.items()]
    return '{"layers": {' + ", ".join(parts) + "}}"


def write_array(path: Path, a: Array) -> None:
    """One array to ``.npy``/``.npz``/``.csv``/``.json`` by extension."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with atomic(path) as fh:
            np.save(fh, a, allow_pickle=False)
    elif suffix == ".npz":
        write_arrays(path, {"output": a})
    elif suffix == ".csv":
        if a.ndim > 2:
            raise OutputError(
                f"{path}: .csv holds 2-D arrays; this one is {a.shape}: use .npy, .npz or .json"
            )
        text = io.StringIO()
        fmt = "%d" if a.dtype.kind in "iub" else ("%.9g" if a.dtype == np.float32 else "%.17g")
        np.savetxt(text, np.atleast_2d(a) if a.ndim else a.reshape(1, 1), fmt=fmt, delimiter=",")
        with atomic(path, "w") as fh:
            fh.write(text.getvalue())
    elif suffix == ".json":
        with atomic(path, "w") as fh:
            fh.write(array_document(a) + "\n")
    else:
        raise OutputError(f"{path}: unknown output extension {suffix!r}")


def write_arrays(path: Path, arrays: Mapping[str, Array]) -> None:
    """Several named arrays: ``.npz`` (one entry each) or ``.json``."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with atomic(path) as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    elif suffix == ".json":
        with atomic(path, "w") as fh:
            fh.write(arrays_document(arrays) + "\n")
    else:
        raise OutputError(f"{path}: several arrays need .npz or .json, not {suffix!r}")


class ArraySink:
    """Arrays written chunk by chunk along their first axis (N), committed atomically.

    ``.npy`` and ``.npz`` stream to disk as chunks arrive, so an output far larger
    than memory never has to be held; ``.json`` and ``.csv`` are text for small
    results and are assembled in memory. Nothing appears at ``path`` until
    ``commit``; on any failure the temporary files are removed and an earlier file
    at ``path`` is untouched.
    """

    def __init__(self, path: Path, total_rows: int, several: bool) -> None:
        self.path = path
        self.total = total_rows
        self.several = several  # several named arrays (.npz/.json) or one
        self.suffix = path.suffix.lower()
        self._files: dict[str, tuple[str, IO[bytes]]] = {}  # key -> (temp path, handle)
        self._held: dict[str, list[Array]] = {}

    def __enter__(self) -> ArraySink:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()

    def write(self, arrays: Mapping[str, Array]) -> None:
        if self.suffix == ".npy" and len(arrays) != 1:
            raise OutputError(f"{self.path}: .npy holds one array; use .npz for several")
        for key, chunk in arrays.items():
            if self.suffix in (".npy", ".npz"):
                self._stream(key, np.ascontiguousarray(chunk))
            else:
                self._held.setdefault(key, []).append(np.asarray(chunk))

    def _stream(self, key: str, chunk: Array) -> None:
        try:
            if key not in self._files:
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent or "."
                )
                fh = os.fdopen(fd, "wb")
                self._files[key] = (tmp, fh)
                header = {
                    "descr": np.lib.format.dtype_to_descr(chunk.dtype),
                    "fortran_order": False,
                    "shape": (self.total, *chunk.shape[1:]),
                }
                try:
                    np.lib.format.write_array_header_1_0(fh, header)
                except ValueError:  # a header over 64 KiB needs format 2.0
                    np.lib.format.write_array_header_2_0(fh, header)
            self._files[key][1].write(chunk.data)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc

    def commit(self) -> None:
        try:
            if self.suffix == ".npy":
                ((tmp, fh),) = self._files.values()
                _finish(fh)
                publish(tmp, self.path)
            elif self.suffix == ".npz":
                for _, fh in self._files.values():
                    _finish(fh)
                with atomic(self.path) as out, zipfile.ZipFile(out, "w") as zf:
                    for key, (tmp, _) in self._files.items():
                        with (
                            open(tmp, "rb") as src,
                            zf.open(f"{key}.npy", "w", force_zip64=True) as dst,
                        ):
                            shutil.copyfileobj(src, dst, 1 << 20)
            else:
                arrays = {k: np.concatenate(v) for k, v in self._held.items()}
                if self.several:
                    write_arrays(self.path, arrays)
                else:
                    write_array(self.path, next(iter(arrays.values())))
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc
        finally:
            self.abort()

    def abort(self) -> None:
        for tmp, fh in self._files.values():
            with contextlib.suppress(OSError):
                fh.close()
            _unlink(tmp)
        self._files.clear()


def _finish(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
