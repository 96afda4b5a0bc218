"""What an ``inr-image`` file stores, coded: the network's parameters and the latents.

* **Network parameters.** Each layer (:func:`ncodec.models.inr_quantize.network_layers`; format 1
  files: each of three groups, :func:`ncodec.models.inr_quantize.module_groups`) is a set of
  integers ``q`` with its power-of-two step (parameter ``= q * 2^-step_bits``), coded in one
  substream, one exact zero-mean Laplace row per layer (:func:`ncodec.entropy.logits.laplace_row`:
  its log-scale and half-width travel in the file, values beyond the half-width escape).
* **Latents.** Every latent ``y`` (an integer in ``-R .. R``) is coded with the Laplace
  ``(mu, b)`` that the ARM gives for its causal neighbours. The ARM runs as an exact
  fixed-point network (:class:`ExactArm`, :mod:`ncodec.models.exact`), and its Laplace becomes a
  CDF row by integer arithmetic only (:func:`ncodec.entropy.logits.laplace_logits`,
  :class:`ncodec.entropy.logits.LogitStage`): every machine, thread count and device derives
  the same rows.
* **Order (the wavefront).** The neighbour farthest ahead is ``(-1, +2)``, so latent ``(y, x)``
  of a grid depends only on latents of earlier steps ``x' + 3y' < x + 3y``. Symbols are coded
  step by step (``t = x + 3y``), within a step grid by grid (finest first), then by row: the
  decoder decodes each step's latents of all grids as one batch, ``W + 3(H - 1)`` batches
  for an image of ``H x W`` instead of one latent at a time. A model whose contexts include
  ancestors (``ancestor_context > 0``, inr-image format 3) codes the grids one after another,
  coarsest first, each in its own steps (about twice as many batches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ncodec.entropy.logits import LOG_SCALE_MIN, STEPS_PER_NAT, LogitStage, laplace_logits, laplace_row
from ncodec.entropy.stage import CdfTable, EntropyStage
from ncodec.errors import BitstreamError
from ncodec.models.exact import FRACTION_BITS, ExactLinear
from ncodec.models.inr import _PAD_LEFT, _PAD_RIGHT, _PAD_TOP, CONTEXT, context_columns

__all__ = ["ExactArm", "GroupCoding", "MAX_HALF", "SCALE_LADDER", "choose_coding", "decode_latents", "decode_network",
           "encode_latents", "encode_network", "group_ints", "layer_bits", "value_bits", "wavefront_order"]

# Largest log-scale index the ARM may give: its training clamps log b to 3.9 (3.9 * 32 = 124.8).
_ARM_LOG_SCALE_MAX = 125
# Symbols whose logits are built at once when encoding (bounds the [n, 2R + 1] buffer).
_ENCODE_BATCH = 1 << 14
MAX_HALF = 16383
"""Largest half-width of a layer's (or group's) Laplace row (larger values escape)."""
SCALE_LADDER = 4
"""Format 2 stores a layer's log-scale index in steps of this many (1/8 nat: one byte; a
Laplace scale off by up to 6 % costs about 0.002 bits per parameter)."""


class ExactArm(nn.Module):
    """The exact fixed-point twin of an ARM (``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``):
    integer contexts ``[n, len(CONTEXT) + ancestor_context]`` -> ``(mu, log_scale)``, int64 ``[n]`` each:
    ``mu`` in units of ``2^-16``, ``log_scale`` the index of ``b`` on the ``1/32``-nat ladder
    (:data:`ncodec.entropy.logits.INV_SCALE_TABLE`), clamped as training clamps ``log b``.
    """

    def __init__(self, arm: nn.Sequential):
        super().__init__()
        items = list(arm)
        layers = []
        for i, layer in enumerate(items):
            if isinstance(layer, nn.ReLU):
                continue
            if not isinstance(layer, nn.Linear):
                raise TypeError(f"an ARM holds Linear and ReLU layers, not {type(layer).__name__}")
            relu = i + 1 < len(items) and isinstance(items[i + 1], nn.ReLU)
            layers.append(ExactLinear.from_float(layer.weight, layer.bias, slope=0.0 if relu else None))
        self.layers = nn.ModuleList(layers)

    @torch.no_grad()
    def forward(self, contexts: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_scale = self.parameters_of(contexts.detach().cpu().numpy())
        return torch.from_numpy(mu), torch.from_numpy(log_scale)

    def parameters_of(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`forward` on integer contexts as a numpy array (int64 ``mu``, ``log_scale``):
        the decoder's per-step call, without torch's per-call overhead."""
        x = contexts.astype(np.float64) * float(1 << FRACTION_BITS)  # to fixed point: exact
        for layer in self.layers:
            x = layer.forward_numpy(x)
        mu = x[:, 0].astype(np.int64)
        shift = FRACTION_BITS - 5  # 2^5 = STEPS_PER_NAT
        log_scale = np.floor(x[:, 1] * float(2.0**-shift) + 0.5).astype(np.int64)
        return mu, np.clip(log_scale, -3 * STEPS_PER_NAT, _ARM_LOG_SCALE_MAX)


