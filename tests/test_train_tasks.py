"""The training-task registry and the trainer's optional hooks, on a toy task registered here
alone: `ncodec train` offers it, its options reach it, and the trainer gives it an auxiliary
optimizer or a discriminator only when it asks for one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ncodec.cli import build_parser, main
from ncodec.train import tasks
from ncodec.train.command import config_from_args
from ncodec.train.trainer import CHECKPOINT, METRICS, TrainConfig, Trainer


class _Items(torch.utils.data.Dataset):
    """Item ``i``: float ``[4]`` drawn with seed + i."""

    def __init__(self, seed: int):
        self.seed = seed

    def __len__(self) -> int:
        return 1 << 20

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.randn(4, generator=torch.Generator().manual_seed(self.seed + index))


class ToyTask(tasks.BaseTask):
    """Learn the identity on 4-vectors; no auxiliary parameters, no discriminator."""

    summary = "a toy task of the tests"
    config_defaults = {"lr": 0.05}
    option_keys = ("width",)

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--width", type=int, help="ignored: shows that task options arrive")

    def __init__(self, options):
        self.options = options

    def build_model(self) -> nn.Module:
        model = nn.Linear(4, 4)
        model.offset = nn.Parameter(torch.zeros(()))  # trained by ToyAuxTask's auxiliary loss only
        return model

    def load_init(self, model, path):
        raise NotImplementedError

    def dataset(self, seed):
        return _Items(seed)

    def training_step(self, model, batch, discriminator=None, step=0):
        return {"loss": ((model(batch) - batch) ** 2).mean()}

    def validate(self, model):
        return {"width": float(self.options.get("width", 0))}

    def export(self, model, out: Path, info) -> Path:
        path = out / "toy.pt"
        torch.save(model.state_dict(), path)
        return path


class ToyAuxTask(ToyTask):
    """ToyTask whose ``offset`` is an auxiliary parameter pulled towards 3."""

    def auxiliary_parameters(self, model):
        return [model.offset]

    def auxiliary_loss(self, model):
        return (model.offset - 3.0) ** 2


@pytest.fixture
def toy(monkeypatch):
    """``toy`` and ``toy-aux`` registered for one test (the shipped tasks stay registered)."""
    tasks.task_names()  # the shipped task modules register once per process: before the copy
    monkeypatch.setattr(tasks, "_TASKS", dict(tasks._TASKS))
    tasks.register_task("toy", ToyTask)
    tasks.register_task("toy-aux", ToyAuxTask)


def test_a_task_registered_here_is_offered_by_ncodec_train(toy, tmp_path, capsys):
    assert tasks.task_names()[:2] == ["image", "audio"] and {"toy", "toy-aux"} <= set(tasks.task_names())
    args = build_parser().parse_args(["train", "toy", "--width", "7", "--steps", "3", "--out", str(tmp_path)])
    config = config_from_args(args)
    assert config.task == {"width": 7} and config.lr == 0.05  # the task's options and its default lr
    assert config_from_args(build_parser().parse_args(["train", "toy", "--steps", "3", "--out", str(tmp_path),
                                                       "--lr", "0.01"])).lr == 0.01  # the command line wins
    with pytest.raises(SystemExit):  # the image task's options are not the toy's
        build_parser().parse_args(["train", "toy", "--quality", "2"])
    assert "unknown training task 'nope'" in str(pytest.raises(ValueError, tasks.get_task, "nope").value)

    out = tmp_path / "run"
    assert main(["train", "toy", "--width", "7", "--steps", "4", "--batch-size", "2", "--warmup-steps", "1",
                 "--checkpoint-every", "2", "--log-every", "1", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights"] == str(out / "toy.pt") and report["val"] == {"width": 7.0}
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert "aux_optimizer" not in state and "discriminator" not in state  # no hooks, no optimizers for them
    lines = [json.loads(x) for x in (out / METRICS).read_text().splitlines()]
    assert [r["step"] for r in lines if r["split"] == "train"] == [1, 2, 3, 4]
    assert not any("aux_loss" in r for r in lines)
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".part")) == []


def test_registry_refuses_clashes_and_bad_names(toy):
    tasks.register_task("toy", ToyTask)  # the same class again: a no-op
    with pytest.raises(ValueError, match="registered twice"):
        tasks.register_task("toy", ToyAuxTask)
    with pytest.raises(ValueError, match="lower-case"):
        tasks.register_task("Toy Task", ToyTask)


def test_auxiliary_parameters_get_their_own_optimizer(toy, tmp_path):
    config = TrainConfig(out=str(tmp_path / "aux"), steps=30, batch_size=2, warmup_steps=1, aux_lr=0.2,
                         lr_schedule="constant", checkpoint_every=30, log_every=10, val_every=0)
    trainer = Trainer(config, ToyAuxTask({}))
    model = trainer.task.build_model()
    optimizer, aux_optimizer = trainer._optimizers(model)
    assert aux_optimizer is not None and aux_optimizer.param_groups[0]["params"] == [model.offset]
    assert all(p is not model.offset for p in optimizer.param_groups[0]["params"])
    assert Trainer(config, ToyTask({}))._optimizers(model)[1] is None
    trainer.fit()
    state = torch.load(tmp_path / "aux" / CHECKPOINT, weights_only=True)
    assert "aux_optimizer" in state
    assert abs(float(state["model"]["offset"]) - 3.0) < 1.0  # pulled from 0 towards 3 by the aux loss alone
    lines = [json.loads(x) for x in (tmp_path / "aux" / METRICS).read_text().splitlines()]
    assert all("aux_loss" in r for r in lines if r["split"] == "train")


def test_a_checkpoint_with_the_old_no_op_aux_state_still_resumes(toy, tmp_path):
    """Checkpoints written before tasks declared their auxiliary parameters hold an
    ``aux_optimizer`` for every task; a task without any resumes from them."""
    out = tmp_path / "old"
    config = dict(out=str(out), batch_size=2, warmup_steps=1, checkpoint_every=2, log_every=1, val_every=0)
    Trainer(TrainConfig(steps=2, **config), ToyTask({})).fit()
    state = torch.load(out / CHECKPOINT, weights_only=True)
    state["aux_optimizer"] = torch.optim.Adam([torch.zeros(1, requires_grad=True)]).state_dict()
    torch.save(state, out / CHECKPOINT)
    assert Trainer(TrainConfig(steps=3, **config), ToyTask({})).fit()["steps"] == 3


def test_task_defaults_sit_below_a_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"out": str(tmp_path), "steps": 5}))
    parse = build_parser().parse_args
    audio = config_from_args(parse(["train", "audio", "--config", str(path), "--disc-lr", "0.002"]))
    assert audio.adam_betas == (0.8, 0.99) and audio.disc_lr == 0.002  # GAN betas; --disc-lr set by the task
    image = config_from_args(parse(["train", "image", "--config", str(path)]))
    assert image.adam_betas == (0.9, 0.999)
    path.write_text(json.dumps({"out": str(tmp_path), "steps": 5, "adam_betas": [0.5, 0.9]}))
    assert config_from_args(parse(["train", "audio", "--config", str(path)])).adam_betas == (0.5, 0.9)


def test_the_registry_and_the_train_parser_do_not_load_torch():
    code = ("import sys; from ncodec.train.tasks import task_names; names = task_names(); "
            "from ncodec.cli import build_parser; build_parser().parse_args(['train', 'audio', '--steps', '1']); "
            "print(names, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "['image', 'audio', 'video'] False", proc.stderr


def test_cpu_precision_and_layout_defaults_come_from_the_task(tmp_path):
    """Image training defaults to bf16 autocast where the CPU has native bf16 and to
    channels_last (measured faster per validation gain, benchmarks/README.md); audio to
    neither; the command line overrides both."""
    from ncodec.train.command import config_from_args
    from ncodec.train.trainer import TrainConfig, _cpu_bf16

    parser = build_parser()
    image = config_from_args(parser.parse_args(["train", "image", "--data", str(tmp_path), "--steps", "1",
                                                "--out", str(tmp_path / "o")]))
    assert image.cpu_bf16 == "auto" and image.channels_last is True
    audio = config_from_args(parser.parse_args(["train", "audio", "--data", str(tmp_path), "--steps", "1",
                                                "--out", str(tmp_path / "o")]))
    assert audio.cpu_bf16 is False and audio.channels_last is False
    forced = config_from_args(parser.parse_args(["train", "image", "--data", str(tmp_path), "--steps", "1",
                                                 "--out", str(tmp_path / "o"), "--cpu-bf16", "off",
                                                 "--channels-last", "off"]))
    assert forced.cpu_bf16 is False and forced.channels_last is False
    assert _cpu_bf16(True) and not _cpu_bf16(False)
    with pytest.raises(ValueError, match="cpu_bf16"):
        TrainConfig(out=str(tmp_path), steps=1, cpu_bf16="sometimes")
