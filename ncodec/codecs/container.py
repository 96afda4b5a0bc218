"""The ncodec container, format version 1: one versioned file for every codec's substreams.

``docs/bitstream.md`` is the normative, byte-exact specification; in short (integers
little-endian)::

    File    := Header Chunk* Index Trailer
    Header  := magic "\\x89NCB\\r\\n\\x1a\\n", version u16 = 1, flags u16 = 0, body_len u32,
               body (canonical UTF-8 JSON object, 1 .. 65536 bytes), crc u32
    Chunk   := length u32, crc u32, payload = varint n, varint size[n], n substreams
    Index   := count u32, offset u64 x count, crc u32
    Trailer := index_offset u64, "NCBINDEX"

A *chunk* is one independently decodable unit (an image, a group of audio frames, a video
GOP); it holds one byte string per *substream* named in the header (e.g. ``["z", "y"]``).
Offsets count from the container's first byte (the magic).

Guarantees:

* Exact: the bytes depend only on the header and the chunks. The header JSON is written
  canonically, so equal headers give equal bytes; :func:`pack` and :class:`ContainerWriter`
  write identical files, and ``unpack(pack(h, chunks)) == (h, chunks)`` for every ``h`` the
  :class:`Header` constructor accepts.
* Safe on hostile input: :class:`ContainerReader`, :func:`unpack` and :func:`read_header`
  raise :class:`ncodec.BitstreamError` (a ``ValueError``) for malformed, truncated, padded or
  corrupted input, and nothing else. They never read outside the input, allocate at most a
  constant times the input's size, and loop a number of times bounded by it.
* Checked: every byte is covered by a CRC-32, must equal an exact expected value, or (chunk
  lengths, index offset) is cross-checked against the rest of the file. Opening a reader checks the header, the trailer and the index; :meth:`ContainerReader.chunk`
  checks everything about its chunk (CRC included) before returning any of it; :func:`unpack`
  and iteration check every byte of the file.
* Random access: opening reads the header, trailer and index only; ``chunk(i)`` then reads
  exactly chunk ``i``, and ``chunk_sizes(i)`` its first ``8 + 10 * (n + 1)`` bytes at most.
* Streaming: :class:`ContainerWriter` needs only ``write()`` on its sink (pipes work) and keeps
  8 bytes per chunk in memory. A writer left by an exception writes no index or trailer, so
  an unfinished file is always rejected, never mistaken for a shorter valid one.

The header (:mod:`ncodec.codecs.header`) and the varints of size tables and chunk heads
(:mod:`ncodec.codecs.varint`) live in modules of their own; their public names are
re-exported here, so codecs need only this module.
"""

from __future__ import annotations

import io
import operator
import struct
import sys
import zlib
from array import array
from typing import BinaryIO, Iterable, Iterator, Optional, Sequence, Union

from ncodec.codecs.header import MAX_HEADER_BYTES, Header, encode_body, parse_body
from ncodec.codecs.varint import pack_ints, read_varint, unpack_ints, write_varint
from ncodec.errors import BitstreamError

__all__ = [
    "END_MAGIC",
    "FORMAT_VERSION",
    "MAGIC",
    "ContainerReader",
    "ContainerStreamReader",
    "ContainerWriter",
    "Header",
    "pack",
    "pack_ints",
    "read_varint",
    "read_header",
    "unpack",
    "unpack_ints",
    "write_varint",
]

MAGIC: bytes = b"\x89NCB\r\n\x1a\n"
"""First 8 bytes of every container (PNG-style: catches text-mode and 7-bit damage)."""
END_MAGIC: bytes = b"NCBINDEX"
"""Last 8 bytes of every finished container."""
FORMAT_VERSION: int = 1
"""The container version this module writes and the only one it reads."""

MAX_CHUNK_BYTES = 2**31 - 1  # chunk payload, bytes
MAX_CHUNKS = 2**32 - 1  # the index count is a u32

