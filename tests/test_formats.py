"""Every sample model in every file format against Keras's own references.

* weights: every format of a model yields the very same arrays as ``model.keras``;
* summary: per-layer rows and totals equal Keras's ``model.summary()`` (expected.json);
* outputs: ``forward`` and ``trace`` equal Keras's ``predict`` and the per-layer
  sequences stored in ``golden.npz``.

Weights-only files carry no architecture: with ``config=config.json`` they must match
everything; alone they assume Keras's defaults, so they match golden exactly for the
models built with defaults (``DEFAULTS_MATCH``) and for no other.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pytest
from conftest import (
    ALL_FILES,
    FULL_MODEL_FILES,
    MODEL_FILES,
    MODELS,
    README_MODELS,
    TFKERAS_FILES,
    WEIGHTS_ONLY_MODEL_FILES,
    assert_close,
    assert_same_weights,
    config_path,
    expected,
    golden,
    golden_states,
    keras_config,
    sample,
    weighted,
)

import rnninspect
from rnninspect.model import Recurrent
from rnninspect.render import summary_dict
from rnninspect.summary import Summary

# Models whose architecture is exactly what a weights-only loader assumes: tanh
# recurrent layers, linear Dense head, return_sequences on all recurrent layers but the
# last, no go_backwards, no masking. Established by reading each config.json (and
# checked against the configs below, so this list cannot silently drift).
DEFAULTS_MATCH = {"seed", "functional", "nobias", "stacked", "variable_t"}


def test_sample_set_is_complete() -> None:
    """Guard: a vanishing sample set would make the parametrised tests vacuous."""
    assert set(README_MODELS) <= set(MODELS)
    for model in MODELS:
        have = {f for m, f in MODEL_FILES if m == model}
        assert set(ALL_FILES) - {"notebook.npz"} <= have, model
    notebooks = {m for m, f in MODEL_FILES if f == "notebook.npz"}
    assert {"seed", "functional", "variable_t", "nobias"} <= notebooks


def _uses_keras_defaults(model: str) -> bool:
    """From the Keras config itself: would the weights-only defaults reproduce it?"""
    layers = keras_config(model)["config"]["layers"]
    rec = [layer for layer in layers if layer["class_name"] == "SimpleRNN"]
    for i, layer in enumerate(rec):
        cfg = layer["config"]
        if cfg["activation"] != "tanh" or cfg["go_backwards"]:
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


def test_defaults_match_list_agrees_with_configs() -> None:
    assert {m for m in README_MODELS if _uses_keras_defaults(m)} == DEFAULTS_MATCH


def _load(model: str, name: str, with_config: bool = False) -> rnninspect.Model:
    cfg = config_path(model) if with_config else None
    return rnninspect.load_model(sample(model, name), config=cfg)


def _reference(model: str) -> rnninspect.Model:
    return rnninspect.load_model(sample(model, "model.keras"))


def _id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}/{pair[1]}"


# --------------------------------------------------------------------------- (a) weights


@pytest.mark.parametrize("pair", FULL_MODEL_FILES, ids=_id)
def test_full_file_weights_equal_keras_zip(pair: tuple[str, str]) -> None:
    model, name = pair
    got = _load(model, name)
    ref = _reference(model)
    assert [(la.name, la.class_name) for la in got.layers] == [
        (lb.name, lb.class_name) for lb in ref.layers
    ]
    assert_same_weights(got.layers, ref.layers, f"{model}/{name}")
    assert got.source.architecture == "config"


@pytest.mark.parametrize("pair", WEIGHTS_ONLY_MODEL_FILES, ids=_id)
def test_weights_only_with_config_weights_equal_keras_zip(pair: tuple[str, str]) -> None:
    model, name = pair
    got = _load(model, name, with_config=True)
    ref = _reference(model)
    assert [(la.name, la.class_name) for la in got.layers] == [
        (lb.name, lb.class_name) for lb in ref.layers
    ]
    assert_same_weights(got.layers, ref.layers, f"{model}/{name} + config")


@pytest.mark.parametrize("pair", WEIGHTS_ONLY_MODEL_FILES, ids=_id)
def test_weights_only_alone_weights_equal_keras_zip(pair: tuple[str, str]) -> None:
    model, name = pair
    got = _load(model, name)
    ref = _reference(model)
    assert_same_weights(weighted(got.layers), weighted(ref.layers), f"{model}/{name}")
    assert got.source.architecture == "inferred"
    assert got.source.assumptions, "an inferred architecture must say what it assumed"
    if name != "notebook.npz":  # the notebook convention has no layer names
        assert [la.name for la in weighted(got.layers)] == [lb.name for lb in weighted(ref.layers)]


@pytest.mark.parametrize("pair", WEIGHTS_ONLY_MODEL_FILES, ids=_id)
def test_inferred_layers_are_a_subsequence_of_the_real_ones(pair: tuple[str, str]) -> None:
    """Inference may leave weightless layers out, but must not invent layers."""
    model, name = pair
    got = [la.class_name for la in _load(model, name).layers]
    real = iter(la.class_name for la in _reference(model).layers)
    assert all(cls in real for cls in got), f"{got} is not a subsequence of the real chain"


# --------------------------------------------------------------------------- (b) summary


def _rows(summary: Summary) -> list[tuple[object, ...]]:
    return [(li.name, li.type, list(li.output_shape), li.params) for li in summary.layers]


def _expected_rows(flavour: dict[str, Any]) -> list[tuple[object, ...]]:
    return [
        (row["name"], row["class_name"], row["output_shape"], row["params"])
        for row in flavour["layers"]
    ]


def _check_totals(s: Summary, flavour: dict[str, Any]) -> None:
    assert s.total_params == flavour["total_params"]
    assert s.trainable_params == flavour["trainable_params"]
    assert s.non_trainable_params == flavour["non_trainable_params"]
    d = summary_dict(s)
    assert d["total_params"] == flavour["total_params"]
    assert d["trainable_params"] == flavour["trainable_params"]
    assert d["non_trainable_params"] == flavour["non_trainable_params"]
    assert [layer["params"] for layer in d["layers"]] == [
        row["params"] for row in flavour["layers"]
    ]


@pytest.mark.parametrize("pair", FULL_MODEL_FILES, ids=_id)
def test_full_file_summary_equals_keras(pair: tuple[str, str]) -> None:
    model, name = pair
    flavour = expected(model)["tfkeras" if name in TFKERAS_FILES else "keras3"]
    s = _load(model, name).summary()
    # Keras lists an InputLayer row for Functional models only (expected "in_summary").
    assert any(li.type == "InputLayer" for li in s.layers) == flavour["in_summary"]
    assert _rows(s) == _expected_rows(flavour)
    _check_totals(s, flavour)


@pytest.mark.parametrize("pair", WEIGHTS_ONLY_MODEL_FILES, ids=_id)
def test_weights_only_with_config_summary_equals_keras(pair: tuple[str, str]) -> None:
    model, name = pair
    # The architecture (names, InputLayer row) comes from the Keras 3 config.json.
    flavour = expected(model)["keras3"]
    s = _load(model, name, with_config=True).summary()
    assert any(li.type == "InputLayer" for li in s.layers) == flavour["in_summary"]
    assert _rows(s) == _expected_rows(flavour)
    _check_totals(s, flavour)


@pytest.mark.parametrize("pair", WEIGHTS_ONLY_MODEL_FILES, ids=_id)
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


def _check_golden(m: rnninspect.Model, model: str, by_name: bool, what: str) -> None:
    g = golden(model)
    assert_close(m.forward(g["x"]), g["y"], f"{what}: forward vs Keras predict")
    want = golden_states(model)
    got = m.trace(g["x"])
    if by_name:
        assert list(got) == list(want), f"{what}: traced layers"
    assert len(got) == len(want)
    for (gname, gval), (wname, wval) in zip(got.items(), want.items(), strict=True):
        assert_close(gval, wval, f"{what}: trace {gname} vs Keras state/{wname}")


@pytest.mark.parametrize("pair", FULL_MODEL_FILES, ids=_id)
def test_full_file_matches_golden(pair: tuple[str, str]) -> None:
    model, name = pair
    m = _load(model, name)
    _check_golden(m, model, by_name=True, what=f"{model}/{name}")
    if name in TFKERAS_FILES:
        g = golden(model)
        assert_close(m.forward(g["x"]), g["y_tfkeras"], f"{model}/{name}: vs tf_keras predict")


@pytest.mark.parametrize("pair", WEIGHTS_ONLY_MODEL_FILES, ids=_id)
def test_weights_only_with_config_matches_golden(pair: tuple[str, str]) -> None:
    model, name = pair
    _check_golden(_load(model, name, with_config=True), model, by_name=True, what=f"{model}/{name}")


@pytest.mark.parametrize(
    "pair", [p for p in WEIGHTS_ONLY_MODEL_FILES if p[0] in DEFAULTS_MATCH], ids=_id
)
def test_weights_only_alone_matches_golden_for_default_models(pair: tuple[str, str]) -> None:
    model, name = pair
    m = _load(model, name)
    assert m.source.assumptions
    _check_golden(m, model, by_name=False, what=f"{model}/{name} (defaults)")


@pytest.mark.parametrize(
    "pair",
    [p for p in WEIGHTS_ONLY_MODEL_FILES if p[0] in README_MODELS and p[0] not in DEFAULTS_MATCH],
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
    y = m.forward(g["x"])
    states = list(m.trace(g["x"]).values())
    want = list(golden_states(model).values())
    same_y = y.shape == g["y"].shape and np.allclose(y, g["y"], rtol=1e-4, atol=1e-5)
    same_states = len(states) == len(want) and all(
        a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-5)
        for a, b in zip(states, want, strict=True)
    )
    assert not (same_y and same_states)


# ------------------------------------------------------------- (d) last step = final output


def _truncated(m: rnninspect.Model, upto: int) -> rnninspect.Model:
    return dataclasses.replace(m, layers=m.layers[: upto + 1])


def _last_step_cases() -> list[object]:
    out = []
    for model in MODELS:
        m = _reference(model)
        for i, layer in enumerate(m.layers):
            if isinstance(layer, Recurrent) and not layer.return_sequences:
                out.append(pytest.param(model, i, id=f"{model}/{layer.name}"))
    return out


@pytest.mark.parametrize(("model", "index"), _last_step_cases())
@pytest.mark.parametrize("name", ["model.keras", "tfkeras.h5", "layers.npz"])
def test_trace_last_step_is_the_layer_output(model: str, index: int, name: str) -> None:
    m = _load(model, name)
    layer = m.layers[index]
    g = golden(model)
    final = _truncated(m, index).forward(g["x"])  # (N, M): the layer's own output
    seq = m.trace(g["x"])[layer.name]  # (N, T, M)
    assert final.shape == (seq.shape[0], seq.shape[2])
    np.testing.assert_array_equal(seq[:, -1], final)
    # And both are Keras's: the last element of Keras's return_sequences output.
    assert_close(final, g[f"state/{layer.name}"][:, -1], f"{model}: {layer.name} output")


def test_last_step_cases_cover_masks_and_backwards() -> None:
    cases = {p.id for p in _last_step_cases()}  # type: ignore[attr-defined]
    assert "embedding/simple_rnn" in cases  # masked input (mask_zero)
    assert "backwards/simple_rnn_1" in cases  # go_backwards
    assert "stacked/enc2" in cases


@pytest.mark.parametrize("model", [*sorted(DEFAULTS_MATCH), "tanh_dense"])
def test_dense_head_applied_to_last_state_gives_keras_output(model: str) -> None:
    """y = head(h_T): the chain after the last recurrent layer, applied to its output."""
    m = _reference(model)
    g = golden(model)
    last_rec = max(i for i, layer in enumerate(m.layers) if isinstance(layer, Recurrent))
    h_T = golden_states(model)[m.layers[last_rec].name][:, -1]  # Keras's own h_T
    h = h_T.astype(np.float64)
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
    sym = {li.name: [(w.name, w.symbol) for w in li.weights] for li in s.layers}
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
    s = _load(model, name).summary()
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
    units = {li.name: li.weights[1].shape[0] for li in s.layers if li.type == "SimpleRNN"}
    assert units == want["recurrent_units"]
