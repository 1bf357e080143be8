"""The recurrent cells as numba kernels: the whole loop over T (and over the
samples) in one compiled call, for the small shapes where the NumPy engine spends
most of its time dispatching (see ``compiled``, which imports this module only when
the compiled engine is chosen: importing numba costs about 0.3 s).

Each kernel computes the formulas of ``recurrent`` (its module docstring) step by
step, all samples in each step, from row vectors ``z = b + x_t K + h R`` accumulated
over the rows of K and R (the inner loops run over the contiguous gate columns,
which LLVM vectorises), then the gates elementwise, sample by sample. The steps go
in blocks of ``TB``: first the block's input projections ``b + x_t K`` (they do
not wait on h), two steps at a time, then each step's recurrent product, two
samples at a time: one pass over the weights serves two rows, and the loads of
the weights, not the multiply-adds, bound these loops (measured: the recurrent
product of 8 samples 1.45x faster in pairs). A row's sums are formed the same way
alone or paired, so a sample's result does not depend on the batch it is in or on
how its sequence is split into calls (the stepper's one-step calls equal a whole
``forward``, bit for bit). Loops over N are fine here: there is no dispatch to
amortise.

Where the time goes (measured on 2 cores of an AMD EPYC with AVX-512, which LLVM
uses here): with one sample the LSTM's (M = 64) recurrent product reads R, 64 KiB,
twice the L1 cache, from L2 every step, about 0.8 us of the step's 0.9; with the
weights in L1 (M = 32, 8 samples) its products and its gates (five rational tanh a
unit) take about equal shares (75 and 80 us of the 100 steps), the input
projections 30 us.

float32 only. tanh is Eigen's (and XLA's) float32 rational approximation, within a
few ulps of ``np.tanh`` and branch-free, so the gate loops vectorise; sigmoid(x) is
0.5 * tanh(x / 2) + 0.5 as in the NumPy engine. Results equal the NumPy engine's to
float32 rounding (``tests/test_compiled.py``), not bit for bit: the order of the sums
differs from BLAS's.

Options (arguments): ``a``/``ra`` activation codes (``compiled.ACT``); ``backwards``
processes t = T-1 .. 0; ``mask`` (N, T) bool or (0, 0) for none: a masked step keeps
the states and outputs the previous output (zeros before the first real step), or
zeros with ``zero_out``. Outputs, time-major as the NumPy engine keeps them (so
the layers after see the same layout, and compute the same way): ``seq`` (T, M, N)
outputs in processing order, ``cseq`` (T, M, N) LSTM cell states, ``gseq``
(T, g*M, N) gate activations — each (0, 0, 0) when not wanted; ``last`` (N, M) the
last output; ``h``/``c`` (N, M) the states, read as the initial states and
overwritten with the final ones.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_F = np.float32
_CLAMP = _F(7.90531110763549805)  # tanh rounds to +-1 in float32 beyond
_TINY = _F(0.0004)  # below, tanh(x) = x in float32
_A1 = _F(4.89352455891786e-03)
_A3 = _F(6.37261928875436e-04)
_A5 = _F(1.48572235717979e-05)
_A7 = _F(5.12229709037114e-08)
_A9 = _F(-8.60467152213735e-11)
_A11 = _F(2.00018790482477e-13)
_A13 = _F(-2.76076847742355e-16)
_B0 = _F(4.89352518554385e-03)
_B2 = _F(2.26843463243900e-03)
_B4 = _F(1.18534705686654e-04)
_B6 = _F(1.19825839466702e-06)
_HALF = _F(0.5)
_ONE = _F(1.0)
_ZERO = _F(0.0)
_SIXTH = _F(1.0 / 6.0)
_FIFTH = _F(0.2)

_jit = numba.njit(cache=True, nogil=True, inline="always")
_kernel = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@_jit
def tanh(v: Any) -> Any:
    x = min(max(v, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    p = x * p
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return v if abs(v) < _TINY else p / q


@_jit
def act(v: Any, code: int) -> Any:
    if code == 1:
        return tanh(v)
    if code == 2:
        return _HALF * tanh(_HALF * v) + _HALF
    if code == 3:
        return max(v, _ZERO)
    if code == 4:
        return min(max(v * _SIXTH + _HALF, _ZERO), _ONE)
    if code == 5:
        return min(max(v * _FIFTH + _HALF, _ZERO), _ONE)
    return v


@_jit
def sigmoid(v: Any) -> Any:
    return _HALF * tanh(_HALF * v) + _HALF  # act(v, 2), written out for the fast paths


@_jit
def _rows(z: Any, s: Any, W: Any, G: int) -> None:
    """z[:G] += s W[:, :G]. Four rows at a time: z is loaded and stored once per four
    multiply-adds instead of per one (measured 1.2-2.8x faster on 40-80 rows)."""
    R = s.shape[0]
    k = 0
    while k + 4 <= R:
        s0, s1, s2, s3 = s[k], s[k + 1], s[k + 2], s[k + 3]
        for j in range(G):
            z[j] += (s0 * W[k, j] + s1 * W[k + 1, j]) + (s2 * W[k + 2, j] + s3 * W[k + 3, j])
        k += 4
    while k < R:
        sk = s[k]
        for j in range(G):
            z[j] += sk * W[k, j]
        k += 1


@_jit
def _rows2(z0: Any, z1: Any, s0: Any, s1: Any, W: Any, G: int) -> None:
    """``_rows`` for two rows at once, z0 += s0 W and z1 += s1 W in one pass over W:
    each weight is loaded once for both (the loads, not the multiply-adds, bound
    ``_rows``). Each row's sums are formed exactly as ``_rows`` forms them, so a
    row's result does not depend on its partner (the stepper's one-step calls equal
    a whole sequence's, bit for bit)."""
    R = s0.shape[0]
    k = 0
    while k + 4 <= R:
        a0, a1, a2, a3 = s0[k], s0[k + 1], s0[k + 2], s0[k + 3]
        b0, b1, b2, b3 = s1[k], s1[k + 1], s1[k + 2], s1[k + 3]
        for j in range(G):
            w0, w1, w2, w3 = W[k, j], W[k + 1, j], W[k + 2, j], W[k + 3, j]
            z0[j] += (a0 * w0 + a1 * w1) + (a2 * w2 + a3 * w3)
            z1[j] += (b0 * w0 + b1 * w1) + (b2 * w2 + b3 * w3)
        k += 4
    while k < R:
        a, b = s0[k], s1[k]
        for j in range(G):
            w = W[k, j]
            z0[j] += a * w
            z1[j] += b * w
        k += 1


