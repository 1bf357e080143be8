"""One step at a time, for streams (real-time audio, sensors): the model's
recurrent states live in buffers made once, and each ``step`` feeds one time step of
input through the whole model.

    >>> s = model.stepper(batch=N)       # states start at zero
    >>> y_t = s.step(x_t)                # x_t (N, D), or (N,) ids; y_t (N, K)
    >>> s.states                         # {"lstm/h": (N, M), "lstm/c": ...}
    >>> s.reset()                        # back to zeros (or s.reset(initial_state))

``y_t`` is what ``forward`` returns for the sequence seen so far: for a model that
returns sequences, its step t (``forward(x)[:, t]``); for one that returns the last
state, ``forward(x[:, : t + 1])``. Running the whole sequence step by step gives
``forward``'s numbers (the same float32 arithmetic, one step at a time: bit for bit
unless the engine splits a large batch across threads, then to float rounding).

Each step does only the arithmetic: the weights are stacked, the buffers allocated and
the graph resolved when the stepper is made; a step checks its input's shape and
nothing else (values, NaN, id ranges are the caller's business).

Steppable are layers that run forwards in time and layers that act on one step:
SimpleRNN, LSTM, GRU and RNN(StackedRNNCells) without ``go_backwards``; Dense,
Embedding, Masking, TimeDistributed, activations and activation layers, Dropout and
friends, normalisation over features, merges over features. A Bidirectional (it needs
the sequence's end), ``go_backwards``, convolutions, pooling, attention and sequence
plumbing (RepeatVector, Flatten, ...) are refused at construction: use ``forward``
with ``initial_state`` / ``return_state`` for those, a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .errors import InputArrayError, UsageError
from .model import (
    PER_STEP_LAYERS,
    Array,
    BatchNormalization,
    Embedding,
    InputLayer,
    Layer,
    LayerNormalization,
    Masking,
    Merge,
    Model,
    Node,
    PReLU,
    Recurrent,
    Softmax,
    StackedRNN,
)
from .versions import keras_major

# Layers that act on one step at a time (their per-step tensor keeps the batch
# engine's rank: a sequence is (N, 1, ...), a vector (N, ...)).
_STEPWISE = (*PER_STEP_LAYERS, Embedding, Masking, Merge)


class _Cell:
    """One recurrent layer (or one cell of a stack) with its buffers: the stacked
    operand ``S = [x_t; 1; h]`` (feature-major, as ``ops.recurrent.scan``), the
    states, and the spare states a masked step needs."""

    def __init__(self, layer: Recurrent, ft: Any, major: int, N: int, D: int) -> None:
        from .ops.recurrent import _cell, _input_apart

        self.layer = layer
        M = layer.units
        self.apart = _input_apart(layer, D)
        self.cell = _cell(layer, ft, major, N, D, self.apart)
        self.D = D
        self.dx = 0 if self.apart else D
        self.S = np.empty((self.dx + 1 + M, N), dtype=ft)
        self.S[self.dx] = 1
        n = self.cell.n_states
        self.states = [self.S[self.dx + 1 :]] + [np.zeros((M, N), dtype=ft) for _ in range(n - 1)]
        self.spare = [np.empty((M, N), dtype=ft) for _ in self.states]
        kx = self.cell.kx
        self.xw = None if kx is None else np.empty((kx.shape[0], N), dtype=ft)
        self.zero = ft.type(0)
        self.out = self.states[0]
        # Before the first unmasked step a masked step outputs zeros (as Keras's
        # ``rnn``), whatever the states hold.
        self.seen = np.zeros((1, N), dtype=bool)
        self.reset()

    @property
    def n_states(self) -> int:
        return self.cell.n_states

    def reset(self, given: list[Array] | None = None) -> None:
        for k, state in enumerate(self.states):
            if given is None:
                state[...] = 0
            else:
                state[...] = given[k].T  # (M, N)
        self.out = self.states[0]
        self.seen[...] = False

    def __call__(self, x: Array, mask: Array | None) -> Array:
        """One step: ``x`` (N, D) -> this step's output, (M, N) feature-major."""
        if self.xw is None:
            np.copyto(self.S[: self.D], x.T)
        else:
            assert self.cell.kx is not None
            np.matmul(self.cell.kx, x.T, out=self.xw)
        if mask is None:
            self.cell.step(self.S, self.states, self.states, self.xw)
            self.out = self.states[0]
            return self.out
        self.cell.step(self.S, self.states, self.spare, self.xw)
        m = mask[None, :]  # (1, N)
        for state, new in zip(self.states, self.spare, strict=True):
            np.copyto(state, new, where=m)
        np.logical_or(self.seen, m, out=self.seen)
        if self.layer.zero_output_for_mask:
            self.out = np.where(m, self.spare[0], self.zero)
        elif self.seen.all():
            self.out = self.states[0]
        else:
            self.out = np.where(self.seen, self.states[0], self.zero)
        return self.out


