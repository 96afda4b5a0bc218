"""INR image model (work in progress for inr-image): causal ARM contexts, shapes, and a fit
that learns a small real image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import torch.nn.functional as F

from ncodec.io import read_rgb
from ncodec.models.inr import CONTEXT, PRESETS, InrConfig, InrImageModel, _ArmRate, arm_contexts, context_columns
from ncodec.models.inr_coding import encode_network
from ncodec.models.inr_fit import fit_image
from ncodec.models.inr_quantize import module_groups, network_layers, quantized_latents

PHOTO = sorted((Path(__file__).resolve().parents[1] / "ncodec" / "data" / "images").glob("*.png"))[0]


@pytest.fixture
def one_thread():
    """Tiny fits gain nothing from threads, and on a busy CPU an OpenMP team waiting for a
    descheduled thread can make them 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def test_presets_complexity():
    macs = {name: InrImageModel(512, 512, config).macs_per_pixel() for name, config in PRESETS.items()}
    # Cool-chic's classes: "hop" 1,000-2,000, and a light one under half of the default
    assert 1000 <= macs["default"] <= 2000 and 500 <= macs["light"] <= macs["default"] / 2
    with pytest.raises(ValueError):
        InrImageModel(8, 8, InrConfig(upsampler_kernel=5))
    with pytest.raises(ValueError):
        InrImageModel(8, 8, InrConfig(ancestor_context=16))


def test_bilinear_start():
    """Initialised upsampler and a constant grid: every level's map stays that constant."""
    for kernel in (4, 6, 8):
        model = InrImageModel(20, 28, InrConfig(levels=3, upsampler_kernel=kernel))
        maps = model.upsample([torch.full_like(y, 2.0) for y in model.latents])
        assert torch.allclose(maps, torch.full_like(maps, 2.0), atol=1e-5)


def _reference_synthesis(model: InrImageModel, latents: list[torch.Tensor]) -> torch.Tensor:
    """The model's function written plainly (NCHW, one grid at a time): what a decoder computes."""
    k = model.config.upsampler_kernel
    p = k // 4
    maps = []
    for level, y in enumerate(latents):
        for target in range(level - 1, -1, -1):  # x2, cropped to the next finer grid's size
            up = F.conv_transpose2d(F.pad(y, (p, p, p, p), mode="replicate"), model.upsampler.weight, stride=2,
                                    padding=k // 2 - 1)
            h, w = latents[target].shape[-2:]
            y = up[..., 2 * p: 2 * p + h, 2 * p: 2 * p + w]
        maps.append(y)
    x = torch.cat(maps, 1)
    for i, layer in enumerate(model.synthesis):
        x = F.conv2d(x, layer.weight[:, :, None, None], layer.bias)
        x = F.relu(x) if i < len(model.synthesis) - 1 else x
    for i, conv in enumerate(model.residual):
        x = x + conv(x)
        x = F.relu(x) if i < len(model.residual) - 1 else x
    return x


@pytest.mark.parametrize("kernel", [4, 6, 8])
def test_synthesis_matches_a_plain_reference_and_bf16_is_close(kernel):
    torch.manual_seed(1)
    model = InrImageModel(37, 53, InrConfig(levels=4, upsampler_kernel=kernel))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    latents = [torch.randint(-3, 4, y.shape).float() for y in model.latents]
    with torch.no_grad():
        fast, ref = model.synthesize(latents), _reference_synthesis(model, latents)
        half = model.synthesize(latents, bf16=True)
    assert fast.shape == ref.shape == (1, 3, 37, 53)
    assert torch.allclose(fast, ref, atol=1e-5)
    assert (half - fast).abs().max() < 0.05 * fast.abs().max() and not torch.equal(half, fast)


def _plain_columns(grids, ancestors):
    """context_columns written with autograd: slices of the padded grids and a naive ancestor
    lookup (grid l + k at (y >> k, x >> k))."""
    rows = []
    for level, g in enumerate(grids):
        h, w = g.shape[-2:]
        padded = F.pad(g, (3, 2, 3, 0))[0, 0]
        own = [padded[3 + dy: 3 + dy + h, 3 + dx: 3 + dx + w].reshape(-1) for dy, dx in CONTEXT]
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        lineage = [grids[level + k][0, 0][ys >> k, xs >> k].reshape(-1) if level + k < len(grids)
                   else g.new_zeros(h * w) for k in range(1, ancestors + 1)]
        rows.append(torch.stack(own + lineage))
    return torch.cat(rows, 1)


@pytest.mark.parametrize("ancestors", [0, 2, 6])
def test_context_columns_match_autograd(ancestors):
    grids = [torch.randn(1, 1, h, w, dtype=torch.float64, requires_grad=True)
             for h, w in ((11, 13), (6, 7), (3, 4), (2, 2), (1, 1))]
    ours = context_columns(grids, ancestors)
    theirs = _plain_columns(grids, ancestors)
    assert ours.shape == (len(CONTEXT) + ancestors, sum(g.numel() for g in grids))
    assert torch.equal(ours, theirs)
    weights = torch.randn_like(ours)
    g_ours = torch.autograd.grad((ours * weights).sum(), grids)
    g_theirs = torch.autograd.grad((theirs * weights).sum(), grids)
    assert all(torch.allclose(a, b) for a, b in zip(g_ours, g_theirs))
    assert torch.autograd.gradcheck(lambda *g: context_columns(g, ancestors), grids, fast_mode=True)
    assert torch.equal(arm_contexts(grids[0]), theirs[: len(CONTEXT), : grids[0].numel()].T)


def test_rate_bits_match_autograd():
    """The ARM and Laplace of rate_bits (one function, a hand-written gradient) against the
    same formula through autograd: value and gradients for the latents and the ARM."""
    torch.manual_seed(0)
    model = InrImageModel(21, 30, InrConfig(levels=4)).double()
    with torch.no_grad():
        for p in model.arm.parameters():
            p.normal_(0, 0.4)
    # spread latents, some far in the tails (the mass floor), some scales clamped
    latents = [(torch.randn_like(y) * 4).requires_grad_() for y in model.latents]
    ours = model.rate_bits(latents)
    flat = torch.cat([y.reshape(-1) for y in latents])
    out = model.arm(_plain_columns(latents, model.config.ancestor_context).T)
    mu, b = out[:, 0], torch.exp(out[:, 1].clamp(-3.0, 3.9))

    def cdf(t):
        return 0.5 + 0.5 * torch.sign(t) * (1 - torch.exp(-t.abs() / b))

    theirs = -torch.log2((cdf(flat - mu + 0.5) - cdf(flat - mu - 0.5)).clamp_min(2**-16)).sum()
    assert torch.allclose(ours, theirs, rtol=1e-12)
    inputs = [*latents, *model.arm.parameters()]
    for a, b_ in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(theirs, inputs)):
        assert torch.allclose(a, b_, rtol=1e-9, atol=1e-9)
    assert (out[:, 1] > 3.9).any() or (out[:, 1] < -3.0).any()  # the clamp was exercised


