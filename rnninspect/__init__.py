"""rnninspect: inspect, run and trace Keras recurrent networks with NumPy alone.

>>> import rnninspect
>>> model = rnninspect.load_model("sample_models/seed/model.keras")
>>> y = model.forward(x)          # (N, K), equal to Keras's predict
>>> states = model.trace(x)       # {"simple_rnn": (N, T, M)}
"""

from __future__ import annotations

from .errors import (
    ExitCode,
    InputArrayError,
    ModelError,
    OutputError,
    RnnInspectError,
    UnsupportedLayerError,
    UsageError,
)
from .loaders import load_model
from .model import Model

__version__ = "0.1.0"

__all__ = [
    "ExitCode",
    "InputArrayError",
    "Model",
    "ModelError",
    "OutputError",
    "RnnInspectError",
    "UnsupportedLayerError",
    "UsageError",
    "__version__",
    "load_model",
]
