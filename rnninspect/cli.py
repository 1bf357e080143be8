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

from .errors import DifferenceFoundError, ExitCode, OutputError, RnnInspectError, UsageError

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
) -> tuple[Any, str]:
    """The input batch (shape and dtype checked; values are checked chunk by chunk)."""
    from . import inputs
    from .diagnostics import nonfinite_weights

    if (source is None) == (random is None):
        raise UsageError("give either INPUT or --random N (not both, not neither)")
    if random is not None:
        x = inputs.random_input(m, random, seed, length)
        where = "--random"
    else:
        if seed is not None or length is not None:
            raise UsageError("--seed and --length go with --random")
        x = inputs.read_input(source, key, ids=m.takes_ids)  # type: ignore[arg-type]
        where = "<stdin>" if source == "-" else str(source)
    x = inputs.conform(m, x, where)
    for note in nonfinite_weights(m):
        _warn(note)
    return x, where


def _chunks(m: Any, x: Any, where: str, dtype: str, quiet: bool, **kw: Any) -> Any:
    """The engine's chunks, with a progress bar on stderr for long runs."""
    from .engine import iter_chunks

    N = int(x.shape[0])
    warned = False
    show = not quiet and sys.stderr.isatty() and N * int(np.prod(x.shape[1:])) > 5_000_000
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
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    dtype: DtypeOpt = Dtype.float32,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the output array: .npy, .npz, .csv (2-D) or .json."
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
    x, where = _batch(m, input, key, random, seed, length)
    N = int(x.shape[0])
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
    if json_out:
        if len(ys) == 1:
            _emit(outputs.array_document(ys[0]))
        else:
            _emit('{"outputs": [' + ", ".join(outputs.array_document(y) for y in ys) + "]}")
    else:
        from . import render

        console = _console()
        for y in ys:
            console.print(render.output_table(y, full))


