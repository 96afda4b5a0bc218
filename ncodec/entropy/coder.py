"""Python API of ncodec's range coder (the C++ extension ``ncodec._coder``).

Tables follow CompressAI's convention, so an entropy model's buffers ``_quantized_cdf``,
``_cdf_length`` and ``_offset`` can be passed as they are:

* ``cdfs``: int32 ``[rows, width]``; row ``r`` holds ``cdf_lengths[r]`` valid entries
  ``0 = c[0] < c[1] < ... < c[len-1] = 2**16`` (entries past the length are ignored).
* A row of length ``len`` codes ``len - 1`` symbols: values ``0 .. len-3`` are regular and
  value ``len-2`` is the *escape*. A symbol is coded as ``value = symbol - offsets[r]``;
  values outside ``0 .. len-3`` are coded as the escape followed by raw bits, so every int32
  symbol round-trips (at a cost of about 4 bits plus 4 bits per nibble of distance).

Streams are split into *lanes* of ``lane_size`` consecutive symbols, coded independently and
listed in a lane table at the head of the stream. Lanes are what the threads share out, so
the bytes depend only on the symbols, the tables and ``lane_size``, never on ``num_threads``.

Decoding is safe on hostile input: a malformed, truncated, padded or mismatched stream raises
:class:`ncodec.BitstreamError` (a ``ValueError``); it never crashes, reads out of bounds,
hangs, or allocates more than the output the caller asked for.
"""

from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np
import torch

from ncodec import _coder

__all__ = [
    "DEFAULT_LANE_SIZE",
    "PRECISION",
    "RangeDecoder",
    "RangeEncoder",
    "STREAM_VERSION",
    "decode",
    "decode_with_cdfs",
    "encode",
    "encode_with_cdfs",
    "pmf_to_quantized_cdf",
]

PRECISION: int = _coder.PRECISION
"""Probability precision in bits: every CDF row ends at ``2**PRECISION``."""
DEFAULT_LANE_SIZE: int = _coder.DEFAULT_LANE_SIZE
"""Symbols per lane unless told otherwise (65536: lane overhead stays near 0.01 %)."""
STREAM_VERSION: int = _coder.STREAM_VERSION
"""Version byte written at the head of every coder stream."""

TensorLike = Union[torch.Tensor, np.ndarray]
BytesLike = Union[bytes, bytearray, memoryview]


def _int32(x: TensorLike, name: str) -> torch.Tensor:
    """Contiguous CPU int32 view or copy of an integer tensor or array."""
    t = torch.as_tensor(x)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got {t.dtype}")
    if t.dtype in (torch.int64, torch.uint32, torch.uint64) and t.numel():
        if int(t.min()) < -(2**31) or int(t.max()) > 2**31 - 1:
            raise ValueError(f"{name} has values outside the int32 range")
    return t.to(device="cpu", dtype=torch.int32).contiguous()


def _table(cdfs: TensorLike, cdf_lengths: TensorLike, offsets: TensorLike):
    cdfs = _int32(cdfs, "cdfs")
    if cdfs.dim() != 2:
        raise ValueError(f"cdfs must be 2-D [rows, width], got shape {tuple(cdfs.shape)}")
    return cdfs, _int32(cdf_lengths, "cdf_lengths").reshape(-1), _int32(offsets, "offsets").reshape(-1)


def _per_symbol_table(cdfs: TensorLike, cdf_lengths: TensorLike, offsets: TensorLike):
    cdfs = _int32(cdfs, "cdfs")
    if cdfs.dim() < 1 or cdfs.shape[-1] < 2:
        raise ValueError(f"cdfs must have a last dimension of >= 2 CDF entries, got shape {tuple(cdfs.shape)}")
    return (
        cdfs.reshape(-1, cdfs.shape[-1]),
        _int32(cdf_lengths, "cdf_lengths").reshape(-1),
        _int32(offsets, "offsets").reshape(-1),
    )


def _like(out: torch.Tensor, reference: TensorLike, shape) -> torch.Tensor:
    """`out` reshaped, on the device of `reference` when that is a tensor (e.g. CUDA)."""
    out = out.reshape(shape)
    if isinstance(reference, torch.Tensor) and reference.device != out.device:
        out = out.to(reference.device)
    return out


def _threads(num_threads: Optional[int]) -> int:
    if num_threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    return int(num_threads)


def _check_lane_size(lane_size: int) -> int:
    if not 1 <= lane_size <= 2**30:
        raise ValueError(f"lane_size must be in 1 .. 2**30, got {lane_size}")
    return int(lane_size)


