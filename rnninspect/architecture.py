"""Keras model configs (JSON) -> an ``Architecture``: layer specs plus the graph.

A Functional config is read as the DAG it is: layers are nodes, tensors are edges
(several inputs and outputs, a layer called several times with shared weights,
nested models, ``initial_state`` edges, ``return_state`` tensors by index). A
Sequential config is the special case of a chain. Nested models are inlined: their
leaf layers become nodes of the one flat graph, keyed by their path
(``("encoder", "lstm")``), while ``Architecture.layers`` keeps the nesting that the
weight files are organised by.

Nothing in a config is ever executed: classes are looked up in a fixed table, and
anything else is refused.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ModelError, UnsupportedLayerError
from .model import Ref

# Layers that are the identity at inference time.
PASSTHROUGH = frozenset(
    {
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ActivityRegularization",
    }
)
RECURRENT = frozenset({"SimpleRNN", "LSTM", "GRU"})
CELLS = {"SimpleRNNCell": "SimpleRNN", "LSTMCell": "LSTM", "GRUCell": "GRU"}
CUDNN = {"CuDNNLSTM": "LSTM", "CuDNNGRU": "GRU"}
WRAPPERS = frozenset({"TimeDistributed", "Bidirectional"})
CONTAINERS = frozenset({"Sequential", "Functional", "Model"})
MERGES = frozenset(
    {"Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dot"}
)
PLUMBING = frozenset(
    {
        "RepeatVector",
        "Flatten",
        "Reshape",
        "Permute",
        "Cropping1D",
        "ZeroPadding1D",
        "UpSampling1D",
    }
)
CONVOLUTIONS = frozenset({"Conv1D", "Conv2D"})
POOLING = frozenset(
    {
        "MaxPooling1D",
        "AveragePooling1D",
        "MaxPooling2D",
        "AveragePooling2D",
        "GlobalAveragePooling1D",
        "GlobalMaxPooling1D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling2D",
    }
)
NORMALISATION = frozenset({"BatchNormalization", "LayerNormalization"})
ACTIVATION_LAYERS = frozenset({"ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"})
ATTENTION = frozenset({"Attention", "AdditiveAttention", "MultiHeadAttention"})
CONV_RECURRENT = frozenset({"ConvLSTM1D", "ConvLSTM2D"})
SUPPORTED = frozenset(
    {"InputLayer", "Dense", "Embedding", "Masking", "Activation", "StackedRNN"}
    | PASSTHROUGH
    | RECURRENT
    | WRAPPERS
    | CONTAINERS
    | MERGES
    | PLUMBING
    | CONVOLUTIONS
    | POOLING
    | NORMALISATION
    | ACTIVATION_LAYERS
    | ATTENTION
    | CONV_RECURRENT
)
# Layers that hold code; refused with a message of their own.
CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})

# Keras 1 -> Keras 2 config key renames, per class family (None: every class).
_RENAMES: dict[str, str] = {
    "output_dim": "units",
    "inner_activation": "recurrent_activation",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
    "bias": "use_bias",
    # Keras 1 convolutions and pooling
    "nb_filter": "filters",
    "filter_length": "kernel_size",
    "subsample_length": "strides",
    "border_mode": "padding",
    "atrous_rate": "dilation_rate",
    "pool_length": "pool_size",
    "stride": "strides",
}
# Keras 1 class names -> their Keras 2 names.
_CLASS_RENAMES = {
    "Convolution1D": "Conv1D",
    "Convolution2D": "Conv2D",
    "AtrousConvolution1D": "Conv1D",
}
# Keras 1's one Merge layer, by mode.
_MERGE_MODES = {
    "concat": "Concatenate",
    "sum": "Add",
    "mul": "Multiply",
    "ave": "Average",
    "max": "Maximum",
    "dot": "Dot",
}


def supported_list() -> str:
    names = [
        *sorted(SUPPORTED - CONTAINERS - {"InputLayer", "StackedRNN"}),
        "RNN(SimpleRNNCell/LSTMCell/GRUCell/StackedRNNCells)",
        "CuDNNLSTM",
        "CuDNNGRU",
        "Sequential and Functional models",
    ]
    return ", ".join(names)


@dataclass
class LayerSpec:
    """One layer as a config describes it (or as inference from weights guessed it).

    ``class_name`` is what rnninspect computes (``RNN(LSTMCell)`` is an ``LSTM``);
    ``keras_class`` the class the file names, for summaries and weight lookups."""

    class_name: str
    name: str
    config: dict[str, Any]
    inner: LayerSpec | None = None  # TimeDistributed's / Bidirectional's wrapped layer
    backward: LayerSpec | None = None  # Bidirectional's backward layer
    children: list[LayerSpec] = field(default_factory=list)  # nested model's layers
    cells: list[LayerSpec] = field(default_factory=list)  # StackedRNNCells' cells
    sub: Architecture | None = None  # a nested model's own graph
    keras_class: str = ""

    def __post_init__(self) -> None:
        if not self.keras_class:
            self.keras_class = self.class_name

    @property
    def is_container(self) -> bool:
        return self.class_name in CONTAINERS

    def n_weights(self) -> int:
        """How many arrays ``get_weights()`` returns for this layer."""
        c = self.config
        bias = int(bool(c.get("use_bias", True)))
        cls = self.class_name
        if self.is_container:
            return sum(child.n_weights() for child in self.children)
        if cls == "Bidirectional" and self.inner is not None:
            back = self.backward or self.inner
            return self.inner.n_weights() + back.n_weights()
        if self.inner is not None:
            return self.inner.n_weights()
        if cls == "StackedRNN":
            return sum(cell.n_weights() for cell in self.cells)
        if self.keras_class in CUDNN:
            return 3
        if cls in ("Dense", "Conv1D", "Conv2D"):
            return 1 + bias
        if cls in RECURRENT or cls in CONV_RECURRENT:
            return 2 + bias
        if cls in ("Embedding", "PReLU"):
            return 1
        if cls == "BatchNormalization":
            return 2 + int(bool(c.get("scale", True))) + int(bool(c.get("center", True)))
        if cls == "LayerNormalization":
            return int(bool(c.get("scale", True))) + int(bool(c.get("center", True)))
        if cls == "Attention":
            return int(bool(c.get("use_scale", False))) + int(c.get("score_mode") == "concat")
        if cls == "AdditiveAttention":
            return int(bool(c.get("use_scale", True)))
        if cls == "MultiHeadAttention":
            return 4 * (1 + bias)
        return 0


@dataclass
class InputSpec:
    name: str
    shape: tuple[int | None, ...] | None  # per sample; None when unknown
    dtype: str = "float32"
    batch: int | None = None  # a fixed batch size (stateful models declare one)


@dataclass
class NodeSpec:
    """One call of a layer (``key``: its path), or a model input (``key`` None)."""

    key: tuple[str, ...] | None
    args: list[Ref] = field(default_factory=list)  # positional tensors
    states: list[Ref] = field(default_factory=list)  # a recurrent call's initial_state
    options: dict[str, Any] = field(default_factory=dict)  # non-tensor call arguments
    call: int = 0  # which call of the layer this is (shared layers: 0, 1, ...)
    input: int | None = None  # for an input node: its position among the inputs


@dataclass
class Architecture:
    name: str
    layers: list[LayerSpec]  # top level, in Keras's order, InputLayers excluded
    input_shape: tuple[int | None, ...] | None  # the first input's, per sample
    input_dtype: str = "float32"
    input_layer_name: str | None = None
    input_batch: int | None = None
    lists_input_layer: bool = False  # Keras's model.layers shows the InputLayer(s)
    keras_version: str | None = None
    # The graph. ``nodes`` is in topological order, inputs first; empty for a chain
    # that has not been laid out yet (``graph()`` does it).
    inputs: list[InputSpec] = field(default_factory=list)
    nodes: list[NodeSpec] = field(default_factory=list)
    outputs: list[Ref] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)

    def flat(self) -> list[LayerSpec]:
        """The leaf layers with nested models inlined, in Keras's order."""
        return _flatten(self.layers)

    def graph(self) -> Architecture:
        """This architecture with its graph laid out (a chain, unless a Functional
        config gave one)."""
        if not self.nodes:
            _lay_out_chain(self)
        return self


