#!/usr/bin/env python
"""Keras's own outputs for the third-party model files in ``/work/shared/wild-models``.

Developer-only, like ``make_sample_models.py``: it runs ONLY in the reference venv
(tensorflow-cpu 2.21.0, Keras 3.15.1, tf_keras 2.21.0, h5py, numpy); neither the package
nor the tests import it. The tests read what it writes::

    /work/kenv/bin/python scripts/make_wild_refs.py                    # every case
    /work/kenv/bin/python scripts/make_wild_refs.py --only CASE [CASE ...]
    /work/kenv/bin/python scripts/make_wild_refs.py --wild DIR --out DIR

``--only`` regenerates the named cases and keeps the other entries of an existing
``index.json``. Output (default ``tests/wild_refs/``): one ``<case>.npz`` per case that Keras
could run, ``index.json`` (one entry per case) and ``README.md`` (regenerated each run).

Per case the reference comes from the Keras that can read the file, never from anything
else:

* Keras 3 files (``.keras``, and ``.h5`` whose ``keras_version`` is 3.x):
  ``keras.saving.load_model(path, compile=False)`` (default ``safe_mode``; nothing that would
  run code stored in a file is ever enabled).
* Keras 2 / tf.keras files: ``tf_keras.models.load_model(path, compile=False)``; when the
  stored config leaves a default implicit that changed since the writing Keras (GRU without
  ``reset_after``; LSTM/GRU without ``recurrent_activation``), the model is rebuilt in tf_keras
  from the config with that default written out, and the weights are read by tf_keras's
  own legacy loader (``load_weights_from_hdf5_group``), which is what ``load_model`` does.
* Keras 1 files (their ``model_weights`` group has no ``keras_version``): the config is
  translated to Keras 2 form (``output_dim``->``units``, ``inner_activation``->
  ``recurrent_activation``, ``dropout_W/U``->``dropout``/``recurrent_dropout``, ``p``->``rate``,
  ``bias``->``use_bias``, initializers/regularizers/constraints/``consume_less``/
  ``dim_ordering``/``input_dtype`` dropped, ``input_dim``/``input_length`` of a first layer ->
  ``batch_input_shape``, GRU ``reset_after=False``, ``Merge`` -> ``Concatenate``/``Add``/...),
  built in tf_keras, and the weights loaded with tf_keras's legacy loader, which converts
  Keras 1 weights itself (it reads the missing ``keras_version`` as "1" and fuses the
  per-gate LSTM/GRU arrays).
* Weights-only files: the model is built in tf_keras from the case's ``config.json`` (a
  ``_inferred`` case has none: the sibling ``_config`` case's ``config.json`` gives the real
  architecture) and the weights are read with the same legacy loader.

tf_keras computes ``hard_sigmoid`` as ``clip(0.2 x + 0.5, 0, 1)`` like Keras 1/2 and
tf.keras; Keras 3 computes ``relu6(x + 3) / 6``. References for Keras 1/2 files therefore
come from tf_keras, for Keras 3 files from Keras 3.

Inputs, per case, from ``np.random.default_rng(zlib.crc32(case))``: N=3 samples; float
inputs standard normal float32 (a ``Masking`` layer fed by the input: sample 1 ends in
``max(1, T // 3)`` all-``mask_value`` steps); Embedding inputs int32 ids in ``[1, V)`` (with
``mask_zero``: sample 1 ends in ``max(1, T // 3)`` zeros); a ``None`` time dimension is 7.
Models with a fixed batch size B are run in batches of exactly B (the last one filled up
by repeating its last sample; the extra rows are dropped); stateful models get
``reset_states()`` before every batch, so with B=1 each sample starts from zero states.

npz keys: ``x`` or ``x/0``, ``x/1``, ... (model input order), ``y`` or ``y/0``, ...
(model output order, float32), ``state/<layer name>`` (float32) = the full output sequence of
each recurrent layer (SimpleRNN/LSTM/GRU/Bidirectional) as Keras returns it with
``return_sequences=True`` (the layer's own output when it already returns sequences,
else a copy of the layer with ``return_sequences=True``, ``return_state=False`` and the same
weights, fed by the same graph, masks included; a ``go_backwards`` layer's sequence is in
Keras's processing order).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["KERAS_BACKEND"] = "tensorflow"

import argparse
import copy
import inspect
import json
import re
import traceback
import warnings
import zipfile
import zlib

import h5py
import numpy as np

warnings.filterwarnings("ignore")

import keras
import tensorflow as tf
import tf_keras
from tf_keras.src.saving.legacy import hdf5_format

tf.get_logger().setLevel("ERROR")
try:
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(2)
except RuntimeError:
    pass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WILD = "/work/shared/wild-models"
OUT = os.path.join(ROOT, "tests", "wild_refs")
N = 3
T_DEFAULT = 7
LONG_T = 1000  # a mask_zero Embedding input longer than this is padded in every sample
LONG_KEEP = (64, 32, 48)
RECURRENT = ("SimpleRNN", "LSTM", "GRU", "Bidirectional")
CODE_CLASSES = ("Lambda", "TFOpLambda", "SlicingOpLambda")


def log(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------------------
# Manifest and case files
# --------------------------------------------------------------------------------------


def read_manifest(wild):
    """``{folder: {"repo", "path", "commit", "keras", "kind", "files"}}`` from MANIFEST.md."""
    out = {}
    with open(os.path.join(wild, "MANIFEST.md"), encoding="utf8") as f:
        for line in f:
            if not line.startswith("| `"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            folder, repo, path, commit, kver, kind, files = cells[:7]
            out[folder.strip("`")] = {
                "repo": repo, "path": path.strip("`"), "commit": commit, "keras": kver,
                "kind": kind, "files": re.findall(r"`([^`]+)`", files),
            }
    return out


def attr_str(attrs, key):
    v = attrs.get(key)
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf8")
    return str(v)


def h5_info(path):
    """Root ``keras_version``/``backend``, the weights group's ones, and ``model_config``."""
    with h5py.File(path, "r") as f:
        g = f.get("model_weights", f)
        mc = f.attrs.get("model_config")
        if isinstance(mc, bytes):
            mc = mc.decode("utf8")
        return {
            "keras_version": attr_str(f.attrs, "keras_version"),
            "backend": attr_str(f.attrs, "backend"),
            "weights_keras_version": attr_str(g.attrs, "keras_version"),
            "weights_backend": attr_str(g.attrs, "backend"),
            "full": "model_weights" in f,
            "model_config": json.loads(mc) if mc else None,
        }


