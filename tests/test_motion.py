"""Block-matching motion and warping (ncodec.models.motion) on frames of a real clip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ncodec.io.video import open_video
from ncodec.models.motion import block_motion, dense_motion, warp

CLIP = Path(__file__).resolve().parent / "data" / "video" / "realshort.mp4"  # H.264 320x240, 36 frames


@pytest.fixture(scope="module")
def lumas() -> list[torch.Tensor]:
    with open_video(CLIP) as video:
        return [torch.from_numpy(f.y.copy()).float() for _, f in zip(range(8), video)]


def test_a_known_shift_is_found_and_warped_back(lumas):
    """cur is ref moved by (dx, dy) = (5, -3) (a crop of one real frame): the interior blocks
    find that vector, and warping ref by it rebuilds cur exactly there."""
    frame = lumas[0]
    dx, dy = 5, -3
    ref = frame[40:200, 40:280]
    cur = frame[40 + dy: 200 + dy, 40 + dx: 280 + dx]  # cur(y, x) = ref(y + dy, x + dx)
    vectors = block_motion(cur, ref, block=8, search=16)
    assert vectors.shape == (2, 20, 30)
    pred = warp(ref, dense_motion(vectors, *cur.shape, 8))
    # inside (blocks off the edges): as good as the true vector, i.e. exact
    assert torch.equal(pred[8:-8, 8:-8], cur[8:-8, 8:-8])
    # and the true vector itself wherever a block has texture (flat ones match anywhere)
    texture = cur.view(20, 8, 30, 8).std((1, 3))[1:-1, 1:-1] > 8
    truth = (vectors[0] == dx) & (vectors[1] == dy)
    assert texture.sum() > 100 and truth[1:-1, 1:-1][texture].float().mean() > 0.95


def test_motion_predicts_real_frames_better_than_no_motion(lumas):
    for prev, cur in zip(lumas[:-1:2], lumas[1::2]):
        vectors = block_motion(cur, prev)
        pred = warp(prev, dense_motion(vectors, *cur.shape, 8))
        still = (cur - prev).pow(2).mean()
        moved = (cur - pred).pow(2).mean()
        assert moved <= still  # the zero vector is always a candidate
    assert vectors.abs().max() <= 16 and torch.equal(vectors, vectors.round())


def test_warp_is_bilinear_and_zero_flow_is_the_identity(lumas):
    ref = lumas[0][:32, :48]
    assert torch.equal(warp(ref, torch.zeros(2, 32, 48)), ref)
    half = torch.zeros(2, 32, 48)
    half[0] = 0.5
    out = warp(ref, half)
    assert torch.allclose(out[:, :-1], (ref[:, :-1] + ref[:, 1:]) / 2, atol=1e-4)
    assert torch.allclose(out[:, -1], ref[:, -1])  # beyond the edge: the edge value
    rgb = torch.stack([ref, ref + 1, ref + 2])
    assert torch.allclose(warp(rgb, half)[2], out + 2, atol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="one size"):
        block_motion(torch.zeros(16, 16), torch.zeros(16, 17))
    with pytest.raises(ValueError):
        block_motion(torch.zeros(16, 16), torch.zeros(16, 16), block=0)


def test_rate_constrained_search_spends_fewer_bits(lumas):
    """lam > 0 trades a little prediction error for a smoother, cheaper field (bits by the
    motion coder)."""
    from ncodec.models.motion_coding import encode_motion

    plain = bits = 0
    worse = []
    for prev, cur in zip(lumas[:-1:2], lumas[1::2]):
        free, constrained = block_motion(cur, prev), block_motion(cur, prev, lam=8)
        plain += sum(map(len, encode_motion(free)))
        bits += sum(map(len, encode_motion(constrained)))
        sad = [float((cur - warp(prev, dense_motion(f, *cur.shape, 8))).abs().sum()) for f in (free, constrained)]
        worse.append(sad[1] / sad[0])
    assert bits < 0.95 * plain and max(worse) < 1.05