@_jit
def _rows_all(Z: Any, S: Any, W: Any, G: int) -> None:
    """Z[n, :G] += S[n] W[:, :G] for every row n (the recurrent product of a step,
    all samples: (N, G) += (N, M) (M, G)), two rows at a time."""
    N = Z.shape[0]
    n = 0
    while n + 2 <= N:
        _rows2(Z[n], Z[n + 1], S[n], S[n + 1], W, G)
        n += 2
    if n < N:
        _rows(Z[n], S[n], W, G)


@_jit
def _time(k: int, T: int, backwards: bool) -> int:
    """The time index of processing step k (go_backwards runs t = T-1 .. 0)."""
    return T - 1 - k if backwards else k


@_jit
def _inputs(P: Any, x: Any, k0: int, kb: int, backwards: bool, K: Any, b: Any) -> None:
    """P[i, n] = b + x[n, t] K for the kb processing steps k0 + i of a block and every
    sample n (the input projection does not wait on h: two steps share K's loads)."""
    N, T, _ = x.shape
    G = P.shape[2]
    for n in range(N):
        for i in range(kb):
            for j in range(G):
                P[i, n, j] = b[j]
        i = 0
        while i + 2 <= kb:
            t0, t1 = _time(k0 + i, T, backwards), _time(k0 + i + 1, T, backwards)
            _rows2(P[i, n], P[i + 1, n], x[n, t0], x[n, t1], K, G)
            i += 2
        if i < kb:
            _rows(P[i, n], x[n, _time(k0 + i, T, backwards)], K, G)


@_jit
def _start(out: Any, h: Any, masked: bool) -> None:
    """The output before the first step: zeros when masked (Keras's rnn starts its
    previous output at zero, whatever the initial state), else h (only read for T=0)."""
    for j in range(h.shape[0]):
        out[j] = _ZERO if masked else h[j]


@_jit
def _emit(
    n: int,
    k: int,
    real: bool,
    zero_out: bool,
    h: Any,
    hn: Any,
    out: Any,
    seq: Any,
) -> None:
    """The step's output after the mask: ``hn`` is the new h (already kept in ``h``
    where the step is real)."""
    M = h.shape[0]
    if real:
        for j in range(M):
            out[j] = hn[j]
    elif zero_out:
        for j in range(M):
            out[j] = _ZERO
    if seq.shape[0]:
        for j in range(M):
            seq[k, j, n] = out[j]


