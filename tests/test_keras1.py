"""Keras 1 legacy full saves, synthesised with h5py from the sample models' weights.

What Keras 1.2 wrote (``/work/shared/keras-formats.md``, "Keras 1"): no
``keras_version`` attribute anywhere; ``model_config`` a Sequential whose ``config`` is
the plain layer list, Keras 1 names (``output_dim``, ``inner_activation``, ``init``,
``W_regularizer``, ``dropout_W`` ..., ``input_dim``/``input_length`` or
``batch_input_shape`` on the first layer, Dense ``output_dim``/``bias``); layer names
``lstm_1``, ``dense_1``; string attributes as fixed-length bytes; and recurrent weights
stored **per gate**:

* SimpleRNN ``W, U, b``;
* LSTM 12 arrays ``W_i, U_i, b_i, W_c, U_c, b_c, W_f, U_f, b_f, W_o, U_o, b_o`` (stored
  order i, c, f, o; the fused Keras 2+ layout is i, f, c, o);
* GRU 9 arrays ``W_z, U_z, b_z, W_r, U_r, b_r, W_h, U_h, b_h`` (Keras 1's GRU is the
  ``reset_after=False`` one).

The per-gate arrays here are cut from the fused arrays of ``sample_models/lstm``,
``gru_v1`` and ``seed``; rnninspect must fuse them back exactly and reproduce Keras's
outputs where the semantics coincide. Keras 1's default ``inner_activation`` is
``hard_sigmoid`` (``clip(0.2x + 0.5)``): the LSTM file says ``sigmoid`` to compare with
Keras 3's golden, and a second one keeps ``hard_sigmoid`` (compared with the reference).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rnnref
from conftest import (
    assert_close,
    check_golden,
    computing,
    golden,
    keras_config,
    load_sample,
    sample,
)
from filetools import write_legacy_h5

import rnninspect
from rnninspect.model import GRU, LSTM, SimpleRNN

Weights = list[tuple[str, np.ndarray]]


def _npz(model: str) -> dict[str, np.ndarray]:
    with np.load(sample(model, "layers.npz")) as z:
        return {k: z[k] for k in z.files if k != "__config__"}


def _split(fused: np.ndarray, n: int) -> list[np.ndarray]:
    """Fused gate blocks along the last axis -> per-gate arrays (copies)."""
    M = fused.shape[-1] // n
    return [np.ascontiguousarray(fused[..., k * M : (k + 1) * M]) for k in range(n)]


def _gate_blocks(gates: str, K: np.ndarray, R: np.ndarray, b: np.ndarray) -> dict[str, tuple]:
    """Gate -> (W, U, b) cut from the fused arrays, blocks in the order ``gates``."""
    Ks, Rs, bs = (_split(a, len(gates)) for a in (K, R, b))
    return {gate: (Ks[k], Rs[k], bs[k]) for k, gate in enumerate(gates)}


def lstm_per_gate(name: str, K: np.ndarray, R: np.ndarray, b: np.ndarray,
                  stored: str = "icfo") -> Weights:  # fmt: skip
    """Keras 1 LSTM weights: fused i, f, c, o blocks cut and stored in ``stored`` order."""
    blocks = _gate_blocks("ifco", K, R, b)
    out: Weights = []
    for gate in stored:
        W, U, bias = blocks[gate]
        out += [(f"{name}_W_{gate}", W), (f"{name}_U_{gate}", U), (f"{name}_b_{gate}", bias)]
    return out


def gru_per_gate(name: str, K: np.ndarray, R: np.ndarray, b: np.ndarray) -> Weights:
    """Keras 1 GRU weights (reset_after=False, bias (3M,)): z, r, h blocks."""
    assert b.ndim == 1
    out: Weights = []
    for gate, (W, U, bias) in _gate_blocks("zrh", K, R, b).items():
        out += [(f"{name}_W_{gate}", W), (f"{name}_U_{gate}", U), (f"{name}_b_{gate}", bias)]
    return out


def dense_keras1(name: str, W: np.ndarray, b: np.ndarray) -> tuple[dict[str, Any], Weights]:
    cfg = {
        "class_name": "Dense",
        "config": {
            "name": name,
            "trainable": True,
            "output_dim": int(W.shape[1]),
            "init": "glorot_uniform",
            "activation": "linear",
            "W_regularizer": None,
            "b_regularizer": None,
            "activity_regularizer": None,
            "W_constraint": None,
            "b_constraint": None,
            "bias": True,
            "input_dim": int(W.shape[0]),
        },
    }
    return cfg, [(f"{name}_W", W), (f"{name}_b", b)]


def recurrent_keras1(cls: str, name: str, units: int, first: str | None, T: int, D: int,
                     **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A Keras 1 recurrent layer entry. ``first``: how the first layer gives the input
    shape (``batch_input_shape`` or ``input_dim`` + ``input_length``); None otherwise."""
    cfg: dict[str, Any] = {
        "name": name,
        "trainable": True,
        "output_dim": units,
        "init": "glorot_uniform",
        "inner_init": "orthogonal",
        "activation": "tanh",
        "W_regularizer": None,
        "U_regularizer": None,
        "b_regularizer": None,
        "dropout_W": 0.0,
        "dropout_U": 0.0,
        "return_sequences": False,
        "go_backwards": False,
        "stateful": False,
        "unroll": False,
        "consume_less": "cpu",
    }
    if cls != "SimpleRNN":
        cfg["inner_activation"] = "hard_sigmoid"  # Keras 1's default, written out
    if cls == "LSTM":
        cfg["forget_bias_init"] = "one"
    if first == "batch_input_shape":
        cfg["batch_input_shape"] = [None, T, D]
        cfg["input_dtype"] = "float32"
    elif first == "input_dim":
        cfg["input_dim"] = D
        cfg["input_length"] = T
    cfg.update(extra)
    return {"class_name": cls, "config": cfg}


