"""Every sample model in every file format against Keras's own references.

* weights: every format of a model yields the very same arrays as ``model.keras``;
* summary: per-layer rows and totals equal Keras's ``model.summary()`` (expected.json);
* outputs: ``forward`` and ``trace`` equal Keras's ``predict`` and the per-layer
  sequences and final states stored in ``golden.npz``.

Weights-only files carry no architecture: with ``config=config.json`` they must match
everything; alone they assume Keras's defaults, so they match golden exactly for the
models built with defaults (``DEFAULTS_MATCH``, plus ``return_state_h`` whose head takes
the final h, which *is* the default last output), and for no other: the others either
compute something else or are refused (``INFERENCE_REFUSED``).

tf_keras files of the ``hard_sigmoid`` models (``lstm_stack``, ``gru_v1``) compute with
tf_keras's ``clip(0.2x + 0.5)`` and are compared with ``y_tfkeras``; their per-layer
states are checked against an independent reference (``rnnref``) validated on both
generations' goldens.
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rnnref
from conftest import (
    ALL_FILES,
    CHAIN_MODELS,
    EXTENDED_MODELS,
    FULL_FILES,
    FULL_MODEL_FILES,
    HARD_SIGMOID_MODELS,
    KERAS3,
    MODEL_FILES,
    MODELS,
    NO_TFKERAS,
    README_MODELS,
    TFKERAS,
    TFKERAS_FILES,
    WEIGHTS_ONLY_FILES,
    WEIGHTS_ONLY_MODEL_FILES,
    assert_close,
    assert_same_weights,
    check_golden,
    computing,
    expected,
    expected_trace_keys,
    golden,
    golden_outputs,
    golden_states,
    hard_sigmoid_layers,
    keras_config,
    load_sample,
    sample,
    semantics_of,
    weighted,
)

import rnninspect
from rnninspect.model import LSTM, Bidirectional, Recurrent, Ref
from rnninspect.render import summary_dict
from rnninspect.summary import Summary

# This file's per-format checks know the chain models (the first round's); the graph
# models have theirs in test_graphs.py.
MODELS = [m for m in MODELS if m in CHAIN_MODELS]
MODEL_FILES = [(m, f) for m, f in MODEL_FILES if m in CHAIN_MODELS]
FULL_MODEL_FILES = [(m, f) for m, f in FULL_MODEL_FILES if m in CHAIN_MODELS]
WEIGHTS_ONLY_MODEL_FILES = [(m, f) for m, f in WEIGHTS_ONLY_MODEL_FILES if m in CHAIN_MODELS]
NO_TFKERAS = [m for m in NO_TFKERAS if m in CHAIN_MODELS]
HARD_SIGMOID_MODELS = [m for m in HARD_SIGMOID_MODELS if m in CHAIN_MODELS]

# Models whose architecture is exactly what a weights-only loader assumes: tanh/sigmoid
# recurrent layers, concat Bidirectional merge, linear Dense head, return_sequences on
# all recurrent layers but the last, no go_backwards, no masking, no return_state, no
# nesting. Established by reading each config.json (and checked against the configs
# below, so this list cannot silently drift).
DEFAULTS_MATCH = {
    "seed", "seed_sequential", "functional", "nobias", "stacked", "variable_t",  # SimpleRNN
    "lstm", "gru", "bidi_concat",
}  # fmt: skip
# Not built with the defaults, yet computing the same: SimpleRNN(return_state,
# return_sequences) -> Dense on the final h, which is the default last output.
DEFAULTS_EQUIVALENT = {"return_state_h"}
# Weights alone cannot even form a chain: nested models (one weight group holding
# several layers) and non-concat Bidirectional merges feeding a further layer.
INFERENCE_REFUSED = {"bidi_ave", "bidi_masked", "bidi_mul", "bidi_sum", "nested_func", "nested_seq"}

RECURRENT_CLASSES = ("SimpleRNN", "LSTM", "GRU")
CONTAINER_CLASSES = ("Sequential", "Functional", "Model")


def test_sample_set_is_complete() -> None:
    """Guard: a vanishing sample set would make the parametrised tests vacuous."""
    assert set(README_MODELS) | set(EXTENDED_MODELS) <= set(MODELS)
    assert NO_TFKERAS == ["lstm_jax"]
    for model in MODELS:
        have = {f for m, f in MODEL_FILES if m == model}
        want = set(ALL_FILES) - {"notebook.npz"}
        if model in NO_TFKERAS:
            want -= set(TFKERAS_FILES)
            assert not have & set(TFKERAS_FILES), model
            assert expected(model)["tfkeras"] is None and expected(model)["tfkeras_skipped"]
            assert not any(k.startswith("y_tfkeras") for k in golden(model))
        assert want <= have, model
    notebooks = {m for m, f in MODEL_FILES if f == "notebook.npz"}
    assert {"seed", "functional", "variable_t", "nobias"} <= notebooks
    assert HARD_SIGMOID_MODELS == ["gru_v1", "lstm_jax", "lstm_stack"]


def _uses_keras_defaults(model: str) -> bool:
    """From the Keras config itself: would the weights-only defaults reproduce it?"""
    config = keras_config(model)
    layers = config["config"]["layers"]
    if any(layer["class_name"] in CONTAINER_CLASSES for layer in layers):
        return False  # nesting
    if _taken_output(model):
        return False  # a consumer takes a return_state output
    rec = [
        layer for layer in layers if layer["class_name"] in (*RECURRENT_CLASSES, "Bidirectional")
    ]
    for i, layer in enumerate(rec):
        cfg = layer["config"]
        if layer["class_name"] == "Bidirectional":
            if cfg.get("merge_mode", "concat") != "concat":
                return False
            cfg = cfg["layer"]["config"]
        if cfg["activation"] != "tanh" or cfg.get("recurrent_activation", "sigmoid") != "sigmoid":
            return False
        if cfg["go_backwards"] or cfg["return_state"]:
            return False
        if cfg["return_sequences"] != (i != len(rec) - 1):
            return False
    for layer in layers:
        cls = layer["class_name"]
        if cls in ("Masking", "Embedding", "TimeDistributed"):
            return False
        if cls == "Dense" and layer["config"]["activation"] != "linear":
            return False
    return True


def _inference_refuses(model: str) -> bool:
    """From the config: a nested model, or a non-concat merge whose output (narrower than
    the assumed concat) feeds a further weighted layer."""
    layers = [e for e in keras_config(model)["config"]["layers"] if e["class_name"] != "InputLayer"]
    if any(e["class_name"] in CONTAINER_CLASSES for e in layers):
        return True
    for i, e in enumerate(layers):
        narrowing = e["class_name"] == "Bidirectional" and e["config"]["merge_mode"] not in (
            "concat",
            None,
        )
        if narrowing and any(f["class_name"] != "Dropout" for f in layers[i + 1 :]):
            return True
    return False


def test_defaults_match_list_agrees_with_configs() -> None:
    assert {m for m in MODELS if _uses_keras_defaults(m)} == DEFAULTS_MATCH
    assert {m for m in MODELS if _inference_refuses(m)} == INFERENCE_REFUSED
    assert not DEFAULTS_EQUIVALENT & (DEFAULTS_MATCH | INFERENCE_REFUSED)


def _load(model: str, name: str, with_config: bool = False) -> rnninspect.Model:
    # Loaded once per session and shared (the loader forks per load: ~50 ms each).
    return load_sample(model, name, with_config)  # type: ignore[no-any-return]


def _reference(model: str) -> rnninspect.Model:
    """The model's Keras 3 file (tf_keras's for a model Keras 3 cannot build)."""
    name = "model.keras" if sample(model, "model.keras").is_file() else "tfkeras.keras"
    return load_sample(model, name)  # type: ignore[no-any-return]


def _id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}/{pair[1]}"


# --------------------------------------------------------------------------- (a) weights


@pytest.mark.parametrize("pair", FULL_MODEL_FILES, ids=_id)
def test_full_file_weights_equal_keras_zip(pair: tuple[str, str]) -> None:
    model, name = pair
    got = _load(model, name)
    ref = _reference(model)
    assert [(la.name, la.class_name) for la in computing(got.layers)] == [
        (lb.name, lb.class_name) for lb in computing(ref.layers)
    ]
    assert_same_weights(got.layers, ref.layers, f"{model}/{name}")
    assert got.source.architecture == "config"


@pytest.mark.parametrize("pair", WEIGHTS_ONLY_MODEL_FILES, ids=_id)
def test_weights_only_with_config_weights_equal_keras_zip(pair: tuple[str, str]) -> None:
    model, name = pair
    got = _load(model, name, with_config=True)
    ref = _reference(model)
    assert [(la.name, la.class_name) for la in computing(got.layers)] == [
        (lb.name, lb.class_name) for lb in computing(ref.layers)
    ]
    assert_same_weights(got.layers, ref.layers, f"{model}/{name} + config")


INFERABLE_WEIGHTS_ONLY = [p for p in WEIGHTS_ONLY_MODEL_FILES if p[0] not in INFERENCE_REFUSED]
REFUSED_WEIGHTS_ONLY = [p for p in WEIGHTS_ONLY_MODEL_FILES if p[0] in INFERENCE_REFUSED]


@pytest.mark.parametrize("pair", INFERABLE_WEIGHTS_ONLY, ids=_id)
def test_weights_only_alone_weights_equal_keras_zip(pair: tuple[str, str]) -> None:
    model, name = pair
    got = _load(model, name)
    ref = _reference(model)
    assert_same_weights(weighted(got.layers), weighted(ref.layers), f"{model}/{name}")
    assert got.source.architecture == "inferred"
    assert got.source.assumptions, "an inferred architecture must say what it assumed"
    if name != "notebook.npz":  # the notebook convention has no layer names
        assert [la.name for la in weighted(got.layers)] == [lb.name for lb in weighted(ref.layers)]


@pytest.mark.parametrize("pair", REFUSED_WEIGHTS_ONLY, ids=_id)
def test_weights_only_alone_refused_when_no_chain_fits(pair: tuple[str, str]) -> None:
    """Nested models and narrowing merges cannot be recovered from shapes: a clear
    ModelError (never a wrong model); with the config they load (tests above)."""
    model, name = pair
    with pytest.raises(rnninspect.ModelError, match=re.escape(str(sample(model, name)))):
        _load(model, name)


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param(p, id=_id(p), marks=[])
        for p in REFUSED_WEIGHTS_ONLY
        if p[0].startswith("nested")
    ],
)
def test_weights_only_alone_nested_model_refusal_points_to_config(pair: tuple[str, str]) -> None:
    """The refusal of a nested model says so and names --config, whatever the file kind."""
    model, name = pair
    with pytest.raises(rnninspect.ModelError) as info:
        _load(model, name)
    assert "nested model" in str(info.value) and "--config" in str(info.value)


@pytest.mark.parametrize("pair", INFERABLE_WEIGHTS_ONLY, ids=_id)
def test_inferred_layers_are_a_subsequence_of_the_real_ones(pair: tuple[str, str]) -> None:
    """Inference may leave weightless layers out, but must not invent layers."""
    model, name = pair
    got = [la.class_name for la in computing(_load(model, name).layers)]
    real = iter(la.class_name for la in _reference(model).layers)
    assert all(cls in real for cls in got), f"{got} is not a subsequence of the real chain"


# --------------------------------------------------------------------------- (b) summary


def _rows(summary: Summary) -> list[tuple[object, ...]]:
    """rnninspect's rows with nested models expanded into their own layers (the
    top-level rows themselves are checked against Keras's in _top_rows_match)."""
    return [
        (li.name, li.type, _shape_of(li), li.params)
        for top in summary.layers
        for li in (top.layers or [top])
    ]


