"""Token context model: the logit stage's exact CDF rows, the model's exact twin, and audio
files coded with it (round trip, old files, foreign context models, other thread counts and
instruction sets)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ncodec
from golden import splitmix64
from ncodec.codecs import container
from ncodec.codecs.audio import AudioCodec
from ncodec.entropy.logits import EXP_TABLE, LogitStage, logits_to_cdfs
from ncodec.errors import BitstreamError
from ncodec.io import read_audio
from ncodec.models.token_context import TokenContextArch, TokenContextModel, context_features

SPEECH = Path(ncodec.__file__).parent / "data" / "audio" / "481-123719-0000.flac"


def _integer_logits(seed: int, rows: int, k: int) -> torch.Tensor:
    """Fixed-point logits (2^-16 nat) in [-12, 0) nats from integers only (same on every machine)."""
    u = torch.from_numpy((splitmix64(seed, rows * k) >> 40).astype("int64"))  # 24-bit integers
    return (-(u * 12) >> 8).reshape(rows, k).to(torch.float64)


def _tiny_model(seed: int = 0) -> tuple[TokenContextModel, torch.Tensor]:
    torch.manual_seed(seed)
    arch = TokenContextArch(n_q=3, codebook_size=16, dim=4, hidden=8)
    model = TokenContextModel(arch)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model, torch.randn(3, 16, 4)


# ------------------------------------------------------------------------- the logit stage

def test_exp_table_is_pinned():
    # The table decides every frequency: it must never change (a format change otherwise).
    assert EXP_TABLE[0] == 1 << 24 and EXP_TABLE.shape == (576,)
    assert hashlib.sha256(EXP_TABLE.numpy().tobytes()).hexdigest()[:16] == "7be5b48d91f4a25e"


def test_cdf_rows_are_valid_and_every_symbol_codable():
    logits = _integer_logits(1, 64, 1024)
    logits[0] = 0  # all equal
    logits[1, 5] = 40 * 2**16  # one symbol far above the rest
    cdfs = logits_to_cdfs(logits)
    freq = cdfs[:, 1:].long() - cdfs[:, :-1].long()
    assert cdfs.dtype == torch.int32 and cdfs.shape == (64, 1026)
    assert (cdfs[:, 0] == 0).all() and (cdfs[:, -1] == 1 << 16).all() and (freq >= 1).all()
    assert freq[1, 5] > 60000 and (freq[0, 1:-1] == freq[0, 1]).all() and freq[0, 0] > freq[0, 1]  # remainder: to the first top symbol
    # int64 and float64 logits give the same rows; shifting all logits changes nothing
    assert torch.equal(logits_to_cdfs(logits.long()), cdfs)
    assert torch.equal(logits_to_cdfs(logits + 2**20), cdfs)


def test_golden_logit_stream():
    logits = _integer_logits(7, 300, 256)
    symbols = torch.from_numpy((splitmix64(8, 300) % 256).astype("int64"))
    data = LogitStage(256).encode(symbols, logits)
    assert len(data) == 473 and hashlib.sha256(data).hexdigest()[:16] == "4a52c2b4c2ee155e"
    assert torch.equal(LogitStage(256).decode(data, logits).long(), symbols)


def test_logit_stage_batches_equal_whole_and_reject_bad_input():
    stage = LogitStage(64)
    logits = _integer_logits(3, 500, 64)
    symbols = torch.from_numpy((splitmix64(4, 500) % 64).astype("int64"))
    whole = stage.encode(symbols, logits)
    writer = stage.writer()
    for i in range(0, 500, 37):
        writer.add(symbols[i:i + 37], logits[i:i + 37])
    assert writer.finish() == whole
    reader = stage.reader(whole)
    out = torch.cat([reader.read(logits[i:i + 100]) for i in range(0, 500, 100)])
    reader.finish()
    assert torch.equal(out.long(), symbols)
    # cost estimate agrees with the bytes
    assert abs(float(stage.symbol_bits(symbols, logits).sum()) / 8 - len(whole)) < 16
    with pytest.raises(ValueError):
        stage.encode(symbols + 64, logits)
    with pytest.raises(ValueError):
        stage.encode(symbols[:10], logits)
    with pytest.raises(BitstreamError):
        stage.decode(whole[:-3], logits)
    with pytest.raises(BitstreamError):
        stage.decode(whole, logits[:400])
    reader = stage.reader(whole)
    reader.read(logits[:100])
    with pytest.raises(BitstreamError):
        reader.finish()


# ------------------------------------------------------------------------- the model

def test_exact_twin_matches_float_model_and_round_trips():
    model, codebooks = _tiny_model()
    codes = torch.randint(0, 16, (2, 3, 40))
    exact = model.exact(codebooks)
    floats = model(*context_features(codebooks, codes, int(model.segment_frames))).double()
    assert (exact.logits(codes) / 2**16 - floats).abs().max() < 1e-3
    data = exact.encode(codes)
    assert torch.equal(exact.decode(data, 2, 3, 40), codes)
    assert torch.equal(exact.decode(exact.encode(codes[:, :2]), 2, 2, 40), codes[:, :2])  # any codebook prefix
    for frames in (1, 24, 25, 26):  # segments of 25 frames: partial, whole, whole + one
        part = codes[..., :frames]
        assert torch.equal(exact.decode(exact.encode(part), 2, 3, frames), part)
    with pytest.raises(BitstreamError):
        exact.decode(data, 2, 3, 41)
    with pytest.raises(ValueError):
        exact.decode(data, 2, 4, 40)


def test_context_beats_static_prior_on_correlated_codes():
    """A model trained on codes that repeat the last frame's learns it (the point of it)."""
    from ncodec.train.token_context import train_context

    g = torch.Generator().manual_seed(0)
    arch = TokenContextArch(n_q=1, codebook_size=16, dim=4, hidden=16)
    codebooks = torch.randn(1, 16, 4, generator=g)
    files = []
    for _ in range(8):
        c = [int(torch.randint(0, 16, (1,), generator=g))]
        for _ in range(199):
            repeat = float(torch.rand(1, generator=g)) < 0.9
            c.append(c[-1] if repeat else int(torch.randint(0, 16, (1,), generator=g)))
        files.append(torch.tensor([c]))
    model = TokenContextModel(arch)
    train_context(model, codebooks, files, epochs=30, batch_frames=256, lr=1e-2)
    bits = float(model.eval().exact(codebooks).bits(files[0].unsqueeze(0)).sum()) / 200
    assert bits < 2.0  # static prior: about 4 bits per code


