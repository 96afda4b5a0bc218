"""Entropy-coder benchmark: ncodec's range coder against compressai.ans and constriction.

All three coders get the same symbols and the same 16-bit quantized tables, in one process:

* **Tables**: the 64 scales of CompressAI's ``get_scale_table()`` (log-spaced, 0.11 .. 256),
  turned into discretized-Gaussian pmfs exactly as ``GaussianConditional.update()`` does.
  By default the pmfs are quantized with ``ncodec.entropy.pmf_to_quantized_cdf``;
  ``--tables compressai`` uses compressai's own ``_quantized_cdf`` / ``_cdf_length`` /
  ``_offset`` buffers instead (they share the convention, and are checked to load).
* **Symbols**: per-symbol scales ``s ~ LogNormal(ln 0.7, 0.9)`` (most latents of trained
  hyperprior models are small, a tail up to ~20), each mapped to its table row with
  ``GaussianConditional.build_indexes``; the symbol is ``round(N(0, s))``. Fixed seed.
* **Coders**: ``ncodec.entropy.encode/decode`` at 1 thread and at all threads;
  ``compressai.ans.RansEncoder/RansDecoder.*_with_indexes`` (single-threaded, Python lists
  prepared beforehand; the time including ``.tolist()`` as compressai's models call it is
  reported separately); ``constriction.stream.queue.RangeEncoder/RangeDecoder``
  (single-threaded) with one ``Categorical(perfect=False)`` model per table row, fed the
  symbols grouped by row, which is a favourable order for it.
* **Timing**: one warm-up, then the best of ``--repeats`` runs with ``time.perf_counter``,
  timing only the coder call on inputs already in each coder's native form. Every decode
  is checked against the input.

Run: ``.venv/bin/python benchmarks/entropy_coder.py [--symbols N] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

import constriction
import ncodec
from machine import cpu_model, usable_cores
from compressai.ans import RansDecoder, RansEncoder
from compressai.entropy_models import GaussianConditional
from compressai.models.google import get_scale_table
from ncodec import entropy as E

SEED = 20240601
SCALE_MEDIAN = 0.7
SCALE_LOG_SIGMA = 0.9
PRECISION_TOTAL = 1 << 16
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "entropy_coder.md"
SINGLE = "n/a (single-threaded)"


# --------------------------------------------------------------------------- tables

@dataclass(frozen=True)
class Tables:
    """CompressAI-convention coder tables (all torch.int32)."""

    cdfs: torch.Tensor          # [rows, width]
    cdf_lengths: torch.Tensor   # [rows]
    offsets: torch.Tensor       # [rows]

    def freqs(self, row: int) -> np.ndarray:
        """Frequencies of the row's regular slots and its escape slot."""
        length = int(self.cdf_lengths[row])
        return np.diff(self.cdfs[row, :length].numpy().astype(np.int64))


class _RecordingGaussianConditional(GaussianConditional):
    """GaussianConditional that keeps the pmfs it quantizes in ``update()``."""

    def _pmf_to_cdf(self, pmf, tail_mass, pmf_length, max_length):  # type: ignore[override]
        self.recorded_pmf = (pmf.double(), tail_mass.double().reshape(-1), pmf_length.clone())
        return super()._pmf_to_cdf(pmf, tail_mass, pmf_length, max_length)


def compressai_gaussian() -> _RecordingGaussianConditional:
    """GaussianConditional over compressai's default scale table, updated."""
    model = _RecordingGaussianConditional(None)
    model.update_scale_table(get_scale_table())
    return model


def compressai_tables(model: _RecordingGaussianConditional) -> Tables:
    """compressai's own buffers, used as they are."""
    return Tables(model._quantized_cdf.int(), model._cdf_length.int(), model._offset.int())


def ncodec_tables(model: _RecordingGaussianConditional) -> Tables:
    """The same pmfs as compressai's, quantized by ncodec's pmf_to_quantized_cdf."""
    pmf, tail_mass, pmf_length = model.recorded_pmf
    cdfs = E.pmf_to_quantized_cdf(pmf, pmf_lengths=pmf_length, tail_mass=tail_mass)
    return Tables(cdfs, (pmf_length + 2).int(), model._offset.int())


