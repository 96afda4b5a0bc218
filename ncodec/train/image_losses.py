"""Rate–distortion losses and CompressAI's lambda ladder.

The rate term is bits per pixel from the model's likelihoods (noise-relaxed in training);
the distortion is MSE on [0, 1] images scaled by 255² (CompressAI's convention, so its
λ values carry over) or 1 − MS-SSIM.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from pytorch_msssim import ms_ssim
from torch import Tensor, nn

__all__ = ["LAMBDAS", "RateDistortionLoss", "lambda_for"]

# CompressAI's published λ per quality 1..8 (compressai/zoo/image.py training setup).
LAMBDAS: dict[str, tuple[float, ...]] = {
    "mse": (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800),
    "ms-ssim": (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.0),
}


def lambda_for(metric: str, quality: int) -> float:
    """CompressAI's λ for ``metric`` ("mse" or "ms-ssim") at ``quality`` 1..8."""
    if metric not in LAMBDAS:
        raise ValueError(f"metric must be one of {sorted(LAMBDAS)}, got {metric!r}")
    if not 1 <= quality <= len(LAMBDAS[metric]):
        raise ValueError(f"quality must be in 1..{len(LAMBDAS[metric])}, got {quality}")
    return LAMBDAS[metric][quality - 1]


class RateDistortionLoss(nn.Module):
    """``loss = λ · D + bpp``.

    Args:
        lmbda: λ (> 0).
        metric: "mse" (D = 255² · MSE) or "ms-ssim" (D = 1 − MS-SSIM, needs crops ≥ 161 px).
    """

    def __init__(self, lmbda: float, metric: str = "mse"):
        super().__init__()
        if metric not in LAMBDAS:
            raise ValueError(f"metric must be one of {sorted(LAMBDAS)}, got {metric!r}")
        if not lmbda > 0:
            raise ValueError(f"lambda must be > 0, got {lmbda}")
        self.lmbda = float(lmbda)
        self.metric = metric

    def forward(self, output: Mapping[str, object], target: Tensor, lmbda: Tensor | None = None) -> dict[str, Tensor]:
        """``output``: the model's forward dict (``x_hat``, ``likelihoods``); ``target``
        ``[B, 3, H, W]`` in [0, 1]; ``lmbda``: optional per-item λ ``[B]`` (variable-rate
        training) instead of the module's. Returns the batch means of ``loss``, ``bpp``,
        ``mse`` and ``distortion``."""
        b, _, h, w = target.shape
        likelihoods = output["likelihoods"].values()  # type: ignore[union-attr]
        bits = sum(torch.log(p.float()).reshape(b, -1).sum(1) for p in likelihoods) / -math.log(2)
        bpp = bits / (h * w)
        x_hat = output["x_hat"].float()  # type: ignore[union-attr]
        mse = ((x_hat - target) ** 2).reshape(b, -1).mean(1)
        if self.metric == "mse":
            distortion = 255.0**2 * mse
        else:
            distortion = 1.0 - ms_ssim(x_hat.clamp(0, 1), target, data_range=1.0, size_average=False)
        weight = self.lmbda if lmbda is None else lmbda.to(distortion)
        loss = (weight * distortion + bpp).mean()
        return {"loss": loss, "bpp": bpp.mean(), "mse": mse.mean(), "distortion": distortion.mean()}
