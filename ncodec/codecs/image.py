"""Image codec objects: a learned image model, its input handling, and the container.

``ImageCodec.compress`` takes RGB or grayscale 8-bit images of any size, pads them to the
model's alignment, runs the model, and writes each image's substreams into one ncodec
container; ``decompress`` checks the container and the model fingerprint, decodes, and
crops back. Every byte of the substreams comes from ncodec's range coder (the models'
entropy models are ncodec's, see ncodec.entropy.models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ncodec.codecs import container
from ncodec.codecs.base import Codec, Decoded, FileLike
from ncodec.codecs.meta import MetaField
from ncodec.codecs.registry import CodecInfo, register, register_weights_loader
from ncodec.codecs.shipped import describe_training, recorded_rates, shipped_or_seeded, shipped_weights, training_info
from ncodec.errors import BitstreamError
from ncodec.models import image as image_models
from ncodec.models import weights as weights_io

__all__ = ["ImageCodec", "ImageFiles"]

ImageInput = Union[torch.Tensor, np.ndarray]
DEFAULT_IMAGE_CODEC = "mbt2018-mean"
# The default: the first of these whose trained weights are in the package (the context
# model needs 31 % fewer bits than the hyperprior at equal PSNR, BD-rate on CID22 validation).
TRAINED_DEFAULTS = ("elic-gdn-vr", "mbt2018-mean-vr")
# Whole-image models hold several float activations of the image's size: beyond this they
# need tiling (a later release), so both sides refuse rather than exhaust memory.
MAX_PIXELS = 1 << 26
IMAGE_FORMAT = 2
"""Image file format written (``meta["format"]``). 2 (ncodec 0.2): exact entropy parameters
and coder streams with symbol checks. 1 (ncodec 0.1, no ``format`` field): float entropy
parameters, decodable only where the arithmetic matched the writer's."""
# Codecs whose format-1 files still decode: their entropy parameters never came from float
# networks (fixed per-channel tables), so the format-2 decoder reads them as they are.
FORMAT_1_DECODABLE = frozenset({"bmshj2018-factorized"})


def substream_names(count: int) -> tuple[str, ...]:
    """Names of a model's entropy streams, in CompressAI's order (the hyperprior last)."""
    if count == 1:
        return ("y",)
    if count == 2:
        return ("y", "z")
    return tuple(f"y{i}" for i in range(count - 1)) + ("z",)


