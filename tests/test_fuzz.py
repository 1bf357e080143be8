"""Fuzzing: mutated, truncated and spliced sample files never crash the tool.

Every run must end in success or one of the documented error exits (2 usage, 3 model,
4 input, 5 output), with one line on stderr and no traceback, and leave no temporary
file behind. The corpus covers every model format (.keras, legacy .h5, .weights.h5,
tf.keras files, .npz in both conventions) across the layer families (SimpleRNN,
LSTM, GRU and GRU v1, Bidirectional, nested models, return_state, Embedding,
Masking, TimeDistributed), graph models (several inputs and outputs, shared layers,
merges, attention, convolutions), --config JSON, and every input form (.npy in C and
Fortran order, .npz stored and deflated, CSV, stdin, a several-input .npz, --input
NAME=PATH), --initial-state files and verify references; archives are also damaged
in their directory (compression method, flags, sizes) where the parsers trust it.
A model that loads is also run through a newer command (diagnose, explain, verify,
diff, export and reading the export back, plot, --final-state fed back as
--initial-state). The default profile is fast; the long one runs thousands of cases:

    RNNINSPECT_FUZZ_EXAMPLES=3000 python -m pytest tests/test_fuzz.py -p no:cacheprovider -s

(``-s`` shows the number of CLI runs made; ``RNNINSPECT_FUZZ_LOG=FILE`` also
appends each run's exit code to FILE, to follow a long run.) A failing case's files are
saved under ``$RNNINSPECT_FUZZ_FINDS/rnninspect-fuzz-finds`` (default: the temporary
directory) and printed in the failure, compressed, so that a find can be replayed.
Crashers found by the long profile are kept below as explicit regression tests.
"""

from __future__ import annotations

import contextlib
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

import rnninspect
from rnninspect.errors import InputArrayError

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
EXAMPLES = int(os.environ.get("RNNINSPECT_FUZZ_EXAMPLES", "40"))
# A file the HDF5 library loops on is stopped after this long (the default: 10 s, plus
# 1 s per 20 MB the file holds, at most 60 s).
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
] + [
    SAMPLES / model / name
    for model, name in (
        ("embedding", "model.keras"),
        ("stacked", "tfkeras.h5"),
        ("lstm", "model.keras"),
        ("lstm", "tfkeras_weights.h5"),
        ("gru", "model.h5"),
        ("gru_v1", "tfkeras.h5"),
        ("bidi_concat", "model.keras"),
        ("bidi_none", "layers.npz"),
        ("nested_seq", "model.h5"),
        ("nested_func", "model.keras"),
        ("return_state", "tfkeras.keras"),
        ("masking", "layers.npz"),
        ("timedistributed", "model.weights.h5"),
        ("acceptance_chain", "model.keras"),
    )
]
# Graph models: several inputs, several outputs, shared layers, merges, attention,
# convolutions, states passed between layers.
GRAPH_SEEDS = [
    SAMPLES / model / name
    for model, name in (
        ("attention_seq2seq", "model.keras"),
        ("seq2seq_states", "tfkeras.h5"),
        ("shared_layers", "model.h5"),
        ("multi_output", "layers.npz"),
        ("merges", "model.keras"),
        ("masked_merge", "tfkeras.keras"),
        ("mha", "model.keras"),
        ("cnn_lstm", "model.weights.h5"),
        ("convlstm1d", "model.keras"),
        ("plumbing", "tfkeras.h5"),
    )
]
MODEL_SEEDS += GRAPH_SEEDS
MODEL_BYTES = [(p.name, p.read_bytes()) for p in MODEL_SEEDS]
# Which sample each seed file comes from (its golden.npz, its --config).
SOURCE_OF = {p.read_bytes(): p for p in MODEL_SEEDS}
# Weights-only files and the --config that describes them.
CONFIG_PAIRS = [
    (SAMPLES / model / weights, (SAMPLES / model / "config.json").read_bytes())
    for model, weights in (
        ("seed", "model.weights.h5"),
        ("lstm", "tfkeras_weights.h5"),
        ("bidi_concat", "model.weights.h5"),
        ("nested_seq", "model.weights.h5"),
        ("embedding", "model.weights.h5"),
    )
]
CONFIG_BYTES = [("config.json", data) for _, data in CONFIG_PAIRS]


