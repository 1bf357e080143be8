"""Writing result arrays: ``.npy``, ``.npz``, ``.json``, and ``.csv``, ``.tsv``,
``.txt`` (2-D at most), to a file or to stdout (``-o -``).

Every write to a file goes to a temporary file beside the target and is renamed over
it only when complete, so a failed write (no space, no permission, interrupted) never
leaves a partial file or destroys an earlier result.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from . import files, signals
from .errors import OutputError

if TYPE_CHECKING:  # (the model's classes load while the parse child works: cli._prepare)
    from .model import Array

# Output formats by name (--format) and by suffix; the text ones hold 2-D arrays.
FORMATS = ("npy", "npz", "csv", "tsv", "txt", "json")
SUFFIXES = tuple(f".{f}" for f in FORMATS)
DELIMITERS = {"csv": ",", "tsv": "\t", "txt": " "}
BINARY = ("npy", "npz")
STDOUT = "-"


@dataclass(frozen=True)
class Target:
    """Where an output goes: a file, or stdout (``path`` None, ``-o -``), and in
    which format."""

    path: Path | None
    format: str

    @property
    def name(self) -> str:
        return "<stdout>" if self.path is None else str(self.path)


def check_target(
    path: str | Path,
    allowed: tuple[str, ...] = FORMATS,
    fmt: str | None = None,
    default: str = "npy",
) -> Target:
    """Validate an output path (``-``: stdout) and its format before any work is done.
    ``fmt`` (``--format``) names the format where the suffix cannot (``-``, no suffix
    or an unknown one); ``default`` is stdout's format without it."""
    if str(path) == STDOUT:
        chosen = fmt or default
        if chosen not in allowed:
            raise OutputError(f"-o -: cannot write {chosen}; use --format {'|'.join(allowed)}")
        if chosen in BINARY and _stdout_is_terminal():
            raise OutputError(
                f"-o -: stdout is a terminal and .{chosen} is binary: redirect it "
                f"(> out.{chosen}) or choose a text --format (csv, tsv, txt, json)"
            )
        return Target(None, chosen)
    path = Path(path)
    try:
        mode: int | None = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except (OSError, ValueError) as exc:  # a name too long, a loop of symlinks, ...
        raise OutputError(
            f"{path}: cannot write ({getattr(exc, 'strerror', None) or exc})"
        ) from exc
    if (mode is not None and stat.S_ISDIR(mode)) or str(path).endswith(os.sep):
        raise OutputError(f"{path}: is a directory; give a file name, e.g. {path / 'out.npy'}")
    suffix = path.suffix.lower().lstrip(".")
    if fmt is not None and suffix in FORMATS and suffix != fmt:
        raise OutputError(f"{path}: the suffix says .{suffix} but --format says {fmt}: drop one")
    chosen = fmt or suffix
    if chosen not in allowed:
        known = ", ".join(f".{a}" for a in allowed)
        raise OutputError(
            f"{path}: unknown output extension {'.' + suffix if suffix else '(none)'!r}; "
            f"use one of {known} (or --format {'|'.join(allowed)})"
        )
    if mode is not None and not stat.S_ISREG(mode):
        # The complete result is renamed into place: that would replace the device
        # or pipe itself, not write into it.
        raise OutputError(
            f"{path}: is {files.kind(mode)}; outputs are written to regular files only "
            "(-o - writes to stdout)"
        )
    parent = path.parent if str(path.parent) else Path(".")
    try:
        if not stat.S_ISDIR(os.stat(parent).st_mode):
            raise OutputError(f"{path}: {parent} is not a directory")
    except (FileNotFoundError, NotADirectoryError):
        raise OutputError(f"{path}: directory {parent} does not exist") from None
    except (OSError, ValueError) as exc:  # a name too long, no permission, ...
        raise OutputError(
            f"{path}: cannot write ({getattr(exc, 'strerror', None) or exc})"
        ) from exc
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: no permission to write in {parent}")
    return Target(path, chosen)


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _stdout_bytes() -> IO[bytes]:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        raise OutputError("<stdout>: cannot write binary data to this stdout")
    sys.stdout.flush()
    return buffer  # type: ignore[no-any-return]


@contextlib.contextmanager
def destination(target: Target, binary: bool) -> Iterator[IO[Any]]:
    """The file to write ``target`` through: stdout as it is, or a temporary file
    renamed over the target's path on success (``atomic``)."""
    if target.path is None:
        fh: IO[Any] = _stdout_bytes() if binary else sys.stdout
        yield fh
        fh.flush()
        return
    with atomic(target.path, "wb" if binary else "w") as out:
        yield out


