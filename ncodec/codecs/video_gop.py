"""One GOP of the video codec: an intra frame, then P-frames, to a chunk's substreams and back.

A GOP is one container chunk, decodable on its own (random access). Its substreams:

* ``head``: varints ``frames, quality``, then per P-frame the byte sizes of its four
  pieces ``motion_hyper, motion, y, z``;
* ``intra``: the intra frame as a whole image file of the intra codec (``elic-gdn-vr``: its
  own header, quality, fingerprint and CRCs; about 250 bytes a GOP), RGB of the frame's
  BT.709 limited-range YUV;
* ``motion``: per P-frame, the two substreams of :func:`ncodec.models.motion_coding.encode_motion`;
* ``latents``: per P-frame, the ``y`` and ``z`` streams of :class:`ncodec.models.video.PFrameCoder`.

Frames inside are padded (edges repeated) to multiples of :data:`ncodec.models.video.ALIGNMENT`
and cropped back on output. The reference of a P-frame is the previous *decoded* frame: the
encoder decodes every frame it codes (the decode check: its references are what a decoder will
have, and its motion is checked to decode to itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ncodec.codecs import container
from ncodec.codecs.varint import pack_ints, read_varint
from ncodec.errors import BitstreamError
from ncodec.io.video import YuvFrame, rgb_to_yuv420, yuv420_to_rgb
from ncodec.models import motion_coding
from ncodec.models.motion import block_motion
from ncodec.models.video import ALIGNMENT, BLOCK, PFrameCoder, pack_planes, predict_planes, unpack_planes

__all__ = ["GOP_SUBSTREAMS", "GopDecoder", "GopEncoder", "MOTION_LAMBDA", "MOTION_SEARCH", "Planes", "read_gop_head"]

GOP_SUBSTREAMS = ("head", "intra", "motion", "latents")
MOTION_SEARCH = 32
"""Largest motion vector component searched, luma pixels."""
MOTION_LAMBDA = {1: 16.0, 2: 12.0, 3: 8.0, 4: 6.0, 5: 4.0}
"""Rate weight of the motion search per quality (SAD units per bit): coarser qualities keep
smoother, cheaper fields."""
_PIECES = 4  # motion hyper, motion, y, z
INTRA_QUALITIES = (1, 2, 3, 4, 5)
"""Qualities of the intra codec a GOP may use."""


@dataclass
class Planes:
    """A padded frame as uint8 tensors: ``y [1, H, W]``, ``u``, ``v`` ``[1, H/2, W/2]``."""

    y: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor

    @classmethod
    def from_frame(cls, frame: YuvFrame, height: int, width: int) -> "Planes":
        """``frame`` padded to ``height x width`` (multiples of 2), edges repeated."""
        def pad(plane: np.ndarray, h: int, w: int) -> torch.Tensor:
            t = torch.from_numpy(np.array(plane, dtype=np.uint8, copy=True))[None]
            ph, pw = h - t.shape[1], w - t.shape[2]
            if ph or pw:
                t = F.pad(t[None].float(), (0, pw, 0, ph), mode="replicate")[0].to(torch.uint8)
            return t

        return cls(pad(frame.y, height, width), pad(frame.u, height // 2, width // 2),
                   pad(frame.v, height // 2, width // 2))

    def packed(self) -> torch.Tensor:
        """``[1, 6, H/2, W/2]`` float in [0, 1] (:func:`ncodec.models.video.pack_planes`)."""
        return pack_planes(self.y[None].float(), self.u[None].float(), self.v[None].float()) / 255

    @classmethod
    def from_packed(cls, x: torch.Tensor) -> "Planes":
        """Decoded packed floats -> 8-bit planes (clamped, rounded)."""
        q = (x.clamp(0, 1) * 255).round_().to(torch.uint8)
        y, u, v = unpack_planes(q)
        return cls(y[0], u[0], v[0])

    def frame(self, height: int, width: int) -> YuvFrame:
        """The ``height x width`` frame (chroma ``ceil(h/2) x ceil(w/2)``) inside."""
        ch, cw = -(-height // 2), -(-width // 2)
        return YuvFrame(self.y[0, :height, :width].numpy().copy(), self.u[0, :ch, :cw].numpy().copy(),
                        self.v[0, :ch, :cw].numpy().copy())


def padded_size(height: int, width: int) -> tuple[int, int]:
    """Frame size rounded up to :data:`ALIGNMENT`."""
    return -(-height // ALIGNMENT) * ALIGNMENT, -(-width // ALIGNMENT) * ALIGNMENT


class _Shared:
    """What the GOP encoder and decoder share: the models and the frame geometry."""

    def __init__(self, model: PFrameCoder, intra, height: int, width: int):
        self.model, self.intra = model, intra
        self.height, self.width = height, width
        self.padded = padded_size(height, width)
        self.blocks = (self.padded[0] // BLOCK, self.padded[1] // BLOCK)
        self.z_shape = (self.padded[0] // ALIGNMENT, self.padded[1] // ALIGNMENT)

    def intra_planes(self, image_file: bytes) -> Planes:
        """Decode an intra frame's image file to padded 8-bit planes (the image codec at the
        quality its own header states: the encoder's choice, not a rule of the format)."""
        quality = container.read_header(image_file).meta.get("quality")
        if quality not in INTRA_QUALITIES:
            raise BitstreamError(f"video: the intra frame's quality {quality!r} is not one of {list(INTRA_QUALITIES)}")
        decoded = self.intra(quality).decompress(image_file).tensor
        if tuple(decoded.shape) != (3, self.height, self.width):
            raise BitstreamError(f"video: the intra frame is {tuple(decoded.shape)[1:]}, the clip "
                                 f"{self.height}x{self.width}")
        return Planes.from_frame(rgb_to_yuv420(decoded.cpu()), *self.padded)

    def prediction(self, ref: Planes, vectors: torch.Tensor) -> torch.Tensor:
        """The packed prediction ``[1, 6, H/2, W/2]`` of ``ref`` moved by ``vectors [2, nby, nbx]``
        (an integer computation on the 8-bit planes: exact)."""
        y, u, v = predict_planes(ref.y, ref.u, ref.v, vectors[None])
        return Planes(y, u, v).packed()

    def reconstruct(self, strings: list, pred: torch.Tensor, quality: int) -> Planes:
        out = self.model.decompress(strings, self.z_shape, pred, quality)
        if not bool(torch.isfinite(out["x_hat"]).all()):
            raise BitstreamError("video: a decoded P-frame is not finite (a forged or foreign file)")
        return Planes.from_packed(out["x_hat"])


