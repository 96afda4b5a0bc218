"""Image-codec benchmark: ncodec's image codecs against CompressAI's, same weights, end to end.

For each architecture (quality 3 by default) the benchmark builds, in one process:

* **compressai**: CompressAI 1.2.8's own class (``FactorizedPrior``, ``ScaleHyperprior``,
  ``MeanScaleHyperprior``, ``Elic2022Official``) with ncodec's N and M for that quality,
  randomly initialised from a fixed seed (trained weights do not exist yet for ncodec);
* **ncodec**: ``ncodec.models.image.build_image_model`` of the same architecture, loaded
  with the CompressAI model's ``state_dict`` (same keys, same weights), wrapped in the codec
  object ``ncodec.codecs.image.ImageCodec`` (input checks, padding, container) in its default
  configuration: the fast transforms of ``ncodec.models.fast`` (GDN folded once,
  channels_last activations, convolutions prepacked for oneDNN with ReLUs and residual sums
  fused, sub-pixel convolutions where they beat oneDNN's transposed convolution) for ``g_a``,
  ``h_a`` and ``g_s``, and ``g_a`` in bfloat16 where the CPU has native bf16 (AVX512-BF16 /
  AMX). ``h_s``, ELIC's context models and the entropy models are the model's own, untouched.
  ``--exact`` times ``ImageCodec(..., fast=False)`` instead (CompressAI's own path);
  ``--bf16 off`` keeps the fast transforms in float32.

``update(force=True)`` is run on both. Both then code the same real 768x512 RGB image:

* compressai: ``m.compress(x)`` with ``x`` float ``[1, 3, 512, 768]`` in [0, 1], then
  ``m.decompress(strings, shape)``; bytes = sum of the string lengths (no container);
* ncodec: ``codec.compress(x_uint8)`` (``[3, 512, 768]`` uint8, converted inside) returning
  the container file, then ``codec.decompress(data)``; bytes = the whole file, and
  separately its entropy-coded substreams (the rest is the container: header, CRCs, index).

Untrained analysis transforms give tiny latents (the GDN models' lie within +-0.3, so almost
every symbol is 0); ``--latent-gain G`` multiplies the last stride-2 convolution of ``g_a``
by G in both models to get busier streams (default 1: the plain seeded initialisation).

The image is two validation tiles side by side (the 512x512 first one, then the left 256
columns of the second), from ``../shared/data/images/val`` (``ncodec/data/images`` if the
shared set is missing): 768x512 is a multiple of every architecture's alignment, so neither
side pads. Timing: ``torch.set_num_threads(--threads)`` (2), ``torch.inference_mode()``,
one warm-up of each, then ``--repeats`` rounds, each timing compressai and ncodec in
alternating order (``time.perf_counter``); the table gives the best round per column,
encode+decode is the best per-round sum. Because a shared VM drifts by 20 % or more between
minutes, only the ratios (compressai time / ncodec time, side by side) are meant to hold.
The reconstructions of both are compared: with the exact path they are identical (same
weights, same quantisation; only the entropy coders differ). With the fast path they differ
by the float rounding of the fast ``g_s`` and, with a bf16 ``g_a``, by the latents that moved
(other symbols, another valid file); the report separates the two: "decoder diff" decodes
ncodec's own file once with the fast and once with the exact decoder.

bf16 encoder effect (unless ``--bf16-images 0``): every image of ``tests/data/images``,
``ncodec/data/images`` and the first ``--bf16-images`` of the shared validation set is coded
by each architecture with ``g_a`` in float32 and in bf16 (both fast, same decoder); the
report gives total bytes and mean PSNR of each, and the worst per-image PSNR change.

Run: ``.venv/bin/python benchmarks/image_codecs.py [--archs A ...] [--repeats N] [--latent-gain G]
[--exact] [--bf16 auto|on|off] [--bf16-images N] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

import compressai
import ncodec
from machine import cpu_model, usable_cores
from compressai.models import FactorizedPrior, MeanScaleHyperprior, ScaleHyperprior
from compressai.models.base import CompressionModel
from compressai.models.sensetime import Elic2022Official
from ncodec.codecs import container
from ncodec.codecs.image import ImageCodec
from ncodec.models import image as image_models

ROOT = Path(__file__).resolve().parents[1]
SHARED_IMAGES = ROOT.parent / "shared" / "data" / "images" / "val"
PACKAGED_IMAGES = ROOT / "ncodec" / "data" / "images"
TEST_IMAGES = ROOT / "tests" / "data" / "images"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "image_codecs.md"
WIDTH, HEIGHT = 768, 512
SEED = 20240601

COMPRESSAI_CLASSES: dict[str, Callable[..., CompressionModel]] = {
    "bmshj2018-factorized": FactorizedPrior,
    "bmshj2018-hyperprior": ScaleHyperprior,
    "mbt2018-mean": MeanScaleHyperprior,
    "elic2022": Elic2022Official,
}


# --------------------------------------------------------------------------- inputs

def load_image() -> tuple[torch.Tensor, str]:
    """The 768x512 test image as uint8 ``[3, 512, 768]``, and where it came from."""
    folder = SHARED_IMAGES if SHARED_IMAGES.is_dir() else PACKAGED_IMAGES
    files = sorted(folder.glob("*.png"))[:2]
    if len(files) < 2:
        raise FileNotFoundError(f"need two PNG images in {folder}")
    tiles = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    side_by_side = np.concatenate(tiles, axis=1)[:HEIGHT, :WIDTH]
    if side_by_side.shape[:2] != (HEIGHT, WIDTH):
        raise ValueError(f"images too small for {WIDTH}x{HEIGHT}: got {side_by_side.shape[:2]}")
    image = torch.from_numpy(np.ascontiguousarray(side_by_side)).permute(2, 0, 1).contiguous()
    source = (f"{files[0].name} + the left {WIDTH - tiles[0].shape[1]} columns of {files[1].name} "
              f"from {folder.relative_to(ROOT.parent)}")
    return image, source


def scale_latent(model: CompressionModel, gain: float) -> None:
    """Multiply the weights and bias of ``g_a``'s last stride-2 convolution by ``gain``."""
    last = [m for m in model.g_a.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)][-1]
    with torch.no_grad():
        last.weight.mul_(gain)
        last.bias.mul_(gain)


