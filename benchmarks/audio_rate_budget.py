"""Where an audio file's bits go, against its nominal rate: what it takes to code at or below it.

For each held-out utterance and each bitrate of the codec, codes the file and splits its rate
(kbps, per second of input) into the container's own bytes (header JSON, chunk framing, index,
trailer) and the coded substreams, and computes the ideal cost of the same codes under three
priors: the learned per-codebook prior the codec uses, uniform (exactly the nominal rate), and
per file and codebook the cheapest of the learned prior mixed with uniform at weights 0, 1/16,
1/8, 1/4, 1/2 and 1 (a per-chunk choice that a header of a few bits would select).

    .venv/bin/python benchmarks/audio_rate_budget.py --out benchmarks/results/audio_rate_budget.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MIX = (0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="speech-rvq-16k")
    p.add_argument("--val", type=Path, default=ROOT / "benchmarks" / "audio_val.txt", help="held-out list")
    p.add_argument("--limit", type=int, default=0, help="first N files (0: all)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from machine import emit_report
    from tqdm import tqdm

    import ncodec
    from ncodec.codecs import container
    from ncodec.io import read_audio
    from ncodec.train.audio_data import read_file_list

    files = read_file_list(args.val)[: args.limit or None]
    codec = ncodec.load(args.codec, modality="audio")
    counts = codec.model.code_counts.double() + 1e-9
    learned = counts / counts.sum(1, keepdim=True)
    uniform = torch.full_like(learned, 1 / learned.shape[1])
    totals = {b: dict.fromkeys(("file", "container", "streams", "learned", "uniform", "mixture", "seconds"), 0.0)
              for b in codec.bitrates}
    for path in tqdm(files, desc="files"):
        x, sr = read_audio(path)
        for b in codec.bitrates:
            data = codec.compress(x, sr, bitrate=b)
            _, chunks = container.unpack(data)
            streams = sum(len(s) for chunk in chunks for s in chunk)
            tokens = codec.tokenize(x, sr, bitrate=b)
            tokens = tokens if tokens.dim() == 3 else tokens.unsqueeze(0)  # [C, n_q, F]
            t = totals[b]
            t["file"] += 8 * len(data)
            t["container"] += 8 * (len(data) - streams)
            t["streams"] += 8 * streams
            t["seconds"] += x.shape[-1] / sr
            for q in range(tokens.shape[1]):
                codes = tokens[:, q].reshape(-1)
                costs = [float(-torch.log2((1 - w) * learned[q] + w * uniform[q])[codes].sum()) for w in MIX]
                t["learned"] += costs[0]
                t["uniform"] += costs[-1]
                t["mixture"] += min(costs)
    rows = []
    for b, t in totals.items():
        k = {key: value / t["seconds"] / 1000 for key, value in t.items() if key != "seconds"}
        rows.append(f"| {b:g} | {k['file']:.3f} | {k['container']:.3f} | {k['streams']:.3f} | {k['learned']:.3f} | "
                    f"{k['uniform']:.3f} | {k['mixture']:.3f} | {k['file'] - b:+.3f} |")
    emit_report([
        f"# {args.codec}: where the bits of a file go ({len(files)} held-out utterances, "
        f"{sum(t['seconds'] for t in totals.values()) / len(totals):.0f} s in all)", "",
        "`.venv/bin/python benchmarks/audio_rate_budget.py`. All figures in kbps per second of input; the prior "
        "columns are ideal costs (-log2 p) of the file's codes, without the coder's stream headers.", "",
        "| nominal | file | container | substreams | codes, learned prior | codes, uniform | codes, best mixture "
        "| file - nominal |", "|--:|--:|--:|--:|--:|--:|--:|--:|", *rows], args.out)


if __name__ == "__main__":
    main()