class GopEncoder(_Shared):
    """Codes one GOP a frame at a time: :meth:`add` each frame, then :meth:`finish`.

    Args:
        model: the P-frame model (``update()`` done, eval mode).
        intra: ``image quality -> image codec`` (an :class:`ncodec.codecs.image.ImageCodec`).
        intra_quality: the image quality of the intra frame.
        height, width: the clip's frame size.
        quality: 1..5, the P-frame gain and the motion search's rate weight.
    """

    def __init__(self, model: PFrameCoder, intra, height: int, width: int, quality: int, intra_quality: int):
        super().__init__(model, intra, height, width)
        self.quality, self.intra_quality = quality, intra_quality
        self.frames = 0
        self.ref: Optional[Planes] = None
        self.intra_file = b""
        self.sizes: list[int] = []
        self.motion: list[bytes] = []
        self.latents: list[bytes] = []

    @torch.inference_mode()
    def add(self, frame: YuvFrame) -> YuvFrame:
        """Code ``frame``; returns it as the decoder will see it."""
        if self.frames == 0:
            rgb = yuv420_to_rgb(frame).clamp_(0, 1)
            self.intra_file = self.intra(self.intra_quality).compress(rgb)
            self.ref = self.intra_planes(self.intra_file)
        else:
            self.ref = self._code_p(Planes.from_frame(frame, *self.padded))
        self.frames += 1
        return self.ref.frame(self.height, self.width)

    def _code_p(self, cur: Planes) -> Planes:
        ref = self.ref
        vectors = block_motion(cur.y[0].float(), ref.y[0].float(), block=BLOCK, search=MOTION_SEARCH, levels=3,
                               lam=MOTION_LAMBDA[self.quality])
        hyper, residual = motion_coding.encode_motion(vectors)
        if not torch.equal(motion_coding.decode_motion(hyper, residual, *self.blocks), vectors):
            raise RuntimeError("video: the coded motion does not decode to itself (a bug; please report it)")
        pred = self.prediction(ref, vectors)
        out = self.model.compress(cur.packed(), pred, self.quality)
        y_bytes, z_bytes = out["strings"][0][0], out["strings"][1][0]
        recon = self.reconstruct([[y_bytes], [z_bytes]], pred, self.quality)
        self.sizes += [len(hyper), len(residual), len(y_bytes), len(z_bytes)]
        self.motion += [hyper, residual]
        self.latents += [y_bytes, z_bytes]
        return recon

    def finish(self) -> list[bytes]:
        """The GOP's substreams (:data:`GOP_SUBSTREAMS`)."""
        if not self.frames:
            raise ValueError("an empty GOP")
        head = pack_ints([self.frames, self.quality, *self.sizes])
        return [head, self.intra_file, b"".join(self.motion), b"".join(self.latents)]


