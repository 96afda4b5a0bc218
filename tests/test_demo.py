"""`ncodec demo`: the shipped learned codecs on the bundled media, beside classical codecs, with
real figures (the README's first command)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncodec.eval.bdrate import bd_rate
from ncodec.eval.demo import IMAGE_QUALITIES, OPUS_KBPS


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[str, Path]:
    """The demo run as a user runs it (its own process), with its reports in a folder."""
    out = tmp_path_factory.mktemp("demo") / "reports"
    proc = subprocess.run([sys.executable, "-m", "ncodec", "demo", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, out


def _results(folder: Path, key: str) -> dict:
    return json.loads((folder / f"{key}.json").read_text())["results"]


def test_demo_prints_the_tables(demo):
    printed, out = demo
    for text in ("Images: 2 bundled photos (512x512 px)", "ncodec elic-gdn-vr", "JPEG", "WebP", "AVIF",
                 "Speech: 2 bundled LibriSpeech utterances", "ncodec speech-rvq-16k", "Opus",
                 "BD-rate of ncodec elic-gdn-vr", "vs JPEG: PSNR", "BD-rate of ncodec speech-rvq-16k"):
        assert text in printed
    assert {p.name for p in (out / "image").iterdir()} >= {"elic-gdn-vr.json", "jpeg.json", "webp.json", "avif.json",
                                                            "per_image.csv", "rd.png", "bdrate.md", ".ncodec-report"}
    assert {p.name for p in (out / "audio").iterdir()} >= {"speech-rvq-16k.json", "opus.json", "per_file.csv",
                                                            "summary.md", "rd.png", ".ncodec-report"}


def test_image_figures_are_real(demo):
    _, out = demo
    learned, jpeg = _results(out / "image", "elic-gdn-vr"), _results(out / "image", "jpeg")
    assert len(learned["bpp"]) == len(IMAGE_QUALITIES)
    for res in (learned, jpeg, _results(out / "image", "webp"), _results(out / "image", "avif")):
        assert all(math.isfinite(v) for k in ("bpp", "psnr-rgb", "ms-ssim-rgb") for v in res[k])
        assert np.all(np.diff(res["bpp"]) > 0) and np.all(np.diff(res["psnr-rgb"]) > 0)   # more bits, better
        assert 0.03 < res["bpp"][0] and res["bpp"][-1] < 2 and 22 < res["psnr-rgb"][0] and res["psnr-rgb"][-1] < 45
    # At its lowest rate the learned codec beats JPEG's PSNR at a similar bpp by a clear margin
    # (JPEG's blocks fall apart there), and it needs fewer bits than JPEG for the same MS-SSIM.
    near = int(np.argmin([abs(math.log(b / learned["bpp"][0])) for b in jpeg["bpp"]]))
    assert abs(jpeg["bpp"][near] / learned["bpp"][0] - 1) < 0.25
    assert learned["psnr-rgb"][0] > jpeg["psnr-rgb"][near] + 1.0
    to_db = [[-10 * math.log10(1 - v) for v in r["ms-ssim-rgb"]] for r in (jpeg, learned)]
    assert bd_rate(jpeg["bpp"], to_db[0], learned["bpp"], to_db[1]) < 0


def test_audio_figures_are_real(demo):
    _, out = demo
    learned, opus = _results(out / "audio", "speech-rvq-16k"), _results(out / "audio", "opus")
    doc = json.loads((out / "audio" / "speech-rvq-16k.json").read_text())
    for res, targets in ((learned, doc["target_kbps"]), (opus, list(OPUS_KBPS))):
        assert all(math.isfinite(v) for k in ("kbps", "pesq", "stoi") for v in res[k])
        assert all(1.0 <= v <= 4.65 for v in res["pesq"]) and all(0 < v <= 1 for v in res["stoi"])
    # The learned codec's files cost about what its bitrates say (container included: short
    # files pay for it, the token context model takes 12-20 % off the codes), and stay
    # intelligible at its lowest rate, where Opus is not.
    for kbps, target in zip(learned["kbps"], doc["target_kbps"]):
        assert 0.75 * target <= kbps < 1.4 * target
    assert learned["stoi"][0] > 0.75 and opus["stoi"][0] < learned["stoi"][0]
    assert np.all(np.diff(opus["kbps"]) > 0) and opus["pesq"][-1] > 3.5       # Opus at 12 kbps: good speech


def test_demo_errors_are_one_line(tmp_path, demo):
    _, out = demo
    proc = subprocess.run([sys.executable, "-m", "ncodec", "demo", "--threads", "0"], capture_output=True, text=True)
    assert proc.returncode == 2 and "positive integer" in proc.stderr
    # Reports already there are not replaced without --force, and nothing runs.
    proc = subprocess.run([sys.executable, "-m", "ncodec", "demo", "--out", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "--force" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ncodec", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("ncodec ")
