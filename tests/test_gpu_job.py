"""The standing GPU training job runs end to end on this CPU (pack, the call's script with a
short budget, accept without replacing), so that a lent GPU is never spent on a broken script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "benchmarks" / "gpu_job"


def run(*args: str, **env: str) -> str:
    proc = subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _training_clip(folder: Path) -> str:
    """A short Y4M training clip (the bundled clip is on the held-out list, which packing skips)."""
    from fractions import Fraction

    from ncodec.io.video import VideoWriter, YuvFrame, open_video

    folder.mkdir()
    with open_video(ROOT / "tests" / "data" / "video" / "realshort.mp4") as video, \
            VideoWriter(folder / "train.y4m", 320, 256, Fraction(30)) as out:
        for _, f in zip(range(16), video):
            out.write(YuvFrame(np.pad(f.y, ((0, 16), (0, 0)), mode="edge"), np.pad(f.u, ((0, 8), (0, 0)), mode="edge"),
                               np.pad(f.v, ((0, 8), (0, 0)), mode="edge")))
    return str(folder)


@pytest.mark.slow
@pytest.mark.parametrize("model, data", [("elic-gdn-vr", "ncodec/data/images"), ("speech-rvq-16k", "ncodec/data/audio"),
                                         ("video-ctx", None)])
def test_dry_run(model, data, tmp_path):
    bundle, out = tmp_path / "bundle", tmp_path / "out"
    val = "tests/data/video" if data is None else data
    data = data or _training_clip(tmp_path / "clips")
    shipped = (ROOT / "ncodec" / "weights" / f"{model}.safetensors").read_bytes()
    packed = run(sys.executable, str(JOB / "pack.py"), "--model", model, "--bundle", str(bundle), "--aside", "none",
                 "--src", data, "--max-mb", "1", "--minutes", "0.2", "--no-wheels")
    assert "device call: run(" in packed and (bundle / "init.safetensors").read_bytes() == shipped
    job = json.loads((bundle / "job.json").read_text())
    assert job["model"] == model and job["minutes"] == 0.2 and any((bundle / "data").iterdir())
    log = run("bash", str(JOB / "run.sh"), str(bundle), str(out), "0.2", "cpu", PYTHON=sys.executable,
              OMP_NUM_THREADS="2")
    assert "done in" in log
    parts = sorted(out.glob("weights.part*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    steps = [json.loads(line).get("step", 0) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) >= 1
    verdict = run(sys.executable, str(JOB / "accept.py"), "--returned", str(out), "--bundle", str(bundle),
                  "--aside", str(tmp_path / "nothing-aside"), "--val", val, "--limit", "1", "--no-replace")
    assert f"| {model} |" in verdict and "kept the shipped weights" in verdict
    assert (ROOT / "ncodec" / "weights" / f"{model}.safetensors").read_bytes() == shipped  # --no-replace
