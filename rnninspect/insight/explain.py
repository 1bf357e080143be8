"""``explain``: each layer as the notebook writes it, and one step with its numbers.

Without a step: every layer's formula in the notebook's notation (``h_t =
tanh(x_t·Wx + h_{t-1}·Wh + bh)``, ``y = h_T·Wo + bo``) with the layer's own
activations, the NumPy line of the notebook's manual loop that computes it
(``h = np.tanh(x[t].dot(Wx) + h_last.dot(Wh) + bh)``), and its parameter count as
arithmetic in the summary's symbols (``D·M + M·M + M = 3·5 + 5·5 + 5 = 45``).

With a step: every term of that step of one recurrent layer for one sample, with its
values: the engine's own step (``ops.recurrent.scan``, in the engine's dtype) on the
step's input and previous states as the engine computed them, so ``h``, ``c`` and
the gates are ``trace``'s numbers bit for bit, and each gate is its activation of
its pre-activation exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import UsageError
from ..model import (
    GRU,
    LSTM,
    Activation,
    Array,
    Bidirectional,
    Dense,
    Embedding,
    InputLayer,
    Layer,
    Masking,
    Model,
    Node,
    Passthrough,
    Recurrent,
    Ref,
    SimpleRNN,
    StackedRNN,
    TimeDistributed,
)
from ..summary import LayerInfo, summarize


@dataclass
class LayerExplanation:
    name: str
    type: str
    formula: list[str]  # the equations, notebook notation
    code: list[str]  # the notebook loop's NumPy lines (empty when it has none)
    weights: dict[str, str]  # symbol -> "kernel (D,M) = (3, 5)"
    params: int
    params_arithmetic: str  # "D·M + M·M + M = 3·5 + 5·5 + 5 = 45"
    notes: list[str] = field(default_factory=list)


@dataclass
class Explanation:
    layers: list[LayerExplanation]
    total_params: int


@dataclass
class StepExplanation:
    layer: str  # NAME, or NAME/forward / NAME/backward
    type: str
    sample: int
    step: int  # processing step
    t: int  # the input index that step reads (T-1-step for go_backwards)
    masked: bool  # the step is masked: the states are kept
    terms: dict[str, Array]  # name -> (M,) or (D,) values, in the order of the equations
    labels: dict[str, str]  # name -> the term's formula
    formula: list[str]


# ------------------------------------------------------------------ notation


def _act_text(name: str, inner: str) -> str:
    return inner if name == "linear" else f"{name}({inner})"


def _np_act(name: str, inner: str) -> str:
    """The activation as the notebook's NumPy code writes it."""
    if name == "linear":
        return inner
    if name == "tanh":
        return f"np.tanh({inner})"
    if name == "relu":
        return f"np.maximum({inner}, 0)"
    return f"{name}({inner})"


def _wrap(sym: str) -> str:
    return sym if re.fullmatch(r"[A-Za-z]\w*", sym) else f"({sym})"


def _parts(symbol: str) -> list[str]:
    return [p for p in symbol.strip("()").split(",") if p]


def _suffix(sym: str) -> str:
    m = re.fullmatch(r"[A-Z](\d*)", sym)
    return m.group(1) if m else ""


@dataclass
class _Names:
    """What each tensor is called in the formulas: (name, is a sequence)."""

    of: dict[Ref, tuple[str, bool]] = field(default_factory=dict)


def _leaf_infos(model: Model) -> dict[str, LayerInfo]:
    out: dict[str, LayerInfo] = {}
    for top in summarize(model).layers:
        for info in top.layers or [top]:
            out[info.name] = info
    return out


