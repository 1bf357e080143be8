"""Beyond one machine: a model run over Dask arrays and Zarr stores, on a Dask
cluster or in this process (the ``dask`` extra: ``pip install 'rnninspect[dask]'``).

Samples are independent, so a batch splits along N only: each chunk of samples is
one task that runs the NumPy engine, unchanged, on its rows (all of T, all of D).
The model's weights reach each worker once: with a ``distributed.Client`` the
model is scattered to every worker (and kept there while the model object lives
unchanged, so a second run sends nothing) and every task names that one key;
without one it is one key of the graph.

Nothing here imports dask, distributed or zarr at module level, and nothing else in
the package imports them: ``Model.forward``/``trace`` come here only when
``dask.array`` is already imported (the caller made a Dask array), and the CLI only
for a ``.zarr`` store or ``--scheduler``.

Zarr layout (``-o out.zarr``): ``forward`` with one output writes one array at the
store's root (as ``.npy`` holds one); several outputs, a group with ``output_0``,
``output_1``, ... (as ``.npz``), each with its Keras name in attribute ``name``;
``trace``, a group with one array per trace entry, ``/`` in a key written as ``.``
(``lstm/c`` -> ``lstm.c``, as in HDF5, since ``lstm`` is itself an entry) and the
key in attribute ``key``. Output arrays are chunked along N as the run was.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ClusterError, InputArrayError, OutputError, RnnInspectError, UsageError
from .model import Array, Model

EXTRA = "pip install 'rnninspect[dask]'"
ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")  # Zarr v3, v2 array, v2 group


def _require(what: str, modules: Sequence[str]) -> None:
    """The extra's modules, or the one-line usage error saying how to get them."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise UsageError(
                f"{what} needs the dask extra (dask[distributed] and zarr): {EXTRA}"
            ) from None


def _module(name: str) -> Any:
    """An optional module, imported on first use (typed loosely: the extra's
    packages are not all typed)."""
    import importlib

    return importlib.import_module(name)


# --- The Python API: Dask arrays in, Dask arrays out ------------------------------


def holds_dask(x: Any) -> bool:
    """Is ``x`` (one array, a list, or a dict by input name) a Dask array input?
    Free when dask is not imported: then nothing can be a Dask array."""
    da = sys.modules.get("dask.array")
    if da is None:
        return False
    values = x.values() if isinstance(x, Mapping) else x if isinstance(x, (list, tuple)) else [x]
    return any(isinstance(v, da.Array) for v in values)


def takes(x: Any, initial_state: Any, return_state: bool) -> bool:
    """Is ``x`` Dask arrays, for ``forward_all``/``trace`` below to run?"""
    if not holds_dask(x):
        return False
    if initial_state is not None or return_state:
        raise UsageError("initial_state and return_state take NumPy arrays, not Dask arrays")
    return True


def _client() -> Any:
    """The current ``distributed.Client``, if the caller made one."""
    found = sys.modules.get("distributed")
    if found is None:
        return None
    try:
        return found.default_client()
    except ValueError:
        return None


# Per model object: (its hash, the client's id, the future of its scattered copy).
_SCATTERED: dict[int, tuple[str, str, Any]] = {}


def _model_key(model: Model) -> Any:
    """The model as one key every task shares: with a client, scattered to every
    worker, once for as long as the model object lives unchanged (its weights
    hashed at each call: a changed model is sent again); a single graph key
    otherwise."""
    dask = _module("dask")
    client = _client()
    if client is not None:
        import weakref

        token = dask.base.tokenize(model)
        held = _SCATTERED.get(id(model))
        if held is not None and held[:2] == (token, client.id) and held[2].status == "finished":
            return held[2]
        # hash=False: a key of its own. Scattering again under the same hash races
        # with the release of an earlier copy, which can lose the data.
        future = client.scatter(model, broadcast=True, hash=False)
        if held is None:
            weakref.finalize(model, _SCATTERED.pop, id(model), None)
        _SCATTERED[id(model)] = (token, client.id, future)
        return future

    # traverse=False: the model is one opaque object, not a structure to rebuild.
    return dask.delayed(model, pure=True, traverse=False)


