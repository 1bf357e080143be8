"""A small pure-Python reader for the part of HDF5 that h5py writes for Keras
weights (``model.weights.h5`` in a ``.keras`` zip), so that reading one needs no
h5py import (the largest part of a short command's start-up).

The subset: superblock version 0 with 8-byte addresses and lengths at offset 0;
version 1 object headers; groups as symbol tables (v1 B-tree, local heap, symbol
nodes) holding hard links only; datasets with a simple or scalar dataspace, an
IEEE float or integer type, and compact or contiguous storage in the file;
attributes of those types or variable-length strings (global heap). Anything else,
anything inconsistent, and anything this reader is not sure it reads exactly as the
HDF5 library does, is ``UnsupportedError``: the caller then reads the file with h5py
as before (``parse`` returns None), so every file outside the subset behaves as it
always did.

The whole structure is parsed and checked up front; only dataset values are read
later, from the bytes in memory. Every offset is checked against the file's size,
each object header is parsed once (hard links to it share it), and all work is
bounded by a budget proportional to the file's size, so a hostile file costs at
most a few passes over its bytes.

The objects answer the part of h5py's API that ``h5util`` and the native loader
use: ``name``, ``attrs``, iteration in name order, ``in``, ``[name]``, and for a
dataset ``shape``, ``dtype`` and ``[()]``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

UNDEFINED = 0xFFFF_FFFF_FFFF_FFFF
MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_RANK = 32
MAX_DEPTH = 64  # B-tree levels


class UnsupportedError(Exception):
    """The file is outside the subset (or inconsistent): read it with h5py."""


_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class _Header:
    """One object header, parsed: a group's links or a dataset's description."""

    __slots__ = ("addr", "attrs", "dtype", "links", "shape", "storage")

    def __init__(self, addr: int) -> None:
        self.addr = addr
        self.links: dict[str, int] | None = None  # a group: name -> header address
        self.attrs: dict[str, Any] = {}
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype[Any] | None = None
        # A dataset's bytes: (offset, size) in the file, or the compact bytes.
        self.storage: tuple[int, int] | bytes | None = None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        # Real files parse each structure once; hostile ones (shared B-trees, heaps
        # re-read by many groups) run out of budget instead of taking long.
        self.budget = 4 * self.size + (1 << 16)
        self.headers: dict[int, _Header] = {}
        self.kinds: dict[int, str] = {}  # address -> the structure read there
        self.collections: dict[int, dict[int, bytes]] = {}

    def charge(self, n: int) -> None:
        self.budget -= max(n, 1)
        if self.budget < 0:
            raise UnsupportedError("more structure than the file's size explains")

    def claim(self, addr: int, kind: str) -> None:
        """HDF5 caches metadata by address: one address read as two kinds of
        structure is an error there (a corrupt file), so it is refused here."""
        if self.kinds.setdefault(addr, kind) != kind:
            raise UnsupportedError("one address holds two kinds of structure")

    def span(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise UnsupportedError("a structure reaches past the end of the file")
        self.charge(n)
        return self.data[offset : offset + n]

    def u(self, fmt: struct.Struct, offset: int) -> int:
        if offset < 0 or offset + fmt.size > self.size:
            raise UnsupportedError("a field reaches past the end of the file")
        value: int = fmt.unpack_from(self.data, offset)[0]
        return value

    # -- the file ------------------------------------------------------------

    def superblock(self) -> int:
        d = self.span(0, 96)
        if d[:8] != MAGIC:
            raise UnsupportedError("no HDF5 signature at offset 0")
        version, free_space, root_stab, _, shared, offsets, lengths = d[8:15]
        if (version, free_space, root_stab, shared, offsets, lengths) != (0, 0, 0, 0, 8, 8):
            raise UnsupportedError("superblock other than version 0 with 8-byte fields")
        self.leaf_k, self.node_k = _U16.unpack_from(d, 16)[0], _U16.unpack_from(d, 18)[0]
        if not 0 < self.leaf_k <= 1 << 10 or not 0 < self.node_k <= 1 << 10:
            raise UnsupportedError("B-tree sizes out of range")
        if _U32.unpack_from(d, 20)[0] != 0:
            raise UnsupportedError("file consistency flags set")
        base, extension, eof, driver = struct.unpack_from("<4Q", d, 24)
        if base != 0 or extension != UNDEFINED or driver != UNDEFINED or eof != self.size:
            raise UnsupportedError("a user block, a driver block, or a size other than declared")
        return self.entry(d, 56)

    def entry(self, d: bytes, at: int) -> int:
        """A symbol table entry (40 bytes at ``d[at:]``): its object header's address,
        checking the cached group addresses (if any) later against the header."""
        _name, addr, cache = struct.unpack_from("<QQI", d, at)
        if cache == 1:
            btree, lheap = struct.unpack_from("<QQ", d, at + 24)
            self.cached.append((addr, btree, lheap))
        elif cache != 0:
            raise UnsupportedError("a soft link or an unknown cache type")
        return int(addr)

    # -- object headers ----------------------------------------------------

    def header(self, addr: int) -> _Header:
        found = self.headers.get(addr)
        if found is not None:
            return found
        h = _Header(addr)
        self.headers[addr] = h
        self.claim(addr, "object header")
        if self.u(_U8, addr) != 1:
            raise UnsupportedError("object header other than version 1")
        count, _refs, size = struct.unpack_from("<HII", self.span(addr, 16), 2)
        chunks = [(addr + 16, size)]
        seen = {addr + 16}
        messages = []
        while chunks:
            start, length = chunks.pop(0)
            block = self.span(start, length)
            pos = 0
            while pos < length:
                if pos + 8 > length:
                    raise UnsupportedError("a message header crosses its chunk's end")
                kind, msize, flags = struct.unpack_from("<HHB", block, pos)
                body = block[pos + 8 : pos + 8 + msize]
                if len(body) != msize or msize % 8:
                    raise UnsupportedError("a message crosses its chunk's end")
                if flags & ~0x01:  # shared, shareable, unknown-type handling: not here
                    raise UnsupportedError("a message flagged other than constant")
                pos += 8 + msize
                messages.append((kind, body))
                if kind == 0x10:  # continuation: more messages elsewhere
                    more, more_length = struct.unpack_from("<QQ", body)
                    if more in seen or len(seen) > 1 << 12:
                        raise UnsupportedError("object header continuations loop")
                    seen.add(more)
                    self.claim(int(more), "object header continuation")
                    chunks.append((int(more), int(more_length)))
        if len(messages) != count:
            raise UnsupportedError("object header message count differs from its messages")
        layout = space = dtype = None
        for kind, body in messages:
            if kind in (0x00, 0x10, 0x0E):  # nil, continuation, old modification time
                continue
            if kind in (0x04, 0x05, 0x12):
                # Fill values (the storage here is always written: an undefined
                # address is refused) and the modification time change no value
                # read, but HDF5 decodes them: a message it would refuse is refused.
                _check_decodes(kind, body)
                continue
            if kind == 0x11:
                if h.links is not None:
                    raise UnsupportedError("two symbol tables")
                btree, lheap = struct.unpack_from("<QQ", body)
                h.links = {}
                self.stab[addr] = (int(btree), int(lheap))
                self.tables.append((h, int(btree), int(lheap)))
            elif kind == 0x01:
                if space is not None:
                    raise UnsupportedError("two dataspaces")
                space = self.dataspace(body, 0)[0]
            elif kind == 0x03:
                if dtype is not None:
                    raise UnsupportedError("two datatypes")
                dtype = self.datatype(body, 0, numeric_only=True)[0]
            elif kind == 0x08:
                if layout is not None:
                    raise UnsupportedError("two layouts")
                layout = body
            elif kind == 0x0C:
                name, value = self.attribute(body)
                if name in h.attrs:
                    raise UnsupportedError("two attributes of one name")
                h.attrs[name] = value
            else:  # links, attribute info, filters, external files, ...
                raise UnsupportedError(f"object header message type {kind:#x}")
        described = (space is not None, dtype is not None, layout is not None)
        if h.links is not None:
            if any(described):
                raise UnsupportedError("a group with dataset messages")
        elif all(described):
            assert space is not None and dtype is not None and layout is not None
            h.shape, h.dtype = space, dtype
            h.storage = self.layout(layout, _nbytes(space, dtype))
        else:
            raise UnsupportedError("an object neither a group nor a dataset")
        return h

    def dataspace(self, d: bytes, at: int) -> tuple[tuple[int, ...], int]:
        """(shape, bytes used) of a dataspace message at ``d[at:]``."""
        version, rank, flags = struct.unpack_from("<BBB", d, at)
        if rank > MAX_RANK or flags & ~0x01:
            raise UnsupportedError("dataspace rank or permutation")
        if version == 1:
            start = at + 8
        elif version == 2:
            kind = d[at + 3]
            if kind == 0 and rank == 0:
                start = at + 4  # scalar
            elif kind == 1:
                start = at + 4
            else:
                raise UnsupportedError("null dataspace")
        else:
            raise UnsupportedError("dataspace version")
        dims = struct.unpack_from(f"<{rank}Q", d, start)
        end = start + 8 * rank * (2 if flags & 0x01 else 1)
        if end > len(d):
            raise UnsupportedError("dataspace message too short")
        if flags & 0x01:
            limits = struct.unpack_from(f"<{rank}Q", d, start + 8 * rank)
            if any(m < n and m != UNDEFINED for n, m in zip(dims, limits, strict=True)):
                raise UnsupportedError("a dimension beyond its maximum")
        return tuple(int(n) for n in dims), end - at

    def datatype(self, d: bytes, at: int, numeric_only: bool) -> tuple[Any, int]:
        """(numpy dtype, or "vlen-str:<cset>" for a variable-length string, bytes
        used) of a datatype message at ``d[at:]``."""
        head, b1, b2, _b3, size = struct.unpack_from("<BBBBI", d, at)
        version, cls = head >> 4, head & 0x0F
        if version not in (1, 2, 3):
            raise UnsupportedError("datatype version")
        order = ">" if b1 & 0x01 else "<"
        if cls == 0:  # fixed-point
            offset, precision = struct.unpack_from("<HH", d, at + 8)
            if b1 & ~0x09 or b2 or size not in (1, 2, 4, 8) or (offset, precision) != (0, 8 * size):
                raise UnsupportedError("integer type with padding or odd size")
            kind = "i" if b1 & 0x08 else "u"
            return np.dtype(f"{order}{kind}{size}"), 12
        if cls == 1:  # IEEE floating point, nothing else
            fields = struct.unpack_from("<HHBBBBI", d, at + 8)
            ieee = {
                2: (15, (0, 16, 10, 5, 0, 10, 15)),
                4: (31, (0, 32, 23, 8, 0, 23, 127)),
                8: (63, (0, 64, 52, 11, 0, 52, 1023)),
            }.get(size)
            if ieee is None or (b1 & ~0x01) != 0x20 or b2 != ieee[0] or fields != ieee[1]:
                raise UnsupportedError("floating-point type other than IEEE")
            return np.dtype(f"{order}f{size}"), 20
        if cls == 9 and not numeric_only:  # variable-length
            kind, cset = b1 & 0x0F, b2 & 0x0F
            if kind != 1 or cset not in (0, 1) or size != 16:
                raise UnsupportedError("variable-length type other than a string")
            base, used = self.datatype(d, at + 8, numeric_only=True)
            if base != np.dtype("u1") and base != np.dtype("i1"):
                raise UnsupportedError("variable-length string of other than bytes")
            return f"vlen-str:{cset}", 8 + used
        raise UnsupportedError(f"datatype class {cls}")

    def layout(self, d: bytes, nbytes: int) -> tuple[int, int] | bytes:
        version, kind = d[0], d[1]
        if version != 3:
            raise UnsupportedError("layout version")
        if kind == 0:  # compact: the bytes are in the message
            (size,) = _U16.unpack_from(d, 2)
            raw = d[4 : 4 + size]
            if size != nbytes or len(raw) != size:
                raise UnsupportedError("compact data of another size than declared")
            return raw
        if kind == 1:  # contiguous
            addr, size = struct.unpack_from("<QQ", d, 2)
            if nbytes == 0:  # never allocated: HDF5 refuses an address with no size
                if addr != UNDEFINED:
                    raise UnsupportedError("an empty dataset with storage")
                return (0, 0)
            if size != nbytes or addr == UNDEFINED or addr + size > self.size:
                raise UnsupportedError("contiguous data of another size, or not in the file")
            return (int(addr), int(size))
        raise UnsupportedError("chunked or virtual storage")

    def attribute(self, d: bytes) -> tuple[str, Any]:
        version, flags = d[0], d[1]
        name_size, type_size, space_size = struct.unpack_from("<HHH", d, 2)
        if version > 1 and flags:
            raise UnsupportedError("an attribute with a shared datatype or dataspace")
        if version == 1:
            pad = _pad8
            at = 8
        elif version in (2, 3):
            pad = _same
            at = 8 if version == 2 else 9
            if version == 3 and d[8] not in (0, 1):
                raise UnsupportedError("attribute name encoding")
        else:
            raise UnsupportedError("attribute version")
        raw_name = d[at : at + name_size]
        if name_size == 0 or len(raw_name) != name_size or raw_name.find(0) != name_size - 1:
            raise UnsupportedError("attribute name")
        name = _name(raw_name[:-1])
        at += pad(name_size)
        dtype, used = self.datatype(d, at, numeric_only=False)
        if used > type_size:
            raise UnsupportedError("attribute datatype longer than declared")
        at += pad(type_size)
        shape, used = self.dataspace(d, at)
        if used > space_size:
            raise UnsupportedError("attribute dataspace longer than declared")
        at += pad(space_size)
        count = 1
        for n in shape:
            count *= n
        if isinstance(dtype, str):
            if count * 16 > len(d) - at:
                raise UnsupportedError("attribute data shorter than declared")
            cset = int(dtype[-1])
            values = [self.vlen_string(d, at + 16 * i, cset) for i in range(count)]
            if not shape:
                return name, values[0]
            strings = np.empty(count, dtype=object)
            strings[:] = values
            return name, strings.reshape(shape)
        nbytes = count * dtype.itemsize
        raw = d[at : at + nbytes]
        if len(raw) != nbytes:
            raise UnsupportedError("attribute data shorter than declared")
        arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        return name, arr[()] if not shape else arr

    def vlen_string(self, d: bytes, at: int, cset: int) -> str:
        length, collection, index = struct.unpack_from("<IQI", d, at)
        objects = self.collections.get(collection)
        if objects is None:
            objects = self.collections[collection] = self.global_heap(collection)
        raw = objects.get(index)
        if raw is None or len(raw) != length:  # (HDF5 insists on the size too)
            raise UnsupportedError("a string missing from its global heap")
        if 0 in raw:  # HDF5 would give it as a C string, cut at the NUL
            raise UnsupportedError("a string holding a NUL")
        try:
            return raw.decode("ascii" if cset == 0 else "utf-8")
        except UnicodeDecodeError:
            raise UnsupportedError("a string that is not valid text") from None

    def global_heap(self, addr: int) -> dict[int, bytes]:
        self.claim(addr, "global heap")
        head = self.span(addr, 16)
        if head[:4] != b"GCOL" or head[4] != 1:
            raise UnsupportedError("global heap collection")
        (size,) = _U64.unpack_from(head, 8)
        block = self.span(addr, size)
        objects: dict[int, bytes] = {}
        pos = 16
        while pos + 16 <= size:
            index, _refs, length = struct.unpack_from("<HHxxxxQ", block, pos)
            if index == 0:  # free space: the rest of the collection
                break
            data = block[pos + 16 : pos + 16 + length]
            if len(data) != length or index in objects:
                raise UnsupportedError("global heap object")
            objects[index] = data
            pos += 16 + _pad8(length)
        return objects

    # -- groups --------------------------------------------------------------

    def local_heap(self, addr: int) -> bytes:
        self.claim(addr, "local heap")
        head = self.span(addr, 32)
        if head[:4] != b"HEAP" or head[4] != 0:
            raise UnsupportedError("local heap")
        size, free, data = struct.unpack_from("<QQQ", head, 8)
        if data != addr + 32:  # h5py writes the data block right after its header
            self.claim(int(data), "local heap data")
        heap = self.span(data, size)
        # The free list, checked as HDF5 checks it on loading the heap (a file whose
        # list it refuses is h5py's to refuse).
        seen = set()
        while free != 1:  # HDF5's end of the list
            if free >= size or free + 16 > size or free in seen:
                raise UnsupportedError("a local heap's free list")
            seen.add(free)
            offset = free
            free, length = struct.unpack_from("<QQ", heap, offset)
            if free == 0 or offset + length > size:
                raise UnsupportedError("a local heap's free list")
        return heap

    def table(self, h: _Header, btree: int, lheap: int) -> None:
        """A group's links from its B-tree, in name order (as HDF5 iterates them),
        checking the order and the keys HDF5's lookups rely on."""
        heap = self.local_heap(lheap)
        names: list[bytes] = []
        addrs: list[int] = []
        chain: dict[int, list[tuple[int, int, int]]] = {}
        self.node(btree, heap, names, addrs, chain, set(), 0, None)
        # Each level's nodes, left to right, linked as siblings both ways (HDF5 walks
        # the sibling links when it sizes a group, as h5py's object info does).
        for nodes in chain.values():
            for i, (_, left, right) in enumerate(nodes):
                before = nodes[i - 1][0] if i else UNDEFINED
                after = nodes[i + 1][0] if i + 1 < len(nodes) else UNDEFINED
                if (left, right) != (before, after):
                    raise UnsupportedError("B-tree sibling links")
        assert h.links is not None
        for i, raw in enumerate(names):
            if i and names[i - 1] >= raw:
                raise UnsupportedError("group members out of name order")
            h.links[_name(raw)] = addrs[i]

    def node(
        self,
        addr: int,
        heap: bytes,
        names: list[bytes],
        addrs: list[int],
        chain: dict[int, list[tuple[int, int, int]]],
        seen: set[int],
        depth: int,
        level: int | None,
    ) -> None:
        if addr in seen or depth > MAX_DEPTH:
            raise UnsupportedError("B-tree loops or is too deep")
        seen.add(addr)
        self.claim(addr, "B-tree node")
        # HDF5 reads a node whole, at its full capacity: so must fit the file.
        head = self.span(addr, 24 + 16 * 2 * self.node_k + 8)[:24]
        if head[:4] != b"TREE" or head[4] != 0:
            raise UnsupportedError("group B-tree node")
        node_level, used = head[5], _U16.unpack_from(head, 6)[0]
        if (level is not None and node_level != level) or used > 2 * self.node_k:
            raise UnsupportedError("B-tree node level or size")
        left, right = struct.unpack_from("<QQ", head, 8)
        chain.setdefault(node_level, []).append((addr, int(left), int(right)))
        body = self.span(addr + 24, 16 * used + 8)
        keys = [_heap_name(self, heap, _U64.unpack_from(body, 16 * i)[0]) for i in range(used + 1)]
        for i in range(used):
            (child,) = _U64.unpack_from(body, 16 * i + 8)
            first = len(names)
            if node_level == 0:
                self.symbols(int(child), heap, names, addrs)
            else:
                self.node(int(child), heap, names, addrs, chain, seen, depth + 1, node_level - 1)
            below = names[first:]
            # HDF5 finds a name in child i when key[i] < name <= key[i + 1].
            if not below or not keys[i] < below[0] or not below[-1] <= keys[i + 1]:
                raise UnsupportedError("B-tree keys do not bound their children")

    def symbols(self, addr: int, heap: bytes, names: list[bytes], addrs: list[int]) -> None:
        self.claim(addr, "symbol table node")
        head = self.span(addr, 8 + 40 * 2 * self.leaf_k)[:8]  # (whole, as for B-trees)
        if head[:4] != b"SNOD" or head[4] != 1:
            raise UnsupportedError("symbol table node")
        (count,) = _U16.unpack_from(head, 6)
        if count > 2 * self.leaf_k:
            raise UnsupportedError("symbol table node too full")
        body = self.span(addr + 8, 40 * count)
        for i in range(count):
            (offset,) = _U64.unpack_from(body, 40 * i)
            names.append(_heap_name(self, heap, offset))
            addrs.append(self.entry(body, 40 * i))

    def parse(self) -> _Header:
        self.cached: list[tuple[int, int, int]] = []  # (header, B-tree, heap)
        self.tables: list[tuple[_Header, int, int]] = []  # groups to read the links of
        self.stab: dict[int, tuple[int, int]] = {}  # group header -> (B-tree, heap)
        root = self.header(self.superblock())
        if root.links is None:
            raise UnsupportedError("the root is not a group")
        # Depth first, each header once (header() queues each new group's table).
        while self.tables:
            group, btree, lheap = self.tables.pop()
            self.table(group, btree, lheap)
            assert group.links is not None
            for addr in group.links.values():
                self.header(addr)
        for addr, btree, lheap in self.cached:
            # An entry's cached B-tree and heap must be the group's own.
            found = self.headers.get(addr)
            if found is None or found.links is None:
                raise UnsupportedError("a cached group entry for a non-group")
            if (btree, lheap) != self.stab[addr]:
                raise UnsupportedError("a cached group entry disagrees with its group")
        return root