def _flatten(specs: list[LayerSpec]) -> list[LayerSpec]:
    out: list[LayerSpec] = []
    for spec in specs:
        if spec.is_container:
            out.extend(_flatten(spec.children))
        else:
            out.append(spec)
    return out


class _Graph:
    """Builds the flat node list, inlining nested models as they are called."""

    def __init__(self) -> None:
        self.nodes: list[NodeSpec] = []
        self.calls: dict[tuple[str, ...], int] = {}

    def add_input(self, position: int) -> Ref:
        self.nodes.append(NodeSpec(None, input=position))
        return Ref(len(self.nodes) - 1)

    def add(
        self,
        key: tuple[str, ...],
        args: list[Ref],
        states: list[Ref] | None = None,
        options: dict[str, Any] | None = None,
        call: int | None = None,
    ) -> int:
        """A node for a call of layer ``key``: ``call`` is its index among the
        layer's calls, as the config numbers them (default: the next one)."""
        if call is None:
            call = self.calls.get(key, 0)
        self.calls[key] = max(self.calls.get(key, 0), call + 1)
        self.nodes.append(NodeSpec(key, list(args), list(states or []), dict(options or {}), call))
        return len(self.nodes) - 1

    def inline(
        self,
        sub: Architecture,
        prefix: tuple[str, ...],
        args: list[Ref],
        where: str,
        call: int = 0,
    ) -> list[Ref]:
        """Append ``sub``'s graph called on ``args`` (the nested model's call number
        ``call``); returns its outputs here."""
        sub.graph()
        per_call: dict[tuple[str, ...], int] = {}
        for node in sub.nodes:
            if node.key is not None:
                per_call[node.key] = per_call.get(node.key, 0) + 1
        if len(args) != len(sub.inputs):
            raise ModelError(
                f"{where}: nested model {prefix[-1]!r} takes {len(sub.inputs)} input(s) "
                f"but is called on {len(args)}"
            )
        mapped: dict[int, int] = {}
        remap: dict[Ref, Ref] = {}
        for i, node in enumerate(sub.nodes):
            if node.key is None:
                assert node.input is not None
                target = args[node.input]
                remap[Ref(i, 0)] = target
                continue

            def here(r: Ref) -> Ref:
                return remap.get(r) or Ref(mapped[r.node], r.index)

            j = self.add(
                (*prefix, *node.key),
                [here(r) for r in node.args],
                [here(r) for r in node.states],
                node.options,
                call * per_call[node.key] + node.call,
            )
            mapped[i] = j
        return [remap.get(r) or Ref(mapped[r.node], r.index) for r in sub.outputs]