# --------------------------------------------------------------------------------------
# Config walking / patching
# --------------------------------------------------------------------------------------


def layer_list(cfg):
    """The layer dicts of a (Sequential or Functional) model config, any Keras."""
    c = cfg.get("config", cfg) if isinstance(cfg, dict) else cfg
    if isinstance(c, list):
        return c
    if isinstance(c, dict) and isinstance(c.get("layers"), list):
        return c["layers"]
    return []


def walk_layers(cfg):
    """Every layer dict (nested models, Bidirectional / TimeDistributed inner layers)."""
    for l in layer_list(cfg):
        yield l
        c = l.get("config") or {}
        if l.get("class_name") in ("Sequential", "Model", "Functional"):
            yield from walk_layers(l)
        for k in ("layer", "backward_layer"):
            if isinstance(c.get(k), dict):
                yield c[k]
                if c[k].get("class_name") in ("Sequential", "Model", "Functional"):
                    yield from walk_layers(c[k])


def code_layers(cfg):
    return sorted({l.get("config", {}).get("name", "?") + " (" + l["class_name"] + ")"
                   for l in walk_layers(cfg) if l.get("class_name") in CODE_CLASSES})


def version_tuple(v):
    nums = re.findall(r"\d+", v or "")
    return tuple(int(n) for n in nums[:3]) if nums else None


def patch_keras2(cfg, writer_version):
    """Write out defaults that tf_keras 2.21 would fill differently from the writing Keras 2.

    Returns ``(config, [notes])``; the config is a modified deep copy (unchanged if no note).
    """
    cfg = copy.deepcopy(cfg)
    notes = []
    vt = version_tuple(writer_version)
    for l in walk_layers(cfg):
        cn, c = l.get("class_name"), l.get("config")
        if not isinstance(c, dict):
            continue
        if cn == "GRU" and "reset_after" not in c:
            c["reset_after"] = False  # GRU got reset_after in Keras 2.1.4; before: = False
            notes.append(f"{c.get('name')}: GRU config has no reset_after (Keras "
                         f"{writer_version}: GRU before the option = reset_after=False): "
                         "set reset_after=False")
        if cn in ("LSTM", "GRU") and "recurrent_activation" not in c:
            ra = "hard_sigmoid" if vt is None or vt < (2, 3) else "sigmoid"
            c["recurrent_activation"] = ra
            notes.append(f"{c.get('name')}: no recurrent_activation in config; Keras "
                         f"{writer_version} default {ra} written out")
    return cfg, notes


# ---- Keras 1 -> Keras 2 config translation ------------------------------------------

K1_DROP = {
    "init", "inner_init", "forget_bias_init", "W_regularizer", "U_regularizer",
    "b_regularizer", "activity_regularizer", "W_constraint", "U_constraint", "b_constraint",
    "consume_less", "dim_ordering", "input_dtype", "W_learning_rate_multiplier",
    "b_learning_rate_multiplier", "weights",
}
K1_RENAME_RNN = {"output_dim": "units", "inner_activation": "recurrent_activation",
                 "dropout_W": "dropout", "dropout_U": "recurrent_dropout"}
K1_MERGE = {"concat": "Concatenate", "sum": "Add", "mul": "Multiply", "ave": "Average",
            "max": "Maximum", "dot": "Dot", "cos": "Dot"}
BASE_KWARGS = {"name", "trainable", "dtype", "batch_input_shape", "input_shape", "batch_size"}


