"""ncodec: learned image, audio and video codecs over one exact, fast and safe bitstream.

>>> import ncodec
>>> codec = ncodec.load("mbt2018-mean", quality=3)      # or ncodec.load() for the default
>>> data = codec.compress(image)                          # uint8 or float [C, H, W] -> bytes
>>> x_hat = ncodec.decompress(data)                       # picks the codec from the header
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional

__version__ = "0.2.0"

from ncodec.errors import BitstreamError  # noqa: E402

__all__ = ["BitstreamError", "__version__", "decompress", "list_codecs", "load"]


def list_codecs() -> list:
    """The shipped codecs (:class:`ncodec.codecs.registry.CodecInfo`: name, modality,
    qualities, default_quality, default, description, weights)."""
    from ncodec.codecs.registry import list_codecs as _list

    return _list()


def load(name: Optional[str] = None, quality: Optional[int] = None, *, device: str = "cpu",
         modality: Optional[str] = None) -> Any:
    """A codec object: an image codec (``compress(image) -> bytes``, ``decompress(data) ->
    float [C, H, W]``) or an audio codec (``compress(wav, sample_rate) -> bytes``,
    ``decompress(data) -> (wav, sample_rate)``).

    Args:
        name: registry name (see :func:`list_codecs`); default: the modality's default codec.
        quality: quality level, an int among the codec's qualities; default: its default.
        device: "cpu" or "cuda" (where the model runs; the bytes are the same).
        modality: "image" or "audio": the default codec's modality when ``name`` is None
            (default "image"), and a check when ``name`` is given.

    Raises:
        ValueError: unknown codec, wrong quality or modality, or a device ncodec cannot use.
    """
    from ncodec.codecs import registry

    if name is None:
        return registry.create(registry.default_codec(modality or "image"), quality, device)
    return registry.create(name, quality, device, modality=modality)


@lru_cache(maxsize=8)
def _cached(name: str, quality: int, device: str) -> Any:
    return load(name, quality, device=device)


def decompress(data: bytes, *, device: str = "cpu") -> Any:
    """Decode any ncodec file: the codec and quality are read from its header."""
    from ncodec.codecs import container, registry

    header = container.read_header(data)
    try:
        info = registry.codec_info(header.codec)
    except ValueError:
        raise BitstreamError(f"file was made by codec {header.codec!r}, which this ncodec does not have") from None
    if info.modality != header.modality:
        raise BitstreamError(f"file header says modality {header.modality!r}, but codec {header.codec!r} codes "
                             f"{info.modality}: a forged or damaged header")
    quality = header.meta.get("quality") if isinstance(header.meta, dict) else None
    if type(quality) is not int:
        raise BitstreamError("file header has no integer quality")
    try:
        codec = _cached(header.codec, quality, str(device))
    except ValueError as exc:
        raise BitstreamError(f"file needs {header.codec} at quality {quality}: {exc}") from None
    return codec.decompress(data)
