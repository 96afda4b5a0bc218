"""Training the audio codecs: the ``audio`` task (:class:`AudioTask`) that
:class:`~ncodec.train.trainer.Trainer` runs.

Task options (``TrainConfig.task``):

* ``arch``: a key of :data:`ncodec.models.audio.ARCHITECTURES`;
* ``data``: folder(s) of training audio (a list or one path; searched recursively);
* ``val``: held-out files: a folder or a list file (e.g. ``benchmarks/audio_val.txt``); they are
  also excluded from ``data``;
* ``segment_seconds``: training window (default 1.0);
* ``val_limit`` / ``val_seconds``: validate on the first N held-out files, cropped (default 8, 6 s);
* loss weights ``mel_weight`` (15), ``adv_weight`` (1), ``fm_weight`` (2), ``commit_weight``
  (0.25), ``codebook_weight`` (1), as DAC; ``wave_weight`` (0: off), an L1 term on the waveform
  itself (EnCodec's time-domain loss), which ties the decoder's phase to the input's;
  ``adversarial_start``: step from which the discriminators train and the adversarial/feature
  terms count (default 0);
* discriminators: ``disc_kinds`` ("mpd,msstft"), ``disc_channels`` (32; 8-16 on CPU).

The generator loss is ``mel_weight · multi-scale mel L1 + adv_weight · hinge adversarial +
fm_weight · feature matching + commit_weight · commitment + codebook_weight · codebook``.
The discriminators train with their own Adam (``disc_lr``, default ``lr``); GAN training wants
Adam with a short memory (HiFi-GAN / DAC), so this task's default betas are (0.8, 0.99).
Validation codes held-out speech to real files at every bitrate (kbps from the bytes) and
reports mel distance, SI-SDR and PESQ-WB.

torch loads in the methods: ``ncodec --help`` imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from ncodec.train.tasks import BaseTask, register_task

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ncodec.models import audio as audio_models
    from ncodec.train.audio_data import AudioSegments

__all__ = ["AudioTask"]

T = TypeVar("T")

WEIGHTS_FILE = "weights.safetensors"


def _no_grad(method: Callable[..., T]) -> Callable[..., T]:
    """``torch.no_grad()`` as a decorator that imports torch when called, not at import."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        import torch

        with torch.no_grad():
            return method(*args, **kwargs)

    return wrapper


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [v for v in str(value).split(",") if v]


