"""rnninspect: inspect, run and trace Keras recurrent networks with NumPy alone.

>>> import rnninspect
>>> model = rnninspect.load_model("sample_models/seed/model.keras")
>>> y = model.forward(x)          # (N, K), equal to Keras's predict
>>> states = model.trace(x)       # {"simple_rnn": (N, T, M)}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ExitCode,
    InputArrayError,
    ModelError,
    OutputError,
    RnnInspectError,
    UnsupportedLayerError,
    UsageError,
)

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI imports this package on every start (even for
    # --help), and loading a model needs neither module in the parent process.
    if name == "load_model":
        from .loaders import load_model

        return load_model
    if name == "Model":
        from .model import Model

        return Model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
