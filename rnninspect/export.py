"""Writing a model out again: a Keras 3 ``.keras`` archive, Keras 3 weights-only
``.weights.h5``, or ``.npz`` (the layer-qualified convention with ``__config__``, or
the notebook's ``Wx, Wh, bh, Wo, bo``).

Whatever file a model came from (Keras 1 and 2, tf.keras, CuDNN layers, weights-only
files with their config), the format-neutral ``Model`` is written as Keras 3 would
write the same network:

* ``config.json`` in Keras 3's own format. Each layer's entry starts from what Keras
  3.15 writes for a fresh layer of its class (``keras3_layers.json``, made by
  ``scripts/make_keras3_templates.py``) and takes every value that changes what the
  layer computes from the model. Legacy layers are translated: ``CuDNNLSTM`` /
  ``CuDNNGRU`` become the ``LSTM`` / ``GRU(reset_after=True)`` they compute (their
  weights already converted on loading), ``RNN(LSTMCell)`` the ``LSTM`` it is, Keras 1
  names and ``batch_input_shape`` Keras 3's, nested models are inlined (one flat graph,
  as rnninspect computes it).
* ``model.weights.h5`` in Keras 3's layout: ``layers/<class, snake_cased>[_k]/...``,
  in the order Keras 3 walks the model it builds from that config (``keras_order``:
  Keras's ``map_graph`` for a Functional model, the list for a Sequential one).

Two things Keras 3 cannot say are rewritten, each with a note:

* ``hard_sigmoid`` of Keras 1/2 (``clip(0.2x + 0.5)``) is not Keras 3's
  (``clip(x/6 + 0.5)``): the weights feeding it are scaled by 6/5, which makes Keras 3's
  function compute the old one (Dense, Conv, recurrent gates, a GRU's candidate).
* ``stateful=True`` needs a fixed batch size in Keras 3, and no file holds states:
  written as ``stateful=False`` (what every fresh call computes anyway).

``time_major=True`` layers are refused (Keras 3 has no way to run over the batch axis).
Files are written atomically (``outputs.atomic``) and, given ``SOURCE_DATE_EPOCH``,
byte for byte reproducibly.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import re
import time
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError, OutputError, UnsupportedLayerError, UsageError
from .loaders.keras_native import snake
from .model import (
    ELU,
    GRU,
    LSTM,
    PER_STEP_LAYERS,
    Activation,
    Array,
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
    Model,
    MultiHeadAttention,
    Node,
    Passthrough,
    Plumbing,
    Pooling,
    PReLU,
    Recurrent,
    Ref,
    ReLU,
    SimpleRNN,
    Softmax,
    StackedRNN,
    TimeDistributed,
)
from .versions import keras_major

SUFFIXES = (".keras", ".weights.h5", ".npz")
NAMES = ("keras", "notebook")
HARD_SIGMOID_SCALE = 1.2  # Keras 3's x/6 of 1.2x is Keras 2's 0.2x


def target_kind(path: Path) -> str:
    """``keras``, ``weights`` or ``npz`` from the output's name (checked up front)."""
    name = path.name.lower()
    if name.endswith(".weights.h5"):
        return "weights"
    if name.endswith(".keras"):
        return "keras"
    if name.endswith(".npz"):
        return "npz"
    raise OutputError(
        f"{path}: unknown export format {path.suffix or '(no extension)'!r}; "
        f"use one of {', '.join(SUFFIXES)}"
    )


def export(model: Model, path: str | Path, names: str = "keras") -> list[str]:
    """Write ``model`` to ``path`` (format by extension: ``.keras``, ``.weights.h5``,
    ``.npz``). ``names``: for ``.npz``, ``keras`` (``<layer>/<weight>`` keys and
    ``__config__``) or ``notebook`` (``Wx, Wh, bh, Wo, bo``). Returns notes on what had
    to be translated (the CLI prints them as warnings)."""
    from .outputs import check_target

    path = Path(path)
    kind = target_kind(path)
    check_target(path, (path.suffix.lower().lstrip("."),))
    if names not in NAMES:
        raise UsageError(f"--names must be one of {', '.join(NAMES)}, got {names!r}")
    if names == "notebook" and kind != "npz":
        raise UsageError("--names notebook writes an .npz: give -o NAME.npz")
    if kind == "npz":
        if names == "notebook":
            write_notebook_npz(model, path)
            return []
        return write_npz(model, path)
    plan = Plan(model, keras3=True)
    if kind == "keras":
        write_keras(plan, path)
    else:
        with _atomic(path) as fh:
            fh.write(weights_h5_bytes(plan))
    return plan.notes


# ----------------------------------------------------------------- the plan of a model


@cache
def templates() -> dict[str, Any]:
    """Keras 3.15's serialisation of a fresh layer of each class."""
    from importlib import resources

    text = resources.files("rnninspect").joinpath("keras3_layers.json").read_text()
    found: dict[str, Any] = json.loads(text)
    return found


def _template(cls: str) -> dict[str, Any]:
    entry = templates()["layers"].get(cls)
    if entry is None:  # pragma: no cover - every class written has a template
        raise UnsupportedLayerError(f"no Keras 3 template for {cls}")
    return copy.deepcopy(entry)


