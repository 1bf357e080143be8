#!/usr/bin/env python
"""Check rnninspect against model files written by several Keras generations.

Developer-only. Two parts in one file:

* the **driver** (any Python with numpy): for every available environment it runs the
  generator part in that environment as a subprocess, then runs the rnninspect CLI on
  every file written and compares with Keras's own numbers::

      python scripts/check_generations.py [--out DIR] [--rnninspect PATH]
                                          [--flavours tf213 tf215 ...] [--no-generate]

* the **generator** (run by the driver, inside one Keras environment)::

      ENV_PYTHON scripts/check_generations.py --generate OUTDIR --flavour FLAVOUR

  FLAVOUR is one of ``tf213``, ``tf214``, ``tf215`` (tf.keras of tensorflow-cpu 2.13 /
  2.14 / 2.15), ``keras3-tf``, ``keras3-jax`` (Keras 3 on TensorFlow / JAX) and
  ``tfkeras221`` (tf_keras 2.21). It writes ``OUTDIR/FLAVOUR/<model>/``.

Models (random float32 weights set with ``set_weights``, biases non-zero):

1. ``chain``: Functional Embedding(mask_zero) -> Bidirectional(LSTM, seq) ->
   TimeDistributed(Dense) -> GRU -> Dense, ids with zeros (leading, middle, trailing)
2. ``masked_backwards``: Masking -> SimpleRNN(gb, seq) -> LSTM(gb, seq) -> GRU(gb) -> Dense
3. ``gru_hard``: GRU(reset_after=False, hard_sigmoid) -> Dense; ``lstm_hard``: LSTM(hard_sigmoid)
4. ``nested_seq`` (Sequential in Sequential), ``nested_func`` (Functional in Functional)
5. ``bidi_concat``, ``bidi_sum``, ``bidi_ave``, ``bidi_mul``
6. ``return_state``: Functional LSTM(return_state=True), Dense on the cell state c

Files per model: full saves ``m.keras`` (native zip) and ``m.h5`` (legacy), weights-only
``w.weights.h5`` (native layout; tf.keras 2.13+ and Keras 3) and ``w.h5`` (legacy
``save_weights``; tf.keras / tf_keras only), ``config.json`` (``model.to_json()``), and
``ref.npz`` (``x``, ``y`` = ``predict(x)``, ``state/<layer>`` = each recurrent layer's
``return_sequences=True`` output), ``ref.json`` (per-layer ``count_params`` rows with nested
models expanded, ``tree_rows`` = ``model.layers`` rows with nested models' own rows,
totals, versions, notes from reloading every file with Keras itself).

Checks per file (weights-only files once with ``--config config.json`` and once with
``--config m.keras``): ``summary --json`` (each row's params and class against Keras's
``model.layers`` / ``count_params()``, by name and by order; a nested model is one row
whose ``layers`` must match the inner model's rows, InputLayer aside; totals),
``forward -o y.npy`` (``np.allclose(rtol=1e-4, atol=1e-5)``) and ``trace -o t.npz`` (the
stored states, same tolerance). Prints a table, the failures with their command and
stderr, per-flavour counts and ``N passed, M failed``; exit 1 on failures.
"""

from __future__ import annotations

import os
import sys

GENERATE = "--generate" in sys.argv[1:]
if GENERATE:
    _fl = sys.argv[sys.argv.index("--flavour") + 1] if "--flavour" in sys.argv else ""
    os.environ["KERAS_BACKEND"] = "jax" if _fl == "keras3-jax" else "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL, ATOL = 1e-4, 1e-5
RECURRENT = ("SimpleRNN", "LSTM", "GRU", "Bidirectional")
CONTAINER_CLASSES = ("Sequential", "Functional", "Model")