_FIXED = struct.Struct("<HHI")  # version, flags, body_len (follows the magic)
_HEAD_SIZE = len(MAGIC) + _FIXED.size  # 16: what precedes the JSON body
_U32 = struct.Struct("<I")
_CHUNK_HEAD = struct.Struct("<II")  # length, crc
_TRAILER = struct.Struct("<Q8s")  # index_offset, END_MAGIC
_EMPTY_INDEX = 8  # count u32 + crc u32

BytesLike = Union[bytes, bytearray, memoryview]
Source = Union[bytes, bytearray, memoryview, BinaryIO]


# ----------------------------------------------------------------------------- header


def _encode_header(header: Header) -> bytes:
    """Magic, fixed fields, canonical JSON body and CRC; ValueError if the body is too long."""
    body = encode_body(header)
    covered = _FIXED.pack(FORMAT_VERSION, 0, len(body)) + body
    return MAGIC + covered + _U32.pack(zlib.crc32(covered))



def _little_endian(values: array) -> array:
    """Swaps native <-> little-endian order (its own inverse): files are the same on any machine."""
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values


# ----------------------------------------------------------------------------- writing


class ContainerWriter:
    """Streams a container to ``sink``: the header at once, each chunk as it comes, the index
    and trailer at :meth:`close`.

    Args:
        sink: binary file object whose ``write()`` writes everything it is given (any
            buffered file, ``io.BytesIO``, ``sys.stdout.buffer``); it need not be seekable.
            Offsets count from the sink's position at construction. The sink is not closed.
        header: the :class:`Header`; ``ValueError`` if its JSON exceeds 65536 bytes.

    Use as a context manager: a clean exit closes the container; an exception leaves it
    without index and trailer, so readers reject it as unfinished.
    """

    def __init__(self, sink: BinaryIO, header: Header) -> None:
        if not isinstance(header, Header):
            raise ValueError(f"header must be an ncodec Header, got {type(header).__name__}")
        self.header = header
        self.chunks_written: int = 0
        """Chunks added so far (0 .. 2^32-1)."""
        self._sink = sink
        self._position = 0  # bytes written so far: the offset of the next structure
        self._offsets = array("Q")  # 8 bytes per chunk: the whole index kept in memory
        self._state = "open"  # "open", "closed", "aborted" or "failed"
        self._write([_encode_header(header)])

    def add_chunk(self, substreams: Sequence[BytesLike]) -> None:
        """Appends one chunk: one bytes-like object per header substream, in header order.

        ``ValueError`` (nothing written) for a wrong count, a non-bytes substream, a payload
        over 2^31-1 bytes, more than 2^32-1 chunks, or a writer no longer open.
        """
        if self._state != "open":
            raise ValueError(f"cannot add a chunk: the writer is {self._state}")
        parts = self._chunk_parts(substreams)
        start = self._position
        self._write(parts)
        self._offsets.append(start)
        self.chunks_written += 1

    def _chunk_parts(self, substreams: Sequence[BytesLike]) -> list:
        """Checks the caller's substreams and returns the chunk's bytes as parts to write."""
        names = self.header.substreams
        if isinstance(substreams, (bytes, bytearray, memoryview, str)):
            raise ValueError(f"add_chunk expects a sequence of {len(names)} byte strings, "
                             f"got one {type(substreams).__name__}")
        substreams = list(substreams)
        if len(substreams) != len(names):
            raise ValueError(f"chunk has {len(substreams)} substreams, "
                             f"the header names {len(names)}: {list(names)}")
        if self.chunks_written >= MAX_CHUNKS:
            raise ValueError(f"a container holds at most {MAX_CHUNKS} chunks")
        views = [_byte_view(data, name) for name, data in zip(names, substreams)]
        table = write_varint(len(views)) + b"".join(write_varint(len(v)) for v in views)
        length = len(table) + sum(len(v) for v in views)
        if length > MAX_CHUNK_BYTES:
            raise ValueError(f"chunk payload is {length} bytes, the format allows at most {MAX_CHUNK_BYTES}")
        crc = zlib.crc32(table)
        for view in views:
            crc = zlib.crc32(view, crc)
        return [_CHUNK_HEAD.pack(length, crc), table, *views]

    def close(self) -> None:
        """Writes the index and trailer and flushes the sink; a second call does nothing.

        ``ValueError`` if an earlier write to the sink failed: the chunks on it are torn, and
        an index over them would make a broken file look finished.
        """
        if self._state in ("closed", "aborted"):
            return
        if self._state == "failed":
            raise ValueError("cannot finish the container: an earlier write to the sink failed")
        table = _U32.pack(len(self._offsets)) + _little_endian(self._offsets).tobytes()
        index = table + _U32.pack(zlib.crc32(table))
        self._write([index, _TRAILER.pack(self._position, END_MAGIC)])
        self._state = "closed"
        if hasattr(self._sink, "flush"):
            self._sink.flush()

    def __enter__(self) -> ContainerWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._state != "closed":
            self._state = "aborted"  # no index: the partial file must not look finished

    def _write(self, parts: list) -> None:
        self._state = "failed"  # until every part is out: an exception here tears the file
        for part in parts:
            self._sink.write(part)
        self._position += sum(len(part) for part in parts)
        self._state = "open"


