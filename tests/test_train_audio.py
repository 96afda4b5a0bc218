"""Audio training: the task's losses under mixed precision, the CLI end to end (adversarial
phase, real-file validation, export that ncodec loads), and the time budget of the trainer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ncodec.cli import main
from ncodec.models.weights import AUDIO_FORMAT, load_weights, read_metadata
from ncodec.train.audio import AudioTask
from ncodec.train.trainer import TrainConfig, _lr_factor

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted((ROOT / "ncodec" / "data" / "audio").glob("*.flac"))


@pytest.fixture(scope="module")
def audio_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """A training folder (one bundled utterance) and a held-out list (the other)."""
    base = tmp_path_factory.mktemp("audio")
    train = base / "train"
    train.mkdir()
    shutil.copy(BUNDLED[0], train / BUNDLED[0].name)
    val_list = base / "val.txt"
    val_list.write_text(f"# held out\n{BUNDLED[1]}\n")
    return train, val_list


def _task(train: Path, **options) -> AudioTask:
    return AudioTask({"data": str(train), "arch": "tokenizer-16k", "disc_channels": 4,
                      "segment_seconds": 0.25, **options})


def test_training_step_under_bf16_autocast_keeps_quantizer_in_float32(audio_dirs):
    train, _ = audio_dirs
    task = _task(train)
    torch.manual_seed(0)
    model, disc = task.build_model(), task.build_discriminator()
    x = task.dataset(seed=0)[0].unsqueeze(0).repeat(2, 1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        losses = task.training_step(model, x, disc)
    # The nearest-code search and its losses ran in float32 although the convolutions did not.
    assert out["commitment_loss"].dtype == torch.float32
    assert losses["loss"].isfinite() and {"adv", "fm"} <= set(losses)
    losses["loss"].backward()
    assert all(p.grad is None or p.grad.isfinite().all() for p in model.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = task.discriminator_step(disc, x)
    d["loss"].backward()
    assert d["loss"].isfinite()


def test_wave_weight_adds_the_waveform_term(audio_dirs):
    train, _ = audio_dirs
    x = _task(train).dataset(seed=1)[0].unsqueeze(0)
    results = []
    for weight in (0.0, 10.0):
        task = _task(train, wave_weight=weight)
        torch.manual_seed(0)
        model = task.build_model()
        results.append(task.training_step(model, x))
    plain, with_wave = results
    assert "wave" not in plain and with_wave["wave"] > 0
    assert torch.allclose(with_wave["loss"] - plain["loss"], 10.0 * with_wave["wave"], rtol=1e-4)


def test_cli_train_audio_validates_exports_and_resumes(tmp_path, audio_dirs):
    train, val_list = audio_dirs
    out = tmp_path / "run"
    args = ["train", "audio", "--data", str(train), "--val", str(val_list), "--arch", "tokenizer-16k",
            "--batch-size", "2", "--segment-seconds", "0.25", "--disc-channels", "4",
            "--adversarial-start", "2", "--log-every", "1", "--val-every", "0", "--checkpoint-every", "2",
            "--warmup-steps", "1", "--out", str(out)]
    assert main(args + ["--steps", "2"]) == 0
    assert main(args + ["--steps", "3"]) == 0  # resumes from the step-2 checkpoint
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in lines if r["split"] == "train"]
    assert [r["step"] for r in train_lines] == [1, 2, 3]
    # The adversarial terms count from --adversarial-start on.
    assert "adv" not in train_lines[1] and "adv" in train_lines[2]
    val = [r for r in lines if r["split"] == "val"][-1]
    assert val["step"] == 3 and val["q1_kbps"] > 0 and "q1_pesq" in val
    model = load_weights(out / "weights.safetensors")
    meta = json.loads(read_metadata(out / "weights.safetensors", AUDIO_FORMAT)["training"])
    assert meta["steps"] == 3 and meta["arch"] == "tokenizer-16k" and meta["train_files"] == 1
    # The entropy prior was counted on the training file.
    assert float(model.code_counts.sum()) > model.code_counts.numel()


def test_time_budget_stops_checkpoints_and_exports(tmp_path, audio_dirs):
    train, _ = audio_dirs
    out = tmp_path / "timed"
    args = ["train", "audio", "--data", str(train), "--arch", "tokenizer-16k", "--batch-size", "1",
            "--segment-seconds", "0.25", "--adversarial-start", "1000", "--steps", "100000",
            "--checkpoint-every", "1000", "--log-every", "1000", "--val-every", "0",
            "--max-minutes", str(1.5 / 60), "--out", str(out)]
    assert main(args) == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    stop = [r for r in lines if r["split"] == "stop"]
    assert len(stop) == 1 and stop[0]["reason"] == "max_seconds" and 0 < stop[0]["step"] < 100000
    steps = stop[0]["step"]
    # A partial log line, a checkpoint and weights for the step it stopped at.
    assert [r for r in lines if r["split"] == "train"][-1]["step"] == steps
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == steps and state["train_seconds"] >= 1.5
    assert json.loads(read_metadata(out / "weights.safetensors", AUDIO_FORMAT)["training"])["steps"] == steps
    # Run again: the budget is spent, so it exports at once without training further.
    assert main(args) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == steps


def test_time_budget_drives_the_schedule():
    config = TrainConfig(out="x", steps=1000, warmup_steps=10, max_seconds=100.0)
    assert _lr_factor(5, config, 50.0) == pytest.approx(0.6)  # warm-up is by steps
    assert _lr_factor(20, config, 50.0) == pytest.approx(0.01 + 0.99 * 0.5, abs=1e-9)  # half the time
    assert _lr_factor(20, config, 100.0) == pytest.approx(0.01)
    no_budget = TrainConfig(out="x", steps=1000, warmup_steps=10)
    assert _lr_factor(20, no_budget, 1e9) > 0.99
    with pytest.raises(ValueError):
        TrainConfig(out="x", steps=10, max_seconds=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_step_on_cuda(audio_dirs):
    train, _ = audio_dirs
    task = _task(train)
    model, disc = task.build_model().cuda(), task.build_discriminator().cuda()
    x = task.dataset(seed=0)[0].unsqueeze(0).repeat(2, 1, 1).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = task.training_step(model, x, disc)
    losses["loss"].backward()
    assert losses["loss"].isfinite()
