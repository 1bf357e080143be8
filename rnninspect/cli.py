"""The ``rnninspect`` command: a thin Typer layer over the library.

Errors become messages and exit codes here and only here (``main``): the library
raises ``RnnInspectError`` subclasses, each carrying its ``ExitCode``.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import gc
import io
import os
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import numpy as np
import typer
from typer.core import TyperCommand

from . import signals
from .errors import DifferenceFoundError, ExitCode, OutputError, RnnInspectError, UsageError

EXIT_MEANINGS = {
    ExitCode.OK: "success",
    1: "internal error (a bug: report it with the --debug traceback)",
    ExitCode.USAGE: "usage error: bad option or argument, or options that clash",
    ExitCode.MODEL: "model file unreadable, inconsistent or unsupported",
    ExitCode.INPUT: "input array unreadable or not fitting the model",
    ExitCode.OUTPUT: "output cannot be written",
    ExitCode.DIFFERENT: "compared, and found different (verify, diff)",
    ExitCode.CLUSTER: "Dask scheduler unreachable, without workers, or lost (--scheduler)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}
# Each line of the epilog fits 80 columns ("\b" keeps Click from re-wrapping them).
ENVIRONMENT = {
    "RNNINSPECT_THREADS": [
        "engine threads (default: one per usable core;",
        "OPENBLAS_NUM_THREADS, OMP_NUM_THREADS as well)",
    ],
    "RNNINSPECT_DEBUG=1": ["a traceback for errors, as --debug"],
    "RNNINSPECT_PARSE_SECONDS": ["parse time limit (10 s, +1 s/20 MB, <= 60 s)"],
    "NO_COLOR": ["no colours (FORCE_COLOR: colours off a terminal)"],
    "COLUMNS": [
        "the width tables fit (default: the terminal's;",
        "no terminal at all: whole tables)",
    ],
}


def _epilog() -> str:
    codes = "\n".join(f"  {int(code):<5}{text}" for code, text in EXIT_MEANINGS.items())
    env = "\n".join(
        f"  {name if i == 0 else '':<26}{line}"
        for name, lines in ENVIRONMENT.items()
        for i, line in enumerate(lines)
    )
    return f"\b\nExit codes:\n{codes}\n\n\b\nEnvironment:\n{env}"


EPILOG = _epilog()

app = typer.Typer(
    name="rnninspect",
    help=(
        "Inspect, run and trace Keras recurrent networks with NumPy alone: "
        "summary (parameters and shapes), forward (the output, equal to Keras's "
        "predict), trace (the hidden state at every step), export (to Keras 3 or "
        "arrays) and plot (pictures).\n\n"
        "\b\nExamples:\n"
        "  rnninspect summary model.keras\n"
        "  rnninspect forward model.keras x.npy -o y.npy\n"
        "  rnninspect trace model.keras --random 1 --seed 0 --gates\n"
        "  rnninspect COMMAND -h            # each command's options and examples\n"
        '  eval "$(rnninspect completion bash)"  # Tab completion (or zsh, fish)'
    ),
    epilog=EPILOG,
    no_args_is_help=False,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEBUG = {"on": bool(os.environ.get("RNNINSPECT_DEBUG"))}
# The run's input has another T than the model was built for (its warning): a
# shape error the engine meets then is that input's fault, not a bug.
LENGTH: dict[str, str | None] = {"note": None}
USAGE = "Usage: rnninspect [OPTIONS] COMMAND [ARGS]..."


class _Command(TyperCommand):
    """Usage lines in Click's own style: ``MODEL [INPUT]`` (Typer writes ``{model}``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if getattr(param, "param_type_name", "") == "argument":
                name = param.metavar or (param.name or "").upper()
                pieces.append(name if param.required else f"[{name}]")
        return pieces


class Dtype(str, Enum):
    float32 = "float32"
    float64 = "float64"


class Format(str, Enum):
    npy = "npy"
    npz = "npz"
    csv = "csv"
    tsv = "tsv"
    txt = "txt"
    json = "json"


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


