"""Renderers: results -> Rich tables (for people) or JSON (for scripts).

Nothing here computes model results; it formats ``Summary`` objects and arrays.
Structure depends on the width the caller gives (the terminal's, or none without one)
and never on whether stdout is a terminal; colour is Rich's to drop.

Every numeric view fits its width without cutting a number. The tables are compact
(one space between columns, no borders); when the values do not fit, a view takes,
in this order: 3 decimals, the table turned (units as rows, steps as columns),
2 decimals, and at last fewer unit columns, the middle ones elided whole, with a
note saying how many and how to see them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .model import Array
from .summary import LayerInfo, Summary

MAX_ROWS = 40  # rows (steps, samples) before eliding the middle (unless --full / --steps)
MAX_COLS = 12  # unit columns shown with no width to fit (no terminal) before eliding
SIDE_COLS = 4  # context columns (the step's input x, the head's y) before eliding

GAP = "…"  # header and cells of an elided run of columns or rows
NONFINITE = "bold magenta"  # nan and ±inf cells, never heat-coloured


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


# --------------------------------------------------------------------------- summary


def layer_names(s: Summary) -> list[str]:
    """Every name the summary table shows: top-level rows and a nested model's rows."""
    return [r.name for top in s.layers for r in (top, *top.layers)]


def _selected(s: Summary, layer: str | None) -> list[LayerInfo]:
    """Top-level rows, or the one row (top-level or inside a nested model) named."""
    if layer is None:
        return s.layers
    rows = [r for top in s.layers for r in (top, *top.layers) if r.name == layer]
    return rows[:1]


def _layer_dict(info: LayerInfo, values: bool) -> dict[str, Any]:
    from .outputs import exact_list

    weights = []
    for w in info.weights:
        entry: dict[str, Any] = {
            "name": w.name,
            "shape": list(w.shape),
            "symbol": w.symbol,
            "dtype": w.dtype,
        }
        if values:
            entry["values"] = exact_list(w.value)
        weights.append(entry)
    out: dict[str, Any] = {
        "name": info.name,
        "type": info.type,
        "output_shape": list(info.output_shape),
        "output_shapes": [list(sh) for sh in info.output_shapes or [info.output_shape]],
        "connected_to": info.connected_to,
        "params": info.params,
        "trainable": info.trainable,
        "weights": weights,
    }
    if info.layers:  # a nested model's own layers
        out["layers"] = [_layer_dict(inner, values) for inner in info.layers]
    return out


def summary_dict(s: Summary, layer: str | None = None, values: bool = False) -> dict[str, Any]:
    """The documented JSON schema of ``summary --json`` (``values``: with each weight's
    values, as ``--weights`` asks)."""
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
        "layers": [_layer_dict(info, values) for info in _selected(s, layer)],
        "total_params": s.total_params,
        "trainable_params": s.trainable_params,
        "non_trainable_params": s.non_trainable_params,
        "bytes": s.bytes,
        "dims": s.dims,
        "assumptions": s.assumptions,
    }


def summary_json(s: Summary, layer: str | None = None, values: bool = False) -> str:
    return json.dumps(summary_dict(s, layer, values), indent=2)


def _text_table(title: str | None = None) -> Any:
    from rich.table import Table

    return Table(title=title, show_lines=False)


def summary_text(s: Summary, width: int = 100) -> str:
    """The Keras-style table and totals as plain text (``Model.summary()`` prints it)."""
    import io

    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False)
    shown = summary_tables(s, None, False, False, width)
    for item in shown[:5]:  # the header, the layer table, the three totals
        console.print(item)
    return out.getvalue()


