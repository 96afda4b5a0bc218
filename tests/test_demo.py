"""`ncodec demo`: the README's main job codes the bundled real media exactly."""

import json
import subprocess
import sys

import pytest
import torch

from ncodec import demo
from ncodec.cli import main


def test_demo_round_trips_bundled_media(tmp_path, capsys):
    out = tmp_path / "demo.json"
    assert main(["demo", "--threads", "2", "--json", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Summary:" in printed
    report = json.loads(out.read_text())
    assert len(report["images"]) == 2 and len(report["audio"]) == 2
    for item in report["images"] + report["audio"]:
        assert item["exact"] is True
    # Lossless coding of real photos and speech lands near PNG and FLAC, not far off.
    for item in report["images"]:
        assert 0.7 < item["ncodec_bytes"] / item["png_bytes"] < 1.1
    for item in report["audio"]:
        assert 0.7 < item["ncodec_bytes"] / item["flac_bytes"] < 1.1
    # The learned codec section: real lossy coding with the shipped weights, WebP beside it.
    assert len(report["learned"]) == 2 and "Learned image codec" in printed
    for item in report["learned"]:
        assert item["psnr_db"] > 22 and 0 < item["bits_per_pixel"] < 4
        assert item["webp_bytes"] <= item["ncodec_bytes"] or item["webp_quality"] == 0


def test_demo_image_codec_rejects_corruption():
    rgb = torch.randint(0, 256, (3, 37, 53), dtype=torch.uint8)
    encoded = demo.encode_image(rgb)
    assert torch.equal(demo.decode_image(encoded.data), rgb)
    with pytest.raises(ValueError):
        demo.decode_image(encoded.data[: len(encoded.data) // 2])


def test_cli_errors_are_one_line():
    proc = subprocess.run([sys.executable, "-m", "ncodec", "demo", "--threads", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "positive integer" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ncodec", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("ncodec ")
