"""``rnninspect.loaders.h5lite``, the pure-Python reader of the HDF5 subset h5py
writes for Keras weights, against h5py itself: on every HDF5 file of the sample
models and the wild models (``.keras`` weights members, ``.h5``, ``.hdf5``) it
either refuses the file (h5py then reads it) or gives exactly what h5py gives:
members in h5py's order, the same objects behind hard links, the same attributes,
and arrays equal in values, dtype and shape. Then files outside the subset, and
hostile ones: refused (or read within bounds), never an exception or a hang.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import ROOT

from rnninspect.loaders import h5lite, h5util

SAMPLES = ROOT / "sample_models"
WILD = ROOT.parent / "shared" / "wild-models"
SEED = SAMPLES / "seed" / "model.keras"


def _blobs(root: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as zf:
                if "model.weights.h5" in zf.namelist():
                    yield f"{path.relative_to(root)}!model.weights.h5", zf.read("model.weights.h5")
        elif path.suffix in (".h5", ".hdf5") and path.is_file():
            yield str(path.relative_to(root)), path.read_bytes()


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and (a.tolist() == b.tolist() or np.array_equal(a, b, equal_nan=True))
        )
    return type(a) is type(b) and (a == b or (a != a and b != b))


def _compare(lite: h5lite.Group, real: h5py.Group, seen: set[int]) -> int:
    """Everything below ``real`` equal in ``lite``; the number of datasets compared."""
    assert list(lite) == list(real), lite.name
    assert sorted(lite.attrs) == sorted(real.attrs), lite.name
    for key in real.attrs:
        assert _same_value(lite.attrs[key], real.attrs[key]), (lite.name, key)
    count = 0
    for name in real:
        a, b = lite[name], real[name]
        assert a.name == b.name
        assert h5util.object_key(a) == h5util.object_key(b)
        if isinstance(b, h5py.Group):
            assert isinstance(a, h5lite.Group) and h5util.is_group(a), a.name
            if a.address not in seen:
                seen.add(a.address)
                count += _compare(a, b, seen)
            continue
        assert isinstance(a, h5lite.Dataset) and h5util.is_dataset(a), a.name
        assert (a.shape, a.dtype) == (b.shape, b.dtype), a.name
        x, y = a[()], b[()]
        assert type(x) is type(y), a.name
        assert np.asarray(x).dtype == np.asarray(y).dtype, a.name
        assert np.asarray(x).shape == np.asarray(y).shape, a.name
        assert np.array_equal(x, y, equal_nan=True), a.name
        assert sorted(a.attrs) == sorted(b.attrs), a.name
        for key in b.attrs:
            assert _same_value(a.attrs[key], b.attrs[key]), (a.name, key)
        # and as the loaders read it
        assert np.array_equal(
            h5util.read_array(a, "x", 1 << 40), h5util.read_array(b, "x", 1 << 40), equal_nan=True
        )
        count += 1
    return count


def _check_all(root: Path) -> dict[str, int]:
    counts = {"keras": 0, "keras read": 0, "hdf5": 0, "hdf5 read": 0, "datasets": 0}
    for name, data in _blobs(root):
        kind = "keras" if name.endswith("!model.weights.h5") else "hdf5"
        counts[kind] += 1
        lite = h5lite.parse(data)
        if lite is None:
            continue
        counts[f"{kind} read"] += 1
        with h5py.File(io.BytesIO(data), "r") as real:
            counts["datasets"] += _compare(lite, real, set())
    return counts


def test_equals_h5py_on_every_sample_model() -> None:
    counts = _check_all(SAMPLES)
    # Every .keras file's weights are in the subset (the fast path is the one taken).
    assert counts["keras"] > 100 and counts["keras read"] == counts["keras"], counts
    assert counts["hdf5 read"] > 0 and counts["datasets"] > 1000, counts


@pytest.mark.skipif(not WILD.is_dir(), reason=f"{WILD} not found")
def test_equals_h5py_on_every_wild_model() -> None:
    counts = _check_all(WILD)
    assert counts["keras read"] == counts["keras"] > 0, counts
    assert counts["hdf5 read"] > 0, counts


def _h5(tmp_path: Path, build: Any, **kwargs: Any) -> bytes:
    path = tmp_path / "f.h5"
    with h5py.File(path, "w", **kwargs) as h5:
        build(h5)
    return path.read_bytes()


def _weights(h5: h5py.File) -> None:
    h5.create_group("layers/dense/vars").create_dataset("0", data=np.ones((3, 2), "f4"))


@pytest.mark.parametrize(
    "build",
    [
        lambda h5: (_weights(h5), h5.__setitem__("soft", h5py.SoftLink("/layers"))),
        lambda h5: (_weights(h5), h5.__setitem__("ext", h5py.ExternalLink("other.h5", "/"))),
        lambda h5: h5.create_dataset("c", data=np.ones((64, 64), "f4"), chunks=(8, 8)),
        lambda h5: h5.create_dataset("z", data=np.ones((64, 64), "f4"), compression="gzip"),
        lambda h5: h5.create_dataset("e", shape=(4,), dtype="f4", external=[("x.bin", 0, 16)]),
        lambda h5: h5.create_dataset("b", data=np.ones(3, bool)),
        lambda h5: h5.create_dataset("s", data=np.array([b"ab", b"cd"])),
        lambda h5: h5.create_dataset("n", data=h5py.Empty("f4")),
        lambda h5: h5.create_dataset("u", shape=(3,), dtype="f4"),  # never written
        lambda h5: h5.create_dataset("v", data=np.ones(2, [("a", "f4"), ("b", "i4")])),
        lambda h5: (_weights(h5), h5.attrs.__setitem__("fixed", np.bytes_(b"abc"))),
    ],
    ids=[
        "soft-link",
        "external-link",
        "chunked",
        "gzip",
        "external-storage",
        "bool",
        "fixed-strings",
        "null-dataspace",
        "unallocated",
        "compound",
        "fixed-string-attribute",
    ],
)
def test_refuses_what_is_outside_the_subset(tmp_path: Path, build: Any) -> None:
    assert h5lite.parse(_h5(tmp_path, build)) is None


def test_refuses_newer_file_formats(tmp_path: Path) -> None:
    assert h5lite.parse(_h5(tmp_path, _weights, libver="latest")) is None
    assert h5lite.parse(_h5(tmp_path, _weights, track_order=True)) is None
    assert h5lite.parse(_h5(tmp_path, _weights, userblock_size=512)) is None
    assert h5lite.parse(_h5(tmp_path, _weights)) is not None  # the same, in the subset


def test_reads_what_h5py_writes_in_the_subset(tmp_path: Path) -> None:
    def build(h5: h5py.File) -> None:
        _weights(h5)
        g = h5["layers/dense"]
        g["alias"] = h5["layers/dense/vars/0"]  # a hard link: the same object twice
        g["loop"] = h5["layers"]  # a cycle back up
        g.create_dataset("big", data=np.arange(12, dtype=">f8").reshape(3, 4))
        g.create_dataset("i", data=np.arange(5, dtype="<u2"))
        g.create_dataset("half", data=np.linspace(0, 1, 5).astype("f2"))
        g.create_dataset("scalar", data=np.float32(2.5))
        g.create_dataset("empty", data=np.zeros((0, 3), "f4"))
        g.create_dataset("compact", data=np.ones(3, "f4"), track_times=False)
        g.attrs["name"] = "dénse"
        g.attrs["n"] = np.int64(7)
        g.attrs["vec"] = np.array([1.5, 2.5])
        g.attrs["names"] = ["a", "bé"]
        for i in range(40):  # a B-tree of several nodes
            g.create_group(f"m{i:03d}")

    data = _h5(tmp_path, build)
    lite = h5lite.parse(data)
    assert lite is not None
    with h5py.File(io.BytesIO(data), "r") as real:
        assert _compare(lite, real, set()) >= 8
    dense = lite["layers/dense"]
    assert h5util.object_key(dense["alias"]) == h5util.object_key(dense["vars/0"])
    assert h5util.object_key(dense["loop"]) == h5util.object_key(lite["layers"])
    assert "vars" in dense and "nothing" not in dense and "vars/0" in dense
    assert h5util.child(dense, "vars/0/deeper", "x") is None


def _mutations(data: bytes, rng: np.random.Generator, n: int) -> Iterator[bytes]:
    for _ in range(n):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            at = int(rng.integers(0, len(buf)))
            kind = rng.integers(0, 3)
            if kind == 0:
                buf[at] = int(rng.integers(0, 256))
            elif kind == 1:  # an address or length pointing somewhere else
                values = [0, 1, len(buf) - 8, len(buf), 1 << 62, (1 << 64) - 1]
                value = values[int(rng.integers(0, len(values)))]
                buf[at : at + 8] = struct.pack("<Q", value)[: len(buf) - at]
            else:
                buf = buf[:at]
                break
        yield bytes(buf)


def test_hostile_bytes_are_refused_or_read_within_bounds() -> None:
    with zipfile.ZipFile(SEED) as zf:
        data = zf.read("model.weights.h5")
    rng = np.random.default_rng(0)
    accepted = 0
    start = time.monotonic()
    for mutated in _mutations(data, rng, 3000):
        root = h5lite.parse(mutated)
        if root is None:
            continue
        accepted += 1
        stack: list[h5lite.Node] = [root]
        seen: set[int] = set()
        while stack:  # every object the file holds, read as the loaders would
            node = stack.pop()
            if node.address in seen:
                continue
            seen.add(node.address)
            if isinstance(node, h5lite.Group):
                stack += [node[name] for name in node]
            else:
                assert isinstance(node, h5lite.Dataset)
                h5util.read_array(node, "x", len(mutated))
    assert accepted > 0  # flipped data bytes leave the structure intact
    assert time.monotonic() - start < 60


def _node(addr: int, children: list[int]) -> bytes:
    """A v1 group B-tree node at level 0 with these symbol-node children."""
    body = b"".join(struct.pack("<QQ", 0, c) for c in children) + struct.pack("<Q", 0)
    return b"TREE" + bytes([0, 0]) + struct.pack("<HQQ", len(children), 2**64 - 1, 2**64 - 1) + body


def test_a_b_tree_pointing_at_itself_is_refused_fast() -> None:
    with zipfile.ZipFile(SEED) as zf:
        data = bytearray(zf.read("model.weights.h5"))
    btree = struct.unpack_from("<Q", data, 56 + 24)[0]  # the root's cached B-tree
    assert data[btree : btree + 4] == b"TREE"
    entries = struct.unpack_from("<H", data, btree + 6)[0]
    node = _node(btree, [btree] * entries)  # every child: the node itself, level 0 ...
    node = node[:5] + b"\x01" + node[6:]  # ... claiming level 1
    data[btree : btree + len(node)] = node
    start = time.monotonic()
    assert h5lite.parse(bytes(data)) is None
    assert time.monotonic() - start < 1


def test_a_keras_file_is_read_without_h5py() -> None:
    code = (
        "import sys; from rnninspect.loaders import load_model; "
        f"m = load_model({str(SEED)!r}); print(m.count_params(), 'h5py' in sys.modules)"
    )
    env = {**os.environ, "RNNINSPECT_NO_FORK": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[1] == "False", out.stdout
    # and the same model as through h5py
    import rnninspect

    lite = rnninspect.load_model(SEED)
    with zipfile.ZipFile(SEED) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5"))) as h5:
        assert [a.tolist() for a in lite.get_weights()] == [
            h5[f"layers/{g}/vars/{i}"][()].tolist()
            for g in ("simple_rnn/cell", "dense")
            for i in range(len(h5[f"layers/{g}/vars"]))
        ]


def test_the_parse_child_warms_h5py_only_for_hdf5_arguments(tmp_path: Path) -> None:
    from rnninspect import loaders

    h5 = next(SAMPLES.rglob("*.h5"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # never opened for reading: that would block
    assert loaders._names_hdf5(["forward", str(h5), "x.npy"])
    assert loaders._names_hdf5(["forward", str(SEED), f"--config={h5}"])
    assert not loaders._names_hdf5(["forward", str(SEED), str(fifo), "-", str(tmp_path), "--q"])