# Each kernel runs the steps in blocks of TB: the block's input projections first
# (``_inputs``, all samples), then step by step the recurrent product of all samples
# (``_rows_all``) and each sample's gates. A block's projections, (TB, N, g*M)
# (each step's (N, g*M) block and each sample's row contiguous, so the loops over
# the gate columns vectorise), take N * TB * g*M floats of scratch.
TB = 8


@_kernel
def simple(
    x: Any,
    mask: Any,
    K: Any,
    R: Any,
    b: Any,
    h0: Any,
    a: int,
    backwards: bool,
    zero_out: bool,
    seq: Any,
    last: Any,
) -> None:
    N, T, _ = x.shape
    M = R.shape[0]
    masked = mask.shape[0] > 0
    P = np.empty((TB, N, M), np.float32)  # the block's x_t K + b, then z
    out = np.empty((N, M), np.float32)  # each sample's output so far
    for n in range(N):
        _start(out[n], h0[n], masked)
    for k0 in range(0, T, TB):
        kb = min(TB, T - k0)
        _inputs(P, x, k0, kb, backwards, K, b)
        for i in range(kb):
            k = k0 + i
            t = _time(k, T, backwards)
            z = P[i]  # (N, M)
            _rows_all(z, h0, R, M)  # z = x_t K + b + h R
            for n in range(N):
                real = mask[n, t] if masked else True
                h, zn = h0[n], z[n]
                if a == 1:  # tanh, the default, written out: the loop vectorises
                    for j in range(M):
                        zn[j] = tanh(zn[j])
                else:
                    for j in range(M):
                        zn[j] = act(zn[j], a)
                if real:
                    for j in range(M):
                        h[j] = zn[j]
                _emit(n, k, real, zero_out, h, zn, out[n], seq)
    for n in range(N):
        last[n] = out[n]


@_kernel
def lstm(
    x: Any,
    mask: Any,
    K: Any,
    R: Any,
    b: Any,
    h0: Any,
    c0: Any,
    a: int,
    ra: int,
    backwards: bool,
    zero_out: bool,
    seq: Any,
    cseq: Any,
    gseq: Any,
    last: Any,
) -> None:
    N, T, _ = x.shape
    M = R.shape[0]
    masked = mask.shape[0] > 0
    P = np.empty((TB, N, 4 * M), np.float32)  # Keras's order: i, f, c (the candidate), o
    # A sample's gate activations, apart from its z (written back in place, the
    # gate loop measured 3x slower for two or more samples).
    gz = np.empty(4 * M, np.float32)
    hn = np.empty(M, np.float32)
    cn = np.empty(M, np.float32)
    out = np.empty((N, M), np.float32)
    # Unmasked, the default activations, no cell states or gates kept: the gates
    # update h and c in place (each c[j] read before it is written; h was read by
    # the step's product already), and the output is h. The same sums as the
    # general path below, without its copies (measured: the whole call 7-14% faster
    # at N=8 M=32 and N=1 M=64).
    direct = not masked and a == 1 and ra == 2 and not cseq.shape[0] and not gseq.shape[0]
    for n in range(N):
        _start(out[n], h0[n], masked)
    for k0 in range(0, T, TB):
        kb = min(TB, T - k0)
        _inputs(P, x, k0, kb, backwards, K, b)
        for s in range(kb):
            k = k0 + s
            t = _time(k, T, backwards)
            Z = P[s]  # (N, 4M)
            _rows_all(Z, h0, R, 4 * M)  # z = x_t K + b + h R
            for n in range(N):
                real = mask[n, t] if masked else True
                h, c, z = h0[n], c0[n], Z[n]
                if direct:
                    for j in range(M):
                        i = sigmoid(z[j])
                        f = sigmoid(z[M + j])
                        g = tanh(z[2 * M + j])
                        o = sigmoid(z[3 * M + j])
                        cj = f * c[j] + i * g  # c_t = f * c + i * g
                        c[j] = cj
                        h[j] = o * tanh(cj)  # h_t = o * tanh(c_t)
                    if seq.shape[0]:
                        for j in range(M):
                            seq[k, j, n] = h[j]
                    continue
                if a == 1 and ra == 2:  # tanh and sigmoid, the defaults, written out (the
                    for j in range(M):  # loop vectorises; through act's branches, 2.5x slower)
                        i = sigmoid(z[j])
                        f = sigmoid(z[M + j])
                        g = tanh(z[2 * M + j])
                        o = sigmoid(z[3 * M + j])
                        cj = f * c[j] + i * g
                        cn[j] = cj
                        hn[j] = o * tanh(cj)
                        gz[j], gz[M + j], gz[2 * M + j], gz[3 * M + j] = i, f, g, o
                else:
                    for j in range(M):
                        i = act(z[j], ra)
                        f = act(z[M + j], ra)
                        g = act(z[2 * M + j], a)
                        o = act(z[3 * M + j], ra)
                        cj = f * c[j] + i * g  # c_t = f * c + i * g
                        cn[j] = cj
                        hn[j] = o * act(cj, a)  # h_t = o * act(c_t)
                        gz[j], gz[M + j], gz[2 * M + j], gz[3 * M + j] = i, f, g, o
                if real:
                    for j in range(M):
                        h[j] = hn[j]
                        c[j] = cn[j]
                _emit(n, k, real, zero_out, h, hn, out[n], seq)
                if cseq.shape[0]:
                    for j in range(M):
                        cseq[k, j, n] = c[j]
                if gseq.shape[0]:
                    for j in range(4 * M):
                        gseq[k, j, n] = gz[j]
    for n in range(N):
        last[n] = h0[n] if direct else out[n]


