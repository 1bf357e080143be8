"""Gate activations (``trace(gates=True)``) against hand computation.

Tiny models with hand-written weights are written to ``.npz`` files with a Keras 3
``__config__`` (the exact shape of ``sample_models/*/config.json``, edited), and every
gate of every step is recomputed here in plain Python floats from the formulas in
``/work/shared/keras-formats.md``:

* LSTM, gates stacked **i, f, c, o**: ``i, f, o = ract(x Wx + h Wh + b)`` per block,
  ``g = act(...)``, ``c' = f*c + i*g``, ``h' = o*act(c')``;
* GRU, gates **z, r, h**: ``reset_after=True`` (bias (2, 3M): input row, recurrent row)
  ``hh = act(x Wh + b0 + r*(h Uh + b1))``; ``reset_after=False`` (bias (3M,))
  ``hh = act(x Wh + b + (r*h) Uh)``; both ``h' = z*h + (1-z)*hh``;
* SimpleRNN: ``h' = act(x Wx + h Wh + b)`` (no gates).

``hard_sigmoid`` depends on the Keras generation that wrote the file: Keras 1/2 and
tf_keras ``clip(0.2x + 0.5, 0, 1)``, Keras 3 ``clip(x/6 + 0.5, 0, 1)``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import (
    CHAIN_MODELS,
    MODELS,
    assert_close,
    check_sample,
    expected,
    golden,
    input_mask,
    keras_config,
    load_sample,
    sample,
)
from filetools import edit_h5, write_legacy_h5

import rnninspect
from rnninspect.model import GRU, LSTM, Bidirectional, Recurrent
from rnninspect.versions import keras_major

# ------------------------------------------------------------- plain-Python reference

Vec = list[float]
Fn = Callable[[float], float]


def sigmoid(a: float) -> float:
    return 1.0 / (1.0 + math.exp(-a)) if a >= 0 else math.exp(a) / (1.0 + math.exp(a))


def hard_sigmoid_keras2(a: float) -> float:
    return min(1.0, max(0.0, 0.2 * a + 0.5))


def hard_sigmoid_keras3(a: float) -> float:
    return min(1.0, max(0.0, a / 6.0 + 0.5))


ACT: dict[str, Fn] = {
    "tanh": math.tanh,
    "sigmoid": sigmoid,
    "relu": lambda a: a if a > 0 else 0.0,
    "linear": lambda a: a,
}


def affine(
    x: Vec, W: np.ndarray, cols: range, h: Vec | None = None, U: np.ndarray | None = None
) -> Vec:
    """``x . W[:, j] (+ h . U[:, j])`` for the columns ``cols``, one float at a time."""
    out = []
    for j in cols:
        acc = 0.0
        for d, xd in enumerate(x):
            acc += xd * float(W[d, j])
        if h is not None and U is not None:
            for k, hk in enumerate(h):
                acc += hk * float(U[k, j])
        out.append(acc)
    return out


def lstm_steps(x: list[Vec], K: np.ndarray, R: np.ndarray, b: np.ndarray, act: Fn, ract: Fn,
               order: str = "ifco") -> list[dict[str, Vec]]:  # fmt: skip
    """Every step's gates and states. ``order``: the stacking of the gate blocks
    (Keras: ``ifco``); another order is only used to show the test would notice."""
    M = R.shape[0]
    h, c = [0.0] * M, [0.0] * M
    steps = []
    for xt in x:
        blocks = {}
        for k, gate in enumerate(order):
            cols = range(k * M, (k + 1) * M)
            pre = [a + float(b[j]) for a, j in zip(affine(xt, K, cols, h, R), cols, strict=True)]
            blocks[gate] = pre
        i = [ract(a) for a in blocks["i"]]
        f = [ract(a) for a in blocks["f"]]
        g = [act(a) for a in blocks["c"]]
        o = [ract(a) for a in blocks["o"]]
        c = [f[j] * c[j] + i[j] * g[j] for j in range(M)]
        h = [o[j] * act(c[j]) for j in range(M)]
        steps.append({"i": i, "f": f, "g": g, "o": o, "c": c, "h": h})
    return steps


def gru_steps(x: list[Vec], K: np.ndarray, R: np.ndarray, b: np.ndarray, act: Fn, ract: Fn,
              reset_after: bool) -> list[dict[str, Vec]]:  # fmt: skip
    M = R.shape[0]
    h = [0.0] * M
    zc, rc, hc = range(0, M), range(M, 2 * M), range(2 * M, 3 * M)
    steps = []
    for xt in x:
        if reset_after:  # b[0]: input bias, b[1]: recurrent bias
            xz, xr, xh = (
                [a + float(b[0, j]) for a, j in zip(affine(xt, K, cols), cols, strict=True)]
                for cols in (zc, rc, hc)
            )
            hz, hr, hh_ = (
                [a + float(b[1, j]) for a, j in zip(affine(h, R, cols), cols, strict=True)]
                for cols in (zc, rc, hc)
            )
            z = [ract(xz[j] + hz[j]) for j in range(M)]
            r = [ract(xr[j] + hr[j]) for j in range(M)]
            cand = [act(xh[j] + r[j] * hh_[j]) for j in range(M)]
        else:  # one bias; the reset gate multiplies h before the recurrent product
            xz, xr, xh = (
                [a + float(b[j]) for a, j in zip(affine(xt, K, cols), cols, strict=True)]
                for cols in (zc, rc, hc)
            )
            z = [ract(a + u) for a, u in zip(xz, affine(h, R, zc), strict=True)]
            r = [ract(a + u) for a, u in zip(xr, affine(h, R, rc), strict=True)]
            rh = [r[j] * h[j] for j in range(M)]
            cand = [act(a + u) for a, u in zip(xh, affine(rh, R, hc), strict=True)]
        h = [z[j] * h[j] + (1 - z[j]) * cand[j] for j in range(M)]
        steps.append({"z": z, "r": r, "candidate": cand, "h": h})
    return steps


def simple_steps(x: list[Vec], K: np.ndarray, R: np.ndarray, b: np.ndarray, act: Fn) -> list[Vec]:
    M = R.shape[0]
    h = [0.0] * M
    out = []
    for xt in x:
        cols = range(M)
        h = [act(a + float(b[j])) for a, j in zip(affine(xt, K, cols, h, R), cols, strict=True)]
        out.append(h)
    return out


def as_array(steps: list[dict[str, Vec]], key: str) -> np.ndarray:
    """(1, T, M) from one sample's steps."""
    return np.array([[s[key] for s in steps]])


