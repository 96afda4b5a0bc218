"""Parses mutated, truncated and re-checksummed ncodec containers; run in a subprocess by
test_container.py so that a crash or hang fails the test instead of killing pytest.

Every input must either parse or raise ncodec.BitstreamError; anything else escaping is a bug
(the worker prints the traceback and exits 1). What may parse depends on the mutation:
"reject" (corruption, lying index): only if it left the bytes unchanged; "exact" (a payload
changed, its CRC recomputed): only if the writer would write these very bytes, since a payload
has one valid encoding; "any" (header JSON changed, CRC recomputed): anything that round-trips.
Prints one line of counts.

Also home of ``raw_container``: a second, deliberately naive writer of the format written
from docs/bitstream.md alone, which the tests use to build containers that ncodec's own
writer refuses to write.
"""

from __future__ import annotations

import io
import json
import random
import struct
import sys
import traceback
import zlib

import ncodec
from ncodec.codecs.container import ContainerReader, Header, pack, read_header, unpack

MAGIC = b"\x89NCB\r\n\x1a\n"


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value >= 0x80 else 0))
        value >>= 7
        if not value:
            return bytes(out)


def payload(substreams: list[bytes]) -> bytes:
    """A chunk payload: count, sizes, then the substreams."""
    return varint(len(substreams)) + b"".join(varint(len(s)) for s in substreams) + b"".join(substreams)


def raw_container(body: bytes, payloads: list[bytes], version: int = 1, flags: int = 0) -> bytes:
    """A container with these exact header body and chunk payloads, every CRC, offset and
    length computed, nothing checked."""
    covered = struct.pack("<HHI", version, flags, len(body)) + body
    out = bytearray(MAGIC + covered + struct.pack("<I", zlib.crc32(covered)))
    offsets = []
    for p in payloads:
        offsets.append(len(out))
        out += struct.pack("<II", len(p), zlib.crc32(p)) + p
    return bytes(out) + index_and_trailer(offsets, len(out))


def index_and_trailer(offsets: list[int], index_offset: int) -> bytes:
    table = struct.pack(f"<I{len(offsets)}Q", len(offsets), *offsets)
    return table + struct.pack("<I", zlib.crc32(table)) + struct.pack("<Q", index_offset) + b"NCBINDEX"


def canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def corpus(rng: random.Random) -> list[tuple[dict, list[list[bytes]]]]:
    """Valid (header JSON, chunks) pairs of several shapes."""
    fp = "%032x" % rng.getrandbits(128)
    image = {"codec": "bmshj2018-factorized", "fingerprint": fp, "modality": "image", "substreams": ["z", "y"],
             "meta": {"width": 768, "height": 512, "channels": 3, "bit_depth": 8, "color": "rgb"}}
    audio = {"codec": "ñ-audio", "fingerprint": fp, "modality": "audio", "substreams": ["a", "b", "c"],
             "meta": {"sample_rate": 48000, "frames": 96000, "tags": [1, 2.5, None, True, {"x": []}]},
             "future_field": {"nested": [1, "é"]}}
    video = {"codec": "v", "fingerprint": fp, "modality": "video", "substreams": ["only"], "meta": {}}
    rand = lambda n: bytes(rng.getrandbits(8) for _ in range(n))  # noqa: E731
    return [
        (image, [[rand(20), rand(300)]]),
        (image, [[rand(5), rand(0)], [b"", b""], [rand(130), rand(17)]]),
        (audio, [[rand(rng.randrange(40)) for _ in range(3)] for _ in range(6)]),
        (audio, []),
        (video, [[rand(1000)]]),
    ]


def mutate_bytes(b: bytearray, rng: random.Random, hot: int = 32) -> bytearray:
    """A random byte-level corruption; ``hot`` bytes at each end are hit more often."""
    kind = rng.randrange(8)
    n = len(b)
    if kind == 0 and n:  # flip bits
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncate
        del b[rng.randrange(n + 1) :]
    elif kind == 2 and n:  # overwrite a structural byte near either end
        pos = rng.randrange(min(n, hot))
        b[pos if rng.random() < 0.5 else n - 1 - pos] = rng.randrange(256)
    elif kind == 3:  # insert random bytes
        pos = rng.randrange(n + 1)
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 4 and n:  # delete a range
        pos = rng.randrange(n)
        del b[pos : pos + rng.randint(1, 32)]
    elif kind == 5 and n >= 4:  # an extreme u32 at a random spot
        pos = rng.randrange(n - 3)
        b[pos : pos + 4] = struct.pack("<I", rng.choice([0, 2**16, 2**31 - 1, 2**31, 2**32 - 1]))
    elif kind == 6:  # garbage, sometimes behind a valid magic
        garbage = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        b = bytearray((MAGIC if rng.random() < 0.5 else b"") + garbage)
    elif n:  # duplicate a slice
        pos = rng.randrange(n)
        b[pos:pos] = b[pos : pos + rng.randint(1, 64)]
    return b