@_kernel
def gru(
    x: Any,
    mask: Any,
    K: Any,
    R: Any,
    b_in: Any,
    b_rec: Any,
    h0: Any,
    a: int,
    ra: int,
    reset_after: bool,
    backwards: bool,
    zero_out: bool,
    seq: Any,
    gseq: Any,
    last: Any,
) -> None:
    """Keras's gate order z, r, h. reset_after: hh = act(x Kh + b_in_h + r * (h Rh +
    b_rec_h)); else hh = act(x Kh + b_h + (r * h) Rh) (``b_rec`` zero)."""
    N, T, _ = x.shape
    M = R.shape[0]
    masked = mask.shape[0] > 0
    P = np.empty((TB, N, 3 * M), np.float32)  # x K + b_in (+ h R for z, r when not reset_after)
    zh = np.empty((N, 3 * M), np.float32)  # h R + b_rec (reset_after)
    zr = np.empty((N, 2 * M), np.float32)  # the gates z, r (apart from P: see lstm)
    rh = np.empty((N, M), np.float32)  # r * h (not reset_after)
    hh = np.empty((N, M), np.float32)  # the candidate
    hn = np.empty(M, np.float32)
    out = np.empty((N, M), np.float32)
    Rzr = R[:, : 2 * M]
    Rh = R[:, 2 * M :]
    for n in range(N):
        _start(out[n], h0[n], masked)
    for k0 in range(0, T, TB):
        kb = min(TB, T - k0)
        _inputs(P, x, k0, kb, backwards, K, b_in)
        for s in range(kb):
            k = k0 + s
            t = _time(k, T, backwards)
            Z = P[s]  # (N, 3M)
            if reset_after:
                for n in range(N):
                    for j in range(3 * M):
                        zh[n, j] = b_rec[j]
                _rows_all(zh, h0, R, 3 * M)  # h R + b_rec
                for n in range(N):
                    zx, zhn, g, hc = Z[n], zh[n], zr[n], hh[n]
                    if a == 1 and ra == 2:  # the defaults, written out (vectorises)
                        for j in range(M):
                            rg = sigmoid(zx[M + j] + zhn[M + j])
                            g[j] = sigmoid(zx[j] + zhn[j])
                            g[M + j] = rg
                            hc[j] = tanh(zx[2 * M + j] + rg * zhn[2 * M + j])
                    else:
                        for j in range(M):
                            rg = act(zx[M + j] + zhn[M + j], ra)
                            g[j] = act(zx[j] + zhn[j], ra)
                            g[M + j] = rg
                            hc[j] = act(zx[2 * M + j] + rg * zhn[2 * M + j], a)
            else:
                _rows_all(Z, h0, Rzr, 2 * M)  # + h R for z, r
                for n in range(N):
                    zx, h, g = Z[n], h0[n], zr[n]
                    for j in range(2 * M):
                        g[j] = act(zx[j], ra)
                    for j in range(M):
                        rh[n, j] = g[M + j] * h[j]  # reset before the product
                        hh[n, j] = zx[2 * M + j]
                _rows_all(hh, rh, Rh, M)  # + (r * h) Rh
                for n in range(N):
                    for j in range(M):
                        hh[n, j] = act(hh[n, j], a)
            for n in range(N):
                real = mask[n, t] if masked else True
                h, g, hc = h0[n], zr[n], hh[n]
                for j in range(M):
                    hn[j] = hc[j] + g[j] * (h[j] - hc[j])  # h_t = z*h + (1-z)*hh
                if real:
                    for j in range(M):
                        h[j] = hn[j]
                _emit(n, k, real, zero_out, h, hn, out[n], seq)
                if gseq.shape[0]:
                    for j in range(2 * M):
                        gseq[k, j, n] = g[j]
                    for j in range(M):
                        gseq[k, 2 * M + j, n] = hc[j]
    for n in range(N):
        last[n] = out[n]