def _input_seeds() -> list[tuple[str, bytes]]:
    with np.load(SAMPLES / "seed" / "golden.npz") as g:
        x = g["x"]
    npy, fortran, npz, deflated, csv = (io.BytesIO() for _ in range(5))
    np.save(npy, x)
    np.save(fortran, np.asfortranarray(x))
    np.savez(npz, x=x)
    np.savez_compressed(deflated, x=x)
    text = io.StringIO()
    np.savetxt(text, x[0], delimiter=",")
    csv.write(text.getvalue().encode())
    return [
        ("x.npy", npy.getvalue()),
        ("f.npy", fortran.getvalue()),
        ("x.npz", npz.getvalue()),
        ("d.npz", deflated.getvalue()),
        ("x.csv", csv.getvalue()),
    ]


def _id_seeds() -> list[tuple[str, bytes]]:
    with np.load(SAMPLES / "embedding" / "golden.npz") as g:
        x = g["x"]
    npy, csv = io.BytesIO(), io.StringIO()
    np.save(npy, x)
    np.savetxt(csv, x[0].reshape(-1, 1), fmt="%d")
    return [("ids.npy", npy.getvalue()), ("ids.csv", csv.getvalue().encode())]


INPUT_BYTES = _input_seeds()
ID_BYTES = _id_seeds()
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


def _rezip(
    members: dict[str, bytes],
    compression: int = zipfile.ZIP_STORED,
    forge: tuple[str, str, int] | None = None,
) -> bytes:
    """A zip of ``members``; ``forge``: (member, ZipInfo field, value) written into
    the central directory only (the local header keeps the truth), as a damaged or
    hostile archive would say it."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
        if forge is not None:
            member, field, value = forge
            setattr(zf.getinfo(member), field, value)
    return out.getvalue()


FORGED_FIELDS = {
    "compress_type": st.sampled_from([1, 6, 9, 12, 14, 93, 95, 98, 99]),
    "flag_bits": st.sampled_from([0x1, 0x8, 0x41, 0x800]),
    "file_size": st.one_of(st.integers(0, 1 << 16), st.sampled_from([1 << 32, 1 << 42, 1 << 62])),
    "compress_size": st.integers(0, 1 << 34),
}


@st.composite
def mutated(draw: st.DrawFn, corpus: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    name, data = draw(st.sampled_from(corpus))
    members = _zip_members(data)
    if members:
        how = draw(st.sampled_from(["member", "directory", "whole"]))
        compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
        if how == "member":
            # Mutate inside the archive so the damage reaches the h5/json/npy parsers.
            member = draw(st.sampled_from(sorted(members)))
            members[member] = draw(_mutation(members[member], corpus))
            return name, _rezip(members, compression)
        if how == "directory":
            member = draw(st.sampled_from(sorted(members)))
            field = draw(st.sampled_from(sorted(FORGED_FIELDS)))
            forge = (member, field, draw(FORGED_FIELDS[field]))
            return name, _rezip(members, compression, forge)
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


LOG = os.environ.get("RNNINSPECT_FUZZ_LOG")  # a line per CLI run (for long runs)


# The files of the case being run (a fuzz case writes them through _case_file), kept
# when a check fails so that the find can be replayed: Hypothesis shortens the repr
# of large byte strings in its report.
CASE_FILES: list[tuple[Path, bytes]] = []
FINDS = (
    Path(os.environ.get("RNNINSPECT_FUZZ_FINDS") or tempfile.gettempdir()) / "rnninspect-fuzz-finds"
)


def _case_file(path: Path, data: bytes) -> None:
    """Write one of a fuzz case's files, remembered until the next case starts."""
    if CASE_FILES and CASE_FILES[-1][0].parent != path.parent:
        CASE_FILES.clear()
    CASE_FILES.append((path, data))
    path.write_bytes(data)


