"""Insight: answers computed from a model's states (``diagnose``, ``explain``,
``verify``, ``diff``). Computation only; the renderers are in ``render_insight``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model import Model


def as_model(model: Model | str | Path) -> Model:
    """A loaded model, or the model in a file."""
    if isinstance(model, (str, Path)):
        from ..loaders import load_model

        return load_model(model)
    return model
