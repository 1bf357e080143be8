"""The model's graph run once in float64 with everything kept (a tape), and reverse
mode back through it: the exact derivative of the first output with respect to each
input step, by the chain rule, node by node.

Forward values of the layers differentiated here are computed here (the recurrent
ones by ``cells.run_cell``, which keeps every gate); any other layer is run by the
engine's own ``apply`` in float64, and reverse mode stops at it with a
``NotDifferentiableError`` naming it. Cotangents carry a P axis after N (P output entries
at a time): a node's backward maps its outputs' cotangents (N, P, *shape) to its
inputs' and initial states'.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import _Ctx, apply, conform_rows, merge_directions
from ..errors import RnnInspectError
from ..model import (
    Activation,
    Array,
    Bidirectional,
    Dense,
    Embedding,
    InputLayer,
    Masking,
    Merge,
    Model,
    Node,
    Passthrough,
    Plumbing,
    Recurrent,
    Ref,
    StackedRNN,
    TimeDistributed,
)
from ..versions import keras_major
from . import derivatives
from .cells import CellRun, cell_vjp, run_cell

F64 = np.float64
Grads = list["Array | None"]
# outputs' cotangents -> (inputs' cotangents, initial states' cotangents)
Backward = Callable[[Grads], tuple[Grads, Grads]]

# Cotangent elements held at once (N * P * the largest tensor's per-sample size).
CHUNK_ELEMENTS = 1 << 23
# Reverse mode costs about N * P * sum(T * S * (S + D)) multiply-adds over the
# recurrent runs for P output entries; past this budget it is refused (a long
# sequence-to-sequence model: P = T * K entries, each walking all T steps back).
SENSITIVITY_BUDGET = 2e10


class TooCostlyError(RnnInspectError):
    """Exact reverse mode would take longer than the budget allows."""


class NotDifferentiableError(RnnInspectError):
    """Reverse mode met a layer it does not differentiate."""

    def __init__(self, node: Node, why: str = "") -> None:
        self.node = node
        cls = node.layer.class_name
        super().__init__(f"not available for layer {node.key!r} ({cls}{': ' + why if why else ''})")


@dataclass
class Unit:
    """One recurrent run inside a node: a layer, a Bidirectional direction
    (``NAME/forward``, ``NAME/backward``) or a stacked cell (``NAME/cell_k``)."""

    key: str
    node: Node
    run: CellRun


@dataclass
class Tape:
    model: Model
    major: int
    inputs: list[Array]  # as given to the graph (float64, or integer ids)
    values: dict[Ref, Array] = field(default_factory=dict)
    masks: dict[Ref, Array | None] = field(default_factory=dict)
    backward: dict[int, Backward] = field(default_factory=dict)  # node index -> its VJP
    refused: dict[int, str] = field(default_factory=dict)  # node index -> why not
    units: list[Unit] = field(default_factory=list)
    skipped: list[Node] = field(default_factory=list)  # recurrent nodes not run here

    def output(self, index: int = 0) -> Array:
        return self.values[self.model.outputs[index]]


def record(model: Model, x: Any) -> Tape:
    """Run ``model`` on ``x`` (as ``Model.forward`` takes it) in float64, keeping
    every tensor, mask and recurrent run."""
    xs = [a if a.dtype.kind in "iu" else a.astype(F64) for a in conform_rows(model, x)]
    major = keras_major(model.source.keras_version)
    tape = Tape(model, major, xs)
    ctx = _Ctx(np.dtype(F64), major, None, False)
    position = {id(layer): k for k, layer in enumerate(model.inputs)}
    with np.errstate(all="ignore"):
        for i, node in enumerate(model.nodes):
            if isinstance(node.layer, InputLayer):
                outs: list[Array] = [xs[position[id(node.layer)]]]
                masks: list[Array | None] = [None]
            else:
                ins = [tape.values[r] for r in node.inputs]
                in_masks = [tape.masks[r] for r in node.inputs]
                states = [tape.values[r] for r in node.states]
                own = _forward(tape, i, node, ins, in_masks, states)
                if own is None:
                    outs, masks = apply(node, ins, in_masks, states, ctx)
                    outs = [o if o.dtype.kind in "iub" else o.astype(F64) for o in outs]
                    if _is_recurrent(node):
                        tape.skipped.append(node)
                else:
                    outs, masks = own
            for j, out in enumerate(outs):
                tape.values[Ref(i, j)] = out
                tape.masks[Ref(i, j)] = masks[j]
    return tape


def _is_recurrent(node: Node) -> bool:
    from ..model import is_recurrent

    return is_recurrent(node.layer)


Outs = tuple[list[Array], list["Array | None"]]


def _forward(
    tape: Tape,
    i: int,
    node: Node,
    xs: list[Array],
    masks: list[Array | None],
    states: list[Array],
) -> Outs | None:
    """The node's outputs, with its backward registered; None: the engine runs it."""
    layer = node.layer
    x = xs[0] if xs else None
    mask = masks[0] if masks else None
    major = tape.major
    inner = layer.layer if isinstance(layer, TimeDistributed) else layer
    if isinstance(layer, Embedding):
        assert x is not None
        ids = x.astype(np.intp)  # (N, T)
        tape.backward[i] = lambda gs: ([None], [])  # ids have no derivative; see sources
        return [layer.embeddings.astype(F64)[ids]], [(ids != 0) if layer.mask_zero else mask]
    if isinstance(layer, Masking):
        assert x is not None
        keep = np.any(x != layer.mask_value, axis=-1)  # (N, T)
        w = keep[..., None].astype(F64)  # (N, T, 1)
        tape.backward[i] = lambda gs: ([None if gs[0] is None else gs[0] * w[:, None]], [])
        return [x * w], [keep]
    if isinstance(inner, Dense) and x is not None and x.dtype.kind == "f":
        W = inner.kernel.astype(F64)  # (F, K)
        u = x @ W  # (N, ..., K)
        if inner.bias is not None:
            u = u + inner.bias.astype(F64)
        y = _act(inner.activation, major)(u)
        name = inner.activation

        def dense_back(gs: Grads) -> tuple[Grads, Grads]:
            g = gs[0]
            if g is None:
                return [None], []
            return [derivatives.right(name, major, u, y, g) @ W.T], []  # (N, P, ..., F)

        tape.backward[i] = dense_back
        return [y], [mask]
    if isinstance(inner, Activation) and x is not None:
        name = inner.activation
        y = _act(name, major)(x)
        tape.backward[i] = lambda gs: (
            [None if gs[0] is None else derivatives.right(name, major, x, y, gs[0])],
            [],
        )
        return [y], [mask]
    if isinstance(inner, Passthrough) and x is not None:
        tape.backward[i] = lambda gs: ([gs[0]], [])
        return [x], [mask]
    if isinstance(layer, TimeDistributed):
        tape.refused[i] = f"TimeDistributed({inner.class_name}) is not differentiated"
        return None
    if isinstance(layer, Recurrent | Bidirectional | StackedRNN):
        assert x is not None
        cells = (
            [layer.forward, layer.backward]
            if isinstance(layer, Bidirectional)
            else (layer.cells if isinstance(layer, StackedRNN) else [layer])
        )
        if any(getattr(c, "time_major", False) for c in cells):
            tape.refused[i] = "time_major layers are not differentiated"
            return None
        if states and major >= 3 and mask is not None:
            # Keras 3 runs a call with initial states unmasked; its output still
            # carries the mask on (as the engine does).
            outs, out_masks = _states_layer(tape, i, node, layer, x, None, states)
            if getattr(layer, "return_sequences", False):
                out_masks[0] = mask
            return outs, out_masks
        return _states_layer(tape, i, node, layer, x, mask, states)
    if isinstance(layer, Merge):
        _merge_backward(tape, i, node, xs, masks)
        return None
    if isinstance(layer, Plumbing) and x is not None:
        _plumbing_backward(tape, i, node, x)
        return None
    tape.refused[i] = ""
    return None