def _shape_of(li: Any) -> list[Any]:
    """One output's shape, or (as Keras lists them) every output's."""
    if len(li.output_shapes) > 1:
        return [list(s) for s in li.output_shapes]
    return list(li.output_shape)


def _top_rows_match(summary: Summary, flavour: dict[str, Any]) -> None:
    """A nested model is one row, as in Keras's summary: name, class and params."""
    ours = [(li.name, li.type, li.params) for li in summary.layers]
    keras = [(r["name"], r["class_name"], r["params"]) for r in flavour["layers"]]
    assert ours == keras


def _taken_output(model: str) -> dict[str, int]:
    """Layer name -> which of its outputs flows on (a consumer's tensor index, from the
    Keras config; absent when nothing consumes it or it is output 0)."""
    out: dict[str, int] = {}

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            history = obj.get("keras_history")
            if isinstance(history, list) and len(history) == 3 and history[2]:
                out[history[0]] = history[2]
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(keras_config(model)["config"]["layers"])
    return out


def _flat_expected_rows(model: str, flavour: dict[str, Any]) -> list[tuple[object, ...]]:
    """Keras's summary rows as rnninspect's flat chain shows them.

    * A nested model's row (class Sequential/Functional) is replaced by its own
      summary's rows (``inner_layers``), without the inner model's InputLayer row; the
      nested row's params and output shape must be those of its inner rows.
    * A multi-output layer's row (LSTM/SimpleRNN with return_state, Bidirectional with
      merge_mode=None) lists one shape per output, as rnninspect's graph does."""
    rows: list[tuple[object, ...]] = []
    for row in flavour["layers"]:
        name, cls, shape, params = (
            row["name"],
            row["class_name"],
            row["output_shape"],
            row["params"],
        )
        if cls in CONTAINER_CLASSES:
            inner = flavour["inner_layers"][name]
            inner_rows = [r for r in inner["layers"] if r["class_name"] != "InputLayer"]
            assert sum(r["params"] for r in inner_rows) == params == inner["total_params"]
            assert inner_rows[-1]["output_shape"] == shape
            rows += _flat_expected_rows(model, {"layers": inner_rows, "inner_layers": {}})
            continue
        rows.append((name, cls, shape, params))
    return rows


