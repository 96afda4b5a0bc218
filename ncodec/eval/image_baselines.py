"""Classical image codecs to compare against: JPEG, WebP, AVIF, JPEG 2000 (Pillow) and
JPEG XL (imagecodecs), each swept over its own quality setting.

Every baseline codes an RGB uint8 ``[H, W, 3]`` array to the bytes of a complete file
(headers and container included, as a user would store it) and decodes those bytes back.

Settings, chosen once for all and written in each baseline's description:

- Chroma is kept at full resolution (4:4:4) wherever the format allows it (JPEG, AVIF; JPEG
  2000 and JPEG XL do not subsample by default). Lossy WebP (VP8) is always 4:2:0. This
  differs from CompressAI's baseline scripts, which keep each library's default (4:2:0 for
  JPEG and AVIF): full chroma is the fairer reference for PSNR-RGB, since the learned codecs
  code all three channels at full resolution.
- Encoders run single-threaded where the library has the setting (AVIF ``max_threads=1``,
  JPEG XL ``numthreads=1``); Pillow's JPEG, WebP and JPEG 2000 coders are single-threaded.
  Same input and setting give the same bytes.
- Settings run from the lowest to the highest quality, so bytes grow along a sweep.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["BASELINES", "DEFAULT_BASELINES", "Baseline", "Coded", "get_baseline", "parse_baselines"]

DEFAULT_BASELINES = ("jpeg", "webp", "avif", "jpeg2000", "jpegxl")


@dataclass(frozen=True)
class Coded:
    """One encode and decode: the file's bytes, the decoded uint8 ``[H, W, 3]`` image, and
    the wall-clock seconds each call took."""

    data: bytes
    decoded: np.ndarray
    encoding_time: float
    decoding_time: float


class Baseline:
    """A classical codec.

    Attributes:
        name: registry key and output file stem ("jpeg").
        label: display name in plots and tables ("JPEG"; CompressAI's plot draws names with
            "JPEG" or "WebP" dashed).
        qualities: the settings swept by default, lowest quality first.
        setting: what a setting means (for the description).
    """

    name: str = ""
    label: str = ""
    qualities: tuple[float, ...] = ()
    setting: str = ""
    package: str = "pillow"  # the pip package that provides it

    def check(self) -> None:
        """Raise ValueError naming the pip package if the library or format is missing."""

    def library(self) -> str:
        """Library and version, for the description."""
        return ""

    def describe(self) -> str:
        """One line: library, setting swept, chroma, container."""
        return f"{self.label} ({self.library()}); setting: {self.setting}"

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        """uint8 RGB ``[H, W, 3]`` -> the bytes of one file at setting ``quality``."""
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        """The bytes of one file -> uint8 RGB ``[H, W, 3]``."""
        raise NotImplementedError

    def run(self, img: np.ndarray, quality: float) -> Coded:
        """Encode then decode ``img`` (uint8 ``[H, W, 3]``), timing each call."""
        img = _check_image(img)
        start = time.perf_counter()
        data = bytes(self.encode(img, quality))
        enc = time.perf_counter() - start
        start = time.perf_counter()
        decoded = self.decode(data)
        dec = time.perf_counter() - start
        if decoded.shape != img.shape or decoded.dtype != np.uint8:
            raise RuntimeError(f"{self.name} decoded {decoded.shape} {decoded.dtype}, expected {img.shape} uint8")
        return Coded(data, decoded, enc, dec)


def _check_image(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError("baselines take uint8 RGB arrays [H, W, 3]")
    return np.ascontiguousarray(img)


# --------------------------------------------------------------------------- Pillow codecs

class _PillowBaseline(Baseline):
    fmt = ""      # Pillow format name
    feature = ""  # PIL.features name
    fixed: dict = {}  # save() options besides the quality, the same at every setting

    def check(self) -> None:
        from PIL import features

        if not features.check(self.feature):
            raise ValueError(f"baseline {self.name}: this Pillow has no {self.label} support "
                             "(pip install -U pillow; AVIF needs pillow>=11.3)")

    def library(self) -> str:
        import PIL
        from PIL import features

        return f"Pillow {PIL.__version__}, {self.feature} {features.version(self.feature)}"

    def options(self, quality: float) -> dict:
        """Pillow ``save()`` options at setting ``quality``."""
        return {"quality": int(quality), **self.fixed}

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(img, "RGB").save(buf, format=self.fmt, **self.options(quality))
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.array(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)  # a writable copy


class JPEG(_PillowBaseline):
    """JPEG (libjpeg-turbo in Pillow), quality 5..95, 4:4:4, optimized Huffman tables."""

    name, label, fmt, feature = "jpeg", "JPEG", "JPEG", "jpg"
    qualities = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
    setting = "Pillow quality 5..95, 4:4:4 chroma, optimized Huffman tables, JFIF file"
    fixed = {"subsampling": 0, "optimize": True}


class WebP(_PillowBaseline):
    """Lossy WebP (libwebp in Pillow), quality 0..100, method 6 (slowest, smallest); 4:2:0."""

    name, label, fmt, feature = "webp", "WebP", "WEBP", "webp"
    qualities = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    setting = "lossy quality 0..100, method 6, 4:2:0 chroma (VP8 has no 4:4:4), RIFF file"
    fixed = {"method": 6, "lossless": False}


class AVIF(_PillowBaseline):
    """AVIF (libavif in Pillow), quality 10..95, 4:4:4, speed 6, one thread."""

    name, label, fmt, feature = "avif", "AVIF", "AVIF", "avif"
    qualities = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
    setting = "Pillow quality 10..95, 4:4:4 chroma, speed 6, 1 thread, HEIF file"
    fixed = {"subsampling": "4:4:4", "speed": 6, "max_threads": 1}


class JPEG2000(_PillowBaseline):
    """JPEG 2000 (OpenJPEG in Pillow), one quality layer targeting a PSNR in dB (24..48),
    9/7 wavelet with the RGB->YCbCr transform; a JP2 file."""

    name, label, fmt, feature = "jpeg2000", "JPEG2000", "JPEG2000", "jpg_2000"
    qualities = (24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 45, 48)
    setting = "one layer targeting PSNR 24..48 dB (OpenJPEG's own estimate), 9/7 wavelet, MCT, 4:4:4, JP2 file"

    def options(self, quality: float) -> dict:
        # irreversible + mct: the lossy 9/7 path with the colour transform (Pillow's defaults
        # are the lossless 5/3 wavelet and no colour transform).
        return {"quality_mode": "dB", "quality_layers": [float(quality)], "irreversible": True, "mct": 1}


# --------------------------------------------------------------------------- imagecodecs

class JPEGXL(Baseline):
    """JPEG XL (libjxl through imagecodecs), quality 10..98 (cjxl's ``-q``, mapped to a
    Butteraugli distance by libjxl), effort 7, one thread; a bare codestream (no container)."""

    name, label, package = "jpegxl", "JPEG-XL", "imagecodecs"
    qualities = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98)
    setting = "quality 10..98 (libjxl distance from quality), effort 7, 1 thread, XYB (no subsampling), codestream"

    @staticmethod
    def _lib():
        try:
            import imagecodecs
        except ImportError:
            raise ValueError("baseline jpegxl needs the imagecodecs package (pip install imagecodecs)") from None
        return imagecodecs

    def check(self) -> None:
        if not self._lib().JPEGXL.available:
            raise ValueError("baseline jpegxl: this imagecodecs build has no JPEG XL (pip install -U imagecodecs)")

    def library(self) -> str:
        ic = self._lib()
        return f"imagecodecs {ic.__version__}, {ic.jpegxl_version()}"

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        return self._lib().jpegxl_encode(img, level=int(quality), effort=7, numthreads=1, usecontainer=False)

    def decode(self, data: bytes) -> np.ndarray:
        out = self._lib().jpegxl_decode(data, numthreads=1)
        if out.ndim != 3 or out.shape[2] != 3 or out.dtype != np.uint8:
            raise RuntimeError(f"jpegxl decoded {out.shape} {out.dtype}, expected [H, W, 3] uint8")
        return out


BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (JPEG, WebP, AVIF, JPEG2000, JPEGXL)
}


def get_baseline(name: str) -> Baseline:
    """The baseline ``name``, checked usable here (ValueError naming the pip package if not)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)} (or none)")
    baseline = BASELINES[name]()
    baseline.check()
    return baseline


def parse_baselines(text: str | Sequence[str]) -> list[str]:
    """``"jpeg,webp"`` (or a list) -> ``["jpeg", "webp"]``; ``"none"`` or empty -> ``[]``.
    Unknown names raise ValueError; duplicates are dropped, the order kept."""
    from ncodec.eval.plugin import parse_names

    return parse_names(text, list(BASELINES))
