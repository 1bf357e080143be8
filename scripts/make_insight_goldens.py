"""Autodiff references for ``diagnose``: state Jacobians and input sensitivities by
JAX's automatic differentiation, stored for the test suite (which never needs JAX).

Independent of rnninspect: it reads each sample model's Keras 3 ``config.json`` and
``layers.npz`` (Keras's own ``get_weights()`` arrays) itself, writes the layers from
Keras's documented formulas in ``jax.numpy`` (float64), checks its forward pass
against Keras's own ``golden.npz`` output, and differentiates it:

* ``<model>/jacobian/<unit>``: (T, S, S) ds_{T-1}/ds_k for sample 0, by
  ``jax.jacfwd`` of the steps after k (S = M, or 2M for LSTM's [h; c]);
* ``<model>/jacobian_norm/<unit>``: (N, T) the spectral norm of that Jacobian for
  every sample (``numpy.linalg.norm(J, 2)``);
* ``<model>/input_sensitivity``: (N, T) ||dy/dx_t||_F of the whole model, by
  ``jax.jacrev`` (for ids: with respect to the embedding vector of step t).

Units are named as ``diagnose`` names them: the layer, or ``NAME/forward`` and
``NAME/backward`` for a Bidirectional; steps in processing order.

The graph models (``GRAPH_MODELS``: several inputs or outputs, merges, attention,
convolutions, shared layers, cells, initial states from the graph) are run by Keras 3
itself on its JAX backend, in float64 (the saved config with float64 dtype policies,
the saved weights), and differentiated by JAX:

* each recurrent call's input, initial states and mask are the ones Keras's own
  forward pass hands the layer (``RNN.call`` watched, not changed); its steps are
  Keras's cell (``layer.cell.call``), masked steps keeping the states as Keras's
  ``rnn`` does, checked against the layer's own output; the Jacobians by
  ``jax.jacfwd`` as above (a ``StackedRNNCells`` per cell: ``NAME/cell_k``);
* ``<model>/input_sensitivity`` (N, T) for a one-input model, and
  ``<model>/input_sensitivity/<input name>`` for each input of a multi-input one:
  ``jax.jacrev`` of the model's first output (every entry) with respect to that
  input (ids: every Embedding vector looked up from it, jointly). Only for the
  models ``diagnose`` differentiates (``SENSITIVITY``): for the others it reports
  the layer it does not cross instead.

    python -m venv /work/venvs/jax && /work/venvs/jax/bin/pip install jax numpy h5py keras==3.15.1
    /work/venvs/jax/bin/python scripts/make_insight_goldens.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "sample_models")
OUT = os.path.join(ROOT, "tests", "data", "insight_goldens.npz")
MODELS = [
    "seed",
    "functional",
    "nobias",
    "backwards",
    "stacked",
    "activations",
    "tanh_dense",
    "seq2seq",
    "timedistributed",
    "variable_t",
    "embedding",
    "masking",
    "lstm",
    "lstm_stack",
    "gru",
    "gru_v1",
    "masked_backwards",
    "bidi_concat",
    "bidi_sum",
    "bidi_ave",
    "bidi_mul",
    "bidi_masked",
    "acceptance_chain",
]
# Graph models with SimpleRNN / LSTM / GRU layers (ConvLSTM and time_major layers
# are not diagnosed).
GRAPH_MODELS = [
    "additive_attention",
    "attention_seq2seq",
    "autoencoder",
    "bidi_cells",
    "cnn_lstm",
    "cnn_lstm_valid",
    "conv_groups",
    "gru_state_outputs",
    "masked_attention",
    "masked_graph",
    "masked_merge",
    "merges",
    "mha",
    "multi_output",
    "norm_act",
    "plumbing",
    "rnn_cells",
    "seq2seq_gru",
    "seq2seq_states",
    "shared_layers",
    "shared_nested",
    "simplernn_state_outputs",
    "stateful",
    "td_conv2d",
]
# The graph models whose input sensitivity diagnose reports not applicable: a layer
# on the way that its reverse mode does not cross.
NO_SENSITIVITY = {
    "additive_attention": "AdditiveAttention",
    "attention_seq2seq": "Attention",
    "cnn_lstm": "Conv1D",
    "cnn_lstm_valid": "Conv1D",
    "conv_groups": "Conv1D",
    "masked_attention": "Attention",
    "merges": "Dot",
    "mha": "MultiHeadAttention",
    "multi_output": "GlobalAveragePooling1D",
    "norm_act": "Conv1D",
    "td_conv2d": "TimeDistributed(Conv2D)",
}
SENSITIVITY = [m for m in GRAPH_MODELS if m not in NO_SENSITIVITY]


def act(name, x):
    if name == "tanh":
        return jnp.tanh(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + jnp.exp(-x))
    if name == "hard_sigmoid":  # Keras 3
        return jnp.clip(x / 6.0 + 0.5, 0.0, 1.0)
    if name == "relu":
        # jax.nn.relu, not jnp.maximum: its derivative at 0 is 0, as TensorFlow's and
        # Keras's are (jnp.maximum splits a tie's gradient in halves).
        return jax.nn.relu(x)
    if name == "linear":
        return x
    if name == "softmax":
        e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
        return e / jnp.sum(e, axis=-1, keepdims=True)
    raise SystemExit(f"no reference for activation {name}")


class Cell:
    """One SimpleRNN / LSTM / GRU from its Keras config and weights (one sample)."""

    def __init__(self, cls, cfg, ws):
        self.cls, self.cfg = cls, cfg
        self.K = jnp.asarray(ws[0], dtype=jnp.float64)
        self.R = jnp.asarray(ws[1], dtype=jnp.float64)
        self.M = int(ws[1].shape[0])
        self.b = None if len(ws) < 3 else jnp.asarray(ws[2], dtype=jnp.float64)
        self.act = cfg.get("activation", "tanh")
        self.ract = cfg.get("recurrent_activation", "sigmoid")

    @property
    def S(self):
        return 2 * self.M if self.cls == "LSTM" else self.M

    def step(self, s, x):
        """s (S,), x (D,) -> s' (S,)."""
        M, K, R, b = self.M, self.K, self.R, self.b
        if self.cls == "SimpleRNN":
            z = x @ K + s @ R + (0 if b is None else b)
            return act(self.act, z)
        if self.cls == "LSTM":
            h, c = s[:M], s[M:]
            z = x @ K + h @ R + (0 if b is None else b)
            i = act(self.ract, z[:M])
            f = act(self.ract, z[M : 2 * M])
            g = act(self.act, z[2 * M : 3 * M])
            o = act(self.ract, z[3 * M :])
            c = f * c + i * g
            return jnp.concatenate([o * act(self.act, c), c])
        h = s
        if self.cfg.get("reset_after", True):
            b_in = jnp.zeros(3 * M) if b is None else b[0]
            b_rec = jnp.zeros(3 * M) if b is None else b[1]
            xp, hp = x @ K + b_in, h @ R + b_rec
            z = act(self.ract, xp[:M] + hp[:M])
            r = act(self.ract, xp[M : 2 * M] + hp[M : 2 * M])
            hh = act(self.act, xp[2 * M :] + r * hp[2 * M :])
        else:
            xp = x @ K + (0 if b is None else b)
            z = act(self.ract, xp[:M] + h @ R[:, :M])
            r = act(self.ract, xp[M : 2 * M] + h @ R[:, M : 2 * M])
            hh = act(self.act, xp[2 * M :] + (r * h) @ R[:, 2 * M :])
        return z * h + (1 - z) * hh

    def run(self, x, mask, go_backwards, zero_output):
        """Keras's rnn() over (T, D) x for one sample: (outputs in processing order,
        states after every step, inputs and mask in processing order)."""
        T = x.shape[0]
        order = list(range(T))[::-1] if go_backwards else list(range(T))
        xs = x[jnp.array(order)]
        ms = None if mask is None else mask[np.array(order)]
        s = jnp.zeros(self.S)
        outs, states = [], []
        prev_out = jnp.zeros(self.M)
        for k in range(T):
            new = self.step(s, xs[k])
            if ms is not None and not ms[k]:
                new = s
                out = jnp.zeros(self.M) if zero_output else prev_out
            else:
                out = new[: self.M]
            s = new
            prev_out = out
            outs.append(out)
            states.append(s)
        return jnp.stack(outs), states, xs, ms


