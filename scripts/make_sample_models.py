#!/usr/bin/env python
"""Generate the sample Keras models and golden outputs in ``sample_models/``.

This is a *developer-only* generator. rnninspect never needs TensorFlow or Keras at
run time or test time: the tests read the files this script wrote (and committed).

Install its dependencies into a throw-away virtualenv::

    python -m venv /tmp/kerasenv
    /tmp/kerasenv/bin/pip install tensorflow-cpu==2.21.0 tf_keras==2.21.0

(tensorflow-cpu 2.21 pulls in Keras 3 (``import keras``, checked with 3.15.1);
``tf_keras`` is the Keras 2 API (``import tf_keras``).) The ``lstm_jax`` model is saved
by Keras 3 on the JAX backend, from a *second* virtualenv that must not contain
TensorFlow::

    python -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip install keras==3.15.1 jax jaxlib h5py numpy

Then, from the repo root::

    /tmp/kerasenv/bin/python scripts/make_sample_models.py               # all models
    /tmp/kerasenv/bin/python scripts/make_sample_models.py seed stacked  # a subset
    /tmp/kerasenv/bin/python scripts/make_sample_models.py --out /tmp/s --only lstm gru

Options: ``--out DIR`` (default ``sample_models/`` in the repo; the README is written
there too), ``--only NAME ...`` (same as positional names), ``--jax-python PY`` (the
JAX venv's interpreter; default ``$RNNINSPECT_JAX_PYTHON``, else a ``jaxenv`` venv next
to the running one, e.g. ``/work/jaxenv`` beside ``/work/kerasenv``). Without a usable
JAX interpreter ``lstm_jax`` is skipped with a warning (an error if asked for by name).
``--jax-worker`` is internal: the script re-runs itself under the JAX interpreter.

Each ``<out>/<model>/`` directory is deleted and regenerated. Weights and inputs
come from fixed numpy seeds, so the arrays are reproducible; the zip/HDF5 containers may
still differ byte-wise between runs (``metadata.json`` carries a save date).

Per model directory (see also the README.md this script writes):

* ``model.keras``          Keras 3 native zip (``model.save("model.keras")``)
* ``model.h5``             Keras 3 legacy full save (``model.save("model.h5")``)
* ``model.weights.h5``     Keras 3 ``model.save_weights("model.weights.h5")``
* ``tfkeras.keras``        tf_keras native zip
* ``tfkeras.h5``           tf_keras legacy full save (``save_format="h5"``)
* ``tfkeras_weights.h5``   tf_keras legacy weights-only HDF5 (root attr ``layer_names``)
* ``SKIPPED_tfkeras.txt``  instead of the three tf_keras files when a model has none
* ``layers.npz``           ``<layer name>/<weight>`` arrays + ``__config__`` (JSON text)
* ``notebook.npz``         ``Wx, Wh, bh, Wo, bo`` (only one-SimpleRNN + one-Dense models)
* ``config.json``          Keras 3 ``model.to_json()`` pretty-printed
* ``golden.npz``           ``x``, ``y`` (Keras 3), ``y_tfkeras``, ``state/<rnn layer>``,
                           ``final/<lstm>/{h,c}`` (see the README for the full list)
* ``expected.json``        versions, dims, per-layer output shapes and param counts
* ``summary_keras3.txt`` / ``summary_tfkeras.txt``   ``model.summary()`` text
"""

import os
import sys

# The JAX worker (``--jax-worker``, run under a TensorFlow-free venv) must pick the JAX
# backend before Keras is imported, and must not import TensorFlow / tf_keras.
JAX_WORKER = "--jax-worker" in sys.argv[1:]
if JAX_WORKER:
    os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import warnings  # noqa: E402
import zipfile  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")

import h5py  # noqa: E402
import keras  # noqa: E402

if JAX_WORKER:
    tf = tf_keras = None
else:
    import tensorflow as tf  # noqa: E402
    import tf_keras  # noqa: E402

    tf.get_logger().setLevel("ERROR")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "sample_models")  # changed by --out

N = 4  # golden batch size
RTOL, ATOL = 1e-5, 1e-6
RECURRENT = ("SimpleRNN", "LSTM", "GRU")
WEIGHT_KEYS = ("kernel", "recurrent_kernel", "bias", "embeddings")


# --------------------------------------------------------------------------------------
# Architectures. Each builder takes the Keras module (``keras`` or ``tf_keras``) so both
# flavours are built from the very same code.
# --------------------------------------------------------------------------------------


def build_seed(K):
    return K.Sequential(
        [K.Input(shape=(10, 3)), K.layers.SimpleRNN(5), K.layers.Dense(2)]
    )


