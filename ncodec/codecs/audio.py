"""Audio codec objects: resampling, channels, chunked and streaming coding, tokens, files.

An :class:`AudioCodec` wraps a causal :class:`~ncodec.models.audio.AudioCodecModel`. Audio at any
sample rate is resampled to the model's rate, each channel is coded as a mono signal, and the
codes of every ``chunk_frames`` frames go into one container chunk, range-coded with the
model's per-codebook code frequencies. Decoding mirrors it and restores the input's sample
rate and length.

Guarantees:

* **Bounded memory.** Everything runs on windows of at most ``block_frames`` frames plus the
  model's receptive field, so encoding and decoding a file (:meth:`AudioCodec.encode_file`,
  :meth:`AudioCodec.decode_file`) take memory independent of its length.
* **No seams.** The model is causal with a finite receptive field: a window that starts that
  far before its first new frame yields exactly the frames of coding the whole signal at
  once, so chunk and window boundaries leave no trace (the resampler does the same with its
  filter's support; both in :mod:`ncodec.codecs.audio_blocks`).
* **Streaming = whole-file.** :class:`StreamEncoder` takes samples as they come and returns
  bytes as soon as a chunk is complete; :class:`StreamDecoder` takes those bytes in any
  pieces and returns samples. The bytes are a normal ncodec file (header, chunks, index).

Each chunk has two substreams: ``head`` (varints: frames in the chunk, valid samples at the
model's rate) and ``codes`` (``context-codes`` in a context-coded file): the range-coder
stream of the ``[channels, n_q, frames]`` codes.
A codec with a token context model (:mod:`ncodec.models.token_context`, stored beside its
weights as ``<weights stem>-context.safetensors``) codes them frame by frame, each code with the
distribution the model predicts from the codes before it, in exact integer arithmetic; the
file's meta names the model (``code_model``: its fingerprint). Files without ``code_model``
(and codecs without a context model) code codebook ``q`` with its own static table.
"""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import torch

from ncodec.codecs import container
from ncodec.codecs.audio_blocks import StreamResampler, WindowedDecoder, WindowedEncoder
from ncodec.codecs.base import Codec, Decoded
from ncodec.codecs.meta import MetaField
from ncodec.codecs.registry import CodecInfo, register, register_weights_loader
from ncodec.codecs.shipped import describe_training, shipped_or_seeded, shipped_weights, training_info
from ncodec.entropy.stage import CategoricalStage
from ncodec.errors import BitstreamError
from ncodec.models import audio as audio_models
from ncodec.models import token_context as context_models
from ncodec.models import weights as weights_io
from ncodec.models.fingerprint import state_fingerprint

__all__ = ["AudioCodec", "StreamDecoder", "StreamEncoder"]

AudioInput = Union[torch.Tensor, np.ndarray]
SUBSTREAMS = ("head", "codes")
# A file whose codes are coded with a token context model names them so: decoders from before
# context models (which know only SUBSTREAMS) refuse such a file instead of misreading it.
CONTEXT_SUBSTREAMS = ("head", "context-codes")
MAX_CHANNELS = 8
MAX_SAMPLE_RATE = 384_000
# The most frames one chunk may claim: bounds what a hostile file can make the decoder allocate.
MAX_CHUNK_FRAMES = 1 << 16
DEFAULT_CHUNK_SECONDS = 10.0
ENTROPY_CODING = ("context", "static")
"""How codes may be entropy-coded: the codec's token context model, or its static tables."""


