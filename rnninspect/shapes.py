"""Output shapes of each layer call, per sample (no batch axis; ``None`` = variable),
as Keras's ``compute_output_shape`` gives them. ``build`` uses them to check every
weight against the width of the tensor it meets, and ``summary`` shows them.
"""

from __future__ import annotations

import math

from .errors import ModelError
from .model import (
    ELU,
    Activation,
    Attention,
    BatchNormalization,
    Bidirectional,
    Conv,
    ConvLSTM,
    Dense,
    Embedding,
    InputLayer,
    Layer,
    LayerNormalization,
    LeakyReLU,
    Masking,
    Merge,
    MultiHeadAttention,
    Node,
    Passthrough,
    Plumbing,
    Pooling,
    PReLU,
    Recurrent,
    ReLU,
    Shape,
    Softmax,
    StackedRNN,
    TimeDistributed,
)
from .ops.conv import conv_output_length, pool_output_length

# Layers whose output has their input's shape.
_SAME = (
    Masking,
    Activation,
    Passthrough,
    BatchNormalization,
    LayerNormalization,
    ReLU,
    LeakyReLU,
    PReLU,
    ELU,
    Softmax,
)


def axis_of(axis: int, rank: int) -> int:
    """A Keras axis (0 = batch) as an index into a per-sample shape of ``rank``."""
    return axis - 1 if axis > 0 else rank + axis


def output_shapes(node: Node, ins: list[Shape], where: str) -> list[Shape]:
    """The shapes of ``node``'s outputs, given its inputs' shapes."""
    layer = node.layer
    try:
        return _shapes(layer, ins, node)
    except (IndexError, ValueError, ZeroDivisionError) as exc:
        shown = ", ".join(_fmt(s) for s in ins)
        raise ModelError(
            f"{where}: layer {layer.name!r} ({layer.class_name}) cannot take input(s) "
            f"shaped {shown}"
        ) from exc


def _fmt(shape: Shape) -> str:
    return "(N, " + ", ".join("T" if d is None else str(d) for d in shape) + ")"


def _shapes(layer: Layer, ins: list[Shape], node: Node) -> list[Shape]:
    x = ins[0] if ins else ()
    if isinstance(layer, InputLayer):
        return [layer.shape]
    if isinstance(layer, _SAME):
        return [x]
    if isinstance(layer, Dense):
        return [(*x[:-1], layer.units)]
    if isinstance(layer, Embedding):
        return [(*x, int(layer.embeddings.shape[1]))]
    if isinstance(layer, TimeDistributed):
        inner = _shapes(layer.layer, [x[1:]], node)
        return [(x[0], *inner[0])]
    if isinstance(layer, Recurrent):
        return _recurrent(layer.units, layer.return_sequences, layer.return_state, x, layer.STATES)
    if isinstance(layer, StackedRNN):
        last = layer.cells[-1]
        out = _recurrent(last.units, layer.return_sequences, False, x, 0)
        if layer.return_state:
            out += [(c.units,) for c in layer.cells for _ in range(c.STATES)]
        return out
    if isinstance(layer, Bidirectional):
        fwd = layer.forward
        M = fwd.units
        width = 2 * M if layer.merge_mode == "concat" else M
        seq: Shape = (x[0], width) if fwd.return_sequences else (width,)
        out = [seq] if layer.merge_mode is not None else [seq, seq]
        if fwd.return_state:
            out += [(M,)] * (2 * fwd.STATES)
        return out
    if isinstance(layer, ConvLSTM):
        space = _conv_space(x[1:-1], layer.kernel.shape[: layer.rank], layer)
        F = layer.filters
        step: Shape = (*space, F)
        out = [(x[0], *step) if layer.return_sequences else step]
        return out + ([step, step] if layer.return_state else [])
    if isinstance(layer, Conv):
        if layer.channels_first:
            space = _conv_space(x[1:], layer.kernel.shape[: layer.rank], layer)
            return [(layer.filters, *space)]
        space = _conv_space(x[:-1], layer.kernel.shape[: layer.rank], layer)
        return [(*space, layer.filters)]
    if isinstance(layer, Pooling):
        return [_pooling(layer, x)]
    if isinstance(layer, Merge):
        return [_merge(layer, ins)]
    if isinstance(layer, Plumbing):
        return [_plumbing(layer, x)]
    if isinstance(layer, Attention):
        q, v = ins[0], ins[1]
        out = [(*q[:-1], v[-1])]
        if node.options.get("return_attention_scores"):
            out.append((*q[:-1], v[-2]))
        return out
    if isinstance(layer, MultiHeadAttention):
        q, v = ins[0], ins[1]
        dout = layer.kernels["output"].shape[-1]
        out = [(*q[:-1], int(dout))]
        if node.options.get("return_attention_scores"):
            out.append((layer.num_heads, q[0], v[0]))
        return out
    raise ModelError(f"no shape rule for layer {layer.name!r} ({layer.class_name})")


