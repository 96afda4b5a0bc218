"""Image quality and rate metrics, computed as CompressAI's ``eval_model`` computes them.

Both images are first brought to 8-bit values: uint8 stays as it is, float images in [0, 1]
are clamped, scaled by 255 and rounded. So a reconstruction is scored as the image a user
would save, and ncodec's numbers sit beside CompressAI's published ones.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch

__all__ = ["MS_SSIM_MIN_SIDE", "bpp", "ms_ssim_db", "ms_ssim_rgb", "psnr_rgb", "to_uint8"]

ImageLike = Union[torch.Tensor, np.ndarray]

# pytorch_msssim downsamples 4 times and needs the 11-tap window to fit at the coarsest
# scale: it asserts min(H, W) > (11 - 1) * 2**4 = 160.
MS_SSIM_MIN_SIDE = 161


def to_uint8(x: ImageLike) -> torch.Tensor:
    """An image ``[C, H, W]`` as uint8 0..255 on the CPU.

    uint8 input is returned as is; floating point input is read as [0, 1] and clamped,
    scaled by 255 and rounded (CompressAI's convention for reconstructions).
    """
    t = torch.as_tensor(x).detach().cpu()
    if t.dim() != 3:
        raise ValueError(f"expected an image [C, H, W], got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t
    if not t.is_floating_point():
        raise ValueError(f"expected uint8 or float images, got {t.dtype}")
    return (t.float().clamp(0, 1) * 255).round().to(torch.uint8)


def _pair(a: ImageLike, b: ImageLike) -> tuple[torch.Tensor, torch.Tensor]:
    a8, b8 = to_uint8(a), to_uint8(b)
    if a8.shape != b8.shape:
        raise ValueError(f"images differ in shape: {tuple(a8.shape)} vs {tuple(b8.shape)}")
    return a8, b8


def psnr_rgb(a: ImageLike, b: ImageLike) -> float:
    """PSNR in dB between two images ``[C, H, W]`` (uint8, or float in [0, 1]), peak 255.

    The MSE is taken over all channels and pixels of the 8-bit images (for RGB: PSNR-RGB,
    not PSNR-Y). Identical images give ``math.inf``; callers that average or fit curves
    should expect it (a lossless setting).
    """
    a8, b8 = _pair(a, b)
    mse = (a8.double() - b8.double()).pow(2).mean().item()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0 ** 2 / mse)


def ms_ssim_rgb(a: ImageLike, b: ImageLike) -> float:
    """MS-SSIM in [0, 1] (1 = identical) between two images ``[C, H, W]``.

    Computed by pytorch_msssim (5 scales, 11-tap Gaussian window) on the 8-bit values
    divided by 255 with ``data_range=1``, which equals CompressAI's 0..255 with
    ``data_range=255``. Images whose shorter side is below :data:`MS_SSIM_MIN_SIDE` (161 px)
    are too small for 5 scales: the result is ``math.nan`` rather than an error.
    """
    from pytorch_msssim import ms_ssim

    a8, b8 = _pair(a, b)
    if min(a8.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return math.nan
    x = a8.float().unsqueeze(0) / 255.0
    y = b8.float().unsqueeze(0) / 255.0
    return float(ms_ssim(x, y, data_range=1.0, size_average=True).item())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, ``-10 log10(1 - value)`` (CompressAI's plots); inf at 1."""
    if math.isnan(value):
        return math.nan
    return math.inf if value >= 1 else -10.0 * math.log10(1.0 - value)


def bpp(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel: ``8 * num_bytes / (height * width)`` (pixels, not samples)."""
    if num_bytes < 0 or height <= 0 or width <= 0:
        raise ValueError(f"bpp needs bytes >= 0 and a positive size, got {num_bytes} bytes, {height}x{width}")
    return 8.0 * num_bytes / (height * width)
