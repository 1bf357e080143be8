"""Reading model files: detect the family by content, dispatch to its loader.

| content                                   | loader          |
| ----------------------------------------- | --------------- |
| zip with config.json + model.weights.h5   | ``keras_zip``   |
| zip of .npy members                       | ``npz``         |
| HDF5 with root attribute model_config     | ``legacy_h5``   |
| HDF5 with root attribute layer_names(0)   | ``legacy_h5``   |
| HDF5 with root group layers/ (or vars/)   | ``keras_native``|
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import files
from ..errors import ModelError
from . import isolate

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..architecture import Architecture
    from ..build import WeightMap
    from ..model import Model, Source

# The parsing modules are imported where they are used: the parse runs in a forked
# child, so the parent (the CLI) never pays for importing them.

R = TypeVar("R")

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


def _check_file(path: Path) -> os.stat_result:
    """A model or config file that can be read, looked at without blocking: only a
    regular file is ever opened (a FIFO would block the open until someone writes to
    it; a device can be endless), and then without waiting (O_NONBLOCK), in case it
    was swapped for one in between."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ModelError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:  # a name too long, a loop of symlinks, ...
        raise ModelError(f"{path}: cannot open ({getattr(exc, 'strerror', None) or exc})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ModelError(f"{path}: is a directory, not a model file")
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(
            f"{path}: is {files.kind(st.st_mode)}, not a regular file; "
            "model and config files are read from regular files only"
        )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ModelError(f"{path}: cannot open ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{path}: is {files.kind(st.st_mode)}, not a regular file")
    if st.st_size == 0:
        raise ModelError(f"{path}: file is empty")
    return st


def _magic(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(8)


def load_config_file(path: str | Path) -> Architecture:
    """An architecture from ``--config``: model JSON, a ``.keras`` file's config.json,
    or an ``.npz``'s ``__config__`` entry."""
    import zipfile

    from ..architecture import loads_config, parse_model_config

    path = Path(path)
    st = _check_file(path)
    _check_config_size(path, st)
    where = str(path)
    if _magic(path).startswith(ZIP_MAGIC):
        from . import keras_zip

        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if "config.json" not in names and names and all(n.endswith(".npy") for n in names):
                    return _npz_config(path, names)
                obj = keras_zip.read_config(zf, where)
                version = keras_zip.keras_version(zf, where)
                if version and "keras_version" not in obj:
                    obj = {**obj, "keras_version": version}
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelError(f"{where}: not a readable .keras archive ({exc})") from exc
    elif _magic(path).startswith(HDF5_MAGIC):
        obj = _h5_model_config(path)
    else:
        try:
            with path.open("rb") as fh:
                text = files.read_capped(fh, MAX_CONFIG_BYTES)  # it may have grown since
        except OSError as exc:
            raise ModelError(f"{where}: cannot read ({exc.strerror or exc})") from exc
        if text is None:
            raise ModelError(
                f"{where}: more than {files.mib(MAX_CONFIG_BYTES)}, far more than a model "
                "config holds; refused"
            )
        obj = loads_config(text, where)
    # tf.keras's to_json() wraps nothing; Keras 3's does neither: both are the model dict.
    return parse_model_config(obj, where)


def _h5_model_config(path: Path) -> dict[str, Any]:
    """The architecture of a legacy full-model .h5 (its ``model_config``), given as
    --config: users pair a weights file with the full file they have."""
    import h5py

    from ..architecture import loads_config
    from . import h5util

    where = str(path)
    try:
        with h5py.File(path, "r") as h5:
            text = h5util.attr(h5, "model_config")
            version = h5util.attr(h5, "keras_version")
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{where}: not a readable HDF5 file ({exc})") from exc
    if text is None:
        raise ModelError(
            f"{where}: this .h5 holds no architecture (no model_config: it is a weights "
            f"file); {CONFIG_FORMS}"
        )
    obj = loads_config(text, where)
    if "keras_version" not in obj:
        obj = {**obj, "keras_version": version if isinstance(version, str) else "1"}
    return obj


CONFIG_FORMS = (
    "--config takes a Keras model JSON (model.to_json() output or a .keras file's "
    "config.json), a .keras file, or an .npz with a __config__ entry"
)


def _npz_config(path: Path, names: list[str]) -> Architecture:
    """``--config`` given an .npz: its ``__config__`` entry, if it has one."""
    from . import npz

    if f"{npz.CONFIG_KEY}.npy" not in names:
        raise ModelError(
            f"{path}: an .npz of arrays without a {npz.CONFIG_KEY} entry holds no "
            f"architecture; {CONFIG_FORMS}"
        )
    return npz.config_of(path)


def load_model(
    path: str | Path,
    config: str | Path | None = None,
    *,
    while_parsing: Callable[[], object] | None = None,
) -> Model:
    """Read any supported model file into a format-neutral ``Model``.

    ``config``: a Keras model JSON (``model.to_json()`` output or a ``.keras`` file's
    ``config.json``, the ``.keras`` file itself, or an ``.npz`` with a ``__config__``
    entry) giving the architecture for a weights-only file. Given with a file that
    holds its own architecture, the config's is used (Keras's ``model_from_json``
    then ``load_weights``) and ``source.assumptions`` says so.

    The file is parsed in a child process where the platform can fork: HDF5's C
    library can loop forever or crash on a corrupt file, and only a separate process
    can be stopped or can fail without taking the caller down.

    ``while_parsing``: called in this process while the child parses (before the
    parse without a child), so the caller's own preparation overlaps the parse.
    """
    path = Path(path)
    st = _check_file(path)
    if config is not None:
        _check_config_size(Path(config), _check_file(Path(config)))
    return isolate.call(
        _load_model,
        (path, config, st.st_size),
        parse_seconds(st),
        str(path),
        meanwhile=while_parsing,
    )


def parse_seconds(st: os.stat_result) -> float:
    """The parse's time limit: a base, plus time to read what the file really
    holds, capped: a sparse file claiming a terabyte gets no more than a real one
    of ``PARSE_MAX_BYTES``."""
    text = os.environ.get("RNNINSPECT_PARSE_SECONDS", "").strip()
    try:
        seconds = float(text) if text else PARSE_SECONDS
    except ValueError:
        seconds = PARSE_SECONDS
    if not seconds > 0 or seconds != seconds:
        seconds = PARSE_SECONDS
    held = min(files.allocated(st), PARSE_MAX_BYTES)
    return seconds + held / PARSE_BYTES_PER_SECOND


def _check_config_size(path: Path, st: os.stat_result) -> None:
    """A --config JSON is read whole: refuse one larger than any model config (the
    size of a .keras given as --config is its weights': its config.json member is
    checked when read)."""
    if st.st_size <= MAX_CONFIG_BYTES:
        return
    with path.open("rb") as fh:
        if fh.read(4) == ZIP_MAGIC:
            return
    raise ModelError(
        f"{path}: {st.st_size:,} bytes is far more than a model config holds "
        f"(at most {files.mib(MAX_CONFIG_BYTES)}); refused"
    )


@contextlib.contextmanager
def parser_started() -> Iterator[None]:
    """Within: the next ``load_model``'s child process is forked already and
    imports h5py and the parsers while this process does other work (the CLI: read
    its command line). On leaving, a child that got no work is ended."""
    isolate.prestart(_parser_imports)
    try:
        yield
    finally:
        isolate.discard()


def _parser_imports() -> None:
    from . import keras_zip  # noqa: F401  (and so keras_native, architecture, build)

    # A .keras file's weights need no h5py (h5lite reads them); an HDF5 file does.
    if _names_hdf5(sys.argv[1:]):
        import h5py  # noqa: F401


def _names_hdf5(args: list[str]) -> bool:
    """Does an argument (or an ``--option=value``'s value) name a regular file that
    starts with HDF5's signature? Only a guess of what the parse will need, made
    while waiting for it: a wrong guess costs time, never a result."""
    for arg in args:
        path = arg.partition("=")[2] if arg.startswith("--") else arg
        try:
            if not path or not stat.S_ISREG(os.stat(path).st_mode):
                continue
            # Without blocking, and reading only a regular file (see _check_file).
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            try:
                head = os.read(fd, 8) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
            finally:
                os.close(fd)
        except (OSError, ValueError):
            continue
        if head == HDF5_MAGIC:
            return True
    return False


# A model file that takes longer than this to parse is treated as hostile: 10 s,
# plus 1 s per 20 MB the file holds on disk, at most 60 s in all.
PARSE_SECONDS = 10.0
PARSE_BYTES_PER_SECOND = 20e6
PARSE_MAX_BYTES = 1_000_000_000
MAX_CONFIG_BYTES = files.MAX_CONFIG_BYTES


def _load_model(path: Path, config: str | Path | None, size: int) -> Model:
    # Each file's failures name that file: a broken --config is not the model's fault.
    arch = None
    if config is not None:
        arch = _naming(Path(config), lambda: load_config_file(config))
    return _naming(path, lambda: _load_file(path, size, arch))


def _load_file(path: Path, size: int, arch: Architecture | None) -> Model:
    magic = _magic(path)
    if magic.startswith(ZIP_MAGIC):
        return _load_zip(path, size, arch)
    if magic.startswith(HDF5_MAGIC):
        return _load_hdf5(path, size, arch)
    if _looks_like_json(path):
        raise ModelError(
            f"{path}: a JSON file holds no weights; if it is a Keras model config, pass it "
            f"as --config with the weights file: rnninspect summary WEIGHTS --config {path}"
        )
    raise ModelError(
        f"{path}: not a model file rnninspect can read "
        "(expected a .keras zip, an HDF5 .h5/.weights.h5, or an .npz)"
    )


def _naming(path: Path, load: Callable[[], R]) -> R:
    """``load()``, with any failure turned into a ModelError naming ``path``."""
    import zipfile  # (here, not at the top: the CLI imports this module at every start)

    try:
        return load()
    except ModelError as exc:
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from exc  # every error names its file
    except MemoryError as exc:
        raise ModelError(f"{path}: declares more data than can be held in memory") from exc
    except (
        TypeError,
        AttributeError,
        KeyError,
        ValueError,
        IndexError,
        RecursionError,
        OverflowError,
        RuntimeError,  # h5py's word for many kinds of corrupt HDF5
        EOFError,
        zipfile.BadZipFile,
    ) as exc:
        # A file shaped in a way no Keras writes: say so rather than crash.
        raise ModelError(f"{path}: malformed model file ({type(exc).__name__}: {exc})") from exc
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except NotImplementedError as exc:  # zipfile: a compression method it lacks
        raise ModelError(f"{path}: unsupported archive ({exc})") from exc


def _looks_like_json(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((b"{", b"["))


OWN_ARCHITECTURE = (
    "the file holds its own architecture; --config's is used instead, as Keras's "
    "model_from_json(config) then load_weights(file) would"
)


def _finish(arch: Architecture, weights: WeightMap, source: Source, given: bool = False) -> Model:
    """``given``: the architecture came from --config, whose Keras generation then
    decides version-dependent semantics (Keras loads weights into the config's model:
    a tf.keras weights file under a Keras 3 config computes Keras 3's hard_sigmoid)."""
    from ..build import build_model

    if arch.keras_version and (given or not source.keras_version):
        source.keras_version = arch.keras_version
    return _usable(build_model(arch, weights, source))


def text(name: str) -> str:
    """A name from a file as text that can be written anywhere: bytes that are not
    UTF-8 (HDF5 names; JSON's lone surrogate escapes) become U+FFFD."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        try:  # bytes h5py decoded as surrogates: one U+FFFD each
            return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # JSON's lone surrogate escapes
            return name.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _clean_names(model: Model) -> None:
    """Every name the model shows (tables, JSON, output keys) made writable text."""
    import dataclasses

    from ..model import Layer

    def clean(layer: Layer) -> None:
        layer.name = text(layer.name)
        if layer.parent is not None:
            layer.parent = text(layer.parent)
        for f in dataclasses.fields(layer):
            inner = getattr(layer, f.name)
            for part in inner if isinstance(inner, list) else [inner]:
                if isinstance(part, Layer):
                    clean(part)

    model.name = text(model.name)
    for layer in [*model.layers, *model.inputs]:
        clean(layer)
    model.output_names = [text(name) for name in model.output_names]
    model.containers = {text(k): text(v) for k, v in model.containers.items()}
    model.source.assumptions = [text(note) for note in model.source.assumptions]
    if model.source.keras_version is not None:
        model.source.keras_version = text(model.source.keras_version)


def _usable(model: Model) -> Model:
    """What a consistent file can still declare that no input could ever run."""
    from ..model import Embedding

    _clean_names(model)
    for layer in model.layers:
        if isinstance(layer, Embedding) and layer.embeddings.shape[0] == 0:
            raise ModelError(
                f"{model.source.path}: Embedding {layer.name!r} has an empty vocabulary "
                f"(embeddings {tuple(layer.embeddings.shape)}): no id can be looked up"
            )
    _check_sequences(model)
    return model


def _check_sequences(model: Model) -> None:
    """Layers that step through time (recurrent, Bidirectional, TimeDistributed)
    must be given sequences, (T, ...) per sample: a recurrent layer before them that
    returns only its last output (return_sequences false, or a state) leaves none.
    Keras refuses to build such a model; a config edited by hand can still declare
    one."""
    from ..model import Bidirectional, Recurrent, StackedRNN, TimeDistributed

    for node in model.nodes:
        if not isinstance(node.layer, (Recurrent, Bidirectional, StackedRNN, TimeDistributed)):
            continue
        for ref in node.inputs[:1]:
            before = model.nodes[ref.node]
            shapes = before.output_shapes
            if ref.index < len(shapes) and len(shapes[ref.index]) < 2:
                raise ModelError(
                    f"{model.source.path}: layer {node.layer.name!r} ({node.layer.class_name}) "
                    f"takes sequences, but {before.layer.name!r} ({before.layer.class_name}) "
                    "before it returns only its last step (return_sequences is false)"
                )


def _refuse_unsafe_members(names: list[str], where: str) -> None:
    """Members are never extracted, but a name escaping the archive marks a hostile file."""
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise ModelError(
                f"{where}: archive member {name!r} points outside the archive; refused"
            )


def _load_zip(path: Path, size: int, arch: Architecture | None) -> Model:
    import zipfile

    from ..model import Source

    where = str(path)
    given = arch is not None
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            _refuse_unsafe_members(names, where)
            if "config.json" in names or "model.weights.h5" in names:
                from . import keras_zip

                arch, weights, version = keras_zip.load(zf, path, size, arch)
                source = Source(path=path, format="keras", keras_version=version)
                if given and "config.json" in names:
                    source.assumptions.append(OWN_ARCHITECTURE)
                return _finish(arch, weights, source, given)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{where}: broken zip archive ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise ModelError(f"{where}: cannot read the zip archive ({exc})") from exc
    if names and all(n.endswith(".npy") for n in names):
        from . import npz

        arch, weights, notes, convention, inferred = npz.load(path, arch)
        if given and f"{npz.CONFIG_KEY}.npy" in names:
            notes.insert(0, OWN_ARCHITECTURE)
        source = Source(
            path=path,
            format=convention,
            architecture="inferred" if inferred else "config",
            assumptions=notes,
        )
        return _finish(arch, weights, source, given)
    raise ModelError(f"{where}: zip archive is neither a .keras model (no config.json) nor an .npz")


def _load_hdf5(path: Path, size: int, arch: Architecture | None) -> Model:
    import h5py

    from . import h5util

    where = str(path)
    try:
        h5 = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{where}: not a readable HDF5 file ({exc})") from exc
    with h5, h5util.reading():
        try:
            return _from_hdf5(h5, path, size, arch)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ModelError(f"{where}: broken HDF5 file ({exc})") from exc


def _from_hdf5(h5: Any, path: Path, size: int, given: Architecture | None) -> Model:
    from ..architecture import loads_config, parse_model_config
    from ..infer import infer_architecture
    from ..model import Source
    from . import h5util, keras_native, legacy_h5

    where = str(path)
    version = h5util.attr(h5, "keras_version")
    version = version if isinstance(version, str) else None
    model_config = h5util.attr(h5, "model_config", files.MAX_CONFIG_BYTES)
    if model_config is not None:
        # Legacy full save. A missing keras_version means Keras 1.
        arch = given or parse_model_config(loads_config(model_config, where), where)
        root = h5util.child(h5, "model_weights", where)
        if root is None:
            raise ModelError(f"{where}: legacy .h5 has a model_config but no model_weights")
        weights, notes = legacy_h5.weights_for(root, arch, where, size)
        if given is not None:
            notes.insert(0, OWN_ARCHITECTURE)
        source = Source(
            path=path, format="legacy-h5", keras_version=version or "1", assumptions=notes
        )
        return _finish(arch, weights, source, given is not None)
    if legacy_h5.layer_names(h5) is not None:
        fmt = "legacy-weights-h5"
        if given is not None:
            weights, notes = legacy_h5.weights_for(h5, given, where, size)
            source = Source(path=path, format=fmt, keras_version=version, assumptions=notes)
            return _finish(given, weights, source, given=True)
        groups = legacy_h5.weight_groups(h5, where, size)
        arch, weights, notes = infer_architecture(groups, ordered=True, where=where)
        source = Source(
            path=path, format=fmt, keras_version=version, architecture="inferred", assumptions=notes
        )
        return _finish(arch, weights, source)
    if keras_native.is_native(h5):
        fmt = "keras-weights-h5"
        if given is not None:
            weights = keras_native.weights_for(h5, given, where, size)
            source = Source(path=path, format=fmt, keras_version=version or "3")
            return _finish(given, weights, source, given=True)
        groups = keras_native.weight_groups(h5, where, size)
        arch, weights, notes = infer_architecture(groups, ordered=False, where=where)
        source = Source(
            path=path,
            format=fmt,
            keras_version=version or "3",
            architecture="inferred",
            assumptions=notes,
        )
        return _finish(arch, weights, source)
    if h5util.attr(h5, "nb_layers") is not None:
        raise ModelError(f"{where}: Keras 0.x weights files (nb_layers) are not supported")
    raise ModelError(f"{where}: HDF5 file is not a Keras model or weights file")