def build_functional(K):
    inp = K.Input(shape=(10, 3))
    h = K.layers.SimpleRNN(5, name="rnn")(inp)
    out = K.layers.Dense(2, name="head")(h)
    return K.Model(inp, out)


def build_stacked(K):
    return K.Sequential(
        [
            K.Input(shape=(12, 4)),
            K.layers.SimpleRNN(8, return_sequences=True, name="enc1"),
            K.layers.Dropout(0.3, name="drop"),
            K.layers.SimpleRNN(6, name="enc2"),
            K.layers.Dense(3, name="out"),
        ]
    )


def build_seq2seq(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.SimpleRNN(5, return_sequences=True),
            K.layers.Dense(2),
        ]
    )


def build_backwards(K):
    return K.Sequential(
        [
            K.Input(shape=(8, 3)),
            K.layers.SimpleRNN(6, go_backwards=True, return_sequences=True),
            K.layers.SimpleRNN(4, go_backwards=True),
            K.layers.Dense(2),
        ]
    )


def build_activations(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.SimpleRNN(5, activation="relu"),
            K.layers.Dense(8, activation="sigmoid"),
            K.layers.Dense(3, activation="softmax"),
        ]
    )


def build_nobias(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.SimpleRNN(5, use_bias=False),
            K.layers.Dense(2, use_bias=False),
        ]
    )


def build_embedding(K):
    return K.Sequential(
        [
            K.Input(shape=(9,), dtype="int32"),
            K.layers.Embedding(20, 4, mask_zero=True),
            K.layers.SimpleRNN(6),
            K.layers.Dense(3),
        ]
    )


def build_masking(K):
    # zero_output_for_mask is accepted by both Keras 3.15 and tf_keras 2.21 SimpleRNN.
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.Masking(mask_value=0.0),
            K.layers.SimpleRNN(5, return_sequences=True),
            K.layers.SimpleRNN(4, return_sequences=True, zero_output_for_mask=True),
            K.layers.Dense(2),
        ]
    )


def build_timedistributed(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.SimpleRNN(6, return_sequences=True),
            K.layers.Dropout(0.2),
            K.layers.TimeDistributed(K.layers.Dense(3, activation="tanh")),
        ]
    )


def build_variable_t(K):
    return K.Sequential(
        [K.Input(shape=(None, 3)), K.layers.SimpleRNN(5), K.layers.Dense(2)]
    )


def build_tanh_dense(K):
    return K.Sequential(
        [
            K.Input(shape=(6, 2)),
            K.layers.SimpleRNN(4),
            K.layers.Dense(4, activation="relu"),
            K.layers.Dense(1),
        ]
    )


def build_lstm(K):
    return K.Sequential([K.Input(shape=(10, 3)), K.layers.LSTM(6), K.layers.Dense(2)])


def build_lstm_stack(K):
    return K.Sequential(
        [
            K.Input(shape=(12, 4)),
            K.layers.LSTM(5, return_sequences=True, go_backwards=True),
            K.layers.LSTM(4, recurrent_activation="hard_sigmoid", activation="relu"),
            K.layers.Dense(3),
        ]
    )


def build_gru(K):
    return K.Sequential([K.Input(shape=(10, 3)), K.layers.GRU(6), K.layers.Dense(2)])


def build_gru_v1(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.GRU(5, reset_after=False, recurrent_activation="hard_sigmoid",
                         return_sequences=True),
            K.layers.GRU(4, go_backwards=True),
            K.layers.Dense(2),
        ]
    )


def make_build_bidi(merge_mode):
    def build(K):
        return K.Sequential(
            [
                K.Input(shape=(8, 3)),
                K.layers.Bidirectional(K.layers.LSTM(4, return_sequences=True),
                                       merge_mode=merge_mode),
                K.layers.Bidirectional(K.layers.GRU(3), merge_mode=merge_mode),
                K.layers.Dense(2),
            ]
        )

    build.__name__ = f"build_bidi_{merge_mode}"
    return build


def build_bidi_none(K):
    inp = K.Input(shape=(8, 3))
    fwd_bwd = K.layers.Bidirectional(K.layers.SimpleRNN(4, return_sequences=True),
                                     merge_mode=None)(inp)
    return K.Model(inp, fwd_bwd)  # two outputs: [forward seq, backward seq (input order)]


def build_acceptance_chain(K):
    return K.Sequential(
        [
            K.Input(shape=(9,), dtype="int32"),
            K.layers.Embedding(30, 5, mask_zero=True),
            K.layers.Bidirectional(K.layers.LSTM(6, return_sequences=True)),
            K.layers.TimeDistributed(K.layers.Dense(4, activation="tanh")),
            K.layers.GRU(5),
            K.layers.Dense(3),
        ]
    )


