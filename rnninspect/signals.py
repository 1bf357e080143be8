"""The process's own set-up, done once by the command before anything else: its
standard streams (``standard_streams``), its garbage collector while it starts
(``hold_collector``) and termination signals (SIGTERM, SIGHUP, SIGINT), a clean way
out of every command. (One module: each module the command imports at start costs
start-up time.)

The command (``install``) turns each into a ``Terminated`` exception raised in the
main thread, so every ``finally`` on the way out runs: temporary files are removed
and the parse child is ended. The CLI then prints one line and exits with
128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).

Code that must not be cut in two (creating a temporary file and recording it for
cleanup; renaming it into place) runs inside ``deferred()``: a signal arriving
there is raised when the block ends. Once one signal has been raised, later ones
are ignored, so a second Ctrl-C cannot cut the cleanup short (SIGKILL still ends
the process at once). A signal the caller ignores (``nohup``, a background job's
SIGINT) stays ignored.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

_state: dict[str, int | None] = {"depth": 0, "pending": None, "raised": None}


class Terminated(BaseException):
    """A termination signal arrived (a BaseException, as KeyboardInterrupt is: no
    ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state["raised"] is not None:
        return  # already on the way out: let the cleanup finish
    if _state["depth"]:
        _state["pending"] = _state["pending"] or signum
        return
    _state["raised"] = signum
    raise Terminated(signum)


def install() -> None:
    """Route the termination signals through ``Terminated`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        with contextlib.suppress(OSError, ValueError):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, _handler)


def settle() -> None:
    """The run is over (its exit code is decided): signals arriving from now on
    change nothing and raise nothing."""
    if _state["raised"] is None:
        _state["raised"] = 0


def reset() -> None:
    """Back to a fresh state (tests run several commands in one process)."""
    _state.update(depth=0, pending=None, raised=None)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A block no termination signal interrupts: one arriving inside is raised
    (as ``Terminated``) when the outermost such block ends."""
    _state["depth"] = (_state["depth"] or 0) + 1
    try:
        yield
    finally:
        _state["depth"] = (_state["depth"] or 1) - 1
        pending = _state["pending"]
        if not _state["depth"] and pending is not None and _state["raised"] is None:
            _state["pending"] = None
            _state["raised"] = pending
            raise Terminated(pending)


def report(exc: Terminated) -> int:
    """One line on stderr for a termination signal; returns its exit code. Ctrl-C
    says "interrupted", as it always has."""
    if exc.signum == signal.SIGINT:
        line = "rnninspect: error: interrupted\n"
    else:
        line = f"rnninspect: terminated ({exc.name})\n"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(line)
        sys.stderr.flush()
    return exc.exit_code


def ignore_in_child() -> None:
    """In a forked child: termination signals are the parent's business (it ends
    the child itself); a terminal's Ctrl-C reaches the whole process group. No
    fault handler either."""
    for signum in HANDLED:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(signum, signal.SIG_IGN)
    _state.update(depth=0, pending=None, raised=None)
    # A crash in the HDF5 library is reported by the parent in one line; a Python
    # fault handler (PYTHONFAULTHANDLER, pytest) would add the child's traceback.
    import faulthandler  # here: the command itself never needs it

    faulthandler.disable()


class _ClosedStream(io.TextIOBase):
    """stdout when the process was started with it closed (``>&-``): writing to it
    fails as writing to a closed descriptor does."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    def isatty(self) -> bool:
        return False


_collector_held = [False]


def hold_collector() -> None:
    """The garbage collector off while the command starts. What a start creates,
    modules, classes and functions, lives as long as the process: each collection
    the imports set off walks all of it again and frees nothing (measured: 10 ms of
    CPU time, 3 ms of wall time, of a ``forward`` on the seed model).
    ``release_collector`` turns it back on for the command itself."""
    if gc.isenabled():
        gc.disable()
        _collector_held[0] = True


def release_collector() -> None:
    """The collector back on (if ``hold_collector`` turned it off), with what exists
    now frozen out of its walks: later collections walk only what the command
    itself creates."""
    if _collector_held[0]:
        _collector_held[0] = False
        gc.freeze()
        gc.enable()


def standard_streams() -> None:
    """Descriptors 0-2 always open (on /dev/null when the caller closed them), so no
    file this run opens can take their numbers and receive what is meant for them."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_RDWR)
                if devnull != fd:
                    os.dup2(devnull, fd)
                    os.close(devnull)
    if sys.stdout is None:
        sys.stdout = _ClosedStream()
    else:
        # Text that cannot be encoded (a name that was never text) is escaped on
        # stdout as Python escapes it on stderr, never an error.
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (for the process's lifetime)
