"""Every way loading can fail: the exception type, and a message that names the file.

Hostile files (links to other files, absurd sizes, pickles, code layers) must be
refused without following, allocating or running anything.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import keras_config, sample
from filetools import edit_h5, edit_keras_zip, read_zip, write_zip

import rnninspect
from rnninspect import ModelError, UnsupportedLayerError
from rnninspect.errors import ExitCode

# The seed model as a Sequential chain: these tests edit its config layer by layer.
SEED = "seed_sequential"


def expect_error(
    path: Path,
    exc: type[Exception],
    *fragments: str,
    config: Path | None = None,
    names: Path | None = None,
) -> str:
    """Load ``path``; assert ``exc`` whose message names ``names`` (default ``path``)
    and contains every fragment (case-insensitive). Returns the message."""
    with pytest.raises(exc) as info:
        rnninspect.load_model(path, config=config)
    message = str(info.value)
    assert str(names or path) in message, f"message does not name the file: {message}"
    rest = message.replace(str(names or path), "")  # fragments must not match the path
    for fragment in fragments:
        assert fragment.lower() in rest.lower(), f"{fragment!r} not in: {message}"
    assert "Traceback" not in message
    return message


def test_exit_codes() -> None:
    assert ModelError.exit_code == ExitCode.MODEL == 3
    assert issubclass(UnsupportedLayerError, ModelError)
    assert UnsupportedLayerError.exit_code == 3
    assert rnninspect.InputArrayError.exit_code == 4
    assert rnninspect.UsageError.exit_code == 2
    assert rnninspect.OutputError.exit_code == 5


# ------------------------------------------------------------------- not a model at all


def test_missing_path(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.keras", ModelError, "no such file")


def test_directory(tmp_path: Path) -> None:
    expect_error(tmp_path, ModelError, "directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    expect_error(path, ModelError, "empty")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.h5"
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert not data.startswith((b"PK", b"\x89HDF"))
    path.write_bytes(data)
    expect_error(path, ModelError, "not a model file")


def test_text_file_named_keras(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    path.write_text("this is not a model\n")
    expect_error(path, ModelError, "not a model file")


@pytest.mark.parametrize(
    "name", ["model.h5", "tfkeras.h5", "model.weights.h5", "tfkeras_weights.h5"]
)
def test_truncated_hdf5(tmp_path: Path, name: str) -> None:
    data = sample(SEED, name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, ModelError)


def test_truncated_keras_zip(tmp_path: Path) -> None:
    data = sample(SEED, "model.keras").read_bytes()
    path = tmp_path / "half.keras"
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, ModelError, "zip")


def test_hdf5_that_is_not_keras(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5["data"] = np.arange(10)
    expect_error(path, ModelError, "not a Keras")


def test_zip_that_is_neither(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.keras", {"readme.txt": b"hello"})
    expect_error(path, ModelError, "neither")


# ------------------------------------------------------------------------ broken .keras


def test_keras_zip_without_weights(tmp_path: Path) -> None:
    path = edit_keras_zip(
        sample(SEED, "model.keras"), tmp_path / "m.keras", drop=("model.weights.h5",)
    )
    expect_error(path, ModelError, "model.weights.h5")


def test_keras_zip_with_broken_config(tmp_path: Path) -> None:
    members = read_zip(sample(SEED, "model.keras"))
    members["config.json"] = b'{"class_name": "Sequential", "config": {"layers": ['
    path = write_zip(tmp_path / "m.keras", members)
    expect_error(path, ModelError, "config.json", "JSON")


def test_keras_zip_whose_weights_are_not_hdf5(tmp_path: Path) -> None:
    members = read_zip(sample(SEED, "model.keras"))
    members["model.weights.h5"] = b"not hdf5 at all" * 10
    path = write_zip(tmp_path / "m.keras", members)
    expect_error(path, ModelError, "model.weights.h5")


def test_config_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "no_config.json"
    expect_error(
        sample(SEED, "model.weights.h5"),
        ModelError,
        "no such file",
        config=missing,
        names=missing,
    )


def test_config_file_not_json(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text("{ nope")
    expect_error(sample(SEED, "model.weights.h5"), ModelError, "JSON", config=cfg, names=cfg)


def test_config_of_a_single_layer_not_a_model(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(keras_config(SEED)["config"]["layers"][1]))
    expect_error(
        sample(SEED, "model.weights.h5"),
        ModelError,
        "Sequential or Functional",
        config=cfg,
        names=cfg,
    )


# ------------------------------------------------------------ refused layers and classes


def _with_layer(model: str, index: int, entry: dict[str, Any]) -> dict[str, Any]:
    cfg = keras_config(model)
    cfg["config"]["layers"][index] = entry
    return cfg


LAMBDA = {
    "module": "keras.layers",
    "class_name": "Lambda",
    "config": {
        "name": "lambda",
        "trainable": True,
        "function": {
            "class_name": "__lambda__",
            "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None},
        },
        "arguments": {},
    },
    "registered_name": None,
}


def test_lambda_layer_in_keras_zip_is_refused(tmp_path: Path) -> None:
    path = edit_keras_zip(
        sample(SEED, "model.keras"),
        tmp_path / "m.keras",
        config=lambda c: _with_layer(SEED, 2, LAMBDA),
    )
    msg = expect_error(path, UnsupportedLayerError, "'lambda'", "Lambda", "never runs code")
    assert "code" in msg


def test_lambda_layer_in_config_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(_with_layer(SEED, 2, LAMBDA)))
    expect_error(
        sample(SEED, "model.weights.h5"),
        UnsupportedLayerError,
        "Lambda",
        "never runs code",
        config=cfg,
        names=cfg,
    )


def test_lambda_layer_in_legacy_h5_is_refused(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        cfg = json.loads(h5.attrs["model_config"])
        cfg["config"]["layers"].insert(
            2,
            {
                "class_name": "Lambda",
                "config": {
                    "name": "lambda",
                    "function": ["4wEAAAAAAAAA", None, None],
                    "function_type": "lambda",
                },
            },
        )
        h5.attrs["model_config"] = json.dumps(cfg)

    path = edit_h5(sample(SEED, "tfkeras.h5"), tmp_path / "m.h5", edit)
    expect_error(path, UnsupportedLayerError, "Lambda", "never runs code")


def test_unknown_layer_class(tmp_path: Path) -> None:
    entry = keras_config(SEED)["config"]["layers"][2]
    entry["class_name"] = "Conv3D"
    entry["config"]["name"] = "conv"
    path = edit_keras_zip(
        sample(SEED, "model.keras"),
        tmp_path / "m.keras",
        config=lambda c: _with_layer(SEED, 2, entry),
    )
    msg = expect_error(path, UnsupportedLayerError, "'conv'", "Conv3D", "supported")
    supported = msg.split("supported", 1)[1]
    for cls in ("SimpleRNN", "Dense", "Embedding", "TimeDistributed", "Masking", "Dropout"):
        assert cls in supported


@pytest.mark.parametrize(
    ("module", "registered"),
    [
        ("my_project.layers", None),
        ("keras.layers", "MyProject>MyDense"),
        ("my_project.layers", "MyDense"),
    ],
)
def test_custom_class_is_refused(tmp_path: Path, module: str, registered: str | None) -> None:
    entry = keras_config(SEED)["config"]["layers"][2]
    entry["module"] = module
    entry["registered_name"] = registered
    path = edit_keras_zip(
        sample(SEED, "model.keras"),
        tmp_path / "m.keras",
        config=lambda c: _with_layer(SEED, 2, entry),
    )
    expect_error(path, UnsupportedLayerError, "'dense'", "custom", "never runs code")


def test_custom_activation_is_refused(tmp_path: Path) -> None:
    entry = keras_config(SEED)["config"]["layers"][2]
    entry["config"]["activation"] = {
        "module": "my_project.acts",
        "class_name": "function",
        "config": "my_act",
        "registered_name": "my_act",
    }
    path = edit_keras_zip(
        sample(SEED, "model.keras"),
        tmp_path / "m.keras",
        config=lambda c: _with_layer(SEED, 2, entry),
    )
    expect_error(path, UnsupportedLayerError, "'dense'", "activation")


def test_functional_model_with_two_inputs_checks_widths(tmp_path: Path) -> None:
    """Two inputs concatenated (D=3 + 3) into a SimpleRNN whose kernel takes D=3: the
    graph is read as it is, and the kernel's width is checked against the tensor it
    meets, not the model's first input."""
    cfg = keras_config("functional")
    layers = cfg["config"]["layers"]
    second = json.loads(json.dumps(layers[0]))
    second["name"] = second["config"]["name"] = "input_layer_1"

    def tensor(name: str) -> dict[str, Any]:
        return {
            "class_name": "__keras_tensor__",
            "config": {"shape": [None, 10, 3], "dtype": "float32", "keras_history": [name, 0, 0]},
        }

    concat = {
        "module": "keras.layers",
        "class_name": "Concatenate",
        "config": {"name": "concatenate", "trainable": True, "axis": -1},
        "registered_name": None,
        "name": "concatenate",
        "inbound_nodes": [
            {"args": [[tensor("input_layer"), tensor("input_layer_1")]], "kwargs": {}}
        ],
    }
    layers[1]["inbound_nodes"] = [{"args": [tensor("concatenate")], "kwargs": {}}]
    cfg["config"]["layers"] = [layers[0], second, concat, *layers[1:]]
    cfg["config"]["input_layers"] = [["input_layer", 0, 0], ["input_layer_1", 0, 0]]
    path = tmp_path / "two_inputs.json"
    path.write_text(json.dumps(cfg))
    expect_error(
        sample("functional", "model.weights.h5"),
        ModelError,
        "'rnn'",
        "D=3",
        "gives 6",
        config=path,
        names=sample("functional", "model.weights.h5"),
    )
    zipped = edit_keras_zip(
        sample("functional", "model.keras"), tmp_path / "m.keras", config=lambda c: cfg
    )
    expect_error(zipped, ModelError, "'rnn'", "D=3", "gives 6")