# flavour -> (python, extra environment, description)
FLAVOURS = {
    "tf213": ("/work/tf2.13.1/bin/python", {}, "tf.keras 2.13 (tensorflow-cpu 2.13.1)"),
    "tf214": ("/work/tf2.14.1/bin/python", {}, "tf.keras 2.14 (tensorflow-cpu 2.14.1)"),
    "tf215": ("/work/tf2.15.1/bin/python", {}, "tf.keras 2.15 (tensorflow-cpu 2.15.1)"),
    "keras3-tf": ("/work/kerasenv/bin/python", {"KERAS_BACKEND": "tensorflow"},
                  "Keras 3 on TensorFlow"),
    "keras3-jax": ("/work/jaxenv/bin/python", {"KERAS_BACKEND": "jax"}, "Keras 3 on JAX"),
    "tfkeras221": ("/work/kerasenv/bin/python", {}, "tf_keras 2.21"),
}
PROBE = {
    "tf213": "import tensorflow as tf, h5py; tf.keras.layers.LSTM",
    "tf214": "import tensorflow as tf, h5py; tf.keras.layers.LSTM",
    "tf215": "import tensorflow as tf, h5py; tf.keras.layers.LSTM",
    "keras3-tf": "import keras, h5py; assert keras.__version__.startswith('3')",
    "keras3-jax": "import keras, jax, h5py; assert keras.backend.backend() == 'jax'",
    "tfkeras221": "import tf_keras, h5py",
}


# ======================================================================================
# Generator (runs inside one Keras environment)
# ======================================================================================


def keras_module(flavour):
    """``(K, keras_version, is_keras3)`` for a flavour."""
    if flavour in ("tf213", "tf214", "tf215"):
        import keras as kpkg  # the keras 2.x package tf.keras is built from
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        return tf.keras, kpkg.__version__, False
    if flavour == "tfkeras221":
        import tensorflow as tf
        import tf_keras

        tf.get_logger().setLevel("ERROR")
        return tf_keras, tf_keras.__version__, False
    if flavour in ("keras3-tf", "keras3-jax"):
        import keras

        return keras, keras.__version__, True
    raise SystemExit(f"unknown flavour {flavour!r}")


def b_chain(K):
    inp = K.Input(shape=(11,), dtype="int32")
    t = K.layers.Embedding(23, 6, mask_zero=True)(inp)
    t = K.layers.Bidirectional(K.layers.LSTM(7, return_sequences=True))(t)
    t = K.layers.TimeDistributed(K.layers.Dense(5, activation="tanh"))(t)
    t = K.layers.GRU(4)(t)
    out = K.layers.Dense(3)(t)
    return K.Model(inp, out)


def b_masked_backwards(K):
    return K.Sequential([
        K.Input(shape=(9, 4)),
        K.layers.Masking(mask_value=0.0),
        K.layers.SimpleRNN(6, go_backwards=True, return_sequences=True),
        K.layers.LSTM(5, go_backwards=True, return_sequences=True),
        K.layers.GRU(3, go_backwards=True),
        K.layers.Dense(2),
    ])


def b_gru_hard(K):
    return K.Sequential([
        K.Input(shape=(8, 3)),
        K.layers.GRU(5, reset_after=False, recurrent_activation="hard_sigmoid"),
        K.layers.Dense(2),
    ])


def b_lstm_hard(K):
    inp = K.Input(shape=(7, 4))
    t = K.layers.LSTM(6, recurrent_activation="hard_sigmoid")(inp)
    return K.Model(inp, K.layers.Dense(3)(t))


def b_nested_seq(K):
    enc = K.Sequential([
        K.layers.SimpleRNN(5, return_sequences=True),
        K.layers.Dropout(0.2),
        K.layers.LSTM(4, return_sequences=True),
    ], name="enc")
    return K.Sequential([K.Input(shape=(9, 2)), enc, K.layers.GRU(3), K.layers.Dense(2)])


def b_nested_func(K):
    i_in = K.Input(shape=(9, 2))
    h = K.layers.LSTM(4, return_sequences=True)(i_in)
    h = K.layers.Dense(3)(h)
    inner = K.Model(i_in, h)
    inp = K.Input(shape=(9, 2))
    t = inner(inp)
    t = K.layers.GRU(3)(t)
    return K.Model(inp, K.layers.Dense(2)(t))


def make_bidi(mode):
    def build(K):
        return K.Sequential([
            K.Input(shape=(6, 4)),
            K.layers.Bidirectional(K.layers.GRU(5, return_sequences=True), merge_mode=mode),
            K.layers.Bidirectional(K.layers.LSTM(3), merge_mode=mode),
            K.layers.Dense(2),
        ])
    return build


def b_return_state(K):
    inp = K.Input(shape=(9, 3))
    _o, _h, c = K.layers.LSTM(5, return_state=True)(inp)
    return K.Model(inp, K.layers.Dense(2)(c))