class Plan:
    """What gets written: the layers in Keras 3's order with unique names, the
    Keras 3 class each is written as, and their (possibly rewritten) weights.

    ``keras3``: the config is for Keras 3 (``stateful`` dropped, Keras 1/2
    ``hard_sigmoid`` rewritten); otherwise it keeps the model's own semantics (the
    ``.npz`` convention, read back by rnninspect with the original ``keras_version``)."""

    def __init__(self, model: Model, keras3: bool) -> None:
        self.model = model
        self.keras3 = keras3
        self.notes: list[str] = []
        self.major = keras_major(model.source.keras_version, 3)
        time_major = [n.layer.name for n in model.nodes if getattr(n.layer, "time_major", False)]
        if keras3:
            for node in model.nodes:
                _refuse(node.layer, str(model.source.path))
        self.sequential = _is_sequential(model) and not (keras3 and time_major)
        self.ops = MaskOps()
        if not self.sequential and keras3:
            taken = {layer.name for layer in [*model.inputs, *model.layers]}
            _time_major_ops(model, taken, self.ops)
            _mask_ops(model, taken, self.ops)
        if keras3 and time_major:
            self.notes.append(
                f"time_major=True in {', '.join(map(repr, time_major))}: Keras 3 has no "
                "time-major layers, so each is written batch-major between two "
                "Transpose(axes=[1, 0, 2]) ops (a Functional model); it computes the same, "
                "and the model's batch axis is still time, as in the original"
            )
        self.order = keras_order(model, self.ops)
        if not keras3:
            self.order = _own_order(model, self.order)
        self.layers: list[Layer] = []  # Keras's order; InputLayers too for Functional
        seen: set[int] = set()
        for k in self.order:
            if isinstance(k, str):
                continue
            layer = model.nodes[k].layer
            if id(layer) not in seen:
                seen.add(id(layer))
                if not (self.sequential and isinstance(layer, InputLayer)):
                    self.layers.append(layer)
        self.names = _unique_names([*model.inputs, *self.layers], set(self.ops.parents))
        renamed = [
            f"{layer.name!r} -> {self.names[id(layer)]!r}"
            for layer in self.layers
            if self.names[id(layer)] != layer.name
        ]
        if renamed:
            self.notes.append(
                "layer names made unique (and valid TensorFlow names) in the one flat graph: "
                + ", ".join(renamed)
            )
        self.model_name = clean_name(model.name)
        if self.model_name != model.name:
            self.notes.append(f"model name {model.name!r} written as {self.model_name!r}")
        self.written: dict[int, Layer] = {}
        rescaled: list[str] = []
        for layer in self.layers:
            new = layer
            if keras3 and self.major < 3:
                new = _rewrite_hard_sigmoid(layer, rescaled)
            if keras3:
                new = _stateless(new, self.notes)
            self.written[id(layer)] = new
        if rescaled:
            self.notes.append(
                "hard_sigmoid is clip(0.2x + 0.5) in Keras 1/2 but clip(x/6 + 0.5) in Keras 3: "
                f"the weights feeding it are scaled by 6/5 in {', '.join(rescaled)} "
                "(same outputs, to float rounding)"
            )
        self.nodes_of: dict[int, list[int]] = {}
        for i, node in enumerate(model.nodes):
            self.nodes_of.setdefault(id(node.layer), []).append(i)
        for calls in self.nodes_of.values():  # inbound_nodes[k] is call k
            calls.sort(key=lambda i: model.nodes[i].call)

    def name(self, layer: Layer) -> str:
        return self.names[id(layer)]

    def config(self) -> dict[str, Any]:
        """The model's ``config.json``, Keras 3's format."""
        m = self.model
        policy = copy.deepcopy(templates()["dtype_policy"])
        if self.sequential:
            first = m.inputs[0]
            layers = [_input_entry(first, self.name(first), functional=False)]
            layers += [self._entry(layer, functional=False) for layer in self.layers]
            batch = [None, *first.shape]
            return {
                "module": "keras",
                "class_name": "Sequential",
                "config": {
                    "name": self.model_name,
                    "trainable": True,
                    "dtype": policy,
                    "layers": layers,
                    "build_input_shape": batch,
                },
                "registered_name": None,
                "build_config": {"input_shape": batch},
                "compile_config": None,
            }
        entries = []
        for k in self.order:
            if isinstance(k, str):
                entries.append(self._op_entry(k))
                continue
            layer = m.nodes[k].layer
            if isinstance(layer, InputLayer):
                entries.append(_input_entry(layer, self.name(layer), functional=True))
            else:
                entries.append(self._entry(layer, functional=True))
        ins = [[self.name(i), 0, 0] for i in m.inputs]
        outs = [self._history(r) for r in m.outputs]
        return {
            "module": "keras.src.models.functional",
            "class_name": "Functional",
            "config": {
                "name": self.model_name,
                "trainable": True,
                "layers": entries,
                "input_layers": ins[0] if len(ins) == 1 else ins,
                "output_layers": outs[0] if len(outs) == 1 else outs,
            },
            "registered_name": "Functional",
            "build_config": {"input_shape": None},
            "compile_config": None,
        }

    def _op_entry(self, name: str) -> dict[str, Any]:
        cls, args, extra = self.ops.entries[name]
        return {
            "module": "keras.src.ops.numpy",
            "class_name": cls,
            "config": {"name": name, **extra},
            "registered_name": cls,
            "name": name,
            "inbound_nodes": [{"args": [self._arg(a) for a in args], "kwargs": {}}],
        }

    def _arg(self, arg: Any) -> Any:
        if isinstance(arg, Ref):
            return self._tensor(arg)
        if isinstance(arg, tuple) and arg[0] == "own":
            return self._tensor(arg[1], raw=True)  # the layer's own output, untransposed
        if isinstance(arg, str):
            return self._op_tensor(arg)
        return arg  # a constant

    def _op_tensor(self, name: str) -> dict[str, Any]:
        """The output of an op: a boolean (N, T[, D]) mask, or a transposed tensor."""
        cls, args, extra = self.ops.entries[name]
        src = self._arg(args[0])["config"]
        shape = list(src["shape"])
        dtype = "bool"
        if cls == "Any":
            shape = shape[:-1]  # over the last axis
        elif cls == "Transpose":
            shape = [shape[a] for a in extra["axes"]]
            dtype = src["dtype"]
        return {
            "class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": dtype, "keras_history": [name, 0, 0]},
        }

    def _history(self, ref: Ref, raw: bool = False) -> list[Any]:
        key = self.ops.key(ref)
        if isinstance(key, str) and not raw:
            return [key, 0, 0]
        node = self.model.nodes[ref.node]
        return [self.name(node.layer), node.call, ref.index]

    def _tensor(self, ref: Ref, raw: bool = False) -> dict[str, Any]:
        """A tensor as an argument: as the graph written has it (``raw``: the node's
        own output, even where an op replaced it for the consumers)."""
        key = self.ops.key(ref)
        if isinstance(key, str) and not raw:
            return self._op_tensor(key)
        node = self.model.nodes[ref.node]
        shape = node.output_shapes[ref.index] if ref.index < len(node.output_shapes) else ()
        full: list[Any] = [None, *shape]
        if raw and isinstance(key, str):
            full = [full[1], full[0], *full[2:]]  # batch-major, before the transpose
        ids = isinstance(node.layer, InputLayer) and node.layer.dtype == "int32"
        return {
            "class_name": "__keras_tensor__",
            "config": {
                "shape": full,
                "dtype": "int32" if ids else "float32",
                "keras_history": self._history(ref, raw),
            },
        }

    def _entry(self, layer: Layer, functional: bool) -> dict[str, Any]:
        written = self.written[id(layer)]
        entry = layer_entry(written, self.name(layer))
        first = self.model.nodes[self.nodes_of[id(layer)][0]]
        build = _build_config(self.model, first)
        if self.nodes_of[id(layer)][0] in self.ops.input_of:
            T, N, *rest = self._op_tensor(self.ops.input_of[self.nodes_of[id(layer)][0]])["config"][
                "shape"
            ]
            build = {"input_shape": [T, N, *rest]}  # batch-major, after the transpose
        if build is not None:
            entry["build_config"] = build
        if not self.keras3 and getattr(written, "time_major", False):
            entry["config"]["time_major"] = True  # for rnninspect's reader (.npz)
        if isinstance(written, PReLU):
            x = self.model.nodes[first.inputs[0].node].output_shapes[first.inputs[0].index]
            shared = [
                i + 1
                for i, (a, d) in enumerate(zip(written.alpha.shape, x, strict=False))
                if a == 1 and d != 1
            ]
            entry["config"]["shared_axes"] = shared or None
        if functional:
            entry["name"] = self.name(layer)
            entry["inbound_nodes"] = [
                self._inbound(self.model.nodes[i]) for i in self.nodes_of[id(layer)]
            ]
        return entry

    def _inbound(self, node: Node) -> dict[str, Any]:
        layer = node.layer
        position = self.model.nodes.index(node)
        tensors = [self._tensor(r) for r in node.inputs]
        if position in self.ops.input_of:
            tensors[0] = self._op_tensor(self.ops.input_of[position])
        # rnninspect's own notes on a call are no Keras arguments: ``mask_given`` is
        # said by the explicit mask written (``MaskOps``; kept as a flag in .npz,
        # which its reader takes back), ``carried`` belongs to one run.
        internal = {"carried"} | ({"mask_given"} if self.keras3 else set())
        kwargs: dict[str, Any] = {k: v for k, v in node.options.items() if k not in internal}
        if isinstance(layer, (Merge, Attention)):
            args: list[Any] = [tensors]
        else:
            args = tensors
        if isinstance(layer, Attention) and layer.causal:
            kwargs["use_causal_mask"] = True
        if node.states:
            kwargs["initial_state"] = [self._tensor(r) for r in node.states]
        if position in self.ops.mask_of:
            kwargs["mask"] = self._op_tensor(self.ops.mask_of[position])
        if isinstance(layer, (Recurrent, Bidirectional, StackedRNN, ConvLSTM)):
            kwargs.setdefault("training", False)
        return {"args": args, "kwargs": kwargs}

    # ------------------------------------------------------------------ weights layout

    def weight_paths(self) -> Iterator[tuple[str, str, list[Array]]]:
        """``(group path, its name attribute, arrays)`` for every group Keras 3
        writes, arrays in ``vars/0, 1, ...`` order (empty for weightless groups)."""
        yield "vars", self.model_name, []
        used: dict[str, int] = {}
        for layer in self.layers:
            written = self.written[id(layer)]
            base = f"layers/{_unique(snake(keras_class(written)), used)}"
            yield from _layer_groups(written, base, self.name(layer))


