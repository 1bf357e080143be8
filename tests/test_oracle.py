"""rnninspect's engine against an independent oracle on random models.

The oracle below is a plain per-sample, per-step, per-unit loop over Python floats
(float64), written from the notebook's formula and Keras's documented semantics
(``/work/shared/keras-formats.md``), sharing no code with ``rnninspect/engine.py``:

    h_t = act(x_t . Wx + h_{t-1} . Wh + bh),  h_0 = 0,   y = h_T . Wo + bo

It interprets a Keras 3 Sequential config directly. It is first validated against
Keras's own golden outputs for every sample model, then used as the reference for
random models (hypothesis) written to ``.npz`` files with a hand-written
``__config__``.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import README_MODELS, assert_close, golden, golden_states, keras_config, sample
from hypothesis import given
from hypothesis import strategies as st

import rnninspect

# ----------------------------------------------------------------------------- oracle

Vec = list[float]


def _act(name: str, v: Vec) -> Vec:
    if name == "linear":
        return list(v)
    if name == "tanh":
        return [math.tanh(a) for a in v]
    if name == "relu":
        return [a if a > 0 else 0.0 for a in v]
    if name == "sigmoid":
        return [
            1.0 / (1.0 + math.exp(-a)) if a >= 0 else math.exp(a) / (1.0 + math.exp(a)) for a in v
        ]
    if name == "softmax":
        top = max(v)
        e = [math.exp(a - top) for a in v]
        s = sum(e)
        return [a / s for a in e]
    raise AssertionError(f"oracle does not know activation {name}")


def _affine(v: Vec, W: np.ndarray, b: np.ndarray | None) -> Vec:
    """v . W + b, one output unit at a time."""
    rows, cols = W.shape
    assert len(v) == rows
    out = []
    for j in range(cols):
        acc = 0.0
        for i in range(rows):
            acc += v[i] * float(W[i, j])
        if b is not None:
            acc += float(b[j])
        out.append(acc)
    return out


def _dense(cfg: dict[str, Any], ws: list[np.ndarray], v: Vec) -> Vec:
    b = ws[1] if cfg.get("use_bias", True) else None
    return _act(cfg.get("activation", "linear"), _affine(v, ws[0], b))


def oracle(
    config: dict[str, Any], weights: dict[str, list[np.ndarray]], x: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run a Keras Sequential (or chain) config on a batch, one sample at a time.

    Returns the model output and, per SimpleRNN layer, its full output sequence in
    processing order (what Keras returns with return_sequences=True).
    """
    entries = [e for e in config["config"]["layers"] if e["class_name"] != "InputLayer"]
    outputs = []
    states: dict[str, list[list[Vec]]] = {}
    for n in range(x.shape[0]):
        seq: list[Vec] | Vec  # a list of steps, or one vector after a last-step RNN
        if x.ndim == 2:  # integer ids
            seq = [[float(i)] for i in x[n]]
        else:
            seq = [[float(a) for a in step] for step in x[n]]
        mask: list[bool] | None = None
        has_time = True
        for entry in entries:
            cls, cfg = entry["class_name"], entry["config"]
            name = cfg["name"]
            if cls == "Embedding":
                E = weights[name][0]
                ids = [int(s[0]) for s in seq]
                seq = [[float(a) for a in E[i]] for i in ids]
                if cfg.get("mask_zero", False):
                    mask = [i != 0 for i in ids]
            elif cls == "Masking":
                mv = float(cfg.get("mask_value", 0.0))
                mask = [any(a != mv for a in step) for step in seq]
                seq = [
                    step if keep else [0.0] * len(step)
                    for step, keep in zip(seq, mask, strict=True)
                ]
            elif cls in ("Dropout", "GaussianNoise", "SpatialDropout1D"):
                pass
            elif cls == "Dense" or (
                cls == "TimeDistributed" and entry["config"]["layer"]["class_name"] == "Dense"
            ):
                inner = cfg if cls == "Dense" else cfg["layer"]["config"]
                if has_time:
                    seq = [_dense(inner, weights[name], step) for step in seq]
                else:
                    seq = _dense(inner, weights[name], seq)  # type: ignore[arg-type]
            elif cls == "SimpleRNN":
                ws = weights[name]
                Wx, Wh = ws[0], ws[1]
                b = ws[2] if cfg.get("use_bias", True) else None
                M = Wh.shape[0]
                order = list(range(len(seq)))
                if cfg.get("go_backwards", False):
                    order.reverse()
                h: Vec = [0.0] * M
                outs: list[Vec] = []
                for t in order:
                    if mask is None or mask[t]:
                        pre = _affine(seq[t], Wx, b)  # type: ignore[arg-type]
                        rec = _affine(h, Wh, None)
                        h = _act(
                            cfg.get("activation", "tanh"),
                            [p + r for p, r in zip(pre, rec, strict=True)],
                        )
                        outs.append(list(h))
                    elif cfg.get("zero_output_for_mask", False):
                        outs.append([0.0] * M)  # state kept, output zeroed
                    else:
                        outs.append(list(h))  # state kept, output = previous h
                states.setdefault(name, []).append(outs)
                if cfg.get("return_sequences", False):
                    seq = outs  # processing order; the mask passes on unreversed
                else:
                    seq = outs[-1]
                    has_time = False
                    mask = None
            else:
                raise AssertionError(f"oracle does not know layer class {cls}")
        outputs.append(seq)
    return np.array(outputs, dtype=np.float64), {k: np.array(v) for k, v in states.items()}


