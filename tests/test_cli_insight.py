"""The insight commands driven for real: exit codes (6 for a difference found),
stdout and stderr apart, JSON parsed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import golden, load_sample, run_cli, sample
from typer.testing import CliRunner

from rnninspect.cli import app
from rnninspect.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
SEED = str(sample("seed", "model.keras"))


def test_exit_code_six_is_documented() -> None:
    assert int(ExitCode.DIFFERENT) == 6
    assert "| 6 | compared, and found different" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("command", ["diagnose", "explain", "verify", "diff"])
def test_help_has_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output
    assert "compared, and found different" in result.output  # the exit codes epilog


# --- diagnose -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["seed", "lstm", "gru", "bidi_masked"])
def test_diagnose_json_schema(name: str, tmp_path: Path) -> None:
    x = tmp_path / "x.npy"
    np.save(x, golden(name)["x"])
    code, out, err = run_cli("diagnose", str(sample(name, "model.keras")), str(x), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) >= {"layers", "input_sensitivity", "findings"}
    T = golden(name)["x"].shape[1]
    for layer in doc["layers"].values():
        assert set(layer) >= {
            "type", "units", "recurrent", "saturation", "state_norm",
            "state_jacobian_norm", "memory_steps", "dead_units",
        }  # fmt: skip
        for spec in layer["recurrent"].values():
            assert set(spec) == {"spectral_radius", "spectral_norm"}
        assert len(layer["state_norm"]) == len(layer["state_jacobian_norm"]) == T
        assert layer["state_jacobian_norm"][-1] == pytest.approx(1.0)
    assert len(doc["input_sensitivity"]) == T
    for f in doc["findings"]:
        assert set(f) == {"level", "layer", "message"}
    # the same numbers as the library's
    import rnninspect

    d = rnninspect.diagnose(load_sample(name, "model.keras"), golden(name)["x"])
    assert doc["input_sensitivity"] == pytest.approx(d.input_sensitivity)
    if name == "bidi_masked":
        assert set(doc["layers"]) == {
            "bidirectional/forward", "bidirectional/backward",
            "bidirectional_1/forward", "bidirectional_1/backward",
        }  # fmt: skip


def test_diagnose_view_shows_tables_and_curves() -> None:
    code, out, err = run_cli("diagnose", str(sample("lstm", "model.keras")), "--random", "4")
    assert code == 0, err
    assert "lstm (LSTM, M=6, T=10)" in out and "spectral radius" in out
    assert "‖ds_T/ds_t‖" in out and any(ch in out for ch in "▁▂▃▄▅▆▇█")


def test_diagnose_needs_an_input() -> None:
    code, _, err = run_cli("diagnose", SEED)
    assert code == ExitCode.USAGE and "--random" in err


# --- explain ------------------------------------------------------------------


def test_explain_seed_reads_as_the_notebook() -> None:
    code, out, err = run_cli("explain", SEED)
    assert code == 0, err
    assert "h_t = tanh(x_t·Wx + h_{t-1}·Wh + bh)" in out
    assert "h = np.tanh(x[t].dot(Wx) + h_last.dot(Wh) + bh)" in out
    assert "D·M + M·M + M = 3·5 + 5·5 + 5 = 45" in out
    doc = json.loads(run_cli("explain", SEED, "--json")[1])
    assert [e["name"] for e in doc["layers"]] == ["simple_rnn", "dense"]
    assert doc["total_params"] == 57


def test_explain_step_json_matches_trace(tmp_path: Path) -> None:
    x = tmp_path / "x.npy"
    np.save(x, golden("lstm")["x"])
    code, out, err = run_cli(
        "explain",
        str(sample("lstm", "model.keras")),
        str(x),
        "--step",
        "4",
        "--sample",
        "2",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert {doc["layer"], doc["sample"], doc["step"], doc["t"]} == {"lstm", 2, 4}
    terms = doc["terms"]
    for k in (
        "x",
        "h_prev",
        "h",
        "c_prev",
        "c",
        "i_pre",
        "i",
        "f_pre",
        "f",
        "g_pre",
        "g",
        "o_pre",
        "o",
    ):
        assert k in terms
    trace = load_sample("lstm", "model.keras").trace(golden("lstm")["x"], gates=True)
    # JSON's numbers are the float32 values exactly (as float64s): bit for bit
    assert np.array_equal(np.float32(terms["h"]), trace["lstm"][2, 4])
    assert np.array_equal(np.float32(terms["h_prev"]), trace["lstm"][2, 3])
    assert np.array_equal(np.float32(terms["c"]), trace["lstm/c"][2, 4])
    for g in "ifgo":
        assert np.array_equal(np.float32(terms[g]), trace[f"lstm/{g}"][2, 4])


def test_explain_step_errors() -> None:
    code, _, err = run_cli("explain", SEED, "--random", "1", "--step", "10")
    assert code == ExitCode.USAGE and "T=10" in err
    code, _, err = run_cli("explain", SEED, "--random", "1", "--step", "0", "--layer", "dense")
    assert code == ExitCode.USAGE and "simple_rnn" in err
    code, _, err = run_cli("explain", SEED, "--random", "1")
    assert code == ExitCode.USAGE and "--step" in err


# --- verify -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["seed", "bidi_none", "masked_backwards", "embedding"])
def test_verify_golden_exit_0(name: str) -> None:
    code, out, err = run_cli(
        "verify", str(sample(name, "model.keras")), str(sample(name, "golden.npz")), "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["passed"] is True and doc["rtol"] == 1e-4 and doc["atol"] == 1e-5
    for check in doc["checks"]:
        assert set(check) >= {
            "name", "shape", "max_abs_error", "max_rel_error", "mean_abs_error",
            "mismatched", "total", "worst_index",
        }  # fmt: skip
        assert check["mismatched"] == 0


def test_verify_perturbed_reference_exits_6_with_counts(tmp_path: Path) -> None:
    g = golden("gru")
    y = g["y"].copy()
    y[0, 1] += 0.1
    y[2, 0] += 0.01
    state = g["state/gru"].copy()
    state[3, 9, :] -= 0.2  # 6 values
    ref = tmp_path / "ref.npz"
    np.savez(ref, x=g["x"], y=y, **{"state/gru": state})
    code, out, err = run_cli("verify", str(sample("gru", "model.keras")), str(ref), "--json")
    assert code == ExitCode.DIFFERENT == 6
    doc = json.loads(out)
    assert doc["passed"] is False
    by = {c["name"]: c for c in doc["checks"]}
    assert by["y"]["mismatched"] == 2 and by["y"]["worst_index"] == [0, 1]
    assert by["state/gru"]["mismatched"] == 6 and by["state/gru"]["total"] == 240
    assert err.startswith("rnninspect: ") and "2 of 2 arrays out of tolerance" in err
    assert "error" not in err  # a verdict, not a failure
    code, out, _ = run_cli("verify", str(sample("gru", "model.keras")), str(ref))
    assert code == 6 and "FAIL" in out


def test_verify_npy_reference_with_input(tmp_path: Path) -> None:
    g = golden("seed")
    np.save(tmp_path / "x.npy", g["x"])
    np.save(tmp_path / "y.npy", g["y"])
    base = ("verify", SEED, str(tmp_path / "y.npy"))
    code, _, err = run_cli(*base, "--input", str(tmp_path / "x.npy"))
    assert code == 0, err
    np.save(tmp_path / "y.npy", g["y"] * 1.01)
    code, _, _ = run_cli(*base, "--input", str(tmp_path / "x.npy"))
    assert code == 6
    code, _, err = run_cli(*base, "--input", str(tmp_path / "x.npy"), "--rtol", "0.02")
    assert code == 0, err
    code, _, err = run_cli(*base)
    assert code == ExitCode.INPUT and "--input" in err


# --- diff ---------------------------------------------------------------------


def test_diff_keras_against_h5_exits_0() -> None:
    code, out, err = run_cli("diff", SEED, str(sample("seed", "model.h5")), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["identical"] is True and doc["architecture"] == []
    assert [w["weight"] for w in doc["weights"]] == [
        "kernel",
        "recurrent_kernel",
        "bias",
        "kernel",
        "bias",
    ]
    assert all(w["max_abs_diff"] == 0.0 for w in doc["weights"])
    assert doc["output"] is None


def test_diff_perturbed_copy_exits_6(tmp_path: Path) -> None:
    with np.load(sample("lstm", "layers.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["lstm/bias"] = arrays["lstm/bias"].copy()
    arrays["lstm/bias"][7] += 1.0
    np.savez(tmp_path / "b.npz", **arrays)
    np.save(tmp_path / "x.npy", golden("lstm")["x"])
    code, out, err = run_cli(
        "diff", str(sample("lstm", "model.keras")), str(tmp_path / "b.npz"),
        "--input", str(tmp_path / "x.npy"), "--json",
    )  # fmt: skip
    assert code == 6, err
    doc = json.loads(out)
    assert doc["identical"] is False
    changed = [(w["layer"], w["weight"]) for w in doc["weights"] if w["changed"]]
    assert changed == [("lstm", "bias")]
    w = next(w for w in doc["weights"] if w["changed"])
    assert w["max_abs_diff"] == pytest.approx(1.0) and w["l2_diff"] == pytest.approx(1.0)
    assert doc["output"]["max_abs_diff"] > 0
    assert "differ" in err


def test_diff_subprocess_exit_code() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rnninspect", "diff", SEED, str(sample("nobias", "model.keras"))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 6
    assert "architecture" in done.stdout and "Traceback" not in done.stderr
