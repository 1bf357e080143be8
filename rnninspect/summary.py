"""Parameter summary: what Keras's ``model.summary()`` shows, plus each weight's shape
in the notebook's symbols ((D,M), (M,M), (M,), ...). Computation only; rendering is in
``render``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import (
    Array,
    Bidirectional,
    Dense,
    Embedding,
    Layer,
    Model,
    Recurrent,
    TimeDistributed,
)

Shape = tuple[int | None, ...]


@dataclass
class WeightInfo:
    name: str
    shape: tuple[int, ...]
    symbol: str  # "(D,M)"
    dtype: str
    value: Array


@dataclass
class LayerInfo:
    name: str
    type: str  # the Keras class name
    output_shape: Shape  # with the batch axis (None, ...)
    params: int
    trainable: bool
    weights: list[WeightInfo] = field(default_factory=list)
    layers: list[LayerInfo] = field(default_factory=list)  # a nested model's own layers


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

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(
            inner.params
            for layer in self.layers
            for inner in (layer.layers or [layer])
            if inner.trainable
        )

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def bytes(self) -> int:
        return sum(int(w.value.nbytes) for layer in self.layers for w in layer.weights)


def _width_symbols(model: Model) -> dict[str, str]:
    """Layer name -> the symbol of its width (units)."""
    rec = [layer for layer in model.layers if isinstance(layer, (Recurrent, Bidirectional))]
    dense = [
        layer
        for layer in model.layers
        if isinstance(layer, Dense)
        or (isinstance(layer, TimeDistributed) and isinstance(layer.layer, Dense))
    ]
    out: dict[str, str] = {}
    for i, layer in enumerate(rec, start=1):
        out[layer.name] = "M" if len(rec) == 1 else f"M{i}"
    weighted = [layer for layer in model.layers if layer.weights()]
    head = weighted[-1] if weighted and weighted[-1] in dense else None
    hidden = [layer for layer in dense if layer is not head]
    for i, hid in enumerate(hidden, start=1):
        out[hid.name] = "H" if len(hidden) == 1 else f"H{i}"
    if head is not None:
        out[head.name] = "K"
    return out


def _recurrent_infos(
    layer: Recurrent, x_sym: str, m_sym: str, prefix: str = ""
) -> list[WeightInfo]:
    g = layer.GATES
    gm = m_sym if g == 1 else f"{g}{m_sym}"
    infos = [
        _info(prefix + "kernel", layer.kernel, f"({x_sym},{gm})"),
        _info(prefix + "recurrent_kernel", layer.recurrent_kernel, f"({m_sym},{gm})"),
    ]
    if layer.bias is not None:
        symbol = f"(2,{gm})" if layer.bias.ndim == 2 else f"({gm},)"
        infos.append(_info(prefix + "bias", layer.bias, symbol))
    return infos


def summarize(model: Model) -> Summary:
    names = _width_symbols(model)
    T = model.input_shape[0]
    dims: dict[str, int | None] = {"T": T}
    seq = True  # does the running tensor still have a time axis?
    width_sym = "D"
    width: int | None = None
    if not model.takes_ids:
        width = model.input_shape[-1]
        dims["D"] = width
    layers: list[LayerInfo] = []
    if model.input_layer is not None:
        layers.append(
            LayerInfo(model.input_layer.name, "InputLayer", (None, *model.input_shape), 0, True)
        )
    for layer in model.layers:
        infos: list[WeightInfo] = []
        inner: Layer = layer.layer if isinstance(layer, TimeDistributed) else layer
        sym = names.get(layer.name, width_sym)
        out_sym = sym
        if isinstance(inner, Embedding):
            V, E = inner.embeddings.shape
            dims["V"], dims["D"] = int(V), int(E)
            infos.append(_info("embeddings", inner.embeddings, "(V,D)"))
            out_sym, width = "D", int(E)
        elif isinstance(inner, Recurrent):
            infos += _recurrent_infos(inner, width_sym, sym)
            dims.setdefault(sym, inner.units)
            width = inner.units
            seq = inner.return_sequences and not inner.emit
        elif isinstance(inner, Bidirectional):
            infos += _recurrent_infos(inner.forward, width_sym, sym, "forward/")
            infos += _recurrent_infos(inner.backward, width_sym, sym, "backward/")
            dims.setdefault(sym, inner.forward.units)
            width = inner.forward.units
            if inner.merge_mode == "concat":
                width, out_sym = 2 * width, f"2{sym}"
            seq = inner.return_sequences
        elif isinstance(inner, Dense):
            infos.append(_info("kernel", inner.kernel, f"({width_sym},{sym})"))
            if inner.bias is not None:
                infos.append(_info("bias", inner.bias, f"({sym},)"))
            width = inner.units
            dims.setdefault(sym, width)
        width_sym = out_sym
        shape: Shape = (None, T, width) if seq else (None, width)
        params = sum(int(w.value.size) for w in infos)
        info = LayerInfo(layer.name, layer.class_name, shape, params, layer.trainable, infos)
        if layer.parent is None:
            layers.append(info)
            continue
        # A nested model is one row, as in Keras's summary, holding its layers.
        if not layers or layers[-1].name != layer.parent:
            kind = model.containers.get(layer.parent, "Functional")
            layers.append(LayerInfo(layer.parent, kind, shape, 0, True))
        row = layers[-1]
        row.layers.append(info)
        row.params += info.params
        row.weights += info.weights
        row.output_shape = info.output_shape
        row.trainable = row.trainable and info.trainable
    rec = [layer for layer in model.layers if isinstance(layer, (Recurrent, Bidirectional))]
    if rec and "M" not in dims:
        dims["M"] = dims.get("M1")  # stacked: M is the first recurrent width (M1)
    dims["K"] = width
    return Summary(
        model_name=model.name,
        path=str(model.source.path),
        format=model.source.format,
        keras_version=model.source.keras_version,
        architecture=model.source.architecture,
        input_shape=model.input_shape,
        input_dtype=model.input_dtype,
        layers=layers,
        dims=dims,
        assumptions=list(model.source.assumptions),
    )


def _info(name: str, value: Array, symbol: str) -> WeightInfo:
    return WeightInfo(name, tuple(int(d) for d in value.shape), symbol, str(value.dtype), value)
