"""A context model over a residual VQ's tokens (EnCodec's small-LM idea), exact on every device.

The static per-codebook prior of :class:`~ncodec.models.audio.AudioCodecModel` codes each token
as if it were alone. Tokens are not alone: a frame's codes follow from the last frame's, and a
residual codebook's code from the codes above it. :class:`TokenContextModel` predicts code
``c[q, t]`` (codebook ``q``, frame ``t``) from

* ``prev = sum_{q' <= q} e[q'][c[q', t-1]]``: the last frame, reconstructed up to codebook ``q``;
* ``cur = sum_{q' < q} e[q'][c[q', t]]``: this frame, reconstructed above codebook ``q``;

with ``e[q]`` codebook ``q``'s stored vectors (``[K, D]``) and one small MLP per codebook
(``2D -> H -> H -> K``, ReLU). Both features use only codebooks ``<= q``, so one model serves
every bitrate (any prefix of the codebooks). The frame before the first of every *segment*
(``segment_frames`` frames from the start of a container chunk) is all zeros: chunks stay
independently decodable, and a decoder steps through the segments of a chunk side by side
(``segment_frames * n`` sequential steps per chunk, not ``frames * n``).

Training runs the float model (:meth:`TokenContextModel.forward`); coding runs its exact twin
(:meth:`TokenContextModel.exact`, :class:`ExactTokenContext`): codebook vectors and weights in
fixed point (:mod:`ncodec.models.exact`), logits turned into CDF rows by
:class:`ncodec.entropy.logits.LogitStage` with integer arithmetic. Encoder and decoder derive
the same probabilities on every CPU, thread count and device.

Shapes: codes ``[C, n, F]`` (channels or batch, codebooks ``n <= n_q``, frames), int64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncodec.entropy.coder import BytesLike
from ncodec.entropy.logits import LogitStage
from ncodec.models.exact import FRACTION_BITS, ExactLinear, to_fixed
from ncodec.models.weights import WeightsFormat, register_weights_format

__all__ = ["CONTEXT_ARCHITECTURES", "CONTEXT_FORMAT", "ExactTokenContext", "TokenContextArch", "TokenContextModel",
           "context_features"]


@dataclass(frozen=True)
class TokenContextArch:
    """Sizes of a :class:`TokenContextModel`: ``n_q`` codebooks of ``codebook_size`` entries
    of dimension ``dim``; ``hidden`` units per MLP layer; contexts start afresh every
    ``segment_frames`` frames (so that a decoder decodes the segments of a chunk side by side)."""

    n_q: int
    codebook_size: int
    dim: int
    hidden: int = 64
    segment_frames: int = 25


def context_features(codebooks: Tensor, codes: Tensor, segment_frames: int = 0) -> tuple[Tensor, Tensor]:
    """``(prev, cur)``, each ``[C, n, F, D]``, of ``codes [C, n, F]`` with ``codebooks
    [n_q, K, D]`` (see the module docstring; float for training, fixed point for coding:
    sums of integers, exact in float64). ``prev`` is zero at frame 0 and, when
    ``segment_frames`` > 0, at every multiple of it."""
    c, n, f = codes.shape
    vectors = torch.stack([codebooks[q][codes[:, q]] for q in range(n)], 1)  # [C, n, F, D]
    upto = vectors.cumsum(1)  # sum over q' <= q
    cur = torch.cat([torch.zeros_like(upto[:, :1]), upto[:, :-1]], 1)
    prev = torch.cat([torch.zeros_like(upto[:, :, :1]), upto[:, :, :-1]], 2)
    if segment_frames > 0:
        prev[:, :, ::segment_frames] = 0
    return prev, cur


class TokenContextModel(nn.Module):
    """Per-codebook MLPs: logits ``[C, n, F, K]`` (nats) of features ``prev, cur [C, n, F, D]``.

    The last layer's bias starts at ``log_prior`` (``[n_q, K]``) when given, so an untrained
    model is the static prior.
    """

    def __init__(self, arch: TokenContextArch, log_prior: Tensor | None = None):
        super().__init__()
        self.arch = arch
        q, d, h, k = arch.n_q, arch.dim, arch.hidden, arch.codebook_size
        self.w1 = nn.Parameter(torch.randn(q, 2 * d, h) / math.sqrt(2 * d))
        self.b1 = nn.Parameter(torch.zeros(q, h))
        self.w2 = nn.Parameter(torch.randn(q, h, h) / math.sqrt(h))
        self.b2 = nn.Parameter(torch.zeros(q, h))
        self.w3 = nn.Parameter(torch.zeros(q, h, k))
        self.b3 = nn.Parameter(torch.zeros(q, k) if log_prior is None else log_prior.detach().float().clone())
        # Part of the format (where contexts restart), so part of the state and its fingerprint.
        self.register_buffer("segment_frames", torch.tensor(arch.segment_frames, dtype=torch.int64))

    def forward(self, prev: Tensor, cur: Tensor) -> Tensor:
        n = prev.shape[1]
        x = torch.cat([prev, cur], -1)  # [C, n, F, 2D]
        h = F.relu(torch.einsum("cnfi,nih->cnfh", x, self.w1[:n]) + self.b1[:n, None])
        h = F.relu(torch.einsum("cnfi,nih->cnfh", h, self.w2[:n]) + self.b2[:n, None])
        return torch.einsum("cnfi,nik->cnfk", h, self.w3[:n]) + self.b3[:n, None]

    def exact(self, codebooks: Tensor) -> "ExactTokenContext":
        """The coding twin of this model for ``codebooks [n_q, K, D]`` (the quantizer's stored vectors)."""
        return ExactTokenContext(self, codebooks)


class ExactTokenContext:
    """Codes a chunk's tokens with :class:`TokenContextModel`'s exact twin.

    ``encode(codes) -> bytes`` (one substream), ``decode(data, channels, n, frames) -> codes``.
    Symbols are coded in decoding order: step ``(t, q)`` for ``t`` in a segment's frames and
    ``q`` in the codebooks, and within a step every segment (that has a frame ``t``) and
    channel, in that order. Everything that decides a probability is integer arithmetic (see
    the module docstring), on the CPU.
    """

    def __init__(self, model: TokenContextModel, codebooks: Tensor):
        arch = model.arch
        if tuple(codebooks.shape) != (arch.n_q, arch.codebook_size, arch.dim):
            raise ValueError(f"codebooks {tuple(codebooks.shape)} do not fit the context model "
                             f"({arch.n_q}, {arch.codebook_size}, {arch.dim})")
        self.arch = arch
        self.segment = int(model.segment_frames)
        self.codebooks = to_fixed(codebooks.detach().cpu().float())  # [n_q, K, D] fixed point
        self.layers = [[ExactLinear.from_float(getattr(model, f"w{i}")[q].t(), getattr(model, f"b{i}")[q],
                                               slope=0.0 if i < 3 else None) for i in (1, 2, 3)]
                       for q in range(arch.n_q)]
        self.stage = LogitStage(arch.codebook_size, fraction_bits=FRACTION_BITS)

    def _check(self, n: int) -> None:
        if not 1 <= n <= self.arch.n_q:
            raise ValueError(f"the context model covers 1..{self.arch.n_q} codebooks, not {n}")

    def _mlp(self, q: int, x: Tensor) -> Tensor:
        """Fixed-point logits ``[m, K]`` of features ``x [m, 2D]`` for codebook ``q``."""
        for layer in self.layers[q]:
            x = layer(x)
        return x

    def logits(self, codes: Tensor) -> Tensor:
        """Fixed-point logits ``[C, n, F, K]`` of every code of ``codes [C, n, F]`` at once."""
        c, n, f = codes.shape
        self._check(n)
        prev, cur = context_features(self.codebooks, codes.long().cpu(), self.segment)
        x = torch.cat([prev, cur], -1)  # [C, n, F, 2D]
        out = torch.empty(c, n, f, self.arch.codebook_size, dtype=torch.float64)
        for q in range(n):
            out[:, q] = self._mlp(q, x[:, q].reshape(c * f, -1)).reshape(c, f, -1)
        return out

    def _order(self, c: int, n: int, f: int) -> Tensor:
        """Flat indexes into ``[C, n, F]`` in decoding order (see the class docstring)."""
        frame = torch.arange(f)
        step, segment = frame % self.segment, frame // self.segment
        # sort frames by (step, segment): stable, so segments stay in order within a step
        frames = frame[torch.argsort(step * (f + 1) + segment)]
        starts = torch.cat([torch.zeros(1, dtype=torch.int64), torch.bincount(step[frames]).cumsum(0)])
        order = []
        for t in range(min(self.segment, f)):
            ts = frames[starts[t]:starts[t + 1]]  # frames at step t, one per segment
            for q in range(n):
                order.append((torch.arange(c).view(1, -1) * n * f + q * f + ts.view(-1, 1)).reshape(-1))
        return torch.cat(order)

    def encode(self, codes: Tensor) -> bytes:
        """One substream of ``codes [C, n, F]``."""
        codes = codes.long().cpu()
        c, n, f = codes.shape
        order = self._order(c, n, f)
        logits = self.logits(codes).reshape(-1, self.arch.codebook_size)[order]
        return self.stage.encode(codes.reshape(-1)[order], logits)

    def bits(self, codes: Tensor) -> Tensor:
        """Code length in bits of each code (float32 ``[C, n, F]``), stream headers excluded."""
        codes = codes.long().cpu()
        return self.stage.symbol_bits(codes, self.logits(codes))

    def decode(self, data: BytesLike, channels: int, n: int, frames: int) -> Tensor:
        """Codes int64 ``[channels, n, frames]`` of :meth:`encode`'s substream.

        Raises:
            ncodec.BitstreamError: ``data`` is not such a substream (malformed, truncated,
                padded, foreign, or holding codes outside the codebooks).
        """
        self._check(n)
        d, seg = self.arch.dim, self.segment
        segments = -(-frames // seg)
        reader = self.stage.reader(data)
        out = torch.empty(channels, n, segments * seg, dtype=torch.int64)
        # [segments * channels, D] per codebook: the last frame's reconstruction up to q.
        upto_prev = torch.zeros(n, segments * channels, d, dtype=torch.float64)
        for t in range(min(seg, frames)):
            rows = (frames - t + seg - 1) // seg * channels  # segments that have a frame t, x channels
            cur = torch.zeros(rows, d, dtype=torch.float64)
            for q in range(n):
                code = reader.read(self._mlp(q, torch.cat([upto_prev[q, :rows], cur], -1))).long()
                out[:, q, t::seg][:, : rows // channels] = code.view(-1, channels).t()
                cur = cur + self.codebooks[q][code]
                upto_prev[q, :rows] = cur
        reader.finish()
        return out[..., :frames]


# ----------------------------------------------------------------------------- weights files

CONTEXT_ARCHITECTURES: dict[str, TokenContextArch] = {
    # Over speech-rvq-16k's 12 codebooks of 1024 128-d vectors.
    "speech-rvq-16k-context": TokenContextArch(n_q=12, codebook_size=1024, dim=128, hidden=64, segment_frames=25),
}
"""Shipped context-model configurations, named ``<audio architecture>-context``."""

CONTEXT_FORMAT = "ncodec-token_context-weights-v1"

register_weights_format(WeightsFormat(
    name=CONTEXT_FORMAT,
    architectures=lambda: CONTEXT_ARCHITECTURES,
    build=lambda meta: TokenContextModel(CONTEXT_ARCHITECTURES[meta["arch"]]),
))
