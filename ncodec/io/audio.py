"""Audio files: read through soundfile (libsndfile), with PyAV (FFmpeg) for the rest; written as
16-bit WAV or FLAC, whole (:func:`audio_bytes`) or streamed (:class:`AudioWriter`), atomically.

Samples are float32 ``[C, T]`` (channels first) in [-1, 1]; rates are in Hz.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ncodec.io.modality import Modality, register_modality

if TYPE_CHECKING:  # torch loads in the functions that need it: a CLI call that fails early never pays for it
    import torch

__all__ = ["AUDIO_OUT_SUFFIXES", "AUDIO_SUFFIXES", "AUDIO_TRACK_SUFFIXES", "AudioWriter", "audio_bytes",
           "audio_info", "iter_audio_blocks", "read_audio"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a")
AUDIO_TRACK_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
"""Media files whose first audio track ``encode`` codes when given by name (read through PyAV)."""
AUDIO_OUT_SUFFIXES = (".wav", ".flac")

_SF_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


def _check_samples(block: np.ndarray, path: object) -> torch.Tensor:
    """A decoded ``[C, n]`` array as float32 clipped to [-1, 1]; NaN or inf raise ValueError."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
    if not torch.isfinite(t).all():
        raise ValueError(f"{path}: audio has non-finite samples (NaN or inf)")
    # Float sources and lossy decoders may overshoot full scale; callers get [-1, 1].
    return t.clamp_(-1.0, 1.0)


def _sf_open(path: str | os.PathLike):
    """soundfile's reader, or None when libsndfile cannot read the file."""
    import soundfile as sf

    try:
        return sf.SoundFile(path)
    except (RuntimeError, TypeError, ValueError, sf.LibsndfileError):
        return None


def _missing(path: str | os.PathLike) -> None:
    if not Path(path).is_file():
        raise (FileNotFoundError if not Path(path).exists() else ValueError)(f"{path}: no such audio file")


def _av_frames(path: str | os.PathLike) -> tuple[Iterator[np.ndarray], int, int]:
    """PyAV's streaming decode of the first audio stream: (float32 ``[C, n]`` blocks, channels,
    sample rate). Errors, also those raised while iterating, become ValueError."""
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises many kinds (FFmpegError, OSError, ...)
        raise ValueError(f"{path}: not a readable audio file ({exc})") from None
    streams = container.streams.audio
    channels = streams[0].codec_context.channels if streams else 0
    rate = streams[0].codec_context.sample_rate if streams else 0
    if not streams or channels < 1 or not rate or rate <= 0:
        container.close()
        raise ValueError(f"{path}: not a readable audio file (no audio stream with channels and a sample rate)")

    def frames() -> Iterator[np.ndarray]:
        # Planar float at the stream's own rate and layout: a format change only, no resampling.
        resampler = av.AudioResampler(format="fltp", layout=streams[0].layout, rate=rate)
        try:
            for frame in container.decode(streams[0]):
                for out in resampler.resample(frame):
                    yield out.to_ndarray()
            for out in resampler.resample(None):
                yield out.to_ndarray()
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"{path}: audio could not be decoded ({exc})") from None
        finally:
            container.close()

    return frames(), channels, rate


