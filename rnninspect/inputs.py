"""Input arrays: read them from files or stdin, make random ones, and check them
against the model (rank, D, dtype, Embedding range) with one clear error each.
"""

from __future__ import annotations

import array
import io
import os
import re
import stat
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import numpy as np

from . import files, npyfile
from .batches import NpyFileRows, RandomRows, Rows, ZipMemberRows
from .errors import InputArrayError, ModelError, UsageError
from .model import (
    Array,
    Embedding,
    InputLayer,
    Model,
    TimeDistributed,
)

if TYPE_CHECKING:
    from .outputs import Target

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def expected_text(model: Model, index: int = 0) -> str:
    spec = model.inputs[index]
    dims = ", ".join("T" if d is None else str(d) for d in spec.shape)
    if spec.dtype == "int32":
        return f"integer ids shaped (N, {dims}) or ({dims},)"
    return f"floats shaped (N, {dims}) or ({dims})"


def conform(model: Model, x: Array | Rows, where: str = "input", index: int = 0) -> Array:
    """Check ``x``'s shape and dtype against the model's input ``index`` (not its
    values, which ``check_rows`` checks chunk by chunk); return a (N, T, D) or
    (N, T) view (or the ``Rows`` themselves: a batch read a block at a time)."""
    spec = model.inputs[index]
    if isinstance(x, Rows) and x.ndim == len(spec.shape):
        x = np.asarray(x[:])  # one sample: read it, and make N = 1
    if not isinstance(x, (np.ndarray, Rows)):
        x = np.asarray(x)
    # Rows stand in for the array they read: the engine only slices blocks of them.
    return cast(Array, _conform_shape(model, x, where, index))


def _conform_shape(model: Model, x: Any, where: str, index: int) -> Any:
    spec = model.inputs[index]
    if x.dtype.kind not in "biuf":
        raise InputArrayError(
            f"{where}: array has dtype {x.dtype}; expected {expected_text(model, index)}"
        )
    want_rank = len(spec.shape) + 1
    if x.ndim == want_rank - 1:
        x = x[None]  # one sample: N = 1
    if x.ndim != want_rank:
        raise InputArrayError(
            f"{where}: array has shape {x.shape}; expected {expected_text(model, index)}"
        )
    if x.shape[0] == 0 or (x.ndim > 1 and x.shape[1] == 0):
        raise InputArrayError(f"{where}: array has shape {x.shape}: no samples or no steps")
    if spec.dtype == "int32":
        if x.dtype.kind == "b":
            raise InputArrayError(
                f"{where}: booleans are not ids; expected {expected_text(model, index)}"
            )
        return x
    for axis, want in enumerate(spec.shape[1:], start=2):
        if want is not None and x.shape[axis] != want:
            what = "D" if axis == x.ndim - 1 else f"axis {axis}"
            raise InputArrayError(
                f"{where}: array has {what}={x.shape[axis]} (shape {x.shape}); "
                f"the model expects {what}={want}: {expected_text(model, index)}"
            )
    return x


def check_rows(model: Model, x: Array, where: str, first_row: int = 0, index: int = 0) -> Array:
    """Value checks on rows of a conformed batch: ids must be integers in [0, V).
    Returns the rows ready for the engine (ids as integers, bools as floats)."""
    if model.inputs[index].dtype == "int32":
        return _ids(model, x, where, first_row, index)
    if x.dtype.kind == "b":
        return x.astype(np.float32)
    return x


def embedding_for(model: Model, index: int = 0) -> Embedding | None:
    """The Embedding that reads input ``index`` (the smallest vocabulary, if several)."""
    spec = model.inputs[index]
    start = next(i for i, n in enumerate(model.nodes) if n.layer is spec)
    found = []
    for node in model.nodes:
        layer = node.layer.layer if isinstance(node.layer, TimeDistributed) else node.layer
        if isinstance(layer, Embedding) and any(r.node == start for r in node.inputs):
            found.append(layer)
    return min(found, key=lambda e: int(e.embeddings.shape[0])) if found else None


