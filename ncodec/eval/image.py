"""The image plug-in of the eval harness: learned image codecs against JPEG, WebP, AVIF,
JPEG 2000 and JPEG XL, scored as CompressAI scores them.

Per image and setting it measures the size of the whole file (container and headers included:
what a user stores), bpp, PSNR-RGB, MS-SSIM (:mod:`ncodec.eval.image_metrics`) and the encode and
decode wall-clock times. Images are read as 8-bit RGB (:func:`ncodec.io.read_rgb`: grayscale
repeated to three channels, so every codec sees and is scored on the same RGB image). The
report (:func:`ncodec.eval.report.write_report`) holds:

- ``<key>.json`` per codec in CompressAI's results schema, so ``python -m
  compressai.utils.plot`` draws them beside CompressAI's published curves::

      {"name": str, "description": str,
       "results": {"psnr-rgb": [dB], "ms-ssim-rgb": [0..1], "bpp": [bits/pixel],
                   "encoding_time": [s], "decoding_time": [s]},
       "qualities": [setting per entry]}          # ncodec's addition, ignored by CompressAI

  One entry per setting (lowest quality first): the mean over the images, as CompressAI's
  ``eval_model`` and ``bench`` report. A value that is not finite is written as null:
  MS-SSIM when some image is under 161 px on its shorter side, PSNR when a setting is
  lossless on some image (inf).
- ``per_image.csv``: one row per (codec, setting, image).
- ``rd.png``: PSNR-RGB and MS-SSIM (dB) against bpp, one curve per codec.
- ``bdrate.md``: BD-rate of each learned codec against each baseline (PSNR and MS-SSIM).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ncodec.eval import core, image_baselines, report
from ncodec.eval import image_metrics as metrics
from ncodec.eval.core import bd_table
from ncodec.eval.results import Record as _Record
from ncodec.eval.results import Results
from ncodec.eval.plugin import BDColumn, Coded, EvalPlugin, Panel, SummaryColumn, register_eval_plugin

if TYPE_CHECKING:
    import torch

    from ncodec.codecs.base import Decoded

__all__ = ["ImagePlugin", "Record", "bd_rows", "bdrate_markdown", "evaluate", "write_report"]


@dataclass(frozen=True)
class Record(_Record):
    """One image coded at one setting. Times in seconds; ``ms_ssim_rgb`` is NaN for images
    under 161 px on their shorter side; ``psnr_rgb`` is inf when the image came back exact."""

    codec: str
    quality: float
    file: str
    height: int
    width: int
    bytes: int
    bpp: float
    psnr_rgb: float
    ms_ssim_rgb: float
    encoding_time: float
    decoding_time: float

    setting_field = "quality"
    means = {"psnr-rgb": "psnr_rgb", "ms-ssim-rgb": "ms_ssim_rgb", "bpp": "bpp",
             "encoding_time": "encoding_time", "decoding_time": "decoding_time"}


class _Baseline:
    """A classical image codec (:mod:`ncodec.eval.image_baselines`) on uint8 ``[3, H, W]`` tensors."""

    def __init__(self, baseline: image_baselines.Baseline):
        self.baseline = baseline
        self.name, self.label, self.qualities = baseline.name, baseline.label, baseline.qualities

    def describe(self) -> str:
        return self.baseline.describe()

    def run(self, media: "torch.Tensor", setting: float) -> Coded:
        import numpy as np
        import torch

        coded = self.baseline.run(media.permute(1, 2, 0).contiguous().numpy(), setting)
        decoded = torch.from_numpy(np.array(coded.decoded)).permute(2, 0, 1)
        return Coded(coded.data, decoded, coded.encoding_time, coded.decoding_time)


class ImagePlugin(EvalPlugin):
    """Images: uint8 RGB ``[3, H, W]`` in, bpp, PSNR-RGB and MS-SSIM out."""

    modality = "image"
    input_noun = "image"
    setting_flag = "--qualities"
    setting_label = "setting"
    settings_key = "qualities"
    rate_key = "bpp"
    rate_label = "Bit-rate [bpp]"
    default_baselines = image_baselines.DEFAULT_BASELINES
    records_file = "per_image.csv"
    summary_columns = (SummaryColumn("bpp", "bpp", ".4f"), SummaryColumn("PSNR dB", "psnr-rgb", ".2f"),
                       SummaryColumn("MS-SSIM", "ms-ssim-rgb", ".4f"),
                       SummaryColumn("enc ms", "encoding_time", ".1f", 1e3),
                       SummaryColumn("dec ms", "decoding_time", ".1f", 1e3))
    bd_columns = (BDColumn("bd_rate_psnr", "BD-rate (PSNR-RGB)", "psnr-rgb", "PSNR"),
                  BDColumn("bd_rate_ms_ssim", "BD-rate (MS-SSIM dB)", "ms-ssim-rgb", "MS-SSIM",
                           to_scale=metrics.ms_ssim_db, missing="n/a: no MS-SSIM (images under 161 px)"),
                  BDColumn("bd_psnr", "BD-PSNR", "psnr-rgb", "PSNR", delta="quality", unit=" dB"))
    plot_panels = (Panel("psnr-rgb", "PSNR-RGB [dB]"),
                   Panel("ms-ssim-rgb", "MS-SSIM [dB]", metrics.ms_ssim_db,
                         "no MS-SSIM values\n(MS-SSIM needs images of 161 px or more)"))

    def read(self, path: Path) -> "torch.Tensor":
        from ncodec.io import read_rgb

        return read_rgb(path)

    def warm_up_media(self, media: "torch.Tensor") -> "torch.Tensor":
        import torch

        return torch.full((3, 64, 64), 128, dtype=torch.uint8)

    def decoded_media(self, decoded: "Decoded", media: "torch.Tensor", key: str, path: Path) -> "torch.Tensor":
        if tuple(decoded.tensor.shape) != tuple(media.shape):
            raise RuntimeError(f"{key} decoded {tuple(decoded.tensor.shape)} from {path}, expected {tuple(media.shape)}")
        return metrics.to_uint8(decoded.tensor)

    def record(self, key: str, setting: float, path: Path, media: "torch.Tensor", coded: Coded) -> Record:
        _, h, w = media.shape
        return Record(codec=key, quality=setting, file=str(path), height=h, width=w, bytes=len(coded.data),
                      bpp=metrics.bpp(len(coded.data), h, w), psnr_rgb=metrics.psnr_rgb(media, coded.decoded),
                      ms_ssim_rgb=metrics.ms_ssim_rgb(media, coded.decoded), encoding_time=coded.encode_seconds,
                      decoding_time=coded.decode_seconds)

    def baseline_names(self) -> Sequence[str]:
        return list(image_baselines.BASELINES)

    def parse_baselines(self, text: str | Sequence[str]) -> list[str]:
        return image_baselines.parse_baselines(text)

    def baseline(self, name: str) -> _Baseline:
        return _Baseline(image_baselines.get_baseline(name))

    def baseline_settings(self, baseline: Any, wanted: Optional[Sequence[float]],
                          codec_wanted: Optional[Sequence[float]], learned: Sequence[float]) -> list[float]:
        """A baseline's own settings (its sweep), or ``wanted`` (its own scale, not the codec's)."""
        return sorted(dict.fromkeys(wanted)) if wanted else list(baseline.qualities)

    def markdown(self, results: Results) -> dict[str, str]:
        return {"bdrate.md": bdrate_markdown(results)}


def bdrate_markdown(results: Results) -> str:
    """The ``bdrate.md`` text: one row per (learned codec, baseline)."""
    if not results.codecs:
        return "# BD-rate\n\nNo learned codec in this run: nothing to compare.\n"
    lines = [
        f"# BD-rate of {', '.join(c.name for c in results.codecs)} against each baseline",
        "",
        f"{len(results.inputs)} image(s). Bjøntegaard deltas with PCHIP interpolation over log-rate, on the "
        "quality interval both curves cover (per-setting means of bpp from whole files). "
        "BD-rate < 0: the learned codec needs fewer bits for the same quality. "
        "BD-PSNR > 0: it is better at the same rate.",
        "",
    ]
    return "\n".join(lines + bd_table(results, PLUGIN)) + "\n"


PLUGIN = ImagePlugin()
register_eval_plugin(PLUGIN)


# --------------------------------------------------------------------------- from Python

def evaluate(images: Sequence[str | Path], codec_name: Optional[str | Sequence[str]],
             qualities: Optional[Sequence[int]] = None,
             baselines: Sequence[str] = image_baselines.DEFAULT_BASELINES, device: str = "cpu",
             progress: Optional[bool] = None) -> Results:
    """Code every image with each ncodec codec at each quality and with each baseline at each
    of its default settings, and measure each result (``ncodec eval`` from Python).

    Args:
        images: image files (PNG, JPEG, WebP; 8-bit RGB or grayscale), coded in this order.
        codec_name: ncodec image codec (registry name or weights path), or several; None to
            run only the baselines.
        qualities: the codecs' qualities to run; None or empty for all of them.
        baselines: baseline names (see :data:`ncodec.eval.image_baselines.BASELINES`).
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
