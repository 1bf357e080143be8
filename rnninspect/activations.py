"""Keras activations by name, in NumPy.

Each takes and returns an array of the compute dtype. ``hard_sigmoid`` differs by
Keras generation (Keras 1/2/tf.keras: ``0.2x + 0.5``; Keras 3: ``x/6 + 0.5``), so
lookups take the generation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelError, UnsupportedLayerError

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]
else:  # numpy.typing takes milliseconds to import, on every start; the alias is for mypy
    Array = np.ndarray
Fn = Callable[[Array], Array]


def _sigmoid(x: Array) -> Array:
    # 0.5 * (1 + tanh(x / 2)) is the logistic function exactly, never overflows,
    # and runs on NumPy's vectorised tanh.
    out = np.multiply(x, 0.5, dtype=x.dtype)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def _softmax(x: Array) -> Array:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)  # type: ignore[no-any-return]


def _log_softmax(x: Array) -> Array:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))  # type: ignore[no-any-return]


def _softplus(x: Array) -> Array:
    return np.logaddexp(x, np.zeros_like(x))


def _elu(x: Array) -> Array:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _selu(x: Array) -> Array:
    return _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))


def _erf(x: Array) -> Array:
    # NumPy has no erf; Abramowitz & Stegun 7.1.26 is accurate to 1.5e-7 absolute,
    # about float32 resolution, which is all Keras computes in.
    x64 = x.astype(np.float64)
    sign = np.sign(x64)
    a = np.abs(x64)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    y = 1.0 - poly * np.exp(-a * a)
    return (sign * y).astype(x.dtype)  # type: ignore[no-any-return]


def _gelu(x: Array) -> Array:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0).astype(x.dtype)))


def _hard_sigmoid_k2(x: Array) -> Array:
    return np.clip(0.2 * x + 0.5, 0.0, 1.0).astype(x.dtype)


def _hard_sigmoid_k3(x: Array) -> Array:
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0).astype(x.dtype)


def _silu(x: Array) -> Array:
    return x * _sigmoid(x)


def _mish(x: Array) -> Array:
    return x * np.tanh(_softplus(x))


_COMMON: dict[str, Fn] = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "softplus": _softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "elu": _elu,
    "selu": _selu,
    "exponential": np.exp,
    "swish": _silu,
    "silu": _silu,
    "gelu": _gelu,
    "mish": _mish,
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x).astype(x.dtype),
    "log_sigmoid": lambda x: -_softplus(-x),
    "hard_tanh": lambda x: np.clip(x, -1, 1),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "hard_silu": lambda x: x * _hard_sigmoid_k3(x),
    "hard_swish": lambda x: x * _hard_sigmoid_k3(x),
    "celu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "sparse_plus": lambda x: np.where(
        x <= -1, 0.0, np.where(x >= 1, x, 0.25 * (x + 1) ** 2)
    ).astype(x.dtype),
    "squareplus": lambda x: ((x + np.sqrt(x * x + 4)) / 2).astype(x.dtype),
    "soft_shrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)).astype(
        x.dtype
    ),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0).astype(x.dtype),
}

NAMES = frozenset(_COMMON) | {"hard_sigmoid"}
ACROSS_FEATURES = frozenset({"softmax", "log_softmax"})  # not elementwise: over the last axis


def activation_name(value: Any, where: str) -> str:
    """Normalise a config's ``activation`` entry to a known name (or refuse it)."""
    if value is None:
        return "linear"
    if isinstance(value, dict):
        # Keras 3 writes non-string activations as {"class_name": "function",
        # "config": "<name>", "module": "keras.activations"}; anything else is code.
        module = value.get("module", "keras.activations")
        inner = value.get("config")
        if isinstance(inner, str) and isinstance(module, str) and module.startswith("keras"):
            value = inner
        else:
            raise UnsupportedLayerError(
                f"{where}: activation {value!r} is custom code; rnninspect never runs it"
            )
    if not isinstance(value, str):
        raise ModelError(f"{where}: activation {value!r} is not a name")
    if value not in NAMES:
        raise UnsupportedLayerError(
            f"{where}: activation {value!r} is not one rnninspect knows "
            f"(known: {', '.join(sorted(NAMES))})"
        )
    return value


def get(name: str, keras_major: int = 3) -> Fn:
    """The NumPy function for a Keras activation name."""
    if name == "hard_sigmoid":
        return _hard_sigmoid_k3 if keras_major >= 3 else _hard_sigmoid_k2
    return _COMMON[name]


def _inplace_sigmoid(buf: Array) -> None:
    # 0.5 * (1 + tanh(x / 2)): exact sigmoid, in place, no overflow, SIMD tanh.
    buf *= 0.5
    np.tanh(buf, out=buf)
    buf += 1.0
    buf *= 0.5


_INPLACE: dict[str, Callable[[Array], None]] = {
    "tanh": lambda b: np.tanh(b, out=b),  # type: ignore[dict-item]
    "relu": lambda b: np.maximum(b, 0, out=b),  # type: ignore[dict-item]
    "linear": lambda b: None,
    "sigmoid": _inplace_sigmoid,
}


def get_inplace(name: str, keras_major: int = 3) -> Callable[[Array], None]:
    """An activation that overwrites its argument (saves an allocation per step)."""
    if name in _INPLACE:
        return _INPLACE[name]
    fn = get(name, keras_major)

    def apply(buf: Array) -> None:
        buf[...] = fn(buf)

    return apply