def build_masked_backwards(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.Masking(mask_value=0.0),
            K.layers.SimpleRNN(5, go_backwards=True, return_sequences=True),
            K.layers.LSTM(4, go_backwards=True, return_sequences=True),
            K.layers.GRU(3, go_backwards=True),
            K.layers.Dense(2),
        ]
    )


def build_bidi_masked(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.Masking(mask_value=0.0),
            K.layers.Bidirectional(K.layers.GRU(4, return_sequences=True), merge_mode="concat"),
            K.layers.Bidirectional(K.layers.LSTM(3), merge_mode="ave"),
            K.layers.Dense(2),
        ]
    )


def build_nested_seq(K):
    encoder = K.Sequential(
        [
            K.layers.SimpleRNN(5, return_sequences=True),
            K.layers.Dropout(0.1),
            K.layers.LSTM(4, return_sequences=True),
        ],
        name="encoder",
    )
    return K.Sequential([K.Input(shape=(10, 3)), encoder, K.layers.GRU(3), K.layers.Dense(2)])


def build_nested_func(K):
    # Default names: the inner model is "functional" in Keras 3 but "model" in tf_keras.
    inner_in = K.Input(shape=(10, 3))
    h = K.layers.LSTM(4, return_sequences=True)(inner_in)
    h = K.layers.Dense(4)(h)
    inner = K.Model(inner_in, h)
    inp = K.Input(shape=(10, 3))
    t = inner(inp)
    t = K.layers.GRU(3)(t)
    out = K.layers.Dense(2)(t)
    return K.Model(inp, out)


def build_return_state(K):
    inp = K.Input(shape=(10, 3))
    _out, _h, c = K.layers.LSTM(5, return_state=True)(inp)
    y = K.layers.Dense(2)(c)  # consumes the CELL state (output index 2) on purpose
    return K.Model(inp, y)


def build_return_state_h(K):
    inp = K.Input(shape=(10, 3))
    _seq, h = K.layers.SimpleRNN(5, return_state=True, return_sequences=True)(inp)
    y = K.layers.Dense(2)(h)  # consumes the final state h (output index 1)
    return K.Model(inp, y)


