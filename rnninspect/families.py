"""The graph evaluator's layers beyond the recurrent core: each typed layer handed
to its family's plain function in ``ops``, with the masks Keras passes on
(``docs/keras-semantics.md``, "Masks through layers").

Every function here takes a node, its input tensors and masks (and initial
states), and returns the node's outputs and their masks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import activations
from .model import (
    ELU,
    MHA_WEIGHTS,
    Array,
    Attention,
    BatchNormalization,
    Conv,
    ConvLSTM,
    LayerNormalization,
    LeakyReLU,
    Merge,
    MultiHeadAttention,
    Node,
    Plumbing,
    Pooling,
    PReLU,
    ReLU,
    Softmax,
)
from .ops import activation_layers, attention, conv, merge, norm, sequence

if TYPE_CHECKING:
    from .engine import _Ctx

Outs = tuple[list[Array], list["Array | None"]]

_MERGE_KINDS = {
    "add": "Add",
    "subtract": "Subtract",
    "multiply": "Multiply",
    "average": "Average",
    "maximum": "Maximum",
    "minimum": "Minimum",
    "concatenate": "Concatenate",
    "dot": "Dot",
}


def _fmt(channels_first: bool) -> str:
    return "channels_first" if channels_first else "channels_last"


def apply(
    node: Node, xs: list[Array], masks: list[Array | None], states: list[Array], ctx: _Ctx
) -> Outs:
    layer = node.layer
    ft, major = ctx.ft, ctx.major
    x = xs[0]
    mask = masks[0]
    if isinstance(layer, Merge):
        return _merge(layer, [a.astype(ft, copy=False) for a in xs], masks, major)
    if isinstance(layer, Plumbing):
        return [_plumbing(layer, x)], [_plumbing_mask(layer, mask)]
    if isinstance(layer, Conv):
        fn = conv.conv1d if layer.rank == 1 else conv.conv2d
        y = fn(
            x,
            layer.kernel.astype(ft, copy=False),
            None if layer.bias is None else layer.bias.astype(ft, copy=False),
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            groups=layer.groups,
            data_format=_fmt(layer.channels_first),
        )
        return [activations.get(layer.activation, major)(y)], [None]
    if isinstance(layer, Pooling):
        return [_pool(layer, x, mask, major)], [None]
    if isinstance(layer, BatchNormalization):
        y = norm.batch_norm(
            x,
            axis=layer.axis,
            gamma=_cast(layer.gamma, ft),
            beta=_cast(layer.beta, ft),
            moving_mean=layer.moving_mean.astype(ft, copy=False),
            moving_variance=layer.moving_variance.astype(ft, copy=False),
            epsilon=layer.epsilon,
        )
        return [y], [mask]
    if isinstance(layer, LayerNormalization):
        y = norm.layer_norm(
            x,
            axes=layer.axes,
            gamma=_cast(layer.gamma, ft),
            beta=_cast(layer.beta, ft),
            epsilon=layer.epsilon,
            rms_scaling=layer.rms_scaling,
        )
        return [y], [mask]
    if isinstance(layer, ReLU):
        y = activation_layers.relu(
            x,
            max_value=layer.max_value,
            negative_slope=layer.negative_slope,
            threshold=layer.threshold,
        )
        return [y], [mask]
    if isinstance(layer, LeakyReLU):
        return [activation_layers.leaky_relu(x, layer.alpha)], [mask]
    if isinstance(layer, ELU):
        return [activation_layers.elu(x, layer.alpha)], [mask]
    if isinstance(layer, PReLU):
        alpha = layer.alpha.astype(ft, copy=False)
        return [np.maximum(x, 0) + alpha * np.minimum(x, 0)], [mask]  # alpha broadcasts
    if isinstance(layer, Softmax):
        y = activation_layers.softmax(x, axis=layer.axis, keras_major=major)
        return [y], [mask]
    if isinstance(layer, Attention):
        return _attention(node, layer, xs, masks, ft)
    if isinstance(layer, MultiHeadAttention):
        return _mha(node, layer, xs, masks, ft, major)
    if isinstance(layer, ConvLSTM):
        return _conv_lstm(node, layer, x, mask, states, ctx)
    raise TypeError(f"engine cannot run layer {layer.name!r} ({layer.class_name})")


def _cast(a: Array | None, ft: np.dtype[Any]) -> Array | None:
    return None if a is None else a.astype(ft, copy=False)


def _merge(layer: Merge, xs: list[Array], masks: list[Array | None], major: int) -> Outs:
    kind = _MERGE_KINDS[layer.mode]
    if layer.mode == "concatenate":
        y = merge.concatenate(xs, axis=layer.axis)
        out_mask = merge.merge_masks(kind, masks, xs, axis=layer.axis, keras_major=major)
        return [y], [out_mask]
    if layer.mode == "dot":
        return [merge.dot(xs[0], xs[1], layer.axes, layer.normalize, keras_major=major)], [None]
    if layer.mode in ("multiply", "maximum", "minimum"):
        fn = {"multiply": merge.multiply, "maximum": merge.maximum, "minimum": merge.minimum}
        y = fn[layer.mode](xs, masks, keras_major=major)
    else:
        fn2 = {"add": merge.add, "subtract": merge.subtract, "average": merge.average}
        y = fn2[layer.mode](xs)
    return [y], [merge.merge_masks(kind, masks, xs, keras_major=major)]


def _plumbing(layer: Plumbing, x: Array) -> Array:
    op, args = layer.op, layer.args
    if op == "repeat_vector":
        return sequence.repeat_vector(x, args[0])
    if op == "flatten":
        return sequence.flatten(x)
    if op == "reshape":
        return sequence.reshape(x, args)
    if op == "permute":
        return sequence.permute(x, args)
    if op == "cropping1d":
        return sequence.cropping1d(x, (args[0], args[1]))
    if op == "zero_padding1d":
        return sequence.zero_padding1d(x, (args[0], args[1]))
    return sequence.upsampling1d(x, args[0])


def _plumbing_mask(layer: Plumbing, mask: Array | None) -> Array | None:
    """Keras passes no mask on through these layers but Cropping1D (cropped with
    its steps)."""
    if mask is None or layer.op != "cropping1d":
        return None
    a, b = layer.args
    return mask[:, a : mask.shape[1] - b]


def _pool(layer: Pooling, x: Array, mask: Array | None, major: int) -> Array:
    fmt = _fmt(layer.channels_first)
    if layer.global_:
        if layer.rank == 1:
            return conv.global_pool1d(
                x, mask, op=layer.op, keepdims=layer.keepdims, data_format=fmt, keras_major=major
            )
        return conv.global_pool2d(x, op=layer.op, keepdims=layer.keepdims, data_format=fmt)
    fn = conv.pool1d if layer.rank == 1 else conv.pool2d
    return fn(
        x,
        op=layer.op,
        pool_size=layer.pool_size,
        strides=layer.strides,
        padding=layer.padding,
        data_format=fmt,
    )


def _attention(
    node: Node, layer: Attention, xs: list[Array], masks: list[Array | None], ft: np.dtype[Any]
) -> Outs:
    q, v = xs[0], xs[1]
    k = xs[2] if len(xs) > 2 else None
    causal = layer.causal or bool(node.options.get("use_causal_mask", False))
    want_scores = bool(node.options.get("return_attention_scores", False))
    common: dict[str, Any] = {
        "query_mask": masks[0],
        "value_mask": masks[1],
        "causal": causal,
        "return_scores": True,
    }
    if layer.score == "additive":
        y, scores = attention.additive_attention(
            q, v, k, use_scale=layer.use_scale, scale=_cast(layer.scale, ft), **common
        )
    else:
        y, scores = attention.dot_attention(
            q,
            v,
            k,
            use_scale=layer.use_scale,
            scale=_cast(layer.scale, ft),
            score_mode="concat" if layer.score == "concat" else "dot",
            concat_score_weight=_cast(layer.concat_score_weight, ft),
            **common,
        )
    outs = [y, scores] if want_scores else [y]
    return outs, [masks[0]] + [None] * (len(outs) - 1)


def _mha(
    node: Node,
    layer: MultiHeadAttention,
    xs: list[Array],
    masks: list[Array | None],
    ft: np.dtype[Any],
    major: int,
) -> Outs:
    weights: dict[str, Array | None] = {}
    for part in MHA_WEIGHTS:
        weights[f"{part}_kernel"] = layer.kernels[part].astype(ft, copy=False)
        weights[f"{part}_bias"] = _cast(layer.biases.get(part), ft)
    want_scores = bool(node.options.get("return_attention_scores", False))
    found: Array | tuple[Array, Array] = attention.multi_head_attention(  # type: ignore[call-overload]
        xs[0],
        xs[1],
        xs[2] if len(xs) > 2 else None,
        weights=weights,
        num_heads=layer.num_heads,
        key_dim=layer.key_dim,
        query_mask=masks[0],
        value_mask=masks[1],
        key_mask=masks[2] if len(masks) > 2 else None,
        causal=bool(node.options.get("use_causal_mask", False)),
        dropout=layer.dropout,
        return_scores=want_scores,
        keras_major=major,
    )
    outs = list(found) if isinstance(found, tuple) else [found]
    return outs, [masks[0]] + [None] * (len(outs) - 1)


def _conv_lstm(
    node: Node,
    layer: ConvLSTM,
    x: Array,
    mask: Array | None,
    states: list[Array],
    ctx: _Ctx,
) -> Outs:
    ft = ctx.ft
    record = ctx.states is not None and not ctx.outputs_of
    found = conv.convlstm_scan(
        x,
        layer.kernel.astype(ft, copy=False),
        layer.recurrent_kernel.astype(ft, copy=False),
        _cast(layer.bias, ft),
        rank=layer.rank,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        activation=activations.get(layer.activation, ctx.major),
        recurrent_activation=activations.get(layer.recurrent_activation, ctx.major),
        go_backwards=layer.go_backwards,
        return_sequences=layer.return_sequences,
        keep_gates=record,
        initial_state=[a.astype(ft, copy=False) for a in states] or None,
        mask=mask,
    )
    if record and ctx.states is not None:
        ctx.states[node.key] = found["seq_h"]
        ctx.states[f"{node.key}/c"] = found["seq_c"]
        if ctx.gates:
            for gate in ("i", "f", "g", "o"):
                ctx.states[f"{node.key}/{gate}"] = found[gate]
    outs = [found["output"]]
    if layer.return_state:
        outs += [found["h"], found["c"]]
    out_mask = mask if layer.return_sequences else None
    return outs, [out_mask] + [None] * (len(outs) - 1)