def _dims(info: LayerInfo, prefix: str = "") -> tuple[str, int, str, int]:
    """(input symbol, D, unit symbol, M) of a layer from its weights' symbols."""
    kernel = next(w for w in info.weights if w.name == prefix + "kernel")
    x_sym = _parts(kernel.symbol)[0]
    rec = next((w for w in info.weights if w.name == prefix + "recurrent_kernel"), None)
    m_sym = _parts(rec.symbol)[0] if rec is not None else _parts(kernel.symbol)[-1]
    M = int(rec.shape[0]) if rec is not None else int(kernel.shape[-1])
    return x_sym, int(kernel.shape[0]), m_sym, M


def _recurrent_count(layer: Recurrent, X: str, D: int, Ms: str, M: int) -> tuple[str, str, int]:
    """(symbolic, numeric, total) parameter counts of one recurrent layer."""
    X = _wrap(X)
    bias = layer.bias is not None
    if isinstance(layer, GRU) and layer.reset_after and bias:
        sym_b, num_b, nb = f" + 2{Ms}", f" + 2·{M}", 2 * M
    elif bias:
        sym_b, num_b, nb = f" + {Ms}", f" + {M}", M
    else:
        sym_b, num_b, nb = "", "", 0
    inner_s = f"{X}·{Ms} + {Ms}·{Ms}{sym_b}"
    inner_n = f"{D}·{M} + {M}·{M}{num_b}"
    g = layer.GATES
    total = g * (D * M + M * M + nb)
    if g == 1:
        return inner_s, inner_n, total
    return f"{g}·({inner_s})", f"{g}·({inner_n})", total


def _recurrent_formula(layer: Recurrent, xin: str, s: str) -> tuple[list[str], list[str]]:
    """(equations, notebook NumPy lines) of one recurrent layer; ``s`` suffixes
    every name (``h1``, ``Wx1``) when the model has several."""
    act = layer.activation
    h, hp = f"h{s}_t", f"h{s}_{{t-1}}"
    x = f"{xin}_t"
    xc = f"{xin}[t]"
    if isinstance(layer, LSTM):
        ract = layer.recurrent_activation
        b = layer.bias is not None
        lines = []
        for g in "ifgo":
            a = act if g == "g" else ract
            bias = f" + b{s}_{g}" if b else ""
            lines.append(f"{g}{s}_t = {_act_text(a, f'{x}·Wx{s}_{g} + {hp}·Wh{s}_{g}{bias}')}")
        lines.append(f"c{s}_t = f{s}_t*c{s}_{{t-1}} + i{s}_t*g{s}_t")
        lines.append(f"{h} = o{s}_t*{_act_text(act, f'c{s}_t')}")
        bias = f" + b{s}" if b else ""
        code = [
            f"i, f, g, o = np.split({xc}.dot(Wx{s}) + h{s}_last.dot(Wh{s}){bias}, 4)",
            f"c{s} = {_np_act(ract, 'f')}*c{s}_last + {_np_act(ract, 'i')}*{_np_act(act, 'g')}",
            f"h{s} = {_np_act(ract, 'o')}*{_np_act(act, f'c{s}')}",
        ]
        return lines, code
    if isinstance(layer, GRU):
        ract = layer.recurrent_activation
        b = layer.bias is not None
        z, r = f"z{s}_t", f"r{s}_t"
        cand = f"ĥ{s}_t"
        if layer.reset_after:
            bx = {g: f" + bx{s}_{g}" if b else "" for g in "zrh"}
            bh = {g: f" + bh{s}_{g}" if b else "" for g in "zrh"}
            uz = f"{x}·Wx{s}_z{bx['z']} + {hp}·Wh{s}_z{bh['z']}"
            ur = f"{x}·Wx{s}_r{bx['r']} + {hp}·Wh{s}_r{bh['r']}"
            uh = f"{x}·Wx{s}_h{bx['h']} + {r}*({hp}·Wh{s}_h{bh['h']})"
            lines = [
                f"{z} = {_act_text(ract, uz)}",
                f"{r} = {_act_text(ract, ur)}",
                f"{cand} = {_act_text(act, uh)}",
            ]
            code = [
                f"xz, xr, xh = np.split({xc}.dot(Wx{s})" + (f" + bx{s}" if b else "") + ", 3)",
                f"hz, hr, hh = np.split(h{s}_last.dot(Wh{s})" + (f" + bh{s}" if b else "") + ", 3)",
                f"z, r = {_np_act(ract, 'xz + hz')}, {_np_act(ract, 'xr + hr')}",
                f"h{s} = z*h{s}_last + (1 - z)*{_np_act(act, 'xh + r*hh')}",
            ]
        else:
            bg = {g: f" + b{s}_{g}" if b else "" for g in "zrh"}
            uz = f"{x}·Wx{s}_z + {hp}·Wh{s}_z{bg['z']}"
            ur = f"{x}·Wx{s}_r + {hp}·Wh{s}_r{bg['r']}"
            uh = f"{x}·Wx{s}_h + ({r}*{hp})·Wh{s}_h{bg['h']}"
            lines = [
                f"{z} = {_act_text(ract, uz)}",
                f"{r} = {_act_text(ract, ur)}",
                f"{cand} = {_act_text(act, uh)}",
            ]
            code = [
                f"xz, xr, xh = np.split({xc}.dot(Wx{s})" + (f" + b{s}" if b else "") + ", 3)",
                f"Whz, Whr, Whh = np.split(Wh{s}, 3, axis=1)",
                f"z, r = {_np_act(ract, f'xz + h{s}_last.dot(Whz)')}, "
                f"{_np_act(ract, f'xr + h{s}_last.dot(Whr)')}",
                f"h{s} = z*h{s}_last + (1 - z)*{_np_act(act, f'xh + (r*h{s}_last).dot(Whh)')}",
            ]
        lines.append(f"{h} = {z}*{hp} + (1 - {z})*{cand}")
        return lines, code
    bias = f" + bh{s}" if layer.bias is not None else ""
    line = f"{h} = {_act_text(act, f'{x}·Wx{s} + {hp}·Wh{s}{bias}')}"
    step = f"h{s} = {_np_act(act, f'{xc}.dot(Wx{s}) + h{s}_last.dot(Wh{s}){bias}')}"
    return [line], [step]


