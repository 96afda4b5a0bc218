"""``ncodec demo``: the bundled real images and speech through ncodec.

First, lossless coding with ncodec's range coder and classic reversible transforms, every
round trip checked bit for bit; then the bundled photos through the default learned
(lossy) image codec, with WebP at the same byte budget beside it.

* Images: RGB -> YCoCg-R (reversible integer colour transform) -> CDF 5/3 integer wavelet
  (lifting, as in lossless JPEG 2000) -> coefficients coded with a *forward-adaptive*
  Laplacian model: each subband is cut into blocks, each block picks one of
  :data:`NUM_SCALES` log-spaced scales, the block's scale index travels as side information.
* Audio: int16 PCM -> residual of FLAC's fixed order-2 predictor -> the same block-scale
  model over blocks of :data:`AUDIO_BLOCK` samples.

A coded file is ``header | side stream | main stream``; the header is a kind byte and a few
LEB128 varints, the two streams are ordinary :func:`ncodec.entropy.encode` streams. The
decoder needs only these bytes and the fixed tables built by :func:`scale_table` and
:func:`side_table`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

import ncodec
from ncodec import entropy as E
from ncodec.errors import BitstreamError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "AudioResult",
    "DemoReport",
    "ImageResult",
    "SpeedResult",
    "VerificationError",
    "decode_audio",
    "decode_image",
    "encode_audio",
    "encode_image",
    "format_report",
    "run_demo",
]

# --------------------------------------------------------------------------------------
# Fixed parameters (part of the demo's format: the decoder rebuilds the same tables)
# --------------------------------------------------------------------------------------

NUM_SCALES = 64
"""Rows of the coefficient table: Laplacian scales, log-spaced."""
MIN_SCALE = 0.08
"""Smallest Laplacian scale ``b`` (in integer steps): a zero then costs about 0.003 bit."""
MAX_SCALE = 3000.0
"""Largest Laplacian scale ``b``; larger residuals still round-trip through the escape."""
MAX_HALF_WIDTH = 4095
"""Regular symbols of a row cover ``-half .. half`` with ``half <= MAX_HALF_WIDTH``."""
SIDE_SCALE = 2.5
"""Laplacian scale of the fixed table that codes block-index differences."""
SIDE_HALF_WIDTH = 24
"""Index differences in ``-24 .. 24`` are regular symbols of the side table; others escape."""
FIRST_INDEX_PREDICTION = NUM_SCALES // 2
"""Prediction of the first block index (the others are predicted by the previous one)."""

IMAGE_LEVELS = 4
"""Wavelet decomposition levels (fewer for small images, see :func:`wavelet_levels`)."""
IMAGE_BLOCK = 8
"""Side of the square blocks that share one scale index, in coefficients."""
AUDIO_BLOCK = 256
"""Samples per block that share one scale index (16 ms at 16 kHz)."""
SCALE_SEARCH = 4
"""Rows on each side of the maximum-likelihood guess that a block's scale choice costs exactly."""

KIND_IMAGE = 0x49  # b"I"
KIND_AUDIO = 0x41  # b"A"

BENCH_REPEATS = 10
"""Timed repetitions for the coder speed figures (the best one is reported)."""