def _check_totals(s: Summary, model: str, flavour: dict[str, Any]) -> None:
    assert s.total_params == flavour["total_params"]
    assert s.trainable_params == flavour["trainable_params"]
    assert s.non_trainable_params == flavour["non_trainable_params"]
    d = summary_dict(s)
    assert d["total_params"] == flavour["total_params"]
    assert d["trainable_params"] == flavour["trainable_params"]
    assert d["non_trainable_params"] == flavour["non_trainable_params"]
    assert [layer["params"] for layer in d["layers"]] == [r["params"] for r in flavour["layers"]]


def test_flat_expected_rows_expand_nested_models_and_pick_outputs() -> None:
    """Guard for the expansion itself, on hand-checked cases."""
    nested = _flat_expected_rows("nested_seq", expected("nested_seq")["keras3"])
    assert [r[0] for r in nested] == ["simple_rnn", "dropout", "lstm", "gru", "dense"]
    func = _flat_expected_rows("nested_func", expected("nested_func")["tfkeras"])
    assert [r[0] for r in func] == ["input_2", "lstm", "dense", "gru", "dense_1"]
    state = _flat_expected_rows("return_state", expected("return_state")["keras3"])
    assert state[1] == ("lstm", "LSTM", [[None, 5], [None, 5], [None, 5]], 180)
    state_h = _flat_expected_rows("return_state_h", expected("return_state_h")["keras3"])
    assert state_h[1] == ("simple_rnn", "SimpleRNN", [[None, 10, 5], [None, 5]], 45)
    bidi = _flat_expected_rows("bidi_none", expected("bidi_none")["keras3"])
    assert bidi[1] == ("bidirectional", "Bidirectional", [[None, 8, 4], [None, 8, 4]], 64)


