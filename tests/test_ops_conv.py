"""The convolution family (``rnninspect.ops.conv``, ``rnninspect.ops.cudnn``) against Keras.

References, never our own output:

* ``tests/data/ops_conv.npz`` (``scripts/make_op_goldens_conv.py``): inputs, weights
  and Keras 3's outputs of standalone Conv1D/Conv2D, pooling, global pooling and
  ConvLSTM1D/2D layers, plus tf_keras's outputs where they differ; tf_keras's legacy
  loader's conversion of CuDNNLSTM/CuDNNGRU weights and the converted model's predict;
* a plain loop over output positions for Conv1D (``conv1d_loop``), written from the
  definition, independently of the vectorised code.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnninspect import activations
from rnninspect.ops import conv
from rnninspect.ops.cudnn import cudnn_gru_weights, cudnn_lstm_weights

DATA = Path(__file__).resolve().parent / "data" / "ops_conv.npz"
RTOL, ATOL = 1e-5, 1e-6


@cache
def golden() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with np.load(DATA) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("__cases__"))), arrays


def cases(op: str) -> list[Any]:
    meta, _ = golden()
    return [pytest.param(c, id=c["id"]) for c in meta["cases"] if c["op"] == op]


def arrays(case: dict[str, Any]) -> dict[str, np.ndarray]:
    _, store = golden()
    return {role: store[key] for role, key in case["arrays"].items()}


def close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def bias_on_last_axis(y: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """What Keras 3's TF backend returns for a channels_first conv whose last spatial
    axis has length F: the bias added along that axis instead of the channel axis."""
    per_channel = bias.reshape(-1, *([1] * (y.ndim - 2)))  # (F, 1.., 1)
    return (y - per_channel + bias).astype(y.dtype)


# ------------------------------------------------------------------ convolutions


def conv1d_loop(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None,
    stride: int,
    padding: str,
    dilation: int,
    groups: int,
) -> np.ndarray:
    """Conv1D by its definition: one output element at a time, float64, reading the
    input by index (out-of-range taps are the padding zeros)."""
    N, T, _ = x.shape
    k, Cg, F = kernel.shape
    Fg = F // groups
    span = (k - 1) * dilation + 1
    if padding == "valid":
        T_out, left = (T - span) // stride + 1, 0
    elif padding == "causal":
        T_out, left = -(-T // stride), (k - 1) * dilation
    else:
        T_out = -(-T // stride)
        left = max((T_out - 1) * stride + span - T, 0) // 2
    y = np.zeros((N, T_out, F))
    for n in range(N):
        for t in range(T_out):
            for f in range(F):
                g = f // Fg
                acc = 0.0 if bias is None else float(bias[f])
                for j in range(k):
                    src = t * stride + j * dilation - left
                    if 0 <= src < T:
                        for c in range(Cg):
                            acc += float(x[n, src, g * Cg + c]) * float(kernel[j, c, f])
                y[n, t, f] = acc
    return y


@pytest.mark.parametrize("case", cases("conv1d"))
def test_conv1d_matches_keras(case: dict[str, Any]) -> None:
    a, p = arrays(case), dict(case["params"])
    quirk = p.pop("keras3_tf_bias_on_last_axis")
    y = conv.conv1d(a["x"], a["kernel"], a.get("bias"), **p)
    if quirk:
        close(y, a["y_tfkeras"])
        close(bias_on_last_axis(y, a["bias"]), a["y"])
    else:
        close(y, a["y"])
        if "y_tfkeras" in a:
            close(y, a["y_tfkeras"])


@pytest.mark.parametrize("case", cases("conv1d"))
def test_conv1d_is_its_definition(case: dict[str, Any]) -> None:
    a, p = arrays(case), case["params"]
    x = a["x"] if p["data_format"] == "channels_last" else a["x"].transpose(0, 2, 1)
    ref = conv1d_loop(
        x, a["kernel"], a.get("bias"), p["strides"], p["padding"], p["dilation_rate"], p["groups"]
    )
    y = conv.conv1d(
        x,
        a["kernel"],
        a.get("bias"),
        strides=p["strides"],
        padding=p["padding"],
        dilation_rate=p["dilation_rate"],
        groups=p["groups"],
    )
    np.testing.assert_allclose(y, ref, rtol=RTOL, atol=ATOL)
    assert conv.conv_output_length(x.shape[1], a["kernel"].shape[0], p["padding"],
                                   p["strides"], p["dilation_rate"]) == y.shape[1]  # fmt: skip


@pytest.mark.parametrize("case", cases("conv2d"))
def test_conv2d_matches_keras(case: dict[str, Any]) -> None:
    a, p = arrays(case), dict(case["params"])
    quirk = p.pop("keras3_tf_bias_on_last_axis")
    y = conv.conv2d(a["x"], a["kernel"], a.get("bias"), **p)
    if quirk:
        close(y, a["y_tfkeras"])
        close(bias_on_last_axis(y, a["bias"]), a["y"])
    else:
        close(y, a["y"])
    spatial = a["x"].shape[1:3] if p["data_format"] == "channels_last" else a["x"].shape[2:]
    out = y.shape[1:3] if p["data_format"] == "channels_last" else y.shape[2:]
    assert conv.conv_output_shape(spatial, a["kernel"].shape[:2], p["padding"],
                                  p["strides"], p["dilation_rate"]) == out  # fmt: skip


def test_conv_takes_leading_batch_axes_and_keeps_dtype() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 4))  # float64, two batch axes
    w = rng.standard_normal((3, 2, 6))
    y = conv.conv1d(x, w, None, strides=2, padding="same", groups=2)
    assert y.dtype == np.float64 and y.shape == (2, 3, 5, 6)
    flat = conv.conv1d(x.reshape(6, 9, 4), w, None, strides=2, padding="same", groups=2)
    np.testing.assert_allclose(y.reshape(6, 5, 6), flat)
    y32 = conv.conv1d(x.astype(np.float32), w, None, padding="causal", groups=2)  # f64 weights
    assert y32.dtype == np.float32


def test_conv_refuses_bad_arguments() -> None:
    x = np.zeros((1, 5, 4), np.float32)
    with pytest.raises(ValueError, match="groups"):
        conv.conv1d(x, np.zeros((3, 4, 6), np.float32), None, groups=2)
    with pytest.raises(ValueError, match="padding"):
        conv.conv2d(np.zeros((1, 5, 5, 4)), np.zeros((3, 3, 4, 2)), None, padding="causal")
    with pytest.raises(ValueError, match="empty"):
        conv.conv1d(x, np.zeros((6, 4, 2), np.float32), None)


# ---------------------------------------------------------------- shape helpers


@pytest.mark.parametrize(
    ("length", "k", "s", "d", "pads"),
    [
        (8, 3, 2, 1, (0, 1)),  # total (4-1)*2 + 3 - 8 = 1: the odd one goes right
        (7, 3, 2, 1, (1, 1)),
        (5, 4, 1, 1, (1, 2)),
        (6, 2, 1, 3, (1, 2)),  # effective kernel 4
        (4, 3, 5, 1, (0, 0)),  # stride past the window: nothing to pad
        (4, 5, 1, 1, (2, 2)),  # kernel longer than the input
    ],
)
def test_same_padding(length: int, k: int, s: int, d: int, pads: tuple[int, int]) -> None:
    assert conv.same_padding(length, k, s, d) == pads


def test_output_length_helpers() -> None:
    assert conv.conv_output_length(None, 3, "valid", 1, 1) is None
    assert conv.conv_output_length(10, 3, "valid", 2, 1) == 4
    assert conv.conv_output_length(10, 3, "valid", 1, 2) == 6
    assert conv.conv_output_length(10, 3, "same", 3, 1) == 4
    assert conv.conv_output_length(10, 3, "causal", 3, 2) == 4
    assert conv.conv_output_shape((None, 9), (3, 3), "valid", (1, 2)) == (None, 4)
    assert conv.pool_output_shape((7, 6), (3, 2), "same") == (3, 3)
    assert conv.pool_output_shape((7, None), 2, "valid", 1) == (6, None)
    assert conv.pool_output_length(None, 2, "valid", 2) is None
    with pytest.raises(ValueError, match="empty"):
        conv.conv_output_length(4, 3, "valid", 1, 2)
    with pytest.raises(ValueError, match="empty"):
        conv.pool_output_length(2, 3, "valid", 1)
    with pytest.raises(ValueError, match="padding"):
        conv.pool_output_length(5, 2, "causal", 1)


# ---------------------------------------------------------------------- pooling


@pytest.mark.parametrize("case", cases("pool1d") + cases("pool2d"))
def test_pooling_matches_keras(case: dict[str, Any]) -> None:
    a, p = arrays(case), case["params"]
    fn = conv.pool1d if case["op"] == "pool1d" else conv.pool2d
    y = fn(a["x"], **p)
    close(y, a["y"])
    cl = p["data_format"] == "channels_last"
    rank = 1 if case["op"] == "pool1d" else 2
    spatial = a["x"].shape[1 : 1 + rank] if cl else a["x"].shape[2:]
    out = y.shape[1 : 1 + rank] if cl else y.shape[2:]
    assert conv.pool_output_shape(spatial, p["pool_size"], p["padding"], p["strides"]) == out


def test_same_average_pool_divides_by_unpadded_count() -> None:
    x = np.arange(1, 6, dtype=np.float32).reshape(1, 5, 1)  # 1 2 3 4 5
    y = conv.pool1d(x, op="avg", pool_size=2, padding="same")  # windows 12 34 5
    np.testing.assert_allclose(y[0, :, 0], [1.5, 3.5, 5.0])
    y = conv.pool1d(-x, op="max", pool_size=3, strides=2, padding="same")  # pad 1 each side
    np.testing.assert_allclose(y[0, :, 0], [-1.0, -2.0, -4.0])


@pytest.mark.parametrize("case", cases("gpool1d"))
def test_global_pool1d_matches_keras(case: dict[str, Any]) -> None:
    a, p = arrays(case), case["params"]
    kw = dict(op=p["op"], keepdims=p["keepdims"], data_format=p["data_format"])
    y = conv.global_pool1d(a["x"], a.get("mask"), **kw)
    close(y, a["y"])
    if "y_tfkeras" in a:
        close(conv.global_pool1d(a["x"], a.get("mask"), keras_major=2, **kw), a["y_tfkeras"])
    else:
        close(conv.global_pool1d(a["x"], a.get("mask"), keras_major=2, **kw), a["y"])


def test_global_average_pool_all_masked_sample_is_nan() -> None:
    x = np.ones((2, 3, 2), np.float32)
    mask = np.array([[True, False, True], [False, False, False]])
    y = conv.global_pool1d(x, mask, op="avg")
    np.testing.assert_allclose(y[0], [1.0, 1.0])
    assert np.isnan(y[1]).all()


@pytest.mark.parametrize("case", cases("gpool2d"))
def test_global_pool2d_matches_keras(case: dict[str, Any]) -> None:
    a, p = arrays(case), case["params"]
    close(conv.global_pool2d(a["x"], **p), a["y"])


# ---------------------------------------------------------------------- ConvLSTM


def run_convlstm(a: dict[str, np.ndarray], p: dict[str, Any], keras_major: int, **kw: Any) -> Any:
    return conv.convlstm_scan(
        a["x"],
        a["kernel"],
        a["recurrent_kernel"],
        a.get("bias"),
        rank=p["rank"],
        strides=p["strides"],
        padding=p["padding"],
        dilation_rate=p["dilation_rate"],
        activation=activations.get(p["activation"], keras_major),
        recurrent_activation=activations.get(p["recurrent_activation"], keras_major),
        go_backwards=p["go_backwards"],
        return_sequences=p["return_sequences"],
        initial_state=[a["h0"], a["c0"]] if "h0" in a else None,
        mask=a.get("mask"),
        data_format=p["data_format"],
        **kw,
    )


@pytest.mark.parametrize("case", cases("convlstm"))
def test_convlstm_matches_keras(case: dict[str, Any]) -> None:
    a, p = arrays(case), case["params"]
    out = run_convlstm(a, p, 3)
    for role, key in (("y", "output"), ("h", "h"), ("c", "c")):
        close(out[key], a[role])
    if "y_tfkeras" in a:  # hard_sigmoid: 0.2x + 0.5 in tf_keras
        out2 = run_convlstm(a, p, 2)
        for role, key in (("y", "output"), ("h", "h"), ("c", "c")):
            close(out2[key], a[f"{role}_tfkeras"])


@pytest.mark.parametrize("case", cases("convlstm"))
def test_convlstm_gates_recompose_the_states(case: dict[str, Any]) -> None:
    a, p = arrays(case), case["params"]
    if p["activation"] != "tanh" or p["data_format"] != "channels_last":
        pytest.skip("checks the tanh, channels_last form")
    out = run_convlstm(a, p, 3, keep_gates=True)
    i, f, g, o, hs, cs = (out[k] for k in ("i", "f", "g", "o", "seq_h", "seq_c"))
    assert i.shape == hs.shape == (a["x"].shape[0], a["x"].shape[1], *out["h"].shape[1:])
    mask = a.get("mask", np.ones(a["x"].shape[:2], bool))
    if p["go_backwards"]:
        mask = mask[:, ::-1]
    h_prev = a["h0"] if "h0" in a else np.zeros_like(hs[:, 0])
    c_prev = a["c0"] if "c0" in a else np.zeros_like(cs[:, 0])
    for t in range(hs.shape[1]):
        m = mask[:, t]  # (N,) or (N, *O): per-position masks come from a Masking layer
        m = m.reshape(m.shape + (1,) * (hs.ndim - 1 - m.ndim))
        c_new = f[:, t] * c_prev + i[:, t] * g[:, t]
        h_new = o[:, t] * np.tanh(c_new)
        np.testing.assert_allclose(cs[:, t], np.where(m, c_new, c_prev), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(hs[:, t], np.where(m, h_new, h_prev), rtol=RTOL, atol=ATOL)
        h_prev, c_prev = hs[:, t], cs[:, t]
    close(hs[:, -1], out["h"])


def test_convlstm_zero_output_for_mask() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 2)).astype(np.float32)
    w = rng.standard_normal((3, 2, 8)).astype(np.float32)
    u = rng.standard_normal((3, 2, 8)).astype(np.float32)
    mask = np.array([[True, False, True], [True, True, False]])
    kw: dict[str, Any] = dict(rank=1, padding="same", activation=np.tanh,
                              recurrent_activation=activations.get("sigmoid"),
                              return_sequences=True, mask=mask)  # fmt: skip
    held = conv.convlstm_scan(x, w, u, None, **kw)
    zeroed = conv.convlstm_scan(x, w, u, None, zero_output_for_mask=True, **kw)
    np.testing.assert_array_equal(held["output"][0, 1], held["output"][0, 0])
    assert not zeroed["output"][0, 1].any() and not zeroed["output"][1, 2].any()
    np.testing.assert_array_equal(held["h"], zeroed["h"])


# ------------------------------------------------------------------------ CuDNN


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def lstm_loop(x: np.ndarray, k: np.ndarray, rk: np.ndarray, b: np.ndarray) -> np.ndarray:
    N, T, _ = x.shape
    M = rk.shape[0]
    h, c, seq = np.zeros((N, M)), np.zeros((N, M)), []
    for t in range(T):
        z = x[:, t] @ k + h @ rk + b
        i, f, g, o = sigmoid(z[:, :M]), sigmoid(z[:, M : 2 * M]), z[:, 2 * M : 3 * M], z[:, 3 * M :]
        c = f * c + i * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        seq.append(h)
    return np.stack(seq, axis=1)


def gru_reset_after_loop(x: np.ndarray, k: np.ndarray, rk: np.ndarray, b: np.ndarray) -> np.ndarray:
    N, T, _ = x.shape
    M = rk.shape[0]
    h, seq = np.zeros((N, M)), []
    for t in range(T):
        xz = x[:, t] @ k + b[0]
        hz = h @ rk + b[1]
        z = sigmoid(xz[:, :M] + hz[:, :M])
        r = sigmoid(xz[:, M : 2 * M] + hz[:, M : 2 * M])
        cand = np.tanh(xz[:, 2 * M :] + r * hz[:, 2 * M :])
        h = z * h + (1 - z) * cand
        seq.append(h)
    return np.stack(seq, axis=1)


@pytest.mark.parametrize("case", cases("cudnn"))
def test_cudnn_conversion_matches_tf_keras_loader(case: dict[str, Any]) -> None:
    a = arrays(case)
    fn = cudnn_lstm_weights if case["params"]["kind"] == "lstm" else cudnn_gru_weights
    k, rk, b = fn(a["kernel"], a["recurrent_kernel"], a["bias"])
    np.testing.assert_array_equal(k, a["kernel_conv"])
    np.testing.assert_array_equal(rk, a["recurrent_kernel_conv"])
    assert b.shape == a["bias_conv"].shape and b.dtype == np.float32
    np.testing.assert_allclose(b, a["bias_conv"], rtol=0, atol=1e-7)
    loop = lstm_loop if case["params"]["kind"] == "lstm" else gru_reset_after_loop
    np.testing.assert_allclose(loop(a["x"].astype(np.float64), k, rk, b), a["y"], rtol=RTOL,
                               atol=ATOL)  # fmt: skip


def test_cudnn_input_kernel_is_the_fortran_reinterpretation() -> None:
    rng = np.random.default_rng(2)
    k = rng.standard_normal((3, 8)).astype(np.float32)  # I=3, 4 gates of M=2
    b = rng.standard_normal(16).astype(np.float32)
    out, _, bias = cudnn_lstm_weights(k, rng.standard_normal((2, 8)).astype(np.float32), b)
    for gate in range(4):
        blk = k[:, 2 * gate : 2 * gate + 2]
        np.testing.assert_array_equal(
            out[:, 2 * gate : 2 * gate + 2], blk.T.reshape(blk.shape, order="F")
        )
    np.testing.assert_allclose(bias, b[:8] + b[8:])
    with pytest.raises(ValueError, match="bias"):
        cudnn_lstm_weights(k, np.zeros((2, 8), np.float32), b[:8])
