"""Entropy stages: integer symbols plus their distribution parameters <-> one substream.

Every ncodec model turns symbols into bytes through one interface, :class:`EntropyStage`:

* ``stage.encode(symbols, params) -> bytes`` and ``stage.decode(data, params) -> symbols``
  for a whole substream at once;
* ``stage.writer()`` / ``stage.reader(data)`` for substreams built a batch at a time, when the
  parameters of a batch depend on the decoded symbols of the batches before it (e.g. the
  checkerboard's anchors, then the rest): ``add(symbols, params)`` ... ``finish() -> bytes``,
  and ``read(params)`` ... ``finish()`` in the same order.

A family decides how ``params`` choose a row of its :class:`CdfTable`:

* :class:`GaussianStage` (params: int32 row indexes, or float scales),
* :class:`FactorizedStage` (params: int32 channel = row index),
* :class:`CategoricalStage` (params: int32 codebook = row index, symbols ``0 .. K-1``),
* :class:`ncodec.entropy.laplace.LaplaceStage` (params: int32 row indexes, or float scales).

Guarantees:

* **No format of its own.** A substream is exactly :func:`ncodec.entropy.coder.encode`'s
  stream for the same symbols, rows and ``lane_size``, however it was split into batches.
* **Exact.** Given integer row indexes, the bytes depend only on symbols, rows, table and
  ``lane_size`` (never on threads or machine). Float params map to rows by comparisons with
  fixed float64 thresholds: exact for equal floats, but floats from a float network can differ
  between machines, so decoders that must agree bit for bit pass integer indexes computed
  exactly (e.g. :meth:`ncodec.models.hyperprior.ExactGaussianCoding.scale_indexes`).
* **Raises.** Decoding a malformed, truncated, padded or foreign substream, or one holding
  fewer or more symbols than the params ask for, raises :class:`ncodec.BitstreamError`; so
  does a :class:`CategoricalStage` symbol outside its alphabet. Invalid tables, params or
  symbols on the encoder side raise ``ValueError``.

Decoded symbols are int32, shaped like ``params`` and on their device.
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from torch import Tensor

from ncodec.entropy import coder as _coder
from ncodec.entropy.coder import BytesLike, TensorLike
from ncodec.errors import BitstreamError

__all__ = [
    "CategoricalStage",
    "CdfTable",
    "EntropyStage",
    "FactorizedStage",
    "GaussianStage",
    "StageReader",
    "StageWriter",
    "gaussian_table",
]


@dataclass(frozen=True, eq=False)
class CdfTable:
    """The coder's table triple (CompressAI's layout, see :mod:`ncodec.entropy.coder`).

    Attributes:
        cdfs: int32 ``[rows, width]``; row ``r`` holds ``lengths[r]`` entries rising from 0 to
            ``2**16``, then padding.
        lengths: int32 ``[rows]`` valid entries per row; a row codes ``lengths[r] - 2``
            regular values and the escape.
        offsets: int32 ``[rows]``; symbol ``s`` is coded as value ``s - offsets[r]``.

    Stored as contiguous CPU int32 (converted once here, not at every coder call). Unpacks
    as ``cdfs, lengths, offsets = table``, the order :func:`ncodec.entropy.encode` takes.
    """

    cdfs: Tensor
    lengths: Tensor
    offsets: Tensor

    def __post_init__(self) -> None:
        cdfs = _coder._int32(self.cdfs, "cdfs")
        if cdfs.dim() != 2:
            raise ValueError(f"cdfs must be 2-D [rows, width], got shape {tuple(cdfs.shape)}")
        object.__setattr__(self, "cdfs", cdfs)
        object.__setattr__(self, "lengths", _coder._int32(self.lengths, "lengths").reshape(-1))
        object.__setattr__(self, "offsets", _coder._int32(self.offsets, "offsets").reshape(-1))
        if not self.lengths.numel() == self.offsets.numel() == cdfs.shape[0]:
            raise ValueError("lengths and offsets need one entry per CDF row")

    def __iter__(self) -> Iterator[Tensor]:
        return iter((self.cdfs, self.lengths, self.offsets))

    @property
    def rows(self) -> int:
        return int(self.cdfs.shape[0])

    @classmethod
    def from_pmf(cls, pmf: TensorLike, offsets: TensorLike, *, pmf_lengths: Optional[TensorLike] = None,
                 tail_mass: Optional[TensorLike] = None) -> "CdfTable":
        """Quantise ``pmf`` ``[rows, K]`` (masses of the regular values ``0 .. K-1``, float64
        for reproducible tables) with :func:`ncodec.entropy.pmf_to_quantized_cdf`; row ``r``
        gets ``pmf_lengths[r]`` (default ``K``) regular values, offset ``offsets[r]`` and the
        escape's ``tail_mass[r]`` (default ``max(0, 1 - sum)``)."""
        pmf = torch.as_tensor(pmf)
        if pmf.dim() != 2:
            raise ValueError(f"pmf must be 2-D [rows, K], got shape {tuple(pmf.shape)}")
        lengths = (torch.full((pmf.shape[0],), pmf.shape[1], dtype=torch.int64) if pmf_lengths is None
                   else torch.as_tensor(pmf_lengths, dtype=torch.int64).reshape(-1))
        cdfs = _coder.pmf_to_quantized_cdf(pmf, pmf_lengths=lengths, tail_mass=tail_mass)
        return cls(cdfs, lengths + 2, offsets)

    @functools.cached_property
    def slot_bits(self) -> Tensor:
        """float32 ``[rows, width - 1]``: code length in bits of value ``v`` (regular values
        ``0 .. len-3``, the escape at ``len-2``, ``inf`` past the row). Built on first use."""
        freq = (self.cdfs[:, 1:] - self.cdfs[:, :-1]).to(torch.float64)
        valid = torch.arange(freq.shape[1]) < (self.lengths - 1).unsqueeze(1)
        return torch.where(valid, _coder.PRECISION - torch.log2(freq.clamp_min(1)), torch.inf).to(torch.float32)

    def symbol_bits(self, symbols: Tensor, rows: Tensor) -> Tensor:
        """Code length in bits of each symbol if coded with ``rows`` (same shape, CPU).

        float32 shaped like ``symbols``: the table's cost for regular values; for escapes the
        escape slot plus the coder's raw bits (a 4-bit length and 4 bits per payload nibble).
        Excludes the stream's header and lane table (a few bytes per substream).
        """
        rows = rows.to(torch.int64)
        v = symbols.to(torch.int64) - self.offsets.to(torch.int64)[rows]
        max_value = self.lengths.to(torch.int64)[rows] - 2
        inside = (v >= 0) & (v < max_value)
        bits = self.slot_bits.reshape(-1)[rows * self.slot_bits.shape[1] + torch.where(inside, v, max_value)]
        escaped = (~inside).nonzero(as_tuple=True)
        if escaped[0].numel():
            v_esc, max_esc = v[escaped], max_value[escaped]
            payload = torch.where(v_esc < 0, -2 * v_esc - 1, 2 * (v_esc - max_esc))
            chunks = sum((payload >> (4 * i) != 0).to(torch.float32) for i in range(16))
            bits[escaped] += 4.0 + 4.0 * chunks
        return bits


