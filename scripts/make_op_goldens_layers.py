#!/usr/bin/env python
"""Write ``tests/data/ops_layers.npz``: Keras's own outputs for the layer functions of
``rnninspect/ops/{attention,norm,activation_layers,merge,sequence}.py``, and the
evidence behind ``rnninspect/ops/masks.py``.

Developer-only (rnninspect never imports TensorFlow or Keras). Run with the Keras venv
(tensorflow-cpu 2.21.0, keras 3.15.1, tf_keras 2.21.0), from the repo root::

    TF_CPP_MIN_LOG_LEVEL=3 /work/kenv/bin/python scripts/make_op_goldens_layers.py

Each case builds a small functional model around one Keras layer, in Keras 3 and (when
tf_keras has the layer and options) in tf_keras, sets random non-trivial weights, and
runs ``model.predict``. Masks enter through a tiny ``SetMask`` layer (``[x, m] -> x``
with ``m`` as its output mask), so masked steps keep non-zero values and the masks
reach the layer exactly as they would from ``Masking`` or ``Embedding``.

Keys of the npz:

* ``__cases__``: JSON ``{case: spec}``; a spec names the function (``"module.fn"``),
  its positional array arguments (a list entry is a list of arrays), array and scalar
  keyword arguments, the ``weights`` mapping (MultiHeadAttention), and per generation
  (``k3``, ``tk``) extra keyword arguments and the number of outputs; absent generation
  = that Keras cannot build the case.
* ``<case>/in/<name>``: the inputs; ``<case>/k3/<i>``, ``<case>/tk/<i>``: the outputs.
* ``__merge_masks__``: JSON ``{case: {kind, axis, masks: [name|null], arrays, k3, tk}}``
  with ``mm/<case>/...`` arrays: the output masks of merge layers, read in eager mode
  from ``backend.get_keras_mask(out)`` (Keras 3) and ``out._keras_mask`` (tf_keras).
* ``__mask_evidence__``: JSON ``{class: {"k3": rule, "tk": rule, ...}}``, each rule
  found by running the layer on a masked input: ``pass`` (output mask == input mask),
  ``drop`` (no output mask, values ignore the mask), ``consume`` (no output mask,
  values use it), ``transform`` (a different mask), ``query`` (attention: the query's
  mask), ``merge``, or ``error: ...``.
"""

import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import keras
import numpy as np
import tensorflow as tf
import tf_keras
from keras.src import backend as k3_backend

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "ops_layers.npz"

rng = np.random.RandomState(20240611)
STORE: dict[str, np.ndarray] = {}
CASES: dict[str, dict] = {}


def f32(*shape, scale=1.0):
    return (rng.randn(*shape) * scale).astype(np.float32)


def lengths_mask(lengths, t):
    return np.arange(t)[None, :] < np.asarray(lengths)[:, None]


# ----------------------------------------------------------------------------- SetMask


class SetMask3(keras.layers.Layer):
    """``[x, m] -> x`` whose output mask is ``m`` (Keras 3)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.supports_masking = True

    def call(self, inputs):
        return keras.ops.multiply(inputs[0], 1.0)

    def compute_mask(self, inputs, previous_mask=None):
        return keras.ops.cast(inputs[1], "bool")

    def compute_output_shape(self, input_shape):
        return input_shape[0]


class SetMaskTk(tf_keras.layers.Layer):
    """``[x, m] -> x`` whose output mask is ``m`` (tf_keras)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.supports_masking = True

    def call(self, inputs):
        return tf.identity(inputs[0])

    def compute_mask(self, inputs, mask=None):
        return tf.cast(inputs[1], tf.bool)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


SETMASK = {keras: SetMask3, tf_keras: SetMaskTk}
EAGER_FALLBACK: list[str] = []
GEN = {keras: "k3", tf_keras: "tk"}


def run_model(mod, feeds, build):
    """``feeds``: list of ``(name, array, mask | None)``; ``build(mod, tensors)``
    returns the output tensor(s) (and sets the layer's weights). Returns a list of
    NumPy outputs of ``model.predict``."""
    inputs, arrays, tensors = [], [], {}
    for name, arr, mask in feeds:
        inp = mod.Input(arr.shape[1:], dtype=str(arr.dtype), name=name)
        inputs.append(inp)
        arrays.append(arr)
        t = inp
        if mask is not None:
            minp = mod.Input(mask.shape[1:], dtype="bool", name=name + "_mask")
            inputs.append(minp)
            arrays.append(mask)
            t = SETMASK[mod]()([inp, minp])
        tensors[name] = t
    outs = build(mod, tensors)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    model = mod.Model(inputs, outs)
    try:
        preds = model.predict(arrays, verbose=0)
    except tf.errors.InvalidArgumentError as e:
        # tf_keras LayerNormalization(axis=[1, 2]) on its fused path: TF's graph
        # optimiser fails in predict ("scale must be 1D tensor"); eager runs it.
        print(f"predict failed ({str(e).splitlines()[0][:60]}), calling eagerly",
              file=sys.stderr)
        EAGER_FALLBACK.append(model.name)
        preds = model(arrays)
        preds = [np.asarray(p) for p in preds] if isinstance(preds, (list, tuple)) else preds
    preds = preds if isinstance(preds, list) else [preds]
    return [np.asarray(p) for p in preds]


