"""Shared fixtures and helpers for the library-level tests.

References used across the suite (never our own output):

* ``sample_models/<model>/golden.npz``: Keras 3's own ``predict`` output and every
  recurrent layer's full output sequence (``state/<layer>``);
* ``sample_models/<model>/expected.json``: Keras's own ``model.summary()`` counts;
* an independent plain-loop float64 oracle (``test_oracle.py``);
* round trips through files we write ourselves.

Hypothesis profiles: ``default`` (fast, ~25 examples) and ``long`` (many examples);
choose with ``HYPOTHESIS_PROFILE=long``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The NumPy engine, the reference, unless the run asks for another
# (RNNINSPECT_ENGINE=compiled runs the whole suite on the numba kernels): the
# default, auto, switches engines partway through a process once the kernels pay,
# which would make results depend on the tests run before. test_compiled.py holds
# the kernels to this engine and to Keras.
os.environ.setdefault("RNNINSPECT_ENGINE", "numpy")

settings.register_profile(
    "default",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"

MODELS: list[str] = sorted(p.name for p in SAMPLES.iterdir() if (p / "golden.npz").is_file())
# The models sample_models/README.md describes, SimpleRNN/Dense family (the oracle of
# test_oracle.py knows these layers); the format tests run over every model directory
# present, with per-model knowledge derived from the configs (test_formats.py).
README_MODELS = [
    "activations", "backwards", "embedding", "functional", "masking", "nobias",
    "seed", "seq2seq", "stacked", "tanh_dense", "timedistributed", "variable_t",
]  # fmt: skip
# The LSTM / GRU / Bidirectional / nested / return_state models added later (same README).
EXTENDED_MODELS = [
    "acceptance_chain", "bidi_ave", "bidi_concat", "bidi_masked", "bidi_mul", "bidi_none",
    "bidi_sum", "gru", "gru_v1", "lstm", "lstm_jax", "lstm_stack", "masked_backwards",
    "nested_func", "nested_seq", "return_state", "return_state_h",
]  # fmt: skip

# The first round's models are chains; the graph models (several inputs or outputs,
# merges, attention, convolutions, cells, ...) say "graph" in expected.json.
GRAPH_MODELS: list[str] = [
    m for m in MODELS if json.loads((SAMPLES / m / "expected.json").read_text()).get("graph")
]
CHAIN_MODELS: list[str] = [m for m in MODELS if m not in GRAPH_MODELS]

# Files that hold a whole model (architecture + weights).
FULL_FILES = ("model.keras", "model.h5", "tfkeras.keras", "tfkeras.h5", "layers.npz")
# Files that hold weights only (loaded alone they assume Keras's defaults).
WEIGHTS_ONLY_FILES = ("model.weights.h5", "tfkeras_weights.h5", "notebook.npz")
ALL_FILES = FULL_FILES + WEIGHTS_ONLY_FILES
# Files written by tf_keras 2.21 (their summaries are compared with expected["tfkeras"]).
TFKERAS_FILES = ("tfkeras.keras", "tfkeras.h5", "tfkeras_weights.h5")

MODEL_FILES: list[tuple[str, str]] = [
    (model, name) for model in MODELS for name in ALL_FILES if (SAMPLES / model / name).is_file()
]
FULL_MODEL_FILES = [(m, f) for m, f in MODEL_FILES if f in FULL_FILES]
WEIGHTS_ONLY_MODEL_FILES = [(m, f) for m, f in MODEL_FILES if f in WEIGHTS_ONLY_FILES]

# Models saved by Keras 3 only (a SKIPPED_tfkeras.txt says why): no tf_keras files.
NO_TFKERAS = sorted(m for m in MODELS if (SAMPLES / m / "SKIPPED_tfkeras.txt").is_file())

# Golden comparisons: Keras computes in float32; so do we.
RTOL = 1e-4
ATOL = 1e-5


def sample(model: str, name: str = "") -> Path:
    """Path of a sample model directory, or of a file in it."""
    return SAMPLES / model / name if name else SAMPLES / model


@cache
def _golden(model: str) -> dict[str, np.ndarray]:
    with np.load(SAMPLES / model / "golden.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def golden(model: str) -> dict[str, np.ndarray]:
    """``golden.npz`` as a dict: ``x``, ``y``, ``y_tfkeras``, ``state/<layer>``."""
    return dict(_golden(model))


def golden_states(model: str) -> dict[str, np.ndarray]:
    """Layer name -> Keras's (N, T, M) output sequence, in file (= layer) order."""
    return {k[len("state/") :]: v for k, v in golden(model).items() if k.startswith("state/")}


