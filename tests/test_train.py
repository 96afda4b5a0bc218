"""The trainer: config, losses, exact resume, export/load, CLI, and DDP over gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ncodec
from ncodec.codecs.image import ImageCodec
from ncodec.models import image as image_models
from ncodec.models.weights import export_weights, load_weights, read_metadata
from ncodec.train.image_data import ImageFolder
from ncodec.train.image import ImageTask
from ncodec.train.image_losses import RateDistortionLoss, lambda_for
from ncodec.train.trainer import TrainConfig, Trainer, parameter_digest

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = sorted((ROOT / "ncodec" / "data" / "images").glob("*.png"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """Small real training and validation folders: 96x96 crops of the bundled photos."""
    base = tmp_path_factory.mktemp("images")
    train, val = base / "train", base / "val"
    train.mkdir()
    val.mkdir()
    for i, path in enumerate(PACKAGED):
        im = Image.open(path).convert("RGB")
        for j, (left, top) in enumerate([(0, 0), (200, 150), (380, 380)]):
            im.crop((left, top, left + 96, top + 96)).save(train / f"{i}_{j}.png")
        im.crop((100, 100, 164, 164)).save(val / f"{i}.png")
    return train, val


def _config(out: Path, folders, steps: int, arch: str = "bmshj2018-factorized", **kw) -> TrainConfig:
    train, val = folders
    task = {"arch": arch, "quality": 1, "data": str(train), "val": str(val), "patch_size": 64}
    defaults = dict(batch_size=2, warmup_steps=2, log_every=1, val_every=0, checkpoint_every=2, seed=3)
    return TrainConfig(out=str(out), steps=steps, task=task, **{**defaults, **kw})


def _train(config: TrainConfig) -> dict:
    return Trainer(config, ImageTask(config.task)).fit()


# ------------------------------------------------------------------ pieces

def test_lambda_ladder_and_loss():
    assert lambda_for("mse", 1) == 0.0018 and lambda_for("ms-ssim", 8) == 220.0
    with pytest.raises(ValueError):
        lambda_for("mse", 9)
    loss = RateDistortionLoss(0.01)
    target = torch.full((2, 3, 8, 8), 0.5)
    out = {"x_hat": target + 0.1, "likelihoods": {"y": torch.full((2, 4, 2, 2), 0.5)}}
    got = loss(out, target)
    assert got["bpp"].item() == pytest.approx(16 / 64)  # 16 symbols of 1 bit per 64 pixels
    assert got["mse"].item() == pytest.approx(0.01)
    assert got["loss"].item() == pytest.approx(0.01 * 255**2 * 0.01 + 0.25, rel=1e-5)
    # Per-item λ: the mean of the items' losses.
    per_item = loss(out, target, torch.tensor([0.0, 0.02]))
    assert per_item["loss"].item() == pytest.approx(0.5 * 0.02 * 255**2 * 0.01 + 0.25, rel=1e-5)


def test_crops_are_reproducible_and_valid(folders):
    data = ImageFolder(sorted(folders[0].iterdir()), 64, seed=5)
    a, b = data[7], ImageFolder(sorted(folders[0].iterdir()), 64, seed=5)[7]
    assert torch.equal(a, b) and a.shape == (3, 64, 64) and 0 <= a.min() and a.max() <= 1
    assert not torch.equal(data[7], data[8])
    with pytest.raises(ValueError, match="smaller than"):
        ImageFolder(sorted(folders[0].iterdir()), 128)


def test_config_json_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"out": "x", "steps": 5, "lr": 1e-3, "task": {"arch": "mbt2018-mean"}}))
    config = TrainConfig.from_json(path, steps=7, lr=None, task={"quality": 2})
    assert (config.steps, config.lr, config.task) == (7, 1e-3, {"arch": "mbt2018-mean", "quality": 2})
    path.write_text(json.dumps({"out": "x", "steps": 5, "bogus": 1}))
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_json(path)
    with pytest.raises(ValueError):
        TrainConfig(out="x", steps=1, lr_schedule="sometimes")


# ------------------------------------------------------------------ training runs

def test_train_resume_is_exact_and_export_loads(tmp_path, folders):
    straight = _train(_config(tmp_path / "a", folders, steps=4))
    first = _train(_config(tmp_path / "b", folders, steps=2))
    assert first["steps"] == 2
    # The image task's auxiliary parameters (the bottlenecks' quantiles) have their optimizer's state saved.
    assert "aux_optimizer" in torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    resumed = _train(_config(tmp_path / "b", folders, steps=4))  # picks up checkpoint.pt at step 2
    a = load_weights(straight["weights"])
    b = load_weights(resumed["weights"])
    assert parameter_digest(a) == parameter_digest(b)
    # The run really trained: parameters moved away from the seeded initialisation.
    torch.manual_seed(3)
    fresh = image_models.build_image_model("bmshj2018-factorized", quality=1)
    assert parameter_digest(fresh) != parameter_digest(a)
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["split"] == "train"] == [1, 2, 3, 4]
    val = [r for r in lines if r["split"] == "val"][-1]
    assert val["images"] == 2 and val["bpp"] > 0 and val["psnr"] > 0
    meta = read_metadata(straight["weights"])
    assert meta["arch"] == "bmshj2018-factorized" and json.loads(meta["training"])["steps"] == 4
    # The exported model codes real files, in fp16-rounded weights, tables included.
    codec = ImageCodec("bmshj2018-factorized", 1, a)
    crop = Image.open(PACKAGED[0]).convert("RGB").crop((0, 0, 80, 72))
    x = torch.from_numpy(np.array(crop)).permute(2, 0, 1).contiguous()
    assert codec.decompress(codec.compress(x)).shape == (3, 72, 80)
    assert all(p.half().float().equal(p) for p in a.parameters())


def test_resume_into_another_architectures_folder_is_a_clear_error(tmp_path, folders):
    _train(_config(tmp_path / "run", folders, steps=1))
    with pytest.raises(ValueError, match="checkpoint of another model.*another --out"):
        _train(_config(tmp_path / "run", folders, steps=2, arch="mbt2018-mean"))


def test_variable_rate_training_and_qualities(tmp_path, folders):
    result = _train(_config(tmp_path / "vr", folders, steps=2, arch="mbt2018-mean-vr", lr=1e-3))
    model = load_weights(result["weights"], arch="mbt2018-mean-vr")
    assert model.qualities == (1, 2, 3, 4, 5)
    val = result["val"]
    assert {f"q{q}_bpp" for q in model.qualities} <= set(val)
    with pytest.raises(ValueError, match="quality"):
        model.gains(6, 1)


def test_export_rejects_wrong_arch(tmp_path):
    model = image_models.build_image_model("bmshj2018-factorized", quality=1)
    export_weights(model, tmp_path / "w.safetensors", arch="bmshj2018-factorized", quality=1)
    with pytest.raises(ValueError, match="mbt2018-mean"):
        load_weights(tmp_path / "w.safetensors", arch="mbt2018-mean")
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(ValueError):
        load_weights(tmp_path / "bad.safetensors")


# ------------------------------------------------------------------ command line and DDP

def _cli(*args: str, env: dict | None = None, module: list[str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, *(module or ["-m", "ncodec"]), *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=full_env, cwd=ROOT)


def test_cli_train_and_errors(tmp_path, folders):
    train, val = folders
    out = tmp_path / "cli"
    run = _cli("train", "image", "--data", str(train), "--val", str(val), "--arch", "bmshj2018-factorized",
               "--lmbda", "0.0035", "--steps", "2", "--out", str(out), "--batch-size", "2", "--patch-size", "64",
               "--warmup-steps", "1")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout[run.stdout.index("{"):])
    assert Path(report["weights"]).is_file() and report["steps"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["task"]["quality"] == 2  # nearest CompressAI λ to 0.0035
    bad = _cli("train", "image", "--data", str(tmp_path / "nowhere"), "--steps", "1", "--out", str(tmp_path / "x"))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "does not exist" in bad.stderr
    missing = _cli("train", "image", "--data", str(train))
    assert missing.returncode == 1 and "--out" in missing.stderr


def test_ddp_two_cpu_processes_on_gloo(tmp_path, folders):
    train, val = folders
    out = tmp_path / "ddp"
    run = _cli("--nproc_per_node", "2", "--master_port", "29517", "-m", "ncodec", "train", "image",
               "--data", str(train), "--val", str(val), "--arch", "bmshj2018-factorized", "--quality", "1",
               "--steps", "3", "--out", str(out), "--batch-size", "2", "--patch-size", "64",
               "--warmup-steps", "1", "--log-every", "1",
               module=["-m", "torch.distributed.run"])
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["world_size"] for r in records if r["split"] == "train"} == {2}
    ddp = [r for r in records if r["split"] == "ddp"]
    assert ddp and ddp[0]["ranks_agree"] is True
    assert (out / "weights.safetensors").is_file()


def test_export_keeps_buffers_exact(tmp_path):
    """fp16 applies to trained parameters only: the likelihood bound (1e-9) and the scale
    bound (0.11) are constants that fp16 would turn into 0 and 0.10999."""
    model = image_models.build_image_model("mbt2018-mean-vr", quality=1)
    export_weights(model, tmp_path / "w.safetensors", arch="mbt2018-mean-vr", quality=1)
    loaded = load_weights(tmp_path / "w.safetensors")
    gc = loaded.gaussian_conditional
    assert float(gc.likelihood_lower_bound.bound) == pytest.approx(1e-9)
    assert float(gc.lower_bound_scale.bound) == pytest.approx(0.11, abs=1e-9)
    assert all(p.half().float().equal(p) for p in loaded.parameters())


def test_trained_weights_are_a_codec_everywhere(tmp_path, folders, capsys):
    """A run folder (or its weights file) loads wherever a codec name does; files made with
    it decode with --weights / weights=, and without them the error says how."""
    from ncodec.cli import main

    run = tmp_path / "run"
    result = _train(_config(run, folders, steps=1))
    codec = ncodec.load(str(run))
    assert codec.name == "bmshj2018-factorized" and codec.quality == 1
    assert ncodec.load(result["weights"]).fingerprint == codec.fingerprint
    photo = PACKAGED[0]
    ncb = tmp_path / "x.ncb"
    assert main(["encode", str(photo), str(ncb), "--codec", str(run)]) == 0
    data = ncb.read_bytes()
    with pytest.raises(ncodec.BitstreamError, match="fingerprint .*--weights PATH"):
        ncodec.decompress(data)
    assert ncodec.decompress(data, weights=str(run)).shape == (3, 512, 512)
    assert main(["decode", str(ncb), str(tmp_path / "x.png")]) == 1
    assert "--weights" in capsys.readouterr().err
    assert main(["decode", str(ncb), str(tmp_path / "x.png"), "--weights", str(result["weights"])]) == 0
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        ncodec.load(str(tmp_path / "missing") + "/")
