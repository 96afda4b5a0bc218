"""Audio quality metrics: PESQ (wide-band), STOI, SI-SDR and a multi-scale mel distance.

Every function takes a reference and a degraded signal as float tensors ``[C, T]`` or
``[T]`` (mono) in [-1, 1], the same number of channels and samples (see :func:`align`), at
sample rate ``sr`` in Hz. PESQ and STOI are defined on one channel: multi-channel signals
are averaged to mono first. SI-SDR and the mel distance are computed per channel and
averaged.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import torch

__all__ = ["MEL_N_MELS", "MEL_WINDOWS", "PESQ_MIN_SECONDS", "align", "mel_distance", "pesq_wb", "si_sdr", "stoi"]

PESQ_MIN_SECONDS = 0.25  # ITU-T P.862 needs at least a quarter second of signal
PESQ_RATE = 16000        # wide-band PESQ (P.862.2) is defined at 16 kHz

# DAC's MelSpectrogramLoss (descript-audio-codec, conf/base.yml): 7 STFT sizes, hop = window/4,
# Hann window, magnitude mel spectrogram (slaney mel scale and norm, as librosa), log10 of it
# clamped at 1e-5, L1, summed over the scales.
MEL_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
MEL_N_MELS = (5, 10, 20, 40, 80, 160, 320)
_MEL_EPS = 1e-5


def _as_2d(x: torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().cpu()
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2 or t.shape[0] < 1:
        raise ValueError(f"{what}: expected audio [C, T] or [T], got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{what}: expected float audio, got {t.dtype}")
    return t.double()


def align(ref: torch.Tensor, deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both signals cropped to their common length, as ``[C, T]`` (``[T]`` becomes ``[1, T]``).

    Only the ends are cut: no delay is estimated (codecs are expected to return time-aligned
    audio). Raises ValueError if the channel counts differ.
    """
    r = torch.as_tensor(ref)
    d = torch.as_tensor(deg)
    r = r.unsqueeze(0) if r.dim() == 1 else r
    d = d.unsqueeze(0) if d.dim() == 1 else d
    if r.dim() != 2 or d.dim() != 2:
        raise ValueError(f"expected audio [C, T] or [T], got shapes {tuple(r.shape)} and {tuple(d.shape)}")
    if r.shape[0] != d.shape[0]:
        raise ValueError(f"the signals have {r.shape[0]} and {d.shape[0]} channels")
    n = min(r.shape[1], d.shape[1])
    return r[:, :n], d[:, :n]


