"""The layer functions of ``rnninspect.ops`` (attention, norm, activation_layers, merge,
sequence, masks) against Keras.

References, never our own output:

* ``tests/data/ops_layers.npz``, written by ``scripts/make_op_goldens_layers.py``: Keras
  3.15 and tf_keras 2.21 ``model.predict`` outputs for small cases, the output masks of
  merge layers, and the per-layer mask evidence behind ``masks.MASK_RULE``;
* for each function, a small check written here as explicit loops over Python floats.
"""

from __future__ import annotations

import importlib
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnninspect.ops import activation_layers as act
from rnninspect.ops import attention, merge, norm, sequence
from rnninspect.ops.masks import MASK_RULE

DATA = Path(__file__).resolve().parent / "data" / "ops_layers.npz"
RTOL, ATOL = 1e-5, 1e-6


@cache
def _npz() -> Any:
    return np.load(DATA)


def _json(key: str) -> Any:
    return json.loads(str(_npz()[key]))


def _cases() -> list[tuple[str, str]]:
    cases = _json("__cases__")
    return [(c, g) for c in sorted(cases) for g in ("k3", "tk") if g in cases[c]]


def _arr(case: str, ref: str | None) -> Any:
    return None if ref is None else _npz()[f"{case}/in/{ref}"]


def _call(case: str, gen: str) -> tuple[Any, ...]:
    spec = _json("__cases__")[case]
    module_name, fn_name = spec["fn"].split(".")
    fn = getattr(importlib.import_module(f"rnninspect.ops.{module_name}"), fn_name)
    args = [
        [_arr(case, r) for r in a] if isinstance(a, list) else _arr(case, a) for a in spec["args"]
    ]
    kwargs = dict(spec["kwargs"])
    for name, ref in spec["kw_arrays"].items():
        kwargs[name] = [_arr(case, r) for r in ref] if isinstance(ref, list) else _arr(case, ref)
    if spec["weights"] is not None:
        kwargs["weights"] = {k: _arr(case, r) for k, r in spec["weights"].items()}
    kwargs.update(spec[gen]["kwargs"])
    out = fn(*args, **kwargs)
    return tuple(out) if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize(("case", "gen"), _cases())
def test_against_keras(case: str, gen: str) -> None:
    spec = _json("__cases__")[case]
    got = _call(case, gen)
    assert len(got) == spec[gen]["n_out"]
    for i, g in enumerate(got):
        want = _npz()[f"{case}/{gen}/{i}"]
        assert g.shape == want.shape, (case, gen, i)
        assert g.dtype == want.dtype, (case, gen, i)
        np.testing.assert_allclose(g, want, rtol=RTOL, atol=ATOL, err_msg=f"{case} {gen} {i}")


def test_golden_file_covers_every_function() -> None:
    fns = {spec["fn"] for spec in _json("__cases__").values()}
    assert fns >= {
        "attention.dot_attention",
        "attention.additive_attention",
        "attention.multi_head_attention",
        "norm.batch_norm",
        "norm.layer_norm",
        "activation_layers.relu",
        "activation_layers.leaky_relu",
        "activation_layers.prelu",
        "activation_layers.elu",
        "activation_layers.softmax",
        "merge.add",
        "merge.subtract",
        "merge.multiply",
        "merge.average",
        "merge.maximum",
        "merge.minimum",
        "merge.concatenate",
        "merge.dot",
        "sequence.repeat_vector",
        "sequence.flatten",
        "sequence.reshape",
        "sequence.permute",
        "sequence.cropping1d",
        "sequence.zero_padding1d",
        "sequence.upsampling1d",
    }


# ----------------------------------------------------------------------------- masks


def _merge_mask_cases() -> list[tuple[str, str]]:
    mm = _json("__merge_masks__")
    return [(c, g) for c in sorted(mm) for g in ("k3", "tk")]


@pytest.mark.parametrize(("case", "gen"), _merge_mask_cases())
def test_merge_masks_against_keras(case: str, gen: str) -> None:
    entry = _json("__merge_masks__")[case]
    arrays = [_npz()[k] for k in entry["arrays"]]
    masks = [None if k is None else _npz()[k] for k in entry["masks"]]
    kw: dict[str, Any] = {"keras_major": 3 if gen == "k3" else 2}
    if entry["axis"] is not None:
        kw["axis"] = entry["axis"]
    want = entry[gen]
    if isinstance(want, str) and want.startswith("error"):
        with pytest.raises(ValueError):
            merge.merge_masks(entry["kind"], masks, arrays, **kw)
        return
    got = merge.merge_masks(entry["kind"], masks, arrays, **kw)
    if want is None:
        assert got is None
    else:
        assert got is not None
        np.testing.assert_array_equal(got, _npz()[want])


