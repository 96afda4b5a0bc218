"""What streaming costs: bytes and time of the audio stream encoder per chunk size, against
``compress()`` of the whole file.

For each ``chunk_frames`` (frames per container chunk: 50 frames = 1 s at 50 frames/s) the
bundled speech file is streamed in 20 ms pushes (320 samples at 16 kHz) through
``codec.stream_encoder(sr, chunk_frames=..., samples=N)``; the bytes are compared with
``codec.compress(wav, sr, chunk_frames=...)`` (identical, since both write the same header)
and with ``compress()`` at the default chunk size. Each chunk carries a frame count, a
container length and CRC and a range-coder stream with its own header and symbol check,
which is what small chunks pay for. Times: the whole stream's wall time over the audio's
duration (real-time factor), and the slowest single push.

Run: ``.venv/bin/python benchmarks/audio_streaming.py [--chunks 1,2,5,10,25,50,500] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import ncodec
from ncodec.io import read_audio
from machine import emit_report

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "ncodec" / "data" / "audio" / "481-123719-0000.flac"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="1,2,5,10,25,50,500")
    parser.add_argument("--bitrate", type=float, default=6.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = ncodec.load("speech-rvq-16k", modality="audio")
    wav, sr = read_audio(SPEECH)
    seconds = wav.shape[-1] / sr
    whole = codec.compress(wav, sr, bitrate=args.bitrate)
    push = sr // 50
    lines = [f"# Audio streaming cost (speech-rvq-16k at {args.bitrate:g} kbps, {SPEECH.name}, {seconds:.1f} s, "
             f"{args.threads} threads, ncodec {ncodec.__version__})", "",
             f"compress() at the default chunk size ({codec.chunk_frames} frames): {len(whole):,} bytes "
             f"= {8 * len(whole) / 1000 / seconds:.2f} kbps.", "",
             "| chunk_frames | chunk (ms) | bytes | kbps | bytes / compress() default | equals compress() at that "
             "chunk size | real-time factor | slowest push (ms) |", "|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for frames in (int(c) for c in args.chunks.split(",")):
        enc = codec.stream_encoder(sr, channels=wav.shape[0], bitrate=args.bitrate, chunk_frames=frames,
                                   samples=wav.shape[-1])
        pieces, slowest = [], 0.0
        start = time.perf_counter()
        for piece in wav.split(push, dim=-1):
            t0 = time.perf_counter()
            pieces.append(enc.push(piece))
            slowest = max(slowest, time.perf_counter() - t0)
        pieces.append(enc.close())
        elapsed = time.perf_counter() - start
        data = b"".join(pieces)
        same = data == codec.compress(wav, sr, bitrate=args.bitrate, chunk_frames=frames)
        lines.append(f"| {frames} | {1000 * frames / codec.frame_rate:.0f} | {len(data):,} | "
                     f"{8 * len(data) / 1000 / seconds:.2f} | {len(data) / len(whole):.3f} | {'yes' if same else 'no'} | "
                     f"{seconds / elapsed:.1f}x | {1000 * slowest:.0f} |")
    emit_report(lines, args.out)


if __name__ == "__main__":
    main()
