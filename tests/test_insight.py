"""diagnose / explain / verify / diff as a library, against independent references:

* state Jacobians and input sensitivities by JAX's automatic differentiation
  (``tests/data/insight_goldens.npz``, written by ``scripts/make_insight_goldens.py``
  from the Keras configs and weights alone; JAX is not needed here);
* spectral values by ``numpy.linalg`` on the raw weights;
* saturation, state norms and gates from the engine's own ``trace``;
* Keras's golden outputs (``verify``), and copies with known perturbations.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import GRAPH_MODELS, MODELS, ROOT, golden, load_sample, sample

import rnninspect
from rnninspect.insight import derivatives
from rnninspect.insight.cells import gate_activation, state_jacobians
from rnninspect.insight.diagnose import diagnose, memory_steps
from rnninspect.insight.explain import explain, explain_step
from rnninspect.insight.tape import NotDifferentiableError, input_sensitivity, record
from rnninspect.model import LSTM, Bidirectional, LayerNormalization, Recurrent, StackedRNN
from rnninspect.versions import keras_major

AD = ROOT / "tests" / "data" / "insight_goldens.npz"
AD_META: dict[str, Any] = json.loads(AD.with_suffix(".json").read_text())["models"]
AD_MODELS = sorted(AD_META)
AD_RTOL = 1e-3  # the acceptance tolerance; agreement measured: ~1e-15
# Models with a Keras 3 file (a few are tf.keras-only: time_major layers).
K3_MODELS = [m for m in MODELS if sample(m, "model.keras").is_file()]


@pytest.fixture(scope="module")
def autodiff() -> dict[str, np.ndarray]:
    with np.load(AD) as z:
        return {k: z[k] for k in z.files}


def _model(name: str) -> Any:
    return load_sample(name, "model.keras")


def _x(name: str) -> Any:
    """The golden input: ``x``, or ``[x/0, x/1, ...]`` for several inputs."""
    g = golden(name)
    if "x" in g:
        return g["x"]
    return [g[f"x/{i}"] for i in range(sum(k.startswith("x/") for k in g))]


def _cells(m: Any) -> dict[str, Recurrent]:
    out: dict[str, Recurrent] = {}
    for node in m.recurrent_nodes():
        if isinstance(node.layer, Bidirectional):
            out[f"{node.key}/forward"] = node.layer.forward
            out[f"{node.key}/backward"] = node.layer.backward
        else:
            out[node.key] = node.layer
    return out


# --- diagnose against automatic differentiation --------------------------------------


def test_autodiff_references_cover_every_kind() -> None:
    """SimpleRNN, LSTM, GRU (both reset_after), masks, go_backwards, Bidirectional;
    and every graph sample model with a diagnosed recurrent layer (several inputs
    and outputs, attention, shared layers, cells, initial states from the graph)."""
    for needed in ("seed", "lstm", "gru", "gru_v1", "masking", "bidi_concat", "bidi_masked",
                   "masked_backwards", "backwards", "embedding", "acceptance_chain"):  # fmt: skip
        assert needed in AD_META
    for name in GRAPH_MODELS:
        if any(not _skipped_kind(node.layer) for node in _any_model(name).recurrent_nodes()):
            assert name in AD_META, name
    for entry in AD_META.values():  # the reference's own forward pass is Keras's
        assert entry["max_abs_y_minus_keras"] < 1e-5
        assert entry.get("max_abs_steps_minus_layers", 0.0) < 1e-9
    multi = [m for m in AD_META if m in GRAPH_MODELS and len(_any_model(m).inputs) > 1]
    assert {"seq2seq_states", "seq2seq_gru", "shared_layers"} <= set(multi)


def _skipped_kind(layer: Any) -> bool:
    """Recurrent layers diagnose reports as not applicable: ConvLSTM, time_major."""
    cells = [layer.forward, layer.backward] if isinstance(layer, Bidirectional) else [layer]
    return not all(isinstance(c, Recurrent | StackedRNN) for c in cells) or any(
        getattr(c, "time_major", False) for c in cells
    )


def _ad_sensitivity(name: str, m: Any, autodiff: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The reference's input sensitivities, (N, T) by input name ({}: none stored,
    the model has a layer diagnose does not differentiate)."""
    one = f"{name}/input_sensitivity"
    if one in autodiff:
        return {m.inputs[0].name: autodiff[one]}
    return {
        spec.name: autodiff[f"{one}/{spec.name}"]
        for spec in m.inputs
        if f"{one}/{spec.name}" in autodiff
    }


