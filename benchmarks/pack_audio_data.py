"""Pack training speech for a GPU machine that receives at most 64 MiB per call.

Decodes every file under ``--src`` (minus the held-out ``--val`` list), mixes it to mono,
resamples it to ``--rate`` and writes 16-bit FLAC into ``--out`` until ``--max-mb`` is
reached: first the files of the small corpora (every file not under a folder named in
``--fill``), then the ``--fill`` corpora's files in a seeded random order. Put ``--out`` in a
git-ignored folder and name it in the device call's ``carry``; the training script
(``benchmarks/train_audio_gpu.sh``) reads it as ``DATA``.

    python benchmarks/pack_audio_data.py --src ../shared/data/audio/speech \\
        --val benchmarks/audio_val.txt --out .gpudata/speech --max-mb 55
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from ncodec.train.audio_data import list_audio, load_mono, read_file_list


def pack_speech(src: str | Path, val: str | Path, out: str | Path, max_mb: float = 55.0, rate: int = 16000,
                fill: str = "librispeech_train100", seed: int = 0, progress: bool = True) -> dict:
    """Pack ``src``'s audio minus the held-out ``val`` into ``out`` as mono 16-bit FLAC at
    ``rate`` until ``max_mb`` MB (see the module doc); returns counts, MB and minutes."""
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = list_audio(src, exclude=read_file_list(val))
    fills = set(fill.split(","))
    first = [f for f in files if not fills & set(f.relative_to(src).parts)]
    rest = [f for f in files if fills & set(f.relative_to(src).parts)]
    random.Random(seed).shuffle(rest)
    budget, total, seconds, written = max_mb * 1e6, 0, 0.0, 0
    for f in tqdm(first + rest, desc="packing", disable=not progress):
        dst = out / (str(f.relative_to(src).with_suffix("")).replace("/", "__") + ".flac")
        wav = load_mono(f, rate).numpy()
        sf.write(dst, np.clip(wav, -1, 1), rate, subtype="PCM_16")
        size = dst.stat().st_size
        if total + size > budget:
            dst.unlink()
            break
        total, seconds, written = total + size, seconds + len(wav) / rate, written + 1
    return {"files": written, "of": len(files), "mb": total / 1e6, "minutes": seconds / 60}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", required=True, help="folder of training audio (searched recursively)")
    p.add_argument("--val", required=True, help="held-out list or folder: never packed")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--max-mb", type=float, default=55.0, help="size budget of the FLAC files, in MB")
    p.add_argument("--rate", type=int, default=16000, help="sample rate to write (Hz)")
    p.add_argument("--fill", default="librispeech_train100", help="corpora (folder names) that fill the rest")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    r = pack_speech(args.src, args.val, args.out, args.max_mb, args.rate, args.fill, args.seed)
    print(f"{r['files']} of {r['of']} files, {r['mb']:.1f} MB, {r['minutes']:.1f} min at {args.rate} Hz in {args.out}")


if __name__ == "__main__":
    main()
