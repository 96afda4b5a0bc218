"""One trainer for every modality: the loop, checkpoints, schedules, DDP, logs.

What is modality-specific (the model, its data, its loss, how validation codes real files,
how weights are exported) is a :class:`~ncodec.train.tasks.TrainTask`; :class:`Trainer` runs
any task, calling its optional hooks where it has them:

* Adam on the model's parameters; a second Adam on the task's auxiliary parameters, trained by
  its auxiliary loss (``auxiliary_parameters`` / ``auxiliary_loss``: for images, the entropy
  bottlenecks' ``quantiles`` and CompressAI's aux loss), for tasks that have them;
* a learning-rate schedule (``cosine``, ``step`` (×0.1 at 80 % and 95 %) or ``constant``)
  after a linear warm-up, and gradient-norm clipping;
* bf16 autocast on CUDA when ``amp`` is set, on the CPU too with ``cpu_bf16``; channels_last
  with ``channels_last``;
* adversarial tasks (``build_discriminator`` returns one, e.g. audio): a discriminator with its
  own Adam, stepped after each generator step on the batch the generator just coded
  (``discriminator_step``);
* checkpoints (``checkpoint.pt``, tensors and plain values only, read back with
  ``weights_only=True``, written atomically by :func:`ncodec.io.atomic_output`) every
  ``checkpoint_every`` steps and at the end; a run started on an output folder that holds one
  resumes from it;
* ``torchrun`` (``WORLD_SIZE`` > 1) wraps the model in DistributedDataParallel: gloo on CPU,
  NCCL on CUDA; rank 0 logs, validates and writes; at the end the ranks check that their
  parameters are identical;
* a tqdm bar, ``metrics.jsonl`` (one JSON object per log line) and TensorBoard event files
  when ``tensorboard`` is installed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ncodec.io import atomic_output, write_atomic
from ncodec.train.tasks import TrainTask

__all__ = ["TrainConfig", "TrainTask", "Trainer"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Everything a run depends on; saved in every checkpoint and in ``config.json``.

    Attributes:
        out: output folder (checkpoint, metrics, exported weights).
        steps: optimizer steps in total.
        batch_size: items per step on each process.
        lr: peak learning rate of the main optimizer; ``aux_lr`` the auxiliary one.
        lr_schedule: "cosine" (to 1 % of ``lr``), "step" or "constant".
        warmup_steps: linear warm-up from 0.
        clip_max_norm: gradient-norm clip of the main parameters (0: none).
        amp: bf16 autocast on CUDA (and on the CPU with ``cpu_bf16``).
        cpu_bf16: bf16 autocast on the CPU too: True, False, or "auto" (on where the CPU has
            native bf16, AVX512-BF16 or AMX; the image task's default: 1.75x the steps per
            second of fp32 with channels_last, and a better validation RD per CPU minute, see
            benchmarks/README.md).
        channels_last: the model and 4-D batches in channels_last memory format.
        seed: seeds torch (plus the rank) and the data crops.
        device: "cpu", "cuda" or "cuda:N" (under torchrun each rank takes its local GPU).
        num_workers: DataLoader worker processes.
        val_every: steps between validations (0: only at the end).
        checkpoint_every: steps between checkpoints.
        log_every: steps between training-metric lines.
        init: weights to start from (a task-specific file, e.g. a lower quality's weights).
        adam_betas: the Adam betas of the main (and discriminator) optimizer; GAN training
            wants a shorter memory, e.g. [0.8, 0.99] (the audio task's default).
        disc_lr: learning rate of the discriminator (default: ``lr``), adversarial tasks only.
        max_seconds: a training-time budget (seconds, earlier runs of the same output folder
            included): the run stops at the first step past it, checkpoints and exports as at
            ``steps``. The schedule then follows time as well: its progress is the larger of
            the step and time fractions, so a time-boxed run still ends at the low learning
            rate. (Where the budget binds, the step it stops at depends on the machine.)
        task: the task's own options (architecture, λ, data folders, ...).
    """

    out: str
    steps: int
    batch_size: int = 8
    lr: float = 1e-4
    aux_lr: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_steps: int = 100
    clip_max_norm: float = 1.0
    amp: bool = True
    cpu_bf16: bool | str = False
    channels_last: bool = False
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    val_every: int = 1000
    checkpoint_every: int = 500
    log_every: int = 50
    init: Optional[str] = None
    adam_betas: tuple[float, float] = (0.9, 0.999)
    disc_lr: Optional[float] = None
    max_seconds: Optional[float] = None
    task: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.lr_schedule not in ("cosine", "step", "constant"):
            raise ValueError(f"lr_schedule must be cosine, step or constant, got {self.lr_schedule!r}")
        if not self.lr > 0 or not self.aux_lr > 0 or (self.disc_lr is not None and not self.disc_lr > 0):
            raise ValueError("learning rates must be > 0")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds!r}")
        betas = tuple(float(b) for b in self.adam_betas)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}")
        self.adam_betas = betas
        if self.cpu_bf16 not in (True, False, "auto"):
            raise ValueError(f"cpu_bf16 must be true, false or \"auto\", got {self.cpu_bf16!r}")

    @classmethod
    def from_json(cls, path: str | Path, *, defaults: Optional[Mapping[str, Any]] = None,
                  **overrides: Any) -> "TrainConfig":
        """A config from a JSON file, with ``overrides`` (those not None) applied on top and
        ``defaults`` (a task's, e.g. its Adam betas) below: for the keys the file does not give."""
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        task = {**values.pop("task", {}), **overrides.pop("task", {})}
        values = {**(defaults or {}), **values}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values, task=task)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _cpu_bf16(setting: bool | str) -> bool:
    """Whether CPU training autocasts to bf16: ``setting``, where "auto" means native bf16."""
    if setting == "auto":
        from ncodec.models.fast import bf16_supported

        return bf16_supported("cpu")
    return bool(setting)


