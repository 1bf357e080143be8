"""The forward pass in pure NumPy: a walk over the model's graph, batched over N;
the only Python loops are over T (inside the recurrent layers).

Notation: N samples, T steps, D input features, M hidden units, K outputs.
Row-vector convention, as Keras stores weights: ``y = x @ W + b``.

The model's nodes are in topological order (``build`` sorted them once). Running
walks that order with a map of tensors and their masks (Keras's Functional model
does the same) and drops each tensor after its last use. The layer families live in
``ops``: one module each, written as the definitions Keras computes.

The engine trusts its inputs: shapes were checked when the model was loaded
(``build``) and when the input was read (``inputs.conform``).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import mmap
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import activations, blas
from .errors import InputArrayError, UsageError
from .inputs import check_rows, conform
from .model import (
    Activation,
    Array,
    Bidirectional,
    Dense,
    Embedding,
    InputLayer,
    Layer,
    Masking,
    Model,
    Node,
    Passthrough,
    Recurrent,
    Ref,
    StackedRNN,
    TimeDistributed,
)
from .ops.recurrent import Float, scan
from .versions import keras_major

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor


@dataclass(eq=False)  # holds arrays (== would raise); each generated method costs start-up
class RunResult:
    outputs: list[Array]  # the model's outputs, in Keras's order
    states: dict[str, Array] = field(default_factory=dict)  # trace entries, (N, T, M)
    nonfinite_at: tuple[int, ...] | None = None  # first NaN/Inf in the input, (n, t, d)

    @property
    def output(self) -> Array:
        if len(self.outputs) != 1:
            raise ValueError(f"the model has {len(self.outputs)} outputs: use Model.forward_all")
        return self.outputs[0]


@dataclass(repr=False, eq=False)  # internal, holds arrays: each generated method costs start-up
class _Ctx:
    ft: Float  # compute dtype
    major: int  # Keras generation (hard_sigmoid differs)
    states: dict[str, Array] | None  # where trace entries go, when tracing
    gates: bool  # also record gate activations
    outputs_of: frozenset[str] = frozenset()  # node keys whose outputs trace records
    mask_of: str | None = None  # a node whose input mask to record (``masks_at``)
    masks: dict[str, Array | None] = field(default_factory=dict)


CHUNK_BYTES = 48 << 20  # working memory per chunk of samples
MIN_CHUNK_ROWS = 16


def _elements(shape: Sequence[int | None], T: int) -> int:
    return math.prod(T if d is None else int(d) for d in shape)


def chunk_rows(
    model: Model,
    T: int,
    D: int,
    itemsize: int,
    collect: bool,
    gates: bool,
    input_copies: int = 3,
) -> int:
    """Samples per chunk: as many as fit in ``CHUNK_BYTES`` of activations, so memory
    stays bounded however large N is and products are as large as that allows.
    ``input_copies``: copies of the input a chunk makes (``_input_copies``); an
    input used in place costs nothing more, however long its sequences."""
    # Per sample: the input copies, every tensor a node makes (kept until its last
    # use; all recurrent sequences kept when tracing, with cell states and gates)
    # and the per-step scratch of a recurrent layer (the gates, a few (N, M) buffers).
    per_row = input_copies * T * D
    for node in model.nodes[len(model.inputs) :]:
        for shape in node.output_shapes:
            per_row += _elements(shape, T)
        if collect and _is_recurrent(node.layer):
            width = node.output_shapes[0][-1] or 1
            per_row += T * int(width) * (8 if gates else 6)
    scratch = 0
    for layer in model.layers:
        for _, w in layer.weights():
            scratch = max(scratch, 2 * int(w.shape[-1]) if w.ndim else 0)
    return max(MIN_CHUNK_ROWS, CHUNK_BYTES // max(1, (per_row + scratch) * itemsize))


STEP_BYTES = 3 << 20  # a thread's per-step working set (measured: see cache_rows)
MIN_CACHE_ROWS = 128  # below this, products get too thin to be worth the split


def cache_rows(model: Model, itemsize: int) -> int:
    """Samples per part of a chunk split across threads: as many as keep the
    per-step working set of the widest recurrent layer (its gates, the stacked
    operand [x_t; 1; h] and a few (M,) states and buffers, all reused every step)
    in ``STEP_BYTES``. Larger parts spill the step's elementwise passes out of
    cache: measured (LSTM, 2 cores, 1 MiB of L2 each), at N=16384, M=64, 25% more
    CPU time per sample with parts of 8192 rows than of 512-1024 (2048: 13% more);
    at N=1024, M=128 parts of 128 to 512 rows cost the same CPU time, and fewer
    parts make fewer NumPy calls (each takes the GIL): 3 MiB gives 1170 and 512."""
    widest = 0
    for node in model.nodes:
        for cell in _cells(node.layer):
            M = cell.units
            widest = max(widest, cell.GATES * M + int(cell.kernel.shape[0]) + 1 + 5 * M)
    if widest == 0:
        return 1 << 62
    return max(MIN_CACHE_ROWS, STEP_BYTES // (widest * itemsize))


def _mapped(x: Array) -> bool:
    """Is ``x`` (a view of) a memory-mapped file?"""
    found: Any = x
    while found is not None:
        if isinstance(found, (np.memmap, mmap.mmap)):
            return True
        found = getattr(found, "base", None)
    return False


def _input_copies(xs: Sequence[Array], ft: Float) -> int:
    """Copies of its input a chunk holds, per sample: out of a memory map, the
    pages read (resident until ``_release`` drops them), the copy and a converted
    copy (3, measured: 2 GiB in, 123 MiB resident); one into the compute dtype
    otherwise, and one for rows read as they are needed (``batches.Rows``). An
    in-memory input of that dtype is used in place, a read-only view."""
    copies = 0
    for a in xs:
        converted = int(a.dtype.kind in "fb" and a.dtype != ft)
        if _mapped(a):
            mine = 3
        elif hasattr(a, "read"):  # batches.Rows (a file read, --random drawn): each
            mine = 1 + converted  # chunk is a fresh array, never the input in place
        else:
            mine = converted
        copies = max(copies, mine)
    return copies


def _rows_of(a: Array, start: int, stop: int, copy: bool) -> Array:
    """Rows ``start:stop`` of an input: a copy out of a memory map, else a view
    that nothing downstream may write to (no layer writes into its input)."""
    if copy:
        return np.array(a[start:stop])
    view = a[start:stop]
    view.flags.writeable = False
    return view


def _first_nonfinite(x: Array) -> tuple[int, ...] | None:
    """Where float ``x`` first holds a NaN or an infinity, or None. One summing
    pass answers for nearly every input: a NaN or an infinity makes the sum NaN or
    infinite, so a finite sum means none. Only a non-finite sum (or one that
    overflowed from large finite values) takes the exact look, which allocates a
    mask of x's size (``~np.isfinite(x)``: the plain check, kept for that case)."""
    if x.size == 0:
        return None
    with np.errstate(all="ignore"):
        # The sum in x's own type, native byte order (ufuncs refuse '>f4' as dtype);
        # the ufunc's reduce and math.isfinite, not np.sum and np.isfinite: their
        # Python layers cost more than the sum of a small batch.
        if math.isfinite(np.add.reduce(x, axis=None, dtype=x.dtype.newbyteorder("="))):
            return None
    bad = np.argwhere(~np.isfinite(x))
    return tuple(int(i) for i in bad[0]) if len(bad) else None


