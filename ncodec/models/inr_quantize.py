"""Quantising a fitted :class:`~ncodec.models.inr.InrImageModel` for its file: the latents
rounded, each network layer's parameters rounded to a power-of-two step chosen by
rate-distortion (:func:`quantize_network`), then refined one integer at a time
(:func:`refine_network`, rate-distortion optimised quantisation: RDOQ).

The cost everywhere is the fit's ``MSE + lam * bpp`` on RGB in [0, 1], ``bpp`` counting the
latents' bits under the ARM and the network's own bits as files code them
(:mod:`ncodec.models.inr_coding`). All of it is the encoder's choice: a decoder reads the
integers whatever chose them.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from ncodec.models.inr import InrImageModel, arm_output_bits, context_columns
from ncodec.models.inr_coding import choose_coding, group_ints, layer_bits, value_bits

__all__ = ["PARAMETER_STEPS", "module_groups", "network_layers", "parameter_bits", "quantize_network",
           "quantized_latents", "refine_network"]

PARAMETER_STEPS = tuple(2.0**-k for k in range(2, 15))
"""Quantisation steps tried for a layer's parameters (powers of two: exact to apply)."""


def quantized_latents(model: InrImageModel) -> list[Tensor]:
    """The latents rounded and clamped to the alphabet (what a file stores)."""
    r = model.config.latent_range
    return [y.detach().round().clamp(-r, r) for y in model.latents]


def module_groups(model: InrImageModel) -> dict[str, torch.nn.Module]:
    """The three parameter groups of inr-image format 1 files, one step each: the ARM decides
    probabilities, the rest (upsampling, synthesis) the pixels."""
    return {"arm": model.arm, "upsampler": model.upsampler, "synthesis": torch.nn.ModuleList(
        [*model.synthesis, *model.residual])}


def network_layers(model: InrImageModel) -> dict[str, torch.nn.Module]:
    """The layers whose parameters (weight and bias together) get a step and a Laplace row of
    their own (inr-image format 2), in file order: ARM ``arm.0 ..``, ``upsampler``, synthesis
    ``synthesis.0 ..``, residual ``residual.0 ..``. Per layer rather than per group: on a
    256x256 CID22 crop (2000 iterations, qualities 3-6) the network took 9-18 % fewer bits at
    -0.2 .. +0.04 dB."""
    arm = [m for m in model.arm if isinstance(m, torch.nn.Linear)]
    return {**{f"arm.{i}": m for i, m in enumerate(arm)}, "upsampler": model.upsampler,
            **{f"synthesis.{i}": m for i, m in enumerate(model.synthesis)},
            **{f"residual.{i}": m for i, m in enumerate(model.residual)}}


def parameter_bits(values: Tensor) -> float:
    """Bits of integer ``values`` (one layer's) as an inr-image file codes them: one exact
    zero-mean Laplace row for the layer (:func:`ncodec.models.inr_coding.layer_bits`; the
    layers share one stream, so its few header bytes are not counted here)."""
    return layer_bits(values)


def _mse(x_hat: Tensor, x: Tensor) -> float:
    return float((x_hat.clamp(0, 1) - x).pow(2).mean())


@torch.no_grad()
def quantize_network(model: InrImageModel, image: Tensor, lam: float,
                     layers: dict[str, torch.nn.Module] | None = None) -> dict:
    """Round each layer's parameters (``layers``, default :func:`network_layers`) of a fitted
    ``model`` to multiples of the step of :data:`PARAMETER_STEPS` that minimises
    ``MSE + lam * bpp`` (latents' bits included), layer after layer, in place. Returns
    ``{layer: {"step", "step_bits", "bits"}, "network_bits", "latent_bits", "mse", "bpp"}``
    (``step = 2^-step_bits``)."""
    x = image.detach().float().unsqueeze(0)
    pixels = x.shape[-2] * x.shape[-1]
    latents = quantized_latents(model)
    latent_bits = float(model.rate_bits(latents))
    arm = {id(p) for p in model.arm.parameters()}
    upsampled = model.upsample(latents)
    mse = _mse(model._synthesize_rows(upsampled, False), x)
    chosen: dict = {}
    for name, module in (network_layers(model) if layers is None else layers).items():
        decides_rates = any(id(p) in arm for p in module.parameters())  # and not the pixels
        original = [p.detach().clone() for p in module.parameters()]
        best = None
        for step in PARAMETER_STEPS:
            ints = [torch.round(p / step) for p in original]
            for p, q in zip(module.parameters(), ints):
                p.copy_(q * step)
            bits = parameter_bits(torch.cat([q.reshape(-1) for q in ints]))
            if decides_rates:
                step_mse, rate = mse, float(model.rate_bits(latents))
            else:
                u = model.upsample(latents) if module is model.upsampler else upsampled
                step_mse, rate = _mse(model._synthesize_rows(u, False), x), latent_bits
            cost = step_mse + lam * (rate + bits) / pixels
            if best is None or cost < best[0]:
                best = (cost, step, bits, rate, step_mse)
        _, step, bits, rate, mse = best
        for p, q in zip(module.parameters(), original):
            p.copy_(torch.round(q / step) * step)
        if module is model.upsampler:
            upsampled = model.upsample(latents)
        latent_bits = rate
        chosen[name] = {"step": step, "step_bits": round(-math.log2(step)), "bits": bits}
    network_bits = sum(v["bits"] for v in chosen.values())
    return {**chosen, "network_bits": network_bits, "latent_bits": latent_bits, "mse": mse,
            "bpp": (network_bits + latent_bits) / pixels}


