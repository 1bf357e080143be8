"""Derivatives of the Keras activations (``activations.py``), for the chain rule.

An elementwise activation ``y = act(u)`` has the diagonal Jacobian ``diag(act'(u))``;
``slope`` gives ``act'(u)`` from the pre-activation ``u`` and the output ``y`` (some
derivatives read best in terms of ``y``: ``tanh' = 1 - y^2``). Softmax and
log-softmax act across the last axis; their Jacobians are full and are applied by
``left`` and ``right`` without being built:

    softmax      J = diag(s) - s s^T
    log_softmax  J = I - 1 s^T,   s = softmax(u)

Kinks (relu at 0, the clip points of hard_sigmoid) take the derivative TensorFlow
and JAX take there: the one of the flat side.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..activations import ACROSS_FEATURES
from ..model import Array

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(u: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * u))


def _gelu_slope(u: Array, y: Array) -> Array:
    # gelu(u) = u * Phi(u); d/du = Phi(u) + u * phi(u), Phi(u) = gelu(u) / u.
    phi = np.exp(-0.5 * u * u) / np.sqrt(2.0 * np.pi)
    with np.errstate(divide="ignore", invalid="ignore"):
        Phi = np.where(u != 0, y / np.where(u != 0, u, 1.0), 0.5)
    return Phi + u * phi  # type: ignore[no-any-return]


def _mish_slope(u: Array) -> Array:
    t = np.tanh(np.logaddexp(u, 0.0))
    return t + u * (1.0 - t * t) * _sigmoid(u)


_SLOPES: dict[str, Callable[[Array, Array], Array]] = {
    "linear": lambda u, y: np.ones_like(u),
    "tanh": lambda u, y: 1.0 - y * y,
    "sigmoid": lambda u, y: y * (1.0 - y),
    "relu": lambda u, y: (u > 0).astype(u.dtype),
    "relu6": lambda u, y: ((u > 0) & (u < 6)).astype(u.dtype),
    "softplus": lambda u, y: _sigmoid(u),
    "softsign": lambda u, y: 1.0 / (1.0 + np.abs(u)) ** 2,
    "elu": lambda u, y: np.where(u > 0, 1.0, np.exp(np.minimum(u, 0))),
    "celu": lambda u, y: np.where(u > 0, 1.0, np.exp(np.minimum(u, 0))),
    "selu": lambda u, y: _SELU_SCALE * np.where(u > 0, 1.0, _SELU_ALPHA * np.exp(np.minimum(u, 0))),
    "exponential": lambda u, y: y,
    "swish": lambda u, y: _sigmoid(u) * (1.0 + u * (1.0 - _sigmoid(u))),
    "silu": lambda u, y: _sigmoid(u) * (1.0 + u * (1.0 - _sigmoid(u))),
    "gelu": _gelu_slope,
    "mish": lambda u, y: _mish_slope(u),
    "leaky_relu": lambda u, y: np.where(u > 0, 1.0, 0.2),
    "log_sigmoid": lambda u, y: 1.0 - _sigmoid(u),
    "hard_tanh": lambda u, y: ((u > -1) & (u < 1)).astype(u.dtype),
    "tanh_shrink": lambda u, y: np.tanh(u) ** 2,
    "hard_silu": lambda u, y: np.clip(u / 6.0 + 0.5, 0, 1) + u * ((u > -3) & (u < 3)) / 6.0,
    "hard_swish": lambda u, y: np.clip(u / 6.0 + 0.5, 0, 1) + u * ((u > -3) & (u < 3)) / 6.0,
    "sparse_plus": lambda u, y: np.where(u <= -1, 0.0, np.where(u >= 1, 1.0, 0.5 * (u + 1))),
    "squareplus": lambda u, y: 0.5 * (1.0 + u / np.sqrt(u * u + 4.0)),
    "soft_shrink": lambda u, y: (np.abs(u) > 0.5).astype(u.dtype),
    "hard_shrink": lambda u, y: (np.abs(u) > 0.5).astype(u.dtype),
}


def slope(name: str, major: int, u: Array, y: Array) -> Array:
    """``act'(u)`` for an elementwise activation (``y = act(u)``, same shape)."""
    if name == "hard_sigmoid":
        # Keras 1/2: clip(0.2u + 0.5); Keras 3: clip(u/6 + 0.5): flat outside.
        a, edge = (1.0 / 6.0, 3.0) if major >= 3 else (0.2, 2.5)
        return np.where((u > -edge) & (u < edge), a, 0.0)
    return np.asarray(_SLOPES[name](u, y), dtype=np.float64)


def _softmax(u: Array) -> Array:
    e = np.exp(u - np.max(u, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)  # type: ignore[no-any-return]


def left(name: str, major: int, u: Array, y: Array, mat: Array) -> Array:
    """``J @ mat`` per sample: ``u``, ``y`` (N, M), ``mat`` (N, M, X) -> (N, M, X)."""
    if name not in ACROSS_FEATURES:
        return slope(name, major, u, y)[:, :, None] * mat
    s = y if name == "softmax" else _softmax(u)
    sm = np.einsum("nm,nmx->nx", s, mat)[:, None, :]  # (N, 1, X): s^T mat
    if name == "softmax":
        return s[:, :, None] * (mat - sm)  # type: ignore[no-any-return]
    return mat - sm  # type: ignore[no-any-return]


def right(name: str, major: int, u: Array, y: Array, g: Array) -> Array:
    """``g @ J`` per sample, for row vectors ``g`` (N, P, ..., M) against ``u``, ``y``
    (N, ..., M) (no P axis): the vector-Jacobian product of reverse mode."""
    u, y = u[:, None], y[:, None]  # (N, 1, ..., M)
    if name not in ACROSS_FEATURES:
        return g * slope(name, major, u, y)
    s = y if name == "softmax" else _softmax(u)
    if name == "softmax":  # J symmetric: g J = s * (g - g.s)
        return s * (g - np.sum(g * s, axis=-1, keepdims=True))  # type: ignore[no-any-return]
    return g - s * np.sum(g, axis=-1, keepdims=True)  # type: ignore[no-any-return]


def bounds_hit(name: str, major: int, y: Array) -> Array | None:
    """Where ``y`` sits within 1% of the activation's bounds (its flat ends), or
    None for an activation without bounds: |tanh| > 0.99, sigmoid < 0.01 or > 0.99,
    hard_sigmoid at 0 or 1, relu-like at their flat zero."""
    if name in ("tanh", "softsign", "hard_tanh"):
        return np.abs(y) > 0.99
    if name in ("sigmoid", "softmax"):
        return (y < 0.01) | (y > 0.99)
    if name == "hard_sigmoid":
        return (y <= 0.0) | (y >= 1.0)
    if name in ("relu", "relu6"):
        hit = y <= 0.0
        return hit | (y >= 6.0) if name == "relu6" else hit
    return None


BOUNDS_TEXT = {
    "tanh": "|tanh| > 0.99",
    "softsign": "|softsign| > 0.99",
    "hard_tanh": "|hard_tanh| = 1",
    "sigmoid": "sigmoid < 0.01 or > 0.99",
    "softmax": "softmax < 0.01 or > 0.99",
    "hard_sigmoid": "hard_sigmoid at 0 or 1",
    "relu": "relu at 0",
    "relu6": "relu6 at 0 or 6",
}