def _lr_factor(step: int, config: TrainConfig, seconds: float = 0.0) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based) after ``seconds`` of
    training (which count only under a ``max_seconds`` budget)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    if config.max_seconds:
        progress = max(progress, seconds / config.max_seconds)
    if config.lr_schedule == "cosine":
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if config.lr_schedule == "step":
        return 1.0 if progress < 0.8 else (0.1 if progress < 0.95 else 0.01)
    return 1.0


class _Count(torch.utils.data.Sampler):
    """Indices ``start, start + 1, ...`` without end."""

    def __init__(self, start: int):
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


def _hardware(device: torch.device, world_size: int) -> str:
    """What trained: GPU name(s), or the CPU model and thread count."""
    if device.type == "cuda":
        return f"{world_size} x {torch.cuda.get_device_name(device)}"
    name = "CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {world_size} process(es) x {torch.get_num_threads()} threads"


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 (16 hex) of all parameters, to check that DDP ranks agree."""
    digest = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class Trainer:
    """Runs ``task`` under ``config`` (see the module docstring)."""

    def __init__(self, config: TrainConfig, task: TrainTask):
        self.config = config
        self.task = task
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.distributed = self.world_size > 1
        self.device = self._pick_device()
        self.out = Path(config.out)
        self.is_main = self.rank == 0
        self._seconds_before = 0.0  # training time of earlier runs (from the checkpoint)
        self._began = time.perf_counter()

    def _pick_device(self) -> torch.device:
        device = torch.device(self.config.device)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError("device cuda asked for, but CUDA is not available")
            if self.distributed:
                device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            elif device.index is None:  # set_device wants an index
                device = torch.device("cuda", torch.cuda.current_device())
            torch.cuda.set_device(device)
            torch.backends.cudnn.benchmark = True  # fixed-size training crops: tune once
        return device

    # ------------------------------------------------------------------ setup

    def _init_distributed(self) -> None:
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    def _optimizers(self, model: nn.Module) -> tuple[torch.optim.Optimizer, Optional[torch.optim.Optimizer]]:
        """The main Adam and, when the task has auxiliary parameters, theirs (else None)."""
        aux = list(self.task.auxiliary_parameters(model))
        aux_ids = {id(p) for p in aux}
        main = [p for p in model.parameters() if id(p) not in aux_ids and p.requires_grad]
        optimizer = torch.optim.Adam(main, lr=self.config.lr, betas=self.config.adam_betas)
        aux_optimizer = torch.optim.Adam(aux, lr=self.config.aux_lr) if aux else None
        return optimizer, aux_optimizer

    def _batches(self, dataset: Dataset, start_step: int) -> Iterator[Tensor]:
        """Batches from item ``start_step · batch_size`` on, forever.

        Items are addressed by their running number (the dataset draws item ``i`` from its
        own seed + ``i``), so a resumed run sees exactly the batches the uninterrupted run
        would have; the loader has its own generator so it never draws from torch's global
        one (which the checkpoint restores for the model's noise).
        """
        loader = DataLoader(dataset, batch_size=self.config.batch_size, drop_last=True,
                            sampler=_Count(start_step * self.config.batch_size),
                            num_workers=self.config.num_workers, generator=torch.Generator(),
                            pin_memory=self.device.type == "cuda")
        yield from loader

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, model: nn.Module, optimizer, aux_optimizer, step: int) -> None:
        state = {**self._disc_state(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "torch_rng": torch.get_rng_state(),
            "train_seconds": self._train_seconds(),
        }
        if aux_optimizer is not None:
            state["aux_optimizer"] = aux_optimizer.state_dict()
        with atomic_output(self.out / CHECKPOINT, force=True) as tmp:
            torch.save(state, tmp)

    def _load_checkpoint(self, model: nn.Module, optimizer, aux_optimizer) -> int:
        path = self.out / CHECKPOINT
        if not path.exists():
            return 0
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:  # missing/unexpected keys or size mismatches
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise ValueError(f"{path} is a checkpoint of another model than this run trains ({first}); "
                             "resume it with the same task and architecture, or give another --out") from None
        optimizer.load_state_dict(state["optimizer"])
        # Checkpoints of tasks without auxiliary parameters may hold the state of the no-op
        # optimizer the trainer once made for every task: nothing to restore then.
        if aux_optimizer is not None and "aux_optimizer" in state:
            aux_optimizer.load_state_dict(state["aux_optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if self.discriminator is not None:
            if "discriminator" not in state:
                raise ValueError(f"{path} has no discriminator: it is not a checkpoint of this task")
            self.discriminator.load_state_dict(state["discriminator"])
            self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self._seconds_before = float(state.get("train_seconds", 0.0))
        return int(state["step"])

    def _disc_state(self) -> dict[str, Any]:
        if self.discriminator is None:
            return {}
        return {"discriminator": self.discriminator.state_dict(),
                "disc_optimizer": self.disc_optimizer.state_dict()}

    def _build_discriminator(self) -> None:
        self.discriminator: Optional[nn.Module] = self.task.build_discriminator()
        self.disc_optimizer: Optional[torch.optim.Optimizer] = None
        if self.discriminator is None:
            return
        self.discriminator = self.discriminator.to(self.device).train()
        self.disc_optimizer = torch.optim.Adam(self.discriminator.parameters(),
                                               lr=self.config.disc_lr or self.config.lr,
                                               betas=self.config.adam_betas)

    def _auxiliary_step(self, model: nn.Module, aux_optimizer: torch.optim.Optimizer,
                        aux_params: list[nn.Parameter]) -> Tensor:
        """One step of the auxiliary parameters on the task's auxiliary loss (their gradients
        were zeroed before the step's forward); returns the loss."""
        aux_loss = self.task.auxiliary_loss(model)
        if aux_loss.requires_grad:
            aux_loss.backward()
            if self.distributed:  # outside DDP's graph: average by hand
                for p in aux_params:
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= self.world_size
            aux_optimizer.step()
        return aux_loss.detach()

    def _discriminator_step(self, disc_net: nn.Module, batch: Tensor, lr_factor: float,
                            use_amp: bool) -> dict[str, Tensor]:
        assert self.disc_optimizer is not None and self.discriminator is not None
        for group in self.disc_optimizer.param_groups:
            group["lr"] = (self.config.disc_lr or self.config.lr) * lr_factor
        self.disc_optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=use_amp):
            d_losses = self.task.discriminator_step(disc_net, batch)
        if d_losses["loss"].requires_grad:
            d_losses["loss"].backward()
            if self.config.clip_max_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), self.config.clip_max_norm)
            self.disc_optimizer.step()
        return {f"disc_{k}": v for k, v in d_losses.items()}

    # ------------------------------------------------------------------ logging

    def _log(self, record: dict[str, Any], writer: Any) -> None:
        if not self.is_main:
            return
        with open(self.out / METRICS, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        if writer is not None:
            split = record.get("split", "train")
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step",):
                    writer.add_scalar(f"{split}/{k}", v, record["step"])

    def _tensorboard(self) -> Any:
        if not self.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional: metrics.jsonl has everything
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    # ------------------------------------------------------------------ run

    def _train_seconds(self) -> float:
        """Training time so far, earlier runs of this output folder included."""
        return self._seconds_before + (time.perf_counter() - self._began)

    def _out_of_time(self, steps_run: int) -> bool:
        """Whether the ``max_seconds`` budget is spent (the same answer on every rank).

        Under DDP the ranks agree through an all-reduce, asked only every 10 steps to keep
        a collective off every step."""
        if not self.config.max_seconds:
            return False
        spent = self._train_seconds() >= self.config.max_seconds
        if not self.distributed:
            return spent
        if steps_run % 10:
            return False
        flag = torch.tensor(float(spent), device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # rank clocks differ: stop when any is out
        return bool(flag)

    def _validate(self, model: nn.Module, step: int, writer: Any) -> dict[str, float]:
        # A copy: validation builds CDF tables (update()), which must not reach the
        # training model (DDP would broadcast buffers of different shapes).
        snapshot = copy.deepcopy(model).cpu().eval()
        metrics = self.task.validate(snapshot)
        self._log({"step": step, "split": "val", **metrics}, writer)
        return metrics

    def fit(self) -> dict[str, Any]:
        """Train to ``config.steps`` (resuming if a checkpoint exists); export at the end.

        Returns ``{"steps", "seconds", "weights", "val"}`` on rank 0 (``weights``: the
        exported file), ``{"steps", "seconds"}`` on the others.
        """
        config = self.config
        self._init_distributed()
        torch.manual_seed(config.seed + self.rank)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_atomic(self.out / "config.json", json.dumps(config.to_dict(), indent=2, sort_keys=True).encode(),
                         force=True)
        model = self.task.build_model().to(self.device).train()
        if config.init:
            self.task.load_init(model, config.init)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer, aux_optimizer = self._optimizers(model)
        self._build_discriminator()
        start = self._load_checkpoint(model, optimizer, aux_optimizer)
        aux_params = list(aux_optimizer.param_groups[0]["params"]) if aux_optimizer is not None else []
        if self.distributed:
            # Start from rank 0's weights. The auxiliary parameters are trained by the aux
            # loss, outside DDP's forward: DDP must not hook them (their gradients are
            # averaged by hand below).
            for p in model.state_dict().values():
                dist.broadcast(p, 0)
            aux_ids = {id(p) for p in aux_params}
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                model, [n for n, p in model.named_parameters() if id(p) in aux_ids])
            net: nn.Module = DistributedDataParallel(model)
            if self.discriminator is not None:
                for p in self.discriminator.state_dict().values():
                    dist.broadcast(p, 0)
        else:
            net = model
        disc_net = self.discriminator
        if self.distributed and disc_net is not None:
            disc_net = DistributedDataParallel(disc_net)
        dataset = self.task.dataset(config.seed + 1_000_003 * self.rank)
        batches = self._batches(dataset, start)
        writer = self._tensorboard()
        use_amp = config.amp and (self.device.type == "cuda" or _cpu_bf16(config.cpu_bf16))
        # A bar on terminals only: in logs and pipes metrics.jsonl and the log lines say it all.
        bar = tqdm(total=config.steps, initial=start, disable=not self.is_main or not sys.stderr.isatty(),
                   desc="train", unit="step", file=sys.stderr)
        began = self._began = time.perf_counter()
        sums: dict[str, Any] = {}  # running sums of the logged losses (tensors)
        count = 0
        val: dict[str, float] = {}
        done = start
        for step in range(start, config.steps):
            if self._out_of_time(step - start):
                break
            lr_factor = _lr_factor(step, config, self._train_seconds())
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_factor
            batch = next(batches).to(self.device, non_blocking=True)
            if config.channels_last and batch.dim() == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            if aux_optimizer is not None:
                aux_optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses = self.task.training_step(net, batch, disc_net, step)
            losses["loss"].backward()
            if config.clip_max_norm > 0:
                torch.nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], config.clip_max_norm)
            optimizer.step()
            if aux_optimizer is not None:
                losses["aux_loss"] = self._auxiliary_step(model, aux_optimizer, aux_params)
            if disc_net is not None:
                losses.update(self._discriminator_step(disc_net, batch, lr_factor, use_amp))
            # Summed where they live: reading each loss back every step would stall the GPU.
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            count += 1
            bar.update(1)
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                means = {k: float(v) / count for k, v in sums.items()}
                shown = {k: f"{means[k]:.3f}" for k in self.task.progress_keys if k in means}
                bar.set_postfix(**shown)
                self._log({"step": done, "split": "train", "lr": optimizer.param_groups[0]["lr"],
                           "seconds": time.perf_counter() - began, "world_size": self.world_size,
                           **means}, writer)
                sums, count = {}, 0
            if self.is_main and config.val_every and done % config.val_every == 0 and done != config.steps:
                val = self._validate(model, done, writer)
            if done % config.checkpoint_every == 0 or done == config.steps:
                if self.is_main:
                    self._save_checkpoint(model, optimizer, aux_optimizer, done)
        bar.close()
        if done < config.steps:  # the time budget ran out first
            if count:
                self._log({"step": done, "split": "train", "lr": optimizer.param_groups[0]["lr"],
                           "seconds": time.perf_counter() - began, "world_size": self.world_size,
                           **{k: float(v) / count for k, v in sums.items()}}, writer)
            if self.is_main and done % config.checkpoint_every != 0:
                self._save_checkpoint(model, optimizer, aux_optimizer, done)
            self._log({"step": done, "split": "stop", "reason": "max_seconds"}, None)
        seconds = time.perf_counter() - began
        # A checkpoint past --steps is exported as it is; a time-boxed run as far as it got.
        steps = max(start, config.steps) if done >= config.steps else done
        total_seconds = self._seconds_before + seconds
        result: dict[str, Any] = {"steps": steps, "seconds": seconds}
        if self.distributed:
            self._check_ranks_agree(model)
        if self.is_main:
            val = self._validate(model, steps, writer)
            info = {"steps": steps, "train_seconds": round(total_seconds, 1), "world_size": self.world_size,
                    "device": str(self.device), "hardware": _hardware(self.device, self.world_size),
                    "config": config.to_dict(), "val": val}
            result["weights"] = str(self.task.export(copy.deepcopy(model).cpu(), self.out, info))
            result["val"] = val
        if writer is not None:
            writer.close()
        if self.distributed:
            dist.barrier()
            dist.destroy_process_group()
        return result

    def _check_ranks_agree(self, model: nn.Module) -> None:
        digest = parameter_digest(model)
        digests: list[Optional[str]] = [None] * self.world_size
        dist.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise RuntimeError(f"DDP ranks ended with different parameters: {digests}")
        self._log({"step": self.config.steps, "split": "ddp", "ranks_agree": True,
                   "param_digest": digest, "world_size": self.world_size}, None)