# name -> (builder, seed, input kind, description)
MODELS = {
    "chain": (b_chain, 501, "ids",
              "Func Input(11,) int32 > Embedding(23,6,mask_zero) > Bidirectional(LSTM(7,seq)) > "
              "TimeDistributed(Dense(5,tanh)) > GRU(4) > Dense(3)"),
    "masked_backwards": (b_masked_backwards, 502, "masked",
                         "Seq Input(9,4) > Masking > SimpleRNN(6,gb,seq) > LSTM(5,gb,seq) > "
                         "GRU(3,gb) > Dense(2)"),
    "gru_hard": (b_gru_hard, 503, "float",
                 "Seq Input(8,3) > GRU(5,reset_after=False,hard_sigmoid) > Dense(2)"),
    "lstm_hard": (b_lstm_hard, 504, "float",
                  "Func Input(7,4) > LSTM(6,hard_sigmoid) > Dense(3)"),
    "nested_seq": (b_nested_seq, 505, "float",
                   "Seq Input(9,2) > Seq enc[SimpleRNN(5,seq) > Dropout > LSTM(4,seq)] > "
                   "GRU(3) > Dense(2)"),
    "nested_func": (b_nested_func, 506, "float",
                    "Func Input(9,2) > Func inner[LSTM(4,seq) > Dense(3)] > GRU(3) > Dense(2)"),
    "bidi_concat": (make_bidi("concat"), 507, "float",
                    "Seq Input(6,4) > Bi(GRU(5,seq),concat) > Bi(LSTM(3),concat) > Dense(2)"),
    "bidi_sum": (make_bidi("sum"), 508, "float", "as bidi_concat, merge_mode=sum"),
    "bidi_ave": (make_bidi("ave"), 509, "float", "as bidi_concat, merge_mode=ave"),
    "bidi_mul": (make_bidi("mul"), 510, "float", "as bidi_concat, merge_mode=mul"),
    "return_state": (b_return_state, 511, "float",
                     "Func Input(9,3) > LSTM(5,return_state) > Dense(2) on c"),
}
N_SAMPLES = 5


def is_container(layer):
    return type(layer).__name__ in CONTAINER_CLASSES and hasattr(layer, "layers")


def leaf_layers(model):
    out = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        out += leaf_layers(layer) if is_container(layer) else [layer]
    return out


def flat_rows(model, top=True):
    """Keras's summary rows as rnninspect's flat chain shows them: nested models replaced
    by their own rows (without their InputLayer)."""
    rows = []
    for layer in model.layers:
        cls = type(layer).__name__
        if is_container(layer):
            inner = flat_rows(layer, top=False)
            assert sum(r["params"] for r in inner) == int(layer.count_params())
            rows += inner
            continue
        if cls == "InputLayer" and not top:
            continue
        rows.append({"name": layer.name, "class_name": cls, "params": int(layer.count_params())})
    return rows


def tree_rows(model, top=True):
    """Keras's ``model.layers`` rows (``count_params`` per layer); a nested model is one
    row whose ``layers`` are its own ``model.layers`` rows (its InputLayer left out)."""
    rows = []
    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "InputLayer" and not top:
            continue
        row = {"name": layer.name, "class_name": cls, "params": int(layer.count_params())}
        if is_container(layer):
            row["layers"] = tree_rows(layer, top=False)
        rows.append(row)
    return rows


def totals(model):
    return {
        "total_params": int(model.count_params()),
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "non_trainable_params": int(
            sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)),
    }


def set_random_weights(model, rng):
    for layer in leaf_layers(model):
        if not layer.weights:
            continue
        ws = []
        for w in layer.get_weights():
            a = rng.standard_normal(w.shape) * (1.0 if type(layer).__name__ == "Embedding" else 0.5)
            ws.append(a.astype(np.float32))
        layer.set_weights(ws)
    for w in model.get_weights():
        assert w.dtype == np.float32 and np.all(w != 0)


