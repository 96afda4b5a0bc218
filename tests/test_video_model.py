"""The P-frame model (ncodec.models.video) and its training task (ncodec.train.video): packing,
the exact motion-compensated prediction, coding through the exact hyperprior, the cascaded
loss, the frame cache and an export that the codec loads."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from ncodec.io.video import VideoWriter, open_video
from ncodec.models.video import BLOCK, build_pframe_model, pack_planes, predict_planes, unpack_planes

CLIP = Path(__file__).resolve().parent / "data" / "video" / "realshort.mp4"


def test_packing_is_lossless():
    y, u, v = torch.rand(2, 1, 32, 48), torch.rand(2, 1, 16, 24), torch.rand(2, 1, 16, 24)
    packed = pack_planes(y, u, v)
    assert packed.shape == (2, 6, 16, 24)
    assert all(torch.equal(a, b) for a, b in zip(unpack_planes(packed), (y, u, v)))


def test_prediction_moves_blocks_and_halves_chroma_vectors():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 256, (1, 64, 64), generator=g, dtype=torch.uint8)
    u = torch.randint(0, 256, (1, 32, 32), generator=g, dtype=torch.uint8)
    v = u.flip(-1).contiguous()
    vectors = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    vectors[0, :, 1, 2] = torch.tensor([3, -2])  # block (1, 2) reads 3 right, 2 up
    py, pu, pv = predict_planes(y, u, v, vectors)
    assert torch.equal(py[0, 16:32, 32:48], y[0, 14:30, 35:51])
    assert torch.equal(py[0, :16], y[0, :16])  # zero vectors copy
    # chroma: dy = -2 -> -1 exactly; dx = 3 -> the rounded mean of columns +1 and +2
    a, b = u[0, 7:15, 17:25].int(), u[0, 7:15, 18:26].int()
    assert torch.equal(pu[0, 8:16, 16:24].int(), (a + b + 1) // 2)
    # float planes give the same prediction up to that rounding
    fy, fu, _ = predict_planes(y.float(), u.float(), v.float(), vectors)
    assert torch.equal(fy, py.float()) and float((fu - pu.float()).abs().max()) <= 0.5
    # vectors far outside the frame read its edges (no error, no wrap-around)
    far = torch.full((1, 2, 4, 4), 10**9, dtype=torch.long)
    py, _, _ = predict_planes(y, u, v, far)
    assert torch.equal(py[0], y[0, -1, -1].expand(64, 64))


def test_coding_is_exact_and_matches_the_training_pass():
    torch.manual_seed(0)
    model = build_pframe_model().eval()
    model.update(force=True)
    x = torch.rand(1, 6, 32, 48)
    pred = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    with torch.inference_mode():
        coded = model.compress(x, pred, quality=2)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            one = model.decompress(coded["strings"], coded["shape"], pred, quality=2)["x_hat"]
        finally:
            torch.set_num_threads(threads)
        again = model.decompress(coded["strings"], coded["shape"], pred, quality=2)["x_hat"]
        forward = model(x, pred, 2)["x_hat"]
    assert tuple(coded["shape"]) == (2, 3) and one.shape == x.shape  # z: 1/32 of the luma
    assert float((one - again).abs().max()) < 1e-5
    assert float((one - forward).abs().max()) < 0.05  # rounding vs the exact path's fixed point
    with pytest.raises(ValueError, match="quality"):
        model.compress(x, pred, quality=6)


def test_training_task_caches_runs_trains_and_exports(tmp_path):
    from ncodec.codecs.video import VideoCodec
    from ncodec.models import weights as weights_io
    from ncodec.train.trainer import TrainConfig, Trainer
    from ncodec.train.video import VideoTask

    clips = tmp_path / "clips"
    clips.mkdir()
    with open_video(CLIP) as video, VideoWriter(clips / "a.y4m", 320, 240, Fraction(30)) as out:
        for _, frame in zip(range(12), video):
            out.write(frame)
    task = {"data": str(clips), "cache": str(tmp_path / "cache"), "crop": 64, "frames": 3, "runs": 3}
    config = TrainConfig(out=str(tmp_path / "run"), steps=3, batch_size=2, lr=1e-4, log_every=1,
                         checkpoint_every=3, task=task)
    result = Trainer(config, VideoTask(task)).fit()
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1
    with np.load(cached[0]) as data:
        assert data["y"].shape == (3, 3, 240, 320) and data["motion"].shape == (3, 3, 2, 15, 20)
        assert not data["motion"][:, 0].any()  # a run's first frame has no motion
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r.get("split") == "train"] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["bpp"] > 0 for r in logged if r.get("split") == "train")
    model = weights_io.load_weights(result["weights"])
    codec = VideoCodec(model, 2)
    with open_video(CLIP) as video:
        frames = [f for _, f in zip(range(3), video)]
    assert len(codec.decompress_frames(codec.compress(frames, 30, gop=3))) == 3
    # the packed windows of the GPU job are caches too: a folder of them trains
    crops = VideoTask({"data": str(tmp_path / "cache"), "crop": 64, "frames": 3}).dataset(0)
    item = crops[5]
    assert item.shape == (3, 8, 32, 32) and float(item[:, :6].max()) <= 1
    assert torch.equal(item[0, 6:], torch.zeros(2, 32, 32))  # the window's reference has no motion
    vectors = item[1, 6:, ::BLOCK // 2, ::BLOCK // 2]
    assert torch.equal(vectors, vectors.round())
