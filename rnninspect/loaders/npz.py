"""``.npz`` weights, in two conventions (see the README):

* the notebook's names ``Wx, Wh, bh, Wo, bo``: one SimpleRNN + one Dense;
* layer-qualified keys ``<layer>/<weight>`` (``kernel``, ``recurrent_kernel``,
  ``bias``, ``embeddings``) in layer order, with an optional ``__config__`` entry
  holding the Keras model config as JSON text.

Arrays load with ``allow_pickle=False``: a pickled object array is refused.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from .. import files, npyfile
from ..architecture import Architecture, LayerSpec, loads_config, parse_model_config
from ..build import WeightMap, walk
from ..errors import ModelError
from ..infer import WeightGroup, infer_architecture
from ..model import Array

NOTEBOOK_KEYS = ("Wx", "Wh", "bh", "Wo", "bo")
# Files declaring more than this are checked from their headers before being read.
CHECK_FIRST_BYTES = 64 << 20
# Each layer's weights in get_weights() order, by name.
_WEIGHT_ORDER = {
    "kernel": 0,
    "recurrent_kernel": 1,
    "bias": 2,
    "embeddings": 0,
    "gamma": 0,
    "beta": 1,
    "moving_mean": 2,
    "moving_variance": 3,
    "alpha": 0,
    "scale": 0,
    "concat_score_weight": 1,
}
# Sub-objects of a layer, in get_weights() order: a Bidirectional's directions,
# MultiHeadAttention's projections (Keras's own names), StackedRNNCells' cells/<i>.
_PARTS = {
    "forward": 1,
    "backward": 2,
    "query": 1,
    "key": 2,
    "value": 3,
    "attention_output": 4,
    "output": 4,
}
CONFIG_KEY = "__config__"


def _members(path: Path) -> dict[str, npyfile.Member]:
    try:
        members = npyfile.zip_members(path)
    except npyfile.NpyHeaderError as exc:
        raise ModelError(f"{path}: {exc}") from None
    config = members.get(CONFIG_KEY)
    if config is not None and config.nbytes > files.MAX_CONFIG_BYTES:
        raise ModelError(
            f"{path}: {CONFIG_KEY} declares {config.nbytes:,} bytes, more than a model config "
            f"holds ({files.mib(files.MAX_CONFIG_BYTES)}); refused"
        )
    return members


def _read_all(path: Path, keys: list[str] | None = None) -> dict[str, Array]:
    where = str(path)
    try:
        with npyfile.quiet(), npyfile.load(path) as npz:
            out = {}
            for key in npz.files if keys is None else keys:
                try:
                    out[key] = npz[key]
                except ValueError as exc:
                    raise ModelError(
                        f"{where}: array {key!r} holds Python objects (pickle); refused"
                    ) from exc
            return out
    except ModelError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ModelError(f"{where}: not a readable .npz file ({exc})") from exc


def _placeholders(members: dict[str, npyfile.Member], config: Array | None) -> dict[str, Array]:
    """Arrays of the declared shapes and dtypes that hold no memory (one value,
    broadcast): enough to check every shape against the architecture."""
    out: dict[str, Array] = {}
    for key, member in members.items():
        if key == CONFIG_KEY and config is not None:
            out[key] = config
        else:
            out[key] = np.broadcast_to(np.zeros((), member.dtype), member.shape)
    return out


def _config_text(value: Array, where: str) -> str:
    not_text = ModelError(f"{where}: {CONFIG_KEY} is not valid text")
    if value.dtype.kind == "U":
        # NumPy turns any 32-bit unit into a character, even past U+10FFFF: a broken
        # str that no codec can write (its pickle to the parent fails to load). So the
        # units are checked first: code points, and no lone surrogates.
        units = np.frombuffer(
            value.tobytes(), np.dtype(np.uint32).newbyteorder(value.dtype.byteorder)
        )
        if ((units > 0x10FFFF) | ((units >= 0xD800) & (units <= 0xDFFF))).any():
            raise not_text
        return str(value.item()) if value.ndim == 0 else "".join(value.ravel().tolist())
    if value.dtype.kind == "S" or value.dtype == np.uint8:
        raw = value.tobytes() if value.dtype == np.uint8 else b"".join(value.ravel().tolist())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise not_text from None
    raise ModelError(f"{where}: {CONFIG_KEY} must be a string array holding JSON text")


def config_of(path: Path) -> Architecture:
    """The architecture in an .npz's ``__config__`` entry (``--config file.npz``)."""
    where = str(path)
    arrays = _read_all(path)
    if CONFIG_KEY not in arrays:
        raise ModelError(f"{where}: no {CONFIG_KEY} entry")
    return parse_model_config(loads_config(_config_text(arrays[CONFIG_KEY], where), where), where)


def load(
    path: Path, arch: Architecture | None
) -> tuple[Architecture, WeightMap, list[str], str, bool]:
    """Returns (architecture, weights, assumptions, convention, inferred?).

    Large files are checked from their headers first: every declared shape must fit
    the architecture before anything is inflated (a member declaring gigabytes that
    the model cannot use is refused at once)."""
    where = str(path)
    members = _members(path)
    if not members:
        raise ModelError(f"{where}: .npz file holds no arrays")
    if sum(m.nbytes for m in members.values()) > CHECK_FIRST_BYTES:
        config = _read_all(path, [CONFIG_KEY])[CONFIG_KEY] if CONFIG_KEY in members else None
        from ..build import build_model
        from ..model import Source

        dry, weights, _, convention, _ = _resolve(_placeholders(members, config), arch, where)
        build_model(
            dry, weights, Source(path=path, format=convention, keras_version=dry.keras_version)
        )
    return _resolve(_read_all(path), arch, where)


