"""The entropy-stage interface (ncodec.entropy.stage, ncodec.entropy.laplace): every family
round-trips one-shot and incrementally, adds no format to the coder's, and refuses streams
that do not fit."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

import ncodec
from ncodec import entropy as E
from ncodec.entropy.laplace import LaplaceStage, laplace_half_width, laplace_scales, laplace_table
from ncodec.entropy.stage import (
    CategoricalStage,
    CdfTable,
    FactorizedStage,
    GaussianStage,
    gaussian_table,
)

FAMILIES = ["gaussian-rows", "gaussian-scales", "factorized", "categorical", "laplace-rows", "laplace-scales"]


def _compressai_scales() -> list[float]:
    return torch.exp(torch.linspace(math.log(0.11), math.log(256.0), 64)).tolist()


def _problem(family: str, n: int = 3000, seed: int = 0):
    """(stage, symbols int32 [n], params [n]) with symbols drawn near each row's spread,
    a few far outside it (escapes) where the family allows them."""
    g = torch.Generator().manual_seed(seed)
    if family.startswith("gaussian"):
        scales = _compressai_scales()
        stage = GaussianStage.from_scales(scales)
        rows = torch.randint(0, len(scales), (n,), generator=g, dtype=torch.int32)
        spread = torch.tensor(scales)[rows.long()]
        params = spread * 0.97 if family == "gaussian-scales" else rows
    elif family.startswith("laplace"):
        stage = LaplaceStage()
        rows = torch.randint(0, 64, (n,), generator=g, dtype=torch.int32)
        spread = stage.scales[rows.long()].float()
        params = stage.scales[rows.long()] * 1.01 if family == "laplace-scales" else rows
    elif family == "factorized":
        pmf = torch.rand(5, 30, generator=g, dtype=torch.float64) ** 3
        stage = FactorizedStage(CdfTable.from_pmf(pmf, torch.tensor([-15, -3, 0, 7, -100], dtype=torch.int32),
                                                  tail_mass=torch.full((5,), 1e-3)))
        params = FactorizedStage.channel_params((n // 5, 5), dim=1).reshape(-1)
        symbols = torch.randint(0, 30, (n,), generator=g, dtype=torch.int32) + stage.table.offsets[params.long()]
        symbols[::97] = 123456  # escapes
        return stage, symbols, params
    else:
        counts = torch.randint(0, 50, (4, 16), generator=g).double() + 1
        stage = CategoricalStage.from_counts(counts)
        params = torch.arange(4, dtype=torch.int32).repeat(n // 4)
        return stage, torch.randint(0, 16, (params.numel(),), generator=g, dtype=torch.int32), params
    symbols = torch.round(torch.randn(n, generator=g) * spread).int()
    symbols[::101] = torch.tensor([2**31 - 1, -(2**31), 5000, -77777]).repeat(100)[: symbols[::101].numel()].int()
    return stage, symbols, params


# ---------------------------------------------------------------------------------------
# Round trips through the one interface
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_one_shot_round_trip(family):
    stage, symbols, params = _problem(family)
    data = stage.encode(symbols, params)
    out = stage.decode(data, params)
    assert out.dtype == torch.int32 and out.shape == params.shape
    assert torch.equal(out, symbols)


@pytest.mark.parametrize("family", FAMILIES)
def test_incremental_round_trip_equals_one_shot(family):
    stage, symbols, params = _problem(family)
    cuts = [0, 1, 700, 701, 2000, symbols.numel()]  # uneven batches, one of a single symbol
    writer = stage.writer()
    for a, b in zip(cuts, cuts[1:]):
        writer.add(symbols[a:b], params[a:b])
    assert writer.symbols_written == symbols.numel()
    data = writer.finish()
    assert data == stage.encode(symbols, params)
    reader = stage.reader(data)
    for a, b in zip(cuts, cuts[1:]):
        assert reader.symbols_left == symbols.numel() - a
        assert torch.equal(reader.read(params[a:b]), symbols[a:b])
    assert reader.symbols_left == 0
    reader.finish()


@pytest.mark.parametrize("family", FAMILIES)
def test_bytes_are_the_coders(family):
    """A stage adds no format: its bytes are coder.encode's for the same rows and table."""
    stage, symbols, params = _problem(family)
    rows = stage.indexes(params)
    assert rows.dtype == torch.int32 and rows.shape == params.shape
    assert stage.encode(symbols, params) == E.encode(symbols, rows, *stage.table)
    small = E.encode(symbols, rows, *stage.table, lane_size=512)
    assert type(stage)(**_same_stage_kwargs(stage), lane_size=512).encode(symbols, params) == small


def _same_stage_kwargs(stage) -> dict:
    if isinstance(stage, LaplaceStage):
        return {"scales": stage.scales.tolist()}
    if isinstance(stage, GaussianStage):
        return {"table": stage.table, "scale_table": stage.scale_table, "scale_bound": stage.scale_bound}
    if isinstance(stage, CategoricalStage):
        return {"table": stage.table, "alphabet_size": stage.alphabet_size}
    return {"table": stage.table}


