"""Convolutions, pooling and ConvLSTM as Keras computes them, in NumPy.

Layout is channels_last (Keras's default): ``(N, *spatial, C)``; every op also takes
``data_format="channels_first"`` (``(N, C, *spatial)``) and transposes at the
boundary. Kernels always have Keras's layout ``(*kernel_size, C // groups, F)``,
whatever the data format. Arithmetic runs in the input's dtype (weights are cast to
it), so float32 in gives float32 out.

Padding (``padding=``), per spatial axis of length ``L``, kernel ``k``, stride ``s``,
dilation ``d`` (effective kernel ``(k - 1) * d + 1``):

* ``"valid"``:  no padding; output ``floor((L - (k - 1) * d - 1) / s) + 1``;
* ``"same"``:   TensorFlow's SAME: output ``ceil(L / s)``, total padding
  ``max((ceil(L / s) - 1) * s + (k - 1) * d + 1 - L, 0)``, of which ``total // 2`` on
  the left and the rest (one more when odd) on the right;
* ``"causal"``: (1-D only) ``(k - 1) * d`` zeros on the left, then ``"valid"``;
  output ``ceil(L / s)``.

Pooling uses the same arithmetic with ``d = 1``; ``"same"`` max pooling never picks
a padded element and ``"same"`` average pooling divides by the number of unpadded
elements in each window (``tf.nn.avg_pool``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import product
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]
else:  # numpy.typing takes milliseconds to import, on every start; the alias is for mypy
    Array = np.ndarray
Activation = Callable[[Array], Array]
IntOrTuple = int | Sequence[int]

__all__ = [
    "conv1d",
    "conv2d",
    "conv_nd",
    "conv_output_length",
    "conv_output_shape",
    "convlstm_scan",
    "global_pool1d",
    "global_pool2d",
    "pool1d",
    "pool2d",
    "pool_nd",
    "pool_output_length",
    "pool_output_shape",
    "same_padding",
]


# --------------------------------------------------------------------------- shapes


def _tuple(value: IntOrTuple | None, rank: int, name: str) -> tuple[int, ...]:
    """Keras's ``standardize_tuple``: an int (or a 1-list) stands for every axis."""
    if value is None:
        raise ValueError(f"{name} is required")
    if isinstance(value, (int, np.integer)):
        out: tuple[int, ...] = (int(value),) * rank
    else:
        out = tuple(int(v) for v in value)
        if len(out) == 1 and rank > 1:
            out = out * rank
    if len(out) != rank or any(v <= 0 for v in out):
        raise ValueError(f"{name}={value!r}: expected {rank} positive integer(s)")
    return out


def _check_padding(padding: str, *, allow_causal: bool) -> str:
    p = padding.lower()
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    if p not in allowed:
        raise ValueError(f"padding={padding!r}: expected one of {', '.join(allowed)}")
    return p