# ------------------------------------------------------------------- model files


def rnn_config(kind: str, units: int, T: int, D: int, **layer: Any) -> dict[str, Any]:
    """A Keras 3 Sequential config Input(T, D) -> <kind>(units, return_sequences=True):
    a sample's config.json with the Dense head removed and the layer edited."""
    source = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "seed_sequential"}[kind]
    config = copy.deepcopy(keras_config(source))
    inp, rnn = config["config"]["layers"][:2]
    assert inp["class_name"] == "InputLayer" and rnn["class_name"] == kind
    inp["config"]["batch_shape"] = [None, T, D]
    rnn["config"].update(units=units, return_sequences=True, **layer)
    config["config"]["layers"] = [inp, rnn]
    config["build_config"] = {"input_shape": [None, T, D]}
    return config


def write_npz(path: Path, config: dict[str, Any], weights: list[np.ndarray]) -> Path:
    name = config["config"]["layers"][1]["config"]["name"]
    keys = ["kernel", "recurrent_kernel", "bias"]
    arrays = {f"{name}/{k}": w for k, w in zip(keys, weights, strict=True)}
    np.savez(path, __config__=np.array(json.dumps(config)), **arrays)
    return path


def write_h5(
    path: Path, config: dict[str, Any], weights: list[np.ndarray], version: str | None
) -> Path:
    """The same model as a legacy full-save .h5 written by Keras ``version``."""
    name = config["config"]["layers"][1]["config"]["name"]
    keys = ["kernel", "recurrent_kernel", "bias"]
    named = [(f"{name}/cell/{k}", w) for k, w in zip(keys, weights, strict=True)]
    return write_legacy_h5(path, config, [(name, named)], keras_version=version)


