"""Training tasks: what a task is (:class:`TrainTask`), the defaults of its optional parts
(:class:`BaseTask`), and the registry that ``ncodec train <task>`` is built from.

A task is a class registered under a name (:func:`register_task`). The class declares its
command line (:meth:`~TrainTask.add_arguments`), how the parsed options become its
``TrainConfig.task`` dict (:meth:`~TrainTask.options_from_args`) and the run defaults it
wants (``config_defaults``, e.g. the Adam betas of GAN training); an instance, built from
that dict, is what :class:`~ncodec.train.trainer.Trainer` runs.

The task of a modality lives in ``ncodec/train/<modality>.py`` (``image.py``, ``audio.py``) and
registers itself when imported; every registered modality's module is imported on first use
(:func:`ncodec.io.modality.load_modality_modules`), as are modules named by an
``ncodec.train`` entry point of an installed distribution. A new task (video, say) is a new
module: nothing lists it. Nothing here imports torch, and task modules must not either at
import time: ``ncodec --help`` builds the parser from this registry.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Optional, Protocol, Sequence

if TYPE_CHECKING:
    from torch import Tensor, nn
    from torch.utils.data import Dataset

__all__ = ["ENTRY_POINT_GROUP", "BaseTask", "TrainTask", "get_task", "register_task", "task_names"]

ENTRY_POINT_GROUP = "ncodec.train"
"""Installed distributions may name modules that register training tasks under this group."""


class TrainTask(Protocol):
    """The modality-specific half of training. Class-level parts are read before a task is
    built (to make its command line and config); the rest are the trainer's hooks.

    Optional hooks have a "none" answer, which :class:`BaseTask` gives: no auxiliary
    parameters (then the trainer makes no auxiliary optimizer and never calls
    ``auxiliary_loss``) and no discriminator (then it never calls ``discriminator_step``).
    """

    summary: ClassVar[str]
    """One line for ``ncodec train --help``."""
    val_limit_help: ClassVar[str]
    """Help of ``--val-limit`` (validate on the first N items), whose value goes to the task's options."""
    config_defaults: ClassVar[Mapping[str, Any]]
    """``TrainConfig`` values this task defaults otherwise: below a ``--config`` file and the command line."""
    progress_keys: ClassVar[tuple[str, ...]]
    """Training losses shown on the progress bar (all are logged)."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the task's own options to its ``ncodec train <task>`` parser (the run options
        of ``TrainConfig`` are added by the command; an option named like a ``TrainConfig``
        field, e.g. ``--disc-lr``, sets that field)."""

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The ``TrainConfig.task`` entries the parsed command line gives (unset options left out)."""

    def __init__(self, options: dict[str, Any]) -> None:
        """Build the task from ``TrainConfig.task``."""

    def build_model(self) -> nn.Module:
        """A fresh model to train."""

    def load_init(self, model: nn.Module, path: str) -> None:
        """Load starting weights from ``path`` into ``model``."""

    def dataset(self, seed: int) -> Dataset:
        """Training items (tensors the model takes), drawn with ``seed``."""

    def training_step(self, model: nn.Module, batch: Tensor, discriminator: Optional[nn.Module] = None,
                      step: int = 0) -> dict[str, Tensor]:
        """Forward ``batch`` through ``model`` (maybe DDP-wrapped) and return ``{"loss": scalar,
        ...}``: the other entries are logged. ``discriminator``: the task's (when it has one),
        for the adversarial terms; ``step``: the trainer's step, 0-based, the same after a resume."""

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Metrics from really coding the validation set with an eval-mode copy of ``model``."""

    def export(self, model: nn.Module, out: Path, info: dict[str, Any]) -> Path:
        """Write the shippable weights of ``model`` into ``out``; return the file."""

    # Optional hooks ------------------------------------------------------------------

    def auxiliary_parameters(self, model: nn.Module) -> Sequence[nn.Parameter]:
        """Parameters trained by :meth:`auxiliary_loss` alone, with their own Adam at
        ``TrainConfig.aux_lr`` (e.g. CompressAI's entropy-bottleneck ``quantiles``): left out of
        the main optimizer and of DDP's gradient hooks (the trainer averages their gradients
        across ranks itself). Empty: none, and no auxiliary optimizer."""

    def auxiliary_loss(self, model: nn.Module) -> Tensor:
        """The scalar loss of the auxiliary parameters (called with the unwrapped model after
        each main step, only when :meth:`auxiliary_parameters` is not empty)."""

    def build_discriminator(self) -> Optional[nn.Module]:
        """A fresh discriminator, trained with its own Adam after each generator step; None: none."""

    def discriminator_step(self, discriminator: nn.Module, batch: Tensor) -> dict[str, Tensor]:
        """``{"loss": scalar, ...}`` of the discriminator on what the generator made of ``batch``
        in the last :meth:`training_step` (only called when the task has a discriminator)."""


class BaseTask:
    """Defaults of a task's class-level parts and its optional hooks (see :class:`TrainTask`):
    no options of its own, no auxiliary parameters, no discriminator."""

    summary: ClassVar[str] = ""
    val_limit_help: ClassVar[str] = "validate on the first N validation items only"
    config_defaults: ClassVar[Mapping[str, Any]] = {}
    progress_keys: ClassVar[tuple[str, ...]] = ("loss",)
    option_keys: ClassVar[tuple[str, ...]] = ()
    """Attributes of the parsed command line copied into the task's options when set."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        pass

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {k: getattr(args, k) for k in cls.option_keys if getattr(args, k, None) is not None}

    def auxiliary_parameters(self, model: nn.Module) -> Sequence[nn.Parameter]:
        return []

    def auxiliary_loss(self, model: nn.Module) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has auxiliary parameters but no auxiliary_loss")

    def build_discriminator(self) -> Optional[nn.Module]:
        return None

    def discriminator_step(self, discriminator: nn.Module, batch: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} has a discriminator but no discriminator_step")


_TASKS: dict[str, type] = {}
_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")


def register_task(name: str, cls: type) -> type:
    """Offer ``cls`` (a :class:`TrainTask`) as ``ncodec train <name>``; returns ``cls``.

    Raises:
        ValueError: ``name`` is not lower-case letters, digits and ``-``, or another class has it.
    """
    if not _NAME.match(name):
        raise ValueError(f"training task name {name!r}: use lower-case letters, digits and '-'")
    if _TASKS.get(name, cls) is not cls:
        raise ValueError(f"training task {name!r} is registered twice ({_TASKS[name].__qualname__}, "
                         f"{cls.__qualname__})")
    _TASKS[name] = cls
    return cls


_LOADED = False


def _ensure_loaded() -> None:
    # On first use: the registry stays the leaf the task modules import.
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from ncodec.io.modality import load_modality_modules

        load_modality_modules(__package__, ENTRY_POINT_GROUP)


def task_names() -> list[str]:
    """The registered tasks' names, in registration order (the default modality's first)."""
    _ensure_loaded()
    return list(_TASKS)


def get_task(name: str) -> type:
    """The task class registered as ``name``; ValueError naming the known ones if none is."""
    _ensure_loaded()
    if name not in _TASKS:
        raise ValueError(f"unknown training task {name!r}; known: {', '.join(_TASKS)}")
    return _TASKS[name]
