"""The forward pass in pure NumPy, batched over N; the only Python loop is over T.

Notation: N samples, T steps, D input features, M hidden units, K outputs.
Row-vector convention, as Keras stores weights: ``y = x @ W + b``.

The engine trusts its inputs: shapes were checked when the model was loaded
(``build``) and when the input was read (``inputs.conform``).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import activations, blas
from .errors import UsageError
from .model import (
    GRU,
    LSTM,
    Activation,
    Array,
    Bidirectional,
    Dense,
    Embedding,
    Layer,
    Masking,
    Model,
    Passthrough,
    Recurrent,
    TimeDistributed,
)
from .versions import keras_major

Float = np.dtype[Any]


@dataclass
class RunResult:
    outputs: list[Array]  # the model's outputs: one, or two for an unmerged Bidirectional
    states: dict[str, Array] = field(default_factory=dict)  # trace entries, (N, T, M)
    nonfinite_at: tuple[int, ...] | None = None  # first NaN/Inf in the input, (n, t, d)

    @property
    def output(self) -> Array:
        if len(self.outputs) != 1:
            raise ValueError(
                f"the model has {len(self.outputs)} outputs (it ends in a Bidirectional with "
                "merge_mode=None): use Model.forward_all"
            )
        return self.outputs[0]


@dataclass
class _Ctx:
    ft: Float  # compute dtype
    major: int  # Keras generation (hard_sigmoid differs)
    states: dict[str, Array] | None  # where trace entries go, when tracing
    gates: bool  # also record gate activations


CHUNK_BYTES = 48 << 20  # working memory per chunk of samples


def _width(layer: Layer) -> int:
    """Features per step of ``layer``'s output (0: about its input's, counted there)."""
    if isinstance(layer, Recurrent):
        return layer.units
    if isinstance(layer, Bidirectional):
        return 2 * layer.forward.units
    if isinstance(layer, Dense):
        return layer.units
    if isinstance(layer, TimeDistributed):
        return _width(layer.layer)
    if isinstance(layer, Embedding):
        return int(layer.embeddings.shape[1])
    return 0


def chunk_rows(model: Model, T: int, D: int, itemsize: int, collect: bool, gates: bool) -> int:
    """Samples per chunk: as many as fit in ``CHUNK_BYTES`` of activations, so memory
    stays bounded however large N is and products are as large as that allows."""
    # Per step and sample: the input (as read, and as the compute dtype, and a
    # masked or activated copy), every sequence a layer returns (kept until the next
    # layer has run; all kept when tracing, with cell states and gates) and the
    # per-step scratch of a recurrent layer (the gates, a few (N, M) buffers).
    per_step = 3 * D
    for layer in model.layers:
        width = _width(layer)
        keeps = (
            collect or not isinstance(layer, Recurrent | Bidirectional) or layer.return_sequences
        )
        per_step += width * ((8 if gates else 6) if collect else 1) if keeps else 0
    scratch = 0
    for layer in model.layers:
        for _, w in layer.weights():
            scratch = max(scratch, 2 * int(w.shape[-1]))
    per_row = max(1, (T * per_step + scratch) * itemsize)
    return max(16, CHUNK_BYTES // per_row)


def iter_chunks(
    model: Model,
    x: Array,
    dtype: str = "float32",
    collect: bool = False,
    gates: bool = False,
    where: str = "input",
    rows: int | None = None,
) -> Iterator[tuple[int, int, RunResult]]:
    """Run ``model`` over ``x`` a chunk of samples at a time, yielding
    ``(start, stop, result)``: memory stays bounded for any N, and a memory-mapped
    input is read once, chunk by chunk."""
    from .inputs import check_rows, conform

    x = conform(model, x, where)
    N, T = x.shape[:2]
    ft = np.dtype(dtype)
    workers = _threads() if blas.controlled() else 1
    D = int(np.prod(x.shape[2:], dtype=np.int64)) or 1
    step = rows or chunk_rows(model, T, D, ft.itemsize, collect, gates) * workers
    # Split the batch across threads (BLAS single-threaded) only when it pays;
    # otherwise BLAS keeps its own threads.
    if workers > 1 and not _split_pays(model, min(N, step) // workers):
        workers = 1
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        with blas.single_threaded() if workers > 1 else contextlib.nullcontext():
            for start in range(0, N, step):
                stop = min(N, start + step)
                rows_in = np.array(x[start:stop])  # (n, T, D): a copy, out of any memory map
                _release(x, stop)
                rows_in = check_rows(model, rows_in, where, start)
                result = _run_parallel(model, rows_in, ft, collect, gates, pool, workers)
                if rows_in.dtype.kind == "f" and not np.isfinite(rows_in).all():
                    n, *rest = (int(i) for i in np.argwhere(~np.isfinite(rows_in))[0])
                    result.nonfinite_at = (start + n, *rest)
                yield start, stop, result
    finally:
        if pool is not None:
            pool.shutdown()


def _cores() -> int:
    """The cores this process may run on (``taskset``, container CPU sets), which
    can be fewer than the machine has: a thread per core beyond them only queues."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _threads() -> int:
    """Threads to split a batch across: one per usable core, unless limited by
    ``RNNINSPECT_THREADS`` or, as for any NumPy program, ``OPENBLAS_NUM_THREADS`` /
    ``OMP_NUM_THREADS`` (what people set when running many processes side by side;
    more threads than free cores make every step wait its turn)."""
    own = os.environ.get("RNNINSPECT_THREADS", "").strip()
    if own:
        if not own.isdigit() or int(own) < 1:
            raise UsageError(f"RNNINSPECT_THREADS must be a positive whole number, got {own!r}")
        return min(int(own), _cores())
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return min(int(value), _cores())
    return _cores()


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