@cache
def _expected(model: str) -> str:
    return (SAMPLES / model / "expected.json").read_text()


def expected(model: str) -> dict[str, Any]:
    """``expected.json`` (a fresh copy each call)."""
    return json.loads(_expected(model))


def config_path(model: str) -> Path:
    return SAMPLES / model / "config.json"


@cache
def _load_sample(model: str, name: str, with_config: bool) -> Any:
    import rnninspect

    return rnninspect.load_model(
        SAMPLES / model / name, config_path(model) if with_config else None
    )


def load_sample(model: str, name: str, with_config: bool = False) -> Any:
    """A sample file loaded once per session (through the real, forking loader).
    Shared between tests: never mutate it (``dataclasses.replace`` makes a new one)."""
    return _load_sample(model, name, with_config)


def keras_config(model: str) -> dict[str, Any]:
    """The Keras 3 ``model.to_json()`` of a sample model, as a dict."""
    return json.loads(config_path(model).read_text())


def computing(layers: list[Any]) -> list[Any]:
    """``model.layers`` without the InputLayers (Keras lists a Functional model's)."""
    return [layer for layer in layers if type(layer).__name__ != "InputLayer"]


def weighted(layers: list[Any]) -> list[Any]:
    """Layers that hold weights."""
    return [layer for layer in layers if layer.weights()]


def assert_same_weights(got: list[Any], ref: list[Any], what: str) -> None:
    """Exact equality of (weight name, array) lists of two layer lists, by position
    (InputLayers aside: Keras lists them for Functional models only)."""
    got, ref = computing(got), computing(ref)
    assert len(got) == len(ref), f"{what}: {len(got)} layers vs {len(ref)}"
    for a, b in zip(got, ref, strict=True):
        wa, wb = a.weights(), b.weights()
        assert [n for n, _ in wa] == [n for n, _ in wb], f"{what}: {a.name} vs {b.name}"
        for (name, x), (_, y) in zip(wa, wb, strict=True):
            assert x.shape == y.shape, f"{what}: {a.name}/{name} {x.shape} vs {y.shape}"
            assert np.array_equal(x, y), f"{what}: {a.name}/{name} values differ"


def assert_close(
    got: np.ndarray, want: np.ndarray, what: str, rtol: float = RTOL, atol: float = ATOL
) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        err = np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))
        raise AssertionError(f"{what}: max abs difference {err:.3g} (rtol={rtol}, atol={atol})")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def model_dirs() -> list[Path]:
    return [SAMPLES / m for m in MODELS]


@pytest.fixture(scope="session")
def model_file_pairs() -> list[tuple[str, str]]:
    return list(MODEL_FILES)


@pytest.fixture(name="golden")
def golden_fixture():  # type: ignore[no-untyped-def]
    """``golden(model)`` loader as a fixture."""
    return golden


# ------------------------------------------------ golden checks for every kind of model
#
# Which Keras generation's semantics a model carries matters for ``hard_sigmoid`` only
# (tf_keras ``clip(0.2x + 0.5)``, Keras 3 ``clip(x/6 + 0.5)``). A whole-model file
# carries its writer's: tf_keras files are compared with ``y_tfkeras``. A weights-only
# file loaded with ``config=`` computes as the *config's* generation would (Keras loads
# the weights into the config's model): with the Keras 3 ``config.json``, Keras 3's.
# Every ``state/``/``final/`` golden is a Keras 3 value.

KERAS3 = "keras3"
TFKERAS = "tfkeras"


def semantics_of(name: str, with_config: bool = False) -> str:
    """The Keras generation whose semantics a sample file carries (``with_config``: the
    file loaded with the Keras 3 ``config.json``)."""
    if with_config and name in WEIGHTS_ONLY_FILES:
        return KERAS3
    return TFKERAS if name in TFKERAS_FILES else KERAS3


def golden_inputs(model: str) -> Any:
    """The golden input: ``x``, or for a model with several inputs the list
    ``x/0``, ``x/1``, ... in Keras's input order."""
    g = golden(model)
    if "x" in g:
        return g["x"]
    return [g[f"x/{i}"] for i in range(sum(k.startswith("x/") for k in g))]


def golden_outputs(model: str, semantics: str = KERAS3) -> list[np.ndarray]:
    """Keras's ``predict`` output(s): ``y`` or ``y/0``, ``y/1``, ... (multi-output)."""
    g = golden(model)
    base = "y_tfkeras" if semantics == TFKERAS else "y"
    if base in g:
        return [g[base]]
    outs = []
    while f"{base}/{len(outs)}" in g:
        outs.append(g[f"{base}/{len(outs)}"])
    assert outs, f"{model}: golden has no {base}"
    return outs