def read_audio(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """An audio file as float32 ``[C, T]`` in [-1, 1] and its sample rate (Hz).

    libsndfile (soundfile) reads WAV, FLAC, Ogg Vorbis/Opus and MP3; anything else that
    FFmpeg can (e.g. M4A/AAC) is decoded through PyAV. Float samples beyond full scale are
    clipped to [-1, 1].

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an audio file, no channels, no samples, or non-finite samples (the
            message names the path).
    """
    _missing(path)
    f = _sf_open(path)
    if f is not None:
        with f:
            channels, rate = f.channels, f.samplerate
            try:
                data = f.read(dtype="float32", always_2d=True)
            except Exception as exc:
                raise ValueError(f"{path}: audio could not be decoded ({exc})") from None
        data = data.T
    else:
        frames, channels, rate = _av_frames(path)
        blocks = list(frames)
        data = np.concatenate(blocks, axis=1) if blocks else np.zeros((channels, 0), np.float32)
    if channels < 1 or data.shape[0] < 1:
        raise ValueError(f"{path}: audio has no channels")
    if data.shape[1] == 0:
        raise ValueError(f"{path}: audio has no samples")
    return _check_samples(data, path), int(rate)


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(channels, frames, sample rate in Hz) of an audio file.

    Read from the header where libsndfile reads the file; for files only PyAV reads, the
    audio is decoded (streamed) to count the frames exactly. Errors as :func:`read_audio`.
    """
    _missing(path)
    f = _sf_open(path)
    if f is not None:
        with f:
            channels, frames, rate = f.channels, f.frames, f.samplerate
    else:
        blocks, channels, rate = _av_frames(path)
        frames = sum(b.shape[1] for b in blocks)
    if channels < 1:
        raise ValueError(f"{path}: audio has no channels")
    if frames <= 0:
        raise ValueError(f"{path}: audio has no samples")
    return int(channels), int(frames), int(rate)


def iter_audio_blocks(path: str | os.PathLike, block_frames: int) -> Iterator[torch.Tensor]:
    """Float32 ``[C, n]`` blocks of an audio file, in [-1, 1]: ``n == block_frames`` except
    for the last block. Memory does not grow with the file's length.

    Errors as :func:`read_audio`, raised from the iteration (a file with no samples raises
    ValueError when the iteration ends).
    """
    if block_frames < 1:
        raise ValueError(f"block_frames must be >= 1, got {block_frames}")
    _missing(path)
    f = _sf_open(path)
    if f is not None:
        with f:
            if f.channels < 1:
                raise ValueError(f"{path}: audio has no channels")
            total = 0
            while True:
                try:
                    data = f.read(block_frames, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise ValueError(f"{path}: audio could not be decoded ({exc})") from None
                if data.shape[0] == 0:
                    break
                total += data.shape[0]
                yield _check_samples(data.T, path)
        if not total:
            raise ValueError(f"{path}: audio has no samples")
        return
    frames, channels, _ = _av_frames(path)
    pending: list[np.ndarray] = []
    have = 0
    for block in frames:
        pending.append(block)
        have += block.shape[1]
        if have >= block_frames:
            joined = np.concatenate(pending, axis=1)
            cut = have - have % block_frames
            for start in range(0, cut, block_frames):
                yield _check_samples(joined[:, start:start + block_frames], path)
            pending, have = [joined[:, cut:]], have - cut
    if have:
        yield _check_samples(np.concatenate(pending, axis=1), path)
    elif not pending:  # nothing was decoded at all
        raise ValueError(f"{path}: audio has no samples")


def _as_channels_first(wav: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float ``[C, T]`` (or ``[T]``: mono) as float32 ``[T, C]`` clipped to [-1, 1], for soundfile."""
    import torch

    a = torch.as_tensor(wav).detach().cpu().float()
    if a.dim() == 1:
        a = a.unsqueeze(0)
    if a.dim() != 2 or a.shape[0] < 1:
        raise ValueError(f"expected audio [C, T] or [T], got shape {tuple(a.shape)}")
    return a.clamp(-1.0, 1.0).T.contiguous().numpy()


def _sf_format(suffix: str) -> str:
    kind = _SF_FORMATS.get(suffix.lower())
    if kind is None:
        raise ValueError(f"audio can be written as {'/'.join(AUDIO_OUT_SUFFIXES)}, not {suffix!r}")
    return kind


def audio_bytes(wav: torch.Tensor, sample_rate: int, suffix: str) -> bytes:
    """Float ``[C, T]`` (or ``[T]``) in [-1, 1] (clipped) as a WAV or FLAC file, 16-bit PCM.

    Raises:
        ValueError: a suffix other than .wav/.flac, or a bad shape.
    """
    import soundfile as sf

    kind = _sf_format(suffix)
    buf = io.BytesIO()
    sf.write(buf, _as_channels_first(wav), int(sample_rate), subtype="PCM_16", format=kind)
    return buf.getvalue()


class AudioWriter:
    """Stream audio blocks to a WAV or FLAC file (16-bit PCM, by the path's suffix), atomically.

    >>> with AudioWriter("out.flac", 16000, 1) as w:
    ...     w.write(block)                      # float [C, n] in [-1, 1] (clipped), or [n] when C == 1

    Blocks go to a temporary file beside the target (:func:`ncodec.io.atomic_output`), renamed
    into place when the ``with`` block ends without an exception; on an exception the temporary
    file is removed and an existing target is left untouched. An existing file is replaced only
    if ``force``.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, *, force: bool = False) -> None:
        self.path = Path(path)
        self.kind = _sf_format(self.path.suffix)
        if sample_rate <= 0 or channels < 1:
            raise ValueError(f"need a positive sample rate and channels, got {sample_rate} Hz, {channels} channels")
        self.sample_rate, self.channels, self.force = int(sample_rate), int(channels), force
        self.frames = 0  # written so far
        self._output: Any = None  # the atomic_output context of the open file
        self._file: Any = None

    def __enter__(self) -> "AudioWriter":
        import soundfile as sf

        from ncodec.io import atomic_output

        output = atomic_output(self.path, force=self.force)
        tmp = output.__enter__()
        try:
            self._file = sf.SoundFile(str(tmp), "w", samplerate=self.sample_rate, channels=self.channels,
                                      subtype="PCM_16", format=self.kind)
        except BaseException as exc:
            output.__exit__(type(exc), exc, exc.__traceback__)  # removes the temporary file
            raise
        self._output = output
        return self

    def write(self, block: torch.Tensor | np.ndarray) -> None:
        """Append float ``[C, n]`` samples (``[n]`` for mono), C equal to ``channels``."""
        if self._file is None:
            raise RuntimeError("AudioWriter.write outside its with block")
        data = _as_channels_first(block)
        if data.shape[1] != self.channels:
            raise ValueError(f"block has {data.shape[1]} channels, the file {self.channels}")
        self._file.write(data)
        self.frames += data.shape[0]

    def __exit__(self, exc_type, exc, tb) -> None:
        from ncodec.io import close_atomic

        output, f = self._output, self._file
        self._output = self._file = None
        # libsndfile writes the header's lengths on close; with an exception the temporary
        # file is removed and the exception goes on (not swallowed)
        close_atomic(output, f.close, exc_type, exc, tb)


# The audio modality: coded from and to named files, in bounded memory; rates in kbps.
def _seconds(meta: dict) -> float:
    return meta["samples"] / meta["sample_rate"]  # a file's kilobits over its seconds: kbps


register_modality(Modality("audio", input_suffixes=AUDIO_SUFFIXES, output_suffixes=AUDIO_OUT_SUFFIXES,
                           rate_unit="kbps", rate_basis=_seconds, rate_divisor=1000, streams_only=True,
                           also_reads=AUDIO_TRACK_SUFFIXES))