def allowed_kwargs(class_name):
    cls = getattr(tf_keras.layers, class_name)
    params = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
    return params | BASE_KWARGS


class Untranslatable(Exception):
    pass


class HoldsCode(Exception):
    pass


def translate_k1_layer(l, first=False, notes=None):
    """One Keras 1 layer dict -> a Keras 2 (tf_keras-loadable) layer dict."""
    notes = notes if notes is not None else []
    cn = l["class_name"]
    c = dict(l.get("config") or {})
    name = c.get("name")
    new_cn = cn
    if first and "batch_input_shape" not in c:
        if cn in ("LSTM", "GRU", "SimpleRNN") and c.get("input_dim"):
            c["batch_input_shape"] = [None, c.get("input_length"), c["input_dim"]]
        elif cn == "Embedding" and c.get("input_length"):
            c["batch_input_shape"] = [None, c["input_length"]]
        elif cn == "Dense" and c.get("input_dim"):
            c["batch_input_shape"] = [None, c["input_dim"]]
    for k in K1_DROP:
        c.pop(k, None)
    if cn in ("LSTM", "GRU", "SimpleRNN"):
        for a, b in K1_RENAME_RNN.items():
            if a in c:
                c[b] = c.pop(a)
        c.pop("input_dim", None)
        c.pop("input_length", None)
        if cn == "GRU":
            c["reset_after"] = False
        if "recurrent_activation" not in c and cn != "SimpleRNN":
            c["recurrent_activation"] = "hard_sigmoid"  # Keras 1 default
    elif cn == "Dense":
        if "output_dim" in c:
            c["units"] = c.pop("output_dim")
        if "bias" in c:
            c["use_bias"] = c.pop("bias")
        c.pop("input_dim", None)
    elif cn == "Embedding":
        c.pop("dropout", None)
    elif cn in ("Dropout", "SpatialDropout1D"):
        if "p" in c:
            c["rate"] = c.pop("p")
    elif cn in ("TimeDistributed", "Bidirectional"):
        c["layer"] = translate_k1_layer(c["layer"], notes=notes)
    elif cn == "Merge":
        mode = c.get("mode")
        if not isinstance(mode, str) or c.get("mode_type") == "lambda":
            raise HoldsCode(f"Keras 1 Merge layer {name} with a Python function as mode")
        if mode not in K1_MERGE:
            raise Untranslatable(f"Keras 1 Merge mode {mode!r}")
        new_cn = K1_MERGE[mode]
        nc = {"name": name, "trainable": c.get("trainable", True)}
        if mode == "concat":
            nc["axis"] = c.get("concat_axis", -1)
        elif mode in ("dot", "cos"):
            nc["axes"] = c.get("dot_axes", -1)
            nc["normalize"] = mode == "cos"
        c = nc
        notes.append(f"{name}: Keras 1 Merge(mode={mode!r}) -> {new_cn}")
    elif cn in ("Lambda",):
        raise HoldsCode(f"Lambda layer {name} (Python code in the file)")
    if not hasattr(tf_keras.layers, new_cn):
        raise Untranslatable(f"Keras 1 layer class {cn} has no tf_keras equivalent")
    ok = allowed_kwargs(new_cn)
    dropped = sorted(k for k in c if k not in ok)
    for k in dropped:
        c.pop(k)
    out = {"class_name": new_cn, "config": c}
    for k in ("name", "inbound_nodes"):
        if k in l:
            out[k] = l[k]
    return out


def translate_k1(cfg):
    """A Keras 1 model config (Sequential list / Model dict) -> a Keras 2 one + notes."""
    notes = []
    cn = cfg["class_name"]
    if cn == "Sequential":
        layers = cfg["config"] if isinstance(cfg["config"], list) else cfg["config"]["layers"]
        new = [translate_k1_layer(l, first=(i == 0), notes=notes) for i, l in enumerate(layers)]
        return {"class_name": "Sequential", "config": {"name": "sequential", "layers": new}}, notes
    if cn == "Model":
        c = dict(cfg["config"])
        c["layers"] = [translate_k1_layer(l, notes=notes) for l in c["layers"]]
        return {"class_name": "Functional", "config": c}, notes
    raise Untranslatable(f"Keras 1 model class {cn}")


def is_keras1_config(cfg):
    if str(cfg.get("keras_version", "")).startswith("1"):
        return True
    for l in walk_layers(cfg):
        c = l.get("config") or {}
        if "inner_activation" in c or "consume_less" in c or (
                l.get("class_name") in ("Dense", "LSTM", "GRU", "SimpleRNN") and "output_dim" in c):
            return True
        if l.get("class_name") == "Merge":
            return True
    return False


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


class Loaded:
    def __init__(self, model, flavour, reference_by, notes=None):
        self.model = model
        self.flavour = flavour  # "tf_keras" | "keras3"
        self.reference_by = reference_by
        self.notes = list(notes or [])


def tfk_from_config(cfg):
    return tf_keras.models.model_from_config(cfg)


