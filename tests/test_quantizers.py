"""Quantizers shared by the modalities: VQ (EMA, k-means init, dead codes, factorized), RVQ, FSQ."""

from __future__ import annotations

import pytest
import torch

from ncodec.models.quantizers import FiniteScalarQuantizer, ResidualVectorQuantizer, VectorQuantizer


def _clusters(n: int = 4096, k: int = 16, dim: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, dim, generator=g) * 3
    x = centers[torch.randint(k, (n,), generator=g)] + 0.05 * torch.randn(n, dim, generator=g)
    return x.t().reshape(1, dim, n)  # [B, D, T]


def test_vq_kmeans_and_ema_find_the_clusters():
    torch.manual_seed(0)
    x = _clusters()
    vq = VectorQuantizer(8, 32, kmeans_iters=20).train()  # spare entries: k-means may split a cluster
    for _ in range(20):
        out = vq(x)
    vq.eval()
    err = (vq.decode(vq.encode(x)) - x).pow(2).mean()
    assert err < 0.05, err  # noise variance is 0.0025: every cluster has its code
    assert out.codes.shape == (1, 1, x.shape[-1]) and out.perplexity.item() > 12


def test_vq_restarts_dead_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 64, kmeans_init=False, threshold_ema_dead_code=1.0).train()
    x = torch.randn(2, 4, 256) + 10  # far from the initial codebook: most entries never win
    for _ in range(5):
        out = vq(x)
    assert out.perplexity.item() > 20


def test_factorized_codes_are_unit_vectors_and_train_by_gradient():
    torch.manual_seed(0)
    vq = VectorQuantizer(32, 128, codebook_dim=4).train()
    assert isinstance(vq.codebook, torch.nn.Parameter)
    x = torch.randn(2, 32, 50, requires_grad=True)
    out = vq(x)
    (out.quantized.pow(2).mean() + out.codebook_loss + out.commitment_loss).backward()
    assert x.grad is not None and vq.codebook.grad is not None
    assert out.quantized.shape == x.shape


def test_rvq_codes_match_forward_and_more_codebooks_help():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 400)
    rvq = ResidualVectorQuantizer(16, 6, 64, quantizer_dropout=0.0).train()
    for _ in range(10):
        rvq(x)
    rvq.eval()
    out = rvq(x)
    codes = rvq.encode(x)
    assert torch.equal(codes, out.codes)
    torch.testing.assert_close(rvq.decode(codes), out.quantized)
    errors = [(rvq.decode(codes[:, :n]) - x).pow(2).mean().item() for n in range(1, 7)]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    with pytest.raises(ValueError):
        rvq.encode(x, 7)


def test_quantizer_dropout_uses_fewer_codebooks_for_some_items():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(8, 4, 16, quantizer_dropout=1.0).train()
    x = torch.randn(64, 8, 10)
    full = ResidualVectorQuantizer(8, 4, 16, quantizer_dropout=0.0)
    full.load_state_dict(rvq.state_dict())
    out = rvq(x)
    full.eval()
    rvq.eval()
    # Some items were reconstructed from a prefix of codebooks only.
    per_item = (out.quantized - rvq(x).quantized).abs().flatten(1).amax(1)
    assert (per_item > 1e-6).any()


def test_fsq_codes_round_trip():
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer(16, (8, 5, 5, 5))
    assert fsq.codebook_size == 1000
    x = torch.randn(2, 16, 30) * 3
    out = fsq(x)
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < 1000
    torch.testing.assert_close(fsq.decode(out.codes), out.quantized)
    assert torch.equal(fsq.encode(x), out.codes)
    with pytest.raises(ValueError):
        fsq.decode(torch.full((1, 1, 3), 1000))