class _LinearChain:
    """Linear layers (``[features, n]`` layout, ReLU between) on fixed ``inputs``, then
    ``tail(output) -> float``. It keeps each layer's input and pre-activation, so the value
    after a change of one weight or bias of layer ``k`` costs a rank-1 update of layer
    ``k + 1`` and the layers after it, not the whole chain (RDOQ tries one change per
    parameter)."""

    def __init__(self, layers: list[nn.Linear], inputs: Tensor, tail: Callable[[Tensor], float]):
        self.layers, self.inputs, self.tail = layers, inputs, tail
        self.refresh()

    def refresh(self) -> float:
        """Recompute the caches from the layers' current parameters; the tail's value."""
        self.layer_inputs, self.pre = [], []
        a = self.inputs
        for i, layer in enumerate(self.layers):
            self.layer_inputs.append(a)
            z = torch.addmm(layer.bias[:, None], layer.weight, a)
            self.pre.append(z)
            a = z.clamp_min(0) if i < len(self.layers) - 1 else z
        self.value = self.tail(a)
        return self.value

    def value_if(self, k: int, index: int, delta: float) -> float:
        """The tail's value were parameter ``index`` of layer ``k`` (in ``parameters()``
        order: the weight row-major, then the bias) larger by ``delta``. :meth:`commit` then
        takes the change into the caches (after the parameter itself is changed)."""
        layer = self.layers[k]
        if index < layer.weight.numel():
            row, column = divmod(index, layer.weight.shape[1])
            z_row = self.pre[k][row] + delta * self.layer_inputs[k][column]
        else:
            row = index - layer.weight.numel()
            z_row = self.pre[k][row] + delta
        last = len(self.layers) - 1
        if k == last:
            out = self.pre[k].clone()
            out[row] = z_row
            self._trial = (k, row, z_row, [])
            value = self.tail(out)
        else:
            change = z_row.clamp_min(0) - self.layer_inputs[k + 1][row]
            after = [torch.addr(self.pre[k + 1], self.layers[k + 1].weight[:, row], change)]
            for j in range(k + 2, last + 1):
                after.append(torch.addmm(self.layers[j].bias[:, None], self.layers[j].weight, after[-1].clamp_min(0)))
            self._trial = (k, row, z_row, after)
            value = self.tail(after[-1])
        self._trial_value = value
        return value

    def commit(self) -> float:
        """Take the last :meth:`value_if` into the caches; its value."""
        k, row, z_row, after = self._trial
        self.pre[k][row] = z_row
        if after:
            self.layer_inputs[k + 1][row] = z_row.clamp_min(0)
            for j, z in enumerate(after, start=k + 1):
                if j > k + 1:
                    self.layer_inputs[j] = self.pre[j - 1].clamp_min(0)
                self.pre[j] = z
        self.value = self._trial_value
        return self.value