def _saved_case() -> str:
    """Each file of the failing case, saved under FINDS; also printed (zlib, base64)
    when small, for a failure on a machine whose disk is gone (CI)."""
    import base64
    import hashlib
    import zlib

    FINDS.mkdir(parents=True, exist_ok=True)
    lines = []
    for path, data in CASE_FILES:
        kept = FINDS / f"{hashlib.sha1(data).hexdigest()[:12]}-{path.name}"
        kept.write_bytes(data)
        packed = base64.b64encode(zlib.compress(data, 9)).decode()
        line = f"case file {path.name} saved as {kept}"
        if len(packed) <= 200_000:
            line += f"; zlib+base64 ({len(packed)} chars):\n{packed}"
        lines.append(line)
    return "\n".join(lines)


def _check(code: int, err: str, allowed: set[int]) -> None:
    COUNTER["cases"] += 1
    if LOG:
        with open(LOG, "a") as fh:
            # Each run's code; an unexpected one with its stderr, found while it runs.
            fh.write(f"{code}\n" if code in allowed else f"{code} {err!r}\n")
    try:
        _judge(code, err, allowed)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_saved_case()}") from None


def _judge(code: int, err: str, allowed: set[int]) -> None:
    assert code in allowed, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert "Exception ignored" not in err and "Warning" not in err, err
    if code:
        # One line: the error, or the verdict of a comparison (exit 6).
        head = "rnninspect: " if code == 6 else "rnninspect: error"
        lines = [
            line
            for line in err.splitlines()
            if line.startswith(head) and not line.startswith("rnninspect: warning")
        ]
        assert len(lines) == 1, err


def _no_leftovers(directory: Path, *keep: str) -> None:
    left = sorted(p.name for p in directory.iterdir() if p.name not in keep)
    assert not [n for n in left if n.endswith(".tmp")], f"temporary files left behind: {left}"


def _keep_find(name: str, data: bytes, err: str) -> None:
    if "did not finish" in err or "crashed" in err:
        # Keep hostile files that hang or crash libhdf5 for a regression corpus.
        FINDS.mkdir(parents=True, exist_ok=True)
        (FINDS / f"hang-{len(list(FINDS.iterdir()))}-{name}").write_bytes(data)


COMMANDS = ("diagnose", "explain", "explain-step", "verify", "diff", "export", "plot", "states")


def _original(name: str, data: bytes) -> Path:
    """The sample file a mutated file came from (the first of its name and kind)."""
    exact = SOURCE_OF.get(data)
    if exact is not None:
        return exact
    return next(p for p in MODEL_SEEDS if p.name == name)


def _newer_command(command: str, path: Path, name: str, data: bytes, rand: list[str]) -> None:
    """One of the newer commands on a model that loads: never a crash, never a
    leftover, and an exported file reads back."""
    tmp = path.parent
    any_code = {0, 2, 3, 4}
    if command == "diagnose":
        code, err = run_cli("diagnose", str(path), *rand, "--json")
        _check(code, err, any_code)
    elif command == "explain":
        code, err = run_cli("explain", str(path), "--json")
        _check(code, err, {0, 3})
    elif command == "explain-step":
        code, err = run_cli("explain", str(path), "--step", "0", *rand, "--json")
        _check(code, err, any_code)
    elif command == "verify":
        golden = _original(name, data).parent / "golden.npz"
        code, err = run_cli("verify", str(path), str(golden), "--json")
        _check(code, err, {*any_code, 6})
    elif command == "diff":
        code, err = run_cli("diff", str(_original(name, data)), str(path), "--json")
        _check(code, err, {*any_code, 6})
    elif command == "export":
        out = tmp / ("again.npz" if len(data) % 3 == 0 else "again.keras")
        code, err = run_cli("export", str(path), "-o", str(out))
        _check(code, err, {0, 2, 3, 5})
        assert out.exists() == (code == 0), err
        if code == 0:
            code, err = run_cli("summary", str(out), "--json")
            _check(code, err, {0, 3})
    elif command == "plot":
        out = tmp / "h.svg"
        code, err = run_cli("plot", str(path), "--random", "1", *rand[2:], "-o", str(out))
        _check(code, err, any_code)
        assert out.exists() == (code == 0), err
    else:  # the final states fed back as initial states
        finals = tmp / "finals.npz"
        code, err = run_cli("forward", str(path), *rand, "--final-state", str(finals), "--json")
        _check(code, err, any_code)
        assert finals.exists() == (code == 0), err
        if code == 0:
            code, err = run_cli("trace", str(path), *rand, "--initial-state", str(finals), "--json")
            _check(code, err, any_code)


