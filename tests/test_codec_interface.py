"""A codec of a new modality, defined in this file alone, runs through every shared tool.

The "series" modality (text files of integers, ``.series``), its codec ``toy-series``
(integers quantised by a step that halves with each quality; per chunk of 1000 values, their
differences coded with the discrete-Laplace entropy stage at a scale kept in the chunk's
``head`` substream) and its eval plug-in (bits per value, SNR, a decimal+zlib baseline) are
registered here and nowhere in the package. ``ncodec.load`` / ``compress`` /
``ncodec.decompress``, the CLI's ``encode`` / ``decode`` / ``info`` / ``models`` and ``ncodec
eval`` serve it through the shared interfaces: the codec base class, the modality, codec and
eval-plug-in registries, the container (with per-chunk metadata) and the entropy-stage
interface. No package module names it.
"""

from __future__ import annotations

import csv
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import ncodec
from ncodec.cli import build_parser, main
from ncodec.codecs import container, registry
from ncodec.codecs.base import Codec, Decoded
from ncodec.codecs.meta import MetaField
from ncodec.entropy.laplace import LaplaceStage
from ncodec.errors import BitstreamError
from ncodec.eval.results import Record
from ncodec.eval.plugin import (BDColumn, Coded, EvalPlugin, Panel, SummaryColumn, get_eval_plugin,
                                register_eval_plugin, unregister_eval_plugin)
from ncodec.io.modality import Modality, register_modality, unregister_modality

CHUNK = 1000  # values per container chunk


def read_series(src) -> torch.Tensor:
    text = src.read().decode() if hasattr(src, "read") else open(src, encoding="utf-8").read()
    try:
        return torch.tensor([int(v) for v in text.split()], dtype=torch.int64)
    except ValueError:
        raise ValueError("a .series file holds integers, one a line") from None


class ToySeriesCodec(Codec):
    """Integers ``[T]`` quantised by ``step = 2^(3 - quality)``; per chunk of 1000, the
    differences of the quantised values coded with a discrete-Laplace stage whose scale (its
    table row) is chosen per chunk and kept in the chunk's ``head`` substream."""

    modality = "series"
    substreams = ("head", "values")
    meta_schema = {"quality": MetaField(int, lo=1, hi=3), "length": MetaField(int, lo=0, hi=1 << 24)}

    def __init__(self, quality: int, device="cpu"):
        self.name, self.quality, self.device = "toy-series", quality, torch.device(device)
        self.step = 2 ** (3 - quality)
        self.fingerprint = f"{0x5E41E5 + quality:032x}"
        self.stage = LaplaceStage()

    def compress(self, x) -> bytes:
        x = torch.as_tensor(x, dtype=torch.int64).reshape(-1)
        header = container.Header(self.name, self.fingerprint, self.modality, self.substreams,
                                  {"quality": self.quality, "length": int(x.numel())})
        chunks = []
        for part in torch.round(x.double() / self.step).long().split(CHUNK):
            diffs = torch.diff(part, prepend=part.new_zeros(1))
            row = int(self.stage.indexes(diffs[1:].abs().double().mean().clamp(min=0.1).reshape(1))[0]) \
                if part.numel() > 1 else 0
            chunks.append([container.pack_ints([row]), self.stage.encode(diffs, torch.full(diffs.shape, row))])
        return container.pack(header, chunks)

    def decode_chunks(self, header, meta, chunks) -> Decoded:
        sizes = [min(CHUNK, meta["length"] - i) for i in range(0, meta["length"], CHUNK)]
        if len(sizes) != len(chunks):
            raise BitstreamError(f"series of {meta['length']} values needs {len(sizes)} chunks, file has {len(chunks)}")
        parts = []
        for (head, values), n in zip(chunks, sizes):
            (row,) = container.unpack_ints(head, 1, "series chunk head")
            if row >= self.stage.table.rows:
                raise BitstreamError(f"series chunk head names table row {row}")
            parts.append(torch.cumsum(self.stage.decode(values, torch.full((n,), row)).long(), 0))
        values = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
        return Decoded(values * self.step, self.modality, meta=meta)

    def read_file(self, src):
        return read_series(src)

    def file_bytes(self, decoded: Decoded, suffix: str) -> bytes:
        return "".join(f"{v}\n" for v in decoded.tensor.tolist()).encode()


SERIES = Modality("series", input_suffixes=(".series",), output_suffixes=(".series",), rate_unit="bpv",
                  rate_basis=lambda meta: meta["length"])  # bits per value


# ----------------------------------------------------------------------- its eval plug-in

@dataclass(frozen=True)
class SeriesRecord(Record):
    codec: str
    quality: float
    file: str
    length: int
    bytes: int
    bpv: float
    max_error: float
    snr: float
    encoding_time: float
    decoding_time: float

    means = {"bpv": "bpv", "max_error": "max_error", "snr": "snr"}


