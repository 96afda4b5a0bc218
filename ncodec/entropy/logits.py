"""Logit entropy stage: each symbol brings its own distribution, as fixed-point logits.

For autoregressive and context models (e.g. :mod:`ncodec.models.token_context` over an audio
codec's tokens), whose distribution over a ``K``-symbol alphabet changes from symbol to
symbol. ``params`` are logits ``[*S, K]`` in fixed point: integers (held in float64 or int64)
in units of ``2^-fraction_bits`` natural-log units, as an exact network
(:mod:`ncodec.models.exact`) computes them. The stage turns them into one 16-bit CDF row per
symbol with integer arithmetic only:

1. ``d = max(logits) - logits`` (exact), rounded to steps of ``1/STEPS_PER_NAT`` nat;
2. mass ``EXP_TABLE[d]``: ``exp(-step / STEPS_PER_NAT)`` in units of ``2^-EXP_BITS``, a table
   built by an integer recurrence from one integer constant (no ``exp`` of any libm);
3. frequencies ``1 + floor(mass * R / sum(mass))`` with ``R = 2^16 - 1 - K`` (every symbol
   codable), the remainder to the most probable symbol (first on ties), 1 for the escape.

Guarantees (beyond :mod:`ncodec.entropy.stage`'s):

* **Exact.** The CDF rows depend only on the integer logits: every machine, thread count and
  device derives the same rows, so a decoder that computes the same logits stays in step.
* **Cost.** The rounding to ``1/32`` nat and the floor of every symbol at frequency 1 cost
  about 0.02 bits per symbol against the logits' own cross-entropy (for ``K = 1024``).
* Symbols must lie in ``0 .. K-1`` (``ValueError`` when encoding); a stream whose symbols fall
  outside (a foreign or corrupt one decodes to the escape) raises :class:`ncodec.BitstreamError`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ncodec.entropy import coder as _coder
from ncodec.entropy.coder import BytesLike, TensorLike
from ncodec.entropy.stage import CdfTable, EntropyStage
from ncodec.errors import BitstreamError

__all__ = ["EXP_BITS", "EXP_TABLE", "INV_SCALE_TABLE", "LOG_SCALE_MAX", "LOG_SCALE_MIN", "LogitStage", "STEPS_PER_NAT",
           "laplace_logits", "laplace_row", "logits_to_cdfs"]

STEPS_PER_NAT = 32
"""Resolution of the logits that decide a frequency: 1/32 nat (a mass off by at most 1.6 %)."""
EXP_BITS = 24
"""``EXP_TABLE`` holds masses in units of ``2^-EXP_BITS``."""
_EXP_STEPS = STEPS_PER_NAT * 18  # e^-18 * 2^24 < 1: past this every mass is 0
# round(2^48 * exp(-1/32)), the only non-integer ingredient, written out once.
_DECAY = 272_814_902_101_423


def _exp_table() -> Tensor:
    """``EXP_TABLE[k] ~ 2^EXP_BITS * exp(-k / STEPS_PER_NAT)`` by an integer recurrence
    (Python integers: the same table on every machine)."""
    values, v = [], 1 << 48
    for _ in range(_EXP_STEPS):
        values.append(v >> (48 - EXP_BITS))
        v = (v * _DECAY + (1 << 47)) >> 48
    return torch.tensor(values, dtype=torch.int64)


EXP_TABLE: Tensor = _exp_table()
"""int64 ``[STEPS_PER_NAT * 18]``: the mass of a symbol ``k`` steps below the most probable."""
_EXP_NUMPY = EXP_TABLE.numpy()


def logits_to_cdfs(logits: TensorLike, fraction_bits: int = 16) -> Tensor:
    """CDF rows of fixed-point logits (see the module docstring).

    Args:
        logits: integers ``[*S, K]`` (float64 or int64, ``|x| < 2^52``), in units of
            ``2^-fraction_bits`` nats; ``2 <= K <= 2^16 - 2``.
        fraction_bits: fractional bits of ``logits`` (``>= 5``).

    Returns:
        int32 ``[*S, K + 2]`` on the CPU: ``0``, the cumulative frequencies of the ``K``
        symbols, ``2^16`` (the escape has frequency 1); the coder's cdf_length is ``K + 2``.
    """
    x = torch.as_tensor(logits).detach().cpu()
    k = x.shape[-1] if x.dim() else 0
    if x.dim() < 1 or not 2 <= k <= (1 << _coder.PRECISION) - 2:
        raise ValueError(f"logits must be [*S, K] with 2 <= K <= {(1 << _coder.PRECISION) - 2}, got {tuple(x.shape)}")
    if fraction_bits < 5:
        raise ValueError("fraction_bits must be >= 5")
    if x.is_floating_point() and x.dtype != torch.float64:
        raise TypeError("fixed-point logits must be float64 (or int64) integers")
    # numpy: the same integer operations as torch's, at a fraction of the per-call cost (a
    # decoder computes one row per channel at a time). float64 -> int64 is exact below 2^53.
    x = x.numpy().astype(np.int64)
    below = x.max(-1, keepdims=True) - x
    shift = fraction_bits - 5  # 2^5 = STEPS_PER_NAT
    steps = np.minimum((below + ((1 << shift) >> 1)) >> shift, _EXP_STEPS - 1)
    mass = _EXP_NUMPY[steps]
    total = mass.sum(-1, keepdims=True)  # >= 2^24 (the top symbol) and <= K * 2^24: no overflow below
    regular = (1 << _coder.PRECISION) - 1
    freq = 1 + mass * (regular - k) // total
    top = mass.argmax(-1).reshape(-1)  # first maximum: the same on every machine
    flat = freq.reshape(-1, k)  # a view: one row per symbol
    flat[np.arange(flat.shape[0]), top] += regular - flat.sum(-1)
    cdf = np.zeros(x.shape[:-1] + (k + 2,), dtype=np.int64)
    np.cumsum(freq, -1, out=cdf[..., 1:k + 1])
    cdf[..., k + 1] = 1 << _coder.PRECISION
    return torch.from_numpy(cdf.astype(np.int32))


# ---------------------------------------------------------------------- Laplace shapes

LOG_SCALE_MIN = -3 * STEPS_PER_NAT
"""Smallest log-scale index: a Laplace of scale ``b = exp(index / STEPS_PER_NAT)``, here e^-3."""
LOG_SCALE_MAX = 10 * STEPS_PER_NAT
"""Largest log-scale index (scale e^10, about 22,000)."""
# round(2^48 * e^3): the table below starts there and steps down by _DECAY (exp(-1/32)).
_E3 = 5_653_576_037_675_270


def _inv_scale_table() -> Tensor:
    """``INV_SCALE_TABLE[i] ~ 2^16 * exp(-(i + LOG_SCALE_MIN) / STEPS_PER_NAT)``: the inverse
    scale ``1/b`` in 16-bit fixed point, by an integer recurrence (the same on every machine)."""
    values, v = [], _E3
    for _ in range(LOG_SCALE_MAX - LOG_SCALE_MIN + 1):
        values.append(max(1, (v + (1 << 31)) >> 32))
        v = (v * _DECAY + (1 << 47)) >> 48
    return torch.tensor(values, dtype=torch.int64)


INV_SCALE_TABLE: Tensor = _inv_scale_table()
"""int64 ``[LOG_SCALE_MAX - LOG_SCALE_MIN + 1]``: ``1/b`` in units of ``2^-16`` per log-scale index."""
_INV_NUMPY = INV_SCALE_TABLE.numpy()


_CENTRE_STEPS = 64  # the offset of mu from its nearest integer, in steps of 1/64


_CENTRE_ROWS: dict[int, np.ndarray] = {}


def _centre_row(i: int) -> np.ndarray:
    """int64 ``[33]``: the logit (units ``2^-16`` nat) of the integer nearest ``mu`` at
    ``|k - mu| = j / 64`` (``j = 0 .. 32``) for inverse scale ``u = INV_SCALE_TABLE[i] / 2^16``,
    making the sampled shape the mass of ``[k - 1/2, k + 1/2]``:
    ``ln((2 - e^-(1/2 - d)u - e^-(1/2 + d)u) / (e^(u/2) - e^-(u/2)))``. Python's ``decimal``
    specifies every operation's result exactly (``exp`` and ``ln`` correctly rounded), so every
    machine builds the same rows; each is built on first use."""
    row = _CENTRE_ROWS.get(i)
    if row is None:
        from decimal import Decimal, localcontext

        with localcontext() as ctx:
            ctx.prec = 24
            u = Decimal(int(_INV_NUMPY[i])) / Decimal(1 << 16)
            down, step = (-u / 2).exp(), (u / _CENTRE_STEPS).exp()
            denominator = 1 / down - down
            grow, values = Decimal(1), []
            for _ in range(_CENTRE_STEPS // 2 + 1):  # e^(d u) for d = j / 64
                ratio = (2 - down * grow - down / grow) / denominator
                values.append(int((ratio.ln() * (1 << 16)).to_integral_value()))
                grow *= step
        row = _CENTRE_ROWS[i] = np.array(values, dtype=np.int64)
    return row


def _centre_logits(idx: np.ndarray, offset: np.ndarray) -> np.ndarray:
    rows = np.unique(idx)
    table = np.stack([_centre_row(int(i)) for i in rows]) if rows.size else np.zeros((0, 33), np.int64)
    return table[np.searchsorted(rows, idx), offset]


def laplace_logits(mu: TensorLike, log_scale: TensorLike, low: int, high: int, fraction_bits: int = 16) -> Tensor:
    """Fixed-point logits of a Laplace distribution discretised on the integers ``low .. high``:
    integer ``k`` gets the Laplace mass of ``[k - 1/2, k + 1/2]`` (up to one normalising factor).

    With ``b = exp(log_scale / STEPS_PER_NAT)`` and ``u = 1/b`` from :data:`INV_SCALE_TABLE`,
    every integer but the one nearest ``mu`` gets ``-|k - mu| * u`` (exact: the Laplace mass of
    a unit bin away from ``mu`` is that, times a constant); the nearest gets the logit of its
    larger mass from a table built once with correctly rounded decimal arithmetic
    (``|k - mu|`` rounded to 1/64). Integers only from there on: the same logits everywhere.

    Args:
        mu: integers ``[*S]`` (float64 or int64), the location in units of ``2^-16``;
            clamped to ``low - 1 .. high + 1``.
        log_scale: integers ``[*S]``, clamped to ``LOG_SCALE_MIN .. LOG_SCALE_MAX``.
        low, high: the alphabet's integers (``high - low + 1`` symbols; symbol ``j`` of the
            row is the integer ``low + j``), within ``+-2^15``.
        fraction_bits: the logits' fractional bits (``>= 5``); the computation uses 16.

    Returns:
        int64 ``[*S, high - low + 1]`` in units of ``2^-fraction_bits`` nats, for
        :class:`LogitStage` (with ``fraction_bits`` alike).
    """
    f = 16
    m = np.asarray(torch.as_tensor(mu).detach().cpu().numpy()).astype(np.int64)
    m = np.clip(m, (low - 1) << f, (high + 1) << f)
    idx = np.clip(np.asarray(torch.as_tensor(log_scale).detach().cpu().numpy()).astype(np.int64),
                  LOG_SCALE_MIN, LOG_SCALE_MAX) - LOG_SCALE_MIN
    k = np.arange(low, high + 1, dtype=np.int64) << f
    # |k - mu| < 2^(f + 17) for alphabets within +-2^16 and the inverse scale < 2^21: < 2^63.
    logits = -((np.abs(k - m[..., None]) * _INV_NUMPY[idx][..., None]) >> 16)
    nearest = (m + (1 << (f - 1))) >> f  # round half up: one rule everywhere
    inside = (nearest >= low) & (nearest <= high)
    offset = (np.abs((nearest << f) - m) * _CENTRE_STEPS + (1 << (f - 1))) >> f  # 0 .. 32
    centre = _centre_logits(idx, np.minimum(offset, _CENTRE_STEPS // 2))
    flat = logits.reshape(-1, logits.shape[-1])  # a view: rows of symbols
    rows = np.flatnonzero(inside)
    flat[rows, (nearest.reshape(-1) - low)[rows]] = centre.reshape(-1)[rows]
    if fraction_bits != f:
        shift = f - int(fraction_bits)
        logits = (logits >> shift) if shift > 0 else (logits << -shift)
    return torch.from_numpy(logits)


def laplace_row(log_scale: int, half: int) -> CdfTable:
    """A one-row table of the zero-mean Laplace of scale ``exp(log_scale / STEPS_PER_NAT)`` on
    ``-half .. half`` (offset ``-half``; larger values escape), derived exactly as
    :class:`LogitStage` derives its rows: for coding many values with one spread (e.g. an
    overfitted codec's quantised network parameters) with :class:`EntropyStage`."""
    if not 1 <= half <= ((1 << _coder.PRECISION) - 4) // 2:
        raise ValueError(f"half must be in 1..{((1 << _coder.PRECISION) - 4) // 2}")
    cdf = logits_to_cdfs(laplace_logits(torch.zeros(1, dtype=torch.int64), torch.tensor([int(log_scale)]),
                                        -half, half))
    return CdfTable(cdf, torch.tensor([2 * half + 3]), torch.tensor([-half]))


class LogitStage(EntropyStage):
    """Symbols ``0 .. K-1``, each coded with its own fixed-point logits ``[*S, K]`` (params).

    ``encode(symbols [*S], logits [*S, K])``, ``decode(data, logits) -> int32 [*S]``, and the
    incremental ``writer()`` / ``reader()`` for models that compute the logits of a batch from
    the symbols decoded before it. The bytes are :func:`ncodec.entropy.encode_with_cdfs`'s
    for the rows of :func:`logits_to_cdfs`.
    """

    def __init__(self, alphabet_size: int, *, fraction_bits: int = 16, lane_size: int = _coder.DEFAULT_LANE_SIZE,
                 num_threads: int | None = None) -> None:
        if not 2 <= alphabet_size <= (1 << _coder.PRECISION) - 2:
            raise ValueError(f"alphabet_size must be in 2..{(1 << _coder.PRECISION) - 2}")
        # No table: rows come from the params. An empty one keeps the base class's contract.
        super().__init__(CdfTable(*(torch.zeros(s, dtype=torch.int32) for s in ((0, 2), 0, 0))), lane_size=lane_size,
                         num_threads=num_threads)
        self.alphabet_size = int(alphabet_size)
        self.fraction_bits = int(fraction_bits)

    def rows(self, params: TensorLike) -> tuple[Tensor, Tensor, Tensor]:
        """(cdfs ``[*S, K + 2]``, lengths ``[*S]``, offsets ``[*S]``) of logits ``[*S, K]``."""
        params = torch.as_tensor(params)
        if params.dim() < 1 or params.shape[-1] != self.alphabet_size:
            raise ValueError(f"params must be logits [*S, {self.alphabet_size}], got {tuple(params.shape)}")
        cdfs = logits_to_cdfs(params, self.fraction_bits)
        lengths = torch.full(params.shape[:-1], self.alphabet_size + 2, dtype=torch.int32)
        return cdfs, lengths, torch.zeros_like(lengths)

    def indexes(self, params: TensorLike) -> Tensor:
        raise TypeError("a LogitStage has no table rows: its params are per-symbol logits")

    def _count(self, params: TensorLike) -> int:
        shape = torch.as_tensor(params).shape
        return int(torch.Size(shape[:-1]).numel())

    def _check_symbols(self, symbols: Tensor, decoded: bool) -> None:
        if symbols.numel() and (int(symbols.min()) < 0 or int(symbols.max()) >= self.alphabet_size):
            if decoded:
                raise BitstreamError("substream holds a symbol outside the alphabet (corrupt or foreign data)")
            raise ValueError(f"symbols must be in 0..{self.alphabet_size - 1}")

    def _check_shapes(self, symbols: Tensor, params: TensorLike) -> None:
        if tuple(symbols.shape) != tuple(torch.as_tensor(params).shape[:-1]):
            raise ValueError(f"symbols {tuple(symbols.shape)} and logits {tuple(torch.as_tensor(params).shape)} "
                             "must agree on every dimension but the last")

    def encode(self, symbols: TensorLike, params: TensorLike) -> bytes:
        symbols = _coder._int32(symbols, "symbols")
        self._check_shapes(symbols, params)
        self._check_symbols(symbols, decoded=False)
        return _coder.encode_with_cdfs(symbols, *self.rows(params), lane_size=self.lane_size,
                                       num_threads=self.num_threads)

    def decode(self, data: BytesLike, params: TensorLike) -> Tensor:
        out = _coder.decode_with_cdfs(data, *self.rows(params), num_threads=self.num_threads)
        self._check_symbols(out, decoded=True)
        return self._like(out, params)

    def _write(self, encoder: _coder.RangeEncoder, symbols: Tensor, params: TensorLike) -> None:
        self._check_shapes(symbols, params)
        encoder.encode_with_cdfs(symbols, *self.rows(params))

    def _read(self, decoder: _coder.RangeDecoder, params: TensorLike) -> Tensor:
        return decoder.decode_with_cdfs(*self.rows(params))

    def symbol_bits(self, symbols: TensorLike, params: TensorLike) -> Tensor:
        """Code length of each symbol in bits (float32 ``[*S]``, CPU), stream headers excluded."""
        cdfs = self.rows(params)[0].to(torch.int64)
        s = torch.as_tensor(symbols).cpu().to(torch.int64).unsqueeze(-1)
        freq = (cdfs.gather(-1, s + 1) - cdfs.gather(-1, s)).squeeze(-1)
        return (_coder.PRECISION - torch.log2(freq.to(torch.float64))).to(torch.float32)
