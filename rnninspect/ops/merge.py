"""Keras's merge layers (``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
``Minimum``, ``Concatenate``, ``Dot``) and the masks they output.

References: Keras 3.15 ``keras/src/layers/merging/`` and tf_keras 2.21
``tf_keras/src/layers/merging/``. None of them has weights.

Inputs of unequal rank: both generations insert size-1 axes at axis 1 of the lower-rank
inputs until the ranks match, then broadcast (``Merge._reshape_required``).

Keras 3 differs from tf_keras in two ways, chosen here by ``keras_major``:

* ``Multiply``, ``Maximum`` and ``Minimum`` read their inputs' masks *in the values*
  (Keras 3 only): see :func:`multiply` and :func:`maximum`.
* The output mask (:func:`merge_masks`): Keras 3 ORs, tf_keras ANDs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]
else:  # numpy.typing takes milliseconds to import, on every start; the alias is for mypy
    Array = np.ndarray
Masks = Sequence[Array | None]


def _float(x: Array) -> Array:
    a = np.asarray(x)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float32)


def _same_rank(xs: Sequence[Array], masks: Masks | None) -> tuple[list[Array], list[Array | None]]:
    """``Merge.call``'s reshape: ``expand_dims(x, 1)`` until every input has the top rank.
    An expanded input is a new tensor, so Keras 3's value-level mask reading no longer
    sees its mask."""
    arrays = [_float(x) for x in xs]
    ms: list[Array | None] = list(masks) if masks is not None else [None] * len(arrays)
    if len(ms) != len(arrays):
        raise ValueError(f"{len(arrays)} inputs but {len(ms)} masks")
    top = max(a.ndim for a in arrays)
    for i, a in enumerate(arrays):
        if a.ndim < top:
            arrays[i] = a.reshape(a.shape[:1] + (1,) * (top - a.ndim) + a.shape[1:])
            ms[i] = None
    return arrays, ms


def add(xs: Sequence[Array]) -> Array:
    """Keras ``Add``: ``x_0 + x_1 + ...`` (left to right)."""
    arrays, _ = _same_rank(xs, None)
    out = arrays[0]
    for x in arrays[1:]:
        out = out + x  # (N, T, C)
    return out


def subtract(xs: Sequence[Array]) -> Array:
    """Keras ``Subtract``: ``x_0 - x_1``, exactly two inputs."""
    if len(xs) != 2:
        raise ValueError(f"Subtract takes exactly 2 inputs, got {len(xs)}")
    a, b = _same_rank(xs, None)[0]
    return a - b


def average(xs: Sequence[Array]) -> Array:
    """Keras ``Average``: ``(x_0 + x_1 + ...) / n``."""
    out = add(xs)  # (N, T, C)
    return out / out.dtype.type(len(xs))  # type: ignore[no-any-return]


def _mask_full(mask: Array, x: Array) -> Array:
    # broadcast_to(expand_dims(mask, -1), shape(x))
    return np.broadcast_to(np.asarray(mask, dtype=bool)[..., None], x.shape)  # (N, T, C)


def multiply(xs: Sequence[Array], masks: Masks | None = None, *, keras_major: int = 3) -> Array:
    """Keras ``Multiply``: ``x_0 * x_1 * ...``.

    Keras 3 also reads the inputs' masks ``(N, T)``: a masked step of an input counts as 1
    in the product; when *every* input has a mask, steps masked in all of them come out
    0. tf_keras ignores masks here (pass none, or ``keras_major=2``).
    """
    arrays, ms = _same_rank(xs, masks if keras_major >= 3 else None)
    has_output_mask = all(m is not None for m in ms)
    out: Array | None = None
    out_mask: Array | None = None
    for x, m in zip(arrays, ms, strict=True):
        if m is not None:
            full = _mask_full(m, x)  # (N, T, C)
            x = np.where(full, x, x.dtype.type(1))  # (N, T, C)
            if has_output_mask:
                out_mask = full if out_mask is None else out_mask | full  # (N, T, C)
        out = x if out is None else out * x  # (N, T, C)
    assert out is not None
    if has_output_mask and out_mask is not None:
        out = np.where(out_mask, out, out.dtype.type(0))  # (N, T, C)
    return out


def _masked_fold(
    op: Callable[[Array, Array], Array], arrays: Sequence[Array], ms: Sequence[Array | None]
) -> Array:
    """Keras 3 ``Merge._apply_merge_op_and_or_mask``: a masked entry takes the other
    operand's value, so ``op`` only sees real entries where there is one."""
    out: Array | None = None
    out_mask: Array | None = None
    for x, m in zip(arrays, ms, strict=True):
        full = None if m is None else _mask_full(m, x)  # (N, T, C)
        if out is None:
            out, out_mask = x, full
            continue
        if full is not None:
            x = np.where(full, x, out)  # (N, T, C)
        if out_mask is not None:
            out = np.where(out_mask, out, x)  # (N, T, C)
        out_mask = out_mask | full if full is not None and out_mask is not None else None
        out = op(out, x)  # (N, T, C)
    assert out is not None
    return out