def test_functional_layer_with_two_inbound_tensors(tmp_path: Path) -> None:
    """A one-input, one-output graph that is not a chain (a merge inside) runs:
    Add(x, x) before the SimpleRNN is the model on 2x."""
    cfg = keras_config("functional")
    layers = cfg["config"]["layers"]

    def tensor(name: str) -> dict[str, Any]:
        return {
            "class_name": "__keras_tensor__",
            "config": {"shape": [None, 10, 3], "dtype": "float32", "keras_history": [name, 0, 0]},
        }

    add = {
        "module": "keras.layers",
        "class_name": "Add",
        "config": {"name": "add", "trainable": True},
        "registered_name": None,
        "name": "add",
        "inbound_nodes": [{"args": [[tensor("input_layer"), tensor("input_layer")]], "kwargs": {}}],
    }
    layers[1]["inbound_nodes"] = [{"args": [tensor("add")], "kwargs": {}}]
    cfg["config"]["layers"] = [layers[0], add, *layers[1:]]
    path = tmp_path / "merge.json"
    path.write_text(json.dumps(cfg))
    graph = rnninspect.load_model(sample("functional", "model.weights.h5"), config=path)
    chain = rnninspect.load_model(sample("functional", "model.keras"))
    assert not graph.is_chain and chain.is_chain
    x = np.random.default_rng(3).standard_normal((4, 10, 3)).astype(np.float32)
    np.testing.assert_allclose(graph.forward(x), chain.forward(2 * x), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------ weights that do not fit


def _npz_edit(tmp_path: Path, model: str, **changes: np.ndarray | None) -> Path:
    with np.load(sample(model, "layers.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    for key, value in changes.items():
        if not key.startswith("__"):
            key = key.replace("__", "/")  # dense__kernel -> dense/kernel
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    path = tmp_path / "edited.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("key", "shape", "layer"),
    [
        ("simple_rnn__kernel", (4, 5), "simple_rnn"),
        ("simple_rnn__recurrent_kernel", (5, 4), "simple_rnn"),
        ("simple_rnn__bias", (6,), "simple_rnn"),
        ("dense__kernel", (6, 2), "dense"),
        ("dense__bias", (3,), "dense"),
    ],
)
def test_npz_weight_shape_mismatch(
    tmp_path: Path, key: str, shape: tuple[int, ...], layer: str
) -> None:
    path = _npz_edit(tmp_path, SEED, **{key: np.zeros(shape, np.float32)})
    shape_text = "(" + ",".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")
    expect_error(path, ModelError, f"'{layer}'", shape_text)


def test_keras_zip_weight_shape_mismatch(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars/0"] = np.zeros((7, 2), np.float32)

    path = edit_keras_zip(sample(SEED, "model.keras"), tmp_path / "m.keras", h5=edit)
    expect_error(path, ModelError, "'dense'", "(7,2)")


def test_legacy_weight_shape_mismatch(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        name = "model_weights/simple_rnn/simple_rnn/simple_rnn_cell/recurrent_kernel:0"
        del h5[name]
        h5[name] = np.zeros((5, 3), np.float32)

    path = edit_h5(sample(SEED, "tfkeras.h5"), tmp_path / "m.h5", edit)
    expect_error(path, ModelError, "'simple_rnn'", "(5,3)")


def test_npz_weights_missing_for_a_layer(tmp_path: Path) -> None:
    path = _npz_edit(tmp_path, SEED, dense__kernel=None, dense__bias=None)
    expect_error(path, ModelError, "dense")


def test_npz_missing_bias_only(tmp_path: Path) -> None:
    path = _npz_edit(tmp_path, SEED, dense__bias=None)
    expect_error(path, ModelError, "'dense'")


def test_keras_zip_weights_missing_for_a_layer(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        del h5["layers/dense"]

    path = edit_keras_zip(sample(SEED, "model.keras"), tmp_path / "m.keras", h5=edit)
    expect_error(path, ModelError, "'dense'")


def test_legacy_weights_missing_for_a_layer(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        del h5["model_weights/dense"]

    path = edit_h5(sample(SEED, "tfkeras.h5"), tmp_path / "m.h5", edit)
    expect_error(path, ModelError, "'dense'")


def test_legacy_weight_dataset_missing(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        del h5["model_weights/dense/dense/bias:0"]

    path = edit_h5(sample(SEED, "tfkeras.h5"), tmp_path / "m.h5", edit)
    expect_error(path, ModelError, "'dense'", "bias")


def test_weights_only_config_with_a_layer_the_file_lacks(tmp_path: Path) -> None:
    """The stacked config (3 weighted layers) for the seed's weights (2 layers)."""
    expect_error(
        sample(SEED, "model.weights.h5"),
        ModelError,
        "no weights",
        config=sample("stacked", "config.json"),
    )


def test_npz_integer_weights(tmp_path: Path) -> None:
    path = _npz_edit(tmp_path, SEED, dense__kernel=np.zeros((5, 2), np.int32))
    expect_error(path, ModelError, "'dense'", "int32")


def test_npz_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, weights=np.zeros((3, 3), np.float32))
    expect_error(path, ModelError, "weights")


def test_npz_with_pickled_object_array(tmp_path: Path) -> None:
    path = _npz_edit(tmp_path, SEED, dense__bias=np.array([{"evil": 1}, None], dtype=object))
    expect_error(path, ModelError, "pickle")


def test_npz_config_with_pickled_object(tmp_path: Path) -> None:
    path = _npz_edit(
        tmp_path,
        SEED,
        __config__=np.array([keras_config(SEED)], dtype=object),
    )
    expect_error(path, ModelError, "pickle")


# --------------------------------------------------------------------- hostile HDF5 files


def _external_target(tmp_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A valid file the link points to: following it would load without complaint."""
    target = tmp_path / "target.h5"
    with h5py.File(target, "w") as h5:
        for name, value in arrays.items():
            h5[name] = value
    return target.resolve()


def _seed_dense() -> tuple[np.ndarray, np.ndarray]:
    dense = rnninspect.load_model(sample(SEED, "model.keras")).layers[1]
    return dense.kernel, dense.bias


def _native_link(target: Path, at: str):  # type: ignore[no-untyped-def]
    def edit(h5: h5py.File) -> None:
        del h5[at]
        h5[at] = h5py.ExternalLink(str(target), "/")

    return edit


@pytest.mark.parametrize("with_config", [False, True])
@pytest.mark.parametrize("at", ["layers/dense", "layers/dense/vars"])
def test_external_link_in_native_weights_not_followed(
    tmp_path: Path, with_config: bool, at: str
) -> None:
    k, b = _seed_dense()
    arrays = {"vars/0": k, "vars/1": b} if at == "layers/dense" else {"0": k, "1": b}
    target = _external_target(tmp_path, arrays)
    path = edit_h5(
        sample(SEED, "model.weights.h5"),
        tmp_path / "w.weights.h5",
        _native_link(target, at),
    )
    expect_error(
        path,
        ModelError,
        "external link",
        "not followed",
        config=sample(SEED, "config.json") if with_config else None,
    )


def test_external_link_in_keras_zip_not_followed(tmp_path: Path) -> None:
    k, b = _seed_dense()
    target = _external_target(tmp_path, {"vars/0": k, "vars/1": b})
    path = edit_keras_zip(
        sample(SEED, "model.keras"),
        tmp_path / "m.keras",
        h5=_native_link(target, "layers/dense"),
    )
    expect_error(path, ModelError, "external link", "not followed")


@pytest.mark.parametrize("name", ["tfkeras.h5", "tfkeras_weights.h5"])
def test_external_link_as_legacy_layer_group_not_followed(tmp_path: Path, name: str) -> None:
    k, b = _seed_dense()
    target = _external_target(tmp_path, {"dense/kernel:0": k, "dense/bias:0": b})
    root = "model_weights/" if name == "tfkeras.h5" else ""

    def edit(h5: h5py.File) -> None:
        names = h5[f"{root}dense"].attrs["weight_names"]
        del h5[f"{root}dense"]
        h5[f"{root}dense"] = h5py.ExternalLink(str(target), "/")
        # weight_names lived on the replaced group; put them on the target's root
        with h5py.File(target, "r+") as t:
            t.attrs["weight_names"] = names

    path = edit_h5(sample(SEED, name), tmp_path / name, edit)
    expect_error(path, ModelError, "external link", "not followed")


@pytest.mark.parametrize("name", ["tfkeras.h5", "tfkeras_weights.h5"])
def test_external_link_inside_legacy_weight_path_not_followed(tmp_path: Path, name: str) -> None:
    k, b = _seed_dense()
    target = _external_target(tmp_path, {"kernel:0": k * 0 + 1, "bias:0": b * 0 + 1})
    root = "model_weights/" if name == "tfkeras.h5" else ""

    def edit(h5: h5py.File) -> None:
        del h5[f"{root}dense/dense"]
        h5[f"{root}dense/dense"] = h5py.ExternalLink(str(target), "/")

    path = edit_h5(sample(SEED, name), tmp_path / name, edit)
    try:
        model = rnninspect.load_model(path)
    except ModelError as exc:
        assert str(path) in str(exc) and "not followed" in str(exc)
        return
    raise AssertionError(
        f"loaded weights through an external link: dense kernel = {model.layers[1].weights()[0][1]}"
    )


def test_soft_link_not_followed(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        del h5["layers/dense"]
        h5["layers/dense"] = h5py.SoftLink("/layers/simple_rnn")

    path = edit_h5(sample(SEED, "model.weights.h5"), tmp_path / "w.weights.h5", edit)
    expect_error(path, ModelError, "link")


def test_external_storage_dataset_not_followed(tmp_path: Path) -> None:
    raw = tmp_path / "raw.bin"
    k, _ = _seed_dense()
    raw.write_bytes(k.astype("<f4").tobytes())

    def edit(h5: h5py.File) -> None:
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars"].create_dataset(
            "0", shape=k.shape, dtype="<f4", external=[(str(raw), 0, k.nbytes)]
        )

    path = edit_h5(sample(SEED, "model.weights.h5"), tmp_path / "w.weights.h5", edit)
    expect_error(path, ModelError, "external", config=sample(SEED, "config.json"))


def _absurd(at: str):  # type: ignore[no-untyped-def]
    def edit(h5: h5py.File) -> None:
        parent, name = at.rsplit("/", 1)
        del h5[at]
        # 2**40 float32 = 4 TiB declared; chunked and never written: the file stays small.
        h5[parent].create_dataset(name, shape=(1 << 20, 1 << 20), dtype="f4", chunks=(1, 1024))

    return edit


def _refused_quickly(path: Path, config: Path | None = None) -> None:
    start = time.perf_counter()
    assert path.stat().st_size < 1 << 20
    expect_error(path, ModelError, "declares", config=config)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("with_config", [False, True])
def test_absurd_dataset_in_native_weights(tmp_path: Path, with_config: bool) -> None:
    path = edit_h5(
        sample(SEED, "model.weights.h5"),
        tmp_path / "w.weights.h5",
        _absurd("layers/dense/vars/0"),
    )
    _refused_quickly(path, sample(SEED, "config.json") if with_config else None)


def test_absurd_dataset_in_keras_zip(tmp_path: Path) -> None:
    path = edit_keras_zip(
        sample(SEED, "model.keras"),
        tmp_path / "m.keras",
        h5=_absurd("layers/simple_rnn/cell/vars/1"),
    )
    _refused_quickly(path)


@pytest.mark.parametrize(
    ("name", "at"),
    [
        ("tfkeras.h5", "model_weights/dense/dense/kernel:0"),
        ("tfkeras_weights.h5", "dense/dense/kernel:0"),
        ("model.h5", "model_weights/dense/sequential/dense/kernel"),
    ],
)
def test_absurd_dataset_in_legacy_h5(tmp_path: Path, name: str, at: str) -> None:
    path = edit_h5(sample(SEED, name), tmp_path / name, _absurd(at))
    _refused_quickly(path)


def _npy_header_only(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + b"\0" * 64


def test_absurd_array_in_npz(tmp_path: Path) -> None:
    path = tmp_path / "absurd.npz"
    small = io.BytesIO()
    np.save(small, np.zeros((5, 5), np.float32))
    with zipfile.ZipFile(path, "w") as zf:
        # 2**46 float32 = 256 TiB: beyond any address space, so never allocatable.
        zf.writestr("Wx.npy", _npy_header_only((1 << 46,)))
        zf.writestr("Wh.npy", small.getvalue())
        zf.writestr("Wo.npy", small.getvalue())
    _refused_quickly(path)


def test_keras0_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["nb_layers"] = 1
        h5["layer_0/param_0"] = np.zeros((3, 5), np.float32)
    expect_error(path, ModelError, "not supported")


def test_weights_file_with_no_weights(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        for name in list(h5["layers"]):
            del h5[f"layers/{name}"]

    path = edit_h5(sample(SEED, "model.weights.h5"), tmp_path / "w.weights.h5", edit)
    expect_error(path, ModelError)


# ------------------------------------------------------------ malformed configs and data


def _keras22_seed(first_layer_shape: list[Any]):  # type: ignore[no-untyped-def]
    def edit(h5: h5py.File) -> None:
        layers = json.loads(h5.attrs["model_config"])["config"]["layers"]
        layers[1]["config"]["batch_input_shape"] = first_layer_shape
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": layers[1:]})

    return edit


@pytest.mark.parametrize("bad", [-4, "ten", 2.5])
def test_bad_dimension_in_input_layer(tmp_path: Path, bad: Any) -> None:
    def edit(h5: h5py.File) -> None:
        cfg = json.loads(h5.attrs["model_config"])
        cfg["config"]["layers"][0]["config"]["batch_input_shape"] = [None, bad, 3]
        h5.attrs["model_config"] = json.dumps(cfg)

    path = edit_h5(sample(SEED, "tfkeras.h5"), tmp_path / "m.h5", edit)
    expect_error(path, ModelError, "dimension", repr(bad))


def test_bad_dimension_on_keras2_first_layer(tmp_path: Path) -> None:
    path = edit_h5(sample(SEED, "tfkeras.h5"), tmp_path / "m.h5", _keras22_seed([None, -4, 3]))
    expect_error(path, ModelError, "dimension", "-4")


def test_bad_dimension_in_build_input_shape(tmp_path: Path) -> None:
    def config(c: dict[str, Any]) -> dict[str, Any]:
        c["config"]["layers"] = c["config"]["layers"][1:]  # no InputLayer
        c["config"]["build_input_shape"] = [None, -1, 3]
        return c

    path = edit_keras_zip(sample(SEED, "model.keras"), tmp_path / "m.keras", config=config)
    expect_error(path, ModelError, "dimension", "-1")


def test_no_input_shape_and_no_weights(tmp_path: Path) -> None:
    def config(c: dict[str, Any]) -> dict[str, Any]:
        c["config"]["layers"] = [
            {
                "module": "keras.layers",
                "class_name": "Dropout",
                "config": {"name": "dropout", "rate": 0.5},
                "registered_name": None,
            }
        ]
        c["config"].pop("build_input_shape")
        return c

    def h5(f: h5py.File) -> None:
        for name in list(f["layers"]):
            del f[f"layers/{name}"]

    path = edit_keras_zip(sample(SEED, "model.keras"), tmp_path / "m.keras", config=config, h5=h5)
    expect_error(path, ModelError, "input shape")


def test_deeply_nested_json(tmp_path: Path) -> None:
    cfg = tmp_path / "deep.json"
    cfg.write_text("[" * 100_000 + "]" * 100_000)
    expect_error(sample(SEED, "model.weights.h5"), ModelError, "JSON", config=cfg, names=cfg)


def test_deeply_nested_models(tmp_path: Path) -> None:
    seed_config = sample(SEED, "config.json").read_text()
    text = seed_config
    for i in range(100):
        text = (
            '{"module": "keras", "class_name": "Sequential", '
            f'"config": {{"name": "s{i}", "layers": [{text}]}}}}'
        )
    assert seed_config in text
    cfg = tmp_path / "nested.json"
    cfg.write_text(text)
    expect_error(sample(SEED, "model.weights.h5"), ModelError, config=cfg, names=cfg)


@pytest.mark.parametrize(
    ("replacement", "fragment"),
    [
        (h5py.Empty("f4"), "empty"),
        (np.array([b"ab", b"cd"]), "dtype"),
        (np.float32(1.0), "bias"),
    ],
    ids=["null", "strings", "scalar"],
)
@pytest.mark.parametrize("with_config", [False, True])
def test_unusable_dataset(
    tmp_path: Path, replacement: Any, fragment: str, with_config: bool
) -> None:
    def edit(h5: h5py.File) -> None:
        del h5["layers/dense/vars/1"]
        h5["layers/dense/vars"].create_dataset("1", data=replacement)

    path = edit_h5(sample(SEED, "model.weights.h5"), tmp_path / "w.weights.h5", edit)
    expect_error(
        path,
        ModelError,
        fragment,
        config=sample(SEED, "config.json") if with_config else None,
    )


def test_legacy_layer_names_lists_a_missing_group(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        h5.attrs["layer_names"] = np.array(["simple_rnn", "dense", "ghost"], dtype=object)

    path = edit_h5(sample(SEED, "tfkeras_weights.h5"), tmp_path / "w.h5", edit)
    expect_error(path, ModelError, "'ghost'")


def test_config_units_disagree_with_weights(tmp_path: Path) -> None:
    def config(c: dict[str, Any]) -> dict[str, Any]:
        c["config"]["layers"][2]["config"]["units"] = 3
        return c

    path = edit_keras_zip(sample(SEED, "model.keras"), tmp_path / "m.keras", config=config)
    expect_error(path, ModelError, "'dense'", "(5,2)", "units=3")


def test_unknown_activation(tmp_path: Path) -> None:
    def config(c: dict[str, Any]) -> dict[str, Any]:
        c["config"]["layers"][1]["config"]["activation"] = "weird"
        return c

    path = edit_keras_zip(sample(SEED, "model.keras"), tmp_path / "m.keras", config=config)
    expect_error(path, UnsupportedLayerError, "'simple_rnn'", "weird")