def _states_layer(
    tape: Tape,
    i: int,
    node: Node,
    layer: Recurrent | Bidirectional | StackedRNN,
    x: Array,
    mask: Array | None,
    states: list[Array],
) -> Outs:
    if isinstance(layer, Recurrent):
        return _recurrent(tape, i, node, layer, x, mask, states)
    if isinstance(layer, Bidirectional):
        return _bidirectional(tape, i, node, layer, x, mask, states)
    return _stacked(tape, i, node, layer, x, mask, states)


def _act(name: str, major: int) -> Callable[[Array], Array]:
    from .. import activations

    return activations.get(name, major)


def _recurrent(
    tape: Tape,
    i: int,
    node: Node,
    layer: Recurrent,
    x: Array,
    mask: Array | None,
    states: list[Array],
) -> Outs:
    run = run_cell(layer, x, mask, tape.major, states or None)
    tape.units.append(Unit(node.key, node, run))
    outs = [run.seq() if layer.return_sequences else run.last()]
    out_masks: list[Array | None] = [mask if layer.return_sequences else None]
    if layer.return_state:
        outs += run.finals()
        out_masks += [None] * layer.STATES

    def back(gs: Grads) -> tuple[Grads, Grads]:
        g_seq = gs[0] if layer.return_sequences else None
        g_last = None if layer.return_sequences else gs[0]
        g_finals = list(gs[1:]) if layer.return_state else []
        if g_seq is None and g_last is None and not any(g is not None for g in g_finals):
            return [None], [None] * len(node.states)
        gx, inits = cell_vjp(run, g_seq, g_last, g_finals)
        return [gx], list(inits[: len(node.states)])

    tape.backward[i] = back
    return outs, out_masks


