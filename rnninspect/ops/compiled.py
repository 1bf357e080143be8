"""The optional compiled engine: a recurrent layer's whole loop over T as one numba
call (``_kernels``), for the small shapes where the NumPy engine's time goes to
dispatch (one sample, tiny batches: each step's 3-11 NumPy calls cost about 1 us
each, far more than their arithmetic). NumPy stays the default and the reference:
the compiled engine computes the same formulas, equal to float32 rounding
(``tests/test_compiled.py``), and is used only

* when numba is installed (``pip install 'rnninspect[fast]'``);
* for what it supports: SimpleRNN, LSTM, GRU (both reset modes) in float32, the
  activations of ``_kernels.ACT``, masks, go_backwards, initial states, traces with
  cell states and gates; else the NumPy engine runs;
* when a step is small enough that it is faster (``pays``);
* and, by default (``RNNINSPECT_ENGINE=auto``), once it has paid for its start-up:
  importing numba takes about 0.3 s and loading its cached kernels more (compiling
  them the first time on a machine, a few seconds, is cached on disk), so a process
  switches to it only once the NumPy engine has spent ``WARM_SECONDS`` (modelled,
  see ``_numpy_seconds``) on steps it would run faster. One short ``forward`` from
  the command line never imports numba.

``RNNINSPECT_ENGINE=numpy`` never uses it; ``=compiled`` uses it from the first call
wherever it supports the layer (and is an error without numba). ``use(name)`` does
the same for a block of code.

Where the whole loops do not pay, the kernels still serve the NumPy engine once they
are at hand (``gate_kernels``): an LSTM's or GRU's gates of a step become one
compiled pass, the step's products left to BLAS.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import UsageError
from ..model import GRU, LSTM, Array, Recurrent, SimpleRNN

ENGINES = ("auto", "numpy", "compiled")
# When the kernels beat the NumPy engine, measured on 2 cores (SimpleRNN, LSTM, GRU;
# N 1..64, D 8..32, M 16..256, T 100, whole forward calls): the NumPy engine pays a
# fixed dispatch per NumPy call of a step, the kernels a loop over the samples BLAS
# would block better. Up to N = 32 they win while a step's multiply-adds (all
# samples) stay under PAYS_WORK_PER_CALL per NumPy call the step makes (LSTM N=16
# M=64: 1.44x, N=32: 1.02x, N=32 M=32: 1.34x; GRU N=32 M=64: 1.24x; SimpleRNN N=32
# M=64: 0.98x, N=24: 1.12x, N=64 M=32: 0.87x); for one to four samples, where BLAS
# runs matrix-vector products, up to PAYS_WORK_FEW (LSTM N=4 M=256: 2.6x).
PAYS_WORK_PER_CALL = 40_000
PAYS_MAX_N = 32
PAYS_WORK_FEW = 2_000_000
# Modelled NumPy seconds a step, per NumPy call it makes (measured: 0.5-1.2 us).
DISPATCH_S = 0.6e-6
WARM_SECONDS = 1.0  # NumPy time on paying steps after which numba's start-up pays
STEP_CALLS = {1: 4, 4: 11, 3: 12}  # NumPy calls of a step, by gate count

_lock = threading.Lock()
_forced: list[str] = []  # use() blocks, innermost last
_loaded: list[Any] = []  # the _kernels module, once imported
_spent = [0.0]  # modelled NumPy seconds on steps the kernels would run faster


def engine() -> str:
    """The engine setting in force: ``use`` blocks first, then RNNINSPECT_ENGINE."""
    if _forced:
        return _forced[-1]
    name = os.environ.get("RNNINSPECT_ENGINE", "auto").strip().lower() or "auto"
    if name not in ENGINES:
        raise UsageError(f"RNNINSPECT_ENGINE must be one of {', '.join(ENGINES)}, got {name!r}")
    return name


@contextlib.contextmanager
def use(name: str) -> Iterator[None]:
    """Run a block with engine ``name`` (``auto``, ``numpy`` or ``compiled``)."""
    if name not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, got {name!r}")
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()


def forced_numpy() -> contextlib.AbstractContextManager[None]:
    return use("numpy")


def available() -> bool:
    """Is numba installed? (Looked up, not imported.)"""
    return _find("numba")


_found: dict[str, bool] = {}


def _find(module: str) -> bool:
    if module not in _found:
        _found[module] = importlib.util.find_spec(module) is not None
    return _found[module]


def load() -> Any:
    """The kernels module (imports numba; kernels compile on first use, or load
    from numba's on-disk cache)."""
    with _lock:
        if not _loaded:
            if not available():
                raise UsageError(
                    "the compiled engine needs numba: pip install 'rnninspect[fast]' "
                    "(or set RNNINSPECT_ENGINE=numpy)"
                )
            from . import _kernels

            _loaded.append(_kernels)
        return _loaded[0]


def describe() -> str:
    if not available():
        return "not installed (pip install 'rnninspect[fast]')"
    import numba

    return f"numba {numba.__version__}, engine setting {engine()!r}"


# Activation codes the kernels take (``_kernels.act``).
ACT = {"linear": 0, "tanh": 1, "sigmoid": 2, "relu": 3, "hard_sigmoid_k3": 4, "hard_sigmoid_k2": 5}


def _act_code(name: str, major: int) -> int | None:
    if name == "hard_sigmoid":
        name = "hard_sigmoid_k3" if major >= 3 else "hard_sigmoid_k2"
    return ACT.get(name)


def supported(layer: Recurrent, ft: np.dtype[Any], mask: Array | None, major: int) -> bool:
    """Can the kernels run this layer (else the NumPy engine does)?"""
    if ft != np.float32 or type(layer) not in (SimpleRNN, LSTM, GRU):
        return False
    if _act_code(layer.activation, major) is None:
        return False
    ract = getattr(layer, "recurrent_activation", None)
    if ract is not None and _act_code(ract, major) is None:
        return False
    # Keras's unrolled go_backwards quirk (see recurrent.scan): the NumPy engine's.
    return not (
        mask is not None and layer.unroll and layer.go_backwards and layer.zero_output_for_mask
    )


def gate_kernels(layer: Recurrent, ft: np.dtype[Any]) -> Any:
    """The kernels for the NumPy engine's fused gate pass (``_kernels.lstm_gates``,
    ``gru_gates``: a step's gates in one compiled pass, its products left to BLAS),
    or None. For float32 LSTM and GRU (reset_after) layers with the default
    activations, whenever the kernels are at hand: under ``auto`` once this process
    has loaded them (the fused pass was faster at every size measured, but not by enough to
    pay for importing numba on its own), under ``compiled`` always."""
    name = engine()
    if name == "numpy" or ft != np.float32 or not available():
        return None
    defaults = (
        layer.activation == "tanh" and getattr(layer, "recurrent_activation", "") == "sigmoid"
    )
    if not defaults or not (type(layer) is LSTM or (type(layer) is GRU and layer.reset_after)):
        return None
    if name == "compiled":
        return load()
    return _loaded[0] if _loaded else None


def step_work(layer: Recurrent, N: int, D: int) -> int:
    """Multiply-adds of one step over all N samples."""
    return N * layer.GATES * layer.units * (D + layer.units)


def pays(layer: Recurrent, N: int, D: int) -> bool:
    work = step_work(layer, N, D)
    if N <= 4 and work <= PAYS_WORK_FEW:
        return True
    return N <= PAYS_MAX_N and work <= PAYS_WORK_PER_CALL * STEP_CALLS[layer.GATES]


def choose(
    layer: Recurrent, N: int, T: int, D: int, ft: np.dtype[Any], mask: Array | None, major: int
) -> Any:
    """The kernels module to run this layer with, or None for the NumPy engine.
    (Counts the modelled NumPy time of paying steps towards ``WARM_SECONDS``.)"""
    name = engine()
    if name == "numpy" or T < 1 or not supported(layer, ft, mask, major):
        return None
    if name == "compiled":
        return load()
    if not available() or not pays(layer, N, D):
        return None
    if _loaded:
        return _loaded[0]
    with _lock:
        _spent[0] += T * STEP_CALLS[layer.GATES] * DISPATCH_S
        warm = _spent[0] >= WARM_SECONDS
    return load() if warm else None


def _code(name: str, major: int) -> int:
    code = _act_code(name, major)
    assert code is not None  # supported() checked
    return code


def _bias(layer: Recurrent) -> Array:
    """The layer's bias as the kernels take it, float32 and C-contiguous (no copy
    when it is already): (g*M,), or (2, 3M) for a reset_after GRU; zeros if none."""
    if layer.bias is None:
        return np.zeros(layer.GATES * layer.units, np.float32)
    return np.ascontiguousarray(layer.bias, dtype=np.float32)


NONE_MASK = np.zeros((0, 0), dtype=bool)  # the kernels' "no mask"
_NONE_SEQ = np.zeros((0, 0, 0), dtype=np.float32)


def scan(
    kernels: Any,
    layer: Recurrent,
    x: Array,
    mask: Array | None,
    major: int,
    keep_seq: bool,
    record: bool,
    gates: bool,
    initial: list[Array] | None,
) -> tuple[Array, Array | None, list[Array], dict[str, Array]]:
    """``recurrent.scan`` on the kernels: the fields of its ``Scan`` (``last``,
    ``seq``, ``finals``, ``extra``: recurrent.scan makes the Scan, as this module
    cannot import recurrent), its sequences (N, T, M) views of (T, M, N) arrays as
    the NumPy engine's."""
    f32 = np.float32
    N, T, _ = x.shape
    M = layer.units
    g = layer.GATES
    x = np.ascontiguousarray(x, dtype=f32)  # one signature per kernel: C, float32
    K = np.ascontiguousarray(layer.kernel, dtype=f32)  # (D, g*M)
    R = np.ascontiguousarray(layer.recurrent_kernel, dtype=f32)  # (M, g*M)
    m = NONE_MASK if mask is None else np.ascontiguousarray(mask, dtype=bool)
    given = list(initial or [])
    states = [
        np.array(given[k], dtype=f32, order="C") if k < len(given) else np.zeros((N, M), f32)
        for k in range(layer.STATES)
    ]  # (N, M) each, overwritten with the final states
    # Sequences (T, M, N), returned as (N, T, M) views: the NumPy engine's layout.
    seq = np.empty((T, M, N), f32) if keep_seq or record else _NONE_SEQ
    gseq = np.empty((T, g * M, N), f32) if record and gates and g > 1 else _NONE_SEQ
    last = np.empty((N, M), f32)
    a = _code(layer.activation, major)
    zero_out = layer.zero_output_for_mask
    back = layer.go_backwards
    extra: dict[str, Array] = {}
    if isinstance(layer, LSTM):
        b = _bias(layer)
        cseq = np.empty((T, M, N), f32) if record else _NONE_SEQ
        ra = _code(layer.recurrent_activation, major)
        kernels.lstm(
            x, m, K, R, b, states[0], states[1], a, ra, back, zero_out, seq, cseq, gseq, last
        )
        if record:
            extra["c"] = cseq.transpose(2, 0, 1)
        names: tuple[str, ...] = ("i", "f", "g", "o")
    elif isinstance(layer, GRU):
        b = _bias(layer)
        b_in = np.ascontiguousarray(b[0] if b.ndim == 2 else b)
        b_rec = np.ascontiguousarray(b[1] if b.ndim == 2 else np.zeros(3 * M, f32))
        ra = _code(layer.recurrent_activation, major)
        kernels.gru(
            x,
            m,
            K,
            R,
            b_in,
            b_rec,
            states[0],
            a,
            ra,
            layer.reset_after,
            back,
            zero_out,
            seq,
            gseq,
            last,
        )
        names = ("z", "r", "candidate")
    else:
        b = _bias(layer)
        kernels.simple(x, m, K, R, b, states[0], a, back, zero_out, seq, last)
        names = ()
    if gseq.size:
        extra.update(
            {name: gseq[:, k * M : (k + 1) * M].transpose(2, 0, 1) for k, name in enumerate(names)}
        )
    kept = seq.transpose(2, 0, 1) if keep_seq or record else None
    return last, kept, states, extra


def for_stepper(layer: Recurrent, N: int, D: int, ft: np.dtype[Any], major: int) -> Any:
    """The kernels for a stepper's cell, or None. A stream's length is unknown, so
    under ``auto`` a stepper takes them only once this process has loaded them (it
    never imports numba itself); ``compiled`` takes them wherever supported."""
    name = engine()
    if name == "numpy" or not supported(layer, ft, None, major):
        return None
    if name == "compiled":
        return load()
    return _loaded[0] if _loaded and pays(layer, N, D) else None


StepCall = Callable[[Array, Array, list[Array], Array], None]


def step_call(kernels: Any, layer: Recurrent, major: int) -> StepCall:
    """One kernel call over (N, T, D) ``x`` with (N, T) ``mask`` (or ``NONE_MASK``)
    from and into the (N, M) ``states``; ``last`` gets the last output. The weights
    are cast and the options bound once (the stepper calls it every step)."""
    f32 = np.float32
    M = layer.units
    K = np.ascontiguousarray(layer.kernel, dtype=f32)
    R = np.ascontiguousarray(layer.recurrent_kernel, dtype=f32)
    a = _code(layer.activation, major)
    zero_out, back = layer.zero_output_for_mask, layer.go_backwards
    none = _NONE_SEQ
    if isinstance(layer, LSTM):
        b = _bias(layer)
        ra = _code(layer.recurrent_activation, major)
        run = kernels.lstm

        def lstm(x: Array, m: Array, states: list[Array], last: Array) -> None:
            run(x, m, K, R, b, states[0], states[1], a, ra, back, zero_out, none, none, none, last)

        return lstm
    if isinstance(layer, GRU):
        b = _bias(layer)
        b_in = np.ascontiguousarray(b[0] if b.ndim == 2 else b)
        b_rec = np.ascontiguousarray(b[1] if b.ndim == 2 else np.zeros(3 * M, f32))
        ra = _code(layer.recurrent_activation, major)
        reset_after = layer.reset_after
        run = kernels.gru

        def gru(x: Array, m: Array, states: list[Array], last: Array) -> None:
            run(
                x,
                m,
                K,
                R,
                b_in,
                b_rec,
                states[0],
                a,
                ra,
                reset_after,
                back,
                zero_out,
                none,
                none,
                last,
            )

        return gru
    b = _bias(layer)
    run = kernels.simple

    def simple(x: Array, m: Array, states: list[Array], last: Array) -> None:
        run(x, m, K, R, b, states[0], a, back, zero_out, none, last)

    return simple
