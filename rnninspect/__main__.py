"""The ``rnninspect`` command, and ``python -m rnninspect``.

A command that loads a model forks the model parser's child process first thing,
once NumPy (which both processes use) is imported: the child then imports the
parsers (and h5py, if an argument names an HDF5 file: a .keras file's weights need
none) while this process imports Typer and reads its command line.
"""

from __future__ import annotations

import contextlib
import sys

from . import signals

_LOADING = frozenset(
    {"summary", "forward", "trace", "export", "plot", "diagnose", "explain", "verify", "diff"}
)
_HELP = frozenset({"--help", "-h"})


def main() -> None:
    # Before the fork, so the child starts with descriptors 0-2 taken and the
    # parent's signals already routed (the child then ignores them itself); the
    # collector is back on once the command runs (cli._run) and in the child
    # once it has imported the parsers (isolate._serve).
    signals.hold_collector()
    signals.standard_streams()
    signals.install()
    try:
        args = sys.argv[1:]
        ahead: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if not _HELP.intersection(args) and _LOADING.intersection(args):
            import numpy  # noqa: F401  (before the fork: imported once, for both)

            from .loaders import parser_started

            ahead = parser_started()
        with ahead:
            from .cli import main as run

            run()
    except signals.Terminated as exc:  # before the command started: nothing to clean
        signals.settle()
        raise SystemExit(signals.report(exc)) from None


if __name__ == "__main__":
    main()
