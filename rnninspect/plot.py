"""Pictures of a run (``rnninspect plot``), with matplotlib, an optional extra
(``pip install 'rnninspect[plot]'``): nothing else in rnninspect imports it.

Kinds (``kind``):

* ``states``: the hidden state h_t of one recurrent layer for one sample, units h[j]
  by steps t, with the input x_t above and, when a Dense head reads the layer, the
  notebook's y_t = h_t·Wo + bo below (a Bidirectional: both directions);
* ``gates``: each gate of an LSTM (i, f, g the candidate, o, and the cell state c) or
  GRU (z, r, the candidate, and h), units by steps; for a SimpleRNN, whose only
  "gate" is h itself, the terms of h_t = act(x_t·Wx + h_{t-1}·Wh + bh) (masks and
  initial states not shown);
* ``units``: chosen units' trajectories h_t[j] over the steps, one line per sample;
* ``diagnose``: the numbers of ``rnninspect diagnose`` (``insight.diagnose``): each
  recurrent layer's state Jacobian norms over its steps, the input sensitivity over
  the input steps, and the saturation per gate.

Every heatmap uses one diverging colour map centred at zero (blue below, white at
zero, red above; light to dark by magnitude, so it reads in grey too) with a colour
bar. Steps are shown in input order (a ``go_backwards`` layer's states, which Keras
returns in processing order, are flipped back, and the title says so). Pictures are
deterministic: no timestamps or random ids in SVG or PDF, fixed metadata.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError, UsageError
from .model import GRU, LSTM, Array, Bidirectional, Model, Node, Recurrent, StackedRNN

KINDS = ("states", "gates", "units", "diagnose")
FORMATS = (".png", ".svg", ".pdf")
CMAP = "RdBu_r"
MAX_SAMPLES = 8  # lines in a units plot
_STYLES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "v", "D", "x", "+", "*"]


def require() -> Any:
    """matplotlib, or the one-line usage error saying how to get it."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(
            "plot needs matplotlib, an optional extra: pip install 'rnninspect[plot]'"
        ) from None
    return matplotlib


def diagnosis(model: Model, x: Any) -> Any:
    """What ``rnninspect diagnose`` computes for the batch (``insight.diagnose``)."""
    from .insight.diagnose import diagnose

    return diagnose(model, x)