def _byte_view(data: BytesLike, name: str) -> memoryview:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"substream {name!r} must be bytes-like, got {type(data).__name__}")
    view = memoryview(data)
    if not view.c_contiguous:
        raise ValueError(f"substream {name!r} must be a contiguous buffer")
    return view.cast("B")


def pack(header: Header, chunks: Iterable[Sequence[BytesLike]]) -> bytes:
    """The whole container in memory. Each chunk is a sequence of ``len(header.substreams)``
    byte strings, in header order. Same bytes as :class:`ContainerWriter`."""
    sink = io.BytesIO()
    with ContainerWriter(sink, header) as writer:
        for substreams in chunks:
            writer.add_chunk(substreams)
    return sink.getvalue()


# ----------------------------------------------------------------------------- reading


class _Source:
    """Bounds-checked random reads from a bytes-like object or a seekable binary file."""

    def __init__(self, source: Source) -> None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._buffer, self._file, self._base = memoryview(source).cast("B"), None, 0
            self.size = len(self._buffer)
            return
        seekable = getattr(source, "seekable", None)
        if not callable(getattr(source, "read", None)) or seekable is None or not seekable():
            raise ValueError(f"source must be bytes-like or a seekable binary file, "
                             f"got {type(source).__name__}")
        self._buffer, self._file, self._base = None, source, source.tell()
        self.size = source.seek(0, io.SEEK_END) - self._base  # container ends at end of file

    def read(self, offset: int, n: int, what: str) -> BytesLike:
        """The ``n`` bytes at ``offset``; BitstreamError naming ``what`` if the input ends first."""
        remain = max(self.size - offset, 0)
        if n > remain:
            raise BitstreamError(f"truncated: {what} needs {n} bytes at offset {offset}, {remain} remain")
        if self._file is None:
            return self._buffer[offset : offset + n]
        self._file.seek(self._base + offset)
        parts, got = [], 0
        while got < n:  # raw files may return short reads
            part = self._file.read(n - got)
            if not part:
                raise BitstreamError(f"truncated: {what} needs {n} bytes at offset {offset}, "
                                     f"the file ended after {got}")
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def rewind(self) -> None:
        if self._file is not None:
            self._file.seek(self._base)