def _ids(model: Model, x: Array, where: str, first_row: int, index: int = 0) -> Array:
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x) | (x != np.round(x))
        if bad.any():
            n, t, at = _first(bad)
            raise InputArrayError(
                f"{where}: the model starts with an Embedding and takes integer ids; "
                f"sample {first_row + n}, step {t} holds {float(x[at])!r}"
            )
    first = embedding_for(model, index)
    if first is None:
        if x.dtype.kind == "f" and not np.all(np.abs(x) < 2.0**63):
            n, t, at = _first(~(np.abs(x) < 2.0**63))
            raise InputArrayError(
                f"{where}: id {_float_id(float(x[at]))} at sample {first_row + n}, "
                f"step {t} is beyond any integer id"
            )
        return x.astype(np.int64, copy=False)
    V = int(first.embeddings.shape[0])
    # The range is checked before any conversion: a float id of 1e20 (or a uint64
    # beyond int64) is reported as it is, not as what a cast would wrap it to.
    outside = (x < 0) | (x >= V)
    if outside.any():
        n, t, at = _first(outside)
        value = x[at]
        shown = int(value) if x.dtype.kind in "iu" else _float_id(float(value))
        raise InputArrayError(
            f"{where}: id {shown} at sample {first_row + n}, step {t} is out of range "
            f"for Embedding {first.name!r} (vocabulary of V={V}: ids 0..{V - 1})"
        )
    return x.astype(np.int64, copy=False)


def _float_id(value: float) -> str:
    """A whole float as an id: ``100000000000000000000`` for 1e20 (exact)."""
    return str(int(value)) if abs(value) < 1e30 else f"{value:g}"


def _first(found: Array) -> tuple[int, int, tuple[int, ...]]:
    """(sample, step, index) of the first True in ``found``."""
    at = tuple(int(i) for i in np.argwhere(found)[0])
    return at[0], at[1] if len(at) > 1 else 0, at


def random_input(
    model: Model,
    n: int,
    seed: int | None,
    length: int | None,
    index: int = 0,
    rng: np.random.RandomState | None = None,
) -> Array:
    """The notebook's input: ``np.random.seed(seed); np.random.randn(n, T, D)`` (the
    legacy RandomState stream, so the same seed gives the same X there), cast to
    float32 as Keras casts it. Ids for an Embedding model:
    ``np.random.RandomState(seed).randint(1, V, (n, T))``. ``index``: which model
    input; ``rng``: the stream to draw from (several inputs share one). Whole:
    ``random_rows`` draws the same numbers a chunk at a time."""
    shape, ids = _random_shape(model, n, seed, length, index)
    rng = np.random.RandomState(seed) if rng is None else rng
    return RandomRows.draw(rng, shape, ids)


def random_inputs(
    model: Model, n: int, seed: int | None, length: int | None, where: str = "model"
) -> list[Array]:
    """One random batch per model input, drawn one after the other from one stream,
    as ``np.random.seed(S); x1 = np.random.randn(...); x2 = np.random.randn(...)``;
    each a ``RandomRows``, drawn a chunk of samples at a time as the engine reads
    it: the same numbers as the one-shot calls, in bounded memory."""
    found = [_random_shape(model, n, seed, length, i, where) for i in range(len(model.inputs))]
    return cast(list[Array], RandomRows.streams(found, seed))


