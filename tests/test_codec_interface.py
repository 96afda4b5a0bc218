"""A codec of a new modality, defined in this file alone, runs through every shared tool.

The "series" modality (text files of integers, one a line, ``.series``) and its codec
``toy-series`` (integers quantised by a step that halves with each quality, the steps'
residual coded with the discrete-Laplace entropy stage, chunks of at most 1000 values) are
registered here and nowhere in the package: ``ncodec.load`` / ``compress`` /
``ncodec.decompress``, the CLI's ``encode`` / ``decode`` / ``info`` / ``models`` and ``ncodec
eval`` must serve it through the shared interfaces (the codec base class, the modality and
codec registries, the container and the entropy-stage interface).
"""

from __future__ import annotations

import json

import pytest
import torch

import ncodec
from ncodec.cli import main
from ncodec.codecs import container, registry
from ncodec.codecs.base import Codec, Decoded
from ncodec.codecs.meta import MetaField
from ncodec.entropy.laplace import LaplaceStage
from ncodec.errors import BitstreamError
from ncodec.io.modality import Modality, register_modality, unregister_modality

CHUNK = 1000  # values per container chunk


def read_series(src) -> torch.Tensor:
    text = src.read().decode() if hasattr(src, "read") else open(src, encoding="utf-8").read()
    try:
        return torch.tensor([int(v) for v in text.split()], dtype=torch.int64)
    except ValueError:
        raise ValueError("a .series file holds integers, one a line") from None


class ToySeriesCodec(Codec):
    """Integers ``[T]`` -> ``round(x / step)`` coded with a Laplace stage; step = 2^(3 - quality)."""

    modality = "series"
    substreams = ("values",)
    meta_schema = {"quality": MetaField(int, lo=1, hi=3), "length": MetaField(int, lo=0, hi=1 << 24)}

    def __init__(self, quality: int, device="cpu"):
        self.name, self.quality, self.device = "toy-series", quality, torch.device(device)
        self.step = 2 ** (3 - quality)
        self.fingerprint = f"{0x5E41E5 + quality:032x}"
        self.stage = LaplaceStage()

    def compress(self, x) -> bytes:
        x = torch.as_tensor(x, dtype=torch.int64).reshape(-1)
        symbols = torch.round(x.double() / self.step).long()
        header = container.Header(self.name, self.fingerprint, self.modality, self.substreams,
                                  {"quality": self.quality, "length": int(x.numel())})
        chunks = [[self.stage.encode(part, torch.full(part.shape, 8.0))] for part in symbols.split(CHUNK)]
        return container.pack(header, chunks)

    def decode_chunks(self, header, meta, chunks) -> Decoded:
        sizes = [min(CHUNK, meta["length"] - i) for i in range(0, meta["length"], CHUNK)]
        if len(sizes) != len(chunks):
            raise BitstreamError(f"series of {meta['length']} values needs {len(sizes)} chunks, file has {len(chunks)}")
        parts = [self.stage.decode(c[0], torch.full((n,), 8.0)) for c, n in zip(chunks, sizes)]
        values = (torch.cat(parts).long() if parts else torch.zeros(0, dtype=torch.long)) * self.step
        return Decoded(values, self.modality, meta=meta)

    def read_file(self, src):
        return read_series(src)

    def file_bytes(self, decoded: Decoded, suffix: str) -> bytes:
        return "".join(f"{v}\n" for v in decoded.tensor.tolist()).encode()


SERIES = Modality("series", input_suffixes=(".series",), output_suffixes=(".series",), rate_unit="bpv",
                  rate_basis=lambda meta: meta["length"])  # bits per value


@pytest.fixture
def toy_codec():
    register_modality(SERIES)
    registry.register(registry.CodecInfo(name="toy-series", modality="series", qualities=(1, 2, 3), default_quality=2,
                                         default=True, description="toy: quantised integers, Laplace-coded",
                                         weights="no weights", rate_unit="bpv", rates={1: 4.0, 2: 5.0, 3: 6.0}),
                      lambda quality, device: ToySeriesCodec(quality, device))
    try:
        yield
    finally:
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
