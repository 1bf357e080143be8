"""The Keras 3 weights layout (``model.weights.h5`` in a ``.keras`` zip, and
``save_weights("x.weights.h5")``): groups named after layer *classes*.

    layers/simple_rnn/cell/vars/{0,1,2}    kernel, recurrent_kernel, bias
    layers/dense/vars/{0,1}                kernel, bias
    layers/time_distributed/layer/vars/*   the wrapped layer's variables
    layers/sequential/layers/...           a nested model, recursively

tf.keras 2.13/2.14 name the top container ``_layer_checkpoint_dependencies`` and
2.13 skips numbers (``dense``, ``dense_2``), so groups are matched to layers by class
prefix and numeric suffix order, never by exact name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..architecture import Architecture, LayerSpec
from ..build import WeightMap
from ..errors import ModelError
from ..model import Array
from . import h5util

if TYPE_CHECKING:
    from ..infer import WeightGroup

_CONTAINER_NAMES = ("layers", "_layer_checkpoint_dependencies")


def snake(class_name: str) -> str:
    """Keras's ``to_snake_case``: ``SimpleRNN`` -> ``simple_rnn``."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def container(group: Any, where: str) -> Any:
    for name in _CONTAINER_NAMES:
        found = h5util.child(group, name, where)
        if found is not None and h5util.is_group(found):
            return found
    return None


def is_native(root: Any) -> bool:
    try:
        return any(name in root for name in (*_CONTAINER_NAMES, "vars"))
    except (OSError, ValueError, TypeError):
        return False


def _holds_data(
    group: Any, where: str, seen: dict[tuple[int, ...], bool] | None = None, depth: int = 0
) -> bool:
    """Does ``group`` hold a dataset anywhere below it? Each group is looked into
    once (``seen``, by its address in the file): hard links can make a small file's
    groups a DAG with billions of paths, or a cycle."""
    if depth > 32:
        raise ModelError(f"{where}: HDF5 groups nested too deeply")
    seen = {} if seen is None else seen
    try:
        key = h5util.object_key(group)
    except (AttributeError, TypeError, ValueError, OSError, RuntimeError) as exc:
        raise ModelError(f"{where}: unreadable HDF5 group ({exc})") from exc
    if key in seen:
        return seen[key]  # a cycle back to a group being looked into counts as empty
    seen[key] = False
    found = False
    for name in h5util.children(group, where):
        item = h5util.child(group, name, where)
        if h5util.is_dataset(item) or (
            h5util.is_group(item) and _holds_data(item, where, seen, depth + 1)
        ):
            found = True
            break
    seen[key] = found
    return found


def _vars(group: Any, where: str, size: int) -> list[Array]:
    holder = h5util.child(group, "vars", where)
    if holder is None or not h5util.is_group(holder):
        return []
    return [
        h5util.read_array(h5util.child(holder, key, where), where, size)
        for key in h5util.numbered(h5util.children(holder, where))
    ]


def _extract(
    spec: LayerSpec,
    group: Any,
    key: tuple[str, ...],
    where: str,
    size: int,
    out: dict[tuple[str, ...], list[Array]],
) -> None:
    if spec.is_container:
        inner = container(group, where)
        if inner is None:
            raise ModelError(f"{where}: nested model {spec.name!r} has no layers group in the file")
        match_container(inner, spec.children, key, where, size, out)
        return
    if spec.class_name == "Bidirectional":
        out[key] = _bidi_arrays(group, where, size)
        return
    if spec.inner is not None:  # TimeDistributed: the wrapped layer's variables
        sub = h5util.child(group, "layer", where)
        arrays = _leaf_arrays(spec.inner, sub if sub is not None else group, where, size)
    else:
        arrays = _leaf_arrays(spec, group, where, size)
    out[key] = arrays


def _bidi_arrays(group: Any, where: str, size: int) -> list[Array]:
    arrays: list[Array] = []
    for part in ("forward_layer", "backward_layer"):
        sub = h5util.child(group, part, where)
        if sub is None or not h5util.is_group(sub):
            raise ModelError(f"{where}: Bidirectional group {group.name} has no {part}")
        arrays += _leaf_arrays(LayerSpec("", part, {}), sub, where, size)
    return arrays


# MultiHeadAttention keeps each projection in a sub-object: query_dense, ... in
# Keras 3, _query_dense, ... in tf.keras; get_weights() order is query, key, value,
# output.
_MHA_PARTS = ("query", "key", "value", "output")


