"""Recurrent states in and out of a run: start layers from given states
(``initial_state``), and hand back the states each layer ends with, so a sequence can
be run in pieces (or a stream one chunk at a time) with the state carried over.

The layout, for ``--initial-state`` / ``--final-state`` ``.npz`` files and the API
alike, is one (N, ...) array per state, keyed by the layer's trace key:

    <layer>/h, <layer>/c              SimpleRNN, GRU: h; LSTM, ConvLSTM: h and c
    <layer>/forward/h, .../backward/h  a Bidirectional's two directions (and /c)
    <layer>/cell_0/h, ...             RNN(StackedRNNCells): each cell's states
    <layer>#1/h                       a shared layer's second call

A key left out starts from zeros, as Keras does. A layer whose initial state is
already a tensor of the graph (``layer(x, initial_state=...)`` in the model) takes no
key. The final states are what ``return_state=True`` returns: after the last
processed step (for a ``go_backwards`` direction the first input step), kept through
masked steps.

Carrying the final states of one piece into the next equals one pass over the whole
sequence for every layer that runs forwards. A ``go_backwards`` layer and a
Bidirectional's backward direction run each piece last step first, so carried across
pieces they compute what a Keras ``stateful=True`` layer fed the same pieces computes
(each direction continues from where it stopped in the previous piece), not one pass.

The run itself is the engine's, unchanged: the model is rewritten so the states are
extra inputs feeding its ``initial_state`` edges and the final states extra outputs
(``return_state``), which the engine already computes.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputArrayError
from .model import (
    Array,
    Bidirectional,
    ConvLSTM,
    InputLayer,
    Layer,
    Model,
    Node,
    Recurrent,
    Ref,
    Shape,
    StackedRNN,
    is_recurrent,
)


def _names(layer: Recurrent | ConvLSTM) -> list[str]:
    return ["h", "c"][: 2 if isinstance(layer, ConvLSTM) else layer.STATES]


def _state_shapes(model: Model, node: Node) -> list[Shape]:
    """Per-sample shapes of the node's states, in ``initial_state`` order."""
    from .shapes import output_shapes

    probe = dataclasses.replace(node, layer=_returning_state(node.layer))
    ins = [model.nodes[r.node].output_shapes[r.index] for r in node.inputs]
    shapes = output_shapes(probe, ins, str(model.source.path))
    return shapes[len(shapes) - _count(node.layer) :]


def _count(layer: Layer) -> int:
    if isinstance(layer, Recurrent):
        return layer.STATES
    if isinstance(layer, ConvLSTM):
        return 2
    if isinstance(layer, Bidirectional):
        return layer.forward.STATES + layer.backward.STATES
    if isinstance(layer, StackedRNN):
        return sum(c.STATES for c in layer.cells)
    return 0


def state_names(node: Node) -> list[str]:
    """The node's state keys, in the order the layer takes ``initial_state``."""
    layer, key = node.layer, node.key
    if isinstance(layer, (Recurrent, ConvLSTM)):
        return [f"{key}/{n}" for n in _names(layer)]
    if isinstance(layer, Bidirectional):
        return [
            f"{key}/{d}/{n}"
            for d, part in (("forward", layer.forward), ("backward", layer.backward))
            for n in _names(part)
        ]
    if isinstance(layer, StackedRNN):
        return [f"{key}/cell_{i}/{n}" for i, c in enumerate(layer.cells) for n in _names(c)]
    return []


def layout(model: Model) -> dict[str, Shape]:
    """Every state key the model takes or gives, with its per-sample shape."""
    out: dict[str, Shape] = {}
    for node in model.recurrent_nodes():
        out.update(zip(state_names(node), _state_shapes(model, node), strict=True))
    return out


def _returning_state(layer: Layer) -> Layer:
    """The layer with ``return_state=True`` (its states become outputs)."""
    if isinstance(layer, Bidirectional):
        if layer.return_state:
            return layer
        return dataclasses.replace(
            layer,
            forward=dataclasses.replace(layer.forward, return_state=True),
            backward=dataclasses.replace(layer.backward, return_state=True),
        )
    if isinstance(layer, (Recurrent, StackedRNN, ConvLSTM)) and not layer.return_state:
        return dataclasses.replace(layer, return_state=True)
    return layer