def test_mask_rule_matches_keras_evidence() -> None:
    evidence = _json("__mask_evidence__")
    assert set(evidence) <= set(MASK_RULE)
    for cls, found in evidence.items():
        for gen in ("k3", "tk"):
            rule = found[gen]
            if cls == "Softmax":  # the (N, T) mask fails to broadcast; a full one passes
                assert rule.startswith("error"), rule
                rule = found[f"{gen}_full_mask"]
            assert MASK_RULE[cls] == rule, (cls, gen, found)
    assert evidence["GlobalAveragePooling1D"]["k3_masked_mean"]
    assert evidence["GlobalAveragePooling1D"]["tk_masked_mean"]
    assert evidence["Masking"]["k3_is_own"] and evidence["Masking"]["tk_is_own"]
    assert evidence["Embedding"]["k3_mask_zero_True"] and evidence["Embedding"]["tk_mask_zero_True"]
    assert evidence["Embedding"]["k3_mask_zero_False"] is None
    for cls in ("Attention", "AdditiveAttention", "MultiHeadAttention"):
        assert not evidence[cls]["k3_value_only"] and not evidence[cls]["tk_value_only"]


def test_mask_rule_values() -> None:
    assert set(MASK_RULE.values()) <= {"pass", "drop", "consume", "transform", "merge", "query"}


# ----------------------------------------------------------------------------- loops

rng = np.random.default_rng(7)


def _f32(*shape: int) -> Any:
    return rng.standard_normal(shape).astype(np.float32)


def _softmax_list(scores: list[float]) -> list[float]:
    m = max(scores)
    e = [math.exp(s - m) for s in scores]
    return [v / sum(e) for v in e]


def test_dot_attention_one_query_step_by_hand() -> None:
    q, v, k = _f32(2, 3, 4), _f32(2, 5, 4), _f32(2, 5, 4)
    vm = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    qm = np.array([[1, 0, 1], [1, 1, 1]], dtype=bool)
    out, w = attention.dot_attention(
        q, v, k, query_mask=qm, value_mask=vm, use_scale=True, scale=0.5, return_scores=True
    )
    n, i = 0, 2
    scores = [0.5 * sum(float(q[n, i, d]) * float(k[n, j, d]) for d in range(4)) for j in range(5)]
    allowed = [j for j in range(5) if vm[n, j]]
    p = _softmax_list([scores[j] for j in allowed])
    for jj, j in enumerate(allowed):
        assert w[n, i, j] == pytest.approx(p[jj], rel=1e-5)
    for j in range(5):
        if not vm[n, j]:
            assert w[n, i, j] == 0.0
    for c in range(4):
        want = sum(p[jj] * float(v[n, j, c]) for jj, j in enumerate(allowed))
        assert out[n, i, c] == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert np.all(out[0, 1] == 0)  # padded query step
    # causal: step 1 sees only keys 0 and 1
    outc, wc = attention.dot_attention(q, v[:, :3], k[:, :3], causal=True, return_scores=True)
    assert wc[1, 0, 1] == 0 and wc[1, 0, 2] == 0 and wc[1, 1, 2] == 0
    assert wc[1, 1, 0] + wc[1, 1, 1] == pytest.approx(1.0)
    assert outc.shape == (2, 3, 4)


def test_concat_attention_by_hand() -> None:
    q, v = _f32(1, 2, 3), _f32(1, 4, 3)
    out, w = attention.dot_attention(
        q,
        v,
        use_scale=True,
        scale=0.8,
        score_mode="concat",
        concat_score_weight=1.5,
        return_scores=True,
    )
    i = 1
    scores = [
        1.5 * sum(math.tanh(0.8 * (float(q[0, i, d]) + float(v[0, j, d]))) for d in range(3))
        for j in range(4)
    ]
    p = _softmax_list(scores)
    for j in range(4):
        assert w[0, i, j] == pytest.approx(p[j], rel=1e-5)
    assert out[0, i, 0] == pytest.approx(sum(p[j] * float(v[0, j, 0]) for j in range(4)), rel=1e-5)


