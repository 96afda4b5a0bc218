"""Hostile streams: mutated and truncated inputs never crash, hang or read out of bounds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EXT = os.path.join(os.path.dirname(HERE), "ext")


def test_python_fuzz_10000_streams_in_subprocess():
    # A subprocess, so that a segfault shows up as a failed test, not a dead test run.
    proc = subprocess.run([sys.executable, os.path.join(HERE, "fuzz_worker.py"), "10000", "7"],
                          capture_output=True, text=True, timeout=600, cwd=HERE)
    assert proc.returncode == 0, f"fuzz worker died (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    counts = dict(re.findall(r"(\w+)=(\d+)", proc.stdout))
    assert int(counts["total"]) == 10000
    assert int(counts["BitstreamError"]) > 1000  # corruption is mostly caught, not decoded


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_sanitized_core_fuzz(tmp_path):
    """The coder core (the header shared with CUDA) and the stream parser under AddressSanitizer
    and UndefinedBehaviorSanitizer: any out-of-bounds read or UB aborts the run."""
    exe = tmp_path / "fuzz_core"
    build = subprocess.run(
        ["g++", "-std=c++17", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-I", EXT, os.path.join(HERE, "fuzz_core.cpp"), "-o", str(exe)],
        capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    proc = subprocess.run([str(exe), "20000", "11"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"sanitizer run failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    counts = dict(re.findall(r"(\w+)=(\d+)", proc.stdout))
    assert int(counts["roundtrips"]) == 200 and int(counts["mutated"]) == 20000


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_core_compiles_as_cuda_device_code(tmp_path):
    """The coder core is one header for the CPU build and a CUDA build (compile only: no GPU)."""
    proc = subprocess.run(
        ["nvcc", "-std=c++17", "-c", "-I", EXT, os.path.join(HERE, "cuda_core_check.cu"),
         "-o", str(tmp_path / "cuda_core_check.o")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
