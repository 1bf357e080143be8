"""``plot``: each kind for the seed model, an LSTM and a Bidirectional, in PNG, SVG
and PDF; deterministic files; matplotlib optional (``rnninspect[plot]``) and imported
by nothing but ``plot``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, golden, load_sample, run_cli, sample

from rnninspect.errors import OutputError, UsageError

matplotlib = pytest.importorskip("matplotlib")

from rnninspect import plot as pictures  # noqa: E402

MODELS = ["seed", "lstm", "bidi_concat", "gru", "stacked"]
KINDS = ["states", "gates", "units", "diagnose"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind(model: str, kind: str, tmp_path: Path) -> None:
    m = load_sample(model, "model.keras")
    x = golden(model)["x"]
    out = tmp_path / f"{kind}.png"
    pictures.plot(m, x, out, kind=kind)
    assert out.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left


@pytest.mark.parametrize("suffix", [".svg", ".pdf", ".png"])
def test_pictures_are_deterministic(suffix: str, tmp_path: Path) -> None:
    m = load_sample("lstm", "model.keras")
    x = golden("lstm")["x"]
    a, b = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    pictures.plot(m, x, a, kind="gates")
    pictures.plot(m, x, b, kind="gates")
    assert a.read_bytes() == b.read_bytes()
    if suffix == ".svg":
        assert "<dc:date>" not in a.read_text()
    if suffix == ".pdf":
        assert b"CreationDate" not in a.read_bytes()


def test_labels_in_notebook_notation(tmp_path: Path) -> None:
    """Steps t, units h[j], the input x_t, the head y_t = h_t·Wo + bo, a colour bar
    per heatmap, one diverging map centred at zero."""
    m = load_sample("seed", "model.keras")
    x = golden("seed")["x"]
    node, direction = pictures._choose(m, None)
    fig = pictures.states_figure(m, x, m.trace(x), node, direction, 0)
    texts = [t.get_text() for ax in fig.axes for t in (ax.xaxis.label, ax.yaxis.label, ax.title)]
    joined = " ".join(texts)
    for label in ("step t", "h[j]", "x_t[d]", "y_t[k]", "h_t[j]", "'simple_rnn'", "T=10, M=5"):
        assert label in joined, label
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 3
    for im in images:
        lo, hi = im.get_clim()
        assert lo == -hi  # zero in the middle
        assert im.get_cmap().name == pictures.CMAP
    assert len(fig.axes) == 6  # three panels, three colour bars


def test_backwards_shown_in_input_order(tmp_path: Path) -> None:
    m = load_sample("backwards", "model.keras")
    x = golden("backwards")["x"]
    node, _ = pictures._choose(m, None)
    trace = m.trace(x)
    fig = pictures.states_figure(m, x, trace, node, None, 0)
    data = fig.axes[1].get_images()[0].get_array()
    np.testing.assert_array_equal(np.asarray(data), trace[node.key][0][::-1].T)
    assert any("input order" in ax.get_title() for ax in fig.axes)


def test_options(tmp_path: Path) -> None:
    m = load_sample("bidi_concat", "model.keras")
    x = golden("bidi_concat")["x"]
    out = tmp_path / "p.svg"
    pictures.plot(m, x, out, kind="units", layer="bidirectional_1/backward", units=[0, 2])
    pictures.plot(m, x, out, kind="gates", layer="bidirectional/backward", sample=3)
    with pytest.raises(UsageError, match="out of range"):
        pictures.plot(m, x, out, kind="units", units=[9])
    with pytest.raises(UsageError, match="out of range"):
        pictures.plot(m, x, out, sample=4)
    with pytest.raises(UsageError, match="not a recurrent layer"):
        pictures.plot(m, x, out, layer="dense")
    with pytest.raises(OutputError, match="picture format"):
        pictures.plot(m, x, tmp_path / "p.jpg")
    import rnninspect

    cells = rnninspect.load_model(ROOT / "tests" / "data" / "export_models" / "layers.keras")
    with pytest.raises(UsageError, match="no gates"):
        pictures.plot(cells, np.zeros((1, 8, 4), np.float32), out, kind="gates", layer="cells")


@pytest.mark.parametrize("model", ["seed", "lstm", "bidi_concat"])
def test_diagnose_draws_diagnose_numbers(model: str) -> None:
    """--kind diagnose draws what ``diagnose`` computes: one line per recurrent layer
    with its state Jacobian norms, the input sensitivity, one bar per bounded gate
    with its saturation, read back from the figure's artists."""
    from rnninspect.insight.diagnose import diagnose

    m = load_sample(model, "model.keras")
    x = golden(model)["x"]
    d = diagnose(m, x)
    fig = pictures.diagnose_figure(d)
    jac, sens, bars = fig.axes[:3]
    lines = {line.get_label().split(" ")[0]: line for line in jac.get_lines()}
    assert sorted(lines) == sorted(d.layers)
    for name, entry in d.layers.items():
        got = lines[name].get_ydata()
        np.testing.assert_array_equal(got, np.asarray(entry.state_jacobian_norm, dtype=float))
        np.testing.assert_array_equal(lines[name].get_xdata(), np.arange(entry.steps))
    assert jac.get_yscale() == "log"
    assert d.input_sensitivity is not None
    (line,) = sens.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), np.asarray(d.input_sensitivity, dtype=float))
    assert len(d.input_sensitivity) == x.shape[1]  # over the input steps T
    want = [
        (f"{name}:{gate}", frac)
        for name, entry in d.layers.items()
        for gate, frac in entry.saturation.items()
        if frac is not None
    ]
    heights = [p.get_height() for p in bars.patches]
    labels = [t.get_text() for t in bars.get_xticklabels()]
    assert labels == [lab for lab, _ in want]
    np.testing.assert_array_equal(heights, [frac for _, frac in want])
    if model == "bidi_concat":
        assert any(name.endswith("/backward") for name in d.layers)
    for ax, label in zip(
        fig.axes[:3], ("||ds_{T-1}/ds_t||", "||dy/dx_t||", "saturated"), strict=True
    ):
        assert ax.get_ylabel().startswith(label)


