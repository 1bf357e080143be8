#!/usr/bin/env python
"""Check rnninspect against Keras itself, on random models it has never seen.

Developer-only, like ``make_sample_models.py``: run it with a Python that has
TensorFlow, Keras 3 and tf_keras (``pip install tensorflow-cpu==2.21.0 tf_keras==2.21.0``).
rnninspect itself is only ever run as a CLI (``--rnninspect PATH``), so TensorFlow never
enters its environment::

    /path/to/kerasenv/bin/python scripts/check_against_keras.py \\
        --rnninspect /path/to/venv/bin/rnninspect --seed 1 --count 2 [--keep DIR]

For every random model variant (families below; sizes T 3..15 or variable, D 1..7,
M 1..12, K 1..5; random float32 weights incl. non-zero biases, identical in both
flavours) it writes

* Keras 3: ``model.keras``, ``model.h5`` (legacy full save), ``model.weights.h5``,
  ``config.json`` (``model.to_json()``)
* tf_keras: ``tfkeras.keras``, ``tfkeras.h5`` (``save_format="h5"``),
  ``tfkeras_weights.h5`` (legacy ``save_weights``), ``tfkeras_config.json``

and runs ``rnninspect summary --json``, ``forward -o y.npy`` and ``trace -o t.npz`` on
every file (weights-only files without ``--config`` and with each flavour's config),
comparing with the Keras flavour the architecture came from: per-layer ``params`` by
name and by order, total/trainable/non-trainable counts, output shapes, ``predict``
output and every recurrent layer's ``return_sequences=True`` output
(``np.allclose(rtol=1e-4, atol=1e-5)``).

Weights-only files without ``--config`` can only match when the model used Keras's
defaults (what rnninspect infers); for other models those rows are reported separately
(``info-match`` / ``info-diff``) and never count as failures.

Exit code 1 if any check failed.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

tf.get_logger().setLevel("ERROR")

RTOL, ATOL = 1e-4, 1e-5
RECURRENT = ("SimpleRNN", "LSTM", "GRU")
ACTS = ["tanh", "relu", "sigmoid", "softmax", "elu", "selu", "softplus", "gelu", "swish",
        "hard_sigmoid", "linear"]
NAME_POOL = ["encoder", "decoder", "enc_a", "enc_b", "enc_c", "core", "recur", "memory",
             "readout", "head", "proj", "hidden", "logits", "score", "reg_out", "feat",
             "pre", "mix", "drop_a", "drop_b", "td_head", "embed", "tokens_emb", "pad_mask"]


# ======================================================================================
# Model specs: plain dicts, built identically with keras and tf_keras
# ======================================================================================


def rnn(units, name=None, activation="tanh", use_bias=True, return_sequences=False,
        go_backwards=False, zero_output_for_mask=False, trainable=True):
    return dict(type="SimpleRNN", name=name, units=units, activation=activation,
                use_bias=use_bias, return_sequences=return_sequences,
                go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask,
                trainable=trainable)


def dense(units, name=None, activation=None, use_bias=True, trainable=True):
    return dict(type="Dense", name=name, units=units, activation=activation,
                use_bias=use_bias, trainable=trainable)


def dropout(rate, name=None):
    return dict(type="Dropout", name=name, rate=rate)


def masking(mask_value=0.0, name=None):
    return dict(type="Masking", name=name, mask_value=mask_value)


def embedding(vocab, dim, mask_zero, name=None, trainable=True):
    return dict(type="Embedding", name=name, input_dim=vocab, output_dim=dim,
                mask_zero=mask_zero, trainable=trainable)


def timedist(inner, name=None, trainable=True):
    return dict(type="TimeDistributed", name=name, inner=inner, trainable=trainable)


class Namer:
    def __init__(self, rng, use):
        self.rng, self.use = rng, use
        self.pool = list(rng.permutation(NAME_POOL))

    def __call__(self):
        return str(self.pool.pop()) if self.use else None


def r_T(rng, variable_p=0.0):
    return None if rng.random() < variable_p else int(rng.integers(3, 16))


def r_D(rng):
    return int(rng.integers(1, 8))


def r_M(rng):
    return int(rng.integers(1, 13))


def r_K(rng):
    return int(rng.integers(1, 6))


def r_act(rng, p_default=0.0, default="tanh"):
    return default if rng.random() < p_default else str(rng.choice(ACTS))


def spec(api, T, layers, D=None, ids=False, input_name=None, kind="float", mask_value=0.0):
    return dict(api=api, T=T, D=D, ids=ids, input_name=input_name, layers=layers,
                kind=kind, mask_value=mask_value)


def r_api(rng):
    return "functional" if rng.random() < 0.5 else "sequential"


# ---- families -----------------------------------------------------------------------


def fam_single_seq(rng):
    """Sequential SimpleRNN + Dense, Keras defaults throughout (default names)."""
    return spec("sequential", r_T(rng, 0.2), [rnn(r_M(rng)), dense(r_K(rng))], D=r_D(rng))


def fam_single_func(rng):
    """Functional SimpleRNN + Dense, explicit names, random activations."""
    nm = Namer(rng, True)
    return spec("functional", r_T(rng, 0.2),
                [rnn(r_M(rng), nm(), r_act(rng, 0.4)),
                 dense(r_K(rng), nm(), r_act(rng, 0.4, "linear"))],
                D=r_D(rng), input_name="seq_in" if rng.random() < 0.5 else None)


def fam_stacked(rng):
    """2-3 SimpleRNNs (return_sequences on all but the last), Dropout between."""
    nm = Namer(rng, rng.random() < 0.7)
    n = int(rng.integers(2, 4))
    layers = []
    for i in range(n):
        layers.append(rnn(r_M(rng), nm(), r_act(rng, 0.6), return_sequences=i < n - 1))
        if i < n - 1 and rng.random() < 0.6:
            layers.append(dropout(float(rng.uniform(0.1, 0.5)), nm()))
    layers.append(dense(r_K(rng), nm()))
    return spec(r_api(rng), r_T(rng, 0.2), layers, D=r_D(rng))


def fam_backwards(rng):
    """go_backwards alone and in stacks (mixed directions)."""
    nm = Namer(rng, rng.random() < 0.5)
    n = int(rng.integers(1, 4))
    dirs = [bool(rng.random() < 0.6) for _ in range(n)]
    if not any(dirs):
        dirs[int(rng.integers(0, n))] = True
    last_seq = bool(rng.random() < 0.3)
    layers = [rnn(r_M(rng), nm(), r_act(rng, 0.6), go_backwards=dirs[i],
                  return_sequences=(i < n - 1) or last_seq) for i in range(n)]
    layers.append(dense(r_K(rng), nm(), r_act(rng, 0.6, "linear")))
    return spec(r_api(rng), r_T(rng, 0.2), layers, D=r_D(rng))


def fam_activations(rng):
    """Every activation in SimpleRNN and Dense (hidden Dense layers too)."""
    nm = Namer(rng, rng.random() < 0.5)
    layers = [rnn(r_M(rng), nm(), r_act(rng))]
    if rng.random() < 0.4:
        layers[0]["return_sequences"] = True
        layers.append(rnn(r_M(rng), nm(), r_act(rng)))
    for _ in range(int(rng.integers(0, 3))):
        layers.append(dense(int(rng.integers(1, 13)), nm(), r_act(rng)))
    layers.append(dense(r_K(rng), nm(), r_act(rng)))
    return spec(r_api(rng), r_T(rng, 0.2), layers, D=r_D(rng))


def fam_nobias(rng):
    """use_bias=False on some SimpleRNN / Dense layers."""
    nm = Namer(rng, rng.random() < 0.5)
    n = int(rng.integers(1, 3))
    layers = [rnn(r_M(rng), nm(), r_act(rng, 0.5), use_bias=bool(rng.random() < 0.5),
                  return_sequences=i < n - 1) for i in range(n)]
    if rng.random() < 0.5:
        layers.append(dense(int(rng.integers(1, 13)), nm(), r_act(rng, 0.5, "linear"),
                            use_bias=bool(rng.random() < 0.5)))
    layers.append(dense(r_K(rng), nm(), use_bias=bool(rng.random() < 0.5)))
    if all(l["use_bias"] for l in layers):
        layers[int(rng.integers(0, len(layers)))]["use_bias"] = False
    return spec(r_api(rng), r_T(rng, 0.2), layers, D=r_D(rng))


def fam_embedding(rng):
    """Embedding (mask_zero True/False) -> SimpleRNN(s) -> Dense; padding ids."""
    nm = Namer(rng, rng.random() < 0.5)
    mz = bool(rng.random() < 0.6)
    V = int(rng.integers(5, 31))
    layers = [embedding(V, r_D(rng), mz, nm(), trainable=bool(rng.random() < 0.8))]
    n = int(rng.integers(1, 3))
    for i in range(n):
        layers.append(rnn(r_M(rng), nm(), r_act(rng, 0.6), return_sequences=i < n - 1,
                          go_backwards=bool(rng.random() < 0.3),
                          zero_output_for_mask=bool(mz and rng.random() < 0.4)))
    layers.append(dense(r_K(rng), nm()))
    return spec(r_api(rng), r_T(rng, 0.2), layers, ids=True, kind="ids",
                input_name="ids" if rng.random() < 0.3 else None)


def fam_masking(rng):
    """Masking (mask_value 0 or not) + masked steps (leading, middle, trailing),
    zero_output_for_mask, go_backwards, Dense / Dropout between."""
    nm = Namer(rng, rng.random() < 0.5)
    mv = 0.0 if rng.random() < 0.6 else float(rng.choice([-1.0, 0.5, 2.0]))
    layers = [masking(mv, nm())]
    if rng.random() < 0.3:
        layers.append(dense(int(rng.integers(1, 8)), nm(), r_act(rng, 0.5, "linear")))
    n = int(rng.integers(1, 4))
    last_seq = bool(rng.random() < 0.4)
    for i in range(n):
        layers.append(rnn(r_M(rng), nm(), r_act(rng, 0.6),
                          return_sequences=(i < n - 1) or last_seq,
                          go_backwards=bool(rng.random() < 0.3),
                          zero_output_for_mask=bool(rng.random() < 0.5)))
        if i < n - 1 and rng.random() < 0.4:
            layers.append(dropout(0.25, nm()))
    if last_seq and rng.random() < 0.5:
        layers.append(timedist(dense(r_K(rng), nm())))
    else:
        layers.append(dense(r_K(rng), nm()))
    return spec(r_api(rng), r_T(rng, 0.2), layers, D=r_D(rng), kind="masked", mask_value=mv)


def fam_timedistributed(rng):
    """TimeDistributed(Dense) heads (and one before the RNN), Dropout between."""
    nm = Namer(rng, rng.random() < 0.5)
    layers = []
    if rng.random() < 0.3:
        layers.append(timedist(dense(int(rng.integers(1, 8)), nm(), r_act(rng, 0.5, "linear")),
                               nm()))
    layers.append(rnn(r_M(rng), nm(), r_act(rng, 0.6), return_sequences=True,
                      go_backwards=bool(rng.random() < 0.2)))
    if rng.random() < 0.6:
        layers.append(dropout(0.2, nm()))
    if rng.random() < 0.3:
        layers.append(timedist(dense(int(rng.integers(1, 8)), nm(), r_act(rng)), nm()))
    layers.append(timedist(dense(r_K(rng), nm(), r_act(rng, 0.5, "linear")), nm()))
    return spec(r_api(rng), r_T(rng, 0.2), layers, D=r_D(rng))


def fam_dense3d(rng):
    """Dense on 3-D input: before the RNN, and as a seq2seq head."""
    nm = Namer(rng, rng.random() < 0.5)
    layers = []
    pre = rng.random() < 0.5
    if pre:
        layers.append(dense(int(rng.integers(1, 8)), nm(), r_act(rng, 0.3, "linear")))
    seq = (not pre) or rng.random() < 0.5
    layers.append(rnn(r_M(rng), nm(), r_act(rng, 0.6), return_sequences=seq))
    if rng.random() < 0.5:
        layers.append(dense(int(rng.integers(1, 13)), nm(), r_act(rng)))
    layers.append(dense(r_K(rng), nm(), r_act(rng, 0.5, "linear")))
    return spec(r_api(rng), r_T(rng, 0.2), layers, D=r_D(rng))


def fam_variable_t(rng):
    """Input(None, D): variable T, 1-2 layers, sometimes masked."""
    nm = Namer(rng, rng.random() < 0.5)
    masked = rng.random() < 0.3
    layers = [masking(0.0, nm())] if masked else []
    n = int(rng.integers(1, 3))
    for i in range(n):
        layers.append(rnn(r_M(rng), nm(), r_act(rng, 0.6), return_sequences=i < n - 1,
                          go_backwards=bool(rng.random() < 0.2)))
    layers.append(dense(r_K(rng), nm()))
    return spec(r_api(rng), None, layers, D=r_D(rng), kind="masked" if masked else "float")


def fam_frozen(rng):
    """trainable=False on some layers (non-trainable counts)."""
    nm = Namer(rng, rng.random() < 0.5)
    n = int(rng.integers(1, 3))
    layers = [rnn(r_M(rng), nm(), return_sequences=i < n - 1,
                  trainable=bool(rng.random() < 0.5)) for i in range(n)]
    layers.append(dense(r_K(rng), nm(), trainable=bool(rng.random() < 0.5)))
    if all(l["trainable"] for l in layers):
        layers[int(rng.integers(0, len(layers)))]["trainable"] = False
    return spec(r_api(rng), r_T(rng), layers, D=r_D(rng))


def fam_swapped_names(rng):
    """Keras-default architecture, but layers named after *other* classes
    (a SimpleRNN called ``dense_3``, a Dense called ``simple_rnn_1``)."""
    n = int(rng.integers(1, 3))
    idx = list(rng.permutation(9) + 1)
    layers = []
    for i in range(n):
        layers.append(rnn(r_M(rng), f"dense_{idx.pop()}", return_sequences=i < n - 1))
        if i < n - 1 and rng.random() < 0.5:
            layers.append(dropout(0.3, f"embedding_{idx.pop()}"))
    layers.append(dense(r_K(rng), f"simple_rnn_{idx.pop()}"))
    return spec(r_api(rng), r_T(rng, 0.2), layers, D=r_D(rng))


FAMILIES = {
    "single_seq": fam_single_seq,
    "single_func": fam_single_func,
    "stacked": fam_stacked,
    "backwards": fam_backwards,
    "activations": fam_activations,
    "nobias": fam_nobias,
    "embedding": fam_embedding,
    "masking": fam_masking,
    "timedistributed": fam_timedistributed,
    "dense3d": fam_dense3d,
    "variable_t": fam_variable_t,
    "frozen": fam_frozen,
    "swapped_names": fam_swapped_names,
}


# ======================================================================================
# Describing a spec; which features are not Keras defaults (what weights-only
# inference cannot know)
# ======================================================================================


def describe_layer(l):
    nm = f"[{l['name']}]" if l.get("name") else ""
    t = l["type"]
    if t == "SimpleRNN":
        bits = [str(l["units"])]
        if l["activation"] != "tanh":
            bits.append(l["activation"])
        if l["return_sequences"]:
            bits.append("seq")
        if l["go_backwards"]:
            bits.append("backwards")
        if l["zero_output_for_mask"]:
            bits.append("zero_output_for_mask")
        if not l["use_bias"]:
            bits.append("no bias")
        if not l["trainable"]:
            bits.append("frozen")
        return f"SimpleRNN{nm}({', '.join(bits)})"
    if t == "Dense":
        bits = [str(l["units"])]
        if l["activation"]:
            bits.append(l["activation"])
        if not l["use_bias"]:
            bits.append("no bias")
        if not l.get("trainable", True):
            bits.append("frozen")
        return f"Dense{nm}({', '.join(bits)})"
    if t == "Dropout":
        return f"Dropout{nm}"
    if t == "Masking":
        return f"Masking{nm}({l['mask_value']})"
    if t == "Embedding":
        bits = [str(l["input_dim"]), str(l["output_dim"])]
        if l["mask_zero"]:
            bits.append("mask_zero")
        if not l["trainable"]:
            bits.append("frozen")
        return f"Embedding{nm}({', '.join(bits)})"
    if t == "TimeDistributed":
        return f"TimeDistributed{nm}({describe_layer(l['inner'])})"
    raise ValueError(t)


def describe(s):
    T = "None" if s["T"] is None else s["T"]
    inp = f"Input({T},{'ids' if s['ids'] else s['D']}{', ' + s['input_name'] if s['input_name'] else ''})"
    api = "Seq" if s["api"] == "sequential" else "Func"
    return f"{api} {inp} > " + " > ".join(describe_layer(l) for l in s["layers"])


def non_defaults(s):
    """Features a weights-only file cannot carry (rnninspect must assume defaults)."""
    out = []
    layers = s["layers"]
    rnn_idx = [i for i, l in enumerate(layers) if l["type"] == "SimpleRNN"]
    for i in rnn_idx:
        l = layers[i]
        follows_td = any(x["type"] == "TimeDistributed" for x in layers[i + 1:])
        if l["activation"] != "tanh":
            out.append(f"{l['name'] or 'rnn'} activation={l['activation']}")
        if l["go_backwards"]:
            out.append("go_backwards")
        if l["zero_output_for_mask"]:
            out.append("zero_output_for_mask")
        if l["return_sequences"] != (i != rnn_idx[-1] or follows_td):
            out.append("return_sequences differs from all-but-last")
    for i, l in enumerate(layers):
        inner = l["inner"] if l["type"] == "TimeDistributed" else l
        if inner["type"] == "Dense" and inner["activation"] not in (None, "linear"):
            out.append(f"Dense activation={inner['activation']}")
        if l.get("trainable", True) is False or inner.get("trainable", True) is False:
            out.append("trainable=False")
        if l["type"] == "Embedding" and l["mask_zero"]:
            out.append("mask_zero")
        if l["type"] == "Masking" and (l["mask_value"] != 0.0 or i != 0):
            out.append("Masking not first / mask_value!=0")
        if rnn_idx and i < rnn_idx[0] and l["type"] in ("Dense", "TimeDistributed"):
            out.append("Dense before the RNN")
    return sorted(set(out))


# ======================================================================================
# Building, weights, inputs, Keras references
# ======================================================================================


def make_layer(K, l):
    t = l["type"]
    kw = {k: v for k, v in l.items() if k not in ("type", "trainable", "inner") and
          not (k == "name" and v is None)}
    if t == "SimpleRNN":
        layer = K.layers.SimpleRNN(**kw)
    elif t == "Dense":
        layer = K.layers.Dense(**kw)
    elif t == "Dropout":
        layer = K.layers.Dropout(**kw)
    elif t == "Masking":
        layer = K.layers.Masking(**kw)
    elif t == "Embedding":
        layer = K.layers.Embedding(**kw)
    elif t == "TimeDistributed":
        layer = K.layers.TimeDistributed(make_layer(K, l["inner"]), **kw)
    else:
        raise ValueError(t)
    if l.get("trainable", True) is False:
        layer.trainable = False
    return layer


def build(K, s):
    shape = (s["T"],) if s["ids"] else (s["T"], s["D"])
    ikw = {"dtype": "int32"} if s["ids"] else {}
    if s["input_name"]:
        ikw["name"] = s["input_name"]
    inp = K.Input(shape=shape, **ikw)
    layers = [make_layer(K, l) for l in s["layers"]]
    if s["api"] == "sequential":
        return K.Sequential([inp, *layers])
    t = inp
    for layer in layers:
        t = layer(t)
    return K.Model(inp, t)


def base_name(w):
    return w.name.split("/")[-1].split(":")[0]


def set_random_weights(m3, m2, rng):
    l2_by_name = {l.name: l for l in m2.layers}
    for l3 in m3.layers:
        if not l3.weights:
            continue
        l2 = l2_by_name[l3.name]
        assert [base_name(w) for w in l3.weights] == [base_name(w) for w in l2.weights]
        ws = [(rng.standard_normal(tuple(w.shape)) * 0.5).astype(np.float32)
              for w in l3.weights]
        l3.set_weights(ws)
        l2.set_weights(ws)
    for a, b in zip(m3.get_weights(), m2.get_weights()):
        assert np.array_equal(a, b)


def make_input(s, rng):
    T = s["T"] if s["T"] is not None else int(rng.integers(3, 16))
    kind = s["kind"]
    masked = kind == "masked" or (kind == "ids" and any(
        l["type"] == "Embedding" and l["mask_zero"] for l in s["layers"]))
    N = 6 if masked else 4
    k = max(1, T // 4)
    if kind == "ids":
        V = s["layers"][0]["input_dim"]
        x = rng.integers(1, V, size=(N, T)).astype(np.int32)
        pad = 0
    else:
        x = rng.standard_normal((N, T, s["D"])).astype(np.float32)
        pad = s["mask_value"]
    if kind in ("ids", "masked"):
        x[0, :k] = pad                 # leading padding
        x[1, T // 2] = pad             # a hole in the middle
        x[2, T - k:] = pad             # trailing padding
        if N > 4:
            x[4, 0] = pad              # leading + middle + trailing
            x[4, T // 2] = pad
            x[4, T - 1] = pad
            x[5, :] = pad              # fully masked sample
    return x


def non_input(model):
    return [l for l in model.layers if type(l).__name__ != "InputLayer"]


def shape_list(shape):
    if isinstance(shape, list) and shape and isinstance(shape[0], tuple):
        (shape,) = shape
    return [None if d is None else int(d) for d in shape]


def reference(model, K, flavour, x):
    """What Keras says: predict output, per-recurrent-layer sequences, summary rows."""
    y = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
    layers = non_input(model)
    states = {}
    for i, layer in enumerate(layers):
        if type(layer).__name__ not in RECURRENT:
            continue
        inp = K.Input(shape=tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype)
        t = inp
        for prev in layers[:i]:
            t = prev(t)  # masks ride along on the symbolic tensor
        cfg = dict(layer.get_config())
        cfg["return_sequences"] = True
        cfg["name"] = layer.name + "_allsteps"
        clone = type(layer).from_config(cfg)
        seq_out = clone(t)
        clone.set_weights(layer.get_weights())
        states[layer.name] = np.asarray(
            K.Model(inp, seq_out).predict(x, verbose=0), dtype=np.float32)
    rows = []
    for l in model.layers:
        shp = l.output.shape if flavour == "keras3" else l.output_shape
        rows.append({"name": l.name, "class_name": type(l).__name__,
                     "output_shape": shape_list(shp), "params": int(l.count_params())})
    totals = {
        "total_params": int(model.count_params()),
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "non_trainable_params": int(
            sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)),
    }
    return {"y": y, "states": states, "rows": rows, "totals": totals,
            "recurrent": [l.name for l in layers if type(l).__name__ in RECURRENT]}


# ======================================================================================
# Running rnninspect and comparing
# ======================================================================================


class Result:
    __slots__ = ("model", "fmt", "check", "status", "detail", "cmd", "stderr", "category")

    def __init__(self, model, fmt, check, status, detail="", cmd="", stderr="", category="main"):
        self.model, self.fmt, self.check, self.status = model, fmt, check, status
        self.detail, self.cmd, self.stderr, self.category = detail, cmd, stderr, category


def run_cli(exe, args, cwd):
    cmd = [exe, *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)
        return p.returncode, p.stdout, p.stderr, shlex.join(cmd)
    except FileNotFoundError as exc:
        return 127, "", str(exc), shlex.join(cmd)
    except subprocess.TimeoutExpired:
        return 124, "", "timeout after 300s", shlex.join(cmd)


def compare_arrays(got, want):
    if got.shape != want.shape:
        return False, f"shape {got.shape} != Keras {want.shape}"
    if got.dtype.kind not in "fc":
        return False, f"dtype {got.dtype}"
    ok = np.allclose(got, want, rtol=RTOL, atol=ATOL)
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    mx = float(np.nanmax(diff)) if diff.size else 0.0
    if ok:
        return True, f"max|diff|={mx:.1e}"
    per = [i for i in range(got.shape[0])
           if not np.allclose(got[i], want[i], rtol=RTOL, atol=ATOL)]
    return False, f"max|diff|={mx:.3g}; samples differing: {per} of {got.shape[0]}"


def check_file(ctx, run):
    """All checks for one (file, --config) combination. Returns a list of Result."""
    exe, d, name = ctx["exe"], ctx["dir"], ctx["name"]
    fmt, path, config, ref, inferred = run["fmt"], run["file"], run["config"], run["ref"], \
        run["inferred"]
    tag = fmt.replace("/", "_").replace("+", "_").replace("=", "_").replace(".", "_")
    cfg_args = ["--config", config] if config else []
    out = []
    # category of these rows: weights-only without --config on non-default models
    nd = ctx["non_defaults"] + run.get("extra_nd", [])
    category = "main"
    if inferred and nd:
        category = "nodefault"

    def add(check, ok, detail, cmd="", stderr="", cat=None):
        c = cat or category
        if c == "main":
            status = "PASS" if ok else "FAIL"
        else:
            status = "info-match" if ok else "info-diff"
        out.append(Result(name, fmt, check, status, detail, cmd, stderr, c))

    # ---- summary
    rc, so, se, cmd = run_cli(exe, ["summary", path, "--json", *cfg_args], d)
    summ = None
    if rc == 0:
        try:
            summ = json.loads(so)
        except json.JSONDecodeError as exc:
            se = f"(stdout not JSON: {exc})\n{se}"
    sum_checks = ["params_by_name", "params_by_order", "totals", "output_shapes"]
    if inferred:
        sum_checks = sum_checks[:3]
    if summ is None:
        for c in sum_checks:
            add(f"summary.{c}", False, f"exit {rc}", cmd, se)
    else:
        rows = ref["rows"]
        got = summ["layers"]
        if inferred:  # inference leaves weightless layers out and knows no InputLayer
            rows_cmp = [r for r in rows if r["params"] > 0]
            got_cmp = [g for g in got if g["params"] > 0]
        else:
            rows_cmp, got_cmp = rows, got
        # by name
        by_name = {g["name"]: g for g in got}
        probs = []
        for r in rows_cmp:
            g = by_name.get(r["name"])
            if g is None:
                probs.append(f"{r['name']}: missing")
            elif g["params"] != r["params"]:
                probs.append(f"{r['name']}: {g['params']} != Keras {r['params']}")
        extra = sorted({g["name"] for g in got_cmp} - {r["name"] for r in rows})
        if extra:
            probs.append(f"not in Keras: {extra}")
        add("summary.params_by_name", not probs,
            "; ".join(probs) if probs else f"{len(rows_cmp)} layers",
            cmd, se)
        # by order
        a = [g["params"] for g in got_cmp]
        b = [r["params"] for r in rows_cmp]
        add("summary.params_by_order", a == b,
            f"{a}" if a == b else f"rnninspect {[(g['name'], g['params']) for g in got_cmp]}"
            f" != Keras {[(r['name'], r['params']) for r in rows_cmp]}", cmd, se)
        # totals
        t = ref["totals"]
        gt = {k: summ.get(k) for k in t}
        add("summary.totals", gt == t, f"{gt}" if gt == t else f"{gt} != Keras {t}", cmd, se)
        # output shapes (an extra check; not for inferred architectures, whose T is
        # variable by assumption)
        if not inferred:
            sa = [(g["name"], g["output_shape"]) for g in got]
            sb = [(r["name"], r["output_shape"]) for r in rows]
            shapes_ok = sa == sb
            det = "ok" if shapes_ok else f"rnninspect {sa} != Keras {sb}"
            add("summary.output_shapes", shapes_ok, det, cmd, se)

    # ---- forward
    y_path = os.path.join(d, f"y_{tag}.npy")
    rc, so, se, cmd = run_cli(exe, ["forward", path, "x.npy", "-o", y_path, *cfg_args], d)
    if rc != 0 or not os.path.exists(y_path):
        add("forward", False, f"exit {rc}", cmd, se)
    else:
        ok, det = compare_arrays(np.load(y_path), ref["y"])
        add("forward", ok, det, cmd, se)

    # ---- trace
    t_path = os.path.join(d, f"t_{tag}.npz")
    rc, so, se, cmd = run_cli(exe, ["trace", path, "x.npy", "-o", t_path, *cfg_args], d)
    if rc != 0 or not os.path.exists(t_path):
        add("trace", False, f"exit {rc}", cmd, se)
    else:
        with np.load(t_path) as z:
            got = {k: z[k] for k in z.files}
        want_names = ref["recurrent"]
        note = ""
        if sorted(got) == sorted(want_names):
            pairs = [(n, got[n], ref["states"][n]) for n in want_names]
        elif inferred and len(got) == len(want_names):
            pairs = [(n, got[g], ref["states"][n]) for n, g in zip(want_names, got)]
            note = f" (keys {list(got)} matched by order)"
        else:
            pairs = None
        if pairs is None:
            add("trace", False, f"keys {list(got)} != Keras recurrent layers {want_names}",
                cmd, se)
        else:
            bad = []
            for n, g, w in pairs:
                ok, det = compare_arrays(g, w)
                if not ok:
                    bad.append(f"{n}: {det}")
            add("trace", not bad, ("; ".join(bad) if bad else
                                   f"{len(pairs)} layer(s) ok") + note, cmd, se)
    return out


# ======================================================================================
# One model: build, save, reference, queue CLI runs
# ======================================================================================


def keras_sanity(s, paths, x, y3, y2):
    """Keras itself reloads every file to the same output (guards this script)."""
    probs = []

    def chk(tag, model, want):
        got = model.predict(x, verbose=0)
        if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
            probs.append(f"{tag}: max|diff|={np.abs(got - want).max():.2e}")

    for tag, fn in [
        ("keras3 .keras", lambda: chk("k3.keras", keras.models.load_model(paths["k3keras"]), y3)),
        ("keras3 .h5", lambda: chk("k3.h5", keras.models.load_model(paths["k3h5"]), y3)),
        ("tf_keras .keras",
         lambda: chk("tfk.keras", tf_keras.models.load_model(paths["tfkeras"]), y2)),
        ("tf_keras .h5", lambda: chk("tfk.h5", tf_keras.models.load_model(paths["tfh5"]), y2)),
    ]:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            probs.append(f"{tag}: Keras cannot reload: {type(exc).__name__}: {exc}"[:300])
    try:
        f3 = build(keras, s)
        f3.load_weights(paths["k3w"])
        chk("k3.weights.h5", f3, y3)
        f2 = build(tf_keras, s)
        f2.load_weights(paths["tfw"])
        chk("tfk_weights.h5", f2, y2)
    except Exception as exc:  # noqa: BLE001
        probs.append(f"weights reload: {type(exc).__name__}: {exc}"[:300])
    return probs


def prepare_model(name, s, rng, d):
    os.makedirs(d, exist_ok=True)
    keras.backend.clear_session()
    tf_keras.backend.clear_session()
    m3 = build(keras, s)
    m2 = build(tf_keras, s)
    n3 = [l.name for l in non_input(m3)]
    n2 = [l.name for l in non_input(m2)]
    assert n3 == n2, (n3, n2)
    set_random_weights(m3, m2, rng)
    x = make_input(s, rng)
    np.save(os.path.join(d, "x.npy"), x)

    p = lambda f: os.path.join(d, f)  # noqa: E731
    paths = {"k3keras": p("model.keras"), "k3h5": p("model.h5"), "k3w": p("model.weights.h5"),
             "k3json": p("config.json"), "tfkeras": p("tfkeras.keras"), "tfh5": p("tfkeras.h5"),
             "tfw": p("tfkeras_weights.h5"), "tfjson": p("tfkeras_config.json")}
    m3.save(paths["k3keras"])
    m3.save(paths["k3h5"])
    m3.save_weights(paths["k3w"])
    with open(paths["k3json"], "w") as f:
        f.write(m3.to_json())
    m2.save(paths["tfkeras"])
    m2.save(paths["tfh5"], save_format="h5")
    m2.save_weights(paths["tfw"])
    with open(paths["tfjson"], "w") as f:
        f.write(m2.to_json())

    ref3 = reference(m3, keras, "keras3", x)
    ref2 = reference(m2, tf_keras, "tfkeras", x)
    flavour_note = ""
    if not np.allclose(ref3["y"], ref2["y"], rtol=RTOL, atol=ATOL):
        flavour_note = (f"Keras 3 and tf_keras predict differ "
                        f"(max {np.abs(ref3['y'] - ref2['y']).max():.2e})")
    sanity = keras_sanity(s, paths, x, ref3["y"], ref2["y"])
    with open(p("spec.json"), "w") as f:
        json.dump({"name": name, "description": describe(s), "spec": s,
                   "non_defaults": non_defaults(s)}, f, indent=1)

    R = {"keras3": ref3, "tfkeras": ref2}
    runs = [
        dict(fmt="k3.keras", file="model.keras", config=None, ref=R["keras3"], inferred=False),
        dict(fmt="k3.h5", file="model.h5", config=None, ref=R["keras3"], inferred=False),
        dict(fmt="tfk.keras", file="tfkeras.keras", config=None, ref=R["tfkeras"],
             inferred=False),
        dict(fmt="tfk.h5", file="tfkeras.h5", config=None, ref=R["tfkeras"], inferred=False),
    ]
    for wfile, wfmt, own in (("model.weights.h5", "k3.weights.h5", "keras3"),
                             ("tfkeras_weights.h5", "tfk_weights.h5", "tfkeras")):
        extra = []
        if own == "tfkeras" and any(l["type"] == "TimeDistributed" and l.get("name")
                                    for l in s["layers"]):
            # tf_keras legacy weights name a TimeDistributed's arrays after the layer
            # (``enc_b/kernel:0``): a custom-named one is indistinguishable from a Dense.
            extra.append("custom-named TimeDistributed (no class in tf_keras weights)")
        runs.append(dict(fmt=wfmt, file=wfile, config=None, ref=R[own], inferred=True,
                         extra_nd=extra))
        for cfile, cfmt, cflav in (("config.json", "k3.json", "keras3"),
                                   ("tfkeras_config.json", "tfk.json", "tfkeras"),
                                   ("model.keras" if own == "keras3" else "tfkeras.keras",
                                    "k3.keras" if own == "keras3" else "tfk.keras", own)):
            runs.append(dict(fmt=f"{wfmt}+cfg={cfmt}", file=wfile, config=cfile,
                             ref=R[cflav], inferred=False))
    ctx = {"name": name, "dir": d, "non_defaults": non_defaults(s)}
    return ctx, runs, sanity, flavour_note


# ======================================================================================
# main
# ======================================================================================


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rnninspect", default="rnninspect", help="the rnninspect CLI to test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=2, help="random variants per family")
    ap.add_argument("--keep", metavar="DIR", help="keep all generated files under DIR")
    ap.add_argument("--families", nargs="*", choices=list(FAMILIES), help="default: all")
    ap.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    ap.add_argument("--quiet", action="store_true", help="print only failures, not every row")
    args = ap.parse_args(argv)

    exe = shutil.which(args.rnninspect) or args.rnninspect
    if not os.path.exists(exe):
        sys.exit(f"rnninspect not found: {args.rnninspect}")
    exe = os.path.abspath(exe)
    if args.keep:
        root = os.path.abspath(args.keep)
        os.makedirs(root, exist_ok=True)
    else:
        root = tempfile.mkdtemp(prefix="rnninspect-check-")
    keras.utils.set_random_seed(args.seed)
    tf_keras.utils.set_random_seed(args.seed)
    master = np.random.default_rng(args.seed)
    fams = args.families or list(FAMILIES)
    started = time.time()

    descriptions, sanity_notes, flavour_notes, nd_of = {}, {}, {}, {}
    futures = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for fam in fams:
            for i in range(args.count):
                name = f"{fam}-{i}"
                rng = np.random.default_rng(master.integers(0, 2**31))
                s = FAMILIES[fam](rng)
                descriptions[name] = describe(s)
                nd_of[name] = non_defaults(s)
                print(f"[{time.time() - started:6.1f}s] building {name}: {describe(s)}",
                      file=sys.stderr, flush=True)
                try:
                    ctx, runs, sanity, fnote = prepare_model(name, s, rng,
                                                             os.path.join(root, name))
                except Exception:  # noqa: BLE001
                    sanity_notes[name] = ["could not build/save with Keras:\n"
                                          + traceback.format_exc()]
                    continue
                if sanity:
                    sanity_notes[name] = sanity
                if fnote:
                    flavour_notes[name] = fnote
                ctx["exe"] = exe
                for r in runs:
                    futures.append(pool.submit(check_file, ctx, r))
        results = [res for f in futures for res in f.result()]

    main_rows = [r for r in results if r.category == "main"]
    nd_rows = [r for r in results if r.category != "main"]
    passed = sum(r.status == "PASS" for r in main_rows)
    failed = sum(r.status == "FAIL" for r in main_rows)

    def table(rows):
        w1 = max([len(r.model) for r in rows] + [5])
        w2 = max([len(r.fmt) for r in rows] + [6])
        w3 = max([len(r.check) for r in rows] + [5])
        print(f"{'model':<{w1}}  {'format':<{w2}}  {'check':<{w3}}  {'result':<10}  detail")
        for r in rows:
            print(f"{r.model:<{w1}}  {r.fmt:<{w2}}  {r.check:<{w3}}  {r.status:<10}  {r.detail}")

    print(f"rnninspect: {exe}")
    print(f"seed={args.seed} count={args.count} files under {root}"
          f"{'' if args.keep else ' (deleted at exit)'}")
    print(f"Keras {keras.__version__}, tf_keras {tf_keras.__version__}, "
          f"rtol={RTOL} atol={ATOL}\n")
    print("Models:")
    for name, desc in descriptions.items():
        nd = nd_of[name]
        print(f"  {name}: {desc}")
        if nd:
            print(f"      non-default (weights-only w/o --config not expected to match): "
                  f"{', '.join(nd)}")
    print()
    table([r for r in main_rows if not args.quiet or r.status != "PASS"])
    if nd_rows:
        print("\nWeights-only files without --config, non-default model features "
              "(expected to differ; not counted):")
        table(nd_rows)
        print(f"  {sum(r.status == 'info-match' for r in nd_rows)} matched anyway, "
              f"{sum(r.status == 'info-diff' for r in nd_rows)} differed")
    if flavour_notes:
        print("\nKeras 3 vs tf_keras (each file is compared with its own flavour):")
        for n, note in flavour_notes.items():
            print(f"  {n}: {note}")
    if sanity_notes:
        print("\nKeras sanity problems (this script or Keras, not rnninspect):")
        for n, notes in sanity_notes.items():
            for note in notes:
                print(f"  {n}: {note}")
    fails = [r for r in main_rows if r.status == "FAIL"]
    if fails:
        print("\nFailures:")
        seen = set()
        for r in fails:
            print(f"- {r.model} [{descriptions[r.model]}] {r.fmt} {r.check}: {r.detail}")
            key = (r.cmd, r.stderr)
            if key in seen:
                continue
            seen.add(key)
            print(f"    $ {r.cmd}")
            for line in r.stderr.strip().splitlines():
                print(f"    stderr: {line}")
    print(f"\n({time.time() - started:.0f}s)")
    print(f"{passed} passed, {failed} failed")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed or (sanity_notes and any(
        "could not build" in n for v in sanity_notes.values() for n in v)) else 0


if __name__ == "__main__":
    sys.exit(main())
