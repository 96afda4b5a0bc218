"""Registry of ncodec's codecs: names, modalities, rate ladders, defaults, factories.

Every module of the ``ncodec.codecs`` package is imported on first use (and every module
named by an ``ncodec.codecs`` entry point of an installed distribution); a module that
defines codecs registers them here (:func:`register`), its modality
(:func:`ncodec.io.modality.register_modality`) and a loader for its weights files
(:func:`register_weights_loader`). So a new codec family is one new module: nothing shared
lists it. :func:`ncodec.load`, :func:`ncodec.decompress`, ``ncodec models``, the CLI and
``ncodec eval`` read the registry.

A *codec spec* is a registry name or a weights path: a ``.safetensors`` file that ``ncodec
train`` exported, or a run folder holding ``weights.safetensors``; the file's metadata names
its architecture. Registered architectures without trained weights in the package are shapes
to load checkpoints into, not codecs to pick: :func:`create` refuses them unless asked for
``untrained=True`` (files they wrote still decode).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

__all__ = ["DEFAULT_MODALITY", "FAMILIES", "CodecInfo", "check_device", "codec_for_header", "codec_info", "create",
           "default_codec", "describe", "is_weights_path", "list_codecs", "load_codec_modules", "register",
           "register_weights_loader", "unregister", "weights_file"]

FAMILIES = ("amortized", "overfitted")
"""How a codec gets its latents: an encoder network run once (amortized), or a network and
latents fitted to each signal at encode time (overfitted, INR-style)."""
from ncodec.io.modality import DEFAULT_MODALITY  # noqa: E402 (re-exported: ncodec.load's default modality)


@dataclass(frozen=True)
class CodecInfo:
    """What a registered codec is.

    Attributes:
        name: registry name, also written in every file's header (e.g. "mbt2018-mean").
        modality: the registered modality it codes ("image", "audio", ...).
        qualities: the quality levels it offers (higher = more bits, better fidelity).
        default_quality: used when no quality is given.
        default: whether this is the default codec of its modality (one per modality).
        description: one line for ``ncodec models``.
        weights: where its weights come from (e.g. "random init (untrained)").
        rate_unit: the unit of :attr:`rates`: "bpp" (bits per pixel), "kbps" (per channel),
            or "kbps@WxH" (video at a resolution).
        rates: its rate ladder ``{quality: rate in rate_unit}``: measured on validation data
            when the weights were exported, or the nominal rate a quality selects (audio);
            empty when unknown (untrained codecs).
        family: "amortized" (an encoder network) or "overfitted" (fitted per signal).
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
    rate_unit: str = ""
    rates: dict[int, float] = field(default_factory=dict)
    family: str = "amortized"
    trained: bool = True

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family {self.family!r} is not one of {FAMILIES}")
        if self.default_quality not in self.qualities:
            raise ValueError(f"{self.name}: default quality {self.default_quality} is not among {self.qualities}")
        if self.rates and not self.rate_unit:
            raise ValueError(f"{self.name}: a rate ladder needs its unit (rate_unit)")

    def rate_ladder(self) -> str:
        """The rate ladder as text, ``"1:0.12 2:0.20 (bpp)"``; ``"-"`` when unknown."""
        if not self.rates:
            return "-"
        return " ".join(f"{q}:{self.rates[q]:.3g}" for q in self.qualities if q in self.rates) + f" ({self.rate_unit})"


Factory = Callable[[int, torch.device], Any]
# A weights loader: (path, quality or None, device) -> (CodecInfo, codec object).
WeightsLoader = Callable[[Path, Optional[int], torch.device], tuple[CodecInfo, Any]]
_CODECS: dict[str, tuple[CodecInfo, Factory]] = {}
_WEIGHTS_FORMATS: dict[str, WeightsLoader] = {}
WEIGHTS_FILE = "weights.safetensors"
"""The weights file in a training run's output folder."""


def register_weights_loader(fmt: str, loader: WeightsLoader) -> None:
    """Let weights files whose metadata ``format`` is ``fmt`` be loaded as codecs by ``loader``."""
    _WEIGHTS_FORMATS[fmt] = loader