def keras1_file(path: Path, entries: list[tuple[dict[str, Any], Weights]]) -> Path:
    config = {"class_name": "Sequential", "config": [entry for entry, _ in entries]}
    layers = [(entry["config"]["name"], ws) for entry, ws in entries]
    return write_legacy_h5(path, config, layers, keras_version=None, as_bytes=True)


FIRST_LAYER_SHAPES = ["batch_input_shape", "input_dim"]


# -------------------------------------------------------------------------- LSTM


def _lstm_file(path: Path, first: str, inner: str = "sigmoid", stored: str = "icfo") -> Path:
    w = _npz("lstm")
    rnn = recurrent_keras1("LSTM", "lstm_1", 6, first, 10, 3, inner_activation=inner)
    dense = dense_keras1("dense_1", w["dense/kernel"], w["dense/bias"])
    per_gate = lstm_per_gate(
        "lstm_1", w["lstm/kernel"], w["lstm/recurrent_kernel"], w["lstm/bias"], stored
    )
    return keras1_file(path, [(rnn, per_gate), dense])


@pytest.mark.parametrize("first", FIRST_LAYER_SHAPES)
def test_keras1_lstm_fuses_gates_and_matches_keras(tmp_path: Path, first: str) -> None:
    m = rnninspect.load_model(_lstm_file(tmp_path / "k1.h5", first))
    assert m.source.keras_version == "1" and m.source.format == "legacy-h5"
    assert m.inputs[0].shape == (10, 3) and m.input_shape == (None, 10, 3)
    ref = load_sample("lstm", "model.keras")
    lstm, dense = m.layers
    assert isinstance(lstm, LSTM) and (lstm.name, dense.name) == ("lstm_1", "dense_1")
    assert lstm.units == 6 and lstm.recurrent_activation == "sigmoid"
    for (n1, a1), (n2, a2) in zip(lstm.weights(), ref.layers[0].weights(), strict=True):
        assert n1 == n2
        np.testing.assert_array_equal(a1, a2)  # fused back exactly: i, f, c, o
    check_golden(m, "lstm", "Keras 1 LSTM", by_name=False)
    s = m.summary()
    assert [li.params for li in s.layers] == [4 * (3 * 6 + 6 * 6 + 6), 6 * 2 + 2]


def test_keras1_gate_order_guard(tmp_path: Path) -> None:
    """Guard: the same arrays stored in the fused order (i, f, c, o) instead of Keras 1's
    (i, c, f, o) give other numbers, so the test above does check the order."""
    m = rnninspect.load_model(_lstm_file(tmp_path / "wrong.h5", "batch_input_shape", stored="ifco"))
    g = golden("lstm")
    assert not np.allclose(m.forward(g["x"]), g["y"], rtol=1e-3, atol=1e-3)


def test_keras1_lstm_default_hard_sigmoid_is_keras2_formula(tmp_path: Path) -> None:
    """Keras 1's own default inner_activation: hard_sigmoid, clip(0.2x + 0.5)."""
    m = rnninspect.load_model(_lstm_file(tmp_path / "k1.h5", "input_dim", inner="hard_sigmoid"))
    assert m.layers[0].recurrent_activation == "hard_sigmoid"  # type: ignore[attr-defined]
    config = copy.deepcopy(keras_config("lstm"))
    config["config"]["layers"][1]["config"]["recurrent_activation"] = "hard_sigmoid"
    x = golden("lstm")["x"]
    y2, states2 = rnnref.run_chain(config, _npz("lstm"), x, generation=2)
    y3, _ = rnnref.run_chain(config, _npz("lstm"), x, generation=3)
    y = m.forward(x)
    assert_close(y, y2, "Keras 1 hard_sigmoid LSTM vs reference (0.2x + 0.5)")
    assert not np.allclose(y, y3, rtol=1e-4, atol=1e-5)
    assert_close(m.trace(x)["lstm_1"], states2["lstm"], "trace vs reference")


