"""Careless and hostile use, in process: never lose a file, bounded memory and time,
the documented exit code with one line on stderr. (Signals, pipes, FIFOs and closed
descriptors need a real process: ``test_hostile_process.py``.)"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SAMPLES, run_cli
from filetools import edit_keras_zip, read_zip

from rnninspect.errors import ExitCode

SEED = SAMPLES / "seed" / "model.keras"


def one_error(err: str) -> str:
    """The single stderr line of a failed run (no traceback, nothing else)."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rnninspect: error: "), err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


def fails(code: int, *args: str) -> str:
    got, _, err = run_cli(*args)
    assert got == code, err
    return one_error(err)


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def x_npy(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).standard_normal((4, 10, 3)).astype(np.float32))
    return path


# ------------------------------------------------ never write over a file the run reads


@pytest.mark.parametrize("command", ["forward", "trace"])
@pytest.mark.parametrize("how", ["same name", "other spelling", "symlink", "hard link"])
def test_output_over_the_input_is_refused(
    tmp_path: Path, x_npy: Path, command: str, how: str
) -> None:
    target = {
        "same name": x_npy,
        "other spelling": tmp_path / "." / ".." / tmp_path.name / "x.npy",
        "symlink": tmp_path / "link.npy",
        "hard link": tmp_path / "hard.npy",
    }[how]
    if how == "symlink":
        target.symlink_to(x_npy)
    if how == "hard link":
        os.link(x_npy, target)
    before = listing(tmp_path)
    line = fails(ExitCode.USAGE, command, str(SEED), str(x_npy), "-o", str(target))
    assert str(target) in line and str(x_npy) in line and "input file" in line
    assert listing(tmp_path) == before


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_output_over_the_model_or_config_is_refused(tmp_path: Path, suffix: str) -> None:
    """An .npz model (or a --config JSON) named as the output: refused, untouched."""
    model = shutil.copy(SAMPLES / "seed" / "notebook.npz", tmp_path / "w.npz")
    config = shutil.copy(SAMPLES / "seed" / "config.json", tmp_path / "c.json")
    target = model if suffix == ".npz" else config
    before = listing(tmp_path)
    for command in ("forward", "trace"):
        line = fails(
            ExitCode.USAGE,
            command,
            str(model),
            "--config",
            str(config),
            "--random",
            "2",
            "-o",
            str(target),
        )
        assert ("model file" if suffix == ".npz" else "--config file") in line
    assert listing(tmp_path) == before


def test_output_through_a_symlinked_directory_is_refused(tmp_path: Path, x_npy: Path) -> None:
    (tmp_path / "alias").symlink_to(tmp_path, target_is_directory=True)
    fails(ExitCode.USAGE, "forward", str(SEED), str(x_npy), "-o", str(tmp_path / "alias/x.npy"))


def test_a_new_output_beside_the_input_is_fine(tmp_path: Path, x_npy: Path) -> None:
    code, _, err = run_cli("forward", str(SEED), str(x_npy), "-o", str(tmp_path / "y.npy"))
    assert code == 0, err


@pytest.mark.parametrize("target", ["null.npy", "fifo.npy"])
def test_output_that_is_not_a_regular_file_is_refused(tmp_path: Path, target: str) -> None:
    """A device or FIFO behind an output name would be replaced, not written to."""
    path = tmp_path / target
    if target == "fifo.npy":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/null")
    line = fails(ExitCode.OUTPUT, "forward", str(SEED), "--random", "2", "-o", str(path))
    assert "regular file" in line
    assert stat.S_ISFIFO(path.stat().st_mode) or path.is_symlink()


# --------------------------------------------------------------- output file permissions


@pytest.fixture
def umask():  # type: ignore[no-untyped-def]
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".json"])
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_are_created_as_the_umask_allows(
    tmp_path: Path, umask, suffix: str, mask: int, mode: int
) -> None:  # type: ignore[no-untyped-def]
    umask(mask)
    target = tmp_path / f"y{suffix}"
    code, _, err = run_cli("forward", str(SEED), "--random", "2", "-o", str(target))
    assert code == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == mode


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".json"])
def test_trace_outputs_are_created_as_the_umask_allows(tmp_path: Path, umask, suffix: str) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / f"s{suffix}"
    code, _, err = run_cli("trace", str(SEED), "--random", "2", "-o", str(target))
    assert code == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_rewriting_a_file_keeps_its_mode(tmp_path: Path, umask) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "y.npy"
    target.write_bytes(b"earlier")
    target.chmod(0o640)
    code, _, err = run_cli("forward", str(SEED), "--random", "2", "-o", str(target))
    assert code == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_bytes() != b"earlier"


