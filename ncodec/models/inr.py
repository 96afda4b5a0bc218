"""Overfitted image model (Cool-chic / C3 family): latent grids, upsampling, synthesis, ARM.

Nothing here is pretrained: :class:`InrImageModel` is fitted to one image at encode time
(:mod:`ncodec.models.inr_fit`), and its parameters and latents are what a file will store.
(Work in progress for the ``inr-image`` codec: the model and its fit; the bitstream, the exact
ARM and the codec object come next.)

* **Latent grids.** ``levels`` single-channel grids ``y[l]`` of ``ceil(H / 2^l) x ceil(W / 2^l)``
  values (integers once quantised; ``|y| <= latent_range``).
* **Upsampling.** Each grid is brought to ``H x W`` by repeated x2 steps of one learned 4x4
  transposed convolution shared by all levels (initialised to bilinear), the ``levels`` maps
  stacked as channels ``[1, levels, H, W]``.
* **Synthesis.** 1x1 convolutions ``levels -> hidden -> ... -> 3`` (ReLU), then one 3x3
  convolution ``3 -> 3`` added as a residual: RGB in [0, 1].
* **ARM** (auto-regressive entropy model). For each latent value, ``CONTEXT`` causal neighbours in
  its own grid (rows above and values to the left, zeros off the grid) go through a small MLP
  to a location ``mu`` and a scale ``b`` (shared by all grids): a Laplace distribution. Training
  charges each latent the Laplace mass of ``[y - 1/2, y + 1/2]`` (:meth:`InrImageModel.rate_bits`);
  :meth:`InrImageModel.logits` gives the same shape sampled on the integers of the alphabet,
  which equals that mass up to one normalising factor for every value but the one holding
  ``mu``, in the form :mod:`ncodec.entropy.logits` codes exactly.

MACs per pixel (decoder): the synthesis's 1x1 layers plus the 3x3 residual, and the ARM's MLP
for the ``4/3`` latents per pixel: :meth:`InrImageModel.macs_per_pixel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CONTEXT", "InrConfig", "InrImageModel", "PRESETS", "arm_contexts"]

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
    """Sizes of one :class:`InrImageModel`.

    Attributes:
        levels: latent grids, at 1, 1/2, ..., 1/2^(levels-1) of the image size.
        synthesis_hidden: widths of the synthesis's hidden 1x1 layers.
        arm_hidden: width of the ARM's two hidden layers.
        latent_range: quantised latents lie in ``-latent_range .. latent_range``.
    """

    levels: int = 7
    synthesis_hidden: tuple[int, ...] = (40, 40)
    arm_hidden: int = 16
    latent_range: int = 31


PRESETS: dict[str, InrConfig] = {
    # about 2,000 MAC/pixel: Cool-chic's default class
    "default": InrConfig(),
    # about 700 MAC/pixel
    "light": InrConfig(synthesis_hidden=(16, 16), arm_hidden=8),
}


def _laplace_cdf(x: Tensor, b: Tensor) -> Tensor:
    return 0.5 + 0.5 * torch.sign(x) * (1 - torch.exp(-x.abs() / b))


def arm_contexts(grid: Tensor) -> Tensor:
    """The ``CONTEXT`` neighbours of every value of ``grid [1, 1, h, w]``: ``[h * w, len(CONTEXT)]``
    (zeros outside the grid), rows in raster order."""
    h, w = grid.shape[-2:]
    padded = F.pad(grid, (_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, 0))
    cols = [padded[0, 0, _PAD_TOP + dy: _PAD_TOP + dy + h, _PAD_LEFT + dx: _PAD_LEFT + dx + w].reshape(-1)
            for dy, dx in CONTEXT]
    return torch.stack(cols, -1)


class InrImageModel(nn.Module):
    """Latents, ARM and synthesis of one image of ``height x width`` pixels."""

    def __init__(self, height: int, width: int, config: InrConfig = InrConfig()):
        super().__init__()
        if height < 1 or width < 1:
            raise ValueError("image must have at least one pixel")
        self.config, self.height, self.width = config, height, width
        self.latents = nn.ParameterList(
            [nn.Parameter(torch.zeros(1, 1, -(-height // 2**level), -(-width // 2**level)))
             for level in range(config.levels)])
        widths = (config.levels, *config.synthesis_hidden, 3)
        self.synthesis = nn.ModuleList([nn.Conv2d(a, b, 1) for a, b in zip(widths[:-1], widths[1:])])
        # Learned x2 upsampling shared by all levels (Cool-chic learns its upsampling too),
        # initialised to bilinear: transposed 4x4 kernel, stride 2.
        self.upsampler = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
        with torch.no_grad():
            k = torch.tensor([0.25, 0.75, 0.75, 0.25])
            self.upsampler.weight.copy_((k[:, None] * k[None, :]).view(1, 1, 4, 4))
        self.residual = nn.Conv2d(3, 3, 3, padding=1)
        nn.init.zeros_(self.residual.weight)
        nn.init.zeros_(self.residual.bias)
        h = config.arm_hidden
        self.arm = nn.Sequential(nn.Linear(len(CONTEXT), h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2))
        self.register_buffer("alphabet", torch.arange(-config.latent_range, config.latent_range + 1).float(),
                             persistent=False)

    # ------------------------------------------------------------------ decoder side

    def upsample(self, latents: list[Tensor]) -> Tensor:
        """The grids brought to the image size: ``[1, levels, H, W]``."""
        maps = []
        for level, y in enumerate(latents):
            for _ in range(level):
                y = self.upsampler(F.pad(y, (1, 1, 1, 1), mode="replicate"))[..., 2:-2, 2:-2]
            maps.append(y[..., : self.height, : self.width])
        return torch.cat(maps, 1)

    def synthesize(self, latents: list[Tensor]) -> Tensor:
        """RGB ``[1, 3, H, W]`` (not clamped) of the (quantised) latents."""
        x = self.upsample(latents)
        for i, conv in enumerate(self.synthesis):
            x = conv(x)
            if i < len(self.synthesis) - 1:
                x = F.relu(x)
        return x + self.residual(x)

    def arm_parameters(self, contexts: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, b)`` ``[n]`` of contexts ``[n, len(CONTEXT)]`` (``b`` in [0.05, 50])."""
        out = self.arm(contexts)
        return out[:, 0], torch.exp(out[:, 1].clamp(-3.0, 3.9))

    def logits(self, mu: Tensor, b: Tensor) -> Tensor:
        """Log-probabilities (unnormalised) ``[n, 2R + 1]`` of the alphabet."""
        return -(self.alphabet.view(1, -1) - mu.view(-1, 1)).abs() / b.view(-1, 1)

    # ------------------------------------------------------------------ training

    def rate_bits(self, latents: list[Tensor]) -> Tensor:
        """Bits of the (quantised, or noisy) ``latents`` under the ARM's Laplace: the mass of
        ``[y - 1/2, y + 1/2]`` (a smooth proxy for non-integer ``y``), a scalar."""
        total = latents[0].new_zeros(())
        for y in latents:
            mu, b = self.arm_parameters(arm_contexts(y))
            v = y.reshape(-1) - mu
            upper, lower = _laplace_cdf(v + 0.5, b), _laplace_cdf(v - 0.5, b)
            total = total - torch.log2((upper - lower).clamp_min(2**-16)).sum()
        return total

    def macs_per_pixel(self) -> float:
        """Multiply-accumulates per decoded pixel: synthesis, residual, and the ARM (4/3
        latents per pixel)."""
        widths = (self.config.levels, *self.config.synthesis_hidden, 3)
        synthesis = sum(a * b for a, b in zip(widths[:-1], widths[1:])) + 3 * 3 * 9
        h = self.config.arm_hidden
        arm = len(CONTEXT) * h + h * h + h * 2
        latents = sum(y.numel() for y in self.latents) / (self.height * self.width)
        return synthesis + arm * latents