@dataclass
class Rewired:
    """A model whose states are inputs and outputs (see ``rewire``)."""

    model: Model
    feeds: list[str]  # the state keys fed, in the order of the extra inputs
    shapes: dict[str, Shape]  # per-sample shape of every fed key
    finals: list[str]  # the state keys of the extra outputs, in order
    n_outputs: int  # the original model's outputs come first


def rewire(model: Model, feed: set[str], finals: bool) -> Rewired:
    """``model`` with the states of the nodes named in ``feed`` (node keys) taken
    from extra inputs, and (``finals``) every recurrent node's final states added
    to its outputs."""
    n_in = len(model.inputs)
    recurrent = [i for i, n in enumerate(model.nodes) if is_recurrent(n.layer)]
    feeds: list[str] = []
    shapes: dict[str, Shape] = {}
    extra: list[InputLayer] = []
    fed: dict[int, list[int]] = {}  # node position -> positions of its state inputs
    for i in recurrent:
        node = model.nodes[i]
        if node.key not in feed:
            continue
        for key, shape in zip(state_names(node), _state_shapes(model, node), strict=True):
            fed.setdefault(i, []).append(n_in + len(extra))
            extra.append(InputLayer(name=key, shape=shape))
            feeds.append(key)
            shapes[key] = shape
    shift = len(extra)

    def moved(r: Ref) -> Ref:
        return r if r.node < n_in else Ref(r.node + shift, r.index)

    replaced: dict[int, Layer] = {}
    nodes = list(model.nodes[:n_in]) + [Node(layer=s, output_shapes=[s.shape]) for s in extra]
    out_refs = [moved(r) for r in model.outputs]
    final_keys: list[str] = []
    for i, node in enumerate(model.nodes[n_in:], start=n_in):
        layer = node.layer
        new = dataclasses.replace(
            node,
            inputs=[moved(r) for r in node.inputs],
            states=[moved(r) for r in node.states],
        )
        if i in fed:
            new.states = [Ref(p) for p in fed[i]]
            # Carried states continue a sequence (a stateful layer's next call), which
            # Keras runs with its mask, unlike an initial_state edge of the graph.
            new.options = {**node.options, "carried": True}
        if finals and i in recurrent:
            if id(layer) not in replaced:
                replaced[id(layer)] = _returning_state(layer)
            new.layer = replaced[id(layer)]
            states = _state_shapes(model, node)
            n_main = len(new.output_shapes) - (_count(layer) if _returns_state(layer) else 0)
            new.output_shapes = list(node.output_shapes[:n_main]) + states
            out_refs += [Ref(i + shift, n_main + j) for j in range(len(states))]
            final_keys += state_names(node)
        nodes.append(new)
    rewired = dataclasses.replace(
        model,
        layers=[replaced.get(id(layer), layer) for layer in model.layers],
        inputs=[*model.inputs, *extra],
        nodes=nodes,
        outputs=out_refs,
        output_names=[*model.output_names, *final_keys],
    )
    return Rewired(rewired, feeds, shapes, final_keys, len(model.outputs))


def _returns_state(layer: Layer) -> bool:
    return bool(getattr(layer, "return_state", False))


def check_states(
    model: Model, given: Mapping[str, Any], N: int, where: str = "initial state"
) -> dict[str, Array]:
    """The given states checked against the model: known keys, (N, ...) shapes,
    floats, and no key for a layer whose state is a graph tensor already."""
    known = layout(model)
    by_graph = {k for n in model.recurrent_nodes() if n.states for k in state_names(n)}
    out: dict[str, Array] = {}
    for key, value in given.items():
        if key not in known:
            raise InputArrayError(
                f"{where}: no state {key!r} in this model (its states: "
                f"{', '.join(known) or 'none'})"
            )
        if key in by_graph:
            raise InputArrayError(
                f"{where}: layer {key.rsplit('/', 1)[0]!r} takes its initial state from the "
                "model's graph; it cannot be given"
            )
        a = np.asarray(value)
        want = (N, *(int(d) for d in known[key] if d is not None))
        if a.dtype.kind not in "fiub" or a.shape != want:
            shown = "(N=" + str(N) + "".join(f", {d}" for d in want[1:]) + ")"
            raise InputArrayError(
                f"{where}: state {key!r} has shape {a.shape} dtype {a.dtype}; "
                f"the model needs floats shaped {shown}"
            )
        out[key] = a if a.dtype.kind == "f" else a.astype(np.float32)
    return out


