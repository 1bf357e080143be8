#!/usr/bin/env python
"""Write ``tests/data/export_models/``: small models whose layers the sample and wild
models do not have, for the export round trips (``tests/test_export.py``) and the
Keras check (``scripts/check_export.py``), with Keras's outputs in ``refs.npz``.

Developer-only. Run with the Keras venv (tensorflow-cpu 2.21.0, keras 3.15.1,
tf_keras 2.21.0), from the repo root::

    /work/kenv/bin/python scripts/make_export_models.py

* ``cudnn.h5``: tf_keras ``CuDNNLSTM(4, seq) -> CuDNNGRU(3) -> Dense(2)``, a legacy full
  save (built on CPU; it cannot run there). Its reference is the tf_keras model with
  ``LSTM`` / ``GRU(reset_after=True)`` in their places and the CuDNN weights loaded by
  tf_keras's legacy loader, which converts them (what ``load_model`` does on CPU).
* ``layers.keras``: Keras 3 Conv1D, BatchNormalization, LayerNormalization, PReLU,
  MultiHeadAttention, Attention (concat score), AdditiveAttention,
  RNN(StackedRNNCells), pooling.
* ``graph.keras``: Keras 3 Functional with return_state, an initial_state from the
  graph, a shared Dense, a Masking layer feeding an LSTM called with initial_state
  (its mask given explicitly, as Keras 3 needs), two outputs.
* ``inputs.keras``: two inputs, ids through Embedding(mask_zero) and a Bidirectional,
  floats through Reshape and ConvLSTM1D, TimeDistributed(Dense), Concatenate.

``refs.npz``: ``<file>/x/<i>`` (inputs, N=3) and ``<file>/y/<i>`` (``predict``).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

tf.get_logger().setLevel("ERROR")
L = keras.layers
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "export_models"
rng = np.random.RandomState(20260601)
N = 3


def randomise(model):
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for w, v in zip(ws, layer.weights):
            a = np.asarray(rng.randn(*w.shape) * 0.5, dtype=np.float32)
            if "variance" in v.path:
                a = np.abs(a) + 0.5
            new.append(a)
        layer.set_weights(new)


def layers_model():
    x = keras.Input((8, 4), name="x")
    h = L.Conv1D(6, 3, padding="same", activation="relu", name="conv")(x)
    h = L.BatchNormalization(name="bn")(h)
    h = L.LayerNormalization(name="ln")(h)
    h = L.PReLU(shared_axes=[1], name="prelu")(h)
    a = L.MultiHeadAttention(2, 3, name="mha")(h, h)
    a = L.Attention(use_scale=True, score_mode="concat", name="att")([a, h])
    a = L.AdditiveAttention(name="add_att")([a, h])
    s = L.RNN(L.StackedRNNCells([L.LSTMCell(4), L.GRUCell(3)]), return_sequences=True, name="cells")(a)
    p = L.MaxPooling1D(2, name="pool")(s)
    y = L.Dense(2, name="head")(L.GlobalAveragePooling1D(name="gap")(p))
    return keras.Model(x, y, name="layers"), [rng.randn(N, 8, 4).astype(np.float32)]


def graph_model():
    x = keras.Input((7, 3), name="x")
    seq, h, c = L.LSTM(5, return_sequences=True, return_state=True, name="enc")(x)
    dec = L.GRU(5, return_sequences=True, name="dec")(seq, initial_state=[h])
    shared = L.Dense(4, activation="tanh", name="shared")
    mixed = L.Add(name="add")([shared(seq), shared(dec)])
    m = L.Masking(0.0, name="mask")(x)
    mask = keras.ops.any(keras.ops.not_equal(x, 0.0), axis=-1)
    again = L.LSTM(5, name="again")(m, initial_state=[h, c], mask=mask)
    y1 = L.Dense(2, name="out1")(L.Flatten(name="flat")(mixed))
    y2 = L.Dense(3, name="out2")(L.Concatenate(name="cat")([again, h]))
    xs = rng.randn(N, 7, 3).astype(np.float32)
    xs[1, 5:] = 0.0  # masked at the end
    xs[2, :2] = 0.0  # and at the start, with initial states given
    return keras.Model(x, [y1, y2], name="graph"), [xs]


def inputs_model():
    ids = keras.Input((6,), dtype="int32", name="ids")
    x = keras.Input((6, 4), name="x")
    e = L.Embedding(10, 4, mask_zero=True, name="emb")(ids)
    b = L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum", name="bi")(e)
    t = L.TimeDistributed(L.Dense(2, activation="relu"), name="td")(b)
    r = L.Reshape((6, 4, 1), name="reshape")(x)
    c = L.ConvLSTM1D(2, 3, padding="same", name="convlstm")(r)
    y = L.Dense(2, name="head")(L.Concatenate(name="cat")([L.Flatten(name="f1")(t), L.Flatten(name="f2")(c)]))
    v = rng.randint(1, 10, size=(N, 6)).astype(np.int32)
    v[1, 4:] = 0
    return keras.Model([ids, x], y, name="inputs"), [v, rng.randn(N, 6, 4).astype(np.float32)]


def cudnn():
    from tf_keras.src.layers.rnn.cudnn_gru import CuDNNGRU
    from tf_keras.src.layers.rnn.cudnn_lstm import CuDNNLSTM

    T = tf_keras.layers
    m = tf_keras.Sequential([T.InputLayer((6, 3)), CuDNNLSTM(4, return_sequences=True), CuDNNGRU(3), T.Dense(2)])
    ws = [(rng.randn(*w.shape) * 0.5).astype(np.float32) for w in m.get_weights()]
    m.set_weights(ws)
    path = OUT / "cudnn.h5"
    m.save(path, save_format="h5")
    plain = tf_keras.Sequential([
        T.InputLayer((6, 3)),
        T.LSTM(4, return_sequences=True, recurrent_activation="sigmoid", name=m.layers[0].name),
        T.GRU(3, reset_after=True, recurrent_activation="sigmoid", name=m.layers[1].name),
        T.Dense(2, name=m.layers[2].name),
    ])
    plain.load_weights(path)  # the legacy loader converts CuDNN weights
    x = rng.randn(N, 6, 3).astype(np.float32)
    return [x], [plain.predict(x, verbose=0)]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    store = {}
    for name, make in (("layers", layers_model), ("graph", graph_model), ("inputs", inputs_model)):
        model, xs = make()
        randomise(model)
        ys = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
        model.save(OUT / f"{name}.keras")
        for i, a in enumerate(xs):
            store[f"{name}.keras/x/{i}"] = a
        for i, a in enumerate(ys):
            store[f"{name}.keras/y/{i}"] = a
        print(f"{name}.keras: {len(model.layers)} layers, outputs {[y.shape for y in ys]}")
    xs, ys = cudnn()
    store["cudnn.h5/x/0"], store["cudnn.h5/y/0"] = xs[0], ys[0]
    np.savez(OUT / "refs.npz", **store)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