def layer_weights(weights, name, prefix=""):
    keys = ("kernel", "recurrent_kernel", "bias")
    return [weights[f"{name}/{prefix}{k}"] for k in keys if f"{name}/{prefix}{k}" in weights]


def build(model):
    with open(os.path.join(SAMPLES, model, "config.json")) as fh:
        cfg = json.load(fh)
    with np.load(os.path.join(SAMPLES, model, "layers.npz")) as z:
        weights = {k: z[k] for k in z.files if k != "__config__"}
    layers = [e for e in cfg["config"]["layers"] if e["class_name"] != "InputLayer"]
    return layers, weights


def forward(layers, weights, x, mask, units=None, embed_input=False, concrete=None):
    """One sample through the chain. ``embed_input``: x is already the Embedding's
    output (its mask given). ``units``: collect each recurrent run. ``concrete``:
    the input's values, for Masking's mask while JAX traces ``x`` (masks are not
    differentiated)."""
    v = x
    for pos, entry in enumerate(layers):
        cls, cfg = entry["class_name"], entry["config"]
        name = cfg["name"]
        if cls in ("Dropout", "SpatialDropout1D", "GaussianNoise"):
            continue
        if cls == "Masking":
            assert pos == 0, "Masking reads the model input here"
            seen = np.asarray(x if concrete is None else concrete)
            mask = np.any(seen != cfg.get("mask_value", 0.0), axis=-1)
            v = v * mask[:, None]
        elif cls == "Embedding":
            if not embed_input:
                ids = np.asarray(v)
                mask = (ids != 0) if cfg.get("mask_zero") else mask
                v = jnp.asarray(weights[f"{name}/embeddings"], dtype=jnp.float64)[ids]
        elif cls in ("SimpleRNN", "LSTM", "GRU"):
            cell = Cell(cls, cfg, layer_weights(weights, name))
            outs, states, xs, ms = cell.run(
                v, mask, cfg.get("go_backwards", False), cfg.get("zero_output_for_mask", False)
            )
            if units is not None:
                units[name] = (cell, states, xs, ms)
            v = outs if cfg.get("return_sequences") else outs[-1]
            mask = mask if cfg.get("return_sequences") else None
        elif cls == "Bidirectional":
            inner = cfg["layer"]
            seqs = inner["config"].get("return_sequences", False)
            runs = []
            for direction in ("forward", "backward"):
                icfg = dict(inner["config"])
                back_cfg = cfg.get("backward_layer")
                if direction == "backward" and back_cfg:
                    icfg = dict(back_cfg["config"])
                go_back = bool(inner["config"].get("go_backwards", False))
                if direction == "backward":
                    go_back = not go_back
                cell = Cell(
                    inner["class_name"], icfg, layer_weights(weights, name, direction + "/")
                )
                outs, states, xs, ms = cell.run(v, mask, go_back, seqs)  # zero_output = seqs
                if units is not None:
                    units[f"{name}/{direction}"] = (cell, states, xs, ms)
                runs.append(outs)
            f, b = runs
            if seqs:
                f, b = f, b[::-1]
            else:
                f, b = f[-1], b[-1]
            mode = cfg.get("merge_mode", "concat")
            if mode == "concat":
                v = jnp.concatenate([f, b], axis=-1)
            elif mode == "sum":
                v = f + b
            elif mode == "ave":
                v = (f + b) / 2
            else:
                v = f * b
            mask = mask if seqs else None
        elif cls in ("Dense", "TimeDistributed"):
            dcfg = cfg["layer"]["config"] if cls == "TimeDistributed" else cfg
            v = v @ jnp.asarray(weights[f"{name}/kernel"], dtype=jnp.float64)
            if f"{name}/bias" in weights:
                v = v + weights[f"{name}/bias"]
            v = act(dcfg.get("activation", "linear"), v)
        else:
            raise SystemExit(f"no reference for layer {cls}")
    return v