def _recurrent_weights(
    layer: Recurrent, info: LayerInfo, s: str, prefix: str = ""
) -> dict[str, str]:
    by = {w.name: w for w in info.weights}
    order = {LSTM: "i | f | g | o (Keras's i, f, c, o)", GRU: "z | r | h"}
    cols = next((v for k, v in order.items() if isinstance(layer, k)), "")
    out: dict[str, str] = {}
    for name, sym in (("kernel", f"Wx{s}"), ("recurrent_kernel", f"Wh{s}")):
        w = by[prefix + name]
        out[sym] = f"{name} {w.symbol} = {w.shape}" + (f", columns {cols}" if cols else "")
    if prefix + "bias" in by:
        w = by[prefix + "bias"]
        if isinstance(layer, GRU) and layer.reset_after and w.value.ndim == 2:
            out[f"bx{s}"] = f"bias[0] (input bias) {w.symbol} = {w.shape}"
            out[f"bh{s}"] = "bias[1] (recurrent bias)"
        else:
            key = f"bh{s}" if isinstance(layer, SimpleRNN) else f"b{s}"
            out[key] = f"bias {w.symbol} = {w.shape}"
    return out


def explain(model: Model) -> Explanation:
    """Every layer's formula, notebook code line and parameter arithmetic."""
    infos = _leaf_infos(model)
    names: dict[Ref, tuple[str, bool]] = {}
    many = len(model.inputs) > 1
    for k, spec in enumerate(model.inputs):
        i = next(j for j, n in enumerate(model.nodes) if n.layer is spec)
        base = "id" if spec.dtype == "int32" else "x"
        names[Ref(i, 0)] = (f"{base}{k + 1}" if many else base, len(spec.shape) >= 1)
    done: set[int] = set()
    out: list[LayerExplanation] = []
    for i, node in enumerate(model.nodes):
        layer = node.layer
        if isinstance(layer, InputLayer):
            continue
        src = names.get(node.inputs[0], ("v", True)) if node.inputs else ("v", False)
        seq_out = len(node.output_shapes[0]) >= 2 if node.output_shapes else False
        info = infos.get(layer.name)
        exp, out_name = _explain_layer(model, node, layer, info, src, seq_out)
        names[Ref(i, 0)] = (out_name, seq_out)
        for j in range(1, len(node.output_shapes)):
            names[Ref(i, j)] = (f"{out_name}_state{j}", False)
        if id(layer) in done:
            continue  # a shared layer's next calls compute the same formula
        done.add(id(layer))
        out.append(exp)
    return Explanation(out, sum(e.params for e in out))