def _output_sink(target: Path, N: int, ys: list[Any]) -> Any:
    from . import outputs

    suffix = target.suffix.lower()
    if len(ys) > 1 and suffix not in (".npz", ".json"):
        # An unmerged Bidirectional ends the model: two outputs.
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
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    dtype: DtypeOpt = Dtype.float32,
    sample: Annotated[int, typer.Option("--sample", help="Sample to show (0-based).")] = 0,
    layer: Annotated[
        str | None, typer.Option("--layer", help="Recurrent layer to show (default: the first).")
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
    from .model import Bidirectional, Recurrent

    recurrent = m.recurrent_layers
    if not recurrent:
        raise UsageError(f"{model}: the model has no recurrent layer to trace")
    chosen = m.layer(layer) if layer is not None else recurrent[0]
    if not isinstance(chosen, (Recurrent, Bidirectional)):
        names = ", ".join(r.name for r in recurrent)
        raise UsageError(f"layer {chosen.name!r} is not recurrent (recurrent layers: {names})")
    x, where = _batch(m, input, key, random, seed, length)
    N = int(x.shape[0])
    if not 0 <= sample < N:
        raise UsageError(f"--sample {sample} is out of range: the batch has N={N} samples")
    # The selected layer's main sequence: a Bidirectional with merge_mode=None has
    # no merged one, so its forward direction stands in.
    main_key = chosen.name
    if isinstance(chosen, Bidirectional) and chosen.merge_mode is None:
        main_key = f"{chosen.name}/forward"
    single = target is not None and target.suffix.lower() == ".npy"
    held: dict[str, list[Any]] = {}
    sink = outputs.ArraySink(target, N, several=not single) if target is not None else None
    try:
        for start, stop, result in _chunks(
            m, x, where, dtype.value, quiet, collect=True, gates=gates
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
    head = head_after(m, chosen)
    y_steps = None if head is None else head(seq)
    backwards = isinstance(chosen, Recurrent) and chosen.go_backwards
    x_sample = np.asarray(x[sample])
    console = _console()
    console.print(render.trace_table(main_key, sample, seq, x_sample, backwards, y_steps, full))
    prefix = chosen.name + "/"
    for k, value in one.items():
        # LSTM cell states always; gate activations with --gates.
        if k.startswith(prefix) and (gates or k.endswith("/c")):
            console.print(render.state_table(k, sample, value, full))


# --- insight: diagnose, explain, verify, diff ---------------------------------


@app.command()
def diagnose(
    model: ModelArg,
    input: InputArg = None,
    config: ConfigOpt = None,
    key: KeyOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Why a recurrent model forgets or explodes: per recurrent layer the spectral
    radius and norm of each gate's recurrent block, gate saturation, state norms, the
    exact state Jacobian norm ||ds_T/ds_t|| over time, memory and dead units; the
    input sensitivity ||dy/dx_t||; and findings in words.

    Example: rnninspect diagnose sample_models/lstm/model.keras --random 16 --seed 0
    """
    DEBUG["on"] |= debug
    m = _load(model, config, _prepare(run=True, tables=not json_out))
    x, _ = _batch(m, input, key, random, seed, length)
    from . import render_insight
    from .insight.diagnose import diagnose as diagnose_model

    result = diagnose_model(m, x)
    if json_out:
        _emit(render_insight.diagnose_json(result))
        return
    console = _console()
    for item in render_insight.diagnose_tables(result):
        console.print(item)


@app.command()
def explain(
    model: ModelArg,
    input: InputArg = None,
    config: ConfigOpt = None,
    key: KeyOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            help="Only this layer; with --step the recurrent layer (NAME/backward for a "
            "Bidirectional's backward direction; default the first).",
        ),
    ] = None,
    sample: Annotated[int, typer.Option("--sample", help="Sample for --step (0-based).")] = 0,
    step: Annotated[
        int | None,
        typer.Option("--step", metavar="t", help="Show every term of processing step t."),
    ] = None,
    json_out: JsonOpt = False,
    full: FullOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Each layer as the notebook writes it: its formula with its own activations, the
    notebook's NumPy line, its parameter count as arithmetic; with --step t, every
    term of that step with its values.

    Example: rnninspect explain sample_models/seed/model.keras --random 1 --seed 0 --step 3
    """
    DEBUG["on"] |= debug
    m = _load(model, config, _prepare(run=step is not None, tables=not json_out))
    from . import render_insight
    from .insight import explain as insight_explain

    if step is None:
        if input is not None or random is not None:
            raise UsageError("INPUT and --random go with --step t")
        result = insight_explain.explain(m)
        if layer is not None:
            m.layer(layer)  # a clear error for an unknown name
            result.layers = [e for e in result.layers if e.name == layer]
        if json_out:
            _emit(render_insight.explain_json(result))
            return
        console = _console()
        for item in render_insight.explain_tables(result):
            console.print(item)
        return
    x, _ = _batch(m, input, key, random, seed, length)
    found = insight_explain.explain_step(m, x, layer, sample, step)
    if json_out:
        _emit(render_insight.explain_json(found))
        return
    console = _console()
    for item in render_insight.step_table(found, full):
        console.print(item)


RtolOpt = Annotated[float, typer.Option("--rtol", help="Relative tolerance.")]
AtolOpt = Annotated[float, typer.Option("--atol", help="Absolute tolerance.")]
CompareInputOpt = Annotated[
    str | None,
    typer.Option(
        "--input",
        metavar="X",
        help="Input batch (any INPUT form: .npy, .npz, .csv, '-').",
    ),
]


def _read_batch(m: Any, source: str, key: str | None) -> Any:
    from . import inputs

    where = "<stdin>" if source == "-" else source
    return inputs.conform(m, inputs.read_input(source, key, ids=m.takes_ids), where)


@app.command()
def verify(
    model: ModelArg,
    reference: Annotated[
        Path,
        typer.Argument(
            help="Reference: .npz with the input x, the expected output y (or y/0, ..., "
            "output, output_0, ...) and optionally state/<layer>, final/<layer>/h|c; or a "
            ".npy of the expected output, with --input.",
            show_default=False,
        ),
    ],
    input: CompareInputOpt = None,
    key: KeyOpt = None,
    config: ConfigOpt = None,
    rtol: RtolOpt = 1e-4,
    atol: AtolOpt = 1e-5,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Does the model compute what the reference says? Each array's max absolute and
    relative error, mean absolute error, values out of tolerance and the worst index.
    Exit 0 when all are within tolerance, 6 otherwise.

    Example: rnninspect verify sample_models/lstm/model.keras sample_models/lstm/golden.npz
    """
    DEBUG["on"] |= debug
    m = _load(model, config, _prepare(run=True, tables=not json_out))
    from . import render_insight
    from .insight.verify import verify as verify_model

    x = None if input is None else _read_batch(m, input, key)
    result = verify_model(m, reference, x, rtol, atol)
    if json_out:
        _emit(render_insight.verify_json(result))
    else:
        console = _console()
        for item in render_insight.verify_tables(result):
            console.print(item)
    if not result.passed:
        failed = [c.name for c in result.checks if not c.passed]
        raise DifferenceFoundError(
            f"{reference}: {len(failed)} of {len(result.checks)} arrays out of tolerance "
            f"(rtol={rtol:g}, atol={atol:g}): {', '.join(failed)}"
        )


@app.command()
def diff(
    a: Annotated[Path, typer.Argument(help="First model file.", show_default=False)],
    b: Annotated[Path, typer.Argument(help="Second model file.", show_default=False)],
    input: CompareInputOpt = None,
    key: KeyOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """What differs between two models, whatever their file formats: layers added,
    removed or configured otherwise, and for each shared weight max |a-b|, ||a-b||
    and ||a-b||/||a||; with --input, how far the outputs are apart. Exit 0 when
    identical, 6 otherwise. --config applies to both files.

    Example: rnninspect diff sample_models/seed/model.keras sample_models/seed/model.h5
    """
    DEBUG["on"] |= debug
    ma = _load(a, config, _prepare(run=input is not None, tables=not json_out))
    mb = _load(b, config, lambda: None)
    from . import render_insight
    from .insight.diff import diff as diff_models

    x = None if input is None else _read_batch(ma, input, key)
    result = diff_models(ma, mb, x)
    if json_out:
        _emit(render_insight.diff_json(result))
    else:
        console = _console()
        for item in render_insight.diff_tables(result):
            console.print(item)
    if not result.identical:
        changed = sum(w.changed for w in result.weights)
        raise DifferenceFoundError(
            f"{a} and {b} differ: {len(result.architecture)} architecture change(s), "
            f"{changed} of {len(result.weights)} shared weight(s)"
        )


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
    except DifferenceFoundError as exc:
        # A verdict, not a failure: the report is on stdout already.
        sys.stdout.flush()
        sys.stderr.write(f"rnninspect: {exc}\n")
        sys.stderr.flush()
        return int(exc.exit_code)
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