def _unique(name: str, used: dict[str, int]) -> str:
    """Keras's ``_get_unique_name``: ``name``, ``name_1``, ``name_2``, ..."""
    n = used.get(name, 0)
    used[name] = n + 1
    return name if n == 0 else f"{name}_{n}"


def _layer_groups(layer: Layer, base: str, name: str) -> Iterator[tuple[str, str, list[Array]]]:
    if isinstance(layer, Recurrent):
        yield f"{base}/cell/vars", _cell_name(layer), [a for _, a in layer.weights()]
        yield f"{base}/vars", name, []
    elif isinstance(layer, ConvLSTM):
        yield f"{base}/cell/vars", "conv_lstm_cell", [a for _, a in layer.weights()]
        yield f"{base}/vars", name, []
    elif isinstance(layer, Bidirectional):
        for part, inner in (("forward_layer", layer.forward), ("backward_layer", layer.backward)):
            yield from _layer_groups(inner, f"{base}/{part}", _direction_name(layer, part))
        yield f"{base}/vars", name, []
    elif isinstance(layer, TimeDistributed):
        yield from _layer_groups(layer.layer, f"{base}/layer", layer.layer.name)
        yield f"{base}/vars", name, []
    elif isinstance(layer, StackedRNN):
        used: dict[str, int] = {}
        for cell in layer.cells:
            sub = _unique(snake(_cell_class(cell)), used)
            yield f"{base}/cell/cells/{sub}/vars", sub, [a for _, a in cell.weights()]
        yield f"{base}/cell/vars", "stacked_rnn_cells", []
        yield f"{base}/vars", name, []
    elif isinstance(layer, MultiHeadAttention):
        for part in ("query", "key", "value", "output"):
            arrays = [layer.kernels[part]] + ([layer.biases[part]] if part in layer.biases else [])
            label = "attention_output" if part == "output" else part
            yield f"{base}/{part}_dense/vars", label, arrays
        yield f"{base}/_dropout_layer/vars", "dropout", []
        yield f"{base}/_softmax/vars", "softmax", []
        yield f"{base}/vars", name, []
    else:
        yield f"{base}/vars", name, [a for _, a in layer.weights()]


def _cell_class(cell: Recurrent) -> str:
    return {SimpleRNN: "SimpleRNNCell", LSTM: "LSTMCell", GRU: "GRUCell"}[type(cell)]


def _cell_name(layer: Recurrent) -> str:
    return snake(_cell_class(layer))


def _direction_name(layer: Bidirectional, part: str) -> str:
    inner = layer.forward if part == "forward_layer" else layer.backward
    prefix = "forward_" if part == "forward_layer" else "backward_"
    return inner.name if inner.name.startswith(prefix) else prefix + inner.name


# ------------------------------------------------------------------ Keras's layer order


def _is_sequential(model: Model) -> bool:
    """Written as a Sequential: a one-input chain of single-output layers whose
    Keras ``layers`` list did not show the InputLayer (as Sequential models do)."""
    if not model.is_chain or model.lists_input_layer:
        return False
    return all(len(n.output_shapes) <= 1 for n in model.nodes)


Key = int | str  # a node's position, or the name of a mask op (``MaskOps``)