@pytest.mark.parametrize("name", AD_MODELS)
def test_diagnose_equals_autodiff(name: str, autodiff: dict[str, np.ndarray]) -> None:
    m = _model(name)
    x = _x(name)
    d = diagnose(m, x)
    assert sorted(d.layers) == sorted(AD_META[name]["units"])
    for key, ld in d.layers.items():
        want = autodiff[f"{name}/jacobian_norm/{key}"].mean(axis=0)  # (T,)
        np.testing.assert_allclose(ld.state_jacobian_norm, want, rtol=AD_RTOL, atol=1e-12)
        assert ld.state_jacobian_norm[-1] == pytest.approx(1.0)
        assert ld.memory_steps == memory_steps(list(want))
    sens = _ad_sensitivity(name, m, autodiff)
    if not sens:  # not applicable: a finding names the layer reverse mode does not cross
        assert d.input_sensitivity is None
        assert any(f.message.startswith("input_sensitivity not available") for f in d.findings)
        return
    assert len(sens) == len(m.inputs)
    first = m.inputs[0].name
    assert d.input_sensitivity is not None
    np.testing.assert_allclose(d.input_sensitivity, sens[first].mean(0), rtol=AD_RTOL, atol=1e-12)
    if len(m.inputs) > 1:
        assert set(d.input_sensitivities) == set(sens)
        for spec in m.inputs:
            want_s = sens[spec.name].mean(axis=0)
            np.testing.assert_allclose(
                d.input_sensitivities[spec.name], want_s, rtol=AD_RTOL, atol=1e-12
            )


@pytest.mark.parametrize("name", AD_MODELS)
def test_state_jacobian_matrices_equal_autodiff(name: str, autodiff: dict[str, np.ndarray]) -> None:
    """Not only the norms: every entry of ds_{T-1}/ds_k, sample 0, every k."""
    tape = record(_model(name), _x(name))
    for unit in tape.units:
        want = autodiff[f"{name}/jacobian/{unit.key}"]
        got = state_jacobians(unit.run, 0)
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=AD_RTOL, atol=1e-12 * scale)


@pytest.mark.parametrize("name", AD_MODELS)
def test_input_sensitivity_per_sample(name: str, autodiff: dict[str, np.ndarray]) -> None:
    m = _model(name)
    sens = _ad_sensitivity(name, m, autodiff)
    if not sens:
        with pytest.raises(NotDifferentiableError):
            input_sensitivity(record(m, _x(name)))
        return
    got = input_sensitivity(record(m, _x(name)))
    for spec, g in zip(m.inputs, got, strict=True):
        np.testing.assert_allclose(g, sens[spec.name], rtol=AD_RTOL, atol=1e-12)


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_diagnose_runs_on_every_graph_model(name: str) -> None:
    """Every graph sample model: each recurrent layer diagnosed, or said not to be
    (ConvLSTM, time_major), and an input sensitivity or the reason there is none."""
    from rnninspect.render_insight import diagnose_json

    m = _any_model(name)
    d = diagnose(m, _x(name))
    for node in m.recurrent_nodes():
        mine = [k for k in d.layers if k == node.key or k.startswith(f"{node.key}/")]
        if _skipped_kind(node.layer):
            assert not mine
            said = [f for f in d.findings if f.layer == node.key]
            assert said and said[0].message.startswith("not applicable: no diagnosis for")
        else:
            assert mine, node.key
    if d.input_sensitivity is None:
        assert any(f.message.startswith("input_sensitivity ") for f in d.findings)
    doc = json.loads(diagnose_json(d))
    assert set(doc["layers"]) == set(d.layers)


@pytest.mark.parametrize("name", ["seed", "lstm", "gru", "gru_v1", "bidi_concat", "lstm_stack"])
def test_spectra_equal_numpy_linalg(name: str) -> None:
    m = _model(name)
    d = diagnose(m, _x(name))
    for key, cell in _cells(m).items():
        M = cell.units
        R = cell.recurrent_kernel.astype(np.float64)
        names = {1: ["h"], 3: ["z", "r", "h"], 4: ["i", "f", "g", "o"]}[cell.GATES]
        assert list(d.layers[key].recurrent) == names
        for k, gate in enumerate(names):
            block = R[:, k * M : (k + 1) * M]
            spec = d.layers[key].recurrent[gate]
            assert spec.spectral_radius == pytest.approx(max(abs(np.linalg.eigvals(block))))
            assert spec.spectral_norm == pytest.approx(np.linalg.norm(block, 2))