class AudioTask(BaseTask):
    """Audio codec training (see the module docstring for the options)."""

    summary = "train an audio codec (mel + adversarial losses)"
    val_limit_help = "validate on the first N held-out files (default 8)"
    config_defaults = {"adam_betas": (0.8, 0.99)}  # GANs want Adam with a short memory (HiFi-GAN / DAC)
    progress_keys = ("loss", "mel")
    option_keys = ("data", "val", "arch", "segment_seconds", "adversarial_start", "disc_channels", "wave_weight")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", help="training audio folder(s), comma-separated (searched recursively)")
        parser.add_argument("--val", help="held-out audio: a folder or a list file (never trained on)")
        parser.add_argument("--arch", help="architecture (default speech-rvq-16k; see ncodec.models.audio)")
        parser.add_argument("--segment-seconds", type=float, help="training window (default 1.0)")
        # A TrainConfig field: the command passes it to the trainer, not to the task.
        parser.add_argument("--disc-lr", type=float, help="discriminator learning rate (default: --lr)")
        parser.add_argument("--adversarial-start", type=int,
                            help="step from which the discriminators count (default 0)")
        parser.add_argument("--wave-weight", type=float, help="weight of an L1 loss on the waveform (default 0: off)")
        parser.add_argument("--disc-channels", type=int, help="discriminator width (default 32; 8-16 on CPU)")

    def __init__(self, options: dict[str, Any]):
        from ncodec.models import audio as audio_models
        from ncodec.train.audio_data import list_audio, read_file_list
        from ncodec.train.audio_losses import MultiScaleMelLoss

        self.arch_name = options.get("arch", "speech-rvq-16k")
        if self.arch_name not in audio_models.ARCHITECTURES:
            raise ValueError(f"unknown audio architecture {self.arch_name!r}; "
                             f"known: {', '.join(audio_models.ARCHITECTURES)}")
        self.arch = audio_models.ARCHITECTURES[self.arch_name]
        self.val_files = read_file_list(options["val"]) if options.get("val") else []
        folders = _as_list(options.get("data"))
        if not folders:
            raise ValueError("training needs audio data (task option 'data')")
        self.train_files = [f for d in folders for f in list_audio(d, exclude=self.val_files)]
        self.val_files = self.val_files[: int(options.get("val_limit", 8)) or None]
        self.val_seconds = float(options.get("val_seconds", 6.0))
        seconds = float(options.get("segment_seconds", 1.0))
        self.segment = max(1, round(seconds * self.arch.sample_rate / self.arch.hop)) * self.arch.hop
        w = {"mel_weight": 15.0, "adv_weight": 1.0, "fm_weight": 2.0, "commit_weight": 0.25,
             "codebook_weight": 1.0, "wave_weight": 0.0}
        self.weights = {k: float(options.get(k, v)) for k, v in w.items()}
        self.adversarial_start = int(options.get("adversarial_start", 0))
        self.disc_kinds = _as_list(options.get("disc_kinds", "mpd,msstft"))
        self.disc_channels = int(options.get("disc_channels", 32))
        self.mel_loss = MultiScaleMelLoss(self.arch.sample_rate)
        self._step = 0  # the trainer's step of the last training_step (0-based)
        self._fake: Tensor | None = None

    # -------------------------------------------------------------- trainer hooks

    def build_model(self) -> nn.Module:
        from ncodec.models import audio as audio_models

        return audio_models.AudioCodecModel(self.arch)

    def build_discriminator(self) -> nn.Module:
        from ncodec.train.audio_losses import Discriminators

        return Discriminators(self.disc_kinds, channels=self.disc_channels)

    def load_init(self, model: nn.Module, path: str) -> None:
        from ncodec.models import weights as weights_io

        init = weights_io.load_weights(path)
        if init.arch != self.arch:
            raise ValueError(f"{path} holds another audio architecture than {self.arch_name}")
        model.load_state_dict(init.state_dict())

    def dataset(self, seed: int) -> AudioSegments:
        from ncodec.train.audio_data import AudioSegments

        return AudioSegments(self.train_files, self.arch.sample_rate, self.segment, seed=seed)

    def _adversarial(self) -> bool:
        return self._step >= self.adversarial_start

    def training_step(self, model: nn.Module, batch: Tensor, discriminator: Optional[nn.Module] = None,
                      step: int = 0) -> dict[str, Tensor]:
        """Generator losses of ``batch [B, 1, T]`` at trainer step ``step`` (0-based: it decides
        whether the adversarial terms count, also after a resume)."""
        import torch

        from ncodec.train.audio_losses import feature_matching_loss, generator_adversarial_loss

        self._step = step
        out = model(batch)
        x_hat = out["x_hat"]
        if self.mel_loss.window0.device != batch.device:  # windows and filterbanks follow the batch
            self.mel_loss.to(batch.device)
        mel = self.mel_loss(x_hat, batch)
        w = self.weights
        loss = w["mel_weight"] * mel + w["commit_weight"] * out["commitment_loss"] \
            + w["codebook_weight"] * out["codebook_loss"]
        logs = {"mel": mel.detach(), "commit": out["commitment_loss"].detach(),
                "perplexity": out["perplexity"].float().mean().detach()}
        if w["wave_weight"]:
            wave = torch.nn.functional.l1_loss(x_hat.float(), batch.float())
            loss = loss + w["wave_weight"] * wave
            logs["wave"] = wave.detach()
        if discriminator is not None and self._adversarial():
            # The discriminator is not trained by this loss: only its inputs get gradients.
            for p in discriminator.parameters():
                p.requires_grad_(False)
            fake_logits, fake_features = discriminator(x_hat)
            with torch.no_grad():
                _, real_features = discriminator(batch)
            for p in discriminator.parameters():
                p.requires_grad_(True)
            adv = generator_adversarial_loss(fake_logits)
            fm = feature_matching_loss(real_features, fake_features)
            loss = loss + w["adv_weight"] * adv + w["fm_weight"] * fm
            logs.update(adv=adv.detach(), fm=fm.detach())
        self._fake = x_hat.detach()
        return {"loss": loss, **logs}

    def discriminator_step(self, discriminator: nn.Module, batch: Tensor) -> dict[str, Tensor]:
        """The hinge loss of the discriminators on ``batch`` and the last generator output."""
        import torch

        from ncodec.train.audio_losses import discriminator_loss

        if self._fake is None or not self._adversarial():
            return {"loss": torch.zeros((), device=batch.device)}
        real_logits, _ = discriminator(batch)
        fake_logits, _ = discriminator(self._fake)
        return {"loss": discriminator_loss(real_logits, fake_logits)}

    # -------------------------------------------------------------- validation and export

    @_no_grad
    def validate(self, model: nn.Module) -> dict[str, float]:
        """Means over the held-out files, per bitrate ``q<k>``: kbps (from the bytes), mel
        distance, SI-SDR (dB) and PESQ-WB (NaN where PESQ refuses the signal)."""
        if not self.val_files:
            return {}
        from ncodec.codecs.audio import AudioCodec
        from ncodec.eval.audio_metrics import mel_distance, pesq_wb, si_sdr
        from ncodec.train.audio_data import load_mono

        codec = AudioCodec(self.arch_name, model.eval(), quality=1)
        sr = self.arch.sample_rate
        sums: dict[str, float] = {}
        for path in self.val_files:
            wav = load_mono(path, sr)[: int(self.val_seconds * sr)].unsqueeze(0)
            for q, kbps in enumerate(self.arch.bitrates, start=1):
                data = codec.compress(wav, sr, bitrate=kbps)
                decoded = codec.decompress(data)
                out, out_sr = decoded.tensor, decoded.sample_rate
                values = {"kbps": 8 * len(data) / (wav.shape[-1] / sr) / 1000,
                          "mel": mel_distance(wav, out, sr), "si_sdr": si_sdr(wav, out)}
                try:
                    values["pesq"] = pesq_wb(wav, out, sr)
                except ValueError:
                    values["pesq"] = float("nan")
                for k, v in values.items():
                    sums[f"q{q}_{k}"] = sums.get(f"q{q}_{k}", 0.0) + float(v)
        return {k: v / len(self.val_files) for k, v in sums.items()}

    @_no_grad
    def count_codes(self, model: audio_models.AudioCodecModel) -> None:
        """Fill ``model.code_counts`` by coding every training file (the entropy prior)."""
        import torch

        from ncodec.train.audio_data import load_mono

        model.code_counts.fill_(1.0)
        chunk = 30 * self.arch.sample_rate // self.arch.hop * self.arch.hop
        for path in self.train_files:
            wav = load_mono(path, self.arch.sample_rate)
            for start in range(0, wav.numel(), chunk):
                piece = wav[start:start + chunk]
                pad = (-piece.numel()) % self.arch.hop
                piece = torch.nn.functional.pad(piece, (0, pad)).view(1, 1, -1)
                model.count_codes(model.encode(piece))

    def export(self, model: nn.Module, out: Path, info: dict[str, Any]) -> Path:
        from ncodec.models import weights as weights_io

        path = out / WEIGHTS_FILE
        model = model.cpu().eval()
        weights_io.round_half(model)  # codes are counted on the weights that ship
        self.count_codes(model)
        counts = model.code_counts
        entropy = -(counts / counts.sum(1, keepdim=True) * (counts / counts.sum(1, keepdim=True)).log2()).sum(1)
        info = {**info, "arch": self.arch_name, "train_files": len(self.train_files),
                "code_entropy_bits": [round(float(e), 3) for e in entropy],
                "bits_per_code": math.log2(self.arch.codebook_size)}
        weights_io.export_weights(model, path, arch=self.arch_name, info=info)
        return path


register_task("audio", AudioTask)
