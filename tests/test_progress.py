"""The progress bar: on stderr for long runs on a terminal, never with --quiet or
when stderr is not a terminal (so pipes and logs stay clean)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SEED = Path(__file__).resolve().parent.parent / "sample_models" / "seed" / "model.keras"

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


def _stderr_on_terminal(args: list[str]) -> bytes:
    """Run the CLI with stderr on a pseudo-terminal; what it wrote there."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rnninspect", *args],
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env=dict(os.environ, COLUMNS="100", TERM="xterm"),
        )
        os.close(slave)
        chunks = []
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # the terminal's other side closed: the child is done
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(60) == 0
        return b"".join(chunks)
    finally:
        os.close(master)


@pytest.fixture(scope="module")
def long_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Above the bar's threshold (5 million input values): N=200,000, T=10, D=3.
    path = tmp_path_factory.mktemp("progress") / "x.npy"
    x = np.random.default_rng(0).standard_normal((200_000, 10, 3)).astype(np.float32)
    np.save(path, x)
    return path


def test_bar_shows_on_a_terminal(long_input: Path, tmp_path: Path) -> None:
    shown = _stderr_on_terminal(
        ["forward", str(SEED), str(long_input), "-o", str(tmp_path / "y.npy")]
    )
    assert b"running" in shown
    assert np.load(tmp_path / "y.npy").shape == (200_000, 2)


def test_quiet_turns_it_off(long_input: Path, tmp_path: Path) -> None:
    shown = _stderr_on_terminal(
        ["forward", str(SEED), str(long_input), "-o", str(tmp_path / "y.npy"), "--quiet"]
    )
    assert shown == b""


def test_short_runs_show_none(tmp_path: Path) -> None:
    shown = _stderr_on_terminal(
        ["forward", str(SEED), "--random", "3", "-o", str(tmp_path / "y.npy")]
    )
    assert shown == b""


def test_not_a_terminal_shows_none(long_input: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnninspect",
            "trace",
            str(SEED),
            str(long_input),
            "-o",
            str(tmp_path / "t.npz"),
        ],
        capture_output=True,
        check=True,
    )
    assert done.stderr == b""
