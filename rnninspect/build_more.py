"""Typed layers for the families beyond the recurrent core: merges, sequence
plumbing, convolutions and pooling, normalisation, activation layers, attention,
RNN cell stacks and ConvLSTM. Each weight is checked against the config and the
width of the tensor it meets, here, once (``build`` does the core layers).
"""

from __future__ import annotations

import math
from typing import Any

from . import activations
from .architecture import LayerSpec
from .errors import ModelError, UnsupportedLayerError
from .model import (
    ELU,
    MHA_WEIGHTS,
    Array,
    Attention,
    BatchNormalization,
    Conv,
    ConvLSTM,
    Layer,
    LayerNormalization,
    LeakyReLU,
    Merge,
    MultiHeadAttention,
    Plumbing,
    Pooling,
    PReLU,
    ReLU,
    Shape,
    Softmax,
    StackedRNN,
)

_MERGE_MODES = {
    "Concatenate": "concatenate",
    "Add": "add",
    "Subtract": "subtract",
    "Multiply": "multiply",
    "Average": "average",
    "Maximum": "maximum",
    "Minimum": "minimum",
    "Dot": "dot",
}
_PLUMBING = {
    "RepeatVector": "repeat_vector",
    "Flatten": "flatten",
    "Reshape": "reshape",
    "Permute": "permute",
    "Cropping1D": "cropping1d",
    "ZeroPadding1D": "zero_padding1d",
    "UpSampling1D": "upsampling1d",
}


def _fail(spec: LayerSpec, where: str, message: str) -> ModelError:
    return ModelError(f"{where}: layer {spec.name!r} ({spec.keras_class}): {message}")


def _int(spec: LayerSpec, where: str, key: str, default: Any = None) -> int:
    value = spec.config.get(key, default)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(spec, where, f"{key} is {value!r}, expected a whole number")
    return int(value)


