"""Image files through Pillow: 8-bit RGB or grayscale in (:func:`read_image`, :func:`read_rgb`),
any format Pillow writes out (:func:`image_bytes`).

Images are uint8 ``[C, H, W]`` tensors (channels first; C = 3 for RGB, 1 for grayscale), or
float ``[C, H, W]`` in [0, 1] where noted.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ncodec.io.modality import Modality, register_modality

if TYPE_CHECKING:  # torch loads in the functions that need it: a CLI call that fails early never pays for it
    import torch

__all__ = ["IMAGE_SUFFIXES", "image_bytes", "pil_to_tensor", "read_image", "read_rgb"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
"""The image files ncodec takes from a folder (encode, eval, training): PNG, JPEG and WebP,
lower case (compare with ``path.suffix.lower()``). :func:`read_image` reads any format Pillow
does when a file is named."""


def pil_to_tensor(im: Image.Image, name: object) -> torch.Tensor:
    """An 8-bit Pillow image as uint8 ``[C, H, W]``, C = 3 (RGB) or 1 (grayscale), turned
    upright by its EXIF orientation. Palette images become RGB; alpha, 16-bit and other
    modes raise ValueError naming ``name``."""
    import torch
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im)  # a rotated camera JPEG comes out upright
    mode = im.mode
    if mode == "P":
        if "transparency" in im.info:
            raise ValueError(f"{name}: images with transparency are not supported")
        im, mode = im.convert("RGB"), "RGB"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        raise ValueError(f"{name}: images with an alpha channel are not supported (mode {mode})")
    if mode not in ("RGB", "L"):
        raise ValueError(f"{name}: only 8-bit RGB or grayscale images are supported (mode {mode})")
    array = np.asarray(im, dtype=np.uint8)
    t = torch.from_numpy(array.copy())
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def read_image(path: str | os.PathLike | BinaryIO) -> torch.Tensor:
    """An 8-bit image file (PNG, JPEG, WebP: :data:`IMAGE_SUFFIXES`; any format Pillow reads)
    as uint8 ``[C, H, W]``, C = 3 (RGB) or 1 (grayscale), upright by its EXIF orientation.

    Palette images become RGB. Alpha, 16-bit (RGB or gray) and other modes raise ValueError.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable image, or not 8-bit RGB or grayscale (the message names the path).
    """
    try:
        with Image.open(path) as im:
            # Pillow reads 16-bit RGB as 8-bit RGB, silently: its raw mode still says 16.
            raw = [str(getattr(t, "args", t[3] if len(t) > 3 else "")) for t in im.tile]
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F") or any(";16" in r for r in raw):
                raise ValueError(f"{path}: 16-bit and other high-bit-depth images are not supported "
                                 f"(8-bit RGB or grayscale only; mode {im.mode})")
            im.load()
            return pil_to_tensor(im, path)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def read_rgb(path: str | os.PathLike | BinaryIO) -> torch.Tensor:
    """An 8-bit image file as uint8 RGB ``[3, H, W]``: :func:`read_image`, with grayscale
    repeated to 3 channels. Errors as :func:`read_image` (alpha and 16-bit images are refused)."""
    x = read_image(path)
    return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


def image_bytes(x: torch.Tensor, suffix: str) -> bytes:
    """Float ``[C, H, W]`` in [0, 1] (or uint8) encoded in the format ``suffix`` names, as
    Pillow knows them (``.png``, ``.jpg``, ``.webp``, ``.tiff``, ``.bmp``, ...): JPEG at quality
    95, WebP lossless (the decoded pixels, not another lossy generation).

    Raises:
        ValueError: no format Pillow writes has that suffix.
    """
    import torch

    ext = (suffix or ".png").lower()
    kind = Image.registered_extensions().get(ext)
    if kind is None or kind not in Image.SAVE:
        raise ValueError(f"cannot write {ext!r} images; use .png, .jpg, .webp, .tif or .bmp")
    x = x.detach().cpu()
    if x.dtype != torch.uint8:
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    array = x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    options = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}.get(kind, {})
    Image.fromarray(array).save(buf, format=kind, **options)
    return buf.getvalue()


# The image modality: what the CLI, ncodec eval and ncodec info need to know of image files.
def _pixels(meta: dict) -> float:
    return meta["width"] * meta["height"]  # a file's bits over its pixels: bpp


register_modality(Modality("image", input_suffixes=IMAGE_SUFFIXES,
                           output_suffixes=(".png", ".webp", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"),
                           rate_unit="bpp", rate_basis=_pixels))
