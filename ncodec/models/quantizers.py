"""Vector quantizers shared by every modality: VQ, residual VQ, FSQ.

All take latents ``[B, D, T]`` (channels first, any number of trailing positions ``T``; image
latents can be flattened to it) and return a :class:`QuantizerOutput` whose ``codes`` are the
integer symbols a codec entropy-codes.

* :class:`VectorQuantizer`: one codebook of ``K`` entries. Codebook learned by exponential
  moving averages (``ema=True``, VQ-VAE-2 / SoundStream) or by gradient with a codebook loss
  (needed for the factorized codes); k-means initialisation on the first training batch;
  dead-code restart (entries used less than ``threshold_ema_dead_code`` times on average are
  replaced by random latents of the batch). With ``codebook_dim < D`` the codes are
  *factorized* (DAC): latents are projected to a small space, L2-normalised there, looked up
  by cosine similarity, and projected back.
* :class:`ResidualVectorQuantizer`: ``n_q`` VQs, each coding what the previous ones left.
  Quantizer dropout trains one model for every ``n_q <= max``, so one model serves several
  bitrates.
* :class:`FiniteScalarQuantizer`: FSQ (Mentzer et al. 2023): each of a few dimensions is
  bounded and rounded to ``levels[i]`` values; the code is the mixed-radix index. No codebook,
  no auxiliary loss, every code used.

The straight-through estimator passes gradients from the quantized latents to the encoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FiniteScalarQuantizer", "QuantizerOutput", "ResidualVectorQuantizer", "VectorQuantizer"]


@dataclass
class QuantizerOutput:
    """What a quantizer returns.

    Attributes:
        quantized: ``[B, D, T]`` the quantized latents (straight-through in training).
        codes: ``[B, n_q, T]`` int64 codebook indices.
        commitment_loss: scalar, mean squared distance latents -> codes (encoder side).
        codebook_loss: scalar, the codebook side (0 for EMA codebooks, which learn without it).
        perplexity: ``[n_q]`` exp(entropy) of each codebook's usage in this batch (a health
            metric: ``K`` is perfect use, 1 is collapse).
    """

    quantized: Tensor
    codes: Tensor
    commitment_loss: Tensor
    codebook_loss: Tensor
    perplexity: Tensor


def _all_reduce(t: Tensor) -> Tensor:
    # Under DDP each rank sees its own batch; EMA statistics must agree everywhere.
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


def _broadcast(t: Tensor) -> Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.broadcast(t, 0)
    return t


def _perplexity(codes: Tensor, size: int) -> Tensor:
    counts = torch.bincount(codes.reshape(-1), minlength=size).float()
    p = counts / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-10))).sum())


def _kmeans(samples: Tensor, k: int, iters: int, generator: Optional[torch.Generator]) -> Tensor:
    """``k`` centroids of ``samples [N, d]`` by Lloyd's algorithm (N may be < k: repeats)."""
    n = samples.shape[0]
    idx = torch.randint(n, (k,), generator=generator, device="cpu").to(samples.device) if n < k else \
        torch.randperm(n, generator=generator, device="cpu")[:k].to(samples.device)
    centroids = samples[idx].clone()
    for _ in range(iters):
        assign = torch.cdist(samples, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, samples)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1).to(samples.dtype)
        filled = counts.squeeze(1) > 0
        centroids[filled] = sums[filled] / counts[filled]
    return centroids