def npz_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> arrays in Keras order, from our layer-qualified .npz convention."""
    order = {"kernel": 0, "embeddings": 0, "recurrent_kernel": 1, "bias": 2}
    out: dict[str, list[tuple[int, np.ndarray]]] = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            if key == "__config__":
                continue
            layer, weight = key.rsplit("/", 1)
            out.setdefault(layer, []).append((order[weight], z[key]))
    return {k: [a for _, a in sorted(v, key=lambda p: p[0])] for k, v in out.items()}


# ------------------------------------------------------- the oracle itself, against Keras


@pytest.mark.parametrize("model", README_MODELS)
def test_oracle_reproduces_keras_golden(model: str) -> None:
    """Validates the oracle: it must agree with Keras before it can judge rnninspect."""
    g = golden(model)
    y, states = oracle(keras_config(model), npz_weights(sample(model, "layers.npz")), g["x"])
    assert_close(y, g["y"].astype(np.float64), f"oracle vs Keras on {model}")
    want = golden_states(model)
    assert list(states) == list(want)
    for name, seq in states.items():
        assert_close(seq, want[name].astype(np.float64), f"oracle state {name} vs Keras on {model}")


def test_oracle_notebook_formula_on_seed() -> None:
    """The notebook's own names and formula, straight from notebook.npz."""
    g = golden("seed")
    with np.load(sample("seed", "notebook.npz")) as z:
        Wx, Wh, bh, Wo, bo = (z[k].astype(np.float64) for k in ("Wx", "Wh", "bh", "Wo", "bo"))
    ys = []
    for xs in g["x"].astype(np.float64):
        h = np.zeros(Wh.shape[0])
        for x_t in xs:
            h = np.tanh(x_t @ Wx + h @ Wh + bh)
        ys.append(h @ Wo + bo)
    assert_close(np.array(ys), g["y"].astype(np.float64), "notebook formula vs Keras")


# ------------------------------------------------------------ hand-written Keras configs

_POLICY = {
    "module": "keras",
    "class_name": "DTypePolicy",
    "config": {"name": "float32"},
    "registered_name": None,
}


def _entry(
    cls: str, config: dict[str, Any], input_shape: list[Any] | None = None
) -> dict[str, Any]:
    e: dict[str, Any] = {
        "module": "keras.layers",
        "class_name": cls,
        "config": config,
        "registered_name": None,
    }
    if input_shape is not None:
        e["build_config"] = {"input_shape": input_shape}
    return e


def input_entry(shape: list[Any], dtype: str = "float32") -> dict[str, Any]:
    return _entry(
        "InputLayer",
        {
            "batch_shape": [None, *shape],
            "dtype": dtype,
            "sparse": False,
            "ragged": False,
            "name": "input_layer",
            "optional": False,
        },
    )


