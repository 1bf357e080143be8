"""The format-neutral model: plain dataclasses holding numpy arrays.

Every loader, whatever the file family, produces a ``Model``; the engine, the summary
and the renderers only ever see this. Weights are stored in Keras's own layout and
``get_weights()`` order (row-vector convention: ``y = x @ W + b``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .summary import Summary

Array = npt.NDArray[Any]


@dataclass(kw_only=True)
class Layer:
    """One layer of the chain. ``name`` is the Keras layer name."""

    name: str
    trainable: bool = True
    parent: str | None = None  # the top-level nested model holding this layer, if any

    @property
    def class_name(self) -> str:
        """The Keras class name (``SimpleRNN``, ``Dense``, ...)."""
        return type(self).__name__

    def weights(self) -> list[tuple[str, Array]]:
        """(weight name, array) pairs in Keras ``get_weights()`` order."""
        return []


@dataclass(kw_only=True)
class InputLayer(Layer):
    """Listed only so summaries can show it as Keras does; computes nothing."""

    shape: tuple[int | None, ...]


@dataclass(kw_only=True)
class Dense(Layer):
    kernel: Array  # (in, units)
    bias: Array | None  # (units,)
    activation: str = "linear"

    @property
    def units(self) -> int:
        return int(self.kernel.shape[1])

    def weights(self) -> list[tuple[str, Array]]:
        out = [("kernel", self.kernel)]
        if self.bias is not None:
            out.append(("bias", self.bias))
        return out


@dataclass(kw_only=True)
class Embedding(Layer):
    embeddings: Array  # (V, E)
    mask_zero: bool = False

    def weights(self) -> list[tuple[str, Array]]:
        return [("embeddings", self.embeddings)]


@dataclass(kw_only=True)
class Masking(Layer):
    mask_value: float = 0.0


@dataclass(kw_only=True)
class Activation(Layer):
    activation: str = "linear"


@dataclass(kw_only=True)
class Passthrough(Layer):
    """A layer that is the identity at inference (Dropout and friends)."""

    keras_class: str

    @property
    def class_name(self) -> str:
        return self.keras_class


@dataclass(kw_only=True)
class Recurrent(Layer):
    """Fields shared by SimpleRNN, LSTM and GRU."""

    kernel: Array  # (D, g*M), g = 1 SimpleRNN, 4 LSTM, 3 GRU
    recurrent_kernel: Array  # (M, g*M)
    bias: Array | None  # (g*M,), GRU reset_after: (2, 3M)
    activation: str = "tanh"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    zero_output_for_mask: bool = False
    stateful: bool = False
    # Which output flows on to the next layer: 0 the output, 1 the final h, 2 the
    # final c (LSTM). Set from a Functional graph's tensor index with return_state.
    emit: int = 0
    GATES: ClassVar[int] = 1

    @property
    def units(self) -> int:
        return int(self.recurrent_kernel.shape[0])

    def weights(self) -> list[tuple[str, Array]]:
        out = [("kernel", self.kernel), ("recurrent_kernel", self.recurrent_kernel)]
        if self.bias is not None:
            out.append(("bias", self.bias))
        return out


@dataclass(kw_only=True)
class SimpleRNN(Recurrent):
    """``h_t = act(x_t @ Wx + h_{t-1} @ Wh + b)``; state [h]."""


@dataclass(kw_only=True)
class LSTM(Recurrent):
    """Gates stacked along the last axis in Keras's order **i, f, c, o**; states [h, c]."""

    GATES: ClassVar[int] = 4
    recurrent_activation: str = "sigmoid"


@dataclass(kw_only=True)
class GRU(Recurrent):
    """Gates in Keras's order **z, r, h**; ``reset_after`` (bias (2, 3M)) is the
    tf.keras 2 / Keras 3 default, ``reset_after=False`` (bias (3M,)) the Keras 1/2 one."""

    GATES: ClassVar[int] = 3
    recurrent_activation: str = "sigmoid"
    reset_after: bool = True