def _explain_layer(
    model: Model,
    node: Node,
    layer: Layer,
    info: LayerInfo | None,
    src: tuple[str, bool],
    seq_out: bool,
) -> tuple[LayerExplanation, str]:
    xin, x_seq = src

    def at(v: str) -> str:
        """The input as one step sees it: ``h_t`` of a sequence, ``h_T`` of a last state."""
        if x_seq:
            return f"{v}_t"
        return f"{v}_T" if v.startswith("h") else v

    params = info.params if info is not None else 0
    cls = layer.class_name
    inner = layer.layer if isinstance(layer, TimeDistributed) else layer
    if isinstance(inner, Recurrent) and info is not None:
        X, D, Ms, M = _dims(info)
        s = _suffix(Ms)
        lines, code = _recurrent_formula(inner, xin, s)
        state = "h_0 = 0" if isinstance(inner, (SimpleRNN, GRU)) else "h_0 = c_0 = 0"
        if node.states:
            state = "initial states from the graph (initial_state)"
        notes = [state.replace("h_0", f"h{s}_0").replace("c_0", f"c{s}_0")]
        if inner.go_backwards:
            notes.append("go_backwards: the steps run t = T-1, ..., 0")
        notes.append(
            f"returns h{s}_t at every step" if inner.return_sequences else f"returns h{s}_T"
        )
        sym, num, total = _recurrent_count(inner, X, D, Ms, M)
        return (
            LayerExplanation(
                layer.name,
                cls,
                lines,
                code,
                _recurrent_weights(inner, info, s),
                params,
                f"{sym} = {num} = {total}",
                notes,
            ),
            f"h{s}",
        )
    if isinstance(layer, Bidirectional) and info is not None:
        X, D, Ms, M = _dims(info, "forward/")
        s = _suffix(Ms)
        fl, _ = _recurrent_formula(layer.forward, xin, f"{s}f")
        bl, _ = _recurrent_formula(layer.backward, xin, f"{s}b")
        hf, hb = f"h{s}f", f"h{s}b"
        t = "_t" if layer.return_sequences else "_T"
        merged = {
            "concat": f"h{s}{t} = [{hf}{t}; {hb}{t}]",
            "sum": f"h{s}{t} = {hf}{t} + {hb}{t}",
            "ave": f"h{s}{t} = ({hf}{t} + {hb}{t})/2",
            "mul": f"h{s}{t} = {hf}{t}*{hb}{t}",
        }.get(str(layer.merge_mode), f"two outputs: {hf}{t}, {hb}{t}")
        sf, nf, tf = _recurrent_count(layer.forward, X, D, Ms, M)
        sb, nb, tb = _recurrent_count(layer.backward, X, D, Ms, M)
        if sf == sb and nf == nb:
            arith = f"2·{_paren(sf)} = 2·{_paren(nf)} = {tf + tb}"
        else:
            arith = f"{sf} + {sb} = {nf} + {nb} = {tf + tb}"
        weights = {
            **{
                k: "forward/" + v
                for k, v in _recurrent_weights(layer.forward, info, s + "f", "forward/").items()
            },
            **{
                k: "backward/" + v
                for k, v in _recurrent_weights(layer.backward, info, s + "b", "backward/").items()
            },
        }
        notes = [
            "forward: t = 0, ..., T-1; backward: t = T-1, ..., 0 (its own weights)",
            f"merge_mode {layer.merge_mode}",
        ]
        return (
            LayerExplanation(
                layer.name, cls, [*fl, *bl, merged], [], weights, params, arith, notes
            ),
            f"h{s}",
        )
    if isinstance(inner, Dense) and info is not None:
        X, F, Ks, K = _dims(info)
        s = _suffix(Ks)
        head = Ks.startswith("K")
        W, b, y = (f"Wo{s}", f"bo{s}", f"y{s}") if head else (f"Wa{s}", f"ba{s}", f"a{s}")
        bias = f" + {b}" if inner.bias is not None else ""
        v = at(xin)
        out_v = f"{y}_t" if seq_out else y
        line = f"{out_v} = {_act_text(inner.activation, f'{v}·{W}{bias}')}"
        code = [f"{y} = {_np_act(inner.activation, f'{xin}.dot({W}){bias}')}"]
        kernel = next(w for w in info.weights if w.name == "kernel")
        weights = {W: f"kernel {kernel.symbol} = {kernel.shape}"}
        arith_s, arith_n = f"{_wrap(X)}·{Ks}", f"{F}·{K}"
        if inner.bias is not None:
            weights[b] = f"bias ({Ks},) = ({K},)"
            arith_s, arith_n = f"{arith_s} + {Ks}", f"{arith_n} + {K}"
        notes = (
            ["applied at every step (TimeDistributed)"]
            if isinstance(layer, TimeDistributed)
            else []
        )
        return (
            LayerExplanation(
                layer.name,
                cls,
                [line],
                code,
                weights,
                params,
                f"{arith_s} = {arith_n} = {params}",
                notes,
            ),
            y,
        )
    if isinstance(layer, Embedding):
        V, E = layer.embeddings.shape
        notes = ["id 0 masks its step (mask_zero)"] if layer.mask_zero else []
        return (
            LayerExplanation(
                layer.name,
                cls,
                [f"e_t = E[{xin}_t]"],
                [f"e = E[{xin}[t]]"],
                {"E": f"embeddings (V,D) = ({V}, {E})"},
                params,
                f"V·D = {V}·{E} = {params}",
                notes,
            ),
            "e",
        )
    if isinstance(layer, Masking):
        v = at(xin)
        line = f"step t is skipped (states kept) where every {v} == {layer.mask_value:g}"
        return LayerExplanation(layer.name, cls, [line], [], {}, 0, "0", []), xin
    if isinstance(inner, Passthrough):
        return (
            LayerExplanation(
                layer.name, cls, [f"{at(xin)} unchanged (identity at inference)"], [], {}, 0, "0"
            ),
            xin,
        )
    if isinstance(inner, Activation):
        v = at(xin)
        return (
            LayerExplanation(
                layer.name, cls, [f"{v} ← {_act_text(inner.activation, v)}"], [], {}, 0, "0"
            ),
            xin,
        )
    # Any other layer: its class applied, and its weight sizes summed.
    shapes = [] if info is None else [w.shape for w in info.weights]
    arith = " + ".join("·".join(str(d) for d in sh) for sh in shapes) or "0"
    if shapes:
        arith = f"{arith} = {params}"
    out_name = layer.name
    if isinstance(layer, StackedRNN):
        out_name = "h"
    return (
        LayerExplanation(layer.name, cls, [f"{out_name} = {cls}({xin})"], [], {}, params, arith),
        out_name,
    )


