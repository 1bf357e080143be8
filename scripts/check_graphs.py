#!/usr/bin/env python
"""Random Keras graphs against rnninspect: outputs and parameter counts on unseen models.

Developer-only. Run with a Python that has tensorflow-cpu, Keras 3 and tf_keras::

    /work/kenv/bin/python scripts/check_graphs.py --seed 1 --count 40 [--seed 2 ...]
        [--rnninspect-python /work/venv/bin/python] [--cli /work/venv/bin/rnninspect]
        [--keep DIR [--keep-all]] [--families seq2seq,attention,...] [--cli-every 4] [--live]

Per seed, one TensorFlow process (this one) draws ``count`` random models from the
families below (small sizes: T <= 9, units <= 6), builds each in Keras 3 and, where the
architecture exists there, in tf_keras with identical random weights (biases non-zero,
BatchNorm moving statistics non-trivial, PReLU alphas and attention scales random), and
writes into a temporary directory:

* Keras 3: ``k3.keras``, legacy ``k3.h5`` (``model.save("x.h5")``), ``k3.weights.h5`` +
  ``k3.json`` (``to_json()``);
* tf_keras: ``tfk.h5`` (Keras 2 HDF5), ``tfk.keras``, ``tfk_w.h5`` (``save_weights``) +
  ``tfk.json``;

plus ``x.npz`` (a seeded batch; padded zeros or ``mask_value`` steps where masks apply,
one fully padded row in some models) and the reference: each generation's ``predict``
(every output, in order) and ``count_params()``. Then one subprocess in the rnninspect
venv (this file with ``--worker``) loads every file with ``rnninspect.load_model`` (a
weights-only file with its config), runs ``forward_all`` and ``summary().total_params``,
and writes the outputs into an ``.npz``; the comparison is ``np.isclose(rtol=1e-4,
atol=1e-5)``. The worker and the CLI import a snapshot of the rnninspect package copied
per seed (retried until every module imports), so edits made to the tree during a run
cannot mix versions; ``--live`` uses the tree as it is. Keras's outputs are flattened in
Keras's order (nested lists in order, dicts by sorted key). Rows whose input is
entirely padding are reported apart (Keras 3 and tf_keras themselves differ there for
some layers: see docs/keras-semantics.md). For
every ``--cli-every``-th model the CLI runs too: ``summary --json`` (total params),
``forward --json`` (outputs) and ``trace --json`` (each recurrent layer called once
at the top level against Keras's own output of that layer; the last step when it does
not return sequences).

Families: seq2seq (encoder states as decoder initial_state: LSTM [h, c], GRU/SimpleRNN
[h], Bidirectional encoders), attention (Attention, AdditiveAttention,
MultiHeadAttention over encoder outputs, self-attention with causal masks),
autoencoder (RepeatVector), cnn_lstm (Conv1D + pooling, or TimeDistributed(Conv2D,
pooling, Flatten)), merge (parallel branches through every merge layer, masked and
unmasked), norm_act (BatchNormalization, LayerNormalization, ReLU/LeakyReLU/PReLU/ELU/
Softmax/Activation), rnn_cell (RNN(cell), StackedRNNCells), bidi_state
(Bidirectional(return_state) with every merge mode), convlstm (ConvLSTM1D/2D),
shared (one layer called on two inputs), nested (Functional/Sequential sub-models,
called twice), masking (Embedding(mask_zero)/Masking into recurrent layers, merges,
attention, pooling), stateful (fixed batch size), plumbing (RepeatVector, Flatten,
Reshape, Permute, Cropping1D, ZeroPadding1D, UpSampling1D, Conv2D, 2-D pooling,
global pooling), sequential (random Sequential chains). Multi-output models
(return_state tensors as outputs; dict outputs for some) occur in several families;
some models let Keras name the layers, some declare T = None.

Prints one line per model (its description), a table per family and file format
(passed / failed), then every failure with the model, the file, and the max abs error
or the exception's first line. Exit 1 if anything failed. ``--keep DIR`` copies the
directories of failing models (all files, ``x.npz``, ``ref.npz``, ``desc.txt``) there.
"""

from __future__ import annotations

import os
import sys

WORKER = "--worker" in sys.argv[1:]
if not WORKER:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import argparse
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import traceback
import warnings

import numpy as np

warnings.filterwarnings("ignore")

RTOL, ATOL = 1e-4, 1e-5
N_ROWS = 5
FORMATS = ("k3.keras", "k3.h5", "k3.weights.h5+json", "tfk.h5", "tfk.keras", "tfk_w.h5+json")
VENV_PY = "/work/venv/bin/python"
VENV_CLI = "/work/venv/bin/rnninspect"