def _resolve(
    arrays: dict[str, Array], arch: Architecture | None, where: str
) -> tuple[Architecture, WeightMap, list[str], str, bool]:
    if not arrays:
        raise ModelError(f"{where}: .npz file holds no arrays")
    if arch is None and CONFIG_KEY in arrays:
        arch = parse_model_config(
            loads_config(_config_text(arrays[CONFIG_KEY], where), where), where
        )
    arrays.pop(CONFIG_KEY, None)
    if set(arrays) <= set(NOTEBOOK_KEYS) and {"Wx", "Wh", "Wo"} <= set(arrays):
        groups = [
            WeightGroup(
                "simple_rnn",
                [arrays[k] for k in ("Wx", "Wh", "bh") if k in arrays],
                ["kernel", "recurrent_kernel", "bias"][: 2 + ("bh" in arrays)],
                "SimpleRNN",
            ),
            WeightGroup(
                "dense",
                [arrays[k] for k in ("Wo", "bo") if k in arrays],
                ["kernel", "bias"][: 1 + ("bo" in arrays)],
                "Dense",
            ),
        ]
        convention = "npz-notebook"
    else:
        bad = [k for k in arrays if "/" not in k]
        if bad:
            raise ModelError(
                f"{where}: keys {', '.join(sorted(bad))} follow neither .npz convention "
                "(Wx, Wh, bh, Wo, bo; or <layer>/<weight>)"
            )
        groups = _layer_groups(arrays, where)
        convention = "npz-layers"
    if arch is None:
        inferred, found, notes = infer_architecture(groups, ordered=True, where=where)
        return inferred, found, notes, convention, True
    matched, notes = _match(arch, groups, where)
    return arch, matched, notes, convention, False


# Weight names within a layer (``Layer.weights()`` names), each ranked in Keras's
# get_weights() order: a part (a Bidirectional direction, a stacked cell, an attention
# projection) and the weight inside it.
_WEIGHT_KEY = re.compile(
    r"^(?:(forward|backward|cell_\d+|query|key|value|output)/)?"
    r"(kernel|recurrent_kernel|bias|embeddings|gamma|beta|moving_mean|moving_variance"
    r"|alpha|scale|concat_score_weight)$"
)


def _layer_groups(arrays: dict[str, Array], where: str) -> list[WeightGroup]:
    by_layer: dict[str, list[tuple[int, str, Array]]] = {}
    for key, value in arrays.items():
        layer, _, weight = key.rpartition("/")
        if weight not in _WEIGHT_ORDER:
            raise ModelError(
                f"{where}: key {key!r}: weight name {weight!r} is not one of "
                f"{', '.join(_WEIGHT_ORDER)}"
            )
        # <layer>/<part>/<weight>: a Bidirectional's forward/backward, an attention
        # layer's query/key/value/attention_output, a stacked RNN's cells/<i> (or
        # cell_<i>, as rnninspect's weights() names them).
        part = 0
        head, _, last = layer.rpartition("/")
        if head and last in _PARTS:
            layer, part = head, _PARTS[last]
            weight = f"{last}/{weight}"
        elif head.endswith("/cells") and last.isdigit():
            layer, part = head.removesuffix("/cells"), 1 + int(last)
            weight = f"cells/{last}/{weight}"
        elif head and last.startswith("cell_") and last[5:].isdigit():
            layer, part = head, 1 + int(last[5:])
            weight = f"cells/{last[5:]}/{weight}"
        rank = 100 * part + _WEIGHT_ORDER[weight.rsplit("/", 1)[-1]]
        by_layer.setdefault(layer, []).append((rank, weight, value))
    groups = []
    for layer, items in by_layer.items():
        items.sort(key=lambda item: item[0])
        groups.append(WeightGroup(layer, [a for _, _, a in items], [w for _, w, _ in items]))
    return groups


def _match(
    arch: Architecture, groups: list[WeightGroup], where: str
) -> tuple[WeightMap, list[str]]:
    by_name = {g.name: g for g in groups}
    out: dict[tuple[str, ...], list[Array]] = {}
    leaves: list[tuple[tuple[str, ...], LayerSpec]] = [
        (key, spec) for key, spec in walk(arch.layers) if spec.n_weights() > 0
    ]
    notes: list[str] = []
    if all(key[-1] in by_name or "/".join(key) in by_name for key, _ in leaves):
        for key, _ in leaves:
            group = by_name.get("/".join(key)) or by_name[key[-1]]
            out[key] = group.arrays
        return out, notes
    weighted = [g for g in groups if g.arrays]
    if len(weighted) != len(leaves):
        missing = [key[-1] for key, _ in leaves if key[-1] not in by_name]
        raise ModelError(f"{where}: no weights in the file for layer(s) {', '.join(missing)}")
    for (key, _), group in zip(leaves, weighted, strict=True):
        out[key] = group.arrays
    notes.append("layer names differ between config and .npz keys; paired in order")
    return out, notes
