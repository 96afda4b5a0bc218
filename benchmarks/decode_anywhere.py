"""Cross-setting decode check: encode photos here, decode them under other CPU settings.

Every trained image codec codes every photo at every quality in this process (all threads,
this CPU's best instruction set); the files are then decoded in subprocesses under each of
``ncodec.eval.portability.SETTINGS`` (one thread; oneDNN and ATen capped at AVX2; at SSE4.1 and
ATen's default) and compared with this process's decode: failures (any exception, the
decode check included), the largest 8-bit pixel difference and how many samples differ.

Photos: the bundled ``ncodec/data/images`` and the first ``--val`` photos of
``../shared/data/images/val`` (CID22 validation), whole.

Run: ``.venv/bin/python benchmarks/decode_anywhere.py [--val N] [--codecs a,b] [--out FILE]``.
To measure another checkout (e.g. the previous release), run this file with its
``PYTHONPATH`` pointing there: the script imports whichever ncodec Python finds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

import ncodec
from ncodec.eval import portability
from ncodec.io import read_image
from machine import emit_report

ROOT = Path(__file__).resolve().parents[1]


def photos(val: int) -> list[Path]:
    bundled = sorted((ROOT / "ncodec" / "data" / "images").glob("*.png"))
    shared = sorted((ROOT.parent / "shared" / "data" / "images" / "val").glob("*.png"))[:val]
    return bundled + shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", type=int, default=8, help="CID22 validation photos besides the bundled ones")
    parser.add_argument("--codecs", default="elic-gdn-vr,mbt2018-mean-vr")
    parser.add_argument("--qualities", default="1,2,3,4,5")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    images = photos(args.val)
    qualities = [int(q) for q in args.qualities.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        paths, reference = [], []
        jobs = [(n, q) for n in args.codecs.split(",") for q in qualities]
        for name, quality in tqdm(jobs, desc="encode"):
            codec = ncodec.load(name, quality)
            for i, image in enumerate(images):
                data = codec.compress(read_image(image))
                path = Path(tmp) / f"{name}-q{quality}-{i}.ncb"
                path.write_bytes(data)
                paths.append(path)
                try:
                    reference.append(portability.to_pixels(ncodec.decompress(data).tensor))
                except Exception as exc:  # the writer's own setting failing is a result too
                    print(f"{path.name}: fails here too: {exc}", file=sys.stderr)
                    reference.append(None)
        rows = []
        for setting in tqdm(portability.SETTINGS, desc="decode settings"):
            start = time.perf_counter()
            result = portability.decode_under(paths, setting)
            pairs = [(p, r) for p, r in zip(result.pixels, reference) if r is not None]
            kept = portability.SettingResult(setting, result.capability, [p for p, _ in pairs])
            refs = [r for _, r in pairs]
            rows.append((setting, result.capability, len(paths), result.failures, kept.max_difference(refs),
                         kept.differing_pixels(refs), time.perf_counter() - start))
            for error in {e for e in result.errors if e}:
                print(f"  {setting}: {error[:200]}", file=sys.stderr)
    samples = sum(r.size for r in reference if r is not None)
    lines = [
        f"# Cross-setting decode check (ncodec {ncodec.__version__}, torch {torch.__version__})",
        "",
        f"Encoded in one process (2 threads, CPU capability {torch.backends.cpu.get_cpu_capability()}): "
        f"{len(images)} photos x codecs {args.codecs} x qualities {args.qualities} = {len(paths)} files, "
        f"{samples:,} 8-bit samples. Decoded in subprocesses under each setting.",
        "",
        "| setting | ATen capability seen | files | failures | max pixel difference | differing samples | seconds |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    lines += [f"| {s} | {c} | {n} | {f} | {d} | {p:,} | {t:.0f} |" for s, c, n, f, d, p, t in rows]
    emit_report(lines, args.out)


if __name__ == "__main__":
    main()
