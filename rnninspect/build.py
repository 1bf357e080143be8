"""Architecture + weight arrays -> ``Model``, with every shape checked once, here.

Loaders find the arrays (each file family has its own layout); this module turns
``LayerSpec``s into typed layers and checks that kernels, recurrent kernels and biases
agree with each other, with the config and with the previous layer's width.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from . import activations
from .architecture import PASSTHROUGH, Architecture, LayerSpec
from .errors import ModelError, UnsupportedLayerError
from .model import (
    GRU,
    LSTM,
    Activation,
    Array,
    Attention,
    Bidirectional,
    Dense,
    Embedding,
    InputLayer,
    Layer,
    Masking,
    Merge,
    Model,
    MultiHeadAttention,
    Node,
    Passthrough,
    Recurrent,
    Ref,
    Shape,
    SimpleRNN,
    Source,
    StackedRNN,
    TimeDistributed,
    is_recurrent,
)
from .shapes import output_shapes
from .versions import keras_major, older_than

WeightMap = Mapping[tuple[str, ...], list[Array]]


def walk(
    specs: list[LayerSpec], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], LayerSpec]]:
    """Leaf layers with their key path (nested model names, then the layer name)."""
    for spec in specs:
        key = (*prefix, spec.name)
        if spec.is_container:
            yield from walk(spec.children, key)
        else:
            yield key, spec


def build_model(arch: Architecture, weights: WeightMap, source: Source) -> Model:
    """Typed layers from ``arch``'s specs and ``weights``, the graph's nodes with
    every tensor's shape, each weight checked against the tensor it meets."""
    where = str(source.path)
    arch = arch.graph()
    major = keras_major(source.keras_version, 3)
    specs = dict(walk(arch.layers))
    if _writer_defaults(specs.values(), source.keras_version) == "hard_sigmoid":
        # The inferred chain's note says what the file's Keras defaulted to.
        said = f" gates, the default of Keras {source.keras_version} that wrote the file"
        source.assumptions = [
            note.replace("sigmoid ", "hard_sigmoid ", 1).replace(" gates", said, 1)
            if note.startswith("no architecture in the file")
            else note
            for note in source.assumptions
        ]
    inputs = [
        InputLayer(name=s.name, shape=s.shape or (), dtype=s.dtype, batch=s.batch)
        for s in arch.inputs
    ]
    if any(s.shape is None for s in arch.inputs):
        guess, dtype = _guess_input(arch, weights, where)
        for given, made in zip(arch.inputs, inputs, strict=True):
            if given.shape is None:
                made.shape, made.dtype = guess, dtype
        source.assumptions.append(
            "input shape " + _shape_text(guess) + " inferred from the first layer's weights"
        )
    _ids_for_embeddings(arch, inputs)
    built: dict[tuple[str, ...], Layer] = {}
    nodes: list[Node] = []
    for ns in arch.nodes:
        if ns.key is None:
            assert ns.input is not None
            nodes.append(Node(layer=inputs[ns.input], output_shapes=[inputs[ns.input].shape]))
            continue
        ins = [nodes[r.node].output_shapes[r.index] for r in ns.args]
        key = ns.key
        if key not in built:
            spec = specs[key]
            ids = bool(ns.args) and _is_ids(nodes, ns.args[0])
            width = ins[0][-1] if ins and ins[0] and not ids else None
            layer = _build_layer(spec, list(weights.get(key, [])), where, width, major, ins)
            layer.trainable = bool(spec.config.get("trainable", True))
            if len(key) > 1:
                layer.parent = key[0]  # inside a nested model: its top-level row
            built[key] = layer
        node = Node(
            layer=built[key],
            inputs=[Ref(r.node, r.index) for r in ns.args],
            states=[Ref(r.node, r.index) for r in ns.states],
            options=dict(ns.options),
            call=ns.call,
        )
        _check_arity(node, where)
        node.output_shapes = output_shapes(node, ins, where)
        for r in ns.args + ns.states:
            if r.index >= len(nodes[r.node].output_shapes):
                src = nodes[r.node].layer
                raise ModelError(
                    f"{where}: layer {layer.name!r} takes output #{r.index} of {src.name!r} "
                    f"({src.class_name}), which has {len(nodes[r.node].output_shapes)}"
                )
        _check_states(node, [nodes[r.node].output_shapes[r.index] for r in ns.states], where)
        nodes.append(node)
    for r in arch.outputs:
        if r.index >= len(nodes[r.node].output_shapes):
            raise ModelError(
                f"{where}: the model outputs #{r.index} of {nodes[r.node].layer.name!r}, "
                f"which has {len(nodes[r.node].output_shapes)} output(s)"
            )
    return Model(
        name=arch.name,
        # As Keras lists them: a Functional model's InputLayers first.
        layers=[
            *(inputs if arch.lists_input_layer else []),
            *(built[key] for key, _ in walk(arch.layers) if key in built),
        ],
        inputs=inputs,
        nodes=nodes,
        outputs=[Ref(r.node, r.index) for r in arch.outputs],
        output_names=list(arch.output_names),
        source=source,
        lists_input_layer=arch.lists_input_layer,
        containers={s.name: s.class_name for s in arch.layers if s.is_container},
    )