def _leaf_arrays(spec: LayerSpec, group: Any, where: str, size: int) -> list[Array]:
    if spec.class_name == "MultiHeadAttention":
        arrays: list[Array] = []
        for part in _MHA_PARTS:
            sub = h5util.child(group, f"{part}_dense", where)
            if sub is None:
                sub = h5util.child(group, f"_{part}_dense", where)
            if sub is None or not h5util.is_group(sub):
                raise ModelError(f"{where}: MultiHeadAttention group {group.name} has no {part}")
            arrays += _vars(sub, where, size)
        return arrays
    cell = h5util.child(group, "cell", where)
    if cell is not None and h5util.is_group(cell):
        cells = h5util.child(cell, "cells", where)
        if spec.cells and cells is not None and h5util.is_group(cells):
            return _stacked_cells(spec, cells, where, size)
        return _vars(cell, where, size)
    return _vars(group, where, size)


def _stacked_cells(spec: LayerSpec, cells: Any, where: str, size: int) -> list[Array]:
    """StackedRNNCells: ``cell/cells/<cell class>[_k]/vars``, numbered per class."""
    queues: dict[str, list[str]] = {}
    for name in h5util.children(cells, where):
        base, _ = h5util.split_suffix(name)
        queues.setdefault(base, []).append(name)
    for base, names in queues.items():
        queues[base] = sorted(names, key=lambda x: h5util.split_suffix(x)[1])
    arrays: list[Array] = []
    for cell in spec.cells:
        names = queues.get(snake(cell.keras_class)) or []
        if not names:
            raise ModelError(f"{where}: no weights for cell {cell.name!r} ({cell.keras_class})")
        arrays += _vars(cells[names.pop(0)], where, size)
    return arrays


def match_container(
    group: Any,
    specs: list[LayerSpec],
    prefix: tuple[str, ...],
    where: str,
    size: int,
    out: dict[tuple[str, ...], list[Array]],
) -> None:
    """Assign the container's class-named groups to the config's weighted layers."""
    queues: dict[str, list[str]] = {}
    seen: dict[tuple[int, ...], bool] = {}
    for name in h5util.children(group, where):
        item = h5util.child(group, name, where)
        if h5util.is_group(item) and _holds_data(item, where, seen):
            base, _ = h5util.split_suffix(name)
            queues.setdefault(base, []).append(name)
    for base, names in queues.items():
        queues[base] = sorted(names, key=lambda x: h5util.split_suffix(x)[1])
    for spec in specs:
        if spec.n_weights() == 0:
            continue
        base = snake(spec.keras_class)
        names = queues.get(base) or []
        if not names:
            raise ModelError(
                f"{where}: no weights in the file for layer {spec.name!r} ({spec.class_name}); "
                f"expected a group {base!r}"
            )
        _extract(spec, group[names.pop(0)], (*prefix, spec.name), where, size, out)


def weights_for(root: Any, arch: Architecture, where: str, size: int) -> WeightMap:
    """The weights of ``arch`` from a native-layout HDF5 root."""
    out: dict[tuple[str, ...], list[Array]] = {}
    top = container(root, where)
    if top is None:
        raise ModelError(f"{where}: no 'layers' group in the weights file")
    match_container(top, arch.layers, (), where, size, out)
    return out


def weight_groups(root: Any, where: str, size: int) -> list[WeightGroup]:
    """Weights-only: one group per top-level layer, for architecture inference."""
    from ..infer import WeightGroup, class_from_name  # only weights-only files need it

    top = container(root, where)
    if top is None:
        raise ModelError(f"{where}: no 'layers' group in the weights file")
    groups = []
    for name in h5util.children(top, where):
        item = h5util.child(top, name, where)
        if not h5util.is_group(item):
            continue
        base, ordinal = h5util.split_suffix(name)
        cls = class_from_name(base)
        if base in ("input_layer", "input"):
            continue
        if h5util.child(item, "layers", where) is not None:
            raise ModelError(
                f"{where}: layer group {name!r} is a nested model; pass --config with the "
                "model's architecture to read it"
            )
        sub = h5util.child(item, "layer", where)
        if h5util.child(item, "forward_layer", where) is not None:
            arrays = _bidi_arrays(item, where, size)
            cls = "Bidirectional"
        else:
            holder = sub if sub is not None else item
            arrays = _leaf_arrays(LayerSpec("", name, {}), holder, where, size)
        vars_group = h5util.child(item, "vars", where)
        cell = h5util.child(item, "cell", where)
        label = None
        for holder in (vars_group, cell):
            if holder is not None and label is None:
                label = h5util.attr(holder, "name")
        if cls is None:
            raise ModelError(
                f"{where}: layer group {name!r} is of a class rnninspect does not know"
            )
        groups.append(
            WeightGroup(
                name=label if isinstance(label, str) else name,
                arrays=arrays,
                class_hint=cls,
                ordinal=ordinal,
            )
        )
    return groups
