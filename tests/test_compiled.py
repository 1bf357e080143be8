"""The optional compiled engine (``rnninspect.ops.compiled``, numba kernels) against
the NumPy engine, the reference: every cell type and option, the sample models
against Keras's own outputs, and when the engine is (and is not) chosen. Skipped
where numba is not installed (``pip install -e '.[fast]'``)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from conftest import MODELS, ROOT, assert_close, check_sample

from rnninspect.errors import UsageError
from rnninspect.model import GRU, LSTM, Recurrent, SimpleRNN
from rnninspect.ops import compiled
from rnninspect.ops.recurrent import scan

numba = pytest.importorskip("numba")

RTOL, ATOL = 1e-4, 1e-5  # as the suite holds the NumPy engine to Keras


def _layer(kind: str, D: int, M: int, seed: int, **options: Any) -> Recurrent:
    rng = np.random.default_rng(seed)
    g = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
    reset_after = options.pop("reset_after", True)
    bias_shape = (2, g * M) if kind == "GRU" and reset_after else (g * M,)
    w: dict[str, Any] = {
        "name": "rnn",
        "kernel": (rng.standard_normal((D, g * M)) / np.sqrt(D)).astype(np.float32),
        "recurrent_kernel": (rng.standard_normal((M, g * M)) / np.sqrt(M)).astype(np.float32),
        "bias": (rng.standard_normal(bias_shape) * 0.3).astype(np.float32),
    }
    if options.pop("no_bias", False):
        w["bias"] = None
    cls = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}[kind]
    if kind == "GRU":
        options["reset_after"] = reset_after
    return cls(**w, **options)  # type: ignore[abstract]


def _both(layer: Recurrent, x: np.ndarray, mask: np.ndarray | None, **kw: Any) -> tuple[Any, Any]:
    ft = np.dtype("float32")
    major = kw.pop("major", 3)
    with compiled.use("numpy"):
        ref = scan(layer, x, mask, ft, major, **kw)
    with compiled.use("compiled"):
        got = scan(layer, x, mask, ft, major, **kw)
    return ref, got


def _same(ref: Any, got: Any, what: str) -> None:
    assert_close(got.last, ref.last, f"{what}: last", RTOL, ATOL)
    for a, b in zip(got.finals, ref.finals, strict=True):
        assert_close(a, b, f"{what}: final state", RTOL, ATOL)
    assert (got.seq is None) == (ref.seq is None), what
    if ref.seq is not None:
        assert_close(got.seq, ref.seq, f"{what}: sequence", RTOL, ATOL)
    assert sorted(got.extra) == sorted(ref.extra), what
    for k in ref.extra:
        assert_close(got.extra[k], ref.extra[k], f"{what}: {k}", RTOL, ATOL)


CELLS = [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False})]


@pytest.mark.parametrize(("kind", "extra"), CELLS)
@pytest.mark.parametrize(
    ("backwards", "masked", "zero_out", "initial"),
    list(itertools.product([False, True], [False, True], [False, True], [False, True])),
)
def test_kernels_equal_numpy_engine(
    kind: str, extra: dict[str, Any], backwards: bool, masked: bool, zero_out: bool, initial: bool
) -> None:
    N, T, D, M = 5, 13, 6, 7
    layer = _layer(
        kind, D, M, 1, go_backwards=backwards, zero_output_for_mask=zero_out, **dict(extra)
    )
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    mask = rng.random((N, T)) > 0.3 if masked else None
    if mask is not None:
        mask[0] = False  # a sample with no real step
        mask[1, :4] = False  # real steps only later
    init = None
    if initial:
        init = [rng.standard_normal((N, M)).astype(np.float32) for _ in range(layer.STATES)]
    for keep, record, gates in ((False, False, False), (True, False, False), (True, True, True)):
        ref, got = _both(layer, x, mask, keep_seq=keep, record=record, gates=gates, initial=init)
        _same(ref, got, f"{kind} {extra} keep={keep} record={record} gates={gates}")


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize(
    ("act", "ract", "major"),
    [
        ("relu", "hard_sigmoid", 3),
        ("linear", "hard_sigmoid", 2),
        ("sigmoid", "tanh", 3),
        ("relu", "sigmoid", 3),
        ("tanh", "linear", 2),
    ],
)
def test_activations(kind: str, act: str, ract: str, major: int) -> None:
    options: dict[str, Any] = {"activation": act}
    if kind != "SimpleRNN":
        options["recurrent_activation"] = ract
    layer = _layer(kind, 4, 9, 3, **options)
    layer.recurrent_kernel *= 0.3  # unbounded gates (linear, relu) stay finite
    x = np.random.default_rng(4).standard_normal((3, 6, 4)).astype(np.float32)
    ref, got = _both(layer, x, None, keep_seq=True, record=True, gates=True, major=major)
    _same(ref, got, f"{kind} {act}/{ract} (Keras {major})")


def test_no_bias_and_time_major_input() -> None:
    layer = _layer("LSTM", 3, 5, 5, no_bias=True)
    x = np.random.default_rng(6).standard_normal((9, 4, 3)).astype(np.float32)
    ref, got = _both(layer, x.transpose(1, 0, 2).transpose(1, 0, 2)[:, ::-1], None, keep_seq=True)
    _same(ref, got, "LSTM without bias, strided input")


def test_unsupported_runs_on_numpy() -> None:
    """What the kernels do not cover stays on the NumPy engine, even when forced."""
    layer = _layer("SimpleRNN", 3, 4, 7, activation="softmax")
    assert not compiled.supported(layer, np.dtype("float32"), None, 3)
    layer = _layer("LSTM", 3, 4, 7)
    assert not compiled.supported(layer, np.dtype("float64"), None, 3)
    quirk = _layer("GRU", 3, 4, 7, unroll=True, go_backwards=True, zero_output_for_mask=True)
    assert not compiled.supported(quirk, np.dtype("float32"), np.ones((2, 3), bool), 3)
    assert compiled.supported(quirk, np.dtype("float32"), None, 3)
    with compiled.use("compiled"):
        assert compiled.choose(layer, 2, 3, 3, np.dtype("float64"), None, 3) is None


def test_tanh_approximation_within_float32_rounding() -> None:
    kernels = compiled.load()

    @numba.njit  # type: ignore[misc]
    def run(a: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = kernels.tanh(a[i])
        return out

    x = np.concatenate(
        [np.linspace(-12, 12, 400_001), [0.0, -0.0, 3e-4, 5e-4, 1e-30, np.inf, -np.inf]]
    ).astype(np.float32)
    want = np.tanh(x.astype(np.float64))
    got = run(x)
    assert np.max(np.abs(got - want)) < 5e-7  # about 4 float32 ulps of 1
    assert np.isnan(run(np.array([np.nan], np.float32)))[0]


@pytest.mark.parametrize("name", MODELS)
def test_sample_models_on_kernels_against_keras(name: str) -> None:
    """Every sample model on the compiled engine, held to Keras's own outputs as the
    NumPy engine is (forward, trace keys and sequences, final states)."""
    with compiled.use("compiled"):
        check_sample(name, f"{name} on the kernels")


def test_engine_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNINSPECT_ENGINE", "fast")
    with pytest.raises(UsageError, match="RNNINSPECT_ENGINE"):
        compiled.engine()
    monkeypatch.setenv("RNNINSPECT_ENGINE", "compiled")
    assert compiled.engine() == "compiled"
    with compiled.use("numpy"):
        assert compiled.engine() == "numpy"
    with pytest.raises(UsageError, match="engine"), compiled.use("quick"):
        pass


def test_compiled_without_numba_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "_loaded", [])
    monkeypatch.setattr(compiled, "available", lambda: False)
    with pytest.raises(UsageError, match=r"rnninspect\[fast\]"):
        compiled.load()


def test_auto_switches_once_it_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Default engine: NumPy until the modelled NumPy time on paying steps reaches
    WARM_SECONDS, the kernels from then on; big steps stay on NumPy."""
    monkeypatch.setenv("RNNINSPECT_ENGINE", "auto")
    kernels = compiled.load()
    monkeypatch.setattr(compiled, "_loaded", [])
    monkeypatch.setattr(compiled, "_spent", [0.0])
    layer = _layer("LSTM", 8, 16, 8)
    ft = np.dtype("float32")
    per_call = 100 * compiled.STEP_CALLS[4] * compiled.DISPATCH_S
    calls = int(np.ceil(compiled.WARM_SECONDS / per_call))
    for _ in range(calls - 1):
        assert compiled.choose(layer, 4, 100, 8, ft, None, 3) is None
    assert compiled.choose(layer, 4, 100, 8, ft, None, 3) is kernels
    assert compiled.choose(layer, 4, 1, 8, ft, None, 3) is kernels  # loaded: any length
    big = _layer("LSTM", 64, 256, 8)
    assert compiled.choose(big, 512, 100, 64, ft, None, 3) is None  # BLAS's size


