"""Architecture from weights alone, for files that carry no config.

Weights-only files (Keras 3 ``.weights.h5``, legacy ``save_weights`` ``.h5``, ``.npz``
without ``__config__``) give arrays, sometimes names, sometimes an order. The chain is
recovered from shapes (each layer's input width is the previous layer's output width)
and Keras's defaults are assumed; every assumption is recorded so the CLI can say it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .architecture import Architecture, LayerSpec
from .errors import ModelError
from .model import Array

# snake_case group / layer-name prefixes -> Keras classes.
_CLASS_BY_PREFIX = {
    "simple_rnn": "SimpleRNN",
    "simplernn": "SimpleRNN",
    "dense": "Dense",
    "embedding": "Embedding",
    "time_distributed": "TimeDistributed",
    "timedistributed": "TimeDistributed",
    "masking": "Masking",
    "dropout": "Dropout",
    "activation": "Activation",
    "lstm": "LSTM",
    "gru": "GRU",
    "bidirectional": "Bidirectional",
}
_ORDER_PRIORITY = [
    "Embedding",
    "Masking",
    "Bidirectional",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "TimeDistributed",
    "Dense",
]


def class_from_name(name: str) -> str | None:
    """Guess a Keras class from a layer/group name like ``simple_rnn_2``."""
    base = re.sub(r"_\d+$", "", name.lower())
    return _CLASS_BY_PREFIX.get(base)


@dataclass
class WeightGroup:
    """The arrays of one layer as a weights-only file gives them."""

    name: str
    arrays: list[Array]
    weight_names: list[str] = field(default_factory=list)  # may be empty
    class_hint: str | None = None
    ordinal: int = 0  # position among groups of its class (Keras 3 files)


def _recurrent_spec(name: str, arrays: list[Array], hint: str | None, where: str) -> LayerSpec:
    shapes = [a.shape for a in arrays]
    if len(arrays) not in (2, 3) or arrays[0].ndim != 2 or arrays[1].ndim != 2:
        raise ModelError(f"{where}: recurrent layer {name!r} has arrays {shapes}")
    m, gm = arrays[1].shape
    cls = {m: "SimpleRNN", 4 * m: "LSTM", 3 * m: "GRU"}.get(gm) if m else None
    if cls is None or (hint in ("SimpleRNN", "LSTM", "GRU") and hint != cls):
        raise ModelError(
            f"{where}: layer {name!r}: recurrent kernel {shapes[1]} fits no "
            f"{hint or 'SimpleRNN/LSTM/GRU'} layout (M, g*M)"
        )
    cfg: dict[str, object] = {
        "name": name,
        "units": int(m),
        "use_bias": len(arrays) == 3,
        "activation": "tanh",
    }
    if cls == "GRU":
        cfg["reset_after"] = len(arrays) == 3 and arrays[2].ndim == 2
    return LayerSpec(cls, name, cfg)


def _classify(group: WeightGroup, where: str) -> LayerSpec:
    arrays = group.arrays
    names = " ".join(group.weight_names).lower()
    hint = group.class_hint or class_from_name(group.name)
    if group.class_hint is None and names and arrays:
        # Weight names are evidence; a layer's own name is only a guess (a Dense may
        # be called "simple_rnn_7"): keep the guess only where the names agree.
        recurrent_names = "recurrent_kernel" in names
        if (hint in ("SimpleRNN", "LSTM", "GRU")) != recurrent_names or (
            hint == "Embedding" and "embeddings" not in names
        ):
            hint = None
    shapes = [a.shape for a in arrays]
    if not arrays:
        if hint == "Masking":
            return LayerSpec("Masking", group.name, {"name": group.name, "mask_value": 0.0})
        cls = hint if hint in {"Dropout", "Activation"} else "Dropout"
        if cls == "Activation":
            return LayerSpec("Activation", group.name, {"name": group.name, "activation": "linear"})
        return LayerSpec(cls, group.name, {"name": group.name})
    if hint == "Embedding" or "embeddings" in names:
        if len(arrays) != 1 or arrays[0].ndim != 2:
            raise ModelError(f"{where}: embedding layer {group.name!r} has arrays {shapes}")
        v, e = arrays[0].shape
        cfg = {"name": group.name, "input_dim": v, "output_dim": e}
        return LayerSpec("Embedding", group.name, cfg)
    if hint == "Bidirectional" or ("forward" in names and "backward" in names):
        if len(arrays) not in (4, 6):
            raise ModelError(f"{where}: Bidirectional layer {group.name!r} has arrays {shapes}")
        half = len(arrays) // 2
        inner = _recurrent_spec("forward_" + group.name, arrays[:half], None, where)
        inner.config["return_sequences"] = False
        cfg = {"name": group.name, "merge_mode": "concat"}
        return LayerSpec("Bidirectional", group.name, cfg, inner=inner)
    recurrent = (
        hint in ("SimpleRNN", "LSTM", "GRU")
        or "recurrent_kernel" in names
        or (len(arrays) >= 2 and arrays[0].ndim == 2 and arrays[1].ndim == 2)
    )
    if recurrent:
        return _recurrent_spec(group.name, arrays, hint, where)
    if len(arrays) in (1, 2) and arrays[0].ndim == 2:
        cfg = {
            "name": group.name,
            "units": int(arrays[0].shape[1]),
            "use_bias": len(arrays) == 2,
            "activation": "linear",
        }
        dense = LayerSpec("Dense", group.name, cfg)
        if hint == "TimeDistributed":
            inner = LayerSpec("Dense", group.name + "_dense", dict(cfg))
            return LayerSpec("TimeDistributed", group.name, {"name": group.name}, inner=inner)
        return dense
    raise ModelError(f"{where}: cannot tell what layer {group.name!r} is from arrays {shapes}")


_RECURRENT = ("SimpleRNN", "LSTM", "GRU", "Bidirectional")


def _in_out(spec: LayerSpec, arrays: list[Array]) -> tuple[int | None, int | None]:
    if spec.class_name == "Embedding":
        return None, int(arrays[0].shape[1])
    if spec.class_name == "Bidirectional":
        return int(arrays[0].shape[0]), 2 * int(arrays[1].shape[0])  # concat assumed
    if spec.class_name in _RECURRENT:
        return int(arrays[0].shape[0]), int(arrays[1].shape[0])
    if arrays:
        return int(arrays[0].shape[0]), int(arrays[0].shape[1])
    return None, None


def infer_architecture(
    groups: list[WeightGroup], ordered: bool, where: str, name: str = "model"
) -> tuple[Architecture, dict[tuple[str, ...], list[Array]], list[str]]:
    """Recover the chain. ``ordered``: the groups are already in layer order."""
    specs = [_classify(g, where) for g in groups]
    assumptions: list[str] = []
    if not any(g.arrays for g in groups):
        raise ModelError(f"{where}: file holds no weights")
    order = list(range(len(groups)))
    if not ordered:
        order = _chain_order(specs, groups, where, assumptions)
    specs = [specs[i] for i in order]
    groups = [groups[i] for i in order]
    # Weightless layers before the first weighted one are a Functional model's
    # InputLayer (whatever its name) or no-ops on the input: only Masking matters.
    while specs and not groups[0].arrays and specs[0].class_name != "Masking":
        specs, groups = specs[1:], groups[1:]
    weights: dict[tuple[str, ...], list[Array]] = {
        (s.name,): g.arrays for s, g in zip(specs, groups, strict=True)
    }
    # Keras's defaults: every recurrent layer but the last returns sequences; a
    # TimeDistributed head needs sequences too.
    rec = [i for i, s in enumerate(specs) if s.class_name in _RECURRENT]
    for i in rec:
        follows_td = any(s.class_name == "TimeDistributed" for s in specs[i + 1 :])
        target = specs[i].inner if specs[i].class_name == "Bidirectional" else specs[i]
        assert target is not None
        target.config["return_sequences"] = i != rec[-1] or follows_td
    first = specs[0] if specs else None
    if first is not None and first.class_name == "Embedding":
        input_shape: tuple[int | None, ...] = (None,)
        dtype = "int32"
    else:
        d = next((int(g.arrays[0].shape[0]) for g in groups if g.arrays), None)
        input_shape, dtype = (None, d), "float32"
    chain = " -> ".join(f"{s.class_name}({s.name})" for s in specs)
    assumptions.insert(
        0,
        f"no architecture in the file; inferred {chain} from the weight shapes, "
        f"with Keras's defaults ({', '.join(_defaults(specs))}); "
        "pass --config to use the real architecture",
    )
    arch = Architecture(name=name, layers=specs, input_shape=input_shape, input_dtype=dtype)
    return arch, weights, assumptions


def _defaults(specs: list[LayerSpec]) -> list[str]:
    """The defaults an inferred chain assumed, for the layers it has only."""
    classes = {s.class_name for s in specs} | {s.inner.class_name for s in specs if s.inner}
    recurrent = [c for c in ("SimpleRNN", "LSTM", "GRU") if c in classes]
    out = []
    if recurrent:
        out.append(f"tanh {'/'.join(recurrent)}")
    gated = [c for c in ("LSTM", "GRU") if c in classes]
    if gated:
        # build._writer_defaults says hard_sigmoid where the file's Keras defaulted to it.
        out.append(f"sigmoid {'/'.join(gated)} gates")
    if "Bidirectional" in classes:
        out.append("concat Bidirectional merge")
    if "Dense" in classes:
        out.append("linear Dense")
    if "Embedding" in classes:
        out.append("Embedding without mask_zero")
    if sum(s.class_name in _RECURRENT for s in specs) > 1:
        out.append("return_sequences on all but the last recurrent layer")
    if "TimeDistributed" in classes:
        out.append("sequences into the TimeDistributed layer")
    out.append("variable T")
    return out


def _chain_order(
    specs: list[LayerSpec], groups: list[WeightGroup], where: str, assumptions: list[str]
) -> list[int]:
    # Queues per class, in the order Keras numbered them (dense, dense_1, ...).
    by_class: dict[str, list[int]] = {}
    for i in sorted(range(len(specs)), key=lambda i: groups[i].ordinal):
        by_class.setdefault(specs[i].class_name, []).append(i)
    classes = sorted(
        by_class, key=lambda c: _ORDER_PRIORITY.index(c) if c in _ORDER_PRIORITY else 99
    )
    weighted = {c: [i for i in q if groups[i].arrays] for c, q in by_class.items()}
    weightless = [i for q in by_class.values() for i in q if not groups[i].arrays]
    found: list[list[int]] = []

    def search(pos: dict[str, int], width: int | None, acc: list[int]) -> None:
        if len(found) >= 2:
            return
        if all(pos[c] == len(weighted[c]) for c in classes):
            found.append(list(acc))
            return
        for c in classes:
            if pos[c] == len(weighted[c]):
                continue
            i = weighted[c][pos[c]]
            d_in, d_out = _in_out(specs[i], groups[i].arrays)
            if c == "Embedding" and acc:
                continue
            if acc and d_in is not None and width is not None and d_in != width:
                continue
            pos[c] += 1
            acc.append(i)
            search(pos, d_out, acc)
            acc.pop()
            pos[c] -= 1

    search({c: 0 for c in classes}, None, [])
    if not found:
        raise ModelError(f"{where}: the weight shapes do not form a chain of layers")
    if len(found) > 1:
        assumptions.append(
            "layer order is ambiguous from the shapes alone; assumed "
            + ", ".join(specs[i].name for i in found[0])
        )
    masks = [i for i in weightless if specs[i].class_name == "Masking"]
    others = [i for i in weightless if specs[i].class_name != "Masking"]
    if others:
        assumptions.append(
            "weightless layers "
            + ", ".join(specs[i].name for i in others)
            + " were left out (identity at inference)"
        )
    if masks:
        assumptions.append("Masking layer placed first, with mask_value=0.0")
    return masks + found[0]