def _rate_and_grads(model, latents, fused):
    """rate_bits and its gradients for the latents and the ARM's parameters, through the fused
    CPU kernel or through the reference (context columns, then _ArmRate)."""
    latents = [y.detach().clone().requires_grad_() for y in latents]
    layers = [t for m in model.arm if isinstance(m, torch.nn.Linear) for t in (m.weight, m.bias)]
    if fused:
        bits = model.rate_bits(latents)
    else:
        columns = context_columns(latents, model.config.ancestor_context)
        bits = _ArmRate.apply(columns, torch.cat([y.reshape(-1) for y in latents]), *layers)
    return [bits.detach(), *torch.autograd.grad(bits, [*latents, *layers])]


@pytest.mark.parametrize("preset, size", [("default", (37, 53)), ("light", (37, 53)), ("default", (70, 300))])
def test_fused_rate_matches_the_reference(preset, size):
    """The fused CPU kernel (ext/inr_fit.cpp, what rate_bits runs on float32 CPU tensors) against
    the reference path: the same bits and gradients to float rounding. 70 x 300 spans several
    bands of rows (their halos and ancestor buffers are merged), 4 levels leave latents whose
    ancestors lie past the coarsest grid, and 37 x 53 ends rows inside a tile."""
    torch.manual_seed(0)
    model = InrImageModel(*size, dataclasses.replace(PRESETS[preset], levels=4))
    with torch.no_grad():
        for p in model.arm.parameters():
            p.normal_(0, 0.4)
    latents = [torch.randn_like(y) * 4 for y in model.latents]  # some in the tails, some scales clamped
    ours, ref = _rate_and_grads(model, latents, True), _rate_and_grads(model, latents, False)
    assert torch.allclose(ours[0], ref[0], rtol=1e-5)
    for a, b in zip(ours[1:], ref[1:]):
        assert a.shape == b.shape
        # (tail latents' masses are differences of numbers near 1: their gradients carry ~1e-3
        # relative float error in either path)
        assert (a - b).norm() <= 1e-3 * b.norm()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # bands are summed in a fixed order: the same floats on any thread count
    try:
        twice = _rate_and_grads(model, latents, True)
        torch.set_num_threads(1)
        once = _rate_and_grads(model, latents, True)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(once, twice))
    with torch.no_grad():  # the forward alone gives the same bits
        assert torch.equal(model.rate_bits(latents), ours[0])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_parameter_groups_and_layers_cover_the_network_once(preset):
    model = InrImageModel(16, 16, PRESETS[preset])
    latents = {id(p) for p in model.latents}
    network = [id(p) for p in model.parameters() if id(p) not in latents]
    for units in (module_groups(model), network_layers(model)):  # format 1's groups, format 2's layers
        covered = [id(p) for module in units.values() for p in module.parameters()]
        assert sorted(covered) == sorted(network) and len(set(covered)) == len(covered)
    assert module_groups(model)["arm"] is model.arm
    layers = network_layers(model)
    assert len(layers) == model.config.arm_layers + 1 + 1 + len(model.synthesis) + len(model.residual)
    assert list(layers)[0] == "arm.0" and layers["upsampler"] is model.upsampler


