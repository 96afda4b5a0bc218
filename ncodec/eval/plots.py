"""Rate-distortion plots: one panel per quality metric against the rate, one line per codec.

Series are results dicts, ``{"name": ..., "results": {rate_key: [...], metric: [...]}}`` (the
``<key>.json`` files of a report, or CompressAI's published JSON files for images), so other
curves can be drawn beside ncodec's. Rendering uses matplotlib's Agg canvas directly (no GUI,
and the process-wide backend is left alone).
"""

from __future__ import annotations

import io
import math
from typing import Collection, Mapping, Optional, Sequence

from ncodec.eval.plugin import Panel

__all__ = ["plot_rd"]


def _values(results: Mapping, key: str) -> list[float]:
    # JSON null (a metric not defined, e.g. MS-SSIM on small images) becomes NaN.
    return [math.nan if v is None else float(v) for v in results.get(key) or []]


def _points(results: Mapping, panel: Panel, rate_key: str) -> list[tuple[float, float]]:
    """Finite (rate, value) points sorted by rate, one per distinct rate (settings below a
    codec's floor give the same file twice)."""
    ys = _values(results, panel.key)
    ys = [panel.to_scale(y) if panel.to_scale and not math.isnan(y) else y for y in ys]
    points: dict[float, float] = {}
    for x, y in zip(_values(results, rate_key), ys):
        if math.isfinite(x) and math.isfinite(y):
            points.setdefault(round(x, 9), y)
    return sorted(points.items())


def plot_rd(series: Sequence[Mapping], panels: Sequence[Panel], *, rate_key: str, rate_label: str,
            title: Optional[str] = None, dashed: Collection[str] = ()) -> bytes:
    """A PNG (bytes), one panel per :class:`~ncodec.eval.plugin.Panel` side by side, each
    the panel's metric against ``rate_key``.

    Args:
        series: results dicts, drawn in order; missing or non-finite points are skipped (a
            panel with no point shows its ``empty`` text).
        panels: what to draw.
        rate_key: the results key of the x axis ("bpp", "kbps").
        rate_label: the x-axis label ("Bit-rate [bpp]").
        title: figure title.
        dashed: names drawn with dashed lines (e.g. the classical baselines).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6 * len(panels), 5), dpi=120)
    FigureCanvasAgg(fig)
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        drawn = 0
        for s in series:
            pts = _points(s.get("results", s), panel, rate_key)
            if not pts:
                continue
            name = str(s.get("name", "?"))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", linewidth=1.0,
                    linestyle="--" if name in dashed else "-", label=name)
            drawn += 1
        ax.set_xlabel(rate_label)
        ax.set_ylabel(panel.label)
        ax.grid(True, alpha=0.4)
        if drawn:
            ax.legend(loc="lower right", fontsize="small")
        else:
            ax.text(0.5, 0.5, panel.empty, ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
