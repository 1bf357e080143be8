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
import re
import sys
import threading
from collections.abc import Callable, Iterator

_lock = threading.Lock()
_depth = [0, 0]  # [nesting depth, thread count before the outermost entry]


@functools.cache
def _openblas() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    if not sys.platform.startswith("linux"):
        return None
    import numpy  # noqa: F401  (loads NumPy's BLAS, so it appears in the maps below)

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", fh.read())))
    except OSError:
        return None
    for path in paths:
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
    with _lock:
        if _depth[0] == 0:
            _depth[1] = get()
            put(1)
        _depth[0] += 1
    try:
        yield
    finally:
        with _lock:
            _depth[0] -= 1
            if _depth[0] == 0:
                put(_depth[1])
