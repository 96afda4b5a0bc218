"""ncodec.io audio: reading (soundfile, PyAV fallback), blocks, WAV/FLAC bytes, AudioWriter."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from ncodec.io import (AUDIO_OUT_SUFFIXES, AUDIO_SUFFIXES, AudioWriter, audio_bytes, audio_info, iter_audio_blocks,
                       read_audio)

SPEECH = Path(__file__).parents[1] / "ncodec" / "data" / "audio" / "481-123719-0000.flac"   # 16 kHz mono, 5.25 s
LSB = 1 / 32768  # one step of 16-bit PCM


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    x, sr = read_audio(SPEECH)
    assert sr == 16000
    return x[:, : 2 * sr]


def _stereo(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, -0.5 * x.roll(37, 1)])


def test_suffix_lists():
    assert AUDIO_SUFFIXES == (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a")
    assert AUDIO_OUT_SUFFIXES == (".wav", ".flac")


def test_read_bundled_speech():
    x, sr = read_audio(SPEECH)
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 84000) and sr == 16000
    assert x.abs().max() <= 1 and x.abs().max() > 0.1
    assert audio_info(SPEECH) == (1, 84000, 16000)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".WAV"])
def test_wav_flac_round_trip(tmp_path, speech, suffix):
    x = _stereo(speech)
    data = audio_bytes(x, 16000, suffix)
    path = tmp_path / f"a{suffix}"
    path.write_bytes(data)
    y, sr = read_audio(path)
    assert sr == 16000 and y.shape == x.shape
    assert (y - x).abs().max() <= LSB
    assert audio_info(path) == (2, x.shape[1], 16000)
    # Out-of-range samples are clipped, and mono [T] is accepted.
    loud = read_audio_bytes(audio_bytes(torch.tensor([2.0, -3.0, 0.25]), 8000, suffix), suffix)
    assert loud[0].tolist()[0][1] == -1.0 and loud[0][0, 0] == pytest.approx(1.0, abs=LSB) and loud[1] == 8000


def read_audio_bytes(data: bytes, suffix: str, folder: Path | None = None) -> tuple[torch.Tensor, int]:
    with sf.SoundFile(io.BytesIO(data)) as f:
        assert f.subtype == "PCM_16" and f.format == {".wav": "WAV", ".flac": "FLAC"}[suffix.lower()]
        return torch.from_numpy(f.read(dtype="float32", always_2d=True).T.copy()), f.samplerate


def test_audio_bytes_rejects_other_formats(speech):
    for suffix in (".mp3", ".ogg", ".png", ""):
        with pytest.raises(ValueError, match="wav"):
            audio_bytes(speech, 16000, suffix)
    with pytest.raises(ValueError, match="shape"):
        audio_bytes(torch.zeros(1, 2, 3), 16000, ".wav")


def test_blocks(tmp_path, speech):
    path = tmp_path / "s.flac"
    path.write_bytes(audio_bytes(_stereo(speech), 16000, ".flac"))
    blocks = list(iter_audio_blocks(path, 7000))
    assert [b.shape[1] for b in blocks] == [7000] * 4 + [32000 - 28000]
    assert all(b.shape[0] == 2 and b.dtype == torch.float32 for b in blocks)
    assert torch.equal(torch.cat(blocks, 1), read_audio(path)[0])
    with pytest.raises(ValueError):
        list(iter_audio_blocks(path, 0))


def test_pyav_fallback_for_m4a(tmp_path, speech):
    """AAC in MP4 is not libsndfile's: read, info and blocks go through PyAV."""
    path = tmp_path / "a.m4a"
    x = _stereo(speech).numpy()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000, layout="stereo")
        stream.bit_rate = 96000
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(packet)
    with pytest.raises(sf.LibsndfileError):
        sf.info(path)
    y, sr = read_audio(path)
    assert sr == 16000 and y.shape[0] == 2 and y.dtype == torch.float32
    assert abs(y.shape[1] - x.shape[1]) <= 2048                     # AAC frames of 1024
    assert audio_info(path) == (2, y.shape[1], 16000)
    blocks = list(iter_audio_blocks(path, 5000))
    assert all(b.shape[1] == 5000 for b in blocks[:-1]) and 0 < blocks[-1].shape[1] <= 5000
    assert torch.equal(torch.cat(blocks, 1), y)


