"""Fast copies of a model's analysis and synthesis transforms, for CPU inference.

An image model spends nearly all its coding time in its convolutional transforms: ``g_a``
(analysis, encoder only) and ``g_s`` (synthesis, decoder output only). This module builds
faster *copies* of them from a loaded model; the model itself (weights, ``state_dict`` keys,
:func:`ncodec.models.image.model_fingerprint`) is left untouched. The rewrites:

* :class:`FoldedGDN`: CompressAI's ``GDN`` re-derives ``beta`` and ``gamma`` through its
  ``NonNegativeParametrizer`` on every call; here they are derived once, and the
  elementwise steps run in place. Bit-exact.
* channels_last (NHWC) activations, which oneDNN's convolutions prefer, with the weights
  reordered once for oneDNN (:class:`PackedConv2d`, :class:`PackedConvTranspose2d`) and
  ReLUs and residual sums fused into the convolutions (ELIC's residual and attention
  blocks), in place where CompressAI allocates. CompressAI's NCHW transposed convolutions
  are the slowest layers of its ``g_s`` (2x the channels_last ones).
* :class:`SubPixelDeconv`: a stride-``s`` ``ConvTranspose2d`` whose output is exactly ``s``
  times its input (CompressAI's ``deconv``: k5, s2, p2, output_padding 1) equals a plain
  convolution with ``s*s*C_out`` outputs followed by ``pixel_shuffle(s)`` (the same
  products summed in another order: float32 results differ by rounding only). Used where
  it measured faster than oneDNN's channels_last transposed convolution: the 3-channel last
  layer of ``g_s`` and ELIC's 320-channel first one (see :func:`fast_transform`).

Optionally (:func:`fast_analysis` with ``bf16=True``) ``g_a`` runs in bfloat16, about twice
as fast again on CPUs with native bf16 (AVX512-BF16 / AMX), with latents that differ from
float32's by ~1e-2 relative: a different (equally valid) file, not a different decoder.

What stays exact. The decoder rebuilds the entropy parameters (``h_s``, ELIC's channel and
spatial context models, the entropy models) from the decoded ``y_hat`` / ``z_hat``; the
encoder must compute the very same numbers from its own ``y_hat`` / ``z_hat``. Those modules
are never copied or changed here, and every fast transform returns a contiguous NCHW tensor
in its input's dtype, so they see the same memory layout and dtype on both sides (a
channels_last ``y`` would send ELIC's context convolutions down another oneDNN path in the
encoder than in the decoder, and change its means). Hence:

* a file written with the fast ``g_a`` decodes with the exact model to the same
  latents as with the fast one, and vice versa (only quantised latents travel);
* the fast ``g_s`` changes only the reconstruction, by float rounding (max abs difference
  measured 4e-8 to 1e-6 on [0, 1] images), and is deterministic on a given machine, at any
  thread count. (CompressAI's own modules are not all thread-count independent: ELIC's
  context models give means an ulp apart with 1 and with 2 threads; that is the model's
  exact path, untouched here.)

Everything is eager PyTorch (no ``torch.compile``): the same weights and input give the same
output in every run.

:class:`FastTransforms` bundles the copies of one model with its own ``compress`` /
``decompress`` run through them (:class:`ncodec.codecs.image.ImageCodec` uses it).
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from compressai.layers import GDN, AttentionBlock
from compressai.models import FactorizedPrior, MeanScaleHyperprior, ScaleHyperprior
from compressai.models.sensetime import Elic2022Official, ResidualBottleneckBlock
from torch import Tensor, nn

from ncodec.models.checkerboard import VariableRateCheckerboard
from ncodec.models.fingerprint import weights_version
from ncodec.models.hyperprior import ExactMeanScaleHyperprior, ExactScaleHyperprior
from ncodec.models.variable_rate import VariableRateMeanScaleHyperprior

__all__ = [
    "FastTransforms",
    "FoldedGDN",
    "PackedConv2d",
    "PackedConvTranspose2d",
    "SUPPORTED_CLASSES",
    "SubPixelDeconv",
    "bf16_supported",
    "fast_analysis",
    "fast_synthesis",
    "fast_transform",
    "supports",
]

_MKLDNN = getattr(torch.ops, "mkldnn", None)


@functools.lru_cache(maxsize=None)
def _packing_works(dtype: torch.dtype) -> bool:
    """Whether oneDNN's prepacked, fused convolutions (``torch.ops.mkldnn``, which
    ``torch.compile``'s CPU backend uses) exist in this PyTorch and agree with ``F.conv2d``
    / ``F.conv_transpose2d`` in ``dtype``."""
    mk = _MKLDNN
    cl = torch.channels_last
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 8, 6, 5, generator=g).to(dtype).contiguous(memory_format=cl)
        w, b = torch.randn(4, 8, 3, 3, generator=g).to(dtype), torch.randn(4, generator=g).to(dtype)
        wt = torch.randn(8, 4, 5, 5, generator=g).to(dtype)
        with torch.inference_mode():
            ref = F.relu(F.conv2d(x, w, b, padding=1))
            packed = mk._reorder_convolution_weight(w, [1, 1], [1, 1], [1, 1], 1, None)
            got = [mk._convolution_pointwise(x, packed, b, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")]
            acc = torch.zeros_like(ref)
            got.append(mk._convolution_pointwise_.binary(acc, x, packed, b, [1, 1], [1, 1], [1, 1], 1, "add",
                                                         None, "relu", [], None))
            refs = [ref, ref, F.conv_transpose2d(x, wt, b, 2, 2, 1)]
            packed_t = mk._reorder_convolution_transpose_weight(wt, [2, 2], [1, 1], [2, 2], [1, 1], 1, None)
            got.append(mk._convolution_transpose_pointwise(x, packed_t, b, [2, 2], [1, 1], [2, 2], [1, 1], 1,
                                                           "none", [], ""))
        tol = 1e-5 if dtype == torch.float32 else 5e-2
        return all(torch.allclose(a.float(), r.float(), rtol=tol, atol=tol) for a, r in zip(got, refs))
    except (AttributeError, RuntimeError, TypeError):
        return False


class PackedConv2d(nn.Module):
    """``F.conv2d(x, weight, bias, stride, padding)``, optionally followed by ReLU, with the
    weight reordered once for oneDNN (CPU) instead of on every call.

    Input ``[B, C_in, H, W]`` (channels_last preferred), output channels_last. On devices or
    builds without oneDNN's fused convolutions (``pack=False``) it runs ``F.conv2d``. The
    values are those of ``F.conv2d`` on the same input (then ``relu``) up to the order of
    the sums: bit-identical wherever PyTorch itself runs oneDNN's channels_last convolution
    (all the layers of the supported models at image sizes), ~1e-7 relative otherwise.
    """

    def __init__(self, weight: Tensor, bias: Optional[Tensor], stride: int = 1, padding: int = 0,
                 relu: bool = False, pack: Optional[bool] = None):
        super().__init__()
        weight = weight.detach().clone()
        bias = weight.new_zeros(weight.shape[0]) if bias is None else bias.detach().to(weight.dtype).clone()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.stride, self.padding, self.relu = [stride] * 2, [padding] * 2, relu
        if pack is None:
            pack = weight.device.type == "cpu" and _packing_works(weight.dtype)
        self.pack = bool(pack)
        self._packed = (_MKLDNN._reorder_convolution_weight(weight, self.padding, self.stride, [1, 1], 1, None)
                        if self.pack else None)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, relu: bool = False, dtype: Optional[torch.dtype] = None,
                  pack: Optional[bool] = None) -> "PackedConv2d":
        if not cls.supports(conv):
            raise ValueError(f"unsupported convolution: {conv}")
        w = conv.weight.detach().to(dtype or conv.weight.dtype)
        b = None if conv.bias is None else conv.bias.detach().to(w.dtype)
        return cls(w, b, conv.stride[0], conv.padding[0], relu, pack)

    @staticmethod
    def supports(conv: nn.Module) -> bool:
        return (type(conv) is nn.Conv2d and conv.groups == 1 and conv.dilation == (1, 1)
                and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
                and conv.stride[0] == conv.stride[1] and conv.padding[0] == conv.padding[1])

    def _args(self) -> tuple:
        return (self._packed, self.bias, self.padding, self.stride, [1, 1], 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.pack:
            return _MKLDNN._convolution_pointwise(x, *self._args(), "relu" if self.relu else "none", [], "")
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return F.relu_(y) if self.relu else y

    def accumulate(self, acc: Tensor, x: Tensor, relu: bool = False) -> Tensor:
        """``acc = acc + conv(x)`` (then ReLU if ``relu``), in place; returns ``acc``.
        (The layer's own ``relu`` flag is ignored here.)"""
        if self.pack:
            return _MKLDNN._convolution_pointwise_.binary(
                acc, x, *self._args(), "add", None, "relu" if relu else None, [], None)
        acc.add_(F.conv2d(x, self.weight, self.bias, self.stride, self.padding))
        return F.relu_(acc) if relu else acc

    def add(self, other: Tensor, x: Tensor, relu: bool = False) -> Tensor:
        """``other + conv(x)`` (then ReLU if ``relu``), as a new tensor."""
        if self.pack:
            return _MKLDNN._convolution_pointwise.binary(
                x, other, *self._args(), "add", None, "relu" if relu else None, [], None)
        return self.accumulate(other.clone(), x, relu)

    def extra_repr(self) -> str:
        c_out, c_in, kh, kw = self.weight.shape
        return (f"{c_in}, {c_out}, kernel=({kh}, {kw}), stride={self.stride[0]}, padding={self.padding[0]}, "
                f"relu={self.relu}, packed={self.pack}, dtype={self.weight.dtype}")


class PackedConvTranspose2d(nn.Module):
    """``F.conv_transpose2d`` of a ``ConvTranspose2d`` (groups 1, dilation 1, zero padding),
    optionally followed by ReLU, with the weight reordered once for oneDNN.

    Input ``[B, C_in, H, W]`` (channels_last preferred), output channels_last; the values of
    ``F.conv_transpose2d`` on the same input, up to the order of the sums (as
    :class:`PackedConv2d`). Falls back to it where ``pack`` is False.
    """

    def __init__(self, deconv: nn.ConvTranspose2d, dtype: Optional[torch.dtype] = None,
                 pack: Optional[bool] = None, relu: bool = False):
        super().__init__()
        if not self.supports(deconv):
            raise ValueError(f"unsupported transposed convolution: {deconv}")
        weight = deconv.weight.detach().to(dtype or deconv.weight.dtype).clone()
        bias = (weight.new_zeros(weight.shape[1]) if deconv.bias is None
                else deconv.bias.detach().to(weight.dtype).clone())
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.stride, self.padding = list(deconv.stride), list(deconv.padding)
        self.output_padding, self.relu = list(deconv.output_padding), relu
        if pack is None:
            pack = weight.device.type == "cpu" and _packing_works(weight.dtype)
        self.pack = bool(pack)
        self._packed = (_MKLDNN._reorder_convolution_transpose_weight(
            weight, self.padding, self.output_padding, self.stride, [1, 1], 1, None) if self.pack else None)

    @staticmethod
    def supports(deconv: nn.Module) -> bool:
        return (type(deconv) is nn.ConvTranspose2d and deconv.groups == 1 and deconv.dilation == (1, 1)
                and deconv.padding_mode == "zeros")

    def forward(self, x: Tensor) -> Tensor:
        if self.pack:
            return _MKLDNN._convolution_transpose_pointwise(
                x, self._packed, self.bias, self.padding, self.output_padding, self.stride, [1, 1], 1,
                "relu" if self.relu else "none", [], "")
        y = F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)
        return F.relu_(y) if self.relu else y

    def extra_repr(self) -> str:
        c_in, c_out, kh, kw = self.weight.shape
        return (f"{c_in}, {c_out}, kernel=({kh}, {kw}), stride={self.stride[0]}, padding={self.padding[0]}, "
                f"output_padding={self.output_padding[0]}, relu={self.relu}, packed={self.pack}")