def _dask_inputs(model: Model, x: Any) -> list[Any]:
    """The Dask arrays, one per model input: shapes and dtypes checked as for NumPy
    input, chunked along N only, all with the same chunks of samples."""
    from .engine import as_inputs

    da = _module("dask.array")
    from .inputs import conform

    if isinstance(x, (list, tuple)) and len(model.inputs) == 1 and len(x) == 1:
        x = x[0]
    xs = [a if isinstance(a, da.Array) else da.asarray(a) for a in as_inputs(model, x)]
    many = len(xs) > 1
    for i, a in enumerate(xs):
        where = f"input {model.inputs[i].name!r}" if many else "input"
        if a.ndim != len(model.inputs[i].shape) + 1:
            raise InputArrayError(
                f"{where}: a Dask array of shape {a.shape}; it needs the samples axis N "
                f"first, then {len(model.inputs[i].shape)} more"
            )
        # Shape and dtype as for NumPy input, on one stand-in row; values are
        # checked by the engine, chunk by chunk, on the workers.
        conform(model, np.zeros((1, *a.shape[1:]), a.dtype), where, index=i)
        if any(math.isnan(c) for c in a.chunks[0]):
            raise UsageError(f"{where}: unknown chunk sizes; call x.compute_chunk_sizes() first")
        split = [axis for axis in range(1, a.ndim) if len(a.chunks[axis]) > 1]
        if split:
            whole = "{" + ", ".join(f"{axis}: -1" for axis in range(1, a.ndim)) + "}"
            raise UsageError(
                f"{where}: the Dask array is chunked along axis {split[0]} "
                f"({'T' if split[0] == 1 else 'D'}); rnninspect splits samples (N) only, "
                f"each chunk holding whole sequences: x.rechunk({whole})"
            )
    N = xs[0].shape[0]
    if N == 0:
        raise InputArrayError(f"input: a Dask array of shape {xs[0].shape}: no samples")
    if any(a.shape[0] != N for a in xs):
        raise InputArrayError(
            "the inputs hold different numbers of samples "
            f"({', '.join(str(a.shape[0]) for a in xs)})"
        )
    # Inputs chunked differently along N take the first one's chunks (cheap: N only).
    return [a if a.chunks[0] == xs[0].chunks[0] else a.rechunk({0: xs[0].chunks[0]}) for a in xs]


def _run_block(
    model: Model, xs: list[Array], dtype: str, kind: str, gates: bool, first: int
) -> list[Array]:
    """One chunk of samples through the NumPy engine (on a worker): the outputs in
    Keras's order, or the trace entries in the engine's order."""
    try:
        if kind == "forward":
            return list(model.forward_all(xs, dtype))
        return list(model.trace(xs, dtype, gates).values())
    except RnnInspectError as exc:
        # Sample numbers inside the message count from the chunk's first sample.
        raise type(exc)(f"samples {first}..{first + len(xs[0]) - 1}: {exc}") from None


def _dask_run(model: Model, x: Any, dtype: str, kind: str, gates: bool) -> dict[str, Any]:
    dask, da = _module("dask"), _module("dask.array")
    xs = _dask_inputs(model, x)
    # What each block returns (names, per-sample shapes, dtypes), from one stand-in
    # row run here: zeros fit every input (ids included).
    probe = [np.zeros((1, *a.shape[1:]), a.dtype) for a in xs]
    found = (
        model.forward_all(probe, dtype) if kind == "forward" else model.trace(probe, dtype, gates)
    )
    meta = dict(enumerate(found)) if kind == "forward" else dict(found)
    handle = _model_key(model)
    blocks = [a.to_delayed().ravel() for a in xs]
    starts = np.cumsum((0, *xs[0].chunks[0]))
    run = dask.delayed(_run_block, pure=True)
    parts = [
        run(handle, [b[i] for b in blocks], dtype, kind, gates, int(starts[i]))
        for i in range(len(blocks[0]))
    ]
    out: dict[str, Any] = {}
    for j, (name, value) in enumerate(meta.items()):
        pieces = [
            da.from_delayed(part[j], shape=(rows, *value.shape[1:]), dtype=value.dtype)
            for part, rows in zip(parts, xs[0].chunks[0], strict=True)
        ]
        out[str(name)] = da.concatenate(pieces, axis=0)
    return out


