"""Renderers: results -> Rich tables (for people) or JSON (for scripts).

Nothing here computes model results; it formats ``Summary`` objects and arrays.
Structure never depends on whether stdout is a terminal; only colour does (Rich).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .model import Array
from .summary import LayerInfo, Summary

MAX_ROWS = 40  # rows of a table before eliding the middle (unless --full)
MAX_COLS = 12  # value columns before eliding the middle (unless --full)


FORMATS = {
    "keras": ".keras archive",
    "legacy-h5": "legacy full-model .h5",
    "legacy-weights-h5": "legacy save_weights .h5",
    "keras-weights-h5": "Keras 3 .weights.h5",
    "npz-layers": ".npz, layer/weight keys",
    "npz-notebook": ".npz, notebook names",
}


def shape_text(shape: tuple[int | None, ...]) -> str:
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def shapes_text(info: LayerInfo) -> str:
    """A layer's output shape, or (several outputs) the list of them, as Keras shows."""
    if len(info.output_shapes) > 1:
        return "[" + ", ".join(shape_text(sh) for sh in info.output_shapes) + "]"
    return shape_text(info.output_shape)


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} GB"


def _selected(s: Summary, layer: str | None) -> list[LayerInfo]:
    """Top-level rows, or the one row (top-level or inside a nested model) named."""
    if layer is None:
        return s.layers
    rows = [r for top in s.layers for r in (top, *top.layers) if r.name == layer]
    return rows[:1]


def _layer_dict(info: LayerInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": info.name,
        "type": info.type,
        "output_shape": list(info.output_shape),
        "output_shapes": [list(sh) for sh in info.output_shapes or [info.output_shape]],
        "connected_to": info.connected_to,
        "params": info.params,
        "trainable": info.trainable,
        "weights": [
            {"name": w.name, "shape": list(w.shape), "symbol": w.symbol, "dtype": w.dtype}
            for w in info.weights
        ],
    }
    if info.layers:  # a nested model's own layers
        out["layers"] = [_layer_dict(inner) for inner in info.layers]
    return out


def summary_dict(s: Summary, layer: str | None = None) -> dict[str, Any]:
    """The documented JSON schema of ``summary --json``."""
    return {
        "model": s.model_name,
        "path": s.path,
        "format": s.format,
        "keras_version": s.keras_version,
        "architecture": s.architecture,
        "input_shape": list(s.input_shape),
        "input_dtype": s.input_dtype,
        "inputs": s.inputs,
        "outputs": s.outputs,
        "layers": [_layer_dict(info) for info in _selected(s, layer)],
        "total_params": s.total_params,
        "trainable_params": s.trainable_params,
        "non_trainable_params": s.non_trainable_params,
        "bytes": s.bytes,
        "dims": s.dims,
        "assumptions": s.assumptions,
    }


def summary_json(s: Summary, layer: str | None = None) -> str:
    return json.dumps(summary_dict(s, layer), indent=2)


