"""Overfitted image codecs ``inr-image`` and ``inr-image-light`` (Cool-chic / C3 family).

No pretrained weights: encoding fits a small model (:class:`ncodec.models.inr.InrImageModel`:
latent grids, upsampling, synthesis, ARM) to the image (:func:`ncodec.models.inr_fit.fit_image`
at the quality's rate-distortion weight), rounds its parameters to power-of-two steps
(:func:`ncodec.models.inr_quantize.quantize_network`), moves single integers up or down
where that pays (RDOQ, :func:`~ncodec.models.inr_quantize.refine_network`), and stores the
model and the latents (:mod:`ncodec.models.inr_coding`) in one ncodec container: the file
holds everything its decoding needs. Layout: ``docs/bitstream.md``, "inr-image files".

* **Effort** (``effort=`` / ``ncodec encode --effort``): the fit's iterations, :data:`EFFORTS`;
  ``seconds=`` (``--seconds``) caps the fit's wall time instead (the schedule follows the time).
* **Exact decoding.** The latents' probabilities come from the ARM in fixed-point integer
  arithmetic: the latents decode alike on every machine, thread count and device. The
  encoder decodes its own latents once more before returning (the decode check).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
from typing import Any, Optional, Union

import torch

from ncodec.codecs import container
from ncodec.codecs.base import Codec, Decoded
from ncodec.codecs.image import MAX_PIXELS, ImageFiles, ImageInput, as_image_tensor, to_float_batch
from ncodec.codecs.meta import MetaField
from ncodec.codecs.registry import CodecInfo, register
from ncodec.codecs.varint import pack_ints, read_varint
from ncodec.entropy.logits import LOG_SCALE_MIN
from ncodec.errors import BitstreamError
from ncodec.models import inr_coding
from ncodec.models.inr import PRESETS, InrConfig, InrImageModel
from ncodec.models.inr_fit import fit_image
from ncodec.models.inr_quantize import (module_groups, network_layers, quantize_network, quantized_latents,
                                        refine_network)

__all__ = ["EFFORTS", "INR_FORMAT", "LAMBDAS", "READABLE_FORMATS", "InrImageCodec", "config_from_meta",
           "pack_model_head", "read_model_head"]

INR_FORMAT = 3
"""``meta["format"]`` of the inr-image files this release writes (it reads formats 1 to 3).
Format 2 codes each layer's parameters with a step and a row of its own and moves the model's
description from the header's JSON into the network substream (about 60 bytes less a file).
Format 3 adds ``InrConfig.ancestor_context`` to that description (the ARM's context includes
co-located values of coarser grids; the latents are coded coarsest grid first)."""
READABLE_FORMATS = (1, 2, 3)
# InrConfig fields that files of older formats do not store, with the value they mean there.
_FIELDS_ADDED = {"ancestor_context": (3, 0)}
LAMBDAS: dict[int, float] = {1: 2e-2, 2: 1e-2, 3: 5e-3, 4: 2.5e-3, 5: 1.2e-3, 6: 6e-4, 7: 3e-4, 8: 1.5e-4}
"""Rate-distortion weight of each quality: the fit minimises ``MSE + lam * bpp`` (RGB in [0, 1])."""
EFFORTS: dict[str, int] = {"fast": 300, "medium": 700, "slow": 3000, "slowest": 10000}
"""Fit iterations per effort preset. ``medium`` (the default) encodes a 512x512 photo in
106-113 s on 2 threads of the 2-core Intel VM (3 CID22 photos, 5 qualities); that VM has run
up to 1.7x slower at other times (0.13-0.22 s per fit iteration), which would make it about
3 minutes."""
DEFAULT_EFFORT = "medium"
SUBSTREAMS = ("network", "latents")
# Bounds on what a file may ask the decoder to build (hostile files): widths, depths, parameters.
_MAX_WIDTH, _MAX_LEVELS, _MAX_PARAMETERS = 256, 16, 1 << 20
_BAND_BYTES = 1 << 26


def _stored_fields(fmt: int) -> list[dataclasses.Field]:
    """The InrConfig fields a file of format ``fmt`` stores, in declaration order."""
    return [f for f in dataclasses.fields(InrConfig) if _FIELDS_ADDED.get(f.name, (0, None))[0] <= fmt]


def config_from_meta(obj: Any, fmt: int = INR_FORMAT) -> InrConfig:
    """The :class:`InrConfig` that a file of format ``fmt`` describes with ``obj``: the values
    of the fields that format stores (:func:`_stored_fields`), in their declaration order (a
    compact list: every byte of the header counts at these rates); a field a format does not
    store takes the value it meant there (:data:`_FIELDS_ADDED`).

    Raises:
        ncodec.BitstreamError: not a list of one value per field, each of its default's type
            (tuples as lists of ints) and within bounds.
    """
    fields = _stored_fields(fmt)
    if not isinstance(obj, list) or len(obj) != len(fields):
        raise BitstreamError(f"inr-image model config must list {len(fields)} values "
                             f"({', '.join(f.name for f in fields)})")
    values = {name: old for name, (added, old) in _FIELDS_ADDED.items() if added > fmt}
    defaults = InrConfig()
    for field, value in zip(fields, obj):
        default = getattr(defaults, field.name)
        if isinstance(default, tuple):
            ok = isinstance(value, list) and len(value) <= 8 and all(
                type(v) is int and 1 <= v <= _MAX_WIDTH for v in value)
            value = tuple(value) if ok else value
        elif isinstance(default, bool):
            ok = type(value) is bool
        elif isinstance(default, int):
            ok = type(value) is int and 0 <= value <= _MAX_WIDTH
        elif isinstance(default, float):
            ok = type(value) in (int, float) and math.isfinite(value)
            value = float(value) if ok else value
        else:
            ok = type(value) is type(default)
        if not ok:
            raise BitstreamError(f"inr-image model config field {field.name!r} has an invalid value {value!r}")
        values[field.name] = value
    config = InrConfig(**values)
    if not 1 <= config.levels <= _MAX_LEVELS or config.latent_range != defaults.latent_range:
        raise BitstreamError("inr-image model config has an unsupported number of levels or latent range")
    return config


def pack_model_head(config: InrConfig, codings: list[inr_coding.GroupCoding]) -> bytes:
    """The description of the model (formats 2 and 3) at the start of the network substream:
    varints of InrConfig's fields (format 3's: all of them) in declaration order (a tuple as
    its length, then its values), then per layer ``step_bits``,
    ``(log_scale - LOG_SCALE_MIN) / SCALE_LADDER``, ``half``."""
    values: list[int] = []
    for v in dataclasses.astuple(config):
        values += [len(v), *v] if isinstance(v, tuple) else [v]
    for c in codings:
        index, rest = divmod(c.log_scale - LOG_SCALE_MIN, inr_coding.SCALE_LADDER)
        if rest or index < 0:
            raise ValueError(f"log_scale {c.log_scale} is not on the ladder of formats 2 and 3")
        values += [c.step_bits, index, c.half]
    return pack_ints(values)


def read_model_head(data: bytes, fmt: int = INR_FORMAT) -> tuple[InrConfig, list[inr_coding.GroupCoding], int]:
    """The config, the layers' codings and where the coder stream starts, of a network
    substream of format ``fmt`` (2 or 3: :func:`pack_model_head`).

    Raises:
        ncodec.BitstreamError: truncated, or values out of bounds.
    """
    pos, fields = 0, []
    what = "inr-image model head"
    for field in _stored_fields(fmt):
        value, pos = read_varint(data, pos, what)
        if isinstance(field.default, tuple):
            if value > 8:
                raise BitstreamError(f"{what}: {field.name} has {value} entries (at most 8)")
            items = []
            for _ in range(value):
                item, pos = read_varint(data, pos, what)
                items.append(item)
            value = items
        fields.append(value)
    config = config_from_meta(fields, fmt)
    try:
        layers = len(network_layers(InrImageModel(1, 1, config)))
    except (ValueError, RuntimeError) as exc:
        raise BitstreamError(f"inr-image model config cannot be built: {exc}") from None
    raw = []
    for _ in range(3 * layers):
        value, pos = read_varint(data, pos, what)
        raw.append(value)
    codings = [[raw[i], LOG_SCALE_MIN + inr_coding.SCALE_LADDER * min(raw[i + 1], 1 << 20), raw[i + 2]]
               for i in range(0, len(raw), 3)]
    return config, _codings_from_meta(codings, [f"layer {i}" for i in range(layers)]), pos


class InrImageCodec(ImageFiles, Codec):
    """An overfitted image codec at one quality (:data:`LAMBDAS`), model class ``preset``.

    Args:
        name: registry name (written in every file).
        quality: 1 .. 8 (higher: more bits, better fidelity).
        preset: the model class, a key of :data:`ncodec.models.inr.PRESETS`.
        device: where the fit runs ("cpu" or "cuda"); decoding runs on the CPU.
        effort: default effort (a key of :data:`EFFORTS`) or iteration count.
        seconds: default wall-time cap of the fit (None: none).
        progress: a progress bar while fitting (None: when stderr is a terminal).
        seed: the fit's random seed (its noise; the same seed, image and settings give the
            same file on the same machine).
    """

    modality = "image"
    substreams = SUBSTREAMS
    encode_options = ("effort", "seconds")
    meta_schema = {
        "format": MetaField(int), "width": MetaField(int, lo=1, hi=1 << 16),
        "height": MetaField(int, lo=1, hi=1 << 16), "channels": MetaField(int, choices=(1, 3)),
        "quality": MetaField(int, lo=0), "bit_depth": MetaField(int, choices=(8,), required=False),
        "color": MetaField(str, choices=("gray", "rgb"), required=False),
        # format 1 only (formats 2 and 3 keep them in the network substream, in binary)
        "config": MetaField(object, required=False), "network": MetaField(object, required=False),
        "iterations": MetaField(int, lo=0, required=False),
    }

    def __init__(self, name: str, quality: int, preset: str = "default", device: torch.device | str = "cpu", *,
                 effort: Union[str, int] = DEFAULT_EFFORT, seconds: Optional[float] = None,
                 progress: Optional[bool] = None, seed: int = 0):
        if quality not in LAMBDAS:
            raise ValueError(f"{name} has qualities {sorted(LAMBDAS)}, not {quality}")
        self.name, self.quality, self.preset = name, quality, preset
        self.config = PRESETS[preset]
        self.device = torch.device(device)
        self.lam = LAMBDAS[quality]
        self.effort, self.seconds = effort, seconds
        self.progress, self.seed = progress, int(seed)
        # Decoding depends on no weights: the fingerprint names the codec (in every format the
        # one format 1 introduced; meta["format"] tells the layouts apart).
        self.fingerprint = hashlib.sha256(f"ncodec {name} format 1".encode()).hexdigest()[:32]
        self.last_fit: Optional[dict] = None

    def __repr__(self) -> str:
        return f"InrImageCodec({self.name!r}, quality={self.quality}, preset={self.preset!r}, effort={self.effort!r})"

    # ---------------------------------------------------------------- encoding

    @staticmethod
    def iterations_for(effort: Union[str, int]) -> int:
        """Fit iterations of an effort preset name or an iteration count."""
        if isinstance(effort, str):
            if effort not in EFFORTS:
                raise ValueError(f"effort must be one of {', '.join(EFFORTS)} or a number of iterations, "
                                 f"not {effort!r}")
            return EFFORTS[effort]
        if isinstance(effort, bool) or not isinstance(effort, int) or effort < 1:
            raise ValueError(f"effort must be a preset name or a positive number of iterations, not {effort!r}")
        return effort

    def compress(self, x: ImageInput, *, effort: Union[str, int, None] = None,
                 seconds: Optional[float] = None) -> Union[bytes, list[bytes]]:
        """Fit a model to an image ``[C, H, W]`` and code it (bytes; a batch ``[B, C, H, W]``
        gives a list, one file each). Images as :class:`ncodec.codecs.image.ImageCodec` takes
        them. ``effort``: a key of :data:`EFFORTS` or an iteration count; ``seconds``: a cap
        on the fit's wall time (defaults: the codec's)."""
        iterations = self.iterations_for(self.effort if effort is None else effort)
        seconds = self.seconds if seconds is None else seconds
        if seconds is not None and not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"seconds must be a positive number, not {seconds!r}")
        t = as_image_tensor(x)
        batch, channels = to_float_batch(t)
        files = [self._compress_one(img, channels, iterations, seconds) for img in batch]
        return files if t.dim() == 4 else files[0]

    def _compress_one(self, img: torch.Tensor, channels: int, iterations: int, seconds: Optional[float]) -> bytes:
        _, h, w = img.shape
        rgb = img.expand(3, -1, -1) if channels == 1 else img
        progress = sys.stderr.isatty() if self.progress is None else self.progress
        fit = fit_image(rgb, self.lam, config=self.config, iterations=iterations, max_seconds=seconds,
                        progress=progress, device=self.device, seed=self.seed)
        model = fit.model
        layers = network_layers(model)
        info = refine_network(model, rgb, self.lam, quantize_network(model, rgb, self.lam, layers))
        network, codings = inr_coding.encode_network(list(layers.values()), [info[n]["step_bits"] for n in layers])
        head = pack_model_head(self.config, codings)
        latents = quantized_latents(model)
        arm = inr_coding.ExactArm(model.arm)
        r = self.config.latent_range
        ancestors = self.config.ancestor_context
        coded = inr_coding.encode_latents(arm, latents, r, ancestors)
        # The decode check: the latents as a decoder will read them.
        again = inr_coding.decode_latents(arm, [tuple(y.shape[-2:]) for y in latents], coded, r, ancestors)
        if not all(torch.equal(a, b) for a, b in zip(again, latents)):
            raise RuntimeError("inr-image: the coded latents do not decode to themselves (a bug; please report it)")
        self.last_fit = {"iterations": fit.iterations, "seconds": fit.seconds,
                         "network_bits": 8 * (len(head) + len(network)), "latent_bits": 8 * len(coded), "log": fit.log}
        header = container.Header(
            codec=self.name, fingerprint=self.fingerprint, modality="image", substreams=SUBSTREAMS,
            meta={"format": INR_FORMAT, "width": w, "height": h, "channels": channels, "quality": self.quality})
        return container.pack(header, [[head + network, coded]])

    # ---------------------------------------------------------------- decoding

    def check_format(self, header: container.Header) -> None:
        fmt = header.meta.get("format") if isinstance(header.meta, dict) else None
        if fmt not in READABLE_FORMATS:
            raise BitstreamError(f"inr-image file format {fmt!r} is not one this ncodec reads (formats "
                                 f"{', '.join(map(str, READABLE_FORMATS))}; a newer ncodec may have written it)")

    def check_meta(self, meta: dict, header: container.Header) -> dict:
        in_meta = {"config", "network"} & set(meta)
        if meta["format"] == 1 and len(in_meta) != 2:
            raise BitstreamError("inr-image format 1 file lacks its model's config or network codings")
        if meta["format"] != 1 and in_meta:
            raise BitstreamError(f"inr-image format {meta['format']} file has format 1's {sorted(in_meta)} in its meta")
        if meta["width"] * meta["height"] > MAX_PIXELS:
            raise BitstreamError(f"image file claims {meta['height']}x{meta['width']} pixels, "
                                 f"more than the {MAX_PIXELS:,}-pixel limit")
        return meta

    def decode_chunks(self, header: container.Header, meta: dict, chunks: list[list[bytes]]) -> Decoded:
        """The image of a checked file: float ``[C, H, W]`` in [0, 1] on the CPU."""
        if len(chunks) != 1:
            raise BitstreamError(f"an image file has 1 chunk, this one has {len(chunks)}")
        h, w, c = meta["height"], meta["width"], meta["channels"]
        network, latent_data = chunks[0]
        if meta["format"] == 1:  # the model in the meta, one coding per group
            config, start = config_from_meta(meta["config"], 1), 0
            codings = _codings_from_meta(meta["network"], ["arm", "upsampler", "synthesis"])
        else:
            config, codings, start = read_model_head(network, meta["format"])
        try:
            model = InrImageModel(h, w, config)
        except (ValueError, RuntimeError) as exc:
            raise BitstreamError(f"inr-image model config cannot be built: {exc}") from None
        layers = module_groups(model) if meta["format"] == 1 else network_layers(model)
        if sum(p.numel() for p in model.parameters()) - sum(y.numel() for y in model.latents) > _MAX_PARAMETERS:
            raise BitstreamError("inr-image model config asks for more network parameters than any encoder makes")
        with torch.no_grad():
            inr_coding.decode_network(list(layers.values()), codings, network[start:])
            try:
                arm = inr_coding.ExactArm(model.arm)
            except ValueError as exc:  # weights too large for exact arithmetic: not an encoder's
                raise BitstreamError(f"inr-image ARM parameters out of range: {exc}") from None
            shapes = [tuple(y.shape[-2:]) for y in model.latents]
            latents = inr_coding.decode_latents(arm, shapes, latent_data, config.latent_range, config.ancestor_context)
            # Hidden activations of one band at a time: about 64 MB whatever the image size.
            hidden = max(config.synthesis_hidden, default=3)
            x_hat = model.synthesize(latents, band_rows=max(1, _BAND_BYTES // (4 * hidden * w)))
        if not bool(torch.isfinite(x_hat).all()):
            raise BitstreamError("decoded image is not finite: a forged or foreign inr-image file")
        x_hat = x_hat[0].clamp(0, 1)
        return Decoded(x_hat.mean(0, keepdim=True) if c == 1 else x_hat, "image", meta=meta)


def _codings_from_meta(obj: Any, names: list[str]) -> list[inr_coding.GroupCoding]:
    if not isinstance(obj, list) or len(obj) != len(names):
        raise BitstreamError(f"inr-image network coding must list one coding per group {names}")
    out = []
    for name, v in zip(names, obj):
        if not (isinstance(v, list) and len(v) == 3 and all(type(i) is int for i in v)
                and 0 <= v[0] <= 24 and -512 <= v[1] <= 512 and 1 <= v[2] <= inr_coding.MAX_HALF):
            raise BitstreamError(f"inr-image network coding of {name!r} is invalid: {v!r}")
        out.append(inr_coding.GroupCoding(*v))
    return out


# -------------------------------------------------------------------- registry

_DESCRIPTIONS = {
    "default": "overfitted INR image codec (Cool-chic class): a model fitted per image at encode time",
    "light": "overfitted INR image codec, light decoder (fewer MAC/pixel)",
}
for _name, _preset in (("inr-image", "default"), ("inr-image-light", "light")):
    register(CodecInfo(name=_name, modality="image", qualities=tuple(LAMBDAS), default_quality=4, default=False,
                       description=_DESCRIPTIONS[_preset], weights="none: fitted to each image at encode time",
                       family="overfitted"),
             lambda quality, device, _n=_name, _p=_preset: InrImageCodec(_n, quality, _p, device))
