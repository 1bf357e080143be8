"""The recurrent cells (SimpleRNN, LSTM, GRU both ways) and ``scan``, the loop over
T that runs one over a batch. Notation: N samples, T steps, D input features,
M hidden units; row-vector convention as Keras stores weights (``x @ W + b``).

The plain definitions, one line per equation (``tests/rnnref.py`` holds a plain
per-sample loop that the tests compare with), are:

    SimpleRNN  h_t = act(x_t Wx + h_{t-1} Wh + b)
    LSTM       i, f, o = sigma(x_t K + h_{t-1} R + b)  (their columns)
               g = act(...),  c_t = f * c_{t-1} + i * g,  h_t = o * act(c_t)
    GRU        z, r = sigma(...);  hh = act(x_t Kh + b0h + r * (h_{t-1} Rh + b1h))
               (reset_after; else act(x_t Kh + bh + (r * h_{t-1}) Rh))
               h_t = z * h_{t-1} + (1 - z) * hh

The fast path below computes exactly these, feature-major (see ``Step``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import activations
from ..model import GRU, LSTM, Array, Recurrent
from . import compiled

Float = np.dtype[Any]


@dataclass(eq=False)  # holds arrays (== would raise); each generated method costs start-up
class Scan:
    """One recurrent layer run over the whole sequence."""

    last: Array  # (N, M) output at the last processed step
    seq: Array | None  # (N, T, M) outputs in processing order (None when not kept)
    finals: list[Array]  # final states: [h] or, for LSTM, [h, c]
    extra: dict[str, Array] = field(default_factory=dict)  # "c" and gates, (N, T, M)


def lstm_order(M: int) -> Array:
    """Columns of Keras's LSTM layout (i, f, c, o) in the order i, f, o, c."""
    return np.concatenate([np.arange(0, 2 * M), np.arange(3 * M, 4 * M), np.arange(2 * M, 3 * M)])


# The recurrence works feature-major: each step's vectors are (features, N) blocks,
# so every gate is a contiguous run of rows (fast elementwise passes) and one matrix
# product per step takes the stacked operand S = [x_t; 1; h_{t-1}], (D + 1 + M, N):
# the input projection, the bias and the recurrent product in a single BLAS call.
#
# A wide input (D large against the gate rows) is instead projected on its own,
# ``Kx @ x_t^T`` read straight out of x (BLAS takes the transposed view as it is;
# copying x_t into S would be a slow strided transpose), and S = [1; h_{t-1}].
#
# A step reads S (and that projection, ``xw``, when the input is projected on its
# own), writes the new states into ``outs`` (which may be the states themselves:
# every write comes after the reads it depends on) and returns the gate
# activations, (M, N) views valid until the next step.
Step = Callable[[Array, list[Array], list[Array], Array | None], dict[str, Array]]


@dataclass(repr=False, eq=False)  # internal, holds arrays: each generated method costs start-up
class Cell:
    step: Step
    n_states: int  # 1, or 2 for LSTM (h, c)
    kx: Array | None = None  # (g*M, D): the input's own projection, when x is not in S


def _input_apart(layer: Recurrent, D: int) -> bool:
    """Project x_t on its own (``Cell.kx``) rather than copy it into S? Copying is a
    strided transpose of D rows; projecting apart costs an extra pass over the g*M
    gate rows. Measured (LSTM, GRU, SimpleRNN; N 256..8192): even near 2*D = g*M."""
    return layer.GATES * layer.units < 2 * D


def _stacked(K: Array, b: Array, R: Array | None, ft: Float) -> Array:
    """(rows, D + 1 [+ M]): ``[K; b; R]`` transposed, the weights of one product
    over ``[x_t; 1; h]``. ``R`` None: over ``[x_t; 1]`` only."""
    parts = [K, b[None, :]] + ([] if R is None else [R])
    return np.ascontiguousarray(np.concatenate(parts, axis=0).T, dtype=ft)


def _act_fm(name: str, major: int, gates: int = 1) -> Callable[[Array], None]:
    """An in-place activation of a feature-major (features, N) block of ``gates``
    stacked gates. Those that reduce over features (softmax) see one gate's units
    on their last axis, as Keras activates each gate on its own."""
    if name not in activations.ACROSS_FEATURES:
        return activations.get_inplace(name, major)
    fn = activations.get(name, major)

    def apply(buf: Array) -> None:
        for gate in np.split(buf, gates):  # (M, N) each
            gate[...] = fn(gate.T).T

    return apply


def _act_into(name: str, major: int) -> Callable[[Array, Array], None]:
    """An activation from ``src`` into ``dst`` (``src`` may be overwritten)."""
    act_ = _act_fm(name, major)

    def apply(src: Array, dst: Array) -> None:
        if name == "tanh":
            np.tanh(src, out=dst)
        elif name == "relu":
            np.maximum(src, 0, out=dst)
        else:
            act_(src)
            np.copyto(dst, src)

    return apply


