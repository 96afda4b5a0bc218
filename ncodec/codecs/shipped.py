"""Weights that ship inside the package, and the seeded models of architectures without them.

Each codec module registers its architectures with what it reads here: whether trained
weights ship for an architecture (:func:`shipped_weights`), the training record stored in
a weights file (:func:`training_info`, :func:`describe_training`), the validation rates
recorded at export (:func:`recorded_rates`), and, for an architecture with no weights,
a model initialised from a seed that depends only on its name and quality
(:func:`seeded`), so that every machine builds the same model and its files decode
anywhere.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Callable, Optional, TypeVar

import torch

__all__ = ["PREVIOUS_DIR", "WEIGHTS_DIR", "describe_training", "previous_weights", "recorded_rates", "seeded",
           "shipped_or_seeded", "shipped_weights", "training_info"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
"""Trained weights shipped inside the package: ``<architecture>.safetensors``."""

PREVIOUS_DIR = WEIGHTS_DIR / "previous"
"""Earlier shipped weights, kept so that the files they wrote still decode after the weights
of their codec are retrained: ``<architecture>@<fingerprint>.safetensors``, the fingerprint
being the one in those files' headers."""
_FINGERPRINT_CHARS = frozenset("0123456789abcdef")

Model = TypeVar("Model")


def shipped_weights(arch: str) -> Optional[Path]:
    """The weights file shipped for architecture ``arch``, or None."""
    path = WEIGHTS_DIR / f"{arch}.safetensors"
    return path if path.is_file() else None


def previous_weights(arch: str, fingerprint: str) -> Optional[Path]:
    """The earlier shipped weights of ``arch`` whose files carry ``fingerprint``, or None."""
    if len(fingerprint) != 32 or not set(fingerprint) <= _FINGERPRINT_CHARS or "/" in arch or arch.startswith("."):
        return None  # never a path built from a hostile header
    path = PREVIOUS_DIR / f"{arch}@{fingerprint}.safetensors"
    return path if path.is_file() else None


def training_info(path: Optional[Path]) -> dict:
    """The ``training`` record (JSON) in a weights file's metadata; ``{}`` for None or none.

    Raises:
        ValueError: ``path`` is not a safetensors file.
    """
    if path is None:
        return {}
    from ncodec.models.weights import read_any_metadata

    return json.loads(read_any_metadata(path).get("training", "{}"))


def describe_training(info: dict) -> str:
    """One line from a training record, for ``ncodec models``."""
    if not info:
        return "random init (untrained)"
    data = f" on {info['data']}" if info.get("data") else ""
    earlier = f", after {len(info['history'])} earlier run(s)" if info.get("history") else ""
    return f"trained {info.get('steps')} steps ({info.get('device', '?')}){data}{earlier}"


def recorded_rates(info: dict, qualities: tuple[int, ...], key: str = "bpp") -> dict[int, float]:
    """Validation rate per quality recorded at export (``val.q<k>_<key>``, or ``val.<key>``
    for a single-quality model); qualities without one are left out."""
    val = info.get("val", {})
    rates = {q: val.get(f"q{q}_{key}") for q in qualities}
    if not any(rates.values()) and key in val and len(qualities) == 1:
        rates = {qualities[0]: val[key]}
    return {q: round(float(v), 4) for q, v in rates.items() if v}


def seeded(name: str, build: Callable[[], Model]) -> Model:
    """``build()`` under a torch seed derived from ``name`` alone (CRC-32 of its UTF-8 bytes),
    without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(name.encode()))
        return build()


def shipped_or_seeded(arch: str, seed_name: str, build: Callable[[], Model]) -> Model:
    """The model of ``arch`` from its shipped weights, or, without them, ``build()`` seeded by
    ``seed_name`` (:func:`seeded`): an architecture to load your own weights into, built the
    same on every machine so that the files it writes decode anywhere."""
    path = shipped_weights(arch)
    if path is None:
        return seeded(seed_name, build)
    from ncodec.models.weights import load_weights

    return load_weights(path, arch=arch)