def summary_tables(
    s: Summary, layer: str | None, show_values: bool, full: bool, width: int | None = None
) -> list[Any]:
    """Rich renderables for ``summary``. Names fold onto a second line when the
    width is short; shapes and counts never wrap."""
    from rich.text import Text

    version = f"Keras {s.keras_version}" if s.keras_version else "Keras version unknown"
    fmt = FORMATS.get(s.format, s.format)
    head = f'Model: "{s.model_name}"  ({fmt}, {version})'
    if s.architecture == "inferred":
        head += "\nArchitecture inferred from the weight shapes (what was assumed: on stderr)"
    out: list[Any] = [Text(head, style="bold")]
    layers = _selected(s, layer)
    main = _text_table()
    main.add_column("Layer (type)", overflow="fold")
    main.add_column("Output Shape", no_wrap=True)
    main.add_column("Param #", justify="right", no_wrap=True)
    if s.is_graph:  # as Keras's summary of a graph: where each layer's inputs come from
        main.add_column("Connected to", overflow="fold")
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
    weights = _text_table("Weights")
    for col in ("Layer", "Weight"):
        weights.add_column(col, overflow="fold")
    for col in ("Shape", "Symbol", "Dtype", "Params"):
        weights.add_column(col, justify="right" if col == "Params" else "left", no_wrap=True)
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
    if show_values:
        for info in leaves:
            for w in info.weights:
                out.append(
                    Text(f"\n{info.name}/{w.name} {w.symbol} = {shape_text(w.shape)}", style="bold")
                )
                out.append(Text(array_text(w.value, full, width)))
    return out


def array_text(a: Array, full: bool = False, width: int | None = None) -> str:
    """An array as ``get_weights()`` prints it in a notebook, elided when large, its
    lines no wider than ``width`` (100 without one)."""
    threshold = a.size + 1 if full else 200
    line = max(width or 100, 40)
    text = np.array2string(a, threshold=threshold, edgeitems=3, precision=6, max_line_width=line)
    if not full and a.size > 200:
        text += f"\n(elided: {a.size:,} values; --full shows all)"
    return text


# --------------------------------------------------------------------- numbers, colour


def number(v: float, decimals: int) -> str:
    """A value as the views print it: signed, fixed decimals (scientific from 1e5 on);
    NaN and Inf plainly, as ``nan``, ``+inf``, ``-inf``."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "+inf" if v > 0 else "-inf"
    if abs(v) >= 1e5:
        return f"{v:+.{decimals - 1}e}"
    return f"{v:+.{decimals}f}"


# ColorBrewer RdBu (11 classes), blue for negative through white to red for positive.
DIVERGING = (
    "#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
    "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f",
)  # fmt: skip
# ColorBrewer Greens (9 classes), for values in [0, 1]: a gate shut (light) to open (dark).
SEQUENTIAL = (
    "#f7fcf5", "#e5f5e0", "#c7e9c0", "#a1d99b", "#74c476",
    "#41ab5d", "#238b45", "#006d2c", "#00441b",
)  # fmt: skip
GATES = frozenset({"i", "f", "o", "z", "r"})  # gates of the recurrent activation (sigmoid)


def _luminance(colour: str) -> float:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ink(background: str) -> str:
    """Black or white text, whichever contrasts more with ``background`` (WCAG)."""
    lum = _luminance(background)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


def _nice(x: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above ``x``."""
    k = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10**k >= x * (1 - 1e-12):
            return float(m * 10**k)
    return float(10 ** (k + 1))  # pragma: no cover - the loop returns


@dataclass(frozen=True)
class Scale:
    """Cell colours: equal bins of [lo, hi], each a background with its own text colour
    (values beyond the ends take the end bins)."""

    lo: float
    hi: float
    colours: tuple[str, ...]
    styles: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "styles", tuple(f"{ink(c)} on {c}" for c in self.colours))

    def style(self, v: float) -> str:
        if not math.isfinite(v):
            return NONFINITE
        n = len(self.colours)
        i = int((v - self.lo) / (self.hi - self.lo) * n)
        return self.styles[min(max(i, 0), n - 1)]

    def legend(self, what: str) -> Any:
        """One line: the colours from ``lo`` to ``hi``, each a bin of equal width."""
        from rich.text import Text

        text = Text(f"{what} colours: {_tick(self.lo)} ")
        for colour in self.colours:
            text.append("  ", style=f"on {colour}")
        text.append(f" {_tick(self.hi)}")
        if self.lo < 0 < self.hi:
            text.append(" (blue < 0 < red)")
        text.append("; nan/inf plain", style=NONFINITE)
        return text


