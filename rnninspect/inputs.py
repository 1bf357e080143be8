"""Input arrays: read them from files or stdin, make random ones, and check them
against the model (rank, D, dtype, Embedding range) with one clear error each.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from . import npyfile
from .errors import InputArrayError, UsageError
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


def conform(model: Model, x: Array, where: str = "input", index: int = 0) -> Array:
    """Check ``x``'s shape and dtype against the model's input ``index`` (not its
    values, which ``check_rows`` checks chunk by chunk); return a (N, T, D) or
    (N, T) view."""
    spec = model.inputs[index]
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
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
        if not np.all(np.isfinite(x)) or not np.all(x == np.round(x)):
            raise InputArrayError(
                f"{where}: the model starts with an Embedding and takes integer ids; "
                f"the array holds non-integer floats"
            )
        x = x.astype(np.int64)
    first = embedding_for(model, index)
    if first is None:
        return x
    V = int(first.embeddings.shape[0])
    outside = (x < 0) | (x >= V)
    if outside.any():
        n, t = (int(i) for i in np.argwhere(outside)[0])
        raise InputArrayError(
            f"{where}: id {int(x[n, t])} at sample {first_row + n}, step {t} is out of range "
            f"for Embedding {first.name!r} (vocabulary of V={V}: ids 0..{V - 1})"
        )
    return x


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
    input; ``rng``: the stream to draw from (several inputs share one)."""
    if n < 1:
        raise UsageError(f"--random takes a positive number of samples, got {n}")
    spec: InputLayer = model.inputs[index]
    T = length if length is not None else spec.shape[0]
    if T is None:
        raise UsageError("the model's T is variable: give --length T with --random")
    if T < 1:
        raise UsageError(f"--length must be positive, got {T}")
    rng = np.random.RandomState(seed) if rng is None else rng
    if spec.dtype == "int32":
        first = embedding_for(model, index)
        V = int(first.embeddings.shape[0]) if first is not None else 2
        if V < 2:  # only id 0 (often the mask) exists
            return np.zeros((n, T), dtype=np.int64)
        return rng.randint(1, V, (n, T)).astype(np.int64)
    rest = tuple(int(d) for d in spec.shape[1:] if d is not None)
    return rng.randn(n, T, *rest).astype(np.float32)


def random_inputs(model: Model, n: int, seed: int | None, length: int | None) -> list[Array]:
    """One random batch per model input, drawn one after the other from one stream,
    as ``np.random.seed(S); x1 = np.random.randn(...); x2 = np.random.randn(...)``."""
    rng = np.random.RandomState(seed)
    return [random_input(model, n, seed, length, i, rng) for i in range(len(model.inputs))]


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
) -> list[Array]:
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
    found: dict[str, Array] = {}
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


def read_npz_inputs(source: str, names: list[str]) -> dict[str, Array]:
    """The arrays named ``names`` from an .npz INPUT (a path, or - for stdin)."""
    data = sys.stdin.buffer.read() if source == "-" else None  # stdin is read once
    out = {}
    for name in names:
        out[name] = _read_named(source, name, data)
    return out


def _read_named(source: str, name: str, data: bytes | None) -> Array:
    try:
        if data is not None:
            return _from_bytes(data, "<stdin>", name, False)
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
    outputs.write_arrays(target, {spec.name: x for spec, x in zip(model.inputs, xs, strict=True)})


def save_input(x: Array, target: str | Path | Target) -> None:
    """Write a generated input for Keras (or a later run) to read: ``.npy``; ``.npz``
    (key ``x``); ``.csv``/``.tsv``/``.txt``, one sample as T rows (the text inputs'
    own layout)."""
    from . import outputs

    if not isinstance(target, outputs.Target):
        target = outputs.check_target(target, SAVE_FORMATS)
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


def read_input(source: str, key: str | None = None, ids: bool = False) -> Array:
    """Read an array from a path (``.npy``, ``.npz``, ``.csv``/``.tsv``/``.txt``) or
    ``-`` (stdin: npy bytes, npz bytes or CSV text)."""
    if source == "-":
        data = sys.stdin.buffer.read()
        return _from_bytes(data, "<stdin>", key, ids)
    path = Path(source)
    where = str(path)
    if not path.exists():
        raise InputArrayError(f"{where}: no such input file")
    if path.is_dir():
        raise InputArrayError(f"{where}: is a directory, not an input file")
    suffix = path.suffix.lower()
    if key is not None and suffix in (".npy", ".csv", ".tsv", ".txt"):
        raise UsageError(f"--key {key} names an array in an .npz input; {where} is a {suffix} file")
    try:
        if suffix == ".npy":
            return _npy_path(path, where)
        if suffix == ".npz":
            return _npz(path, where, key)
        if suffix in (".csv", ".tsv", ".txt"):
            return parse_text(path.read_bytes(), where, ids)
        return _from_bytes(path.read_bytes(), where, key, ids)
    except OSError as exc:
        raise InputArrayError(f"{where}: cannot read ({exc.strerror or exc})") from exc