def _writer_defaults(specs: Any, version: str | None) -> str | None:
    """What a config leaves out is what the Keras that wrote the file defaulted to:
    recurrent layers of Keras 1 and Keras < 2.3 used hard_sigmoid gates."""
    # tf.keras says "2.2.4-tf" in TF 1.13 to 2.1, whose default differs; the TF 2
    # layers (sigmoid) are the ones still in use.
    tf_keras = bool(version) and str(version).endswith("-tf")
    default = "hard_sigmoid" if older_than(version, (2, 3)) and not tf_keras else "sigmoid"
    todo = list(specs)
    used = None
    while todo:
        spec = todo.pop()
        todo += [s for s in (spec.inner, spec.backward) if s is not None] + spec.cells
        if spec.class_name in ("LSTM", "GRU") and spec.config.get("recurrent_activation") is None:
            spec.config["recurrent_activation"] = used = default
    return used


def _is_ids(nodes: list[Node], ref: Ref) -> bool:
    layer = nodes[ref.node].layer
    return isinstance(layer, InputLayer) and layer.dtype == "int32"


def _ids_for_embeddings(arch: Architecture, inputs: list[InputLayer]) -> None:
    """An input feeding an Embedding takes integer ids, whatever dtype it declares."""
    specs = dict(walk(arch.layers))
    for ns in arch.nodes:
        if ns.key is None or specs[ns.key].class_name != "Embedding":
            continue
        for r in ns.args:
            source = arch.nodes[r.node]
            if source.input is not None:
                found = inputs[source.input]
                found.dtype = "int32"
                if len(found.shape) == 2 and found.shape[1] == 1:
                    found.shape = found.shape[:1]  # Keras 1 gives (T, 1) in rare cases


# How many tensors each kind of layer takes (positional), when it is not one.
_ARITY: dict[type[Layer], tuple[int, int]] = {Attention: (2, 3), MultiHeadAttention: (2, 3)}


def _check_arity(node: Node, where: str) -> None:
    layer = node.layer
    lo, hi = _ARITY.get(type(layer), (1, 1))
    if isinstance(layer, Merge):
        lo, hi = (2, 2) if layer.mode in ("subtract", "dot") else (1, 1 << 30)
    n = len(node.inputs)
    if not lo <= n <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 1 << 30 else f"at least {lo}"
        raise ModelError(
            f"{where}: layer {layer.name!r} ({layer.class_name}) is called on {n} tensor(s); "
            f"it takes {want}"
        )
    if node.states and not is_recurrent(layer):
        raise ModelError(f"{where}: layer {layer.name!r} ({layer.class_name}) takes no states")


