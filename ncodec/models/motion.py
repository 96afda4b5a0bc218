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

__all__ = ["block_motion", "dense_motion", "median_prediction", "warp"]


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


def _pick(cost, start: Tensor, candidates) -> Tensor:
    """Per block, the candidate field (each ``[2, nby, nbx]``) of least ``cost(field)``,
    ``start`` first (so that it wins ties)."""
    best, best_cost = start, cost(start)
    for cand in candidates:
        c = cost(cand)
        better = c < best_cost
        best = torch.where(better[None], cand, best)
        best_cost = torch.where(better, c, best_cost)
    return best


def _search(cost, start: Tensor, window: int, reach: int) -> Tensor:
    """The vector within ``window`` of ``start`` (each block its own, clamped to ``+-reach``)
    of least cost."""
    offsets = [(ox, oy) for oy in range(-window, window + 1) for ox in range(-window, window + 1) if ox or oy]
    step = lambda ox, oy: (start + torch.tensor([ox, oy], dtype=start.dtype, device=start.device)[:, None, None]).clamp(-reach, reach)
    return _pick(cost, start, (step(ox, oy) for ox, oy in offsets))


def _neighbour_starts(start: Tensor) -> list[Tensor]:
    """The fields of each block's four neighbours' vectors (edges repeated), and zero:
    predictors, as in predictive zonal searches (a coarse level's wrong vector on a flat
    block is often right next door)."""
    padded = F.pad(start[None], (1, 1, 1, 1), mode="replicate")[0]
    return [padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:],
            torch.zeros_like(start)]


def median_prediction(vectors: Tensor) -> Tensor:
    """Each block's median of its left, upper and upper-right neighbours' vectors (zero where
    one is missing), for the whole field at once: ``[2, nby, nbx]``. (The motion coder's
    prediction is sequential and treats edges its own way; this is the search's estimate.)"""
    padded = F.pad(vectors[None], (1, 1, 1, 0))[0]  # zeros: one column each side, a row above
    left, up, corner = padded[:, 1:, :-2], padded[:, :-1, 1:-1], padded[:, :-1, 2:]
    return torch.maximum(torch.minimum(left, up), torch.minimum(torch.maximum(left, up), corner))


def _vector_bits(d: Tensor) -> Tensor:
    """A vector difference's bits as an exp-Golomb code would spend them, summed over both
    components: ``sum(2 * log2(|d| + 1) + 1)`` (a smooth stand-in for the coder's cost)."""
    return (2 * torch.log2(d.abs() + 1) + 1).sum(0)


def block_motion(cur: Tensor, ref: Tensor, *, block: int = 8, search: int = 16, levels: int = 3,
                 refine: int = 2, passes: int = 2, lam: float = 0.0) -> Tensor:
    """Integer motion vectors of ``cur [H, W]`` from ``ref [H, W]``: ``[2, ceil(H/block),
    ceil(W/block)]`` ``(dx, dy)`` in pixels, float tensor of integers, each ``|v| <= search``.

    Pyramid of ``levels`` (halved by 2x2 averages): at the coarsest level a full search over
    ``+-search / 2^(levels-1)``; at each finer level every block starts from the best (least
    SAD) of its parent's vector doubled, its neighbours' starts and zero, and searches
    ``+-refine`` around it; then ``passes`` more rounds of that at full resolution, the
    neighbours' vectors as predictors. Blocks have ``block`` pixels at every level.

    ``lam`` > 0 makes the full-resolution passes rate-constrained: a vector costs its SAD (in
    8-bit units summed over the block) plus ``lam`` times its bits against the median of its
    neighbours' vectors (:func:`median_prediction`; an exp-Golomb estimate), so flat regions
    take their neighbours' vectors instead of noise.
    """
    if cur.shape != ref.shape or cur.dim() != 2:
        raise ValueError(f"block_motion needs two [H, W] frames of one size, got {tuple(cur.shape)} and {tuple(ref.shape)}")
    if block < 1 or search < 0 or levels < 1 or refine < 0 or passes < 0 or not lam >= 0:
        raise ValueError("block >= 1, search >= 0, levels >= 1, refine >= 0, passes >= 0 and lam >= 0")
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
        sad = lambda field, c=c, r=r, reach=reach: _block_sad(c, r, field, block, reach)
        if vectors is None:
            vectors = _search(sad, torch.zeros(2, nby, nbx, device=c.device), reach, reach)
            continue
        # children of each block: its vector doubled, cropped to this level's grid
        start = (2 * vectors).repeat_interleave(2, 1).repeat_interleave(2, 2)
        start = F.pad(start, (0, max(0, nbx - start.shape[2]), 0, max(0, nby - start.shape[1])), mode="replicate")
        start = start[:, :nby, :nbx].clamp(-reach, reach)
        start = _pick(sad, start, _neighbour_starts(start))
        vectors = _search(sad, start, refine, reach)
    # at full resolution, neighbours' vectors as predictors again (a good vector spreads to the
    # blocks beside it whose coarse start was wrong); with lam, each vector also pays lam times
    # its bits against the median of its neighbours' (from the pass before: all blocks at once)
    for _ in range(passes):
        if lam > 0:
            pred = median_prediction(vectors)
            cost = lambda field, pred=pred: sad(field) + lam * _vector_bits(field - pred)
            candidates = [*_neighbour_starts(vectors), pred]
        else:
            cost, candidates = sad, _neighbour_starts(vectors)
        vectors = _search(cost, _pick(cost, vectors, candidates), refine, reach)
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
