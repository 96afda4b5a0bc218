"""Exact networks: entropy parameters that every machine, thread count and device computes alike.

A range decoder stays in step with its encoder only if both derive *identical* probabilities
for every symbol. Float convolutions do not give that: their rounding depends on the
summation order, which changes with the thread count, the instruction set (AVX-512, AVX2,
SSE) and the device, and one scale index off by one desynchronises the whole stream. So
everything that decides a symbol's probability (a hyper-synthesis ``h_s``, context models,
the variable-rate gains) runs here in fixed-point integer arithmetic (Ballé et al. 2019,
"Integer networks for data compression with latent-variable models"), exact by
construction:

* **Values** are integers in units of ``2^-FRACTION_BITS`` (:func:`to_fixed`), held in
  float64 tensors: float64 represents every integer below ``2^53`` exactly.
* **Weights** of each layer are integers in units of ``2^-b`` (``b`` chosen per layer by
  :func:`weight_bits`), derived from the float32 weights by a multiplication by a power of
  two and a rounding: exact IEEE operations, so every machine derives the same integers.
* **Convolutions** are explicit sums of products (``unfold`` + ``matmul``; a transposed
  convolution of stride ``s`` as ``s²`` convolutions, one per output phase). Every input is clamped to
  ``|x| <= ACTIVATION_LIMIT`` and ``b`` is chosen so that
  ``sum|w| * ACTIVATION_LIMIT + |bias| < 2^53`` for every output: every partial sum of every
  summation order is an integer below ``2^53``, so the float64 result is exact on any CPU
  or GPU whatever BLAS, thread count or vector width computes it.
* **Rescaling** back to ``FRACTION_BITS`` is a division by a power of two and a rounding
  ``floor(x + 1/2)`` (both exact; unbiased, so errors do not pile up layer after layer). Nonlinearities: ReLU (exact), and LeakyReLU with its slope in fixed point
  (``floor(x · round(slope · 2^16) / 2^16)`` for negative ``x``, exact).

The cost is precision, not rate: activations keep 16 fractional bits and weights about 20
significant bits, far finer than what the entropy parameters need (measured: see
``benchmarks/README.md``, "Exact entropy parameters").
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATION_LIMIT",
    "FRACTION_BITS",
    "ExactConv2d",
    "ExactLinear",
    "ExactNetwork",
    "clamp_fixed",
    "from_fixed",
    "rescale",
    "to_fixed",
    "weight_bits",
]

SLOPE_BITS = 16
"""Fractional bits of a LeakyReLU's negative slope."""

FRACTION_BITS = 16
"""Fractional bits of every fixed-point value: resolution 2^-16 (about 1.5e-5)."""
ACTIVATION_LIMIT = float(2 ** (FRACTION_BITS + 11))
"""Inputs of exact layers are clamped to |x| <= this (2048.0 in real units): it bounds every sum."""
EXACT_BOUND = float(2**53)
"""float64 holds every integer of magnitude below this exactly."""
MAX_WEIGHT_BITS = 28
# Output rows of one unfold + matmul: bounds the im2col buffer to about this many float64s.
_COLUMNS_BUDGET = 1 << 22


def to_fixed(x: Tensor, bits: int = FRACTION_BITS) -> Tensor:
    """``round(x * 2^bits)`` as float64 integers (exact: scaling by a power of two, then
    rounding half to even). ``x`` float of any shape."""
    return torch.round(x.to(torch.float64) * float(2**bits))


def from_fixed(x: Tensor, bits: int = FRACTION_BITS) -> Tensor:
    """The real values of fixed-point ``x`` (float64, exact)."""
    return x * float(2.0**-bits)


def clamp_fixed(x: Tensor, limit: float = ACTIVATION_LIMIT) -> Tensor:
    """``x`` clamped to ``[-limit, limit]`` (what every exact layer does to its input)."""
    return x.clamp(-limit, limit)


def rescale(x: Tensor, bits: int) -> Tensor:
    """``floor(x / 2^bits + 1/2)``: fixed-point ``x`` with ``bits`` fewer fractional bits,
    rounded to nearest (exact for integers ``|x| < 2^52``)."""
    return torch.floor(x * float(2.0**-bits) + 0.5)


