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

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

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
# The models sample_models/README.md describes (SimpleRNN/Dense family). Tests that
# encode per-model knowledge (which ones use Keras's defaults, the oracle's layer set)
# use these; the format tests run over every model directory present.
README_MODELS = [
    "activations", "backwards", "embedding", "functional", "masking", "nobias",
    "seed", "seq2seq", "stacked", "tanh_dense", "timedistributed", "variable_t",
]  # fmt: skip

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


def keras_config(model: str) -> dict[str, Any]:
    """The Keras 3 ``model.to_json()`` of a sample model, as a dict."""
    return json.loads(config_path(model).read_text())


def weighted(layers: list[Any]) -> list[Any]:
    """Layers that hold weights."""
    return [layer for layer in layers if layer.weights()]


def assert_same_weights(got: list[Any], ref: list[Any], what: str) -> None:
    """Exact equality of (weight name, array) lists of two layer lists, by position."""
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
