"""Keras's activation *layers* (``ReLU``, ``LeakyReLU``, ``PReLU``, ``ELU``, ``Softmax``).

These carry their own arguments (unlike ``Activation("relu")``, which ``activations``
looks up by name). Checked against Keras 3.15 (``keras/src/layers/activations/``,
``keras/src/activations/activations.py``) and tf_keras 2.21
(``tf_keras/src/layers/activation/``, ``tf_keras/src/backend.py``); the two agree
except for ``Softmax`` with a mask (see :func:`softmax`).

Config keys, per layer (Keras 3 / tf_keras):

* ``ReLU``: ``max_value`` (None), ``negative_slope`` (0.0), ``threshold`` (0.0), both.
* ``LeakyReLU``: ``negative_slope`` (Keras 3) / ``alpha`` (tf_keras), default 0.3 in
  both (the *function* ``keras.activations.leaky_relu`` defaults to 0.2, the layer
  does not). Keras 3 still accepts ``alpha`` in a config.
* ``PReLU``: weight ``alpha`` of shape ``input_shape[1:]`` with 1 on each (1-based)
  ``shared_axes`` entry, e.g. ``(1, D)`` for ``shared_axes=[1]`` on ``(N, T, D)``.
* ``ELU``: ``alpha`` (1.0).
* ``Softmax``: ``axis`` (-1, an int or a list).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]
else:  # numpy.typing takes milliseconds to import, on every start; the alias is for mypy
    Array = np.ndarray
Axis = int | Sequence[int]


def _float(x: Array) -> Array:
    a = np.asarray(x)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float32)


def relu(
    x: Array,
    *,
    max_value: float | None = None,
    negative_slope: float = 0.0,
    threshold: float = 0.0,
) -> Array:
    """Keras ``ReLU`` layer (``activations.relu`` / ``backend.relu`` in both generations).

    ``f(x) = min(x, max_value)`` for ``x > threshold``, ``negative_slope * (x - threshold)``
    otherwise (``x == threshold`` gives 0). With a threshold, ``max_value`` clips the
    kept part to ``[0, max_value]``, exactly as Keras's clip does.
    """
    x = _float(x)
    dt = x.dtype.type
    if negative_slope != 0.0:
        if max_value is None and threshold == 0:
            return leaky_relu(x, negative_slope)
        negative_part = np.maximum(dt(threshold) - x, 0)  # (..., C)  relu(threshold - x)
    # x where x > threshold, else 0 (plain relu when the threshold is 0)
    y = np.where(x > dt(threshold), x, dt(0))  # (..., C)
    if max_value is not None:
        y = np.clip(y, dt(0), dt(max_value))  # (..., C)
    if negative_slope != 0.0:
        y = y - dt(negative_slope) * negative_part  # (..., C)
    return y


def leaky_relu(x: Array, alpha: float = 0.3) -> Array:
    """Keras ``LeakyReLU`` (``tf.nn.leaky_relu``): ``x`` for ``x > 0``, ``alpha * x`` else.

    The slope is ``negative_slope`` in a Keras 3 config and ``alpha`` in a tf_keras one;
    the layer's default is 0.3 in both.
    """
    x = _float(x)
    return np.where(x > 0, x, x.dtype.type(alpha) * x)


def prelu(x: Array, alpha: Array, shared_axes: Sequence[int] | None = None) -> Array:
    """Keras ``PReLU``: ``relu(x) - alpha * relu(-x)``.

    ``alpha`` is the stored weight, shape ``x.shape[1:]`` with size 1 on every
    ``shared_axes`` entry (1-based, the batch axis is 0), so it broadcasts as stored.
    """
    x = _float(x)
    a = np.asarray(alpha, dtype=x.dtype)  # (T|1, C|1)
    if shared_axes is not None:
        for i in shared_axes:
            if a.shape[i - 1] != 1:
                raise ValueError(f"PReLU alpha {a.shape} should have size 1 on shared axis {i}")
    pos = np.maximum(x, 0)  # (N, T, C)
    neg = -a * np.maximum(-x, 0)  # (N, T, C)
    return pos + neg  # type: ignore[no-any-return]


def elu(x: Array, alpha: float = 1.0) -> Array:
    """Keras ``ELU`` layer: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
    x = _float(x)
    res = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))  # (..., C)  tf.nn.elu
    if alpha == 1:
        return res
    return np.where(x > 0, res, x.dtype.type(alpha) * res)


def _axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    if isinstance(axis, int):
        return (axis % ndim,)
    return tuple(a % ndim for a in axis)


def plain_softmax(x: Array, axis: Axis = -1) -> Array:
    """``exp(x - max) / sum(exp(x - max))`` over one axis; over several axes Keras uses
    ``exp(x - logsumexp(x))``, which is the same function."""
    axes = _axes(axis, x.ndim)
    m = np.max(x, axis=axes, keepdims=True)  # (..., 1)
    e = np.exp(x - m)  # (..., C)
    s = np.sum(e, axis=axes, keepdims=True)  # (..., 1)
    if len(axes) == 1:
        return e / s  # type: ignore[no-any-return]
    return np.exp(x - (np.log(s) + m))  # type: ignore[no-any-return]


def _large_negative(dtype: np.dtype[Any], keras_major: int) -> float:
    if dtype == np.float16:
        # Keras 3: -3e4; tf_keras: float16.min / 2.
        return -3e4 if keras_major >= 3 else float(np.finfo(np.float16).min) / 2
    return -1e9


def softmax(
    x: Array,
    axis: Axis = -1,
    mask: Array | None = None,
    *,
    keras_major: int = 3,
    robust_masking: bool = False,
) -> Array:
    """Keras ``Softmax`` layer, with the optional ``mask`` (broadcastable to ``x``, True =
    keep).

    * Keras 3: ``x = where(mask, x, -1e9)``; softmax; then ``where(mask, y, 0)``, so a
      slice whose mask is all False comes out all zeros.
    * tf_keras: ``x += (1 - mask) * -1e9`` (or ``where(mask, x, -1e9)`` with
      ``robust_masking``, a ``MultiHeadAttention(softmax_robust_masking=True)`` option);
      no zeroing afterwards, so an all-masked slice comes out (close to) uniform.

    A float mask is read as ``mask > 0.5`` (Keras 3) and cast as is (tf_keras).
    """
    x = _float(x)
    if mask is None:
        return plain_softmax(x, axis)
    dt = x.dtype.type
    m = np.asarray(mask)
    big = dt(_large_negative(x.dtype, keras_major))
    if keras_major >= 3:
        keep = m if m.dtype == np.bool_ else m > 0.5  # (..., C)
        y = plain_softmax(np.where(keep, x, big), axis)  # (..., C)
        return np.where(keep, y, dt(0))
    if robust_masking:
        keep = m if m.dtype == np.bool_ else m > 0.5  # (..., C)
        return plain_softmax(np.where(keep, x, big), axis)
    adder = (dt(1) - m.astype(x.dtype)) * big  # (..., C)
    return plain_softmax(x + adder, axis)
