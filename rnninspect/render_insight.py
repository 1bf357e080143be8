"""Renderers for ``diagnose``, ``explain``, ``verify`` and ``diff``: result objects
-> JSON documents (the documented schemas) or Rich renderables for people.

Nothing here computes; ``rnninspect.insight`` does. Floats that JSON cannot hold
(NaN, Inf) become ``null``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .render import shape_text

MAX_COLS = 12  # value columns of a step's terms before eliding the middle (unless --full)

if TYPE_CHECKING:
    from .insight.diagnose import Diagnosis
    from .insight.diff import ModelDiff
    from .insight.explain import Explanation, StepExplanation
    from .insight.verify import Verification


def _indices(n: int, limit: int, full: bool) -> list[int | None]:
    """Column indices to show; None marks an elided gap."""
    if full or n <= limit:
        return list(range(n))
    half = limit // 2
    return [*range(half), None, *range(n - half, n)]


def _num(v: float | None) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _nums(values: Any) -> list[float | None]:
    return [_num(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def _dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, allow_nan=False)


def _g(v: float | None, spec: str = ".4g") -> str:
    if v is None:
        return "-"
    return format(v, spec) if math.isfinite(v) else str(v)


# A compact curve: one block per step, heights on a log scale (norms span decades).
BLOCKS = "▁▂▃▄▅▆▇█"
CURVE_WIDTH = 64


def curve(values: list[float], log: bool = True) -> str:
    """``values`` as a line of block characters (at most ``CURVE_WIDTH``, each the
    mean of its share of steps when there are more)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return ""
    if log:
        a = np.log10(np.maximum(a, 1e-30))
    if a.size > CURVE_WIDTH:
        parts = np.array_split(a, CURVE_WIDTH)
        a = np.array([p.mean() for p in parts])
    lo, hi = float(np.min(a)), float(np.max(a))
    if not math.isfinite(lo) or not math.isfinite(hi) or hi - lo < 1e-12:
        return BLOCKS[3] * a.size
    levels = np.round((a - lo) / (hi - lo) * (len(BLOCKS) - 1)).astype(int)
    return "".join(BLOCKS[k] for k in levels)


# ------------------------------------------------------------------ diagnose


def diagnose_dict(d: Diagnosis) -> dict[str, Any]:
    """The documented JSON schema of ``diagnose --json``."""
    layers = {}
    for name, ld in d.layers.items():
        layers[name] = {
            "type": ld.type,
            "units": ld.units,
            "steps": ld.steps,
            "go_backwards": ld.go_backwards,
            "activations": ld.activations,
            "recurrent": {
                g: {
                    "spectral_radius": _num(s.spectral_radius),
                    "spectral_norm": _num(s.spectral_norm),
                }
                for g, s in ld.recurrent.items()
            },
            "saturation": {g: _num(v) for g, v in ld.saturation.items()},
            "state_norm": _nums(ld.state_norm),
            "state_jacobian_norm": _nums(ld.state_jacobian_norm),
            "memory_steps": ld.memory_steps,
            "dead_units": ld.dead_units,
            "forget_bias": _num(ld.forget_bias),
        }
    doc: dict[str, Any] = {
        "samples": d.samples,
        "layers": layers,
        "input_sensitivity": None if d.input_sensitivity is None else _nums(d.input_sensitivity),
        "findings": [
            {"level": f.level, "layer": f.layer, "message": f.message} for f in d.findings
        ],
    }
    if d.input_sensitivities:
        doc["input_sensitivities"] = {k: _nums(v) for k, v in d.input_sensitivities.items()}
    return doc


def diagnose_json(d: Diagnosis) -> str:
    return _dumps(diagnose_dict(d))


def _curve_line(label: str, values: list[float], log: bool = True) -> str:
    if not values:
        return f"{label}: -"
    return f"{label}  {_g(min(values), '.3g')} {curve(values, log)} {_g(max(values), '.3g')}"


