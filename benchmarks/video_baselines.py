"""The classical video codecs on the held-out clips: x264, x265 and SVT-AV1 CRF sweeps.

The anchors of the video codec's targets (issue 16: BD-rate < 0 against x264 medium on
PSNR-YUV). Each clip of ``benchmarks/video_val.txt`` (its first N frames) is coded by each
baseline at each CRF (:func:`ncodec.eval.video_baselines.code_clip`): kbps from the whole
file, PSNR-YUV 6:1:1 as the mean over frames, encoder and decoder frames per second. Lines go
to ``OUT/runs.jsonl``; ``--report`` writes ``OUT/report.md`` (per clip: BD-rate of each
baseline against x264, and the points) and ``OUT/rd.png``.

    python benchmarks/video_baselines.py --threads 2 --out benchmarks/results/video_baselines [--report]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ncodec.eval.bdrate import bd_psnr, bd_rate
from ncodec.eval.video_baselines import code_clip, parse_video_baselines

ROOT = Path(__file__).resolve().parents[1]
CRFS = {"x264": (18, 23, 28, 33, 38), "x265": (20, 25, 30, 35, 40), "svt-av1": (20, 28, 36, 44, 52)}


def clips(listing: Path, data: Path) -> list[tuple[Path, int]]:
    out = []
    for line in listing.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, frames = line.split()
            out.append((data / name, int(frames)))
    return out


def report(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]
    names = sorted({r["clip"] for r in runs})
    lines = ["| clip | frames | baseline | BD-rate vs x264 (PSNR-YUV) | BD-PSNR | encode fps | decode fps | points (kbps / dB) |",
             "|---|--:|---|--:|--:|--:|--:|---|"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names), 4), squeeze=False)
    for ax, clip in zip(axes[0], names):
        curves: dict[str, list] = {}
        for r in runs:
            if r["clip"] == clip:
                curves.setdefault(r["baseline"], []).append(r)
        anchor = sorted(curves.get("x264", []), key=lambda r: r["kbps"])
        for name, points in curves.items():
            points.sort(key=lambda r: r["kbps"])
            ax.plot([p["kbps"] for p in points], [p["psnr_yuv"] for p in points], "o-", label=name)
            rate = gain = "anchor"
            if name != "x264" and len(anchor) > 1:
                args = ([p["kbps"] for p in anchor], [p["psnr_yuv"] for p in anchor],
                        [p["kbps"] for p in points], [p["psnr_yuv"] for p in points])
                try:
                    rate, gain = f"{bd_rate(*args):+.1f} %", f"{bd_psnr(*args):+.2f} dB"
                except ValueError as exc:
                    rate, gain = f"n/a ({exc})", "n/a"
            enc = np.mean([p["frames"] / p["encode_seconds"] for p in points])
            dec = np.mean([p["frames"] / p["decode_seconds"] for p in points])
            pts = ", ".join(f"{p['kbps']:.0f} / {p['psnr_yuv']:.2f}" for p in points)
            lines.append(f"| {clip} | {points[0]['frames']} | {name} | {rate} | {gain} | {enc:.0f} | {dec:.0f} | {pts} |")
        ax.set_xscale("log")
        ax.set_title(clip, fontsize=9)
        ax.set_xlabel("kbps (whole file)")
        ax.set_ylabel("PSNR-YUV 6:1:1 [dB]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "rd.png", dpi=100)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=Path, default=ROOT / "benchmarks" / "video_val.txt")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "video")
    p.add_argument("--baselines", default="x264,x265,svt-av1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video_baselines")
    p.add_argument("--report", action="store_true")
    args = p.parse_args()
    if args.report:
        report(args.out)
        return
    from tqdm import tqdm

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs.jsonl"
    done = {(r["clip"], r["baseline"], r["crf"]) for r in map(json.loads, log.read_text().splitlines())} if log.exists() else set()
    jobs = [(path, frames, name, crf) for path, frames in clips(args.clips, args.data)
            for name in parse_video_baselines(args.baselines) for crf in CRFS[name]]
    for path, frames, name, crf in tqdm(jobs, desc="coding", unit="clip"):
        clip = str(path.relative_to(args.data))
        if (clip, name, crf) in done:
            continue
        c = code_clip(name, path, crf, max_frames=frames, threads=args.threads)
        line = {"clip": clip, "baseline": name, "crf": crf, "frames": c.frames, "width": c.info.width,
                "height": c.info.height, "fps": float(c.info.fps), "bytes": c.bytes, "kbps": c.kbps,
                "psnr_yuv": c.mean("psnr_yuv"), "psnr_y": c.mean("psnr_y"), "encode_seconds": c.encode_seconds,
                "decode_seconds": c.decode_seconds, "threads": args.threads}
        with log.open("a") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