def _ints(spec: LayerSpec, where: str, key: str, rank: int, default: Any = None) -> tuple[int, ...]:
    value = spec.config.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value] * rank
    if (
        not isinstance(value, list | tuple)
        or len(value) != rank
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise _fail(spec, where, f"{key} is {value!r}, expected {rank} whole number(s)")
    return tuple(int(v) for v in value)


def _pair(spec: LayerSpec, where: str, key: str, default: Any) -> tuple[int, int]:
    a, b = _ints(spec, where, key, 2, default)
    return a, b


def _float(spec: LayerSpec, where: str, key: str, default: float | None) -> float | None:
    value = spec.config.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(spec, where, f"{key} is {value!r}, expected a number")
    return float(value)


def _arrays(spec: LayerSpec, arrays: list[Array], where: str, n: int) -> list[Array]:
    if len(arrays) != n:
        raise _fail(spec, where, f"has {len(arrays)} weight arrays, expected {n}")
    for a in arrays:
        if a.dtype.kind != "f":
            raise _fail(spec, where, f"a weight has dtype {a.dtype}, expected floats")
    return arrays


def _shape(a: Array) -> str:
    return "(" + ",".join(str(d) for d in a.shape) + (",)" if a.ndim == 1 else ")")


def _channels_first(spec: LayerSpec, where: str) -> bool:
    fmt = spec.config.get("data_format") or spec.config.get("dim_ordering") or "channels_last"
    if fmt in ("channels_last", "tf"):
        return False
    if fmt in ("channels_first", "th"):
        return True
    raise _fail(spec, where, f"unknown data_format {fmt!r}")


def build(
    spec: LayerSpec,
    arrays: list[Array],
    where: str,
    width: int | None,
    major: int,
    ins: list[Shape],
) -> Layer | None:
    """The layer ``spec`` describes, or None when it is one of ``build``'s own."""
    cls = spec.class_name
    name = spec.name
    cfg = spec.config
    ctx = f"{where}: layer {name!r}"
    if cls in _MERGE_MODES:
        _arrays(spec, arrays, where, 0)
        mode = _MERGE_MODES[cls]
        axes: tuple[int, int] = (-1, -1)
        if mode == "dot":
            raw = cfg.get("axes", -1)
            pair = raw if isinstance(raw, list) else [raw, raw]
            if len(pair) != 2 or not all(isinstance(a, int) for a in pair):
                raise _fail(spec, where, f"axes {raw!r} is not an axis or a pair of axes")
            axes = (int(pair[0]), int(pair[1]))
        return Merge(
            name=name,
            mode=mode,
            axis=_int(spec, where, "axis", -1) if mode == "concatenate" else -1,
            axes=axes,
            normalize=bool(cfg.get("normalize", False)),
        )
    if cls in _PLUMBING:
        _arrays(spec, arrays, where, 0)
        return Plumbing(name=name, op=_PLUMBING[cls], args=_plumbing_args(spec, where))
    if cls in ("Conv1D", "Conv2D"):
        return _conv(spec, arrays, where, width, 1 if cls == "Conv1D" else 2)
    if "Pooling" in cls:
        _arrays(spec, arrays, where, 0)
        rank = 2 if cls.endswith("2D") else 1
        op = "max" if "Max" in cls else "avg"
        if cls.startswith("Global"):
            return Pooling(
                name=name,
                rank=rank,
                op=op,
                global_=True,
                keepdims=bool(cfg.get("keepdims", False)),
                channels_first=_channels_first(spec, where),
            )
        size = _ints(spec, where, "pool_size", rank, 2)
        strides = cfg.get("strides")
        padding = cfg.get("padding", "valid")
        if padding not in ("valid", "same"):
            raise _fail(spec, where, f"unknown padding {padding!r}")
        return Pooling(
            name=name,
            rank=rank,
            op=op,
            pool_size=size,
            strides=size if strides is None else _ints(spec, where, "strides", rank),
            padding=str(padding),
            channels_first=_channels_first(spec, where),
        )
    if cls == "BatchNormalization":
        return _batch_norm(spec, arrays, where, ins)
    if cls == "LayerNormalization":
        return _layer_norm(spec, arrays, where, ins)
    if cls == "ReLU":
        _arrays(spec, arrays, where, 0)
        return ReLU(
            name=name,
            max_value=_float(spec, where, "max_value", None),
            negative_slope=_float(spec, where, "negative_slope", 0.0) or 0.0,
            threshold=_float(spec, where, "threshold", 0.0) or 0.0,
        )
    if cls == "LeakyReLU":
        _arrays(spec, arrays, where, 0)
        key = "negative_slope" if "negative_slope" in cfg else "alpha"
        return LeakyReLU(name=name, alpha=_float(spec, where, key, 0.3) or 0.0)
    if cls == "ELU":
        _arrays(spec, arrays, where, 0)
        return ELU(name=name, alpha=_float(spec, where, "alpha", 1.0) or 0.0)
    if cls == "PReLU":
        (alpha,) = _arrays(spec, arrays, where, 1)
        x = ins[0] if ins else ()
        ok = alpha.ndim == len(x) and all(
            a in (1, d) or d is None for a, d in zip(alpha.shape, x, strict=True)
        )
        if not ok:
            raise _fail(spec, where, f"alpha {_shape(alpha)} does not fit its input {x}")
        return PReLU(name=name, alpha=alpha)
    if cls == "Softmax":
        _arrays(spec, arrays, where, 0)
        raw = cfg.get("axis", -1)
        axis = tuple(raw) if isinstance(raw, list) else (raw,)
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
            raise _fail(spec, where, f"axis {raw!r} is not an axis")
        return Softmax(name=name, axis=tuple(int(a) for a in axis))
    if cls in ("Attention", "AdditiveAttention"):
        return _attention(spec, arrays, where, ins)
    if cls == "MultiHeadAttention":
        return _mha(spec, arrays, where, ins)
    if cls == "StackedRNN":
        return _stacked(spec, arrays, where, width, major)
    if cls in ("ConvLSTM1D", "ConvLSTM2D"):
        return _conv_lstm(spec, arrays, where, width, int(cls[-2]), ctx)
    return None


def _plumbing_args(spec: LayerSpec, where: str) -> tuple[int, ...]:
    cls = spec.class_name
    cfg = spec.config
    if cls == "RepeatVector":
        return (_int(spec, where, "n"),)
    if cls == "Flatten":
        if cfg.get("data_format") == "channels_first":
            raise UnsupportedLayerError(f"{where}: Flatten {spec.name!r}: channels_first")
        return ()
    if cls == "Reshape":
        target = cfg.get("target_shape")
        if not isinstance(target, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and (d > 0 or d == -1) for d in target
        ):
            raise _fail(spec, where, f"target_shape {target!r} is not a shape")
        return tuple(int(d) for d in target)
    if cls == "Permute":
        dims = cfg.get("dims")
        if not isinstance(dims, list) or sorted(dims) != list(range(1, len(dims) + 1)):
            raise _fail(spec, where, f"dims {dims!r} is not a permutation of 1..n")
        return tuple(int(d) for d in dims)
    if cls == "Cropping1D":
        return _pair(spec, where, "cropping", [1, 1])
    if cls == "ZeroPadding1D":
        return _pair(spec, where, "padding", [1, 1])
    return (_int(spec, where, "size", 2),)  # UpSampling1D


def _conv(spec: LayerSpec, arrays: list[Array], where: str, width: int | None, rank: int) -> Conv:
    cfg = spec.config
    use_bias = bool(cfg.get("use_bias", True))
    got = _arrays(spec, arrays, where, 1 + use_bias)
    kernel = got[0]
    if rank == 1 and kernel.ndim == 4 and kernel.shape[1] == 1:
        kernel = kernel[:, 0]  # Keras 1 stored Conv1D kernels as (k, 1, C, F)
    if kernel.ndim != rank + 2:
        raise _fail(spec, where, f"kernel {_shape(kernel)} is not {rank + 2}-D (k..., C, F)")
    groups = _int(spec, where, "groups", 1)
    channels_first = _channels_first(spec, where)
    C = kernel.shape[-2] * groups
    if width is not None and not channels_first and width != C:
        raise _fail(
            spec,
            where,
            f"kernel {_shape(kernel)} expects {C} input channels, the input has {width}",
        )
    F = int(kernel.shape[-1])
    filters = cfg.get("filters")
    if isinstance(filters, int) and filters != F:
        raise _fail(spec, where, f"kernel {_shape(kernel)} does not match filters={filters}")
    if groups < 1 or F % groups:
        raise _fail(spec, where, f"filters={F} cannot be split into groups={groups}")
    bias = None
    if use_bias:
        bias = got[1]
        if bias.shape != (F,):
            raise _fail(spec, where, f"bias {_shape(bias)} does not match {F} filters")
    padding = cfg.get("padding", "valid")
    if padding not in ("valid", "same", "causal") or (padding == "causal" and rank != 1):
        raise _fail(spec, where, f"unknown padding {padding!r}")
    return Conv(
        name=spec.name,
        rank=rank,
        kernel=kernel,
        bias=bias,
        strides=_ints(spec, where, "strides", rank, 1),
        padding=str(padding),
        dilation_rate=_ints(spec, where, "dilation_rate", rank, 1),
        groups=groups,
        activation=activations.activation_name(cfg.get("activation"), f"{where}: {spec.name!r}"),
        channels_first=channels_first,
    )


def _norm_axes(spec: LayerSpec, where: str, ins: list[Shape], default: Any) -> tuple[int, ...]:
    raw = spec.config.get("axis", default)
    axes = raw if isinstance(raw, list) else [raw]
    rank = len(ins[0]) + 1 if ins else 0
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, int) or not (-rank <= a < rank) or a == 0:
            raise _fail(spec, where, f"axis {raw!r} does not fit an input of rank {rank}")
        out.append(a % rank)
    return tuple(out)


