"""ncodec eval serves a modality that no package module knows: a toy "series" modality (text
files of integers), its codec and its eval plug-in, all defined here, run through `ncodec eval`."""

from __future__ import annotations

import csv
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from ncodec.cli import main
from ncodec.codecs import container, registry
from ncodec.codecs.base import Codec, Decoded
from ncodec.codecs.meta import MetaField
from ncodec.eval.core import Record
from ncodec.eval.plugin import (BDColumn, Coded, EvalPlugin, Panel, SummaryColumn, get_eval_plugin,
                                register_eval_plugin, unregister_eval_plugin)
from ncodec.io.modality import Modality, register_modality, unregister_modality

NAME = "toy"
QUALITIES = (1, 2, 3)  # quantisation step 4, 2, 1 (lossless)


def step(quality: int) -> int:
    return 2 ** (3 - quality)


def pack_ints(values: torch.Tensor) -> bytes:
    return zlib.compress(values.to(torch.int32).numpy().tobytes(), 9)


class ToyCodec(Codec):
    """Integers quantised to a multiple of ``step(quality)``, zlib-compressed, in a container."""

    modality = "series"
    meta_schema = {"quality": MetaField(int, lo=1), "count": MetaField(int, lo=0)}
    substreams = ("values",)

    def __init__(self, quality: int, device: torch.device):
        self.name, self.quality, self.device, self.fingerprint = NAME, quality, device, "0" * 32

    def compress(self, x: Any, **options: Any) -> bytes:
        q = torch.round(torch.as_tensor(x).double() / step(self.quality)).long()
        header = container.Header(codec=NAME, fingerprint=self.fingerprint, modality="series", substreams=("values",),
                                  meta={"quality": self.quality, "count": int(q.numel())})
        return container.pack(header, [[pack_ints(q)]])

    def decode_chunks(self, header: container.Header, meta: dict, chunks: list[list[bytes]]) -> Decoded:
        q = torch.frombuffer(bytearray(zlib.decompress(chunks[0][0])), dtype=torch.int32).long()
        return Decoded(q * step(self.quality), "series", meta=meta)


@dataclass(frozen=True)
class SeriesRecord(Record):
    codec: str
    quality: float
    file: str
    count: int
    bytes: int
    bits_per_value: float
    max_error: float
    snr: float
    encoding_time: float
    decoding_time: float

    means = {"bits_per_value": "bits_per_value", "max_error": "max_error", "snr": "snr"}


class Quantized:
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
    rate_key = "bits_per_value"
    rate_label = "bits per value"
    default_baselines = ("decimal",)
    summary_columns = (SummaryColumn("bits/value", "bits_per_value", ".3f"), SummaryColumn("SNR dB", "snr", ".2f"))
    bd_columns = (BDColumn("bd_rate_snr", "BD-rate (SNR)", "snr", "SNR", skip_missing=True),)
    plot_panels = (Panel("snr", "SNR [dB]"),)

    def read(self, path: Path) -> torch.Tensor:
        try:
            return torch.tensor([int(v) for v in Path(path).read_text().split()])
        except ValueError:
            raise ValueError(f"{path}: not a series of integers") from None

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

    def baseline(self, name: str) -> Quantized:
        if name != "decimal":
            return super().baseline(name)
        return Quantized()


@pytest.fixture
def series(tmp_path):
    """The series modality, the toy codec and the plug-in registered; unregistered after."""
    register_modality(Modality("series", input_suffixes=(".series",), output_suffixes=(".series",),
                               rate_unit="bits/value", rate_basis=lambda meta: meta["count"]))
    registry.register(registry.CodecInfo(name=NAME, modality="series", qualities=QUALITIES, default_quality=3,
                                         default=True, description="toy quantiser", weights="none",
                                         rate_unit="bits/value"), ToyCodec)
    register_eval_plugin(SeriesPlugin())
    try:
        folder = tmp_path / "series"
        folder.mkdir()
        g = torch.Generator().manual_seed(0)
        for i in range(2):  # a random walk: neighbours are close, so zlib finds structure
            walk = torch.randint(-40, 41, (2000,), generator=g).cumsum(0)
            (folder / f"walk{i}.series").write_text(" ".join(map(str, walk.tolist())))
        (folder / "notes.txt").write_text("not a series")
        yield folder
    finally:
        unregister_eval_plugin("series")
        registry.unregister(NAME)
        unregister_modality("series")


def test_a_new_modality_runs_through_ncodec_eval(series, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["eval", str(series), "--codec", NAME, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "ncodec toy" in printed and "decimal+zlib" in printed and "vs decimal+zlib: SNR" in printed
    assert {p.name for p in out.iterdir()} == {"toy.json", "decimal.json", "per_file.csv", "summary.md", "rd.png",
                                            ".ncodec-report"}
    toy = json.loads((out / "toy.json").read_text())
    assert toy["qualities"] == [1, 2, 3] and toy["name"] == "ncodec toy"
    bits, errors = toy["results"]["bits_per_value"], toy["results"]["max_error"]
    assert bits[0] < bits[1] < bits[2] < 32            # finer steps cost more; zlib beats raw int32
    assert errors == [2.0, 1.0, 0.0]                    # half a step at most; quality 3 is lossless
    assert toy["results"]["snr"][2] is None             # inf (exact) is written as null
    with open(out / "per_file.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 + 2 * 3 and rows[0]["codec"] == "toy" and rows[0]["file"].endswith("walk0.series")
    # Bytes are those of the whole ncodec file.
    data = ToyCodec(1, torch.device("cpu")).compress(get_eval_plugin("series").read(series / "walk0.series"))
    assert int(rows[0]["bytes"]) == len(data)
    summary = (out / "summary.md").read_text()
    assert "| ncodec toy | 1 |" in summary and "BD-rate (SNR)" in summary
    assert json.loads((out / ".ncodec-report").read_text()) == sorted(p.name for p in out.iterdir()
                                                                      if p.name != ".ncodec-report")


def test_the_plugin_declares_its_setting_flag(series, tmp_path):
    out = str(tmp_path / "o")
    with pytest.raises(ValueError, match="--bitrates is for audio inputs"):
        main_raising(["eval", str(series), "--bitrates", "6", "--out", out])
    with pytest.raises(ValueError, match="toy has qualities"):
        main_raising(["eval", str(series), "--qualities", "7", "--out", out])
    with pytest.raises(ValueError, match="unknown series baseline 'jpeg'"):
        main_raising(["eval", str(series), "--baselines", "jpeg", "--out", out])
    assert main(["eval", str(series), "--qualities", "2,3", "--baselines", "none", "--out", out,
                 "--no-progress"]) == 0     # the default codec of the modality
    assert json.loads((tmp_path / "o" / "toy.json").read_text())["qualities"] == [2, 3]


def test_unregistered_modality_is_refused(tmp_path):
    """After the fixture (the tests above ran first), no trace of the series modality is left."""
    (tmp_path / "a.series").write_text("1 2 3")
    with pytest.raises(ValueError, match="not a file ncodec eval reads"):
        main_raising(["eval", str(tmp_path / "a.series"), "--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="no eval plug-in|has no plug-in"):
        get_eval_plugin("series")


def main_raising(argv: list[str]) -> int:
    """Run a subcommand's handler without main's error printing, so the error can be matched."""
    from ncodec.cli import build_parser

    args = build_parser().parse_args(argv + ["--no-progress"])
    return args.handler(args)