@dataclass(kw_only=True)
class Bidirectional(Layer):
    """Two recurrent layers over the same input; ``backward`` runs last step first."""

    forward: Recurrent
    backward: Recurrent
    merge_mode: str | None = "concat"  # concat | sum | ave | mul | None (two outputs)

    @property
    def return_sequences(self) -> bool:
        return self.forward.return_sequences

    def weights(self) -> list[tuple[str, Array]]:
        return [(f"forward/{n}", a) for n, a in self.forward.weights()] + [
            (f"backward/{n}", a) for n, a in self.backward.weights()
        ]


@dataclass(kw_only=True)
class TimeDistributed(Layer):
    layer: Layer

    def weights(self) -> list[tuple[str, Array]]:
        return self.layer.weights()


@dataclass(kw_only=True)
class Source:
    """Where a model came from, and what the loader had to assume."""

    path: Path
    format: str  # e.g. "keras-zip", "keras3-weights-h5", "legacy-h5", "npz"
    keras_version: str | None = None
    architecture: str = "config"  # "config" | "inferred"
    assumptions: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class Model:
    """A chain of layers with its input description.

    ``input_shape`` is the per-sample shape: ``(T, D)`` for float sequences,
    ``(T,)`` for integer ids feeding an Embedding; ``T`` may be ``None`` (variable).
    """

    name: str
    layers: list[Layer]
    input_shape: tuple[int | None, ...]
    input_dtype: str = "float32"
    input_layer: InputLayer | None = None  # set when Keras lists it in model.layers
    source: Source
    # Nested models at the top level: name -> Keras class. Their layers are inlined
    # in ``layers`` (with ``parent`` set); summaries show them as Keras does.
    containers: dict[str, str] = field(default_factory=dict)

    @property
    def recurrent_layers(self) -> list[Recurrent | Bidirectional]:
        """Layers with hidden states to trace (Bidirectional counts as one)."""
        return [layer for layer in self.layers if isinstance(layer, (Recurrent, Bidirectional))]

    @property
    def takes_ids(self) -> bool:
        return bool(self.layers) and isinstance(self.layers[0], Embedding)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        known = ", ".join(layer.name for layer in self.layers)
        from .errors import UsageError

        raise UsageError(f"no layer named {name!r} in {self.source.path} (layers: {known})")

    def forward(self, x: npt.ArrayLike, dtype: str = "float32") -> Array:
        """The model's output for a batch, as Keras's ``predict`` returns it.

        A model ending in ``Bidirectional(merge_mode=None)`` has two outputs: use
        ``forward_all``."""
        from .engine import run

        return run(self, np.asarray(x), dtype=dtype).output

    def forward_all(self, x: npt.ArrayLike, dtype: str = "float32") -> list[Array]:
        """Every output of the model (one, or two for a final unmerged Bidirectional)."""
        from .engine import run

        return run(self, np.asarray(x), dtype=dtype).outputs

    def trace(
        self, x: npt.ArrayLike, dtype: str = "float32", gates: bool = False
    ) -> dict[str, Array]:
        """Hidden states: layer name -> (N, T, M), as each recurrent layer returns
        them with ``return_sequences=True`` (processing order for go_backwards).

        Extra entries: ``<layer>/c`` (LSTM cell states), ``<layer>/forward`` and
        ``<layer>/backward`` (Bidirectional), and with ``gates`` the gate activations
        ``<layer>/i,f,g,o`` (LSTM) or ``<layer>/z,r,candidate`` (GRU)."""
        from .engine import run

        return run(self, np.asarray(x), dtype=dtype, collect=True, gates=gates).states

    def summary(self) -> Summary:
        """Parameter counts, shapes and symbols, like Keras's ``model.summary()``."""
        from .summary import summarize

        return summarize(self)
