"""ncodec.eval for audio: metrics, Opus/MP3 baselines, the audio harness and `ncodec eval` on audio."""

from __future__ import annotations

import argparse
import csv
import json
import math
import struct
import warnings
from pathlib import Path

import pytest
import torch

from ncodec.codecs.base import Decoded
from ncodec.eval import audio_metrics as am
from ncodec.eval.audio_baselines import (AUDIO_BASELINES, encode_decode, get_audio_baseline,
                                         parse_audio_baselines)
from ncodec.eval.audio import PLUGIN
from ncodec.eval.audio import evaluate as evaluate_audio
from ncodec.eval.audio import write_report as write_audio_report
from ncodec.eval.command import add_eval_parser, collect_inputs
from ncodec.io import audio_bytes, read_audio

SPEECH = Path(__file__).parents[1] / "ncodec" / "data" / "audio" / "481-123719-0000.flac"   # 16 kHz mono, 5.25 s
SR = 16000


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    """The first 3 s of a LibriSpeech utterance, [1, 48000] at 16 kHz."""
    x, sr = read_audio(SPEECH)
    assert sr == SR
    return x[:, : 3 * SR]


@pytest.fixture(scope="module")
def noisy(speech) -> torch.Tensor:
    """The speech plus white noise at 10 dB SNR."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(speech.shape, generator=g)
    noise *= speech.pow(2).mean().sqrt() / noise.pow(2).mean().sqrt() / math.sqrt(10)
    return speech + noise


# --------------------------------------------------------------------------- metrics

def test_metrics_identical_and_noisy(speech, noisy):
    assert am.pesq_wb(speech, speech, SR) > 4.4
    assert am.stoi(speech, speech, SR) == pytest.approx(1.0, abs=1e-6)
    assert am.si_sdr(speech, speech) == math.inf
    assert am.mel_distance(speech, speech, SR) == 0.0
    assert am.pesq_wb(speech, noisy, SR) < 2.5
    assert 0.5 < am.stoi(speech, noisy, SR) < 0.97
    assert am.si_sdr(speech, noisy) == pytest.approx(10.0, abs=0.3)
    assert am.si_sdr(speech, 0.3 * noisy) == pytest.approx(am.si_sdr(speech, noisy), abs=1e-5)   # scale-invariant
    assert am.si_sdr(speech[0], noisy[0] + 0.5) == pytest.approx(am.si_sdr(speech, noisy), abs=1e-5)  # zero-mean
    assert am.mel_distance(speech, noisy, SR) > 1.0
    # Stereo: PESQ and STOI on the mono mix, SI-SDR and mel per channel.
    two, two_noisy = speech.repeat(2, 1), noisy.repeat(2, 1)
    assert am.si_sdr(two, two_noisy) == pytest.approx(am.si_sdr(speech, noisy))
    assert am.mel_distance(two, two_noisy, SR) == pytest.approx(am.mel_distance(speech, noisy, SR))
    assert am.pesq_wb(two, two_noisy, SR) == pytest.approx(am.pesq_wb(speech, noisy, SR))


def test_metrics_resample_and_errors(speech, noisy):
    import torchaudio.functional as AF

    up, up_noisy = AF.resample(speech, SR, 48000), AF.resample(noisy, SR, 48000)
    assert am.pesq_wb(up, up_noisy, 48000) == pytest.approx(am.pesq_wb(speech, noisy, SR), abs=0.05)
    with pytest.raises(ValueError, match="0.25 s"):
        am.pesq_wb(speech[:, :3000], speech[:, :3000], SR)
    silence = torch.zeros(1, SR)
    with pytest.raises(ValueError, match="no speech"):
        am.pesq_wb(silence, silence, SR)
    with pytest.raises(ValueError, match="silent"):
        am.si_sdr(silence, speech[:, :SR])
    with pytest.raises(ValueError, match="0.4 s"):
        am.stoi(speech[:, :2000], speech[:, :2000], SR)
    with pytest.raises(ValueError, match="shape"):
        am.si_sdr(speech, speech[:, :-1])
    a, b = am.align(speech, noisy[0, :-10])
    assert a.shape == b.shape == (1, speech.shape[1] - 10)
    with pytest.raises(ValueError, match="channels"):
        am.align(speech, speech.repeat(2, 1))
    assert math.isfinite(am.mel_distance(speech[:, :500], noisy[:, :500], SR))     # shorter than a window


# --------------------------------------------------------------------------- baselines

@pytest.mark.parametrize("name,kbps", [("opus", 6), ("opus", 12), ("mp3", 8), ("mp3", 16)])
def test_baseline_rate_and_alignment(speech, name, kbps):
    data, y = encode_decode(name, speech, SR, kbps)
    seconds = speech.shape[1] / SR
    assert abs(8 * len(data) / seconds / 1000 / kbps - 1) < 0.25
    assert data[:4] == b"OggS" if name == "opus" else (data[0] == 0xFF and data[1] & 0xE0 == 0xE0)
    assert y.shape == speech.shape and y.dtype == torch.float32
    assert am.si_sdr(speech, y) > 3.0          # waveform-aligned: a shifted signal would score below 0
    assert am.pesq_wb(speech, y, SR) > 2.0
    assert encode_decode(name, speech, SR, kbps)[0] == data      # deterministic


def test_baseline_details(speech):
    opus = get_audio_baseline("opus")
    low, high = opus.run(speech, SR, 6), opus.run(speech, SR, 12)
    assert am.pesq_wb(speech, high.decoded, SR) > am.pesq_wb(speech, low.decoded, SR)
    assert 0 < high.payload_bytes < len(high.data) and high.encoding_time > 0 and high.decoding_time > 0
    # MP3 has no rate under 8 kbps: lower targets give the 8 kbps file.
    assert encode_decode("mp3", speech, SR, 3)[0] == encode_decode("mp3", speech, SR, 8)[0]
    stereo = torch.cat([speech, 0.5 * speech.roll(100, 1)])[:, :SR]
    for name in AUDIO_BASELINES:
        _, y = encode_decode(name, stereo, 44100, 32)
        assert y.shape == stereo.shape
    with pytest.raises(ValueError, match="mono or stereo"):
        encode_decode("opus", speech.repeat(3, 1), SR, 6)
    assert parse_audio_baselines("Opus, mp3,opus") == ["opus", "mp3"] and parse_audio_baselines("none") == []
    with pytest.raises(ValueError, match="unknown audio baseline"):
        parse_audio_baselines("opus,aac")
    assert "libopus" in opus.describe() and "voip" in opus.describe()


# --------------------------------------------------------------------------- harness

class FakeCodec:
    """Stands in for an ncodec audio codec: 8-bit PCM at bitrate/8 kHz, with a small header."""

    name = "fake"
    bitrates = (32.0, 64.0)
    sample_rate = SR

    def compress(self, wav: torch.Tensor, sample_rate: int, *, bitrate: float) -> bytes:
        import torchaudio.functional as AF

        rate = int(bitrate * 1000 / 8)
        q = (AF.resample(wav, sample_rate, rate).clamp(-1, 1) * 127).round().to(torch.int8)
        return struct.pack("<IH", rate, q.shape[0]) + q.numpy().tobytes()

    def decompress(self, data: bytes) -> Decoded:
        rate, channels = struct.unpack("<IH", data[:6])
        q = torch.frombuffer(bytearray(data[6:]), dtype=torch.int8).reshape(channels, -1)
        return Decoded(q.float() / 127, "audio", sample_rate=rate)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, speech) -> Path:
    folder = tmp_path_factory.mktemp("audio")
    (folder / "speech.flac").write_bytes(audio_bytes(speech[:, : 2 * SR], SR, ".flac"))
    return folder


def test_harness_with_fake_codec_and_opus(clip, tmp_path):
    files = [clip / "speech.flac"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = evaluate_audio(files, [FakeCodec()], None, ["opus"], [6, 12], threads=1, progress=False)
    assert [c.key for c in results.curves] == ["fake", "opus"]
    fake, opus = results.curves
    assert fake.settings == [32.0, 64.0] and opus.settings == [6.0, 12.0]
    for r in results.records:
        assert r.seconds == 2.0 and r.sample_rate == SR and r.channels == 1
        assert r.kbps == pytest.approx(8 * r.bytes / r.seconds / 1000)
        assert r.rtf_encode == pytest.approx(r.seconds / r.encode_seconds)
        assert r.rtf_decode == pytest.approx(r.seconds / r.decode_seconds)
        assert 1 <= r.pesq <= 4.7 and 0 < r.stoi <= 1 and math.isfinite(r.si_sdr) and r.mel_distance > 0
    assert fake.records[0].bytes == 6 + 2 * 4000 and math.isnan(fake.records[0].payload_kbps)
    assert opus.records[1].payload_kbps < opus.records[1].kbps
    assert fake.records[1].pesq > fake.records[0].pesq

    paths = write_audio_report(results, tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"fake.json", "opus.json", "per_file.csv",
                                                               "summary.md", "rd.png", ".ncodec-report"}
    doc = json.loads(paths["json:opus"].read_text())
    assert doc["target_kbps"] == [6.0, 12.0] and doc["results"]["kbps"][0] == pytest.approx(opus.records[0].kbps)
    assert set(doc["results"]) >= {"kbps", "pesq", "stoi", "si_sdr", "mel_distance", "rtf_encode", "rtf_decode"}
    assert json.loads(paths["json:fake"].read_text())["results"]["payload_kbps"] == [None, None]
    with open(paths["per_file"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[0]["codec"] == "fake" and float(rows[0]["target_kbps"]) == 32.0
    assert {"file", "codec", "target_kbps", "kbps", "pesq", "stoi", "si_sdr", "mel_distance", "encode_seconds",
            "decode_seconds", "rtf_encode", "rtf_decode"} <= set(rows[0])
    assert paths["rd"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = PLUGIN.markdown(results)["summary.md"]
    assert "| ncodec fake | 32 |" in table and "| Opus | 6 |" in table and "BD-rate" in table


def test_harness_errors(clip):
    files = [clip / "speech.flac"]
    with pytest.raises(ValueError, match="bitrates"):
        evaluate_audio(files, [FakeCodec()], [48], [], progress=False)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_audio(files, None, [6], [], progress=False)
    with pytest.raises(ValueError, match="image codec"):
        evaluate_audio(files, "bmshj2018-factorized", [6], [], progress=False)
    with pytest.raises(ValueError, match="unknown audio baseline"):
        evaluate_audio(files, None, [6], ["jpeg"], progress=False)
    (clip.parent / "bad.wav").write_bytes(b"RIFF....WAVE")
    with pytest.raises(ValueError, match="bad.wav"):
        evaluate_audio([clip.parent / "bad.wav"], None, [6], ["opus"], progress=False)


# --------------------------------------------------------------------------- command

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncodec")
    add_eval_parser(parser.add_subparsers(dest="command"))
    return parser


def test_eval_command_on_audio_runs_baselines(clip, tmp_path, capsys, monkeypatch):
    from ncodec.codecs import registry

    def no_audio_codec(modality):
        raise ValueError(f"no codec for modality {modality!r}")

    monkeypatch.setattr(registry, "default_codec", no_audio_codec)        # whatever is registered today
    out = tmp_path / "out"
    args = _parser().parse_args(["eval", str(clip), "--bitrates", "8", "--out", str(out), "--no-progress",
                                 "--threads", "1"])
    assert args.handler(args) == 0
    captured = capsys.readouterr()
    assert "baselines only" in captured.err and "Opus" in captured.out and "MP3" in captured.out
    assert {p.name for p in out.iterdir()} == {"opus.json", "mp3.json", "per_file.csv", "summary.md", "rd.png",
                                            ".ncodec-report"}
    assert json.loads((out / "mp3.json").read_text())["target_kbps"] == [8.0]
    args = _parser().parse_args(["eval", str(clip), "--baselines", "none", "--out", str(out), "--no-progress"])
    with pytest.raises(ValueError, match="--codec"):
        args.handler(args)


def test_eval_command_input_kinds(clip, tmp_path):
    assert collect_inputs([clip]) == ("audio", [clip / "speech.flac"])
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.wav").write_bytes((clip / "speech.flac").read_bytes())
    (mixed / "b.png").write_bytes(b"")
    with pytest.raises(ValueError, match="both images and audio"):
        collect_inputs([mixed])
    parser = _parser()
    for argv, message in [([str(clip), "--qualities", "1"], "--bitrates"),
                          ([str(clip), "--baselines", "jpeg"], "unknown audio baseline")]:
        args = parser.parse_args(["eval", *argv, "--out", str(tmp_path / "o"), "--no-progress"])
        with pytest.raises(ValueError, match=message):
            args.handler(args)
    for bad in ("a,b", "0", "-3"):
        with pytest.raises(SystemExit):
            parser.parse_args(["eval", str(clip), "--bitrates", bad])
    args = parser.parse_args(["eval", str(tmp_path / "images"), "--bitrates", "6"])
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="audio inputs"):
        args.handler(args)
