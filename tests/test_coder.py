"""Round trips and API contract of the range coder (ncodec.entropy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ncodec
from ncodec import entropy as E
from tables import CdfTable, from_pmfs, gaussian_table, sample, scale_ladder

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ---------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------

@st.composite
def pmfs(draw) -> torch.Tensor:
    """A pmf over 0..40 symbols: flat, random, or extremely skewed (p ~ 1 next to p ~ 2^-16)."""
    n = draw(st.integers(0, 40))
    kind = draw(st.sampled_from(["random", "skewed", "flat"]))
    if kind == "flat" or n == 0:
        return torch.ones(n, dtype=torch.float64)
    if kind == "skewed":
        p = torch.full((n,), 1e-12, dtype=torch.float64)
        p[draw(st.integers(0, n - 1))] = 1.0
        return p
    weights = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
    return torch.tensor(weights, dtype=torch.float64) ** 4


@st.composite
def tables(draw) -> CdfTable:
    rows = draw(st.integers(1, 6))
    p = [draw(pmfs()) for _ in range(rows)]
    offsets = [draw(st.one_of(st.integers(-50, 50), st.sampled_from([INT32_MIN, INT32_MAX, 0])))
               for _ in range(rows)]
    tails = [draw(st.sampled_from([0.0, 1e-9, 0.01, 0.5])) for _ in range(rows)]
    return from_pmfs(p, offsets, tails)


@st.composite
def coding_problems(draw):
    """(table, symbols, indexes): mostly in-support symbols, some escapes, int32 extremes."""
    table = draw(tables())
    n = draw(st.integers(0, 300))
    indexes = torch.tensor(draw(st.lists(st.integers(0, table.rows - 1), min_size=n, max_size=n)),
                           dtype=torch.int32)
    symbols = []
    for r in indexes.tolist():
        support = int(table.cdf_lengths[r]) - 2
        base = int(table.offsets[r])
        symbols.append(draw(st.one_of(
            st.integers(0, max(support - 1, 0)).map(lambda v, b=base: max(INT32_MIN, min(INT32_MAX, b + v))),
            st.integers(INT32_MIN, INT32_MAX),
            st.sampled_from([INT32_MIN, INT32_MAX, 0, -1]),
        )))
    return table, torch.tensor(symbols, dtype=torch.int32).reshape(-1), indexes


# ---------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------

@given(coding_problems(), st.integers(1, 64), st.integers(1, 3))
def test_round_trip_indexed(problem, lane_size, threads):
    table, symbols, indexes = problem
    data = E.encode(symbols, indexes, *table.args(), lane_size=lane_size, num_threads=threads)
    out = E.decode(data, indexes, *table.args(), num_threads=threads)
    assert out.dtype == torch.int32
    assert torch.equal(out, symbols)


@given(coding_problems(), st.integers(1, 64))
def test_round_trip_per_symbol_cdfs(problem, lane_size):
    table, symbols, indexes = problem
    rows = indexes.long()
    cdfs, lengths, offsets = table.cdfs[rows], table.cdf_lengths[rows], table.offsets[rows]
    data = E.encode_with_cdfs(symbols, cdfs, lengths, offsets, lane_size=lane_size)
    # Same symbols and rows: identical bytes to the indexed call.
    assert data == E.encode(symbols, indexes, *table.args(), lane_size=lane_size)
    assert torch.equal(E.decode_with_cdfs(data, cdfs, lengths, offsets), symbols)


@given(coding_problems(), st.integers(1, 50), st.lists(st.integers(0, 40), max_size=8))
def test_incremental_matches_batch(problem, lane_size, cuts):
    """RangeEncoder fed in pieces writes the batch bytes; RangeDecoder reads them in pieces."""
    table, symbols, indexes = problem
    n = symbols.numel()
    bounds = sorted({0, n, *[min(c * 7, n) for c in cuts]})
    enc = E.RangeEncoder(lane_size=lane_size)
    for a, b in zip(bounds, bounds[1:]):
        if b - a and (b % 2):  # alternate between the two input styles
            rows = indexes[a:b].long()
            enc.encode_with_cdfs(symbols[a:b], table.cdfs[rows], table.cdf_lengths[rows], table.offsets[rows])
        else:
            enc.encode(symbols[a:b], indexes[a:b], *table.args())
    assert enc.symbols_written == n
    data = enc.finish()
    assert data == E.encode(symbols, indexes, *table.args(), lane_size=lane_size)

    dec = E.RangeDecoder(data)
    parts = [dec.decode(indexes[a:b], *table.args()) for a, b in zip(bounds, bounds[1:])]
    assert dec.symbols_left == 0
    assert torch.equal(torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int32), symbols)


def test_bytes_do_not_depend_on_threads():
    table = gaussian_table(scale_ladder())
    g = torch.Generator().manual_seed(1)
    indexes = torch.randint(0, 40, (300_000,), generator=g, dtype=torch.int32)
    symbols = sample(table, indexes, g)
    streams = {E.encode(symbols, indexes, *table.args(), lane_size=4096, num_threads=t) for t in (1, 2, 3, 8)}
    assert len(streams) == 1
    data = streams.pop()
    for t in (1, 2, 5):
        assert torch.equal(E.decode(data, indexes, *table.args(), num_threads=t), symbols)


def test_shapes_dtypes_and_numpy_inputs():
    table = gaussian_table([0.5, 2.0, 8.0])
    g = torch.Generator().manual_seed(2)
    indexes = torch.randint(0, 3, (4, 5, 6), generator=g, dtype=torch.int64)
    symbols = sample(table, indexes, g).to(torch.int16)
    data = E.encode(symbols.numpy(), indexes.numpy(), *[a.numpy() for a in table.args()])
    out = E.decode(bytearray(data), indexes, *table.args())
    assert out.shape == (4, 5, 6) and out.dtype == torch.int32
    assert torch.equal(out, symbols.int())
    assert torch.equal(E.decode(memoryview(data), indexes.numpy(), *table.args()), symbols.int())


def test_empty_input():
    table = gaussian_table([1.0])
    empty = torch.zeros(0, dtype=torch.int32)
    data = E.encode(empty, empty, *table.args())
    assert len(data) == 9  # version, symbol count 0, lane size 65536 (3-byte varint), check
    assert E.decode(data, empty, *table.args()).numel() == 0
    assert E.RangeEncoder().finish() == data
    with pytest.raises(ncodec.BitstreamError, match="holds 0 symbols but 1"):
        E.decode(data, torch.zeros(1, dtype=torch.int32), *table.args())


def test_every_int32_round_trips_through_escape():
    # A single-symbol table: everything but `offset` escapes, including both int32 ends.
    table = from_pmfs([torch.ones(1, dtype=torch.float64)], [INT32_MAX], [0.5])
    values = torch.tensor([INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX], dtype=torch.int32)
    idx = torch.zeros_like(values)
    assert torch.equal(E.decode(E.encode(values, idx, *table.args()), idx, *table.args()), values)
    table2 = from_pmfs([torch.ones(1, dtype=torch.float64)], [INT32_MIN], [0.5])
    assert torch.equal(E.decode(E.encode(values, idx, *table2.args()), idx, *table2.args()), values)


def test_extreme_skew_costs_what_it_should():
    # p(symbol 0) = 1 - 2/2^16: a million of them cost ~0 bits; the rare symbol (p = 2^-16)
    # costs 16 bits each.
    table = from_pmfs([torch.tensor([1.0, 1e-12], dtype=torch.float64)], [0], [1e-12])
    assert table.cdfs[0, :4].tolist() == [0, 65534, 65535, 65536]
    n = 1_000_000
    idx = torch.zeros(n, dtype=torch.int32)
    common = torch.zeros(n, dtype=torch.int32)
    data = E.encode(common, idx, *table.args())
    assert len(data) < 64 + 4  # + the 4-byte symbol check
    assert torch.equal(E.decode(data, idx, *table.args()), common)
    rare = torch.ones(10_000, dtype=torch.int32)
    data = E.encode(rare, idx[:10_000], *table.args())
    assert abs(len(data) - 10_000 * 2) < 16
    assert torch.equal(E.decode(data, idx[:10_000], *table.args()), rare)


def test_compressai_buffers_work_as_tables():
    compressai = pytest.importorskip("compressai")  # noqa: F841
    from compressai.entropy_models import GaussianConditional
    from compressai.models.google import get_scale_table

    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table())
    gc.update()
    g = torch.Generator().manual_seed(3)
    scales = torch.exp(torch.randn(1, 8, 16, 16, generator=g))
    indexes = gc.build_indexes(scales)
    symbols = torch.round(torch.randn(scales.shape, generator=g) * scales).int()
    args = (gc._quantized_cdf, gc._cdf_length, gc._offset)
    out = E.decode(E.encode(symbols, indexes, *args), indexes, *args)
    assert torch.equal(out, symbols)


# ---------------------------------------------------------------------------------------
# Bad input: clear errors, never garbage
# ---------------------------------------------------------------------------------------

def test_invalid_tables_are_rejected():
    table = gaussian_table([1.0])
    sym = idx = torch.zeros(3, dtype=torch.int32)
    bad = table.cdfs.clone()
    bad[0, 2] = bad[0, 1]  # zero-frequency symbol
    with pytest.raises(ValueError, match="strictly increasing"):
        E.encode(sym, idx, bad, table.cdf_lengths, table.offsets)
    bad = table.cdfs.clone()
    bad[0, int(table.cdf_lengths[0]) - 1] = 65535
    with pytest.raises(ValueError, match="end at 65536"):
        E.decode(b"\x01\x03", idx, bad, table.cdf_lengths, table.offsets)
    with pytest.raises(ValueError, match="cdf_length"):
        E.encode(sym, idx, table.cdfs, torch.tensor([1], dtype=torch.int32), table.offsets)
    with pytest.raises(ValueError, match="one entry per CDF row"):
        E.encode(sym, idx, table.cdfs, table.cdf_lengths, torch.zeros(2, dtype=torch.int32))


def test_invalid_arguments_are_rejected():
    table = gaussian_table([1.0, 2.0])
    sym = torch.zeros(4, dtype=torch.int32)
    with pytest.raises(ValueError, match=r"indexes\[2\] = 2 is outside"):
        E.encode(sym, torch.tensor([0, 1, 2, 0]), *table.args())
    with pytest.raises(ValueError, match="same number of elements"):
        E.encode(sym, torch.zeros(3, dtype=torch.int32), *table.args())
    with pytest.raises(ValueError, match="must hold integers"):
        E.encode(sym.float(), torch.zeros(4, dtype=torch.int32), *table.args())
    with pytest.raises(ValueError, match="int32 range"):
        E.encode(torch.tensor([2**40]), torch.zeros(1, dtype=torch.int32), *table.args())
    with pytest.raises(ValueError, match="lane_size"):
        E.encode(sym, torch.zeros(4, dtype=torch.int32), *table.args(), lane_size=0)
    with pytest.raises(ValueError, match="num_threads"):
        E.encode(sym, torch.zeros(4, dtype=torch.int32), *table.args(), num_threads=0)
    enc = E.RangeEncoder()
    enc.finish()
    with pytest.raises(RuntimeError, match="already called"):
        enc.finish()


def test_stream_errors_name_the_problem():
    table = gaussian_table([1.0, 3.0])
    g = torch.Generator().manual_seed(4)
    idx = torch.randint(0, 2, (5000,), generator=g, dtype=torch.int32)
    sym = sample(table, idx, g)
    data = E.encode(sym, idx, *table.args(), lane_size=1000)
    cases = {
        b"": "empty",
        b"\x03" + data[1:]: "version 3",
        data[:-1]: "truncated",
        data + b"\x00": "after its last lane",
        data[:2]: "truncated",
    }
    for stream, message in cases.items():
        with pytest.raises(ncodec.BitstreamError, match=message):
            E.decode(stream, idx, *table.args())
    with pytest.raises(ncodec.BitstreamError, match="holds 5000 symbols but 4999"):
        E.decode(data, idx[:4999], *table.args())
    dec = E.RangeDecoder(data)
    dec.decode(idx[:4000], *table.args())
    with pytest.raises(ncodec.BitstreamError, match="asked for 1001 symbols"):
        dec.decode(torch.zeros(1001, dtype=torch.int32), *table.args())


def test_bitstream_error_is_a_value_error():
    assert issubclass(ncodec.BitstreamError, ValueError)


# ---------------------------------------------------------------------------------------
# pmf_to_quantized_cdf
# ---------------------------------------------------------------------------------------

@given(st.lists(st.floats(0.0, 1.0), min_size=0, max_size=300), st.one_of(st.none(), st.floats(0.0, 1.0)))
def test_quantized_cdf_is_valid(pmf, tail):
    cdf = E.pmf_to_quantized_cdf(torch.tensor(pmf, dtype=torch.float64),
                                 tail_mass=None if tail is None else torch.tensor([tail]))
    assert cdf.dtype == torch.int32 and cdf.shape == (len(pmf) + 2,)
    freq = cdf[1:] - cdf[:-1]
    assert cdf[0] == 0 and cdf[-1] == 2**16
    assert bool((freq >= 1).all())


def test_quantized_cdf_is_close_to_optimal():
    # Kullback-Leibler cost of quantisation, bits/symbol, against CompressAI's quantiser.
    compressai = pytest.importorskip("compressai")  # noqa: F841
    from compressai._CXX import pmf_to_quantized_cdf as compressai_quantize

    g = torch.Generator().manual_seed(5)
    worse = 0
    for trial in range(200):
        n = int(torch.randint(2, 300, (1,), generator=g))
        p = torch.rand(n, generator=g, dtype=torch.float64) ** 6
        p /= p.sum()
        p = torch.cat([p * (1 - 1e-6), torch.tensor([1e-6], dtype=torch.float64)])
        ours = E.pmf_to_quantized_cdf(p[:-1], tail_mass=p[-1:]).double()
        theirs = torch.tensor(compressai_quantize(p.tolist(), 16), dtype=torch.float64)
        kl = [float((p * torch.log2(p / ((c[1:] - c[:-1]) / 2**16))).sum()) for c in (ours, theirs)]
        worse += kl[0] > kl[1] + 1e-12
        assert kl[0] < 0.01
    assert worse <= 10, f"our quantisation lost to CompressAI's in {worse}/200 cases"


def test_quantized_cdf_rows_and_lengths():
    pmf = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    cdfs = E.pmf_to_quantized_cdf(pmf, pmf_lengths=torch.tensor([2, 3]), tail_mass=torch.tensor([0.0, 0.0]))
    assert cdfs.shape == (2, 5)
    assert cdfs[0, 3] == 65536 and cdfs[0, 4] == 0  # 2 + 2 valid entries, zero padding
    assert cdfs[1, 4] == 65536
    with pytest.raises(ValueError, match="16-bit"):
        E.pmf_to_quantized_cdf(pmf, precision=15)
    with pytest.raises(ValueError, match="non-finite"):
        E.pmf_to_quantized_cdf(torch.tensor([float("nan"), 1.0]))
    with pytest.raises(ValueError, match="pmf_lengths"):
        E.pmf_to_quantized_cdf(pmf, pmf_lengths=torch.tensor([4, 1]))


def test_quantized_cdf_accepts_numpy():
    cdf = E.pmf_to_quantized_cdf(np.array([0.25, 0.75]))
    assert cdf.tolist()[0] == 0 and cdf.tolist()[-1] == 65536


# ----------------------------------------------------------------- the decode check (v2)

def _scale_problem(seed: int, n: int = 4000):
    table = gaussian_table(scale_ladder(64))
    g = torch.Generator().manual_seed(seed)
    indexes = torch.randint(10, 50, (n,), generator=g, dtype=torch.int32)
    return table, indexes, sample(table, indexes, g)


def _check_offset(data: bytes) -> int:
    """Offset of a v2 stream's symbol check: after the version byte, the symbol count, the
    lane size and one varint per lane."""
    pos, values = 1, []
    while len(values) < 2 or len(values) < 2 + -(-values[0] // values[1]):
        value, shift = 0, 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append(value)
    return pos


def test_tampered_symbol_check_is_reported():
    table, indexes, symbols = _scale_problem(0)
    data = E.encode(symbols, indexes, *table.args(), lane_size=1000)
    assert data[0] == E.STREAM_VERSION == 2
    offset = _check_offset(data)
    for byte in range(4):
        bad = bytearray(data)
        bad[offset + byte] ^= 0x40
        with pytest.raises(ncodec.BitstreamError, match="symbol check mismatch.*entropy parameters differ"):
            E.decode(bytes(bad), indexes, *table.args())
        decoder = E.RangeDecoder(bytes(bad))
        decoder.decode(indexes[:3500], *table.args())  # lanes 0-2: not checked until the end
        with pytest.raises(ncodec.BitstreamError, match="symbol check"):
            decoder.decode(indexes[3500:], *table.args())
    assert torch.equal(E.decode(data, indexes, *table.args()), symbols)
    empty = E.encode(symbols[:0], indexes[:0], *table.args())
    with pytest.raises(ncodec.BitstreamError, match="symbol check"):
        E.RangeDecoder(empty[:-1] + bytes([empty[-1] ^ 1]))


def test_mismatched_entropy_parameters_never_decode_silently():
    """A decoder whose scale index is off by one at one symbol (what float arithmetic that
    differs between machines does) either gets the right symbols or raises: the lane
    checks catch what the coder's own consistency checks let through."""
    caught_by_check = 0
    for seed in range(60):
        table, indexes, symbols = _scale_problem(seed, n=600)
        data = E.encode(symbols, indexes, *table.args())
        wrong = indexes.clone()
        position = seed * 7 % 600
        wrong[position] += 1 if seed % 2 else -1
        try:
            decoded = E.decode(data, wrong, *table.args())
        except ncodec.BitstreamError as exc:
            caught_by_check += "symbol check" in str(exc)
            continue
        assert torch.equal(decoded, symbols), f"seed {seed}: wrong symbols decoded without an error"
    assert caught_by_check > 0


def test_version_1_streams_decode_without_checks():
    table, indexes, symbols = _scale_problem(1, n=100)
    v2 = E.encode(symbols, indexes, *table.args())
    offset = _check_offset(v2)
    v1 = bytes([1]) + v2[1:offset] + v2[offset + 4:]  # no version 2, no check
    assert torch.equal(E.decode(v1, indexes, *table.args()), symbols)
    with pytest.raises(ncodec.BitstreamError, match="versions 1 to 2"):
        E.decode(bytes([3]) + v2[1:], indexes, *table.args())