def _tick(v: float) -> str:
    return f"{v:+g}" if v else "0"


def scale_for(key: str, values: Array) -> Scale:
    """Gates of the recurrent activation get a [0, 1] scale; everything else (states,
    cell states, candidates) a diverging one, symmetric around 0 (at least ±1)."""
    finite = values[np.isfinite(values)]
    low = float(finite.min()) if finite.size else 0.0
    high = float(np.abs(finite).max()) if finite.size else 0.0
    if key.rsplit("/", 1)[-1] in GATES and low >= 0:
        return Scale(0.0, _nice(max(1.0, high)), SEQUENTIAL)
    limit = _nice(max(1.0, high))
    return Scale(-limit, limit, DIVERGING)


# ----------------------------------------------------------------------- grid views


@dataclass
class Block:
    """A group of value columns, one per feature or unit, one value per row."""

    label: str  # "x", "h", "y", "c", ...: columns are named label[i]
    values: Array  # (R, n)
    first: int = 0  # the index of column 0 (a --units range starts there)
    side: bool = False  # context (the step's input, the head's output): few columns
    style: str = ""
    scale: Scale | None = None
    ids: bool = False  # integer ids: one column named "id", printed as integers

    def name(self, j: int) -> str:
        return "id" if self.ids else f"{self.label}[{self.first + j}]"


@dataclass(frozen=True)
class Layout:
    """How a view is drawn: turned or not, decimals, and how many columns of the main
    (non-side) blocks and of the side blocks are shown (None: all)."""

    transposed: bool = False
    decimals: int = 4
    main: int | None = None
    side: int | None = SIDE_COLS


@dataclass
class View:
    """Rows of values: key columns (step, t / sample) label each row; blocks hold the
    values. ``rows`` are the rows shown, None where a run of them is elided."""

    keys: list[tuple[str, list[str]]]
    blocks: list[Block]
    rows: list[int | None]
    transposable: bool = True
    cap: int = MAX_COLS  # main-block columns when no width is given (no terminal)
    _text: dict[tuple[int, int], list[list[str]]] = field(default_factory=dict, repr=False)

    def texts(self, b: int, decimals: int) -> list[list[str]]:
        """Block ``b``'s shown rows as text, column by column (cached per decimals)."""
        key = (b, decimals)
        if key not in self._text:
            block = self.blocks[b]
            rows = [r for r in self.rows if r is not None]
            vals = block.values[rows] if rows else block.values[:0]
            if block.ids:
                cols = [[str(int(v)) for v in vals[:, j]] for j in range(vals.shape[1])]
            else:
                cols = [
                    [number(v, decimals) for v in vals[:, j].tolist()] for j in range(vals.shape[1])
                ]
            self._text[key] = cols
        return self._text[key]


def _shown(n: int, k: int | None) -> list[int | None]:
    """Columns 0..n-1 with at most ``k`` shown: the first and last ones around a gap."""
    if k is None or k >= n:
        return list(range(n))
    head = (k + 1) // 2
    return [*range(head), None, *range(n - (k - head), n)]


@dataclass
class _Grid:
    header: list[str]
    rows: list[list[tuple[str, str]]]  # (text, style) per cell
    left: int  # how many leading columns are left-justified
    sections: list[int]  # row indices before which a blank separator line goes

    @property
    def width(self) -> int:
        widths = [len(h) for h in self.header]
        for row in self.rows:
            for i, (text, _) in enumerate(row):
                widths[i] = max(widths[i], len(text))
        return sum(widths) + len(widths) - 1

    def table(self) -> Any:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0), header_style="bold")
        for i, h in enumerate(self.header):
            table.add_column(h, justify="left" if i < self.left else "right", no_wrap=True)
        for i, row in enumerate(self.rows):
            if i in self.sections:
                table.add_section()
            table.add_row(*(Text(text, style=style) for text, style in row))
        return table


def _cell_style(block: Block, value: float) -> str:
    if block.ids:
        return block.style
    if not math.isfinite(value):
        return NONFINITE
    return block.scale.style(value) if block.scale is not None else block.style


