"""Exact networks (ncodec.models.exact): integer arithmetic that every machine computes alike.

What must hold for files to decode anywhere: an exact layer computes exactly the integer
``floor((W_int · x + b) / 2^b + 1/2)`` (checked against int64 arithmetic, which no float
rounding touches), for the worst inputs its clamp allows; and its output does not depend
on the thread count, the batch or which outputs were asked for.
"""

from __future__ import annotations

import pytest
import torch
from compressai.layers import CheckerboardMaskedConv2d
from torch import nn

from ncodec.models import exact

LIMIT = int(exact.ACTIVATION_LIMIT)


def _int64_reference(layer: exact.ExactConv2d, x: torch.Tensor) -> torch.Tensor:
    """The layer's result in int64 arithmetic: the stuffed/padded input, unfold, matmul on
    integers (exact by definition), then the rounding shift and the activation."""
    x = x.clamp(-LIMIT, LIMIT).long()
    if layer.upsample > 1:
        b, c, h, w = x.shape
        s = layer.upsample
        stuffed = x.new_zeros(b, c, (h - 1) * s + 1, (w - 1) * s + 1)
        stuffed[:, :, ::s, ::s] = x
        x = stuffed
    x = torch.nn.functional.pad(x, layer.padding)
    out_ch, c, kh, kw = layer.weight.shape
    b, _, h, w = x.shape
    oh, ow = (h - kh) // layer.stride + 1, (w - kw) // layer.stride + 1
    cols = torch.stack([x[:, :, i:i + layer.stride * (oh - 1) + 1:layer.stride, j:j + layer.stride * (ow - 1) + 1:layer.stride]
                        for i in range(kh) for j in range(kw)], 2)  # [B, C, taps, oh, ow]
    weight = layer.weight.long().reshape(out_ch, c, kh * kw)
    acc = torch.einsum("bctij,oct->boij", cols, weight) + layer.bias.long()[None, :, None, None]
    out = (acc + (1 << (layer.bits - 1))) >> layer.bits  # floor(acc / 2^b + 1/2)
    if layer.slope == 0:
        out = out.clamp(min=0)
    elif layer.slope is not None:
        out = out.clamp(-LIMIT, LIMIT)
        neg = (out * int(layer.slope_int) + (1 << (exact.SLOPE_BITS - 1))) >> exact.SLOPE_BITS
        out = torch.where(out >= 0, out, neg)
    return out


LAYERS = {
    "conv3x3": lambda: nn.Conv2d(12, 10, 3, padding=1),
    "conv5x5-stride2": lambda: nn.Conv2d(12, 10, 5, stride=2, padding=2),
    "deconv5x5-stride2": lambda: nn.ConvTranspose2d(12, 10, 5, stride=2, padding=2, output_padding=1),
    "deconv4x4-stride2": lambda: nn.ConvTranspose2d(12, 10, 4, stride=2, padding=1),
    "deconv3x3-stride3": lambda: nn.ConvTranspose2d(12, 10, 3, stride=3, output_padding=2),
    "checkerboard5x5": lambda: CheckerboardMaskedConv2d(12, 10, kernel_size=5, padding=2),
    "conv1x1": lambda: nn.Conv2d(12, 10, 1),
}


