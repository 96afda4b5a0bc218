"""Variable-rate models: the mean-scale hyperprior with gains and the checkerboard context model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ncodec
from ncodec.codecs.image import ImageCodec
from ncodec.models import image as image_models

ROOT = Path(__file__).resolve().parents[1]
PHOTO = sorted((ROOT / "ncodec" / "data" / "images").glob("*.png"))[0]


def _image(h: int = 136, w: int = 200) -> torch.Tensor:
    arr = np.asarray(Image.open(PHOTO).convert("RGB"))[100:100 + h, 50:50 + w]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _busy(arch: str, seed: int = 0) -> torch.nn.Module:
    """A seeded model whose latents are large enough to need many symbols (untrained
    analysis transforms give |y| < 0.3), with non-zero context corrections."""
    torch.manual_seed(seed)
    model = image_models.build_image_model(arch, quality=1)
    with torch.no_grad():
        last = [m for m in model.g_a.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(30)
        last.bias.mul_(30)
        for agg in getattr(model, "aggregation", []):
            torch.nn.init.normal_(agg[-1].weight, std=0.05)
    return model.eval()


@pytest.fixture(scope="module", params=["mbt2018-mean-vr", "elic-gdn-vr"])
def busy(request):
    model = _busy(request.param)
    model.update(force=True)
    return request.param, model


def test_every_quality_round_trips_and_rate_grows(busy):
    arch, model = busy
    x = _image()
    sizes = []
    for q in model.qualities:
        codec = ImageCodec(arch, q, model, fast=False)  # the model's own path: exact
        data = codec.compress(x)
        out = codec.decompress(data).tensor
        # The default (fast) codec reads the same file to within float rounding of g_s, and
        # its own files (bf16 analysis where supported) decode on the exact path.
        fast = ImageCodec(arch, q, model)
        assert fast.fast
        assert torch.allclose(fast.decompress(data).tensor, out, atol=1e-4)
        assert codec.decompress(fast.compress(x)).shape == out.shape
        padded = torch.nn.functional.pad(x.float()[None] / 255, (0, -200 % 64, 0, -136 % 64), mode="replicate")
        with torch.no_grad():
            reference = model(padded, q)["x_hat"].clamp(0, 1)[0, :, :136, :200]
        # Decoding reproduces the model's own eval-mode reconstruction (same rounding).
        assert torch.allclose(out, reference, atol=1e-5), (arch, q)
        sizes.append(len(data))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1], sizes


def test_batch_is_a_loop_of_singles(busy):
    arch, model = busy
    codec = ImageCodec(arch, 3, model)
    a, b = _image(), _image().flip(-1).contiguous()
    assert codec.compress(torch.stack([a, b])) == [codec.compress(a), codec.compress(b)]


def test_qualities_share_weights_but_not_files(busy):
    arch, model = busy
    x = _image()
    low, high = ImageCodec(arch, 1, model), ImageCodec(arch, 5, model)
    assert low.fingerprint == high.fingerprint
    data = low.compress(x)
    # Same fingerprint, so the header's quality is what keeps the other quality's codec
    # from decoding garbage.
    assert ncodec.codecs.container.read_header(data).meta["quality"] == 1
    with pytest.raises(ncodec.BitstreamError, match="quality 1"):
        high.decompress(data)
    assert low.decompress(data).shape == x.shape


def test_context_model_starts_as_the_hyperprior():
    """Zero-initialised corrections: the context model warm-started from the hyperprior's
    weights estimates exactly the hyperprior's rate, and its decoder reconstructs the same."""
    torch.manual_seed(1)
    hyper = _busy("mbt2018-mean-vr", seed=1)
    context = image_models.build_image_model("elic-gdn-vr", quality=1).eval()
    missing, unexpected = context.load_state_dict(hyper.state_dict(), strict=False)
    assert not unexpected and all(k.split(".")[0] in ("channel_context", "spatial_context", "aggregation")
                                  for k in missing)
    x = _image().float()[None] / 255
    x = torch.nn.functional.pad(x, (0, 56, 0, 56), mode="replicate")
    for q in (1, 4):
        assert image_models.estimate_bits(context, x, q) == pytest.approx(image_models.estimate_bits(hyper, x, q),
                                                                          rel=1e-6)


def test_damaged_context_stream_is_rejected():
    model = _busy("elic-gdn-vr")
    model.update(force=True)
    codec = ImageCodec("elic-gdn-vr", 2, model)
    out = model.compress(torch.nn.functional.pad(_image().float()[None] / 255, (0, 56, 0, 56)), quality=2)
    y, z = out["strings"][0][0], out["strings"][1]
    with pytest.raises(ncodec.BitstreamError):
        model.decompress([[y[: len(y) // 2]], z], out["shape"], quality=2)
    assert codec.name == "elic-gdn-vr"
