"""Architecture + weight arrays -> ``Model``, with every shape checked once, here.

Loaders find the arrays (each file family has its own layout); this module turns
``LayerSpec``s into typed layers and checks that kernels, recurrent kernels and biases
agree with each other, with the config and with the previous layer's width.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from . import activations
from .architecture import PASSTHROUGH, Architecture, LayerSpec
from .errors import ModelError
from .model import (
    GRU,
    LSTM,
    Activation,
    Array,
    Bidirectional,
    Dense,
    Embedding,
    InputLayer,
    Layer,
    Masking,
    Model,
    Passthrough,
    Recurrent,
    SimpleRNN,
    Source,
    TimeDistributed,
)
from .versions import keras_major

WeightMap = Mapping[tuple[str, ...], list[Array]]


def walk(
    specs: list[LayerSpec], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], LayerSpec]]:
    """Leaf layers with their key path (nested model names, then the layer name)."""
    for spec in specs:
        key = (*prefix, spec.name)
        if spec.is_container:
            yield from walk(spec.children, key)
        else:
            yield key, spec


def build_model(arch: Architecture, weights: WeightMap, source: Source) -> Model:
    where = str(source.path)
    layers: list[Layer] = []
    input_shape = arch.input_shape
    width: int | None = None
    if input_shape is not None and arch.input_dtype != "int32" and len(input_shape) >= 1:
        width = input_shape[-1]
    major = keras_major(source.keras_version, 3)
    for key, spec in walk(arch.layers):
        arrays = weights.get(key, [])
        layer = _build_layer(spec, arrays, where, width, major)
        layer.trainable = bool(spec.config.get("trainable", True))
        if len(key) > 1:
            layer.parent = key[0]  # inside a nested model: its top-level row
        width = _output_width(layer, width)
        layers.append(layer)
    if input_shape is None:
        input_shape = _guess_input_shape(layers, where)
        source.assumptions.append(
            "input shape " + _shape_text(input_shape) + " inferred from the first layer's weights"
        )
    input_layer = None
    if arch.lists_input_layer:
        input_layer = InputLayer(name=arch.input_layer_name or "input_layer", shape=input_shape)
    return Model(
        name=arch.name,
        layers=layers,
        input_shape=input_shape,
        input_dtype=arch.input_dtype,
        input_layer=input_layer,
        source=source,
        containers={s.name: s.class_name for s in arch.layers if s.is_container},
    )


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(N, " + ", ".join("T" if d is None else str(d) for d in shape) + ")"


def _guess_input_shape(layers: list[Layer], where: str) -> tuple[int | None, ...]:
    for layer in layers:
        if isinstance(layer, Embedding):
            return (None,)
        inner = layer.layer if isinstance(layer, TimeDistributed) else layer
        if isinstance(inner, Bidirectional):
            inner = inner.forward
        if isinstance(inner, (Dense, Recurrent)):
            return (None, int(inner.kernel.shape[0]))
    raise ModelError(f"{where}: cannot tell the input shape: no layer has weights")


def _output_width(layer: Layer, width: int | None) -> int | None:
    inner = layer.layer if isinstance(layer, TimeDistributed) else layer
    if isinstance(inner, (Dense, Recurrent)):
        return inner.units
    if isinstance(inner, Bidirectional):
        units = inner.forward.units
        return 2 * units if inner.merge_mode == "concat" else units
    if isinstance(inner, Embedding):
        return int(inner.embeddings.shape[1])
    return width


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _float(a: Array, where: str, layer: str, what: str) -> Array:
    if a.dtype.kind != "f":
        raise ModelError(f"{where}: layer {layer!r} {what} has dtype {a.dtype}, expected floats")
    return a


def _take(spec: LayerSpec, arrays: list[Array], n: int, where: str) -> list[Array]:
    if len(arrays) != n:
        raise ModelError(
            f"{where}: layer {spec.name!r} ({spec.class_name}) has {len(arrays)} weight arrays, "
            f"expected {n}"
        )
    return arrays


def _check(cond: bool, where: str, spec: LayerSpec, message: str) -> None:
    if not cond:
        raise ModelError(f"{where}: layer {spec.name!r} ({spec.class_name}): {message}")


def _check_input_width(spec: LayerSpec, kernel: Array, width: int | None, where: str) -> None:
    _check(
        width is None or kernel.shape[0] == width,
        where,
        spec,
        f"kernel {_fmt(kernel.shape)} expects D={kernel.shape[0]} input features "
        f"but the previous layer gives {width}",
    )


def _units(spec: LayerSpec, key: str = "units") -> int | None:
    value: Any = spec.config.get(key)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _build_layer(
    spec: LayerSpec, arrays: list[Array], where: str, width: int | None, major: int
) -> Layer:
    cfg = spec.config
    cls = spec.class_name
    name = spec.name
    ctx = f"{where}: layer {name!r}"
    if cls == "Dense":
        use_bias = bool(cfg.get("use_bias", True))
        got = _take(spec, arrays, 1 + use_bias, where)
        kernel = _float(got[0], where, name, "kernel")
        _check(
            kernel.ndim == 2,
            where,
            spec,
            f"kernel has shape {_fmt(kernel.shape)}, expected 2-D (in, units)",
        )
        units = _units(spec)
        _check(
            units is None or kernel.shape[1] == units,
            where,
            spec,
            f"kernel {_fmt(kernel.shape)} does not match units={units}",
        )
        _check_input_width(spec, kernel, width, where)
        bias = None
        if use_bias:
            bias = _float(got[1], where, name, "bias")
            _check(
                bias.shape == (kernel.shape[1],),
                where,
                spec,
                f"bias {_fmt(bias.shape)} does not match kernel {_fmt(kernel.shape)}",
            )
        act = activations.activation_name(cfg.get("activation", "linear"), ctx)
        return Dense(name=name, kernel=kernel, bias=bias, activation=act)
    if cls in ("SimpleRNN", "LSTM", "GRU"):
        return _build_recurrent(spec, arrays, where, width, major)
    if cls == "Bidirectional":
        assert spec.inner is not None
        back_spec = spec.backward or _mirror(spec.inner)
        n_fwd = len(arrays) // 2
        fwd = _build_recurrent(spec.inner, arrays[:n_fwd], where, width, major)
        bwd = _build_recurrent(back_spec, arrays[n_fwd:], where, width, major)
        bwd.go_backwards = not fwd.go_backwards
        # Bidirectional forces zero_output_for_mask = return_sequences on both
        # directions (tf.keras leaves the flag out of its config).
        for direction in (fwd, bwd):
            direction.zero_output_for_mask = fwd.return_sequences
        if fwd.return_state:
            raise ModelError(f"{ctx}: Bidirectional with return_state is not supported")
        merge = cfg.get("merge_mode", "concat")
        if merge not in ("concat", "sum", "ave", "mul", None):
            raise ModelError(f"{ctx}: unknown merge_mode {merge!r}")
        return Bidirectional(name=name, forward=fwd, backward=bwd, merge_mode=merge)
    if cls == "Embedding":
        got = _take(spec, arrays, 1, where)
        emb = got[0]
        _check(
            emb.ndim == 2 and emb.dtype.kind == "f",
            where,
            spec,
            f"embeddings have shape {_fmt(emb.shape)} dtype {emb.dtype}, expected float (V, E)",
        )
        v, e = _units(spec, "input_dim"), _units(spec, "output_dim")
        _check(
            (v is None or emb.shape[0] == v) and (e is None or emb.shape[1] == e),
            where,
            spec,
            f"embeddings {_fmt(emb.shape)} do not match input_dim={v}, output_dim={e}",
        )
        return Embedding(name=name, embeddings=emb, mask_zero=bool(cfg.get("mask_zero", False)))
    if cls == "TimeDistributed":
        assert spec.inner is not None
        inner = _build_layer(spec.inner, arrays, where, width, major)
        if isinstance(inner, (Recurrent, Bidirectional, Embedding)):
            raise ModelError(
                f"{where}: layer {name!r} wraps a {inner.class_name}, which needs 4-D input; "
                "TimeDistributed is supported around Dense, Activation, Masking and Dropout"
            )
        return TimeDistributed(name=name, layer=inner)
    _take(spec, arrays, 0, where)
    if cls == "Masking":
        value = cfg.get("mask_value", 0.0)
        if not isinstance(value, (int, float)):
            raise ModelError(f"{ctx}: mask_value {value!r} is not a number")
        return Masking(name=name, mask_value=float(value))
    if cls == "Activation":
        return Activation(
            name=name, activation=activations.activation_name(cfg.get("activation"), ctx)
        )
    if cls in PASSTHROUGH:
        return Passthrough(name=name, keras_class=cls)
    raise ModelError(f"{ctx}: cannot build a {cls} layer")


def _mirror(spec: LayerSpec) -> LayerSpec:
    cfg = dict(spec.config)
    cfg["go_backwards"] = not bool(cfg.get("go_backwards", False))
    return LayerSpec(spec.class_name, "backward_" + spec.name, cfg)


# Keras 1 stored each gate separately; the fused layout concatenates them in the
# modern gate order (LSTM i, f, c, o from stored i, c, f, o; GRU z, r, h).
_KERAS1_ORDER = {"LSTM": (0, 2, 1, 3), "GRU": (0, 1, 2), "SimpleRNN": (0,)}


def _fuse_keras1(cls: str, arrays: list[Array]) -> list[Array]:
    order = _KERAS1_ORDER[cls]
    per_gate = [arrays[3 * g : 3 * g + 3] for g in order]  # [W, U, b] for each gate
    return [np.concatenate([gate[i] for gate in per_gate], axis=-1) for i in range(3)]


def _build_recurrent(
    spec: LayerSpec, arrays: list[Array], where: str, width: int | None, major: int
) -> Recurrent:
    cfg = spec.config
    cls = spec.class_name
    name = spec.name
    ctx = f"{where}: layer {name!r}"
    g = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[cls]
    if g > 1 and len(arrays) == 3 * g:
        arrays = _fuse_keras1(cls, arrays)
    use_bias = bool(cfg.get("use_bias", True))
    got = _take(spec, arrays, 2 + use_bias, where)
    kernel = _float(got[0], where, name, "kernel")
    rec = _float(got[1], where, name, "recurrent_kernel")
    gm = "M" if g == 1 else f"{g}M"
    _check(
        rec.ndim == 2 and rec.shape[1] == g * rec.shape[0],
        where,
        spec,
        f"recurrent_kernel has shape {_fmt(rec.shape)}, expected (M, {gm})",
    )
    M = int(rec.shape[0])
    _check(
        kernel.ndim == 2 and kernel.shape[1] == g * M,
        where,
        spec,
        f"kernel {_fmt(kernel.shape)} and recurrent_kernel {_fmt(rec.shape)} disagree "
        f"(expected (D, {gm}) with M={M})",
    )
    units = _units(spec)
    _check(
        units is None or units == M,
        where,
        spec,
        f"recurrent_kernel {_fmt(rec.shape)} does not match units={units}",
    )
    _check_input_width(spec, kernel, width, where)
    bias = None
    reset_after = bool(cfg.get("reset_after", major >= 3))
    if use_bias:
        bias = _float(got[2], where, name, "bias")
        if cls == "GRU" and "reset_after" not in cfg:
            reset_after = bias.ndim == 2  # older configs omit it; the shape tells
        want: tuple[int, ...] = (2, g * M) if cls == "GRU" and reset_after else (g * M,)
        _check(
            bias.shape == want,
            where,
            spec,
            f"bias {_fmt(bias.shape)} does not match recurrent_kernel {_fmt(rec.shape)} "
            f"(expected {_fmt(want)})",
        )
    common: dict[str, Any] = {
        "name": name,
        "kernel": kernel,
        "recurrent_kernel": rec,
        "bias": bias,
        "activation": activations.activation_name(cfg.get("activation", "tanh"), ctx),
        "return_sequences": bool(cfg.get("return_sequences", False)),
        "return_state": bool(cfg.get("return_state", False)),
        "go_backwards": bool(cfg.get("go_backwards", False)),
        "zero_output_for_mask": bool(cfg.get("zero_output_for_mask", False)),
        "stateful": bool(cfg.get("stateful", False)),
        "emit": spec.emit,
    }
    if cfg.get("time_major"):
        raise ModelError(f"{ctx}: time_major=True layers are not supported")
    if spec.emit > (2 if cls == "LSTM" else 1):
        raise ModelError(f"{ctx}: the next layer takes output #{spec.emit}, which {cls} lacks")
    if cls == "SimpleRNN":
        return SimpleRNN(**common)
    ra = activations.activation_name(cfg.get("recurrent_activation", "sigmoid"), ctx)
    if cls == "LSTM":
        return LSTM(**common, recurrent_activation=ra)
    return GRU(**common, recurrent_activation=ra, reset_after=reset_after)