def _parse_header(src: _Source) -> tuple[Header, int]:
    """The header and the offset just past it (where the first chunk starts)."""
    head = src.read(0, min(src.size, _HEAD_SIZE), "the header")
    magic = bytes(head[: len(MAGIC)])
    if magic != MAGIC[: len(magic)]:
        raise BitstreamError(f"not an ncodec file: magic is {magic.hex()}, "
                             f"expected {MAGIC.hex()}{_damage_hint(magic)}")
    if len(head) < _HEAD_SIZE:
        raise BitstreamError(f"truncated: the header needs at least {_HEAD_SIZE + 5} bytes, {src.size} remain")
    version, flags, body_len = _FIXED.unpack_from(head, len(MAGIC))
    # Checked before anything after it: another version may lay out everything differently.
    if version != FORMAT_VERSION:
        raise BitstreamError(f"unsupported container version {version} "
                             f"(this ncodec reads version {FORMAT_VERSION})")
    if not 1 <= body_len <= MAX_HEADER_BYTES:
        raise BitstreamError(f"header body length {body_len} is out of range, expected 1..{MAX_HEADER_BYTES}")
    rest = src.read(_HEAD_SIZE, body_len + 4, "the rest of the header")
    (stored,) = _U32.unpack_from(rest, body_len)
    computed = zlib.crc32(rest[:body_len], zlib.crc32(head[len(MAGIC) :]))
    if computed != stored:
        raise BitstreamError(f"header CRC mismatch (stored {stored:#010x}, computed {computed:#010x}): "
                             "the header is corrupted")
    if flags != 0:
        raise BitstreamError(f"unsupported header flags {flags:#06x}: version 1 defines none, expected 0")
    return parse_body(bytes(rest[:body_len])), _HEAD_SIZE + body_len + 4


def _damage_hint(magic: bytes) -> str:
    if magic.startswith(b"\x89NCB\n"):
        return " (CRLF became LF: the file went through a text-mode transfer)"
    if magic.startswith(b"\x09NCB"):
        return " (the high bit was stripped: the file went through a 7-bit transfer)"
    return ""



