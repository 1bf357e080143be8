"""``diff``: what differs between two models, whatever files they came from.

Layers are matched by name. Architecture: layers added or removed, a layer of
another class, any config field that differs (units, activation, flags, wrapped
layers' fields), inputs of another shape, a layer wired to other inputs, and the
one place where the Keras generation that wrote a file changes what a model
computes (``hard_sigmoid``). Weights: for each weight both models hold, its shapes
and how far the values moved. With an input, how far the outputs are apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..model import Array, InputLayer, Layer, Model
from ..versions import keras_major


@dataclass
class Change:
    layer: str | None  # None: the model itself
    # added | removed | class | config | input | wiring | semantics | weight added/removed
    change: str
    field: str | None = None
    a: Any = None
    b: Any = None


@dataclass
class WeightDiff:
    layer: str
    weight: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    max_abs_diff: float | None  # None when the shapes differ
    l2_diff: float | None  # ||a - b||
    relative_change: float | None  # ||a - b|| / ||a|| (inf when a is zero and b is not)

    @property
    def changed(self) -> bool:
        return self.shape_a != self.shape_b or self.max_abs_diff != 0.0


@dataclass
class OutputDiff:
    name: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    max_abs_diff: float | None
    l2_diff: float | None
    relative_change: float | None


@dataclass
class ModelDiff:
    architecture: list[Change]
    weights: list[WeightDiff]
    outputs: list[OutputDiff] | None = None  # with an input only
    only_in_a: list[str] = field(default_factory=list)  # layers
    only_in_b: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return (
            not self.architecture
            and not any(w.changed for w in self.weights)
            and not any(o.max_abs_diff != 0.0 for o in self.outputs or [])
        )


# Fields that say where a layer sits, not what it computes.
_IGNORED = {"name", "parent", "keras_class"}


def _config(layer: Layer, prefix: str = "") -> dict[str, Any]:
    """A layer's non-array fields, wrapped layers' as ``forward.units`` and so on."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(layer):
        if f.name in _IGNORED:
            continue
        value = getattr(layer, f.name)
        key = prefix + f.name
        if isinstance(value, np.ndarray) or (
            isinstance(value, dict) and any(isinstance(v, np.ndarray) for v in value.values())
        ):
            continue
        if isinstance(value, Layer):
            out.update(_config(value, key + "."))
        elif isinstance(value, list) and value and all(isinstance(v, Layer) for v in value):
            out[key] = len(value)
            for i, v in enumerate(value):
                out.update(_config(v, f"{key}[{i}]."))
        else:
            out[key] = value
    units = getattr(layer, "units", None)
    if isinstance(units, int):
        out[prefix + "units"] = units
    if prefix == "" and layer.class_name:
        out["class"] = layer.class_name
    return out


def _wiring(model: Model) -> dict[str, list[str]]:
    """Node key -> what it reads: ``key[tensor]`` of other nodes, ``input k`` for the
    model's inputs (whose names differ between Keras generations)."""
    position = {id(spec): k for k, spec in enumerate(model.inputs)}
    out = {}
    for node in model.nodes:
        if isinstance(node.layer, InputLayer):
            continue
        reads = []
        for r in node.inputs + node.states:
            src = model.nodes[r.node]
            if isinstance(src.layer, InputLayer):
                reads.append(f"input {position[id(src.layer)]}")
            else:
                reads.append(f"{src.key}[{r.index}]")
        out[node.key] = reads
    return out


def _hard_sigmoid(model: Model) -> bool:
    for layer in model.layers:
        cfg = _config(layer)
        if any(v == "hard_sigmoid" for v in cfg.values()):
            return True
    return False


def _numbers(a: Array, b: Array) -> tuple[float, float, float]:
    x, y = a.astype(np.float64), b.astype(np.float64)
    d = x - y
    if d.size == 0:
        return 0.0, 0.0, 0.0
    l2 = float(np.linalg.norm(d))
    base = float(np.linalg.norm(x))
    rel = 0.0 if l2 == 0 else (l2 / base if base > 0 else float("inf"))
    return float(np.max(np.abs(d))), l2, rel