def _grid(view: View, layout: Layout) -> _Grid:
    dec = layout.decimals
    cols = [_shown(b.values.shape[1], layout.side if b.side else layout.main) for b in view.blocks]
    shown = [r for r in view.rows if r is not None]
    where = {r: i for i, r in enumerate(shown)}  # row -> index in the cached texts
    gap = (GAP, "dim")

    def cell(b: int, j: int | None, r: int | None) -> tuple[str, str]:
        if j is None or r is None:
            return gap
        block = view.blocks[b]
        text = view.texts(b, dec)[j][where[r]]
        return text, _cell_style(block, float(block.values[r, j]))

    if not layout.transposed:
        header = [k for k, _ in view.keys]
        for b, block in enumerate(view.blocks):
            header += [GAP if j is None else block.name(j) for j in cols[b]]
        rows: list[list[tuple[str, str]]] = []
        for r in view.rows:
            if r is None:
                rows.append([gap] * len(header))
                continue
            row = [(labels[r], "") for _, labels in view.keys]
            for b in range(len(view.blocks)):
                row += [cell(b, j, r) for j in cols[b]]
            rows.append(row)
        return _Grid(header, rows, 0, [])
    # Turned: one row per feature/unit, one column per step.
    first_key, first_labels = view.keys[0]
    header = [first_key] + [GAP if r is None else first_labels[r] for r in view.rows]
    rows = []
    sections = []
    for key, labels in view.keys[1:]:
        rows.append([(key, "dim")] + [gap if r is None else (labels[r], "dim") for r in view.rows])
    for b, block in enumerate(view.blocks):
        if rows:
            sections.append(len(rows))
        for j in cols[b]:
            label = GAP if j is None else block.name(j)
            rows.append([(label, block.style)] + [cell(b, j, r) for r in view.rows])
    return _Grid(header, rows, 1, sections)


ORDER = ((False, 4), (False, 3), (True, 4), (True, 3), (False, 2), (True, 2))


def choose(view: View, width: int | None, full: bool) -> Layout:
    """The first layout in the documented order that fits ``width`` (None: a pipe,
    no width to fit, at most ``view.cap`` main columns unless ``full``)."""
    side = None if full else SIDE_COLS
    if width is None:
        return Layout(False, 4, None if full else view.cap, side)
    main = max((b.values.shape[1] for b in view.blocks if not b.side), default=1)
    for transposed, dec in ORDER:
        if transposed and not view.transposable:
            continue
        # Turned, the units are rows: as many as a table has rows.
        cap = MAX_ROWS if transposed and not full and main > MAX_ROWS else None
        layout = Layout(transposed, dec, cap, side)
        if _grid(view, layout).width <= width:
            return layout
    if full:  # never elide: printed whole, wider than the terminal
        return Layout(False, 4, None, None)
    for dec in (3, 2):
        for side_k in (2, 1):
            # The widest main-column count that fits (the width grows with it).
            lo, hi = 0, main - 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if _grid(view, Layout(False, dec, mid, side_k)).width <= width:
                    lo = mid
                else:
                    hi = mid - 1
            if lo >= 1:
                return Layout(False, dec, lo, side_k)
    return Layout(False, 2, 1, 1)


def _elided(n: int, k: int | None) -> tuple[int, int] | None:
    """The elided run [a, b) of ``_shown(n, k)``, if any."""
    cols = _shown(n, k)
    if None not in cols:
        return None
    i = cols.index(None)
    a = i
    b = n - (len(cols) - i - 1)
    return a, b


def _notes(view: View, layout: Layout, unit_word: str, rows_word: str, hints: str) -> list[str]:
    notes = []
    for block in view.blocks:
        n = block.values.shape[1]
        gap = _elided(n, layout.side if block.side else layout.main)
        if gap is not None:
            a, b = gap
            word = "features" if block.label == "x" else ("outputs" if block.side else unit_word)
            span = f"{block.first + a}" + (f"..{block.first + b - 1}" if b - a > 1 else "")
            notes.append(f"{block.label}[{span}] not shown ({b - a} of {n} {word})")
    if None in view.rows:
        i = view.rows.index(None)
        before, after = view.rows[i - 1], view.rows[i + 1]
        assert before is not None and after is not None
        total = len(view.keys[0][1])
        notes.append(
            f"{rows_word} {before + 1}..{after - 1} not shown ({after - before - 1} of {total})"
        )
    if notes:
        notes[-1] += f": {hints}"
    return notes


