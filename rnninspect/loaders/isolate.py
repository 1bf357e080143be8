"""Run a parser in a forked child process, with a time limit.

Used for model files: a corrupt HDF5 file can make the HDF5 C library spin forever
or crash the process, and neither can be caught in-process. The child sends back
its result (or the library error it raised) through a pipe; our own child's pickle
is the only thing ever unpickled.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import ModelError, RnnInspectError

R = TypeVar("R")


def call(
    fn: Callable[[], R],
    seconds: float,
    where: str,
    meanwhile: Callable[[], object] | None = None,
) -> R:
    """``fn()``, in a child process when possible. ``meanwhile()`` runs in this
    process while the child works (or first, without a child)."""
    if not hasattr(os, "fork") or os.environ.get("RNNINSPECT_NO_FORK"):
        if meanwhile is not None:
            meanwhile()
        return fn()
    read_end, write_end = os.pipe()
    deadline = time.monotonic() + seconds
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(fn, write_end, where)
    os.close(write_end)
    try:
        if meanwhile is not None:
            meanwhile()
        data = _read_all(read_end, deadline)
    except BaseException:  # e.g. Ctrl-C while waiting: leave no child behind
        _kill(pid)
        raise
    finally:
        os.close(read_end)
    if data is None:
        _kill(pid)
        raise ModelError(
            f"{where}: parsing did not finish in {seconds:.0f} s; the file looks corrupt"
        )
    _, status = os.waitpid(pid, 0)
    if not data:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else "no result"
        raise ModelError(f"{where}: the file crashed the HDF5/zip parser ({how}); it is corrupt")
    kind, value = pickle.loads(data)
    if kind == "err":
        raise value
    return value  # type: ignore[no-any-return]


def _child(fn: Callable[[], object], fd: int, where: str) -> None:
    # Keep the garbage collector off the objects inherited from the parent: walking
    # them would copy every page they sit on (copy-on-write) for nothing.
    gc.freeze()
    code = 0
    try:
        try:
            result: tuple[str, object] = ("ok", fn())
        except RnnInspectError as exc:
            result = ("err", exc)
        except BaseException as exc:
            result = (
                "err",
                ModelError(f"{where}: unreadable model file ({type(exc).__name__}: {exc})"),
            )
        try:
            data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            data = pickle.dumps(("err", ModelError(f"{where}: unreadable model file ({exc})")))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _read_all(fd: int, deadline: float) -> bytes | None:
    """Everything the child writes, or None if the deadline passes first."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
