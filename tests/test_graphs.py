"""The graph models of ``sample_models/`` (seq2seq with initial states, attention, MHA,
autoencoders, CNN-LSTM, merges, normalisation, RNN cells, ConvLSTM, multi-output,
shared layers, nested models called twice, stateful, time_major, masks through
merges and attention) against Keras's own goldens, in every file format Keras wrote.

References: ``golden.npz`` (Keras's predict, every recurrent call's
return_sequences output ``state/<layer>[#k]`` and final states ``final/<layer>/h|c``)
and ``expected.json`` (Keras's summary: per-layer params, output shapes, "Connected
to", totals), both from ``scripts/make_sample_models.py`` run with real Keras.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np
import pytest
from conftest import (
    ATOL,
    GRAPH_MODELS,
    RTOL,
    TFKERAS,
    TFKERAS_FILES,
    expected,
    golden,
    golden_outputs,
    run_cli,
    sample,
    semantics_of,
)

import rnninspect
from rnninspect.model import InputLayer

FULL = ("model.keras", "model.h5", "tfkeras.keras", "tfkeras.h5", "layers.npz")
# Weights-only files, with the config each is paired with (as a user would).
WEIGHTS = {"model.weights.h5": "model.keras", "tfkeras_weights.h5": "tfkeras.keras"}

FILES = [(m, f) for m in GRAPH_MODELS for f in (*FULL, *WEIGHTS) if sample(m, f).is_file()]


def _id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}/{pair[1]}"


@cache
def _load(model: str, name: str) -> rnninspect.Model:
    config = sample(model, WEIGHTS[name]) if name in WEIGHTS else None
    return rnninspect.load_model(sample(model, name), config=config)


def _inputs(model: str) -> list[np.ndarray]:
    g = golden(model)
    if "x" in g:
        return [g["x"]]
    return [g[f"x/{i}"] for i in range(sum(k.startswith("x/") for k in g))]


def _flavour(name: str) -> str:
    return "tfkeras" if name in TFKERAS_FILES else "keras3"


def test_every_graph_model_is_here() -> None:
    """The architectures issue 10 names each have a sample model."""
    want = {
        "seq2seq_states", "seq2seq_gru", "attention_seq2seq", "additive_attention", "mha",
        "autoencoder", "cnn_lstm", "merges", "norm_act", "rnn_cells", "bidi_cells",
        "convlstm1d", "convlstm2d", "multi_output", "gru_state_outputs",
        "simplernn_state_outputs", "shared_layers", "shared_nested", "stateful",
        "plumbing", "masked_graph", "masked_attention", "td_conv2d", "time_major",
    }  # fmt: skip
    assert want <= set(GRAPH_MODELS)


@pytest.mark.parametrize("pair", FILES, ids=_id)
def test_outputs_equal_keras(pair: tuple[str, str]) -> None:
    model, name = pair
    m = _load(model, name)
    got = m.forward_all(_inputs(model) if len(m.inputs) > 1 else _inputs(model)[0])
    want = golden_outputs(model, TFKERAS if name in TFKERAS_FILES else semantics_of(name))
    assert len(got) == len(want), "every output, none dropped"
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.shape == b.shape, (i, a.shape, b.shape)
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"output {i}")


@pytest.mark.parametrize("pair", [p for p in FILES if p[1] not in TFKERAS_FILES], ids=_id)
def test_states_equal_keras(pair: tuple[str, str]) -> None:
    """Each recurrent call's trace is Keras's return_sequences output; its final h
    and c are Keras's final states (shared layers: one entry per call)."""
    model, name = pair
    m = _load(model, name)
    g = golden(model)
    if "y_tfkeras" in g and "tfkeras_note" in expected(model) and model == "time_major":
        pytest.skip("time_major has tf_keras goldens only")
    trace = m.trace(_inputs(model) if len(m.inputs) > 1 else _inputs(model)[0])
    checked = 0
    for key in g:
        if key.startswith("state/"):
            layer = key.removeprefix("state/")
            np.testing.assert_allclose(trace[layer], g[key], rtol=RTOL, atol=ATOL, err_msg=key)
            checked += 1
        elif key.startswith("final/") and key.endswith("/c"):
            layer = key.removeprefix("final/").removesuffix("/c")
            c = trace[f"{layer}/c"]  # (N, T, ...); time first for a time_major layer
            found = c[-1] if getattr(m.node(layer).layer, "time_major", False) else c[:, -1]
            np.testing.assert_allclose(found, g[key], rtol=RTOL, atol=ATOL, err_msg=key)
    assert checked == sum(k.startswith("state/") for k in g)


def _rows(model: str, flavour: str) -> list[dict[str, Any]]:
    """Keras's summary rows, without the rows of mask operations (NotEqual, Any, ...)
    that Keras 3 lists for masked Functional models but keeps out of model.layers."""
    return [r for r in expected(model)[flavour]["layers"] if not r.get("operation")]


def _ours(s: Any) -> dict[str, Any]:
    return {r.name: r for r in s.layers}