@pytest.mark.parametrize("name", ["lstm", "gru", "bidi_masked", "masked_backwards", "seed"])
def test_saturation_state_norm_and_dead_units_from_the_trace(name: str) -> None:
    """Recomputed from the engine's float32 trace (gates included)."""
    m = _model(name)
    x = _x(name)
    d = diagnose(m, x)
    trace = m.trace(x, gates=True)
    tape = record(m, x)
    for unit in tape.units:
        ld = d.layers[unit.key]
        valid = unit.run.valid()  # (N, T), processing order
        gates = {"LSTM": "ifgo", "GRU": ["z", "r", "candidate"]}.get(ld.type, [])
        for gate in gates:
            y = trace[f"{unit.key}/{gate}"].astype(np.float64)  # (N, T, M)
            hit = derivatives.bounds_hit(ld.activations[gate], 3, y)
            assert hit is not None
            frac = float(hit[valid].mean())
            # float32 against float64 may move a value across 0.99: one value at most
            assert abs(ld.saturation[gate] - frac) <= 1.0 / hit[valid].size + 1e-12
        h = unit.run.h[:, 1:]
        cell = _cells(m)[unit.key]
        if not cell.zero_output_for_mask:  # then the trace holds the kept state
            np.testing.assert_allclose(
                ld.state_norm, np.linalg.norm(trace[unit.key], axis=-1).mean(0), rtol=1e-5
            )
        np.testing.assert_allclose(ld.state_norm, np.linalg.norm(h, axis=-1).mean(0))
        assert ld.dead_units == []


def test_memory_steps_definition() -> None:
    assert memory_steps([0.001, 0.02, 0.5, 1.0]) == 3
    assert memory_steps([0.001, 0.005, 0.5, 1.0]) == 2
    assert memory_steps([0.5, 0.7, 1.0]) is None


def _scaled(name: str, factor: float, activation: str | None = None) -> Any:
    m = copy.deepcopy(_model(name))
    for node in m.recurrent_nodes():
        node.layer.recurrent_kernel = node.layer.recurrent_kernel * factor
        if activation is not None:
            node.layer.activation = activation
    return m


def test_findings_vanishing_and_exploding() -> None:
    x = golden("seed")["x"]
    small = diagnose(_scaled("seed", 0.02), x)
    ld = small.layers["simple_rnn"]
    assert ld.memory_steps is not None and ld.memory_steps <= 3
    assert any("vanishing" in f.message and f.level == "warning" for f in small.findings)
    big = diagnose(_scaled("seed", 4.0, "linear"), x)
    assert max(big.layers["simple_rnn"].state_jacobian_norm) > 10
    assert any("exploding" in f.message for f in big.findings)


def test_findings_saturation_dead_units_and_forget_bias() -> None:
    m = copy.deepcopy(_model("lstm"))
    lstm = m.layer("lstm")
    assert isinstance(lstm, LSTM)
    M = lstm.units
    assert lstm.bias is not None
    lstm.bias = lstm.bias.copy()
    lstm.bias[M : 2 * M] = -4.0  # forget gate almost closed
    lstm.bias[3 * M : 4 * M] = 30.0  # output gate saturated open
    lstm.kernel = lstm.kernel.copy()
    lstm.recurrent_kernel = lstm.recurrent_kernel.copy()
    for W in (lstm.kernel, lstm.recurrent_kernel):
        W[:, 2 * M + 1] = 0.0  # candidate of unit 1: tanh(b_g) constant
        W[:, 1] = W[:, M + 1] = 0.0
    lstm.bias[[1, M + 1, 2 * M + 1]] = [50.0, -50.0, 0.0]  # i=1, f=0, g=0: c_1 = 0
    d = diagnose(m, golden("lstm")["x"])
    ld = d.layers["lstm"]
    assert ld.saturation["o"] == pytest.approx(1.0)
    assert 1 in ld.dead_units
    messages = " | ".join(f.message for f in d.findings)
    assert "saturated o" in messages and "dead units" in messages
    assert "forget-gate bias" in messages


def test_not_differentiable_layer_is_a_finding_not_a_number() -> None:
    m = copy.deepcopy(_model("seed"))
    head = next(n for n in m.nodes if n.layer.name == "dense")
    head.layer = LayerNormalization(name="norm", axes=(-1,), gamma=None, beta=None)
    head.output_shapes = [(5,)]
    d = diagnose(m, golden("seed")["x"])
    assert d.input_sensitivity is None
    found = [f for f in d.findings if f.layer == "norm"]
    assert found and "not available for layer 'norm' (LayerNormalization" in found[0].message
    assert "simple_rnn" in d.layers  # the recurrent layer is still diagnosed
    with pytest.raises(NotDifferentiableError):
        input_sensitivity(record(m, golden("seed")["x"]))


def test_sensitivity_budget_refuses_with_a_finding() -> None:
    d = diagnose(_model("seq2seq"), golden("seq2seq")["x"], budget=10.0)
    assert d.input_sensitivity is None
    assert any("skipped" in f.message for f in d.findings)


@pytest.mark.parametrize("name", K3_MODELS)
def test_tape_forward_equals_the_engine(name: str) -> None:
    m = _model(name)
    x = _x(name)
    tape = record(m, x)
    for i, y in enumerate(m.forward_all(x)):
        np.testing.assert_allclose(tape.output(i), y, rtol=1e-5, atol=1e-6)


