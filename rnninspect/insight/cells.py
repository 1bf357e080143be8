"""A recurrent layer run in float64 with every intermediate kept, its step Jacobians
by the chain rule, and reverse mode through it.

Notation as everywhere: N samples, T steps, D input features, M units; row vectors
(``x_t @ Wx``). The state is s = h (SimpleRNN, GRU) or s = [h; c] (LSTM, S = 2M).
Step k is the k-th step *processed* (``go_backwards`` processes t = T-1 first);
``s_k`` is the state after it and ``s_{-1}`` the initial state. Each step's
Jacobians, per sample:

    A_k = ds_k / ds_{k-1}   (N, S, S)
    B_k = ds_k / dx_k       (N, S, D)

A masked step keeps the state: A_k = I, B_k = 0. The derivatives are written from
the layer's equations (``ops/recurrent.py``):

    SimpleRNN  h = act(u),  u = x Wx + h' Wh + b
               dh/dh' = act'(u) Wh^T
    LSTM       c = f c' + i g,  h = o act(c)
               dc/dh' = c' df/dh' + g di/dh' + i dg/dh',   dc/dc' = diag(f)
               dh/dh' = act(c) do/dh' + o act'(c) dc/dh',  dh/dc' = o act'(c) diag(f)
    GRU        h = z h' + (1 - z) hh
               dh/dh' = diag(z) + (h' - hh) dz/dh' + (1 - z) dhh/dh'
               reset_after:  hh = act(x Kh + b0 + r (h' Rh + b1)),
                             dhh/dh' = act'(.) [(h' Rh + b1) dr/dh' + r Rh^T]
               else:         hh = act(x Kh + b + (r h') Rh),
                             dhh/dh' = act'(.) Rh^T [diag(r) + h' dr/dh']

with every gate's d(gate)/dh' = act'(gate's u) W_gate^T (softmax gates: their full
Jacobian). Products like ``c' df/dh'`` scale rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import activations
from ..model import GRU, LSTM, Array, Recurrent
from . import derivatives

F64 = np.float64


def gate_names(layer: Recurrent) -> list[str]:
    """The activations a step computes, as ``trace --gates`` names them."""
    if isinstance(layer, LSTM):
        return ["i", "f", "g", "o"]
    if isinstance(layer, GRU):
        return ["z", "r", "candidate"]
    return ["h"]


def gate_activation(layer: Recurrent, gate: str) -> str:
    if gate in ("i", "f", "o", "z", "r"):
        return str(getattr(layer, "recurrent_activation", "sigmoid"))
    return layer.activation


def recurrent_blocks(layer: Recurrent) -> dict[str, Array]:
    """Each gate's (M, M) block of the recurrent kernel, by gate: SimpleRNN ``h``;
    LSTM ``i, f, g, o`` (Keras's i, f, c, o); GRU ``z, r, h``."""
    M = layer.units
    R = layer.recurrent_kernel
    names = {1: ["h"], 3: ["z", "r", "h"], 4: ["i", "f", "g", "o"]}[layer.GATES]
    return {name: R[:, k * M : (k + 1) * M] for k, name in enumerate(names)}


@dataclass
class CellRun:
    """One recurrent layer over a batch, processing order throughout."""

    layer: Recurrent
    major: int  # Keras generation (hard_sigmoid)
    x: Array  # (N, T, D) inputs in processing order
    mask: Array | None  # (N, T) bool, processing order
    h: Array  # (N, T + 1, M): h[:, 0] initial, h[:, k + 1] after step k
    c: Array | None  # (N, T + 1, M) cell states (LSTM)
    pre: dict[str, Array] = field(default_factory=dict)  # gate -> (N, T, M) pre-activation
    act: dict[str, Array] = field(default_factory=dict)  # gate -> (N, T, M) activation
    rec: Array | None = None  # GRU reset_after: h_{k-1} Rh + b1, (N, T, M)
    # Step Jacobians kept once computed, when they fit in CACHE_BYTES (reverse mode
    # over many output entries walks the steps once per chunk of them).
    cache: dict[int, tuple[Array, Array]] = field(default_factory=dict, repr=False)

    @property
    def samples(self) -> int:  # N
        return int(self.x.shape[0])

    @property
    def steps(self) -> int:  # T
        return int(self.x.shape[1])

    @property
    def units(self) -> int:  # M
        return self.layer.units

    @property
    def width(self) -> int:  # S: M, or 2M for LSTM's [h; c]
        return self.units * self.layer.STATES

    def valid(self) -> Array:
        """(N, T) bool: the steps that update the state."""
        return np.ones((self.samples, self.steps), bool) if self.mask is None else self.mask

    def seq(self) -> Array:
        """(N, T, M) the layer's output sequence (processing order), as Keras returns
        it: a masked step outputs the previous step's output (zeros before the first
        real step, whatever the initial state), or zeros with ``zero_output_for_mask``."""
        out = self.h[:, 1:]
        keep = self.output_keep()
        return out if keep is None else out * keep[:, :, None]

    def last(self) -> Array:
        return self.seq()[:, -1]  # (N, M)

    def finals(self) -> list[Array]:
        return [self.h[:, -1]] + ([] if self.c is None else [self.c[:, -1]])

    def output_keep(self) -> Array | None:
        """(N, T) where an output step passes its state on (None: everywhere): the
        real steps with ``zero_output_for_mask``, else every step from the first real
        one on (a masked step repeats the state the last real one left)."""
        if self.mask is None:
            return None
        if self.layer.zero_output_for_mask:
            return self.mask
        return np.logical_or.accumulate(self.mask, axis=1)


def _weights(layer: Recurrent) -> tuple[Array, Array, Array]:
    K = layer.kernel.astype(F64)  # (D, g*M)
    R = layer.recurrent_kernel.astype(F64)  # (M, g*M)
    gM = layer.GATES * layer.units
    b = np.zeros(gM) if layer.bias is None else layer.bias.astype(F64)  # (g*M,) or (2, g*M)
    return K, R, b


def run_cell(
    layer: Recurrent,
    x: Array,
    mask: Array | None,
    major: int,
    initial: list[Array] | None = None,
) -> CellRun:
    """Run ``layer`` over (N, T, D) ``x`` (input order) in float64, keeping every
    gate's pre-activation and activation."""
    x = np.asarray(x, dtype=F64)
    N, T, _ = x.shape
    M = layer.units
    order = np.arange(T)[::-1] if layer.go_backwards else np.arange(T)
    xp = x[:, order]  # (N, T, D) processing order
    mp = None if mask is None else np.asarray(mask, bool)[:, order]  # (N, T)
    K, R, b = _weights(layer)
    act = activations.get(layer.activation, major)
    ract = activations.get(gate_activation(layer, "z"), major)
    h = np.zeros((N, T + 1, M))
    c = np.zeros((N, T + 1, M)) if isinstance(layer, LSTM) else None
    if initial:
        h[:, 0] = initial[0]
        if c is not None and len(initial) > 1:
            c[:, 0] = initial[1]
    names = gate_names(layer)
    pre = {g: np.zeros((N, T, M)) for g in names}
    out = {g: np.zeros((N, T, M)) for g in names}
    rec = np.zeros((N, T, M)) if isinstance(layer, GRU) and layer.reset_after else None
    for k in range(T):
        xt, hp = xp[:, k], h[:, k]  # (N, D), (N, M)
        new_c = None
        if isinstance(layer, LSTM):
            assert c is not None
            u = xt @ K + hp @ R + b  # (N, 4M): i, f, c, o
            parts = dict(zip("ifgo", np.split(u, 4, axis=1), strict=True))
            for g, ug in parts.items():
                pre[g][:, k] = ug
                out[g][:, k] = (act if g == "g" else ract)(ug)
            i, f, gg, o = (out[g][:, k] for g in "ifgo")
            new_c = f * c[:, k] + i * gg  # (N, M)
            new_h = o * act(new_c)
        elif isinstance(layer, GRU):
            if layer.reset_after:
                b_in = b[0] if b.ndim == 2 else b
                b_rec = b[1] if b.ndim == 2 else np.zeros(3 * M)
                xw = xt @ K + b_in  # (N, 3M)
                hw = hp @ R + b_rec  # (N, 3M)
                uz, ur = xw[:, :M] + hw[:, :M], xw[:, M : 2 * M] + hw[:, M : 2 * M]
                z, r = ract(uz), ract(ur)
                assert rec is not None
                rec[:, k] = hw[:, 2 * M :]
                uc = xw[:, 2 * M :] + r * hw[:, 2 * M :]
            else:
                xw = xt @ K + b  # (N, 3M)
                uz = xw[:, :M] + hp @ R[:, :M]
                ur = xw[:, M : 2 * M] + hp @ R[:, M : 2 * M]
                z, r = ract(uz), ract(ur)
                uc = xw[:, 2 * M :] + (r * hp) @ R[:, 2 * M :]
            cand = act(uc)
            for g, ug, yg in (("z", uz, z), ("r", ur, r), ("candidate", uc, cand)):
                pre[g][:, k], out[g][:, k] = ug, yg
            new_h = z * hp + (1 - z) * cand
        else:
            u = xt @ K + hp @ R + b  # (N, M)
            new_h = act(u)
            pre["h"][:, k], out["h"][:, k] = u, new_h
        if mp is not None:
            m = mp[:, k][:, None]  # (N, 1)
            new_h = np.where(m, new_h, hp)
            if new_c is not None:
                assert c is not None
                new_c = np.where(m, new_c, c[:, k])
        h[:, k + 1] = new_h
        if c is not None and new_c is not None:
            c[:, k + 1] = new_c
    return CellRun(layer, major, xp, mp, h, c, pre, out, rec)


def _left(run: CellRun, gate: str, k: int, mat: Array) -> Array:
    """d(gate)/d(.) = J_gate @ mat at step k; ``mat`` (M, X) or (N, M, X)."""
    name = gate_activation(run.layer, gate)
    u, y = run.pre[gate][:, k], run.act[gate][:, k]  # (N, M)
    full = np.broadcast_to(mat, (run.samples, *mat.shape[-2:]))
    return derivatives.left(name, run.major, u, y, full)


CACHE_BYTES = 256 << 20


def step_jacobians(run: CellRun, k: int) -> tuple[Array, Array]:
    """``(A_k, B_k)``: ds_k/ds_{k-1} (N, S, S) and ds_k/dx_k (N, S, D)."""
    found = run.cache.get(k)
    if found is not None:
        return found
    A, B = _step_jacobians(run, k)
    S, D = run.width, int(run.x.shape[2])
    if run.samples * run.steps * S * (S + D) * 8 <= CACHE_BYTES:
        run.cache[k] = (A, B)
    return A, B


def _step_jacobians(run: CellRun, k: int) -> tuple[Array, Array]:
    layer = run.layer
    K, R, _ = _weights(layer)
    M = run.units
    hp = run.h[:, k]  # (N, M)
    eye = np.eye(M)
    if isinstance(layer, LSTM):
        assert run.c is not None
        cp, c = run.c[:, k], run.c[:, k + 1]  # (N, M)
        gates = {g: run.act[g][:, k] for g in "ifgo"}
        Rg = {g: R[:, j * M : (j + 1) * M].T for j, g in enumerate("ifgo")}  # (M, M)
        Kg = {g: K[:, j * M : (j + 1) * M].T for j, g in enumerate("ifgo")}  # (M, D)
        name = layer.activation
        # Where the mask kept the state, c is the old one, but these rows are
        # replaced by the identity below, so the value used there does not matter.
        ca = activations.get(name, run.major)(c)  # act(c_t), (N, M)
        i, f, g, o = gates["i"], gates["f"], gates["g"], gates["o"]

        def through(W: dict[str, Array]) -> tuple[Array, Array]:
            d = {gate: _left(run, gate, k, W[gate]) for gate in "ifgo"}  # (N, M, X)
            dc = cp[:, :, None] * d["f"] + g[:, :, None] * d["i"] + i[:, :, None] * d["g"]
            dh = ca[:, :, None] * d["o"] + o[:, :, None] * derivatives.left(
                name, run.major, c, ca, dc
            )
            return dh, dc

        dh_dh, dc_dh = through(Rg)
        dc_dc = f[:, :, None] * eye  # (N, M, M) diag(f)
        dh_dc = o[:, :, None] * derivatives.left(name, run.major, c, ca, dc_dc)
        A = np.block([[dh_dh, dh_dc], [dc_dh, dc_dc]])  # (N, 2M, 2M)
        dh_dx, dc_dx = through(Kg)
        B = np.concatenate([dh_dx, dc_dx], axis=1)  # (N, 2M, D)
    elif isinstance(layer, GRU):
        z, cand = run.act["z"][:, k], run.act["candidate"][:, k]  # (N, M)
        r = run.act["r"][:, k]
        Rz, Rr, Rh = (R[:, j * M : (j + 1) * M].T for j in range(3))  # (M, M)
        Kz, Kr, Kh = (K[:, j * M : (j + 1) * M].T for j in range(3))  # (M, D)
        dz_h, dr_h = _left(run, "z", k, Rz), _left(run, "r", k, Rr)  # (N, M, M)
        dz_x, dr_x = _left(run, "z", k, Kz), _left(run, "r", k, Kr)  # (N, M, D)
        if layer.reset_after:
            assert run.rec is not None
            rec = run.rec[:, k][:, :, None]  # (N, M, 1): h_{k-1} Rh + b1
            dc_h = _left(run, "candidate", k, rec * dr_h + r[:, :, None] * Rh)
            dc_x = _left(run, "candidate", k, Kh + rec * dr_x)
        else:
            dc_h = _left(run, "candidate", k, Rh * r[:, None, :] + Rh @ (hp[:, :, None] * dr_h))
            dc_x = _left(run, "candidate", k, Kh + Rh @ (hp[:, :, None] * dr_x))
        keep = (hp - cand)[:, :, None]  # (N, M, 1)
        A = z[:, :, None] * eye + keep * dz_h + (1 - z)[:, :, None] * dc_h  # (N, M, M)
        B = keep * dz_x + (1 - z)[:, :, None] * dc_x  # (N, M, D)
    else:
        A = _left(run, "h", k, R.T)  # (N, M, M)
        B = _left(run, "h", k, K.T)  # (N, M, D)
    if run.mask is not None:
        kept = ~run.mask[:, k]  # (N,)
        if kept.any():
            A = np.array(A)
            B = np.array(B)
            A[kept] = np.eye(run.width)
            B[kept] = 0.0
    return A, B


def state_jacobian_norms(run: CellRun) -> Array:
    """(N, T): the spectral norm of ds_{T-1}/ds_k for every processing step k
    (the last is 1), by J_{T-1} = I, J_k = J_{k+1} A_{k+1}.

    J is carried as scale * J' with J' of unit Frobenius norm: a vanishing product
    would otherwise sink into subnormal numbers, where arithmetic crawls."""
    N, T, S = run.samples, run.steps, run.width
    out = np.ones((N, T))
    J = np.broadcast_to(np.eye(S), (N, S, S)).copy()
    log_scale = np.zeros(N)
    for k in range(T - 2, -1, -1):
        A, _ = step_jacobians(run, k + 1)
        J = J @ A  # (N, S, S): ds_{T-1}/ds_k / scale
        size = np.sqrt(np.einsum("nij,nij->n", J, J))  # (N,)
        live = size > 0
        J[live] /= size[live, None, None]
        log_scale[live] += np.log(size[live])
        # The largest singular value, as the root of J'^T J's largest eigenvalue
        # (a symmetric eigenproblem: about 3x faster than an SVD, as accurate for it).
        gram = np.einsum("nji,njk->nik", J, J)  # (N, S, S)
        top = np.sqrt(np.maximum(np.linalg.eigvalsh(gram)[:, -1], 0.0))  # (N,)
        with np.errstate(under="ignore", over="ignore"):
            out[:, k] = np.where(live, top * np.exp(log_scale), 0.0)
    return out


def state_jacobians(run: CellRun, sample: int = 0) -> Array:
    """(T, S, S): ds_{T-1}/ds_k for every processing step k, for one sample."""
    T, S = run.steps, run.width
    out = np.empty((T, S, S))
    J = np.eye(S)
    out[T - 1] = J
    for k in range(T - 2, -1, -1):
        A, _ = step_jacobians(run, k + 1)
        J = J @ A[sample]
        out[k] = J
    return out


def cell_vjp(
    run: CellRun,
    g_seq: Array | None,
    g_last: Array | None,
    g_finals: list[Array | None],
) -> tuple[Array, list[Array]]:
    """Reverse mode through the layer. Cotangents carry a P axis after N: ``g_seq``
    (N, P, T, M) for the output sequence (processing order), ``g_last`` (N, P, M),
    ``g_finals`` for the final states [h] or [h, c]. Returns the input's cotangent
    (N, P, T, D) in input order and the initial states'."""
    first = next(g for g in (g_seq, g_last, *g_finals) if g is not None)
    N, P = first.shape[:2]
    T, M, S = run.steps, run.units, run.width
    D = int(run.x.shape[2])
    gs = np.zeros((N, P, S))  # dL/ds_k, row vectors
    for j, g in enumerate(g_finals):
        if g is not None:
            gs[:, :, j * M : (j + 1) * M] += g
    keep = run.output_keep()
    gx = np.zeros((N, P, T, D))
    for k in range(T - 1, -1, -1):
        w = 1.0 if keep is None else keep[:, k][:, None, None]  # (N, 1, 1)
        if g_last is not None and k == T - 1:
            gs[:, :, :M] += g_last * w
        if g_seq is not None:
            gs[:, :, :M] += g_seq[:, :, k] * w
        A, B = step_jacobians(run, k)
        gx[:, :, k] = gs @ B  # (N, P, D)
        gs = gs @ A  # (N, P, S): dL/ds_{k-1}
    if run.layer.go_backwards:
        gx = gx[:, :, ::-1]
    inits = [gs[:, :, j * M : (j + 1) * M] for j in range(run.layer.STATES)]
    return gx, inits
