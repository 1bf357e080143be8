"""Chunked and parallel runs give the same numbers as one whole-batch pass, and the
streamed outputs hold exactly what the in-memory API returns."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

import rnninspect
from rnninspect import engine

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"


def cli(*args: str) -> int:
    return run_cli(*args)[0]


def batch(model: rnninspect.Model, n: int, seed: int = 0) -> np.ndarray:
    from rnninspect.inputs import random_input

    return random_input(model, n, seed, model.inputs[0].shape[0] or 7)


@pytest.mark.parametrize("name", ["stacked", "masking", "embedding", "backwards", "seq2seq"])
def test_chunks_and_threads_match_one_pass(name: str) -> None:
    model = rnninspect.load_model(SAMPLES / name / "model.keras")
    x = batch(model, 301)
    whole = engine._run_rows(model, engine.conform_rows(model, x), np.dtype("float32"), True, False)
    parts = list(engine.iter_chunks(model, x, collect=True, rows=64))
    assert [(a, b) for a, b, _ in parts][:2] == [(0, 64), (64, 128)]
    assert parts[-1][1] == 301
    joined = engine._concat([r for _, _, r in parts])
    np.testing.assert_allclose(joined.output, whole.output, rtol=1e-6, atol=1e-6)
    for key, value in whole.states.items():
        np.testing.assert_allclose(joined.states[key], value, rtol=1e-6, atol=1e-6)
    # And the per-sample results do not depend on the batch they are computed in.
    one = model.forward(x[123:124])
    np.testing.assert_allclose(one, whole.output[123:124], rtol=1e-5, atol=1e-6)


def test_streamed_outputs_equal_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_path = SAMPLES / "stacked" / "model.keras"
    model = rnninspect.load_model(model_path)
    x = batch(model, 500, seed=3)
    np.save(tmp_path / "x.npy", x)
    monkeypatch.setattr(engine, "CHUNK_BYTES", 20_000)  # force many chunks
    assert (
        cli("forward", str(model_path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")) == 0
    )
    assert (
        cli("trace", str(model_path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "t.npz")) == 0
    )
    assert (
        cli(
            "trace",
            str(model_path),
            str(tmp_path / "x.npy"),
            "--layer",
            "enc2",
            "-o",
            str(tmp_path / "t.npy"),
        )
        == 0
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model.forward(x), rtol=1e-6, atol=1e-6)
    states = model.trace(x)
    with np.load(tmp_path / "t.npz") as t:
        assert sorted(t.files) == sorted(states)
        for key in t.files:
            np.testing.assert_allclose(t[key], states[key], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "t.npy"), states["enc2"], rtol=1e-6, atol=1e-6)
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_error_in_a_later_chunk_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_path = SAMPLES / "embedding" / "model.keras"
    ids = np.ones((400, 9), dtype=np.int64)
    ids[350, 4] = 999  # out of range, far into the batch
    np.save(tmp_path / "ids.npy", ids)
    target = tmp_path / "y.npy"
    target.write_bytes(b"earlier result")
    monkeypatch.setattr(engine, "CHUNK_BYTES", 20_000)
    assert cli("forward", str(model_path), str(tmp_path / "ids.npy"), "-o", str(target)) == 4
    assert target.read_bytes() == b"earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.npy", "y.npy"]


def test_npy_input_is_read_in_blocks_not_held(tmp_path: Path) -> None:
    """An .npy input is read a chunk of samples at a time (never memory-mapped: a
    mapped file truncated under the run would kill it with SIGBUS)."""
    model = rnninspect.load_model(SAMPLES / "seed" / "model.keras")
    x = batch(model, 2000, seed=5)
    np.save(tmp_path / "x.npy", x)
    from rnninspect.batches import Rows
    from rnninspect.inputs import read_input

    rows = read_input(str(tmp_path / "x.npy"))
    assert isinstance(rows, Rows) and not isinstance(rows, np.ndarray)
    got = np.concatenate([r.output for _, _, r in engine.iter_chunks(model, rows, rows=300)])
    np.testing.assert_allclose(got, model.forward(x), rtol=1e-6, atol=1e-6)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row counts the engine's per-thread runs get, call by call."""
    sizes: list[int] = []
    real = engine._run_rows

    def spy(model_: rnninspect.Model, rows: list[np.ndarray], *args: object) -> engine.RunResult:
        sizes.append(len(rows[0]))  # rows: one array per model input
        return real(model_, rows, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_run_rows", spy)
    return sizes


@pytest.mark.parametrize("name", ["stacked", "lstm", "bidi_masked", "acceptance_chain"])
def test_threaded_split_matches_one_pass(
    name: str, calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch large enough to be split across threads gives the one-pass numbers."""
    model = rnninspect.load_model(SAMPLES / name / "model.keras")
    x = batch(model, 700, seed=9)
    whole = engine._run_rows(model, engine.conform_rows(model, x), np.dtype("float32"), True, True)
    calls.clear()
    monkeypatch.setattr(engine, "_cores", lambda: 2)
    monkeypatch.setattr(engine, "SPLIT_WORK", 0)  # these small models would not split
    split = engine.run(model, x, collect=True, gates=True)
    if engine.blas.controlled():
        assert len(calls) >= 2 and sum(calls) == 700  # the batch really was split
    np.testing.assert_allclose(split.output, whole.output, rtol=1e-6, atol=1e-6)
    assert sorted(split.states) == sorted(whole.states)
    for key, value in whole.states.items():
        np.testing.assert_allclose(split.states[key], value, rtol=1e-6, atol=1e-6)


def test_one_core_allowed_means_one_thread(
    calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinned to one core (taskset, a container's CPU set), the batch is not split."""
    model = rnninspect.load_model(SAMPLES / "lstm" / "model.keras")
    x = batch(model, 700, seed=9)
    monkeypatch.setattr(engine, "SPLIT_WORK", 0)  # would split, given two cores
    monkeypatch.setattr(engine.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    engine.run(model, x)
    assert calls == [700]


@pytest.mark.parametrize(
    "env", [{"RNNINSPECT_THREADS": "1"}, {"OPENBLAS_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "1"}]
)
def test_thread_limits_are_kept(
    env: dict[str, str], calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread limit the user set (for rnninspect, or for NumPy's BLAS, as people do
    when running processes side by side) keeps the batch on one thread."""
    model = rnninspect.load_model(SAMPLES / "lstm" / "model.keras")
    x = batch(model, 700, seed=9)
    monkeypatch.setattr(engine, "_cores", lambda: 2)
    monkeypatch.setattr(engine, "SPLIT_WORK", 0)  # would split, given two threads
    for var in ("RNNINSPECT_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    engine.run(model, x)
    if engine.blas.controlled():
        assert len(calls) == 2  # split without a limit
    calls.clear()
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    engine.run(model, x)
    assert calls == [700]


def test_bad_thread_count_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNINSPECT_THREADS", "many")
    code, _, err = run_cli("forward", str(SAMPLES / "seed" / "model.keras"), "--random", "2")
    assert code == 2
    assert "RNNINSPECT_THREADS must be a positive whole number, got 'many'" in err


def test_parts_are_cache_sized_and_match_one_pass(
    calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk split across threads is cut into parts whose per-step working set
    fits ``STEP_BYTES``, as many for each thread (several when the chunk is large);
    the pool hands them out and the numbers are the one-pass numbers."""
    model = rnninspect.load_model(SAMPLES / "lstm" / "model.keras")
    x = batch(model, 700, seed=4)
    whole = engine._run_rows(model, engine.conform_rows(model, x), np.dtype("float32"), True, True)
    monkeypatch.setattr(engine, "_cores", lambda: 2)
    monkeypatch.setattr(engine, "SPLIT_WORK", 0)
    monkeypatch.setattr(engine, "STEP_BYTES", 1)  # every part at MIN_CACHE_ROWS rows
    monkeypatch.setattr(engine, "MIN_CACHE_ROWS", 100)
    calls.clear()
    split = engine.run(model, x, collect=True, gates=True)
    if engine.blas.controlled():
        assert len(calls) == 8 and max(calls) <= 100 and sum(calls) == 700  # 4 a thread
    np.testing.assert_allclose(split.output, whole.output, rtol=1e-6, atol=1e-6)
    for key, value in whole.states.items():
        np.testing.assert_allclose(split.states[key], value, rtol=1e-6, atol=1e-6)


def test_long_sequences_keep_whole_batches() -> None:
    """An input used in place costs no memory per step, so a forward pass's chunk
    does not shrink with T; every copy of the input a chunk makes does."""
    model = rnninspect.load_model(SAMPLES / "lstm" / "model.keras")
    D = int(model.inputs[0].shape[-1] or 1)
    short, long = (engine.chunk_rows(model, T, D, 4, False, False, 0) for T in (100, 100_000))
    assert short == long > 10_000
    copied = engine.chunk_rows(model, 100_000, D, 4, False, False, 1)
    assert copied < engine.chunk_rows(model, 100, D, 4, False, False, 1)
    assert copied < long


def test_input_is_used_in_place_read_only(
    calls: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A float32 in-memory input reaches the layers as read-only views of itself
    (no layer writes into its input, or this would raise), left as it was; a
    memory map is copied out chunk by chunk; another dtype is converted."""
    model = rnninspect.load_model(SAMPLES / "stacked" / "model.keras")
    x = batch(model, 300, seed=2).astype(np.float32)
    before = x.copy()
    seen: list[np.ndarray] = []
    real = engine._run_rows

    def spy(model_: rnninspect.Model, rows: list[np.ndarray], *args: object) -> engine.RunResult:
        seen.append(rows[0])
        return real(model_, rows, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_run_rows", spy)
    y = model.forward(x)
    assert seen and all(np.shares_memory(r, x) and not r.flags.writeable for r in seen)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(y, model.forward(before))
    assert engine._input_copies([x], np.dtype("float32")) == 0
    assert engine._input_copies([x.astype(np.float64)], np.dtype("float32")) == 1
    mapped = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, x.shape)
    assert engine._input_copies([mapped[10:]], np.dtype("float32")) == 3


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_first_nonfinite_value_is_found(bad: float) -> None:
    model = rnninspect.load_model(SAMPLES / "lstm" / "model.keras")
    x = batch(model, 50, seed=1).astype(np.float32)
    x[31, 2, 0] = bad
    x[40, 0, 0] = np.nan
    (_, _, result), *_ = engine.iter_chunks(model, x)
    assert result.nonfinite_at == (31, 2, 0)
    x[31, 2, 0] = x[40, 0, 0] = 0
    x[:20] = 3e38  # finite, but their float32 sum overflows: the exact look says none
    (_, _, result), *_ = engine.iter_chunks(model, x)
    assert result.nonfinite_at is None


@pytest.mark.parametrize("dtype", ["float16", "float64", ">f4", "longdouble"])
def test_first_nonfinite_in_every_float_dtype(dtype: str) -> None:
    x = np.full((3, 4, 2), 0.5, dtype=dtype)
    assert engine._first_nonfinite(x) is None
    x[2, 1, 0] = np.inf
    x[2, 3, 1] = np.nan
    assert engine._first_nonfinite(x) == (2, 1, 0)


def test_rows_read_as_needed_are_counted_as_copies() -> None:
    """An input read a block of rows at a time (``--random``, a ``.npy`` file) is a
    fresh array per chunk, never the input in place: chunk sizes count it (counted
    as in place, a 960 MB ``--random`` batch became one chunk, 2.8 GB resident)."""
    from rnninspect.batches import RandomRows
    from rnninspect.engine import _input_copies

    (rows,) = RandomRows.streams([((1000, 200, 3), None)], 0)
    ft = np.dtype(np.float32)
    assert _input_copies([rows], ft) == 1
    assert _input_copies([np.zeros((4, 2, 3), np.float32)], ft) == 0  # used in place


def test_split_plan_does_not_depend_on_the_length(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a batch is split across threads, and into which parts, is a matter
    of what a step costs (N, the layers), not of how many steps there are: an
    in-memory input of the compute dtype makes the same plan at T = 100 and 100,000."""
    model = rnninspect.load_model(SAMPLES / "lstm" / "model.keras")
    monkeypatch.setattr(engine, "_cores", lambda: 2)
    f32 = np.dtype("float32")
    for N in (256, 4096):
        plans = {T: engine.plan(model, N, T, 3, f32) for T in (100, 300, 1000, 10_000, 100_000)}
        assert len(set(plans.values())) == 1, plans
        rows, threads = plans[300]
        assert rows >= N
        if engine.blas.controlled():
            assert threads == (2 if N == 4096 else 1)  # 256 rows of M=6: not worth it
            assert engine.part_bounds(model, N, threads, 4) == (
                [0, 2048, 4096] if N == 4096 else [0, 256]
            )


def _split_seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, frozenset[int]]]:
    """(thread, rows, CPUs the thread may run on) of every part the engine runs."""
    seen: list[tuple[int, int, frozenset[int]]] = []
    real = engine._run_rows

    def spy(model_: rnninspect.Model, rows: list[np.ndarray], *args: object) -> engine.RunResult:
        cpus = frozenset(engine._usable_cpus())  # this thread's own CPU set
        seen.append((threading.get_ident(), len(rows[0]), cpus))
        return real(model_, rows, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_run_rows", spy)
    return seen


@pytest.fixture
def fresh_pool() -> None:
    """No kept threads from earlier tests (another thread count: still ending)."""
    with engine._pool_lock:
        for pool in engine._pool.values():
            pool.shutdown(wait=True)
        engine._pool.clear()


@pytest.mark.skipif(not engine.blas.controlled(), reason="no controllable BLAS: no split")
@pytest.mark.usefixtures("fresh_pool")
def test_split_threads_are_kept_and_one_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """The threads a batch is split across are started once and reused by the next
    calls; with a thread per usable core each runs on a core of its own (else they
    run where the scheduler puts them). The numbers are the one-pass numbers, bit
    for bit: each sample's arithmetic is the same in any part."""
    model = rnninspect.load_model(SAMPLES / "lstm" / "model.keras")
    x = batch(model, 600, seed=5)
    whole = engine._run_rows(model, engine.conform_rows(model, x), np.dtype("float32"), True, True)
    usable = engine._usable_cpus()
    monkeypatch.setattr(engine, "_cores", lambda: 2)
    monkeypatch.setattr(engine, "SPLIT_WORK", 0)
    seen = _split_seen(monkeypatch)

    def pool_threads() -> set[int | None]:
        return {t.ident for t in threading.enumerate() if t.name.startswith(engine._POOL_NAME)}

    first = engine.run(model, x, collect=True, gates=True)
    kept = pool_threads()
    again = engine.run(model, x, collect=True, gates=True)
    assert pool_threads() == kept and len(kept) == 2  # none started, none ended
    assert {t for t, _, _ in seen} <= kept
    assert sorted(n for _, n, _ in seen) == [300] * 4  # two parts a call
    cpus = {t: c for t, _, c in seen}
    if len(usable) == 2:  # each thread on a core of its own
        assert all(len(c) == 1 for c in cpus.values()) and len(set(cpus.values())) == len(cpus)
        assert set().union(*cpus.values()) <= usable
    else:  # more (or fewer) cores than threads: left to the scheduler
        assert all(c == frozenset(usable) for c in cpus.values())
    for got in (first, again):
        np.testing.assert_array_equal(got.output, whole.output)
        for key, value in whole.states.items():
            np.testing.assert_array_equal(got.states[key], value)


@pytest.mark.skipif(not engine.blas.controlled(), reason="no controllable BLAS: no split")
def test_a_run_on_a_pool_thread_is_not_split_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forward pass started on one of the split's own threads runs there whole:
    split again, its parts would queue behind the thread waiting for them."""
    model = rnninspect.load_model(SAMPLES / "lstm" / "model.keras")
    x = batch(model, 400, seed=6)
    monkeypatch.setattr(engine, "_cores", lambda: 2)
    monkeypatch.setattr(engine, "SPLIT_WORK", 0)
    seen = _split_seen(monkeypatch)
    inner = engine._shared_pool(2).submit(model.forward, x).result(timeout=120)
    assert [n for _, n, _ in seen] == [400]
    seen.clear()
    np.testing.assert_array_equal(inner, model.forward(x))
    assert sorted(n for _, n, _ in seen) == [200, 200]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork")
@pytest.mark.skipif(not engine.blas.controlled(), reason="no controllable BLAS: no split")
def test_a_forked_child_starts_its_own_threads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The kept threads do not exist in a forked child (multiprocessing's default on
    Linux): its first split starts its own, rather than queueing work for none."""
    import os

    model = rnninspect.load_model(SAMPLES / "lstm" / "model.keras")
    x = batch(model, 400, seed=7)
    monkeypatch.setattr(engine, "_cores", lambda: 2)
    monkeypatch.setattr(engine, "SPLIT_WORK", 0)
    y = model.forward(x)  # the parent's threads started
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        code = 1
        try:
            np.save(tmp_path / "child.npy", model.forward(x))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "child.npy"), y)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork")
@pytest.mark.skipif(engine.blas._shutdown() is None, reason="OpenBLAS's thread stop not found")
def test_blas_threads_stopped_by_a_fork_stay_stopped_while_single_threaded() -> None:
    """A fork stops OpenBLAS's threads (the loader forks its parse child); setting
    the thread count starts them again, each spinning for work. Running
    single-threaded leaves them as the fork did: none started inside, none after;
    the count is restored, and the next multi-threaded product starts them."""
    import os

    blas = engine.blas
    get, _ = blas._openblas()  # type: ignore[misc]
    count = get()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    before = blas._threads_now()
    with blas.single_threaded():
        inside = blas._threads_now()
        assert get() == 1
        a = np.random.default_rng(0).standard_normal((300, 300)).astype(np.float32)
        product = a @ a
    assert (inside, blas._threads_now(), get()) == (before, before, count)
    np.testing.assert_allclose(a @ a, product, rtol=1e-5, atol=1e-4)
    running = blas._threads_now()
    if count > 1:
        assert running > before  # started again by that product
    with blas.single_threaded():  # threads running: left alone
        assert get() == 1 and blas._threads_now() == running
    assert (get(), blas._threads_now()) == (count, running)
