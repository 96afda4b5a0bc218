"""Overfitted image model (Cool-chic / C3 family): latent grids, upsampling, synthesis, ARM.

Nothing here is pretrained: :class:`InrImageModel` is fitted to one image at encode time
(:mod:`ncodec.models.inr_fit`), and its parameters and latents are what a file stores
(:mod:`ncodec.models.inr_coding`; the codec object: :mod:`ncodec.codecs.inr_image`).

* **Latent grids.** ``levels`` single-channel grids ``y[l]`` of ``ceil(H / 2^l) x ceil(W / 2^l)``
  values (integers once quantised; ``|y| <= latent_range``).
* **Upsampling.** Each grid is brought to ``H x W`` by repeated x2 steps of one learned
  ``upsampler_kernel`` x ``upsampler_kernel`` transposed convolution (stride 2, replicate
  padding) shared by all levels (initialised to bilinear), cropped after each step to the next
  finer grid's size; the ``levels`` maps stacked as channels ``[1, levels, H, W]``.
* **Synthesis.** 1x1 layers ``levels -> hidden -> ... -> 3`` (ReLU between), then
  ``residual_layers`` 3x3 convolutions ``3 -> 3`` each added as a residual (ReLU after all but
  the last): RGB in [0, 1] (Cool-chic's "hop" class by default).
* **ARM** (auto-regressive entropy model). For each latent value, ``CONTEXT`` causal neighbours in
  its own grid (rows above and values to the left, zeros off the grid) and its
  ``ancestor_context`` co-located values in the coarser grids (:func:`context_columns`; a
  decoder decodes the grids coarsest first) go through a small MLP to a location ``mu`` and a
  scale ``b`` (shared by all grids): a Laplace distribution. Training
  charges each latent the Laplace mass of ``[y - 1/2, y + 1/2]`` (:meth:`InrImageModel.rate_bits`);
  :meth:`InrImageModel.logits` gives the same shape sampled on the integers of the alphabet,
  which equals that mass up to one normalising factor for every value but the one holding
  ``mu``, in the form :mod:`ncodec.entropy.logits` codes exactly.

MACs per pixel (decoder): the synthesis's 1x1 layers plus the 3x3 residuals, the upsampling,
and the ARM's MLP for the ``4/3`` latents per pixel: :meth:`InrImageModel.macs_per_pixel`.

Speed (the fit runs these every iteration): the coarser grids are upsampled together
(depthwise, channels-last), the 1x1 layers are matrix products (bfloat16 on request). The rate
on float32 CPU tensors is one fused C++ pass (``ext/inr_fit.cpp``, :class:`_FusedArmRate`):
contexts, ARM, Laplace and every gradient per tile of 16 latents; elsewhere (CUDA, float64)
the ARM sees all grids' contexts as one batch of columns, contexts, ARM and Laplace each with
a hand-written gradient (:func:`context_columns`, :class:`_ArmRate`: the reference the fused
pass is tested against).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ncodec._inr_fit as _inr_fit  # the compiled kernel (ext/inr_fit.cpp)

__all__ = ["CONTEXT", "InrConfig", "InrImageModel", "PRESETS", "arm_contexts", "arm_output_bits", "context_columns"]

# Causal neighbours (dy, dx) of a latent in its grid: 3 to the left, 5 in each of the 2 rows
# above, 3 in the third row above. The farthest to the right, (-1, +2), sets the decoder's
# wavefront: value (y, x) may be decoded at step x + 3 * y.
CONTEXT: tuple[tuple[int, int], ...] = (
    (0, -1), (0, -2), (0, -3),
    (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2),
    (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2),
    (-3, -1), (-3, 0), (-3, 1),
)
_PAD_TOP, _PAD_LEFT, _PAD_RIGHT = 3, 3, 2


@dataclass(frozen=True)
class InrConfig:
    """Sizes of one :class:`InrImageModel` (every field JSON-serialisable: files store it).

    Attributes:
        levels: latent grids, at 1, 1/2, ..., 1/2^(levels-1) of the image size.
        synthesis_hidden: widths of the synthesis's hidden 1x1 layers (ReLU after each).
        arm_hidden: width of the ARM's hidden layers.
        latent_range: quantised latents lie in ``-latent_range .. latent_range``.
        residual_layers: 3x3 convolutions ``3 -> 3`` after the 1x1 layers, each added as a
            residual (``x + conv(x)``), a ReLU after every one but the last.
        arm_layers: hidden layers of the ARM (each ``Linear`` + ReLU).
        upsampler_kernel: size (even, >= 4) of the learned x2 transposed-convolution kernel.
        ancestor_context: how many coarser grids give each latent their co-located value as
            ARM context (grid ``l + k`` at ``(y >> k, x >> k)`` for ``k = 1 ..``; 0 past the
            coarsest grid). 0: the spatial context alone (inr-image formats 1 and 2). All 6 of
            the default 7 levels: on a 256x256 CID22 crop (quality 4, 2000 iterations, 3
            seeds) the latents took 18 % fewer bits at the same PSNR, for 96 ARM weights more.
    """

    levels: int = 7
    synthesis_hidden: tuple[int, ...] = (48,)
    arm_hidden: int = 16
    latent_range: int = 31
    residual_layers: int = 2
    arm_layers: int = 2
    upsampler_kernel: int = 8
    ancestor_context: int = 6


PRESETS: dict[str, InrConfig] = {
    # about 1,620 MAC/pixel (Cool-chic's "hop" class: 1x1 7 -> 48 -> 3, two 3x3 residuals,
    # ARM 16 x 2, 8x8 upsampling kernel)
    "default": InrConfig(),
    # about 730 MAC/pixel (1x1 7 -> 24 -> 3, one 3x3 residual, ARM 8 x 2, 6x6 upsampling kernel)
    "light": InrConfig(synthesis_hidden=(24,), arm_hidden=8, residual_layers=1, upsampler_kernel=6),
}


def arm_contexts(grid: Tensor) -> Tensor:
    """The ``CONTEXT`` neighbours of every value of ``grid [1, 1, h, w]``: ``[h * w, len(CONTEXT)]``
    (zeros outside the grid), rows in raster order."""
    return context_columns([grid], 0).T


def context_columns(latents: Sequence[Tensor], ancestors: int) -> Tensor:
    """Every latent's ARM context as one column: ``[len(CONTEXT) + ancestors, n]`` for the ``n``
    values of the grids ``latents`` (``[1, 1, h, w]``, finest first; flattened in raster order
    and concatenated). Rows ``0 .. len(CONTEXT) - 1``: the ``CONTEXT`` neighbours in the
    latent's own grid (0 off the grid); row ``len(CONTEXT) + k - 1``: grid ``l + k``'s value at
    ``(y >> k, x >> k)`` for a latent at ``(y, x)`` of grid ``l`` (0 where grid ``l + k`` does not
    exist; grid ``l + k`` has ``ceil(h_l / 2^k)`` rows, so ``y >> k`` always lies in it).

    Differentiable, with a hand-written gradient. Columns rather than rows: every row is a
    contiguous run per grid to write, and the ARM's matrix products on ``[features, n]`` are
    the fast layout on CPUs. (:meth:`InrImageModel.rate_bits` at 512x512, forward and
    backward on 2 threads of the 2-core Intel VM: 67 ms with these columns and the ARM of
    :class:`_ArmRate`, 111 ms with rows of contexts, an index gather of the ancestors and
    autograd's ARM.)"""
    return _ContextColumns.apply(ancestors, *latents)


def _neighbour_slices(h: int, w: int):
    """Where each neighbour of ``CONTEXT`` lies in a grid padded by ``_PAD_*``."""
    return [(slice(_PAD_TOP + dy, _PAD_TOP + dy + h), slice(_PAD_LEFT + dx, _PAD_LEFT + dx + w)) for dy, dx in CONTEXT]


class _ContextColumns(torch.autograd.Function):
    """:func:`context_columns`. Backward: each grid's neighbour gradients are added into one
    padded buffer per grid; an ancestor row's gradient is summed over each ``2^k x 2^k``
    block into its coarse value."""

    @staticmethod
    def forward(ctx, ancestors: int, *grids: Tensor) -> Tensor:
        shapes = [tuple(g.shape[-2:]) for g in grids]
        ctx.shapes, ctx.ancestors = shapes, ancestors
        out = grids[0].new_empty(len(CONTEXT) + ancestors, sum(h * w for h, w in shapes))
        start = 0
        for level, (g, (h, w)) in enumerate(zip(grids, shapes)):
            rows = out[:, start: start + h * w].view(-1, h, w)
            padded = F.pad(g.reshape(h, w), (_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, 0))
            for k, (sy, sx) in enumerate(_neighbour_slices(h, w)):
                rows[k].copy_(padded[sy, sx])
            for k in range(1, ancestors + 1):
                row = rows[len(CONTEXT) + k - 1]
                if level + k >= len(grids):
                    row.zero_()
                    continue
                (hk, wk), f = shapes[level + k], 2**k
                blocks = grids[level + k].reshape(hk, 1, wk, 1).expand(hk, f, wk, f)
                row.copy_(blocks.reshape(hk * f, wk * f)[:h, :w])
            start += h * w
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        shapes, ancestors = ctx.shapes, ctx.ancestors
        grad = grad.contiguous()
        buffers = [grad.new_zeros(h + _PAD_TOP, w + _PAD_LEFT + _PAD_RIGHT) for h, w in shapes]
        start = 0
        for level, (h, w) in enumerate(shapes):
            rows = grad[:, start: start + h * w].view(-1, h, w)
            for k, (sy, sx) in enumerate(_neighbour_slices(h, w)):
                buffers[level][sy, sx] += rows[k]
            for k in range(1, min(ancestors, len(shapes) - 1 - level) + 1):
                (hk, wk), f = shapes[level + k], 2**k
                blocks = F.pad(rows[len(CONTEXT) + k - 1], (0, wk * f - w, 0, hk * f - h)).view(hk, f, wk, f)
                buffers[level + k][_PAD_TOP:, _PAD_LEFT: _PAD_LEFT + wk] += blocks.sum((1, 3))
            start += h * w
        return (None, *[b[_PAD_TOP:, _PAD_LEFT: _PAD_LEFT + w].reshape(1, 1, h, w) for b, (h, w) in zip(buffers, shapes)])


def _laplace_terms(out: Tensor, flat: Tensor) -> tuple[Tensor, ...]:
    """The ARM's output ``out [2, n]`` (location ``mu``, raw log-scale) against latents
    ``flat [n]``: ``raw, b, upper, lower, e_upper, e_lower, mass``, the Laplace mass of
    ``[y - mu - 1/2, y - mu + 1/2]`` last (``b = exp(clamp(raw, -3, 3.9))``)."""
    raw = out[1]
    b = raw.clamp(-3.0, 3.9).exp_()
    v = flat - out[0]
    upper, lower = v + 0.5, v - 0.5
    e_upper, e_lower = (upper.abs() / -b).exp_(), (lower.abs() / -b).exp_()
    # the Laplace CDF 1/2 + sign(t) (1 - exp(-|t|/b)) / 2 at both ends: mass = difference
    mass = 0.5 * (upper.sign() * (1 - e_upper) - lower.sign() * (1 - e_lower))
    return raw, b, upper, lower, e_upper, e_lower, mass


def _mass_bits(mass: Tensor) -> Tensor:
    """``-log2`` of each mass, floored at ``2^-16``, summed: a scalar."""
    return -torch.log2(mass.clamp_min(2**-16)).sum()


def arm_output_bits(out: Tensor, flat: Tensor) -> Tensor:
    """Bits of latents ``flat [n]`` under the ARM's output ``out [2, n]`` (what
    :meth:`InrImageModel.rate_bits` sums; no gradient): a scalar."""
    return _mass_bits(_laplace_terms(out, flat)[-1])


class _ArmRate(torch.autograd.Function):
    """Bits of latents ``flat [n]`` under the ARM (layers ``weight, bias, ...``, ReLU between)
    applied to their context columns ``[features, n]``: ``-log2`` of the Laplace mass of
    ``[y - mu - 1/2, y - mu + 1/2]`` (floored at ``2^-16``), ``b = exp(clamp(raw, -3, 3.9))``,
    summed. One function with a hand-written gradient: the ARM runs on all ``4/3`` latents per
    pixel every iteration, and autograd's graph of its matrix products, ReLUs, clamp and
    Laplace costs about twice its arithmetic."""

    @staticmethod
    def forward(ctx, columns: Tensor, flat: Tensor, *layers: Tensor) -> Tensor:
        weights, biases = layers[0::2], layers[1::2]
        inputs, x = [columns], columns
        for i, (weight, bias) in enumerate(zip(weights, biases)):
            x = torch.addmm(bias[:, None], weight, x)
            if i < len(weights) - 1:
                x = x.clamp_min_(0)
                inputs.append(x)
        terms = _laplace_terms(x, flat)
        ctx.save_for_backward(*inputs, *weights, *terms)
        ctx.layers = len(weights)
        return _mass_bits(terms[-1])

    @staticmethod
    def backward(ctx, grad: Tensor):
        saved = ctx.saved_tensors
        inputs, weights = saved[: ctx.layers], saved[ctx.layers: 2 * ctx.layers]
        raw, b, upper, lower, e_upper, e_lower, mass = saved[2 * ctx.layers:]
        # d bits / d mass, 0 where the floor holds
        d_mass = torch.ops.aten.threshold_backward(-grad / (mass * math.log(2)), mass, 2**-16)
        d_v = d_mass * (e_upper - e_lower) / (2 * b)
        d_b = d_mass * (lower * e_lower - upper * e_upper) / (2 * b * b)
        d_raw = torch.where((raw >= -3.0) & (raw <= 3.9), d_b * b, 0.0)
        d_x = torch.stack([-d_v, d_raw])
        layer_grads: list[Tensor] = []
        d_columns = None
        for i in range(ctx.layers - 1, -1, -1):
            layer_grads = [d_x @ inputs[i].T, d_x.sum(1)] + layer_grads
            if i > 0:
                d_x = torch.ops.aten.threshold_backward(weights[i].T @ d_x, inputs[i], 0.0)  # ReLU's
            elif ctx.needs_input_grad[0]:
                d_columns = weights[0].T @ d_x
        return (d_columns, d_v, *layer_grads)


class _FusedArmRate(torch.autograd.Function):
    """:class:`_ArmRate` of :func:`context_columns`, in one pass on the CPU (``ext/inr_fit.cpp``):
    tiles of 16 latents have their contexts gathered, go through the ARM and the Laplace, and
    send their gradients back while they are in L1; the forward computes the gradients too
    (the rate's gradient is needed every fit iteration, and ``bits`` is a sum, so backward only
    scales them). Every gradient is summed in bands of rows fixed by the grids' sizes, so the
    result does not depend on the thread count. Float32 on CPU only; the same values as the
    reference to float rounding (``tests/test_inr_model.py``). The rate's forward and backward
    on the 2-core Intel VM: 5.2 ms at 256x256 on 1 thread, 11.5 ms at 512x512 on 2 (the
    reference: about 14 and 22); a fit iteration 43 -> 32 ms and 134 -> 91-94 ms."""

    @staticmethod
    def forward(ctx, ancestors: int, levels: int, *tensors: Tensor) -> Tensor:
        grids, layers = tensors[:levels], tensors[levels:]
        need_grad = any(ctx.needs_input_grad[2:])
        out = _inr_fit.arm_rate([g.reshape(g.shape[-2:]) for g in grids], _CONTEXT_OFFSETS, ancestors,
                                list(layers[0::2]), list(layers[1::2]), need_grad)
        if need_grad:
            n = len(layers) // 2
            grid_grads, weight_grads, bias_grads = out[1: 1 + levels], out[1 + levels: 1 + levels + n], out[1 + levels + n:]
            ctx.grads = [g.view(t.shape) for g, t in zip(grid_grads, grids)] + [
                t for pair in zip(weight_grads, bias_grads) for t in pair]
        return out[0].to(torch.float32)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return (None, None, *[g * grad for g in ctx.grads])


_CONTEXT_OFFSETS = torch.tensor(CONTEXT, dtype=torch.int64)


def _bilinear_kernel(size: int) -> Tensor:
    """The bilinear x2 transposed-convolution kernel ``[1, 1, size, size]``, centred."""
    k = torch.zeros(size)
    k[size // 2 - 2: size // 2 + 2] = torch.tensor([0.25, 0.75, 0.75, 0.25])
    return (k[:, None] * k[None, :]).view(1, 1, size, size)


class InrImageModel(nn.Module):
    """Latents, ARM and synthesis of one image of ``height x width`` pixels."""

    def __init__(self, height: int, width: int, config: InrConfig = InrConfig()):
        super().__init__()
        if height < 1 or width < 1:
            raise ValueError("image must have at least one pixel")
        k = config.upsampler_kernel
        if k < 4 or k % 2:
            raise ValueError(f"upsampler_kernel must be even and >= 4, not {k}")
        self.config, self.height, self.width = config, height, width
        self.latents = nn.ParameterList(
            [nn.Parameter(torch.zeros(1, 1, -(-height // 2**level), -(-width // 2**level)))
             for level in range(config.levels)])
        widths = (config.levels, *config.synthesis_hidden, 3)
        self.synthesis = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])])
        # Learned x2 upsampling shared by all levels (Cool-chic learns its upsampling too),
        # initialised to bilinear: transposed kernel, stride 2, replicate padding.
        self.upsampler = nn.ConvTranspose2d(1, 1, k, stride=2, padding=k // 2 - 1, bias=False)
        with torch.no_grad():
            self.upsampler.weight.copy_(_bilinear_kernel(k))
        self.residual = nn.ModuleList([nn.Conv2d(3, 3, 3, padding=1) for _ in range(config.residual_layers)])
        for conv in self.residual:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        if not 0 <= config.ancestor_context <= 15:
            raise ValueError(f"ancestor_context must lie in 0 .. 15, not {config.ancestor_context}")
        h, layers, width = config.arm_hidden, [], len(CONTEXT) + config.ancestor_context
        for _ in range(config.arm_layers):
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.arm = nn.Sequential(*layers, nn.Linear(width, 2))
        self.register_buffer("alphabet", torch.arange(-config.latent_range, config.latent_range + 1).float(),
                             persistent=False)

    # ------------------------------------------------------------------ decoder side

    def _up2(self, y: Tensor) -> Tensor:
        """One x2 step of every channel of ``y [1, C, h, w]``: the shared kernel applied
        depthwise (``groups=C``) in channels-last layout (several times faster on CPUs than
        the channels as a batch of one-channel images)."""
        c, h, w = y.shape[1:]
        k, p = self.config.upsampler_kernel, self.config.upsampler_kernel // 4
        y = F.pad(y, (p, p, p, p), mode="replicate").contiguous(memory_format=torch.channels_last)
        out = F.conv_transpose2d(y, self.upsampler.weight.expand(c, 1, k, k), stride=2, padding=k // 2 - 1, groups=c)
        return out[..., 2 * p: 2 * p + 2 * h, 2 * p: 2 * p + 2 * w]

    def upsample(self, latents: list[Tensor]) -> Tensor:
        """The grids brought to the image size: ``[1, levels, H, W]``, channel ``l`` grid ``l``
        after ``l`` x2 steps of the upsampler (cropped to the next grid's size after each).
        The coarser grids go up together: the grids of one size are stacked as channels."""
        y = latents[-1]
        for level in range(len(latents) - 2, -1, -1):
            h, w = latents[level].shape[-2:]
            y = torch.cat([latents[level], self._up2(y)[..., :h, :w]], 1)
        return y.contiguous(memory_format=torch.channels_last)

    def synthesize(self, latents: list[Tensor], *, bf16: bool = False, band_rows: int | None = None) -> Tensor:
        """RGB ``[1, 3, H, W]`` (not clamped) of the (quantised) latents.

        The 1x1 layers run as matrix products over ``[pixels, channels]`` and the 3x3 residuals
        in channels-last layout (both much faster on CPUs than NCHW). ``bf16`` runs the 1x1
        layers in bfloat16 (a training speed-up: the same function up to bfloat16 rounding);
        a decoder calls it with the default ``False``.

        ``band_rows``: synthesise bands of that many rows at a time (a decoder's bounded
        memory: the hidden layers' ``4 * width`` bytes per pixel exist for one band only; the
        upsampled grids, ``4 * levels`` bytes per pixel, and the output stay whole). Each band
        carries ``residual_layers`` rows of context on either side, so the result is the same
        function (equal up to float rounding)."""
        u = self.upsample(latents)
        if band_rows is None or band_rows >= self.height:
            return self._synthesize_rows(u, bf16)
        halo = len(self.residual)
        out = u.new_empty(1, 3, self.height, self.width).contiguous(memory_format=torch.channels_last)
        for r0 in range(0, self.height, band_rows):
            r1 = min(self.height, r0 + band_rows)
            a, b = max(0, r0 - halo), min(self.height, r1 + halo)
            # Zero padding at a band's cut edges corrupts at most `halo` rows there: dropped.
            out[..., r0:r1, :] = self._synthesize_rows(u[..., a:b, :], bf16)[..., r0 - a: r1 - a, :]
        return out

    def _synthesize_rows(self, u: Tensor, bf16: bool) -> Tensor:
        """:meth:`synthesize` of upsampled grids ``u [1, levels, h, W]`` (all or some rows)."""
        h, w = u.shape[-2:]
        last = len(self.synthesis) - 1
        if bf16:  # [pixels, channels] (fast in bfloat16, slow in float32)
            x = u.permute(0, 2, 3, 1).reshape(h * w, u.shape[1])
            with torch.autocast(u.device.type, dtype=torch.bfloat16):
                for i, layer in enumerate(self.synthesis):
                    x = layer(x)
                    x = F.relu(x) if i < last else x
            x = x.float().view(1, h, w, 3).permute(0, 3, 1, 2)  # channels-last [1, 3, H, W]
        else:  # [channels, pixels]
            x = self._pointwise(u.contiguous().view(u.shape[1], h * w))
            x = x.view(1, 3, h, w).contiguous(memory_format=torch.channels_last)
        return self.residuals(x)

    def residuals(self, x: Tensor) -> Tensor:
        """The 3x3 residual layers on ``x [1, 3, h, w]`` (the 1x1 layers' output): RGB, not
        clamped."""
        for i, conv in enumerate(self.residual):
            x = x + conv(x)
            if i < len(self.residual) - 1:
                x = F.relu(x)
        return x

    def _pointwise(self, x: Tensor) -> Tensor:
        """The 1x1 layers on ``x [levels, pixels]`` (float32): ``[3, pixels]``, before the residuals."""
        last = len(self.synthesis) - 1
        for i, layer in enumerate(self.synthesis):
            x = torch.addmm(layer.bias[:, None], layer.weight, x)
            x = F.relu(x) if i < last else x
        return x

    def logits(self, mu: Tensor, b: Tensor) -> Tensor:
        """Log-probabilities (unnormalised) ``[n, 2R + 1]`` of the alphabet."""
        return -(self.alphabet.view(1, -1) - mu.view(-1, 1)).abs() / b.view(-1, 1)

    # ------------------------------------------------------------------ training

    @torch.no_grad()
    def start_at_colour(self, colour: Tensor) -> None:
        """Shift the last 1x1 layer's bias so that latents of 0 synthesise ``colour`` ``[3]``
        everywhere (a fit's start; the residuals start at 0). Why: the ReLU after the first 3x3
        residual passes no gradient to a channel whose output is negative, and with a random
        init a whole channel's constant start can lie below 0, where it stays dead for the
        whole fit (on a CID22 photo, 2 seeds of 3 ended ~4.5 dB lower)."""
        start = self._pointwise(colour.new_zeros(self.config.levels, 1))[:, 0]
        self.synthesis[-1].bias.add_(colour - start)

    def rate_bits(self, latents: list[Tensor]) -> Tensor:
        """Bits of the (quantised, or noisy) ``latents`` under the ARM's Laplace: the mass of
        ``[y - 1/2, y + 1/2]`` (a smooth proxy for non-integer ``y``), a scalar. All grids go
        through the ARM as one batch, each latent's context its spatial neighbours then its
        ancestors (:func:`context_columns`)."""
        layers = [t for m in self.arm if isinstance(m, nn.Linear) for t in (m.weight, m.bias)]
        if all(t.device.type == "cpu" and t.dtype == torch.float32 for t in (*latents, *layers)):
            return _FusedArmRate.apply(self.config.ancestor_context, len(latents), *latents, *layers)
        columns = context_columns(latents, self.config.ancestor_context)
        flat = torch.cat([y.reshape(-1) for y in latents])
        return _ArmRate.apply(columns, flat, *layers)

    def macs_per_pixel(self) -> float:
        """Multiply-accumulates per decoded pixel: synthesis, residual, upsampling (the
        transposed kernel's ``k^2 / 4`` taps per output value) and the ARM (4/3 latents per pixel)."""
        widths = (self.config.levels, *self.config.synthesis_hidden, 3)
        synthesis = sum(a * b for a, b in zip(widths[:-1], widths[1:])) + self.config.residual_layers * 3 * 3 * 9
        h = self.config.arm_hidden
        arm = (len(CONTEXT) + self.config.ancestor_context) * h + (self.config.arm_layers - 1) * h * h + h * 2
        sizes = [y.numel() for y in self.latents]
        pixels = self.height * self.width
        # grid l goes through x2 steps to the sizes of grids l-1, ..., 0
        upsampled = sum(sum(sizes[:level]) for level in range(len(sizes))) / pixels
        upsampling = self.config.upsampler_kernel ** 2 / 4 * upsampled
        return synthesis + arm * sum(sizes) / pixels + upsampling

