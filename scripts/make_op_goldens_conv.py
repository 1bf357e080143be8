#!/usr/bin/env python
"""Write ``tests/data/ops_conv.npz``: Keras's own outputs for the convolution family.

Developer-only, like ``make_sample_models.py``: it needs TensorFlow, Keras 3 and
tf_keras (checked with tensorflow-cpu 2.21.0, keras 3.15.1, tf_keras 2.21.0)::

    TF_CPP_MIN_LOG_LEVEL=3 /work/kenv/bin/python scripts/make_op_goldens_conv.py [--out PATH]

Every layer is built standalone, given seeded random weights with ``set_weights`` and
called eagerly on a seeded random input (masks passed as ``mask=``), once in Keras 3
and once in tf_keras. Cases:

* ``conv1d``: Conv1D over padding valid/same/causal x strides 1, 2, 3 x dilation 1, 2
  x groups 1, 2 x kernel 1..3 x odd and even lengths, plus no-bias, channels_first and
  a kernel longer than the input;
* ``conv2d``: Conv2D over valid/same x strides x dilations x groups (odd H, even W);
* ``pool1d`` / ``pool2d``: Max/AveragePooling over pool sizes, strides (None = pool
  size), valid/same, both lengths' parities;
* ``gpool1d`` / ``gpool2d``: global pooling, GlobalAveragePooling1D with masks (one
  sample all masked; one with a NaN at a masked step, where Keras 3 and tf_keras
  differ), GlobalMaxPooling1D behind an ``Embedding(mask_zero=True)`` in a functional
  model (the mask does not reach it);
* ``convlstm``: ConvLSTM1D/2D with valid/same, even kernels, strides, dilation,
  go_backwards, return_sequences, masks, no bias, initial states, hard_sigmoid
  (differs between generations) and channels_first, each with ``return_state``;
* ``cudnn``: a tf_keras ``CuDNNLSTM`` / ``CuDNNGRU`` (built on CPU; only running needs
  a GPU) saved with ``save_weights(.h5)``, loaded into an ``LSTM`` / ``GRU`` by
  tf_keras's legacy loader (which converts); the file's raw arrays, the loader's
  converted arrays and the loaded model's ``predict``.

Arrays are deduplicated by content (``a<k>`` keys); ``__cases__`` is JSON: a list of
``{"op", "id", "params", "arrays": {role: key}}``. A ``y_tfkeras`` role is present only
where tf_keras's output differs from Keras 3's beyond the tests' tolerance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.simplefilter("ignore")

import h5py
import keras
import numpy as np
import tensorflow as tf
import tf_keras

ROOT = Path(__file__).resolve().parent.parent
RTOL, ATOL = 1e-5, 1e-6


class Store:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.by_hash: dict[str, str] = {}
        self.cases: list[dict[str, Any]] = []
        self.differs: list[str] = []

    def put(self, a: Any) -> str:
        a = np.ascontiguousarray(np.asarray(a))
        h = hashlib.sha1(a.dtype.str.encode() + str(a.shape).encode() + a.tobytes()).hexdigest()
        if h not in self.by_hash:
            key = f"a{len(self.arrays)}"
            self.arrays[key] = a
            self.by_hash[h] = key
        return self.by_hash[h]

    def case(self, op: str, params: dict[str, Any], arrays: dict[str, Any], y_tfkeras: Any = None) -> None:
        roles = {k: self.put(v) for k, v in arrays.items() if v is not None}
        cid = f"{op}-{len([c for c in self.cases if c['op'] == op])}"
        if y_tfkeras is not None:
            for role, ytf in (y_tfkeras.items() if isinstance(y_tfkeras, dict) else [("y", y_tfkeras)]):
                ref = arrays[role]
                if not np.allclose(np.asarray(ytf), ref, rtol=RTOL, atol=ATOL, equal_nan=True):
                    roles[f"{role}_tfkeras"] = self.put(np.asarray(ytf))
                    self.differs.append(f"{cid} {role}")
        self.cases.append({"op": op, "id": cid, "params": params, "arrays": roles})


def rng_for(*key: Any) -> np.random.Generator:
    seed = int(hashlib.sha1(repr(key).encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed)


def f32(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def run_layer(layer: Any, x: np.ndarray, weights: list[np.ndarray], **call: Any) -> Any:
    layer.build(x.shape)
    layer.set_weights(weights)
    out = layer(tf.constant(x), **call)
    if isinstance(out, (list, tuple)):
        return [np.asarray(o) for o in out]
    return np.asarray(out)


# ---------------------------------------------------------------------------- conv


def conv_cases(st: Store) -> None:
    C, F, N = 4, 4, 2
    grid = []
    for T in (7, 8):
        for k in (1, 2, 3):
            for padding in ("valid", "same", "causal"):
                for s, d in ((1, 1), (2, 1), (3, 1), (1, 2)):
                    if k == 1 and d > 1:
                        continue
                    for g in (1, 2):
                        grid.append(dict(T=T, k=k, padding=padding, strides=s, dilation_rate=d, groups=g))
    extra = [
        dict(T=8, k=3, padding="same", strides=2, dilation_rate=1, groups=1, use_bias=False),
        dict(T=7, k=3, padding="causal", strides=1, dilation_rate=3, groups=4),
        dict(T=4, k=5, padding="same", strides=1, dilation_rate=1, groups=1),
        dict(T=4, k=3, padding="same", strides=5, dilation_rate=1, groups=1),
        dict(T=7, k=2, padding="same", strides=1, dilation_rate=1, groups=1, data_format="channels_first"),
        dict(T=9, k=3, padding="causal", strides=2, dilation_rate=1, groups=2, data_format="channels_first"),
        # Output length == filters: Keras 3's TF backend adds the bias on the wrong axis.
        dict(T=8, k=3, padding="causal", strides=2, dilation_rate=1, groups=2, data_format="channels_first"),
        dict(T=6, k=3, padding="valid", strides=1, dilation_rate=1, groups=1, data_format="channels_first"),
    ]
    for p in grid + extra:
        p = {"use_bias": True, "data_format": "channels_last", **p}
        r = rng_for("conv1d", p["T"], p["k"], p["groups"])
        x = f32(r.standard_normal((N, p["T"], C)))
        W = f32(0.5 * r.standard_normal((p["k"], C // p["groups"], F)))
        b = f32(r.standard_normal(F)) if p["use_bias"] else None
        if p["data_format"] == "channels_first":
            x = np.ascontiguousarray(x.transpose(0, 2, 1))
        ys = []
        for K in (keras, tf_keras):
            layer = K.layers.Conv1D(
                F, p["k"], strides=p["strides"], padding=p["padding"], dilation_rate=p["dilation_rate"],
                groups=p["groups"], use_bias=p["use_bias"], data_format=p["data_format"],
            )
            ys.append(run_layer(layer, x, [W] if b is None else [W, b]))
        params = {k: p[k] for k in ("strides", "padding", "dilation_rate", "groups", "data_format")}
        params["keras3_tf_bias_on_last_axis"] = bias_quirk(p, ys[0], F)
        st.case("conv1d", params, {"x": x, "kernel": W, "bias": b, "y": ys[0]}, ys[1])

    H, Wd = 5, 6
    for ks in ((2, 3), (3, 3)):
        for padding in ("valid", "same"):
            for s, d in (((1, 1), (1, 1)), ((2, 2), (1, 1)), ((2, 1), (1, 1)), ((1, 1), (2, 1)), ((1, 1), (2, 2))):
                for g in (1, 2):
                    p = dict(kernel_size=ks, padding=padding, strides=s, dilation_rate=d, groups=g,
                             data_format="channels_last", use_bias=True)
                    conv2d_case(st, p, N, H, Wd, C, F)
    conv2d_case(st, dict(kernel_size=(3, 2), padding="same", strides=(2, 2), dilation_rate=(1, 1), groups=1,
                         data_format="channels_first", use_bias=False), N, H, Wd, C, F)
    conv2d_case(st, dict(kernel_size=(2, 2), padding="valid", strides=(1, 1), dilation_rate=(1, 1), groups=2,
                         data_format="channels_first", use_bias=True), N, H, Wd, C, F)
    # W' == F: the bias lands on the wrong axis in Keras 3's TF backend.
    conv2d_case(st, dict(kernel_size=(2, 3), padding="valid", strides=(1, 1), dilation_rate=(1, 1), groups=2,
                         data_format="channels_first", use_bias=True), N, H, Wd, C, F)


def bias_quirk(p: dict[str, Any], y: np.ndarray, F: int) -> bool:
    """Keras 3's TF ``ops.add`` turns ``out + bias.reshape(1, F, 1..)`` into
    ``tf.nn.bias_add(..., "NHWC")`` whenever the last axis also has length F."""
    return bool(p["data_format"] == "channels_first" and p.get("use_bias", True) and y.shape[-1] == F)


def conv2d_case(st: Store, p: dict[str, Any], N: int, H: int, Wd: int, C: int, F: int) -> None:
    r = rng_for("conv2d", p["kernel_size"], p["groups"])
    x = f32(r.standard_normal((N, H, Wd, C)))
    W = f32(0.5 * r.standard_normal((*p["kernel_size"], C // p["groups"], F)))
    b = f32(r.standard_normal(F)) if p["use_bias"] else None
    if p["data_format"] == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    ys = []
    for K in (keras, tf_keras):
        layer = K.layers.Conv2D(
            F, p["kernel_size"], strides=p["strides"], padding=p["padding"], dilation_rate=p["dilation_rate"],
            groups=p["groups"], use_bias=p["use_bias"], data_format=p["data_format"],
        )
        ys.append(run_layer(layer, x, [W] if b is None else [W, b]))
    params = {k: p[k] for k in ("strides", "padding", "dilation_rate", "groups", "data_format")}
    params["keras3_tf_bias_on_last_axis"] = bias_quirk(p, ys[0], F)
    st.case("conv2d", params, {"x": x, "kernel": W, "bias": b, "y": ys[0]}, ys[1])


# ------------------------------------------------------------------------- pooling


def pool_cases(st: Store) -> None:
    N, C = 2, 3
    cls1 = {"max": "MaxPooling1D", "avg": "AveragePooling1D"}
    cls2 = {"max": "MaxPooling2D", "avg": "AveragePooling2D"}
    for T in (7, 8):
        x = f32(rng_for("pool1d", T).standard_normal((N, T, C)))
        for pool in (2, 3):
            for strides in (None, 1, 2):
                for padding in ("valid", "same"):
                    for op in ("max", "avg"):
                        ys = [np.asarray(getattr(K.layers, cls1[op])(pool, strides=strides, padding=padding)(x))
                              for K in (keras, tf_keras)]
                        params = dict(op=op, pool_size=pool, strides=strides, padding=padding,
                                      data_format="channels_last")
                        st.case("pool1d", params, {"x": x, "y": ys[0]}, ys[1])
    x = f32(rng_for("pool1d-cf").standard_normal((N, C, 7)))
    for op in ("max", "avg"):
        ys = [np.asarray(getattr(K.layers, cls1[op])(3, strides=2, padding="same", data_format="channels_first")(x))
              for K in (keras, tf_keras)]
        st.case("pool1d", dict(op=op, pool_size=3, strides=2, padding="same", data_format="channels_first"),
                {"x": x, "y": ys[0]}, ys[1])

    x = f32(rng_for("pool2d").standard_normal((N, 5, 6, C)))
    for pool in ((2, 2), (3, 2)):
        for strides in (None, (1, 1), (2, 1)):
            for padding in ("valid", "same"):
                for op in ("max", "avg"):
                    ys = [np.asarray(getattr(K.layers, cls2[op])(pool, strides=strides, padding=padding)(x))
                          for K in (keras, tf_keras)]
                    params = dict(op=op, pool_size=list(pool), strides=None if strides is None else list(strides),
                                  padding=padding, data_format="channels_last")
                    st.case("pool2d", params, {"x": x, "y": ys[0]}, ys[1])
    xc = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    for op in ("max", "avg"):
        ys = [np.asarray(getattr(K.layers, cls2[op])((3, 3), strides=(2, 2), padding="same",
                                                     data_format="channels_first")(xc)) for K in (keras, tf_keras)]
        st.case("pool2d", dict(op=op, pool_size=[3, 3], strides=[2, 2], padding="same",
                               data_format="channels_first"), {"x": xc, "y": ys[0]}, ys[1])


def global_pool_cases(st: Store) -> None:
    N, T, C = 3, 5, 4
    r = rng_for("gpool1d")
    x = f32(r.standard_normal((N, T, C)))
    mask = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    for op, cls in (("avg", "GlobalAveragePooling1D"), ("max", "GlobalMaxPooling1D")):
        for keepdims in (False, True):
            ys = [np.asarray(getattr(K.layers, cls)(keepdims=keepdims)(x)) for K in (keras, tf_keras)]
            st.case("gpool1d", dict(op=op, keepdims=keepdims, data_format="channels_last", masked=False),
                    {"x": x, "y": ys[0]}, ys[1])
        xc = np.ascontiguousarray(x.transpose(0, 2, 1))
        ys = [np.asarray(getattr(K.layers, cls)(data_format="channels_first", keepdims=True)(xc))
              for K in (keras, tf_keras)]
        st.case("gpool1d", dict(op=op, keepdims=True, data_format="channels_first", masked=False),
                {"x": xc, "y": ys[0]}, ys[1])
    # GlobalAveragePooling1D given a mask directly (an all-masked sample: 0/0).
    for keepdims in (False, True):
        ys = [np.asarray(K.layers.GlobalAveragePooling1D(keepdims=keepdims)(x, mask=tf.constant(mask)))
              for K in (keras, tf_keras)]
        st.case("gpool1d", dict(op="avg", keepdims=keepdims, data_format="channels_last", masked=True),
                {"x": x, "mask": mask, "y": ys[0]}, ys[1])
    # A NaN at a masked step: Keras 3 drops it (where), tf_keras keeps it (x * 0).
    xn = x.copy()
    xn[0, 2, 1] = np.nan
    ys = [np.asarray(K.layers.GlobalAveragePooling1D()(xn, mask=tf.constant(mask))) for K in (keras, tf_keras)]
    st.case("gpool1d", dict(op="avg", keepdims=False, data_format="channels_last", masked=True),
            {"x": xn, "mask": mask, "y": ys[0]}, ys[1])
    # In a model: Embedding(mask_zero=True) -> GlobalMax/AveragePooling1D.
    toks = np.array([[1, 2, 0, 3, 0], [0, 0, 0, 0, 0], [4, 5, 6, 7, 8]])
    for op, cls in (("avg", "GlobalAveragePooling1D"), ("max", "GlobalMaxPooling1D")):
        ys, emb = [], None
        for K in (keras, tf_keras):
            inp = K.Input((T,), dtype="int32")
            e = K.layers.Embedding(10, C, mask_zero=True)
            m = K.Model(inp, getattr(K.layers, cls)()(e(inp)))
            if emb is None:
                emb = f32(rng_for("gpool-emb").standard_normal((10, C)))
            e.set_weights([emb])
            ys.append(m.predict(toks, verbose=0))
        st.case("gpool1d", dict(op=op, keepdims=False, data_format="channels_last", masked=True,
                                via="Embedding(mask_zero=True) in a functional model"),
                {"x": emb[toks], "mask": toks != 0, "y": ys[0]}, ys[1])

    x2 = f32(rng_for("gpool2d").standard_normal((2, 3, 4, C)))
    for op, cls in (("avg", "GlobalAveragePooling2D"), ("max", "GlobalMaxPooling2D")):
        for keepdims in (False, True):
            ys = [np.asarray(getattr(K.layers, cls)(keepdims=keepdims)(x2)) for K in (keras, tf_keras)]
            st.case("gpool2d", dict(op=op, keepdims=keepdims, data_format="channels_last"),
                    {"x": x2, "y": ys[0]}, ys[1])
        xc = np.ascontiguousarray(x2.transpose(0, 3, 1, 2))
        ys = [np.asarray(getattr(K.layers, cls)(data_format="channels_first")(xc)) for K in (keras, tf_keras)]
        st.case("gpool2d", dict(op=op, keepdims=False, data_format="channels_first"), {"x": xc, "y": ys[0]}, ys[1])


# ------------------------------------------------------------------------ ConvLSTM


def convlstm_cases(st: Store) -> None:
    N, T, C = 2, 4, 2
    one = [
        dict(kernel_size=3, padding="valid"),
        dict(kernel_size=3, padding="same", return_sequences=True),
        dict(kernel_size=2, padding="same", return_sequences=True),
        dict(kernel_size=3, padding="valid", strides=2, return_sequences=True),
        dict(kernel_size=2, padding="same", dilation_rate=2),
        dict(kernel_size=3, padding="same", go_backwards=True, return_sequences=True),
        dict(kernel_size=3, padding="same", go_backwards=True),
        dict(kernel_size=3, padding="same", mask=True, return_sequences=True),
        dict(kernel_size=2, padding="valid", mask=True, go_backwards=True, return_sequences=True),
        dict(kernel_size=3, padding="same", mask=True),
        dict(kernel_size=3, padding="same", use_bias=False, return_sequences=True),
        dict(kernel_size=3, padding="same", initial_state=True, return_sequences=True),
        dict(kernel_size=3, padding="same", recurrent_activation="hard_sigmoid", return_sequences=True),
        dict(kernel_size=3, padding="same", activation="relu"),
        dict(kernel_size=2, padding="same", data_format="channels_first", return_sequences=True, mask=True),
        # W' == F, channels_first: unlike Conv1D, Keras 3 adds this bias right (``+=`` is
        # tf.add, not keras.ops.add).
        dict(kernel_size=3, padding="valid", data_format="channels_first", return_sequences=True, spatial=(5,)),
    ]
    two = [
        dict(kernel_size=(3, 3), padding="valid", return_sequences=True),
        dict(kernel_size=(2, 3), padding="same", return_sequences=True),
        dict(kernel_size=(3, 2), padding="same", strides=(2, 1)),
        dict(kernel_size=(2, 2), padding="same", dilation_rate=(2, 1), return_sequences=True),
        dict(kernel_size=(3, 3), padding="same", go_backwards=True, mask=True, return_sequences=True),
        dict(kernel_size=(3, 3), padding="same", recurrent_activation="hard_sigmoid", initial_state=True),
        dict(kernel_size=(2, 3), padding="same", data_format="channels_first", go_backwards=True),
    ]
    for rank, variants, spatial, F in ((1, one, (7,), 3), (2, two, (5, 4), 2)):
        for v in variants:
            p = {**dict(strides=1, dilation_rate=1, use_bias=True, go_backwards=False, return_sequences=False,
                        activation="tanh", recurrent_activation="sigmoid", data_format="channels_last",
                        mask=False, initial_state=False, spatial=spatial), **v}
            ks = p["kernel_size"] if rank == 2 else (p["kernel_size"],)
            r = rng_for("convlstm", rank, json.dumps(p, sort_keys=True))
            x = f32(r.standard_normal((N, T, *p["spatial"], C)))
            W = f32(0.4 * r.standard_normal((*ks, C, 4 * F)))
            U = f32(0.4 * r.standard_normal((*ks, F, 4 * F)))
            b = f32(0.5 * r.standard_normal(4 * F)) if p["use_bias"] else None
            mask = np.array([[1, 0, 1, 1], [1, 1, 0, 0]], dtype=bool) if p["mask"] else None
            cls = f"ConvLSTM{rank}D"
            kw = {k: p[k] for k in ("strides", "padding", "dilation_rate", "use_bias", "go_backwards",
                                    "return_sequences", "activation", "recurrent_activation", "data_format")}
            outs = []
            init = None
            for K in (keras, tf_keras):
                layer = getattr(K.layers, cls)(F, p["kernel_size"], return_state=True, **kw)
                xin = x if p["data_format"] == "channels_last" else np.ascontiguousarray(np.moveaxis(x, -1, 2))
                call: dict[str, Any] = {}
                if mask is not None:
                    call["mask"] = tf.constant(mask)
                layer.build(xin.shape)
                layer.set_weights([W, U] if b is None else [W, U, b])
                if p["initial_state"]:
                    if init is None:
                        probe = np.asarray(layer(tf.constant(xin))[1])
                        init = [f32(0.5 * r.standard_normal(probe.shape)), f32(0.5 * r.standard_normal(probe.shape))]
                    call["initial_state"] = [tf.constant(init[0]), tf.constant(init[1])]
                o = layer(tf.constant(xin), **call)
                outs.append([np.asarray(t) for t in o])
            params = {k: p[k] for k in ("strides", "padding", "dilation_rate", "go_backwards", "return_sequences",
                                        "activation", "recurrent_activation", "data_format")}
            params["rank"] = rank
            arrays = {"x": xin, "kernel": W, "recurrent_kernel": U, "bias": b, "mask": mask,
                      "h0": None if init is None else init[0], "c0": None if init is None else init[1],
                      "y": outs[0][0], "h": outs[0][1], "c": outs[0][2]}
            st.case("convlstm", params, arrays, {"y": outs[1][0], "h": outs[1][1], "c": outs[1][2]})
    masking_cases(st)


def masking_cases(st: Store) -> None:
    """``Masking`` -> ConvLSTM in a model: the mask is ``any(x != 0)`` over channels only,
    ``(N, T, *spatial)``, and the RNN loop applies it per output position."""
    N, T, C = 2, 3, 2
    for rank, spatial, ks, F in ((1, (7,), 3, 2), (2, (4, 3), (3, 2), 2)):
        r = rng_for("masking-convlstm", rank)
        x = f32(r.standard_normal((N, T, *spatial, C)))
        x[0, 1] = 0  # a whole step
        x[1, 2, 3 if rank == 1 else 1] = 0  # one position of a step
        x[1, 0, -1] = 0
        W = f32(0.4 * r.standard_normal((*(ks if rank == 2 else (ks,)), C, 4 * F)))
        U = f32(0.4 * r.standard_normal((*(ks if rank == 2 else (ks,)), F, 4 * F)))
        b = f32(0.5 * r.standard_normal(4 * F))
        outs = []
        for K in (keras, tf_keras):
            inp = K.Input((T, *spatial, C))
            layer = getattr(K.layers, f"ConvLSTM{rank}D")(F, ks, padding="same", return_sequences=True,
                                                         recurrent_activation="sigmoid", return_state=True)
            model = K.Model(inp, layer(K.layers.Masking(0.0)(inp)))
            layer.set_weights([W, U, b])
            outs.append([np.asarray(o) for o in model.predict(x, verbose=0)])
        params = dict(rank=rank, strides=1, padding="same", dilation_rate=1, go_backwards=False,
                      return_sequences=True, activation="tanh", recurrent_activation="sigmoid",
                      data_format="channels_last", via="Masking(0.0) in a functional model")
        arrays = {"x": x, "kernel": W, "recurrent_kernel": U, "bias": b, "mask": (x != 0).any(axis=-1),
                  "y": outs[0][0], "h": outs[0][1], "c": outs[0][2]}
        st.case("convlstm", params, arrays, {"y": outs[1][0], "h": outs[1][1], "c": outs[1][2]})


# --------------------------------------------------------------------------- CuDNN


def cudnn_cases(st: Store) -> None:
    from tf_keras.src.layers.rnn.cudnn_gru import CuDNNGRU
    from tf_keras.src.layers.rnn.cudnn_lstm import CuDNNLSTM

    N, T, I, M = 2, 5, 3, 4
    for kind, cudnn_cls, plain, gates in (("lstm", CuDNNLSTM, "LSTM", 4), ("gru", CuDNNGRU, "GRU", 3)):
        r = rng_for("cudnn", kind)
        x = f32(r.standard_normal((N, T, I)))
        src = tf_keras.Sequential([tf_keras.Input((T, I)), cudnn_cls(M, return_sequences=True, name="rnn")])
        raw_set = [f32(0.5 * r.standard_normal(w.shape)) for w in src.get_weights()]
        src.set_weights(raw_set)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "cudnn.h5")
            src.save_weights(path)
            with h5py.File(path, "r") as f:
                g = f["rnn"]
                names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
                raw = [np.asarray(g[n]) for n in names]
            layer_kw = {"reset_after": True} if kind == "gru" else {}
            dst = tf_keras.Sequential([tf_keras.Input((T, I)),
                                       getattr(tf_keras.layers, plain)(M, return_sequences=True, name="rnn",
                                                                       **layer_kw)])
            dst.load_weights(path)
        conv = dst.get_weights()
        y = dst.predict(x, verbose=0)
        assert [a.shape for a in raw] == [(I, gates * M), (M, gates * M), (2 * gates * M,)], [a.shape for a in raw]
        st.case("cudnn", dict(kind=kind, weight_names=names),
                {"x": x, "kernel": raw[0], "recurrent_kernel": raw[1], "bias": raw[2],
                 "kernel_conv": conv[0], "recurrent_kernel_conv": conv[1], "bias_conv": conv[2], "y": y})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "ops_conv.npz")
    args = ap.parse_args()
    keras.utils.set_random_seed(0)
    st = Store()
    conv_cases(st)
    pool_cases(st)
    global_pool_cases(st)
    convlstm_cases(st)
    cudnn_cases(st)
    meta = {"versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                         "tf_keras": tf_keras.__version__}, "cases": st.cases}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, __cases__=np.array(json.dumps(meta)), **st.arrays)
    counts: dict[str, int] = {}
    for c in st.cases:
        counts[c["op"]] = counts.get(c["op"], 0) + 1
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {counts}")
    print(f"tf_keras differs from Keras 3 in {len(st.differs)} outputs: {st.differs}")


if __name__ == "__main__":
    main()
