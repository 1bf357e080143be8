"""``verify``: does this model compute what a reference says it computes?

A reference holds the input ``x`` (several: ``x/0, x/1, ...``) and the expected
output (``y``; several outputs as ``y/0, y/1, ...``, or ``output``, ``output_0, ...``
as ``forward -o`` writes them),
and optionally expected states: ``state/<key>`` (a ``trace`` entry),
``final/<key>/h``, ``final/<key>/c`` (the states a layer ends with) and
``mask/<key>`` (the mask a layer computes with, 1 for a real step): the layout of
``sample_models/*/golden.npz``. Each array is compared like Polygraphy's comparison
report: max absolute and relative error, mean absolute error, how many values are
out of tolerance (``|got - want| > atol + rtol * |want|``, NumPy's ``isclose``;
NaN matches NaN) and where the worst one is.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import npyfile
from ..errors import InputArrayError, RnnInspectError
from ..model import Array, Bidirectional, Model, Recurrent

RTOL = 1e-4
ATOL = 1e-5


@dataclass
class Check:
    name: str  # the reference's key
    shape: tuple[int, ...] | None  # what the model computed (None: it has no such array)
    expected_shape: tuple[int, ...]
    max_abs_error: float | None  # None when the shapes differ
    max_rel_error: float | None  # inf where want == 0 and got differs
    mean_abs_error: float | None
    mismatched: int  # values out of tolerance (all of them when the shapes differ)
    total: int
    worst_index: tuple[int, ...] | None  # where |got - want| is largest

    @property
    def passed(self) -> bool:
        return self.shape == self.expected_shape and self.mismatched == 0


@dataclass
class Verification:
    rtol: float
    atol: float
    checks: list[Check]
    skipped: list[str] = field(default_factory=list)  # reference keys not compared

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def compare(name: str, got: Array | None, want: Array, rtol: float, atol: float) -> Check:
    """One array against its expected value."""
    want = np.asarray(want)
    expected = tuple(int(d) for d in want.shape)
    if got is None or tuple(got.shape) != expected:
        shape = None if got is None else tuple(int(d) for d in got.shape)
        return Check(name, shape, expected, None, None, None, int(want.size), int(want.size), None)
    with np.errstate(all="ignore"):  # a float128 beyond float64's range: inf
        a = np.asarray(got, dtype=np.float64)
        b = want.astype(np.float64)
        ok = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        err = np.abs(a - b)
        err = np.where(np.isnan(a) & np.isnan(b), 0.0, err)
        err = np.where(np.isnan(err), np.inf, err)  # NaN against a number: as bad as it gets
        rel = np.where(err == 0, 0.0, err / np.abs(b))
    worst = (
        tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
        if err.size
        else None
    )
    return Check(
        name,
        expected,
        expected,
        float(err.max()) if err.size else 0.0,
        float(rel.max()) if rel.size else 0.0,
        float(err.mean()) if err.size else 0.0,
        int((~ok).sum()),
        int(want.size),
        worst,
    )


def _read(reference: str | Path | Mapping[str, Array]) -> dict[str, Array]:
    """The reference's arrays, each of real numbers (bool, integer or float): a
    complex one would be compared by its real part alone, dates, strings and the
    like not as numbers at all."""
    if isinstance(reference, Mapping):
        arrays = {str(k): np.asarray(v) for k, v in reference.items()}
        where = "the reference"
    else:
        where = str(reference)
        arrays = _read_file(Path(reference))
    for key, arr in arrays.items():
        if arr.dtype.kind not in "biuf":
            raise InputArrayError(
                f"{where}: array {key!r} holds {arr.dtype} values, not real numbers; a "
                "reference holds the expected outputs or states as numbers"
            )
    return arrays


def _read_file(path: Path) -> dict[str, Array]:
    where = str(path)
    _check_reference(path, where)
    try:
        if path.suffix.lower() == ".npy":
            with npyfile.load(path) as y:
                return {"y": np.asarray(y)}
        with npyfile.load(path) as z:
            if not hasattr(z, "files"):
                return {"y": np.asarray(z)}
            return {k: z[k] for k in z.files}
    except FileNotFoundError as exc:
        raise InputArrayError(f"{where}: no such file") from exc
    except (
        OSError,
        ValueError,
        EOFError,
        zipfile.BadZipFile,
        RuntimeError,
        NotImplementedError,
    ) as exc:
        # BadZipFile: a member named one way in the directory, another in its header;
        # NotImplementedError: a compression zipfile cannot read (as states.py reads).
        raise InputArrayError(f"{where}: not a .npz or .npy reference ({exc})") from exc


def _check_reference(path: Path, where: str) -> None:
    """A reference is a regular file (a FIFO would block, a device be endless) whose
    headers declare no more than it holds, checked before NumPy allocates anything."""
    import stat

    from .. import files

    st = files.stat_or_raise(path, where, InputArrayError)
    if not stat.S_ISREG(st.st_mode):
        raise InputArrayError(f"{where}: a reference is read from a regular file only")
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
        if magic == b"\x93NUMPY":
            npyfile.check_path(path)
        else:
            npyfile.check_zip_members(path)
    except npyfile.NpyHeaderError as exc:
        raise InputArrayError(f"{where}: {exc}") from None
    except OSError as exc:
        raise InputArrayError(f"{where}: cannot read ({exc.strerror or exc})") from exc


def _expected_outputs(ref: dict[str, Array]) -> list[tuple[str, Array]]:
    for single in ("y", "output"):
        if single in ref:
            return [(single, ref[single])]
    for pattern in ("y/{}", "output_{}"):
        found: list[tuple[str, Array]] = []
        while pattern.format(len(found)) in ref:
            key = pattern.format(len(found))
            found.append((key, ref[key]))
        if found:
            return found
    return []


def _final_h(model: Model, key: str, states: dict[str, Array], x: Any) -> Array | None:
    """The h a layer (or direction) ends with, from its traced sequence: the last
    step's output, unless masked outputs are zeros (``zero_output_for_mask``)."""
    seq = states.get(key)
    if seq is None:
        return None
    base, _, direction = key.partition("/")
    try:
        layer = model.node(base).layer
    except RnnInspectError:  # no such layer: the check fails as missing
        return None
    cell = getattr(layer, direction, None) if isinstance(layer, Bidirectional) else layer
    if not isinstance(cell, Recurrent) or not cell.zero_output_for_mask:
        return seq[:, -1]
    from .tape import record

    tape = record(model, x)
    node = model.node(base)
    mask = tape.masks[node.inputs[0]]
    if mask is None:
        return seq[:, -1]
    valid = np.asarray(mask, bool)[:, ::-1] if cell.go_backwards else np.asarray(mask, bool)
    out = np.zeros_like(seq[:, -1])
    for n in range(seq.shape[0]):
        kept = np.flatnonzero(valid[n])
        if kept.size:
            out[n] = seq[n, kept[-1]]
    return out


