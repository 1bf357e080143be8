"""The terminal views fit the width they are printed at, and no number is ever cut.

Every table printed by ``trace`` and ``forward`` is parsed back from the text: each
cell that holds a number must parse and equal the value it shows, rounded to the
decimals it shows (references: the library's own arrays, which the golden tests
hold to Keras). Widths come from ``COLUMNS``, from a real pseudo-terminal (also with
``TERM=dumb``), or from Rich's ``Console(width=..., record=True)``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SAMPLES, keras_config, run_cli

import rnninspect
from rnninspect import render
from rnninspect.engine import head_after
from rnninspect.inputs import random_input
from rnninspect.model import Bidirectional

SEED = SAMPLES / "seed" / "model.keras"
WIDTHS = [60, 80, 100, 200]

NUMBER = re.compile(r"^(?:[+-]\d+\.\d+(?:e[+-]\d+)?|nan|[+-]inf|-?\d+\*?|…)$")
LABEL = re.compile(r"^(?:([a-z]+)\[(\d+)\]|id|t|…)$")


# ---------------------------------------------------------------- models for views


def lstm_npz(path: Path, units: int, T: int, D: int = 3, K: int = 2, seed: int = 1) -> Path:
    """An Input(T, D) -> LSTM(units) -> Dense(K) model in rnninspect's npz convention
    (layer/weight keys and a Keras 3 ``__config__``: sample_models/lstm's, edited)."""
    config = copy.deepcopy(keras_config("lstm"))
    inp, lstm, dense = config["config"]["layers"]
    inp["config"]["batch_shape"] = [None, T, D]
    lstm["config"]["units"] = units
    dense["config"]["units"] = K
    config["build_config"] = {"input_shape": [None, T, D]}
    rng = np.random.RandomState(seed)
    arrays = {
        "lstm/kernel": rng.randn(D, 4 * units) * 0.5,
        "lstm/recurrent_kernel": rng.randn(units, 4 * units) * 0.3,
        "lstm/bias": rng.randn(4 * units) * 0.3,
        "dense/kernel": rng.randn(units, K) * 0.5,
        "dense/bias": rng.randn(K) * 0.1,
    }
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    np.savez(path, __config__=np.array(json.dumps(config)), **arrays)
    return path


@pytest.fixture(scope="module")
def lstm32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lstm_npz(tmp_path_factory.mktemp("views") / "lstm32.npz", 32, 10)


@pytest.fixture(scope="module")
def lstm64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lstm_npz(tmp_path_factory.mktemp("views") / "lstm64.npz", 64, 20, K=30)


# --------------------------------------------------------------- parsing the tables


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]

    @property
    def turned(self) -> bool:
        return LABEL.match(self.header[1]) is None


def parse_tables(text: str) -> list[Table]:
    """Every grid table in ``text``: the title line above it, its header, its rows
    (each row a cell per column; blank separator lines skipped)."""
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if not line.strip() or set(line.strip()) != {"─"} or i == 0:
            continue
        header = lines[i - 1].split()
        if header[0] not in ("step", "sample"):
            continue
        title = next(
            (
                lines[j]
                for j in range(i - 2, max(i - 5, -1), -1)
                if ", sample" in lines[j] or lines[j].startswith("output")
            ),
            "",
        )
        rows = []
        for row in lines[i + 1 :]:
            if not row.strip():
                continue
            cells = row.split()
            body = cells[1:] if header[0] == "step" and LABEL.match(header[1]) is None else cells
            if len(cells) != len(header) or not all(
                NUMBER.match(c) or LABEL.match(c) for c in body
            ):
                break
            rows.append(cells)
        tables.append(Table(title, header, rows))
    return tables


def check_cell(text: str, value: float, where: str) -> None:
    """``text`` is ``value`` as the views print it: rounded to its own decimals."""
    assert "…" not in text, where
    if text == "nan":
        assert math.isnan(value), where
        return
    if text in ("+inf", "-inf"):
        assert value == (math.inf if text == "+inf" else -math.inf), where
        return
    got = float(text)
    mantissa = text.split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(text.split("e")[1]) if "e" in text else 0
    tolerance = 0.5 * 10.0 ** (exponent - decimals) * (1 + 1e-6) + 1e-12
    assert abs(got - value) <= tolerance, f"{where}: printed {text}, value {value}"


