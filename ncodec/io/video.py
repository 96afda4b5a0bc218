"""Video files as streams of YUV 4:2:0 frames: read from Y4M (parsed here) or from anything
FFmpeg reads through PyAV (MP4, MKV, WebM, MOV, ...); written as Y4M or, for viewing, as
lossless H.264 (MP4/MKV) through PyAV. Frames come and go one at a time, so memory stays
bounded by a frame whatever the clip's length.

A frame is a :class:`YuvFrame`: three uint8 planes, ``y [H, W]``, ``u`` and ``v
[ceil(H / 2), ceil(W / 2)]`` (8-bit 4:2:0, the format of video test sequences and of the
codec's input). Odd sizes are kept as they are: the chroma planes round up.
:func:`yuv420_to_rgb` and :func:`rgb_to_yuv420` convert (BT.709, limited range) for the
models and metrics that work on RGB.

The ``video`` modality is registered here: it claims .y4m, .mp4, .mkv, .webm, .mov and .avi
(the audio modality still reads their audio track when asked by ``--codec``), decodes to
.y4m / .mp4 / .mkv, and states rates in kbps (a file's bits over its frames' seconds).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, NamedTuple, Optional

import numpy as np

from ncodec.io.modality import Modality, register_modality

if TYPE_CHECKING:  # torch loads in the functions that need it
    import torch

__all__ = ["MAX_FRAME_PIXELS", "VIDEO_OUT_SUFFIXES", "VIDEO_SUFFIXES", "VideoInfo", "VideoReader", "VideoWriter",
           "YuvFrame", "from_av_frame", "open_video", "rgb_to_yuv420", "to_av_frame", "yuv420_to_rgb"]

VIDEO_SUFFIXES = (".y4m", ".mp4", ".mkv", ".webm", ".mov", ".avi")
VIDEO_OUT_SUFFIXES = (".y4m", ".mp4", ".mkv")
MAX_FRAME_PIXELS = 1 << 26
"""The largest frame (width x height) a reader accepts: 8K is 2^25. A hostile header cannot
make the reader allocate more than one such frame."""

_Y4M_MAGIC = b"YUV4MPEG2"
_Y4M_HEADER_LIMIT = 1024  # bytes of a header line (real ones are under 100)
# 8-bit 4:2:0 colourspace tags (chroma siting differs, the samples' layout does not)
_Y4M_420 = {None, "420", "420jpeg", "420paldv", "420mpeg2"}


class YuvFrame(NamedTuple):
    """One 8-bit 4:2:0 frame: ``y`` uint8 ``[H, W]``, ``u`` and ``v`` uint8 ``[ceil(H/2), ceil(W/2)]``."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the luma plane."""
        return self.y.shape[0], self.y.shape[1]


@dataclass(frozen=True)
class VideoInfo:
    """What a video stream is.

    Attributes:
        width, height: luma size in pixels.
        fps: frames per second, exact (a fraction, e.g. 30000/1001).
        frames: the frame count where the file states it (Y4M: from its size; PyAV: the
            container's count), else None (count by reading).
    """

    width: int
    height: int
    fps: Fraction
    frames: Optional[int]


# BT.709 (ITU-R BT.709-6): luma weights; limited ("TV") range: Y in 16..235, U and V in 16..240.
_KR, _KB = 0.2126, 0.0722
_KG = 1 - _KR - _KB


def yuv420_to_rgb(frame: YuvFrame) -> "torch.Tensor":
    """An 8-bit 4:2:0 frame (BT.709, limited range) as float32 RGB ``[3, H, W]``, nominally in
    [0, 1] but **not clipped**: real clips hold values outside the limited range (superwhites
    above Y 235, saturated chroma), and :func:`rgb_to_yuv420` gives them back only if they are
    kept; a caller that needs [0, 1] clamps. Each chroma sample covers its 2x2 luma pixels
    (nearest upsampling), so that :func:`rgb_to_yuv420`, which averages 2x2 blocks, gives the
    chroma back."""
    import torch

    h, w = frame.size
    y = (torch.from_numpy(frame.y.astype(np.float32)) - 16) / 219
    u, v = ((torch.from_numpy(p.astype(np.float32)) - 128) / 224 for p in (frame.u, frame.v))
    u, v = (c.repeat_interleave(2, 0).repeat_interleave(2, 1)[:h, :w] for c in (u, v))
    r = y + 2 * (1 - _KR) * v
    b = y + 2 * (1 - _KB) * u
    g = (y - _KR * r - _KB * b) / _KG
    return torch.stack([r, g, b])