class EntropyStage:
    """Symbols plus parameters <-> one substream (see the module docstring).

    Subclasses define :meth:`indexes` (params -> table rows) and may check symbols
    (:meth:`_check_symbols`). ``lane_size`` is part of the format (the coder's default unless
    told); ``num_threads`` (None: all CPUs) never changes the bytes.
    """

    def __init__(self, table: CdfTable, *, lane_size: int = _coder.DEFAULT_LANE_SIZE,
                 num_threads: Optional[int] = None) -> None:
        self.table = table
        self.lane_size = _coder._check_lane_size(lane_size)
        self.num_threads = num_threads

    def indexes(self, params: TensorLike) -> Tensor:
        """int32 table row of each symbol, shaped like ``params``. Default: ``params`` are the
        rows themselves (integers in ``0 .. rows-1``; the coder rejects others)."""
        return _coder._int32(params, "params")

    def _check_symbols(self, symbols: Tensor, decoded: bool) -> None:
        """Hook for families with a finite alphabet: raise on symbols outside it."""

    def encode(self, symbols: TensorLike, params: TensorLike) -> bytes:
        """One substream of ``symbols`` (integers, any shape) coded with ``params`` (as many
        elements, C order)."""
        symbols = _coder._int32(symbols, "symbols")
        self._check_symbols(symbols, decoded=False)
        return _coder.encode(symbols, self.indexes(params), *self.table, lane_size=self.lane_size,
                             num_threads=self.num_threads)

    def decode(self, data: BytesLike, params: TensorLike) -> Tensor:
        """The symbols of :meth:`encode`'s substream: int32 shaped like ``params``, on its device.

        Raises:
            ncodec.BitstreamError: ``data`` is not a substream of exactly ``params.numel()``
                symbols coded with these rows.
        """
        out = _coder.decode(data, self.indexes(params), *self.table, num_threads=self.num_threads)
        self._check_symbols(out, decoded=True)
        return self._like(out, params)

    def writer(self) -> "StageWriter":
        """An incremental encoder of one substream."""
        return StageWriter(self)

    def reader(self, data: BytesLike) -> "StageReader":
        """An incremental decoder of ``data`` (raises BitstreamError on a malformed header)."""
        return StageReader(self, data)

    def symbol_bits(self, symbols: TensorLike, params: TensorLike) -> Tensor:
        """Estimated code length of each symbol in bits (see :meth:`CdfTable.symbol_bits`)."""
        rows = self.indexes(params).cpu()
        return self.table.symbol_bits(torch.as_tensor(symbols).cpu().reshape(rows.shape), rows)

    # How a batch meets the incremental coder; a family whose params are not table rows
    # (e.g. per-symbol distributions) overrides these three.
    def _write(self, encoder: _coder.RangeEncoder, symbols: Tensor, params: TensorLike) -> None:
        encoder.encode(symbols, self.indexes(params), *self.table)

    def _read(self, decoder: _coder.RangeDecoder, params: TensorLike) -> Tensor:
        return decoder.decode(self.indexes(params), *self.table)

    def _count(self, params: TensorLike) -> int:
        """Symbols that ``params`` describe."""
        return torch.as_tensor(params).numel()

    @staticmethod
    def _like(out: Tensor, params: TensorLike) -> Tensor:
        # Rows are computed and coded on the CPU; symbols go back to the params' device.
        if isinstance(params, Tensor) and params.device != out.device:
            return out.to(params.device)
        return out


