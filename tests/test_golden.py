"""Golden vectors: fixed inputs -> pinned bytes. They freeze coder stream format v1.

A failure here means the bytes changed. That is a format change: bump STREAM_VERSION, keep
version-1 streams decodable (or clearly rejected), and add vectors for the new version;
never regenerate these to make the test pass.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from golden import draw, load
from ncodec import entropy as E

GOLDEN = load("coder_v1.json")


def table_from_json(t: dict):
    width = max(len(row) for row in t["cdfs"])
    cdfs = torch.zeros(len(t["cdfs"]), width, dtype=torch.int32)
    for r, row in enumerate(t["cdfs"]):
        cdfs[r, : len(row)] = torch.tensor(row, dtype=torch.int32)
    lengths = torch.tensor([len(row) for row in t["cdfs"]], dtype=torch.int32)
    return cdfs, lengths, torch.tensor(t["offsets"], dtype=torch.int32)


def inputs(case: dict):
    table = table_from_json(case["table"])
    if "values" in case:
        values = torch.tensor(case["values"], dtype=torch.int32)
        return values, torch.zeros_like(values), table
    symbols, indexes = draw(*table, case["seed"], case["symbols"], len(case["table"]["cdfs"]))
    return symbols, indexes, table


def test_golden_file_is_for_this_format():
    assert GOLDEN["format_version"] == E.STREAM_VERSION == 1


@pytest.mark.parametrize("case", GOLDEN["streams"], ids=lambda c: c["name"])
def test_encoder_writes_pinned_bytes(case):
    symbols, indexes, table = inputs(case)
    data = E.encode(symbols, indexes, *table, lane_size=case["lane_size"])
    assert len(data) == case["bytes"]
    assert hashlib.sha256(data).hexdigest() == case["sha256"]
    if "hex" in case:
        assert data.hex() == case["hex"]


@pytest.mark.parametrize("case", [c for c in GOLDEN["streams"] if "hex" in c], ids=lambda c: c["name"])
def test_pinned_bytes_still_decode(case):
    symbols, indexes, table = inputs(case)
    data = bytes.fromhex(case["hex"])
    assert torch.equal(E.decode(data, indexes, *table), symbols)
    dec = E.RangeDecoder(data)
    assert torch.equal(dec.decode(indexes, *table), symbols)


def test_quantizer_is_pinned():
    q = GOLDEN["quantizer"]
    cdfs = E.pmf_to_quantized_cdf(torch.tensor(q["pmf"], dtype=torch.float64),
                                  pmf_lengths=torch.tensor(q["pmf_lengths"]),
                                  tail_mass=torch.tensor(q["tail_mass"], dtype=torch.float64))
    assert cdfs.tolist() == q["cdfs"]
