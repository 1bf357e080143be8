"""Control of the BLAS thread pool NumPy uses, without extra dependencies.

The recurrence does one small matrix product per step. A multi-threaded BLAS pays
a thread hand-off on every such product, which costs more than the product itself
when matrices are small or cores are busy. rnninspect instead runs BLAS
single-threaded and splits the batch (N) across its own threads, one per core:
each thread's work between synchronisations is then a whole chunk, not one step.

Only OpenBLAS (NumPy's wheels bundle it) is controlled; elsewhere ``controlled()``
is False and the engine keeps to one thread of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator

_lock = threading.Lock()
_depth = [0, 0, 0]  # [nesting depth, thread count before the outermost entry, stopped]


@functools.cache
def _openblas() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    if not sys.platform.startswith("linux"):
        return None
    import numpy  # noqa: F401  (loads NumPy's BLAS, so it appears in the maps below)

    for path in _library_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "", "_64_"):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    return get, put
    return None


@functools.cache
def _shutdown() -> Callable[[], None] | None:
    """OpenBLAS's own stop of its threads (what its fork handler calls), if found."""
    if _openblas() is None:
        return None
    for path in _library_paths():
        with contextlib.suppress(OSError):
            stop = getattr(ctypes.CDLL(path), "blas_thread_shutdown_", None)
            if stop is not None:
                stop.restype = ctypes.c_int
                return stop  # type: ignore[no-any-return]
    return None


def _library_paths() -> list[str]:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            return sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", fh.read())))
    except OSError:
        return []


def _threads_now() -> int:
    """This process's threads, native ones included (0: not known)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def controlled() -> bool:
    """Can rnninspect set the BLAS thread count here?"""
    return _openblas() is not None


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """BLAS runs on the calling thread only, inside this block (re-entrant)."""
    found = _openblas()
    if found is None:
        yield
        return
    get, put = found
    stop = _shutdown()
    with _lock:
        if _depth[0] == 0:
            _depth[1] = get()
            before = _threads_now()
            put(1)
            # After a fork (the model loader forks its parse child) OpenBLAS has
            # no threads: its fork handler stopped them, and setting the count
            # starts them again, each spinning about 0.1 s (2^28 cycles) for work
            # that never comes while BLAS is single-threaded: on 2 cores, a third
            # busy thread beside the split's two. Measured on the T sweep (LSTM,
            # N=256, a model loaded before each T): T=100 at 1.9x the per-step
            # wall and CPU time of long runs. Those threads are stopped again at
            # once, and again after the count is restored on the way out: as the
            # fork left them, started by the next multi-threaded product as they
            # would have been. (Threads that were running are left alone.)
            _depth[2] = int(stop is not None and 0 < before < _threads_now())
            if stop is not None and _depth[2]:
                stop()
        _depth[0] += 1
    try:
        yield
    finally:
        with _lock:
            _depth[0] -= 1
            if _depth[0] == 0:
                put(_depth[1])
                if stop is not None and _depth[2]:
                    stop()
