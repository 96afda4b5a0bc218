"""Fitting an :class:`~ncodec.models.inr.InrImageModel` to one image: the INR codec's encoder.

Loss: ``MSE + lam * bpp`` on RGB in [0, 1], ``bpp`` the ARM's rate of the latents per pixel.
Two phases, as Cool-chic and C3 do: first the latents get additive uniform noise (a smooth
proxy of rounding), then they are rounded with a straight-through gradient, at a lower
learning rate, so that the model ends fitted to the values it will store.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ncodec.models.inr import InrConfig, InrImageModel

__all__ = ["FitResult", "fit_image", "quantized_latents"]


@dataclass
class FitResult:
    """A fitted model and how the fit went (``log``: one dict per logged iteration)."""

    model: InrImageModel
    iterations: int
    seconds: float
    log: list[dict] = field(default_factory=list)


def quantized_latents(model: InrImageModel) -> list[Tensor]:
    """The latents rounded and clamped to the alphabet (what a file stores)."""
    r = model.config.latent_range
    return [y.detach().round().clamp(-r, r) for y in model.latents]


def _softround(x: Tensor, t: float) -> Tensor:
    base = torch.floor(x)
    delta = x - base - 0.5
    return base + 0.5 + 0.5 * torch.tanh(delta / t) / math.tanh(1 / (2 * t))


def _proxy(y: Tensor, phase: str, r: int, progress: float = 0.0) -> Tensor:
    if phase == "noise":
        # softround with an annealed temperature, plus noise that fades (Cool-chic's recipe class)
        t = 0.3 - 0.2 * min(1.0, progress / 0.8)
        noise = 0.5 * (1 - 0.5 * min(1.0, progress / 0.8))
        return (_softround(y, t) + torch.empty_like(y).uniform_(-noise, noise)).clamp(-r, r)
    return y + (y.round().clamp(-r, r) - y).detach()  # straight-through rounding


def fit_image(image: Tensor, lam: float, *, config: InrConfig = InrConfig(), iterations: int = 1000,
              max_seconds: float | None = None, lr: float = 1e-2, noise_fraction: float = 0.8,
              seed: int = 0, progress: bool = False, log_every: int = 100) -> FitResult:
    """Fit a model to ``image`` (float ``[3, H, W]`` in [0, 1]) at rate-distortion weight ``lam``.

    ``iterations`` (or, if it runs out first, ``max_seconds`` of wall time, the noise phase
    then ending at ``noise_fraction`` of the time) with Adam at ``lr``, cosine-decayed.
    """
    torch.manual_seed(seed)
    x = image.detach().float().unsqueeze(0)
    _, _, h, w = x.shape
    model = InrImageModel(h, w, config)
    r = config.latent_range
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    log: list[dict] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=iterations, desc="fitting", unit="it", mininterval=1)
    done = 0
    for it in range(iterations):
        elapsed = time.perf_counter() - start
        progress_frac = it / iterations if max_seconds is None else max(it / iterations, elapsed / max_seconds)
        if progress_frac >= 1:
            break
        phase = "noise" if progress_frac < noise_fraction else "round"
        for group in opt.param_groups:
            scale = 1.0 if phase == "noise" else 0.1
            group["lr"] = lr * scale * 0.5 * (1 + math.cos(math.pi * progress_frac))
        latents = [_proxy(y, phase, r, progress_frac) for y in model.latents]
        x_hat = model.synthesize(latents)
        mse = F.mse_loss(x_hat, x)
        bpp = model.rate_bits(latents) / (h * w)
        loss = mse + lam * bpp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = it + 1
        if bar is not None:
            bar.update(1)
        if it % log_every == 0:
            log.append({"iteration": it, "phase": phase, "mse": mse.item(), "bpp": bpp.item(),
                        "psnr": -10 * math.log10(max(mse.item(), 1e-12)), "seconds": round(elapsed, 2)})
    if bar is not None:
        bar.close()
    return FitResult(model.eval(), done, time.perf_counter() - start, log)