def check_table(table: Table, data: dict[str, np.ndarray], what: str) -> int:
    """Every number in ``table`` against ``data`` (label -> (rows, n) in row order);
    returns how many cells were checked."""
    checked = 0

    def value(label: str, row: int) -> float:
        if label == "id":
            return float(data["id"][row])
        m = LABEL.match(label)
        assert m is not None and m.group(1) is not None, f"{what}: label {label!r}"
        return float(data[m.group(1)][row, int(m.group(2))])

    keys = [h for h in table.header if h in ("step", "sample", "t")]
    if not table.turned:
        for cells in table.rows:
            if cells[0] == "…":
                continue
            row = int(cells[0].rstrip("*"))
            for label, text in zip(table.header[len(keys) :], cells[len(keys) :], strict=True):
                if label == "…":
                    assert text == "…"
                    continue
                check_cell(text, value(label, row), f"{what}: {label} at row {row}")
                checked += 1
        return checked
    steps = [None if h == "…" else int(h.rstrip("*")) for h in table.header[1:]]
    for cells in table.rows:
        label = cells[0]
        if label in ("t", "…"):
            continue
        for step, text in zip(steps, cells[1:], strict=True):
            if step is None:
                continue
            check_cell(text, value(label, step), f"{what}: {label} at step {step}")
            checked += 1
    return checked


def trace_data(
    path: Path, n: int, seed: int, sample: int, gates: bool
) -> dict[str, dict[str, np.ndarray]]:
    """What each trace table of ``--random n --seed seed`` shows, by table key."""
    m = rnninspect.load_model(path)
    x = random_input(m, n, seed, None)
    states = m.trace(x, gates=gates)
    layer = m.recurrent_layers[0]
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in states.items():
        if key != layer.name and not key.startswith(layer.name + "/"):
            continue
        seq = value[sample]
        backwards = not isinstance(layer, Bidirectional) and layer.go_backwards
        data = {key.rsplit("/", 1)[-1] if "/" in key else "h": seq}
        if key == layer.name:
            xs = np.asarray(x[sample])
            xs = xs[::-1] if backwards else xs
            if xs.ndim == 1:
                data["id"] = xs
            else:
                data["x"] = xs
            head = head_after(m, layer)
            if head is not None:
                data["y"] = head(seq)
        out[key] = data
    return out


def _key_of(title: str) -> str:
    return title.split(":")[0].split(",")[0].strip()


def check_trace(
    out: str, path: Path, n: int, seed: int, gates: bool, width: int | None
) -> list[Table]:
    tables = parse_tables(out)
    data = trace_data(path, n, seed, 0, gates)
    assert tables, out
    for table in tables:
        key = _key_of(table.title)
        assert key in data, (key, list(data))
        assert check_table(table, data[key], key) > 0
    if width is not None:
        wide = [line for line in out.splitlines() if len(line) > width]
        assert not wide, f"lines over {width} columns: {wide[:2]}"
    return tables


