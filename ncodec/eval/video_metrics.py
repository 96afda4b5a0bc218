"""Video quality per frame, on 8-bit 4:2:0 frames (:class:`ncodec.io.video.YuvFrame`).

- :func:`plane_mse`: the mean squared error of each plane (Y, U, V), in 8-bit units.
- :func:`psnr_yuv`: PSNR-YUV, the planes' PSNRs weighted 6:1:1 (the JVET common test
  conditions' and DCVC's figure), peak 255. A clip's PSNR-YUV is the mean of its frames'.

Identical planes have an MSE of 0; their PSNR is capped at :data:`PSNR_CAP` dB (a lossless
frame would otherwise make a clip's mean infinite).
"""

from __future__ import annotations

import math

import numpy as np

from ncodec.io.video import YuvFrame

__all__ = ["PSNR_CAP", "plane_mse", "psnr", "psnr_yuv"]

PSNR_CAP = 100.0
"""dB given to a plane coded without error (MSE 0)."""


def plane_mse(ref: YuvFrame, deg: YuvFrame) -> tuple[float, float, float]:
    """MSE of the Y, U and V planes of ``deg`` against ``ref`` (same sizes; 8-bit units)."""
    out = []
    for name, a, b in zip("yuv", ref, deg):
        if a.shape != b.shape:
            raise ValueError(f"plane {name}: {b.shape} against the reference's {a.shape}")
        d = a.astype(np.int32) - b.astype(np.int32)
        out.append(float(np.mean(d * d)))
    return out[0], out[1], out[2]


def psnr(mse: float, peak: float = 255.0) -> float:
    """PSNR in dB of an MSE at ``peak``, :data:`PSNR_CAP` for an MSE of 0."""
    return PSNR_CAP if mse <= 0 else min(PSNR_CAP, 10 * math.log10(peak * peak / mse))


def psnr_yuv(ref: YuvFrame, deg: YuvFrame) -> dict[str, float]:
    """``{"psnr_y", "psnr_u", "psnr_v", "psnr_yuv"}`` of one frame: each plane's PSNR, and
    ``(6 * Y + U + V) / 8``."""
    y, u, v = (psnr(m) for m in plane_mse(ref, deg))
    return {"psnr_y": y, "psnr_u": u, "psnr_v": v, "psnr_yuv": (6 * y + u + v) / 8}