def state_jacobians(cell, states, xs, ms):
    """(T, S, S): ds_{T-1}/ds_k by forward-mode autodiff of the steps after k."""
    T = len(states)
    out = []
    for k in range(T):

        def rest(s, k=k):
            for j in range(k + 1, T):
                if ms is not None and not ms[j]:
                    continue  # a masked step keeps the state
                s = cell.step(s, xs[j])
            return s

        out.append(np.asarray(jax.jacfwd(rest)(states[k])))
    return np.stack(out)


# --- graph models: Keras 3 on JAX ---------------------------------------------------


def _float64(obj):
    """A Keras config with every float32 dtype (policy) made float64, and no layer
    stateful (states start at zero, as rnninspect starts them: no file holds them;
    and the batch may then be of any size)."""
    if isinstance(obj, dict):
        if obj.get("stateful") is True:
            obj = {**obj, "stateful": False}
        if obj.get("class_name") == "DTypePolicy":
            return {**obj, "config": {**obj["config"], "name": "float64"}}
        return {k: ("float64" if v == "float32" else _float64(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_float64(v) for v in obj]
    return obj


def keras_model(model):
    """The sample model as Keras 3 builds it, in float64, with its saved weights."""
    import keras
    from keras.src.backend.common import dtypes

    keras.config.set_floatx("float64")  # the layers whose config names no dtype
    # Keras promotes float64 to float32 on backends other than TensorFlow ("as JAX
    # does" without x64): keep float64, as JAX does with x64 on.
    dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"
    saved = keras.saving.load_model(os.path.join(SAMPLES, model, "model.keras"), compile=False)
    with open(os.path.join(SAMPLES, model, "config.json")) as fh:
        cfg = _float64(json.load(fh))
    m = keras.saving.deserialize_keras_object(cfg)
    m.set_weights([np.asarray(w, dtype=np.float64) for w in saved.get_weights()])
    return m


class KerasCell:
    """One Keras cell as ``Cell.step`` expects it: s (S,), x (D,) -> s' (S,)."""

    def __init__(self, cell):
        self.cell = cell
        size = cell.state_size
        self.sizes = [int(v) for v in (size if isinstance(size, (list, tuple)) else [size])]
        self.M = self.sizes[0]
        self.S = sum(self.sizes)

    def split(self, s):
        out, k = [], 0
        for n in self.sizes:
            out.append(s[None, k : k + n])
            k += n
        return out

    def step(self, s, x):
        _, new = self.cell.call(x[None], self.split(s), training=False)
        new = list(new) if isinstance(new, (list, tuple)) else [new]
        return jnp.concatenate([jnp.reshape(v, (-1,)) for v in new])


def watched_calls(m, xs):
    """Keras's forward pass over ``xs``, recording each recurrent call: (layer,
    sequences, initial_state, mask, output), in call order."""
    from keras.src.layers.rnn.rnn import RNN

    calls = []
    original = RNN.call

    def call(self, sequences, initial_state=None, mask=None, training=False):
        out = original(self, sequences, initial_state=initial_state, mask=mask, training=training)
        calls.append((self, sequences, initial_state, mask, out))
        return out

    RNN.call = call
    try:
        y = m(xs, training=False)
    finally:
        RNN.call = original
    return calls, y


def unit_keys(m, calls):
    """rnninspect's unit names for the recorded calls: NAME (NAME#k for a shared
    layer's k-th call), NAME/forward and NAME/backward, NAME/cell_k."""
    import keras

    owner = {}
    for layer in _all_layers(m):
        if isinstance(layer, keras.layers.Bidirectional):
            owner[id(layer.forward_layer)] = (layer, "forward")
            owner[id(layer.backward_layer)] = (layer, "backward")
    seen = {}
    keys = []
    for layer, *_ in calls:
        top, direction = owner.get(id(layer), (layer, None))
        count = seen.get((id(top), direction), 0)
        seen[(id(top), direction)] = count + 1
        name = top.name if count == 0 else f"{top.name}#{count}"
        keys.append(name if direction is None else f"{name}/{direction}")
    return keys


def _all_layers(m):
    for layer in m.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def run_call(layer, seq, initial, mask):
    """The call's steps, Keras's cell over one sample at a time: per unit (a
    StackedRNNCells: per cell) ``(KerasCell, states, inputs, mask)`` in processing
    order, as ``state_jacobians`` takes them, for every sample, and the outputs."""
    import keras

    seq = np.asarray(seq, dtype=np.float64)
    N, T = seq.shape[:2]
    cells = layer.cell.cells if isinstance(layer.cell, keras.layers.StackedRNNCells) else [layer.cell]
    wrapped = [KerasCell(c) for c in cells]
    order = np.arange(T)[::-1] if layer.go_backwards else np.arange(T)
    ms = None if mask is None else np.asarray(mask, bool)[:, order]
    flat_init = None if initial is None else [np.asarray(v, np.float64) for v in initial]
    per_unit = [[] for _ in wrapped]  # per cell: per sample (states, xs, ms)
    outs = np.zeros((N, T, wrapped[-1].M))
    for n in range(N):
        xs = jnp.asarray(seq[n][order])
        given = [] if flat_init is None else [v[n] for v in flat_init]
        for j, kc in enumerate(wrapped):
            if given:
                s = jnp.concatenate([jnp.asarray(v) for v in given[: len(kc.sizes)]])
                given = given[len(kc.sizes) :]
            else:
                s = jnp.zeros(kc.S)
            states, inputs = [], []
            prev_out = jnp.zeros(kc.M)
            out_seq = []
            for k in range(T):
                new = kc.step(s, xs[k])
                if ms is not None and not ms[n, k]:
                    new = s
                    out = jnp.zeros(kc.M) if layer.zero_output_for_mask else prev_out
                else:
                    out = new[: kc.M]
                inputs.append(xs[k])
                s = new
                prev_out = out
                states.append(s)
                out_seq.append(new[: kc.M])  # the next cell reads this step's h
            per_unit[j].append((kc, states, jnp.stack(inputs), None if ms is None else ms[n]))
            xs = jnp.stack(out_seq)
            if j == len(wrapped) - 1:
                outs[n] = np.asarray(jnp.stack(states))[:, : kc.M]
    return per_unit, outs


def _check_call(layer, out, states_h, mask, T):
    """The largest difference between the layer's own output and the reference's
    states (at the steps whose state it outputs)."""
    first = out[0] if isinstance(out, (list, tuple)) else out
    first = np.asarray(first, dtype=np.float64)
    order = np.arange(T)[::-1] if layer.go_backwards else np.arange(T)
    if first.ndim == 3:  # the sequence, in processing order
        keep = np.ones(first.shape[:2], bool) if mask is None else np.asarray(mask, bool)[:, order]
        return float(np.max(np.abs(first - states_h)[keep])) if keep.any() else 0.0
    last = np.zeros_like(first)
    for n in range(first.shape[0]):  # the last real step's state (zeros: none)
        real = np.arange(T) if mask is None else np.flatnonzero(np.asarray(mask, bool)[n, order])
        if real.size:
            last[n] = states_h[n, real[-1]]
    return float(np.max(np.abs(first - last)))


def graph_references(model):
    """The arrays and report entry of one graph model."""
    m = keras_model(model)
    with np.load(os.path.join(SAMPLES, model, "golden.npz")) as g:
        golden = {k: g[k] for k in g.files}
    names = [t.name for t in m.inputs]
    if "x" in golden:
        xs = [golden["x"]]
    else:
        xs = [golden[f"x/{i}"] for i in range(len(names))]
    y_keras = golden["y"] if "y" in golden else golden["y/0"]
    feed = [x if x.dtype.kind in "iu" else x.astype(np.float64) for x in xs]
    calls, y = watched_calls(m, feed if len(feed) > 1 else feed[0])
    y0 = np.asarray(y[0] if isinstance(y, (list, tuple)) else y)
    err = float(np.max(np.abs(y0 - y_keras)))
    assert err < 1e-5, f"{model}: Keras in float64 on JAX is {err} from Keras's golden"
    arrays, units, check = {}, [], 0.0
    for key, (layer, seq, initial, mask, out) in zip(unit_keys(m, calls), calls, strict=True):
        per_unit, outs = run_call(layer, seq, initial, mask)
        check = max(check, _check_call(layer, out, outs, mask, seq.shape[1]))
        for j, runs in enumerate(per_unit):
            unit = key if len(per_unit) == 1 else f"{key}/cell_{j}"
            Js = [state_jacobians(kc, states, xs_, ms) for kc, states, xs_, ms in runs]
            arrays[f"{model}/jacobian/{unit}"] = Js[0]
            arrays[f"{model}/jacobian_norm/{unit}"] = np.array(
                [[np.linalg.norm(J, 2) for J in Jn] for Jn in Js]
            )
            units.append(unit)
    assert check < 1e-9, f"{model}: the reference's steps are {check} from the layers' outputs"
    if model in SENSITIVITY:
        for i, name in enumerate(names):
            sens = input_sensitivities(m, feed, i)
            key = "input_sensitivity" if len(names) == 1 else f"input_sensitivity/{name}"
            arrays[f"{model}/{key}"] = sens
    report = {"max_abs_y_minus_keras": err, "max_abs_steps_minus_layers": check, "units": units}
    return arrays, report


def input_sensitivities(m, feed, i):
    """(N, T): ||d y / d x_t||_F per sample, y the first output, x input ``i`` (ids:
    the embedding vectors looked up from it, every Embedding reading it jointly)."""
    import keras

    N = feed[0].shape[0]
    out = []
    ids = feed[i].dtype.kind in "iu"
    readers = [layer for layer in _all_layers(m) if isinstance(layer, keras.layers.Embedding)]
    for n in range(N):
        rows = [jnp.asarray(x[n : n + 1]) for x in feed]

        def first(v, rows=rows):
            args = list(rows)
            args[i] = v
            y = m(args if len(args) > 1 else args[0], training=False)
            return (y[0] if isinstance(y, (list, tuple)) else y)[0]

        if not ids:
            jac = np.asarray(jax.jacrev(first)(jnp.asarray(rows[i])))  # (*y, 1, T, D)
            T = jac.shape[-2]
            sq = (np.moveaxis(jac, -2, 0).reshape(T, -1) ** 2).sum(axis=1)
        else:
            sq = _embedding_sensitivity(m, rows, i, readers)
        out.append(np.sqrt(sq))
    return np.stack(out)


def _embedding_sensitivity(m, rows, i, readers):
    """Squared ||dy/de_t|| summed over the Embedding layers that read input ``i``:
    each gets an added zero (1, T, E) term, differentiated at zero."""
    from keras.src.layers.core.embedding import Embedding

    original = Embedding.call
    deltas = {}

    def call(self, inputs):
        out = original(self, inputs)
        d = deltas.get(id(self))
        return out if d is None else out + d

    mine = [layer for layer in readers if _reads_input(m, layer, i)]
    T = rows[i].shape[1]
    zeros = [jnp.zeros((1, T, int(layer.output_dim))) for layer in mine]

    def first(*ds):
        deltas.clear()
        for layer, d in zip(mine, ds, strict=True):
            deltas[id(layer)] = d
        y = m(rows if len(rows) > 1 else rows[0], training=False)
        return (y[0] if isinstance(y, (list, tuple)) else y)[0]

    Embedding.call = call
    try:
        jacs = jax.jacrev(first, argnums=tuple(range(len(mine))))(*zeros)
    finally:
        Embedding.call = original
        deltas.clear()
    sq = np.zeros(T)
    for jac in jacs:
        jac = np.asarray(jac)  # (*y, 1, T, E)
        sq += (np.moveaxis(jac, -2, 0).reshape(T, -1) ** 2).sum(axis=1)
    return sq


def _reads_input(m, layer, i):
    """Does ``layer`` read model input ``i`` directly?"""
    target = m.inputs[i]
    for node in layer._inbound_nodes:
        for t in node.input_tensors:
            if t is target or getattr(t, "name", None) == target.name:
                return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    arrays = {}
    report = {}
    if args.only and os.path.exists(args.out):  # update those models, keep the rest
        with np.load(args.out) as z:
            arrays = {k: z[k] for k in z.files if k.split("/")[0] not in args.only}
        with open(os.path.splitext(args.out)[0] + ".json") as fh:
            report = json.load(fh)["models"]
    for model in args.only or MODELS + GRAPH_MODELS:
        if model in GRAPH_MODELS:
            found, report[model] = graph_references(model)
            arrays.update(found)
            print(f"{model}: {report[model]}", file=sys.stderr)
            save(args.out, arrays, report)  # each model kept as it is done
            continue
        layers, weights = build(model)
        with np.load(os.path.join(SAMPLES, model, "golden.npz")) as g:
            x, y_keras = g["x"], g["y"]
        ids = x.dtype.kind in "iu"
        first = layers[0]
        N = x.shape[0]
        y_ref, sens = [], []
        per_unit = {}
        for n in range(N):
            units = {}
            xn = x[n] if ids else jnp.asarray(x[n], dtype=jnp.float64)
            y_ref.append(np.asarray(forward(layers, weights, xn, None, units)))
            for key, (cell, states, xs, ms) in units.items():
                J = state_jacobians(cell, states, xs, ms)
                per_unit.setdefault(key, []).append(J)
            if ids:  # differentiate with respect to the embedding vectors
                name = first["config"]["name"]
                E = jnp.asarray(weights[f"{name}/embeddings"], dtype=jnp.float64)
                mask = (x[n] != 0) if first["config"].get("mask_zero") else None

                def fn(e, mask=mask, ls=layers, ws=weights):
                    return forward(ls, ws, e, mask, embed_input=True)

                jac = jax.jacrev(fn)(E[x[n]])
            else:

                def fn(v, c=x[n], ls=layers, ws=weights):
                    return forward(ls, ws, v, None, concrete=c)

                jac = jax.jacrev(fn)(xn)
            jac = np.asarray(jac)  # (*y, T, D)
            T = jac.shape[-2]
            sens.append(np.sqrt((np.moveaxis(jac, -2, 0).reshape(T, -1) ** 2).sum(axis=1)))
        y_ref = np.stack(y_ref)
        err = float(np.max(np.abs(y_ref - y_keras)))
        assert err < 1e-5, f"{model}: the reference's forward pass is {err} from Keras's"
        report[model] = {"max_abs_y_minus_keras": err, "units": list(per_unit)}
        arrays[f"{model}/input_sensitivity"] = np.stack(sens)
        for key, Js in per_unit.items():
            arrays[f"{model}/jacobian/{key}"] = Js[0]
            arrays[f"{model}/jacobian_norm/{key}"] = np.array(
                [[np.linalg.norm(J, 2) for J in Jn] for Jn in Js]
            )
        print(f"{model}: y within {err:.2g} of Keras; units {', '.join(per_unit)}", file=sys.stderr)
    save(args.out, arrays, report)


def save(out, arrays, report):
    np.savez_compressed(out, **arrays)
    meta = {
        "jax": jax.__version__,
        "numpy": np.__version__,
        "keras": _keras_version(),
        "models": {m: report[m] for m in MODELS + GRAPH_MODELS if m in report},
    }
    with open(os.path.splitext(out)[0] + ".json", "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")


def _keras_version():
    try:  # only the graph models need Keras
        import keras
    except ImportError:
        return None
    return keras.__version__


if __name__ == "__main__":
    main()