def publish(tmp: str, path: Path) -> None:
    """Rename a finished temporary file over ``path``, with the permissions a plain
    ``open(path, "w")`` would give (``mkstemp`` makes it owner-only; see
    ``file_mode``). No signal cuts it short (``signals.deferred``)."""
    with signals.deferred():
        os.chmod(tmp, file_mode(path))
        os.replace(tmp, path)


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (changing
    it, even for a moment, races with threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode(path: Path) -> int:
    """The mode an output file gets: an earlier file's own (so rewriting a private
    file keeps it private), else what the umask allows (0644 under umask 022), as
    for any file a tool creates."""
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    return 0o666 & ~_umask()


def temp_beside(path: Path | None, name: str | None = None) -> tuple[int, str]:
    """A new temporary file beside ``path`` (None: in the temporary directory). Call
    it inside ``signals.deferred()`` and record the name for cleanup before the block
    ends, so no signal leaves the file behind."""
    base = name or (path.name if path is not None else "stdout")
    if len(os.fsencode(base)) > 200:  # the temporary name must fit where the name fits
        base = "rnninspect"
    if path is None:
        import tempfile

        where = tempfile.gettempdir()
    else:
        where = str(path.parent) or "."
    return _exclusive(where, f".{base}.", ".tmp")


# What tempfile.mkstemp opens a file with: created here or not at all, never through
# a symlink, not inherited by child processes.
_EXCLUSIVE = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _exclusive(where: str, prefix: str, suffix: str) -> tuple[int, str]:
    """``tempfile.mkstemp(suffix, prefix, where)``: a new file of a random name,
    mode 0600, opened for writing. Written out because importing tempfile (with
    random and hashlib) cost 1.4 ms of every command's start, 1.4% of
    ``import numpy``'s own time, against a 1.3x target."""
    for _ in range(100):
        name = os.path.join(where, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            return os.open(name, _EXCLUSIVE, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name found", where)


@contextlib.contextmanager
def atomic(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` on success."""
    cleanup = _Cleanup()
    try:
        with signals.deferred():  # a signal arriving here is raised once it is recorded
            try:
                fd, tmp = temp_beside(path)
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
            cleanup.tmp, cleanup.fd = tmp, fd
        with os.fdopen(fd, mode) as fh:
            cleanup.fd = None  # the file object closes it now
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        with signals.deferred():
            publish(tmp, path)
            cleanup.tmp = None
    except OSError as exc:
        cleanup.run()
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        cleanup.run()
        raise


class _Cleanup:
    """A temporary file to remove (and its descriptor to close) unless it was
    renamed into place."""

    def __init__(self) -> None:
        self.tmp: str | None = None
        self.fd: int | None = None

    def run(self) -> None:
        with signals.deferred():  # a second signal must not cut the cleanup short
            if self.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                self.fd = None
            if self.tmp is not None:
                _unlink(self.tmp)
                self.tmp = None


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
    import json  # here: a run writing .npy needs none of it (start-up)

    if a.dtype.kind in "iub":
        return json.dumps(a.tolist())
    dt = a.dtype
    flat = [float_text(v, dt) for v in a.reshape(-1).tolist()]
    return _nest(flat, a.shape)


def exact_list(a: Array) -> Any:
    """A nested list of Python numbers that JSON prints as the shortest text reading
    back to the same ``a.dtype`` values (NaN/Inf: None)."""
    if a.dtype.kind in "iub":
        return a.tolist()
    flat = [
        None if text == "null" else float(text)
        for text in (float_text(v, a.dtype) for v in a.reshape(-1).tolist())
    ]
    return np.array(flat, dtype=object).reshape(a.shape).tolist() if a.ndim else flat[0]


def _nest(flat: list[str], shape: tuple[int, ...]) -> str:
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return "[" + ", ".join(flat) + "]"
    step = int(np.prod(shape[1:], dtype=np.int64))
    parts = [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
    return "[" + ", ".join(parts) + "]"


def named_document(name: str, a: Array) -> str:
    """``{"name", "shape", "dtype", "output"}`` as JSON text (one of several outputs)."""
    import json  # here: a run writing .npy needs none of it (start-up)

    return '{"name": ' + json.dumps(name) + ", " + array_document(a)[1:]


def array_document(a: Array, key: str = "output") -> str:
    """``{"shape", "dtype", key}`` as JSON text."""
    import json  # here: a run writing .npy needs none of it (start-up)

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
    import json  # here: a run writing .npy needs none of it (start-up)

    parts = [json.dumps(name) + ": " + array_document(a, key) for name, a in arrays.items()]
    return '{"layers": {' + ", ".join(parts) + "}}"


def write_array(target: Target, a: Array) -> None:
    """One array in ``target``'s format (``.npz``: key ``output``)."""
    fmt = target.format
    if fmt == "npz":
        write_arrays(target, {"output": a})
        return
    if fmt in DELIMITERS and a.ndim > 2:
        raise OutputError(
            f"{target.name}: .{fmt} holds 2-D arrays; this one is {a.shape}: "
            "use .npy, .npz or .json"
        )
    with destination(target, binary=fmt == "npy") as fh:
        if fmt == "npy":
            np.save(fh, a, allow_pickle=False)
        elif fmt == "json":
            fh.write(array_document(a) + "\n")
        elif fmt in DELIMITERS:
            fh.write(delimited(a, DELIMITERS[fmt]))
        else:
            raise OutputError(f"{target.name}: unknown output format {fmt!r}")


def delimited(a: Array, delimiter: str) -> str:
    """A 2-D array as text, one row a line; floats read back to the same values."""
    text = io.StringIO()
    fmt = "%d" if a.dtype.kind in "iub" else ("%.9g" if a.dtype == np.float32 else "%.17g")
    np.savetxt(text, np.atleast_2d(a) if a.ndim else a.reshape(1, 1), fmt=fmt, delimiter=delimiter)
    return text.getvalue()


def write_arrays(target: Target, arrays: Mapping[str, Array]) -> None:
    """Several named arrays: ``.npz`` (one entry each) or ``.json``."""
    if target.format == "npz":
        with destination(target, binary=True) as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    elif target.format == "json":
        with destination(target, binary=False) as fh:
            fh.write(arrays_document(arrays) + "\n")
    else:
        raise OutputError(f"{target.name}: several arrays need .npz or .json, not .{target.format}")


class ArraySink:
    """Arrays written chunk by chunk along their first axis (N), committed atomically.

    ``.npy`` and ``.npz`` stream to disk as chunks arrive, so an output far larger
    than memory never has to be held; ``.json`` and ``.csv`` are text for small
    results and are assembled in memory. Nothing appears at ``path`` until
    ``commit``; on any failure the temporary files are removed and an earlier file
    at ``path`` is untouched.
    """

    def __init__(self, target: Target, total_rows: int, several: bool) -> None:
        self.target = target
        self.total = total_rows
        self.several = several  # several named arrays (.npz/.json) or one
        self.format = target.format
        # Streamed parts go beside the target (renamed into place), or to the
        # temporary directory when the target is stdout.
        self._dir = str(target.path.parent) if target.path is not None else None
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
        if self.format == "npy" and len(arrays) != 1:
            raise OutputError(f"{self.target.name}: .npy holds one array; use .npz for several")
        for key, chunk in arrays.items():
            if self.format in BINARY:
                self._stream(key, np.ascontiguousarray(chunk))
            else:
                self._held.setdefault(key, []).append(np.asarray(chunk))

    def _stream(self, key: str, chunk: Array) -> None:
        try:
            if key not in self._files:
                with signals.deferred():  # no way out between creating and recording it
                    fd, tmp = temp_beside(self.target.path)
                    self._files[key] = (tmp, os.fdopen(fd, "wb"))
                fh = self._files[key][1]
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
            raise OutputError(f"{self.target.name}: cannot write ({exc.strerror or exc})") from exc

    def commit(self) -> None:
        path = self.target.path
        try:
            if self.format == "npy":
                ((tmp, fh),) = self._files.values()
                _finish(fh)
                if path is not None:
                    with signals.deferred():
                        publish(tmp, path)
                        self._files.clear()
                else:
                    with open(tmp, "rb") as src:
                        shutil.copyfileobj(src, _stdout_bytes(), 1 << 20)
                    sys.stdout.flush()
            elif self.format == "npz":
                import zipfile

                for _, fh in self._files.values():
                    _finish(fh)
                with (
                    destination(self.target, binary=True) as out,
                    zipfile.ZipFile(out, "w") as zf,
                ):
                    for key, (tmp, _) in self._files.items():
                        with (
                            open(tmp, "rb") as src,
                            zf.open(f"{key}.npy", "w", force_zip64=True) as dst,
                        ):
                            shutil.copyfileobj(src, dst, 1 << 20)
            else:
                arrays = {k: np.concatenate(v) for k, v in self._held.items()}
                if self.several:
                    write_arrays(self.target, arrays)
                else:
                    write_array(self.target, next(iter(arrays.values())))
        except OSError as exc:
            raise OutputError(f"{self.target.name}: cannot write ({exc.strerror or exc})") from exc
        finally:
            self.abort()

    def abort(self) -> None:
        with signals.deferred():  # a second signal must not cut the cleanup short
            for tmp, fh in self._files.values():
                with contextlib.suppress(OSError):
                    fh.close()
                _unlink(tmp)
            self._files.clear()


def _finish(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
