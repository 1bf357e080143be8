"""The process's own set-up, done once by the command before anything else."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys


class _ClosedStream(io.TextIOBase):
    """stdout when the process was started with it closed (``>&-``): writing to it
    fails as writing to a closed descriptor does."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    def isatty(self) -> bool:
        return False


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