def rgb_to_yuv420(rgb: "torch.Tensor") -> YuvFrame:
    """Float RGB ``[3, H, W]`` (nominally [0, 1]) as an 8-bit 4:2:0 frame (BT.709, limited
    range): chroma is the mean of each 2x2 block (edge pixels repeated for odd sizes), all
    planes rounded to the nearest integer and clipped to 0..255."""
    import torch
    import torch.nn.functional as F

    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb_to_yuv420 needs [3, H, W], got {tuple(rgb.shape)}")
    x = rgb.detach().float().cpu()
    r, g, b = x
    y = _KR * r + _KG * g + _KB * b
    u, v = (b - y) / (2 * (1 - _KB)), (r - y) / (2 * (1 - _KR))
    h, w = y.shape
    chroma = F.pad(torch.stack([u, v])[None], (0, w % 2, 0, h % 2), mode="replicate")
    u, v = F.avg_pool2d(chroma, 2)[0]

    def to8(t: torch.Tensor, scale: float, offset: float) -> np.ndarray:
        return (t * scale + offset).round_().clamp_(0, 255).to(torch.uint8).numpy()

    return YuvFrame(to8(y, 219, 16), to8(u, 224, 128), to8(v, 224, 128))


def from_av_frame(frame: Any) -> YuvFrame:
    """A decoded PyAV ``VideoFrame`` as a :class:`YuvFrame` (converted to yuv420p if it is not;
    its planes, padded to their line size, cropped to their width)."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    w, h = frame.width, frame.height
    sizes = ((h, w), (_chroma(h), _chroma(w)), (_chroma(h), _chroma(w)))
    return YuvFrame(*(np.ascontiguousarray(np.frombuffer(p, np.uint8)[: rows * p.line_size].reshape(rows, p.line_size)[:, :cols])
                      for p, (rows, cols) in zip(frame.planes, sizes)))


def to_av_frame(frame: YuvFrame) -> Any:
    """A :class:`YuvFrame` of even size as a PyAV yuv420p ``VideoFrame`` (for an encoder)."""
    import av

    h, w = frame.size
    # yuv420p as one array: the Y rows, then U and V each folded into H/4 rows of W
    packed = np.concatenate([p.reshape(-1) for p in frame]).reshape(h * 3 // 2, w)
    return av.VideoFrame.from_ndarray(packed, format="yuv420p")


def _chroma(n: int) -> int:
    return (n + 1) // 2


def _frame_bytes(width: int, height: int) -> int:
    return width * height + 2 * _chroma(width) * _chroma(height)


def _check_size(width: int, height: int, path: object) -> None:
    if width < 1 or height < 1 or width * height > MAX_FRAME_PIXELS:
        raise ValueError(f"{path}: frame size {width}x{height} is out of range (1 .. {MAX_FRAME_PIXELS} pixels)")


def _check_frame(frame: YuvFrame, width: int, height: int) -> YuvFrame:
    """``frame`` as C-contiguous uint8 planes of the stream's size, or ValueError."""
    planes = [np.asarray(p) for p in frame]
    expected = [(height, width), (_chroma(height), _chroma(width)), (_chroma(height), _chroma(width))]
    for name, plane, shape in zip("yuv", planes, expected):
        if plane.dtype != np.uint8 or plane.shape != shape:
            raise ValueError(f"frame plane {name} is {plane.dtype} {plane.shape}, the stream needs uint8 {shape}")
    return YuvFrame(*(np.ascontiguousarray(p) for p in planes))


