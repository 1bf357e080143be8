#!/usr/bin/env python
"""Print an ``h5ls -r``-style listing of a Keras HDF5 file, with attributes and their
Python types (developer aid; needs only h5py and numpy).

    python scripts/h5tree.py FILE.h5 [FILE.keras ...]

For a ``.keras`` zip the listing is of its ``model.weights.h5`` member (and the zip's
member list is printed first).
"""

import io
import sys
import zipfile

import h5py
import numpy as np


def _attrs(obj, indent, lines):
    for k, v in obj.attrs.items():
        if isinstance(v, np.ndarray):
            desc = f"ndarray{v.shape} dtype={v.dtype}: {v.tolist()!r}"
        else:
            desc = f"{type(v).__name__}: {v!r}"
        if len(desc) > 200:
            desc = desc[:197] + "..."
        lines.append(f"{indent}@{k} = {desc}")


def layout(f):
    lines = ["/  Group (root)"]
    _attrs(f, "    ", lines)

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            lines.append(f"/{name}  Dataset {obj.shape} {obj.dtype}")
        else:
            lines.append(f"/{name}  Group")
        _attrs(obj, "    ", lines)

    f.visititems(visit)
    return "\n".join(lines)


def describe(path):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            out = [f"zip members: {z.namelist()}", "--- model.weights.h5:"]
            data = z.read("model.weights.h5")
        with h5py.File(io.BytesIO(data), "r") as f:
            out.append(layout(f))
        return "\n".join(out)
    with h5py.File(path, "r") as f:
        return layout(f)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(f"===== {p}")
        print(describe(p))
        print()