# name -> (builder, seed, golden T, input kind, notebook.npz?, description)
MODELS = {
    "seed": (build_seed, 101, 10, "float", True,
             "the notebook model: Sequential Input(10,3) -> SimpleRNN(5) -> Dense(2), 57 params"),
    "functional": (build_functional, 102, 10, "float", True,
                   "seed architecture as a Functional model, layers named rnn, head"),
    "stacked": (build_stacked, 103, 12, "float", False,
                "Input(12,4) -> SimpleRNN(8, seq) -> Dropout -> SimpleRNN(6) -> Dense(3); "
                "named enc1, drop, enc2, out"),
    "seq2seq": (build_seq2seq, 104, 10, "float", False,
                "Input(10,3) -> SimpleRNN(5, seq) -> Dense(2) on 3-D input"),
    "backwards": (build_backwards, 105, 8, "float", False,
                  "Input(8,3) -> SimpleRNN(6, go_backwards, seq) -> SimpleRNN(4, go_backwards) "
                  "-> Dense(2)"),
    "activations": (build_activations, 106, 10, "float", False,
                    "Input(10,3) -> SimpleRNN(5, relu) -> Dense(8, sigmoid) -> Dense(3, softmax)"),
    "nobias": (build_nobias, 107, 10, "float", True,
               "Input(10,3) -> SimpleRNN(5, use_bias=False) -> Dense(2, use_bias=False)"),
    "embedding": (build_embedding, 108, 9, "ids", False,
                  "Input(9,) int32 -> Embedding(20, 4, mask_zero) -> SimpleRNN(6) -> Dense(3)"),
    "masking": (build_masking, 109, 10, "masked", False,
                "Input(10,3) -> Masking(0.0) -> SimpleRNN(5, seq) -> "
                "SimpleRNN(4, seq, zero_output_for_mask) -> Dense(2)"),
    "timedistributed": (build_timedistributed, 110, 10, "float", False,
                        "Input(10,3) -> SimpleRNN(6, seq) -> Dropout -> "
                        "TimeDistributed(Dense(3, tanh))"),
    "variable_t": (build_variable_t, 111, 7, "float", True,
                   "Input(None,3) -> SimpleRNN(5) -> Dense(2); golden input has T=7"),
    "tanh_dense": (build_tanh_dense, 112, 6, "float", False,
                   "Input(6,2) -> SimpleRNN(4) -> Dense(4, relu) -> Dense(1) (regression head)"),
    # ---- LSTM / GRU / Bidirectional / nested / return_state models. Optional 7th item:
    # options dict: chain=False (not a plain chain of layers: the recurrent layer must
    # read the model input directly), tfk_hard_sigmoid=True (tf_keras's hard_sigmoid
    # differs, so y_tfkeras != y by design), tfkeras=<reason> (no tf_keras files),
    # jax=True (saved by Keras 3 on the JAX backend in a worker process).
    "lstm": (build_lstm, 113, 10, "float", False,
             "Input(10,3) -> LSTM(6) -> Dense(2)"),
    "lstm_stack": (build_lstm_stack, 114, 12, "float", False,
                   "Input(12,4) -> LSTM(5, seq, go_backwards) -> "
                   "LSTM(4, recurrent_activation=hard_sigmoid, activation=relu) -> Dense(3); "
                   "y_tfkeras differs from y (hard_sigmoid differs between Keras 3 and tf_keras)",
                   {"tfk_hard_sigmoid": True}),
    "gru": (build_gru, 115, 10, "float", False,
            "Input(10,3) -> GRU(6) (reset_after=True, bias (2,18)) -> Dense(2)"),
    "gru_v1": (build_gru_v1, 116, 10, "float", False,
               "Input(10,3) -> GRU(5, reset_after=False, recurrent_activation=hard_sigmoid, seq) "
               "-> GRU(4, go_backwards) -> Dense(2); y_tfkeras differs from y (hard_sigmoid)",
               {"tfk_hard_sigmoid": True}),
    "bidi_concat": (make_build_bidi("concat"), 117, 8, "float", False,
                    "Input(8,3) -> Bidirectional(LSTM(4, seq), concat) -> "
                    "Bidirectional(GRU(3), concat) -> Dense(2)"),
    "bidi_sum": (make_build_bidi("sum"), 118, 8, "float", False,
                 "as bidi_concat with merge_mode=sum"),
    "bidi_ave": (make_build_bidi("ave"), 119, 8, "float", False,
                 "as bidi_concat with merge_mode=ave"),
    "bidi_mul": (make_build_bidi("mul"), 120, 8, "float", False,
                 "as bidi_concat with merge_mode=mul"),
    "bidi_none": (build_bidi_none, 121, 8, "float", False,
                  "Functional Input(8,3) -> Bidirectional(SimpleRNN(4, seq), merge_mode=None); "
                  "two model outputs [forward, backward (flipped back to input order)], "
                  "golden y/0, y/1 (no y)"),
    "acceptance_chain": (build_acceptance_chain, 122, 9, "ids", False,
                         "Input(9,) int32 -> Embedding(30, 5, mask_zero) -> "
                         "Bidirectional(LSTM(6, seq)) -> TimeDistributed(Dense(4, tanh)) -> "
                         "GRU(5) -> Dense(3)"),
    "masked_backwards": (build_masked_backwards, 123, 10, "masked", False,
                         "Input(10,3) -> Masking(0.0) -> SimpleRNN(5, go_backwards, seq) -> "
                         "LSTM(4, go_backwards, seq) -> GRU(3, go_backwards) -> Dense(2)"),
    "bidi_masked": (build_bidi_masked, 124, 10, "masked", False,
                    "Input(10,3) -> Masking(0.0) -> Bidirectional(GRU(4, seq), concat) -> "
                    "Bidirectional(LSTM(3), ave) -> Dense(2)"),
    "nested_seq": (build_nested_seq, 125, 10, "float", False,
                   "Sequential: Input(10,3) -> Sequential encoder [SimpleRNN(5, seq), "
                   "Dropout(0.1), LSTM(4, seq)] -> GRU(3) -> Dense(2)"),
    "nested_func": (build_nested_func, 126, 10, "float", False,
                    "Functional: Input(10,3) -> inner Functional [LSTM(4, seq) -> Dense(4)] -> "
                    "GRU(3) -> Dense(2); inner model named functional (Keras 3) / model (tf_keras)"),
    "return_state": (build_return_state, 127, 10, "float", False,
                     "Functional: Input(10,3) -> LSTM(5, return_state) -> (out, h, c); "
                     "Dense(2) on c (tensor index 2)",
                     {"chain": False}),
    "return_state_h": (build_return_state_h, 128, 10, "float", False,
                       "Functional: Input(10,3) -> SimpleRNN(5, return_state, seq) -> (seq, h); "
                       "Dense(2) on h (tensor index 1)",
                       {"chain": False}),
    "lstm_jax": (build_lstm_stack, 114, 12, "float", False,
                 "lstm_stack saved by Keras 3 on the JAX backend (same seed, so same weights, x "
                 "and golden arrays as lstm_stack); model.keras, model.h5, model.weights.h5 only",
                 {"jax": True, "same_as": "lstm_stack",
                  "tfkeras": "saved by Keras 3 with KERAS_BACKEND=jax; tf_keras has no JAX "
                             "backend, so there are no tf_keras files (see lstm_stack for them)"}),
}


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def log(*a):
    print(*a, flush=True)


