#!/usr/bin/env python
"""Write ``tests/data/states/*.keras`` and ``tests/data/states.npz``: Keras's own
answers for states carried across calls and given initial states.

Developer-only (rnninspect never imports TensorFlow or Keras). Run with the Keras venv
(tensorflow-cpu 2.21.0, keras 3.15.1), from the repo root::

    /work/kenv/bin/python scripts/make_state_goldens.py
    /work/kenv/bin/python scripts/make_state_goldens.py --every-layer   # see every_layer()

For each small model (N=3 samples, T=12 steps, D=4 features; random weights, scale
0.5, non-zero biases) it saves the model (``stateful=False``) as
``tests/data/states/<name>.keras`` and records, in ``states.npz`` under ``<name>/``:

* ``x`` (N, T, D) and ``pieces`` (the lengths 5, 4, 3 the sequence is cut into);
* ``y_full``: ``predict(x)`` in one pass;
* ``y_stateful``: the same layers rebuilt with ``stateful=True`` (fixed batch N),
  ``reset_states()`` once, then fed the pieces in order with ``predict``; the outputs
  concatenated over T (for a model returning the last state: the last piece's);
* ``final/<state key>``: each stateful recurrent layer's states after the last piece
  (``layer.states``; a Bidirectional's ``forward_layer`` / ``backward_layer``), in
  rnninspect's key layout (``<layer>/h``, ``<layer>/c``, ``<layer>/forward/h``,
  ``<layer>/cell_0/h``, ...);
* ``init/<state key>`` and ``y_init``: random initial states for the first recurrent
  layer and Keras's output with them, from a functional copy of the model (same
  layers, so the same weights) calling that layer as ``layer(x, initial_state=[...])``
  (with ``mask=`` given explicitly after a Masking layer: Keras 3 does not pass the
  mask on to a call with ``initial_state``, tf.keras did).

It also prints what Keras's stateful Bidirectional does across pieces (each direction
continues from its own final state: the backward one from where it stopped, at the
start of the previous piece), which the README documents.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import json  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")
L = keras.layers
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data"
N, T, D = 3, 12, 4
PIECES = [5, 4, 3]
rng = np.random.RandomState(20260514)


def models():
    """name -> a function making the list of layers (called twice: stateful or not)."""
    return {
        "simple_rnn": lambda s: [
            L.SimpleRNN(6, return_sequences=True, stateful=s, name="rnn"),
            L.Dense(2, name="head"),
        ],
        "lstm": lambda s: [
            L.LSTM(5, return_sequences=True, stateful=s, name="lstm"),
            L.Dense(2, name="head"),
        ],
        "gru": lambda s: [
            L.GRU(5, return_sequences=True, stateful=s, name="gru"),
            L.Dense(2, name="head"),
        ],
        "gru_v1": lambda s: [
            L.GRU(4, return_sequences=True, reset_after=False, stateful=s, name="gru"),
            L.Dense(2, name="head"),
        ],
        "bidi": lambda s: [
            L.Bidirectional(L.LSTM(4, return_sequences=True, stateful=s), name="bidi"),
            L.Dense(2, name="head"),
        ],
        "bidi_gru_sum": lambda s: [
            L.Bidirectional(
                L.GRU(3, return_sequences=True, stateful=s), merge_mode="sum", name="bidi"
            ),
            L.Dense(2, name="head"),
        ],
        "stacked": lambda s: [
            L.LSTM(5, return_sequences=True, stateful=s, name="enc1"),
            L.GRU(4, return_sequences=True, stateful=s, name="enc2"),
            L.SimpleRNN(3, return_sequences=True, stateful=s, name="enc3"),
            L.Dense(2, name="head"),
        ],
        "cells": lambda s: [
            L.RNN(
                L.StackedRNNCells([L.LSTMCell(4), L.GRUCell(3)]),
                return_sequences=True,
                stateful=s,
                name="cells",
            ),
            L.Dense(2, name="head"),
        ],
        "backwards": lambda s: [
            L.LSTM(4, return_sequences=True, go_backwards=True, stateful=s, name="lstm"),
            L.Dense(2, name="head"),
        ],
        "masked": lambda s: [
            L.Masking(0.0, name="mask"),
            L.LSTM(4, return_sequences=True, stateful=s, name="lstm"),
            L.Dense(2, name="head"),
        ],
        "last_state": lambda s: [L.LSTM(5, stateful=s, name="lstm"), L.Dense(2, name="head")],
    }


def build(make, stateful):
    batch = (N, None, D) if stateful else (None, None, D)
    x = keras.Input(batch_shape=batch, name="x")
    h = x
    for layer in make(stateful):
        h = layer(h)
    return keras.Model(x, h, name="m")


def randomise(model):
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([(rng.randn(*w.shape) * 0.5).astype(np.float32) for w in ws])


def state_keys(layer):
    """rnninspect's keys for a recurrent layer's states, and the Keras state variables."""
    if isinstance(layer, L.Bidirectional):
        out = []
        for part, inner in (("forward", layer.forward_layer), ("backward", layer.backward_layer)):
            out += [(f"{layer.name}/{part}/{n}", v) for n, v in zip(("h", "c"), inner.states)]
        return out
    if isinstance(layer.cell, L.StackedRNNCells):
        out, k = [], 0
        for i, cell in enumerate(layer.cell.cells):
            n = 2 if isinstance(cell, L.LSTMCell) else 1
            out += [
                (f"{layer.name}/cell_{i}/{nm}", v)
                for nm, v in zip(("h", "c")[:n], flat_states(layer)[k : k + n])
            ]
            k += n
        return out
    names = ("h", "c") if isinstance(layer, L.LSTM) else ("h",)
    return [(f"{layer.name}/{n}", v) for n, v in zip(names, layer.states)]


def flat_states(layer):
    return keras.tree.flatten(layer.states)


def reset(layer):
    """``reset_states`` (done by hand: Keras 3.15's fails on RNN(StackedRNNCells))."""
    if isinstance(layer, L.Bidirectional):
        reset(layer.forward_layer)
        reset(layer.backward_layer)
        return
    for v in flat_states(layer):
        v.assign(np.zeros(v.shape, dtype=np.float32))


def is_rnn(layer):
    return isinstance(layer, (L.RNN, L.Bidirectional))


def main():
    (OUT / "states").mkdir(parents=True, exist_ok=True)
    store = {}
    report = {}
    for name, make in models().items():
        base = build(make, False)
        randomise(base)
        full = build(make, True)
        full.set_weights(base.get_weights())
        x = rng.randn(N, T, D).astype(np.float32)
        if name == "masked":
            x[0, 3:7] = 0.0  # across the first cut (5)
            x[1, 8:] = 0.0  # the end of the sequence, over the last cut (9)
            x[2, :2] = 0.0
        y_full = base.predict(x, verbose=0)
        for layer in full.layers:
            if is_rnn(layer):
                reset(layer)
        outs, t0 = [], 0
        for n in PIECES:
            outs.append(full.predict(x[:, t0 : t0 + n], batch_size=N, verbose=0))
            t0 += n
        seq = outs[0].ndim == 3
        y_stateful = np.concatenate(outs, axis=1) if seq else outs[-1]
        finals = {}
        for layer in full.layers:
            if is_rnn(layer):
                for key, var in state_keys(layer):
                    finals[key] = np.asarray(var.numpy(), dtype=np.float32)
        # initial_state: the first recurrent layer of the stateless model, given states.
        rnn = next(layer for layer in base.layers if is_rnn(layer))
        xi = keras.Input((None, D), name="x")
        init_keys = [
            k for k, _ in state_keys(next(layer for layer in full.layers if is_rnn(layer)))
        ]
        shapes = [
            int(v.shape[-1])
            for _, v in state_keys(next(layer for layer in full.layers if is_rnn(layer)))
        ]
        inits = [keras.Input((m,), name=f"s{i}") for i, m in enumerate(shapes)]
        nested = inits
        if isinstance(rnn, L.RNN) and isinstance(rnn.cell, L.StackedRNNCells):
            nested, k = [], 0  # Keras takes a stack's initial state per cell
            for cell in rnn.cell.cells:
                n = 2 if isinstance(cell, L.LSTMCell) else 1
                nested.append(inits[k : k + n])
                k += n
        # Keras 3 passes no mask to a layer called with initial_state (tf.keras did):
        # give a Masking layer's mask explicitly, as a model config would.
        masking = next((layer for layer in base.layers if isinstance(layer, L.Masking)), None)
        extra = {}
        if masking is not None:
            extra["mask"] = keras.ops.any(keras.ops.not_equal(xi, masking.mask_value), axis=-1)
        h = xi
        for layer in base.layers[1:]:
            h = layer(h, initial_state=nested, **extra) if layer is rnn else layer(h)
        mi = keras.Model([xi, *inits], h)
        given = [(rng.randn(N, m) * 0.7).astype(np.float32) for m in shapes]
        y_init = mi.predict([x, *given], verbose=0)
        base.save(OUT / "states" / f"{name}.keras")
        p = f"{name}/"
        store[p + "x"] = x
        store[p + "pieces"] = np.asarray(PIECES, dtype=np.int64)
        store[p + "y_full"] = y_full
        store[p + "y_stateful"] = y_stateful
        store[p + "y_init"] = y_init
        for k, v in finals.items():
            store[p + "final/" + k] = v
        for k, v in zip(init_keys, given):
            store[p + "init/" + k] = v
        one_pass = bool(np.allclose(y_stateful, y_full, rtol=1e-5, atol=1e-6))
        report[name] = {"pieces_equal_one_pass": one_pass, "states": list(finals)}
        print(f"{name}: stateful pieces == one pass: {one_pass}; states {list(finals)}")
    store["__report__"] = np.asarray(json.dumps(report))
    np.savez(OUT / "states.npz", **store)
    print(
        f"wrote {OUT / 'states.npz'} ({len(store)} arrays) and {len(report)} models in {OUT / 'states'}"
    )


EVERY_LAYER = ("stacked", "bidi", "simple_rnn", "gru")  # models in tests/data/states/


def every_layer():
    """``tests/data/states_every_layer.npz``: for the saved models of ``main`` (not
    rebuilt: the same files, so the same weights), EVERY recurrent layer called with
    random initial states, ``layer(h, initial_state=[...])``, and Keras's output:
    ``<name>/init/<state key>`` and ``<name>/y_init``, on ``<name>/x`` of
    ``states.npz``. Its own random stream, so ``main``'s data stay as they are."""
    gen = np.random.RandomState(20261201)
    with np.load(OUT / "states.npz") as z:
        xs = {name: z[f"{name}/x"] for name in EVERY_LAYER}
    store = {}
    for name in EVERY_LAYER:
        base = keras.saving.load_model(OUT / "states" / f"{name}.keras")
        x = xs[name]
        xi = keras.Input((None, D), name="x")
        inputs, given, h = [], [], xi
        for layer in base.layers:
            if isinstance(layer, L.InputLayer):
                continue
            if not is_rnn(layer):
                h = layer(h)
                continue
            if isinstance(layer, L.Bidirectional):
                inner = (layer.forward_layer, layer.backward_layer)
                parts = [("forward", r) for r in inner[:1]] + [("backward", r) for r in inner[1:]]
                keys = []
                for part, r in parts:
                    names = ("h", "c") if isinstance(r, L.LSTM) else ("h",)
                    keys += [(f"{layer.name}/{part}/{n}", r.units) for n in names]
            else:
                names = ("h", "c") if isinstance(layer, L.LSTM) else ("h",)
                keys = [(f"{layer.name}/{n}", layer.units) for n in names]
            states = []
            for key, m in keys:
                s = keras.Input((m,), name=key.replace("/", "_"))
                inputs.append(s)
                states.append(s)
                v = (gen.randn(N, m) * 0.7).astype(np.float32)
                given.append(v)
                store[f"{name}/init/{key}"] = v
            h = layer(h, initial_state=states)
        mi = keras.Model([xi, *inputs], h)
        store[f"{name}/y_init"] = mi.predict([x, *given], verbose=0)
        print(f"{name}: initial states for {sorted(k for k in store if k.startswith(name + '/init/'))}")
    np.savez(OUT / "states_every_layer.npz", **store)
    print(f"wrote {OUT / 'states_every_layer.npz'} ({len(store)} arrays)")


if __name__ == "__main__":
    import sys

    if "--every-layer" in sys.argv:
        every_layer()
    else:
        main()
