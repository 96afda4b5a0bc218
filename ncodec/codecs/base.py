"""The codec interface every ncodec codec implements, whatever it codes.

A :class:`Codec` turns media into one ncodec container (:meth:`Codec.compress`) and back
(:meth:`Codec.decompress`, which gives a :class:`Decoded` for every modality), codes files
(:meth:`Codec.encode_file` / :meth:`Codec.decode_file`), and checks that a file is its own
(:meth:`Codec.check_header`: modality, codec name, model fingerprint, then the codec's
declared ``meta`` fields, :mod:`ncodec.codecs.meta`). A codec family subclasses it and
supplies what only it knows:

- ``modality`` and ``meta_schema`` (class attributes), ``name``, ``quality``, ``device`` and
  ``fingerprint`` (instance attributes);
- :meth:`compress` and :meth:`decode_chunks` (the chunks of a checked file -> ``Decoded``);
- :meth:`read_file` / :meth:`file_bytes` for whole-file coding, or its own
  :meth:`encode_file` / :meth:`decode_file` (audio streams files in bounded memory).

The registry (:mod:`ncodec.codecs.registry`) builds codecs by name; :func:`ncodec.decompress`,
the CLI and ``ncodec eval`` use nothing but this interface, so a codec of a new modality
needs no change to any of them.
"""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Mapping, Optional, Sequence, Union

import torch

from ncodec.codecs import container
from ncodec.codecs.meta import MetaField, check_meta
from ncodec.errors import BitstreamError

__all__ = ["Codec", "Decoded"]

FileLike = Union[str, os.PathLike, BinaryIO]


@dataclass(frozen=True, eq=False)
class Decoded:
    """What decoding gives, for every modality.

    Attributes:
        tensor: the decoded media on the codec's device: an image float ``[C, H, W]`` in
            [0, 1]; audio float32 ``[C, T]`` in about [-1, 1]; video ``[T, C, H, W]``.
        modality: the file's modality (``"image"``, ``"audio"``, ...).
        sample_rate: audio: samples per second (Hz) of ``tensor``; else None.
        frame_rate: video: frames per second; else None.
        meta: the file header's ``meta`` (size, quality, bitrate, ...), read-only by convention.
    """

    tensor: torch.Tensor
    modality: str
    sample_rate: Optional[int] = None
    frame_rate: Optional[float] = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    # ncodec 0.2's decompress returned the tensor itself: a Decoded still stands in for it, so
    # code written for that (``x.float()``, ``x.shape``, ``torch.equal(x, y)``, ``np.asarray(x)``)
    # keeps working. What it cannot be is unpacked as ``(wav, sample_rate)``.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or "tensor" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["tensor"], name)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        def unwrap(value: Any) -> Any:
            if isinstance(value, Decoded):
                return value.tensor
            if isinstance(value, (list, tuple)):
                return type(value)(unwrap(v) for v in value)
            return value

        return func(*unwrap(tuple(args)), **{k: unwrap(v) for k, v in (kwargs or {}).items()})

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        array = self.tensor.detach().cpu().numpy()
        return array if dtype is None else array.astype(dtype)