def encode(
    symbols: TensorLike,
    indexes: TensorLike,
    cdfs: TensorLike,
    cdf_lengths: TensorLike,
    offsets: TensorLike,
    *,
    lane_size: int = DEFAULT_LANE_SIZE,
    num_threads: Optional[int] = None,
) -> bytes:
    """Entropy-code ``symbols`` (any shape, int32 values) with CDF rows chosen by ``indexes``.

    Args:
        symbols: integer tensor; symbol ``i`` (in C order) is coded with row ``indexes[i]``.
        indexes: integer tensor with as many elements as ``symbols``, values in ``0 .. rows-1``.
        cdfs, cdf_lengths, offsets: the table, CompressAI layout (see module docstring).
        lane_size: symbols per independently coded lane (part of the format).
        num_threads: CPU threads (default: all available); never changes the bytes.

    Returns:
        The coder stream: a small header with the lane table, then the lanes.
    """
    symbols_t = _int32(symbols, "symbols")
    indexes_t = _int32(indexes, "indexes")
    return _coder.encode_indexed(
        symbols_t.reshape(-1), indexes_t.reshape(-1), *_table(cdfs, cdf_lengths, offsets),
        _check_lane_size(lane_size), _threads(num_threads),
    )


def decode(
    data: BytesLike,
    indexes: TensorLike,
    cdfs: TensorLike,
    cdf_lengths: TensorLike,
    offsets: TensorLike,
    *,
    num_threads: Optional[int] = None,
) -> torch.Tensor:
    """Decode a stream written by :func:`encode` (or :class:`RangeEncoder`).

    Returns:
        torch.int32 tensor shaped like ``indexes``, on its device.

    Raises:
        ncodec.BitstreamError: the stream is malformed, truncated, has trailing bytes, holds
            another number of symbols than ``indexes``, or does not match the tables.
        ValueError: the tables or indexes are invalid.
    """
    indexes_t = _int32(indexes, "indexes")
    out = _coder.decode_indexed(
        data, indexes_t.reshape(-1), *_table(cdfs, cdf_lengths, offsets), _threads(num_threads)
    )
    return _like(out, indexes, indexes_t.shape)


def encode_with_cdfs(
    symbols: TensorLike,
    cdfs: TensorLike,
    cdf_lengths: TensorLike,
    offsets: TensorLike,
    *,
    lane_size: int = DEFAULT_LANE_SIZE,
    num_threads: Optional[int] = None,
) -> bytes:
    """Entropy-code symbols that each bring their own CDF row.

    For models whose distributions are computed per symbol. Shapes: ``symbols`` ``[*S]``,
    ``cdfs`` ``[*S, width]``, ``cdf_lengths`` and ``offsets`` ``[*S]``. The stream format is
    the same as :func:`encode`'s.
    """
    symbols_t = _int32(symbols, "symbols")
    return _coder.encode_per_symbol(
        symbols_t.reshape(-1), *_per_symbol_table(cdfs, cdf_lengths, offsets),
        _check_lane_size(lane_size), _threads(num_threads),
    )


def decode_with_cdfs(
    data: BytesLike,
    cdfs: TensorLike,
    cdf_lengths: TensorLike,
    offsets: TensorLike,
    *,
    num_threads: Optional[int] = None,
) -> torch.Tensor:
    """Decode a stream of :func:`encode_with_cdfs`; int32 shaped like ``cdf_lengths``, on its device."""
    out = _coder.decode_per_symbol(data, *_per_symbol_table(cdfs, cdf_lengths, offsets), _threads(num_threads))
    return _like(out, cdf_lengths, torch.as_tensor(cdf_lengths).shape)


class RangeEncoder:
    """Incremental encoder: symbols arrive a run at a time, e.g. from an autoregressive model.

    The bytes from :meth:`finish` equal :func:`encode`'s on the concatenated runs with the
    same ``lane_size``, so either decoder reads them.

    Example::

        enc = RangeEncoder()
        for step in steps:
            enc.encode(sym[step], idx[step], cdfs, cdf_lengths, offsets)
        data = enc.finish()
    """

    def __init__(self, lane_size: int = DEFAULT_LANE_SIZE) -> None:
        self._impl = _coder.StreamEncoder(_check_lane_size(lane_size))

    def encode(self, symbols: TensorLike, indexes: TensorLike, cdfs: TensorLike,
               cdf_lengths: TensorLike, offsets: TensorLike) -> None:
        """Append ``symbols`` coded with rows ``indexes`` of the given table."""
        symbols_t, indexes_t = _int32(symbols, "symbols"), _int32(indexes, "indexes")
        self._impl.encode(symbols_t.reshape(-1), indexes_t.reshape(-1), *_table(cdfs, cdf_lengths, offsets))

    def encode_with_cdfs(self, symbols: TensorLike, cdfs: TensorLike, cdf_lengths: TensorLike,
                         offsets: TensorLike) -> None:
        """Append ``symbols`` ``[*S]``, each with its own row of ``cdfs`` ``[*S, width]``."""
        symbols_t = _int32(symbols, "symbols")
        self._impl.encode_with_cdfs(symbols_t.reshape(-1), *_per_symbol_table(cdfs, cdf_lengths, offsets))

    @property
    def symbols_written(self) -> int:
        return self._impl.symbols_written

    def finish(self) -> bytes:
        """Flush and return the stream; the encoder cannot be used afterwards."""
        return self._impl.finish()