def _shape_to_json(shape: Any) -> Any:
    """CompressAI's latent shape (torch.Size, or lists/dicts of them) as JSON lists."""
    if isinstance(shape, dict):
        return {k: _shape_to_json(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and not isinstance(shape[0], int):
        return [_shape_to_json(s) for s in shape]
    return [int(v) for v in shape]


def _shape_from_json(obj: Any, limit: int, depth: int = 0) -> Any:
    """Inverse of _shape_to_json; every dimension must lie in 1..limit (bounded memory)."""
    if depth > 4:
        raise BitstreamError("container metadata has a malformed latent shape (nested too deep)")
    if isinstance(obj, dict):
        return {k: _shape_from_json(v, limit, depth + 1) for k, v in obj.items()}
    if not isinstance(obj, list) or not obj or not all(isinstance(v, (int, list)) for v in obj):
        raise BitstreamError("container metadata has a malformed latent shape")
    if all(isinstance(v, int) for v in obj):
        if not all(0 < v <= limit for v in obj):
            raise BitstreamError(f"container metadata has a latent shape {obj} out of range 1..{limit}")
        return torch.Size(obj)
    return [_shape_from_json(v, limit, depth + 1) for v in obj]


def as_image_tensor(x: Any) -> torch.Tensor:
    """``x`` as a tensor: a tensor or array as it is, a ``PIL.Image`` or an image file path
    read as :func:`ncodec.io.read_image` reads files (uint8 ``[C, H, W]``)."""
    from PIL import Image

    from ncodec.io import pil_to_tensor, read_image

    if isinstance(x, (str, Path)):
        return read_image(x)
    if isinstance(x, Image.Image):
        return pil_to_tensor(x, "the PIL image")
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"expected an image tensor [C, H, W], a numpy array, a PIL image or a file path, "
                         f"got {type(x).__name__}") from None


def to_float_batch(x: ImageInput) -> tuple[torch.Tensor, int]:
    """Validate an image or batch and return it as float ``[B, C, H, W]`` in [0, 1].

    Accepts ``[C, H, W]`` or ``[B, C, H, W]`` with C = 1 (grayscale) or 3 (RGB), as uint8
    (0..255) or floating point in [0, 1] (a tensor or numpy array), or a ``PIL.Image`` or an
    image file path. Returns the batch and the channel count C.
    """
    t = as_image_tensor(x)
    if t.dim() not in (3, 4):
        raise ValueError(f"expected an image [C, H, W] or a batch [B, C, H, W], got shape {tuple(t.shape)}")
    batch = t if t.dim() == 4 else t.unsqueeze(0)
    b, c, h, w = batch.shape
    if c not in (1, 2, 3, 4) and batch.shape[-1] in (1, 3, 4):
        raise ValueError(f"expected channels first, [C, H, W]; shape {tuple(t.shape)} looks like [H, W, C] "
                         "(x.permute(2, 0, 1) for one image, x.permute(0, 3, 1, 2) for a batch)")
    if c in (2, 4):
        raise ValueError(f"images with an alpha channel are not supported ({c} channels); drop it first")
    if c not in (1, 3):
        raise ValueError(f"expected 1 (grayscale) or 3 (RGB) channels, got {c}")
    if b == 0 or h == 0 or w == 0:
        raise ValueError(f"empty image: shape {tuple(t.shape)}")
    if h * w > MAX_PIXELS:
        raise ValueError(f"image of {h}x{w} pixels is larger than the {MAX_PIXELS:,}-pixel limit")
    if batch.dtype == torch.uint8:
        return batch.float() / 255.0, c
    if not batch.is_floating_point():
        raise ValueError(f"expected uint8 (8-bit) or float images in [0, 1], got {batch.dtype} "
                         "(16-bit and other integer images are not supported)")
    batch = batch.float()
    if not torch.isfinite(batch).all() or batch.min() < 0 or batch.max() > 1:
        raise ValueError("float images must be finite and in [0, 1]")
    return batch, c


class ImageFiles:
    """Image files in and out, for every image codec: ``read_file`` and ``file_bytes``."""

    def read_file(self, src: FileLike) -> torch.Tensor:
        """An image file (PNG, JPEG, WebP; a path or binary file) as uint8 ``[C, H, W]``."""
        from ncodec.io import read_image

        return read_image(src)

    def file_bytes(self, decoded: Decoded, suffix: str) -> bytes:
        """The decoded image as a ``suffix`` file (PNG, lossless WebP, JPEG at quality 95, ...)."""
        from ncodec.io import image_bytes

        return image_bytes(decoded.tensor, suffix)


class ImageCodec(ImageFiles, Codec):
    """A learned image codec at one quality (the :class:`~ncodec.codecs.base.Codec` interface).

    Args:
        name: registry name, written in every file.
        quality: quality level, one of the architecture's (1 .. 5 for the variable-rate
            models, 1 .. 8 for CompressAI's).
        model: a CompressAI-style model whose entropy models are ncodec's, after ``update()``.
        device: where the model runs ("cpu" or "cuda").
        fast: code through fast copies of the model's transforms (:mod:`ncodec.models.fast`:
            folded GDN, channels_last, prepacked and fused convolutions) for ``g_a`` and
            ``g_s``. Files are the same format either way and decode alike: every entropy
            parameter is computed by the model's own modules; the fast synthesis moves
            reconstructions by float rounding only (<= 1e-5 measured). ``False``: exactly the
            model's own path (``model.compress`` / ``model.decompress``), which models of
            other classes than ``ncodec.models.fast.supports`` lists always take.
        bf16: run the analysis transform ``g_a`` (encoder only) in bfloat16: about twice as
            fast on CPUs with native bf16, with latents that differ by ~1e-2 relative (other
            bytes, equally decodable; measured within +-0.03 % of the bytes and 0.003 dB of
            the PSNR of float32, see benchmarks/results/image_codecs.md). ``None``: on where
            the CPU has native bf16 (AVX512-BF16 / AMX). Ignored unless ``fast``.
    """

    modality = "image"
    meta_schema = {
        "width": MetaField(int, lo=1, hi=1 << 16), "height": MetaField(int, lo=1, hi=1 << 16),
        "channels": MetaField(int, choices=(1, 3)), "quality": MetaField(int, lo=0),
        "latent_shape": MetaField(object), "format": MetaField(int, required=False),
        "bit_depth": MetaField(int, choices=(8,), required=False),
        "color": MetaField(str, choices=("gray", "rgb"), required=False),
    }

    def __init__(self, name: str, quality: int, model: torch.nn.Module, device: torch.device | str = "cpu",
                 *, fast: bool = True, bf16: bool | None = None):
        from ncodec.models import fast as fast_models

        self.name = name
        self.quality = quality
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.alignment = image_models.ARCHITECTURES[name].alignment
        self.fingerprint = image_models.model_fingerprint(self.model)
        # A variable-rate model serves every quality; it is told which one per call.
        self._quality_arg = {"quality": quality} if getattr(model, "variable_rate", False) else {}
        self.fast = bool(fast) and fast_models.supports(self.model)
        if bf16 is None:
            bf16 = self.device.type == "cpu" and fast_models.bf16_supported(self.device)
        self.bf16 = self.fast and bool(bf16)
        # Built from the loaded weights; rebuilt before use if the model's weights change.
        self._fast = fast_models.FastTransforms(self.model, bf16=self.bf16) if self.fast else None

    def __repr__(self) -> str:
        return (f"ImageCodec({self.name!r}, quality={self.quality}, device={self.device}, "
                f"fast={self.fast}, bf16={self.bf16})")

    # ---------------------------------------------------------------- encoding

    def compress(self, x: ImageInput) -> Union[bytes, list[bytes]]:
        """Code an image ``[C, H, W]`` (bytes) or a batch ``[B, C, H, W]`` (a list, one file each).

        Images are uint8 or float in [0, 1], RGB (C = 3) or grayscale (C = 1), any size; a
        ``PIL.Image`` or an image file path is read as one image.
        """
        t = as_image_tensor(x)  # once: a path is read once
        batch, channels = to_float_batch(t)
        files = [self._compress_one(img.unsqueeze(0), channels) for img in batch]
        return files if t.dim() == 4 else files[0]

    def _compress_one(self, img: torch.Tensor, channels: int) -> bytes:
        _, _, h, w = img.shape
        rgb = img.expand(-1, 3, -1, -1) if channels == 1 else img
        padded = F.pad(rgb, (0, -w % self.alignment, 0, -h % self.alignment), mode="replicate")
        with torch.inference_mode():
            if self._fast is not None:
                out = self._fast.refresh().compress(padded.to(self.device), **self._quality_arg)
            else:
                out = self.model.compress(padded.to(self.device), **self._quality_arg)
        streams = [s[0] for s in out["strings"]]
        header = container.Header(
            codec=self.name,
            fingerprint=self.fingerprint,
            modality="image",
            substreams=substream_names(len(streams)),
            meta={"format": IMAGE_FORMAT, "width": w, "height": h, "channels": channels, "bit_depth": 8,
                  "color": "gray" if channels == 1 else "rgb", "quality": self.quality,
                  "latent_shape": _shape_to_json(out["shape"])},
        )
        return container.pack(header, [streams])

    # ---------------------------------------------------------------- decoding

    def decode_chunks(self, header: container.Header, meta: dict, chunks: list[list[bytes]]) -> Decoded:
        """The image of a checked file: float ``[C, H, W]`` in [0, 1] on the codec's device."""
        if len(chunks) != 1:
            raise BitstreamError(f"an image file has 1 chunk, this one has {len(chunks)}")
        h, w, c = meta["height"], meta["width"], meta["channels"]
        # Latent dimensions are channel counts (<= 1024) or image size / 16 at most.
        latent_shape = _shape_from_json(meta["latent_shape"], max(1024, -(-max(h, w) // 16)))
        strings = [[s] for s in chunks[0]]
        try:
            with torch.inference_mode():
                if self._fast is not None:
                    out = self._fast.refresh().decompress(strings, latent_shape, **self._quality_arg)
                else:
                    out = self.model.decompress(strings, latent_shape, **self._quality_arg)
        except BitstreamError:
            raise
        except (RuntimeError, IndexError, TypeError, ValueError, AssertionError) as exc:
            # Shapes or stream counts that the model cannot combine: the file is not this model's.
            raise BitstreamError(f"file does not fit the {self.name} model: {exc}") from None
        if not bool(torch.isfinite(out["x_hat"]).all()):
            raise BitstreamError("decoded image is not finite: the file's latents lie outside anything the "
                                 f"{self.name} model produces (a forged or foreign file)")
        x_hat = out["x_hat"].clamp(0, 1)
        if x_hat.shape[-2] < h or x_hat.shape[-1] < w:
            raise BitstreamError(f"decoded {tuple(x_hat.shape[-2:])} is smaller than the recorded {h}x{w}")
        x_hat = x_hat[0, :, :h, :w]
        return Decoded(x_hat.mean(0, keepdim=True) if c == 1 else x_hat, "image", meta=meta)

    def check_format(self, header: container.Header) -> None:
        check_image_format(header)

    def check_meta(self, meta: dict, header: container.Header) -> dict:
        if meta["quality"] != self.quality:
            # Variable-rate models share weights (and the fingerprint) across qualities.
            raise BitstreamError(f"file was coded at quality {meta['quality']!r}, this codec is quality "
                                 f"{self.quality} (ncodec.decompress picks the right one)")
        if meta["width"] * meta["height"] > MAX_PIXELS:
            raise BitstreamError(f"image file claims {meta['height']}x{meta['width']} pixels, "
                                 f"more than the {MAX_PIXELS:,}-pixel limit")
        return meta


def check_image_format(header: container.Header) -> None:
    """Refuse an image file of a format this release cannot decode, saying who wrote it.

    Raises:
        ncodec.BitstreamError: format 1 (ncodec 0.1) of a codec not in
            :data:`FORMAT_1_DECODABLE`, or an unknown format.
    """
    fmt = header.meta.get("format", 1)
    if fmt == IMAGE_FORMAT or (fmt == 1 and header.codec in FORMAT_1_DECODABLE):
        return
    if fmt == 1:
        raise BitstreamError(
            f"this {header.codec} file is image format 1, written by ncodec 0.1.x: its entropy parameters "
            f"came from float networks and decode only where the arithmetic matches the writer's (same "
            f"CPU instruction set and thread count); ncodec 0.2 writes and reads format {IMAGE_FORMAT}. "
            f"Decode it with ncodec 0.1.x on the machine that wrote it, or re-encode the original")
    raise BitstreamError(f"image file format {fmt!r} is not one this ncodec reads (format {IMAGE_FORMAT}; "
                         f"a newer ncodec may have written it)")


# -------------------------------------------------------------------- registry


def _untrained(arch: str, quality: int):
    # CompressAI-compatible architectures to load your own checkpoints into, not codecs as they are.
    model = image_models.build_image_model(arch, **image_models.ARCHITECTURES[arch].channels(quality))
    model.update(force=True)
    return model


def _factory(arch: str):
    def build(quality: int, device: torch.device) -> ImageCodec:
        model = shipped_or_seeded(arch, f"{arch}/q{quality}", lambda: _untrained(arch, quality))
        return ImageCodec(arch, quality, model, device)

    return build


def _default_image_codec() -> str:
    return next((name for name in TRAINED_DEFAULTS if shipped_weights(name)), DEFAULT_IMAGE_CODEC)


def _codec_info(arch: str, path: Optional[Path], qualities: tuple[int, ...], default_quality: int, *,
                default: bool = False, description: str = "") -> CodecInfo:
    spec = image_models.ARCHITECTURES[arch]
    record = training_info(path)
    return CodecInfo(name=arch, modality="image", qualities=qualities, default_quality=default_quality,
                     default=default, description=description or spec.description,
                     weights=describe_training(record), rate_unit="bpp", rates=recorded_rates(record, qualities),
                     trained=path is not None)


def _from_weights(path: Path, quality: Optional[int], device: torch.device) -> tuple[CodecInfo, ImageCodec]:
    """An image weights file (``ncodec train image``'s export) as (its CodecInfo, a codec at
    ``quality``): a variable-rate model serves its qualities (default 3), another model the
    one quality it was trained for."""
    meta = weights_io.read_metadata(path)
    arch = meta.get("arch")
    if arch not in image_models.ARCHITECTURES:
        raise ValueError(f"{path}: weights of an unknown image architecture {arch!r}")
    spec = image_models.ARCHITECTURES[arch]
    trained_at = int(meta["quality"])
    qualities = spec.qualities if spec.variable_rate else (trained_at,)
    default_quality = 3 if spec.variable_rate else trained_at
    q = default_quality if quality is None else quality
    if q not in qualities:
        raise ValueError(f"{path}: weights for qualities {list(qualities)}, not {q}")
    info = _codec_info(arch, path, qualities, default_quality, description=f"{spec.description} (weights {path})")
    return info, ImageCodec(arch, q, weights_io.load_weights(path, arch=arch), device)


register_weights_loader(weights_io.FORMAT, _from_weights)
for _arch, _spec in image_models.ARCHITECTURES.items():
    register(_codec_info(_arch, shipped_weights(_arch), _spec.qualities, 3, default=_arch == _default_image_codec()),
             _factory(_arch))