def add_case(name, fn, feeds, build, *, args, kw_arrays=None, kwargs=None, weights=None,
             k3=True, tk=True, k3_kwargs=None, tk_kwargs=None, extra_arrays=None):
    """Run ``build`` in each generation asked for and record the case.

    ``feeds`` are the model inputs; ``args``/``kw_arrays`` say how the stored arrays map
    to the function's parameters; ``extra_arrays`` are stored inputs that are not model
    feeds (weights, masks passed as arrays)."""
    spec = {
        "fn": fn,
        "args": args,
        "kw_arrays": kw_arrays or {},
        "kwargs": kwargs or {},
        "weights": weights,
    }
    for fname, arr, mask in feeds:
        STORE[f"{name}/in/{fname}"] = arr
        if mask is not None:
            STORE[f"{name}/in/{fname}_mask"] = mask
    for key, arr in (extra_arrays or {}).items():
        STORE[f"{name}/in/{key}"] = np.asarray(arr)
    for mod, wanted, extra in ((keras, k3, k3_kwargs), (tf_keras, tk, tk_kwargs)):
        if not wanted:
            continue
        n_fallback = len(EAGER_FALLBACK)
        outs = run_model(mod, feeds, build)
        if len(EAGER_FALLBACK) > n_fallback:
            spec.setdefault("eager_only", []).append(GEN[mod])
        for i, o in enumerate(outs):
            STORE[f"{name}/{GEN[mod]}/{i}"] = o
        spec[GEN[mod]] = {"kwargs": extra or {}, "n_out": len(outs)}
    CASES[name] = spec


# ----------------------------------------------------------------------------- attention

N, TQ, TV, D = 3, 4, 6, 5


def attention_cases():
    q, v, k = f32(N, TQ, D), f32(N, TV, D), f32(N, TV, D)
    qm = lengths_mask([4, 2, 3], TQ)
    vm = lengths_mask([6, 3, 5], TV)
    vm_empty = vm.copy()
    vm_empty[1] = False  # a sample whose every value step is masked

    def att(layer_kw, weights, *, key=False, causal=False, scores=False):
        def build(mod, t):
            layer = mod.layers.Attention(**layer_kw)
            ins = [t["query"], t["value"]] + ([t["key"]] if key else [])
            out = layer(ins, use_causal_mask=causal, return_attention_scores=scores)
            if weights:
                layer.set_weights([np.asarray(w, np.float32) for w in weights])
            return out
        return build

    def feeds(qmask, vmask, key=False):
        f = [("query", q, qmask), ("value", v, vmask)]
        return f + ([("key", k, vmask)] if key else [])

    def spec_arrays(key, qmask, vmask):
        kw = {}
        if qmask is not None:
            kw["query_mask"] = "query_mask"
        if vmask is not None:
            kw["value_mask"] = "value_mask"
        return ["query", "value"] + (["key"] if key else []), kw

    for name, layer_kw, weights, kwargs, key, causal, scores, qmask, vmask in [
        ("att_dot_plain", {}, [], {}, False, False, True, None, None),
        ("att_dot_scale_masks", {"use_scale": True}, [0.7],
         {"use_scale": True, "scale": 0.7}, False, False, True, qm, vm),
        ("att_dot_key_causal", {}, [], {}, True, True, True, None, vm),
        ("att_dot_causal_qmask", {"use_scale": True}, [1.3],
         {"use_scale": True, "scale": 1.3}, False, True, False, qm, None),
        ("att_dot_empty_value", {}, [], {}, False, False, True, qm, vm_empty),
        ("att_concat_scale", {"use_scale": True, "score_mode": "concat"}, [0.8, 1.7],
         {"use_scale": True, "scale": 0.8, "score_mode": "concat",
          "concat_score_weight": 1.7}, True, False, True, qm, vm),
        ("att_concat_noscale_causal", {"score_mode": "concat"}, [0.6],
         {"score_mode": "concat", "concat_score_weight": 0.6}, False, True, True, None, vm),
    ]:
        args, kw_arrays = spec_arrays(key, qmask, vmask)
        kwargs = dict(kwargs, causal=causal, return_scores=scores)
        extra = {n: m for n, m in (("query_mask", qmask), ("value_mask", vmask))
                 if m is not None}
        add_case(name, "attention.dot_attention", feeds(qmask, vmask, key),
                 att(layer_kw, weights, key=key, causal=causal, scores=scores),
                 args=args, kw_arrays=kw_arrays, kwargs=kwargs, extra_arrays=extra)

    scale_vec = f32(D)

    def add_att(use_scale, *, key=False, causal=False, scores=False):
        def build(mod, t):
            layer = mod.layers.AdditiveAttention(use_scale=use_scale)
            ins = [t["query"], t["value"]] + ([t["key"]] if key else [])
            out = layer(ins, use_causal_mask=causal, return_attention_scores=scores)
            if use_scale:
                layer.set_weights([scale_vec])
            return out
        return build

    for name, use_scale, key, causal, scores, qmask, vmask in [
        ("add_scale_masks_key", True, True, False, True, qm, vm),
        ("add_noscale_causal", False, False, True, True, None, vm),
        ("add_scale_plain", True, False, False, False, None, None),
    ]:
        args, kw_arrays = spec_arrays(key, qmask, vmask)
        extra = {}
        if qmask is not None:
            extra["query_mask"] = qmask
        if vmask is not None:
            extra["value_mask"] = vmask
        if use_scale:
            extra["scale"] = scale_vec
            kw_arrays["scale"] = "scale"
        add_case(name, "attention.additive_attention", feeds(qmask, vmask, key),
                 add_att(use_scale, key=key, causal=causal, scores=scores),
                 args=args, kw_arrays=kw_arrays,
                 kwargs={"use_scale": use_scale, "causal": causal, "return_scores": scores},
                 extra_arrays=extra)