def f64(rows: list[list[float]]) -> np.ndarray:
    """Hand-written weights, kept in float64 so that the decimal literals below are the
    very numbers the engine uses (Keras's own files hold float32; the loader takes both)."""
    return np.array(rows, dtype=np.float64)


def x_list(x: np.ndarray, n: int = 0) -> list[Vec]:
    return [[float(v) for v in step] for step in x[n]]


# ------------------------------------------------------------------------- LSTM

# D = 1, M = 1: each gate block is one column, values chosen so that every gate
# differs from every other (a wrong block order cannot go unnoticed).
LSTM_K = f64([[0.5, -1.0, 1.5, 2.0]])  # i, f, c, o
LSTM_R = f64([[0.25, 0.75, -0.5, 1.0]])
LSTM_B = np.array([0.1, 1.0, -0.2, 0.3])
LSTM_X = np.array([[[1.0], [-0.5]]], dtype=np.float32)  # N=1, T=2, D=1


def test_lstm_one_step_by_hand(tmp_path: Path) -> None:
    """Step 0 by hand (h = c = 0): pre-activations are kernel + bias."""
    m = rnninspect.load_model(
        write_npz(tmp_path / "m.npz", rnn_config("LSTM", 1, 2, 1), [LSTM_K, LSTM_R, LSTM_B])
    )
    t = m.trace(LSTM_X, dtype="float64", gates=True)
    assert list(t) == ["lstm", "lstm/c", "lstm/i", "lstm/f", "lstm/g", "lstm/o"]
    i = sigmoid(1.0 * 0.5 + 0.1)  # sigmoid(0.6)
    f = sigmoid(1.0 * -1.0 + 1.0)  # sigmoid(0.0) = 0.5
    g = math.tanh(1.0 * 1.5 - 0.2)  # tanh(1.3)
    o = sigmoid(1.0 * 2.0 + 0.3)  # sigmoid(2.3)
    c = f * 0.0 + i * g
    h = o * math.tanh(c)
    assert f == 0.5
    for key, want in {"i": i, "f": f, "g": g, "o": o, "c": c}.items():
        assert t[f"lstm/{key}"][0, 0, 0] == pytest.approx(want, rel=1e-12), key
    assert t["lstm"][0, 0, 0] == pytest.approx(h, rel=1e-12)
    # Step 1 uses h and c: c' = f*c + i*g with the previous c.
    x1 = -0.5
    i1 = sigmoid(x1 * 0.5 + h * 0.25 + 0.1)
    f1 = sigmoid(x1 * -1.0 + h * 0.75 + 1.0)
    g1 = math.tanh(x1 * 1.5 + h * -0.5 - 0.2)
    o1 = sigmoid(x1 * 2.0 + h * 1.0 + 0.3)
    c1 = f1 * c + i1 * g1
    for key, want in {"i": i1, "f": f1, "g": g1, "o": o1, "c": c1}.items():
        assert t[f"lstm/{key}"][0, 1, 0] == pytest.approx(want, rel=1e-12), key
    assert t["lstm"][0, 1, 0] == pytest.approx(o1 * math.tanh(c1), rel=1e-12)
    # float32, as Keras computes
    t32 = m.trace(LSTM_X, gates=True)
    for key in t:
        np.testing.assert_allclose(t32[key], t[key], rtol=1e-6, atol=1e-7)


def _weights(
    rng: np.random.Generator, D: int, M: int, g: int, bias_shape: tuple[int, ...]
) -> list[np.ndarray]:
    return [
        rng.uniform(-1, 1, (D, g * M)).astype(np.float32),
        rng.uniform(-0.8, 0.8, (M, g * M)).astype(np.float32),
        rng.uniform(-0.5, 0.5, bias_shape).astype(np.float32),
    ]


