"""The seed notebook's own cells (``../shared/seed-notebook.txt``, cells 5-11 and the
N=3 bonus 17-18) run unchanged with ``rnninspect.load_model`` in place of Keras: the
Keras-shaped API (``predict``, ``summary``, ``layers[i].get_weights()``), and the
manual computation gives Keras's numbers (the golden of the seed model, written by
Keras's own ``predict``)."""

from __future__ import annotations

import numpy as np
from conftest import ATOL, RTOL, golden, sample

import rnninspect


def test_notebook_cells_run_unchanged() -> None:
    model = rnninspect.load_model(sample("seed", "model.keras"))
    X = golden("seed")["x"][:1]  # N = 1, as in the notebook
    N, T, D = X.shape
    M, K = 5, 2

    # In [5]
    Yhat = model.predict(X)
    assert Yhat.shape == (N, K)
    np.testing.assert_allclose(Yhat, golden("seed")["y"][:1], rtol=RTOL, atol=ATOL)

    # In [7]
    lines: list[str] = []
    s = model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert 'Model: "functional' in text
    for row in ("input_layer (InputLayer)", "simple_rnn (SimpleRNN)", "dense (Dense)"):
        assert row in text
    assert "Total params: 57" in text and s.total_params == 57

    # In [8], [9]
    a, b, c = model.layers[1].get_weights()
    assert (a.shape, b.shape, c.shape) == ((D, M), (M, M), (M,))

    # In [10], [11]: the manual loop
    Wx, Wh, bh = model.layers[1].get_weights()
    Wo, bo = model.layers[2].get_weights()
    h_last = np.zeros(M)  # initial hidden state
    x = X[0]  # the one and only sample
    Yhat = []  # where we store the output
    for t in range(T):
        h = np.tanh(x[t].dot(Wx) + h_last.dot(Wh) + bh)
        y = h.dot(Wo) + bo  # We only care about his value on the last iteration
        Yhat.append(y)
        h_last = h
    np.testing.assert_allclose(Yhat[-1], model.predict(X)[0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(Yhat[-1], golden("seed")["y"][0], rtol=RTOL, atol=ATOL)


def test_notebook_bonus_several_samples() -> None:
    """Cells 17-18: the loop over N samples equals predict on the batch."""
    model = rnninspect.load_model(sample("seed", "model.keras"))
    X = golden("seed")["x"]
    N, T, _ = X.shape
    M = 5
    Yhat = model.predict(X)

    Wx, Wh, bh = model.layers[1].get_weights()
    Wo, bo = model.layers[2].get_weights()
    Yhat_all_samples = []
    for s in range(N):
        h_last = np.zeros(M)
        x = X[s]
        Yhat_s = []
        for t in range(T):
            h = np.tanh(x[t].dot(Wx) + h_last.dot(Wh) + bh)
            y = h.dot(Wo) + bo
            Yhat_s.append(y)
            h_last = h
        Yhat_all_samples.append(Yhat_s[-1])
    Yhat_all_samples = np.array(Yhat_all_samples)
    np.testing.assert_allclose(Yhat_all_samples, Yhat, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(Yhat, golden("seed")["y"], rtol=RTOL, atol=ATOL)


def test_keras_shaped_api() -> None:
    model = rnninspect.load_model(sample("seed", "model.keras"))
    assert [la.name for la in model.layers] == ["input_layer", "simple_rnn", "dense"]
    assert model.get_layer("dense") is model.layers[2]
    assert model.get_layer(index=1) is model.layers[1]
    assert model.input_shape == (None, 10, 3) and model.output_shape == (None, 2)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3, 5), (5, 5), (5,), (5, 2), (2,)]
    assert model.count_params() == 57 == sum(w.size for w in weights)
    assert model.layers[1].count_params() == 45
    multi = rnninspect.load_model(sample("multi_output", "model.keras"))
    assert isinstance(multi.predict(golden("multi_output")["x"]), list)
    assert isinstance(multi.output_shape, list) and len(multi.output_shape) == 3