# Options shared by several commands. Placeholders in Click's style: upper case.
ModelArg = Annotated[
    Path,
    typer.Argument(
        metavar="MODEL",
        help="Model file: .keras, legacy .h5, .weights.h5 or .npz (family detected by content).",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Architecture for a weights-only file: Keras model JSON (model.to_json() output "
        "or a .keras file's config.json), a .keras file, or an .npz with __config__. Given "
        "with a full model file, it replaces the file's own architecture (with a warning).",
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show a traceback for errors.")]
InputArg = Annotated[
    str | None,
    typer.Argument(
        metavar="INPUT",
        help="Input batch: .npy (N,T,D) or (T,D); .npz (--key); .csv/.tsv/.txt (one sample, "
        "T rows of D values); '-' for stdin. Integer ids (N,T) for Embedding models. "
        "Omit with --random.",
        show_default=False,
    ),
]
KeyOpt = Annotated[
    str | None, typer.Option("--key", metavar="NAME", help="Array to use from an .npz INPUT.")
]
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
    typer.Option(
        "--random",
        metavar="N",
        help="Instead of INPUT, N samples exactly as the notebook's np.random.seed(S); "
        "X = np.random.randn(N, T, D) makes them (legacy RandomState, cast to float32). "
        "Embedding models: ids np.random.RandomState(S).randint(1, V, (N, T)).",
    ),
]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", metavar="S", help="Seed for --random (as np.random.seed).")
]
LengthOpt = Annotated[
    int | None,
    typer.Option("--length", metavar="T", help="T for --random (needed when T is variable)."),
]
SaveInputOpt = Annotated[
    Path | None,
    typer.Option(
        "--save-input",
        metavar="PATH",
        help="Write the --random input to feed the same X to Keras: .npy, .npz (key x), "
        "or .csv/.tsv/.txt for one sample.",
    ),
]
DtypeOpt = Annotated[
    Dtype,
    typer.Option(
        "--dtype", metavar="[float32|float64]", help="Compute precision (Keras uses float32)."
    ),
]
FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format",
        metavar="[npy|npz|csv|tsv|txt|json]",
        help="Format of -o where its suffix cannot say (-o -, no suffix); alone, "
        "it writes that format to stdout.",
        show_default=False,
    ),
]
FullOpt = Annotated[
    bool,
    typer.Option(
        "--full", help="Show every row and column; no eliding (a wide table is printed whole)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help="Run on a Dask cluster (tcp://HOST:8786): INPUT a Zarr store (data.zarr), -o "
        "out.zarr; both on paths the workers share. A .zarr INPUT without it runs here. "
        "Needs: pip install 'rnninspect[dask]'.",
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar (it shows only on a terminal).")
]


def _width() -> int | None:
    """The width tables must fit: COLUMNS, else the terminal's (TERM=dumb too: it
    says nothing of the width), found on stdout or, when stdout is piped (to head,
    less, a file), on stderr: the terminal its reader sits at. None with no terminal
    at all (scripts, CI): whole tables."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream.isatty():
                return os.get_terminal_size(stream.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return None


class ReaderGone(BaseException):
    """stdout's reader went away (``| head``): the run ends quietly. A BaseException,
    so neither Typer (which turns a broken pipe into exit 1) nor Rich (which exits
    with 1 itself) gets to handle it first."""


def _console(stderr: bool = False, width: int | None = None) -> Any:
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise ReaderGone

    # Without a width to fit (no terminal), never squeeze tables: they are read whole.
    return _Console(stderr=stderr, highlight=False, width=width or 4096)


@contextlib.contextmanager
def _stdout() -> Iterator[None]:
    """Writing to stdout: a reader going away ends the run quietly; any other
    failure (``> /dev/full``, stdout closed) is an output error."""
    try:
        yield
        sys.stdout.flush()
    except OSError as exc:
        _quiet_stdout()
        if exc.errno == errno.EPIPE:
            raise ReaderGone from None
        raise OutputError(f"<stdout>: cannot write ({exc.strerror or exc})") from None


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the final flush at exit has nowhere to fail (what
    the Python documentation recommends after a broken pipe)."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _show(items: Any, width: int | None = None) -> None:
    """Rich renderables printed on stdout, one after the other."""
    console = _console(width=width)
    with _stdout():
        for item in items:
            console.print(item)


def _guard(writes: dict[str, Any], reads: dict[str, Any], named: list[str] | None = None) -> None:
    """No output is a file this run reads (or another of its outputs): see
    ``files.refuse_overwrite``. ``named``: --input NAME=PATH options, read too."""
    from . import files

    for item in named or []:
        name, _, path = item.partition("=")
        reads[f"--input {name}= file"] = path or None
    files.refuse_overwrite(writes, reads)


def _colour(console: Any) -> bool:
    return console.color_system is not None and not console.no_color


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


def _run_only(
    random: Any,
    seed: Any,
    length: Any,
    named: Any,
    save_input: Any,
    fmt: Any,
    json: bool,
    full: bool,
) -> dict[str, Any]:
    """The options of forward and trace that a run on a Zarr store (--scheduler)
    does not take, by name (see ``_on_stores``)."""
    off: dict[str, Any] = {"--random": random, "--seed": seed, "--length": length}
    off |= {"--input": named, "--save-input": save_input, "--format": fmt, "--json": json}
    return off | {"--full": full}


def _guard_run(
    model: Path,
    config: Path | None,
    input: str | None,
    named: list[str] | None,
    output: Path | None,
    save_input: Path | None,
    initial_state: Path | None,
    final_state: Path | None,
) -> None:
    """Forward's and trace's files, checked before anything is read: --final-state
    is an .npz, and no output names a file the run reads (or another output)."""
    from . import outputs

    if final_state is not None:
        outputs.check_target(final_state, ("npz",))
    _guard(
        {"--output": output, "--final-state": final_state, "--save-input": save_input},
        {
            "input file": input,
            "model file": model,
            "--config file": config,
            "--initial-state file": initial_state,
        },
        named,
    )


class _InputArgs(NamedTuple):
    source: str | None
    key: str | None
    random: int | None
    seed: int | None
    length: int | None
    save: Path | None
    named: list[str] | None = None  # --input NAME=PATH, one per model input

    def check(self) -> Any:
        """Option combinations, before any work; the --save-input target."""
        given = self.source is not None or bool(self.named)
        if given == (self.random is not None):
            raise UsageError(
                "give either INPUT (or --input NAME=PATH for each input) or --random N "
                "(not both, not neither)"
            )
        if self.random is None:
            for name, value in (
                ("--seed", self.seed),
                ("--length", self.length),
                ("--save-input", self.save),
            ):
                if value is not None:
                    raise UsageError(f"{name} goes with --random (INPUT {self.source} is given)")
            return None
        if self.key is not None:
            raise UsageError("--key picks an array of an .npz INPUT; --random makes its own input")
        if self.save is None:
            return None
        if str(self.save) == "-":
            raise UsageError("--save-input -: stdout carries the results; give a file name")
        from . import outputs
        from .inputs import SAVE_FORMATS

        save = outputs.check_target(self.save, SAVE_FORMATS)
        if save.format in outputs.DELIMITERS and self.random > 1:
            raise UsageError(
                f"--save-input {self.save}: a text input holds one sample and --random "
                f"{self.random} makes {self.random}: use .npy or .npz"
            )
        return save


def _batch(m: Any, args: _InputArgs, save: Any, whole: bool = False) -> tuple[list[Any], str]:
    """The input batch, one array per model input (shape and dtype checked; values
    are checked chunk by chunk). Files and --random are read a chunk at a time as
    the engine walks them; ``whole``: read into memory (for commands that look at
    the batch other than through the engine)."""
    from . import inputs
    from .diagnostics import nonfinite_weights

    given = inputs.named_inputs(m, args.named or [])
    xs: list[Any]
    if args.random is not None:
        xs = inputs.random_inputs(m, args.random, args.seed, args.length, str(m.source.path))
        where = "--random"
        if save is not None:
            inputs.save_inputs(m, xs, save)
    else:
        where = "<stdin>" if args.source == "-" else str(args.source or "--input")
        xs = inputs.read_inputs(m, args.source, args.key, given)
    xs = [inputs.conform(m, x, _input_where(m, i, where, given), index=i) for i, x in enumerate(xs)]
    for i, x in enumerate(xs):
        note = inputs.length_note(m, x, _input_where(m, i, where, given), index=i)
        if note is not None:
            _warn(note)
            LENGTH["note"] = note
    for note in nonfinite_weights(m):
        _warn(note)
    if whole:
        xs = [np.asarray(x) for x in xs]
    return xs, where


def _input_where(m: Any, i: int, where: str, given: dict[str, str]) -> str:
    name = m.inputs[i].name
    if name in given:
        return given[name]
    return f"{where} (input {name!r})" if len(m.inputs) > 1 else where


def _chunks(
    m: Any,
    x: Any,
    where: str,
    dtype: str,
    quiet: bool,
    states: tuple[Any, Any, str] | None = None,
    **kw: Any,
) -> Any:
    """The engine's chunks, with a progress bar on stderr for long runs. ``states``:
    (initial states or None, a sink for the final states or None), see ``_states``."""
    from .engine import iter_chunks as plain

    def iter_chunks(m: Any, x: Any, **kw: Any) -> Any:
        if states is None:
            yield from plain(m, x, **kw)
            return
        from .states import iter_chunks as from_states

        initial, ends, source = states
        found = from_states(m, x, initial, ends is not None, source=source, **kw)
        for start, stop, (result, finals) in found:
            if ends is not None:
                ends.write(finals)
            yield start, stop, result

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


def _on_stores(
    kind: str,
    model: Path,
    config: Path | None,
    source: str | None,
    output: Path | None,
    key: str | None,
    dtype: Dtype,
    scheduler: str | None,
    quiet: bool,
    given: dict[str, Any],
    **options: Any,
) -> bool:
    """A run from a Zarr store to a Zarr store (``--scheduler``: on a Dask cluster)
    goes to ``distributed``; ``given``: the options that do not apply there."""

    def maybe(path: str | Path | None) -> bool:  # without importing the glue (start-up)
        text = "" if path is None else str(path).rstrip("/\\")
        return text.lower().endswith(".zarr") or (text not in ("", "-") and os.path.isdir(text))

    if scheduler is None and not (maybe(source) or maybe(output)):
        return False
    from . import distributed

    if scheduler is None and not (distributed.is_store(source) or distributed.is_store(output)):
        return False
    flags = {k: bool(v) if isinstance(v, (bool, list)) else v is not None for k, v in given.items()}
    distributed.command(
        kind,
        model_path=model,
        config=config,
        load=lambda: _load(model, config, _prepare(run=True, tables=False)),
        source=source,
        output=output,
        key=key,
        dtype=dtype.value,
        scheduler=scheduler,
        quiet=quiet,
        given=flags,
        **options,
    )
    return True


def _emit(text: str) -> None:
    with _stdout():
        sys.stdout.write(text)
        if not text.endswith("\n"):
            sys.stdout.write("\n")


def _target(
    output: Path | None, fmt: Format | None, json_out: bool, allowed: tuple[str, ...], default: str
) -> Any:
    """The ``-o``/``--format`` target (``--format`` alone: stdout), checked up front."""
    from . import outputs

    if output is None and fmt is None:
        return None
    path = output if output is not None else Path(outputs.STDOUT)
    if json_out and str(path) == outputs.STDOUT:
        raise UsageError(
            f"--json and {'-o -' if output is not None else '--format'} both write to "
            "stdout: choose one"
        )
    return outputs.check_target(path, allowed, fmt.value if fmt else None, default)


def _view_only(table: bool, **given: bool) -> None:
    """Options that shape the terminal view, given when none is printed."""
    if table:
        return
    for name, on in given.items():
        if on:
            raise UsageError(
                f"{name} shapes the terminal table, and --json / -o print none "
                "(they hold every value)"
            )


def _print(shown: list[Any], width: int | None) -> None:
    """Views printed at the terminal's width (a --full table wider than it: whole)."""
    need = max((r.width for r in shown), default=0)
    console = _console(width=None if width is None else max(width, need))
    with _stdout():
        for i, r in enumerate(shown):
            if i:
                console.print()
            for item in r.items:
                console.print(item)


SUMMARY_HELP = """Keras-style parameter summary: layers, output shapes, parameter counts, and every
weight's shape with its symbol ((D,M), (M,M), (M,), ...).

\b
Examples:
  rnninspect summary model.keras
  rnninspect summary model.keras --weights --layer simple_rnn  # Wx, Wh, bh
  rnninspect summary model.weights.h5 --config config.json  # weights only
  rnninspect summary model.keras --json | jq .total_params
"""


@app.command(
    cls=_Command,
    help=SUMMARY_HELP,
    short_help="Layers, shapes, parameters and weights, as model.summary().",
    epilog=EPILOG,
)
def summary(
    model: ModelArg,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    weights: Annotated[
        bool,
        typer.Option(
            "--weights",
            help="Also print each weight array's values, as get_weights() shows them "
            "(with --json: a values list per weight).",
        ),
    ] = False,
    layer: Annotated[
        str | None,
        typer.Option("--layer", metavar="NAME", help="Only this layer (or nested model)."),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="With --weights: every value, no eliding.")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    DEBUG["on"] |= debug
    if full and (json_out or not weights):
        why = "JSON holds every value" if json_out else "it shows every value --weights prints"
        _warn(f"--full goes with --weights in a table: {why}")
    m = _load(model, config, _prepare(run=False, tables=not json_out))
    from . import render
    from .summary import summarize

    s = summarize(m)
    if layer is not None and layer not in render.layer_names(s):
        raise UsageError(
            f"no layer named {layer!r} in {model} (layers: {', '.join(render.layer_names(s))})"
        )
    if json_out:
        _emit(render.summary_json(s, layer, values=weights))
        return
    width = _width()
    _show(render.summary_tables(s, layer, weights, full, width), width)


FORWARD_HELP = """The model's output for a batch, computed in NumPy: equal to Keras's predict.

\b
Examples:
  rnninspect forward model.keras x.npy                # a table of y
  rnninspect forward model.keras --random 3 --seed 0  # the notebook's X:
      # np.random.seed(0); X = np.random.randn(3, T, D)
  rnninspect forward model.keras --random 3 --seed 0 --save-input x.npy
  rnninspect forward model.keras x.npy -o y.npy  # .npz .csv .tsv .txt .json
  rnninspect forward model.keras x.npy --json | jq .shape
  python make_x.py | rnninspect forward model.keras - -o - --format csv
"""


InitialStateOpt = Annotated[
    Path | None,
    typer.Option(
        "--initial-state",
        metavar="PATH",
        help="Start recurrent layers from these states instead of zeros: an .npz of (N, M) "
        "arrays keyed LAYER/h, LAYER/c (LSTM), LAYER/forward/h ... (Bidirectional); "
        "keys left out start from zeros.",
    ),
]
FinalStateOpt = Annotated[
    Path | None,
    typer.Option(
        "--final-state",
        metavar="PATH",
        help="Write each recurrent layer's final states to this .npz (the --initial-state "
        "layout): pass it as --initial-state to continue the sequence.",
    ),
]


def _states(initial: Path | None, final: Path | None, N: int) -> tuple[Any, Any, str] | None:
    """The ``states`` argument of ``_chunks`` for --initial-state / --final-state."""
    if initial is None and final is None:
        return None
    from . import outputs
    from .states import read_states

    given = read_states(initial) if initial is not None else None
    ends = None
    if final is not None:
        ends = outputs.ArraySink(outputs.check_target(final, ("npz",)), N, several=True)
    return given, ends, str(initial)


def _finish_states(states: tuple[Any, Any, str] | None, ok: bool) -> None:
    sink = None if states is None else states[1]
    if sink is not None and ok:
        sink.commit()
    elif sink is not None:
        sink.abort()


@app.command(
    cls=_Command,
    help=FORWARD_HELP,
    short_help="The output for a batch, equal to Keras's predict.",
    epilog=EPILOG,
)
def forward(
    model: ModelArg,
    input: InputArg = None,
    config: ConfigOpt = None,
    key: KeyOpt = None,
    named: NamedInputsOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    save_input: SaveInputOpt = None,
    dtype: DtypeOpt = Dtype.float32,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="Write the output array: .npy, .npz (key output), .json, or .csv/.tsv/.txt "
            "(2-D); '-' for stdout (.npy unless --format says). A model with several "
            "outputs: .npz (output_0, output_1, ... in Keras's order) or .json.",
        ),
    ] = None,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
    initial_state: InitialStateOpt = None,
    final_state: FinalStateOpt = None,
    full: FullOpt = False,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    DEBUG["on"] |= debug
    from . import outputs

    off = _run_only(random, seed, length, named, save_input, fmt, json_out, full)
    off |= {"--initial-state": initial_state, "--final-state": final_state}
    if _on_stores("forward", model, config, input, output, key, dtype, scheduler, quiet, off):
        return
    args = _InputArgs(input, key, random, seed, length, save_input, named)
    save = args.check()
    target = _target(output, fmt, json_out, outputs.FORMATS, "npy")
    _guard_run(model, config, input, named, output, save_input, initial_state, final_state)
    table = target is None and not json_out
    if full and not table:
        _warn("--full shapes the terminal table; --json and -o hold every value anyway")
    m = _load(model, config, _prepare(run=True, tables=table))
    x, where = _batch(m, args, save)
    N = int(x[0].shape[0])
    keep = json_out or table  # stdout needs the whole output
    held: list[list[Any]] = []
    sink = None
    carry = _states(initial_state, final_state, N)
    done = False
    try:
        for _, _, result in _chunks(m, x, where, dtype.value, quiet, carry):
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
        done = True
    finally:
        if sink is not None:
            sink.abort()
        _finish_states(carry, done)
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

        width = _width()
        titled = [None] if len(ys) == 1 else [f"output {i} ({n})" for i, n in enumerate(names)]
        shown = [render.output_view(y, width, full, t) for y, t in zip(ys, titled, strict=True)]
        _print(shown, width)


def _output_sink(target: Any, N: int, ys: list[Any]) -> Any:
    from . import outputs

    fmt = target.format
    if len(ys) > 1 and fmt not in ("npz", "json"):
        raise OutputError(f"{target.name}: the model has {len(ys)} outputs: use .npz or .json")
    if fmt in outputs.DELIMITERS and ys[0].ndim > 2:
        raise OutputError(
            f"{target.name}: .{fmt} holds 2-D arrays; the output is {(N, *ys[0].shape[1:])}: "
            "use .npy"
        )
    return outputs.ArraySink(target, N, several=len(ys) > 1)


def _span(text: str | None, n: int, what: str, option: str) -> range | None:
    """``A:B`` (either end may be left out) or ``I`` as a range within 0..n-1."""
    if text is None:
        return None
    try:
        if ":" in text:
            a_text, _, b_text = text.partition(":")
            a = int(a_text) if a_text.strip() else 0
            b = int(b_text) if b_text.strip() else n
        else:
            a = int(text)
            b = a + 1
    except ValueError:
        raise UsageError(f"{option} {text}: expected A:B (like 0:8, 8:, :4) or one index") from None
    if not 0 <= a < b <= n:
        raise UsageError(f"{option} {text}: out of range: the layer has {n} {what} (0..{n - 1})")
    return range(a, b)


TRACE_HELP = """The hidden state at every timestep of every recurrent layer, for every sample:
(N,T,M) arrays, exactly what Keras returns with return_sequences=True.

The terminal view shows one sample of one layer as a heatmap fitted to the terminal
(fewer decimals, units as rows, or elided middle units, with a note saying how many
and how to see them).

\b
Examples:
  rnninspect trace model.keras --random 2 --seed 0 --sample 1
  rnninspect trace model.keras x.npy --gates --units 0:8  # LSTM/GRU gates
  rnninspect trace model.keras x.npy -o states.npz  # all layers and samples
  rnninspect trace model.keras x.npy --layer lstm --json | jq '.layers|keys'
  cat x.npy | rnninspect trace model.keras - -o - > states.npz
"""


@app.command(
    cls=_Command,
    help=TRACE_HELP,
    short_help="The hidden state at every step, as a heatmap.",
    epilog=EPILOG,
)
def trace(
    model: ModelArg,
    input: InputArg = None,
    config: ConfigOpt = None,
    key: KeyOpt = None,
    named: NamedInputsOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    save_input: SaveInputOpt = None,
    dtype: DtypeOpt = Dtype.float32,
    sample: Annotated[
        int | None,
        typer.Option("--sample", metavar="I", help="Sample the table shows (0-based; default 0)."),
    ] = None,
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            metavar="NAME",
            help="Layer: the one the table shows (default: the first recurrent one), the "
            "one .npy holds; with .npz/.json/--json only its entries are written. A layer "
            "without states (Dense, Embedding, attention, ...) gives its output; a shared "
            "layer's later calls are NAME#1, NAME#2, ...",
        ),
    ] = None,
    units: Annotated[
        str | None,
        typer.Option("--units", metavar="A:B", help="Units the table shows (0-based, B excluded)."),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option("--steps", metavar="A:B", help="Steps the table shows (processing order)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="Write states: .npz (one (N,T,M) array per recurrent layer, keyed by layer "
            "name, plus LSTM cell states and Bidirectional directions), .npy (the --layer "
            "layer), or .json; '-' for stdout (.npz unless --format says).",
        ),
    ] = None,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
    gates: Annotated[
        bool,
        typer.Option(
            "--gates",
            help="Also record gate activations per step: LSTM i, f, g, o; GRU z, r, candidate.",
        ),
    ] = False,
    initial_state: InitialStateOpt = None,
    final_state: FinalStateOpt = None,
    full: FullOpt = False,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    DEBUG["on"] |= debug
    from . import outputs

    off = _run_only(random, seed, length, named, save_input, fmt, json_out, full)
    off |= {"--initial-state": initial_state, "--final-state": final_state}
    off |= {"--sample": sample, "--units": units, "--steps": steps}
    stores = (model, config, input, output, key, dtype, scheduler, quiet, off)
    if _on_stores("trace", *stores, layer=layer, gates=gates):
        return
    args = _InputArgs(input, key, random, seed, length, save_input, named)
    save = args.check()
    target = _target(output, fmt, json_out, ("npz", "npy", "json", "h5"), "npz")
    if target is not None and target.format == "h5" and target.path is None:
        raise UsageError("-o -: HDF5 cannot stream to stdout; give a file name")
    _guard_run(model, config, input, named, output, save_input, initial_state, final_state)
    table = target is None and not json_out
    given = {"--sample": sample is not None, "--units": units is not None}
    _view_only(table, **given, **{"--steps": steps is not None})
    if full and not table:
        _warn("--full shapes the terminal table; --json and -o hold every value anyway")
    m = _load(model, config, _prepare(run=True, tables=table))
    from . import render
    from .engine import head_after
    from .model import GRU, LSTM, Bidirectional, is_recurrent

    recurrent = m.recurrent_layers
    nodes = m.recurrent_nodes()
    node = m.node(layer) if layer is not None else (nodes[0] if nodes else None)
    if node is None:
        raise UsageError(
            f"{model}: the model has no recurrent layer to trace; "
            "give --layer NAME for any layer's output"
        )
    chosen = node.layer
    stateful = is_recurrent(chosen)
    outputs_of = frozenset() if stateful else frozenset({node.key})
    if gates and stateful:
        scope = [chosen] if table or layer is not None else recurrent
        cells = [r.forward if isinstance(r, Bidirectional) else r for r in scope]
        if not any(isinstance(c, (LSTM, GRU)) for c in cells):
            kinds = ", ".join(f"{r.name} ({r.class_name})" for r in scope)
            verb = "has" if len(scope) == 1 else "have"
            _warn(f"--gates records LSTM and GRU gates; {kinds} {verb} none")
    x, where = _batch(m, args, save)
    N = int(x[0].shape[0])
    index = 0 if sample is None else sample
    if not 0 <= index < N:
        raise UsageError(f"--sample {index} is out of range: the batch has N={N} samples")
    # The selected layer's main sequence: a Bidirectional with merge_mode=None has
    # no merged one, so its forward direction stands in.
    main_key = node.key
    if isinstance(chosen, Bidirectional) and chosen.merge_mode is None:
        main_key = f"{node.key}/forward"
    prefix = node.key + "/"

    def wanted(states: dict[str, Any]) -> dict[str, Any]:
        """What a file or JSON holds: every layer's entries, or the --layer layer's."""
        if target is not None and target.format == "npy":
            return {main_key: states[main_key]}
        if layer is None:
            return states
        return {k: v for k, v in states.items() if k == node.key or k.startswith(prefix)}

    held: dict[str, list[Any]] = {}
    sink: Any = None
    if target is not None and target.format == "h5":
        from .h5out import H5Sink

        sink = H5Sink(target.path, N)
    elif target is not None:
        sink = outputs.ArraySink(target, N, several=target.format != "npy")
    carry = _states(initial_state, final_state, N)
    done = False
    try:
        for start, stop, result in _chunks(
            m,
            x,
            where,
            dtype.value,
            quiet,
            carry,
            collect=stateful,
            gates=gates,
            outputs_of=outputs_of,
        ):
            states = result.states
            if sink is not None:
                sink.write(wanted(states))
            if json_out:
                for k, v in wanted(states).items():
                    held.setdefault(k, []).append(v)
            elif table and start <= index < stop:
                held = {k: [v[index - start : index - start + 1]] for k, v in states.items()}
        if sink is not None:
            sink.commit()
        done = True
    finally:
        if sink is not None:
            sink.abort()
        _finish_states(carry, done)
    if json_out:
        _emit(outputs.arrays_document({k: np.concatenate(v) for k, v in held.items()}))
        return
    if not table:
        return
    import dataclasses

    from .inputs import step_mask

    one = {k: v[0][0] for k, v in held.items()}  # this sample: (T, M) each
    seq = one[main_key]
    width = _width()
    if not stateful or seq.ndim != 2:
        # A layer without states (or a ConvLSTM's maps): its output, values per row.
        plain = render.StepOptions(width=width, full=full, color=_colour(_console(width=width)))
        shown = []
        for k, value in one.items():
            rows = value.reshape(1, -1) if value.ndim < 2 else value.reshape(value.shape[0], -1)
            shown.append(render.state_view(k, index, rows, plain))
        _print(shown, width)
        return
    T, M = seq.shape
    head = head_after(m, chosen) if node.call == 0 else None
    mask = step_mask(m, node.key, [a[index : index + 1] for a in x])
    probe = _console(width=width)
    opts = render.StepOptions(
        width=width,
        full=full,
        color=_colour(probe),
        units=_span(units, M, "units", "--units"),
        steps=_span(steps, T, "steps", "--steps"),
        mask=None if mask is None else mask[0],
        backwards=_backwards(chosen, main_key),
    )
    # The step's input beside the state: the model's input, when it is the layer's.
    fed = _fed_by_input(m, node)
    x_sample = None if fed is None else np.asarray(x[fed][index])
    y_steps = None if head is None else head(seq)
    shown = [render.trace_view(main_key, index, seq, x_sample, y_steps, opts)]
    for k, value in one.items():
        # LSTM cell states always; gate activations (and directions) with --gates.
        if k.startswith(prefix) and (gates or k.endswith("/c")):
            each = dataclasses.replace(opts, backwards=_backwards(chosen, k))
            shown.append(render.state_view(k, index, value, each))
    _print(shown, width)


def _fed_by_input(m: Any, node: Any) -> int | None:
    """The model input a node reads, through Masking, no-ops and an Embedding (its
    steps are then the input's), or None."""
    from .model import Embedding, InputLayer, Masking, Passthrough

    while node.inputs:
        source = m.nodes[node.inputs[0].node]
        if isinstance(source.layer, InputLayer):
            return int(m.inputs.index(source.layer))
        if not isinstance(source.layer, (Masking, Passthrough, Embedding)):
            return None
        node = source
    return None


def _backwards(layer: Any, key: str) -> bool:
    """Whether ``key``'s rows run backwards over the input (processing order)."""
    from .model import Bidirectional

    if isinstance(layer, Bidirectional):
        rest = key[len(layer.name) + 1 :]
        if rest.startswith("forward"):
            return bool(layer.forward.go_backwards)
        if rest.startswith("backward"):
            return bool(layer.backward.go_backwards)
        return False  # the merged sequence: input order
    return bool(layer.go_backwards)


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


COMPLETION_HELP = """Print the shell completion script for SHELL (bash, zsh or fish): commands,
options, choices and file names complete on Tab. (--install-completion writes
the current shell's into its startup file.)

\b
Examples:
  eval "$(rnninspect completion bash)"     # in ~/.bashrc
  eval "$(rnninspect completion zsh)"      # in ~/.zshrc, after compinit
  rnninspect completion fish > ~/.config/fish/completions/rnninspect.fish
"""


@app.command(
    cls=_Command,
    help=COMPLETION_HELP,
    short_help="Print the shell completion script (bash, zsh, fish).",
)
def completion(
    shell: Annotated[Shell, typer.Argument(metavar="SHELL", help="bash, zsh or fish.")],
) -> None:
    # Typer's own scripts (what --show-completion prints for the detected shell).
    from typer._completion_shared import get_completion_script

    script = get_completion_script(
        prog_name="rnninspect", complete_var="_RNNINSPECT_COMPLETE", shell=shell.value
    )
    typer.echo(script)


class Names(str, Enum):
    keras = "keras"
    notebook = "notebook"


@app.command(
    "export",
    cls=_Command,
    short_help="Write the model again: Keras 3 .keras, .weights.h5 or .npz.",
    epilog=EPILOG,
)
def export_cmd(
    model: ModelArg,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="Where to write: .keras (a Keras 3 archive), .weights.h5 (Keras 3 "
            "weights only, for model.load_weights) or .npz (arrays).",
            show_default=False,
        ),
    ],
    config: ConfigOpt = None,
    names: Annotated[
        Names,
        typer.Option(
            "--names",
            help=".npz keys: keras (<layer>/<weight> and the model config in __config__; "
            "reads back to the same model) or notebook (Wx, Wh, bh, Wo, bo: SimpleRNN + Dense).",
        ),
    ] = Names.keras,
    debug: DebugOpt = False,
) -> None:
    """Write the model out again, from any file rnninspect reads: as a Keras 3 .keras
    file that keras.saving.load_model opens (Keras 1/2, tf.keras, CuDNN layers and
    weights-only files with their --config upgraded), Keras 3 weights, or .npz.

    Example: rnninspect export old_model.h5 -o model.keras
    """
    DEBUG["on"] |= debug
    from . import outputs
    from .export import export, target_kind

    target_kind(output)
    outputs.check_target(output, (output.suffix.lower().lstrip("."),))
    _guard({"--output": output}, {"model file": model, "--config file": config})
    m = _load(model, config, _prepare(run=False, tables=False))
    for note in export(m, output, names.value):
        _warn(f"{model}: {note}")


