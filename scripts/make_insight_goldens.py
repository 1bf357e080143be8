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

    python -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install jax numpy
    /tmp/jaxenv/bin/python scripts/make_insight_goldens.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys

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
    for model in args.only or MODELS:
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
    np.savez_compressed(args.out, **arrays)
    meta = {
        "jax": jax.__version__,
        "numpy": np.__version__,
        "models": {m: report[m] for m in MODELS if m in report},
    }
    with open(os.path.splitext(args.out)[0] + ".json", "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")


if __name__ == "__main__":
    main()
