"""The ncodec container, format version 1 (docs/bitstream.md): golden bytes, round trips,
every error path with its message, and a fuzz run in a subprocess.

A golden failure means the bytes changed. That is a format change: never regenerate the hex
to make the test pass; bump FORMAT_VERSION and keep reading version 1.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ncodec
from container_fuzz_worker import canonical, index_and_trailer, payload, raw_container
from ncodec.codecs.container import (
    END_MAGIC,
    FORMAT_VERSION,
    MAGIC,
    ContainerReader,
    ContainerWriter,
    Header,
    pack,
    read_header,
    unpack,
)

HERE = os.path.dirname(os.path.abspath(__file__))
META = {"width": 4, "height": 3, "channels": 3, "bit_depth": 8, "color": "rgb", "quality": 0.5}
HEADER = Header("ncodec-test", "0123456789abcdef0123456789abcdef", "image", ("z", "y"), META, {"note": "é"})
CHUNKS = [[b"\x01\x02", b"abc"], [b"", b"\xff" * 130]]

GOLDEN_HEX = (
    "894e43420d0a1a0a"  # magic
    "0100" "0000" "d3000000"  # version 1, flags 0, body_len 211
    # body: {"codec":"ncodec-test","fingerprint":"0123...cdef","meta":{...},"modality":"image",
    #        "note":"é","substreams":["z","y"]}
    "7b22636f646563223a226e636f6465632d74657374222c2266696e6765727072696e74223a2230313233343536373839"
    "61626364656630313233343536373839616263646566222c226d657461223a7b226269745f6465707468223a382c2263"
    "68616e6e656c73223a332c22636f6c6f72223a22726762222c22686569676874223a332c227175616c697479223a302e"
    "352c227769647468223a347d2c226d6f64616c697479223a22696d616765222c226e6f7465223a22c3a9222c22737562"
    "73747265616d73223a5b227a222c2279225d7d"
    "cdcd4bd5"  # header CRC
    "08000000" "78c2006b" "02" "02" "03" "0102" "616263"  # chunk 0 @231: length 8, CRC, n=2, sizes 2 3, z, y
    "86000000" "e83e9174" "02" "00" "8201" + "ff" * 130 +  # chunk 1 @247: length 134, CRC, n=2, sizes 0 130, y
    "02000000" "e700000000000000" "f700000000000000" "5468f0a8"  # index @389: count 2, offsets 231 247, CRC
    "8501000000000000" "4e4342494e444558"  # trailer: index offset 389, "NCBINDEX"
)
GOLDEN = bytes.fromhex(GOLDEN_HEX)
BODY = canonical(HEADER.to_json())
PAYLOADS = [payload(c) for c in CHUNKS]
HEADER_END, CHUNK1, INDEX = 231, 247, 389  # offsets in GOLDEN


# ----------------------------------------------------------------------------- golden bytes


def test_golden_bytes():
    assert FORMAT_VERSION == 1 and MAGIC == b"\x89NCB\r\n\x1a\n" and END_MAGIC == b"NCBINDEX"
    assert pack(HEADER, CHUNKS).hex() == GOLDEN_HEX
    # An independent writer built from docs/bitstream.md alone writes the same bytes.
    assert raw_container(BODY, PAYLOADS) == GOLDEN
    assert unpack(GOLDEN) == (HEADER, CHUNKS)


def test_same_header_same_bytes():
    reordered = dict(reversed(list(META.items())))
    shuffled = Header("ncodec-test", HEADER.fingerprint, "image", ["z", "y"], reordered, {"note": "é"})
    assert shuffled == HEADER and pack(shuffled, CHUNKS) == GOLDEN
    assert pack(HEADER, iter(CHUNKS)) == pack(HEADER, CHUNKS)


# ----------------------------------------------------------------------------- round trips


class WriteOnly:
    """A sink like a pipe: write() and nothing else."""

    def __init__(self):
        self.parts = []

    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)


class CountingFile(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n=-1):
        out = super().read(n)
        self.bytes_read += len(out)
        return out


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "BytesIO", "file"])
def test_round_trip_from_every_source(kind, tmp_path):
    sources = {"bytes": lambda: GOLDEN, "bytearray": lambda: bytearray(GOLDEN),
               "memoryview": lambda: memoryview(GOLDEN), "BytesIO": lambda: io.BytesIO(GOLDEN)}
    if kind == "file":
        (tmp_path / "x.ncb").write_bytes(GOLDEN)
        with open(tmp_path / "x.ncb", "rb") as f:
            assert unpack(f) == (HEADER, CHUNKS)
        return
    assert unpack(sources[kind]()) == (HEADER, CHUNKS)
    assert read_header(sources[kind]()) == HEADER


def test_streaming_writer_needs_only_write_and_matches_pack():
    sink = WriteOnly()
    with ContainerWriter(sink, HEADER) as writer:
        assert len(sink.parts) == 1  # the header goes out at once
        for c in CHUNKS:
            writer.add_chunk(c)
        assert writer.chunks_written == 2
    assert b"".join(sink.parts) == GOLDEN
    writer.close()  # a second close does nothing
    assert b"".join(sink.parts) == GOLDEN


def test_writer_to_a_real_file_and_bytes_like_substreams(tmp_path):
    path = tmp_path / "y.ncb"
    with open(path, "wb") as f, ContainerWriter(f, HEADER) as writer:
        writer.add_chunk((bytearray(b"\x01\x02"), memoryview(b"abc")))
        writer.add_chunk([b"", memoryview(b"\xff" * 130)])
    assert path.read_bytes() == GOLDEN


def build(n_chunks: int, size: int) -> bytes:
    return pack(HEADER, [[bytes([i]) * size, bytes([i + 1]) * (size // 2)] for i in range(n_chunks)])


def test_random_access_reads_only_what_it_needs():
    data = build(50, 1000)
    f = CountingFile(data)
    reader = ContainerReader(f)
    opened = f.bytes_read
    assert reader.num_chunks == 50 and reader.file_size == len(data)
    assert opened == HEADER_END + 4 + (8 + 50 * 8) + 16  # header, index (count read twice), trailer
    f.bytes_read = 0
    assert reader.chunk(37) == [bytes([37]) * 1000, bytes([38]) * 500]
    assert f.bytes_read == 8 + 1 + 2 + 2 + 1500  # exactly chunk 37
    f.bytes_read = 0
    assert reader.chunk_sizes(37) == [1000, 500]
    assert f.bytes_read == 8 + 30  # length, CRC and at most 10 * (n + 1) bytes of size table
    assert [c[0][0] for c in reader] == list(range(50))


def test_summary():
    s = ContainerReader(GOLDEN).summary()
    assert s == {"format_version": 1, "codec": "ncodec-test", "fingerprint": HEADER.fingerprint,
                 "modality": "image", "substreams": ["z", "y"], "meta": META, "extra": {"note": "é"},
                 "num_chunks": 2, "file_size": len(GOLDEN), "substream_bytes": {"z": 2, "y": 133},
                 "overhead_bytes": len(GOLDEN) - 135}
    json.dumps(s)  # ready for `ncodec info --json`


def test_no_chunks_and_empty_substreams():
    empty = pack(HEADER, [])
    assert len(empty) == HEADER_END + 8 + 16
    assert unpack(empty) == (HEADER, [])
    assert unpack(pack(HEADER, [[b"", b""]] * 3)) == (HEADER, [[b"", b""]] * 3)


def test_read_header_is_cheap_and_puts_the_position_back():
    f = CountingFile(build(20, 1000))
    assert read_header(f) == HEADER
    assert f.bytes_read == HEADER_END and f.tell() == 0
    assert ContainerReader(f).num_chunks == 20  # a reader can be opened on it next


def test_container_embedded_after_other_data():
    f = io.BytesIO()
    f.write(b"some prefix")
    with ContainerWriter(f, HEADER) as writer:
        for c in CHUNKS:
            writer.add_chunk(c)
    assert f.getvalue() == b"some prefix" + GOLDEN  # offsets count from the container's start
    f.seek(len(b"some prefix"))
    assert read_header(f) == HEADER and f.tell() == len(b"some prefix")
    assert unpack(f) == (HEADER, CHUNKS)


def test_reader_accepts_any_valid_json_and_keeps_unknown_fields():
    obj = {**HEADER.to_json(), "future": {"tiles": [1, 2], "ratio": 1e-05}, "z_last": None}
    data = raw_container(json.dumps(obj, indent=2, ensure_ascii=True).encode("ascii"), PAYLOADS)
    header, chunks = unpack(data)
    assert header.extra == {"note": "é", "future": {"tiles": [1, 2], "ratio": 1e-05}, "z_last": None}
    assert header.to_json() == obj and chunks == CHUNKS
    assert unpack(pack(header, chunks)) == (header, chunks)  # re-written canonically, fields kept


def test_lazy_chunk_checks_leave_good_chunks_readable():
    bad = bytearray(GOLDEN)
    bad[CHUNK1 + 20] ^= 1
    reader = ContainerReader(bytes(bad))  # opening checks header, trailer and index only
    assert reader.chunk(0) == CHUNKS[0]
    assert reader.chunk_sizes(1) == [0, 130]  # the size table alone: no CRC
    with pytest.raises(ncodec.BitstreamError, match="chunk 1 CRC mismatch"):
        reader.chunk(1)
    with pytest.raises(ncodec.BitstreamError, match="chunk 1 CRC mismatch"):
        list(reader)
    with pytest.raises(IndexError, match="out of range"):
        reader.chunk(2)


JSON_SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10)
                | st.floats(allow_nan=False, allow_infinity=False))
JSON_VALUES = st.recursive(
    JSON_SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=8)


@given(
    names=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=5, unique=True),
    meta=st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4),
    sizes=st.lists(st.lists(st.integers(0, 300), min_size=5, max_size=5), max_size=6),
    seed=st.integers(0, 255),
)
def test_round_trip_property(names, meta, sizes, seed):
    header = Header("prop", "f" * 32, "audio", names, meta)
    chunks = [[bytes((seed + k + j) % 256 for j in range(s)) for k, s in enumerate(row[: len(names)])]
              for row in sizes]
    data = pack(header, chunks)
    assert unpack(data) == (header, chunks)
    reader = ContainerReader(io.BytesIO(data))
    for i in reversed(range(len(chunks))):
        assert reader.chunk(i) == chunks[i] and reader.chunk_sizes(i) == [len(s) for s in chunks[i]]


# ----------------------------------------------------------------------------- caller errors (ValueError)

GOOD = dict(codec="c", fingerprint="0" * 32, modality="video", substreams=("a",), meta={})


@pytest.mark.parametrize("change, message", [
    ({"codec": ""}, r"'codec' must be a string of 1\.\.64 characters, got str ''"),
    ({"codec": "x" * 65}, r"'codec' must be a string of 1\.\.64 characters"),
    ({"codec": 3}, r"'codec' must be a string .* got int 3"),
    ({"fingerprint": "0" * 31}, r"'fingerprint' must be 32 lowercase hex digits"),
    ({"fingerprint": "ABCDEF" + "0" * 26}, r"'fingerprint' must be 32 lowercase hex digits"),
    ({"fingerprint": "0" * 32 + "\n"}, r"'fingerprint' must be 32 lowercase hex digits"),
    ({"modality": "Text"}, r"'modality' is str 'Text', expected a name of 1\.\.32 lower-case letters"),
    ({"modality": "x" * 33}, r"'modality' is str 'x+', expected a name"),
    ({"modality": 3}, r"'modality' is int 3, expected a name"),
    ({"substreams": ()}, r"must name 1\.\.64 substreams, got 0"),
    ({"substreams": tuple(f"s{i}" for i in range(65))}, r"must name 1\.\.64 substreams, got 65"),
    ({"substreams": ("a", "a")}, r"substream name str 'a' appears twice"),
    ({"substreams": ("a", "")}, r"substream names must be non-empty strings, got str ''"),
    ({"substreams": ("a", 1)}, r"substream names must be non-empty strings, got int 1"),
    ({"substreams": "ab"}, r"'substreams' must be a list of names, got str 'ab'"),
    ({"meta": []}, r"'meta' must be a JSON object, got a list"),
    ({"meta": {"s": {1, 2}}}, r"header\['meta'\]\['s'\] is a set, not a JSON value"),
    ({"meta": {"t": (1, 2)}}, r"is a tuple, not a JSON value"),
    ({"meta": {1: 2}}, r"header\['meta'\] has a key of type int; JSON keys are strings"),
    ({"meta": {"q": float("nan")}}, r"header\['meta'\]\['q'\] is nan, not a finite number"),
    ({"meta": {"q": 2**63}}, r"is an integer outside the int64 range"),
    ({"meta": {"q": "\ud800"}}, r"lone surrogate"),
    ({"meta": {"q": json.loads("[" * 31 + "]" * 31)}}, r"nests deeper than 32 levels"),
    ({"extra": {"codec": "x"}}, r"Header.extra repeats required field 'codec'"),
    ({"extra": []}, r"Header.extra must be a dict, got a list"),
])
def test_header_rejects_invalid_fields(change, message):
    with pytest.raises(ValueError, match=message) as info:
        Header(**{**GOOD, **change})
    assert not isinstance(info.value, ncodec.BitstreamError)


def test_header_nesting_at_the_limit_is_fine_and_meta_is_copied():
    meta = {"q": json.loads("[" * 30 + "]" * 30)}  # header object + meta + 30 arrays = 32 levels
    header = Header(**{**GOOD, "meta": meta})
    meta["q"] = 1
    assert header.meta["q"] != 1 and unpack(pack(header, []))[0] == header


def test_writer_rejects_invalid_arguments():
    with pytest.raises(ValueError, match="header must be an ncodec Header, got dict"):
        ContainerWriter(io.BytesIO(), HEADER.to_json())
    with pytest.raises(ValueError, match="header JSON is 70[0-9]+ bytes, the format allows at most 65536"):
        pack(Header(**{**GOOD, "meta": {"x": "a" * 70000}}), [])
    sink = io.BytesIO()
    writer = ContainerWriter(sink, HEADER)
    written = sink.tell()
    with pytest.raises(ValueError, match=r"chunk has 1 substreams, the header names 2: \['z', 'y'\]"):
        writer.add_chunk([b"a"])
    with pytest.raises(ValueError, match="expects a sequence of 2 byte strings, got one bytes"):
        writer.add_chunk(b"ab")
    with pytest.raises(ValueError, match="substream 'y' must be bytes-like, got str"):
        writer.add_chunk([b"a", "b"])
    with pytest.raises(ValueError, match="substream 'z' must be a contiguous buffer"):
        writer.add_chunk([memoryview(b"abcd")[::2], b""])
    assert sink.tell() == written and writer.chunks_written == 0  # nothing was written
    writer.close()
    with pytest.raises(ValueError, match="cannot add a chunk: the writer is closed"):
        writer.add_chunk(CHUNKS[0])


def test_exception_inside_with_leaves_no_index():
    sink = io.BytesIO()
    with pytest.raises(RuntimeError):
        with ContainerWriter(sink, HEADER) as writer:
            writer.add_chunk(CHUNKS[0])
            raise RuntimeError("encoder failed")
    assert sink.getvalue() == GOLDEN[:CHUNK1]  # header and chunk 0, no index, no trailer
    writer.close()  # still writes nothing
    assert sink.getvalue() == GOLDEN[:CHUNK1]
    with pytest.raises(ValueError, match="the writer is aborted"):
        writer.add_chunk(CHUNKS[1])
    with pytest.raises(ncodec.BitstreamError, match="truncated: 16 bytes follow the header.*never closed"):
        unpack(sink.getvalue())
    with pytest.raises(ncodec.BitstreamError, match="no trailer.*never closed"):
        unpack(pack(HEADER, CHUNKS)[:INDEX])  # the same with more chunks written


def test_failed_sink_write_blocks_the_index():
    class Flaky(io.BytesIO):
        def write(self, data):
            if self.tell() > 240:
                raise OSError("disk full")
            return super().write(data)

    sink = Flaky()
    writer = ContainerWriter(sink, HEADER)
    with pytest.raises(OSError, match="disk full"):
        writer.add_chunk(CHUNKS[0])  # the header and the chunk's fields fit, the payload does not
    with pytest.raises(ValueError, match="cannot finish the container: an earlier write to the sink failed"):
        writer.close()
    with pytest.raises(ValueError, match="the writer is failed"):
        writer.add_chunk(CHUNKS[0])


def test_reader_rejects_non_seekable_sources():
    with pytest.raises(ValueError, match="seekable binary file, got WriteOnly"):
        ContainerReader(WriteOnly())


# ----------------------------------------------------------------------------- hostile input (BitstreamError)


def with_json(**fields) -> bytes:
    """GOLDEN with header fields replaced (None: removed), the CRCs and offsets recomputed."""
    obj = HEADER.to_json()
    for k, v in fields.items():
        obj.pop(k) if v is None else obj.__setitem__(k, v)
    return raw_container(json.dumps(obj, sort_keys=True).encode("utf-8", "surrogatepass"), PAYLOADS)


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


def with_index(offsets: list[int], index_offset: int = INDEX) -> bytes:
    """GOLDEN with a re-checksummed index."""
    return GOLDEN[:INDEX] + index_and_trailer(offsets, index_offset)


def with_payload(i: int, new: bytes) -> bytes:
    return raw_container(BODY, [new if k == i else p for k, p in enumerate(PAYLOADS)])


HOSTILE = {
    # header: magic, version, flags, length, CRC
    "empty": (b"", r"truncated: the header needs at least 21 bytes, 0 remain"),
    "magic prefix": (MAGIC[:5], r"truncated: the header needs at least 21 bytes, 5 remain"),
    "png": (b"\x89PNG\r\n\x1a\n" + GOLDEN[8:],
        r"not an ncodec file: magic is 89504e470d0a1a0a, expected 894e43420d0a1a0a$"),
    "text": (b"hello", r"not an ncodec file: magic is 68656c6c6f, expected 894e43420d0a1a0a"),
    "crlf to lf": (GOLDEN.replace(b"\r\n", b"\n", 1),
        r"not an ncodec file: .* \(CRLF became LF: .*text-mode transfer\)"),
    "7-bit": (b"\x09" + GOLDEN[1:], r"not an ncodec file: .* \(the high bit was stripped: .*7-bit transfer\)"),
    "version 2": (raw_container(BODY, PAYLOADS, version=2),
        r"unsupported container version 2 \(this ncodec reads version 1\)"),
    "version 0": (patched(GOLDEN, 8, b"\x00\x00"),
        r"unsupported container version 0 \(this ncodec reads version 1\)"),
    "flags": (raw_container(BODY, PAYLOADS, flags=4),
        r"unsupported header flags 0x0004: version 1 defines none, expected 0"),
    "body_len 0": (raw_container(b"", PAYLOADS), r"header body length 0 is out of range, expected 1\.\.65536"),
    "body_len 65537": (raw_container(b" " * 65537, PAYLOADS),
        r"header body length 65537 is out of range, expected 1\.\.65536"),
    "header cut": (GOLDEN[:100], r"truncated: the rest of the header needs 215 bytes at offset 16, 84 remain"),
    "header CRC": (patched(GOLDEN, 30, b"X"),
        r"header CRC mismatch \(stored 0xd54bcdcd, computed 0x[0-9a-f]{8}\): the header is corrupted"),
    "flipped flag bit": (patched(GOLDEN, 10, b"\x01"), r"header CRC mismatch"),
    # header JSON (CRCs recomputed, so the JSON checks are what fires)
    "bom": (raw_container(b"\xef\xbb\xbf" + BODY, PAYLOADS),
        r"header JSON starts with a UTF-8 byte order mark"),
    "utf-8": (raw_container(BODY.replace(b"\xc3\xa9", b"\xc3\x28"), PAYLOADS),
        r"header is not valid UTF-8 \(invalid continuation byte at byte 184\)"),
    "not json": (raw_container(b"{codec}", PAYLOADS), r"header is not valid JSON: Expecting property name"),
    "trailing junk": (raw_container(BODY + b"x", PAYLOADS), r"header is not valid JSON: Extra data"),
    "not an object": (raw_container(b"[1,2]", PAYLOADS),
        r"invalid header: header JSON is a list, expected an object"),
    "NaN": (raw_container(BODY.replace(b"0.5", b"NaN"), PAYLOADS),
        r"header is not valid JSON: NaN is not a JSON number"),
    "1e999": (raw_container(BODY.replace(b"0.5", b"1e999"), PAYLOADS),
        r"invalid header: header\['meta'\]\['quality'\] is inf, not a finite number"),
    "duplicate key": (raw_container(BODY[:-1] + b',"codec":"x"}', PAYLOADS),
        r"header is not valid JSON: duplicate key 'codec'"),
    "deep": (with_json(deep=json.loads("[" * 40 + "]" * 40)),
        r"invalid header: header\['deep'\](\[0\]){31} nests deeper than 32 levels"),
    "very deep": (raw_container(BODY[:-1] + b',"d":' + b"[" * 30000 + b"]" * 30000 + b"}", PAYLOADS),
        r"header JSON nests deeper than 32 levels"),
    "huge int": (raw_container(BODY.replace(b":4", b":" + b"9" * 5000), PAYLOADS),
        r"header is not valid JSON: Exceeds the limit"),
    "int64": (with_json(big=2**64), r"invalid header: header\['big'\] is an integer outside the int64 range"),
    "surrogate": (with_json(codec="\ud800"),
        r"invalid header: header\['codec'\] holds a string with a lone surrogate"),
    "no codec": (with_json(codec=None), r"invalid header: header field 'codec' is missing"),
    "no fingerprint": (with_json(fingerprint=None), r"invalid header: header field 'fingerprint' is missing"),
    "no modality": (with_json(modality=None), r"invalid header: header field 'modality' is missing"),
    "no substreams": (with_json(substreams=None), r"invalid header: header field 'substreams' is missing"),
    "no meta": (with_json(meta=None), r"invalid header: header field 'meta' is missing"),
    "codec type": (with_json(codec=["x"]),
        r"invalid header: header field 'codec' must be a string of 1\.\.64 characters, got a list"),
    "codec long": (with_json(codec="é" * 65), r"header field 'codec' must be a string of 1\.\.64 characters"),
    "fingerprint": (with_json(fingerprint="0123456789ABCDEF0123456789ABCDEF"),
        r"invalid header: header field 'fingerprint' must be 32 lowercase hex digits, got str '0123456789ABCDEF0123456789ABCDEF'"),
    "modality": (with_json(modality="image/png"),
        r"invalid header: header field 'modality' is str 'image/png', expected a name of 1\.\.32"),
    "substreams dup": (with_json(substreams=["z", "z"]),
        r"invalid header: substream name str 'z' appears twice"),
    "substreams empty": (with_json(substreams=[]),
        r"invalid header: header field 'substreams' must name 1\.\.64 substreams, got 0"),
    "substream name": (with_json(substreams=["z", ""]),
        r"invalid header: substream names must be non-empty strings, got str ''"),
    "substreams type": (with_json(substreams={"z": 1}),
        r"invalid header: header field 'substreams' must be a list of names, got a dict"),
    "meta type": (with_json(meta=[1]),
        r"invalid header: header field 'meta' must be a JSON object, got a list"),
    # trailer and index
    "no room": (GOLDEN[:HEADER_END + 23],
        r"truncated: 23 bytes follow the header, the index and trailer alone need 24"),
    "cut": (GOLDEN[:-1],
        r"no trailer: the file ends with .*, expected 4e4342494e444558 \('NCBINDEX'\); it is truncated, or its writer was never closed"),
    "end magic": (GOLDEN[:-1] + b"Y",
        r"no trailer: the file ends with 4e4342494e444559, expected 4e4342494e444558"),
    "padded": (GOLDEN + b"\x00", r"no trailer"),
    "index offset big": (patched(GOLDEN, len(GOLDEN) - 16, struct.pack("<Q", 2**64 - 1)),
        r"index offset points outside the file: it is 18446744073709551615, expected 231 \(end of the header\) \.\. 405"),
    "index offset in header": (patched(GOLDEN, len(GOLDEN) - 16, struct.pack("<Q", 100)),
        r"index offset points outside the file: it is 100, expected 231"),
    "index offset shifted": (patched(GOLDEN, len(GOLDEN) - 16, struct.pack("<Q", INDEX - 8)),
        r"index count 4294967295 does not fit: 4294967295 offsets need 34359738368 index bytes, 32 lie between"),
    "index count": (patched(GOLDEN, INDEX, struct.pack("<I", 2**32 - 1)),
        r"index count 4294967295 does not fit: 4294967295 offsets need 34359738368 index bytes, 24 lie"),
    "index CRC": (patched(GOLDEN, INDEX + 4, b"\xe8"),
        r"index CRC mismatch \(stored 0xa8f06854, computed 0x[0-9a-f]{8}\): the index is corrupted"),
    "index start": (with_index([HEADER_END + 1, CHUNK1]),
        r"index does not match the chunks: chunk 0 starts at offset 232, expected 231 \(right after the header\)"),
    "index order": (with_index([HEADER_END, HEADER_END + 4]),
        r"index does not match the chunks: chunk 0 at offset 231 is followed by chunk 1 at 235, expected at least 239"),
    "index last": (with_index([HEADER_END, INDEX - 4]),
        r"chunk 1 at offset 385 is followed by the index at 389, expected at least 393"),
    "index no chunks": (GOLDEN[:INDEX] + index_and_trailer([], INDEX),
        r"there are no chunks but the index starts at offset 389, expected 231"),
    "index skips": (with_index([HEADER_END, CHUNK1 + 8]),
        r"index does not match the chunks: chunk 0's length field says 8 payload bytes, the index leaves room for 16"),
    # chunks (CRCs recomputed where a later check is the target)
    "length field": (patched(GOLDEN, CHUNK1, struct.pack("<I", 135)),
        r"index does not match the chunks: chunk 1's length field says 135 payload bytes, the index leaves room for 134"),
    "length limit": (patched(GOLDEN, CHUNK1, struct.pack("<I", 2**31)),
        r"chunk 1 length 2147483648 exceeds the format's limit of 2147483647"),
    "chunk CRC": (patched(GOLDEN, CHUNK1 + 20, b"\xfe"),
        r"chunk 1 CRC mismatch \(stored 0x74913ee8, computed 0x[0-9a-f]{8}\): the chunk is corrupted"),
    "chunk count": (with_payload(0, payload([b"\x01\x02", b"abc", b""])),
        r"chunk 0 has 3 substreams, the header names 2"),
    "chunk sizes": (with_payload(0, PAYLOADS[0] + b"!"),
        r"chunk 0 payload size mismatch: its substreams add up to 5 bytes, 6 follow its size table"),
    "chunk short": (with_payload(1, PAYLOADS[1][:-1]),
        r"chunk 1 payload size mismatch: its substreams add up to 130 bytes, 129 follow"),
    "empty payload": (with_payload(0, b""), r"chunk 0 substream count: the payload ends inside a varint"),
    "cut varint": (with_payload(0, b"\x02\x80"),
        r"chunk 0 size of substream 'z': the payload ends inside a varint"),
    "overlong varint": (with_payload(0, b"\x02\x80\x00\x00"),
        r"chunk 0 size of substream 'z': varint is not minimally encoded"),
    "varint 11 bytes": (with_payload(0, b"\x02" + b"\xff" * 10 + b"\x01\x00"),
        r"chunk 0 size of substream 'z': varint is longer than 10 bytes"),
    "varint 2^64": (with_payload(0, b"\x02" + b"\x80" * 9 + b"\x02\x00"),
        r"chunk 0 size of substream 'z': varint exceeds 2\^64-1"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input_raises_bitstream_error(name):
    data, message = HOSTILE[name]
    for source in (data, io.BytesIO(data)):
        with pytest.raises(ncodec.BitstreamError, match=message):
            unpack(source)


def test_errors_are_value_errors_and_header_errors_reach_read_header():
    assert issubclass(ncodec.BitstreamError, ValueError)
    with pytest.raises(ncodec.BitstreamError, match="header CRC mismatch"):
        read_header(HOSTILE["header CRC"][0])
    assert read_header(HOSTILE["chunk CRC"][0]) == HEADER  # read_header looks at the header only


def test_varint_at_the_limits_is_accepted():
    big = with_payload(0, b"\x02" + b"\xff" * 9 + b"\x01" + b"\x00")  # 2^64-1: valid varint, wrong size
    with pytest.raises(ncodec.BitstreamError, match="add up to 18446744073709551615 bytes"):
        unpack(big)


# ----------------------------------------------------------------------------- fuzz


def test_fuzz_10000_hostile_containers_in_subprocess():
    # A subprocess, so that a crash or a hang fails this test instead of the whole run.
    proc = subprocess.run([sys.executable, os.path.join(HERE, "container_fuzz_worker.py"), "10000", "7"],
                          capture_output=True, text=True, timeout=120, cwd=HERE)
    assert proc.returncode == 0, f"fuzz worker failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    counts = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", proc.stdout)}
    assert counts["total"] == 10000
    assert counts["BitstreamError"] > 7000  # corruption is caught, not parsed


def test_crc_is_zlib_crc32():
    covered = GOLDEN[8:HEADER_END - 4]
    assert struct.unpack("<I", GOLDEN[HEADER_END - 4:HEADER_END])[0] == zlib.crc32(covered)