class _CompiledCell:
    """``_Cell`` on the compiled engine's kernels (``ops.compiled``): one kernel call a
    step, the arithmetic of ``forward`` on the same engine (bit for bit). States are
    (N, M) arrays; ``states`` shows them (M, N) as ``_Cell``'s."""

    def __init__(self, layer: Recurrent, kernels: Any, major: int, N: int, D: int) -> None:
        from .ops import compiled

        self.layer = layer
        self.D = D
        self.N = N
        M = layer.units
        self._run = compiled.step_call(kernels, layer, major)
        self.h = [np.zeros((N, M), dtype=np.float32) for _ in range(layer.STATES)]
        self.states = [h.T for h in self.h]  # (M, N) views, as _Cell's
        self.last = np.zeros((N, M), dtype=np.float32)
        # The output as _Cell gives it, (M, N) C-contiguous: the layers after then
        # take the same path through BLAS as in forward (the same bits).
        self.out = np.zeros((M, N), dtype=np.float32)
        self.seen = np.zeros((N, 1), dtype=bool)
        self._no_mask = compiled.NONE_MASK

    @property
    def n_states(self) -> int:
        return self.layer.STATES

    def reset(self, given: list[Array] | None = None) -> None:
        for k, h in enumerate(self.h):
            h[...] = 0 if given is None else given[k]
        self.seen[...] = False

    def __call__(self, x: Array, mask: Array | None) -> Array:
        """One step: ``x`` (N, D) -> this step's output, (M, N)."""
        x3 = np.ascontiguousarray(x, dtype=np.float32).reshape(self.N, 1, self.D)
        m = self._no_mask if mask is None else np.ascontiguousarray(mask, bool)[:, None]
        self._run(x3, m, self.h, self.last)  # states kept where the step is masked
        if mask is None or self.layer.zero_output_for_mask:
            np.copyto(self.out, self.last.T)  # the new h; with a mask, zeros where masked
            return self.out
        np.logical_or(self.seen, m, out=self.seen)
        # Before the first unmasked step a masked step outputs zeros (Keras's rnn).
        h = self.h[0]
        np.copyto(self.out, (h if self.seen.all() else np.where(self.seen, h, np.float32(0))).T)
        return self.out


# Per-step multiply-adds (all recurrent cells) between which a step runs BLAS on
# one thread: below, OpenBLAS does not thread anyway and switching costs ~2 us;
# above, the products are large enough for threads to pay.
SINGLE_FROM = 50_000
SINGLE_UP_TO = 200_000_000


def _blas_calls() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    from . import blas

    return blas._openblas()


Op = Callable[[list[Array], list["Array | None"]], tuple[list[Array], list["Array | None"]]]


