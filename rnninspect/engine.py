"""The forward pass in pure NumPy, batched over N; the only Python loop is over T.

Notation: N samples, T steps, D input features, M hidden units, K outputs.
Row-vector convention, as Keras stores weights: ``y = x @ W + b``.

The engine trusts its inputs: shapes were checked when the model was loaded
(``build``) and when the input was read (``inputs.conform``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import activations
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

    @property
    def output(self) -> Array:
        if len(self.outputs) != 1:
            raise ValueError("the model has several outputs; use .outputs")
        return self.outputs[0]


@dataclass
class _Ctx:
    ft: Float  # compute dtype
    major: int  # Keras generation (hard_sigmoid differs)
    states: dict[str, Array] | None  # where trace entries go, when tracing
    gates: bool  # also record gate activations


def run(
    model: Model, x: Array, dtype: str = "float32", collect: bool = False, gates: bool = False
) -> RunResult:
    """Run ``model`` on a batch ``x``: (N, T, D) floats or (N, T) ids.

    ``collect``: also return every recurrent layer's full output sequence, as Keras
    returns it with ``return_sequences=True`` (processing order for go_backwards),
    plus LSTM cell states, Bidirectional directions and (``gates``) gate activations.
    """
    from .inputs import conform

    x = conform(model, x)
    ctx = _Ctx(
        np.dtype(dtype), keras_major(model.source.keras_version), {} if collect else None, gates
    )
    mask: Array | None = None  # (N, T) bool, True = a real step
    outs: list[Array] = [x if model.takes_ids else x.astype(ctx.ft, copy=False)]
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


Cell = Callable[[Array, list[Array]], tuple[Array, list[Array], dict[str, Array]]]


def _cell(layer: Recurrent, ft: Float, major: int) -> tuple[Cell, Array, int]:
    """The step function of ``layer`` and its hoisted input projection's bias."""
    act = activations.get(layer.activation, major)
    R = layer.recurrent_kernel.astype(ft, copy=False)  # (M, g*M)
    M = layer.units
    g = layer.GATES
    b_in = np.zeros(g * M, dtype=ft) if layer.bias is None else layer.bias.astype(ft, copy=False)
    if isinstance(layer, LSTM):
        ract = activations.get(layer.recurrent_activation, major)

        def lstm(xw_t: Array, states: list[Array]) -> tuple[Array, list[Array], dict[str, Array]]:
            h, c = states  # (N, M), (N, M)
            z = xw_t + h @ R  # (N, 4M): gates i, f, c, o
            i = ract(z[:, :M])  # (N, M)
            f = ract(z[:, M : 2 * M])  # (N, M)
            cand = act(z[:, 2 * M : 3 * M])  # (N, M)
            o = ract(z[:, 3 * M :])  # (N, M)
            c_new = f * c + i * cand  # (N, M)
            h_new = o * act(c_new)  # (N, M)
            return h_new, [h_new, c_new], {"i": i, "f": f, "g": cand, "o": o}

        return lstm, b_in, 2
    if isinstance(layer, GRU):
        ract = activations.get(layer.recurrent_activation, major)
        if layer.reset_after:
            b_rec = b_in[1] if b_in.ndim == 2 else np.zeros(g * M, dtype=ft)
            b_in = b_in[0] if b_in.ndim == 2 else b_in

            def gru(
                xw_t: Array, states: list[Array]
            ) -> tuple[Array, list[Array], dict[str, Array]]:
                (h,) = states  # (N, M)
                hr = h @ R + b_rec  # (N, 3M): recurrent parts of z, r, h
                z = ract(xw_t[:, :M] + hr[:, :M])  # (N, M)
                r = ract(xw_t[:, M : 2 * M] + hr[:, M : 2 * M])  # (N, M)
                hh = act(xw_t[:, 2 * M :] + r * hr[:, 2 * M :])  # (N, M)
                h_new = z * h + (1 - z) * hh  # (N, M)
                return h_new, [h_new], {"z": z, "r": r, "candidate": hh}

            return gru, b_in, 1
        R_zr, R_h = R[:, : 2 * M], R[:, 2 * M :]  # (M, 2M), (M, M)

        def gru_v1(xw_t: Array, states: list[Array]) -> tuple[Array, list[Array], dict[str, Array]]:
            (h,) = states  # (N, M)
            hzr = h @ R_zr  # (N, 2M)
            z = ract(xw_t[:, :M] + hzr[:, :M])  # (N, M)
            r = ract(xw_t[:, M : 2 * M] + hzr[:, M:])  # (N, M)
            hh = act(xw_t[:, 2 * M :] + (r * h) @ R_h)  # (N, M): reset before the product
            h_new = z * h + (1 - z) * hh  # (N, M)
            return h_new, [h_new], {"z": z, "r": r, "candidate": hh}

        return gru_v1, b_in, 1

    def simple(xw_t: Array, states: list[Array]) -> tuple[Array, list[Array], dict[str, Array]]:
        (h,) = states  # (N, M)
        h_new = act(xw_t + h @ R)  # (N, M): h_t = act(x_t Wx + h_{t-1} Wh + b)
        return h_new, [h_new], {}

    return simple, b_in, 1


def scan(layer: Recurrent, x: Array, mask: Array | None, ctx: _Ctx, keep_seq: bool) -> Scan:
    """Run ``layer`` over (N, T, D) ``x``; states start at zero (``stateful`` too).

    A masked step keeps every state; its output is the previous output, or zeros
    with ``zero_output_for_mask``.
    """
    ft = ctx.ft
    cell, b_in, n_states = _cell(layer, ft, ctx.major)
    N, T, D = x.shape
    M = layer.units
    if layer.go_backwards:  # Keras processes the last step first and returns that order
        x = x[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    K = layer.kernel.astype(ft, copy=False)  # (D, g*M)
    # The input projection does not depend on h: one product over all N*T rows.
    xw = (x.reshape(N * T, D) @ K).reshape(N, T, -1)  # (N, T, g*M)
    xw += b_in  # (N, T, g*M)
    states = [np.zeros((N, M), dtype=ft) for _ in range(n_states)]  # h (and c)
    out = states[0]  # (N, M)
    seq = np.empty((N, T, M), dtype=ft) if keep_seq else None  # (N, T, M)
    record = ctx.states is not None
    extra: dict[str, list[Array]] = {}
    for t in range(T):
        h_new, new_states, gates = cell(xw[:, t], states)
        if mask is None:
            out, states = h_new, new_states
        else:
            m = mask[:, t, None]  # (N, 1)
            out = np.where(m, h_new, 0 if layer.zero_output_for_mask else out)  # (N, M)
            states = [np.where(m, s_new, s) for s_new, s in zip(new_states, states, strict=True)]
        if seq is not None:
            seq[:, t] = out
        if record:
            if n_states == 2:
                extra.setdefault("c", []).append(states[1])
            if ctx.gates:
                for name, value in gates.items():
                    extra.setdefault(name, []).append(value)
    stacked = {name: np.stack(values, axis=1) for name, values in extra.items()}  # (N, T, M)
    return Scan(last=out, seq=seq, finals=states, extra=stacked)


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
            ctx.states[layer.name] = _merge(layer.merge_mode, f.seq, b.seq[:, ::-1])[0]
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
