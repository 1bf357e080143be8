"""The CLI, driven for real: exit codes, stdout and stderr checked separately, JSON parsed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from typer.testing import CliRunner

from rnninspect.cli import app
from rnninspect.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
SEED = SAMPLES / "seed" / "model.keras"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The real command in a subprocess, as a shell script would run it."""
    return subprocess.run(
        [sys.executable, "-m", "rnninspect", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )


cli = run_cli


def golden(name: str) -> dict[str, np.ndarray]:
    with np.load(SAMPLES / name / "golden.npz") as g:
        return {k: g[k] for k in g.files}


# --- summary -----------------------------------------------------------------


def test_summary_table_names_every_layer_and_symbol() -> None:
    code, out, err = cli("summary", str(SEED))
    assert code == 0, err
    for text in ("simple_rnn (SimpleRNN)", "dense (Dense)", "(D,M)", "(M,M)", "(M,)", "(M,K)"):
        assert text in out
    assert "Total params: 57" in out
    assert "T=10" in out and "D=3" in out and "M=5" in out and "K=2" in out
    assert err == ""


@pytest.mark.parametrize("model", ["seed", "stacked", "embedding", "functional", "masking"])
def test_summary_json_schema_and_keras_counts(model: str) -> None:
    code, out, _ = cli("summary", str(SAMPLES / model / "model.keras"), "--json")
    assert code == 0
    doc = json.loads(out)
    expected = json.loads((SAMPLES / model / "expected.json").read_text())["keras3"]
    for key in (
        "format",
        "keras_version",
        "layers",
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "bytes",
        "dims",
    ):
        assert key in doc
    assert doc["total_params"] == expected["total_params"]
    assert doc["trainable_params"] == expected["trainable_params"]
    assert doc["non_trainable_params"] == expected["non_trainable_params"]
    ours = {layer["name"]: layer for layer in doc["layers"]}
    for row in expected["layers"]:
        assert ours[row["name"]]["params"] == row["params"]
        assert ours[row["name"]]["type"] == row["class_name"]
    for layer in doc["layers"]:
        assert set(layer) >= {"name", "type", "output_shape", "params", "weights"}
        for w in layer["weights"]:
            assert set(w) >= {"name", "shape", "symbol", "dtype"}
    assert set(doc["dims"]) >= {"T", "D", "M", "K"}
    assert doc["bytes"] == 4 * doc["total_params"]


def test_summary_json_seed_dims_and_symbols() -> None:
    doc = json.loads(cli("summary", str(SEED), "--json")[1])
    assert doc["dims"] == {"T": 10, "D": 3, "M": 5, "K": 2}
    symbols = [w["symbol"] for layer in doc["layers"] for w in layer["weights"]]
    assert symbols == ["(D,M)", "(M,M)", "(M,)", "(M,K)", "(K,)"]


def test_summary_weights_and_layer_filter() -> None:
    code, out, _ = cli("summary", str(SEED), "--weights", "--layer", "dense")
    assert code == 0
    assert "dense/kernel" in out and "simple_rnn" not in out
    import rnninspect

    bias = rnninspect.load_model(SEED).layer("dense").weights()[1][1]
    assert f"{bias[0]:.6f}".rstrip("0")[:6] in out


def test_summary_weights_only_says_what_it_assumed() -> None:
    code, out, err = cli("summary", str(SAMPLES / "seed" / "model.weights.h5"), "--json")
    assert code == 0
    assert json.loads(out)["total_params"] == 57  # stdout is pure JSON
    assert "inferred" in err and "--config" in err


def test_summary_config_pairs_architecture_with_weights() -> None:
    args = ("summary", str(SAMPLES / "stacked" / "model.weights.h5"), "--json")
    config = str(SAMPLES / "stacked" / "config.json")
    code, out, err = cli(*args, "--config", config)
    assert code == 0 and err == ""
    names = [layer["name"] for layer in json.loads(out)["layers"]]
    assert names == ["enc1", "drop", "enc2", "out"]


# --- forward -----------------------------------------------------------------


@pytest.mark.parametrize("model", ["seed", "masking", "embedding", "backwards", "timedistributed"])
def test_forward_npy_roundtrip_equals_keras(model: str, tmp_path: Path) -> None:
    g = golden(model)
    x_path, y_path = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x_path, g["x"])
    code, out, err = cli(
        "forward", str(SAMPLES / model / "model.keras"), str(x_path), "-o", str(y_path)
    )
    assert code == 0, err
    assert out == ""
    np.testing.assert_allclose(np.load(y_path), g["y"], rtol=1e-4, atol=1e-5)