def forward_all(model: Model, x: Any, dtype: str = "float32") -> list[Any]:
    """``Model.forward_all`` for Dask arrays: one Dask array per output, chunked
    along N as the input is."""
    return list(_dask_run(model, x, dtype, "forward", False).values())


def trace(model: Model, x: Any, dtype: str = "float32", gates: bool = False) -> dict[str, Any]:
    """``Model.trace`` for Dask arrays: the same keys, each a Dask array."""
    return _dask_run(model, x, dtype, "trace", gates)


# --- The CLI: a Zarr store in, a Zarr store out -----------------------------------


def is_store(path: str | os.PathLike[str] | None) -> bool:
    """Does ``path`` name a Zarr store (``.zarr``, or a directory Zarr wrote)?"""
    if path is None or str(path) == "-":
        return False
    p = Path(path)
    if p.suffix.lower() == ".zarr":
        return True
    return p.is_dir() and any((p / marker).exists() for marker in ZARR_MARKERS)


def command(
    kind: str,
    *,
    model_path: Path,
    config: Path | None,
    load: Callable[[], Model],
    source: str | None,
    output: Path | None,
    key: str | None,
    dtype: str,
    scheduler: str | None,
    quiet: bool,
    given: Mapping[str, bool],
    layer: str | None = None,
    gates: bool = False,
) -> None:
    """``forward``/``trace`` from a Zarr store to a Zarr store, on ``scheduler`` (a
    Dask scheduler's address) or, without one, in this process chunk by chunk."""
    where = "--scheduler" if scheduler is not None else "a .zarr INPUT"
    for name, on in given.items():
        if on:
            raise UsageError(
                f"{name} does not apply with {where}: the run reads a Zarr store and "
                "writes one (-o out.zarr)"
            )
    if source is None or not is_store(source):
        raise UsageError(
            f"{where} reads a Zarr store as INPUT (data.zarr; the workers open it), "
            f"not {source or 'nothing'}"
        )
    if output is None or Path(output).suffix.lower() != ".zarr":
        raise UsageError(f"{where} writes a Zarr store: give -o out.zarr")
    _require(f"{kind} with {where}", ["zarr", "dask", "distributed"] if scheduler else ["zarr"])
    src = Path(source).absolute()
    target = Path(output).absolute()
    if not src.exists():
        raise InputArrayError(f"{source}: no such Zarr store")
    _refuse_overwrite(target, {"INPUT store": src, "model file": model_path, "--config": config})
    if not target.parent.is_dir():
        raise OutputError(f"{output}: directory {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise OutputError(f"{output}: no permission to write in {target.parent}")

    model = load()
    arrays = _open_inputs(model, src, key)
    plan = _plan(model, arrays, kind, dtype, layer, gates)
    client = _connect(scheduler) if scheduler is not None else None
    try:
        workers = len(client.scheduler_info()["workers"]) if client is not None else 1
        rows = _job_rows(model, arrays, plan, workers)
        with _staged(target) as tmp:
            _create_outputs(tmp, plan, rows, kind)
            N = int(arrays[0][2].shape[0])
            jobs = [(a, min(N, a + rows)) for a in range(0, N, rows)]
            spec = (str(src), [path for _, path, _ in arrays], str(tmp), plan)
            if client is None:
                done: Iterator[tuple[int, tuple[int, ...] | None]] = (
                    _zarr_job(model, spec, a, b) for a, b in jobs
                )
            else:
                done = _on_cluster(client, model, spec, jobs)
            _progress(done, N, quiet, scheduler, workers)
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _refuse_overwrite(target: Path, reads: Mapping[str, Path | None]) -> None:
    """The output must not be (or hold, or sit inside) anything this run reads."""
    for what, path in reads.items():
        if path is None:
            continue
        p = Path(path).absolute()
        same = False
        with contextlib.suppress(OSError):
            same = target.exists() and os.path.samefile(target, p)
        inside = p.resolve().is_relative_to(target.resolve()) or target.resolve().is_relative_to(
            p.resolve()
        )
        if same or inside:
            raise UsageError(
                f"-o {target} is (or holds) the {what} {path}: "
                "refusing to write over a file this run reads"
            )


def _open_inputs(model: Model, src: Path, key: str | None) -> list[tuple[str, str, Any]]:
    """(input name, array path in the store, zarr array) per model input: the
    store's root array for a one-input model, or its arrays by input name (``--key``
    picks one for a one-input model)."""
    zarr = _module("zarr")

    try:
        root = zarr.open(str(src), mode="r")
    except Exception as exc:  # zarr raises many kinds for a store it cannot read
        raise InputArrayError(f"{src}: not a readable Zarr store ({exc})") from None
    names = [i.name for i in model.inputs]
    if isinstance(root, zarr.Array):
        if key is not None:
            raise UsageError(f"--key {key}: {src} holds one array (no group to pick from)")
        if len(names) > 1:
            raise InputArrayError(
                f"{src}: one array; the model takes {len(names)} inputs: give a group with "
                f"arrays {', '.join(names)}"
            )
        return [(names[0], "", root)]
    held = sorted(root.array_keys())
    wanted = [key] if key is not None else names if len(names) > 1 or len(held) != 1 else held
    if len(wanted) != len(names):
        raise UsageError(f"--key picks one input; the model takes {', '.join(names)}")
    missing = [w for w in wanted if w not in held]
    if missing:
        raise InputArrayError(
            f"{src}: no array {', '.join(map(repr, missing))} (it holds "
            f"{', '.join(held) or 'none'}; the model takes {', '.join(names)})"
        )
    return [(n, w, root[w]) for n, w in zip(names, wanted, strict=True)]


def _plan(
    model: Model,
    arrays: list[tuple[str, str, Any]],
    kind: str,
    dtype: str,
    layer: str | None,
    gates: bool,
) -> dict[str, Any]:
    """Shapes checked; what the run writes, from one stand-in row run here."""
    from .h5out import dataset_name
    from .inputs import conform
    from .model import is_recurrent

    many = len(arrays) > 1
    for i, (name, _, a) in enumerate(arrays):
        where = f"input {name!r}" if many else "input"
        if len(a.shape) != len(model.inputs[i].shape) + 1:
            raise InputArrayError(
                f"{where}: a Zarr array of shape {a.shape}; it needs the samples axis N first"
            )
        conform(model, np.zeros((1, *a.shape[1:]), a.dtype), where, index=i)
    sizes = [int(a.shape[0]) for _, _, a in arrays]
    if len(set(sizes)) > 1:
        raise InputArrayError(
            f"the inputs hold different numbers of samples ({', '.join(map(str, sizes))})"
        )
    if sizes[0] == 0:
        raise InputArrayError(f"input: a Zarr array of shape {arrays[0][2].shape}: no samples")
    probe = [np.zeros((1, *a.shape[1:]), a.dtype) for _, _, a in arrays]
    outputs_of: frozenset[str] = frozenset()
    if kind == "forward":
        from .summary import output_names

        ys = model.forward_all(probe, dtype)
        several = len(ys) > 1
        labels = output_names(model)
        entries = [
            ("" if not several else f"output_{i}", {"name": labels[i]}, y.shape[1:], str(y.dtype))
            for i, y in enumerate(ys)
        ]
        return {
            "kind": kind,
            "dtype": dtype,
            "entries": entries,
            "gates": False,
            "of": outputs_of,
            "N": sizes[0],
        }
    keep: Callable[[str], bool] = lambda _k: True  # noqa: E731
    if layer is not None:
        node = model.node(layer)
        if not is_recurrent(node.layer):
            outputs_of = frozenset({node.key})
        keep = lambda k: k == node.key or k.startswith(node.key + "/")  # noqa: E731
    from .engine import run

    states = run(model, probe, dtype, collect=True, gates=gates, outputs_of=outputs_of).states
    if not states:
        raise UsageError(
            f"{model.source.path}: the model has no recurrent layer to trace; "
            "give --layer NAME for any layer's output"
        )
    entries = [
        (dataset_name(k), {"key": k}, v.shape[1:], str(v.dtype))
        for k, v in states.items()
        if keep(k)
    ]
    return {
        "kind": kind,
        "dtype": dtype,
        "entries": entries,
        "gates": gates,
        "of": outputs_of,
        "N": sizes[0],
    }


def _job_rows(
    model: Model, arrays: list[tuple[str, str, Any]], plan: Mapping[str, Any], workers: int
) -> int:
    """Samples per task: what the engine's memory bound allows, but at least four
    tasks per worker when N allows (so no worker waits on a last long one), rounded
    up to whole chunks of the input store (each task reads whole chunks)."""
    from .engine import chunk_rows

    first = arrays[0][2]
    N = int(first.shape[0])
    T = max(int(a.shape[1]) if len(a.shape) > 1 else 1 for _, _, a in arrays)
    D = sum(int(np.prod(a.shape[2:], dtype=np.int64)) or 1 for _, _, a in arrays)
    itemsize = np.dtype(plan["dtype"]).itemsize
    bound = chunk_rows(model, T, D, itemsize, plan["kind"] == "trace", plan["gates"])
    rows = max(1, min(bound, math.ceil(N / (4 * workers))))
    stored = max(int(a.chunks[0]) for _, _, a in arrays)
    return max(stored, math.ceil(rows / stored) * stored)


def _create_outputs(tmp: Path, plan: Mapping[str, Any], rows: int, kind: str) -> None:
    zarr = _module("zarr")

    from . import __version__

    entries = plan["entries"]
    root_is_array = kind == "forward" and entries[0][0] == ""
    if not root_is_array:
        group = zarr.open_group(str(tmp), mode="w")
        group.attrs.update({"rnninspect": __version__, "command": kind})
    for name, attrs, shape, dtype in entries:
        arr = zarr.open_array(
            str(tmp),
            mode="w" if root_is_array else "a",
            path=name or None,
            shape=(plan["N"], *shape),
            chunks=(rows, *shape),
            dtype=dtype,
        )
        arr.attrs.update(attrs)


def _zarr_job(
    model: Model, spec: tuple[str, list[str], str, Mapping[str, Any]], a: int, b: int
) -> tuple[int, tuple[int, ...] | None]:
    """Samples a..b-1: read from the input store, run, written to the output store
    (a task on a worker, or a step of the local loop). Returns (rows done, the first
    NaN/Inf in the input or None)."""
    zarr = _module("zarr")

    from .engine import iter_chunks

    source, paths, target, plan = spec
    try:
        xs = [np.asarray(zarr.open_array(source, mode="r", path=p or None)[a:b]) for p in paths]
    except OSError as exc:  # most often: a worker that does not see the store's path
        raise InputArrayError(
            f"{source}: cannot read samples {a}..{b - 1}{_on_host()} ({exc})"
        ) from None
    kind = plan["kind"]
    parts: dict[str, list[Array]] = {}
    nonfinite = None
    for _, _, result in iter_chunks(
        model,
        xs,
        plan["dtype"],
        collect=kind == "trace",
        gates=plan["gates"],
        where=f"samples {a}..{b - 1}",
        outputs_of=plan["of"],
    ):
        if result.nonfinite_at is not None and nonfinite is None:
            n, *rest = result.nonfinite_at
            nonfinite = (a + n, *rest)
        if kind == "forward":
            found = dict(zip((e[0] for e in plan["entries"]), result.outputs, strict=True))
        else:
            found = {e[0]: result.states[e[1]["key"]] for e in plan["entries"]}
        for name, value in found.items():
            parts.setdefault(name, []).append(value)
    try:
        for name, values in parts.items():
            out = zarr.open_array(target, mode="r+", path=name or None)
            out[a:b] = np.concatenate(values) if len(values) > 1 else values[0]
    except OSError as exc:
        raise OutputError(
            f"{target}: cannot write samples {a}..{b - 1}{_on_host()} ({exc})"
        ) from None
    return b - a, nonfinite


def _on_host() -> str:
    """Where a task ran, when that is not here: stores must be at the same path on
    every worker and on this machine."""
    if sys.modules.get("distributed") is None:
        return ""
    try:
        worker = sys.modules["distributed"].get_worker()
    except ValueError:
        return ""
    return f" on worker {worker.address} (do the workers see this path?)"


def _connect(address: str) -> Any:
    """A client of the scheduler at ``address``, with at least one worker."""
    dask, distributed = _module("dask"), _module("distributed")
    timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        client = distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"--scheduler {address}: cannot reach the Dask scheduler ({exc}; "
            f"waited {timeout}, distributed.comm.timeouts.connect)"
        ) from None
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"--scheduler {address}: not a scheduler address, like tcp://HOST:8786 ({exc})"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError):
        client.close()
        raise ClusterError(
            f"--scheduler {address}: the scheduler has no workers (waited {timeout})"
        ) from None
    return client


