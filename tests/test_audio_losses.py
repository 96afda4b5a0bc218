"""Audio codec losses: multi-scale mel, MPD / MS-STFT discriminators, GAN and feature losses."""

from __future__ import annotations

import math

import pytest
import torch

from ncodec.train.audio_losses import (
    Discriminators,
    MultiPeriodDiscriminator,
    MultiScaleMelLoss,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)

SR = 16000


def _tones(batch: int, t: int, seed: int = 0) -> torch.Tensor:
    """``[batch, 1, t]`` sums of three random sines: 'real' audio with clear harmonics."""
    g = torch.Generator().manual_seed(seed)
    time = torch.arange(t) / SR
    freqs = 100 + 3000 * torch.rand(batch, 3, 1, generator=g)
    phases = 2 * math.pi * torch.rand(batch, 3, 1, generator=g)
    return (0.3 * torch.sin(2 * math.pi * freqs * time + phases)).sum(1, keepdim=True)


def _noise(like: torch.Tensor, scale: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(like.shape, generator=g)


# --- mel loss --------------------------------------------------------------------------


def test_mel_loss_zero_for_identical_and_grows_with_noise():
    loss = MultiScaleMelLoss(SR)
    x = _tones(2, 8000)
    assert loss(x, x).item() == 0.0
    small = loss(x + _noise(x, 0.01), x).item()
    large = loss(x + _noise(x, 0.1), x).item()
    assert 0 < small < large


def test_mel_loss_gradients_flow():
    loss = MultiScaleMelLoss(SR, mag_weight=1.0)
    x = _tones(2, 4000)
    x_hat = (x + _noise(x, 0.05)).requires_grad_()
    loss(x_hat, x).backward()
    assert x_hat.grad is not None
    assert torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0


def test_mel_filterbanks_have_no_empty_rows_and_are_not_saved():
    loss = MultiScaleMelLoss(SR)
    assert loss.state_dict() == {}  # filterbanks and windows are derived, not parameters
    for i, win in enumerate(loss.window_lengths):
        fb = getattr(loss, f"fb{i}")
        assert fb.shape == (win // 2 + 1, loss.n_mels[i])
        assert (fb.amax(0) > 0).all()
    # Far more mels than a 256-point FFT resolves: empty filters are dropped, not kept.
    crowded = MultiScaleMelLoss(SR, n_mels=(128,), window_lengths=(256,))
    assert 0 < crowded.n_mels[0] < 128
    assert (crowded.fb0.amax(0) > 0).all()


@pytest.mark.parametrize("shape", [(2, 2, 3001), (1, 1, 300)])
def test_mel_loss_multichannel_and_short_clips(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    value = MultiScaleMelLoss(SR)(x * 0.5, x)
    assert torch.isfinite(value) and value > 0


# --- discriminators --------------------------------------------------------------------


@pytest.mark.parametrize("t", [8000, 8001])
def test_discriminator_shapes_and_finite(t):
    torch.manual_seed(0)
    disc = Discriminators(channels=8)
    x = torch.randn(2, 1, t) * 0.3
    logits, features = disc(x)
    assert len(logits) == len(features) == 5 + 5  # 5 periods + 5 FFT sizes
    for lg, fs in zip(logits, features):
        assert lg.shape[:2] == (2, 1) and torch.isfinite(lg).all()
        assert len(fs) == 5
        assert all(f.shape[0] == 2 and torch.isfinite(f).all() for f in fs)
    # The period discriminators fold time into [T / p, p].
    for lg, p in zip(logits[:5], (2, 3, 5, 7, 11)):
        assert lg.shape[-1] == p


def test_discriminators_are_configurable():
    torch.manual_seed(0)
    mpd = Discriminators(("mpd",), channels=4, periods=(2, 3))
    stft = Discriminators(("msstft",), channels=4, n_ffts=(256, 128), in_channels=2)
    assert len(mpd(torch.randn(1, 1, 1000))[0]) == 2
    assert len(stft(torch.randn(1, 2, 1000))[0]) == 2
    small = sum(p.numel() for p in MultiPeriodDiscriminator(channels=4).parameters())
    big = sum(p.numel() for p in MultiPeriodDiscriminator(channels=8).parameters())
    assert small < big
    assert MultiScaleSTFTDiscriminator(channels=4).state_dict().keys().isdisjoint({"window"})
    with pytest.raises(ValueError):
        Discriminators(("nope",))


def test_discriminators_deterministic_given_seed():
    x = _tones(2, 3000)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        disc = Discriminators(channels=4)
        xx = x.clone().requires_grad_()
        logits, _ = disc(xx)
        generator_adversarial_loss(logits).backward()
        outs.append((torch.cat([lg.flatten() for lg in logits]), xx.grad))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_deterministic_algorithms_mode_is_accepted():
    # Padding avoids reflection_pad (no deterministic CUDA backward); check nothing here objects.
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(0)
        x = _tones(1, 2000).requires_grad_()
        logits, _ = Discriminators(channels=4)(x)
        (generator_adversarial_loss(logits) + MultiScaleMelLoss(SR)(x, x.detach() * 0.5)).backward()
    finally:
        torch.use_deterministic_algorithms(before)


@pytest.mark.parametrize("kind", ["hinge", "lsgan"])
def test_discriminator_learns_real_vs_noise(kind):
    torch.manual_seed(0)
    disc = Discriminators(channels=4, periods=(2, 3), n_ffts=(512, 128))
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3)
    real = _tones(4, 2048)
    fake = _noise(real, 0.3)

    def loss() -> torch.Tensor:
        return discriminator_loss(disc(real)[0], disc(fake)[0], kind=kind)

    with torch.no_grad():
        start = loss().item()
    for _ in range(20):
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        end = loss().item()
    assert end < 0.75 * start


# --- adversarial / feature losses ------------------------------------------------------


def test_feature_matching():
    g = torch.Generator().manual_seed(0)
    real = [[torch.randn(2, 3, 5, generator=g) for _ in range(3)] for _ in range(2)]
    assert feature_matching_loss(real, real).item() == 0.0
    fake = [[(f + 0.1 * torch.randn(f.shape, generator=g)).requires_grad_() for f in fs] for fs in real]
    real_leaf = [[f.clone().requires_grad_() for f in fs] for fs in real]
    value = feature_matching_loss(real_leaf, fake)
    assert value > 0
    value.backward()
    assert all(f.grad is not None for fs in fake for f in fs)
    assert all(f.grad is None for fs in real_leaf for f in fs)  # real side is detached
    # Relative L1: scaling both sides leaves it unchanged.
    scaled = feature_matching_loss(
        [[10 * f for f in fs] for fs in real], [[10 * f.detach() for f in fs] for fs in fake]
    )
    assert torch.allclose(scaled, value.detach(), rtol=1e-5)


def test_hinge_and_lsgan_signs():
    conf_real, conf_fake = [torch.full((2, 1, 4), 2.0)], [torch.full((2, 1, 4), -2.0)]
    # A discriminator that separates beyond the margin pays nothing; a fooled one pays.
    assert discriminator_loss(conf_real, conf_fake).item() == 0.0
    assert discriminator_loss(conf_fake, conf_real).item() == pytest.approx(6.0)
    assert generator_adversarial_loss(conf_real).item() == 0.0
    assert generator_adversarial_loss(conf_fake).item() == pytest.approx(3.0)
    ones, zeros = [torch.ones(3)], [torch.zeros(3)]
    assert discriminator_loss(ones, zeros, kind="lsgan").item() == 0.0
    assert discriminator_loss(zeros, ones, kind="lsgan").item() == pytest.approx(2.0)
    assert generator_adversarial_loss(ones, kind="lsgan").item() == 0.0
    assert generator_adversarial_loss(zeros, kind="lsgan").item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        discriminator_loss(ones, zeros, kind="wgan")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    disc = Discriminators(channels=4)
    mel = MultiScaleMelLoss(SR)
    x = _tones(2, 8000)
    y = x + _noise(x, 0.05)
    cpu_logits, _ = disc(x)
    cpu_mel = mel(y, x)
    disc.cuda()
    mel.cuda()
    gpu_logits, _ = disc(x.cuda())
    assert torch.allclose(mel(y.cuda(), x.cuda()).cpu(), cpu_mel, rtol=1e-3, atol=1e-4)
    for a, b in zip(cpu_logits, gpu_logits):
        assert torch.allclose(a, b.cpu(), rtol=1e-3, atol=1e-4)
