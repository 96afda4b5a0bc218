"""``ncodec train <task> ...``: the command line of the trainer, one subcommand per registered
task (:mod:`ncodec.train.tasks`).

Each task adds its own options; the run options of :class:`~ncodec.train.trainer.TrainConfig`
are shared. Values are layered: the task's ``config_defaults`` < a ``--config FILE`` (a JSON
``TrainConfig``, task options under ``"task"``) < the command line. Under ``torchrun
--nproc_per_node K -m ncodec train image ...`` each process runs one rank.

Light to import (no torch): ``ncodec --help`` builds these parsers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

__all__ = ["add_train_parser", "config_from_args", "run_train"]

_SHARED_TASK_OPTIONS = ("val_limit",)
"""Run options every task takes that go to the task's options, not to ``TrainConfig``."""


def _add_run_options(p: argparse.ArgumentParser, val_limit_help: str) -> None:
    """The options every task's training shares (those of :class:`TrainConfig`)."""
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
    p.add_argument("--cpu-bf16", choices=("auto", "on", "off"), default=None,
                   help="bf16 autocast on the CPU: auto = where the CPU has native bf16 (default of image "
                        "training; audio: off)")
    p.add_argument("--channels-last", choices=("on", "off"), default=None,
                   help="channels_last memory format for the model and image batches (image training: on)")
    p.add_argument("--max-minutes", type=float, help="training-time budget: stop and export when spent")
    p.set_defaults(handler=run_train)


def add_train_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``train`` and a subcommand for each registered task on ``sub``."""
    from ncodec.train.tasks import get_task, task_names

    p = sub.add_parser("train", help="train a model (rate-distortion) and export its weights",
                       description="Train a model and export safetensors weights that ncodec.load reads.")
    tasks = p.add_subparsers(dest="task_name", metavar="TASK", required=True)
    for name in task_names():
        task = get_task(name)
        tp = tasks.add_parser(name, help=task.summary, description=task.summary)
        task.add_arguments(tp)
        _add_run_options(tp, task.val_limit_help)


def config_from_args(args: argparse.Namespace):
    """The :class:`TrainConfig` of parsed ``ncodec train <task>`` arguments."""
    from ncodec.train.tasks import get_task
    from ncodec.train.trainer import TrainConfig

    task_cls = get_task(args.task_name)
    task: dict[str, Any] = task_cls.options_from_args(args)
    task.update({k: getattr(args, k) for k in _SHARED_TASK_OPTIONS if getattr(args, k, None) is not None})
    # Every TrainConfig field the parser has an option for (a task may add some, e.g. --disc-lr).
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"task"}
    overrides = {k: getattr(args, k) for k in sorted(fields) if hasattr(args, k)}
    if args.no_amp:
        overrides["amp"] = False
    choice = {"on": True, "off": False, "auto": "auto", None: None}
    overrides["cpu_bf16"], overrides["channels_last"] = choice[args.cpu_bf16], choice[args.channels_last]
    if args.max_minutes is not None:
        overrides["max_seconds"] = 60.0 * args.max_minutes
    defaults = dict(task_cls.config_defaults)
    if args.config:
        return TrainConfig.from_json(args.config, defaults=defaults, task=task, **overrides)
    missing = [f"--{k}" for k in ("out", "steps") if overrides.get(k) is None]
    if missing:
        raise ValueError(f"train needs {' and '.join(missing)} (or a --config that gives them)")
    return TrainConfig(**{**defaults, **{k: v for k, v in overrides.items() if v is not None}}, task=task)


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``ncodec train <task>``: train, export, print a JSON summary; returns 0."""
    from ncodec.train.tasks import get_task
    from ncodec.train.trainer import Trainer

    config = config_from_args(args)
    task = get_task(args.task_name)(config.task)
    result = Trainer(config, task).fit()
    if "weights" in result:
        print(json.dumps({"weights": result["weights"], "steps": result["steps"],
                          "seconds": round(result["seconds"], 1), "val": result["val"]}, indent=2))
    return 0
