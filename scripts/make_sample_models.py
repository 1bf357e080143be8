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
    /tmp/kerasenv/bin/python scripts/make_sample_models.py --check mha stateful  # no writes

Options: ``--check`` (write nothing; reload every existing file of the models with the
Keras that wrote it and compare its predictions with ``golden.npz``), ``--out DIR`` (default ``sample_models/`` in the repo; the README is written
there too), ``--only NAME ...`` (same as positional names), ``--jax-python PY`` (the
JAX venv's interpreter; default ``$RNNINSPECT_JAX_PYTHON``, else a ``jaxenv`` venv next
to the running one, e.g. ``/work/jaxenv`` beside ``/work/kerasenv``). Without a usable
JAX interpreter ``lstm_jax`` is skipped with a warning (an error if asked for by name).
``--jax-worker`` is internal: the script re-runs itself under the JAX interpreter.

The chain models (``seed`` ... ``lstm_jax``) are made by ``generate()``, the graph
models (``seq2seq_states`` ... ``time_major``: several inputs/outputs, shared layers,
initial_state, attention, convolutions, cells, ...) by ``generate_graph()``.

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
* ``SKIPPED_keras3.txt``   instead of the three Keras 3 files (tf_keras-only models)
* ``SKIPPED_<file>.txt``   instead of a file Keras failed to write (graph models)
* ``NOTE_<file>.txt``      a file Keras writes but cannot ``load_model()`` itself
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
    # As the notebook builds it: i = Input(shape=(T, D)); x = SimpleRNN(M)(i);
    # x = Dense(K)(x); model = Model(i, x).
    i = K.Input(shape=(10, 3))
    x = K.layers.SimpleRNN(5)(i)
    x = K.layers.Dense(2)(x)
    return K.Model(i, x)


def build_seed_sequential(K):
    # The seed model as a Sequential one (the first round's seed), for tests that
    # edit a chain's config layer by layer.
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


# ---- graph models (several inputs/outputs, shared layers, initial_state, attention,
# convolutions, normalisation, cells, ...). Generated by generate_graph().


def build_seq2seq_states(K):
    enc_in = K.Input(shape=(8, 3), name="enc_in")
    dec_in = K.Input(shape=(6, 2), name="dec_in")
    _, h, c = K.layers.LSTM(5, return_state=True)(enc_in)
    dec = K.layers.LSTM(5, return_sequences=True)(dec_in, initial_state=[h, c])
    out = K.layers.TimeDistributed(K.layers.Dense(3, activation="softmax"))(dec)
    return K.Model([enc_in, dec_in], out)


def build_seq2seq_gru(K):
    enc_in = K.Input(shape=(8, 3), name="enc_in")
    dec_in = K.Input(shape=(6, 2), name="dec_in")
    _, h = K.layers.GRU(5, return_state=True)(enc_in)
    dec = K.layers.GRU(5, return_sequences=True)(dec_in, initial_state=[h])
    out = K.layers.Dense(3)(dec)  # Dense on the 3-D decoder sequence
    return K.Model([enc_in, dec_in], out)


def make_build_attention(kind):
    def build(K):
        enc_in = K.Input(shape=(8, 3), name="enc_in")
        dec_in = K.Input(shape=(6, 2), name="dec_in")
        enc_seq, h, c = K.layers.LSTM(5, return_sequences=True, return_state=True)(enc_in)
        dec_seq = K.layers.LSTM(5, return_sequences=True)(dec_in, initial_state=[h, c])
        if kind == "dot":
            att = K.layers.Attention(use_scale=True)
        else:
            att = K.layers.AdditiveAttention(use_scale=True)
        context = att([dec_seq, enc_seq])  # [query, value]; key = value
        cat = K.layers.Concatenate()([dec_seq, context])
        out = K.layers.Dense(3)(cat)
        return K.Model([enc_in, dec_in], out)

    build.__name__ = f"build_attention_{kind}"
    return build


def build_masked_attention(K, tfkeras_semantics=False):
    enc_in = K.Input(shape=(8,), dtype="int32", name="enc_ids")
    dec_in = K.Input(shape=(6,), dtype="int32", name="dec_ids")
    enc_e = K.layers.Embedding(20, 4, mask_zero=True, name="enc_emb")(enc_in)
    dec_e = K.layers.Embedding(20, 4, mask_zero=True, name="dec_emb")(dec_in)
    enc_seq, h, c = K.layers.LSTM(5, return_sequences=True, return_state=True)(enc_e)
    # Keras 3 does NOT pass dec_e's mask to an RNN called with initial_state (its
    # Layer.__call__ fills `mask` only for calls with a single tensor argument); tf_keras
    # does. tfkeras_semantics=True (Keras 3 only) passes the mask explicitly.
    extra = {"mask": dec_e._keras_mask} if tfkeras_semantics else {}
    dec_seq = K.layers.LSTM(5, return_sequences=True)(dec_e, initial_state=[h, c], **extra)
    context = K.layers.Attention()([dec_seq, enc_seq])  # masks: query = dec, value = enc
    cat = K.layers.Concatenate()([dec_seq, context])
    out = K.layers.Dense(3)(cat)
    return K.Model([enc_in, dec_in], out)


def build_masked_merge(K, tfkeras_semantics=False):
    inp = K.Input(shape=(9,), dtype="int32")
    e1 = K.layers.Embedding(20, 4, mask_zero=True)(inp)  # masked
    e2 = K.layers.Embedding(20, 3)(inp)                  # no mask
    a = K.layers.LSTM(4, return_sequences=True)(e1)      # mask passes on
    b = K.layers.GRU(4, return_sequences=True)(e2)       # no mask
    # Output masks with one masked and one unmasked input:
    #   Add:         Keras 3 None (any None mask -> None; else OR), tf_keras AND of the
    #                non-None masks = a's mask
    #   Concatenate: Keras 3 ANY over [a's mask, all-True] = all True, tf_keras ALL = a's
    # so Keras 3's lstm_1 / gru_1 run unmasked, tf_keras's masked. tfkeras_semantics=True
    # (Keras 3 only) passes a's mask explicitly to both.
    s = K.layers.Add()([a, b])
    c = K.layers.Concatenate()([a, b])
    extra = {"mask": a._keras_mask} if tfkeras_semantics else {}
    hs = K.layers.LSTM(3)(s, **extra)
    hc = K.layers.GRU(3)(c, **extra)
    # named: Keras 3's mask ops share the layer-name counters (its mask concatenate op
    # takes "concatenate_1"), so a default name would differ between the flavours
    out = K.layers.Dense(2)(K.layers.Concatenate(name="heads")([hs, hc]))
    return K.Model(inp, out)


def build_mha(K):
    inp = K.Input(shape=(8, 3))
    seq = K.layers.GRU(4, return_sequences=True)(inp)
    att = K.layers.MultiHeadAttention(num_heads=2, key_dim=3)(seq, inp)  # (query, value)
    pooled = K.layers.GlobalAveragePooling1D()(att)
    out = K.layers.Dense(2)(pooled)
    return K.Model(inp, out)


def build_autoencoder(K):
    return K.Sequential(
        [
            K.Input(shape=(8, 3)),
            K.layers.LSTM(4),
            K.layers.RepeatVector(8),
            K.layers.LSTM(4, return_sequences=True),
            K.layers.TimeDistributed(K.layers.Dense(3)),
        ]
    )


def build_cnn_lstm(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.Conv1D(6, 3, padding="causal", dilation_rate=2),
            K.layers.MaxPooling1D(2),
            K.layers.Conv1D(4, 2, padding="same", strides=1),
            K.layers.AveragePooling1D(2, padding="same"),  # 5 -> 3 steps, last one partial
            K.layers.LSTM(5),
            K.layers.Dense(2),
        ]
    )


def build_cnn_lstm_valid(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.Conv1D(4, 3, padding="valid", strides=2, groups=1, activation="relu"),
            K.layers.GRU(3),
            K.layers.Dense(1),
        ]
    )


def build_conv_groups(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 4)),
            K.layers.Conv1D(6, 3, groups=2),
            K.layers.GRU(3),
            K.layers.Dense(1),
        ]
    )


def build_merges(K):
    inp = K.Input(shape=(8, 3))
    a = K.layers.SimpleRNN(4, return_sequences=True)(inp)
    b = K.layers.GRU(4, return_sequences=True)(inp)
    s1 = K.layers.Add()([a, b])
    s2 = K.layers.Subtract()([s1, b])
    s3 = K.layers.Multiply()([s2, a])
    s4 = K.layers.Average()([s3, b])
    s5 = K.layers.Maximum()([s4, a])
    s6 = K.layers.Minimum()([s5, s1])
    cat = K.layers.Concatenate()([s6, s2])                      # (8, 8)
    sim = K.layers.Dot(axes=(2, 2))([a, b])                     # (8, 8): step-by-step dots
    cos = K.layers.Dot(axes=1, normalize=True)([cat, sim])      # (8, 8): cosine over time
    allf = K.layers.Concatenate()([cat, sim, cos])              # (8, 24)
    flat = K.layers.Flatten()(allf)
    out = K.layers.Dense(2)(flat)
    return K.Model(inp, out)


def build_norm_act(K):
    return K.Sequential(
        [
            K.Input(shape=(10, 3)),
            K.layers.Conv1D(4, 3),
            K.layers.BatchNormalization(),
            K.layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.05),
            K.layers.LSTM(5, return_sequences=True),
            K.layers.LayerNormalization(),
            K.layers.LeakyReLU(0.2),
            K.layers.GRU(4, return_sequences=True),
            K.layers.PReLU(shared_axes=[1]),
            K.layers.ELU(0.7),
            K.layers.GlobalMaxPooling1D(),
            K.layers.Dense(3),
            K.layers.Softmax(),
        ]
    )


def build_rnn_cells(K):
    return K.Sequential(
        [
            K.Input(shape=(8, 3)),
            K.layers.RNN(K.layers.LSTMCell(4), return_sequences=True),
            K.layers.RNN(K.layers.StackedRNNCells([K.layers.GRUCell(3),
                                                   K.layers.SimpleRNNCell(3)])),
            K.layers.Dense(2),
        ]
    )