# ----------------------------------------------------------------------------- MHA


def mha_weights(d_q, d_k, d_v, heads, kd, vd, dout, *, bias=True, gate=False):
    w = {
        "query_kernel": f32(d_q, heads, kd, scale=0.5),
        "query_bias": f32(heads, kd, scale=0.3) if bias else None,
        "key_kernel": f32(d_k, heads, kd, scale=0.5),
        "key_bias": f32(heads, kd, scale=0.3) if bias else None,
    }
    if gate:
        w["gate_kernel"] = f32(d_q, heads, vd, scale=0.5)
        w["gate_bias"] = f32(heads, vd, scale=0.3) if bias else None
    w |= {
        "value_kernel": f32(d_v, heads, vd, scale=0.5),
        "value_bias": f32(heads, vd, scale=0.3) if bias else None,
        "output_kernel": f32(heads, vd, *dout, scale=0.5),
        "output_bias": f32(*dout, scale=0.3) if bias else None,
    }
    return w


def mha_cases():
    q, v, k = f32(N, TQ, D, scale=1.5), f32(N, TV, D, scale=1.5), f32(N, TV, 3, scale=1.5)
    qm = lengths_mask([4, 2, 3], TQ)
    vm = lengths_mask([6, 3, 5], TV)
    km = lengths_mask([5, 4, 6], TV)

    def mha_case(name, layer_kw, w, *, feeds, key=False, causal=False, scores=False,
                 k3=True, tk=True, extra_kwargs=None):
        order = [n for n in ("query_kernel", "query_bias", "key_kernel", "key_bias",
                             "gate_kernel", "gate_bias", "value_kernel", "value_bias",
                             "output_kernel", "output_bias") if w.get(n) is not None]

        def build(mod, t):
            layer = mod.layers.MultiHeadAttention(**layer_kw)
            kwargs = {"return_attention_scores": scores}
            if causal:
                kwargs["use_causal_mask"] = True
            if key:
                kwargs["key"] = t["key"]
            out = layer(t["query"], t["value"], **kwargs)
            layer.set_weights([w[n] for n in order])
            return out

        masks = {f: m for f, _, m in feeds if m is not None}
        kw_arrays = {f"{f}_mask": f"{f}_mask" for f in masks}
        args = ["query", "value"] + (["key"] if key else [])
        extra = {f"w/{n}": a for n, a in w.items() if a is not None}
        spec_kwargs = {"num_heads": layer_kw["num_heads"], "key_dim": layer_kw["key_dim"],
                       "causal": causal, "return_scores": scores,
                       "attention_axes": layer_kw.get("attention_axes"),
                       "dropout": layer_kw.get("dropout", 0.0),
                       "sliding_window": layer_kw.get("sliding_window")}
        spec_kwargs |= extra_kwargs or {}
        add_case(name, "attention.multi_head_attention", feeds, build, args=args,
                 kw_arrays=kw_arrays, kwargs=spec_kwargs,
                 weights={n: (f"w/{n}" if w[n] is not None else None) for n in w},
                 k3=k3, tk=tk, tk_kwargs={"keras_major": 2}, extra_arrays=extra)

    base = dict(num_heads=2, key_dim=3)
    w1 = mha_weights(D, D, D, 2, 3, 3, (D,))
    mha_case("mha_plain", base, w1, feeds=[("query", q, None), ("value", v, None)])
    mha_case("mha_masks_fused", base, w1, feeds=[("query", q, qm), ("value", v, vm)])
    mha_case("mha_masks_scores", base, w1, feeds=[("query", q, qm), ("value", v, vm)],
             scores=True)
    mha_case("mha_causal_self", base, w1, feeds=[("query", q, qm), ("value", q, qm)],
             causal=True, scores=True)
    mha_case("mha_causal_only", base, w1, feeds=[("query", q, None), ("value", q, None)],
             causal=True)
    w2 = mha_weights(D, 3, D, 3, 2, 4, (6,), bias=False)
    mha_case("mha_key_nobias_outshape",
             dict(num_heads=3, key_dim=2, value_dim=4, use_bias=False, output_shape=6), w2,
             feeds=[("query", q, qm), ("value", v, vm), ("key", k, km)], key=True,
             causal=True)
    mha_case("mha_key_nobias_outshape_scores",
             dict(num_heads=3, key_dim=2, value_dim=4, use_bias=False, output_shape=6), w2,
             feeds=[("query", q, qm), ("value", v, vm), ("key", k, km)], key=True,
             scores=True)
    w3 = mha_weights(D, D, D, 1, 4, 2, (2, 3))
    mha_case("mha_one_head_outshape2d",
             dict(num_heads=1, key_dim=4, value_dim=2, output_shape=(2, 3)), w3,
             feeds=[("query", q, None), ("value", v, vm)])
    # dropout in the config changes Keras 3's path at inference (no fused kernel)
    mha_case("mha_dropout_config", dict(base, dropout=0.25), w1,
             feeds=[("query", q, qm), ("value", v, vm)])
    # 4-D inputs, attention over one or two axes (never Keras 3's fused path)
    q4, v4 = f32(2, 3, 4, D), f32(2, 3, 5, D)
    w4 = mha_weights(D, D, D, 2, 3, 2, (D,))
    mha_case("mha_4d_axis2", dict(num_heads=2, key_dim=3, value_dim=2, attention_axes=(2,)),
             w4, feeds=[("query", q4, None), ("value", v4, None)], scores=True)
    v4b = f32(2, 2, 5, D)
    mha_case("mha_4d_axes12",
             dict(num_heads=2, key_dim=3, value_dim=2, attention_axes=(1, 2)), w4,
             feeds=[("query", q4, None), ("value", v4b, None)], scores=True)
    # Keras 3 only: use_gate, sliding_window
    w5 = mha_weights(D, D, D, 2, 3, 3, (D,), gate=True)
    mha_case("mha_gate", dict(base, use_gate=True), w5,
             feeds=[("query", q, qm), ("value", v, vm)], tk=False)
    mha_case("mha_sliding_causal", dict(base, sliding_window=2), w1,
             feeds=[("query", q, None), ("value", q, None)], causal=True, tk=False)
    mha_case("mha_sliding_scores", dict(base, sliding_window=3), w1,
             feeds=[("query", q, qm), ("value", v, vm)], scores=True, tk=False)


