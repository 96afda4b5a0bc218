"""SEANet-style convolutional encoder and decoder for waveforms (SoundStream / EnCodec family).

Encoder: ``[B, C_audio, T]`` samples -> ``[B, D, T / hop]`` latents, through a 7-tap conv, then
one block per ratio (residual units with growing dilation, then a strided conv doubling the
channels), then a 7-tap conv to ``D``. The decoder mirrors it with transposed convs.
``hop = prod(ratios)`` samples per latent frame.

``causal=True`` pads every conv on the left only (and trims transposed convs on the right), so
an output never depends on later input. There is no recurrent layer, so a causal model has a
finite receptive field (:meth:`SEANetEncoder.receptive_field`, :meth:`SEANetDecoder.receptive_field`):
coding a window with that much left context gives exactly the frames of coding the whole
signal, which is what streaming and chunked long-file coding rely on.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["SEANetDecoder", "SEANetEncoder"]


class PaddedConv1d(nn.Module):
    """Conv1d with weight norm whose output has ``ceil(T / stride)`` frames for ``T`` input
    samples when ``T`` is a multiple of ``stride`` (the codecs always pad to that).

    Causal: all ``(kernel - 1) * dilation - (stride - 1)`` padding on the left (zeros);
    otherwise split evenly (reflect where the input is long enough).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, dilation: int = 1,
                 causal: bool = True):
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(in_ch, out_ch, kernel, stride=stride, dilation=dilation))
        self.kernel, self.stride, self.dilation, self.causal = kernel, stride, dilation, causal
        self.padding = (kernel - 1) * dilation - (stride - 1)

    @property
    def history(self) -> int:
        """Input samples before the current one that an output depends on (causal)."""
        return self.padding

    def forward(self, x: Tensor) -> Tensor:
        if self.causal:
            x = F.pad(x, (self.padding, 0))
        else:
            left = self.padding // 2
            right = self.padding - left
            mode = "reflect" if x.shape[-1] > max(left, right) else "constant"
            x = F.pad(x, (left, right), mode=mode)
        return self.conv(x)


class PaddedConvTranspose1d(nn.Module):
    """Transposed conv (weight norm) turning ``T`` frames into ``T * stride`` samples; causal
    trims the whole overhang on the right so no output depends on a later frame."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, *, causal: bool = True):
        super().__init__()
        self.conv = weight_norm(nn.ConvTranspose1d(in_ch, out_ch, kernel, stride=stride))
        self.kernel, self.stride, self.causal = kernel, stride, causal
        self.trim = kernel - stride

    @property
    def history(self) -> int:
        """Earlier input frames an output sample depends on."""
        return -(-self.trim // self.stride)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if self.trim == 0:
            return y
        if self.causal:
            return y[..., : y.shape[-1] - self.trim]
        left = self.trim // 2
        return y[..., left: y.shape[-1] - (self.trim - left)]


class ResidualUnit(nn.Module):
    """ELU, dilated conv (kernel 3) to ``channels // 2``, ELU, 1x1 conv back; plus the input."""

    def __init__(self, channels: int, dilation: int, causal: bool):
        super().__init__()
        hidden = max(1, channels // 2)
        self.conv1 = PaddedConv1d(channels, hidden, 3, dilation=dilation, causal=causal)
        self.conv2 = PaddedConv1d(hidden, channels, 1, causal=causal)

    @property
    def history(self) -> int:
        return self.conv1.history

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.elu(self.conv1(F.elu(x))))


def _dilations(n: int) -> list[int]:
    return [3 ** i for i in range(n)]


class SEANetEncoder(nn.Module):
    """Waveform ``[B, audio_channels, T]`` -> latents ``[B, dimension, T / hop]``.

    Args:
        audio_channels: 1 (mono models; stereo is coded as two mono signals by the codecs).
        channels: width of the first block; doubles at every downsampling.
        dimension: latent channels ``D``.
        ratios: downsampling factors, applied in this order (``hop = prod(ratios)``).
        residual_units: residual units per block (dilations 1, 3, 9, ...).
        causal: see the module docstring.
    """

    def __init__(self, audio_channels: int = 1, channels: int = 16, dimension: int = 128,
                 ratios: Sequence[int] = (2, 4, 5, 8), residual_units: int = 2, causal: bool = True):
        super().__init__()
        self.ratios = tuple(int(r) for r in ratios)
        self.hop = int(torch.tensor(self.ratios).prod())
        self.causal = causal
        layers: list[nn.Module] = [PaddedConv1d(audio_channels, channels, 7, causal=causal)]
        width = channels
        for r in self.ratios:
            layers += [ResidualUnit(width, d, causal) for d in _dilations(residual_units)]
            layers += [nn.ELU(), PaddedConv1d(width, width * 2, 2 * r, stride=r, causal=causal)]
            width *= 2
        layers += [nn.ELU(), PaddedConv1d(width, dimension, 7, causal=causal)]
        self.layers = nn.Sequential(*layers)

    def receptive_field(self) -> int:
        """Input samples before a frame's last sample that its latent depends on (causal)."""
        total, scale = 0, 1
        for layer in self.layers:
            if isinstance(layer, (PaddedConv1d, ResidualUnit)):
                total += layer.history * scale
                if isinstance(layer, PaddedConv1d):
                    scale *= layer.stride
        return total

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.hop:
            raise ValueError(f"input length {x.shape[-1]} is not a multiple of the hop {self.hop}")
        return self.layers(x)


class SEANetDecoder(nn.Module):
    """Latents ``[B, dimension, F]`` -> waveform ``[B, audio_channels, F * hop]`` (mirror of
    :class:`SEANetEncoder`; ``ratios`` are the upsampling factors in order)."""

    def __init__(self, audio_channels: int = 1, channels: int = 16, dimension: int = 128,
                 ratios: Sequence[int] = (8, 5, 4, 2), residual_units: int = 2, causal: bool = True):
        super().__init__()
        self.ratios = tuple(int(r) for r in ratios)
        self.hop = int(torch.tensor(self.ratios).prod())
        self.causal = causal
        width = channels * 2 ** len(self.ratios)
        layers: list[nn.Module] = [PaddedConv1d(dimension, width, 7, causal=causal)]
        for r in self.ratios:
            layers += [nn.ELU(), PaddedConvTranspose1d(width, width // 2, 2 * r, r, causal=causal)]
            width //= 2
            layers += [ResidualUnit(width, d, causal) for d in _dilations(residual_units)]
        layers += [nn.ELU(), PaddedConv1d(width, audio_channels, 7, causal=causal)]
        self.layers = nn.Sequential(*layers)

    def receptive_field(self) -> int:
        """Latent frames before the current one that its output samples depend on (causal),
        rounded up."""
        total = 0.0
        rate = 1  # samples per latent frame at the current layer
        for layer in self.layers:
            if isinstance(layer, PaddedConvTranspose1d):
                total += layer.history / rate
                rate *= layer.stride
            elif isinstance(layer, (PaddedConv1d, ResidualUnit)):
                total += layer.history / rate
        return int(-(-total // 1))

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z)
