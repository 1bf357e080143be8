"""The CLI on LSTM / GRU / Bidirectional sample models, in-process through ``main``
(as test_cli.py does): trace with gates and directions, two-output forward, summary
JSON symbols. References: Keras's golden files and the library API."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES, expected, golden, load_sample, run_cli

from rnninspect.errors import ExitCode

cli = run_cli


def _x(model: str, tmp_path: Path) -> str:
    path = tmp_path / "x.npy"
    np.save(path, golden(model)["x"])
    return str(path)


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_trace_gates_npz_lstm(tmp_path: Path) -> None:
    model = str(SAMPLES / "lstm" / "model.keras")
    out = tmp_path / "t.npz"
    code, stdout, err = cli("trace", model, _x("lstm", tmp_path), "--gates", "-o", str(out))
    assert code == 0, err
    assert stdout == ""
    t = _npz(out)
    assert sorted(t) == ["lstm", "lstm/c", "lstm/f", "lstm/g", "lstm/i", "lstm/o"]
    g = golden("lstm")
    np.testing.assert_allclose(t["lstm"], g["state/lstm"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(t["lstm/c"][:, -1], g["final/lstm/c"], rtol=1e-4, atol=1e-5)
    api = load_sample("lstm", "model.keras").trace(g["x"], gates=True)
    for key, value in api.items():
        np.testing.assert_array_equal(t[key], value)
    for gate in "ifo":  # sigmoid gates live in (0, 1)
        assert np.all((t[f"lstm/{gate}"] > 0) & (t[f"lstm/{gate}"] < 1))
    # Without --gates: the states and cell states only.
    code, _, _ = cli("trace", model, _x("lstm", tmp_path), "-o", str(tmp_path / "n.npz"))
    assert code == 0 and sorted(_npz(tmp_path / "n.npz")) == ["lstm", "lstm/c"]


def test_trace_gates_npz_gru(tmp_path: Path) -> None:
    out = tmp_path / "t.npz"
    code, _, err = cli(
        "trace",
        str(SAMPLES / "gru" / "model.keras"),
        _x("gru", tmp_path),
        "--gates",
        "-o",
        str(out),
    )
    assert code == 0, err
    assert sorted(_npz(out)) == ["gru", "gru/candidate", "gru/r", "gru/z"]


def test_trace_npz_bidirectional_directions(tmp_path: Path) -> None:
    out = tmp_path / "t.npz"
    model = str(SAMPLES / "bidi_concat" / "model.keras")
    code, _, err = cli("trace", model, _x("bidi_concat", tmp_path), "-o", str(out))
    assert code == 0, err
    t = _npz(out)
    assert {"bidirectional/forward", "bidirectional/backward"} <= set(t)
    assert {"bidirectional", "bidirectional/forward/c", "bidirectional/backward/c"} <= set(t)
    g = golden("bidi_concat")
    for key in (k for k in g if k.startswith("state/")):
        np.testing.assert_allclose(t[key[len("state/") :]], g[key], rtol=1e-4, atol=1e-5)
    # The merged sequence is concat(forward, backward flipped to input order).
    fwd, bwd = t["bidirectional/forward"], t["bidirectional/backward"]
    np.testing.assert_array_equal(t["bidirectional"], np.concatenate([fwd, bwd[:, ::-1]], -1))
    # With --gates, each direction's gates.
    code, _, _ = cli("trace", model, _x("bidi_concat", tmp_path), "--gates", "-o", str(out))
    assert code == 0
    keys = set(_npz(out))
    assert {f"bidirectional/{d}/{k}" for d in ("forward", "backward") for k in "ifgo"} <= keys
    assert {f"bidirectional_1/{d}/{k}" for d in ("forward", "backward") for k in "zr"} <= keys


def test_forward_npz_two_outputs_bidi_none(tmp_path: Path) -> None:
    model = str(SAMPLES / "bidi_none" / "model.keras")
    out = tmp_path / "y.npz"
    code, stdout, err = cli("forward", model, _x("bidi_none", tmp_path), "-o", str(out))
    assert code == 0, err
    assert stdout == ""
    y = _npz(out)
    g = golden("bidi_none")
    assert sorted(y) == ["output_0", "output_1"]
    np.testing.assert_allclose(y["output_0"], g["y/0"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y["output_1"], g["y/1"], rtol=1e-4, atol=1e-5)
    # --json: {"outputs": [...]}, the same numbers
    code, stdout, _ = cli("forward", model, _x("bidi_none", tmp_path), "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert [o["shape"] for o in doc["outputs"]] == [list(g["y/0"].shape), list(g["y/1"].shape)]
    for i, o in enumerate(doc["outputs"]):
        np.testing.assert_array_equal(np.asarray(o["output"], np.float32), y[f"output_{i}"])
    # .npy holds one array: refused before anything is written.
    code, _, err = cli("forward", model, _x("bidi_none", tmp_path), "-o", str(tmp_path / "y.npy"))
    assert code == ExitCode.OUTPUT and "2 outputs" in err
    assert not (tmp_path / "y.npy").exists()


def test_trace_view_bidi_none_and_gates() -> None:
    """The terminal view: an unmerged Bidirectional shows its forward direction; --gates
    adds one table per gate."""
    code, out, err = cli(
        "trace", str(SAMPLES / "bidi_none" / "model.keras"), "--random", "2", "--seed", "0"
    )
    assert code == 0, err
    assert "bidirectional/forward" in out
    code, out, err = cli(
        "trace", str(SAMPLES / "lstm" / "model.keras"), "--random", "1", "--seed", "0", "--gates"
    )
    assert code == 0, err
    for key in ("lstm/c", "lstm/i", "lstm/f", "lstm/g", "lstm/o"):
        assert key in out


def _value(token: str, dims: dict[str, int | None]) -> int:
    """``"4M1"`` -> 4 * dims["M1"], ``"2"`` -> 2, ``"D"`` -> dims["D"]."""
    m = re.fullmatch(r"(\d*)([A-Z]\w*)?", token)
    assert m is not None, token
    factor, name = m.groups()
    if name is None:
        return int(factor)
    value = dims[name]
    assert value is not None, name
    return int(factor or 1) * value


@pytest.mark.parametrize("model", ["acceptance_chain", "bidi_sum", "gru_v1", "nested_seq"])
def test_summary_json_counts_and_symbols(model: str) -> None:
    code, out, err = cli("summary", str(SAMPLES / model / "model.keras"), "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    keras = expected(model)["keras3"]
    assert doc["total_params"] == keras["total_params"]
    assert doc["trainable_params"] == keras["trainable_params"]
    # Per layer: Keras's rows; a nested model is one row holding its own layers.
    assert [(la["name"], la["type"], la["params"]) for la in doc["layers"]] == [
        (r["name"], r["class_name"], r["params"]) for r in keras["layers"]
    ]
    for row in keras["layers"]:
        inner = keras.get("inner_layers", {}).get(row["name"])
        if inner:
            ours = next(la for la in doc["layers"] if la["name"] == row["name"])
            want = [r for r in inner["layers"] if r["class_name"] != "InputLayer"]
            assert [(la["name"], la["params"]) for la in ours["layers"]] == [
                (r["name"], r["params"]) for r in want
            ]
    for layer in doc["layers"]:
        assert layer["params"] == sum(int(np.prod(w["shape"])) for w in layer["weights"])
        for w in layer["weights"]:
            tokens = w["symbol"].strip("()").split(",")
            assert [_value(t, doc["dims"]) for t in tokens if t] == w["shape"], (layer["name"], w)


def test_summary_json_acceptance_chain_symbols() -> None:
    """What rnninspect emits for an LSTM inside a Bidirectional: M1 is the first recurrent
    width, gates multiply it, concat doubles what the next layer sees."""
    code, out, _ = cli("summary", str(SAMPLES / "acceptance_chain" / "model.keras"), "--json")
    assert code == 0
    doc = json.loads(out)
    symbols = {la["name"]: [w["symbol"] for w in la["weights"]] for la in doc["layers"]}
    assert symbols["bidirectional"] == ["(D,4M1)", "(M1,4M1)", "(4M1,)"] * 2
    assert symbols["time_distributed"] == ["(2M1,H)", "(H,)"]
    assert symbols["gru"] == ["(H,3M2)", "(M2,3M2)", "(2,3M2)"]
    assert doc["dims"] == {"T": 9, "V": 30, "D": 5, "M1": 6, "H": 4, "M2": 5, "K": 3, "M": 6}
    names = [w["name"] for w in doc["layers"][1]["weights"]]
    assert names[:3] == ["forward/kernel", "forward/recurrent_kernel", "forward/bias"]
    assert names[3:] == ["backward/kernel", "backward/recurrent_kernel", "backward/bias"]
