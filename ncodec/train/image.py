"""Training the image models: the :class:`ImageTask` that :class:`~ncodec.train.trainer.Trainer` runs.

Task options (``TrainConfig.task``):

* ``arch``: a key of :data:`ncodec.models.image.ARCHITECTURES`;
* ``quality``: 1..8, picks N and M (and λ when ``lmbda`` is not given);
* ``lmbda`` / ``metric``: the rate–distortion trade-off ("mse" or "ms-ssim");
* ``data`` / ``val``: image folders (``val`` may be empty: no validation);
* ``patch_size``: square training crops (default 256), a multiple of the alignment;
* ``val_limit``: validate on the first N images of ``val`` (0: all).

Validation codes each image to a real ncodec file and back (bpp from the file's bytes,
container included), and reports PSNR and the model's own estimate beside it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ncodec.models import image as image_models
from ncodec.models import weights as weights_io
from ncodec.train.data import ImageFolder, list_images, load_rgb
from ncodec.train.losses import RateDistortionLoss, lambda_for

__all__ = ["ImageTask", "WEIGHTS_FILE"]

WEIGHTS_FILE = "weights.safetensors"


class ImageTask:
    """Image rate–distortion training (see the module docstring for the options)."""

    def __init__(self, options: dict[str, Any]):
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
        return image_models.build_image_model(self.arch, quality=self.quality)

    def load_init(self, model: nn.Module, path: str) -> None:
        """Warm start from a weights file: the same architecture (e.g. another quality's
        weights), or one whose modules are a subset of this one's (the variable-rate
        hyperprior's weights start the context model; its context modules keep their
        initialisation)."""
        source = weights_io.load_weights(path)
        # The CDF tables are rebuilt at export; only the trainable state is taken.
        state = {k: v for k, v in source.state_dict().items() if not _is_table(k)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not _is_table(k) and k.split(".")[0] not in _CONTEXT_MODULES]
        if unexpected or missing:
            raise ValueError(f"{path}: does not fit {self.arch} at quality {self.quality} "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")

    def dataset(self, seed: int) -> ImageFolder:
        return ImageFolder(self.train_files, self.patch_size, self.samples_per_epoch, seed=seed)

    def training_step(self, model: nn.Module, batch: Tensor) -> dict[str, Tensor]:
        """One forward and the RD loss; a variable-rate model draws a quality per item and
        weighs each item with that quality's λ."""
        if not self.variable_rate:
            return self.criterion(model(batch), batch)
        quality = torch.randint(1, len(self.lmbdas) + 1, (batch.size(0),))
        lmbda = torch.tensor(self.lmbdas, dtype=torch.float32)[quality - 1]
        losses = self.criterion(model(batch, quality.to(batch.device)), batch, lmbda.to(batch.device))
        return losses

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
        from ncodec.codecs.image import ImageCodec

        codec = ImageCodec(self.arch, quality, model)
        bits = est_bits = pixels = 0.0
        psnrs = []
        began = time.perf_counter()
        for path in self.val_files:
            image = load_rgb(path)
            data = codec.compress(image)
            decoded = codec.decompress(data)
            h, w = image.shape[1:]
            bits += 8 * len(data)
            pixels += h * w
            x = image.float().unsqueeze(0) / 255
            padded = torch.nn.functional.pad(x, (0, -w % codec.alignment, 0, -h % codec.alignment), mode="replicate")
            est_bits += image_models.estimate_bits(model, padded, quality)
            mse = torch.mean(((decoded * 255).round() - image.float()) ** 2).item()
            psnrs.append(10 * math.log10(255**2 / max(mse, 1e-10)))
        return {"bpp": bits / pixels, "bpp_estimate": est_bits / pixels, "psnr": sum(psnrs) / len(psnrs),
                "images": len(self.val_files), "code_seconds": time.perf_counter() - began}

    def export(self, model: nn.Module, out: Path, info: dict[str, Any]) -> Path:
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