def read_gop_head(substreams: list[bytes], max_frames: int) -> tuple[int, int, list[int]]:
    """A GOP chunk's head, checked against its substreams: ``(frames, quality, sizes)``, where
    ``sizes`` holds per P-frame the byte sizes of its ``motion_hyper, motion, y, z`` pieces
    (``4 * (frames - 1)`` integers). ``quality`` is not checked against a codec's ladder here.

    Raises:
        ncodec.BitstreamError: the chunk does not have :data:`GOP_SUBSTREAMS`, its head is
            damaged or holds more than ``max_frames`` frames, or its sizes do not add up to the
            ``motion`` and ``latents`` substreams.
    """
    if len(substreams) != len(GOP_SUBSTREAMS):
        raise BitstreamError(f"video: a GOP has {len(GOP_SUBSTREAMS)} substreams, this one {len(substreams)}")
    head, _, motion, latents = substreams
    count, pos = read_varint(head, 0, "video GOP head")
    quality, pos = read_varint(head, pos, "video GOP head")
    if not 1 <= count <= max_frames:
        raise BitstreamError(f"video: a GOP of {count} frames (1..{max_frames} allowed)")
    sizes = []
    for _ in range(_PIECES * (count - 1)):
        size, pos = read_varint(head, pos, "video GOP head")
        sizes.append(size)
    if pos != len(head):
        raise BitstreamError("video: the GOP head has trailing bytes")
    if sum(sizes[0::4]) + sum(sizes[1::4]) != len(motion) or sum(sizes[2::4]) + sum(sizes[3::4]) != len(latents):
        raise BitstreamError("video: the GOP's piece sizes do not add up to its substreams")
    return count, quality, sizes


class GopDecoder(_Shared):
    """Decodes GOP chunks of one clip (the models and frame size of its header)."""

    def __init__(self, model: PFrameCoder, intra, height: int, width: int, max_frames: int,
                 qualities: tuple[int, ...]):
        super().__init__(model, intra, height, width)
        self.max_frames, self.qualities = max_frames, qualities

    def frames(self, substreams: list[bytes], expected: Optional[int] = None) -> Iterator[YuvFrame]:
        """The frames of one GOP chunk, each as soon as it is decoded; ``expected``: the number
        of frames it must hold, where the header says (else up to the GOP length).

        Raises:
            ncodec.BitstreamError: the chunk is damaged or does not fit the clip.
        """
        count, quality, sizes = read_gop_head(substreams, self.max_frames)
        _, intra_file, motion, latents = substreams
        if expected is not None and count != expected:
            raise BitstreamError(f"video: a GOP of {count} frames where the header makes it {expected}")
        if quality not in self.qualities:
            raise BitstreamError(f"video: GOP quality {quality} is not one of {list(self.qualities)}")
        with torch.inference_mode():
            ref = self.intra_planes(intra_file)
        yield ref.frame(self.height, self.width)
        mpos = lpos = 0
        for i in range(count - 1):
            mh, mr, ys, zs = sizes[_PIECES * i: _PIECES * i + _PIECES]
            hyper, residual = motion[mpos: mpos + mh], motion[mpos + mh: mpos + mh + mr]
            y_bytes, z_bytes = latents[lpos: lpos + ys], latents[lpos + ys: lpos + ys + zs]
            mpos, lpos = mpos + mh + mr, lpos + ys + zs
            with torch.inference_mode():
                vectors = motion_coding.decode_motion(hyper, residual, *self.blocks)
                pred = self.prediction(ref, vectors)
                try:
                    ref = self.reconstruct([[y_bytes], [z_bytes]], pred, quality)
                except BitstreamError:
                    raise
                except (RuntimeError, ValueError, IndexError) as exc:
                    raise BitstreamError(f"video: a P-frame does not decode ({exc})") from None
            yield ref.frame(self.height, self.width)