class Codec(ABC):
    """A learned codec at one quality (see the module docstring for what subclasses supply).

    Attributes:
        modality: the modality it codes (class attribute; written in every file header).
        meta_schema: ``{key: MetaField}`` every file of it must satisfy (class attribute).
        substreams: the substream names of its files, or None if they vary (class attribute).
        encode_options: keyword options of :meth:`compress` / :meth:`encode_file` that the
            CLI may pass (``("bitrate",)`` for audio), class attribute.
        decode_options: keyword options of :meth:`decode_file` the CLI may pass
            (``("start_gop",)`` for video), class attribute.
        salvages_truncated: whether :meth:`decode_file` decodes the whole chunks of a file
            cut short (video: its whole GOPs, with a warning) rather than refusing it.
        name: registry name, written in every file.
        quality: its quality level.
        device: where its model runs.
        fingerprint: 32 hex digits identifying the weights decoding depends on.
    """

    modality: ClassVar[str]
    meta_schema: ClassVar[Mapping[str, MetaField]] = {"quality": MetaField(int, lo=0)}
    substreams: ClassVar[Optional[Sequence[str]]] = None
    encode_options: ClassVar[tuple[str, ...]] = ()
    decode_options: ClassVar[tuple[str, ...]] = ()
    salvages_truncated: ClassVar[bool] = False
    name: str
    quality: int
    device: torch.device
    fingerprint: str

    # ---------------------------------------------------------------- coding

    @abstractmethod
    def compress(self, x: Any, **options: Any) -> bytes:
        """Code ``x`` (the modality's media) into one ncodec container."""

    def decompress(self, data: bytes) -> Decoded:
        """Decode a file of this codec.

        Raises:
            ncodec.BitstreamError: not an ncodec file, damaged, or made by another codec,
                quality or model.
        """
        header, chunks = container.unpack(data)
        meta = self.check_header(header)
        return self.decode_chunks(header, meta, chunks)

    @abstractmethod
    def decode_chunks(self, header: container.Header, meta: dict, chunks: list[list[bytes]]) -> Decoded:
        """The media of a file whose header :meth:`check_header` accepted (``meta``), from its
        chunks' substreams; BitstreamError if they do not fit."""

    # ---------------------------------------------------------------- header

    def check_header(self, header: container.Header) -> dict:
        """The header's meta after checking the file is this codec's and its fields are sane.

        Raises:
            ncodec.BitstreamError: another modality, codec or model; missing or invalid
                fields (the codec's :attr:`meta_schema`, then :meth:`check_meta`).
        """
        if header.modality != self.modality:
            raise BitstreamError(f"file holds {header.modality}, not {self.modality}")
        if header.codec != self.name:
            raise BitstreamError(f"file was made by codec {header.codec!r}, this codec is {self.name!r}")
        self.check_format(header)  # before the fingerprint: an old format says which release to use
        if header.fingerprint != self.fingerprint:
            raise BitstreamError(
                f"file was made by a {header.codec} model with fingerprint {header.fingerprint}, the loaded "
                f"model (quality {self.quality}) has {self.fingerprint}: if other weights made it (e.g. from "
                f"`ncodec train`), decode with `ncodec decode --weights PATH` or "
                f"ncodec.decompress(data, weights=PATH)")
        if self.substreams is not None and tuple(header.substreams) != tuple(self.substreams):
            raise BitstreamError(f"{self.modality} file substreams are {list(header.substreams)}, expected "
                                 f"{list(self.substreams)}")
        meta = check_meta(header.meta, self.meta_schema, self.modality)
        return self.check_meta(meta, header)

    def check_format(self, header: container.Header) -> None:
        """Refuse a file of a format revision this release does not decode (BitstreamError);
        codecs whose file layout has changed over releases say which release wrote it."""

    def check_meta(self, meta: dict, header: container.Header) -> dict:
        """Checks beyond :attr:`meta_schema` (relations between fields); returns ``meta``."""
        return meta

    # ---------------------------------------------------------------- files

    def read_file(self, src: FileLike) -> Any:
        """The media in file ``src`` (a path or binary file), as :meth:`compress` takes it."""
        raise NotImplementedError(f"{type(self).__name__} codes media objects, not files")

    def file_bytes(self, decoded: Decoded, suffix: str) -> bytes:
        """``decoded`` as the bytes of a media file of type ``suffix`` (``".png"``)."""
        raise NotImplementedError(f"{type(self).__name__} does not write {suffix} files")

    def encode_file(self, src: FileLike, dst: FileLike, *, force: bool = False, **options: Any) -> dict:
        """Code media file ``src`` into ncodec file ``dst`` (a path, written atomically, or a
        binary file). ``options`` go to :meth:`compress`.

        Returns:
            ``{"bytes_in", "bytes_out", "meta"}``: sizes in bytes and the header's meta.
        """
        from ncodec.io import check_output, write_atomic

        if not _is_file(dst):
            check_output(dst, force=force)  # before the work, not only after it
        raw = _read_bytes(src)
        data = self.compress(self.read_file(io.BytesIO(raw)), **options)
        if _is_file(dst):
            dst.write(data)
        else:
            write_atomic(dst, data, force=force)
        return {"bytes_in": len(raw), "bytes_out": len(data), "meta": container.read_header(data).meta}

    def decode_file(self, src: FileLike, dst: FileLike, *, force: bool = False, suffix: Optional[str] = None) -> dict:
        """Decode ncodec file ``src`` into media file ``dst`` (its type from ``suffix``, else
        from ``dst``'s name).

        Returns:
            ``{"bytes_in", "bytes_out", "meta"}``.
        """
        from ncodec.io import check_output, write_atomic

        if not _is_file(dst):
            check_output(dst, force=force)
        data = _read_bytes(src)
        decoded = self.decompress(data)
        kind = suffix or (Path(dst).suffix if not _is_file(dst) else "") or self.default_suffix()
        out = self.file_bytes(decoded, kind.lower())
        if _is_file(dst):
            dst.write(out)
        else:
            write_atomic(dst, out, force=force)
        return {"bytes_in": len(data), "bytes_out": len(out), "meta": dict(decoded.meta)}

    def input_warnings(self, src: FileLike) -> list[str]:
        """Warnings about coding file ``src`` with this codec (one line each, e.g. a speech
        codec given music); checked after coding, so a file that fails gets its error alone."""
        return []

    def describe_file(self, meta: Mapping[str, Any], size: int) -> str:
        """One line about a file of ``size`` bytes this codec wrote: its measured rate."""
        from ncodec.io.modality import get_modality

        rate = get_modality(self.modality).measured_rate(dict(meta), size)
        return ", ".join(f"{value:g} {unit} measured" for unit, value in rate.items()) or f"{size} bytes"

    def default_suffix(self) -> str:
        """The media file type :meth:`decode_file` writes when none is named."""
        from ncodec.io.modality import get_modality

        return get_modality(self.modality).output_suffixes[0]


def _is_file(target: FileLike) -> bool:
    return hasattr(target, "write") or hasattr(target, "read")


def _read_bytes(src: FileLike) -> bytes:
    if _is_file(src):
        return src.read()
    return Path(src).read_bytes()