def _config_layers(obj: Any) -> list[dict[str, Any]]:
    """Every layer entry of a Keras config, nested models' and wrapped layers included."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "class_name" in node and isinstance(node.get("config"), dict):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(obj["config"]["layers"])
    return found


def hard_sigmoid_layers(model: str) -> list[str]:
    """Names of the top-level/nested layers (a Bidirectional: its own name) whose
    computation uses ``hard_sigmoid``, from the Keras config."""
    names = []
    for entry in _config_layers(keras_config(model)):
        cfg = entry["config"]
        inner = (
            cfg.get("layer", {}).get("config", {})
            if entry["class_name"] == "Bidirectional"
            else cfg
        )
        if "hard_sigmoid" in (inner.get("activation"), inner.get("recurrent_activation")):
            names.append(cfg["name"])
    return names


HARD_SIGMOID_MODELS = [m for m in MODELS if hard_sigmoid_layers(m)]


def input_mask(model: str, x: np.ndarray) -> np.ndarray | None:
    """(N, T) bool mask made by the model's first layer (Masking or Embedding(mask_zero))."""
    layers = [e for e in keras_config(model)["config"]["layers"] if e["class_name"] != "InputLayer"]
    first = layers[0]
    cfg = first["config"]
    if first["class_name"] == "Masking":
        return np.any(x != cfg.get("mask_value", 0.0), axis=-1)
    if first["class_name"] == "Embedding" and cfg.get("mask_zero"):
        return x != 0
    return None


def final_state(seq: np.ndarray, mask: np.ndarray | None, go_backwards: bool) -> np.ndarray:
    """The state a recurrent layer ends with, from its (N, T, M) output sequence in
    processing order: the output at the last *unmasked* processed step (zeros if none).
    (At masked steps the output is the previous h or zeros; the state is kept.)"""
    if mask is None:
        return seq[:, -1]
    order = mask[:, ::-1] if go_backwards else mask  # (N, T) in processing order
    out = np.zeros_like(seq[:, -1])
    for n in range(seq.shape[0]):
        kept = np.flatnonzero(order[n])
        if kept.size:
            out[n] = seq[n, kept[-1]]
    return out


def expected_trace_keys(model: str) -> list[str]:
    """The keys ``trace()`` must give (without gates), in order: every ``state/`` key
    plus ``<L>/c`` for every LSTM (where golden has ``final/<L>/c``)."""
    keys = []
    for k in golden(model):
        if k.startswith("state/"):
            keys.append(k[len("state/") :])
        elif k.startswith("final/") and k.endswith("/c"):
            keys.append(k[len("final/") : -len("/h")] + "/c")
    return keys


def _base(key: str) -> str:
    return key.split("/", 1)[0]


def _rename_bases(got: dict[str, np.ndarray], want_keys: list[str]) -> dict[str, np.ndarray]:
    """Trace keys renamed layer by layer (in order) to the golden names: for files whose
    layer names differ from Keras's (weights alone, notebook.npz)."""
    got_bases = list(dict.fromkeys(_base(k) for k in got))
    want_bases = list(dict.fromkeys(_base(k) for k in want_keys))
    assert len(got_bases) == len(want_bases), f"traced layers {got_bases} vs {want_bases}"
    rename = dict(zip(got_bases, want_bases, strict=True))
    return {rename[_base(k)] + k[len(_base(k)) :]: v for k, v in got.items()}


def _direction(m: Any, key: str, names: dict[str, str]) -> Any:
    """The model's recurrent layer (or Bidirectional direction) a golden key is about."""
    base, _, rest = key.partition("/")
    layer = m.layer(names[base])
    if rest.startswith("forward"):
        return layer.forward
    if rest.startswith("backward"):
        return layer.backward
    return layer


def _mask_reaches(m: Any, layer_name: str) -> bool:
    """A mask reaches a recurrent layer when every recurrent layer before it returns
    sequences (one without return_sequences drops the mask)."""
    from rnninspect.model import Bidirectional, Recurrent

    for layer in m.layers:
        if layer.name == layer_name:
            return True
        if isinstance(layer, (Recurrent, Bidirectional)) and not layer.return_sequences:
            return False
    raise AssertionError(f"no layer {layer_name}")