def summary_tables(s: Summary, layer: str | None, show_values: bool, full: bool) -> list[Any]:
    """Rich renderables for ``summary``."""
    from rich.table import Table
    from rich.text import Text

    version = f"Keras {s.keras_version}" if s.keras_version else "Keras version unknown"
    fmt = FORMATS.get(s.format, s.format)
    out: list[Any] = [Text(f'Model: "{s.model_name}"  ({fmt}, {version})', style="bold")]
    layers = _selected(s, layer)
    main = Table(show_lines=False)
    main.add_column("Layer (type)")
    main.add_column("Output Shape")
    main.add_column("Param #", justify="right")
    if s.is_graph:  # as Keras's summary of a graph: where each layer's inputs come from
        main.add_column("Connected to")
    for info in layers:
        row = [f"{info.name} ({info.type})", shapes_text(info), f"{info.params:,}"]
        main.add_row(*row, *(["\n".join(info.connected_to) or "-"] if s.is_graph else []))
        for inner in info.layers:  # a nested model's layers, indented
            main.add_row(
                f"  └ {inner.name} ({inner.type})",
                shapes_text(inner),
                f"{inner.params:,}",
                *([""] if s.is_graph else []),
                style="dim",
            )
    out.append(main)
    if layer is None:
        itemsize = s.bytes / s.total_params if s.total_params else 4
        for label, n in (
            ("Total params", s.total_params),
            ("Trainable params", s.trainable_params),
            ("Non-trainable params", s.non_trainable_params),
        ):
            out.append(Text(f"{label}: {n:,} ({human_bytes(round(n * itemsize))})"))
    weights = Table(title="Weights")
    for col in ("Layer", "Weight", "Shape", "Symbol", "Dtype", "Params"):
        weights.add_column(col, justify="right" if col == "Params" else "left")
    leaves = [leaf for info in layers for leaf in (info.layers or [info])]
    for info in leaves:
        for w in info.weights:
            weights.add_row(
                info.name,
                w.name,
                shape_text(w.shape),
                w.symbol,
                w.dtype,
                f"{int(np.prod(w.shape)):,}",
            )
    if weights.row_count:
        out.append(weights)
    # In stacked models "M" aliases M1 in the JSON; the legend shows M1, M2, ... only.
    shown = {k: v for k, v in s.dims.items() if not (k == "M" and "M1" in s.dims)}
    legend = "  ".join(f"{k}={'variable' if v is None else v}" for k, v in shown.items())
    out.append(
        Text(f"Legend: {legend}  (N samples, T steps, D input features, M hidden units, K outputs)")
    )
    for note in s.assumptions:
        out.append(Text(f"Assumed: {note}", style="yellow"))
    if show_values:
        for info in leaves:
            for w in info.weights:
                out.append(
                    Text(f"\n{info.name}/{w.name} {w.symbol} = {shape_text(w.shape)}", style="bold")
                )
                out.append(Text(array_text(w.value, full)))
    return out


def array_text(a: Array, full: bool = False) -> str:
    """An array as ``get_weights()`` prints it in a notebook, elided when large."""
    threshold = a.size + 1 if full else 200
    text = np.array2string(a, threshold=threshold, edgeitems=3, precision=6, max_line_width=100)
    if not full and a.size > 200:
        text += f"\n(elided: {a.size:,} values; --full shows all)"
    return text


def _indices(n: int, limit: int, full: bool) -> list[int | None]:
    """Row/column indices to show; None marks an elided gap."""
    if full or n <= limit:
        return list(range(n))
    half = limit // 2
    return [*range(half), None, *range(n - half, n)]


def _num(v: float) -> str:
    return f"{v:+.4f}"


def output_table(y: Array, full: bool, title: str | None = None) -> Any:
    """``forward``'s output (N, K) or (N, T, K) as a table (higher ranks: each
    sample's values flattened to (N, T, -1))."""
    from rich.table import Table

    heading = f"{title or 'output'} {shape_text(y.shape)} {y.dtype}"
    if y.ndim == 1:
        y = y[:, None]
    elif y.ndim > 3:
        y = y.reshape(y.shape[0], y.shape[1], -1)
        heading += " (trailing axes flattened)"
    table = Table(title=heading)
    seq = y.ndim == 3
    table.add_column("sample", justify="right")
    if seq:
        table.add_column("t", justify="right")
    K = y.shape[-1]
    cols = _indices(K, MAX_COLS, full)
    for k in cols:
        table.add_column("…" if k is None else f"y[{k}]", justify="right")
    rows: list[tuple[int, int | None]] = (
        [(n, t) for n in range(y.shape[0]) for t in range(y.shape[1])]
        if seq
        else [(n, None) for n in range(y.shape[0])]
    )
    shown = _indices(len(rows), MAX_ROWS, full)
    for r in shown:
        if r is None:
            table.add_row("…", *([""] if seq else []), *["…"] * len(cols))
            continue
        n, t = rows[r]
        vec = y[n, t] if t is not None else y[n]
        cells = ["…" if k is None else _num(float(vec[k])) for k in cols]
        table.add_row(str(n), *([str(t)] if seq else []), *cells)
    if len(shown) < len(rows) or len(cols) < K:
        table.caption = "elided; --full shows all, -o FILE writes all"
    return table


