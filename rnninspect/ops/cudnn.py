"""Keras 2 ``CuDNNLSTM`` / ``CuDNNGRU`` saved weights in the plain ``LSTM`` / ``GRU`` layout.

What tf_keras's legacy HDF5 loader does (``_convert_rnn_weights`` in
``tf_keras/src/saving/legacy/hdf5_format.py``) when a CuDNN layer's weights are
loaded into an ``LSTM`` or a ``GRU(reset_after=True)``, replicated array for array.

Why the input kernel is reshuffled: a CuDNN layer keeps ``kernel (I, G*M)`` like
Keras, but hands each gate block ``(I, M)`` to cuDNN as raw memory
(``canonical_to_params`` without ``transpose_weights``), and cuDNN reads that memory
as its row-major ``(M, I)`` weight matrix ``W`` (``W @ x``). The equivalent Keras
kernel is ``W.T``: ``k.reshape(M, I).T``, which is the loader's
``k.T.reshape(k.shape, order="F")``. The recurrent block ``(M, M)`` read the same way
is ``k`` itself as ``W``, so its Keras kernel is ``k.T``. Gate blocks keep their Keras
order (LSTM i, f, c, o; GRU z, r, h): the layers reorder them only when building the
cuDNN parameter buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]
else:  # numpy.typing takes milliseconds to import, on every start; the alias is for mypy
    Array = np.ndarray

__all__ = ["cudnn_gru_weights", "cudnn_lstm_weights"]


def _input_block(k: Array) -> Array:
    """One gate's ``(I, M)`` CuDNN input kernel -> its Keras ``(I, M)`` kernel."""
    n_in, m = k.shape
    return np.ascontiguousarray(k.reshape(m, n_in).T)  # (I, M) == k.T.reshape(k.shape, order="F")


def _per_gate(kernel: Array, gates: int, block: Callable[[Array], Array]) -> Array:
    return np.hstack([block(k) for k in np.hsplit(kernel, gates)])


def _check(
    kernel: Array, recurrent_kernel: Array, bias: Array, gates: int, what: str
) -> tuple[int, int]:
    if kernel.ndim != 2 or recurrent_kernel.ndim != 2:
        raise ValueError(
            f"{what}: kernels {kernel.shape}, {recurrent_kernel.shape}: expected 2-D arrays"
        )
    M = recurrent_kernel.shape[0]
    if recurrent_kernel.shape != (M, gates * M) or kernel.shape[1] != gates * M:
        raise ValueError(
            f"{what}: kernel {kernel.shape}, recurrent_kernel {recurrent_kernel.shape}: "
            f"expected (I, {gates}M) and (M, {gates}M)"
        )
    if bias.shape != (2 * gates * M,):
        raise ValueError(
            f"{what}: bias {bias.shape}: expected ({2 * gates * M},) (input, recurrent)"
        )
    return kernel.shape[0], M


def cudnn_lstm_weights(
    kernel: Array, recurrent_kernel: Array, bias: Array
) -> tuple[Array, Array, Array]:
    """``CuDNNLSTM`` ``kernel (I, 4M)``, ``recurrent_kernel (M, 4M)``, ``bias (8M,)``
    -> ``LSTM`` ``(I, 4M)``, ``(M, 4M)``, ``(4M,)``.

    The bias is cuDNN's input bias plus its recurrent bias (``b[:4M] + b[4M:]``). The
    LSTM that runs them has ``activation="tanh"``, ``recurrent_activation="sigmoid"``
    (cuDNN's fixed functions), gate order i, f, c, o.
    """
    _check(kernel, recurrent_kernel, bias, 4, "CuDNNLSTM")
    k = _per_gate(kernel, 4, _input_block)  # (I, 4M)
    rk = _per_gate(recurrent_kernel, 4, lambda b: b.T)  # (M, 4M)
    b = np.sum(np.split(bias, 2, axis=0), axis=0)  # (4M,)
    return k, rk, b


def cudnn_gru_weights(
    kernel: Array, recurrent_kernel: Array, bias: Array
) -> tuple[Array, Array, Array]:
    """``CuDNNGRU`` ``kernel (I, 3M)``, ``recurrent_kernel (M, 3M)``, ``bias (6M,)``
    -> ``GRU(reset_after=True)`` ``(I, 3M)``, ``(M, 3M)``, ``(2, 3M)``.

    The bias rows are the input bias and the recurrent bias (``reset_after=True``
    applies the reset gate after the recurrent matmul and its bias, as cuDNN does);
    activations ``tanh`` / ``sigmoid``, gate order z, r, h.
    """
    _check(kernel, recurrent_kernel, bias, 3, "CuDNNGRU")
    k = _per_gate(kernel, 3, _input_block)  # (I, 3M)
    rk = _per_gate(recurrent_kernel, 3, lambda b: b.T)  # (M, 3M)
    b = np.array(bias).reshape(2, -1)  # (2, 3M)
    return k, rk, b
