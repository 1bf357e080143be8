"""Careless and hostile use that needs a real process: termination signals, a file
truncated under the run, readers that go away, FIFOs, full and closed descriptors.

Each run must end with its documented exit code and one line on stderr, leave no
temporary file and no child process behind, and never hang (every run here has a
timeout far below the time it would take to hang)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rnninspect.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
SEED = SAMPLES / "seed" / "model.keras"
VARIABLE = SAMPLES / "variable_t" / "model.keras"  # T variable, D = 3
HANGS = sorted((Path(__file__).parent / "fuzz_regressions").glob("hang-*"))

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and FIFOs")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rnninspect", *args]


SENT = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)  # the signals these tests send


def signals_default(ignored: tuple[int, ...] = ()) -> Callable[[], None]:
    """For ``preexec_fn`` (in the child, before it starts Python): the signals these
    tests send at their default disposition, or ignored. A test run started under
    ``nohup``, or in the background by a shell without job control, would pass them
    on ignored, and an ignored signal stays ignored (``test_ignored_signal_stays_ignored``)."""

    def apply() -> None:
        for signum in SENT:
            signal.signal(signum, signal.SIG_IGN if signum in ignored else signal.SIG_DFL)

    return apply


def start(*args: str, **kw: object) -> subprocess.Popen[bytes]:
    kw.setdefault("preexec_fn", signals_default())
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, **kw
    )


def run(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[bytes]:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        command(*args), cwd=ROOT, timeout=timeout, **kw
    )


def one_line(err: bytes) -> str:
    lines = err.decode().splitlines()
    assert len(lines) == 1, err.decode()
    assert "Traceback" not in lines[0] and "Exception ignored" not in lines[0]
    return lines[0]


def wait_for(found: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not found():
        assert time.monotonic() < deadline, "the run never got that far"
        time.sleep(0.005)


def _has_open(pid: int, path: Path) -> bool:
    """Does process ``pid`` hold ``path`` open (from /proc)?"""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.path.realpath(fd) == str(path.resolve()) for fd in fds.iterdir())
    except OSError:  # the process went, or a descriptor closed while listed
        return False


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # ended (a zombie waits for a reaper that is not us)


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


# ---------------------------------------------------------------------------- signals


@pytest.mark.parametrize(
    ("signum", "code", "line"),
    [
        (signal.SIGTERM, 143, "rnninspect: terminated (SIGTERM)"),
        (signal.SIGHUP, 129, "rnninspect: terminated (SIGHUP)"),
        (signal.SIGINT, ExitCode.INTERRUPTED, "rnninspect: error: interrupted"),
    ],
    ids=["TERM", "HUP", "INT"],
)
def test_signal_while_trace_streams_states(
    tmp_path: Path, signum: int, code: int, line: str
) -> None:
    """The states stream to a temporary file: a signal removes it and says so."""
    earlier = tmp_path / "states.npy"
    earlier.write_bytes(b"an earlier result")
    proc = start(
        "trace", str(VARIABLE), "--random", "400000", "--length", "200", "-o", str(earlier)
    )
    wait_for(lambda: any(p.name.endswith(".tmp") for p in tmp_path.iterdir()))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert one_line(err) == line
    assert [p.name for p in tmp_path.iterdir()] == ["states.npy"]
    assert earlier.read_bytes() == b"an earlier result"


def test_ignored_signal_stays_ignored(tmp_path: Path) -> None:
    """Started with SIGHUP and SIGINT ignored (``nohup``, a background job): the run
    goes on through them, and a signal it was not told to ignore still ends it
    cleanly."""
    out = tmp_path / "states.npy"
    proc = start(
        "trace",
        str(VARIABLE),
        "--random",
        "400000",
        "--length",
        "200",
        "-o",
        str(out),
        preexec_fn=signals_default(ignored=(signal.SIGHUP, signal.SIGINT)),
    )
    wait_for(lambda: any(p.name.endswith(".tmp") for p in tmp_path.iterdir()))
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # still running
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert one_line(err) == "rnninspect: terminated (SIGTERM)"
    assert list(tmp_path.iterdir()) == []


@needs_proc
@pytest.mark.skipif(not HANGS, reason="no hanging HDF5 sample")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_while_parsing_ends_the_parse_child(signum: int) -> None:
    """A file that makes libhdf5 spin: the signal ends the parse child too."""
    env = {**os.environ, "RNNINSPECT_PARSE_SECONDS": "60"}
    proc = start("summary", str(HANGS[0]), env=env)
    wait_for(lambda: bool(children(proc.pid)))
    time.sleep(1.0)  # the child has its work and spins
    kids = children(proc.pid)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, err
    one_line(err)
    assert kids and all(gone(k) for k in kids)


@needs_proc
@pytest.mark.skipif(not HANGS, reason="no hanging HDF5 sample")
def test_parse_child_ends_itself_when_the_parent_is_killed() -> None:
    """SIGKILL leaves no cleanup to the parent: the child's own alarm ends it."""
    env = {**os.environ, "RNNINSPECT_PARSE_SECONDS": "1"}
    proc = start("summary", str(HANGS[0]), env=env)
    wait_for(lambda: bool(children(proc.pid)))
    time.sleep(0.5)
    kids = children(proc.pid)
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: all(gone(k) for k in kids), seconds=20)


# ------------------------------------------------------------- input truncated mid-run