def check_sample(model: str, what: str) -> None:
    """A sample model against Keras: ``check_golden`` for a chain model; for a graph
    model every output, from its Keras 3 file (tf_keras's if Keras 3 has none)."""
    if model in CHAIN_MODELS:
        check_golden(load_sample(model, "model.keras"), model, what)
        return
    name = "model.keras" if sample(model, "model.keras").is_file() else "tfkeras.keras"
    g = golden(model)
    n = sum(k.startswith("x/") for k in g)
    x = [g[f"x/{i}"] for i in range(n)] if n else g["x"]
    got = load_sample(model, name).forward_all(x)
    want = golden_outputs(model, "tfkeras" if name == "tfkeras.keras" else "keras3")
    for a, b in zip(got, want, strict=True):
        assert_close(a, b, what)


def check_golden(
    m: Any, model: str, what: str, semantics: str = KERAS3, by_name: bool = True
) -> None:
    """``forward``/``forward_all`` equal Keras's predict; ``trace`` has exactly the
    expected keys; every ``state/`` key equals the trace and every ``final/`` key the
    state the trace ends with (last unmasked step; ``/c`` kept through masked steps).

    Under tf_keras semantics the layers from the first ``hard_sigmoid`` one on differ
    from the Keras 3 goldens by design: they are skipped here (test_formats checks them
    against an independent reference) and the hard_sigmoid layer must really differ."""
    g = golden(model)
    x = g["x"]
    want_ys = golden_outputs(model, semantics)
    got_ys = m.forward_all(x)
    assert len(got_ys) == len(want_ys), f"{what}: {len(got_ys)} outputs vs {len(want_ys)}"
    for i, (a, b) in enumerate(zip(got_ys, want_ys, strict=True)):
        assert_close(a, b, f"{what}: output {i} vs Keras predict ({semantics})")
    if len(want_ys) == 1:
        np.testing.assert_array_equal(m.forward(x), got_ys[0])
    else:
        with pytest.raises(ValueError, match="forward_all"):
            m.forward(x)

    want_keys = expected_trace_keys(model)
    got = m.trace(x)
    if by_name:
        assert list(got) == want_keys, f"{what}: traced keys"
        names = {_base(k): _base(k) for k in got}
    else:
        got_bases = list(dict.fromkeys(_base(k) for k in got))
        got = _rename_bases(got, want_keys)
        assert list(got) == want_keys, f"{what}: traced keys (renamed)"
        names = dict(zip(dict.fromkeys(_base(k) for k in want_keys), got_bases, strict=True))

    skip: set[str] = set()
    bases = list(dict.fromkeys(_base(k) for k in want_keys))
    hs = [b for b in hard_sigmoid_layers(model) if b in bases]  # traced layers only
    if semantics == TFKERAS and hs:
        first = min(bases.index(b) for b in hs)
        skip = set(bases[first:])
        for b in hs:  # the semantics really switched: this layer's states move
            a, w = got[b].astype(np.float64), g[f"state/{b}"]
            assert not np.allclose(a, w, rtol=RTOL, atol=ATOL), f"{what}: {b} has Keras 3 values"

    mask = input_mask(model, x)
    for key, want in g.items():
        if not key.startswith(("state/", "final/")):
            continue
        name = key.split("/", 1)[1]
        if _base(name) in skip:
            continue
        if key.startswith("state/"):
            assert_close(got[name], want, f"{what}: trace {name} vs Keras {key}")
            continue
        path, which = name.rsplit("/", 1)
        if which == "c":
            final = got[f"{path}/c"][:, -1]  # the cell state is kept through masked steps
        else:
            layer = _direction(m, path, names)
            reach = mask if _mask_reaches(m, names[_base(path)]) else None
            final = final_state(got[path], reach, layer.go_backwards)
        assert_close(final, want, f"{what}: final state from trace vs Keras {key}")


@contextlib.contextmanager
def _warnings_printed() -> Iterator[None]:
    """Warnings printed on (the redirected) stderr, every time, as a process with
    Python's default filters prints them: under pytest they would be collected
    apart, where no test's check of stderr sees them."""
    import warnings

    def show(message: Any, category: Any, filename: str, lineno: int, *_: Any) -> None:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        for quiet in (
            DeprecationWarning,
            PendingDeprecationWarning,
            ImportWarning,
            ResourceWarning,
        ):
            warnings.simplefilter("ignore", quiet)
        warnings.showwarning = show
        yield


def run_cli(*args: str) -> tuple[int, str, str]:
    """The CLI run in-process through ``main`` (the one place exceptions become exit
    codes): exit code, stdout, stderr."""
    from rnninspect.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _warnings_printed():
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()