# ------------------------------------------------------------------------- audio files

@pytest.fixture(scope="module")
def codec() -> AudioCodec:
    return ncodec.load("speech-rvq-16k", modality="audio")


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    wav, sr = read_audio(SPEECH)
    return wav[:, : 4 * sr]


def _static(codec: AudioCodec) -> AudioCodec:
    return AudioCodec(codec.name, codec.model, codec.quality)


def test_shipped_codec_codes_with_its_context_model(codec, speech):
    assert codec.code_model is not None  # the shipped context model loads
    static = _static(codec)
    for kbps in codec.bitrates:
        data = codec.compress(speech, 16000, bitrate=kbps)
        old = codec.compress(speech, 16000, bitrate=kbps, entropy="static")
        assert old == static.compress(speech, 16000, bitrate=kbps)  # as a codec without one writes
        assert container.read_header(data).meta["code_model"] == codec.code_model
        assert "code_model" not in container.read_header(old).meta
        assert len(data) < len(old)
        # the same codes either way: the decoded audio is identical
        assert torch.equal(codec.decompress(data).tensor, codec.decompress(old).tensor)
        with pytest.raises(BitstreamError, match="token context model"):
            static.decompress(data)


def _reheader(data: bytes, **changes) -> bytes:
    """``data`` with its header rebuilt with ``changes`` (fields of Header, or meta=...)."""
    header, chunks = container.unpack(data)
    fields = {k: getattr(header, k) for k in ("codec", "fingerprint", "modality", "substreams", "meta")}
    return container.pack(container.Header(**{**fields, **changes}), chunks)


