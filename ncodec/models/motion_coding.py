"""Lossless coding of block motion fields (:func:`ncodec.models.motion.block_motion`) into bytes.

A P-frame's motion is a field of integer vectors ``[2, nby, nbx]`` (``(dx, dy)`` per block).
It is coded as two substreams of :class:`ncodec.entropy.laplace.LaplaceStage`, exact by
construction (every symbol's row is an integer computed from integers):

1. **Prediction.** Each vector is predicted by the component-wise median of its left, upper
   and upper-right neighbours (the upper-left one at the right edge; a missing neighbour is
   the zero vector; in the first row the left neighbour alone), as H.264 predicts motion. The
   symbols are the residuals ``vector - prediction``.
2. **Side information, a forward-adaptive hyperprior.** The blocks are grouped in ``GROUP x
   GROUP`` tiles. For each tile and component the encoder picks the row of the scale ladder
   :data:`SCALES` that codes that tile's residuals in the fewest bits; these row indexes are
   the hyper-symbols, coded first (each as its difference from the tile to its left, on the
   cheapest of 4 Laplace rows, whose index leads the substream). The residuals are then
   coded in one batch, each on its tile's row: a
   still region costs about 0.05 bit per component, a moving edge pays only where it moves.

Decoding reads the hyper-symbols, then all residuals at once, then rebuilds the vectors in
raster order (the prediction needs the decoded left neighbour; no probability depends on it).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ncodec.entropy.laplace import LaplaceStage
from ncodec.errors import BitstreamError

__all__ = ["GROUP", "SCALES", "decode_motion", "encode_motion", "motion_residuals"]

GROUP = 4
"""Blocks per side of a hyper tile."""
SCALES: tuple[float, ...] = tuple(np.geomspace(0.04, 24.0, 16).tolist())
"""The residuals' Laplace scales (in pixels), log-spaced; a hyper-symbol is a row of these."""
# The hyper-symbols (left differences of rows) on one of these scales, picked per field and
# coded first on row _SPREAD_ROW.
_HYPER_SCALES = (0.15, 0.5, 1.5, 4.0)
_SPREAD_ROW = 1
_STAGE = LaplaceStage(SCALES)
_HYPER_STAGE = LaplaceStage(_HYPER_SCALES)


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _prediction(v: np.ndarray, y: int, x: int) -> np.ndarray:
    """The prediction of block ``(y, x)`` from the blocks before it in raster order."""
    nbx = v.shape[2]
    zero = np.zeros(2, np.int64)
    left = v[:, y, x - 1] if x > 0 else zero
    if y == 0:
        return left
    up = v[:, y - 1, x]
    corner = v[:, y - 1, x + 1] if x + 1 < nbx else (v[:, y - 1, x - 1] if x > 0 else zero)
    return _median3(left, up, corner)


def motion_residuals(vectors: Tensor) -> np.ndarray:
    """``vectors - prediction`` for every block: int64 ``[2, nby, nbx]``."""
    v = _as_ints(vectors)
    out = np.empty_like(v)
    for y in range(v.shape[1]):
        for x in range(v.shape[2]):
            out[:, y, x] = v[:, y, x] - _prediction(v, y, x)
    return out


def _as_ints(vectors: Tensor) -> np.ndarray:
    v = torch.as_tensor(vectors)
    if v.dim() != 3 or v.shape[0] != 2 or v.shape[1] < 1 or v.shape[2] < 1:
        raise ValueError(f"a motion field is [2, nby, nbx], got {tuple(v.shape)}")
    if v.is_floating_point() and not torch.equal(v, v.round()):
        raise ValueError("motion vectors must be integers")
    return v.to(torch.int64).cpu().numpy()


