"""Pack the next model of the GPU training queue for one device call (run here, before the call).

Reads ``benchmarks/gpu_job/queue.json``, takes its first job (or ``--model``), and writes a
git-ignored bundle (default ``.gpujob/``) that travels with the call as ``carry``:

- ``data/``: a training subset within the job's ``max_mb``: random crops of the training
  images as lossless WebP (``kind: images``), mono 16-bit FLAC speech minus the held-out
  list (``kind: speech``, :func:`benchmarks.pack_audio_data.pack_speech`), or windows of
  the training clips' frame runs with their motion (``kind: video``, :func:`pack_video`);
- ``init.safetensors``: the shipped weights to resume from;
- ``whl/``: wheels (Python 3.12, manylinux) of what the GPU machine lacks (compressai,
  pytorch-msssim, soundfile and its cffi): ``--no-wheels`` skips them;
- ``job.json``: the job, as ``run.sh`` reads it.

The shipped weights are tracked files and would travel with the tree (53 MB of the 64 MiB a
call carries): they are moved to ``.gpujob-aside/`` (git-ignored) until ``accept.py`` puts them
back (``--aside none`` keeps them, for a dry run). Prints the device call to make.

    .venv/bin/python benchmarks/gpu_job/pack.py            # then the printed call, then accept.py
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUEUE = ROOT / "benchmarks" / "gpu_job" / "queue.json"
WEIGHTS = ROOT / "ncodec" / "weights"
CALL_LIMIT_MIB = 64.0
# What the GPU machine's image lacks of ncodec's training imports (its torch, numpy, Pillow,
# scipy, safetensors, tqdm and matplotlib are there).
WHEELS = ("compressai==1.2.8", "pytorch-msssim==1.0.0", "soundfile==0.13.1", "cffi==2.0.0", "pycparser==2.23")


def load_job(queue: Path, model: str | None) -> dict:
    jobs = json.loads(queue.read_text())["jobs"]
    if model is None:
        return jobs[0]
    for job in jobs:
        if job["model"] == model:
            return job
    raise SystemExit(f"{model}: not in {queue} (has {', '.join(j['model'] for j in jobs)})")


def pack_images(src: Path, out: Path, crop: int, max_mb: float, seed: int = 0) -> dict:
    """Random ``crop`` x ``crop`` crops (two per image, or the image if smaller) as lossless
    WebP into ``out`` until ``max_mb`` MB; training crops its patches from these."""
    from PIL import Image

    from ncodec.io import IMAGE_SUFFIXES, read_rgb

    files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    rng = random.Random(seed)
    rng.shuffle(files)
    out.mkdir(parents=True, exist_ok=True)
    total, written = 0, 0
    for f in files:
        x = read_rgb(f)
        h, w = x.shape[-2:]
        for k in range(2 if min(h, w) > crop else 1):
            top, left = rng.randint(0, max(0, h - crop)), rng.randint(0, max(0, w - crop))
            tile = x[:, top:top + crop, left:left + crop].permute(1, 2, 0).numpy()
            dst = out / f"{f.stem}_{k}.webp"
            Image.fromarray(tile).save(dst, format="WEBP", lossless=True, method=4)
            if total + dst.stat().st_size > max_mb * 1e6:
                dst.unlink()
                return {"files": written, "of": len(files), "mb": total / 1e6}
            total += dst.stat().st_size
            written += 1
    return {"files": written, "of": len(files), "mb": total / 1e6}


def pack_video(src: Path, val_list: Path, out: Path, crop: int, max_mb: float, seed: int = 0) -> dict:
    """Windows of ``crop`` x ``crop`` luma pixels of the training clips' cached runs (frames
    and motion, :mod:`ncodec.train.video_data`; the held-out clips of ``val_list`` left out),
    one per run in random order, as compressed ``.npz`` caches until ``max_mb`` MB."""
    import numpy as np

    from ncodec.models.video import BLOCK
    from ncodec.train.video import DEFAULT_CACHE, list_clips, read_clip_list
    from ncodec.train.video_data import cache_runs

    held_out = [p for p, _ in read_clip_list(val_list, src)]
    files = cache_runs(list_clips(src, exclude=held_out), DEFAULT_CACHE, 4, 64)
    windows = []
    for f in files:
        with np.load(f) as data:
            if min(data["y"].shape[2:]) >= crop:
                windows += [(f, r) for r in range(data["y"].shape[0])]
    rng = random.Random(seed)
    rng.shuffle(windows)
    out.mkdir(parents=True, exist_ok=True)
    total, taken, n = 0.0, 0, crop // BLOCK
    for start in range(0, len(windows), 32):  # shards of 32 windows
        shard: dict[str, list] = {"y": [], "u": [], "v": [], "motion": []}
        for f, r in windows[start:start + 32]:
            with np.load(f) as data:
                y, u, v, motion = data["y"][r], data["u"][r], data["v"][r], data["motion"][r]
            by, bx = rng.randrange((y.shape[1] - crop) // BLOCK + 1), rng.randrange((y.shape[2] - crop) // BLOCK + 1)
            t, l = by * BLOCK, bx * BLOCK
            shard["y"].append(y[:, t:t + crop, l:l + crop])
            shard["u"].append(u[:, t // 2:(t + crop) // 2, l // 2:(l + crop) // 2])
            shard["v"].append(v[:, t // 2:(t + crop) // 2, l // 2:(l + crop) // 2])
            shard["motion"].append(motion[:, :, by:by + n, bx:bx + n])
        dst = out / f"windows-{start // 32:04d}.npz"
        np.savez_compressed(dst, **{k: np.stack(v) for k, v in shard.items()})
        size = dst.stat().st_size / 1e6
        if total + size > max_mb:
            dst.unlink()
            break
        total += size
        taken += len(shard["y"])
    return {"windows": taken, "of": len(windows), "mb": total}


def download_wheels(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # The device machine's Python is 3.12 (KINDS.md); pip matches manylinux versions exactly.
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35)] + ["--platform=any"]
    for spec in WHEELS:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(out), spec],
                       check=True)
    wrong = [w.name for w in out.glob("*.whl") if "-cp3" in w.name and "-cp312-" not in w.name]
    if wrong:
        raise SystemExit(f"wheels for another Python than the device machine's 3.12: {wrong}")


def tree_mib(exclude: set[Path]) -> float:
    """MiB of the files a call sends: tracked and untracked-not-ignored, minus ``exclude``."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    paths = (ROOT / p for p in listed if p)
    return sum(p.stat().st_size for p in paths if p.is_file() and p.resolve() not in exclude) / 2**20


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queue", type=Path, default=QUEUE)
    p.add_argument("--model", help="a queued model (default: the first)")
    p.add_argument("--bundle", type=Path, default=ROOT / ".gpujob")
    p.add_argument("--aside", default=str(ROOT / ".gpujob-aside"), help="where the shipped weights wait ('none': stay)")
    p.add_argument("--src", type=Path, help="training data folder (default: the job's)")
    p.add_argument("--max-mb", type=float, help="data budget in MB (default: the job's)")
    p.add_argument("--minutes", type=float, default=9.0, help="training budget of the call, in minutes")
    p.add_argument("--no-wheels", action="store_true", help="pack no wheels (a dry run on this machine)")
    args = p.parse_args()

    job = load_job(args.queue, args.model)
    data = job["data"]
    bundle = args.bundle
    if bundle.exists():
        shutil.rmtree(bundle)
    (bundle / "data").mkdir(parents=True)
    src = args.src or (ROOT / data["src"])
    max_mb = args.max_mb if args.max_mb is not None else data["max_mb"]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    if data["kind"] == "images":
        packed = pack_images(src, bundle / "data", data["crop"], max_mb)
    elif data["kind"] == "video":
        packed = pack_video(src, ROOT / data["val_list"], bundle / "data", data["crop"], max_mb)
    else:
        from pack_audio_data import pack_speech

        packed = pack_speech(src, ROOT / data["val_list"], bundle / "data", max_mb, data["rate"])
    shutil.copyfile(WEIGHTS / f"{job['model']}.safetensors", bundle / "init.safetensors")
    if not args.no_wheels:
        download_wheels(bundle / "whl")
    (bundle / "job.json").write_text(json.dumps({**job, "minutes": args.minutes}, indent=2) + "\n")

    moved = []
    if args.aside != "none":
        aside = Path(args.aside)
        aside.mkdir(parents=True, exist_ok=True)
        for f in sorted(WEIGHTS.rglob("*.safetensors")):  # the earlier weights in previous/ too
            target = aside / f.relative_to(WEIGHTS)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(f), target)
            moved.append(f.name)
    total = tree_mib(set()) + folder_mib(bundle)
    print(f"packed {job['model']} ({job['task']}): {packed}; bundle {folder_mib(bundle):.1f} MiB, "
          f"call {total:.1f} MiB of {CALL_LIMIT_MIB:.0f}" + (f"; {len(moved)} shipped weights moved aside" if moved else ""))
    if total > CALL_LIMIT_MIB - 1 and args.aside != "none":  # with the weights staying, a dry run
        raise SystemExit("the call would carry too much: lower the job's max_mb")
    print("device call: run(command='bash benchmarks/gpu_job/run.sh .gpujob \"$OUT\" "
          f"{args.minutes:g}', carry=['.gpujob'], timeout_s=600); then: "
          ".venv/bin/python benchmarks/gpu_job/accept.py --returned <files_at>")


if __name__ == "__main__":
    main()