class ContainerReader:
    """Random access to a container through its index; checks everything it touches.

    Args:
        source: the whole container as a bytes-like object (not to be modified while the
            reader is used), or a seekable binary file positioned at the container's first
            byte (the container ends at the end of the file). Only what is needed is read.

    Opening checks the header, the trailer and the index (5 reads):
    ``ncodec.BitstreamError`` if any is malformed, corrupted or truncated.

    Attributes:
        header: the :class:`Header`.
        num_chunks: number of chunks, 0 .. 2^32-1.
        file_size: size of the container in bytes.
    """

    def __init__(self, source: Source) -> None:
        self._src = _Source(source)
        self.file_size: int = self._src.size
        self.header, self._header_end = _parse_header(self._src)
        self._index_offset = self._parse_trailer()
        self._offsets = self._parse_index()
        self.num_chunks: int = len(self._offsets)

    def _parse_trailer(self) -> int:
        """The index offset, checked to leave room for the index between chunks and trailer."""
        room = self.file_size - self._header_end
        least = _EMPTY_INDEX + _TRAILER.size
        if room < least:
            raise BitstreamError(f"truncated: {room} bytes follow the header, the index and trailer "
                                 f"alone need {least}; the file is cut short, or its writer was never closed")
        trailer = self._src.read(self.file_size - _TRAILER.size, _TRAILER.size, "the trailer")
        index_offset, end_magic = _TRAILER.unpack(trailer)
        if end_magic != END_MAGIC:
            raise BitstreamError(f"no trailer: the file ends with {end_magic.hex()}, expected "
                                 f"{END_MAGIC.hex()} ('NCBINDEX'); it is truncated, or its writer "
                                 "was never closed")
        last = self.file_size - _TRAILER.size - _EMPTY_INDEX
        if not self._header_end <= index_offset <= last:
            raise BitstreamError(f"index offset points outside the file: it is {index_offset}, expected "
                                 f"{self._header_end} (end of the header) .. {last}")
        return index_offset

    def _parse_index(self) -> array:
        space = self.file_size - _TRAILER.size - self._index_offset
        (count,) = _U32.unpack(self._src.read(self._index_offset, 4, "the index count"))
        if _EMPTY_INDEX + 8 * count != space:
            raise BitstreamError(f"index count {count} does not fit: {count} offsets need "
                                 f"{_EMPTY_INDEX + 8 * count} index bytes, {space} lie between the "
                                 "index offset and the trailer")
        table = self._src.read(self._index_offset, space, "the index")
        (stored,) = _U32.unpack_from(table, space - 4)
        computed = zlib.crc32(table[: space - 4])
        if computed != stored:
            raise BitstreamError(f"index CRC mismatch (stored {stored:#010x}, computed {computed:#010x}): "
                                 "the index is corrupted")
        offsets = array("Q")
        offsets.frombytes(table[4 : space - 4])
        offsets = _little_endian(offsets)
        self._check_offsets(offsets)
        return offsets

    def _check_offsets(self, offsets: array) -> None:
        """Chunks must tile the file from the header's end to the index. Each chunk's length
        field is checked against its extent when the chunk is read."""
        start = offsets[0] if offsets else self._index_offset
        if start != self._header_end:
            what = "chunk 0 starts" if offsets else "there are no chunks but the index starts"
            raise BitstreamError(f"index does not match the chunks: {what} at offset {start}, expected "
                                 f"{self._header_end} (right after the header)")
        for i in range(len(offsets)):
            end = offsets[i + 1] if i + 1 < len(offsets) else self._index_offset
            if end - offsets[i] < _CHUNK_HEAD.size:
                following = f"chunk {i + 1}" if i + 1 < len(offsets) else "the index"
                raise BitstreamError(f"index does not match the chunks: chunk {i} at offset {offsets[i]} is "
                                     f"followed by {following} at {end}, expected at least "
                                     f"{offsets[i] + _CHUNK_HEAD.size}")

    def _extent(self, i: int) -> tuple[int, int]:
        """Offsets of chunk i's first byte and of the byte after it."""
        i = operator.index(i)
        if not 0 <= i < self.num_chunks:
            raise IndexError(f"chunk index {i!r} out of range 0..{self.num_chunks - 1}")
        end = self._offsets[i + 1] if i + 1 < self.num_chunks else self._index_offset
        return self._offsets[i], end

    def _chunk_crc(self, i: int, head: BytesLike, room: int) -> int:
        """Checks chunk i's length field against the index; returns its stored CRC."""
        length, crc = _CHUNK_HEAD.unpack_from(head)
        if length > MAX_CHUNK_BYTES:
            raise BitstreamError(f"chunk {i} length {length} exceeds the format's limit of "
                                 f"{MAX_CHUNK_BYTES}")
        if length != room:
            raise BitstreamError(f"index does not match the chunks: chunk {i}'s length field says {length} "
                                 f"payload bytes, the index leaves room for {room}")
        return crc

    def _size_table(self, i: int, table: BytesLike, payload_len: int) -> tuple[list[int], int]:
        """Substream sizes from the start of chunk i's payload, and where the substreams begin."""
        names = self.header.substreams
        count, pos = read_varint(table, 0, f"chunk {i} substream count")
        if count != len(names):
            raise BitstreamError(f"chunk {i} has {count} substreams, the header names {len(names)}")
        sizes = []
        for name in names:
            size, pos = read_varint(table, pos, f"chunk {i} size of substream {name!r}")
            sizes.append(size)
        if sum(sizes) != payload_len - pos:
            raise BitstreamError(f"chunk {i} payload size mismatch: its substreams add up to {sum(sizes)} "
                                 f"bytes, {payload_len - pos} follow its size table")
        return sizes, pos

    def chunk(self, i: int) -> list[bytes]:
        """The substreams of chunk ``i`` (0 .. num_chunks-1), in header order, after checking
        the chunk's length against the index, its CRC and its size table."""
        start, end = self._extent(i)
        raw = memoryview(self._src.read(start, end - start, f"chunk {i}"))
        crc = self._chunk_crc(i, raw, end - start - _CHUNK_HEAD.size)
        payload = raw[_CHUNK_HEAD.size :]
        computed = zlib.crc32(payload)
        if computed != crc:
            raise BitstreamError(f"chunk {i} CRC mismatch (stored {crc:#010x}, computed {computed:#010x}): "
                                 "the chunk is corrupted")
        sizes, pos = self._size_table(i, payload, len(payload))
        substreams = []
        for size in sizes:
            substreams.append(bytes(payload[pos : pos + size]))
            pos += size
        return substreams

    def chunk_sizes(self, i: int) -> list[int]:
        """Byte sizes of chunk ``i``'s substreams, from its size table alone: the length field and
        the table are checked, the CRC is not (that needs the whole chunk: use :meth:`chunk`)."""
        start, end = self._extent(i)
        room = end - start - _CHUNK_HEAD.size
        table_max = 10 * (len(self.header.substreams) + 1)  # n + 1 varints of <= 10 bytes
        raw = memoryview(self._src.read(start, _CHUNK_HEAD.size + min(room, table_max), f"chunk {i}"))
        self._chunk_crc(i, raw, room)
        return self._size_table(i, raw[_CHUNK_HEAD.size :], room)[0]

    def __iter__(self) -> Iterator[list[bytes]]:
        """Every chunk in order, each checked as by :meth:`chunk`."""
        for i in range(self.num_chunks):
            yield self.chunk(i)

    def summary(self) -> dict:
        """JSON-ready description for ``ncodec info --json``: the header fields, ``num_chunks``,
        ``file_size`` and ``overhead_bytes`` (everything that is not substream data) in bytes,
        and ``substream_bytes``: bytes per substream name, summed over the chunks. Reads the
        size tables only (see :meth:`chunk_sizes`)."""
        h = self.header
        totals = dict.fromkeys(h.substreams, 0)
        for i in range(self.num_chunks):
            for name, size in zip(h.substreams, self.chunk_sizes(i)):
                totals[name] += size
        return {
            "format_version": FORMAT_VERSION,
            "codec": h.codec,
            "fingerprint": h.fingerprint,
            "modality": h.modality,
            "substreams": list(h.substreams),
            "meta": h.meta,
            "extra": h.extra,
            "num_chunks": self.num_chunks,
            "file_size": self.file_size,
            "substream_bytes": totals,
            "overhead_bytes": self.file_size - sum(totals.values()),
        }