# ------------------------------------------------------------------------ exit codes

LONG = "n" * 300  # longer than any file name may be (NAME_MAX is 255)


@pytest.mark.parametrize(
    ("code", "args"),
    [
        (ExitCode.MODEL, ["summary", f"{LONG}.keras"]),
        (
            ExitCode.MODEL,
            ["summary", str(SAMPLES / "seed" / "model.weights.h5"), "--config", f"{LONG}.json"],
        ),
        (ExitCode.INPUT, ["forward", str(SEED), f"{LONG}.npy"]),
        (ExitCode.OUTPUT, ["forward", str(SEED), "--random", "2", "-o", f"{LONG}.npy"]),
        (ExitCode.OUTPUT, ["trace", str(SEED), "--random", "2", "-o", f"{LONG}/s.npz"]),
    ],
    ids=["model", "config", "input", "output", "output-dir"],
)
def test_names_too_long_take_the_code_of_their_file(code: int, args: list[str]) -> None:
    line = fails(code, *args)
    assert "too long" in line


@pytest.mark.parametrize(
    ("role", "code"),
    [("model", ExitCode.MODEL), ("input", ExitCode.INPUT), ("output", ExitCode.OUTPUT)],
)
def test_symlink_loops_take_the_code_of_their_file(tmp_path: Path, role: str, code: int) -> None:
    loop = tmp_path / f"loop.{'keras' if role == 'model' else 'npy'}"
    loop.symlink_to(loop.name)
    args = {
        "model": ["summary", str(loop)],
        "input": ["forward", str(SEED), str(loop)],
        "output": ["forward", str(SEED), "--random", "2", "-o", str(loop)],
    }[role]
    assert str(loop) in fails(code, *args)


def test_dangling_symlink_as_model(tmp_path: Path) -> None:
    link = tmp_path / "m.keras"
    link.symlink_to(tmp_path / "gone.keras")
    assert "no such file" in fails(ExitCode.MODEL, "summary", str(link))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--random", "100000000000000000000"], "--random"),
        (["--random", "1e20"], "not a valid"),
        (["--random", "2", "--length", "1000000000000000"], "--length"),
        (["--random", "2", "--length", "1e15"], "not a valid"),
        (["--random", "2", "--length", "0"], "--length"),
        (["--random", "2", "--seed", "-1"], "--seed"),
        (["--random", "2", "--seed", str(1 << 32)], "--seed"),
        (["--random", "0"], "--random"),
    ],
)
def test_impossible_random_batches_are_usage_errors(args: list[str], fragment: str) -> None:
    line = fails(ExitCode.USAGE, "forward", str(VARIABLE), *args)
    assert fragment in line


VARIABLE = SAMPLES / "variable_t" / "model.keras"


def _with_input_shape(tmp_path: Path, T: int) -> Path:
    def config(c):  # type: ignore[no-untyped-def]
        c["config"]["layers"][0]["config"]["batch_shape"] = [None, T, 3]
        return c

    return edit_keras_zip(SEED, tmp_path / f"t{T}.keras", config=config)


def test_a_model_declaring_a_huge_t_is_a_model_error(tmp_path: Path) -> None:
    path = _with_input_shape(tmp_path, 10**12)
    code, _, err = run_cli("summary", str(path), "--json")
    assert code == 0, err  # nothing wrong with describing it
    line = fails(ExitCode.MODEL, "forward", str(path), "--random", "3")
    assert str(path) in line and "T=1,000,000,000,000" in line and "--length" not in line
    # --length overrides the model's T: then it is the only size
    assert run_cli("forward", str(path), "--random", "3", "--length", "4")[0] == 0


def test_a_model_declaring_t_0_does_not_blame_length(tmp_path: Path) -> None:
    path = _with_input_shape(tmp_path, 0)
    line = fails(ExitCode.MODEL, "forward", str(path), "--random", "2")
    assert str(path) in line and "T=0" in line and "--length" not in line