def _random_shape(
    model: Model,
    n: int,
    seed: int | None,
    length: int | None,
    index: int,
    where: str = "model",
) -> tuple[tuple[int, ...], tuple[int, int] | None]:
    """The shape of input ``index``'s random batch, and the id range drawn for an
    Embedding's input (``(0, 1)``: only id 0 exists, all zeros, nothing drawn).
    Sizes no machine could hold are refused before anything is allocated."""
    if n < 1:
        raise UsageError(f"--random takes a positive number of samples, got {n}")
    if seed is not None and not 0 <= seed < 1 << 32:
        raise UsageError(f"--seed takes a whole number from 0 to {(1 << 32) - 1}, got {seed}")
    if length is not None and length < 1:
        raise UsageError(f"--length must be positive, got {length}")
    spec: InputLayer = model.inputs[index]
    T = length if length is not None else spec.shape[0]
    if T is None:
        raise UsageError("the model's T is variable: give --length T with --random")
    if T < 1:
        raise ModelError(f"{where}: the model declares T={T} steps; an input needs at least one")
    ids = None
    shape: tuple[int, ...] = (n, T)
    if spec.dtype == "int32":
        first = embedding_for(model, index)
        V = int(first.embeddings.shape[0]) if first is not None else 2
        ids = (1, V) if V >= 2 else (0, 1)
    else:
        shape = (n, T, *(int(d) for d in spec.shape[1:] if d is not None))
    _check_size(shape, length is not None, where)
    return shape, ids


# No batch larger is ever made (its values could not even be counted in int64).
MAX_VALUES = 1 << 60
# The engine holds at least this many samples' steps at once.
MIN_ROWS = 16


