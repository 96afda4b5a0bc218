"""Image-codec benchmark: ncodec's image codecs against CompressAI's, same weights, end to end.

For each architecture (quality 3 by default) the benchmark builds, in one process:

* **compressai**: CompressAI 1.2.8's own class (``FactorizedPrior``, ``ScaleHyperprior``,
  ``MeanScaleHyperprior``, ``Elic2022Official``) with ncodec's N and M for that quality,
  randomly initialised from a fixed seed (trained weights do not exist yet for ncodec);
* **ncodec**: ``ncodec.models.image.build_image_model`` of the same architecture, loaded
  with the CompressAI model's ``state_dict`` (same keys, same weights), wrapped in the codec
  object ``ncodec.codecs.image.ImageCodec`` (input checks, padding, container).

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
The reconstructions of both are compared (they should be identical: same weights, same
quantisation; only the entropy coders differ).

Run: ``.venv/bin/python benchmarks/image_codecs.py [--archs A ...] [--repeats N] [--latent-gain G] [--out FILE]``.
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


def build_pair(arch: str, quality: int, latent_gain: float = 1.0) -> tuple[CompressionModel, ImageCodec]:
    """CompressAI's model and ncodec's codec of ``arch`` with the same (seeded random) weights.

    ``latent_gain`` != 1 scales the latent (see :func:`scale_latent`) in both models.
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
    return reference, ImageCodec(arch, quality, ours)


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
    x_hat = codec.decompress(data)
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


def measure(arch: str, quality: int, image: torch.Tensor, repeats: int, latent_gain: float = 1.0) -> ArchResult:
    """Warm up both codecs, then ``repeats`` interleaved rounds (order alternating)."""
    reference, codec = build_pair(arch, quality, latent_gain)
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
    return ArchResult(arch, image_models.ARCHITECTURES[arch].channels(quality), ref_runs, our_runs, diff)


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
    lines = ["| architecture | encode | decode | encode+decode | encode+decode (medians) | "
             "bytes compressai / ncodec (file) | (entropy-coded) | max abs diff of reconstructions |",
             "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for res in results:
        ref, ours = res.compressai, res.ncodec
        lines.append(
            f"| {res.arch} | {ratio(ref.encode, ours.encode, min)} | {ratio(ref.decode, ours.decode, min)} | "
            f"**{ratio(ref.both, ours.both, min)}** | {ratio(ref.both, ours.both, statistics.median)} | "
            f"{ref.nbytes / ours.nbytes:.4f} | {ref.payload / ours.payload:.4f} | {res.max_abs_diff:.3g} |")
    return lines


def render(image_source: str, quality: int, repeats: int, threads: int, latent_gain: float,
           results: list[ArchResult]) -> str:
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
        ]),
        ("Results (best round)", results_table(results)),
        ("Ratios compressai / ncodec (time: > 1 means ncodec is faster)", ratio_table(results)),
    ]
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
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown report ('-': stdout only)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    image, source = load_image()
    results = []
    for arch in args.archs:
        print(f"{arch} ...", file=sys.stderr, flush=True)
        results.append(measure(arch, args.quality, image, args.repeats, args.latent_gain))
    report = render(source, args.quality, args.repeats, args.threads, args.latent_gain, results)
    print(report)
    if str(args.out) != "-":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