@pytest.mark.parametrize(
    ("activation", "recurrent_activation"), [("tanh", "sigmoid"), ("relu", "tanh")]
)
def test_lstm_every_gate_every_step(
    tmp_path: Path, activation: str, recurrent_activation: str
) -> None:
    rng = np.random.default_rng(11)
    D, M, T, N = 3, 2, 4, 2
    ws = _weights(rng, D, M, 4, (4 * M,))
    cfg = rnn_config(
        "LSTM", M, T, D, activation=activation, recurrent_activation=recurrent_activation
    )
    m = rnninspect.load_model(write_npz(tmp_path / "m.npz", cfg, ws))
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    t = m.trace(x, dtype="float64", gates=True)
    for n in range(N):
        steps = lstm_steps(x_list(x, n), *ws, ACT[activation], ACT[recurrent_activation])
        for key, got in (("i", "i"), ("f", "f"), ("g", "g"), ("o", "o"), ("c", "c"), ("h", "")):
            want = as_array(steps, key)[0]
            assert_close(
                t[f"lstm/{got}" if got else "lstm"][n], want, f"lstm {key}", rtol=1e-10, atol=1e-12
            )


def test_lstm_gate_order_matters() -> None:
    """Guard: the hand reference tells the gate orders apart, so the checks above would
    catch an engine stacking i, c, f, o (Keras 1's storage order) or i, f, o, c."""
    x = x_list(LSTM_X)
    right = lstm_steps(x, LSTM_K, LSTM_R, LSTM_B, math.tanh, sigmoid)
    for order in ("icfo", "ifoc", "fico"):
        wrong = lstm_steps(x, LSTM_K, LSTM_R, LSTM_B, math.tanh, sigmoid, order=order)
        assert not np.allclose(as_array(wrong, "h"), as_array(right, "h"), rtol=1e-3), order


# -------------------------------------------------------------------------- GRU

# D = 1, M = 1, gates z, r, h: one column each.
GRU_K = f64([[0.8, -0.6, 1.2]])
GRU_R = f64([[0.5, 1.1, -0.9]])
GRU_B2 = f64([[0.1, -0.2, 0.3], [0.4, 0.25, -0.35]])  # reset_after: input row, recurrent row
GRU_B1 = np.array([0.1, -0.2, 0.3])
GRU_X = np.array([[[0.75], [-1.25], [0.375]]], dtype=np.float32)  # exact in float32


def test_gru_reset_after_one_step_by_hand(tmp_path: Path) -> None:
    cfg = rnn_config("GRU", 1, 3, 1, reset_after=True)
    m = rnninspect.load_model(write_npz(tmp_path / "m.npz", cfg, [GRU_K, GRU_R, GRU_B2]))
    t = m.trace(GRU_X, dtype="float64", gates=True)
    assert list(t) == ["gru", "gru/z", "gru/r", "gru/candidate"]
    x0 = 0.75  # h = 0: the recurrent products vanish, the recurrent bias does not
    z = sigmoid(x0 * 0.8 + 0.1 + 0.4)
    r = sigmoid(x0 * -0.6 - 0.2 + 0.25)
    hh = math.tanh(x0 * 1.2 + 0.3 + r * (0.0 - 0.35))
    h = z * 0.0 + (1 - z) * hh
    assert t["gru/z"][0, 0, 0] == pytest.approx(z, rel=1e-12)
    assert t["gru/r"][0, 0, 0] == pytest.approx(r, rel=1e-12)
    assert t["gru/candidate"][0, 0, 0] == pytest.approx(hh, rel=1e-12)
    assert t["gru"][0, 0, 0] == pytest.approx(h, rel=1e-12)
    x1 = -1.25  # step 1: r scales (h U_h + b1_h)
    z1 = sigmoid(x1 * 0.8 + 0.1 + h * 0.5 + 0.4)
    r1 = sigmoid(x1 * -0.6 - 0.2 + h * 1.1 + 0.25)
    hh1 = math.tanh(x1 * 1.2 + 0.3 + r1 * (h * -0.9 - 0.35))
    assert t["gru/candidate"][0, 1, 0] == pytest.approx(hh1, rel=1e-12)
    assert t["gru"][0, 1, 0] == pytest.approx(z1 * h + (1 - z1) * hh1, rel=1e-12)
    steps = gru_steps(x_list(GRU_X), GRU_K, GRU_R, GRU_B2, math.tanh, sigmoid, reset_after=True)
    for key in ("z", "r", "candidate"):
        assert_close(t[f"gru/{key}"], as_array(steps, key), key, rtol=1e-12, atol=1e-14)