class VideoReader:
    """A video file, read one frame at a time: ``info``, then iterate for :class:`YuvFrame`.

    >>> with open_video("clip.y4m") as video:
    ...     print(video.info.width, video.info.fps)
    ...     for frame in video:                  # YuvFrame, 8-bit 4:2:0
    ...         ...

    Raises ValueError (naming the path) for a file that is not a video, has no video stream, a
    frame size out of range, a Y4M colour format other than 8-bit 4:2:0, or a damaged or
    truncated frame (raised when iteration reaches it, after the whole frames before it).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise (FileNotFoundError if not self.path.exists() else ValueError)(f"{path}: no such video file")
        self._file: Optional[BinaryIO] = None
        self._container: Any = None
        if self.path.suffix.lower() == ".y4m":
            self._file = open(self.path, "rb")
            try:
                self.info, self._data_start = _read_y4m_header(self._file, self.path)
            except BaseException:
                self.close()
                raise
        else:
            self.info = self._open_av()

    def _open_av(self) -> VideoInfo:
        import av

        try:
            self._container = av.open(str(self.path))
        except Exception as exc:  # PyAV raises many kinds (FFmpegError, OSError, ...)
            raise ValueError(f"{self.path}: not a readable video file ({exc})") from None
        streams = self._container.streams.video
        if not streams:
            self.close()
            raise ValueError(f"{self.path}: no video stream")
        stream = streams[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        try:
            _check_size(width, height, self.path)
        except ValueError:
            self.close()
            raise
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            self.close()
            raise ValueError(f"{self.path}: the video stream states no frame rate")
        return VideoInfo(width, height, Fraction(rate), int(stream.frames) or None)

    def __iter__(self) -> Iterator[YuvFrame]:
        if self._file is not None:
            return self._y4m_frames()
        if self._container is not None:
            return self._av_frames()
        raise ValueError(f"{self.path}: the reader is closed")

    def _y4m_frames(self) -> Iterator[YuvFrame]:
        f, (w, h) = self._file, (self.info.width, self.info.height)
        cw, ch = _chroma(w), _chroma(h)
        f.seek(self._data_start)
        index = 0
        while True:
            marker = f.readline(_Y4M_HEADER_LIMIT)
            if not marker:
                return
            if not marker.startswith(b"FRAME") or not marker.endswith(b"\n") or marker[5:6] not in (b"\n", b" "):
                raise ValueError(f"{self.path}: frame {index} does not start with a FRAME line")
            data = f.read(_frame_bytes(w, h))
            if len(data) != _frame_bytes(w, h):
                raise ValueError(f"{self.path}: truncated at frame {index} ({len(data)} of {_frame_bytes(w, h)} bytes)")
            buf = np.frombuffer(data, np.uint8)
            yield YuvFrame(buf[: w * h].reshape(h, w), buf[w * h: w * h + cw * ch].reshape(ch, cw),
                           buf[w * h + cw * ch:].reshape(ch, cw))
            index += 1

    def _av_frames(self) -> Iterator[YuvFrame]:
        w, h = self.info.width, self.info.height
        stream = self._container.streams.video[0]
        try:
            for frame in self._container.decode(stream):
                if (frame.width, frame.height) != (w, h):
                    raise ValueError(f"{self.path}: the frame size changes mid-stream ({frame.width}x{frame.height})")
                yield from_av_frame(frame)
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"{self.path}: video could not be decoded ({exc})") from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_video(path: str | os.PathLike) -> VideoReader:
    """A :class:`VideoReader` on ``path`` (Y4M parsed here; other suffixes through PyAV)."""
    return VideoReader(path)


def _read_y4m_header(f: BinaryIO, path: object) -> tuple[VideoInfo, int]:
    """Parse a YUV4MPEG2 stream header: (info, offset of the first FRAME line)."""
    line = f.readline(_Y4M_HEADER_LIMIT)
    if not line.startswith(_Y4M_MAGIC + b" ") or not line.endswith(b"\n"):
        raise ValueError(f"{path}: not a Y4M file (no YUV4MPEG2 header line)")
    try:
        tokens = line[len(_Y4M_MAGIC):].decode("ascii").split()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: Y4M header is not ASCII") from None
    fields: dict[str, str] = {}
    for token in tokens:
        fields.setdefault(token[0], token[1:])  # the first of a repeated tag counts
    try:
        width, height = int(fields["W"]), int(fields["H"])
    except (KeyError, ValueError):
        raise ValueError(f"{path}: Y4M header needs W and H") from None
    _check_size(width, height, path)
    match = re.fullmatch(r"(\d{1,9}):(\d{1,9})", fields.get("F", ""))
    if not match or int(match[1]) == 0 or int(match[2]) == 0:
        raise ValueError(f"{path}: Y4M header needs a frame rate F<num>:<den> (both > 0)")
    fps = Fraction(int(match[1]), int(match[2]))
    if fields.get("C") not in _Y4M_420:
        raise ValueError(f"{path}: Y4M colour format C{fields['C']} is not supported (8-bit 4:2:0 only)")
    if fields.get("I", "p") not in ("p", "?"):
        raise ValueError(f"{path}: interlaced Y4M (I{fields['I']}) is not supported")
    start = f.tell()
    # Every frame is 'FRAME\n' + its planes when no frame carries parameters: then the size says
    # how many there are. Otherwise (or a partial frame) the count is left to the reader.
    payload = os.fstat(f.fileno()).st_size - start
    per_frame = len(b"FRAME\n") + _frame_bytes(width, height)
    frames = payload // per_frame if payload % per_frame == 0 else None
    return VideoInfo(width, height, fps, frames), start


class VideoWriter:
    """Stream :class:`YuvFrame` s to a video file, atomically: Y4M (``.y4m``, 4:2:0 as given), or
    lossless H.264 (``.mp4``, ``.mkv``; libx264 at QP 0, 4:2:0: the frames decode back exactly).

    >>> with VideoWriter("out.y4m", width, height, fps) as w:
    ...     w.write(frame)

    Frames go to a temporary file beside the target (:func:`ncodec.io.atomic_output`), renamed
    into place when the ``with`` block ends without an exception; on an exception the temporary
    file is removed and an existing target is left untouched. An existing file is replaced only
    if ``force``. H.264 needs even sizes: an odd-sized clip is written as Y4M only.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: Fraction | int | float, *,
                 force: bool = False) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_OUT_SUFFIXES:
            raise ValueError(f"{path}: video is written as {', '.join(VIDEO_OUT_SUFFIXES)}")
        _check_size(width, height, path)
        self.fps = Fraction(fps).limit_denominator(1 << 20)
        if self.fps <= 0:
            raise ValueError(f"{path}: frame rate must be positive, got {fps}")
        if suffix != ".y4m" and (width % 2 or height % 2):
            raise ValueError(f"{path}: H.264 needs an even frame size, not {width}x{height}: write .y4m")
        self.width, self.height, self.force, self.frames = int(width), int(height), force, 0
        self._y4m = suffix == ".y4m"
        self._output: Any = None
        self._file: Any = None
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> "VideoWriter":
        from ncodec.io import atomic_output

        output = atomic_output(self.path, force=self.force)
        tmp = output.__enter__()
        try:
            if self._y4m:
                self._file = open(tmp, "wb")
                self._file.write(f"YUV4MPEG2 W{self.width} H{self.height} F{self.fps.numerator}:{self.fps.denominator} "
                                 f"Ip A1:1 C420jpeg\n".encode("ascii"))
            else:
                import av

                self._container = av.open(str(tmp), "w", format=self.path.suffix.lower().lstrip(".").replace("mkv", "matroska"))
                self._stream = self._container.add_stream("libx264", rate=self.fps)
                self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
                self._stream.options = {"qp": "0", "preset": "medium"}
        except BaseException as exc:
            self._close_files()
            output.__exit__(type(exc), exc, exc.__traceback__)  # removes the temporary file
            raise
        self._output = output
        return self

    def write(self, frame: YuvFrame) -> None:
        """Append one frame of the stream's size (uint8 planes)."""
        if self._output is None:
            raise RuntimeError("VideoWriter.write outside its with block")
        frame = _check_frame(frame, self.width, self.height)
        if self._y4m:
            self._file.write(b"FRAME\n")
            for plane in frame:
                self._file.write(plane.tobytes())
        else:
            import av

            out = to_av_frame(frame)
            out.pts = self.frames
            for packet in self._stream.encode(out):
                self._container.mux(packet)
        self.frames += 1

    def _close_files(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._container is not None:
            try:
                if self._stream is not None:
                    for packet in self._stream.encode(None):  # flush the encoder
                        self._container.mux(packet)
            finally:
                self._container.close()
                self._container = self._stream = None

    def __exit__(self, exc_type, exc, tb) -> None:
        from ncodec.io import close_atomic

        output = self._output
        self._output = None
        close_atomic(output, self._close_files, exc_type, exc, tb)  # Matroska/MP4 write their index on close


def _seconds(meta: dict) -> float:
    return meta["frames"] * meta["fps_den"] / meta["fps_num"]  # a file's kilobits over its seconds: kbps


register_modality(Modality("video", input_suffixes=VIDEO_SUFFIXES, output_suffixes=VIDEO_OUT_SUFFIXES,
                           rate_unit="kbps", rate_basis=_seconds, rate_divisor=1000, streams_only=True))