def _lay_out_chain(arch: Architecture) -> None:
    """A Sequential model (or an inferred chain): each layer takes the previous
    layer's output; a nested model is inlined where it stands."""
    g = _Graph()
    arch.inputs = [
        InputSpec(
            arch.input_layer_name or "input_layer",
            arch.input_shape,
            arch.input_dtype,
            arch.input_batch,
        )
    ]
    current = g.add_input(0)
    for spec in arch.layers:
        if spec.is_container:
            assert spec.sub is not None
            (current, *_) = g.inline(spec.sub, (spec.name,), [current], arch.name)
        else:
            current = Ref(g.add((spec.name,), [current]))
    arch.nodes = g.nodes
    arch.outputs = [current]
    last = arch.layers[-1].name if arch.layers else arch.inputs[0].name
    arch.output_names = [last]


def loads_config(text: str | bytes, where: str) -> dict[str, Any]:
    """Parse model-config JSON text, with a clear error naming ``where``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelError(f"{where}: model config is not UTF-8 text") from exc
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{where}: model config is not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ModelError(f"{where}: model config is not a JSON object")
    return obj


def parse_model_config(obj: dict[str, Any], where: str) -> Architecture:
    """A Keras model config (``model.to_json()``/``config.json``) -> Architecture."""
    # `to_json()` of tf.keras wraps with keras_version/backend; config.json does not.
    class_name = obj.get("class_name")
    if class_name not in CONTAINERS:
        raise ModelError(
            f"{where}: model config describes a {class_name!r}, "
            "expected a Sequential or Functional model"
        )
    arch = _parse_container(obj, where, 0)
    version = obj.get("keras_version")
    arch.keras_version = version if isinstance(version, str) else _generation_of(obj)
    return arch.graph()


def _generation_of(obj: dict[str, Any]) -> str | None:
    """The Keras generation a config was written by, from its style: Keras 3 gives
    every object a ``module`` and ``registered_name`` and InputLayers a
    ``batch_shape``; Keras 2 / tf.keras use ``batch_input_shape``."""
    text = json.dumps(obj)
    # tf.keras 2.13+ also writes registered_name, so the Keras 2 markers come first.
    if '"batch_input_shape"' in text or '"time_major"' in text:
        return "2"
    if '"batch_shape"' in text or '"DTypePolicy"' in text or '"registered_name"' in text:
        return "3"
    return None


def _parse_container(obj: dict[str, Any], where: str, depth: int) -> Architecture:
    class_name = obj.get("class_name")
    config = obj.get("config")
    if class_name == "Sequential":
        return _parse_sequential(config, where, depth)
    return _parse_functional(config, where, depth)


def _layer_list(config: Any, where: str) -> list[dict[str, Any]]:
    layers = config if isinstance(config, list) else (config or {}).get("layers")
    if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
        raise ModelError(f"{where}: model config has no list of layers")
    return layers


def _model_name(config: Any, default: str) -> str:
    if isinstance(config, dict) and isinstance(config.get("name"), str):
        return str(config["name"])
    return default


def _parse_sequential(config: Any, where: str, depth: int) -> Architecture:
    entries = _layer_list(config, where)
    arch = Architecture(name=_model_name(config, "sequential"), layers=[], input_shape=None)
    for i, entry in enumerate(entries):
        cls, cfg = _class_and_config(entry, where)
        if cls == "InputLayer":
            arch.input_shape, arch.input_dtype = _input_from(cfg, where)
            arch.input_layer_name = str(cfg.get("name", "input_layer"))
            arch.input_batch = _batch_of(cfg)
            continue
        if i == 0 or arch.input_shape is None:
            arch.input_batch = arch.input_batch or _batch_of(cfg)
            # Keras 1/2 Sequential put the input shape on the first layer.
            found = _shape_on_first_layer(cls, cfg, where)
            if found is not None and arch.input_shape is None:
                arch.input_shape = found
                if cls == "Embedding":
                    arch.input_dtype = "int32"
        arch.layers.append(_spec(entry, where, depth))
    if arch.input_shape is None and isinstance(config, dict):
        build = config.get("build_input_shape")
        if isinstance(build, list) and len(build) >= 2:
            arch.input_shape = tuple(_dim(d, where) for d in build[1:])
    if arch.input_shape is None and arch.layers and arch.layers[0].is_container:
        inner = arch.layers[0].sub
        if inner is not None:
            arch.input_shape, arch.input_dtype = inner.input_shape, inner.input_dtype
    _check_input_dtype(arch)
    return arch


# Call arguments that carry tensors the computation needs. A ``mask`` argument is
# left out: masks are propagated implicitly, which gives the same numbers.
_TENSOR_KWARGS = ("initial_state", "query", "value", "key")
_REFUSED_KWARGS = ("attention_mask", "constants")


@dataclass
class _Call:
    """One inbound node of a config entry, as (layer, node, tensor) histories."""

    args: list[tuple[str, int, int]]
    kwargs: dict[str, list[tuple[str, int, int]]]
    options: dict[str, Any]


def _parse_functional(config: Any, where: str, depth: int) -> Architecture:
    if not isinstance(config, dict):
        raise ModelError(f"{where}: functional model config is not an object")
    config = _fold_time_major(config)
    entries = _layer_list(config, where)
    by_name: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for entry in entries:
        name = entry.get("name") or (entry.get("config") or {}).get("name")
        if not isinstance(name, str):
            raise ModelError(f"{where}: a layer in the model config has no name")
        by_name[name] = entry
        order.append(name)
    shift = {n: _skips_first_node(e) for n, e in by_name.items()}

    def norm(h: tuple[str, int, int]) -> tuple[str, int, int]:
        # tf.keras and Keras 2 number a nested model's calls from 1: its node 0 is
        # the one that built it, which the config leaves out.
        return (h[0], h[1] - 1, h[2]) if shift.get(h[0]) and h[1] > 0 else h

    def norm_out(h: tuple[str, int, int]) -> tuple[str, int, int]:
        # Keras 3 also numbers a nested Functional model's calls from 1 in
        # output_layers (its loader's get_tensor takes one off: "Functional models
        # start out with a built-in node").
        entry = by_name.get(h[0], {})
        nodes = entry.get("inbound_nodes")
        keras3 = isinstance(nodes, list) and bool(nodes) and isinstance(nodes[0], dict)
        nested = entry.get("class_name") in ("Functional", "Model")
        if keras3 and nested and h[1] > 0:
            return (h[0], h[1] - 1, h[2])
        return norm(h)

    outputs = [norm_out(h) for h in _endpoints(config.get("output_layers"), where)]
    inputs = _endpoints(config.get("input_layers"), where)
    arch = Architecture(name=_model_name(config, "functional"), layers=[], input_shape=None)
    arch.lists_input_layer = True
    g = _Graph()
    # Resolved calls: (layer, node index) -> the node it became, or (inputs, nested
    # models) the tensors standing for its outputs.
    done: dict[tuple[str, int], int | list[Ref]] = {}
    for position, (name, _, _) in enumerate(inputs):
        found_entry = by_name.get(name)
        if found_entry is None:
            raise ModelError(f"{where}: model input {name!r} is not among its layers")
        cls, cfg = _class_and_config(found_entry, where)
        if cls != "InputLayer":
            raise ModelError(f"{where}: model input {name!r} is a {cls}, not an InputLayer")
        shape, dtype = _input_from(cfg, where)
        arch.inputs.append(InputSpec(name, shape, dtype, _batch_of(cfg)))
        done[(name, 0)] = [g.add_input(position)]
    specs: dict[str, LayerSpec] = {}

    def tensor(history: tuple[str, int, int]) -> Ref:
        found = done[history[:2]]
        if isinstance(found, int):
            return Ref(found, history[2])
        if history[2] >= len(found):
            raise ModelError(
                f"{where}: model config takes output #{history[2]} of {history[0]!r}, "
                f"which has {len(found)}"
            )
        return found[history[2]]

    def spec_of(name: str) -> LayerSpec:
        if name not in specs:
            specs[name] = _spec(by_name[name], where, depth)
        return specs[name]

    def emit(name: str, index: int, call: _Call) -> None:
        entry = by_name[name]
        cls, _ = _class_and_config(entry, where)
        if cls == "InputLayer":
            raise ModelError(f"{where}: InputLayer {name!r} is not among the model's inputs")
        spec = spec_of(name)
        args = [tensor(h) for h in call.args]
        if spec.is_container:
            assert spec.sub is not None
            done[(name, index)] = g.inline(spec.sub, (name,), args, where, index)
            return
        states = [tensor(h) for h in call.kwargs.get("initial_state", [])]
        if spec.class_name == "MultiHeadAttention":
            named = {k: [tensor(h) for h in v] for k, v in call.kwargs.items()}
            args = _attention_args(args, named, name, where)
        elif _takes_states(spec) and len(args) > 1:
            # tf.keras lists initial states as inputs after the sequence.
            args, states = args[:1], args[1:] + states
        done[(name, index)] = g.add((name,), args, states, call.options, index)

    pending: list[tuple[str, int]] = [(n, i) for n, i, _ in outputs]
    on_path: set[tuple[str, int]] = set()
    calls: dict[tuple[str, int], _Call] = {}
    while pending:
        item = pending[-1]
        if item in done:
            pending.pop()
            continue
        name, index = item
        if name not in by_name:
            raise ModelError(f"{where}: model config refers to unknown layer {name!r}")
        if item not in calls:
            call = _inbound_call(by_name[name], index, where)
            call.args = [norm(h) for h in call.args]
            call.kwargs = {k: [norm(h) for h in v] for k, v in call.kwargs.items()}
            calls[item] = call
        deps = [h[:2] for h in _histories(calls[item])]
        missing = [d for d in dict.fromkeys(deps) if d not in done]
        if missing:
            if item in on_path:
                raise ModelError(f"{where}: model graph has a cycle at layer {name!r}")
            on_path.add(item)
            pending.extend(missing)
            continue
        emit(name, index, calls[item])
        pending.pop()
    arch.outputs = [tensor(h) for h in outputs]
    arch.output_names = [n for n, _, _ in outputs]
    arch.nodes = g.nodes
    # Keras lists the layers in the config's order; only those computed count.
    arch.layers = [specs[n] for n in order if n in specs]
    first = arch.inputs[0]
    arch.input_shape, arch.input_dtype, arch.input_layer_name = (
        first.shape,
        first.dtype,
        first.name,
    )
    _check_input_dtype(arch)
    return arch


_TIME_MAJOR_CLASSES = ("SimpleRNN", "LSTM", "GRU")


def _fold_time_major(config: dict[str, Any]) -> dict[str, Any]:
    """A Keras 3 recurrent layer between two ``Transpose(axes=[1, 0, 2])`` ops is the
    ``time_major=True`` layer it computes (how ``export`` writes one for Keras 3,
    which has none): the ops folded into the layer, so it reads back as it was.
    Folded only where every use of the layer's sequence goes through such a
    transpose (or it returns none)."""
    layers = config.get("layers")
    if not isinstance(layers, list):
        return config

    def history(t: Any) -> list[Any] | None:
        if isinstance(t, dict) and t.get("class_name") == "__keras_tensor__":
            h = (t.get("config") or {}).get("keras_history")
            return h if isinstance(h, list) and len(h) == 3 else None
        return None

    def one_call(e: dict[str, Any]) -> dict[str, Any] | None:
        nodes = e.get("inbound_nodes")
        if isinstance(nodes, list) and len(nodes) == 1 and isinstance(nodes[0], dict):
            args = nodes[0].get("args")
            if isinstance(args, list) and len(args) == 1 and history(args[0]) is not None:
                return nodes[0]
        return None

    transposes = {
        e.get("name"): e
        for e in layers
        if isinstance(e, dict)
        and e.get("class_name") == "Transpose"
        and str(e.get("module", "")).startswith("keras.src.ops")
        and (e.get("config") or {}).get("axes") == [1, 0, 2]
        and one_call(e) is not None
    }
    if not transposes:
        return config
    uses: dict[str, list[str]] = {}  # layer -> the entries taking its output 0

    def walk(obj: Any, owner: str) -> None:
        h = history(obj)
        if h is not None and h[1:] == [0, 0]:
            uses.setdefault(h[0], []).append(owner)
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v, owner)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, owner)

    for e in layers:
        if isinstance(e, dict):
            walk(e.get("inbound_nodes"), str(e.get("name")))
    out = config.get("output_layers")
    outputs = [out] if isinstance(out, list) and out and isinstance(out[0], str) else out
    for o in outputs if isinstance(outputs, list) else []:
        if isinstance(o, list) and len(o) == 3 and o[1:] == [0, 0]:
            uses.setdefault(o[0], []).append("")  # a model output
    alias: dict[str, list[Any]] = {}  # a transpose after -> the layer's output
    folded: dict[str, dict[str, Any]] = {}
    for e in layers:
        call = one_call(e) if isinstance(e, dict) else None
        if call is None or e.get("class_name") not in _TIME_MAJOR_CLASSES:
            continue
        src = history(call["args"][0])
        assert src is not None
        if src[0] not in transposes or src[1:] != [0, 0]:
            continue
        cfg = e.get("config") or {}
        after = uses.get(e["name"], [])
        if cfg.get("return_sequences") and not all(a in transposes for a in after):
            continue
        before = one_call(transposes[src[0]])
        assert before is not None
        new = copy.deepcopy(e)
        new["config"]["time_major"] = True
        new["inbound_nodes"][0]["args"] = [copy.deepcopy(before["args"][0])]
        folded[e["name"]] = new
        if cfg.get("return_sequences"):
            for a in after:
                alias[a] = [e["name"], 0, 0]

    def rewire(obj: Any) -> Any:
        h = history(obj)
        if h is not None and h[0] in alias and h[1:] == [0, 0]:
            obj = copy.deepcopy(obj)
            obj["config"]["keras_history"] = list(alias[h[0]])
            return obj
        if isinstance(obj, dict):
            return {k: rewire(v) for k, v in obj.items()}
        if isinstance(obj, list):
            if len(obj) == 3 and isinstance(obj[0], str) and obj[0] in alias and obj[1:] == [0, 0]:
                return list(alias[obj[0]])  # an output_layers endpoint
            return [rewire(v) for v in obj]
        return obj

    # The transposes are left in the list: nothing reads them any more, and only
    # the layers a model output needs are built.
    kept = [folded.get(str(e.get("name")), e) if isinstance(e, dict) else e for e in layers]
    return {**config, "layers": rewire(kept), "output_layers": rewire(config.get("output_layers"))}


def _skips_first_node(entry: dict[str, Any]) -> bool:
    """Does a (Keras 2 style) config count this nested model's calls from 1?
    tf.keras's ``_should_skip_first_node``: models built on an InputLayer."""
    if entry.get("class_name") not in CONTAINERS:
        return False
    nodes = entry.get("inbound_nodes")
    if not isinstance(nodes, list) or not nodes or not isinstance(nodes[0], list):
        return False  # Keras 3 numbers calls from 0
    if entry.get("class_name") != "Sequential":
        return True
    cfg = entry.get("config")
    layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers")
    if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict):
        return False
    head = layers[0]
    return head.get("class_name") == "InputLayer" or "batch_input_shape" in (
        head.get("config") or {}
    )