def simple_rnn_entry(
    name: str,
    units: int,
    activation: str = "tanh",
    use_bias: bool = True,
    return_sequences: bool = False,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    input_shape: list[Any] | None = None,
) -> dict[str, Any]:
    return _entry(
        "SimpleRNN",
        {
            "name": name,
            "trainable": True,
            "dtype": _POLICY,
            "return_sequences": return_sequences,
            "return_state": False,
            "go_backwards": go_backwards,
            "stateful": False,
            "unroll": False,
            "zero_output_for_mask": zero_output_for_mask,
            "units": units,
            "activation": activation,
            "use_bias": use_bias,
            "kernel_initializer": {
                "module": "keras.initializers",
                "class_name": "GlorotUniform",
                "config": {"seed": None},
                "registered_name": None,
            },
            "recurrent_initializer": {
                "module": "keras.initializers",
                "class_name": "Orthogonal",
                "config": {"seed": None, "gain": 1.0},
                "registered_name": None,
            },
            "bias_initializer": {
                "module": "keras.initializers",
                "class_name": "Zeros",
                "config": {},
                "registered_name": None,
            },
            "kernel_regularizer": None,
            "recurrent_regularizer": None,
            "bias_regularizer": None,
            "activity_regularizer": None,
            "kernel_constraint": None,
            "recurrent_constraint": None,
            "bias_constraint": None,
            "dropout": 0.0,
            "recurrent_dropout": 0.0,
        },
        input_shape,
    )


def dense_entry(
    name: str,
    units: int,
    activation: str = "linear",
    use_bias: bool = True,
    input_shape: list[Any] | None = None,
) -> dict[str, Any]:
    return _entry(
        "Dense",
        {
            "name": name,
            "trainable": True,
            "dtype": _POLICY,
            "units": units,
            "activation": activation,
            "use_bias": use_bias,
            "kernel_initializer": {
                "module": "keras.initializers",
                "class_name": "GlorotUniform",
                "config": {"seed": None},
                "registered_name": None,
            },
            "bias_initializer": {
                "module": "keras.initializers",
                "class_name": "Zeros",
                "config": {},
                "registered_name": None,
            },
            "kernel_regularizer": None,
            "bias_regularizer": None,
            "kernel_constraint": None,
            "bias_constraint": None,
            "quantization_config": None,
        },
        input_shape,
    )


def dropout_entry(name: str) -> dict[str, Any]:
    return _entry(
        "Dropout",
        {
            "name": name,
            "trainable": True,
            "dtype": _POLICY,
            "rate": 0.5,
            "seed": None,
            "noise_shape": None,
        },
    )


def masking_entry(name: str, mask_value: float) -> dict[str, Any]:
    return _entry(
        "Masking", {"name": name, "trainable": True, "dtype": _POLICY, "mask_value": mask_value}
    )


def embedding_entry(name: str, vocab: int, dim: int, mask_zero: bool) -> dict[str, Any]:
    return _entry(
        "Embedding",
        {
            "name": name,
            "trainable": True,
            "dtype": _POLICY,
            "input_dim": vocab,
            "output_dim": dim,
            "embeddings_initializer": {
                "module": "keras.initializers",
                "class_name": "RandomUniform",
                "config": {"seed": None, "minval": -0.05, "maxval": 0.05},
                "registered_name": None,
            },
            "embeddings_regularizer": None,
            "activity_regularizer": None,
            "embeddings_constraint": None,
            "mask_zero": mask_zero,
        },
    )


def sequential_config(layers: list[dict[str, Any]], input_shape: list[Any]) -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "trainable": True,
            "dtype": _POLICY,
            "layers": layers,
            "build_input_shape": [None, *input_shape],
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, *input_shape]},
        "compile_config": {},
    }


def write_npz(path: Path, config: dict[str, Any], weights: dict[str, list[np.ndarray]]) -> Path:
    """Our .npz convention: ``<layer>/<weight>`` keys in layer order + ``__config__``."""
    names = {1: ["kernel"], 2: ["kernel", "bias"], 3: ["kernel", "recurrent_kernel", "bias"]}
    arrays: dict[str, np.ndarray] = {}
    for entry in config["config"]["layers"]:
        name = entry["config"]["name"]
        if name not in weights:
            continue
        ws = weights[name]
        cls = entry["class_name"]
        if cls == "Embedding":
            keys = ["embeddings"]
        elif cls == "SimpleRNN":
            keys = ["kernel", "recurrent_kernel", "bias"][: len(ws)]
        else:
            keys = names[len(ws)]
        for key, arr in zip(keys, ws, strict=True):
            arrays[f"{name}/{key}"] = arr
    arrays["__config__"] = np.array(json.dumps(config))
    np.savez(path, **arrays)
    return path


# ------------------------------------------------------------------ random model strategy


