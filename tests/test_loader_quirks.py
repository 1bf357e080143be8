"""File-layout quirks of other Keras generations, synthesised from the sample files.

Each variant is written with h5py/zipfile into tmp_path and must load to the same
weights as the original sample (exact) and reproduce Keras's golden outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import (
    CHAIN_MODELS,
    KERAS3,
    MODELS,
    NO_TFKERAS,
    TFKERAS,
    assert_close,
    assert_same_weights,
    check_golden,
    computing,
    config_path,
    golden,
    keras_config,
    load_sample,
    sample,
    semantics_of,
    weighted,
)
from filetools import (
    bfloat16_bits,
    datasets,
    edit_h5,
    edit_keras_zip,
    read_zip,
    rename_children,
    split_suffix,
    strings_to_fixed_bytes,
    to_bfloat16,
    widen_bfloat16,
)

import rnninspect

# The quirks below are checked on the chain models (check_golden knows them); the
# graph models' own formats are in test_graphs.py.
MODELS = [m for m in MODELS if m in CHAIN_MODELS]
SEQUENTIAL_MODELS = [m for m in MODELS if keras_config(m)["class_name"] == "Sequential"]
TFKERAS_MODELS = [m for m in MODELS if m not in NO_TFKERAS]  # models with tf_keras files


@pytest.fixture(autouse=True)
def _parse_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse the synthesised files in this process: the loader otherwise forks a child
    per file (its guard against hostile HDF5), ~50 ms each, and this module loads some
    700 files. The forking path itself is exercised on every sample file by
    test_formats.py (and by test_cli.py / test_fuzz.py)."""
    monkeypatch.setenv("RNNINSPECT_NO_FORK", "1")


def _pairs(names: list[str], models: list[str] = MODELS) -> list[tuple[str, str]]:
    """(name, model) for every sample that has that file (lstm_jax has no tf_keras ones)."""
    return [(n, m) for n in names for m in models if sample(m, n).is_file()]


def _reference(model: str) -> rnninspect.Model:
    return load_sample(model, "model.keras")  # type: ignore[no-any-return]


def _check_golden(m: rnninspect.Model, model: str, what: str, semantics: str = KERAS3) -> None:
    # Files derived from tf_keras files keep tf_keras semantics (hard_sigmoid).
    check_golden(m, model, what, semantics=semantics, by_name=False)


def _check_same_model(m: rnninspect.Model, model: str, what: str, semantics: str = KERAS3) -> None:
    ref = _reference(model)
    assert [(la.name, la.class_name) for la in computing(m.layers)] == [
        (lb.name, lb.class_name) for lb in computing(ref.layers)
    ]
    assert_same_weights(m.layers, ref.layers, what)
    check_golden(m, model, what, semantics=semantics)


# ------------------------------------------- (a) tf.keras 2.13 native layout: renamed + gaps