def _sigmoid_of_halved(buf: Array) -> None:
    """sigmoid(2u) in place, for gates whose pre-activation u was halved upstream."""
    np.tanh(buf, out=buf)
    np.multiply(buf, 0.5, out=buf)
    np.add(buf, 0.5, out=buf)


def _cell(layer: Recurrent, ft: Float, major: int, N: int, D: int, apart: bool) -> Cell:
    """The step function of ``layer``, its weights stacked for ``S = [x_t; 1; h]``
    (``apart``: for ``S = [1; h]``, with x_t's projection from ``Cell.kx``).

    Sigmoid gates use sigmoid(x) = 0.5 * tanh(x / 2) + 0.5. The 1/2 inside is folded
    into those gates' weight rows (scaling by a power of two is exact, so results
    are unchanged), which leaves one tanh pass over all of an LSTM's gates and two
    cheap passes for the sigmoid ones.
    """
    act_ = _act_fm(layer.activation, major)
    K = layer.kernel.astype(ft, copy=False)  # (D, g*M)
    R = layer.recurrent_kernel.astype(ft, copy=False)  # (M, g*M)
    M = layer.units
    g = layer.GATES
    b = np.zeros(g * M, dtype=ft) if layer.bias is None else layer.bias.astype(ft, copy=False)
    sig_halved = getattr(layer, "recurrent_activation", None) == "sigmoid"
    if isinstance(layer, LSTM):
        # Keras's gate order is i, f, c, o; regrouped as i, f, o | c, the three
        # sigmoid gates are one contiguous block and take one activation call.
        order = lstm_order(M)
        W = _stacked(K[:, order], b[order], R[:, order], ft)  # (4M, D+1+M)
        if sig_halved:
            W[: 3 * M] *= 0.5
        kx, W = _apart(W, D, apart)
        ract_ = _act_fm(layer.recurrent_activation, major, gates=3)  # i, f, o
        tanh_all = sig_halved and layer.activation == "tanh"
        # With numba's kernels at hand, the passes below as one compiled pass
        # (``_kernels.lstm_gates``, equal to them to float32 rounding).
        fused = compiled.gate_kernels(layer, ft)
        z = np.empty((4 * M, N), dtype=ft)  # (4M, N) gates, reused every step
        tmp = np.empty((M, N), dtype=ft)

        def lstm(
            S: Array, states: list[Array], outs: list[Array], xw: Array | None
        ) -> dict[str, Array]:
            c = states[1]  # (M, N)
            h_out, c_out = outs
            np.matmul(W, S, out=z)  # (4M, N): i, f, o, g
            if xw is not None:
                np.add(z, xw, out=z)
            if fused is not None:
                fused.lstm_gates(z, c, c_out, h_out, c_out is c)  # gates, c_t, h_t below
                return {"i": z[:M], "f": z[M : 2 * M], "g": z[3 * M :], "o": z[2 * M : 3 * M]}
            ifo = z[: 3 * M]
            if tanh_all:
                np.tanh(z, out=z)  # i, f, o (halved) and the candidate
            else:
                if sig_halved:
                    np.tanh(ifo, out=ifo)
                else:
                    ract_(ifo)
                act_(z[3 * M :])
            if sig_halved:
                np.multiply(ifo, 0.5, out=ifo)
                np.add(ifo, 0.5, out=ifo)  # sigmoid = 0.5 * tanh(x / 2) + 0.5
            i, f, o, cand = z[:M], z[M : 2 * M], z[2 * M : 3 * M], z[3 * M :]
            np.multiply(f, c, out=c_out)
            np.multiply(i, cand, out=tmp)
            np.add(c_out, tmp, out=c_out)  # c_t = f * c + i * g
            if layer.activation == "tanh":
                np.tanh(c_out, out=tmp)
            else:
                np.copyto(tmp, c_out)
                act_(tmp)
            np.multiply(o, tmp, out=h_out)  # h_t = o * act(c_t)
            return {"i": i, "f": f, "g": cand, "o": o}

        return Cell(lstm, 2, kx)
    if isinstance(layer, GRU):
        ract_ = (
            _sigmoid_of_halved
            if sig_halved
            else _act_fm(layer.recurrent_activation, major, gates=2)
        )
        zr = slice(0, 2 * M)
        hh = np.empty((M, N), dtype=ft)  # (M, N) candidate
        if layer.reset_after:
            b_in = b[0] if b.ndim == 2 else b
            b_rec = b[1] if b.ndim == 2 else np.zeros(g * M, dtype=ft)
            # Rows z, r: x Kzr + h Rzr + both biases. Rows h: h Rh + b_rec_h (the x
            # columns zero: the reset gate multiplies this part alone).
            K1 = np.concatenate([K[:, zr], np.zeros((D, M), dtype=ft)], axis=1)
            b1 = np.concatenate([b_in[zr] + b_rec[zr], b_rec[2 * M :]])
            W1 = _stacked(K1, b1, R, ft)  # (3M, D+1+M)
            W2 = _stacked(K[:, 2 * M :], b_in[2 * M :], None, ft)  # (M, D+1): x Kh + b_in_h
            if sig_halved:
                W1[zr] *= 0.5
            kx1, W1 = _apart(W1, D, apart)
            kx2, W2 = _apart(W2, D, apart)
            kx = None if kx1 is None or kx2 is None else np.concatenate([kx1[zr], kx2])
            dx = 0 if apart else D  # rows of x in S
            u = np.empty((3 * M, N), dtype=ft)  # (3M, N)
            tmp = np.empty((M, N), dtype=ft)
            # As for LSTM: the passes below as one (``_kernels.gru_gates``).
            fused = compiled.gate_kernels(layer, ft)

            def gru(
                S: Array, states: list[Array], outs: list[Array], xw: Array | None
            ) -> dict[str, Array]:
                (h,), (h_out,) = states, outs  # (M, N)
                np.matmul(W1, S, out=u)  # z, r pre-activations; h Rh + b_rec_h
                if xw is not None:
                    np.add(u[zr], xw[zr], out=u[zr])
                np.matmul(W2, S[: dx + 1], out=hh)  # x Kh + b_in_h
                if xw is not None:
                    np.add(hh, xw[2 * M :], out=hh)
                z_, r_ = u[:M], u[M : 2 * M]
                if fused is not None:
                    fused.gru_gates(u, hh, h, h_out, h_out is h)  # z, r, hh, h_t below
                    return {"z": z_, "r": r_, "candidate": hh}
                ract_(u[zr])
                np.multiply(r_, u[2 * M :], out=tmp)
                np.add(hh, tmp, out=hh)
                act_(hh)  # candidate: act(x Kh + b0 + r * (h Rh + b1))
                np.subtract(h, hh, out=h_out)
                np.multiply(h_out, z_, out=h_out)
                np.add(h_out, hh, out=h_out)  # h_t = z*h + (1-z)*hh = hh + z*(h - hh)
                return {"z": z_, "r": r_, "candidate": hh}

            return Cell(gru, 1, kx)
        W1 = _stacked(K[:, zr], b[zr], R[:, zr], ft)  # (2M, D+1+M): z, r
        W2 = _stacked(K[:, 2 * M :], b[2 * M :], R[:, 2 * M :], ft)  # (M, D+1+M): candidate
        if sig_halved:
            W1 *= 0.5
        kx1, W1 = _apart(W1, D, apart)
        kx2, W2 = _apart(W2, D, apart)
        kx = None if kx1 is None or kx2 is None else np.concatenate([kx1, kx2])
        dx = 0 if apart else D  # rows of x in S
        u = np.empty((2 * M, N), dtype=ft)  # (2M, N) z, r
        S2 = np.empty((dx + 1 + M, N), dtype=ft)  # [x_t; 1; r * h]

        def gru_v1(
            S: Array, states: list[Array], outs: list[Array], xw: Array | None
        ) -> dict[str, Array]:
            (h,), (h_out,) = states, outs  # (M, N)
            np.matmul(W1, S, out=u)  # (2M, N)
            if xw is not None:
                np.add(u, xw[: 2 * M], out=u)
            ract_(u)  # z, r
            z_, r_ = u[:M], u[M:]
            S2[: dx + 1] = S[: dx + 1]
            np.multiply(r_, h, out=S2[dx + 1 :])  # reset before the product
            np.matmul(W2, S2, out=hh)  # (M, N)
            if xw is not None:
                np.add(hh, xw[2 * M :], out=hh)
            act_(hh)  # candidate
            np.subtract(h, hh, out=h_out)
            np.multiply(h_out, z_, out=h_out)
            np.add(h_out, hh, out=h_out)  # h_t = z*h + (1-z)*hh
            return {"z": z_, "r": r_, "candidate": hh}

        return Cell(gru_v1, 1, kx)

    kx, W = _apart(_stacked(K, b, R, ft), D, apart)  # (M, D+1+M), or (M, D) and (M, 1+M)
    act_into = _act_into(layer.activation, major)
    pre = np.empty((M, N), dtype=ft)

    def simple(
        S: Array, states: list[Array], outs: list[Array], xw: Array | None
    ) -> dict[str, Array]:
        np.matmul(W, S, out=pre)  # (M, N): x_t Wx + b + h_{t-1} Wh
        if xw is not None:
            np.add(pre, xw, out=pre)
        act_into(pre, outs[0])  # h_t = act(...)
        return {}

    return Cell(simple, 1, kx)


