"""The format-neutral model: plain dataclasses holding numpy arrays.

Every loader, whatever the file family, produces a ``Model``; the engine, the summary
and the renderers only ever see this. Weights are stored in Keras's own layout and
``get_weights()`` order (row-vector convention: ``y = x @ W + b``).
"""

from __future__ import annotations

import sys
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast, dataclass_transform

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .insight.explain import Explanation, StepExplanation
    from .stepper import Stepper
    from .summary import Summary

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]
else:  # numpy.typing is imported for mypy only (not on every start)
    import numpy

    Array = numpy.ndarray


_C = TypeVar("_C", bound=type)


@dataclass_transform(kw_only_default=True, field_specifiers=(field,))
def _record(cls: _C) -> _C:
    """``@dataclass(kw_only=True)``, with dataclass's ``__init__``, ``__repr__`` and
    ``__eq__`` written once, on ``_Record``, for every class of the model: generating
    (compiling) them for some thirty classes cost several milliseconds of every
    start, in the CLI and in its parsing child."""
    if cls.__doc__ is None:  # else dataclass makes one from the signature (slow)
        cls.__doc__ = f"Keras's {cls.__name__} layer."
    made: type = dataclass(kw_only=True, init=False, repr=False, eq=False)(cls)
    if "__post_init__" in vars(made) or any(not f.init for f in fields(made)):
        # The shared __init__ below does neither: such a class needs dataclass's own.
        raise TypeError(f"{cls.__name__}: a __post_init__ or init=False field needs @dataclass")
    return cast("_C", made)


_PLANS: dict[type, list[tuple[str, Any, Any]]] = {}


def _plan(cls: type) -> list[tuple[str, Any, Any]]:
    """(name, default, default factory) of each ``__init__`` argument of ``cls``."""
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = [(f.name, f.default, f.default_factory) for f in fields(cls) if f.init]
    return plan


class _Factory:
    def __repr__(self) -> str:
        return "<factory>"  # as dataclass's own signatures show a default_factory


class _Signature:
    """The class's ``__signature__``, made when asked (``help()``, an IDE,
    ``inspect.signature``), not at import: each field a keyword-only parameter with
    its default, as dataclass's generated ``__init__`` would show."""

    def __get__(self, obj: object, cls: type) -> Any:
        import inspect

        keyword = inspect.Parameter.KEYWORD_ONLY
        params = [
            inspect.Parameter(
                f.name,
                keyword,
                default=(
                    f.default
                    if f.default is not MISSING
                    else _Factory()
                    if f.default_factory is not MISSING
                    else inspect.Parameter.empty
                ),
                annotation=f.type,
            )
            for f in fields(cls)
            if f.init
        ]
        return inspect.Signature(params, return_annotation=None)


