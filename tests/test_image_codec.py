"""Image codec objects through the public API: ncodec.load / compress / decompress."""

from __future__ import annotations

import os
from functools import lru_cache

import pytest
import torch

import ncodec
from ncodec.codecs import container
from ncodec.io import read_image

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = sorted(os.path.join(HERE, "data", "images", f) for f in os.listdir(os.path.join(HERE, "data", "images"))
                if f.endswith((".png", ".jpg")))
# Amortized codecs (an encoder network); the overfitted ones fit per image: tests/test_inr_image.py.
ARCHS = [info.name for info in ncodec.list_codecs() if info.modality == "image" and info.family == "amortized"]


@lru_cache(maxsize=None)
def codec(arch: str, quality: int = 1):
    return ncodec.load(arch, quality, untrained=True)


def test_registry_lists_the_image_codecs_with_one_default():
    infos = [i for i in ncodec.list_codecs() if i.modality == "image"]
    assert {"bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "elic2022"} <= {i.name for i in infos}
    assert sum(i.default for i in infos) == 1
    for i in infos:
        assert i.default_quality in i.qualities


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_real_images(arch):
    c = codec(arch)
    for path in IMAGES:
        x = read_image(path)
        data = c.compress(x)
        x_hat = c.decompress(data).tensor
        assert x_hat.shape == x.shape and x_hat.dtype == torch.float32
        assert 0 <= float(x_hat.min()) and float(x_hat.max()) <= 1
        # ncodec.decompress picks codec and quality from the header: same result.
        assert torch.equal(ncodec.decompress(data).tensor, x_hat)


@pytest.mark.parametrize("arch", ARCHS)
def test_header_fields(arch):
    x = read_image(IMAGES[0])
    data = codec(arch).compress(x)
    header = container.read_header(data)
    assert header.codec == arch and header.modality == "image"
    assert header.fingerprint == codec(arch).fingerprint and len(header.fingerprint) == 32
    meta = header.meta
    assert (meta["height"], meta["width"], meta["channels"]) == (x.shape[1], x.shape[2], x.shape[0])
    assert meta["bit_depth"] == 8 and meta["quality"] == 1
    assert meta["color"] == ("gray" if x.shape[0] == 1 else "rgb")
    summary = container.ContainerReader(data).summary()
    assert summary["file_size"] == len(data)


def test_batch_equals_loop_of_singles():
    c = codec("mbt2018-mean")
    x = read_image(IMAGES[1])
    batch = torch.stack([x, x.flip(-1)])
    assert c.compress(batch) == [c.compress(batch[0]), c.compress(batch[1])]


def test_uint8_and_float_inputs_give_the_same_bytes():
    c = codec("bmshj2018-hyperprior")
    x = read_image(IMAGES[1])
    assert c.compress(x) == c.compress(x.float() / 255)


def test_grayscale_comes_back_grayscale():
    gray = next(p for p in IMAGES if "gray" in p)
    x = read_image(gray)
    assert x.shape[0] == 1
    assert codec("bmshj2018-factorized").decompress(codec("bmshj2018-factorized").compress(x)).shape == x.shape


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(3, 16, 16, dtype=torch.int16), "16-bit"),
    (torch.zeros(4, 16, 16, dtype=torch.uint8), "alpha"),
    (torch.zeros(3, 0, 16, dtype=torch.uint8), "empty"),
    (torch.zeros(16, 16, dtype=torch.uint8), "shape"),
    (torch.full((3, 8, 8), 1.5), r"\[0, 1\]"),
    (torch.full((3, 8, 8), float("nan")), r"\[0, 1\]"),
    (torch.zeros(5, 8, 8), "channels"),
])
def test_unsupported_input_is_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        codec("bmshj2018-factorized").compress(bad)


def test_damaged_or_foreign_files_raise_bitstream_error():
    c = codec("mbt2018-mean")
    data = c.compress(read_image(IMAGES[0]))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    for bad in (bytes(flipped), data[: len(data) - 20], b"\x89PNG\r\n\x1a\n" + data[8:], b""):
        with pytest.raises(ncodec.BitstreamError):
            c.decompress(bad)
        with pytest.raises(ncodec.BitstreamError):
            ncodec.decompress(bad)
    # Another quality has other weights: the fingerprint says so.
    with pytest.raises(ncodec.BitstreamError, match="fingerprint"):
        codec("mbt2018-mean", 2).decompress(data)
    with pytest.raises(ncodec.BitstreamError, match="made by codec"):
        codec("bmshj2018-hyperprior").decompress(data)


def test_load_rejects_unknown_codec_and_quality():
    with pytest.raises(ValueError, match="unknown codec"):
        ncodec.load("nope")
    with pytest.raises(ValueError, match="qualities"):
        ncodec.load("mbt2018-mean", 42, untrained=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_and_cpu_decode_each_others_files():
    x = read_image(IMAGES[1])
    cpu, gpu = ncodec.load("mbt2018-mean", 1, untrained=True), ncodec.load("mbt2018-mean", 1, device="cuda", untrained=True)
    assert gpu.decompress(cpu.compress(x)).shape == x.shape
    assert cpu.decompress(gpu.compress(x)).shape == x.shape
