"""CompressAI's entropy models, coding through ncodec's range coder.

:class:`EntropyBottleneck` and :class:`GaussianConditional` subclass CompressAI's classes of
the same names and keep their parameters, buffers and ``state_dict`` keys, so CompressAI
checkpoints load as they are and CompressAI's models and latent codecs
(``compressai.latent_codecs``) drive them unchanged. Two things differ:

* ``update()`` builds the CDF tables with :func:`ncodec.entropy.pmf_to_quantized_cdf` (one
  batched call, closer to the ideal rate, bit-identical on every machine for the same pmf);
* ``compress`` / ``decompress`` code whole tensors through an entropy stage
  (:meth:`EntropyBottleneck.entropy_stage`: :class:`ncodec.entropy.FactorizedStage`;
  :meth:`GaussianConditional.entropy_stage`: :class:`ncodec.entropy.GaussianStage`), one
  stream per batch item, instead of CompressAI's rANS fed with Python lists.

Symbols, means/medians, quantisation and dequantisation are CompressAI's own, so a model
reconstructs exactly what it reconstructs with CompressAI's coder; only the bytes differ.
Both coders share the table convention: ``value = symbol - offset``, values ``0 .. len-3``
regular, value ``len-2`` the escape followed by raw bits, so every int32 symbol round-trips.

:func:`use_ncodec_coder` swaps these classes into any CompressAI model.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import torch
from compressai.entropy_models import EntropyBottleneck as _CompressAIEntropyBottleneck
from compressai.entropy_models import GaussianConditional as _CompressAIGaussianConditional
from torch import Tensor, nn

from ncodec.entropy import coder as _coder
from ncodec.entropy.stage import CdfTable, EntropyStage, FactorizedStage, GaussianStage

__all__ = ["EntropyBottleneck", "GaussianConditional", "use_ncodec_coder"]

# Buffers whose size is only known after update(): a fresh module holds them empty.
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


class _NcodecCoding:
    """Table building and tensor-wide coding shared by both entropy models.

    Mixed in before the CompressAI class, so it relies on that class's buffers
    (``_quantized_cdf`` ``[rows, width]`` int32, ``_cdf_length`` ``[rows]``, ``_offset``
    ``[rows]``), its ``quantize`` / ``dequantize`` and its ``_check_*`` helpers.
    """

    num_threads: Optional[int] = None
    """CPU threads for the coder (None: all available); never changes the bytes."""

    def _pmf_to_cdf(self, pmf: Tensor, tail_mass: Tensor, pmf_length: Tensor, max_length: int) -> Tensor:
        """CDF table for CompressAI's ``update()``, built by ncodec's quantiser in one call.

        Args:
            pmf: ``[rows, >= max_length]`` masses of the regular symbols (entries past
                ``pmf_length[r]`` are ignored).
            tail_mass: ``[rows, 1]`` (or ``[rows]``) mass left to the escape.
            pmf_length: ``[rows]`` number of regular symbols per row.
            max_length: ``pmf_length.max()``.

        Returns:
            int32 ``[rows, max_length + 2]`` on ``pmf``'s device: row ``r`` holds
            ``pmf_length[r] + 2`` entries from 0 to 2**16, zeros after (CompressAI's layout).
        """
        if self.entropy_coder_precision != _coder.PRECISION:
            raise ValueError(
                f"ncodec's coder works at {_coder.PRECISION}-bit precision, "
                f"this model asks for {self.entropy_coder_precision}"
            )
        # float64 on the CPU: the same values CompressAI's quantiser gets through .tolist().
        # Masses are differences of monotone float functions; clamping at 0 only removes
        # rounding noise below zero, which ncodec's quantiser would reject (NaN still raises).
        pmf64 = pmf.detach()[:, :max_length].to(device="cpu", dtype=torch.float64).clamp(min=0)
        tails = tail_mass.detach().to("cpu", torch.float64).reshape(-1).clamp(min=0)
        cdf = _coder.pmf_to_quantized_cdf(
            pmf64, pmf_lengths=pmf_length.detach().to("cpu", torch.int64).reshape(-1), tail_mass=tails
        )
        return cdf.to(pmf.device)

    def _check_tables(self) -> None:
        self._check_cdf_size()
        self._check_cdf_length()
        self._check_offsets_size()

    def cdf_table(self) -> CdfTable:
        """The tables of ``update()`` (checked to exist) as a :class:`CdfTable` (CPU int32)."""
        self._check_tables()
        return CdfTable(self._quantized_cdf, self._cdf_length, self._offset)

    def entropy_stage(self) -> EntropyStage:
        """The stage that codes this model's symbols (built from the current tables)."""
        raise NotImplementedError

    def _encode_indexed(self, inputs: Tensor, indexes: Tensor, means: Optional[Tensor]) -> list[bytes]:
        """CompressAI's ``EntropyModel.compress``, coded by ncodec.

        Args:
            inputs: float ``[B, ...]`` values to quantise (``round(inputs - means)``).
            indexes: integer ``[B, ...]`` (same shape) CDF row of each value.
            means: optional, broadcastable to ``inputs``.

        Returns:
            one ncodec stream per batch item.
        """
        if inputs.dim() < 2:
            raise ValueError("Invalid `inputs` size. Expected a tensor with at least 2 dimensions.")
        if inputs.size() != indexes.size():
            raise ValueError("`inputs` and `indexes` should have the same size.")
        stage = self.entropy_stage()
        symbols = self.quantize(inputs, "symbols", means)
        return [stage.encode(symbols[i], indexes[i]) for i in range(symbols.size(0))]

    def _decode_indexed(
        self, strings: Sequence[bytes], indexes: Tensor, dtype: torch.dtype, means: Optional[Tensor]
    ) -> Tensor:
        """CompressAI's ``EntropyModel.decompress``, coded by ncodec.

        Returns:
            ``dequantize(symbols, means, dtype)``, shaped like ``indexes`` ``[B, ...]``.

        Raises:
            ncodec.BitstreamError: a stream is malformed or does not match ``indexes``.
        """
        if not isinstance(strings, (tuple, list)):
            raise ValueError("Invalid `strings` parameter type.")
        if len(strings) != indexes.size(0):
            raise ValueError("Invalid strings or indexes parameters")
        if indexes.dim() < 2:
            raise ValueError("Invalid `indexes` size. Expected a tensor with at least 2 dimensions.")
        stage = self.entropy_stage()
        if means is not None:
            if means.size()[:2] != indexes.size()[:2]:
                raise ValueError("Invalid means or indexes parameters")
            if means.size() != indexes.size() and any(means.size(i) != 1 for i in range(2, indexes.dim())):
                raise ValueError("Invalid means parameters")

        symbols = torch.empty(indexes.size(), dtype=torch.int32, device=self._quantized_cdf.device)
        for i, data in enumerate(strings):
            symbols[i] = stage.decode(data, indexes[i])
        return self.dequantize(symbols, means, dtype)


class EntropyBottleneck(_NcodecCoding, _CompressAIEntropyBottleneck):
    """CompressAI's factorized prior (``compressai.entropy_models.EntropyBottleneck``),
    coded by ncodec.

    Same constructor, parameters and buffers. ``compress(x)`` takes ``x`` ``[B, C, *S]``
    and returns ``B`` streams; ``decompress(strings, S)`` returns the dequantised
    ``[B, C, *S]`` (``round(x - median) + median``, per channel).
    """

    def compress(self, x: Tensor) -> list[bytes]:
        indexes = self._build_indexes(x.size())
        medians = self._medians_like(x.size(0), x.dim() - 2)
        return self._encode_indexed(x, indexes, medians)

    def entropy_stage(self) -> FactorizedStage:
        """Per-channel rows: ``params`` are the channel indexes (``_build_indexes``)."""
        return FactorizedStage(self.cdf_table(), num_threads=self.num_threads)

    def decompress(self, strings: Sequence[bytes], size: Sequence[int]) -> Tensor:
        output_size = (len(strings), self._quantized_cdf.size(0), *size)
        indexes = self._build_indexes(output_size).to(self._quantized_cdf.device)
        medians = self._medians_like(len(strings), len(size))
        return self._decode_indexed(strings, indexes, medians.dtype, medians)

    def _medians_like(self, batch: int, spatial_dims: int) -> Tensor:
        """Per-channel medians ``[batch, C, 1, ..., 1]`` (expanded, no copy), as CompressAI."""
        medians = self._extend_ndims(self._get_medians().detach(), spatial_dims)
        return medians.expand(batch, *([-1] * (spatial_dims + 1)))


class GaussianConditional(_NcodecCoding, _CompressAIGaussianConditional):
    """CompressAI's Gaussian conditional (``compressai.entropy_models.GaussianConditional``),
    coded by ncodec.

    Same constructor, parameters and buffers; ``compress(inputs, indexes, means)`` and
    ``decompress(strings, indexes, dtype, means)`` have CompressAI's signatures: ``indexes``
    (from ``build_indexes(scales)``) has the shape of ``inputs`` ``[B, ...]``.
    """

    def build_indexes(self, scales: Tensor) -> Tensor:
        """CDF row of each scale: the first table scale ``>= max(scales, scale_bound)``.

        int32, shaped like ``scales``; equal to CompressAI's result (which counts, over 63
        full-tensor passes, the table scales ``>= scale``) in one ``searchsorted``: the
        count of table scales ``< scale`` among all but the last. The table is compared in
        ``scales``' dtype, as CompressAI's tensor-vs-scalar comparisons promote. (About
        10 ms of ELIC's 16 ms entropy-model time on a 256x256 image went to that loop.)
        """
        scales = self.lower_bound_scale(scales)
        table = self.scale_table[:-1].to(dtype=scales.dtype)
        return torch.searchsorted(table, scales.contiguous(), side="left").int()

    def entropy_stage(self) -> GaussianStage:
        """Rows of ``scale_table``: ``params`` are row indexes (:meth:`build_indexes`, or exact
        integer ones) or float scales (mapped as :meth:`build_indexes` maps them)."""
        return GaussianStage(self.cdf_table(), self.scale_table.detach().cpu(),
                             float(self.lower_bound_scale.bound), num_threads=self.num_threads)

    def compress(self, inputs: Tensor, indexes: Tensor, means: Optional[Tensor] = None) -> list[bytes]:
        return self._encode_indexed(inputs, indexes, means)

    def decompress(
        self,
        strings: Sequence[bytes],
        indexes: Tensor,
        dtype: torch.dtype = torch.float,
        means: Optional[Tensor] = None,
    ) -> Tensor:
        return self._decode_indexed(strings, indexes, dtype, means)


def _likelihood_bound(module: nn.Module) -> float:
    return float(module.likelihood_lower_bound.bound) if module.use_likelihood_bound else 0.0


def _reference_tensor(module: nn.Module) -> Optional[Tensor]:
    """A floating parameter or buffer of ``module``, to match its device and dtype."""
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return t
    return None


def _ncodec_twin(module: nn.Module) -> nn.Module:
    """A new ncodec entropy model with ``module``'s constructor arguments and state."""
    common = dict(
        likelihood_bound=_likelihood_bound(module),
        entropy_coder=module.entropy_coder.name,
        entropy_coder_precision=module.entropy_coder_precision,
        tail_mass=module.tail_mass,
    )
    if isinstance(module, _CompressAIEntropyBottleneck):
        twin = EntropyBottleneck(module.channels, init_scale=module.init_scale, filters=module.filters, **common)
    else:
        scale_table = module.scale_table.tolist() or None
        twin = GaussianConditional(scale_table, scale_bound=float(module.lower_bound_scale.bound), **common)
    ref = _reference_tensor(module)
    if ref is not None:
        twin.to(device=ref.device, dtype=ref.dtype)
    # Table buffers are empty in a fresh module; give them the source's sizes so that a
    # strict load_state_dict can fill them (CompressAI resizes them the same way).
    for name in _TABLE_BUFFERS:
        source = module._buffers.get(name)
        if source is not None and name in twin._buffers:
            twin._buffers[name] = torch.empty_like(source)
    twin.load_state_dict(module.state_dict())
    twin.train(module.training)
    return twin


def _needs_swap(module: nn.Module) -> bool:
    # Exact types only: CompressAI subclasses (e.g. GaussianMixtureConditional) code with
    # other signatures and tables, so they are left alone (with a warning).
    if type(module) in (_CompressAIEntropyBottleneck, _CompressAIGaussianConditional):
        return True
    if isinstance(module, (_CompressAIEntropyBottleneck, _CompressAIGaussianConditional)) and not isinstance(
        module, _NcodecCoding
    ):
        warnings.warn(
            f"{type(module).__name__} is not swapped for an ncodec entropy model; it keeps CompressAI's coder",
            stacklevel=3,
        )
    return False


def use_ncodec_coder(model: nn.Module) -> nn.Module:
    """Make every CompressAI ``EntropyBottleneck`` / ``GaussianConditional`` of ``model``
    code through ncodec, in place.

    Each such submodule is replaced by the ncodec subclass built with the same constructor
    arguments and loaded with its state (parameters, CDF tables if ``update()`` ran, device,
    dtype, train/eval mode). A module registered under several names gets one replacement,
    and references held in plain ``dict`` attributes (as CompressAI's latent codecs keep
    their sub-codecs) are redirected too. Already-ncodec modules are left as they are.

    Returns:
        ``model`` itself, or its replacement when ``model`` is itself an entropy model.
    """
    if _needs_swap(model):
        return _ncodec_twin(model)
    twins: dict[int, nn.Module] = {}
    modules = list(model.modules())
    for parent in modules:
        for name, child in list(parent._modules.items()):
            if child is not None and _needs_swap(child):
                if id(child) not in twins:
                    twins[id(child)] = _ncodec_twin(child)
                parent._modules[name] = twins[id(child)]
    if twins:
        for parent in model.modules():
            for attr, value in vars(parent).items():
                if attr.startswith("_") or not isinstance(value, dict):
                    continue
                for key, item in list(value.items()):
                    if id(item) in twins:
                        value[key] = twins[id(item)]
    return model