def build_pair(arch: str, quality: int, latent_gain: float = 1.0, *, fast: bool = True,
               bf16: bool | None = None) -> tuple[CompressionModel, ImageCodec]:
    """CompressAI's model and ncodec's codec of ``arch`` with the same (seeded random) weights.

    ``latent_gain`` != 1 scales the latent (see :func:`scale_latent`) in both models;
    ``fast`` and ``bf16`` are ``ImageCodec``'s (defaults: its defaults).
    """
    channels = image_models.ARCHITECTURES[arch].channels(quality)
    torch.manual_seed(SEED)
    reference = COMPRESSAI_CLASSES[arch](**channels).eval()
    if latent_gain != 1.0:
        scale_latent(reference, latent_gain)
    ours = image_models.build_image_model(arch, **channels)
    ours.load_state_dict(reference.state_dict())
    ours.eval()
    reference.update(force=True)
    ours.update(force=True)
    return reference, ImageCodec(arch, quality, ours, fast=fast, bf16=bf16)


# --------------------------------------------------------------------------- timing

@dataclass
class Runs:
    """Per-round wall times (seconds) and the last run's outputs of one codec."""

    encode: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)
    nbytes: int = 0
    payload: int = 0
    x_hat: torch.Tensor | None = None

    @property
    def both(self) -> list[float]:
        return [e + d for e, d in zip(self.encode, self.decode)]


def run_compressai(model: CompressionModel, x: torch.Tensor, runs: Runs) -> None:
    """One timed encode + decode through CompressAI's own model and coder."""
    t0 = time.perf_counter()
    out = model.compress(x)
    t1 = time.perf_counter()
    x_hat = model.decompress(out["strings"], out["shape"])["x_hat"]
    t2 = time.perf_counter()
    runs.encode.append(t1 - t0)
    runs.decode.append(t2 - t1)
    runs.nbytes = runs.payload = sum(len(s) for stream in out["strings"] for s in stream)
    runs.x_hat = x_hat[0].clamp(0, 1)


