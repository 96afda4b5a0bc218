"""The video codec's P-frame model: block motion, then a conditional (contextual) transform codec.

A P-frame is coded against the previous decoded frame (its *reference*) in two parts:

1. **Motion.** Integer block vectors, one per :data:`BLOCK` x :data:`BLOCK` luma block, from
   :func:`ncodec.models.motion.block_motion` (encoder only) and coded losslessly by
   :mod:`ncodec.models.motion_coding`. :func:`predict_planes` moves the reference by them:
   luma by whole pixels, chroma by half the vector (an odd component averages the two chroma
   samples it falls between, rounded in integers). On uint8 planes that prediction is an
   integer computation, the same on every machine.
2. **Contextual coding** (:class:`PFrameCoder`, after DCVC, Li et al. 2021): the frame is
   analysed *together with* features of the prediction, ``y = g_a(x, ctx(pred))``, and
   synthesised from the decoded latent and the same features, ``x̂ = pred + g_s(ŷ, ctx(pred))``;
   it learns what to send where the prediction fails, rather than being told to code a
   residual. ``y`` is coded by a variable-rate mean-scale hyperprior whose entropy parameters
   come from ``ẑ`` alone through the exact integer ``h_s``
   (:class:`~ncodec.models.variable_rate.VariableRateMeanScaleHyperprior`). Nothing that
   decides a symbol's probability depends on the reference: a reference that differs by a
   rounding between machines changes pixels slightly, never the decoded symbols.

Frames are YUV 4:2:0 held *packed*: the luma's 2x2 phases (``pixel_unshuffle``) beside U and V,
``[B, 6, H/2, W/2]`` floats in [0, 1] (:func:`pack_planes`), as DCVC-RT does: every channel at
one resolution, a quarter of the pixels of a luma-resolution network. Sizes are multiples of
:data:`ALIGNMENT` luma pixels (callers pad, edges repeated).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from torch import Tensor, nn

from ncodec.entropy.models import use_ncodec_coder
from ncodec.models.fingerprint import state_fingerprint
from ncodec.models.variable_rate import VariableRateMeanScaleHyperprior
from ncodec.models.weights import WeightsFormat, register_weights_format

__all__ = ["ALIGNMENT", "ARCHITECTURES", "BLOCK", "PACKED_CHANNELS", "VIDEO_LAMBDAS", "PFrameCoder",
           "build_pframe_model", "model_fingerprint", "pack_planes", "predict_planes", "unpack_planes"]

ALIGNMENT = 32
"""Frame sizes (luma pixels) are multiples of this: the latent is 1/16 of the luma, ``ẑ`` 1/32."""
BLOCK = 16
"""Luma pixels per side of a motion block (chroma: 8)."""
PACKED_CHANNELS = 6
# λ of qualities 1..5 (MSE on [0, 1] samples, 6:1:1 weighted through the packing): the image
# ladder's, since a P-frame's rate and an intra frame's trade the same distortion.
VIDEO_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250)


# ----------------------------------------------------------------------------- planes

def pack_planes(y: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Luma ``[B, 1, H, W]`` and chroma ``[B, 1, H/2, W/2]`` (H, W even) -> ``[B, 6, H/2, W/2]``."""
    return torch.cat([F.pixel_unshuffle(y, 2), u, v], 1)