class DecimalZlib:
    """A classical baseline: the values rounded to a multiple of 10**setting, zlib over text."""

    name, label = "decimal", "decimal+zlib"
    qualities = (2.0, 1.0, 0.0)

    def describe(self) -> str:
        return "values rounded to 10**setting, as text, zlib level 9"

    def run(self, media: torch.Tensor, setting: float) -> Coded:
        unit = 10 ** int(setting)
        rounded = torch.round(media.double() / unit).long() * unit
        data = zlib.compress(" ".join(map(str, rounded.tolist())).encode(), 9)
        back = torch.tensor([int(v) for v in zlib.decompress(data).split()])
        return Coded(data, back, 1e-6, 1e-6)


class SeriesPlugin(EvalPlugin):
    modality = "series"
    input_noun = "series file"
    rate_key = "bpv"
    rate_label = "bits per value"
    default_baselines = ("decimal",)
    summary_columns = (SummaryColumn("bits/value", "bpv", ".3f"), SummaryColumn("SNR dB", "snr", ".2f"))
    bd_columns = (BDColumn("bd_rate_snr", "BD-rate (SNR)", "snr", "SNR", skip_missing=True),)
    plot_panels = (Panel("snr", "SNR [dB]"),)

    def read(self, path: Path) -> torch.Tensor:
        with open(path, "rb") as f:
            return read_series(f)

    def decoded_media(self, decoded: Decoded, media: torch.Tensor, key: str, path: Path) -> torch.Tensor:
        return decoded.tensor.cpu()

    def record(self, key: str, setting: float, path: Path, media: torch.Tensor, coded: Coded) -> SeriesRecord:
        err = (coded.decoded - media).double()
        noise = float(err.pow(2).mean())
        snr = math.inf if noise == 0 else 10 * math.log10(float(media.double().pow(2).mean()) / noise)
        return SeriesRecord(key, setting, str(path), media.numel(), len(coded.data), 8 * len(coded.data) / media.numel(),
                            float(err.abs().max()), snr, coded.encode_seconds, coded.decode_seconds)

    def baseline_names(self) -> list[str]:
        return ["decimal"]

    def baseline(self, name: str) -> DecimalZlib:
        return DecimalZlib() if name == "decimal" else super().baseline(name)


@pytest.fixture
def toy_codec():
    """The series modality, the toy codec and its eval plug-in registered; unregistered after."""
    register_modality(SERIES)
    registry.register(registry.CodecInfo(name="toy-series", modality="series", qualities=(1, 2, 3), default_quality=2,
                                         default=True, description="toy: quantised integers, Laplace-coded",
                                         weights="no weights", rate_unit="bpv", rates={1: 4.0, 2: 5.0, 3: 6.0}),
                      lambda quality, device: ToySeriesCodec(quality, device))
    register_eval_plugin(SeriesPlugin())
    try:
        yield
    finally:
        unregister_eval_plugin("series")
        registry.unregister("toy-series")
        unregister_modality("series")


def series_file(path, n=2500, seed=0):
    g = torch.Generator().manual_seed(seed)
    values = torch.cumsum(torch.randint(-6, 7, (n,), generator=g), 0)
    path.write_text("".join(f"{v}\n" for v in values.tolist()))
    return values


def test_python_api(toy_codec):
    x = torch.arange(-1500, 1500, 3)
    codec = ncodec.load(modality="series", quality=3)
    assert isinstance(codec, ToySeriesCodec)
    data = codec.compress(x)
    decoded = ncodec.decompress(data)
    assert isinstance(decoded, Decoded) and decoded.modality == "series" and decoded.meta["length"] == x.numel()
    assert torch.equal(decoded.tensor, x)  # quality 3: step 1, lossless
    coarse = ncodec.decompress(ncodec.load("toy-series", quality=1).compress(x))
    assert (coarse.tensor - x).abs().max() <= 2 and not torch.equal(coarse.tensor, x)
    # The shared header checks serve it: another quality's model, a damaged file.
    with pytest.raises(BitstreamError, match="fingerprint"):
        ncodec.load("toy-series", quality=2).decompress(data)
    with pytest.raises(BitstreamError):
        ncodec.decompress(data[:-30])


