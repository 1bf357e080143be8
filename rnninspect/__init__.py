"""rnninspect: inspect, run and trace Keras recurrent networks with NumPy alone.

>>> import rnninspect
>>> model = rnninspect.load_model("sample_models/seed/model.keras")
>>> y = model.forward(x)          # (N, K), equal to Keras's predict
>>> states = model.trace(x)       # {"simple_rnn": (N, T, M)}
>>> report = rnninspect.diagnose(model, x)   # spectra, saturation, exact state Jacobians
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    DifferenceFoundError,
    ExitCode,
    InputArrayError,
    ModelError,
    OutputError,
    RnnInspectError,
    UnsupportedLayerError,
    UsageError,
)

if TYPE_CHECKING:
    from .insight.diagnose import diagnose
    from .insight.diff import diff
    from .insight.verify import verify
    from .loaders import load_model
    from .model import Model

__version__ = "0.1.0"

__all__ = [
    "DifferenceFoundError",
    "ExitCode",
    "InputArrayError",
    "Model",
    "ModelError",
    "OutputError",
    "RnnInspectError",
    "UnsupportedLayerError",
    "UsageError",
    "__version__",
    "diagnose",
    "diff",
    "load_model",
    "verify",
]

_INSIGHT = frozenset({"diagnose", "diff", "verify"})  # rnninspect.insight.<name>.<name>


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI imports this package on every start (even for
    # --help), and loading a model needs neither module in the parent process.
    if name == "load_model":
        from .loaders import load_model

        return load_model
    if name == "Model":
        from .model import Model

        return Model
    if name in _INSIGHT:
        import importlib

        return getattr(importlib.import_module(f".insight.{name}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