class StageWriter:
    """Builds one substream from batches: ``add(symbols, params)`` ... ``finish()``.

    The bytes equal ``stage.encode`` of the concatenated batches (with the same lane size).
    """

    def __init__(self, stage: EntropyStage) -> None:
        self.stage = stage
        self._encoder = _coder.RangeEncoder(stage.lane_size)

    def add(self, symbols: TensorLike, params: TensorLike) -> None:
        """Append ``symbols`` coded with ``params`` (as many elements)."""
        symbols = _coder._int32(symbols, "symbols")
        self.stage._check_symbols(symbols, decoded=False)
        self.stage._write(self._encoder, symbols, params)

    @property
    def symbols_written(self) -> int:
        return self._encoder.symbols_written

    def finish(self) -> bytes:
        """The substream; the writer cannot be used afterwards."""
        return self._encoder.finish()


class StageReader:
    """Reads one substream back in the batches it was written in: ``read(params)`` ...
    ``finish()``. Raises :class:`ncodec.BitstreamError` on a malformed stream, when a batch
    asks for more symbols than are left, and (at :meth:`finish`) on symbols left over."""

    def __init__(self, stage: EntropyStage, data: BytesLike) -> None:
        self.stage = stage
        self._decoder = _coder.RangeDecoder(data)

    def read(self, params: TensorLike) -> Tensor:
        """The next ``params.numel()`` symbols: int32, shaped like ``params``, on its device."""
        wanted = self.stage._count(params)
        if self.symbols_left < wanted:
            raise BitstreamError(f"substream holds {self.symbols_left} more symbols, "
                                 f"the decoder asks for {wanted}")
        out = self.stage._read(self._decoder, params)
        self.stage._check_symbols(out, decoded=True)
        return self.stage._like(out, params)

    @property
    def symbols_left(self) -> int:
        """Symbols in the substream not read yet."""
        return self._decoder.symbols_left

    def finish(self) -> None:
        """Check that every symbol was read (a longer stream is not this one)."""
        if self.symbols_left:
            raise BitstreamError(f"substream holds {self.symbols_left} symbols more than the decoder reads")


class FactorizedStage(EntropyStage):
    """A fixed distribution per channel (CompressAI's ``EntropyBottleneck``): ``params`` are
    int32 channel indexes = table rows (:meth:`channel_params` builds them)."""

    @staticmethod
    def channel_params(shape: tuple[int, ...], dim: int = 1, device: Optional[torch.device] = None) -> Tensor:
        """int32 ``shape``-shaped channel index (position along ``dim``) of every element."""
        view = [1] * len(shape)
        view[dim] = shape[dim]
        return torch.arange(shape[dim], dtype=torch.int32, device=device).view(view).expand(shape)


