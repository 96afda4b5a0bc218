"""Losses for training a neural audio codec (EnCodec / HiFi-GAN / DAC style).

* :class:`MultiScaleMelLoss` — L1 between log10 mel spectrograms at several STFT sizes
  (DAC's reconstruction loss).
* :class:`MultiPeriodDiscriminator` (HiFi-GAN) and :class:`MultiScaleSTFTDiscriminator`
  (EnCodec), combined by :class:`Discriminators`. Each returns ``(logits, features)``:
  one logit map per sub-discriminator and, per sub-discriminator, its hidden activations.
* :func:`discriminator_loss`, :func:`generator_adversarial_loss` (hinge or least squares)
  and :func:`feature_matching_loss` on those outputs.

Waveforms are ``[B, C, T]`` float tensors (C = 1 for mono) in roughly [-1, 1]. Signals are
padded by reflection built from ``flip``/``cat`` rather than ``F.pad(mode="reflect")``: its
CUDA backward uses atomics, which ``torch.use_deterministic_algorithms(True)`` refuses.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm
from torchaudio.functional import melscale_fbanks

__all__ = [
    "Discriminators",
    "MultiPeriodDiscriminator",
    "MultiScaleMelLoss",
    "MultiScaleSTFTDiscriminator",
    "PeriodDiscriminator",
    "STFTDiscriminator",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
]

Logits = list[Tensor]
Features = list[list[Tensor]]

# ---------------------------------------------------------------------------------------
# Signal helpers


def _reflect_pad(x: Tensor, left: int, right: int) -> Tensor:
    """Reflect-pad the last axis of ``x`` (``[..., T]`` -> ``[..., left + T + right]``).

    Falls back to zeros when the clip is too short to reflect (``left`` or ``right`` ≥ T).
    """
    t = x.shape[-1]
    if left == 0 and right == 0:
        return x
    if left >= t or right >= t:
        return F.pad(x, (left, right))
    return torch.cat([x[..., 1 : left + 1].flip(-1), x, x[..., t - 1 - right : t - 1].flip(-1)], dim=-1)


def _stft(x: Tensor, n_fft: int, hop_length: int, window: Tensor, normalized: bool = False) -> Tensor:
    """Centred STFT of ``x`` ``[N, T]`` -> complex ``[N, n_fft // 2 + 1, 1 + T // hop_length]``.

    Computed in float32 (cuFFT has no half precision for every size, and log-mels need the
    range); the centring pad is a reflection, as ``torch.stft(center=True)`` would do.
    """
    x = _reflect_pad(x.float(), n_fft // 2, n_fft // 2)
    return torch.stft(
        x,
        n_fft,
        hop_length,
        window=window.float(),
        center=False,
        normalized=normalized,
        return_complex=True,
    )


def _check_audio(x: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"expected audio [B, C, T], got shape {tuple(x.shape)}")


# ---------------------------------------------------------------------------------------
# Reconstruction loss


class MultiScaleMelLoss(nn.Module):
    """Sum over STFT scales of ``log_weight · L1(log10 mel^power) + mag_weight · L1(mel)``.

    ``mel`` is the mel-filtered STFT magnitude (Hann window, hop = window / 4, reflection
    centred), clamped to ``clamp_eps`` before the log so silence does not dominate. Mel
    filters that cover no FFT bin (too many mels for a short window) are dropped, so the
    effective ``n_mels`` of a scale can be below the requested one (see ``self.n_mels``).

    Args:
        sample_rate: Hz.
        n_mels: mel bins per scale, paired with ``window_lengths``.
        window_lengths: STFT window = FFT size per scale, in samples.
        hop_lengths: per scale; default ``window // 4``.
        clamp_eps: floor on mel magnitude before log10.
        power: exponent inside the log (DAC uses 2: log of mel power).
        log_weight, mag_weight: weights of the log-mel and linear-mel L1 terms.
        f_min, f_max: mel range in Hz; ``f_max`` defaults to Nyquist.
    """

    def __init__(
        self,
        sample_rate: int,
        n_mels: Sequence[int] = (5, 10, 20, 40, 80, 160, 320),
        window_lengths: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048),
        hop_lengths: Sequence[int] | None = None,
        clamp_eps: float = 1e-5,
        power: float = 2.0,
        log_weight: float = 1.0,
        mag_weight: float = 0.0,
        f_min: float = 0.0,
        f_max: float | None = None,
    ):
        super().__init__()
        if len(n_mels) != len(window_lengths):
            raise ValueError(f"n_mels ({len(n_mels)}) and window_lengths ({len(window_lengths)}) must pair up")
        hops = [w // 4 for w in window_lengths] if hop_lengths is None else list(hop_lengths)
        if len(hops) != len(window_lengths) or min(hops) < 1:
            raise ValueError(f"need one positive hop per window, got {hops}")
        f_max = sample_rate / 2 if f_max is None else f_max
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}")
        self.sample_rate = sample_rate
        self.window_lengths = [int(w) for w in window_lengths]
        self.hop_lengths = [int(h) for h in hops]
        self.clamp_eps = clamp_eps
        self.power = power
        self.log_weight = log_weight
        self.mag_weight = mag_weight
        self.n_mels: list[int] = []
        for i, (mels, win) in enumerate(zip(n_mels, self.window_lengths)):
            fb = self._filterbank(win, int(mels), f_min, f_max, sample_rate)
            self.n_mels.append(fb.shape[1])
            # Derived from the arguments, so kept out of state_dict (non-persistent).
            self.register_buffer(f"fb{i}", fb, persistent=False)
            self.register_buffer(f"window{i}", torch.hann_window(win), persistent=False)

    @staticmethod
    def _filterbank(n_fft: int, n_mels: int, f_min: float, f_max: float, sample_rate: int) -> Tensor:
        """``[n_fft // 2 + 1, M]`` slaney-normalised slaney-scale filters (librosa's default,
        as in DAC), without the all-zero columns; M ≤ ``n_mels``."""
        with warnings.catch_warnings():  # torchaudio warns about empty filters; we drop them
            warnings.simplefilter("ignore")
            fb = melscale_fbanks(
                n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm="slaney", mel_scale="slaney"
            )
        fb = fb[:, fb.amax(0) > 0]
        if fb.shape[1] == 0:
            raise ValueError(f"no mel filter of the {n_mels} covers an FFT bin at n_fft={n_fft}")
        return fb

    def mel(self, x: Tensor, scale: int) -> Tensor:
        """Mel magnitudes of ``x`` ``[B, C, T]`` at scale index ``scale``:
        ``[B, C, n_mels[scale], 1 + T // hop]``, float32."""
        b, c, t = x.shape
        window = getattr(self, f"window{scale}")
        spec = _stft(x.reshape(b * c, t), self.window_lengths[scale], self.hop_lengths[scale], window)
        fb = getattr(self, f"fb{scale}").float()
        mel = torch.matmul(fb.T, spec.abs())  # [B·C, M, frames]
        return mel.reshape(b, c, *mel.shape[1:])

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """``x_hat``, ``x``: ``[B, C, T]`` (decoded, reference). Returns a scalar float32."""
        _check_audio(x_hat)
        if x_hat.shape != x.shape:
            raise ValueError(f"shape mismatch: {tuple(x_hat.shape)} vs {tuple(x.shape)}")
        loss = x_hat.new_zeros((), dtype=torch.float32)
        # Mixed precision would cast the filterbank matmul to half and lose the log's range.
        with torch.autocast(x.device.type, enabled=False):
            for i in range(len(self.window_lengths)):
                m_hat, m = self.mel(x_hat, i), self.mel(x, i)
                if self.log_weight:
                    log_hat = self.power * torch.log10(m_hat.clamp_min(self.clamp_eps))
                    log_ref = self.power * torch.log10(m.clamp_min(self.clamp_eps))
                    loss = loss + self.log_weight * F.l1_loss(log_hat, log_ref)
                if self.mag_weight:
                    loss = loss + self.mag_weight * F.l1_loss(m_hat, m)
        return loss


# ---------------------------------------------------------------------------------------
# Discriminators


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN sub-discriminator: the waveform folded to ``[T / period, period]`` and seen by
    2-D convs with ``(k, 1)`` kernels, i.e. 1-D convs over samples spaced ``period`` apart.

    Widths are ``min(channels · 4^i, max_channels)`` for the four strided layers, then one
    unstrided layer at the last width (``channels=32, max_channels=1024`` is HiFi-GAN's).
    """

    def __init__(
        self,
        period: int,
        channels: int = 32,
        max_channels: int = 1024,
        in_channels: int = 1,
        kernel_size: int = 5,
        stride: int = 3,
    ):
        super().__init__()
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = period
        widths = [min(channels * 4**i, max_channels) for i in range(4)]
        pad = (kernel_size - 1) // 2
        convs = []
        c_in = in_channels
        for w in widths:
            convs.append(weight_norm(nn.Conv2d(c_in, w, (kernel_size, 1), (stride, 1), (pad, 0))))
            c_in = w
        convs.append(weight_norm(nn.Conv2d(c_in, c_in, (kernel_size, 1), 1, (pad, 0))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(c_in, 1, (3, 1), 1, (1, 0)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``x`` ``[B, C, T]`` -> logits ``[B, 1, T' , period]`` (T' ≈ T / period / 81) and the
        five hidden activations ``[B, width, ·, period]``."""
        b, c, t = x.shape
        x = _reflect_pad(x, 0, (-t) % self.period)  # fold needs a whole number of periods
        x = x.reshape(b, c, -1, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            features.append(x)
        return self.post(x), features


class _SubDiscriminators(nn.Module):
    """Sub-discriminators (``self.discriminators``) that all see the same input."""

    discriminators: nn.ModuleList

    def forward(self, x: Tensor) -> tuple[Logits, Features]:
        """``x`` ``[B, C, T]`` -> (one logit map per sub-discriminator, its features)."""
        _check_audio(x)
        logits, features = [], []
        for d in self.discriminators:
            logit, feats = d(x)
            logits.append(logit)
            features.append(feats)
        return logits, features


class MultiPeriodDiscriminator(_SubDiscriminators):
    """HiFi-GAN MPD: one :class:`PeriodDiscriminator` per (prime) period.

    ``max_channels`` defaults to ``32 · channels`` (1024 at HiFi-GAN's ``channels=32``).
    """

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        channels: int = 32,
        max_channels: int | None = None,
        in_channels: int = 1,
    ):
        super().__init__()
        max_channels = 32 * channels if max_channels is None else max_channels
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, channels, max_channels, in_channels) for p in periods
        )



class STFTDiscriminator(nn.Module):
    """EnCodec sub-discriminator on one complex STFT (real and imaginary parts as channels).

    Input to the convs is ``[B, 2C, frames, freqs]``; kernels are (3 frames, 9 bins), the three
    dilated layers dilate in time (1, 2, 4) and halve frequency with stride 2.
    """

    def __init__(
        self,
        n_fft: int,
        hop_length: int | None = None,
        channels: int = 32,
        in_channels: int = 1,
        dilations: Sequence[int] = (1, 2, 4),
    ):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = n_fft // 4 if hop_length is None else hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [weight_norm(nn.Conv2d(2 * in_channels, channels, (3, 9), padding=(1, 4)))]
        for d in dilations:
            convs.append(weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), (d, 4), dilation=(d, 1))))
        convs.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``x`` ``[B, C, T]`` -> logits ``[B, 1, 1 + T // hop, ≈ n_fft / 16]`` and hidden
        activations ``[B, channels, frames, ·]``."""
        b, c, t = x.shape
        # normalized=True scales by n_fft^-1/2 so every scale sees similar magnitudes.
        spec = _stft(x.reshape(b * c, t), self.n_fft, self.hop_length, self.window, normalized=True)
        z = torch.view_as_real(spec)  # [B·C, F, frames, 2]
        z = z.reshape(b, c, *z.shape[1:]).permute(0, 1, 4, 3, 2)  # [B, C, 2, frames, F]
        z = z.reshape(b, 2 * c, z.shape[3], z.shape[4]).to(x.dtype)
        features = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), 0.2)
            features.append(z)
        return self.post(z), features


class MultiScaleSTFTDiscriminator(_SubDiscriminators):
    """EnCodec MS-STFT discriminator: one :class:`STFTDiscriminator` per FFT size
    (window = FFT size, hop = FFT size / 4). The default sizes suit 16–24 kHz audio."""

    def __init__(
        self,
        n_ffts: Sequence[int] = (2048, 1024, 512, 256, 128),
        channels: int = 32,
        in_channels: int = 1,
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(n, channels=channels, in_channels=in_channels) for n in n_ffts
        )



class Discriminators(nn.Module):
    """The chosen discriminators side by side; their outputs are concatenated in order.

    Args:
        kinds: any of "mpd" (:class:`MultiPeriodDiscriminator`) and "msstft"
            (:class:`MultiScaleSTFTDiscriminator`).
        channels: base width of both (32 is the published size; 8–16 for CPU training).
        mpd_channels, stft_channels: override ``channels`` for one of them.
        periods, n_ffts: passed on.
        in_channels: audio channels C.
    """

    KINDS = ("mpd", "msstft")

    def __init__(
        self,
        kinds: Sequence[str] = KINDS,
        channels: int = 32,
        mpd_channels: int | None = None,
        stft_channels: int | None = None,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        n_ffts: Sequence[int] = (2048, 1024, 512, 256, 128),
        in_channels: int = 1,
    ):
        super().__init__()
        unknown = set(kinds) - set(self.KINDS)
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {self.KINDS}, got {list(kinds)}")
        self.kinds = [k for k in self.KINDS if k in kinds]
        self.discriminators = nn.ModuleList()
        if "mpd" in self.kinds:
            self.discriminators.append(
                MultiPeriodDiscriminator(periods, mpd_channels or channels, in_channels=in_channels)
            )
        if "msstft" in self.kinds:
            self.discriminators.append(
                MultiScaleSTFTDiscriminator(n_ffts, stft_channels or channels, in_channels=in_channels)
            )

    def forward(self, x: Tensor) -> tuple[Logits, Features]:
        """``x`` ``[B, C, T]`` -> (all logit maps, all feature lists)."""
        logits: Logits = []
        features: Features = []
        for d in self.discriminators:
            lg, ft = d(x)
            logits += lg
            features += ft
        return logits, features


# ---------------------------------------------------------------------------------------
# Adversarial and feature-matching losses

_KINDS = ("hinge", "lsgan")


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")


def discriminator_loss(
    real_logits: Sequence[Tensor], fake_logits: Sequence[Tensor], kind: str = "hinge"
) -> Tensor:
    """Discriminator loss averaged over sub-discriminators (each term a mean over its map).

    hinge (EnCodec): ``relu(1 − D(x)) + relu(1 + D(x̂))``; lsgan (HiFi-GAN):
    ``(1 − D(x))² + D(x̂)²``. Pass logits of detached fakes.
    """
    _check_kind(kind)
    if len(real_logits) != len(fake_logits) or not real_logits:
        raise ValueError(f"need matching non-empty logit lists, got {len(real_logits)}, {len(fake_logits)}")
    total = 0.0
    for r, f in zip(real_logits, fake_logits):
        if kind == "hinge":
            total = total + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        else:
            total = total + (1 - r).pow(2).mean() + f.pow(2).mean()
    return total / len(real_logits)  # type: ignore[return-value]


def generator_adversarial_loss(fake_logits: Sequence[Tensor], kind: str = "hinge") -> Tensor:
    """Generator's adversarial loss averaged over sub-discriminators:
    hinge ``relu(1 − D(x̂))``, lsgan ``(1 − D(x̂))²``."""
    _check_kind(kind)
    if not fake_logits:
        raise ValueError("need at least one logit map")
    total = 0.0
    for f in fake_logits:
        total = total + (F.relu(1 - f) if kind == "hinge" else (1 - f).pow(2)).mean()
    return total / len(fake_logits)  # type: ignore[return-value]


def feature_matching_loss(
    real_features: Sequence[Sequence[Tensor]], fake_features: Sequence[Sequence[Tensor]], eps: float = 1e-8
) -> Tensor:
    """Mean over all layers of ``mean|f̂ − f| / mean|f|`` (EnCodec's relative L1).

    Real features are detached: this loss trains the generator only. Dividing by the real
    activation scale keeps layers of very different magnitudes comparable.
    """
    if len(real_features) != len(fake_features):
        raise ValueError(f"{len(real_features)} real vs {len(fake_features)} fake discriminators")
    terms = []
    for rs, fs in zip(real_features, fake_features):
        if len(rs) != len(fs):
            raise ValueError(f"{len(rs)} real vs {len(fs)} fake layers")
        for r, f in zip(rs, fs):
            r = r.detach()
            terms.append(F.l1_loss(f, r) / (r.abs().mean() + eps))
    if not terms:
        raise ValueError("no features to match")
    return torch.stack(terms).mean()
