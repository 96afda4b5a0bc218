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
    """A torch device that exists here ("cpu", "cuda", "cuda:1")."""
    import torch  # here, so that building the parser does not load torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"not a device: {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("CUDA is not available on this machine")
    return name
