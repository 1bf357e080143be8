"""The README's terminal examples are what the tool prints (scripts/readme_examples.py
regenerates them; this fails when one is stale)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    shutil.which("rnninspect") is None, reason="the rnninspect command is not installed"
)
def test_readme_examples_are_from_real_runs() -> None:
    spec = importlib.util.spec_from_file_location(
        "readme_examples", ROOT / "scripts/readme_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_examples"] = module
    spec.loader.exec_module(module)
    text = (ROOT / "README.md").read_text()
    fresh = module.regenerate(text)
    stale = [
        (old, new)
        for old, new in zip(text.split("\n"), fresh.split("\n"), strict=False)
        if old != new
    ]
    assert fresh == text, f"stale README examples (run scripts/readme_examples.py): {stale[:5]}"