class PlotKind(str, Enum):
    states = "states"
    gates = "gates"
    units = "units"
    diagnose = "diagnose"


@app.command(
    cls=_Command,
    short_help="Pictures: hidden states, gates, unit trajectories.",
    epilog=EPILOG,
)
def plot(
    model: ModelArg,
    input: InputArg = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="PATH", help="The picture: .png, .svg or .pdf (required)."
        ),
    ] = None,
    kind: Annotated[
        PlotKind,
        typer.Option(
            "--kind",
            help="states (h over steps x units, input above, Dense head below), gates "
            "(LSTM i, f, g, o, c; GRU z, r, candidate; SimpleRNN: the terms of h_t), "
            "units (chosen units over time, several samples), diagnose (needs diagnose).",
        ),
    ] = PlotKind.states,
    config: ConfigOpt = None,
    key: KeyOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            help="Recurrent layer to draw (default: the first); NAME/forward or "
            "NAME/backward for one direction of a Bidirectional.",
        ),
    ] = None,
    sample: Annotated[int, typer.Option("--sample", help="Sample to draw (0-based).")] = 0,
    units: Annotated[
        str | None,
        typer.Option("--units", help="Units for --kind units, e.g. 0,3,5 (default: 0..3)."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Draw a run: hidden states, gates or unit trajectories as a PNG, SVG or PDF
    (needs matplotlib: pip install 'rnninspect[plot]').

    Example: rnninspect plot sample_models/seed/model.keras --random 1 --seed 0 -o h.png
    """
    DEBUG["on"] |= debug
    from . import plot as pictures

    if output is None:
        raise UsageError("give the picture to write: -o OUT.png, OUT.svg or OUT.pdf")
    pictures.check_target(output)
    _guard(
        {"--output": output}, {"input file": input, "model file": model, "--config file": config}
    )
    pictures.require()
    chosen = None
    if units is not None:
        try:
            chosen = [int(u) for u in units.split(",") if u.strip()]
        except ValueError:
            raise UsageError(f"--units takes unit numbers like 0,3,5, got {units!r}") from None
    m = _load(model, config, _prepare(run=True, tables=False))
    args = _InputArgs(input, key, random, seed, length, None)
    args.check()
    xs, _ = _batch(m, args, None, whole=True)
    pictures.plot(m, xs if len(xs) > 1 else xs[0], output, kind.value, layer, sample, chosen)


# --- insight: diagnose, explain, verify, diff ---------------------------------


@app.command(
    cls=_Command,
    short_help="Gradient flow, saturation and memory of the recurrent layers.",
    epilog=EPILOG,
)
def diagnose(
    model: ModelArg,
    input: InputArg = None,
    config: ConfigOpt = None,
    key: KeyOpt = None,
    named: NamedInputsOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    save_input: SaveInputOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Why a recurrent model forgets or explodes: per recurrent layer the spectral
    radius and norm of each gate's recurrent block, gate saturation, state norms, the
    exact state Jacobian norm ||ds_T/ds_t|| over time, memory and dead units; the
    input sensitivity ||dy/dx_t||; and findings in words.

    \b
    Examples:
      rnninspect diagnose model.keras --random 16 --seed 0
      rnninspect diagnose model.keras x.npy --json | jq .findings
    """
    DEBUG["on"] |= debug
    args = _InputArgs(input, key, random, seed, length, save_input, named)
    save = args.check()
    _guard(
        {"--save-input": save_input},
        {"input file": input, "model file": model, "--config file": config},
        named,
    )
    m = _load(model, config, _prepare(run=True, tables=not json_out))
    xs, _ = _batch(m, args, save, whole=True)
    from . import render_insight
    from .insight.diagnose import diagnose as diagnose_model

    result = diagnose_model(m, xs[0] if len(xs) == 1 else xs)
    if json_out:
        _emit(render_insight.diagnose_json(result))
        return
    _show(render_insight.diagnose_tables(result))


@app.command(
    cls=_Command,
    short_help="Formulas, notebook lines, parameter arithmetic; one step's terms.",
    epilog=EPILOG,
)
def explain(
    model: ModelArg,
    input: InputArg = None,
    config: ConfigOpt = None,
    key: KeyOpt = None,
    named: NamedInputsOpt = None,
    random: RandomOpt = None,
    seed: SeedOpt = None,
    length: LengthOpt = None,
    save_input: SaveInputOpt = None,
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

    \b
    Examples:
      rnninspect explain model.keras
      rnninspect explain model.keras x.npy --step 3 --sample 0
      rnninspect explain model.keras x.npy --step 0 --layer bidi/backward --json
    """
    DEBUG["on"] |= debug
    _guard(
        {"--save-input": save_input},
        {"input file": input, "model file": model, "--config file": config},
        named,
    )
    m = _load(model, config, _prepare(run=step is not None, tables=not json_out))
    from . import render_insight
    from .insight import explain as insight_explain

    if step is None:
        if input is not None or random is not None or named:
            raise UsageError("INPUT, --input and --random go with --step t")
        result = insight_explain.explain(m)
        if layer is not None:
            m.layer(layer)  # a clear error for an unknown name
            result.layers = [e for e in result.layers if e.name == layer]
        if json_out:
            _emit(render_insight.explain_json(result))
            return
        _show(render_insight.explain_tables(result))
        return
    args = _InputArgs(input, key, random, seed, length, save_input, named)
    save = args.check()
    xs, _ = _batch(m, args, save, whole=True)
    found = insight_explain.explain_step(m, xs[0] if len(xs) == 1 else xs, layer, sample, step)
    if json_out:
        _emit(render_insight.explain_json(found))
        return
    _show(render_insight.step_table(found, full))


RtolOpt = Annotated[float, typer.Option("--rtol", metavar="R", help="Relative tolerance.")]
AtolOpt = Annotated[float, typer.Option("--atol", metavar="A", help="Absolute tolerance.")]
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
    return np.asarray(inputs.conform(m, inputs.read_input(source, key, ids=m.takes_ids), where))


@app.command(
    cls=_Command,
    short_help="Compare the model's outputs and states with a reference.",
    epilog=EPILOG,
)
def verify(
    model: ModelArg,
    reference: Annotated[
        Path,
        typer.Argument(
            metavar="REFERENCE",
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

    \b
    Examples:
      rnninspect verify model.keras golden.npz
      rnninspect verify model.keras y.npy --input x.npy --rtol 1e-3
      rnninspect verify model.keras golden.npz --json | jq .passed
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
        _show(render_insight.verify_tables(result))
    if not result.passed:
        failed = [c.name for c in result.checks if not c.passed]
        raise DifferenceFoundError(
            f"{reference}: {len(failed)} of {len(result.checks)} arrays out of tolerance "
            f"(rtol={rtol:g}, atol={atol:g}): {', '.join(failed)}"
        )


@app.command(
    cls=_Command,
    short_help="What differs between two models (architecture, weights, outputs).",
    epilog=EPILOG,
)
def diff(
    a: Annotated[Path, typer.Argument(metavar="A", help="First model file.", show_default=False)],
    b: Annotated[Path, typer.Argument(metavar="B", help="Second model file.", show_default=False)],
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

    \b
    Examples:
      rnninspect diff model.keras model.h5
      rnninspect diff before.weights.h5 after.weights.h5 --config config.json
      rnninspect diff a.keras b.keras --input x.npy --json
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
        _show(render_insight.diff_tables(result))
    if not result.identical:
        changed = sum(w.changed for w in result.weights)
        raise DifferenceFoundError(
            f"{a} and {b} differ: {len(result.architecture)} architecture change(s), "
            f"{changed} of {len(result.weights)} shared weight(s)"
        )


def _fail(message: str, code: int) -> int:
    with contextlib.suppress(OSError, ValueError):  # stderr itself may be unwritable
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
    if argv is None:  # the process's own command line: the process is ours to set up
        signals.standard_streams()
        signals.install()
    code = _run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        # The process ends here (argv is given only by callers that go on). Its
        # final garbage collection would walk every object NumPy, Typer and the run
        # created, about 10 ms, only to free memory that exit frees anyway.
        gc.freeze()
    raise SystemExit(code)


def _short_usage() -> int:
    """``rnninspect`` alone: what to type next, on stderr; a usage error (exit 2)."""
    sys.stderr.write(
        f"{USAGE}\n"
        "Commands: summary (parameters and shapes), forward (the output, as Keras's "
        "predict), trace (the state at every step), completion (shell completion)\n"
        "Try 'rnninspect -h' for help, 'rnninspect COMMAND -h' for a command's.\n"
    )
    return int(ExitCode.USAGE)


def _app_for(args: list[str]) -> typer.Typer:
    """The app with the one command asked for: Typer builds every command's options
    from its signature at each start (a few ms apiece), and a run needs only its own.
    Help, completion and anything unrecognised get the whole app."""
    name = next((a for a in args if not a.startswith("-")), None)
    names = [c.name or getattr(c.callback, "__name__", "") for c in app.registered_commands]
    if name not in names or "_RNNINSPECT_COMPLETE" in os.environ:
        return app
    only = copy.copy(app)
    only.registered_commands = [app.registered_commands[names.index(name)]]
    return only


def _run(args: list[str]) -> int:
    if not args and "_RNNINSPECT_COMPLETE" not in os.environ:
        return _short_usage()
    click = _click()
    exits: tuple[type[BaseException], ...] = (typer.Exit, *_exc(click.exceptions, "Exit"))
    aborts: tuple[type[BaseException], ...] = (
        typer.Abort,
        KeyboardInterrupt,
        *_exc(click.exceptions, "Abort"),
    )
    usage: tuple[type[BaseException], ...] = _exc(click.exceptions, "ClickException")
    command = typer.main.get_command(_app_for(args))
    if "--debug" in args:
        DEBUG["on"] = True
    signals.reset()
    LENGTH["note"] = None
    signals.release_collector()  # the start is over (see rnninspect.__main__)
    try:
        result = command.main(args=args, prog_name="rnninspect", standalone_mode=False)
        with _stdout():
            pass  # flushes what is left
        return result if isinstance(result, int) else 0
    except ReaderGone:
        # The reader went away (`| head -1`): stop quietly, without a traceback.
        _quiet_stdout()
        return 0
    except signals.Terminated as exc:
        return signals.report(exc)
    except DifferenceFoundError as exc:
        # A verdict, not a failure: the report is on stdout already.
        with contextlib.suppress(OSError, ValueError):
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
        code = int(getattr(exc, "exit_code", 0) or 0)
        cause = exc.__context__
        if isinstance(cause, OSError) and cause.errno == errno.EPIPE:
            _quiet_stdout()  # Click's word for a reader gone (help, completion)
            return 0
        if code == ExitCode.INTERRUPTED and isinstance(cause, KeyboardInterrupt):
            return _fail("interrupted", code)  # Typer's word for a Ctrl-C in a command
        return code
    except aborts:
        return _fail("interrupted", int(ExitCode.INTERRUPTED))
    except usage as exc:
        # Usage errors: bad option, missing argument, bad value.
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
        return _fail(message + hint, int(getattr(exc, "exit_code", 2) or 2))
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except MemoryError:
        return _fail("out of memory", 1)
    except (ValueError, IndexError) as exc:
        note = LENGTH["note"]
        if note is None or DEBUG["on"]:
            return _internal(exc)
        # Layers whose shapes hold T (Flatten, a Dot over time) cannot run over another.
        where = note.split(": T=", 1)[0]
        return _fail(
            f"{where}: the model cannot run over this many steps, only the T it was built "
            f"for ({type(exc).__name__}: {exc})",
            int(ExitCode.INPUT),
        )
    except Exception as exc:  # a bug: say so in one line unless --debug
        return _internal(exc)
    finally:
        signals.settle()


def _internal(exc: Exception) -> int:
    """A bug: said in one line unless --debug (then raised, with its traceback)."""
    if DEBUG["on"]:
        raise exc
    return _fail(
        f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)", 1
    )
