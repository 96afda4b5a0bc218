"""Training data for images: a folder of images, random crops and flips.

Images are read through :func:`ncodec.io.read_rgb` (so training takes the files ``ncodec
encode`` takes: 8-bit RGB or grayscale PNG, JPEG, WebP, upright by their EXIF orientation),
decoded once and kept in memory as uint8 (a 512×512 RGB image is 0.75 MiB, so the 183-image
training set is ~140 MiB): decoding WebP/PNG every step would cost more CPU than a small
model's step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from ncodec.io import IMAGE_SUFFIXES, read_rgb

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "list_images"]


def list_images(folder: str | Path) -> list[Path]:
    """The image files (:data:`ncodec.io.IMAGE_SUFFIXES`) directly in ``folder``, sorted;
    ValueError when there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(root)!r}")
    return files


class ImageFolder(Dataset):
    """Random ``patch_size`` crops with random horizontal/vertical flips.

    Args:
        files: image paths (smaller sides than ``patch_size`` are rejected).
        patch_size: crop side in pixels (a multiple of the model's alignment).
        samples_per_epoch: the nominal length; any index >= 0 is valid (the trainer
            addresses items by their running number).
        seed: base of the per-index random generator: item ``i`` is drawn with seed + i,
            so a run's crops are the same for any number of workers and after a resume.

    Items are float ``[3, patch_size, patch_size]`` in [0, 1].
    """

    def __init__(self, files: Sequence[Path], patch_size: int, samples_per_epoch: int | None = None,
                 seed: int = 0):
        self.images = [read_rgb(Path(f)) for f in files]
        small = [str(f) for f, im in zip(files, self.images) if min(im.shape[1:]) < patch_size]
        if small:
            raise ValueError(f"{len(small)} image(s) smaller than the {patch_size}px crop, e.g. {small[0]}")
        self.patch_size = patch_size
        self.length = samples_per_epoch or len(self.images)
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed + index)
        image = self.images[int(torch.randint(len(self.images), (1,), generator=g))]
        _, h, w = image.shape
        p = self.patch_size
        top = int(torch.randint(h - p + 1, (1,), generator=g))
        left = int(torch.randint(w - p + 1, (1,), generator=g))
        crop = image[:, top:top + p, left:left + p]
        flips = torch.randint(2, (2,), generator=g)
        if flips[0]:
            crop = crop.flip(-1)
        if flips[1]:
            crop = crop.flip(-2)
        return crop.float() / 255.0