def decoding_fingerprint(model: audio_models.AudioCodecModel) -> str:
    """The fingerprint files of ``model`` carry: of everything decoding depends on (quantizer,
    decoder, code prior; not the encoder, nor a token context model, which files name apart)."""
    return state_fingerprint({k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")})


def _as_channels_first(wav: AudioInput) -> torch.Tensor:
    """float32 ``[C, T]`` from ``[T]`` or ``[C, T]`` (tensor or array, float or int16)."""
    t = torch.as_tensor(wav)
    if t.dtype == torch.int16:
        t = t.float() / 32768.0
    if not t.is_floating_point():
        raise ValueError(f"audio must be float (or int16) samples, got {t.dtype}")
    t = t.detach().float().cpu()
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2 or not 1 <= t.shape[0] <= MAX_CHANNELS:
        raise ValueError(f"audio must be [T] or [C, T] with 1..{MAX_CHANNELS} channels, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("audio has NaN or infinite samples")
    return t


def _check_rate(sample_rate: int) -> int:
    if not isinstance(sample_rate, (int, np.integer)) or not 1000 <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be an integer in 1000..{MAX_SAMPLE_RATE} Hz, got {sample_rate!r}")
    return int(sample_rate)


class StreamEncoder:
    """Encode audio as it arrives: ``push(samples) -> bytes``, then ``close() -> bytes``.

    The bytes, concatenated, are one ncodec file (header, then one chunk per ``chunk_frames``
    frames, then the index), identical to :meth:`AudioCodec.compress` of the whole signal with
    the same ``chunk_frames``. Latency: a chunk (``chunk_frames / frame_rate`` seconds) plus
    the resampler's look-ahead.
    """

    def __init__(self, codec: "AudioCodec", sample_rate: int, channels: int, *, bitrate: Optional[float] = None,
                 chunk_frames: Optional[int] = None, samples: Optional[int] = None, entropy: str = "context"):
        self.codec = codec
        if entropy not in ENTROPY_CODING:
            raise ValueError(f"entropy must be one of {', '.join(ENTROPY_CODING)}, not {entropy!r}")
        # The context model when the codec has one and it is not declined.
        self.context = entropy == "context" and codec.token_context is not None
        self.sample_rate = _check_rate(sample_rate)
        if not 1 <= channels <= MAX_CHANNELS:
            raise ValueError(f"channels must be in 1..{MAX_CHANNELS}, got {channels}")
        self.channels = channels
        self.bitrate = codec.bitrate if bitrate is None else float(bitrate)
        self.n_q = codec.arch.n_q_for(self.bitrate)
        self.chunk_frames = int(chunk_frames or codec.chunk_frames)
        if not 1 <= self.chunk_frames <= MAX_CHUNK_FRAMES:
            raise ValueError(f"chunk_frames must be in 1..{MAX_CHUNK_FRAMES}")
        quality = 1 + min(range(len(codec.bitrates)), key=lambda i: abs(codec.bitrates[i] - self.bitrate))
        meta = {"quality": quality, "bitrate": self.bitrate, "n_q": self.n_q,
                "sample_rate": self.sample_rate, "model_sample_rate": codec.sample_rate,
                "channels": channels, "chunk_frames": self.chunk_frames}
        if samples is not None:
            meta["samples"] = int(samples)
        if self.context:
            meta["code_model"] = codec.code_model
        header = container.Header(codec=codec.name, fingerprint=codec.fingerprint, modality="audio",
                                  substreams=CONTEXT_SUBSTREAMS if self.context else SUBSTREAMS, meta=meta)
        self.meta = header.meta
        self._sink = io.BytesIO()
        self._writer = container.ContainerWriter(self._sink, header)
        self._resampler = StreamResampler(self.sample_rate, codec.sample_rate, channels)
        self._encoder = WindowedEncoder(codec.model, channels, self.n_q, max(self.chunk_frames, codec.block_frames))
        self._pending: list[torch.Tensor] = []
        self._pending_frames = 0
        self._model_samples = 0  # at the model's rate, resampled so far
        self._written_frames = 0
        self._closed = False

    def _take(self) -> bytes:
        data = self._sink.getvalue()
        self._sink.seek(0)
        self._sink.truncate()
        return data

    def _write_chunks(self, final: bool) -> None:
        while self._pending_frames >= self.chunk_frames or (final and self._pending_frames):
            codes = torch.cat(self._pending, dim=-1)
            n = min(self.chunk_frames, codes.shape[-1])
            chunk, rest = codes[..., :n], codes[..., n:]
            self._pending = [rest] if rest.shape[-1] else []
            self._pending_frames = rest.shape[-1]
            hop = self.codec.hop
            valid = min(n * hop, self._model_samples - self._written_frames * hop) if final and not rest.shape[-1] \
                else n * hop
            self._writer.add_chunk([container.pack_ints((n, valid)), self.codec.code_bytes(chunk, context=self.context)])
            self._written_frames += n

    def push(self, wav: AudioInput) -> bytes:
        """Add samples ``[C, n]`` (or ``[n]`` for mono) at ``sample_rate``; returns new bytes."""
        if self._closed:
            raise ValueError("the stream is closed")
        x = _as_channels_first(wav)
        if x.shape[0] != self.channels:
            raise ValueError(f"stream has {self.channels} channel(s), got {x.shape[0]}")
        y = self._resampler.push(x)
        self._model_samples += y.shape[-1]
        for codes in self._encoder.push(y):
            self._pending.append(codes)
            self._pending_frames += codes.shape[-1]
        self._write_chunks(final=False)
        return self._take()

    def close(self) -> bytes:
        """Code what is left and finish the file; returns the last bytes."""
        if self._closed:
            return b""
        self._closed = True
        y = self._resampler.flush()
        self._model_samples += y.shape[-1]
        for codes in self._encoder.push(y, final=True):
            self._pending.append(codes)
            self._pending_frames += codes.shape[-1]
        self._write_chunks(final=True)
        self._writer.close()
        return self._take()


class StreamDecoder:
    """Decode an ncodec audio file from its bytes in any pieces: ``push(bytes) -> samples``.

    Returns float32 ``[C, n]`` at the file's ``sample_rate`` (known once the header has
    arrived: :attr:`sample_rate`, :attr:`channels`); ``close()`` checks that the file ended
    properly (index and trailer) and returns the last samples.
    """

    def __init__(self, codec: "AudioCodec"):
        self.codec = codec
        self._reader = container.ContainerStreamReader()
        self.meta: Optional[dict] = None
        self._decoder = WindowedDecoder(codec.model, codec.block_frames)
        self._resampler: Optional[StreamResampler] = None
        self._out_samples = 0
        self._model_samples = 0
        self._frames = 0

    @property
    def sample_rate(self) -> Optional[int]:
        return None if self.meta is None else self.meta["sample_rate"]

    @property
    def channels(self) -> Optional[int]:
        return None if self.meta is None else self.meta["channels"]

    def _limit(self, y: torch.Tensor) -> torch.Tensor:
        total = self.meta.get("samples") if self.meta else None
        if total is not None:
            y = y[:, : max(0, total - self._out_samples)]
        self._out_samples += y.shape[-1]
        return y

    def push(self, data: bytes) -> torch.Tensor:
        """Samples ``[C, n]`` decodable once ``data`` is appended (``n`` may be 0)."""
        outs = list(self.push_chunks(data))
        channels = self.meta["channels"] if self.meta else 1
        return torch.cat(outs, -1) if outs else torch.zeros(channels, 0)

    def push_chunks(self, data: bytes) -> Iterator[torch.Tensor]:
        """As :meth:`push`, one container chunk's samples at a time: the memory in use stays
        that of one chunk however much audio ``data`` holds (at 1.5 kbps, 64 KiB is 6 minutes)."""
        for chunk in self._reader.push(data):
            self._start()
            yield self._decode_chunk(chunk)
        if self._reader.header is not None:
            self._start()

    def _start(self) -> None:
        if self.meta is None:
            self.begin(self.codec.check_header(self._reader.header))

    def begin(self, meta: dict) -> None:
        """Start decoding chunks of a file whose header's checked ``meta`` is given (for
        callers that parse the container themselves, e.g. :meth:`AudioCodec.decode_chunks`)."""
        self.meta = meta
        self._resampler = StreamResampler(self.codec.sample_rate, meta["sample_rate"], meta["channels"])

    def _decode_chunk(self, substreams: list[bytes]) -> torch.Tensor:
        meta = self.meta
        frames, valid = container.unpack_ints(substreams[0], 2, "audio chunk head")
        if not 1 <= frames <= min(meta["chunk_frames"], MAX_CHUNK_FRAMES) or valid > frames * self.codec.hop:
            raise BitstreamError(f"audio chunk claims {frames} frames and {valid} samples")
        if self._model_samples != self._frames * self.codec.hop:
            raise BitstreamError("audio chunk follows a short (final) chunk")
        codes = self.codec.decode_codes(substreams[1], meta["channels"], meta["n_q"], frames, meta.get("code_model"))
        self._frames += frames
        pieces = self._decoder.push(codes)
        wav = torch.cat(pieces, -1)[:, :valid]
        self._model_samples += valid
        return self._limit(self._resampler.push(wav))

    def close(self) -> torch.Tensor:
        """Checks that the file ended with its index and trailer; returns the last samples."""
        self._reader.close()
        if self.meta is None:
            raise BitstreamError("the stream ended before its header")
        return self.finish()

    def finish(self) -> torch.Tensor:
        """The samples the resampler still holds, once every chunk is decoded."""
        return self._limit(self._resampler.flush())


class AudioCodec(Codec):
    """A learned audio codec (one model, every bitrate it offers; the
    :class:`~ncodec.codecs.base.Codec` interface).

    Args:
        name: registry name, written in every file.
        model: a causal :class:`~ncodec.models.audio.AudioCodecModel` (eval mode is set).
        quality: 1-based index into the model's ``bitrates``: the default bitrate.
        device: where the model runs.
        chunk_seconds: audio per container chunk (the unit of random access).
        block_seconds: audio per model call (bounds memory; does not change the bytes).
        context: a token context model trained on this model's codebooks: codes are coded
            with it (smaller files, slower decoding: one small integer MLP per code).

    Attributes:
        sample_rate: the model's rate in Hz (input at other rates is resampled).
        bitrates: nominal kbps it offers (``n_q * log2(K) * frame_rate``); actual files are
            smaller, as the codes are entropy-coded.
        code_model: fingerprint (16 hex digits) of the token context model, or None.
        token_context: its exact twin (:class:`~ncodec.models.token_context.ExactTokenContext`), or None.
    """

    modality = "audio"
    substreams = None  # SUBSTREAMS, or CONTEXT_SUBSTREAMS with code_model: checked by check_meta
    encode_options = ("bitrate", "entropy")
    meta_schema = {
        "quality": MetaField(int, lo=1), "sample_rate": MetaField(int, lo=1000, hi=MAX_SAMPLE_RATE),
        "channels": MetaField(int, lo=1, hi=MAX_CHANNELS), "n_q": MetaField(int, lo=1),
        "chunk_frames": MetaField(int, lo=1, hi=MAX_CHUNK_FRAMES), "model_sample_rate": MetaField(int),
        "samples": MetaField(int, lo=0, required=False), "bitrate": MetaField(float, required=False),
        # The token context model that coded the codes (its fingerprint); absent: the static prior.
        "code_model": MetaField(str, required=False),
    }

    def __init__(self, name: str, model: audio_models.AudioCodecModel, quality: int = 1,
                 device: torch.device | str = "cpu", *, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                 block_seconds: float = 10.0, context: Optional[context_models.TokenContextModel] = None):
        self.name = name
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.arch = model.arch
        self.sample_rate, self.hop = self.arch.sample_rate, self.arch.hop
        self.frame_rate = self.arch.frame_rate
        self.bitrates = tuple(self.arch.bitrates)
        if not 1 <= quality <= len(self.bitrates):
            raise ValueError(f"{name} has qualities 1..{len(self.bitrates)}, not {quality}")
        self.quality = quality
        self.bitrate = self.bitrates[quality - 1]
        self.chunk_frames = max(1, round(chunk_seconds * self.frame_rate))
        self.block_frames = max(1, round(block_seconds * self.frame_rate))
        self.fingerprint = decoding_fingerprint(self.model)
        # One frequency prior per codebook (params: codebook index); codes are in 0 .. K-1,
        # so the escape is never coded, and a decoded escape is a BitstreamError.
        self._code_stage = CategoricalStage.from_counts(self.model.code_counts, tail_mass=1e-9)
        # The token context model (exact twin) and its fingerprint, written in every file it codes.
        self.token_context: Optional[context_models.ExactTokenContext] = None
        self.code_model: Optional[str] = None
        if context is not None:
            self.token_context = context.exact(self.codebooks())
            self.code_model = state_fingerprint(context.state_dict())[:16]

    def __repr__(self) -> str:
        return f"AudioCodec({self.name!r}, {self.sample_rate} Hz, bitrates={list(self.bitrates)} kbps)"

    # ---------------------------------------------------------------- entropy coding of codes

    def codebooks(self) -> torch.Tensor:
        """The quantizer's stored code vectors, float32 ``[n_q, K, D]`` on the CPU."""
        return torch.stack([layer.codebook.detach().float().cpu() for layer in self.model.quantizer.layers])

    def code_bytes(self, codes: torch.Tensor, context: bool = True) -> bytes:
        """Range-code ``codes [C, n_q, F]``: with the token context model when the codec has
        one (:attr:`code_model`) and ``context``, else with the per-codebook tables."""
        if context and self.token_context is not None:
            return self.token_context.encode(codes)
        c, n_q, f = codes.shape
        codebooks = torch.arange(n_q, dtype=torch.int32).view(1, n_q, 1).expand(c, n_q, f)
        return self._code_stage.encode(codes, codebooks)

    def decode_codes(self, data: bytes, channels: int, n_q: int, frames: int,
                     code_model: Optional[str] = None) -> torch.Tensor:
        """Inverse of :meth:`code_bytes` for a file whose meta names ``code_model`` (None: the
        static prior); int64 ``[channels, n_q, frames]``."""
        if code_model is not None:
            if code_model != self.code_model:
                raise BitstreamError(f"audio file was coded with token context model {code_model!r}; this codec "
                                     f"has {self.code_model or 'none'}")
            return self.token_context.decode(data, channels, n_q, frames)
        codebooks = torch.arange(n_q, dtype=torch.int32).view(1, n_q, 1).expand(channels, n_q, frames)
        # BitstreamError on a foreign stream and on codes outside 0 .. codebook_size-1.
        return self._code_stage.decode(data, codebooks).long()

    # ---------------------------------------------------------------- whole signals

    def stream_encoder(self, sample_rate: int, channels: int = 1, *, bitrate: Optional[float] = None,
                       chunk_frames: Optional[int] = None, samples: Optional[int] = None,
                       entropy: str = "context") -> StreamEncoder:
        """A :class:`StreamEncoder` for audio at ``sample_rate`` with ``channels``."""
        return StreamEncoder(self, sample_rate, channels, bitrate=bitrate, chunk_frames=chunk_frames,
                             samples=samples, entropy=entropy)

    def stream_decoder(self) -> StreamDecoder:
        """A :class:`StreamDecoder` for files of this codec."""
        return StreamDecoder(self)

    def compress(self, wav: AudioInput, sample_rate: Optional[int] = None, *, bitrate: Optional[float] = None,
                 chunk_frames: Optional[int] = None, entropy: str = "context") -> bytes:
        """Code ``wav`` (float ``[T]`` or ``[C, T]`` in [-1, 1], at ``sample_rate`` Hz, default
        the model's) at ``bitrate`` kbps (one of :attr:`bitrates`; default the quality's). The
        bitrate is nominal and per channel: each channel is coded on its own, so stereo costs
        about twice, and the header records this nominal figure (``ncodec info`` also prints
        the rate measured from the file's size). ``entropy``: ``"context"`` codes the tokens
        with the codec's token context model (when it has one: smaller files, slower coding),
        ``"static"`` with its per-codebook tables."""
        x = _as_channels_first(wav)
        enc = self.stream_encoder(self.sample_rate if sample_rate is None else sample_rate, x.shape[0], bitrate=bitrate,
                                  chunk_frames=chunk_frames, samples=x.shape[-1], entropy=entropy)
        parts = []
        step = self.block_frames * self.hop * 4
        for start in range(0, x.shape[-1], step):
            parts.append(enc.push(x[:, start:start + step]))
        parts.append(enc.close())
        return b"".join(parts)

    def decode_chunks(self, header: container.Header, meta: dict, chunks: list[list[bytes]]) -> Decoded:
        """The audio of a checked file: float32 ``[C, T]`` at its ``sample_rate`` (those of the
        input to :meth:`compress`). Files are decoded chunk by chunk, as :class:`StreamDecoder`
        does; :meth:`decode_file` does it in bounded memory."""
        dec = self.stream_decoder()
        dec.begin(meta)
        try:
            pieces = [dec._decode_chunk(chunk) for chunk in chunks]
            pieces.append(dec.finish())
        except (RuntimeError, IndexError) as exc:
            raise BitstreamError(f"file does not fit the {self.name} model: {exc}") from None
        return Decoded(torch.cat(pieces, -1), "audio", sample_rate=meta["sample_rate"], meta=meta)

    # ---------------------------------------------------------------- tokens

    def tokenize(self, wav: AudioInput, sample_rate: Optional[int] = None, *,
                 bitrate: Optional[float] = None) -> torch.Tensor:
        """Codes of ``wav`` for language models: LongTensor ``[n_q, F]`` for mono input (``[T]``
        or ``[1, T]``), ``[C, n_q, F]`` for ``C > 1`` channels; ``F = ceil(T' / hop)`` at the
        model's rate."""
        x = _as_channels_first(wav)
        sr = _check_rate(self.sample_rate if sample_rate is None else sample_rate)
        n_q = self.arch.n_q_for(self.bitrate if bitrate is None else float(bitrate))
        resampler = StreamResampler(sr, self.sample_rate, x.shape[0])
        encoder = WindowedEncoder(self.model, x.shape[0], n_q, self.block_frames)
        codes = encoder.push(resampler.push(x)) + encoder.push(resampler.flush(), final=True)
        tokens = torch.cat(codes, -1) if codes else torch.zeros(x.shape[0], n_q, 0, dtype=torch.long)
        return tokens[0] if x.shape[0] == 1 else tokens

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """Waveform at the model's rate of tokens ``[n_q, F]`` (-> ``[1, F * hop]``) or
        ``[C, n_q, F]`` (-> ``[C, F * hop]``); ``n_q`` may be any prefix of the codebooks."""
        t = torch.as_tensor(tokens).long()
        if t.dim() == 2:
            t = t.unsqueeze(0)
        if t.dim() != 3 or not 1 <= t.shape[1] <= self.arch.n_q:
            raise ValueError(f"tokens must be [n_q, F] or [C, n_q, F] with n_q <= {self.arch.n_q}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.arch.codebook_size):
            raise ValueError(f"tokens must be in 0..{self.arch.codebook_size - 1}")
        pieces = WindowedDecoder(self.model, self.block_frames).push(t)
        return torch.cat(pieces, -1) if pieces else torch.zeros(t.shape[0], 0)

    # ---------------------------------------------------------------- files

    def input_warnings(self, src: str | os.PathLike) -> list[str]:
        """A warning when a 16 kHz speech codec gets wideband or multichannel audio (music,
        most likely): what it will lose."""
        from ncodec.io import audio_info

        if self.sample_rate > 16000:
            return []
        channels, _, rate = audio_info(src)
        if rate <= 2 * self.sample_rate and channels == 1:
            return []
        return [f"{src}: {self.name} is a {self.sample_rate // 1000} kHz speech codec; this {rate} Hz, "
                f"{channels}-channel input (music?) loses everything above {self.sample_rate // 2000} kHz, and "
                f"each channel costs the bitrate again"]

    def describe_file(self, meta: dict, size: int) -> str:
        """Measured kbps, with the nominal bitrate per channel and the duration."""
        seconds = meta["samples"] / meta["sample_rate"]
        return (f"{8 * size / 1000 / seconds:.2f} kbps measured ({meta['channels']} channel(s) at "
                f"{meta['bitrate']:g} kbps nominal each), {seconds:.1f} s")

    def encode_file(self, src: str | os.PathLike, dst: str | os.PathLike, *, bitrate: Optional[float] = None,
                    force: bool = False, block_seconds: float = 10.0, entropy: str = "context") -> dict:
        """Code audio file ``src`` into ncodec file ``dst`` in bounded memory; returns its summary."""
        from ncodec.io import atomic_output, audio_info, iter_audio_blocks

        target = Path(dst)
        with atomic_output(target, force=force) as tmp:  # checks dst before the input is read
            channels, frames, sr = audio_info(src)
            enc = self.stream_encoder(sr, channels, bitrate=bitrate, samples=frames, entropy=entropy)
            with open(tmp, "wb") as f:
                for block in iter_audio_blocks(src, max(1, int(block_seconds * sr))):
                    f.write(enc.push(block))
                f.write(enc.close())
        size = target.stat().st_size
        return {"bytes_in": Path(src).stat().st_size, "bytes_out": size, "meta": enc.meta, "samples": frames,
                "sample_rate": sr, "channels": channels, "bytes": size, "n_q": enc.n_q, "bitrate": enc.bitrate}

    def decode_file(self, src: str | os.PathLike, dst: str | os.PathLike, *, force: bool = False,
                    suffix: Optional[str] = None, read_bytes: int = 1 << 16) -> dict:
        """Decode ncodec file ``src`` into a WAV/FLAC ``dst`` in bounded memory.

        ``suffix``, if given, must be ``dst``'s: the file type comes from its name."""
        if suffix is not None and Path(dst).suffix.lower() != suffix.lower():
            raise ValueError(f"{dst}: audio is written as the file type its name says, not {suffix}")
        from ncodec.io import AudioWriter

        dec = self.stream_decoder()
        samples = 0
        with open(src, "rb") as f:
            # Chunk by chunk, each written before the next is decoded: bounded memory.
            chunks = (y for data in iter(lambda: f.read(read_bytes), b"") for y in dec.push_chunks(data))
            first = next(chunks, None)  # the header is parsed before the first chunk
            if dec.meta is None:
                raise BitstreamError(f"{src}: no complete ncodec header")
            with AudioWriter(dst, dec.sample_rate, dec.channels, force=force) as w:
                for y in itertools.chain([] if first is None else [first], chunks):
                    w.write(y)
                    samples += y.shape[-1]
                y = dec.close()
                w.write(y)
                samples += y.shape[-1]
        return {"bytes_in": Path(src).stat().st_size, "bytes_out": Path(dst).stat().st_size, "meta": dec.meta,
                "samples": samples, "sample_rate": dec.sample_rate, "channels": dec.channels}

    # ---------------------------------------------------------------- header

    def check_meta(self, meta: dict, header: container.Header) -> dict:
        """Fields that depend on the model: its rate and codebook count."""
        if meta["model_sample_rate"] != self.sample_rate:
            raise BitstreamError(f"audio file header has an invalid model_sample_rate: {meta['model_sample_rate']!r}")
        if meta["n_q"] > self.arch.n_q:
            raise BitstreamError(f"audio file header has an invalid n_q: {meta['n_q']!r}")
        expected = SUBSTREAMS if meta.get("code_model") is None else CONTEXT_SUBSTREAMS
        if tuple(header.substreams) != expected:
            raise BitstreamError(f"audio file substreams are {list(header.substreams)}, expected {list(expected)}")
        if meta.get("code_model") is not None and meta["code_model"] != self.code_model:
            raise BitstreamError(f"audio file was coded with token context model {meta['code_model']!r}; this "
                                 f"codec has {self.code_model or 'none'}")
        return meta


# -------------------------------------------------------------------- registry


# Shipped audio codecs: registry name -> architecture; the first with weights is the default.
SHIPPED = ("speech-rvq-16k", "tokenizer-16k", "audio-rvq-24k")


def context_beside(weights: Optional[Path], codec_fingerprint: str) -> Optional[context_models.TokenContextModel]:
    """The token context model stored beside audio weights file ``weights``
    (``<stem>-context.safetensors``: ``speech-rvq-16k-context.safetensors`` for the shipped
    codec, ``previous/speech-rvq-16k@<fingerprint>-context.safetensors`` for earlier weights)
    if it was trained on the codebooks of the codec with ``codec_fingerprint``, else None."""
    if weights is None:
        return None
    path = weights.with_name(f"{weights.stem}-context.safetensors")
    if not path.is_file() or training_info(path).get("codec_fingerprint") != codec_fingerprint:
        return None
    try:
        return weights_io.load_weights(path)
    except (RuntimeError, ValueError, KeyError) as exc:  # e.g. shapes of another context architecture
        raise ValueError(f"{path}: not a token context model ncodec can load ({exc})") from None


def _codec(name: str, model: audio_models.AudioCodecModel, quality: int, device: torch.device,
           weights: Optional[Path]) -> AudioCodec:
    """An :class:`AudioCodec` of ``model`` with the context model beside ``weights``, if any."""
    context = context_beside(weights, decoding_fingerprint(model))
    return AudioCodec(name, model, quality, device, context=context)


def _factory(arch: str):
    def build(quality: int, device: torch.device) -> AudioCodec:
        model = shipped_or_seeded(arch, arch, lambda: audio_models.build_audio_model(arch))
        return _codec(arch, model, quality, device, shipped_weights(arch))

    return build


def _codec_info(arch: str, path: Optional[Path], *, default: bool = False, description: str = "") -> CodecInfo:
    spec = audio_models.ARCHITECTURES[arch]
    qualities = tuple(range(1, len(spec.bitrates) + 1))
    return CodecInfo(name=arch, modality="audio", qualities=qualities, default_quality=len(spec.bitrates),
                     default=default, description=description or spec.description,
                     weights=describe_training(training_info(path)), rate_unit="kbps",
                     rates={q: float(b) for q, b in zip(qualities, spec.bitrates)}, trained=path is not None)


def _from_weights(path: Path, quality: Optional[int], device: torch.device) -> tuple[CodecInfo, "AudioCodec"]:
    """An audio weights file (``ncodec train audio``'s export) as (its CodecInfo, a codec)."""
    meta = weights_io.read_metadata(path, weights_io.AUDIO_FORMAT)
    arch = meta.get("arch")
    if arch not in audio_models.ARCHITECTURES:
        raise ValueError(f"{path}: weights of an unknown audio architecture {arch!r}")
    spec = audio_models.ARCHITECTURES[arch]
    info = _codec_info(arch, path, description=f"{spec.description} (weights {path})")
    q = info.default_quality if quality is None else quality
    return info, _codec(arch, weights_io.load_weights(path, arch=arch), q, device, Path(path))


register_weights_loader(weights_io.AUDIO_FORMAT, _from_weights)
_default = next((a for a in SHIPPED if shipped_weights(a)), SHIPPED[0])
for _arch in SHIPPED:
    register(_codec_info(_arch, shipped_weights(_arch), default=_arch == _default), _factory(_arch))
