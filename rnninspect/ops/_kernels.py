"""The recurrent cells as numba kernels: the whole loop over T (and over the
samples) in one compiled call, for the small shapes where the NumPy engine spends
most of its time dispatching (see ``compiled``, which imports this module only when
the compiled engine is chosen: importing numba costs about 0.3 s).

Each kernel computes the formulas of ``recurrent`` (its module docstring) for one
sample at a time, a row-vector ``z = b + x_t K + h R`` accumulated over the rows of K
and R (the inner loops run over the contiguous gate columns, which LLVM vectorises),
then the gates elementwise. A loop over N is fine here: there is no dispatch to
amortise, and one sample's weights stay in cache across its steps.

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
def _project(z: Any, b: Any, x: Any, K: Any, h: Any, R: Any) -> None:
    """z = b + x K + h R (row vectors; R may have fewer columns than z: the first)."""
    G = z.shape[0]
    for j in range(G):
        z[j] = b[j]
    _rows(z, x, K, G)
    if R.shape[1]:
        _rows(z, h, R, R.shape[1])


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
    z = np.empty(M, np.float32)
    out = np.empty(M, np.float32)
    for n in range(N):
        h = h0[n]
        _start(out, h, mask.shape[0] > 0)
        for k in range(T):
            t = T - 1 - k if backwards else k
            real = mask[n, t] if mask.shape[0] else True
            _project(z, b, x[n, t], K, h, R)
            if a == 1:  # tanh, the default, written out: the loop vectorises
                for j in range(M):
                    z[j] = tanh(z[j])
            else:
                for j in range(M):
                    z[j] = act(z[j], a)
            if real:
                for j in range(M):
                    h[j] = z[j]
            _emit(n, k, real, zero_out, h, z, out, seq)
        last[n] = out


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
    z = np.empty(4 * M, np.float32)  # Keras's order: i, f, c (the candidate), o
    hn = np.empty(M, np.float32)
    cn = np.empty(M, np.float32)
    out = np.empty(M, np.float32)
    for n in range(N):
        h, c = h0[n], c0[n]
        _start(out, h, mask.shape[0] > 0)
        for k in range(T):
            t = T - 1 - k if backwards else k
            real = mask[n, t] if mask.shape[0] else True
            _project(z, b, x[n, t], K, h, R)
            if a == 1 and ra == 2:  # tanh and sigmoid, the defaults, written out (the
                for j in range(M):  # loop vectorises; through act's branches, 2.5x slower)
                    i = sigmoid(z[j])
                    f = sigmoid(z[M + j])
                    g = tanh(z[2 * M + j])
                    o = sigmoid(z[3 * M + j])
                    cj = f * c[j] + i * g
                    cn[j] = cj
                    hn[j] = o * tanh(cj)
                    z[j], z[M + j], z[2 * M + j], z[3 * M + j] = i, f, g, o
            else:
                for j in range(M):
                    i = act(z[j], ra)
                    f = act(z[M + j], ra)
                    g = act(z[2 * M + j], a)
                    o = act(z[3 * M + j], ra)
                    cj = f * c[j] + i * g  # c_t = f * c + i * g
                    cn[j] = cj
                    hn[j] = o * act(cj, a)  # h_t = o * act(c_t)
                    z[j], z[M + j], z[2 * M + j], z[3 * M + j] = i, f, g, o
            if real:
                for j in range(M):
                    h[j] = hn[j]
                    c[j] = cn[j]
            _emit(n, k, real, zero_out, h, hn, out, seq)
            if cseq.shape[0]:
                for j in range(M):
                    cseq[k, j, n] = c[j]
            if gseq.shape[0]:
                for j in range(4 * M):
                    gseq[k, j, n] = z[j]
        last[n] = out


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
    zx = np.empty(3 * M, np.float32)  # x K + b_in (+ h R for z, r when not reset_after)
    zh = np.empty(3 * M, np.float32)  # h R + b_rec (reset_after)
    rh = np.empty(M, np.float32)
    hh = np.empty(M, np.float32)
    hn = np.empty(M, np.float32)
    out = np.empty(M, np.float32)
    nothing = np.empty((0, 0), np.float32)
    Rzr = R[:, : 2 * M]
    Rh = R[:, 2 * M :]
    for n in range(N):
        h = h0[n]
        _start(out, h, mask.shape[0] > 0)
        for k in range(T):
            t = T - 1 - k if backwards else k
            real = mask[n, t] if mask.shape[0] else True
            if reset_after:
                _project(zx, b_in, x[n, t], K, h, nothing)
                _project(zh, b_rec, h, R, h, nothing)
                if a == 1 and ra == 2:  # the defaults, written out (vectorises)
                    for j in range(M):
                        zg = sigmoid(zx[j] + zh[j])
                        rg = sigmoid(zx[M + j] + zh[M + j])
                        hh[j] = tanh(zx[2 * M + j] + rg * zh[2 * M + j])
                        zx[j], zx[M + j] = zg, rg
                else:
                    for j in range(M):
                        zg = act(zx[j] + zh[j], ra)
                        rg = act(zx[M + j] + zh[M + j], ra)
                        hh[j] = act(zx[2 * M + j] + rg * zh[2 * M + j], a)
                        zx[j], zx[M + j] = zg, rg
            else:
                _project(zx, b_in, x[n, t], K, h, Rzr)
                for j in range(M):
                    zx[j] = act(zx[j], ra)
                    zx[M + j] = act(zx[M + j], ra)
                    rh[j] = zx[M + j] * h[j]  # reset before the product
                for j in range(M):
                    hh[j] = zx[2 * M + j]
                _rows(hh, rh, Rh, M)  # + (r * h) Rh
                for j in range(M):
                    hh[j] = act(hh[j], a)
            for j in range(M):
                zg = zx[j]
                hn[j] = hh[j] + zg * (h[j] - hh[j])  # h_t = z*h + (1-z)*hh
            if real:
                for j in range(M):
                    h[j] = hn[j]
            _emit(n, k, real, zero_out, h, hn, out, seq)
            if gseq.shape[0]:
                for j in range(2 * M):
                    gseq[k, j, n] = zx[j]
                for j in range(M):
                    gseq[k, 2 * M + j, n] = hh[j]
        last[n] = out