def diff(a: Model | str | Path, b: Model | str | Path, x: Any = None) -> ModelDiff:
    """Compare two models (or model files); with ``x``, also their outputs on it."""
    from . import as_model

    a, b = as_model(a), as_model(b)
    changes: list[Change] = []
    la = {layer.name: layer for layer in a.layers}
    lb = {layer.name: layer for layer in b.layers}
    only_a = [n for n in la if n not in lb]
    only_b = [n for n in lb if n not in la]
    for n in only_a:
        changes.append(Change(n, "removed", None, la[n].class_name, None))
    for n in only_b:
        changes.append(Change(n, "added", None, None, lb[n].class_name))
    ins_a = [(s.name, list(s.shape), s.dtype) for s in a.inputs]
    ins_b = [(s.name, list(s.shape), s.dtype) for s in b.inputs]
    if [i[1:] for i in ins_a] != [i[1:] for i in ins_b]:
        changes.append(Change(None, "input", "inputs", ins_a, ins_b))
    weights: list[WeightDiff] = []
    wa, wb = _wiring(a), _wiring(b)
    for name, layer in la.items():
        other = lb.get(name)
        if other is None:
            continue
        if layer.class_name != other.class_name:
            changes.append(Change(name, "class", "class", layer.class_name, other.class_name))
        else:
            ca, cb = _config(layer), _config(other)
            for key in sorted(set(ca) | set(cb)):
                if ca.get(key) != cb.get(key):
                    changes.append(Change(name, "config", key, ca.get(key), cb.get(key)))
        for key in sorted(k for k in wa if k == name or k.startswith(name + "#")):
            if key in wb and wa[key] != wb[key]:
                changes.append(Change(name, "wiring", key, wa[key], wb[key]))
        arrays_b = dict(other.weights())
        names_a = [w for w, _ in layer.weights()]
        for wname, value in layer.weights():
            if wname not in arrays_b:
                changes.append(Change(name, "weight removed", wname, list(value.shape), None))
                continue
            vb = arrays_b[wname]
            sa, sb = tuple(int(d) for d in value.shape), tuple(int(d) for d in vb.shape)
            if sa != sb:
                weights.append(WeightDiff(name, wname, sa, sb, None, None, None))
            else:
                weights.append(WeightDiff(name, wname, sa, sb, *_numbers(value, vb)))
        for wname, value in other.weights():
            if wname not in names_a:
                changes.append(Change(name, "weight added", wname, None, list(value.shape)))
    ma, mb = keras_major(a.source.keras_version), keras_major(b.source.keras_version)
    if (ma >= 3) != (mb >= 3) and (_hard_sigmoid(a) or _hard_sigmoid(b)):
        text = {
            True: "clip(x/6 + 0.5, 0, 1) (Keras 3)",
            False: "clip(0.2x + 0.5, 0, 1) (Keras 1/2)",
        }
        changes.append(Change(None, "semantics", "hard_sigmoid", text[ma >= 3], text[mb >= 3]))
    outputs = None
    if x is not None:
        ya, yb = a.forward_all(x), b.forward_all(x)
        names = [f"output_{i}" for i in range(max(len(ya), len(yb)))]
        if len(names) == 1:
            names = ["output"]
        outputs = []
        for i, name in enumerate(names):
            if i >= len(ya) or i >= len(yb):
                got = ya[i] if i < len(ya) else yb[i]
                shape = tuple(int(d) for d in got.shape)
                outputs.append(
                    OutputDiff(
                        name,
                        shape if i < len(ya) else (),
                        shape if i < len(yb) else (),
                        None,
                        None,
                        None,
                    )
                )
                continue
            sa = tuple(int(d) for d in ya[i].shape)
            sb = tuple(int(d) for d in yb[i].shape)
            nums = _numbers(ya[i], yb[i]) if sa == sb else (None, None, None)
            outputs.append(OutputDiff(name, sa, sb, *nums))
    return ModelDiff(changes, weights, outputs, only_a, only_b)
