"""ncodec.eval: metrics, BD-rate, classical baselines, the harness and the `eval` command."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ncodec.eval import image_metrics as metrics
from ncodec.eval.image_baselines import BASELINES, DEFAULT_BASELINES, get_baseline, parse_baselines
from ncodec.eval.bdrate import bd_psnr, bd_rate
from ncodec.eval.command import add_eval_parser, collect_inputs
from ncodec.eval.image import Record, bdrate_markdown, evaluate, write_report
from ncodec.eval.results import Curve
from ncodec.eval.results import Results as EvalResults
from ncodec.io import read_rgb

IMAGES = Path(__file__).parent / "data" / "images"
PHOTO = IMAGES / "1025469_crop.jpg"       # 256 x 192 RGB photo
GRAY = IMAGES / "962312_gray_crop.png"     # 200 x 136 grayscale
RESULT_KEYS = {"psnr-rgb", "ms-ssim-rgb", "bpp", "encoding_time", "decoding_time"}
MAGIC = {"jpeg": (0, b"\xff\xd8\xff"), "webp": (8, b"WEBP"), "avif": (4, b"ftypavif"),
         "jpeg2000": (4, b"jP  "), "jpegxl": (0, b"\xff\x0a")}


# --------------------------------------------------------------------------- metrics

def test_psnr_known_values_and_identity():
    a = torch.zeros(3, 8, 8, dtype=torch.uint8)
    assert metrics.psnr_rgb(a, a) == math.inf                      # documented: exact -> inf
    assert metrics.psnr_rgb(a, a + 1) == pytest.approx(20 * math.log10(255))            # MSE 1
    assert metrics.psnr_rgb(a, a + 10) == pytest.approx(20 * math.log10(255) - 20)      # MSE 100
    # Float images are rounded to 8 bits first: 10.4/255 counts as 10, 10.6/255 as 11.
    assert metrics.psnr_rgb(a, torch.full((3, 8, 8), 10.4 / 255)) == pytest.approx(20 * math.log10(255) - 20)
    assert metrics.psnr_rgb(a, torch.full((3, 8, 8), 10.6 / 255)) == pytest.approx(20 * math.log10(255 / 11))
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr_rgb(a, torch.zeros(3, 8, 9, dtype=torch.uint8))


def test_ms_ssim_matches_compressai_and_is_nan_on_small_images():
    from compressai.utils.eval_model.__main__ import compute_metrics

    x = read_rgb(PHOTO)
    g = torch.Generator().manual_seed(0)
    noisy = (x.float() / 255 + 0.03 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ref = compute_metrics(x.float().unsqueeze(0) / 255, noisy.unsqueeze(0))
    assert metrics.psnr_rgb(x, noisy) == pytest.approx(ref["psnr-rgb"], abs=1e-4)
    assert metrics.ms_ssim_rgb(x, noisy) == pytest.approx(ref["ms-ssim-rgb"], abs=1e-5)
    assert metrics.ms_ssim_rgb(x, x) == pytest.approx(1.0, abs=1e-6)
    assert 0.5 < metrics.ms_ssim_rgb(x, noisy) < 0.99
    small = x[:, :160, :]                                          # 160 < 161: too small
    assert math.isnan(metrics.ms_ssim_rgb(small, small))
    assert not math.isnan(metrics.ms_ssim_rgb(x[:, :161, :161], x[:, :161, :161]))


def test_bpp_and_ms_ssim_db():
    assert metrics.bpp(1000, 100, 80) == 1.0
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
    assert metrics.ms_ssim_db(1.0) == math.inf
    with pytest.raises(ValueError):
        metrics.bpp(10, 0, 5)


# --------------------------------------------------------------------------- BD-rate

ANCHOR_R = [0.1, 0.2, 0.4, 0.8, 1.6]
ANCHOR_Q = [27.0, 30.0, 33.5, 36.0, 39.0]


def test_bd_rate_of_scaled_rates_is_exact():
    test_r = [0.9 * r for r in ANCHOR_R]
    assert bd_rate(ANCHOR_R, ANCHOR_Q, test_r, ANCHOR_Q) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(test_r, ANCHOR_Q, ANCHOR_R, ANCHOR_Q) == pytest.approx(100 / 9, abs=1e-9)
    assert bd_rate(ANCHOR_R, ANCHOR_Q, ANCHOR_R, ANCHOR_Q) == pytest.approx(0.0, abs=1e-12)


def test_bd_on_linear_curves_sampled_at_other_rates():
    # q = 30 + 5 ln r (anchor) and q = 31 + 5 ln r (test), sampled at different rates and
    # covering different ranges: +1 dB at equal rate, exp(-1/5) - 1 of the rate at equal q.
    ra, rt = [0.1, 0.2, 0.4, 0.8, 1.6], [1.2, 0.15, 0.6, 0.3]          # test given unsorted
    qa = [30 + 5 * math.log(r) for r in ra]
    qt = [31 + 5 * math.log(r) for r in rt]
    assert bd_psnr(ra, qa, rt, qt) == pytest.approx(1.0, abs=1e-9)
    assert bd_rate(ra, qa, rt, qt) == pytest.approx(100 * math.expm1(-0.2), abs=1e-9)
    assert bd_rate(rt, qt, ra, qa) == pytest.approx(100 * math.expm1(0.2), abs=1e-9)


def test_bd_rate_two_points_and_errors():
    assert bd_rate([1, 2], [30, 33], [0.5, 1], [30, 33]) == pytest.approx(-50.0)
    cases = [
        (([1], [30], [1, 2], [30, 33]), "at least 2"),
        (([1, 2, 3], [30, 29, 33], [1, 2], [30, 33]), "does not increase"),
        (([1, 1, 3], [30, 31, 33], [1, 2], [30, 33]), "same rate"),
        (([1, 2], [30, 33], [1, 2], [40, 45]), "overlap"),
        (([1, 2], [30, math.nan], [1, 2], [30, 33]), "non-finite"),
        (([0, 2], [30, 33], [1, 2], [30, 33]), "positive"),
        (([1, 2], [30, 33, 34], [1, 2], [30, 33]), "rates but"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            bd_rate(*args)
    with pytest.raises(ValueError, match="overlap"):
        bd_psnr([1, 2], [30, 33], [5, 6], [30, 33])


# --------------------------------------------------------------------------- baselines

@pytest.mark.parametrize("name", DEFAULT_BASELINES)
def test_baseline_round_trips_a_real_image(name):
    baseline = get_baseline(name)
    x = read_rgb(PHOTO)
    img = x.permute(1, 2, 0).numpy().copy()
    low_q, high_q = baseline.qualities[1], baseline.qualities[-2]
    low, high = baseline.run(img, low_q), baseline.run(img, high_q)
    offset, magic = MAGIC[name]
    for coded in (low, high):
        assert coded.data[offset:offset + len(magic)] == magic
        assert coded.decoded.shape == img.shape and coded.decoded.dtype == np.uint8
        assert coded.encoding_time > 0 and coded.decoding_time > 0
    assert len(low.data) < len(high.data)
    psnr_low = metrics.psnr_rgb(x, torch.from_numpy(low.decoded).permute(2, 0, 1))
    psnr_high = metrics.psnr_rgb(x, torch.from_numpy(high.decoded).permute(2, 0, 1))
    assert 20 < psnr_low < psnr_high and psnr_high > 38
    assert baseline.run(img, low_q).data == low.data                # deterministic
    assert name in BASELINES and baseline.describe()


def test_parse_baselines_and_missing_library(monkeypatch):
    assert parse_baselines("jpeg, WebP,jpeg") == ["jpeg", "webp"]
    assert parse_baselines("none") == [] and parse_baselines("") == []
    with pytest.raises(ValueError, match="unknown baseline 'bpg'"):
        parse_baselines("jpeg,bpg")
    with pytest.raises(ValueError, match="unknown baseline"):
        get_baseline("heic")
    monkeypatch.setitem(sys.modules, "imagecodecs", None)          # import now fails
    with pytest.raises(ValueError, match="pip install imagecodecs"):
        get_baseline("jpegxl")


# --------------------------------------------------------------------------- harness

@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    """Two real images cropped to 128 x 128 (one grayscale), so codec runs are fast."""
    folder = tmp_path_factory.mktemp("crops")
    for src in (PHOTO, GRAY):
        with Image.open(src) as im:
            im.crop((0, 0, 128, 128)).save(folder / (src.stem + ".png"))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def report(crops, tmp_path_factory):
    images = collect_inputs([crops])[1]
    results = evaluate(images, "mbt2018-mean-vr", [2, 1], ["jpeg", "webp"], progress=False)
    out = tmp_path_factory.mktemp("report")
    return results, write_report(results, out), out


def test_harness_records(report, crops):
    import ncodec

    results, _, _ = report
    assert [c.key for c in results.curves] == ["mbt2018-mean-vr", "jpeg", "webp"]
    assert [p.name for p in results.inputs] == ["1025469_crop.png", "962312_gray_crop.png"]
    codec = results.codec
    assert codec.settings == [1, 2] and len(codec.records) == 4
    assert [(r.quality, Path(r.file).name) for r in codec.records] == [
        (1, "1025469_crop.png"), (1, "962312_gray_crop.png"), (2, "1025469_crop.png"), (2, "962312_gray_crop.png")]
    # Bytes are those of the whole file, as ncodec writes it.
    first = codec.records[0]
    data = ncodec.load("mbt2018-mean-vr", quality=1).compress(read_rgb(first.file))
    assert first.bytes == len(data) and first.bpp == pytest.approx(8 * len(data) / 128 ** 2)
    for r in results.records:
        assert (r.height, r.width) == (128, 128) and math.isnan(r.ms_ssim_rgb)   # under 161 px
        assert r.bytes > 0 and math.isfinite(r.psnr_rgb) and r.encoding_time > 0 and r.decoding_time > 0
    jpeg = results.curves[1].summary()
    assert np.all(np.diff(jpeg["bpp"]) > 0) and np.all(np.diff(jpeg["psnr-rgb"]) > 0)
    assert jpeg["bpp"][0] == pytest.approx(np.mean([r.bpp for r in results.curves[1].records[:2]]))


def test_harness_writes_compressai_json_csv_png_and_table(report):
    from compressai.utils.plot.__main__ import parse_json_file

    results, paths, out = report
    assert {p.name for p in out.iterdir()} == {"mbt2018-mean-vr.json", "jpeg.json", "webp.json",
                                             "per_image.csv", "rd.png", "bdrate.md", ".ncodec-report"}
    for curve in results.curves:
        doc = json.loads((out / f"{curve.key}.json").read_text())
        assert set(doc) == {"name", "description", "results", "qualities"}
        assert set(doc["results"]) == RESULT_KEYS
        assert all(len(v) == len(curve.settings) for v in doc["results"].values())
        assert doc["results"]["ms-ssim-rgb"] == [None] * len(curve.settings)      # small images
        parsed = parse_json_file(out / f"{curve.key}.json", "psnr")              # CompressAI reads it
        assert parsed["name"] == curve.name and parsed["xs"] == doc["results"]["bpp"]
    with open(paths["per_image"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (2 + 11 + 11)
    assert rows[0]["codec"] == "mbt2018-mean-vr" and int(rows[0]["bytes"]) == results.records[0].bytes
    assert paths["rd"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = paths["bdrate"].read_text()
    assert "| JPEG |" in table and "| WebP |" in table and "BD-rate (PSNR-RGB)" in table


def _synthetic_curve(key, name, learned, rates, psnrs, ms):
    records = [Record(key, q, "img.png", 200, 200, int(r * 5000), r, p, m, 0.01, 0.01)
               for q, r, p, m in zip(range(1, len(rates) + 1), rates, psnrs, ms)]
    return Curve(key, name, "synthetic", learned, list(range(1, len(rates) + 1)), records)


def test_bdrate_table_values():
    rates, psnrs, ms = [0.2, 0.4, 0.8, 1.6], [28.0, 31.0, 34.0, 37.0], [0.90, 0.95, 0.98, 0.99]
    results = EvalResults(inputs=[Path("img.png")], curves=[
        _synthetic_curve("mine", "ncodec mine", True, [0.9 * r for r in rates], psnrs, ms),
        _synthetic_curve("jpeg", "JPEG", False, rates, psnrs, ms),
        _synthetic_curve("webp", "WebP", False, rates, [p - 10 for p in psnrs], ms),
    ])
    table = bdrate_markdown(results)
    assert "| JPEG | -10.00 % | -10.00 % | " in table
    assert "| WebP | n/a: the curves' quality ranges do not overlap |" in table


# --------------------------------------------------------------------------- command

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncodec")
    add_eval_parser(parser.add_subparsers(dest="command"))
    return parser


def test_run_eval_through_argparse(crops, tmp_path, capsys):
    out = tmp_path / "out"
    args = _parser().parse_args(["eval", str(crops), "--codec", "mbt2018-mean-vr", "--qualities", "1",
                                 "--baselines", "none", "--limit", "1", "--out", str(out), "--no-progress"])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "ncodec mbt2018-mean-vr" in printed and str(out / "bdrate.md") in printed
    doc = json.loads((out / "mbt2018-mean-vr.json").read_text())
    assert doc["qualities"] == [1] and len(doc["results"]["bpp"]) == 1
    assert not (out / "jpeg.json").exists()
    assert len((out / "per_image.csv").read_text().splitlines()) == 2     # header + 1 image


def test_run_eval_user_errors(crops, tmp_path):
    parser = _parser()
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [([str(tmp_path / "missing")], "no such file"),
             ([str(empty)], "no .png"),
             ([str(crops), "--baselines", "jpeg,bpg"], "unknown baseline"),
             ([str(crops), "--codec", "mbt2018-mean-vr", "--qualities", "99", "--baselines", "none"],
              "qualities"),
             ([str(crops), "--codec", "nope", "--baselines", "none"], "unknown codec")]
    for argv, message in cases:
        args = parser.parse_args(["eval", *argv, "--out", str(tmp_path / "o"), "--no-progress"])
        with pytest.raises(ValueError, match=message):
            args.handler(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", str(crops), "--qualities", "a,b"])
    assert [p.name for p in collect_inputs([crops / "962312_gray_crop.png", crops])[1]] == [
        "1025469_crop.png", "962312_gray_crop.png"]


def test_two_learned_codecs_in_one_run(crops):
    from ncodec.eval.image import bd_rows, bdrate_markdown

    images = collect_inputs([crops])[1][:1]
    results = evaluate(images, ["mbt2018-mean-vr", "elic-gdn-vr"], [1, 2], ["jpeg"], progress=False)
    assert [c.key for c in results.codecs] == ["mbt2018-mean-vr", "elic-gdn-vr"]
    rows = bd_rows(results)
    assert [(r["codec"], r["baseline"]) for r in rows] == [("mbt2018-mean-vr", "jpeg"),
                                                           ("elic-gdn-vr", "jpeg")]
    table = bdrate_markdown(results)
    assert "ncodec elic-gdn-vr | JPEG" in table and "ncodec mbt2018-mean-vr | JPEG" in table


def test_eval_never_overwrites_a_report_by_surprise(crops, tmp_path):
    """A non-empty --out needs --force, checked before any work; --force removes what the
    previous report wrote (no stale files) and nothing else."""
    from ncodec.eval import core

    out = tmp_path / "out"
    common = [str(crops), "--codec", "mbt2018-mean-vr", "--qualities", "1", "--limit", "1",
              "--out", str(out), "--no-progress"]
    args = _parser().parse_args(["eval", *common, "--baselines", "jpeg"])
    assert args.handler(args) == 0
    assert (out / "jpeg.json").is_file()
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def no_work(*_args, **_kwargs):
        raise AssertionError("evaluation started before --out was checked")

    args = _parser().parse_args(["eval", *common, "--baselines", "none"])
    original = core.evaluate
    core.evaluate = no_work
    try:
        with pytest.raises(FileExistsError, match="--force"):
            args.handler(args)
    finally:
        core.evaluate = original
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    args = _parser().parse_args(["eval", *common, "--baselines", "none", "--force"])
    assert args.handler(args) == 0
    names = {p.name for p in out.iterdir()}
    assert "jpeg.json" not in names and "notes.txt" in names and "mbt2018-mean-vr.json" in names
