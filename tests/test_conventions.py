"""CLI conventions and no silent surprises: -h, usage lines, examples and the epilog in
every --help, shell completion, -o - and --format, .txt/.tsv outputs, --save-input,
the T warning, and every option that does not apply being refused or warned about.

Exit code, stdout and stderr are checked separately; JSON is parsed; the stdout
formats go through a real process."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SAMPLES, golden, load_sample, run_cli

from rnninspect.cli import ENVIRONMENT, EXIT_MEANINGS
from rnninspect.errors import ExitCode

SEED = str(SAMPLES / "seed" / "model.keras")
STACKED = str(SAMPLES / "stacked" / "model.keras")
COMMANDS = ["summary", "forward", "trace", "completion"]


def run(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rnninspect", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


# ------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_h_is_help(command: str) -> None:
    args = [command] if command else []
    short, long = run(*args, "-h"), run(*args, "--help")
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout and short.stderr == b""


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("summary", "Usage: rnninspect summary [OPTIONS] MODEL"),
        ("forward", "Usage: rnninspect forward [OPTIONS] MODEL [INPUT]"),
        ("trace", "Usage: rnninspect trace [OPTIONS] MODEL [INPUT]"),
        ("completion", "Usage: rnninspect completion [OPTIONS] SHELL"),
    ],
)
def test_usage_lines_and_placeholders_in_clicks_style(command: str, usage: str) -> None:
    code, out, _ = run_cli(command, "-h")
    assert code == 0
    assert out.splitlines()[0] == usage
    options = out.split("Options:", 1)[1]
    for line in options.splitlines():
        assert not re.search(r"<\w+>|\{\w+\}", line), line  # one style: upper case
    assert all(len(line) <= 80 for line in out.splitlines())


@pytest.mark.parametrize("command", ["summary", "forward", "trace"])
def test_examples_and_epilog_in_every_help(command: str) -> None:
    code, out, _ = run_cli(command, "-h")
    assert code == 0
    examples = out.split("Examples:", 1)[1].split("Arguments:", 1)[0]
    commands = [
        line
        for line in examples.splitlines()
        if line.strip().startswith(("rnninspect", "cat ", "python "))
    ]
    assert len(commands) >= 3
    if command != "summary":
        assert any(" -o " in c for c in commands) and any(" - " in c for c in commands)
    assert any("--json" in c for c in commands)
    for code_, text in EXIT_MEANINGS.items():
        assert re.search(rf"^\s+{int(code_)}\s+{re.escape(text)}$", out, re.M)
    for name in ENVIRONMENT:
        assert name in out
    assert set(EXIT_MEANINGS) >= set(ExitCode)


def test_random_help_says_it_is_the_notebooks_randn() -> None:
    out = run_cli("forward", "-h")[1]
    text = " ".join(out.split())
    assert "np.random.seed(S); X = np.random.randn(N, T, D)" in text
    assert "np.random.RandomState(S).randint(1, V, (N, T))" in text


def test_no_arguments_is_a_short_usage_error() -> None:
    proc = run()
    assert proc.returncode == ExitCode.USAGE and proc.stdout == b""
    err = proc.stderr.decode()
    assert err.startswith("Usage: rnninspect [OPTIONS] COMMAND [ARGS]...")
    assert "rnninspect -h" in err and len(_lines(err)) <= 4
    assert "Options:" not in err  # not the whole help


# ------------------------------------------------------------------ completion


@pytest.mark.parametrize(
    ("shell", "needle"),
    [
        ("bash", "complete -o default -F"),
        ("zsh", "#compdef rnninspect"),
        ("fish", "complete --command rnninspect"),
    ],
)
def test_completion_scripts(shell: str, needle: str) -> None:
    proc = run("completion", shell)
    assert proc.returncode == 0 and needle in proc.stdout.decode()
    assert "_RNNINSPECT_COMPLETE" in proc.stdout.decode()


def _complete(shell: str, words: str) -> list[str]:
    env = {"_RNNINSPECT_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": words}
    if shell == "bash":
        env.update(
            COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1))
        )
    if shell == "fish":
        env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    proc = run(env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().split()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_completes_commands_and_options(shell: str) -> None:
    assert any("trace" in w for w in _complete(shell, "rnninspect tr"))
    assert any("--gates" in w for w in _complete(shell, "rnninspect trace --ga"))
    assert any("float64" in w for w in _complete(shell, "rnninspect forward m --dtype "))


# ---------------------------------------------------------------- -o - and formats


def _seed_y(n: int, seed: int) -> np.ndarray:
    m = load_sample("seed", "model.keras")
    np.random.seed(seed)
    return m.forward(np.random.randn(n, 10, 3).astype(np.float32))


@pytest.mark.parametrize("fmt", ["npy", "npz", "csv", "tsv", "txt", "json"])
def test_forward_to_stdout_in_every_format(fmt: str) -> None:
    proc = run("forward", SEED, "--random", "3", "--seed", "5", "-o", "-", "--format", fmt)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    data = proc.stdout
    if fmt == "npy":
        got = np.load(io.BytesIO(data))
    elif fmt == "npz":
        got = np.load(io.BytesIO(data))["output"]
    elif fmt == "json":
        got = np.asarray(json.loads(data)["output"], dtype=np.float32)
    else:
        delimiter = {"csv": ",", "tsv": "\t", "txt": None}[fmt]
        got = np.loadtxt(io.StringIO(data.decode()), delimiter=delimiter, ndmin=2)
    np.testing.assert_allclose(got, _seed_y(3, 5), rtol=1e-6, atol=1e-7)


def test_dash_o_defaults_and_format_alone() -> None:
    proc = run("forward", SEED, "--random", "2", "--seed", "1", "-o", "-")
    assert proc.returncode == 0
    np.testing.assert_allclose(np.load(io.BytesIO(proc.stdout)), _seed_y(2, 1), rtol=1e-6)
    proc = run("forward", SEED, "--random", "2", "--seed", "1", "--format", "csv")
    assert proc.returncode == 0
    assert np.loadtxt(io.StringIO(proc.stdout.decode()), delimiter=",").shape == (2, 2)
    # trace: .npz of every layer by default, stdin to stdout
    x = golden("stacked")["x"]
    buf = io.BytesIO()
    np.save(buf, x)
    proc = run("trace", STACKED, "-", "-o", "-", stdin=buf.getvalue())
    assert proc.returncode == 0, proc.stderr
    with np.load(io.BytesIO(proc.stdout)) as z:
        assert sorted(z.files) == ["enc1", "enc2"]
        np.testing.assert_allclose(z["enc2"], golden("stacked")["state/enc2"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("suffix", [".txt", ".tsv"])
def test_text_outputs_read_back_as_inputs_do(suffix: str, tmp_path: Path) -> None:
    target = tmp_path / f"y{suffix}"
    code, out, err = run_cli("forward", SEED, "--random", "4", "--seed", "2", "-o", str(target))
    assert code == 0 and out == "" and err == ""
    from rnninspect.inputs import read_input

    np.testing.assert_allclose(read_input(str(target)), _seed_y(4, 2), rtol=1e-6)
    if suffix == ".tsv":
        assert "\t" in target.read_text()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["-o", "-", "--json"], ExitCode.USAGE, "both write to stdout"),
        (["-o", "y.npy", "--format", "csv"], ExitCode.OUTPUT, "--format says csv"),
        (["-o", "y.out"], ExitCode.OUTPUT, "--format"),
    ],
)
def test_output_clashes(args: list[str], code: int, needle: str, tmp_path: Path) -> None:
    args = [str(tmp_path / a) if a.startswith("y.") else a for a in args]
    got, out, err = run_cli("forward", SEED, "--random", "1", *args)
    assert got == code and out == "" and needle in err
    assert len(_lines(err)) == 1
    assert list(tmp_path.iterdir()) == []


def test_binary_to_a_terminal_is_refused() -> None:
    import pty

    master, slave = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "-m", "rnninspect", "forward", SEED, "--random", "1", "-o", "-"],
        stdout=slave,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        timeout=120,
    )
    os.close(slave)
    os.close(master)
    assert proc.returncode == ExitCode.OUTPUT
    assert b"stdout is a terminal" in proc.stderr and b"--format csv" not in proc.stderr


# ------------------------------------------------------------------- --save-input


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_save_input_is_the_notebooks_x(suffix: str, tmp_path: Path) -> None:
    n = 1 if suffix == ".csv" else 3
    path = tmp_path / f"x{suffix}"
    code, out, err = run_cli(
        "forward", SEED, "--random", str(n), "--seed", "0", "--save-input", str(path), "--json"
    )
    assert code == 0, err
    np.random.seed(0)
    X = np.random.randn(n, 10, 3).astype(np.float32)  # the notebook's cell, cast as Keras does
    if suffix == ".npy":
        saved = np.load(path)
    elif suffix == ".npz":
        saved = np.load(path)["x"]
    else:
        saved = np.loadtxt(path, delimiter=",", dtype=np.float32)[None]
    np.testing.assert_array_equal(saved, X)
    # The saved X, fed back, gives the same output.
    code, again, _ = run_cli("forward", SEED, str(path), "--json")
    assert code == 0
    np.testing.assert_array_equal(json.loads(again)["output"], json.loads(out)["output"])


def test_save_input_ids(tmp_path: Path) -> None:
    model = str(SAMPLES / "embedding" / "model.keras")
    code, _, err = run_cli(
        "forward", model, "--random", "2", "--seed", "3", "--save-input", str(tmp_path / "ids.npy")
    )
    assert code == 0, err
    np.testing.assert_array_equal(
        np.load(tmp_path / "ids.npy"), np.random.RandomState(3).randint(1, 20, (2, 9))
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--random", "3", "--save-input", "x.csv"], "one sample"),
        (["--random", "1", "--save-input", "-"], "stdout"),
        (["x.npy", "--save-input", "y.npy"], "--save-input goes with --random"),
        (["--random", "1", "--save-input", "x.json"], "extension"),
    ],
)
def test_save_input_misuse(args: list[str], needle: str, tmp_path: Path) -> None:
    args = [str(tmp_path / a) if "." in a else a for a in args]
    code, out, err = run_cli("forward", SEED, *args)
    assert code in (ExitCode.USAGE, ExitCode.OUTPUT) and out == "" and needle in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ no silent surprises


def test_other_t_than_the_model_warns_once(tmp_path: Path) -> None:
    np.save(tmp_path / "x7.npy", np.zeros((2, 7, 3), np.float32))
    code, out, err = run_cli("forward", SEED, str(tmp_path / "x7.npy"), "--json")
    assert code == 0 and json.loads(out)["shape"] == [2, 2]
    (line,) = _lines(err)
    assert line.startswith("rnninspect: warning:") and "T=7" in line and "T=10" in line
    # Same T, or a model of variable T: no word.
    np.save(tmp_path / "x10.npy", np.zeros((2, 10, 3), np.float32))
    assert run_cli("forward", SEED, str(tmp_path / "x10.npy"))[2] == ""
    variable = str(SAMPLES / "variable_t" / "model.keras")
    assert run_cli("forward", variable, str(tmp_path / "x7.npy"))[2] == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["forward", SEED, "x.npy", "--key", "a"], "is a .npy file"),
        (["forward", SEED, "--random", "2", "--key", "a"], "--random makes its own"),
        (["trace", SEED, "--random", "2", "--sample", "1", "--json"], "--sample"),
        (["trace", SEED, "--random", "2", "--sample", "1", "-o", "t.npz"], "--sample"),
        (["trace", SEED, "--random", "2", "--units", "0:2", "--json"], "--units"),
        (["trace", SEED, "--random", "2", "--steps", "0:2", "-o", "t.npy"], "--steps"),
        (["trace", SEED, "--random", "2", "--units", "3:9"], "the layer has 5 units"),
        (["forward", SEED, "x.npy", "--seed", "1"], "--seed goes with --random"),
    ],
)
def test_options_that_do_not_apply_are_usage_errors(
    args: list[str], needle: str, tmp_path: Path
) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 10, 3), np.float32))
    args = [str(tmp_path / a) if a in ("x.npy", "t.npz", "t.npy") else a for a in args]
    code, out, err = run_cli(*args)
    assert code == ExitCode.USAGE and out == "", err
    assert needle in err and len(_lines(err)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_key_with_stdin_that_is_not_an_npz() -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros((1, 10, 3), np.float32))
    proc = run("forward", SEED, "-", "--key", "a", stdin=buf.getvalue())
    assert proc.returncode == ExitCode.USAGE and b"holds .npy data" in proc.stderr


@pytest.mark.parametrize("args", [["--json"], ["-o", "t.npz"], ["-o", "t.json"]])
def test_trace_layer_narrows_files_and_json(args: list[str], tmp_path: Path) -> None:
    args = [str(tmp_path / a) if a.startswith("t.") else a for a in args]
    code, out, err = run_cli(
        "trace", STACKED, "--random", "2", "--seed", "0", "--layer", "enc2", *args
    )
    assert code == 0 and err == ""
    if args == ["--json"]:
        keys = list(json.loads(out)["layers"])
    elif args[1].endswith(".npz"):
        keys = list(np.load(args[1]).files)
    else:
        keys = list(json.loads(Path(args[1]).read_text())["layers"])
    assert keys == ["enc2"]
    lstm = str(SAMPLES / "bidi_concat" / "model.keras")
    code, out, _ = run_cli(
        "trace", lstm, "--random", "1", "--layer", "bidirectional", "--gates", "--json"
    )
    keys = list(json.loads(out)["layers"])
    assert keys[0] == "bidirectional" and all(
        k.startswith("bidirectional") and not k.startswith("bidirectional_1") for k in keys
    )
    assert "bidirectional/forward/i" in keys


@pytest.mark.parametrize(
    "args",
    [
        ["forward", SEED, "--random", "1", "--json", "--full"],
        ["summary", SEED, "--full"],
        ["summary", SEED, "--json", "--full"],
    ],
)
def test_full_where_it_shapes_nothing_warns(args: list[str]) -> None:
    code, _, err = run_cli(*args)
    assert code == 0
    (line,) = _lines(err)
    assert line.startswith("rnninspect: warning: --full")


def test_summary_json_weights_has_the_values_exactly() -> None:
    code, out, err = run_cli("summary", SEED, "--json", "--weights")
    assert code == 0 and err == ""
    doc = json.loads(out)
    m = load_sample("seed", "model.keras")
    for layer in doc["layers"]:
        arrays = dict(m.layer(layer["name"]).weights())
        for w in layer["weights"]:
            got = np.asarray(w["values"], dtype=np.float32)
            np.testing.assert_array_equal(got, arrays[w["name"]])  # bit for bit
    # Without --weights: shapes only, as before.
    doc = json.loads(run_cli("summary", SEED, "--json")[1])
    assert all("values" not in w for layer in doc["layers"] for w in layer["weights"])


@pytest.mark.parametrize("name", ["functional", "lstm"])
def test_summary_layer_takes_the_names_the_table_shows(name: str) -> None:
    model = str(SAMPLES / "nested_func" / "model.keras")
    code, out, err = run_cli("summary", model, "--json", "--layer", name)
    assert code == 0, err
    (layer,) = json.loads(out)["layers"]
    assert layer["name"] == name
    code, out, _ = run_cli("summary", model, "--layer", name)
    assert code == 0 and f"{name} (" in out
    code, _, err = run_cli("summary", model, "--layer", "nope")
    assert code == ExitCode.USAGE and "functional" in err


@pytest.mark.parametrize(
    ("model", "args", "warned"),
    [
        ("seed", [], True),
        ("stacked", ["-o", "t.npz"], True),
        ("lstm", [], False),
        ("bidi_concat", ["--json"], False),
    ],
)
def test_gates_without_gates_warns(
    model: str, args: list[str], warned: bool, tmp_path: Path
) -> None:
    args = [str(tmp_path / a) if a.startswith("t.") else a for a in args]
    path = str(SAMPLES / model / "model.keras")
    code, _, err = run_cli("trace", path, "--random", "1", "--gates", *args)
    assert code == 0
    assert ("--gates records LSTM and GRU gates" in err) == warned
    assert len(_lines(err)) == int(warned)