def build_bidi_cells(K):
    return K.Sequential(
        [
            K.Input(shape=(8, 3)),
            K.layers.Bidirectional(K.layers.RNN(K.layers.GRUCell(3), return_sequences=True)),
            K.layers.RNN(K.layers.SimpleRNNCell(4)),
            K.layers.Dense(2),
        ]
    )


def build_convlstm1d(K):
    return K.Sequential(
        [
            K.Input(shape=(6, 8, 2)),
            # explicit sigmoid: the default recurrent_activation is "sigmoid" in Keras 3
            # but "hard_sigmoid" in tf_keras (convlstm2d keeps the defaults)
            K.layers.ConvLSTM1D(3, 3, padding="same", return_sequences=True,
                                recurrent_activation="sigmoid"),
            K.layers.ConvLSTM1D(2, 2, recurrent_activation="sigmoid"),
            K.layers.Flatten(),
            K.layers.Dense(2),
        ]
    )


def build_convlstm2d(K, recurrent_activation=None):
    # default recurrent_activation: Keras 3 "sigmoid", tf_keras "hard_sigmoid"
    extra = {"recurrent_activation": recurrent_activation} if recurrent_activation else {}
    return K.Sequential(
        [
            K.Input(shape=(5, 6, 6, 1)),
            K.layers.ConvLSTM2D(2, (3, 3), padding="valid", **extra),
            K.layers.Flatten(),
            K.layers.Dense(2),
        ]
    )


def build_multi_output(K):
    inp = K.Input(shape=(10, 3))
    seq, h, c = K.layers.LSTM(5, return_sequences=True, return_state=True)(inp)
    head = K.layers.Dense(2)(K.layers.GlobalAveragePooling1D()(seq))
    return K.Model(inp, [head, h, c])


def build_gru_state_outputs(K):
    inp = K.Input(shape=(10, 3))
    out, state = K.layers.GRU(4, return_state=True)(inp)
    return K.Model(inp, [out, state])


def build_simplernn_state_outputs(K):
    inp = K.Input(shape=(10, 3))
    seq, state = K.layers.SimpleRNN(4, return_sequences=True, return_state=True)(inp)
    return K.Model(inp, [seq, state])


def build_shared_layers(K):
    left = K.Input(shape=(8, 3), name="left")
    right = K.Input(shape=(8, 3), name="right")
    shared = K.layers.LSTM(4)
    hl, hr = shared(left), shared(right)  # the same layer (same weights) called twice
    diff = K.layers.Subtract()([hl, hr])
    cat = K.layers.Concatenate()([hl, hr, diff])
    out = K.layers.Dense(1)(cat)
    return K.Model([left, right], out)


def build_shared_nested(K):
    enc_in = K.Input(shape=(8, 3), name="enc_in")
    enc = K.layers.Dense(3)(K.layers.LSTM(4)(enc_in))
    encoder = K.Model(enc_in, enc, name="encoder")
    left = K.Input(shape=(8, 3), name="left")
    right = K.Input(shape=(8, 3), name="right")
    el, er = encoder(left), encoder(right)  # nested Functional called on two inputs
    diff = K.layers.Subtract()([el, er])
    cat = K.layers.Concatenate()([el, er, diff])
    out = K.layers.Dense(1)(cat)
    return K.Model([left, right], out)


def build_stateful(K):
    return K.Sequential(
        [
            K.Input(batch_shape=(4, 10, 3)),
            K.layers.LSTM(4, stateful=True),
            K.layers.Dense(2),
        ]
    )


def build_plumbing(K):
    inp = K.Input(shape=(8, 3))
    t = K.layers.ZeroPadding1D((1, 2))(inp)       # (11, 3)
    t = K.layers.Cropping1D((2, 1))(t)            # (8, 3)
    t = K.layers.UpSampling1D(2)(t)               # (16, 3)
    t = K.layers.SimpleRNN(4, return_sequences=True)(t)  # (16, 4)
    t = K.layers.Permute((2, 1))(t)               # (4, 16)
    t = K.layers.Reshape((8, 8))(t)               # (8, 8)
    t = K.layers.GRU(3, return_sequences=True)(t)  # (8, 3)
    t = K.layers.Flatten()(t)                     # (24,)
    out = K.layers.Dense(2)(t)
    return K.Model(inp, out)


def build_masked_graph(K):
    inp = K.Input(shape=(9,), dtype="int32")
    e = K.layers.Embedding(20, 4, mask_zero=True)(inp)
    a = K.layers.LSTM(4, return_sequences=True)(e)
    b = K.layers.LSTM(3, return_sequences=True, go_backwards=True)(e)
    cat = K.layers.Concatenate()([a, b])  # the mask passes through the merge
    h = K.layers.LSTM(5)(cat)
    out = K.layers.Dense(2)(h)
    return K.Model(inp, out)


def build_td_conv2d(K):
    return K.Sequential(
        [
            K.Input(shape=(4, 8, 8, 1)),
            K.layers.TimeDistributed(K.layers.Conv2D(2, (3, 3))),
            K.layers.TimeDistributed(K.layers.MaxPooling2D(2)),
            K.layers.TimeDistributed(K.layers.Flatten()),
            K.layers.LSTM(4),
            K.layers.Dense(2),
        ]
    )


def build_time_major(K):
    # tf_keras only (Keras 3 has no time_major). Keras's batch axis is the TIME axis here:
    # Input(shape=(4, 3)) is (T, batch=4, D=3); x has shape (10, 4, 3).
    return K.Sequential(
        [
            K.Input(shape=(4, 3)),
            K.layers.LSTM(5, time_major=True, return_sequences=True),
            K.layers.GRU(3, time_major=True),
            K.layers.Dense(2),
        ]
    )


