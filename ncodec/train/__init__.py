"""Training: one :class:`Trainer` for every modality, plus each modality's task.

Imported lazily so that ``ncodec --help`` does not load torch.
"""

from typing import Any

__all__ = ["TrainConfig", "TrainTask", "Trainer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ncodec.train import trainer

        return getattr(trainer, name)
    raise AttributeError(name)