def _takes_states(spec: LayerSpec) -> bool:
    return spec.class_name in RECURRENT | {"Bidirectional", "StackedRNN"} | CONV_RECURRENT


def _attention_args(
    args: list[Ref], named: dict[str, list[Ref]], name: str, where: str
) -> list[Ref]:
    """MultiHeadAttention's tensors as [query, value] or [query, value, key]."""
    slots = ["query", "value", "key"]
    out: dict[str, Ref] = dict(zip(slots, args, strict=False))
    for slot in slots:
        if named.get(slot):
            out[slot] = named[slot][0]
    if "query" not in out or "value" not in out:
        raise ModelError(f"{where}: MultiHeadAttention {name!r} is called without query/value")
    return [out[s] for s in slots if s in out]


def _histories(call: _Call) -> list[tuple[str, int, int]]:
    return call.args + [h for v in call.kwargs.values() for h in v]


def _endpoints(value: Any, where: str) -> list[tuple[str, int, int]]:
    # [["dense", 0, 0]] (one endpoint each) or, in Keras 3, ["dense", 0, 0] for one;
    # nested lists and dicts (by sorted key) flatten as Keras flattens them.
    if isinstance(value, dict):
        value = [value[k] for k in sorted(value)]
    if not isinstance(value, list) or not value:
        raise ModelError(f"{where}: functional model config lacks input/output layers")
    if isinstance(value[0], str):
        value = [value]
    found = []
    for item in value:
        history = _history(item)
        if history is None and isinstance(item, (list, dict)):
            found += _endpoints(item, where)
            continue
        if history is None:
            raise ModelError(f"{where}: malformed input/output layer list in model config")
        found.append(history)
    return found