def _batch_norm(
    spec: LayerSpec, arrays: list[Array], where: str, ins: list[Shape]
) -> BatchNormalization:
    cfg = spec.config
    scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
    got = _arrays(spec, arrays, where, 2 + scale + center)
    (axis,) = _norm_axes(spec, where, ins, -1)[:1] or (-1,)
    C = ins[0][axis - 1] if ins else None
    for a in got:
        if a.ndim != 1 or (C is not None and a.shape[0] != C):
            raise _fail(spec, where, f"a weight shaped {_shape(a)} does not fit {C} features")
    gamma = got.pop(0) if scale else None
    beta = got.pop(0) if center else None
    mean, var = got
    return BatchNormalization(
        name=spec.name,
        axis=axis,
        gamma=gamma,
        beta=beta,
        moving_mean=mean,
        moving_variance=var,
        epsilon=_float(spec, where, "epsilon", 1e-3) or 0.0,
    )


def _layer_norm(
    spec: LayerSpec, arrays: list[Array], where: str, ins: list[Shape]
) -> LayerNormalization:
    cfg = spec.config
    scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
    got = _arrays(spec, arrays, where, scale + center)
    axes = _norm_axes(spec, where, ins, -1)
    want = tuple(ins[0][a - 1] for a in axes) if ins else None
    for a in got:
        if want is not None and None not in want and a.size != math.prod(int(d or 0) for d in want):
            raise _fail(spec, where, f"a weight shaped {_shape(a)} does not fit {want}")
    return LayerNormalization(
        name=spec.name,
        axes=axes,
        gamma=got.pop(0) if scale else None,
        beta=got.pop(0) if center else None,
        epsilon=_float(spec, where, "epsilon", 1e-3) or 0.0,
        rms_scaling=bool(cfg.get("rms_scaling", False)),
    )