# ----------------------------------------------------------------------------- norm


def norm_cases():
    x3 = f32(4, 5, 6, scale=2.0) + 0.5
    x2 = f32(7, 6, scale=3.0) - 1.0

    def stats(n):
        return (f32(n), f32(n), f32(n), (rng.rand(n) * 2 + 0.2).astype(np.float32))

    for name, x, axis, center, scale, eps in [
        ("bn_3d_full", x3, -1, True, True, 1e-3),
        ("bn_3d_nocenter", x3, -1, False, True, 1e-3),
        ("bn_3d_noscale", x3, -1, True, False, 1e-5),
        ("bn_3d_bare", x3, -1, False, False, 1e-3),
        ("bn_3d_axis1", x3, 1, True, True, 1e-3),
        ("bn_2d", x2, -1, True, True, 0.01),
    ]:
        n = x.shape[axis]
        gamma, beta, mean, var = stats(n)
        weights = ([gamma] if scale else []) + ([beta] if center else []) + [mean, var]

        def build(mod, t, axis=axis, center=center, scale=scale, eps=eps, weights=weights):
            layer = mod.layers.BatchNormalization(axis=axis, center=center, scale=scale,
                                                  epsilon=eps)
            out = layer(t["x"])
            layer.set_weights(weights)
            return out

        extra = {"moving_mean": mean, "moving_variance": var}
        kw_arrays = {"moving_mean": "moving_mean", "moving_variance": "moving_variance"}
        if scale:
            extra["gamma"] = gamma
            kw_arrays["gamma"] = "gamma"
        if center:
            extra["beta"] = beta
            kw_arrays["beta"] = "beta"
        kwargs = {"axis": axis, "epsilon": eps}
        if not scale:
            kwargs["gamma"] = None
        if not center:
            kwargs["beta"] = None
        add_case(name, "norm.batch_norm", [("x", x, None)], build, args=["x"],
                 kw_arrays=kw_arrays, kwargs=kwargs, extra_arrays=extra)

    x_off = f32(4, 5, 6) + 3.0  # |mean|/std ~ 3; at ~20 float32 rounding alone exceeds 1e-6
    for name, x, axis, center, scale, eps, rms in [
        ("ln_last", x3, -1, True, True, 1e-3, False),          # tf_keras: fused
        ("ln_last_eps_small", x3, -1, True, True, 1e-6, False),  # tf_keras: unfused
        ("ln_axes12", x3, [1, 2], True, True, 1e-3, False),    # tf_keras: fused
        ("ln_axis1", x3, 1, True, True, 1e-3, False),          # tf_keras: unfused
        ("ln_bare", x3, -1, False, False, 1e-3, False),
        ("ln_nocenter", x2, -1, False, True, 1e-3, False),
        ("ln_offset", x_off, -1, True, True, 1e-3, False),
        ("ln_rms", x3, -1, True, True, 1e-3, True),            # Keras 3 only
    ]:
        ax = [axis] if isinstance(axis, int) else axis
        shape = tuple(x.shape[a] for a in sorted(ax))
        gamma = f32(*shape) + 1.0
        beta = f32(*shape)
        has_beta = center and not rms
        weights = ([gamma] if (scale or rms) else []) + ([beta] if has_beta else [])

        def build(mod, t, axis=axis, center=center, scale=scale, eps=eps, rms=rms,
                  weights=weights):
            kw = {"rms_scaling": True} if rms else {}
            layer = mod.layers.LayerNormalization(axis=axis, center=center, scale=scale,
                                                  epsilon=eps, **kw)
            out = layer(t["x"])
            if weights:
                layer.set_weights(weights)
            return out

        extra, kw_arrays = {}, {}
        kwargs = {"axes": axis, "epsilon": eps, "rms_scaling": rms}
        if scale or rms:
            extra["gamma"] = gamma
            kw_arrays["gamma"] = "gamma"
        else:
            kwargs["gamma"] = None
        if has_beta:
            extra["beta"] = beta
            kw_arrays["beta"] = "beta"
        else:
            kwargs["beta"] = None
        add_case(name, "norm.layer_norm", [("x", x, None)], build, args=["x"],
                 kw_arrays=kw_arrays, kwargs=kwargs, extra_arrays=extra, tk=not rms)


# ----------------------------------------------------------------------------- activations


