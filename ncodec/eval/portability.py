"""Do files decode anywhere? Decode the same files under other CPU settings and compare.

A file must decode on any machine, thread count and instruction set, to the same latents
(exact entropy parameters) and to pixels within :data:`PIXEL_TOLERANCE` (the synthesis
transform is float). This module decodes files in subprocesses under the settings another
laptop or server would run (:data:`SETTINGS`: one thread, oneDNN and ATen capped at AVX2, or
at SSE4.1 / no vector extensions) and reports, per setting, failures and the largest pixel
difference from a reference decode.

``python -m ncodec.eval.portability --worker OUT.npz FILE...`` is the subprocess side: it
decodes each file with :func:`ncodec.decompress` and saves the 8-bit pixels (``round(255 x)``)
and this process's CPU capability; a file that fails to decode is saved as its error text.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

__all__ = ["PIXEL_TOLERANCE", "SETTINGS", "SettingResult", "decode_under", "to_pixels"]

PIXEL_TOLERANCE = 1
"""Decoded 8-bit pixels may differ by at most this much between settings (the float
synthesis transform rounds differently; latents are identical)."""

SETTINGS: dict[str, dict[str, str]] = {
    "1 thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "SSE4.1": {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"},
}
"""Environment of each setting (added to the current one)."""
# What torch.backends.cpu.get_cpu_capability() reports under each ATEN_CPU_CAPABILITY.
EXPECTED_CAPABILITY = {"avx2": "AVX2", "default": "DEFAULT"}


def to_pixels(x) -> np.ndarray:
    """A decoded float image ``[C, H, W]`` in [0, 1] (a tensor, or a :class:`Decoded`) as uint8
    ``[C, H, W]``."""
    import torch

    x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return (x.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()


@dataclass
class SettingResult:
    """Decodes of one setting: ``pixels[i]`` uint8 or None where ``errors[i]`` says why."""

    setting: str
    capability: str
    pixels: list[Optional[np.ndarray]]
    errors: list[Optional[str]] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(e is not None for e in self.errors)

    def max_difference(self, reference: Sequence[np.ndarray]) -> int:
        """Largest absolute pixel difference from ``reference`` over the decoded files."""
        diffs = [int(np.abs(p.astype(np.int16) - r.astype(np.int16)).max())
                 for p, r in zip(self.pixels, reference) if p is not None]
        return max(diffs, default=0)

    def differing_pixels(self, reference: Sequence[np.ndarray]) -> int:
        """Number of samples that differ from ``reference`` at all."""
        return sum(int((p != r).sum()) for p, r in zip(self.pixels, reference) if p is not None)


def decode_under(files: Sequence[str | Path], setting: str, env: Optional[Mapping[str, str]] = None,
                 timeout: float = 1800) -> SettingResult:
    """Decode ``files`` in a fresh Python process under ``SETTINGS[setting]`` (or ``env``)."""
    extra = dict(SETTINGS[setting] if env is None else env)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "decoded.npz"
        cmd = [sys.executable, "-m", "ncodec.eval.portability", "--worker", str(out), *map(str, files)]
        proc = subprocess.run(cmd, env={**os.environ, **extra}, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"decoder process under {setting} failed:\n{proc.stderr[-4000:]}")
        with np.load(out, allow_pickle=False) as saved:
            info = json.loads(str(saved["info"]))
            pixels = [saved[f"f{i}"] if f"f{i}" in saved else None for i in range(len(files))]
    errors = [info["errors"].get(str(i)) for i in range(len(files))]
    return SettingResult(setting, info["capability"], pixels, errors)


def _worker(out: str, files: Iterable[str]) -> None:
    import torch

    import ncodec

    arrays: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for i, path in enumerate(files):
        try:
            arrays[f"f{i}"] = to_pixels(ncodec.decompress(Path(path).read_bytes()))
        except Exception as exc:  # reported to the parent, which counts it as a failure
            errors[str(i)] = f"{type(exc).__name__}: {exc}"
    info = {"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "errors": errors}
    np.savez(out, info=np.array(json.dumps(info)), **arrays)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", metavar="OUT", required=True, help="decode FILEs, save pixels to OUT (.npz)")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    _worker(args.worker, args.files)


if __name__ == "__main__":
    main()