@pytest.mark.parametrize("pair", [p for p in FILES if p[1] != "layers.npz"], ids=_id)
def test_summary_equals_keras(pair: tuple[str, str]) -> None:
    """Parameter counts (total, trainable, per layer), output shapes and Keras's
    "Connected to" column."""
    model, name = pair
    flavour = expected(model)[_flavour(name)]
    s = _load(model, name).summary()
    assert s.total_params == flavour["total_params"]
    assert s.trainable_params == flavour["trainable_params"]
    assert s.non_trainable_params == flavour["non_trainable_params"]
    ours = _ours(s)
    rows = _rows(model, _flavour(name))
    assert [r["name"] for r in rows if r["name"] in ours] == [r.name for r in s.layers]
    for row in rows:
        info = ours[row["name"]]
        assert info.params == row["params"], row["name"]
        shape = row["output_shape"]
        if shape and isinstance(shape[0], list):  # several outputs
            assert [list(x) for x in info.output_shapes] == shape, row["name"]
        elif (
            row["class_name"] != "InputLayer"
            and _shared_once(model, row["name"])
            # time_major: Keras's batch axis is time there, and its summary shows the
            # real batch as a fixed size from the layer that ends the time axis on.
            and model != "time_major"
        ):
            assert list(info.output_shape) == shape, row["name"]
        if row.get("connected_to"):
            # Keras 3 also names the mask operations (NotEqual, Any, ...) it adds for
            # masked models; they are not layers, and rnninspect lists none.
            ops = {
                r["name"] for r in expected(model)[_flavour(name)]["layers"] if r.get("operation")
            }
            want = [c for c in row["connected_to"] if c.split("[")[0] not in ops]
            assert info.connected_to == want, row["name"]


def _shared_once(model: str, layer: str) -> bool:
    """Keras shows a shared layer's shape from its last call; ours is the first's."""
    rec = expected(model).get("recurrent_layers") or {}
    entry = rec.get(layer) if isinstance(rec, dict) else None
    return not (isinstance(entry, dict) and entry.get("calls", 1) > 1)


@pytest.mark.parametrize("model", [m for m in GRAPH_MODELS if sample(m, "model.keras").is_file()])
def test_json_outputs_have_keras_names(model: str) -> None:
    m = _load(model, "model.keras")
    args = ["forward", str(sample(model, "model.keras")), "--random", "2", "--seed", "3", "--json"]
    if m.inputs[0].shape and m.inputs[0].shape[0] is None:
        args += ["--length", "5"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    doc = json.loads(out)
    names = expected(model)["output_names"]
    if len(m.outputs) == 1:
        assert {"shape", "dtype", "output"} <= set(doc)
    else:
        assert [o["name"] for o in doc["outputs"]] == names
        assert all(len(o["output"]) == 2 for o in doc["outputs"])


@pytest.mark.parametrize("model", GRAPH_MODELS)
def test_inputs_in_keras_order(model: str) -> None:
    name = "model.keras" if sample(model, "model.keras").is_file() else "tfkeras.keras"
    m = _load(model, name)
    key = "name" if name == "model.keras" else "tfkeras_name"
    want = [i.get(key, i["name"]) for i in expected(model)["inputs"]]
    assert [i.name for i in m.inputs] == want
    assert all(isinstance(n.layer, InputLayer) for n in m.nodes[: len(m.inputs)])


def test_several_inputs_from_the_cli(tmp_path: Any) -> None:
    """An .npz INPUT keyed by input names, or --input NAME=PATH each, gives Keras's
    output; a missing input is a usage error naming the inputs."""
    model = "seq2seq_states"
    m = _load(model, "model.keras")
    names = [i.name for i in m.inputs]
    xs = _inputs(model)
    both = tmp_path / "x.npz"
    np.savez(both, **dict(zip(names, xs, strict=True)))
    path = str(sample(model, "model.keras"))
    code, out, err = run_cli("forward", path, str(both), "--json")
    assert code == 0, err
    want = golden_outputs(model)[0]
    np.testing.assert_allclose(np.array(json.loads(out)["output"]), want, rtol=RTOL, atol=ATOL)
    files = []
    for n, x in zip(names, xs, strict=True):
        np.save(tmp_path / f"{n}.npy", x)
        files += ["--input", f"{n}={tmp_path / f'{n}.npy'}"]
    code, out, err = run_cli("forward", path, *files, "--json")
    assert code == 0, err
    np.testing.assert_allclose(np.array(json.loads(out)["output"]), want, rtol=RTOL, atol=ATOL)
    code, _, err = run_cli("forward", path, files[0], files[1])
    assert code == 2 and names[1] in err
    code, _, err = run_cli("forward", path, "--input", "nope=x.npy")
    assert code == 2 and "no input 'nope'" in err


def test_several_outputs_to_npz(tmp_path: Any) -> None:
    """-o y.npz holds output_0, output_1, ... in Keras's order: none dropped (a GRU's
    [output, state] used to collapse to one)."""
    model = "gru_state_outputs"
    x = tmp_path / "x.npy"
    np.save(x, _inputs(model)[0])
    y = tmp_path / "y.npz"
    code, _, err = run_cli("forward", str(sample(model, "model.keras")), str(x), "-o", str(y))
    assert code == 0, err
    with np.load(y) as z:
        assert z.files == ["output_0", "output_1"]
        for i, want in enumerate(golden_outputs(model)):
            np.testing.assert_allclose(z[f"output_{i}"], want, rtol=RTOL, atol=ATOL)


def test_trace_covers_every_call_of_a_shared_layer() -> None:
    m = _load("shared_layers", "model.keras")
    keys = sorted(n.key for n in m.recurrent_nodes())
    assert len(keys) == 2 and keys[1] == keys[0] + "#1"
    states = m.trace(_inputs("shared_layers"))
    assert set(keys) <= set(states)
    assert not np.allclose(states[keys[0]], states[keys[1]])  # two inputs, two traces


def test_trace_layer_gives_any_layers_output() -> None:
    """trace --layer on an attention layer gives its output (N, Tq, D)."""
    model = "attention_seq2seq"
    path = str(sample(model, "model.keras"))
    code, out, err = run_cli("trace", path, "--random", "2", "--layer", "attention", "--json")
    assert code == 0, err
    doc = json.loads(out)["layers"]["attention"]
    m = _load(model, "model.keras")
    node = m.node("attention")
    assert doc["shape"] == [2, *node.output_shapes[0]]