def _attention(spec: LayerSpec, arrays: list[Array], where: str, ins: list[Shape]) -> Attention:
    cfg = spec.config
    additive = spec.class_name == "AdditiveAttention"
    use_scale = bool(cfg.get("use_scale", additive))
    score = "additive" if additive else str(cfg.get("score_mode", "dot"))
    if score not in ("dot", "concat", "additive"):
        raise _fail(spec, where, f"unknown score_mode {score!r}")
    got = _arrays(spec, arrays, where, int(use_scale) + int(score == "concat"))
    scale = got.pop(0) if use_scale else None
    if scale is not None:
        want = (ins[0][-1],) if additive and ins else ()
        if scale.shape != want and not (additive and scale.ndim == 1):
            raise _fail(spec, where, f"scale {_shape(scale)} is not shaped {want}")
    return Attention(
        name=spec.name,
        score=score,
        use_scale=use_scale,
        scale=scale,
        concat_score_weight=got.pop(0) if got else None,
        causal=bool(cfg.get("causal", False)),
    )


def _mha(spec: LayerSpec, arrays: list[Array], where: str, ins: list[Shape]) -> MultiHeadAttention:
    cfg = spec.config
    use_bias = bool(cfg.get("use_bias", True))
    got = _arrays(spec, arrays, where, 4 * (1 + use_bias))
    H = _int(spec, where, "num_heads")
    key_dim = _int(spec, where, "key_dim")
    kernels: dict[str, Array] = {}
    biases: dict[str, Array] = {}
    for i, part in enumerate(MHA_WEIGHTS):
        kernels[part] = got[i * (1 + use_bias)]
        if use_bias:
            biases[part] = got[i * 2 + 1]
    q = kernels["query"]
    if q.ndim != 3 or q.shape[1] != H or q.shape[2] != key_dim:
        raise _fail(spec, where, f"query kernel {_shape(q)} is not (D, {H}, {key_dim})")
    if ins and q.shape[0] != ins[0][-1]:
        raise _fail(spec, where, f"query kernel {_shape(q)} does not fit a query of {ins[0]}")
    o = kernels["output"]
    if o.ndim != 3 or o.shape[0] != H:
        raise _fail(spec, where, f"output kernel {_shape(o)} is not ({H}, Vd, D)")
    axes = cfg.get("attention_axes")
    if axes is not None:
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        rank = len(ins[0]) + 1 if ins else 3
        if tuple(a % rank for a in axes) != (rank - 2,):
            raise UnsupportedLayerError(
                f"{where}: MultiHeadAttention {spec.name!r}: attention_axes={axes} "
                "(only attention over the time axis is computed)"
            )
    if isinstance(cfg.get("output_shape"), list) and len(cfg["output_shape"]) > 1:
        raise UnsupportedLayerError(
            f"{where}: MultiHeadAttention {spec.name!r}: a multi-axis output_shape"
        )
    if cfg.get("use_gate"):
        raise UnsupportedLayerError(f"{where}: MultiHeadAttention {spec.name!r}: use_gate=True")
    return MultiHeadAttention(
        name=spec.name,
        num_heads=H,
        key_dim=key_dim,
        kernels=kernels,
        biases=biases,
        dropout=_float(spec, where, "dropout", 0.0) or 0.0,
    )


