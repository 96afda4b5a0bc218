"""Where a video file's bits go, and what its intra and P-frames each reach.

For each held-out clip (its first frames, as ``benchmarks/video_val.txt`` lists them) and each
quality, codes the clip at the given GOP and splits the rate (kbps, per second of video) into
the container's own bytes (header, chunk framing, index, trailer), the GOP heads, the intra
frames, the P-frames' motion (hyper-symbols and vectors), and their latents ``y`` and
hyper-latents ``z`` (the sizes every GOP head records). Beside it, the mean PSNR-YUV (6:1:1)
of the intra frames, of the P-frames, and of each GOP's last frame (how far quality falls
along a GOP).

    .venv/bin/python benchmarks/video_rate_budget.py --out benchmarks/results/video_rate_budget.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("container", "head", "intra", "motion", "y", "z")


def split_bytes(data: bytes, max_frames: int) -> tuple[dict[str, int], list[int]]:
    """Bytes of a video file per part (:data:`PARTS`), and the frames of each GOP."""
    from ncodec.codecs import container
    from ncodec.codecs.video_gop import read_gop_head

    _, chunks = container.unpack(data)
    parts = dict.fromkeys(PARTS, 0)
    gops = []
    for chunk in chunks:
        count, _, sizes = read_gop_head(chunk, max_frames)
        head, intra, motion, latents = chunk
        gops.append(count)
        parts["head"] += len(head)
        parts["intra"] += len(intra)
        parts["motion"] += len(motion)
        parts["y"] += sum(sizes[2::4])
        parts["z"] += sum(sizes[3::4])
    parts["container"] = len(data) - sum(len(s) for chunk in chunks for s in chunk)
    return parts, gops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="video-ctx")
    p.add_argument("--weights", type=Path, help="P-frame weights instead of the shipped ones")
    p.add_argument("--val", type=Path, default=ROOT / "benchmarks" / "video_val.txt", help="held-out list")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "video",
                   help="folder the list's paths are relative to")
    p.add_argument("--gop", type=int, default=32)
    p.add_argument("--qualities", default="1,2,3,4,5")
    p.add_argument("--limit", type=int, default=0, help="first N clips (0: all)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from machine import emit_report
    from tqdm import tqdm

    import ncodec
    from ncodec.eval.video_metrics import psnr_yuv
    from ncodec.io.video import open_video
    from ncodec.train.video import read_clip_list

    clips = read_clip_list(args.val, args.data)[: args.limit or None]
    qualities = [int(q) for q in args.qualities.split(",")]
    codec = ncodec.load(str(args.weights) if args.weights else args.codec, modality="video")
    rows, totals = [], {q: dict.fromkeys((*PARTS, "seconds"), 0.0) for q in qualities}
    for path, limit in tqdm(clips, desc="clips"):
        with open_video(path) as video:
            fps = video.info.fps
            frames = [f for _, f in zip(range(limit or 10**9), video)]
        seconds = len(frames) / float(fps)
        for q in qualities:
            codec.quality = q
            data = codec.compress(frames, fps, gop=args.gop)
            parts, gops = split_bytes(data, args.gop)
            quality = [psnr_yuv(a, b)["psnr_yuv"] for a, b in zip(frames, codec.decompress_frames(data))]
            starts = np.cumsum([0, *gops[:-1]]).tolist()
            intra = [quality[s] for s in starts]
            last = [quality[s + n - 1] for s, n in zip(starts, gops) if n > 1]
            p_frames = [v for s, n in zip(starts, gops) for v in quality[s + 1:s + n]]
            kbps = {k: 8 * v / seconds / 1000 for k, v in parts.items()}
            for k, v in parts.items():
                totals[q][k] += 8 * v
            totals[q]["seconds"] += seconds
            p_text = f"{np.mean(p_frames):.2f}" if p_frames else "-"
            last_text = f"{np.mean(last):.2f}" if last else "-"
            rows.append(f"| {path.name} | {q} | {sum(kbps.values()):.1f} | "
                        + " | ".join(f"{kbps[k]:.1f}" for k in PARTS)
                        + f" | {np.mean(intra):.2f} | {p_text} | {last_text} | {np.mean(quality):.2f} |")
    mean_rows = []
    for q, t in totals.items():
        kbps = {k: t[k] / t["seconds"] / 1000 for k in PARTS}
        total = sum(kbps.values())
        mean_rows.append(f"| {q} | {total:.1f} | " + " | ".join(f"{100 * kbps[k] / total:.1f} %" for k in PARTS) + " |")
    emit_report([
        f"# {codec.name}: where the bits of a video file go ({len(clips)} held-out clips, GOP {args.gop})", "",
        "`.venv/bin/python benchmarks/video_rate_budget.py`"
        + (f" with P-frame weights `{args.weights}`" if args.weights else "")
        + ". Rates in kbps per second of video; PSNR-YUV (6:1:1) in dB, the mean over frames.", "",
        "| clip | quality | kbps | container | GOP heads | intra | motion | P latents y | P hyper-latents z "
        "| PSNR-YUV intra | PSNR-YUV P | PSNR-YUV last of GOP | PSNR-YUV all |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|", *rows, "",
        "Share of the bits over all clips, per quality:", "",
        "| quality | kbps (all clips) | container | GOP heads | intra | motion | y | z |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|", *mean_rows, "",
        f"{torch.get_num_threads()} threads."], args.out)


if __name__ == "__main__":
    main()