def wavefront_order(shapes: Sequence[tuple[int, int]], *, coarse_first: bool = False
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The coding order of the latents of grids ``shapes`` (``[(h, w)]``, finest first).

    Returns ``(level, y, x, starts)``: int32 arrays over all latents in coding order, and the
    index where each wavefront step begins (``starts[t] .. starts[t + 1]``, one more entry than
    steps). Grids up to 2^16 rows and 16 levels. ``coarse_first``: the grids one after
    another, coarsest first, each in steps of its own (a step then holds one grid's latents).
    """
    if coarse_first:
        parts = [(level, wavefront_order([shape])) for level, shape in reversed(list(enumerate(shapes)))]
        offsets = np.cumsum([0] + [p[0].size for _, p in parts])
        starts = [p[3][:-1] + offset for (_, p), offset in zip(parts, offsets)] + [offsets[-1:]]
        return (np.concatenate([np.full(p[0].size, level, dtype=np.int32) for level, p in parts]),
                np.concatenate([p[1] for _, p in parts]), np.concatenate([p[2] for _, p in parts]),
                np.concatenate(starts))
    # One int64 sort key per latent: step (< 2^18), level (< 2^4), row (< 2^16). Building
    # it level by level and sorting it alone keeps the peak near three arrays of n int64s.
    keys = []
    for level, (h, w) in enumerate(shapes):
        y, x = np.divmod(np.arange(h * w, dtype=np.int64), w)
        keys.append(((x + 3 * y) << 20) | (level << 16) | y)
        del y, x
    key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    del keys
    key.sort()
    step = (key >> 20).astype(np.int32)
    level = ((key >> 16) & 0xF).astype(np.int32)
    y = (key & 0xFFFF).astype(np.int32)
    del key
    x = step - 3 * y
    count = int(step[-1]) + 1 if step.size else 0
    starts = np.searchsorted(step, np.arange(count + 1))
    return level, y, x, starts


def _latent_stage(latent_range: int) -> LogitStage:
    return LogitStage(2 * latent_range + 1)


def encode_latents(arm: ExactArm, latents: Sequence[Tensor], latent_range: int, ancestors: int = 0) -> bytes:
    """One substream of the integer ``latents`` (grids ``[1, 1, h, w]``, values in
    ``-latent_range .. latent_range``), in wavefront order (module docstring), each latent's
    context its neighbours and ``ancestors`` co-located values of coarser grids
    (:func:`ncodec.models.inr.context_columns`)."""
    ints = [y.detach().cpu().reshape(y.shape[-2:]).to(torch.int64) for y in latents]
    if any(int(y.abs().max()) > latent_range for y in ints if y.numel()):
        raise ValueError(f"latents must lie in -{latent_range}..{latent_range}")
    shapes = [tuple(y.shape) for y in ints]
    columns = context_columns([y.to(torch.float64).view(1, 1, *y.shape) for y in ints], ancestors)
    mu, log_scale = arm.parameters_of(columns.T.numpy())  # raster order, grid after grid
    level, ys, xs, _ = wavefront_order(shapes, coarse_first=ancestors > 0)
    widths = np.array([y.shape[1] for y in ints], dtype=np.int64)
    bases = np.concatenate([[0], np.cumsum([y.numel() for y in ints])])[:-1]
    flat_index = bases[level] + ys * widths[level] + xs
    values = np.concatenate([y.reshape(-1).numpy() for y in ints])[flat_index]
    mu, log_scale = mu[flat_index], log_scale[flat_index]
    stage = _latent_stage(latent_range)
    writer = stage.writer()
    for i in range(0, values.size, _ENCODE_BATCH):
        j = i + _ENCODE_BATCH
        logits = laplace_logits(mu[i:j], log_scale[i:j], -latent_range, latent_range)
        writer.add(torch.from_numpy(values[i:j] + latent_range), logits)
    return writer.finish()


def decode_latents(arm: ExactArm, shapes: Sequence[tuple[int, int]], data: bytes, latent_range: int,
                   ancestors: int = 0) -> list[Tensor]:
    """The latents of :func:`encode_latents`'s substream (of the same ``ancestors``): float32
    grids ``[1, 1, h, w]``.

    Raises:
        ncodec.BitstreamError: the substream does not hold exactly these latents.
    """
    level, ys, xs, starts = wavefront_order(shapes, coarse_first=ancestors > 0)
    # All grids in one zero-padded buffer (3 rows above, 3 columns left, 2 right: the
    # context's reach), so a step's contexts are one gather.
    padded = [(h + _PAD_TOP, w + _PAD_LEFT + _PAD_RIGHT) for h, w in shapes]
    sizes = np.array([ph * pw for ph, pw in padded], dtype=np.int64)
    bases = np.concatenate([[0], np.cumsum(sizes)])
    buffer = np.zeros(int(bases[-1]), dtype=np.int64)
    pitch = np.array([pw for _, pw in padded], dtype=np.int64)
    offsets = np.array([[dy * pw + dx for dy, dx in CONTEXT] for _, pw in padded], dtype=np.int64)
    position = bases[level] + (ys + _PAD_TOP) * pitch[level] + xs + _PAD_LEFT
    stage = _latent_stage(latent_range)
    reader = stage.reader(data)
    for t in range(len(starts) - 1):
        a, b = starts[t], starts[t + 1]
        at = position[a:b]
        contexts = buffer[at[:, None] + offsets[level[a:b]]]
        if ancestors:  # a step holds one grid's latents (coarse_first); its ancestors are decoded
            lineage = _ancestor_positions(int(level[a]), ys[a:b], xs[a:b], ancestors, bases, pitch)
            contexts = np.concatenate([contexts, buffer[lineage]], 1)
        mu, log_scale = arm.parameters_of(contexts)
        symbols = reader.read(laplace_logits(mu, log_scale, -latent_range, latent_range))
        buffer[at] = symbols.numpy().astype(np.int64) - latent_range
    reader.finish()
    out = []
    for (h, w), base, (ph, pw) in zip(shapes, bases, padded):
        grid = buffer[base:base + ph * pw].reshape(ph, pw)[_PAD_TOP:, _PAD_LEFT:_PAD_LEFT + w]
        out.append(torch.from_numpy(np.ascontiguousarray(grid)).to(torch.float32).view(1, 1, h, w))
    return out


def _ancestor_positions(level: int, ys: np.ndarray, xs: np.ndarray, slots: int, bases: np.ndarray,
                        pitch: np.ndarray) -> np.ndarray:
    """``[n, slots]`` positions in :func:`decode_latents`'s padded buffer of the ancestors of
    latents ``(ys, xs)`` of grid ``level``; past the coarsest grid, position 0 (in grid 0's top
    padding: always 0)."""
    out = np.zeros((ys.size, slots), dtype=np.int64)
    ys, xs = ys.astype(np.int64), xs.astype(np.int64)
    for k in range(1, min(slots, len(pitch) - 1 - level) + 1):
        up = level + k
        out[:, k - 1] = bases[up] + ((ys >> k) + _PAD_TOP) * pitch[up] + (xs >> k) + _PAD_LEFT
    return out


# ---------------------------------------------------------------------- network parameters


@dataclass(frozen=True)
class GroupCoding:
    """How one parameter group is coded: parameters are ``q * 2^-step_bits``, the integers
    ``q`` coded with the zero-mean Laplace row of log-scale index ``log_scale`` on
    ``-half .. half`` (others escape). Stored in the file (format 1: in its meta as a list of
    three ints; format 2: in the network substream's model head)."""

    step_bits: int
    log_scale: int
    half: int


def _group_table(codings: Sequence[GroupCoding]) -> CdfTable:
    """One table row per group (rows padded to the widest)."""
    rows = [laplace_row(c.log_scale, c.half) for c in codings]
    width = max(int(r.cdfs.shape[1]) for r in rows)
    cdfs = torch.zeros(len(rows), width, dtype=torch.int32)
    for i, r in enumerate(rows):
        cdfs[i, : r.cdfs.shape[1]] = r.cdfs[0]
    return CdfTable(cdfs, torch.cat([r.lengths for r in rows]), torch.cat([r.offsets for r in rows]))


def choose_coding(step_bits: int, ints: Tensor) -> GroupCoding:
    """The coding of a layer's integers ``ints``: the Laplace scale of their mean magnitude
    (its log-scale index on format 2's :data:`SCALE_LADDER` above ``LOG_SCALE_MIN``), a
    half-width covering the values worth a table entry (an encoder's choice: it is stored)."""
    scale = max(float(ints.abs().double().mean()), 0.06)
    steps = round((math.log(scale) * STEPS_PER_NAT - LOG_SCALE_MIN) / SCALE_LADDER)
    log_scale = int(steps) * SCALE_LADDER + LOG_SCALE_MIN
    log_scale = max(LOG_SCALE_MIN, log_scale)
    worth = math.ceil(scale * max(math.log(2.0**15 / scale), 0.0)) + 1  # mass per value ~2^-15 there
    peak = int(ints.abs().max()) if ints.numel() else 1
    return GroupCoding(int(step_bits), log_scale, int(min(max(1, min(worth, peak)), MAX_HALF)))


def group_ints(module: nn.Module, step_bits: int) -> Tensor:
    """The integers ``q`` of a group whose parameters are multiples of ``2^-step_bits``: int64
    ``[n]`` in ``parameters()`` order (``ValueError`` if some parameter is not a moderate
    multiple)."""
    values = [p.detach().cpu().double().reshape(-1) * float(2**step_bits) for p in module.parameters()]
    scaled = torch.cat(values) if values else torch.zeros(0, dtype=torch.float64)
    if not torch.equal(scaled, scaled.round()) or (scaled.numel() and float(scaled.abs().max()) >= 2**30):
        raise ValueError("network parameters must be (moderate) multiples of their group's step")
    return scaled.to(torch.int64)


def value_bits(ints: Tensor, coding: GroupCoding | None = None) -> Tensor:
    """Bits of each of one layer's integers ``ints`` (float64, shaped like ``ints``) coded with
    ``coding``'s row (default: the one :func:`choose_coding` picks for them), escapes included,
    the stream's header not."""
    ints = ints.to(torch.int64)
    coding = choose_coding(0, ints) if coding is None else coding
    row = laplace_row(coding.log_scale, coding.half)
    flat = ints.reshape(-1)
    return row.symbol_bits(flat, torch.zeros(flat.numel(), dtype=torch.int64)).double().view(ints.shape)


def layer_bits(ints: Tensor) -> float:
    """Bits of one layer's integers ``ints`` coded with the row :func:`choose_coding` picks (on
    the format 2 :data:`SCALE_LADDER`), escapes included, the stream's header not (the layers
    share one stream): what a step choice costs."""
    return float(value_bits(ints).sum())


def encode_network(modules: Sequence[nn.Module], step_bits: Sequence[int]) -> tuple[bytes, list[GroupCoding]]:
    """One substream of the parameters of ``modules`` (each a layer with its own row, its
    parameters multiples of ``2^-step_bits``), in ``parameters()`` order, and the codings the
    file records."""
    ints = [group_ints(module, bits) for module, bits in zip(modules, step_bits)]
    codings = [choose_coding(bits, q) for bits, q in zip(step_bits, ints)]
    rows = torch.cat([torch.full((q.numel(),), row, dtype=torch.int32) for row, q in enumerate(ints)])
    return EntropyStage(_group_table(codings)).encode(torch.cat(ints).to(torch.int32), rows), codings


def decode_network(modules: Sequence[nn.Module], codings: Sequence[GroupCoding], data: bytes) -> None:
    """Set the parameters of ``modules`` from :func:`encode_network`'s substream (in place).

    Raises:
        ncodec.BitstreamError: the substream does not hold exactly these parameters.
    """
    counts = [sum(p.numel() for p in m.parameters()) for m in modules]
    rows = torch.cat([torch.full((n,), i, dtype=torch.int32) for i, n in enumerate(counts)])
    ints = EntropyStage(_group_table(codings)).decode(data, rows).to(torch.float64)
    if ints.numel() and float(ints.abs().max()) >= 2**30:
        raise BitstreamError("network parameter out of range (a corrupt or foreign file)")
    at = 0
    with torch.no_grad():
        for module, coding in zip(modules, codings):
            for p in module.parameters():
                n = p.numel()
                p.copy_((ints[at:at + n] * float(2.0**-coding.step_bits)).view_as(p).to(p.dtype))
                at += n