def keras_order(model: Model, ops: MaskOps | None = None) -> list[Key]:
    """The operations in the order Keras 3's ``map_graph`` lists them for the
    Functional model this graph becomes: each layer as the position of its first node,
    each mask op by name. That is the order of ``model.layers``, and so of the
    weights file.

    A port of ``keras/src/ops/function.py`` (``_build_map`` and ``map_graph``):
    depth-first from the outputs, then by depth (inputs deepest), ties by first
    visit. A node's parents are its tensors in call order: the positional ones, then
    the keyword ones by name (``initial_state``, ``mask``)."""
    nodes = model.nodes
    ops = ops or MaskOps()

    def parents(k: Key) -> list[Key]:
        if isinstance(k, str):
            return list(ops.parents[k])
        n = nodes[k]
        found: list[Key] = [ops.key(r) for r in n.inputs + n.states]
        if k in ops.input_of:
            found[0] = ops.input_of[k]
        if k in ops.mask_of:
            found.append(ops.mask_of[k])
        return found

    def op_of(k: Key) -> Key:
        return k if isinstance(k, str) else id(nodes[k].layer)

    finished: set[Key] = set()
    in_progress: set[Key] = set()
    ordered: list[Key] = []  # post-order: inputs -> outputs
    op_index: dict[Key, int] = {}

    def visit(k: Key) -> None:
        if k in finished:
            return
        if k in in_progress:  # pragma: no cover - build refuses cycles
            raise ModelError("model graph has a cycle")
        op_index.setdefault(op_of(k), len(op_index))
        in_progress.add(k)
        for p in parents(k):
            visit(p)
        finished.add(k)
        in_progress.discard(k)
        ordered.append(k)

    for ref in model.outputs:
        visit(ops.key(ref))
    node_depth: dict[Key, int] = {}
    op_depth: dict[Key, int] = {}
    for k in reversed(ordered):
        depth = node_depth.setdefault(k, 0)
        op = op_of(k)
        depth = max(depth, op_depth.get(op, 0))
        op_depth[op] = depth
        node_depth[k] = depth
        for p in parents(k):
            node_depth[p] = max(depth + 1, node_depth.get(p, 0))
    first_node: dict[Key, Key] = {name: name for name in ops.parents}
    for i, n in enumerate(nodes):
        first_node.setdefault(id(n.layer), i)
        if isinstance(n.layer, InputLayer) and id(n.layer) not in op_depth:
            op_depth[id(n.layer)] = 0  # an input no output needs
            op_index[id(n.layer)] = -1
    by_depth: dict[int, list[Key]] = {}
    for op, depth in op_depth.items():
        by_depth.setdefault(depth, []).append(op)
    out: list[Key] = []
    for depth in sorted(by_depth, reverse=True):
        for op in sorted(by_depth[depth], key=lambda o: op_index[o]):
            out.append(first_node[op])
    return out


@dataclasses.dataclass
class MaskOps:
    """Keras 3 operations written between layers (``keras.src.ops.numpy``, as Keras 3
    itself writes the ops of a Functional graph): explicit masks, and the transposes
    around a ``time_major`` layer.

    Masks: Keras 3 passes a mask implicitly only to a call with one tensor argument
    (not to a recurrent layer called with ``initial_state``, as tf.keras did), and its
    merge layers combine masks differently from tf.keras's (``ops.merge.merge_masks``).
    Wherever the mask a recurrent call gets in the model's own semantics is not the one
    Keras 3 would fill in, the call gets ``mask=`` from ops written as Keras 3 writes
    masks (``NotEqual(ids, 0)`` for an Embedding's, ``Any(NotEqual(x, v), axis=-1)``
    for a Masking layer's, ``LogicalAnd`` of several). rnninspect's reader notes an
    explicit mask (``mask_given``) and otherwise propagates masks itself, so the file
    reads back the same.

    time_major: ``Transpose(axes=[1, 0, 2])`` before the layer (the batch-major input
    it runs on) and after its sequence output (time first again, as the layer returned
    it); see ``_time_major_ops``."""

    parents: dict[str, list[Key]] = dataclasses.field(default_factory=dict)  # op -> inputs
    # op -> (Keras class, call arguments: tensors (Ref), ops (str) or constants, config)
    entries: dict[str, tuple[str, list[Any], dict[str, Any]]] = dataclasses.field(
        default_factory=dict
    )
    mask_of: dict[int, str] = dataclasses.field(default_factory=dict)  # node -> its mask op
    input_of: dict[int, str] = dataclasses.field(default_factory=dict)  # node -> op feeding it
    output_of: dict[int, str] = dataclasses.field(default_factory=dict)  # node -> op of out 0

    def key(self, ref: Ref) -> Key:
        """What a tensor comes from in the written graph: its node, or the op that
        replaced that node's output (a time_major layer's transposed sequence)."""
        if ref.index == 0 and ref.node in self.output_of:
            return self.output_of[ref.node]
        return ref.node


# A mask as a set of origins ANDed together (None: no mask, or an all-True one, which
# a recurrent layer computes the same with). An origin: ("ids", the ids, 0) for an
# Embedding(mask_zero), ("masking", its input, mask_value) for a Masking layer, or
# ("opaque", node, 0) for one this writer does not model (the same in every Keras,
# so never written out).
Origin = tuple[str, Ref, float]
SymMask = frozenset[Origin] | None

_RECURRENT_CALLS = (Recurrent, Bidirectional, StackedRNN, ConvLSTM)
_MASK_PASSING = (
    *PER_STEP_LAYERS,
    Attention,  # the query's mask
    MultiHeadAttention,
)


def _node_masks(
    model: Model, node: Node, i: int, ins: list[SymMask], major: int, explicit: SymMask
) -> list[SymMask]:
    """The masks a node's outputs carry (symbolically, as ``engine`` computes them
    with Keras generation ``major``), given its inputs' masks. ``explicit``: the mask
    written for the call, which Keras 3 then passes on."""
    layer = node.layer
    n_out = max(1, len(node.output_shapes))
    none: list[SymMask] = [None] * n_out
    mask = ins[0] if ins else None
    if isinstance(layer, InputLayer) or not node.inputs:
        return none
    if isinstance(layer, Embedding):
        if layer.mask_zero:
            return [frozenset({("ids", node.inputs[0], 0.0)}), *none[1:]]
        return [mask, *none[1:]]
    if isinstance(layer, Masking):
        return [frozenset({("masking", node.inputs[0], float(layer.mask_value))}), *none[1:]]
    if isinstance(layer, _RECURRENT_CALLS):
        carried = explicit if explicit is not None else mask
        if not layer.return_sequences:
            return none
        both = isinstance(layer, Bidirectional) and layer.merge_mode is None
        k = 2 if both else 1
        return [carried] * k + none[k:]
    if isinstance(layer, _MASK_PASSING):
        return [mask, *none[1:]]
    if isinstance(layer, Merge):
        return [_merge_mask(node, i, ins, major), *none[1:]]
    if isinstance(layer, (Plumbing, Conv, Pooling)):
        return none  # Keras passes no mask on through these (``families``)
    if any(m is not None for m in ins):
        return [frozenset({("opaque", Ref(i), 0.0)}), *none[1:]]
    return none