@pytest.mark.parametrize("value", ["²", "٣", "１", "2²", "-1", "0", "9" * 5000])
def test_thread_limit_must_be_ascii_digits(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RNNINSPECT_THREADS", value)
    line = fails(ExitCode.USAGE, "forward", str(SEED), "--random", "2")
    assert "RNNINSPECT_THREADS" in line


@pytest.mark.parametrize("var", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"])
@pytest.mark.parametrize("value", ["²", "٣", "9" * 5000])
def test_foreign_thread_variables_that_are_not_numbers_are_ignored(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.delenv("RNNINSPECT_THREADS", raising=False)
    monkeypatch.setenv(var, value)
    code, _, err = run_cli("forward", str(SEED), "--random", "2")
    assert code == 0, err


def test_parse_time_limit_setting_that_is_not_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("abc", "nan", "-5", "inf", "1e400"):
        monkeypatch.setenv("RNNINSPECT_PARSE_SECONDS", value)
        code, _, err = run_cli("summary", str(SEED))
        assert code == 0, (value, err)


def _embedding_vocabulary(tmp_path: Path, V: int) -> Path:
    def config(c):  # type: ignore[no-untyped-def]
        for layer in c["config"]["layers"]:
            if layer["class_name"] == "Embedding":
                layer["config"]["input_dim"] = V
        return c

    def weights(h5):  # type: ignore[no-untyped-def]
        vars_ = h5["layers/embedding/vars"]
        e = vars_["0"][()]
        del vars_["0"]
        vars_["0"] = np.zeros((V, e.shape[1]), e.dtype)

    src = SAMPLES / "embedding" / "model.keras"
    return edit_keras_zip(src, tmp_path / f"v{V}.keras", h5=weights, config=config)


@pytest.mark.parametrize("command", [["summary"], ["forward", "--random", "2"]])
def test_embedding_with_an_empty_vocabulary_is_a_model_error(
    tmp_path: Path, command: list[str]
) -> None:
    path = _embedding_vocabulary(tmp_path, 0)
    line = fails(ExitCode.MODEL, command[0], str(path), *command[1:])
    assert "empty vocabulary" in line and str(path) in line


EMBEDDING = SAMPLES / "embedding" / "model.keras"


@pytest.mark.parametrize(
    ("ids", "shown"),
    [
        (np.array([[1.0, 1e20, 2.0]]), "id 100000000000000000000 at sample 0, step 1"),
        (np.array([[1.0, -1e20, 2.0]]), "id -100000000000000000000 at sample 0, step 1"),
        (np.array([[1.0, 2.0, 1e300]]), "at sample 0, step 2"),
        (np.array([[3, 2**64 - 1]], dtype=np.uint64), "id 18446744073709551615"),
        (np.array([[1.0, np.nan]]), "holds nan"),
        (np.array([[1.0, 2.5]]), "holds 2.5"),
    ],
)
def test_ids_are_reported_as_they_are_without_numpy_warnings(
    tmp_path: Path, ids: np.ndarray, shown: str
) -> None:
    import warnings

    path = tmp_path / "ids.npy"
    np.save(path, np.pad(ids, ((0, 0), (0, 9 - ids.shape[1])), constant_values=1))  # T = 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        line = fails(ExitCode.INPUT, "forward", str(EMBEDDING), str(path))
    assert shown in line


# --------------------------------------------------------------------- zip members


def _zip_with(
    path: Path, members: dict[str, bytes], forge: Callable[[zipfile.ZipInfo], None]
) -> Path:
    """A zip whose central directory says what ``forge`` makes it say (the local
    headers keep the truth): compression methods, flags, sizes."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for info in zf.infolist():
            forge(info)
    return path


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _deflate64(info: zipfile.ZipInfo) -> None:
    info.compress_type = 9


def _encrypted(info: zipfile.ZipInfo) -> None:
    info.flag_bits |= 0x1


def _four_terabytes(info: zipfile.ZipInfo) -> None:
    info.file_size = 4 << 40


@pytest.mark.parametrize(
    ("forge", "fragment"),
    [(_deflate64, "Deflate64"), (_encrypted, "encrypted"), (_four_terabytes, "4,398,046,511,104")],
    ids=["deflate64", "encrypted", "4TB"],
)
def test_unreadable_zip_members(
    tmp_path: Path, forge: Callable[[zipfile.ZipInfo], None], fragment: str
) -> None:
    x = np.zeros((2, 10, 3), np.float32)
    npz = _zip_with(tmp_path / "x.npz", {"x.npy": _npy_bytes(x)}, forge)
    assert fragment in fails(ExitCode.INPUT, "forward", str(SEED), str(npz))
    with npz.open("rb") as fh:
        code, _, err = _stdin_run(fh.read(), "forward", str(SEED), "-")
    assert code == ExitCode.INPUT and fragment in one_error(err)
    with np.load(SAMPLES / "seed" / "layers.npz") as z:
        members = {f"{k}.npy": _npy_bytes(z[k]) for k in z.files}
    model = _zip_with(tmp_path / "w.npz", members, forge)
    assert fragment in fails(ExitCode.MODEL, "summary", str(model))
    keras = _zip_with(tmp_path / "m.keras", read_zip(SEED), forge)
    assert fails(ExitCode.MODEL, "summary", str(keras)).startswith(f"rnninspect: error: {keras}")


def _stdin_run(data: bytes, *args: str) -> tuple[int, str, str]:
    import sys

    class Stdin:
        buffer = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]

    real = sys.stdin
    sys.stdin = Stdin()  # type: ignore[assignment]
    try:
        return run_cli(*args)
    finally:
        sys.stdin = real


# ------------------------------------------------------------------ bounded memory


def test_dev_zero_as_input_is_capped() -> None:
    line = fails(ExitCode.INPUT, "forward", str(SEED), "/dev/zero")
    assert "/dev/zero" in line and "16 MiB" in line


def _npy_header(shape: tuple[int, ...], fortran: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": fortran, "shape": shape}
    )
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (_npy_header((1 << 20, 10, 3 << 10)), "more than the 512 MiB read from a stream"),
        (_npy_header((4, 10, 3)) + b"\0" * 100, "the stream ended after 100 of the 480 bytes"),
        (_npy_header((4, 10, 3))[:20], "ended inside the .npy header"),
        (b"PK\x03\x04" + b"\0" * 100, "broken .npz"),
        (b"\0" * 1000, "not a number"),
    ],
    ids=["declares-too-much", "short-data", "short-header", "broken-zip", "zeros"],
)
def test_stdin_is_read_as_its_header_says_and_no_further(data: bytes, fragment: str) -> None:
    code, _, err = _stdin_run(data, "forward", str(SEED), "-")
    assert code == ExitCode.INPUT
    assert fragment in one_error(err)


def test_stdin_npy_in_both_orders(tmp_path: Path) -> None:
    x = np.random.default_rng(1).standard_normal((3, 10, 3)).astype(np.float32)
    want = run_cli("forward", str(SEED), "--json", _saved(tmp_path / "c.npy", x))[1]
    for order in (np.ascontiguousarray(x), np.asfortranarray(x), x.astype(">f4")):
        code, out, err = _stdin_run(_npy_bytes(order), "forward", str(SEED), "--json", "-")
        assert code == 0, err
        assert out == want


def _saved(path: Path, a: np.ndarray) -> str:
    np.save(path, a)
    return str(path)


@pytest.mark.parametrize("layout", ["fortran", "big-endian", "npz", "npz-fortran", "npz-deflated"])
def test_inputs_read_in_blocks_equal_the_whole_array(tmp_path: Path, layout: str) -> None:
    """Every layout the block readers handle gives the numbers of the array itself,
    over several chunks."""
    x = np.random.default_rng(2).standard_normal((50, 10, 3)).astype(np.float32)
    want = run_cli("forward", str(SEED), "--json", _saved(tmp_path / "c.npy", x))[1]
    path = tmp_path / ("x.npz" if layout.startswith("npz") else "x.npy")
    if layout == "fortran":
        np.save(path, np.asfortranarray(x))
    elif layout == "big-endian":
        np.save(path, x.astype(">f4"))
    elif layout == "npz":
        np.savez(path, x=x)
    elif layout == "npz-fortran":
        np.savez(path, x=np.asfortranarray(x))
    else:
        np.savez_compressed(path, x=x)
    from rnninspect import engine, inputs

    model = __import__("rnninspect").load_model(SEED)
    rows = inputs.read_input(str(path))
    got = np.concatenate([r.output for _, _, r in engine.iter_chunks(model, rows, rows=7)])
    code, out, err = run_cli("forward", str(SEED), "--json", str(path))
    assert code == 0, err
    assert out == want
    np.testing.assert_array_equal(got, model.forward(x))


def test_npz_input_member_that_ends_early(tmp_path: Path) -> None:
    """The header declares more rows than the member holds (the directory entry
    agrees with the header: nothing to refuse up front)."""
    short = _npy_header((100, 10, 3)) + np.zeros((10, 10, 3), np.float32).tobytes()
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", short)
    line = fails(ExitCode.INPUT, "forward", str(SEED), str(path))
    assert "header declares" in line or "ends early" in line


def test_npz_input_bomb_is_never_inflated_whole(tmp_path: Path) -> None:
    """600 MB of zeros in a 600 KB .npz: the wrong D is seen from the header, and
    the right D would be read a chunk at a time."""
    path = tmp_path / "bomb.npz"
    shape = (5_000_000, 10, 3)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open("x.npy", "w", force_zip64=True) as fh,
    ):
        fh.write(_npy_header((shape[0], 10, 4)))
        left = shape[0] * 10 * 4 * 4
        zeros = bytes(1 << 22)
        while left:
            fh.write(zeros[: min(left, len(zeros))])
            left -= min(left, len(zeros))
    assert path.stat().st_size < 2 << 20
    line = fails(ExitCode.INPUT, "forward", str(SEED), str(path))
    assert "D=4" in line


def _padded_config(pad: int) -> bytes:
    text = (SAMPLES / "seed" / "config.json").read_text()
    return (text[:-1] + " " * pad + "}").encode()


@pytest.mark.parametrize("forged", [False, True], ids=["declared", "streamed"])
@pytest.mark.parametrize("role", ["model", "config"])
def test_config_json_inflating_beyond_the_cap(tmp_path: Path, forged: bool, role: str) -> None:
    """A config.json of 40 MiB (of spaces: valid JSON) deflates to almost nothing:
    refused by its declared size, or, when the directory lies about the size, read
    no further than the declared size."""
    members = read_zip(SEED)
    members["config.json"] = _padded_config(40 << 20)
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if forged:
            zf.getinfo("config.json").file_size = 1000
    assert path.stat().st_size < 1 << 20
    args = (
        ["summary", str(path)]
        if role == "model"
        else ["summary", str(SAMPLES / "seed" / "model.weights.h5"), "--config", str(path)]
    )
    line = fails(ExitCode.MODEL, *args)
    assert line.startswith(f"rnninspect: error: {path}") and "config.json" in line


def test_config_file_too_large_is_refused_by_size_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "sparse.json"
    with cfg.open("wb") as fh:
        fh.truncate(3 << 30)  # 3 GiB, sparse: nothing stored
    weights = SAMPLES / "seed" / "model.weights.h5"
    line = fails(ExitCode.MODEL, "summary", str(weights), "--config", str(cfg))
    assert line.startswith(f"rnninspect: error: {cfg}:") and str(weights) not in line
    padded = tmp_path / "padded.json"
    padded.write_bytes(_padded_config(20 << 20))
    line = fails(ExitCode.MODEL, "summary", str(weights), "--config", str(padded))
    assert line.startswith(f"rnninspect: error: {padded}:")


def test_npz_model_shapes_are_checked_before_inflating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member that cannot fit the architecture is refused from its header: the
    arrays are never read (here every file counts as large)."""
    from rnninspect.loaders import npz

    with np.load(SAMPLES / "seed" / "layers.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["dense/kernel"] = np.zeros((5, 3000), np.float32)
    path = tmp_path / "w.npz"
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    reads: list[list[str] | None] = []
    real = npz._read_all
    monkeypatch.setattr(npz, "_read_all", lambda p, keys=None: reads.append(keys) or real(p, keys))
    monkeypatch.setattr(npz, "CHECK_FIRST_BYTES", 0)
    monkeypatch.setenv("RNNINSPECT_NO_FORK", "1")
    line = fails(ExitCode.MODEL, "summary", str(path))
    assert "'dense'" in line and "(5,3000)" in line
    assert reads == [[npz.CONFIG_KEY]]  # the config only, never the weights
    del arrays["dense/kernel"], arrays["__config__"]
    np.savez(path, **arrays)  # type: ignore[arg-type]
    reads.clear()
    fails(ExitCode.MODEL, "summary", str(path))
    assert reads == []


def test_npz_model_config_entry_is_capped(tmp_path: Path) -> None:
    with np.load(SAMPLES / "seed" / "layers.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["__config__"] = np.array(_padded_config(20 << 20).decode())
    path = tmp_path / "w.npz"
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    assert "__config__" in fails(ExitCode.MODEL, "summary", str(path))


@pytest.mark.parametrize("model", ["seed", "embedding"])
def test_random_batches_are_randomstate_draws_in_any_chunks(model: str) -> None:
    """--random N --seed S is np.random.RandomState(S).randn(N, T, D) (randint(1, V)
    ids), however the engine chunks it, read back or not."""
    import rnninspect
    from rnninspect.inputs import random_input, random_inputs

    m = rnninspect.load_model(SAMPLES / model / "model.keras")
    rs = np.random.RandomState(11)
    if m.takes_ids:
        V = int(m.layers[0].embeddings.shape[0])
        want = rs.randint(1, V, size=(101, m.inputs[0].shape[0]), dtype=np.int64)
    else:
        want = rs.randn(101, *m.inputs[0].shape).astype(np.float32)
    (rows,) = random_inputs(m, 101, 11, None)
    got = np.concatenate([rows[a:b] for a, b in ((0, 1), (1, 8), (8, 50), (50, 101))])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(rows[37], want[37])  # read back: drawn again from S
    np.testing.assert_array_equal(rows[40:41], want[40:41])
    np.testing.assert_array_equal(random_input(m, 101, 11, None), want)
    code, out, err = run_cli(
        "forward", str(SAMPLES / model / "model.keras"), "--random", "101", "--seed", "11", "--json"
    )
    assert code == 0, err
    assert np.array_equal(
        np.asarray(__import__("json").loads(out)["output"], np.float32), m.forward(want)
    )


# --------------------------------------------------------------------------- hangs


def _dag(group: Any, depth: int, cycle: bool = False) -> None:
    """2**depth paths through depth + 1 groups (each links twice to the next)."""
    nodes = [group.create_group(f"n{i}") for i in range(depth + 1)]
    for a, b in itertools.pairwise(nodes):
        a["left"] = b
        a["right"] = b
    if cycle:
        nodes[-1]["back"] = nodes[0]


@pytest.mark.parametrize(
    ("depth", "cycle", "code"),
    [(30, False, 0), (30, True, 0), (64, False, ExitCode.MODEL)],
    ids=["dag", "cycle", "too-deep"],
)
@pytest.mark.parametrize("how", ["weights+config", "keras"])
def test_hdf5_hard_link_dag_is_walked_once(
    tmp_path: Path, depth: int, cycle: bool, code: int, how: str
) -> None:
    """2**30 paths (each group links twice to the next, and back to the first for
    a cycle): every group is looked into once, so the run takes no time."""
    import time

    import h5py
    from filetools import edit_h5

    def edit(h5: h5py.File) -> None:
        _dag(h5["layers"].create_group("junk"), depth, cycle)

    begin = time.perf_counter()
    if how == "keras":
        path = edit_keras_zip(SEED, tmp_path / "m.keras", h5=edit)
        got, _, err = run_cli("summary", str(path))
    else:
        path = edit_h5(SAMPLES / "seed" / "model.weights.h5", tmp_path / "w.weights.h5", edit)
        got, _, err = run_cli(
            "summary", str(path), "--config", str(SAMPLES / "seed" / "config.json")
        )
    assert got == code, err
    assert time.perf_counter() - begin < 10


def test_compressed_datasets_may_not_declare_more_than_the_file(tmp_path: Path) -> None:
    """Each 800 KB of zeros passes alone (a dataset may declare a little more than
    its file), but together they declare far more than the file holds."""
    import h5py
    from filetools import edit_h5

    def edit(h5: h5py.File) -> None:
        for name in (
            "simple_rnn/simple_rnn/simple_rnn_cell/kernel:0",
            "simple_rnn/simple_rnn/simple_rnn_cell/recurrent_kernel:0",
        ):
            del h5[name]
            h5.create_dataset(name, data=np.zeros((200, 1000), np.float32), compression="gzip")

    path = edit_h5(SAMPLES / "seed" / "tfkeras_weights.h5", tmp_path / "w.h5", edit)
    assert path.stat().st_size < 200_000
    line = fails(ExitCode.MODEL, "summary", str(path))
    assert "in all" in line


def test_parse_time_limit_ignores_what_a_sparse_file_claims(tmp_path: Path) -> None:
    from rnninspect.loaders import PARSE_SECONDS, parse_seconds

    sparse = tmp_path / "sparse.h5"
    with sparse.open("wb") as fh:
        fh.write(b"x" * 4096)
        try:
            fh.truncate(1 << 40)
        except OSError:
            pytest.skip("the file system holds no 1 TB sparse file")
    assert parse_seconds(sparse.stat()) < PARSE_SECONDS + 1
    big = os.stat_result((0o100644, 0, 0, 1, 0, 0, 1 << 40, 0, 0, 0))  # claims 1 TB, blocks unknown
    assert parse_seconds(big) <= 60


HANGS = sorted((Path(__file__).parent / "fuzz_regressions").glob("hang-*"))


@pytest.mark.skipif(not HANGS, reason="no hanging HDF5 sample")
def test_hanging_file_with_a_sparse_terabyte_tail_is_stopped_soon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    path = tmp_path / "hang.h5"
    shutil.copyfile(HANGS[0], path)
    try:
        os.truncate(path, 1 << 40)
    except OSError:
        pytest.skip("the file system holds no 1 TB sparse file")
    monkeypatch.setenv("RNNINSPECT_PARSE_SECONDS", "1")
    begin = time.perf_counter()
    code, _, err = run_cli("summary", str(path))
    assert code == ExitCode.MODEL, err
    assert time.perf_counter() - begin < 15


@pytest.mark.parametrize(
    "text",
    [
        b"1,2\n3,4\n",
        b"1.5 2\n3\t4\n",
        b"99999999999999999999999\n",
        b"1,,2\n,3,4,\n",
        b" 1 2 \r\n3 4\r\n",
        b"nan,inf\n-inf,+3\n",
        b"1e5 -2E-3\n",
        b"\xef\xbb\xbf1,2\n",
        b".5 5.\n",
        b"1\r2\n",
        b"# c\n1 2\n",
        b"1\x0c2\n",
    ],
)
def test_text_read_fast_or_line_by_line_gives_the_same_array(text: bytes) -> None:
    """Plain numeric text goes through NumPy's reader (a 15 MiB CSV in seconds, in
    8 bytes a value); every text gives what the line-by-line reader gives."""
    from rnninspect import inputs

    decoded = text.decode("utf-8-sig")
    slow, slow_int = inputs._parse_lines(decoded, "x")
    got = inputs.parse_text(text, "x")
    fast = inputs._parse_plain(decoded)
    if fast is not None:
        np.testing.assert_array_equal(fast[0], slow)
        assert fast[1] == slow_int
    assert got.dtype == (np.int64 if slow_int and np.all(np.abs(slow) < 2.0**62) else got.dtype)
    np.testing.assert_array_equal(got.astype(np.float64), slow.astype(got.dtype).astype(np.float64))


def test_big_ids_written_as_digits_are_not_wrapped(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("1\n99999999999999999999999\n2\n" + "1\n" * 6)  # T = 9
    line = fails(ExitCode.INPUT, "forward", str(EMBEDDING), str(path))
    assert "id 99999999999999991611392" in line or "id 99999999999999999999999" in line


def test_temporary_file_is_new_private_and_never_an_existing_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A temporary output file (made without the tempfile module, see
    ``outputs._exclusive``) is created, never reused: mode 0600, beside the target,
    and a name that exists already (a file, or a symlink to one elsewhere) is
    passed over for the next, leaving what was there untouched."""
    from rnninspect import outputs

    target = tmp_path / "y.npy"
    names = iter([b"\x00" * 6, b"\x00" * 6, b"\x01" * 6, b"\x02" * 6])
    monkeypatch.setattr(outputs.os, "urandom", lambda n: next(names))
    taken = tmp_path / f".y.npy.{'00' * 6}.tmp"
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    taken.symlink_to(outside)
    fd, name = outputs.temp_beside(target)
    try:
        assert Path(name) == tmp_path / f".y.npy.{'01' * 6}.tmp"
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
        os.write(fd, b"new")
    finally:
        os.close(fd)
    assert outside.read_bytes() == b"keep" and taken.is_symlink()
    fd2, name2 = outputs.temp_beside(target)  # every name taken up to the last try
    os.close(fd2)
    assert Path(name2).name == f".y.npy.{'02' * 6}.tmp"
    monkeypatch.setattr(outputs.os, "urandom", lambda n: b"\x01" * 6)
    with pytest.raises(FileExistsError):
        outputs.temp_beside(target)


# ------------------------------------------------------------- signals, in process


def test_a_signal_while_a_temporary_file_is_made_waits_until_it_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal arrives between creating the temporary file and recording it for
    cleanup (the handler runs there, as a real one could): it is raised only once
    the file is recorded, so the cleanup removes it."""
    import signal as signal_module

    from rnninspect import outputs, signals

    real = outputs.temp_beside

    def signalled(path: Path | None, name: str | None = None) -> tuple[int, str]:
        made = real(path, name)
        with contextlib.suppress(signals.Terminated):
            signals._handler(signal_module.SIGTERM, None)  # deferred: must not raise here
            return made
        raise AssertionError("the signal was raised inside the deferred block")

    signals.reset()
    monkeypatch.setattr(outputs, "temp_beside", signalled)
    target = tmp_path / "y.npy"
    with pytest.raises(signals.Terminated), outputs.atomic(target) as fh:
        fh.write(b"never")
    assert list(tmp_path.iterdir()) == []
    signals.reset()
    sink = outputs.ArraySink(outputs.check_target(tmp_path / "s.npz"), 2, several=True)
    with pytest.raises(signals.Terminated):
        sink.write({"a": np.zeros((2, 3), np.float32)})
    sink.abort()
    assert list(tmp_path.iterdir()) == []
    signals.reset()


def test_later_signals_are_ignored_while_the_first_is_handled() -> None:
    import signal as signal_module

    from rnninspect import signals

    signals.reset()
    with pytest.raises(signals.Terminated) as first:
        signals._handler(signal_module.SIGHUP, None)
    assert first.value.exit_code == 129
    signals._handler(signal_module.SIGTERM, None)  # on the way out: nothing raised
    signals.reset()


def _segfault() -> None:
    import signal as signal_module

    os.kill(os.getpid(), signal_module.SIGSEGV)  # as libhdf5 crashing on a corrupt file


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_crashing_parse_child_prints_nothing_itself(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a Python fault handler on (PYTHONFAULTHANDLER, pytest), the child's crash
    would dump its traceback on stderr beside the parent's one line."""
    import faulthandler

    from rnninspect import ModelError
    from rnninspect.loaders import isolate

    monkeypatch.delenv("RNNINSPECT_NO_FORK", raising=False)
    faulthandler.enable()
    with pytest.raises(ModelError, match="signal 11"):
        isolate.call(_segfault, (), 10, "m.h5")
    assert "Fatal Python error" not in capfd.readouterr().err


def _alarmed() -> None:
    import signal as signal_module

    os.kill(os.getpid(), signal_module.SIGALRM)  # the child's own time limit, come first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_ended_by_its_own_time_limit_reports_a_time_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a loaded machine the parent may wake after the child's alarm: the message
    is the time-out's, not a crash's."""
    from rnninspect import ModelError
    from rnninspect.loaders import isolate

    monkeypatch.delenv("RNNINSPECT_NO_FORK", raising=False)
    with pytest.raises(ModelError, match="did not finish in 10 s"):
        isolate.call(_alarmed, (), 10, "m.h5")


def test_a_header_python_would_warn_about_warns_nothing(tmp_path: Path) -> None:
    """NumPy evaluates .npy headers as Python literals: an invalid escape in a
    damaged one makes Python warn (found by fuzzing; a SyntaxWarning on stderr from
    Python 3.12, a second line beside the error)."""
    import warnings

    header = b"{'descr': '\\<f4', 'fortran_order': False, 'shape': (4, 10, 3), }"
    data = b"\x93NUMPY\x01\x00" + len(header.ljust(118) + b"\n").to_bytes(2, "little")
    data += header.ljust(118) + b"\n" + bytes(480)
    path = tmp_path / "x.npy"
    path.write_bytes(data)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fails(ExitCode.INPUT, "forward", str(SEED), str(path))
        _stdin_run(data, "forward", str(SEED), "-")
    assert not seen, [str(w.message) for w in seen]