@pytest.mark.parametrize("slope", [None, 0.0, 0.01])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_is_the_integer_computation(name, slope):
    torch.manual_seed(0)
    conv = LAYERS[name]()
    with torch.no_grad():  # large weights: the fewest weight bits, the tightest bound
        conv.weight.mul_(50)
    layer = exact.ExactConv2d.from_float(conv, slope=slope)
    x = torch.randint(-LIMIT, LIMIT + 1, (2, 12, 7, 9), dtype=torch.int64)
    assert torch.equal(layer(x.double()).long(), _int64_reference(layer, x))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_worst_case_inputs_stay_exact(name):
    """Inputs at the clamp with the signs of the weights reach the largest sums the bound
    allows (and inputs beyond the clamp are clamped): still the int64 result."""
    torch.manual_seed(1)
    conv = LAYERS[name]()
    layer = exact.ExactConv2d.from_float(conv)
    w = layer.weight
    # Every input channel at +-LIMIT, following the sign of output channel 0's centre tap.
    centre = w[0, :, w.shape[2] // 2, w.shape[3] // 2]
    x = torch.where(centre >= 0, 4.0 * LIMIT, -4.0 * LIMIT).double()[None, :, None, None].expand(1, -1, 6, 6).contiguous()
    assert torch.equal(layer(x).long(), _int64_reference(layer, x.long()))
    worst = float(w.abs().reshape(w.shape[0], -1).sum(1).max()) * LIMIT + float(layer.bias.abs().max())
    assert worst < 2**53


def test_float_twin_matches_to_fixed_point_resolution():
    torch.manual_seed(2)
    seq = nn.Sequential(nn.ConvTranspose2d(8, 16, 5, stride=2, padding=2, output_padding=1), nn.LeakyReLU(0.01),
                        nn.Conv2d(16, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 1))
    net = exact.ExactNetwork.from_float(seq)
    x = torch.randn(1, 8, 6, 5) * 3
    with torch.no_grad():
        ref = seq(exact.from_fixed(exact.to_fixed(x)).float()).double()
    got = exact.from_fixed(net(exact.to_fixed(x)))
    # LeakyReLU's slope is 655/65536 rather than 0.01; everything else rounds at 2^-16.
    assert (got - ref).abs().max() < 1e-3


def test_independent_of_threads_batch_and_positions():
    torch.manual_seed(3)
    seq = nn.Sequential(CheckerboardMaskedConv2d(8, 16, kernel_size=5, padding=2), nn.ReLU(), nn.Conv2d(16, 4, 1))
    net = exact.ExactNetwork.from_float(seq)
    x = exact.to_fixed(torch.randn(3, 8, 11, 13) * 5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = net(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(net(x), one)
    assert torch.equal(net(x[1:2]), one[1:2])
    positions = torch.rand(11 * 13) < 0.5
    assert torch.equal(net(x, positions=positions), one.flatten(2)[:, :, positions])


def test_hostile_magnitudes_give_finite_clamped_results():
    net = exact.ExactNetwork.from_float(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()))
    x = torch.full((1, 4, 5, 5), 1e300, dtype=torch.float64)
    out = net(x)
    assert torch.isfinite(out).all() and torch.equal(out, net(torch.full_like(x, exact.ACTIVATION_LIMIT)))
    with pytest.raises(TypeError, match="float64"):
        net(x.float())
    with pytest.raises(TypeError, match="GDN|activation|exact version"):
        exact.ExactNetwork.from_float(nn.Sequential(nn.Conv2d(4, 4, 3), nn.Sigmoid()))


def test_weight_bits_are_derived_from_integers_only():
    conv = nn.Conv2d(16, 8, 3)
    bits = exact.weight_bits(conv.weight, conv.bias)
    assert 0 <= bits <= exact.MAX_WEIGHT_BITS
    assert bits == exact.weight_bits(conv.weight.double(), conv.bias.double())
    with pytest.raises(ValueError, match="too large"):
        exact.weight_bits(torch.full((1, 4096), 1e12), None)


def test_linear_numpy_path_gives_the_same_integers():
    """ExactLinear.forward_numpy (decoders' per-step path) equals forward, for every activation."""
    import numpy as np

    from ncodec.models.exact import ExactLinear, to_fixed

    torch.manual_seed(0)
    for slope in (None, 0.0, 0.1):
        layer = ExactLinear.from_float(torch.randn(7, 16), torch.randn(7), slope=slope)
        x = to_fixed(torch.randn(500, 16) * 100)
        assert np.array_equal(layer(x).numpy(), layer.forward_numpy(x.numpy())), slope