def test_forward_json_round_trips_float32_exactly() -> None:
    code, out, _ = cli("forward", str(SEED), "--random", "5", "--seed", "3", "--json")
    assert code == 0
    doc = json.loads(out)
    import rnninspect
    from rnninspect.inputs import random_input

    m = rnninspect.load_model(SEED)
    y = m.forward(random_input(m, 5, 3, None))
    assert doc["shape"] == [5, 2] and doc["dtype"] == "float32"
    assert np.array_equal(np.asarray(doc["output"], dtype=np.float32), y)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".json"])
def test_forward_output_formats(suffix: str, tmp_path: Path) -> None:
    target = tmp_path / f"y{suffix}"
    code, _, err = cli("forward", str(SEED), "--random", "4", "--seed", "1", "-o", str(target))
    assert code == 0, err
    import rnninspect
    from rnninspect.inputs import random_input

    m = rnninspect.load_model(SEED)
    want = m.forward(random_input(m, 4, 1, None))
    if suffix == ".npy":
        got = np.load(target)
    elif suffix == ".npz":
        got = np.load(target)["output"]
    elif suffix == ".csv":
        got = np.loadtxt(target, delimiter=",", ndmin=2)
    else:
        got = np.asarray(json.loads(target.read_text())["output"])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_forward_inputs_csv_and_2d_npy_and_stdin(tmp_path: Path) -> None:
    g = golden("seed")
    one = g["x"][0]  # (T, D): one sample
    csv = tmp_path / "x.csv"
    np.savetxt(csv, one, delimiter=",", fmt="%.9g")
    npy = tmp_path / "x.npy"
    np.save(npy, one)
    for source in (csv, npy):
        code, out, err = cli("forward", str(SEED), str(source), "--json")
        assert code == 0, err
        np.testing.assert_allclose(json.loads(out)["output"], g["y"][:1], rtol=1e-4, atol=1e-5)
    # stdin: npy bytes and CSV text, through a real process
    proc = run("forward", str(SEED), "-", "--json", stdin=npy.read_bytes())
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(json.loads(proc.stdout)["output"], g["y"][:1], rtol=1e-4, atol=1e-5)
    proc = run("forward", str(SEED), "-", "--json", stdin=csv.read_bytes())
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(json.loads(proc.stdout)["output"], g["y"][:1], rtol=1e-4, atol=1e-5)


def test_forward_npz_key(tmp_path: Path) -> None:
    g = golden("seed")
    path = tmp_path / "both.npz"
    np.savez(path, a=g["x"], b=g["x"][:2])
    code, _, err = cli("forward", str(SEED), str(path))
    assert code == ExitCode.INPUT and "--key" in err and "a, b" in err
    code, out, _ = cli("forward", str(SEED), str(path), "--key", "b", "--json")
    assert code == 0 and json.loads(out)["shape"] == [2, 2]


def test_forward_embedding_ids_csv(tmp_path: Path) -> None:
    g = golden("embedding")
    path = tmp_path / "ids.csv"
    path.write_text("\n".join(str(int(v)) for v in g["x"][1]) + "\n")
    code, out, err = cli("forward", str(SAMPLES / "embedding" / "model.keras"), str(path), "--json")
    assert code == 0, err
    np.testing.assert_allclose(json.loads(out)["output"], g["y"][1:2], rtol=1e-4, atol=1e-5)


