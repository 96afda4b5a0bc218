"""Bounded-memory building blocks of the audio codecs: a resampler that takes its signal in
pieces, and model calls on windows that carry their receptive field.

Each gives exactly what processing the whole signal at once gives (up to float rounding for
the resampler), in memory independent of the signal's length; :mod:`ncodec.codecs.audio`
builds its streaming encoder and decoder, and its files, on them.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torchaudio.functional as AF

from ncodec.models import audio as audio_models

__all__ = ["StreamResampler", "WindowedDecoder", "WindowedEncoder"]


class StreamResampler:
    """Resamples a signal given in pieces exactly as :func:`torchaudio.functional.resample`
    resamples it whole (up to float rounding), with bounded memory.

    ``push([C, n])`` returns the output samples that are final so far; ``flush()`` the rest.
    The output has ``ceil(N * new / orig)`` samples for ``N`` input samples.
    """

    def __init__(self, orig: int, new: int, channels: int):
        g = math.gcd(orig, new)
        self.orig, self.new = orig // g, new // g
        self.identity = self.orig == self.new
        self.channels = channels
        # torchaudio's sinc kernel reaches lowpass_filter_width / (rolloff * min rate) seconds
        # each side: whole periods of `orig` input samples with room to spare.
        width = math.ceil(6 * self.orig / (0.99 * min(self.orig, self.new))) + 1
        self.pad = -(-width // self.orig) * self.orig
        self._buf = torch.zeros(channels, self.pad)  # left zeros = the whole signal's padding
        self._consumed = 0  # input samples already turned into output (multiple of orig)
        self._total_in = 0
        self._emitted = 0

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return AF.resample(x, self.orig, self.new)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:
            self._total_in += x.shape[-1]
            return x
        self._buf = torch.cat([self._buf, x], dim=-1)
        self._total_in += x.shape[-1]
        # Inputs with `pad` samples of look-ahead available, in whole periods.
        ready = (self._buf.shape[-1] - 2 * self.pad) // self.orig * self.orig
        if ready <= 0:
            return x.new_zeros(self.channels, 0)
        return self._emit(ready)

    def _emit(self, ready: int) -> torch.Tensor:
        window = self._buf[:, : ready + 2 * self.pad]
        y = self._run(window)
        skip = self.pad // self.orig * self.new
        out = y[:, skip: skip + ready // self.orig * self.new]
        self._buf = self._buf[:, ready:]
        self._consumed += ready
        self._emitted += out.shape[-1]
        return out

    def flush(self) -> torch.Tensor:
        if self.identity:
            return torch.zeros(self.channels, 0)
        total_out = -(-self._total_in * self.new // self.orig)
        left = self._buf.shape[-1] - self.pad
        if left > 0:
            # Whole periods plus the zeros the whole signal is padded with at its end.
            ready = -(-left // self.orig) * self.orig
            self._buf = torch.cat([self._buf, self._buf.new_zeros(self.channels, ready - left + self.pad)], -1)
            out = self._emit(ready)
        else:
            out = torch.zeros(self.channels, 0)
        keep = max(0, total_out - (self._emitted - out.shape[-1]))
        self._emitted = total_out
        return out[:, :keep]


class WindowedEncoder:
    """Frames of a growing model-rate signal, each computed from a window holding the
    encoder's receptive field, so they equal the frames of encoding the signal at once."""

    def __init__(self, model: audio_models.AudioCodecModel, channels: int, n_q: int, block_frames: int):
        self.model, self.n_q, self.hop = model, n_q, model.hop
        self.context = model.encoder_context()
        self.block = block_frames * self.hop
        self._device = next(model.parameters()).device
        self._buf = torch.zeros(channels, 0)
        self._start = 0  # signal index of _buf[:, 0]
        self._done = 0  # samples already turned into frames

    def push(self, x: torch.Tensor, final: bool = False) -> list[torch.Tensor]:
        """Codes ``[C, n_q, f]`` of every frame completed by ``x``; ``final`` pads the last one."""
        self._buf = torch.cat([self._buf, x], dim=-1)
        end = self._start + self._buf.shape[-1]
        if final and end % self.hop:
            pad = self.hop - end % self.hop
            self._buf = torch.cat([self._buf, self._buf.new_zeros(self._buf.shape[0], pad)], -1)
            end += pad
        out = []
        while end - self._done >= self.hop:
            stop = min(end, self._done + self.block) // self.hop * self.hop
            begin = max(0, self._done - self.context)
            window = self._buf[:, begin - self._start: stop - self._start]
            with torch.inference_mode():
                codes = self.model.encode(window.unsqueeze(1).to(self._device), self.n_q)
            out.append(codes[..., (self._done - begin) // self.hop:].cpu())
            self._done = stop
        # Keep only the context the next window needs.
        keep_from = max(0, self._done - self.context)
        self._buf = self._buf[:, keep_from - self._start:]
        self._start = keep_from
        return out


class WindowedDecoder:
    """Samples of a growing code sequence, each from a window of codes holding the decoder's
    receptive field (equal to decoding the whole sequence at once)."""

    def __init__(self, model: audio_models.AudioCodecModel, block_frames: int):
        self.model, self.hop = model, model.hop
        self.context = model.decoder_context()
        self.block = block_frames
        self._device = next(model.parameters()).device
        self._codes: Optional[torch.Tensor] = None
        self._start = 0
        self._done = 0

    def push(self, codes: torch.Tensor) -> list[torch.Tensor]:
        """Waveform ``[C, f * hop]`` of new codes ``[C, n_q, f]``."""
        self._codes = codes if self._codes is None else torch.cat([self._codes, codes], dim=-1)
        end = self._start + self._codes.shape[-1]
        out = []
        while end > self._done:
            stop = min(end, self._done + self.block)
            begin = max(0, self._done - self.context)
            window = self._codes[..., begin - self._start: stop - self._start]
            with torch.inference_mode():
                wav = self.model.decode(window.to(self._device))[:, 0]
            out.append(wav[:, (self._done - begin) * self.hop:].cpu())
            self._done = stop
        keep_from = max(0, self._done - self.context)
        self._codes = self._codes[..., keep_from - self._start:]
        self._start = keep_from
        return out