@pytest.mark.parametrize("pair", FULL_MODEL_FILES, ids=_id)
def test_full_file_summary_equals_keras(pair: tuple[str, str]) -> None:
    model, name = pair
    flavour = expected(model)["tfkeras" if name in TFKERAS_FILES else "keras3"]
    s = _load(model, name).summary()
    # Keras lists an InputLayer row for Functional models only (expected "in_summary").
    assert any(li.type == "InputLayer" for li in s.layers) == flavour["in_summary"]
    assert _rows(s) == _flat_expected_rows(model, flavour)
    _top_rows_match(s, flavour)
    _check_totals(s, model, flavour)


@pytest.mark.parametrize("pair", WEIGHTS_ONLY_MODEL_FILES, ids=_id)
def test_weights_only_with_config_summary_equals_keras(pair: tuple[str, str]) -> None:
    model, name = pair
    # The architecture (names, InputLayer row) comes from the Keras 3 config.json.
    flavour = expected(model)["keras3"]
    s = _load(model, name, with_config=True).summary()
    assert any(li.type == "InputLayer" for li in s.layers) == flavour["in_summary"]
    assert _rows(s) == _flat_expected_rows(model, flavour)
    _top_rows_match(s, flavour)
    _check_totals(s, model, flavour)


@pytest.mark.parametrize("pair", INFERABLE_WEIGHTS_ONLY, ids=_id)
def test_weights_only_alone_summary_counts_equal_keras(pair: tuple[str, str]) -> None:
    model, name = pair
    flavour = expected(model)["tfkeras" if name in TFKERAS_FILES else "keras3"]
    s = _load(model, name).summary()
    assert [li.params for li in s.layers if li.params] == [
        row["params"] for row in flavour["layers"] if row["params"]
    ]
    assert s.total_params == flavour["total_params"]
    assert s.trainable_params == flavour["trainable_params"]
    assert s.non_trainable_params == flavour["non_trainable_params"]
    assert s.assumptions


@pytest.mark.parametrize("pair", MODEL_FILES, ids=_id)
def test_summary_bytes_are_the_weights_bytes(pair: tuple[str, str]) -> None:
    model, name = pair
    m = _load(model, name, with_config=name in ("model.weights.h5", "tfkeras_weights.h5"))
    n_floats = expected(model)["keras3"]["total_params"]
    assert m.summary().bytes == 4 * n_floats  # every sample weight is float32


# --------------------------------------------------------------------------- (c) outputs


def _semantics(name: str, with_config: bool = False) -> str:
    """tf_keras files compute tf_keras's hard_sigmoid (0.2x + 0.5); weights-only files
    under the Keras 3 config.json compute Keras 3's (the config's generation decides)."""
    return semantics_of(name, with_config)


@pytest.mark.parametrize("pair", FULL_MODEL_FILES, ids=_id)
def test_full_file_matches_golden(pair: tuple[str, str]) -> None:
    model, name = pair
    m = _load(model, name)
    check_golden(m, model, f"{model}/{name}", semantics=_semantics(name))
    if name in TFKERAS_FILES and model not in HARD_SIGMOID_MODELS:
        # Without hard_sigmoid both generations agree: Keras 3's predict too.
        g = golden(model)
        for a, b in zip(m.forward_all(g["x"]), golden_outputs(model, KERAS3), strict=True):
            assert_close(a, b, f"{model}/{name}: vs Keras 3 predict")


@pytest.mark.parametrize("pair", WEIGHTS_ONLY_MODEL_FILES, ids=_id)
def test_weights_only_with_config_matches_golden(pair: tuple[str, str]) -> None:
    model, name = pair
    m = _load(model, name, with_config=True)
    check_golden(m, model, f"{model}/{name} + config", semantics=_semantics(name, True))


@pytest.mark.parametrize(
    "pair",
    [p for p in WEIGHTS_ONLY_MODEL_FILES if p[0] in DEFAULTS_MATCH | DEFAULTS_EQUIVALENT],
    ids=_id,
)
def test_weights_only_alone_matches_golden_for_default_models(pair: tuple[str, str]) -> None:
    model, name = pair
    m = _load(model, name)
    assert m.source.assumptions
    check_golden(m, model, f"{model}/{name} (defaults)", _semantics(name), by_name=False)


