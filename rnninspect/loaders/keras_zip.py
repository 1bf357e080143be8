"""Native ``.keras`` zip (Keras 3; tf.keras >= 2.13): ``config.json``,
``metadata.json`` and ``model.weights.h5`` (the native weights layout).

Members are read by exact name into memory and never extracted, so member names like
``../x`` cannot write anywhere.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from .. import files
from ..architecture import Architecture, loads_config, parse_model_config
from ..build import WeightMap
from ..errors import ModelError
from . import h5lite, h5util, keras_native

# A weights member larger than this is refused rather than read into memory.
MAX_MEMBER_BYTES = 4 << 30
# JSON members (config.json, metadata.json) are model configs: a few MB at most.
MAX_JSON_BYTES = files.MAX_CONFIG_BYTES
# Real weights barely compress (random-looking floats); a compressed weights member
# inflating far beyond its stored size is a zip bomb. (Keras stores members as they are.)
MAX_RATIO = 50
RATIO_FREE_BYTES = 64 << 20


def _read_member(zf: zipfile.ZipFile, name: str, where: str, cap: int = MAX_MEMBER_BYTES) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ModelError(f"{where}: .keras archive has no {name}") from None
    problem = files.member_problem(info, cap, _archive_size(zf))
    compressed = info.compress_type != zipfile.ZIP_STORED
    if (
        problem is None
        and compressed
        and info.file_size > max(RATIO_FREE_BYTES, MAX_RATIO * info.compress_size)
    ):
        problem = (
            f"inflates from {info.compress_size:,} to {info.file_size:,} bytes, "
            "far more than real model data compresses"
        )
    if problem is not None:
        raise ModelError(f"{where}: archive member {name} {problem}; refused")
    try:
        with zf.open(info) as fh:
            # At most cap + 1 bytes, whatever the member declares: the stream is
            # what counts (zipfile also stops at the declared size).
            data = fh.read(cap + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{where}: cannot read {name} from the archive ({exc})") from exc
    except NotImplementedError as exc:
        raise ModelError(f"{where}: cannot read {name} from the archive ({exc})") from exc
    if len(data) > cap:
        raise ModelError(
            f"{where}: archive member {name} holds more than {files.mib(cap)}; refused"
        )
    return data


def _archive_size(zf: zipfile.ZipFile) -> int | None:
    fp = zf.fp
    try:
        return os.fstat(fp.fileno()).st_size if fp is not None else None
    except (OSError, AttributeError, ValueError):
        return None


def read_config(zf: zipfile.ZipFile, where: str) -> dict[str, Any]:
    data = _read_member(zf, "config.json", where, MAX_JSON_BYTES)
    return loads_config(data, f"{where} (config.json)")


def keras_version(zf: zipfile.ZipFile, where: str) -> str | None:
    if "metadata.json" not in zf.namelist():
        return None
    try:
        meta = json.loads(_read_member(zf, "metadata.json", where, MAX_JSON_BYTES))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    version = meta.get("keras_version") if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def load(
    zf: zipfile.ZipFile, path: Path, size: int, arch: Architecture | None
) -> tuple[Architecture, WeightMap, str | None]:
    where = str(path)
    version = keras_version(zf, where)
    if arch is None:
        arch = parse_model_config(read_config(zf, where), where)
    names = zf.namelist()
    if "model.weights.h5" not in names:
        others = [n for n in names if n.startswith("model.weights")]
        detail = f" (found {', '.join(others)})" if others else ""
        raise ModelError(f"{where}: .keras archive has no model.weights.h5{detail}")
    data = _read_member(zf, "model.weights.h5", where)
    # h5py writes Keras weights in a subset of HDF5 that h5lite reads without
    # importing h5py (most of a short command's start-up); anything else is h5py's.
    root = h5lite.parse(data)
    try:
        if root is not None:
            with h5util.reading():
                weights = keras_native.weights_for(root, arch, where, len(data))
        else:
            import h5py

            with h5py.File(io.BytesIO(data), "r") as h5, h5util.reading():
                weights = keras_native.weights_for(h5, arch, where, len(data))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, OverflowError) as exc:
        # (OverflowError: h5py's in-memory file driver, given offsets past 2**63)
        raise ModelError(
            f"{where}: model.weights.h5 in the archive is not valid HDF5 ({exc})"
        ) from exc
    return arch, weights, version