def weight_bits(weight: Tensor, bias: Optional[Tensor], *, input_limit: float = ACTIVATION_LIMIT,
                max_bits: int = MAX_WEIGHT_BITS) -> int:
    """The largest ``b <= max_bits`` whose integer weights ``round(w * 2^b)`` (and bias
    ``round(bias * 2^(FRACTION_BITS + b))``) keep every output's sum below ``2^53`` for
    inputs up to ``input_limit``.

    ``weight`` is ``[out, fan_in...]`` (a conv weight, output channels first). Computed on
    the integer weights themselves (sums of integers below 2^53: exact), so every machine
    picks the same ``b``.

    Raises:
        ValueError: no ``b >= 0`` fits (weights or biases too large for exact arithmetic).
    """
    w = weight.detach().to("cpu", torch.float64).reshape(weight.shape[0], -1)
    b = None if bias is None else bias.detach().to("cpu", torch.float64)
    for bits in range(max_bits, -1, -1):
        w_int = torch.round(w * float(2**bits))
        worst = float(w_int.abs().sum(1).max()) * input_limit
        if b is not None:
            worst += float(torch.round(b * float(2 ** (FRACTION_BITS + bits))).abs().max())
        if worst < EXACT_BOUND / 2:
            return bits
    raise ValueError("weights too large for exact fixed-point arithmetic")


def _activate(out: Tensor, slope_int: Optional[float]) -> Tensor:
    """An exact layer's activation of its rescaled output: none (``slope_int`` None), ReLU (0),
    else LeakyReLU with the negative slope ``slope_int / 2^SLOPE_BITS``."""
    if slope_int is None:
        return out
    if slope_int == 0:
        return out.clamp_(min=0)
    # Clamped first (the next layer clamps its input the same way) so that the product
    # stays far below 2^53.
    out = clamp_fixed(out)
    return torch.where(out >= 0, out, rescale(out * slope_int, SLOPE_BITS))


class ExactLinear(nn.Module):
    """A dense layer over fixed-point rows, exact on every machine and device:
    ``x [m, in] -> act(floor((clamp(x) @ W_int^T + b_int) / 2^b + 1/2)) [m, out]``.

    The integers come from float weights as in :class:`ExactConv2d` (:func:`weight_bits`), so
    every partial sum stays an integer below ``2^53``: one ``addmm`` in float64, in any
    summation order. For small networks run once per decoded symbol (context models), where
    a convolution's reshaping would cost more than the arithmetic.
    """

    def __init__(self, weight: Tensor, bias: Tensor, bits: int, *, slope: Optional[float] = None):
        super().__init__()
        self.register_buffer("weight_t", weight.to(torch.float64).t().contiguous(), persistent=False)
        self.register_buffer("bias", bias.to(torch.float64), persistent=False)
        self.bits = int(bits)
        self.slope_int = None if slope is None else float(round(slope * 2**SLOPE_BITS))
        self._numpy: Optional[tuple[np.ndarray, np.ndarray]] = None

    @classmethod
    def from_float(cls, weight: Tensor, bias: Tensor, slope: Optional[float] = None) -> "ExactLinear":
        """The exact twin of ``x @ weight.T + bias`` (``weight [out, in]``), then the activation
        (``slope`` None: none, 0: ReLU, else LeakyReLU's negative slope)."""
        weight, bias = weight.detach().cpu(), bias.detach().cpu()
        bits = weight_bits(weight, bias)
        return cls(torch.round(weight.to(torch.float64) * float(2**bits)),
                   torch.round(bias.to(torch.float64) * float(2 ** (FRACTION_BITS + bits))), bits, slope=slope)

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype != torch.float64:
            raise TypeError("exact layers take fixed-point float64 tensors (see to_fixed)")
        out = torch.addmm(self.bias, clamp_fixed(x), self.weight_t)
        return _activate(rescale(out, self.bits), self.slope_int)

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """:meth:`forward` on a float64 numpy array ``[m, in]``, with the same integers out: for
        decoders that call a small layer thousands of times on a few rows, where torch's
        per-call overhead outweighs the arithmetic."""
        if x.dtype != np.float64:
            raise TypeError("exact layers take fixed-point float64 arrays (see to_fixed)")
        if self._numpy is None:
            self._numpy = (self.weight_t.cpu().numpy(), self.bias.cpu().numpy())
        weight_t, bias = self._numpy
        limit = ACTIVATION_LIMIT
        out = np.floor((np.clip(x, -limit, limit) @ weight_t + bias) * float(2.0**-self.bits) + 0.5)
        if self.slope_int is None:
            return out
        if self.slope_int == 0:
            return np.maximum(out, 0.0, out=out)
        out = np.clip(out, -limit, limit)
        return np.where(out >= 0, out, np.floor(out * self.slope_int * float(2.0**-SLOPE_BITS) + 0.5))