class FoldedGDN(nn.Module):
    """CompressAI's ``GDN`` / inverse GDN with ``beta`` and ``gamma`` derived once.

    ``y = x * rsqrt(beta + conv1x1(x**2, gamma))`` (``sqrt`` for the inverse) on
    ``[B, C, H, W]``. With ``pack=False`` and the same input (memory format included) the
    output is bit-identical to ``gdn(x)``: the same operations on the same parameter values,
    minus the per-call reparametrisation. The values are a snapshot: rebuild it when
    ``gdn``'s parameters change.

    With ``overwrite=True`` (the fast transforms, whose layers own their inputs) a
    channels_last input is normalised in place, in bands of rows small enough to stay in
    cache: GDN is pointwise in space, so each band needs only its own pixels, and the
    full-size ``x**2`` and norm tensors are never materialised (each costs a pass over
    memory and, above glibc's 32 MiB mmap threshold, fresh page faults). Same values.
    """

    #: Target size of one band's activations, bytes.
    band_bytes = 1 << 20

    def __init__(self, gdn: GDN, dtype: Optional[torch.dtype] = None, pack: Optional[bool] = False,
                 overwrite: bool = False):
        super().__init__()
        with torch.no_grad():
            beta = gdn.beta_reparam(gdn.beta.detach())
            gamma = gdn.gamma_reparam(gdn.gamma.detach())
        channels = beta.numel()
        dtype = dtype or beta.dtype
        self.inverse = bool(gdn.inverse)
        self.overwrite = bool(overwrite)
        self.conv = PackedConv2d(gamma.reshape(channels, channels, 1, 1).to(dtype), beta.to(dtype), pack=pack)

    def _normalise(self, x: Tensor, out: Tensor) -> Tensor:
        norm = self.conv(x * x)  # x * x is x**2, exactly
        norm = norm.sqrt_() if self.inverse else norm.rsqrt_()
        return torch.mul(norm, x, out=out) if out is not None else norm.mul_(x)

    def forward(self, x: Tensor) -> Tensor:
        if not (self.overwrite and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)):
            return self._normalise(x, None)
        b, c, h, w = x.shape
        rows = max(1, self.band_bytes // max(1, c * w * x.element_size()))
        for i in range(b):
            for r in range(0, h, rows):
                band = x[i:i + 1, :, r:r + rows]  # channels_last and contiguous: NHWC rows
                self._normalise(band, band)
        return x

    def extra_repr(self) -> str:
        return f"inverse={self.inverse}, overwrite={self.overwrite}"


class SubPixelDeconv(nn.Module):
    """A ``ConvTranspose2d`` with stride ``s`` and an output exactly ``s`` times its input,
    as a convolution with ``s*s*C_out`` outputs followed by ``pixel_shuffle(s)``.

    For the transposed convolution ``out[o] = sum_i x[i] w[o + p - s*i]`` (per axis, summed
    over input channels), output ``o = s*m + r`` only sees inputs ``i = m + d`` with
    ``k = r + p - s*d`` inside the kernel: for every phase ``r`` a small ordinary
    convolution over ``x``. All ``s*s`` phases share one convolution (kernel size = the range
    of ``d``, zero taps where a phase has none) whose output channel ``c*s*s + ry*s + rx``
    is phase ``(ry, rx)`` of channel ``c``: exactly ``pixel_shuffle``'s order. For k5 s2 p2
    that is a 3x3 convolution with 4*C_out outputs.

    Input ``[B, C_in, H, W]``, output ``[B, C_out, s*H, s*W]`` = ``deconv(x)`` up to float
    rounding. Requires ``groups == 1``, ``dilation == 1``, zero padding, equal strides ``s``
    on both axes and ``k - 2p + output_padding == s`` on both axes.
    """

    def __init__(self, deconv: nn.ConvTranspose2d, dtype: Optional[torch.dtype] = None,
                 pack: Optional[bool] = False):
        super().__init__()
        if not self.supports(deconv):
            raise ValueError(f"not an exact-upsampling transposed convolution: {deconv}")
        s = deconv.stride[0]
        w = deconv.weight.detach()  # [C_in, C_out, kH, kW]
        c_in, c_out = w.shape[:2]
        ranges = []  # per axis: offsets d = d_lo .. d_hi that some phase uses
        for axis in (0, 1):
            k, p = deconv.kernel_size[axis], deconv.padding[axis]
            ranges.append((min(-((k - 1 - r - p) // s) for r in range(s)),  # ceil((r + p - k + 1) / s)
                           max((r + p) // s for r in range(s))))
        (ylo, yhi), (xlo, xhi) = ranges
        (ky, kx), (py, px) = deconv.kernel_size, deconv.padding
        weight = w.new_zeros(c_out, s, s, c_in, yhi - ylo + 1, xhi - xlo + 1)
        for ry in range(s):
            for jy, dy in enumerate(range(ylo, yhi + 1)):
                ty = ry + py - s * dy
                for rx in range(s):
                    for jx, dx in enumerate(range(xlo, xhi + 1)):
                        tx = rx + px - s * dx
                        if 0 <= ty < ky and 0 <= tx < kx:
                            weight[:, ry, rx, :, jy, jx] = w[:, :, ty, tx].t()
        weight = weight.reshape(c_out * s * s, c_in, yhi - ylo + 1, xhi - xlo + 1)
        bias = deconv.bias.detach() if deconv.bias is not None else w.new_zeros(c_out)
        self.stride = s
        # Zero padding of the input: -d_lo before, d_hi after, on each axis.
        self.pad = (-xlo, xhi, -ylo, yhi)  # F.pad order: left, right, top, bottom
        symmetric = -xlo == xhi and -ylo == yhi and xhi == yhi
        dtype = dtype or weight.dtype
        self.conv = PackedConv2d(weight.to(dtype), bias.repeat_interleave(s * s).to(dtype),
                                 padding=yhi if symmetric else 0, pack=pack)
        self.symmetric = symmetric

    @staticmethod
    def supports(deconv: nn.Module) -> bool:
        """Whether ``deconv`` is a transposed convolution this class can rewrite."""
        if type(deconv) is not nn.ConvTranspose2d:
            return False
        s = deconv.stride
        return (
            deconv.groups == 1 and deconv.dilation == (1, 1) and s[0] == s[1] and s[0] >= 1
            and deconv.padding_mode == "zeros"
            and all(deconv.kernel_size[a] - 2 * deconv.padding[a] + deconv.output_padding[a] == s[0]
                    for a in (0, 1))
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x if self.symmetric else F.pad(x, self.pad))
        return F.pixel_shuffle(y, self.stride) if self.stride > 1 else y


class _ResidualBottleneck(nn.Module):
    """ELIC's ``ResidualBottleneckBlock``: ``x + conv3(relu(conv2(relu(conv1(x)))))`` with
    the ReLUs and the sum fused into the convolutions. Overwrites its input (when the skip
    is the identity): only for tensors nobody else holds."""

    def __init__(self, block: ResidualBottleneckBlock, dtype, pack):
        super().__init__()
        self.conv1 = PackedConv2d.from_conv(block.conv1, relu=True, dtype=dtype, pack=pack)
        self.conv2 = PackedConv2d.from_conv(block.conv2, relu=True, dtype=dtype, pack=pack)
        self.conv3 = PackedConv2d.from_conv(block.conv3, dtype=dtype, pack=pack)
        self.skip = None if isinstance(block.skip, nn.Identity) else PackedConv2d.from_conv(
            block.skip, dtype=dtype, pack=pack)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.skip is None else self.skip(x)
        return self.conv3.accumulate(identity, self.conv2(self.conv1(x)))


class _ResidualUnit(nn.Module):
    """The ``ResidualUnit`` of CompressAI's ``AttentionBlock``:
    ``relu(x + conv1x1(relu(conv3x3(relu(conv1x1(x))))))``, fused."""

    def __init__(self, unit: nn.Module, dtype, pack):
        super().__init__()
        c1, r1, c2, r2, c3 = unit.conv
        assert isinstance(r1, nn.ReLU) and isinstance(r2, nn.ReLU) and isinstance(unit.relu, nn.ReLU)
        self.conv1 = PackedConv2d.from_conv(c1, relu=True, dtype=dtype, pack=pack)
        self.conv2 = PackedConv2d.from_conv(c2, relu=True, dtype=dtype, pack=pack)
        self.conv3 = PackedConv2d.from_conv(c3, dtype=dtype, pack=pack)

    def forward(self, x: Tensor, overwrite: bool) -> Tensor:
        h = self.conv2(self.conv1(x))
        if overwrite:
            return self.conv3.accumulate(x, h, relu=True)
        return self.conv3.add(x, h, relu=True)


class _Attention(nn.Module):
    """CompressAI's ``AttentionBlock``: ``x + a(x) * sigmoid(b(x))``, fused and in place
    (keeps its input, which both branches read)."""

    def __init__(self, block: AttentionBlock, dtype, pack):
        super().__init__()
        self.a = nn.ModuleList(_ResidualUnit(u, dtype, pack) for u in block.conv_a)
        *units, last = block.conv_b
        self.b = nn.ModuleList(_ResidualUnit(u, dtype, pack) for u in units)
        self.b_out = PackedConv2d.from_conv(last, dtype=dtype, pack=pack)

    @staticmethod
    def _chain(units, x: Tensor) -> Tensor:
        for i, unit in enumerate(units):
            x = unit(x, overwrite=i > 0)
        return x

    def forward(self, x: Tensor) -> Tensor:
        a = self._chain(self.a, x)
        b = self.b_out(self._chain(self.b, x)).sigmoid_()
        return a.mul_(b).add_(x)


class _Sequential(nn.Sequential):
    """``nn.Sequential`` whose layers may overwrite their input (each output is fresh)."""


def _convert(module: nn.Module, dtype, pack, subpixel) -> nn.Module:
    """The fast counterpart of one layer (``module`` itself if it has none)."""
    if isinstance(module, GDN):
        return FoldedGDN(module, dtype, pack, overwrite=True)
    if type(module) is nn.ConvTranspose2d:
        use_sub = subpixel(module) if callable(subpixel) else subpixel
        if use_sub and SubPixelDeconv.supports(module):
            return SubPixelDeconv(module, dtype, pack)
        if PackedConvTranspose2d.supports(module):
            return PackedConvTranspose2d(module, dtype, pack)
    if PackedConv2d.supports(module):
        return PackedConv2d.from_conv(module, dtype=dtype, pack=pack)
    if type(module) is ResidualBottleneckBlock:
        return _ResidualBottleneck(module, dtype, pack)
    if type(module) is AttentionBlock:
        return _Attention(module, dtype, pack)
    if type(module) is nn.Sequential:
        layers: list[nn.Module] = []
        for child in module:
            if (isinstance(child, nn.ReLU) and layers and isinstance(layers[-1], (PackedConv2d, PackedConvTranspose2d))
                    and not layers[-1].relu):
                layers[-1].relu = True  # fused
                continue
            layers.append(_convert(child, dtype, pack, subpixel))
        return _Sequential(*layers)
    if isinstance(module, (nn.ReLU, nn.LeakyReLU, nn.Identity)):
        return copy.deepcopy(module)
    raise TypeError(f"no fast version of {type(module).__name__}")


class _Layout(nn.Module):
    """Runs ``body`` on a private channels_last copy of the input (in ``dtype``) and returns a
    contiguous NCHW tensor in the input's dtype: the fast modules never leak their layout or
    precision, and never touch the caller's tensor."""

    def __init__(self, body: nn.Module, dtype: Optional[torch.dtype]):
        super().__init__()
        self.body = body
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        out_dtype = x.dtype
        x = x.to(dtype=self.dtype or x.dtype, memory_format=torch.channels_last, copy=True)
        return self.body(x).to(dtype=out_dtype, memory_format=torch.contiguous_format)


def bf16_supported(device: torch.device | str = "cpu") -> bool:
    """Whether bfloat16 convolutions are native (fast) on ``device``: CPUs with AVX512-BF16
    or AMX, CUDA GPUs with bf16."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and _packing_works(torch.bfloat16)
    except (AttributeError, RuntimeError):
        return False


def _subpixel_pays(deconv: nn.ConvTranspose2d) -> bool:
    """Whether the sub-pixel rewrite beats oneDNN's own transposed convolution (channels_last,
    prepacked), as measured on a 2-core AVX512 CPU (torch 2.11, oneDNN 3.10): for few outputs
    (a synthesis transform's last layer, 3 channels: 1.5-2x) and for wide inputs (ELIC's
    first layer, 320 -> 192: 2.5x). Elsewhere the native one was as fast or up to 1.5x faster
    (25 taps per output instead of the sub-pixel kernel's 36), and it gives the transposed
    convolution's values exactly."""
    return deconv.out_channels <= 16 or deconv.in_channels >= 256


def fast_transform(transform: nn.Module, *, dtype: Optional[torch.dtype] = None,
                   subpixel: bool | Callable[[nn.ConvTranspose2d], bool] = _subpixel_pays,
                   pack: Optional[bool] = None) -> nn.Module:
    """A fast, inference-only copy of ``transform`` (a CompressAI ``g_a`` / ``g_s`` / ``h_a``,
    ``nn.Sequential`` of convolutions, deconvolutions, GDNs, ReLUs, ELIC's residual and
    attention blocks).

    GDNs folded and normalised in place (:class:`FoldedGDN`); exact-upsampling
    deconvolutions rewritten (:class:`SubPixelDeconv`) where ``subpixel`` says so (a bool or
    a predicate of the layer; by default :func:`_subpixel_pays`), the others prepacked
    (:class:`PackedConvTranspose2d`); convolutions prepacked with fused ReLUs and residual
    sums (:class:`PackedConv2d`). ``pack=None``: prepack where oneDNN supports it. All in
    channels_last and in ``dtype`` (default: the weights' own). Input ``[B, C, H, W]`` in any
    layout; output like ``transform(x)``, contiguous NCHW, in the input's dtype. The copy
    holds its own (derived) weights: rebuild it when ``transform``'s change.

    Raises:
        TypeError: ``transform`` contains a layer with no fast version.
    """
    params = list(transform.parameters())
    dtype = dtype or (params[0].dtype if params else torch.float32)
    if pack is None:
        device = params[0].device if params else torch.device("cpu")
        pack = device.type == "cpu" and _packing_works(dtype)
    with torch.no_grad():
        body = _convert(transform, dtype, pack, subpixel).eval()
    return _Layout(body, dtype)


# Model classes whose ``compress`` / ``decompress`` use ``g_a`` only to produce the latents
# they quantise and ``g_s`` only to produce the reconstruction (checked by reading their code;
# tests/test_fast_transforms.py and tests/test_variable_rate.py check that files cross-decode).
SUPPORTED_CLASSES: tuple[type, ...] = (FactorizedPrior, ScaleHyperprior, MeanScaleHyperprior, Elic2022Official,
                                       ExactScaleHyperprior, ExactMeanScaleHyperprior,
                                       VariableRateMeanScaleHyperprior, VariableRateCheckerboard)


def supports(model: nn.Module) -> bool:
    """Whether :class:`FastTransforms` takes ``model``: an instance of exactly one of
    :data:`SUPPORTED_CLASSES` (not a subclass: it may use its transforms otherwise)."""
    return (type(model) in SUPPORTED_CLASSES and isinstance(getattr(model, "g_a", None), nn.Module)
            and isinstance(getattr(model, "g_s", None), nn.Module))


def fast_analysis(model: nn.Module, *, bf16: bool = False) -> nn.Module:
    """Fast copy of ``model.g_a`` (encoder only): ``[B, 3, H, W]`` -> ``y`` ``[B, M, H/16, W/16]``.

    In bfloat16 inside if ``bf16`` (the latents move by ~1e-2 relative; files stay valid).
    Output contiguous NCHW in the input's dtype.
    """
    return fast_transform(model.g_a, dtype=torch.bfloat16 if bf16 else None)


def fast_synthesis(model: nn.Module) -> nn.Module:
    """Fast copy of ``model.g_s``: ``y_hat`` ``[B, M, h, w]`` -> ``[B, 3, 16h, 16w]``, in
    the model's dtype (float32: the reconstruction moves by float rounding only). Output
    contiguous NCHW."""
    return fast_transform(model.g_s)


class FastTransforms:
    """Fast ``g_a`` / ``g_s`` copies of one model, and the model's own ``compress`` /
    ``decompress`` run with them.

    ``compress(x, **kw)`` and ``decompress(strings, shape, **kw)`` are the model's methods
    (CompressAI's or ncodec's code, unchanged) called on a *shadow* of the model: a shallow
    copy that shares every parameter, buffer and submodule (entropy models, ``h_a``, ``h_s``,
    context models) except ``g_a`` and ``g_s``, which are the fast copies. So the entropy
    parameters are computed by the model's own modules from tensors of the same layout and
    dtype as on the exact path, and files are interchangeable with the model's own methods:
    whatever encodes, either decodes it to the same latents.

    Args:
        model: a supported model (:func:`supports`) in eval mode, after ``update()``.
        bf16: run ``g_a`` in bfloat16 (encoder only; see :func:`fast_analysis`).

    The copies are built at construction; :meth:`refresh` rebuilds them if the model's
    ``g_a`` / ``g_s`` weights changed since (:attr:`stale`). The hyper-analysis ``h_a`` stays
    the model's own: on its small input a fast copy measured no faster (2.8 -> 2.6 ms for
    the GDN models at 768x512, 6.6 -> 20 ms for ELIC).
    """

    def __init__(self, model: nn.Module, *, bf16: bool = False):
        if not supports(model):
            raise TypeError(f"no fast transforms for {type(model).__name__}")
        self.model = model
        self.bf16 = bool(bf16)
        self._version: tuple = ()
        self.refresh(force=True)

    def _transforms_version(self) -> tuple:
        return (id(self.model.g_a), id(self.model.g_s),
                weights_version(self.model.g_a), weights_version(self.model.g_s))

    @property
    def stale(self) -> bool:
        """Whether the model's ``g_a`` / ``g_s`` changed since the copies were made."""
        return self._transforms_version() != self._version

    def refresh(self, force: bool = False) -> "FastTransforms":
        """(Re)build the fast copies if the model's transforms changed (or ``force``)."""
        if force or self.stale:
            version = self._transforms_version()
            self.g_a = fast_analysis(self.model, bf16=self.bf16)
            self.g_s = fast_synthesis(self.model)
            self._version = version
        return self

    def _shadow(self) -> nn.Module:
        """The model with the fast ``g_a`` / ``g_s`` in place of its own (made per call, so
        that it always holds the model's current other submodules)."""
        shadow = copy.copy(self.model)  # shares __dict__'s values: parameters, buffers, ...
        shadow.__dict__["_modules"] = {**self.model._modules, "g_a": self.g_a, "g_s": self.g_s}
        return shadow

    def compress(self, x: Tensor, **kwargs: Any) -> dict[str, Any]:
        """``model.compress(x, **kwargs)`` with the fast ``g_a``."""
        return self._shadow().compress(x, **kwargs)

    def decompress(self, strings: list, shape: Any, **kwargs: Any) -> dict[str, Any]:
        """``model.decompress(strings, shape, **kwargs)`` with the fast ``g_s``."""
        return self._shadow().decompress(strings, shape, **kwargs)