def test_gru_reset_before_one_step_by_hand(tmp_path: Path) -> None:
    cfg = rnn_config("GRU", 1, 3, 1, reset_after=False)
    m = rnninspect.load_model(write_npz(tmp_path / "m.npz", cfg, [GRU_K, GRU_R, GRU_B1]))
    assert isinstance(m.layers[0], GRU) and not m.layers[0].reset_after
    t = m.trace(GRU_X, dtype="float64", gates=True)
    x0 = 0.75
    z = sigmoid(x0 * 0.8 + 0.1)
    r = sigmoid(x0 * -0.6 - 0.2)
    hh = math.tanh(x0 * 1.2 + 0.3 + (r * 0.0) * -0.9)
    h = (1 - z) * hh
    assert t["gru/z"][0, 0, 0] == pytest.approx(z, rel=1e-12)
    assert t["gru/r"][0, 0, 0] == pytest.approx(r, rel=1e-12)
    assert t["gru/candidate"][0, 0, 0] == pytest.approx(hh, rel=1e-12)
    x1 = -1.25  # step 1: r multiplies h *before* the recurrent product
    z1 = sigmoid(x1 * 0.8 + 0.1 + h * 0.5)
    r1 = sigmoid(x1 * -0.6 - 0.2 + h * 1.1)
    hh1 = math.tanh(x1 * 1.2 + 0.3 + (r1 * h) * -0.9)
    assert t["gru/candidate"][0, 1, 0] == pytest.approx(hh1, rel=1e-12)
    assert t["gru"][0, 1, 0] == pytest.approx(z1 * h + (1 - z1) * hh1, rel=1e-12)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_every_gate_every_step(tmp_path: Path, reset_after: bool) -> None:
    rng = np.random.default_rng(5)
    D, M, T, N = 2, 3, 5, 2
    ws = _weights(rng, D, M, 3, (2, 3 * M) if reset_after else (3 * M,))
    cfg = rnn_config("GRU", M, T, D, reset_after=reset_after)
    m = rnninspect.load_model(write_npz(tmp_path / "m.npz", cfg, ws))
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    t = m.trace(x, dtype="float64", gates=True)
    for n in range(N):
        steps = gru_steps(x_list(x, n), *ws, math.tanh, sigmoid, reset_after=reset_after)
        for key in ("z", "r", "candidate"):
            assert_close(t[f"gru/{key}"][n], as_array(steps, key)[0], key, rtol=1e-10, atol=1e-12)
        assert_close(t["gru"][n], as_array(steps, "h")[0], "h", rtol=1e-10, atol=1e-12)


def test_gru_reset_placement_matters() -> None:
    """Guard: with h != 0 (and M > 1, where r*(h U) != (r*h) U) the two GRU variants
    differ, even with the same kernels and no biases; at step 0 (h = 0) they agree."""
    rng = np.random.default_rng(2)
    K, R = rng.uniform(-1, 1, (1, 6)), rng.uniform(-1, 1, (2, 6))
    x = x_list(GRU_X)
    after = gru_steps(x, K, R, np.zeros((2, 6)), math.tanh, sigmoid, reset_after=True)
    before = gru_steps(x, K, R, np.zeros(6), math.tanh, sigmoid, reset_after=False)
    np.testing.assert_allclose(as_array(after, "h")[0, 0], as_array(before, "h")[0, 0])
    assert not np.allclose(as_array(after, "h")[0, 1:], as_array(before, "h")[0, 1:], rtol=1e-3)


# -------------------------------------------------------------------- SimpleRNN


