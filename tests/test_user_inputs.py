"""What a new user hits first: arguments, inputs and headers that must work or fail clearly."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ncodec
from ncodec.cli import main
from ncodec.codecs import container
from ncodec.io import image_bytes, read_image

PHOTO = Path(__file__).resolve().parent / "data" / "images" / "1025469_crop.jpg"


@pytest.mark.parametrize("quality", [2.5, "3", True])
def test_quality_must_be_an_int(quality):
    with pytest.raises(ValueError, match="quality must be an int"):
        ncodec.load("elic-gdn-vr", quality)


def test_modality_is_checked_and_devices_are_refused_clearly():
    with pytest.raises(ValueError, match="codes image, not audio"):
        ncodec.load("elic-gdn-vr", modality="audio")
    for device in ("mps", "meta", "nonsense"):
        with pytest.raises(ValueError, match="cpu' or 'cuda"):
            ncodec.load("elic-gdn-vr", 1, device=device)
    proc = subprocess.run([sys.executable, "-m", "ncodec", "encode", str(PHOTO), "x.ncb", "--device", "mps"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "'cpu' or 'cuda'" in proc.stderr


def test_compress_takes_pil_images_and_paths_and_explains_hwc():
    codec = ncodec.load("bmshj2018-factorized", 1, untrained=True)
    from_path = codec.compress(str(PHOTO))
    with Image.open(PHOTO) as im:
        assert codec.compress(im) == from_path
    assert codec.compress(read_image(PHOTO)) == from_path
    hwc = read_image(PHOTO).permute(1, 2, 0)
    with pytest.raises(ValueError, match=r"looks like \[H, W, C\].*permute"):
        codec.compress(hwc)
    with pytest.raises(ValueError, match="PIL image or a file path"):
        codec.compress(object())


def test_exif_orientation_is_applied(tmp_path):
    upright = read_image(PHOTO)
    rotated = tmp_path / "rotated.jpg"
    with Image.open(PHOTO) as im:
        exif = im.getexif()
        exif[0x0112] = 6  # "rotate 90 CW to view": the stored pixels lie on their side
        im.transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif, quality=100)
    back = read_image(rotated)
    assert back.shape == upright.shape
    assert (back.float() - upright.float()).abs().mean() < 6  # the same picture, one more JPEG generation


def test_sixteen_bit_images_are_refused(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")
    data = np.ascontiguousarray((np.arange(32 * 32 * 3).reshape(32, 32, 3) * 60).astype(np.uint16))
    for name, array in (("rgb16.png", data), ("gray16.png", np.ascontiguousarray(data[..., 0]))):
        path = tmp_path / name
        path.write_bytes(imagecodecs.png_encode(array))
        with pytest.raises(ValueError, match=f"{name}: 16-bit"):
            read_image(path)


@pytest.mark.parametrize("suffix, kind", [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"), (".tif", "TIFF"),
                                          (".bmp", "BMP")])
def test_decoded_images_are_written_in_the_format_their_name_says(suffix, kind):
    x = read_image(PHOTO)
    with Image.open(io.BytesIO(image_bytes(x, suffix))) as im:
        assert im.format == kind
        if kind != "JPEG":  # lossless formats keep the pixels
            assert np.array_equal(np.asarray(im.convert("RGB")), x.permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="cannot write '.xyz'"):
        image_bytes(x, ".xyz")


def test_headers_with_bools_or_the_wrong_modality_are_refused(tmp_path, capsys):
    data = ncodec.load("bmshj2018-factorized", 1, untrained=True).compress(read_image(PHOTO))
    header, chunks = container.unpack(data)
    for meta in ({"height": True}, {"width": True}, {"channels": True}, {"quality": True}):
        with pytest.raises(ncodec.BitstreamError):
            ncodec.decompress(container.pack(replace(header, meta={**header.meta, **meta}), chunks))
    as_audio = container.pack(replace(header, modality="audio"), chunks)
    with pytest.raises(ncodec.BitstreamError, match="modality 'audio'"):
        ncodec.decompress(as_audio)
    path = tmp_path / "forged.ncb"
    path.write_bytes(as_audio)
    assert main(["decode", str(path), str(tmp_path / "out.wav")]) == 1
    err = capsys.readouterr().err
    # The CLI checks the header as ncodec.decompress does (one check, one message).
    assert err.startswith("ncodec: error:") and "modality 'audio'" in err and "codes image" in err


def test_cli_errors_name_the_input_file(tmp_path, capsys):
    import soundfile as sf

    truncated = tmp_path / "truncated.png"
    with open(PHOTO, "rb") as f:
        Image.open(f).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    nine = tmp_path / "nine.wav"
    sf.write(nine, np.zeros((1600, 9), dtype=np.float32), 16000)
    slow = tmp_path / "slow.wav"
    sf.write(slow, np.zeros((500, 1), dtype=np.float32), 500)
    for src in (truncated, nine, slow):
        assert main(["encode", str(src), str(tmp_path / (src.stem + ".ncb"))]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ncodec: error:") and src.name in err[0], err


def test_untrained_architectures_are_not_codecs_to_pick(tmp_path, capsys):
    for name in ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "elic2022", "audio-rvq-24k"):
        with pytest.raises(ValueError, match="no trained weights.*untrained=True"):
            ncodec.load(name)
    assert ncodec.load("mbt2018-mean", 1, untrained=True).name == "mbt2018-mean"
    assert main(["encode", str(PHOTO), str(tmp_path / "x.ncb"), "--codec", "mbt2018-mean"]) == 1
    assert "no trained weights" in capsys.readouterr().err
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    trained, _, untrained = out.partition("Architectures without trained weights")
    assert "elic-gdn-vr (default)" in trained and "mbt2018-mean-vr" in trained
    assert "bmshj2018-factorized" not in trained and "bmshj2018-factorized" in untrained
    # Files an untrained architecture wrote still decode (its seeded weights are the same everywhere).
    data = ncodec.load("bmshj2018-factorized", 1, untrained=True).compress(read_image(PHOTO))
    assert ncodec.decompress(data).shape == read_image(PHOTO).shape
