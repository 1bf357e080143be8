"""``plot``: each kind for the seed model, an LSTM and a Bidirectional, in PNG, SVG
and PDF; deterministic files; matplotlib optional (``rnninspect[plot]``) and imported
by nothing but ``plot``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, golden, load_sample, run_cli, sample

from rnninspect.errors import OutputError, UsageError

matplotlib = pytest.importorskip("matplotlib")

from rnninspect import plot as pictures  # noqa: E402

MODELS = ["seed", "lstm", "bidi_concat", "gru", "stacked"]
KINDS = ["states", "gates", "units"]


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


def test_diagnose_waits_for_insight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``rnninspect.insight`` (issue 13), --kind diagnose is a usage error;
    with it, its documented JSON layout is drawn."""
    try:
        import rnninspect.insight  # type: ignore[import-not-found]
    except ImportError:
        code, _, err = run_cli(
            "plot", str(sample("lstm", "model.keras")), "--random", "2", "-o",
            str(tmp_path / "d.png"), "--kind", "diagnose",
        )  # fmt: skip
        assert code == 2 and "not yet available" in err
    import types

    fake = types.ModuleType("rnninspect.insight")

    def diagnose(model: Any, x: Any) -> dict[str, Any]:
        return {
            "layers": {"lstm": {"state_jacobian_norm": [0.01, 0.1, 1.0],
                                "saturation": {"i": 0.1, "f": 0.2}}},
            "input_sensitivity": [0.5, 0.7, 0.9],
        }  # fmt: skip

    fake.diagnose = diagnose  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rnninspect.insight", fake)
    import rnninspect

    monkeypatch.setattr(rnninspect, "insight", fake, raising=False)
    out = tmp_path / "d.png"
    pictures.plot(load_sample("lstm", "model.keras"), golden("lstm")["x"], out, kind="diagnose")
    assert out.read_bytes().startswith(b"\x89PNG")


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
