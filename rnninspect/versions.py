"""Keras generations: which one wrote a file decides version-dependent semantics."""

from __future__ import annotations


def keras_major(version: str | None, default: int = 3) -> int:
    """``"2.21.0"`` -> 2; ``None`` or junk -> ``default``. Legacy HDF5 without a
    ``keras_version`` attribute was written by Keras 1 (the loader passes ``"1"``)."""
    if not version:
        return default
    head = version.strip().split(".")[0]
    return int(head) if head.isascii() and head.isdigit() else default


def older_than(version: str | None, than: tuple[int, ...]) -> bool:
    """Was ``version`` (``"2.1.2"``, ``"2.2.4-tf"``, ``"1"``) released before ``than``?
    Unknown versions are taken as current."""
    if not version:
        return False
    parts: list[int] = []
    for piece in version.strip().split(".")[: len(than)]:
        digits = "".join(ch for ch in piece if ch in "0123456789")
        if not digits or digits != piece[: len(digits)]:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    if not parts:
        return False
    return tuple(parts) < than