def test_additive_attention_by_hand() -> None:
    q, v, k = _f32(1, 2, 3), _f32(1, 4, 2), _f32(1, 4, 3)
    scale = _f32(3)
    vm = np.array([[1, 0, 1, 1]], dtype=bool)
    out, w = attention.additive_attention(q, v, k, value_mask=vm, scale=scale, return_scores=True)
    i = 0
    scores = [
        sum(float(scale[d]) * math.tanh(float(q[0, i, d]) + float(k[0, j, d])) for d in range(3))
        for j in range(4)
    ]
    allowed = [0, 2, 3]
    p = _softmax_list([scores[j] for j in allowed])
    assert w[0, i, 1] == 0.0
    for jj, j in enumerate(allowed):
        assert w[0, i, j] == pytest.approx(p[jj], rel=1e-5)
    want = sum(p[jj] * float(v[0, j, 1]) for jj, j in enumerate(allowed))
    assert out[0, i, 1] == pytest.approx(want, rel=1e-5)


def _mha_weights(d: int, h: int, kd: int, vd: int, dout: int) -> dict[str, Any]:
    return {
        "query_kernel": _f32(d, h, kd),
        "query_bias": _f32(h, kd),
        "key_kernel": _f32(d, h, kd),
        "key_bias": _f32(h, kd),
        "value_kernel": _f32(d, h, vd),
        "value_bias": _f32(h, vd),
        "output_kernel": _f32(h, vd, dout),
        "output_bias": _f32(dout),
    }


def _mha_row_by_hand(
    q: Any,
    v: Any,
    w: dict[str, Any],
    n: int,
    t: int,
    allowed: list[int],
    h: int,
    kd: int,
    vd: int,
    uniform: bool = False,
) -> list[float]:
    d, dout = q.shape[-1], w["output_bias"].shape[0]

    def proj(x: Any, pos: int, name: str, head: int, c: int) -> float:
        return float(w[f"{name}_bias"][head, c]) + sum(
            float(x[n, pos, i]) * float(w[f"{name}_kernel"][i, head, c]) for i in range(d)
        )

    y = [float(w["output_bias"][o]) for o in range(dout)]
    for head in range(h):
        qv = [proj(q, t, "query", head, c) / math.sqrt(kd) for c in range(kd)]
        scores = [sum(qv[c] * proj(v, s, "key", head, c) for c in range(kd)) for s in allowed]
        p = [1 / len(allowed)] * len(allowed) if uniform else _softmax_list(scores)
        for c in range(vd):
            o_c = sum(p[ss] * proj(v, s, "value", head, c) for ss, s in enumerate(allowed))
            for o in range(dout):
                y[o] += o_c * float(w["output_kernel"][head, c, o])
    return y


def test_multi_head_attention_by_hand() -> None:
    h, kd, vd, d = 2, 3, 2, 4
    q, v = _f32(2, 3, d), _f32(2, 5, d)
    w = _mha_weights(d, h, kd, vd, 3)
    qm = np.array([[1, 1, 0], [1, 1, 1]], dtype=bool)
    vm = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    want = _mha_row_by_hand(q, v, w, 0, 1, [0, 1, 2], h, kd, vd)
    for kw in ({}, {"keras_major": 2}, {"dropout": 0.1}):
        y = attention.multi_head_attention(
            q, v, weights=w, num_heads=h, key_dim=kd, query_mask=qm, value_mask=vm, **kw
        )
        assert y.shape == (2, 3, 3)
        assert list(y[0, 1]) == pytest.approx(want, rel=1e-4, abs=1e-5)
    # the padded query step (0, 2): every key masked
    fused = attention.multi_head_attention(
        q, v, weights=w, num_heads=h, key_dim=kd, query_mask=qm, value_mask=vm
    )
    mean_row = _mha_row_by_hand(q, v, w, 0, 2, [0, 1, 2, 3, 4], h, kd, vd, uniform=True)
    assert list(fused[0, 2]) == pytest.approx(mean_row, rel=1e-4, abs=1e-5)  # uniform
    y_slow, scores = attention.multi_head_attention(
        q, v, weights=w, num_heads=h, key_dim=kd, query_mask=qm, value_mask=vm, return_scores=True
    )
    assert scores.shape == (2, h, 3, 5)
    assert np.all(scores[0, :, 2] == 0)
    np.testing.assert_allclose(y_slow[0, 2], w["output_bias"], rtol=1e-6)  # zero weights
    assert scores[0, 1, 1, 3] == 0 and scores[0, 1, 1, :3].sum() == pytest.approx(1.0)