def _merge_mask(node: Node, i: int, ins: list[SymMask], major: int) -> SymMask:
    """``ops.merge.merge_masks`` on symbolic masks."""
    layer = node.layer
    assert isinstance(layer, Merge)
    if layer.mode == "dot" or all(m is None for m in ins):
        return None
    opaque: SymMask = frozenset({("opaque", Ref(i), 0.0)})
    if layer.mode == "concatenate":
        rank = len(node.output_shapes[0]) if node.output_shapes else 0
        axis = layer.axis if layer.axis >= 0 else rank + 1 + layer.axis
        if axis != rank:
            return opaque  # along time: the masks concatenated, the same in both
    if major >= 3:  # an unmasked input makes every step True; else the OR
        if any(m is None for m in ins):
            return None
        return ins[0] if all(m == ins[0] for m in ins) else opaque
    present = [m for m in ins if m is not None]  # tf.keras: the AND of the masks there
    return frozenset().union(*present)


def _unsupported(layer: Layer, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(
        f"layer {layer.name!r}: Keras 3 would run it with another mask than the model's "
        f"file does ({why}), and export writes masks out only from an Embedding or a "
        "Masking layer passed on unchanged or ANDed"
    )


def _mask_ops(model: Model, taken: set[str], ops: MaskOps) -> None:
    """Explicit masks where Keras 3 would fill in another one than the model computes
    with: walk the graph with both semantics at once (the model's own, and Keras 3's
    given the masks already written)."""
    major = keras_major(model.source.keras_version, 3)
    made: dict[Origin | frozenset[Origin], str] = {}

    def name(base: str) -> str:
        k, found = 0, base
        while found in taken:
            k += 1
            found = f"{base}_{k}"
        taken.add(found)
        return found

    def op_for(origin: Origin) -> str:
        if origin not in made:
            kind, src, value = origin
            ne = name("not_equal")
            ops.parents[ne] = [ops.key(src)]
            ops.entries[ne] = ("NotEqual", [src, 0 if kind == "ids" else value], {})
            last = ne
            if kind == "masking":
                last = name("any")
                ops.parents[last] = [ne]
                ops.entries[last] = ("Any", [ne], {"axis": -1, "keepdims": False})
            made[origin] = last
        return made[origin]

    def written(mask: frozenset[Origin]) -> str:
        if mask not in made:
            parts = [op_for(o) for o in sorted(mask, key=lambda o: (o[0], o[1].node, o[2]))]
            last = parts[0]
            for other in parts[1:]:
                both = name("logical_and")
                ops.parents[both] = [last, other]
                ops.entries[both] = ("LogicalAnd", [last, other], {})
                last = both
            made[mask] = last
        return made[mask]

    own: dict[Ref, SymMask] = {}  # the model's semantics
    k3: dict[Ref, SymMask] = {}  # what Keras 3 computes from the file written
    for i, node in enumerate(model.nodes):
        ins_own = [own.get(r) for r in node.inputs]
        ins_k3 = [k3.get(r) for r in node.inputs]
        explicit: SymMask = None
        if isinstance(node.layer, _RECURRENT_CALLS) and node.inputs:
            given = node.options.get("carried") or node.options.get("mask_given")
            want = None if (node.states and major >= 3 and not given) else ins_own[0]
            implicit = None if node.states else ins_k3[0]
            if want != implicit:
                if want is None:
                    raise _unsupported(node.layer, "the model's call runs unmasked")
                if any(o[0] == "opaque" for o in want):
                    raise _unsupported(node.layer, "a mask combined by a merge or attention")
                explicit = want
                ops.mask_of[i] = written(want)
        for j, m in enumerate(_node_masks(model, node, i, ins_own, major, None)):
            own[Ref(i, j)] = m
        for j, m in enumerate(_node_masks(model, node, i, ins_k3, 3, explicit)):
            k3[Ref(i, j)] = m


def _time_major_ops(model: Model, taken: set[str], ops: MaskOps) -> None:
    """Keras 3 has no ``time_major``: a time-major layer is written as the same
    batch-major layer between two ``Transpose(axes=[1, 0, 2])`` ops, which compute
    what it computed (the model's batch axis still being time, as in the original)."""
    for i, node in enumerate(model.nodes):
        layer = node.layer
        if not (isinstance(layer, Recurrent) and layer.time_major):
            continue
        base = clean_name(layer.name)
        before, after = f"{base}_to_batch_major", f"{base}_to_time_major"
        for n in (before, after):
            if n in taken:
                raise UnsupportedLayerError(f"layer name {n!r} taken: cannot write {base}'s ops")
            taken.add(n)
        src = node.inputs[0]
        ops.parents[before] = [ops.key(src)]
        ops.entries[before] = ("Transpose", [src], {"axes": [1, 0, 2]})
        ops.input_of[i] = before
        if layer.return_sequences:
            ops.parents[after] = [i]
            ops.entries[after] = ("Transpose", [("own", Ref(i, 0))], {"axes": [1, 0, 2]})
            ops.output_of[i] = after


def clean_name(name: str) -> str:
    """A name TensorFlow takes for its ops (Keras 3 names ops after layers and
    models): letters, digits, ``_ . -``, not starting with ``_`` or ``-``."""
    out = re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "layer"
    return out if re.match(r"[A-Za-z0-9.]", out) else f"x{out}"


def _unique_names(layers: list[Layer], taken: set[str]) -> dict[int, str]:
    names: dict[int, str] = {}
    taken = set(taken)
    for layer in layers:
        if id(layer) in names:
            continue
        base = clean_name(layer.name)
        name = base
        k = 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        names[id(layer)] = name
    return names


# ---------------------------------------------------------------- layers -> Keras 3


def keras_class(layer: Layer) -> str:
    """The Keras 3 class a layer is written as."""
    if isinstance(layer, (SimpleRNN, LSTM, GRU)):
        return type(layer).__name__  # CuDNNLSTM, RNN(LSTMCell): the LSTM they compute
    if isinstance(layer, StackedRNN):
        return "RNN"
    if isinstance(layer, ConvLSTM):
        return f"ConvLSTM{layer.rank}D"
    if isinstance(layer, Merge):
        return _MERGE_CLASSES[layer.mode]
    if isinstance(layer, Plumbing):
        return _PLUMBING_CLASSES[layer.op]
    if isinstance(layer, Conv):
        return f"Conv{layer.rank}D"
    if isinstance(layer, Pooling):
        kind = "Max" if layer.op == "max" else "Average"
        return f"{'Global' if layer.global_ else ''}{kind}Pooling{layer.rank}D"
    if isinstance(layer, Attention):
        return "AdditiveAttention" if layer.score == "additive" else "Attention"
    if isinstance(layer, Passthrough):
        return layer.keras_class if layer.keras_class in templates()["layers"] else "Dropout"
    return type(layer).__name__


_MERGE_CLASSES = {
    "concatenate": "Concatenate",
    "add": "Add",
    "subtract": "Subtract",
    "multiply": "Multiply",
    "average": "Average",
    "maximum": "Maximum",
    "minimum": "Minimum",
    "dot": "Dot",
}
_PLUMBING_CLASSES = {
    "repeat_vector": "RepeatVector",
    "flatten": "Flatten",
    "reshape": "Reshape",
    "permute": "Permute",
    "cropping1d": "Cropping1D",
    "zero_padding1d": "ZeroPadding1D",
    "upsampling1d": "UpSampling1D",
}


def _input_entry(layer: InputLayer, name: str, functional: bool) -> dict[str, Any]:
    entry = _template("InputLayer")
    cfg = entry["config"]
    cfg.update(batch_shape=[None, *layer.shape], dtype=layer.dtype, name=name)
    if functional:
        entry["name"] = name
        entry["inbound_nodes"] = []
    return entry


def layer_entry(layer: Layer, name: str) -> dict[str, Any]:
    """``{module, class_name, config, registered_name}`` as Keras 3 serialises the
    layer."""
    cls = keras_class(layer)
    entry = _template(cls)
    cfg: dict[str, Any] = entry["config"]
    cfg["name"] = name
    if "trainable" in cfg:  # (SpatialDropout has none)
        cfg["trainable"] = bool(layer.trainable)
    cfg.update(_values(layer, cls))
    return entry


def _recurrent_values(layer: Recurrent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "units": layer.units,
        "activation": layer.activation,
        "use_bias": layer.bias is not None,
        "return_sequences": layer.return_sequences,
        "return_state": layer.return_state,
        "go_backwards": layer.go_backwards,
        "stateful": layer.stateful,
        "zero_output_for_mask": layer.zero_output_for_mask,
    }
    if isinstance(layer, (LSTM, GRU)):
        out["recurrent_activation"] = layer.recurrent_activation
    if isinstance(layer, GRU):
        out["reset_after"] = layer.reset_after
    return out


def _cell_entry(cell: Recurrent, name: str) -> dict[str, Any]:
    entry = _template(_cell_class(cell))
    values = _recurrent_values(cell)
    keep = {"units", "activation", "recurrent_activation", "use_bias", "reset_after"}
    entry["config"].update({k: v for k, v in values.items() if k in keep}, name=name)
    entry["config"]["trainable"] = bool(cell.trainable)
    return entry


def _values(layer: Layer, cls: str) -> dict[str, Any]:
    """The config values that decide what ``layer`` computes."""
    if isinstance(layer, Dense):
        return {
            "units": layer.units,
            "activation": layer.activation,
            "use_bias": layer.bias is not None,
        }
    if isinstance(layer, Embedding):
        V, E = layer.embeddings.shape
        return {"input_dim": int(V), "output_dim": int(E), "mask_zero": layer.mask_zero}
    if isinstance(layer, Masking):
        return {"mask_value": layer.mask_value}
    if isinstance(layer, Activation):
        return {"activation": layer.activation}
    if isinstance(layer, Recurrent):
        return _recurrent_values(layer)
    if isinstance(layer, Bidirectional):
        fwd = layer_entry(layer.forward, _direction_name(layer, "forward_layer"))
        bwd = layer_entry(layer.backward, _direction_name(layer, "backward_layer"))
        return {"merge_mode": layer.merge_mode, "layer": fwd, "backward_layer": bwd}
    if isinstance(layer, TimeDistributed):
        return {"layer": layer_entry(layer.layer, layer.layer.name)}
    if isinstance(layer, StackedRNN):
        cells = [_cell_entry(c, snake(_cell_class(c))) for c in layer.cells]
        stack = _template("StackedRNNCells")
        stack["config"]["cells"] = cells
        return {
            "cell": stack,
            "return_sequences": layer.return_sequences,
            "return_state": layer.return_state,
            "go_backwards": layer.go_backwards,
            "stateful": layer.stateful,
            "zero_output_for_mask": layer.zero_output_for_mask,
        }
    if isinstance(layer, ConvLSTM):
        return {
            "filters": layer.filters,
            "kernel_size": list(layer.kernel.shape[: layer.rank]),
            "strides": list(layer.strides),
            "padding": layer.padding,
            "dilation_rate": list(layer.dilation_rate),
            "activation": layer.activation,
            "recurrent_activation": layer.recurrent_activation,
            "use_bias": layer.bias is not None,
            "return_sequences": layer.return_sequences,
            "return_state": layer.return_state,
            "go_backwards": layer.go_backwards,
            "stateful": layer.stateful,
        }
    if isinstance(layer, Merge):
        if layer.mode == "concatenate":
            return {"axis": layer.axis}
        if layer.mode == "dot":
            return {"axes": list(layer.axes), "normalize": layer.normalize}
        return {}
    if isinstance(layer, Plumbing):
        return _plumbing_values(layer)
    if isinstance(layer, Conv):
        return {
            "filters": layer.filters,
            "kernel_size": list(layer.kernel.shape[: layer.rank]),
            "strides": list(layer.strides),
            "padding": layer.padding,
            "dilation_rate": list(layer.dilation_rate),
            "groups": layer.groups,
            "activation": layer.activation,
            "use_bias": layer.bias is not None,
            "data_format": "channels_first" if layer.channels_first else "channels_last",
        }
    if isinstance(layer, Pooling):
        fmt = {"data_format": "channels_first" if layer.channels_first else "channels_last"}
        if layer.global_:
            return {**fmt, "keepdims": layer.keepdims}
        return {
            **fmt,
            "pool_size": list(layer.pool_size),
            "strides": list(layer.strides),
            "padding": layer.padding,
        }
    if isinstance(layer, BatchNormalization):
        return {
            "axis": layer.axis,
            "epsilon": layer.epsilon,
            "scale": layer.gamma is not None,
            "center": layer.beta is not None,
        }
    if isinstance(layer, LayerNormalization):
        return {
            "axis": list(layer.axes),
            "epsilon": layer.epsilon,
            "scale": layer.gamma is not None,
            "center": layer.beta is not None,
            "rms_scaling": layer.rms_scaling,
        }
    if isinstance(layer, ReLU):
        return {
            "max_value": layer.max_value,
            "negative_slope": layer.negative_slope,
            "threshold": layer.threshold,
        }
    if isinstance(layer, LeakyReLU):
        return {"negative_slope": layer.alpha}
    if isinstance(layer, ELU):
        return {"alpha": layer.alpha}
    if isinstance(layer, PReLU):
        return {}  # shared_axes: from the input's shape (``_prelu_axes``)
    if isinstance(layer, Softmax):
        return {"axis": layer.axis[0] if len(layer.axis) == 1 else list(layer.axis)}
    if isinstance(layer, Attention):
        if layer.score == "additive":
            return {"use_scale": layer.use_scale}
        return {"use_scale": layer.use_scale, "score_mode": layer.score}
    if isinstance(layer, MultiHeadAttention):
        q, v, o = (layer.kernels[p] for p in ("query", "value", "output"))
        out_dim = int(o.shape[-1])
        return {
            "num_heads": layer.num_heads,
            "key_dim": layer.key_dim,
            "value_dim": int(v.shape[-1]),
            "use_bias": bool(layer.biases),
            "output_shape": None if out_dim == int(q.shape[0]) else [out_dim],
            "attention_axes": None,
        }
    return {}  # Passthrough


def _plumbing_values(layer: Plumbing) -> dict[str, Any]:
    op, args = layer.op, list(layer.args)
    if op == "repeat_vector":
        return {"n": args[0]}
    if op == "reshape":
        return {"target_shape": args}
    if op == "permute":
        return {"dims": args}
    if op == "cropping1d":
        return {"cropping": args}
    if op == "zero_padding1d":
        return {"padding": args}
    if op == "upsampling1d":
        return {"size": args[0]}
    return {}  # flatten


def _build_config(model: Model, node: Node) -> dict[str, Any] | None:
    """What Keras 3 writes as a layer's ``build_config`` (the shapes of its first call)."""
    layer = node.layer
    shapes = [
        [None, *model.nodes[r.node].output_shapes[r.index]]
        for r in node.inputs
        if r.index < len(model.nodes[r.node].output_shapes)
    ]
    if not shapes or (isinstance(layer, Plumbing) and layer.op == "reshape"):
        return None  # Keras writes none for Reshape
    if isinstance(layer, MultiHeadAttention):
        names = ("query_shape", "value_shape", "key_shape")
        return {"shapes_dict": dict(zip(names, shapes, strict=False))}
    if isinstance(layer, (Merge, Attention)):
        return {"input_shape": shapes}
    return {"input_shape": shapes[0]}


def _refuse(layer: Layer, where: str) -> None:
    """A time-major layer is written between transposes (``_time_major_ops``); one
    wrapped in another layer has no tensor of its own to transpose."""
    inner: list[Layer] = []
    if isinstance(layer, Bidirectional):
        inner = [layer.forward, layer.backward]
    if isinstance(layer, TimeDistributed):
        inner = [layer.layer]
    for one in inner:
        if isinstance(one, Recurrent) and one.time_major:
            raise UnsupportedLayerError(
                f"{where}: layer {layer.name!r} wraps a layer with time_major=True: Keras 3 "
                "has no time-major recurrent layers, and export transposes only around a "
                "layer of the model's own graph, so it cannot be exported to Keras 3"
            )


def _own_order(model: Model, order: list[Key]) -> list[Key]:
    """For ``.npz`` (read back by rnninspect only): the model's own layer order,
    which reads back to the same ``model.layers``; Keras's where a layer is missing
    from it (the layers of an inlined nested model)."""
    first: dict[int, int] = {}
    for i, node in enumerate(model.nodes):
        first.setdefault(id(node.layer), i)
    own = [layer for layer in model.layers if not isinstance(layer, InputLayer)]
    if {id(layer) for layer in own} != {
        id(n.layer) for n in model.nodes if not isinstance(n.layer, InputLayer)
    }:
        return order
    inputs: list[Key] = [
        k for k in order if isinstance(k, int) and isinstance(model.nodes[k].layer, InputLayer)
    ]
    return inputs + [first[id(layer)] for layer in own]


# -------------------------------------------------- what Keras 3 cannot say, rewritten


def _stateless(layer: Layer, notes: list[str]) -> Layer:
    def off(r: Any) -> Any:
        return dataclasses.replace(r, stateful=False) if getattr(r, "stateful", False) else r

    new: Layer = layer
    if isinstance(layer, Bidirectional):
        if layer.forward.stateful or layer.backward.stateful:
            new = dataclasses.replace(
                layer, forward=off(layer.forward), backward=off(layer.backward)
            )
    elif getattr(layer, "stateful", False):
        new = off(layer)
    if new is not layer:
        notes.append(
            f"layer {layer.name!r}: stateful=True written as stateful=False (Keras 3 needs a "
            "fixed batch size for it, and no file holds states: each call starts from zeros)"
        )
    return new


def _scaled(a: Array, cols: slice | None = None) -> Array:
    out = np.array(a, copy=True)
    target = out if cols is None else out[..., cols]
    target[...] = (target.astype(np.float64) * HARD_SIGMOID_SCALE).astype(a.dtype)
    return out


def _rewrite_hard_sigmoid(layer: Layer, done: list[str]) -> Layer:
    """The layer with Keras 1/2 ``hard_sigmoid`` expressed through Keras 3's, by
    scaling the pre-activation's weights by 6/5; or an error where no weights feed it."""
    hs = "hard_sigmoid"
    where = f"layer {layer.name!r}"
    if isinstance(layer, (Dense, Conv)) and layer.activation == hs:
        done.append(layer.name)
        bias = None if layer.bias is None else _scaled(layer.bias)
        return dataclasses.replace(layer, kernel=_scaled(layer.kernel), bias=bias)
    if isinstance(layer, TimeDistributed):
        inner = _rewrite_hard_sigmoid(layer.layer, done)
        return layer if inner is layer.layer else dataclasses.replace(layer, layer=inner)
    if isinstance(layer, Bidirectional):
        f = _rewrite_hard_sigmoid(layer.forward, done)
        b = _rewrite_hard_sigmoid(layer.backward, [])
        if f is layer.forward and b is layer.backward:
            return layer
        return dataclasses.replace(layer, forward=f, backward=b)  # type: ignore[arg-type]
    if isinstance(layer, StackedRNN):
        cells = [_rewrite_hard_sigmoid(c, done) for c in layer.cells]
        if all(a is b for a, b in zip(cells, layer.cells, strict=True)):
            return layer
        return dataclasses.replace(layer, cells=cells)  # type: ignore[arg-type]
    if isinstance(layer, (Recurrent, ConvLSTM)):
        return _rewrite_recurrent(layer, where, done)
    if isinstance(layer, Activation) and layer.activation == hs:
        raise UnsupportedLayerError(
            f"{where}: Activation('hard_sigmoid') of Keras 1/2 computes clip(0.2x + 0.5), "
            "which no Keras 3 activation does, and no weights feed it to rescale: "
            "it cannot be exported to Keras 3 (export to .npz keeps it)"
        )
    return layer


def _rewrite_recurrent(layer: Recurrent | ConvLSTM, where: str, done: list[str]) -> Layer:
    hs = "hard_sigmoid"
    gates = 4 if isinstance(layer, (LSTM, ConvLSTM)) else 3 if isinstance(layer, GRU) else 1
    width = int(layer.kernel.shape[-1]) // gates
    blocks: list[slice] = []
    rec_act = getattr(layer, "recurrent_activation", None)
    if gates == 1 and layer.activation == hs:
        blocks.append(slice(0, width))
    if gates == 4:
        if layer.activation == hs:
            raise UnsupportedLayerError(
                f"{where}: an LSTM whose activation is Keras 1/2 hard_sigmoid (applied to "
                "the cell state, which no weights feed) cannot be exported to Keras 3"
            )
        if rec_act == hs:  # i, f, o
            blocks += [slice(0, 2 * width), slice(3 * width, 4 * width)]
    if gates == 3:
        if rec_act == hs:  # z, r
            blocks.append(slice(0, 2 * width))
        if layer.activation == hs:  # the candidate's whole pre-activation
            blocks.append(slice(2 * width, 3 * width))
    if not blocks:
        return layer
    kernel, rec, bias = layer.kernel, layer.recurrent_kernel, layer.bias
    for cols in blocks:
        kernel, rec = _scaled(kernel, cols), _scaled(rec, cols)
        bias = None if bias is None else _scaled(bias, cols)
    done.append(layer.name)
    return dataclasses.replace(layer, kernel=kernel, recurrent_kernel=rec, bias=bias)


# -------------------------------------------------------------------------- writers


def _atomic(path: Path) -> Any:
    from .outputs import atomic

    return atomic(path)


def _now() -> float:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return float(epoch) if epoch.isdigit() else time.time()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, indent=4).encode()