@FUZZ
@given(
    case=mutated(MODEL_BYTES),
    gates=st.booleans(),
    command=st.sampled_from(COMMANDS),
    own_t=st.booleans(),
)
def test_mutated_model_files(
    case: tuple[str, bytes], gates: bool, command: str, own_t: bool
) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        _case_file(path, data)
        code, err = run_cli("summary", str(path), "--json")
        _keep_find(name, data, err)
        _check(code, err, {0, 3})
        if code == 0:
            # The model's own T (a variable T: 4), or T = 4 whatever the model's.
            rand = ["--random", "2", "--length", "4"]
            code, err = run_cli("forward", str(path), *rand[: 2 if own_t else 4], "--json")
            if own_t and code == 2 and "--length" in err:
                code, err = run_cli("forward", str(path), *rand, "--json")
            else:
                rand = rand[: 2 if own_t else 4]
            _check(code, err, {0, 2, 3, 4})
            out = Path(tmp) / "states.npz"
            args = ["trace", str(path), *rand, "-o", str(out)]
            code, err = run_cli(*args, *(["--gates"] if gates else []))
            _check(code, err, {0, 2, 3, 4})
            assert out.exists() == (code == 0)
            _newer_command(command, path, name, data, rand)
            _no_leftovers(Path(tmp))


@FUZZ
@given(
    pair=st.sampled_from(range(len(CONFIG_PAIRS))),
    mutation=st.data(),
)
def test_mutated_config_files(pair: int, mutation: st.DataObject) -> None:
    weights, config = CONFIG_PAIRS[pair]
    data = mutation.draw(_mutation(config, CONFIG_BYTES))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        _case_file(path, data)
        code, err = run_cli("summary", str(weights), "--config", str(path), "--json")
        _check(code, err, {0, 3})
        if code:
            # The config is the culprit: the error names it (or the weights it
            # does not fit).
            assert str(path) in err or str(weights) in err, err
        else:
            code, err = run_cli(
                "forward", str(weights), "--config", str(path), "--random", "2", "--length", "3"
            )
            _check(code, err, {0, 2, 3, 4})


@FUZZ
@given(case=mutated(INPUT_BYTES), stdin=st.booleans())
def test_mutated_inputs(case: tuple[str, bytes], stdin: bool) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        _case_file(path, data)
        out = Path(tmp) / "y.npy"
        model = str(SAMPLES / "seed" / "model.keras")
        if stdin:
            code, err = _stdin_cli(data, "forward", model, "-", "-o", str(out))
        else:
            code, err = run_cli("forward", model, str(path), "-o", str(out))
        _check(code, err, {0, 4})
        assert out.exists() == (code == 0)
        _no_leftovers(Path(tmp))


def _graph_input_seeds() -> list[tuple[str, bytes]]:
    """The attention_seq2seq sample's two inputs (enc_in, dec_in) in one .npz."""
    with np.load(SAMPLES / "attention_seq2seq" / "golden.npz") as g:
        enc, dec = g["x/0"], g["x/1"]
    stored, deflated = io.BytesIO(), io.BytesIO()
    np.savez(stored, enc_in=enc, dec_in=dec)
    np.savez_compressed(deflated, enc_in=enc, dec_in=dec)
    one = io.BytesIO()
    np.save(one, dec)
    return [
        ("xs.npz", stored.getvalue()),
        ("xd.npz", deflated.getvalue()),
        ("dec.npy", one.getvalue()),
    ]