def _bidirectional(
    tape: Tape,
    i: int,
    node: Node,
    layer: Bidirectional,
    x: Array,
    mask: Array | None,
    states: list[Array],
) -> Outs:
    n_f = layer.forward.STATES
    f = run_cell(layer.forward, x, mask, tape.major, states[:n_f] or None)
    b = run_cell(layer.backward, x, mask, tape.major, states[n_f:] or None)
    tape.units.append(Unit(f"{node.key}/forward", node, f))
    tape.units.append(Unit(f"{node.key}/backward", node, b))
    seqs = layer.return_sequences
    fa, ba = (f.seq(), b.seq()[:, ::-1]) if seqs else (f.last(), b.last())
    outs = merge_directions(layer.merge_mode, fa, ba)
    out_masks: list[Array | None] = [mask if seqs else None] * len(outs)
    merged = len(outs)
    if layer.return_state:
        outs += f.finals() + b.finals()
        out_masks += [None] * (len(f.finals()) + len(b.finals()))
    Mf = layer.forward.units
    mode = layer.merge_mode

    def back(gs: Grads) -> tuple[Grads, Grads]:
        heads = gs[:merged]
        gf: Array | None
        gb: Array | None
        if mode is None:
            gf, gb = heads[0], heads[1]
        elif heads[0] is None:
            gf = gb = None
        else:
            gm = heads[0]
            if mode == "concat":
                gf, gb = gm[..., :Mf], gm[..., Mf:]
            elif mode == "sum":
                gf, gb = gm, gm
            elif mode == "ave":
                gf, gb = gm / 2, gm / 2
            else:  # mul
                gf, gb = gm * ba[:, None], gm * fa[:, None]
        finals = gs[merged:]
        gx: Array | None = None
        inits: Grads = []
        for run, g, fin in ((f, gf, finals[:n_f]), (b, gb, finals[n_f:])):
            if g is not None and seqs:
                g_seq, g_last = (g if run is f else g[:, :, ::-1]), None
            else:
                g_seq, g_last = None, g
            fin = list(fin) or [None] * run.layer.STATES
            if g_seq is None and g_last is None and all(v is None for v in fin):
                inits += [None] * run.layer.STATES
                continue
            part, init = cell_vjp(run, g_seq, g_last, fin)
            gx = part if gx is None else gx + part
            inits += init
        return [gx], inits[: len(node.states)]

    tape.backward[i] = back
    return outs, out_masks