def test_mha_attention_mask_by_hand() -> None:
    q, v = np.zeros((1, 3, 2)), np.zeros((1, 4, 2))
    qm = np.array([[1, 1, 0]], dtype=bool)
    vm = np.array([[1, 0, 1, 1]], dtype=bool)
    m = attention.mha_attention_mask(q, v, query_mask=qm, value_mask=vm, causal=True)
    assert m is not None
    for t in range(3):
        for s in range(4):
            assert m[0, t, s] == (bool(qm[0, t]) and bool(vm[0, s]) and s <= t)
    assert attention.mha_attention_mask(q, v) is None


def test_batch_norm_by_hand() -> None:
    x = _f32(2, 3, 4)
    g, b, mu, var = _f32(4), _f32(4), _f32(4), np.abs(_f32(4)) + 0.1
    y = norm.batch_norm(
        x, axis=-1, gamma=g, beta=b, moving_mean=mu, moving_variance=var, epsilon=1e-3
    )
    y0 = norm.batch_norm(
        x, axis=-1, gamma=None, beta=None, moving_mean=mu, moving_variance=var, epsilon=1e-3
    )
    for idx in np.ndindex(x.shape):
        c = idx[-1]
        z = (float(x[idx]) - float(mu[c])) / math.sqrt(float(var[c]) + 1e-3)
        assert y[idx] == pytest.approx(float(g[c]) * z + float(b[c]), rel=1e-5, abs=1e-6)
        assert y0[idx] == pytest.approx(z, rel=1e-5, abs=1e-6)
    assert y.dtype == np.float32


def test_layer_norm_by_hand() -> None:
    x = _f32(2, 3, 4)
    g, b = _f32(4), _f32(4)
    y = norm.layer_norm(x, axes=-1, gamma=g, beta=b, epsilon=1e-3)
    yr = norm.layer_norm(x, axes=-1, gamma=g, beta=None, epsilon=1e-3, rms_scaling=True)
    gg = _f32(3, 4)
    y12 = norm.layer_norm(x, axes=[1, 2], gamma=gg, beta=None, epsilon=1e-3)
    for n in range(2):
        for t in range(3):
            row = [float(x[n, t, c]) for c in range(4)]
            mean = sum(row) / 4
            var = sum((r - mean) ** 2 for r in row) / 4
            for c in range(4):
                z = (row[c] - mean) / math.sqrt(var + 1e-3)
                assert y[n, t, c] == pytest.approx(g[c] * z + b[c], rel=1e-5, abs=1e-6)
                rms = row[c] / math.sqrt(var + 1e-3) * float(g[c])
                assert yr[n, t, c] == pytest.approx(rms, rel=1e-5, abs=1e-6)
        vals = [float(x[n, t, c]) for t in range(3) for c in range(4)]
        mean = sum(vals) / 12
        var = sum((r - mean) ** 2 for r in vals) / 12
        for t in range(3):
            for c in range(4):
                z = (float(x[n, t, c]) - mean) / math.sqrt(var + 1e-3)
                assert y12[n, t, c] == pytest.approx(float(gg[t, c]) * z, rel=1e-5, abs=1e-6)


def _relu_scalar(x: float, max_value: float | None, slope: float, threshold: float) -> float:
    if x > threshold:
        return x if max_value is None else min(max(x, 0.0), max_value)
    return slope * (x - threshold)


