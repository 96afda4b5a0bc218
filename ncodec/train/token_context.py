"""Train the token context model of an audio codec (:mod:`ncodec.models.token_context`).

The codec stays frozen: its tokens on the training speech (every codebook, held-out files
excluded) are what the context model learns to predict. Validation codes the held-out files'
tokens with the exact twin (the coder's own CDF rows) at every bitrate and compares the bits
with the codec's static per-codebook prior.

    .venv/bin/python -m ncodec.train.token_context --codec speech-rvq-16k \\
        --data ../shared/data/audio/speech --val benchmarks/audio_val.txt \\
        --out ncodec/weights/speech-rvq-16k-context.safetensors

The weights file records the codec's fingerprint: a codec loads only a context model trained
on its own codebooks.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ncodec.models.token_context import CONTEXT_ARCHITECTURES, TokenContextModel, context_features

__all__ = ["codec_tokens", "context_bits", "train_context"]


def codec_tokens(codec, files: Sequence[Path], desc: str = "tokens") -> list[torch.Tensor]:
    """Every codebook's codes ``[n_q, F]`` (int16) of each mono file, at the codec's top bitrate."""
    from tqdm import tqdm

    from ncodec.train.audio_data import load_mono

    top = max(codec.bitrates)
    return [codec.tokenize(load_mono(f, codec.sample_rate), codec.sample_rate, bitrate=top).to(torch.int16)
            for f in tqdm(files, desc=desc, mininterval=5)]


def _batch_features(codebooks: torch.Tensor, codes: torch.Tensor, first: torch.Tensor, index: torch.Tensor):
    """``(prev, cur, target)``, features ``[B, n_q, 1, D]`` and codes ``[B, n_q, 1]``, of
    frames ``index`` of the concatenated ``codes [n_q, N]``; ``first`` marks the frames without
    a previous one (zeros, as at the start of every segment of a coded chunk)."""
    pair = torch.stack([codes[:, (index - 1).clamp_min(0)], codes[:, index]], -1).permute(1, 0, 2)  # [B, n_q, 2]
    prev, cur = context_features(codebooks, pair)
    prev = prev[:, :, 1:] * (~first[index]).view(-1, 1, 1, 1)
    return prev, cur[:, :, 1:], pair[:, :, 1:]


def context_bits(exact, tokens: Sequence[torch.Tensor], n_q: int, log_prior: torch.Tensor) -> tuple[float, float]:
    """(static prior bits, context model bits) of the first ``n_q`` codebooks of ``tokens``,
    each file coded as one chunk; the context model's are its exact CDF rows' costs."""
    static = context = 0.0
    for t in tokens:
        codes = t[:n_q].long()
        static += float(-log_prior[:n_q].gather(1, codes).sum()) / math.log(2)
        context += float(exact.bits(codes.unsqueeze(0)).double().sum())
    return static, context


def train_context(model: TokenContextModel, codebooks: torch.Tensor, tokens: Sequence[torch.Tensor], *,
                  epochs: int = 10, batch_frames: int = 1024, lr: float = 3e-3, weight_decay: float = 0.0,
                  seed: int = 0) -> list[dict]:
    """Fit ``model`` to ``tokens`` (``[n_q, F]`` per file) by cross-entropy; returns a log."""
    from tqdm import tqdm

    g = torch.Generator().manual_seed(seed)
    codes = torch.cat([t.long() for t in tokens], 1)
    # Frames without a previous one: where each file's segments start (as in a coded chunk).
    segment = int(model.segment_frames)
    first = torch.cat([torch.arange(t.shape[1]) % segment == 0 for t in tokens])
    cb = codebooks.float()
    steps = epochs * max(1, codes.shape[1] // batch_frames)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    log, start = [], time.time()
    model.train()
    for step in tqdm(range(steps), desc="context model", mininterval=10):
        index = torch.randint(0, codes.shape[1], (batch_frames,), generator=g)
        prev, cur, target = _batch_features(cb, codes, first, index)
        loss = F.cross_entropy(model(prev, cur).permute(0, 3, 1, 2), target)  # [B, K, n_q, 1]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            log.append({"step": step, "seconds": round(time.time() - start, 1),
                        "bits_per_code": round(loss.item() / math.log(2), 4)})
    return log


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="speech-rvq-16k")
    p.add_argument("--data", type=Path, default=Path("../shared/data/audio/speech"))
    p.add_argument("--val", type=Path, default=Path("benchmarks/audio_val.txt"), help="held-out list")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="weights file to write (.safetensors)")
    args = p.parse_args(argv)

    import ncodec
    from ncodec.models import weights as weights_io
    from ncodec.train.audio_data import list_audio, read_file_list

    torch.manual_seed(args.seed)
    codec = ncodec.load(args.codec, modality="audio")
    arch_name = f"{codec.name}-context"
    if arch_name not in CONTEXT_ARCHITECTURES:
        raise SystemExit(f"no context architecture {arch_name!r}; known: {', '.join(CONTEXT_ARCHITECTURES)}")
    arch = CONTEXT_ARCHITECTURES[arch_name]
    codebooks = codec.codebooks()
    counts = codec.model.code_counts.double()
    log_prior = (counts / counts.sum(1, keepdim=True)).log()
    val_files = read_file_list(args.val)
    train_files = list_audio(args.data, exclude=val_files)
    train_tokens = codec_tokens(codec, train_files, "train tokens")
    val_tokens = codec_tokens(codec, val_files, "val tokens")
    model = TokenContextModel(arch, log_prior.float())
    start = time.time()
    log = train_context(model, codebooks, train_tokens, epochs=args.epochs, lr=args.lr,
                        weight_decay=args.weight_decay, seed=args.seed)
    model.eval()
    weights_io.round_half(model)  # what the file keeps: validate that
    exact = model.exact(codebooks)
    val = {}
    for b in codec.bitrates:
        n_q = codec.arch.n_q_for(b)
        static, context = context_bits(exact, val_tokens, n_q, log_prior)
        val[f"{b:g}kbps"] = {"static_bits": round(static), "context_bits": round(context),
                             "saving": round(1 - context / static, 4)}
        print(f"{b:g} kbps ({n_q} codebooks): static prior {static:.0f} bits, context {context:.0f} bits, "
              f"saving {100 * (1 - context / static):.2f} %")
    info = {"codec": codec.name, "codec_fingerprint": codec.fingerprint, "train_files": len(train_files),
            "train_frames": sum(t.shape[1] for t in train_tokens), "val_files": len(val_files),
            "epochs": args.epochs, "lr": args.lr, "weight_decay": args.weight_decay, "seed": args.seed,
            "train_seconds": round(time.time() - start, 1), "device": "cpu",
            "hardware": f"{torch.get_num_threads()} threads", "val": val, "log_tail": log[-3:]}
    weights_io.export_weights(model, args.out, arch=arch_name, info=info)
    print(json.dumps(val))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
