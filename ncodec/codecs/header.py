"""The container's header: a canonical JSON object naming the codec, its model and its substreams.

:class:`Header` holds the five required fields (``codec``, ``fingerprint``, ``modality``,
``substreams``, ``meta``) plus unknown ones (``extra``), and refuses anything the format does
not allow, so a header that exists can always be written. :func:`encode_body` writes it as
canonical UTF-8 JSON (equal headers, equal bytes); :func:`parse_body` reads it back and
raises :class:`ncodec.BitstreamError` for anything malformed or hostile (duplicate keys,
NaN, lone surrogates, nesting deeper than 32). See ``docs/bitstream.md``.

The container does not list modalities: ``modality`` is any name of 1..32 lower-case
letters, digits, ``-`` or ``_`` starting with a letter; which modalities a reader can decode
is the business of the modality registry (:mod:`ncodec.io.modality`).
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field

from ncodec.errors import BitstreamError

__all__ = ["MAX_HEADER_BYTES", "Header", "encode_body", "parse_body"]

MAX_HEADER_BYTES = 65536  # header JSON body, bytes
MAX_SUBSTREAMS = 64
MAX_CODEC_CHARS = 64
MAX_JSON_DEPTH = 32  # nested objects/arrays, the header object included
_REQUIRED = ("codec", "fingerprint", "modality", "substreams", "meta")
_FINGERPRINT = re.compile(r"[0-9a-f]{32}")
_MODALITY = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Header:
    """What a container holds: written once, at the front, as a canonical JSON object.

    Attributes:
        codec: name of the codec that wrote the file, 1 .. 64 characters (``"bmshj2018-factorized"``).
        fingerprint: 128-bit fingerprint of the model weights, 32 lowercase hex digits; a decoder
            refuses files whose fingerprint is not its model's.
        modality: the kind of media (``"image"``, ``"audio"``, ``"video"``, ...): a name of
            1..32 characters ``[a-z][a-z0-9_-]*``.
        substreams: names of the byte strings in every chunk, in order: 1 .. 64 distinct
            non-empty strings (a list is accepted and stored as a tuple).
        meta: the codec's file-level fields (images: width, height, channels, quality, ...;
            each codec declares and checks its own, see :mod:`ncodec.codecs.meta`); any JSON
            object.
        extra: unknown top-level fields, kept so that files from later writers round-trip.

    JSON values are what ``json.loads`` produces (dict with str keys, list, str, int in the
    int64 range, finite float, bool, None), nested at most 32 deep; anything else raises
    ``ValueError`` here, so a header that exists can always be written. ``meta`` and
    ``extra`` are copied; do not mutate them afterwards.
    """

    codec: str
    fingerprint: str
    modality: str
    substreams: tuple[str, ...]
    meta: dict
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if type(self.substreams) is list:
            object.__setattr__(self, "substreams", tuple(self.substreams))
        _check_header(self)
        # Own copies, so that a caller mutating its dicts cannot change a checked header.
        object.__setattr__(self, "meta", copy.deepcopy(self.meta))
        object.__setattr__(self, "extra", copy.deepcopy(self.extra))

    def to_json(self) -> dict:
        """The header as the JSON object stored in the file (``extra`` merged in)."""
        return {
            **self.extra,
            "codec": self.codec,
            "fingerprint": self.fingerprint,
            "modality": self.modality,
            "substreams": list(self.substreams),
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, obj: object) -> Header:
        """Inverse of :meth:`to_json`; ``ValueError`` if ``obj`` is not a valid header object."""
        if type(obj) is not dict:
            raise ValueError(f"header JSON is {_describe(obj)}, expected an object")
        for name in _REQUIRED:
            if name not in obj:
                raise ValueError(f"header field {name!r} is missing")
        extra = {k: v for k, v in obj.items() if k not in _REQUIRED}
        return cls(obj["codec"], obj["fingerprint"], obj["modality"], obj["substreams"], obj["meta"], extra)


def _check_header(h: Header) -> None:
    """Raises ValueError naming the first field of ``h`` that breaks the format's rules."""
    if type(h.substreams) is not tuple:
        raise ValueError(f"header field 'substreams' must be a list of names, "
                         f"got {_describe(h.substreams)}")
    if type(h.extra) is not dict:
        raise ValueError(f"Header.extra must be a dict, got {_describe(h.extra)}")
    clash = sorted(set(h.extra) & set(_REQUIRED), key=str)
    if clash:
        raise ValueError(f"Header.extra repeats required field {clash[0]!r}")
    # JSON-ness first: it bounds the nesting depth before anything else looks inside.
    _check_json_value(h.to_json())
    if type(h.codec) is not str or not 1 <= len(h.codec) <= MAX_CODEC_CHARS:
        raise ValueError(f"header field 'codec' must be a string of 1..{MAX_CODEC_CHARS} characters, "
                         f"got {_describe(h.codec)}")
    if type(h.fingerprint) is not str or not _FINGERPRINT.fullmatch(h.fingerprint):
        raise ValueError(f"header field 'fingerprint' must be 32 lowercase hex digits, "
                         f"got {_describe(h.fingerprint)}")
    if type(h.modality) is not str or not _MODALITY.fullmatch(h.modality):
        raise ValueError(f"header field 'modality' is {_describe(h.modality)}, expected a name of 1..32 "
                         "lower-case letters, digits, '-' or '_', starting with a letter")
    _check_substream_names(h.substreams)
    if type(h.meta) is not dict:
        raise ValueError(f"header field 'meta' must be a JSON object, got {_describe(h.meta)}")


