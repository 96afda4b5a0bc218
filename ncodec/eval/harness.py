"""Image evaluation from Python: thin entry points into the harness core with the image plug-in.

:func:`evaluate` codes images with learned codecs and the classical baselines
(:mod:`ncodec.eval.image` says what is measured and what the report holds);
:func:`write_report` writes the report; :func:`prepare_report_dir` readies its folder before
any work. The machinery is :mod:`ncodec.eval.core` and :mod:`ncodec.eval.report`, shared with
every modality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

from ncodec.eval import core, report
from ncodec.eval.baselines import DEFAULT_BASELINES
from ncodec.eval.results import Curve, Results
from ncodec.eval.image import PLUGIN, Record, bdrate_markdown
from ncodec.eval.report import csv_text, prepare_report_dir, record_report

__all__ = ["Curve", "EvalResults", "Record", "bd_rows", "bdrate_markdown", "csv_text", "evaluate",
           "prepare_report_dir", "record_report", "write_report"]

EvalResults = Results
"""What :func:`evaluate` returns (:class:`ncodec.eval.results.Results`)."""


def evaluate(images: Sequence[str | Path], codec_name: Optional[str | Sequence[str]],
             qualities: Optional[Sequence[int]] = None, baselines: Iterable[str] = DEFAULT_BASELINES,
             device: str = "cpu", progress: Optional[bool] = None) -> Results:
    """Code every image with each ncodec codec at each quality and with each baseline at each
    of its default settings, and measure each result.

    Args:
        images: image files (PNG, JPEG, WebP; 8-bit RGB or grayscale), coded in this order.
        codec_name: ncodec image codec (registry name or weights path), or several; None to
            run only the baselines.
        qualities: the codecs' qualities to run; None or empty for all of them.
        baselines: baseline names (see :data:`ncodec.eval.baselines.BASELINES`).
        device: where the learned codecs run ("cpu", "cuda"); baselines run on the CPU.
        progress: a progress bar on stderr; None shows it only on a terminal.

    Raises:
        ValueError: no images, an unreadable image, an unknown codec, quality or baseline, or
            a baseline whose library is missing (checked before any coding).
    """
    return core.evaluate(PLUGIN, images, codec_name, qualities, list(baselines), device=device, progress=progress)


def write_report(results: Results, out_dir: str | Path) -> dict[str, Path]:
    """Write the JSON files, ``per_image.csv``, ``rd.png`` and ``bdrate.md`` into ``out_dir``
    (created if needed; files of the same names are replaced). Returns {what: path}, with
    one "json:<key>" entry per codec."""
    return report.write_report(results, out_dir, PLUGIN)


def bd_rows(results: Results) -> list[dict]:
    """Per learned codec and baseline: BD-rate (%) on PSNR-RGB (``bd_rate_psnr``) and on
    MS-SSIM in dB (``bd_rate_ms_ssim``), and BD-PSNR in dB (``bd_psnr``); each a float, or a
    string saying why it is missing."""
    return core.bd_rows(results, PLUGIN)