# --------------------------------------------------------------------------- workload

@dataclass(frozen=True)
class Workload:
    scales: np.ndarray       # float64 [n], the drawn (unclamped) scales
    indexes: torch.Tensor    # int32 [n], table rows per GaussianConditional.build_indexes
    symbols: torch.Tensor    # int32 [n]


def make_workload(n: int, model: GaussianConditional, seed: int) -> Workload:
    """Log-normal scales, compressai's index mapping, discretized Gaussian symbols."""
    rng = np.random.default_rng(seed)
    scales = rng.lognormal(math.log(SCALE_MEDIAN), SCALE_LOG_SIGMA, n)
    indexes = model.build_indexes(torch.from_numpy(scales.astype(np.float32))).int()
    symbols = torch.from_numpy(np.rint(rng.normal(0.0, scales)).astype(np.int32))
    return Workload(scales, indexes.contiguous(), symbols)


def coded_slots(work: Workload, tables: Tables) -> tuple[torch.Tensor, torch.Tensor]:
    """Slot coded for each symbol (value, or the escape slot) and the escape mask."""
    idx = work.indexes.long()
    value = work.symbols.long() - tables.offsets.long()[idx]
    escape_slot = tables.cdf_lengths.long()[idx] - 2
    escaped = (value < 0) | (value >= escape_slot)
    return torch.where(escaped, escape_slot, value), escaped


def ideal_bytes(work: Workload, tables: Tables) -> float:
    """Sum of -log2(freq/2**16) of the coded slots, in bytes (escape payload bits ignored)."""
    slots, _ = coded_slots(work, tables)
    flat = tables.cdfs.long().reshape(-1)
    base = work.indexes.long() * tables.cdfs.shape[1] + slots
    freq = (flat[base + 1] - flat[base]).double()
    return float(-(torch.log2(freq / PRECISION_TOTAL)).sum()) / 8.0


# --------------------------------------------------------------------------- coders

@dataclass(frozen=True)
class Coder:
    """One coder, with its inputs already prepared in its native form."""

    name: str
    encode: Callable[[int], Any]                 # threads -> compressed
    decode: Callable[[Any, int], Any]            # compressed, threads -> decoded
    is_exact: Callable[[Any], bool]              # decoded == input?
    nbytes: Callable[[Any], int]
    threaded: bool = False


def ncodec_coder(work: Workload, tables: Tables) -> Coder:
    """ncodec.entropy on torch int32 tensors; the only coder with a thread count."""
    args = (work.indexes, tables.cdfs, tables.cdf_lengths, tables.offsets)
    return Coder(
        name="ncodec",
        encode=lambda t: E.encode(work.symbols, *args, num_threads=t),
        decode=lambda data, t: E.decode(data, *args, num_threads=t),
        is_exact=lambda out: torch.equal(out, work.symbols),
        nbytes=len,
        threaded=True,
    )


def compressai_coder(work: Workload, tables: Tables) -> Coder:
    """compressai.ans on Python lists made before timing: the coder call alone."""
    symbols, indexes = work.symbols.tolist(), work.indexes.tolist()
    table = (tables.cdfs.tolist(), tables.cdf_lengths.tolist(), tables.offsets.tolist())
    return Coder(
        name="compressai.ans",
        encode=lambda _t: RansEncoder().encode_with_indexes(symbols, indexes, *table),
        decode=lambda data, _t: RansDecoder().decode_with_indexes(data, indexes, *table),
        is_exact=lambda out: out == symbols,
        nbytes=len,
    )


