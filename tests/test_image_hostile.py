"""Hostile image files that pass the container's CRCs: forged headers and streams must raise
BitstreamError quickly, without large allocations, never crash."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

import ncodec
from ncodec.codecs import container

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def original():
    codec = ncodec.load("mbt2018-mean", 1, untrained=True)
    g = torch.Generator().manual_seed(0)
    data = codec.compress(torch.randint(0, 256, (3, 70, 90), generator=g, dtype=torch.uint8))
    header, chunks = container.unpack(data)
    return codec, header, chunks


def forge(header, chunks, **meta):
    return container.pack(replace(header, meta={**header.meta, **meta}), chunks)


@pytest.mark.parametrize("meta, message", [
    ({"width": 1 << 16, "height": 1 << 16}, "pixel limit"),
    ({"width": 0}, "invalid width"),
    ({"width": "90"}, "invalid width"),
    ({"channels": 4}, "channels"),
    ({"latent_shape": [1 << 20, 1 << 20]}, "out of range"),
    ({"latent_shape": [[[[[[1]]]]]]}, "nested too deep"),
    ({"latent_shape": "3x4"}, "malformed"),
    ({"latent_shape": [1, 1]}, "smaller than|does not fit|symbols"),
    ({"latent_shape": [9, 9]}, "does not fit|symbols|smaller"),
])
def test_forged_headers_are_rejected(original, meta, message):
    codec, header, chunks = original
    with pytest.raises(ncodec.BitstreamError, match=message):
        codec.decompress(forge(header, chunks, **meta))


def test_forged_streams_are_rejected(original):
    codec, header, chunks = original
    for streams in ([chunks[0][0]], [b"", b""], [chunks[0][1], chunks[0][0]], [b"\x01\x05\x80\x80\x04\x00", chunks[0][1]]):
        bad = container.pack(replace(header, substreams=tuple(f"s{i}" for i in range(len(streams)))), [streams])
        with pytest.raises(ncodec.BitstreamError):
            codec.decompress(bad)


def test_random_crc_valid_streams_in_subprocess():
    """Random substream bytes behind valid CRCs: decode or BitstreamError, nothing else."""
    code = r'''
import random, torch, ncodec
from dataclasses import replace
from ncodec.codecs import container
codec = ncodec.load("bmshj2018-hyperprior", 1, untrained=True)
data = codec.compress(torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8))
header, chunks = container.unpack(data)
rng = random.Random(3)
counts = {"decoded": 0, "BitstreamError": 0}
for i in range(300):
    streams = [bytearray(s) for s in chunks[0]]
    s = streams[rng.randrange(len(streams))]
    for _ in range(rng.randint(1, 6)):
        if s and rng.random() < 0.7:
            s[rng.randrange(len(s))] = rng.randrange(256)
        else:
            s.insert(rng.randrange(len(s) + 1), rng.randrange(256))
    try:
        codec.decompress(container.pack(header, [[bytes(x) for x in streams]]))
        counts["decoded"] += 1
    except ncodec.BitstreamError:
        counts["BitstreamError"] += 1
print(" ".join(f"{k}={v}" for k, v in counts.items()))
'''
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = dict(re.findall(r"(\w+)=(\d+)", proc.stdout))
    assert int(counts["decoded"]) + int(counts["BitstreamError"]) == 300


def test_self_consistent_extreme_latents_give_finite_pixels():
    """A forged file whose y stream is valid for the decoder (the rows it derives from z, the
    right symbol check) but holds int32 extremes: the decoder clamps latents as its exact
    layers do, so it returns finite pixels in [0, 1], never NaN (or BitstreamError)."""
    from ncodec.entropy import coder as ncodec_coder

    codec = ncodec.load("mbt2018-mean-vr", 2)
    model = codec.model
    data = codec.compress(torch.full((3, 64, 64), 128, dtype=torch.uint8))
    header, chunks = container.unpack(data)
    y, z = chunks[0]
    with torch.inference_mode():
        z_hat = model.entropy_bottleneck.decompress([z], torch.Size(header.meta["latent_shape"]))
        gain, _ = model.exact_gains(2)
        scales, _ = model.gained_parameters(model.exact_hyper(z_hat), gain)
        indexes = model.scale_indexes(scales)
    n = indexes.numel()
    extremes = torch.tensor([2**31 - 1, -(2**31)], dtype=torch.int32).repeat((n + 1) // 2)[:n]
    forged_y = ncodec_coder.encode(extremes, indexes.reshape(-1), *model._gaussian_table())
    x_hat = codec.decompress(container.pack(header, [[forged_y, z]])).tensor
    assert torch.isfinite(x_hat).all() and x_hat.min() >= 0 and x_hat.max() <= 1