def test_activation_layers_by_hand() -> None:
    x = np.array([[-2.0, -0.5, 0.0, 0.3, 0.5, 0.7, 1.5, 3.0, 7.0]], dtype=np.float32)
    for max_value, slope, threshold in [
        (None, 0.0, 0.0),
        (6.0, 0.0, 0.0),
        (1.0, 0.0, 0.5),
        (None, 0.2, 0.5),
        (2.0, 0.1, 0.0),
        (2.0, 0.3, 0.5),
    ]:
        y = act.relu(x, max_value=max_value, negative_slope=slope, threshold=threshold)
        for j in range(x.shape[1]):
            want = _relu_scalar(float(x[0, j]), max_value, slope, threshold)
            assert y[0, j] == pytest.approx(want, abs=1e-7), (max_value, slope, threshold, j)
    lk = act.leaky_relu(x, 0.1)
    el = act.elu(x, 0.5)
    for j in range(x.shape[1]):
        v = float(x[0, j])
        assert lk[0, j] == pytest.approx(v if v > 0 else 0.1 * v, abs=1e-7)
        assert el[0, j] == pytest.approx(v if v > 0 else 0.5 * (math.exp(v) - 1), abs=1e-7)
    x3 = _f32(2, 3, 4)
    alpha = _f32(1, 4)
    p = act.prelu(x3, alpha, shared_axes=[1])
    for n, t, c in np.ndindex(x3.shape):
        v = float(x3[n, t, c])
        assert p[n, t, c] == pytest.approx(v if v > 0 else float(alpha[0, c]) * v, abs=1e-7)
    with pytest.raises(ValueError):
        act.prelu(x3, _f32(3, 4), shared_axes=[1])


def test_softmax_layer_by_hand() -> None:
    x = _f32(2, 3)
    m = np.array([[True, False, True], [False, False, False]])
    y3 = act.softmax(x, -1, m)
    y2 = act.softmax(x, -1, m, keras_major=2)
    p = _softmax_list([float(x[0, 0]), float(x[0, 2])])
    for y in (y3, y2):
        assert y[0, 0] == pytest.approx(p[0], rel=1e-6) and y[0, 2] == pytest.approx(p[1], rel=1e-6)
        assert y[0, 1] == 0.0
    assert list(y3[1]) == [0.0, 0.0, 0.0]  # Keras 3 zeroes an all-masked row
    assert list(y2[1]) == pytest.approx([1 / 3] * 3, rel=1e-6)  # tf_keras: uniform
    yy = act.softmax(x, [0, 1])
    e = [math.exp(float(v)) for v in x.ravel()]
    assert list(yy.ravel()) == pytest.approx([v / sum(e) for v in e], rel=1e-5)


def test_merges_by_hand() -> None:
    a, b, c = _f32(2, 3, 2), _f32(2, 3, 2), _f32(2, 3, 2)
    vec = _f32(2, 2)
    ma = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    mb = np.array([[1, 0, 1], [0, 0, 1]], dtype=bool)
    s = merge.add([a, b, c])
    r = merge.add([a, vec])
    avg = merge.average([a, b])
    sub = merge.subtract([a, b])
    mul3 = merge.multiply([a, b], [ma, mb])
    mul2 = merge.multiply([a, b], [ma, mb], keras_major=2)
    mul1 = merge.multiply([a, b], [ma, None])
    mx = merge.maximum([a, b], [ma, mb])
    mn = merge.minimum([a, b], [None, mb])
    for n, t, k in np.ndindex(a.shape):
        x, y, z = float(a[n, t, k]), float(b[n, t, k]), float(c[n, t, k])
        assert s[n, t, k] == pytest.approx(x + y + z, abs=1e-6)
        assert r[n, t, k] == pytest.approx(x + float(vec[n, k]), abs=1e-6)
        assert avg[n, t, k] == pytest.approx((x + y) / 2, abs=1e-6)
        assert sub[n, t, k] == pytest.approx(x - y, abs=1e-6)
        assert mul2[n, t, k] == pytest.approx(x * y, abs=1e-6)
        fa, fb = bool(ma[n, t]), bool(mb[n, t])
        want = (x if fa else 1.0) * (y if fb else 1.0) if (fa or fb) else 0.0
        assert mul3[n, t, k] == pytest.approx(want, abs=1e-6)
        assert mul1[n, t, k] == pytest.approx((x if fa else 1.0) * y, abs=1e-6)
        if fa and fb:
            want_mx = max(x, y)
        elif fa or fb:
            want_mx = x if fa else y
        else:
            want_mx = x
        assert mx[n, t, k] == pytest.approx(want_mx, abs=1e-7)
        assert mn[n, t, k] == pytest.approx(min(x, y) if mb[n, t] else x, abs=1e-7)
    cat = merge.concatenate([a, vec[:, None, :]], axis=1)
    assert cat.shape == (2, 4, 2) and np.array_equal(cat[:, 3], vec)


