"""Argument types shared by the parsers of ``python -m learning.analysis`` (no heavy import)."""

from __future__ import annotations

import argparse


def positive_number(text: str) -> float:
    """argparse type: a number > 0 (underscores allowed, e.g. 1_500_000)."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number > 0."""
    value = int(positive_number(text))
    if value != float(text.replace("_", "")):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
