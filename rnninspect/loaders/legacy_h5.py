"""Legacy HDF5: ``model.save("x.h5")`` (root attribute ``model_config``, weights in
``model_weights``) and ``save_weights("x.h5")`` (``layer_names`` at the root).

Weights are found by layer name, then by the **order** of each layer's
``weight_names`` attribute, never by parsing weight names (nested models put odd
prefixes there; Keras 2 adds ``:0``, Keras 3 does not).
"""

from __future__ import annotations

import re
from typing import Any

from ..architecture import Architecture, LayerSpec
from ..build import WeightMap, walk
from ..errors import ModelError
from ..infer import WeightGroup
from ..model import Array
from . import h5util


def layer_names(root: Any) -> list[str] | None:
    return h5util.attr_names(root, "layer_names")


def _layer_arrays(root: Any, name: str, where: str, size: int) -> tuple[list[str], list[Array]]:
    group = h5util.child(root, name, where)
    if group is None or not h5util.is_group(group):
        raise ModelError(f"{where}: no weights group for layer {name!r}")
    names = h5util.attr_names(group, "weight_names") or []
    arrays = []
    for wn in names:
        dset = h5util.child(group, wn, where)
        if dset is None:
            raise ModelError(f"{where}: layer {name!r} lists weight {wn!r} but it is missing")
        arrays.append(h5util.read_array(dset, where, size))
    return names, arrays


def weights_for(
    root: Any, arch: Architecture, where: str, size: int
) -> tuple[WeightMap, list[str]]:
    """Weights of ``arch`` from a legacy weights root (``model_weights`` or the file root)."""
    in_file = layer_names(root) or []
    out: dict[tuple[str, ...], list[Array]] = {}
    notes: list[str] = []
    weighted = [spec for spec in arch.layers if spec.n_weights() > 0]
    if all(spec.name in in_file for spec in weighted):
        pairs = [(spec, spec.name) for spec in weighted]
    else:
        # A --config whose layer names differ from the file's (e.g. other default
        # numbering): pair weighted layers in order.
        file_weighted = [n for n in in_file if _layer_arrays(root, n, where, size)[1]]
        if len(file_weighted) != len(weighted):
            missing = [s.name for s in weighted if s.name not in in_file]
            raise ModelError(
                f"{where}: no weights in the file for layer(s) {', '.join(missing)} "
                f"(file has {', '.join(in_file) or 'none'})"
            )
        pairs = list(zip(weighted, file_weighted, strict=True))
        notes.append(
            "layer names differ between config and weights; paired in order: "
            + ", ".join(f"{s.name}<-{n}" for s, n in pairs)
        )
    for spec, name in pairs:
        _, arrays = _layer_arrays(root, name, where, size)
        _distribute(spec, arrays, (spec.name,), where, out)
    return out, notes


def _distribute(
    spec: LayerSpec,
    arrays: list[Array],
    key: tuple[str, ...],
    where: str,
    out: dict[tuple[str, ...], list[Array]],
) -> None:
    if not spec.is_container:
        out[key] = arrays
        return
    # A nested model's group holds all its layers' weights, in layer order.
    need = spec.n_weights()
    if len(arrays) != need:
        raise ModelError(
            f"{where}: nested model {spec.name!r} has {len(arrays)} weight arrays, expected {need}"
        )
    i = 0
    for sub_key, leaf in walk(spec.children, key):
        n = leaf.n_weights()
        out[sub_key] = arrays[i : i + n]
        i += n


def weight_groups(root: Any, where: str, size: int) -> list[WeightGroup]:
    """Weights-only file, no config: layers in file order, for inference."""
    names = layer_names(root)
    if names is None:
        raise ModelError(f"{where}: no layer_names attribute")
    groups = []
    for name in names:
        weight_names, arrays = _layer_arrays(root, name, where, size)
        kernels = [w for w in weight_names if re.search(r"(?<!recurrent_)kernel(:0)?$", w)]
        paired = any("forward" in w for w in kernels) and any("backward" in w for w in kernels)
        if len(kernels) > 1 and not paired:
            raise ModelError(
                f"{where}: layer group {name!r} holds the weights of {len(kernels)} layers "
                "(a nested model); pass --config with the model's architecture to read it"
            )
        if not arrays and re.fullmatch(r"input(_layer)?(_\d+)?", name):
            continue  # a Functional model's InputLayer: no computation, no weights
        groups.append(WeightGroup(name=name, arrays=arrays, weight_names=weight_names))
    return groups