class VectorQuantizer(nn.Module):
    """One codebook of ``codebook_size`` vectors (see the module docstring).

    Args:
        dim: latent channels ``D``.
        codebook_size: entries ``K``; codes are in ``0 .. K-1``.
        codebook_dim: dimension of the code space; ``< dim`` makes factorized codes (1x1
            projections in and out, L2-normalised lookup, codebook learned by gradient).
        ema: learn the codebook by moving averages (``codebook_dim == dim`` only).
        decay: EMA decay per training step.
        kmeans_init: initialise the codebook by k-means on the first training batch.
        kmeans_iters: Lloyd iterations for that.
        threshold_ema_dead_code: entries whose EMA usage (vectors per step) falls below this,
            and below a tenth of the average entry's usage, are restarted.
    """

    def __init__(self, dim: int, codebook_size: int, *, codebook_dim: Optional[int] = None,
                 ema: bool = True, decay: float = 0.99, kmeans_init: bool = True, kmeans_iters: int = 10,
                 threshold_ema_dead_code: float = 2.0, epsilon: float = 1e-5):
        super().__init__()
        codebook_dim = dim if codebook_dim is None else codebook_dim
        if not 1 <= codebook_dim <= dim or codebook_size < 2:
            raise ValueError(f"need 1 <= codebook_dim <= dim and codebook_size >= 2, got "
                             f"{codebook_dim}, {dim}, {codebook_size}")
        self.dim, self.codebook_size, self.codebook_dim = dim, codebook_size, codebook_dim
        self.factorized = codebook_dim < dim
        self.ema = ema and not self.factorized
        self.decay, self.epsilon = decay, epsilon
        self.kmeans_iters = kmeans_iters
        self.threshold_ema_dead_code = threshold_ema_dead_code
        if self.factorized:
            self.project_in: nn.Module = nn.Conv1d(dim, codebook_dim, 1)
            self.project_out: nn.Module = nn.Conv1d(codebook_dim, dim, 1)
        else:
            self.project_in = self.project_out = nn.Identity()
        init = torch.randn(codebook_size, codebook_dim) / math.sqrt(codebook_dim)
        if self.ema:
            self.register_buffer("codebook", init)
            self.register_buffer("cluster_size", torch.zeros(codebook_size))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
            self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("initialized", torch.tensor(not kmeans_init))

    # -------------------------------------------------------------- lookup

    def _lookup_table(self) -> Tensor:
        return F.normalize(self.codebook, dim=1) if self.factorized else self.codebook

    def _nearest(self, flat: Tensor) -> Tensor:
        """Codes ``[N]`` of the vectors ``flat [N, d]`` (already projected / normalised)."""
        table = self._lookup_table()
        if self.factorized:  # unit vectors: nearest = largest cosine
            return (flat @ table.t()).argmax(dim=1)
        # ||x||^2 is the same for every entry: argmin of ||e||^2 - 2 x.e
        return (table.pow(2).sum(1) - 2 * flat @ table.t()).argmin(dim=1)

    def _project(self, x: Tensor) -> Tensor:
        """``[B, D, T]`` -> ``[B*T, d]`` in the code space."""
        z = self.project_in(x)
        flat = z.transpose(1, 2).reshape(-1, self.codebook_dim)
        return F.normalize(flat, dim=1) if self.factorized else flat

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``[B, T]`` (int64) of latents ``x [B, D, T]``."""
        return self._nearest(self._project(x)).view(x.shape[0], x.shape[2])

    def decode(self, codes: Tensor) -> Tensor:
        """Latents ``[B, D, T]`` of codes ``[B, T]``."""
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must be in 0..{self.codebook_size - 1}")
        vectors = F.embedding(codes, self._lookup_table())  # [B, T, d]
        return self.project_out(vectors.transpose(1, 2))

    # -------------------------------------------------------------- training

    @torch.no_grad()
    def _init_codebook(self, flat: Tensor) -> None:
        generator = torch.Generator().manual_seed(int(flat.shape[0]))
        centroids = _broadcast(_kmeans(flat.float(), self.codebook_size, self.kmeans_iters, generator))
        self.codebook.data.copy_(centroids)
        # Start the usage statistics at the k-means cluster sizes: a flat start would let the
        # dead-code restart throw away good centroids before their usage has built up.
        counts = torch.bincount(torch.cdist(flat.float(), centroids).argmin(1), minlength=self.codebook_size)
        self.cluster_size.copy_(_broadcast(counts.to(self.cluster_size)).clamp_min(self.threshold_ema_dead_code))
        if self.ema:
            self.embed_sum.copy_(centroids * self.cluster_size.unsqueeze(1))
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, flat: Tensor, codes: Tensor) -> None:
        counts = _all_reduce(torch.bincount(codes, minlength=self.codebook_size).to(flat.dtype))
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.ema:
            sums = _all_reduce(torch.zeros_like(self.embed_sum).index_add_(0, codes, flat))
            self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.cluster_size.sum()
            # Laplace smoothing keeps entries with no members from dividing by zero.
            size = (self.cluster_size + self.epsilon) / (n + self.codebook_size * self.epsilon) * n
            self.codebook.copy_(self.embed_sum / size.unsqueeze(1))
        self._restart_dead(flat)

    @torch.no_grad()
    def _restart_dead(self, flat: Tensor) -> None:
        # An entry is dead when its usage is far below both the threshold and the average
        # entry's: with small batches (CPU training: ~200 vectors per step for 1024 entries)
        # an absolute threshold alone would call every entry dead and restart them all.
        limit = min(self.threshold_ema_dead_code, 0.1 * float(self.cluster_size.mean()))
        dead = self.cluster_size < limit
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        # Same replacements on every rank: draw on rank 0 and broadcast.
        picks = flat[torch.randint(flat.shape[0], (n_dead,), device=flat.device)]
        picks = F.normalize(picks, dim=1) if self.factorized else picks
        replacement = self.codebook.data.clone()
        replacement[dead] = picks.to(replacement.dtype)
        replacement = _broadcast(replacement)
        self.codebook.data.copy_(replacement)
        self.cluster_size[dead] = limit
        if self.ema:
            self.embed_sum[dead] = replacement[dead] * limit

    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantize ``x [B, D, T]``; in training also learns the codebook."""
        b, _, t = x.shape
        flat = self._project(x)
        if self.training and not bool(self.initialized):
            self._init_codebook(flat.detach())
        codes = self._nearest(flat.detach())
        if self.training:
            self._update(flat.detach().float(), codes)
        table = self._lookup_table()
        chosen = F.embedding(codes, table)  # [N, d]
        commitment = F.mse_loss(flat, chosen.detach())
        codebook_loss = F.mse_loss(chosen, flat.detach()) if not self.ema else flat.new_zeros(())
        # Straight-through: forward uses the code, backward passes to the encoder's latent.
        st = flat + (chosen - flat).detach()
        quantized = self.project_out(st.view(b, t, self.codebook_dim).transpose(1, 2))
        return QuantizerOutput(quantized, codes.view(b, 1, t), commitment, codebook_loss,
                               _perplexity(codes, self.codebook_size).view(1))