def _stacked(
    tape: Tape,
    i: int,
    node: Node,
    layer: StackedRNN,
    x: Array,
    mask: Array | None,
    states: list[Array],
) -> Outs:
    if layer.go_backwards:  # every cell processes the steps last to first
        x = x[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    runs: list[CellRun] = []
    given = list(states)
    seq = x
    for k, cell in enumerate(layer.cells):
        run = run_cell(cell, seq, mask, tape.major, given[: cell.STATES] or None)
        given = given[cell.STATES :]
        runs.append(run)
        tape.units.append(Unit(f"{node.key}/cell_{k}", node, run))
        seq = run.seq()
    last = runs[-1]
    outs = [seq if layer.return_sequences else last.last()]
    out_mask = mask if layer.return_sequences else None
    if layer.go_backwards and layer.return_sequences and mask is not None:
        out_mask = mask[:, ::-1]
    out_masks: list[Array | None] = [out_mask]
    if layer.return_state:
        for run in runs:
            outs += run.finals()
            out_masks += [None] * run.layer.STATES

    def back(gs: Grads) -> tuple[Grads, Grads]:
        finals = list(gs[1:]) if layer.return_state else []
        per_cell: list[Grads] = []
        for run in runs:
            n = run.layer.STATES
            per_cell.append(finals[:n] or [None] * n)
            finals = finals[n:]
        g_seq = gs[0] if layer.return_sequences else None
        g_last = None if layer.return_sequences else gs[0]
        inits_rev: list[Grads] = []
        g_in: Array | None = None
        for k in range(len(runs) - 1, -1, -1):
            run = runs[k]
            fin = per_cell[k]
            if g_seq is None and g_last is None and all(v is None for v in fin):
                inits_rev.append([None] * run.layer.STATES)
                g_in = None
            else:
                g_in, init = cell_vjp(run, g_seq, g_last, fin)
                inits_rev.append(list(init))
            g_seq, g_last = g_in, None
        if g_in is not None and layer.go_backwards:
            g_in = g_in[:, :, ::-1]
        inits = [g for part in reversed(inits_rev) for g in part]
        return [g_in], inits[: len(node.states)]

    tape.backward[i] = back
    return outs, out_masks


def _merge_backward(
    tape: Tape, i: int, node: Node, xs: list[Array], masks: list[Array | None]
) -> None:
    """Merges of equally shaped inputs (Add, Subtract, Average, Multiply without
    masks) and Concatenate of inputs of one rank."""
    layer = node.layer
    assert isinstance(layer, Merge)
    n = len(xs)
    same = all(a.shape == xs[0].shape for a in xs)
    mode = layer.mode
    if mode in ("add", "subtract", "average") and same:
        signs = [1.0 / n if mode == "average" else 1.0] * n
        if mode == "subtract":
            signs = [1.0, -1.0]
        tape.backward[i] = lambda gs: (
            [None if gs[0] is None else gs[0] * s for s in signs],
            [],
        )
        return
    if mode == "multiply" and same and all(m is None for m in masks):
        xs64 = [a.astype(F64) for a in xs]

        def mul_back(gs: Grads) -> tuple[Grads, Grads]:
            g = gs[0]
            if g is None:
                return [None] * n, []
            out: Grads = []
            for k in range(n):
                others = np.ones_like(xs64[0])
                for j, a in enumerate(xs64):
                    if j != k:
                        others = others * a
                out.append(g * others[:, None])
            return out, []

        tape.backward[i] = mul_back
        return
    if mode == "concatenate" and all(a.ndim == xs[0].ndim for a in xs):
        axis = layer.axis % xs[0].ndim  # on (N, ...); +1 with the P axis
        bounds = np.cumsum([a.shape[axis] for a in xs])[:-1]
        tape.backward[i] = lambda gs: (
            [None] * n if gs[0] is None else list(np.split(gs[0], bounds, axis=axis + 1)),
            [],
        )
        return
    tape.refused[i] = f"{mode} of these inputs is not differentiated"


def _plumbing_backward(tape: Tape, i: int, node: Node, x: Array) -> None:
    """The sequence plumbing layers are linear: their backward moves entries back."""
    layer = node.layer
    assert isinstance(layer, Plumbing)
    op, args = layer.op, layer.args
    shape = x.shape[1:]  # per sample

    def back(gs: Grads) -> tuple[Grads, Grads]:
        g = gs[0]
        if g is None:
            return [None], []
        N, P = g.shape[:2]
        if op == "repeat_vector":
            return [g.sum(axis=2)], []
        if op in ("flatten", "reshape"):
            return [g.reshape(N, P, *shape)], []
        if op == "permute":
            inverse = np.argsort([0, 1, *(d + 1 for d in args)])
            return [np.transpose(g, inverse)], []
        if op == "cropping1d":
            pads = [(0, 0), (0, 0), (args[0], args[1])] + [(0, 0)] * (g.ndim - 3)
            return [np.pad(g, pads)], []
        if op == "zero_padding1d":
            return [g[:, :, args[0] : g.shape[2] - args[1]]], []
        size = args[0]  # upsampling1d: every step repeated size times
        return [g.reshape(N, P, shape[0], size, *shape[1:]).sum(axis=3)], []

    tape.backward[i] = back


# ------------------------------------------------------------------ reverse mode


def _ancestors(model: Model, ref: Ref) -> list[int]:
    """Indices of the nodes ``ref`` depends on (itself included), in graph order."""
    seen: set[int] = set()
    stack = [ref.node]
    while stack:
        k = stack.pop()
        if k in seen:
            continue
        seen.add(k)
        node = model.nodes[k]
        stack.extend(r.node for r in node.inputs + node.states)
    return sorted(seen)


def sensitivity_cost(tape: Tape, output: int = 0) -> float:
    """About how many multiply-adds ``input_sensitivity`` takes."""
    y = tape.values[tape.model.outputs[output]]
    P = math.prod(int(d) for d in y.shape[1:])
    per = sum(u.run.steps * u.run.width * (u.run.width + int(u.run.x.shape[2])) for u in tape.units)
    return float(int(y.shape[0]) * P * max(per, 1))


def input_sensitivity(
    tape: Tape, output: int = 0, budget: float | None = SENSITIVITY_BUDGET
) -> list[Array]:
    """For each model input, (N, T): the Frobenius norm of d y / d x_t per sample,
    y the model's output ``output`` (every entry of it), x_t the input's step t
    (for ids: the embedding vector the id looks up). Raises ``NotDifferentiableError``
    for a layer between the inputs and y that reverse mode does not cross, and
    ``TooCostlyError`` past ``budget`` multiply-adds (None: no limit)."""
    model = tape.model
    y_ref = model.outputs[output]
    order = _ancestors(model, y_ref)
    sources: dict[int, int] = {}  # node index reading ids -> model input position
    position = {id(layer): k for k, layer in enumerate(model.inputs)}
    for k in order:
        node = model.nodes[k]
        if isinstance(node.layer, InputLayer):
            continue
        if k not in tape.backward:
            raise NotDifferentiableError(node, tape.refused.get(k, ""))
        for r in node.inputs + node.states:
            src = model.nodes[r.node]
            if (
                isinstance(src.layer, InputLayer)
                and tape.inputs[position[id(src.layer)]].dtype.kind in "iu"
            ):
                if not isinstance(node.layer, Embedding):
                    raise NotDifferentiableError(node, "it reads integer ids")
                sources[k] = position[id(src.layer)]
    cost = sensitivity_cost(tape, output)
    if budget is not None and cost > budget:
        raise TooCostlyError(
            f"skipped: exact reverse mode over {math.prod(tape.values[y_ref].shape[1:]):,} "
            f"output entries would take about {cost:.2g} multiply-adds (budget {budget:.2g}); "
            f"diagnose fewer samples or a shorter input"
        )
    y = tape.values[y_ref]
    N = int(y.shape[0])
    P_total = math.prod(int(d) for d in y.shape[1:])
    widest = max(math.prod(int(d) for d in v.shape[1:]) for v in tape.values.values())
    chunk = max(1, min(P_total, CHUNK_ELEMENTS // max(1, N * widest)))
    sums: list[Array | None] = [None] * len(model.inputs)
    for p0 in range(0, P_total, chunk):
        pc = min(chunk, P_total - p0)
        seed = np.zeros((N, pc, P_total))
        seed[:, np.arange(pc), p0 + np.arange(pc)] = 1.0
        cot: dict[Ref, Array] = {y_ref: seed.reshape(N, pc, *y.shape[1:])}
        for k in reversed(order):
            node = model.nodes[k]
            gs: Grads = [cot.pop(Ref(k, j), None) for j in range(_outputs(tape, k))]
            if all(g is None for g in gs):
                continue
            if isinstance(node.layer, InputLayer):
                g = gs[0]
                assert g is not None
                _accumulate(sums, position[id(node.layer)], g)
                continue
            if k in sources:
                g = gs[0]
                assert g is not None
                _accumulate(sums, sources[k], g)
                continue
            g_in, g_states = tape.backward[k](gs)
            for r, g in zip(node.inputs + node.states, [*g_in, *g_states], strict=False):
                if g is not None:
                    cot[r] = g if r not in cot else cot[r] + g
    return [np.zeros((N, 1)) if s is None else np.sqrt(s) for s in sums]


def _outputs(tape: Tape, k: int) -> int:
    j = 0
    while Ref(k, j) in tape.values:
        j += 1
    return j


def _accumulate(sums: list[Array | None], index: int, g: Array) -> None:
    """Add the squared entries of ``g`` (N, P, T, ...) per sample and step."""
    sq = g * g
    if sq.ndim == 2:  # (N, P): a per-sample scalar input
        part = sq.sum(axis=1)[:, None]
    elif sq.ndim == 3:  # (N, P, D): no time axis, one "step"
        part = sq.sum(axis=(1, 2))[:, None]
    else:
        part = sq.sum(axis=(1, *range(3, sq.ndim)))  # (N, T)
    sums[index] = part if sums[index] is None else sums[index] + part
