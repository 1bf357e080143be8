"""Keras's shape plumbing: ``RepeatVector``, ``Flatten``, ``Reshape``, ``Permute``,
``Cropping1D``, ``ZeroPadding1D``, ``UpSampling1D``.

References: Keras 3.15 ``keras/src/layers/reshaping/`` and tf_keras 2.21
``tf_keras/src/layers/reshaping/``; the two compute the same. None has weights, and
none supports masking: an incoming mask is dropped (not cropped, padded or repeated;
see ``masks.MASK_RULE``).
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


def repeat_vector(x: Array, n: int) -> Array:
    """Keras ``RepeatVector(n)``: ``(N, D) -> (N, n, D)``."""
    xa = np.asarray(x)
    return np.repeat(xa[:, None, :], n, axis=1)  # (N, n, D)


def flatten(x: Array, data_format: str = "channels_last") -> Array:
    """Keras ``Flatten``: ``(N, ...) -> (N, prod(...))``, C order; ``channels_first``
    moves axis 1 last first. A ``(N,)`` input becomes ``(N, 1)``."""
    xa = np.asarray(x)
    if data_format == "channels_first" and xa.ndim > 2:
        xa = np.transpose(xa, (0, *range(2, xa.ndim), 1))  # (N, ..., C)
    return xa.reshape(xa.shape[0], -1)  # (N, F)


def reshape(x: Array, target_shape: Sequence[int]) -> Array:
    """Keras ``Reshape(target_shape)``: each sample to ``target_shape`` (one entry may be
    -1), C order."""
    xa = np.asarray(x)
    return xa.reshape((xa.shape[0], *target_shape))  # (N, *target_shape)


def permute(x: Array, dims: Sequence[int]) -> Array:
    """Keras ``Permute(dims)``: ``dims`` is 1-based over the non-batch axes, e.g.
    ``(2, 1)`` swaps time and features."""
    xa = np.asarray(x)
    if sorted(dims) != list(range(1, xa.ndim)):
        raise ValueError(f"Permute dims {tuple(dims)} is not a permutation of 1..{xa.ndim - 1}")
    return np.transpose(xa, (0, *dims))  # (N, ...)


def cropping1d(x: Array, cropping: Sequence[int] | int = (1, 1)) -> Array:
    """Keras ``Cropping1D((a, b))``: drop ``a`` steps at the start and ``b`` at the end of
    axis 1 of ``(N, T, C)``."""
    xa = np.asarray(x)
    a, b = (cropping, cropping) if isinstance(cropping, int) else cropping
    if a + b >= xa.shape[1]:
        raise ValueError(f"Cropping1D({a}, {b}) leaves nothing of {xa.shape[1]} steps")
    return xa[:, a : xa.shape[1] - b, :]  # (N, T - a - b, C)


def zero_padding1d(
    x: Array, padding: Sequence[int] | int = (1, 1), data_format: str = "channels_last"
) -> Array:
    """Keras ``ZeroPadding1D((a, b))``: ``a`` zero steps before and ``b`` after, on axis
    1 (axis 2 with Keras 3 ``data_format="channels_first"``)."""
    xa = np.asarray(x)
    a, b = (padding, padding) if isinstance(padding, int) else padding
    pads = [(0, 0)] * xa.ndim
    pads[2 if data_format == "channels_first" else 1] = (a, b)
    return np.pad(xa, pads)  # (N, a + T + b, C)


def upsampling1d(x: Array, size: int = 2) -> Array:
    """Keras ``UpSampling1D(size)``: each step repeated ``size`` times in place
    (``[x0, x0, x1, x1, ...]``)."""
    return np.repeat(np.asarray(x), size, axis=1)  # (N, T * size, C)