def run_ncodec(codec: ImageCodec, image: torch.Tensor, runs: Runs) -> None:
    """One timed encode + decode through ncodec's codec object (container included)."""
    t0 = time.perf_counter()
    data = codec.compress(image)
    t1 = time.perf_counter()
    x_hat = codec.decompress(data).tensor
    t2 = time.perf_counter()
    runs.encode.append(t1 - t0)
    runs.decode.append(t2 - t1)
    runs.nbytes = len(data)
    runs.payload = sum(len(s) for chunk in container.unpack(data)[1] for s in chunk)
    runs.x_hat = x_hat


@dataclass
class ArchResult:
    """Both codecs' runs on one architecture, and how far apart their reconstructions are."""

    arch: str
    channels: dict[str, int]
    compressai: Runs
    ncodec: Runs
    max_abs_diff: float
    decoder_diff: float
    fast: bool
    bf16: bool


def measure(arch: str, quality: int, image: torch.Tensor, repeats: int, latent_gain: float = 1.0, *,
            fast: bool = True, bf16: bool | None = None) -> ArchResult:
    """Warm up both codecs, then ``repeats`` interleaved rounds (order alternating)."""
    reference, codec = build_pair(arch, quality, latent_gain, fast=fast, bf16=bf16)
    # The exact decoding path of the same model, built before any forward pass: ELIC's masked
    # context convolutions mask their weights in place on first use, which moves the
    # fingerprint of a codec built afterwards.
    exact = ImageCodec(arch, quality, codec.model, fast=False)
    x = image.unsqueeze(0).float() / 255.0
    ref_runs, our_runs = Runs(), Runs()
    with torch.inference_mode():
        run_compressai(reference, x, Runs())
        run_ncodec(codec, image, Runs())
        for r in range(repeats):
            if r % 2 == 0:
                run_compressai(reference, x, ref_runs)
                run_ncodec(codec, image, our_runs)
            else:
                run_ncodec(codec, image, our_runs)
                run_compressai(reference, x, ref_runs)
    diff = float((ref_runs.x_hat - our_runs.x_hat).abs().max())
    # The decoder alone: ncodec's own file through the exact (CompressAI) decoding path.
    with torch.inference_mode():
        data = codec.compress(image)
        decoder_diff = float((codec.decompress(data).tensor - exact.decompress(data).tensor).abs().max())
    return ArchResult(arch, image_models.ARCHITECTURES[arch].channels(quality), ref_runs, our_runs, diff,
                      decoder_diff, codec.fast, codec.bf16)


# --------------------------------------------------------------------------- bf16 encoder

@dataclass
class Bf16Effect:
    """Totals over the images of one architecture: float32 ``g_a`` vs bf16 ``g_a``."""

    arch: str
    images: int
    bytes_fp32: int
    bytes_bf16: int
    psnr_fp32: float  # mean over images, dB
    psnr_bf16: float
    worst_psnr_change: float  # the per-image bf16 - fp32 PSNR change of largest magnitude, dB


def effect_images(shared: int) -> list[tuple[str, torch.Tensor]]:
    """(name, uint8 [C, H, W]) of the test and packaged images and ``shared`` validation ones."""
    paths = sorted(p for p in TEST_IMAGES.iterdir() if p.suffix in (".png", ".jpg"))
    paths += sorted(PACKAGED_IMAGES.glob("*.png"))
    if SHARED_IMAGES.is_dir():
        paths += sorted(SHARED_IMAGES.glob("*.png"))[:shared]
    out = []
    for p in paths:
        with Image.open(p) as im:
            arr = np.asarray(im.convert("L" if im.mode in ("L", "LA", "I", "I;16") else "RGB"))
        t = torch.from_numpy(np.ascontiguousarray(arr))
        out.append((p.name, t[None] if t.dim() == 2 else t.permute(2, 0, 1).contiguous()))
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * float(np.log10(1 / mse)) if mse > 0 else float("inf")