# name -> (builder, seed, golden T, input kind, notebook.npz?, description)
MODELS = {
    "seed": (build_seed, 101, 10, "float", True,
             "the notebook model, built as the notebook builds it: Functional Model(i, x), Input(10,3) -> SimpleRNN(5) -> Dense(2), 57 params"),
    "seed_sequential": (build_seed_sequential, 101, 10, "float", True,
             "the seed model as Sequential: Input(10,3) -> SimpleRNN(5) -> Dense(2), 57 params (same weights as seed)"),
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
    # ---- graph models, generated by generate_graph(): x comes from the model's Input
    # shapes (None -> T), several inputs/outputs give x/0, x/1, ... and y/0, y/1, ...
    # Options: keras3=<reason> (no Keras 3 files), tfkeras=<reason>, x_shape=(...).
    "seq2seq_states": (build_seq2seq_states, 129, 8, "float", False,
                       "Functional, inputs enc_in (8,3), dec_in (6,2): enc_in -> "
                       "LSTM(5, return_state) -> [_, h, c]; dec_in -> LSTM(5, seq, "
                       "initial_state=[h, c]) -> TimeDistributed(Dense(3, softmax))",
                       {"graph": True}),
    "seq2seq_gru": (build_seq2seq_gru, 130, 8, "float", False,
                    "as seq2seq_states with GRU(5, return_state) -> [_, h]; "
                    "GRU(5, seq, initial_state=[h]) -> Dense(3) on the 3-D sequence",
                    {"graph": True}),
    "attention_seq2seq": (make_build_attention("dot"), 131, 8, "float", False,
                          "enc_in (8,3) -> LSTM(5, seq, return_state) -> [enc_seq, h, c]; "
                          "dec_in (6,2) -> LSTM(5, seq, initial_state=[h, c]) -> dec_seq; "
                          "Attention(use_scale=True)([dec_seq, enc_seq]) (Luong dot, scalar "
                          "scale) -> Concatenate([dec_seq, context]) -> Dense(3)",
                          {"graph": True}),
    "additive_attention": (make_build_attention("additive"), 132, 8, "float", False,
                           "as attention_seq2seq with AdditiveAttention(use_scale=True) "
                           "(Bahdanau, scale vector (5,))",
                           {"graph": True}),
    "masked_attention": (build_masked_attention, 133, 8, "ids", False,
                         "int inputs enc_ids (8,), dec_ids (6,) -> Embedding(20, 4, mask_zero) "
                         "each (enc_emb, dec_emb) -> as attention_seq2seq with Attention() "
                         "(no scale): query mask = dec mask, value mask = enc mask; golden ids "
                         "have padding zeros. y_tfkeras != y by design: Keras 3 does not pass "
                         "the decoder's mask to an RNN called with initial_state, tf_keras does",
                         {"graph": True,
                          "tfk_emulate": lambda K: build_masked_attention(K, True),
                          "tfkeras_note": "y_tfkeras != y by design: Keras 3 calls the decoder "
                          "LSTM lstm_1 (called with initial_state) WITHOUT the mask of its input "
                          "(Layer.__call__ fills `mask` only when the call has a single tensor "
                          "argument), tf_keras applies dec_ids' padding mask; Keras 3 with the "
                          "mask passed explicitly reproduces y_tfkeras"}),
    "masked_merge": (build_masked_merge, 155, 9, "ids", False,
                     "Input(9,) int32 -> a = LSTM(4, seq)(Embedding(20, 4, mask_zero)), "
                     "b = GRU(4, seq)(Embedding(20, 3)) (unmasked); LSTM(3)(Add(a, b)), "
                     "GRU(3)(Concatenate(a, b)) -> Concatenate (named heads) -> Dense(2). "
                     "y_tfkeras != y by design: with one unmasked input Keras 3's Add gives "
                     "no mask and its Concatenate an all-True one, tf_keras's give a's mask",
                     {"graph": True,
                      "tfk_emulate": lambda K: build_masked_merge(K, True),
                      "tfkeras_note": "y_tfkeras != y by design: Keras 3 merge layers "
                      "(Add, ...) return no mask when any input has none (else the OR of the "
                      "masks), and Concatenate returns any(concatenate(masks, -1), -1) with an "
                      "unmasked input counting as all-True; tf_keras returns the AND of the "
                      "non-None masks (Add) / all(...) (Concatenate). So lstm_1 (after Add) and "
                      "gru_1 (after Concatenate) run unmasked in Keras 3 and with a's mask in "
                      "tf_keras; Keras 3 with a's mask passed to both explicitly reproduces "
                      "y_tfkeras"}),
    "mha": (build_mha, 134, 8, "float", False,
            "Input(8,3) -> GRU(4, seq) = query; MultiHeadAttention(num_heads=2, key_dim=3)"
            "(query, value=the model input (8,3)) -> GlobalAveragePooling1D -> Dense(2)",
            {"graph": True}),
    "autoencoder": (build_autoencoder, 135, 8, "float", False,
                    "Sequential Input(8,3) -> LSTM(4) -> RepeatVector(8) -> LSTM(4, seq) -> "
                    "TimeDistributed(Dense(3))",
                    {"graph": True}),
    "cnn_lstm": (build_cnn_lstm, 136, 10, "float", False,
                 "Sequential Input(10,3) -> Conv1D(6, 3, causal, dilation_rate=2) -> "
                 "MaxPooling1D(2) -> Conv1D(4, 2, same) -> AveragePooling1D(2, same) (5 -> 3 "
                 "steps, the last window has one valid step) -> LSTM(5) -> Dense(2)",
                 {"graph": True}),
    "cnn_lstm_valid": (build_cnn_lstm_valid, 137, 10, "float", False,
                       "Sequential Input(10,3) -> Conv1D(4, 3, valid, strides=2, groups=1, "
                       "relu) -> GRU(3) -> Dense(1)",
                       {"graph": True}),
    "conv_groups": (build_conv_groups, 138, 10, "float", False,
                    "Sequential Input(10,4) -> Conv1D(6, 3, groups=2) (kernel (3, 2, 6)) -> "
                    "GRU(3) -> Dense(1)",
                    {"graph": True}),
    "merges": (build_merges, 139, 8, "float", False,
               "Input(8,3) -> a = SimpleRNN(4, seq), b = GRU(4, seq); s1 = Add(a, b), "
               "s2 = Subtract(s1, b), s3 = Multiply(s2, a), s4 = Average(s3, b), "
               "s5 = Maximum(s4, a), s6 = Minimum(s5, s1), cat = Concatenate(s6, s2), "
               "sim = Dot(axes=(2, 2))(a, b), cos = Dot(axes=1, normalize=True)(cat, sim), "
               "Concatenate(cat, sim, cos) -> Flatten -> Dense(2)",
               {"graph": True}),
    "norm_act": (build_norm_act, 140, 10, "float", False,
                 "Sequential Input(10,3) -> Conv1D(4, 3) -> BatchNormalization -> "
                 "ReLU(max_value=1.5, negative_slope=0.1, threshold=0.05) -> LSTM(5, seq) -> "
                 "LayerNormalization -> LeakyReLU(0.2) -> GRU(4, seq) -> "
                 "PReLU(shared_axes=[1]) -> ELU(0.7) -> GlobalMaxPooling1D -> Dense(3) -> "
                 "Softmax()",
                 {"graph": True}),
    "rnn_cells": (build_rnn_cells, 141, 8, "float", False,
                  "Sequential Input(8,3) -> RNN(LSTMCell(4), seq) -> "
                  "RNN(StackedRNNCells([GRUCell(3), SimpleRNNCell(3)])) -> Dense(2)",
                  {"graph": True}),
    "bidi_cells": (build_bidi_cells, 142, 8, "float", False,
                   "Sequential Input(8,3) -> Bidirectional(RNN(GRUCell(3), seq), concat) -> "
                   "RNN(SimpleRNNCell(4)) -> Dense(2)",
                   {"graph": True}),
    "convlstm1d": (build_convlstm1d, 143, 6, "float", False,
                   "Sequential Input(6, 8, 2) (T, width, channels) -> ConvLSTM1D(3, 3, same, "
                   "seq) -> ConvLSTM1D(2, 2) (valid: width 7) -> Flatten -> Dense(2); both "
                   "with recurrent_activation=sigmoid given explicitly",
                   {"graph": True}),
    "convlstm2d": (build_convlstm2d, 144, 5, "float", False,
                   "Sequential Input(5, 6, 6, 1) -> ConvLSTM2D(2, (3, 3), valid) -> Flatten -> "
                   "Dense(2), default recurrent_activation: sigmoid in Keras 3, hard_sigmoid "
                   "in tf_keras (written in each config), so y_tfkeras != y by design",
                   {"graph": True,
                    "tfk_emulate": lambda K: build_convlstm2d(K, tfkeras_hard_sigmoid),
                    "tfkeras_note": "y_tfkeras != y by design: ConvLSTM2D's default "
                    "recurrent_activation is \"sigmoid\" in Keras 3 but \"hard_sigmoid\" "
                    "(clip(0.2x + 0.5, 0, 1)) in tf_keras; each config states its own. Keras 3 "
                    "with tf_keras's hard_sigmoid as recurrent_activation reproduces "
                    "y_tfkeras"}),
    "multi_output": (build_multi_output, 145, 10, "float", False,
                     "Input(10,3) -> LSTM(5, seq, return_state) -> [seq, h, c]; three model "
                     "outputs [Dense(2)(GlobalAveragePooling1D(seq)), h, c]",
                     {"graph": True}),
    "gru_state_outputs": (build_gru_state_outputs, 146, 10, "float", False,
                          "Input(10,3) -> GRU(4, return_state); two model outputs "
                          "[output, state] (equal values, two distinct output tensors)",
                          {"graph": True}),
    "simplernn_state_outputs": (build_simplernn_state_outputs, 147, 10, "float", False,
                                "Input(10,3) -> SimpleRNN(4, seq, return_state); two model "
                                "outputs [seq, state]",
                                {"graph": True}),
    "shared_layers": (build_shared_layers, 148, 8, "float", False,
                      "inputs left, right (8,3) -> the SAME LSTM(4) called on each (siamese) "
                      "-> hl, hr; Concatenate(hl, hr, Subtract(hl, hr)) -> Dense(1)",
                      {"graph": True}),
    "shared_nested": (build_shared_nested, 149, 8, "float", False,
                      "inputs left, right (8,3) -> nested Functional encoder [enc_in -> "
                      "LSTM(4) -> Dense(3)] called on each -> el, er; "
                      "Concatenate(el, er, Subtract(el, er)) -> Dense(1)",
                      {"graph": True}),
    "stateful": (build_stateful, 150, 10, "float", False,
                 "Sequential Input(batch_shape=(4, 10, 3)) -> LSTM(4, stateful=True) -> "
                 "Dense(2); goldens from freshly reset states (zeros)",
                 {"graph": True}),
    "plumbing": (build_plumbing, 151, 8, "float", False,
                 "Input(8,3) -> ZeroPadding1D((1, 2)) -> Cropping1D((2, 1)) -> UpSampling1D(2) "
                 "-> SimpleRNN(4, seq) (16 steps) -> Permute((2, 1)) -> Reshape((8, 8)) -> "
                 "GRU(3, seq) -> Flatten -> Dense(2)",
                 {"graph": True}),
    "masked_graph": (build_masked_graph, 152, 9, "ids", False,
                     "Input(9,) int32 -> Embedding(20, 4, mask_zero) -> a = LSTM(4, seq), "
                     "b = LSTM(3, seq, go_backwards) -> Concatenate(a, b) (the mask passes "
                     "through) -> LSTM(5) -> Dense(2); golden ids have padding zeros",
                     {"graph": True}),
    "td_conv2d": (build_td_conv2d, 153, 4, "float", False,
                  "Sequential Input(4, 8, 8, 1) -> TimeDistributed(Conv2D(2, (3, 3))) -> "
                  "TimeDistributed(MaxPooling2D(2)) -> TimeDistributed(Flatten()) -> LSTM(4) "
                  "-> Dense(2)",
                  {"graph": True}),
    "time_major": (build_time_major, 154, 10, "float", False,
                   "tf_keras only: Sequential Input(shape=(4, 3)) -> LSTM(5, time_major, seq) "
                   "-> GRU(3, time_major) -> Dense(2); Keras's batch axis is time: x is "
                   "(T=10, batch=4, 3), y (4, 2); no Keras 3 files (SKIPPED_keras3.txt)",
                   {"graph": True, "x_shape": (10, 4, 3),
                    "keras3": "time_major=True is a tf_keras (Keras 2) LSTM/GRU/SimpleRNN "
                              "argument; Keras 3 rejects it (\"Unrecognized keyword arguments "
                              "passed to LSTM: {'time_major': True}\"), so there are no Keras 3 "
                              "files (model.keras, model.h5, model.weights.h5, config.json is "
                              "tf_keras's, no summary_keras3.txt)"}),
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
    if opts.get("graph"):
        return generate_graph(name)
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


# --------------------------------------------------------------------------------------
# graph models: generate_graph() (several inputs/outputs, shared layers, nested models,
# initial_state edges, return_state tensors, non-recurrent layers with weights).
# Works on either flavour as the primary one (Keras 3, or tf_keras for tf_keras-only
# models such as time_major).
# --------------------------------------------------------------------------------------

GRAPH_RECURRENT = ("SimpleRNN", "LSTM", "GRU", "RNN", "ConvLSTM1D", "ConvLSTM2D",
                   "Bidirectional")
GRAPH_WEIGHT_KEYS = (*WEIGHT_KEYS, "gamma", "beta", "moving_mean", "moving_variance",
                     "alpha", "scale")
WIDE = 400  # line_length of the summaries we parse (no wrapping, no truncation)


def g_is_recurrent(layer):
    return type(layer).__name__ in GRAPH_RECURRENT


def flav(K):
    return "keras3" if K is keras else "tfkeras"


def is_lstm_like(sub):
    """An RNN whose state is (h, c): return_state gives [output, h, c]."""
    cls = type(sub).__name__
    if cls in ("LSTM", "ConvLSTM1D", "ConvLSTM2D"):
        return True
    return cls == "RNN" and type(sub.cell).__name__ == "LSTMCell"


def rnn_units(layer):
    sub = core_rnn(layer)
    for attr in ("units", "filters"):
        if getattr(sub, attr, None) is not None:
            return int(getattr(sub, attr))
    cell = sub.cell
    if getattr(cell, "units", None) is not None:
        return int(cell.units)
    return int(cell.output_size)  # StackedRNNCells: the last cell's units


def cell_info(layer):
    sub = core_rnn(layer)
    if type(sub).__name__ != "RNN":
        return None, None
    cell = sub.cell
    cls = type(cell).__name__
    cells = [type(c).__name__ for c in cell.cells] if cls == "StackedRNNCells" else None
    return cls, cells


def relevant(model):
    if not hasattr(model, "_nodes_by_depth"):  # Keras 3 Sequential: its inner Functional
        model = model._functional
    return {id(n) for v in model._nodes_by_depth.values() for n in v}


def model_nodes(model, layer):
    """The calls (nodes) of ``layer`` that belong to ``model``'s graph, in order."""
    rel = relevant(model)
    return [n for n in layer._inbound_nodes if id(n) in rel]


def node_args(node, K):
    if K is keras:
        return list(node.arguments.args), dict(node.arguments.kwargs)
    return list(node.call_args), dict(node.call_kwargs)


def node_outputs(node, K):
    return list(node.output_tensors) if K is keras else list(tf.nest.flatten(node.outputs))


def history_name(t, K):
    """``layer[node][tensor]`` of a symbolic tensor, as the summaries print it."""
    if K is keras:
        h = t._keras_history
        return f"{h.operation.name}[{h.node_index}][{h.tensor_index}]"
    layer, node_index, tensor_index = t._keras_history
    return f"{layer.name}[{node_index}][{tensor_index}]"


def connections(model, layer, K):
    """The "Connected to" entries of ``layer`` in ``model``'s summary (same code path
    as Keras: every relevant call, every input tensor of it)."""
    out = []
    for node in model_nodes(model, layer):
        if K is keras:
            out += [history_name(t, K) for t in node.input_tensors]
        else:
            out += [f"{l.name}[{ni}][{ti}]" for l, ni, ti, _ in node.iterate_inbound()]
    return out


def initial_state_of(node, K):
    """History names of the initial_state tensors of an RNN call ([] if none)."""
    args, kwargs = node_args(node, K)
    if K is keras:
        st = kwargs.get("initial_state", args[1] if len(args) > 1 else None)
        return [history_name(t, K) for t in tree_flatten(st)] if st is not None else []
    # tf_keras folds initial_state into the first argument: [inputs, *states]
    first = args[0]
    if isinstance(first, (list, tuple)):
        return [history_name(t, K) for t in tree_flatten(first[1:])]
    st = kwargs.get("initial_state")
    return [history_name(t, K) for t in tree_flatten(st)] if st is not None else []


def tree_flatten(x):
    if isinstance(x, (list, tuple)):
        return [y for e in x for y in tree_flatten(e)]
    return [x]


def reset_stateful(model):
    for l in leaf_layers(model):
        if getattr(l, "stateful", False):
            (getattr(l, "reset_states", None) or l.reset_state)()


def g_predict(model, xs):
    reset_stateful(model)
    return as_list(model.predict(xs[0] if len(xs) == 1 else xs, verbose=0))


def graph_inputs(model, seed, T, opts):
    """Golden inputs from the model's Input shapes (None -> T; batch N unless fixed)."""
    rng = np.random.default_rng(seed + 10_000)
    xs = []
    for t in model.inputs:
        if opts.get("x_shape"):
            shape = tuple(opts["x_shape"])
        else:
            b = t.shape[0]
            shape = (N if b is None else int(b),
                     *(T if d is None else int(d) for d in t.shape[1:]))
        assert shape[0] == N or opts.get("x_shape"), shape
        if "int" in str(t.dtype):
            Ti = shape[1]
            x = rng.integers(1, 20, size=shape).astype(np.int32)
            x[0, :2] = 0           # leading padding
            x[1, Ti // 2] = 0      # a hole in the middle
            x[2, -3:] = 0          # trailing padding
        else:
            x = rng.standard_normal(shape).astype(np.float32)
        xs.append(x)
    return xs


def set_random_weights_graph(models, seed):
    """Random float32 weights into every model (same values), leaf layer by leaf layer
    in the first model's order, matched by name. As set_random_weights (scale 0.5,
    non-zero biases), plus: BatchNormalization moving_variance = |w| + 0.5 (positive),
    gamma of BatchNormalization/LayerNormalization = 1 + w."""
    rng = np.random.default_rng(seed)
    first, *others = models
    leaves = leaf_layers(first)
    by_name = []
    for m in others:
        d = {l.name: l for l in leaf_layers(m)}
        assert sorted(d) == sorted(l.name for l in leaves), (sorted(d), [l.name for l in leaves])
        by_name.append(d)
    for l in leaves:
        if not l.weights:
            continue
        ws = []
        for w in l.weights:
            a = rng.standard_normal(tuple(w.shape)) * 0.5
            base = base_name(w)
            if base == "moving_variance":
                a = np.abs(a) + 0.5
            elif base == "gamma":
                a = 1.0 + a
            ws.append(np.asarray(a, dtype=np.float32))
        l.set_weights(ws)
        for d in by_name:
            o = d[l.name]
            assert type(o).__name__ == type(l).__name__, (l.name, type(o), type(l))
            n1 = [(base_name(w), tuple(w.shape)) for w in l.weights]
            n2 = [(base_name(w), tuple(w.shape)) for w in o.weights]
            assert n1 == n2, (l.name, n1, n2)
            o.set_weights(ws)
    for d in by_name:  # (layer order may differ between the flavours, names do not)
        for l in leaves:
            for a, b in zip(l.get_weights(), d[l.name].get_weights()):
                assert a.dtype == np.float32 and np.array_equal(a, b), l.name


# ---- summaries ----------------------------------------------------------------------


def wide_summary(model):
    """model.summary() text at line_length=WIDE (rich also needs COLUMNS for that)."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDE + 10)
    try:
        chunks = []
        model.summary(line_length=WIDE, print_fn=lambda s, *a, **k: chunks.append(str(s)))
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(c.rstrip("\n") for c in chunks) + "\n"


def parse_summary(text, K):
    """``(header, rows, totals)`` of a summary table: rows are lists of cell texts (a
    wrapped cell's lines joined), totals ``{"Total params": 192, ...}``."""
    lines = text.splitlines()
    totals = {}
    for ln in lines:
        s = ln.strip()
        for key in ("Total params", "Trainable params", "Non-trainable params"):
            if s.startswith(key + ":"):
                totals[key] = int(s.split(":")[1].split("(")[0].strip().replace(",", ""))
    rows = []
    if K is keras:  # rich table
        header = None
        cur = None
        for ln in lines:
            if ln.startswith("┃"):
                header = [c.strip() for c in ln.split("┃")[1:-1]]
            elif ln.startswith("│"):
                cells = ln.split("│")[1:-1]
                cur = cur or [[] for _ in cells]
                for i, c in enumerate(cells):
                    if c.strip():
                        cur[i].append(c.strip())
            elif ln.startswith(("├", "└")) and cur is not None:
                rows.append([" ".join(p) for p in cur])
                cur = None
        return header, rows, totals
    # tf_keras: fixed-width columns between "=" rules, rows separated by blank lines
    eq = [i for i, ln in enumerate(lines) if ln.startswith("=") and set(ln) == {"="}]
    head = lines[eq[0] - 1]
    names = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
    names = [n for n in names if n in head]
    starts = [0] + [head.index(n) for n in names[1:]]
    ends = [*starts[1:], None]
    group = []
    for ln in [*lines[eq[0] + 1:eq[1]], ""]:
        if ln.strip():
            group.append(ln)
            continue
        if group:
            rows.append(["".join(g[s:e].rstrip() for g in group).strip()
                         for s, e in zip(starts, ends)])
            group = []
    return names, rows, totals


def fmt_shape(s):
    if s == "multiple":
        return s
    if s and isinstance(s[0], list):
        return "[" + ", ".join(fmt_shape(x) for x in s) + "]"
    return "(" + ", ".join(str(d) for d in s) + ")"


def g_out_shape(l, K):
    """The output shape(s) the summary prints: Keras 3 the last call's outputs, tf_keras
    ``output_shape`` ("multiple" when calls disagree)."""
    if K is keras:
        if not l._inbound_nodes:
            return None
        outs = l._inbound_nodes[-1].output_tensors
        if len(outs) == 1:
            return shape_list(outs[0].shape)
        return [shape_list(t.shape) for t in outs]
    try:
        shp = l.output_shape
    except AttributeError:
        return "multiple"
    if isinstance(shp, list) and len(shp) > 1:
        return [shape_list(s) for s in shp]
    return shape_list(shp)


def nows(s):
    return "".join(str(s).split())


def g_summary_block(model, K):
    """Rows exactly as ``model.summary()`` shows them (parsed from a wide summary and
    checked against the layer objects), counts, input/output names; nested models'
    own summaries under ``inner_layers``."""
    text = wide_summary(model)
    header, parsed, totals = parse_summary(text, K)
    with_conn = "Connected to" in header
    # Keras 3 Functional summaries list model.operations: the layers *and* any plain
    # operations in the graph (e.g. the not_equal / logical_or / any ops that compute
    # masks in masked Functional models); model.layers keeps only the layers.
    layers = model.operations if (K is keras and type(model).__name__ == "Functional") \
        else model.layers
    names = [r[0].rsplit(" (", 1)[0] for r in parsed]
    assert names == [l.name for l in layers], (names, [l.name for l in layers])
    rows = []
    for l, r in zip(layers, parsed):
        shp = g_out_shape(l, K)
        is_layer = hasattr(l, "count_params")
        row = {
            "name": l.name,
            "class_name": type(l).__name__,
            "output_shape": shp,
            "params": int(l.count_params()) if is_layer else 0,
            "connected_to": connections(model, l, K) if with_conn else None,
            "summary": dict(zip(("layer", "output_shape", "params", "connected_to"), r)),
        }
        if not is_layer:
            row["operation"] = True  # a keras.ops Operation, not a Layer (not in .layers)
        s = row["summary"]
        assert s["layer"] == f"{l.name} ({type(l).__name__})", s
        assert int(s["params"].replace(",", "")) == row["params"], (l.name, s)
        want = fmt_shape(shp)
        assert nows(s["output_shape"]) in (nows(want), nows(f"[{want}]")), (l.name, s, want)
        if with_conn:
            c = row["connected_to"]
            want = (", ".join(c) or "-") if K is keras else str(c)
            assert nows(s["connected_to"]) == nows(want), (l.name, s, want)
        rows.append(row)
    cnt = counts(model)
    assert totals == {"Total params": cnt["total_params"],
                      "Trainable params": cnt["trainable_params"],
                      "Non-trainable params": cnt["non_trainable_params"]}, (totals, cnt)
    block = {
        "model_class": type(model).__name__,
        "summary_columns": header,
        "in_summary": any(type(l).__name__ == "InputLayer" for l in layers),
        "input_names": input_names(model, K),
        "output_names": output_names(model, K),
        "layers": rows,
        **cnt,
    }
    inner = [l for l in layers if is_container(l)]
    if inner:
        block["inner_layers"] = {c.name: g_summary_block(c, K) for c in inner}
    return block


def output_names(model, K):
    """``model.output_names``; a Keras 3 Sequential has none: then the names of the
    layers producing the outputs."""
    if hasattr(model, "output_names"):
        return list(model.output_names)
    return [history_name(t, K).split("[")[0] for t in model.outputs]


def input_names(model, K):
    if K is keras:
        return [t._keras_history.operation.name for t in model.inputs]
    return list(model.input_names)


# ---- per-call recurrent goldens -----------------------------------------------------


def g_clone(layer, name, **over):
    """A fresh, unbuilt copy of a recurrent layer from its config; Bidirectional: the
    overrides go to the wrapped layer(s). Copies are never stateful."""
    cfg = json.loads(json.dumps(layer.get_config()))
    if type(layer).__name__ == "Bidirectional":
        for k in ("layer", "backward_layer"):
            if k in cfg:
                cfg[k]["config"].update(over)
                cfg[k]["config"]["stateful"] = False
    else:
        cfg.update(over)
        cfg["stateful"] = False
    cfg["name"] = name
    return type(layer).from_config(cfg)


def probe_layer(layer, args, kwargs, K, tag):
    """Symbolic probes of one call of a recurrent layer: ``[(key, tensor)]`` (keys
    relative: ``state``, ``state/forward``, ``final/h``, ...) and ``[(clone, source)]``
    whose weights must be copied after building."""
    items, to_set = [], []
    bidi = type(layer).__name__ == "Bidirectional"

    def call(clone):
        return clone(*args, **kwargs)

    if bidi and layer.merge_mode is not None:
        c = g_clone(layer, f"{tag}_allsteps", return_sequences=True, return_state=False)
        items.append(("state", call(c)))
        to_set.append((c, layer))
    for part, sub in rnn_parts(layer):
        pre = f"/{part}" if part else ""
        ptag = f"{tag}_{part}" if part else tag
        c = g_clone(sub, f"{ptag}_allsteps", return_sequences=True, return_state=False)
        items.append((f"state{pre}", call(c)))
        to_set.append((c, sub))
        if is_lstm_like(sub) and not bidi:
            f = g_clone(sub, f"{ptag}_final", return_sequences=False, return_state=True)
            fo = call(f)
            items.append((f"final{pre}/h", fo[1]))
            items.append((f"final{pre}/c", fo[2]))
            to_set.append((f, sub))
    if K is keras:  # the mask this call uses: Keras 3 records it in the node's kwargs
        m = kwargs.get("mask")
        if m is not None:
            items.append(("mask", keras.ops.cast(m, "int32")))
    return items, to_set


def insert_tag(rel, L, k):
    """``state`` -> ``state/L``, ``state/forward`` -> ``state/L#1/forward``, ..."""
    head, _, rest = rel.partition("/")
    name = L if k == 0 else f"{L}#{k}"
    return f"{head}/{name}" + (f"/{rest}" if rest else "")


def graph_goldens(model, K, xs):
    """golden.npz ``state/``, ``final/``, ``mask/`` entries for every call of every
    recurrent layer, and consistency checks against the layers' own outputs.

    Each call's copies are applied to the very tensors (and initial_state / mask) the
    original call received inside ``model``'s graph, so one probe Model on
    ``model.inputs`` evaluates them all. Layers inside a nested model: a probe Model on
    the nested model's inputs, applied to each call of the nested model."""
    keys, tensors, to_set, calls = [], [], [], []

    def add_call(layer, k, items, real, parent):
        calls.append((layer, k, parent, [insert_tag(r, layer.name, k) for r, _ in items],
                      len(tensors) + len(items), len(real)))
        for r, t in items:
            keys.append(insert_tag(r, layer.name, k))
            tensors.append(t)
        for j, t in enumerate(real):
            keys.append(f"real/{layer.name}#{k}/{j}")
            tensors.append(t)

    for l in model.layers:
        if is_container(l):
            inner_items, inner_real, inner_meta = [], [], []
            for sub in l.layers:
                assert not is_container(sub), "only one level of nesting supported"
                if not g_is_recurrent(sub):
                    continue
                (node,) = model_nodes(l, sub)
                a, kw = node_args(node, K)
                items, ts = probe_layer(sub, a, kw, K, f"{l.name}_{sub.name}")
                to_set.extend(ts)
                real = node_outputs(node, K)
                inner_meta.append((sub, items, len(real)))
                inner_items += [t for _, t in items]
                inner_real += real
            if not inner_meta:
                continue
            probe = K.Model(l.inputs, inner_items + inner_real, name=f"{l.name}_probe")
            for k, node in enumerate(model_nodes(model, l)):
                a, kw = node_args(node, K)
                outs = probe(a[0])
                outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
                i_it, i_re = 0, len(inner_items)
                for sub, items, nreal in inner_meta:
                    its = [(r, outs[i_it + j]) for j, (r, _) in enumerate(items)]
                    i_it += len(items)
                    add_call(sub, k, its, outs[i_re:i_re + nreal], l.name)
                    i_re += nreal
            continue
        if not g_is_recurrent(l):
            continue
        for k, node in enumerate(model_nodes(model, l)):
            a, kw = node_args(node, K)
            items, ts = probe_layer(l, a, kw, K, f"{l.name}_{k}")
            to_set.extend(ts)
            add_call(l, k, items, node_outputs(node, K), None)
    if not tensors:
        return {}, []
    for clone, src in to_set:
        clone.set_weights(src.get_weights())
    probe = K.Model(model.inputs, tensors, name="goldens_probe")
    got = dict(zip(keys, g_predict(probe, xs)))
    out = {}
    for layer, k, _parent, lkeys, _, nreal in calls:
        real = [got.pop(f"real/{layer.name}#{k}/{j}") for j in range(nreal)]
        g = {kk: got[kk] for kk in lkeys}
        check_call(layer, k, g, real)
        for kk, v in g.items():
            assert kk not in out, kk
            out[kk] = v.astype(bool) if kk.startswith("mask/") else v.astype(np.float32)
    return out, calls


def check_call(layer, k, g, real):
    """The probes agree with the layer's own outputs of that call."""
    L = layer.name if k == 0 else f"{layer.name}#{k}"
    mask = g.get(f"mask/{L}")
    tm = bool(getattr(core_rnn(layer), "time_major", False))

    def bm(a):  # batch-major view
        return np.swapaxes(a, 0, 1) if tm else a

    if type(layer).__name__ == "Bidirectional":
        f, b = g[f"state/{L}/forward"], g[f"state/{L}/backward"]
        valid = np.ones(f.shape[:2], bool) if mask is None else mask.astype(bool)
        b_in = b[:, ::-1]
        mb = None if mask is None else valid[:, ::-1]
        if layer.merge_mode is not None:
            merged = g[f"state/{L}"]
            assert np.allclose(merged[valid], merge(layer.merge_mode, f, b_in)[valid],
                               rtol=RTOL, atol=ATOL), L
            if layer.return_sequences:
                assert allclose(real[0], merged), L
            else:
                want = merge(layer.merge_mode, last_valid(f, None if mask is None else valid),
                             last_valid(b, mb))
                assert allclose(real[0], want), L
        return
    seq = bm(g[f"state/{L}"])
    m = None if mask is None else mask.astype(bool)
    if m is not None and core_rnn(layer).go_backwards:
        m = m[:, ::-1]
    if seq.ndim == 3:
        h_last = last_valid(seq, m)
    else:  # ConvLSTM: (N, T, ..., F), no masks in our models
        assert m is None
        h_last = seq[:, -1]
    if layer.return_sequences:
        assert allclose(bm(real[0]), seq), L
    elif not getattr(layer, "zero_output_for_mask", False):
        assert allclose(real[0], h_last), (L, maxdiff(real[0], h_last))
    if f"final/{L}/h" in g:
        assert allclose(g[f"final/{L}/h"], h_last), L
    if layer.return_state:
        assert allclose(real[1], h_last), L
        if is_lstm_like(layer):
            assert allclose(real[2], g[f"final/{L}/c"]), L


# ---- layers.npz -----------------------------------------------------------------------


def weight_keys(l):
    """``[(key, variable)]`` of a leaf layer for layers.npz (see the README)."""
    out = []
    parts = rnn_parts(l)
    for part, sub in parts:
        ws = sub.weights if part else l.weights
        pre = f"{l.name}/{part}" if part else l.name
        owner = {}
        core = sub if part else l
        cls = type(core).__name__
        if cls == "MultiHeadAttention":
            for d in (core._query_dense, core._key_dense, core._value_dense,
                      core._output_dense):
                for w in d.weights:
                    owner[id(w)] = d.name
        cell = getattr(core, "cell", None)
        if cell is not None and type(cell).__name__ == "StackedRNNCells":
            for i, c in enumerate(cell.cells):
                for w in c.weights:
                    owner[id(w)] = f"cells/{i}"
        for w in ws:
            base = base_name(w)
            assert base in GRAPH_WEIGHT_KEYS, (l.name, w.name)
            mid = owner.get(id(w))
            if owner:
                assert mid is not None, (l.name, w.name)
            out.append((f"{pre}/{mid}/{base}" if mid else f"{pre}/{base}", w))
    if parts[0][0] is not None:
        assert [id(w) for w in l.weights] == [id(w) for _, w in out]
    return out


# ---- generation -----------------------------------------------------------------------


def save_or_skip(p, fname, save):
    """Save one file; if Keras cannot write it, SKIPPED_<fname>.txt with the reason."""
    try:
        save()
        return True
    except Exception as e:  # noqa: BLE001 - any failure means "this format is not possible"
        if os.path.exists(p(fname)):
            os.remove(p(fname))
        msg = f"{type(e).__name__}: {e}".strip()
        with open(p(f"SKIPPED_{fname}.txt"), "w") as f:
            f.write(f"Keras could not write {fname}: {msg}\n")
        log(f"  skipped {fname}: {msg[:200]}")
        return False


def golden_x(xs):
    if len(xs) == 1:
        return {"x": xs[0]}
    return {f"x/{i}": a for i, a in enumerate(xs)}


def generate_graph(name):
    builder, seed, T, _kind, _, _, opts = spec(name)
    k3_skip, tfk_skip = opts.get("keras3"), opts.get("tfkeras")
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    p = lambda f: os.path.join(d, f)  # noqa: E731

    m3 = m2 = em = None
    if opts.get("tfk_emulate"):
        # Keras 3 with tf_keras's semantics, in its own session so that its layer names
        # are those of m3 (weights are copied by layer name below)
        keras.backend.clear_session()
        em = opts["tfk_emulate"](keras)
    if not k3_skip:
        keras.backend.clear_session()
        m3 = builder(keras)
    if not tfk_skip:
        tf_keras.backend.clear_session()
        m2 = builder(tf_keras)
    if m3 is not None and m2 is not None:
        top3 = [l.name if not is_container(l) else "<model>" for l in m3.layers
                if type(l).__name__ != "InputLayer"]
        top2 = [l.name if not is_container(l) else "<model>" for l in m2.layers
                if type(l).__name__ != "InputLayer"]
        assert sorted(top3) == sorted(top2), (top3, top2)
    primary, PK = (m3, keras) if m3 is not None else (m2, tf_keras)
    set_random_weights_graph([m for m in (m3, m2) if m is not None], seed)
    xs = graph_inputs(primary, seed, T, opts)

    # summaries before anything else touches the graphs
    block3 = g_summary_block(m3, keras) if m3 is not None else None
    block2 = g_summary_block(m2, tf_keras) if m2 is not None else None
    s3 = summary_text(m3) if m3 is not None else None
    s2 = summary_text(m2) if m2 is not None else None

    y = g_predict(m3, xs) if m3 is not None else None
    y2 = g_predict(m2, xs) if m2 is not None else None
    tfk_note = opts.get("tfkeras_note")
    if y is not None and y2 is not None:
        if opts.get("tfk_emulate"):
            # y != y_tfkeras by design; prove the difference is exactly the noted one
            assert not allclose(y, y2), (name, "expected y != y_tfkeras")
            src = {l.name: l for l in leaf_layers(m3)}
            assert sorted(src) == sorted(l.name for l in leaf_layers(em))
            for l in leaf_layers(em):
                l.set_weights(src[l.name].get_weights())
            ye = g_predict(em, xs)
            assert allclose(ye, y2), (name, maxdiff(ye, y2))
            tfk_note += f" (max diff {maxdiff(ye, y2):.1e})"
        else:
            assert allclose(y, y2), (name, maxdiff(y, y2))
    if y is None:
        y = y2

    # ---- files
    saved = {}
    if m3 is not None:
        saved["model.keras"] = save_or_skip(p, "model.keras", lambda: m3.save(p("model.keras")))
        saved["model.h5"] = save_or_skip(p, "model.h5", lambda: m3.save(p("model.h5")))
        saved["model.weights.h5"] = save_or_skip(
            p, "model.weights.h5", lambda: m3.save_weights(p("model.weights.h5")))
    else:
        with open(p("SKIPPED_keras3.txt"), "w") as f:
            f.write(f"No Keras 3 files (model.keras, model.h5, model.weights.h5) for "
                    f"{name}: {k3_skip}\n")
    if m2 is not None:
        saved["tfkeras.keras"] = save_or_skip(
            p, "tfkeras.keras", lambda: m2.save(p("tfkeras.keras")))
        saved["tfkeras.h5"] = save_or_skip(
            p, "tfkeras.h5", lambda: m2.save(p("tfkeras.h5"), save_format="h5"))
        saved["tfkeras_weights.h5"] = save_or_skip(
            p, "tfkeras_weights.h5", lambda: m2.save_weights(p("tfkeras_weights.h5")))
    else:
        with open(p("SKIPPED_tfkeras.txt"), "w") as f:
            f.write(f"No tf_keras files (tfkeras.keras, tfkeras.h5, tfkeras_weights.h5) for "
                    f"{name}: {tfk_skip}\n")

    # ---- layout sanity checks
    if saved.get("tfkeras_weights.h5"):
        with h5py.File(p("tfkeras_weights.h5"), "r") as f:
            assert "layer_names" in f.attrs and "model_config" not in f.attrs, dict(f.attrs)
    for h5 in ("model.h5", "tfkeras.h5"):
        if saved.get(h5):
            with h5py.File(p(h5), "r") as f:
                assert "model_config" in f.attrs and "model_weights" in f
    if saved.get("model.weights.h5"):
        with h5py.File(p("model.weights.h5"), "r") as f:
            assert "layers" in f, list(f)
    for zf in ("model.keras", "tfkeras.keras"):
        if saved.get(zf):
            with zipfile.ZipFile(p(zf)) as z:
                members = set(z.namelist())
            assert {"config.json", "metadata.json", "model.weights.h5"} <= members, members

    # ---- every saved file reloads (in its own Keras) and predicts the golden y
    def check(tag, model, want):
        got = g_predict(model, xs)
        assert allclose(got, want), (name, tag, maxdiff(got, want))

    reload_notes = {}

    def check_full(K, f, want):
        """load_model(f) predicts ``want``; if Keras cannot load its own file, keep the
        file, check its weights (builder + load_weights) and write NOTE_<f>.txt."""
        try:
            loaded = K.models.load_model(p(f))
        except Exception as e:  # noqa: BLE001
            msg = f"{type(e).__name__}: {e}".strip().splitlines()[-1]
            fresh = builder(K)
            fresh.load_weights(p(f))
            check(f"{flav(K)} {f} (load_weights)", fresh, want)
            reload_notes[f] = (
                f"{K.__name__} {K.__version__} writes {f} but cannot load_model() it: "
                f"{msg[:400]}. The file itself is fine: its config is complete and "
                f"load_weights() of it into the same architecture predicts the golden y.")
            with open(p(f"NOTE_{f}.txt"), "w") as fh:
                fh.write(reload_notes[f] + "\n")
            log(f"  note {f}: {reload_notes[f][:200]}")
            return
        check(f"{flav(K)} {f}", loaded, want)

    if m3 is not None:
        for f in ("model.keras", "model.h5"):
            if saved[f]:
                check_full(keras, f, y)
        if saved["model.weights.h5"]:
            fresh3 = builder(keras)
            fresh3.load_weights(p("model.weights.h5"))
            check("keras3 model.weights.h5", fresh3, y)
    if m2 is not None:
        for f in ("tfkeras.keras", "tfkeras.h5"):
            if saved[f]:
                check_full(tf_keras, f, y2)
        if saved["tfkeras_weights.h5"]:
            fresh2 = builder(tf_keras)
            fresh2.load_weights(p("tfkeras_weights.h5"))
            check("tf_keras tfkeras_weights.h5", fresh2, y2)

    # ---- config.json and layers.npz
    cfg_json = primary.to_json()
    with open(p("config.json"), "w") as f:
        json.dump(json.loads(cfg_json), f, indent=2)
        f.write("\n")
    arrays = {}
    for l in leaf_layers(primary):
        for k, w in weight_keys(l):
            assert k not in arrays, k
            arrays[k] = np.asarray(w.numpy(), dtype=np.float32)
    assert sum(int(a.size) for a in arrays.values()) == primary.count_params()
    arrays["__config__"] = np.array(cfg_json)
    assert arrays["__config__"].dtype.kind == "U"
    np.savez(p("layers.npz"), **arrays)
    with np.load(p("layers.npz"), allow_pickle=False) as z:
        assert list(z.keys()) == list(arrays.keys())

    # ---- golden.npz
    states, calls = graph_goldens(primary, PK, xs)
    golden = {**golden_x(xs), **golden_y("y", y), **states}
    if y2 is not None:
        golden.update(golden_y("y_tfkeras", y2))
    np.savez(p("golden.npz"), **golden)
    with np.load(p("golden.npz"), allow_pickle=False) as z:
        assert sorted(z.keys()) == sorted(golden.keys())

    # ---- expected.json
    rec = [(l, par) for l, par in leaf_entries(primary) if g_is_recurrent(l)]
    ncalls = {}
    for layer, *_ in calls:
        ncalls[layer.name] = ncalls.get(layer.name, 0) + 1
    first = rec[0][0]
    holder = primary if rec[0][1] is None else next(
        c for c in containers(primary) if c.name == rec[0][1])
    first_in = tree_flatten(node_args(model_nodes(holder, first)[0], PK)[0][0])[0]
    outs = primary.outputs
    in_names = input_names(primary, PK)
    in_names2 = input_names(m2, tf_keras) if (m2 is not None and m3 is not None) else None
    expected = {
        "keras_version": keras.__version__,
        "tf_keras_version": tf_keras.__version__,
        "keras_backend": keras.backend.backend(),
        "graph": True,
        "input_names": in_names,
        "output_names": output_names(primary, PK),
        "inputs": [
            {"name": n, **({"tfkeras_name": in_names2[i]} if in_names2 else {}),
             "shape": shape_list(t.shape), "dtype": str(np.dtype(xs[i].dtype))}
            for i, (n, t) in enumerate(zip(in_names, primary.inputs))
        ],
        "dims": {
            "T": None if opts.get("x_shape") else shape_list(primary.inputs[0].shape)[1],
            "D": int(first_in.shape[-1]),
            "M": rnn_units(first),
            "K": int(outs[0].shape[-1]),
            "N": N,
            "T_golden": int(xs[0].shape[0 if opts.get("x_shape") else 1]),
            "recurrent_units": {l.name: rnn_units(l) for l, _ in rec},
            "input_shape": shape_list(primary.inputs[0].shape)[1:],
            "input_dtype": str(np.dtype(xs[0].dtype)),
            "num_inputs": len(xs),
            "input_shapes": [shape_list(t.shape)[1:] for t in primary.inputs],
            "output_shape": shape_list(outs[0].shape),
            "num_outputs": len(outs),
            "output_shapes": [shape_list(o.shape) for o in outs],
        },
        "recurrent_layers": [],
        "keras3": block3,
        "tfkeras": block2,
    }
    for l, par in rec:
        core = core_rnn(l)
        cell_cls, cells = cell_info(l)
        holder = primary if par is None else next(c for c in containers(primary)
                                                  if c.name == par)
        expected["recurrent_layers"].append({
            "name": l.name,
            "class_name": type(l).__name__,
            "wrapped_class": type(core).__name__ if type(l).__name__ == "Bidirectional"
            else None,
            "cell_class": cell_cls,
            "cells": cells,
            "merge_mode": getattr(l, "merge_mode", None),
            "units": rnn_units(l),
            "return_sequences": bool(l.return_sequences),
            "return_state": bool(l.return_state),
            "go_backwards": bool(core.go_backwards),
            "stateful": bool(getattr(core, "stateful", False)),
            "time_major": bool(getattr(core, "time_major", False)),
            "nested_in": par,
            "calls": ncalls.get(l.name, 0),
            "initial_state": [initial_state_of(n, PK) for n in model_nodes(holder, l)],
        })
    if y2 is not None and m3 is not None:
        expected["max_abs_y_minus_y_tfkeras"] = maxdiff(y, y2)
    if k3_skip:
        expected["keras3_skipped"] = k3_skip
    if tfk_skip:
        expected["tfkeras_skipped"] = tfk_skip
    if tfk_note:
        expected["tfkeras_note"] = tfk_note
    if reload_notes:
        expected["reload_notes"] = reload_notes
    skipped = sorted(f for f, ok in saved.items() if not ok)
    if skipped:
        expected["skipped_files"] = skipped
    with open(p("expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    if s3 is not None:
        with open(p("summary_keras3.txt"), "w", encoding="utf-8") as f:
            f.write(s3)
    if s2 is not None:
        with open(p("summary_tfkeras.txt"), "w", encoding="utf-8") as f:
            f.write(s2)
    diff = f"{maxdiff(y, y2):.2e}" if (y2 is not None and m3 is not None) else "n/a"
    log(f"[{name}] ok: params={primary.count_params()} max|y-y_tfkeras|={diff} "
        f"files={sorted(os.listdir(d))}")


def golden_list(golden, prefix):
    """``y`` / ``y/0``, ``y/1``, ... of golden.npz as a list (None if absent)."""
    if prefix in golden:
        return [golden[prefix]]
    ys = []
    while f"{prefix}/{len(ys)}" in golden:
        ys.append(golden[f"{prefix}/{len(ys)}"])
    return ys or None


def check_dir(name):
    """``--check``: reload every model file in ``<out>/<name>/`` with the Keras that
    wrote it and compare its predict() on golden x with golden y (Keras 3 files) /
    y_tfkeras (tf_keras files; y if there is none). A file Keras cannot load_model()
    (see its NOTE_<file>.txt) is checked through builder + load_weights()."""
    builder, *_ = spec(name)
    d = os.path.join(OUT, name)
    p = lambda f: os.path.join(d, f)  # noqa: E731
    with np.load(p("golden.npz"), allow_pickle=False) as z:
        golden = dict(z)
    xs = golden_list(golden, "x")
    y3 = golden_list(golden, "y")
    y2 = golden_list(golden, "y_tfkeras") or y3
    done = []
    for K, files, want in ((keras, ("model.keras", "model.h5", "model.weights.h5"), y3),
                           (tf_keras, ("tfkeras.keras", "tfkeras.h5", "tfkeras_weights.h5"),
                            y2)):
        for f in files:
            if not os.path.exists(p(f)):
                continue
            K.backend.clear_session()
            if f.endswith("weights.h5") or os.path.exists(p(f"NOTE_{f}.txt")):
                model = builder(K)
                model.load_weights(p(f))
            else:
                model = K.models.load_model(p(f))
            got = g_predict(model, xs)
            assert allclose(got, want), (name, f, maxdiff(got, want))
            done.append(f)
    assert done, name
    log(f"[{name}] check ok: {', '.join(done)} reproduce golden.npz")


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
    /path/to/venv/bin/python scripts/make_sample_models.py --check [model ...]

(venv: `pip install tensorflow-cpu==2.21.0 tf_keras==2.21.0`; `lstm_jax` also needs a
second, TensorFlow-free venv with `keras==3.15.1 jax jaxlib h5py numpy`, found via
`--jax-python`, `$RNNINSPECT_JAX_PYTHON` or a `jaxenv` venv beside the first one).
`--check` writes nothing: it reloads every file of each model with the Keras that wrote it
and compares its predictions with `golden.npz`.
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
| `SKIPPED_keras3.txt` | instead of the three Keras 3 files (and `summary_keras3.txt`) when a model cannot be built in Keras 3, with the reason (`time_major`); `config.json` and `layers.npz`'s `__config__` are then tf_keras's `to_json()` |
| `SKIPPED_<file>.txt` | instead of one file Keras failed to write, with Keras's error (none at present: every graph model saved in all six formats) |
| `NOTE_<file>.txt` | the file is there and correct, but Keras itself cannot `load_model()` it (reason inside; its weights load with `load_weights()` and predict the golden `y`): `model.h5` of `attention_seq2seq`, `masked_attention`, `masked_merge`, `masked_graph` |
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

## Graph models (`seq2seq_states` ... `time_major`)

Generated by `generate_graph()`: any Functional/Sequential graph (several inputs and
outputs, shared layers, a nested model called twice, `initial_state` edges, `return_state`
tensors as model outputs, attention, convolutions, normalisation, RNN cells, ConvLSTM).
Weights as above (numpy seed, scale 0.5), except BatchNormalization `moving_variance`
= |w| + 0.5 (positive) and BatchNormalization/LayerNormalization `gamma` = 1 + w; PReLU
`alpha`, Attention `scale` and all biases are random too.

### golden.npz

- `x` for one model input, `x/0`, `x/1`, ... (in `model.inputs` order = `input_names`)
  for several; float32 standard normal, or int32 ids 1..19 with padding zeros (leading in
  sample 0, one in the middle of sample 1, trailing in sample 2) for integer inputs. N=4
  (the fixed batch of `stateful`); `time_major`: x is (T=10, 4, 3), Keras's batch axis
  being time.
- `y` / `y/0`, `y/1`, ... = Keras 3 `predict` (one key per model output, in order);
  `y_tfkeras` / `y_tfkeras/i` = tf_keras. They agree to rtol 1e-5, atol 1e-6 except where
  `expected.json` has a `tfkeras_note` (`masked_attention`, `masked_merge`, `convlstm2d`:
  different Keras semantics, proven by the generator with a Keras 3 model that emulates
  tf_keras's). `time_major` has no Keras 3 model: there `y` = `y_tfkeras` = tf_keras.
- Per *call* of every recurrent layer (SimpleRNN, LSTM, GRU, RNN(cell),
  RNN(StackedRNNCells), ConvLSTM1D/2D, Bidirectional), from Keras 3 (tf_keras for
  `time_major`), computed by copies of the layer applied to the very tensors the call
  received in the model graph (same `initial_state`, same mask):
  - `state/L`: the output of a copy with `return_sequences=True`, `return_state=False`
    (never stateful): (N,T,units); ConvLSTM (N,T,W,F) / (N,T,H,W,F);
    RNN(StackedRNNCells): the last cell's output; `time_major`: (T,N,units), time first,
    as Keras returns it. Bidirectional: `state/L`, `state/L/forward`, `state/L/backward`
    as for the chain models (backward in processing order).
  - `final/L/h`, `final/L/c`: copy with `return_state=True`, for (h, c) layers: LSTM,
    RNN(LSTMCell), ConvLSTM1D/2D (h, c of shape (N,W,F) / (N,H,W,F)). Not stored for
    GRU/SimpleRNN (h = last valid output), StackedRNNCells, Bidirectional.
  - `mask/L` (N,T) bool: the mask Keras 3 passed to that call (absent = no mask). Note
    `masked_attention`'s decoder `lstm_1` has none and `masked_merge`'s `gru_1` an
    all-True one (see below).
  - Shared layers: the first call is `L`, the k-th further call `L#k` (`state/lstm`,
    `state/lstm#1`, `final/lstm#1/h` in `shared_layers`). Layers inside a nested model
    use their own name and the call index of the nested model (`shared_nested`: the
    encoder's `lstm` gives `state/lstm` for `encoder(left)`, `state/lstm#1` for
    `encoder(right)`). Only one nesting level is supported.
  - No golden intermediates for non-recurrent layers (attention, MHA, convolutions, ...).

### expected.json (graph models)

All fields of the chain models (`dims` etc.; `dims.D` = last input dim of the first
recurrent layer, `dims.M` its units/filters, `T` = `null` for `time_major`) plus:
`graph: true`; `input_names` (Keras 3 has no `model.input_names`: the InputLayer names of
`model.inputs`), `output_names` (`model.output_names`; a Keras 3 Sequential has none, then
the output layers' names); `inputs`: `[{{name, tfkeras_name, shape (with batch), dtype}}]`;
`dims.num_inputs`, `dims.input_shapes`; per flavour block `keras3`/`tfkeras`:
`summary_columns` (with `Connected to` for non-sequential-like graphs), `input_names`,
`output_names`, and per row `connected_to` (list of `layer[node][tensor]`, or null without
that column), `summary` = the row's cells exactly as `model.summary()` prints them (from a
`line_length=400` summary, so nothing is wrapped or cut: `layer`, `output_shape`, `params`
("1,234" in Keras 3), `connected_to` (Keras 3 `"a[0][0], b[0][1]"` or `"-"`, tf_keras
`"['a[0][0]', 'b[0][1]']"`)); rows for plain operations carry `"operation": true`
(below). `output_shape` of a shared layer: Keras 3 prints its *last* call's, tf_keras its
common one (or `"multiple"`). `recurrent_layers` rows add `cell_class` / `cells`
(RNN), `stateful`, `time_major`, `calls` (calls in the model) and `initial_state` (per
call, the `layer[node][tensor]` of its initial-state tensors). Also `reload_notes`,
`keras3_skipped`, `skipped_files` where they apply.

### layers.npz (graph models)

Keys `<layer>/<weight>` as before, weight also one of `gamma`, `beta`, `moving_mean`,
`moving_variance`, `alpha`, `scale`; TimeDistributed(Conv2D) under the TimeDistributed
name; RNN(cell) as the plain layers (`rnn/kernel`); RNN(StackedRNNCells)
`<layer>/cells/<i>/<weight>`; MultiHeadAttention `<layer>/<query|key|value|attention_output>/<kernel|bias>`;
Bidirectional(RNN(cell)) `B/forward/<weight>`, `B/backward/<weight>`; a nested model's
layers under their own names, once however often the model is called.

### Keras behaviour these models pin down

- Masks in Keras 3 Functional configs: the mask computation is *in the graph*. A masked
  model's `config.json` has extra entries with `"module": "keras.src.ops.numpy"`
  (`NotEqual` for Embedding(mask_zero), and for Concatenate `ExpandDims`, `ZerosLike`,
  `LogicalOr`, an op `Concatenate` (same class_name as the layer: go by `module`),
  `Any`), and each masked RNN call's node has `kwargs: {{"training": false, "mask":
  <tensor from not_equal / any>}}`. Keras 3's summary lists these operations as rows
  (`model.layers` does not); their names share the layer-name counters (so
  `masked_merge` names its last Concatenate `heads`: a default name would be
  `concatenate_2` in Keras 3, `concatenate_1` in tf_keras). Keras 3 cannot
  `load_model()` its own legacy `model.h5` of such a model (`Unknown layer: 'NotEqual'`).
  tf_keras configs have none of this: masks flow implicitly.
- Keras 3 calls an RNN that gets `initial_state` **without** its input's mask (its
  `Layer.__call__` fills in `mask` only for calls with a single tensor argument), yet
  the output (return_sequences) still carries the input's mask downstream; tf_keras
  applies the mask (`masked_attention`, y != y_tfkeras).
- Merge masks, one input masked and one not: Keras 3 Add/Subtract/Multiply/Average/
  Maximum/Minimum give *no* mask if any input has none (else the OR of the masks);
  tf_keras the AND of the non-None masks. Concatenate: Keras 3
  `any(concatenate(masks), -1)` with an unmasked input counted all-True (OR), tf_keras
  `all(...)` (AND). Equal masks (`masked_graph`) agree. Dot returns no mask. In
  `masked_graph` branch `b` is go_backwards: its processing-order sequence is
  concatenated step by step with `a`'s input-order one, under the input-order mask.
- Attention with masks: value mask -> scores at padded keys get -1e9 before softmax;
  query mask -> output rows zeroed (Keras 3 `where(q_mask, out, 0)`); the output's mask
  is the query mask. Keras 3 cannot `load_model()` its legacy `model.h5` of an
  `Attention` layer (its legacy deserializer turns `score_mode: "dot"` into the function
  `keras.ops.dot`); `.keras` and tf_keras files load.
- ConvLSTM1D/2D default `recurrent_activation`: `sigmoid` in Keras 3, `hard_sigmoid` in
  tf_keras (each config states its own; `convlstm2d` keeps the defaults).
- `initial_state` in configs: Keras 3 node `kwargs: {{"initial_state": [<tensor>,
  ...]}}` (`keras_history` `["lstm", 0, 1]`, `["lstm", 0, 2]` = h, c); tf_keras puts the
  states into the same node as extra inbound entries: `[["dec_in", 0, 0, {{}}],
  ["lstm", 0, 1, {{}}], ["lstm", 0, 2, {{}}]]` (first = the sequence).
- Shared layers: one config entry with one inbound node per call (`lstm` in
  `shared_layers`: two nodes; consumers reference `["lstm", 1, 0]`). Nested model called
  twice, tf_keras: the config references nodes **1** and **2** (`["encoder", 1, 0, {{}}]`,
  `["encoder", 2, 0, {{}}]`), but its summary's Connected to column prints `encoder[0][0]`,
  `encoder[1][0]`; Keras 3 uses 0 and 1 in both.
- Output names: Keras 3 `model.output_names` repeats a layer name for several outputs of
  one layer (`multi_output`: `['dense', 'lstm', 'lstm']`), tf_keras makes them unique
  (`['dense', 'lstm', 'lstm_1']`). `gru_state_outputs` returns the GRU's output and its
  state as two outputs (equal values).
- `stateful`: `batch_shape` `[4, 10, 3]` (tf_keras `batch_input_shape`), `stateful: true`;
  no file stores the RNN states (no variables for them; param counts unchanged); goldens
  are from reset (zero) states.
- `time_major` (tf_keras only): input (T, batch, D); `return_sequences` output is time
  major; the summary shows the non-sequence GRU's output as `(4, 3)` (batch 4 fixed by the
  Input's second axis).
- AveragePooling1D(padding="same") averages only the valid elements of a partial window;
  Conv1D `causal` pads (kernel_size - 1) * dilation_rate zeros on the left;
  ReLU(max_value, negative_slope, threshold): `max_value` for x >= max_value, x for
  threshold <= x < max_value, `negative_slope * (x - threshold)` below.

### Weight layouts of the new layer types

`.weights.h5` (Keras 3 `model.weights.h5` and the zips' `model.weights.h5`; h5py lists
groups alphabetically, the vars indices give the order); Keras 3 `vars` `name` attrs in
brackets:

- MultiHeadAttention, Keras 3: `layers/multi_head_attention/query_dense/vars/{{0,1}}`
  [query] (kernel (D_q, heads, key_dim), bias (heads, key_dim)), `.../key_dense/vars/{{0,1}}`
  [key], `.../value_dense/vars/{{0,1}}` [value], `.../output_dense/vars/{{0,1}}`
  [attention_output] (kernel (heads, value_dim, D_q), bias (D_q,)); tf_keras `.keras`:
  `_query_dense`, `_key_dense`, `_value_dense`, `_output_dense` (leading underscore).
- RNN(LSTMCell) `layers/rnn/cell/vars/{{0,1,2}}` [lstm_cell]; RNN(StackedRNNCells([GRUCell,
  SimpleRNNCell])) `layers/rnn_1/cell/cells/gru_cell/vars/{{0,1,2}}`,
  `layers/rnn_1/cell/cells/simple_rnn_cell/vars/{{0,1,2}}` (both flavours).
  Bidirectional(RNN(GRUCell)): `layers/bidirectional/forward_layer/cell/vars/{{0,1,2}}`,
  `.../backward_layer/cell/vars/{{0,1,2}}` [gru_cell]; in `bidi_cells` the top-level
  `rnn_1` is `layers/rnn` (class-based names).
- ConvLSTM1D/2D `layers/conv_lstm1d/cell/vars/{{0,1,2}}` [conv_lstm_cell] (kernel
  (k, C, 4F) / (kh, kw, C, 4F), recurrent_kernel (k, F, 4F) / (kh, kw, F, 4F), bias (4F,);
  gates i, f, c, o), `layers/conv_lstm1d_1/...`.
- BatchNormalization `layers/batch_normalization/vars/{{0,1,2,3}}` = gamma, beta,
  moving_mean, moving_variance; LayerNormalization `layers/layer_normalization/vars/{{0,1}}`
  = gamma, beta; PReLU `layers/p_re_lu/vars/0` = alpha (shared_axes=[1]: (1, C));
  Attention(use_scale) `layers/attention/vars/0` = scale, shape `()`; AdditiveAttention
  `layers/additive_attention/vars/0` = scale (dim,); TimeDistributed(Conv2D)
  `layers/time_distributed/layer/vars/{{0,1}}` [conv2d]; nested Functional (`shared_nested`)
  `layers/functional/layers/lstm/cell/vars/...` (class-based, though it is called
  `encoder`). Masked models: weightless groups for layers only, none for the mask ops.

Legacy HDF5 `weight_names` (group = layer name; Keras 3 `model.h5` of a Sequential prefixes
`sequential/`, tf_keras names end in `:0`):

- MultiHeadAttention: `multi_head_attention/query/kernel`, `.../query/bias`,
  `.../key/kernel`, `.../key/bias`, `.../value/kernel`, `.../value/bias`,
  `.../attention_output/kernel`, `.../attention_output/bias` (both flavours).
- RNN(LSTMCell): Keras 3 `sequential/rnn/lstm_cell/kernel`, `recurrent_kernel`, `bias`;
  tf_keras `rnn/lstm_cell/kernel:0`. StackedRNNCells:
  `sequential/rnn_1/stacked_rnn_cells/gru_cell/kernel`, ..., then
  `.../stacked_rnn_cells/simple_rnn_cell/...`; tf_keras `rnn_1/stacked_rnn_cells/gru_cell/kernel:0`.
  Bidirectional(RNN(GRUCell)): `sequential/bidirectional/forward_rnn/gru_cell/kernel`, ...,
  `.../backward_rnn/gru_cell/bias`; tf_keras `bidirectional/forward_rnn/gru_cell/kernel:0`.
- ConvLSTM: Keras 3 `sequential/conv_lstm1d/conv_lstm_cell/kernel`, `recurrent_kernel`,
  `bias`; tf_keras **without** the cell: `conv_lstm1d/kernel:0`, `conv_lstm1d/recurrent_kernel:0`,
  `conv_lstm1d/bias:0`.
- BatchNormalization `batch_normalization/gamma`, `beta`, `moving_mean`,
  `moving_variance` (trainable first, then the moving statistics; both flavours);
  LayerNormalization `gamma`, `beta`; PReLU `p_re_lu/alpha`; Attention `attention/scale`;
  AdditiveAttention `additive_attention/scale`; TimeDistributed(Conv2D): Keras 3
  `sequential/time_distributed/conv2d/kernel`, tf_keras `time_distributed/kernel:0`.
- Nested model called twice (`shared_nested`): one group `encoder` listing its inner
  weights (`lstm/lstm_cell/kernel`, ..., `dense/kernel`, `dense/bias`), as `nested_func`.
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
    ap.add_argument("--check", action="store_true",
                    help="write nothing: reload the existing files of the models and compare "
                         "their predictions with golden.npz")
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
    if args.check:
        for n in names:
            check_dir(n)
        return
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