GRAPH_INPUT_BYTES = _graph_input_seeds()
GRAPH = SAMPLES / "attention_seq2seq" / "model.keras"


@FUZZ
@given(case=mutated(GRAPH_INPUT_BYTES), how=st.sampled_from(["npz", "stdin", "named"]))
def test_mutated_graph_inputs(case: tuple[str, bytes], how: str) -> None:
    """A several-input model's inputs: one .npz (a file or stdin), or one file per
    input (--input NAME=PATH), damaged."""
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        _case_file(path, data)
        out = Path(tmp) / "y.npz"
        if how == "named":
            enc = Path(tmp) / "enc.npy"
            with np.load(SAMPLES / "attention_seq2seq" / "golden.npz") as g:
                np.save(enc, g["x/0"])
            named = ["--input", f"enc_in={enc}", "--input", f"dec_in={path}"]
            code, err = run_cli("forward", str(GRAPH), *named, "-o", str(out))
        elif how == "stdin":
            code, err = _stdin_cli(data, "forward", str(GRAPH), "-", "-o", str(out))
        else:
            code, err = run_cli("trace", str(GRAPH), str(path), "-o", str(out))
        _check(code, err, {0, 2, 4})
        assert out.exists() == (code == 0)
        _no_leftovers(Path(tmp))


def _states_seeds() -> list[tuple[str, bytes]]:
    """Final states of the seed and LSTM samples, as --final-state writes them."""
    out = []
    for model in ("seed", "lstm"):
        with tempfile.TemporaryDirectory() as tmp:
            finals = Path(tmp) / "f.npz"
            path = SAMPLES / model / "model.keras"
            code, _, err = conftest.run_cli(
                "forward", str(path), "--random", "3", "--seed", "0", "--final-state", str(finals)
            )
            assert code == 0, err
            out.append((f"{model}.npz", finals.read_bytes()))
    return out


STATES_BYTES = _states_seeds()


@FUZZ
@given(case=mutated(STATES_BYTES))
def test_mutated_initial_states(case: tuple[str, bytes]) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.npz"
        _case_file(path, data)
        model = SAMPLES / name.removesuffix(".npz") / "model.keras"
        out = Path(tmp) / "y.npy"
        args = ["--random", "3", "--initial-state", str(path), "-o", str(out)]
        code, err = run_cli("forward", str(model), *args)
        _check(code, err, {0, 2, 4})
        assert out.exists() == (code == 0)
        _no_leftovers(Path(tmp))


REFERENCE_BYTES = [
    ("golden.npz", (SAMPLES / "seed" / "golden.npz").read_bytes()),
    ("y.npy", next(b for n, b in INPUT_BYTES if n == "x.npy")),
]


@FUZZ
@given(case=mutated(REFERENCE_BYTES))
def test_mutated_verify_references(case: tuple[str, bytes]) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        _case_file(path, data)
        model = str(SAMPLES / "seed" / "model.keras")
        extra = [] if name.endswith(".npz") else ["--input", str(SAMPLES / "seed" / "golden.npz")]
        extra += [] if name.endswith(".npz") else ["--key", "x"]
        code, err = run_cli("verify", model, str(path), *extra, "--json")
        _check(code, err, {0, 2, 4, 6})


@FUZZ
@given(case=mutated(ID_BYTES))
def test_mutated_id_inputs(case: tuple[str, bytes]) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        _case_file(path, data)
        code, err = run_cli(
            "trace", str(SAMPLES / "embedding" / "model.keras"), str(path), "--json"
        )
        _check(code, err, {0, 4})