# ------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("width", WIDTHS)
def test_seed_trace_fits(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    code, out, err = run_cli("trace", str(SEED), "--random", "2", "--seed", "0")
    assert code == 0, err
    (table,) = check_trace(out, SEED, 2, 0, False, width)
    if width >= 80:  # all five units, the input and the head
        for label in ("h[0]", "h[4]", "x[2]", "y[1]"):
            assert label in table.header or any(r[0] == label for r in table.rows)
        assert "…" not in out
    else:
        assert "not shown" in out and "--units A:B" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_lstm32_gates_fit(width: int, lstm32: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    code, out, err = run_cli("trace", str(lstm32), "--random", "2", "--seed", "0", "--gates")
    assert code == 0, err
    tables = check_trace(out, lstm32, 2, 0, True, width)
    assert [_key_of(t.title) for t in tables] == [
        "lstm", "lstm/c", "lstm/i", "lstm/f", "lstm/g", "lstm/o",
    ]  # fmt: skip
    if 80 <= width <= 100:
        # 32 units over 10 steps: turned, units as rows, every one shown.
        assert all(t.turned for t in tables)
        assert "units as rows" in out
        assert sum(r[0].startswith("h[") for r in tables[0].rows) == 32


@pytest.mark.parametrize("model", ["backwards", "embedding", "stacked", "bidi_concat", "masking"])
@pytest.mark.parametrize("width", [60, 80])
def test_sample_traces_fit(model: str, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    path = SAMPLES / model / "model.keras"
    code, out, err = run_cli("trace", str(path), "--random", "3", "--seed", "4", "--gates")
    assert code == 0, err
    check_trace(out, path, 3, 4, True, width)


def test_elided_units_are_named_with_the_way_to_see_them(
    lstm64: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run_cli("trace", str(lstm64), "--random", "1", "--seed", "0")
    assert code == 0, err
    check_trace(out, lstm64, 1, 0, False, 80)
    note = re.search(r"h\[(\d+)\.\.(\d+)\] not shown \((\d+) of 64 units\)", out)
    assert note is not None, out
    a, b, n = (int(g) for g in note.groups())
    assert n == b - a + 1 and "--units A:B" in out and "--full" in out
    # The elided units, asked for by range, are all shown.
    code, out, _ = run_cli(
        "trace", str(lstm64), "--random", "1", "--seed", "0", "--units", f"{a}:{a + 4}"
    )
    assert code == 0
    (table, *_) = parse_tables(out)
    assert [h for h in table.header if h.startswith("h[")] == [f"h[{a + i}]" for i in range(4)]
    check_trace(out, lstm64, 1, 0, False, 80)


def test_full_never_elides_and_cuts_nothing(lstm64: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run_cli("trace", str(lstm64), "--random", "1", "--seed", "0", "--full")
    assert code == 0, err
    (table, *_) = check_trace(out, lstm64, 1, 0, False, None)
    labels = table.header if not table.turned else [r[0] for r in table.rows]
    assert [f"h[{i}]" for i in range(64)] == [h for h in labels if h.startswith("h[")]
    assert "not shown" not in out


def test_steps_range_and_long_sequences(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    model = SAMPLES / "variable_t" / "model.keras"
    code, out, _ = run_cli("trace", str(model), "--random", "1", "--length", "500")
    assert code == 0
    assert re.search(r"steps 20\.\.479 not shown \(460 of 500\)", out), out
    code, out, _ = run_cli(
        "trace", str(model), "--random", "1", "--length", "500", "--steps", "100:103"
    )
    (table,) = parse_tables(out)
    assert [r[0] for r in table.rows] == ["100", "101", "102"]


def test_pipe_shows_whole_tables_with_four_decimals(
    lstm32: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off a terminal and without COLUMNS there is no width to fit: 4 decimals, at
    most 12 unit columns, the rest elided with the note."""
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run_cli("trace", str(lstm32), "--random", "1", "--seed", "0")
    assert code == 0
    (table, *_) = check_trace(out, lstm32, 1, 0, False, None)
    assert not table.turned
    assert sum(h.startswith("h[") for h in table.header) == 12
    assert "h[6..25] not shown (20 of 32 units)" in out
    assert re.search(r"[+-]\d\.\d{4}\b", out)


@pytest.mark.parametrize("width", [40, 80])
def test_forward_table_fits(width: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = lstm_npz(tmp_path / "wide_head.npz", 4, 5, K=30)
    monkeypatch.setenv("COLUMNS", str(width))
    code, out, err = run_cli("forward", str(path), "--random", "3", "--seed", "2")
    assert code == 0, err
    (table,) = parse_tables(out)
    m = rnninspect.load_model(path)
    y = m.forward(random_input(m, 3, 2, None))
    assert check_table(table, {"y": y}, "forward") > 0
    assert all(len(line) <= width for line in out.splitlines())
    assert re.search(r"y\[\d+\.\.\d+\] not shown \(\d+ of 30 outputs\)", out)


def test_nan_and_inf_are_plain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [render.number(v, 4) for v in (math.nan, math.inf, -math.inf)] == [
        "nan",
        "+inf",
        "-inf",
    ]
    assert render.number(123456.0, 4) == "+1.235e+05"
    monkeypatch.setenv("COLUMNS", "80")
    x = np.random.RandomState(0).randn(1, 10, 3).astype(np.float32)
    x[0, 2, 1] = np.nan
    np.save(tmp_path / "x.npy", x)
    code, out, err = run_cli("trace", str(SEED), str(tmp_path / "x.npy"))
    assert code == 0 and "NaN" in err
    assert "nan" in out and "+nan" not in out


def test_masked_steps_are_marked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    x = np.random.RandomState(0).randn(1, 10, 3).astype(np.float32)
    x[0, 3:5] = 0.0  # Masking(0.0): steps 3 and 4 are skipped
    np.save(tmp_path / "x.npy", x)
    for model, steps in (("masking", ["3*", "4*"]), ("masked_backwards", ["5*", "6*"])):
        code, out, err = run_cli(
            "trace", str(SAMPLES / model / "model.keras"), str(tmp_path / "x.npy")
        )
        assert code == 0, err
        (table, *_) = parse_tables(out)
        assert [r[0] for r in table.rows if r[0].endswith("*")] == steps
        assert render.MASK_NOTE in out


def _contrast(a: str, b: str) -> float:
    la, lb = render._luminance(a), render._luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def test_colours_are_readable_and_explained() -> None:
    """Every heat colour carries its own text colour with WCAG AA contrast (4.5:1),
    so cells read the same on dark and light terminals; black never sits on blue."""
    for colour in (*render.DIVERGING, *render.SEQUENTIAL):
        assert _contrast(colour, render.ink(colour)) >= 4.5, colour
    for colour in render.DIVERGING[:2]:  # the dark blues
        assert render.ink(colour) == "#ffffff"
    scale = render.scale_for("lstm", np.array([[-0.3, 0.9]]))
    assert (scale.lo, scale.hi) == (-1.0, 1.0)
    assert render.scale_for("lstm/i", np.array([[0.1, 0.9]])).colours == render.SEQUENTIAL
    assert render.scale_for("lstm/c", np.array([[-3.2, 0.1]])).hi == 5.0
    assert scale.style(-1.0) == f"#ffffff on {render.DIVERGING[0]}"
    assert scale.style(0.0) == f"#000000 on {render.DIVERGING[5]}"
    assert scale.style(math.nan) == render.NONFINITE


def test_heatmap_and_legend_in_colour(lstm32: Path) -> None:
    from rich.console import Console

    m = rnninspect.load_model(lstm32)
    x = random_input(m, 1, 0, None)
    t = m.trace(x, gates=True)
    opts = render.StepOptions(width=80, color=True)
    shown = [render.trace_view("lstm", 0, t["lstm"][0], np.asarray(x[0]), None, opts)]
    shown.append(render.state_view("lstm/f", 0, t["lstm/f"][0], opts))
    console = Console(width=80, record=True, color_system="truecolor")
    for r in shown:
        for item in r.items:
            console.print(item)
    text = console.export_text(clear=False)
    styled = console.export_text(styles=True)
    assert "h colours:" in text and "f colours:" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "48;2;" in styled  # 24-bit backgrounds: the heat cells
    assert "colours:" not in "".join(
        str(i)
        for r in [
            render.trace_view("lstm", 0, t["lstm"][0], None, None, render.StepOptions(width=80))
        ]
        for i in r.items
    )


@pytest.mark.parametrize("width", [60, 80, 100])
@pytest.mark.parametrize("model", ["nested_func", "acceptance_chain", "bidi_concat", "seed"])
def test_summary_fits(model: str, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    path = str(SAMPLES / model / "model.keras")
    code, out, _ = run_cli("summary", path, "--weights")
    assert code == 0
    assert all(len(line) <= width for line in out.splitlines()), out
    doc = json.loads(run_cli("summary", path, "--json")[1])
    for layer in doc["layers"]:
        assert f"{layer['params']:,}" in out


def _on_terminal(args: list[str], term: str, columns: int = 80) -> str:
    """The command's stdout on a real pseudo-terminal ``columns`` wide."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR", "FORCE_COLOR")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnninspect", *args],
        stdout=slave,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**env, "TERM": term},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks).decode().replace("\r\n", "\n")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("term", ["dumb", "xterm-256color"])
def test_real_terminal_80_columns(term: str, lstm32: Path) -> None:
    out = _on_terminal(["trace", str(lstm32), "--random", "2", "--seed", "0", "--gates"], term)
    assert ("\x1b[" in out) == (term != "dumb")  # a dumb terminal gets no colour
    plain = ANSI.sub("", out)
    check_trace(plain, lstm32, 2, 0, True, 80)
    assert ("colours:" in plain) == (term != "dumb")


def test_units_beyond_a_direction_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """A merged Bidirectional has 2M units, each direction M: a range past M names it."""
    monkeypatch.setenv("COLUMNS", "80")
    path = SAMPLES / "bidi_concat" / "model.keras"
    code, out, err = run_cli("trace", str(path), "--random", "1", "--gates", "--units", "5:8")
    assert code == 0, err
    (table,) = parse_tables(out)
    assert [h for h in table.header if h.startswith("h[")] == ["h[5]", "h[6]", "h[7]"]
    assert "bidirectional/forward/i: --units 5:8 is beyond its 4 units" in out
