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


def spec(name):
    """``(builder, seed, T, kind, notebook, description, options)`` of a model."""
    builder, seed, T, kind, notebook, desc, *rest = MODELS[name]
    return builder, seed, T, kind, notebook, desc, (rest[0] if rest else {})


def base_name(w):
    """Short weight name without scope and ``:0`` (both Keras 3 and tf_keras)."""
    return w.name.split("/")[-1].split(":")[0]


def make_input(kind, T, D, seed, vocab=20):
    rng = np.random.default_rng(seed + 10_000)
    if kind == "ids":
        x = rng.integers(1, vocab, size=(N, T)).astype(np.int32)
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


def as_list(y):
    """predict() output as a list of float32 arrays (one per model output)."""
    ys = list(y) if isinstance(y, (list, tuple)) else [y]
    return [np.asarray(a, dtype=np.float32) for a in ys]


def allclose(a, b):
    a, b = as_list(a), as_list(b)
    return len(a) == len(b) and all(
        u.shape == v.shape and np.allclose(u, v, rtol=RTOL, atol=ATOL) for u, v in zip(a, b))


def maxdiff(a, b):
    return max(float(np.abs(u - v).max()) for u, v in zip(as_list(a), as_list(b)))


def is_container(layer):
    """A nested model used as a layer (Sequential or Functional, either flavour)."""
    return type(layer).__name__ in ("Sequential", "Functional", "Model") and hasattr(
        layer, "layers")


def is_recurrent(layer):
    return type(layer).__name__ in (*RECURRENT, "Bidirectional")


def leaf_entries(model, parent=None):
    """``(layer, parent container name or None)`` in execution order; nested models are
    expanded into their own layers, InputLayers dropped."""
    out = []
    for l in model.layers:
        if type(l).__name__ == "InputLayer":
            continue
        if is_container(l):
            out += leaf_entries(l, l.name)
        else:
            out.append((l, parent))
    return out


def leaf_layers(model):
    return [l for l, _ in leaf_entries(model)]


def containers(model):
    """Nested models, recursively (outermost first)."""
    out = []
    for l in model.layers:
        if is_container(l):
            out += [l, *containers(l)]
    return out


def rnn_parts(layer):
    """``[(part, rnn layer)]``: Bidirectional -> forward/backward, else ``[(None, layer)]``."""
    if type(layer).__name__ == "Bidirectional":
        return [("forward", layer.forward_layer), ("backward", layer.backward_layer)]
    return [(None, layer)]


def core_rnn(layer):
    return rnn_parts(layer)[0][1]


def set_random_weights(m3, m2, seed):
    """Random (incl. non-zero bias) float32 weights into both models, leaf layer by leaf
    layer (layers inside nested models individually; m2 may be None)."""
    rng = np.random.default_rng(seed)
    leaves3 = leaf_layers(m3)
    leaves2 = leaf_layers(m2) if m2 is not None else None
    if leaves2 is not None:
        assert [type(l).__name__ for l in leaves3] == [type(l).__name__ for l in leaves2]
        assert [l.name for l in leaves3] == [l.name for l in leaves2], (
            [l.name for l in leaves3], [l.name for l in leaves2])
    for i, l3 in enumerate(leaves3):
        if not l3.weights:
            continue
        ws = [(rng.standard_normal(tuple(w.shape)) * 0.5).astype(np.float32)
              for w in l3.weights]
        l3.set_weights(ws)
        if leaves2 is not None:
            l2 = leaves2[i]
            names3 = [(base_name(w), tuple(w.shape)) for w in l3.weights]
            names2 = [(base_name(w), tuple(w.shape)) for w in l2.weights]
            assert names3 == names2, (l3.name, names3, names2)
            l2.set_weights(ws)
    if m2 is not None:
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


def out_shape(l, flavour):
    """A layer's output shape; a list of shapes for multi-output layers (return_state,
    Bidirectional(merge_mode=None))."""
    if flavour == "keras3":
        o = l.output
        if isinstance(o, (list, tuple)):
            return [shape_list(t.shape) for t in o]
        return shape_list(o.shape)
    shp = l.output_shape
    if isinstance(shp, list) and len(shp) > 1:
        return [shape_list(s) for s in shp]
    return shape_list(shp)