def test_dot_by_hand() -> None:
    x, y = _f32(2, 3, 4), _f32(2, 5, 4)
    out = merge.dot(x, y, 2)
    cos = merge.dot(x, y, -1, normalize=True)
    for n in range(2):
        for i in range(3):
            for j in range(5):
                d = sum(float(x[n, i, k]) * float(y[n, j, k]) for k in range(4))
                assert out[n, i, j] == pytest.approx(d, rel=1e-5, abs=1e-6)
                nx = math.sqrt(sum(float(x[n, i, k]) ** 2 for k in range(4)))
                ny = math.sqrt(sum(float(y[n, j, k]) ** 2 for k in range(4)))
                assert cos[n, i, j] == pytest.approx(d / (nx * ny), rel=1e-5, abs=1e-6)
    v, w = _f32(2, 4), _f32(2, 4)
    vw = merge.dot(v, w, 1)
    assert vw.shape == (2, 1)
    assert vw[1, 0] == pytest.approx(sum(float(v[1, k]) * float(w[1, k]) for k in range(4)))
    z = _f32(2, 3, 6)
    p = merge.dot(x, z, (1, 1))  # (2, 4, 6)
    assert p.shape == (2, 4, 6)
    assert p[1, 2, 5] == pytest.approx(
        sum(float(x[1, t, 2]) * float(z[1, t, 5]) for t in range(3)), rel=1e-5
    )


def test_merge_masks_by_hand() -> None:
    ma = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    mb = np.array([[1, 0, 1], [0, 0, 1]], dtype=bool)
    a, b = _f32(2, 3, 2), _f32(2, 3, 5)
    or_ = merge.merge_masks("Add", [ma, mb])
    and_ = merge.merge_masks("Add", [ma, mb], keras_major=2)
    assert or_ is not None and and_ is not None
    for n, t in np.ndindex(ma.shape):
        assert or_[n, t] == (ma[n, t] or mb[n, t])
        assert and_[n, t] == (ma[n, t] and mb[n, t])
    assert merge.merge_masks("Add", [ma, None]) is None
    only = merge.merge_masks("Multiply", [ma, None], keras_major=2)
    assert only is not None and np.array_equal(only, ma)
    assert merge.merge_masks("Dot", [ma, mb]) is None
    c3 = merge.merge_masks("Concatenate", [ma, None], [a, b], axis=-1)
    c2 = merge.merge_masks("Concatenate", [ma, None], [a, b], axis=-1, keras_major=2)
    assert c3 is not None and c3.all()  # the unmasked input makes every step real
    assert c2 is not None and np.array_equal(c2, ma)
    ct = merge.merge_masks("Concatenate", [ma, mb], [a, a], axis=1)
    assert ct is not None and np.array_equal(ct, np.concatenate([ma, mb], axis=1))


def test_sequence_by_hand() -> None:
    x = _f32(2, 5, 3)
    r = sequence.repeat_vector(x[:, 0], 4)
    u = sequence.upsampling1d(x, 2)
    c = sequence.cropping1d(x, (1, 2))
    z = sequence.zero_padding1d(x, (2, 1))
    p = sequence.permute(x, (2, 1))
    f = sequence.flatten(x)
    rs = sequence.reshape(x, (-1, 5))
    for n, t, k in np.ndindex(x.shape):
        v = x[n, t, k]
        assert u[n, 2 * t, k] == v and u[n, 2 * t + 1, k] == v
        assert z[n, t + 2, k] == v
        assert p[n, k, t] == v
        assert f[n, t * 3 + k] == v
        assert rs[n, (t * 3 + k) // 5, (t * 3 + k) % 5] == v
        if 1 <= t < 3:
            assert c[n, t - 1, k] == v
    for n, i, k in np.ndindex(r.shape):
        assert r[n, i, k] == x[n, 0, k]
    assert c.shape == (2, 2, 3) and z.shape == (2, 8, 3)
    assert np.all(z[:, :2] == 0) and np.all(z[:, 7] == 0)
    with pytest.raises(ValueError):
        sequence.cropping1d(x, (3, 2))
    with pytest.raises(ValueError):
        sequence.permute(x, (0, 1))