@torch.no_grad()
def refine_network(model: InrImageModel, image: Tensor, lam: float, info: dict, *, passes: int = 1) -> dict:
    """RDOQ of a network :func:`quantize_network` has quantised (``info``, its result): each
    integer parameter moves one step up or down where that lowers ``MSE + lam * bpp``
    (network bits included), greedily, layer after layer, in place; ``passes`` times over the
    network. Returns ``info`` updated (the same keys; steps unchanged).

    Which move to try: a gradient of the distortion (or, for the ARM, of the latents' rate)
    at the current parameters, plus each move's exact change of the layer's bits, predicts
    every move's change of the cost to first order; each parameter's better move is tried, in
    order of its predicted gain, where that is a gain. Trying means evaluating the exact cost:
    a rank-1 update through the layer's chain (:class:`_LinearChain`) for the 1x1 and ARM
    layers, the residuals alone for the residual layers, the whole synthesis for the
    upsampler. On a 256x256 CID22 crop (quality 4, 2000 iterations, fits of 2 seeds) one pass
    lowered the cost about as much as trying both moves of every parameter by whole
    evaluations (-1.9 / -3.0 % against -1.8 / -3.2 %), in 3.6 s against 27-32 s on 1 thread.
    """
    x = image.detach().float().unsqueeze(0)
    h, w = x.shape[-2:]
    pixels = h * w
    latents = quantized_latents(model)
    layers = network_layers(model)
    steps = {n: info[n]["step"] for n in layers}
    bits = {n: info[n]["bits"] for n in layers}
    flat = torch.cat([y.reshape(-1) for y in latents])
    arm_linear = [m for m in model.arm if isinstance(m, nn.Linear)]
    arm = _LinearChain(arm_linear, context_columns(latents, model.config.ancestor_context),
                       lambda out: float(arm_output_bits(out, flat)))

    def pointwise_image(out: Tensor) -> Tensor:
        return out.view(1, 3, h, w).contiguous(memory_format=torch.channels_last)

    def upsampled() -> Tensor:
        u = model.upsample(latents)
        return u.contiguous().view(u.shape[1], pixels)

    synthesis = _LinearChain(list(model.synthesis), upsampled(),
                             lambda out: _mse(model.residuals(pointwise_image(out)), x))
    before_residuals = pointwise_image(synthesis.pre[-1])
    mse, rate = synthesis.value, arm.value

    def cost(mse: float, rate: float, bits: dict) -> float:
        return mse + lam * (rate + sum(bits.values())) / pixels

    for _ in range(passes):
        for name, module in layers.items():
            params = list(module.parameters())
            step = steps[name]
            chain = arm if module in arm_linear else synthesis if module in model.synthesis else None
            with torch.enable_grad():
                if chain is arm:
                    loss = lam * model.rate_bits(latents) / pixels
                else:
                    loss = (model.synthesize(latents).clamp(0, 1) - x).pow(2).mean()
                grads = torch.autograd.grad(loss, params)
            ints = group_ints(module, info[name]["step_bits"])
            gradient = torch.cat([g.reshape(-1) for g in grads]).double()
            coding = choose_coding(0, ints)  # held fixed for the prediction; tries re-choose it
            now = value_bits(ints, coding)
            predicted = torch.stack([gradient * d * step + lam * (value_bits(ints + d, coding) - now) / pixels
                                     for d in (1, -1)], 1)
            gain, which = predicted.min(1)
            order = torch.argsort(gain)
            offsets = [0]
            for p in params:
                offsets.append(offsets[-1] + p.numel())
            current = cost(mse, rate, bits)
            for index in order[gain[order] < 0].tolist():
                delta = (1, -1)[int(which[index])]
                tried = dict(bits)
                ints[index] += delta
                tried[name] = parameter_bits(ints)
                part = next(i for i in range(len(params)) if index < offsets[i + 1])
                target = params[part].view(-1)
                local = index - offsets[part]
                if chain is arm:
                    new_mse, new_rate = mse, chain.value_if(arm_linear.index(module), index, delta * step)
                elif chain is synthesis:
                    new_mse, new_rate = chain.value_if(list(model.synthesis).index(module), index, delta * step), rate
                else:
                    target[local] += delta * step
                    if module is model.upsampler:
                        new_mse = _mse(model.synthesize(latents), x)
                    else:
                        new_mse = _mse(model.residuals(before_residuals), x)
                    target[local] -= delta * step
                    new_rate = rate
                new_cost = cost(new_mse, new_rate, tried)
                if new_cost < current:
                    target[local] = (ints[index] * step).item()
                    bits = tried
                    if chain is not None:
                        chain.commit()
                    mse, rate, current = new_mse, new_rate, new_cost
                else:
                    ints[index] -= delta
            if chain is not None:  # exact values again, no drift from the rank-1 updates
                mse, rate = (mse, chain.refresh()) if chain is arm else (chain.refresh(), rate)
            if module is model.upsampler:
                synthesis.inputs = upsampled()
                mse = synthesis.refresh()
                before_residuals = pointwise_image(synthesis.pre[-1])
            elif chain is synthesis:
                before_residuals = pointwise_image(synthesis.pre[-1])
    network_bits = sum(bits.values())
    out = {**info, **{n: {**info[n], "bits": bits[n]} for n in layers}}
    return {**out, "network_bits": network_bits, "latent_bits": rate, "mse": mse,
            "bpp": (network_bits + rate) / pixels}