def test_input_truncated_during_the_run_is_an_input_error(tmp_path: Path) -> None:
    """Another process truncates the .npy the run reads: exit 4 and one line (a
    memory-mapped input would have died of SIGBUS), nothing left behind."""
    x = tmp_path / "x.npy"
    rows = np.lib.format.open_memmap(x, mode="w+", dtype=np.float32, shape=(400_000, 100, 3))
    rows[:] = 0.5
    rows.flush()
    del rows
    out = tmp_path / "y.npy"
    proc = start("forward", str(VARIABLE), str(x), "-o", str(out))
    # Once the run has the input open (it reads it a block of samples at a time),
    # paused while the file is cut: the engine reads this input in about a second,
    # faster than a test can count on winning a race with it.
    wait_for(lambda: _has_open(proc.pid, x))
    os.kill(proc.pid, signal.SIGSTOP)
    os.truncate(x, x.stat().st_size // 3)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INPUT, err
    assert "x.npy" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


# --------------------------------------------------------------------------- pipes


@pytest.mark.parametrize(
    "args",
    [
        ["summary", str(SEED)],
        ["summary", str(SAMPLES / "lstm_stack" / "model.keras"), "--weights", "--full"],
        ["trace", str(SEED), "--random", "20000", "--json"],
        ["forward", str(SEED), "--random", "5000", "--full"],
        ["trace", str(VARIABLE), "--random", "1", "--length", "3000", "--full"],
    ],
    ids=["summary", "weights", "trace-json", "forward-table", "trace-table"],
)
@pytest.mark.parametrize("reader", ["head -1", "head -c 100", "true"])
def test_reader_going_away_is_a_quiet_exit(args: list[str], reader: str) -> None:
    script = " ".join(f"'{a}'" for a in command(*args)) + f" | {reader}; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""


# ------------------------------------------------------------- full and closed streams


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [
        ["forward", str(SEED), "--random", "3", "--json"],
        ["forward", str(SEED), "--random", "3"],
        ["summary", str(SEED)],
        ["summary", str(SEED), "--json"],
        ["trace", str(SEED), "--random", "2", "--json"],
    ],
)
def test_stdout_on_a_full_disk_is_an_output_error(args: list[str]) -> None:
    with open("/dev/full", "wb") as full:
        done = run(*args, stdout=full)
    assert done.returncode == ExitCode.OUTPUT, done.stderr
    assert "<stdout>: cannot write (No space left on device)" in one_line(done.stderr)


def _closed(fd: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    script = " ".join(f"'{a}'" for a in command(*args)) + f" {fd}>&-"
    return subprocess.run(["bash", "-c", script], capture_output=True, cwd=ROOT, timeout=60)


def test_closed_stdout(tmp_path: Path) -> None:
    done = _closed(1, "forward", str(SEED), "--random", "2", "--json")
    assert done.returncode == ExitCode.OUTPUT
    assert "stdout is closed" in one_line(done.stderr)
    target = tmp_path / "y.npy"
    done = _closed(1, "forward", str(SEED), "--random", "2", "-o", str(target))
    assert done.returncode == 0 and done.stderr == b""
    assert np.load(target).shape == (2, 2)  # and not the table, on the reused fd 1


def test_closed_stdin_and_stderr() -> None:
    done = _closed(0, "forward", str(SEED), "-")
    assert done.returncode == ExitCode.INPUT
    assert "<stdin>" in one_line(done.stderr)
    done = _closed(2, "forward", str(SEED), "--random", "2", "--seed", "-1")
    assert done.returncode == ExitCode.USAGE


@pytest.mark.parametrize(
    ("redirect", "args", "code", "fragment"),
    [
        ("0>/dev/null", ["forward", str(SEED), "-"], ExitCode.INPUT, "<stdin>: cannot read"),
        ("1</dev/null", ["summary", str(SEED)], ExitCode.OUTPUT, "<stdout>: cannot write"),
    ],
    ids=["stdin-write-only", "stdout-read-only"],
)
def test_standard_streams_open_the_wrong_way(
    redirect: str, args: list[str], code: int, fragment: str
) -> None:
    script = " ".join(f"'{a}'" for a in command(*args)) + f" {redirect}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, cwd=ROOT, timeout=60)
    assert done.returncode == code, done.stderr
    assert fragment in one_line(done.stderr)


def test_endless_stdin_is_capped() -> None:
    start_time = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", "yes 1 | " + " ".join(f"'{a}'" for a in command("forward", str(SEED), "-"))],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == ExitCode.INPUT
    assert "<stdin>: more than 16 MiB" in one_line(done.stderr)
    assert time.monotonic() - start_time < 30


# ------------------------------------------------------------------------------- FIFOs


@pytest.mark.parametrize("role", ["model", "config"])
def test_fifo_as_model_or_config_is_refused_at_once(tmp_path: Path, role: str) -> None:
    fifo = tmp_path / "f.keras"
    os.mkfifo(fifo)
    args = (
        ["summary", str(fifo)]
        if role == "model"
        else ["summary", str(SAMPLES / "seed" / "model.weights.h5"), "--config", str(fifo)]
    )
    begin = time.monotonic()
    done = run(*args, timeout=30)
    assert done.returncode == ExitCode.MODEL
    line = one_line(done.stderr)
    assert str(fifo) in line and "FIFO" in line
    assert time.monotonic() - begin < 15


def test_fifo_as_input_is_read_like_stdin(tmp_path: Path) -> None:
    """A pipe given as INPUT (``<(...)``) is data arriving, read as stdin is."""
    x = np.random.default_rng(0).standard_normal((2, 10, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = (
        " ".join(f"'{a}'" for a in command("forward", str(SEED), "--json"))
        + f" <(cat '{tmp_path / 'x.npy'}')"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert b'"shape": [2, 2]' in done.stdout