def base_name(w):
    """Short weight name without scope and ``:0`` (both Keras 3 and tf_keras)."""
    return w.name.split("/")[-1].split(":")[0]


def make_input(kind, T, D, seed):
    rng = np.random.default_rng(seed + 10_000)
    if kind == "ids":
        x = rng.integers(1, 20, size=(N, T)).astype(np.int32)
        x[0, :2] = 0          # leading zeros
        x[1, T // 2] = 0      # a hole in the middle
        x[2, -3:] = 0         # trailing padding
        return x
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    if kind == "masked":
        x[0, :2, :] = 0.0     # leading masked steps
        x[1, T // 2, :] = 0.0  # masked step in the middle
        x[2, -3:, :] = 0.0    # trailing padding
    return x


def set_random_weights(m3, m2, seed):
    """Random (incl. non-zero bias) float32 weights into both models, layer by layer."""
    rng = np.random.default_rng(seed)
    l2_by_name = {l.name: l for l in m2.layers}
    for l3 in m3.layers:
        if not l3.weights:
            continue
        l2 = l2_by_name[l3.name]
        names3 = [base_name(w) for w in l3.weights]
        names2 = [base_name(w) for w in l2.weights]
        assert names3 == names2, (l3.name, names3, names2)
        ws = [(rng.standard_normal(tuple(w.shape)) * 0.5).astype(np.float32)
              for w in l3.weights]
        l3.set_weights(ws)
        l2.set_weights(ws)
    for a, b in zip(m3.get_weights(), m2.get_weights()):
        assert a.dtype == np.float32 and np.array_equal(a, b)


def summary_text(model):
    chunks = []

    def fn(s, *args, **kwargs):
        chunks.append(str(s))

    model.summary(print_fn=fn)
    return "\n".join(c.rstrip("\n") for c in chunks) + "\n"


def shape_list(shape):
    if isinstance(shape, list) and shape and isinstance(shape[0], tuple):
        (shape,) = shape  # tf_keras InputLayer.output_shape is [(None, 10, 3)]
    return [None if d is None else int(d) for d in shape]


def layer_rows(model, flavour):
    rows = []
    for l in model.layers:
        shp = l.output.shape if flavour == "keras3" else l.output_shape
        rows.append({
            "name": l.name,
            "class_name": type(l).__name__,
            "output_shape": shape_list(shp),
            "params": int(l.count_params()),
        })
    return rows


def counts(model):
    return {
        "total_params": int(model.count_params()),
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "non_trainable_params": int(
            sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)),
    }


def recurrent_layers(model):
    return [l for l in model.layers if type(l).__name__ in RECURRENT]


def state_sequences(m3, x):
    """Per recurrent layer: its output with return_sequences=True, same weights and input."""
    out = {}
    layers = [l for l in m3.layers if type(l).__name__ != "InputLayer"]
    actual = keras.Model(m3.inputs, [l.output for l in layers]).predict(x, verbose=0)
    actual = dict(zip([l.name for l in layers], actual))
    for i, layer in enumerate(layers):
        if type(layer).__name__ not in RECURRENT:
            continue
        inp = keras.Input(shape=tuple(m3.inputs[0].shape[1:]), dtype=m3.inputs[0].dtype)
        t = inp
        for prev in layers[:i]:
            t = prev(t)  # masks ride along on the symbolic tensor
        cfg = dict(layer.get_config())
        cfg["return_sequences"] = True
        cfg["name"] = layer.name + "_allsteps"
        clone = type(layer).from_config(cfg)
        seq_out = clone(t)
        clone.set_weights(layer.get_weights())
        seq = keras.Model(inp, seq_out).predict(x, verbose=0).astype(np.float32)
        assert seq.shape == (x.shape[0], x.shape[1], layer.units), seq.shape
        real = actual[layer.name]
        if layer.return_sequences:
            assert np.allclose(seq, real, rtol=RTOL, atol=ATOL), layer.name
        else:
            # Holds whenever the output isn't zeroed for masked steps: plain layers
            # (the check the brief asks for), go_backwards (the sequence is in processing
            # order) and masked layers with zero_output_for_mask=False (masked steps
            # repeat the previous h).
            if not getattr(layer, "zero_output_for_mask", False):
                assert np.allclose(seq[:, -1], real, rtol=RTOL, atol=ATOL), layer.name
        out["state/" + layer.name] = seq
    return out


# --------------------------------------------------------------------------------------
# per-model generation
# --------------------------------------------------------------------------------------


def generate(name):
    builder, seed, T, kind, notebook, _ = MODELS[name]
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    p = lambda f: os.path.join(d, f)  # noqa: E731

    keras.backend.clear_session()
    tf_keras.backend.clear_session()
    m3 = builder(keras)
    m2 = builder(tf_keras)
    names3 = [l.name for l in m3.layers if type(l).__name__ != "InputLayer"]
    names2 = [l.name for l in m2.layers if type(l).__name__ != "InputLayer"]
    assert names3 == names2, (names3, names2)
    set_random_weights(m3, m2, seed)

    in_shape = tuple(m3.inputs[0].shape[1:])
    D = in_shape[1] if len(in_shape) == 2 else None
    x = make_input(kind, T, D, seed)

    y = m3.predict(x, verbose=0).astype(np.float32)
    y2 = m2.predict(x, verbose=0).astype(np.float32)
    assert np.allclose(y, y2, rtol=RTOL, atol=ATOL), (name, np.abs(y - y2).max())

    # ---- Keras 3 files
    m3.save(p("model.keras"))
    m3.save(p("model.h5"))
    m3.save_weights(p("model.weights.h5"))
    # ---- tf_keras files
    m2.save(p("tfkeras.keras"))
    m2.save(p("tfkeras.h5"), save_format="h5")
    m2.save_weights(p("tfkeras_weights.h5"))

    # ---- layout sanity checks
    with h5py.File(p("tfkeras_weights.h5"), "r") as f:
        assert "layer_names" in f.attrs and "model_config" not in f.attrs, dict(f.attrs)
    with h5py.File(p("tfkeras.h5"), "r") as f:
        assert "model_config" in f.attrs and "model_weights" in f
    with h5py.File(p("model.h5"), "r") as f:
        assert "model_config" in f.attrs and "model_weights" in f
    with h5py.File(p("model.weights.h5"), "r") as f:
        assert "layers" in f or "_layer_checkpoint_dependencies" in f, list(f)
    for zf in ("model.keras", "tfkeras.keras"):
        with zipfile.ZipFile(p(zf)) as z:
            members = set(z.namelist())
        assert {"config.json", "metadata.json", "model.weights.h5"} <= members, members

    # ---- every format reloads and predicts the same y
    def check(tag, model):
        got = model.predict(x, verbose=0)
        assert np.allclose(got, y, rtol=RTOL, atol=ATOL), (name, tag, np.abs(got - y).max())

    check("keras3 model.keras", keras.models.load_model(p("model.keras")))
    check("keras3 model.h5", keras.models.load_model(p("model.h5")))
    fresh3 = builder(keras)
    fresh3.load_weights(p("model.weights.h5"))
    check("keras3 model.weights.h5", fresh3)
    check("tf_keras tfkeras.keras", tf_keras.models.load_model(p("tfkeras.keras")))
    check("tf_keras tfkeras.h5", tf_keras.models.load_model(p("tfkeras.h5")))
    fresh2 = builder(tf_keras)
    fresh2.load_weights(p("tfkeras_weights.h5"))
    check("tf_keras tfkeras_weights.h5", fresh2)

    # ---- config.json and layers.npz
    cfg_json = m3.to_json()
    with open(p("config.json"), "w") as f:
        json.dump(json.loads(cfg_json), f, indent=2)
        f.write("\n")

    arrays = {}
    for l in m3.layers:
        for w in l.weights:
            key = base_name(w)
            assert key in WEIGHT_KEYS, (l.name, w.path)
            k = f"{l.name}/{key}"
            assert k not in arrays, k
            arrays[k] = np.asarray(w.numpy(), dtype=np.float32)
    arrays["__config__"] = np.array(cfg_json)
    assert arrays["__config__"].dtype.kind == "U"
    np.savez(p("layers.npz"), **arrays)
    with np.load(p("layers.npz"), allow_pickle=False) as z:
        assert list(z.keys()) == list(arrays.keys())

    # ---- notebook.npz
    if notebook:
        (rnn,) = recurrent_layers(m3)
        (dense,) = [l for l in m3.layers if type(l).__name__ == "Dense"]
        nb = {"Wx": arrays[f"{rnn.name}/kernel"], "Wh": arrays[f"{rnn.name}/recurrent_kernel"]}
        if rnn.use_bias:
            nb["bh"] = arrays[f"{rnn.name}/bias"]
        nb["Wo"] = arrays[f"{dense.name}/kernel"]
        if dense.use_bias:
            nb["bo"] = arrays[f"{dense.name}/bias"]
        np.savez(p("notebook.npz"), **nb)

    # ---- golden.npz
    golden = {"x": x, "y": y}
    golden.update(state_sequences(m3, x))
    golden["y_tfkeras"] = y2
    np.savez(p("golden.npz"), **golden)

    # ---- expected.json and summaries
    rnns = recurrent_layers(m3)
    expected = {
        "keras_version": keras.__version__,
        "tf_keras_version": tf_keras.__version__,
        "dims": {
            "T": in_shape[0],
            "D": int(rnns[0].cell.kernel.shape[0]),
            "M": int(rnns[0].units),
            "K": int(m3.outputs[0].shape[-1]),
            "N": N,
            "T_golden": T,
            "recurrent_units": {l.name: int(l.units) for l in rnns},
            "input_shape": list(in_shape),
            "input_dtype": str(np.dtype(x.dtype)),
            "output_shape": shape_list(m3.outputs[0].shape),
        },
        "keras3": {
            "model_class": type(m3).__name__,
            "in_summary": any(type(l).__name__ == "InputLayer" for l in m3.layers),
            "layers": layer_rows(m3, "keras3"),
            **counts(m3),
        },
        "tfkeras": {
            "model_class": type(m2).__name__,
            "in_summary": any(type(l).__name__ == "InputLayer" for l in m2.layers),
            "layers": layer_rows(m2, "tfkeras"),
            **counts(m2),
        },
    }
    s3, s2 = summary_text(m3), summary_text(m2)
    for flav, s in (("keras3", s3), ("tfkeras", s2)):
        # the rows we record are exactly the rows the summary shows
        ins = "(InputLayer)" in s
        assert ins == expected[flav]["in_summary"], (name, flav)
        for row in expected[flav]["layers"]:
            assert row["name"] in s, (flav, row["name"])
    with open(p("expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    with open(p("summary_keras3.txt"), "w", encoding="utf-8") as f:
        f.write(s3)
    with open(p("summary_tfkeras.txt"), "w", encoding="utf-8") as f:
        f.write(s2)

    log(f"[{name}] ok: params={expected['keras3']['total_params']} "
        f"max|y-y_tfkeras|={np.abs(y - y2).max():.2e} files={sorted(os.listdir(d))}")


# --------------------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------------------

README = """\
# sample_models

Small Keras RNN models saved in every file format rnninspect reads, with Keras's own
outputs as golden files. Generated by `scripts/make_sample_models.py` (Keras {k3},
tf_keras {k2}); TensorFlow is never needed at run or test time.

Regenerate with:

    /path/to/venv/bin/python scripts/make_sample_models.py [model ...]

(venv: `pip install tensorflow-cpu==2.21.0 tf_keras==2.21.0`). Weights are random
(numpy seeded, scale 0.5, non-zero biases) and identical across all formats of a model.

## Models

{models}

## Files in each directory

| file | what it is |
| --- | --- |
| `model.keras` | Keras 3 native zip (`config.json`, `metadata.json`, `model.weights.h5`) |
| `model.h5` | Keras 3 legacy full save: root attr `model_config`, weights in `model_weights/` |
| `model.weights.h5` | Keras 3 `save_weights`: `layers/<class>/.../vars/<i>` |
| `tfkeras.keras` | tf_keras 2 native zip (same layout as `model.keras`) |
| `tfkeras.h5` | tf_keras legacy full save (`save_format="h5"`), weight names end in `:0` |
| `tfkeras_weights.h5` | tf_keras legacy `save_weights("x.h5")`: root attr `layer_names`, layer groups at the root |
| `layers.npz` | our npz convention (below) |
| `notebook.npz` | only for one-SimpleRNN + one-Dense models (seed, functional, variable_t, nobias) |
| `config.json` | Keras 3 `model.to_json()`, pretty-printed |
| `golden.npz` | inputs and Keras outputs (below) |
| `expected.json` | versions, dims, per-layer output shapes and param counts from Keras 3 and tf_keras |
| `summary_keras3.txt`, `summary_tfkeras.txt` | `model.summary()` text, for humans |

## npz conventions

- `layers.npz`: keys `<layer name>/<weight>`, weight one of `kernel`, `recurrent_kernel`,
  `bias`, `embeddings`, in layer order (and Keras weight order within a layer). A
  `TimeDistributed(Dense)` is stored under the TimeDistributed layer's name
  (`time_distributed/kernel`). Key `__config__` is the Keras 3 `model.to_json()` text as a
  0-d numpy unicode array (`<U...`, loads with `allow_pickle=False`; `str(z["__config__"])`).
  Layers without bias simply have no `bias` key.
- `notebook.npz`: `Wx` (D,M), `Wh` (M,M), `bh` (M,), `Wo` (M,K), `bo` (K,), row-vector
  convention: `h_t = tanh(x_t @ Wx + h_{{t-1}} @ Wh + bh)`, `y = h_T @ Wo + bo`. `nobias`
  has only `Wx`, `Wh`, `Wo`.
- `golden.npz`: `x` input batch (N=4; float32 standard normal, or int32 ids for
  `embedding`; `embedding`/`masking` have padding at the start of sample 0, in the middle
  of sample 1 and at the end of sample 2), `y` = Keras 3 `predict(x)`, `y_tfkeras` =
  tf_keras `predict(x)` (agree to rtol 1e-5, atol 1e-6), and for every recurrent layer
  `state/<layer name>` = that layer's output with `return_sequences=True` (N,T,M), same
  weights, same (masked) input. With `go_backwards` the sequence is in processing order.
- `expected.json`: `dims` has `T` (null if variable), `D` (feature width into the first
  recurrent layer), `M` (units of the first recurrent layer), `K` (last dim of the model
  output), plus `N`, `T_golden`, `recurrent_units`, `input_shape`, `input_dtype`,
  `output_shape`. `keras3`/`tfkeras` each have `layers` (name, class_name, output_shape,
  params) listed exactly as that flavour's `model.summary()` shows them; `in_summary`
  says whether an `InputLayer` row is among them (Functional: yes; Sequential: no).
  tf_keras prints an InputLayer's shape as `[(None, 10, 3)]`; it is stored unwrapped.

## Layout quirks seen in these files (Keras 3.15.1, tf_keras 2.21.0)

Inspect any file with `python scripts/h5tree.py FILE` (h5py only).

- `.weights.h5` / zip `model.weights.h5`: both flavours write `layers/<class>[_n]/...`
  (class-based, not layer names; tf_keras 2.21 does *not* use
  `_layer_checkpoint_dependencies`). Only Keras 3 puts the `name` attribute on `vars`
  groups; tf_keras's groups carry no attributes. Functional models have
  `layers/input_layer` (even when the layer is called `input_1`). Weightless layers get
  empty groups; the root has an empty `vars` group.
- Legacy HDF5: all string attributes are variable-length strings (h5py gives `str`;
  `layer_names`/`weight_names` are object arrays of `str`). Both flavours add a group
  `top_level_model_weights` (not listed in `layer_names`) whose `weight_names` is an
  empty `float64` array. tf_keras names end in `:0`; Keras 3 names don't.
- Keras 3 legacy `.h5` of a *Sequential* model prefixes weight names with the model name:
  `model_weights/dense/sequential/dense/kernel`; Functional ones do not (`rnn/...`).
  TimeDistributed: Keras 3 `sequential/time_distributed/dense/kernel`, tf_keras
  `time_distributed/kernel:0`. Go by `weight_names` order.
- Configs: Keras 3 `batch_shape` and `dtype` as a `DTypePolicy` dict (which may carry a
  `shared_object_id`, a Python `id()`, e.g. in `embedding/`); tf_keras `batch_input_shape`,
  `dtype` as a string, SimpleRNN has `time_major`, Functional `inbound_nodes` in the old
  nested-list form `[[["input_1", 0, 0, {{}}]]]`, no `compile_config` in the `.keras` zip.
- Cross-loading whole models fails both ways (Keras 3 rejects `time_major`; tf_keras
  rejects `batch_shape`), but weights-only files cross-load fine.
"""


def write_readme():
    models = "\n".join(f"- `{n}/`: {spec[5]}" for n, spec in MODELS.items())
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README.format(k3=keras.__version__, k2=tf_keras.__version__, models=models))


def main(argv):
    names = argv or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.exit(f"unknown model(s): {unknown}; known: {list(MODELS)}")
    np.random.seed(0)
    tf.random.set_seed(0)
    os.makedirs(OUT, exist_ok=True)
    for n in names:
        generate(n)
    write_readme()


if __name__ == "__main__":
    main(sys.argv[1:])