def activation_cases():
    x = f32(3, 5, 4, scale=2.0)
    x[0, 0, :3] = [0.0, 0.5, 2.0]  # exactly the threshold / max values used below

    def simple(name, fn, make, kwargs, args=("x",), extra=None, x_=x, tk=True):
        def build(mod, t):
            layer = make(mod)
            out = layer(t["x"])
            if extra is not None:
                layer.set_weights(extra)
            return out
        add_case(name, fn, [("x", x_, None)], build, args=list(args), kwargs=kwargs, tk=tk)

    for name, kw in [
        ("relu_default", {}),
        ("relu_max", {"max_value": 1.5}),
        ("relu_max6", {"max_value": 6.0}),
        ("relu_slope_threshold", {"negative_slope": 0.2, "threshold": 0.5}),
        ("relu_slope_max", {"negative_slope": 0.1, "max_value": 2.0}),
        ("relu_threshold_max", {"threshold": 0.5, "max_value": 1.0}),
        ("relu_all", {"negative_slope": 0.3, "threshold": 0.5, "max_value": 2.0}),
        ("relu_slope_only", {"negative_slope": 0.25}),
    ]:
        simple(name, "activation_layers.relu", lambda mod, kw=kw: mod.layers.ReLU(**kw), kw)
    simple("leaky_default", "activation_layers.leaky_relu",
           lambda mod: mod.layers.LeakyReLU(), {})
    simple("leaky_005", "activation_layers.leaky_relu",
           lambda mod: (mod.layers.LeakyReLU(negative_slope=0.05) if mod is keras
                        else mod.layers.LeakyReLU(alpha=0.05)), {"alpha": 0.05})
    simple("elu_default", "activation_layers.elu", lambda mod: mod.layers.ELU(), {})
    simple("elu_05", "activation_layers.elu", lambda mod: mod.layers.ELU(alpha=0.5),
           {"alpha": 0.5})
    for name, shared, shape in [("prelu_full", None, (5, 4)), ("prelu_shared1", [1], (1, 4)),
                                ("prelu_shared12", [1, 2], (1, 1))]:
        alpha = f32(*shape, scale=0.5)

        def build(mod, t, shared=shared, alpha=alpha):
            layer = mod.layers.PReLU(shared_axes=shared)
            out = layer(t["x"])
            layer.set_weights([alpha])
            return out

        add_case(name, "activation_layers.prelu", [("x", x, None)], build, args=["x"],
                 kw_arrays={"alpha": "alpha"}, kwargs={"shared_axes": shared},
                 extra_arrays={"alpha": alpha})

    # Softmax: plain, over two axes, with an explicit mask (one all-False row)
    xs = f32(3, 4, 5, scale=2.0)
    simple("softmax_last", "activation_layers.softmax", lambda mod: mod.layers.Softmax(),
           {"axis": -1}, x_=xs)
    simple("softmax_axis1", "activation_layers.softmax",
           lambda mod: mod.layers.Softmax(axis=1), {"axis": 1}, x_=xs)
    simple("softmax_axes12", "activation_layers.softmax",
           lambda mod: mod.layers.Softmax(axis=[1, 2]), {"axis": [1, 2]}, x_=xs)
    m = rng.rand(3, 4, 5) > 0.3
    m[1, 2, :] = False
    for name, axis in [("softmax_mask_last", -1), ("softmax_mask_axes12", [1, 2])]:
        def build(mod, t, axis=axis):
            return mod.layers.Softmax(axis=axis)(t["x"], mask=t["m"])
        add_case(name, "activation_layers.softmax", [("x", xs, None), ("m", m, None)], build,
                 args=["x"], kw_arrays={"mask": "m"}, kwargs={"axis": axis},
                 tk_kwargs={"keras_major": 2})


# ----------------------------------------------------------------------------- merges


