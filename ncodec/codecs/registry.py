"""Registry of the codecs ncodec ships: names, modalities, qualities, defaults, factories.

Each modality module (``ncodec.codecs.image``, ``ncodec.codecs.audio``) registers its codecs when imported;
:func:`ncodec.load`, :func:`ncodec.decompress`, ``ncodec models`` and the CLI read them here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

__all__ = ["CodecInfo", "codec_info", "create", "default_codec", "list_codecs", "register"]


@dataclass(frozen=True)
class CodecInfo:
    """What a shipped codec is.

    Attributes:
        name: registry name, also written in every file's header (e.g. "mbt2018-mean").
        modality: "image", "audio" or "video".
        qualities: the quality levels it has weights for (higher = more bits, better fidelity).
        default_quality: used when no quality is given.
        default: whether this is the default codec of its modality (one per modality).
        description: one line for ``ncodec models``.
        weights: where its weights come from (e.g. "random init (untrained)").
        nominal_bpp: ``{quality: bits per pixel}`` measured on the validation images when
            the weights were exported (empty for untrained codecs).
    """

    name: str
    modality: str
    qualities: tuple[int, ...]
    default_quality: int
    default: bool
    description: str
    weights: str
    nominal_bpp: dict[int, float] = field(default_factory=dict)


Factory = Callable[[int, torch.device], Any]
_CODECS: dict[str, tuple[CodecInfo, Factory]] = {}


def register(info: CodecInfo, factory: Factory) -> None:
    """Add a codec; ``factory(quality, device)`` builds a codec object ready to use."""
    if info.name in _CODECS:
        raise ValueError(f"codec {info.name!r} is registered twice")
    if info.default_quality not in info.qualities:
        raise ValueError(f"{info.name}: default quality {info.default_quality} is not among {info.qualities}")
    if info.default and any(i.default and i.modality == info.modality for i, _ in _CODECS.values()):
        raise ValueError(f"a second default codec for modality {info.modality!r}: {info.name}")
    _CODECS[info.name] = (info, factory)


def _ensure_loaded() -> None:
    # Modality modules register on import; importing here keeps `ncodec` itself light.
    import ncodec.codecs.audio  # noqa: F401
    import ncodec.codecs.image  # noqa: F401


def list_codecs() -> list[CodecInfo]:
    """Every shipped codec, sorted by modality then name."""
    _ensure_loaded()
    return sorted((info for info, _ in _CODECS.values()), key=lambda i: (i.modality, i.name))


def codec_info(name: str) -> CodecInfo:
    """The entry of codec ``name``; ValueError naming the known codecs if there is none."""
    _ensure_loaded()
    if name not in _CODECS:
        known = ", ".join(sorted(_CODECS))
        raise ValueError(f"unknown codec {name!r}; known codecs: {known}")
    return _CODECS[name][0]


def default_codec(modality: str) -> str:
    """Name of the default codec of ``modality``."""
    _ensure_loaded()
    for info, _ in _CODECS.values():
        if info.default and info.modality == modality:
            return info.name
    raise ValueError(f"no codec for modality {modality!r}")


def check_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device`` that ncodec codes on: the CPU, or CUDA where present.

    Raises:
        ValueError: not a device name, another kind (``mps``, ``meta``, ...), or no CUDA here.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"not a device: {device!r} (ncodec runs on 'cpu' or 'cuda')") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"ncodec runs on 'cpu' or 'cuda', not {dev.type!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA is not available on this machine")
    return dev


def create(name: str, quality: Optional[int] = None, device: torch.device | str = "cpu",
           modality: Optional[str] = None) -> Any:
    """Build codec ``name`` at ``quality`` (default: its default quality) on ``device``.

    Raises:
        ValueError: unknown codec, a quality that is not an int among the codec's, a codec of
            another ``modality`` than asked for, or a device ncodec cannot use.
    """
    info = codec_info(name)
    if modality is not None and info.modality != modality:
        raise ValueError(f"codec {name} codes {info.modality}, not {modality}")
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int)):
        raise ValueError(f"quality must be an int, one of {list(info.qualities)}; got {quality!r}")
    q = info.default_quality if quality is None else quality
    if q not in info.qualities:
        raise ValueError(f"{name} has qualities {list(info.qualities)}, not {quality}")
    return _CODECS[name][1](q, check_device(device))
