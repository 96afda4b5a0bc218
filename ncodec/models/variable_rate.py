"""Variable-rate mean-scale hyperprior: one network, every quality.

Minnen et al. 2018's mean-scale hyperprior (CompressAI's ``MeanScaleHyperprior``: GDN
transforms, hyperprior z, Gaussian y with predicted means and scales) whose quantisation
step depends on the quality, in the spirit of Cui et al. 2021 (gain units):

* the encoder multiplies the latent ``y`` ``[B, M, h, w]`` by a learned per-channel gain
  ``g_q`` ``[M]`` before rounding, so quality ``q`` rounds ``y`` in steps of ``1 / g_q``;
* the hyperprior works on the ungained ``y``: ``z = h_a(y)``, ``(scales, means) = h_s(ẑ)``,
  and the Gaussian that codes ``y · g_q`` has ``means · g_q`` and ``scales · g_q``;
* the decoder multiplies the decoded latent by a learned inverse gain ``g'_q`` before
  ``g_s`` (learned separately from ``1 / g_q``: it also corrects the reconstruction bias).

Qualities ``1 .. Q`` share every weight but the gains (``Q · M · 2`` numbers), so one
file of ~14 MB (fp16) serves all rates, and one training run trains them all (each item
of a batch draws a quality; the loss uses that quality's λ). The Gaussian's CDF tables use
256 scales instead of CompressAI's 64 (see :data:`SCALE_TABLE_LEVELS`): the bytes stay
within 1 % of the model's estimate.

Coding (``compress`` / ``decompress``) computes every entropy parameter exactly
(:mod:`ncodec.models.exact`): ``h_s`` runs as an integer network on the fixed-point ``ẑ``,
the gains are fixed-point integers stored with the weights (:data:`GAIN_BITS`), the scale
index is an integer comparison and the decoded latent is ``symbol + mean`` in fixed point.
So a file decodes to the same latents on every CPU, thread count and device; only the
synthesis ``g_s`` (the pixels) is float. Training (``forward``) stays float.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch
from torch import Tensor, nn

from ncodec.models import exact
from ncodec.models.hyperprior import GAIN_BITS, ExactMeanScaleHyperprior

__all__ = ["SCALE_TABLE_LEVELS", "VariableRateMeanScaleHyperprior", "fine_scale_table"]
# Gains beyond these would let products leave float64's exact integers (2^53).
_MAX_GAIN = 2.0 ** 6
_MAX_UNGAIN = 2.0 ** 7

# CompressAI's default table has 64 scales from 0.11 to 256 (neighbours 13 % apart). Coding
# with the next table scale above the predicted one cost 3.1 % over −Σ log2 p on a CID22
# photo; 256 scales (3 % apart) cost 0.8 %, for 2.4 MB more of stored CDF rows (fp32-exact
# int32 tables travel with the weights so that every machine codes with the same ones).
SCALE_TABLE_LEVELS = 256


def fine_scale_table(levels: int = SCALE_TABLE_LEVELS) -> Tensor:
    """``levels`` log-spaced scales from 0.11 to 256 (CompressAI's range), float32."""
    return torch.exp(torch.linspace(math.log(0.11), math.log(256), levels))

QualityLike = Union[int, Sequence[int], Tensor]


class VariableRateMeanScaleHyperprior(ExactMeanScaleHyperprior):
    """Mean-scale hyperprior with per-quality latent gains.

    Args:
        N: channels of the transforms; M: latent channels.
        lmbdas: the λ of each quality ``1 .. len(lmbdas)`` (increasing); used only to
            initialise the gains (step ∝ λ^-1/2 relative to the middle quality).

    ``forward(x, quality)`` / ``compress(x, quality)`` / ``decompress(strings, shape,
    quality)`` take ``quality`` as an int (1-based) or, for ``forward``, one per item.
    """

    variable_rate = True

    def __init__(self, N: int = 128, M: int = 192, lmbdas: Sequence[float] = (0.0018, 0.0035, 0.0067, 0.0130),
                 **kwargs):
        super().__init__(N=N, M=M, **kwargs)
        lmbdas = [float(v) for v in lmbdas]
        if len(lmbdas) < 1 or any(b <= a for a, b in zip(lmbdas, lmbdas[1:])):
            raise ValueError(f"lmbdas must be increasing, got {lmbdas}")
        self.num_qualities = len(lmbdas)
        reference = lmbdas[len(lmbdas) // 2]
        init = torch.tensor([0.5 * math.log(v / reference) for v in lmbdas])
        self.log_gain = nn.Parameter(init[:, None].repeat(1, M))
        self.log_inv_gain = nn.Parameter(-init[:, None].repeat(1, M))
        # Fixed-point gains for coding, built by update() from log_gain and stored with the
        # weights (like the CDF tables): round(g * 2^16) and round(2^16 / g), int64 [Q, M].
        self.register_buffer("exact_gain", torch.zeros(self.num_qualities, M, dtype=torch.int64))
        self.register_buffer("exact_ungain", torch.zeros(self.num_qualities, M, dtype=torch.int64))

    def update(self, scale_table: Tensor | None = None, force: bool = False, update_quantiles: bool = False) -> bool:
        """Build the CDF tables (the Gaussian's use :func:`fine_scale_table` by default) and
        the fixed-point gains."""
        updated = super().update(fine_scale_table() if scale_table is None else scale_table, force=force,
                                 update_quantiles=update_quantiles)
        if force or not bool(self.exact_gain.all()):
            self.update_exact_gains()
            updated = True
        return updated

    def update_exact_gains(self) -> None:
        """Fill ``exact_gain`` / ``exact_ungain`` from ``log_gain`` (on this machine's ``exp``:
        done once at export, then the integers travel with the weights)."""
        with torch.no_grad():
            self.exact_gain.copy_(exact.fixed_gains(self.log_gain, GAIN_BITS))
            self.exact_ungain.copy_(exact.fixed_gains(-self.log_gain, GAIN_BITS))

    # ------------------------------------------------------------------ exact coding

    def exact_gains(self, quality: int) -> tuple[Tensor, Tensor]:
        """Fixed-point ``(g, 1/g)`` of ``quality``: float64 integers ``[1, M, 1, 1]`` in units
        of ``2^-GAIN_BITS``.

        Raises:
            ValueError: invalid quality, or the gains were never built (run ``update()``).
        """
        self.gains(quality, 1)  # validates the quality
        gain, ungain = self.exact_gain[int(quality) - 1], self.exact_ungain[int(quality) - 1]
        if not bool(gain.all()) or not bool(ungain.all()):
            raise ValueError("the model has no fixed-point gains: run update() first")
        if float(gain.max()) > _MAX_GAIN * 2**GAIN_BITS or float(ungain.max()) > _MAX_UNGAIN * 2**GAIN_BITS:
            raise ValueError("gains too large for exact coding")
        return (gain.to(torch.float64)[None, :, None, None], ungain.to(torch.float64)[None, :, None, None])

    @property
    def qualities(self) -> tuple[int, ...]:
        return tuple(range(1, self.num_qualities + 1))

    def gains(self, quality: QualityLike, batch: int) -> tuple[Tensor, Tensor]:
        """``(g, g')`` each ``[batch, M, 1, 1]`` for ``quality`` (int, or ``[batch]``)."""
        q = torch.as_tensor(quality, device=self.log_gain.device).long().reshape(-1)
        if q.numel() == 1:
            q = q.expand(batch)
        if q.numel() != batch:
            raise ValueError(f"got {q.numel()} qualities for a batch of {batch}")
        if bool(((q < 1) | (q > self.num_qualities)).any()):
            raise ValueError(f"quality must be in 1..{self.num_qualities}, got {q.tolist()}")
        index = q - 1
        return (self.log_gain[index].exp()[:, :, None, None], self.log_inv_gain[index].exp()[:, :, None, None])

    def forward(self, x: Tensor, quality: QualityLike = 1) -> dict:  # type: ignore[override]
        """Training/estimation pass: ``x`` ``[B, 3, H, W]`` in [0, 1] -> ``x_hat`` and the
        likelihoods of ``y`` (gained) and ``z``."""
        gain, inv_gain = self.gains(quality, x.size(0))
        y = self.g_a(x)
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat, y_likelihoods = self.gaussian_conditional(y * gain, scales * gain, means=means * gain)
        x_hat = self.g_s(y_hat * inv_gain)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, x: Tensor, quality: int = 1) -> dict:  # type: ignore[override]
        """Code ``x`` ``[B, 3, H, W]``: ``{"strings": [y streams, z streams], "shape"}``,
        entropy parameters exact (see the module docstring)."""
        gain, _ = self.exact_gains(quality)
        y = self.g_a(x)
        return self._compress_gained(y, self.h_a(y), gain, with_means=True)

    def decompress(self, strings: list, shape, quality: int = 1) -> dict:  # type: ignore[override]
        """Decode what :meth:`compress` wrote: ``{"x_hat": [B, 3, H, W] in [0, 1]}``.

        Raises:
            ncodec.BitstreamError: a stream is damaged or does not match the model.
        """
        gain, _ = self.exact_gains(quality)
        y_hat = self._decompress_gained(strings, shape, gain, with_means=True)
        _, inv_gain = self.gains(quality, y_hat.size(0))
        return {"x_hat": self.g_s(y_hat * inv_gain).clamp_(0, 1)}
