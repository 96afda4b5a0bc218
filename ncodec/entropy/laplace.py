"""Discrete Laplace entropy stage: zero-mean Laplacians on a fixed ladder of scales.

For latents whose spread is known per block or per channel rather than predicted by a
network, e.g. the quantised weights and latents of overfitted (INR) codecs, or residuals of a
lossless predictor. A row of the table is the Laplacian of scale ``b`` (in integer steps,
density ``exp(-|x|/b) / 2b``) discretised on the integers: ``k`` gets the mass of
``[k - 1/2, k + 1/2]``; the mass beyond the row's support goes to the escape, so every int32
symbol still round-trips.

Guarantees (beyond :mod:`ncodec.entropy.stage`'s):

* The tables depend only on the scales and ``max_half``: float64 ``exp`` of the numbers
  given, then :func:`ncodec.entropy.pmf_to_quantized_cdf`; a decoder rebuilds them from the
  same numbers. (``exp`` is not correctly rounded on every libm: to make a file decode on any
  machine, a format should fix its tables, e.g. by checking a hash of ``table.cdfs``.)
* :class:`LaplaceStage` with integer ``params`` (row indexes) is exact; float ``params``
  (scales) map to the row of the nearest scale on a log axis, by comparisons with the ladder's
  geometric midpoints (float64 ``sqrt``, correctly rounded): exact for equal floats.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ncodec.entropy import coder as _coder
from ncodec.entropy.coder import TensorLike
from ncodec.entropy.stage import CdfTable, EntropyStage

__all__ = [
    "DEFAULT_MAX_HALF_WIDTH",
    "LaplaceStage",
    "discrete_laplace_pmf",
    "laplace_half_width",
    "laplace_scales",
    "laplace_table",
]

DEFAULT_MAX_HALF_WIDTH = 4095
"""Default cap on a row's regular support ``-half .. half`` (larger values escape)."""


def laplace_scales(count: int = 64, low: float = 0.08, high: float = 3000.0) -> list[float]:
    """``count`` log-spaced scales from ``low`` to ``high`` (``np.geomspace``, float64).

    The defaults cover integer residuals from all-zero (a zero costs ~0.003 bit at 0.08)
    to 16-bit audio; neighbouring rows differ by ~18 %, which costs < 0.5 % over the
    ideal scale.
    """
    return np.geomspace(low, high, count).tolist()


def laplace_half_width(scale: float, max_half: int = DEFAULT_MAX_HALF_WIDTH) -> int:
    """Half-width of the regular support of the row for ``scale`` (in integer steps).

    Values out to where the mass per value falls to about ``2**-15`` are worth a table entry;
    farther ones are cheaper as escapes (each entry costs at least ``2**-16`` of probability).
    Clamped to ``2 .. max_half``.
    """
    half = math.ceil(scale * max(math.log(2.0**15 / scale), 0.0)) + 1
    return int(min(max(half, 2), max_half))


def discrete_laplace_pmf(scale: float, half: int) -> tuple[np.ndarray, float]:
    """Masses of the integers ``-half .. half`` under a Laplacian of scale ``scale``.

    Returns:
        ``(pmf, tail)``: float64 ``[2 * half + 1]`` (integer ``k`` gets the mass of
        ``[k - 1/2, k + 1/2]``) and the mass outside the support (both sides together).
    """
    k = np.abs(np.arange(-half, half + 1, dtype=np.float64))
    upper = np.exp(-(k + 0.5) / scale)
    lower = np.where(k == 0, 1.0, np.exp(-(np.maximum(k, 0.5) - 0.5) / scale))
    pmf = np.where(k == 0, 1.0 - upper, 0.5 * (lower - upper))
    tail = float(np.exp(-(half + 0.5) / scale))
    return pmf, tail


def laplace_table(scales: Sequence[float], max_half: int = DEFAULT_MAX_HALF_WIDTH) -> CdfTable:
    """One zero-mean discrete Laplacian row per scale: row ``r`` has regular values
    ``-h .. h`` (``h = laplace_half_width(scales[r], max_half)``, offset ``-h``), then the
    escape; width ``2 · max(h) + 3``."""
    if len(scales) == 0 or min(scales) <= 0 or not all(math.isfinite(s) for s in scales):
        raise ValueError("scales must be finite, positive and at least one")
    halves = [laplace_half_width(s, max_half) for s in scales]
    pmf = np.zeros((len(scales), 2 * max(halves) + 1), dtype=np.float64)
    tails = np.zeros(len(scales), dtype=np.float64)
    for r, (s, h) in enumerate(zip(scales, halves)):
        pmf[r, : 2 * h + 1], tails[r] = discrete_laplace_pmf(s, h)
    return CdfTable.from_pmf(torch.from_numpy(pmf), torch.tensor([-h for h in halves], dtype=torch.int32),
                             pmf_lengths=torch.tensor([2 * h + 1 for h in halves]),
                             tail_mass=torch.from_numpy(tails))


class LaplaceStage(EntropyStage):
    """Zero-mean discrete Laplacians, one table row per scale of ``scales`` (increasing).

    ``params``: integer tensors are rows (``0 .. len(scales)-1``); float tensors are scales,
    mapped to the nearest row on a log axis (clamped to the ladder's ends). A mean, if any,
    is the caller's: code ``symbol - round(mean)``.
    """

    def __init__(self, scales: Optional[Sequence[float]] = None, max_half: int = DEFAULT_MAX_HALF_WIDTH,
                 **kwargs) -> None:
        scales = list(laplace_scales() if scales is None else scales)
        if any(b <= a for a, b in zip(scales, scales[1:])):
            raise ValueError("scales must increase")
        super().__init__(laplace_table(scales, max_half), **kwargs)
        self.scales = torch.tensor(scales, dtype=torch.float64)
        self.max_half = int(max_half)
        # Row r wins for scales up to sqrt(s_r * s_{r+1}): the nearest on a log axis.
        self._midpoints = torch.sqrt(self.scales[:-1] * self.scales[1:])

    def indexes(self, params: TensorLike) -> Tensor:
        params = torch.as_tensor(params)
        if not params.is_floating_point():
            return _coder._int32(params, "params")
        scales = params.detach().to("cpu", torch.float64).contiguous()
        return torch.searchsorted(self._midpoints, scales, side="left").int()
