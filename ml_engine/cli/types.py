"""Argument types of the command line: each names the problem in argparse's one-line error."""

from __future__ import annotations

import argparse
import math


def _whole_number(text: str, minimum: int, complaint: str, *, expected: str = "expected a whole number") -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{complaint}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1, "must be at least 1")


def _non_negative_int(text: str) -> int:
    return _whole_number(text, 0, "must not be negative")


def _shape_side(text: str) -> int:
    from ml_engine.phantoms import MIN_SIDE

    return _whole_number(text, MIN_SIDE, f"every shape side must be at least {MIN_SIDE} voxels",
                         expected="shape sides are whole numbers of voxels")


def _positive_number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{what} must be positive, got {text}")
    return value


def _positive_float(text: str) -> float:
    """A spacing in mm."""
    return _positive_number(text, "spacing")


def _learning_rate(text: str) -> float:
    return _positive_number(text, "learning rate")


def _organ(text: str) -> str:
    from ml_engine.labels import ORGANS

    if text not in ORGANS:
        raise argparse.ArgumentTypeError(f"unknown organ {text!r} (valid organs: {', '.join(ORGANS)})")
    return text


def _trouble(text: str) -> str:
    from ml_engine.phantoms import TROUBLES

    if text not in TROUBLES:
        raise argparse.ArgumentTypeError(f"unknown trouble {text!r} (valid troubles: {', '.join(TROUBLES)})")
    return text