@pytest.mark.parametrize(
    "pair",
    [p for p in INFERABLE_WEIGHTS_ONLY if p[0] not in DEFAULTS_MATCH | DEFAULTS_EQUIVALENT],
    ids=_id,
)
def test_weights_only_alone_differs_for_non_default_models(pair: tuple[str, str]) -> None:
    """These models were not built with the defaults: alone, the file cannot reproduce
    Keras, and the loader must say what it assumed."""
    model, name = pair
    m = _load(model, name)
    assert m.source.assumptions
    assert m.source.architecture == "inferred"
    g = golden(model)
    ys = m.forward_all(g["x"])
    want_ys = golden_outputs(model, _semantics(name))
    same_y = len(ys) == len(want_ys) and all(
        a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-5)
        for a, b in zip(ys, want_ys, strict=True)
    )
    states = m.trace(g["x"])
    want = golden_states(model)
    same_states = len(states) >= len(want) and all(
        k in states
        and states[k].shape == v.shape
        and np.allclose(states[k], v, rtol=1e-4, atol=1e-5)
        for k, v in want.items()
    )
    assert not (same_y and same_states)


def test_every_golden_key_is_checked() -> None:
    """Guard: check_golden compares x, y*, state/* and final/* keys; nothing else may
    hide in golden.npz, and every final/ key names a traced state."""
    for model in MODELS:
        g = golden(model)
        keys = set(g)
        other = {k for k in keys if not k.startswith(("state/", "final/"))}
        assert other <= {"x", "y", "y_tfkeras", "y/0", "y/1", "y_tfkeras/0", "y_tfkeras/1"}
        traced = set(expected_trace_keys(model))
        for k in keys:
            if k.startswith("final/"):
                path, which = k[len("final/") :].rsplit("/", 1)
                assert which in ("h", "c") and path in traced, k
                assert which == "h" or f"{path}/c" in traced, k


def test_forward_on_two_outputs_points_to_forward_all() -> None:
    m = _reference("bidi_none")
    with pytest.raises(ValueError, match="forward_all"):
        m.forward(golden("bidi_none")["x"])


# ----------------------------------------------- (c2) tf_keras hard_sigmoid: a reference


def _npz(model: str) -> dict[str, np.ndarray]:
    with np.load(sample(model, "layers.npz")) as z:
        return {k: z[k] for k in z.files if k != "__config__"}