@_record
class _Record:
    """What ``@dataclass(kw_only=True)`` would generate for each class, written once
    (see ``_record``); tests/test_model_classes.py holds them to dataclass's own."""

    __signature__ = _Signature()  # (no annotation: not a field)

    def __init__(self, **values: Any) -> None:
        # dataclass's keyword-only __init__: each field given, else its default
        cls = type(self)
        for name, default, factory in _plan(cls):
            if name in values:
                value = values.pop(name)
            elif default is not MISSING:
                value = default
            elif factory is not MISSING:
                value = factory()
            else:
                raise TypeError(
                    f"{cls.__qualname__}.__init__() missing required keyword-only argument: "
                    f"{name!r}"
                )
            setattr(self, name, value)
        if values:
            raise TypeError(
                f"{cls.__qualname__}.__init__() got an unexpected keyword argument "
                f"{next(iter(values))!r}"
            )

    def __repr__(self) -> str:
        shown = (f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return f"{type(self).__qualname__}({', '.join(shown)})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        compared = [f.name for f in fields(self) if f.compare]
        return tuple(getattr(self, k) for k in compared) == tuple(
            getattr(other, k) for k in compared
        )


@_record
class Layer(_Record):
    """One layer of the chain. ``name`` is the Keras layer name."""

    name: str
    trainable: bool = True
    parent: str | None = None  # the top-level nested model holding this layer, if any
    # The class the file names, when it differs from what is computed
    # (``RNN(LSTMCell)`` computes as an LSTM, Keras 1's ``Merge`` as a merge layer).
    keras_class: str = ""

    @property
    def class_name(self) -> str:
        """The Keras class name (``SimpleRNN``, ``Dense``, ...)."""
        return self.keras_class or type(self).__name__

    def weights(self) -> list[tuple[str, Array]]:
        """(weight name, array) pairs in Keras ``get_weights()`` order."""
        return []

    def non_trainable(self) -> frozenset[str]:
        """Names of the weights Keras counts as non-trainable (moving statistics)."""
        return frozenset()

    def get_weights(self) -> list[Array]:
        """The arrays, as Keras's ``layer.get_weights()`` returns them: SimpleRNN
        ``[Wx (D,M), Wh (M,M), bh (M,)]``, Dense ``[Wo (M,K), bo (K,)]``, ..."""
        return [a for _, a in self.weights()]

    def count_params(self) -> int:
        return sum(int(a.size) for _, a in self.weights())


@_record
class InputLayer(Layer):
    """A model input: per-sample ``shape`` (``T`` may be None) and dtype
    (``int32`` for ids feeding an Embedding)."""

    shape: tuple[int | None, ...]
    dtype: str = "float32"
    batch: int | None = None  # a fixed batch size the config declares (stateful models)


@_record
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


@_record
class Embedding(Layer):
    embeddings: Array  # (V, E)
    mask_zero: bool = False

    def weights(self) -> list[tuple[str, Array]]:
        return [("embeddings", self.embeddings)]


@_record
class Masking(Layer):
    mask_value: float = 0.0


@_record
class Activation(Layer):
    activation: str = "linear"


@_record
class Passthrough(Layer):
    """A layer that is the identity at inference (Dropout and friends)."""


@_record
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
    stateful: bool = False  # states start at zero: no file holds them
    time_major: bool = False  # (tf.keras) input and output are (T, N, ...)
    unroll: bool = False  # the same numbers, but for a Keras quirk with go_backwards masks
    GATES: ClassVar[int] = 1
    STATES: ClassVar[int] = 1  # [h], or [h, c] for LSTM

    @property
    def units(self) -> int:
        return int(self.recurrent_kernel.shape[0])

    def weights(self) -> list[tuple[str, Array]]:
        out = [("kernel", self.kernel), ("recurrent_kernel", self.recurrent_kernel)]
        if self.bias is not None:
            out.append(("bias", self.bias))
        return out


@_record
class SimpleRNN(Recurrent):
    """``h_t = act(x_t @ Wx + h_{t-1} @ Wh + b)``; state [h]."""


@_record
class LSTM(Recurrent):
    """Gates stacked along the last axis in Keras's order **i, f, c, o**; states [h, c]."""

    GATES: ClassVar[int] = 4
    STATES: ClassVar[int] = 2
    recurrent_activation: str = "sigmoid"


@_record
class GRU(Recurrent):
    """Gates in Keras's order **z, r, h**; ``reset_after`` (bias (2, 3M)) is the
    tf.keras 2 / Keras 3 default, ``reset_after=False`` (bias (3M,)) the Keras 1/2 one."""

    GATES: ClassVar[int] = 3
    recurrent_activation: str = "sigmoid"
    reset_after: bool = True


@_record
class Bidirectional(Layer):
    """Two recurrent layers over the same input; ``backward`` runs last step first."""

    forward: Recurrent
    backward: Recurrent
    merge_mode: str | None = "concat"  # concat | sum | ave | mul | None (two outputs)

    @property
    def return_sequences(self) -> bool:
        return self.forward.return_sequences

    @property
    def return_state(self) -> bool:
        return self.forward.return_state

    def weights(self) -> list[tuple[str, Array]]:
        return [(f"forward/{n}", a) for n, a in self.forward.weights()] + [
            (f"backward/{n}", a) for n, a in self.backward.weights()
        ]


@_record
class TimeDistributed(Layer):
    layer: Layer

    def weights(self) -> list[tuple[str, Array]]:
        return self.layer.weights()


@_record
class StackedRNN(Layer):
    """``RNN(StackedRNNCells([...]))``: at every step each cell takes the previous
    cell's output; the layer returns the last cell's output (and, with
    ``return_state``, every cell's final states in order)."""

    cells: list[Recurrent]
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    zero_output_for_mask: bool = False
    stateful: bool = False

    def weights(self) -> list[tuple[str, Array]]:
        return [(f"cell_{i}/{n}", a) for i, c in enumerate(self.cells) for n, a in c.weights()]


@_record
class ConvLSTM(Layer):
    """ConvLSTM1D / ConvLSTM2D: an LSTM whose products are convolutions over
    ``rank`` spatial axes; gates i, f, c, o along the last (filters) axis."""

    rank: int  # 1 or 2
    kernel: Array  # (k..., C, 4F)
    recurrent_kernel: Array  # (k..., F, 4F)
    bias: Array | None  # (4F,)
    strides: tuple[int, ...]
    padding: str  # valid | same (the recurrent convolution is always same)
    dilation_rate: tuple[int, ...]
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False

    @property
    def filters(self) -> int:
        return int(self.kernel.shape[-1]) // 4

    def weights(self) -> list[tuple[str, Array]]:
        out = [("kernel", self.kernel), ("recurrent_kernel", self.recurrent_kernel)]
        if self.bias is not None:
            out.append(("bias", self.bias))
        return out


@_record
class Merge(Layer):
    """Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, Dot."""

    mode: str  # concatenate | add | subtract | multiply | average | maximum | minimum | dot
    axis: int = -1  # Concatenate
    axes: tuple[int, int] = (-1, -1)  # Dot, per input
    normalize: bool = False  # Dot: cosine proximity


@_record
class Plumbing(Layer):
    """Sequence plumbing without weights: ``op`` is one of repeat_vector (args (n,)),
    flatten, reshape (the target shape, -1 allowed), permute (1-based dims),
    cropping1d and zero_padding1d ((before, after)), upsampling1d ((size,))."""

    op: str
    args: tuple[int, ...] = ()


@_record
class Conv(Layer):
    """Conv1D / Conv2D, channels last: ``y = act(conv(x, kernel) + bias)``."""

    rank: int
    kernel: Array  # (k..., C // groups, F)
    bias: Array | None  # (F,)
    strides: tuple[int, ...]
    padding: str  # valid | same | causal (1-D)
    dilation_rate: tuple[int, ...]
    groups: int = 1
    activation: str = "linear"
    channels_first: bool = False

    @property
    def filters(self) -> int:
        return int(self.kernel.shape[-1])

    def weights(self) -> list[tuple[str, Array]]:
        out = [("kernel", self.kernel)]
        if self.bias is not None:
            out.append(("bias", self.bias))
        return out


@_record
class Pooling(Layer):
    """Max/average pooling over ``rank`` axes (``pool_size``/``strides``), or global
    pooling (``global_``) over all of them (GlobalAveragePooling1D uses the mask)."""

    rank: int
    op: str  # max | avg
    global_: bool = False
    pool_size: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    padding: str = "valid"
    keepdims: bool = False
    channels_first: bool = False


@_record
class BatchNormalization(Layer):
    """Inference: ``gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta``."""

    axis: int
    gamma: Array | None  # (C,) when scale
    beta: Array | None  # (C,) when center
    moving_mean: Array
    moving_variance: Array
    epsilon: float = 1e-3

    def weights(self) -> list[tuple[str, Array]]:
        out = [] if self.gamma is None else [("gamma", self.gamma)]
        out += [] if self.beta is None else [("beta", self.beta)]
        return [*out, ("moving_mean", self.moving_mean), ("moving_variance", self.moving_variance)]

    def non_trainable(self) -> frozenset[str]:
        return frozenset({"moving_mean", "moving_variance"})


@_record
class LayerNormalization(Layer):
    axes: tuple[int, ...]
    gamma: Array | None
    beta: Array | None
    epsilon: float = 1e-3
    rms_scaling: bool = False

    def weights(self) -> list[tuple[str, Array]]:
        out = [] if self.gamma is None else [("gamma", self.gamma)]
        return out + ([] if self.beta is None else [("beta", self.beta)])


@_record
class ReLU(Layer):
    max_value: float | None = None
    negative_slope: float = 0.0
    threshold: float = 0.0


@_record
class LeakyReLU(Layer):
    alpha: float = 0.3


@_record
class PReLU(Layer):
    alpha: Array  # the input's per-sample shape, 1 on shared axes

    def weights(self) -> list[tuple[str, Array]]:
        return [("alpha", self.alpha)]


@_record
class ELU(Layer):
    alpha: float = 1.0


@_record
class Softmax(Layer):
    axis: tuple[int, ...] = (-1,)


@_record
class Attention(Layer):
    """Attention (Luong: ``score`` dot or concat) and AdditiveAttention (Bahdanau:
    ``score`` additive), called on [query, value] or [query, value, key]."""

    score: str  # dot | concat | additive
    use_scale: bool = False
    scale: Array | None = None  # () for Attention, (D,) for AdditiveAttention
    concat_score_weight: Array | None = None  # ()
    causal: bool = False

    def weights(self) -> list[tuple[str, Array]]:
        out = [] if self.scale is None else [("scale", self.scale)]
        if self.concat_score_weight is not None:
            out.append(("concat_score_weight", self.concat_score_weight))
        return out


MHA_WEIGHTS = ("query", "key", "value", "output")


@_record
class MultiHeadAttention(Layer):
    """Keras's MultiHeadAttention: query/key/value projections per head
    (kernels (D, H, Kd)), scaled dot-product attention, output projection
    (kernel (H, Vd, D_out))."""

    num_heads: int
    key_dim: int
    kernels: dict[str, Array]  # query, key, value, output
    biases: dict[str, Array]  # the same keys, when use_bias
    attention_axes: tuple[int, ...] | None = None
    # Inference ignores dropout, but Keras 3 takes another code path when the config
    # has some, which treats rows with every key masked differently.
    dropout: float = 0.0

    def weights(self) -> list[tuple[str, Array]]:
        out: list[tuple[str, Array]] = []
        for part in MHA_WEIGHTS:
            out.append((f"{part}/kernel", self.kernels[part]))
            if part in self.biases:
                out.append((f"{part}/bias", self.biases[part]))
        return out


# Layers that act on each time step alone, the same way at every step: a step's output
# depends on that step's input only (the stepper runs them step by step; a mask
# passes through them unchanged).
PER_STEP_LAYERS: tuple[type[Layer], ...] = (
    Dense,
    TimeDistributed,
    Activation,
    Passthrough,
    ReLU,
    LeakyReLU,
    ELU,
    PReLU,
    Softmax,
    BatchNormalization,
    LayerNormalization,
)


@dataclass(frozen=True)
class Ref:
    """A tensor of the graph: output ``index`` of node ``node`` (its position)."""

    node: int
    index: int = 0


Shape = tuple[int | None, ...]  # per sample (no batch axis); T may be None


@_record
class Node(_Record):
    """One call of a layer (or one model input, whose layer is its InputLayer)."""

    layer: Layer
    inputs: list[Ref] = field(default_factory=list)
    states: list[Ref] = field(default_factory=list)  # initial_state of a recurrent call
    options: dict[str, Any] = field(default_factory=dict)  # non-tensor call arguments
    call: int = 0  # 0 for a layer's first call, 1, 2, ... for a shared layer's next
    output_shapes: list[Shape] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The node's name in traces: the layer's, ``name#k`` for its call k > 0."""
        return self.layer.name if self.call == 0 else f"{self.layer.name}#{self.call}"


@_record
class Source(_Record):
    """Where a model came from, and what the loader had to assume."""

    path: Path
    format: str  # e.g. "keras-zip", "keras3-weights-h5", "legacy-h5", "npz"
    keras_version: str | None = None
    architecture: str = "config"  # "config" | "inferred"
    assumptions: list[str] = field(default_factory=list)


@_record
class Model(_Record):
    """A graph of layers: ``nodes`` in topological order (inputs first), each
    taking tensors (``Ref``) that earlier nodes made; ``outputs`` in Keras's order.
    A Sequential model is the chain where each node takes the one before.

    ``layers`` lists every layer once, in Keras's order (a shared layer is one
    layer with several nodes; nested models are inlined, each layer's ``parent``
    naming its top-level container)."""

    name: str
    layers: list[Layer]
    inputs: list[InputLayer]
    nodes: list[Node]
    outputs: list[Ref]
    output_names: list[str] = field(default_factory=list)
    source: Source
    lists_input_layer: bool = False  # Keras's model.layers shows the InputLayers
    # Nested models at the top level: name -> Keras class. Summaries show them as
    # Keras does, one row each.
    containers: dict[str, str] = field(default_factory=dict)

    # Keras's model.input_shape / output_shape: with the batch axis, a list of them
    # for several inputs or outputs. Per sample: ``model.inputs[i].shape``.
    @property
    def input_shape(self) -> tuple[int | None, ...] | list[tuple[int | None, ...]]:
        shapes = [(i.batch, *i.shape) for i in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self) -> tuple[int | None, ...] | list[tuple[int | None, ...]]:
        batch = self.inputs[0].batch
        shapes = [(batch, *self.nodes[r.node].output_shapes[r.index]) for r in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_dtype(self) -> str:
        return self.inputs[0].dtype

    @property
    def takes_ids(self) -> bool:
        return self.inputs[0].dtype == "int32"

    @property
    def input_layer(self) -> InputLayer | None:
        return self.inputs[0] if self.lists_input_layer else None

    @property
    def is_chain(self) -> bool:
        """One input, one output, each node taking the node before it."""
        return (
            len(self.inputs) == 1
            and self.outputs == [Ref(len(self.nodes) - 1)]
            and all(n.inputs == [Ref(i)] and not n.states for i, n in enumerate(self.nodes[1:]))
        )

    @property
    def recurrent_layers(self) -> list[Layer]:
        """Layers with hidden states to trace (Bidirectional counts as one)."""
        return [layer for layer in self.layers if is_recurrent(layer)]

    def recurrent_nodes(self) -> list[Node]:
        """The calls of recurrent layers, in evaluation order (trace entries)."""
        return [n for n in self.nodes if is_recurrent(n.layer)]

    def consumers(self, ref: Ref) -> list[Node]:
        return [n for n in self.nodes if ref in n.inputs or ref in n.states]

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        known = ", ".join(layer.name for layer in self.layers)
        from .errors import UsageError

        raise UsageError(f"no layer named {name!r} in {self.source.path} (layers: {known})")

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """Keras's ``model.get_layer(name)`` or ``get_layer(index=i)``."""
        if (name is None) == (index is None):
            raise ValueError("give a layer name or an index")
        if index is not None:
            return self.layers[index]
        assert name is not None
        return self.layer(name)

    def get_weights(self) -> list[Array]:
        """Every layer's arrays in Keras's ``model.get_weights()`` order."""
        return [a for layer in self.layers for a in layer.get_weights()]

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = None) -> Any:
        """Keras's ``model.predict(x)``: the output array, or a list of them for a
        model with several outputs (``batch_size`` and ``verbose`` change nothing:
        every batch size gives the same numbers)."""
        outs = self.forward_all(x)
        return outs[0] if len(outs) == 1 else outs

    def node(self, key: str) -> Node:
        """A node by its trace key (``name`` or ``name#k``)."""
        for node in self.nodes:
            if node.key == key and not isinstance(node.layer, InputLayer):
                return node
        self.layer(key)  # raises with the list of layers
        raise AssertionError  # pragma: no cover

    def forward(
        self,
        x: Any,
        dtype: str = "float32",
        *,
        initial_state: Mapping[str, Any] | None = None,
        return_state: bool = False,
    ) -> Any:
        """The model's output for a batch, as Keras's ``predict`` returns it.
        ``x``: one array, or (several inputs) a list or a dict by input name.

        ``initial_state``: recurrent layers start from these states instead of zeros,
        ``{"<layer>/h": (N, M), "<layer>/c": ..., "<bidi>/forward/h": ...}`` (keys left
        out start from zeros); ``return_state``: return ``(output, final_states)``,
        the final states in the same layout (``rnninspect.states``), so the next
        piece of a sequence can start where this one ended.

        A model with several outputs: use ``forward_all``."""
        found = self.forward_all(x, dtype, initial_state=initial_state, return_state=return_state)
        outs, finals = found if return_state else (found, None)
        if len(outs) != 1:
            raise ValueError(f"the model has {len(outs)} outputs: use Model.forward_all")
        return (outs[0], finals) if return_state else outs[0]

    def forward_all(
        self,
        x: Any,
        dtype: str = "float32",
        *,
        initial_state: Mapping[str, Any] | None = None,
        return_state: bool = False,
    ) -> Any:
        """Every output of the model, in Keras's order (``initial_state`` and
        ``return_state`` as for ``forward``). Dask arrays in (chunked along N): Dask
        arrays out, run on the current scheduler (``rnninspect.distributed``)."""
        if "dask.array" in sys.modules:  # else nothing can be a Dask array
            from . import distributed

            if distributed.takes(x, initial_state, return_state):
                return distributed.forward_all(self, x, dtype)
        if initial_state is None and not return_state:
            from .engine import run

            return run(self, x, dtype=dtype).outputs
        from .states import run as run_from

        result, finals = run_from(self, x, initial_state, return_state, dtype)
        return (result.outputs, finals) if return_state else result.outputs

    def trace(
        self,
        x: Any,
        dtype: str = "float32",
        gates: bool = False,
        *,
        initial_state: Mapping[str, Any] | None = None,
    ) -> dict[str, Array]:
        """Hidden states: node key -> (N, T, M), as each recurrent layer returns
        them with ``return_sequences=True`` (processing order for go_backwards).

        Extra entries: ``<layer>/c`` (LSTM cell states), ``<layer>/forward`` and
        ``<layer>/backward`` (Bidirectional), and with ``gates`` the gate activations
        ``<layer>/i,f,g,o`` (LSTM) or ``<layer>/z,r,candidate`` (GRU). A shared
        layer has one entry per call: ``name``, ``name#1``, ...
        ``initial_state``: as for ``forward``. Dask arrays in: a dict of Dask arrays."""
        if "dask.array" in sys.modules:
            from . import distributed

            if distributed.takes(x, initial_state, False):
                return distributed.trace(self, x, dtype, gates)
        if initial_state is None:
            from .engine import run

            return run(self, x, dtype=dtype, collect=True, gates=gates).states
        from .states import run as run_from

        result, _ = run_from(self, x, initial_state, False, dtype, collect=True, gates=gates)
        states: dict[str, Array] = result.states
        return states

    def stepper(
        self,
        batch: int = 1,
        dtype: str = "float32",
        *,
        initial_state: Mapping[str, Any] | None = None,
    ) -> Stepper:
        """A step-at-a-time runner for streams: ``y = s.step(x_t)`` takes one step's
        input (N, D) and returns the model's output for the sequence so far;
        ``s.reset()`` starts again from zeros (or ``initial_state``). See
        ``rnninspect.stepper``."""
        from .stepper import Stepper

        return Stepper(self, batch=batch, dtype=dtype, initial_state=initial_state)

    def summary(self, print_fn: Any = None, line_length: int | None = None) -> Summary:
        """Prints the Keras-style table (through ``print_fn``, one line per call, as
        Keras 2 does; default ``print``) and returns the parameter counts, shapes and
        symbols as data (``Summary``). ``line_length``: the table's width."""
        from .render import summary_text
        from .summary import summarize

        found = summarize(self)
        emit = print if print_fn is None else print_fn
        for line in summary_text(found, line_length or 100).splitlines():
            emit(line)
        return found

    def explain(
        self, x: Any = None, layer: str | None = None, sample: int = 0, step: int | None = None
    ) -> Explanation | StepExplanation:
        """Every layer's formula in the notebook's notation, its NumPy line and its
        parameter arithmetic; with ``step`` (and the batch ``x``), every term of that
        processing step of one recurrent layer for one sample (``rnninspect.insight``)."""
        from .insight import explain as insight_explain

        if step is None:
            return insight_explain.explain(self)
        return insight_explain.explain_step(self, x, layer, sample, step)


RECURRENT_TYPES: tuple[type[Layer], ...] = (Recurrent, Bidirectional, StackedRNN, ConvLSTM)


def is_recurrent(layer: Layer) -> bool:
    """A layer with states over time (what ``trace`` records)."""
    return isinstance(layer, RECURRENT_TYPES)