def _history(item: Any) -> tuple[str, int, int] | None:
    """``[layer, node, tensor]`` (or a shorter list) as a triple, else None."""
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        return None
    node = item[1] if len(item) > 1 else 0
    index = item[2] if len(item) > 2 else 0
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (node, index))
    return (item[0], int(node), int(index)) if ok else None


def _inbound_call(entry: dict[str, Any], index: int, where: str) -> _Call:
    name = entry.get("name")
    cls = entry.get("class_name")
    if cls == "InputLayer":
        return _Call([], {}, {})
    nodes = entry.get("inbound_nodes")
    if not isinstance(nodes, list) or index >= len(nodes):
        raise ModelError(
            f"{where}: model config takes call #{index} of layer {name!r}, "
            f"which has {len(nodes) if isinstance(nodes, list) else 0}"
        )
    node = nodes[index]
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args = [h for arg in node.get("args") or [] for h in _tensors_in(arg)]
        kwargs: dict[str, list[tuple[str, int, int]]] = {}
        options: dict[str, Any] = {}
        raw = node.get("kwargs") or {}
        if not isinstance(raw, dict):
            raise ModelError(f"{where}: malformed inbound_nodes for layer {name!r}")
        for key, value in raw.items():
            found = _tensors_in(value)
            _sort_kwarg(key, found, value, kwargs, options, name, where)
        return _Call(args, kwargs, options)
    if isinstance(node, list):  # tf.keras / Keras 1: [["layer", node, tensor, {kwargs}], ...]
        args = []
        kwargs = {}
        options = {}
        for item in node:
            history = _history(item)
            if history is None:
                continue
            args.append(history)
            if len(item) > 3 and isinstance(item[3], dict):
                for key, value in item[3].items():
                    found = [h for h in (_history(value),) if h is not None]
                    if not found and isinstance(value, list):
                        found = [h for v in value if (h := _history(v)) is not None]
                    _sort_kwarg(key, found, value, kwargs, options, name, where)
        return _Call(args, kwargs, options)
    raise ModelError(f"{where}: malformed inbound_nodes for layer {name!r}")