def test_short_cli_run_never_imports_numba(tmp_path: Any) -> None:
    code = (
        "import sys, numpy as np, rnninspect;"
        f"m = rnninspect.load_model({str(ROOT / 'sample_models/seed/model.keras')!r});"
        "m.forward(np.zeros((2, 5, m.input_shape[-1]), np.float32));"
        "print('numba' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "RNNINSPECT_ENGINE"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(("kind", "extra"), CELLS)
@pytest.mark.parametrize(("N", "T"), [(1, 1), (1, 9), (2, 8), (3, 17), (4, 2), (6, 16)])
def test_blocks_and_pairs_equal_numpy_engine(
    kind: str, extra: dict[str, Any], N: int, T: int
) -> None:
    """The kernels run the steps in blocks of ``_kernels.TB`` (input projections two
    steps at a time) and the recurrent products two samples at a time: every split
    of N and T (odd counts, a last partial block, one step) against the NumPy engine,
    both directions, masked."""
    kernels = compiled.load()
    assert kernels.TB == 8  # the (N, T) cases above straddle it
    rng = np.random.default_rng(N * 100 + T)
    x = rng.standard_normal((N, T, 5)).astype(np.float32)
    mask = rng.random((N, T)) > 0.25
    for backwards in (False, True):
        layer = _layer(kind, 5, 6, 9, go_backwards=backwards, **dict(extra))
        for m in (None, mask):
            ref, got = _both(layer, x, m, keep_seq=True, record=True, gates=True)
            _same(ref, got, f"{kind} {extra} N={N} T={T} backwards={backwards}")


@pytest.mark.parametrize(("kind", "extra"), CELLS)
def test_a_sample_does_not_depend_on_its_batch_or_split(kind: str, extra: dict[str, Any]) -> None:
    """Bit for bit: a batch on the kernels equals each sample run alone (its
    recurrent product shares weight loads with a partner's, not sums), and a
    sequence run in two calls, the second from the first's final states, equals one
    call (the stepper's one-step calls equal ``forward``)."""
    layer = _layer(kind, 7, 9, 11, **dict(extra))
    x = np.random.default_rng(12).standard_normal((5, 21, 7)).astype(np.float32)
    ft = np.dtype("float32")
    with compiled.use("compiled"):
        whole = scan(layer, x, None, ft, 3, keep_seq=True)
        for n in range(5):
            alone = scan(layer, x[n : n + 1], None, ft, 3, keep_seq=True)
            assert whole.seq is not None and alone.seq is not None
            np.testing.assert_array_equal(alone.seq[0], whole.seq[n])
        first = scan(layer, x[:, :13], None, ft, 3, keep_seq=True)
        rest = scan(layer, x[:, 13:], None, ft, 3, keep_seq=True, initial=first.finals)
        np.testing.assert_array_equal(rest.last, whole.last)
        for a, b in zip(rest.finals, whole.finals, strict=True):
            np.testing.assert_array_equal(a, b)
        assert first.seq is not None and rest.seq is not None and whole.seq is not None
        np.testing.assert_array_equal(np.concatenate([first.seq, rest.seq], axis=1), whole.seq)


@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("N", [1, 2, 5])
def test_lstm_in_place_gates_equal_the_general_path(backwards: bool, N: int) -> None:
    """Bit for bit: an unmasked LSTM run with nothing recorded (its gates update h
    and c in place, ``_kernels.lstm``'s ``direct`` path) equals the same run keeping
    its cell states and gates (the general path), so ``forward`` and ``trace`` agree
    on the kernels exactly."""
    layer = _layer("LSTM", 6, 10, 21, go_backwards=backwards)
    x = np.random.default_rng(22).standard_normal((N, 19, 6)).astype(np.float32)
    h0 = np.random.default_rng(23).standard_normal((N, 10)).astype(np.float32)
    c0 = np.random.default_rng(24).standard_normal((N, 10)).astype(np.float32)
    ft = np.dtype("float32")
    with compiled.use("compiled"):
        plain = scan(layer, x, None, ft, 3, keep_seq=True, initial=[h0, c0])
        traced = scan(
            layer, x, None, ft, 3, keep_seq=True, record=True, gates=True, initial=[h0, c0]
        )
    assert plain.seq is not None and traced.seq is not None
    np.testing.assert_array_equal(plain.seq, traced.seq)
    np.testing.assert_array_equal(plain.last, traced.last)
    for a, b in zip(plain.finals, traced.finals, strict=True):
        np.testing.assert_array_equal(a, b)


FUSED = [("LSTM", {}), ("GRU", {})]  # GRU: reset_after (its default here)


@pytest.mark.parametrize(("kind", "extra"), FUSED)
@pytest.mark.parametrize(
    ("backwards", "masked", "initial"), list(itertools.product([False, True], repeat=3))
)
def test_fused_gates_equal_numpy_engine(
    kind: str,
    extra: dict[str, Any],
    backwards: bool,
    masked: bool,
    initial: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch too large for the whole loops (``pays`` says no) runs on the NumPy
    engine; with the kernels loaded its gates are one compiled pass a step
    (``_kernels.lstm_gates``/``gru_gates``), equal to the NumPy passes to float32
    rounding: outputs, states, cell states and every gate. Also through the input
    projected apart (D large)."""
    monkeypatch.setenv("RNNINSPECT_ENGINE", "auto")
    kernels = compiled.load()
    calls = {"n": 0}
    name = "lstm_gates" if kind == "LSTM" else "gru_gates"
    real = getattr(kernels, name)

    def counted(*args: Any) -> None:
        calls["n"] += 1
        real(*args)

    monkeypatch.setattr(kernels, name, counted)
    rng = np.random.default_rng(3)
    ft = np.dtype("float32")
    for D, M in ((6, 24), (200, 8)):  # the second projects x apart (g*M < 2*D)
        N, T = compiled.PAYS_MAX_N + 9, 7
        layer = _layer(kind, D, M, 4, go_backwards=backwards, **dict(extra))
        x = rng.standard_normal((N, T, D)).astype(np.float32)
        mask = rng.random((N, T)) > 0.3 if masked else None
        init = None
        if initial:
            init = [rng.standard_normal((N, M)).astype(np.float32) for _ in range(layer.STATES)]
        assert compiled.choose(layer, N, T, D, ft, mask, 3) is None  # not the whole loops
        before = calls["n"]
        with compiled.use("numpy"):
            ref = scan(layer, x, mask, ft, 3, True, True, True, init)
        assert calls["n"] == before  # the NumPy engine's own passes
        got = scan(layer, x, mask, ft, 3, True, True, True, init)
        assert calls["n"] == before + T  # one fused pass a step
        _same(ref, got, f"{kind} D={D} backwards={backwards} masked={masked}")


def test_fused_gates_only_where_they_compute_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused pass knows the default activations in float32 only; under ``auto``
    it is used once the kernels are loaded (never importing numba itself)."""
    kernels = compiled.load()
    f32, f64 = np.dtype("float32"), np.dtype("float64")
    monkeypatch.setenv("RNNINSPECT_ENGINE", "auto")
    assert compiled.gate_kernels(_layer("LSTM", 3, 4, 1), f32) is kernels
    assert compiled.gate_kernels(_layer("GRU", 3, 4, 1), f32) is kernels
    assert compiled.gate_kernels(_layer("LSTM", 3, 4, 1), f64) is None
    assert compiled.gate_kernels(_layer("GRU", 3, 4, 1, reset_after=False), f32) is None
    assert compiled.gate_kernels(_layer("SimpleRNN", 3, 4, 1), f32) is None
    hard = _layer("LSTM", 3, 4, 1, recurrent_activation="hard_sigmoid")
    assert compiled.gate_kernels(hard, f32) is None
    relu = _layer("GRU", 3, 4, 1, activation="relu")
    assert compiled.gate_kernels(relu, f32) is None
    with compiled.use("numpy"):
        assert compiled.gate_kernels(_layer("LSTM", 3, 4, 1), f32) is None
    monkeypatch.setattr(compiled, "_loaded", [])
    assert compiled.gate_kernels(_layer("LSTM", 3, 4, 1), f32) is None  # auto: not loaded
