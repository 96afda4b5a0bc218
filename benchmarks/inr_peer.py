"""inr-image against Cool-chic (the peer) at equal fit iterations, on the same images and CPU.

Cool-chic (Orange-OpenSource/Cool-Chic) is run from a checkout of its public repository as its
own command-line encoder and decoder (``cc_encode.py``, ``cc_decode.py``; its ``intra`` preset
with the ``hop`` decoder, the class of inr-image's default), in a subprocess with the same
thread count; nothing of it is imported here. For every image and setting the script records
the whole file's size (bpp), the PSNR of the decoded file against the original (8-bit RGB),
the encoder's wall time, and seconds per iteration (wall time / iterations: everything the
encoder does, its network quantisation included). Runs append to ``OUT/runs.jsonl`` (a rerun
skips what is there); ``--report`` writes ``OUT/report.md`` (BD-rate of inr-image against
Cool-chic per image, PSNR, time ratio) and ``OUT/rd.png``.

    python benchmarks/inr_peer.py --images IMG... --iterations 2000 --qualities 3,4,5,6 \\
        --coolchic /path/to/Cool-Chic --coolchic-lambdas 4e-3,2e-3,1e-3,5e-4 --threads 1 \\
        --out benchmarks/results/inr_peer [--crop 256] [--only ours|coolchic] [--report]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def run_ours(image: Path, quality: int, iterations: int, threads: int, preset: str, seed: int = 0) -> dict:
    import torch

    import ncodec
    from ncodec.codecs.inr_image import InrImageCodec
    from ncodec.eval.image_metrics import to_uint8

    torch.set_num_threads(threads)
    x = torch.from_numpy(_read_rgb(image).copy()).permute(2, 0, 1).contiguous()
    codec = InrImageCodec("inr-image" if preset == "default" else f"inr-image-{preset}", quality, preset,
                          progress=False, seed=seed)
    start = time.perf_counter()
    data = codec.compress(x, effort=iterations)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    decoded = to_uint8(ncodec.decompress(data).tensor).permute(1, 2, 0).numpy()
    decode_seconds = time.perf_counter() - start
    h, w = x.shape[-2:]
    return {"codec": f"ncodec inr-image ({preset})", "setting": quality, "bytes": len(data), "bpp": 8 * len(data) / (h * w),
            "psnr": _psnr(decoded, x.permute(1, 2, 0).numpy()), "seconds": seconds,
            "seconds_per_iteration": seconds / iterations, "decode_seconds": decode_seconds,
            "network_bits": codec.last_fit["network_bits"], "latent_bits": codec.last_fit["latent_bits"]}


def run_coolchic(image: Path, lam: float, iterations: int, threads: int, repo: Path, python: str,
                 pythonpath: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        out, decoded_path = Path(tmp) / "out.cool", Path(tmp) / "decoded.ppm"
        start = time.perf_counter()
        enc = subprocess.run([python, "cc_encode.py", "-i", str(image.resolve()), "-o", str(out), "--workdir", str(work),
                              "--n_itr", str(iterations), "--lmbda", str(lam),
                              "--dec_cfg_residue", "cfg/dec/intra/hop.cfg"],
                             cwd=repo, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if enc.returncode != 0:
            raise RuntimeError(f"Cool-chic encoder failed: {enc.stderr[-2000:]}")
        start = time.perf_counter()
        dec = subprocess.run([python, "cc_decode.py", "-i", str(out), "-o", str(decoded_path)], cwd=repo, env=env,
                             capture_output=True, text=True)
        decode_seconds = time.perf_counter() - start
        if dec.returncode != 0:
            raise RuntimeError(f"Cool-chic decoder failed: {dec.stderr[-2000:]}")
        original = _read_rgb(image)
        decoded = _read_rgb(decoded_path)
        h, w = original.shape[:2]
        size = out.stat().st_size
    return {"codec": "Cool-chic 5.0.1 (hop)", "setting": lam, "bytes": size, "bpp": 8 * size / (h * w),
            "psnr": _psnr(decoded, original), "seconds": seconds, "seconds_per_iteration": seconds / iterations,
            "decode_seconds": decode_seconds}


def _label(run: dict) -> str:
    """A run's curve: its codec, and inr-image's fit seed where it is not 0."""
    return run["codec"] + (f", seed {run['seed']}" if run.get("seed") else "")


def report(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ncodec.eval.bdrate import bd_psnr, bd_rate

    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]
    images = sorted({r["image"] for r in runs})
    lines = ["| image | iterations | threads | inr-image fit seed | BD-rate inr-image vs Cool-chic | BD-PSNR | s/it inr-image | "
             "s/it Cool-chic | s/it ratio in these runs (their loads may differ: time side by side for a fair ratio) |",
             "|---|---|---|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, len(images), figsize=(5.5 * len(images), 4.2), squeeze=False)
    for ax, image in zip(axes[0], images):
        for key in sorted({(r["iterations"], r["threads"]) for r in runs if r["image"] == image}):
            curves = {}
            for r in runs:
                if r["image"] == image and (r["iterations"], r["threads"]) == key:
                    curves.setdefault(_label(r), []).append(r)
            peer = next((v for k, v in curves.items() if k.startswith("Cool-chic")), [])
            for name, points in curves.items():
                points.sort(key=lambda r: r["bpp"])
                ax.plot([p["bpp"] for p in points], [p["psnr"] for p in points], "o-", label=f"{name}, {key[0]} it")
            for ours in (v for k, v in curves.items() if k.startswith("ncodec")):
                if len(ours) < 2 or len(peer) < 2:
                    continue
                args = ([p["bpp"] for p in peer], [p["psnr"] for p in peer], [p["bpp"] for p in ours],
                        [p["psnr"] for p in ours])
                try:
                    rate, gain = f"{bd_rate(*args):+.1f} %", f"{bd_psnr(*args):+.2f} dB"
                except ValueError as exc:
                    rate, gain = f"n/a ({exc})", "n/a"
                s_ours = np.mean([p["seconds_per_iteration"] for p in ours])
                s_peer = np.mean([p["seconds_per_iteration"] for p in peer])
                lines.append(f"| {Path(image).name} | {key[0]} | {key[1]} | {ours[0].get('seed', 0)} | {rate} | {gain} | "
                             f"{s_ours:.3f} | {s_peer:.3f} | {s_peer / s_ours:.2f}x |")
        ax.set_title(Path(image).name)
        ax.set_xlabel("bpp (whole file)")
        ax.set_ylabel("PSNR-RGB [dB]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "rd.png", dpi=110)
    detail = ["", "| image | codec | setting | iterations | bpp | PSNR dB | encode s | s/it | decode s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["image"], _label(r), r["bpp"])):
        detail.append(f"| {Path(r['image']).name} | {_label(r)} | {r['setting']} | {r['iterations']} | {r['bpp']:.4f} | "
                      f"{r['psnr']:.2f} | {r['seconds']:.1f} | {r['seconds_per_iteration']:.3f} | "
                      f"{r['decode_seconds']:.2f} |")
    (out / "report.md").write_text("\n".join(lines + detail) + "\n")
    print("\n".join(lines + detail))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", nargs="*", default=[], type=Path)
    p.add_argument("--crop", type=int, default=0, help="code the top-left NxN crop of each image (0: whole)")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--qualities", default="3,4,5,6", help="inr-image qualities")
    p.add_argument("--preset", default="default", help="inr-image model preset (default, light)")
    p.add_argument("--seed", type=int, default=0, help="inr-image's fit seed (recorded when not 0)")
    p.add_argument("--coolchic", type=Path, help="checkout of Orange-OpenSource/Cool-Chic")
    p.add_argument("--coolchic-python", default=sys.executable)
    p.add_argument("--coolchic-pythonpath", default="", help="PYTHONPATH holding Cool-chic's dependencies")
    p.add_argument("--coolchic-lambdas", default="4e-3,2e-3,1e-3,5e-4")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", choices=("ours", "coolchic"), default=None)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "inr_peer")
    p.add_argument("--report", action="store_true", help="write the report from the runs so far")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs.jsonl"
    done = set()
    if log.exists():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            done.add((r["image"], r["codec"], r["setting"], r["iterations"], r["threads"], r.get("seed", 0)))
    for image in args.images:
        if args.crop:
            from PIL import Image

            cropped = args.out / "crops" / f"{image.stem}-{args.crop}.png"
            cropped.parent.mkdir(exist_ok=True)
            Image.open(image).convert("RGB").crop((0, 0, args.crop, args.crop)).save(cropped)
            image = cropped.relative_to(ROOT) if cropped.is_relative_to(ROOT) else cropped
        jobs = []
        if args.only != "coolchic":
            jobs += [("ours", int(q)) for q in args.qualities.split(",")]
        if args.only != "ours":
            if args.coolchic is None:
                raise SystemExit("--coolchic DIR is needed to run the peer (or --only ours)")
            jobs += [("coolchic", float(v)) for v in args.coolchic_lambdas.split(",")]
        for kind, setting in jobs:
            name = f"ncodec inr-image ({args.preset})" if kind == "ours" else "Cool-chic 5.0.1 (hop)"
            key = (str(image), name, setting, args.iterations, args.threads, args.seed if kind == "ours" else 0)
            if key in done:
                continue
            if kind == "ours":
                result = run_ours(image, setting, args.iterations, args.threads, args.preset, args.seed)
                if args.seed:
                    result["seed"] = args.seed
            else:
                result = run_coolchic(image, setting, args.iterations, args.threads, args.coolchic,
                                      args.coolchic_python, args.coolchic_pythonpath)
            result.update(image=str(image), iterations=args.iterations, threads=args.threads)
            with log.open("a") as f:
                f.write(json.dumps(result) + "\n")
            print(json.dumps(result), flush=True)
    if args.report:
        report(args.out)


if __name__ == "__main__":
    main()
