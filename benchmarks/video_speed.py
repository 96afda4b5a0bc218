"""Speed and memory of the video codec at 352x288 (CIF) on 2 CPU threads.

A CIF clip is cut from a held-out clip (its top-left 352x288, first ``--frames`` frames) and
written as Y4M. Then, each in a fresh process (so that peak RSS is that of the job alone):

- ``encode_file`` and ``decode_file`` of the whole clip: frames per second, and the process's
  peak resident memory, for the clip and for its first quarter (bounded memory: the peak must
  not grow with the clip's length);
- side by side in the same process, x264 medium (PyAV, 2 threads) on the same frames at
  CRF 28 and the same GOP, for scale.

    python benchmarks/video_speed.py --codec video-ctx --out benchmarks/results/video_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_clip(src: Path, dst: Path, frames: int) -> float:
    """Write the CIF clip; returns its frame rate."""
    from ncodec.io.video import VideoWriter, YuvFrame, open_video

    with open_video(src) as video, VideoWriter(dst, 352, 288, video.info.fps, force=True) as out:
        for _, f in zip(range(frames), video):
            out.write(YuvFrame(f.y[:288, :352], f.u[:144, :176], f.v[:144, :176]))
        return float(video.info.fps)


def job(kind: str, codec_name: str, src: str, dst: str, gop: int, quality: int) -> dict:
    """One timed job in this (fresh) process: encode, decode, or x264."""
    import torch

    torch.set_num_threads(2)
    import ncodec

    if kind == "x264":
        from ncodec.eval.video_baselines import get_video_baseline
        from ncodec.io.video import open_video

        base = get_video_baseline("x264")
        with open_video(src) as video:
            frames, fps = list(video), video.info.fps
        data, count, enc = base.encode(frames, 352, 288, fps, 28, gop=gop, threads=2)
        start = time.perf_counter()
        n = sum(1 for _ in base.decode(data, 352, 288, threads=2))
        return {"frames": count, "encode_fps": count / enc, "decode_fps": n / (time.perf_counter() - start)}
    codec = ncodec.load(codec_name, quality)
    warm = ROOT / "tests" / "data" / "video" / "realshort.mp4"
    from ncodec.io.video import open_video

    with open_video(warm) as video:  # lazy set-up (tables, kernels) not timed
        codec.decompress_frames(codec.compress([f for _, f in zip(range(2), video)], 30, gop=2))
    start = time.perf_counter()
    if kind == "encode":
        stats = codec.encode_file(src, dst, gop=gop, force=True)
        frames = stats["meta"]["frames"]
    else:
        stats = codec.decode_file(src, dst, force=True)
        frames = stats["frames"]
    seconds = time.perf_counter() - start
    return {"frames": frames, f"{kind}_fps": frames / seconds, "bytes_out": stats["bytes_out"]}


def run_job(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--job", *args], capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="video-ctx")
    p.add_argument("--quality", type=int, default=3)
    p.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "video" / "chaplin.mp4")
    p.add_argument("--frames", type=int, default=192)
    p.add_argument("--gop", type=int, default=32)
    p.add_argument("--work", type=Path, default=Path("/tmp/ncodec-video-speed"))
    p.add_argument("--out", type=Path)
    p.add_argument("--job", nargs=6, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.job:
        kind, codec, src, dst, gop, quality = args.job
        out = job(kind, codec, src, dst, int(gop), int(quality))
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    results = {"machine": os.uname().machine, "threads": 2, "size": "352x288", "gop": args.gop,
               "quality": args.quality, "codec": args.codec, "source": str(args.source)}
    for frames in (args.frames // 4, args.frames):
        clip, ncb, dec = (args.work / f"cif{frames}{s}" for s in (".y4m", ".ncb", ".out.y4m"))
        fps = make_clip(args.source, clip, frames)
        enc = run_job("encode", args.codec, str(clip), str(ncb), str(args.gop), str(args.quality))
        de = run_job("decode", args.codec, str(ncb), str(dec), str(args.gop), str(args.quality))
        x264 = run_job("x264", args.codec, str(clip), "-", str(args.gop), str(args.quality))
        seconds = frames / fps
        results[f"{frames}_frames"] = {"encode": enc, "decode": de, "x264_crf28": x264,
                                       "kbps": 8 * enc["bytes_out"] / seconds / 1000 if seconds else None}
        print(json.dumps({frames: results[f"{frames}_frames"]}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
