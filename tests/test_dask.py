"""Dask arrays in, Dask arrays out, on a real two-process cluster (loopback), and the
CLI's Zarr store in and out with ``--scheduler``: the numbers are exactly those the
NumPy engine gives in one process for the same chunks of samples.

Why "for the same chunks": BLAS computes a row of a matrix product with kernels
that depend on how many rows the product has (and which kernel the machine picks),
so a sample's last bits can differ between a batch of 64 and one of 301, in one
process too (measured: up to 3e-7; tests/test_chunks.py allows for it). A cluster
changes nothing else: each chunk is computed on a worker exactly as here. The
whole-batch result is checked to float32 rounding as well.
"""

from __future__ import annotations

import itertools
import socket
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_cli

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

import rnninspect  # noqa: E402
from rnninspect import blas  # noqa: E402
from rnninspect.errors import UsageError  # noqa: E402
from rnninspect.inputs import random_inputs  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    import cloudpickle

    # The counting hook below is a function of this module, which the workers
    # cannot import: send it by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    import dask

    # The Active Memory Manager (on by default) may drop a worker's replica of the
    # model between runs, which the worker then fetches again once: off here, so
    # the count of deserialisations below is exact.
    with (
        dask.config.set({"distributed.scheduler.active-memory-manager.start": False}),
        warnings.catch_warnings(),
    ):
        # The scheduler's HTTP server (the dashboard is off) moves on from a busy
        # port 8787 with a warning.
        warnings.filterwarnings("ignore", "Port .* is already in use", UserWarning)
        cluster = distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            host="127.0.0.1",
        )
    found = distributed.Client(cluster)
    try:
        yield found
    finally:
        found.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def on(client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The cluster as the current client; this process computing as a worker does
    (the nanny starts workers with OPENBLAS_NUM_THREADS=1: one engine thread, BLAS
    on one thread) for the references."""
    assert set(client.run(lambda: __import__("os").environ["OPENBLAS_NUM_THREADS"]).values()) == {
        "1"
    }
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.delenv("RNNINSPECT_THREADS", raising=False)
    with client.as_current():
        yield client


def load(name: str) -> rnninspect.Model:
    return rnninspect.load_model(SAMPLES / name / "model.keras")


def batch(model: rnninspect.Model, n: int, seed: int = 0) -> list[np.ndarray]:
    # random_inputs draws lazily (RandomRows, a chunk at a time): whole arrays here.
    return [np.asarray(x) for x in random_inputs(model, n, seed, 7)]


def per_chunk(run: Any, xs: list[np.ndarray], chunks: tuple[int, ...]) -> Any:
    """``run`` on each chunk of samples in this process, joined along N."""
    bounds = np.cumsum((0, *chunks))
    with blas.single_threaded():
        parts = [run([x[a:b] for x in xs]) for a, b in itertools.pairwise(bounds)]
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


CHUNKS = (64, 64, 64, 64, 45)  # N = 301: a ragged last chunk


def test_forward_of_a_chain(on: Any) -> None:
    m = load("lstm")
    (x,) = batch(m, 301)
    dx = da.from_array(x, chunks=(64, -1, -1))
    y = m.forward(dx)
    assert isinstance(y, da.Array)
    assert y.chunks == (CHUNKS, (2,))
    got = y.compute()
    (want,) = per_chunk(m.forward_all, [x], CHUNKS)
    assert got.dtype == np.float32
    assert np.array_equal(got, want)
    np.testing.assert_allclose(got, m.forward(x), rtol=1e-6, atol=1e-6)
    assert np.array_equal(m.predict(dx).compute(), got)


def test_trace_of_a_chain_with_gates(on: Any) -> None:
    m = load("lstm")
    (x,) = batch(m, 301, seed=1)
    states = m.trace(da.from_array(x, chunks=(64, -1, -1)), gates=True)
    numpy_states = m.trace(x, gates=True)
    assert list(states) == list(numpy_states)
    assert all(isinstance(v, da.Array) for v in states.values())
    (got,) = da.compute(states)
    want = per_chunk(lambda xs: m.trace(xs, gates=True), [x], CHUNKS)
    for k, value in numpy_states.items():
        assert got[k].shape == value.shape
        assert np.array_equal(got[k], want[k]), k
        np.testing.assert_allclose(got[k], value, rtol=1e-5, atol=1e-6)


def test_graph_with_two_inputs_by_name_and_by_list(on: Any) -> None:
    m = load("seq2seq_states")
    enc, dec = batch(m, 301, seed=2)
    # Chunked differently along N: the second input takes the first's chunks.
    denc = da.from_array(enc, chunks=(64, -1, -1))
    ddec = da.from_array(dec, chunks=(100, -1, -1))
    by_name = m.forward({"enc_in": denc, "dec_in": ddec})
    by_list = m.forward([denc, ddec])
    (want,) = per_chunk(m.forward_all, [enc, dec], CHUNKS)
    a, b = da.compute(by_name, by_list)
    assert np.array_equal(a, want)
    assert np.array_equal(b, want)
    np.testing.assert_allclose(a, m.forward([enc, dec]), rtol=1e-6, atol=1e-6)
    states = m.trace([denc, ddec])
    assert list(states) == ["lstm", "lstm/c", "lstm_1", "lstm_1/c"]
    (got,) = da.compute(states)
    ref = per_chunk(m.trace, [enc, dec], CHUNKS)
    for k in ref:
        assert np.array_equal(got[k], ref[k]), k


def test_several_outputs_and_ids(on: Any) -> None:
    m = load("multi_output")
    (x,) = batch(m, 301, seed=3)
    ys = m.forward_all(da.from_array(x, chunks=(64, -1, -1)))
    assert isinstance(ys, list) and len(ys) == 3
    assert [y.shape for y in ys] == [(301, 2), (301, 5), (301, 5)]
    got = da.compute(*ys)
    want = per_chunk(m.forward_all, [x], CHUNKS)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    with pytest.raises(ValueError, match="3 outputs"):
        m.forward(da.from_array(x, chunks=(64, -1, -1)))
    # Integer ids for an Embedding model: checked on the workers, chunk by chunk.
    e = load("embedding")
    (ids,) = batch(e, 301, seed=4)
    dids = da.from_array(ids, chunks=(64, -1))
    (want_e,) = per_chunk(e.forward_all, [ids], CHUNKS)
    assert np.array_equal(e.forward(dids).compute(), want_e)
    bad = ids.copy()
    bad[200, 3] = 10_000
    with pytest.raises(rnninspect.InputArrayError, match=r"samples 192\.\.255: .*10000"):
        e.forward(da.from_array(bad, chunks=(64, -1))).compute()


def _count_loads() -> None:
    """On a worker: count how often a Model is unpickled in this process."""
    import rnninspect.model as mm

    def setstate(self: Any, state: Any) -> None:
        mm._loads = getattr(mm, "_loads", 0) + 1  # type: ignore[attr-defined]
        self.__dict__.update(state)

    mm._loads = 0  # type: ignore[attr-defined]
    mm.Model.__setstate__ = setstate  # type: ignore[attr-defined]


def test_weights_reach_each_worker_once(on: Any) -> None:
    m = load("stacked")
    (x,) = batch(m, 600, seed=5)
    on.run(_count_loads)
    try:
        dx = da.from_array(x, chunks=(50, -1, -1))  # 12 chunks over 2 workers
        y = m.forward(dx).compute()
        states = da.compute(m.trace(dx))[0]
        y_again = m.forward(dx).compute()
        loads = on.run(lambda: __import__("rnninspect.model").model._loads)
    finally:
        on.run(lambda: delattr(__import__("rnninspect.model").model.Model, "__setstate__"))
    # Broadcast: every worker holds the model, unpickled once, for 36 chunk tasks.
    assert sorted(loads.values()) == [1, 1]
    assert np.array_equal(y, y_again)
    assert set(states) == set(m.trace(x[:2]))


def test_without_a_client_one_graph_key_holds_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from rnninspect import distributed as glue

    monkeypatch.setattr(glue, "_client", lambda: None)  # as if no Client were made
    m = load("lstm")
    (x,) = batch(m, 301)
    y = m.forward(da.from_array(x, chunks=(64, -1, -1)))
    graph = y.__dask_graph__()
    holding = [k for k, v in dict(graph).items() if v is m or getattr(v, "value", None) is m]
    assert len(holding) == 1
    users = [k for k, deps in graph.get_all_dependencies().items() if holding[0] in deps]
    assert len(users) == len(CHUNKS)  # one engine run per chunk, all on that key
    with blas.single_threaded():
        got = y.compute(scheduler="sync")
    assert np.array_equal(got, per_chunk(m.forward_all, [x], CHUNKS)[0])


def test_chunks_along_t_or_d_are_a_usage_error() -> None:
    m = load("lstm")
    (x,) = batch(m, 64)
    with pytest.raises(UsageError, match=r"axis 1 \(T\).*x\.rechunk\(\{1: -1, 2: -1\}\)"):
        m.forward(da.from_array(x, chunks=(32, 5, -1)))
    with pytest.raises(UsageError, match=r"axis 2 \(D\)"):
        m.trace(da.from_array(x, chunks=(32, -1, 1)))
    with pytest.raises(rnninspect.InputArrayError, match="D=4"):
        m.forward(da.zeros((64, 10, 4), chunks=(32, -1, -1), dtype="float32"))
    with pytest.raises(rnninspect.InputArrayError, match="no samples"):
        m.forward(da.zeros((0, 10, 3), chunks=(32, -1, -1), dtype="float32"))
    with pytest.raises(UsageError, match="NumPy arrays, not Dask"):
        m.forward(da.from_array(x, chunks=(32, -1, -1)), return_state=True)


# --- The CLI -----------------------------------------------------------------


def store(path: Path, x: np.ndarray, rows: int) -> Path:
    z = zarr.open_array(
        str(path), mode="w", shape=x.shape, chunks=(rows, *x.shape[1:]), dtype=x.dtype
    )
    z[:] = x
    return path


def test_cli_forward_and_trace_on_the_cluster(on: Any, tmp_path: Path) -> None:
    model = SAMPLES / "lstm" / "model.keras"
    m = rnninspect.load_model(model)
    (x,) = batch(m, 300, seed=6)
    src = store(tmp_path / "x.zarr", x, 64)
    address = on.scheduler.address
    code, out, err = run_cli("forward", str(model), str(src), "-o", str(tmp_path / "y.zarr"),
                             "--scheduler", address)  # fmt: skip
    assert (code, out, err) == (0, "", "")
    y = zarr.open_array(str(tmp_path / "y.zarr"), mode="r")
    rows = int(y.chunks[0])
    chunks = (*[rows] * (300 // rows), *([300 % rows] if 300 % rows else []))
    assert len(chunks) > 2 and chunks[-1] != rows  # several tasks, a ragged last one
    assert np.array_equal(y[:], per_chunk(m.forward_all, [x], chunks)[0])
    code, out, err = run_cli("trace", str(model), str(src), "-o", str(tmp_path / "t.zarr"),
                             "--gates", "--scheduler", address)  # fmt: skip
    assert (code, err) == (0, "")
    group = zarr.open_group(str(tmp_path / "t.zarr"), mode="r")
    want = per_chunk(lambda xs: m.trace(xs, gates=True), [x], chunks)
    held = {group[name].attrs["key"]: group[name][:] for name in group.array_keys()}
    assert sorted(held) == sorted(want)
    assert "lstm.c" in set(group.array_keys())
    for k, value in want.items():
        assert np.array_equal(held[k], value), k
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.zarr", "x.zarr", "y.zarr"]


def test_cli_two_inputs_in_a_group_run_here_without_scheduler(tmp_path: Path) -> None:
    model = SAMPLES / "seq2seq_states" / "model.keras"
    m = rnninspect.load_model(model)
    enc, dec = batch(m, 150, seed=7)
    group = zarr.open_group(str(tmp_path / "x.zarr"), mode="w")
    for name, a in (("enc_in", enc), ("dec_in", dec)):
        group.create_array(name, shape=a.shape, chunks=(40, *a.shape[1:]), dtype=a.dtype)[:] = a
    code, _, err = run_cli("forward", str(model), str(tmp_path / "x.zarr"), "-o",
                           str(tmp_path / "y.zarr"), "--quiet")  # fmt: skip
    assert (code, err) == (0, "")
    got = zarr.open_array(str(tmp_path / "y.zarr"), mode="r")[:]
    np.testing.assert_allclose(got, m.forward([enc, dec]), rtol=1e-6, atol=1e-6)


def test_cli_failure_leaves_the_old_store(on: Any, tmp_path: Path) -> None:
    model = SAMPLES / "embedding" / "model.keras"
    m = rnninspect.load_model(model)
    (ids,) = batch(m, 200, seed=8)
    good = store(tmp_path / "good.zarr", ids, 50)
    target = tmp_path / "y.zarr"
    address = on.scheduler.address
    assert (
        run_cli("forward", str(model), str(good), "-o", str(target), "--scheduler", address)[0] == 0
    )
    before = zarr.open_array(str(target), mode="r")[:]
    bad_ids = ids.copy()
    bad_ids[170, 2] = 999
    bad = store(tmp_path / "bad.zarr", bad_ids, 50)
    code, _, err = run_cli(
        "forward", str(model), str(bad), "-o", str(target), "--scheduler", address
    )
    assert code == 4
    assert "999" in err and "out of range" in err and err.count("\n") == 1
    assert np.array_equal(zarr.open_array(str(target), mode="r")[:], before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zarr", "good.zarr", "y.zarr"]
    # A second good run replaces the store whole.
    ids2 = batch(m, 120, seed=9)[0]
    assert run_cli("forward", str(model), str(store(tmp_path / "g2.zarr", ids2, 50)), "-o",
                   str(target), "--scheduler", address)[0] == 0  # fmt: skip
    assert zarr.open_array(str(target), mode="r").shape == (120, 3)
    # Never over what the run reads.
    code, _, err = run_cli("forward", str(model), str(good), "-o", str(good))
    assert code == 2 and "refusing to write over" in err


def test_cli_unreachable_scheduler(tmp_path: Path) -> None:
    import dask

    model = SAMPLES / "lstm" / "model.keras"
    (x,) = batch(rnninspect.load_model(model), 10)
    src = store(tmp_path / "x.zarr", x, 5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nobody listens once closed
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code, _, err = run_cli("forward", str(model), str(src), "-o", str(tmp_path / "y.zarr"),
                               "--scheduler", f"tcp://127.0.0.1:{port}")  # fmt: skip
    assert code == 7
    assert (
        err.startswith("rnninspect: error: --scheduler tcp://127.0.0.1:") and "cannot reach" in err
    )
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr"]


def test_cli_options_that_do_not_apply(tmp_path: Path) -> None:
    model = str(SAMPLES / "lstm" / "model.keras")
    x = str(tmp_path / "x.zarr")
    for extra, says in [
        (["--json"], "--json does not apply"),
        (["--sample", "1"], "--sample does not apply"),
    ]:
        code, _, err = run_cli("trace", model, x, "-o", str(tmp_path / "t.zarr"), *extra)
        assert code == 2 and says in err
    code, _, err = run_cli("forward", model, x, "-o", str(tmp_path / "y.npy"))
    assert code == 2 and "give -o out.zarr" in err
    code, _, err = run_cli(
        "forward", model, "--random", "3", "--scheduler", "tcp://h:1", "-o", "y.zarr"
    )
    assert code == 2 and "--random does not apply" in err


def test_cli_progress_on_a_terminal_only(on: Any, tmp_path: Path) -> None:
    import os

    if not hasattr(os, "openpty"):
        pytest.skip("needs a pseudo-terminal")
    from test_progress import _stderr_on_terminal

    model = SAMPLES / "lstm" / "model.keras"
    (x,) = batch(rnninspect.load_model(model), 200, seed=10)
    src = str(store(tmp_path / "x.zarr", x, 50))
    address = on.scheduler.address
    shown = _stderr_on_terminal(["forward", str(model), src, "-o", str(tmp_path / "a.zarr"),
                                 "--scheduler", address])  # fmt: skip
    assert b"running on 2 worker(s)" in shown
    quiet = _stderr_on_terminal(["trace", str(model), src, "-o", str(tmp_path / "b.zarr"),
                                 "--scheduler", address, "--quiet"])  # fmt: skip
    assert quiet == b""
    # Not a terminal (run_cli's stderr is a buffer): nothing either, as above.
    assert run_cli("forward", str(model), src, "-o", str(tmp_path / "c.zarr"))[2] == ""


def test_a_worker_that_cannot_see_the_store_says_so(on: Any, tmp_path: Path) -> None:
    from rnninspect import distributed as glue

    m = load("lstm")
    (x,) = batch(m, 20, seed=11)
    src = store(tmp_path / "x.zarr", x, 10)
    plan = glue._plan(m, glue._open_inputs(m, src, None), "forward", "float32", None, False)
    # As on a worker that mounts the data elsewhere: the path it is given is not there.
    spec = (str(tmp_path / "elsewhere.zarr"), [""], str(tmp_path / "y.zarr"), plan)
    with pytest.raises(rnninspect.InputArrayError, match=r"samples 0\.\.9 on worker tcp://"):
        on.submit(glue._zarr_job, m, spec, 0, 10).result()
