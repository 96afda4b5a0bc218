"""Classical video codecs to compare against: x264, x265 and SVT-AV1, through PyAV (FFmpeg).

Each baseline codes a clip's 8-bit 4:2:0 frames at a CRF (constant rate factor: lower is
better and larger) into a complete Matroska file in memory, and decodes it back frame by
frame. Settings (medium-like presets, the encoders' own GOP and B-frame choices unless
``gop`` is given):

- ``x264``: libx264, ``preset medium`` (CRF 0-51; 23 is its default).
- ``x265``: libx265, ``preset medium`` (CRF 0-51; 28 is its default).
- ``svt-av1``: libsvtav1, ``preset 8`` (CRF 1-63; the real-time end of its "medium" range:
  presets 0-13, 13 fastest).

:func:`code_clip` streams: frames are read from the file once to encode and once more to
compare with the decoded ones, so memory holds one frame of each plus the compressed bytes.
The bytes counted are the whole file (container included). Times are wall-clock seconds: the
encoder's calls alone (reading the source is not timed), and a whole decode of the file to
4:2:0 arrays, run on its own before the (untimed) decode that the metrics read.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from ncodec.eval.video_metrics import psnr_yuv
from ncodec.io.video import VideoInfo, YuvFrame, from_av_frame, open_video, to_av_frame

__all__ = ["VIDEO_BASELINES", "CodedClip", "VideoBaseline", "code_clip", "get_video_baseline",
           "parse_video_baselines"]


@dataclass(frozen=True)
class VideoBaseline:
    """One classical encoder: its PyAV name, options and CRF range."""

    name: str
    encoder: str
    options: dict
    crf_range: tuple[int, int]

    def check_crf(self, crf: int) -> int:
        lo, hi = self.crf_range
        if not isinstance(crf, (int, np.integer)) or not lo <= crf <= hi:
            raise ValueError(f"{self.name}: CRF must be an integer in {lo}..{hi}, got {crf!r}")
        return int(crf)

    def encode(self, frames: Iterable[YuvFrame], width: int, height: int, fps: Fraction, crf: int, *,
               gop: Optional[int] = None, threads: int = 2) -> tuple[bytes, int, float]:
        """(the Matroska file's bytes, frames coded, encoder seconds) of ``frames`` at ``crf``."""
        import av

        crf = self.check_crf(crf)
        if width % 2 or height % 2:
            raise ValueError(f"{self.name}: 4:2:0 needs an even frame size, not {width}x{height}")
        buf = io.BytesIO()
        seconds, count = 0.0, 0
        with av.open(buf, "w", format="matroska") as container:
            stream = container.add_stream(self.encoder, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            options = {**self.options, "crf": str(crf)}
            if self.encoder == "libsvtav1":  # its thread count is its own parameter, not FFmpeg's
                options["svtav1-params"] = f"lp={threads}"
                os.environ.setdefault("SVT_LOG", "1")  # errors only: its banner goes to stdout otherwise
            if gop is not None:
                stream.codec_context.gop_size = int(gop)
            stream.options = options
            stream.codec_context.thread_count = threads
            for frame in frames:
                out = to_av_frame(frame)
                out.pts, out.time_base = count, 1 / Fraction(fps)  # one tick per frame
                start = time.perf_counter()
                packets = stream.encode(out)
                seconds += time.perf_counter() - start
                for packet in packets:
                    container.mux(packet)
                count += 1
            start = time.perf_counter()
            packets = stream.encode(None)
            seconds += time.perf_counter() - start
            for packet in packets:
                container.mux(packet)
        return buf.getvalue(), count, seconds

    def decode(self, data: bytes, width: int, height: int, *, threads: int = 2) -> Iterator[YuvFrame]:
        """The frames of ``data`` (one of :meth:`encode`'s files), one at a time."""
        import av

        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = threads
            for frame in container.decode(stream):
                if (frame.width, frame.height) != (width, height):
                    raise ValueError(f"{self.name}: decoded a {frame.width}x{frame.height} frame, coded {width}x{height}")
                yield from_av_frame(frame)


VIDEO_BASELINES: dict[str, VideoBaseline] = {
    "x264": VideoBaseline("x264", "libx264", {"preset": "medium"}, (0, 51)),
    "x265": VideoBaseline("x265", "libx265", {"preset": "medium", "x265-params": "log-level=error"}, (0, 51)),
    "svt-av1": VideoBaseline("svt-av1", "libsvtav1", {"preset": "8"}, (1, 63)),
}


def get_video_baseline(name: str) -> VideoBaseline:
    try:
        return VIDEO_BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown video baseline {name!r} (known: {', '.join(VIDEO_BASELINES)})") from None


def parse_video_baselines(text: str | Sequence[str]) -> list[str]:
    """Baseline names from ``"x264,x265"`` or a list; each checked."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    for n in names:
        get_video_baseline(n)
    return names


@dataclass
class CodedClip:
    """One clip coded by a baseline at one CRF.

    Attributes:
        baseline, crf, gop: what coded it (``gop`` None: the encoder's own).
        info: the source's size and rate; ``frames``: how many were coded.
        bytes: the file's size; ``kbps``: ``8 * bytes / 1000`` over the frames' duration.
        per_frame: each decoded frame's :func:`~ncodec.eval.video_metrics.psnr_yuv`.
        encode_seconds, decode_seconds: the encoder's and decoder's wall time.
    """

    baseline: str
    crf: int
    gop: Optional[int]
    info: VideoInfo
    frames: int
    bytes: int
    per_frame: list[dict] = field(default_factory=list)
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0

    @property
    def kbps(self) -> float:
        return 8 * self.bytes / 1000 / (self.frames / float(self.info.fps))

    def mean(self, metric: str) -> float:
        return float(np.mean([f[metric] for f in self.per_frame]))


def _first(frames: Iterable[YuvFrame], limit: Optional[int]) -> Iterator[YuvFrame]:
    for i, f in enumerate(frames):
        if limit is not None and i >= limit:
            return
        yield f


def code_clip(name: str, path: str | os.PathLike, crf: int, *, gop: Optional[int] = None,
              max_frames: Optional[int] = None, threads: int = 2) -> CodedClip:
    """Code the video file ``path`` (its first ``max_frames`` frames) with baseline ``name`` at
    ``crf``; decode it and measure every frame against the source (streamed)."""
    baseline = get_video_baseline(name)
    with open_video(path) as video:
        info = video.info
        data, count, enc_s = baseline.encode(_first(video, max_frames), info.width, info.height, info.fps, crf,
                                             gop=gop, threads=threads)
    if count == 0:
        raise ValueError(f"{path}: no frames to code")
    # the decoder timed alone (frame threads may work between calls), then once more to measure
    start = time.perf_counter()
    for _ in baseline.decode(data, info.width, info.height, threads=threads):
        pass
    dec_s = time.perf_counter() - start
    per_frame = []
    with open_video(path) as video:
        decoded = baseline.decode(data, info.width, info.height, threads=threads)
        for ref, deg in zip(_first(video, count), decoded):
            per_frame.append(psnr_yuv(ref, deg))
        if len(per_frame) != count or next(decoded, None) is not None:
            raise ValueError(f"{name}: decoded {len(per_frame)}+ frames of {count} coded")
    return CodedClip(name, int(crf), gop, info, count, len(data), per_frame, enc_s, dec_s)