def _paren(text: str) -> str:
    return text if text.startswith(("3·(", "4·(")) else f"({text})"


# ------------------------------------------------------------------ one step


def _units(model: Model) -> list[tuple[str, Node, Recurrent, str]]:
    """(key, node, layer, trace key) of every explainable recurrent run."""
    out = []
    for node in model.recurrent_nodes():
        layer = node.layer
        if isinstance(layer, Recurrent):
            out.append((node.key, node, layer, node.key))
        elif isinstance(layer, Bidirectional):
            for d in ("forward", "backward"):
                key = f"{node.key}/{d}"
                out.append((key, node, getattr(layer, d), key))
    return out


def _pick(model: Model, name: str | None) -> tuple[str, Node, Recurrent, str]:
    units = _units(model)
    if not units:
        raise UsageError(f"{model.source.path}: the model has no SimpleRNN, LSTM or GRU to explain")
    if name is None:
        return units[0]
    for unit in units:
        if name in (unit[0], unit[1].key if unit[0].endswith("/forward") else None):
            return unit
    known = ", ".join(u[0] for u in units)
    raise UsageError(f"no recurrent layer {name!r} to explain a step of (choose from: {known})")


def explain_step(
    model: Model,
    x: Any,
    layer: str | None = None,
    sample: int = 0,
    step: int = 0,
    dtype: str = "float32",
) -> StepExplanation:
    """Every term of processing step ``step`` of one recurrent layer (``layer``: its
    name, ``NAME/forward`` or ``NAME/backward`` for a Bidirectional; a
    Bidirectional's bare name means its forward direction; default the first) for
    sample ``sample`` of the batch ``x``.

    The terms are the engine's own numbers: its step (``ops.recurrent.scan``) run in
    ``dtype`` over the rows the engine runs that sample with, from the layer's input
    and states as the engine computed them, so ``h``, ``c`` and the gates equal
    ``trace(x, gates=True)`` at that step bit for bit (see ``_engine_rows``)."""
    from contextlib import nullcontext

    from .. import blas
    from ..engine import conform_rows
    from ..ops.recurrent import scan
    from ..versions import keras_major

    key, node, cell, _ = _pick(model, layer)
    if cell.time_major:
        raise UsageError(f"explain --step does not take time_major layers ({key!r})")
    xs = conform_rows(model, x)
    N = int(xs[0].shape[0])
    if not 0 <= sample < N:
        raise UsageError(f"--sample {sample} is out of range: the batch has N={N} samples")
    ft = np.dtype(dtype)
    major = keras_major(model.source.keras_version)
    a, b, single = _engine_rows(model, xs, sample, ft)
    n = sample - a  # the sample's row among the engine's rows
    with blas.single_threaded() if single else nullcontext():
        seq, initial, mask = _layer_inputs(model, [v[a:b] for v in xs], node, key, ft, major)
        T = int(seq.shape[1])
        if not 0 <= step < T:
            raise UsageError(
                f"--step {step} is out of range: the layer runs T={T} steps (0..{T - 1})"
            )
        t = T - 1 - step if cell.go_backwards else step
        # The steps before, then step `step` alone from the states they leave: the
        # engine's arithmetic on the same operands (a masked step is computed too;
        # the mask then keeps the old states).
        done = slice(T - step, T) if cell.go_backwards else slice(0, step)
        before = scan(
            cell, seq[:, done], None if mask is None else mask[:, done], ft, major, False,
            initial=initial,
        )  # fmt: skip
        now = seq[:, t : t + 1]

        def one(c: Recurrent) -> Any:
            return scan(c, now, None, ft, major, False, True, True, initial=before.finals)

        after = one(cell)
        # The pre-activations, as the engine's step computes them before activating:
        # the same step with those activations linear (the reset gate of a GRU's
        # candidate kept as it is).
        pre = one(_linear(cell, keep_gates=False))
        cand = one(_linear(cell, keep_gates=True))
    masked = mask is not None and not bool(mask[n, t])
    x_t = seq[n, t].astype(ft, copy=False)
    h_prev = before.finals[0][n]
    terms: dict[str, Array] = {"x": x_t, "h_prev": h_prev}
    labels = {"x": "x_t", "h_prev": "h_{t-1}"}
    if isinstance(cell, LSTM):
        terms["c_prev"], labels["c_prev"] = before.finals[1][n], "c_{t-1}"
    gate_of = {"LSTM": "ifgo", "GRU": ["z", "r", "candidate"]}.get(cell.class_name, [])
    if isinstance(cell, LSTM):
        for g in "ifgo":
            terms[f"{g}_pre"] = pre.extra[g][n, 0]
            terms[g] = after.extra[g][n, 0]
    elif isinstance(cell, GRU):
        for g in "zr":
            terms[f"{g}_pre"] = pre.extra[g][n, 0]
            terms[g] = after.extra[g][n, 0]
        terms["candidate_pre"] = cand.extra["candidate"][n, 0]
        terms["candidate"] = after.extra["candidate"][n, 0]
    else:
        K = cell.kernel.astype(ft, copy=False)
        R = cell.recurrent_kernel.astype(ft, copy=False)
        M = cell.units
        terms["input_term"] = x_t @ K
        terms["recurrent_term"] = h_prev @ R
        terms["bias"] = np.zeros(M, ft) if cell.bias is None else cell.bias.astype(ft)
        terms["preactivation"] = pre.finals[0][n]
    assert set(gate_of) <= set(terms)
    terms["h"] = after.finals[0][n]
    if isinstance(cell, LSTM):
        terms["c"] = after.finals[1][n]
    labels.update(_step_labels(cell))
    if masked:  # the step computes, and the mask keeps the old states
        terms["h"] = h_prev.copy()
        labels["h"] = "h_{t-1} (masked step: state kept)"
        if isinstance(cell, LSTM):
            terms["c"] = terms["c_prev"].copy()
            labels["c"] = "c_{t-1} (masked step: state kept)"
    if not isinstance(cell, (LSTM, GRU)):
        order = ["x", "input_term", "h_prev", "recurrent_term", "bias", "preactivation", "h"]
        terms = {k: terms[k] for k in order}
    formula, _ = _recurrent_formula(cell, "x", "")
    return StepExplanation(
        key, cell.class_name, sample, step, int(t), masked, terms, labels, formula
    )