def test_cli_plot(tmp_path: Path) -> None:
    out = tmp_path / "h.png"
    code, stdout, err = run_cli(
        "plot", str(sample("seed", "model.keras")), "--random", "2", "--seed", "0", "-o", str(out)
    )
    assert code == 0, err
    assert stdout == "" and out.is_file()
    code, _, err = run_cli("plot", str(sample("seed", "model.keras")), "--random", "2")
    assert code == 2 and "-o" in err
    code, _, err = run_cli(
        "plot", str(sample("seed", "model.keras")), "--random", "2", "-o", str(out), "--units", "a"
    )
    assert code == 2 and "--units" in err


def _isolated(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )


def test_without_matplotlib_plot_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """matplotlib hidden: plot says how to get it, exit 2; other commands run."""
    model, picture = str(sample("seed", "model.keras")), str(tmp_path / "p.png")
    hide = 'import sys\nsys.modules["matplotlib"] = None\nfrom rnninspect.cli import main\n'
    done = _isolated(hide + f"main(['plot', {model!r}, '--random', '1', '-o', {picture!r}])")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "pip install 'rnninspect[plot]'" in done.stderr
    done = _isolated(hide + f"main(['forward', {model!r}, '--random', '1'])")
    assert done.returncode == 0, done.stderr


def test_nothing_else_imports_matplotlib() -> None:
    code = f"""
import sys
from rnninspect.cli import main
for args in (["--help"], ["plot", "--help"], ["export", "--help"],
             ["forward", {str(sample("seed", "model.keras"))!r}, "--random", "1", "--json"]):
    try:
        main(args)
    except SystemExit:
        pass
print("LOADED" if "matplotlib" in sys.modules else "CLEAN", file=sys.stderr)
"""
    done = _isolated(code)
    assert done.stderr.strip().endswith("CLEAN"), done.stderr[-500:]


@pytest.mark.parametrize("kind", KINDS)
def test_several_inputs(kind: str, tmp_path: Path) -> None:
    """A graph with several inputs (encoder and decoder): every kind draws, and the
    states picture shows the input the layer itself reads (found by the long fuzz:
    exit 1)."""
    m = load_sample("seq2seq_states", "model.keras")
    rng = np.random.default_rng(0)
    enc = rng.standard_normal((2, 8, 3), dtype=np.float32)
    dec = rng.standard_normal((2, 6, 2), dtype=np.float32)
    out = tmp_path / f"{kind}.png"
    pictures.plot(m, [enc, dec], out, kind=kind, layer="lstm_1", sample=1)
    assert out.read_bytes().startswith(b"\x89PNG")
    if kind == "states":
        node, direction = pictures._choose(m, "lstm_1")
        fig = pictures.states_figure(m, [enc, dec], m.trace([enc, dec]), node, direction, 1)
        shown = np.asarray(fig.axes[0].get_images()[0].get_array())
        np.testing.assert_array_equal(shown, dec[1].T)


def test_cli_plot_several_inputs(tmp_path: Path) -> None:
    out = tmp_path / "h.png"
    model = str(sample("attention_seq2seq", "model.keras"))
    code, _, err = run_cli("plot", model, "--random", "1", "-o", str(out))
    assert code == 0, err
    assert out.read_bytes().startswith(b"\x89PNG")