def mutate_json(obj: dict, rng: random.Random) -> bytes:
    """A header object with one semantic change, serialised canonically or not."""
    obj = json.loads(json.dumps(obj))
    key = rng.choice(sorted(obj))
    junk = [None, True, 3, -1.5, 2**70, "", "x" * 65, "ABCDEF" * 6, "image", "text", [], ["z", "z"], ["", "y"],
            ["z"] * 65, {}, [[[[[[[[]]]]]]]], "\ud800", {"a": 1}, 1e300]
    choice = rng.randrange(5)
    if choice == 0:
        del obj[key]
    elif choice == 1:
        obj[key] = rng.choice(junk)
    elif choice == 2:  # an extra field nested around the depth limit, or far past it
        depth = rng.choice([rng.randint(28, 34), rng.randint(35, 30000)])
        return canonical(obj)[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
    elif choice == 3:
        obj[rng.choice(["extra", "fingerprint2", "é"])] = rng.choice(junk)
    else:
        obj["substreams"] = rng.choice([["z", "y"], ["a", "b", "c"], ["only"], ["y", "z"]])
    text = json.dumps(obj, sort_keys=rng.random() < 0.5, indent=rng.choice([None, 1]),
                      ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8", "surrogatepass")


def mutate(case: tuple, data: bytes, others: list[bytes], rng: random.Random) -> tuple[bytes, str]:
    """(mutated container, "reject", "exact" or "any": see the module docstring). ``case`` is a
    corpus entry and ``data`` its container."""
    obj, chunks = case
    payloads = [payload(c) for c in chunks]
    kind = rng.randrange(11)
    if kind < 5:
        return bytes(mutate_bytes(bytearray(data), rng)), "reject"
    if kind == 5:  # splice two containers
        other = rng.choice(others)
        return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :], "reject"
    if kind == 6:  # corrupt the header body, then fix its CRC
        return raw_container(bytes(mutate_bytes(bytearray(canonical(obj)), rng, hot=8)), payloads), "any"
    if kind == 7:  # change the header's meaning
        return raw_container(mutate_json(obj, rng), payloads), "any"
    if kind == 10:  # nudge a field that no CRC covers: a chunk length, the index count or offset
        b = bytearray(data)
        index_offset = struct.unpack_from("<Q", data, len(data) - 16)[0]
        chunk_offsets = struct.unpack_from(f"<{len(chunks)}Q", data, index_offset + 4)
        pos, size = rng.choice([(o, 4) for o in chunk_offsets] + [(index_offset, 4), (len(data) - 16, 8)])
        value = int.from_bytes(b[pos : pos + size], "little") + rng.choice([-9, -8, -1, 1, 8, 2**31])
        b[pos : pos + size] = (value % 2 ** (8 * size)).to_bytes(size, "little")
        return bytes(b), "reject"
    if kind == 8 and payloads:  # corrupt a payload (size table first), then fix its CRC
        i = rng.randrange(len(payloads))
        payloads[i] = bytes(mutate_bytes(bytearray(payloads[i]), rng, hot=4))
        return raw_container(canonical(obj), payloads), "exact"
    # kind 9: a re-checksummed index that lies about the chunks: the chunks no longer tile the file
    chunks_end = index_offset = struct.unpack_from("<Q", data, len(data) - 16)[0]
    offsets = list(struct.unpack_from(f"<{len(chunks)}Q", data, index_offset + 4))
    op = rng.randrange(4)
    if op == 0 and offsets:
        offsets.pop(rng.randrange(len(offsets)))
    elif op == 1:
        offsets.insert(rng.randrange(len(offsets) + 1), rng.randrange(index_offset + 8))
    elif op == 2 and offsets:
        offsets[rng.randrange(len(offsets))] += rng.choice([-9, -8, -1, 1, 8, 2**63])
    else:
        index_offset = rng.choice([0, 1, index_offset - 1, index_offset + 1, 2**64 - 1])
    offsets = [o % 2**64 for o in offsets]
    return data[:chunks_end] + index_and_trailer(offsets, index_offset), "reject"


def parse(data: bytes, route: int):
    """Parses through one of the public entry points; returns (header, chunks) when it reads all."""
    if route == 0:
        return unpack(data)
    if route == 1:
        return unpack(bytearray(data))
    if route == 2:
        reader = ContainerReader(io.BytesIO(data))
        reader.summary()
        return reader.header, [reader.chunk(i) for i in reversed(range(reader.num_chunks))][::-1]
    read_header(io.BytesIO(data))
    return None


def main(cases: int, seed: int) -> int:
    rng = random.Random(seed)
    cases_ = corpus(rng)
    originals = [pack(Header.from_json(obj), chunks) for obj, chunks in cases_]
    counts = {"parsed": 0, "BitstreamError": 0}
    for n in range(cases):
        k = n % len(cases_)
        bad, expect = mutate(cases_[k], originals[k], originals, rng)
        try:
            result = parse(bad, n % 4)
        except ncodec.BitstreamError:
            counts["BitstreamError"] += 1
            continue
        except BaseException:  # noqa: BLE001 - anything else is the bug we are looking for
            print(f"case {n}: unexpected exception on input {bad.hex()}", file=sys.stderr)
            traceback.print_exc()
            return 1
        counts["parsed"] += 1
        if result is None:
            continue
        if expect == "reject" and bad not in originals:
            print(f"case {n}: a corrupted container was accepted: {bad.hex()}", file=sys.stderr)
            return 1
        if expect == "exact" and pack(*result) != bad:
            print(f"case {n}: a payload with a second encoding was accepted: {bad.hex()}", file=sys.stderr)
            return 1
        if unpack(pack(*result)) != result:
            print(f"case {n}: accepted container does not round-trip: {bad.hex()}", file=sys.stderr)
            return 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"total={sum(counts.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