def test_forward_table_and_float64() -> None:
    code, out, _ = cli("forward", str(SEED), "--random", "3", "--seed", "0")
    assert code == 0 and "y[0]" in out and "y[1]" in out
    code, out, _ = cli(
        "forward", str(SEED), "--random", "3", "--seed", "0", "--dtype", "float64", "--json"
    )
    assert json.loads(out)["dtype"] == "float64"


def test_forward_variable_t_needs_length() -> None:
    model = str(SAMPLES / "variable_t" / "model.keras")
    code, _, err = cli("forward", model, "--random", "2")
    assert code == ExitCode.USAGE and "--length" in err
    code, out, _ = cli("forward", model, "--random", "2", "--length", "13", "--json")
    assert code == 0 and json.loads(out)["shape"] == [2, 2]


# --- trace -------------------------------------------------------------------


@pytest.mark.parametrize("model", ["stacked", "backwards", "masking", "embedding"])
def test_trace_npz_equals_keras_states(model: str, tmp_path: Path) -> None:
    g = golden(model)
    np.save(tmp_path / "x.npy", g["x"])
    out = tmp_path / "t.npz"
    code, _, err = cli(
        "trace", str(SAMPLES / model / "model.keras"), str(tmp_path / "x.npy"), "-o", str(out)
    )
    assert code == 0, err
    with np.load(out) as t:
        keys = sorted(t.files)
        assert keys == sorted(k.split("/", 1)[1] for k in g if k.startswith("state/"))
        for k in keys:
            np.testing.assert_allclose(t[k], g[f"state/{k}"], rtol=1e-4, atol=1e-5)


def test_trace_npy_selected_layer_and_json(tmp_path: Path) -> None:
    g = golden("stacked")
    np.save(tmp_path / "x.npy", g["x"])
    model = str(SAMPLES / "stacked" / "model.keras")
    code, _, _ = cli(
        "trace", model, str(tmp_path / "x.npy"), "--layer", "enc2", "-o", str(tmp_path / "s.npy")
    )
    assert code == 0
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), g["state/enc2"], rtol=1e-4, atol=1e-5)
    code, out, _ = cli("trace", model, str(tmp_path / "x.npy"), "--json")
    doc = json.loads(out)
    assert doc["layers"]["enc1"]["shape"] == list(g["state/enc1"].shape)
    np.testing.assert_allclose(
        doc["layers"]["enc1"]["states"], g["state/enc1"], rtol=1e-4, atol=1e-5
    )


def test_trace_view_shows_states_inputs_and_head() -> None:
    code, out, _ = cli("trace", str(SEED), "--random", "2", "--seed", "0", "--sample", "1")
    assert code == 0
    assert "sample 1" in out and "h[4]" in out and "x[2]" in out and "y[1]" in out


def test_trace_view_elides_long_sequences() -> None:
    model = str(SAMPLES / "variable_t" / "model.keras")
    code, out, _ = cli("trace", model, "--random", "1", "--length", "500")
    assert code == 0
    assert len(out.splitlines()) < 80 and "--full" in out
    code, out, _ = cli("trace", model, "--random", "1", "--length", "500", "--full")
    assert len(out.splitlines()) > 500


def test_trace_layer_without_states_gives_its_output() -> None:
    """--layer accepts any layer: one without states gives its output (the seed
    model's Dense head: forward's output)."""
    args = ("--random", "3", "--seed", "1", "--json")
    code, out, err = cli("trace", str(SEED), *args, "--layer", "dense")
    assert code == 0, err
    got = json.loads(out)["layers"]
    assert list(got) == ["dense"] and got["dense"]["shape"] == [3, 2]
    code, out, _ = cli("forward", str(SEED), *args)
    assert got["dense"]["states"] == json.loads(out)["output"]


def test_trace_errors() -> None:
    code, _, err = cli("trace", str(SEED), "--random", "2", "--layer", "nope")
    assert code == ExitCode.USAGE and "no layer named 'nope'" in err
    code, _, err = cli("trace", str(SEED), "--random", "2", "--sample", "5")
    assert code == ExitCode.USAGE and "N=2" in err