def _memory() -> int:
    """The machine's memory in bytes (16 GiB where it cannot be told)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 16 << 30


def _check_size(shape: tuple[int, ...], given: bool, where: str) -> None:
    """Refuse, before anything is allocated, a batch no machine can hold and a
    sample too large for this one."""
    values = 1
    for d in shape:
        values *= d
    sample = 4
    for d in shape[1:]:
        sample *= d
    too_long = sample * MIN_ROWS > _memory()
    if values <= MAX_VALUES and not too_long:
        return
    if too_long:
        what = f"one sample of {shape[1:]} values is {sample:,} bytes, more than memory holds"
        if not given:  # T is the model's own
            raise ModelError(f"{where}: the model declares T={shape[1]:,} steps: {what}")
        raise UsageError(f"--length {shape[1]:,}: {what}")
    dims = " x ".join(f"{d:,}" for d in shape)
    raise UsageError(
        f"--random {shape[0]:,}: a batch of {dims} values is more than any computer holds"
    )


# Read whole into memory (what cannot be read a block at a time): at most this much
# from stdin or any other stream (.npy or .npz bytes), and this much text.
MAX_STREAM_BYTES = 512 << 20
MAX_TEXT_BYTES = 16 << 20


def named_inputs(model: Model, given: list[str]) -> dict[str, str]:
    """``--input NAME=PATH`` options as {input name: path}, names checked."""
    names = [spec.name for spec in model.inputs]
    out: dict[str, str] = {}
    for item in given:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--input takes NAME=PATH, got {item!r}")
        if name not in names:
            raise UsageError(
                f"--input {name}=...: the model has no input {name!r} (inputs: {', '.join(names)})"
            )
        if name in out:
            raise UsageError(f"--input {name}=... is given twice")
        out[name] = path
    return out


def read_inputs(
    model: Model, source: str | None, key: str | None, given: dict[str, str]
) -> list[Array | Rows]:
    """One array per model input: from ``--input NAME=PATH`` files, else from INPUT
    (for several inputs, an .npz holding one array per input name)."""
    specs = model.inputs
    if len(specs) == 1:
        spec = specs[0]
        path = given.get(spec.name, source)
        if source is not None and given:
            raise UsageError("give INPUT or --input NAME=PATH, not both")
        assert path is not None
        return [read_input(path, key, ids=spec.dtype == "int32")]
    found: dict[str, Array | Rows] = {}
    if source is not None:
        if key is not None:
            raise UsageError(
                "--key picks one array; a model with several inputs reads the .npz "
                "arrays named after its inputs"
            )
        found = read_npz_inputs(source, [s.name for s in specs if s.name not in given])
    for spec in specs:
        if spec.name in given:
            found[spec.name] = read_input(given[spec.name], None, ids=spec.dtype == "int32")
    missing = [s.name for s in specs if s.name not in found]
    if missing:
        raise UsageError(
            f"the model takes {len(specs)} inputs ({', '.join(s.name for s in specs)}); "
            f"missing {', '.join(missing)}: give an .npz INPUT with those keys or "
            "--input NAME=PATH for each"
        )
    return [found[s.name] for s in specs]


def read_npz_inputs(source: str, names: list[str]) -> dict[str, Array | Rows]:
    """The arrays named ``names`` from an .npz INPUT (a path, or - for stdin)."""
    data = _stdin_bytes() if source == "-" else None  # stdin is read once
    out: dict[str, Array | Rows] = {}
    for name in names:
        out[name] = _read_named(source, name, data)
    return out


def _stdin_bytes() -> bytes:
    """All of stdin (for several inputs from one .npz), at most ``MAX_STREAM_BYTES``."""
    stdin = sys.stdin
    if stdin is None:
        raise InputArrayError("<stdin>: stdin is closed")
    try:
        data = files.read_capped(stdin.buffer, MAX_STREAM_BYTES)
    except OSError as exc:  # e.g. a descriptor open for writing only
        raise InputArrayError(f"<stdin>: cannot read ({exc.strerror or exc})") from exc
    if data is None:
        raise InputArrayError(
            f"<stdin>: more than {files.mib(MAX_STREAM_BYTES)}, the most read from a stream "
            "(a file given by its path has no limit)"
        )
    return data


def _read_named(source: str, name: str, data: bytes | None) -> Array | Rows:
    try:
        if data is not None:
            if not data:
                raise InputArrayError("<stdin>: no input data")
            if not data.startswith(ZIP_MAGIC):
                raise InputArrayError("<stdin>: not .npz data")
            return _npz(io.BytesIO(data), "<stdin>", name)
        return read_input(source, name)
    except InputArrayError as exc:
        if f"no array {name!r}" in str(exc) or ".npz" not in str(exc):
            raise InputArrayError(
                f"{source}: a model with several inputs reads an .npz holding one array per "
                f"input name; {exc}"
            ) from None
        raise


def length_note(model: Model, x: Array, where: str, index: int = 0) -> str | None:
    """A warning when ``x``'s T is not the model's fixed T: Keras 3 refuses such an
    input and tf.keras warns; the recurrence itself runs over any T."""
    shape = model.inputs[index].shape
    T = shape[0] if shape else None
    if T is None or x.ndim < 2 or x.shape[1] == T:
        return None
    return (
        f"{where}: T={x.shape[1]} steps, but the model was built for T={T} "
        "(Keras 3 would refuse this input, tf.keras warns); running over all "
        f"{x.shape[1]} steps"
    )


def step_mask(model: Model, key: str, x: Any) -> Array | None:
    """Which steps of the layer call ``key`` are real, (N, T) bool (None: no mask),
    as the graph carries masks to it (for marking masked steps in views)."""
    from .engine import masks_at

    return masks_at(model, x, key)


SAVE_FORMATS = ("npy", "npz", "csv", "tsv", "txt")


def save_inputs(model: Model, xs: list[Array], target: Target) -> None:
    """``save_input`` for one or several inputs: several go to an .npz keyed by the
    model's input names (what an INPUT .npz for the model holds)."""
    if len(xs) == 1:
        save_input(xs[0], target)
        return
    from . import outputs

    if target.format != "npz":
        raise UsageError(
            f"{target.name}: the model takes {len(xs)} inputs: --save-input writes them "
            "to an .npz keyed by input name"
        )
    outputs.write_arrays(
        target, {spec.name: np.asarray(x) for spec, x in zip(model.inputs, xs, strict=True)}
    )


def save_input(x: Array, target: str | Path | Target) -> None:
    """Write a generated input for Keras (or a later run) to read: ``.npy``; ``.npz``
    (key ``x``); ``.csv``/``.tsv``/``.txt``, one sample as T rows (the text inputs'
    own layout)."""
    from . import outputs

    if not isinstance(target, outputs.Target):
        target = outputs.check_target(target, SAVE_FORMATS)
    x = np.asarray(x)  # a RandomRows: drawn whole, to be written
    fmt = target.format
    if fmt == "npz":
        outputs.write_arrays(target, {"x": x})
        return
    if fmt in outputs.DELIMITERS:
        if x.shape[0] != 1:
            raise UsageError(
                f"{target.name}: a text input holds one sample; --random {x.shape[0]} "
                "makes several: use .npy or .npz"
            )
        one = x[0]
        outputs.write_array(target, one.reshape(-1, 1) if one.ndim == 1 else one)
        return
    outputs.write_array(target, x)


