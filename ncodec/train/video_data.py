"""Training data for the P-frame model: runs of consecutive frames, decoded once into a cache.

Decoding H.264/VP9 every step would cost more CPU than the model's step, so each clip is read
once (:func:`ncodec.io.video.open_video`) into *runs*: ``run_length`` consecutive 8-bit 4:2:0
frames, taken at even intervals through the clip, halved (2x2 means) while wider than
``max_width`` (sources up to 720p then move about as much per frame as a 352-640 pixel clip).
The runs of every clip are one ``.npz`` in the cache folder, named by the clip's path, size,
modification time and the run parameters, so a changed clip or parameter builds a new one.

:class:`FrameRunCrops` draws random crops of those runs with their motion: items are float
``[L, 8, c/2, c/2]`` where channels 0..5 are the packed frame (:func:`ncodec.models.video.pack_planes`,
8-bit codes / 255) and 6..7 the block vectors ``(dx, dy)`` of frame ``t`` from frame ``t - 1``
(luma pixels, repeated over each block's 8x8 packed samples; zero for ``t = 0``), estimated on
the originals by :func:`ncodec.models.motion.block_motion`, as the encoder does, once per
frame when the cache is built (on the whole frame: a window's vectors may point outside it,
where the prediction repeats the window's edge).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["FrameRunCrops", "cache_runs", "clip_runs"]


def _halve(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape[0] // 2 * 2, plane.shape[1] // 2 * 2
    t = torch.from_numpy(plane[:h, :w].astype(np.float32))[None, None]
    return F.avg_pool2d(t, 2)[0, 0].round_().to(torch.uint8).numpy()


def clip_runs(path: str | Path, run_length: int, runs: int, max_width: int = 640,
              search: int = 24) -> dict[str, np.ndarray]:
    """Up to ``runs`` runs of ``run_length`` consecutive frames of one clip, evenly spaced:
    ``{"y": uint8 [R, L, H, W], "u", "v": [R, L, H/2, W/2], "motion"}`` (H, W even; motion:
    :func:`_run_motion`, ``search`` luma pixels)."""
    from ncodec.io.video import open_video

    reader = open_video(path)
    total = reader.info.frames
    if total is None:  # the container does not say: count (one more decode, once per cache)
        total = sum(1 for _ in reader)
        reader.close()
        reader = open_video(path)
    spacing = max(run_length, total // max(runs, 1))
    out: dict[str, list] = {"y": [], "u": [], "v": []}
    current: list = []
    for index, frame in enumerate(reader):
        if len(out["y"]) >= runs:
            break
        if index % spacing >= run_length:
            continue
        y, u, v = frame.y, frame.u, frame.v
        while y.shape[1] > max_width:
            y, u, v = _halve(y), _halve(u), _halve(v)
        h, w = y.shape[0] // 2 * 2, y.shape[1] // 2 * 2
        current.append((y[:h, :w], u[: h // 2, : w // 2], v[: h // 2, : w // 2]))
        if len(current) == run_length:
            for key, planes in zip("yuv", zip(*current)):
                out[key].append(np.stack(planes))
            current = []
    reader.close()
    if not out["y"]:
        raise ValueError(f"{path}: fewer than {run_length} frames")
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays["motion"] = _run_motion(arrays["y"], search)
    return arrays


def _run_motion(y: np.ndarray, search: int) -> np.ndarray:
    """Block vectors of every frame from the one before, ``int16 [R, L, 2, H/BLOCK, W/BLOCK]``
    (zero for the first frame of a run), estimated on the whole frame once."""
    from ncodec.models.motion import block_motion
    from ncodec.models.video import BLOCK

    runs, length, h, w = y.shape
    out = np.zeros((runs, length, 2, -(-h // BLOCK), -(-w // BLOCK)), dtype=np.int16)
    for r in range(runs):
        for t in range(1, length):
            cur, ref = (torch.from_numpy(y[r, i]).float() for i in (t, t - 1))
            out[r, t] = block_motion(cur, ref, block=BLOCK, search=search, levels=3).numpy()
    return out


def cache_runs(clips: Sequence[str | Path], cache: str | Path, run_length: int, runs: int,
               max_width: int = 640) -> list[Path]:
    """The cache files of ``clips`` (built where missing; see the module docstring)."""
    from tqdm.auto import tqdm

    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for clip in tqdm(list(clips), desc="frame cache", unit="clip", disable=len(clips) < 2):
        stat = os.stat(clip)
        key = f"v2|{Path(clip).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{run_length}|{runs}|{max_width}"
        path = folder / f"{Path(clip).stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
        if not path.exists():
            from ncodec.io import atomic_output

            arrays = clip_runs(clip, run_length, runs, max_width)
            with atomic_output(path, force=True) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)
        files.append(path)
    return files


class FrameRunCrops(Dataset):
    """Random ``crop`` x ``crop`` windows of cached runs (block-aligned), flipped at random,
    with their cached motion.

    Args:
        files: cache files (:func:`cache_runs`); runs smaller than ``crop`` are skipped.
        crop: luma side, a multiple of :data:`ncodec.models.video.BLOCK`.
        length: frames per item (at most the runs' length).
        samples_per_epoch: nominal length; item ``i`` is drawn with ``seed + i``.
    """

    def __init__(self, files: Sequence[Path], crop: int, length: int, samples_per_epoch: int = 4096,
                 seed: int = 0):
        from ncodec.models.video import BLOCK

        if crop % BLOCK:
            raise ValueError(f"crop {crop} is not a multiple of {BLOCK}")
        self.runs = []
        for f in files:
            with np.load(f) as data:
                y, u, v, motion = data["y"], data["u"], data["v"], data["motion"]
            if y.shape[1] < length:
                raise ValueError(f"{f}: runs of {y.shape[1]} frames, {length} asked for")
            if min(y.shape[2:]) < crop:
                continue
            self.runs.extend((y[r], u[r], v[r], motion[r]) for r in range(y.shape[0]))
        if not self.runs:
            raise ValueError(f"no cached run is {crop} pixels wide and high")
        self.crop, self.length, self.seed = crop, length, seed
        self.samples = samples_per_epoch

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> torch.Tensor:
        from ncodec.models.video import BLOCK, pack_planes

        g = torch.Generator().manual_seed(self.seed + index)
        y, u, v, motion = self.runs[int(torch.randint(len(self.runs), (1,), generator=g))]
        _, h, w = y.shape
        c, n = self.crop, self.crop // BLOCK
        by = int(torch.randint((h - c) // BLOCK + 1, (1,), generator=g))
        bx = int(torch.randint((w - c) // BLOCK + 1, (1,), generator=g))
        top, left = by * BLOCK, bx * BLOCK
        start = int(torch.randint(y.shape[0] - self.length + 1, (1,), generator=g))
        frames = slice(start, start + self.length)
        yy = torch.from_numpy(y[frames, top:top + c, left:left + c].copy())
        uu = torch.from_numpy(u[frames, top // 2:(top + c) // 2, left // 2:(left + c) // 2].copy())
        vv = torch.from_numpy(v[frames, top // 2:(top + c) // 2, left // 2:(left + c) // 2].copy())
        vec = torch.from_numpy(motion[frames, :, by:by + n, bx:bx + n].astype(np.float32))
        vec[0] = 0  # the window's first frame is its reference
        flips = torch.randint(2, (2,), generator=g)
        if flips[0]:  # mirrored: x vectors change sign
            yy, uu, vv, vec = (t.flip(-1) for t in (yy, uu, vv, vec))
            vec[:, 0] = -vec[:, 0]
        if flips[1]:
            yy, uu, vv, vec = (t.flip(-2) for t in (yy, uu, vv, vec))
            vec[:, 1] = -vec[:, 1]
        packed = pack_planes(yy[:, None].float(), uu[:, None].float(), vv[:, None].float()) / 255
        dense = vec.repeat_interleave(BLOCK // 2, 2).repeat_interleave(BLOCK // 2, 3)
        return torch.cat([packed, dense], 1)