class Stepper:
    """See the module's docstring. ``batch``: N, the samples stepped together."""

    def __init__(
        self,
        model: Model,
        batch: int = 1,
        dtype: str = "float32",
        initial_state: Mapping[str, Any] | None = None,
    ) -> None:
        from . import engine

        if batch < 1:
            raise UsageError(f"a stepper needs batch >= 1, got {batch}")
        self.model = model
        self.N = batch
        self.ft = np.dtype(dtype)
        major = keras_major(model.source.keras_version)
        self._ctx = engine._Ctx(self.ft, major, None, False)
        self._cells: dict[str, list[_Cell | _CompiledCell]] = {}  # node key -> its cells
        self._ops: list[tuple[int, Op, list[tuple[int, int]]]] = []
        self._seq: dict[tuple[int, int], bool] = {}  # a tensor with a time axis?
        position = {id(layer): k for k, layer in enumerate(model.inputs)}
        self._input_at: list[int] = []
        self._xshape: list[tuple[int, ...]] = []
        self._ids: list[bool] = []
        for i, node in enumerate(model.nodes):
            if isinstance(node.layer, InputLayer):
                spec = model.inputs[position[id(node.layer)]]
                self._input_at.append(i)
                rest = tuple(int(d) for d in spec.shape[1:] if d is not None)
                if len(rest) != len(spec.shape) - 1:
                    raise UsageError(f"input {spec.name!r}: a stepper needs fixed feature sizes")
                self._xshape.append((batch, *rest))
                self._ids.append(spec.dtype == "int32")
                self._seq[(i, 0)] = True
                continue
            refs = [(r.node, r.index) for r in node.inputs]
            self._ops.append((i, self._compile(node, i, major), refs))
        self._outputs = [(r.node, r.index) for r in model.outputs]
        # A step's products are small: a multi-threaded BLAS pays a thread hand-off on
        # each, which costs more than the product once the cores are busy (measured:
        # LSTM M=128, N=32, 2 cores: 3.3 ms a step threaded, 0.2 ms on one thread).
        # Steps whose products OpenBLAS would thread run with BLAS on this thread.
        work = sum(
            c.layer.GATES * c.layer.units * (c.D + 1 + c.layer.units) * batch
            for cells in self._cells.values()
            for c in cells
        )
        self._blas = _blas_calls() if SINGLE_FROM <= work <= SINGLE_UP_TO else None
        self._values: list[list[Array]] = [[] for _ in model.nodes]
        self._masks: list[list[Array | None]] = [[] for _ in model.nodes]
        self.reset(initial_state)

    # ------------------------------------------------------------------ compiling

    def _compile(self, node: Node, i: int, major: int) -> Op:
        from . import engine

        layer = node.layer
        seq_in = [self._seq[(r.node, r.index)] for r in node.inputs]
        where = f"layer {layer.name!r} ({layer.class_name})"
        if node.states:
            raise UsageError(f"{where} takes its initial state from the graph: not steppable")
        if isinstance(layer, (Recurrent, StackedRNN)):
            return self._recurrent(node, i, layer, seq_in[0] if seq_in else False)
        if not isinstance(layer, _STEPWISE):
            raise UsageError(
                f"{where} needs the whole sequence, so the model cannot run step by step; "
                "run it a chunk at a time with forward(x, initial_state=..., return_state=True)"
            )
        seq = any(seq_in)
        if isinstance(layer, Merge) and seq and not all(seq_in):
            raise UsageError(f"{where} merges a sequence with a vector: not steppable")
        self._check_axes(layer, node, seq, where)
        self._seq[(i, 0)] = seq
        ctx = self._ctx

        def op(
            xs: list[Array], masks: list[Array | None]
        ) -> tuple[list[Array], list[Array | None]]:
            return engine.apply(node, xs, masks, [], ctx)

        return op

    def _check_axes(self, layer: Layer, node: Node, seq: bool, where: str) -> None:
        """Layers that could reduce over the time axis (axis 1 of a sequence)."""
        if not seq:
            return
        rank = len(self.model.nodes[node.inputs[0].node].output_shapes[node.inputs[0].index]) + 1
        axes: tuple[int, ...] = ()
        if isinstance(layer, Softmax):
            axes = layer.axis
        elif isinstance(layer, BatchNormalization):
            axes = (layer.axis,)
        elif isinstance(layer, LayerNormalization):
            axes = layer.axes
        elif isinstance(layer, Merge):
            axes = (layer.axis,) if layer.mode == "concatenate" else ()
            if layer.mode == "dot":
                axes = (1,)
        elif isinstance(layer, PReLU):
            axes = (1,) if layer.alpha.shape[0] != 1 else ()
        if any(a % rank == 1 for a in axes):
            raise UsageError(f"{where} acts across time steps: not steppable")

    def _recurrent(self, node: Node, i: int, layer: Recurrent | StackedRNN, seq_in: bool) -> Op:
        where = f"layer {layer.name!r} ({layer.class_name})"
        if not seq_in:
            raise UsageError(f"{where} is fed a vector, not a sequence: not steppable")
        if layer.go_backwards:
            raise UsageError(
                f"{where} runs backwards (go_backwards): it needs the sequence's end, "
                "so the model cannot run step by step"
            )
        major = self._ctx.major
        r = node.inputs[0]
        shape = self.model.nodes[r.node].output_shapes[r.index]
        if len(shape) != 2 or shape[1] is None:
            raise UsageError(f"{where}: input {shape} is not a (T, D) sequence")
        D = int(shape[1])
        from .ops import compiled

        cells: list[_Cell | _CompiledCell] = []
        for cell in layer.cells if isinstance(layer, StackedRNN) else [layer]:
            if cell.go_backwards:
                raise UsageError(f"{where} runs backwards (go_backwards): not steppable")
            kernels = compiled.for_stepper(cell, self.N, D, self.ft, major)
            if kernels is not None:
                cells.append(_CompiledCell(cell, kernels, major, self.N, D))
            else:
                cells.append(_Cell(cell, self.ft, major, self.N, D))
            D = cell.units
        self._cells[node.key] = cells
        returns_seq = layer.return_sequences
        self._seq[(i, 0)] = returns_seq
        n_states = sum(c.n_states for c in cells)
        for j in range(n_states):
            self._seq[(i, 1 + j)] = False
        with_states = layer.return_state

        def op(
            xs: list[Array], masks: list[Array | None]
        ) -> tuple[list[Array], list[Array | None]]:
            x = xs[0][:, 0]  # (N, D)
            mask = masks[0]
            m = None if mask is None else mask[:, 0]
            out = x
            for c in cells:
                out = c(out, m).T  # (N, M): a view of the (M, N) state
            y = out[:, None] if returns_seq else out
            outs = [y]
            out_masks: list[Array | None] = [mask if returns_seq else None]
            if with_states:
                for c in cells:
                    outs += [s.T for s in c.states]
                    out_masks += [None] * len(c.states)
            return outs, out_masks

        return op

    # ------------------------------------------------------------------ running

    def reset(self, initial_state: Mapping[str, Any] | None = None) -> None:
        """Back to zero states, or to ``initial_state`` (``rnninspect.states``
        layout; keys left out start from zero)."""
        from .states import check_states, state_names

        given = check_states(self.model, initial_state or {}, self.N)
        for node in self.model.recurrent_nodes():
            cells = self._cells.get(node.key)
            if cells is None:
                continue
            names = state_names(node)
            k = 0
            for c in cells:
                n = c.n_states
                keys = names[k : k + n]
                k += n
                if any(key in given for key in keys):
                    zeros = np.zeros((self.N, c.layer.units), dtype=self.ft)
                    c.reset([given.get(key, zeros) for key in keys])
                else:
                    c.reset()

    @property
    def states(self) -> dict[str, Array]:
        """The current states, (N, ...) copies, keyed as ``--final-state`` files."""
        from .states import state_names

        out: dict[str, Array] = {}
        for node in self.model.recurrent_nodes():
            cells = self._cells.get(node.key, [])
            arrays = [np.array(s.T) for c in cells for s in c.states]
            out.update(zip(state_names(node), arrays, strict=True))
        return out

    def step(self, x_t: Any) -> Any:
        """Feed one time step: ``x_t`` (N, D) floats or (N,) ids (a list for a
        model with several inputs). Returns the model's output for the sequence so
        far, (N, K) (a list for several outputs)."""
        if self._blas is None:
            return self._step(x_t)
        get, put = self._blas
        threads = get()
        put(1)
        try:
            return self._step(x_t)
        finally:
            put(threads)

    def _step(self, x_t: Any) -> Any:
        xs = x_t if len(self._input_at) > 1 else [x_t]
        values, masks = self._values, self._masks
        for k, i in enumerate(self._input_at):
            x = np.asarray(xs[k])
            if x.shape != self._xshape[k]:
                raise InputArrayError(
                    f"step input has shape {x.shape}; the stepper takes {self._xshape[k]}"
                )
            if self._ids[k]:
                x = x.astype(np.intp, copy=False)
            elif x.dtype != self.ft:
                x = x.astype(self.ft)
            values[i] = [x[:, None]]
            masks[i] = [None]
        for i, op, refs in self._ops:
            values[i], masks[i] = op(
                [values[n][j] for n, j in refs], [masks[n][j] for n, j in refs]
            )
        ys = []
        for n, j in self._outputs:
            y = values[n][j]
            ys.append(np.array(y[:, 0] if self._seq[(n, j)] else y))
        return ys[0] if len(ys) == 1 else ys

    def run(self, x: Any) -> Any:
        """Step through a whole (N, T, ...) batch; the outputs stacked over T,
        (N, T, K). (A convenience: ``forward`` is faster on whole sequences.)"""
        xs = x if len(self._input_at) > 1 else [x]
        T = np.asarray(xs[0]).shape[1]
        steps = [
            self.step([np.asarray(a)[:, t] for a in xs] if len(xs) > 1 else np.asarray(xs[0])[:, t])
            for t in range(T)
        ]
        if isinstance(steps[0], list):
            return [np.stack([s[k] for s in steps], axis=1) for k in range(len(steps[0]))]
        return np.stack(steps, axis=1)