def make_input(model, kind, rng):
    shape = tuple(model.inputs[0].shape[1:])
    T = int(shape[0])
    N = N_SAMPLES
    if kind == "ids":
        V = next(l for l in leaf_layers(model) if type(l).__name__ == "Embedding").input_dim
        x = rng.integers(1, V, size=(N, T)).astype(np.int32)
    else:
        x = rng.standard_normal((N, *shape)).astype(np.float32)
    if kind in ("ids", "masked"):
        x[0, :2] = 0          # leading padding
        x[1, T // 2] = 0      # a hole in the middle
        x[2, -3:] = 0         # trailing padding
        x[3, 0] = 0           # all three
        x[3, T // 2] = 0
        x[3, T - 1] = 0
    return x


def as_f32(y):
    if isinstance(y, (list, tuple)):
        return [np.asarray(a, dtype=np.float32) for a in y]
    return np.asarray(y, dtype=np.float32)


def rnn_states(K, model, x):
    """``{layer name: return_sequences=True output}`` for every recurrent leaf layer: a copy
    of the layer fed by a fresh graph through all leaf layers before it (masks ride along)."""
    leaves = leaf_layers(model)
    inp0 = model.inputs[0]
    out = {}
    for i, layer in enumerate(leaves):
        cls = type(layer).__name__
        if cls not in RECURRENT:
            continue
        inp = K.Input(shape=tuple(inp0.shape[1:]), dtype=inp0.dtype)
        t = inp
        for prev in leaves[:i]:
            t = prev(t)
        assert not isinstance(t, (list, tuple)), layer.name
        cfg = copy.deepcopy(layer.get_config())
        cfg["name"] = layer.name + "_allsteps"
        if cls == "Bidirectional":
            for k in ("layer", "backward_layer"):
                if isinstance(cfg.get(k), dict):
                    cfg[k]["config"].update(return_sequences=True, return_state=False)
        else:
            cfg.update(return_sequences=True, return_state=False)
        clone = type(layer).from_config(cfg)
        seq = clone(t)
        clone.set_weights(layer.get_weights())
        out[layer.name] = as_f32(K.Model(inp, seq).predict(x, verbose=0))
    return out


def save_all(K, model, d, keras3, notes):
    """Every format this Keras writes; returns {file: kind}."""
    files = {}

    def attempt(fname, kind, fn):
        try:
            fn(os.path.join(d, fname))
            files[fname] = kind
        except Exception as exc:  # noqa: BLE001
            notes.append(f"could not write {fname}: {type(exc).__name__}: {exc}"[:300])

    attempt("m.keras", "full", lambda p: model.save(p))
    if keras3:
        attempt("m.h5", "full", lambda p: model.save(p))
    else:
        attempt("m.h5", "full", lambda p: model.save(p, save_format="h5"))
        attempt("w.h5", "weights", lambda p: model.save_weights(p))
    attempt("w.weights.h5", "weights", lambda p: model.save_weights(p))
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(model.to_json())
    return files


def keras_reload(K, builder, d, files, x, y, notes):
    """Keras itself reloads every file to the same output (guards this script)."""
    for fname, kind in files.items():
        p = os.path.join(d, fname)
        try:
            if kind == "full":
                m = K.models.load_model(p, compile=False)
            else:
                m = builder(K)
                m.load_weights(p)
            got = as_f32(m.predict(x, verbose=0))
            if not np.allclose(got, y, rtol=1e-5, atol=1e-6):
                notes.append(f"Keras reload of {fname}: max|diff| {np.abs(got - y).max():.2e}")
        except Exception as exc:  # noqa: BLE001
            notes.append(f"Keras cannot reload {fname}: {type(exc).__name__}: {exc}"[:300])


def generate_one(K, flavour, kver, keras3, name, outdir):
    builder, seed, kind, desc = MODELS[name]
    d = os.path.join(outdir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    K.backend.clear_session()
    rng = np.random.default_rng(seed)
    model = builder(K)
    set_random_weights(model, rng)
    x = make_input(model, kind, rng)
    y = as_f32(model.predict(x, verbose=0))
    notes = []
    rows, tree, tot = flat_rows(model), tree_rows(model), totals(model)
    files = save_all(K, model, d, keras3, notes)      # save before any extra layer calls
    states = rnn_states(K, model, x)
    keras_reload(K, builder, d, files, x, y, notes)
    np.savez(os.path.join(d, "ref.npz"), x=x, y=y,
             **{f"state/{k}": v for k, v in states.items()})
    ref = {"model": name, "description": desc, "flavour": flavour, "keras_version": kver,
           "backend": K.backend.backend(), "files": files, "rows": rows, "tree_rows": tree,
           "totals": tot, "states": list(states), "notes": notes,
           "model_class": type(model).__name__}
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
    return ref


def generate(outdir, flavour, names):
    K, kver, keras3 = keras_module(flavour)
    outdir = os.path.join(os.path.abspath(outdir), flavour)
    os.makedirs(outdir, exist_ok=True)
    if keras3:
        K.utils.set_random_seed(0)
    else:
        import tensorflow as tf

        tf.random.set_seed(0)
    manifest = {"flavour": flavour, "keras_version": kver, "backend": K.backend.backend(),
                "python": sys.executable, "models": {}, "errors": {}}
    for name in names:
        t0 = time.time()
        try:
            ref = generate_one(K, flavour, kver, keras3, name, outdir)
            manifest["models"][name] = sorted(ref["files"])
            print(f"[{flavour}] {name}: {sorted(ref['files'])} ({time.time() - t0:.1f}s)"
                  + (f" notes: {ref['notes']}" if ref["notes"] else ""), flush=True)
        except Exception:  # noqa: BLE001
            manifest["errors"][name] = traceback.format_exc()
            print(f"[{flavour}] {name}: FAILED to build/save\n{traceback.format_exc()}",
                  flush=True)
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return 1 if manifest["errors"] else 0


# ======================================================================================
# Driver (any Python with numpy)
# ======================================================================================


class Row:
    __slots__ = ("check", "cmd", "detail", "flavour", "fmt", "model", "status", "stderr")

    def __init__(self, flavour, model, fmt, check, status, detail, cmd="", stderr=""):
        self.flavour, self.model, self.fmt, self.check = flavour, model, fmt, check
        self.status, self.detail, self.cmd, self.stderr = status, detail, cmd, stderr


def run_cli(exe, args, timeout=300):
    cmd = [exe, *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr, shlex.join(cmd)
    except subprocess.TimeoutExpired:
        return -1, "", f"timeout after {timeout}s", shlex.join(cmd)


def compare(got, want):
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        return False, f"shape {got.shape} != Keras {want.shape}"
    diff = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) if want.size else 0.0
    ok = bool(np.allclose(got, want, rtol=RTOL, atol=ATOL))
    return ok, f"max|diff| {diff:.2e}"


def count_rows(rows):
    return sum(1 + count_rows(r.get("layers", [])) for r in rows)


def summary_problems(got, want, where):
    """rnninspect's ``layers`` vs Keras's ``model.layers`` rows: params by name and by
    order; a nested model's row must carry its inner rows in ``layers`` (README)."""
    probs = []
    gp = {l["name"]: l for l in got}
    for r in want:
        g = gp.get(r["name"])
        if g is None:
            probs.append(f"{where}{r['name']} ({r['class_name']}) missing")
            continue
        if g["params"] != r["params"]:
            probs.append(f"{where}{r['name']}: params {g['params']} != Keras {r['params']}")
        if g.get("type") != r["class_name"]:
            probs.append(f"{where}{r['name']}: type {g.get('type')} != Keras {r['class_name']}")
        if "layers" in r:
            inner = [x for x in g.get("layers") or [] if x.get("type") != "InputLayer"]
            if not inner:
                probs.append(f"{where}{r['name']}: nested model row without inner rows")
            else:
                probs += summary_problems(inner, r["layers"], f"{where}{r['name']}/")
    a = [(l["name"], l["params"]) for l in got]
    b = [(r["name"], r["params"]) for r in want]
    if a != b:
        probs.append(f"{where or 'top'} rows {a} != Keras model.layers {b}")
    return probs


def check_variant(exe, d, ref, fmt, file, config):
    """summary/forward/trace of one file (with --config for weights-only files)."""
    fl, model = ref["flavour"], ref["model"]
    path = os.path.join(d, file)
    cfg = ["--config", os.path.join(d, config)] if config else []
    out = []

    def add(check, ok, detail, cmd, se):
        out.append(Row(fl, model, fmt, check, "PASS" if ok else "FAIL", detail, cmd, se))

    z = np.load(os.path.join(d, "ref.npz"))
    x_path = os.path.join(d, "ref_x.npy")  # written by the driver before any job starts

    # ---- summary
    rc, so, se, cmd = run_cli(exe, ["summary", path, "--json", *cfg])
    if rc != 0:
        add("summary", False, f"exit {rc}", cmd, se)
    else:
        try:
            s = json.loads(so)
            probs = summary_problems(s["layers"], ref["tree_rows"], "")
            gt = {k: s.get(k) for k in ref["totals"]}
            if gt != ref["totals"]:
                probs.append(f"totals {gt} != Keras {ref['totals']}")
            add("summary", not probs, "; ".join(probs) if probs else
                f"{count_rows(ref['tree_rows'])} rows, total {gt['total_params']}", cmd, se)
        except Exception as exc:  # noqa: BLE001
            add("summary", False, f"bad JSON: {exc}", cmd, se)

    # ---- forward
    tag = f"{file}{'+' + config if config else ''}".replace("/", "_")
    y_path = os.path.join(d, f"out_y_{tag}.npy")
    if os.path.exists(y_path):
        os.remove(y_path)
    rc, so, se, cmd = run_cli(exe, ["forward", path, x_path, "-o", y_path, *cfg])
    if rc != 0 or not os.path.exists(y_path):
        add("forward", False, f"exit {rc}", cmd, se)
    else:
        ok, det = compare(np.load(y_path), z["y"])
        add("forward", ok, det, cmd, se)

    # ---- trace
    t_path = os.path.join(d, f"out_t_{tag}.npz")
    if os.path.exists(t_path):
        os.remove(t_path)
    rc, so, se, cmd = run_cli(exe, ["trace", path, x_path, "-o", t_path, *cfg])
    if rc != 0 or not os.path.exists(t_path):
        add("trace", False, f"exit {rc}", cmd, se)
    else:
        with np.load(t_path) as t:
            got = {k: t[k] for k in t.files}
        bad, good = [], []
        for name in ref["states"]:
            if name not in got:
                bad.append(f"{name}: no such key (got {sorted(got)})")
                continue
            ok, det = compare(got[name], z[f"state/{name}"])
            (good if ok else bad).append(f"{name}: {det}")
        add("trace", not bad, "; ".join(bad) if bad else f"{len(good)} layer(s) ok", cmd, se)
    return out


def variants(ref):
    files = ref["files"]
    out = []
    for f in ("m.keras", "m.h5"):
        if f in files:
            out.append((f, f, None))
    for w in ("w.weights.h5", "w.h5"):
        if w in files:
            out.append((f"{w}+cfg=json", w, "config.json"))
            if "m.keras" in files:
                out.append((f"{w}+cfg=keras", w, "m.keras"))
    return out


def probe(flavour):
    py, env, _ = FLAVOURS[flavour]
    if not os.path.exists(py):
        return f"{py} does not exist"
    e = dict(os.environ, **env, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        p = subprocess.run([py, "-c", PROBE[flavour]], capture_output=True, text=True,
                           timeout=600, env=e)
    except subprocess.TimeoutExpired:
        return "import timed out"
    if p.returncode != 0:
        return "import failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    return None


def run_generator(flavour, out, names):
    py, env, _ = FLAVOURS[flavour]
    e = dict(os.environ, **env)
    cmd = [py, os.path.abspath(__file__), "--generate", out, "--flavour", flavour,
           "--models", *names]
    print(f"$ {' '.join(f'{k}={v}' for k, v in env.items())}{' ' if env else ''}"
          f"{shlex.join(cmd)}", flush=True)
    t0 = time.time()
    p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=3600)
    for line in p.stdout.splitlines():
        print("    " + line)
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-15:])
        print(f"    generator exit {p.returncode}; stderr tail:\n{tail}")
    print(f"    ({time.time() - t0:.0f}s)", flush=True)
    return p.returncode


def driver(args):
    exe = os.path.abspath(shutil.which(args.rnninspect) or args.rnninspect)
    if not os.path.exists(exe):
        sys.exit(f"rnninspect not found: {args.rnninspect}")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    names = args.models or list(MODELS)
    started = time.time()
    available, skipped = [], {}
    for fl in args.flavours:
        why = probe(fl)
        if why:
            skipped[fl] = why
            print(f"[{fl}] skipped: {why}", flush=True)
        else:
            available.append(fl)
    gen_failed = {}
    if not args.no_generate:
        for fl in available:
            rc = run_generator(fl, out, names)
            if rc != 0:
                gen_failed[fl] = rc

    jobs = []
    gen_errors = {}
    versions = {}
    for fl in available:
        mpath = os.path.join(out, fl, "manifest.json")
        if not os.path.exists(mpath):
            gen_errors[fl] = {"*": "no manifest.json (generator did not finish)"}
            continue
        with open(mpath) as f:
            man = json.load(f)
        versions[fl] = f"Keras {man['keras_version']} ({man['backend']})"
        gen_errors[fl] = man["errors"]
        for name in names:
            d = os.path.join(out, fl, name)
            if name in man["errors"] or not os.path.exists(os.path.join(d, "ref.json")):
                continue
            with open(os.path.join(d, "ref.json")) as f:
                ref = json.load(f)
            with np.load(os.path.join(d, "ref.npz")) as z:
                np.save(os.path.join(d, "ref_x.npy"), z["x"])
            for fmt, file, config in variants(ref):
                jobs.append((d, ref, fmt, file, config))

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futs = [pool.submit(check_variant, exe, *j) for j in jobs]
        rows = [r for f in futs for r in f.result()]

    # ---- report
    print(f"\nrnninspect: {exe}\nfiles under {out}\nrtol={RTOL} atol={ATOL}\n")
    for fl in args.flavours:
        print(f"  {fl:<11} {FLAVOURS[fl][2]}: "
              + (f"SKIPPED ({skipped[fl]})" if fl in skipped else versions.get(fl, "no files")))
    print()
    w = [max([len(getattr(r, a)) for r in rows] + [len(a)]) for a in ("flavour", "model", "fmt",
                                                                        "check")]
    print(f"{'flavour':<{w[0]}}  {'model':<{w[1]}}  {'format':<{w[2]}}  {'check':<{w[3]}}  "
          f"result  detail")
    for r in rows:
        if args.quiet and r.status == "PASS":
            continue
        print(f"{r.flavour:<{w[0]}}  {r.model:<{w[1]}}  {r.fmt:<{w[2]}}  {r.check:<{w[3]}}  "
              f"{r.status:<6}  {r.detail}")
    notes = []
    for fl in available:
        for name in names:
            p = os.path.join(out, fl, name, "ref.json")
            if os.path.exists(p):
                with open(p) as f:
                    for n in json.load(f)["notes"]:
                        notes.append(f"  {fl} {name}: {n}")
    if notes:
        print("\nKeras-side notes (writing / reloading with Keras itself; not rnninspect):")
        print("\n".join(notes))
    errs = [(fl, n, e) for fl, es in gen_errors.items() for n, e in es.items()]
    if errs or gen_failed:
        print("\nGenerator problems:")
        for fl, n, e in errs:
            print(f"  {fl} {n}: {e.strip().splitlines()[-1]}")
        for fl, rc in gen_failed.items():
            print(f"  {fl}: generator exit {rc}")
    fails = [r for r in rows if r.status == "FAIL"]
    if fails:
        print("\nFailures:")
        for r in fails:
            print(f"- {r.flavour} {r.model} {r.fmt} {r.check}: {r.detail}")
            print(f"    $ {r.cmd}")
            for line in r.stderr.strip().splitlines():
                print(f"    stderr: {line}")
    print("\nPer flavour:")
    for fl in available:
        rs = [r for r in rows if r.flavour == fl]
        print(f"  {fl:<11} {sum(r.status == 'PASS' for r in rs):4d} passed, "
              f"{sum(r.status == 'FAIL' for r in rs):4d} failed")
    passed = sum(r.status == "PASS" for r in rows)
    failed = len(fails) + len(errs) + len(gen_failed)
    print(f"\n({time.time() - started:.0f}s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generate", metavar="OUTDIR", help="generator mode (inside a Keras env)")
    ap.add_argument("--flavour", choices=list(FLAVOURS), help="generator mode: which Keras")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), help="default: all")
    ap.add_argument("--out", default="/tmp/check_generations", help="driver: output directory")
    ap.add_argument("--rnninspect", default="/work/venv/bin/rnninspect")
    ap.add_argument("--flavours", nargs="+", choices=list(FLAVOURS), default=list(FLAVOURS))
    ap.add_argument("--no-generate", action="store_true",
                    help="driver: reuse files already under --out")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--quiet", action="store_true", help="driver: table of failures only")
    args = ap.parse_args(argv)
    if args.generate:
        if not args.flavour:
            ap.error("--generate needs --flavour")
        return generate(args.generate, args.flavour, args.models or list(MODELS))
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