def _all_fail_cleanly(path: Path, header_ok: bool = False) -> None:
    calls = [read_audio, lambda p: list(iter_audio_blocks(p, 4096))] + ([] if header_ok else [audio_info])
    for call in calls:
        with pytest.raises(ValueError, match=str(path.name)):
            call(path)


def test_hostile_inputs_raise_value_error(tmp_path):
    rng = random.Random(0)
    cases = {"garbage.wav": bytes(rng.randrange(256) for _ in range(3000)), "empty.flac": b"",
             "text.m4a": b"hello, not audio\n" * 20, "zero.wav": audio_bytes(torch.zeros(1, 0), 16000, ".wav")}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        _all_fail_cleanly(tmp_path / name)
    # Only the header of a real file: audio_info reads the header (documented), decoding fails.
    (tmp_path / "header.flac").write_bytes(SPEECH.read_bytes()[:42])
    _all_fail_cleanly(tmp_path / "header.flac", header_ok=True)
    assert audio_info(tmp_path / "header.flac") == (1, 84000, 16000)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.1, np.nan, 0.2], dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match="non-finite"):
        read_audio(nan)
    with pytest.raises(FileNotFoundError):
        read_audio(tmp_path / "missing.wav")
    with pytest.raises(ValueError):
        read_audio(tmp_path)


def test_mutated_files_never_crash(tmp_path, speech):
    """Bytes flipped in real WAV and FLAC files: a tensor in [-1, 1], or ValueError."""
    rng = random.Random(1)
    for suffix in (".wav", ".flac"):
        good = bytearray(audio_bytes(speech[:, :4000], 16000, suffix))
        for i in range(12):
            bad = bytearray(good)
            for _ in range(rng.randrange(1, 8)):
                bad[rng.randrange(min(len(bad), 200))] = rng.randrange(256)
            path = tmp_path / f"m{i}{suffix}"
            path.write_bytes(bytes(bad[: rng.randrange(20, len(bad) + 1)]))
            try:
                x, sr = read_audio(path)
            except ValueError:
                continue
            assert x.dim() == 2 and x.shape[0] >= 1 and x.shape[1] >= 1 and sr > 0
            assert torch.isfinite(x).all() and x.abs().max() <= 1


def test_audio_writer_streams_and_replaces_atomically(tmp_path, speech):
    path = tmp_path / "sub" / "out.flac"
    with AudioWriter(path, 16000, 2) as w:
        for block in _stereo(speech).split(3000, dim=1):
            w.write(block)
    y, sr = read_audio(path)
    assert sr == 16000 and y.shape == (2, speech.shape[1]) and (y - _stereo(speech)).abs().max() <= LSB
    assert w.frames == speech.shape[1]
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.flac"]        # no temporary file left
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="exists"):
        with AudioWriter(path, 16000, 2) as w:
            w.write(torch.zeros(2, 10))
    assert path.read_bytes() == before
    with AudioWriter(path, 8000, 1, force=True) as w:
        w.write(speech[0, :800])                                                # mono [n]
    assert audio_info(path) == (1, 800, 8000)


def test_audio_writer_exception_leaves_nothing(tmp_path, speech):
    path = tmp_path / "out.wav"
    with pytest.raises(RuntimeError, match="boom"):
        with AudioWriter(path, 16000, 1) as w:
            w.write(speech[:, :1000])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    path.write_bytes(b"keep me")
    with pytest.raises(ValueError, match="channels"):
        with AudioWriter(path, 16000, 1, force=True) as w:
            w.write(speech[:, :1000])
            w.write(torch.zeros(2, 100))                                        # wrong channel count
    assert path.read_bytes() == b"keep me" and [p.name for p in tmp_path.iterdir()] == ["out.wav"]
    with pytest.raises(ValueError, match="wav"):
        AudioWriter(tmp_path / "x.mp3", 16000, 1)
    if hasattr(os, "umask"):
        with AudioWriter(tmp_path / "mode.wav", 16000, 1) as w:
            w.write(speech[:, :10])
        assert (tmp_path / "mode.wav").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
