"""Motion for the video codec: classical block matching on a pyramid, and warping.

The P-frame codec (issue 16) predicts a frame from the previous decoded one moved by a coded
motion field. The field comes from :func:`block_motion`: integer-pixel vectors, one per block,
found by minimising the sum of absolute differences (SAD) on a luma pyramid: a full search
at the coarsest level, then a small search around each parent's doubled vector at every finer
level. No training and no weights: the codec's compute goes to the transforms that code the
motion and the residual, and a learned refinement can start from these vectors. :func:`warp`
moves a reference by a dense field (bilinear, edge values repeated outside the frame).

Shapes: frames are ``[H, W]`` float tensors (luma, any scale); a block field is
``[2, ceil(H / block), ceil(W / block)]`` integer-valued ``(dx, dy)`` in pixels (the block at
``(by, bx)`` is predicted from the reference at ``(y + dy, x + dx)``); a dense field is
``[2, H, W]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["block_motion", "dense_motion", "warp"]


def _pad_to(x: Tensor, block: int) -> Tensor:
    """``x [H, W]`` padded (edge values repeated) to multiples of ``block``."""
    h, w = x.shape
    ph, pw = -h % block, -w % block
    return F.pad(x[None, None], (0, pw, 0, ph), mode="replicate")[0, 0] if ph or pw else x


def _block_sad(cur: Tensor, ref: Tensor, vectors: Tensor, block: int, reach: int) -> Tensor:
    """SAD of every block of ``cur`` against ``ref`` moved by its own vector: ``[nby, nbx]``.
    ``cur``, ``ref``: ``[H, W]`` with ``H, W`` multiples of ``block``; ``vectors`` ``[2, nby,
    nbx]`` integers with ``|v| <= reach`` (the reference is read with edges repeated)."""
    h, w = cur.shape
    nby, nbx = h // block, w // block
    padded = F.pad(ref[None, None], (reach, reach, reach, reach), mode="replicate")[0, 0]
    offs = torch.arange(block, device=cur.device)
    ys = (torch.arange(nby, device=cur.device) * block)[:, None, None, None] + offs[None, None, :, None]
    xs = (torch.arange(nbx, device=cur.device) * block)[None, :, None, None] + offs[None, None, None, :]
    dy = vectors[1].long()[:, :, None, None]
    dx = vectors[0].long()[:, :, None, None]
    moved = padded[ys + dy + reach, xs + dx + reach]  # [nby, nbx, block, block]
    blocks = cur.view(nby, block, nbx, block).permute(0, 2, 1, 3)
    return (blocks - moved).abs().sum((2, 3))


def _search(cur: Tensor, ref: Tensor, start: Tensor, window: int, block: int, reach: int) -> Tensor:
    """The vector within ``window`` of ``start`` (each block its own) with the least SAD (ties:
    the first in raster order of the window, which begins at ``-window``; the zero offset is
    tried first so that it wins ties)."""
    best = start.clone()
    best_sad = _block_sad(cur, ref, start, block, reach)
    for oy in range(-window, window + 1):
        for ox in range(-window, window + 1):
            if ox == 0 and oy == 0:
                continue
            cand = start + torch.tensor([ox, oy], dtype=start.dtype, device=start.device)[:, None, None]
            cand = cand.clamp(-reach, reach)
            sad = _block_sad(cur, ref, cand, block, reach)
            better = sad < best_sad
            best = torch.where(better[None], cand, best)
            best_sad = torch.where(better, sad, best_sad)
    return best


def _best_start(cur: Tensor, ref: Tensor, start: Tensor, block: int, reach: int) -> Tensor:
    """Per block, the best of its own start, its four neighbours' starts and the zero vector
    (predictors, as in predictive zonal searches: a coarse level's wrong vector on a flat
    block is often right next door)."""
    padded = F.pad(start[None], (1, 1, 1, 1), mode="replicate")[0]
    candidates = [start, padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:],
                  torch.zeros_like(start)]
    best, best_sad = start, _block_sad(cur, ref, start, block, reach)
    for cand in candidates[1:]:
        sad = _block_sad(cur, ref, cand, block, reach)
        better = sad < best_sad
        best = torch.where(better[None], cand, best)
        best_sad = torch.where(better, sad, best_sad)
    return best


def block_motion(cur: Tensor, ref: Tensor, *, block: int = 8, search: int = 16, levels: int = 3,
                 refine: int = 2, passes: int = 2) -> Tensor:
    """Integer motion vectors of ``cur [H, W]`` from ``ref [H, W]``: ``[2, ceil(H/block),
    ceil(W/block)]`` ``(dx, dy)`` in pixels, float tensor of integers, each ``|v| <= search``.

    Pyramid of ``levels`` (halved by 2x2 averages): at the coarsest level a full search over
    ``+-search / 2^(levels-1)``; at each finer level every block starts from the best (least
    SAD) of its parent's vector doubled, its neighbours' starts and zero, and searches
    ``+-refine`` around it; then ``passes`` more rounds of that at full resolution, the
    neighbours' vectors as predictors. Blocks have ``block`` pixels at every level.
    """
    if cur.shape != ref.shape or cur.dim() != 2:
        raise ValueError(f"block_motion needs two [H, W] frames of one size, got {tuple(cur.shape)} and {tuple(ref.shape)}")
    if block < 1 or search < 0 or levels < 1 or refine < 0 or passes < 0:
        raise ValueError("block >= 1, search >= 0, levels >= 1, refine >= 0 and passes >= 0")
    h, w = cur.shape
    pyramid = [(cur.float(), ref.float())]
    for _ in range(levels - 1):
        c, r = pyramid[-1]
        if min(c.shape) < 2 * block:
            break
        pyramid.append(tuple(F.avg_pool2d(_pad_to(t, 2)[None, None], 2)[0, 0] for t in (c, r)))
    vectors = None
    for level in range(len(pyramid) - 1, -1, -1):
        c, r = (_pad_to(t, block) for t in pyramid[level])
        nby, nbx = c.shape[0] // block, c.shape[1] // block
        reach = max(1, search >> level)
        if vectors is None:
            start = torch.zeros(2, nby, nbx, device=c.device)
            window = reach
        else:
            # children of each block: its vector doubled, cropped to this level's grid
            start = (2 * vectors).repeat_interleave(2, 1).repeat_interleave(2, 2)
            start = F.pad(start, (0, max(0, nbx - start.shape[2]), 0, max(0, nby - start.shape[1])), mode="replicate")
            start = start[:, :nby, :nbx].clamp(-reach, reach)
            start = _best_start(c, r, start, block, reach)
            window = refine
        vectors = _search(c, r, start, window, block, reach)
    # at full resolution, neighbours' vectors as predictors again: a good vector spreads to the
    # blocks beside it whose coarse start was wrong
    for _ in range(passes):
        vectors = _search(c, r, _best_start(c, r, vectors, block, reach), refine, block, reach)
    return vectors[:, : -(-h // block), : -(-w // block)]


def dense_motion(vectors: Tensor, height: int, width: int, block: int) -> Tensor:
    """A block field ``[2, nby, nbx]`` as a dense one ``[2, height, width]`` (each block's
    vector on its pixels)."""
    return vectors.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, :height, :width]


def warp(ref: Tensor, flow: Tensor) -> Tensor:
    """``ref [..., C, H, W]`` (or ``[H, W]``) read at ``(x + flow[0], y + flow[1])`` for every
    pixel, bilinear, edge values repeated outside the frame; ``flow [2, H, W]`` in pixels.
    Written as a gather of the four neighbours (not ``grid_sample``, whose normalised
    coordinates round): an integer flow copies pixels exactly."""
    plane = ref.dim() == 2
    x = ref[None] if plane else ref
    h, w = x.shape[-2:]
    if flow.shape != (2, h, w):
        raise ValueError(f"flow must be [2, {h}, {w}], got {tuple(flow.shape)}")
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    fx, fy = xs + flow[0].to(x.dtype), ys + flow[1].to(x.dtype)
    x0, y0 = fx.floor(), fy.floor()
    ax, ay = fx - x0, fy - y0  # weights of the right and lower neighbours
    x0, y0 = x0.long(), y0.long()
    flat = x.reshape(*x.shape[:-2], h * w)

    def at(yy: Tensor, xx: Tensor) -> Tensor:
        index = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(-1)
        return flat.index_select(-1, index).reshape(*x.shape[:-2], h, w)

    top = at(y0, x0) * (1 - ax) + at(y0, x0 + 1) * ax
    bottom = at(y0 + 1, x0) * (1 - ax) + at(y0 + 1, x0 + 1) * ax
    out = top * (1 - ay) + bottom * ay
    return out[0] if plane else out
