"""Run a parser in a forked child process, with a time limit.

Used for model files: a corrupt HDF5 file can make the HDF5 C library spin forever
or crash the process, and neither can be caught in-process. The child sends back
its result (or the library error it raised) through a pipe. Only pickles between
this process and its own child are ever unpickled.

The CLI forks the child ahead of need (``prestart``): it imports the parser's
modules while the parent is still reading its command line, then waits for the
call to make, which ``call`` sends it.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from .. import signals
from ..errors import ModelError, RnnInspectError

R = TypeVar("R")


class _Spare(NamedTuple):
    """A prestarted child waiting for its call."""

    pid: int
    work: int  # write end: the call to make, pickled
    result: int  # read end: the child's answer


_spares: list[_Spare] = []  # at most one


def _forking() -> bool:
    return hasattr(os, "fork") and not os.environ.get("RNNINSPECT_NO_FORK")


def prestart(warm: Callable[[], object]) -> None:
    """Fork the next ``call``'s child now: it runs ``warm()`` (imports, say) while
    this process goes on. ``discard`` ends it if no call comes."""
    if _spares or not _forking():
        return
    work_read, work_write = os.pipe()
    result_read, result_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        signals.ignore_in_child()
        os.close(work_write)
        os.close(result_read)
        _serve(warm, work_read, result_write)
    os.close(work_read)
    os.close(result_write)
    _spares.append(_Spare(pid, work_write, result_read))


def discard() -> None:
    """End a prestarted child that was given no call."""
    while _spares:
        spare = _spares.pop()
        os.close(spare.work)
        os.close(spare.result)
        _kill(spare.pid)


def call(
    fn: Callable[..., R],
    args: tuple[Any, ...],
    seconds: float,
    where: str,
    meanwhile: Callable[[], object] | None = None,
) -> R:
    """``fn(*args)``, in a child process when possible (``fn`` and ``args`` must
    pickle, for a prestarted child). ``meanwhile()`` runs in this process while
    the child works (or first, without a child)."""
    if not _forking():
        if meanwhile is not None:
            meanwhile()
        return fn(*args)
    spare = _spares.pop() if _spares else None
    if spare is None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            signals.ignore_in_child()
            os.close(read_end)
            _outlive_nothing(seconds)
            _child(lambda: fn(*args), write_end, where)
        os.close(write_end)
    else:
        pid, read_end = spare.pid, spare.result
    deadline = time.monotonic() + seconds
    try:
        if spare is not None:
            try:
                # A child that died warming up reads nothing: it is reported below,
                # as any crashed child is.
                with contextlib.suppress(OSError):
                    _write_all(spare.work, pickle.dumps((fn, args, where, seconds)))
            finally:
                os.close(spare.work)
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
    if not data and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
        # The child's own time limit (see _outlive_nothing) ended it first.
        raise ModelError(
            f"{where}: parsing did not finish in {seconds:.0f} s; the file looks corrupt"
        )
    if not data:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else "no result"
        raise ModelError(f"{where}: the file crashed the HDF5/zip parser ({how}); it is corrupt")
    try:
        kind, value = pickle.loads(data)
    except Exception as exc:  # the file made something that does not survive the trip
        raise ModelError(f"{where}: unreadable model file ({type(exc).__name__}: {exc})") from exc
    if kind == "err":
        raise value
    return value  # type: ignore[no-any-return]


def _serve(warm: Callable[[], object], work: int, result: int) -> None:
    """A prestarted child: warm up, then make the one call the parent sends."""
    gc.freeze()  # see _child
    try:
        # A failing import fails again, and is reported, where the call needs it.
        with contextlib.suppress(Exception):
            warm()
        # The parent may have started with the collector held (signals.
        # hold_collector): the imports are done, the parse gets it back.
        signals.release_collector()
        chunks = []
        while chunk := os.read(work, 1 << 16):
            chunks.append(chunk)
        if not chunks:  # discarded
            os._exit(0)
        fn, args, where, seconds = pickle.loads(b"".join(chunks))
        _outlive_nothing(seconds)
    except BaseException:
        os._exit(1)
    _child(lambda: fn(*args), result, where)


def _outlive_nothing(seconds: float) -> None:
    """The child ends itself (SIGALRM, whose default action ends a process) well
    after the parent's time limit, so it cannot spin on a file for ever even if the
    parent was killed (SIGKILL) without ending it. (Well after: on a loaded machine
    the parent may wake late; its own limit is the one that counts.)"""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    if math.isfinite(seconds):
        signal.alarm(min(max(1, math.ceil(seconds * ALARM_FACTOR) + ALARM_SLACK), 1 << 30))


ALARM_FACTOR = 1.5
ALARM_SLACK = 10


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
        _write_all(fd, data)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int, deadline: float) -> bytes | None:
    """Everything the child writes, or None if the deadline passes first."""
    chunks: list[bytes] = []
    # poll, not select: select() refuses descriptors numbered 1024 and up, which a
    # process with many files open (a server, a long test run) hands out.
    waiting = select.poll()
    waiting.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if not waiting.poll(min(left, 1.0) * 1000):
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
