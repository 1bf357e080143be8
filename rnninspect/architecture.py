"""Keras model configs (JSON) -> a chain of ``LayerSpec``.

Handles Sequential (Keras 1/2 plain list, later dicts), Functional/Model graphs that
form a chain, and models nested in models. Nothing in a config is ever executed:
classes are looked up in a fixed table, and anything else is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ModelError, UnsupportedLayerError

# Layers that are the identity at inference time.
PASSTHROUGH = frozenset(
    {
        "Dropout",
        "SpatialDropout1D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ActivityRegularization",
    }
)
RECURRENT = frozenset({"SimpleRNN", "LSTM", "GRU"})
WRAPPERS = frozenset({"TimeDistributed", "Bidirectional"})
CONTAINERS = frozenset({"Sequential", "Functional", "Model"})
SUPPORTED = frozenset(
    {"InputLayer", "Dense", "Embedding", "Masking", "Activation"}
    | PASSTHROUGH
    | RECURRENT
    | WRAPPERS
    | CONTAINERS
)
# Layers that hold code; refused with a message of their own.
CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})

# Keras 1 -> Keras 2 config key renames.
_RENAMES = {
    "output_dim": "units",
    "inner_activation": "recurrent_activation",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
    "bias": "use_bias",
}


def supported_list() -> str:
    names = [*sorted(SUPPORTED - CONTAINERS - {"InputLayer"}), "Sequential/Functional chains"]
    return ", ".join(names)


@dataclass
class LayerSpec:
    """One layer as a config describes it (or as inference from weights guessed it)."""

    class_name: str
    name: str
    config: dict[str, Any]
    inner: LayerSpec | None = None  # TimeDistributed's / Bidirectional's wrapped layer
    backward: LayerSpec | None = None  # Bidirectional's backward layer
    children: list[LayerSpec] = field(default_factory=list)  # nested model's layers
    emit: int = 0  # which output tensor the next layer takes (return_state)

    @property
    def is_container(self) -> bool:
        return self.class_name in CONTAINERS

    def n_weights(self) -> int:
        """How many arrays ``get_weights()`` returns for this layer."""
        c = self.config
        if self.is_container:
            return sum(child.n_weights() for child in self.children)
        if self.class_name == "Bidirectional" and self.inner is not None:
            back = self.backward or self.inner
            return self.inner.n_weights() + back.n_weights()
        if self.inner is not None:
            return self.inner.n_weights()
        if self.class_name == "Dense":
            return 1 + int(bool(c.get("use_bias", True)))
        if self.class_name in RECURRENT:
            return 2 + int(bool(c.get("use_bias", True)))
        if self.class_name == "Embedding":
            return 1
        return 0


@dataclass
class Architecture:
    name: str
    layers: list[LayerSpec]  # top level, in call order, InputLayer excluded
    input_shape: tuple[int | None, ...] | None  # per sample; None when unknown
    input_dtype: str = "float32"
    input_layer_name: str | None = None
    lists_input_layer: bool = False  # Keras's model.layers shows the InputLayer
    keras_version: str | None = None

    def flat(self) -> list[LayerSpec]:
        """The chain with nested models inlined."""
        return _flatten(self.layers)


def _flatten(specs: list[LayerSpec]) -> list[LayerSpec]:
    out: list[LayerSpec] = []
    for spec in specs:
        if spec.is_container:
            out.extend(_flatten(spec.children))
        else:
            out.append(spec)
    return out


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
    return arch


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
            continue
        if i == 0 or arch.input_shape is None:
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
    _check_input_dtype(arch)
    return arch


def _parse_functional(config: Any, where: str, depth: int) -> Architecture:
    if not isinstance(config, dict):
        raise ModelError(f"{where}: functional model config is not an object")
    entries = _layer_list(config, where)
    by_name: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = entry.get("name") or (entry.get("config") or {}).get("name")
        if not isinstance(name, str):
            raise ModelError(f"{where}: a layer in the model config has no name")
        by_name[name] = entry
    outputs = _endpoint_names(config.get("output_layers"), where)
    inputs = _endpoint_names(config.get("input_layers"), where)
    emits: dict[str, int] = {outputs[0][0]: outputs[0][1]} if len(outputs) == 1 else {}
    if len({name for name, _ in outputs}) == 1 and len(outputs) == 2:
        # Both outputs of one final layer (an unmerged Bidirectional) are the model's.
        outputs = [(outputs[0][0], 0)]
    if len(outputs) != 1 or len(inputs) != 1:
        raise UnsupportedLayerError(
            f"{where}: model has {len(inputs)} inputs and {len(outputs)} outputs; "
            "rnninspect computes chains with one input and one output"
        )
    # Walk back from the output along each layer's first input tensor; mask-only ops
    # (NotEqual, Any) feed kwargs and are left out: masks are propagated implicitly.
    chain: list[dict[str, Any]] = []
    current = outputs[0][0]
    seen: set[str] = set()
    while True:
        if current in seen:
            raise ModelError(f"{where}: model graph has a cycle at layer {current!r}")
        seen.add(current)
        found = by_name.get(current)
        if found is None:
            raise ModelError(f"{where}: model config refers to unknown layer {current!r}")
        entry = found
        chain.append(entry)
        cls, _ = _class_and_config(entry, where)
        if cls == "InputLayer":
            break
        parents = _inbound_layers(entry, where)
        if len(parents) != 1:
            raise UnsupportedLayerError(
                f"{where}: layer {current!r} ({cls}) takes {len(parents)} inputs; "
                "rnninspect computes chains of layers with one input each"
            )
        current, index = parents[0]
        emits[current] = index
    chain.reverse()
    arch = Architecture(name=_model_name(config, "functional"), layers=[], input_shape=None)
    first_cls, first_cfg = _class_and_config(chain[0], where)
    if first_cls == "InputLayer":
        arch.input_shape, arch.input_dtype = _input_from(first_cfg, where)
        arch.input_layer_name = str(chain[0].get("name") or first_cfg.get("name"))
        arch.lists_input_layer = True
    arch.layers = [_spec(entry, where, depth) for entry in chain[1:]]
    for spec, entry in zip(arch.layers, chain[1:], strict=True):
        spec.emit = emits.get(str(entry.get("name") or spec.name), 0)
        if spec.emit and spec.class_name not in RECURRENT:
            raise UnsupportedLayerError(
                f"{where}: layer {spec.name!r} ({spec.class_name}) feeds its output "
                f"#{spec.emit} on; rnninspect follows extra outputs of recurrent layers only"
            )
    _check_input_dtype(arch)
    return arch


def _check_input_dtype(arch: Architecture) -> None:
    flat = arch.flat()
    if flat and flat[0].class_name == "Embedding":
        arch.input_dtype = "int32"
        if arch.input_shape is not None and len(arch.input_shape) == 2:
            # Keras 1 Embedding configs give (T, 1)-style shapes in rare cases.
            arch.input_shape = arch.input_shape[:1]


def _endpoint_names(value: Any, where: str) -> list[tuple[str, int]]:
    # [["dense", 0, 0]] (one endpoint each) or, in Keras 3, ["dense", 0, 0] for one.
    if not isinstance(value, list) or not value:
        raise ModelError(f"{where}: functional model config lacks input/output layers")
    if isinstance(value[0], str):
        value = [value]
    names = []
    for item in value:
        if not isinstance(item, list) or not item or not isinstance(item[0], str):
            raise ModelError(f"{where}: malformed input/output layer list in model config")
        names.append((item[0], _tensor_index(item)))
    return names


def _tensor_index(history: list[Any]) -> int:
    index = history[2] if len(history) > 2 else 0
    return index if isinstance(index, int) and not isinstance(index, bool) else 0


def _inbound_layers(entry: dict[str, Any], where: str) -> list[tuple[str, int]]:
    nodes = entry.get("inbound_nodes")
    if not isinstance(nodes, list) or not nodes:
        return []
    if len(nodes) > 1:
        raise UnsupportedLayerError(
            f"{where}: layer {entry.get('name')!r} is shared (called {len(nodes)} times); "
            "rnninspect computes chains where each layer is called once"
        )
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args = node.get("args") or []
        return [name for arg in args for name in _history_names(arg)]
    if isinstance(node, list):  # tf.keras: [["layer", node, tensor, {kwargs}], ...]
        names = []
        for item in node:
            if isinstance(item, list) and item and isinstance(item[0], str):
                names.append((item[0], _tensor_index(item)))
        return names
    raise ModelError(f"{where}: malformed inbound_nodes for layer {entry.get('name')!r}")


def _history_names(arg: Any) -> list[tuple[str, int]]:
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        history = (arg.get("config") or {}).get("keras_history")
        if isinstance(history, list) and history and isinstance(history[0], str):
            return [(history[0], _tensor_index(history))]
        return []
    if isinstance(arg, list):  # a list of tensors passed as one argument
        return [name for item in arg for name in _history_names(item)]
    return []


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
    if cls not in SUPPORTED:
        raise UnsupportedLayerError(
            f"{where}: layer {name!r} is a {cls}, which rnninspect does not support "
            f"(supported: {supported_list()})"
        )
    if cls in CONTAINERS:
        sub = _parse_container({"class_name": cls, "config": cfg}, where, depth + 1)
        return LayerSpec(cls, name, {"name": name}, children=sub.layers)
    cfg = _renamed(cfg)
    inner = backward = None
    if cls in WRAPPERS:
        layer_entry = cfg.get("layer")
        if not isinstance(layer_entry, dict):
            raise ModelError(f"{where}: {cls} layer {name!r} has no wrapped layer config")
        inner = _spec(layer_entry, where, depth + 1)
        back_entry = cfg.get("backward_layer")
        if cls == "Bidirectional":
            if inner.class_name not in RECURRENT:
                raise UnsupportedLayerError(
                    f"{where}: Bidirectional layer {name!r} wraps a {inner.class_name}; "
                    "it must wrap SimpleRNN, LSTM or GRU"
                )
            if isinstance(back_entry, dict):
                backward = _spec(back_entry, where, depth + 1)
    return LayerSpec(cls, name, cfg, inner=inner, backward=backward)


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
