"""The video codec ``video-ctx``: intra frames by a shipped image codec, P-frames by a learned
contextual codec, one GOP per container chunk.

* **Frames** are 8-bit YUV 4:2:0 (:class:`ncodec.io.video.YuvFrame`), any size up to
  :data:`ncodec.io.video.MAX_FRAME_PIXELS` (padded inside to multiples of 32, cropped back).
* **GOPs** of ``gop`` frames (default :data:`DEFAULT_GOP`): the first is coded by
  ``elic-gdn-vr`` (:data:`INTRA_CODEC`), the others as P-frames from the previous decoded frame
  (:mod:`ncodec.codecs.video_gop`, :mod:`ncodec.models.video`). Each GOP is one container
  chunk, decodable alone: :meth:`VideoCodec.iter_frames` and ``ncodec decode --start-gop K``
  start at any GOP.
* **Streams.** :class:`VideoStreamEncoder` takes frames one at a time and returns container
  bytes as GOPs complete; :class:`VideoStreamDecoder` takes bytes as they arrive and returns
  frames as they are decoded. Files are coded in bounded memory (one GOP of bytes and two
  frames), whatever the clip's length.
* **Rate.** ``quality`` 1..5 (one model: a gain per quality), or ``bitrate=`` kbps: each GOP
  then picks its quality (recorded in its head) to steer the bits spent so far to the target.
* **Truncated files** decode up to their last whole GOP, with a :class:`TruncatedVideoWarning`
  saying how many frames of how many.
* **Exact decoding.** Motion vectors and every symbol probability are integers (the P-frame
  hyperprior's exact ``h_s``, the motion coder's tables), so a file decodes to the same symbols
  on every machine; pixels can differ by a float rounding of the synthesis, which a P-frame
  inherits from its reference (measured: ``tests/test_video_codec.py``).

Header ``meta``: ``format``, ``width``, ``height``, ``fps_num``/``fps_den``, ``frames`` (absent
when a stream did not know its length), ``gop``, ``quality``, ``intra_codec``, ``color``
(``"yuv420p"``), ``bit_depth`` (8).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Optional, Union

import torch

from ncodec.codecs import container
from ncodec.codecs.base import Codec, Decoded, FileLike
from ncodec.codecs.meta import MetaField
from ncodec.codecs.registry import CodecInfo, create, register, register_weights_loader
from ncodec.codecs.shipped import describe_training, seeded, shipped_weights, training_info
from ncodec.codecs.video_gop import GOP_SUBSTREAMS, GopDecoder, GopEncoder
from ncodec.errors import BitstreamError
from ncodec.io.video import MAX_FRAME_PIXELS, YuvFrame, open_video, rgb_to_yuv420, yuv420_to_rgb
from ncodec.models import video as video_models
from ncodec.models import weights as weights_io

__all__ = ["DEFAULT_GOP", "INTRA_CODEC", "TruncatedVideoWarning", "VideoCodec", "VideoStreamDecoder",
           "VideoStreamEncoder"]

VIDEO_FORMAT = 1
CODEC_NAME = "video-ctx"
ARCH = "video-ctx"
INTRA_CODEC = "elic-gdn-vr"
INTRA_QUALITY = {1: 3, 2: 4, 3: 5, 4: 5, 5: 5}
"""The intra codec's quality for each video quality (an encoder choice: each intra frame's
image file states its own). Above the P-frames': every P-frame of a GOP inherits its intra
frame's quality. Against the image quality equal to the video quality, on bikes, chaplin and
realshort (32 frames, GOP 32, the P-frame weights at step 4500): video quality 1 gave 241.5
kbps / 31.97 dB instead of 229.4 / 31.24, quality 3 325.5 / 32.89 instead of 296.6 / 32.48
(about 10 % and 20 % fewer bits at equal PSNR-YUV)."""
QUALITIES = tuple(INTRA_QUALITY)
DEFAULT_QUALITY = 3
DEFAULT_GOP = 32
MAX_GOP = 1024
MAX_FRAMES = 2**31 - 1
_READ_BLOCK = 1 << 20  # bytes read at a time from a file being salvaged

VideoInput = Union[str, os.PathLike, torch.Tensor, Iterable[YuvFrame]]


class TruncatedVideoWarning(UserWarning):
    """A video file ended before its index: its whole GOPs were decoded, the rest is lost."""


def _fps(value: Any) -> Fraction:
    fps = Fraction(value).limit_denominator(1 << 20) if not isinstance(value, Fraction) else value
    if fps <= 0:
        raise ValueError(f"frame rate must be positive, got {value}")
    return fps


class VideoStreamEncoder:
    """Frames in, container bytes out, in bounded memory (see the module docstring).

    ``push(frame)`` returns the bytes made so far (a GOP's chunk when one completes, the header
    first); ``close()`` the rest (the last GOP, the index and the trailer).
    """

    def __init__(self, codec: "VideoCodec", width: int, height: int, fps: Any, *, frames: Optional[int] = None,
                 gop: int = DEFAULT_GOP, bitrate: Optional[float] = None):
        if not 1 <= int(gop) <= MAX_GOP:
            raise ValueError(f"gop must be 1..{MAX_GOP} frames, got {gop}")
        if width < 1 or height < 1 or width * height > MAX_FRAME_PIXELS:
            raise ValueError(f"frame size {width}x{height} is out of range (1..{MAX_FRAME_PIXELS} pixels)")
        if bitrate is not None and not bitrate > 0:
            raise ValueError(f"bitrate must be a positive kbps, got {bitrate}")
        self.codec, self.width, self.height = codec, int(width), int(height)
        self.fps, self.gop, self.bitrate = _fps(fps), int(gop), bitrate
        self.expected = frames
        self.quality = codec.quality
        self.frames = 0
        self.bits = 0
        meta = {"format": VIDEO_FORMAT, "width": self.width, "height": self.height,
                "fps_num": self.fps.numerator, "fps_den": self.fps.denominator, "gop": self.gop,
                "quality": codec.quality, "intra_codec": INTRA_CODEC, "color": "yuv420p", "bit_depth": 8}
        if frames is not None:
            meta["frames"] = int(frames)
        if bitrate is not None:
            meta["bitrate"] = float(bitrate)
        self._buffer = io.BytesIO()
        self._writer = container.ContainerWriter(self._buffer, container.Header(
            codec=codec.name, fingerprint=codec.fingerprint, modality="video", substreams=GOP_SUBSTREAMS, meta=meta))
        self._gop: Optional[GopEncoder] = None
        self.decoded: Optional[YuvFrame] = None  # the last frame as the decoder will see it

    def _take(self) -> bytes:
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data

    def push(self, frame: YuvFrame) -> bytes:
        """Code one frame (uint8 planes of the stream's size)."""
        if frame.size != (self.height, self.width):
            raise ValueError(f"frame {frame.size[1]}x{frame.size[0]} in a {self.width}x{self.height} stream")
        if self.expected is not None and self.frames >= self.expected:
            raise ValueError(f"more frames than the {self.expected} announced")
        if self._gop is None:
            self._gop = GopEncoder(self.codec.model, self.codec.intra_codec, self.height, self.width, self.quality,
                                   INTRA_QUALITY[self.quality])
        self.decoded = self._gop.add(frame)
        self.frames += 1
        if self._gop.frames == self.gop:
            self._flush_gop()
        return self._take()

    def _flush_gop(self) -> None:
        substreams = self._gop.finish()
        self._writer.add_chunk(substreams)
        self.bits += 8 * sum(len(s) for s in substreams)
        self._gop = None
        if self.bitrate is not None:
            self.quality = self._next_quality()

    def _next_quality(self) -> int:
        """The next GOP's quality: one step toward the target rate when the clip so far is more
        than 5 % off it."""
        spent = self.bits / (self.frames / float(self.fps)) / 1000
        if spent > 1.05 * self.bitrate and self.quality > QUALITIES[0]:
            return self.quality - 1
        if spent < 0.95 * self.bitrate and self.quality < QUALITIES[-1]:
            return self.quality + 1
        return self.quality

    def close(self) -> bytes:
        """The last GOP, the index and the trailer."""
        if self.expected is not None and self.frames != self.expected:
            raise ValueError(f"the stream announced {self.expected} frames and got {self.frames}")
        if self._gop is not None:
            self._flush_gop()
        self._writer.close()
        return self._take()


class VideoStreamDecoder:
    """Container bytes in, frames out: ``push(data)`` returns the frames decoded so far
    (:class:`YuvFrame`), ``close()`` checks that the stream ended with its index.

    Attributes:
        header, meta: set once the header has arrived.
    """

    def __init__(self, codec: "VideoCodec"):
        self.codec = codec
        self._reader = container.ContainerStreamReader()
        self.meta: Optional[dict] = None
        self._gops: Optional[GopDecoder] = None
        self.frames = 0

    def push(self, data: bytes) -> list[YuvFrame]:
        """Add bytes; return the frames of the GOPs they complete."""
        return list(self.iter_push(data))

    def iter_push(self, data: bytes) -> Iterator[YuvFrame]:
        """:meth:`push`, frame by frame as each is decoded."""
        chunks = self._reader.push(data)
        if self.meta is None and self._reader.header is not None:
            self.meta = self.codec.check_header(self._reader.header)
            self._gops = self.codec.gop_decoder(self.meta)
        first = self._reader.chunks_read - len(chunks)
        for i, chunk in enumerate(chunks, first):
            for frame in self._gops.frames(chunk, _gop_frames(self.meta, i)):
                self.frames += 1
                yield frame

    def close(self) -> None:
        """Check the stream is complete (BitstreamError if it ended early)."""
        self._reader.close()
        if self.meta is not None and "frames" in self.meta and self.frames != self.meta["frames"]:
            raise BitstreamError(f"video: {self.frames} frames decoded, the header says {self.meta['frames']}")


class VideoCodec(Codec):
    """The video codec (see the module docstring).

    Args:
        model: the P-frame model (:class:`ncodec.models.video.PFrameCoder`).
        quality: 1..5, the default of :meth:`compress`.
        device: where the models run (files decode alike on every device).
        name: registry name written in files.
    """

    modality = "video"
    substreams = GOP_SUBSTREAMS
    encode_options = ("gop", "bitrate")
    decode_options = ("start_gop",)
    salvages_truncated = True
    meta_schema = {
        "format": MetaField(int, choices=(VIDEO_FORMAT,)),
        "width": MetaField(int, lo=1, hi=MAX_FRAME_PIXELS), "height": MetaField(int, lo=1, hi=MAX_FRAME_PIXELS),
        "fps_num": MetaField(int, lo=1, hi=2**31 - 1), "fps_den": MetaField(int, lo=1, hi=2**31 - 1),
        "frames": MetaField(int, lo=1, hi=MAX_FRAMES, required=False),
        "gop": MetaField(int, lo=1, hi=MAX_GOP), "quality": MetaField(int, choices=QUALITIES),
        "intra_codec": MetaField(str, choices=(INTRA_CODEC,)),
        "color": MetaField(str, choices=("yuv420p",)), "bit_depth": MetaField(int, choices=(8,)),
        "bitrate": MetaField(float, lo=0, required=False),
    }

    def __init__(self, model: video_models.PFrameCoder, quality: int = DEFAULT_QUALITY,
                 device: torch.device | str = "cpu", name: str = CODEC_NAME):
        if quality not in QUALITIES:
            raise ValueError(f"quality must be one of {QUALITIES}, got {quality}")
        self.name, self.quality, self.device = name, int(quality), torch.device(device)
        self.model = model.to(self.device).eval()
        self.model.update()
        self._intra: dict[int, Any] = {}
        intra_fp = self.intra_codec(INTRA_QUALITY[DEFAULT_QUALITY]).fingerprint  # one for every quality
        self.pframe_fingerprint = video_models.model_fingerprint(self.model)
        self.fingerprint = hashlib.sha256(f"{self.pframe_fingerprint}:{intra_fp}".encode()).hexdigest()[:32]

    def __repr__(self) -> str:
        return f"VideoCodec({self.name!r}, quality={self.quality}, device={str(self.device)!r})"

    def intra_codec(self, image_quality: int):
        """The intra image codec at ``image_quality`` (built once)."""
        if image_quality not in self._intra:
            self._intra[image_quality] = create(INTRA_CODEC, image_quality, self.device)
        return self._intra[image_quality]

    # ---------------------------------------------------------------- encoding

    def stream_encoder(self, width: int, height: int, fps: Any, *, frames: Optional[int] = None,
                       gop: int = DEFAULT_GOP, bitrate: Optional[float] = None) -> VideoStreamEncoder:
        """A :class:`VideoStreamEncoder` for frames of ``width x height`` at ``fps``; ``frames``:
        the count, when known (written in the header)."""
        return VideoStreamEncoder(self, width, height, fps, frames=frames, gop=gop, bitrate=bitrate)

    def compress(self, x: VideoInput, fps: Any = None, *, gop: int = DEFAULT_GOP,
                 bitrate: Optional[float] = None) -> bytes:
        """Code a clip into one ncodec file.

        Args:
            x: a video file's path; a list of :class:`YuvFrame`; or RGB ``[T, 3, H, W]``
                (uint8, or float in [0, 1]), converted to BT.709 limited-range 4:2:0.
            fps: frames per second (a file's own rate when ``x`` is a path; default 25).
            gop: frames per GOP (random-access unit).
            bitrate: target kbps (each GOP picks its quality); None: this codec's quality.
        """
        if isinstance(x, (str, os.PathLike)):
            with open_video(x) as video:
                frames = list(video)
                fps = video.info.fps if fps is None else fps
        elif isinstance(x, torch.Tensor):
            frames = list(_rgb_frames(x))
        else:
            frames = list(x)
        if not frames:
            raise ValueError("no frames to code")
        h, w = frames[0].size
        encoder = self.stream_encoder(w, h, 25 if fps is None else fps, frames=len(frames), gop=gop, bitrate=bitrate)
        out = [encoder.push(f) for f in frames]
        out.append(encoder.close())
        return b"".join(out)

    def encode_file(self, src: FileLike, dst: FileLike, *, force: bool = False, gop: int = DEFAULT_GOP,
                    bitrate: Optional[float] = None) -> dict:
        """Code video file ``src`` (Y4M, MP4, MKV, WebM, MOV) into ``dst``, streaming: one GOP in
        memory at a time. The frames are counted first where the container does not say
        exactly (all but Y4M), so that the header holds the count."""
        from ncodec.io import atomic_output, check_output

        check_output(dst, force=force)
        with open_video(src) as video:
            info = video.info
        frames = info.frames if Path(src).suffix.lower() == ".y4m" else _count_frames(src)
        if not frames:
            raise ValueError(f"{src}: no frames")
        encoder = self.stream_encoder(info.width, info.height, info.fps, frames=frames, gop=gop, bitrate=bitrate)
        size = 0
        with atomic_output(dst, force=force) as tmp, open(tmp, "wb") as out, open_video(src) as video:
            for frame in video:
                size += out.write(encoder.push(frame))
            size += out.write(encoder.close())
        return {"bytes_in": os.path.getsize(src), "bytes_out": size, "meta": _header_meta(dst)}

    # ---------------------------------------------------------------- decoding

    def check_meta(self, meta: dict, header: container.Header) -> dict:
        if meta["width"] * meta["height"] > MAX_FRAME_PIXELS:
            raise BitstreamError(f"video file claims {meta['width']}x{meta['height']} frames, more than "
                                 f"{MAX_FRAME_PIXELS:,} pixels")
        return meta

    def gop_decoder(self, meta: dict) -> GopDecoder:
        """The GOP decoder of a file with this (checked) meta."""
        return GopDecoder(self.model, self.intra_codec, meta["height"], meta["width"], meta["gop"], QUALITIES)

    def iter_frames(self, source: Union[bytes, BinaryIO], start_gop: int = 0) -> Iterator[YuvFrame]:
        """The frames of a whole file (bytes, or a seekable binary file), from GOP ``start_gop``
        on, each as it is decoded; reads one GOP at a time.

        Raises:
            ncodec.BitstreamError: damaged or foreign file; ValueError: no such GOP.
        """
        reader = container.ContainerReader(source)
        meta = self.check_header(reader.header)
        if "frames" in meta and reader.num_chunks != -(-meta["frames"] // meta["gop"]):
            raise BitstreamError(f"video file has {reader.num_chunks} GOPs, its header's {meta['frames']} "
                                 f"frames make {-(-meta['frames'] // meta['gop'])}")
        if not 0 <= start_gop < max(reader.num_chunks, 1):
            raise ValueError(f"start GOP {start_gop} is not in 0..{reader.num_chunks - 1}")
        gops = self.gop_decoder(meta)
        for i in range(start_gop, reader.num_chunks):
            yield from gops.frames(reader.chunk(i), _gop_frames(meta, i))

    def decompress_frames(self, data: bytes, start_gop: int = 0) -> list[YuvFrame]:
        """Every frame of a file (from GOP ``start_gop``) as 8-bit 4:2:0 frames; a truncated file
        gives its whole GOPs and a :class:`TruncatedVideoWarning`."""
        return list(self._frames_salvaging(io.BytesIO(bytes(data)), start_gop)[1])

    def decompress(self, data: bytes, start_gop: int = 0) -> Decoded:
        """The clip as RGB float ``[T, 3, H, W]`` in [0, 1] (BT.709), ``frame_rate`` set."""
        meta, frames = self._frames_salvaging(io.BytesIO(bytes(data)), start_gop)
        return _rgb_decoded(meta, frames)

    def decode_chunks(self, header: container.Header, meta: dict, chunks: list[list[bytes]]) -> Decoded:
        gops = self.gop_decoder(meta)
        return _rgb_decoded(meta, (f for i, c in enumerate(chunks) for f in gops.frames(c, _gop_frames(meta, i))))

    def _frames_salvaging(self, f: BinaryIO, start_gop: int) -> tuple[dict, Iterator[YuvFrame]]:
        """``(meta, frames)`` of a whole file, or of a truncated one's whole GOPs (warning)."""
        try:
            reader = container.ContainerReader(f)
        except BitstreamError as exc:
            f.seek(0)
            header = container.read_header(f)
            meta = self.check_header(header)
            f.seek(0)
            return meta, self._salvage(f, meta, start_gop, str(exc))
        meta = self.check_header(reader.header)
        f.seek(0)
        return meta, self.iter_frames(f, start_gop)

    def _salvage(self, f: BinaryIO, meta: dict, start_gop: int, why: str) -> Iterator[YuvFrame]:
        """The whole GOPs at the front of a file that has no valid index (truncated)."""
        stream = container.ContainerStreamReader()
        gops = self.gop_decoder(meta)
        index = frames = 0
        failure = why
        while True:
            block = f.read(_READ_BLOCK)
            if not block:
                break
            try:
                chunks = stream.push(block)
            except BitstreamError as exc:
                failure = str(exc)
                chunks = []
                block = b""
            for chunk in chunks:
                if index >= start_gop:
                    for frame in gops.frames(chunk, _gop_frames(meta, index)):
                        frames += 1
                        yield frame
                index += 1
            if not block:
                break
        total = f"of {meta['frames']} " if "frames" in meta else ""
        warnings.warn(TruncatedVideoWarning(
            f"video file is truncated or damaged after GOP {index - 1} ({failure}): decoded its {index} whole "
            f"GOP(s), {frames} frame(s) {total}from GOP {start_gop}"), stacklevel=3)

    def stream_decoder(self) -> VideoStreamDecoder:
        """A :class:`VideoStreamDecoder` (bytes in as they arrive, frames out as decoded)."""
        return VideoStreamDecoder(self)

    def decode_file(self, src: FileLike, dst: FileLike, *, force: bool = False, suffix: Optional[str] = None,
                    start_gop: int = 0) -> dict:
        """Decode ``src`` into a Y4M or MP4/MKV file (lossless H.264), streaming frame by frame,
        from GOP ``start_gop``; a truncated file gives its whole GOPs and a warning."""
        from ncodec.io import check_output
        from ncodec.io.video import VideoWriter

        if hasattr(dst, "write"):
            raise ValueError("video is decoded to a named file (in bounded memory), not a stream")
        check_output(dst, force=force)
        with (open(src, "rb") if not hasattr(src, "read") else contextlib.nullcontext(src)) as f:
            meta, frames = self._frames_salvaging(f, start_gop)
            fps = Fraction(meta["fps_num"], meta["fps_den"])
            with VideoWriter(dst, meta["width"], meta["height"], fps, force=force) as writer:
                for frame in frames:
                    writer.write(frame)
            size_in = f.seek(0, os.SEEK_END)
        return {"bytes_in": size_in, "bytes_out": os.path.getsize(dst), "meta": meta, "frames": writer.frames}

    def describe_file(self, meta: dict, size: int) -> str:
        text = super().describe_file(meta, size)
        return f"{text}, {meta.get('frames', '?')} frames of {meta['width']}x{meta['height']}, GOP {meta['gop']}"


def _rgb_decoded(meta: dict, frames: Iterable[YuvFrame]) -> Decoded:
    """Decoded frames as the clip's :class:`Decoded`: RGB float ``[T, 3, H, W]`` in [0, 1]."""
    rgb = torch.stack([yuv420_to_rgb(f).clamp_(0, 1) for f in frames])
    return Decoded(rgb, "video", frame_rate=meta["fps_num"] / meta["fps_den"], meta=meta)


def _gop_frames(meta: dict, index: int) -> Optional[int]:
    """Frames GOP ``index`` holds by the header (None when it states no count); BitstreamError
    for a GOP past the stated frames."""
    if "frames" not in meta:
        return None
    left = meta["frames"] - index * meta["gop"]
    if left <= 0:
        raise BitstreamError(f"video file has a GOP {index} past its {meta['frames']} frames")
    return min(meta["gop"], left)


def _rgb_frames(x: torch.Tensor) -> Iterator[YuvFrame]:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"RGB video must be [T, 3, H, W], got {tuple(x.shape)}")
    for frame in x:
        rgb = frame.float() / 255 if frame.dtype == torch.uint8 else frame.float()
        yield rgb_to_yuv420(rgb)


def _count_frames(path: str | os.PathLike) -> int:
    with open_video(path) as video:
        return sum(1 for _ in video)


def _header_meta(path: FileLike) -> dict:
    with open(path, "rb") as f:
        return container.read_header(f).meta


# -------------------------------------------------------------------- registry

def _model(path: Optional[Path]) -> video_models.PFrameCoder:
    """The P-frame model in ``path``, or (None) one seeded by the codec's name: the same on
    every machine, so that its files decode anywhere."""
    if path is not None:
        return weights_io.load_weights(path, arch=ARCH)
    return seeded(CODEC_NAME, lambda: video_models.build_pframe_model(ARCH))


def _codec_info(path: Optional[Path], description: str = "") -> CodecInfo:
    return CodecInfo(name=CODEC_NAME, modality="video", qualities=QUALITIES, default_quality=DEFAULT_QUALITY,
                     default=True, description=description or (
                         "learned video codec: elic-gdn-vr intra frames, contextual P-frames (block motion, "
                         "conditional transforms, exact hyperprior), GOP random access"),
                     weights=describe_training(training_info(path)), trained=path is not None)


def _from_weights(path: Path, quality: Optional[int], device: torch.device) -> tuple[CodecInfo, VideoCodec]:
    """A P-frame weights file (``ncodec train video``'s export) as (its CodecInfo, a codec)."""
    info = _codec_info(path, f"video-ctx with the P-frame weights {path}")
    codec = VideoCodec(_model(path), DEFAULT_QUALITY if quality is None else quality, device)
    return info, codec


register_weights_loader("ncodec-video-weights-v1", _from_weights)
register(_codec_info(shipped_weights(CODEC_NAME)),
         lambda quality, device: VideoCodec(_model(shipped_weights(CODEC_NAME)), quality, device))