def _check_substream_names(names: tuple) -> None:
    if not 1 <= len(names) <= MAX_SUBSTREAMS:
        raise ValueError(f"header field 'substreams' must name 1..{MAX_SUBSTREAMS} substreams, "
                         f"got {len(names)}")
    for name in names:
        if type(name) is not str or not name:
            raise ValueError(f"substream names must be non-empty strings, got {_describe(name)}")
    if len(set(names)) != len(names):
        duplicate = next(n for i, n in enumerate(names) if n in names[:i])
        raise ValueError(f"substream name {_describe(duplicate)} appears twice; names must be distinct")


def _check_json_value(root: object) -> None:
    """Raises ValueError unless ``root`` is a JSON value as ``json.loads`` returns it, nested
    at most MAX_JSON_DEPTH deep, with every string valid Unicode (no lone surrogates).
    Iterative, so hostile nesting cannot overflow the stack."""
    stack = [(root, 1, "header")]
    while stack:
        value, depth, path = stack.pop()
        kind = type(value)
        if kind is dict or kind is list:
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"{path} nests deeper than {MAX_JSON_DEPTH} levels of objects and arrays")
            items = value.items() if kind is dict else enumerate(value)
            for key, item in items:
                if kind is dict:
                    if type(key) is not str:
                        raise ValueError(f"{path} has a key of type {type(key).__name__}; "
                                         "JSON keys are strings")
                    _check_unicode(key, path)
                stack.append((item, depth + 1, f"{path}[{_short(key)}]"))
        elif kind is str:
            _check_unicode(value, path)
        elif kind is int and value not in _INT64:
            raise ValueError(f"{path} is an integer outside the int64 range")
        elif kind is float and not math.isfinite(value):
            raise ValueError(f"{path} is {value}, not a finite number")
        elif kind not in (int, float, bool, type(None)):
            raise ValueError(f"{path} is a {kind.__name__}, not a JSON value "
                             "(dict, list, str, int, float, bool, None)")


def _check_unicode(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path} holds a string with a lone surrogate, not valid Unicode") from None


def _short(value: object) -> str:
    """A repr short enough for an error message (strings are cut at 40 characters)."""
    if type(value) is str and len(value) > 40:
        return repr(value[:40]) + "..."
    return repr(value)


def _describe(value: object) -> str:
    """Type and (for scalars) value, for messages; never reprs a container (it could be huge)."""
    if type(value) in (str, bool, float, type(None)) or (type(value) is int and value in _INT64):
        return f"{type(value).__name__} {_short(value)}"
    return f"a {type(value).__name__}"


def encode_body(header: Header) -> bytes:
    """The header's canonical JSON (sorted keys, no spaces, UTF-8); ValueError if it is longer
    than the format's 65536 bytes."""
    body = json.dumps(header.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")
    if len(body) > MAX_HEADER_BYTES:
        raise ValueError(f"header JSON is {len(body)} bytes, the format allows at most {MAX_HEADER_BYTES}")
    return body


def parse_body(body: bytes) -> Header:
    if body.startswith(b"\xef\xbb\xbf"):
        raise BitstreamError("header JSON starts with a UTF-8 byte order mark, which the format forbids")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BitstreamError(f"header is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        obj = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except RecursionError:
        raise BitstreamError(f"header JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:  # JSONDecodeError, duplicate keys, NaN, over-long integers
        raise BitstreamError(f"header is not valid JSON: {e}") from None
    try:
        return Header.from_json(obj)
    except ValueError as e:
        raise BitstreamError(f"invalid header: {e}") from None


def _unique_keys(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {_short(duplicate)}")
    return obj


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


