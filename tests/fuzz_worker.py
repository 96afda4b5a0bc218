"""Decodes mutated and truncated coder streams; run in a subprocess by test_fuzz.py so that a
crash (segfault, abort) fails the test instead of killing pytest.

Every stream must either decode (to some int32 values) or raise ncodec.BitstreamError or
ValueError. Prints one line of counts; exits non-zero on any other exception.
"""

from __future__ import annotations

import random
import sys

import torch

import ncodec
from ncodec import entropy as E
from tables import from_pmfs, gaussian_table, sample


def corpus(rng: random.Random):
    """Valid streams of several shapes: (data, indexes, table)."""
    g = torch.Generator().manual_seed(rng.randrange(2**31))
    gauss = gaussian_table([0.2, 1.0, 5.0, 30.0])
    escape_heavy = from_pmfs([torch.ones(2, dtype=torch.float64)], [0], [0.6])
    out = []
    for table, n, lane_size in [(gauss, 2000, 65536), (gauss, 3000, 257), (gauss, 50, 7), (escape_heavy, 300, 64)]:
        idx = torch.randint(0, table.rows, (n,), generator=g, dtype=torch.int32)
        sym = sample(table, idx, g)
        if table is escape_heavy:
            sym = torch.randint(-(2**31), 2**31 - 1, (n,), generator=g, dtype=torch.int64).to(torch.int32)
        out.append((E.encode(sym, idx, *table.args(), lane_size=lane_size), idx, table))
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0 and b:  # flip bits
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncate
        b = b[: rng.randrange(len(b) + 1)]
    elif kind == 2 and b:  # overwrite a header byte (version, counts, lane table)
        b[rng.randrange(min(len(b), 12))] = rng.randrange(256)
    elif kind == 3:  # insert random bytes
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 4 and b:  # delete a range
        pos = rng.randrange(len(b))
        del b[pos : pos + rng.randint(1, 32)]
    else:  # random garbage of similar length
        b = bytearray(rng.randrange(256) for _ in range(rng.randint(0, len(b) + 8)))
    return bytes(b)


def main(cases: int, seed: int) -> int:
    rng = random.Random(seed)
    streams = corpus(rng)
    counts = {"decoded": 0, "BitstreamError": 0, "ValueError": 0}
    for i in range(cases):
        data, idx, table = streams[i % len(streams)]
        bad = mutate(data, rng)
        try:
            if i % 2:
                E.decode(bad, idx, *table.args(), num_threads=2)
            else:
                dec = E.RangeDecoder(bad)
                half = idx.numel() // 2
                dec.decode(idx[:half], *table.args())
                dec.decode(idx[half:], *table.args())
            counts["decoded"] += 1
        except ncodec.BitstreamError:
            counts["BitstreamError"] += 1
        except ValueError:
            counts["ValueError"] += 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"total={sum(counts.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