ACTIVATIONS = [*sorted(derivatives._SLOPES), "hard_sigmoid"]


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("major", [2, 3])
def test_activation_slopes_equal_central_differences(name: str, major: int) -> None:
    from rnninspect import activations

    fn = activations.get(name, major)
    u = np.linspace(-4.3, 4.3, 300)  # no kink (0, +-0.5, +-1, +-2.5, +-3, 6) on the grid
    eps = 1e-6
    fd = (fn(u + eps) - fn(u - eps)) / (2 * eps)
    np.testing.assert_allclose(derivatives.slope(name, major, u, fn(u)), fd, atol=2e-6)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_across_feature_jacobians(name: str) -> None:
    from rnninspect import activations

    rng = np.random.default_rng(0)
    u = rng.standard_normal((2, 4))
    fn = activations.get(name)
    y = fn(u)
    eps = 1e-6
    J = np.stack(
        [(fn(u + eps * e) - fn(u - eps * e)) / (2 * eps) for e in np.eye(4)], axis=-1
    )  # (N, M, M): dy_i/du_j
    mat = rng.standard_normal((2, 4, 3))
    np.testing.assert_allclose(derivatives.left(name, 3, u, y, mat), J @ mat, atol=1e-8)
    g = rng.standard_normal((2, 5, 4))  # (N, P, M)
    np.testing.assert_allclose(derivatives.right(name, 3, u, y, g), g @ J, atol=1e-8)


# --- explain ------------------------------------------------------------------------


def test_seed_explanation_reads_as_the_notebook() -> None:
    e = explain(_model("seed"))
    rnn, dense = e.layers
    assert rnn.formula == ["h_t = tanh(x_t·Wx + h_{t-1}·Wh + bh)"]
    # the notebook's own lines (/work/shared/seed-notebook.txt, "Computing manually")
    assert rnn.code == ["h = np.tanh(x[t].dot(Wx) + h_last.dot(Wh) + bh)"]
    assert dense.formula == ["y = h_T·Wo + bo"]
    assert dense.code == ["y = h.dot(Wo) + bo"]
    assert rnn.params_arithmetic == "D·M + M·M + M = 3·5 + 5·5 + 5 = 45"
    assert dense.params_arithmetic == "M·K + K = 5·2 + 2 = 12"
    assert e.total_params == 57


def test_seed_code_lines_run_the_notebook_loop() -> None:
    """The notebook's loop built from the explanation's lines gives predict's output."""
    m = _model("seed")
    rnn, dense = explain(m).layers
    Wx, Wh, bh = (a for _, a in m.layer("simple_rnn").weights())
    Wo, bo = (a for _, a in m.layer("dense").weights())
    X = golden("seed")["x"]
    for n in range(len(X)):
        scope: dict[str, Any] = {"np": np, "Wx": Wx, "Wh": Wh, "bh": bh, "Wo": Wo, "bo": bo}
        scope["x"], scope["h_last"] = X[n], np.zeros(5)
        for t in range(X.shape[1]):
            scope["t"] = t
            exec(rnn.code[0], scope)
            scope["h_last"] = scope["h"]
        exec(dense.code[0], scope)
        np.testing.assert_allclose(scope["y"], golden("seed")["y"][n], rtol=1e-5, atol=1e-6)


NOTEBOOK = ROOT.parent / "shared" / "seed-notebook.txt"


def _notebook_cells() -> dict[int, str]:
    """The notebook's code cells by number: each ``In [k]:`` body up to its output
    (the longest run of its first lines that is Python)."""
    parts = re.split(r"^In \[(\d+)\]:\n", NOTEBOOK.read_text(), flags=re.M)
    cells: dict[int, str] = {}
    for num, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = body.splitlines()
        for k in range(len(lines), 0, -1):
            try:
                compile("\n".join(lines[:k]), f"In [{num}]", "exec")
            except SyntaxError:
                continue
            cells[int(num)] = "\n".join(lines[:k])
            break
    return cells


