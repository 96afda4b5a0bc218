"""Audio codec models: SEANet encoder -> (residual) VQ -> SEANet decoder, plus a code prior.

:class:`AudioCodecModel` works on mono waveforms at its own sample rate, ``[B, 1, T]`` with
``T`` a multiple of ``hop``; the codec objects (:mod:`ncodec.codecs.audio`) resample, split
channels, pad and chunk. ``codes`` are ``[B, n_q, F]`` with ``F = T / hop`` frames.

The entropy prior is a per-codebook frequency table (``code_counts [n_q, K]``, counted on the
training set after training and stored with the weights); the codecs turn it into range-coder
CDFs, so the bytes written are below ``log2 K`` bits per code whenever usage is uneven.

:data:`ARCHITECTURES` names the shipped configurations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ncodec.models.quantizers import ResidualVectorQuantizer
from ncodec.models.seanet import SEANetDecoder, SEANetEncoder
from ncodec.models.weights import WeightsFormat, register_weights_format

__all__ = ["ARCHITECTURES", "AudioArch", "AudioCodecModel", "build_audio_model"]


@dataclass(frozen=True)
class AudioArch:
    """One audio model configuration.

    Attributes:
        sample_rate: Hz the model runs at.
        ratios: encoder downsampling factors (``hop = prod``); the decoder uses them reversed.
        channels: first-block width of encoder and decoder.
        dimension: latent channels.
        n_q: codebooks (the most any bitrate uses).
        codebook_size: entries per codebook.
        codebook_dim: code-space dimension (``< dimension``: factorized, L2-normalised codes).
        residual_units: residual units per SEANet block.
        bitrates: nominal kbps per quality level (``n_q * log2 K * frame_rate / 1000`` each).
        description: one line for ``ncodec models``.
    """

    sample_rate: int
    ratios: tuple[int, ...]
    channels: int
    dimension: int
    n_q: int
    codebook_size: int
    codebook_dim: Optional[int]
    residual_units: int
    bitrates: tuple[float, ...]
    description: str

    @property
    def hop(self) -> int:
        return int(torch.tensor(self.ratios).prod())

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def bits_per_code(self) -> float:
        return float(torch.tensor(float(self.codebook_size)).log2())

    def n_q_for(self, kbps: float) -> int:
        """Codebooks that a nominal ``kbps`` uses (ValueError if it is not one of ``bitrates``)."""
        for b in self.bitrates:
            if abs(b - kbps) < 1e-6:
                return max(1, round(b * 1000 / (self.bits_per_code() * self.frame_rate)))
        raise ValueError(f"bitrate {kbps:g} kbps is not offered; choose one of {list(self.bitrates)}")


ARCHITECTURES: dict[str, AudioArch] = {
    # 16 kHz speech: 50 frames/s, 10-bit codebooks: 500 bps per codebook.
    "speech-rvq-16k": AudioArch(16000, (2, 4, 5, 8), 16, 128, 12, 1024, None, 2, (1.5, 3.0, 6.0),
                                "16 kHz speech codec, residual VQ (3/6/12 codebooks), causal, streams"),
    # Single 4096-entry factorized codebook at 40 tokens/s: 480 bps, for language models.
    "tokenizer-16k": AudioArch(16000, (2, 4, 5, 10), 16, 128, 1, 4096, 8, 2, (0.48,),
                               "16 kHz single-codebook tokenizer, 40 tokens/s, 4096 codes"),
    # 24 kHz general audio: 75 frames/s, 750 bps per codebook.
    "audio-rvq-24k": AudioArch(24000, (2, 4, 5, 8), 16, 128, 16, 1024, None, 2, (1.5, 3.0, 6.0, 12.0),
                               "24 kHz general-audio codec, residual VQ (2-16 codebooks), causal"),
}


class AudioCodecModel(nn.Module):
    """Encoder, residual VQ and decoder of one :class:`AudioArch` (causal)."""

    def __init__(self, arch: AudioArch, *, quantizer_dropout: float = 0.5):
        super().__init__()
        self.arch = arch
        self.sample_rate, self.hop = arch.sample_rate, arch.hop
        self.encoder = SEANetEncoder(1, arch.channels, arch.dimension, arch.ratios, arch.residual_units)
        self.decoder = SEANetDecoder(1, arch.channels, arch.dimension, tuple(reversed(arch.ratios)),
                                     arch.residual_units)
        self.quantizer = ResidualVectorQuantizer(
            arch.dimension, arch.n_q, arch.codebook_size, codebook_dim=arch.codebook_dim,
            quantizer_dropout=quantizer_dropout if arch.n_q > 1 else 0.0)
        # Usage counts of every code on the training set (+1 each): the entropy prior.
        self.register_buffer("code_counts", torch.ones(arch.n_q, arch.codebook_size))

    @property
    def n_q(self) -> int:
        return self.arch.n_q

    def forward(self, x: Tensor, n_q: Optional[int] = None) -> dict[str, Tensor]:
        """Training/analysis pass. ``x [B, 1, T]`` -> ``x_hat [B, 1, T]``, ``codes [B, n_q, F]``,
        ``commitment_loss``, ``codebook_loss``, ``perplexity [n_q]``."""
        z = self.encoder(x)
        # Nearest-code search and the EMA codebook statistics need float32: under bf16
        # autocast the distances of the finer residual codebooks would round to ties.
        with torch.autocast(z.device.type, enabled=False):
            q = self.quantizer(z.float(), n_q)
        return {"x_hat": self.decoder(q.quantized), "codes": q.codes, "commitment_loss": q.commitment_loss,
                "codebook_loss": q.codebook_loss, "perplexity": q.perplexity}

    @torch.no_grad()
    def encode(self, x: Tensor, n_q: Optional[int] = None) -> Tensor:
        """Codes ``[B, n_q, F]`` (int64) of ``x [B, 1, F * hop]``."""
        return self.quantizer.encode(self.encoder(x), n_q)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Waveform ``[B, 1, F * hop]`` of codes ``[B, n, F]`` (first ``n`` codebooks)."""
        return self.decoder(self.quantizer.decode(codes))

    def encoder_context(self) -> int:
        """Samples of left context (a multiple of ``hop``) that make a window's last frames
        exactly those of the whole signal."""
        r = self.encoder.receptive_field()
        return -(-r // self.hop) * self.hop

    def decoder_context(self) -> int:
        """Frames of left context that make a window's last samples exactly the whole signal's."""
        return self.decoder.receptive_field() + 1

    @torch.no_grad()
    def count_codes(self, codes: Tensor) -> None:
        """Add ``codes [B, n, F]`` to the usage counts (the entropy prior)."""
        for i in range(codes.shape[1]):
            self.code_counts[i] += torch.bincount(codes[:, i].reshape(-1).cpu(),
                                                  minlength=self.arch.codebook_size).to(self.code_counts)


def build_audio_model(arch: str, **kwargs) -> AudioCodecModel:
    """A fresh (randomly initialised) model of architecture ``arch``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown audio architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return AudioCodecModel(ARCHITECTURES[arch], **kwargs)


# ----------------------------------------------------------------------------- weights files

def _rebuild_ema_sums(model: nn.Module, state: dict[str, Tensor]) -> list[str]:
    # The EMA sums are training state (= codebook * cluster_size): not stored, rebuilt here.
    filled = []
    for key in model.state_dict():
        if key.endswith(".embed_sum"):
            prefix = key[: -len("embed_sum")]
            state[key] = state[prefix + "codebook"] * state[prefix + "cluster_size"].unsqueeze(1)
            filled.append(key)
    return filled


register_weights_format(WeightsFormat(
    name="ncodec-audio-weights-v1",
    architectures=lambda: ARCHITECTURES,
    build=lambda meta: build_audio_model(meta["arch"]),
    # Weight-norm parametrizations are stored as they are (original0 / original1).
    skip=(".embed_sum",),
    complete=_rebuild_ema_sums,
))
