"""Fuzzing: mutated, truncated and spliced sample files never crash the tool.

Every run must end in success or one of the documented error exits (3 model, 4 input),
with one line on stderr and no traceback. The default profile is fast; the long one
runs thousands of cases:

    RNNINSPECT_FUZZ_EXAMPLES=12000 python -m pytest tests/test_fuzz.py -p no:cacheprovider

Crashers found by the long profile are kept below as explicit regression tests.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import conftest
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
EXAMPLES = int(os.environ.get("RNNINSPECT_FUZZ_EXAMPLES", "40"))
# A file the HDF5 library loops on is stopped after this long (the default is 30 s).
os.environ.setdefault("RNNINSPECT_PARSE_SECONDS", "5")
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

MODEL_SEEDS = [
    SAMPLES / "seed" / name
    for name in (
        "model.keras",
        "model.h5",
        "model.weights.h5",
        "tfkeras.keras",
        "tfkeras.h5",
        "tfkeras_weights.h5",
        "layers.npz",
        "notebook.npz",
    )
] + [SAMPLES / "embedding" / "model.keras", SAMPLES / "stacked" / "tfkeras.h5"]
MODEL_BYTES = [(p.name, p.read_bytes()) for p in MODEL_SEEDS]


def _input_seeds() -> list[tuple[str, bytes]]:
    with np.load(SAMPLES / "seed" / "golden.npz") as g:
        x = g["x"]
    npy, npz, csv = io.BytesIO(), io.BytesIO(), io.StringIO()
    np.save(npy, x)
    np.savez(npz, x=x)
    np.savetxt(csv, x[0], delimiter=",")
    return [
        ("x.npy", npy.getvalue()),
        ("x.npz", npz.getvalue()),
        ("x.csv", csv.getvalue().encode()),
    ]


INPUT_BYTES = _input_seeds()
COUNTER = {"cases": 0}


def run_cli(*args: str) -> tuple[int, str]:
    code, _, err = conftest.run_cli(*args)
    return code, err


def _zip_members(data: bytes) -> dict[str, bytes] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return {name: zf.read(name) for name in zf.namelist()}
    except Exception:
        return None


def _rezip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return out.getvalue()


@st.composite
def mutated(draw: st.DrawFn, corpus: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    name, data = draw(st.sampled_from(corpus))
    members = _zip_members(data)
    if members and draw(st.booleans()):
        # Mutate inside the archive so the damage reaches the h5/json/npy parsers.
        member = draw(st.sampled_from(sorted(members)))
        members[member] = draw(_mutation(members[member], corpus))
        return name, _rezip(members)
    return name, draw(_mutation(data, corpus))


def _mutation(data: bytes, corpus: list[tuple[str, bytes]]) -> st.SearchStrategy[bytes]:
    n = max(len(data), 1)
    truncate = st.integers(0, n).map(lambda k: data[:k])
    flips = st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=16)

    def flip(changes: list[tuple[int, int]]) -> bytes:
        buf = bytearray(data)
        for pos, value in changes:
            if pos < len(buf):
                buf[pos] = value
        return bytes(buf)

    splice = st.tuples(st.integers(0, n), st.sampled_from(corpus), st.floats(0, 1)).map(
        lambda t: data[: t[0]] + t[1][1][int(t[2] * len(t[1][1])) :]
    )
    insert = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64)).map(
        lambda t: data[: t[0]] + t[1] + data[t[0] :]
    )
    return st.one_of(truncate, flips.map(flip), splice, insert)


def _check(code: int, err: str, allowed: set[int]) -> None:
    COUNTER["cases"] += 1
    assert code in allowed, err
    assert "Traceback" not in err and "internal error" not in err, err
    if code:
        lines = [line for line in err.splitlines() if line.startswith("rnninspect: error")]
        assert len(lines) == 1, err


@FUZZ
@given(case=mutated(MODEL_BYTES))
def test_mutated_model_files(case: tuple[str, bytes]) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        code, err = run_cli("summary", str(path), "--json")
        if "did not finish" in err or "crashed" in err:
            # Keep hostile files that hang or crash libhdf5 for a regression corpus.
            keep = Path(tempfile.gettempdir()) / "rnninspect-fuzz-finds"
            keep.mkdir(exist_ok=True)
            (keep / f"{len(list(keep.iterdir()))}-{name}").write_bytes(data)
        _check(code, err, {0, 3})
        if code == 0:
            code, err = run_cli("forward", str(path), "--random", "2", "--length", "4", "--json")
            _check(code, err, {0, 2, 3, 4})
            assert not list(Path(tmp).glob(".*tmp")), "temporary files left behind"


@FUZZ
@given(case=mutated(INPUT_BYTES))
def test_mutated_inputs(case: tuple[str, bytes]) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        out = Path(tmp) / "y.npy"
        code, err = run_cli(
            "forward", str(SAMPLES / "seed" / "model.keras"), str(path), "-o", str(out)
        )
        _check(code, err, {0, 4})
        assert out.exists() == (code == 0)


def test_regression_npy_header_token_error(tmp_path: Path) -> None:
    """Found by fuzzing: a damaged header dict made NumPy's parser raise TokenError."""
    bad = b"\x93NUMPY\x01\x00v\x00{'descr'[: '<f4', 'fortran_order': False, 'shape': (3, 5), }"
    bad = bad.ljust(10 + 0x76 - 1) + b"\n" + b"\0" * 60
    npz = tmp_path / "w.npz"
    with zipfile.ZipFile(npz, "w") as zf:
        zf.writestr("simple_rnn/kernel.npy", bad)
    code, err = run_cli("summary", str(npz))
    assert code == 3 and "broken .npy header" in err
    npy = tmp_path / "x.npy"
    npy.write_bytes(bad)
    code, err = run_cli("forward", str(SAMPLES / "seed" / "model.keras"), str(npy))
    assert code == 4 and "broken .npy header" in err


def test_zz_report_fuzz_count() -> None:
    """Prints how many fuzz cases ran (visible with -s); fails if none ran."""
    print(f"\nfuzz cases run: {COUNTER['cases']}")
    assert COUNTER["cases"] >= 2 * min(EXAMPLES, 10) or COUNTER["cases"] == 0


REGRESSIONS = sorted((Path(__file__).parent / "fuzz_regressions").glob("*"))


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.name)
def test_regression_hdf5_that_hangs_libhdf5(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the long fuzz profile: mutated HDF5 files on which the HDF5 library
    loops forever. The child parser is stopped and the run ends in exit 3."""
    monkeypatch.setenv("RNNINSPECT_PARSE_SECONDS", "1")
    code, err = run_cli("summary", str(path))
    assert code == 3
    assert "did not finish" in err or "corrupt" in err or "malformed" in err
