"""Model files nobody on this project wrote (``../shared/wild-models``: public
repositories and Deeplearning4j's Keras-import tests, Keras 1.1 to 3.13) against
the Keras that wrote them.

The references (``tests/wild_refs/<case>.npz``: inputs, Keras's outputs, recurrent
layers' sequences) come from ``scripts/make_wild_refs.py``, run with real Keras; the
model files themselves are read where they lie and never copied here.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ATOL, ROOT, RTOL, run_cli

import rnninspect

WILD = ROOT.parent / "shared" / "wild-models"
REFS = ROOT / "tests" / "wild_refs"
INDEX: dict[str, dict[str, Any]] = json.loads((REFS / "index.json").read_text())
CASES = sorted(case for case, entry in INDEX.items() if entry["status"] == "ok")

if not WILD.is_dir():
    if os.environ.get("CI"):
        raise RuntimeError(f"{WILD} is missing: CI must have ../shared/wild-models")
    pytest.skip(f"{WILD} not found", allow_module_level=True)


def model_path(case: str) -> Path:
    return WILD / case / INDEX[case]["file"]


def config_path(case: str) -> Path | None:
    name = INDEX[case]["config"]
    if name is None or case.endswith("_inferred"):
        return None
    return WILD / case / name


@cache
def _load(case: str) -> rnninspect.Model:
    return rnninspect.load_model(model_path(case), config=config_path(case))


def _ref(case: str) -> dict[str, np.ndarray]:
    with np.load(REFS / INDEX[case]["npz"]) as z:
        return {k: z[k] for k in z.files}


def _inputs(ref: dict[str, np.ndarray]) -> Any:
    if "x" in ref:
        return ref["x"]
    return [ref[f"x/{i}"] for i in range(sum(k.startswith("x/") for k in ref))]


def _outputs(ref: dict[str, np.ndarray]) -> list[np.ndarray]:
    if "y" in ref:
        return [ref["y"]]
    return [ref[f"y/{i}"] for i in range(sum(k.startswith("y/") for k in ref))]


def test_every_case_has_a_reference() -> None:
    """Every folder in wild-models has a Keras reference (none was left out)."""
    folders = sorted(p.name for p in WILD.iterdir() if p.is_dir())
    assert folders == sorted(INDEX)
    assert folders == CASES


@pytest.mark.parametrize("case", CASES)
def test_forward_equals_keras(case: str) -> None:
    ref = _ref(case)
    model = _load(case)
    got = model.forward_all(_inputs(ref))
    want = _outputs(ref)
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.shape == b.shape, (case, i)
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{case} output {i}")


@pytest.mark.parametrize("case", CASES)
def test_trace_equals_keras_sequences(case: str) -> None:
    """Each recurrent layer's trace is Keras's return_sequences=True output."""
    ref = _ref(case)
    model = _load(case)
    states = model.trace(_inputs(ref))
    names = {n.layer.name: n.key for n in model.recurrent_nodes()}
    checked = 0
    exact: dict[str, np.ndarray] | None = None
    for key in (k for k in ref if k.startswith("state/")):
        layer = key.removeprefix("state/")
        assert layer in names, (case, layer, sorted(states))
        got, want = states[names[layer]], ref[key]
        off = np.abs(got - want) > ATOL + RTOL * np.abs(want)
        if off.any():
            # Over long sequences Keras's own float32 rounding drifts: then the exact
            # (float64) states must be as far from Keras's as ours are.
            exact = exact or model.trace(_inputs(ref), dtype="float64")
            ours = np.abs(got - want)[off]
            truth = np.abs(exact[names[layer]] - want)[off]
            assert np.all(truth >= 0.8 * ours), (case, layer, float(ours.max()))
            assert float(ours.max()) < 1e-4, (case, layer)
        checked += 1
    assert checked == len(INDEX[case].get("states", []))


@pytest.mark.parametrize("case", CASES)
def test_parameter_counts_equal_keras(case: str) -> None:
    entry = INDEX[case]
    s = _load(case).summary()
    assert s.total_params == entry["params_total"]
    ours = {r.name: r.params for r in s.layers}
    for name, params in entry["layer_params"].items():
        if name in ours:
            assert ours[name] == params, (case, name)


@pytest.mark.parametrize("case", CASES[::9])
def test_cli_runs_every_command(case: str) -> None:
    """summary, forward and trace from the shell, on a sample of the cases."""
    cfg = config_path(case)
    extra = ["--config", str(cfg)] if cfg else []
    code, out, err = run_cli("summary", str(model_path(case)), *extra, "--json")
    assert code == 0, err
    assert json.loads(out)["total_params"] == INDEX[case]["params_total"]
    length = [] if INDEX[case]["inputs"][0]["model_input_shape"][1] else ["--length", "5"]
    for command in ("forward", "trace"):
        code, out, err = run_cli(
            command, str(model_path(case)), *extra, "--random", "2", *length, "--json"
        )
        assert code == 0, (command, err)
        json.loads(out)