def _tf213_layout(renames: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """Top container ``_layer_checkpoint_dependencies``; numbering with gaps; and no
    ``name`` attributes on ``vars`` groups (only Keras 3 writes those)."""

    def edit(h5: h5py.File) -> None:
        h5.move("layers", "_layer_checkpoint_dependencies")
        top = h5["_layer_checkpoint_dependencies"]
        if renames is not None:
            mapping = dict(renames)
        else:  # class x, x_1, x_2 -> x, x_2, x_4 (tf.keras 2.13 skips numbers)
            by_base: dict[str, list[tuple[int, str]]] = {}
            for name in top:
                base, n = split_suffix(name)
                if base != "input_layer":
                    by_base.setdefault(base, []).append((n, name))
            mapping = {}
            for base, items in by_base.items():
                for i, (_, name) in enumerate(sorted(items)):
                    new = base if i == 0 else f"{base}_{2 * i}"
                    if new != name:
                        mapping[name] = new
        rename_children(top, mapping)
        for obj in [h5, *_groups(h5)]:
            if "name" in obj.attrs:
                del obj.attrs["name"]

    return edit


def _groups(h5: h5py.File) -> list[h5py.Group]:
    out: list[h5py.Group] = []
    h5.visititems(lambda _n, obj: out.append(obj) if isinstance(obj, h5py.Group) else None)
    return out


STACKED_213 = {"dense": "dense_2", "simple_rnn_1": "simple_rnn_4", "dropout": "dropout_3"}


def test_stacked_tf213_group_names_are_as_intended(tmp_path: Path) -> None:
    """Guard for the synthesis itself (so the tests below test what they claim)."""
    path = edit_h5(
        sample("stacked", "model.weights.h5"), tmp_path / "w.weights.h5", _tf213_layout(STACKED_213)
    )
    with h5py.File(path) as h5:
        assert "layers" not in h5
        assert sorted(h5["_layer_checkpoint_dependencies"]) == [
            "dense_2",
            "dropout_3",
            "simple_rnn",
            "simple_rnn_4",
        ]
        assert "name" not in h5["_layer_checkpoint_dependencies/dense_2/vars"].attrs


def test_stacked_tf213_keras_zip(tmp_path: Path) -> None:
    path = edit_keras_zip(
        sample("stacked", "tfkeras.keras"), tmp_path / "m.keras", h5=_tf213_layout(STACKED_213)
    )
    _check_same_model(rnninspect.load_model(path), "stacked", "stacked tf2.13 .keras")


def test_stacked_tf213_weights_file(tmp_path: Path) -> None:
    path = edit_h5(
        sample("stacked", "model.weights.h5"), tmp_path / "w.weights.h5", _tf213_layout(STACKED_213)
    )
    _check_same_model(
        rnninspect.load_model(path, config=config_path("stacked")),
        "stacked",
        "stacked tf2.13 weights + config",
    )
    alone = rnninspect.load_model(path)  # order from class + numeric suffix, shapes
    assert_same_weights(weighted(alone.layers), weighted(_reference("stacked").layers), "alone")
    _check_golden(alone, "stacked", "stacked tf2.13 weights alone")


@pytest.mark.parametrize(("name", "model"), _pairs(["model.keras", "tfkeras.keras"]))
def test_tf213_layout_keras_zip(tmp_path: Path, model: str, name: str) -> None:
    path = edit_keras_zip(sample(model, name), tmp_path / "m.keras", h5=_tf213_layout())
    _check_same_model(
        rnninspect.load_model(path), model, f"{model}/{name} tf2.13 layout", semantics_of(name)
    )


@pytest.mark.parametrize("model", MODELS)
def test_tf213_layout_weights_only(tmp_path: Path, model: str) -> None:
    path = edit_h5(sample(model, "model.weights.h5"), tmp_path / "w.weights.h5", _tf213_layout())
    _check_same_model(
        rnninspect.load_model(path, config=config_path(model)),
        model,
        f"{model} tf2.13 weights + config",
    )
    both = _load_alone_or_refused(path, model, "model.weights.h5")
    if both is not None:
        alone, original = both
        assert_same_weights(weighted(alone.layers), weighted(original.layers), f"{model} alone")


# ---------------------------------------------------- (b) layer_names split into chunks


def _chunk_layer_names(where: str):  # type: ignore[no-untyped-def]
    def edit(h5: h5py.File) -> None:
        group = h5[where]
        names = [str(n) for n in group.attrs["layer_names"]]
        del group.attrs["layer_names"]
        parts = np.array_split(np.array(names, dtype=object), min(3, len(names)))
        for i, part in enumerate(parts):
            group.attrs[f"layer_names{i}"] = np.array([n.encode() for n in part])

    return edit


@pytest.mark.parametrize(("name", "model"), _pairs(["model.h5", "tfkeras.h5"]))
def test_chunked_layer_names_full_save(tmp_path: Path, model: str, name: str) -> None:
    path = edit_h5(sample(model, name), tmp_path / "m.h5", _chunk_layer_names("model_weights"))
    with h5py.File(path) as h5:
        assert "layer_names" not in h5["model_weights"].attrs
        assert "layer_names1" in h5["model_weights"].attrs
    _check_same_model(
        rnninspect.load_model(path), model, f"{model}/{name} chunked", semantics_of(name)
    )


def _load_alone_or_refused(path: Path, model: str, name: str) -> tuple[Any, Any] | None:
    """The edited file and the original sample loaded alone, or None when the original
    is refused alone too (a nested model or a narrowing merge: weights alone cannot
    form the chain) and so is the edited file."""
    try:
        before = load_sample(model, name)
    except rnninspect.ModelError:
        with pytest.raises(rnninspect.ModelError):
            rnninspect.load_model(path)
        return None
    return rnninspect.load_model(path), before


@pytest.mark.parametrize("model", TFKERAS_MODELS)
def test_chunked_layer_names_weights_file(tmp_path: Path, model: str) -> None:
    path = edit_h5(sample(model, "tfkeras_weights.h5"), tmp_path / "w.h5", _chunk_layer_names("/"))
    _check_same_model(
        rnninspect.load_model(path, config=config_path(model)),
        model,
        f"{model} chunked weights + config",
        semantics_of("tfkeras_weights.h5", with_config=True),  # the Keras 3 config decides
    )
    both = _load_alone_or_refused(path, model, "tfkeras_weights.h5")
    if both is not None:
        alone, original = both
        assert [la.name for la in computing(alone.layers)] == [
            la.name for la in computing(original.layers)
        ]
        assert_same_weights(alone.layers, original.layers, f"{model} chunked alone")


# ------------------------------------------------------ (c) attributes as fixed-length bytes


@pytest.mark.parametrize(("name", "model"), _pairs(["model.h5", "tfkeras.h5"]))
def test_bytes_attributes_full_save(tmp_path: Path, model: str, name: str) -> None:
    path = edit_h5(sample(model, name), tmp_path / "m.h5", strings_to_fixed_bytes)
    with h5py.File(path) as h5:  # guard: really bytes now
        assert isinstance(h5.attrs["model_config"], bytes)
        assert h5["model_weights"].attrs["layer_names"].dtype.kind == "S"
    m = rnninspect.load_model(path)
    _check_same_model(m, model, f"{model}/{name} bytes attrs", semantics_of(name))
    assert m.source.keras_version == load_sample(model, name).source.keras_version


@pytest.mark.parametrize(("name", "model"), _pairs(["tfkeras_weights.h5", "model.weights.h5"]))
def test_bytes_attributes_weights_files(tmp_path: Path, model: str, name: str) -> None:
    path = edit_h5(sample(model, name), tmp_path / f"w_{name}", strings_to_fixed_bytes)
    _check_same_model(
        rnninspect.load_model(path, config=config_path(model)),
        model,
        f"{model}/{name} bytes attrs + config",
        semantics_of(name, with_config=True),
    )
    both = _load_alone_or_refused(path, model, name)
    if both is not None:
        alone, original = both
        # Layer names come from attributes (layer_names, or vars/@name): decoded alike.
        assert [la.name for la in computing(alone.layers)] == [
            la.name for la in computing(original.layers)
        ]
        assert_same_weights(alone.layers, original.layers, f"{model}/{name} bytes alone")


@pytest.mark.parametrize("model", ["seed", "functional", "stacked"])
def test_bytes_attributes_in_keras_zip(tmp_path: Path, model: str) -> None:
    path = edit_keras_zip(
        sample(model, "model.keras"), tmp_path / "m.keras", h5=strings_to_fixed_bytes
    )
    _check_same_model(rnninspect.load_model(path), model, f"{model} .keras bytes attrs")


# ----------------------------------------------------------------- (d) bfloat16 weights

BF16_MODELS = ["seed", "stacked", "embedding", "timedistributed", "masking"]


def _bf16_expected(model: str) -> list[list[np.ndarray]]:
    return [
        [widen_bfloat16(bfloat16_bits(a)) for _, a in layer.weights()]
        for layer in computing(_reference(model).layers)
    ]


def _check_bf16(m: rnninspect.Model, model: str, tmp_path: Path) -> None:
    want = _bf16_expected(model)
    ref = _reference(model)
    mine, theirs = computing(m.layers), computing(ref.layers)
    assert len(mine) == len(theirs)
    for layer, ref_layer, arrays in zip(mine, theirs, want, strict=True):
        got = [a for _, a in layer.weights()]
        assert len(got) == len(arrays)
        for g, w, (_, orig) in zip(got, arrays, ref_layer.weights(), strict=True):
            assert g.dtype == np.float32
            np.testing.assert_array_equal(g, w)  # widened exactly
            # bfloat16 keeps 8 significant bits: relative error <= 2**-9 after rounding.
            np.testing.assert_allclose(g, orig, rtol=2.0**-8, atol=0)
    # Outputs: the same as a float32 model holding the bfloat16-rounded weights ...
    npz = tmp_path / "rounded.npz"
    arrays: dict[str, np.ndarray] = {}
    for layer, ws in zip(theirs, want, strict=True):
        for (wname, _), w in zip(layer.weights(), ws, strict=True):
            arrays[f"{layer.name}/{wname}"] = w
    arrays["__config__"] = np.array(config_path(model).read_text())
    np.savez(npz, **arrays)
    g = golden(model)
    y = m.forward(g["x"])
    assert_close(
        y, rnninspect.load_model(npz).forward(g["x"]), "bf16 vs rounded f32", rtol=1e-6, atol=1e-7
    )
    # ... and near Keras's float32 outputs (weights moved by <= 0.4 %).
    assert_close(y, g["y"], "bf16 vs Keras float32", rtol=0.03, atol=0.03)


@pytest.mark.parametrize("model", BF16_MODELS)
def test_bfloat16_weights_file(tmp_path: Path, model: str) -> None:
    path = edit_h5(sample(model, "model.weights.h5"), tmp_path / "w.weights.h5", to_bfloat16)
    with h5py.File(path) as h5:  # guard: really opaque 2-byte data now
        kinds = {(d.dtype.kind, d.dtype.itemsize, d.attrs.get("dtype")) for d in datasets(h5)}
        assert kinds == {("V", 2, "bfloat16")}
    _check_bf16(rnninspect.load_model(path, config=config_path(model)), model, tmp_path)


@pytest.mark.parametrize("model", BF16_MODELS)
def test_bfloat16_keras_zip(tmp_path: Path, model: str) -> None:
    path = edit_keras_zip(sample(model, "model.keras"), tmp_path / "m.keras", h5=to_bfloat16)
    _check_bf16(rnninspect.load_model(path), model, tmp_path)


def test_bfloat16_weights_alone(tmp_path: Path) -> None:
    path = edit_h5(
        sample("seed_sequential", "model.weights.h5"), tmp_path / "w.weights.h5", to_bfloat16
    )
    m = rnninspect.load_model(path)
    want = _bf16_expected("seed_sequential")
    for layer, ws in zip(m.layers, want, strict=True):
        for (_, g), w in zip(layer.weights(), ws, strict=True):
            np.testing.assert_array_equal(g, w)


# ------------------------------------------- (e) Keras 2.2 Sequential config: a plain list


def _keras22_config(model_config: str) -> str:
    """tf.keras Sequential config -> Keras <= 2.2.2 style: ``config`` is the layer list,
    the InputLayer is gone and its batch_input_shape sits on the first layer."""
    obj = json.loads(model_config)
    layers = obj["config"]["layers"]
    assert layers[0]["class_name"] == "InputLayer"
    first = layers[1]
    first["config"]["batch_input_shape"] = layers[0]["config"]["batch_input_shape"]
    first["config"]["dtype"] = layers[0]["config"]["dtype"]
    return json.dumps({"class_name": "Sequential", "config": layers[1:]})


def _as_keras22(h5: h5py.File) -> None:
    h5.attrs["model_config"] = _keras22_config(h5.attrs["model_config"])
    h5.attrs["keras_version"] = "2.2.2"
    h5["model_weights"].attrs["keras_version"] = "2.2.2"


@pytest.mark.parametrize("model", [m for m in SEQUENTIAL_MODELS if m in TFKERAS_MODELS])
def test_keras22_list_config(tmp_path: Path, model: str) -> None:
    path = edit_h5(sample(model, "tfkeras.h5"), tmp_path / "m.h5", _as_keras22)
    with h5py.File(path) as h5:  # guard
        assert isinstance(json.loads(h5.attrs["model_config"])["config"], list)
    m = rnninspect.load_model(path)
    # keras_version 2.2.2: hard_sigmoid is 0.2x + 0.5, as in tf_keras.
    _check_same_model(m, model, f"{model} Keras 2.2 list config", TFKERAS)
    assert m.source.keras_version == "2.2.2"
    assert m.input_shape == _reference(model).input_shape
    assert m.input_dtype == _reference(model).input_dtype


# -------------------------------------------------- (f) functional configs via config=


def _tfkeras_functional_config(tmp_path: Path) -> Path:
    path = tmp_path / "tfkeras_config.json"
    path.write_bytes(read_zip(sample("functional", "tfkeras.keras"))["config.json"])
    cfg = json.loads(path.read_text())  # guard: the tf.keras flavour
    assert cfg["config"]["layers"][1]["inbound_nodes"][0][0][0] == "input_1"
    return path


@pytest.mark.parametrize("name", ["model.weights.h5", "tfkeras_weights.h5"])
def test_tfkeras_functional_config_for_weights_file(tmp_path: Path, name: str) -> None:
    cfg = _tfkeras_functional_config(tmp_path)
    m = rnninspect.load_model(sample("functional", name), config=cfg)
    _check_same_model(m, "functional", f"functional/{name} + tf.keras config")
    assert m.input_layer is not None and m.input_layer.name == "input_1"


def test_keras_file_itself_as_config(tmp_path: Path) -> None:
    m = rnninspect.load_model(
        sample("functional", "model.weights.h5"), config=sample("functional", "tfkeras.keras")
    )
    _check_same_model(m, "functional", "functional weights + .keras as config")


def _seed_as_functional() -> dict[str, Any]:
    """The functional sample's config (layers rnn, head) describes the seed model too."""
    return keras_config("functional")


def test_functional_config_for_sequential_weights(tmp_path: Path) -> None:
    """Native weights are matched by class, never by layer name."""
    cfg = tmp_path / "functional.json"
    cfg.write_text(json.dumps(_seed_as_functional()))
    m = rnninspect.load_model(sample("seed", "model.weights.h5"), config=cfg)
    assert [la.name for la in computing(m.layers)] == ["rnn", "head"]
    assert_same_weights(m.layers, _reference("seed").layers, "seed weights, functional config")
    _check_golden(m, "seed", "seed weights + functional config")


def test_functional_config_for_legacy_weights_with_other_names(tmp_path: Path) -> None:
    """Legacy weights are found by layer name; differing names pair in order, and say so."""
    cfg = tmp_path / "functional.json"
    cfg.write_text(json.dumps(_seed_as_functional()))
    m = rnninspect.load_model(sample("seed", "tfkeras_weights.h5"), config=cfg)
    assert [la.name for la in computing(m.layers)] == ["rnn", "head"]
    assert_same_weights(
        m.layers, _reference("seed").layers, "seed legacy weights, functional config"
    )
    _check_golden(m, "seed", "seed legacy weights + functional config")
    assert any("paired in order" in note for note in m.source.assumptions)


# ----------------------------------------------- (g) npz notebook convention without biases


def _notebook(model: str) -> dict[str, np.ndarray]:
    with np.load(sample(model, "notebook.npz")) as z:
        return {k: z[k] for k in z.files}


def test_notebook_npz_without_any_bias(tmp_path: Path) -> None:
    ref = _reference("nobias")
    rnn, dense = ref.layers
    path = tmp_path / "nb.npz"
    np.savez(path, Wx=rnn.kernel, Wh=rnn.recurrent_kernel, Wo=dense.kernel)
    m = rnninspect.load_model(path)
    assert m.layers[0].bias is None and m.layers[1].bias is None
    assert_same_weights(m.layers, ref.layers, "nobias notebook")
    _check_golden(m, "nobias", "notebook npz without biases")
    assert m.summary().total_params == 50


def test_notebook_npz_without_output_bias(tmp_path: Path) -> None:
    """Keras's y = h_T Wo + bo, so dropping bo must give exactly golden y - bo."""
    nb = _notebook("seed")
    bo = nb.pop("bo")
    path = tmp_path / "nb.npz"
    np.savez(path, **nb)
    m = rnninspect.load_model(path)
    assert m.layers[0].bias is not None and m.layers[1].bias is None
    g = golden("seed")
    assert_close(m.forward(g["x"]), g["y"] - bo, "no bo")
    assert_close(m.trace(g["x"])["simple_rnn"], g["state/simple_rnn"], "no bo: states unchanged")
    assert m.summary().total_params == 57 - 2


def test_notebook_npz_without_recurrent_bias(tmp_path: Path) -> None:
    nb = _notebook("seed")
    nb.pop("bh")
    path = tmp_path / "nb.npz"
    np.savez(path, **nb)
    m = rnninspect.load_model(path)
    assert m.layers[0].bias is None and m.layers[1].bias is not None
    g = golden("seed")
    x = g["x"].astype(np.float64)
    Wx, Wh, Wo, bo = (nb[k].astype(np.float64) for k in ("Wx", "Wh", "Wo", "bo"))
    want = []
    for xs in x:  # the notebook's loop, with bh = 0
        h = np.zeros(5)
        for x_t in xs:
            h = np.tanh(x_t @ Wx + h @ Wh)
        want.append(h @ Wo + bo)
    assert_close(m.forward(g["x"]), np.array(want), "no bh")
    assert m.summary().total_params == 57 - 5