def merge_cases():
    a, b, c = f32(3, 4, 5), f32(3, 4, 5), f32(3, 4, 5)
    v = f32(3, 5)
    ma = lengths_mask([4, 2, 3], 4)
    mb = lengths_mask([3, 4, 1], 4)

    def merge(name, cls, feeds, kwargs=None, layer_kw=None, tk=True, fn=None):
        names = [f for f, _, _ in feeds]

        def build(mod, t):
            return getattr(mod.layers, cls)(**(layer_kw or {}))([t[n] for n in names])

        masks = [f"{f}_mask" if m is not None else None for f, _, m in feeds]
        kw_arrays = {}
        spec_args = [names]
        if any(m is not None for m in masks):
            kw_arrays = {"masks": masks}
        add_case(name, fn or f"merge.{cls.lower()}", feeds, build, args=spec_args,
                 kw_arrays=kw_arrays, kwargs=kwargs or {}, tk=tk,
                 tk_kwargs={"keras_major": 2} if kw_arrays else None)

    merge("add3", "Add", [("a", a, None), ("b", b, None), ("c", c, None)])
    merge("add_ranks", "Add", [("a", a, None), ("v", v, None)])
    merge("subtract", "Subtract", [("a", a, None), ("b", b, None)])
    merge("subtract_ranks", "Subtract", [("v", v, None), ("a", a, None)])
    merge("average3", "Average", [("a", a, None), ("b", b, None), ("c", c, None)])
    merge("multiply3", "Multiply", [("a", a, None), ("b", b, None), ("c", c, None)])
    merge("maximum3", "Maximum", [("a", a, None), ("b", b, None), ("c", c, None)])
    merge("minimum2", "Minimum", [("a", a, None), ("b", b, None)])
    merge("add_masked", "Add", [("a", a, ma), ("b", b, mb)], fn="merge.add")
    # Keras 3 reads masks into the values of Multiply / Maximum / Minimum
    merge("multiply_masks2", "Multiply", [("a", a, ma), ("b", b, mb)])
    merge("multiply_mask_one", "Multiply", [("a", a, ma), ("b", b, None)])
    merge("multiply_masks3", "Multiply", [("a", a, ma), ("b", b, mb), ("c", c, ma)])
    merge("maximum_masks2", "Maximum", [("a", a, ma), ("b", b, mb)])
    merge("maximum_mask_second", "Maximum", [("a", a, None), ("b", b, mb)])
    merge("minimum_mask_first", "Minimum", [("a", a, ma), ("b", b, None)])
    merge("minimum_masks3", "Minimum", [("a", a, ma), ("b", b, mb), ("c", c, mb)])
    # add_masked: Add ignores masks in its values (the function takes none)
    CASES["add_masked"]["kw_arrays"] = {}
    CASES["add_masked"]["tk"]["kwargs"] = {}

    for name, axis, feeds in [
        ("concat_last", -1, [("a", a, None), ("b", f32(3, 4, 2), None)]),
        ("concat_time", 1, [("a", a, None), ("b", f32(3, 2, 5), None)]),
    ]:
        def build(mod, t, axis=axis, feeds=feeds):
            return mod.layers.Concatenate(axis=axis)([t[f] for f, _, _ in feeds])
        add_case(name, "merge.concatenate", feeds, build, args=[[f for f, _, _ in feeds]],
                 kwargs={"axis": axis})

    x3, y3, z3 = f32(3, 4, 5), f32(3, 6, 5), f32(3, 5, 6)
    x2, y2 = f32(3, 5), f32(3, 5)
    for name, xa, ya, axes, normalize in [
        ("dot_3d_axes2", x3, y3, 2, False),
        ("dot_3d_neg", x3, y3, -1, False),
        ("dot_3d_pair", x3, z3, (2, 1), False),
        ("dot_3d_axis1", x3, f32(3, 4, 2), 1, False),
        ("dot_2d", x2, y2, 1, False),
        ("dot_2d_3d", x2, y3, (1, 2), False),
        ("dot_3d_2d", x3, x2, (2, 1), False),
        ("dot_normalize", x3, y3, 2, True),
        ("dot_normalize_2d", x2, y2, -1, True),
    ]:
        def build(mod, t, axes=axes, normalize=normalize):
            return mod.layers.Dot(axes=axes, normalize=normalize)([t["x"], t["y"]])
        add_case(name, "merge.dot", [("x", xa, None), ("y", ya, None)], build,
                 args=["x", "y"],
                 kwargs={"axes": list(axes) if isinstance(axes, tuple) else axes,
                         "normalize": normalize},
                 tk_kwargs={"keras_major": 2})


# ----------------------------------------------------------------------------- sequence


def sequence_cases():
    x = f32(3, 6, 4)
    x4 = f32(2, 3, 4, 5)

    def simple(name, fn, x_, make, kwargs, tk=True):
        def build(mod, t):
            return make(mod)(t["x"])
        add_case(name, fn, [("x", x_, None)], build, args=["x"], kwargs=kwargs, tk=tk)

    simple("repeat_vector", "sequence.repeat_vector", f32(3, 4),
           lambda mod: mod.layers.RepeatVector(3), {"n": 3})
    simple("flatten_3d", "sequence.flatten", x, lambda mod: mod.layers.Flatten(), {})
    simple("flatten_4d_cf", "sequence.flatten", x4,
           lambda mod: mod.layers.Flatten(data_format="channels_first"),
           {"data_format": "channels_first"})
    simple("reshape_neg", "sequence.reshape", x, lambda mod: mod.layers.Reshape((-1, 2)),
           {"target_shape": [-1, 2]})
    simple("reshape_3", "sequence.reshape", x, lambda mod: mod.layers.Reshape((2, 3, 4)),
           {"target_shape": [2, 3, 4]})
    simple("permute_21", "sequence.permute", x, lambda mod: mod.layers.Permute((2, 1)),
           {"dims": [2, 1]})
    simple("permute_312", "sequence.permute", x4, lambda mod: mod.layers.Permute((3, 1, 2)),
           {"dims": [3, 1, 2]})
    simple("crop_1_2", "sequence.cropping1d", x, lambda mod: mod.layers.Cropping1D((1, 2)),
           {"cropping": [1, 2]})
    simple("crop_0_1", "sequence.cropping1d", x, lambda mod: mod.layers.Cropping1D((0, 1)),
           {"cropping": [0, 1]})
    simple("crop_int", "sequence.cropping1d", x, lambda mod: mod.layers.Cropping1D(2),
           {"cropping": 2})
    simple("pad_2_1", "sequence.zero_padding1d", x,
           lambda mod: mod.layers.ZeroPadding1D((2, 1)), {"padding": [2, 1]})
    simple("pad_cf", "sequence.zero_padding1d", x,
           lambda mod: mod.layers.ZeroPadding1D((1, 3), data_format="channels_first"),
           {"padding": [1, 3], "data_format": "channels_first"}, tk=False)
    simple("upsample_3", "sequence.upsampling1d", x, lambda mod: mod.layers.UpSampling1D(3),
           {"size": 3})


# ----------------------------------------------------------------------------- masks


def eager_mask(mod, t):
    m = k3_backend.get_keras_mask(t) if mod is keras else getattr(t, "_keras_mask", None)
    return None if m is None else np.asarray(m)


def masked_tensor(mod, x, mask):
    """An eager tensor carrying ``mask``, via the framework's own mask attribute."""
    t = tf.identity(tf.constant(x))
    if mod is keras:
        k3_backend.set_keras_mask(t, tf.constant(mask))
    else:
        t._keras_mask = tf.constant(mask)
    return t


