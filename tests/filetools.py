"""Helpers that synthesise model-file variants (h5py / zipfile only, never Keras)."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

H5Edit = Callable[[h5py.File], None]


def copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def edit_h5(src: Path, dst: Path, edit: H5Edit) -> Path:
    """Copy an HDF5 file and edit the copy in place."""
    copy(src, dst)
    with h5py.File(dst, "r+") as h5:
        edit(h5)
    return dst


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def edit_h5_bytes(data: bytes, edit: H5Edit, workdir: Path) -> bytes:
    tmp = workdir / "_inner.h5"
    tmp.write_bytes(data)
    with h5py.File(tmp, "r+") as h5:
        edit(h5)
    out = tmp.read_bytes()
    tmp.unlink()
    return out


def edit_keras_zip(
    src: Path,
    dst: Path,
    h5: H5Edit | None = None,
    config: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    drop: tuple[str, ...] = (),
) -> Path:
    """Copy a ``.keras`` zip, editing its ``model.weights.h5`` and/or ``config.json``."""
    members = read_zip(src)
    for name in drop:
        members.pop(name)
    if h5 is not None:
        members["model.weights.h5"] = edit_h5_bytes(members["model.weights.h5"], h5, dst.parent)
    if config is not None:
        members["config.json"] = json.dumps(config(json.loads(members["config.json"]))).encode()
    return write_zip(dst, members)


def split_suffix(name: str) -> tuple[str, int]:
    m = re.fullmatch(r"(.*?)_(\d+)", name)
    return (m.group(1), int(m.group(2))) if m else (name, 0)


def rename_children(group: h5py.Group, renames: dict[str, str]) -> None:
    """Rename child links, safely even when new names collide with old ones."""
    for old in renames:
        group.move(old, f"__tmp__{old}")
    for old, new in renames.items():
        group.move(f"__tmp__{old}", new)


def all_objects(h5: h5py.File) -> list[Any]:
    objs: list[Any] = [h5]
    h5.visititems(lambda _name, obj: objs.append(obj))
    return objs


def strings_to_fixed_bytes(h5: h5py.File) -> None:
    """Rewrite every string attribute as fixed-length bytes (as old h5py/Keras did)."""
    for obj in all_objects(h5):
        for key in list(obj.attrs):
            value = obj.attrs[key]
            if isinstance(value, str):
                obj.attrs[key] = np.bytes_(value.encode("utf-8"))
            elif isinstance(value, np.ndarray) and value.dtype.kind == "O":
                obj.attrs[key] = np.array([str(v).encode("utf-8") for v in value])


def bfloat16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def datasets(h5: h5py.File) -> list[h5py.Dataset]:
    out: list[h5py.Dataset] = []
    h5.visititems(lambda _n, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def to_bfloat16(h5: h5py.File) -> None:
    """Store every float dataset as opaque ``|V2`` with attribute dtype="bfloat16"."""
    for dset in datasets(h5):
        if dset.dtype.kind != "f":
            continue
        name, value = dset.name, dset[()]
        parent = dset.parent
        del h5[name]
        new = parent.create_dataset(name.rsplit("/", 1)[1], data=bfloat16_bits(value).view("V2"))
        new.attrs["dtype"] = "bfloat16"


def write_legacy_h5(
    path: Path,
    model_config: dict[str, Any],
    layers: list[tuple[str, list[tuple[str, np.ndarray]]]],
    keras_version: str | None = None,
    as_bytes: bool = False,
) -> Path:
    """A legacy full save (``model.save("x.h5")``) written from scratch with h5py.

    ``layers``: (layer name, [(weight name, array), ...]) in ``layer_names`` order; each
    weight is a dataset named as given inside the layer's group, listed in
    ``weight_names`` in that order. No ``keras_version`` attribute when it is None (a
    Keras 1 file). ``as_bytes``: string attributes as fixed-length bytes (old h5py)."""

    def text(value: str) -> Any:
        return np.bytes_(value.encode()) if as_bytes else value

    def names(values: list[str]) -> np.ndarray:
        if as_bytes:
            return np.array([v.encode() for v in values])
        return np.array(values, dtype=h5py.string_dtype())

    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = text(json.dumps(model_config))
        root = h5.create_group("model_weights")
        if keras_version is not None:
            h5.attrs["keras_version"] = text(keras_version)
            h5.attrs["backend"] = text("tensorflow")
            root.attrs["keras_version"] = text(keras_version)
        root.attrs["layer_names"] = names([name for name, _ in layers])
        for name, weights in layers:
            group = root.create_group(name)
            group.attrs["weight_names"] = names([wn for wn, _ in weights])
            for wn, array in weights:
                group.create_dataset(wn, data=array)
    return path