def weights_h5_bytes(plan: Plan) -> bytes:
    """The Keras 3 weights file (``model.weights.h5`` / ``save_weights``) in memory."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w", track_order=False) as h5:
        for group_path, label, arrays in plan.weight_paths():
            group = h5.require_group(group_path)
            group.attrs["name"] = label
            for k, a in enumerate(arrays):
                group.create_dataset(str(k), data=np.asarray(a), track_times=False)
    return buf.getvalue()


def write_keras(plan: Plan, path: Path) -> None:
    """A ``.keras`` zip: ``metadata.json``, ``config.json``, ``model.weights.h5``."""
    from . import __version__

    stamp = time.strftime("%Y-%m-%d@%H:%M:%S", time.gmtime(_now()))
    meta = {
        "keras_version": templates()["keras_version"],
        "date_saved": stamp,
        "exported_by": f"rnninspect {__version__} from {plan.model.source.path.name}",
    }
    members = [
        ("metadata.json", _json(meta)),
        ("config.json", _json(plan.config())),
        ("model.weights.h5", weights_h5_bytes(plan)),
    ]
    with _atomic(path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def npz_arrays(plan: Plan) -> dict[str, Array]:
    """``<layer>/<weight>`` for every weight, in Keras's layer and weight order."""
    out: dict[str, Array] = {}
    for layer in plan.layers:
        for weight, a in plan.written[id(layer)].weights():
            out[f"{plan.name(layer)}/{weight}"] = np.asarray(a)
    return out