def same_padding(length: int, kernel_size: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: ``(left, right)``, right gets the odd one."""
    out = -(-length // stride)  # ceil(L / s)
    total = max((out - 1) * stride + (kernel_size - 1) * dilation + 1 - length, 0)
    return total // 2, total - total // 2


def _pads(
    length: int, kernel_size: int, stride: int, dilation: int, padding: str
) -> tuple[int, int]:
    if padding == "same":
        return same_padding(length, kernel_size, stride, dilation)
    if padding == "causal":
        return (kernel_size - 1) * dilation, 0
    return 0, 0


def conv_output_length(
    length: int | None, kernel_size: int, padding: str, stride: int, dilation: int = 1
) -> int | None:
    """Output length of one convolved axis (Keras's ``compute_conv_output_shape``).

    ``None`` (unknown length) stays ``None``; a non-positive ``"valid"`` output is an
    error, as in Keras 3.
    """
    if length is None:
        return None
    p = _check_padding(padding, allow_causal=True)
    if p == "valid":
        out = (length - (kernel_size - 1) * dilation - 1) // stride + 1
        if out <= 0:
            raise ValueError(
                f"convolution output would be empty: length {length}, kernel {kernel_size}, "
                f"stride {stride}, dilation {dilation}, padding 'valid'"
            )
        return out
    return (length - 1) // stride + 1  # "same" and "causal": ceil(L / s)


def conv_output_shape(
    spatial: Sequence[int | None],
    kernel_size: IntOrTuple,
    padding: str,
    strides: IntOrTuple = 1,
    dilation_rate: IntOrTuple = 1,
) -> tuple[int | None, ...]:
    """Output spatial shape (e.g. ``(H, W) -> (H', W')``) of a convolution."""
    r = len(spatial)
    ks, ss, ds = (
        _tuple(v, r, n)
        for v, n in (
            (kernel_size, "kernel_size"),
            (strides, "strides"),
            (dilation_rate, "dilation_rate"),
        )
    )
    return tuple(
        conv_output_length(L, k, padding, s, d)
        for L, k, s, d in zip(spatial, ks, ss, ds, strict=True)
    )


def pool_output_length(length: int | None, pool_size: int, padding: str, stride: int) -> int | None:
    """Output length of one pooled axis (Keras's ``compute_pooling_output_shape``)."""
    if length is None:
        return None
    p = _check_padding(padding, allow_causal=False)
    if p == "valid":
        out = (length - pool_size) // stride + 1
        if out <= 0:
            raise ValueError(
                f"pooling output would be empty: length {length}, pool_size {pool_size}, "
                f"stride {stride}, padding 'valid'"
            )
        return out
    return (length - 1) // stride + 1


def pool_output_shape(
    spatial: Sequence[int | None],
    pool_size: IntOrTuple,
    padding: str,
    strides: IntOrTuple | None = None,
) -> tuple[int | None, ...]:
    """Output spatial shape of a pooling; ``strides=None`` means ``pool_size`` (Keras)."""
    r = len(spatial)
    ps = _tuple(pool_size, r, "pool_size")
    ss = ps if strides is None else _tuple(strides, r, "strides")
    return tuple(
        pool_output_length(L, p, padding, s) for L, p, s in zip(spatial, ps, ss, strict=True)
    )


def _known(shape: tuple[int | None, ...]) -> tuple[int, ...]:
    """A shape of known lengths (conv_output_shape of a concrete input)."""
    out = tuple(v for v in shape if v is not None)
    if len(out) != len(shape):
        raise ValueError(f"unknown length in {shape}")
    return out


# ---------------------------------------------------------------- layout boundaries


def _to_last(x: Array, rank: int, data_format: str) -> Array:
    """``(..., C, *S)`` -> ``(..., *S, C)`` for channels_first; identity otherwise."""
    if data_format == "channels_last":
        return x
    if data_format != "channels_first":
        raise ValueError(f"data_format={data_format!r}")
    return np.moveaxis(x, -rank - 1, -1)


def _from_last(y: Array, rank: int, data_format: str) -> Array:
    if data_format == "channels_last":
        return y
    return np.ascontiguousarray(np.moveaxis(y, -1, -rank - 1))


# ------------------------------------------------------------------- convolutions


def _taps(
    xp: Array,
    kernel_size: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
    out: tuple[int, ...],
) -> Array:
    """The ``K = prod(kernel_size)`` dilated, strided shifted views of a padded input,
    stacked in the kernel's row-major tap order: ``(B, *S_pad, C) -> (B, *O, K, C)``.

    Tap ``j`` (a kernel position ``(j_1, .., j_r)``) of output position ``o`` reads
    input position ``o * s + j * d`` on every axis.
    """
    B, C = xp.shape[0], xp.shape[-1]
    cols = np.empty((B, *out, math.prod(kernel_size), C), dtype=xp.dtype)
    for t, j in enumerate(product(*(range(k) for k in kernel_size))):
        window = tuple(
            slice(jj * d, jj * d + (o - 1) * s + 1, s)
            for jj, d, s, o in zip(j, dilation, strides, out, strict=True)
        )
        cols[..., t, :] = xp[(slice(None), *window, slice(None))]  # (B, *O, C)
    return cols  # (B, *O, K, C)


def conv_nd(
    x: Array,
    kernel: Array,
    bias: Array | None,
    *,
    strides: IntOrTuple = 1,
    padding: str = "valid",
    dilation_rate: IntOrTuple = 1,
    groups: int = 1,
    data_format: str = "channels_last",
) -> Array:
    """Keras's ``Conv{1,2,3}D`` call without its activation (``ops.conv`` plus bias).

    ``y[n, o, f] = b[f] + sum_{j, c} xpad[n, o * s + j * d, g(f) * Cg + c] * kernel[j, c, f]``
    with ``Cg = C // groups``, ``g(f) = f // (F // groups)`` (filters are split into
    contiguous groups, each seeing its own contiguous block of input channels), the
    sum over every kernel position ``j`` and ``c < Cg``. ``x``: ``(..., *S, C)``, any
    number of leading batch axes (Keras 3 accepts them); ``kernel``: ``(*k, Cg, F)``.
    """
    rank = kernel.ndim - 2
    if rank < 1:
        raise ValueError(f"kernel of shape {kernel.shape}: expected (*kernel_size, C // groups, F)")
    ks = tuple(int(k) for k in kernel.shape[:rank])
    ss = _tuple(strides, rank, "strides")
    ds = _tuple(dilation_rate, rank, "dilation_rate")
    p = _check_padding(padding, allow_causal=rank == 1)
    x = _to_last(x, rank, data_format)
    if x.ndim < rank + 2:
        raise ValueError(f"input of shape {x.shape}: expected (N, *spatial[{rank}], C)")
    lead, S, C = x.shape[: -rank - 1], x.shape[-rank - 1 : -1], x.shape[-1]
    Cg, F = kernel.shape[-2], kernel.shape[-1]
    if groups < 1 or C % groups or F % groups or Cg * groups != C:
        raise ValueError(
            f"input channels {C}, kernel {kernel.shape}, groups {groups}: "
            "need C == groups * kernel.shape[-2] and F divisible by groups"
        )
    out = _known(conv_output_shape(S, ks, p, ss, ds))
    pads = [_pads(L, k, s, d, p) for L, k, s, d in zip(S, ks, ss, ds, strict=True)]

    xb = x.reshape(-1, *S, C)  # (B, *S, C)
    xp = np.pad(xb, [(0, 0), *pads, (0, 0)])  # (B, *S_pad, C)
    cols = _taps(xp, ks, ss, ds, out)  # (B, *O, K, C)
    K = cols.shape[-2]
    M = cols.size // (K * C)  # B * prod(O)
    w = kernel.astype(x.dtype, copy=False)
    if groups == 1:
        y = cols.reshape(M, K * C) @ w.reshape(K * C, F)  # (M, F)
    else:
        G, Fg = groups, F // groups
        a = cols.reshape(M, K, G, Cg).transpose(2, 0, 1, 3).reshape(G, M, K * Cg)  # (G, M, K*Cg)
        wg = w.reshape(K, Cg, G, Fg).transpose(2, 0, 1, 3).reshape(G, K * Cg, Fg)  # (G, K*Cg, Fg)
        y = np.matmul(a, wg).transpose(1, 0, 2).reshape(M, F)  # (M, F)
    if bias is not None:
        y += bias.astype(x.dtype, copy=False)  # (M, F)
    y = y.reshape(*lead, *out, F)  # (..., *O, F)
    return _from_last(y, rank, data_format)


def conv1d(
    x: Array,
    kernel: Array,
    bias: Array | None,
    *,
    strides: IntOrTuple = 1,
    padding: str = "valid",
    dilation_rate: IntOrTuple = 1,
    groups: int = 1,
    data_format: str = "channels_last",
) -> Array:
    """Keras ``Conv1D`` (no activation): ``(N, T, C)`` -> ``(N, T', F)``.

    ``kernel``: ``(k, C // groups, F)``; ``bias``: ``(F,)`` or None. ``padding``
    ``"valid"``, ``"same"`` (TF SAME, extra zero on the right) or ``"causal"``
    (``(k - 1) * d`` zeros on the left, then valid: ``y[t]`` sees ``x[<= t * s]``).
    """
    if kernel.ndim != 3:
        raise ValueError(f"Conv1D kernel of shape {kernel.shape}: expected (k, C // groups, F)")
    return conv_nd(
        x,
        kernel,
        bias,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        groups=groups,
        data_format=data_format,
    )


def conv2d(
    x: Array,
    kernel: Array,
    bias: Array | None,
    *,
    strides: IntOrTuple = 1,
    padding: str = "valid",
    dilation_rate: IntOrTuple = 1,
    groups: int = 1,
    data_format: str = "channels_last",
) -> Array:
    """Keras ``Conv2D`` (no activation): ``(N, H, W, C)`` -> ``(N, H', W', F)``.

    ``kernel``: ``(kh, kw, C // groups, F)``; ``padding`` ``"valid"`` or ``"same"``.
    """
    if kernel.ndim != 4:
        raise ValueError(
            f"Conv2D kernel of shape {kernel.shape}: expected (kh, kw, C // groups, F)"
        )
    return conv_nd(
        x,
        kernel,
        bias,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        groups=groups,
        data_format=data_format,
    )


# ------------------------------------------------------------------------ pooling


def _window_counts(length: int, pool: int, stride: int, left: int, out: int) -> Array:
    """Unpadded elements in each window of one axis: ``(O,)``."""
    start = np.arange(out) * stride - left  # (O,)
    return np.minimum(start + pool, length) - np.maximum(start, 0)  # (O,)


def pool_nd(
    x: Array,
    *,
    op: str,
    pool_size: IntOrTuple,
    strides: IntOrTuple | None = None,
    padding: str = "valid",
    data_format: str = "channels_last",
    rank: int,
) -> Array:
    """``MaxPooling{r}D`` / ``AveragePooling{r}D``: ``(N, *S, C) -> (N, *O, C)``.

    Max: the largest unpadded element of each window. Average: the sum of the
    unpadded elements of each window divided by their number (TF SAME semantics:
    padding never counts). ``strides=None`` means ``pool_size`` (the Keras default).
    """
    if op not in ("max", "avg"):
        raise ValueError(f"op={op!r}: expected 'max' or 'avg'")
    ps = _tuple(pool_size, rank, "pool_size")
    ss = ps if strides is None else _tuple(strides, rank, "strides")
    p = _check_padding(padding, allow_causal=False)
    x = _to_last(x, rank, data_format)
    lead, S, C = x.shape[: -rank - 1], x.shape[-rank - 1 : -1], x.shape[-1]
    out = _known(pool_output_shape(S, ps, p, ss))
    pads = [_pads(L, k, s, 1, p) for L, k, s in zip(S, ps, ss, strict=True)]
    xb = x.reshape(-1, *S, C)  # (B, *S, C)
    if op == "max":
        floating = np.issubdtype(x.dtype, np.floating)
        fill = -np.inf if floating else np.iinfo(x.dtype).min
        xp = np.pad(xb, [(0, 0), *pads, (0, 0)], constant_values=fill)  # (B, *S_pad, C)
        y = _taps(xp, ps, ss, (1,) * rank, out).max(axis=-2)  # (B, *O, C)
    else:
        xp = np.pad(xb, [(0, 0), *pads, (0, 0)])  # (B, *S_pad, C)
        total = _taps(xp, ps, ss, (1,) * rank, out).sum(axis=-2)  # (B, *O, C)
        count = np.ones((), dtype=x.dtype)
        for axis, (L, k, s, (left, _), o) in enumerate(zip(S, ps, ss, pads, out, strict=True)):
            shape = [1] * rank
            shape[axis] = o
            count = count * _window_counts(L, k, s, left, o).astype(x.dtype).reshape(shape)  # (*O)
        y = (total / count[..., None]).astype(x.dtype, copy=False)  # (B, *O, C)
    y = y.reshape(*lead, *out, C)  # (..., *O, C)
    return _from_last(y, rank, data_format)


def pool1d(
    x: Array,
    *,
    op: str,
    pool_size: int | Sequence[int] = 2,
    strides: int | Sequence[int] | None = None,
    padding: str = "valid",
    data_format: str = "channels_last",
) -> Array:
    """Keras ``MaxPooling1D`` (``op="max"``) / ``AveragePooling1D`` (``op="avg"``):
    ``(N, T, C) -> (N, T', C)``."""
    return pool_nd(
        x,
        op=op,
        pool_size=pool_size,
        strides=strides,
        padding=padding,
        data_format=data_format,
        rank=1,
    )


def pool2d(
    x: Array,
    *,
    op: str,
    pool_size: IntOrTuple = (2, 2),
    strides: IntOrTuple | None = None,
    padding: str = "valid",
    data_format: str = "channels_last",
) -> Array:
    """Keras ``MaxPooling2D`` / ``AveragePooling2D``: ``(N, H, W, C) -> (N, H', W', C)``."""
    return pool_nd(
        x,
        op=op,
        pool_size=pool_size,
        strides=strides,
        padding=padding,
        data_format=data_format,
        rank=2,
    )


def global_pool1d(
    x: Array,
    mask: Array | None = None,
    *,
    op: str,
    keepdims: bool = False,
    data_format: str = "channels_last",
    keras_major: int = 3,
) -> Array:
    """``GlobalAveragePooling1D`` / ``GlobalMaxPooling1D``: ``(N, T, C) -> (N, C)``
    (``(N, 1, C)`` with ``keepdims``).

    Average with a mask ``(N, T)``: ``sum_t(x * m) / sum_t(m)`` per sample; an
    all-masked sample gives ``0 / 0 = NaN``, as in Keras. Keras 3 zeroes masked steps
    with ``where`` (a NaN/inf there is dropped); tf_keras multiplies (``NaN * 0`` stays
    NaN): ``keras_major`` picks which. Max ignores the mask in every Keras (its
    ``call`` takes none): masked steps count.
    """
    if op not in ("max", "avg"):
        raise ValueError(f"op={op!r}: expected 'max' or 'avg'")
    x = _to_last(x, 1, data_format)  # (N, T, C)
    if op == "max":
        y = x.max(axis=1, keepdims=True)  # (N, 1, C)
    elif mask is None:
        y = x.mean(axis=1, keepdims=True, dtype=x.dtype)  # (N, 1, C)
    else:
        m = np.asarray(mask).astype(bool)[:, :, None]  # (N, T, 1)
        kept = np.where(m, x, 0) if keras_major >= 3 else x * m.astype(x.dtype)  # (N, T, C)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = kept.sum(axis=1, keepdims=True, dtype=x.dtype) / m.sum(
                axis=1, keepdims=True
            ).astype(x.dtype)  # (N, 1, C)
    if not keepdims:
        return y[:, 0, :]  # type: ignore[no-any-return]
    return _from_last(y, 1, data_format)


def global_pool2d(
    x: Array,
    *,
    op: str,
    keepdims: bool = False,
    data_format: str = "channels_last",
) -> Array:
    """``GlobalAveragePooling2D`` / ``GlobalMaxPooling2D``: ``(N, H, W, C) -> (N, C)``
    (``(N, 1, 1, C)`` with ``keepdims``). Neither takes a mask."""
    if op not in ("max", "avg"):
        raise ValueError(f"op={op!r}: expected 'max' or 'avg'")
    x = _to_last(x, 2, data_format)  # (N, H, W, C)
    if op == "max":
        y = x.max(axis=(1, 2), keepdims=True)  # (N, 1, 1, C)
    else:
        y = x.mean(axis=(1, 2), keepdims=True, dtype=x.dtype)  # (N, 1, 1, C)
    if not keepdims:
        return y[:, 0, 0, :]  # type: ignore[no-any-return]
    return _from_last(y, 2, data_format)


# ----------------------------------------------------------------------- ConvLSTM


def convlstm_scan(
    x: Array,
    kernel: Array,
    recurrent_kernel: Array,
    bias: Array | None,
    *,
    rank: int,
    strides: IntOrTuple = 1,
    padding: str = "valid",
    dilation_rate: IntOrTuple = 1,
    activation: Activation,
    recurrent_activation: Activation,
    go_backwards: bool = False,
    return_sequences: bool = False,
    keep_gates: bool = False,
    initial_state: Sequence[Array] | None = None,
    mask: Array | None = None,
    zero_output_for_mask: bool = False,
    data_format: str = "channels_last",
) -> dict[str, Array]:
    """Keras ``ConvLSTM1D`` (``rank=1``, ``x (N, T, W, C)``) / ``ConvLSTM2D``
    (``rank=2``, ``x (N, T, H, W, C)``), ConvLSTMCell of Keras 3 and tf_keras.

    ``kernel (*k, C, 4F)``, ``recurrent_kernel (*k, F, 4F)``, ``bias (4F,)``; gate
    blocks of ``F`` along the last axis in the order i, f, c, o. Per step::

        z = conv(x_t, kernel, strides, padding, dilation_rate) + bias
            + conv(h, recurrent_kernel, stride 1, "same", dilation 1)
        i, f, o = recurrent_activation(z_i), recurrent_activation(z_f), recurrent_activation(z_o)
        c = f * c + i * activation(z_c);  h = o * activation(c)

    (the recurrent conv ignores the layer's strides, padding and dilation). ``h``
    and ``c`` have the input conv's output spatial shape ``O``; zeros unless
    ``initial_state=[h0, c0]``. ``go_backwards`` processes ``t = T-1 .. 0`` and
    the sequence comes back in processing order. A mask ``(N, T)``: a masked step
    keeps ``h, c`` and repeats the previous output (zeros with
    ``zero_output_for_mask``, Keras's RNN option). A mask ``(N, T, *O)`` (what a
    ``Masking`` layer in front computes: ``any`` over channels only) masks each
    output position separately, as Keras's RNN loop broadcasts it; Keras can only
    take it when ``O`` equals the input's spatial shape.

    Returns ``output`` (the ``(N, T, *O, F)`` sequence or the last output
    ``(N, *O, F)``), final ``h`` and ``c``; with ``keep_gates`` also ``seq_h``,
    ``seq_c`` (states after each step) and the gates ``i``, ``f``, ``g`` (the
    activated candidate), ``o``, each ``(N, T, *O, F)`` in processing order.
    """
    if kernel.ndim != rank + 2 or recurrent_kernel.ndim != rank + 2:
        raise ValueError(
            f"ConvLSTM{rank}D kernels {kernel.shape}, {recurrent_kernel.shape}: "
            f"expected {rank} kernel axes, then (C, 4F) and (F, 4F)"
        )
    F = recurrent_kernel.shape[-2]
    if kernel.shape[-1] != 4 * F or recurrent_kernel.shape[-1] != 4 * F:
        raise ValueError(
            f"ConvLSTM kernels {kernel.shape}, {recurrent_kernel.shape}: last axis must be 4F"
        )
    if bias is not None and bias.shape != (4 * F,):
        raise ValueError(f"ConvLSTM bias {bias.shape}: expected ({4 * F},)")
    _check_padding(padding, allow_causal=False)
    x = _to_last(x, rank, data_format)  # (N, T, *S, C)
    N, T = x.shape[:2]
    dt = x.dtype
    wr = recurrent_kernel.astype(dt, copy=False)

    # The input convolution of every step at once.
    xz = conv_nd(
        x.reshape(N * T, *x.shape[2:]),
        kernel,
        bias,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
    )  # (N*T, *O, 4F)
    osp = xz.shape[1:-1]
    xz = xz.reshape(N, T, *osp, 4 * F)  # (N, T, *O, 4F)

    if initial_state is None:
        h = np.zeros((N, *osp, F), dtype=dt)  # (N, *O, F)
        c = np.zeros((N, *osp, F), dtype=dt)  # (N, *O, F)
    else:
        h, c = (_to_last(np.asarray(s), rank, data_format).astype(dt) for s in initial_state)
        if h.shape != (N, *osp, F) or c.shape != (N, *osp, F):
            raise ValueError(
                f"ConvLSTM initial state {h.shape}, {c.shape}: expected {(N, *osp, F)}"
            )
    steps = range(T - 1, -1, -1) if go_backwards else range(T)
    m = None if mask is None else np.asarray(mask).astype(bool)  # (N, T) or (N, T, *O)
    if m is not None and m.shape != (N, T) and m.shape != (N, T, *osp):
        raise ValueError(f"ConvLSTM mask {m.shape}: expected {(N, T)} or {(N, T, *osp)}")

    prev_out = np.zeros((N, *osp, F), dtype=dt)  # (N, *O, F)
    outs: list[Array] = []
    keep: dict[str, list[Array]] = {k: [] for k in ("seq_h", "seq_c", "i", "f", "g", "o")}
    for t in steps:
        z = xz[:, t] + conv_nd(h, wr, None, padding="same")  # (N, *O, 4F)
        i = recurrent_activation(z[..., :F])  # (N, *O, F)
        f = recurrent_activation(z[..., F : 2 * F])  # (N, *O, F)
        g = activation(z[..., 2 * F : 3 * F])  # (N, *O, F)
        o = recurrent_activation(z[..., 3 * F :])  # (N, *O, F)
        c_new = f * c + i * g  # (N, *O, F)
        h_new = o * activation(c_new)  # (N, *O, F)
        if m is None:
            h, c, out = h_new, c_new, h_new
        else:
            mt = m[:, t]  # (N,) or (N, *O)
            mt = mt.reshape(mt.shape + (1,) * (h.ndim - mt.ndim))  # (N, 1.., 1) or (N, *O, 1)
            h = np.where(mt, h_new, h)  # (N, *O, F)
            c = np.where(mt, c_new, c)  # (N, *O, F)
            out = np.where(mt, h_new, 0 if zero_output_for_mask else prev_out)  # (N, *O, F)
        prev_out = out
        if return_sequences:
            outs.append(out)
        if keep_gates:
            for k, v in (("seq_h", h), ("seq_c", c), ("i", i), ("f", f), ("g", g), ("o", o)):
                keep[k].append(v)

    def seq(vs: list[Array]) -> Array:
        stacked = np.stack(vs, axis=1).astype(dt, copy=False)  # (N, T, *O, F)
        return _from_last(stacked, rank, data_format)

    def state(v: Array) -> Array:
        return _from_last(v.astype(dt, copy=False), rank, data_format)  # (N, *O, F)

    result = {
        "output": seq(outs) if return_sequences else state(prev_out),
        "h": state(h),
        "c": state(c),
    }
    if keep_gates:
        result.update({k: seq(v) for k, v in keep.items()})
    return result
