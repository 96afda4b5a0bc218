"""Registry of the codecs ncodec ships: names, modalities, qualities, defaults, factories.

Each modality module (``ncodec.codecs.image``, ``ncodec.codecs.audio``) registers its codecs
when imported, and a loader for its weights files (:func:`register_weights_format`);
:func:`ncodec.load`, :func:`ncodec.decompress`, ``ncodec models`` and the CLI read them here.

A *codec spec* is a registry name or a weights path: a ``.safetensors`` file that ``ncodec
train`` exported, or a run folder holding ``weights.safetensors``; the file's metadata names
its architecture. Registered architectures without trained weights in the package are shapes
to load checkpoints into, not codecs to pick: :func:`create` refuses them unless asked for
``untrained=True`` (files they wrote still decode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import importlib
import os
from pathlib import Path

import torch

__all__ = ["CodecInfo", "check_device", "codec_info", "create", "default_codec", "describe", "is_weights_path",
           "list_codecs", "register", "register_weights_format", "weights_file"]


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
        trained: whether trained weights ship with it (else :func:`create` needs
            ``untrained=True``).
    """

    name: str
    modality: str
    qualities: tuple[int, ...]
    default_quality: int
    default: bool
    description: str
    weights: str
    nominal_bpp: dict[int, float] = field(default_factory=dict)
    trained: bool = True


Factory = Callable[[int, torch.device], Any]
# A weights loader: (path, quality or None, device) -> (CodecInfo, codec object).
WeightsLoader = Callable[[Path, Optional[int], torch.device], tuple[CodecInfo, Any]]
_CODECS: dict[str, tuple[CodecInfo, Factory]] = {}
_WEIGHTS_FORMATS: dict[str, WeightsLoader] = {}
WEIGHTS_FILE = "weights.safetensors"
"""The weights file in a training run's output folder."""


def register_weights_format(fmt: str, loader: WeightsLoader) -> None:
    """Let weights files whose metadata ``format`` is ``fmt`` be loaded as codecs by ``loader``."""
    _WEIGHTS_FORMATS[fmt] = loader


def is_weights_path(spec: str | os.PathLike) -> bool:
    """Whether a codec spec names a weights file or run folder rather than a registry name
    (a registered name always means the registered codec)."""
    text = os.fspath(spec)
    _ensure_loaded()
    if text in _CODECS:
        return False
    return text.endswith(".safetensors") or os.sep in text or "/" in text or Path(text).exists()


def weights_file(spec: str | os.PathLike) -> Path:
    """The weights file a path names: the file itself, or a run folder's ``weights.safetensors``.

    Raises:
        FileNotFoundError: neither exists.
    """
    path = Path(spec)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{spec}: no such weights file (a .safetensors file, or a run folder holding "
                                f"{WEIGHTS_FILE})")
    return path


def _load_weights(spec: str | os.PathLike, quality: Optional[int], device: torch.device) -> tuple[CodecInfo, Any]:
    from safetensors import safe_open

    _ensure_loaded()
    path = weights_file(spec)
    try:
        with safe_open(str(path), framework="pt") as f:
            fmt = (f.metadata() or {}).get("format")
    except Exception as exc:  # safetensors raises its own types for damaged files
        raise ValueError(f"{path}: not a safetensors weights file ({exc})") from None
    if fmt not in _WEIGHTS_FORMATS:
        raise ValueError(f"{path}: not an ncodec weights file (format {fmt!r})")
    return _WEIGHTS_FORMATS[fmt](path, quality, device)


def register(info: CodecInfo, factory: Factory) -> None:
    """Add a codec; ``factory(quality, device)`` builds a codec object ready to use."""
    if info.name in _CODECS:
        raise ValueError(f"codec {info.name!r} is registered twice")
    if info.default_quality not in info.qualities:
        raise ValueError(f"{info.name}: default quality {info.default_quality} is not among {info.qualities}")
    if info.default and any(i.default and i.modality == info.modality for i, _ in _CODECS.values()):
        raise ValueError(f"a second default codec for modality {info.modality!r}: {info.name}")
    _CODECS[info.name] = (info, factory)


MODALITY_MODULES: tuple[str, ...] = ("ncodec.codecs.audio", "ncodec.codecs.image")
"""The modules that register codecs when imported: a new modality adds its module here and
plugs in through :func:`register` / :func:`register_weights_format` (the registry itself
imports none of them, so it stays the one shared leaf they all depend on)."""


def _ensure_loaded() -> None:
    # Imported on first use, by name: keeps `import ncodec` (and a failing CLI call) light.
    for name in MODALITY_MODULES:
        importlib.import_module(name)


def list_codecs() -> list[CodecInfo]:
    """Every shipped codec, sorted by modality then name."""
    _ensure_loaded()
    return sorted((info for info, _ in _CODECS.values()), key=lambda i: (i.modality, i.name))


def codec_info(name: str) -> CodecInfo:
    """The entry of codec ``name``; ValueError naming the known codecs if there is none."""
    _ensure_loaded()
    if name not in _CODECS:
        known = ", ".join(sorted(_CODECS))
        raise ValueError(f"unknown codec {name!r}; known codecs: {known} (or give a weights file or run folder)")
    return _CODECS[name][0]


def describe(spec: str | os.PathLike) -> CodecInfo:
    """The :class:`CodecInfo` of a codec spec: a registry name, or a weights path (read from
    the file's metadata; its ``name`` is the architecture written in files)."""
    if isinstance(spec, str) and not is_weights_path(spec):
        return codec_info(spec)
    return _load_weights(spec, None, torch.device("cpu"))[0]


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


def create(name: str | os.PathLike, quality: Optional[int] = None, device: torch.device | str = "cpu",
           modality: Optional[str] = None, *, untrained: bool = False) -> Any:
    """Build a codec at ``quality`` (default: its default quality) on ``device``.

    ``name`` is a registry name or a weights path (:func:`weights_file`). A registered
    architecture without trained weights is refused unless ``untrained`` (then its seeded
    random initialisation, the same on every machine: for tests and for decoding its files).

    Raises:
        ValueError: unknown codec, an untrained one, a quality that is not an int among the
            codec's, a codec of another ``modality`` than asked for, or a device ncodec
            cannot use.
        FileNotFoundError: a weights path that does not exist.
    """
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int)):
        raise ValueError(f"quality must be an int; got {quality!r}")
    dev = check_device(device)
    if not isinstance(name, str) or is_weights_path(name):
        info, codec = _load_weights(name, quality, dev)
        if modality is not None and info.modality != modality:
            raise ValueError(f"{name} holds a {info.modality} model, not {modality}")
        return codec
    info = codec_info(name)
    if modality is not None and info.modality != modality:
        raise ValueError(f"codec {name} codes {info.modality}, not {modality}")
    if not info.trained and not untrained:
        raise ValueError(f"{name} has no trained weights in this package: it is an architecture to load your own "
                         f"weights into (give a weights file or run folder from `ncodec train` instead of the "
                         f"name), not a codec to use as it is (seeded random weights code at a few dB PSNR); "
                         f"ncodec.load({name!r}, untrained=True) builds it anyway")
    q = info.default_quality if quality is None else quality
    if q not in info.qualities:
        raise ValueError(f"{name} has qualities {list(info.qualities)}, not {quality}")
    return _CODECS[name][1](q, dev)