def _node_of(key: str) -> str:
    """``lstm/forward/h`` -> ``lstm``; ``enc#1/c`` -> ``enc#1``."""
    return key.split("/", 1)[0]


def prepare(
    model: Model,
    x: Any,
    initial: Mapping[str, Any] | None,
    finals: bool,
    source: str = "initial state",
) -> tuple[Rewired, list[Any]]:
    """The rewired model and its inputs (``x``'s, then the fed states, zeros for
    keys left out of a layer that has some given)."""
    from .engine import as_inputs

    xs = as_inputs(model, x)
    first = np.asarray(xs[0]) if not hasattr(xs[0], "shape") else xs[0]
    N = int(first.shape[0]) if first.ndim == len(model.inputs[0].shape) + 1 else 1
    given = check_states(model, initial or {}, N, source)
    feed = {_node_of(k) for k in given}
    plan = rewire(model, feed, finals)
    extra = []
    for key in plan.feeds:
        shape = (N, *(int(d) for d in plan.shapes[key] if d is not None))
        value = given.get(key)
        extra.append(np.zeros(shape, dtype=np.float32) if value is None else value)
    return plan, [*xs, *extra]


def run(
    model: Model,
    x: Any,
    initial: Mapping[str, Any] | None = None,
    finals: bool = True,
    dtype: str = "float32",
    collect: bool = False,
    gates: bool = False,
) -> tuple[Any, dict[str, Array]]:
    """The engine's ``run`` from the given states: (its ``RunResult`` with the
    model's own outputs, the final states by key)."""
    from .engine import _concat

    results = [r for _, _, r in iter_chunks(model, x, initial, finals, dtype, collect, gates)]
    result = _concat([r for r, _ in results])
    ends = {k: np.concatenate([f[k] for _, f in results]) for k in results[0][1]}
    return result, ends


def iter_chunks(
    model: Model,
    x: Any,
    initial: Mapping[str, Any] | None = None,
    finals: bool = True,
    dtype: str = "float32",
    collect: bool = False,
    gates: bool = False,
    where: str = "input",
    source: str = "initial state",
    outputs_of: frozenset[str] = frozenset(),
) -> Iterator[tuple[int, int, tuple[Any, dict[str, Array]]]]:
    """``engine.iter_chunks`` from the given states, yielding for each chunk of
    samples ``(start, stop, (result, final states))``. ``source``: where the
    initial states came from, for error messages."""
    from .engine import iter_chunks as chunks

    plan, xs = prepare(model, x, initial, finals, source)
    feed = xs if len(xs) > 1 else xs[0]
    found = chunks(plan.model, feed, dtype, collect, gates, where=where, outputs_of=outputs_of)
    for start, stop, result in found:
        ends = dict(zip(plan.finals, result.outputs[plan.n_outputs :], strict=True))
        result.outputs = result.outputs[: plan.n_outputs]
        yield start, stop, (result, ends)


def read_states(path: str | Path) -> dict[str, Array]:
    """An ``--initial-state`` file: ``.npz`` of (N, ...) arrays keyed as above."""
    from . import npyfile

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputArrayError(f"{where}: no such state file")
    try:
        npyfile.check_zip_members(path)
    except npyfile.NpyHeaderError as exc:
        raise InputArrayError(f"{where}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise InputArrayError(f"{where}: not a readable .npz file ({exc})") from exc
    try:
        with npyfile.load(path) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except ValueError as exc:
        raise InputArrayError(
            f"{where}: holds Python objects (pickle) or is broken ({exc})"
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
        # BadZipFile: a member's name in the directory and its header differ, ...
        raise InputArrayError(f"{where}: not a readable .npz file ({exc})") from exc
