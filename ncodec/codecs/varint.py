"""Unsigned LEB128 varints: the container's size tables and codecs' per-chunk heads.

:func:`write_varint` / :func:`read_varint` are the format's varints (7 bits a byte, least
significant group first, minimal, below 2^64). :func:`pack_ints` / :func:`unpack_ints` write
and read a short fixed-length run of them: the per-chunk metadata a codec keeps in a
substream of its own (an audio block's frame and sample counts, a video GOP's frame count),
where file-level ``meta`` cannot hold values that change from chunk to chunk.

Guarantees: ``read_varint`` and ``unpack_ints`` never read past their buffer, accept exactly
the bytes ``write_varint`` / ``pack_ints`` produce, and raise :class:`ncodec.BitstreamError`
for anything else (truncated, over-long, non-minimal, trailing bytes).
"""

from __future__ import annotations

from typing import Sequence, Union

from ncodec.errors import BitstreamError

__all__ = ["pack_ints", "read_varint", "unpack_ints", "write_varint"]

BytesLike = Union[bytes, bytearray, memoryview]


def write_varint(value: int) -> bytes:
    """``value`` (0 .. 2^64-1) as an unsigned LEB128 varint: 7 bits a byte, least significant first."""
    if not 0 <= value < 2**64:
        raise ValueError(f"a varint holds 0 .. 2^64-1, not {value}")
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(buf: BytesLike, pos: int, what: str) -> tuple[int, int]:
    """A minimal LEB128 varint below 2^64 at ``buf[pos]``: (value, position after it)."""
    value = 0
    for k in range(10):
        if pos >= len(buf):
            raise BitstreamError(f"{what}: the payload ends inside a varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * k)
        if byte < 0x80:
            if k and byte == 0:
                raise BitstreamError(f"{what}: varint is not minimally encoded (ends in a zero byte)")
            if value >= 2**64:
                raise BitstreamError(f"{what}: varint exceeds 2^64-1")
            return value, pos
    raise BitstreamError(f"{what}: varint is longer than 10 bytes")



def pack_ints(values: Sequence[int]) -> bytes:
    """Non-negative integers as consecutive varints (a chunk head); :func:`unpack_ints` reads them."""
    return b"".join(write_varint(v) for v in values)


def unpack_ints(data: BytesLike, count: int, what: str) -> list[int]:
    """Exactly ``count`` varints filling ``data``; BitstreamError naming ``what`` otherwise."""
    values, pos = [], 0
    for _ in range(count):
        value, pos = read_varint(data, pos, what)
        values.append(value)
    if pos != len(data):
        raise BitstreamError(f"{what} has {len(data) - pos} trailing bytes")
    return values
