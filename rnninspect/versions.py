"""Keras generations: which one wrote a file decides version-dependent semantics."""

from __future__ import annotations


def keras_major(version: str | None, default: int = 3) -> int:
    """``"2.21.0"`` -> 2; ``None`` or junk -> ``default``. Legacy HDF5 without a
    ``keras_version`` attribute was written by Keras 1 (the loader passes ``"1"``)."""
    if not version:
        return default
    head = version.strip().split(".")[0]
    return int(head) if head.isdigit() else default
