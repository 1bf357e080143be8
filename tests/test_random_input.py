"""``--random N --seed S`` is the notebook's ``np.random.seed(S); np.random.randn(N, T, D)``
(legacy RandomState, cast to float32 as Keras casts it), and ids for Embedding models
``np.random.RandomState(S).randint(1, V, (N, T))``."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_sample

from rnninspect.inputs import random_input


@pytest.mark.parametrize(("n", "seed"), [(1, 0), (3, 0), (5, 42), (2, 2**31)])
def test_random_is_the_notebooks_randn(n: int, seed: int) -> None:
    m = load_sample("seed", "model.keras")
    np.random.seed(seed)
    X = np.random.randn(n, 10, 3)  # the notebook's own call
    got = random_input(m, n, seed, None)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, X.astype(np.float32))


def test_random_length_for_variable_t() -> None:
    m = load_sample("variable_t", "model.keras")
    want = np.random.RandomState(7).randn(2, 13, 3).astype(np.float32)
    np.testing.assert_array_equal(random_input(m, 2, 7, 13), want)


def test_random_ids_for_embedding_models() -> None:
    m = load_sample("embedding", "model.keras")
    V = int(m.layers[0].embeddings.shape[0])
    want = np.random.RandomState(3).randint(1, V, (4, 9))
    got = random_input(m, 4, 3, None)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_no_seed_draws_fresh_inputs() -> None:
    m = load_sample("seed", "model.keras")
    assert not np.array_equal(random_input(m, 2, None, None), random_input(m, 2, None, None))