def read_input(source: str, key: str | None = None, ids: bool = False) -> Array | Rows:
    """Read an array from a path (``.npy``, ``.npz``, ``.csv``/``.tsv``/``.txt``) or
    ``-`` (stdin: npy bytes, npz bytes or CSV text). ``.npy`` files and ``.npz``
    members come back as ``Rows``, read a block of samples at a time."""
    if source == "-":
        stdin = sys.stdin
        if stdin is None:
            raise InputArrayError("<stdin>: stdin is closed")
        try:
            return _from_stream(stdin.buffer, "<stdin>", key, ids)
        except OSError as exc:  # e.g. a descriptor open for writing only
            raise InputArrayError(f"<stdin>: cannot read ({exc.strerror or exc})") from exc
    path = Path(source)
    where = str(path)
    st = files.stat_or_raise(path, where, InputArrayError, "no such input file")
    if stat.S_ISDIR(st.st_mode):
        raise InputArrayError(f"{where}: is a directory, not an input file")
    suffix = path.suffix.lower()
    if key is not None and suffix in (".npy", ".csv", ".tsv", ".txt"):
        raise UsageError(f"--key {key} names an array in an .npz input; {where} is a {suffix} file")
    try:
        if not stat.S_ISREG(st.st_mode):
            # A pipe (`<(...)`), a device: a stream, read as stdin is (capped).
            with path.open("rb") as fh:
                return _from_stream(fh, where, key, ids)
        if suffix == ".npy":
            return _npy_path(path, where)
        if suffix == ".npz":
            return _npz(path, where, key)
        if suffix in (".csv", ".tsv", ".txt"):
            return parse_text(_text_file(path, where, st), where, ids)
        with path.open("rb") as fh:
            magic = fh.read(len(NPY_MAGIC))
        if key is not None and not magic.startswith(ZIP_MAGIC):
            kind = ".npy data" if magic.startswith(NPY_MAGIC) else "text"
            raise UsageError(f"--key {key} names an array in an .npz input; {where} holds {kind}")
        if magic.startswith(NPY_MAGIC):
            return _npy_path(path, where)
        if magic.startswith(ZIP_MAGIC):
            return _npz(path, where, key)
        return parse_text(_text_file(path, where, st), where, ids)
    except OSError as exc:
        raise InputArrayError(f"{where}: cannot read ({exc.strerror or exc})") from exc


def _text_file(path: Path, where: str, st: os.stat_result) -> bytes:
    if st.st_size > MAX_TEXT_BYTES:
        raise InputArrayError(_too_much_text(where, st.st_size))
    with path.open("rb") as fh:
        data = files.read_capped(fh, MAX_TEXT_BYTES)
    if data is None:
        raise InputArrayError(_too_much_text(where, None))
    return data


def _too_much_text(where: str, size: int | None) -> str:
    held = f"{size:,} bytes" if size is not None else "more"
    return (
        f"{where}: {held} of text; a text input (one sample) is at most "
        f"{files.mib(MAX_TEXT_BYTES)}: save large batches as .npy"
    )