# --- exit codes and error contract -------------------------------------------


def _one_line(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err


def test_exit_usage_bad_option() -> None:
    proc = run("forward", str(SEED), "--bogus")
    assert proc.returncode == ExitCode.USAGE
    _one_line(proc.stderr.decode())
    assert proc.stdout == b""


def test_exit_usage_input_and_random_together(tmp_path: Path) -> None:
    code, _, err = cli("forward", str(SEED), "x.npy", "--random", "2")
    assert code == ExitCode.USAGE
    _one_line(err)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a model at all", b"PK\x03\x04garbage", b"\x89HDF\r\n\x1a\ntruncated"],
)
def test_exit_model_errors(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.keras"
    path.write_bytes(content)
    proc = run("summary", str(path))
    assert proc.returncode == ExitCode.MODEL
    err = proc.stderr.decode()
    _one_line(err)
    assert str(path) in err


def test_exit_model_missing_and_directory(tmp_path: Path) -> None:
    for target in (tmp_path / "missing.keras", tmp_path):
        code, _, err = cli("summary", str(target))
        assert code == ExitCode.MODEL
        _one_line(err)
        assert str(target) in err


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((2, 10, 4), np.float32), "D=4"),
        (np.zeros((10,), np.float32), "shape"),
        (np.zeros((1, 2, 10, 3), np.float32), "shape"),
        (np.array([["a", "b", "c"]]), "dtype"),
        (np.zeros((0, 10, 3), np.float32), "no samples"),
    ],
)
def test_exit_input_errors(array: np.ndarray, needle: str, tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, array)
    code, out, err = cli("forward", str(SEED), str(path))
    assert code == ExitCode.INPUT
    _one_line(err)
    assert needle in err and out == ""


def test_exit_input_csv_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("1,2,3\n4,5,6\n7,oops,9\n")
    code, _, err = cli("forward", str(SEED), str(path))
    assert code == ExitCode.INPUT and "line 3" in err and "oops" in err
    path.write_text("1,2,3\n4,5\n")
    code, _, err = cli("forward", str(SEED), str(path))
    assert code == ExitCode.INPUT and "line 2" in err


def test_exit_input_ids_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "ids.npy"
    np.save(path, np.array([[1, 2, 99]]))
    code, _, err = cli("forward", str(SAMPLES / "embedding" / "model.keras"), str(path))
    assert code == ExitCode.INPUT and "99" in err and "V=20" in err