class VerificationError(ValueError):
    """The decoder's output differs from the encoder's input (a bug, never expected)."""


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodingTable:
    """A set of CDF rows in the coder's layout plus the cost of each symbol in bits.

    Attributes:
        cdfs: int32 ``[rows, width]`` quantised CDFs (16-bit, escape slot included).
        cdf_lengths: int32 ``[rows]`` valid entries per row.
        offsets: int32 ``[rows]``; a symbol ``s`` is coded as value ``s - offsets[row]``.
        scales: float64 ``[rows]`` the Laplacian scale each row was built from.
        bits: float32 ``[rows, width - 1]`` code length in bits of value ``v`` (regular
            values ``0 .. len-3``, escape at ``len-2``; padding is ``inf``).
    """

    cdfs: torch.Tensor
    cdf_lengths: torch.Tensor
    offsets: torch.Tensor
    scales: torch.Tensor
    bits: torch.Tensor

    @property
    def rows(self) -> int:
        return int(self.cdfs.shape[0])

    def coder_args(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(cdfs, cdf_lengths, offsets)`` as :func:`ncodec.entropy.encode` takes them."""
        return self.cdfs, self.cdf_lengths, self.offsets


def laplace_half_width(scale: float, max_half: int) -> int:
    """Half-width of the regular support for a Laplacian of scale ``scale`` (integer steps).

    Symbols out to where the mass per symbol falls to about ``2**-15`` are worth a table
    entry; farther ones are cheaper as escapes (each table entry costs at least 1/65536).
    """
    half = math.ceil(scale * max(math.log(2.0**15 / scale), 0.0)) + 1
    return int(min(max(half, 2), max_half))


def discrete_laplace_pmf(scale: float, half: int) -> tuple[np.ndarray, float]:
    """Mass of the integers ``-half .. half`` under a Laplacian of scale ``scale``, and the tail.

    Returns:
        ``(pmf [2*half+1] float64, tail)`` where ``tail`` is the mass outside the support;
        integer ``k`` gets the continuous mass of ``[k - 1/2, k + 1/2]``.
    """
    k = np.abs(np.arange(-half, half + 1, dtype=np.float64))
    upper = np.exp(-(k + 0.5) / scale)
    lower = np.where(k == 0, 1.0, np.exp(-(np.maximum(k, 0.5) - 0.5) / scale))
    pmf = np.where(k == 0, 1.0 - upper, 0.5 * (lower - upper))
    tail = float(np.exp(-(half + 0.5) / scale))
    return pmf, tail


def build_table(scales: Sequence[float], max_half: int) -> CodingTable:
    """Quantised CDF table with one zero-mean discrete Laplacian row per scale.

    Args:
        scales: Laplacian scales ``b`` in integer steps, one per row.
        max_half: cap on the half-width of every row's regular support.
    """
    halves = [laplace_half_width(s, max_half) for s in scales]
    width = 2 * max(halves) + 1
    pmf = np.zeros((len(scales), width), dtype=np.float64)
    tails = np.zeros(len(scales), dtype=np.float64)
    for r, (s, h) in enumerate(zip(scales, halves)):
        pmf[r, : 2 * h + 1], tails[r] = discrete_laplace_pmf(s, h)
    lengths = torch.tensor([2 * h + 1 for h in halves], dtype=torch.int64)
    cdfs = E.pmf_to_quantized_cdf(torch.from_numpy(pmf), pmf_lengths=lengths, tail_mass=torch.from_numpy(tails))
    cdf_lengths = (lengths + 2).to(torch.int32)
    offsets = torch.tensor([-h for h in halves], dtype=torch.int32)
    freq = (cdfs[:, 1:] - cdfs[:, :-1]).to(torch.float64)
    valid = torch.arange(freq.shape[1]) < (cdf_lengths - 1).unsqueeze(1)
    bits = torch.where(valid, E.PRECISION - torch.log2(freq.clamp_min(1)), torch.inf).to(torch.float32)
    return CodingTable(cdfs, cdf_lengths, offsets, torch.tensor(list(scales), dtype=torch.float64), bits)


@functools.lru_cache(maxsize=1)
def scale_table() -> CodingTable:
    """The coefficient/residual table: :data:`NUM_SCALES` log-spaced Laplacian rows (built once)."""
    scales = np.geomspace(MIN_SCALE, MAX_SCALE, NUM_SCALES)
    return build_table(scales.tolist(), MAX_HALF_WIDTH)


@functools.lru_cache(maxsize=1)
def side_table() -> CodingTable:
    """The one-row table that codes differences of consecutive block scale indexes."""
    return build_table([SIDE_SCALE], SIDE_HALF_WIDTH)


def symbol_bits(values: torch.Tensor, rows: torch.Tensor, table: CodingTable) -> torch.Tensor:
    """Code length in bits of each symbol if coded with the given rows (escapes included).

    Args:
        values: int tensor of symbols, any shape.
        rows: int tensor of table rows, same shape.

    Returns:
        float32 tensor shaped like ``values``: exact table costs for regular symbols; for
        escapes the escape symbol plus the coder's 4-bit length and 4-bit payload chunks.
    """
    rows = rows.to(torch.int64)
    v = values.to(torch.int64) - table.offsets.to(torch.int64)[rows]
    max_value = table.cdf_lengths.to(torch.int64)[rows] - 2
    inside = (v >= 0) & (v < max_value)
    bits = table.bits.reshape(-1)[rows * table.bits.shape[1] + torch.where(inside, v, max_value)]
    escaped = (~inside).nonzero(as_tuple=True)
    if escaped[0].numel():
        v_esc, max_esc = v[escaped], max_value[escaped]
        payload = torch.where(v_esc < 0, -2 * v_esc - 1, 2 * (v_esc - max_esc))
        chunks = sum((payload >> (4 * i) != 0).to(torch.float32) for i in range(16))
        bits[escaped] += 4.0 + 4.0 * chunks
    return bits


# --------------------------------------------------------------------------------------
# Reversible transforms (integer tensors, exact inverses)
# --------------------------------------------------------------------------------------


def rgb_to_ycocg_r(rgb: torch.Tensor) -> torch.Tensor:
    """YCoCg-R forward transform.

    Args:
        rgb: int32 ``[3, H, W]`` with values 0..255.

    Returns:
        int32 ``[3, H, W]``: Y in 0..255, Co and Cg in -255..255.
    """
    r, g, b = rgb.to(torch.int32).unbind(0)
    co = r - b
    t = b + (co >> 1)
    cg = g - t
    y = t + (cg >> 1)
    return torch.stack([y, co, cg])


def ycocg_r_to_rgb(ycocg: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`rgb_to_ycocg_r`: int32 ``[3, H, W]`` -> int32 ``[3, H, W]``."""
    y, co, cg = ycocg.unbind(0)
    t = y - (cg >> 1)
    g = cg + t
    b = t - (co >> 1)
    r = b + co
    return torch.stack([r, g, b])


def _neighbours_53(d: torch.Tensor, n_even: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left and right odd-sample neighbours of each even sample, mirrored at the edges.

    Args:
        d: ``[..., m]`` odd samples (detail coefficients).
        n_even: number of even samples, ``m`` or ``m + 1``.

    Returns:
        ``(d[i-1], d[i])`` as ``[..., n_even]`` tensors with whole-sample symmetric extension.
    """
    left = torch.cat([d[..., :1], d[..., :-1]], dim=-1)
    right = d
    if n_even > d.shape[-1]:
        left = torch.cat([left, d[..., -1:]], dim=-1)
        right = torch.cat([d, d[..., -1:]], dim=-1)
    return left, right


def lift53_forward(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One level of the reversible CDF 5/3 wavelet along ``dim`` (JPEG 2000 lossless lifting).

    Args:
        x: int32 tensor with ``n >= 1`` samples along ``dim``.

    Returns:
        ``(low, high)``: int32, ``ceil(n/2)`` and ``floor(n/2)`` samples along ``dim``.
    """
    x = x.movedim(dim, -1)
    s, d = x[..., 0::2], x[..., 1::2]
    if d.shape[-1] > 0:
        s_next = s[..., 1:] if s.shape[-1] > d.shape[-1] else torch.cat([s[..., 1:], s[..., -1:]], dim=-1)
        d = d - ((s[..., : d.shape[-1]] + s_next) >> 1)
        d_prev, d_next = _neighbours_53(d, s.shape[-1])
        s = s + ((d_prev + d_next + 2) >> 2)
    return s.movedim(-1, dim).contiguous(), d.movedim(-1, dim).contiguous()


def lift53_inverse(low: torch.Tensor, high: torch.Tensor, dim: int) -> torch.Tensor:
    """Exact inverse of :func:`lift53_forward`: interleaves ``low`` and ``high`` along ``dim``."""
    s, d = low.movedim(dim, -1), high.movedim(dim, -1)
    if d.shape[-1] > 0:
        d_prev, d_next = _neighbours_53(d, s.shape[-1])
        s = s - ((d_prev + d_next + 2) >> 2)
        s_next = s[..., 1:] if s.shape[-1] > d.shape[-1] else torch.cat([s[..., 1:], s[..., -1:]], dim=-1)
        d = d + ((s[..., : d.shape[-1]] + s_next) >> 1)
    out = torch.empty(*s.shape[:-1], s.shape[-1] + d.shape[-1], dtype=s.dtype)
    out[..., 0::2] = s
    out[..., 1::2] = d
    return out.movedim(-1, dim).contiguous()


def wavelet_levels(height: int, width: int, max_levels: Optional[int] = None) -> int:
    """Decomposition levels used for an image: at most ``max_levels`` (default
    :data:`IMAGE_LEVELS`), fewer when the LL band would get smaller than 8 pixels."""
    max_levels = IMAGE_LEVELS if max_levels is None else max_levels
    levels = 0
    while levels < max_levels and min(height, width) >= 16 * 2**levels:
        levels += 1
    return levels


def dwt53_forward(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Multi-level 2-D CDF 5/3 transform.

    Args:
        x: int32 ``[C, H, W]``.
        levels: number of decompositions of the LL band.

    Returns:
        Subbands, coarsest first: ``[LL_L, (HL, LH, HH) of level L, ..., of level 1]``, each
        int32 ``[C, h, w]`` (``h, w`` as in :func:`subband_shapes`).
    """
    details: list[torch.Tensor] = []
    ll = x
    for _ in range(levels):
        lo, hi = lift53_forward(ll, -1)
        ll, lh = lift53_forward(lo, -2)
        hl, hh = lift53_forward(hi, -2)
        details = [hl, lh, hh] + details
    return [ll] + details


def dwt53_inverse(bands: Sequence[torch.Tensor], levels: int) -> torch.Tensor:
    """Exact inverse of :func:`dwt53_forward`: subbands (coarsest first) -> int32 ``[C, H, W]``."""
    ll = bands[0]
    for level in range(levels):
        hl, lh, hh = bands[1 + 3 * level : 4 + 3 * level]
        lo = lift53_inverse(ll, lh, -2)
        hi = lift53_inverse(hl, hh, -2)
        ll = lift53_inverse(lo, hi, -1)
    return ll


def subband_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """``(h, w)`` of each subband in :func:`dwt53_forward`'s order, from the image size alone."""
    sizes = [(height, width)]
    for _ in range(levels):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    shapes = [sizes[-1]]
    for level in range(levels, 0, -1):
        h, w = sizes[level - 1]
        lo_h, hi_h, lo_w, hi_w = (h + 1) // 2, h // 2, (w + 1) // 2, w // 2
        shapes += [(lo_h, hi_w), (hi_h, lo_w), (hi_h, hi_w)]  # HL, LH, HH
    return shapes


def dpcm2d_forward(x: torch.Tensor) -> torch.Tensor:
    """Residual of a left-neighbour predictor (top neighbour in column 0) for the LL band.

    Args:
        x: int32 ``[C, h, w]``.

    Returns:
        int32 ``[C, h, w]``; ``r[:, 0, 0] = x[:, 0, 0]``.
    """
    r = x.clone()
    r[..., :, 1:] = x[..., :, 1:] - x[..., :, :-1]
    r[..., 1:, 0] = x[..., 1:, 0] - x[..., :-1, 0]
    return r


def dpcm2d_inverse(r: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`dpcm2d_forward` (two cumulative sums)."""
    x = r.to(torch.int64).clone()
    x[..., :, 0] = torch.cumsum(x[..., :, 0], dim=-1)
    return torch.cumsum(x, dim=-1).to(torch.int32)


def fixed2_residual(x: torch.Tensor) -> torch.Tensor:
    """Residual of FLAC's fixed order-2 predictor ``2 x[n-1] - x[n-2]`` (zeros before the start).

    Args:
        x: int ``[C, N]`` PCM samples.

    Returns:
        int32 ``[C, N]``: ``e[n] = x[n] - 2 x[n-1] + x[n-2]``.
    """
    xp = torch.nn.functional.pad(x.to(torch.int64), (2, 0))
    return (xp[..., 2:] - 2 * xp[..., 1:-1] + xp[..., :-2]).to(torch.int32)


def fixed2_reconstruct(e: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`fixed2_residual` (two cumulative sums): int32 ``[C, N]``."""
    return torch.cumsum(torch.cumsum(e.to(torch.int64), dim=-1), dim=-1).to(torch.int32)


# --------------------------------------------------------------------------------------
# Forward-adaptive block scales
# --------------------------------------------------------------------------------------


def block_grid(shape: tuple[int, int], block: tuple[int, int]) -> tuple[int, int]:
    """Blocks per column and per row covering ``shape = (h, w)`` (edge blocks may be partial)."""
    return -(-shape[0] // block[0]), -(-shape[1] // block[1])


def block_map(x: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """Per-block sums of ``x`` ``[C, h, w]`` -> ``[C, nbh, nbw]`` (zero padding at the edges)."""
    c, h, w = x.shape
    nbh, nbw = block_grid((h, w), block)
    padded = torch.nn.functional.pad(x, (0, nbw * block[1] - w, 0, nbh * block[0] - h))
    return padded.reshape(c, nbh, block[0], nbw, block[1]).sum(dim=(2, 4))


def expand_blocks(idx: torch.Tensor, shape: tuple[int, int], block: tuple[int, int]) -> torch.Tensor:
    """Per-block values ``[C, nbh, nbw]`` -> per-coefficient values ``[C, h, w]``."""
    full = idx.repeat_interleave(block[0], dim=1).repeat_interleave(block[1], dim=2)
    return full[:, : shape[0], : shape[1]]


def choose_block_scales(x: torch.Tensor, block: tuple[int, int], table: CodingTable,
                        search: int = SCALE_SEARCH) -> torch.Tensor:
    """Pick, per block, the table row that codes the block's coefficients in the fewest bits.

    The starting guess is the Laplacian maximum-likelihood scale ``mean |x|``; the rows
    within ``search`` steps of it are then costed exactly with :func:`symbol_bits`.

    Args:
        x: int32 ``[C, h, w]`` coefficients or residuals.
        block: block size ``(bh, bw)``.

    Returns:
        int64 ``[C, nbh, nbw]`` row indexes into ``table``.
    """
    c, h, w = x.shape
    ones = torch.ones(1, h, w, dtype=torch.float64)
    counts = block_map(ones, block)
    mean_abs = block_map(x.abs().to(torch.float64), block) / counts
    log_scales = torch.log(table.scales)
    step = (log_scales[-1] - log_scales[0]) / max(table.rows - 1, 1)
    guess = torch.round((torch.log(mean_abs.clamp_min(1e-9)) - log_scales[0]) / step)
    guess = guess.clamp(0, table.rows - 1).to(torch.int64)
    best_bits = torch.full(guess.shape, torch.inf, dtype=torch.float64)
    best = guess.clone()
    for delta in range(-search, search + 1):
        cand = (guess + delta).clamp(0, table.rows - 1)
        bits = symbol_bits(x, expand_blocks(cand, (h, w), block), table)
        total = block_map(bits.to(torch.float64), block)
        better = total < best_bits
        best = torch.where(better, cand, best)
        best_bits = torch.where(better, total, best_bits)
    return best


# --------------------------------------------------------------------------------------
# Side information and header
# --------------------------------------------------------------------------------------


def encode_side(indexes: torch.Tensor, num_threads: Optional[int] = None) -> bytes:
    """Code block scale indexes (flat, in stream order) as differences with the fixed side table.

    Args:
        indexes: int ``[n]`` row indexes in ``0 .. NUM_SCALES-1``.
    """
    idx = indexes.to(torch.int64).reshape(-1)
    prev = torch.cat([torch.tensor([FIRST_INDEX_PREDICTION]), idx[:-1]])
    diff = (idx - prev).to(torch.int32)
    return E.encode(diff, torch.zeros_like(diff), *side_table().coder_args(), num_threads=num_threads)


def decode_side(data: bytes, count: int, num_threads: Optional[int] = None) -> torch.Tensor:
    """Inverse of :func:`encode_side`: int64 ``[count]`` indexes, checked against the table size."""
    diff = E.decode(data, torch.zeros(count, dtype=torch.int32), *side_table().coder_args(),
                    num_threads=num_threads)
    idx = torch.cumsum(diff.to(torch.int64), dim=0) + FIRST_INDEX_PREDICTION
    if count and (idx.min() < 0 or idx.max() >= scale_table().rows):
        raise BitstreamError("scale index out of range: corrupted side information")
    return idx


def put_varint(value: int) -> bytes:
    """LEB128 encoding of a non-negative integer."""
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def get_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a LEB128 integer at ``pos``; returns ``(value, next_pos)``."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise BitstreamError("truncated or malformed header")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def pack(kind: int, fields: Sequence[int], side: bytes, main: bytes) -> bytes:
    """``kind byte | varint fields | varint len(side) | side | main``."""
    return bytes([kind]) + b"".join(put_varint(f) for f in fields) + put_varint(len(side)) + side + main


def unpack(data: bytes, kind: int, num_fields: int) -> tuple[list[int], bytes, bytes]:
    """Inverse of :func:`pack`; returns ``(fields, side, main)``."""
    if not data or data[0] != kind:
        raise BitstreamError(f"not a demo {chr(kind)!r} stream")
    pos, fields = 1, []
    for _ in range(num_fields + 1):
        value, pos = get_varint(data, pos)
        fields.append(value)
    side_len = fields.pop()
    if pos + side_len > len(data):
        raise BitstreamError("truncated stream")
    return fields, data[pos : pos + side_len], data[pos + side_len :]


# --------------------------------------------------------------------------------------
# Band coding shared by images and audio
# --------------------------------------------------------------------------------------


@dataclass
class Encoded:
    """A coded file and what went into it.

    Attributes:
        data: the whole coded file (header, side stream, main stream).
        header_bytes, side_bytes, main_bytes: sizes of the three parts.
        symbols, indexes: int32 ``[n]`` the main stream's symbols and rows (for timing).
    """

    data: bytes
    header_bytes: int
    side_bytes: int
    main_bytes: int
    symbols: torch.Tensor = field(repr=False)
    indexes: torch.Tensor = field(repr=False)


def encode_bands(kind: int, fields: Sequence[int], bands: Sequence[torch.Tensor],
                 block: tuple[int, int], num_threads: Optional[int]) -> Encoded:
    """Code ``bands`` (each int32 ``[C, h, w]``) with per-block scales into one file.

    Side stream: every band's block indexes in band order, raster order inside a band.
    Main stream: every band's coefficients, same order, each with its block's row.
    """
    table = scale_table()
    block_idx, symbols, indexes = [], [], []
    for band in bands:
        idx = choose_block_scales(band, block, table)
        block_idx.append(idx.reshape(-1))
        symbols.append(band.reshape(-1))
        indexes.append(expand_blocks(idx, band.shape[1:], block).reshape(-1))
    sym = torch.cat(symbols).to(torch.int32)
    rows = torch.cat(indexes).to(torch.int32)
    side = encode_side(torch.cat(block_idx), num_threads)
    main = E.encode(sym, rows, *table.coder_args(), num_threads=num_threads)
    data = pack(kind, fields, side, main)
    return Encoded(data, len(data) - len(side) - len(main), len(side), len(main), sym, rows)


def decode_bands(side: bytes, main: bytes, shapes: Sequence[tuple[int, int, int]],
                 block: tuple[int, int], num_threads: Optional[int]) -> list[torch.Tensor]:
    """Inverse of :func:`encode_bands` given the bands' shapes ``(C, h, w)``."""
    grids = [(c, *block_grid((h, w), block)) for c, h, w in shapes]
    idx = decode_side(side, sum(math.prod(g) for g in grids), num_threads)
    rows, start = [], 0
    for (c, h, w), grid in zip(shapes, grids):
        n = math.prod(grid)
        rows.append(expand_blocks(idx[start : start + n].reshape(grid), (h, w), block).reshape(-1))
        start += n
    flat = E.decode(main, torch.cat(rows).to(torch.int32), *scale_table().coder_args(), num_threads=num_threads)
    bands, start = [], 0
    for c, h, w in shapes:
        bands.append(flat[start : start + c * h * w].reshape(c, h, w))
        start += c * h * w
    return bands


# --------------------------------------------------------------------------------------
# Image and audio codecs
# --------------------------------------------------------------------------------------


def encode_image(rgb: torch.Tensor, num_threads: Optional[int] = None) -> Encoded:
    """Lossless image coding.

    Args:
        rgb: uint8 or int ``[3, H, W]``, values 0..255.

    Returns:
        :class:`Encoded`; header fields are ``H, W, levels, block``.
    """
    _, height, width = rgb.shape
    levels = wavelet_levels(height, width)
    bands = dwt53_forward(rgb_to_ycocg_r(rgb.to(torch.int32)), levels)
    bands[0] = dpcm2d_forward(bands[0])
    fields = (height, width, levels, IMAGE_BLOCK)
    return encode_bands(KIND_IMAGE, fields, bands, (IMAGE_BLOCK, IMAGE_BLOCK), num_threads)


def decode_image(data: bytes, num_threads: Optional[int] = None) -> torch.Tensor:
    """Inverse of :func:`encode_image`: uint8 ``[3, H, W]`` from the bytes alone."""
    (height, width, levels, block), side, main = unpack(data, KIND_IMAGE, 4)
    if not (0 < height <= 2**15 and 0 < width <= 2**15 and levels <= 15 and 0 < block <= 2**12):
        raise BitstreamError("implausible image header")
    shapes = [(3, h, w) for h, w in subband_shapes(height, width, levels)]
    bands = decode_bands(side, main, shapes, (block, block), num_threads)
    bands[0] = dpcm2d_inverse(bands[0])
    rgb = ycocg_r_to_rgb(dwt53_inverse(bands, levels))
    if rgb.min() < 0 or rgb.max() > 255:
        raise BitstreamError("decoded pixels out of range: corrupted stream")
    return rgb.to(torch.uint8)


def encode_audio(pcm: torch.Tensor, sample_rate: int, num_threads: Optional[int] = None) -> Encoded:
    """Lossless audio coding.

    Args:
        pcm: int16 or int ``[C, N]`` samples.
        sample_rate: in Hz (stored in the header).

    Returns:
        :class:`Encoded`; header fields are ``C, N, sample_rate, block``.
    """
    channels, length = pcm.shape
    residual = fixed2_residual(pcm).unsqueeze(1)  # [C, 1, N]
    fields = (channels, length, sample_rate, AUDIO_BLOCK)
    return encode_bands(KIND_AUDIO, fields, [residual], (1, AUDIO_BLOCK), num_threads)


def decode_audio(data: bytes, num_threads: Optional[int] = None) -> tuple[torch.Tensor, int]:
    """Inverse of :func:`encode_audio`: ``(int16 [C, N], sample_rate)`` from the bytes alone."""
    (channels, length, sample_rate, block), side, main = unpack(data, KIND_AUDIO, 4)
    if not (0 < channels <= 256 and length <= 2**31 // channels and 0 < block <= 2**24):
        raise BitstreamError("implausible audio header")
    (residual,) = decode_bands(side, main, [(channels, 1, length)], (1, block), num_threads)
    pcm = fixed2_reconstruct(residual.squeeze(1))
    if pcm.numel() and (pcm.min() < -(2**15) or pcm.max() >= 2**15):
        raise BitstreamError("decoded samples out of range: corrupted stream")
    return pcm.to(torch.int16), sample_rate


# --------------------------------------------------------------------------------------
# Bundled data
# --------------------------------------------------------------------------------------


def data_files(suffix: str, folder: str) -> list[Traversable]:
    """Bundled files ``ncodec/data/<folder>/*<suffix>``, sorted by name (importlib resources)."""
    root = resources.files("ncodec").joinpath("data", folder)
    if not root.is_dir():
        raise OSError(f"bundled demo data missing: {root}")
    files = sorted((f for f in root.iterdir() if f.name.lower().endswith(suffix)), key=lambda f: f.name)
    if not files:
        raise OSError(f"no {suffix} files in bundled demo data {root}")
    return files


def read_png(raw: bytes) -> torch.Tensor:
    """PNG bytes -> uint8 ``[3, H, W]`` RGB (grey or palette images are converted)."""
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def read_flac(raw: bytes) -> tuple[torch.Tensor, int]:
    """FLAC bytes -> ``(int16 [C, N], sample_rate)``."""
    import soundfile

    pcm, rate = soundfile.read(io.BytesIO(raw), dtype="int16", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(pcm.T)), int(rate)


# --------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------


@dataclass
class ImageResult:
    """Figures for one image.

    Sizes are in bytes: ``raw_bytes = 3 * H * W``; ``ncodec_bytes`` is the whole coded file,
    ``header_bytes + side_bytes + main_bytes``. ``ratio_to_png`` is ncodec / PNG (below 1:
    smaller). ``seconds`` is the wall time to read, encode, decode and compare the file.
    """

    file: str
    width: int
    height: int
    levels: int
    raw_bytes: int
    png_bytes: int
    ncodec_bytes: int
    header_bytes: int
    side_bytes: int
    main_bytes: int
    bits_per_pixel: float
    ratio_to_png: float
    exact: bool
    seconds: float


@dataclass
class AudioResult:
    """Figures for one audio file.

    Sizes are in bytes: ``raw_bytes = 2 * channels * samples`` (16-bit PCM); ``ncodec_bytes``
    is the whole coded file. ``ratio_to_flac`` is ncodec / FLAC; ``bits_per_sample`` counts
    every coded bit per PCM sample; ``seconds`` as in :class:`ImageResult`.
    """

    file: str
    channels: int
    sample_rate: int
    samples: int
    seconds_of_audio: float
    raw_bytes: int
    flac_bytes: int
    ncodec_bytes: int
    header_bytes: int
    side_bytes: int
    main_bytes: int
    bits_per_sample: float
    ratio_to_flac: float
    exact: bool
    seconds: float


@dataclass
class SpeedResult:
    """Coder throughput on one stream: single process, wall clock, best of ``repeats``.

    ``encode_msym_s`` / ``decode_msym_s`` are millions of symbols per second of
    :func:`ncodec.entropy.encode` / ``decode`` with ``threads`` coder threads; ``bytes`` is the
    size of the coded stream.
    """

    stream: str
    symbols: int
    bytes: int
    threads: int
    repeats: int
    encode_msym_s: float
    decode_msym_s: float


@dataclass
class LearnedImageResult:
    """One bundled photo through the default learned image codec, and WebP at the same budget."""

    file: str
    codec: str
    quality: int
    ncodec_bytes: int
    bits_per_pixel: float
    psnr_db: float
    webp_quality: int  # the highest WebP quality whose file is no larger than ncodec's
    webp_bytes: int
    webp_psnr_db: float
    encode_seconds: float
    decode_seconds: float


@dataclass
class DemoReport:
    """Everything the demo measured (what ``--json`` writes)."""

    ncodec_version: str
    torch_version: str
    threads: int
    images: list[ImageResult]
    audio: list[AudioResult]
    speed: list[SpeedResult]
    total_seconds: float
    learned: list[LearnedImageResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every figure (JSON-serialisable)."""
        return asdict(self)


def run_image(file: Traversable, num_threads: int) -> tuple[ImageResult, Encoded]:
    """Code one bundled PNG, decode it back, check it bit for bit."""
    t0 = time.perf_counter()
    raw = file.read_bytes()
    rgb = read_png(raw)
    enc = encode_image(rgb, num_threads)
    exact = torch.equal(decode_image(enc.data, num_threads), rgb)
    if not exact:
        raise VerificationError(f"{file.name}: decoded image differs from the original")
    _, h, w = rgb.shape
    n = len(enc.data)
    result = ImageResult(file.name, w, h, wavelet_levels(h, w), 3 * h * w, len(raw), n, enc.header_bytes,
                         enc.side_bytes, enc.main_bytes, 8 * n / (h * w), n / len(raw), exact,
                         time.perf_counter() - t0)
    return result, enc


def run_learned_image(file: Traversable, quality: Optional[int] = None) -> LearnedImageResult:
    """Code one bundled PNG with the default image codec (lossy), and find WebP's quality
    at the same budget (largest file no larger than ncodec's) to compare PSNR."""
    from ncodec.eval.baselines import get_baseline
    from ncodec.eval.metrics import psnr_rgb

    rgb = read_png(file.read_bytes())
    codec = ncodec.load(quality=quality)
    t0 = time.perf_counter()
    data = codec.compress(rgb)
    t1 = time.perf_counter()
    decoded = ncodec.decompress(data)
    t2 = time.perf_counter()
    psnr = psnr_rgb(rgb, decoded)
    webp = get_baseline("webp")
    image = rgb.permute(1, 2, 0).numpy()
    low, high, best = 0, 100, None
    while low <= high:  # WebP's size grows with its quality: bisect for the budget
        q = (low + high) // 2
        coded = webp.run(image, q)
        if len(coded.data) <= len(data):
            best, low = (q, coded), q + 1
        else:
            high = q - 1
    if best is None:
        best = (0, webp.run(image, 0))
    _, h, w = rgb.shape
    return LearnedImageResult(file.name, codec.name, codec.quality, len(data), 8 * len(data) / (h * w), psnr,
                              best[0], len(best[1].data), psnr_rgb(rgb, torch.from_numpy(best[1].decoded).permute(2, 0, 1)),
                              t1 - t0, t2 - t1)


def run_audio(file: Traversable, num_threads: int) -> tuple[AudioResult, Encoded]:
    """Code one bundled FLAC, decode it back, check it bit for bit."""
    t0 = time.perf_counter()
    raw = file.read_bytes()
    pcm, rate = read_flac(raw)
    enc = encode_audio(pcm, rate, num_threads)
    out, out_rate = decode_audio(enc.data, num_threads)
    exact = torch.equal(out, pcm) and out_rate == rate
    if not exact:
        raise VerificationError(f"{file.name}: decoded audio differs from the original")
    c, n_samples = pcm.shape
    n = len(enc.data)
    result = AudioResult(file.name, c, rate, n_samples, n_samples / rate, 2 * c * n_samples, len(raw), n,
                         enc.header_bytes, enc.side_bytes, enc.main_bytes, 8 * n / (c * n_samples),
                         n / len(raw), exact, time.perf_counter() - t0)
    return result, enc


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Smallest wall-clock time of ``repeats`` calls of ``fn`` (after one warm-up call), seconds."""
    fn()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_speed(name: str, enc: Encoded, threads: int, repeats: int = BENCH_REPEATS) -> SpeedResult:
    """Time :func:`ncodec.entropy.encode` and ``decode`` of ``enc``'s main stream.

    Returns:
        :class:`SpeedResult` with throughputs in millions of symbols per second.
    """
    args = scale_table().coder_args()
    data = E.encode(enc.symbols, enc.indexes, *args, num_threads=threads)
    if not torch.equal(E.decode(data, enc.indexes, *args, num_threads=threads), enc.symbols):
        raise VerificationError(f"{name}: coder round trip failed during the speed test")
    t_enc = best_time(lambda: E.encode(enc.symbols, enc.indexes, *args, num_threads=threads), repeats)
    t_dec = best_time(lambda: E.decode(data, enc.indexes, *args, num_threads=threads), repeats)
    n = enc.symbols.numel()
    return SpeedResult(name, n, len(data), threads, repeats, n / t_enc / 1e6, n / t_dec / 1e6)


def available_threads() -> int:
    """CPU threads this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def torch_intraop_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous setting after.

    The demo's tensors are small (<= 1 M elements); torch's intra-op thread pool buys nothing
    there and, on a busy machine, its spinning threads made the transforms 10-100x slower.
    The range coder's threads are separate and set by ``num_threads``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_demo(threads: Optional[int] = None, progress: Optional[bool] = None) -> DemoReport:
    """Code every bundled file, verify the round trips, and time the coder.

    Args:
        threads: coder threads for the coding and the multi-thread speed row (default: all
            available).
        progress: show a tqdm bar over files (default: only when stderr is a terminal).
    """
    with torch_intraop_threads(1):
        return _run_demo(threads or available_threads(), progress)


def _run_demo(threads: int, progress: Optional[bool]) -> DemoReport:
    """:func:`run_demo`'s body, with ``threads`` resolved."""
    t0 = time.perf_counter()
    images = data_files(".png", "images")
    sounds = data_files(".flac", "audio")
    scale_table(), side_table()  # build the fixed tables once, outside the per-file timings
    image_results, audio_results, streams = [], [], []
    jobs = [("image", f) for f in images] + [("audio", f) for f in sounds]
    bar = tqdm(jobs, desc="ncodec demo", unit="file", leave=False,
               disable=None if progress is None else not progress, file=sys.stderr)
    for kind, file in bar:
        bar.set_postfix_str(file.name)
        if kind == "image":
            img_result, enc = run_image(file, threads)
            image_results.append(img_result)
        else:
            aud_result, enc = run_audio(file, threads)
            audio_results.append(aud_result)
        streams.append((file.name, enc))
    bar.close()
    name, largest = max(streams, key=lambda s: s[1].symbols.numel())
    speed = [measure_speed(name, largest, n) for n in sorted({1, threads})]
    with torch_intraop_threads(threads):
        learned = [run_learned_image(f) for f in images]
    return DemoReport(ncodec.__version__, torch.__version__, threads, image_results, audio_results, speed,
                      time.perf_counter() - t0, learned)


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Aligned text table: the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return [line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def format_report(report: DemoReport) -> str:
    """The demo's printed output: three aligned tables and a one-line summary."""
    out = [f"ncodec {report.ncodec_version} demo: lossless coding of bundled real media with ncodec's range coder.",
           "ncodec B = header + side information (block scale indexes) + coefficients; "
           "a ratio below 1 means smaller than the reference file.", ""]
    levels = sorted({r.levels for r in report.images})
    out.append(f"Images: YCoCg-R, {'/'.join(map(str, levels))}-level CDF 5/3 integer wavelet, one Laplacian "
               f"scale (of {NUM_SCALES}) per {IMAGE_BLOCK}x{IMAGE_BLOCK} block")
    rows = [[r.file, f"{r.width}x{r.height}", f"{r.raw_bytes:,}", f"{r.png_bytes:,}", f"{r.ncodec_bytes:,}",
             f"{r.side_bytes:,}", f"{r.bits_per_pixel:.3f}", f"{r.ratio_to_png:.3f}", "yes" if r.exact else "NO"]
            for r in report.images]
    out += format_table(["file", "size", "raw B", "PNG B", "ncodec B", "side B", "bits/pixel", "ncodec/PNG",
                         "exact"], rows, left=2)
    out.append("")
    out.append(f"Speech: fixed order-2 predictor residual, one Laplacian scale (of {NUM_SCALES}) per "
               f"{AUDIO_BLOCK}-sample block")
    rows = [[r.file, f"{r.seconds_of_audio:.2f} s", f"{r.sample_rate / 1000:g} kHz", f"{r.raw_bytes:,}",
             f"{r.flac_bytes:,}", f"{r.ncodec_bytes:,}", f"{r.side_bytes:,}", f"{r.bits_per_sample:.3f}",
             f"{r.ratio_to_flac:.3f}", "yes" if r.exact else "NO"] for r in report.audio]
    out += format_table(["file", "length", "rate", "raw B", "FLAC B", "ncodec B", "side B", "bits/sample",
                         "ncodec/FLAC", "exact"], rows, left=1)
    out.append("")
    s0 = report.speed[0]
    out.append(f"Range coder speed on the largest stream ({s0.stream}: {s0.symbols:,} symbols, {s0.bytes:,} B), "
               f"single process, wall clock, best of {s0.repeats}:")
    rows = [[str(s.threads), f"{s.encode_msym_s:.1f}", f"{s.decode_msym_s:.1f}"] for s in report.speed]
    out += format_table(["threads", "encode Msym/s", "decode Msym/s"], rows, left=0)
    out.append("")
    if report.learned:
        first = report.learned[0]
        out.append(f"Learned image codec (lossy): {first.codec} quality {first.quality}, the default; "
                   "WebP at the same budget (its largest file no larger):")
        rows = [[r.file, f"{r.ncodec_bytes:,}", f"{r.bits_per_pixel:.3f}", f"{r.psnr_db:.2f}", str(r.webp_quality),
                 f"{r.webp_bytes:,}", f"{r.webp_psnr_db:.2f}", f"{r.encode_seconds:.2f}/{r.decode_seconds:.2f}"]
                for r in report.learned]
        out += format_table(["file", "ncodec B", "bits/pixel", "PSNR dB", "WebP q", "WebP B", "WebP PSNR dB",
                             "enc/dec s"], rows, left=1)
        out.append("")
    out.append(summary_line(report))
    return "\n".join(out)


def summary_line(report: DemoReport) -> str:
    """One line: total size ratios, round-trip status, best coder speed, wall time."""
    img = sum(r.ncodec_bytes for r in report.images) / sum(r.png_bytes for r in report.images)
    aud = sum(r.ncodec_bytes for r in report.audio) / sum(r.flac_bytes for r in report.audio)
    n_exact = sum(r.exact for r in report.images) + sum(r.exact for r in report.audio)
    n_files = len(report.images) + len(report.audio)
    fast = report.speed[-1]
    return (f"Summary: images {img:.3f}x PNG, speech {aud:.3f}x FLAC, {n_exact}/{n_files} round trips bit-exact, "
            f"coder {fast.encode_msym_s:.0f}/{fast.decode_msym_s:.0f} Msym/s encode/decode at {fast.threads} "
            f"thread{'s' if fast.threads > 1 else ''}, {report.total_seconds:.1f} s in all.")
