"""The video codec (ncodec.codecs.video): GOP chunks, random access, streaming both ways, rate
control, odd sizes, truncated files, hostile files, and the CLI.

The mechanics do not depend on training: most tests use the P-frame architecture seeded by its
name (exported to a weights file, so that the CLI and ``--weights`` paths are exercised too).
"""

from __future__ import annotations

import random
import warnings
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import ncodec
from ncodec.cli import main
from ncodec.codecs import container, registry
from ncodec.codecs.varint import read_varint
from ncodec.codecs.video import TruncatedVideoWarning, VideoCodec
from ncodec.io.video import VideoWriter, YuvFrame, open_video
from ncodec.models import weights as weights_io

CLIP = Path(__file__).resolve().parent / "data" / "video" / "realshort.mp4"  # H.264 320x240, 36 frames
FPS = Fraction(30000, 1001)


def _frames(count: int, h: int, w: int) -> list[YuvFrame]:
    with open_video(CLIP) as video:
        out = []
        for _, f in zip(range(count), video):
            out.append(YuvFrame(f.y[:h, :w].copy(), f.u[: -(-h // 2), : -(-w // 2)].copy(),
                                f.v[: -(-h // 2), : -(-w // 2)].copy()))
        return out


def _same(a: YuvFrame, b: YuvFrame) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a, b))


@pytest.fixture(scope="module")
def codec() -> VideoCodec:
    return registry.create("video-ctx", 3, untrained=True)


@pytest.fixture(scope="module")
def weights(codec, tmp_path_factory) -> Path:
    """The seeded P-frame model as a weights file (what ``ncodec train video`` exports)."""
    path = tmp_path_factory.mktemp("video-weights") / "weights.safetensors"
    model = registry.create("video-ctx", 3, untrained=True).model
    weights_io.export_weights(model, path, arch="video-ctx", half=False)
    return path


@pytest.fixture(scope="module")
def clip() -> list[YuvFrame]:
    return _frames(11, 64, 96)


@pytest.fixture(scope="module")
def coded(codec, clip) -> tuple[bytes, list[YuvFrame]]:
    """The clip in GOPs of 4 (4 + 4 + 3 frames), and each frame as the encoder saw it decoded."""
    encoder = codec.stream_encoder(96, 64, FPS, frames=len(clip), gop=4)
    parts, seen = [], []
    for frame in clip:
        parts.append(encoder.push(frame))
        seen.append(encoder.decoded)
    parts.append(encoder.close())
    return b"".join(parts), seen


def _gop_qualities(data: bytes) -> list[int]:
    reader = container.ContainerReader(data)
    out = []
    for i in range(reader.num_chunks):
        head = reader.chunk(i)[0]
        _, pos = read_varint(head, 0, "head")
        out.append(read_varint(head, pos, "head")[0])
    return out


def test_decoder_sees_what_the_encoder_saw(codec, clip, coded):
    data, seen = coded
    header = container.read_header(data)
    assert header.modality == "video" and header.codec == "video-ctx"
    assert {k: header.meta[k] for k in ("width", "height", "frames", "gop", "fps_num", "fps_den")} == \
        {"width": 96, "height": 64, "frames": 11, "gop": 4, "fps_num": 30000, "fps_den": 1001}
    assert container.ContainerReader(data).num_chunks == 3
    decoded = codec.decompress_frames(data)
    assert len(decoded) == 11 and all(_same(a, b) for a, b in zip(decoded, seen))
    assert decoded[0].y.shape == (64, 96) and decoded[0].u.shape == (32, 48)
    # compress() writes the very bytes of the stream encoder
    assert codec.compress(clip, FPS, gop=4) == data


def test_random_access_starts_at_any_gop(codec, coded):
    data, seen = coded
    for start in (1, 2):
        frames = list(codec.iter_frames(data, start_gop=start))
        assert len(frames) == 11 - 4 * start and all(_same(a, b) for a, b in zip(frames, seen[4 * start:]))
    with pytest.raises(ValueError, match="start GOP 3"):
        list(codec.iter_frames(data, start_gop=3))


def test_stream_decoder_gives_frames_as_gops_complete(codec, coded):
    data, seen = coded
    decoder = codec.stream_decoder()
    counts, frames = [], []
    for i in range(0, len(data), 97):
        got = decoder.push(data[i:i + 97])
        counts.append(len(got))
        frames += got
    decoder.close()
    assert len(frames) == 11 and all(_same(a, b) for a, b in zip(frames, seen))
    assert 0 < max(counts) <= 4 and counts.count(0) > 0  # a GOP at a time, as soon as it is complete
    early = codec.stream_decoder()
    early.push(data[: len(data) // 2])
    with pytest.raises(ncodec.BitstreamError):
        early.close()


def test_truncated_file_decodes_its_whole_gops_and_says_so(codec, coded, tmp_path, capsys, weights):
    data, seen = coded
    second_gop_end = container.ContainerReader(data)._extent(1)[1]  # end of GOP 1
    cut = data[: second_gop_end + 10]
    with pytest.warns(TruncatedVideoWarning, match=r"decoded its 2 whole GOP\(s\), 8 frame\(s\) of 11"):
        frames = codec.decompress_frames(cut)
    assert len(frames) == 8 and all(_same(a, b) for a, b in zip(frames, seen))
    src, out = tmp_path / "cut.ncb", tmp_path / "cut.y4m"
    src.write_bytes(cut)
    assert main(["decode", str(src), str(out), "--weights", str(weights)]) == 0
    assert "warning" in capsys.readouterr().err
    with open_video(out) as video:
        assert sum(1 for _ in video) == 8
    with pytest.raises(ncodec.BitstreamError):  # no whole GOP is not a clip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            codec.decompress_frames(data[:200])


def test_odd_sizes_are_padded_inside_and_cropped_back(codec):
    frames = _frames(3, 53, 75)
    data = codec.compress(frames, 25, gop=2)
    decoded = codec.decompress_frames(data)
    assert len(decoded) == 3
    assert decoded[0].y.shape == (53, 75) and decoded[0].u.shape == (27, 38)
    whole = ncodec.decompress(data)  # the generic entry point: RGB [T, 3, H, W]
    assert whole.tensor.shape == (3, 3, 53, 75) and whole.frame_rate == 25 and whole.modality == "video"


def test_target_bitrate_steers_each_gops_quality(codec, clip):
    low = codec.compress(clip, FPS, gop=2, bitrate=1.0)
    high = codec.compress(clip, FPS, gop=2, bitrate=1e6)
    assert _gop_qualities(low) == [3, 2, 1, 1, 1, 1]
    assert _gop_qualities(high) == [3, 4, 5, 5, 5, 5]
    assert len(codec.decompress_frames(low)) == len(codec.decompress_frames(high)) == 11
    assert len(low) < len(high)


def test_headers_that_do_not_fit_are_refused(codec, coded):
    data, _ = coded
    header, chunks = container.unpack(data)
    bad = [
        replace(header, meta={**header.meta, "frames": 12}),  # 12 frames in GOPs of 4: 3 chunks, but 3 GOPs hold 11
        replace(header, meta={**header.meta, "frames": 40}),
        replace(header, meta={**header.meta, "gop": 2}),      # GOP chunks hold 4 frames
        replace(header, meta={**header.meta, "intra_codec": "mbt2018-mean-vr"}),
        replace(header, fingerprint="0" * 32),
    ]
    for h in bad:
        with pytest.raises(ncodec.BitstreamError):
            codec.decompress_frames(container.pack(h, chunks))


def test_forged_and_damaged_files_never_crash_or_give_nan(codec, coded, tmp_path, capsys, weights):
    data, _ = coded
    header, chunks = container.unpack(data)
    rng = random.Random(5)
    counts = {"decoded": 0, "refused": 0}
    path, out = tmp_path / "forged.ncb", tmp_path / "out.y4m"
    for case in range(60):
        kind = case % 3
        if kind == 0:  # a substream changed, CRCs recomputed
            forged = [list(c) for c in chunks]
            gop = rng.randrange(len(forged))
            k = rng.randrange(4)
            s = bytearray(forged[gop][k])
            for _ in range(rng.randint(1, 4)):
                if s and rng.random() < 0.8:
                    s[rng.randrange(len(s))] = rng.randrange(256)
                else:
                    s.insert(rng.randrange(len(s) + 1), rng.randrange(256))
            forged[gop][k] = bytes(s)
            blob = container.pack(header, forged)
        elif kind == 1:  # truncated anywhere
            blob = data[: rng.randrange(len(data))]
        else:  # bytes flipped (CRCs catch them)
            b = bytearray(data)
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            blob = bytes(b)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TruncatedVideoWarning)
                frames = codec.decompress_frames(blob)
        except ncodec.BitstreamError:
            counts["refused"] += 1
        else:
            counts["decoded"] += 1
            assert all(f.y.dtype == np.uint8 and f.y.shape == (64, 96) for f in frames)
        if case % 5 == 0:  # the CLI too (it loads the weights each time: not every case)
            path.write_bytes(blob)
            rc = main(["decode", str(path), str(out), "--force", "--weights", str(weights)])
            err = [ln for ln in capsys.readouterr().err.strip().splitlines() if "warning" not in ln]
            assert rc in (0, 1) and (rc == 0 or (len(err) == 1 and err[0].startswith("ncodec: error:"))), (case, err)
    assert counts["refused"] > 10 and counts["decoded"] > 5


def test_cli_codes_a_clip_with_weights_and_random_access(tmp_path, weights, capsys):
    src = tmp_path / "clip.y4m"
    with VideoWriter(src, 96, 64, FPS) as writer:
        for f in _frames(6, 64, 96):
            writer.write(f)
    ncb, whole, tail = tmp_path / "clip.ncb", tmp_path / "whole.y4m", tmp_path / "tail.mp4"
    assert main(["encode", str(src), str(ncb), "--codec", str(weights), "--gop", "4", "--quality", "2"]) == 0
    assert "kbps measured" in capsys.readouterr().err
    assert main(["info", str(ncb), "--json"]) == 0
    assert '"gop": 4' in capsys.readouterr().out
    assert main(["decode", str(ncb), str(whole), "--weights", str(weights)]) == 0
    assert main(["decode", str(ncb), str(tail), "--weights", str(weights), "--start-gop", "1"]) == 0
    with open_video(whole) as a, open_video(tail) as b:
        fa, fb = list(a), list(b)
    assert len(fa) == 6 and len(fb) == 2 and all(_same(x, y) for x, y in zip(fa[4:], fb))  # lossless MP4
    capsys.readouterr()
    assert main(["decode", str(ncb), str(whole), "--weights", str(weights), "--start-gop", "5", "--force"]) == 1
    assert "start GOP 5" in capsys.readouterr().err
    assert main(["encode", str(src), str(tmp_path / "x.ncb"), "--codec", str(weights), "--effort", "fast"]) == 1
    assert "--effort is not an option of video-ctx" in capsys.readouterr().err


def test_encode_and_decode_files_in_bounded_memory(codec, tmp_path):
    """A longer clip: the encoder holds one GOP's bytes, the decoder writes frames as they come."""
    import tracemalloc

    frames = _frames(8, 64, 96)
    src = tmp_path / "long.y4m"
    with VideoWriter(src, 96, 64, FPS) as writer:
        for _ in range(4):  # 32 frames
            for f in frames:
                writer.write(f)
    ncb, out = tmp_path / "long.ncb", tmp_path / "long.y4m.out.y4m"
    stats = codec.encode_file(src, ncb, gop=16)
    assert stats["meta"]["frames"] == 32 and stats["bytes_out"] == ncb.stat().st_size
    tracemalloc.start()
    stats = codec.decode_file(ncb, out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert stats["frames"] == 32
    assert peak < 4 * ncb.stat().st_size + 2_000_000  # not the 32 decoded frames held at once


_PLANES_WORKER = """
import sys, numpy as np, torch, ncodec
from pathlib import Path
codec = ncodec.load("video-ctx", 3)
frames = codec.decompress_frames(Path(sys.argv[1]).read_bytes())
np.savez(sys.argv[2], **{p: np.stack([getattr(f, p) for f in frames]) for p in "yuv"})
print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())
"""


@pytest.mark.skipif(not registry.codec_info("video-ctx").trained, reason="no shipped video-ctx weights")
def test_files_decode_alike_under_other_threads_and_instruction_sets(tmp_path):
    """Symbols are exact everywhere; pixels are identical on 1 thread and within 1 of 255 under
    AVX2 and SSE4.1 (the float synthesis rounds differently), and that difference does not grow
    along the GOP (a P-frame inherits its reference's rounding, not an error of its own)."""
    import os
    import subprocess
    import sys

    from ncodec.eval.portability import SETTINGS

    codec = ncodec.load("video-ctx", 3)
    frames = _frames(16, 240, 320)
    data = codec.compress(frames, FPS, gop=16)
    path = tmp_path / "clip.ncb"
    path.write_bytes(data)
    reference = codec.decompress_frames(data)
    for name, env in SETTINGS.items():
        out = tmp_path / "planes.npz"
        proc = subprocess.run([sys.executable, "-c", _PLANES_WORKER, str(path), str(out)], capture_output=True,
                              text=True, timeout=600, env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr[-2000:]
        with np.load(out) as planes:
            worst = [max(int(np.abs(planes[p][t].astype(int) - getattr(f, p).astype(int)).max()) for p in "yuv")
                     for t, f in enumerate(reference)]
        if name == "1 thread":
            assert max(worst) == 0, worst
        assert max(worst) <= 1, (name, worst)