def tfk_legacy_load(model, path):
    with h5py.File(path, "r") as f:
        g = f.get("model_weights", f)
        hdf5_format.load_weights_from_hdf5_group(g, model)


def load_case(case, meta, wild):
    d = os.path.join(wild, case)
    files = sorted(os.listdir(d))
    model_files = [f for f in files if f != "config.json"]
    if len(model_files) != 1:
        raise Untranslatable(f"expected one model file, found {model_files}")
    mfile = model_files[0]
    path = os.path.join(d, mfile)
    kind = meta["kind"]
    info = {"file": mfile, "config": "config.json" if "config.json" in files else None,
            "file_keras_version": None, "file_backend": None}

    if kind == "keras" or mfile.endswith(".keras"):
        with zipfile.ZipFile(path) as z:
            cfg = json.loads(z.read("config.json"))
            md = json.loads(z.read("metadata.json"))
        info["file_keras_version"] = md.get("keras_version")
        info["file_backend"] = md.get("backend") or None
        hc = code_layers(cfg)
        if hc:
            raise HoldsCode("layers holding Python code: " + ", ".join(hc))
        m = keras.saving.load_model(path, compile=False)
        return Loaded(m, "keras3", "keras.saving.load_model(compile=False)"), info

    h = h5_info(path)
    info["file_keras_version"] = h["keras_version"] or h["weights_keras_version"]
    info["file_backend"] = h["backend"] or h["weights_backend"]
    wkv = h["weights_keras_version"]  # what tf_keras's legacy loader will see
    k1_weights = wkv is None

    if kind == "full-h5":
        cfg = h["model_config"]
        hc = code_layers(cfg)
        if hc:
            raise HoldsCode("layers holding Python code: " + ", ".join(hc))
        kv = h["keras_version"] or ""
        if kv.startswith("3"):
            m = keras.saving.load_model(path, compile=False)
            return Loaded(m, "keras3", "keras.saving.load_model(compile=False) (Keras 3 legacy "
                                       "h5)"), info
        if k1_weights or is_keras1_config(cfg):
            c2, notes = translate_k1(cfg)
            m = tfk_from_config(c2)
            tfk_legacy_load(m, path)
            return Loaded(m, "tf_keras", "rebuilt in tf_keras from translated Keras 1 config + "
                          "tf_keras legacy hdf5 weight loading (load_weights_from_hdf5_group, "
                          "Keras-1 weight conversion)", notes), info
        c2, notes = patch_keras2(cfg, kv)
        if not notes:
            m = tf_keras.models.load_model(path, compile=False)
            return Loaded(m, "tf_keras", "tf_keras.models.load_model(compile=False)"), info
        m = tfk_from_config(c2)
        tfk_legacy_load(m, path)
        return Loaded(m, "tf_keras", "rebuilt in tf_keras from the file's config with Keras "
                      f"{kv} defaults written out + tf_keras legacy hdf5 weight loading "
                      "(what load_model does)", notes), info

    if kind != "weights-h5":
        raise Untranslatable(f"unknown file kind {kind!r}")
    # weights-only
    cfg_path = os.path.join(d, "config.json")
    arch_note = None
    if not os.path.exists(cfg_path):
        sib = re.sub(r"_inferred$", "_config", case)
        cand = os.path.join(wild, sib, "config.json")
        if sib == case or not os.path.exists(cand):
            raise Untranslatable("weights-only file without config.json and no sibling "
                                 "_config case: no architecture to build in Keras")
        cfg_path = cand
        arch_note = f"{sib}/config.json"
    with open(cfg_path, encoding="utf8") as f:
        cfg = json.load(f)
    info["architecture_from"] = arch_note or "config.json"
    hc = code_layers(cfg)
    if hc:
        raise HoldsCode("layers holding Python code: " + ", ".join(hc))
    if str(cfg.get("keras_version", "")).startswith("3"):
        m = keras.models.model_from_json(json.dumps(cfg))
        m.load_weights(path)
        return Loaded(m, "keras3", "keras.models.model_from_json(config) + load_weights"), info
    if is_keras1_config(cfg):
        c2, notes = translate_k1(cfg)
        how = "rebuilt in tf_keras from translated Keras 1 config"
    else:
        c2, notes = patch_keras2(cfg, cfg.get("keras_version") or info["file_keras_version"])
        how = "tf_keras.models.model_from_config(config)" + (
            " with old defaults written out" if notes else "")
    m = tfk_from_config(c2)
    tfk_legacy_load(m, path)
    conv = " (Keras-1 weight conversion: the file has no keras_version)" if k1_weights else ""
    return Loaded(m, "tf_keras", how + " + tf_keras legacy hdf5 weight loading "
                  "(load_weights_from_hdf5_group)" + conv, notes), info


# --------------------------------------------------------------------------------------
# Inputs, running, states
# --------------------------------------------------------------------------------------


def same_tensor(a, b):
    if a is b:
        return True
    na, nb = getattr(a, "name", None), getattr(b, "name", None)
    return na is not None and na == nb


