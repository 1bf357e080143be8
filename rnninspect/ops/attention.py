"""Keras's attention layers: ``Attention`` (Luong), ``AdditiveAttention`` (Bahdanau) and
``MultiHeadAttention``, at inference (dropout off), on batch-first arrays.

References: Keras 3.15 ``keras/src/layers/attention/{attention,additive_attention,
multi_head_attention}.py`` with ``keras/src/backend/tensorflow/nn.py``
(``dot_product_attention``), and tf_keras 2.21 ``tf_keras/src/layers/attention/``.

Masks are boolean, True = a real step. The output mask of all three layers is the
query's mask (``Attention``/``AdditiveAttention``: ``compute_mask`` returns
``mask[0]``; ``MultiHeadAttention``: the mask of its first argument).

Weights and config keys:

* ``Attention``: ``use_scale`` -> scalar weight ``scale`` (shape ``()``); ``score_mode``
  ``"concat"`` -> scalar ``concat_score_weight`` (after ``scale``). Causal masking is the
  call argument ``use_causal_mask`` (a node kwarg in a functional config) in Keras 3 and
  tf_keras; tf.keras <= 2.9 stored it as the config key ``causal``, which tf_keras still
  honours and Keras 3 rejects.
* ``AdditiveAttention``: ``use_scale`` (default True) -> weight ``scale`` of shape
  ``(D,)``.
* ``MultiHeadAttention``: ``query/kernel (D, H, Kd)``, ``query/bias (H, Kd)``, then
  ``key``, ``value`` (``(Dv, H, Vd)``, ``(H, Vd)``) and ``attention_output/kernel
  (H, Vd, Dout)``, ``attention_output/bias (Dout,)``; biases absent with
  ``use_bias=False``; Keras 3 ``use_gate=True`` adds ``gate/kernel (D, H, Vd)``,
  ``gate/bias (H, Vd)`` after ``key``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from .activation_layers import plain_softmax, softmax

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]
else:  # numpy.typing takes milliseconds to import, on every start; the alias is for mypy
    Array = np.ndarray
ScoreMode = Literal["dot", "concat"]


def _dtype(*xs: Array | None) -> np.dtype[Any]:
    dt = np.result_type(*[np.asarray(x).dtype for x in xs if x is not None])
    return dt if np.issubdtype(dt, np.floating) else np.dtype(np.float32)


def _causal(tq: int, tv: int) -> Array:
    # Keras: cumsum(ones, -2) >= cumsum(ones, -1), i.e. row i may see columns j <= i.
    return np.tril(np.ones((tq, tv), dtype=bool))  # (Tq, Tv)


def _score_mask(value_mask: Array | None, causal: bool, tq: int, tv: int) -> Array | None:
    """Keras ``Attention._calculate_score_mask``: ``value_mask[:, None, :] & causal``."""
    mask = None if value_mask is None else np.asarray(value_mask, dtype=bool)[..., None, :]
    if causal:
        c = _causal(tq, tv)  # (Tq, Tv)
        mask = c if mask is None else mask & c  # (N, Tq, Tv)
    return mask


def _apply_scores(scores: Array, value: Array, scores_mask: Array | None) -> tuple[Array, Array]:
    """Keras ``_apply_scores``: masked scores lose 1e9 (65504 in float16), softmax over
    Tv, then ``weights @ value``. Keras 3 writes ``where(~mask, s - 1e9, s)``, tf_keras
    ``s -= 1e9 * ~mask``: the same numbers."""
    if scores_mask is not None:
        big = scores.dtype.type(65504.0 if scores.dtype == np.float16 else 1.0e9)
        scores = np.where(scores_mask, scores, scores - big)  # (N, Tq, Tv)
    weights = plain_softmax(scores, -1)  # (N, Tq, Tv)
    return weights @ value, weights  # (N, Tq, Dv), (N, Tq, Tv)


def _finish(
    out: Array, weights: Array, query_mask: Array | None, return_scores: bool
) -> Array | tuple[Array, Array]:
    if query_mask is not None:
        # Keras 3: where(q_mask, out, 0); tf_keras: out * q_mask. Same for finite values.
        keep = np.asarray(query_mask, dtype=bool)[..., None]  # (N, Tq, 1)
        out = np.where(keep, out, out.dtype.type(0))  # (N, Tq, Dv)
    return (out, weights) if return_scores else out


@overload
def dot_attention(
    query: Array,
    value: Array,
    key: Array | None = ...,
    *,
    query_mask: Array | None = ...,
    value_mask: Array | None = ...,
    use_scale: bool = ...,
    scale: float | Array | None = ...,
    score_mode: ScoreMode = ...,
    concat_score_weight: float | Array | None = ...,
    causal: bool = ...,
    return_scores: Literal[False] = ...,
) -> Array: ...
@overload
def dot_attention(
    query: Array,
    value: Array,
    key: Array | None = ...,
    *,
    query_mask: Array | None = ...,
    value_mask: Array | None = ...,
    use_scale: bool = ...,
    scale: float | Array | None = ...,
    score_mode: ScoreMode = ...,
    concat_score_weight: float | Array | None = ...,
    causal: bool = ...,
    return_scores: Literal[True],
) -> tuple[Array, Array]: ...
def dot_attention(
    query: Array,
    value: Array,
    key: Array | None = None,
    *,
    query_mask: Array | None = None,
    value_mask: Array | None = None,
    use_scale: bool = False,
    scale: float | Array | None = None,
    score_mode: ScoreMode = "dot",
    concat_score_weight: float | Array | None = None,
    causal: bool = False,
    return_scores: bool = False,
) -> Array | tuple[Array, Array]:
    """Keras ``Attention`` (Luong) on ``query (N, Tq, D)``, ``value (N, Tv, Dv)``,
    ``key (N, Tv, D)`` (defaults to ``value``).

    * ``score_mode="dot"``: ``scores = q @ k^T``, times ``scale`` when ``use_scale``.
    * ``score_mode="concat"``: ``scores = concat_score_weight * sum(tanh(q_i + k_j))``;
      with ``use_scale`` the scale goes *inside*: ``tanh(scale * (q_i + k_j))``.
    * ``value_mask`` and ``causal`` (``use_causal_mask``) take 1e9 off masked scores;
      softmax over Tv; ``out = weights @ v``; rows where ``query_mask`` is False are 0.

    Returns ``out (N, Tq, Dv)``, and ``weights (N, Tq, Tv)`` with ``return_scores``
    (Keras's ``return_attention_scores``). Keras 3 and tf_keras compute the same.
    """
    dt = _dtype(query, value, key)
    q = np.asarray(query, dtype=dt)  # (N, Tq, D)
    v = np.asarray(value, dtype=dt)  # (N, Tv, Dv)
    k = v if key is None else np.asarray(key, dtype=dt)  # (N, Tv, D)
    if use_scale and scale is None:
        raise ValueError("Attention(use_scale=True) needs its `scale` weight")
    s = None if not use_scale else np.asarray(scale, dtype=dt)  # ()
    if score_mode == "dot":
        scores = q @ np.swapaxes(k, -1, -2)  # (N, Tq, Tv)
        if s is not None:
            scores = scores * s  # (N, Tq, Tv)
    elif score_mode == "concat":
        if concat_score_weight is None:
            raise ValueError('Attention(score_mode="concat") needs `concat_score_weight`')
        w = np.asarray(concat_score_weight, dtype=dt)  # ()
        qk = q[..., :, None, :] + k[..., None, :, :]  # (N, Tq, Tv, D)
        if s is not None:
            qk = s * qk  # (N, Tq, Tv, D)
        scores = w * np.sum(np.tanh(qk), axis=-1)  # (N, Tq, Tv)
    else:
        raise ValueError(f"score_mode must be 'dot' or 'concat', not {score_mode!r}")
    mask = _score_mask(value_mask, causal, q.shape[-2], k.shape[-2])  # (N, Tq|1, Tv)
    out, weights = _apply_scores(scores, v, mask)  # (N, Tq, Dv), (N, Tq, Tv)
    return _finish(out, weights, query_mask, return_scores)


@overload
def additive_attention(
    query: Array,
    value: Array,
    key: Array | None = ...,
    *,
    query_mask: Array | None = ...,
    value_mask: Array | None = ...,
    use_scale: bool = ...,
    scale: Array | None = ...,
    causal: bool = ...,
    return_scores: Literal[False] = ...,
) -> Array: ...
@overload
def additive_attention(
    query: Array,
    value: Array,
    key: Array | None = ...,
    *,
    query_mask: Array | None = ...,
    value_mask: Array | None = ...,
    use_scale: bool = ...,
    scale: Array | None = ...,
    causal: bool = ...,
    return_scores: Literal[True],
) -> tuple[Array, Array]: ...
def additive_attention(
    query: Array,
    value: Array,
    key: Array | None = None,
    *,
    query_mask: Array | None = None,
    value_mask: Array | None = None,
    use_scale: bool = True,
    scale: Array | None = None,
    causal: bool = False,
    return_scores: bool = False,
) -> Array | tuple[Array, Array]:
    """Keras ``AdditiveAttention`` (Bahdanau): ``scores_ij = sum_d scale_d *
    tanh(q_id + k_jd)`` with the learned ``scale (D,)`` when ``use_scale`` (the default),
    else 1; masks, softmax and output as :func:`dot_attention`."""
    dt = _dtype(query, value, key)
    q = np.asarray(query, dtype=dt)  # (N, Tq, D)
    v = np.asarray(value, dtype=dt)  # (N, Tv, Dv)
    k = v if key is None else np.asarray(key, dtype=dt)  # (N, Tv, D)
    if use_scale and scale is None:
        raise ValueError("AdditiveAttention(use_scale=True) needs its `scale` weight")
    s = np.asarray(scale, dtype=dt) if use_scale else dt.type(1.0)  # (D,)
    t = np.tanh(q[..., :, None, :] + k[..., None, :, :])  # (N, Tq, Tv, D)
    scores = np.sum(s * t, axis=-1)  # (N, Tq, Tv)
    mask = _score_mask(value_mask, causal, q.shape[-2], k.shape[-2])  # (N, Tq|1, Tv)
    out, weights = _apply_scores(scores, v, mask)  # (N, Tq, Dv), (N, Tq, Tv)
    return _finish(out, weights, query_mask, return_scores)


# ----------------------------------------------------------------------------- MHA


def _proj_equation(free_dims: int, bound_dims: int, output_dims: int) -> str:
    """Keras ``_build_proj_equation``: e.g. (2, 1, 2) -> ``"abc,cde->abde"``."""
    letters = string.ascii_lowercase
    free = letters[:free_dims]
    bound = letters[free_dims : free_dims + bound_dims]
    out = letters[free_dims + bound_dims : free_dims + bound_dims + output_dims]
    return f"{free}{bound},{bound}{out}->{free}{out}"


def _attention_equations(rank: int, attn_axes: tuple[int, ...]) -> tuple[str, str]:
    """Keras ``_build_attention_equation``: the query-key product and the combination,
    for projected tensors ``(N, <other dims>, <attention dims>, H, channels)``."""
    letters = string.ascii_lowercase
    target = letters[:rank]
    batch_dims = [i for i in range(rank) if i not in attn_axes and i != rank - 1]
    source = ""
    offset = rank
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source += target[i]
        else:
            source += letters[offset]
            offset += 1
    product = (
        "".join(target[i] for i in batch_dims)
        + "".join(target[i] for i in attn_axes)
        + "".join(source[i] for i in attn_axes)
    )
    return f"{source},{target}->{product}", f"{product},{source}->{target}"


def _dense(x: Array, kernel: Array, bias: Array | None, bound_dims: int) -> Array:
    """Keras ``EinsumDense`` as ``MultiHeadAttention`` builds it: contract the last
    ``bound_dims`` axes of ``x`` with the first of ``kernel``, then add the bias."""
    out_dims = kernel.ndim - bound_dims
    eq = _proj_equation(x.ndim - bound_dims, bound_dims, out_dims)
    y = np.einsum(eq, x, kernel)  # (N, T, H, K)
    if bias is not None:
        y = y + bias  # (N, T, H, K)
    return y  # type: ignore[no-any-return]


def _weight(weights: Mapping[str, Array | None], name: str, dt: np.dtype[Any]) -> Array | None:
    w = weights.get(name)
    return None if w is None else np.asarray(w, dtype=dt)


def _required(weights: Mapping[str, Array | None], name: str, dt: np.dtype[Any]) -> Array:
    w = _weight(weights, name, dt)
    if w is None:
        raise ValueError(f"MultiHeadAttention needs weight {name!r}")
    return w


def mha_attention_mask(
    query: Array,
    value: Array,
    *,
    query_mask: Array | None = None,
    value_mask: Array | None = None,
    key_mask: Array | None = None,
    attention_mask: Array | None = None,
    causal: bool = False,
    sliding_window: int | None = None,
) -> Array | None:
    """Keras ``MultiHeadAttention._compute_attention_mask``: ``query_mask[:, :, None] &
    value_mask[:, None, :] & key_mask[:, None, :] & causal (1, T, S) & window`` and the
    explicit ``attention_mask (N, T, S)``; None when there is none of them. The causal
    and window masks use axis 1 of ``query`` and ``value``, as Keras does."""
    auto: Array | None = None

    def _and(m: Array) -> None:
        nonlocal auto
        auto = m if auto is None else auto & m

    if query_mask is not None:
        _and(np.asarray(query_mask, dtype=bool)[..., :, None])  # (N, T, 1)
    if value_mask is not None:
        _and(np.asarray(value_mask, dtype=bool)[..., None, :])  # (N, 1, S)
    if key_mask is not None:
        _and(np.asarray(key_mask, dtype=bool)[..., None, :])  # (N, 1, S)
    t, s = query.shape[1], value.shape[1]
    if causal:
        _and(_causal(t, s)[None])  # (1, T, S)
    if sliding_window is not None:
        i = np.arange(t)[:, None]  # (T, 1)
        j = np.arange(s)[None, :]  # (1, S)
        _and((np.abs(i - j) < sliding_window)[None])  # (1, T, S)
    if attention_mask is not None:
        explicit = np.asarray(attention_mask, dtype=bool)  # (N, T, S)
        return explicit if auto is None else explicit & auto
    return auto


# Keras 3 (TF backend) ``_get_large_negative``: masked logits of the fused path.
_FUSED_NEG_F32 = np.float32(3.38953e38 * -0.7)
_FUSED_NEG_F16 = np.float16(65500.0 * -0.7)


@overload
def multi_head_attention(
    query: Array,
    value: Array,
    key: Array | None = ...,
    *,
    weights: Mapping[str, Array | None],
    num_heads: int,
    key_dim: int,
    attention_axes: int | Sequence[int] | None = ...,
    query_mask: Array | None = ...,
    value_mask: Array | None = ...,
    key_mask: Array | None = ...,
    attention_mask: Array | None = ...,
    causal: bool = ...,
    sliding_window: int | None = ...,
    dropout: float = ...,
    return_scores: Literal[False] = ...,
    keras_major: int = ...,
    softmax_robust_masking: bool = ...,
) -> Array: ...
@overload
def multi_head_attention(
    query: Array,
    value: Array,
    key: Array | None = ...,
    *,
    weights: Mapping[str, Array | None],
    num_heads: int,
    key_dim: int,
    attention_axes: int | Sequence[int] | None = ...,
    query_mask: Array | None = ...,
    value_mask: Array | None = ...,
    key_mask: Array | None = ...,
    attention_mask: Array | None = ...,
    causal: bool = ...,
    sliding_window: int | None = ...,
    dropout: float = ...,
    return_scores: Literal[True],
    keras_major: int = ...,
    softmax_robust_masking: bool = ...,
) -> tuple[Array, Array]: ...
def multi_head_attention(
    query: Array,
    value: Array,
    key: Array | None = None,
    *,
    weights: Mapping[str, Array | None],
    num_heads: int,
    key_dim: int,
    attention_axes: int | Sequence[int] | None = None,
    query_mask: Array | None = None,
    value_mask: Array | None = None,
    key_mask: Array | None = None,
    attention_mask: Array | None = None,
    causal: bool = False,
    sliding_window: int | None = None,
    dropout: float = 0.0,
    return_scores: bool = False,
    keras_major: int = 3,
    softmax_robust_masking: bool = False,
) -> Array | tuple[Array, Array]:
    """Keras ``MultiHeadAttention`` at inference: ``output (N, T, Dout)``, and with
    ``return_scores`` (``return_attention_scores``) also the weights ``(N, H, T, S)``.

    ``weights``: ``query_kernel (D, H, Kd)``, ``query_bias (H, Kd)`` or None,
    ``key_kernel (Dk, H, Kd)``, ``key_bias``, ``value_kernel (Dv, H, Vd)``,
    ``value_bias``, ``output_kernel (H, Vd, Dout...)``, ``output_bias (Dout...)``, and
    ``gate_kernel (D, H, Vd)``, ``gate_bias`` for Keras 3 ``use_gate=True``.

    The projections are Keras's ``EinsumDense`` equations; ``q = Q / sqrt(key_dim)``
    before ``scores = einsum(K, q)`` (per head, over ``attention_axes``, default all
    axes between batch and features); softmax over the key axes with the mask of
    :func:`mha_attention_mask`; ``out = einsum(scores, V)``, times ``sigmoid(gate)`` if
    gated, through the output projection. ``num_heads`` and ``key_dim`` are checked
    against the kernels; ``key_dim`` sets the scale.

    Where every key is masked for a query step (a padded query step, say), the three
    implementations differ, and ``keras_major``, ``dropout`` (the config value; it does
    nothing at inference) and ``return_scores`` choose:

    * Keras 3, fused path (``(N, T, D)`` inputs, ``dropout == 0``, no scores asked):
      ``ops.dot_product_attention``, which scales *after* the product and sets masked
      logits to ``-0.7 * 3.38953e38``: such a row attends uniformly to all S keys.
    * Keras 3 otherwise: the ``Softmax`` layer with the mask (``where(mask, s, -1e9)``,
      softmax, ``where(mask, w, 0)``): such a row's weights are all 0, so its output is
      the output bias.
    * tf_keras: ``s + (1 - mask) * -1e9`` (``where`` with ``softmax_robust_masking``),
      no zeroing: (nearly) uniform, like the fused path.
    """
    dt = _dtype(query, value, key)
    q_in = np.asarray(query, dtype=dt)  # (N, T, D)
    v_in = np.asarray(value, dtype=dt)  # (N, S, Dv)
    k_in = v_in if key is None else np.asarray(key, dtype=dt)  # (N, S, Dk)
    wq = _required(weights, "query_kernel", dt)
    wk = _required(weights, "key_kernel", dt)
    wv = _required(weights, "value_kernel", dt)
    wo = _required(weights, "output_kernel", dt)
    if wq.shape[1:] != (num_heads, key_dim) or wk.shape[1:] != (num_heads, key_dim):
        raise ValueError(
            f"MultiHeadAttention(num_heads={num_heads}, key_dim={key_dim}): query/key "
            f"kernels are {wq.shape} and {wk.shape}, expected (D, {num_heads}, {key_dim})"
        )

    mask = mha_attention_mask(
        q_in,
        v_in,
        query_mask=query_mask,
        value_mask=value_mask,
        key_mask=key_mask,
        attention_mask=attention_mask,
        causal=causal,
        sliding_window=sliding_window,
    )  # (N, T, S) or None
    gate_kernel = _weight(weights, "gate_kernel", dt)
    Q = _dense(q_in, wq, _weight(weights, "query_bias", dt), 1)  # (N, T, H, Kd)
    K = _dense(k_in, wk, _weight(weights, "key_bias", dt), 1)  # (N, S, H, Kd)
    V = _dense(v_in, wv, _weight(weights, "value_bias", dt), 1)  # (N, S, H, Vd)

    rank = Q.ndim
    if attention_axes is None:
        axes = tuple(range(1, rank - 2))
    else:
        given = (attention_axes,) if isinstance(attention_axes, int) else attention_axes
        axes = tuple(a if a >= 0 else (rank - 1) + a for a in given)
    inv_sqrt = dt.type(1.0 / math.sqrt(float(key_dim)))

    scores: Array | None
    fused = keras_major >= 3 and dropout == 0.0 and not return_scores and rank == 4
    if fused:
        logits = np.einsum("btnh,bsnh->bnts", Q, K) * inv_sqrt  # (N, H, T, S)
        if mask is not None:
            m4 = mask
            while m4.ndim < 4:
                m4 = np.expand_dims(m4, -3)  # (N, 1, T, S)
            neg = _FUSED_NEG_F16 if dt == np.float16 else _FUSED_NEG_F32
            logits = np.where(m4, logits, neg.astype(dt))  # (N, H, T, S)
        probs = plain_softmax(logits, -1)  # (N, H, T, S)
        out = np.einsum("bnts,bsnh->btnh", probs, V)  # (N, T, H, Vd)
        scores = None
    else:
        dot_eq, combine_eq = _attention_equations(rank, axes)
        s = np.einsum(dot_eq, K, Q * inv_sqrt)  # (N, H, T, S)
        norm_axes = tuple(range(s.ndim - len(axes), s.ndim))
        m = mask
        if m is not None:
            while m.ndim < s.ndim:
                m = np.expand_dims(m, -len(axes) * 2 - 1)  # (N, 1, T, S)
        scores = softmax(
            s, norm_axes, m, keras_major=keras_major, robust_masking=softmax_robust_masking
        )  # (N, H, T, S)
        out = np.einsum(combine_eq, scores, V)  # (N, T, H, Vd)

    if gate_kernel is not None:
        g = _dense(q_in, gate_kernel, _weight(weights, "gate_bias", dt), 1)  # (N, T, H, Vd)
        out = out * (dt.type(0.5) * (np.tanh(g * dt.type(0.5)) + dt.type(1)))  # (N, T, H, Vd)
    y = _dense(out, wo, _weight(weights, "output_bias", dt), 2)  # (N, T, Dout)
    y = y.astype(dt, copy=False)
    if return_scores:
        assert scores is not None  # return_scores never takes the fused path
        return y, scores
    return y