def _rows(n: int, full: bool) -> list[int | None]:
    return _shown(n, None if full or n <= MAX_ROWS else MAX_ROWS)


@dataclass
class Rendered:
    """A view's renderables, and the width its table needs (more than the terminal's
    only with --full: the caller prints it whole)."""

    items: list[Any]
    width: int


def _render(
    view: View,
    title: str,
    notes: list[str],
    layout: Layout,
    width: int | None,
    legends: Sequence[tuple[Scale, str]],
    color: bool,
) -> Rendered:
    from rich.text import Text

    grid = _grid(view, layout)
    fitted = ["units as rows, steps as columns"] if layout.transposed else []
    if layout.decimals < 4:
        fitted.append(f"{layout.decimals} decimals")
    if fitted:
        notes = [f"{', '.join(fitted)}: to fit {width} columns", *notes]
    out: list[Any] = [Text(title, style="bold"), grid.table()]
    if color:
        out += [scale.legend(what) for scale, what in legends]
    out += [Text(note, style="dim") for note in notes]
    return Rendered(out, grid.width)


def _steps(
    T: int,
    backwards: bool,
    mask: Array | None,
    steps: range | None,
    full: bool,
) -> tuple[list[tuple[str, list[str]]], list[int | None], bool]:
    """Key columns (step, and t when it differs), the rows shown, and whether a
    shown step is masked."""
    order = [T - 1 - s if backwards else s for s in range(T)]  # input index of each step
    masked = [bool(mask is not None and not mask[t]) for t in order]
    labels = [f"{s}*" if masked[s] else str(s) for s in range(T)]
    keys = [("step", labels)]
    if backwards:
        keys.append(("t", [str(t) for t in order]))
    if steps is None:
        rows = _rows(T, full)
    else:
        picked = list(steps)
        rows = [picked[i] if i is not None else None for i in _rows(len(picked), full)]
    any_masked = any(masked[r] for r in rows if r is not None)
    return keys, rows, any_masked


MASK_NOTE = "*: masked step (Keras skips it: the state carries over)"
TRACE_HINTS = (
    "--units A:B and --steps A:B pick ranges, --full shows all, -o FILE writes every value"
)


@dataclass
class StepOptions:
    """What the trace views share: the terminal, the ranges asked for, the layout the
    first table chose (the gate and cell tables follow it)."""

    width: int | None = None
    full: bool = False
    color: bool = False
    units: range | None = None
    steps: range | None = None
    mask: Array | None = None  # (T,) in input order; True = a real step
    backwards: bool = False
    layout: Layout | None = None


def _units(block: Block, units: range | None) -> Block:
    if units is None:
        return block
    n = block.values.shape[1]
    a, b = min(units.start, n), min(units.stop, n)
    return replace(block, values=block.values[:, a:b], first=a)


def trace_view(
    layer: str,
    sample: int,
    states: Array,  # (T, M) for one sample, processing order
    inputs: Array | None,  # (T, D) or (T,) ids in input order: the model's input, if
    # it is the layer's (None for a layer fed by another one)
    head: Array | None,  # (T, K) the Dense head at every step, or None
    opts: StepOptions,
) -> Rendered:
    """The hidden state at every step of one sample, beside the step's input and the
    head's output, as a heatmap. Sets ``opts.layout`` for the tables that follow."""
    T, M = states.shape
    keys, rows, any_masked = _steps(T, opts.backwards, opts.mask, opts.steps, opts.full)
    blocks = []
    if inputs is not None:
        x = inputs[::-1] if opts.backwards else inputs  # processing order
        ids = x.ndim == 1
        blocks.append(Block("x", x[:, None] if ids else x, side=True, style="dim", ids=ids))
    main = _units(Block("h", states, scale=scale_for(layer, states)), opts.units)
    blocks.append(main)
    if head is not None:
        blocks.append(Block("y", head, side=True, style="bold"))
    view = View(keys, blocks, rows)
    layout = opts.layout or choose(view, opts.width, opts.full)
    opts.layout = layout
    title = _title(f"{layer}: hidden state h_t", sample, T, M, opts.backwards)
    notes = [BACKWARDS_NOTE] if opts.backwards else []
    if head is not None:
        notes.append("y = the Dense head applied to h_t at every step (the notebook's Yhat)")
    if any_masked:
        notes.append(MASK_NOTE)
    notes += _notes(view, layout, "units", "steps", TRACE_HINTS)
    assert main.scale is not None
    return _render(view, title, notes, layout, opts.width, [(main.scale, "h")], opts.color)


