"""Checks that warn but do not stop a run (NaN/Inf in weights; the engine reports
the first NaN/Inf of each input chunk itself)."""

from __future__ import annotations

import numpy as np

from .model import Array, Model


def _where_nonfinite(a: Array) -> str:
    bad = ~np.isfinite(a)
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"{int(bad.sum())} NaN/Inf value(s), first at index {idx}"


def nonfinite_weights(model: Model) -> list[str]:
    notes = []
    for layer in model.layers:
        for name, value in layer.weights():
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                notes.append(
                    f"{model.source.path}: layer {layer.name!r} {name}: {_where_nonfinite(value)}"
                )
    return notes
