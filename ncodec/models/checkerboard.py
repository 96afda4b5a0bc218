"""Variable-rate context model: channel groups + checkerboard spatial context (ELIC-style).

The variable-rate mean-scale hyperprior (:mod:`ncodec.models.variable_rate`) with the
entropy model of He et al. 2022 (ELIC): the gained latent ``y`` ``[B, M, h, w]`` is split
into uneven channel groups (16, 16, 32, 64, M − 128) coded one after another, each in two
checkerboard halves (anchors, then the rest). A group's Gaussian parameters come from

* the hyperprior: ``h_s(ẑ)``'s scales and means of the group's channels,
* a channel context: a small CNN over the groups decoded before it,
* a spatial context: a 5×5 checkerboard-masked convolution over its decoded anchors,

combined by 1×1 convolutions that predict a *correction* of the hyperprior's parameters
(last layer zero-initialised: a model warm-started from mean-scale weights starts out as
that model and can only learn to spend fewer bits). Decoding is parallel: 10 passes of
whole-tensor convolutions, no per-pixel loop.

Contexts see decoded latents in the ungained domain (``ŷ / g_q``), so one set of context
weights serves every quality. All ``y`` symbols of an image go into one substream of the
Gaussian entropy stage, written and read a batch at a time (a non-anchor half's parameters
need its decoded anchors), in the order group 0 anchors, group 0 non-anchors, group 1 ...

Coding runs the hyperprior, the channel and spatial contexts and the aggregation as exact
integer networks (:mod:`ncodec.models.exact`) on fixed-point latents, as the mean-scale
model does for ``h_s``: the parameters of every symbol are bit-identical on every machine.
"""

from __future__ import annotations

from typing import Sequence

import torch
from compressai.layers import CheckerboardMaskedConv2d
from compressai.ops import quantize_ste
from torch import Tensor, nn

from ncodec.models import exact
from ncodec.models.hyperprior import GAIN_BITS
from ncodec.models.variable_rate import QualityLike, VariableRateMeanScaleHyperprior

__all__ = ["VariableRateCheckerboard", "checkerboard_anchors"]


