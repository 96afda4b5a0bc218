"""argparse value types shared by the ``ncodec`` subcommands (errors become usage errors)."""

from __future__ import annotations

import argparse

__all__ = ["device", "effort", "nonnegative_int", "positive_float", "positive_int"]

EFFORT_NAMES = ("fast", "medium", "slow", "slowest")
"""Effort presets of overfitted codecs (``ncodec.codecs.inr_image.EFFORTS`` gives their iterations)."""


def _int_at_least(text: str, lo: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < lo:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0, "an integer >= 0")


def device(name: str) -> str:
    """A device ncodec runs on here ("cpu", "cuda", "cuda:1"); others are usage errors."""
    if name == "cpu":  # the default: no torch import just to parse the arguments
        return name
    from ncodec.codecs.registry import check_device  # here: building the parser loads no torch

    try:
        check_device(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def effort(text: str) -> "str | int":
    """An effort preset name, or a positive number of iterations."""
    if text in EFFORT_NAMES:
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected {', '.join(EFFORT_NAMES)} or a number of iterations, "
                                         f"got {text!r}") from None