def test_simple_rnn_by_hand_has_no_gates(tmp_path: Path) -> None:
    K, R, b = f64([[0.9, -0.4]]), f64([[0.3, 0.2], [-0.7, 0.5]]), np.array([0.1, -0.1])
    m = rnninspect.load_model(
        write_npz(tmp_path / "m.npz", rnn_config("SimpleRNN", 2, 2, 1), [K, R, b])
    )
    x = np.array([[[0.5], [-1.5]]], dtype=np.float32)
    t = m.trace(x, dtype="float64", gates=True)
    assert list(t) == ["simple_rnn"]  # no gates, no cell state
    h0 = [math.tanh(0.5 * 0.9 + 0.1), math.tanh(0.5 * -0.4 - 0.1)]
    h1 = [
        math.tanh(-1.5 * 0.9 + h0[0] * 0.3 + h0[1] * -0.7 + 0.1),
        math.tanh(-1.5 * -0.4 + h0[0] * 0.2 + h0[1] * 0.5 - 0.1),
    ]
    np.testing.assert_allclose(t["simple_rnn"][0], [h0, h1], rtol=1e-12)
    assert_close(t["simple_rnn"], np.array([simple_steps(x_list(x), K, R, b, math.tanh)]), "ref")


# ---------------------------------------------------------- hard_sigmoid by generation

# Pre-activations of the three LSTM sigmoid gates at step 0 (h = c = 0, x = 1): kernel +
# bias. Chosen where the two formulas differ: inside both linear ranges (1.5), clipped by
# tf_keras's only (2.6, -2.8) and clipped by both (3.5).
HS_PRE = {"i": 1.5, "f": 2.6, "o": -2.8}
HS_WANT = {  # the generation -> gate -> value, by hand
    2: {"i": 0.2 * 1.5 + 0.5, "f": 1.0, "o": 0.0},
    3: {"i": 1.5 / 6 + 0.5, "f": 2.6 / 6 + 0.5, "o": -2.8 / 6 + 0.5},
}


def _hs_model() -> tuple[dict[str, Any], list[np.ndarray]]:
    K = f64([[1.0, 2.0, 0.5, -2.0]])
    b = np.array([HS_PRE["i"] - 1.0, HS_PRE["f"] - 2.0, 0.0, HS_PRE["o"] + 2.0])
    R = f64([[0.3, -0.2, 0.4, 0.1]])
    return rnn_config("LSTM", 1, 2, 1, recurrent_activation="hard_sigmoid"), [K, R, b]


@pytest.mark.parametrize(
    ("fmt", "version", "generation"),
    [
        ("npz", None, 3),  # Keras 3 config, no version: Keras 3
        ("h5", "3.15.1", 3),
        ("h5", "2.21.0", 2),  # tf_keras
        ("h5", "2.2.4", 2),
        ("h5", None, 2),  # no keras_version: Keras 1
    ],
)
def test_hard_sigmoid_gates_follow_the_keras_generation(
    tmp_path: Path, fmt: str, version: str | None, generation: int
) -> None:
    cfg, ws = _hs_model()
    if fmt == "npz":
        path = write_npz(tmp_path / "m.npz", cfg, ws)
    else:
        path = write_h5(tmp_path / "m.h5", cfg, ws, version)
    m = rnninspect.load_model(path)
    if fmt == "h5":  # the file's own version (none: Keras 1)
        assert m.source.keras_version == (version or "1")
    else:  # no version in an .npz: Keras 3 (the config's style says so too)
        assert keras_major(m.source.keras_version) == 3
    x = np.array([[[1.0], [0.25]]], dtype=np.float32)
    t = m.trace(x, dtype="float64", gates=True)
    for gate, want in HS_WANT[generation].items():
        assert t[f"lstm/{gate}"][0, 0, 0] == pytest.approx(want, rel=1e-12), gate
    ract = hard_sigmoid_keras3 if generation == 3 else hard_sigmoid_keras2
    steps = lstm_steps(x_list(x), *ws, math.tanh, ract)
    for key in ("i", "f", "g", "o", "c"):
        assert_close(t[f"lstm/{key}"], as_array(steps, key), key, rtol=1e-12, atol=1e-14)
    assert_close(t["lstm"], as_array(steps, "h"), "h", rtol=1e-12, atol=1e-14)


def _set_root_version(version: str | None) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        if version is None:
            del h5.attrs["keras_version"]
        else:
            h5.attrs["keras_version"] = version

    return edit