def _sort_kwarg(
    key: str,
    found: list[tuple[str, int, int]],
    value: Any,
    kwargs: dict[str, list[tuple[str, int, int]]],
    options: dict[str, Any],
    name: Any,
    where: str,
) -> None:
    if key in _REFUSED_KWARGS and found:
        raise UnsupportedLayerError(
            f"{where}: layer {name!r} is called with an explicit {key} tensor, "
            "which rnninspect does not compute"
        )
    if key == "mask" and found:
        # Masks are propagated implicitly; that one was passed explicitly matters
        # to Keras 3, which otherwise runs a call with initial states unmasked.
        options["mask_given"] = True
    if key in _TENSOR_KWARGS and found:
        kwargs[key] = found
    elif not found and key != "mask" and isinstance(value, (bool, int, float, str)):
        options[key] = value


def _tensors_in(arg: Any) -> list[tuple[str, int, int]]:
    """Keras 3 call arguments: a ``__keras_tensor__`` or (nested) lists of them."""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        history = _history((arg.get("config") or {}).get("keras_history"))
        return [history] if history is not None else []
    if isinstance(arg, list):
        return [h for item in arg for h in _tensors_in(item)]
    return []


def _check_input_dtype(arch: Architecture) -> None:
    # Inputs feeding an Embedding take integer ids (build checks it per input too).
    flat = arch.flat()
    if flat and flat[0].class_name == "Embedding" and len(arch.inputs) <= 1:
        arch.input_dtype = "int32"
        if arch.input_shape is not None and len(arch.input_shape) == 2:
            # Keras 1 Embedding configs give (T, 1)-style shapes in rare cases.
            arch.input_shape = arch.input_shape[:1]
        for spec in arch.inputs:
            spec.dtype, spec.shape = arch.input_dtype, arch.input_shape