class ContainerStreamReader:
    """Reads a container from its bytes as they arrive, front to back, without seeking:
    ``push(data)`` returns the chunks (lists of substreams) completed so far, each checked
    (length, CRC, size table); :attr:`header` is set once the header is complete; ``close()``
    says the input ended and checks that it ended with the index and trailer.

    Memory: the bytes of one unfinished chunk plus the chunk offsets (8 bytes per chunk).

    The format has no marker between the last chunk and the index, so a structure whose first
    u32 equals the number of chunks read is taken for the index when the bytes that follow
    form exactly the index and trailer of the chunks read (offsets, CRC and end magic); a
    chunk can only be mistaken for it by carrying those very bytes.
    """

    def __init__(self) -> None:
        self.header: Optional[Header] = None
        self.chunks_read: int = 0
        self._buf = bytearray()
        self._pos = 0  # container offset of _buf[0]
        self._offsets: list[int] = []
        self._finished = False
        self._failed = False

    def push(self, data: BytesLike) -> list[list[bytes]]:
        """Add bytes; return the chunks they complete. BitstreamError on malformed input."""
        if self._failed:
            raise BitstreamError("the stream already failed")
        if self._finished and len(data):
            self._failed = True
            raise BitstreamError("bytes after the container's trailer")
        self._buf += bytes(data)
        try:
            return self._parse()
        except BitstreamError:
            self._failed = True
            raise

    def _consume(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._pos += n
        return out

    def _parse(self) -> list[list[bytes]]:
        chunks: list[list[bytes]] = []
        if self.header is None:
            if len(self._buf) < _HEAD_SIZE:
                if bytes(self._buf[: len(MAGIC)]) != MAGIC[: len(self._buf[: len(MAGIC)])]:
                    _parse_header(_Source(bytes(self._buf)))  # raises with the usual message
                return chunks
            (body_len,) = _U32.unpack_from(self._buf, len(MAGIC) + 4)
            if len(self._buf) < _HEAD_SIZE + min(body_len, MAX_HEADER_BYTES + 1) + 4:
                if body_len > MAX_HEADER_BYTES or body_len == 0:
                    _parse_header(_Source(bytes(self._buf)))
                return chunks
            self.header, end = _parse_header(_Source(bytes(self._buf)))
            self._consume(end)
        while not self._finished and len(self._buf) >= 4:
            (first,) = _U32.unpack_from(self._buf, 0)
            n = len(self._offsets)
            if first == n:
                index_len = _EMPTY_INDEX + 8 * n + _TRAILER.size
                if len(self._buf) >= index_len and self._is_index(n):
                    self._consume(index_len)
                    self._finished = True
                    break
                if len(self._buf) < max(index_len, _CHUNK_HEAD.size + first):
                    break  # cannot tell the index from a chunk yet
            if len(self._buf) < _CHUNK_HEAD.size:
                break
            length, crc = _CHUNK_HEAD.unpack_from(self._buf, 0)
            if length > MAX_CHUNK_BYTES:
                raise BitstreamError(f"chunk {n} length {length} exceeds the format's limit of {MAX_CHUNK_BYTES}")
            if len(self._buf) < _CHUNK_HEAD.size + length:
                break
            start = self._pos
            raw = self._consume(_CHUNK_HEAD.size + length)
            payload = memoryview(raw)[_CHUNK_HEAD.size:]
            computed = zlib.crc32(payload)
            if computed != crc:
                raise BitstreamError(f"chunk {n} CRC mismatch (stored {crc:#010x}, computed {computed:#010x}): "
                                     "the chunk is corrupted")
            sizes, pos = ContainerReader._size_table(self, n, payload, len(payload))  # type: ignore[arg-type]
            substreams = []
            for size in sizes:
                substreams.append(bytes(payload[pos: pos + size]))
                pos += size
            self._offsets.append(start)
            self.chunks_read += 1
            chunks.append(substreams)
        return chunks

    def _is_index(self, n: int) -> bool:
        table_len = 4 + 8 * n
        table = bytes(self._buf[:table_len])
        (stored,) = _U32.unpack_from(self._buf, table_len)
        if zlib.crc32(table) != stored:
            return False
        offsets = array("Q")
        offsets.frombytes(table[4:])
        if list(_little_endian(offsets)) != self._offsets:
            return False
        index_offset, end_magic = _TRAILER.unpack_from(self._buf, table_len + 4)
        return end_magic == END_MAGIC and index_offset == self._pos

    def close(self) -> None:
        """The input has ended: BitstreamError unless it ended right after the trailer."""
        if self._failed:
            raise BitstreamError("the stream already failed")
        if self.header is None:
            raise BitstreamError(f"truncated: the stream ended inside the header ({len(self._buf)} bytes)")
        if not self._finished:
            raise BitstreamError(f"truncated: the stream ended after {self.chunks_read} chunk(s) without "
                                 "the index and trailer (cut short, or its writer was never closed)")


def unpack(data: Source) -> tuple[Header, list[list[bytes]]]:
    """Header and every chunk's substreams; checks every byte (inverse of :func:`pack`)."""
    reader = ContainerReader(data)
    return reader.header, list(reader)


def read_header(source: Source) -> Header:
    """Only the header (cheap: two small reads), e.g. to pick the codec for a file.

    A file's position is put back, so a :class:`ContainerReader` can be opened on it next.
    """
    src = _Source(source)
    try:
        return _parse_header(src)[0]
    finally:
        src.rewind()