@pytest.mark.skipif(not NOTEBOOK.is_file(), reason="../shared/seed-notebook.txt not found")
def test_seed_explanation_is_the_notebooks_manual_computation() -> None:
    """Against the notebook's own "Computing manually" cells (In [10], In [11]), read
    from the notebook: the same weight names in get_weights() order, the same shapes,
    the same NumPy lines, the same parameter counts, and a step's numbers are what
    the notebook's loop computes at that step."""
    cells = _notebook_cells()
    text = NOTEBOOK.read_text()
    m = _model("seed")
    rnn, dense = explain(m).layers
    # In [10]: the weights unpacked, named as the explanation names them
    assert cells[10].splitlines() == [
        f"{', '.join(rnn.weights)} = model.layers[1].get_weights()",
        f"{', '.join(dense.weights)} = model.layers[2].get_weights()",
    ]
    # In [9]'s shapes, in the notebook's symbols
    shapes = [w.split(" = ")[0].split()[-1] for w in rnn.weights.values()]
    assert ", ".join(shapes) in text and shapes == ["(D,M)", "(M,M)", "(M,)"]
    # In [11]: every NumPy line of the explanation is a line of the notebook's loop
    loop = [line.split("#")[0].strip() for line in cells[11].splitlines()]
    for line in rnn.code + dense.code:
        assert line in loop
    # In [7]: the parameter counts the explanation works out
    assert re.search(rf"simple_rnn \(SimpleRNN\) +\(None, 5\) +{rnn.params}\b", text)
    assert re.search(rf"dense \(Dense\) +\(None, 2\) +{dense.params}\b", text)
    assert f"Total params: {rnn.params + dense.params} " in text
    # a step, term by term, against In [11] run on the same sample up to that step
    X = golden("seed")["x"]
    weights = dict(zip(["Wx", "Wh", "bh", "Wo", "bo"], m.get_weights(), strict=True))
    for n, step in [(0, 0), (1, 4), (3, 9)]:
        s = explain_step(m, X, None, n, step)
        ran = {T: _notebook_loop(cells[11], X[n], T, weights) for T in (step, step + 1)}
        h_prev = ran[step]["h_last"]  # In [11] stopped a step earlier (T = 0: its zeros)
        assert np.array_equal(s.terms["x"], ran[step + 1]["x"][step])
        assert np.array_equal(s.terms["input_term"], X[n, step].dot(weights["Wx"]))
        np.testing.assert_allclose(s.terms["h_prev"], h_prev, rtol=1e-5, atol=1e-6)
        pre = X[n, step].dot(weights["Wx"]) + h_prev.dot(weights["Wh"]) + weights["bh"]
        np.testing.assert_allclose(s.terms["preactivation"], pre, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s.terms["h"], ran[step + 1]["h"], rtol=1e-5, atol=1e-6)


def _notebook_loop(cell: str, x: np.ndarray, T: int, weights: dict[str, Any]) -> dict[str, Any]:
    """In [11] run on one sample for its first T steps (T = 0: its loop does not run,
    nor its final print)."""
    scope: dict[str, Any] = {"np": np, "X": x[None], "M": 5, "T": T, **weights}
    code = cell if T else cell.split("for t in range(T):")[0]
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, scope)
    return scope


@pytest.mark.parametrize(
    ("name", "arith"),
    [
        ("lstm", "4·(D·M + M·M + M) = 4·(3·6 + 6·6 + 6) = 240"),
        ("gru", "3·(D·M + M·M + 2M) = 3·(3·6 + 6·6 + 2·6) = 198"),
        ("gru_v1", "3·(D·M1 + M1·M1 + M1) = 3·(3·5 + 5·5 + 5) = 135"),
        ("bidi_concat", "2·4·(D·M1 + M1·M1 + M1) = 2·4·(3·4 + 4·4 + 4) = 256"),
        ("embedding", "V·D = 20·4 = 80"),
    ],
)
def test_parameter_arithmetic(name: str, arith: str) -> None:
    e = explain(_model(name))
    expected = {row["name"]: row["params"] for row in _expected_rows(name)}
    for le in e.layers:
        assert le.params_arithmetic.endswith(f"= {le.params}")
        if le.name in expected:
            assert le.params == expected[le.name]
    assert arith in [le.params_arithmetic for le in e.layers]


def _expected_rows(name: str) -> list[dict[str, Any]]:
    return list(json.loads(sample(name, "expected.json").read_text())["keras3"]["layers"])


STEP_CASES = [
    ("seed", None, 0, 0),
    ("seed", None, 2, 9),
    ("lstm", None, 1, 4),
    ("gru", None, 3, 7),
    ("gru_v1", "gru", 0, 5),  # reset_after=False, hard_sigmoid
    ("gru_v1", "gru_1", 2, 3),  # go_backwards
    ("masked_backwards", "lstm", 1, 6),
    ("bidi_masked", "bidirectional/backward", 2, 1),
    ("bidi_masked", "bidirectional_1", 0, 8),
    ("lstm_stack", "lstm_1", 1, 11),  # relu, hard_sigmoid
]


@pytest.mark.parametrize(("name", "layer", "n", "step"), STEP_CASES)
def test_step_terms_reproduce_the_trace(name: str, layer: str | None, n: int, step: int) -> None:
    m = _model(name)
    x = _x(name)
    s = explain_step(m, x, layer, n, step)
    trace = m.trace(x, gates=True)
    key = s.layer
    T = trace[key].shape[1]
    assert s.t == (T - 1 - step if _cells(m)[key].go_backwards else step)
    if not s.masked:
        assert np.array_equal(s.terms["h"], trace[key][n, step])
    _assert_exact(s, trace, m)