def write_npz(model: Model, path: Path) -> list[str]:
    """The layer-qualified ``.npz``: ``<layer>/<weight>`` keys and ``__config__``,
    the model's own semantics (its Keras generation kept as ``keras_version``)."""
    plan = Plan(model, keras3=False)
    config = plan.config()
    if model.source.keras_version:
        config["keras_version"] = model.source.keras_version
    arrays: dict[str, Array] = {"__config__": np.asarray(json.dumps(config))}
    arrays.update(npz_arrays(plan))
    _write_npz(path, arrays)
    return plan.notes


def _write_npz(path: Path, arrays: dict[str, Array]) -> None:
    with _atomic(path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for key, a in arrays.items():
            data = io.BytesIO()
            np.lib.format.write_array(data, np.asarray(a), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data.getvalue())


def write_notebook_npz(model: Model, path: Path) -> None:
    """``Wx, Wh, bh, Wo, bo``: the notebook's names, for Input -> SimpleRNN -> Dense."""
    layers = [n.layer for n in model.nodes[1:]]
    ok = (
        len(model.inputs) == 1
        and model.is_chain
        and len(layers) == 2
        and isinstance(layers[0], SimpleRNN)
        and isinstance(layers[1], Dense)
    )
    why = ""
    if ok:
        rnn, dense = layers[0], layers[1]
        assert isinstance(rnn, SimpleRNN) and isinstance(dense, Dense)
        if rnn.activation != "tanh" or dense.activation != "linear":
            why = "its activations are not tanh (SimpleRNN) and linear (Dense)"
        elif rnn.return_sequences or rnn.go_backwards or rnn.stateful:
            why = "its SimpleRNN returns sequences or runs backwards"
        elif (rnn.bias is None) != (dense.bias is None):
            why = "one of its layers has a bias and the other not"
    else:
        kinds = " -> ".join(layer.class_name for layer in layers) or "no layers"
        why = f"it is {kinds}"
    if why:
        raise UsageError(
            f"--names notebook needs the notebook's model, Input -> SimpleRNN(tanh) -> "
            f"Dense(linear); {model.source.path}: {why} (use --names keras)"
        )
    rnn, dense = layers[0], layers[1]
    assert isinstance(rnn, SimpleRNN) and isinstance(dense, Dense)
    arrays = {"Wx": rnn.kernel, "Wh": rnn.recurrent_kernel}
    if rnn.bias is not None:
        arrays["bh"] = rnn.bias
    arrays["Wo"] = dense.kernel
    if dense.bias is not None:
        arrays["bo"] = dense.bias
    _write_npz(path, arrays)