def _stdin_cli(data: bytes, *args: str) -> tuple[int, str]:
    import sys

    class Stdin:
        buffer = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]

    real = sys.stdin
    sys.stdin = Stdin()  # type: ignore[assignment]
    try:
        return run_cli(*args)
    finally:
        sys.stdin = real


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


def test_regression_layer_name_that_is_not_utf8(tmp_path: Path) -> None:
    """Found by fuzzing: one byte of a weights file's group name flipped to 0x80
    made the layer name undecodable; writing it as an .npz key (or a table on
    stdout) raised UnicodeEncodeError. Names from files are now always text."""
    data = bytearray((SAMPLES / "seed" / "model.weights.h5").read_bytes())
    data[data.index(b"simple_rnn") + 1] = 0x80  # in the layer group's link name
    path = tmp_path / "model.weights.h5"
    path.write_bytes(bytes(data))
    out = tmp_path / "states.npz"
    code, _, err = conftest.run_cli(
        "trace", str(path), "--random", "2", "--length", "4", "-o", str(out)
    )
    assert code == 0, err
    with np.load(out) as states:
        assert any("\ufffd" in key for key in states.files)
    code, stdout, err = conftest.run_cli("summary", str(path))
    assert code == 0 and "\ufffd" in stdout, err


@pytest.mark.parametrize(
    ("model", "name", "at", "config"),
    [("gru_v1", "tfkeras.h5", 2467, False), ("nested_seq", "model.weights.h5", 4939, True)],
)
def test_regression_recurrent_layer_given_no_sequence(
    tmp_path: Path, model: str, name: str, at: int, config: bool
) -> None:
    """Found by the long fuzz profile: one flipped byte ("return_sequences" ->
    " eturn_sequences") left a stacked recurrent layer after one returning only its
    last step, which Keras cannot build; the engine crashed on the 2-D input (exit
    1). It is a model error, named at load."""
    source = SAMPLES / model / ("config.json" if config else name)
    data = bytearray(source.read_bytes())
    data[at] = 0x20
    path = tmp_path / source.name
    path.write_bytes(bytes(data))
    args = (
        ["summary", str(SAMPLES / model / name), "--config", str(path)]
        if config
        else ["summary", str(path)]
    )
    code, _, err = conftest.run_cli(*args)
    assert code == 3, err
    assert "takes sequences" in err and "return_sequences is false" in err


def test_regression_plot_of_a_convlstm(tmp_path: Path) -> None:
    """Found by the long fuzz profile: plot drew a ConvLSTM's (T, W, F) feature maps
    as an image and matplotlib refused them (exit 1). It is a usage error."""
    out = tmp_path / "h.svg"
    model = SAMPLES / "convlstm1d" / "model.keras"
    code, err = run_cli("plot", str(model), "--random", "1", "-o", str(out))
    assert code == 2 and "ConvLSTM" in err, err
    assert not out.exists()


def test_regression_npz_zip_version_and_name_mismatch(tmp_path: Path) -> None:
    """Found by the long fuzz profile (exit 1): an .npz whose directory claims a zip
    version zipfile cannot read (NotImplementedError), as a several-input INPUT; an
    --initial-state .npz whose member name differs between directory and header
    (BadZipFile). Both are input errors."""
    with np.load(SAMPLES / "attention_seq2seq" / "golden.npz") as g:
        np.savez(tmp_path / "xs.npz", enc_in=g["x/0"], dec_in=g["x/1"])
    data = bytearray((tmp_path / "xs.npz").read_bytes())
    data[data.index(b"PK\x01\x02") + 6] = 213  # "version needed": 21.3
    (tmp_path / "xs.npz").write_bytes(bytes(data))
    code, err = run_cli(
        "forward", str(SAMPLES / "attention_seq2seq" / "model.keras"), str(tmp_path / "xs.npz")
    )
    assert code == 4 and "version" in err, err
    np.savez(tmp_path / "s.npz", **{"simple_rnn/h": np.zeros((3, 5), np.float32)})
    data = bytearray((tmp_path / "s.npz").read_bytes())
    at = data.index(b"PK\x01\x02")
    data[data.index(b"simple_rnn/h", at)] = 0  # the directory's copy of the name only
    (tmp_path / "s.npz").write_bytes(bytes(data))
    model = SAMPLES / "seed" / "model.keras"
    code, err = run_cli(
        "forward", str(model), "--random", "3", "--initial-state", str(tmp_path / "s.npz")
    )
    assert code == 4 and "s.npz" in err, err