def _assert_exact(s: Any, trace: dict[str, np.ndarray], m: Any) -> None:
    """``h``, ``c`` and the gates are the trace's float32 numbers bit for bit, and the
    terms reproduce each other exactly: each gate is its activation of its
    pre-activation, c and h their equations (in the engine's arrangement)."""
    from rnninspect import activations

    key, n, k, t = s.layer, s.sample, s.step, s.terms
    cell = _cells(m)[key]
    major = keras_major(m.source.keras_version)
    assert all(v.dtype == np.float32 for v in t.values())
    gates = {"LSTM": ["i", "f", "g", "o"], "GRU": ["z", "r", "candidate"]}.get(s.type, [])
    for g in gates:
        assert np.array_equal(t[g], trace[f"{key}/{g}"][n, k]), g
        act = activations.get(gate_activation(cell, g), major)
        assert np.array_equal(t[g], act(t[f"{g}_pre"])), g
    if s.masked:
        assert np.array_equal(t["h"], t["h_prev"])
    if s.type == "LSTM":
        assert np.array_equal(t["c"], trace[f"{key}/c"][n, k])
        if not s.masked:
            assert np.array_equal(t["c"], t["f"] * t["c_prev"] + t["i"] * t["g"])
            c_act = activations.get(cell.activation, major)(t["c"])
            assert np.array_equal(t["h"], t["o"] * c_act)
    elif s.type == "GRU" and not s.masked:
        hh = t["candidate"]
        assert np.array_equal(t["h"], hh + t["z"] * (t["h_prev"] - hh))
    elif s.type == "SimpleRNN" and not s.masked:
        act = activations.get(cell.activation, major)
        assert np.array_equal(t["h"], act(t["preactivation"]))
        # the engine adds the three in one product: equal to float32 rounding
        parts = t["input_term"] + t["recurrent_term"] + t["bias"]
        np.testing.assert_allclose(parts, t["preactivation"], rtol=1e-5, atol=1e-6)
    if not s.masked:  # a real step's output is its state
        assert np.array_equal(t["h"], trace[key][n, k])


@pytest.mark.parametrize("name", MODELS)
def test_step_terms_equal_the_trace_bit_for_bit(name: str) -> None:
    """Every sample, every step, every recurrent unit of every sample model (chain
    and graph: SimpleRNN, LSTM, GRU both ways, Bidirectional both directions,
    masks, go_backwards, initial states from the graph)."""
    units = _units_of(name)
    if not units:
        pytest.skip("no SimpleRNN / LSTM / GRU run on its own (ConvLSTM, time_major)")
    m = _any_model(name)
    x = _x(name)
    trace = m.trace(x, gates=True)
    for key in units:
        N, T = trace[key].shape[:2]
        for n in range(N):
            for k in range(T):
                s = explain_step(m, x, key, n, k)
                assert s.layer == key
                if k > 0 and not s.masked:
                    before = explain_step(m, x, key, n, k - 1)
                    assert np.array_equal(s.terms["h_prev"], before.terms["h"])
                _assert_exact(s, trace, m)


def _any_model(name: str) -> Any:
    return (
        _model(name)
        if sample(name, "model.keras").is_file()
        else load_sample(name, "tfkeras.keras")
    )


def _units_of(name: str) -> list[str]:
    from rnninspect.insight.explain import _units

    m = _any_model(name)
    return [u[0] for u in _units(m) if not u[2].time_major]


