"""The ``rnninspect`` command: a thin Typer layer over the library.

Errors become messages and exit codes here and only here (``main``): the library
raises ``RnnInspectError`` subclasses, each carrying its ``ExitCode``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from .errors import ExitCode, OutputError, RnnInspectError, UsageError

app = typer.Typer(
    name="rnninspect",
    help=(
        "Inspect, run and trace Keras recurrent networks with NumPy alone: "
        "summary (parameters and shapes), forward (the output, equal to Keras's "
        "predict) and trace (the hidden state at every step)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

DEBUG = {"on": bool(os.environ.get("RNNINSPECT_DEBUG"))}


class Dtype(str, Enum):
    float32 = "float32"
    float64 = "float64"


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"rnninspect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback for errors (also RNNINSPECT_DEBUG=1).")
    ] = False,
) -> None:
    if debug:
        DEBUG["on"] = True


# Options shared by several commands.
ModelArg = Annotated[
    Path,
    typer.Argument(
        help="Model file: .keras, legacy .h5, .weights.h5 or .npz (family detected by content).",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Architecture for a weights-only file: Keras model JSON (model.to_json() output "
        "or a .keras file's config.json) or a .keras file.",
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show a traceback for errors.")]
InputArg = Annotated[
    str | None,
    typer.Argument(
        help="Input batch: .npy (N,T,D) or (T,D); .npz (--key); .csv/.tsv/.txt (one sample, "
        "T rows of D values); '-' for stdin. Integer ids (N,T) for Embedding models. "
        "Omit with --random.",
        show_default=False,
    ),
]
KeyOpt = Annotated[str | None, typer.Option("--key", help="Array to use from an .npz input.")]
NamedInputsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        metavar="NAME=PATH",
        help="One model input from its own file (repeat for each input of a model with "
        "several; an .npz INPUT may instead hold one array per input name).",
    ),
]
RandomOpt = Annotated[
    int | None,
    typer.Option("--random", metavar="N", help="Use N standard-normal samples instead of INPUT."),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for --random.")]
LengthOpt = Annotated[
    int | None,
    typer.Option("--length", metavar="T", help="T for --random (needed when T is variable)."),
]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype", help="Compute precision (Keras uses float32).")]
FullOpt = Annotated[bool, typer.Option("--full", help="Show every row and column; no eliding.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output is for reading in full: never squeeze tables to 80 columns.
    width = None if stream.isatty() else 4096
    return Console(stderr=stderr, highlight=False, width=width)


def _warn(message: str) -> None:
    sys.stderr.write(f"rnninspect: warning: {message}\n")


def _load(model: Path, config: Path | None, prepare: Callable[[], None]) -> Any:
    from .loaders import load_model

    m = load_model(model, config=config, while_parsing=prepare)
    for note in m.source.assumptions:
        _warn(f"{model}: {note}")
    return m


def _prepare(run: bool, tables: bool) -> Callable[[], None]:
    """What ``_load`` does while a child process parses the model file: the imports
    the command needs next (to run the model, to print tables), which then cost no
    wall time."""

    def prepare() -> None:
        # A failure is left to the real import, to surface where it always did.
        with contextlib.suppress(Exception):
            from . import model  # noqa: F401  (the parsed model unpickles into its classes)

            if run:
                from . import blas, diagnostics, engine, inputs, outputs  # noqa: F401

                blas.controlled()  # finds the BLAS library (once; cached)
            if tables:
                import rich.console
                import rich.table
                import rich.text  # noqa: F401

                from . import render  # noqa: F401

    return prepare


def _batch(
    m: Any,
    source: str | None,
    key: str | None,
    random: int | None,
    seed: int | None,
    length: int | None,
    named: list[str] | None = None,
) -> tuple[list[Any], str]:
    """The input batch, one array per model input (shape and dtype checked; values
    are checked chunk by chunk)."""
    from . import inputs
    from .diagnostics import nonfinite_weights

    given = inputs.named_inputs(m, named or [])
    if random is not None and (source is not None or given):
        raise UsageError("give INPUT (or --input NAME=PATH) or --random N, not both")
    if random is None and source is None and not given:
        raise UsageError("give INPUT (or --input NAME=PATH for each input) or --random N")
    if random is not None:
        xs = inputs.random_inputs(m, random, seed, length)
        where = "--random"
    else:
        if seed is not None or length is not None:
            raise UsageError("--seed and --length go with --random")
        where = "<stdin>" if source == "-" else str(source or "--input")
        xs = inputs.read_inputs(m, source, key, given)
    xs = [inputs.conform(m, x, _input_where(m, i, where, given), index=i) for i, x in enumerate(xs)]
    for note in nonfinite_weights(m):
        _warn(note)
    return xs, where


def _input_where(m: Any, i: int, where: str, given: dict[str, str]) -> str:
    name = m.inputs[i].name
    if name in given:
        return given[name]
    return f"{where} (input {name!r})" if len(m.inputs) > 1 else where


def _chunks(m: Any, x: Any, where: str, dtype: str, quiet: bool, **kw: Any) -> Any:
    """The engine's chunks, with a progress bar on stderr for long runs."""
    from .engine import iter_chunks

    N = int(x[0].shape[0])
    warned = False
    size = sum(int(np.prod(a.shape)) for a in x)
    show = not quiet and sys.stderr.isatty() and size > 5_000_000
    progress = None
    if show:
        from rich.progress import Progress

        progress = Progress(console=_console(stderr=True), transient=True)
        progress.start()
        task = progress.add_task("running", total=N)
    try:
        for start, stop, result in iter_chunks(m, x, dtype=dtype, where=where, **kw):
            if result.nonfinite_at is not None and not warned:
                warned = True
                _warn(f"{where}: input has NaN/Inf, first at index {result.nonfinite_at} (N, T, D)")
            if progress is not None:
                progress.update(task, completed=stop)
            yield start, stop, result
    finally:
        if progress is not None:
            progress.stop()


