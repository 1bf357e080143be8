"""Parameter summary: what Keras's ``model.summary()`` shows (for graphs also its
"Connected to" column), plus each weight's shape in the notebook's symbols ((D,M),
(M,M), (M,), ...). Computation only; rendering is in ``render``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import (
    Array,
    Bidirectional,
    Conv,
    ConvLSTM,
    Dense,
    Embedding,
    InputLayer,
    Layer,
    Model,
    Node,
    Recurrent,
    Ref,
    StackedRNN,
    TimeDistributed,
    is_recurrent,
)

Shape = tuple[int | None, ...]


@dataclass
class WeightInfo:
    name: str
    shape: tuple[int, ...]
    symbol: str  # "(D,M)"
    dtype: str
    value: Array
    trainable: bool = True


@dataclass
class LayerInfo:
    name: str
    type: str  # the Keras class name
    output_shape: Shape  # with the batch axis (None, ...); the first output's
    params: int
    trainable: bool
    weights: list[WeightInfo] = field(default_factory=list)
    layers: list[LayerInfo] = field(default_factory=list)  # a nested model's own layers
    output_shapes: list[Shape] = field(default_factory=list)  # every output, batch axis too
    connected_to: list[str] = field(default_factory=list)  # "layer[node][tensor]"

    @property
    def non_trainable_params(self) -> int:
        own = sum(int(w.value.size) for w in self.weights if not w.trainable)
        return own if self.trainable else self.params


@dataclass
class Summary:
    model_name: str
    path: str
    format: str
    keras_version: str | None
    architecture: str
    input_shape: Shape
    input_dtype: str
    layers: list[LayerInfo]
    dims: dict[str, int | None]  # symbol -> value; T may be None (variable)
    assumptions: list[str]
    inputs: list[dict[str, object]] = field(default_factory=list)  # name, shape, dtype
    outputs: list[dict[str, object]] = field(default_factory=list)  # name, shape
    is_graph: bool = False  # not a chain: Keras shows "Connected to"

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def non_trainable_params(self) -> int:
        return sum(
            inner.non_trainable_params
            for layer in self.layers
            for inner in (layer.layers or [layer])
        )

    @property
    def trainable_params(self) -> int:
        return self.total_params - self.non_trainable_params

    @property
    def bytes(self) -> int:
        return sum(int(w.value.nbytes) for layer in self.layers for w in layer.weights)


def _symbols(model: Model) -> dict[str, str]:
    """Layer name -> the symbol of its width: M (M1, M2, ...) for recurrent layers,
    K (K1, ...) for Dense layers that make a model output, H (H1, ...) for other
    Dense layers, F (F1, ...) for convolution filters."""
    out: dict[str, str] = {}
    heads = {id(model.nodes[r.node].layer) for r in model.outputs}
    groups: dict[str, list[Layer]] = {"M": [], "H": [], "K": [], "F": [], "E": []}
    for layer in model.layers:
        inner = layer.layer if isinstance(layer, TimeDistributed) else layer
        if isinstance(inner, Embedding):
            groups["E"].append(layer)
        elif is_recurrent(inner):
            groups["M"].append(layer)
        elif isinstance(inner, Dense):
            groups["K" if id(layer) in heads else "H"].append(layer)
        elif isinstance(inner, Conv):
            groups["F"].append(layer)
    for letter, layers in groups.items():
        if letter == "E" and len(layers) == 1:
            continue  # one Embedding: (V,D), its width the D of what follows
        for i, layer in enumerate(layers, start=1):
            out[layer.name] = letter if len(layers) == 1 else f"{letter}{i}"
    return out


def _gm(g: int, sym: str) -> str:
    return sym if g == 1 else f"{g}{sym}"


def _recurrent_infos(
    layer: Recurrent, x_sym: str, m_sym: str, prefix: str = ""
) -> list[WeightInfo]:
    g = layer.GATES
    gm = _gm(g, m_sym)
    infos = [
        _info(prefix + "kernel", layer.kernel, f"({x_sym},{gm})"),
        _info(prefix + "recurrent_kernel", layer.recurrent_kernel, f"({m_sym},{gm})"),
    ]
    if layer.bias is not None:
        symbol = f"(2,{gm})" if layer.bias.ndim == 2 else f"({gm},)"
        infos.append(_info(prefix + "bias", layer.bias, symbol))
    return infos


def _plain(name: str, value: Array, trainable: bool = True) -> WeightInfo:
    symbol = "(" + ",".join(str(d) for d in value.shape) + ("," if value.ndim == 1 else "") + ")"
    return _info(name, value, symbol, trainable)


class _Syms:
    """The symbol of each tensor's last axis, following the graph."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.names = _symbols(model)
        self.of: dict[Ref, str] = {}
        self.dims: dict[str, int | None] = {}
        many = len(model.inputs) > 1
        for k, spec in enumerate(model.inputs):
            i = next(j for j, n in enumerate(model.nodes) if n.layer is spec)
            if spec.dtype == "int32":
                continue
            sym = f"D{k + 1}" if many else "D"
            self.of[Ref(i, 0)] = sym
            self.dims[sym] = spec.shape[-1] if spec.shape else None

    def input_sym(self, node: Node) -> str:
        if not node.inputs:
            return "?"
        ref = node.inputs[0]
        shape = self.model.nodes[ref.node].output_shapes[ref.index]
        return self.of.get(ref, str(shape[-1]) if shape else "?")

    def weights(self, layer: Layer, node: Node) -> tuple[list[WeightInfo], str | None]:
        """The layer's weights with symbols, and the symbol of its output width."""
        x_sym = self.input_sym(node)
        inner = layer.layer if isinstance(layer, TimeDistributed) else layer
        sym = self.names.get(layer.name)
        if isinstance(inner, Embedding):
            V, E = inner.embeddings.shape
            if sym:  # one of several Embeddings: V1 and E1, V2 and E2, ...
                v, e = f"V{sym[1:]}", f"E{sym[1:]}"
                self.dims[v], self.dims[e] = int(V), int(E)
                return [_info("embeddings", inner.embeddings, f"({v},{e})")], e
            self.dims["V"] = int(V)
            self.dims.setdefault("D", int(E))
            return [_info("embeddings", inner.embeddings, "(V,D)")], "D"
        if isinstance(inner, Recurrent) and sym:
            self.dims.setdefault(sym, inner.units)
            return _recurrent_infos(inner, x_sym, sym), sym
        if isinstance(inner, Bidirectional) and sym:
            self.dims.setdefault(sym, inner.forward.units)
            infos = _recurrent_infos(inner.forward, x_sym, sym, "forward/")
            infos += _recurrent_infos(inner.backward, x_sym, sym, "backward/")
            return infos, (f"2{sym}" if inner.merge_mode == "concat" else sym)
        if isinstance(inner, StackedRNN) and sym:
            infos = []
            for k, cell in enumerate(inner.cells):
                cell_sym = sym if k == len(inner.cells) - 1 else str(cell.units)
                infos += _recurrent_infos(cell, x_sym, cell_sym, f"cell_{k}/")
                x_sym = cell_sym
            self.dims.setdefault(sym, inner.cells[-1].units)
            return infos, sym
        if isinstance(inner, Dense) and sym:
            self.dims.setdefault(sym, inner.units)
            infos = [_info("kernel", inner.kernel, f"({x_sym},{sym})")]
            if inner.bias is not None:
                infos.append(_info("bias", inner.bias, f"({sym},)"))
            return infos, sym
        if isinstance(inner, Conv) and sym:
            self.dims.setdefault(sym, inner.filters)
            taps = ",".join(str(d) for d in inner.kernel.shape[: inner.rank])
            c = x_sym if inner.groups == 1 else str(inner.kernel.shape[-2])
            infos = [_info("kernel", inner.kernel, f"({taps},{c},{sym})")]
            if inner.bias is not None:
                infos.append(_info("bias", inner.bias, f"({sym},)"))
            return infos, sym
        frozen = inner.non_trainable()
        infos = [_plain(n, a, n not in frozen) for n, a in inner.weights()]
        if isinstance(inner, ConvLSTM):
            return infos, None
        return infos, x_sym if _keeps_width(node, self.model) else None


