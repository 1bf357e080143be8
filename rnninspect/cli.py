"""The ``rnninspect`` command: a thin Typer layer over the library.

Errors become messages and exit codes here and only here (``main``): the library
raises ``RnnInspectError`` subclasses, each carrying its ``ExitCode``.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

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


def _load(model: Path, config: Path | None) -> Any:
    from .loaders import load_model

    m = load_model(model, config=config)
    for note in m.source.assumptions:
        _warn(f"{model}: {note}")
    return m


def _batch(
    m: Any,
    source: str | None,
    key: str | None,
    random: int | None,
    seed: int | None,
    length: int | None,
) -> Any:
    from . import inputs
    from .diagnostics import nonfinite_input, nonfinite_weights

    if (source is None) == (random is None):
        raise UsageError("give either INPUT or --random N (not both, not neither)")
    if random is not None:
        x = inputs.random_input(m, random, seed, length)
        where = "--random"
    else:
        if seed is not None or length is not None:
            raise UsageError("--seed and --length go with --random")
        x = inputs.read_input(source, key)  # type: ignore[arg-type]
        where = "<stdin>" if source == "-" else str(source)
        x = inputs.squeeze_ids(m, x)
    x = inputs.conform(m, x, where)
    for note in nonfinite_weights(m) + nonfinite_input(x, where):
        _warn(note)
    return x


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
    from . import render

    m = _load(model, config)
    if layer is not None:
        m.layer(layer)  # a clear error for an unknown name
    s = m.summary()
    if json_out:
        _emit(render.summary_json(s, layer))
        return
    console = _console()
    for item in render.summary_tables(s, layer, weights, full):
        console.print(item)


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
    debug: DebugOpt = False,
) -> None:
    """The model's output for a batch, computed in NumPy: equal to Keras's predict.

    Example: rnninspect forward sample_models/seed/model.keras --random 3 --seed 0
    """
    DEBUG["on"] |= debug
    from . import outputs, render

    target = outputs.check_target(output) if output is not None else None
    m = _load(model, config)
    x = _batch(m, input, key, random, seed, length)
    ys = m.forward_all(x, dtype=dtype.value)
    if target is not None:
        if len(ys) > 1:
            # An unmerged Bidirectional ends the model: two outputs.
            if target.suffix.lower() not in (".npz", ".json"):
                raise OutputError(f"{target}: the model has {len(ys)} outputs: use .npz or .json")
            outputs.write_arrays(target, {f"output_{i}": y for i, y in enumerate(ys)})
        else:
            if target.suffix.lower() == ".csv" and ys[0].ndim > 2:
                raise OutputError(
                    f"{target}: .csv holds 2-D arrays; the output is {ys[0].shape}: use .npy"
                )
            outputs.write_array(target, ys[0])
    if json_out:
        if len(ys) == 1:
            _emit(outputs.array_document(ys[0]))
        else:
            _emit('{"outputs": [' + ", ".join(outputs.array_document(y) for y in ys) + "]}")
    elif target is None:
        console = _console()
        for y in ys:
            console.print(render.output_table(y, full))


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
            "name), .npy (the --layer layer), or .json.",
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
    debug: DebugOpt = False,
) -> None:
    """The hidden state at every timestep of every recurrent layer, for every sample:
    (N,T,M) arrays, exactly what Keras returns with return_sequences=True.

    Example: rnninspect trace sample_models/seed/model.keras --random 2 --seed 0
    """
    DEBUG["on"] |= debug
    from . import outputs, render
    from .engine import head_after
    from .model import Bidirectional, Recurrent

    target = outputs.check_target(output, (".npz", ".npy", ".json")) if output is not None else None
    m = _load(model, config)
    recurrent = m.recurrent_layers
    if not recurrent:
        raise UsageError(f"{model}: the model has no recurrent layer to trace")
    chosen = m.layer(layer) if layer is not None else recurrent[0]
    if not isinstance(chosen, (Recurrent, Bidirectional)):
        names = ", ".join(r.name for r in recurrent)
        raise UsageError(f"layer {chosen.name!r} is not recurrent (recurrent layers: {names})")
    x = _batch(m, input, key, random, seed, length)
    if not 0 <= sample < x.shape[0]:
        raise UsageError(f"--sample {sample} is out of range: the batch has N={x.shape[0]} samples")
    states = m.trace(x, dtype=dtype.value, gates=gates)
    # The selected layer's main sequence: a Bidirectional with merge_mode=None has
    # no merged one, so its forward direction stands in.
    main_key = chosen.name if chosen.name in states else f"{chosen.name}/forward"
    if target is not None:
        if target.suffix.lower() == ".npy":
            outputs.write_array(target, states[main_key])
        else:
            outputs.write_arrays(target, states)
    if json_out:
        _emit(outputs.arrays_document(states))
        return
    if target is not None:
        return
    seq = states[main_key][sample]  # (T, M)
    head = head_after(m, chosen)
    y_steps = None if head is None else head(seq)
    backwards = isinstance(chosen, Recurrent) and chosen.go_backwards
    console = _console()
    console.print(render.trace_table(main_key, sample, seq, x[sample], backwards, y_steps, full))
    prefix = chosen.name + "/"
    for key, value in states.items():
        # LSTM cell states always; gate activations with --gates.
        if key.startswith(prefix) and (gates or key.endswith("/c")):
            console.print(render.state_table(key, sample, value[sample], full))


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
    """Entry point: run the app, mapping every failure to one stderr line and an exit code."""
    code = _run(sys.argv[1:] if argv is None else argv)
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