class ResidualVectorQuantizer(nn.Module):
    """``n_q`` vector quantizers applied to successive residuals.

    Args:
        dim: latent channels.
        n_q: number of codebooks (the most any bitrate uses).
        codebook_size: entries per codebook.
        quantizer_dropout: probability that a training item uses a random ``1..n_q`` number
            of codebooks instead of all (SoundStream / DAC), so every prefix is a codec.
        **vq_kwargs: passed to every :class:`VectorQuantizer`.
    """

    def __init__(self, dim: int, n_q: int, codebook_size: int, *, quantizer_dropout: float = 0.5,
                 **vq_kwargs):
        super().__init__()
        if n_q < 1:
            raise ValueError("n_q must be >= 1")
        self.dim, self.n_q, self.codebook_size = dim, n_q, codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.layers = nn.ModuleList(VectorQuantizer(dim, codebook_size, **vq_kwargs) for _ in range(n_q))

    def _check_n_q(self, n_q: Optional[int]) -> int:
        n_q = self.n_q if n_q is None else int(n_q)
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        return n_q

    def forward(self, x: Tensor, n_q: Optional[int] = None) -> QuantizerOutput:
        """Quantize ``x [B, D, T]`` with ``n_q`` codebooks (training: quantizer dropout)."""
        n_q = self._check_n_q(n_q)
        b = x.shape[0]
        if self.training and self.quantizer_dropout > 0:
            # Per item: how many codebooks it keeps (the rest are masked out of its sum).
            keep = torch.full((b,), n_q, device=x.device)
            drop = torch.rand(b, device=x.device) < self.quantizer_dropout
            keep[drop] = torch.randint(1, n_q + 1, (int(drop.sum()),), device=x.device)
        else:
            keep = None
        residual = x
        quantized = torch.zeros_like(x)
        codes, commit, cb, perp = [], x.new_zeros(()), x.new_zeros(()), []
        for i, layer in enumerate(self.layers[:n_q]):
            out = layer(residual)
            residual = residual - out.quantized.detach()
            if keep is None:
                quantized = quantized + out.quantized
                commit, cb = commit + out.commitment_loss, cb + out.codebook_loss
            else:
                mask = (keep > i).to(x.dtype).view(b, 1, 1)
                quantized = quantized + out.quantized * mask
                # Losses of codebooks an item does not use would train them on nothing.
                share = mask.mean()
                commit, cb = commit + out.commitment_loss * share, cb + out.codebook_loss * share
            codes.append(out.codes)
            perp.append(out.perplexity)
        return QuantizerOutput(quantized, torch.cat(codes, 1), commit, cb, torch.cat(perp))

    def encode(self, x: Tensor, n_q: Optional[int] = None) -> Tensor:
        """Codes ``[B, n_q, T]`` of ``x [B, D, T]``."""
        n_q = self._check_n_q(n_q)
        residual, codes = x, []
        for layer in self.layers[:n_q]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c)
            codes.append(c)
        return torch.stack(codes, 1)

    def decode(self, codes: Tensor) -> Tensor:
        """Latents ``[B, D, T]`` from codes ``[B, n, T]`` (``n <= n_q``: the first ``n`` codebooks)."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.n_q:
            raise ValueError(f"codes must be [B, 1..{self.n_q}, T], got {tuple(codes.shape)}")
        out = self.layers[0].decode(codes[:, 0])
        for i in range(1, codes.shape[1]):
            out = out + self.layers[i].decode(codes[:, i])
        return out


class FiniteScalarQuantizer(nn.Module):
    """FSQ: project to ``len(levels)`` dims, bound each with tanh, round to ``levels[i]`` values.

    The code of a position is the mixed-radix number of its rounded dims, in
    ``0 .. prod(levels) - 1``; ``codes`` are ``[B, 1, T]``.
    """

    def __init__(self, dim: int, levels: Sequence[int]):
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or min(levels) < 2:
            raise ValueError("FSQ needs levels >= 2")
        self.dim, self.levels = dim, levels
        self.codebook_size = int(math.prod(levels))
        self.project_in = nn.Conv1d(dim, len(levels), 1)
        self.project_out = nn.Conv1d(len(levels), dim, 1)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.int64), 0)
        self.register_buffer("_basis", basis, persistent=False)

    def _bound(self, z: Tensor) -> Tensor:
        # Odd L: values -(L-1)/2 .. (L-1)/2; even L: shifted by 1/2 so there are L of them.
        half = (self._levels - 1) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift.view(1, -1, 1)) * half.view(1, -1, 1) - offset.view(1, -1, 1)

    def _codes(self, rounded: Tensor) -> Tensor:
        half = ((self._levels - 1) / 2).view(1, -1, 1)
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0).view(1, -1, 1)
        digits = (rounded + offset + half).round().long()  # 0 .. L-1
        return (digits * self._basis.view(1, -1, 1)).sum(1, keepdim=True)

    def _values(self, codes: Tensor) -> Tensor:
        digits = (codes // self._basis.view(1, -1, 1)) % self._levels.long().view(1, -1, 1)
        half = ((self._levels - 1) / 2).view(1, -1, 1)
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0).view(1, -1, 1)
        return digits.float() - half - offset

    def forward(self, x: Tensor) -> QuantizerOutput:
        z = self._bound(self.project_in(x))
        rounded = z + (z.round() - z).detach()
        codes = self._codes(rounded.detach())
        zero = x.new_zeros(())
        return QuantizerOutput(self.project_out(rounded), codes, zero, zero,
                               _perplexity(codes, self.codebook_size).view(1))

    def encode(self, x: Tensor) -> Tensor:
        return self._codes(self._bound(self.project_in(x)).round())

    def decode(self, codes: Tensor) -> Tensor:
        if codes.dim() != 3 or codes.shape[1] != 1:
            raise ValueError(f"codes must be [B, 1, T], got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must be in 0..{self.codebook_size - 1}")
        return self.project_out(self._values(codes))
