"""The dask extra stays optional: nothing imports dask, distributed or zarr unless a
run needs them, and without them a run that does says in one line how to get them.
(These tests run with or without the extra installed.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

SEED = Path(__file__).resolve().parent.parent / "sample_models" / "seed" / "model.keras"
EXTRA = ("dask", "distributed", "zarr", "numcodecs")


def _imported(*args: str) -> set[str]:
    """Modules a CLI run imports (``-X importtime`` lists each one)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rnninspect", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


@pytest.mark.parametrize(
    "args",
    [["forward", "--help"], ["trace", "--help"], ["forward", str(SEED), "--random", "3"]],
)
def test_runs_without_zarr_import_none_of_it(args: list[str]) -> None:
    found = _imported(*args)
    assert "rnninspect.cli" in found  # the listing works
    assert not {name.split(".")[0] for name in found} & set(EXTRA)
    assert "rnninspect.distributed" not in found  # not even the glue


def test_numpy_arrays_never_import_dask() -> None:
    code = (
        "import sys, numpy as np, rnninspect\n"
        f"m = rnninspect.load_model({str(SEED)!r})\n"
        "m.forward(np.zeros((2, 10, 3), 'float32')); m.trace(np.zeros((2, 10, 3), 'float32'))\n"
        f"print(sorted(k for k in sys.modules if k.split('.')[0] in {EXTRA!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("extra", "missing"),
    [([], ("zarr",)), (["--scheduler", "tcp://127.0.0.1:1"], ("distributed",))],
)
def test_missing_extra_is_one_usage_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], missing: tuple[str, ...]
) -> None:
    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    x = tmp_path / "x.zarr"
    code, out, err = run_cli("forward", str(SEED), str(x), "-o", str(tmp_path / "y.zarr"), *extra)
    assert code == 2
    assert out == ""
    assert err == (
        "rnninspect: error: forward with "
        + ("--scheduler" if extra else "a .zarr INPUT")
        + " needs the dask extra (dask[distributed] and zarr): pip install 'rnninspect[dask]'\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_npy_runs_unchanged_beside_the_option(tmp_path: Path) -> None:
    # --scheduler needs a store: a plain .npy INPUT with it is a usage error that
    # says so, before any model is loaded or any cluster contacted.
    np.save(tmp_path / "x.npy", np.zeros((2, 10, 3), "float32"))
    code, _, err = run_cli(
        "forward", str(SEED), str(tmp_path / "x.npy"), "--scheduler", "tcp://127.0.0.1:1"
    )
    assert code == 2 and "reads a Zarr store as INPUT" in err
