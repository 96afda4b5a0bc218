"""Training throughput on this CPU: which settings make `ncodec train` use the whole CPU.

For the image model (elic-gdn-vr) and the speech codec (speech-rvq-16k), each from its shipped
weights, times optimizer steps of the real training step (the task's forward and loss,
backward, Adam) under each setting, and reports steps/s and training samples per second
(megapixels/s for images, seconds of audio per second for speech):

- fp32 against bf16 autocast (``torch.autocast("cpu", torch.bfloat16)``);
- channels_last memory format (images);
- batch x crop size at equal pixels (images) or audio per batch (speech);
- one process with 2 threads against two processes with 1 thread each (their sum).

Each figure is the median of ``--repeats`` timings of ``--steps`` steps after 2 warm-up
steps, in a fresh process per setting (so one setting's allocator state does not help the
next). Run with the glibc settings that `ncodec train` is measured with:

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 OMP_WAIT_POLICY=PASSIVE \\
        .venv/bin/python benchmarks/cpu_training.py --out benchmarks/results/cpu_training.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (model, task options, batch, crop: pixels per side or audio seconds, dtype, channels_last)
SETTINGS = [
    ("elic-gdn-vr", 8, 256, "fp32", False),
    ("elic-gdn-vr", 8, 256, "bf16", False),
    ("elic-gdn-vr", 8, 256, "fp32", True),
    ("elic-gdn-vr", 8, 256, "bf16", True),
    ("elic-gdn-vr", 32, 128, "fp32", False),
    ("elic-gdn-vr", 2, 512, "fp32", False),
    ("speech-rvq-16k", 8, 0.5, "fp32", False),
    ("speech-rvq-16k", 8, 0.5, "bf16", False),
    ("speech-rvq-16k", 16, 0.25, "fp32", False),
    ("speech-rvq-16k", 4, 1.0, "fp32", False),
]


def _worker(model_name: str, batch: int, crop: float, dtype: str, channels_last: bool, steps: int,
            repeats: int, threads: int) -> dict:
    """Times the training steps of one setting in this process."""
    import torch

    from ncodec.train.tasks import get_task

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    image = model_name != "speech-rvq-16k"
    if image:
        task = get_task("image")({"arch": model_name, "patch_size": int(crop),
                                  "data": str(ROOT / "ncodec" / "data" / "images")})
        x = torch.rand(batch, 3, int(crop), int(crop))
    else:
        task = get_task("audio")({"arch": model_name, "data": str(ROOT / "ncodec" / "data" / "audio"),
                                  "segment_seconds": crop, "adversarial_start": 10**9, "wave_weight": 100})
        x = 0.1 * torch.randn(batch, 1, task.segment)
    model = task.build_model()
    task.load_init(model, str(ROOT / "ncodec" / "weights" / f"{model_name}.safetensors"))
    model.train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(params, lr=1e-5)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            losses = task.training_step(model, x)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps)
    per_step = statistics.median(times)
    amount = batch * (crop * crop / 1e6 if image else crop)  # megapixels or audio seconds per step
    return {"steps_per_s": 1 / per_step, "samples_per_s": amount / per_step}


def measure(setting: tuple, steps: int, repeats: int, processes: int) -> dict:
    """One setting in ``processes`` concurrent fresh processes of ``2 // processes`` threads;
    throughputs summed."""
    args = json.dumps([*setting, steps, repeats, 2 // processes])
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import cpu_training as b; "
            "print(json.dumps(b._worker(*json.loads(sys.argv[2]))))")
    env = {**os.environ, "OMP_NUM_THREADS": str(2 // processes)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(ROOT / "benchmarks"), args], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=3600)
        if proc.returncode:
            raise RuntimeError(err[-2000:])
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return {k: sum(o[k] for o in outs) for k in outs[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3, help="steps per timing")
    p.add_argument("--repeats", type=int, default=3, help="timings per setting (the median is reported)")
    p.add_argument("--only", help="comma-separated models to measure (default: both)")
    p.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from machine import emit_report

    rows = []
    wanted = set(args.only.split(",")) if args.only else None
    for setting in SETTINGS:
        if wanted and setting[0] not in wanted:
            continue
        for processes in ((1, 2) if setting[3] == "fp32" and not setting[4] and setting[1] == 8 else (1,)):
            r = measure(setting, args.steps, args.repeats, processes)
            model, batch, crop, dtype, cl = setting
            unit = "Mpx/s" if model != "speech-rvq-16k" else "audio s/s"
            size = f"{batch} x {crop:g}{' px' if unit == 'Mpx/s' else ' s'}"
            rows.append(f"| {model} | {size} | {dtype} | {'yes' if cl else 'no'} | "
                        f"{'1 x 2 threads' if processes == 1 else '2 x 1 thread'} | {r['steps_per_s']:.3f} | "
                        f"{r['samples_per_s']:.3f} {unit} |")
            print(rows[-1], flush=True)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "OMP_WAIT_POLICY")
                   if k in os.environ) or "(default glibc and OpenMP settings)"
    emit_report(["# CPU training throughput", "",
                 f"`{env} .venv/bin/python benchmarks/cpu_training.py --steps {args.steps} --repeats {args.repeats}`: "
                 "optimizer steps of the real training step from the shipped weights, median of the timings.", "",
                 "| model | batch x crop | precision | channels_last | processes | steps/s | throughput |",
                 "|---|---|---|---|---|--:|--:|", *rows], args.out)


if __name__ == "__main__":
    main()
