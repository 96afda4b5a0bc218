"""Training the image models: the ``image`` task (:class:`ImageTask`) that
:class:`~ncodec.train.trainer.Trainer` runs.

Task options (``TrainConfig.task``):

* ``arch``: a key of :data:`ncodec.models.image.ARCHITECTURES`;
* ``quality``: 1..8, picks N and M (and λ when ``lmbda`` is not given);
* ``lmbda`` / ``metric``: the rate–distortion trade-off ("mse" or "ms-ssim"); a λ given without
  a quality picks the quality whose CompressAI λ is nearest (:meth:`ImageTask.quality_for`);
* ``data`` / ``val``: image folders (``val`` may be empty: no validation);
* ``patch_size``: square training crops (default 256), a multiple of the alignment;
* ``val_limit``: validate on the first N images of ``val`` (0: all).

The entropy bottlenecks' ``quantiles`` are the task's auxiliary parameters, trained by
CompressAI's auxiliary loss (it places the factorized tables' support). Validation codes each
image to a real ncodec file and back (bpp from the file's bytes, container included), and
reports PSNR (:mod:`ncodec.eval.image_metrics`) and the model's own estimate beside it.

torch loads in the methods: ``ncodec --help`` imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ncodec.train.tasks import BaseTask, register_task

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ncodec.train.image_data import ImageFolder

__all__ = ["ImageTask", "WEIGHTS_FILE"]

WEIGHTS_FILE = "weights.safetensors"


class ImageTask(BaseTask):
    """Image rate–distortion training (see the module docstring for the options)."""

    summary = "train an image model on a folder of images"
    # On CPUs with native bf16: bf16 autocast and channels_last gave 1.75x the steps per second
    # and a better validation RD in the same CPU minutes (benchmarks/README.md).
    config_defaults = {"cpu_bf16": "auto", "channels_last": True}
    val_limit_help = "validate on the first N images only"
    progress_keys = ("loss", "bpp")
    option_keys = ("data", "val", "arch", "quality", "lmbda", "metric", "patch_size")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", help="folder of training images (PNG, JPEG, WebP)")
        parser.add_argument("--val", help="folder of validation images (coded to real files at each validation)")
        parser.add_argument("--arch", help="architecture (see `ncodec models`; default mbt2018-mean)")
        parser.add_argument("--quality", type=int, help="quality 1..8: picks N, M and the default lambda")
        parser.add_argument("--lmbda", type=float, help="rate-distortion lambda (default: CompressAI's for the quality)")
        parser.add_argument("--metric", choices=("mse", "ms-ssim"), help="distortion: mse (default) or ms-ssim")
        parser.add_argument("--patch-size", type=int, help="square crop size (default 256)")

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        options = super().options_from_args(args)
        if "quality" not in options and "lmbda" in options:
            options["quality"] = cls.quality_for(options["lmbda"], options.get("metric", "mse"))
        return options

    @staticmethod
    def quality_for(lmbda: float, metric: str) -> int:
        """The quality 1..8 whose CompressAI λ for ``metric`` is nearest to ``lmbda`` (on a log scale)."""
        from ncodec.train.image_losses import LAMBDAS

        ladder = LAMBDAS[metric]
        return 1 + min(range(len(ladder)), key=lambda i: abs(math.log(ladder[i] / lmbda)))

    def __init__(self, options: dict[str, Any]):
        from ncodec.models import image as image_models
        from ncodec.train.image_data import list_images
        from ncodec.train.image_losses import RateDistortionLoss, lambda_for

        self.arch = options.get("arch", "mbt2018-mean")
        if self.arch not in image_models.ARCHITECTURES:
            raise ValueError(f"unknown image architecture {self.arch!r}; known: {', '.join(image_models.ARCHITECTURES)}")
        self.spec = image_models.ARCHITECTURES[self.arch]
        self.metric = options.get("metric", "mse")
        self.quality = int(options.get("quality", 3))
        self.spec.channels(self.quality)  # validates the quality
        self.variable_rate = self.spec.variable_rate
        # A variable-rate model trains every quality at once, each with its own λ.
        self.lmbdas = list(image_models.VR_LAMBDAS) if self.variable_rate else []
        self.lmbda = float(options.get("lmbda") or lambda_for(self.metric, self.quality))
        self.patch_size = int(options.get("patch_size", 256))
        if self.patch_size % self.spec.alignment:
            raise ValueError(f"patch_size {self.patch_size} is not a multiple of {self.arch}'s "
                             f"alignment {self.spec.alignment}")
        self.train_files = list_images(options["data"]) if options.get("data") else []
        if not self.train_files:
            raise ValueError("training needs a data folder (task option 'data')")
        self.val_files = list_images(options["val"]) if options.get("val") else []
        limit = int(options.get("val_limit", 0))
        if limit:
            self.val_files = self.val_files[:limit]
        self.samples_per_epoch = int(options.get("samples_per_epoch", 4096))
        self.criterion = RateDistortionLoss(self.lmbda, self.metric)

    def build_model(self) -> nn.Module:
        from ncodec.models import image as image_models

        return image_models.build_image_model(self.arch, quality=self.quality)

    def load_init(self, model: nn.Module, path: str) -> None:
        """Warm start from a weights file: the same architecture (e.g. another quality's
        weights), or one whose modules are a subset of this one's (the variable-rate
        hyperprior's weights start the context model; its context modules keep their
        initialisation)."""
        from torch import nn

        from ncodec.models import weights as weights_io

        source = weights_io.load_weights(path)
        # The CDF tables are rebuilt at export; only the trainable state is taken.
        state = {k: v for k, v in source.state_dict().items() if not _is_table(k)}
        # nn.Module's own loader: CompressAI's resizes the table buffers from the state and so
        # needs the very tables left out here.
        missing, unexpected = nn.Module.load_state_dict(model, state, strict=False)
        missing = [k for k in missing if not _is_table(k) and k.split(".")[0] not in _CONTEXT_MODULES]
        if unexpected or missing:
            raise ValueError(f"{path}: does not fit {self.arch} at quality {self.quality} "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")

    def dataset(self, seed: int) -> ImageFolder:
        from ncodec.train.image_data import ImageFolder

        return ImageFolder(self.train_files, self.patch_size, self.samples_per_epoch, seed=seed)

    def training_step(self, model: nn.Module, batch: Tensor, discriminator: Optional[nn.Module] = None,
                      step: int = 0) -> dict[str, Tensor]:
        """One forward and the RD loss of ``batch`` ``[B, 3, H, W]`` in [0, 1]; a variable-rate
        model draws a quality per item and weighs each item with that quality's λ."""
        import torch

        if not self.variable_rate:
            return self.criterion(model(batch), batch)
        quality = torch.randint(1, len(self.lmbdas) + 1, (batch.size(0),))
        lmbda = torch.tensor(self.lmbdas, dtype=torch.float32)[quality - 1]
        return self.criterion(model(batch, quality.to(batch.device)), batch, lmbda.to(batch.device))

    def auxiliary_parameters(self, model: nn.Module) -> Sequence[nn.Parameter]:
        """The entropy bottlenecks' ``quantiles`` (in the model's parameter order)."""
        return [p for n, p in model.named_parameters() if n.endswith(".quantiles") and p.requires_grad]

    def auxiliary_loss(self, model: nn.Module) -> Tensor:
        """CompressAI's auxiliary loss: how far the quantiles are from the bottlenecks' tails."""
        return model.aux_loss()

    def validate(self, model: nn.Module) -> dict[str, float]:
        """bpp from real files, PSNR (8-bit), estimated bpp, coding seconds, on ``val``.

        A variable-rate model is validated at each quality (keys ``q<k>_bpp`` etc.; the
        unprefixed keys are the trained quality's, ``quality``, for a single-rate model).
        """
        if not self.val_files:
            return {}
        model.update(force=True)
        if not self.variable_rate:
            return self._validate_quality(model, self.quality)
        metrics: dict[str, float] = {}
        for q in range(1, len(self.lmbdas) + 1):
            metrics.update({f"q{q}_{k}": v for k, v in self._validate_quality(model, q).items()})
        return metrics

    def _validate_quality(self, model: nn.Module, quality: int) -> dict[str, float]:
        """Means over ``val``: bpp and estimated bpp weighted by pixels, PSNR per image."""
        import torch

        from ncodec.codecs.image import ImageCodec
        from ncodec.eval import image_metrics as metrics
        from ncodec.io import read_rgb
        from ncodec.models import image as image_models

        codec = ImageCodec(self.arch, quality, model)
        bpp_pixels = est_bits = pixels = 0.0  # bpp · pixels summed: the mean is weighted by pixels
        psnrs = []
        began = time.perf_counter()
        for path in self.val_files:
            image = read_rgb(path)
            data = codec.compress(image)
            decoded = codec.decompress(data).tensor
            h, w = image.shape[1:]
            bpp_pixels += metrics.bpp(len(data), h, w) * h * w
            pixels += h * w
            x = image.float().unsqueeze(0) / 255
            padded = torch.nn.functional.pad(x, (0, -w % codec.alignment, 0, -h % codec.alignment), mode="replicate")
            est_bits += image_models.estimate_bits(model, padded, quality)
            psnrs.append(metrics.psnr_rgb(image, decoded))
        return {"bpp": bpp_pixels / pixels, "bpp_estimate": est_bits / pixels, "psnr": sum(psnrs) / len(psnrs),
                "images": len(self.val_files), "code_seconds": time.perf_counter() - began}

    def export(self, model: nn.Module, out: Path, info: dict[str, Any]) -> Path:
        from ncodec.models import weights as weights_io

        path = out / WEIGHTS_FILE
        weights_io.export_weights(model, path, arch=self.arch, quality=self.quality,
                                  info={**info, "metric": self.metric,
                                        **({"lmbdas": self.lmbdas} if self.variable_rate else {"lmbda": self.lmbda}),
                                        "patch_size": self.patch_size,
                                        "train_images": len(self.train_files),
                                        "data": str(Path(self.train_files[0]).parent)})
        return path


# Modules of the context model that a hyperprior's weights do not have.
_CONTEXT_MODULES = ("channel_context", "spatial_context", "aggregation")


def _is_table(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


register_task("image", ImageTask)
