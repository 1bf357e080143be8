"""The library's exception tree.

The library raises only these; the CLI turns each into one line on stderr and the
exit code named here (``ExitCode``), in one place (``cli.py``).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes, the contract for shell scripts (documented in the README)."""

    OK = 0
    USAGE = 2
    MODEL = 3
    INPUT = 4
    OUTPUT = 5
    DIFFERENT = 6  # compared, and found different (verify, diff)
    CLUSTER = 7  # the Dask scheduler unreachable, without workers, or lost (--scheduler)
    INTERRUPTED = 130


class RnnInspectError(Exception):
    """Base of every error rnninspect raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(RnnInspectError):
    """A bad option or argument combination."""

    exit_code = ExitCode.USAGE


class ModelError(RnnInspectError):
    """A model file that is unreadable, inconsistent or unsupported."""

    exit_code = ExitCode.MODEL


class UnsupportedLayerError(ModelError):
    """A layer class rnninspect does not compute (or refuses to, like Lambda)."""


class InputArrayError(RnnInspectError):
    """An input array that is unreadable or does not fit the model."""

    exit_code = ExitCode.INPUT


class OutputError(RnnInspectError):
    """An output that cannot be written."""

    exit_code = ExitCode.OUTPUT


class DifferenceFoundError(RnnInspectError):
    """A comparison ran and found a difference (``verify``, ``diff``): not a failure
    to run, a verdict. The CLI prints its report first, then exits 6."""

    exit_code = ExitCode.DIFFERENT


class ClusterError(RnnInspectError):
    """The Dask cluster (``--scheduler``) cannot be reached, has no workers, or was
    lost during the run: neither the model's fault nor the input's, and often worth
    a retry."""

    exit_code = ExitCode.CLUSTER