def _check_states(node: Node, shapes: list[Shape], where: str) -> None:
    """``initial_state`` tensors: as many as the layer has states, each (M,)."""
    if not node.states:
        return
    layer = node.layer
    want: list[Shape] = []
    if isinstance(layer, Recurrent):
        want += [(layer.units,) for _ in range(layer.STATES)]
    elif isinstance(layer, Bidirectional):
        fwd, bwd = layer.forward, layer.backward
        want += [(fwd.units,) for _ in range(fwd.STATES)]
        want += [(bwd.units,) for _ in range(bwd.STATES)]
    elif isinstance(layer, StackedRNN):
        want += [(c.units,) for c in layer.cells for _ in range(c.STATES)]
    else:
        want += node.output_shapes[1:3] or shapes
    if [tuple(s) for s in shapes] != [tuple(s) for s in want]:
        raise ModelError(
            f"{where}: layer {layer.name!r} ({layer.class_name}) gets initial states shaped "
            f"{', '.join(_shape_text(s) for s in shapes)}; it needs "
            f"{', '.join(_shape_text(s) for s in want)}"
        )


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(N, " + ", ".join("T" if d is None else str(d) for d in shape) + ")"


def _guess_input(
    arch: Architecture, weights: WeightMap, where: str
) -> tuple[tuple[int | None, ...], str]:
    for key, leaf in walk(arch.layers):
        arrays = weights.get(key) or []
        if leaf.class_name == "Embedding":
            return (None,), "int32"
        if arrays and getattr(arrays[0], "ndim", 0) == 2:
            return (None, int(arrays[0].shape[0])), "float32"
    raise ModelError(f"{where}: cannot tell the input shape: no layer has weights")


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _float(a: Array, where: str, layer: str, what: str) -> Array:
    if a.dtype.kind != "f":
        raise ModelError(f"{where}: layer {layer!r} {what} has dtype {a.dtype}, expected floats")
    return a


def _take(spec: LayerSpec, arrays: list[Array], n: int, where: str) -> list[Array]:
    if len(arrays) != n:
        raise ModelError(
            f"{where}: layer {spec.name!r} ({spec.class_name}) has {len(arrays)} weight arrays, "
            f"expected {n}"
        )
    return arrays


def _check(cond: bool, where: str, spec: LayerSpec, message: str) -> None:
    if not cond:
        raise ModelError(f"{where}: layer {spec.name!r} ({spec.class_name}): {message}")


def _check_input_width(spec: LayerSpec, kernel: Array, width: int | None, where: str) -> None:
    _check(
        width is None or kernel.shape[0] == width,
        where,
        spec,
        f"kernel {_fmt(kernel.shape)} expects D={kernel.shape[0]} input features "
        f"but the previous layer gives {width}",
    )


def _units(spec: LayerSpec, key: str = "units") -> int | None:
    value: Any = spec.config.get(key)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _build_layer(
    spec: LayerSpec,
    arrays: list[Array],
    where: str,
    width: int | None,
    major: int,
    ins: list[Shape] | None = None,
) -> Layer:
    layer = _build_layer_of(spec, arrays, where, width, major, ins or [])
    if spec.keras_class != type(layer).__name__ and not isinstance(layer, Passthrough):
        layer.keras_class = spec.keras_class
    return layer