def _check_decodes(kind: int, d: bytes) -> None:
    """A fill value (old 0x04, new 0x05) or modification time (0x12) message that
    HDF5 would decode without running off its end."""
    if kind == 0x04:
        (size,) = _U32.unpack_from(d, 0)
        end = 4 + size
    elif kind == 0x12:
        end = 8 if d[0] == 1 else len(d) + 1
    else:
        version = d[0]
        if version in (1, 2):
            defined = d[3]
            end = 4
            if version == 1 or defined:
                (size,) = _U32.unpack_from(d, 4)
                end = 8 + size
        elif version == 3:
            end = 2
            if d[1] & 0x20:
                (size,) = _U32.unpack_from(d, 2)
                end = 6 + size
        else:
            end = len(d) + 1
    if end > len(d):
        raise UnsupportedError("a fill value or time message HDF5 cannot decode")


def _nbytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    n = dtype.itemsize
    for d in shape:
        n *= d
    return n


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _same(n: int) -> int:
    return n


def _heap_name(reader: _Reader, heap: bytes, offset: int) -> bytes:
    end = heap.find(b"\0", offset) if offset < len(heap) else -1
    if end < 0:
        raise UnsupportedError("a name outside its local heap")
    reader.charge(end - offset)
    return heap[offset:end]


