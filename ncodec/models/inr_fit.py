"""Fitting an :class:`~ncodec.models.inr.InrImageModel` to one image: the INR codec's encoder.

Loss: ``MSE + lam * bpp`` on RGB in [0, 1], ``bpp`` the ARM's rate of the latents per pixel.
After the fit, :mod:`ncodec.models.inr_quantize` rounds the network's parameters for the file
(a step per layer, then RDOQ) by the same loss with the network's own bits counted.
Two phases, as Cool-chic and C3 do: first the latents are soft-rounded with additive Gaussian
noise (a smooth proxy of rounding, :func:`_proxy`), then they are rounded with a
straight-through gradient, at a lower learning rate, so that the model ends fitted to the
values it will store; over the last 40 % of the fit the network, too, runs rounded to the
steps :func:`~ncodec.models.inr_quantize.quantize_network` would choose (straight-through: ``quantize_aware``). The
latents learn with Adam at a larger rate than the network (``latent_lr`` 0.1 against ``lr``
1e-2); the network learns with SOAP
(:class:`ncodec.models.soap.Soap`, betas 0.95, 0.95, as Cool-chic 5 fits its networks). The
fit starts from the image's mean colour (a random start could leave a colour channel dead:
see :meth:`InrImageModel.start_at_colour`).

Speed (CID22 val photo 512x512, 2 threads, the 2-core Intel Xeon VM): 91-94 ms per
iteration for the default preset with the rate term fused in C++ (``ext/inr_fit.cpp``; 134 ms
before, measured side by side); a 256x256 crop on 1 thread: 32 ms (43 before).
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ncodec.models.inr import InrConfig, InrImageModel
from ncodec.models.inr_quantize import network_layers, quantize_network
from ncodec.models.soap import Soap

__all__ = ["FitResult", "fit_image"]


@dataclass
class FitResult:
    """A fitted model and how the fit went (``log``: one dict per logged iteration)."""

    model: InrImageModel
    iterations: int
    seconds: float
    log: list[dict] = field(default_factory=list)


def _softround(x: Tensor, t: float) -> Tensor:
    base = torch.floor(x)
    delta = x - base - 0.5
    return base + 0.5 + 0.5 * torch.tanh(delta / t) / math.tanh(1 / (2 * t))


def _proxy(y: Tensor, phase: str, r: int, progress: float = 0.0, *, noise: tuple[float, float] = (0.22, 0.15),
           temperature: tuple[float, float] = (0.35, 0.08)) -> Tensor:
    """The latents as the fit sees them: in the noise phase soft-rounded, plus Gaussian noise,
    soft-rounded again (C3's proxy; the noise keeps the rate honest: no free half-integers),
    the noise's standard deviation and the temperature going linearly from their first to
    their second value as ``progress`` (0 .. 1 through the noise phase) goes (Cool-chic 5's
    schedule); then rounded with a straight-through gradient."""
    if phase == "noise":
        t = temperature[0] + (temperature[1] - temperature[0]) * progress
        sigma = noise[0] + (noise[1] - noise[0]) * progress
        return _softround(_softround(y, t) + torch.randn_like(y) * sigma, t).clamp(-r, r)
    return y + (y.round().clamp(-r, r) - y).detach()


def fit_image(image: Tensor, lam: float, *, config: InrConfig = InrConfig(), iterations: int = 1000,
              max_seconds: float | None = None, lr: float = 1e-2, noise_fraction: float = 0.8,
              seed: int = 0, progress: bool = False, log_every: int = 100, device: str | torch.device = "cpu",
              bf16: bool | None = None, latent_lr: float | None = 0.1,
              network_betas: tuple[float, float] = (0.95, 0.95), network_optimizer: str = "soap",
              quantize_aware: float = 0.4) -> FitResult:
    """Fit a model to ``image`` (float ``[3, H, W]`` in [0, 1]) at rate-distortion weight ``lam``.

    ``iterations`` (or, if it runs out first, ``max_seconds`` of wall time, the noise phase
    then ending at ``noise_fraction`` of the time) at ``lr`` for the network and with Adam at
    ``latent_lr`` (``None``: ``lr``) for the latents, cosine-decayed, on ``device``.
    ``network_optimizer``: ``"soap"`` (:class:`ncodec.models.soap.Soap`) or ``"adam"`` for the
    network's parameters (on a 256x256 CID22 crop at quality 4 and 2000 iterations, SOAP's
    final ``MSE + lam * bpp`` was 8-11 % lower in each of 3 seeds). (The
    latents want a larger rate than the network: at 1000 iterations on a 512x512 photo,
    ``latent_lr`` 6e-2 fits ~4 dB better than 1e-2 at about the same rate, and 0.1 gains another
    0.15-0.35 dB over 6e-2: PSNR at equal rate, 3 CID22 photos, quality 4.) ``network_betas``:
    the network's Adam betas. (Cool-chic 5's recipe, Gaussian noise in :func:`_proxy` and betas
    (0.95, 0.95), against C3's uniform noise and Adam's (0.9, 0.999): the fit's final
    ``MSE + lam * bpp`` fell 3-13 % on a 256x256 CID22 crop at qualities 3-6 and 2000
    iterations, 5.8 % on 512x512 photo 1189261 at quality 4 and 1000.) ``bf16`` runs the
    synthesis's 1x1 layers in bfloat16 during the fit (faster on CPUs with bfloat16 units: the
    synthesis and the ARM together ran about 2x faster when both used it; default: on for CPUs
    that have them, off elsewhere); the result is always
    evaluated in float32. ``quantize_aware``: the last fraction of the fit in which the network
    trains through its own quantisation. At its start each layer's step is chosen as
    :func:`quantize_network` chooses it (on a copy of the model); every iteration from then on
    runs with the network's parameters rounded to those steps, and the optimisers update the
    unrounded ones (a straight-through gradient). On a 256x256 CID22 crop (quality 4, 2000
    iterations) the final ``MSE + lam * bpp`` after :func:`quantize_network` fell 1.6-3.8 %
    in each of 3 seeds at 0.4 (0.6 % on average at 0.2). 0: off. The model comes back on the
    CPU.

    Speed: PyTorch allocates and frees large buffers every iteration; glibc's default of
    returning them to the system (mmap) costs page faults. ``MALLOC_MMAP_MAX_=0
    MALLOC_TRIM_THRESHOLD_=10000000000`` in the environment (and ``OMP_WAIT_POLICY=PASSIVE``
    on a shared CPU) avoids it.
    """
    torch.manual_seed(seed)
    device = torch.device(device)
    if bf16 is None:
        from ncodec.models.fast import bf16_supported  # the check the image codecs use

        bf16 = device.type == "cpu" and bf16_supported(device)
    x = image.detach().float().unsqueeze(0).to(device).contiguous(memory_format=torch.channels_last)
    _, _, h, w = x.shape
    model = InrImageModel(h, w, config).to(device)
    model.start_at_colour(x.mean(dim=(0, 2, 3)))  # not a random colour: see start_at_colour
    r = config.latent_range
    if network_optimizer not in ("soap", "adam"):
        raise ValueError(f"network_optimizer must be 'soap' or 'adam', not {network_optimizer!r}")
    latent_ids = {id(p) for p in model.latents}
    network = [{"params": [p for p in model.parameters() if id(p) not in latent_ids], "base_lr": lr,
                "betas": tuple(network_betas)}]
    optimizers = [torch.optim.Adam([{"params": list(model.latents), "base_lr": lr if latent_lr is None else latent_lr}],
                                   lr=lr, **_adam_options(device)),
                  Soap(network, lr=lr) if network_optimizer == "soap" else
                  torch.optim.Adam(network, lr=lr, **_adam_options(device))]
    param_groups = [g for opt in optimizers for g in opt.param_groups]
    start = time.perf_counter()
    log: list[dict] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=iterations, desc="fitting", unit="it", mininterval=1)
    done = 0
    sizes = [y.numel() for y in model.latents]
    layers, steps = network_layers(model), None
    for it in range(iterations):
        elapsed = time.perf_counter() - start
        progress_frac = it / iterations if max_seconds is None else max(it / iterations, elapsed / max_seconds)
        if progress_frac >= 1:
            break
        phase = "noise" if progress_frac < noise_fraction else "round"
        if steps is None and quantize_aware > 0 and progress_frac >= 1 - quantize_aware:
            steps = _layer_steps(model, image, lam)
        for group in param_groups:
            scale = 1.0 if phase == "noise" else 0.1
            group["lr"] = group["base_lr"] * scale * 0.5 * (1 + math.cos(math.pi * progress_frac))
        flat = _proxy(torch.cat([y.reshape(-1) for y in model.latents]), phase, r,
                      min(1.0, progress_frac / noise_fraction) if noise_fraction > 0 else 1.0)
        latents = [v.view(y.shape) for v, y in zip(flat.split(sizes), model.latents)]
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        with _rounded_network(layers, steps):
            x_hat = model.synthesize(latents, bf16=bf16)
            mse = F.mse_loss(x_hat, x)
            bpp = model.rate_bits(latents) / (h * w)
            loss = mse + lam * bpp
            loss.backward()
        for opt in optimizers:
            opt.step()
        done = it + 1
        if bar is not None:
            bar.update(1)
        if it % log_every == 0:
            m = mse.item()
            log.append({"iteration": it, "phase": phase, "mse": m, "bpp": bpp.item(),
                        "psnr": -10 * math.log10(max(m, 1e-12)), "seconds": round(elapsed, 2)})
    if bar is not None:
        bar.close()
    return FitResult(model.cpu().eval(), done, time.perf_counter() - start, log)


def _layer_steps(model: InrImageModel, image: Tensor, lam: float) -> dict[str, float]:
    """The step :func:`quantize_network` would choose now for each of :func:`network_layers`,
    found on a copy (on the CPU) of ``model``."""
    info = quantize_network(copy.deepcopy(model).cpu(), image.detach().cpu(), lam)
    return {name: info[name]["step"] for name in network_layers(model)}


@contextmanager
def _rounded_network(layers: dict[str, torch.nn.Module], steps: dict[str, float] | None):
    """Within the block, each layer's parameters rounded to multiples of its step (``None``:
    unchanged); afterwards their unrounded values back. (A forward and backward inside it
    give the rounded network's gradients: the straight-through estimate for the unrounded.)"""
    if steps is None:
        yield
        return
    kept = []
    with torch.no_grad():
        for name, module in layers.items():
            for p in module.parameters():
                kept.append((p, p.detach().clone()))
                p.copy_(torch.round(p / steps[name]) * steps[name])
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value in kept:
                p.copy_(value)


def _adam_options(device: torch.device) -> dict:
    """Adam's fused kernel where this torch has it for ``device`` (one kernel for all
    parameters instead of a loop)."""
    try:
        probe = torch.zeros(1, device=device, requires_grad=True)
        torch.optim.Adam([probe], fused=True)
        return {"fused": True}
    except (RuntimeError, TypeError, ValueError):
        return {}