def _build_layer_of(
    spec: LayerSpec,
    arrays: list[Array],
    where: str,
    width: int | None,
    major: int,
    ins: list[Shape],
) -> Layer:
    cfg = spec.config
    cls = spec.class_name
    name = spec.name
    ctx = f"{where}: layer {name!r}"
    from . import build_more  # the layer families beyond the recurrent core

    found = build_more.build(spec, arrays, where, width, major, ins)
    if found is not None:
        return found
    if cls == "Dense":
        use_bias = bool(cfg.get("use_bias", True))
        got = _take(spec, arrays, 1 + use_bias, where)
        kernel = _float(got[0], where, name, "kernel")
        _check(
            kernel.ndim == 2,
            where,
            spec,
            f"kernel has shape {_fmt(kernel.shape)}, expected 2-D (in, units)",
        )
        units = _units(spec)
        _check(
            units is None or kernel.shape[1] == units,
            where,
            spec,
            f"kernel {_fmt(kernel.shape)} does not match units={units}",
        )
        _check_input_width(spec, kernel, width, where)
        bias = None
        if use_bias:
            bias = _float(got[1], where, name, "bias")
            _check(
                bias.shape == (kernel.shape[1],),
                where,
                spec,
                f"bias {_fmt(bias.shape)} does not match kernel {_fmt(kernel.shape)}",
            )
        act = activations.activation_name(cfg.get("activation", "linear"), ctx)
        return Dense(name=name, kernel=kernel, bias=bias, activation=act)
    if cls in ("SimpleRNN", "LSTM", "GRU"):
        return _build_recurrent(spec, arrays, where, width, major)
    if cls == "Bidirectional":
        assert spec.inner is not None
        back_spec = spec.backward or _mirror(spec.inner)
        n_fwd = len(arrays) // 2
        if spec.inner.class_name == "StackedRNN":
            raise UnsupportedLayerError(
                f"{ctx}: Bidirectional around RNN(StackedRNNCells) is not supported"
            )
        fwd = _build_recurrent(spec.inner, arrays[:n_fwd], where, width, major)
        bwd = _build_recurrent(back_spec, arrays[n_fwd:], where, width, major)
        bwd.go_backwards = not fwd.go_backwards
        # Bidirectional forces zero_output_for_mask = return_sequences on both
        # directions (tf.keras leaves the flag out of its config).
        for direction in (fwd, bwd):
            direction.zero_output_for_mask = fwd.return_sequences
        bwd.return_state = fwd.return_state
        if fwd.time_major:
            raise UnsupportedLayerError(f"{ctx}: Bidirectional with time_major=True")
        merge = cfg.get("merge_mode", "concat")
        if merge not in ("concat", "sum", "ave", "mul", None):
            raise ModelError(f"{ctx}: unknown merge_mode {merge!r}")
        return Bidirectional(name=name, forward=fwd, backward=bwd, merge_mode=merge)
    if cls == "Embedding":
        got = _take(spec, arrays, 1, where)
        emb = got[0]
        _check(
            emb.ndim == 2 and emb.dtype.kind == "f",
            where,
            spec,
            f"embeddings have shape {_fmt(emb.shape)} dtype {emb.dtype}, expected float (V, E)",
        )
        v, e = _units(spec, "input_dim"), _units(spec, "output_dim")
        _check(
            (v is None or emb.shape[0] == v) and (e is None or emb.shape[1] == e),
            where,
            spec,
            f"embeddings {_fmt(emb.shape)} do not match input_dim={v}, output_dim={e}",
        )
        return Embedding(name=name, embeddings=emb, mask_zero=bool(cfg.get("mask_zero", False)))
    if cls == "TimeDistributed":
        assert spec.inner is not None
        inner_ins = [s[1:] for s in ins]
        inner = _build_layer(spec.inner, arrays, where, width, major, inner_ins)
        if is_recurrent(inner) or isinstance(inner, (Embedding, MultiHeadAttention, Attention)):
            raise UnsupportedLayerError(
                f"{where}: layer {name!r} wraps a {inner.class_name}; TimeDistributed is "
                "supported around layers that take one step's tensor (Dense, Conv2D, "
                "pooling, Flatten, activations, normalisation, Dropout)"
            )
        return TimeDistributed(name=name, layer=inner)
    _take(spec, arrays, 0, where)
    if cls == "Masking":
        value = cfg.get("mask_value", 0.0)
        if not isinstance(value, (int, float)):
            raise ModelError(f"{ctx}: mask_value {value!r} is not a number")
        return Masking(name=name, mask_value=float(value))
    if cls == "Activation":
        return Activation(
            name=name, activation=activations.activation_name(cfg.get("activation"), ctx)
        )
    if cls in PASSTHROUGH:
        return Passthrough(name=name, keras_class=cls)
    raise ModelError(f"{ctx}: cannot build a {cls} layer")


def _mirror(spec: LayerSpec) -> LayerSpec:
    cfg = dict(spec.config)
    cfg["go_backwards"] = not bool(cfg.get("go_backwards", False))
    return LayerSpec(spec.class_name, "backward_" + spec.name, cfg)


# Keras 1 stored each gate separately; the fused layout concatenates them in the
# modern gate order (LSTM i, f, c, o from stored i, c, f, o; GRU z, r, h).
_KERAS1_ORDER = {"LSTM": (0, 2, 1, 3), "GRU": (0, 1, 2), "SimpleRNN": (0,)}


def _fuse_keras1(cls: str, arrays: list[Array]) -> list[Array]:
    order = _KERAS1_ORDER[cls]
    per_gate = [arrays[3 * g : 3 * g + 3] for g in order]  # [W, U, b] for each gate
    return [np.concatenate([gate[i] for gate in per_gate], axis=-1) for i in range(3)]