def compressai_model_style_coder(work: Workload, tables: Tables) -> Coder:
    """compressai.ans called as GaussianConditional.compress/decompress do: tensors in/out."""

    def encode(_t: int) -> bytes:
        return RansEncoder().encode_with_indexes(
            work.symbols.reshape(-1).int().tolist(), work.indexes.reshape(-1).int().tolist(),
            tables.cdfs.tolist(), tables.cdf_lengths.reshape(-1).int().tolist(),
            tables.offsets.reshape(-1).int().tolist())

    def decode(data: bytes, _t: int) -> torch.Tensor:
        values = RansDecoder().decode_with_indexes(
            data, work.indexes.reshape(-1).int().tolist(), tables.cdfs.tolist(),
            tables.cdf_lengths.reshape(-1).int().tolist(), tables.offsets.reshape(-1).int().tolist())
        return torch.tensor(values, dtype=torch.int32).reshape(work.indexes.shape)

    return Coder("compressai.ans (incl. .tolist())", encode, decode,
                 lambda out: torch.equal(out, work.symbols), len)


@dataclass(frozen=True)
class RowGroups:
    """Symbols grouped by table row (stable), as constriction sees them."""

    rows: list[int]
    slots: list[np.ndarray]          # int32 slots per row, escape slot for escapes
    escape_payload: np.ndarray       # int32, two 16-bit halves per escaped symbol
    symbols_in_group_order: np.ndarray


def group_by_row(work: Workload, tables: Tables) -> RowGroups:
    slots, escaped = coded_slots(work, tables)
    order = torch.argsort(work.indexes, stable=True)
    counts = torch.bincount(work.indexes.long(), minlength=tables.cdfs.shape[0]).tolist()
    sorted_slots = torch.split(slots[order].int(), counts)
    rows = [r for r, c in enumerate(counts) if c]
    symbols = work.symbols[order].numpy()
    raw = symbols[escaped[order].numpy()].view(np.uint32)
    payload = np.stack([raw >> 16, raw & 0xFFFF], axis=1).reshape(-1).astype(np.int32)
    return RowGroups(rows, [sorted_slots[r].numpy() for r in rows], payload, symbols)


def symbols_from_slots(groups: RowGroups, slots: list[np.ndarray], payload: np.ndarray,
                       tables: Tables) -> np.ndarray:
    """Undo the slot mapping: offset for regular slots, the raw payload for escapes."""
    halves = payload.astype(np.uint32).reshape(-1, 2)
    raw = ((halves[:, 0] << 16) | halves[:, 1]).view(np.int32)
    out, taken = [], 0
    for row, s in zip(groups.rows, slots):
        values = s.astype(np.int32) + np.int32(tables.offsets[row])
        escaped = np.flatnonzero(s == int(tables.cdf_lengths[row]) - 2)
        values[escaped] = raw[taken:taken + len(escaped)]
        taken += len(escaped)
        out.append(values)
    return np.concatenate(out)


def constriction_coder(work: Workload, tables: Tables) -> Coder:
    """constriction's queue range coder, one Categorical per row, symbols grouped by row."""
    groups = group_by_row(work, tables)
    models = [constriction.stream.model.Categorical(tables.freqs(r) / PRECISION_TOTAL, perfect=False)
              for r in groups.rows]
    uniform16 = constriction.stream.model.Uniform(1 << 16)

    def encode(_t: int) -> np.ndarray:
        encoder = constriction.stream.queue.RangeEncoder()
        for slots, model in zip(groups.slots, models):
            encoder.encode(slots, model)
        if len(groups.escape_payload):
            encoder.encode(groups.escape_payload, uniform16)
        return encoder.get_compressed()

    def decode(data: np.ndarray, _t: int) -> tuple[list[np.ndarray], np.ndarray]:
        decoder = constriction.stream.queue.RangeDecoder(data)
        slots = [decoder.decode(model, len(s)) for s, model in zip(groups.slots, models)]
        payload = decoder.decode(uniform16, len(groups.escape_payload)) if len(groups.escape_payload) \
            else np.empty(0, np.int32)
        return slots, payload

    def is_exact(out: tuple[list[np.ndarray], np.ndarray]) -> bool:
        return np.array_equal(symbols_from_slots(groups, *out, tables), groups.symbols_in_group_order)

    return Coder("constriction (queue range coder)", encode, decode, is_exact,
                 lambda data: int(data.nbytes))


# --------------------------------------------------------------------------- timing

def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """One warm-up call, then the best wall time of ``repeats`` calls, and the last result."""
    result = fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


