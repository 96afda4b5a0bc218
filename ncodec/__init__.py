"""ncodec: learned image, audio and video codecs over one exact, fast and safe bitstream.

>>> import ncodec
>>> codec = ncodec.load("elic-gdn-vr", quality=3)       # or ncodec.load() for the default
>>> data = codec.compress(image)                          # uint8 or float [C, H, W] -> bytes
>>> x_hat = ncodec.decompress(data).tensor                # picks the codec from the header
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional

__version__ = "0.2.0"

from ncodec.errors import BitstreamError  # noqa: E402

__all__ = ["BitstreamError", "Codec", "Decoded", "__version__", "decompress", "list_codecs", "load"]


def __getattr__(name: str) -> Any:
    # ncodec.Codec / ncodec.Decoded without importing torch at `import ncodec`.
    if name in ("Codec", "Decoded"):
        from ncodec.codecs import base

        return getattr(base, name)
    raise AttributeError(f"module 'ncodec' has no attribute {name!r}")


def list_codecs() -> list:
    """The shipped codecs (:class:`ncodec.codecs.registry.CodecInfo`: name, modality,
    qualities, default_quality, default, description, weights)."""
    from ncodec.codecs.registry import list_codecs as _list

    return _list()


def load(name: Optional[str] = None, quality: Optional[int] = None, *, device: str = "cpu",
         modality: Optional[str] = None, untrained: bool = False) -> Any:
    """A codec object (:class:`ncodec.codecs.base.Codec`): ``compress(media) -> bytes`` (an
    image ``[C, H, W]``; audio ``wav, sample_rate``), ``decompress(data) -> Decoded``,
    ``encode_file(src, dst)`` / ``decode_file(src, dst)``.

    Args:
        name: registry name (see :func:`list_codecs`), or a weights file / run folder from
            ``ncodec train`` (its architecture is read from the file); default: the
            modality's default codec.
        quality: quality level, an int among the codec's qualities; default: its default.
        device: "cpu" or "cuda" (where the model runs; a trained codec writes the same bytes
            on either, an overfitted one's fit may end elsewhere: its file differs, and
            decodes alike everywhere).
        modality: a registered modality ("image", "audio", ...): the default codec's modality
            when ``name`` is None (default "image"), and a check when ``name`` is given.
        untrained: build a registered architecture that has no trained weights in the
            package (seeded random weights: for tests, not for coding media).

    Raises:
        ValueError: unknown or untrained codec, wrong quality or modality, or a device
            ncodec cannot use.
    """
    from ncodec.codecs import registry

    if name is None:
        return registry.create(registry.default_codec(modality or registry.DEFAULT_MODALITY), quality, device)
    return registry.create(name, quality, device, modality=modality, untrained=untrained)


@lru_cache(maxsize=8)
def _cached(spec: str, quality: int, device: str, weights_key: Optional[tuple] = None) -> Any:
    # weights_key: (path, size, mtime_ns), so that a rewritten weights file is read again.
    return load(spec, quality, device=device, untrained=True)


def decompress(data: bytes, *, device: str = "cpu", weights: Optional[str] = None) -> Any:
    """Decode any ncodec file: the codec and quality are read from its header.

    Args:
        data: the whole file.
        device: where to decode.
        weights: the weights file or run folder of the model that made the file, when it is
            not a shipped codec (e.g. from ``ncodec train``).

    Returns:
        a :class:`ncodec.codecs.base.Decoded` for every modality: ``.tensor`` (an image float
        ``[C, H, W]`` in [0, 1]; audio float32 ``[C, T]``), ``.modality``, ``.sample_rate``
        (audio), ``.frame_rate`` (video) and ``.meta`` (the header's fields).

    Raises:
        ncodec.BitstreamError: not an ncodec file, damaged, or made by another model.
    """
    import os

    from ncodec.codecs import container, registry

    header = container.read_header(data)
    key = None
    if weights is not None:
        path = registry.weights_file(weights)
        stat = os.stat(path)
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    codec = registry.codec_for_header(header, device=device, weights=weights,
                                      cache=lambda spec, q, dev: _cached(str(spec), q, dev, key))
    return codec.decompress(data)
