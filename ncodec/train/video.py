"""Training the video codec's P-frame model: the ``video`` task (:class:`VideoTask`).

Task options (``TrainConfig.task``):

* ``arch``: a key of :data:`ncodec.models.video.ARCHITECTURES` (default ``video-ctx``);
* ``data``: folder(s) of training clips (searched recursively: MP4, MKV, WebM, MOV, Y4M), or of
  frame caches (``.npz`` of :func:`ncodec.train.video_data.cache_runs`, e.g. the GPU job's
  packed windows: ``benchmarks/gpu_job/pack.py``);
* ``val``: held-out clips: a list file (``benchmarks/video_val.txt``: a path relative to the
  first ``data`` folder and a frame count per line) or a folder; they are excluded from ``data``;
* ``crop``: luma side of the training windows (default 128); ``frames``: frames per window
  (default 4: one reference and three P-frames); ``runs``: runs cached per clip (default 64);
* ``cache``: the frame cache folder (default ``~/.cache/ncodec/video-runs``);
* ``val_limit`` / ``val_frames``: validate on the first N held-out clips (default 2), their
  first ``val_frames`` frames (default 9).

**The cascaded loss.** Each window's first frame is the reference; every later frame is
predicted from the *decoded* frame before it (the block motion of the originals applied to
the model's own reconstruction, gradients flowing through it), so what the model leaves
wrong in one frame is trained against in the frames that inherit it (DCVC-TCM's cascaded
training). The loss is the mean over the P-frames of ``λ_q · 255² · MSE_YUV + bits / luma
pixels``, ``MSE_YUV`` weighted 6:1:1 (Y:U:V, as PSNR-YUV), a quality ``q`` drawn per window
(variable rate: one network, a gain per quality). Motion bits are not in the loss: the model
does not change them.

Validation codes held-out clips with the video codec to real files (kbps from their bytes)
and reports PSNR-YUV per quality.

torch loads in the methods: ``ncodec --help`` imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ncodec.train.tasks import BaseTask, register_task

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = ["VIDEO_SUFFIXES", "VideoTask", "list_clips", "read_clip_list"]

WEIGHTS_FILE = "weights.safetensors"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".y4m")
DEFAULT_CACHE = Path.home() / ".cache" / "ncodec" / "video-runs"


def read_clip_list(path: str | Path, root: str | Path) -> list[tuple[Path, Optional[int]]]:
    """``(clip, frames or None)`` of a list file (a clip path relative to ``root`` and an
    optional frame count per line, ``#`` comments), or of a folder (its clips, all frames)."""
    source = Path(path)
    if source.is_dir():
        return [(p, None) for p in list_clips(source)]
    out = []
    for line in source.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, count = line.partition(" ")
            out.append((Path(root) / name, int(count) if count.strip() else None))
    return out


def list_clips(folder: str | Path, exclude: Sequence[Path] = ()) -> list[Path]:
    """Video files under ``folder`` (recursively), sorted, without ``exclude``."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"video folder {str(root)!r} does not exist")
    skip = {Path(p).resolve() for p in exclude}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
                  and p.resolve() not in skip)


class VideoTask(BaseTask):
    """P-frame rate-distortion training with a cascaded loss (see the module docstring)."""

    summary = "train the video codec's P-frame model on a folder of clips"
    # bf16 autocast on CPUs with native bf16: 0.072 s against 0.121 s a step (batch 8 of
    # 128x128 windows, the Xeon VM), as for images.
    config_defaults = {"cpu_bf16": "auto", "channels_last": False}
    val_limit_help = "validate on the first N held-out clips only (default 2)"
    progress_keys = ("loss", "bpp", "psnr")
    option_keys = ("data", "val", "arch", "crop", "frames", "runs", "cache", "val_frames")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", help="folder(s) of training clips, comma-separated (searched recursively)")
        parser.add_argument("--val", help="held-out clips: a list file (benchmarks/video_val.txt) or a folder")
        parser.add_argument("--arch", help="P-frame architecture (default video-ctx)")
        parser.add_argument("--crop", type=int, help="luma side of the training windows (default 128)")
        parser.add_argument("--frames", type=int, help="frames per window: a reference and P-frames (default 4)")
        parser.add_argument("--runs", type=int, help="runs of frames cached per clip (default 64)")
        parser.add_argument("--cache", help=f"frame cache folder (default {DEFAULT_CACHE})")
        parser.add_argument("--val-frames", type=int, help="frames of each held-out clip validated (default 9)")

    def __init__(self, options: dict[str, Any]):
        from ncodec.models import video as video_models

        self.arch = options.get("arch", "video-ctx")
        if self.arch not in video_models.ARCHITECTURES:
            raise ValueError(f"unknown P-frame architecture {self.arch!r}; "
                             f"known: {', '.join(video_models.ARCHITECTURES)}")
        folders = [f for f in str(options.get("data") or "").split(",") if f]
        if not folders:
            raise ValueError("training needs clips (task option 'data')")
        self.val_clips = read_clip_list(options["val"], folders[0]) if options.get("val") else []
        self.train_clips = [c for f in folders for c in list_clips(f, exclude=[p for p, _ in self.val_clips])]
        self.cached = sorted(p for f in folders for p in Path(f).rglob("*.npz"))
        if not self.train_clips and not self.cached:
            raise ValueError(f"no training clips or frame caches in {', '.join(folders)}")
        self.val_clips = self.val_clips[: int(options.get("val_limit", 2)) or None]
        self.val_frames = int(options.get("val_frames", 9))
        self.crop = int(options.get("crop", 128))
        self.frames = int(options.get("frames", 4))
        if self.frames < 2:
            raise ValueError("a training window needs at least 2 frames (a reference and a P-frame)")
        self.runs = int(options.get("runs", 64))
        self.cache = Path(options.get("cache") or DEFAULT_CACHE)
        self.samples_per_epoch = int(options.get("samples_per_epoch", 4096))
        self.lmbdas = list(video_models.VIDEO_LAMBDAS)

    def build_model(self) -> nn.Module:
        from ncodec.models.video import build_pframe_model

        return build_pframe_model(self.arch)

    def load_init(self, model: nn.Module, path: str) -> None:
        from ncodec.models import weights as weights_io

        source = weights_io.load_weights(path)
        state = {k: v for k, v in source.state_dict().items() if not _is_table(k)}
        from torch import nn as _nn

        missing, unexpected = _nn.Module.load_state_dict(model, state, strict=False)
        missing = [k for k in missing if not _is_table(k)]
        if missing or unexpected:
            raise ValueError(f"{path}: does not fit {self.arch} (missing {missing[:3]}, unexpected {unexpected[:3]})")

    def dataset(self, seed: int):
        from ncodec.train.video_data import FrameRunCrops, cache_runs

        files = cache_runs(self.train_clips, self.cache, self.frames, self.runs) + self.cached
        return FrameRunCrops(files, self.crop, self.frames, self.samples_per_epoch, seed=seed)

    def training_step(self, model: nn.Module, batch: Tensor, discriminator: Optional[nn.Module] = None,
                      step: int = 0) -> dict[str, Tensor]:
        """The cascaded loss of windows ``batch [B, L, 8, c/2, c/2]`` (see the module docstring)."""
        import torch

        from ncodec.models.video import BLOCK, pack_planes, predict_planes, unpack_planes

        b, length = batch.shape[:2]
        frames = batch[:, :, :6].float()
        step_ = BLOCK // 2
        motion = batch[:, :, 6:, ::step_, ::step_].float()
        quality = torch.randint(1, len(self.lmbdas) + 1, (b,))
        lmbda = torch.tensor(self.lmbdas, dtype=torch.float32, device=batch.device)[quality - 1]
        pixels = frames.shape[-1] * frames.shape[-2] * 4
        ref = frames[:, 0]
        losses, bpps, mses = [], [], []
        for t in range(1, length):
            y, u, v = unpack_planes(ref)
            py, pu, pv = predict_planes(y[:, 0], u[:, 0], v[:, 0], motion[:, t])
            pred = pack_planes(py[:, None], pu[:, None], pv[:, None])
            out = model(frames[:, t], pred, quality.to(batch.device))
            x_hat = out["x_hat"].float()
            err = (x_hat - frames[:, t]).pow(2).mean((2, 3))  # [B, 6]
            mse = (6 * err[:, :4].mean(1) + err[:, 4] + err[:, 5]) / 8
            bits = sum(-torch.log2(p.float()).flatten(1).sum(1) for p in out["likelihoods"].values())
            bpp = bits / pixels
            losses.append(lmbda * 255**2 * mse + bpp)
            bpps.append(bpp.detach())
            mses.append(mse.detach())
            ref = x_hat.clamp(0, 1)
        loss = torch.stack(losses).mean()
        mse = torch.stack(mses).mean()
        return {"loss": loss, "bpp": torch.stack(bpps).mean(), "mse": mse,
                "psnr": 10 * torch.log10(1 / mse.clamp_min(1e-10))}

    def auxiliary_parameters(self, model: nn.Module):
        return [p for n, p in model.named_parameters() if n.endswith(".quantiles") and p.requires_grad]

    def auxiliary_loss(self, model: nn.Module) -> Tensor:
        return model.aux_loss()

    def validate(self, model: nn.Module) -> dict[str, float]:
        """kbps (file bytes) and PSNR-YUV of the first ``val_frames`` frames of each held-out
        clip, coded by the video codec at every quality."""
        if not self.val_clips:
            return {}
        from ncodec.codecs.video import VideoCodec
        from ncodec.eval.video_metrics import psnr_yuv
        from ncodec.io.video import open_video

        import copy

        net = copy.deepcopy(model).cpu().eval()
        net.update(force=True)
        metrics: dict[str, float] = {}
        began = time.perf_counter()
        clips = []
        for path, _ in self.val_clips:
            reader = open_video(path)
            clips.append((reader.info, [f for _, f in zip(range(self.val_frames), reader)]))
            reader.close()
        for q in range(1, len(self.lmbdas) + 1):
            codec = VideoCodec(net, q)
            kbps, psnr = [], []
            for info, frames in clips:
                data = codec.compress(frames, fps=info.fps)
                decoded = codec.decompress_frames(data)
                kbps.append(len(data) * 8 / (len(frames) / float(info.fps)) / 1000)
                psnr.append(sum(psnr_yuv(a, b)["psnr_yuv"] for a, b in zip(frames, decoded)) / len(frames))
            metrics[f"q{q}_kbps"] = sum(kbps) / len(kbps)
            metrics[f"q{q}_psnr_yuv"] = sum(psnr) / len(psnr)
        metrics["code_seconds"] = time.perf_counter() - began
        return metrics

    def export(self, model: nn.Module, out: Path, info: dict[str, Any]) -> Path:
        from ncodec.models import weights as weights_io

        path = out / WEIGHTS_FILE
        weights_io.export_weights(model, path, arch=self.arch,
                                  info={**info, "lmbdas": self.lmbdas, "crop": self.crop, "frames": self.frames,
                                        "train_clips": len(self.train_clips), "cached_runs": len(self.cached)})
        return path


def _is_table(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


register_task("video", VideoTask)
