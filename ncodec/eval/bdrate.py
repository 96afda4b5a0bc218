"""Bjøntegaard deltas between two rate-distortion curves (VCEG-M33), with piecewise cubic
Hermite (PCHIP) interpolation instead of the original cubic polynomial fit.

- BD-rate: the mean difference in log-rate at equal quality, over the quality interval both
  curves cover, as a percentage: ``100 * (exp(mean(ln R_test - ln R_anchor)) - 1)``.
  Negative means the test codec needs fewer bits than the anchor for the same quality
  (-10.0 = 10 % fewer).
- BD-PSNR (BD-quality): the mean difference in quality at equal log-rate, over the log-rate
  interval both cover, in the quality's unit (dB for PSNR or MS-SSIM in dB). Positive means
  the test codec is better.

PCHIP follows the data without overshoot and integrates exactly, so two points per curve are
enough (it is then linear in log-rate); four or more are the usual practice. Each curve must
be strictly increasing in both rate and quality once sorted by rate; otherwise there is no
single rate per quality and the result would be meaningless, so ValueError is raised. The
curves' intervals must overlap. Nothing is extrapolated.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["bd_psnr", "bd_rate"]


def _curve(rate: Sequence[float], quality: Sequence[float], label: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated (log-rate, quality) of one curve, sorted by rate."""
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.size != q.size:
        raise ValueError(f"{label} curve: {r.size} rates but {q.size} quality values")
    if r.size < 2:
        raise ValueError(f"{label} curve: needs at least 2 points, has {r.size}")
    if not (np.isfinite(r).all() and np.isfinite(q).all()):
        raise ValueError(f"{label} curve: has non-finite values (a lossless point or a missing metric)")
    if (r <= 0).any():
        raise ValueError(f"{label} curve: rates must be positive")
    order = np.argsort(r, kind="stable")
    r, q = r[order], q[order]
    if not (np.diff(r) > 0).all():
        raise ValueError(f"{label} curve: two points have the same rate")
    if not (np.diff(q) > 0).all():
        raise ValueError(f"{label} curve: quality does not increase with rate")
    return np.log(r), q


def _mean_gap(x_a: np.ndarray, y_a: np.ndarray, x_t: np.ndarray, y_t: np.ndarray, what: str) -> float:
    """Mean of (y_t - y_a) over the overlap of the x ranges, both interpolated by PCHIP."""
    from scipy.interpolate import PchipInterpolator

    lo, hi = max(x_a[0], x_t[0]), min(x_a[-1], x_t[-1])
    if not hi > lo:
        raise ValueError(f"the curves' {what} ranges do not overlap")
    area_a = PchipInterpolator(x_a, y_a).integrate(lo, hi)
    area_t = PchipInterpolator(x_t, y_t).integrate(lo, hi)
    return float((area_t - area_a) / (hi - lo))


def bd_rate(rate_anchor: Sequence[float], quality_anchor: Sequence[float],
            rate_test: Sequence[float], quality_test: Sequence[float]) -> float:
    """BD-rate of the test curve against the anchor, in percent (negative = fewer bits).

    Args:
        rate_*: rates of each point (bpp, or any unit shared by both curves), > 0.
        quality_*: quality at each point (PSNR in dB, MS-SSIM in dB, ...), higher = better.

    Raises:
        ValueError: fewer than 2 points, non-finite values, a curve not strictly increasing,
            or quality ranges that do not overlap.
    """
    lr_a, q_a = _curve(rate_anchor, quality_anchor, "anchor")
    lr_t, q_t = _curve(rate_test, quality_test, "test")
    # Log-rate as a function of quality (both strictly increasing, so PCHIP of q -> ln R).
    gap = _mean_gap(q_a, lr_a, q_t, lr_t, "quality")
    return 100.0 * math.expm1(gap)


def bd_psnr(rate_anchor: Sequence[float], quality_anchor: Sequence[float],
            rate_test: Sequence[float], quality_test: Sequence[float]) -> float:
    """BD-PSNR (BD-quality) of the test curve against the anchor, in the quality's unit
    (positive = test better). Arguments and errors as :func:`bd_rate` (overlap in rate)."""
    lr_a, q_a = _curve(rate_anchor, quality_anchor, "anchor")
    lr_t, q_t = _curve(rate_test, quality_test, "test")
    return _mean_gap(lr_a, q_a, lr_t, q_t, "rate")
