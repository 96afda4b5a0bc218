"""Reading and writing media files for the CLI: images through Pillow, atomic outputs.

Outputs are written to a temporary file beside the target and renamed into place, so a
failed encode or decode never leaves a partial file, and an existing file is replaced only
when the caller says so.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An 8-bit image file (PNG, JPEG) as uint8 ``[C, H, W]``, C = 3 (RGB) or 1 (grayscale).

    Palette images become RGB. Alpha, 16-bit and other modes raise ValueError.
    """
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P":
                if "transparency" in im.info:
                    raise ValueError(f"{path}: images with transparency are not supported")
                im, mode = im.convert("RGB"), "RGB"
            if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
                raise ValueError(f"{path}: images with an alpha channel are not supported (mode {mode})")
            if mode not in ("RGB", "L"):
                raise ValueError(f"{path}: only 8-bit RGB or grayscale images are supported (mode {mode})")
            array = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    t = torch.from_numpy(array.copy())
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def image_bytes(x: torch.Tensor, suffix: str) -> bytes:
    """Float ``[C, H, W]`` in [0, 1] (or uint8) encoded as PNG or JPEG (quality 95)."""
    x = x.detach().cpu()
    if x.dtype != torch.uint8:
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    array = x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    kind = "JPEG" if suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(array).save(buf, format=kind, **({"quality": 95} if kind == "JPEG" else {}))
    return buf.getvalue()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes, *, force: bool = False) -> None:
    """Write ``data`` to ``path`` all at once: a temporary file in the same folder, then a
    rename. Refuses to replace an existing file unless ``force``."""
    target = Path(path)
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists (use --force to overwrite)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