def test_step_terms_exact_as_the_engine_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large batch is run in chunks, a chunk split across threads: BLAS may round
    a row differently in a block of another size, so the step is computed over the
    very rows the engine ran (here chunks of 16 rows per thread; 33 rows leave one
    alone at the end)."""
    from rnninspect import engine

    monkeypatch.setattr(engine, "CHUNK_BYTES", 1)  # chunk_rows: its minimum, 16
    monkeypatch.setattr(engine, "SPLIT_WORK", 0)  # splitting always pays
    monkeypatch.setenv("RNNINSPECT_THREADS", "2")
    for name, key in [
        ("lstm", "lstm"),
        ("gru_v1", "gru_1"),
        ("bidi_masked", "bidirectional/backward"),
    ]:
        m = _model(name)
        x = np.random.default_rng(3).standard_normal((33, 10, 3)).astype(np.float32)
        if name == "bidi_masked":
            x[::3, 6:] = 0.0  # masked tails
        trace = m.trace(x, gates=True)
        for n in range(33):
            s = explain_step(m, x, key, n, 6)
            _assert_exact(s, trace, m)


def test_step_on_a_masked_step_keeps_the_state() -> None:
    x = golden("masking")["x"]
    masked = np.flatnonzero(~np.any(x[1] != 0, axis=-1))
    assert masked.size
    s = explain_step(_model("masking"), x, "simple_rnn", 1, int(masked[0]))
    assert s.masked
    assert np.array_equal(s.terms["h"], s.terms["h_prev"])


def test_model_explain_method() -> None:
    m = _model("seed")
    assert m.explain().total_params == 57
    s = m.explain(golden("seed")["x"], step=3)
    assert s.step == 3 and s.layer == "simple_rnn"


# --- verify ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", K3_MODELS)
def test_verify_passes_on_every_golden(name: str) -> None:
    v = rnninspect.verify(_model(name), sample(name, "golden.npz"))
    assert v.passed, [(c.name, c.mismatched, c.max_abs_error) for c in v.checks if not c.passed]
    g = golden(name)
    assert {c.name for c in v.checks} == {
        k for k in g if k != "x" and not k.startswith(("x/", "y_tf"))
    }
    assert [k for k in v.skipped if not k.startswith("y_tfkeras")] == []


def test_verify_counts_perturbed_values(tmp_path: Path) -> None:
    g = golden("lstm")
    y = g["y"].copy()
    y[1, 0] += 1e-3
    y[3, 1] -= 0.5  # the worst
    state = g["state/lstm"].copy()
    state[0, 2, :3] += 1e-2
    ref = dict(g, y=y, **{"state/lstm": state})
    v = rnninspect.verify(_model("lstm"), ref)
    assert not v.passed
    by = {c.name: c for c in v.checks}
    assert by["y"].mismatched == 2 and by["y"].total == 8
    assert by["y"].worst_index == (3, 1)
    assert by["y"].max_abs_error == pytest.approx(0.5, rel=1e-5)
    assert by["state/lstm"].mismatched == 3
    assert by["final/lstm/h"].passed and by["final/lstm/c"].passed


def test_verify_tolerances_and_shape_mismatch() -> None:
    g = golden("seed")
    y = g["y"] + 5e-4
    assert not rnninspect.verify(_model("seed"), {"x": g["x"], "y": y}).passed
    assert rnninspect.verify(_model("seed"), {"x": g["x"], "y": y}, atol=1e-3).passed
    v = rnninspect.verify(_model("seed"), {"x": g["x"], "y": g["y"][:, :1]})
    assert not v.passed and v.checks[0].shape == (4, 2) and v.checks[0].mismatched == 4


def _perturbed_npz(name: str, tmp_path: Path, changes: dict[str, tuple[int, ...]]) -> Path:
    with np.load(sample(name, "layers.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    for key, index in changes.items():
        arrays[key] = arrays[key].copy()
        arrays[key][index] += 0.25
    out = tmp_path / f"{name}_perturbed.npz"
    np.savez(out, **arrays)
    return out


def test_verify_fails_on_a_perturbed_model(tmp_path: Path) -> None:
    path = _perturbed_npz("gru", tmp_path, {"gru/recurrent_kernel": (0, 3)})
    v = rnninspect.verify(path, sample("gru", "golden.npz"))
    assert not v.passed
    assert {c.name for c in v.checks if not c.passed} == {"y", "state/gru"}


def _perturbed_reference(
    name: str,
) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, tuple[int, ...]]]]:
    """The golden file with known values pushed out of tolerance: in the first
    expected output (``y`` or ``y/0``) two values, the second by far the most; in
    the first recorded state sequence three. Returns the reference and, per array
    changed, (how many values, the worst index)."""
    g = {k: v for k, v in golden(name).items() if not k.startswith("y_tf")}
    out = "y" if "y" in g else "y/0"
    changes: dict[str, tuple[int, tuple[int, ...]]] = {}
    y = g[out].astype(np.float64)
    flat = y.reshape(-1)
    a, b = 0, flat.size - 1
    flat[a] += 0.01 * (1 + abs(flat[a]))
    flat[b] += 1.0 + abs(flat[b])  # the worst
    g[out] = y.astype(g[out].dtype)
    changes[out] = (2, tuple(int(i) for i in np.unravel_index(b, y.shape)))
    state = next((k for k in sorted(g) if k.startswith("state/")), None)
    if state is not None:
        st = g[state].astype(np.float64)
        idx = [
            tuple(int(i) for i in np.unravel_index(j, st.shape))
            for j in (0, st.size // 2, st.size - 1)
        ]
        for k, j in enumerate(idx):
            st[j] += (0.1, 0.2, 3.0)[k] * (1 + abs(st[j]))
        g[state] = st.astype(g[state].dtype)
        changes[state] = (3, idx[-1])
    return g, changes


@pytest.mark.parametrize("name", K3_MODELS)
def test_verify_counts_exactly_what_a_perturbed_reference_changes(name: str) -> None:
    """Every sample model, chain and graph (several outputs: y/0, y/1, ...)."""
    ref, changes = _perturbed_reference(name)
    v = rnninspect.verify(_model(name), ref)
    assert not v.passed
    failed = {c.name: c for c in v.checks if not c.passed}
    assert set(failed) == set(changes)
    for key, (count, worst) in changes.items():
        assert failed[key].mismatched == count
        assert failed[key].worst_index == worst


@pytest.mark.parametrize(
    "name", ["multi_output", "gru_state_outputs", "seq2seq_states", "bidi_none", "lstm"]
)
def test_verify_cli_exit_6_on_a_perturbed_reference(name: str, tmp_path: Path) -> None:
    from conftest import run_cli

    ref, changes = _perturbed_reference(name)
    path = tmp_path / "ref.npz"
    np.savez(path, **ref)
    code, out, err = run_cli("verify", str(sample(name, "model.keras")), str(path), "--json")
    assert code == 6, err
    doc = json.loads(out)
    by = {c["name"]: c for c in doc["checks"]}
    for key, (count, worst) in changes.items():
        assert by[key]["mismatched"] == count and by[key]["worst_index"] == list(worst)
    assert sum(c["mismatched"] != 0 for c in doc["checks"]) == len(changes)
    code, _, err = run_cli(
        "verify", str(sample(name, "model.keras")), str(sample(name, "golden.npz"))
    )
    assert code == 0, err


def _perturb_weights(name: str, tmp_path: Path) -> tuple[Path, set[str]]:
    """layers.npz with three weights changed (first, middle and last float weight:
    one value each, by 0.25); their names as diff names them."""
    with np.load(sample(name, "layers.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    keys = [
        k for k in arrays if k != "__config__" and arrays[k].dtype.kind == "f" and arrays[k].size
    ]
    picked = {keys[0], keys[len(keys) // 2], keys[-1]}
    for key in picked:
        arrays[key] = arrays[key].copy()
        arrays[key].flat[arrays[key].size // 2] += 0.25
    path = tmp_path / f"{name}_perturbed.npz"
    np.savez(path, **arrays)
    # a StackedRNNCells' cells: layers.npz says rnn/cells/0/..., diff (as trace) rnn/cell_0/...
    return path, {re.sub(r"/cells/(\d+)/", r"/cell_\1/", k) for k in picked}


@pytest.mark.parametrize("name", K3_MODELS)
def test_diff_and_verify_on_a_perturbed_model(name: str, tmp_path: Path) -> None:
    """diff finds exactly the weights changed in a copy (and nothing in the
    architecture); verify fails that copy against the golden file."""
    path, picked = _perturb_weights(name, tmp_path)
    d = rnninspect.diff(sample(name, "model.keras"), path, _x(name))
    assert not d.identical and d.architecture == []
    changed = {f"{w.layer}/{w.weight}": w for w in d.weights if w.changed}
    assert set(changed) == picked
    for w in changed.values():
        assert w.max_abs_diff == pytest.approx(0.25, rel=1e-6)
        assert w.l2_diff == pytest.approx(0.25, rel=1e-6)
    assert not rnninspect.verify(path, sample(name, "golden.npz")).passed


# --- diff -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", K3_MODELS)
def test_diff_keras_against_h5_is_identical(name: str) -> None:
    d = rnninspect.diff(_model(name), load_sample(name, "model.h5"), _x(name))
    assert d.identical, d.architecture
    assert d.weights and not any(w.changed for w in d.weights)
    d = rnninspect.diff(_model(name), load_sample(name, "layers.npz"))
    assert d.identical, d.architecture


def test_diff_finds_exactly_the_perturbed_weights(tmp_path: Path) -> None:
    changes = {"bidirectional/backward/kernel": (1, 2), "dense/bias": (0,)}
    path = _perturbed_npz("bidi_concat", tmp_path, changes)
    d = rnninspect.diff(sample("bidi_concat", "model.keras"), path, golden("bidi_concat")["x"])
    assert not d.identical and d.architecture == []
    changed = {(w.layer, w.weight): w for w in d.weights if w.changed}
    assert set(changed) == {("bidirectional", "backward/kernel"), ("dense", "bias")}
    for w in changed.values():
        assert w.max_abs_diff == pytest.approx(0.25)
        assert w.l2_diff == pytest.approx(0.25)
    assert d.outputs is not None and d.outputs[0].max_abs_diff > 0


def test_diff_architecture_changes() -> None:
    a = _model("masking")
    b = copy.deepcopy(a)
    layer = b.layer("simple_rnn")
    assert isinstance(layer, Recurrent)
    layer.activation = "relu"
    layer.go_backwards = True
    d = rnninspect.diff(a, b)
    fields = {(c.layer, c.field, c.a, c.b) for c in d.architecture}
    assert ("simple_rnn", "activation", "tanh", "relu") in fields
    assert ("simple_rnn", "go_backwards", False, True) in fields
    d = rnninspect.diff(a, _model("seed"))
    kinds = {(c.layer, c.change) for c in d.architecture}
    assert ("masking", "removed") in kinds and ("simple_rnn_1", "removed") in kinds
