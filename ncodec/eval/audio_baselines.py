"""Classical audio codecs to compare against: Opus (libopus) and MP3 (LAME), through PyAV.

Each baseline codes float audio ``[C, T]`` (1 or 2 channels) at a target bitrate in kbps to
the bytes of a complete file, in memory, and decodes them back to the input's sample rate
and length:

- ``opus``: libopus in an Ogg file, ``application=voip`` (speech tuning), VBR, 60 ms frames
  up to 16 kbps (fewer packets and page bytes; the best PESQ-WB on speech at 4.5-12 kbps in
  our check against 20 and 40 ms), 20 ms above. Audio at 8/12/16/24/48 kHz goes in as it
  is, other rates are resampled to 48 kHz. libopus does not go below about 5 kbps for useful
  speech: asked for less, it sends what it can (at 1.5 kbps, about 0.9 kbps of near-silence).
- ``mp3``: LAME as a bare MP3 stream (Xing/LAME header frame for gapless decoding, no ID3
  tag). CBR when the target is one of MP3's frame bitrates at the chosen sample rate, else
  ABR (LAME's average bitrate). The sample rate is the lowest that keeps quality at that
  rate (8 kHz up to 16 kbps, 12 kHz to 32, 24 kHz to 64, 32 kHz to 128, then 44.1 kHz; never
  above the input's). MP3 has no bitrate under 8 kbps: lower targets are coded at 8 kbps.

The bytes counted are the whole file (container, headers); ``payload_bytes`` are the
codec's packets alone. Resampling (torchaudio, zero-phase sinc) is part of the timed encode
and decode. Both containers carry the codec's delay (Opus pre-skip, LAME encoder delay and
padding) and FFmpeg trims it; a residual shift of a few samples (Opus's SILK path) is found
by cross-correlation within +-5 ms and removed, untimed, so that waveform metrics (SI-SDR)
are fair. Settings are fixed, so the same input and target give the same bytes.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

__all__ = ["AUDIO_BASELINES", "AudioBaseline", "CodedAudio", "encode_decode", "get_audio_baseline",
           "parse_audio_baselines"]

AUDIO_BASELINES = ("opus", "mp3")
MAX_SHIFT_SECONDS = 0.005  # largest residual delay searched for after FFmpeg's own trimming


@dataclass(frozen=True)
class CodedAudio:
    """One encode and decode.

    Attributes:
        data: the file's bytes (container included).
        payload_bytes: the codec packets' bytes alone.
        decoded: float32 ``[C, T]`` at the input's rate and length.
        encoding_time, decoding_time: wall-clock seconds of each call (resampling included).
        codec_rate: the sample rate (Hz) the codec ran at.
    """

    data: bytes
    payload_bytes: int
    decoded: torch.Tensor
    encoding_time: float
    decoding_time: float
    codec_rate: int


def _resample(x: torch.Tensor, sr: int, rate: int) -> torch.Tensor:
    import torchaudio.functional as AF

    return x if sr == rate else AF.resample(x, sr, rate)


def _layout(channels: int) -> str:
    if channels not in (1, 2):
        raise ValueError(f"the audio baselines code mono or stereo, not {channels} channels")
    return "mono" if channels == 1 else "stereo"


def _best_shift(ref: np.ndarray, deg: np.ndarray, max_shift: int) -> int:
    """The lag in samples (positive: ``deg`` is late) in [-max_shift, max_shift] that
    maximises the cross-correlation of two mono signals of the same length."""
    n = ref.shape[0]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.r_[np.arange(0, max_shift + 1), np.arange(-max_shift, 0)]
    values = np.r_[corr[:max_shift + 1], corr[size - max_shift:]]
    return int(lags[int(np.argmax(values))]) if np.isfinite(values).all() else 0


def _fit(x: torch.Tensor, length: int) -> torch.Tensor:
    """Cropped or zero-padded at the end to ``length`` samples."""
    if x.shape[1] >= length:
        return x[:, :length]
    return torch.nn.functional.pad(x, (0, length - x.shape[1]))


def compensate_delay(ref: torch.Tensor, deg: torch.Tensor, sr: int,
                     max_seconds: float = MAX_SHIFT_SECONDS) -> torch.Tensor:
    """``deg`` (``[C, T']``) shifted by the lag of best cross-correlation with ``ref``
    (``[C, T]``, channels averaged) within +-``max_seconds``, then fitted to ``T`` samples."""
    length = ref.shape[1]
    deg = _fit(deg, length)
    max_shift = min(int(round(max_seconds * sr)), length - 1)
    if max_shift <= 0:
        return deg
    lag = _best_shift(ref.double().mean(0).numpy(), deg.double().mean(0).numpy(), max_shift)
    if lag > 0:
        deg = torch.nn.functional.pad(deg[:, lag:], (0, lag))
    elif lag < 0:
        deg = torch.nn.functional.pad(deg[:, :lag], (-lag, 0))
    return deg


class AudioBaseline:
    """A classical audio codec run through PyAV.

    Attributes:
        name: registry key and output key ("opus").
        label: display name ("Opus").
        codec: FFmpeg encoder name ("libopus").
        container: FFmpeg muxer ("ogg", "mp3").
        setting: one line on the settings, for the description.
    """

    name: str = ""
    label: str = ""
    codec: str = ""
    container: str = ""
    setting: str = ""

    def check(self) -> None:
        """Raise ValueError if this PyAV has no such encoder."""
        import av

        try:
            av.codec.Codec(self.codec, "w")
        except Exception:
            raise ValueError(f"baseline {self.name}: this PyAV (FFmpeg) has no {self.codec} encoder "
                             "(pip install -U av)") from None

    def library(self) -> str:
        import av

        versions = getattr(av, "library_versions", {})
        lavc = ".".join(map(str, versions.get("libavcodec", ()))) or "?"
        return f"{self.codec} via PyAV {av.__version__} (libavcodec {lavc})"

    def describe(self) -> str:
        return f"{self.label} ({self.library()}); {self.setting}; kbps from whole files"

    def rate_for(self, sr: int, kbps: float) -> int:
        """The sample rate (Hz) the codec runs at for input at ``sr`` and ``kbps``."""
        raise NotImplementedError

    def options(self, rate: int, kbps: float) -> tuple[int, dict[str, str]]:
        """(bit_rate in bit/s, encoder options) for the codec context."""
        raise NotImplementedError

    def encode(self, wav: torch.Tensor, sr: int, kbps: float) -> tuple[bytes, int]:
        """Float ``[C, T]`` at ``sr`` Hz -> (the file's bytes, payload bytes)."""
        import av

        x = torch.as_tensor(wav).detach().cpu().float()
        layout = _layout(x.shape[0])
        rate = self.rate_for(sr, kbps)
        a = _resample(x, sr, rate).clamp(-1, 1).numpy()
        bit_rate, options = self.options(rate, kbps)
        buf = io.BytesIO()
        payload = 0
        # bitexact: no library version strings in the headers, so the bytes are reproducible.
        with av.open(buf, "w", format=self.container, options={"fflags": "+bitexact", **self.muxer_options()}) as out:
            stream = out.add_stream(self.codec, rate=rate, layout=layout)
            stream.bit_rate = bit_rate
            stream.options = options
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(a), format="fltp", layout=layout)
            frame.sample_rate, frame.pts = rate, 0
            packets = list(stream.encode(frame)) + list(stream.encode(None))  # PyAV cuts codec frames
            unused = dict(stream.codec_context.options or {})
            if unused:
                raise RuntimeError(f"{self.codec} ignored the options {unused}")
            for packet in packets:
                payload += packet.size
                out.mux(packet)
        return buf.getvalue(), payload

    def muxer_options(self) -> dict[str, str]:
        return {}

    def decode(self, data: bytes, sr: int) -> torch.Tensor:
        """The file's bytes -> float32 ``[C, T']`` resampled to ``sr`` Hz (FFmpeg trims the
        codec delay and padding the container records)."""
        import av

        blocks = []
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
            for frame in container.decode(stream):
                blocks += [f.to_ndarray() for f in resampler.resample(frame)]
            blocks += [f.to_ndarray() for f in resampler.resample(None)]
            rate = stream.rate
        y = torch.from_numpy(np.concatenate(blocks, axis=1).astype(np.float32, copy=False))
        return _resample(y, rate, sr)

    def run(self, wav: torch.Tensor, sr: int, kbps: float) -> CodedAudio:
        """Encode then decode float ``[C, T]`` at ``sr`` Hz, timing each; the decoded audio is
        delay-compensated (untimed) and fitted to ``T`` samples."""
        x = torch.as_tensor(wav).detach().cpu().float()
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if x.dim() != 2 or x.shape[1] == 0:
            raise ValueError(f"expected audio [C, T] with T > 0, got shape {tuple(x.shape)}")
        if kbps <= 0:
            raise ValueError(f"the bitrate must be positive, got {kbps} kbps")
        start = time.perf_counter()
        data, payload = self.encode(x, sr, kbps)
        enc = time.perf_counter() - start
        start = time.perf_counter()
        y = self.decode(data, sr)
        dec = time.perf_counter() - start
        if y.shape[0] != x.shape[0]:
            raise RuntimeError(f"{self.name} decoded {y.shape[0]} channels, expected {x.shape[0]}")
        y = compensate_delay(x, y, sr)
        return CodedAudio(data, payload, y.contiguous(), enc, dec, self.rate_for(sr, kbps))


class Opus(AudioBaseline):
    name, label, codec, container = "opus", "Opus", "libopus", "ogg"
    setting = "VBR, application voip, 60 ms frames up to 16 kbps (20 ms above), Ogg file"
    RATES = (8000, 12000, 16000, 24000, 48000)

    def rate_for(self, sr: int, kbps: float) -> int:
        return sr if sr in self.RATES else 48000

    def options(self, rate: int, kbps: float) -> tuple[int, dict[str, str]]:
        # libopus accepts 0.5 to 256 kbps per channel.
        return max(500, int(round(kbps * 1000))), {
            "application": "voip", "vbr": "on", "frame_duration": "60" if kbps <= 16 else "20"}


# MP3 frame bitrates (kbps): MPEG-1 at 32/44.1/48 kHz, MPEG-2 and 2.5 below.
_MP3_CBR_MPEG1 = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MP3_CBR_MPEG2 = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


class MP3(AudioBaseline):
    name, label, codec, container = "mp3", "MP3", "libmp3lame", "mp3"
    setting = ("CBR at MP3 frame bitrates else ABR, 8 kbps at least; sample rate 8 kHz to 16 kbps, 12 kHz to 32, "
               "24 kHz to 64, 32 kHz to 128, else 44.1 kHz; MP3 stream with Xing/LAME header, no ID3")

    def rate_for(self, sr: int, kbps: float) -> int:
        # Lowest rate that keeps quality at this bitrate: PESQ-WB on speech, in our check.
        wanted = 8000 if kbps <= 16 else 12000 if kbps <= 32 else 24000 if kbps <= 64 else \
            32000 if kbps <= 128 else 44100
        legal = [r for r in _MP3_RATES if r <= max(sr, 8000)]
        return min(wanted, legal[-1])

    def options(self, rate: int, kbps: float) -> tuple[int, dict[str, str]]:
        table = _MP3_CBR_MPEG1 if rate >= 32000 else _MP3_CBR_MPEG2
        target = min(max(kbps, table[0]), table[-1])
        cbr = any(abs(target - b) < 1e-9 for b in table)
        return int(round(target * 1000)), ({} if cbr else {"abr": "1"})

    def muxer_options(self) -> dict[str, str]:
        return {"id3v2_version": "0", "write_id3v1": "0"}


_CLASSES: dict[str, type[AudioBaseline]] = {cls.name: cls for cls in (Opus, MP3)}


def get_audio_baseline(name: str) -> AudioBaseline:
    """The audio baseline ``name``, checked usable here (ValueError if not)."""
    if name not in _CLASSES:
        raise ValueError(f"unknown audio baseline {name!r}; known: {', '.join(AUDIO_BASELINES)} (or none)")
    baseline = _CLASSES[name]()
    baseline.check()
    return baseline


def parse_audio_baselines(text: str | Sequence[str]) -> list[str]:
    """``"opus,mp3"`` (or a list) -> ``["opus", "mp3"]``; ``"none"`` or empty -> ``[]``.
    Unknown names raise ValueError; duplicates are dropped, the order kept."""
    from ncodec.eval.plugin import parse_names

    return parse_names(text, list(_CLASSES), "audio baseline")


def encode_decode(name: str, wav: torch.Tensor, sr: int, kbps: float) -> tuple[bytes, torch.Tensor]:
    """Code float ``[C, T]`` (or ``[T]``) at ``sr`` Hz with baseline ``name`` at ``kbps``:
    (the file's bytes, the decoded float32 ``[C, T]`` at ``sr``, delay-compensated). The
    real rate is ``8 * len(bytes) / (T / sr) / 1000`` kbps."""
    coded = get_audio_baseline(name).run(wav, sr, kbps)
    return coded.data, coded.decoded