def _from_stream(fh: BinaryIO, where: str, key: str | None, ids: bool) -> Array | Rows:
    """A stream (stdin, a pipe, a device) read into memory, never more than its
    kind allows: an endless one (``/dev/zero``) is an error, not a hang."""
    head = fh.read(len(NPY_MAGIC))
    if not head:
        raise InputArrayError(f"{where}: no input data")
    if key is not None and not head.startswith(ZIP_MAGIC):
        kind = ".npy data" if head.startswith(NPY_MAGIC) else "text"
        raise UsageError(f"--key {key} names an array in an .npz input; {where} holds {kind}")
    if head.startswith(NPY_MAGIC):
        return _npy_stream(fh, head, where)
    cap = MAX_STREAM_BYTES if head.startswith(ZIP_MAGIC) else MAX_TEXT_BYTES
    data = files.read_capped(fh, cap, head)
    if data is None:
        kind = ".npz data" if cap == MAX_STREAM_BYTES else "text"
        raise InputArrayError(
            f"{where}: more than {files.mib(cap)} of {kind}, the most read from a stream "
            "(a file given by its path has no limit)"
        )
    if data.startswith(ZIP_MAGIC):
        return _npz(io.BytesIO(data), where, key)  # read from memory a chunk at a time
    return parse_text(data, where, ids)


def _npy_stream(fh: BinaryIO, head: bytes, where: str) -> Array:
    """.npy bytes from a stream: the header, then exactly the data it declares,
    read into the array itself (a header declaring too much is refused first)."""
    version = _exact(fh, 2, where)
    width = 2 if version[:1] == b"\x01" else 4
    size_bytes = _exact(fh, width, where)
    header_len = int.from_bytes(size_bytes, "little")
    if header_len > 1 << 20:
        raise InputArrayError(f"{where}: .npy header of {header_len:,} bytes; refused")
    header = head + version + size_bytes + _exact(fh, header_len, where)
    try:
        shape, fortran, dtype, _ = npyfile.read_header(io.BytesIO(header))
        npyfile.check(shape, dtype, 1 << 62)
    except npyfile.NpyHeaderError as exc:
        raise InputArrayError(f"{where}: {exc}") from None
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes > MAX_STREAM_BYTES:
        raise InputArrayError(
            f"{where}: the .npy header declares {shape} {dtype} ({nbytes:,} bytes), more than "
            f"the {files.mib(MAX_STREAM_BYTES)} read from a stream: pass the file's path"
        )
    arr = np.empty(shape, dtype, order="F" if fortran else "C")
    if arr.size:
        view = arr.reshape(-1, order="A").view(np.uint8).data
        done = 0
        while done < len(view):
            got = fh.readinto(view[done:])  # type: ignore[attr-defined]
            if not got:
                raise InputArrayError(
                    f"{where}: the stream ended after {done:,} of the {nbytes:,} bytes "
                    "its .npy header declares"
                )
            done += got
    return arr


def _exact(fh: BinaryIO, n: int, where: str) -> bytes:
    data = b""
    while len(data) < n:
        chunk = fh.read(n - len(data))
        if not chunk:
            raise InputArrayError(f"{where}: the stream ended inside the .npy header")
        data += chunk
    return data


def _npy_path(path: Path, where: str) -> Rows:
    try:
        with path.open("rb") as fh:
            shape, fortran, dtype, offset = npyfile.read_header(fh)
        npyfile.check(shape, dtype, path.stat().st_size - offset)
    except npyfile.NpyHeaderError as exc:
        raise InputArrayError(f"{where}: {exc}") from None
    if not shape:
        shape = (1,)  # a 0-d array: one value (conform says what is wrong with it)
    return NpyFileRows(path, where, shape, dtype, fortran, offset)


def _npz(src: Path | BinaryIO, where: str, key: str | None) -> Array | Rows:
    member = _npz_member(src, where, key)
    if member.fortran or not member.shape:
        return _npz_array(src, where, member.info.filename[:-4])
    return ZipMemberRows(src, member.info, where, member.shape, member.dtype, member.offset)


def _npz_member(src: Path | BinaryIO, where: str, key: str | None) -> npyfile.Member:
    try:
        members = npyfile.zip_members(src)
    except npyfile.NpyHeaderError as exc:
        raise InputArrayError(f"{where}: {exc}") from None
    keys = list(members)
    if key is None:
        if len(keys) != 1:
            raise InputArrayError(
                f"{where}: .npz holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                "choose one with --key"
            )
        key = keys[0]
    if key not in members:
        raise InputArrayError(
            f"{where}: no array {key!r} in .npz (keys: {', '.join(keys) or 'none'})"
        )
    return members[key]


