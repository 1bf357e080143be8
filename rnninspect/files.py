"""What a run may do with the files it is given, checked before it opens them.

* Identity: a file is known by (device, inode) after following symlinks, so two
  names for one file (a symlink, a hard link, ``./x`` and ``x``) are the same file.
* Kind: model and config files must be regular files. Opening a FIFO blocks until
  someone writes to it, and a device can be endless: neither is ever opened.
* Size: what is read whole into memory is read at most up to a cap (and one byte
  more, to tell "at the cap" from "over it"), whatever the file or stream claims.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # zipfile is imported where an archive is read, not at every start
    import zipfile

StrPath = str | Path

# A model config (JSON text) is at most this large, wherever it comes from (a
# --config file, a .keras member, an .npz __config__ entry, an HDF5 attribute).
MAX_CONFIG_BYTES = 16 << 20


def identity(path: StrPath) -> tuple[int, int] | None:
    """(st_dev, st_ino) of what ``path`` names (symlinks followed), or None when
    there is nothing there (or it cannot be looked at)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _where(path: StrPath) -> tuple[int, int] | str:
    """What ``path`` names, to compare: its identity when it exists, else the
    absolute name it would be created under (its directory's symlinks followed)."""
    found = identity(path)
    if found is not None:
        return found
    try:
        return os.path.join(
            os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path)
        )
    except (OSError, ValueError):
        return os.fspath(path)


def refuse_overwrite(writes: dict[str, StrPath | None], reads: dict[str, StrPath | None]) -> None:
    """A run never writes over a file it reads (its model, config, inputs, states),
    under any name (symlinks, hard links, ``./x``: the same device and inode), nor
    writes two outputs to one file: a usage error (exit 2) naming both, before any
    work. ``-`` (stdin, stdout) and options not given (None) are skipped."""
    from .errors import UsageError

    seen: dict[tuple[int, int] | str, str] = {}
    for what, path in writes.items():
        if path is None or str(path) == "-":
            continue
        mine = _where(path)
        if mine in seen:
            raise UsageError(
                f"{what} {path} is also {seen[mine]}: the same file; give each output its own"
            )
        seen[mine] = f"{what} {path}"
        for read, source in reads.items():
            if source is None or str(source) == "-":
                continue
            if identity(source) is not None and identity(source) == identity(path):
                raise UsageError(
                    f"{what} {path} is the {read} {source} (the same file): "
                    "refusing to write over a file this run reads"
                )


def stat_or_raise(
    path: StrPath, where: str, error: type[Exception], missing: str = "no such file"
) -> os.stat_result:
    """``os.stat(path)``, a failure raised as ``error`` naming ``where``: ``missing``
    when nothing is there, else the OS's reason (a name too long, a loop of
    symlinks, no permission on a directory, ...)."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"{where}: {missing}") from None
    except (OSError, ValueError) as exc:
        raise error(f"{where}: cannot read ({getattr(exc, 'strerror', None) or exc})") from exc


def kind(mode: int) -> str:
    """'a FIFO', 'a character device', ... for a file's ``st_mode``."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "not a regular file"


def allocated(st: os.stat_result) -> int:
    """Bytes a file really holds on disk: a sparse file claims more (``st_size``)
    than it stores (``st_blocks``); where blocks are not reported, its size."""
    blocks = getattr(st, "st_blocks", None)
    if blocks is None:
        return int(st.st_size)
    return min(int(st.st_size), int(blocks) * 512)


def read_capped(fh: BinaryIO, cap: int, prefix: bytes = b"") -> bytes | None:
    """Everything left in ``fh`` after ``prefix`` (already read from it), or None
    when there is more than ``cap`` bytes in all: at most ``cap + 1`` bytes are read,
    so an endless stream (``/dev/zero``) costs ``cap`` bytes of memory, not all."""
    buf = bytearray(prefix)
    while len(buf) <= cap:
        chunk = fh.read(min(1 << 20, cap + 1 - len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk
    return None


def mib(n: int) -> str:
    """``64 MiB`` for a byte count that is a whole number of MiB, else ``1,234 bytes``."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    return f"{n:,} bytes"


# zipfile's ZIP_STORED, ZIP_DEFLATED, ZIP_BZIP2 and ZIP_LZMA (the zip format's own
# method numbers), written out so this module does not import zipfile.
STORED, DEFLATED = 0, 8
SUPPORTED_COMPRESSION = (STORED, DEFLATED, 12, 14)
COMPRESSION_NAMES = {6: "Implode", 9: "Deflate64", 93: "Zstandard", 95: "XZ", 98: "PPMd"}
# Deflate produces at most about 1032 bytes from one: a member declaring more than
# that is lying about its size.
DEFLATE_MAX_RATIO = 1100


def member_problem(info: zipfile.ZipInfo, cap: int, archive_size: int | None = None) -> str | None:
    """What makes a zip member unreadable, or larger than ``cap`` bytes, judged from
    its directory entry alone (before anything is inflated); None when nothing."""
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.compress_type not in SUPPORTED_COMPRESSION:
        method = COMPRESSION_NAMES.get(info.compress_type, f"method {info.compress_type}")
        return f"is compressed with {method}, which Python's zipfile cannot read"
    if info.file_size > cap:
        return f"declares {info.file_size:,} bytes (more than {mib(cap)})"
    if archive_size is not None and info.compress_size > archive_size:
        return (
            f"declares {info.compress_size:,} stored bytes but the archive holds {archive_size:,}"
        )
    if info.compress_type == STORED and info.file_size != info.compress_size:
        return f"is stored as {info.compress_size:,} bytes but declares {info.file_size:,}"
    if (
        info.compress_type == DEFLATED
        and info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024
    ):
        return (
            f"declares {info.file_size:,} bytes from {info.compress_size:,} compressed, "
            "more than Deflate can produce"
        )
    return None
