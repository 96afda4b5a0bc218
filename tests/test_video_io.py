"""Video I/O (ncodec.io.video): Y4M and PyAV readers, Y4M and lossless H.264 writers, streaming
in bounded memory, and hostile Y4M headers and frames."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from ncodec.io.video import MAX_FRAME_PIXELS, VideoWriter, YuvFrame, open_video, rgb_to_yuv420, yuv420_to_rgb

CLIP = Path(__file__).resolve().parent / "data" / "video" / "realshort.mp4"  # H.264 320x240, 36 frames


@pytest.fixture(scope="module")
def clip_frames() -> list[YuvFrame]:
    with open_video(CLIP) as video:
        return list(video)


def _same(a: YuvFrame, b: YuvFrame) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a, b))


def _write_y4m(path: Path, frames: list[YuvFrame], fps=Fraction(30000, 1001)) -> None:
    h, w = frames[0].size
    with VideoWriter(path, w, h, fps) as out:
        for f in frames:
            out.write(f)


def test_mp4_reads_as_yuv420_frames(clip_frames):
    with open_video(CLIP) as video:
        info = video.info
    assert (info.width, info.height, info.frames) == (320, 240, 36)
    assert info.fps == Fraction(45000, 1499)  # the container's exact rate
    assert len(clip_frames) == 36
    f = clip_frames[0]
    assert f.y.shape == (240, 320) and f.u.shape == f.v.shape == (120, 160) and f.y.dtype == np.uint8
    assert 20 < f.y.mean() < 235 and f.y.std() > 10  # a real picture, not a blank


def test_y4m_round_trip_is_exact(tmp_path, clip_frames):
    path = tmp_path / "clip.y4m"
    _write_y4m(path, clip_frames[:5])
    with open_video(path) as video:
        assert (video.info.width, video.info.height, video.info.frames) == (320, 240, 5)
        assert video.info.fps == Fraction(30000, 1001)
        back = list(video)
    assert len(back) == 5 and all(_same(a, b) for a, b in zip(back, clip_frames))
    assert path.read_bytes().startswith(b"YUV4MPEG2 W320 H240 F30000:1001 ")


def test_odd_sizes_keep_rounded_up_chroma(tmp_path, clip_frames):
    f = clip_frames[3]
    odd = YuvFrame(f.y[:37, :51], f.u[:19, :26], f.v[:19, :26])
    path = tmp_path / "odd.y4m"
    _write_y4m(path, [odd, odd])
    with open_video(path) as video:
        back = list(video)
    assert video.info.width == 51 and video.info.height == 37
    assert len(back) == 2 and _same(back[1], odd)
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "odd.mp4", 51, 37, 30)
    with pytest.raises(ValueError, match="plane u"):
        with VideoWriter(tmp_path / "bad.y4m", 51, 37, 30) as out:
            out.write(YuvFrame(f.y[:37, :51], f.u[:18, :26], f.v[:19, :26]))
    assert not (tmp_path / "bad.y4m").exists()  # an error inside the block leaves no file


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_lossless_h264_decodes_back_exactly(tmp_path, clip_frames, suffix):
    path = tmp_path / f"clip{suffix}"
    frames = clip_frames[:4]
    with VideoWriter(path, 320, 240, Fraction(25)) as out:
        for f in frames:
            out.write(f)
    with open_video(path) as video:
        assert (video.info.width, video.info.height) == (320, 240) and video.info.fps == 25
        back = list(video)
    assert len(back) == 4 and all(_same(a, b) for a, b in zip(back, frames))


def test_writer_never_replaces_what_it_was_not_told_to(tmp_path, clip_frames):
    path = tmp_path / "keep.y4m"
    path.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError):
        with VideoWriter(path, 320, 240, 30) as out:
            out.write(clip_frames[0])
    assert path.read_bytes() == b"the user's file"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, 320, 240, 30, force=True) as out:
            out.write(clip_frames[0])
            raise RuntimeError("boom")
    assert path.read_bytes() == b"the user's file"  # a failed write leaves the old file
    assert [p.name for p in tmp_path.iterdir()] == ["keep.y4m"]  # and no temporary file


def test_long_clips_stream_in_bounded_memory(tmp_path, clip_frames):
    """240 frames (27 MB of Y4M) read and written one frame at a time: the Python heap's peak
    stays within a few frames (115 KB each)."""
    path, copy = tmp_path / "long.y4m", tmp_path / "copy.y4m"
    _write_y4m(path, [clip_frames[i % len(clip_frames)] for i in range(240)])
    assert path.stat().st_size > 27e6
    tracemalloc.start()
    try:
        count = 0
        with open_video(path) as video, VideoWriter(copy, 320, 240, video.info.fps) as out:
            for f in video:
                out.write(f)
                count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 240 and peak < 1_000_000
    assert copy.read_bytes() == path.read_bytes()


def _y4m(tmp_path: Path, header: bytes, body: bytes = b"") -> Path:
    path = tmp_path / "hostile.y4m"
    path.write_bytes(header + body)
    return path


@pytest.mark.parametrize("header, message", [
    (b"YUV4MPEG W16 H16 F30:1\n", "not a Y4M"),
    (b"YUV4MPEG2 H16 F30:1\n", "needs W and H"),
    (b"YUV4MPEG2 W16 Hx F30:1\n", "needs W and H"),
    (b"YUV4MPEG2 W0 H16 F30:1\n", "out of range"),
    (b"YUV4MPEG2 W100000 H100000 F30:1\n", "out of range"),
    (b"YUV4MPEG2 W16 H16 F30:0\n", "frame rate"),
    (b"YUV4MPEG2 W16 H16\n", "frame rate"),
    (b"YUV4MPEG2 W16 H16 F30:1 C444\n", "not supported"),
    (b"YUV4MPEG2 W16 H16 F30:1 C420p10\n", "not supported"),
    (b"YUV4MPEG2 W16 H16 F30:1 It\n", "interlaced"),
    (b"YUV4MPEG2 W16 H16 F30:1" + b" X" * 2000 + b"\n", "not a Y4M"),  # no end of line in 1 KB
    (b"YUV4MPEG2 W16 H16 F30:1 \xff\n", "not ASCII"),
])
def test_hostile_y4m_headers_are_rejected(tmp_path, header, message):
    with pytest.raises(ValueError, match=message):
        open_video(_y4m(tmp_path, header))


def test_damaged_y4m_frames_stop_with_an_error(tmp_path, clip_frames):
    header = b"YUV4MPEG2 W16 H16 F30:1\n"
    frame = b"FRAME\n" + bytes(range(256)) + bytes(128)
    with open_video(_y4m(tmp_path, header, frame * 2 + b"FRAME\n" + bytes(100))) as video:
        assert video.info.frames is None  # a partial frame: no count from the size
        frames = []
        with pytest.raises(ValueError, match="truncated at frame 2"):
            for f in video:
                frames.append(f)
    assert len(frames) == 2 and frames[1].y[0, 5] == 5
    with open_video(_y4m(tmp_path, header, frame + b"FRAMX\n" + bytes(384))) as video:
        with pytest.raises(ValueError, match="frame 1 does not start with a FRAME"):
            list(video)
    with open_video(_y4m(tmp_path, header, frame + b"FRAME Ixyz\n" + bytes(384))) as video:
        assert video.info.frames is None and len(list(video)) == 2  # frame parameters are allowed
    assert MAX_FRAME_PIXELS >= 7680 * 4320


def test_not_a_video(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(ValueError, match="junk.mp4"):
        with open_video(junk) as video:
            list(video)
    flac = Path(__file__).resolve().parents[1] / "ncodec" / "data" / "audio"
    audio = sorted(flac.glob("*.flac"))
    if audio:  # an audio file has no video stream
        with pytest.raises(ValueError, match="no video stream|not a readable video"):
            open_video(audio[0])


def test_rgb_conversion_round_trips_real_frames(clip_frames):
    """4:2:0 -> RGB -> 4:2:0 (BT.709, limited range) on real frames, whose luma goes above 235
    (superwhites, kept by the unclipped RGB): every plane within 1 (rounding), odd sizes too."""
    for f in (clip_frames[0], YuvFrame(clip_frames[5].y[:37, :51], clip_frames[5].u[:19, :26], clip_frames[5].v[:19, :26])):
        rgb = yuv420_to_rgb(f)
        assert rgb.shape == (3, *f.size) and rgb.dtype == torch.float32
        back = rgb_to_yuv420(rgb)
        assert back.y.shape == f.y.shape and back.u.shape == f.u.shape
        for name, a, b in zip("yuv", f, back):
            diff = np.abs(a.astype(int) - b.astype(int))
            assert diff.max() <= 1 and diff.mean() < 0.1, name
    grey = yuv420_to_rgb(YuvFrame(np.full((4, 4), 126, np.uint8), np.full((2, 2), 128, np.uint8), np.full((2, 2), 128, np.uint8)))
    assert torch.allclose(grey, torch.full_like(grey, 110 / 219))  # neutral chroma: R = G = B
    assert yuv420_to_rgb(clip_frames[0]).max() > 1  # this clip has superwhites
    white = rgb_to_yuv420(torch.ones(3, 2, 2))
    assert white.y.max() == 235 and white.u.max() == 128 == white.v.min()