@dataclass
class Measurement:
    name: str
    encode_s: dict[int, float]   # threads -> seconds
    decode_s: dict[int, float]
    nbytes: int


def measure(coder: Coder, thread_counts: list[int], repeats: int) -> Measurement:
    """Time encode and decode per thread count; check exactness and thread-independent bytes."""
    counts = thread_counts if coder.threaded else [1]
    m = Measurement(coder.name, {}, {}, 0)
    first: Optional[Any] = None
    for t in counts:
        m.encode_s[t], data = best_time(lambda: coder.encode(t), repeats)
        m.decode_s[t], out = best_time(lambda: coder.decode(data, t), repeats)
        assert coder.is_exact(out), f"{coder.name}: decoded symbols differ from the input ({t} threads)"
        first = data if first is None else first
        assert not coder.threaded or data == first, f"{coder.name}: bytes depend on the thread count"
        m.nbytes = coder.nbytes(data)
        print(f"  {coder.name}, {t} thread(s): done", file=sys.stderr)
    return m


def check_loads_in_ncodec(tables: Tables, work: Workload, n: int = 100_000) -> str:
    """Round-trip a prefix of the workload through ncodec with the given tables."""
    args = (work.indexes[:n], tables.cdfs, tables.cdf_lengths, tables.offsets)
    try:
        ok = torch.equal(E.decode(E.encode(work.symbols[:n], *args), *args), work.symbols[:n])
    except ValueError as err:
        return f"no ({err})"
    return f"yes (round-trip of {min(n, len(work.symbols)):,} symbols exact)" if ok else "no (round-trip differs)"


# --------------------------------------------------------------------------- report

def machine_lines(threads: int) -> list[str]:
    return [
        f"- CPU: {cpu_model()}; {threads} usable cores (sched_getaffinity), os.cpu_count() = {os.cpu_count()}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}",
        f"- ncodec {ncodec.__version__}, compressai {version('compressai')}, constriction {version('constriction')}",
    ]


def workload_lines(work: Workload, tables: Tables, table_source: str, loads: str,
                   ideal_by_source: dict[str, float]) -> list[str]:
    n = len(work.symbols)
    p = np.percentile(work.scales, [1, 50, 99, 99.99])
    _, escaped = coded_slots(work, tables)
    used = int(torch.unique(work.indexes).numel())
    ideal = ideal_by_source[table_source]
    others = "; ".join(f"with {k}'s tables {v:,.0f} B ({8 * v / n:.4f} bit/sym)"
                       for k, v in ideal_by_source.items() if k != table_source)
    return [
        f"- {n:,} symbols, seed {SEED}. Scales s ~ LogNormal(mu = ln {SCALE_MEDIAN}, sigma = {SCALE_LOG_SIGMA}): "
        f"p1 {p[0]:.3f}, median {p[1]:.3f}, p99 {p[2]:.2f}, p99.99 {p[3]:.2f}, max {work.scales.max():.2f}.",
        "- Table row per symbol: `GaussianConditional.build_indexes(s)` (s clamped to >= 0.11, then the "
        f"smallest table scale >= s); {used} of {tables.cdfs.shape[0]} rows used. Symbol = round(N(0, s)); "
        f"{float((work.symbols == 0).double().mean()):.1%} zeros, {int(escaped.sum())} escapes.",
        f"- Tables: compressai's 64-scale table (0.11 .. 256, log-spaced), pmfs as "
        f"`GaussianConditional.update()` builds them, quantized by **{table_source}**. "
        f"compressai's buffers load as ncodec tables: {loads}.",
        f"- Ideal = sum of -log2(freq/2^16) of the coded slot (escape slot for out-of-support values; "
        f"escape payload bits ignored) / 8 = {ideal:,.0f} B ({8 * ideal / n:.4f} bit/sym). "
        f"For comparison, {others}.",
    ]


def fmt_rate(n: int, seconds: Optional[float]) -> str:
    return SINGLE if seconds is None else f"{n / seconds / 1e6:.1f}"