def _apart(W: Array, D: int, apart: bool) -> tuple[Array | None, Array]:
    """``W`` over ``[x; 1; h]`` split, when ``apart``, into its x columns and the rest."""
    if not apart:
        return None, W
    return np.ascontiguousarray(W[:, :D]), np.ascontiguousarray(W[:, D:])


def scan(
    layer: Recurrent,
    x: Array,
    mask: Array | None,
    ft: Float,
    major: int,
    keep_seq: bool,
    record: bool = False,
    gates: bool = False,
    initial: list[Array] | None = None,
) -> Scan:
    """Run ``layer`` over (N, T, D) ``x``. States start at ``initial`` ((N, M)
    each: h, and c for LSTM) or at zero (``stateful`` layers too: no file holds
    their states). ``record``: keep the cell states (and with ``gates`` the gate
    activations) of every step in ``Scan.extra``.

    Works feature-major inside (see ``Step``). A masked step keeps every state; its
    output is the previous output (zeros before the first unmasked step), or zeros
    with ``zero_output_for_mask``.
    Sequences come back as (N, T, M) views of (T, M, N) arrays, in processing order.
    """
    N, T, D = x.shape
    kernels = compiled.choose(layer, N, T, D, ft, mask, major)
    if kernels is not None:  # the same formulas as one compiled loop (small shapes)
        fields = compiled.scan(kernels, layer, x, mask, major, keep_seq, record, gates, initial)
        return Scan(*fields)
    M = layer.units
    apart = _input_apart(layer, D)
    cell = _cell(layer, ft, major, N, D, apart)
    dx = 0 if apart else D  # rows of x in S
    S = np.empty((dx + 1 + M, N), dtype=ft)  # [x_t; 1; h_{t-1}], or [1; h_{t-1}]
    S[dx] = 1
    S[dx + 1 :] = 0
    xw = None if cell.kx is None else np.empty((cell.kx.shape[0], N), dtype=ft)
    states = [S[dx + 1 :]] + [np.zeros((M, N), dtype=ft) for _ in range(cell.n_states - 1)]
    for state, given in zip(states, initial or [], strict=False):
        state[...] = given.T  # (M, N)
    spare = [np.empty((M, N), dtype=ft) for _ in states] if mask is not None else states
    seq = np.empty((T, M, N), dtype=ft) if keep_seq else None
    extra: dict[str, Array] = {}
    out = states[0]  # (M, N) this step's output
    # A masked step outputs the previous step's output: zeros before the first
    # real step, whatever the initial state (Keras's rnn starts prev_output at 0).
    held = np.zeros((M, N), dtype=ft) if mask is not None and initial else None
    # Keras's unrolled loop (unroll=True) zeroes a go_backwards layer's returned
    # sequence with the *unreversed* mask (its steps are otherwise as without unroll).
    mirrored = layer.unroll and layer.go_backwards and layer.zero_output_for_mask
    kept = np.zeros((M, N), dtype=ft) if mask is not None and mirrored else None
    for k in range(T):
        t = T - 1 - k if layer.go_backwards else k  # Keras returns processing order
        if xw is None:
            np.copyto(S[:D], x[:, t].T)  # (D, N)
        else:
            assert cell.kx is not None
            np.matmul(cell.kx, x[:, t].T, out=xw)  # (g*M, N)
        step_gates = cell.step(S, states, spare, xw)
        if mask is not None:
            m = mask[:, t][None, :]  # (1, N)
            for state, new in zip(states, spare, strict=True):
                np.copyto(state, new, where=m)
            if kept is not None and seq is not None:
                np.copyto(kept, spare[0], where=m)  # the step's output, masked: previous
                seq[k] = np.where(mask[:, k][None, :], kept, ft.type(0))
            if layer.zero_output_for_mask:
                out = np.where(m, spare[0], ft.type(0))
            elif held is not None:
                np.copyto(held, spare[0], where=m)
                out = held
            else:  # from zero states, the kept h is the previous output
                out = states[0]
        if seq is not None and kept is None:
            seq[k] = out
        if record:
            found = {"c": states[1]} if cell.n_states == 2 else {}
            if gates:
                found.update(step_gates)
            for name, value in found.items():
                if name not in extra:
                    extra[name] = np.empty((T, M, N), dtype=ft)
                extra[name][k] = value
    return Scan(
        last=np.ascontiguousarray(out.T),  # (N, M)
        seq=None if seq is None else seq.transpose(2, 0, 1),  # (N, T, M) view
        finals=[np.ascontiguousarray(s.T) for s in states],
        extra={k: v.transpose(2, 0, 1) for k, v in extra.items()},  # (N, T, M) views
    )