def test_shapes_follow_params():
    stage, symbols, params = _problem("gaussian-rows", n=2 * 3 * 50)
    out = stage.decode(stage.encode(symbols.view(2, 3, 50), params.view(2, 3, 50)), params.view(6, 50))
    assert out.shape == (6, 50) and torch.equal(out.reshape(-1), symbols)


# ---------------------------------------------------------------------------------------
# Streams that do not fit
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_truncated_padded_or_miscounted_streams_raise(family):
    stage, symbols, params = _problem(family)
    data = stage.encode(symbols, params)
    for bad in (data[: len(data) // 2], data[:-1], data + b"\0", b"", b"\x00" * 16):
        with pytest.raises(ncodec.BitstreamError):
            stage.decode(bad, params)
    with pytest.raises(ncodec.BitstreamError):  # the params ask for one symbol more
        stage.decode(data, torch.cat([params, params[:1]]))
    with pytest.raises(ncodec.BitstreamError):  # trailing symbols
        stage.decode(data, params[:-1])


def test_reader_refuses_reading_past_the_end_and_leftovers():
    stage, symbols, params = _problem("laplace-rows", n=100)
    data = stage.encode(symbols, params)
    reader = stage.reader(data)
    reader.read(params[:60])
    with pytest.raises(ncodec.BitstreamError, match="40 more symbols"):
        reader.read(params[:41])
    reader.read(params[:30])
    with pytest.raises(ncodec.BitstreamError, match="10 symbols more"):
        reader.finish()
    with pytest.raises(ncodec.BitstreamError):
        stage.reader(data[:3])


def test_foreign_stream_raises():
    """A substream of another stage (other tables, other symbol count) is refused."""
    gauss, g_symbols, g_params = _problem("gaussian-rows", n=500)
    laplace, _, l_params = _problem("laplace-rows", n=400)
    with pytest.raises(ncodec.BitstreamError):
        laplace.decode(gauss.encode(g_symbols, g_params), l_params)
    rng = np.random.default_rng(1)
    for _ in range(20):
        with pytest.raises(ncodec.BitstreamError):
            laplace.decode(rng.bytes(int(rng.integers(1, 64))), l_params)


def test_categorical_alphabet_is_enforced():
    stage, symbols, params = _problem("categorical", n=400)
    bad = symbols.clone()
    bad[7] = stage.alphabet_size
    with pytest.raises(ValueError, match="0..15"):
        stage.encode(bad, params)
    with pytest.raises(ValueError):
        stage.writer().add(bad, params)
    escaped = E.encode(bad, params, *stage.table)  # the same table, an escape coded anyway
    with pytest.raises(ncodec.BitstreamError, match="alphabet"):
        stage.decode(escaped, params)
    with pytest.raises(ncodec.BitstreamError, match="alphabet"):
        stage.reader(escaped).read(params)


def test_categorical_table_is_the_audio_codecs():
    """from_counts builds the rows the audio codec built before the stage existed."""
    counts = torch.arange(1, 33, dtype=torch.float32).reshape(2, 16) ** 2
    c64 = counts.double()
    expected = E.pmf_to_quantized_cdf(c64 / c64.sum(1, keepdim=True), tail_mass=torch.full((2,), 1e-9))
    stage = CategoricalStage.from_counts(counts)
    assert torch.equal(stage.table.cdfs, expected)
    assert stage.table.lengths.tolist() == [18, 18] and stage.table.offsets.tolist() == [0, 0]


def test_integer_params_must_be_rows():
    stage, symbols, params = _problem("factorized", n=50)
    with pytest.raises(ValueError):
        stage.encode(symbols, params + 5)
    with pytest.raises(ValueError, match="integers"):
        stage.encode(symbols, params.float())


# ---------------------------------------------------------------------------------------
# Gaussian family
# ---------------------------------------------------------------------------------------

def test_gaussian_table_is_the_entropy_models():
    from ncodec.entropy.models import GaussianConditional
    from ncodec.models.variable_rate import fine_scale_table

    for scales in (_compressai_scales(), fine_scale_table().tolist()):
        gc = GaussianConditional(scales)
        gc.update()
        table = gaussian_table(scales)
        assert torch.equal(table.cdfs, gc._quantized_cdf)
        assert torch.equal(table.lengths, gc._cdf_length.int()) and torch.equal(table.offsets, gc._offset.int())
        stage = gc.entropy_stage()
        scale_values = torch.rand(4000, generator=torch.Generator().manual_seed(3), dtype=torch.float32) * 300
        assert torch.equal(stage.indexes(scale_values), gc.build_indexes(scale_values))
        symbols = torch.randint(-20, 20, (1, 4000), generator=torch.Generator().manual_seed(4)).int()
        indexes = gc.build_indexes(scale_values).view(1, -1)
        assert gc.compress(symbols.float(), indexes) == [stage.encode(symbols[0], indexes[0])]


def test_gaussian_integer_params_are_used_as_they_are():
    """The exact path hands over precomputed rows; the stage must not remap them."""
    stage = GaussianStage.from_scales(_compressai_scales())
    rows = torch.tensor([0, 63, 5, 5, 17], dtype=torch.int64)
    assert stage.indexes(rows).tolist() == rows.tolist()
    assert stage.indexes(torch.tensor([0.0, 0.11, 256.0, 1e9])).tolist() == [0, 0, 63, 63]
    tables_only = GaussianStage(stage.table, torch.empty(0))  # e.g. tables loaded without scales
    assert tables_only.indexes(rows).tolist() == rows.tolist()
    with pytest.raises(ValueError, match="0 scales for a table of 64 rows"):
        tables_only.indexes(torch.tensor([1.0]))


# ---------------------------------------------------------------------------------------
# Laplace family (the demo's tables, standing on their own)
# ---------------------------------------------------------------------------------------

# Numbers of the demo coder's tables (64 log-spaced scales 0.08 .. 3000 with half-widths up to
# 4095, and its one-row side table of scale 2.5, half-width 24) when this module was written;
# the bytes of files coded with them depend on every entry.
DEMO_MAIN = dict(shape=(64, 8193), lengths_sum=111142, first_lengths=[9, 9, 9, 9, 9], last_length=8193,
                 first_offset=-3, last_offset=-4095, bits_sum=1453643.5,
                 sha256="a4d40e8c0782ac51f2a891e9560bf718f2e4b17ee36b3ca48df0d814c492a6a2")
DEMO_SIDE = dict(shape=(1, 51), lengths_sum=51, first_lengths=[51], last_length=51, first_offset=-24,
                 last_offset=-24, bits_sum=474.1109619140625,
                 sha256="cfa20e103dfaa3f7dc65e132f7f7312db4a7f911d8346b463bafd3256d5dc345")


@pytest.mark.parametrize("table, expected", [
    (lambda: laplace_table(laplace_scales(64, 0.08, 3000.0), 4095), DEMO_MAIN),
    (lambda: laplace_table([2.5], 24), DEMO_SIDE),
], ids=["main", "side"])
def test_laplace_tables_match_the_demos(table, expected):
    t = table()
    assert tuple(t.cdfs.shape) == expected["shape"]
    assert int(t.lengths.sum()) == expected["lengths_sum"]
    assert t.lengths[: len(expected["first_lengths"])].tolist() == expected["first_lengths"]
    assert int(t.lengths[-1]) == expected["last_length"]
    assert int(t.offsets[0]) == expected["first_offset"] and int(t.offsets[-1]) == expected["last_offset"]
    finite = t.slot_bits[torch.isfinite(t.slot_bits)]
    assert float(finite.double().sum()) == pytest.approx(expected["bits_sum"], rel=1e-6)
    assert hashlib.sha256(t.cdfs.numpy().tobytes()).hexdigest() == expected["sha256"]


def test_laplace_half_width():
    assert laplace_half_width(0.08) == 3 and laplace_half_width(3000.0, 4095) == 4095
    assert laplace_half_width(0.01) == 2  # the floor
    assert laplace_half_width(1.0, 100) == math.ceil(math.log(2.0**15)) + 1
    assert laplace_half_width(2.5, 24) == 24


def test_laplace_float_scales_pick_the_nearest_row_on_a_log_axis():
    stage = LaplaceStage([1.0, 4.0, 16.0])
    scales = torch.tensor([0.01, 1.0, 1.99, 2.0, 2.01, 4.0, 7.9, 8.1, 16.0, 1e6], dtype=torch.float64)
    assert stage.indexes(scales).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert stage.indexes(scales.float()).tolist() == stage.indexes(scales).tolist()
    with pytest.raises(ValueError, match="increase"):
        LaplaceStage([2.0, 1.0])


def test_symbol_bits_predicts_the_stream_size():
    stage, symbols, params = _problem("laplace-rows", n=20000)
    bits = stage.symbol_bits(symbols, params)
    assert bits.shape == symbols.shape and torch.isfinite(bits).all()
    actual = 8 * len(stage.encode(symbols, params))
    assert abs(actual - float(bits.sum())) < 0.01 * actual + 256


def test_cdf_table_checks_and_unpacks():
    t = laplace_table([1.0, 2.0])
    cdfs, lengths, offsets = t
    assert cdfs is t.cdfs and lengths is t.lengths and offsets is t.offsets and t.rows == 2
    with pytest.raises(ValueError, match="one entry per CDF row"):
        CdfTable(t.cdfs, t.lengths[:1], t.offsets)
    with pytest.raises(ValueError, match="2-D"):
        CdfTable(t.cdfs[0], t.lengths, t.offsets)