def _stacked(
    spec: LayerSpec, arrays: list[Array], where: str, width: int | None, major: int
) -> StackedRNN:
    from .build import _build_recurrent

    cfg = spec.config
    cells = []
    i = 0
    for cell in spec.cells:
        n = cell.n_weights()
        built = _build_recurrent(cell, arrays[i : i + n], where, width, major)
        built.keras_class = cell.keras_class
        cells.append(built)
        i += n
        width = built.units
    if i != len(arrays):
        raise _fail(spec, where, f"has {len(arrays)} weight arrays, its cells take {i}")
    return StackedRNN(
        name=spec.name,
        cells=cells,
        return_sequences=bool(cfg.get("return_sequences", False)),
        return_state=bool(cfg.get("return_state", False)),
        go_backwards=bool(cfg.get("go_backwards", False)),
        zero_output_for_mask=bool(cfg.get("zero_output_for_mask", False)),
        stateful=bool(cfg.get("stateful", False)),
    )


def _conv_lstm(
    spec: LayerSpec, arrays: list[Array], where: str, width: int | None, rank: int, ctx: str
) -> ConvLSTM:
    cfg = spec.config
    use_bias = bool(cfg.get("use_bias", True))
    got = _arrays(spec, arrays, where, 2 + use_bias)
    kernel, rec = got[0], got[1]
    if _channels_first(spec, where):
        raise UnsupportedLayerError(f"{ctx}: ConvLSTM with data_format channels_first")
    if kernel.ndim != rank + 2 or rec.ndim != rank + 2 or kernel.shape[-1] % 4:
        raise _fail(spec, where, f"kernel {_shape(kernel)} / recurrent {_shape(rec)} malformed")
    F = kernel.shape[-1] // 4
    if rec.shape[-2:] != (F, 4 * F):
        raise _fail(spec, where, f"recurrent kernel {_shape(rec)} does not fit {F} filters")
    if width is not None and kernel.shape[-2] != width:
        raise _fail(
            spec, where, f"kernel {_shape(kernel)} expects {kernel.shape[-2]} channels, got {width}"
        )
    bias = got[2] if use_bias else None
    if bias is not None and bias.shape != (4 * F,):
        raise _fail(spec, where, f"bias {_shape(bias)} does not fit {F} filters")
    padding = cfg.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise _fail(spec, where, f"unknown padding {padding!r}")
    return ConvLSTM(
        name=spec.name,
        rank=rank,
        kernel=kernel,
        recurrent_kernel=rec,
        bias=bias,
        strides=_ints(spec, where, "strides", rank, 1),
        padding=str(padding),
        dilation_rate=_ints(spec, where, "dilation_rate", rank, 1),
        activation=activations.activation_name(cfg.get("activation", "tanh"), ctx),
        recurrent_activation=activations.activation_name(
            cfg.get("recurrent_activation", "sigmoid"), ctx
        ),
        return_sequences=bool(cfg.get("return_sequences", False)),
        return_state=bool(cfg.get("return_state", False)),
        go_backwards=bool(cfg.get("go_backwards", False)),
        stateful=bool(cfg.get("stateful", False)),
    )