def _is_recurrent(layer: Layer) -> bool:
    from .model import is_recurrent

    return is_recurrent(layer)


def as_inputs(model: Model, x: Any) -> list[Any]:
    """The model's inputs from one array, a list in Keras's order, or a dict by
    input name."""
    names = [i.name for i in model.inputs]
    if isinstance(x, Mapping):
        missing = [n for n in names if n not in x]
        extra = [k for k in x if k not in names]
        if missing or extra:
            raise InputArrayError(
                f"inputs by name: missing {', '.join(missing) or 'none'}, unknown "
                f"{', '.join(map(str, extra)) or 'none'} (the model takes {', '.join(names)})"
            )
        return [x[n] for n in names]
    if (
        isinstance(x, (list, tuple))
        and len(names) == 1
        and len(x) == 1
        and (isinstance(x[0], np.ndarray) or hasattr(x[0], "read"))  # an array or batches.Rows
    ):
        return [x[0]]  # one array per input, for a one-input model
    several = (
        isinstance(x, (list, tuple))
        and len(x) > 1
        and all(isinstance(v, np.ndarray) or hasattr(v, "read") for v in x)
    )  # a list of arrays is one array per input (as Keras reads it), not nested data
    if isinstance(x, (list, tuple)) and (len(names) > 1 or several):
        if len(x) != len(names):
            raise InputArrayError(
                f"{len(x)} input array(s) given; the model takes {len(names)} ({', '.join(names)})"
            )
        return list(x)
    if len(names) > 1:
        raise InputArrayError(
            f"the model takes {len(names)} inputs ({', '.join(names)}): give a list or a dict"
        )
    return [x]