def bf16_effect(arch: str, quality: int, images: list[tuple[str, torch.Tensor]], latent_gain: float) -> Bf16Effect:
    """Code every image with the fast float32 and the fast bf16 ``g_a`` (same weights)."""
    _, fp32 = build_pair(arch, quality, latent_gain, bf16=False)
    bf16 = ImageCodec(arch, quality, fp32.model, bf16=True)  # before any forward (see measure)
    sizes = {False: 0, True: 0}
    psnrs: dict[bool, list[float]] = {False: [], True: []}
    for _, img in images:
        x = img.float() / 255
        for use_bf16, codec in ((False, fp32), (True, bf16)):
            data = codec.compress(img)
            sizes[use_bf16] += len(data)
            psnrs[use_bf16].append(psnr(codec.decompress(data).tensor, x))
    changes = [b - a for a, b in zip(psnrs[False], psnrs[True])]
    return Bf16Effect(arch, len(images), sizes[False], sizes[True], statistics.fmean(psnrs[False]),
                      statistics.fmean(psnrs[True]), max(changes, key=abs))


# --------------------------------------------------------------------------- report

def machine_lines(threads: int) -> list[str]:
    cores = usable_cores()
    return [
        f"- CPU: {cpu_model()}; {cores} usable cores, os.cpu_count() = {os.cpu_count()}; "
        f"torch.set_num_threads({threads})",
        f"- Python {platform.python_version()}, torch {torch.__version__} "
        f"(CPU capability {torch.backends.cpu.get_cpu_capability()}), numpy {np.__version__}",
        f"- ncodec {ncodec.__version__}, compressai {compressai.__version__}",
    ]


def ms(seconds: float) -> str:
    return f"{1000 * seconds:,.1f}"


def results_table(results: list[ArchResult]) -> list[str]:
    lines = ["| architecture | N, M | codec | encode ms | decode ms | encode+decode ms | bytes | entropy-coded bytes |",
             "|---|---|---|--:|--:|--:|--:|--:|"]
    for res in results:
        for name, runs in (("compressai", res.compressai), ("ncodec", res.ncodec)):
            lines.append(f"| {res.arch} | {res.channels['N']}, {res.channels['M']} | {name} | "
                         f"{ms(min(runs.encode))} | {ms(min(runs.decode))} | {ms(min(runs.both))} | "
                         f"{runs.nbytes:,} | {runs.payload:,} |")
    return lines


def ratio(ref: list[float], ours: list[float], pick: Callable[[list[float]], float]) -> str:
    return f"{pick(ref) / pick(ours):.2f}x"