def _from_cudnn(spec: LayerSpec, arrays: list[Array], where: str) -> list[Array]:
    """CuDNNLSTM / CuDNNGRU weights (their own kernel layout and two biases) in the
    LSTM / GRU(reset_after) layout, as Keras's own legacy loader converts them."""
    from .ops import cudnn

    if len(arrays) != 3:
        raise ModelError(
            f"{where}: layer {spec.name!r} ({spec.keras_class}) has {len(arrays)} weight "
            "arrays, expected 3"
        )
    convert = cudnn.cudnn_lstm_weights if spec.class_name == "LSTM" else cudnn.cudnn_gru_weights
    try:
        return list(convert(*arrays))
    except ValueError as exc:
        raise ModelError(f"{where}: layer {spec.name!r} ({spec.keras_class}): {exc}") from exc


def _build_recurrent(
    spec: LayerSpec, arrays: list[Array], where: str, width: int | None, major: int
) -> Recurrent:
    cfg = spec.config
    cls = spec.class_name
    name = spec.name
    ctx = f"{where}: layer {name!r}"
    g = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[cls]
    if g > 1 and len(arrays) == 3 * g:
        arrays = _fuse_keras1(cls, arrays)
    if spec.keras_class in ("CuDNNLSTM", "CuDNNGRU"):
        arrays = _from_cudnn(spec, arrays, where)
    use_bias = bool(cfg.get("use_bias", True))
    got = _take(spec, arrays, 2 + use_bias, where)
    kernel = _float(got[0], where, name, "kernel")
    rec = _float(got[1], where, name, "recurrent_kernel")
    gm = "M" if g == 1 else f"{g}M"
    _check(
        rec.ndim == 2 and rec.shape[1] == g * rec.shape[0],
        where,
        spec,
        f"recurrent_kernel has shape {_fmt(rec.shape)}, expected (M, {gm})",
    )
    M = int(rec.shape[0])
    _check(
        kernel.ndim == 2 and kernel.shape[1] == g * M,
        where,
        spec,
        f"kernel {_fmt(kernel.shape)} and recurrent_kernel {_fmt(rec.shape)} disagree "
        f"(expected (D, {gm}) with M={M})",
    )
    units = _units(spec)
    _check(
        units is None or units == M,
        where,
        spec,
        f"recurrent_kernel {_fmt(rec.shape)} does not match units={units}",
    )
    _check_input_width(spec, kernel, width, where)
    bias = None
    reset_after = bool(cfg.get("reset_after", major >= 3))
    if use_bias:
        bias = _float(got[2], where, name, "bias")
        if cls == "GRU" and "reset_after" not in cfg:
            reset_after = bias.ndim == 2  # older configs omit it; the shape tells
        want: tuple[int, ...] = (2, g * M) if cls == "GRU" and reset_after else (g * M,)
        _check(
            bias.shape == want,
            where,
            spec,
            f"bias {_fmt(bias.shape)} does not match recurrent_kernel {_fmt(rec.shape)} "
            f"(expected {_fmt(want)})",
        )
    common: dict[str, Any] = {
        "name": name,
        "kernel": kernel,
        "recurrent_kernel": rec,
        "bias": bias,
        "activation": activations.activation_name(cfg.get("activation", "tanh"), ctx),
        "return_sequences": bool(cfg.get("return_sequences", False)),
        "return_state": bool(cfg.get("return_state", False)),
        "go_backwards": bool(cfg.get("go_backwards", False)),
        "zero_output_for_mask": bool(cfg.get("zero_output_for_mask", False)),
        "stateful": bool(cfg.get("stateful", False)),
        "time_major": bool(cfg.get("time_major", False)),
        "unroll": bool(cfg.get("unroll", False)),
    }
    if cls == "SimpleRNN":
        return SimpleRNN(**common)
    ra = activations.activation_name(cfg.get("recurrent_activation", "sigmoid"), ctx)
    if cls == "LSTM":
        return LSTM(**common, recurrent_activation=ra)
    return GRU(**common, recurrent_activation=ra, reset_after=reset_after)
