"""An independent float64 reference for SimpleRNN / LSTM / GRU chains.

Written from Keras's documented formulas (``/work/shared/keras-formats.md``), sharing
no code with ``rnninspect``: it reads the Keras 3 ``config.json`` itself and the
weights from ``layers.npz`` (Keras's own ``get_weights()`` arrays), and takes the
Keras generation as a parameter, because ``hard_sigmoid`` differs:

* Keras 1/2/tf_keras: ``clip(0.2 x + 0.5, 0, 1)``
* Keras 3:            ``clip(x / 6 + 0.5, 0, 1)``

Only what the hard_sigmoid sample models need: Sequential chains of SimpleRNN, LSTM,
GRU (both ``reset_after``), Dropout and Dense, no masks, ``go_backwards`` allowed.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def hard_sigmoid(x: np.ndarray, generation: int) -> np.ndarray:
    if generation >= 3:
        return np.clip(x / 6.0 + 0.5, 0.0, 1.0)
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def activation(name: str, x: np.ndarray, generation: int) -> np.ndarray:
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "hard_sigmoid":
        return hard_sigmoid(x, generation)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "linear":
        return x
    if name == "softmax":  # across units, per sample
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise AssertionError(f"reference does not know activation {name}")


def recurrent(
    cls: str, cfg: dict[str, Any], ws: list[np.ndarray], x: np.ndarray, generation: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One layer over (N, T, D) ``x``: its (N, T, M) output sequence in processing
    order, and its final states ([h] or [h, c])."""
    K, R = (w.astype(np.float64) for w in ws[:2])
    M = R.shape[0]
    b = ws[2].astype(np.float64) if len(ws) > 2 else None
    act = lambda v: activation(cfg["activation"], v, generation)  # noqa: E731
    ract = lambda v: activation(cfg.get("recurrent_activation", "sigmoid"), v, generation)  # noqa: E731
    N, T, _ = x.shape
    steps = range(T - 1, -1, -1) if cfg.get("go_backwards") else range(T)
    h = np.zeros((N, M))
    c = np.zeros((N, M))
    seq = []
    for t in steps:
        xt = x[:, t].astype(np.float64)
        if cls == "SimpleRNN":
            h = act(xt @ K + h @ R + (0 if b is None else b))
        elif cls == "LSTM":
            z = xt @ K + h @ R + (0 if b is None else b)
            i, f, g, o = (z[:, k * M : (k + 1) * M] for k in range(4))  # i, f, c, o
            c = ract(f) * c + ract(i) * act(g)
            h = ract(o) * act(c)
        elif cls == "GRU":
            if cfg.get("reset_after", True):
                b_in = np.zeros(3 * M) if b is None else b[0]
                b_rec = np.zeros(3 * M) if b is None else b[1]
                xp = xt @ K + b_in
                hp = h @ R + b_rec
                z = ract(xp[:, :M] + hp[:, :M])
                r = ract(xp[:, M : 2 * M] + hp[:, M : 2 * M])
                hh = act(xp[:, 2 * M :] + r * hp[:, 2 * M :])
            else:
                xp = xt @ K + (0 if b is None else b)
                z = ract(xp[:, :M] + h @ R[:, :M])
                r = ract(xp[:, M : 2 * M] + h @ R[:, M : 2 * M])
                hh = act(xp[:, 2 * M :] + (r * h) @ R[:, 2 * M :])
            h = z * h + (1 - z) * hh
        else:
            raise AssertionError(cls)
        seq.append(h)
    finals = [h, c] if cls == "LSTM" else [h]
    return np.stack(seq, axis=1), finals


def run_chain(
    config: dict[str, Any], weights: dict[str, np.ndarray], x: np.ndarray, generation: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A Sequential chain: (model output, {layer name: (N, T, M) sequence})."""
    states: dict[str, np.ndarray] = {}
    out = x.astype(np.float64)
    for entry in config["config"]["layers"]:
        cls, cfg = entry["class_name"], entry["config"]
        name = cfg.get("name")
        if cls in ("InputLayer", "Dropout"):
            continue
        if cls in ("SimpleRNN", "LSTM", "GRU"):
            ws = [weights[f"{name}/{k}"] for k in ("kernel", "recurrent_kernel", "bias")
                  if f"{name}/{k}" in weights]  # fmt: skip
            seq, finals = recurrent(cls, cfg, ws, out, generation)
            states[name] = seq
            out = seq if cfg.get("return_sequences") else finals[0]
        elif cls == "Dense":
            out = out @ weights[f"{name}/kernel"].astype(np.float64)
            if f"{name}/bias" in weights:
                out = out + weights[f"{name}/bias"]
            out = activation(cfg.get("activation", "linear"), out, generation)
        else:
            raise AssertionError(f"reference does not know {cls}")
    return out, states