def results_table(results: list[Measurement], n: int, threads: int, ideal: float) -> list[str]:
    head = (f"| coder | encode Msym/s, 1 thread | decode Msym/s, 1 thread | encode Msym/s, {threads} threads "
            f"| decode Msym/s, {threads} threads | compressed bytes | over ideal |")
    lines = [head, "|---|--:|--:|--:|--:|--:|--:|"]
    for m in results:
        lines.append(
            f"| {m.name} | {fmt_rate(n, m.encode_s[1])} | {fmt_rate(n, m.decode_s[1])} "
            f"| {fmt_rate(n, m.encode_s.get(threads))} | {fmt_rate(n, m.decode_s.get(threads))} "
            f"| {m.nbytes:,} | {100 * (m.nbytes / ideal - 1):+.3f} % |")
    return lines


def ratio_table(ours: Measurement, peers: list[Measurement]) -> list[str]:
    lines = ["| ncodec / peer, 1 thread | encode speed | decode speed | bytes |", "|---|--:|--:|--:|"]
    for p in peers:
        lines.append(f"| {p.name} | {p.encode_s[1] / ours.encode_s[1]:.2f}x | "
                     f"{p.decode_s[1] / ours.decode_s[1]:.2f}x | {ours.nbytes / p.nbytes:.4f} |")
    return lines


def notes(n: int, model_style: Measurement, repeats: int) -> list[str]:
    return [
        f"- Timing: wall time of the coder call only, one warm-up then best of {repeats} "
        "(`time.perf_counter`), inputs already in each coder's native form: torch int32 tensors "
        "(ncodec), Python lists (compressai.ans), per-row int32 slot arrays and prebuilt models "
        "(constriction). Every decode is asserted equal to the input; ncodec's bytes are asserted "
        "identical at every thread count.",
        f"- compressai.ans including the tensor/list conversion its models do "
        f"(`.tolist()` of symbols, indexes and tables; `torch.tensor(values)` after decoding): "
        f"encode {fmt_rate(n, model_style.encode_s[1])} Msym/s, "
        f"decode {fmt_rate(n, model_style.decode_s[1])} Msym/s.",
        "- constriction has no per-symbol table index, so it sees the symbols grouped by table row "
        "(stable order), one `Categorical(freq/2^16, perfect=False)` model per row (escape slot "
        "included) - a favourable order for it (no per-symbol model lookup). Escaped values would "
        "be appended as two 16-bit halves with a `Uniform(2^16)` model. Its compressed size is the "
        "uint32 word array's size.",
        "- compressai.ans and constriction are single-threaded; only ncodec has a thread count.",
    ]


def render(sections: list[tuple[str, list[str]]]) -> str:
    parts = ["# Entropy coder benchmark"]
    for title, lines in sections:
        parts.append(f"## {title}\n\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------- main

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=10_000_000, help="number of symbols (default 10M)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (best is kept)")
    parser.add_argument("--tables", choices=("ncodec", "compressai"), default="ncodec",
                        help="who quantizes the pmfs into CDF tables (default: ncodec)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown output file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    threads = usable_cores()
    model = compressai_gaussian()
    by_source = {"ncodec": ncodec_tables(model), "compressai": compressai_tables(model)}
    tables = by_source[args.tables]
    work = make_workload(args.symbols, model, SEED)
    loads = check_loads_in_ncodec(by_source["compressai"], work)
    ideal_by_source = {k: ideal_bytes(work, t) for k, t in by_source.items()}

    thread_counts = sorted({1, threads})
    coders = [ncodec_coder(work, tables), compressai_coder(work, tables), constriction_coder(work, tables)]
    results = [measure(c, thread_counts, args.repeats) for c in coders]
    model_style = measure(compressai_model_style_coder(work, tables), [1], args.repeats)

    n = args.symbols
    report = render([
        ("Machine", machine_lines(threads)),
        ("Workload", workload_lines(work, tables, args.tables, loads, ideal_by_source)),
        ("Results", results_table(results, n, threads, ideal_by_source[args.tables])),
        ("Ratios", ratio_table(results[0], results[1:])),
        ("Notes", notes(n, model_style, args.repeats)),
    ])
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
