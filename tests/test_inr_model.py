"""INR image model (work in progress for inr-image): causal ARM contexts, shapes, and a fit
that learns a small real image."""

from __future__ import annotations

from pathlib import Path

import torch

from ncodec.io import read_rgb
from ncodec.models.inr import CONTEXT, InrConfig, InrImageModel, arm_contexts
from ncodec.models.inr_fit import fit_image, quantized_latents

PHOTO = sorted((Path(__file__).resolve().parents[1] / "ncodec" / "data" / "images").glob("*.png"))[0]


def test_arm_contexts_are_causal_and_allow_a_wavefront():
    h, w = 6, 9
    grid = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, 1, h, w)  # raster index + 1
    ctx = arm_contexts(grid)
    own = torch.arange(1, h * w + 1, dtype=torch.float32).view(-1, 1)
    assert ctx.shape == (h * w, len(CONTEXT))
    assert ((ctx == 0) | (ctx < own)).all()  # only values decoded before (or zeros off the grid)
    # value (y, x) can be decoded at step x + 3y: every neighbour's step is earlier
    assert all(dx + 3 * dy < 0 for dy, dx in CONTEXT)
    # a value in the middle sees exactly its CONTEXT neighbours
    y, x = 4, 5
    expected = torch.tensor([grid[0, 0, y + dy, x + dx] for dy, dx in CONTEXT])
    assert torch.equal(ctx[y * w + x], expected)


def test_shapes_for_odd_sizes():
    model = InrImageModel(37, 53, InrConfig(levels=4))
    assert [tuple(y.shape[-2:]) for y in model.latents] == [(37, 53), (19, 27), (10, 14), (5, 7)]
    latents = [torch.randn_like(y) for y in model.latents]
    assert model.upsample(latents).shape == (1, 4, 37, 53)
    assert model.synthesize(latents).shape == (1, 3, 37, 53)
    bits = model.rate_bits([y.round() for y in latents])
    assert torch.isfinite(bits) and bits > 0
    assert 500 < model.macs_per_pixel() < 5000


def test_fit_learns_a_real_image():
    photo = read_rgb(PHOTO).float().unsqueeze(0) / 255
    x = torch.nn.functional.interpolate(photo, size=(64, 96), mode="area")[0]  # the whole photo, small
    result = fit_image(x, 1e-3, config=InrConfig(levels=4, synthesis_hidden=(16,)), iterations=150, log_every=10)
    model = result.model
    latents = quantized_latents(model)
    r = model.config.latent_range
    assert all(float(y.abs().max()) <= r and torch.equal(y, y.round()) for y in latents)
    with torch.no_grad():
        mse = float((model.synthesize(latents).clamp(0, 1)[0] - x).pow(2).mean())
        bpp = float(model.rate_bits(latents)) / x[0].numel()
    flat = float((x - x.mean((1, 2), keepdim=True)).pow(2).mean())  # the best constant colour
    assert mse < 0.5 * flat and 0 < bpp < 4
    assert result.iterations == 150 and result.log[0]["phase"] == "noise" and result.log[-1]["phase"] == "round"


def test_network_quantisation_picks_steps_and_counts_bits():
    from ncodec.models.inr_fit import PARAMETER_STEPS, parameter_bits, quantize_network

    photo = read_rgb(PHOTO).float().unsqueeze(0) / 255
    x = torch.nn.functional.interpolate(photo, size=(32, 48), mode="area")[0]
    model = fit_image(x, 1e-3, config=InrConfig(levels=3, synthesis_hidden=(8,)), iterations=40).model
    info = quantize_network(model, x, 1e-3)
    for name, module in (("arm", model.arm), ("synthesis", model.synthesis)):
        step = info[name]["step"]
        assert step in PARAMETER_STEPS and info[name]["bits"] > 0
        for p in module.parameters():
            assert torch.equal(p / step, (p / step).round())  # every parameter a multiple of its step
    assert info["bpp"] > info["latent_bits"] / x[0].numel() and 0 < info["mse"] < 0.1
    # more spread costs more bits; the bits are those of a real coded substream
    small, large = torch.randint(-2, 3, (500,)), torch.randint(-200, 201, (500,))
    assert 8 <= parameter_bits(small) < parameter_bits(large)