def _title(what: str, sample: int, T: int, M: int, backwards: bool) -> str:
    title = f"{what}, sample {sample}  ({T} steps x {M} units"
    return title + (", go_backwards)" if backwards else ")")


BACKWARDS_NOTE = "step: processing order; t: the input step it reads (go_backwards)"


def state_view(key: str, sample: int, values: Array, opts: StepOptions) -> Rendered:
    """A (T, M) per-step array (cell state or gate) as a heatmap, laid out as the
    trace table before it (``opts.layout``) when there was one."""
    T, M = values.shape
    keys, rows, any_masked = _steps(T, opts.backwards, opts.mask, opts.steps, opts.full)
    label = key.rsplit("/", 1)[-1]
    block = _units(Block(label, values, scale=scale_for(key, values)), opts.units)
    if block.values.shape[1] == 0:
        from rich.text import Text

        assert opts.units is not None
        span = f"{opts.units.start}:{opts.units.stop}"
        return Rendered([Text(f"{key}: --units {span} is beyond its {M} units", style="dim")], 0)
    view = View(keys, [block], rows)
    layout = opts.layout
    if layout is None or (
        opts.width is not None
        and (layout.main is not None or _grid(view, layout).width > opts.width)
    ):
        # Laid out as the trace table when that shows every unit here too; else
        # (fewer columns than that table, or wider values) this table's own fit.
        layout = choose(view, opts.width, opts.full)
    title = _title(key, sample, T, M, opts.backwards)
    notes = [BACKWARDS_NOTE] if opts.backwards else []
    notes += [MASK_NOTE] if any_masked else []
    notes += _notes(view, layout, "units", "steps", TRACE_HINTS)
    scale = block.scale
    assert scale is not None
    return _render(view, title, notes, layout, opts.width, [(scale, label)], opts.color)


def output_view(y: Array, width: int | None, full: bool, name: str | None = None) -> Rendered:
    """``forward``'s output (N, K) or (N, T, K) as a table, one row per sample (and
    step); ``name``: which of several outputs. Higher ranks show each step's values
    flattened, a rank-1 output as one column."""
    shape = y.shape
    if y.ndim == 1:
        y = y[:, None]
    elif y.ndim > 3:
        y = y.reshape(y.shape[0], y.shape[1], -1)
    seq = y.ndim == 3
    K = y.shape[-1]
    if seq:
        N, T = y.shape[:2]
        flat = y.reshape(N * T, K)
        keys = [
            ("sample", [str(n) for n in range(N) for _ in range(T)]),
            ("t", [str(t) for _ in range(N) for t in range(T)]),
        ]
    else:
        flat = y.reshape(y.shape[0], K)
        keys = [("sample", [str(n) for n in range(y.shape[0])])]
    view = View(keys, [Block("y", flat)], _rows(flat.shape[0], full), transposable=False)
    layout = choose(view, width, full)
    rows_word = "rows (sample, t)" if seq else "samples"
    hints = "--full shows all, -o FILE writes every value"
    notes = _notes(view, layout, "outputs", rows_word, hints)
    title = f"{'output' if name is None else name} {shape_text(shape)} {y.dtype}"
    if len(shape) > 3:
        notes = [*notes, "trailing axes flattened per step"]
    return _render(view, title, notes, layout, width, [], False)