def _from_bytes(data: bytes, where: str, key: str | None, ids: bool) -> Array:
    if not data:
        raise InputArrayError(f"{where}: no input data")
    if key is not None and not data.startswith(ZIP_MAGIC):
        kind = ".npy data" if data.startswith(NPY_MAGIC) else "text"
        raise UsageError(f"--key {key} names an array in an .npz input; {where} holds {kind}")
    if data.startswith(NPY_MAGIC):
        return _npy(io.BytesIO(data), where)
    if data.startswith(ZIP_MAGIC):
        return _npz(io.BytesIO(data), where, key)
    return parse_text(data, where, ids)


def _npy_path(path: Path, where: str) -> Array:
    try:
        npyfile.check_path(path)
    except npyfile.NpyHeaderError as exc:
        raise InputArrayError(f"{where}: {exc}") from None
    try:
        # Memory-mapped: a large input is read in chunks as the engine walks N.
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputArrayError(f"{where}: broken .npy file ({exc})") from exc
    return np.asarray(arr) if arr.ndim == 0 else arr


def _npy(fh: BinaryIO, where: str) -> Array:
    try:
        data = fh.read()
        shape, _, dtype, offset = npyfile.read_header(io.BytesIO(data))
        npyfile.check(shape, dtype, len(data) - offset)
    except npyfile.NpyHeaderError as exc:
        raise InputArrayError(f"{where}: {exc}") from None
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise InputArrayError(f"{where}: .npy holds Python objects (pickle); refused") from exc
        raise InputArrayError(f"{where}: broken .npy file ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise InputArrayError(f"{where}: broken .npy file ({exc})") from exc
    if not isinstance(arr, np.ndarray):
        raise InputArrayError(f"{where}: not a .npy array")
    return arr


def _npz(src: Path | BinaryIO, where: str, key: str | None) -> Array:
    try:
        npyfile.check_zip_members(src)
    except npyfile.NpyHeaderError as exc:
        raise InputArrayError(f"{where}: {exc}") from None
    if not isinstance(src, Path):
        src.seek(0)
    try:
        with np.load(src, allow_pickle=False) as npz:
            keys = list(npz.files)
            if key is None:
                if len(keys) != 1:
                    raise InputArrayError(
                        f"{where}: .npz holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                        "choose one with --key"
                    )
                key = keys[0]
            if key not in keys:
                raise InputArrayError(
                    f"{where}: no array {key!r} in .npz (keys: {', '.join(keys) or 'none'})"
                )
            try:
                return np.asarray(npz[key])
            except ValueError as exc:
                raise InputArrayError(
                    f"{where}: array {key!r} holds Python objects (pickle); refused"
                ) from exc
    except InputArrayError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputArrayError(f"{where}: broken .npz file ({exc})") from exc


def parse_text(data: bytes, where: str, ids: bool = False) -> Array:
    """One sample as text: T rows of D numbers, separated by commas, tabs or spaces."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputArrayError(f"{where}: not UTF-8 text, .npy or .npz") from exc
    rows: list[list[float]] = []
    width = None
    all_int = True
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c for c in line.replace("\t", ",").replace(" ", ",").split(",") if c != ""]
        values = []
        for cell in cells:
            try:
                values.append(float(cell))
            except ValueError:
                raise InputArrayError(f"{where}: line {lineno}: {cell!r} is not a number") from None
            all_int = all_int and _is_int_text(cell)
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise InputArrayError(
                f"{where}: line {lineno} has {len(values)} values, earlier lines have {width}"
            )
        rows.append(values)
    if not rows:
        raise InputArrayError(f"{where}: no numbers in the text input")
    arr = np.asarray(rows, dtype=np.float64)
    if ids and 1 in arr.shape:
        # One sample of ids for an Embedding model: a column (T, 1) or a row (1, T).
        arr = arr.reshape(-1)
    if all_int:
        return arr.astype(np.int64)
    return arr.astype(np.float32)


def _is_int_text(cell: str) -> bool:
    body = cell[1:] if cell[:1] in "+-" else cell
    return body.isdigit()