# --------------------------------------------------------------------------- GRU


def _gru_entries(first: str) -> tuple[dict[str, Any], Weights]:
    w = _npz("gru_v1")
    rnn = recurrent_keras1("GRU", "gru_1", 5, first, 10, 3, return_sequences=True)
    return rnn, gru_per_gate("gru_1", w["gru/kernel"], w["gru/recurrent_kernel"], w["gru/bias"])


@pytest.mark.parametrize("first", FIRST_LAYER_SHAPES)
def test_keras1_gru_fuses_gates(tmp_path: Path, first: str) -> None:
    """gru_v1's first layer (reset_after=False, hard_sigmoid, sequences) as a Keras 1
    GRU: fused back exactly, reset_after=False, tf_keras's hard_sigmoid."""
    m = rnninspect.load_model(keras1_file(tmp_path / "k1.h5", [_gru_entries(first)]))
    (gru,) = m.layers
    assert (
        isinstance(gru, GRU) and not gru.reset_after and gru.recurrent_activation == "hard_sigmoid"
    )
    ref = load_sample("gru_v1", "model.keras").layers[0]
    for (n1, a1), (n2, a2) in zip(gru.weights(), ref.weights(), strict=True):
        assert n1 == n2
        np.testing.assert_array_equal(a1, a2)
    x = golden("gru_v1")["x"]
    # The reference (validated against y_tfkeras in test_formats) with 0.2x + 0.5 ...
    one_layer = copy.deepcopy(keras_config("gru_v1"))
    one_layer["config"]["layers"] = one_layer["config"]["layers"][:2]
    _, want = rnnref.run_chain(one_layer, _npz("gru_v1"), x, generation=2)
    assert_close(m.forward(x), want["gru"], "Keras 1 GRU vs reference (tf_keras hard_sigmoid)")
    # ... which is what the tf_keras file computes for that layer.
    tf = load_sample("gru_v1", "tfkeras.h5").trace(x)["gru"]
    assert_close(m.forward(x), tf, "Keras 1 GRU vs gru_v1/tfkeras.h5 trace")


def test_keras1_gru_in_the_whole_gru_v1_model_matches_tf_keras(tmp_path: Path) -> None:
    """The whole gru_v1 model in one Keras-1-era file: the first GRU per gate (Keras 1),
    the Dense with Keras 1 names. Keras 1 had no reset_after GRU, so gru_v1's second GRU
    (reset_after=True, go_backwards) keeps its fused arrays and a Keras 2 config: the
    loader fuses per layer, by array count. Semantics are tf_keras's: y_tfkeras."""
    w = _npz("gru_v1")
    second = {
        "class_name": "GRU",
        "config": {
            "name": "gru_2",
            "units": 4,
            "activation": "tanh",
            "recurrent_activation": "sigmoid",
            "reset_after": True,
            "return_sequences": False,
            "go_backwards": True,
        },
    }
    second_ws = [
        ("gru_2_kernel", w["gru_1/kernel"]),
        ("gru_2_recurrent_kernel", w["gru_1/recurrent_kernel"]),
        ("gru_2_bias", w["gru_1/bias"]),
    ]
    dense = dense_keras1("dense_1", w["dense/kernel"], w["dense/bias"])
    path = keras1_file(
        tmp_path / "k1.h5", [_gru_entries("batch_input_shape"), (second, second_ws), dense]
    )
    m = rnninspect.load_model(path)
    assert [la.class_name for la in computing(m.layers)] == ["GRU", "GRU", "Dense"]
    assert [la.reset_after for la in m.layers[:2]] == [False, True]  # type: ignore[attr-defined]
    g = golden("gru_v1")
    assert_close(m.forward(g["x"]), g["y_tfkeras"], "Keras 1 gru_v1 vs y_tfkeras")
    assert not np.allclose(m.forward(g["x"]), g["y"], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------- SimpleRNN


@pytest.mark.parametrize("first", FIRST_LAYER_SHAPES)
def test_keras1_simple_rnn_matches_keras(tmp_path: Path, first: str) -> None:
    w = _npz("seed")
    rnn = recurrent_keras1("SimpleRNN", "simplernn_1", 5, first, 10, 3)
    ws = [
        ("simplernn_1_W", w["simple_rnn/kernel"]),
        ("simplernn_1_U", w["simple_rnn/recurrent_kernel"]),
        ("simplernn_1_b", w["simple_rnn/bias"]),
    ]
    dense = dense_keras1("dense_1", w["dense/kernel"], w["dense/bias"])
    m = rnninspect.load_model(keras1_file(tmp_path / "k1.h5", [(rnn, ws), dense]))
    assert isinstance(m.layers[0], SimpleRNN) and m.source.keras_version == "1"
    assert m.summary().total_params == 57
    check_golden(m, "seed", "Keras 1 SimpleRNN", by_name=False)
