"""The video plug-in of the eval harness: learned video codecs against x264, x265 and SVT-AV1.

Per clip (its first ``frames`` frames, :meth:`VideoPlugin.with_options`) and setting (a
quality of an ncodec codec; a CRF of a baseline, each sweeping its own,
:data:`BASELINE_CRFS`) it measures:

- the rate from the whole file's bytes, ``8 * bytes / seconds / 1000`` kbps (container and
  headers included; the baselines' Matroska files too);
- PSNR-Y, -U, -V and PSNR-YUV (6:1:1) per frame on the 8-bit 4:2:0 planes
  (:mod:`ncodec.eval.video_metrics`), PSNR-RGB and MS-SSIM per frame on the BT.709 RGB of both
  (:mod:`ncodec.eval.image_metrics`; NaN below 161 pixels), each averaged over the frames;
- encode and decode wall-clock seconds and frames per second (torch on 2 CPU threads unless
  told otherwise; the baselines with as many encoder threads).

Every codec codes with the same GOP (``gop``, default :data:`DEFAULT_EVAL_GOP`), so that both
sides pay for the same random access. The report holds ``<key>.json`` per codec, ``per_clip.csv``,
``summary.md`` (the means and the BD-rates on PSNR-YUV and PSNR-RGB against each baseline) and
``rd.png`` (PSNR-YUV and MS-SSIM against kbps).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Sequence

import numpy as np

from ncodec.eval import core, report
from ncodec.eval.core import summary_markdown
from ncodec.eval.plugin import BDColumn, Coded, EvalPlugin, Panel, SummaryColumn, register_eval_plugin
from ncodec.eval.results import Record, Results

if TYPE_CHECKING:
    from ncodec.codecs.base import Codec, Decoded
    from ncodec.io.video import YuvFrame

__all__ = ["BASELINE_CRFS", "DEFAULT_EVAL_GOP", "VideoClip", "VideoPlugin", "VideoRecord", "evaluate"]

DEFAULT_EVAL_GOP = 32
BASELINE_CRFS = {"x264": (18, 23, 28, 33, 38), "x265": (20, 25, 30, 35, 40), "svt-av1": (20, 28, 36, 44, 52)}
"""Each baseline's CRF sweep (its rates span the learned codec's, bikes to realshort)."""
MEAN_KEYS = ("kbps", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "psnr_rgb", "ms_ssim", "encode_seconds",
             "decode_seconds")


class VideoClip(NamedTuple):
    """A video input: its first frames (8-bit 4:2:0) and frame rate, and the file."""

    frames: list
    fps: Fraction
    path: Path


@dataclass(frozen=True)
class VideoRecord(Record):
    """One clip coded at one setting (a quality, or a baseline's CRF): rates in kbps, PSNRs in
    dB and MS-SSIM as means over the frames, times in seconds, speeds in frames per second."""

    file: str
    codec: str
    quality: float
    frames: int
    width: int
    height: int
    fps: float
    bytes: int
    kbps: float
    psnr_y: float
    psnr_u: float
    psnr_v: float
    psnr_yuv: float
    psnr_rgb: float
    ms_ssim: float
    encode_seconds: float
    decode_seconds: float
    encode_fps: float
    decode_fps: float

    @classmethod
    def summarize(cls, rows: Sequence["VideoRecord"]) -> dict[str, float]:
        """Means over the clips (NaN where some clip has none), and the speeds over all frames."""
        out = {}
        for key in MEAN_KEYS:
            values = [getattr(r, key) for r in rows]
            out[key] = float(np.mean(values)) if all(math.isfinite(v) for v in values) else math.nan
        frames = sum(r.frames for r in rows)
        out["encode_fps"] = frames / max(sum(r.encode_seconds for r in rows), 1e-9)
        out["decode_fps"] = frames / max(sum(r.decode_seconds for r in rows), 1e-9)
        return out


def frame_metrics(ref: "YuvFrame", deg: "YuvFrame") -> dict[str, float]:
    """PSNR-Y/U/V/YUV of the planes, PSNR-RGB and MS-SSIM of their BT.709 RGB (8-bit)."""
    from ncodec.eval import image_metrics
    from ncodec.eval.video_metrics import psnr_yuv
    from ncodec.io.video import yuv420_to_rgb

    out = psnr_yuv(ref, deg)
    a, b = (yuv420_to_rgb(f).clamp_(0, 1) for f in (ref, deg))
    rgb = image_metrics.psnr_rgb(a, b)
    out["psnr_rgb"] = min(rgb, 100.0)  # the cap of the planes' PSNRs: lossless frames stay finite
    out["ms_ssim"] = image_metrics.ms_ssim_rgb(a, b)
    return out


def _record(key: str, setting: float, clip: VideoClip, data_bytes: int, decoded: list, enc: float,
            dec: float) -> VideoRecord:
    frames = clip.frames
    if len(decoded) != len(frames):
        raise RuntimeError(f"{key} decoded {len(decoded)} frames of {clip.path}, coded {len(frames)}")
    per = [frame_metrics(a, b) for a, b in zip(frames, decoded)]
    seconds = len(frames) / float(clip.fps)
    h, w = frames[0].size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # MS-SSIM NaN for small frames
        mean = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
    return VideoRecord(file=str(clip.path), codec=key, quality=float(setting), frames=len(frames), width=w, height=h,
                       fps=float(clip.fps), bytes=data_bytes, kbps=8 * data_bytes / seconds / 1000,
                       **{k: mean[k] for k in ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "psnr_rgb", "ms_ssim")},
                       encode_seconds=enc, decode_seconds=dec, encode_fps=len(frames) / max(enc, 1e-9),
                       decode_fps=len(frames) / max(dec, 1e-9))


class _Baseline:
    """A classical encoder (:mod:`ncodec.eval.video_baselines`) on :class:`VideoClip` s."""

    def __init__(self, name: str, gop: int, threads: int = 2):
        from ncodec.eval.video_baselines import get_video_baseline

        self.baseline = get_video_baseline(name)
        self.name = name
        self.label = {"x264": "x264", "x265": "x265", "svt-av1": "SVT-AV1"}[name]
        self.qualities = [float(c) for c in BASELINE_CRFS[name]]
        self.gop, self.threads = gop, threads

    def describe(self) -> str:
        import av

        options = ", ".join(f"{k} {v}" for k, v in self.baseline.options.items() if k != "x265-params")
        return (f"{self.baseline.encoder} through PyAV {av.__version__} (FFmpeg), {options}, CRF sweep "
                f"{list(BASELINE_CRFS[self.name])}, GOP {self.gop}, {self.threads} encoder threads, Matroska")

    def run(self, media: VideoClip, setting: float) -> Coded:
        h, w = media.frames[0].size
        data, count, enc = self.baseline.encode(media.frames, w, h, media.fps, int(setting), gop=self.gop,
                                                threads=self.threads)
        start = time.perf_counter()
        decoded = list(self.baseline.decode(data, w, h, threads=self.threads))
        dec = time.perf_counter() - start
        return Coded(data, decoded, enc, dec)


class VideoPlugin(EvalPlugin):
    """Video: :class:`VideoClip` in; kbps, PSNR-YUV, PSNR-RGB, MS-SSIM and frames per second out."""

    modality = "video"
    input_noun = "clip"
    setting_label = "quality / CRF"
    rate_key = "kbps"
    rate_label = "Bit-rate [kbps]"
    default_baselines = ("x264", "x265", "svt-av1")
    default_threads = 2
    records_file = "per_clip.csv"
    summary_columns = (SummaryColumn("kbps", "kbps", ".1f"), SummaryColumn("PSNR-YUV dB", "psnr_yuv", ".2f"),
                       SummaryColumn("PSNR-Y dB", "psnr_y", ".2f"), SummaryColumn("PSNR-RGB dB", "psnr_rgb", ".2f"),
                       SummaryColumn("MS-SSIM", "ms_ssim", ".4f"), SummaryColumn("enc fps", "encode_fps", ".1f"),
                       SummaryColumn("dec fps", "decode_fps", ".1f"))
    bd_columns = (BDColumn("bd_rate_psnr_yuv", "BD-rate (PSNR-YUV)", "psnr_yuv", "PSNR-YUV"),
                  BDColumn("bd_rate_psnr_rgb", "BD-rate (PSNR-RGB)", "psnr_rgb", "PSNR-RGB"))
    plot_panels = (Panel("psnr_yuv", "PSNR-YUV 6:1:1 [dB]"), Panel("ms_ssim", "MS-SSIM (RGB)"))

    def __init__(self, frames: Optional[int] = None, gop: int = DEFAULT_EVAL_GOP):
        if frames is not None and frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        if gop < 1:
            raise ValueError(f"gop must be >= 1, got {gop}")
        self.frames, self.gop = frames, gop

    def with_options(self, **options: Any) -> "VideoPlugin":
        """A copy coding the first ``frames`` frames of each clip with GOPs of ``gop``."""
        unknown = set(options) - {"frames", "gop"}
        if unknown:
            raise ValueError(f"--{sorted(unknown)[0]} is not an option of video evaluation")
        plugin = copy.copy(self)
        plugin.__init__(options.get("frames", self.frames), options.get("gop", self.gop))
        return plugin

    def read(self, path: Path) -> VideoClip:
        from ncodec.io.video import open_video

        with open_video(path) as video:
            frames = [f for _, f in zip(range(self.frames or 2**62), video)]
            fps = video.info.fps
        if not frames:
            raise ValueError(f"{path}: no frames")
        return VideoClip(frames, fps, Path(path))

    def warm_up_media(self, media: VideoClip) -> VideoClip:
        return VideoClip(media.frames[:2], media.fps, media.path)

    def encode(self, codec: "Codec", media: VideoClip, setting: float, **options: Any) -> bytes:
        return codec.compress(media.frames, media.fps, gop=self.gop, **options)

    def decode(self, codec: "Codec", data: bytes) -> list:
        return codec.decompress_frames(data)

    def decoded_media(self, decoded: list, media: VideoClip, key: str, path: Path) -> list:
        if len(decoded) != len(media.frames) or decoded[0].size != media.frames[0].size:
            raise RuntimeError(f"{key} decoded {len(decoded)} frames of {path}, coded {len(media.frames)}")
        return decoded

    def record(self, key: str, setting: float, path: Path, media: VideoClip, coded: Coded) -> VideoRecord:
        return _record(key, setting, media, len(coded.data), coded.decoded, coded.encode_seconds,
                       coded.decode_seconds)

    def baseline_names(self) -> Sequence[str]:
        return tuple(BASELINE_CRFS)

    def baseline(self, name: str) -> _Baseline:
        if name not in BASELINE_CRFS:
            return super().baseline(name)
        return _Baseline(name, self.gop)

    def markdown(self, results: Results) -> dict[str, str]:
        frames = f"their first {self.frames} frames" if self.frames else "all frames"
        note = (f"Means over the clips ({frames}) per setting; kbps from whole files (container included); "
                f"PSNRs and MS-SSIM as means over frames; GOP {self.gop} for every codec; frames per second "
                f"with torch on {results.threads} thread(s).")
        title = f"# Video rate-distortion: {len(results.inputs)} clip(s)"
        return {"summary.md": summary_markdown(results, self, title=title, note=note)}


PLUGIN = VideoPlugin()
register_eval_plugin(PLUGIN)


def evaluate(files: Sequence[str | Path], codec_names: Any, qualities: Optional[Sequence[int]] = None,
             baselines: Sequence[str] = PLUGIN.default_baselines, *, frames: Optional[int] = None,
             gop: int = DEFAULT_EVAL_GOP, threads: int = 2, device: str = "cpu",
             progress: Optional[bool] = None) -> Results:
    """``ncodec eval`` of video clips from Python (see the module docstring); returns the results,
    which :func:`ncodec.eval.report.write_report` writes."""
    plugin = PLUGIN.with_options(frames=frames, gop=gop)
    return core.evaluate(plugin, files, codec_names, qualities, list(baselines), None, device=device,
                         threads=threads, progress=progress)


def write_report(results: Results, out_dir: str | Path, frames: Optional[int] = None,
                 gop: int = DEFAULT_EVAL_GOP) -> dict[str, Path]:
    """The report files of :func:`evaluate`'s results in ``out_dir``."""
    return report.write_report(results, out_dir, PLUGIN.with_options(frames=frames, gop=gop))
