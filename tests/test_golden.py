"""Golden vectors: fixed inputs -> pinned bytes. They freeze coder stream formats v1 and v2.

The encoder writes v2 (coder_v2.json pins its bytes); v1 streams (coder_v1.json, written by
ncodec 0.1) must still decode. A failure here means the bytes changed. That is a format
change: bump STREAM_VERSION, keep older streams decodable (or clearly rejected), and add
vectors for the new version; never regenerate these to make the test pass.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from golden import draw, load
from ncodec import entropy as E

GOLDEN = load("coder_v1.json")
GOLDEN_V2 = load("coder_v2.json")
BY_VERSION = {1: GOLDEN, 2: GOLDEN_V2}


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


def test_golden_files_are_for_these_formats():
    assert GOLDEN["format_version"] == 1 and GOLDEN_V2["format_version"] == E.STREAM_VERSION == 2
    assert [c["name"] for c in GOLDEN["streams"]] == [c["name"] for c in GOLDEN_V2["streams"]]


@pytest.mark.parametrize("case", GOLDEN_V2["streams"], ids=lambda c: c["name"])
def test_encoder_writes_pinned_bytes(case):
    symbols, indexes, table = inputs(case)
    data = E.encode(symbols, indexes, *table, lane_size=case["lane_size"])
    assert len(data) == case["bytes"]
    assert hashlib.sha256(data).hexdigest() == case["sha256"]
    if "hex" in case:
        assert data.hex() == case["hex"]


@pytest.mark.parametrize("case", [(v, c) for v in BY_VERSION for c in BY_VERSION[v]["streams"] if "hex" in c],
                         ids=lambda vc: f"v{vc[0]}-{vc[1]['name']}")
def test_pinned_bytes_still_decode(case):
    _, case = case
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


@pytest.mark.parametrize("name", [c["name"] for c in GOLDEN["streams"] if "hex" in c])
def test_v2_is_v1_plus_a_symbol_check(name):
    """Same arithmetic: a v2 stream is the v1 stream with version byte 2 and a 4-byte symbol
    check after the lane table: FNV-1a (32-bit words) over each lane's symbols, then the
    same fold over the lanes' hashes (docs/coder_stream.md)."""
    old = next(c for c in GOLDEN["streams"] if c["name"] == name)
    new = next(c for c in GOLDEN_V2["streams"] if c["name"] == name)
    symbols, _, _ = inputs(old)
    v1, v2 = bytes.fromhex(old["hex"]), bytes.fromhex(new["hex"])
    lanes = -(-len(symbols) // old["lane_size"])
    pos = 1
    for _ in range(2 + lanes):  # symbol count, lane size, lane lengths: varints
        while v1[pos] & 0x80:
            pos += 1
        pos += 1

    def fnv(words):
        h = 2166136261
        for word in words:
            h = ((h ^ (word & 0xFFFFFFFF)) * 16777619) & 0xFFFFFFFF
        return h

    size = old["lane_size"]
    check = fnv(fnv(symbols[k * size:(k + 1) * size].tolist()) for k in range(lanes))
    assert v1[0] == 1 and v2 == bytes([2]) + v1[1:pos] + check.to_bytes(4, "little") + v1[pos:]
