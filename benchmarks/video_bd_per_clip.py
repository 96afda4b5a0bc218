"""Per-clip BD-rates of a video eval (``ncodec eval`` on clips writes ``per_clip.csv``).

``summary.md`` fits one curve of means over the clips; video results are usually quoted per
clip (each clip's own curve against each baseline's), then averaged. This prints that table
as markdown: BD-rate on PSNR-YUV (%) of every learned codec against every baseline, per clip
and the mean of the clips that have one; then BD-PSNR (dB at equal rate, over the rates both
curves cover), which exists where the quality ranges do not overlap.

    python benchmarks/video_bd_per_clip.py benchmarks/results/video_rd/per_clip.csv
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from ncodec.eval.bdrate import bd_psnr, bd_rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv", type=Path)
    p.add_argument("--metric", default="psnr_yuv")
    p.add_argument("--learned", default=None, help="comma-separated learned codec keys (default: ncodec's: "
                                                   "those not among x264, x265, svt-av1)")
    args = p.parse_args()
    points: dict = defaultdict(lambda: defaultdict(list))  # codec -> clip -> [(kbps, metric)]
    with open(args.csv, newline="") as f:
        for row in csv.DictReader(f):
            points[row["codec"]][Path(row["file"]).name].append((float(row["kbps"]), float(row[args.metric])))
    baselines = [c for c in ("x264", "x265", "svt-av1") if c in points]
    learned = args.learned.split(",") if args.learned else [c for c in points if c not in baselines]
    clips = sorted({clip for c in points.values() for clip in c})
    for title, fit, unit in (("BD-rate", bd_rate, " %"), ("BD-PSNR", bd_psnr, " dB")):
        print(f"\n| {title} ({args.metric}) | baseline | {' | '.join(clips)} | mean |")
        print("|---|---|" + "--:|" * (len(clips) + 1))
        for codec in learned:
            for base in baselines:
                cells, values = [], []
                for clip in clips:
                    a, b = sorted(points[base][clip]), sorted(points[codec][clip])
                    try:
                        value = fit([r for r, _ in a], [q for _, q in a], [r for r, _ in b], [q for _, q in b])
                    except ValueError as exc:
                        cells.append("n/a (no overlap)" if "overlap" in str(exc) else "n/a")
                        continue
                    values.append(value)
                    cells.append(f"{value:+.2f}{unit}")
                mean = f"{sum(values) / len(values):+.2f}{unit} ({len(values)} clips)" if values else "n/a"
                print(f"| {codec} | {base} | {' | '.join(cells)} | {mean} |")


if __name__ == "__main__":
    main()