def is_weights_path(spec: str | os.PathLike) -> bool:
    """Whether a codec spec names a weights file or run folder rather than a registry name
    (a registered name always means the registered codec)."""
    text = os.fspath(spec)
    load_codec_modules()
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

    load_codec_modules()
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
    """Add a codec; ``factory(quality, device)`` builds a codec object
    (:class:`ncodec.codecs.base.Codec`) ready to use."""
    if info.name in _CODECS:
        raise ValueError(f"codec {info.name!r} is registered twice")
    if info.default and any(i.default and i.modality == info.modality for i, _ in _CODECS.values()):
        raise ValueError(f"a second default codec for modality {info.modality!r}: {info.name}")
    _CODECS[info.name] = (info, factory)


def unregister(name: str) -> None:
    """Remove codec ``name`` (plug-ins and tests that register codecs of their own)."""
    _CODECS.pop(name, None)


ENTRY_POINT_GROUP = "ncodec.codecs"
"""Installed distributions may name modules that register codecs under this entry-point group."""
_LOADED = False


def load_codec_modules() -> None:
    """Import every module of the ``ncodec.codecs`` package and every ``ncodec.codecs`` entry
    point, once: each registers what it defines. The registry imports none of them by name,
    so it stays the shared leaf they all depend on and a new codec module needs no listing."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True  # first: a module that uses the registry while it is imported must not recurse
    from importlib.metadata import entry_points

    try:
        for module in pkgutil.iter_modules([str(Path(__file__).parent)]):  # this package's modules
            importlib.import_module(f"{__package__}.{module.name}")
        for point in entry_points(group=ENTRY_POINT_GROUP):
            importlib.import_module(point.value)
    except BaseException:
        _LOADED = False  # a later call tries again and raises the same error, not a half registry
        raise



def list_codecs() -> list[CodecInfo]:
    """Every shipped codec, sorted by modality then name."""
    load_codec_modules()
    return sorted((info for info, _ in _CODECS.values()), key=lambda i: (i.modality, i.name))


def codec_info(name: str) -> CodecInfo:
    """The entry of codec ``name``; ValueError naming the known codecs if there is none."""
    load_codec_modules()
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


def default_codec(modality: str = DEFAULT_MODALITY) -> str:
    """Name of the default codec of ``modality``."""
    load_codec_modules()
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


def codec_for_header(header: Any, *, device: torch.device | str = "cpu", weights: Optional[str | os.PathLike] = None,
                     cache: Optional[Callable[..., Any]] = None) -> Any:
    """The codec that decodes a file with this container header: the registered codec it
    names at its quality, or the model in ``weights`` (a weights file or run folder, for files
    of models that are not shipped); the header's codec and modality are checked against it.

    Args:
        header: the file's :class:`ncodec.codecs.container.Header`.
        device: where to decode.
        weights: a weights path, when the file's model is not a shipped codec.
        cache: optional ``cache(spec, quality, device) -> codec`` (e.g. memoised :func:`create`).

    Raises:
        ncodec.BitstreamError: no integer quality, a codec this ncodec does not have, a quality
            it lacks, or weights / modality that do not match the header.
    """
    from ncodec.errors import BitstreamError

    meta = header.meta if isinstance(header.meta, dict) else {}
    quality = meta.get("quality")
    if type(quality) is not int:
        raise BitstreamError("file header has no integer quality")
    if weights is None:
        try:
            codec_info(header.codec)
        except ValueError:
            raise BitstreamError(f"file was made by codec {header.codec!r}, which this ncodec does not have") from None
    build = cache or (lambda spec, q, dev: create(spec, q, dev, untrained=True))
    try:
        codec = build(weights if weights is not None else header.codec, quality, str(device))
    except ValueError as exc:
        raise BitstreamError(f"file needs {header.codec} at quality {quality}: {exc}") from None
    if codec.name != header.codec:
        raise BitstreamError(f"file was made by {header.codec!r}, the weights {weights} are {codec.name!r}")
    if codec.modality != header.modality:
        raise BitstreamError(f"file header says modality {header.modality!r}, but codec {header.codec!r} codes "
                             f"{codec.modality}: a forged or damaged header")
    if weights is None and codec.fingerprint != header.fingerprint:
        # Written with earlier shipped weights of this codec: those still ship, by fingerprint.
        from ncodec.codecs.shipped import previous_weights

        earlier = previous_weights(header.codec, header.fingerprint)
        if earlier is not None:
            return codec_for_header(header, device=device, weights=earlier, cache=cache)
    return codec
