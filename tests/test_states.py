"""States in and out: ``initial_state``, ``return_state``, sequences run in pieces,
the stepper, and ``--initial-state`` / ``--final-state``.

References, never our own output: ``tests/data/states.npz`` and the models in
``tests/data/states/`` (``scripts/make_state_goldens.py``, Keras 3.15): each model's
one-pass ``predict``, a ``stateful=True`` copy fed the same pieces, its states after
them, and ``layer(x, initial_state=...)``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_close, golden, load_sample, run_cli, sample

import rnninspect
from rnninspect.errors import InputArrayError, UsageError
from rnninspect.states import layout

DATA = Path(__file__).resolve().parent / "data"


@cache
def _npz() -> dict[str, np.ndarray]:
    with np.load(DATA / "states.npz") as z:
        return {k: z[k] for k in z.files}


REPORT: dict[str, Any] = json.loads(str(_npz()["__report__"]))
MODELS = sorted(REPORT)
# Keras's stateful pieces equal one pass unless a direction runs backwards (each
# piece is processed last step first) or a piece starts on masked steps.
ONE_PASS = sorted(m for m, r in REPORT.items() if r["pieces_equal_one_pass"])


def _g(name: str) -> dict[str, np.ndarray]:
    p = f"{name}/"
    return {k[len(p) :]: v for k, v in _npz().items() if k.startswith(p)}


@cache
def _model(name: str) -> rnninspect.Model:
    return rnninspect.load_model(DATA / "states" / f"{name}.keras")


def _pieces(m: Any, x: np.ndarray, lengths: list[int]) -> tuple[np.ndarray, dict[str, Any]]:
    """Run x in pieces, each from the last one's final states."""
    outs, state, t0 = [], None, 0
    for n in lengths:
        y, state = m.forward(x[:, t0 : t0 + n], initial_state=state, return_state=True)
        outs.append(y)
        t0 += n
    y = np.concatenate(outs, axis=1) if outs[0].ndim == 3 else outs[-1]
    assert state is not None
    return y, state


def test_goldens_cover_the_brief() -> None:
    assert {"simple_rnn", "lstm", "gru", "bidi", "stacked", "cells"} <= set(MODELS)
    assert {"simple_rnn", "lstm", "gru", "gru_v1", "stacked", "cells", "last_state"} <= set(
        ONE_PASS
    )
    assert not REPORT["bidi"]["pieces_equal_one_pass"]


@pytest.mark.parametrize("name", MODELS)
def test_one_pass_equals_keras(name: str) -> None:
    g = _g(name)
    assert_close(_model(name).forward(g["x"]), g["y_full"], name)


@pytest.mark.parametrize("name", MODELS)
def test_pieces_equal_keras_stateful(name: str) -> None:
    """Carrying the final states from piece to piece computes what a Keras
    ``stateful=True`` model fed the same pieces computes, and ends in its states."""
    g = _g(name)
    y, state = _pieces(_model(name), g["x"], [int(n) for n in g["pieces"]])
    assert_close(y, g["y_stateful"], f"{name}: pieces vs Keras stateful")
    finals = {k[len("final/") :]: v for k, v in g.items() if k.startswith("final/")}
    assert sorted(state) == sorted(finals)
    for key, want in finals.items():
        assert_close(state[key], want, f"{name}: final {key} vs Keras layer.states")