def test_regression_one_input_model_given_several_arrays() -> None:
    """Found by the long fuzz (verify with a several-input reference): a list of
    arrays is one array per input, as Keras reads it; the wrong count is exit 4."""
    m = rnninspect.load_model(SAMPLES / "seed" / "model.keras")
    x = np.zeros((2, 10, 3), np.float32)
    with pytest.raises(InputArrayError, match="2 input array"):
        m.forward([x, x])
    with pytest.raises(InputArrayError, match="2 input array"):
        m.forward([x, np.zeros((2, 6, 2), np.float32)])
    assert m.forward(x.tolist()).shape == (2, 2)  # nested lists stay data
    code, err = run_cli(
        "verify",
        str(SAMPLES / "seed" / "model.keras"),
        str(SAMPLES / "attention_seq2seq" / "golden.npz"),
    )
    assert code == 4 and "2 input array" in err, err


def test_regression_verify_reference_of_another_length(tmp_path: Path) -> None:
    """Found by the long fuzz: a reference whose input has another T than a model
    whose shapes hold T (plumbing reshapes over its T) is exit 4, naming the
    reference and both lengths."""
    model = SAMPLES / "plumbing" / "model.keras"
    with np.load(SAMPLES / "plumbing" / "golden.npz") as g:
        ref = {k: g[k] for k in g.files}
    T = ref["x"].shape[1]
    ref["x"] = np.concatenate([ref["x"], ref["x"][:, :3]], axis=1)
    path = tmp_path / "ref.npz"
    np.savez(path, **ref)
    code, err = run_cli("verify", str(model), str(path))
    _check(code, err, {4})
    assert str(path) in err and f"T={T + 3}" in err and f"T={T}" in err, err