def unpack_planes(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of :func:`pack_planes`: ``[B, 6, h, w]`` -> ``(y [B,1,2h,2w], u [B,1,h,w], v)``."""
    return F.pixel_shuffle(x[:, :4], 2), x[:, 4:5], x[:, 5:6]


def _gather(plane: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """``plane [B, H, W]`` read at ``(i + dy, j + dx)`` (edges repeated); ``dy``/``dx`` long
    ``[B, H, W]``."""
    b, h, w = plane.shape
    ii = torch.arange(h, device=plane.device).view(1, h, 1)
    jj = torch.arange(w, device=plane.device).view(1, 1, w)
    index = (ii + dy).clamp_(0, h - 1) * w + (jj + dx).clamp_(0, w - 1)
    return plane.reshape(b, h * w).gather(1, index.reshape(b, h * w)).view(b, h, w)


def predict_planes(y: Tensor, u: Tensor, v: Tensor, vectors: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The reference planes moved by block vectors.

    Args:
        y: reference luma ``[B, H, W]``; u, v: chroma ``[B, H/2, W/2]`` (H, W multiples of
            :data:`BLOCK`); any dtype: integer planes give an exact integer prediction.
        vectors: ``[B, 2, H/BLOCK, W/BLOCK]`` integer ``(dx, dy)`` in luma pixels (any
            magnitude: reads outside the frame repeat its edges).

    Returns:
        the predicted ``(y, u, v)``, same shapes and dtype. Chroma moves by ``v / 2``: an odd
        component averages the two samples it falls between, ``(a + b + 1) >> 1`` for
        integer planes (``(a + b + c + d + 2) >> 2`` when both are odd), the plain mean for
        float ones.
    """
    vectors = vectors.round().long() if vectors.is_floating_point() else vectors.long()
    vectors = vectors.clamp(-(1 << 20), 1 << 20)
    dense = vectors.repeat_interleave(BLOCK, 2).repeat_interleave(BLOCK, 3)
    py = _gather(y, dense[:, 1], dense[:, 0])
    half = vectors.repeat_interleave(BLOCK // 2, 2).repeat_interleave(BLOCK // 2, 3)
    lo, hi = torch.div(half, 2, rounding_mode="floor"), -torch.div(-half, 2, rounding_mode="floor")
    out = []
    for plane in (u, v):
        wide = plane if plane.is_floating_point() else plane.to(torch.int32)  # 4 x 255 overflows uint8
        total = (_gather(wide, lo[:, 1], lo[:, 0]) + _gather(wide, lo[:, 1], hi[:, 0])
                 + _gather(wide, hi[:, 1], lo[:, 0]) + _gather(wide, hi[:, 1], hi[:, 0]))
        if plane.is_floating_point():
            out.append(total * 0.25)
        else:
            out.append(torch.div(total + 2, 4, rounding_mode="floor").to(plane.dtype))
    return py, out[0], out[1]


# ----------------------------------------------------------------------------- the coder

def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _deconv(cin: int, cout: int, k: int = 5) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=2, padding=k // 2, output_padding=1)


class ContextFeatures(nn.Module):
    """Features of the prediction that both transforms see: ``[B, 6, h, w] -> [B, F, h, w]``."""

    def __init__(self, features: int):
        super().__init__()
        self.body = nn.Sequential(_conv(PACKED_CHANNELS, features), nn.LeakyReLU(0.1, inplace=True),
                                  _conv(features, features))

    def forward(self, pred: Tensor) -> Tensor:
        return self.body(pred)


class ContextualAnalysis(nn.Module):
    """``g_a``: frame and context features -> latent ``[B, M, h/8, w/8]``."""

    def __init__(self, N: int, M: int, features: int):
        super().__init__()
        self.body = nn.Sequential(_conv(PACKED_CHANNELS + features, N, 5, 2), GDN(N), _conv(N, N, 5, 2), GDN(N),
                                  _conv(N, M, 5, 2))

    def forward(self, x: Tensor, ctx: Tensor) -> Tensor:
        return self.body(torch.cat([x, ctx], 1))


class ContextualSynthesis(nn.Module):
    """``g_s``: decoded latent and context features -> the frame, as a correction of the
    prediction: ``pred + body(ŷ, ctx)``."""

    def __init__(self, N: int, M: int, features: int):
        super().__init__()
        self.upsample = nn.Sequential(_deconv(M, N), GDN(N, inverse=True), _deconv(N, N), GDN(N, inverse=True),
                                      _deconv(N, features))
        self.fuse = nn.Sequential(_conv(2 * features, features), nn.LeakyReLU(0.1, inplace=True),
                                  _conv(features, PACKED_CHANNELS))

    def forward(self, y_hat: Tensor, ctx: Tensor, pred: Tensor) -> Tensor:
        return pred + self.fuse(torch.cat([self.upsample(y_hat), ctx], 1))


class PFrameCoder(VariableRateMeanScaleHyperprior):
    """The conditional transform codec of P-frames (see the module docstring).

    Args:
        N: channels of the transforms; M: latent channels; features: context channels.
        lmbdas: λ of each quality (initialise the gains, as the image model's).

    ``forward(x, pred, quality)`` trains; ``compress(x, pred, quality)`` ->
    ``{"strings": [[y], [z]], "shape"}``; ``decompress(strings, shape, pred, quality)`` ->
    ``{"x_hat"}``. ``x``, ``pred``: packed frames ``[B, 6, H/2, W/2]`` in [0, 1].
    """

    def __init__(self, N: int = 64, M: int = 96, features: int = 32,
                 lmbdas: Sequence[float] = VIDEO_LAMBDAS):
        super().__init__(N=N, M=M, lmbdas=lmbdas)
        self.features = features
        self.context = ContextFeatures(features)
        self.g_a = ContextualAnalysis(N, M, features)
        self.g_s = ContextualSynthesis(N, M, features)
        # z at half the latent's resolution (one stride-2 layer, CompressAI's has two), so
        # frames need only 32-pixel alignment.
        self.h_a = nn.Sequential(_conv(M, N), nn.LeakyReLU(inplace=True), _conv(N, N, 5, 2))
        self.h_s = nn.Sequential(_deconv(N, M), nn.LeakyReLU(inplace=True), _conv(M, M * 3 // 2),
                                 nn.LeakyReLU(inplace=True), _conv(M * 3 // 2, M * 2))

    def forward(self, x: Tensor, pred: Tensor, quality=1) -> dict:  # type: ignore[override]
        """Training pass: ``x_hat`` and the likelihoods of ``y`` (gained) and ``z``."""
        gain, inv_gain = self.gains(quality, x.size(0))
        ctx = self.context(pred)
        y = self.g_a(x, ctx)
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat, y_likelihoods = self.gaussian_conditional(y * gain, scales * gain, means=means * gain)
        x_hat = self.g_s(y_hat * inv_gain, ctx, pred)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, x: Tensor, pred: Tensor, quality: int = 1) -> dict:  # type: ignore[override]
        """Code ``x`` given ``pred``; entropy parameters exact (from ``ẑ`` alone)."""
        gain, _ = self.exact_gains(quality)
        y = self.g_a(x, self.context(pred))
        return self._compress_gained(y, self.h_a(y), gain, with_means=True)

    def decompress(self, strings: list, shape, pred: Tensor, quality: int = 1) -> dict:  # type: ignore[override]
        """The frame of :meth:`compress`'s streams, ``{"x_hat": [B, 6, H/2, W/2]}`` (not clamped)."""
        gain, _ = self.exact_gains(quality)
        y_hat = self._decompress_gained(strings, shape, gain, with_means=True)
        _, inv_gain = self.gains(quality, y_hat.size(0))
        return {"x_hat": self.g_s(y_hat * inv_gain, self.context(pred), pred)}


# ----------------------------------------------------------------------------- registry of sizes

ARCHITECTURES: dict[str, dict[str, int]] = {
    "video-ctx": {"N": 64, "M": 96, "features": 32},
}
"""P-frame architectures by name: their sizes."""


def build_pframe_model(arch: str = "video-ctx") -> PFrameCoder:
    """A freshly initialised P-frame model with ncodec's entropy models."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown P-frame architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return use_ncodec_coder(PFrameCoder(**ARCHITECTURES[arch]))


_ENCODER_ONLY = frozenset({"g_a", "h_a"})


def model_fingerprint(model: nn.Module) -> str:
    """32 hex digits identifying what decoding depends on (every state entry but the
    analysis transforms'); run ``model.update()`` first."""
    return state_fingerprint({k: v for k, v in model.state_dict().items()
                              if not _ENCODER_ONLY.intersection(k.split("."))})


register_weights_format(WeightsFormat(
    name="ncodec-video-weights-v1",
    architectures=lambda: ARCHITECTURES,
    build=lambda meta: build_pframe_model(meta["arch"]),
    before_export=lambda model: model.update(force=True),
))