def one_line(text: str, limit: int = 220) -> str:
    lines = [s.strip() for s in str(text).strip().splitlines() if s.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ======================================================================================
# Worker: runs in the rnninspect venv (numpy only; no TensorFlow)
# ======================================================================================


def worker(jobs_path: str, out_path: str) -> int:
    import rnninspect

    with open(jobs_path) as f:
        jobs = json.load(f)
    results = []
    for job in jobs:
        t0 = time.time()
        res = {"id": job["id"]}
        try:
            m = rnninspect.load_model(job["path"], config=job.get("config"))
            with np.load(job["x"]) as z:
                xs = [z[f"x{i}"] for i in range(job["n_inputs"])]
            try:
                res["params"] = int(m.summary().total_params)
            except Exception as exc:  # the summary may fail on its own
                res["params_error"] = f"{type(exc).__name__}: {one_line(str(exc))}"
            ys = m.forward_all(xs if len(xs) > 1 else xs[0])
            np.savez(job["out"], **{f"y{i}": np.asarray(y) for i, y in enumerate(ys)})
            res["n_outputs"] = len(ys)
        except Exception as exc:
            res["error"] = f"{type(exc).__name__}: {one_line(str(exc))}"
            res["traceback"] = traceback.format_exc()[-3000:]
        res["seconds"] = round(time.time() - t0, 3)
        results.append(res)
    with open(out_path, "w") as f:
        json.dump(results, f)
    return 0


# ======================================================================================
# Random choices, replayable: the same draws build the Keras 3 and the tf_keras model
# ======================================================================================


class Chooser:
    def __init__(self, rng=None, replay=None):
        self.rng = rng
        self.replay = replay is not None
        self.log = list(replay) if replay is not None else []
        self.i = 0

    def _get(self, draw):
        if self.replay:
            if self.i >= len(self.log):
                raise RuntimeError("replay ran out of choices (the builder is not deterministic)")
            v = self.log[self.i]
            self.i += 1
            return v
        v = draw()
        self.log.append(v)
        return v

    def int(self, lo, hi):
        return self._get(lambda: int(self.rng.integers(lo, hi + 1)))

    def pick(self, seq):
        seq = list(seq)
        return seq[self._get(lambda: int(self.rng.integers(len(seq))))]

    def p(self, prob):
        return self._get(lambda: bool(self.rng.random() < prob))

    def f(self, lo, hi):
        return self._get(lambda: round(float(self.rng.uniform(lo, hi)), 3))


class Unavailable(Exception):
    """The architecture does not exist in this Keras generation."""


class G:
    """Build context: one Keras generation, the choices, inputs and a description."""

    def __init__(self, K, major, c):
        self.K, self.L, self.major, self.c = K, K.layers, major, c
        self.inputs = []
        self.ispec = []
        self.n = 0
        self.desc = []
        self.batch = None  # fixed batch size (stateful models)
        self.var_T = False  # inputs declared with T = None (the family allows it)
        self.model = None  # a family that builds its own (Sequential) model
        self.default_names = c.p(0.15)  # layers named by Keras, not by us
        self.notes = []

    def name(self, base):
        self.n += 1
        if self.default_names and base not in ("in",):
            return None  # Keras picks the name (lstm, lstm_1, ...)
        return f"{base}_{self.n}"

    def d(self, text):
        self.desc.append(text)

    def inp(self, shape, *, ids=None, masked=False, mask_value=0.0, spatial_holes=False,
            vary=False):
        """A model input. ``ids``: vocabulary size (int32 ids, 0 = padding).
        ``masked``: the batch gets padded steps (zeros / mask_value). ``vary``: declared
        with T = None when the model draws a variable T."""
        name = self.name("in")
        kw = {"dtype": "int32"} if ids else {}
        if self.batch:
            kw["batch_size"] = self.batch
        kshape = (None, *shape[1:]) if vary and self.var_T else tuple(shape)
        t = self.K.Input(shape=kshape, name=name, **kw)
        self.inputs.append(t)
        self.ispec.append({"name": name, "shape": list(shape), "ids": ids, "masked": masked,
                           "mask_value": mask_value, "spatial_holes": spatial_holes})
        return t


def rnn_cls(g, kind):
    return {"LSTM": g.L.LSTM, "GRU": g.L.GRU, "SimpleRNN": g.L.SimpleRNN}[kind]


def rnn_extras(g, kind, *, backwards=True, dropout=True):
    """Random non-default options of a recurrent layer, and their description."""
    c = g.c
    kw = {}
    bits = []
    act = c.pick(["tanh"] * 5 + ["relu", "sigmoid", "softsign", "elu"])
    if act != "tanh":
        kw["activation"] = act
        bits.append(act)
    if kind != "SimpleRNN":
        ra = c.pick(["sigmoid"] * 5 + ["hard_sigmoid"])
        if ra != "sigmoid":
            kw["recurrent_activation"] = ra
            bits.append("ra=" + ra)
    if c.p(0.15):
        kw["use_bias"] = False
        bits.append("nobias")
    gb = c.p(0.2)
    if gb and backwards:
        kw["go_backwards"] = True
        bits.append("gb")
    if kind == "GRU" and c.p(0.2):
        kw["reset_after"] = False
        bits.append("reset_after=F")
    dr = c.p(0.15)
    if dr and dropout:
        kw["dropout"] = 0.1
        kw["recurrent_dropout"] = 0.1
        bits.append("drop")
    if c.p(0.1) and not g.var_T:  # unrolling needs a fixed T
        kw["unroll"] = True
        bits.append("unroll")
    if c.p(0.12):
        kw["zero_output_for_mask"] = True
        bits.append("zero_out")
    return kw, ("," + ",".join(bits)) if bits else ""


def make_rnn(g, kind, units, *, seq=False, state=False, backwards=True, base=None, **more):
    kw, d = rnn_extras(g, kind, backwards=backwards)
    kw.update(more)
    layer = rnn_cls(g, kind)(units, return_sequences=seq, return_state=state,
                             name=g.name(base or kind.lower()), **kw)
    flags = ("seq," if seq else "") + ("state," if state else "")
    return layer, f"{kind}({units}{',' if flags or d else ''}{flags.rstrip(',')}{d})"


def n_states(kind):
    return 2 if kind == "LSTM" else 1


def masked_input(g, T, D, *, prob=0.4, emb_prob=0.5):
    """An input, maybe masked: Embedding(mask_zero) over ids or Masking over floats."""
    c = g.c
    masked = c.p(prob)
    emb = c.p(emb_prob)
    mv = c.pick([0.0, 0.0, -1.0])
    vt = "T=None: " if g.var_T else ""
    if masked and emb:
        V = c.int(5, 12)
        t = g.inp((T,), ids=V, masked=True, vary=True)
        x = g.L.Embedding(V, D, mask_zero=True, name=g.name("emb"))(t)
        return t, x, f"{vt}Embedding({V},{D},mask_zero)", True
    if masked:
        t = g.inp((T, D), masked=True, mask_value=mv, vary=True)
        x = g.L.Masking(mask_value=mv, name=g.name("masking"))(t)
        return t, x, f"{vt}Masking({mv})", True
    if c.p(0.15):
        V = c.int(5, 12)
        t = g.inp((T,), ids=V, vary=True)
        x = g.L.Embedding(V, D, name=g.name("emb"))(t)
        return t, x, f"{vt}Embedding({V},{D})", False
    t = g.inp((T, D), vary=True)
    return t, t, vt.rstrip(": "), False


def allow_var_T(g, prob=0.25):
    g.var_T = g.c.p(prob)


def maybe_noop(g, x, prob=0.25):
    c = g.c
    if not c.p(prob):
        return x, ""
    kind = c.pick(["Dropout", "SpatialDropout1D", "GaussianNoise", "ActivityRegularization",
                   "GaussianDropout"])
    L = g.L
    layer = {
        "Dropout": lambda: L.Dropout(0.3, name=g.name("dropout")),
        "SpatialDropout1D": lambda: L.SpatialDropout1D(0.3, name=g.name("sdrop")),
        "GaussianNoise": lambda: L.GaussianNoise(0.5, name=g.name("gnoise")),
        "GaussianDropout": lambda: L.GaussianDropout(0.3, name=g.name("gdrop")),
        "ActivityRegularization": lambda: L.ActivityRegularization(l1=0.01, name=g.name("actreg")),
    }[kind]()
    if kind == "SpatialDropout1D" and len(x.shape) != 3:
        layer = L.Dropout(0.3, name=g.name("dropout"))
        kind = "Dropout"
    return layer(x), f" -> {kind}"


def dense_head(g, x, K_out=None, *, td=False):
    c = g.c
    K_out = K_out or c.int(1, 4)
    act = c.pick([None, None, "tanh", "softmax", "sigmoid", "relu"])
    if act == "softmax" and K_out == 1:
        act = "tanh"  # softmax over one unit is 1 whatever comes in
    layer = g.L.Dense(K_out, activation=act, name=g.name("dense"))
    if td:
        layer = g.L.TimeDistributed(layer, name=g.name("td"))
    return layer(x), f"{'TD(' if td else ''}Dense({K_out}{','+act if act else ''}){')' if td else ''}"


# ======================================================================================
# Families
# ======================================================================================


def fam_seq2seq(g):
    c, L = g.c, g.L
    allow_var_T(g)
    enc_kind = c.pick(["LSTM", "GRU", "SimpleRNN"])
    M = c.int(2, 6)
    T1, D1, T2, D2 = c.int(3, 9), c.int(2, 5), c.int(2, 7), c.int(2, 5)
    _, x, din, _ = masked_input(g, T1, D1)
    bidi = c.p(0.3)
    enc_seq = c.p(0.3)
    if bidi:
        inner, dr = make_rnn(g, enc_kind, M, seq=enc_seq, state=True, backwards=False)
        mode = c.pick(["concat", "sum", "ave", "mul"])
        outs = L.Bidirectional(inner, merge_mode=mode, name=g.name("bidi"))(x)
        ns = n_states(enc_kind)
        fw, bw = outs[1 : 1 + ns], outs[1 + ns :]
        states = [L.Concatenate(name=g.name("cat_state"))([a, b]) for a, b in zip(fw, bw)]
        Md = 2 * M
        enc = f"Bi({dr},{mode})"
    else:
        layer, enc = make_rnn(g, enc_kind, M, seq=enc_seq, state=True)
        outs = layer(x)
        states = list(outs[1:])
        Md = M
    dec_kind = enc_kind if c.p(0.8) else c.pick(["GRU", "SimpleRNN"]) if enc_kind != "LSTM" else enc_kind
    dec_masked = c.p(0.3)
    tin = g.inp((T2, D2), masked=dec_masked, vary=True)
    y = tin
    if dec_masked:
        y = L.Masking(name=g.name("masking"))(y)
    dec_state = c.p(0.3)
    bidi_dec = bidi and c.p(0.4)
    if bidi_dec:  # a Bidirectional decoder started from both directions' states
        inner, dd = make_rnn(g, enc_kind, M, seq=True, state=dec_state, backwards=False)
        dmode = c.pick(["concat", "sum", "ave", "mul"])
        dout = L.Bidirectional(inner, merge_mode=dmode, name=g.name("bidi_dec"))(
            y, initial_state=[*fw, *bw])
        dd = f"Bi({dd},{dmode})"
    else:
        dlayer, dd = make_rnn(g, dec_kind, Md, seq=True, state=dec_state)
        dout = dlayer(y, initial_state=states)
    dseq = dout[0] if dec_state else dout
    td = c.p(0.5)
    head, hd = dense_head(g, dseq, td=td)
    outputs = [head]
    extra = ""
    if dec_state:
        outputs += list(dout[1:])
        extra += " +dec_states"
    if c.p(0.3):
        outputs.append(states[0])
        extra += " +enc_h"
    if enc_seq and c.p(0.4):
        pooled = L.GlobalAveragePooling1D(name=g.name("gap"))(outs[0])
        outputs.append(pooled)
        extra += " +GAP(enc_seq)"
    g.d(f"{din + ' -> ' if din else ''}{enc} =>init {dd}{' [masked dec]' if dec_masked else ''} -> {hd}{extra}")
    return outputs


def fam_attention(g):
    c, L = g.c, g.L
    kind = c.pick(["LSTM", "GRU"])
    M = c.int(2, 6)
    T1, D1, T2, D2 = c.int(3, 9), c.int(2, 5), c.int(2, 7), c.int(2, 5)
    allow_var_T(g)
    self_att = c.p(0.25)
    _, x, din, _masked = masked_input(g, T1, D1, prob=0.5)
    elayer, ed = make_rnn(g, kind, M, seq=True, state=True, backwards=False)
    eo = elayer(x)
    enc_seq, states = eo[0], list(eo[1:])
    if self_att:
        q = enc_seq
        qd = "self"
    else:
        dec_masked = c.p(0.3)
        tin = g.inp((T2, D2), masked=dec_masked, vary=True)
        y = L.Masking(name=g.name("masking"))(tin) if dec_masked else tin
        dlayer, dd = make_rnn(g, kind, M, seq=True, backwards=False)
        q = dlayer(y, initial_state=states)
        qd = dd + "(init" + (",masked" if dec_masked else "") + ")"
    att = c.pick(["Attention", "AdditiveAttention", "MultiHeadAttention"])
    scores = c.p(0.25)
    causal = self_att and c.p(0.5)
    use_key = c.p(0.3)
    v = enc_seq
    k = L.Dense(M, name=g.name("key"))(enc_seq) if use_key else None
    call_kw = {}
    if causal:
        call_kw["use_causal_mask"] = True
    if scores:
        call_kw["return_attention_scores"] = True
    if att == "Attention":
        use_scale = c.p(0.5)
        mode = c.pick(["dot", "concat"])
        layer = L.Attention(use_scale=use_scale, score_mode=mode, name=g.name("att"))
        ad = f"Attention({mode}{',scale' if use_scale else ''})"
    elif att == "AdditiveAttention":
        use_scale = c.p(0.7)
        layer = L.AdditiveAttention(use_scale=use_scale, name=g.name("addatt"))
        ad = f"AdditiveAttention({'scale' if use_scale else 'noscale'})"
    else:
        H, Kd = c.int(1, 3), c.int(2, 4)
        Vd = c.pick([None, c.int(2, 4)])
        osh = c.pick([None, None, c.int(2, 5)])
        use_bias = c.p(0.8)
        drop = c.pick([0.0, 0.0, 0.1])
        kw = {"num_heads": H, "key_dim": Kd, "use_bias": use_bias, "dropout": drop}
        if Vd:
            kw["value_dim"] = Vd
        if osh:
            kw["output_shape"] = osh
        layer = L.MultiHeadAttention(name=g.name("mha"), **kw)
        ad = f"MHA(h={H},k={Kd},v={Vd},out={osh}{',nobias' if not use_bias else ''},drop={drop})"
    if att == "MultiHeadAttention":
        r = layer(q, v, key=k, **call_kw) if k is not None else layer(q, v, **call_kw)
    else:
        r = layer([q, v, k] if k is not None else [q, v], **call_kw)
    ctx_t, sc = (r[0], r[1]) if scores else (r, None)
    merged = L.Concatenate(name=g.name("cat"))([q, ctx_t])
    pool = c.p(0.35)
    if pool:
        pk = c.pick(["GlobalAveragePooling1D", "GlobalMaxPooling1D", "LSTM"])
        if pk == "LSTM":
            merged = L.LSTM(c.int(2, 5), name=g.name("lstm_post"))(merged)
        else:
            merged = getattr(L, pk)(name=g.name("gpool"))(merged)
        pd = f" -> {pk}"
    else:
        pd = ""
    head, hd = dense_head(g, merged)
    outputs = [head] + ([sc] if scores else [])
    g.d(f"{din + ' -> ' if din else ''}{ed} ; q={qd} ; {ad}{'+key' if use_key else ''}"
        f"{' causal' if causal else ''}{' +scores' if scores else ''} -> cat{pd} -> {hd}")
    return outputs


def fam_autoencoder(g):
    c, L = g.c, g.L
    T, D = c.int(3, 9), c.int(2, 5)
    kind = c.pick(["LSTM", "GRU", "SimpleRNN"])
    M = c.int(2, 6)
    _, x, din, _ = masked_input(g, T, D, emb_prob=0.0)
    bidi = c.p(0.3)
    layer, ed = make_rnn(g, kind, M, backwards=not bidi)
    if bidi:
        mode = c.pick(["concat", "sum", "ave", "mul"])
        z = L.Bidirectional(layer, merge_mode=mode, name=g.name("bidi"))(x)
        ed = f"Bi({ed},{mode})"
    else:
        z = layer(x)
    bottleneck = c.p(0.4)
    if bottleneck:
        z = L.Dense(c.int(2, 4), activation="tanh", name=g.name("latent"))(z)
    r = L.RepeatVector(T, name=g.name("repeat"))(z)
    dkind = c.pick(["LSTM", "GRU", "SimpleRNN"])
    dlayer, dd = make_rnn(g, dkind, c.int(2, 6), seq=True)
    h = dlayer(r)
    out, hd = dense_head(g, h, K_out=D, td=c.p(0.6))
    outputs = [out]
    if c.p(0.3):
        outputs.append(z)
    g.d(f"{din + ' -> ' if din else ''}{ed}{' -> Dense(latent)' if bottleneck else ''} -> "
        f"RepeatVector({T}) -> {dd} -> {hd}{' +latent' if len(outputs) > 1 else ''}")
    return outputs


def fam_cnn_lstm(g):
    c, L = g.c, g.L
    if c.p(0.3):
        return _td_cnn(g)
    # channels_first (axis 1 the channels, the conv over D): TF's CPU kernels refuse
    # NCW convolutions in predict, in both generations, so no reference exists.
    cf = c.p(0.0)
    T, D = c.int(6, 9), (c.int(6, 9) if cf else c.pick([2, 4]))
    masked = c.p(0.25)
    t = g.inp((T, D), masked=masked)
    x = L.Masking(name=g.name("masking"))(t) if masked else t
    F = c.pick([2, 4, 6])
    k = c.int(1, 3)
    padding = c.pick(["valid", "same", "causal"])
    s = c.pick([1, 1, 2])
    dil = 1 if s > 1 else c.pick([1, 1, 2])
    groups = c.pick([1, 1, 2])
    act = c.pick([None, "relu", "tanh"])
    if cf and padding == "causal":
        padding = "same"
    fmt = "channels_first" if cf else "channels_last"
    if cf and T % groups:
        groups = 1
    conv = L.Conv1D(F, k, strides=s, padding=padding, dilation_rate=dil, groups=groups,
                    activation=act, data_format=fmt, name=g.name("conv1d"))
    y = conv(x)
    length = int(y.shape[2 if cf else 1])
    cd = f"Conv1D({F},k={k},{padding},s={s},d={dil},g={groups},{act}{',cf' if cf else ''})"
    if c.p(0.4):
        y = L.BatchNormalization(axis=1 if cf else -1, name=g.name("bn"))(y)
        cd += " -> BN"
    pk = c.pick(["MaxPooling1D", "AveragePooling1D", None])
    if pk and length >= 2:
        pp = c.pick(["valid", "same"])
        ps = c.pick([2, 2, 3])
        st = c.pick([None, None, 1])
        if pp == "valid" and length < ps:
            pp = "same"
        y = getattr(L, pk)(pool_size=ps, strides=st, padding=pp, data_format=fmt,
                           name=g.name("pool"))(y)
        cd += f" -> {pk}({ps},s={st},{pp})"
    if cf and c.p(0.5):
        y = L.Permute((2, 1), name=g.name("permute"))(y)
        cd += " -> Permute"
    y, nd = maybe_noop(g, y)
    kind = c.pick(["LSTM", "GRU", "SimpleRNN"])
    layer, rd = make_rnn(g, kind, c.int(2, 6))
    h = layer(y)
    out, hd = dense_head(g, h)
    g.d(f"{'Masking -> ' if masked else ''}{cd}{nd} -> {rd} -> {hd}")
    return [out]


def _td_cnn(g):
    c, L = g.c, g.L
    T, H, W, C = c.int(2, 5), c.int(3, 5), c.int(3, 5), c.int(1, 3)
    g.inp((T, H, W, C))
    x = g.inputs[-1]
    F = c.int(2, 4)
    kk = c.pick([(2, 2), (3, 3), (2, 3)])
    padding = c.pick(["valid", "same"])
    y = L.TimeDistributed(L.Conv2D(F, kk, padding=padding, activation=c.pick([None, "relu"]),
                                   name=g.name("conv2d")), name=g.name("td_conv"))(x)
    pk = c.pick(["MaxPooling2D", "AveragePooling2D"])
    pp = c.pick(["valid", "same"])
    hh, ww = int(y.shape[2]), int(y.shape[3])
    if pp == "valid" and min(hh, ww) < 2:
        pp = "same"
    y = L.TimeDistributed(getattr(L, pk)((2, 2), padding=pp, name=g.name("pool2d")),
                          name=g.name("td_pool"))(y)
    y = L.TimeDistributed(L.Flatten(name=g.name("flat")), name=g.name("td_flat"))(y)
    kind = c.pick(["LSTM", "GRU"])
    layer, rd = make_rnn(g, kind, c.int(2, 6))
    h = layer(y)
    out, hd = dense_head(g, h)
    g.d(f"TD(Conv2D({F},{kk},{padding})) -> TD({pk},{pp}) -> TD(Flatten) -> {rd} -> {hd}")
    return [out]


MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot"]


def fam_merge(g):
    c, L = g.c, g.L
    T, D, M = c.int(3, 9), c.int(2, 5), c.int(2, 6)
    _, x, din, _masked = masked_input(g, T, D, prob=0.55)
    seq = c.p(0.6)
    kinds = [c.pick(["LSTM", "GRU", "SimpleRNN"]) for _ in range(3)]
    nb = 3 if c.p(0.25) else 2
    merge = c.pick(MERGES)
    if merge == "Subtract" or merge == "Dot":
        nb = 2
    branches, bds = [], []
    for i in range(nb):
        how = c.pick(["rnn", "rnn", "dense", "conv"]) if seq else c.pick(["rnn", "rnn", "dense"])
        if i > 0 and seq and merge not in ("Concatenate", "Dot") and c.p(0.2):
            how = "vec"  # (N, M) against (N, T, M): Keras inserts axis 1 and broadcasts
        if how == "vec":
            layer, bd = make_rnn(g, kinds[i], M, backwards=False)
            b = layer(x)
            bd += "[vector]"
        elif how == "rnn":
            layer, bd = make_rnn(g, kinds[i], M, seq=seq, backwards=False)
            b = layer(x)
        elif how == "dense":
            b = L.Dense(M, activation="tanh", name=g.name("bdense"))(x)
            bd = f"Dense({M})"
            if not seq:
                b = L.GlobalAveragePooling1D(name=g.name("gap"))(b)
                bd += "->GAP"
        else:  # a mask-dropping branch of the same length
            b = L.Conv1D(M, c.int(1, 3), padding="same", name=g.name("bconv"))(x)
            bd = f"Conv1D({M},same)"
        branches.append(b)
        bds.append(bd)
    if merge == "Concatenate":
        axis = c.pick([-1, -1, 1]) if seq else -1
        mlayer = L.Concatenate(axis=axis, name=g.name("concat"))
        md = f"Concatenate(axis={axis})"
    elif merge == "Dot":
        norm = c.p(0.4)
        axes = c.pick([2, 1]) if seq else 1
        mlayer = L.Dot(axes=axes, normalize=norm, name=g.name("dot"))
        md = f"Dot({axes}{',norm' if norm else ''})"
    else:
        mlayer = getattr(L, merge)(name=g.name(merge.lower()))
        md = merge
    y = mlayer(branches)
    post = ""
    if len(y.shape) == 3:
        pk = c.pick(["rnn", "gap", "gmp", "td"])
        if pk == "rnn":
            layer, post = make_rnn(g, c.pick(["LSTM", "GRU"]), c.int(2, 5))
            y = layer(y)
        elif pk == "gap":
            y = L.GlobalAveragePooling1D(name=g.name("gap"))(y)
            post = "GAP"
        elif pk == "gmp":
            y = L.GlobalMaxPooling1D(name=g.name("gmp"))(y)
            post = "GMP"
        else:
            y, post = dense_head(g, y, td=True)
        post = " -> " + post
    out, hd = dense_head(g, y)
    g.d(f"{din + ' -> ' if din else ''}[{' | '.join(bds)}] -> {md}{post} -> {hd}")
    return [out]


def fam_norm_act(g):
    c, L = g.c, g.L
    T, D, M = c.int(3, 9), c.int(2, 5), c.int(2, 6)
    _, x, din, masked = masked_input(g, T, D, prob=0.3)
    seq = c.p(0.6)
    layer, rd = make_rnn(g, c.pick(["LSTM", "GRU", "SimpleRNN"]), M, seq=seq)
    y = layer(x)
    parts = [rd]
    for _ in range(c.int(1, 3)):
        k = c.pick(["BN", "LN", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Activation"])
        if k == "BN":
            ce, sc = c.p(0.8), c.p(0.8)
            eps = c.pick([1e-3, 1e-5, 0.1])
            axis = c.pick([-1, -1, 1]) if seq else -1
            y = L.BatchNormalization(axis=axis, center=ce, scale=sc, epsilon=eps,
                                     name=g.name("bn"))(y)
            parts.append(f"BN({'c' if ce else ''}{'s' if sc else ''},{eps},axis={axis})")
        elif k == "LN":
            ce, sc = c.p(0.8), c.p(0.8)
            eps = c.pick([1e-3, 1e-5, 0.1])
            y = L.LayerNormalization(center=ce, scale=sc, epsilon=eps, name=g.name("ln"))(y)
            parts.append(f"LN({'c' if ce else ''}{'s' if sc else ''},{eps})")
        elif k == "ReLU":
            mv = c.pick([None, 0.5, 1.0])
            ns = c.pick([0.0, 0.0, 0.1])
            th = c.pick([0.0, 0.0, 0.2])
            y = L.ReLU(max_value=mv, negative_slope=ns, threshold=th, name=g.name("relu"))(y)
            parts.append(f"ReLU({mv},{ns},{th})")
        elif k == "LeakyReLU":
            a = c.pick([0.3, 0.1, 0.25])
            kw = {"negative_slope": a} if g.major == 3 else {"alpha": a}
            y = L.LeakyReLU(name=g.name("lrelu"), **kw)(y)
            parts.append(f"LeakyReLU({a})")
        elif k == "PReLU":
            shared = c.p(0.4) and seq
            y = L.PReLU(shared_axes=[1] if shared else None, name=g.name("prelu"))(y)
            parts.append(f"PReLU({'shared' if shared else ''})")
        elif k == "ELU":
            a = c.pick([1.0, 0.5])
            y = L.ELU(alpha=a, name=g.name("elu"))(y)
            parts.append(f"ELU({a})")
        elif k == "Softmax":
            if seq and masked:
                continue  # a (N, T) mask does not broadcast to (N, T, C): Keras fails
            axis = c.pick([-1, -1, 1]) if seq else -1
            y = L.Softmax(axis=axis, name=g.name("softmax"))(y)
            parts.append(f"Softmax({axis})")
        else:
            a = c.pick(["swish", "gelu", "selu", "softplus", "exponential", "hard_sigmoid",
                        "linear", "relu6", "mish", "log_softmax", "silu"])
            y = L.Activation(a, name=g.name("act"))(y)
            parts.append(f"Activation({a})")
    post = ""
    if seq:
        pk = c.pick(["rnn", "td", "gap"])
        if pk == "rnn":
            layer, post = make_rnn(g, c.pick(["LSTM", "GRU"]), c.int(2, 5))
            y = layer(y)
        elif pk == "gap":
            y = L.GlobalAveragePooling1D(name=g.name("gap"))(y)
            post = "GAP"
        else:
            y, post = dense_head(g, y, td=c.p(0.5))
        post = " -> " + post
    out, hd = dense_head(g, y)
    g.d(f"{din + ' -> ' if din else ''}{' -> '.join(parts)}{post} -> {hd}")
    return [out]


def make_cell(g, kind, units):
    c = g.c
    kw = {}
    bits = ""
    if c.p(0.2):
        kw["activation"] = c.pick(["relu", "sigmoid"])
        bits += "," + kw["activation"]
    if kind == "GRUCell" and c.p(0.2):
        kw["reset_after"] = False
        bits += ",reset_after=F"
    if c.p(0.1):
        kw["use_bias"] = False
        bits += ",nobias"
    cell = getattr(g.L, kind)(units, name=g.name(kind.lower()), **kw)
    return cell, f"{kind}({units}{bits})"


def fam_rnn_cell(g):
    c, L = g.c, g.L
    allow_var_T(g)
    T, D = c.int(3, 9), c.int(2, 5)
    _, x, din, _masked = masked_input(g, T, D, prob=0.35)
    stacked = c.p(0.5)
    if stacked:
        cells, cds = [], []
        for _ in range(c.int(2, 3)):
            cell, cd = make_cell(g, c.pick(["SimpleRNNCell", "LSTMCell", "GRUCell"]), c.int(2, 6))
            cells.append(cell)
            cds.append(cd)
        cell = L.StackedRNNCells(cells, name=g.name("stacked"))
        cd = f"Stacked[{', '.join(cds)}]"
    else:
        cell, cd = make_cell(g, c.pick(["SimpleRNNCell", "LSTMCell", "GRUCell"]), c.int(2, 6))
    seq = c.p(0.5)
    state = c.p(0.4)
    gb = c.p(0.25)
    init = not stacked and c.p(0.35)
    layer = L.RNN(cell, return_sequences=seq, return_state=state, go_backwards=gb,
                  name=g.name("rnn"))
    if init:  # initial states from a second input through Dense layers
        s_in = g.inp((c.int(2, 4),))
        sizes = cell.state_size if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
        init_states = [L.Dense(int(n), activation="tanh", name=g.name("init"))(s_in)
                       for n in sizes]
        r = layer(x, initial_state=init_states)
        cd += " init=Dense(in2)"
    else:
        r = layer(x)
    if state:
        flat = [r[0], *r[1:]]
    else:
        flat = [r]
    y = flat[0]
    if seq:
        follow = c.pick(["rnn", "gap", "td"])
        if follow == "rnn":
            l2, fd = make_rnn(g, c.pick(["LSTM", "GRU"]), c.int(2, 5))
            y = l2(y)
        elif follow == "gap":
            y = L.GlobalAveragePooling1D(name=g.name("gap"))(y)
            fd = "GAP"
        else:
            y, fd = dense_head(g, y, td=True)
        fd = " -> " + fd
    else:
        fd = ""
    out, hd = dense_head(g, y)
    outputs = [out]
    if state:
        outputs += flat[1:]
    g.d(f"{din + ' -> ' if din else ''}RNN({cd}{',seq' if seq else ''}{',state' if state else ''}"
        f"{',gb' if gb else ''}){fd} -> {hd}{' +states' if state else ''}")
    return outputs


def fam_bidi_state(g):
    c, L = g.c, g.L
    allow_var_T(g)
    T, D, M = c.int(3, 9), c.int(2, 5), c.int(2, 6)
    _, x, din, _masked = masked_input(g, T, D, prob=0.4)
    kind = c.pick(["LSTM", "GRU", "SimpleRNN"])
    seq = c.p(0.5)
    layer, rd = make_rnn(g, kind, M, seq=seq, state=True, backwards=False)
    mode = c.pick(["concat", "sum", "ave", "mul", None])
    own_back = c.p(0.2)
    kw = {}
    if own_back:
        back, bd = make_rnn(g, kind, M, seq=seq, state=True, backwards=False, go_backwards=True)
        kw["backward_layer"] = back
        rd += f"|back={bd}"
    outs = L.Bidirectional(layer, merge_mode=mode, name=g.name("bidi"), **kw)(x)
    outs = list(outs)
    nout = 2 if mode is None else 1
    merged = outs[:nout]
    states = outs[nout:]
    y = merged[0] if mode else L.Concatenate(name=g.name("cat"))(merged)
    if seq:
        l2, fd = make_rnn(g, c.pick(["LSTM", "GRU"]), c.int(2, 5))
        y = l2(y)
        fd = " -> " + fd
    else:
        fd = ""
    out, hd = dense_head(g, y)
    pick = c.pick(["all", "some", "none"])
    outputs = [out]
    if pick == "all":
        outputs += states
    elif pick == "some":
        outputs.append(states[-1])
    if seq and c.p(0.3):
        outputs.append(merged[-1])
    g.d(f"{din + ' -> ' if din else ''}Bi({rd},{mode},state){fd} -> {hd} +states:{pick}")
    return outputs


def fam_convlstm(g):
    c, L = g.c, g.L
    two = c.p(0.4)
    T = c.int(2, 5)
    C = c.int(1, 3)
    spatial = (c.int(3, 5), c.int(3, 5)) if two else (c.int(3, 6),)
    F = c.int(2, 4)
    k = c.pick([1, 2, 3])
    padding = c.pick(["valid", "same"])
    s = c.pick([1, 1, 2])
    dil = 1 if s > 1 else c.pick([1, 1, 2])
    masked = c.p(0.3)
    if masked:
        padding, s, dil = "same", 1, 1
    if padding == "valid" and min(spatial) < (k - 1) * dil + 1:
        padding = "same"
    holes = masked and c.p(0.5)
    t = g.inp((T, *spatial, C), masked=masked, spatial_holes=holes)
    x = L.Masking(name=g.name("masking"))(t) if masked else t
    seq = c.p(0.5)
    gb = c.p(0.25)
    cls = L.ConvLSTM2D if two else L.ConvLSTM1D
    ks = (k, k) if two else k
    state = c.p(0.2)
    ra = c.pick(["sigmoid", "sigmoid", "hard_sigmoid"])
    layer = cls(F, ks, padding=padding, strides=s, dilation_rate=dil, return_sequences=seq,
                go_backwards=gb, return_state=state, recurrent_activation=ra,
                name=g.name("convlstm"))
    r = layer(x)
    y = r[0] if state else r
    cd = (f"ConvLSTM{2 if two else 1}D({F},k={k},{padding},s={s},d={dil}{',seq' if seq else ''}"
          f"{',gb' if gb else ''}{',state' if state else ''},ra={ra})")
    pk = c.pick(["flatten", "gap", "gmp"])
    if seq and masked:  # TD(Flatten) refuses a mask: a second ConvLSTM consumes it
        y = cls(c.int(2, 3), ks, padding="same", name=g.name("convlstm"))(y)
        y = L.Flatten(name=g.name("flat"))(y)
        pd = " -> ConvLSTM(same) -> Flatten"
    elif seq:
        y = L.TimeDistributed(L.Flatten(name=g.name("flat")), name=g.name("td_flat"))(y)
        l2, fd = make_rnn(g, "LSTM", c.int(2, 4))
        y = l2(y)
        pd = " -> TD(Flatten) -> " + fd
    elif pk == "flatten":
        y = L.Flatten(name=g.name("flat"))(y)
        pd = " -> Flatten"
    else:
        cls2 = {("gap", True): L.GlobalAveragePooling2D, ("gap", False): L.GlobalAveragePooling1D,
                ("gmp", True): L.GlobalMaxPooling2D, ("gmp", False): L.GlobalMaxPooling1D}
        y = cls2[(pk, two)](name=g.name("gpool"))(y)
        pd = f" -> {pk}{'2D' if two else '1D'}"
    out, hd = dense_head(g, y)
    outputs = [out]
    if state:
        outputs.append(L.Flatten(name=g.name("flat_c"))(r[2]))
    g.d(f"{'Masking' + ('(holes)' if holes else '') + ' -> ' if masked else ''}{cd}{pd} -> {hd}"
        f"{' +c' if state else ''}")
    return outputs


def fam_shared(g):
    c, L = g.c, g.L
    allow_var_T(g)
    T, D, M = c.int(3, 9), c.int(2, 5), c.int(2, 6)
    emb = c.p(0.35)
    masked = c.p(0.4)
    if emb:
        V = c.int(5, 12)
        a = g.inp((T,), ids=V, masked=masked, vary=True)
        b = g.inp((c.int(3, 9),), ids=V, masked=masked, vary=True)
        E = L.Embedding(V, D, mask_zero=masked, name=g.name("emb"))
        xa, xb = E(a), E(b)
        din = f"shared Embedding({V},{D}{',mask_zero' if masked else ''})"
    else:
        a = g.inp((T, D), masked=masked, vary=True)
        b = g.inp((c.int(3, 9), D), masked=masked, vary=True)
        if masked:
            mk = L.Masking(name=g.name("masking"))
            xa, xb = mk(a), mk(b)
            din = "shared Masking"
        else:
            xa, xb = a, b
            din = ""
    kind = c.pick(["LSTM", "GRU", "SimpleRNN"])
    bidi = c.p(0.25)
    seqcat = c.p(0.3)  # both sequences, joined along time
    layer, rd = make_rnn(g, kind, M, backwards=not bidi, seq=seqcat)
    if bidi:
        layer = L.Bidirectional(layer, name=g.name("bidi"))
        rd = f"Bi({rd})"
    ha, hb = layer(xa), layer(xb)
    merge = c.pick(["Concatenate", "Add", "Subtract", "Multiply", "Dot", "Maximum"])
    if seqcat:
        y = L.Concatenate(axis=1, name=g.name("tcat"))([ha, hb])
        l2, d2 = make_rnn(g, c.pick(["LSTM", "GRU"]), c.int(2, 4))
        y = l2(y)
        merge = f"Concatenate(axis=1) -> {d2}"
        ha = L.GlobalAveragePooling1D(name=g.name("gap"))(ha)
        hb = L.GlobalAveragePooling1D(name=g.name("gap"))(hb)
    elif merge == "Dot":
        y = L.Dot(axes=1, normalize=True, name=g.name("dot"))([ha, hb])
    else:
        y = getattr(L, merge)(name=g.name(merge.lower()))([ha, hb])
    shared_dense = c.p(0.4)
    outputs = []
    if shared_dense:
        dl = L.Dense(c.int(1, 3), name=g.name("sdense"))
        outputs += [dl(ha), dl(hb)]
    out, hd = dense_head(g, y)
    outputs.insert(0, out)
    g.d(f"{'T=None: ' if g.var_T else ''}{din + ' -> ' if din else ''}shared {rd} x2 -> {merge} -> {hd}"
        f"{' +shared Dense x2' if shared_dense else ''}")
    return outputs


def fam_nested(g):
    c, L, K = g.c, g.L, g.K
    T, D, M = c.int(3, 9), c.int(2, 5), c.int(2, 6)
    mask_at = c.pick(["none", "none", "inner", "outer"])
    sequential = c.p(0.5)
    kind = c.pick(["LSTM", "GRU", "SimpleRNN"])
    seq = c.p(0.3)
    two_out = not sequential and c.p(0.3)
    l1, d1 = make_rnn(g, kind, M, seq=True, state=two_out)
    l2, d2 = make_rnn(g, c.pick(["LSTM", "GRU"]), c.int(2, 5), seq=seq)
    td = seq and c.p(0.4)
    dl = L.Dense(c.int(2, 4), activation="tanh", name=g.name("idense"))
    if td:
        dl = L.TimeDistributed(dl, name=g.name("itd"))
    inner_in = K.Input(shape=(T, D), name=g.name("inner_in"))
    pre = [L.Masking(name=g.name("imask"))] if mask_at == "inner" else []
    if sequential:
        inner = K.Sequential([inner_in, *pre, l1, l2, dl], name=g.name("inner_seq"))
    else:
        t = inner_in
        for layer in pre:
            t = layer(t)
        r = l1(t)
        t = l2(r[0] if two_out else r)
        t = dl(t)
        inner = K.Model(inner_in, [t, r[1]] if two_out else t, name=g.name("inner_func"))
    deep = c.p(0.2)
    if deep:
        i2 = K.Input(shape=(T, D), name=g.name("outer_in"))
        inner = K.Model(i2, inner(i2), name=g.name("wrap"))
    twice = c.p(0.5)
    outer_seq = not twice and not two_out and c.p(0.4)
    masked = mask_at != "none"
    a = g.inp((T, D), masked=masked)
    omask = L.Masking(name=g.name("omask")) if mask_at == "outer" else None
    l3 = None
    if seq:
        l3, d3 = make_rnn(g, "GRU", c.int(2, 4))
    else:
        d3 = ""
    head_k = c.int(1, 4)
    head = L.Dense(head_k, name=g.name("dense"))
    outputs = []
    if outer_seq:
        g.model = K.Sequential([a, *([omask] if omask else []), inner, *([l3] if l3 else []),
                                head], name="m")
    else:
        ya = inner(omask(a) if omask else a)
        if two_out:
            ya, ha = ya
            outputs.append(ha)
        if twice:
            b = g.inp((T, D), masked=masked)
            yb = inner(omask(b) if omask else b)
            if two_out:
                yb, hb = yb
                outputs.append(hb)
            y = L.Concatenate(name=g.name("cat"))([ya, yb])
        else:
            y = ya
        if l3 is not None:
            y = l3(y)
        outputs.insert(0, head(y))
    g.d(f"{'outer Sequential: ' if outer_seq else ''}{'Masking -> ' if mask_at == 'outer' else ''}"
        f"{'Sequential' if sequential else 'Functional'}[{'Masking -> ' if mask_at == 'inner' else ''}"
        f"{d1} -> {d2} -> {'TD(Dense)' if td else 'Dense'}{' +h out' if two_out else ''}]"
        f"{' wrapped' if deep else ''}{' x2 -> cat' if twice else ''}"
        f"{' -> ' + d3 if d3 else ''} -> Dense({head_k})")
    return outputs


def fam_masking(g):
    c, L = g.c, g.L
    allow_var_T(g)
    T, D, M = c.int(3, 9), c.int(2, 5), c.int(2, 6)
    _, x, din, _ = masked_input(g, T, D, prob=1.0)
    parts = []
    y = x
    for _ in range(c.int(1, 3)):
        k = c.pick(["rnn", "bidi", "td", "dense", "att", "noop", "ln"])
        if k == "rnn":
            layer, d = make_rnn(g, c.pick(["LSTM", "GRU", "SimpleRNN"]), M, seq=True)
            y = layer(y)
        elif k == "bidi":
            layer, d = make_rnn(g, c.pick(["LSTM", "GRU"]), M, seq=True, backwards=False)
            mode = c.pick(["concat", "sum", "ave", "mul"])
            y = L.Bidirectional(layer, merge_mode=mode, name=g.name("bidi"))(y)
            d = f"Bi({d},{mode})"
        elif k == "td":
            y = L.TimeDistributed(L.Dense(M, activation="tanh", name=g.name("tdd")),
                                  name=g.name("td"))(y)
            d = f"TD(Dense({M}))"
        elif k == "dense":
            y = L.Dense(M, name=g.name("dense3d"))(y)
            d = f"Dense({M})"
        elif k == "att":
            att = c.pick(["Attention", "AdditiveAttention", "MultiHeadAttention"])
            if att == "MultiHeadAttention":
                y = L.MultiHeadAttention(c.int(1, 2), c.int(2, 3), name=g.name("mha"))(y, y)
            elif att == "Attention":
                y = L.Attention(use_scale=True, name=g.name("att"))([y, y])
            else:
                y = L.AdditiveAttention(name=g.name("addatt"))([y, y])
            d = f"self-{att}"
        elif k == "ln":
            y = L.LayerNormalization(name=g.name("ln"))(y)
            d = "LN"
        else:
            y, d = maybe_noop(g, y, prob=1.0)
            d = d.replace(" -> ", "")
        parts.append(d)
    end = c.pick(["rnn", "gap", "gmp", "rnn_last_gb"])
    if end == "rnn":
        layer, d = make_rnn(g, c.pick(["LSTM", "GRU", "SimpleRNN"]), c.int(2, 5))
        y = layer(y)
    elif end == "rnn_last_gb":
        layer, d = make_rnn(g, c.pick(["LSTM", "GRU", "SimpleRNN"]), c.int(2, 5), go_backwards=True,
                            backwards=False)
        y = layer(y)
        d += "(gb)"
    elif end == "gap":
        y = L.GlobalAveragePooling1D(name=g.name("gap"))(y)
        d = "GAP"
    else:
        y = L.GlobalMaxPooling1D(name=g.name("gmp"))(y)
        d = "GMP"
    parts.append(d)
    out, hd = dense_head(g, y)
    g.d(f"{din} -> {' -> '.join(parts)} -> {hd}")
    return [out]


def fam_stateful(g):
    c, L = g.c, g.L
    g.batch = N_ROWS
    allow_var_T(g)
    T, D, M = c.int(3, 9), c.int(2, 5), c.int(2, 6)
    masked = c.p(0.25)
    t = g.inp((T, D), masked=masked, vary=True)
    x = L.Masking(name=g.name("masking"))(t) if masked else t
    parts = ["Masking"] if masked else []
    n = c.int(1, 2)
    y = x
    for i in range(n):
        last = i == n - 1
        seq = (not last) or c.p(0.3)
        how = c.pick(["rnn", "rnn", "bidi", "cell"])
        kind = c.pick(["LSTM", "GRU", "SimpleRNN"])
        if how == "rnn":
            layer, d = make_rnn(g, kind, M, seq=seq, stateful=True)
        elif how == "bidi":
            inner, d = make_rnn(g, kind, M, seq=seq, stateful=True, backwards=False)
            layer = L.Bidirectional(inner, name=g.name("bidi"))
            d = f"Bi({d})"
        else:
            cell, d = make_cell(g, kind + "Cell", M)
            layer = L.RNN(cell, return_sequences=seq, stateful=True, name=g.name("rnn"))
            d = f"RNN({d}{',seq' if seq else ''})"
        y = layer(y)
        parts.append(d + "[stateful]")
    if len(y.shape) == 3:
        y, dd = dense_head(g, y, td=True)
        parts.append(dd)
        out = y
    else:
        out, dd = dense_head(g, y)
        parts.append(dd)
    g.d(f"batch={N_ROWS}{', T=None' if g.var_T else ''}: " + " -> ".join(parts))
    return [out]


def fam_plumbing(g):
    c, L = g.c, g.L
    if c.p(0.3):
        return _conv2d(g)
    T, D, M = c.int(3, 9), c.int(2, 5), c.int(2, 6)
    _, x, din, _masked = masked_input(g, T, D, prob=0.35, emb_prob=0.3)
    layer, rd = make_rnn(g, c.pick(["LSTM", "GRU", "SimpleRNN"]), M, seq=True)
    y = layer(x)
    parts = [rd]
    k = c.pick(["Flatten", "Reshape", "Permute", "Cropping1D", "ZeroPadding1D", "UpSampling1D",
                "Conv1D", "RepeatFlat"])
    if k == "Flatten":
        y = L.Flatten(name=g.name("flat"))(y)
        parts.append("Flatten")
    elif k == "Reshape":
        y = L.Reshape((T * M // c.pick([1, M]), -1), name=g.name("reshape"))(y)
        parts.append(f"Reshape(->{tuple(y.shape[1:])})")
    elif k == "Permute":
        y = L.Permute((2, 1), name=g.name("permute"))(y)
        parts.append("Permute(2,1)")
    elif k == "Cropping1D":
        a = c.int(0, 1)
        b = c.int(0, max(0, min(2, T - a - 1)))
        y = L.Cropping1D((a, b), name=g.name("crop"))(y)
        parts.append(f"Cropping1D({a},{b})")
    elif k == "ZeroPadding1D":
        a, b = c.int(0, 2), c.int(1, 2)
        y = L.ZeroPadding1D((a, b), name=g.name("zpad"))(y)
        parts.append(f"ZeroPadding1D({a},{b})")
    elif k == "UpSampling1D":
        s = c.int(2, 3)
        y = L.UpSampling1D(s, name=g.name("upsamp"))(y)
        parts.append(f"UpSampling1D({s})")
    elif k == "Conv1D":
        y = L.Conv1D(c.int(2, 4), c.int(1, 3), padding=c.pick(["same", "causal", "valid"]),
                     name=g.name("conv1d"))(y)
        parts.append("Conv1D")
    else:
        y = L.Flatten(name=g.name("flat"))(y)
        y = L.RepeatVector(c.int(2, 4), name=g.name("repeat"))(y)
        parts.append("Flatten -> RepeatVector")
    if len(y.shape) == 3:
        l2, d2 = make_rnn(g, c.pick(["LSTM", "GRU", "SimpleRNN"]), c.int(2, 5))
        y = l2(y)
        parts.append(d2)
    out, hd = dense_head(g, y)
    parts.append(hd)
    g.d(f"{din + ' -> ' if din else ''}{' -> '.join(parts)}")
    return [out]


def _conv2d(g):
    c, L = g.c, g.L
    H, W, C = c.int(4, 7), c.int(4, 7), c.int(1, 3)
    g.inp((H, W, C))
    x = g.inputs[-1]
    F = c.int(2, 4)
    ks = c.pick([(2, 2), (3, 3), (1, 3)])
    padding = c.pick(["valid", "same"])
    s = c.pick([1, 1, 2])
    y = L.Conv2D(F, ks, strides=s, padding=padding, activation=c.pick([None, "relu"]),
                 name=g.name("conv2d"))(x)
    pk = c.pick(["MaxPooling2D", "AveragePooling2D", None])
    if pk and min(int(y.shape[1]), int(y.shape[2])) >= 2:
        y = getattr(L, pk)((2, 2), padding=c.pick(["valid", "same"]), name=g.name("pool2d"))(y)
    if c.p(0.3):
        y = L.BatchNormalization(name=g.name("bn"))(y)
    end = c.pick(["rnn", "gap", "gmp", "flatten"])
    if end == "rnn":
        h, w, f = (int(d) for d in y.shape[1:])
        y = L.Reshape((h, w * f), name=g.name("reshape"))(y)
        layer, d = make_rnn(g, c.pick(["LSTM", "GRU"]), c.int(2, 5))
        y = layer(y)
        ed = f"Reshape -> {d}"
    elif end == "gap":
        y = L.GlobalAveragePooling2D(name=g.name("gap2d"))(y)
        ed = "GAP2D"
    elif end == "gmp":
        y = L.GlobalMaxPooling2D(name=g.name("gmp2d"))(y)
        ed = "GMP2D"
    else:
        y = L.Flatten(name=g.name("flat"))(y)
        ed = "Flatten"
    out, hd = dense_head(g, y)
    g.d(f"Conv2D({F},{ks},{padding},s={s}) -> {pk} -> {ed} -> {hd}")
    return [out]


def fam_sequential(g):
    """A random Sequential chain over the layer families."""
    c, L, K = g.c, g.L, g.K
    T, D = c.int(3, 9), c.int(2, 5)
    ids = c.p(0.3)
    masked = c.p(0.4)
    layers, parts = [], []
    if ids:
        V = c.int(5, 12)
        t = g.inp((T,), ids=V, masked=masked)
        layers.append(L.Embedding(V, D, mask_zero=masked, name=g.name("emb")))
        parts.append(f"Embedding({V},{D}{',mask_zero' if masked else ''})")
    else:
        t = g.inp((T, D), masked=masked)
        if masked:
            layers.append(L.Masking(name=g.name("masking")))
            parts.append("Masking")
    F = D
    for _ in range(c.int(1, 4)):
        k = c.pick(["rnn", "rnn", "bidi", "conv", "pool", "td", "dense", "bn", "ln", "act", "noop"])
        if k == "rnn":
            F = c.int(2, 6)
            layer, d = make_rnn(g, c.pick(["LSTM", "GRU", "SimpleRNN"]), F, seq=True)
        elif k == "bidi":
            inner, d = make_rnn(g, c.pick(["LSTM", "GRU", "SimpleRNN"]), c.int(2, 4), seq=True,
                                backwards=False)
            mode = c.pick(["concat", "sum", "ave", "mul"])
            layer = L.Bidirectional(inner, merge_mode=mode, name=g.name("bidi"))
            F = inner.units * (2 if mode == "concat" else 1)
            d = f"Bi({d},{mode})"
        elif k == "conv":
            F = c.int(2, 5)
            kk = c.int(1, 3)
            pad = c.pick(["same", "causal"])
            dil = c.pick([1, 2])
            layer = L.Conv1D(F, kk, padding=pad, dilation_rate=dil,
                             activation=c.pick([None, "relu"]), name=g.name("conv1d"))
            d = f"Conv1D({F},{kk},{pad},d={dil})"
        elif k == "pool":
            if T < 2:
                continue
            pk = c.pick(["MaxPooling1D", "AveragePooling1D"])
            layer = getattr(L, pk)(2, padding="same", name=g.name("pool"))
            T = (T + 1) // 2
            d = f"{pk}(2,same)"
        elif k == "td":
            F = c.int(2, 5)
            layer = L.TimeDistributed(L.Dense(F, activation="tanh", name=g.name("tdd")),
                                      name=g.name("td"))
            d = f"TD(Dense({F}))"
        elif k == "dense":
            F = c.int(2, 5)
            layer = L.Dense(F, activation=c.pick([None, "relu", "sigmoid"]), name=g.name("dense3d"))
            d = f"Dense({F})"
        elif k == "bn":
            layer = L.BatchNormalization(name=g.name("bn"))
            d = "BN"
        elif k == "ln":
            layer = L.LayerNormalization(name=g.name("ln"))
            d = "LN"
        elif k == "act":
            a = c.pick(["ReLU", "ELU", "PReLU", "LeakyReLU"])
            kw = {}
            if a == "LeakyReLU":
                kw = {"negative_slope": 0.2} if g.major == 3 else {"alpha": 0.2}
            layer = getattr(L, a)(name=g.name(a.lower()), **kw)
            d = a
        else:
            layer = L.Dropout(0.2, name=g.name("dropout"))
            d = "Dropout"
        layers.append(layer)
        parts.append(d)
    end = c.pick(["rnn", "gap", "gmp", "flatten", "bidi"])
    if end == "rnn":
        layer, d = make_rnn(g, c.pick(["LSTM", "GRU", "SimpleRNN"]), c.int(2, 5))
    elif end == "bidi":
        inner, d = make_rnn(g, c.pick(["LSTM", "GRU"]), c.int(2, 4), backwards=False)
        layer = L.Bidirectional(inner, merge_mode=c.pick(["concat", "sum", "ave", "mul"]),
                                name=g.name("bidi"))
        d = f"Bi({d})"
    elif end == "gap":
        layer, d = L.GlobalAveragePooling1D(name=g.name("gap")), "GAP"
    elif end == "gmp":
        layer, d = L.GlobalMaxPooling1D(name=g.name("gmp")), "GMP"
    else:
        layer, d = L.Flatten(name=g.name("flat")), "Flatten"
    layers.append(layer)
    parts.append(d)
    K_out = c.int(1, 4)
    layers.append(L.Dense(K_out, name=g.name("dense")))
    parts.append(f"Dense({K_out})")
    g.model = K.Sequential([t, *layers], name="m")
    g.d("Sequential: " + " -> ".join(parts))
    return []


FAMILIES = {
    "seq2seq": fam_seq2seq,
    "attention": fam_attention,
    "autoencoder": fam_autoencoder,
    "cnn_lstm": fam_cnn_lstm,
    "merge": fam_merge,
    "norm_act": fam_norm_act,
    "rnn_cell": fam_rnn_cell,
    "bidi_state": fam_bidi_state,
    "convlstm": fam_convlstm,
    "shared": fam_shared,
    "nested": fam_nested,
    "masking": fam_masking,
    "stateful": fam_stateful,
    "plumbing": fam_plumbing,
    "sequential": fam_sequential,
}


# ======================================================================================
# Keras side
# ======================================================================================


def container(layer):
    return type(layer).__name__ in ("Functional", "Sequential", "Model")


def leaf_layers(model):
    for layer in model.layers:
        if container(layer):
            yield from leaf_layers(layer)
        else:
            yield layer


def random_weights(layer, rng):
    ws = []
    for w in layer.weights:
        name = str(getattr(w, "path", None) or w.name)
        shape = tuple(int(d) for d in w.shape)
        if "moving_variance" in name:
            a = rng.uniform(0.3, 2.0, shape)
        elif "moving_mean" in name:
            a = rng.normal(0.0, 0.5, shape)
        elif "gamma" in name:
            a = rng.uniform(0.5, 1.5, shape)
        elif "state" in name.split("/")[-1] or "rnn_state" in name:
            a = np.zeros(shape)
        else:
            a = rng.normal(0.0, 0.5, shape)
        ws.append(a.astype(np.dtype(getattr(w.dtype, "name", w.dtype))))
    return ws


def reset_states(model):
    for layer in leaf_layers(model):
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_states"):
            with contextlib.suppress(Exception):  # a layer without states to reset
                layer.reset_states()


def set_weights(m3, m2, rng, notes):
    leaves3 = list(leaf_layers(m3))
    leaves2 = list(leaf_layers(m2)) if m2 is not None else []
    if [x.name for x in leaves3] == [x.name for x in leaves2] or len(leaves3) != len(leaves2):
        by_name = {layer.name: layer for layer in leaves2}
        pair = lambda l3: by_name.get(l3.name)  # noqa: E731
    else:  # Keras's own names differ between the generations: the same order
        pairs = {id(a): b for a, b in zip(leaves3, leaves2)}
        pair = lambda l3: pairs.get(id(l3))  # noqa: E731
    for l3 in leaves3:
        if not l3.weights:
            continue
        ws = random_weights(l3, rng)
        l3.set_weights(ws)
        l2 = pair(l3)
        if l2 is None:
            continue
        if [tuple(w.shape) for w in l2.weights] == [w.shape for w in ws]:
            l2.set_weights(ws)
        else:
            notes.append(f"{l3.name}: weight shapes differ between generations; own weights")
            l2.set_weights(random_weights(l2, rng))
    reset_states(m3)
    if m2 is not None:
        reset_states(m2)


def flatten(y):
    """Keras's (possibly nested) outputs in order: StackedRNNCells states nest."""
    if isinstance(y, dict):  # Keras's tree order: sorted keys
        return [a for k in sorted(y) for a in flatten(y[k])]
    if isinstance(y, (list, tuple)):
        return [a for v in y for a in flatten(v)]
    return [np.asarray(y)]


def predict(model, xs):
    reset_states(model)
    y = model.predict(xs if len(xs) > 1 else xs[0], batch_size=N_ROWS, verbose=0)
    reset_states(model)
    return flatten(y)


def make_inputs(ispec, rng, allmask):
    xs, full = [], set()
    for s in ispec:
        shape = (N_ROWS, *s["shape"])
        if s["ids"]:
            lo = 1 if s["masked"] else 0
            x = rng.integers(lo, s["ids"], size=shape).astype(np.int32)
            pad = 0
        else:
            x = rng.normal(size=shape).astype(np.float32)
            pad = s["mask_value"]
        if s["masked"]:
            T = shape[1]
            k = max(1, T // 3)
            x[1, T - k :] = pad  # trailing padding
            x[2, :k] = pad  # leading padding
            x[3, T // 2] = pad  # a hole
            if allmask:
                x[4] = pad
                full.add(4)
            if s["spatial_holes"]:  # ConvLSTM: single positions padded
                x[0, 0, 0] = pad
                x[3, T - 1, -1] = pad
        xs.append(x)
    return xs, sorted(full)


def keras_trace_refs(K, model, xs):
    """Keras's own output of each top-level recurrent layer called once."""
    refs = {}
    for layer in model.layers:
        cls = type(layer).__name__
        if cls not in ("LSTM", "GRU", "SimpleRNN", "RNN") or len(layer._inbound_nodes) != 1:
            continue
        try:
            out = layer.output
            out = out[0] if isinstance(out, (list, tuple)) else out
            sub = K.Model(model.inputs, out)
            reset_states(model)
            y = sub.predict(xs if len(xs) > 1 else xs[0], batch_size=N_ROWS, verbose=0)
            refs[layer.name] = (np.asarray(y), bool(layer.return_sequences))
        except Exception:  # noqa: S112 - not every layer's output is reachable alone
            continue
    reset_states(model)
    return refs


def build(K, major, family, c):
    g = G(K, major, c)
    outputs = FAMILIES[family](g)
    as_dict = len(outputs) > 1 and c.p(0.2)
    if as_dict:  # keys out of sorted order: Keras flattens a dict by sorted key
        keys = [f"o{k}" for k in reversed(range(len(outputs)))]
        outs = dict(zip(keys, outputs))
        g.d("dict outputs")
    else:
        outs = outputs if len(outputs) > 1 else outputs[0] if outputs else None
    model = g.model or K.Model(g.inputs, outs, name="m")
    return model, g


def save_files(m, gen, d, notes):
    """Write the files of one generation; returns {format: (path, config or None)}."""
    files = {}

    def attempt(fmt, fn, path, config=None):
        try:
            fn()
            files[fmt] = (path, config)
        except Exception as exc:
            notes.append(f"Keras could not write {fmt}: {one_line(str(exc), 150)}")

    p = lambda name: os.path.join(d, name)  # noqa: E731
    if gen == 3:
        attempt("k3.keras", lambda: m.save(p("k3.keras")), p("k3.keras"))
        attempt("k3.h5", lambda: m.save(p("k3.h5")), p("k3.h5"))

        def weights3():
            m.save_weights(p("k3.weights.h5"))
            with open(p("k3.json"), "w") as f:
                f.write(m.to_json())

        attempt("k3.weights.h5+json", weights3, p("k3.weights.h5"), p("k3.json"))
    else:
        attempt("tfk.h5", lambda: m.save(p("tfk.h5"), save_format="h5"), p("tfk.h5"))
        attempt("tfk.keras", lambda: m.save(p("tfk.keras")), p("tfk.keras"))

        def weights2():
            m.save_weights(p("tfk_w.h5"))
            with open(p("tfk.json"), "w") as f:
                f.write(m.to_json())

        attempt("tfk_w.h5+json", weights2, p("tfk_w.h5"), p("tfk.json"))
    return files


class Case:
    """One generated model: its files, inputs and Keras's references."""

    def __init__(self, seed, index, family, d):
        self.seed, self.index, self.family, self.d = seed, index, family, d
        self.tag = f"s{seed}#{index:02d}"
        self.desc = ""
        self.notes = []
        self.xs = []
        self.full_rows = []
        self.refs = {}  # generation -> (outputs, params)
        self.files = {}  # format -> (path, config)
        self.trace_refs = {}  # generation -> {layer: (array, seq)}
        self.models = {}
        self.input_names = []


def quiet_keras():
    import logging

    import absl.logging
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    absl.logging.set_verbosity(absl.logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def generate(seed, index, family, d, want_trace):
    import keras
    import tf_keras

    quiet_keras()

    os.makedirs(d, exist_ok=True)
    case = Case(seed, index, family, d)
    rng = np.random.default_rng([seed, index])
    keras.backend.clear_session()
    tf_keras.backend.clear_session()
    c = Chooser(rng)
    m3, g3 = build(keras, 3, family, c)
    case.desc = "; ".join(g3.desc)
    case.input_names = [s["name"] for s in g3.ispec]
    try:
        m2, _ = build(tf_keras, 2, family, Chooser(replay=c.log))
    except Exception as exc:
        m2 = None
        case.notes.append(f"tf_keras cannot build it: {one_line(str(exc), 150)}")
    set_weights(m3, m2, rng, case.notes)
    case.xs, case.full_rows = make_inputs(g3.ispec, rng if False else np.random.default_rng(
        [seed, index, 7]), allmask=bool(rng.random() < 0.4))
    np.savez(os.path.join(d, "x.npz"), **{f"x{i}": x for i, x in enumerate(case.xs)})
    xs_cli = {n: x for n, x in zip(case.input_names, case.xs)}
    np.savez(os.path.join(d, "cli_in.npz"), **xs_cli)
    for gen, m, K in ((3, m3, keras), (2, m2, tf_keras)):
        if m is None:
            continue
        try:
            ys = predict(m, case.xs)
        except Exception as exc:
            case.notes.append(f"Keras {gen} predict fails: {one_line(str(exc), 150)}")
            continue
        case.refs[gen] = (ys, int(m.count_params()))
        if want_trace:
            case.trace_refs[gen] = keras_trace_refs(K, m, case.xs)
        case.files.update(save_files(m, gen, d, case.notes))
        case.models[gen] = m
    if 3 in case.refs and 2 in case.refs:
        y3, y2 = case.refs[3][0], case.refs[2][0]
        if len(y3) != len(y2) or any(a.shape != b.shape for a, b in zip(y3, y2)):
            case.notes.append("Keras 3 and tf_keras outputs differ in shape")
        else:
            errs = [float(np.nanmax(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
                    for a, b in zip(y3, y2)]
            if max(errs) > 1e-4:
                case.notes.append(f"Keras 3 vs tf_keras predict differ by {max(errs):.2e}")
        if case.refs[3][1] != case.refs[2][1]:
            case.notes.append(f"count_params: Keras 3 {case.refs[3][1]}, tf_keras {case.refs[2][1]}")
    np.savez(os.path.join(d, "ref.npz"), **{
        f"k{gen}_y{i}": y for gen, (ys, _) in case.refs.items() for i, y in enumerate(ys)})
    with open(os.path.join(d, "desc.txt"), "w") as f:
        f.write(f"{case.tag} {family}: {case.desc}\n")
        for note in case.notes:
            f.write(f"note: {note}\n")
        f.write(f"full-padding rows: {case.full_rows}\n")
        for gen, (_, params) in case.refs.items():
            f.write(f"Keras {gen} count_params: {params}\n")
    return case


# ======================================================================================
# Comparing
# ======================================================================================


def compare(got, want, full_rows):
    """(status, detail): status 'pass', 'fail' or 'masked' (only fully padded rows differ)."""
    if len(got) != len(want):
        return "fail", f"{len(got)} outputs, Keras has {len(want)}"
    worst, bad_rows = 0.0, set()
    for i, (a, b) in enumerate(zip(got, want)):
        a = np.asarray(a)
        if a.shape != b.shape:
            return "fail", f"output {i}: shape {a.shape}, Keras {b.shape}"
        close = np.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True)
        if close.all():
            continue
        rows = {int(r) for r in np.nonzero(~close.reshape(len(a), -1).all(axis=1))[0]}
        bad_rows |= rows
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        diff = np.where(close, 0.0, np.nan_to_num(diff, nan=np.inf))
        keep = [r for r in rows if r not in full_rows] or sorted(rows)
        worst = max(worst, float(diff[keep].max()))
    if not bad_rows:
        return "pass", ""
    where = f"rows {sorted(bad_rows)}"
    if bad_rows <= set(full_rows):
        return "masked", f"max abs err {worst:.3g} only on fully padded {where}"
    return "fail", f"max abs err {worst:.3g} ({where})"


def gen_of(fmt):
    return 3 if fmt.startswith("k3") else 2


class Result:
    def __init__(self, case, fmt, check, status, detail=""):
        self.case, self.fmt, self.check, self.status, self.detail = case, fmt, check, status, detail


RNNINSPECT_ENV = {}  # PYTHONPATH of the snapshot, for the worker and the CLI


def rnninspect_env():
    env = dict(os.environ)
    for var in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS"):
        env.pop(var, None)
    env.update(RNNINSPECT_ENV)
    return env


IMPORT_ALL = (
    "import importlib, pkgutil, sys, rnninspect\n"
    "for m in pkgutil.walk_packages(rnninspect.__path__, 'rnninspect.'):\n"
    "    importlib.import_module(m.name)\n"
    "print(rnninspect.__file__)"
)


def snapshot(py, dest, tries=8):
    """Copy the rnninspect package into ``dest`` and point the worker and the CLI at
    the copy: the package may be edited while the check runs. Retried until every
    module of the copy imports (an edit may be half-written)."""
    src = subprocess.run([py, "-c", "import os, rnninspect; print(os.path.dirname("
                          "rnninspect.__file__))"], capture_output=True, text=True,
                         env=rnninspect_env()).stdout.strip()
    root = os.path.dirname(src)
    head = subprocess.run(["git", "--no-optional-locks", "-C", root, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "--no-optional-locks", "-C", root, "status", "--porcelain",
                            "--", "rnninspect"], capture_output=True, text=True).stdout.strip()
    err = ""
    for _ in range(tries):
        target = os.path.join(dest, "rnninspect")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        env = dict(rnninspect_env(), PYTHONPATH=dest)
        proc = subprocess.run([py, "-c", IMPORT_ALL], capture_output=True, text=True, env=env,
                              cwd=dest)  # not a directory holding the live package
        if proc.returncode == 0 and proc.stdout.strip().startswith(dest):
            RNNINSPECT_ENV["PYTHONPATH"] = dest
            return f"{src} at {head or '?'}{' + uncommitted changes' if dirty else ''}"
        err = one_line(proc.stderr or proc.stdout)
        time.sleep(15)
    raise RuntimeError(f"no importable snapshot of {src}: {err}")


def run_worker(jobs, d, py):
    jobs_path = os.path.join(d, "jobs.json")
    out_path = os.path.join(d, "results.json")
    with open(jobs_path, "w") as f:
        json.dump(jobs, f)
    env = rnninspect_env()
    proc = subprocess.run([py, os.path.abspath(__file__), "--worker", jobs_path, out_path],
                          capture_output=True, text=True, env=env, timeout=60 + 20 * len(jobs))
    if proc.returncode != 0 or not os.path.exists(out_path):
        raise RuntimeError(f"worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    with open(out_path) as f:
        return {r["id"]: r for r in json.load(f)}


def check_api(cases, d, py):
    jobs, meta = [], {}
    for case in cases:
        for fmt, (path, config) in case.files.items():
            jid = f"{case.tag}|{fmt}"
            out = os.path.join(case.d, f"out_{fmt.replace('+', '_')}.npz")
            jobs.append({"id": jid, "path": path, "config": config,
                         "x": os.path.join(case.d, "x.npz"), "n_inputs": len(case.xs),
                         "out": out})
            meta[jid] = (case, fmt, out)
    found = run_worker(jobs, d, py) if jobs else {}
    results = []
    for jid, (case, fmt, out) in meta.items():
        r = found.get(jid, {"error": "no result from the worker"})
        want, params = case.refs[gen_of(fmt)]
        if "error" in r:
            results.append(Result(case, fmt, "forward", "fail", r["error"]))
            with open(os.path.join(case.d, "errors.txt"), "a") as f:
                f.write(f"== {fmt}\n{r.get('traceback', r['error'])}\n")
            continue
        with np.load(out) as z:
            got = [z[f"y{i}"] for i in range(r["n_outputs"])]
        status, detail = compare(got, want, case.full_rows)
        results.append(Result(case, fmt, "forward", status, detail))
        if "params_error" in r:
            results.append(Result(case, fmt, "params", "fail", r["params_error"]))
        elif r["params"] != params:
            results.append(Result(case, fmt, "params", "fail",
                                  f"total_params {r['params']}, Keras count_params {params}"))
        else:
            results.append(Result(case, fmt, "params", "pass"))
    return results


def cli(exe, args, cwd):
    proc = subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env=rnninspect_env())
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {one_line(proc.stderr)}")
    return json.loads(proc.stdout)


def check_cli(case, exe):
    results = []
    inp = os.path.join(case.d, "cli_in.npz")
    for fmt in ("k3.keras", "tfk.h5"):
        if fmt not in case.files:
            continue
        path, _ = case.files[fmt]
        gen = gen_of(fmt)
        want, params = case.refs[gen]
        fmt_c = f"cli:{fmt}"
        try:
            s = cli(exe, ["summary", "--json", path], case.d)
            ok = s["total_params"] == params
            results.append(Result(case, fmt_c, "params", "pass" if ok else "fail",
                                  "" if ok else f"total_params {s['total_params']}, Keras {params}"))
        except Exception as exc:
            results.append(Result(case, fmt_c, "params", "fail", one_line(str(exc))))
        try:
            f = cli(exe, ["forward", path, inp, "--json", "-q"], case.d)
            docs = f.get("outputs", [f])
            got = [np.asarray(doc["output"], dtype=np.float64) for doc in docs]
            status, detail = compare(got, want, case.full_rows)
            results.append(Result(case, fmt_c, "forward", status, detail))
        except Exception as exc:
            results.append(Result(case, fmt_c, "forward", "fail", one_line(str(exc))))
        refs = case.trace_refs.get(gen, {})
        if not refs:
            continue
        try:
            t = cli(exe, ["trace", path, inp, "--json", "-q"], case.d)
            layers = t.get("layers", {})
            bad = []
            for name, (y, seq) in refs.items():
                if name not in layers:
                    bad.append(f"{name}: not traced")
                    continue
                st = np.asarray(layers[name]["states"], dtype=np.float64)
                got = st if seq else st[:, -1]
                status, detail = compare([got], [y], case.full_rows)
                if status != "pass":
                    bad.append(f"{name}: {detail}")
            results.append(Result(case, fmt_c, "trace", "fail" if bad else "pass", "; ".join(bad)))
        except Exception as exc:
            results.append(Result(case, fmt_c, "trace", "fail", one_line(str(exc))))
    return results


# ======================================================================================
# main
# ======================================================================================


def table(results, families):
    cols = [*FORMATS, "cli"]
    cell = {}
    for r in results:
        col = "cli" if r.fmt.startswith("cli:") else r.fmt
        key = (r.case.family, col)
        p, f, m = cell.get(key, (0, 0, 0))
        cell[key] = (p + (r.status == "pass"), f + (r.status == "fail"), m + (r.status == "masked"))
    width = 20
    lines = ["family".ljust(12) + "".join(c.ljust(width) for c in cols)]
    total = {}
    for fam in families:
        row = fam.ljust(12)
        for col in cols:
            p, f, m = cell.get((fam, col), (0, 0, 0))
            t = total.get(col, (0, 0, 0))
            total[col] = (t[0] + p, t[1] + f, t[2] + m)
            row += (f"{p}/{f}" + (f" (+{m}m)" if m else "") if p + f + m else "-").ljust(width)
        lines.append(row)
    row = "TOTAL".ljust(12)
    for col in cols:
        p, f, m = total.get(col, (0, 0, 0))
        row += (f"{p}/{f}" + (f" (+{m}m)" if m else "")).ljust(width)
    lines.append(row)
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, action="append", help="repeatable")
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--keep", metavar="DIR", help="copy failing models' files here")
    ap.add_argument("--keep-all", action="store_true", help="with --keep: every model")
    ap.add_argument("--rnninspect-python", default=VENV_PY)
    ap.add_argument("--cli", default=VENV_CLI, help="the rnninspect executable")
    ap.add_argument("--cli-every", type=int, default=4, help="CLI checks on every k-th model")
    ap.add_argument("--live", action="store_true",
                    help="use the rnninspect tree as it is (no snapshot per seed)")
    ap.add_argument("--worker", nargs=2, metavar=("JOBS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    seeds = args.seed or [1]
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        ap.error(f"unknown families: {unknown}")
    t0 = time.time()
    results, all_cases = [], []
    tmp = tempfile.mkdtemp(prefix="check_graphs_")
    try:
        for seed in seeds:
            cases = []
            order = np.random.default_rng(seed).permutation(len(families))
            for i in range(args.count):
                family = families[order[i % len(families)]]
                d = os.path.join(tmp, f"s{seed}_{i:02d}")
                try:
                    case = generate(seed, i, family, d, want_trace=i % args.cli_every == 0)
                except Exception as exc:
                    print(f"[s{seed}#{i:02d}] {family}: GENERATOR ERROR {type(exc).__name__}: "
                          f"{one_line(str(exc))}", flush=True)
                    traceback.print_exc()
                    continue
                print(f"[{case.tag}] {family}: {case.desc}"
                      + "".join(f"\n      note: {n}" for n in case.notes), flush=True)
                cases.append(case)
            t1 = time.time()
            if not args.live:
                try:
                    where = snapshot(args.rnninspect_python, os.path.join(tmp, f"snap_s{seed}"))
                    print(f"seed {seed}: rnninspect snapshot of {where}", flush=True)
                except RuntimeError as exc:
                    RNNINSPECT_ENV.clear()
                    print(f"seed {seed}: {exc}; using the live tree", flush=True)
            rs = check_api(cases, tmp, args.rnninspect_python)
            for case in cases:
                if case.index % args.cli_every == 0:
                    rs += check_cli(case, args.cli)
            print(f"seed {seed}: {len(cases)} models, Keras {t1 - t0:.0f}s, "
                  f"rnninspect {time.time() - t1:.0f}s", flush=True)
            t0 = time.time()
            results += rs
            all_cases += cases
        print()
        print(table(results, families))
        print("cells: passed/failed over (forward + params) checks; (+Nm): differs only on "
              "fully padded rows")
        bad = [r for r in results if r.status != "pass"]
        if bad:
            print(f"\n{len(bad)} failing checks:")
        for r in bad:
            tag = "MASKED-ROWS" if r.status == "masked" else "FAIL"
            print(f"  {tag} [{r.case.tag} {r.case.family}] {r.fmt} {r.check}: {r.detail}")
            print(f"      model: {r.case.desc}")
        if args.keep:
            failing = {id(r.case): r.case for r in bad}
            keep = all_cases if args.keep_all else list(failing.values())
            for case in keep:
                dest = os.path.join(args.keep, f"s{case.seed}_{case.index:02d}_{case.family}")
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(case.d, dest)
            if keep:
                print(f"\nkept {len(keep)} model directories under {args.keep}")
        n_fail = sum(r.status == "fail" for r in results)
        n_masked = sum(r.status == "masked" for r in results)
        print(f"\n{sum(r.status == 'pass' for r in results)} passed, {n_fail} failed, "
              f"{n_masked} differ only on fully padded rows")
        return 1 if n_fail or n_masked else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