def _name(raw: bytes) -> str:
    """A member name as h5py gives it: UTF-8 text (h5py gives other names as bytes,
    which are h5py's to handle)."""
    if not raw or b"/" in raw or raw in (b".", b".."):
        raise UnsupportedError("a member name HDF5 paths cannot express")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsupportedError("a member name that is not UTF-8") from None


# -- the objects -------------------------------------------------------------


class Attributes:
    """``obj.attrs``: the attributes HDF5 would give, decoded as h5py decodes them."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __getitem__(self, name: str) -> Any:
        value = self._values[name]
        return value.copy() if isinstance(value, np.ndarray) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def get_id(self, name: str) -> _AttributeId:
        return _AttributeId(self._values[name])


class _AttributeId:
    def __init__(self, value: Any) -> None:
        self._value = value

    def get_storage_size(self) -> int:
        v = self._value
        if isinstance(v, str):
            return 16
        return int(getattr(v, "nbytes", 16))


class Node:
    """A group or dataset reached by ``name`` (its path from the root)."""

    def __init__(self, reader: _Reader, header: _Header, name: str) -> None:
        self._reader = reader
        self._header = header
        self.name = name
        self.attrs = Attributes(header.attrs)

    @property
    def address(self) -> int:
        """Where the object's header is: the same for every hard link to it."""
        return self._header.addr

    def get(self, name: str) -> Node | None:
        """The member at ``name`` (a path of members), or None."""
        current: Node = self
        for part in (p for p in name.split("/") if p):
            if not isinstance(current, Group):
                return None
            addr = current._links().get(part)
            if addr is None:
                return None
            path = f"{current.name.rstrip('/')}/{part}"
            current = _wrap(self._reader, self._reader.headers[addr], path)
        return current


