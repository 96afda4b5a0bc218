"""Rate-distortion cost of the bfloat16 analysis transform, with the shipped trained weights.

For each image of a folder (default ``../shared/data/images/val``) and each quality of a
codec, code the image twice with the same weights and decoder: ``g_a`` in float32
(``ImageCodec(bf16=False)``) and in bfloat16 (``bf16=True``, the default on CPUs with native
bf16). Prints total bytes and mean PSNR-RGB per quality and their ratios / differences.

Run: ``.venv/bin/python benchmarks/image_bf16.py [--codec NAME] [--limit N] [--images DIR]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import ncodec
from ncodec.codecs.image import ImageCodec
from ncodec.eval.image_metrics import psnr_rgb
from ncodec.io import read_rgb

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codec", default=None, help="image codec (default: the default one)")
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "images" / "val"))
    parser.add_argument("--limit", type=int, default=0, help="first N images only")
    args = parser.parse_args()
    files = sorted(Path(args.images).glob("*.png"))[: args.limit or None]
    reference = ncodec.load(args.codec)
    name = reference.name
    info = ncodec.codecs.registry.codec_info(name)
    print(f"{name}: {len(files)} images from {args.images}; torch threads {torch.get_num_threads()}")
    print("| quality | bytes fp32 g_a | bytes bf16 g_a | bf16 / fp32 | PSNR fp32 (dB) | PSNR bf16 (dB) | diff (dB) |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for q in info.qualities:
        base = ncodec.load(name, quality=q)
        codecs = {bf16: ImageCodec(name, q, base.model, bf16=bf16) for bf16 in (False, True)}
        sizes = {False: 0, True: 0}
        psnrs: dict[bool, list[float]] = {False: [], True: []}
        for path in files:
            x = read_rgb(path)
            for bf16, codec in codecs.items():
                data = codec.compress(x)
                sizes[bf16] += len(data)
                psnrs[bf16].append(psnr_rgb(x, codec.decompress(data).tensor))
        p32, p16 = (sum(psnrs[k]) / len(files) for k in (False, True))
        print(f"| {q} | {sizes[False]:,} | {sizes[True]:,} | {sizes[True] / sizes[False]:.4f} | "
              f"{p32:.3f} | {p16:.3f} | {p16 - p32:+.3f} |")


if __name__ == "__main__":
    main()