def _keeps_width(node: Node, model: Model) -> bool:
    """Does the node's first output have its first input's last axis?"""
    if not node.inputs or not node.output_shapes:
        return False
    ref = node.inputs[0]
    src = model.nodes[ref.node].output_shapes[ref.index]
    out = node.output_shapes[0]
    return bool(src) and bool(out) and src[-1] == out[-1]


def summarize(model: Model) -> Summary:
    syms = _Syms(model)
    first_shape = model.inputs[0].shape
    T = first_shape[0] if first_shape else None
    dims: dict[str, int | None] = {"T": T}
    first: dict[int, Node] = {}
    calls: dict[int, list[Node]] = {}
    for node in model.nodes:
        first.setdefault(id(node.layer), node)
        calls.setdefault(id(node.layer), []).append(node)
    # Walk the nodes in order so symbols follow the graph; rows come out in
    # Keras's layer order.
    infos_of: dict[int, tuple[list[WeightInfo], str | None]] = {}
    for i, node in enumerate(model.nodes):
        if isinstance(node.layer, InputLayer):
            continue
        if id(node.layer) not in infos_of:
            infos_of[id(node.layer)] = syms.weights(node.layer, node)
        out_sym = infos_of[id(node.layer)][1]
        if out_sym is not None:
            syms.of[Ref(i, 0)] = out_sym
    dims.update(syms.dims)
    graph = not model.is_chain
    # Keras shows a fixed batch size (a stateful model's) on every layer.
    lead = model.inputs[0].batch if all(i.batch for i in model.inputs) else None
    names = {id(n.layer): (n.layer.parent or n.layer.name) for n in model.nodes}
    layers: list[LayerInfo] = []
    if model.lists_input_layer:
        for spec in model.inputs:
            shape = (spec.batch, *spec.shape)
            layers.append(LayerInfo(spec.name, "InputLayer", shape, 0, True, output_shapes=[shape]))
    for layer in model.layers:
        if isinstance(layer, InputLayer):
            continue  # listed above, with the model's inputs
        node = first[id(layer)]
        infos = infos_of[id(layer)][0]
        shapes = [(lead, *s) for s in node.output_shapes]
        connected = [
            f"{names[id(model.nodes[r.node].layer)]}[{model.nodes[r.node].call}][{r.index}]"
            for n in sorted(calls[id(layer)], key=lambda n: n.call)
            for r in n.inputs + n.states
        ]
        params = sum(int(w.value.size) for w in infos)
        info = LayerInfo(
            layer.name,
            layer.class_name,
            shapes[0],
            params,
            layer.trainable,
            infos,
            output_shapes=shapes,
            connected_to=connected,
        )
        if layer.parent is None:
            layers.append(info)
            continue
        # A nested model is one row, as in Keras's summary, holding its layers.
        row = next((r for r in layers if r.name == layer.parent), None)
        if row is None:
            kind = model.containers.get(layer.parent, "Functional")
            row = LayerInfo(layer.parent, kind, shapes[0], 0, True)
            row.connected_to = [c for c in connected if not c.startswith(layer.parent + "[")]
            layers.append(row)
        row.layers.append(info)
        row.params += info.params
        row.weights += info.weights
        row.output_shape, row.output_shapes = info.output_shape, info.output_shapes
        row.trainable = row.trainable and info.trainable
    if model.recurrent_layers and "M" not in dims:
        dims["M"] = dims.get("M1")  # stacked: M is the first recurrent width (M1)
    out_shapes = [model.nodes[r.node].output_shapes[r.index] for r in model.outputs]
    widths = {shape[-1] if shape else None for shape in out_shapes}
    if len(widths) == 1:
        dims["K"] = widths.pop()  # every output as wide (the symbol K means that width)
    elif "K" not in dims:
        dims["K"] = None
    return Summary(
        model_name=model.name,
        path=str(model.source.path),
        format=model.source.format,
        keras_version=model.source.keras_version,
        architecture=model.source.architecture,
        input_shape=model.inputs[0].shape,
        input_dtype=model.input_dtype,
        layers=layers,
        dims=dims,
        assumptions=list(model.source.assumptions),
        inputs=[{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in model.inputs],
        outputs=[
            {"name": name, "shape": list(shape)}
            for name, shape in zip(_output_names(model), out_shapes, strict=True)
        ],
        is_graph=graph,
    )


def _output_names(model: Model) -> list[str]:
    """Keras's output names: the layer's name (``name_k`` for a layer's k-th output
    when it gives several of the model's outputs)."""
    names = []
    for r in model.outputs:
        layer = model.nodes[r.node].layer
        names.append(layer.parent or layer.name)
    if model.output_names and len(model.output_names) == len(names):
        names = list(model.output_names)
    from .versions import keras_major

    if keras_major(model.source.keras_version) >= 3:
        return names  # Keras 3 names each output after its layer, repeats and all
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if counts[n] > 1:
            out.append(n if n not in seen else f"{n}_{seen[n]}")
            seen[n] = seen.get(n, 0) + 1
        else:
            out.append(n)
    return out


def output_names(model: Model) -> list[str]:
    return _output_names(model)


def _info(name: str, value: Array, symbol: str, trainable: bool = True) -> WeightInfo:
    return WeightInfo(
        name, tuple(int(d) for d in value.shape), symbol, str(value.dtype), value, trainable
    )
