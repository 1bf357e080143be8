"""Native ``.keras`` zip (Keras 3; tf.keras >= 2.13): ``config.json``,
``metadata.json`` and ``model.weights.h5`` (the native weights layout).

Members are read by exact name into memory and never extracted, so member names like
``../x`` cannot write anywhere.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from ..architecture import Architecture, loads_config, parse_model_config
from ..build import WeightMap
from ..errors import ModelError
from . import keras_native

# A weights member larger than this is refused rather than read into memory.
MAX_MEMBER_BYTES = 4 << 30


def _read_member(zf: zipfile.ZipFile, name: str, where: str) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ModelError(f"{where}: .keras archive has no {name}") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise ModelError(f"{where}: {name} declares {info.file_size} bytes; refused")
    try:
        with zf.open(info) as fh:
            data = fh.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{where}: cannot read {name} from the archive ({exc})") from exc
    return data


def read_config(zf: zipfile.ZipFile, where: str) -> dict[str, Any]:
    return loads_config(_read_member(zf, "config.json", where), f"{where} (config.json)")


def keras_version(zf: zipfile.ZipFile, where: str) -> str | None:
    if "metadata.json" not in zf.namelist():
        return None
    try:
        meta = json.loads(_read_member(zf, "metadata.json", where))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    version = meta.get("keras_version") if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def load(
    zf: zipfile.ZipFile, path: Path, size: int, arch: Architecture | None
) -> tuple[Architecture, WeightMap, str | None]:
    import h5py

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
    try:
        with h5py.File(io.BytesIO(data), "r") as h5:
            weights = keras_native.weights_for(h5, arch, where, len(data))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{where}: model.weights.h5 in the archive is not valid HDF5 ({exc})"
        ) from exc
    return arch, weights, version
