"""Safe, quirk-aware reading of HDF5 objects (shared by the HDF5 loaders).

Only plain groups and contiguous/chunked datasets stored in the file itself are read:
external links, soft links leaving the file, external storage and virtual datasets
are refused, so a model file can never make us read another file.

The objects are h5py's, or ``h5lite``'s (which reads only hard links and datasets in
the file itself): h5py is imported only for h5py's objects.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import ModelError
from ..model import Array
from . import h5lite

# A Keras weight is never compressed, so a dataset declaring far more bytes than the
# whole file holds is hostile or broken: refuse it before allocating anything.
_SLACK_BYTES = 1 << 20


def decode(value: Any) -> Any:
    """Attribute values arrive as str or bytes (and arrays of either) by writer."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SUO":
            return [decode(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return decode(value.item())
    return value


def attr(obj: Any, name: str, max_bytes: int | None = None) -> Any:
    """An attribute's value (None when absent); ``max_bytes``: refuse a larger one
    before reading it."""
    try:
        if name not in obj.attrs:
            return None
        if max_bytes is not None:
            stored = int(obj.attrs.get_id(name).get_storage_size())
            if stored > max_bytes:
                raise ModelError(
                    f"attribute {name!r} holds {stored:,} bytes, more than a model config "
                    f"holds ({max_bytes >> 20} MiB); refused"
                )
        return decode(obj.attrs[name])
    except ModelError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelError(f"unreadable attribute {name!r} ({exc})") from exc


def attr_names(obj: Any, name: str) -> list[str] | None:
    """A list-of-names attribute, joining Keras's chunks ``name0``, ``name1``, ..."""
    value = attr(obj, name)
    if value is None:
        chunks = []
        i = 0
        while (part := attr(obj, f"{name}{i}")) is not None:
            chunks.extend(part if isinstance(part, list) else [part])
            i += 1
        if not chunks:
            return None
        value = chunks
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        # An empty weight_names list reads back as float64[0].
        return [str(v) for v in value if isinstance(v, str)]
    return []


def child(group: Any, name: str, where: str) -> Any:
    """``group[name]``, refusing links that leave the file.

    Legacy weight names hold slashes (``dense/kernel:0``): every part of the path is
    checked, since HDF5 would follow a link anywhere along it.
    """
    if isinstance(group, h5lite.Node):
        # Hard links only (anything else left the file to h5py): no link to refuse.
        return group.get(name)
    import h5py

    current = group
    for part in (p for p in name.split("/") if p):
        if not is_group(current):
            return None
        try:
            link = current.get(part, getlink=True)
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise ModelError(f"{where}: cannot read {name!r} ({exc})") from exc
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise ModelError(f"{where}: {name!r} is an external link to another file; not followed")
        if isinstance(link, h5py.SoftLink):
            raise ModelError(f"{where}: {name!r} is a soft link; not followed")
        try:
            current = current[part]
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise ModelError(f"{where}: cannot read {name!r} ({exc})") from exc
    return current


def children(group: Any, where: str) -> list[str]:
    try:
        return [str(k) for k in group]
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelError(f"{where}: unreadable HDF5 group ({exc})") from exc


def is_group(obj: Any) -> bool:
    h5py = sys.modules.get("h5py")  # never imported: not an h5py object
    return isinstance(obj, h5lite.Group) or (h5py is not None and isinstance(obj, h5py.Group))


def is_dataset(obj: Any) -> bool:
    h5py = sys.modules.get("h5py")
    return isinstance(obj, h5lite.Dataset) or (h5py is not None and isinstance(obj, h5py.Dataset))


def object_key(obj: Any) -> tuple[int, ...]:
    """Where an HDF5 object lives in its file: the same for every path (hard link)
    that reaches it, so a walk can visit each object once."""
    if isinstance(obj, h5lite.Node):
        return (obj.address,)
    import h5py

    try:
        return (int(h5py.h5o.get_info(obj.id).addr),)
    except (AttributeError, TypeError, ValueError, OSError, RuntimeError):
        info = h5py.h5g.get_objinfo(obj.id)
        return (*info.fileno, *info.objno)


class _Reads:
    """The datasets one parse has read: each is read once however many names or
    links lead to it, and all of them together may not declare more bytes than the
    file holds (Keras never compresses weights, so a real file always passes)."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[int, ...], Array] = {}
        self.total = 0


_reads: list[_Reads] = []


@contextlib.contextmanager
def reading() -> Iterator[None]:
    """Within: ``read_array`` shares and counts what it reads (one parse)."""
    _reads.append(_Reads())
    try:
        yield
    finally:
        _reads.pop()


def read_array(dset: Any, where: str, file_size: int) -> Array:
    """A dataset as a numpy array, widening bfloat16 to float32."""
    if not is_dataset(dset):
        raise ModelError(f"{where}: {getattr(dset, 'name', '?')} is not a dataset")
    reads = _reads[-1] if _reads else None
    key = None
    if reads is not None:
        try:
            key = object_key(dset)
        except (AttributeError, TypeError, ValueError, OSError, RuntimeError) as exc:
            raise ModelError(f"{where}: cannot read dataset {dset.name} ({exc})") from exc
        if key in reads.arrays:
            return reads.arrays[key]
    arr = _read_array(dset, where, file_size, reads)
    if reads is not None and key is not None:
        reads.arrays[key] = arr
    return arr


def _read_array(dset: Any, where: str, file_size: int, reads: _Reads | None) -> Array:
    name = dset.name
    try:
        if dset.is_virtual:
            raise ModelError(f"{where}: {name} is a virtual dataset; not followed")
        if dset.external:
            raise ModelError(f"{where}: {name} keeps its data in an external file; not followed")
        shape = dset.shape
        if shape is None:
            raise ModelError(f"{where}: {name} is an empty (null) dataset")
        nbytes = int(np.prod(shape, dtype=np.float64)) * dset.dtype.itemsize
        if nbytes > file_size + _SLACK_BYTES:
            raise ModelError(
                f"{where}: {name} declares {nbytes} bytes but the file has {file_size}; refused"
            )
        if reads is not None:
            reads.total += nbytes
            if reads.total > file_size + _SLACK_BYTES:
                raise ModelError(
                    f"{where}: its datasets declare {reads.total:,} bytes in all (at {name}) "
                    f"but the file has {file_size:,}; refused"
                )
        raw = dset[()]
    except ModelError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelError(f"{where}: cannot read dataset {name} ({exc})") from exc
    arr = np.asarray(raw)
    dtype_attr = attr(dset, "dtype")
    if arr.dtype.kind == "V" and arr.dtype.itemsize == 2 and dtype_attr == "bfloat16":
        # bfloat16 is the top half of a float32.
        arr = (arr.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if arr.dtype.kind not in "fiub":
        raise ModelError(f"{where}: dataset {name} has unsupported dtype {arr.dtype}")
    return arr


def numbered(names: list[str]) -> list[str]:
    """Sort ``['10', '2', '0']`` numerically (Keras's vars/0, vars/1, ...)."""
    return sorted(names, key=lambda n: (int(n) if n.isascii() and n.isdigit() else 1 << 30, n))


def split_suffix(name: str) -> tuple[str, int]:
    """``'dense_2'`` -> ``('dense', 2)``; no suffix counts as 0."""
    m = re.fullmatch(r"(.*?)_(\d+)", name)
    if m:
        return m.group(1), int(m.group(2))
    return name, 0