def checkerboard_anchors(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """Bool ``[h, w]``: True where ``(i + j)`` is even (the anchors, coded first)."""
    i = torch.arange(h, device=device)[:, None]
    j = torch.arange(w, device=device)[None, :]
    return (i + j) % 2 == 0


def _channel_context(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, 128, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(128, 96, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(96, c_out, 3, padding=1),
    )


def _aggregation(group: int) -> nn.Module:
    width = max(32, 4 * group)
    last = nn.Conv2d(width, 2 * group, 1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Conv2d(6 * group, width, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), last)


class VariableRateCheckerboard(VariableRateMeanScaleHyperprior):
    """See the module docstring. ``groups`` must sum to ``M``."""

    def __init__(self, N: int = 128, M: int = 192, lmbdas: Sequence[float] = (0.0018, 0.0035, 0.0067, 0.0130),
                 groups: Sequence[int] | None = None, **kwargs):
        super().__init__(N=N, M=M, lmbdas=lmbdas, **kwargs)
        self.groups = list(groups) if groups is not None else [16, 16, 32, 64, M - 128]
        if sum(self.groups) != M or min(self.groups) < 1:
            raise ValueError(f"groups {self.groups} must be positive and sum to M = {M}")
        self.channel_context = nn.ModuleList(
            _channel_context(sum(self.groups[:k]), 2 * self.groups[k]) for k in range(1, len(self.groups)))
        self.spatial_context = nn.ModuleList(
            CheckerboardMaskedConv2d(g, 2 * g, kernel_size=5, padding=2) for g in self.groups)
        self.aggregation = nn.ModuleList(_aggregation(g) for g in self.groups)

    # ------------------------------------------------------------------ parameters

    def _params(self, k: int, hyper: Tensor, channel: Tensor, spatial: Tensor, gain: Tensor) -> tuple[Tensor, Tensor]:
        """Gained (scales, means) of group ``k``: the hyperprior's plus a learned correction."""
        params = hyper + self.aggregation[k](torch.cat([hyper, channel, spatial], 1))
        scales, means = params.chunk(2, 1)
        return scales * gain, means * gain

    def _channel(self, k: int, decoded: list[Tensor], like: Tensor) -> Tensor:
        if k == 0:
            return torch.zeros(like.size(0), 2 * self.groups[0], *like.shape[2:], device=like.device, dtype=like.dtype)
        return self.channel_context[k - 1](torch.cat(decoded, 1))

    def _hyper(self, z_hat: Tensor) -> list[Tensor]:
        scales, means = self.h_s(z_hat).chunk(2, 1)
        return [torch.cat([s, m], 1) for s, m in zip(scales.split(self.groups, 1), means.split(self.groups, 1))]

    # ------------------------------------------------------------------ training

    def forward(self, x: Tensor, quality: QualityLike = 1) -> dict:  # type: ignore[override]
        gain, inv_gain = self.gains(quality, x.size(0))
        y = self.g_a(x)
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        hyper = self._hyper(z_hat)
        anchors = checkerboard_anchors(*y.shape[2:], device=y.device)
        decoded: list[Tensor] = []
        y_hat_parts, likelihood_parts = [], []
        for k, (y_k, g_k) in enumerate(zip((y * gain).split(self.groups, 1), gain.split(self.groups, 1))):
            channel = self._channel(k, decoded, y_k)
            s_a, m_a = self._params(k, hyper[k], channel, torch.zeros_like(channel), g_k)
            anchor_hat = torch.where(anchors, quantize_ste(y_k - m_a) + m_a, torch.zeros_like(y_k))
            spatial = self.spatial_context[k](anchor_hat / g_k)
            s_n, m_n = self._params(k, hyper[k], channel, spatial, g_k)
            scales, means = torch.where(anchors, s_a, s_n), torch.where(anchors, m_a, m_n)
            _, likelihoods = self.gaussian_conditional(y_k, scales, means=means)
            y_hat_k = quantize_ste(y_k - means) + means
            likelihood_parts.append(likelihoods)
            y_hat_parts.append(y_hat_k)
            decoded.append(y_hat_k / g_k)
        x_hat = self.g_s(torch.cat(y_hat_parts, 1) * inv_gain)
        return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(likelihood_parts, 1), "z": z_likelihoods}}

    # ------------------------------------------------------------------ coding

    def _exact_modules(self) -> dict[str, nn.Module]:
        return {"h_s": self.h_s, "channel_context": self.channel_context,
                "spatial_context": self.spatial_context, "aggregation": self.aggregation}

    def compress(self, x: Tensor, quality: int = 1) -> dict:  # type: ignore[override]
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        y_strings = [self._code_y(y[b:b + 1], z_hat[b:b + 1], quality, None)[1] for b in range(y.size(0))]
        return {"strings": [y_strings, z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings: list, shape, quality: int = 1) -> dict:  # type: ignore[override]
        if not isinstance(strings, list) or len(strings) != 2 or len(strings[0]) != len(strings[1]):
            raise ValueError("expected the y and z streams, one per image")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        _, inv_gain = self.gains(quality, 1)
        images = []
        for b, data in enumerate(strings[0]):
            y_hat, _ = self._code_y(None, z_hat[b:b + 1], quality, data)
            y_hat = exact.from_fixed(exact.clamp_fixed(y_hat)).to(z_hat.dtype)  # as the mean-scale model
            images.append(self.g_s(y_hat * inv_gain).clamp_(0, 1))
        return {"x_hat": torch.cat(images, 0)}

    def _code_y(self, y: Tensor | None, z_hat: Tensor, quality: int, data: bytes | None) -> tuple[Tensor, bytes]:
        """Encode ``y`` ``[1, M, h, w]`` (``data`` None) or decode ``data``: returns the
        gained ``ŷ`` in fixed point (float64 integers, units ``2^-FRACTION_BITS``) and the
        stream. Both directions compute every parameter with the exact networks from the
        same fixed-point values, so they agree bit for bit on any machine."""
        nets = self.exact_networks()
        gain, ungain = self.exact_gains(quality)
        params = self.exact_hyper(z_hat)
        scales, means = params.chunk(2, 1)
        hyper = [torch.cat([s_k, m_k], 1) for s_k, m_k in zip(scales.split(self.groups, 1), means.split(self.groups, 1))]
        h, w = params.shape[2:]
        anchors = checkerboard_anchors(h, w, device=params.device)
        stage = self.latent_stage()
        writer = stage.writer() if data is None else None
        reader = stage.reader(data) if data is not None else None
        gains, ungains = gain.split(self.groups, 1), ungain.split(self.groups, 1)
        y_parts = y.split(self.groups, 1) if y is not None else [None] * len(self.groups)
        decoded: list[Tensor] = []  # ungained fixed-point latents of the groups done
        y_hat_parts = []
        for k, (g_k, u_k) in enumerate(zip(gains, ungains)):
            if k == 0:
                channel = torch.zeros_like(hyper[0])
            else:
                channel = nets["channel_context"][k - 1](torch.cat(decoded, 1))
            y_hat_k = torch.zeros(1, self.groups[k], h, w, dtype=torch.float64, device=params.device)
            for positions in (anchors, ~anchors):
                # Parameters at this half's positions only ([1, C, n]): the aggregation is
                # 1x1, and the spatial context is needed (and nonzero) for non-anchors only.
                flat = positions.reshape(-1)
                hyper_k = hyper[k].flatten(2)[:, :, flat]
                if positions is anchors:
                    spatial = torch.zeros_like(hyper_k)
                else:
                    anchor_latents = self._ungain(torch.where(anchors, y_hat_k, 0.0), u_k)
                    spatial = nets["spatial_context"][k](anchor_latents, positions=flat)
                combined = nets["aggregation"][k](torch.cat([hyper_k, channel.flatten(2)[:, :, flat], spatial], 1))
                s_sel, m_sel = self.gained_parameters(exact.clamp_fixed(hyper_k + combined), g_k[:, :, 0])
                indexes = self.scale_indexes(s_sel).cpu()
                if writer is not None:
                    symbols = self.latent_symbols(y_parts[k][:, :, positions], g_k[:, :, 0], m_sel)
                    writer.add(symbols.cpu(), indexes)
                else:
                    symbols = reader.read(indexes).to(params.device)  # BitstreamError if too few
                y_hat_k[:, :, positions] = self.dequantize_fixed(symbols, m_sel)
            y_hat_parts.append(y_hat_k)
            decoded.append(self._ungain(y_hat_k, u_k))
        if reader is not None:
            reader.finish()  # BitstreamError on symbols left over
        return torch.cat(y_hat_parts, 1), (writer.finish() if writer is not None else data)

    @staticmethod
    def _ungain(y_hat: Tensor, ungain: Tensor) -> Tensor:
        """Fixed-point gained latents -> ungained ``floor(ŷ · (1/g))`` (exact; clamped first)."""
        return exact.rescale(exact.clamp_fixed(y_hat) * ungain, GAIN_BITS)