def test_cli_encode_decode_info_models(toy_codec, tmp_path, capsys):
    src = tmp_path / "walk.series"
    values = series_file(src)
    ncb = tmp_path / "walk.ncb"
    assert main(["encode", str(src), str(ncb), "--quality", "3"]) == 0
    assert "bpv measured" in capsys.readouterr().err
    assert main(["decode", str(ncb), str(tmp_path / "back") + "/"]) == 0
    back = tmp_path / "back" / "walk.series"  # the modality's output type, by default
    assert torch.equal(read_series(back), values)
    capsys.readouterr()
    assert main(["info", str(ncb), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["modality"] == "series" and info["codec"] == "toy-series" and info["num_chunks"] == 3
    assert info["bpv"] == pytest.approx(8 * ncb.stat().st_size / values.numel(), abs=1e-3)
    assert main(["models"]) == 0
    line = next(li for li in capsys.readouterr().out.splitlines() if li.startswith("toy-series"))
    assert "series" in line and "1:4 2:5 3:6 (bpv)" in line
    # A batch: a directory of series files, with the summary's rate in the modality's unit.
    more = tmp_path / "many"
    more.mkdir()
    for i in range(2):
        series_file(more / f"s{i}.series", n=700, seed=i)
    assert main(["encode", str(more), str(tmp_path / "coded") + "/"]) == 0
    assert "2 of 2 files done" in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "coded"), str(tmp_path / "decoded") + "/"]) == 0
    assert "bpv" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "decoded").iterdir()) == ["s0.series", "s1.series"]


def test_unknown_input_kind_is_one_line(toy_codec, tmp_path, capsys):
    odd = tmp_path / "x.unknownkind"
    odd.write_text("1\n")
    assert main(["encode", str(odd), str(tmp_path / "x.ncb")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a kind of file ncodec codes" in err[0] and ".series" in err[0]


def test_without_its_module_a_file_of_the_modality_is_refused(tmp_path):
    codec = ToySeriesCodec(2)
    data = codec.compress(torch.arange(10))  # made while the toy is not registered
    with pytest.raises(BitstreamError, match="toy-series"):
        ncodec.decompress(data)


def test_ncodec_eval(toy_codec, tmp_path, capsys):
    folder = tmp_path / "series"
    folder.mkdir()
    for i in range(2):
        series_file(folder / f"walk{i}.series", n=2000, seed=i)
    (folder / "notes.txt").write_text("not a series")  # other kinds of file in the folder are left alone
    out = tmp_path / "out"
    assert main(["eval", str(folder), "--codec", "toy-series", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "ncodec toy-series" in printed and "decimal+zlib" in printed and "vs decimal+zlib: SNR" in printed
    assert {p.name for p in out.iterdir()} == {"toy-series.json", "decimal.json", "per_file.csv", "summary.md",
                                            "rd.png", ".ncodec-report"}
    toy = json.loads((out / "toy-series.json").read_text())
    assert toy["qualities"] == [1, 2, 3] and toy["name"] == "ncodec toy-series"
    bits, errors = toy["results"]["bpv"], toy["results"]["max_error"]
    assert bits[0] < bits[1] < bits[2] < 6           # finer steps cost more; a random walk of +-6 steps
    assert errors == [2.0, 1.0, 0.0]                  # half a step at most; quality 3 is lossless
    assert toy["results"]["snr"][2] is None           # inf (exact) is written as null
    with open(out / "per_file.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 + 2 * 3 and rows[0]["codec"] == "toy-series" and rows[0]["file"].endswith("walk0.series")
    # Bytes are those of the whole ncodec file.
    data = ToySeriesCodec(1).compress(get_eval_plugin("series").read(folder / "walk0.series"))
    assert int(rows[0]["bytes"]) == len(data)
    summary = (out / "summary.md").read_text()
    assert "| ncodec toy-series | 1 |" in summary and "BD-rate (SNR)" in summary


def handler(argv: list[str]) -> int:
    """Run a subcommand's handler without main's error printing, so the error can be matched."""
    args = build_parser().parse_args(argv + ["--no-progress"])
    return args.handler(args)


def test_eval_settings_come_from_the_plugin_and_the_registry(toy_codec, tmp_path):
    series_file(tmp_path / "a.series", n=300)
    src, out = str(tmp_path / "a.series"), str(tmp_path / "o")
    with pytest.raises(ValueError, match="--bitrates is for audio inputs"):
        handler(["eval", src, "--bitrates", "6", "--out", out])
    with pytest.raises(ValueError, match="toy-series has qualities"):
        handler(["eval", src, "--qualities", "7", "--out", out])
    with pytest.raises(ValueError, match="unknown series baseline 'jpeg'"):
        handler(["eval", src, "--baselines", "jpeg", "--out", out])
    assert handler(["eval", src, "--qualities", "2,3", "--baselines", "none", "--out", out]) == 0  # the default codec
    assert json.loads((tmp_path / "o" / "toy-series.json").read_text())["qualities"] == [2, 3]


def test_after_unregistering_no_trace_is_left(tmp_path):
    """The fixture's modality, codec and plug-in are gone after the tests that used them."""
    (tmp_path / "a.series").write_text("1 2 3")
    with pytest.raises(ValueError, match="not a file ncodec eval reads"):
        handler(["eval", str(tmp_path / "a.series"), "--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="no eval plug-in|has no plug-in"):
        get_eval_plugin("series")
    assert "toy-series" not in [i.name for i in ncodec.list_codecs()]