@pytest.mark.parametrize(
    ("version", "want"),
    [
        ("2.21.0", "y_tfkeras"),
        ("2.3.1", "y_tfkeras"),
        (None, "y_tfkeras"),
        ("3.0.0", "y"),
        ("3.15.1", "y"),
    ],
)
def test_gru_v1_generation_from_the_root_keras_version(
    tmp_path: Path, version: str | None, want: str
) -> None:
    """gru_v1's tf_keras legacy .h5 with only its root ``keras_version`` changed: a 2.x
    (or missing: Keras 1) version computes tf_keras's numbers, a 3.x one Keras 3's."""
    path = edit_h5(sample("gru_v1", "tfkeras.h5"), tmp_path / "m.h5", _set_root_version(version))
    with h5py.File(path) as h5:  # guard: only the root attribute changed
        assert h5.attrs.get("keras_version") == version
        assert h5["model_weights"].attrs["keras_version"] == "2.21.0"
    m = rnninspect.load_model(path)
    assert m.source.keras_version == (version or "1")
    g = golden("gru_v1")
    y = m.forward(g["x"])
    assert_close(y, g[want], f"keras_version {version} vs {want}")
    other = "y" if want == "y_tfkeras" else "y_tfkeras"
    assert not np.allclose(y, g[other], rtol=1e-4, atol=1e-5)
    if want == "y":  # Keras 3 semantics: every golden state is Keras 3's
        t = m.trace(g["x"])
        for layer in ("gru", "gru_1"):
            assert_close(t[layer], g[f"state/{layer}"], layer)


# ------------------------------------------------- gate identities on every sample model


def _processing_mask(
    mask: np.ndarray | None, shape: tuple[int, int], backwards: bool
) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    return mask[:, ::-1] if backwards else mask


def _directions(m: rnninspect.Model) -> list[tuple[str, Recurrent, bool]]:
    """(trace prefix, layer, does the input mask reach it) for every gated direction."""
    out = []
    reach = True
    for layer in m.layers:
        if isinstance(layer, Bidirectional):
            out += [
                (f"{layer.name}/forward", layer.forward, reach),
                (f"{layer.name}/backward", layer.backward, reach),
            ]
        elif isinstance(layer, Recurrent):
            out.append((layer.name, layer, reach))
        if isinstance(layer, (Recurrent, Bidirectional)) and not layer.return_sequences:
            reach = False
    return [(p, la, r) for p, la, r in out if isinstance(la, (LSTM, GRU))]


GATED_SAMPLES = [
    m
    for m in CHAIN_MODELS  # the rebuild below walks a chain from zero states
    if any(
        r["class_name"] in ("LSTM", "GRU") or r["wrapped_class"] in ("LSTM", "GRU")
        for r in expected(m)["recurrent_layers"]
    )
]


@pytest.mark.parametrize("model", GATED_SAMPLES)
def test_gates_reproduce_keras_states_on_every_sample(model: str) -> None:
    """At every unmasked step of every LSTM/GRU (Bidirectional directions too), the
    traced gates rebuild the traced state, which golden ties to Keras's: LSTM
    ``c = f*c_prev + i*g``, ``h = o*act(c)``; GRU ``h = z*h_prev + (1-z)*candidate``."""
    m = load_sample(model, "model.keras")
    x = golden(model)["x"]
    t = m.trace(x, dtype="float64", gates=True)
    plain = m.trace(x, dtype="float64")
    assert all(np.array_equal(plain[k], t[k]) for k in plain)  # gates add keys only
    mask = input_mask(model, x)
    directions = _directions(m)
    assert directions
    for prefix, layer, reached in directions:
        seq = t[prefix]
        N, T, M = seq.shape
        keep = _processing_mask(mask if reached else None, (N, T), layer.go_backwards)
        act = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0)}[layer.activation]
        if isinstance(layer, LSTM):
            assert {f"{prefix}/{k}" for k in "ifgo"} <= set(t)
            c_prev, c = np.zeros((N, M)), t[f"{prefix}/c"]
            for s in range(T):
                i, f, g, o = (t[f"{prefix}/{k}"][:, s] for k in "ifgo")
                k = keep[:, s]
                want_c = f * c_prev + i * g
                np.testing.assert_allclose(c[k, s], want_c[k], rtol=1e-9, atol=1e-12)
                np.testing.assert_allclose(seq[k, s], (o * act(c[:, s]))[k], rtol=1e-9, atol=1e-12)
                c_prev = c[:, s]
        else:
            assert {f"{prefix}/{k}" for k in ("z", "r", "candidate")} <= set(t)
            h_prev = np.zeros((N, M))
            for s in range(T):
                z, cand = t[f"{prefix}/z"][:, s], t[f"{prefix}/candidate"][:, s]
                k = keep[:, s]
                np.testing.assert_allclose(
                    seq[k, s], (z * h_prev + (1 - z) * cand)[k], rtol=1e-9, atol=1e-12
                )
                h_prev = np.where(k[:, None], seq[:, s], h_prev)  # the state is kept when masked