def test_exit_input_pickled_npy(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = cli("forward", str(SEED), str(path))
    assert code == ExitCode.INPUT and "pickle" in err


@pytest.mark.parametrize("target", ["missing_dir/y.npy", "y.xyz"])
def test_exit_output_errors_leave_nothing(target: str, tmp_path: Path) -> None:
    path = tmp_path / target
    code, _, err = cli("forward", str(SEED), "--random", "2", "-o", str(path))
    assert code == ExitCode.OUTPUT
    _one_line(err)
    assert not path.exists()


def test_output_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "y.csv"
    target.write_text("old result\n")
    # A 3-D output cannot be CSV: the error comes before anything is written.
    code, _, _ = cli(
        "forward", str(SAMPLES / "seq2seq" / "model.keras"), "--random", "2", "-o", str(target)
    )
    assert code == ExitCode.OUTPUT
    assert target.read_text() == "old result\n"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_exit_output_no_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    code, _, _ = cli("forward", str(SEED), "--random", "2", "-o", str(locked / "y.npy"))
    assert code == ExitCode.OUTPUT


def test_debug_shows_traceback(tmp_path: Path) -> None:
    proc = run("--debug", "summary", str(tmp_path / "missing.keras"))
    assert proc.returncode == ExitCode.MODEL
    assert b"Traceback" in proc.stderr


def test_broken_pipe_is_quiet() -> None:
    proc = subprocess.run(
        f"'{sys.executable}' -m rnninspect trace '{SAMPLES / 'variable_t' / 'model.keras'}' "
        "--random 1 --length 3000 --full | head -1",
        shell=True,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0
    assert b"Traceback" not in proc.stderr and b"Error" not in proc.stderr


def test_nan_input_warns_and_completes(tmp_path: Path) -> None:
    x = golden("seed")["x"].copy()
    x[1, 4, 2] = np.nan
    np.save(tmp_path / "x.npy", x)
    code, out, err = cli("forward", str(SEED), str(tmp_path / "x.npy"), "--json")
    assert code == 0
    assert "NaN" in err and "(1, 4, 2)" in err
    json.loads(out)


def test_version_and_help() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "rnninspect" in result.output
    for command in ("summary", "forward", "trace"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "Examples:" in result.output


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    import typer.main

    command = typer.main.get_command(app)
    for name in command.commands:  # type: ignore[attr-defined]
        assert f"rnninspect {name}" in readme
    for code in ExitCode:
        assert f"| {int(code)} " in readme


def test_disk_full_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import rnninspect.outputs as outputs_module

    target = tmp_path / "y.npy"
    target.write_bytes(b"earlier result")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fh: object) -> None:
            self.fh = fh

        def __getattr__(self, name: str) -> object:
            return getattr(self.fh, name)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()  # type: ignore[attr-defined]

        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs_module.os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))
    code, _, err = cli("forward", str(SEED), "--random", "3", "-o", str(target))
    assert code == ExitCode.OUTPUT and "No space left" in err
    assert target.read_bytes() == b"earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["y.npy"]


def test_ctrl_c_exits_130(tmp_path: Path) -> None:
    import signal
    import time

    model = SAMPLES / "variable_t" / "model.keras"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rnninspect",
            "forward",
            str(model),
            "--random",
            "2",
            "--length",
            "4000000",
            "-o",
            str(tmp_path / "y.npy"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        # Ctrl-C at its default: a test run in the background (no job control) or
        # under nohup would pass SIGINT on ignored, and an ignored signal stays so.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert b"Traceback" not in err
    assert not (tmp_path / "y.npy").exists()
    assert list(tmp_path.iterdir()) == []


def test_npy_ids_column_is_a_batch_not_one_sample(tmp_path: Path) -> None:
    """Only text input is one sample; an (N, 1) array of ids is N samples of T=1."""
    path = tmp_path / "ids.npy"
    np.save(path, np.array([[3], [4], [5]]))
    code, out, err = cli("forward", str(SAMPLES / "embedding" / "model.keras"), str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["shape"] == [3, 3]


@pytest.mark.parametrize(
    "argv",
    [
        *([*c, f] for f in ("--help", "-h") for c in ([], ["summary"], ["forward"], ["trace"])),
        ["completion", "bash"],
    ],
)
def test_help_imports_neither_h5py_nor_rich(argv: list[str]) -> None:
    """Help (and printing a completion script) is instant: the file-format and table
    libraries load only when used."""
    script = (
        "import sys\n"
        f"sys.argv = ['rnninspect', *{argv!r}]\n"
        "from rnninspect.__main__ import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('h5py', 'rich')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert ("Usage" if argv[0] != "completion" else "complete -o default") in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_command_runs_with_the_collector_on(tmp_path: Path) -> None:
    """The command's start holds the garbage collector off (its imports make only
    long-lived objects); the command itself runs with it back on."""
    code = (
        "import gc, sys\n"
        "import rnninspect.cli as cli\n"
        "load = cli._load\n"
        "def spy(*a):\n"
        "    sys.stderr.write(f'collector on at load: {gc.isenabled()}\\n')\n"
        "    return load(*a)\n"
        "cli._load = spy\n"
        "from rnninspect.__main__ import main\n"
        "main()\n"
    )
    out = tmp_path / "y.npy"
    args = ["forward", str(SEED), "--random", "3", "--seed", "0", "-o", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "collector on at load: True" in proc.stderr
    assert np.load(out).shape == (3, 2)
