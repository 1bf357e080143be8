"""Unseen random graphs that once disagreed with Keras (``scripts/check_graphs.py``,
which builds random Keras models and compares every file format): each model, saved
by Keras 3, with Keras's printed outputs (rounded to 1e-5 there). ``index.json`` says
what each case is."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT

import rnninspect

DATA = ROOT / "tests" / "data" / "graph_regressions"
CASES = sorted(json.loads((DATA / "index.json").read_text()))


@pytest.mark.parametrize("case", CASES)
def test_equals_keras(case: str) -> None:
    m = rnninspect.load_model(DATA / f"{case}.keras")
    with np.load(DATA / f"{case}.npz") as z:
        xs = [z[f"x/{i}"] for i in range(sum(k.startswith("x/") for k in z.files))]
        want = [z[f"y/{i}"] for i in range(sum(k.startswith("y/") for k in z.files))]
    got = m.forward_all(xs if len(m.inputs) > 1 else xs[0])
    assert len(got) == len(want), "every output, none dropped"
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)  # Keras's printed 5 decimals