def _rnn_weights(rng: np.random.Generator, d: int, m: int, use_bias: bool) -> list[np.ndarray]:
    # Scaled so activations stay O(1) even for relu/linear recurrences (|Wh| row sums
    # < 0.9): a fair float32-vs-float64 comparison at rtol 1e-4 / atol 1e-5.
    ws = [
        rng.uniform(-1, 1, (d, m)) / math.sqrt(d),
        rng.uniform(-0.9, 0.9, (m, m)) / m,
    ]
    if use_bias:
        ws.append(rng.uniform(-0.5, 0.5, m))
    return [w.astype(np.float32) for w in ws]


def _dense_weights(rng: np.random.Generator, d: int, k: int, use_bias: bool) -> list[np.ndarray]:
    ws = [rng.uniform(-1, 1, (d, k)) / math.sqrt(d)]
    if use_bias:
        ws.append(rng.uniform(-0.5, 0.5, k))
    return [w.astype(np.float32) for w in ws]


ACTIVATIONS = ["tanh", "relu", "sigmoid", "linear", "softmax"]  # softmax: across units, not samples


@st.composite
def random_models(draw: st.DrawFn, masked: bool = False) -> dict[str, Any]:
    """A random chain: [Masking | Embedding] -> 1-3 SimpleRNN (+Dropout) -> 0-2 Dense.

    ``masked``: the chain starts with Masking or Embedding(mask_zero=True) and the input
    always has masked steps; otherwise it starts with nothing or an unmasked Embedding.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    N = draw(st.integers(1, 4))
    T = draw(st.integers(1, 8))
    variable_t = draw(st.booleans())
    front = draw(st.sampled_from(["masking", "embedding"] if masked else ["none", "embedding"]))
    layers: list[dict[str, Any]] = []
    weights: dict[str, list[np.ndarray]] = {}
    holes = np.zeros((N, T), dtype=bool)
    if masked:
        holes = rng.random((N, T)) < draw(st.sampled_from([0.2, 0.4, 0.6]))
        holes[rng.integers(N), rng.integers(T)] = True  # at least one masked step
    ids = front == "embedding"
    if ids:
        V = draw(st.integers(2, 12))
        D = draw(st.integers(1, 5))
        layers.append(embedding_entry("embedding", V, D, mask_zero=masked))
        weights["embedding"] = [rng.uniform(-1, 1, (V, D)).astype(np.float32)]
        input_shape: list[Any] = [None if variable_t else T]
        x = rng.integers(0 if not masked else 1, V, size=(N, T))
        x[holes] = 0
        x = x.astype(np.int32)
    else:
        D = draw(st.integers(1, 5))
        input_shape = [None if variable_t else T, D]
        x = rng.standard_normal((N, T, D)).astype(np.float32)
        if masked:
            mask_value = draw(st.sampled_from([0.0, -1.0, 2.5]))
            layers.append(masking_entry("masking", mask_value))
            x[holes] = mask_value
            if D > 1 and T > 1:  # one feature equal to mask_value alone masks nothing
                x[0, 0 if not holes[0, 0] else 1, 0] = mask_value
    layers.insert(0, input_entry(input_shape, "int32" if ids else "float32"))
    n_rec = draw(st.integers(1, 3))
    width = D
    for i in range(n_rec):
        name = "simple_rnn" if i == 0 else f"simple_rnn_{i}"
        M = draw(st.integers(1, 6))
        use_bias = draw(st.booleans())
        last = i == n_rec - 1
        rs = draw(st.booleans()) if last else True
        zofm = draw(st.booleans()) if (masked and rs) else False
        layers.append(
            simple_rnn_entry(
                name,
                M,
                draw(st.sampled_from(ACTIVATIONS)),
                use_bias,
                return_sequences=rs,
                go_backwards=draw(st.booleans()),
                zero_output_for_mask=zofm,
            )
        )
        weights[name] = _rnn_weights(rng, width, M, use_bias)
        width = M
        if not last and draw(st.booleans()):
            layers.append(dropout_entry(f"dropout_{i}" if i else "dropout"))
    for j in range(draw(st.integers(0, 2))):
        name = "dense" if j == 0 else f"dense_{j}"
        K = draw(st.integers(1, 4))
        use_bias = draw(st.booleans())
        layers.append(dense_entry(name, K, draw(st.sampled_from(ACTIVATIONS)), use_bias))
        weights[name] = _dense_weights(rng, width, K, use_bias)
        width = K
    return {"config": sequential_config(layers, input_shape), "weights": weights, "x": x}


def _check_against_oracle(spec: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_npz(Path(tmp) / "m.npz", spec["config"], spec["weights"])
        model = rnninspect.load_model(path)
        assert model.source.architecture == "config"
        x = spec["x"]
        want_y, want_states = oracle(spec["config"], spec["weights"], x)

        y64 = model.forward(x, dtype="float64")
        assert y64.dtype == np.float64
        assert_close(y64, want_y, "float64 forward vs oracle", rtol=1e-9, atol=1e-12)
        states64 = model.trace(x, dtype="float64")
        assert list(states64) == list(want_states)
        for name, seq in states64.items():
            assert_close(seq, want_states[name], f"float64 trace {name}", rtol=1e-9, atol=1e-12)

        y32 = model.forward(x)
        assert y32.dtype == np.float32
        assert_close(y32, want_y, "float32 forward vs oracle")
        for name, seq in model.trace(x).items():
            assert seq.dtype == np.float32
            assert_close(seq, want_states[name], f"float32 trace {name}")


@given(random_models())
def test_random_models_match_oracle(spec: dict[str, Any]) -> None:
    _check_against_oracle(spec)


@given(random_models(masked=True))
def test_random_masked_models_match_oracle(spec: dict[str, Any]) -> None:
    _check_against_oracle(spec)


# ------------------------------------------------------------- hand-built mask examples


def _one_layer_masked(zofm: bool, go_backwards: bool) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    layers = [
        input_entry([5, 2]),
        masking_entry("masking", 0.0),
        simple_rnn_entry(
            "simple_rnn",
            3,
            return_sequences=True,
            zero_output_for_mask=zofm,
            go_backwards=go_backwards,
        ),
    ]
    weights = {"simple_rnn": _rnn_weights(rng, 2, 3, True)}
    x = rng.standard_normal((2, 5, 2)).astype(np.float32)
    x[0, 0] = 0.0  # masked first step: output zeros (nothing before it)
    x[0, 3] = 0.0  # masked middle step
    x[1, 4] = 0.0  # masked last step
    x[1, 2, 0] = 0.0  # one zero feature: NOT masked (any feature differs)
    return {"config": sequential_config(layers, [5, 2]), "weights": weights, "x": x}


@pytest.mark.parametrize("zofm", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_step_keeps_state(tmp_path: Path, zofm: bool, go_backwards: bool) -> None:
    spec = _one_layer_masked(zofm, go_backwards)
    model = rnninspect.load_model(write_npz(tmp_path / "m.npz", spec["config"], spec["weights"]))
    seq = model.forward(spec["x"], dtype="float64")  # (N, T, M), processing order
    x = spec["x"]
    for n in range(x.shape[0]):
        steps = list(range(5))[::-1] if go_backwards else list(range(5))
        prev = np.zeros(3)
        for pos, t in enumerate(steps):
            masked = not np.any(x[n, t] != 0.0)
            if masked:
                want = np.zeros(3) if zofm else prev
                np.testing.assert_array_equal(seq[n, pos], want)
            else:
                assert not np.array_equal(seq[n, pos], prev)
                prev = seq[n, pos]
    # Hand-checked facts about this input: the first processed step of sample 0
    # (forward) / sample 1 (backwards) is masked, with no valid step before it.
    np.testing.assert_array_equal(seq[1 if go_backwards else 0, 0], np.zeros(3))
    # x[1, 2] has one zero feature only: not masked, so the state moves (position 2
    # is step 2 in both orders since T = 5).
    assert not np.array_equal(seq[1, 2], seq[1, 1])
    assert_close(
        seq, oracle(spec["config"], spec["weights"], x)[0], "oracle", rtol=1e-9, atol=1e-12
    )


def test_fully_masked_sample_gives_zero_state(tmp_path: Path) -> None:
    spec = _one_layer_masked(False, False)
    spec["config"]["config"]["layers"][2]["config"]["return_sequences"] = False
    model = rnninspect.load_model(write_npz(tmp_path / "m.npz", spec["config"], spec["weights"]))
    x = spec["x"].copy()
    x[1] = 0.0
    y = model.forward(x, dtype="float64")
    np.testing.assert_array_equal(y[1], np.zeros(3))  # h_0 kept throughout
    assert np.any(y[0] != 0)
