"""Table builders shared by the tests: CompressAI-style CDF tables from real distributions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ncodec import entropy as E


@dataclass
class CdfTable:
    """A coder table in CompressAI's layout (see ncodec.entropy.coder)."""

    cdfs: torch.Tensor  # int32 [rows, width]
    cdf_lengths: torch.Tensor  # int32 [rows]
    offsets: torch.Tensor  # int32 [rows]

    def args(self):
        return self.cdfs, self.cdf_lengths, self.offsets

    @property
    def rows(self) -> int:
        return int(self.cdfs.shape[0])

    def probabilities(self) -> torch.Tensor:
        """float64 [rows, width-1]: quantized probability of each slot (escape included)."""
        return (self.cdfs[:, 1:] - self.cdfs[:, :-1]).clamp(min=0).double() / 2**16

    def slot(self, symbols: torch.Tensor, indexes: torch.Tensor) -> torch.Tensor:
        """int64 slot each symbol is coded in (the escape slot for out-of-support values)."""
        rows = indexes.long().reshape(-1)
        value = symbols.long().reshape(-1) - self.offsets[rows].long()
        escape = (self.cdf_lengths[rows] - 2).long()
        return torch.where((value < 0) | (value >= escape), escape, value)

    def ideal_bits(self, symbols: torch.Tensor, indexes: torch.Tensor) -> float:
        """-sum log2 p of the coded slots (escape payload bits not included)."""
        p = self.probabilities()[indexes.long().reshape(-1), self.slot(symbols, indexes)]
        return float(-torch.log2(p).sum())


def from_pmfs(pmfs: list[torch.Tensor], offsets: list[int], tails: list[float] | None = None) -> CdfTable:
    """Quantize a list of pmfs (float64 1-D, possibly of different lengths) into one table."""
    width = max(1, max(len(p) for p in pmfs))
    pmf = torch.zeros(len(pmfs), width, dtype=torch.float64)
    for r, p in enumerate(pmfs):
        pmf[r, : len(p)] = p
    lengths = torch.tensor([len(p) for p in pmfs], dtype=torch.int32)
    tail = None if tails is None else torch.tensor(tails, dtype=torch.float64)
    cdfs = E.pmf_to_quantized_cdf(pmf, pmf_lengths=lengths, tail_mass=tail)
    return CdfTable(cdfs, lengths + 2, torch.tensor(offsets, dtype=torch.int32))


def gaussian_table(scales: list[float], tail_sigmas: float = 6.1) -> CdfTable:
    """Discretized zero-mean Gaussians, one row per scale, as CompressAI's GaussianConditional
    builds them: support +-ceil(tail_sigmas * scale), offset -ceil(...), the tail mass on the
    escape slot."""
    pmfs, offsets, tails = [], [], []
    for s in scales:
        half = int(math.ceil(tail_sigmas * s))
        x = torch.arange(-half, half + 1, dtype=torch.float64)
        normal = torch.distributions.Normal(0.0, float(s))
        p = normal.cdf(x + 0.5) - normal.cdf(x - 0.5)
        pmfs.append(p)
        offsets.append(-half)
        tails.append(max(0.0, 1.0 - float(p.sum())))
    return from_pmfs(pmfs, offsets, tails)


def scale_ladder(count: int = 64, low: float = 0.11, high: float = 256.0) -> list[float]:
    """CompressAI's default scale table: `count` scales log-spaced in [low, high]."""
    return torch.exp(torch.linspace(math.log(low), math.log(high), count)).tolist()


def sample(table: CdfTable, indexes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Symbols drawn from the table's own quantized distributions (escape slot excluded)."""
    flat = indexes.long().reshape(-1)
    out = torch.empty(flat.shape, dtype=torch.int64)
    probs = table.probabilities()
    for r in torch.unique(flat).tolist():
        where = (flat == r).nonzero().squeeze(1)
        regular = probs[r, : int(table.cdf_lengths[r]) - 2]
        slots = torch.multinomial(regular, where.numel(), replacement=True, generator=generator)
        out[where] = slots + int(table.offsets[r])
    return out.to(torch.int32).reshape(indexes.shape)