def _split_pays(model: Model, rows_per_worker: int) -> bool:
    """Is a batch split into ``rows_per_worker`` rows per thread faster than one?"""
    work = calls = 0
    for layer in model.layers:
        cells = (
            [layer.forward, layer.backward]
            if isinstance(layer, Bidirectional)
            else [layer]
            if isinstance(layer, Recurrent)
            else []
        )
        for cell in cells:
            gM = cell.GATES * cell.units
            work += gM * (int(cell.kernel.shape[0]) + 1 + cell.units + ELEMENTWISE)  # a row's step
            calls += _STEP_CALLS.get(cell.GATES, 18)
    return rows_per_worker >= MIN_ROWS_PER_WORKER and rows_per_worker * work >= SPLIT_WORK * calls


def _run_parallel(
    model: Model,
    x: Array,
    ft: Float,
    collect: bool,
    gates: bool,
    pool: ThreadPoolExecutor | None,
    workers: int,
) -> RunResult:
    """The rows split across threads (NumPy releases the GIL in its kernels)."""
    parts = workers if _split_pays(model, len(x) // max(workers, 1)) else 1
    if pool is None or parts < 2:
        return _run_rows(model, x, ft, collect, gates)
    bounds = np.linspace(0, len(x), parts + 1).astype(int)
    futures = [
        pool.submit(_run_rows, model, x[a:b], ft, collect, gates)
        for a, b in itertools.pairwise(bounds)
    ]
    return _concat([f.result() for f in futures])


def _concat(results: list[RunResult]) -> RunResult:
    if len(results) == 1:
        return results[0]
    first = results[0]
    outputs = [np.concatenate([r.outputs[i] for r in results]) for i in range(len(first.outputs))]
    states = {k: np.concatenate([r.states[k] for r in results]) for k in first.states}
    return RunResult(outputs=outputs, states=states)


def run(
    model: Model, x: Array, dtype: str = "float32", collect: bool = False, gates: bool = False
) -> RunResult:
    """Run ``model`` on a batch ``x``: (N, T, D) floats or (N, T) ids.

    ``collect``: also return every recurrent layer's full output sequence, as Keras
    returns it with ``return_sequences=True`` (processing order for go_backwards),
    plus LSTM cell states, Bidirectional directions and (``gates``) gate activations.
    """
    return _concat([result for _, _, result in iter_chunks(model, x, dtype, collect, gates)])


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


def conform_rows(model: Model, x: Array) -> Array:
    """``x`` checked (shape, dtype and values) and ready for ``_run_rows``."""
    from .inputs import check_rows, conform

    return check_rows(model, conform(model, x), "input")


def _run_rows(model: Model, x: Array, ft: Float, collect: bool, gates: bool) -> RunResult:
    ctx = _Ctx(ft, keras_major(model.source.keras_version), {} if collect else None, gates)
    mask: Array | None = None  # (N, T) bool, True = a real step
    outs: list[Array] = [x if model.takes_ids else x.astype(ft, copy=False)]
    # NaN/Inf in inputs or weights flow through as Keras lets them (callers warn
    # where they are); NumPy's own floating-point warnings would only be noise.
    with np.errstate(all="ignore"):
        for layer in model.layers:
            outs, mask = _apply(layer, outs[0], mask, ctx)
    return RunResult(outputs=outs, states=ctx.states or {})


def _apply(
    layer: Layer, x: Array, mask: Array | None, ctx: _Ctx
) -> tuple[list[Array], Array | None]:
    ft = ctx.ft
    if isinstance(layer, Embedding):
        E = layer.embeddings.astype(ft, copy=False)  # (V, E)
        ids = x.astype(np.intp, copy=False)  # (N, T)
        return [E[ids]], (ids != 0) if layer.mask_zero else mask  # (N, T, E)
    if isinstance(layer, Masking):
        keep = np.any(x != ft.type(layer.mask_value), axis=-1)  # (N, T)
        return [x * keep[..., None].astype(ft)], keep
    if isinstance(layer, Dense):
        return [dense(layer, x, ft, ctx.major)], mask  # on 3-D input: the last axis
    if isinstance(layer, TimeDistributed):
        N, T = x.shape[:2]
        flat = x.reshape(N * T, *x.shape[2:])  # (N*T, ...): the inner layer per step
        (y,), _ = _apply(layer.layer, flat, None, ctx)
        return [y.reshape(N, T, *y.shape[1:])], mask
    if isinstance(layer, Activation):
        return [activations.get(layer.activation, ctx.major)(x)], mask
    if isinstance(layer, Passthrough):
        return [x], mask
    if isinstance(layer, Recurrent):
        return _recurrent(layer, x, mask, ctx)
    if isinstance(layer, Bidirectional):
        return _bidirectional(layer, x, mask, ctx)
    raise TypeError(f"engine cannot run layer {layer.name!r} ({layer.class_name})")


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


@dataclass
class Scan:
    """One recurrent layer run over the whole sequence."""

    last: Array  # (N, M) output at the last processed step
    seq: Array | None  # (N, T, M) outputs in processing order (None when not kept)
    finals: list[Array]  # final states: [h] or, for LSTM, [h, c]
    extra: dict[str, Array] = field(default_factory=dict)  # "c" and gates, (N, T, M)


def lstm_order(M: int) -> Array:
    """Columns of Keras's LSTM layout (i, f, c, o) in the order i, f, o, c."""
    return np.concatenate([np.arange(0, 2 * M), np.arange(3 * M, 4 * M), np.arange(2 * M, 3 * M)])


# The recurrence works feature-major: each step's vectors are (features, N) blocks,
# so every gate is a contiguous run of rows (fast elementwise passes) and one matrix
# product per step takes the stacked operand S = [x_t; 1; h_{t-1}], (D + 1 + M, N):
# the input projection, the bias and the recurrent product in a single BLAS call.
#
# A wide input (D large against the gate rows) is instead projected on its own,
# ``Kx @ x_t^T`` read straight out of x (BLAS takes the transposed view as it is;
# copying x_t into S would be a slow strided transpose), and S = [1; h_{t-1}].
#
# A step reads S (and that projection, ``xw``, when the input is projected on its
# own), writes the new states into ``outs`` (which may be the states themselves:
# every write comes after the reads it depends on) and returns the gate
# activations, (M, N) views valid until the next step.
Step = Callable[[Array, list[Array], list[Array], Array | None], dict[str, Array]]


@dataclass
class Cell:
    step: Step
    n_states: int  # 1, or 2 for LSTM (h, c)
    kx: Array | None = None  # (g*M, D): the input's own projection, when x is not in S


def _input_apart(layer: Recurrent, D: int) -> bool:
    """Project x_t on its own (``Cell.kx``) rather than copy it into S? Copying is a
    strided transpose of D rows; projecting apart costs an extra pass over the g*M
    gate rows. Measured (LSTM, GRU, SimpleRNN; N 256..8192): even near 2*D = g*M."""
    return layer.GATES * layer.units < 2 * D


def _stacked(K: Array, b: Array, R: Array | None, ft: Float) -> Array:
    """(rows, D + 1 [+ M]): ``[K; b; R]`` transposed, the weights of one product
    over ``[x_t; 1; h]``. ``R`` None: over ``[x_t; 1]`` only."""
    parts = [K, b[None, :]] + ([] if R is None else [R])
    return np.ascontiguousarray(np.concatenate(parts, axis=0).T, dtype=ft)


def _act_fm(name: str, major: int, gates: int = 1) -> Callable[[Array], None]:
    """An in-place activation of a feature-major (features, N) block of ``gates``
    stacked gates. Those that reduce over features (softmax) see one gate's units
    on their last axis, as Keras activates each gate on its own."""
    if name not in activations.ACROSS_FEATURES:
        return activations.get_inplace(name, major)
    fn = activations.get(name, major)

    def apply(buf: Array) -> None:
        for gate in np.split(buf, gates):  # (M, N) each
            gate[...] = fn(gate.T).T

    return apply


def _act_into(name: str, major: int) -> Callable[[Array, Array], None]:
    """An activation from ``src`` into ``dst`` (``src`` may be overwritten)."""
    act_ = _act_fm(name, major)

    def apply(src: Array, dst: Array) -> None:
        if name == "tanh":
            np.tanh(src, out=dst)
        elif name == "relu":
            np.maximum(src, 0, out=dst)
        else:
            act_(src)
            np.copyto(dst, src)

    return apply


def _sigmoid_of_halved(buf: Array) -> None:
    """sigmoid(2u) in place, for gates whose pre-activation u was halved upstream."""
    np.tanh(buf, out=buf)
    np.multiply(buf, 0.5, out=buf)
    np.add(buf, 0.5, out=buf)


def _cell(layer: Recurrent, ft: Float, major: int, N: int, D: int, apart: bool) -> Cell:
    """The step function of ``layer``, its weights stacked for ``S = [x_t; 1; h]``
    (``apart``: for ``S = [1; h]``, with x_t's projection from ``Cell.kx``).

    Sigmoid gates use sigmoid(x) = 0.5 * tanh(x / 2) + 0.5. The 1/2 inside is folded
    into those gates' weight rows (scaling by a power of two is exact, so results
    are unchanged), which leaves one tanh pass over all of an LSTM's gates and two
    cheap passes for the sigmoid ones.
    """
    act_ = _act_fm(layer.activation, major)
    K = layer.kernel.astype(ft, copy=False)  # (D, g*M)
    R = layer.recurrent_kernel.astype(ft, copy=False)  # (M, g*M)
    M = layer.units
    g = layer.GATES
    b = np.zeros(g * M, dtype=ft) if layer.bias is None else layer.bias.astype(ft, copy=False)
    sig_halved = getattr(layer, "recurrent_activation", None) == "sigmoid"
    if isinstance(layer, LSTM):
        # Keras's gate order is i, f, c, o; regrouped as i, f, o | c, the three
        # sigmoid gates are one contiguous block and take one activation call.
        order = lstm_order(M)
        W = _stacked(K[:, order], b[order], R[:, order], ft)  # (4M, D+1+M)
        if sig_halved:
            W[: 3 * M] *= 0.5
        kx, W = _apart(W, D, apart)
        ract_ = _act_fm(layer.recurrent_activation, major, gates=3)  # i, f, o
        tanh_all = sig_halved and layer.activation == "tanh"
        z = np.empty((4 * M, N), dtype=ft)  # (4M, N) gates, reused every step
        tmp = np.empty((M, N), dtype=ft)

        def lstm(
            S: Array, states: list[Array], outs: list[Array], xw: Array | None
        ) -> dict[str, Array]:
            c = states[1]  # (M, N)
            h_out, c_out = outs
            np.matmul(W, S, out=z)  # (4M, N): i, f, o, g
            if xw is not None:
                np.add(z, xw, out=z)
            ifo = z[: 3 * M]
            if tanh_all:
                np.tanh(z, out=z)  # i, f, o (halved) and the candidate
            else:
                if sig_halved:
                    np.tanh(ifo, out=ifo)
                else:
                    ract_(ifo)
                act_(z[3 * M :])
            if sig_halved:
                np.multiply(ifo, 0.5, out=ifo)
                np.add(ifo, 0.5, out=ifo)  # sigmoid = 0.5 * tanh(x / 2) + 0.5
            i, f, o, cand = z[:M], z[M : 2 * M], z[2 * M : 3 * M], z[3 * M :]
            np.multiply(f, c, out=c_out)
            np.multiply(i, cand, out=tmp)
            np.add(c_out, tmp, out=c_out)  # c_t = f * c + i * g
            if layer.activation == "tanh":
                np.tanh(c_out, out=tmp)
            else:
                np.copyto(tmp, c_out)
                act_(tmp)
            np.multiply(o, tmp, out=h_out)  # h_t = o * act(c_t)
            return {"i": i, "f": f, "g": cand, "o": o}

        return Cell(lstm, 2, kx)
    if isinstance(layer, GRU):
        ract_ = (
            _sigmoid_of_halved
            if sig_halved
            else _act_fm(layer.recurrent_activation, major, gates=2)
        )
        zr = slice(0, 2 * M)
        hh = np.empty((M, N), dtype=ft)  # (M, N) candidate
        if layer.reset_after:
            b_in = b[0] if b.ndim == 2 else b
            b_rec = b[1] if b.ndim == 2 else np.zeros(g * M, dtype=ft)
            # Rows z, r: x Kzr + h Rzr + both biases. Rows h: h Rh + b_rec_h (the x
            # columns zero: the reset gate multiplies this part alone).
            K1 = np.concatenate([K[:, zr], np.zeros((D, M), dtype=ft)], axis=1)
            b1 = np.concatenate([b_in[zr] + b_rec[zr], b_rec[2 * M :]])
            W1 = _stacked(K1, b1, R, ft)  # (3M, D+1+M)
            W2 = _stacked(K[:, 2 * M :], b_in[2 * M :], None, ft)  # (M, D+1): x Kh + b_in_h
            if sig_halved:
                W1[zr] *= 0.5
            kx1, W1 = _apart(W1, D, apart)
            kx2, W2 = _apart(W2, D, apart)
            kx = None if kx1 is None or kx2 is None else np.concatenate([kx1[zr], kx2])
            dx = 0 if apart else D  # rows of x in S
            u = np.empty((3 * M, N), dtype=ft)  # (3M, N)
            tmp = np.empty((M, N), dtype=ft)

            def gru(
                S: Array, states: list[Array], outs: list[Array], xw: Array | None
            ) -> dict[str, Array]:
                (h,), (h_out,) = states, outs  # (M, N)
                np.matmul(W1, S, out=u)  # z, r pre-activations; h Rh + b_rec_h
                if xw is not None:
                    np.add(u[zr], xw[zr], out=u[zr])
                ract_(u[zr])
                z_, r_ = u[:M], u[M : 2 * M]
                np.matmul(W2, S[: dx + 1], out=hh)  # x Kh + b_in_h
                if xw is not None:
                    np.add(hh, xw[2 * M :], out=hh)
                np.multiply(r_, u[2 * M :], out=tmp)
                np.add(hh, tmp, out=hh)
                act_(hh)  # candidate: act(x Kh + b0 + r * (h Rh + b1))
                np.subtract(h, hh, out=h_out)
                np.multiply(h_out, z_, out=h_out)
                np.add(h_out, hh, out=h_out)  # h_t = z*h + (1-z)*hh = hh + z*(h - hh)
                return {"z": z_, "r": r_, "candidate": hh}

            return Cell(gru, 1, kx)
        W1 = _stacked(K[:, zr], b[zr], R[:, zr], ft)  # (2M, D+1+M): z, r
        W2 = _stacked(K[:, 2 * M :], b[2 * M :], R[:, 2 * M :], ft)  # (M, D+1+M): candidate
        if sig_halved:
            W1 *= 0.5
        kx1, W1 = _apart(W1, D, apart)
        kx2, W2 = _apart(W2, D, apart)
        kx = None if kx1 is None or kx2 is None else np.concatenate([kx1, kx2])
        dx = 0 if apart else D  # rows of x in S
        u = np.empty((2 * M, N), dtype=ft)  # (2M, N) z, r
        S2 = np.empty((dx + 1 + M, N), dtype=ft)  # [x_t; 1; r * h]

        def gru_v1(
            S: Array, states: list[Array], outs: list[Array], xw: Array | None
        ) -> dict[str, Array]:
            (h,), (h_out,) = states, outs  # (M, N)
            np.matmul(W1, S, out=u)  # (2M, N)
            if xw is not None:
                np.add(u, xw[: 2 * M], out=u)
            ract_(u)  # z, r
            z_, r_ = u[:M], u[M:]
            S2[: dx + 1] = S[: dx + 1]
            np.multiply(r_, h, out=S2[dx + 1 :])  # reset before the product
            np.matmul(W2, S2, out=hh)  # (M, N)
            if xw is not None:
                np.add(hh, xw[2 * M :], out=hh)
            act_(hh)  # candidate
            np.subtract(h, hh, out=h_out)
            np.multiply(h_out, z_, out=h_out)
            np.add(h_out, hh, out=h_out)  # h_t = z*h + (1-z)*hh
            return {"z": z_, "r": r_, "candidate": hh}

        return Cell(gru_v1, 1, kx)

    kx, W = _apart(_stacked(K, b, R, ft), D, apart)  # (M, D+1+M), or (M, D) and (M, 1+M)
    act_into = _act_into(layer.activation, major)
    pre = np.empty((M, N), dtype=ft)

    def simple(
        S: Array, states: list[Array], outs: list[Array], xw: Array | None
    ) -> dict[str, Array]:
        np.matmul(W, S, out=pre)  # (M, N): x_t Wx + b + h_{t-1} Wh
        if xw is not None:
            np.add(pre, xw, out=pre)
        act_into(pre, outs[0])  # h_t = act(...)
        return {}

    return Cell(simple, 1, kx)


def _apart(W: Array, D: int, apart: bool) -> tuple[Array | None, Array]:
    """``W`` over ``[x; 1; h]`` split, when ``apart``, into its x columns and the rest."""
    if not apart:
        return None, W
    return np.ascontiguousarray(W[:, :D]), np.ascontiguousarray(W[:, D:])


def scan(layer: Recurrent, x: Array, mask: Array | None, ctx: _Ctx, keep_seq: bool) -> Scan:
    """Run ``layer`` over (N, T, D) ``x``; states start at zero (``stateful`` too).

    Works feature-major inside (see ``Step``). A masked step keeps every state; its
    output is the previous output, or zeros with ``zero_output_for_mask``.
    Sequences come back as (N, T, M) views of (T, M, N) arrays, in processing order.
    """
    ft = ctx.ft
    N, T, D = x.shape
    M = layer.units
    apart = _input_apart(layer, D)
    cell = _cell(layer, ft, ctx.major, N, D, apart)
    dx = 0 if apart else D  # rows of x in S
    S = np.empty((dx + 1 + M, N), dtype=ft)  # [x_t; 1; h_{t-1}], or [1; h_{t-1}]
    S[dx] = 1
    S[dx + 1 :] = 0
    xw = None if cell.kx is None else np.empty((cell.kx.shape[0], N), dtype=ft)
    states = [S[dx + 1 :]] + [np.zeros((M, N), dtype=ft) for _ in range(cell.n_states - 1)]
    spare = [np.empty((M, N), dtype=ft) for _ in states] if mask is not None else states
    seq = np.empty((T, M, N), dtype=ft) if keep_seq else None
    extra: dict[str, Array] = {}
    record = ctx.states is not None
    out = states[0]  # (M, N) this step's output
    for k in range(T):
        t = T - 1 - k if layer.go_backwards else k  # Keras returns processing order
        if xw is None:
            np.copyto(S[:D], x[:, t].T)  # (D, N)
        else:
            assert cell.kx is not None
            np.matmul(cell.kx, x[:, t].T, out=xw)  # (g*M, N)
        gates = cell.step(S, states, spare, xw)
        if mask is not None:
            m = mask[:, t][None, :]  # (1, N)
            for state, new in zip(states, spare, strict=True):
                np.copyto(state, new, where=m)
            out = np.where(m, spare[0], ft.type(0)) if layer.zero_output_for_mask else states[0]
        if seq is not None:
            seq[k] = out
        if record:
            found = {"c": states[1]} if cell.n_states == 2 else {}
            if ctx.gates:
                found.update(gates)
            for name, value in found.items():
                if name not in extra:
                    extra[name] = np.empty((T, M, N), dtype=ft)
                extra[name][k] = value
    return Scan(
        last=np.ascontiguousarray(out.T),  # (N, M)
        seq=None if seq is None else seq.transpose(2, 0, 1),  # (N, T, M) view
        finals=[np.ascontiguousarray(s.T) for s in states],
        extra={k: v.transpose(2, 0, 1) for k, v in extra.items()},  # (N, T, M) views
    )


def _recurrent(
    layer: Recurrent, x: Array, mask: Array | None, ctx: _Ctx
) -> tuple[list[Array], Array | None]:
    s = scan(layer, x, mask, ctx, keep_seq=layer.return_sequences or ctx.states is not None)
    if ctx.states is not None:
        assert s.seq is not None
        ctx.states[layer.name] = s.seq
        for name, value in s.extra.items():
            ctx.states[f"{layer.name}/{name}"] = value
    if layer.emit:  # return_state: the next layer takes a final state (1: h, 2: c)
        return [s.finals[layer.emit - 1]], None
    if layer.return_sequences:
        assert s.seq is not None
        return [s.seq], mask
    return [s.last], None


def _merge(mode: str | None, a: Array, b: Array) -> list[Array]:
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
    layer: Bidirectional, x: Array, mask: Array | None, ctx: _Ctx
) -> tuple[list[Array], Array | None]:
    keep = layer.return_sequences or ctx.states is not None
    f = scan(layer.forward, x, mask, ctx, keep_seq=keep)
    b = scan(layer.backward, x, mask, ctx, keep_seq=keep)
    if ctx.states is not None:
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
            ctx.states[layer.name] = _merge(layer.merge_mode, fs, bs[:, ::-1])[0]
        for direction, s in (("forward", f), ("backward", b)):
            assert s.seq is not None
            ctx.states[f"{layer.name}/{direction}"] = s.seq
            for name, value in s.extra.items():
                ctx.states[f"{layer.name}/{direction}/{name}"] = value
    if layer.return_sequences:
        assert f.seq is not None and b.seq is not None
        return _merge(layer.merge_mode, f.seq, b.seq[:, ::-1]), mask
    return _merge(layer.merge_mode, f.last, b.last), None


def head_after(model: Model, layer: Layer) -> Callable[[Array], Array] | None:
    """The Dense head fed directly by ``layer`` (dropouts between are fine), as a
    function of the layer's states: the notebook's ``y_t = h_t @ Wo + bo`` per step."""
    i = model.layers.index(layer)
    major = keras_major(model.source.keras_version, 3)
    for nxt in model.layers[i + 1 :]:
        if isinstance(nxt, Passthrough):
            continue
        inner = nxt.layer if isinstance(nxt, TimeDistributed) else nxt
        if not isinstance(inner, Dense):
            return None
        head: Dense = inner
        return lambda h: dense(head, h, h.dtype, major)
    return None
