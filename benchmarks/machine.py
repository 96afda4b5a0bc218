"""What machine a benchmark ran on, for the first lines of every report; writing a report."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (its affinity), not the machine's total."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine_line() -> str:
    """One line naming the CPU and the cores this process may use."""
    return f"Machine: {cpu_model()}, {usable_cores()} usable cores."


def emit_report(lines: list[str], out: Path | None) -> str:
    """Join a markdown report, add the machine line, print it, and write it to ``out`` if given."""
    report = "\n".join([*lines, "", machine_line()]) + "\n"
    print(report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
    return report