def test_regression_parse_child_with_descriptors_past_1024() -> None:
    """Found by the long fuzz: with over 1024 files open, select() refused the
    parse child's pipe (exit 1); poll has no such limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("this machine allows too few open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        code, err = run_cli("summary", str(SAMPLES / "seed" / "model.h5"), "--json")
        assert code == 0, err
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_regression_verify_reference_with_names_that_differ(tmp_path: Path) -> None:
    """Found by the long fuzz: a reference .npz whose member is named one way in the
    zip directory and another in its header was exit 1 (BadZipFile); now exit 4."""
    data = (SAMPLES / "seed" / "golden.npz").read_bytes()
    names = [n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.startswith("x")]
    name = names[0].encode()
    at = data.rindex(name)  # the central directory's copy comes last
    ref = tmp_path / "golden.npz"
    ref.write_bytes(data[:at] + name[:-1] + b"\xb2" + data[at + len(name) :])
    code, err = run_cli("verify", str(SAMPLES / "seed" / "model.keras"), str(ref))
    _check(code, err, {4})
    assert str(ref) in err, err


def _open_files_naming(path: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                found.append(fd)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("compress", [False, True], ids=["stored", "deflated"])
def test_regression_npz_input_is_closed_after_the_run(tmp_path: Path, compress: bool) -> None:
    """Found by the long fuzz (its process passed 1024 open files): an .npz input
    read a block of rows at a time stayed open for the life of the process, its
    finalizer holding the reader it was to close. A library caller or a server
    reading many files ran out of descriptors."""
    with np.load(SAMPLES / "seed" / "golden.npz") as g:
        x = g["x"]
    path = tmp_path / "x.npz"
    (np.savez_compressed if compress else np.savez)(path, x=x)
    for _ in range(3):
        code, err = run_cli(
            "forward",
            str(SAMPLES / "seed" / "model.keras"),
            str(path),
            "-o",
            str(tmp_path / "y.npy"),
        )
        assert code == 0, err
    assert _open_files_naming(path) == []
    # And an archive np.load cannot open is closed too, the error kept or not.
    bad = tmp_path / "bad.npz"
    bad.write_bytes(path.read_bytes()[:-30])
    code, err = run_cli("forward", str(SAMPLES / "seed" / "model.keras"), str(bad))
    assert code == 4, err
    assert _open_files_naming(bad) == []


@pytest.mark.parametrize("fork", [True, False])
@pytest.mark.parametrize(
    ("dtype", "raw"),
    [
        ("<U1", np.array([0x45000072], "<u4").tobytes()),  # past U+10FFFF
        (">U1", np.array([0x110000], ">u4").tobytes()),
        ("<U1", np.array([0xD800], "<u4").tobytes()),  # a lone surrogate
        ("S3", b"{\xf0("),  # not UTF-8
        ("u1", b"{\xf0("),
    ],
    ids=["past-U+10FFFF", "past-U+10FFFF-big-endian", "lone-surrogate", "bytes", "uint8"],
)
def test_regression_npz_config_that_is_not_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool, dtype: str, raw: bytes
) -> None:
    """Found by CI's fuzz (exit 1, UnicodeDecodeError): a mutated ``__config__`` held a
    32-bit unit past U+10FFFF. NumPy made it a str that Python cannot encode, so its
    pickle from the parse child failed to load in the parent. Now any ``__config__``
    that is not valid text is exit 3, naming the file, with or without the child."""
    if fork:
        monkeypatch.delenv("RNNINSPECT_NO_FORK", raising=False)
    else:
        monkeypatch.setenv("RNNINSPECT_NO_FORK", "1")
    with np.load(SAMPLES / "lstm" / "layers.npz") as z:
        arrays = {k: z[k] for k in z.files}
    text = str(arrays["__config__"])
    assert text.startswith("{")
    # The JSON text with one character broken, in the same dtype family as the cases.
    if dtype.endswith("U1"):
        units = np.frombuffer(text.encode("utf-32-le"), "<u4").astype(dtype.replace("U1", "u4"))
        units[10] = np.frombuffer(raw, dtype.replace("U1", "u4"))[0]
        arrays["__config__"] = units.view(dtype[0] + f"U{len(text)}").reshape(())
    else:
        body = text.encode()[:10] + raw + text.encode()[10:]
        arrays["__config__"] = np.array(body) if dtype[0] == "S" else np.frombuffer(body, np.uint8)
    path = tmp_path / "layers.npz"
    np.savez(path, **arrays)
    for command in (
        ["summary", str(path), "--json"],
        ["summary", str(SAMPLES / "lstm" / "model.weights.h5"), "--config", str(path)],
    ):
        code, err = run_cli(*command)
        _check(code, err, {3})
        assert f"{path}: __config__ is not valid text" in err, err


@pytest.mark.parametrize("dtype", ["complex64", "<U5", "m8[s]", "M8[D]"])
def test_regression_verify_reference_of_no_real_numbers(tmp_path: Path, dtype: str) -> None:
    """Found by the long fuzz (a NumPy warning on stderr): a reference of complex
    numbers passed on its real part alone (with a ComplexWarning), dates and
    strings were compared as numbers; now each is exit 4, naming the array."""
    with np.load(SAMPLES / "seed" / "golden.npz") as g:
        y = g["y"]
    ref = tmp_path / "y.npy"
    np.save(ref, y.astype("i8").astype(dtype) if dtype[0] in "mM" else y.astype(dtype))
    seed = SAMPLES / "seed"
    code, err = run_cli(
        "verify",
        str(seed / "model.keras"),
        str(ref),
        "--input",
        str(seed / "golden.npz"),
        "--key",
        "x",
    )
    _check(code, err, {4})
    assert "'y'" in err and "not real numbers" in err, err