def _pair(ref: torch.Tensor, deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r, d = _as_2d(ref, "reference"), _as_2d(deg, "degraded")
    if r.shape != d.shape:
        raise ValueError(f"the signals differ in shape: {tuple(r.shape)} vs {tuple(d.shape)} (use align)")
    if r.shape[1] == 0:
        raise ValueError("the signals are empty")
    return r, d


def _mono(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=0)


def _resample(x: torch.Tensor, sr: int, rate: int) -> torch.Tensor:
    import torchaudio.functional as AF

    return x if int(sr) == rate else AF.resample(x.float(), int(sr), rate).double()


def pesq_wb(ref: torch.Tensor, deg: torch.Tensor, sr: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) MOS-LQO, about 1.0 (bad) .. 4.64 (transparent).

    Both signals are averaged to mono and resampled to 16 kHz (torchaudio's sinc resampler)
    before the ``pesq`` package scores them.

    Raises:
        ValueError: signals shorter than 0.25 s, or PESQ finds no speech (utterances) in the
            reference (e.g. silence): a value would be meaningless, so there is none. The
            harness records such a file's PESQ as NaN.
    """
    from pesq import PesqError, pesq

    r, d = _pair(ref, deg)
    if r.shape[1] < PESQ_MIN_SECONDS * sr:
        raise ValueError(f"PESQ needs at least {PESQ_MIN_SECONDS} s of audio, got {r.shape[1] / sr:.3f} s")
    r16 = _resample(_mono(r), sr, PESQ_RATE).numpy()
    d16 = _resample(_mono(d), sr, PESQ_RATE).numpy()
    if not np.abs(r16).max() > 0:  # pesq would divide by a zero peak
        raise ValueError("PESQ: no speech (utterances) found in the reference: it is silent")
    try:
        return float(pesq(PESQ_RATE, r16, d16, "wb"))
    except PesqError as exc:
        no_speech = type(exc).__name__ == "NoUtterancesError"
        reason = "no speech (utterances) found in the reference" if no_speech else str(exc)
        raise ValueError(f"PESQ: {reason}") from None


def stoi(ref: torch.Tensor, deg: torch.Tensor, sr: int) -> float:
    """Short-time objective intelligibility (Taal et al. 2011), about 0..1 (1 = identical),
    by ``pystoi`` (which resamples to 10 kHz and drops silent frames). Mono: channels averaged.

    Raises:
        ValueError: fewer than 30 non-silent STOI frames (about 0.4 s of speech).
    """
    from pystoi import stoi as _stoi

    r, d = _pair(ref, deg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(_mono(r).numpy(), _mono(d).numpy(), int(sr), extended=False))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise ValueError("STOI needs about 0.4 s of non-silent speech (30 frames); the signal has less")
    return value


def si_sdr(ref: torch.Tensor, deg: torch.Tensor) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019), per channel on
    zero-mean signals, averaged over channels: ``10 log10(|a r|^2 / |a r - d|^2)`` with
    ``a = <d, r> / <r, r>``. Identical signals give ``math.inf``.

    Raises:
        ValueError: a silent (constant) reference channel, for which it is undefined.
    """
    r, d = _pair(ref, deg)
    r = r - r.mean(dim=1, keepdim=True)
    d = d - d.mean(dim=1, keepdim=True)
    energy = (r * r).sum(dim=1)
    if (energy == 0).any():
        raise ValueError("SI-SDR is undefined for a silent reference")
    target = ((d * r).sum(dim=1) / energy).unsqueeze(1) * r
    noise = ((d - target) ** 2).sum(dim=1)
    signal = (target ** 2).sum(dim=1)
    values = [math.inf if n == 0 else (-math.inf if s == 0 else 10.0 * math.log10(s / n))
              for s, n in zip(signal.tolist(), noise.tolist())]
    return float(np.mean(values))


def _log_mel(x: torch.Tensor, sr: int, window: int, n_mels: int) -> torch.Tensor:
    """log10 magnitude mel spectrogram ``[C, n_mels, frames]`` of float ``[C, T]``."""
    import torchaudio.functional as AF

    # Reflect padding needs more samples than half a window; shorter signals pad with zeros.
    pad_mode = "reflect" if x.shape[1] > window // 2 else "constant"
    spec = torch.stft(x, n_fft=window, hop_length=window // 4, window=torch.hann_window(window, dtype=x.dtype),
                      center=True, pad_mode=pad_mode, return_complex=True).abs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some of the narrowest bands can be empty at low rates
        fb = AF.melscale_fbanks(window // 2 + 1, 0.0, sr / 2, n_mels, int(sr), norm="slaney", mel_scale="slaney")
    mel = torch.einsum("cft,fm->cmt", spec, fb.to(spec.dtype))
    return mel.clamp(min=_MEL_EPS).log10()


def mel_distance(ref: torch.Tensor, deg: torch.Tensor, sr: int, *, windows: Sequence[int] = MEL_WINDOWS,
                 n_mels: Sequence[int] = MEL_N_MELS) -> float:
    """Multi-scale mel distance as DAC's mel loss: for each STFT window (32..2048 samples,
    hop a quarter of it, Hann) the mean absolute difference of the log10 magnitude mel
    spectrograms (5..320 bands, 0..sr/2, clamped at 1e-5), summed over the 7 scales. 0 for
    identical signals, lower is better. The windows are in samples whatever ``sr`` is, so
    compare values only at the same sample rate.
    """
    if len(windows) != len(n_mels):
        raise ValueError("windows and n_mels must have the same length")
    r, d = _pair(ref, deg)
    total = 0.0
    for window, mels in zip(windows, n_mels):
        total += (_log_mel(r, sr, window, mels) - _log_mel(d, sr, window, mels)).abs().mean().item()
    return float(total)