class CategoricalStage(EntropyStage):
    """Frequency priors over a finite alphabet ``0 .. K-1``, one table row per codebook
    (``params``: int32 codebook indexes). The escape is never used: encoding a symbol outside
    the alphabet raises ``ValueError``, decoding one raises :class:`ncodec.BitstreamError`."""

    def __init__(self, table: CdfTable, alphabet_size: int, **kwargs) -> None:
        super().__init__(table, **kwargs)
        self.alphabet_size = int(alphabet_size)

    @classmethod
    def from_counts(cls, counts: TensorLike, tail_mass: float = 1e-9, **kwargs) -> "CategoricalStage":
        """Rows from ``counts`` ``[codebooks, K]`` (non-negative, e.g. code histograms): pmf
        ``counts / counts.sum(1)`` in float64; ``tail_mass`` is the escape's (kept tiny: it
        costs every symbol ``tail_mass / ln 2`` bits and is never coded)."""
        counts = torch.as_tensor(counts).detach().to("cpu", torch.float64)
        if counts.dim() != 2:
            raise ValueError(f"counts must be [codebooks, K], got shape {tuple(counts.shape)}")
        rows, k = counts.shape
        table = CdfTable.from_pmf(counts / counts.sum(1, keepdim=True), torch.zeros(rows, dtype=torch.int32),
                                  tail_mass=torch.full((rows,), float(tail_mass)))
        return cls(table, k, **kwargs)

    def _check_symbols(self, symbols: Tensor, decoded: bool) -> None:
        if symbols.numel() and (int(symbols.min()) < 0 or int(symbols.max()) >= self.alphabet_size):
            if decoded:
                raise BitstreamError(f"symbol outside the alphabet 0..{self.alphabet_size - 1} "
                                     "(an escape in the stream)")
            raise ValueError(f"symbols must lie in 0..{self.alphabet_size - 1}")


def gaussian_table(scale_table: TensorLike, tail_mass: float = 1e-9) -> CdfTable:
    """Discretised zero-mean Gaussians, one row per scale, exactly as
    :class:`ncodec.entropy.models.GaussianConditional`'s ``update()`` builds them (CompressAI's
    float32 arithmetic): support ``±ceil(scale · z)`` with ``z`` the ``1 - tail_mass/2``
    normal quantile, the two tails on the escape. ``scale_table``: increasing, > 0."""
    scales = torch.as_tensor(scale_table).detach().to("cpu", torch.float32).reshape(-1)
    # CompressAI takes the quantile from scipy; the standard library's agrees far below what
    # ceil() of a float32 product can see (tests compare the tables with update()'s).
    multiplier = -statistics.NormalDist().inv_cdf(tail_mass / 2)
    center = torch.ceil(scales * multiplier).int()
    samples = torch.abs(torch.arange(int(2 * center.max() + 1)).int() - center[:, None]).float()
    s = scales.unsqueeze(1)
    upper = 0.5 * torch.erfc(-(2**-0.5) * ((0.5 - samples) / s))
    lower = 0.5 * torch.erfc(-(2**-0.5) * ((-0.5 - samples) / s))
    # float64 and clamped at 0 as the entropy model's quantiser input (rounding noise only).
    pmf = (upper - lower).to(torch.float64).clamp(min=0)
    tails = (2 * lower[:, 0]).to(torch.float64).clamp(min=0)
    return CdfTable.from_pmf(pmf, -center, pmf_lengths=2 * center + 1, tail_mass=tails)


class GaussianStage(EntropyStage):
    """Zero-mean Gaussians of the scales in ``scale_table`` (CompressAI's
    ``GaussianConditional``); symbols are ``round(y - mean)``, the mean is the caller's.

    ``params``: integer tensors are table rows, used as they are (the exact path: rows from
    integer comparisons); float tensors are scales, mapped to the first table scale
    ``>= max(scale, scale_bound)`` (CompressAI's ``build_indexes``, compared in the scales'
    dtype).
    """

    def __init__(self, table: CdfTable, scale_table: TensorLike, scale_bound: float = 0.11, **kwargs) -> None:
        super().__init__(table, **kwargs)
        self.scale_table = torch.as_tensor(scale_table).detach().reshape(-1)
        self.scale_bound = float(scale_bound)

    @classmethod
    def from_scales(cls, scale_table: TensorLike, tail_mass: float = 1e-9, scale_bound: float = 0.11,
                    **kwargs) -> "GaussianStage":
        """A stage with :func:`gaussian_table`'s rows for ``scale_table``."""
        return cls(gaussian_table(scale_table, tail_mass), scale_table, scale_bound, **kwargs)

    def indexes(self, params: TensorLike) -> Tensor:
        params = torch.as_tensor(params)
        if not params.is_floating_point():
            return _coder._int32(params, "params")
        # Checked here, not at construction: integer rows need no scales (tables loaded alone).
        if self.scale_table.numel() != self.table.rows:
            raise ValueError(f"{self.scale_table.numel()} scales for a table of {self.table.rows} rows")
        thresholds = self.scale_table[:-1].to(device=params.device, dtype=params.dtype)
        return torch.searchsorted(thresholds, params.clamp_min(self.scale_bound).contiguous(), side="left").int()