def _reference_chain(model: str, generation: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return rnnref.run_chain(keras_config(model), _npz(model), golden(model)["x"], generation)


@pytest.mark.parametrize("model", HARD_SIGMOID_MODELS)
def test_reference_reproduces_both_generations(model: str) -> None:
    """The reference with Keras 3's hard_sigmoid gives Keras 3's goldens, with tf_keras's
    it gives tf_keras's predict: it can stand in for the tf_keras per-layer states."""
    g = golden(model)
    y3, states3 = _reference_chain(model, 3)
    assert_close(y3, g["y"], f"{model}: reference (Keras 3) vs y")
    for name, seq in states3.items():
        assert_close(seq, g[f"state/{name}"], f"{model}: reference (Keras 3) {name}")
    if "y_tfkeras" in g:
        y2, _ = _reference_chain(model, 2)
        assert_close(y2, g["y_tfkeras"], f"{model}: reference (tf_keras) vs y_tfkeras")
        assert not np.allclose(y2, y3, rtol=1e-4, atol=1e-5)  # the generations differ here


def _hard_sigmoid_cases() -> list[object]:
    """(model, file, config) -> the generation whose hard_sigmoid the result must use:
    a whole-model file its writer's; a weights-only file the config's."""
    cases = []
    for model in HARD_SIGMOID_MODELS:
        for name in (*FULL_FILES, *WEIGHTS_ONLY_FILES):
            if not sample(model, name).is_file():
                continue
            if name not in WEIGHTS_ONLY_FILES:
                gen = 2 if semantics_of(name) == TFKERAS else 3
                cases.append(pytest.param(model, name, None, gen, id=f"{model}/{name}"))
                continue
            cases.append(pytest.param(model, name, "config.json", 3, id=f"{model}/{name}+k3"))
            if sample(model, "tfkeras.keras").is_file():
                for config in ("tfkeras.keras", "tfkeras_config.json"):
                    cases.append(
                        pytest.param(
                            model, name, config, 2, id=f"{model}/{name}+{config}",
                            marks=[],
                        )
                    )  # fmt: skip
    return cases


@pytest.mark.parametrize(("model", "name", "config", "generation"), _hard_sigmoid_cases())
def test_hard_sigmoid_traces_follow_the_keras_generation(
    tmp_path: Path, model: str, name: str, config: str | None, generation: int
) -> None:
    """Every traced sequence equals the reference of the generation that applies:
    tf_keras 0.2x + 0.5, Keras 3 x/6 + 0.5. Weights-only files compute as the given
    config's Keras would (Keras loads the weights into the config's model), whichever
    Keras wrote the weights; ``tfkeras_config.json`` is tfkeras.keras's config.json."""
    if config == "tfkeras_config.json":
        cfg_path = tmp_path / config
        with zipfile.ZipFile(sample(model, "tfkeras.keras")) as zf:
            cfg_path.write_bytes(zf.read("config.json"))
        m = rnninspect.load_model(sample(model, name), config=cfg_path)
    elif config is not None:
        m = rnninspect.load_model(sample(model, name), config=sample(model, config))
    else:
        m = _load(model, name)
    _, want = _reference_chain(model, generation)
    got = m.trace(golden(model)["x"])
    for layer, seq in want.items():
        assert_close(got[layer], seq, f"{model}/{name}: {layer} vs reference (Keras {generation})")
    # The layers that use hard_sigmoid really follow the generation:
    _, other = _reference_chain(model, 5 - generation)
    for layer in hard_sigmoid_layers(model):
        assert not np.allclose(got[layer], other[layer], rtol=1e-4, atol=1e-5), layer


def test_lstm_jax_is_lstm_stack_saved_by_jax() -> None:
    """Same seed: identical weights, input and (within float tolerance) goldens."""
    jax, tf = _reference("lstm_jax"), _reference("lstm_stack")
    assert_same_weights(jax.layers, tf.layers, "lstm_jax vs lstm_stack")
    gj, gt = golden("lstm_jax"), golden("lstm_stack")
    np.testing.assert_array_equal(gj["x"], gt["x"])
    for key in gj:
        np.testing.assert_allclose(gj[key], gt[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert expected("lstm_jax")["keras_backend"] == "jax"
    for name in ("model.keras", "model.h5", "model.weights.h5"):
        m = _load("lstm_jax", name)
        assert m.source.keras_version is not None and m.source.keras_version.startswith("3")


# ------------------------------------------------------------- (d) last step = final output


def _truncated(m: rnninspect.Model, upto: int) -> rnninspect.Model:
    """The model cut after layer ``upto``'s (first) call, every output of it kept."""
    layer = m.layers[upto]
    i = next(k for k, n in enumerate(m.nodes) if n.layer is layer)
    outs = [Ref(i, k) for k in range(len(m.nodes[i].output_shapes))]
    return dataclasses.replace(m, nodes=m.nodes[: i + 1], outputs=outs)


def _last_step_cases() -> list[object]:
    out = []
    for model in MODELS:
        m = _reference(model)
        for i, layer in enumerate(m.layers):
            if isinstance(layer, (Recurrent, Bidirectional)) and not layer.return_sequences:
                out.append(pytest.param(model, i, id=f"{model}/{layer.name}"))
    return out


def _merge(mode: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return {
        "concat": lambda: np.concatenate([a, b], axis=-1),
        "sum": lambda: a + b,
        "ave": lambda: (a + b) / 2,
        "mul": lambda: a * b,
    }[mode]()


@pytest.mark.parametrize(("model", "index"), _last_step_cases())
@pytest.mark.parametrize("name", ["model.keras", "tfkeras.h5", "layers.npz"])
def test_trace_last_step_is_the_layer_output(model: str, index: int, name: str) -> None:
    """What a layer without return_sequences passes on is the last step of its trace:
    h (or, with return_state, the final h / c the next layer takes); for a Bidirectional,
    the merge of both directions' last processed steps. And Keras agrees."""
    if not sample(model, name).is_file():
        pytest.skip(f"{model} has no {name} ({model} in NO_TFKERAS)")
    m = _load(model, name)
    layer = m.layers[index]
    g = golden(model)
    finals = _truncated(m, index).forward_all(g["x"])  # output (N, M), then states
    final = finals[0]
    trace = m.trace(g["x"])
    keras_ok = semantics_of(name) == KERAS3 or not hard_sigmoid_layers(model)
    if isinstance(layer, Bidirectional):
        fwd, bwd = trace[f"{layer.name}/forward"], trace[f"{layer.name}/backward"]
        assert layer.merge_mode is not None
        np.testing.assert_array_equal(final, _merge(layer.merge_mode, fwd[:, -1], bwd[:, -1]))
        want = _merge(
            layer.merge_mode,
            g[f"state/{layer.name}/forward"][:, -1],
            g[f"state/{layer.name}/backward"][:, -1],
        )
        assert_close(final, want, f"{model}: {layer.name} output")
        return
    assert isinstance(layer, Recurrent)
    seq = trace[layer.name]
    assert final.shape == (seq.shape[0], seq.shape[2])
    np.testing.assert_array_equal(seq[:, -1], final)
    if layer.return_state:  # [output, h] or [output, h, c]: h is the output's last step
        np.testing.assert_array_equal(finals[1], final)
        if isinstance(layer, LSTM):
            np.testing.assert_array_equal(trace[f"{layer.name}/c"][:, -1], finals[2])
            if keras_ok and f"final/{layer.name}/c" in g:
                assert_close(finals[2], g[f"final/{layer.name}/c"], f"{model}: final c")
    # And both are Keras's: the last element of its return_sequences output.
    if keras_ok:
        assert_close(final, g[f"state/{layer.name}"][:, -1], f"{model}: {layer.name} output")


def test_last_step_cases_cover_masks_and_backwards() -> None:
    cases = {p.id for p in _last_step_cases()}  # type: ignore[attr-defined]
    assert "embedding/simple_rnn" in cases  # masked input (mask_zero)
    assert "backwards/simple_rnn_1" in cases  # go_backwards
    assert "stacked/enc2" in cases
    assert "masked_backwards/gru" in cases  # masked + go_backwards, GRU
    assert "bidi_masked/bidirectional_1" in cases  # masked Bidirectional, ave
    assert "return_state/lstm" in cases  # the final c flows on
    assert "return_state_h/simple_rnn" not in cases  # returns sequences (h flows on)


def _head_input(model: str, m: rnninspect.Model, last: Recurrent | Bidirectional) -> np.ndarray:
    """Keras's own value of what the last recurrent layer passes on, from golden."""
    g = golden(model)
    if isinstance(last, Bidirectional):
        return _merge(
            last.merge_mode or "concat",
            g[f"state/{last.name}/forward"][:, -1],
            g[f"state/{last.name}/backward"][:, -1],
        )
    return golden_states(model)[last.name][:, -1]  # Keras's own h_T


@pytest.mark.parametrize("model", [*sorted(DEFAULTS_MATCH | DEFAULTS_EQUIVALENT), "tanh_dense"])
def test_dense_head_applied_to_last_state_gives_keras_output(model: str) -> None:
    """y = head(h_T): the chain after the last recurrent layer, applied to its output."""
    m = _reference(model)
    g = golden(model)
    last_rec = max(
        i for i, layer in enumerate(m.layers) if isinstance(layer, (Recurrent, Bidirectional))
    )
    h = _head_input(model, m, m.layers[last_rec]).astype(np.float64)  # type: ignore[arg-type]
    for layer in m.layers[last_rec + 1 :]:
        if not layer.weights():
            continue
        h = h @ layer.kernel.astype(np.float64)
        if layer.bias is not None:
            h = h + layer.bias
        if layer.activation == "relu":
            h = np.maximum(h, 0)
        else:
            assert layer.activation == "linear"
    assert_close(h, g["y"].astype(np.float64), f"{model}: head(h_T) vs Keras predict")


# --------------------------------------------------------------------------- (e) symbols


def _symbols(m: rnninspect.Model) -> dict[str, list[tuple[str, str]]]:
    return {li.name: [(w.name, w.symbol) for w in li.weights] for li in m.summary().layers}


@pytest.mark.parametrize(
    "name",
    [
        "model.keras",
        "model.h5",
        "tfkeras.keras",
        "tfkeras.h5",
        "layers.npz",
        "notebook.npz",
        "model.weights.h5",
        "tfkeras_weights.h5",
    ],
)
def test_seed_symbols_and_dims(name: str) -> None:
    s = _load("seed", name).summary()
    sym = {li.name: [(w.name, w.symbol) for w in li.weights] for li in s.layers if li.weights}
    assert sym == {
        "simple_rnn": [("kernel", "(D,M)"), ("recurrent_kernel", "(M,M)"), ("bias", "(M,)")],
        "dense": [("kernel", "(M,K)"), ("bias", "(K,)")],
    }
    if s.architecture == "config":
        assert s.dims == {"T": 10, "D": 3, "M": 5, "K": 2}
    else:  # weights alone: T is unknown (variable)
        assert s.dims == {"T": None, "D": 3, "M": 5, "K": 2}
    assert summary_dict(s)["dims"] == s.dims


def test_stacked_symbols_use_numbered_m() -> None:
    s = _reference("stacked").summary()
    assert _symbols(_reference("stacked")) == {
        "enc1": [("kernel", "(D,M1)"), ("recurrent_kernel", "(M1,M1)"), ("bias", "(M1,)")],
        "drop": [],
        "enc2": [("kernel", "(M1,M2)"), ("recurrent_kernel", "(M2,M2)"), ("bias", "(M2,)")],
        "out": [("kernel", "(M2,K)"), ("bias", "(K,)")],
    }
    assert s.dims["M1"] == 8 and s.dims["M2"] == 6
    assert s.dims["D"] == 4 and s.dims["K"] == 3 and s.dims["T"] == 12


def _rnn_symbols(
    x: str, m: str, g: int, bias2: bool = False, prefix: str = ""
) -> list[tuple[str, str]]:
    gm = f"{g}{m}" if g > 1 else m
    return [
        (prefix + "kernel", f"({x},{gm})"),
        (prefix + "recurrent_kernel", f"({m},{gm})"),
        (prefix + "bias", f"(2,{gm})" if bias2 else f"({gm},)"),
    ]


GATED_SYMBOLS = {
    "lstm": {"lstm": _rnn_symbols("D", "M", 4), "dense": [("kernel", "(M,K)"), ("bias", "(K,)")]},
    "gru": {
        "gru": _rnn_symbols("D", "M", 3, bias2=True),
        "dense": [("kernel", "(M,K)"), ("bias", "(K,)")],
    },
    "gru_v1": {  # reset_after=False: bias (3M1,); reset_after=True: (2,3M2)
        "gru": _rnn_symbols("D", "M1", 3),
        "gru_1": _rnn_symbols("M1", "M2", 3, bias2=True),
        "dense": [("kernel", "(M2,K)"), ("bias", "(K,)")],
    },
    "bidi_concat": {  # concat doubles the width the next layer sees
        "bidirectional": _rnn_symbols("D", "M1", 4, prefix="forward/")
        + _rnn_symbols("D", "M1", 4, prefix="backward/"),
        "bidirectional_1": _rnn_symbols("2M1", "M2", 3, bias2=True, prefix="forward/")
        + _rnn_symbols("2M1", "M2", 3, bias2=True, prefix="backward/"),
        "dense": [("kernel", "(2M2,K)"), ("bias", "(K,)")],
    },
    "bidi_sum": {  # sum keeps it
        "bidirectional": _rnn_symbols("D", "M1", 4, prefix="forward/")
        + _rnn_symbols("D", "M1", 4, prefix="backward/"),
        "bidirectional_1": _rnn_symbols("M1", "M2", 3, bias2=True, prefix="forward/")
        + _rnn_symbols("M1", "M2", 3, bias2=True, prefix="backward/"),
        "dense": [("kernel", "(M2,K)"), ("bias", "(K,)")],
    },
    "acceptance_chain": {
        "embedding": [("embeddings", "(V,D)")],
        "bidirectional": _rnn_symbols("D", "M1", 4, prefix="forward/")
        + _rnn_symbols("D", "M1", 4, prefix="backward/"),
        "time_distributed": [("kernel", "(2M1,H)"), ("bias", "(H,)")],
        "gru": _rnn_symbols("H", "M2", 3, bias2=True),
        "dense_1": [("kernel", "(M2,K)"), ("bias", "(K,)")],
    },
    "nested_seq": {  # nested layers are numbered in execution order, like any other
        "simple_rnn": _rnn_symbols("D", "M1", 1),
        "lstm": _rnn_symbols("M1", "M2", 4),
        "gru": _rnn_symbols("M2", "M3", 3, bias2=True),
        "dense": [("kernel", "(M3,K)"), ("bias", "(K,)")],
    },
}


@pytest.mark.parametrize("model", sorted(GATED_SYMBOLS))
@pytest.mark.parametrize("name", ["model.keras", "tfkeras.h5", "layers.npz"])
def test_gated_and_bidirectional_symbols(model: str, name: str) -> None:
    s = _load(model, name).summary()
    leaves = [li for top in s.layers for li in (top.layers or [top])]
    got = {li.name: [(w.name, w.symbol) for w in li.weights] for li in leaves if li.weights}
    assert got == GATED_SYMBOLS[model]
    units = {r["name"]: r["units"] for r in expected(model)["recurrent_layers"]}
    n_rec = len(units)
    for i, (layer, m) in enumerate(units.items(), start=1):
        assert s.dims["M" if n_rec == 1 else f"M{i}"] == m, layer
    assert s.dims["M"] == next(iter(units.values()))


def test_variable_t_has_no_t() -> None:
    s = _reference("variable_t").summary()
    assert s.dims["T"] is None
    assert s.input_shape == (None, 3)
    assert summary_dict(s)["dims"]["T"] is None


def _dim_value(token: str, dims: dict[str, int | None]) -> int | None:
    """``"5"`` -> 5, ``"M"`` -> dims["M"], ``"4M"`` -> 4 * dims["M"] (gated layers)."""
    m = re.fullmatch(r"(\d*)([A-Za-z]\w*)?", token)
    assert m is not None, token
    factor, name = m.groups()
    if name is None:
        return int(factor)
    value = dims[name]
    return None if value is None else int(factor or 1) * value


@pytest.mark.parametrize("pair", MODEL_FILES, ids=_id)
def test_every_symbol_resolves_to_the_weight_shape(pair: tuple[str, str]) -> None:
    model, name = pair
    s = _load(model, name, with_config=pair in REFUSED_WEIGHTS_ONLY).summary()
    for li in s.layers:
        for w in li.weights:
            tokens = [t for t in w.symbol.strip("()").split(",") if t]
            assert tuple(_dim_value(t, s.dims) for t in tokens) == w.shape, (li.name, w)


@pytest.mark.parametrize("pair", [p for p in MODEL_FILES if p[1] != "notebook.npz"], ids=_id)
def test_dims_equal_keras_dims(pair: tuple[str, str]) -> None:
    model, name = pair
    with_config = name in ("model.weights.h5", "tfkeras_weights.h5")
    s = _load(model, name, with_config=with_config).summary()
    want = expected(model)["dims"]
    for key in ("T", "D", "M", "K"):
        assert s.dims[key] == want[key], key
    # Units of every recurrent layer (a Bidirectional: of each direction), nested too.
    units = {
        li.name: li.weights[1].shape[0]
        for top in s.layers
        for li in (top.layers or [top])
        if li.type in (*RECURRENT_CLASSES, "Bidirectional")
    }
    assert units == want["recurrent_units"]
    assert list(units) == [r["name"] for r in expected(model)["recurrent_layers"]]