def _class_and_config(entry: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    cls = entry.get("class_name")
    cfg = entry.get("config")
    if not isinstance(cls, str):
        raise ModelError(f"{where}: a layer in the model config has no class_name")
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        if cls in CONTAINERS and isinstance(cfg, list):
            return cls, {"layers": cfg}
        raise ModelError(f"{where}: layer config for {cls} is not an object")
    return cls, cfg


def _dim(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelError(f"{where}: bad dimension {value!r} in model config")
    return int(value)


def _input_from(cfg: dict[str, Any], where: str) -> tuple[tuple[int | None, ...], str]:
    shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    if not isinstance(shape, list) or len(shape) < 2:
        raise ModelError(f"{where}: InputLayer has no usable batch shape ({shape!r})")
    dtype = cfg.get("dtype", "float32")
    if isinstance(dtype, dict):  # DTypePolicy
        dtype = (dtype.get("config") or {}).get("name", "float32")
    dtype = "int32" if isinstance(dtype, str) and "int" in dtype else "float32"
    return tuple(_dim(d, where) for d in shape[1:]), dtype


def _batch_of(cfg: dict[str, Any]) -> int | None:
    """The fixed batch size a config declares (``batch_shape[0]``), if any."""
    shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    first = shape[0] if isinstance(shape, list) and shape else None
    if isinstance(first, int) and not isinstance(first, bool) and first > 0:
        return int(first)
    return None


def _shape_on_first_layer(
    cls: str, cfg: dict[str, Any], where: str
) -> tuple[int | None, ...] | None:
    shape = cfg.get("batch_input_shape", cfg.get("batch_shape"))
    if isinstance(shape, list) and len(shape) >= 2:
        return tuple(_dim(d, where) for d in shape[1:])
    if cls == "Embedding" and "input_length" in cfg:
        return (_dim(cfg.get("input_length"), where),)
    if "input_dim" in cfg and cls != "Embedding":  # Keras 1 recurrent layers
        return (_dim(cfg.get("input_length"), where), _dim(cfg["input_dim"], where))
    return None


def _renamed(cfg: dict[str, Any]) -> dict[str, Any]:
    out = dict(cfg)
    for old, new in _RENAMES.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    return out


MAX_NESTING = 32


def _spec(entry: dict[str, Any], where: str, depth: int = 0) -> LayerSpec:
    if depth > MAX_NESTING:
        raise ModelError(f"{where}: layers nested more than {MAX_NESTING} deep")
    cls, cfg = _class_and_config(entry, where)
    name = cfg.get("name") or entry.get("name")
    if not isinstance(name, str):
        raise ModelError(f"{where}: a {cls} layer in the model config has no name")
    _refuse_code(entry, cls, name, where)
    keras_class = cls
    cls = _CLASS_RENAMES.get(cls, cls)
    if cls == "Merge":  # Keras 1
        cls = _keras1_merge(cfg, name, where)
    if cls == "RNN":
        return _rnn_spec(cfg, name, where, depth)
    if cls in CUDNN:
        cfg = {**cfg, "activation": "tanh", "recurrent_activation": "sigmoid"}
        if cls == "CuDNNGRU":
            cfg["reset_after"] = True
        return LayerSpec(CUDNN[cls], name, cfg, keras_class=keras_class)
    if cls not in SUPPORTED:
        raise UnsupportedLayerError(
            f"{where}: layer {name!r} is a {cls}, which rnninspect does not support "
            f"(supported: {supported_list()})"
        )
    if cls in CONTAINERS:
        sub = _parse_container({"class_name": cls, "config": cfg}, where, depth + 1)
        return LayerSpec(cls, name, {"name": name}, children=sub.layers, sub=sub.graph())
    cfg = _renamed(cfg)
    inner = backward = None
    if cls in WRAPPERS:
        layer_entry = cfg.get("layer")
        if not isinstance(layer_entry, dict):
            raise ModelError(f"{where}: {cls} layer {name!r} has no wrapped layer config")
        inner = _spec(layer_entry, where, depth + 1)
        back_entry = cfg.get("backward_layer")
        if cls == "Bidirectional":
            if inner.class_name not in RECURRENT | {"StackedRNN"}:
                raise UnsupportedLayerError(
                    f"{where}: Bidirectional layer {name!r} wraps a {inner.class_name}; "
                    "it must wrap SimpleRNN, LSTM, GRU or RNN(cell)"
                )
            if isinstance(back_entry, dict):
                backward = _spec(back_entry, where, depth + 1)
    return LayerSpec(cls, name, cfg, inner=inner, backward=backward, keras_class=keras_class)


# The flags an RNN wrapper passes to the recurrence its cell computes.
_RNN_FLAGS = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "zero_output_for_mask",
    "time_major",
    "trainable",
)


def _rnn_spec(cfg: dict[str, Any], name: str, where: str, depth: int) -> LayerSpec:
    """``RNN(cell)``: the layer its cell makes (``RNN(LSTMCell(...))`` computes as an
    ``LSTM``); ``RNN(StackedRNNCells([...]))`` a stack of those, run step by step."""
    cell = cfg.get("cell")
    if not isinstance(cell, dict):
        raise ModelError(f"{where}: RNN layer {name!r} has no cell config")
    flags = {k: cfg[k] for k in _RNN_FLAGS if k in cfg}
    ccls, ccfg = _class_and_config(cell, where)
    _refuse_code(cell, ccls, name, where)
    if ccls == "StackedRNNCells":
        entries = ccfg.get("cells")
        if not isinstance(entries, list) or not entries:
            raise ModelError(f"{where}: RNN layer {name!r}: StackedRNNCells without cells")
        cells = [_cell_spec(c, f"{name}/cell_{i}", where) for i, c in enumerate(entries)]
        return LayerSpec(
            "StackedRNN", name, {"name": name, **flags}, cells=cells, keras_class="RNN"
        )
    spec = _cell_spec(cell, name, where)
    spec.config.update(flags, name=name)
    spec.keras_class = "RNN"
    return spec


def _cell_spec(entry: Any, name: str, where: str) -> LayerSpec:
    if not isinstance(entry, dict):
        raise ModelError(f"{where}: RNN layer {name!r} has a malformed cell")
    ccls, ccfg = _class_and_config(entry, where)
    _refuse_code(entry, ccls, name, where)
    if ccls not in CELLS:
        raise UnsupportedLayerError(
            f"{where}: RNN layer {name!r} has a {ccls} cell; rnninspect computes "
            "SimpleRNNCell, LSTMCell, GRUCell and StackedRNNCells"
        )
    cfg = _renamed(ccfg)
    cfg.pop("name", None)
    return LayerSpec(CELLS[ccls], name, {**cfg, "name": name}, keras_class=ccls)


def _keras1_merge(cfg: dict[str, Any], name: str, where: str) -> str:
    mode = cfg.get("mode", "sum")
    found = _MERGE_MODES.get(mode) if isinstance(mode, str) else None
    if found is None:
        raise UnsupportedLayerError(
            f"{where}: Keras 1 Merge layer {name!r} has mode {mode!r}; rnninspect computes "
            f"the modes {', '.join(_MERGE_MODES)}"
        )
    if found == "Concatenate":
        cfg["axis"] = cfg.get("concat_axis", -1)
    if found == "Dot":
        cfg["axes"] = cfg.get("dot_axes", -1)
    return found


def _refuse_code(entry: dict[str, Any], cls: str, name: str, where: str) -> None:
    if cls in CODE_LAYERS:
        raise UnsupportedLayerError(
            f"{where}: layer {name!r} is a {cls}, which holds Python code; "
            "rnninspect never runs code from a model file"
        )
    module = entry.get("module")
    registered = entry.get("registered_name")
    custom_module = isinstance(module, str) and not module.startswith(("keras", "tf_keras"))
    custom_name = isinstance(registered, str) and registered not in (cls, "")
    if custom_module or custom_name:
        raise UnsupportedLayerError(
            f"{where}: layer {name!r} is a custom class "
            f"({registered or cls} from module {module!r}); "
            "rnninspect never runs code from a model file"
        )
