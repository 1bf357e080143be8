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


def chunk_rows(model: Model, T: int, itemsize: int, collect: bool) -> int:
    """Samples per chunk: enough for efficient matrix products, few enough that a
    chunk's activations stay within ``CHUNK_BYTES`` however large N is."""
    # Per step and sample: the widest input projection (g*M, live one layer at a
    # time) plus every layer's output (kept until the next layer has run; all kept
    # when tracing, with cell states and gates).
    widest = 0
    outputs = 0
    for layer in model.layers:
        for _, w in layer.weights():
            widest = max(widest, int(w.shape[-1]))
        outputs += max((int(w.shape[-1]) for _, w in layer.weights()), default=0)
    per_step = widest + outputs * (6 if collect else 1)
    per_row = max(1, T * max(per_step, 1) * itemsize)
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
    workers = (os.cpu_count() or 1) if blas.controlled() else 1
    step = rows or chunk_rows(model, T, ft.itemsize, collect) * workers
    # Split the batch across threads (BLAS single-threaded) only when each thread
    # gets enough rows for efficient products; small batches keep BLAS's threads.
    if min(N, step) < workers * MIN_ROWS_PER_WORKER:
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


MIN_ROWS_PER_WORKER = 128  # below this, splitting the batch costs more than it gains


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
    parts = min(workers, max(1, len(x) // MIN_ROWS_PER_WORKER))
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


# A step writes h_t into ``out`` and returns the new states (h first) and the gates.
Step = Callable[[Array, list[Array], Array], tuple[list[Array], dict[str, Array]]]


def _cell(layer: Recurrent, ft: Float, major: int, N: int) -> tuple[Step, Array, int]:
    """The step function of ``layer``, the bias folded into the input projection,
    and the number of states."""
    act_ = activations.get_inplace(layer.activation, major)
    R = layer.recurrent_kernel.astype(ft, copy=False)  # (M, g*M)
    M = layer.units
    g = layer.GATES
    b_in = np.zeros(g * M, dtype=ft) if layer.bias is None else layer.bias.astype(ft, copy=False)
    buf = np.empty((N, g * M), dtype=ft)  # (N, g*M) scratch, reused every step
    if isinstance(layer, LSTM):
        ract_ = activations.get_inplace(layer.recurrent_activation, major)
        # Keras's gate order is i, f, c, o; regrouped as i, f, o | c, the three
        # sigmoid gates are one contiguous block and take one activation call.
        R = R[:, lstm_order(M)]
        b_in = b_in[lstm_order(M)]
        c_bufs = [np.empty((N, M), dtype=ft) for _ in range(2)]  # ping-pong c buffers
        tmp = np.empty((N, M), dtype=ft)
        turn = [0]

        def lstm(
            xw_t: Array, states: list[Array], out: Array
        ) -> tuple[list[Array], dict[str, Array]]:
            h, c = states  # (N, M), (N, M)
            z = np.matmul(h, R, out=buf)  # (N, 4M): gates i, f, o, c
            np.add(z, xw_t, out=z)
            ract_(z[:, : 3 * M])  # i, f, o
            act_(z[:, 3 * M :])  # candidate g
            i, f, o, cand = z[:, :M], z[:, M : 2 * M], z[:, 2 * M : 3 * M], z[:, 3 * M :]
            turn[0] ^= 1
            c_new = c_bufs[turn[0]]  # never the buffer holding c
            np.multiply(f, c, out=c_new)
            np.multiply(i, cand, out=tmp)
            np.add(c_new, tmp, out=c_new)  # c_t = f * c + i * g
            if layer.activation == "tanh":
                np.tanh(c_new, out=tmp)
            else:
                tmp[...] = c_new
                act_(tmp)
            np.multiply(o, tmp, out=out)  # h_t = o * act(c_t)
            return [out, c_new], {"i": i, "f": f, "g": cand, "o": o}

        return lstm, b_in, 2
    if isinstance(layer, GRU):
        ract_ = activations.get_inplace(layer.recurrent_activation, major)
        zr = np.empty((N, 2 * M), dtype=ft)  # (N, 2M) update and reset gates
        hh = np.empty((N, M), dtype=ft)  # (N, M) candidate
        if layer.reset_after:
            b_rec = b_in[1] if b_in.ndim == 2 else np.zeros(g * M, dtype=ft)
            b_in = b_in[0] if b_in.ndim == 2 else b_in

            def gru(
                xw_t: Array, states: list[Array], out: Array
            ) -> tuple[list[Array], dict[str, Array]]:
                (h,) = states  # (N, M)
                hr = np.matmul(h, R, out=buf)  # (N, 3M): recurrent parts of z, r, h
                np.add(hr, b_rec, out=hr)
                np.add(xw_t[:, : 2 * M], hr[:, : 2 * M], out=zr)
                ract_(zr)  # z, r
                z, r = zr[:, :M], zr[:, M:]
                np.multiply(r, hr[:, 2 * M :], out=hh)
                np.add(hh, xw_t[:, 2 * M :], out=hh)
                act_(hh)  # candidate: act(x Wh + b0 + r * (h Rh + b1))
                np.subtract(h, hh, out=out)
                np.multiply(out, z, out=out)
                np.add(out, hh, out=out)  # h_t = z*h + (1-z)*hh = hh + z*(h - hh)
                return [out], {"z": z, "r": r, "candidate": hh}

            return gru, b_in, 1
        R_zr, R_h = R[:, : 2 * M], R[:, 2 * M :]  # (M, 2M), (M, M)

        def gru_v1(
            xw_t: Array, states: list[Array], out: Array
        ) -> tuple[list[Array], dict[str, Array]]:
            (h,) = states  # (N, M)
            np.matmul(h, R_zr, out=zr)  # (N, 2M)
            np.add(zr, xw_t[:, : 2 * M], out=zr)
            ract_(zr)  # z, r
            z, r = zr[:, :M], zr[:, M:]
            np.matmul(r * h, R_h, out=hh)  # (N, M): reset before the product
            np.add(hh, xw_t[:, 2 * M :], out=hh)
            act_(hh)  # candidate
            np.subtract(h, hh, out=out)
            np.multiply(out, z, out=out)
            np.add(out, hh, out=out)  # h_t = z*h + (1-z)*hh
            return [out], {"z": z, "r": r, "candidate": hh}

        return gru_v1, b_in, 1

    def simple(
        xw_t: Array, states: list[Array], out: Array
    ) -> tuple[list[Array], dict[str, Array]]:
        (h,) = states  # (N, M)
        np.matmul(h, R, out=out)  # (N, M)
        out += xw_t
        act_(out)  # h_t = act(x_t Wx + h_{t-1} Wh + b)
        return [out], {}

    return simple, b_in, 1


def scan(layer: Recurrent, x: Array, mask: Array | None, ctx: _Ctx, keep_seq: bool) -> Scan:
    """Run ``layer`` over (N, T, D) ``x``; states start at zero (``stateful`` too).

    Works time-major inside, so each step reads and writes contiguous (N, M) blocks.
    A masked step keeps every state; its output is the previous output, or zeros
    with ``zero_output_for_mask``.
    """
    ft = ctx.ft
    N, T, D = x.shape
    M = layer.units
    step, b_in, n_states = _cell(layer, ft, ctx.major, N)
    xt = x.transpose(1, 0, 2)  # (T, N, D) view
    mt = None if mask is None else mask.T  # (T, N)
    if layer.go_backwards:  # Keras processes the last step first and returns that order
        xt = xt[::-1]
        mt = None if mt is None else mt[::-1]
    K = layer.kernel.astype(ft, copy=False)  # (D, g*M)
    if isinstance(layer, LSTM):
        K = K[:, lstm_order(M)]  # the gate order the LSTM step works in
    # The input projection does not depend on h: one product over all T*N rows.
    xw = (np.ascontiguousarray(xt, dtype=ft).reshape(T * N, D) @ K).reshape(T, N, -1)
    xw += b_in  # (T, N, g*M)
    seq = np.empty((T, N, M), dtype=ft) if keep_seq else None  # (T, N, M)
    spare = [np.empty((N, M), dtype=ft) for _ in range(2)]  # ping-pong h buffers
    states = [np.zeros((N, M), dtype=ft) for _ in range(n_states)]  # h (and c)
    out = states[0]  # (N, M) the previous step's output
    extra: dict[str, Array] = {}
    record = ctx.states is not None
    for t in range(T):
        target = seq[t] if seq is not None and mt is None else spare[t % 2]
        new_states, gates = step(xw[t], states, target)
        if mt is None:
            states, out = new_states, new_states[0]
        else:
            m = mt[t][:, None]  # (N, 1)
            out = np.where(m, new_states[0], 0 if layer.zero_output_for_mask else out)
            states = [np.where(m, new, old) for new, old in zip(new_states, states, strict=True)]
            if seq is not None:
                seq[t] = out
        if record:
            found = {"c": states[1]} if n_states == 2 else {}
            if ctx.gates:
                found.update(gates)
            for name, value in found.items():
                if name not in extra:
                    extra[name] = np.empty((T, N, M), dtype=ft)
                extra[name][t] = value
    if out is spare[0] or out is spare[1]:
        out = out.copy()
    states = [s.copy() if any(s is b for b in spare) else s for s in states]
    return Scan(
        last=out,
        seq=None if seq is None else seq.transpose(1, 0, 2),  # (N, T, M) view
        finals=states,
        extra={k: v.transpose(1, 0, 2) for k, v in extra.items()},  # (N, T, M) views
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