@pytest.mark.parametrize("name", ONE_PASS)
def test_pieces_equal_one_pass(name: str) -> None:
    """For layers that run forwards, pieces equal one pass over the whole sequence
    (any cut), to float rounding."""
    g = _g(name)
    m = _model(name)
    x = g["x"]
    whole, ends = m.forward(x, return_state=True)
    for cuts in ([5, 4, 3], [1] * 12, [11, 1], [12]):
        y, state = _pieces(m, x, cuts)
        assert_close(y, whole, f"{name} {cuts}", rtol=1e-5, atol=1e-6)
        for key in ends:
            assert_close(state[key], ends[key], f"{name} {cuts} {key}", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_initial_state_equals_keras(name: str) -> None:
    """``forward(x, initial_state=...)`` is Keras's ``layer(x, initial_state=[...])``."""
    g = _g(name)
    given = {k[len("init/") :]: v for k, v in g.items() if k.startswith("init/")}
    m = _model(name)
    assert_close(m.forward(g["x"], initial_state=given), g["y_init"], f"{name}: initial_state")


@cache
def _every_layer() -> dict[str, np.ndarray]:
    with np.load(DATA / "states_every_layer.npz") as z:
        return {k: z[k] for k in z.files}


EVERY_LAYER = ["bidi", "gru", "simple_rnn", "stacked"]


def _every_layer_case(name: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    p = f"{name}/init/"
    found = _every_layer()
    given = {k[len(p) :]: v for k, v in found.items() if k.startswith(p)}
    return given, found[f"{name}/y_init"]


@pytest.mark.parametrize("name", EVERY_LAYER)
def test_initial_state_of_every_layer_equals_keras(name: str) -> None:
    """Every recurrent layer given a state (a stacked model's three, a
    Bidirectional's two directions): Keras's model calling each of them as
    ``layer(h, initial_state=[...])``."""
    given, want = _every_layer_case(name)
    m = _model(name)
    assert sorted(given) == sorted(layout(m))  # every state of the model given
    assert_close(m.forward(_g(name)["x"], initial_state=given), want, f"{name}: every layer")


@pytest.mark.parametrize(
    ("name", "every"),
    [("simple_rnn", False), ("lstm", False), ("gru", False), ("bidi", True), ("stacked", True)],
)
def test_cli_initial_state_equals_keras(name: str, every: bool, tmp_path: Path) -> None:
    """``forward --initial-state S.npz`` computes Keras's ``layer(x, initial_state=...)``
    (the .npz in the documented key layout)."""
    g = _g(name)
    if every:
        given, want = _every_layer_case(name)
    else:
        given = {k[len("init/") :]: v for k, v in g.items() if k.startswith("init/")}
        want = g["y_init"]
    states, x, y = tmp_path / "s.npz", tmp_path / "x.npy", tmp_path / "y.npy"
    np.savez(states, **given)
    np.save(x, g["x"])
    model = str(DATA / "states" / f"{name}.keras")
    code, _, err = run_cli("forward", model, str(x), "--initial-state", str(states), "-o", str(y))
    assert code == 0, err
    assert_close(np.load(y), want, f"{name}: cli --initial-state vs Keras")
    code, _, err = run_cli("forward", model, str(x), "-o", str(y))
    assert code == 0, err
    assert not np.allclose(np.load(y), want, rtol=1e-4, atol=1e-5)  # the states matter


def test_backward_directions_are_carried_as_keras_does() -> None:
    """A Bidirectional carried across pieces: each direction continues from its own
    final state (the backward one from the start of the previous piece), as Keras's
    stateful Bidirectional does; that is not one pass over the whole sequence."""
    g = _g("bidi")
    m = _model("bidi")
    y, _ = _pieces(m, g["x"], [5, 4, 3])
    assert_close(y, g["y_stateful"], "bidi")
    assert not np.allclose(y, g["y_full"], rtol=1e-4, atol=1e-5)
    # The forward half alone does equal one pass.
    one = m.trace(g["x"])["bidi/forward"]
    parts, state, t0 = [], None, 0
    for n in (5, 4, 3):
        piece = g["x"][:, t0 : t0 + n]
        parts.append(m.trace(piece, initial_state=state)["bidi/forward"])
        _, state = m.forward(piece, initial_state=state, return_state=True)
        t0 += n
    assert_close(np.concatenate(parts, axis=1), one, "bidi forward pieces")


def test_masked_pieces_start_on_zero_outputs() -> None:
    """With masks, the state is carried through masked steps; a piece's leading
    masked steps output zeros (Keras's previous output starts at zeros in each call,
    whatever the state), so masked pieces equal Keras stateful, not one pass."""
    g = _g("masked")
    y, _ = _pieces(_model("masked"), g["x"], [5, 4, 3])
    assert_close(y, g["y_stateful"], "masked")
    assert not np.allclose(y, g["y_full"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["seed", "lstm", "gru", "stacked", "nested_seq", "masking", "seq2seq", "embedding"]
)
def test_sample_models_pieces(name: str) -> None:
    """The sample models (Keras 3 goldens): pieces of their golden input, carried,
    give Keras's predict output (the masked ones: their masks never start a piece)."""
    m = load_sample(name, "model.keras")
    g = golden(name)
    x = g["x"]
    T = x.shape[1]
    cut = 1 if name in ("masking", "embedding") else T // 2
    y, _ = _pieces(m, x, [cut, T - cut])
    want = g["y"]
    if name in ("masking", "embedding"):
        # Sample 0 starts on padding: the first piece is all masked there.
        y, want = y[1:], want[1:]
    assert_close(y, want, name)


def test_layout_names_every_state() -> None:
    assert layout(_model("bidi")) == {
        "bidi/forward/h": (4,),
        "bidi/forward/c": (4,),
        "bidi/backward/h": (4,),
        "bidi/backward/c": (4,),
    }
    assert list(layout(_model("cells"))) == ["cells/cell_0/h", "cells/cell_0/c", "cells/cell_1/h"]


def test_missing_keys_start_from_zero() -> None:
    g = _g("lstm")
    m = _model("lstm")
    x = g["x"]
    zeros = {"lstm/h": np.zeros((3, 5), np.float32)}
    np.testing.assert_array_equal(m.forward(x, initial_state=zeros), m.forward(x))
    np.testing.assert_array_equal(m.forward(x, initial_state={}), m.forward(x))
    only_c = {"lstm/c": np.ones((3, 5), np.float32)}
    both = {"lstm/h": np.zeros((3, 5), np.float32), "lstm/c": np.ones((3, 5), np.float32)}
    np.testing.assert_array_equal(
        m.forward(x, initial_state=only_c), m.forward(x, initial_state=both)
    )


def test_bad_states_are_input_errors() -> None:
    m = _model("lstm")
    x = _g("lstm")["x"]
    with pytest.raises(InputArrayError, match=r"shape \(3, 4\).*\(N=3, 5\)"):
        m.forward(x, initial_state={"lstm/h": np.zeros((3, 4))})
    with pytest.raises(InputArrayError, match=r"\(N=3, 5\)"):
        m.forward(x, initial_state={"lstm/h": np.zeros((2, 5))})
    with pytest.raises(InputArrayError, match=r"no state 'lstm/x'.*lstm/h, lstm/c"):
        m.forward(x, initial_state={"lstm/x": np.zeros((3, 5))})
    with pytest.raises(InputArrayError, match="dtype"):
        m.forward(x, initial_state={"lstm/h": np.array([["a"] * 5] * 3)})


def test_graph_states_cannot_be_given() -> None:
    """A layer whose initial state is a tensor of the model takes no key."""
    m = load_sample("return_state", "model.keras")
    assert [k for k in layout(m)] == ["lstm/h", "lstm/c"]
    wild = Path(__file__).resolve().parents[2] / "shared" / "wild-models"
    path = wild / "gh_15louafi_katakana_seq2seq" / "model.h5"
    if not path.is_file():
        pytest.skip("wild models not here")
    s2s = rnninspect.load_model(path)
    with pytest.raises(InputArrayError, match="from the model's graph"):
        s2s.forward_all(
            [np.ones((1, 85), np.int64), np.ones((1, 45), np.int64)],
            initial_state={"lstm_2/h": np.zeros((1, 64))},
        )


def test_return_state_of_multi_output_and_trace() -> None:
    m = load_sample("bidi_none", "model.keras")
    x = golden("bidi_none")["x"]
    ys, state = m.forward_all(x, return_state=True)
    for a, b in zip(ys, m.forward_all(x), strict=True):
        np.testing.assert_array_equal(a, b)
    tr = m.trace(x)
    np.testing.assert_array_equal(
        state["bidirectional/forward/h"], tr["bidirectional/forward"][:, -1]
    )
    np.testing.assert_array_equal(
        state["bidirectional/backward/h"], tr["bidirectional/backward"][:, -1]
    )
    h0 = {"bidirectional/forward/h": np.ones((4, 4), np.float32)}
    assert not np.allclose(
        m.trace(x, initial_state=h0)["bidirectional/forward"], tr["bidirectional/forward"]
    )


# --------------------------------------------------------------------- the stepper

STEPPABLE = ["simple_rnn", "lstm", "gru", "gru_v1", "stacked", "cells", "masked", "last_state"]


@pytest.mark.parametrize("name", STEPPABLE)
def test_stepper_equals_forward(name: str) -> None:
    """Step by step, the same numbers as ``forward`` (the same float32 arithmetic),
    and the same states as the last ``forward(return_state=True)``."""
    g = _g(name)
    m = _model(name)
    x = g["x"]
    s = m.stepper(batch=x.shape[0])
    steps = np.stack([s.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    whole, ends = m.forward(x, return_state=True)
    if whole.ndim == 3:
        np.testing.assert_array_equal(steps, whole)
    else:
        np.testing.assert_array_equal(steps[:, -1], whole)
    for key, value in s.states.items():
        np.testing.assert_array_equal(value, ends[key])
    assert_close(
        steps if whole.ndim == 3 else steps[:, -1], g["y_full"], f"{name}: stepper vs Keras"
    )


def test_stepper_reset_and_initial_state() -> None:
    g = _g("lstm")
    m = _model("lstm")
    x = g["x"]
    s = m.stepper(batch=3)
    first = [s.step(x[:, t]) for t in range(4)]
    s.reset()
    again = [s.step(x[:, t]) for t in range(4)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    given = {k[len("init/") :]: v for k, v in g.items() if k.startswith("init/")}
    s.reset(given)
    y = np.stack([s.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    assert_close(y, g["y_init"], "stepper from initial_state")
    s2 = m.stepper(batch=3, initial_state=given)
    np.testing.assert_array_equal(s2.run(x), y)


def test_stepper_checks_shape_only_and_refuses_what_needs_the_sequence() -> None:
    m = _model("lstm")
    s = m.stepper(batch=2)
    with pytest.raises(InputArrayError, match=r"\(3, 4\).*\(2, 4\)"):
        s.step(np.zeros((3, 4)))
    y = s.step(np.zeros((2, 4), np.float64))  # cast, not refused
    assert y.shape == (2, 2) and y.dtype == np.float32
    for name in ("bidi", "backwards"):
        with pytest.raises(UsageError, match=r"whole sequence|backwards"):
            _model(name).stepper(batch=1)
    with pytest.raises(UsageError, match="batch"):
        m.stepper(batch=0)


def test_stepper_returns_copies() -> None:
    m = _model("simple_rnn")
    s = m.stepper(batch=3)
    x = _g("simple_rnn")["x"]
    a = s.step(x[:, 0])
    keep = a.copy()
    s.step(x[:, 1])
    np.testing.assert_array_equal(a, keep)


def test_stepper_on_embedding_ids() -> None:
    m = load_sample("embedding", "model.keras")
    x = golden("embedding")["x"]
    s = m.stepper(batch=x.shape[0])
    y = None
    for t in range(x.shape[1]):
        y = s.step(x[:, t])
    assert y is not None
    np.testing.assert_array_equal(y, m.forward(x))


# --------------------------------------------------------------------------- CLI


def test_cli_initial_and_final_state(tmp_path: Path) -> None:
    g = _g("lstm")
    model = str(DATA / "states" / "lstm.keras")
    x = g["x"]
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, x[:, :7])
    np.save(b, x[:, 7:])
    s1, s2, y2 = tmp_path / "s1.npz", tmp_path / "s2.npz", tmp_path / "y2.npy"
    code, _, err = run_cli(
        "forward", model, str(a), "--final-state", str(s1), "-q", "-o", str(tmp_path / "y1.npy")
    )
    assert code == 0, err
    code, _, err = run_cli(
        "forward",
        model,
        str(b),
        "--initial-state",
        str(s1),
        "--final-state",
        str(s2),
        "-o",
        str(y2),
    )
    assert code == 0, err
    assert_close(np.load(y2), g["y_full"][:, 7:], "cli pieces")
    _, ends = _model("lstm").forward(x, return_state=True)
    with np.load(s2) as z:
        assert sorted(z.files) == ["lstm/c", "lstm/h"]
        for k in z.files:
            assert_close(z[k], ends[k], f"cli final {k}", rtol=1e-5, atol=1e-6)
    t = tmp_path / "t.npz"
    code, _, err = run_cli("trace", model, str(b), "--initial-state", str(s1), "-o", str(t))
    assert code == 0, err
    with np.load(t) as z:
        assert_close(z["lstm"], _model("lstm").trace(x)["lstm"][:, 7:], "cli trace piece")


def test_cli_state_errors(tmp_path: Path) -> None:
    model = str(DATA / "states" / "lstm.keras")
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{"lstm/h": np.zeros((2, 3))})
    code, _, err = run_cli(
        "forward", model, "--random", "2", "--length", "3", "--initial-state", str(bad)
    )
    assert code == 4 and "bad.npz" in err and "(N=2, 5)" in err
    code, _, err = run_cli(
        "forward",
        model,
        "--random",
        "2",
        "--length",
        "3",
        "--initial-state",
        str(tmp_path / "none.npz"),
    )
    assert code == 4 and "no such state file" in err
    code, _, err = run_cli(
        "forward", model, "--random", "2", "--length", "3", "--final-state", str(tmp_path / "f.txt")
    )
    assert code == 5
    assert not (tmp_path / "f.txt").exists()
    # A failing run leaves no final-state file.
    code, _, _ = run_cli(
        "forward", model, "--random", "2", "--length", "3", "--initial-state", str(bad),
        "--final-state", str(tmp_path / "f.npz"),
    )  # fmt: skip
    assert code == 4 and not (tmp_path / "f.npz").exists()


def test_cli_help_mentions_states() -> None:
    code, out, _ = run_cli("forward", "--help")
    assert code == 0 and "--initial-state" in out and "--final-state" in out
    assert sample("seed", "model.keras").is_file()
