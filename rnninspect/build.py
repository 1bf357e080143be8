"""Architecture + weight arrays -> ``Model``, with every shape checked once, here.

Loaders find the arrays (each file family has its own layout); this module turns
``LayerSpec``s into typed layers and checks that kernels, recurrent kernels and biases
agree with each other, with the config and with the previous layer's width.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from . import activations
from .architecture import PASSTHROUGH, Architecture, LayerSpec
from .errors import ModelError
from .model import (
    Activation,
    Array,
    Dense,
    Embedding,
    InputLayer,
    Layer,
    Masking,
    Model,
    Passthrough,
    SimpleRNN,
    Source,
    TimeDistributed,
)

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
    for key, spec in walk(arch.layers):
        arrays = weights.get(key, [])
        layer = _build_layer(spec, arrays, where, width)
        layer.trainable = bool(spec.config.get("trainable", True))
        width = _output_width(layer, width)
        layers.append(layer)
    if input_shape is None:
        input_shape = _guess_input_shape(layers)
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
    )


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(N, " + ", ".join("T" if d is None else str(d) for d in shape) + ")"


def _guess_input_shape(layers: list[Layer]) -> tuple[int | None, ...]:
    for layer in layers:
        if isinstance(layer, Embedding):
            return (None,)
        inner = layer.layer if isinstance(layer, TimeDistributed) else layer
        if isinstance(inner, (Dense, SimpleRNN)):
            return (None, int(inner.kernel.shape[0]))
    raise ModelError("cannot tell the input shape: no layer has weights")


def _output_width(layer: Layer, width: int | None) -> int | None:
    inner = layer.layer if isinstance(layer, TimeDistributed) else layer
    if isinstance(inner, Dense):
        return inner.units
    if isinstance(inner, SimpleRNN):
        return inner.units
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


def _units(spec: LayerSpec, key: str = "units") -> int | None:
    value: Any = spec.config.get(key)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _build_layer(spec: LayerSpec, arrays: list[Array], where: str, width: int | None) -> Layer:
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
        _check(
            width is None or kernel.shape[0] == width,
            where,
            spec,
            f"kernel {_fmt(kernel.shape)} expects {kernel.shape[0]} input features "
            f"but the previous layer gives {width}",
        )
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
    if cls == "SimpleRNN":
        use_bias = bool(cfg.get("use_bias", True))
        got = _take(spec, arrays, 2 + use_bias, where)
        kernel = _float(got[0], where, name, "kernel")
        rec = _float(got[1], where, name, "recurrent_kernel")
        _check(
            kernel.ndim == 2, where, spec, f"kernel has shape {_fmt(kernel.shape)}, expected (D, M)"
        )
        _check(
            rec.ndim == 2 and rec.shape[0] == rec.shape[1],
            where,
            spec,
            f"recurrent_kernel has shape {_fmt(rec.shape)}, expected (M, M)",
        )
        _check(
            kernel.shape[1] == rec.shape[0],
            where,
            spec,
            f"kernel {_fmt(kernel.shape)} and recurrent_kernel {_fmt(rec.shape)} disagree on M",
        )
        units = _units(spec)
        _check(
            units is None or rec.shape[0] == units,
            where,
            spec,
            f"recurrent_kernel {_fmt(rec.shape)} does not match units={units}",
        )
        _check(
            width is None or kernel.shape[0] == width,
            where,
            spec,
            f"kernel {_fmt(kernel.shape)} expects D={kernel.shape[0]} input features "
            f"but the previous layer gives {width}",
        )
        bias = None
        if use_bias:
            bias = _float(got[2], where, name, "bias")
            _check(
                bias.shape == (rec.shape[0],),
                where,
                spec,
                f"bias {_fmt(bias.shape)} does not match recurrent_kernel {_fmt(rec.shape)}",
            )
        return SimpleRNN(
            name=name,
            kernel=kernel,
            recurrent_kernel=rec,
            bias=bias,
            activation=activations.activation_name(cfg.get("activation", "tanh"), ctx),
            return_sequences=bool(cfg.get("return_sequences", False)),
            return_state=bool(cfg.get("return_state", False)),
            go_backwards=bool(cfg.get("go_backwards", False)),
            zero_output_for_mask=bool(cfg.get("zero_output_for_mask", False)),
            stateful=bool(cfg.get("stateful", False)),
        )
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
        inner = _build_layer(spec.inner, arrays, where, width)
        if not isinstance(inner, (Dense, Activation, Passthrough)):
            raise ModelError(
                f"{where}: layer {name!r} wraps a {inner.class_name}; "
                "TimeDistributed is supported around Dense, Activation and Dropout"
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