def maximum(xs: Sequence[Array], masks: Masks | None = None, *, keras_major: int = 3) -> Array:
    """Keras ``Maximum``: elementwise max. With Keras 3 and masks, a step masked in one
    input takes the other's value (a step masked in all keeps the first input's); tf_keras
    ignores masks."""
    arrays, ms = _same_rank(xs, masks if keras_major >= 3 else None)
    return _masked_fold(np.maximum, arrays, ms)


def minimum(xs: Sequence[Array], masks: Masks | None = None, *, keras_major: int = 3) -> Array:
    """Keras ``Minimum``: elementwise min, masks as in :func:`maximum`."""
    arrays, ms = _same_rank(xs, masks if keras_major >= 3 else None)
    return _masked_fold(np.minimum, arrays, ms)


def concatenate(xs: Sequence[Array], axis: int = -1) -> Array:
    """Keras ``Concatenate(axis)``."""
    return np.concatenate([_float(x) for x in xs], axis=axis)


def l2_normalize(x: Array, axis: int, *, keras_major: int = 3) -> Array:
    """``x / max(||x||, floor)`` along ``axis``: Keras 3 ``ops.normalize`` (``x *
    min(rsqrt(sum x^2), 1/1e-7)``, floor 1e-7) or tf_keras ``tf.linalg.l2_normalize``
    (``x * rsqrt(max(sum x^2, 1e-12))``, floor 1e-6)."""
    x = _float(x)
    dt = x.dtype.type
    sq = np.sum(np.square(x), axis=axis, keepdims=True)  # (N, 1, C)
    if keras_major >= 3:
        with np.errstate(divide="ignore"):
            inv = np.minimum(dt(1) / np.sqrt(sq), dt(1.0 / 1e-7))  # (N, 1, C)
    else:
        inv = dt(1) / np.sqrt(np.maximum(sq, dt(1e-12)))  # (N, 1, C)
    return x * inv  # type: ignore[no-any-return]


def batch_dot(x: Array, y: Array, axes: int | Sequence[int] | None = None) -> Array:
    """Keras ``batch_dot``: per sample, contract ``x``'s axis ``axes[0]`` with ``y``'s
    ``axes[1]`` (an int means both); the result is ``x``'s other axes then ``y``'s other
    non-batch axes, and ``(N, 1)`` when that leaves only the batch."""
    x = _float(x)
    y = _float(y)
    if axes is None:
        ax = [x.ndim - 1, y.ndim - 1 if y.ndim == 2 else y.ndim - 2]
    elif isinstance(axes, int):
        ax = [axes, axes]
    else:
        ax = list(axes)
    a0 = ax[0] + x.ndim if ax[0] < 0 else ax[0]
    a1 = ax[1] + y.ndim if ax[1] < 0 else ax[1]
    if 0 in (a0, a1):
        raise ValueError("batch_dot cannot contract the batch axis 0")
    if x.shape[a0] != y.shape[a1]:
        raise ValueError(f"batch_dot: {x.shape}[{a0}] != {y.shape}[{a1}]")
    xm = np.moveaxis(x, a0, -1)  # (N, P..., K)
    ym = np.moveaxis(y, a1, 1)  # (N, K, Q...)
    n, k = xm.shape[0], xm.shape[-1]
    p_dims, q_dims = xm.shape[1:-1], ym.shape[2:]
    out = xm.reshape(n, -1, k) @ ym.reshape(n, k, -1)  # (N, P, Q)
    out = out.reshape((n, *p_dims, *q_dims))  # (N, P..., Q...)
    return out.reshape(n, 1) if out.ndim == 1 else out


