"""Training: one :class:`Trainer` for every modality, and the registry of tasks it runs
(``ncodec train <task>``; :mod:`ncodec.train.tasks`).

Imported lazily so that ``ncodec --help`` does not load torch.
"""

import importlib
from typing import Any

__all__ = ["BaseTask", "TrainConfig", "TrainTask", "Trainer", "get_task", "register_task", "task_names"]

_HOME = {"TrainConfig": "trainer", "Trainer": "trainer", "TrainTask": "tasks", "BaseTask": "tasks",
         "get_task": "tasks", "register_task": "tasks", "task_names": "tasks"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"ncodec.train.{_HOME[name]}"), name)
    raise AttributeError(name)