def diagnose_tables(d: Diagnosis) -> list[Any]:
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = []
    for name, ld in d.layers.items():
        order = "  [go_backwards: steps in processing order]" if ld.go_backwards else ""
        table = Table(title=f"{name} ({ld.type}, M={ld.units}, T={ld.steps}){order}")
        for col in ("gate", "activation", "spectral radius", "spectral norm", "saturated"):
            table.add_column(col, justify="left" if col in ("gate", "activation") else "right")
        for gate, act in ld.activations.items():
            spec = ld.recurrent.get("h" if gate == "candidate" else gate)
            sat = ld.saturation.get(gate)
            table.add_row(
                gate,
                act,
                "-" if spec is None else f"{spec.spectral_radius:.4f}",
                "-" if spec is None else f"{spec.spectral_norm:.4f}",
                "-" if sat is None else f"{sat:.1%}",
            )
        out.append(table)
        out.append(Text(_curve_line("‖ds_T/ds_t‖ over t (log)", ld.state_jacobian_norm)))
        out.append(Text(_curve_line("mean ‖h_t‖ over t      ", ld.state_norm, log=False)))
        memory = "none below 0.01" if ld.memory_steps is None else f"{ld.memory_steps} steps"
        dead = ", ".join(map(str, ld.dead_units)) or "none"
        out.append(Text(f"memory: {memory}; dead units: {dead}"))
    if d.input_sensitivity is not None:
        out.append(
            Text(_curve_line("input sensitivity ‖dy/dx_t‖ over t (log)", d.input_sensitivity))
        )
    for name, values in d.input_sensitivities.items():
        out.append(Text(_curve_line(f"  input {name}", values)))
    for f in d.findings:
        style = "yellow" if f.level == "warning" else "dim"
        where = f"{f.layer}: " if f.layer else ""
        out.append(Text(f"{f.level}: {where}{f.message}", style=style))
    if not d.findings:
        out.append(Text("no findings"))
    return out


# ------------------------------------------------------------------ explain


def explanation_dict(e: Explanation) -> dict[str, Any]:
    return {
        "layers": [
            {
                "name": le.name,
                "type": le.type,
                "formula": le.formula,
                "code": le.code,
                "weights": le.weights,
                "params": le.params,
                "params_arithmetic": le.params_arithmetic,
                "notes": le.notes,
            }
            for le in e.layers
        ],
        "total_params": e.total_params,
    }


def step_dict(s: StepExplanation) -> dict[str, Any]:
    return {
        "layer": s.layer,
        "type": s.type,
        "sample": s.sample,
        "step": s.step,
        "t": s.t,
        "masked": s.masked,
        "formula": s.formula,
        "terms": {k: _nums(v) for k, v in s.terms.items()},
        "labels": s.labels,
    }


def explain_json(e: Explanation | StepExplanation) -> str:
    from .insight.explain import Explanation

    return _dumps(explanation_dict(e) if isinstance(e, Explanation) else step_dict(e))


def explain_tables(e: Explanation) -> list[Any]:
    from rich.text import Text

    out: list[Any] = []
    for le in e.layers:
        out.append(Text(f"{le.name} ({le.type})", style="bold"))
        for line in le.formula:
            out.append(Text(f"    {line}"))
        for line in le.notes:
            out.append(Text(f"    ({line})", style="dim"))
        for line in le.code:
            out.append(Text(f"    notebook: {line}", style="cyan"))
        for sym, what in le.weights.items():
            out.append(Text(f"    {sym} = {what}", style="dim"))
        out.append(Text(f"    params: {le.params_arithmetic}"))
    out.append(Text(f"Total params: {e.total_params:,}", style="bold"))
    return out


def step_table(s: StepExplanation, full: bool = False) -> list[Any]:
    from rich.table import Table
    from rich.text import Text

    back = f" (t = {s.t}, go_backwards)" if s.t != s.step else ""
    masked = "  [masked step: states kept]" if s.masked else ""
    out: list[Any] = [
        Text(f"{s.layer} ({s.type}), sample {s.sample}, step {s.step}{back}{masked}", style="bold")
    ]
    out += [Text(f"    {line}") for line in s.formula]
    width = max(v.size for v in s.terms.values())
    table = Table()
    table.add_column("term")
    table.add_column("formula", style="dim")
    cols = _indices(width, MAX_COLS, full)
    for j in cols:
        table.add_column("…" if j is None else f"[{j}]", justify="right")
    for name, values in s.terms.items():
        cells = [
            "…" if j is None else (f"{values[j]:+.6f}" if j < values.size else "") for j in cols
        ]
        table.add_row(name, s.labels.get(name, ""), *cells)
    out.append(table)
    return out


# ------------------------------------------------------------------ verify


def verification_dict(v: Verification) -> dict[str, Any]:
    return {
        "passed": v.passed,
        "rtol": v.rtol,
        "atol": v.atol,
        "checks": [
            {
                "name": c.name,
                "shape": None if c.shape is None else list(c.shape),
                "expected_shape": list(c.expected_shape),
                "max_abs_error": _num(c.max_abs_error),
                "max_rel_error": _num(c.max_rel_error),
                "mean_abs_error": _num(c.mean_abs_error),
                "mismatched": c.mismatched,
                "total": c.total,
                "worst_index": None if c.worst_index is None else list(c.worst_index),
                "passed": c.passed,
            }
            for c in v.checks
        ],
        "skipped": v.skipped,
    }


def verify_json(v: Verification) -> str:
    return _dumps(verification_dict(v))


