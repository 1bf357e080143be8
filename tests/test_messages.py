"""Messages that name the real problem and its fix, and notes said once, for what
applies: ``--config`` given the wrong kind of file or a full model file, a model
config passed as the model, the defaults a weights-only file assumed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES, golden, run_cli

from rnninspect.errors import ExitCode


def _lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_config_npz_without_config_says_what_config_takes() -> None:
    weights = str(SAMPLES / "seed" / "model.weights.h5")
    code, out, err = run_cli("summary", weights, "--config", str(SAMPLES / "seed" / "golden.npz"))
    assert code == ExitCode.MODEL and out == ""
    assert "config.json" not in err.split(":")[1]  # not ".keras archive has no config.json"
    assert "__config__" in err and "model.to_json()" in err
    assert len(_lines(err)) == 1


def test_config_npz_with_config_is_an_architecture(tmp_path: Path) -> None:
    """An .npz holding ``__config__`` gives its architecture, as a .keras file does."""
    arch = tmp_path / "arch.npz"
    config = (SAMPLES / "stacked" / "config.json").read_text()
    np.savez(arch, __config__=np.array(config), unused=np.zeros(1))
    weights = str(SAMPLES / "stacked" / "model.weights.h5")
    code, out, err = run_cli("summary", weights, "--json", "--config", str(arch))
    assert code == 0, err
    assert [layer["name"] for layer in json.loads(out)["layers"]] == ["enc1", "drop", "enc2", "out"]


def test_model_config_as_the_model_hints_at_config() -> None:
    config = SAMPLES / "seed" / "config.json"
    code, _, err = run_cli("summary", str(config))
    assert code == ExitCode.MODEL
    assert "holds no weights" in err and f"--config {config}" in err
    assert len(_lines(err)) == 1


@pytest.mark.parametrize("name", ["model.keras", "model.h5", "layers.npz"])
def test_config_with_a_full_model_file_warns_and_uses_the_config(name: str) -> None:
    model = SAMPLES / "stacked" / name
    config = str(SAMPLES / "stacked" / "config.json")
    code, out, err = run_cli("summary", str(model), "--json", "--config", config)
    assert code == 0
    (line,) = _lines(err)
    assert line.startswith("rnninspect: warning:") and "its own architecture" in line
    assert "model_from_json" in line
    assert json.loads(out)["total_params"] == 215
    # Without --config, no word.
    assert run_cli("summary", str(model), "--json")[2] == ""


@pytest.mark.parametrize(
    ("model", "present", "absent"),
    [
        ("seed", ["tanh SimpleRNN", "linear Dense", "variable T"],
         ["LSTM", "GRU", "Bidirectional", "return_sequences", "sigmoid"]),
        ("lstm", ["tanh LSTM", "sigmoid LSTM gates"], ["GRU", "Bidirectional", "return_sequences"]),
        ("stacked", ["return_sequences on all but the last"], ["LSTM", "Bidirectional"]),
        ("bidi_concat", ["concat Bidirectional merge", "sigmoid LSTM/GRU gates"], ["SimpleRNN"]),
    ],
)  # fmt: skip
def test_weights_only_note_names_only_the_defaults_that_apply(
    model: str, present: list[str], absent: list[str]
) -> None:
    code, out, err = run_cli("summary", str(SAMPLES / model / "model.weights.h5"))
    assert code == 0
    notes = _lines(err)  # each said once, on stderr
    doc = json.loads(run_cli("summary", str(SAMPLES / model / "model.weights.h5"), "--json")[1])
    assert len(notes) == len(doc["assumptions"])
    assert all(n.endswith(a) for n, a in zip(notes, doc["assumptions"], strict=True))
    note = notes[0]
    defaults = note.split("Keras's defaults (", 1)[1].split(")", 1)[0]
    for text in present:
        assert text in defaults, defaults
    for text in absent:
        assert text not in defaults, defaults
    # The table says the architecture was inferred, without repeating the note.
    assert "inferred from the weight shapes" in out and "Keras's defaults" not in out


def test_output_directory_is_named_a_directory(tmp_path: Path) -> None:
    for target in (".", str(tmp_path)):
        code, _, err = run_cli(
            "forward", str(SAMPLES / "seed" / "model.keras"), "--random", "1", "-o", target
        )
        assert code == ExitCode.OUTPUT
        assert "is a directory" in err and "extension" not in err


def test_golden_x_runs_with_the_model(tmp_path: Path) -> None:
    """The sample's own golden input, for the runs above to be meaningful."""
    np.save(tmp_path / "x.npy", golden("stacked")["x"])
    code, _, err = run_cli(
        "forward", str(SAMPLES / "stacked" / "model.keras"), str(tmp_path / "x.npy")
    )
    assert code == 0 and err == ""