def _npz_array(src: Path | BinaryIO, where: str, key: str | None) -> Array:
    """One member read whole (stdin's .npz bytes; Fortran-order members)."""
    import zipfile

    member = _npz_member(src, where, key)
    if member.nbytes > MAX_STREAM_BYTES:
        raise InputArrayError(
            f"{where}: array {member.info.filename[:-4]!r} is {member.nbytes:,} bytes in "
            f"Fortran order or from a stream, read whole: at most {files.mib(MAX_STREAM_BYTES)}"
        )
    if not isinstance(src, Path):
        src.seek(0)
    try:
        with npyfile.quiet(), npyfile.load(src) as npz:
            return np.asarray(npz[member.info.filename[:-4]])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
        raise InputArrayError(f"{where}: broken .npz file ({exc})") from exc


def parse_text(data: bytes, where: str, ids: bool = False) -> Array:
    """One sample as text: T rows of D numbers, separated by commas, tabs or spaces.

    Read a line at a time into one flat buffer of doubles (8 bytes a value, whatever
    the text), never into Python lists of floats (about 90 bytes a value)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputArrayError(f"{where}: not UTF-8 text, .npy or .npz") from exc
    fast = _parse_plain(text)
    if fast is None:
        fast = _parse_lines(text, where)
    arr, all_int = fast
    if ids and 1 in arr.shape:
        # One sample of ids for an Embedding model: a column (T, 1) or a row (1, T).
        arr = arr.reshape(-1)
    if all_int:
        if np.all(np.abs(arr) < 2.0**62):
            return arr.astype(np.int64)
        return arr.copy()  # whole numbers beyond int64: kept as they are, for the checks
    return arr.astype(np.float32)


_PLAIN_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "#")
_INTEGERS = re.compile(r"[0-9+\-\s,]*")


def _parse_plain(text: str) -> tuple[Array, bool] | None:
    """Plain numeric text (ASCII, no comments, no rare line breaks) parsed by
    NumPy's own reader, about ten times faster; None to parse it line by line
    (which also words the errors)."""
    text = text.replace("\r\n", "\n")
    if not text.isascii() or any(c in text for c in _PLAIN_BREAKS) or not text.strip():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.loadtxt(io.StringIO(text.replace(",", " ").replace("\t", " ")), ndmin=2)
    except (ValueError, TypeError):
        return None
    if arr.dtype != np.float64 or arr.size == 0:
        return None
    return arr, _INTEGERS.fullmatch(text) is not None


def _parse_lines(text: str, where: str) -> tuple[Array, bool]:
    values = array.array("d")
    rows = 0
    width = None
    all_int = True
    for lineno, line in enumerate(_lines(text), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c for c in line.replace("\t", ",").replace(" ", ",").split(",") if c != ""]
        for cell in cells:
            try:
                values.append(float(cell))
            except ValueError:
                raise InputArrayError(f"{where}: line {lineno}: {cell!r} is not a number") from None
            all_int = all_int and _is_int_text(cell)
        if width is None:
            width = len(cells)
        elif len(cells) != width:
            raise InputArrayError(
                f"{where}: line {lineno} has {len(cells)} values, earlier lines have {width}"
            )
        rows += 1
    if not rows:
        raise InputArrayError(f"{where}: no numbers in the text input")
    arr: Array = np.frombuffer(values, dtype=np.float64).reshape(rows, width or 0)
    return arr, all_int


def _lines(text: str) -> Iterator[str]:
    """``text.splitlines()``, one line at a time (no list of every line)."""
    for line in io.StringIO(text, newline=""):
        yield from line.splitlines()  # also the rarer breaks (\x0c, \u2028, ...)


def _is_int_text(cell: str) -> bool:
    body = cell[1:] if cell[:1] in "+-" else cell
    return body.isascii() and body.isdigit()