class RangeDecoder:
    """Incremental decoder over a whole stream: ask for symbols a run at a time, in order.

    Raises :class:`ncodec.BitstreamError` on a malformed stream (at construction for header
    problems) and when asked for more symbols than the stream holds.
    """

    def __init__(self, data: BytesLike) -> None:
        self._impl = _coder.StreamDecoder(data)

    def decode(self, indexes: TensorLike, cdfs: TensorLike, cdf_lengths: TensorLike,
               offsets: TensorLike) -> torch.Tensor:
        """Next ``indexes.numel()`` symbols, coded with rows ``indexes``; int32, shaped like it."""
        indexes_t = _int32(indexes, "indexes")
        out = self._impl.decode(indexes_t.reshape(-1), *_table(cdfs, cdf_lengths, offsets))
        return _like(out, indexes, indexes_t.shape)

    def decode_with_cdfs(self, cdfs: TensorLike, cdf_lengths: TensorLike, offsets: TensorLike) -> torch.Tensor:
        """Next symbols, one per row of ``cdfs`` ``[*S, width]``; int32 shaped ``[*S]``."""
        out = self._impl.decode_with_cdfs(*_per_symbol_table(cdfs, cdf_lengths, offsets))
        return _like(out, cdf_lengths, torch.as_tensor(cdf_lengths).shape)

    @property
    def symbols_left(self) -> int:
        """Symbols in the stream not decoded yet (0 once everything was read)."""
        return self._impl.symbols_left


def pmf_to_quantized_cdf(
    pmf: TensorLike,
    precision: int = PRECISION,
    *,
    pmf_lengths: Optional[TensorLike] = None,
    tail_mass: Optional[TensorLike] = None,
) -> torch.Tensor:
    """Quantise probability mass functions into 16-bit CDF rows with room for the escape.

    Args:
        pmf: ``[K]`` or ``[rows, K]`` non-negative masses of the regular symbols (need not sum
            to 1: each row is normalised together with its tail mass).
        precision: must be 16 (the coder's precision); kept for CompressAI-style calls.
        pmf_lengths: ``[rows]`` number of valid entries per row (default ``K``).
        tail_mass: ``[rows]`` mass of the escape symbol (default ``max(0, 1 - sum(pmf))``).

    Returns:
        int32 ``[K + 2]`` or ``[rows, K + 2]``: row ``r`` has ``pmf_lengths[r] + 2`` valid
        entries (the cdf_length to pass to the coder), starting at 0 and ending at 2**16,
        padded with zeros. Every symbol and the escape get a frequency of at least 1, and
        the frequencies minimise the expected code length closely (greedy on the
        rate gain), in plain IEEE arithmetic so every machine builds identical tables.
    """
    p = torch.as_tensor(pmf, dtype=torch.float64)
    one_d = p.dim() == 1
    if one_d:
        p = p.unsqueeze(0)
    if p.dim() != 2:
        raise ValueError(f"pmf must be 1-D or 2-D, got shape {tuple(p.shape)}")
    rows = p.shape[0]
    lengths = (torch.full((rows,), p.shape[1], dtype=torch.int64) if pmf_lengths is None
               else torch.as_tensor(pmf_lengths, dtype=torch.int64).reshape(-1))
    tails = (torch.full((rows,), float("nan"), dtype=torch.float64) if tail_mass is None
             else torch.as_tensor(tail_mass, dtype=torch.float64).reshape(-1))
    if tail_mass is not None and torch.isnan(tails).any():
        raise ValueError("tail_mass must not be NaN")
    cdfs, _ = _coder.pmf_to_quantized_cdf(p.contiguous(), lengths, tails, int(precision))
    return cdfs[0] if one_d else cdfs
