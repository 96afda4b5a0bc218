"""Fast transforms (ncodec.models.fast) and the codec's fast path.

The rewrites are checked against CompressAI's layers (folded GDN bit-exact, sub-pixel
deconvolution to float rounding, with a check that the tolerance would catch a wrong
rewrite), and the codec's fast path against its exact one: files written by either decode
with either to the same latents, the fast reconstruction stays within float rounding of the
exact one, decoding is deterministic, and the model itself (weights, keys, fingerprint) is
not touched. Small channel counts keep the file fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from compressai.layers import GDN, MaskedConv2d
from PIL import Image
from torch import nn

from ncodec.codecs.image import ImageCodec
from ncodec.models import fast
from ncodec.models.image import build_image_model

IMAGE = Path(__file__).resolve().parents[1] / "ncodec" / "data" / "images" / "792079.png"
SMALL = {
    "bmshj2018-factorized": dict(N=32, M=48),
    "bmshj2018-hyperprior": dict(N=32, M=48),
    "mbt2018-mean": dict(N=32, M=48),
    "elic2022": dict(N=32, M=48, groups=[8, 8, 16, 16]),
}
CL = torch.channels_last
# Reconstructions are in [0, 1]; the fast synthesis may move them by float rounding only.
RECON_TOL = 1e-4


def _photo(h: int = 128, w: int = 192) -> torch.Tensor:
    """A crop of a bundled photo, uint8 [3, h, w]."""
    img = torch.from_numpy(np.array(Image.open(IMAGE).convert("RGB"))).permute(2, 0, 1)
    return img[:, 64:64 + h, 32:32 + w].contiguous()


def _scale_last(seq: nn.Module, gain: float) -> None:
    """Multiply the last strided (else last) convolution of ``seq`` by ``gain``."""
    convs = [m for m in seq.modules() if isinstance(m, nn.Conv2d)]
    last = ([m for m in convs if m.stride != (1, 1)] or convs)[-1]
    with torch.no_grad():
        last.weight.mul_(gain)
        last.bias.mul_(gain)


def _model(arch: str, gains=(20.0, 10.0)) -> nn.Module:
    """A small seeded model whose latents spread over many symbols (scaled analysis outputs)."""
    torch.manual_seed(4321)
    model = build_image_model(arch, **SMALL[arch]).eval()
    _scale_last(model.g_a, gains[0])
    h_a = model.latent_codec["hyper"].h_a if hasattr(model, "latent_codec") else getattr(model, "h_a", None)
    if h_a is not None:
        _scale_last(h_a, gains[1])
    model.update(force=True)
    return model


def _codecs(arch: str) -> dict[str, ImageCodec]:
    """Exact, fast float32 and fast bf16 codecs sharing one model, all built before any
    forward pass (ELIC's masked convolutions mask their weights on first use)."""
    model = _model(arch)
    return {
        "exact": ImageCodec(arch, 1, model, fast=False),
        "fp32": ImageCodec(arch, 1, model, fast=True, bf16=False),
        "bf16": ImageCodec(arch, 1, model, fast=True, bf16=True),
    }


class _Capture:
    """Records the input of the synthesis transform (the decoded ``y_hat``) of both paths."""

    def __init__(self, codecs: dict[str, ImageCodec]):
        self.seen: list[torch.Tensor] = []
        hook = lambda _m, inputs: self.seen.append(inputs[0].clone())  # noqa: E731
        codecs["exact"].model.g_s.register_forward_pre_hook(hook)
        for key in ("fp32", "bf16"):
            codecs[key]._fast.g_s.register_forward_pre_hook(hook)

    def decode(self, codec: ImageCodec, data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
        x_hat = codec.decompress(data).tensor
        return self.seen[-1], x_hat


# ------------------------------------------------------------------- layers

@pytest.mark.parametrize("inverse", [False, True])
def test_folded_gdn_is_bit_exact(inverse):
    torch.manual_seed(0)
    gdn = GDN(24, inverse=inverse)
    with torch.no_grad():  # leave the identity initialisation: other beta and gamma
        gdn.beta.add_(torch.rand(24))
        gdn.gamma.add_(0.05 * torch.rand(24, 24))
    x = torch.randn(2, 24, 13, 17)
    with torch.inference_mode():
        assert torch.equal(fast.FoldedGDN(gdn)(x), gdn(x))
        x_cl = x.contiguous(memory_format=CL)
        ref = gdn(x_cl)
        assert torch.equal(fast.FoldedGDN(gdn, pack=None)(x_cl), ref)
        # In place, in bands of 3 rows (a small band size forces several, and a short last one).
        banded = fast.FoldedGDN(gdn, pack=None, overwrite=True)
        banded.band_bytes = 3 * 24 * 17 * 4
        y = x_cl.clone()
        assert banded(y) is y and torch.equal(y, ref)


DECONVS = [(5, 2, 2, 1), (3, 2, 1, 1), (4, 2, 1, 0), (6, 3, 2, 1), (3, 1, 1, 0)]


@pytest.mark.parametrize("k, s, p, op", DECONVS)
def test_subpixel_deconv_matches_transposed_convolution(k, s, p, op):
    torch.manual_seed(k * 10 + s)
    deconv = nn.ConvTranspose2d(12, 7, k, s, p, op)
    x = torch.randn(2, 12, 9, 11)
    with torch.inference_mode():
        ref = deconv(x)
        for pack in (False, None):
            got = fast.SubPixelDeconv(deconv, pack=pack)(x.contiguous(memory_format=CL))
            assert got.shape == ref.shape == (2, 7, s * 9, s * 11)
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_subpixel_tolerance_catches_a_wrong_rewrite():
    """The tolerance above is tight enough: a rewrite with its kernel taps mirrored, its phases
    swapped or its bias dropped fails it."""
    torch.manual_seed(1)
    deconv = nn.ConvTranspose2d(12, 7, 5, 2, 2, 1)
    x = torch.randn(1, 12, 9, 11)
    with torch.inference_mode():
        ref = deconv(x)
        good = fast.SubPixelDeconv(deconv)
        w = good.conv.weight
        wrongs = {
            "mirrored taps": w.flip(-1, -2),
            "phases swapped": w.view(7, 4, 12, 3, 3).flip(1).reshape_as(w),
        }
        for name, weight in wrongs.items():
            bad = fast.SubPixelDeconv(deconv)
            bad.conv.weight.copy_(weight)
            assert not torch.allclose(bad(x), ref, rtol=1e-5, atol=1e-5), name
        bad = fast.SubPixelDeconv(deconv)
        bad.conv.bias.zero_()
        assert not torch.allclose(bad(x), ref, rtol=1e-5, atol=1e-5)


def test_subpixel_rejects_other_deconvolutions():
    for deconv in (nn.ConvTranspose2d(4, 4, 5, 2, 2, 0),  # output 2H - 1, not 2H
                   nn.ConvTranspose2d(4, 4, 5, 2, 2, 1, groups=2),
                   nn.ConvTranspose2d(4, 4, 3, (2, 1), 1, (1, 0))):
        assert not fast.SubPixelDeconv.supports(deconv)
        with pytest.raises(ValueError):
            fast.SubPixelDeconv(deconv)


def test_packed_convolutions_give_the_plain_values():
    torch.manual_seed(2)
    conv = nn.Conv2d(16, 8, 3, 2, 1)
    deconv = nn.ConvTranspose2d(16, 8, 5, 2, 2, 1)
    x = torch.randn(1, 16, 10, 14).contiguous(memory_format=CL)
    h = torch.randn(1, 16, 5, 7).contiguous(memory_format=CL)
    close = dict(rtol=1e-6, atol=1e-6)  # the same sums, possibly in another order
    with torch.inference_mode():
        for pack in (False, None):
            c = fast.PackedConv2d.from_conv(conv, pack=pack)
            torch.testing.assert_close(c(x), conv(x), **close)
            c.relu = True
            torch.testing.assert_close(c(x), F.relu(conv(x)), **close)
            acc = torch.randn(1, 8, 5, 7).contiguous(memory_format=CL)
            torch.testing.assert_close(c.add(acc, x, relu=True), F.relu(acc + conv(x)), **close)
            assert c.accumulate(acc, x) is acc
            torch.testing.assert_close(fast.PackedConvTranspose2d(deconv, pack=pack)(h), deconv(h), **close)


# ------------------------------------------------------------------- transforms

@pytest.mark.parametrize("arch", SMALL)
def test_fast_transforms_match_the_models(arch):
    model = _model(arch, gains=(1.0, 1.0))
    x = _photo(64, 128).float()[None] / 255
    with torch.inference_mode():
        y = model.g_a(x)
        y_hat = torch.round(4 * y)
        cases = [(fast.fast_analysis(model), model.g_a, x, 1e-5),
                 (fast.fast_synthesis(model), model.g_s, y_hat, RECON_TOL)]
        for fast_t, exact_t, inp, tol in cases:
            before = inp.clone()
            got, ref = fast_t(inp), exact_t(inp)
            assert torch.equal(inp, before), "the fast transform modified its input"
            assert got.dtype == ref.dtype and got.is_contiguous() and got.shape == ref.shape
            torch.testing.assert_close(got, ref, rtol=tol, atol=tol)
        y16 = fast.fast_analysis(model, bf16=True)(x)
        assert y16.dtype == torch.float32 and y16.is_contiguous()
        torch.testing.assert_close(y16, y, rtol=0.05, atol=0.05 * float(y.abs().max()))


def test_unknown_models_keep_the_exact_path():
    class Subclass(type(build_image_model("bmshj2018-factorized", N=16, M=16))):
        pass

    model = Subclass(N=16, M=16).eval()
    model.update(force=True)
    assert not fast.supports(model)
    assert ImageCodec("bmshj2018-factorized", 1, model).fast is False


# ------------------------------------------------------------------- the codec

@pytest.mark.parametrize("arch", SMALL)
def test_fast_and_exact_files_decode_alike(arch):
    codecs = _codecs(arch)
    model = codecs["exact"].model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    spy = _Capture(codecs)
    x = _photo()
    files = {key: c.compress(x) for key, c in codecs.items()}
    assert len(files["exact"]) > 2000, "latents should spread over many symbols"
    assert files["bf16"] != files["exact"], "the bf16 encoder should move some latents"
    for enc, data in files.items():
        y_exact, x_exact = spy.decode(codecs["exact"], data)
        y_fast, x_fast = spy.decode(codecs["fp32"], data)
        assert torch.equal(y_fast, y_exact), f"{arch}: a {enc} file decodes to other latents"
        assert float((x_fast - x_exact).abs().max()) <= RECON_TOL, enc
        # Same latents on both sides: what the encoder quantised is what the decoder reads.
        assert torch.equal(codecs["bf16"].decompress(data).tensor, x_fast)
    # The model is untouched: same weights and keys (fingerprint taken before any forward).
    after = model.state_dict()
    assert after.keys() == state.keys()
    masked = {f"{name}.weight" for name, m in model.named_modules()  # mask their weights when run
              if isinstance(m, MaskedConv2d)}
    assert all(torch.equal(after[k], v) for k, v in state.items() if k not in masked)
    assert all(c.fingerprint == codecs["exact"].fingerprint for c in codecs.values())


@pytest.mark.parametrize("encoder", ["exact", "fp32", "bf16"])
def test_elic_encoder_and_decoder_compute_the_same_latents(encoder):
    """ELIC's encoder reconstructs ``y_hat`` with the context models, as the decoder does:
    bit-identical only if the fast ``g_a`` hands them the layout and dtype the decoder has."""
    codecs = _codecs("elic2022")
    model = codecs["exact"].model
    x = _photo().float()[None] / 255
    with torch.inference_mode():
        out = model.compress(x) if encoder == "exact" else codecs[encoder]._fast.compress(x)
        y_hat = model.latent_codec.decompress(out["strings"], out["shape"])["y_hat"]
    assert torch.equal(out["y_hat"], y_hat)


def test_exact_path_is_compressais():
    codecs = _codecs("mbt2018-mean")
    x = _photo()
    with torch.inference_mode():
        out = codecs["exact"].model.compress(x.float()[None] / 255)
    data = codecs["exact"].compress(x)
    from ncodec.codecs import container
    assert container.unpack(data)[1][0] == [s[0] for s in out["strings"]]


@pytest.mark.parametrize("arch", ["mbt2018-mean", "elic2022"])
def test_fast_decoding_is_deterministic(arch):
    codecs = _codecs(arch)
    data = codecs["exact"].compress(_photo())
    first = codecs["fp32"].decompress(data).tensor
    assert torch.equal(codecs["fp32"].decompress(data).tensor, first)
    assert torch.equal(codecs["bf16"].decompress(data).tensor, first)
    # The fast synthesis itself gives the same pixels at any thread count (ELIC's context
    # models, CompressAI's own, do not: their means move by an ulp between 1 and 2 threads).
    g_s = codecs["fp32"]._fast.g_s
    y_hat = torch.round(3 * torch.randn(1, SMALL[arch]["M"], 4, 6, generator=torch.Generator().manual_seed(3)))
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, max(2, threads)):
            torch.set_num_threads(n)
            with torch.inference_mode():
                outs.append(g_s(y_hat))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0], outs[1])


def test_fast_copies_follow_weight_changes():
    codecs = _codecs("bmshj2018-hyperprior")
    data = codecs["exact"].compress(_photo())
    before = codecs["fp32"].decompress(data).tensor
    with torch.no_grad():
        codecs["exact"].model.g_s[0].weight.mul_(1.5)
    assert codecs["fp32"]._fast.stale
    after, exact = codecs["fp32"].decompress(data).tensor, codecs["exact"].decompress(data).tensor
    assert not codecs["fp32"]._fast.stale
    assert not torch.allclose(after, before)
    assert float((after - exact).abs().max()) <= RECON_TOL
