"""Rate-distortion plots: PSNR-RGB and MS-SSIM (dB) against bpp, one curve per codec.

Curves are CompressAI results dicts (``{"name": ..., "results": {"bpp": [...],
"psnr-rgb": [...], "ms-ssim-rgb": [...]}}``), so CompressAI's published JSON files can be
drawn beside ncodec's. Rendering uses matplotlib's Agg canvas directly (no GUI, and the
process-wide backend is left alone).
"""

from __future__ import annotations

import io
import math
from typing import Collection, Mapping, Optional, Sequence

__all__ = ["plot_rd"]


def _values(results: Mapping, key: str) -> list[float]:
    # JSON null (a metric not defined, e.g. MS-SSIM on small images) becomes NaN.
    return [math.nan if v is None else float(v) for v in results.get(key) or []]


def _ms_ssim_db(values: list[float]) -> list[float]:
    return [math.nan if not (v < 1) else -10.0 * math.log10(1.0 - v) for v in values]


def plot_rd(series: Sequence[Mapping], *, title: Optional[str] = None,
            dashed: Collection[str] = ()) -> bytes:
    """A PNG (bytes) with two panels: PSNR-RGB (dB) vs bpp and MS-SSIM (dB, i.e.
    ``-10 log10(1 - MS-SSIM)``) vs bpp.

    Args:
        series: CompressAI results dicts, drawn in order; missing or non-finite points are
            skipped (a panel with no point says so).
        title: figure title.
        dashed: names drawn with dashed lines (e.g. the classical baselines).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5), dpi=120)
    FigureCanvasAgg(fig)
    panels = [("psnr-rgb", "PSNR-RGB [dB]", None), ("ms-ssim-rgb", "MS-SSIM [dB]", _ms_ssim_db)]
    for i, (key, ylabel, transform) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        drawn = 0
        for s in series:
            res = s.get("results", s)
            ys = _values(res, key)
            ys = transform(ys) if transform else ys
            pts = [(x, y) for x, y in zip(_values(res, "bpp"), ys) if math.isfinite(x) and math.isfinite(y)]
            if not pts:
                continue
            pts.sort()
            name = str(s.get("name", "?"))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", linewidth=1.0,
                    linestyle="--" if name in dashed else "-", label=name)
            drawn += 1
        ax.set_xlabel("Bit-rate [bpp]")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.4)
        if drawn:
            ax.legend(loc="lower right", fontsize="small")
        else:
            ax.text(0.5, 0.5, f"no {ylabel.split(' ')[0]} values\n(MS-SSIM needs images of 161 px or more)"
                    if key == "ms-ssim-rgb" else "no values", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