@pytest.mark.parametrize("model", ["acceptance_chain", "bidi_masked", "lstm_stack"])
def test_gates_in_chunks_equal_one_pass(model: str) -> None:
    """Gate and cell-state entries survive the engine's chunking like the states do."""
    from rnninspect import engine
    from rnninspect.inputs import random_input

    m = load_sample(model, "model.keras")
    x = random_input(m, 7, 0, None)
    if model != "acceptance_chain":
        x[1, 2:5] = 0.0  # masked steps (bidi_masked masks all-zero steps)
    whole = m.trace(x, gates=True)
    parts = list(engine.iter_chunks(m, x, collect=True, gates=True, rows=3))
    assert [(a, b) for a, b, _ in parts] == [(0, 3), (3, 6), (6, 7)]
    for key, value in whole.items():
        joined = np.concatenate([r.states[key] for _, _, r in parts])
        # float32 rounding only: BLAS vectorises the step's product over the batch,
        # so a sample's sums can round differently in a batch of 3 than in one of 7.
        np.testing.assert_allclose(joined, value, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize(
    ("kind", "layer"),
    [
        ("LSTM", {"activation": "softmax"}),
        ("GRU", {"activation": "softmax", "reset_after": True}),
        ("GRU", {"activation": "softmax", "reset_after": False}),
        ("LSTM", {"recurrent_activation": "softmax"}),
        ("GRU", {"recurrent_activation": "softmax", "reset_after": True}),
        ("GRU", {"recurrent_activation": "softmax", "reset_after": False}),
        ("SimpleRNN", {"activation": "softmax"}),
    ],
)
def test_softmax_runs_across_units(tmp_path: Path, kind: str, layer: dict[str, Any]) -> None:
    """softmax is not elementwise: it normalises each sample's units, one gate at a
    time, whatever the engine's internal layout, and never mixes samples or gates."""
    import rnnref

    rng = np.random.default_rng(3)
    N, T, D, M = 5, 4, 3, 6
    g = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[kind]
    config = rnn_config(kind, M, T, D, **layer)
    bias_shape = (2, g * M) if kind == "GRU" and layer.get("reset_after") else (g * M,)
    weights = [
        rng.uniform(-1, 1, (D, g * M)),
        rng.uniform(-1, 1, (M, g * M)),
        rng.uniform(-0.5, 0.5, bias_shape),
    ]
    model = rnninspect.load_model(write_npz(tmp_path / "m.npz", config, weights))
    x = rng.standard_normal((N, T, D))
    name = config["config"]["layers"][1]["config"]["name"]
    want, _ = rnnref.recurrent(kind, config["config"]["layers"][1]["config"], weights, x, 3)
    got = model.trace(x, dtype="float64")[name]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("apart", [True, False])
@pytest.mark.parametrize("model", MODELS)
def test_both_input_layouts_equal_keras(
    model: str, apart: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine either copies x_t into the step's stacked operand or projects it on
    its own (wide inputs); either way every sample model gives Keras's numbers."""
    from rnninspect.ops import recurrent

    monkeypatch.setattr(recurrent, "_input_apart", lambda layer, D: apart)
    check_sample(model, f"{model} (input apart={apart})")