class Group(Node):
    def _links(self) -> dict[str, int]:
        links = self._header.links
        assert links is not None
        return links

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._links()))

    def __len__(self) -> int:
        return len(self._links())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> Node:
        found = self.get(name)
        if found is None:
            raise KeyError(f"no member {name!r} in {self.name}")
        return found


class Dataset(Node):
    is_virtual = False
    external = None

    @property
    def shape(self) -> tuple[int, ...]:
        shape = self._header.shape
        assert shape is not None
        return shape

    @property
    def dtype(self) -> np.dtype[Any]:
        dtype = self._header.dtype
        assert dtype is not None
        return dtype

    def __getitem__(self, key: Any) -> Any:
        if key != ():
            raise TypeError("only dataset[()] is supported")
        storage = self._header.storage
        if isinstance(storage, bytes):
            raw: Any = storage
            offset = 0
        else:
            assert storage is not None
            raw, offset = self._reader.data, storage[0]
        count = 1
        for d in self.shape:
            count *= d
        if count == 0:
            return np.empty(self.shape, dtype=self.dtype)
        arr = np.frombuffer(raw, dtype=self.dtype, count=count, offset=offset)
        arr = arr.reshape(self.shape).copy()
        return arr[()] if not self.shape else arr


def _wrap(reader: _Reader, header: _Header, name: str) -> Group | Dataset:
    return (Group if header.links is not None else Dataset)(reader, header, name)


def parse(data: bytes) -> Group | None:
    """The root group of HDF5 ``data``, or None when the file is outside the subset
    (or this reader has any doubt): read it with h5py then."""
    reader = _Reader(data)
    try:
        root = reader.parse()
    except (UnsupportedError, struct.error, IndexError, ValueError, OverflowError, TypeError):
        return None
    return Group(reader, root, "/")
