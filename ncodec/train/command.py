"""``ncodec train image|audio ...``: the command line of the trainer.

Options given on the command line override those of ``--config FILE`` (a JSON
:class:`~ncodec.train.trainer.TrainConfig`, task options under ``"task"``). Under
``torchrun --nproc_per_node K -m ncodec train image ...`` each process runs one rank.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

__all__ = ["add_train_parser", "run_train"]


def _add_run_options(p: argparse.ArgumentParser, val_limit_help: str) -> None:
    """The options every modality's training shares (those of :class:`TrainConfig`)."""
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--out", help="output folder (resumes from its checkpoint)")
    p.add_argument("--config", help="JSON config; command-line options override it")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-schedule", choices=("cosine", "step", "constant"))
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--device", help="cpu or cuda")
    p.add_argument("--num-workers", type=int)
    p.add_argument("--val-every", type=int)
    p.add_argument("--val-limit", type=int, help=val_limit_help)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--init", help="start from these weights (.safetensors), e.g. a lower quality's")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--max-minutes", type=float, help="training-time budget: stop and export when spent")
    p.set_defaults(handler=run_train)


def add_train_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("train", help="train a model (rate-distortion) and export its weights",
                       description="Train a model and export safetensors weights that ncodec.load reads.")
    modalities = p.add_subparsers(dest="modality", metavar="MODALITY", required=True)
    img = modalities.add_parser("image", help="train an image model on a folder of images")
    img.add_argument("--data", help="folder of training images (PNG, JPEG, WebP)")
    img.add_argument("--val", help="folder of validation images (coded to real files at each validation)")
    img.add_argument("--arch", help="architecture (see `ncodec models`; default mbt2018-mean)")
    img.add_argument("--quality", type=int, help="quality 1..8: picks N, M and the default lambda")
    img.add_argument("--lmbda", type=float, help="rate-distortion lambda (default: CompressAI's for the quality)")
    img.add_argument("--metric", choices=("mse", "ms-ssim"), help="distortion: mse (default) or ms-ssim")
    img.add_argument("--patch-size", type=int, help="square crop size (default 256)")
    _add_run_options(img, "validate on the first N images only")

    aud = modalities.add_parser("audio", help="train an audio codec (mel + adversarial losses)")
    aud.add_argument("--data", help="training audio folder(s), comma-separated (searched recursively)")
    aud.add_argument("--val", help="held-out audio: a folder or a list file (never trained on)")
    aud.add_argument("--arch", help="architecture (default speech-rvq-16k; see ncodec.models.audio)")
    aud.add_argument("--segment-seconds", type=float, help="training window (default 1.0)")
    aud.add_argument("--disc-lr", type=float, help="discriminator learning rate (default: --lr)")
    aud.add_argument("--adversarial-start", type=int, help="step from which the discriminators count (default 0)")
    aud.add_argument("--wave-weight", type=float, help="weight of an L1 loss on the waveform (default 0: off)")
    aud.add_argument("--disc-channels", type=int, help="discriminator width (default 32; 8-16 on CPU)")
    _add_run_options(aud, "validate on the first N held-out files (default 8)")


def _quality_for(lmbda: float, metric: str) -> int:
    """The quality whose CompressAI λ is nearest to ``lmbda`` (on a log scale)."""
    from ncodec.train.losses import LAMBDAS

    ladder = LAMBDAS[metric]
    return 1 + min(range(len(ladder)), key=lambda i: abs(math.log(ladder[i] / lmbda)))


def config_from_args(args: argparse.Namespace):
    from ncodec.train.trainer import TrainConfig

    task_keys = (("data", "val", "arch", "segment_seconds", "adversarial_start", "disc_channels", "val_limit",
                  "wave_weight")
                 if args.modality == "audio" else
                 ("data", "val", "arch", "quality", "lmbda", "metric", "patch_size", "val_limit"))
    task: dict[str, Any] = {k: getattr(args, k) for k in task_keys if getattr(args, k) is not None}
    if args.modality == "image" and "quality" not in task and "lmbda" in task:
        task["quality"] = _quality_for(task["lmbda"], task.get("metric", "mse"))
    overrides = {k: getattr(args, k) for k in ("out", "steps", "batch_size", "lr", "lr_schedule", "warmup_steps",
                                               "device", "num_workers", "val_every", "checkpoint_every",
                                               "log_every", "seed", "init")}
    if args.modality == "audio":
        overrides["disc_lr"] = args.disc_lr
        # GANs want Adam with a short memory (HiFi-GAN / DAC); a --config may say otherwise.
        overrides["adam_betas"] = None if args.config else (0.8, 0.99)
    if args.no_amp:
        overrides["amp"] = False
    if args.max_minutes is not None:
        overrides["max_seconds"] = 60.0 * args.max_minutes
    if args.config:
        return TrainConfig.from_json(args.config, task=task, **overrides)
    missing = [f"--{k}" for k in ("out", "steps") if overrides[k] is None]
    if missing:
        raise ValueError(f"train needs {' and '.join(missing)} (or a --config that gives them)")
    return TrainConfig(**{k: v for k, v in overrides.items() if v is not None}, task=task)


def run_train(args: argparse.Namespace) -> int:
    from ncodec.train.trainer import Trainer

    config = config_from_args(args)
    if args.modality == "audio":
        from ncodec.train.audio import AudioTask

        task: Any = AudioTask(config.task)
    else:
        from ncodec.train.image import ImageTask

        task = ImageTask(config.task)
    result = Trainer(config, task).fit()
    if "weights" in result:
        print(json.dumps({"weights": result["weights"], "steps": result["steps"],
                          "seconds": round(result["seconds"], 1), "val": result["val"]}, indent=2))
    return 0
