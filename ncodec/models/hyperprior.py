"""Hyperprior models whose files decode anywhere: CompressAI's architectures, exact coding.

:class:`ExactScaleHyperprior` and :class:`ExactMeanScaleHyperprior` are CompressAI's
``ScaleHyperprior`` (Ballé et al. 2018) and ``MeanScaleHyperprior`` (Minnen et al. 2018):
same modules, parameters and ``state_dict`` keys, so CompressAI checkpoints load as they are,
and the same ``forward`` for training. Their ``compress`` / ``decompress`` compute the
entropy parameters exactly (:class:`ExactGaussianCoding`, built on
:mod:`ncodec.models.exact`): ``h_s`` runs as an integer network on the fixed-point ``ẑ``, the
scale index is an integer comparison and the decoded latent is ``symbol + mean`` in fixed
point. So a file decodes to the same latents on every CPU, thread count and device, where
CompressAI's float ``h_s`` gives scale indexes that differ between machines (and streams
that no longer decode). Reconstructions differ from CompressAI's by the means' fixed-point
rounding (``2^-16``) only.
"""

from __future__ import annotations

from typing import Optional

import torch
from compressai.models import MeanScaleHyperprior, ScaleHyperprior
from torch import Tensor, nn

from ncodec.entropy.stage import CdfTable, GaussianStage
from ncodec.models import exact
from ncodec.models.fingerprint import weights_version

__all__ = ["GAIN_BITS", "ExactGaussianCoding", "ExactMeanScaleHyperprior", "ExactScaleHyperprior"]

GAIN_BITS = 16
"""Fractional bits of fixed-point gains (a model without gains codes with gain 1 = 2^16)."""