def _emit(text: str) -> None:
    sys.stdout.write(text)
    if not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


@app.command()
def summary(
    model: ModelArg,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    weights: Annotated[
        bool,
        typer.Option(
            "--weights", help="Also print each weight array's values, as get_weights() shows them."
        ),
    ] = False,
    layer: Annotated[str | None, typer.Option("--layer", help="Only this layer.")] = None,
    full: FullOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Keras-style parameter summary: layers, output shapes, parameter counts, and every
    weight's shape with its symbol ((D,M), (M,M), (M,), ...).

    Example: rnninspect summary sample_models/seed/model.keras
    """
    DEBUG["on"] |= debug
    m = _load(model, config, _prepare(run=False, tables=not json_out))
    from . import render

    if layer is not None:
        m.layer(layer)  # a clear error for an unknown name
    s = m.summary()
    if json_out:
        _emit(render.summary_json(s, layer))
        return
    console = _console()
    for item in render.summary_tables(s, layer, weights, full):
        console.print(item)


QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar (it shows only on a terminal).")
]


@app.command()
def forward(
    model: ModelArg,
    input: InputArg = None,
    config: ConfigOpt = None,
    key: KeyOpt = None,
    named: NamedInputsOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    dtype: DtypeOpt = Dtype.float32,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the output array: .npy, .npz, .csv (2-D) or .json. A model with "
            "several outputs: .npz (output_0, output_1, ... in Keras's order) or .json.",
        ),
    ] = None,
    json_out: JsonOpt = False,
    full: FullOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The model's output for a batch, computed in NumPy: equal to Keras's predict.

    Example: rnninspect forward sample_models/seed/model.keras --random 3 --seed 0
    """
    DEBUG["on"] |= debug
    from . import outputs

    target = outputs.check_target(output) if output is not None else None
    m = _load(model, config, _prepare(run=True, tables=target is None and not json_out))
    x, where = _batch(m, input, key, random, seed, length, named)
    N = int(x[0].shape[0])
    keep = json_out or target is None  # stdout needs the whole output
    held: list[list[Any]] = []
    sink = None
    try:
        for _, _, result in _chunks(m, x, where, dtype.value, quiet):
            ys = result.outputs
            if target is not None:
                if sink is None:
                    sink = _output_sink(target, N, ys)
                names = ["output"] if len(ys) == 1 else [f"output_{i}" for i in range(len(ys))]
                sink.write(dict(zip(names, ys, strict=True)))
            if keep:
                held.append(ys)
        if sink is not None:
            sink.commit()
    finally:
        if sink is not None:
            sink.abort()
    if not keep:
        return
    ys = [np.concatenate([part[i] for part in held]) for i in range(len(held[0]))]
    from .summary import output_names

    names = output_names(m)
    if json_out:
        if len(ys) == 1:
            _emit(outputs.array_document(ys[0]))
        else:
            docs = [outputs.named_document(n, y) for n, y in zip(names, ys, strict=True)]
            _emit('{"outputs": [' + ", ".join(docs) + "]}")
    else:
        from . import render

        console = _console()
        for i, y in enumerate(ys):
            title = None if len(ys) == 1 else f"output {i}: {names[i]}"
            console.print(render.output_table(y, full, title))


def _output_sink(target: Path, N: int, ys: list[Any]) -> Any:
    from . import outputs

    suffix = target.suffix.lower()
    if len(ys) > 1 and suffix not in (".npz", ".json"):
        raise OutputError(f"{target}: the model has {len(ys)} outputs: use .npz or .json")
    if suffix == ".csv" and ys[0].ndim > 2:
        raise OutputError(
            f"{target}: .csv holds 2-D arrays; the output is {(N, *ys[0].shape[1:])}: use .npy"
        )
    return outputs.ArraySink(target, N, several=len(ys) > 1)


@app.command()
def trace(
    model: ModelArg,
    input: InputArg = None,
    config: ConfigOpt = None,
    key: KeyOpt = None,
    named: NamedInputsOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    dtype: DtypeOpt = Dtype.float32,
    sample: Annotated[int, typer.Option("--sample", help="Sample to show (0-based).")] = 0,
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            help="Layer to show (default: the first recurrent one); a layer without states "
            "(Dense, Embedding, attention, ...) gives its output. A shared layer's later "
            "calls are NAME#1, NAME#2, ...",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write states: .npz (one (N,T,M) array per recurrent layer, keyed by layer "
            "name, plus LSTM cell states and Bidirectional directions), .npy (the --layer "
            "layer), or .json.",
        ),
    ] = None,
    json_out: JsonOpt = False,
    gates: Annotated[
        bool,
        typer.Option(
            "--gates",
            help="Also record gate activations per step: LSTM i, f, g, o; GRU z, r, candidate.",
        ),
    ] = False,
    full: FullOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The hidden state at every timestep of every recurrent layer, for every sample:
    (N,T,M) arrays, exactly what Keras returns with return_sequences=True.

    Example: rnninspect trace sample_models/seed/model.keras --random 2 --seed 0
    """
    DEBUG["on"] |= debug
    from . import outputs

    allowed = (".npz", ".npy", ".json")
    target = outputs.check_target(output, allowed) if output is not None else None
    m = _load(model, config, _prepare(run=True, tables=target is None and not json_out))
    from . import render
    from .engine import head_after
    from .model import Bidirectional, InputLayer, Recurrent, is_recurrent

    recurrent = m.recurrent_nodes()
    node = m.node(layer) if layer is not None else (recurrent[0] if recurrent else None)
    if node is None:
        raise UsageError(
            f"{model}: the model has no recurrent layer to trace; "
            "give --layer NAME for any layer's output"
        )
    chosen = node.layer
    stateful = is_recurrent(chosen)
    outputs_of = frozenset() if stateful else frozenset({node.key})
    x, where = _batch(m, input, key, random, seed, length, named)
    N = int(x[0].shape[0])
    if not 0 <= sample < N:
        raise UsageError(f"--sample {sample} is out of range: the batch has N={N} samples")
    # The selected layer's main sequence: a Bidirectional with merge_mode=None has
    # no merged one, so its forward direction stands in.
    main_key = node.key
    if isinstance(chosen, Bidirectional) and chosen.merge_mode is None:
        main_key = f"{node.key}/forward"
    single = target is not None and target.suffix.lower() == ".npy"
    held: dict[str, list[Any]] = {}
    sink = outputs.ArraySink(target, N, several=not single) if target is not None else None
    try:
        for start, stop, result in _chunks(
            m, x, where, dtype.value, quiet, collect=stateful, gates=gates, outputs_of=outputs_of
        ):
            states = result.states
            if sink is not None:
                sink.write({main_key: states[main_key]} if single else states)
            if json_out:
                for k, v in states.items():
                    held.setdefault(k, []).append(v)
            elif target is None and start <= sample < stop:
                held = {k: [v[sample - start : sample - start + 1]] for k, v in states.items()}
        if sink is not None:
            sink.commit()
    finally:
        if sink is not None:
            sink.abort()
    if json_out:
        _emit(outputs.arrays_document({k: np.concatenate(v) for k, v in held.items()}))
        return
    if target is not None:
        return
    one = {k: v[0][0] for k, v in held.items()}  # this sample: (T, M) each
    seq = one[main_key]
    console = _console()
    if not stateful or seq.ndim != 2:
        # A layer without states (or a ConvLSTM's maps): its output, as a table.
        for k, value in one.items():
            rows = value.reshape(1, -1) if value.ndim < 2 else value.reshape(value.shape[0], -1)
            console.print(render.state_table(k, sample, rows, full))
        return
    head = head_after(m, chosen) if node.call == 0 else None
    y_steps = None if head is None else head(seq)
    backwards = isinstance(chosen, Recurrent) and chosen.go_backwards
    source = m.nodes[node.inputs[0].node].layer if node.inputs else None
    feeds = isinstance(source, InputLayer)
    x_sample = np.asarray(x[m.inputs.index(source)][sample]) if feeds else None
    console.print(render.trace_table(main_key, sample, seq, x_sample, backwards, y_steps, full))
    prefix = node.key + "/"
    for k, value in one.items():
        # LSTM cell states always; gate activations with --gates.
        if k.startswith(prefix) and (gates or k.endswith("/c")):
            console.print(render.state_table(k, sample, value, full))


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"rnninspect: error: {message}\n")
    sys.stderr.flush()
    return code


def _click() -> Any:
    """Typer >= 0.20 vendors click as ``typer._click``; older Typer uses click itself."""
    try:
        from typer import _click as vendored

        return vendored
    except ImportError:  # pragma: no cover - depends on the installed Typer
        import click  # type: ignore[import-not-found,unused-ignore]

        return click


def _exc(module: Any, *names: str) -> tuple[type[BaseException], ...]:
    found = tuple(getattr(module, n) for n in names if isinstance(getattr(module, n, None), type))
    return found or (type("_Never", (Exception,), {}),)


def main(argv: list[str] | None = None) -> None:
    """Run the app, mapping every failure to one stderr line and an exit code. (The
    ``rnninspect`` command enters through ``rnninspect.__main__``, which calls this.)"""
    code = _run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        # The process ends here (argv is given only by callers that go on). Its
        # final garbage collection would walk every object NumPy, Typer and the run
        # created, about 10 ms, only to free memory that exit frees anyway.
        gc.freeze()
    raise SystemExit(code)


def _run(args: list[str]) -> int:
    click = _click()
    exits: tuple[type[BaseException], ...] = (typer.Exit, *_exc(click.exceptions, "Exit"))
    aborts: tuple[type[BaseException], ...] = (
        typer.Abort,
        KeyboardInterrupt,
        *_exc(click.exceptions, "Abort"),
    )
    usage: tuple[type[BaseException], ...] = _exc(click.exceptions, "ClickException")
    command = typer.main.get_command(app)
    if "--debug" in args:
        DEBUG["on"] = True
    try:
        result = command.main(args=args, prog_name="rnninspect", standalone_mode=False)
        sys.stdout.flush()
        return result if isinstance(result, int) else 0
    except RnnInspectError as exc:
        if DEBUG["on"]:
            import traceback

            traceback.print_exc()
        return _fail(str(exc), int(exc.exit_code))
    except exits as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except aborts:
        return _fail("interrupted", int(ExitCode.INTERRUPTED))
    except usage as exc:
        # Usage errors: bad option, missing argument, bad value.
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        return _fail(message + hint, int(getattr(exc, "exit_code", 2) or 2))
    except BrokenPipeError:
        # The reader went away (`| head -1`): stop quietly, without a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except MemoryError:
        return _fail("out of memory", 1)
    except Exception as exc:  # a bug: say so in one line unless --debug
        if DEBUG["on"]:
            raise
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)", 1
        )