class ExactConv2d(nn.Module):
    """A 2-D convolution over fixed-point integers, exact on every machine and device.

    Built from a float ``nn.Conv2d`` / ``nn.ConvTranspose2d`` (or a masked convolution:
    its effective weight ``weight * mask`` is used) by :meth:`from_float`. ``forward`` takes
    and returns fixed-point float64 tensors ``[B, C, H, W]`` (units ``2^-FRACTION_BITS``):
    ``out = floor((W_int * clamp(x) + b_int) / 2^b)``, then the activation: ``slope`` None
    for none, 0 for ReLU, else a LeakyReLU of that negative slope (in fixed point).

    Attributes:
        weight: float64 integers ``[out, in, kh, kw]`` in units of ``2^-bits`` (a transposed
            convolution is stored as the equivalent convolution: flipped, in/out swapped).
        bias: float64 integers ``[out]`` in units of ``2^-(FRACTION_BITS + bits)``.
        upsample: zero-stuffing factor applied to the input first (a transposed
            convolution's stride; 1 for a plain convolution).
        padding: ``(left, right, top, bottom)`` zero padding after the stuffing.
        stride: stride of the convolution.
    """

    def __init__(self, weight: Tensor, bias: Tensor, bits: int, *, stride: int = 1, upsample: int = 1,
                 padding: tuple[int, int, int, int] = (0, 0, 0, 0), slope: Optional[float] = None):
        super().__init__()
        self.register_buffer("weight", weight.to(torch.float64), persistent=False)
        self.register_buffer("bias", bias.to(torch.float64), persistent=False)
        self.bits = int(bits)
        self.stride = int(stride)
        self.upsample = int(upsample)
        self.padding = tuple(int(p) for p in padding)
        self._matrices: dict = {}
        self.slope = None if slope is None else float(slope)
        self.slope_int = None if slope is None else float(round(self.slope * 2**SLOPE_BITS))

    @classmethod
    def from_float(cls, conv: nn.Module, slope: Optional[float] = None) -> "ExactConv2d":
        """The exact twin of ``conv`` (``nn.Conv2d`` without groups/dilation, or
        ``nn.ConvTranspose2d`` with a square stride); ``slope``: the activation after it
        (None: none, 0: ReLU, else LeakyReLU's negative slope)."""
        if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
            raise TypeError(f"no exact version of {type(conv).__name__}")
        if conv.groups != 1 or tuple(conv.dilation) != (1, 1) or conv.padding_mode != "zeros":
            raise TypeError("exact convolutions support groups=1, dilation=1 and zero padding only")
        weight = conv.weight.detach()
        mask = getattr(conv, "mask", None)
        if isinstance(mask, Tensor) and mask.shape == weight.shape:
            weight = weight * mask  # masked convolutions multiply by the mask at every forward
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(weight.shape[0 if isinstance(
            conv, nn.Conv2d) else 1], dtype=weight.dtype, device=weight.device)
        kh, kw = weight.shape[-2:]
        if isinstance(conv, nn.ConvTranspose2d):
            sh, sw = conv.stride
            if sh != sw:
                raise TypeError("exact transposed convolutions need a square stride")
            (ph, pw), (oh, ow) = conv.padding, conv.output_padding
            # conv_transpose(x) == conv(zero-stuffed x, flipped kernel with in/out swapped).
            weight = weight.flip(-2, -1).transpose(0, 1)
            padding = (kw - 1 - pw, kw - 1 - pw + ow, kh - 1 - ph, kh - 1 - ph + oh)
            stride, upsample = 1, sh
        else:
            if conv.stride[0] != conv.stride[1] or isinstance(conv.padding, str):
                raise TypeError("exact convolutions need a square stride and numeric padding")
            ph, pw = conv.padding
            padding, stride, upsample = (pw, pw, ph, ph), conv.stride[0], 1
        bits = weight_bits(weight, bias)
        w_int = torch.round(weight.to(torch.float64) * float(2**bits))
        b_int = torch.round(bias.to(torch.float64) * float(2 ** (FRACTION_BITS + bits)))
        return cls(w_int, b_int, bits, stride=stride, upsample=upsample, padding=padding, slope=slope)

    def forward(self, x: Tensor, positions: Optional[Tensor] = None) -> Tensor:
        """``x`` ``[B, C, H, W]`` -> ``[B, out, H', W']``; with ``positions`` (bool ``[H*W]``,
        stride-1 "same" convolutions only) just the outputs there: ``[B, out, n]``. A 1x1
        convolution also takes ``x`` ``[B, C, n]`` (values at some positions) -> ``[B, out, n]``."""
        if x.dtype != torch.float64:
            raise TypeError("exact layers take fixed-point float64 tensors (see to_fixed)")
        x = clamp_fixed(x)
        if x.dim() == 3:
            if self.weight.shape[-2:] != (1, 1) or self.stride != 1 or self.upsample != 1:
                raise ValueError("only 1x1 convolutions take values at positions [B, C, n]")
            out = self.weight.reshape(self.weight.shape[0], -1) @ x + self.bias[:, None]
        elif positions is not None:
            out = self._convolve(F.pad(x, self.padding), self.weight, self.stride, positions)
        else:
            out = self._transposed(x) if self.upsample > 1 else self._convolve(
                F.pad(x, self.padding), self.weight, self.stride)
        return _activate(rescale(out, self.bits), self.slope_int)

    def _transposed(self, x: Tensor) -> Tensor:
        """The convolution of the zero-stuffed ``x``, computed phase by phase: output
        ``(s·q + r)`` only meets the taps ``a ≡ pad - r (mod s)`` of the kernel, so each of
        the ``s²`` phases is a stride-1 convolution of ``x`` itself with a sub-kernel (the
        same products as the stuffed form, without the zeros)."""
        b, c, h, w = x.shape
        s = self.upsample
        out_ch, _, kh, kw = self.weight.shape
        left, right, top, bottom = self.padding
        oh, ow = (h - 1) * s + top + bottom - kh + 2, (w - 1) * s + left + right - kw + 2
        out = x.new_empty(b, out_ch, oh, ow)
        for ry in range(min(s, oh)):
            ay, rows = (top - ry) % s, -(-(oh - ry) // s)
            cy = (ry + ay - top) // s
            for rx in range(min(s, ow)):
                ax, cols = (left - rx) % s, -(-(ow - rx) // s)
                cx = (rx + ax - left) // s
                kernel = self.weight[:, :, ay::s, ax::s]
                ty, tx = kernel.shape[-2:]
                # Input rows cy .. cy + rows + ty - 2 (zeros outside), same for columns.
                pad = (max(0, -cx), max(0, cx + cols + tx - 1 - w), max(0, -cy), max(0, cy + rows + ty - 1 - h))
                window = F.pad(x, pad)[:, :, cy + pad[2]:cy + pad[2] + rows + ty - 1,
                                       cx + pad[0]:cx + pad[0] + cols + tx - 1]
                out[:, :, ry::s, rx::s] = self._convolve(window, kernel, 1)
        return out

    def _matrix(self, weight: Tensor) -> tuple[Tensor, bool, Tensor]:
        """(taps used, all taps used, ``[out, C * taps]`` matrix) of ``weight``, cached."""
        key = (weight.data_ptr(), tuple(weight.shape), tuple(weight.stride()), weight.device)
        cached = self._matrices.get(key)
        if cached is None:
            out_ch, c, kh, kw = weight.shape
            taps = weight.ne(0).any(0).any(0).reshape(-1)  # [kh * kw]: zero for masked taps
            matrix = weight.reshape(out_ch, c, kh * kw)[:, :, taps].reshape(out_ch, -1).contiguous()
            cached = self._matrices[key] = (taps, bool(taps.all()), matrix)
        return cached

    def _convolve(self, x: Tensor, weight: Tensor, stride: int, positions: Optional[Tensor] = None) -> Tensor:
        """``weight * x + b_int`` (valid convolution), in bands of output rows to bound
        memory; kernel taps that are zero for every channel (masked convolutions) are
        skipped. ``positions``: bool ``[H' * W']``, compute only those outputs (``[B, out, n]``)."""
        b, c, h, w = x.shape
        out_ch, _, kh, kw = weight.shape
        s = stride
        oh, ow = (h - kh) // s + 1, (w - kw) // s + 1
        if oh <= 0 or ow <= 0:
            raise ValueError(f"input {h}x{w} is smaller than the {kh}x{kw} kernel")
        taps, dense, matrix = self._matrix(weight)
        if positions is not None:
            if positions.numel() != oh * ow:
                raise ValueError(f"positions cover {positions.numel()} outputs, the convolution has {oh * ow}")
            cols = F.unfold(x, (kh, kw), stride=s)
            if not dense:
                cols = cols.reshape(b, c, kh * kw, -1)[:, :, taps].reshape(b, -1, oh * ow)
            return matrix @ cols[:, :, positions] + self.bias[:, None]
        rows = max(1, _COLUMNS_BUDGET // max(1, b * c * kh * kw * ow))
        bands = []
        for r0 in range(0, oh, rows):
            r1 = min(oh, r0 + rows)
            band = x[:, :, r0 * s:(r1 - 1) * s + kh, :]
            cols = F.unfold(band, (kh, kw), stride=s)  # [B, C*kh*kw, (r1-r0)*ow]
            if not dense:
                cols = cols.reshape(b, c, kh * kw, -1)[:, :, taps].reshape(b, -1, cols.shape[-1])
            bands.append((matrix @ cols + self.bias[:, None]).reshape(b, out_ch, r1 - r0, ow))
        return bands[0] if len(bands) == 1 else torch.cat(bands, 2)

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1]}, {self.weight.shape[0]}, kernel={tuple(self.weight.shape[-2:])}, "
                f"stride={self.stride}, upsample={self.upsample}, padding={self.padding}, bits={self.bits}, "
                f"slope={self.slope}")


