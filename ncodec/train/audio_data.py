"""Training data for audio: folders of audio files, random segments at the model's rate.

Files are decoded once, mixed to mono, resampled to the model's sample rate and kept in memory
as float32 (the 80 minutes of speech in ../shared/data/audio/speech are ~300 MB at 16 kHz).
Held-out files (a list of paths, e.g. ``benchmarks/audio_val.txt``) are never trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import torch
import torchaudio.functional as AF
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ncodec.io import AUDIO_SUFFIXES, read_audio

__all__ = ["AudioSegments", "list_audio", "load_mono", "read_file_list"]


def list_audio(folder: str | Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Audio files under ``folder`` (recursively, sorted), minus ``exclude``; ValueError if none."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"audio folder {str(root)!r} does not exist")
    skip = {Path(p).resolve() for p in exclude}
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                   and p.resolve() not in skip)
    if not files:
        raise ValueError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {str(root)!r}")
    return files


def read_file_list(path: str | Path) -> list[Path]:
    """Paths listed one per line in ``path`` (relative ones are relative to the list's folder;
    blank lines and ``#`` comments skipped), or the audio files of ``path`` if it is a folder."""
    p = Path(path)
    if p.is_dir():
        return list_audio(p)
    files = []
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            f = Path(line)
            files.append(f if f.is_absolute() else (p.parent / f))
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"{path}: {len(missing)} listed file(s) missing, e.g. {missing[0]}")
    return files


def load_mono(path: Path, sample_rate: int) -> torch.Tensor:
    """``path`` as float32 ``[T]`` at ``sample_rate`` (channels averaged)."""
    wav, sr = read_audio(path)
    wav = wav.mean(0)
    if sr != sample_rate:
        wav = AF.resample(wav, sr, sample_rate)
    return wav.contiguous()


class AudioSegments(Dataset):
    """Random ``segment`` -sample windows of the files, with a random gain.

    Item ``i`` is drawn with generator seed ``seed + i`` (same items for any number of workers
    and after a resume): a file chosen with probability proportional to its length, a window in
    it (near-silent windows are redrawn up to 5 times), and a gain that puts its peak between
    -12 and -1 dBFS. Items are float ``[1, segment]``.
    """

    def __init__(self, files: Sequence[Path], sample_rate: int, segment: int, seed: int = 0,
                 progress: bool = True):
        self.waves = [load_mono(Path(f), sample_rate)
                      for f in tqdm(files, desc="loading audio", disable=not progress, leave=False)]
        self.waves = [w for w in self.waves if w.numel() >= segment]
        if not self.waves:
            raise ValueError(f"no training file is at least {segment} samples long")
        lengths = torch.tensor([w.numel() for w in self.waves], dtype=torch.float64)
        self.weights = lengths / lengths.sum()
        self.segment, self.seed = segment, seed
        self.seconds = float(lengths.sum()) / sample_rate

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed + index)
        for _ in range(6):
            wave = self.waves[int(torch.multinomial(self.weights, 1, generator=g))]
            start = int(torch.randint(wave.numel() - self.segment + 1, (1,), generator=g))
            seg = wave[start:start + self.segment]
            peak = float(seg.abs().max())
            if peak > 1e-3:
                break
        gain_db = -12 + 11 * float(torch.rand((), generator=g))
        seg = seg * (10 ** (gain_db / 20) / max(peak, 1e-3))
        return seg.unsqueeze(0).clone()