def plan(
    model: Model,
    N: int,
    T: int,
    D: int,
    ft: Float,
    collect: bool = False,
    gates: bool = False,
    copies: int = 0,
    rows: int | None = None,
) -> tuple[int, int]:
    """``(rows, threads)``: samples per chunk, and the threads a chunk is split
    across (1: BLAS keeps its own threads). Whether the split pays is a matter of
    what one step costs a thread (``_split_pays``), never of T: T only bounds the
    chunk through the copies of the input a chunk makes (``chunk_rows``)."""
    if not blas.controlled() or _in_pool():
        workers = 1
    elif N < 2 * MIN_ROWS_PER_WORKER:
        # Too few rows for any split to pay (_split_pays): the thread count (an
        # affinity call and three environment reads) is not needed, only our own
        # setting checked. A small batch asks every call: 3 us of about 50.
        _own_thread_setting()
        workers = 1
    else:
        workers = _threads()
    # Chunks hold at least MIN_CHUNK_ROWS samples: a batch that small is one chunk,
    # whatever its sizes (chunk_rows is not worth computing for it).
    if rows is None and N <= MIN_CHUNK_ROWS:
        rows = N
    step = rows or chunk_rows(model, T, D, ft.itemsize, collect, gates, copies) * workers
    if step < N and _time_major(model):
        step = max(N, 1)  # axis 0 is a time_major layer's time: one chunk
    # Split the batch across threads (BLAS single-threaded) only when it pays;
    # otherwise BLAS keeps its own threads.
    if workers > 1 and not _split_pays(model, min(N, step) // workers):
        workers = 1
    return step, workers


def iter_chunks(
    model: Model,
    x: Any,
    dtype: str = "float32",
    collect: bool = False,
    gates: bool = False,
    where: str = "input",
    rows: int | None = None,
    outputs_of: frozenset[str] = frozenset(),
) -> Iterator[tuple[int, int, RunResult]]:
    """Run ``model`` over ``x`` (one array, or one per input) a chunk of samples at
    a time, yielding ``(start, stop, result)``: memory stays bounded for any N, and
    a memory-mapped input is read once, chunk by chunk."""
    many = len(model.inputs) > 1
    xs = [
        conform(model, a, f"{where} {model.inputs[i].name!r}" if many else where, index=i)
        for i, a in enumerate(as_inputs(model, x))
    ]
    N = xs[0].shape[0]
    if any(a.shape[0] != N for a in xs):
        raise InputArrayError(
            f"{where}: the inputs hold different numbers of samples "
            f"({', '.join(str(a.shape[0]) for a in xs)})"
        )
    T = max(int(a.shape[1]) if a.ndim > 1 else 1 for a in xs)
    ft = np.dtype(dtype)
    D = sum(math.prod(a.shape[2:]) or 1 for a in xs)
    step, workers = plan(model, N, T, D, ft, collect, gates, _input_copies(xs, ft), rows)
    pool = _shared_pool(workers) if workers > 1 else None
    with blas.single_threaded() if workers > 1 else contextlib.nullcontext():
        for start in range(0, N, step):
            stop = min(N, start + step)
            chunk = []
            for i, a in enumerate(xs):
                rows_in = _rows_of(a, start, stop, copy=_mapped(a))
                _release(a, stop)
                chunk.append(check_rows(model, rows_in, where, start, index=i))
            # The NaN/Inf scan runs on a pool thread beside the chunk's first
            # part (the pool hands out the rest as threads come free).
            floats = [r for r in chunk if r.dtype.kind == "f"]
            scans = [pool.submit(_first_nonfinite, r) for r in floats] if pool else None
            result = _run_parallel(model, chunk, ft, collect, gates, pool, workers, outputs_of)
            found = [f.result() for f in scans] if scans else map(_first_nonfinite, floats)
            for at in found:
                if at is not None:
                    result.nonfinite_at = (start + at[0], *at[1:])
                    break
            yield start, stop, result


_POOL_NAME = "rnninspect-split"
_pool_lock = threading.Lock()
_pool: dict[tuple[int, tuple[int, ...]], ThreadPoolExecutor] = {}  # at most one entry


def _shared_pool(workers: int) -> ThreadPoolExecutor:
    """The threads a batch is split across, started on first need and kept for the
    process (the next call with as many threads reuses them). A pool per call paid,
    every call, thread start-up (and each new thread's first BLAS call setting up its
    buffers) and the join: measured 0.5-0.7 ms of CPU per call on a busy 2-core
    machine against 0.17 ms with kept threads.

    With a thread for every usable core, thread k runs on core k (``_pin``)."""
    cpus = tuple(sorted(_usable_cpus()))
    with _pool_lock:
        pool = _pool.get((workers, cpus))
        if pool is None:
            for old in _pool.values():  # another thread count or CPU set: replaced
                old.shutdown(wait=False)
            _pool.clear()
            spread = list(cpus) if len(cpus) == workers else []
            # Imported here: it brings logging and more, and a small batch has no pool.
            from concurrent.futures import ThreadPoolExecutor

            pool = _pool[workers, cpus] = ThreadPoolExecutor(
                workers,
                thread_name_prefix=_POOL_NAME,
                initializer=_pin,
                initargs=(spread, itertools.count()),
            )
        return pool


def _pin(cpus: list[int], started: Iterator[int]) -> None:
    """(On a pool thread, at its start.) Take the next core of ``cpus`` (none: stay
    where the scheduler puts it). The split's threads hand the GIL to each other
    many times a step, and each hand-off is a wake-up the kernel tends to place on
    the waker's own core: measured (LSTM, N=256, 2 cores), unpinned threads shared
    one core for most steps of a call, T = 300 ran at the CPU time of one thread
    (wall 1.8x the per-step cost of a long run) and kept threads stayed packed
    from call to call. A pinned thread still shares its core with whatever else
    runs there; the parts are handed out as threads come free either way."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return
    k = next(started)  # this pool's threads, counted as they start (atomic)
    with contextlib.suppress(OSError):  # a CPU set changed meanwhile: unpinned
        os.sched_setaffinity(0, {cpus[k % len(cpus)]})  # 0: this thread (Linux)


def _forget_pool() -> None:
    """In a forked child: the parent's threads do not exist there."""
    global _pool_lock
    _pool_lock = threading.Lock()
    _pool.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _in_pool() -> bool:
    """Is this one of the pool's threads? A part run there does not split again: its
    thread would wait on parts queued behind it (every thread waiting: no progress)."""
    return threading.current_thread().name.startswith(_POOL_NAME)


def _usable_cpus() -> set[int]:
    """The CPUs this process may run on (``taskset``, container CPU sets), which
    can be fewer than the machine has; empty when the platform does not say."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return set()


def _cores() -> int:
    """The cores this process may run on: a thread per core beyond them only queues."""
    return len(_usable_cpus()) or os.cpu_count() or 1


def _threads() -> int:
    """Threads to split a batch across: one per usable core, unless limited by
    ``RNNINSPECT_THREADS`` or, as for any NumPy program, ``OPENBLAS_NUM_THREADS`` /
    ``OMP_NUM_THREADS`` (what people set when running many processes side by side;
    more threads than free cores make every step wait its turn)."""
    limit = _thread_limit()
    return _cores() if limit is None else min(limit, _cores())


def _thread_limit() -> int | None:
    """The thread count the environment asks for (see ``_threads``), or None. A bad
    RNNINSPECT_THREADS is a usage error, whatever the batch."""
    own = _own_thread_setting()
    if own is not None:
        return own
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isascii() and value.isdigit() and len(value) < 19 and int(value) > 0:
            return int(value)
    return None


def _own_thread_setting() -> int | None:
    """RNNINSPECT_THREADS, checked (a usage error if it is not a positive whole
    number), or None when it is not set."""
    own = os.environ.get("RNNINSPECT_THREADS", "").strip()
    if not own:
        return None
    if not (own.isascii() and own.isdigit() and len(own) < 19) or int(own) < 1:
        raise UsageError(f"RNNINSPECT_THREADS must be a positive whole number, got {own!r}")
    return int(own)


MIN_ROWS_PER_WORKER = 8
# A thread's share of a step's work, per NumPy call the step makes, above which
# splitting the batch across threads beats BLAS's own threads. The threads take
# turns at the Python side of each step (the GIL); their products and elementwise
# passes run in parallel (with BLAS's threads, the passes run on one core).
# Work is counted in multiply-adds; a step's elementwise passes count
# ELEMENTWISE per gate unit (tanh costs about 18 multiply-adds an element, a
# multiply or add about 5). Measured on 2 cores: SimpleRNN/LSTM/GRU, N 8..40000,
# M 16..256, D 8..1024.
SPLIT_WORK = 100_000
ELEMENTWISE = 40
_STEP_CALLS = {1: 8, 3: 18, 4: 18}  # NumPy calls per step (scan's included), by gate count


def _cells(layer: Layer) -> list[Recurrent]:
    if isinstance(layer, TimeDistributed):
        return _cells(layer.layer)
    if isinstance(layer, Bidirectional):
        return [layer.forward, layer.backward]
    if isinstance(layer, StackedRNN):
        return list(layer.cells)
    return [layer] if isinstance(layer, Recurrent) else []


def _time_major(model: Model) -> bool:
    """Has the model a (tf.keras) time_major layer, for which axis 0 is time?"""
    return any(getattr(cell, "time_major", False) for n in model.nodes for cell in _cells(n.layer))


def _split_pays(model: Model, rows_per_worker: int) -> bool:
    """Is a batch split into ``rows_per_worker`` rows per thread faster than one?"""
    if rows_per_worker < MIN_ROWS_PER_WORKER:
        return False  # (answered before walking the model: small batches ask every call)
    if _time_major(model):
        return False  # axis 0 is time for a time_major layer: it cannot be split
    work = calls = 0
    for node in model.nodes:
        for cell in _cells(node.layer):
            gM = cell.GATES * cell.units
            work += gM * (int(cell.kernel.shape[0]) + 1 + cell.units + ELEMENTWISE)  # a row's step
            calls += _STEP_CALLS.get(cell.GATES, 18)
    return rows_per_worker * work >= SPLIT_WORK * calls


def part_bounds(model: Model, n: int, workers: int, itemsize: int) -> list[int]:
    """Where a chunk of ``n`` rows split across ``workers`` threads is cut: [0, n]
    when it is not split (the last chunk may be too small for the split to pay)."""
    parts = workers if workers > 1 and _split_pays(model, n // workers) else 1
    if parts < 2:
        return [0, n]
    # Cache-sized parts, more of them than threads when the chunk is large (a
    # multiple of the threads, so each gets as many): the pool hands them out as
    # threads come free, which also evens out threads slowed by other processes.
    parts *= -(-n // (parts * cache_rows(model, itemsize)))
    return [int(b) for b in np.linspace(0, n, parts + 1).astype(int)]


def _run_parallel(
    model: Model,
    xs: list[Array],
    ft: Float,
    collect: bool,
    gates: bool,
    pool: ThreadPoolExecutor | None,
    workers: int,
    outputs_of: frozenset[str] = frozenset(),
) -> RunResult:
    """The rows split across threads (NumPy releases the GIL in its kernels)."""
    if pool is None:  # (part_bounds walks the model: not asked without a pool)
        return _run_rows(model, xs, ft, collect, gates, outputs_of)
    bounds = part_bounds(model, len(xs[0]), workers, ft.itemsize)
    if len(bounds) < 3:
        return _run_rows(model, xs, ft, collect, gates, outputs_of)
    futures = [
        pool.submit(_run_rows, model, [x[a:b] for x in xs], ft, collect, gates, outputs_of)
        for a, b in itertools.pairwise(bounds)
    ]
    try:
        return _concat([f.result() for f in futures])
    finally:
        for f in futures:  # a part failed or the wait was interrupted: the rest unstarted
            f.cancel()


def _concat(results: list[RunResult]) -> RunResult:
    if len(results) == 1:
        return results[0]
    first = results[0]
    outputs = [np.concatenate([r.outputs[i] for r in results]) for i in range(len(first.outputs))]
    states = {k: np.concatenate([r.states[k] for r in results]) for k in first.states}
    return RunResult(outputs=outputs, states=states)


def run(
    model: Model,
    x: Any,
    dtype: str = "float32",
    collect: bool = False,
    gates: bool = False,
    outputs_of: frozenset[str] = frozenset(),
) -> RunResult:
    """Run ``model`` on a batch ``x``: (N, T, D) floats or (N, T) ids, or one such
    array per input (a list in Keras's order or a dict by input name).

    ``collect``: also return every recurrent layer's full output sequence, as Keras
    returns it with ``return_sequences=True`` (processing order for go_backwards),
    plus LSTM cell states, Bidirectional directions and (``gates``) gate activations.
    ``outputs_of``: node keys whose outputs to record too (``trace --layer`` on a
    layer without states).
    """
    chunks = iter_chunks(model, x, dtype, collect, gates, outputs_of=outputs_of)
    return _concat([result for _, _, result in chunks])


def _release(x: Array, stop_row: int) -> None:
    """Drop the pages of a memory-mapped input up to ``stop_row`` from our resident
    memory (they are clean file pages: the kernel can re-read them if needed)."""
    found: Any = x
    while found is not None and type(found) is not np.memmap:
        found = getattr(found, "base", None)
    mm: Any = getattr(found, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    base: Any = found
    start = int(base.ctypes.data) - (int(getattr(base, "offset", 0)) % mmap.ALLOCATIONGRANULARITY)
    end = x[:stop_row].ctypes.data + x[:stop_row].nbytes if stop_row else x.ctypes.data
    length = (end - start) // mmap.PAGESIZE * mmap.PAGESIZE
    if length > 0:
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap.MADV_DONTNEED, 0, length)


def conform_rows(model: Model, x: Any) -> list[Array]:
    """``x`` checked (shape, dtype and values) and ready for ``_run_rows``."""
    return [
        check_rows(model, conform(model, a, "input", index=i), "input", index=i)
        for i, a in enumerate(as_inputs(model, x))
    ]


def _run_rows(
    model: Model,
    xs: list[Array],
    ft: Float,
    collect: bool,
    gates: bool,
    outputs_of: frozenset[str] = frozenset(),
) -> RunResult:
    """Walk the graph once over these rows (every input holds the same samples)."""
    major = keras_major(model.source.keras_version)
    ctx = _Ctx(ft, major, {} if collect or outputs_of else None, gates, outputs_of)
    return RunResult(outputs=_walk(model, xs, ctx), states=ctx.states or {})


def _walk(model: Model, xs: list[Array], ctx: _Ctx) -> list[Array]:
    """The nodes in order, each tensor dropped after its last use; the outputs.
    Tensors are keyed by ``(node, index)`` tuples, not ``Ref``s: a frozen
    dataclass hashes in Python, and a small batch's walk hashes a few dozen times."""
    ft = ctx.ft
    outputs_of = ctx.outputs_of
    uses = _uses(model)
    left = dict(uses)
    values: dict[tuple[int, int], Array] = {}
    masks: dict[tuple[int, int], Array | None] = {}
    position = {id(layer): k for k, layer in enumerate(model.inputs)}
    # NaN/Inf in inputs or weights flow through as Keras lets them (callers warn
    # where they are); NumPy's own floating-point warnings would only be noise.
    with np.errstate(all="ignore"):
        for i, node in enumerate(model.nodes):
            if isinstance(node.layer, InputLayer):
                x = xs[position[id(node.layer)]]
                outs = [x if x.dtype.kind in "iu" else x.astype(ft, copy=False)]
                out_masks: list[Array | None] = [None]
            else:
                reads = [(r.node, r.index) for r in node.inputs]
                ins = [values[r] for r in reads]
                in_masks = [masks[r] for r in reads]
                states = [values[(r.node, r.index)] for r in node.states]
                outs, out_masks = apply(node, ins, in_masks, states, ctx)
                for r in reads + [(r.node, r.index) for r in node.states]:
                    left[r] -= 1
                    if left[r] == 0:  # its last use: let it go
                        del values[r], masks[r]
            if ctx.states is not None and node.key in outputs_of:
                for j, out in enumerate(outs):
                    ctx.states[node.key if j == 0 else f"{node.key}/{j}"] = out
            for j, out in enumerate(outs):
                if uses.get((i, j)):
                    values[(i, j)], masks[(i, j)] = out, out_masks[j]
    return [values[(r.node, r.index)] for r in model.outputs]


def masks_at(model: Model, x: Any, key: str) -> Array | None:
    """The mask node ``key``'s layer computes with, (N, T) bool (None: no mask):
    which of its steps are real, as the graph carries masks to it."""
    xs = [
        check_rows(model, conform(model, a, index=i), "input", index=i)
        for i, a in enumerate(as_inputs(model, x))
    ]
    ctx = _Ctx(np.dtype("float32"), keras_major(model.source.keras_version), None, False)
    ctx.mask_of = key
    _walk(model, xs, ctx)
    return ctx.masks.get(key)


def _uses(model: Model) -> dict[tuple[int, int], int]:
    """How many times each tensor ``(node, index)`` is read (by later nodes, and as
    a model output)."""
    found: dict[tuple[int, int], int] = {}
    for node in model.nodes:
        for r in node.inputs + node.states:
            found[(r.node, r.index)] = found.get((r.node, r.index), 0) + 1
    for r in model.outputs:
        found[(r.node, r.index)] = found.get((r.node, r.index), 0) + 1
    return found


Apply = Callable[
    [Node, list[Array], list["Array | None"], list[Array], _Ctx],
    tuple[list[Array], list["Array | None"]],
]


def apply(
    node: Node, xs: list[Array], masks: list[Array | None], states: list[Array], ctx: _Ctx
) -> tuple[list[Array], list[Array | None]]:
    """One node: its layer on its input tensors (and masks, and initial states)."""
    layer = node.layer
    x = xs[0] if xs else None
    mask = masks[0] if masks else None
    ft = ctx.ft
    if ctx.mask_of == node.key:
        # Keras 3 runs a recurrent call with initial states unmasked (see below).
        keras3_states = _unmasked_call(node, states, ctx) and _is_recurrent(layer)
        ctx.masks[node.key] = None if keras3_states else mask
    if isinstance(layer, Embedding):
        assert x is not None
        E = layer.embeddings.astype(ft, copy=False)  # (V, E)
        ids = x.astype(np.intp, copy=False)  # (N, T)
        return [E[ids]], [(ids != 0) if layer.mask_zero else mask]  # (N, T, E)
    if isinstance(layer, Masking):
        assert x is not None
        keep = np.any(x != ft.type(layer.mask_value), axis=-1)  # (N, T)
        return [x * keep[..., None].astype(ft)], [keep]
    if isinstance(layer, Dense):
        assert x is not None
        return [dense(layer, x, ft, ctx.major)], [mask]  # on 3-D input: the last axis
    if isinstance(layer, TimeDistributed):
        assert x is not None
        N, T = x.shape[:2]
        flat = x.reshape(N * T, *x.shape[2:])  # (N*T, ...): the inner layer per step
        inner = Node(layer=layer.layer, inputs=node.inputs, options=node.options)
        (y, *_), _ = apply(inner, [flat], [None], [], ctx)
        return [y.reshape(N, T, *y.shape[1:])], [mask]
    if isinstance(layer, Activation):
        assert x is not None
        return [activations.get(layer.activation, ctx.major)(x)], [mask]
    if isinstance(layer, Passthrough):
        assert x is not None
        return [x], [mask]
    if isinstance(layer, Recurrent | Bidirectional | StackedRNN):
        assert x is not None
        if _unmasked_call(node, states, ctx) and mask is not None:
            # Keras 3 fills in a call's mask only when the call has one tensor
            # argument: with initial states the layer runs unmasked, while its
            # output still carries the mask on.
            outs, out_masks = _states_layer(node, layer, x, None, states, ctx)
            if _returns_sequences(layer):
                out_masks[0] = mask
            return outs, out_masks
        return _states_layer(node, layer, x, mask, states, ctx)
    from . import families

    return families.apply(node, xs, masks, states, ctx)


def dense(layer: Dense, x: Array, ft: Float, major: int) -> Array:
    W = layer.kernel.astype(ft, copy=False)  # (F, K)
    if x.ndim == 3 and not x.flags.c_contiguous and x.transpose(1, 2, 0).flags.c_contiguous:
        # A recurrent layer's sequence: an (N, T, F) view of (T, F, N). Multiplying
        # there keeps BLAS on contiguous blocks (a strided (N, T, F) operand would
        # not be handed to BLAS at all).
        y = np.matmul(W.T, x.transpose(1, 2, 0)).transpose(2, 0, 1)  # (N, T, K) view
    else:
        y = x @ W  # (..., K)
    if layer.bias is not None:
        y += layer.bias.astype(ft, copy=False)  # (..., K)
    return activations.get(layer.activation, major)(y)


def _recurrent(
    node: Node,
    layer: Recurrent,
    x: Array,
    mask: Array | None,
    initial: list[Array],
    ctx: _Ctx,
) -> tuple[list[Array], list[Array | None]]:
    """[output] or, with return_state, [output, h] / [output, h, c]."""
    record = ctx.states is not None and not ctx.outputs_of
    if layer.time_major:
        # (tf.keras) the tensor's first axis is time: the layer sees (T, N, D). The
        # batch is never split for such a model (``_time_major``).
        x = x.transpose(1, 0, 2)
        mask = None if mask is None else mask.T
    s = scan(
        layer,
        x,
        mask,
        ctx.ft,
        ctx.major,
        keep_seq=layer.return_sequences or record,
        record=record,
        gates=ctx.gates,
        initial=[a.astype(ctx.ft, copy=False) for a in initial] or None,
    )
    if record and ctx.states is not None:
        assert s.seq is not None
        # As the layer returns sequences: time first for a time_major layer.
        first = (1, 0, 2) if layer.time_major else (0, 1, 2)
        ctx.states[node.key] = s.seq.transpose(first)
        for name, value in s.extra.items():
            ctx.states[f"{node.key}/{name}"] = value.transpose(first)
    out: list[Array] = [s.seq if layer.return_sequences else s.last]  # type: ignore[list-item]
    out_masks: list[Array | None] = [mask if layer.return_sequences else None]
    if layer.time_major and layer.return_sequences:
        assert s.seq is not None
        out[0] = s.seq.transpose(1, 0, 2)  # back to (T, N, M), time first
        out_masks[0] = None if mask is None else mask.T
    if layer.return_state:
        out += s.finals
        out_masks += [None] * len(s.finals)
    return out, out_masks


def _unmasked_call(node: Node, states: list[Array], ctx: _Ctx) -> bool:
    """Keras 3 fills in a call's mask only when the call has one tensor argument: a
    recurrent call given initial states by the graph runs unmasked. States carried
    over from an earlier call (``states.rewire``) continue a sequence, masked."""
    given = node.options.get("carried") or node.options.get("mask_given")
    return bool(states) and ctx.major >= 3 and not given


def _states_layer(
    node: Node,
    layer: Recurrent | Bidirectional | StackedRNN,
    x: Array,
    mask: Array | None,
    states: list[Array],
    ctx: _Ctx,
) -> tuple[list[Array], list[Array | None]]:
    if isinstance(layer, Recurrent):
        return _recurrent(node, layer, x, mask, states, ctx)
    if isinstance(layer, Bidirectional):
        return _bidirectional(node, layer, x, mask, states, ctx)
    return _stacked(node, layer, x, mask, states, ctx)


def _returns_sequences(layer: Layer) -> bool:
    return bool(getattr(layer, "return_sequences", False))


def merge_directions(mode: str | None, a: Array, b: Array) -> list[Array]:
    """A Bidirectional's two outputs merged by ``merge_mode`` (None: both)."""
    if mode == "concat":
        return [np.concatenate([a, b], axis=-1)]
    if mode == "sum":
        return [a + b]
    if mode == "ave":
        return [(a + b) / 2]
    if mode == "mul":
        return [a * b]
    return [a, b]


def _bidirectional(
    node: Node,
    layer: Bidirectional,
    x: Array,
    mask: Array | None,
    initial: list[Array],
    ctx: _Ctx,
) -> tuple[list[Array], list[Array | None]]:
    """The merged output (or, merge_mode None, both directions), then with
    return_state the forward direction's final states and the backward one's."""
    record = ctx.states is not None and not ctx.outputs_of
    keep = layer.return_sequences or record
    n_f = layer.forward.STATES
    init_f = [a.astype(ctx.ft, copy=False) for a in initial[:n_f]] or None
    init_b = [a.astype(ctx.ft, copy=False) for a in initial[n_f:]] or None
    f = scan(layer.forward, x, mask, ctx.ft, ctx.major, keep, record, ctx.gates, init_f)
    b = scan(layer.backward, x, mask, ctx.ft, ctx.major, keep, record, ctx.gates, init_b)
    if record and ctx.states is not None:
        assert f.seq is not None and b.seq is not None
        # Merged as Keras merges with return_sequences=True: the backward sequence is
        # flipped back to input order first. The directions are kept as each
        # direction's layer returns them (backward in processing order).
        if layer.merge_mode is not None:
            fs, bs = f.seq, b.seq
            if mask is not None and not layer.return_sequences:
                # With return_sequences=True Keras zeroes masked outputs of both
                # directions (zero_output_for_mask follows return_sequences).
                fs = fs * mask[:, :, None]
                bs = bs * mask[:, ::-1, None]
            ctx.states[node.key] = merge_directions(layer.merge_mode, fs, bs[:, ::-1])[0]
        for direction, s in (("forward", f), ("backward", b)):
            assert s.seq is not None
            ctx.states[f"{node.key}/{direction}"] = s.seq
            for name, value in s.extra.items():
                ctx.states[f"{node.key}/{direction}/{name}"] = value
    if layer.return_sequences:
        assert f.seq is not None and b.seq is not None
        out = merge_directions(layer.merge_mode, f.seq, b.seq[:, ::-1])
        out_masks: list[Array | None] = [mask] * len(out)
    else:
        out = merge_directions(layer.merge_mode, f.last, b.last)
        out_masks = [None] * len(out)
    if layer.return_state:
        out += f.finals + b.finals
        out_masks += [None] * (len(f.finals) + len(b.finals))
    return out, out_masks


def _stacked(
    node: Node,
    layer: StackedRNN,
    x: Array,
    mask: Array | None,
    initial: list[Array],
    ctx: _Ctx,
) -> tuple[list[Array], list[Array | None]]:
    """RNN(StackedRNNCells): cell k runs over cell k-1's per-step outputs. Running
    the cells one after the other over the whole sequence computes the same: a
    masked step keeps every cell's states, and its output is never read."""
    record = ctx.states is not None and not ctx.outputs_of
    if layer.go_backwards:  # every cell processes the steps last to first
        x = x[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    finals: list[Array] = []
    seq = x
    s = None
    given = list(initial)
    for k, cell in enumerate(layer.cells):
        last = k == len(layer.cells) - 1
        init = [a.astype(ctx.ft, copy=False) for a in given[: cell.STATES]] or None
        given = given[cell.STATES :]
        keep = not last or layer.return_sequences or record
        s = scan(
            cell, np.ascontiguousarray(seq), mask, ctx.ft, ctx.major, keep, record, ctx.gates, init
        )
        finals += s.finals
        if record and ctx.states is not None:
            assert s.seq is not None
            ctx.states[f"{node.key}/cell_{k}"] = s.seq
            for name, value in s.extra.items():
                ctx.states[f"{node.key}/cell_{k}/{name}"] = value
        if s.seq is not None:
            seq = s.seq
    assert s is not None
    if record and ctx.states is not None:
        ctx.states[node.key] = seq
    out: list[Array] = [seq if layer.return_sequences else s.last]
    out_masks: list[Array | None] = [mask if layer.return_sequences else None]
    if layer.go_backwards and layer.return_sequences and mask is not None:
        out_masks = [mask[:, ::-1]]  # the mask passed on is the unreversed one
    if layer.return_state:
        out += finals
        out_masks += [None] * len(finals)
    return out, out_masks


def head_after(model: Model, layer: Layer) -> Callable[[Array], Array] | None:
    """The Dense head fed directly by ``layer``'s first call (dropouts between are
    fine), as a function of the layer's states: the notebook's ``y_t = h_t @ Wo + bo``."""
    major = keras_major(model.source.keras_version, 3)
    start = next((i for i, n in enumerate(model.nodes) if n.layer is layer), None)
    if start is None:
        return None
    ref = Ref(start, 0)
    while True:
        users = [n for n in model.nodes if ref in n.inputs]
        if len(users) != 1:
            return None
        nxt = users[0]
        if isinstance(nxt.layer, Passthrough):
            ref = Ref(model.nodes.index(nxt), 0)
            continue
        inner = nxt.layer.layer if isinstance(nxt.layer, TimeDistributed) else nxt.layer
        if not isinstance(inner, Dense) or len(nxt.inputs) != 1:
            return None
        head: Dense = inner
        return lambda h: dense(head, h, h.dtype, major)