class ExactGaussianCoding:
    """Mixin for a CompressAI model with ``h_s``, ``entropy_bottleneck`` and
    ``gaussian_conditional``: the exact parameter computations its ``compress`` /
    ``decompress`` share. Fixed-point tensors are float64 integers (units in each docstring).

    Subclasses name the float modules that decide probabilities in :meth:`_exact_modules`;
    their exact twins are built on first use and rebuilt when those weights change.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Held by reference, so that shallow copies (the fast transforms' shadow) share it.
        self._exact_cache: dict = {}

    def _exact_modules(self) -> dict[str, nn.Module]:
        """The float modules that decide symbol probabilities."""
        return {"h_s": self.h_s}

    def exact_networks(self) -> dict[str, nn.Module]:
        """Exact twins (:class:`ncodec.models.exact.ExactNetwork`) of :meth:`_exact_modules`,
        a ``ModuleList`` becoming a list of twins; cached until those weights change."""
        modules = self._exact_modules()
        version = tuple(weights_version(m) for m in modules.values())
        if self._exact_cache.get("version") != version:
            nets = {name: [exact.ExactNetwork.from_float(m) for m in module]
                    if isinstance(module, nn.ModuleList) else exact.ExactNetwork.from_float(module)
                    for name, module in modules.items()}
            self._exact_cache.clear()
            self._exact_cache.update(version=version, nets=nets)
        return self._exact_cache["nets"]

    def exact_hyper(self, z_hat: Tensor) -> Tensor:
        """``h_s(ẑ)`` in fixed point (units ``2^-FRACTION_BITS``), clamped to
        ``±ACTIVATION_LIMIT``; ``ẑ`` float ``[B, N, h, w]`` (integers plus the medians: the
        same floats on every machine)."""
        return exact.clamp_fixed(self.exact_networks()["h_s"](exact.to_fixed(z_hat)))

    @staticmethod
    def unit_gain(channels: int, device: torch.device | None = None) -> Tensor:
        """Gain 1 in fixed point, ``[1, channels, 1, 1]`` (models without gains)."""
        return torch.full((1, channels, 1, 1), float(2**GAIN_BITS), dtype=torch.float64, device=device)

    @staticmethod
    def gained_parameters(params: Tensor, gain: Tensor) -> tuple[Tensor, Tensor]:
        """Fixed-point ``(scales, means)`` ``[B, 2C, ...]`` (concatenated) -> ``scales · g``
        in units of ``2^-(FRACTION_BITS + GAIN_BITS)`` and ``means · g`` rounded to units of
        ``2^-FRACTION_BITS``; ``gain`` fixed point ``[1, C, 1, 1]``."""
        scales, means = params.chunk(2, 1)
        return scales * gain, exact.rescale(means * gain, GAIN_BITS)

    def scale_indexes(self, gained_scales: Tensor) -> Tensor:
        """CDF row of each fixed-point scale (units ``2^-(FRACTION_BITS + GAIN_BITS)``): the
        number of table scales ``t_k`` (all but the last) with
        ``round(t_k · 2^(FRACTION_BITS + GAIN_BITS)) < scale``, int32. Integer comparisons:
        the same on every machine (CompressAI's rule, ``t_k < scale``, up to that rounding)."""
        table = self.gaussian_conditional.scale_table[:-1].to(gained_scales.device, torch.float64)
        thresholds = torch.round(table * float(2 ** (exact.FRACTION_BITS + GAIN_BITS)))
        return torch.searchsorted(thresholds, gained_scales.contiguous(), side="left").int()

    @staticmethod
    def latent_symbols(y: Tensor, gain: Tensor, means: Optional[Tensor]) -> Tensor:
        """Encoder: int32 ``round(y · g - mean)`` of float ``y``, fixed-point ``g`` and
        ``means`` (None: zero). Any symbol decodes; this is the nearest."""
        gained = y.to(torch.float64) * exact.from_fixed(gain, GAIN_BITS)
        if means is not None:
            gained = gained - exact.from_fixed(means)
        return torch.round(gained).clamp_(-(2**31), 2**31 - 1).int()

    @staticmethod
    def dequantize_fixed(symbols: Tensor, means: Optional[Tensor]) -> Tensor:
        """Decoded latent ``symbol + mean`` in fixed point (float64 integers)."""
        y_hat = symbols.to(torch.float64) * float(2**exact.FRACTION_BITS)
        return y_hat if means is None else y_hat + means

    def _gaussian_table(self) -> CdfTable:
        """The Gaussian conditional's CDF table (after ``update()``)."""
        return self.gaussian_conditional.cdf_table()

    def latent_stage(self) -> GaussianStage:
        """The stage that codes ``y``'s symbols; params are :meth:`scale_indexes`' int32 rows
        (integer params are used as they are, so the exact path stays exact)."""
        return self.gaussian_conditional.entropy_stage()

    def _encode_latents(self, symbols: Tensor, indexes: Tensor) -> list[bytes]:
        """One coder stream per batch item of int32 ``symbols`` / ``indexes`` ``[B, ...]``."""
        stage = self.latent_stage()
        symbols, indexes = symbols.cpu(), indexes.cpu()  # one device copy, not one per item
        return [stage.encode(symbols[b], indexes[b]) for b in range(symbols.size(0))]

    def _decode_latents(self, strings: list, indexes: Tensor) -> Tensor:
        """int32 symbols ``[B, ...]`` (on ``indexes``' device) of one stream per item."""
        if not isinstance(strings, (list, tuple)) or len(strings) != indexes.size(0):
            raise ValueError("expected one y stream per image")
        stage, cpu = self.latent_stage(), indexes.cpu()  # one device copy each way, not one per item
        return torch.stack([stage.decode(data, cpu[b]) for b, data in enumerate(strings)]).to(indexes.device)

    def _compress_gained(self, y: Tensor, z: Tensor, gain: Tensor, with_means: bool) -> dict:
        """Code the latent ``y`` (gained by fixed-point ``gain``) and the hyper-latent ``z``."""
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        params = self.exact_hyper(z_hat)
        if with_means:
            scales, means = self.gained_parameters(params, gain)
        else:
            scales, means = params * gain, None
        symbols = self.latent_symbols(y, gain, means)
        return {"strings": [self._encode_latents(symbols, self.scale_indexes(scales)), z_strings],
                "shape": z.size()[-2:]}

    def _decompress_gained(self, strings: list, shape, gain: Tensor, with_means: bool) -> Tensor:
        """The decoded gained latent ``ŷ`` (float32, ``[B, M, h, w]``) of :meth:`_compress_gained`."""
        if not isinstance(strings, list) or len(strings) != 2 or len(strings[0]) != len(strings[1]):
            raise ValueError("expected the y and z streams, one per image")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        params = self.exact_hyper(z_hat)
        if with_means:
            scales, means = self.gained_parameters(params, gain)
        else:
            scales, means = params * gain, None
        symbols = self._decode_latents(strings[0], self.scale_indexes(scales))
        # Clamped like every exact layer's input: a forged file's extreme symbols cannot
        # drive the synthesis to inf/NaN (real latents lie far inside ±ACTIVATION_LIMIT).
        return exact.from_fixed(exact.clamp_fixed(self.dequantize_fixed(symbols, means))).to(z_hat.dtype)


class ExactScaleHyperprior(ExactGaussianCoding, ScaleHyperprior):
    """CompressAI's ``ScaleHyperprior`` (zero-mean Gaussian, scales from ``h_s``) with exact
    coding: ``compress(x)`` / ``decompress(strings, shape)`` as CompressAI's."""

    def compress(self, x: Tensor) -> dict:  # type: ignore[override]
        y = self.g_a(x)
        z = self.h_a(torch.abs(y))
        return self._compress_gained(y, z, self.unit_gain(y.size(1), y.device), with_means=False)

    def decompress(self, strings: list, shape) -> dict:  # type: ignore[override]
        gain = self.unit_gain(int(self.M), self.entropy_bottleneck.quantiles.device)
        y_hat = self._decompress_gained(strings, shape, gain, with_means=False)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}


class ExactMeanScaleHyperprior(ExactGaussianCoding, MeanScaleHyperprior):
    """CompressAI's ``MeanScaleHyperprior`` (Gaussian means and scales from ``h_s``) with
    exact coding: ``compress(x)`` / ``decompress(strings, shape)`` as CompressAI's."""

    def compress(self, x: Tensor) -> dict:  # type: ignore[override]
        y = self.g_a(x)
        z = self.h_a(y)
        return self._compress_gained(y, z, self.unit_gain(y.size(1), y.device), with_means=True)

    def decompress(self, strings: list, shape) -> dict:  # type: ignore[override]
        gain = self.unit_gain(int(self.M), self.entropy_bottleneck.quantiles.device)
        y_hat = self._decompress_gained(strings, shape, gain, with_means=True)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}