def _tiles(nby: int, nbx: int) -> tuple[int, int, np.ndarray]:
    """(tile rows, tile columns, each block's tile index ``[nby, nbx]``)."""
    ty, tx = -(-nby // GROUP), -(-nbx // GROUP)
    index = (np.arange(nby)[:, None] // GROUP) * tx + np.arange(nbx)[None, :] // GROUP
    return ty, tx, index


def encode_motion(vectors: Tensor) -> tuple[bytes, bytes]:
    """The two substreams (hyper-symbols, residuals) of a motion field ``[2, nby, nbx]``."""
    residuals = motion_residuals(vectors)
    _, nby, nbx = residuals.shape
    ty, tx, tile = _tiles(nby, nbx)
    # per tile and component, the row that codes the tile's residuals in the fewest bits
    flat = torch.from_numpy(residuals.reshape(2, -1))
    costs = torch.stack([_STAGE.symbol_bits(flat, torch.full_like(flat, r, dtype=torch.int32)).double()
                         for r in range(len(SCALES))])  # [rows, 2, blocks]
    per_tile = torch.zeros(len(SCALES), 2, ty * tx, dtype=torch.float64)
    per_tile.index_add_(2, torch.from_numpy(tile.reshape(-1)), costs)
    rows = per_tile.argmin(0).numpy()  # [2, tiles]: ties go to the smaller scale
    hyper = torch.from_numpy(_hyper_symbols(rows.reshape(2, ty, tx))).int()
    # the hyper-symbols' own row: the cheapest of the few in _HYPER_STAGE, coded first
    spread = min(range(len(_HYPER_SCALES)),
                 key=lambda r: float(_HYPER_STAGE.symbol_bits(hyper, torch.full_like(hyper, r)).sum()))
    writer = _HYPER_STAGE.writer()
    writer.add(torch.tensor([spread], dtype=torch.int32), torch.tensor([_SPREAD_ROW], dtype=torch.int32))
    writer.add(hyper, torch.full_like(hyper, spread))
    hyper_bytes = writer.finish()
    block_rows = torch.from_numpy(rows[:, tile.reshape(-1)]).int()  # [2, blocks]
    return hyper_bytes, _STAGE.encode(flat.int(), block_rows)


def _hyper_symbols(rows: np.ndarray) -> np.ndarray:
    """Each tile's row minus the row of the tile to its left (the first column: minus 0)."""
    left = np.concatenate([np.zeros_like(rows[:, :, :1]), rows[:, :, :-1]], axis=2)
    return (rows - left).astype(np.int64)


def decode_motion(hyper_bytes: bytes, residual_bytes: bytes, nby: int, nbx: int) -> Tensor:
    """The motion field ``[2, nby, nbx]`` (float tensor of integers) of :func:`encode_motion`'s
    substreams. Raises :class:`ncodec.BitstreamError` for damaged substreams or rows off the
    ladder."""
    if nby < 1 or nbx < 1:
        raise ValueError(f"a motion field needs blocks, got {nby}x{nbx}")
    ty, tx, tile = _tiles(nby, nbx)
    reader = _HYPER_STAGE.reader(hyper_bytes)
    spread = int(reader.read(torch.tensor([_SPREAD_ROW], dtype=torch.int32))[0])
    if not 0 <= spread < len(_HYPER_SCALES):
        raise BitstreamError("motion: the hyper-symbols' row is off its ladder")
    hyper = reader.read(torch.full((2, ty, tx), spread, dtype=torch.int32)).numpy()
    reader.finish()
    rows = np.cumsum(hyper.astype(np.int64), axis=2)
    if rows.min() < 0 or rows.max() >= len(SCALES):
        raise BitstreamError("motion: a hyper-symbol points off the scale ladder")
    rows = rows.reshape(2, -1)
    residuals = _STAGE.decode(residual_bytes, torch.from_numpy(rows[:, tile.reshape(-1)]).int())
    residuals = residuals.numpy().astype(np.int64).reshape(2, nby, nbx)
    v = np.zeros_like(residuals)
    for y in range(nby):
        for x in range(nbx):
            v[:, y, x] = residuals[:, y, x] + _prediction(v, y, x)
    return torch.from_numpy(v).float()
