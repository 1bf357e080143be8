"""Keras's ``BatchNormalization`` (inference) and ``LayerNormalization``.

References: Keras 3.15 ``keras/src/layers/normalization/{batch,layer}_normalization.py``
and ``keras/src/ops/nn.py`` (``_layer_normalization``) on the TF backend
(``tf.nn.moments``, ``tf.nn.batch_normalization``); tf_keras 2.21
``tf_keras/src/layers/normalization/``.

Both compute in at least float32 (float16 inputs are widened, the result cast back),
as Keras does.

Weights, in stored order (``vars/0..`` in ``.weights.h5``, ``weight_names`` in legacy
HDF5), only those present:

* ``BatchNormalization``: ``gamma`` (``scale=True``), ``beta`` (``center=True``),
  ``moving_mean``, ``moving_variance``, each ``(C,)``; config ``axis`` (-1),
  ``epsilon`` (1e-3), ``center``, ``scale``.
* ``LayerNormalization``: ``gamma`` (``scale=True``, or Keras 3 ``rms_scaling=True``),
  ``beta`` (``center=True`` and not ``rms_scaling``), shape ``x.shape[axis]`` for each
  (sorted) axis; config ``axis`` (-1, int or list), ``epsilon`` (1e-3), ``center``,
  ``scale``, and Keras 3 only ``rms_scaling`` (False).
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


def _compute_dtype(x: Array) -> np.dtype[Any]:
    dt = np.asarray(x).dtype
    if not np.issubdtype(dt, np.floating):
        return np.dtype(np.float32)
    return np.result_type(dt, np.float32)


def batch_norm(
    x: Array,
    *,
    axis: int = -1,
    gamma: Array | None,
    beta: Array | None,
    moving_mean: Array,
    moving_variance: Array,
    epsilon: float = 1e-3,
) -> Array:
    """Keras ``BatchNormalization`` at inference (the moving statistics), as
    ``tf.nn.batch_normalization`` computes it:

        inv = gamma / sqrt(moving_variance + epsilon)
        y   = x * inv + (beta - moving_mean * inv)

    ``gamma``/``beta`` are None when ``scale``/``center`` is False. Keras 3 and tf_keras
    (unfused on 2-D/3-D inputs) are the same formula.
    """
    xa = np.asarray(x)
    out_dt = xa.dtype if np.issubdtype(xa.dtype, np.floating) else np.dtype(np.float32)
    dt = _compute_dtype(xa)
    xc = xa.astype(dt, copy=False)  # (N, T, C)
    shape = [1] * xc.ndim
    shape[axis] = xc.shape[axis]
    mean = np.asarray(moving_mean, dtype=dt)  # (C,)
    var = np.asarray(moving_variance, dtype=dt)  # (C,)
    inv = dt.type(1) / np.sqrt(var + dt.type(epsilon))  # (C,)
    if gamma is not None:
        inv = inv * np.asarray(gamma, dtype=dt)  # (C,)
    shift = -mean * inv  # (C,)
    if beta is not None:
        shift = np.asarray(beta, dtype=dt) + shift  # (C,)
    y = xc * inv.reshape(shape) + shift.reshape(shape)  # (N, T, C)
    return np.asarray(y, dtype=out_dt)


def layer_norm(
    x: Array,
    *,
    axes: int | Sequence[int] = -1,
    gamma: Array | None,
    beta: Array | None,
    epsilon: float = 1e-3,
    rms_scaling: bool = False,
) -> Array:
    """Keras ``LayerNormalization`` over ``axes`` (Keras 3 ``ops.layer_normalization``):

        mean = mean(x, axes);  var = mean((x - mean)^2, axes)     # tf.nn.moments
        inv  = gamma / sqrt(var + epsilon)
        y    = x * inv + (beta - mean * inv)

    Keras 3 ``rms_scaling=True`` (deprecated there): ``y = x / sqrt(var + epsilon) *
    gamma``, with the *centred* variance, no mean subtracted and no beta.

    tf_keras takes the same formula unfused, and when the axes are the trailing ones,
    ``epsilon >= 1.001e-5`` and the dtype is float32 it uses ``fused_batch_norm``:
    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``; the two agree to float32
    rounding except where |mean| >> std (the expanded form cancels).
    """
    xa = np.asarray(x)
    out_dt = xa.dtype if np.issubdtype(xa.dtype, np.floating) else np.dtype(np.float32)
    dt = _compute_dtype(xa)
    xc = xa.astype(dt, copy=False)  # (N, T, C)
    ax = sorted(a % xc.ndim for a in ((axes,) if isinstance(axes, int) else axes))
    shape = [1] * xc.ndim
    for a in ax:
        shape[a] = xc.shape[a]
    g = None if gamma is None else np.asarray(gamma, dtype=dt).reshape(shape)  # (1, 1, C)
    b = None if beta is None else np.asarray(beta, dtype=dt).reshape(shape)  # (1, 1, C)
    mean = np.mean(xc, axis=tuple(ax), keepdims=True)  # (N, T, 1)
    var = np.mean(np.square(xc - mean), axis=tuple(ax), keepdims=True)  # (N, T, 1)
    inv = dt.type(1) / np.sqrt(var + dt.type(epsilon))  # (N, T, 1)
    if rms_scaling:
        y = xc * inv  # (N, T, C)
        if g is not None:
            y = y * g  # (N, T, C)
        return np.asarray(y, dtype=out_dt)
    if g is not None:
        inv = inv * g  # (N, T, C)
    res = -mean * inv  # (N, T, C)
    if b is not None:
        res = res + b  # (N, T, C)
    y = xc * inv + res  # (N, T, C)
    return np.asarray(y, dtype=out_dt)