def _on_cluster(
    client: Any,
    model: Model,
    spec: tuple[str, list[str], str, Mapping[str, Any]],
    jobs: list[tuple[int, int]],
) -> Iterator[tuple[int, tuple[int, ...] | None]]:
    """The jobs as tasks, results as they finish; the model scattered once."""
    import uuid

    distributed = _module("distributed")
    as_completed, FutureCancelledError = distributed.as_completed, distributed.CancelledError

    run = uuid.uuid4().hex[:8]
    futures: list[Any] = []
    try:
        model_key = client.scatter(model, broadcast=True, hash=False)
        futures = [
            client.submit(_zarr_job, model_key, spec, a, b, key=f"rnninspect-{run}-{a}")
            for a, b in jobs
        ]
        for future in as_completed(futures):
            yield future.result()
    except RnnInspectError:
        raise
    except (OSError, TimeoutError, FutureCancelledError) as exc:
        raise ClusterError(f"lost the Dask cluster during the run ({exc})") from None
    except Exception as exc:
        if type(exc).__name__ == "KilledWorker":
            raise ClusterError(f"a Dask worker died running a chunk ({exc})") from None
        raise
    finally:
        if futures:
            with contextlib.suppress(Exception):
                client.cancel(futures)


def _progress(
    done: Iterator[tuple[int, tuple[int, ...] | None]],
    N: int,
    quiet: bool,
    scheduler: str | None,
    workers: int,
) -> None:
    """Consume the finished chunks; a bar on stderr when it is a terminal and not
    ``--quiet``; a warning for the first NaN/Inf in the input."""
    progress = None
    if not quiet and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import Progress

        progress = Progress(console=Console(stderr=True, highlight=False), transient=True)
        progress.start()
        label = "running" if scheduler is None else f"running on {workers} worker(s)"
        task = progress.add_task(label, total=N)
    first_bad: tuple[int, ...] | None = None
    try:
        for rows, bad in done:
            if bad is not None and (first_bad is None or bad < first_bad):
                first_bad = bad
            if progress is not None:
                progress.advance(task, rows)
    finally:
        if progress is not None:
            progress.stop()
    if first_bad is not None:
        sys.stderr.write(
            f"rnninspect: warning: input has NaN/Inf, first at index {first_bad} (N, T, D)\n"
        )


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A temporary store beside ``target``, swapped into its place only when the
    run is complete; on any failure it is removed and ``target`` is untouched."""
    import shutil
    import tempfile

    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it owner-only
        _publish(tmp, target)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


RENAME_EXCHANGE = 2  # renameat2 flag (Linux >= 3.15)


def _publish(tmp: Path, target: Path) -> None:
    """``tmp`` becomes ``target``. A store already there is exchanged with it in one
    step (Linux ``renameat2``), so readers see the old store or the new one, never
    none; elsewhere the old one is moved aside first, then removed."""
    import shutil
    import tempfile

    if not target.exists() and not target.is_symlink():
        os.rename(tmp, target)
        return
    if _exchange(tmp, target):
        old = tmp  # the old store now sits at the temporary name
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
        os.rename(tmp, target)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(old)


def _exchange(a: Path, b: Path) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE)
    return int(done) == 0