def ratio_table(results: list[ArchResult]) -> list[str]:
    lines = ["| architecture | ncodec path | encode | decode | encode+decode | encode+decode (medians) | "
             "bytes compressai / ncodec (file) | (entropy-coded) | max abs diff of reconstructions | "
             "decoder diff (fast vs exact, same file) |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for res in results:
        ref, ours = res.compressai, res.ncodec
        path = ("fast, g_a bf16" if res.bf16 else "fast, fp32") if res.fast else "exact"
        lines.append(
            f"| {res.arch} | {path} | {ratio(ref.encode, ours.encode, min)} | {ratio(ref.decode, ours.decode, min)} | "
            f"**{ratio(ref.both, ours.both, min)}** | {ratio(ref.both, ours.both, statistics.median)} | "
            f"{ref.nbytes / ours.nbytes:.4f} | {ref.payload / ours.payload:.4f} | {res.max_abs_diff:.3g} | "
            f"{res.decoder_diff:.3g} |")
    return lines


def bf16_table(effects: list[Bf16Effect]) -> list[str]:
    lines = ["| architecture | images | bytes, g_a fp32 | bytes, g_a bf16 | bf16 / fp32 | "
             "mean PSNR fp32 (dB) | mean PSNR bf16 (dB) | largest per-image PSNR change (dB) |",
             "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for e in effects:
        lines.append(f"| {e.arch} | {e.images} | {e.bytes_fp32:,} | {e.bytes_bf16:,} | "
                     f"{e.bytes_bf16 / e.bytes_fp32:.4f} | {e.psnr_fp32:.3f} | {e.psnr_bf16:.3f} | "
                     f"{e.worst_psnr_change:+.3f} |")
    return lines


def render(image_source: str, quality: int, repeats: int, threads: int, latent_gain: float,
           results: list[ArchResult], effects: list[Bf16Effect] | None = None) -> str:
    sections = [
        ("Machine", machine_lines(threads)),
        ("Workload", [
            f"- Image: 768x512 RGB, {image_source} (no padding needed).",
            f"- Quality {quality}; weights: CompressAI's random init, seed {SEED}, loaded into ncodec's "
            "model (same state_dict); `update(force=True)` on both. "
            + (f"Latent gain {latent_gain:g}: g_a's last stride-2 conv scaled in both models."
               if latent_gain != 1.0 else
               "No latent gain: with untrained g_a the latents of the GDN models lie within "
               "+-0.3, so nearly every symbol is 0 (try `--latent-gain 40` for busier streams)."),
            f"- Timing: `torch.inference_mode()`, one warm-up each, then {repeats} interleaved rounds "
            "(compressai and ncodec alternating first); best round per column.",
            "- compressai: `model.compress(x)` / `model.decompress(strings, shape)` on float input, "
            "bytes = sum of string lengths. ncodec: `ImageCodec.compress(uint8 image)` / "
            "`decompress(data)`, bytes = container file; entropy-coded bytes = its substreams.",
            "- ncodec path: `fast` = `ImageCodec`'s default (fast transforms of `ncodec.models.fast`; "
            "`g_a bf16`: the analysis transform in bfloat16), `exact` = `fast=False` (CompressAI's path). "
            "Decoder diff: ncodec's file decoded by the fast and by the exact decoder, max abs difference "
            "on [0, 1]. Max abs diff of reconstructions (compressai vs ncodec) also includes the effect of "
            "a bf16 `g_a` on the latents.",
        ]),
        ("Results (best round)", results_table(results)),
        ("Ratios compressai / ncodec (time: > 1 means ncodec is faster)", ratio_table(results)),
    ]
    if effects:
        sections.append(("bf16 g_a vs float32 g_a (both fast; same weights and decoder)", [
            "Every test and packaged image plus the first validation images, at their own sizes. "
            "With untrained weights the rate-distortion effect means little (random-init latents are "
            "tiny); the numbers show what the bf16 encoder changes, not a trained model's loss.", "",
            *bf16_table(effects)]))
    out = ["# Image codec benchmark: ncodec vs compressai", ""]
    for title, lines in sections:
        out += [f"## {title}", "", *lines, ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(COMPRESSAI_CLASSES), choices=list(COMPRESSAI_CLASSES))
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latent-gain", type=float, default=1.0,
                        help="scale g_a's last stride-2 conv (random-init latents are all ~0 otherwise)")
    parser.add_argument("--exact", action="store_true", help="time ncodec's exact path (ImageCodec fast=False)")
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                        help="g_a in bfloat16 on the fast path (auto: ImageCodec's default)")
    parser.add_argument("--bf16-images", type=int, default=8,
                        help="validation images in the bf16-vs-fp32 encoder comparison (0: skip it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown report ('-': stdout only)")
    args = parser.parse_args(argv)
    bf16 = {"auto": None, "on": True, "off": False}[args.bf16]

    torch.set_num_threads(args.threads)
    image, source = load_image()
    results = []
    for arch in args.archs:
        print(f"{arch} ...", file=sys.stderr, flush=True)
        results.append(measure(arch, args.quality, image, args.repeats, args.latent_gain,
                               fast=not args.exact, bf16=bf16))
    effects = None
    if args.bf16_images > 0:
        images = effect_images(args.bf16_images)
        effects = []
        for arch in args.archs:
            print(f"{arch}: bf16 vs fp32 g_a on {len(images)} images ...", file=sys.stderr, flush=True)
            effects.append(bf16_effect(arch, args.quality, images, args.latent_gain))
    report = render(source, args.quality, args.repeats, args.threads, args.latent_gain, results, effects)
    print(report)
    if str(args.out) != "-":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