class ExactNetwork(nn.Sequential):
    """A chain of :class:`ExactConv2d` built from a float chain of convolutions and ReLUs
    (:meth:`from_float`); fixed-point float64 in, fixed-point float64 out. A chain of 1x1
    convolutions also maps values at positions ``[B, C, n]`` to ``[B, out, n]``."""

    def forward(self, x: Tensor, positions: Optional[Tensor] = None) -> Tensor:  # type: ignore[override]
        """``positions`` (bool ``[H*W]``): outputs at those positions only, ``[B, out, n]``
        (the first layer a stride-1 "same" convolution, the others 1x1)."""
        for i, layer in enumerate(self):
            x = layer(x, positions) if i == 0 else layer(x)
        return x

    @classmethod
    def from_float(cls, layers: nn.Module | Iterable[nn.Module]) -> "ExactNetwork":
        """The exact twin of ``layers`` (an ``nn.Sequential`` or a single convolution):
        convolutions, transposed convolutions, ReLUs and LeakyReLUs only (an activation is
        fused into the convolution before it).

        Raises:
            TypeError: another kind of layer (GDN, attention, ...).
        """
        items = [layers] if isinstance(layers, (nn.Conv2d, nn.ConvTranspose2d)) else list(layers)
        exact: list[ExactConv2d] = []
        for i, layer in enumerate(items):
            if isinstance(layer, (nn.ReLU, nn.LeakyReLU)):
                if i == 0 or not isinstance(items[i - 1], (nn.Conv2d, nn.ConvTranspose2d)):
                    raise TypeError("an activation must follow a convolution in an exact network")
                continue
            after = items[i + 1] if i + 1 < len(items) else None
            slope = (0.0 if isinstance(after, nn.ReLU) else
                     float(after.negative_slope) if isinstance(after, nn.LeakyReLU) else None)
            exact.append(ExactConv2d.from_float(layer, slope=slope))
        return cls(*exact)


def fixed_gains(log_gain: Tensor, bits: int) -> Tensor:
    """``round(exp(log_gain) * 2^bits)`` as int64 (computed once, at ``update()``, and
    stored with the weights: ``exp`` itself is not bit-identical across machines)."""
    values = [round(math.exp(float(v)) * 2**bits) for v in log_gain.detach().double().reshape(-1).tolist()]
    return torch.tensor(values, dtype=torch.int64).reshape(log_gain.shape)