def _recurrent(M: int, seq: bool, state: bool, x: Shape, n_states: int) -> list[Shape]:
    out: list[Shape] = [(x[0], M) if seq else (M,)]
    return out + [(M,)] * n_states if state else out


def _conv_space(space: Shape, kernel: tuple[int, ...], layer: Conv | ConvLSTM) -> Shape:
    return tuple(
        conv_output_length(n, int(k), layer.padding, s, d)
        for n, k, s, d in zip(space, kernel, layer.strides, layer.dilation_rate, strict=True)
    )


def _pooling(layer: Pooling, x: Shape) -> Shape:
    if layer.channels_first:
        C, space = x[0], x[1:]
    else:
        C, space = x[-1], x[:-1]
    if layer.global_:
        kept: Shape = (1,) * len(space) if layer.keepdims else ()
        return (C, *kept) if layer.channels_first else (*kept, C)
    out = tuple(
        pool_output_length(n, k, layer.padding, s)
        for n, k, s in zip(space, layer.pool_size, layer.strides, strict=True)
    )
    return (C, *out) if layer.channels_first else (*out, C)


def _merge(layer: Merge, ins: list[Shape]) -> Shape:
    first = ins[0]
    if layer.mode == "concatenate":
        ax = axis_of(layer.axis, len(first))
        total = 0
        for s in ins:
            if len(s) != len(first) or any(
                a != b for i, (a, b) in enumerate(zip(s, first, strict=True)) if i != ax
            ):
                raise ValueError("concatenated shapes differ")
            if s[ax] is None:
                return (*first[:ax], None, *first[ax + 1 :])
            total += int(s[ax])  # type: ignore[arg-type]
        return (*first[:ax], total, *first[ax + 1 :])
    if layer.mode == "dot":
        a, b = ins
        axa, axb = (axis_of(ax, len(s)) for ax, s in zip(layer.axes, (a, b), strict=True))
        rest_a = [d for i, d in enumerate(a) if i != axa]
        rest_b = [d for i, d in enumerate(b) if i != axb]
        out = (*rest_a, *rest_b)
        return out if out else (1,)
    if len({len(s) for s in ins}) > 1:
        # Keras inserts axes after the batch axis into the lower-rank inputs.
        rank = max(len(s) for s in ins)
        ins = [(1,) * (rank - len(s)) + tuple(s) for s in ins]
    return tuple(
        next((d for d in dims if d is not None and d != 1), dims[0])
        for dims in zip(*ins, strict=True)
    )


def _plumbing(layer: Plumbing, x: Shape) -> Shape:
    op, args = layer.op, layer.args
    if op == "repeat_vector":
        return (args[0], *x)
    if op == "flatten":
        if any(d is None for d in x):
            raise ValueError("Flatten needs every dimension known")
        return (math.prod(int(d) for d in x if d is not None),)
    if op == "reshape":
        if -1 in args:
            known = math.prod(a for a in args if a != -1)
            total = math.prod(int(d) for d in x if d is not None)
            if any(d is None for d in x) or known == 0 or total % known:
                raise ValueError("Reshape cannot infer its -1 dimension")
            return tuple(total // known if a == -1 else a for a in args)
        return args
    if op == "permute":
        return tuple(x[d - 1] for d in args)
    if op == "cropping1d":
        T = x[0]
        return (None if T is None else T - args[0] - args[1], *x[1:])
    if op == "zero_padding1d":
        T = x[0]
        return (None if T is None else T + args[0] + args[1], *x[1:])
    if op == "upsampling1d":
        T = x[0]
        return (None if T is None else T * args[0], *x[1:])
    raise ValueError(op)
