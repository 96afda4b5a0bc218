"""Coded size against the ideal -sum log2 p and against constriction's range coder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncodec import entropy as E
from tables import gaussian_table, sample, scale_ladder

N_SYMBOLS = 1_000_000


def realistic_problem(seed: int):
    """1M symbols drawn from the model: CompressAI's 64-scale Gaussian table, with table
    indexes spread like a hyperprior's (mostly small scales, a tail of large ones)."""
    table = gaussian_table(scale_ladder())
    g = torch.Generator().manual_seed(seed)
    weights = torch.exp(-torch.arange(64, dtype=torch.float64) / 8)
    indexes = torch.multinomial(weights, N_SYMBOLS, replacement=True, generator=g).to(torch.int32)
    return table, sample(table, indexes, g), indexes


@pytest.mark.parametrize("seed", [0, 1])
def test_size_within_0_1_percent_of_ideal(seed):
    table, symbols, indexes = realistic_problem(seed)
    ideal_bytes = table.ideal_bits(symbols, indexes) / 8
    data = E.encode(symbols, indexes, *table.args())
    overhead = len(data) / ideal_bytes - 1
    assert 0 <= overhead < 0.001, f"{len(data)} bytes vs ideal {ideal_bytes:.0f} ({overhead:+.4%})"
    # A single lane isolates the arithmetic itself: within a few bytes of ideal.
    single = E.encode(symbols, indexes, *table.args(), lane_size=2**30)
    assert len(single) - ideal_bytes < 16 + 4  # + the 4-byte symbol check


def test_size_within_0_5_percent_of_constriction():
    constriction = pytest.importorskip("constriction")
    table, symbols, indexes = realistic_problem(2)
    ours = len(E.encode(symbols, indexes, *table.args()))

    # constriction has no table-per-index call: code each row's symbols with one model.
    encoder = constriction.stream.queue.RangeEncoder()
    probs = table.probabilities().numpy()
    values = (symbols - table.offsets[indexes.long()]).numpy().astype(np.int32)
    idx = indexes.numpy()
    for r in np.unique(idx):
        model = constriction.stream.model.Categorical(probs[r, : int(table.cdf_lengths[r]) - 1], perfect=False)
        encoder.encode(values[idx == r], model)
    theirs = encoder.get_compressed().nbytes
    assert abs(ours / theirs - 1) < 0.005, f"ncodec {ours} bytes, constriction {theirs} bytes"