def _linear(cell: Recurrent, keep_gates: bool) -> Recurrent:
    """``cell`` with linear activations, so that what its step outputs is its
    pre-activations: the candidate's (and, unless ``keep_gates``, the gates').
    Sigmoid gates then lose the engine's halving (``ops.recurrent._cell``), which
    scales the product by a power of two: the same numbers."""
    if keep_gates or not isinstance(cell, (LSTM, GRU)):
        return replace(cell, activation="linear")
    return replace(cell, activation="linear", recurrent_activation="linear")


def _engine_rows(model: Model, xs: list[Array], n: int, ft: np.dtype[Any]) -> tuple[int, int, bool]:
    """The rows ``[a, b)`` that ``trace(x, gates=True)`` runs sample ``n`` with, and
    whether BLAS runs single-threaded there: the plan of ``engine.iter_chunks``
    (chunks of ``chunk_rows``) and ``engine._run_parallel`` (a chunk split across
    threads). It matters: BLAS may round a row's products differently in a batch of
    another size (measured with OpenBLAS: a row alone against the same row among
    1000 differ in the last bit). ``test_step_terms_exact_as_the_engine_splits``
    holds this to the engine's plan."""
    from .. import blas, engine

    N = int(xs[0].shape[0])
    T = max(int(a.shape[1]) if a.ndim > 1 else 1 for a in xs)
    D = sum(int(np.prod(a.shape[2:], dtype=np.int64)) or 1 for a in xs)
    workers = engine._threads() if blas.controlled() else 1
    step = engine.chunk_rows(model, T, D, ft.itemsize, True, True) * workers
    if engine._time_major(model):
        step = max(N, 1)
    if workers > 1 and not engine._split_pays(model, min(N, step) // workers):
        workers = 1
    a = n // step * step
    b = min(N, a + step)
    if workers > 1 and engine._split_pays(model, (b - a) // workers):
        bounds = [int(v) for v in np.linspace(0, b - a, workers + 1).astype(int)]
        j = int(np.searchsorted(bounds, n - a, side="right")) - 1
        a, b = a + bounds[j], a + bounds[j + 1]
    return a, b, workers > 1


def _layer_inputs(
    model: Model, xs: list[Array], node: Node, key: str, ft: np.dtype[Any], major: int
) -> tuple[Array, list[Array] | None, Array | None]:
    """The layer's input sequence (N, T, D), initial states (or None) and mask (N, T)
    (or None) as the engine computes them over these rows (one walk of the graph)."""
    from ..engine import _Ctx, _walk

    keys: dict[Ref, str] = {}
    for r in [node.inputs[0], *node.states]:
        if not isinstance(model.nodes[r.node].layer, InputLayer):
            src = model.nodes[r.node].key
            keys[r] = src if r.index == 0 else f"{src}/{r.index}"
    of = frozenset(model.nodes[r.node].key for r in keys)
    ctx = _Ctx(ft, major, {} if keys else None, False, of)
    ctx.mask_of = node.key
    _walk(model, xs, ctx)
    position = {id(layer): k for k, layer in enumerate(model.inputs)}

    def value(r: Ref) -> Array:
        if r in keys:
            assert ctx.states is not None
            return ctx.states[keys[r]]
        v = xs[position[id(model.nodes[r.node].layer)]]
        return v if v.dtype.kind in "iu" else v.astype(ft, copy=False)  # as ``_walk``

    seq = value(node.inputs[0])
    states = [value(r).astype(ft, copy=False) for r in node.states]
    if isinstance(node.layer, Bidirectional):
        n_f = node.layer.forward.STATES
        states = states[n_f:] if key.endswith("/backward") else states[:n_f]
    return seq, states or None, ctx.masks.get(node.key)


def _step_labels(cell: Recurrent) -> dict[str, str]:
    """Each term's formula, notebook notation."""
    if isinstance(cell, LSTM):
        labels: dict[str, str] = {}
        bias = cell.bias is not None
        for g in "ifgo":
            name = cell.activation if g == "g" else cell.recurrent_activation
            labels[f"{g}_pre"] = f"x_t·Wx_{g} + h_{{t-1}}·Wh_{g}" + (f" + b_{g}" if bias else "")
            labels[g] = f"{name}({g}_pre)"
        labels["c"] = "f*c_{t-1} + i*g"
        labels["h"] = f"o*{cell.activation}(c)"
        return labels
    if isinstance(cell, GRU):
        rn = cell.recurrent_activation
        if cell.reset_after:
            lz = "x_t·Wx_z + bx_z + h_{t-1}·Wh_z + bh_z"
            lc = "x_t·Wx_h + bx_h + r*(h_{t-1}·Wh_h + bh_h)"
        else:
            lz = "x_t·Wx_z + h_{t-1}·Wh_z + b_z"
            lc = "x_t·Wx_h + (r*h_{t-1})·Wh_h + b_h"
        return {
            "z_pre": lz,
            "z": f"{rn}(z_pre)",
            "r_pre": lz.replace("_z", "_r"),
            "r": f"{rn}(r_pre)",
            "candidate_pre": lc,
            "candidate": f"{cell.activation}(candidate_pre)",
            # The engine's arrangement of it (the same in exact arithmetic).
            "h": "z*h_{t-1} + (1 - z)*candidate, as candidate + z*(h_{t-1} - candidate)",
        }
    return {
        "input_term": "x_t·Wx",
        "recurrent_term": "h_{t-1}·Wh",
        "bias": "bh",
        # The engine adds the three in one product, [x_t; 1; h_{t-1}]·[Wx; bh; Wh]:
        # their float sum may differ from it in the last bit.
        "preactivation": "x_t·Wx + h_{t-1}·Wh + bh",
        "h": _act_text(cell.activation, "preactivation"),
    }