MERGE_MASKS: dict[str, dict] = {}


def merge_mask_cases():
    a, b = f32(3, 4, 5), f32(3, 4, 5)
    ma = lengths_mask([4, 2, 3], 4)
    mb = lengths_mask([3, 4, 1], 4)
    bt = f32(3, 2, 5)
    mt = lengths_mask([1, 2, 0], 2)
    for name, kind, axis, items in [
        ("add_both", "Add", None, [(a, ma), (b, mb)]),
        ("add_one", "Add", None, [(a, ma), (b, None)]),
        ("add_none", "Add", None, [(a, None), (b, None)]),
        ("multiply_both", "Multiply", None, [(a, ma), (b, mb)]),
        ("maximum_both", "Maximum", None, [(a, ma), (b, mb)]),
        ("minimum_one", "Minimum", None, [(a, None), (b, mb)]),
        ("average_both", "Average", None, [(a, ma), (b, mb)]),
        ("subtract_both", "Subtract", None, [(a, ma), (b, mb)]),
        ("concat_last_both", "Concatenate", -1, [(a, ma), (b, mb)]),
        ("concat_last_one", "Concatenate", -1, [(a, ma), (b, None)]),
        ("concat_time_both", "Concatenate", 1, [(a, ma), (bt, mt)]),
        ("concat_time_one", "Concatenate", 1, [(a, ma), (bt, None)]),
        ("dot_both", "Dot", None, [(a, ma), (b, mb)]),
    ]:
        entry = {"kind": kind, "axis": axis, "arrays": [], "masks": []}
        for i, (arr, m) in enumerate(items):
            STORE[f"mm/{name}/x{i}"] = arr
            entry["arrays"].append(f"mm/{name}/x{i}")
            if m is None:
                entry["masks"].append(None)
            else:
                STORE[f"mm/{name}/m{i}"] = m
                entry["masks"].append(f"mm/{name}/m{i}")
        for mod in (keras, tf_keras):
            gen = GEN[mod]
            ts = [tf.identity(tf.constant(arr)) if m is None else masked_tensor(mod, arr, m)
                  for arr, m in items]
            if kind == "Concatenate":
                layer = mod.layers.Concatenate(axis=axis)
            elif kind == "Dot":
                layer = mod.layers.Dot(axes=2)
            else:
                layer = getattr(mod.layers, kind)()
            try:
                out = layer(ts)
                mk = eager_mask(mod, out)
            except Exception as e:  # tf_keras: concat of (N,T,1) with (N,T,D) on time
                entry[gen] = "error: " + type(e).__name__
                continue
            if mk is None:
                entry[gen] = None
            else:
                STORE[f"mm/{name}/{gen}"] = mk
                entry[gen] = f"mm/{name}/{gen}"
        MERGE_MASKS[name] = entry


EVIDENCE: dict[str, dict] = {}


def mask_rule(mod, make, x, mask, *, first_only=True):
    """Run ``make(mod)`` on ``x`` eagerly with and without ``mask``; classify."""
    layer = make(mod)
    try:
        out_m = layer(masked_tensor(mod, x, mask))
        out_plain = layer(tf.constant(x))
    except Exception as e:
        return "error: " + type(e).__name__ + ": " + str(e).splitlines()[0][:80]
    mk = eager_mask(mod, out_m)
    if mk is None:
        same = np.allclose(np.asarray(out_m), np.asarray(out_plain), atol=1e-6)
        return "drop" if same else "consume"
    if mk.shape == mask.shape and np.array_equal(mk, mask):
        return "pass"
    return "transform"