def _mask(model: Model, x: Any, key: str, want: Array) -> Array | None:
    """The mask a node's layer computes with, as the reference stores it (1 for a
    real step); all ones where the graph carries no mask there."""
    from ..engine import masks_at

    try:
        model.node(key)
    except RnnInspectError:
        return None
    mask = masks_at(model, x, key)
    if mask is None:
        return np.ones(np.shape(want), dtype=np.asarray(want).dtype)
    return np.asarray(mask).astype(np.asarray(want).dtype)


def _other_length(model: Any, x: Any) -> str | None:
    """How the reference's input differs in T from what the model was built for."""
    xs = x if isinstance(x, (list, tuple)) else [x]
    for put, arr in zip(model.inputs, xs, strict=False):
        T = put.shape[0] if put.shape else None
        steps = np.shape(arr)[1] if np.ndim(arr) >= 2 else None
        if T is not None and steps is not None and steps != T:
            return f"its input {put.name!r} has T={steps}; the model was built for T={T}"
    return None


def verify(
    model: Model | str | Path,
    reference: str | Path | Mapping[str, Array],
    x: Any = None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> Verification:
    """Run ``model`` on the reference's input (or ``x``) and compare every array
    the reference holds an expected value for (``model``: a Model or a file)."""
    from . import as_model

    model = as_model(model)
    ref = _read(reference)
    where = "reference" if isinstance(reference, Mapping) else str(reference)
    inputs: list[str] = ["x"] if "x" in ref else []
    while "x" not in ref and f"x/{len(inputs)}" in ref:
        inputs.append(f"x/{len(inputs)}")
    if x is None:
        if not inputs:
            raise InputArrayError(
                f"{where}: holds no input 'x' (or x/0, x/1, ...): give the input with --input"
            )
        x = ref["x"] if inputs == ["x"] else [ref[k] for k in inputs]
    expected = _expected_outputs(ref)
    if not expected:
        keys = ", ".join(sorted(ref)) or "none"
        raise InputArrayError(
            f"{where}: holds no expected output (y, y/0..., output or output_0...; has {keys})"
        )
    try:
        outs = model.forward_all(x)
    except (ValueError, IndexError) as exc:
        other = _other_length(model, x)
        if other is None:
            raise
        # Layers whose shapes hold T (a Flatten, a Dot over time) cannot run over another.
        raise InputArrayError(
            f"{where}: {other}, and the model cannot run over another ({type(exc).__name__}: {exc})"
        ) from exc
    if len(outs) != len(expected):
        raise InputArrayError(
            f"{where}: holds {len(expected)} expected output(s) "
            f"({', '.join(k for k, _ in expected)}); the model has {len(outs)}"
        )
    checks = [
        compare(k, got, want, rtol, atol) for (k, want), got in zip(expected, outs, strict=True)
    ]
    used = {k for k, _ in expected} | set(inputs)
    wanted = [k for k in ref if k.startswith(("state/", "final/", "mask/"))]
    states = model.trace(x) if any(not k.startswith("mask/") for k in wanted) else {}
    for k in wanted:
        used.add(k)
        name = k.split("/", 1)[1]
        got: Array | None
        if k.startswith("mask/"):
            got = _mask(model, x, name, ref[k])
        elif k.startswith("state/"):
            got = states.get(name)
        else:
            m = re.fullmatch(r"(.+)/([hc])", name)
            if m is None:
                got = None
            elif m.group(2) == "c":
                c = states.get(f"{m.group(1)}/c")
                got = None if c is None else c[:, -1]  # kept through masked steps
            else:
                got = _final_h(model, m.group(1), states, x)
        checks.append(compare(k, got, ref[k], rtol, atol))
    skipped = [k for k in ref if k not in used]
    return Verification(rtol, atol, checks, skipped)
