"""What exact entropy parameters cost: two `ncodec eval` runs of the same codecs compared.

``ANCHOR`` and ``TEST`` are output folders of ``ncodec eval`` (their ``per_image.csv``) over
the same images, e.g. ncodec 0.1 (float entropy parameters: ``benchmarks/results/image_rd``)
and ncodec 0.2 (exact). Per codec: BD-rate of TEST against ANCHOR (bytes at equal PSNR, over
the mean curves of the qualities), and per quality the total bytes ratio and the mean PSNR
change, both over the images present in both runs.

Run: ``.venv/bin/python benchmarks/exact_rate_cost.py ANCHOR TEST [--out FILE]``.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from ncodec.eval.bdrate import bd_psnr, bd_rate
from machine import emit_report


def _rows(folder: Path) -> dict[tuple[str, int, str], dict]:
    with open(folder / "per_image.csv") as f:
        return {(r["codec"], int(r["quality"]), Path(r["file"]).name): r for r in csv.DictReader(f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("anchor", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    anchor, test = _rows(args.anchor), _rows(args.test)
    common = sorted(set(anchor) & set(test))
    by_codec: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for key in common:
        by_codec[key[0]][key[1]].append((anchor[key], test[key]))
    lines = [f"# Exact entropy parameters: rate cost ({args.test} against {args.anchor})", "",
             "| codec | quality | images | bytes test / anchor | mean PSNR change (dB) |", "|---|--:|--:|--:|--:|"]
    summary = ["", "| codec | BD-rate (bytes at equal PSNR) | BD-PSNR (dB) |", "|---|--:|--:|"]
    for codec, qualities in sorted(by_codec.items()):
        curves = {"anchor": ([], []), "test": ([], [])}
        for quality, pairs in sorted(qualities.items()):
            a_bytes = sum(int(a["bytes"]) for a, _ in pairs)
            t_bytes = sum(int(t["bytes"]) for _, t in pairs)
            dpsnr = sum(float(t["psnr_rgb"]) - float(a["psnr_rgb"]) for a, t in pairs) / len(pairs)
            lines.append(f"| {codec} | {quality} | {len(pairs)} | {t_bytes / a_bytes:.5f} | {dpsnr:+.4f} |")
            for name, side in (("anchor", 0), ("test", 1)):
                bpp = sum(float(p[side]["bpp"]) for p in pairs) / len(pairs)
                psnr = sum(float(p[side]["psnr_rgb"]) for p in pairs) / len(pairs)
                curves[name][0].append(bpp)
                curves[name][1].append(psnr)
        rate = bd_rate(*curves["anchor"], *curves["test"])
        quality = bd_psnr(*curves["anchor"], *curves["test"])
        summary.append(f"| {codec} | {rate:+.3f} % | {quality:+.4f} |")
    emit_report(lines + summary, args.out)


if __name__ == "__main__":
    main()