def mask_evidence():
    x = f32(3, 6, 4)
    mask = lengths_mask([6, 3, 4], 6)
    mask[0, 1] = False  # not a suffix: a position-dependent transform would show
    ids = np.array([[3, 1, 2, 0, 0, 0], [1, 0, 3, 4, 0, 2], [5, 5, 5, 5, 5, 5]])
    L = {}
    for name, make in [
        ("Dense", lambda mod: mod.layers.Dense(3)),
        ("Dropout", lambda mod: mod.layers.Dropout(0.5)),
        ("SpatialDropout1D", lambda mod: mod.layers.SpatialDropout1D(0.5)),
        ("GaussianNoise", lambda mod: mod.layers.GaussianNoise(0.1)),
        ("GaussianDropout", lambda mod: mod.layers.GaussianDropout(0.1)),
        ("AlphaDropout", lambda mod: mod.layers.AlphaDropout(0.1)),
        ("ActivityRegularization", lambda mod: mod.layers.ActivityRegularization()),
        ("Activation", lambda mod: mod.layers.Activation("tanh")),
        ("BatchNormalization", lambda mod: mod.layers.BatchNormalization()),
        ("LayerNormalization", lambda mod: mod.layers.LayerNormalization()),
        ("ReLU", lambda mod: mod.layers.ReLU()),
        ("LeakyReLU", lambda mod: mod.layers.LeakyReLU()),
        ("PReLU", lambda mod: mod.layers.PReLU()),
        ("ELU", lambda mod: mod.layers.ELU()),
        ("Softmax", lambda mod: mod.layers.Softmax()),
        ("Conv1D", lambda mod: mod.layers.Conv1D(3, 2, padding="same")),
        ("MaxPooling1D", lambda mod: mod.layers.MaxPooling1D(2)),
        ("AveragePooling1D", lambda mod: mod.layers.AveragePooling1D(2)),
        ("GlobalAveragePooling1D", lambda mod: mod.layers.GlobalAveragePooling1D()),
        ("GlobalMaxPooling1D", lambda mod: mod.layers.GlobalMaxPooling1D()),
        ("Flatten", lambda mod: mod.layers.Flatten()),
        ("Reshape", lambda mod: mod.layers.Reshape((12, 2))),
        ("Permute", lambda mod: mod.layers.Permute((2, 1))),
        ("Cropping1D", lambda mod: mod.layers.Cropping1D((1, 2))),
        ("ZeroPadding1D", lambda mod: mod.layers.ZeroPadding1D((1, 2))),
        ("UpSampling1D", lambda mod: mod.layers.UpSampling1D(2)),
        ("TimeDistributed", lambda mod: mod.layers.TimeDistributed(mod.layers.Dense(3))),
        ("Masking", lambda mod: mod.layers.Masking(mask_value=0.0)),
    ]:
        L[name] = {GEN[mod]: mask_rule(mod, make, x, mask) for mod in (keras, tf_keras)}
    # RepeatVector takes (N, D): give it a (N,) mask as a Masking layer on 2-D would
    x2 = x[:, 0]
    m2 = np.array([True, False, True])
    L["RepeatVector"] = {GEN[mod]: mask_rule(mod, lambda mod: mod.layers.RepeatVector(2),
                                             x2, m2) for mod in (keras, tf_keras)}
    # Softmax with the (N, T) mask of a (N, T, C) input: broadcast error in both, so
    # also check it with a mask of the input's own shape
    full = rng.rand(3, 6, 4) > 0.3
    for mod in (keras, tf_keras):
        L["Softmax"][GEN[mod] + "_full_mask"] = mask_rule(
            mod, lambda mod: mod.layers.Softmax(), x, full)
    # Masking ignores the incoming mask: its own is any(x != 0)
    xz = x.copy()
    xz[1, 4:] = 0.0
    for mod in (keras, tf_keras):
        out = mod.layers.Masking(0.0)(masked_tensor(mod, xz, mask))
        L["Masking"][GEN[mod] + "_is_own"] = bool(
            np.array_equal(eager_mask(mod, out), np.any(xz != 0, axis=-1)))
    # Embedding: ids != 0 with mask_zero, else none
    for mod in (keras, tf_keras):
        for mz in (True, False):
            out = mod.layers.Embedding(6, 3, mask_zero=mz)(tf.constant(ids))
            mk = eager_mask(mod, out)
            L.setdefault("Embedding", {})[f"{GEN[mod]}_mask_zero_{mz}"] = (
                None if mk is None else bool(np.array_equal(mk, ids != 0)))
        L["Embedding"][GEN[mod]] = "transform"
    # Attention layers: output mask is the query's
    q, v = f32(3, 4, 5), f32(3, 6, 5)
    qm = lengths_mask([4, 2, 3], 4)
    vm = lengths_mask([6, 3, 5], 6)
    for name in ("Attention", "AdditiveAttention", "MultiHeadAttention"):
        for mod in (keras, tf_keras):
            qt, vt = masked_tensor(mod, q, qm), masked_tensor(mod, v, vm)
            if name == "MultiHeadAttention":
                out = mod.layers.MultiHeadAttention(2, 3)(qt, vt)
            else:
                out = getattr(mod.layers, name)()([qt, vt])
            mk = eager_mask(mod, out)
            rule = ("query" if mk is not None and np.array_equal(mk, qm)
                    else "drop" if mk is None else "transform")
            L.setdefault(name, {})[GEN[mod]] = rule
            # with only the value masked the output has no mask
            out2 = (mod.layers.MultiHeadAttention(2, 3)(tf.constant(q), vt)
                    if name == "MultiHeadAttention"
                    else getattr(mod.layers, name)()([tf.constant(q), vt]))
            L[name][GEN[mod] + "_value_only"] = eager_mask(mod, out2) is not None
    # GlobalAveragePooling1D consumes: the masked mean
    for mod in (keras, tf_keras):
        out = np.asarray(mod.layers.GlobalAveragePooling1D()(masked_tensor(mod, x, mask)))
        ref = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        L["GlobalAveragePooling1D"][GEN[mod] + "_masked_mean"] = bool(
            np.allclose(out, ref, atol=1e-6))
    for kind in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
                 "Concatenate", "Dot"):
        L[kind] = {"k3": "merge", "tk": "merge"}
    EVIDENCE.update(L)


# ----------------------------------------------------------------------------- main


def main():
    print("keras", keras.__version__, "tf_keras", tf_keras.__version__, "tf", tf.__version__,
          file=sys.stderr)
    attention_cases()
    mha_cases()
    norm_cases()
    activation_cases()
    merge_cases()
    sequence_cases()
    merge_mask_cases()
    mask_evidence()
    STORE["__cases__"] = np.array(json.dumps(CASES, sort_keys=True))
    STORE["__merge_masks__"] = np.array(json.dumps(MERGE_MASKS, sort_keys=True))
    STORE["__mask_evidence__"] = np.array(json.dumps(EVIDENCE, sort_keys=True))
    STORE["__versions__"] = np.array(json.dumps({
        "keras": keras.__version__, "tf_keras": tf_keras.__version__,
        "tensorflow": tf.__version__}))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **STORE)
    print(f"wrote {OUT} ({len(CASES)} cases, {len(MERGE_MASKS)} merge masks)", file=sys.stderr)
    print(json.dumps(EVIDENCE, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