def verify_tables(v: Verification) -> list[Any]:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"verify (rtol={v.rtol:g}, atol={v.atol:g})")
    for col in (
        "array",
        "shape",
        "max abs err",
        "max rel err",
        "mean abs err",
        "mismatched",
        "worst at",
        "",
    ):
        table.add_column(col, justify="left" if col in ("array", "shape", "") else "right")
    for c in v.checks:
        if c.shape != c.expected_shape:
            got = "missing" if c.shape is None else shape_text(c.shape)
            shape = f"{got} vs {shape_text(c.expected_shape)}"
        else:
            shape = shape_text(c.expected_shape)
        table.add_row(
            c.name,
            shape,
            _g(c.max_abs_error, ".3g"),
            _g(c.max_rel_error, ".3g"),
            _g(c.mean_abs_error, ".3g"),
            f"{c.mismatched:,} / {c.total:,}",
            "-" if c.worst_index is None else str(list(c.worst_index)),
            Text("ok", style="green") if c.passed else Text("FAIL", style="bold red"),
        )
    out: list[Any] = [table]
    if v.skipped:
        out.append(Text(f"not compared: {', '.join(v.skipped)}", style="dim"))
    failed = sum(not c.passed for c in v.checks)
    if failed:
        out.append(
            Text(f"FAILED: {failed} of {len(v.checks)} arrays out of tolerance", style="bold red")
        )
    else:
        out.append(Text(f"passed: all {len(v.checks)} arrays within tolerance", style="green"))
    return out


# ------------------------------------------------------------------ diff


def _out_dict(o: Any) -> dict[str, Any]:
    return {
        "name": o.name,
        "shape_a": list(o.shape_a),
        "shape_b": list(o.shape_b),
        "max_abs_diff": _num(o.max_abs_diff),
        "l2_diff": _num(o.l2_diff),
        "relative_change": _num(o.relative_change),
    }


def diff_dict(d: ModelDiff) -> dict[str, Any]:
    outputs = None if d.outputs is None else [_out_dict(o) for o in d.outputs]
    return {
        "identical": d.identical,
        "architecture": [
            {"layer": c.layer, "change": c.change, "field": c.field, "a": c.a, "b": c.b}
            for c in d.architecture
        ],
        "weights": [
            {
                "layer": w.layer,
                "weight": w.weight,
                "shape_a": list(w.shape_a),
                "shape_b": list(w.shape_b),
                "max_abs_diff": _num(w.max_abs_diff),
                "l2_diff": _num(w.l2_diff),
                "relative_change": _num(w.relative_change),
                "changed": w.changed,
            }
            for w in d.weights
        ],
        "output": None if outputs is None else outputs[0],
        "outputs": outputs,
    }


def diff_json(d: ModelDiff) -> str:
    return json.dumps(diff_dict(d), indent=2, allow_nan=False, default=str)


def diff_tables(d: ModelDiff, full: bool = False) -> list[Any]:
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = []
    if d.architecture:
        arch = Table(title="architecture")
        for col in ("layer", "change", "field", "a", "b"):
            arch.add_column(col)
        for c in d.architecture:
            arch.add_row(
                c.layer or "(model)",
                c.change,
                c.field or "",
                "" if c.a is None else str(c.a),
                "" if c.b is None else str(c.b),
            )
        out.append(arch)
    changed = [w for w in d.weights if w.changed]
    if changed:
        table = Table(title="weights that differ")
        for col in ("layer", "weight", "shape a", "shape b", "max |a-b|", "‖a-b‖", "‖a-b‖/‖a‖"):
            table.add_column(col, justify="right" if col.startswith(("max", "‖")) else "left")
        for w in changed:
            table.add_row(
                w.layer,
                w.weight,
                shape_text(w.shape_a),
                shape_text(w.shape_b),
                _g(w.max_abs_diff, ".3g"),
                _g(w.l2_diff, ".3g"),
                _g(w.relative_change, ".3g"),
            )
        out.append(table)
    same = len(d.weights) - len(changed)
    out.append(Text(f"{same} of {len(d.weights)} shared weights identical", style="dim"))
    if d.outputs is not None:
        table = Table(title="outputs on the input")
        for col in ("output", "shape a", "shape b", "max |a-b|", "‖a-b‖", "‖a-b‖/‖a‖"):
            table.add_column(col, justify="right" if col.startswith(("max", "‖")) else "left")
        for o in d.outputs:
            table.add_row(
                o.name,
                shape_text(o.shape_a),
                shape_text(o.shape_b),
                _g(o.max_abs_diff, ".3g"),
                _g(o.l2_diff, ".3g"),
                _g(o.relative_change, ".3g"),
            )
        out.append(table)
    if d.identical:
        out.append(Text("identical", style="green"))
    else:
        parts = []
        if d.architecture:
            parts.append(f"{len(d.architecture)} architecture change(s)")
        if changed:
            parts.append(f"{len(changed)} weight(s)")
        if any(o.max_abs_diff != 0.0 for o in d.outputs or []):
            parts.append("outputs")
        out.append(Text("different: " + ", ".join(parts), style="bold red"))
    return out
