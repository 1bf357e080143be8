"""Input arrays: read them from files or stdin, make random ones, and check them
against the model (rank, D, dtype, Embedding range) with one clear error each.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from . import npyfile
from .errors import InputArrayError, UsageError
from .model import Array, Bidirectional, Embedding, Layer, Masking, Model, Recurrent

if TYPE_CHECKING:
    from .outputs import Target

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def expected_text(model: Model) -> str:
    dims = ", ".join("T" if d is None else str(d) for d in model.input_shape)
    if model.takes_ids:
        return f"integer ids shaped (N, {dims}) or ({dims},)"
    return f"floats shaped (N, {dims}) or ({dims})"


def conform(model: Model, x: Array, where: str = "input") -> Array:
    """Check ``x``'s shape and dtype against the model (not its values, which
    ``check_rows`` checks chunk by chunk); return a (N, T, D) or (N, T) view."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise InputArrayError(
            f"{where}: array has dtype {x.dtype}; expected {expected_text(model)}"
        )
    want_rank = len(model.input_shape) + 1
    if x.ndim == want_rank - 1:
        x = x[None]  # one sample: N = 1
    if x.ndim != want_rank:
        raise InputArrayError(
            f"{where}: array has shape {x.shape}; expected {expected_text(model)}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputArrayError(f"{where}: array has shape {x.shape}: no samples or no steps")
    if model.takes_ids:
        if x.dtype.kind == "b":
            raise InputArrayError(f"{where}: booleans are not ids; expected {expected_text(model)}")
        return x
    D = model.input_shape[-1]
    if D is not None and x.shape[-1] != D:
        raise InputArrayError(
            f"{where}: array has D={x.shape[-1]} features per step (shape {x.shape}); "
            f"the model expects D={D}: {expected_text(model)}"
        )
    return x


def check_rows(model: Model, x: Array, where: str, first_row: int = 0) -> Array:
    """Value checks on rows of a conformed batch: ids must be integers in [0, V).
    Returns the rows ready for the engine (ids as integers, bools as floats)."""
    if model.takes_ids:
        return _ids(model, x, where, first_row)
    if x.dtype.kind == "b":
        return x.astype(np.float32)
    return x


def _ids(model: Model, x: Array, where: str, first_row: int) -> Array:
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or not np.all(x == np.round(x)):
            raise InputArrayError(
                f"{where}: the model starts with an Embedding and takes integer ids; "
                f"the array holds non-integer floats"
            )
        x = x.astype(np.int64)
    first = model.layers[0]
    assert isinstance(first, Embedding)
    V = int(first.embeddings.shape[0])
    outside = (x < 0) | (x >= V)
    if outside.any():
        n, t = (int(i) for i in np.argwhere(outside)[0])
        raise InputArrayError(
            f"{where}: id {int(x[n, t])} at sample {first_row + n}, step {t} is out of range "
            f"for Embedding {first.name!r} (vocabulary of V={V}: ids 0..{V - 1})"
        )
    return x


def random_input(model: Model, n: int, seed: int | None, length: int | None) -> Array:
    """The notebook's input: ``np.random.seed(seed); np.random.randn(n, T, D)`` (the
    legacy RandomState stream, so the same seed gives the same X there), cast to
    float32 as Keras casts it. Ids for an Embedding model:
    ``np.random.RandomState(seed).randint(1, V, (n, T))``."""
    if n < 1:
        raise UsageError(f"--random takes a positive number of samples, got {n}")
    T = length if length is not None else model.input_shape[0]
    if T is None:
        raise UsageError("the model's T is variable: give --length T with --random")
    if T < 1:
        raise UsageError(f"--length must be positive, got {T}")
    rng = np.random.RandomState(seed)
    if model.takes_ids:
        first = model.layers[0]
        assert isinstance(first, Embedding)
        V = int(first.embeddings.shape[0])
        if V < 2:  # only id 0 (often the mask) exists
            return np.zeros((n, T), dtype=np.int64)
        return rng.randint(1, V, (n, T)).astype(np.int64)
    D = model.input_shape[-1]
    assert D is not None
    return rng.randn(n, T, D).astype(np.float32)


def length_note(model: Model, x: Array, where: str) -> str | None:
    """A warning when ``x``'s T is not the model's fixed T: Keras 3 refuses such an
    input and tf.keras warns; the recurrence itself runs over any T."""
    T = model.input_shape[0]
    if T is None or x.shape[1] == T:
        return None
    return (
        f"{where}: T={x.shape[1]} steps, but the model was built for T={T} "
        "(Keras 3 would refuse this input, tf.keras warns); running over all "
        f"{x.shape[1]} steps"
    )


def step_mask(model: Model, layer: Layer, x: Array) -> Array | None:
    """Which input steps reach ``layer`` unmasked, (N, T) bool (None: no mask): a mask
    from a first Masking or Embedding(mask_zero) layer, carried as the engine
    carries it (recurrent layers returning sequences keep it, others end it)."""
    mask: Array | None = None
    for current in model.layers:
        if current is layer:
            return mask
        if isinstance(current, Embedding):
            mask = (np.asarray(x) != 0) if current.mask_zero else mask
        elif isinstance(current, Masking):
            if current is not model.layers[0]:
                return None  # its input is not x: not worked out here
            mask = np.any(np.asarray(x) != current.mask_value, axis=-1)
        elif isinstance(current, Bidirectional):
            mask = mask if current.return_sequences else None
        elif isinstance(current, Recurrent):
            mask = mask if current.return_sequences and not current.emit else None
    return None


SAVE_FORMATS = ("npy", "npz", "csv", "tsv", "txt")


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
