"""Capacity check of an audio codec's encoder and decoder: fit them to one held-out segment.

Trains the shipped model's encoder and decoder (the quantizer bypassed) on a single 3 s
segment of the first held-out utterance with the multi-scale mel loss plus a waveform L1
term, and prints PESQ-WB and SI-SDR as it goes. A network that cannot overfit one segment
has a structural fault; one that can is limited by its training instead.

    python benchmarks/audio_overfit_check.py --steps 1500 --lr 1e-3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import ncodec
from ncodec.eval.audio_metrics import pesq_wb, si_sdr
from ncodec.train.audio_data import load_mono, read_file_list
from ncodec.train.audio_losses import MultiScaleMelLoss

VAL_LIST = Path(__file__).with_name("audio_val.txt")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="speech-rvq-16k")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--wave-weight", type=float, default=100.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    codec = ncodec.load(args.codec, modality="audio")
    model, sr = codec.model.train(), codec.sample_rate
    x = load_mono(read_file_list(VAL_LIST)[0], sr)[sr: 4 * sr].view(1, 1, -1)
    x = x / x.abs().max() * 0.5
    mel = MultiScaleMelLoss(sr)
    opt = torch.optim.Adam([*model.encoder.parameters(), *model.decoder.parameters()], lr=args.lr)
    began = time.perf_counter()
    for step in range(args.steps + 1):
        y = model.decoder(model.encoder(x))
        loss = 15 * mel(y, x) + args.wave_weight * torch.nn.functional.l1_loss(y, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0:
            with torch.no_grad():
                y = model.decoder(model.encoder(x))
            print(f"step {step:5d}  loss {loss.item():7.3f}  PESQ-WB {pesq_wb(x[0], y[0], sr):.3f}  "
                  f"SI-SDR {float(si_sdr(x[0], y[0])):6.2f} dB  {time.perf_counter() - began:5.0f} s", flush=True)


if __name__ == "__main__":
    main()