def check_target(path: Path) -> Path:
    from .outputs import check_target as check

    if path.suffix.lower() not in FORMATS:
        raise OutputError(
            f"{path}: unknown picture format {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    check(path, tuple(f.lstrip(".") for f in FORMATS))
    return path


# --------------------------------------------------------------------- what to draw


def _choose(model: Model, layer: str | None) -> tuple[Node, str | None]:
    """The recurrent node to draw and, for a Bidirectional, the direction
    (``NAME/forward`` or ``NAME/backward`` picks one; default both, or forward for
    gates)."""
    from .model import ConvLSTM

    every = model.recurrent_nodes()
    # A ConvLSTM's states are feature maps per step, not (T, M): no picture draws them.
    nodes = [n for n in every if not isinstance(n.layer, ConvLSTM)]
    if not nodes and every:
        raise UsageError(
            f"{model.source.path}: its recurrent layers are all ConvLSTM, whose states are "
            "feature maps, not (T, M) sequences to draw (trace -o writes them)"
        )
    if not nodes:
        raise UsageError(f"{model.source.path}: the model has no recurrent layer to plot")
    if layer is None:
        return nodes[0], None
    name, _, direction = layer.partition("/")
    for node in nodes:
        if node.key == name:
            if direction and direction not in ("forward", "backward"):
                raise UsageError(f"--layer {layer!r}: the direction is forward or backward")
            if direction and not isinstance(node.layer, Bidirectional):
                raise UsageError(f"--layer {layer!r}: {name!r} is not a Bidirectional")
            return node, direction or None
    known = ", ".join(n.key for n in nodes)
    raise UsageError(f"--layer {layer!r} is not a recurrent layer (recurrent layers: {known})")


def _panels(
    node: Node, direction: str | None, trace: dict[str, Array], sample: int
) -> list[tuple[str, Array, bool, str]]:
    """(label prefix, (T, M) states in processing order, backwards?, key) to draw."""
    layer, key = node.layer, node.key
    if isinstance(layer, Bidirectional):
        parts = [direction] if direction else ["forward", "backward"]
        return [
            (
                f"{key}/{p}",
                trace[f"{key}/{p}"][sample],
                (layer.backward if p == "backward" else layer.forward).go_backwards,
                f"{key}/{p}",
            )
            for p in parts
        ]
    backwards = bool(getattr(layer, "go_backwards", False))
    return [(key, trace[key][sample], backwards, key)]


def _input_order(seq: Array, backwards: bool) -> Array:
    return seq[::-1] if backwards else seq


def _symmetric(values: Array, floor: float = 0.0) -> float:
    finite = values[np.isfinite(values)]
    top = float(np.max(np.abs(finite))) if finite.size else 0.0
    return max(top, floor, 1e-12)


# ------------------------------------------------------------------------- drawing


def _heatmap(fig: Any, ax: Any, data: Array, label: str, floor: float = 0.0) -> None:
    """``data`` (rows, T) on the shared diverging map, zero white, with a colour bar."""
    vmax = _symmetric(data, floor)
    image = ax.imshow(
        data,
        aspect="auto",
        cmap=CMAP,
        vmin=-vmax,
        vmax=vmax,
        interpolation="nearest",
        origin="upper",
    )
    bar = fig.colorbar(image, ax=ax, pad=0.01, fraction=0.04)
    bar.set_label(label)
    rows = data.shape[0]
    step = max(1, rows // 12)
    ax.set_yticks(range(0, rows, step))


def _steps(ax: Any, T: int, label: bool) -> None:
    step = max(1, T // 15)
    ax.set_xticks(range(0, T, step))
    if label:
        ax.set_xlabel("step t")


def _input_panel(fig: Any, ax: Any, x: Array) -> None:
    if x.ndim == 1:  # ids
        ax.plot(np.arange(len(x)), x, marker="o", color="black", linewidth=1)
        ax.set_ylabel("x_t (id)")
        ax.set_xlim(-0.5, len(x) - 0.5)
        from matplotlib.cm import ScalarMappable

        # An invisible colour bar keeps this panel as wide as the heatmaps below.
        spacer = fig.colorbar(ScalarMappable(cmap=CMAP), ax=ax, pad=0.01, fraction=0.04)
        spacer.ax.set_visible(False)
        return
    flat = x.reshape(x.shape[0], -1)  # (T, D)
    _heatmap(fig, ax, flat.T, "x_t[d]")
    ax.set_ylabel("x_t[d]")


def _figure(rows: list[float], width: float = 9.0, sharex: bool = True) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, sum(rows) + 0.8), layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=sharex, gridspec_kw={"height_ratios": rows})
    return fig, list(np.atleast_1d(axes))


def _rows(n: int) -> float:
    return float(min(4.0, max(0.8, 0.25 * n)))


def states_figure(
    model: Model, x: Array, trace: dict[str, Array], node: Node, direction: str | None, sample: int
) -> Any:
    from .engine import head_after

    panels = _panels(node, direction, trace, sample)
    # The model's input above; a graph with several inputs shows the layer's own.
    xs = _layer_input(model, x, node, sample) if isinstance(x, list) else np.asarray(x[sample])
    T = panels[0][1].shape[0]
    head = head_after(model, node.layer) if direction is None else None
    main = trace.get(node.key)
    y = None
    if head is not None and main is not None and not getattr(node.layer, "go_backwards", False):
        y = np.asarray(head(main[sample]))  # (T, K): y_t = h_t·Wo + bo at every step
    sizes = [_rows(1 if xs.ndim == 1 else int(np.prod(xs.shape[1:])))]
    sizes += [_rows(p[1].shape[1]) for p in panels]
    if y is not None:
        sizes.append(_rows(y.shape[1]))
    fig, axes = _figure(sizes)
    _input_panel(fig, axes[0], xs)
    axes[0].set_title(
        f"{node.layer.class_name} {node.key!r}: hidden state h_t, sample {sample} "
        f"(T={T}, M={panels[0][1].shape[1]})"
    )
    for ax, (label, seq, backwards, _) in zip(axes[1:], panels, strict=False):
        _heatmap(fig, ax, _input_order(seq, backwards).T, "h_t[j]")
        part = label.rsplit("/", 1)[-1] if isinstance(node.layer, Bidirectional) else "unit"
        ax.set_ylabel(f"{part}\nh[j]")
        if backwards:
            ax.set_title("go_backwards: processed from t = T-1, shown in input order", fontsize=8)
    if y is not None:
        _heatmap(fig, axes[-1], y.T, "y_t[k] = h_t·Wo + bo")
        axes[-1].set_ylabel("head y_t[k]")
    _steps(axes[-1], T, True)
    return fig


_GATES = {
    "LSTM": [("i", "input gate i"), ("f", "forget gate f"), ("g", "candidate g"),
             ("o", "output gate o"), ("c", "cell state c")],
    "GRU": [("z", "update gate z"), ("r", "reset gate r"), ("candidate", "candidate h~")],
}  # fmt: skip


def _layer_input(model: Model, x: Any, node: Node, sample: int) -> Array:
    """The (T, D) sequence ``node`` reads, for one sample (``x``: the model's input,
    or a list of its inputs)."""
    from .engine import run
    from .model import InputLayer

    xs = x if isinstance(x, list) else [x]
    ref = node.inputs[0]
    src = model.nodes[ref.node]
    if isinstance(src.layer, InputLayer):
        at = next(i for i, put in enumerate(model.inputs) if put is src.layer)
        return np.asarray(xs[at][sample], dtype=np.float32)
    key = src.key if ref.index == 0 else f"{src.key}/{ref.index}"
    one = [v[sample : sample + 1] for v in xs]
    found = run(
        model, one if isinstance(x, list) else one[0], collect=True, outputs_of=frozenset({src.key})
    ).states
    return np.asarray(found[key][0])


def terms_figure(
    model: Model,
    x: Array,
    trace: dict[str, Array],
    node: Node,
    direction: str | None,
    sample: int,
) -> Any:
    """A SimpleRNN's one "gate", in its terms: x_t·Wx, h_{t-1}·Wh and h_t."""
    layer = node.layer
    base, cell = node.key, layer
    if isinstance(layer, Bidirectional):
        direction = direction or "forward"
        base = f"{node.key}/{direction}"
        cell = layer.forward if direction == "forward" else layer.backward
    assert isinstance(cell, Recurrent)
    h = trace[base][sample]  # (T, M), processing order
    xin = _layer_input(model, x, node, sample)  # (T, D), input order
    backwards = cell.go_backwards
    xin = xin[::-1] if backwards else xin
    h_prev = np.vstack([np.zeros((1, h.shape[1]), dtype=h.dtype), h[:-1]])
    panels = [
        (r"$x_t \cdot W_x$", xin @ cell.kernel),
        (r"$h_{t-1} \cdot W_h$", h_prev @ cell.recurrent_kernel),
        (r"$h_t$", h),
    ]
    T, M = h.shape
    fig, axes = _figure([_rows(M)] * len(panels))
    for ax, (label, data) in zip(axes, panels, strict=True):
        _heatmap(fig, ax, _input_order(data, backwards).T, label)
        ax.set_ylabel("unit [j]")
    bias = "" if cell.bias is None else " + bh"
    axes[0].set_title(
        f"SimpleRNN {base!r}: h_t = {cell.activation}(x_t·Wx + h_(t-1)·Wh{bias}), "
        f"its terms, sample {sample} (T={T}, M={M})"
        + ("; go_backwards, shown in input order" if backwards else "")
    )
    _steps(axes[-1], T, True)
    return fig


def gates_figure(trace: dict[str, Array], node: Node, direction: str | None, sample: int) -> Any:
    layer = node.layer
    base = node.key
    cell: Any = layer
    if isinstance(layer, Bidirectional):
        direction = direction or "forward"
        base = f"{node.key}/{direction}"
        cell = layer.forward if direction == "forward" else layer.backward
    if isinstance(layer, StackedRNN) or not isinstance(cell, (LSTM, GRU)):
        raise UsageError(
            f"layer {node.key!r} ({layer.class_name}) has no gates to draw: --kind gates "
            "takes an LSTM or a GRU (use --kind states)"
        )
    kind = "LSTM" if isinstance(cell, LSTM) else "GRU"
    gates = list(_GATES[kind])
    if kind == "GRU":
        gates.append(("", "hidden state h"))
    backwards = cell.go_backwards
    T, M = trace[base][sample].shape
    fig, axes = _figure([_rows(M)] * len(gates))
    for ax, (gate, label) in zip(axes, gates, strict=True):
        key = f"{base}/{gate}" if gate else base
        data = _input_order(trace[key][sample], backwards).T  # (M, T)
        sigmoid = gate in ("i", "f", "o", "z", "r")
        _heatmap(fig, ax, data, label, floor=1.0 if sigmoid else 0.0)
        ax.set_ylabel(f"{gate or 'h'}[j]")
    axes[0].set_title(
        f"{kind} {base!r}: gates per step, sample {sample} (T={T}, M={M})"
        + ("; go_backwards, shown in input order" if backwards else "")
    )
    _steps(axes[-1], T, True)
    return fig


def units_figure(
    trace: dict[str, Array], node: Node, direction: str | None, units: list[int] | None
) -> Any:
    panels = _panels(node, direction, trace, 0)
    label, _, backwards, key = panels[0]
    seqs = trace[key]  # (N, T, M)
    N, T, M = seqs.shape
    chosen = units if units is not None else list(range(min(M, 4)))
    bad = [u for u in chosen if not 0 <= u < M]
    if bad:
        raise UsageError(f"--units {bad[0]} is out of range: {key!r} has M={M} units (0..{M - 1})")
    fig, axes = _figure([1.6] * len(chosen))
    steps = np.arange(T)
    for ax, j in zip(axes, chosen, strict=True):
        for n in range(min(N, MAX_SAMPLES)):
            values = _input_order(seqs[n, :, j], backwards)
            ax.plot(
                steps,
                values,
                linestyle=_STYLES[n % len(_STYLES)],
                marker=_MARKERS[n % len(_MARKERS)],
                markersize=3,
                linewidth=1.2,
                color=str(0.15 + 0.5 * n / max(1, min(N, MAX_SAMPLES) - 1)) if N > 1 else "black",
                label=f"sample {n}",
            )
        ax.axhline(0.0, color="0.6", linewidth=0.6)
        ax.set_ylabel(f"h_t[{j}]")
    axes[0].set_title(
        f"{node.layer.class_name} {label!r}: units over steps"
        + (f" ({min(N, MAX_SAMPLES)} of N={N} samples)" if N > MAX_SAMPLES else f" (N={N})")
        + (", go_backwards shown in input order" if backwards else "")
    )
    axes[0].legend(loc="upper left", fontsize=7, ncol=min(4, N))
    _steps(axes[-1], T, True)
    return fig


def diagnose_figure(d: Any) -> Any:
    """The numbers of ``rnninspect diagnose`` (an ``insight.diagnose.Diagnosis``): per
    recurrent layer the mean ||ds_{T-1}/ds_t|| over its processing steps (log
    scale), the model's input sensitivity ||dy/dx_t|| over the input steps, and the
    fraction of each gate's values at its activation's bounds (gates with unbounded
    activations have none: left out, and said)."""
    layers = d.layers
    if not layers:
        raise UsageError("diagnose found no recurrent layer to draw (SimpleRNN, LSTM, GRU)")
    fig, axes = _figure([2.0, 1.8, 2.0], sharex=False)
    jac = axes[0]
    for k, (name, entry) in enumerate(layers.items()):
        norms = np.asarray(entry.state_jacobian_norm, dtype=float)  # (T,)
        jac.plot(
            np.arange(norms.size),
            norms,
            marker=_MARKERS[k % len(_MARKERS)],
            linestyle=_STYLES[k % len(_STYLES)],
            color="black" if k == 0 else f"{0.15 + 0.5 * (k % 3) / 2:.2f}",
            label=name + (" (go_backwards)" if entry.go_backwards else ""),
        )
    jac.set_yscale("log")
    jac.set_xlabel("processing step t")
    jac.set_ylabel("||ds_{T-1}/ds_t||")
    jac.legend(fontsize=7)
    jac.set_title(f"diagnose over N={d.samples} samples: state Jacobian norms")
    sens_ax = axes[1]
    by_input = d.input_sensitivities or (
        {"x": d.input_sensitivity} if d.input_sensitivity is not None else {}
    )
    for k, (name, values) in enumerate(by_input.items()):
        sens_ax.plot(
            np.arange(len(values)),
            np.asarray(values, dtype=float),
            marker=_MARKERS[k % len(_MARKERS)],
            linestyle=_STYLES[k % len(_STYLES)],
            color="black",
            label=name,
        )
    if len(by_input) > 1:
        sens_ax.legend(fontsize=7)
    if not by_input:
        sens_ax.text(0.5, 0.5, "input sensitivity not available (see diagnose's findings)",
                     ha="center", va="center", transform=sens_ax.transAxes)  # fmt: skip
    sens_ax.set_xlabel("input step t")
    sens_ax.set_ylabel("||dy/dx_t||")
    sens_ax.set_title("input sensitivity (mean over samples)")
    labels, values, unbounded = [], [], []
    for name, entry in layers.items():
        for gate, frac in entry.saturation.items():
            if frac is None:
                unbounded.append(f"{name}:{gate}")
                continue
            labels.append(f"{name}:{gate}")
            values.append(float(frac))
    bars = axes[2]
    bars.bar(np.arange(len(values)), values, color="0.45", edgecolor="black")
    for k, v in enumerate(values):  # the number itself: small fractions stay readable
        bars.annotate(f"{v:.3g}", (k, v), ha="center", va="bottom", fontsize=7)
    top = max(values, default=0.0)
    bars.set_ylim(0.0, min(1.0, max(0.1, 1.3 * top)))
    bars.set_ylabel("saturated fraction")
    bars.set_xticks(np.arange(len(values)), labels, rotation=30, ha="right", fontsize=7)
    title = "saturation per gate (values at the activation's bounds)"
    if unbounded:
        title += f"; unbounded, none: {', '.join(unbounded)}"
    bars.set_title(title, fontsize=8)
    return fig


# ------------------------------------------------------------------------- the entry


def _simple(node: Node, direction: str | None) -> bool:
    from .model import SimpleRNN

    layer = node.layer
    if isinstance(layer, Bidirectional):
        layer = layer.backward if direction == "backward" else layer.forward
    return isinstance(layer, SimpleRNN)


def plot(
    model: Model,
    x: Any,
    path: str | Path,
    kind: str = "states",
    layer: str | None = None,
    sample: int = 0,
    units: list[int] | None = None,
) -> None:
    """Draw ``kind`` for the batch ``x`` to ``path`` (``.png``, ``.svg`` or ``.pdf``)."""
    path = Path(path)
    if kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    fmt = path.suffix.lower()[1:]
    check_target(path)
    matplotlib = require()
    if kind == "diagnose":
        found = diagnosis(model, x)

        def figure() -> Any:
            return diagnose_figure(found)

    else:
        node, direction = _choose(model, layer)
        several = isinstance(x, (list, tuple)) and len(x) > 1
        xs: Any = [np.asarray(v) for v in x] if several else np.asarray(x)
        N = int((xs[0] if several else xs).shape[0])
        if not 0 <= sample < N:
            raise UsageError(f"--sample {sample} is out of range: the batch has N={N} samples")
        trace = model.trace(xs, gates=kind == "gates")

        def figure() -> Any:
            if kind == "states":
                return states_figure(model, xs, trace, node, direction, sample)
            if kind == "gates" and _simple(node, direction):
                return terms_figure(model, xs, trace, node, direction, sample)
            if kind == "gates":
                return gates_figure(trace, node, direction, sample)
            return units_figure(trace, node, direction, units)

    style = {
        "svg.hashsalt": "rnninspect",  # fixed ids inside the SVG
        "svg.fonttype": "path",
        "pdf.fonttype": 42,
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "image.interpolation": "nearest",
    }
    metadata = {
        "png": {"Software": "rnninspect"},
        "svg": {"Date": None, "Creator": "rnninspect"},
        "pdf": {"CreationDate": None, "ModDate": None, "Creator": "rnninspect", "Producer": None},
    }[fmt]
    with matplotlib.rc_context(style):
        fig = figure()
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, metadata=metadata, dpi=100)
    from .outputs import atomic

    with atomic(path) as fh:
        fh.write(buf.getvalue())