def test_fit_learns_a_real_image(one_thread):
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


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fit_starts_at_the_mean_colour(seed):
    # A random start can put a whole colour channel below 0, where the ReLU after the first
    # residual stops its gradient for good: every seed must start at the mean colour instead.
    photo = read_rgb(PHOTO).float() / 255
    x = torch.nn.functional.interpolate(photo.unsqueeze(0), size=(24, 40), mode="area")[0]
    model = fit_image(x, 1e-3, iterations=0, seed=seed).model
    with torch.no_grad():
        start = model.synthesize([torch.zeros_like(y) for y in model.latents])[0]
    expected = x.mean((1, 2))[:, None, None].expand_as(start)
    torch.testing.assert_close(start, expected, atol=1e-5, rtol=0)


def test_network_quantisation_picks_steps_and_counts_bits(one_thread):
    from ncodec.models.inr_quantize import PARAMETER_STEPS, parameter_bits, quantize_network

    photo = read_rgb(PHOTO).float().unsqueeze(0) / 255
    x = torch.nn.functional.interpolate(photo, size=(32, 48), mode="area")[0]
    model = fit_image(x, 1e-3, config=InrConfig(levels=3, synthesis_hidden=(8,)), iterations=40).model
    info = quantize_network(model, x, 1e-3)
    for name, module in network_layers(model).items():
        step = info[name]["step"]
        assert step in PARAMETER_STEPS and info[name]["bits"] > 0
        for p in module.parameters():
            assert torch.equal(p / step, (p / step).round())  # every parameter a multiple of its step
    assert info["bpp"] > info["latent_bits"] / x[0].numel() and 0 < info["mse"] < 0.1
    # more spread costs more bits; the bits are what a coded substream takes (up to its header)
    small, large = torch.randint(-2, 3, (500,)), torch.randint(-200, 201, (500,))
    assert 500 < parameter_bits(small) < parameter_bits(large)
    for values in (small, large):
        layer = torch.nn.Linear(50, 10, bias=False)
        with torch.no_grad():
            layer.weight.copy_(values.view(10, 50).float())
        data, _ = encode_network([layer], [0])
        assert 0 <= 8 * len(data) - parameter_bits(values) < 8 * 16


def test_linear_chain_rank1_values_equal_a_recomputation():
    """_LinearChain.value_if (a rank-1 update from cached activations) equals the chain rerun
    with the parameter changed, for a weight and a bias of every layer, and commit leaves the
    caches a rerun would."""
    from ncodec.models.inr_quantize import _LinearChain

    torch.manual_seed(5)
    layers = [torch.nn.Linear(a, b) for a, b in ((7, 12), (12, 9), (9, 3))]
    inputs, target = torch.randn(7, 200), torch.randn(3, 200)

    def tail(out):
        return float((out - target).pow(2).sum())

    with torch.no_grad():
        chain = _LinearChain(layers, inputs, tail)
        for k, layer in enumerate(layers):
            for index in (0, layer.weight.numel() - 1, 5, layer.weight.numel() + 1):  # weights, a bias
                predicted = chain.value_if(k, index, 0.25)
                p = layer.weight.view(-1) if index < layer.weight.numel() else layer.bias
                i = index if index < layer.weight.numel() else index - layer.weight.numel()
                p[i] += 0.25
                chain.commit()  # the caches take the change: as if recomputed
                cached = [t.clone() for t in chain.pre + chain.layer_inputs]
                assert predicted == pytest.approx(chain.refresh(), rel=1e-5), (k, index)
                for a, b in zip(cached, chain.pre + chain.layer_inputs):
                    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
                p[i] -= 0.25
                chain.refresh()