def layer_input(layer):
    try:
        return layer.input
    except Exception:  # noqa: BLE001 (several inbound nodes, not built, ...)
        return None


def shape_list(shape):
    try:
        return [None if s is None else int(s) for s in shape]
    except TypeError:
        return None


def input_consumers(model):
    """``{input index: (class name, layer)}`` for Embedding / Masking layers fed by an input."""
    out = {}
    ins = model.inputs
    for layer in model.layers:
        cn = type(layer).__name__
        if cn not in ("Embedding", "Masking"):
            continue
        li = layer_input(layer)
        hit = None
        if li is not None:
            for i, t in enumerate(ins):
                if same_tensor(li, t):
                    hit = i
        if hit is None and type(model).__name__ == "Sequential" and layer is model.layers[0]:
            hit = 0
        if hit is not None:
            out.setdefault(hit, (cn, layer))
    return out


def make_inputs(model, seed):
    rng = np.random.default_rng(seed)
    cons = input_consumers(model)
    xs, desc = [], []
    for i, t in enumerate(model.inputs):
        shape = shape_list(t.shape)
        dims = [T_DEFAULT if s is None else s for s in shape[1:]]
        dtype = str(getattr(t.dtype, "name", t.dtype))
        cn, layer = cons.get(i, (None, None))
        item = {"shape": [N, *dims], "model_input_shape": shape, "model_input_dtype": dtype}
        if cn == "Embedding" or dtype.startswith("int"):
            V = int(layer.input_dim) if cn == "Embedding" else 10
            x = rng.integers(1, V, size=(N, *dims)).astype(np.int32)
            item.update(kind="ids", low=1, high=V)
            if cn == "Embedding" and getattr(layer, "mask_zero", False) and dims:
                T = dims[-1]
                if T > LONG_T:
                    # Keep the npz small: every sample is mostly padding (the outputs at
                    # masked steps repeat, so they compress to almost nothing).
                    for j, keep in enumerate(LONG_KEEP):
                        x[j, keep:] = 0
                    item["padding"] = (f"T={T} > {LONG_T}: sample j keeps its first "
                                       f"{list(LONG_KEEP)}[j] ids, the rest are 0 (mask_zero)")
                else:
                    k = max(1, T // 3)
                    x[1, -k:] = 0
                    item["padding"] = f"sample 1: last {k} ids are 0 (mask_zero)"
        else:
            x = rng.standard_normal((N, *dims)).astype(np.float32)
            item["kind"] = "float"
            if cn == "Masking" and len(dims) >= 2:
                mv = float(layer.mask_value)
                k = max(1, dims[0] // 3)
                x[1, -k:, ...] = mv
                item["padding"] = f"sample 1: last {k} steps all {mv} (Masking mask_value)"
        xs.append(x)
        desc.append(item)
    return xs, desc


def all_layers(model):
    try:
        return list(model._flatten_layers(include_self=False))
    except Exception:  # noqa: BLE001
        return list(model.layers)


def reset_stateful(model):
    for layer in all_layers(model):
        if getattr(layer, "stateful", False):
            for meth in ("reset_states", "reset_state"):
                if hasattr(layer, meth):
                    getattr(layer, meth)()
                    break


def as_list(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def fixed_batch(model):
    bs = {t.shape[0] for t in model.inputs}
    bs.discard(None)
    return int(bs.pop()) if bs else None


def run(model, xs, B, stateful):
    """``predict`` in batches of B (a fixed batch size), states reset before each."""
    one = xs if len(xs) > 1 else xs[0]
    if B is None and not stateful:
        return [np.asarray(y) for y in as_list(model.predict(one, batch_size=N, verbose=0))]
    B = B or N
    parts = []
    for start in range(0, N, B):
        rows = list(range(start, min(start + B, N)))
        rows += [rows[-1]] * (B - len(rows))
        batch = [x[rows] for x in xs]
        reset_stateful(model)
        ys = as_list(model.predict(batch if len(batch) > 1 else batch[0], batch_size=B,
                                   verbose=0))
        parts.append([np.asarray(y)[: min(B, N - start)] for y in ys])
    reset_stateful(model)
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def clone_all_steps(layer):
    cfg = copy.deepcopy(layer.get_config())
    cfg["name"] = layer.name + "_allsteps"
    if type(layer).__name__ == "Bidirectional":
        for k in ("layer", "backward_layer"):
            if isinstance(cfg.get(k), dict):
                cfg[k]["config"].update(return_sequences=True, return_state=False)
    else:
        cfg.update(return_sequences=True, return_state=False)
    clone = type(layer).from_config(cfg)
    return clone


def rnn_states(loaded, xs, B, stateful):
    """``({layer name: all-steps output}, {layer name: why skipped})``."""
    K = keras if loaded.flavour == "keras3" else tf_keras
    model = loaded.model
    outs, names, skipped, clones = [], [], {}, []
    for layer in model.layers:
        cn = type(layer).__name__
        if cn not in RECURRENT:
            continue
        inner = layer.forward_layer if cn == "Bidirectional" else layer
        try:
            li = layer_input(layer)
            if li is None:
                skipped[layer.name] = "no single input tensor (shared layer?)"
                continue
            if getattr(inner, "return_sequences", False) and not getattr(inner, "return_state",
                                                                          False):
                out = layer.output
            else:
                clone = clone_all_steps(layer)
                out = clone(li)
                clone.set_weights(layer.get_weights())
                clones.append(clone)
            if isinstance(out, (list, tuple)):
                out = out[0]
            outs.append(out)
            names.append(layer.name)
        except Exception as exc:  # noqa: BLE001
            skipped[layer.name] = f"{type(exc).__name__}: {exc}"[:300]
    if not outs:
        return {}, skipped
    try:
        sub = K.Model(model.inputs, outs)
        ys = run(sub, xs, B, stateful)
        return {n: y.astype(np.float32) for n, y in zip(names, ys)}, skipped
    except Exception as exc:  # noqa: BLE001
        why = f"{type(exc).__name__}: {exc}"[:300]
        return {}, {**skipped, **{n: why for n in names}}


# --------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------


def case_seed(case):
    return zlib.crc32(case.encode("utf8"))


def keras1_note(v):
    return v is not None and str(v).startswith("1")


def inferred_note(case, info, entry):
    kv = info.get("file_keras_version")
    vt = version_tuple(kv)
    parts = [f"The weights file's keras_version attribute is {kv!r}"
             + (" (absent: Keras 1)" if kv is None else "") + "."]
    if vt is None or vt < (2, 3):
        parts.append("Keras up to 2.2.x (and Keras 1) defaulted LSTM/GRU "
                     "recurrent_activation to hard_sigmoid = clip(0.2x+0.5, 0, 1).")
    else:
        parts.append("Keras 2.3+ defaulted recurrent_activation to sigmoid.")
    if vt is None or vt < (2, 1, 4):
        parts.append("GRU had no reset_after option then (Keras 2.1.4 added it): its GRU "
                     "is reset_after=False.")
    else:
        parts.append("GRU reset_after defaulted to False in keras-team Keras 2.x and tf.keras "
                     "of TensorFlow 1.x, to True in tf.keras of TensorFlow 2.x and Keras 3.")
    parts.append("The file carries no architecture; this reference is the real "
                 f"architecture from {entry.get('architecture_from')}.")
    return " ".join(parts)


def do_case(case, meta, wild, out):
    entry = {"keras_written": meta["keras"], "kind": meta["kind"], "repo": meta["repo"],
             "repo_path": meta["path"], "commit": meta["commit"]}
    try:
        loaded, info = load_case(case, meta, wild)
    except HoldsCode as exc:
        entry.update(file=file_guess(meta), config=cfg_guess(meta), status="holds_code",
                     why=str(exc), reference_by=None)
        return entry
    except Exception as exc:  # noqa: BLE001
        entry.update(file=file_guess(meta), config=cfg_guess(meta), status="failed",
                     why=f"could not load in any Keras: {type(exc).__name__}: {exc}"[:1500],
                     reference_by=None)
        traceback.print_exc()
        return entry
    entry.update(info)
    entry["config"] = info["config"]
    model = loaded.model
    if re.search(r"[^A-Za-z0-9_.\-/]", model.name):
        # TensorFlow refuses such characters in the name scopes predict() opens.
        clean = re.sub(r"[^A-Za-z0-9_.\-/]", "_", model.name)
        loaded.notes.append(f"model name {model.name!r} renamed {clean!r} in memory "
                            "(TensorFlow rejects the characters in op names; no effect on "
                            "the numbers)")
        model._name = clean
    entry["reference_by"] = loaded.reference_by
    entry["reader"] = (f"tf_keras {tf_keras.__version__}" if loaded.flavour == "tf_keras"
                       else f"keras {keras.__version__} (TensorFlow {tf.__version__})")
    if loaded.notes:
        entry["notes"] = list(loaded.notes)
    if case.endswith("_inferred"):
        entry["config"] = None
        entry["weights_only_no_architecture"] = True
        entry["inferred_defaults_note"] = inferred_note(case, info, entry)
    try:
        entry["params_total"] = int(model.count_params())
        entry["layer_params"] = {l.name: int(l.count_params()) for l in model.layers}
        entry["layer_classes"] = {l.name: type(l).__name__ for l in model.layers}
        entry["model_class"] = type(model).__name__
        entry["output_shapes"] = [shape_list(t.shape) for t in model.outputs]
        entry["input_names"] = [getattr(t, "name", None) for t in model.inputs]
        seed = case_seed(case)
        entry["seed"] = seed
        xs, desc = make_inputs(model, seed)
        B = fixed_batch(model)
        stateful = any(getattr(l, "stateful", False) for l in all_layers(model))
        if B is not None:
            entry["fixed_batch_size"] = B
        if stateful:
            entry["stateful"] = True
            entry.setdefault("notes", []).append(
                f"stateful: run in batches of {B}, reset_states() before each batch")
        ys = run(model, xs, B, stateful)
        states, skipped = rnn_states(loaded, xs, B, stateful)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        entry.update(status="failed",
                     why=f"loaded, but Keras could not run it: {type(exc).__name__}: {exc}"[:1500])
        return entry
    arrays = {}
    xkeys = ["x"] if len(xs) == 1 else [f"x/{i}" for i in range(len(xs))]
    for k, x, dsc in zip(xkeys, xs, desc):
        arrays[k] = x
        dsc["key"] = k
    ykeys = ["y"] if len(ys) == 1 else [f"y/{i}" for i in range(len(ys))]
    for k, y in zip(ykeys, ys):
        arrays[k] = np.asarray(y, dtype=np.float32)
    for n, s in states.items():
        arrays[f"state/{n}"] = s
    bad = [k for k, v in arrays.items() if v.dtype.kind == "f" and not np.all(np.isfinite(v))]
    if bad:
        entry.setdefault("notes", []).append(f"non-finite values in {bad}")
    np.savez_compressed(os.path.join(out, f"{case}.npz"), **arrays)
    entry.update(status="ok", npz=f"{case}.npz", inputs=desc,
                 y_shapes=[list(arrays[k].shape) for k in ykeys], y_keys=ykeys,
                 states=sorted(states))
    if skipped:
        entry["states_skipped"] = skipped
    return entry


def file_guess(meta):
    fs = [f for f in meta["files"] if f != "config.json"]
    return fs[0] if fs else None


def cfg_guess(meta):
    return "config.json" if "config.json" in meta["files"] else None


# --------------------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------------------

README_HEAD = """# Keras reference outputs for third-party model files

These files are **Keras's own outputs** for the Keras recurrent-network model files collected
in `/work/shared/wild-models/` (see its `MANIFEST.md`: public GitHub repositories and
Deeplearning4j's Keras-import test resources, written by Keras 1.1 to Keras 3.13). The model
files themselves are third-party data and are **not** copied here: only our inputs and
Keras's outputs are. Tests that use them must skip when `/work/shared/wild-models` is absent.

Regenerate (needs the reference venv: tensorflow-cpu 2.21.0, keras 3.15.1, tf_keras 2.21.0):

    /work/kenv/bin/python scripts/make_wild_refs.py

(`--only CASE ...` regenerates some cases and keeps the rest of `index.json`.)

## Files

* `<case>.npz`, for every case with status `ok`:
  * `x` (or `x/0`, `x/1`, ... in the model's input order): N=3 samples from
    `np.random.default_rng(seed)` with `seed = zlib.crc32(case name)` (also in `index.json`).
    Float inputs: `standard_normal`, float32. Embedding inputs: int32 ids in `[1, V)`; with
    `mask_zero`, sample 1 ends in `max(1, T // 3)` zeros. A `Masking` layer fed by the input:
    sample 1 ends in `max(1, T // 3)` steps equal to `mask_value`. A `None` time dimension is 7.
  * `y` (or `y/0`, `y/1`, ... in model output order): float32 `predict` output.
  * `state/<layer name>`: float32, the full output sequence of each recurrent layer
    (SimpleRNN / LSTM / GRU / Bidirectional) as Keras returns it with `return_sequences=True`
    (the layer's own output if it returns sequences, else a copy with
    `return_sequences=True` and the same weights fed by the same graph; masks ride along;
    a `go_backwards` layer's sequence is in Keras's processing order).
* `index.json`: per case `file` / `config` (names inside the case folder),
  `keras_written` (manifest), `file_keras_version` (the file's attribute), `reference_by`,
  `reader` (which Keras computed it), `params_total` (`count_params()`), `layer_params`,
  `layer_classes`, `output_shapes` (Keras's, `null` = any), `y_shapes`, `inputs`, `seed`,
  `states`, `status` (`ok` / `holds_code` / `failed`, with `why`), `notes`;
  `_inferred` cases add `weights_only_no_architecture` and `inferred_defaults_note`.

## How each reference was computed

Always by Keras, never by anything else:

* **Keras 3 files** (`.keras`, `.h5` with `keras_version` 3.x): `keras.saving.load_model`
  (`compile=False`, default safe mode).
* **Keras 2 / tf.keras files**: `tf_keras.models.load_model(compile=False)`. Where the stored
  config leaves a default implicit that changed since (GRU without `reset_after`, LSTM/GRU
  without `recurrent_activation`), the model is rebuilt in
  tf_keras from the config with the writing Keras's default written out and the weights
  loaded by tf_keras's legacy loader (exactly what `load_model` does otherwise).
* **Keras 1 files**: config translated to Keras 2 form (`output_dim`->`units`,
  `inner_activation`->`recurrent_activation`, `dropout_W/U`->`dropout`/`recurrent_dropout`,
  initializers/regularizers/`consume_less` dropped, GRU `reset_after=False`), built in
  tf_keras; weights loaded by `tf_keras.src.saving.legacy.hdf5_format.
  load_weights_from_hdf5_group`, which sees no `keras_version` on the weights group, treats
  the file as Keras 1 and fuses the per-gate LSTM (i, c, f, o -> i, f, c, o) and GRU arrays.
* **Weights-only files**: built in tf_keras from the case's `config.json` (for an
  `_inferred` case, which has no config, from the sibling `_config` case's `config.json`:
  the file alone carries no architecture), weights by the same legacy loader.

`hard_sigmoid` is `clip(0.2x + 0.5, 0, 1)` in Keras 1, Keras 2, tf.keras and tf_keras, but
`relu6(x + 3) / 6` in Keras 3: references for Keras 1/2 files come from tf_keras, for
Keras 3 files from Keras 3. Models with a fixed batch size B run in batches of exactly B
(filled up by repeating the last sample); stateful ones get `reset_states()` before each
batch (B=1: every sample starts from zero states).

## Cases
"""


def write_readme(out, index):
    counts = {}
    for e in index.values():
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    lines = [README_HEAD]
    lines.append(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + "\n")
    lines.append("| case | file | Keras | reference by | params | status |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for case in sorted(index):
        e = index[case]
        by = e.get("reference_by") or ""
        short = ("tf_keras load_model" if by.startswith("tf_keras.models.load_model") else
                 "keras load_model" if by.startswith("keras.saving.load_model") else
                 "Keras 1 config translated, tf_keras" if "Keras 1" in by else
                 "rebuilt in tf_keras, old defaults" if by.startswith("rebuilt") else
                 "config + legacy weights (tf_keras)" if by.startswith("tf_keras.models.model_")
                 else "Keras 3 config + weights" if by.startswith("keras.models") else by)
        st = e["status"] + ("" if e["status"] == "ok" else f": {e.get('why', '')}")
        cfgs = " + config.json" if e.get("config") else ""
        lines.append(f"| `{case}` | `{e.get('file')}`{cfgs} | {e.get('keras_written')} | {short} "
                     f"| {e.get('params_total', '')} | {st} |")
    lines += ["", "## Notes per case", ""]
    for case in sorted(index):
        e = index[case]
        items = list(e.get("notes", []))
        if e.get("fixed_batch_size") and not e.get("stateful"):
            items.append(f"fixed batch size {e['fixed_batch_size']}: run in batches of exactly "
                         "that size")
        items += [i["key"] + ": " + i["padding"] for i in e.get("inputs", []) if i.get("padding")]
        if e.get("states_skipped"):
            items.append("no state for " + ", ".join(
                f"{k} ({v})" for k, v in sorted(e["states_skipped"].items())))
        if e.get("inferred_defaults_note"):
            items.append(e["inferred_defaults_note"])
        by = e.get("reference_by") or ""
        if "Keras 1 config" in by:
            items.append("Keras 1 file: config translated, weights converted by tf_keras's "
                         "legacy loader")
        elif "Keras-1 weight conversion" in by:
            items.append("Keras 1 weights file (no keras_version attribute) with a Keras 2 "
                         "config.json: weights converted by tf_keras's legacy loader")
        if items:
            lines.append(f"* `{case}`: " + "; ".join(items))
    with open(os.path.join(out, "README.md"), "w", encoding="utf8") as f:
        f.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wild", default=WILD)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args(argv)
    manifest = read_manifest(a.wild)
    folders = sorted(c for c in os.listdir(a.wild) if os.path.isdir(os.path.join(a.wild, c)))
    missing = sorted(set(folders) - set(manifest))
    if missing:
        raise SystemExit(f"folders not in MANIFEST.md: {missing}")
    wanted = (a.only or []) + a.cases
    unknown = sorted(set(wanted) - set(manifest))
    if unknown:
        raise SystemExit(f"unknown case(s): {unknown}")
    os.makedirs(a.out, exist_ok=True)
    index_path = os.path.join(a.out, "index.json")
    index = {}
    if wanted and os.path.exists(index_path):
        with open(index_path, encoding="utf8") as f:
            index = json.load(f)
    todo = wanted or folders
    for i, case in enumerate(todo, 1):
        npz = os.path.join(a.out, f"{case}.npz")
        if os.path.exists(npz):
            os.remove(npz)
        tf_keras.backend.clear_session()
        keras.backend.clear_session()
        entry = do_case(case, manifest[case], a.wild, a.out)
        index[case] = entry
        extra = entry.get("why", "") if entry["status"] != "ok" else (
            f"{entry.get('reference_by', '')[:60]}; states {len(entry.get('states', []))}"
            + (f", skipped {list(entry['states_skipped'])}" if entry.get("states_skipped")
               else ""))
        log(f"[{i}/{len(todo)}] {case}: {entry['status']} {extra}")
        index_sorted = {k: index[k] for k in sorted(index)}
        with open(index_path, "w", encoding="utf8") as f:
            json.dump(index_sorted, f, indent=1)
            f.write("\n")
    write_readme(a.out, index)
    counts = {}
    for e in index.values():
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    log("counts:", counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
