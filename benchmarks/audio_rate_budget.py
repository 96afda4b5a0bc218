"""Where an audio file's bits go, against its nominal rate: what it takes to code at or below it.

For each held-out utterance and each bitrate of the codec, codes the file twice, with the
codec's token context model and with its static per-codebook prior only, and splits the
rate (kbps, per second of input) into the container's own bytes (header JSON, chunk framing,
index, trailer) and the coded substreams. For the same codes it computes the ideal cost under
the learned per-codebook prior, uniform (exactly the nominal rate), per file and codebook the
cheapest of the prior mixed with uniform at weights 0, 1/16, 1/8, 1/4, 1/2 and 1, and the
context model's exact CDF rows; the last column is the context model's saving of token bits
against the learned prior.

    .venv/bin/python benchmarks/audio_rate_budget.py --out benchmarks/results/audio_rate_budget.md
"""

from __future__ import annotations

import argparse
import sys
import time
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
    from ncodec.codecs.audio import AudioCodec

    codec = ncodec.load(args.codec, modality="audio")
    if codec.code_model is None:
        raise SystemExit(f"{args.codec} has no token context model")
    static_codec = AudioCodec(codec.name, codec.model, codec.quality)
    counts = codec.model.code_counts.double() + 1e-9
    learned = counts / counts.sum(1, keepdim=True)
    uniform = torch.full_like(learned, 1 / learned.shape[1])
    keys = ("file", "static_file", "container", "streams", "learned", "uniform", "mixture", "context", "seconds",
            "decode_static", "decode_context")
    totals = {b: dict.fromkeys(keys, 0.0) for b in codec.bitrates}
    worst = dict.fromkeys(codec.bitrates, 0.0)  # the largest file's kbps
    for path in tqdm(files, desc="files"):
        x, sr = read_audio(path)
        for b in codec.bitrates:
            data = codec.compress(x, sr, bitrate=b)
            _, chunks = container.unpack(data)
            streams = sum(len(s) for chunk in chunks for s in chunk)
            tokens = codec.tokenize(x, sr, bitrate=b)
            tokens = tokens if tokens.dim() == 3 else tokens.unsqueeze(0)  # [C, n_q, F]
            t = totals[b]
            static_data = static_codec.compress(x, sr, bitrate=b)
            t["file"] += 8 * len(data)
            t["static_file"] += 8 * len(static_data)
            worst[b] = max(worst[b], 8 * len(data) / (x.shape[-1] / sr) / 1000)
            for key, codec_data in (("decode_context", data), ("decode_static", static_data)):
                start = time.perf_counter()
                codec.decompress(codec_data)
                t[key] += time.perf_counter() - start
            t["context"] += sum(float(codec.token_context.bits(part).double().sum())  # chunks start afresh
                                for part in tokens.split(codec.chunk_frames, -1))
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
        speed = {key: t["seconds"] / t[key] for key in ("decode_static", "decode_context")}
        rows.append(f"| {b:g} | {k['static_file']:.3f} | {k['file']:.3f} | {k['file'] - b:+.3f} | {k['container']:.3f} | "
                    f"{k['streams']:.3f} | {k['uniform']:.3f} | {k['learned']:.3f} | {k['mixture']:.3f} | "
                    f"{k['context']:.3f} | {100 * (1 - k['context'] / k['learned']):.1f} % | {worst[b]:.3f} | "
                    f"{speed['decode_static']:.0f} | {speed['decode_context']:.0f} |")
    emit_report([
        f"# {args.codec}: where the bits of a file go ({len(files)} held-out utterances, "
        f"{sum(t['seconds'] for t in totals.values()) / len(totals):.0f} s in all)", "",
        "`.venv/bin/python benchmarks/audio_rate_budget.py`. All figures in kbps per second of input. Files are "
        f"coded with the token context model ({codec.code_model}) unless marked static; the `codes` columns are "
        "ideal costs (-log2 p) of the file's codes, without the coder's stream headers; container and "
        "substreams split the context-coded file.", "",
        "| nominal | file, static prior | file | file - nominal | container | substreams | codes, uniform "
        "| codes, learned prior | codes, best mixture | codes, context model | context saving vs learned "
        "| largest file | decode ×RT, static | decode ×RT, context |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|", *rows, "",
        f"Decode ×RT: seconds of audio per second of `decompress()` on {torch.get_num_threads()} threads."], args.out)


if __name__ == "__main__":
    main()
