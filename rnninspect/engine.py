"""The forward pass in pure NumPy, batched over N; the only Python loop is over T.

Notation: N samples, T steps, D input features, M hidden units, K outputs.
Row-vector convention, as Keras stores weights: ``y = x @ W + b``.

The engine trusts its inputs: shapes were checked when the model was loaded
(``build``) and when the input was read (``inputs.conform``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import activations
from .loaders import keras_major
from .model import (
    Activation,
    Array,
    Dense,
    Embedding,
    Layer,
    Masking,
    Model,
    Passthrough,
    Recurrent,
    SimpleRNN,
    TimeDistributed,
)


@dataclass
class RunResult:
    output: Array  # (N, K) or (N, T, K)
    states: dict[str, Array] = field(default_factory=dict)  # name -> (N, T, M)


def run(model: Model, x: Array, dtype: str = "float32", collect: bool = False) -> RunResult:
    """Run ``model`` on a batch ``x``: (N, T, D) floats or (N, T) ids.

    ``collect``: also return every recurrent layer's full output sequence, as Keras
    returns it with ``return_sequences=True`` (processing order for go_backwards).
    """
    from .inputs import conform

    x = conform(model, x)
    ft = np.dtype(dtype)
    major = keras_major(model.source.keras_version, 3)
    mask: Array | None = None  # (N, T) bool, True = a real step
    states: dict[str, Array] = {}
    h: Array = x if model.takes_ids else x.astype(ft, copy=False)
    for layer in model.layers:
        h, mask = _apply(layer, h, mask, ft, major, states if collect else None)
    return RunResult(output=h, states=states)


def _apply(
    layer: Layer,
    x: Array,
    mask: Array | None,
    ft: np.dtype[np.floating],
    major: int,
    states: dict[str, Array] | None,
) -> tuple[Array, Array | None]:
    if isinstance(layer, Embedding):
        E = layer.embeddings.astype(ft, copy=False)  # (V, E)
        ids = x.astype(np.intp, copy=False)  # (N, T)
        out = E[ids]  # (N, T, E)
        return out, (ids != 0) if layer.mask_zero else mask
    if isinstance(layer, Masking):
        keep = np.any(x != ft.type(layer.mask_value), axis=-1)  # (N, T)
        return x * keep[..., None].astype(ft), keep
    if isinstance(layer, Dense):
        return dense(layer, x, ft, major), mask  # on 3-D input: the last axis
    if isinstance(layer, TimeDistributed):
        return _apply(layer.layer, x, mask, ft, major, states)[0], mask
    if isinstance(layer, Activation):
        return activations.get(layer.activation, major)(x), mask
    if isinstance(layer, Passthrough):
        return x, mask
    if isinstance(layer, SimpleRNN):
        last, seq = simple_rnn(layer, x, mask, ft, major, keep_sequence=True)
        if states is not None:
            states[layer.name] = seq
        if layer.return_sequences:
            return seq, mask
        return last, None
    raise TypeError(f"engine cannot run layer {layer.name!r} ({layer.class_name})")


def dense(layer: Dense, x: Array, ft: np.dtype[np.floating], major: int) -> Array:
    W = layer.kernel.astype(ft, copy=False)  # (F, K)
    y = x @ W  # (..., K)
    if layer.bias is not None:
        y += layer.bias.astype(ft, copy=False)
    return activations.get(layer.activation, major)(y)


def simple_rnn(
    layer: Recurrent,
    x: Array,
    mask: Array | None,
    ft: np.dtype[np.floating],
    major: int,
    keep_sequence: bool,
) -> tuple[Array, Array]:
    """``h_t = act(x_t @ Wx + h_{t-1} @ Wh + b)``, ``h_0 = 0``.

    Returns (last output (N, M), output sequence (N, T, M) in processing order).
    A masked step keeps the state; its output is the kept state, or zeros when
    ``zero_output_for_mask``.
    """
    act = activations.get(layer.activation, major)
    Wx = layer.kernel.astype(ft, copy=False)  # (D, M)
    Wh = layer.recurrent_kernel.astype(ft, copy=False)  # (M, M)
    N, T, D = x.shape
    M = Wh.shape[0]
    if layer.go_backwards:  # Keras processes last step first and returns that order
        x = x[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    # The input projection does not depend on h: one big product over all N*T rows.
    xw = (x.reshape(N * T, D) @ Wx).reshape(N, T, M)  # (N, T, M)
    if layer.bias is not None:
        xw += layer.bias.astype(ft, copy=False)  # (N, T, M)
    h = np.zeros((N, M), dtype=ft)  # (N, M)
    out = h
    seq = np.empty((N, T, M), dtype=ft) if keep_sequence else None  # (N, T, M)
    for t in range(T):
        h_new = act(xw[:, t] + h @ Wh)  # (N, M)
        if mask is None:
            h = out = h_new
        else:
            m = mask[:, t, None]  # (N, 1)
            out = np.where(m, h_new, 0 if layer.zero_output_for_mask else h)  # (N, M)
            h = np.where(m, h_new, h)  # (N, M)
        if seq is not None:
            seq[:, t] = out
    if seq is None:
        seq = out[:, None, :]
    return out, seq


def head_after(model: Model, layer: Recurrent) -> Callable[[Array], Array] | None:
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