def test_network_rdoq_lowers_the_cost_it_reports(one_thread):
    """refine_network keeps every parameter a multiple of its layer's step, moves some, and
    reports MSE, latent bits and network bits that a recomputation from scratch confirms, at a
    lower MSE + lam * bpp than quantize_network's."""
    from ncodec.models.inr_quantize import parameter_bits, quantize_network, refine_network

    photo = read_rgb(PHOTO).float().unsqueeze(0) / 255
    x = torch.nn.functional.interpolate(photo, size=(32, 48), mode="area")[0]
    model = fit_image(x, 1e-3, config=InrConfig(levels=3, synthesis_hidden=(8,)), iterations=60).model
    lam, pixels = 1e-3, 32 * 48
    info = quantize_network(model, x, lam)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    refined = refine_network(model, x, lam, info)
    assert refined["mse"] + lam * refined["bpp"] < info["mse"] + lam * info["bpp"]
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    with torch.no_grad():
        latents = quantized_latents(model)
        mse = float((model.synthesize(latents).clamp(0, 1) - x).pow(2).mean())
        rate = float(model.rate_bits(latents))
    network_bits = 0.0
    for name, module in network_layers(model).items():
        step = refined[name]["step"]
        assert step == info[name]["step"]
        values = torch.cat([p.detach().reshape(-1) for p in module.parameters()]) / step
        assert torch.equal(values, values.round())
        assert parameter_bits(values.round()) == refined[name]["bits"]
        network_bits += refined[name]["bits"]
    assert refined["network_bits"] == pytest.approx(network_bits)
    assert refined["mse"] == pytest.approx(mse, rel=1e-5) and refined["latent_bits"] == pytest.approx(rate, rel=1e-5)
    assert refined["bpp"] == pytest.approx((network_bits + rate) / pixels, rel=1e-6)


def test_quantize_aware_fit_trains_the_rounded_network(one_thread):
    """Inside _rounded_network the layers hold multiples of their steps and backward gives the
    rounded network's gradient; afterwards the unrounded values are back, bit for bit."""
    from ncodec.models.inr_fit import _layer_steps, _rounded_network

    photo = read_rgb(PHOTO).float().unsqueeze(0) / 255
    x = torch.nn.functional.interpolate(photo, size=(24, 32), mode="area")[0]
    model = fit_image(x, 1e-3, config=InrConfig(levels=3, synthesis_hidden=(8,)), iterations=30,
                      quantize_aware=0.5).model
    layers = network_layers(model)
    steps = _layer_steps(model, x, 1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    latents = quantized_latents(model)

    def loss():
        return (model.synthesize(latents) - x).pow(2).mean() + model.rate_bits(latents) * 1e-3

    with _rounded_network(layers, steps):
        for name, module in layers.items():
            for p in module.parameters():
                assert torch.equal(p / steps[name], (p / steps[name]).round())
        grads = torch.autograd.grad(loss(), list(model.arm.parameters()) + list(model.synthesis.parameters()))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert any(not torch.equal(p / steps[n], (p / steps[n]).round()) for n, m in layers.items() for p in m.parameters())
    with torch.no_grad():  # the same gradients from a model rounded by hand
        for name, module in layers.items():
            for p in module.parameters():
                p.copy_(torch.round(p / steps[name]) * steps[name])
    by_hand = torch.autograd.grad(loss(), list(model.arm.parameters()) + list(model.synthesis.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(grads, by_hand))


def test_synthesis_in_bands_is_the_same_function():
    """A decoder synthesises bands of rows (bounded memory): the same image as all at once."""
    torch.manual_seed(3)
    model = InrImageModel(37, 29, InrConfig(levels=4))
    with torch.no_grad():
        for conv in model.residual:
            conv.weight.normal_(0, 0.3)
            conv.bias.normal_(0, 0.1)
        latents = [torch.round(torch.randn(y.shape) * 3) for y in model.latents]
        whole = model.synthesize(latents)
        for rows in (1, 5, 16, 36):
            assert torch.allclose(model.synthesize(latents, band_rows=rows), whole, atol=1e-5), rows