def layer_rows(model, flavour):
    rows = []
    for l in model.layers:
        rows.append({
            "name": l.name,
            "class_name": type(l).__name__,
            "output_shape": out_shape(l, flavour),
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


def summary_block(model, flavour):
    block = {
        "model_class": type(model).__name__,
        "in_summary": any(type(l).__name__ == "InputLayer" for l in model.layers),
        "layers": layer_rows(model, flavour),
        **counts(model),
    }
    inner = containers(model)
    if inner:
        block["inner_layers"] = {
            c.name: {
                "model_class": type(c).__name__,
                "in_summary": any(type(l).__name__ == "InputLayer" for l in c.layers),
                "layers": layer_rows(c, flavour),
                **counts(c),
            }
            for c in inner
        }
    return block


def check_summary(model, block, flav, name):
    """The rows we record are exactly the rows the summary shows."""
    s = summary_text(model)
    assert ("(InputLayer)" in s) == block["in_summary"], (name, flav)
    for row in block["layers"]:
        assert row["name"] in s, (flav, row["name"])
    for c in containers(model):
        sc = summary_text(c)
        inner = block["inner_layers"][c.name]
        assert ("(InputLayer)" in sc) == inner["in_summary"], (name, flav, c.name)
        for row in inner["layers"]:
            assert row["name"] in sc, (flav, c.name, row["name"])
    return s


def recurrent_layers(model):
    return [l for l in leaf_layers(model) if type(l).__name__ in RECURRENT]


def input_mask(model, x):
    """The (N,T) boolean mask every recurrent layer of our models sees (masks pass on
    unchanged through Masking/Embedding -> Dense/TimeDistributed/RNN(seq)), or None."""
    for l in leaf_layers(model):
        cls = type(l).__name__
        if cls == "Masking":
            return np.any(x != l.mask_value, axis=-1)
        if cls == "Embedding" and l.mask_zero:
            return x != 0
    return None


def last_valid(seq, mask):
    """Output at each sample's last unmasked step; seq (N,T,M) and mask (N,T) both in the
    layer's processing order (mask None: the last step). Zeros if all steps are masked."""
    if mask is None:
        return seq[:, -1]
    out = np.zeros((seq.shape[0], seq.shape[2]), dtype=seq.dtype)
    for n in range(seq.shape[0]):
        idx = np.nonzero(mask[n])[0]
        if len(idx):
            out[n] = seq[n, idx[-1]]
    return out


def merge(mode, a, b):
    if mode == "concat":
        return np.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "ave":
        return (a + b) / 2
    if mode == "mul":
        return a * b
    raise ValueError(mode)


def copy_rnn(layer, name, **overrides):
    """A fresh layer from ``layer``'s config with some keys changed (weights set later)."""
    cfg = dict(layer.get_config())
    cfg.update(overrides)
    cfg["name"] = name
    return type(layer).from_config(cfg)


def rnn_goldens(m3, x, y, chain):
    """golden.npz entries for every recurrent layer (see README): ``state/<L>``,
    ``state/<L>/forward|backward``, ``final/<L>[/forward|/backward]/h|c``.

    Each recurrent layer's copies are fed the very input the original receives, via a
    functional graph on a fresh symbolic Input built through all the (leaf) layers
    before it, so masks propagate exactly as in the model."""
    leaves = leaf_layers(m3)
    inp0 = m3.inputs[0]
    mask = input_mask(m3, x)

    def fresh_chain(upto):
        inp = keras.Input(shape=tuple(inp0.shape[1:]), dtype=inp0.dtype)
        t = inp
        for prev in leaves[:upto]:
            t = prev(t)  # masks ride along on the symbolic tensor
        return inp, t

    if chain:
        # the flattened chain of leaf layers is the model
        inp, t = fresh_chain(len(leaves))
        got = keras.Model(inp, t).predict(x, verbose=0)
        assert allclose(got, y), ("leaf chain != model", maxdiff(got, y))

    out = {}
    for i, layer in enumerate(leaves):
        if not is_recurrent(layer):
            continue
        if not chain:
            assert i == 0, "non-chain models: recurrent layers must read the model input"
        L = layer.name
        inp, t = fresh_chain(i)
        assert not isinstance(t, (list, tuple)), L
        keys, tensors, to_set = [], [], []

        def add(key, tensor, keys=keys, tensors=tensors):
            keys.append(key)
            tensors.append(tensor)

        real = layer(t)
        real = list(real) if isinstance(real, (list, tuple)) else [real]
        for j, r in enumerate(real):
            add(f"real/{j}", r)

        bidi = type(layer).__name__ == "Bidirectional"
        if bidi and layer.merge_mode is not None:
            cfg = json.loads(json.dumps(layer.get_config()))
            for k in ("layer", "backward_layer"):
                cfg[k]["config"].update(return_sequences=True, return_state=False)
            cfg["name"] = L + "_allsteps"
            clone = type(layer).from_config(cfg)
            add(f"state/{L}", clone(t))
            to_set.append((clone, layer))
        for part, sub in rnn_parts(layer):
            pre = f"{L}/{part}" if part else L
            tag = f"{L}_{part}" if part else L
            clone = copy_rnn(sub, tag + "_allsteps", return_sequences=True, return_state=False)
            add(f"state/{pre}", clone(t))
            to_set.append((clone, sub))
            if type(sub).__name__ == "LSTM":
                fin = copy_rnn(sub, tag + "_final", return_state=True)
                fo = fin(t)
                add(f"final/{pre}/h", fo[1])
                add(f"final/{pre}/c", fo[2])
                to_set.append((fin, sub))
        for clone, src in to_set:
            clone.set_weights(src.get_weights())
        got = keras.Model(inp, tensors).predict(x, verbose=0)
        got = dict(zip(keys, as_list(got)))

        # ---- consistency checks against the original layer's own output
        real = [got.pop(f"real/{j}") for j in range(len(real))]
        if bidi:
            fwd = layer.forward_layer
            f, b = got[f"state/{L}/forward"], got[f"state/{L}/backward"]
            mf = mask
            mb = None if mask is None else mask[:, ::-1]  # backward processing order
            valid = np.ones(f.shape[:2], bool) if mask is None else mask
            b_in = b[:, ::-1]  # backward sequence flipped back to input order
            assert f.shape == b.shape == (x.shape[0], x.shape[1], fwd.units), f.shape
            if layer.merge_mode is not None:
                merged = got[f"state/{L}"]
                assert np.allclose(merged[valid], merge(layer.merge_mode, f, b_in)[valid],
                                   rtol=RTOL, atol=ATOL), L
                if layer.return_sequences:
                    assert allclose(real[0], merged), L
                else:
                    last = merge(layer.merge_mode, last_valid(f, mf), last_valid(b, mb))
                    assert allclose(real[0], last), L
            else:
                assert layer.return_sequences
                assert np.allclose(real[0][valid], f[valid], rtol=RTOL, atol=ATOL), L
                assert np.allclose(real[1][valid], b_in[valid], rtol=RTOL, atol=ATOL), L
            for part, seq, m in (("forward", f, mf), ("backward", b, mb)):
                if f"final/{L}/{part}/h" in got:
                    assert allclose(got[f"final/{L}/{part}/h"], last_valid(seq, m)), (L, part)
        else:
            seq = got[f"state/{L}"]
            assert seq.shape == (x.shape[0], x.shape[1], layer.units), seq.shape
            m = None if mask is None else (mask[:, ::-1] if layer.go_backwards else mask)
            h_last = last_valid(seq, m)
            if layer.return_sequences:
                assert allclose(real[0], seq), L
            elif not getattr(layer, "zero_output_for_mask", False):
                assert allclose(real[0], h_last), L
            if layer.return_state:
                assert allclose(real[1], h_last), L
            if type(layer).__name__ == "LSTM":
                assert allclose(got[f"final/{L}/h"], h_last), L
                if layer.return_state:
                    assert allclose(real[2], got[f"final/{L}/c"]), L
        for k, v in got.items():
            assert k not in out, k
            out[k] = v.astype(np.float32)
    return out


def tfkeras_hard_sigmoid(x):
    """tf_keras / Keras 2 hard_sigmoid (Keras 3 uses relu6(x + 3) / 6)."""
    return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def emulate_tfkeras(builder, m3):
    """A Keras 3 copy of m3 whose hard_sigmoid activations are tf_keras's."""
    em = builder(keras)
    em.set_weights(m3.get_weights())
    swapped = 0
    for leaf in leaf_layers(em):
        if not is_recurrent(leaf):
            continue
        for _, sub in rnn_parts(leaf):
            for attr in ("activation", "recurrent_activation"):
                f = getattr(sub.cell, attr, None)
                if getattr(f, "__name__", "") == "hard_sigmoid":
                    setattr(sub.cell, attr, tfkeras_hard_sigmoid)
                    swapped += 1
    assert swapped, "no hard_sigmoid found"
    return em


def golden_y(prefix, ys):
    """``y`` for single-output models, ``y/0``, ``y/1``, ... for multi-output ones."""
    if len(ys) == 1:
        return {prefix: ys[0]}
    return {f"{prefix}/{i}": a for i, a in enumerate(ys)}


# --------------------------------------------------------------------------------------
# per-model generation
# --------------------------------------------------------------------------------------


def generate(name):
    builder, seed, T, kind, notebook, _, opts = spec(name)
    if opts.get("jax") and not JAX_WORKER:
        return generate_jax(name)
    tfk_skip = opts.get("tfkeras")  # reason string: no tf_keras files for this model
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    p = lambda f: os.path.join(d, f)  # noqa: E731

    keras.backend.clear_session()
    m3 = builder(keras)
    m2 = None
    if not tfk_skip:
        tf_keras.backend.clear_session()
        m2 = builder(tf_keras)
        # top-level names agree, except default names of nested models (Keras 3
        # "functional" vs tf_keras "model"); leaf names are compared in set_random_weights
        top3 = [l.name if not is_container(l) else "<model>" for l in m3.layers
                if type(l).__name__ != "InputLayer"]
        top2 = [l.name if not is_container(l) else "<model>" for l in m2.layers
                if type(l).__name__ != "InputLayer"]
        assert top3 == top2, (top3, top2)
    set_random_weights(m3, m2, seed)

    in_shape = tuple(m3.inputs[0].shape[1:])
    D = in_shape[1] if len(in_shape) == 2 else None
    vocab = next((l.input_dim for l in leaf_layers(m3) if type(l).__name__ == "Embedding"), 20)
    x = make_input(kind, T, D, seed, vocab)

    y = as_list(m3.predict(x, verbose=0))
    tfk_note = None
    if m2 is not None:
        y2 = as_list(m2.predict(x, verbose=0))
        if opts.get("tfk_hard_sigmoid"):
            # tf_keras's hard_sigmoid is clip(0.2x+0.5), Keras 3's relu6(x+3)/6: the two
            # predictions differ by design; prove the difference is exactly that.
            assert not allclose(y, y2), (name, "expected y != y_tfkeras")
            ye = as_list(emulate_tfkeras(builder, m3).predict(x, verbose=0))
            assert allclose(ye, y2), (name, maxdiff(ye, y2))
            tfk_note = ("y_tfkeras != y by design: tf_keras hard_sigmoid = clip(0.2x + 0.5, 0, 1), "
                        "Keras 3 hard_sigmoid = clip(x/6 + 0.5, 0, 1); Keras 3 with tf_keras's "
                        f"hard_sigmoid reproduces y_tfkeras (max diff {maxdiff(ye, y2):.1e})")
        else:
            assert allclose(y, y2), (name, maxdiff(y, y2))

    # ---- Keras 3 files
    m3.save(p("model.keras"))
    m3.save(p("model.h5"))
    m3.save_weights(p("model.weights.h5"))
    # ---- tf_keras files
    if m2 is not None:
        m2.save(p("tfkeras.keras"))
        m2.save(p("tfkeras.h5"), save_format="h5")
        m2.save_weights(p("tfkeras_weights.h5"))
    else:
        with open(p("SKIPPED_tfkeras.txt"), "w") as f:
            f.write(f"No tf_keras files (tfkeras.keras, tfkeras.h5, tfkeras_weights.h5) for "
                    f"{name}: {tfk_skip}\n")

    # ---- layout sanity checks
    if m2 is not None:
        with h5py.File(p("tfkeras_weights.h5"), "r") as f:
            assert "layer_names" in f.attrs and "model_config" not in f.attrs, dict(f.attrs)
        with h5py.File(p("tfkeras.h5"), "r") as f:
            assert "model_config" in f.attrs and "model_weights" in f
    with h5py.File(p("model.h5"), "r") as f:
        assert "model_config" in f.attrs and "model_weights" in f
        assert f.attrs["backend"] == keras.backend.backend(), f.attrs["backend"]
    with h5py.File(p("model.weights.h5"), "r") as f:
        assert "layers" in f or "_layer_checkpoint_dependencies" in f, list(f)
    for zf in ("model.keras",) + (("tfkeras.keras",) if m2 is not None else ()):
        with zipfile.ZipFile(p(zf)) as z:
            members = set(z.namelist())
        assert {"config.json", "metadata.json", "model.weights.h5"} <= members, members

    # ---- every format reloads and predicts the same y
    def check(tag, model, want):
        got = model.predict(x, verbose=0)
        assert allclose(got, want), (name, tag, maxdiff(got, want))

    check("keras3 model.keras", keras.models.load_model(p("model.keras")), y)
    check("keras3 model.h5", keras.models.load_model(p("model.h5")), y)
    fresh3 = builder(keras)
    fresh3.load_weights(p("model.weights.h5"))
    check("keras3 model.weights.h5", fresh3, y)
    if m2 is not None:
        check("tf_keras tfkeras.keras", tf_keras.models.load_model(p("tfkeras.keras")), y2)
        check("tf_keras tfkeras.h5", tf_keras.models.load_model(p("tfkeras.h5")), y2)
        fresh2 = builder(tf_keras)
        fresh2.load_weights(p("tfkeras_weights.h5"))
        check("tf_keras tfkeras_weights.h5", fresh2, y2)

    # ---- config.json and layers.npz
    cfg_json = m3.to_json()
    with open(p("config.json"), "w") as f:
        json.dump(json.loads(cfg_json), f, indent=2)
        f.write("\n")

    arrays = {}
    for l in leaf_layers(m3):
        parts = rnn_parts(l)
        if parts[0][0] is not None:  # Bidirectional: forward weights, then backward
            assert [id(w) for w in l.weights] == [id(w) for _, s in parts for w in s.weights]
        for part, sub in parts:
            for w in (sub.weights if part else l.weights):
                key = base_name(w)
                assert key in WEIGHT_KEYS, (l.name, w.path)
                k = f"{l.name}/{part}/{key}" if part else f"{l.name}/{key}"
                assert k not in arrays, k
                arrays[k] = np.asarray(w.numpy(), dtype=np.float32)
    assert sum(int(a.size) for a in arrays.values()) == m3.count_params()
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
    golden = {"x": x, **golden_y("y", y)}
    golden.update(rnn_goldens(m3, x, y, opts.get("chain", True)))
    if m2 is not None:
        golden.update(golden_y("y_tfkeras", y2))
    np.savez(p("golden.npz"), **golden)

    # ---- expected.json and summaries
    entries = [(l, par) for l, par in leaf_entries(m3) if is_recurrent(l)]
    first = core_rnn(entries[0][0])
    outs = m3.outputs
    expected = {
        "keras_version": keras.__version__,
        "tf_keras_version": tf_keras.__version__ if tf_keras is not None else None,
        "keras_backend": keras.backend.backend(),
        "dims": {
            "T": in_shape[0],
            "D": int(first.cell.kernel.shape[0]),
            "M": int(first.units),
            "K": int(outs[0].shape[-1]),
            "N": N,
            "T_golden": T,
            "recurrent_units": {l.name: int(core_rnn(l).units) for l, _ in entries},
            "input_shape": list(in_shape),
            "input_dtype": str(np.dtype(x.dtype)),
            "output_shape": shape_list(outs[0].shape),
            "num_outputs": len(outs),
            "output_shapes": [shape_list(o.shape) for o in outs],
        },
        "recurrent_layers": [
            {
                "name": l.name,
                "class_name": type(l).__name__,
                "wrapped_class": (type(core_rnn(l)).__name__
                                  if type(l).__name__ == "Bidirectional" else None),
                "merge_mode": getattr(l, "merge_mode", None),
                "units": int(core_rnn(l).units),
                "return_sequences": bool(l.return_sequences),
                "return_state": bool(l.return_state),
                "go_backwards": bool(core_rnn(l).go_backwards),
                "nested_in": par,
            }
            for l, par in entries
        ],
        "keras3": summary_block(m3, "keras3"),
        "tfkeras": summary_block(m2, "tfkeras") if m2 is not None else None,
    }
    if m2 is not None:
        expected["max_abs_y_minus_y_tfkeras"] = maxdiff(y, y2)
    if tfk_note:
        expected["tfkeras_note"] = tfk_note
    if tfk_skip:
        expected["tfkeras_skipped"] = tfk_skip
    s3 = check_summary(m3, expected["keras3"], "keras3", name)
    s2 = check_summary(m2, expected["tfkeras"], "tfkeras", name) if m2 is not None else None
    with open(p("expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    with open(p("summary_keras3.txt"), "w", encoding="utf-8") as f:
        f.write(s3)
    if s2 is not None:
        with open(p("summary_tfkeras.txt"), "w", encoding="utf-8") as f:
            f.write(s2)

    diff = f"{maxdiff(y, y2):.2e}" if m2 is not None else "n/a"
    log(f"[{name}] ok ({keras.backend.backend()}): params={expected['keras3']['total_params']} "
        f"max|y-y_tfkeras|={diff} files={sorted(os.listdir(d))}")


def find_jax_python():
    if JAX_PYTHON:
        return JAX_PYTHON
    env = os.environ.get("RNNINSPECT_JAX_PYTHON")
    if env:
        return env
    # a venv called "jaxenv" beside the running one (e.g. /work/jaxenv next to /work/kerasenv)
    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    cand = os.path.join(os.path.dirname(venv), "jaxenv", "bin", "python")
    return cand if os.path.exists(cand) else None


def generate_jax(name):
    """Run this script under the JAX venv to write the Keras 3 files, then re-check them
    here with the TensorFlow backend."""
    builder, seed, _, _, _, _, opts = spec(name)
    py = find_jax_python()
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    env = dict(os.environ, KERAS_BACKEND="jax")
    subprocess.run([py, os.path.abspath(__file__), "--jax-worker", "--out", OUT, name],
                   check=True, env=env)
    p = lambda f: os.path.join(d, f)  # noqa: E731
    with np.load(p("golden.npz"), allow_pickle=False) as z:
        golden = dict(z)
    x, y = golden["x"], golden["y"]
    with h5py.File(p("model.h5"), "r") as f:
        assert f.attrs["backend"] == "jax", f.attrs["backend"]
    with zipfile.ZipFile(p("model.keras")) as z:
        meta = json.loads(z.read("metadata.json"))
    # the JAX-written files load and predict the same under the TensorFlow backend
    keras.backend.clear_session()
    for f in ("model.keras", "model.h5"):
        got = keras.models.load_model(p(f)).predict(x, verbose=0)
        assert allclose(got, y), (name, f, maxdiff(got, y))
    fresh = builder(keras)
    fresh.load_weights(p("model.weights.h5"))
    assert allclose(fresh.predict(x, verbose=0), y), (name, "model.weights.h5")
    # same seed => same weights and x as the reference model (e.g. lstm_stack)
    ref = builder(keras)
    set_random_weights(ref, None, seed)
    with np.load(p("layers.npz"), allow_pickle=False) as z:
        saved = [z[k] for k in z if k != "__config__"]
    assert all(np.array_equal(a, b) for a, b in zip(ref.get_weights(), saved))
    ref_dir = os.path.join(OUT, opts.get("same_as", ""))
    note = ""
    if opts.get("same_as") and os.path.exists(os.path.join(ref_dir, "golden.npz")):
        with np.load(os.path.join(ref_dir, "golden.npz"), allow_pickle=False) as z:
            other = dict(z)
        assert np.array_equal(other["x"], x)
        for k, v in golden.items():
            assert np.allclose(other[k], v, rtol=RTOL, atol=ATOL), (k, np.abs(other[k] - v).max())
        note = (f", golden matches {opts['same_as']} (max diff "
                f"{max(float(np.abs(other[k] - v).max()) for k, v in golden.items()):.1e})")
    log(f"[{name}] TF-backend re-check ok (metadata backend={meta.get('backend')!r}){note}")


# --------------------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------------------

README = """\
# sample_models

Small Keras RNN models saved in every file format rnninspect reads, with Keras's own
outputs as golden files. Generated by `scripts/make_sample_models.py` (Keras {k3},
tf_keras {k2}); TensorFlow is never needed at run or test time.

Regenerate with:

    /path/to/venv/bin/python scripts/make_sample_models.py [--out DIR] [--only model ...]

(venv: `pip install tensorflow-cpu==2.21.0 tf_keras==2.21.0`; `lstm_jax` also needs a
second, TensorFlow-free venv with `keras==3.15.1 jax jaxlib h5py numpy`, found via
`--jax-python`, `$RNNINSPECT_JAX_PYTHON` or a `jaxenv` venv beside the first one).
Weights are random (numpy seeded, scale 0.5, non-zero biases) and identical across all
formats of a model.

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
| `SKIPPED_tfkeras.txt` | instead of the three tf_keras files (and `summary_tfkeras.txt`) when a model has none, with the reason (`lstm_jax`) |
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
  Layers without bias simply have no `bias` key. A `Bidirectional` layer `B` stores
  `B/forward/<weight>` then `B/backward/<weight>` (Keras's forward-then-backward order).
  Layers inside a nested model are stored under their *own* names, flattened in
  execution order (`nested_seq`: `simple_rnn/kernel`, ..., `lstm/...`, `gru/...`); the
  nested model itself has no key. A GRU's `bias` is (2, 3M) with `reset_after=True`
  (row 0 input bias, row 1 recurrent bias) and (3M,) with `reset_after=False`.
- `notebook.npz`: `Wx` (D,M), `Wh` (M,M), `bh` (M,), `Wo` (M,K), `bo` (K,), row-vector
  convention: `h_t = tanh(x_t @ Wx + h_{{t-1}} @ Wh + bh)`, `y = h_T @ Wo + bo`. `nobias`
  has only `Wx`, `Wh`, `Wo`.
- `golden.npz`: `x` input batch (N=4; float32 standard normal, or int32 ids for
  `embedding`; `embedding`/`masking` have padding at the start of sample 0, in the middle
  of sample 1 and at the end of sample 2), `y` = Keras 3 `predict(x)`, `y_tfkeras` =
  tf_keras `predict(x)` (agree to rtol 1e-5, atol 1e-6), and for every recurrent layer
  `state/<layer name>` = that layer's output with `return_sequences=True` (N,T,M), same
  weights, same (masked) input. With `go_backwards` the sequence is in processing order.
  More keys for LSTM/GRU/Bidirectional/nested/return_state models below.
- `expected.json`: `dims` has `T` (null if variable), `D` (feature width into the first
  recurrent layer), `M` (units of the first recurrent layer), `K` (last dim of the model
  output), plus `N`, `T_golden`, `recurrent_units`, `input_shape`, `input_dtype`,
  `output_shape`. `keras3`/`tfkeras` each have `layers` (name, class_name, output_shape,
  params) listed exactly as that flavour's `model.summary()` shows them; `in_summary`
  says whether an `InputLayer` row is among them (Functional: yes; Sequential: no).
  tf_keras prints an InputLayer's shape as `[(None, 10, 3)]`; it is stored unwrapped.
  Also: `keras_backend`, `max_abs_y_minus_y_tfkeras`, `dims.num_outputs` and
  `dims.output_shapes` (all outputs; `output_shape`/`K` are the first one's),
  `recurrent_layers` (name, class_name, wrapped_class and merge_mode for Bidirectional,
  units, return_sequences, return_state, go_backwards, `nested_in` = the nested model's
  name or null). A multi-output layer's `output_shape` (LSTM with `return_state`,
  `Bidirectional(merge_mode=None)`) is a list of shapes. For nested models the `layers`
  rows are the top-level rows the summary shows (the nested model is one row, class
  `Sequential`/`Functional`), and `inner_layers` maps each nested model's name (its name
  in that flavour: `functional` in Keras 3, `model` in tf_keras) to `model_class`,
  `in_summary`, `layers` rows and counts as its own `summary()` shows them.
  `tfkeras` is null when there are no tf_keras files (`tfkeras_skipped` gives the
  reason); `tfkeras_note` explains a by-design `y` vs `y_tfkeras` difference.

## golden.npz keys for LSTM / GRU / Bidirectional / nested / return_state models

`L` below is the recurrent layer's own name, also for layers inside a nested model
(`nested_seq`: `state/simple_rnn`, `state/lstm`, `state/gru`; no nested-model prefix).
Every copy is built from the layer's config with `set_weights`, and fed the very input
the original layer receives (a functional graph on a fresh symbolic Input through all
the layers before it, nested models' layers one by one), so masks apply as in the model.

- `x`, `y` as above. Multi-output models (`bidi_none`) have `y/0`, `y/1` (and
  `y_tfkeras/0`, `y_tfkeras/1`) and **no** `y`: `y/0` is the forward sequence, `y/1` the
  backward sequence flipped back to input order (that is what Keras returns).
- `state/L` (N,T,M): plain SimpleRNN/LSTM/GRU: output with `return_sequences=True`
  (`return_state` off). Bidirectional: output of a copy of the whole Bidirectional whose
  inner layers have `return_sequences=True`, i.e. merged per step, backward half in
  input order; (N,T,2M) for `concat`. Not stored for `merge_mode=None`.
- `state/L/forward`, `state/L/backward` (N,T,M), Bidirectional only: copies of its
  `forward_layer` / `backward_layer` (`return_sequences=True`; the backward one keeps
  `go_backwards=True`) on the same input and mask. `backward` is **as Keras returns it,
  in processing order** (element 0 = after the last input step); flip axis 1 to merge.
- `final/L/h`, `final/L/c` (N,M), every LSTM: from a copy with `return_state=True`.
  Bidirectional LSTM: `final/L/forward/h`, `final/L/forward/c`, `final/L/backward/h`,
  `final/L/backward/c`. With masks these are the states after the last *unmasked* step.
- Masked steps (`masked_backwards`, `bidi_masked`, `acceptance_chain`): a copy's output
  at a masked step is the previous h (zeros before the first valid step) unless its
  `zero_output_for_mask` is on, then zeros. Bidirectional forces
  `zero_output_for_mask = return_sequences` on its inner layers, and the copies inherit
  that from `forward_layer`/`backward_layer`'s config: so for a Bidirectional *without*
  `return_sequences` (e.g. `bidi_masked`'s `bidirectional_1`) `state/L` has zeros at
  masked steps (the copy returns sequences) but `state/L/forward|backward` repeat the
  previous h. At unmasked steps they always agree (`merge(forward, flip(backward))`).
- A recurrent layer passes its mask on unreversed even with `go_backwards`, so in
  `masked_backwards` the LSTM gets the SimpleRNN's processing-order sequence together
  with the input-order mask (Keras does this; the golden files show it).
- `lstm_stack`, `gru_v1` use `hard_sigmoid`, which differs: Keras 3 `clip(x/6 + 0.5)`,
  tf_keras `clip(0.2x + 0.5)`. There `y_tfkeras` != `y` by design (the generator checks
  that Keras 3 with tf_keras's hard_sigmoid reproduces `y_tfkeras`); all `state/`/`final/`
  keys are Keras 3 values. Compare tf_keras files with `y_tfkeras`.
- `lstm_jax` has the same seed as `lstm_stack`: identical weights and `x`; its `y`,
  `state/`, `final/` come from the JAX backend and agree with `lstm_stack`'s within
  rtol 1e-5, atol 1e-6. No `y_tfkeras`.

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

### LSTM / GRU / Bidirectional / nested / return_state

- GRU `bias` is (2, 3M) with `reset_after=True` (both flavours' default), (3M,) without;
  LSTM bias (4M,). Gate orders i,f,c,o (LSTM) and z,r,h (GRU).
- `.weights.h5` Bidirectional: `layers/bidirectional/forward_layer/cell/vars/{{0,1,2}}` and
  `.../backward_layer/cell/vars/{{0,1,2}}` (Keras 3 `vars` `name` attrs: `forward_lstm`,
  `backward_lstm`, `lstm_cell`). tf_keras's `.keras` also has an empty
  `layers/bidirectional/layer/cell/vars` group (the unbuilt wrapped layer); Keras 3 has no
  `layer` group.
- `.weights.h5` nested models: `layers/sequential/layers/<class>/...` for the
  `encoder` Sequential and `layers/functional/layers/<class>/...` for the inner
  Functional, in both flavours (class-based: tf_keras's inner model is called `model`
  but its group is `functional`); an inner Functional has its own
  `layers/input_layer` group. Group names restart per container: `nested_func`'s outer
  Dense (`dense_1`) is `layers/dense` and the inner one `layers/functional/layers/dense`.
  In `acceptance_chain`, `layers/dense` is `dense_1` and `layers/time_distributed/layer`
  holds the Dense called `dense` (see the Keras 3 `name` attrs).
- Legacy `.h5` `weight_names`, Bidirectional: Keras 3
  `sequential/bidirectional/forward_lstm/lstm_cell/kernel`, ...
  `.../backward_lstm/lstm_cell/bias` (no `sequential/` prefix in Functional models);
  tf_keras `bidirectional/forward_lstm/lstm_cell/kernel:0`. Forward three, then backward.
- Legacy `.h5` nested models: one group per *top-level* layer (`layer_names` =
  `['encoder', 'gru', 'dense']`); the nested model's group lists all its inner weights.
  Keras 3 Sequential: `sequential/encoder/simple_rnn/simple_rnn_cell/kernel`, ...;
  Keras 3 Functional: `lstm/lstm_cell/kernel`, `dense/kernel` (no model prefix);
  tf_keras: `simple_rnn/simple_rnn_cell/kernel:0` / `lstm/lstm_cell/kernel:0`.
- Configs, Bidirectional: Keras 3 writes `layer` (named `forward_lstm`) **and**
  `backward_layer` (`backward_lstm`, `go_backwards: true`), both with
  `zero_output_for_mask` already forced to the layer's `return_sequences`. tf_keras
  writes only `layer` = the original wrapped layer (named `lstm`, *no*
  `zero_output_for_mask` key, no `backward_layer`): derive the backward layer
  (go_backwards flipped) and the forced `zero_output_for_mask` yourself.
- Configs, nested models: the nested model is a layer entry whose `config` has its own
  `layers` (Keras 3 also gives it `build_config`/`compile_config`). A nested Sequential
  built without an Input gets one in its config: Keras 3 `input_layer_1`, tf_keras
  `simple_rnn_input`. Inner Functional: its own `input_layers`/`output_layers`.
- Node indices: Keras 3 `keras_history` for the inner Functional's output is
  `["functional", 0, 0]`, but tf_keras writes `[["model", 1, 0, {{}}]]`: node **1**, because
  node 0 of a tf_keras model is its own internal graph. Resolve `inbound_nodes` by the
  called layer's node list, not by assuming 0.
- return_state: the consumer's inbound tensor index selects the output. `return_state`:
  Keras 3 `keras_history: ["lstm", 0, 2]` (c), tf_keras `[[["lstm", 0, 2, {{}}]]]`;
  `return_state_h`: `["simple_rnn", 0, 1]` / `[[["simple_rnn", 0, 1, {{}}]]]`. LSTM outputs
  are `[output, h, c]`, SimpleRNN/GRU `[output, h]`.
- `output_layers`: Keras 3 writes a single output as a flat triple `["dense", 0, 0]` and
  several as a list of triples (`bidi_none`: `[["bidirectional", 0, 0],
  ["bidirectional", 0, 1]]`); tf_keras always a list of triples.
- JAX (`lstm_jax`): same file layouts and config as the TensorFlow-backend Keras 3 files;
  legacy `.h5` root attr `backend` is `"jax"`; the `.keras` `metadata.json` has no backend
  field.
"""


def write_readme():
    models = "\n".join(f"- `{n}/`: {spec[5]}" for n, spec in MODELS.items())
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README.format(k3=keras.__version__, k2=tf_keras.__version__, models=models))


JAX_PYTHON = None  # set by --jax-python


def main(argv):
    global OUT, JAX_PYTHON
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", metavar="NAME", help="models to generate (default: all)")
    ap.add_argument("--only", nargs="+", default=[], metavar="NAME",
                    help="models to generate (same as positional names)")
    ap.add_argument("--out", default=OUT,
                    help="output directory (default: sample_models/ in the repo)")
    ap.add_argument("--jax-python", default=None,
                    help="python of a TensorFlow-free venv with keras + jax, for lstm_jax "
                         "(default: $RNNINSPECT_JAX_PYTHON or a 'jaxenv' venv beside this one)")
    ap.add_argument("--jax-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    OUT = os.path.abspath(args.out)
    JAX_PYTHON = args.jax_python
    asked = list(dict.fromkeys(args.names + args.only))
    names = asked or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.exit(f"unknown model(s): {unknown}; known: {list(MODELS)}")
    np.random.seed(0)
    if args.jax_worker:
        assert keras.backend.backend() == "jax", keras.backend.backend()
        for n in names:
            assert spec(n)[6].get("jax"), n
            generate(n)
        return
    tf.random.set_seed(0)
    jax_names = [n for n in names if spec(n)[6].get("jax")]
    if jax_names and not find_jax_python():
        msg = (f"no JAX python (--jax-python / $RNNINSPECT_JAX_PYTHON / ../jaxenv) for "
               f"{jax_names}")
        if asked:
            sys.exit(msg)
        log(f"WARNING: {msg}: skipped, existing directories left as they are")
        names = [n for n in names if n not in jax_names]
    os.makedirs(OUT, exist_ok=True)
    for n in names:
        generate(n)
    write_readme()


if __name__ == "__main__":
    main(sys.argv[1:])