def dot(
    a: Array,
    b: Array,
    axes: int | Sequence[int],
    normalize: bool = False,
    *,
    keras_major: int = 3,
) -> Array:
    """Keras ``Dot(axes, normalize)``: negative axes are taken modulo each input's rank;
    with ``normalize`` both inputs are L2-normalised along their dot axis first (so the
    result is the cosine similarity), then :func:`batch_dot`."""
    x, y = _float(a), _float(b)
    if isinstance(axes, int):
        ax = [axes % x.ndim, axes % y.ndim] if axes < 0 else [axes, axes]
    else:
        ax = [axes[0] % x.ndim if axes[0] < 0 else axes[0]]
        ax.append(axes[1] % y.ndim if axes[1] < 0 else axes[1])
    if normalize:
        x = l2_normalize(x, ax[0], keras_major=keras_major)  # (N, T, C)
        y = l2_normalize(y, ax[1], keras_major=keras_major)  # (N, S, C)
    return batch_dot(x, y, ax)


MERGE_KINDS = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


def merge_masks(
    kind: str,
    masks: Masks,
    arrays: Sequence[Array] | None = None,
    *,
    axis: int = -1,
    keras_major: int = 3,
) -> Array | None:
    """The output mask of merge layer ``kind`` (Keras class name) given its inputs'
    masks (None = unmasked) and, for ``Concatenate``, the input arrays.

    * ``Add``/``Subtract``/``Multiply``/``Average``/``Maximum``/``Minimum``: Keras 3:
      None if any input is unmasked, else the OR of the masks; tf_keras: the AND of
      the masks that exist (None if none does).
    * ``Concatenate``: None if no input is masked. Otherwise each input gets a full-rank
      boolean mask (all True when unmasked; a ``(N, T)`` mask broadcast over the
      features), these are concatenated along ``axis`` and reduced over the last axis:
      with ``any`` in Keras 3, ``all`` in tf_keras. So on the feature axis Keras 3 ORs
      the masks (an unmasked input makes every step True) while tf_keras ANDs them; on
      the time axis both concatenate the masks. tf_keras keeps a mask ``(N, T, 1)``
      unbroadcast, so it fails there on the time axis with an unmasked input, and so
      does this function.
    * ``Dot``: None.
    """
    if kind == "Dot":
        return None
    if kind in MERGE_KINDS:
        if keras_major >= 3:
            if any(m is None for m in masks):
                return None
            out = np.asarray(masks[0], dtype=bool)
            for m in masks[1:]:
                out = out | np.asarray(m, dtype=bool)  # (N, T)
            return out
        present = [np.asarray(m, dtype=bool) for m in masks if m is not None]
        if not present:
            return None
        out = present[0]
        for m in present[1:]:
            out = out & m  # (N, T)
        return out
    if kind == "Concatenate":
        if all(m is None for m in masks):
            return None
        if arrays is None or len(arrays) != len(masks):
            raise ValueError("Concatenate's mask needs its input arrays")
        full: list[Array] = []
        for x, m in zip(arrays, masks, strict=True):
            xa = np.asarray(x)
            if m is None:
                full.append(np.ones(xa.shape, dtype=bool))  # (N, T, C)
            else:
                ma = np.asarray(m, dtype=bool)
                if ma.ndim < xa.ndim:
                    ma = ma[..., None]  # (N, T, 1)
                    if keras_major >= 3:
                        ma = np.broadcast_to(ma, xa.shape)  # (N, T, C)
                full.append(ma)
        cat = np.concatenate(full, axis=axis)  # (N, T', C')
        reduced: Array = np.any(cat, axis=-1) if keras_major >= 3 else np.all(cat, axis=-1)
        return reduced
    raise ValueError(f"not a merge layer: {kind!r}")