def test_foreign_or_mislabelled_context_files_are_rejected(codec, speech):
    data = codec.compress(speech[:, :16000], 16000, bitrate=codec.bitrates[0])
    header = container.read_header(data)
    assert tuple(header.substreams) == ("head", "context-codes")
    meta = dict(header.meta)
    for forged in (_reheader(data, meta={**meta, "code_model": "0123456789abcdef"}),  # another context model
                   _reheader(data, meta={k: v for k, v in meta.items() if k != "code_model"}),  # as decoders
                   _reheader(data, substreams=("head", "codes"))):  # from before context models see it
        with pytest.raises(BitstreamError):
            codec.decompress(forged)


_CODES_SCRIPT = r"""
import hashlib, sys, torch
from pathlib import Path
import ncodec
from ncodec.codecs import container
codec = ncodec.load("speech-rvq-16k", modality="audio")
data = Path(sys.argv[1]).read_bytes()
header, chunks = container.unpack(data)
meta = codec.check_header(header)
codes = []
for chunk in chunks:
    frames, _ = container.unpack_ints(chunk[0], 2, "head")
    codes.append(codec.decode_codes(chunk[1], meta["channels"], meta["n_q"], frames, meta.get("code_model")))
digest = hashlib.sha256(torch.cat(codes, -1).numpy().tobytes()).hexdigest()
print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), digest)
"""


@pytest.mark.parametrize("env", [{"OMP_NUM_THREADS": "1"}, {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
                                 {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}],
                         ids=["1 thread", "AVX2", "SSE4.1"])
def test_codes_decode_identically_under_other_settings(codec, speech, tmp_path, env):
    stereo = torch.cat([speech, speech.flip(-1)])
    data = codec.compress(stereo, 16000, bitrate=codec.bitrates[-1])
    path = tmp_path / "s.ncb"
    path.write_bytes(data)
    tokens = codec.tokenize(stereo, 16000, bitrate=codec.bitrates[-1])
    expected = hashlib.sha256(tokens.numpy().tobytes()).hexdigest()
    r = subprocess.run([sys.executable, "-c", _CODES_SCRIPT, str(path)], capture_output=True, text=True,
                       env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    capability, threads, digest = r.stdout.split()
    assert digest == expected
    if "ATEN_CPU_CAPABILITY" in env:
        assert capability == {"avx2": "AVX2", "default": "DEFAULT"}[env["ATEN_CPU_CAPABILITY"]]


def test_context_model_lies_beside_its_weights(codec, speech, tmp_path):
    """Weights files (user runs, earlier shipped weights in previous/) bring the context model
    stored beside them, and only one trained on their own codebooks."""
    weights = Path(ncodec.__file__).parent / "weights"
    (tmp_path / "run.safetensors").symlink_to(weights / "speech-rvq-16k.safetensors")
    assert ncodec.load(str(tmp_path / "run.safetensors")).code_model is None
    (tmp_path / "run-context.safetensors").symlink_to(weights / "speech-rvq-16k-context.safetensors")
    loaded = ncodec.load(str(tmp_path / "run.safetensors"))
    assert loaded.code_model == codec.code_model
    data = codec.compress(speech[:, :16000], 16000, bitrate=codec.bitrates[0])
    assert torch.equal(loaded.decompress(data).tensor, codec.decompress(data).tensor)
    # weights with other codebooks ignore it
    (tmp_path / "tok.safetensors").symlink_to(weights / "tokenizer-16k.safetensors")
    (tmp_path / "tok-context.safetensors").symlink_to(weights / "speech-rvq-16k-context.safetensors")
    assert ncodec.load(str(tmp_path / "tok.safetensors")).code_model is None


def test_cli_chooses_the_entropy_coding(tmp_path):
    run = [sys.executable, "-m", "ncodec"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sizes = {}
    for entropy in ("context", "static"):
        out = tmp_path / f"{entropy}.ncb"
        r = subprocess.run(run + ["encode", str(SPEECH), str(out), "--bitrate", "1.5", "--entropy", entropy], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert ("code_model" in container.read_header(out.read_bytes()).meta) == (entropy == "context")
        sizes[entropy] = out.stat().st_size
    assert sizes["context"] < sizes["static"]
    r = subprocess.run(run + ["encode", str(SPEECH), str(tmp_path / "x.ncb"), "--entropy", "fancy"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and not (tmp_path / "x.ncb").exists()
