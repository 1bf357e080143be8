"""The forked parser child: prestarted ahead of need (as the CLI does), used by the
next call, or ended when no call comes; time limit and crashes as for a fresh child."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from rnninspect.errors import ModelError
from rnninspect.loaders import isolate

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@pytest.fixture(autouse=True)
def _forking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNNINSPECT_NO_FORK", raising=False)


# Module-level, so a prestarted child can be sent them (pickled by name).
def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value


def _fail() -> None:
    raise ModelError("m.keras: broken")


def _hang() -> None:
    time.sleep(60)


def _crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # as a segfault ends it, without a core dump


def _refuse_to_load() -> None:
    raise ValueError("cannot be rebuilt")


class _Unloadable:
    """Pickles in the child, fails to unpickle in the parent (as a broken str did)."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return _refuse_to_load, ()


def _unloadable() -> _Unloadable:
    return _Unloadable()


def _warm() -> None:
    import json  # noqa: F401


def _no_child_left(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_prestarted_child_makes_the_call() -> None:
    isolate.prestart(_warm)
    spare_pid = isolate._spares[0].pid
    ran: list[int] = []
    pid, value = isolate.call(_pid_and, (7,), 10, "m.keras", meanwhile=lambda: ran.append(1))
    assert (pid, value) == (spare_pid, 7)
    assert ran == [1]  # in this process
    assert not isolate._spares and _no_child_left(spare_pid)


def _collector_on() -> bool:
    import gc

    return gc.isenabled()


def test_prestarted_child_parses_with_the_collector_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command starts with the collector held (signals.hold_collector); the
    child it forks gets it back once its imports are done, before the parse."""
    import gc

    from rnninspect import signals

    assert gc.isenabled()
    monkeypatch.setattr(signals, "_collector_held", [False])
    signals.hold_collector()
    try:
        assert not gc.isenabled()
        isolate.prestart(_warm)
        assert isolate.call(_collector_on, (), 10, "m.keras") is True
    finally:
        signals.release_collector()
    assert gc.isenabled()


def test_next_call_forks_afresh() -> None:
    pid, value = isolate.call(_pid_and, (3,), 10, "m.keras")
    assert pid != os.getpid() and value == 3


def test_unused_prestarted_child_is_ended() -> None:
    isolate.prestart(_warm)
    spare_pid = isolate._spares[0].pid
    isolate.discard()
    assert not isolate._spares and _no_child_left(spare_pid)


def test_prestart_twice_keeps_one_child() -> None:
    isolate.prestart(_warm)
    isolate.prestart(_warm)
    assert len(isolate._spares) == 1
    isolate.discard()


def test_library_error_from_a_prestarted_child() -> None:
    isolate.prestart(_warm)
    with pytest.raises(ModelError, match=r"m\.keras: broken"):
        isolate.call(_fail, (), 10, "m.keras")


def test_time_limit_in_a_prestarted_child() -> None:
    isolate.prestart(_warm)
    spare_pid = isolate._spares[0].pid
    with pytest.raises(ModelError, match="did not finish in 1 s"):
        isolate.call(_hang, (), 1, "m.keras")
    assert _no_child_left(spare_pid)


@pytest.mark.parametrize("prestarted", [False, True])
def test_result_that_cannot_be_unpickled_is_a_model_error(prestarted: bool) -> None:
    """Whatever the child sends back that does not load in the parent is the file's
    fault (an error naming it), never an uncaught exception."""
    if prestarted:
        isolate.prestart(_warm)
    with pytest.raises(ModelError, match=r"m\.keras: unreadable model file \(ValueError"):
        isolate.call(_unloadable, (), 10, "m.keras")


def test_crash_in_a_prestarted_child() -> None:
    isolate.prestart(_warm)
    with pytest.raises(ModelError, match=r"crashed the HDF5/zip parser \(signal 9\)"):
        isolate.call(_crash, (), 10, "m.keras")


def test_no_fork_runs_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNINSPECT_NO_FORK", "1")
    isolate.prestart(_warm)
    assert not isolate._spares
    assert isolate.call(_pid_and, (1,), 10, "m.keras") == (os.getpid(), 1)


@pytest.mark.parametrize(
    "args",
    [
        ["forward", "missing.keras", "--random", "1"],  # fails before the load
        ["forward", "sample_models/seed/model.keras", "--random", "1"],  # uses the child
        ["summary"],  # usage error
        ["forward", "--help"],  # no child
    ],
)
def test_command_leaves_no_child_behind(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``rnninspect`` entry point prestarts the child for commands that load."""
    import contextlib
    import io
    from pathlib import Path

    from rnninspect.__main__ import main

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    monkeypatch.setattr("sys.argv", ["rnninspect", *args])
    monkeypatch.setattr("gc.freeze", lambda: None)  # main() would freeze the test process
    spare_at_call: list[bool] = []
    real_call = isolate.call

    def call(*a: object, **k: object) -> object:
        spare_at_call.append(bool(isolate._spares))
        return real_call(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(isolate, "call", call)
    # Other tests may leave long-lived children of this process (multiprocessing's
    # resource tracker, a cluster's forkserver): only the ones main() made count.
    before = _children()
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        pytest.raises(SystemExit),
    ):
        main()
    assert spare_at_call == ([True] if "sample_models/seed/model.keras" in args else [])
    assert not isolate._spares
    assert _children() <= before


def _children() -> set[int]:
    """This process's children, alive or not yet reaped (Linux's /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found
