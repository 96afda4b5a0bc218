"""Learned image models: CompressAI's architectures with ncodec's entropy models.

Each architecture is CompressAI's own class (so CompressAI checkpoints load and its
reconstructions are reproduced exactly) whose ``EntropyBottleneck`` / ``GaussianConditional``
modules are swapped for ncodec's (:func:`ncodec.entropy.models.use_ncodec_coder`): every
stream is written by ncodec's range coder.

Images are float ``[B, 3, H, W]`` in [0, 1], with H and W multiples of the architecture's
``alignment`` (padding is the caller's job). ``model.compress(x)`` returns CompressAI's
``{"strings": [[bytes per item] per entropy stream], "shape": ...}`` and
``model.decompress(strings, shape)["x_hat"]`` the reconstruction; run ``model.update()``
once before coding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from compressai.entropy_models import EntropyBottleneck as _CompressAIEntropyBottleneck
from compressai.entropy_models import GaussianConditional as _CompressAIGaussianConditional
from compressai.models import FactorizedPrior
from compressai.models.base import CompressionModel
from compressai.models.sensetime import Elic2022Official
from torch import Tensor, nn

from ncodec.entropy.models import use_ncodec_coder
from ncodec.models.checkerboard import VariableRateCheckerboard
from ncodec.models.fingerprint import state_fingerprint
from ncodec.models.hyperprior import ExactMeanScaleHyperprior, ExactScaleHyperprior
from ncodec.models.variable_rate import VariableRateMeanScaleHyperprior
from ncodec.models.weights import WeightsFormat, register_weights_format

__all__ = [
    "ARCHITECTURES",
    "ArchitectureSpec",
    "build_image_model",
    "estimate_bits",
    "from_compressai",
    "model_fingerprint",
]

QUALITIES = tuple(range(1, 9))


def _two_sizes(low: tuple[int, int], high: tuple[int, int], first_high: int) -> dict[int, tuple[int, int]]:
    """(N, M) per quality 1..8: ``low`` below ``first_high``, ``high`` from it on."""
    return {q: (low if q < first_high else high) for q in QUALITIES}


@dataclass(frozen=True)
class ArchitectureSpec:
    """One image architecture.

    Attributes:
        name: registry name (CompressAI's zoo name).
        builder: ``builder(N=..., M=..., **kwargs)`` -> a CompressAI model (CompressAI's
            entropy models; :func:`build_image_model` swaps them).
        sizes: ``{quality: (N, M)}``: N channels in the transforms, M latent channels.
        downsampling_factor: the image-to-deepest-latent stride; H and W must be multiples.
        description: one line.
        variable_rate: one network serves every quality (``forward(x, quality)``,
            ``compress(x, quality)``, ``decompress(strings, shape, quality)``).
    """

    name: str
    builder: Callable[..., CompressionModel]
    sizes: Mapping[int, tuple[int, int]] = field(repr=False)
    downsampling_factor: int
    description: str
    variable_rate: bool = False

    @property
    def alignment(self) -> int:
        """Image sizes must be multiples of this (= ``downsampling_factor``)."""
        return self.downsampling_factor

    @property
    def qualities(self) -> tuple[int, ...]:
        return tuple(sorted(self.sizes))

    def channels(self, quality: int) -> dict[str, int]:
        """``{"N": ..., "M": ...}`` for ``quality``, ready for ``build_image_model(**...)``."""
        if quality not in self.sizes:
            raise ValueError(f"{self.name}: quality must be one of {self.qualities}, got {quality}")
        n, m = self.sizes[quality]
        return {"N": n, "M": m}


# λ of the variable-rate model's qualities 1..5: CompressAI's MSE ladder, qualities 1..5.
VR_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250)

# Channel sizes are CompressAI's zoo cfgs (compressai/zoo/image.py) so that its trained
# weights, or ours trained at the same sizes, line up. mbt2018-mean switches at quality 5,
# the two bmshj2018 models at 6. CompressAI has no cfgs for ELIC: its class defaults
# (N=192, M=320, the paper's sizes at every rate) are used throughout.
ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.name: spec
    for spec in (
        ArchitectureSpec(
            "bmshj2018-factorized", FactorizedPrior, _two_sizes((128, 192), (192, 320), 6), 16,
            "Ballé et al. 2018 factorized prior (GDN transforms, per-channel entropy bottleneck)",
        ),
        ArchitectureSpec(
            "bmshj2018-hyperprior", ExactScaleHyperprior, _two_sizes((128, 192), (192, 320), 6), 64,
            "Ballé et al. 2018 scale hyperprior (zero-mean Gaussian, scales from a hyperprior)",
        ),
        ArchitectureSpec(
            "mbt2018-mean", ExactMeanScaleHyperprior, _two_sizes((128, 192), (192, 320), 5), 64,
            "Minnen et al. 2018 mean-scale hyperprior (no autoregressive context)",
        ),
        ArchitectureSpec(
            "mbt2018-mean-vr",
            lambda **kw: VariableRateMeanScaleHyperprior(lmbdas=VR_LAMBDAS, **kw),
            {q: (128, 192) for q in range(1, len(VR_LAMBDAS) + 1)}, 64,
            "mean-scale hyperprior, variable rate: one network, per-quality latent gains", True,
        ),
        ArchitectureSpec(
            "elic-gdn-vr",
            lambda **kw: VariableRateCheckerboard(lmbdas=VR_LAMBDAS, **kw),
            {q: (128, 192) for q in range(1, len(VR_LAMBDAS) + 1)}, 64,
            "variable-rate context model: GDN transforms, ELIC channel groups + checkerboard, parallel decoding",
            True,
        ),
        ArchitectureSpec(
            "elic2022", Elic2022Official, _two_sizes((192, 320), (192, 320), 9), 64,
            "He et al. 2022 ELIC: uneven channel groups + checkerboard context, parallel decoding",
        ),
    )
}


def build_image_model(arch: str, *, quality: int | None = None, **kwargs) -> CompressionModel:
    """A freshly initialised model of ``arch`` with ncodec's entropy models inside.

    Args:
        arch: a key of :data:`ARCHITECTURES`.
        quality: picks N and M from the architecture's sizes (explicit ``N`` / ``M`` win).
        **kwargs: passed to CompressAI's class: ``N``, ``M`` and e.g. ``groups`` for ELIC
            (its default groups need M > 128).

    Returns:
        the model in training mode; load weights, then ``model.update()`` before coding.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown image architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    spec = ARCHITECTURES[arch]
    if quality is not None:
        kwargs = {**spec.channels(quality), **kwargs}
    if "N" not in kwargs or "M" not in kwargs:
        raise ValueError(f"{arch}: give quality=, or both N= and M=")
    return from_compressai(spec.builder(**kwargs))


def from_compressai(model: CompressionModel) -> CompressionModel:
    """``model`` itself with its entropy models swapped for ncodec's, state preserved."""
    return use_ncodec_coder(model)


# Analysis transforms run only in the encoder; a decoder is the same model without them.
_ENCODER_ONLY = frozenset({"g_a", "h_a"})


def _decoding_state(model: nn.Module) -> dict[str, Tensor]:
    state = {k: v for k, v in model.state_dict().items() if not _ENCODER_ONLY.intersection(k.split("."))}
    # Masked convolutions (CompressAI's MaskedConv2d) multiply their weight by the mask in
    # place at every forward: hash the effective weight, so the fingerprint is the same
    # before and after the first forward.
    for name, module in model.named_modules():
        mask = getattr(module, "mask", None)
        key = f"{name}.weight"
        if isinstance(mask, Tensor) and key in state and mask.shape == state[key].shape:
            state[key] = state[key] * mask
    return state


def model_fingerprint(model: nn.Module) -> str:
    """Identity of everything decoding depends on, as 32 hex characters.

    SHA-256, truncated to 128 bits, over the ``state_dict`` entries in sorted key order
    (name, dtype, shape, raw little-endian bytes), the CDF tables included, leaving out the
    analysis transforms ``g_a`` / ``h_a`` (encoder only); masked convolutions contribute
    their masked (effective) weights. Two models that decode every
    stream alike have the same fingerprint; call it only after ``model.update()``.

    Raises:
        ValueError: an entropy model has no tables yet (``update()`` was not run).
    """
    for name, module in model.named_modules():
        if isinstance(module, (_CompressAIEntropyBottleneck, _CompressAIGaussianConditional)):
            if module._quantized_cdf.numel() == 0:
                who = name or type(module).__name__
                raise ValueError(f"entropy model {who!r} has no CDF tables: run update() first")
    return state_fingerprint(_decoding_state(model))


def estimate_bits(model: nn.Module, x: Tensor, quality: int | None = None) -> float:
    """The model's own rate estimate for ``x`` ``[B, 3, H, W]``, in bits (all items).

    ``-sum log2(likelihoods)`` of the model's forward pass in eval mode (rounding, not
    noise), i.e. what CompressAI's ``forward`` reports; compare with ``8 * len(bytes)``.
    ``quality`` is needed by variable-rate models only.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x, quality) if getattr(model, "variable_rate", False) else model(x)
            likelihoods = out["likelihoods"]
    finally:
        model.train(was_training)
    return float(sum(-torch.log2(p.double()).sum() for p in likelihoods.values()))


# ----------------------------------------------------------------------------- weights files

def _late_buffers(model: nn.Module, state: dict[str, Tensor]) -> list[str]:
    # Files exported before ncodec 0.2 lack the fixed-point gains of variable-rate models:
    # derived on load (from this machine's exp(); re-export the file to pin them).
    late = [k for k in ("exact_gain", "exact_ungain") if k in model.state_dict() and k not in state]
    state.update({k: model.state_dict()[k] for k in late})
    return late


register_weights_format(WeightsFormat(
    name="ncodec-image-weights-v1",
    architectures=lambda: ARCHITECTURES,
    build=lambda meta: build_image_model(meta["arch"], N=int(meta["N"]), M=int(meta["M"])),
    metadata=lambda arch, quality: {"quality": str(int(quality)),
                                    **{k: str(v) for k, v in ARCHITECTURES[arch].channels(quality).items()}},
    # Tables from the fp16-rounded parameters: loading never rebuilds them.
    before_export=lambda model: model.update(force=True),
    complete=_late_buffers,
    after_load=lambda model, late: model.update_exact_gains() if late else None,
))