# The NumPy engine's gate pass, fused (``compiled.gate_kernels``): for the shapes the
# whole loops above do not pay for, the matrix products stay with BLAS and the gates
# of a step are one compiled pass instead of 6-9 NumPy calls over (features, N)
# blocks (measured 1.6-1.8x faster than those calls for M 64-256, N 32-8192). The
# arrays are the engine's, feature-major (``recurrent._cell``): a gate's units are
# rows, the samples columns. The sigmoid gates' pre-activations come halved (their
# weight rows were scaled by 1/2), so sigmoid(2u) = 0.5 * tanh(u) + 0.5, as the
# NumPy engine computes it. Outputs may be the states themselves: each element is
# read before it is written.


@_jit
def _lstm_row(zi: Any, zf: Any, zo: Any, zg: Any, c: Any, c_out: Any, h_out: Any) -> None:
    for n in range(c.shape[0]):
        i = _HALF * tanh(zi[n]) + _HALF
        f = _HALF * tanh(zf[n]) + _HALF
        o = _HALF * tanh(zo[n]) + _HALF
        g = tanh(zg[n])
        cj = f * c[n] + i * g  # c_t = f * c + i * g
        c_out[n] = cj
        h_out[n] = o * tanh(cj)  # h_t = o * tanh(c_t)
        zi[n], zf[n], zo[n], zg[n] = i, f, o, g


@_kernel
def lstm_gates(z: Any, c: Any, c_out: Any, h_out: Any, inplace: bool) -> None:
    """z (4M, N): the pre-activations of i, f, o (halved) and the candidate g, in
    that order, overwritten with the gates; c (M, N) the cell state; c_out, h_out
    (M, N) get c_t = f * c + i * g and h_t = o * tanh(c_t). ``inplace``: c_out is c
    (an unmasked step), passed as one array: LLVM then sees one pointer, where two
    that may overlap make it give up vectorising the loop (measured 10x slower)."""
    M = c.shape[0]
    for m in range(M):
        zi, zf, zo, zg = z[m], z[M + m], z[2 * M + m], z[3 * M + m]
        if inplace:
            _lstm_row(zi, zf, zo, zg, c[m], c[m], h_out[m])
        else:
            _lstm_row(zi, zf, zo, zg, c[m], c_out[m], h_out[m])


@_jit
def _gru_row(uz: Any, ur: Any, uh: Any, cand: Any, h: Any, h_out: Any) -> None:
    for n in range(h.shape[0]):
        z = _HALF * tanh(uz[n]) + _HALF
        r = _HALF * tanh(ur[n]) + _HALF
        a = tanh(cand[n] + r * uh[n])  # the candidate
        h_out[n] = a + z * (h[n] - a)  # h_t = z * h + (1 - z) * hh
        uz[n], ur[n], cand[n] = z, r, a


@_kernel
def gru_gates(u: Any, hh: Any, h: Any, h_out: Any, inplace: bool) -> None:
    """(reset_after) u (3M, N): the pre-activations of z and r (halved), then
    h Rh + b_rec_h; z and r are overwritten with the gates. hh (M, N): x Kh + b_in_h,
    overwritten with the candidate tanh(hh + r * (h Rh + b_rec_h)); h_out (M, N)
    gets h_t = hh + z * (h - hh). ``inplace``: h_out is h (see lstm_gates)."""
    M = h.shape[0]
    for m in range(M):
        if inplace:
            _gru_row(u[m], u[M + m], u[2 * M + m], hh[m], h[m], h[m])
        else:
            _gru_row(u[m], u[M + m], u[2 * M + m], hh[m], h[m], h_out[m])
