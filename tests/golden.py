"""Deterministic inputs for the golden vectors: integer-only, independent of torch's RNG and
of libm, so the same symbols come out on every machine and every future version."""

from __future__ import annotations

import json
import os

import numpy as np
import torch

GOLDEN_DIR = os.path.join(os.path.dirname(__file__), "data", "golden")
MASK64 = (1 << 64) - 1


def splitmix64(seed: int, n: int) -> np.ndarray:
    """n pseudo-random uint64 values (SplitMix64), computed exactly in Python integers."""
    out = np.empty(n, dtype=np.uint64)
    state = seed & MASK64
    for i in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out[i] = z ^ (z >> 31)
    return out


def draw(cdfs: torch.Tensor, lengths: torch.Tensor, offsets: torch.Tensor, seed: int, n: int,
         rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(symbols, indexes): index = u % rows, symbol = inverse CDF of the row at the low 16 bits
    of u >> 8 (the escape slot maps to a value far outside the support)."""
    u = splitmix64(seed, n)
    indexes = torch.from_numpy((u % np.uint64(rows)).astype(np.int64))
    quantile = torch.from_numpy(((u >> np.uint64(8)) & np.uint64(0xFFFF)).astype(np.int64))
    symbols = torch.empty(n, dtype=torch.int64)
    for r in torch.unique(indexes).tolist():
        where = indexes == r
        length = int(lengths[r])
        row = cdfs[r, :length].long()
        slot = torch.searchsorted(row, quantile[where], right=True) - 1
        value = slot + int(offsets[r])
        escape = slot == length - 2
        symbols[where] = torch.where(escape, value + 1000 * (1 + quantile[where] % 7), value)
    return symbols.to(torch.int32), indexes.to(torch.int32)


def load(name: str) -> dict:
    with open(os.path.join(GOLDEN_DIR, name)) as f:
        return json.load(f)