def _heat(v: float) -> str:
    """A background colour for a state value: blue negative, red positive."""
    if not np.isfinite(v):
        return "on magenta"
    level = min(abs(v), 1.0)
    shade = round(255 * (1 - level))
    if v >= 0:
        return f"black on rgb(255,{shade},{shade})"
    return f"black on rgb({shade},{shade},255)"


def state_table(key: str, sample: int, values: Array, full: bool) -> Any:
    """A (T, M) per-step array (cell state or gate) as a heatmap table."""
    from rich.table import Table
    from rich.text import Text

    T, M = values.shape
    table = Table(title=f"{key}, sample {sample}  ({T} steps x {M} units)")
    table.add_column("step", justify="right")
    cols = _indices(M, MAX_COLS, full)
    for m in cols:
        table.add_column("…" if m is None else f"[{m}]", justify="right")
    for step in _indices(T, MAX_ROWS, full):
        if step is None:
            table.add_row("…", *["…"] * len(cols))
            continue
        cells: list[Any] = [
            "…"
            if m is None
            else Text(_num(float(values[step, m])), style=_heat(float(values[step, m])))
            for m in cols
        ]
        table.add_row(str(step), *cells)
    return table


def trace_table(
    layer: str,
    sample: int,
    states: Array,  # (T, M) for one sample, processing order
    inputs: Array | None,  # (T, D) or (T,) ids, in input order; None: not a model input
    backwards: bool,
    head: Array | None,  # (T, K) the Dense head at every step, or None
    full: bool,
) -> Any:
    from rich.table import Table
    from rich.text import Text

    T, M = states.shape
    title = f"{layer}: hidden state h_t, sample {sample}  ({T} steps x {M} units)"
    if backwards:
        title += "  [go_backwards: rows in processing order]"
    table = Table(title=title)
    table.add_column("step", justify="right")
    table.add_column("t", justify="right")
    ids = inputs is not None and inputs.ndim == 1
    if inputs is not None and inputs.ndim > 2:
        inputs = inputs.reshape(inputs.shape[0], -1)
    D = 0 if inputs is None else 1 if ids else inputs.shape[1]
    in_cols = _indices(D, 4, full)
    for d in in_cols:
        table.add_column(
            "…" if d is None else ("id" if ids else f"x[{d}]"), justify="right", style="dim"
        )
    cols = _indices(M, MAX_COLS, full)
    for m in cols:
        table.add_column("…" if m is None else f"h[{m}]", justify="right")
    K = 0 if head is None else head.shape[1]
    head_cols = _indices(K, 4, full)
    for k in head_cols:
        table.add_column("…" if k is None else f"y[{k}]", justify="right", style="bold")
    for step in _indices(T, MAX_ROWS, full):
        if step is None:
            table.add_row("…", "…", *["…"] * (len(in_cols) + len(cols) + len(head_cols)))
            continue
        t = T - 1 - step if backwards else step
        x_cells = (
            []
            if inputs is None
            else [
                "…" if d is None else (str(int(inputs[t])) if ids else _num(float(inputs[t, d])))
                for d in in_cols
            ]
        )
        h_cells: list[Any] = [
            "…"
            if m is None
            else Text(_num(float(states[step, m])), style=_heat(float(states[step, m])))
            for m in cols
        ]
        y_cells = (
            []
            if head is None
            else ["…" if k is None else _num(float(head[step, k])) for k in head_cols]
        )
        table.add_row(str(step), str(t), *x_cells, *h_cells, *y_cells)
    notes = []
    if head is not None:
        notes.append("y = the Dense head applied to h_t at every step (the notebook's Yhat)")
    if len(cols) < M or (T > MAX_ROWS and not full):
        notes.append("elided; --full shows all, -o FILE writes all")
    if notes:
        table.caption = "; ".join(notes)
    return table
