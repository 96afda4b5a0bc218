"""argparse value types shared by the ``ncodec`` subcommands (errors become usage errors)."""

from __future__ import annotations

import argparse

__all__ = ["device", "positive_int"]


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


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
