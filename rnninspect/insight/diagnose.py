"""``diagnose``: what the weights and the states say about a recurrent model.

Per recurrent layer (a Bidirectional as ``NAME/forward`` and ``NAME/backward``, a
stacked RNN as ``NAME/cell_k``), from the weights: each gate's recurrent block's
spectral radius and norm. Over a batch: how saturated each activation is, the mean
state norm per step, the mean spectral norm of ds_{T-1}/ds_t per step (exact, by the
chain rule: ``cells.state_jacobian_norms``) and how far back it stays above 0.01,
dead units. For the model: the input sensitivity ||dy/dx_t|| (``tape``). Findings
put the numbers that call for attention into words; thresholds are named below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import LSTM, Array, Model
from . import derivatives
from .cells import CellRun, gate_activation, gate_names, recurrent_blocks, state_jacobian_norms
from .tape import (
    SENSITIVITY_BUDGET,
    NotDifferentiableError,
    TooCostlyError,
    Unit,
    input_sensitivity,
    record,
)

VANISHED = 0.01  # ||ds_{T-1}/ds_t|| below this: step t no longer reaches the end
EXPLODING = 10.0  # above this: early perturbations grow on the way to the end
SATURATED = 0.5  # a gate saturated on more than half its values
DEAD_RANGE = 1e-6  # a unit whose output moves less than this over the batch
FORGET_STEPS = 5.0  # a cell keeping 1% of itself for fewer steps than this, at rest


@dataclass
class Spectrum:
    spectral_radius: float  # largest |eigenvalue| of the gate's (M, M) block
    spectral_norm: float  # largest singular value


@dataclass
class LayerDiagnosis:
    name: str  # NAME, NAME/forward, NAME/backward, NAME/cell_k
    type: str  # SimpleRNN | LSTM | GRU
    units: int
    steps: int
    go_backwards: bool
    activations: dict[str, str]  # gate -> activation name
    recurrent: dict[str, Spectrum]
    saturation: dict[str, float | None]  # gate -> fraction at its bounds (None: unbounded)
    state_norm: list[float]  # per processing step: mean ||h_t||
    state_jacobian_norm: list[float]  # per processing step: mean ||ds_{T-1}/ds_t||_2
    memory_steps: int | None
    dead_units: list[int]
    forget_bias: float | None = None  # LSTM: mean forget-gate bias


@dataclass
class Finding:
    level: str  # "warning" | "info"
    layer: str | None
    message: str


@dataclass
class Diagnosis:
    layers: dict[str, LayerDiagnosis]
    input_sensitivity: list[float] | None  # per input step (input order); None: not available
    findings: list[Finding] = field(default_factory=list)
    samples: int = 0
    input_sensitivities: dict[str, list[float]] = field(default_factory=dict)  # by input name


def spectrum(block: Array) -> Spectrum:
    W = block.astype(np.float64)
    return Spectrum(
        spectral_radius=float(np.max(np.abs(np.linalg.eigvals(W)))),
        spectral_norm=float(np.linalg.svd(W, compute_uv=False)[0]),
    )


def memory_steps(norms: list[float]) -> int | None:
    """The smallest k with ``norms[T-1-k] < 0.01`` (None when none is)."""
    T = len(norms)
    for k in range(T):
        if norms[T - 1 - k] < VANISHED:
            return k
    return None


def _unit(unit: Unit) -> LayerDiagnosis:
    run: CellRun = unit.run
    layer = run.layer
    valid = run.valid()  # (N, T)
    saturation: dict[str, float | None] = {}
    names = gate_names(layer)
    for gate in names:
        hit = derivatives.bounds_hit(gate_activation(layer, gate), run.major, run.act[gate])
        if hit is None or not valid.any():
            saturation[gate] = None
        else:
            saturation[gate] = float(hit[valid].mean())  # over (sample, step, unit)
    h = run.h[:, 1:]  # (N, T, M) states after each step
    state_norm = np.linalg.norm(h, axis=-1).mean(axis=0)  # (T,)
    jac = state_jacobian_norms(run).mean(axis=0)  # (T,)
    seen = h[valid]  # (n_valid, M)
    dead: list[int] = []
    if len(seen):
        spread = seen.max(axis=0) - seen.min(axis=0)
        dead = [int(m) for m in np.flatnonzero(spread < DEAD_RANGE)]
    forget = None
    if isinstance(layer, LSTM) and layer.bias is not None:
        M = layer.units
        forget = float(np.mean(layer.bias[M : 2 * M]))
    jac_list = [float(v) for v in jac]
    return LayerDiagnosis(
        name=unit.key,
        type=layer.class_name,
        units=layer.units,
        steps=run.steps,
        go_backwards=layer.go_backwards,
        activations={g: gate_activation(layer, g) for g in names},
        recurrent={g: spectrum(b) for g, b in recurrent_blocks(layer).items()},
        saturation=saturation,
        state_norm=[float(v) for v in state_norm],
        state_jacobian_norm=jac_list,
        memory_steps=memory_steps(jac_list),
        dead_units=dead,
        forget_bias=forget,
    )


def _findings(d: LayerDiagnosis, run: CellRun) -> list[Finding]:
    out: list[Finding] = []
    name, T = d.name, d.steps
    jac = d.state_jacobian_norm
    if d.memory_steps is not None and T > 1:
        k = d.memory_steps
        out.append(
            Finding(
                "warning",
                name,
                f"vanishing state Jacobian: ||ds_T/ds_t|| falls below {VANISHED} {k} steps "
                f"before the end (step {T - 1 - k} of {T}: {jac[T - 1 - k]:.3g}); inputs "
                f"further back barely move the final state",
            )
        )
    top = int(np.argmax(jac))
    if jac[top] > EXPLODING:
        out.append(
            Finding(
                "warning",
                name,
                f"exploding state Jacobian: ||ds_T/ds_t|| reaches {jac[top]:.3g} at step "
                f"{top} of {T}; a small change to that state grows {jac[top]:.3g}-fold by the end",
            )
        )
    for gate, frac in d.saturation.items():
        if frac is not None and frac > SATURATED:
            act = d.activations[gate]
            bound = derivatives.BOUNDS_TEXT.get(act, act)
            out.append(
                Finding(
                    "warning",
                    name,
                    f"saturated {gate}: {frac:.0%} of its values sit at the bounds ({bound}), "
                    f"where its derivative is about zero",
                )
            )
    if d.dead_units:
        units = ", ".join(str(u) for u in d.dead_units)
        out.append(
            Finding(
                "warning",
                name,
                f"dead units: h[{units}] vary by less than {DEAD_RANGE:g} over the whole batch "
                f"({len(d.dead_units)} of {d.units})",
            )
        )
    if d.forget_bias is not None:
        from .. import activations

        f = float(activations.get(d.activations["f"], run.major)(np.array([d.forget_bias]))[0])
        steps = math.inf if f >= 1 else (0.0 if f <= 0 else math.log(0.01) / math.log(f))
        if steps < FORGET_STEPS:
            out.append(
                Finding(
                    "warning",
                    name,
                    f"forget-gate bias averages {d.forget_bias:+.3f}: f = {f:.3f} at rest, so "
                    f"the cell keeps 1% of its content for only {steps:.1f} steps",
                )
            )
    return out


def diagnose(model: Model, x: Any, budget: float | None = SENSITIVITY_BUDGET) -> Diagnosis:
    """Diagnose ``model``'s recurrent layers over the batch ``x`` (one array, or one
    per input as ``Model.forward`` takes them). ``budget``: the most multiply-adds
    the input sensitivity may take (None: no limit); past it, a finding says so."""
    tape = record(model, x)
    layers: dict[str, LayerDiagnosis] = {}
    findings: list[Finding] = []
    for unit in tape.units:
        d = _unit(unit)
        layers[d.name] = d
        findings += _findings(d, unit.run)
    for node in tape.skipped:
        index = next(i for i, n in enumerate(model.nodes) if n is node)
        why = tape.refused.get(index) or f"{node.layer.class_name} states are not differentiated"
        findings.append(
            Finding(
                "info",
                node.key,
                f"not applicable: no diagnosis for {node.layer.class_name} layer "
                f"{node.key!r} ({why})",
            )
        )
    sens: list[float] | None = None
    by_input: dict[str, list[float]] = {}
    try:
        per_input = input_sensitivity(tape, budget=budget)
    except NotDifferentiableError as exc:
        findings.append(Finding("info", exc.node.key, f"input_sensitivity {exc}"))
    except TooCostlyError as exc:
        findings.append(Finding("info", None, f"input_sensitivity {exc}"))
    else:
        for spec, s in zip(model.inputs, per_input, strict=True):
            by_input[spec.name] = [float(v) for v in s.mean(axis=0)]
        sens = by_input[model.inputs[0].name]
    N = int(tape.inputs[0].shape[0])
    return Diagnosis(layers, sens, findings, N, by_input if len(model.inputs) > 1 else {})
