"""The overfitted image codec ``inr-image``: exact Laplace rows, the wavefront order, the
network and latent substreams, files that decode anywhere, hostile files, the CLI."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ncodec
from ncodec.argtypes import EFFORT_NAMES
from ncodec.codecs import container
from ncodec.codecs.inr_image import EFFORTS, INR_FORMAT, InrImageCodec, pack_model_head, read_model_head
from ncodec.codecs.varint import pack_ints, unpack_ints
from ncodec.entropy.logits import LOG_SCALE_MAX, LOG_SCALE_MIN, LogitStage, laplace_logits, laplace_row
from ncodec.entropy.stage import EntropyStage
from ncodec.errors import BitstreamError
from ncodec.eval import portability
from ncodec.io import read_rgb
from ncodec.models.inr import CONTEXT, InrConfig
from ncodec.models.inr_coding import ExactArm, decode_latents, encode_latents, wavefront_order

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden" / "images"
PHOTO = sorted((ROOT / "ncodec" / "data" / "images").glob("*.png"))[0]


def _small(h: int = 40, w: int = 56) -> torch.Tensor:
    photo = read_rgb(PHOTO).float().unsqueeze(0)
    return torch.nn.functional.interpolate(photo, size=(h, w), mode="area")[0].round().to(torch.uint8)


@pytest.fixture(scope="module")
def coded():
    codec = InrImageCodec("inr-image", 7, progress=False)
    x = _small()
    return codec, x, codec.compress(x, effort=200)


# ---------------------------------------------------------------- entropy rows


def test_laplace_logits_are_the_integrated_masses():
    for mu, log_b in ((0.3, -0.35), (-2.5, 0.0), (4.9, 1.2), (0.02, -2.5)):
        b = math.exp(round(log_b * 32) / 32)
        logits = laplace_logits(torch.tensor([round(mu * 2**16)]), torch.tensor([round(log_b * 32)]), -12, 12)
        p = torch.softmax(logits.double() / 2**16, -1)[0]
        cdf = lambda v: 0.5 + 0.5 * math.copysign(1, v) * (1 - math.exp(-abs(v) / b))  # noqa: E731
        mass = torch.tensor([cdf(k + 0.5 - mu) - cdf(k - 0.5 - mu) for k in range(-12, 13)], dtype=torch.float64)
        assert torch.allclose(p, mass / mass.sum(), atol=2e-3), (mu, log_b)


def test_laplace_rows_are_pinned():
    """The rows come from integers only: these bytes are part of the inr-image format."""
    mu = torch.arange(-40 * 2**16, 40 * 2**16, 977 * 61)
    scales = torch.arange(mu.numel()) % (LOG_SCALE_MAX - LOG_SCALE_MIN + 1) + LOG_SCALE_MIN
    logits = laplace_logits(mu, scales, -31, 31)
    stage = LogitStage(63)
    cdfs = stage.rows(logits)[0]
    digest = hashlib.sha256(logits.numpy().tobytes() + cdfs.numpy().tobytes()).hexdigest()[:16]
    assert digest == "9999601b664236d0", digest
    row = laplace_row(70, 40)
    assert row.cdfs.shape == (1, 83) and int(row.offsets[0]) == -40


def test_network_row_codes_near_the_entropy():
    torch.manual_seed(0)
    values = torch.round(torch.distributions.Laplace(0.0, 20.0).sample((4000,))).int()
    stage = EntropyStage(laplace_row(round(math.log(20) * 32), 300))
    rows = torch.zeros_like(values)
    data = stage.encode(values, rows)
    assert torch.equal(stage.decode(data, rows), values)
    assert 8 * len(data) / values.numel() < math.log2(2 * math.e * 20) + 0.05


# ---------------------------------------------------------------- latents


def test_wavefront_order_decodes_every_context_first():
    shapes = [(7, 11), (4, 6), (2, 3)]
    level, y, x, starts = wavefront_order(shapes)
    assert level.size == sum(h * w for h, w in shapes) and starts[0] == 0 and starts[-1] == level.size
    rank = {(int(l), int(a), int(b)): i for i, (l, a, b) in enumerate(zip(level, y, x))}
    step = {k: int(np.searchsorted(starts, i, side="right")) - 1 for k, i in rank.items()}
    for (l, a, b), t in step.items():
        assert t == b + 3 * a
        for dy, dx in CONTEXT:
            n = (l, a + dy, b + dx)
            if n in step:
                assert step[n] < t


@pytest.mark.parametrize("ancestors", [0, 1, 3])  # none (formats 1, 2); some; more than the coarser grids
def test_latents_round_trip_and_match_the_model_rate(ancestors):
    from ncodec.models.inr import InrConfig, InrImageModel

    torch.manual_seed(1)
    model = InrImageModel(30, 45, InrConfig(levels=3, ancestor_context=ancestors))
    with torch.no_grad():
        for p in model.arm.parameters():
            p.copy_(torch.round(p * 64) / 64)
    latents = [torch.round(torch.randn(y.shape) * 2).clamp(-31, 31) for y in model.latents]
    arm = ExactArm(model.arm)
    shapes = [tuple(y.shape[-2:]) for y in latents]
    data = encode_latents(arm, latents, 31, ancestors)
    back = decode_latents(arm, shapes, data, 31, ancestors)
    assert all(torch.equal(a, b) for a, b in zip(back, latents))
    with torch.no_grad():
        estimate = float(model.rate_bits(latents))
    # the file's bits are the rate the model trains on: the contexts are the same
    assert abs(8 * len(data) - estimate) < 0.03 * estimate + 64
    with pytest.raises(BitstreamError):
        decode_latents(arm, shapes, data[: len(data) // 2], 31, ancestors)


# ---------------------------------------------------------------- the codec


def test_round_trip(coded):
    codec, x, data = coded
    header = container.read_header(data)
    assert header.codec == "inr-image" and list(header.substreams) == ["network", "latents"]
    assert header.meta == {"format": INR_FORMAT, "width": 56, "height": 40, "channels": 3, "quality": 7}
    decoded = ncodec.decompress(data)
    assert decoded.tensor.shape == x.shape
    mse = float((decoded.tensor - x.float() / 255).pow(2).mean())
    flat = float((x.float() / 255 - x.float().mean((1, 2), keepdim=True) / 255).pow(2).mean())
    assert mse < 0.5 * flat  # it learned the image, not a colour
    assert torch.equal(ncodec.decompress(data).tensor, decoded.tensor)
    assert codec.last_fit["latent_bits"] > 0 and codec.last_fit["network_bits"] > 0


def test_grayscale_and_efforts():
    assert tuple(EFFORTS) == EFFORT_NAMES
    codec = InrImageCodec("inr-image-light", 2, "light", progress=False)
    gray = _small(24, 32)[:1]
    decoded = ncodec.decompress(codec.compress(gray, effort=20))
    assert decoded.tensor.shape == (1, 24, 32)
    with pytest.raises(ValueError, match="effort"):
        codec.compress(gray, effort="ludicrous")
    with pytest.raises(ValueError, match="seconds"):
        codec.compress(gray, seconds=-1)


def test_the_fit_seed_decides_the_file():
    """The same seed gives the same bytes; another seed another fit (its noise differs)."""
    x = _small(16, 24)
    files = [InrImageCodec("inr-image-light", 3, "light", progress=False, seed=seed).compress(x, effort=15)
             for seed in (0, 0, 1)]
    assert files[0] == files[1] and files[0] != files[2]


def _forged(data: bytes, **meta) -> bytes:
    header, chunks = container.unpack(data)
    new = container.Header(codec=header.codec, fingerprint=header.fingerprint, modality=header.modality,
                           substreams=header.substreams, meta={**header.meta, **meta})
    return container.pack(new, chunks)


def _with_head(data: bytes, values: list[int]) -> bytes:
    """``data`` with its network substream's model head replaced by the varints ``values``."""
    header, chunks = container.unpack(data)
    network, latents = chunks[0]
    *_, start = read_model_head(network)
    return container.pack(header, [[pack_ints(values) + network[start:], latents]])


def test_model_head_round_trips(coded):
    _, _, data = coded
    network = container.unpack(data)[1][0][0]
    config, codings, start = read_model_head(network)
    assert config == InrConfig() and len(codings) == 8 and start < 40  # 8 layers: 3 ARM, upsampler, 2 + 2 synthesis
    assert pack_model_head(config, codings) == network[:start]


def test_hostile_files_raise_bitstream_errors(coded):
    _, _, data = coded
    header, chunks = container.unpack(data)
    network, latents = chunks[0]
    config, codings, start = read_model_head(network)
    # the config's 9 varints (levels, 1 hidden layer, its width, arm_hidden, latent_range,
    # residual_layers, arm_layers, upsampler_kernel, ancestor_context), then 3 per layer
    head = unpack_ints(network[:start], 9 + 3 * len(codings), "head")
    bad = [
        _with_head(data, [99] + head[1:]),  # levels
        _with_head(data, head[:1] + [1, 100000] + head[3:]),  # a hidden width
        _with_head(data, head[:1] + [9] + head[2:]),  # hidden layers
        _with_head(data, head[:8] + [16] + head[9:]),  # ancestor_context 16
        _with_head(data, head[:-1] + [0]),  # half 0
        _with_head(data, head[:9] + [30] + head[10:]),  # step_bits 30
        _with_head(data, head[:-4]),  # a short head
        container.pack(header, [[network[:start - 1], latents]]),
        _forged(data, format=4),
        _forged(data, format=1),  # format 1 keeps its config in the meta
        _forged(data, config=[7, [48], 16, 31, 2, 2, 8, 6]),  # format 3 does not
        _forged(data, width=header.meta["width"] + 3),
    ]
    for swap in ([network[: len(network) // 2], latents], [network, latents[:-7]], [latents, network]):
        bad.append(container.pack(header, [swap]))
    for forged in bad:
        with pytest.raises(BitstreamError):
            ncodec.decompress(forged)


def _pinned_pixels_match(path: Path) -> None:
    pinned = np.asarray(Image.open(path.with_suffix(".png")).convert("RGB")).transpose(2, 0, 1)
    pixels = portability.to_pixels(ncodec.decompress(path.read_bytes()).tensor)
    assert pixels.shape == pinned.shape == (3, 48, 64)
    assert int(np.abs(pixels.astype(np.int16) - pinned.astype(np.int16)).max()) <= portability.PIXEL_TOLERANCE


def test_format_2_golden_file_decodes_to_its_pixels():
    """Files are forever: a format 2 file (a 48x64 crop of a bundled photo, 60 iterations,
    quality 4) decodes to the pixels its writer decoded (the latents exactly, the float
    synthesis within the tolerance)."""
    path = GOLDEN / "inr-image_format2_q4.ncb"
    assert container.read_header(path.read_bytes()).meta["format"] == 2
    _pinned_pixels_match(path)


def test_format_3_golden_file_decodes_to_its_pixels():
    """As format 2's: a format 3 file (ancestors in the ARM's context, the latents coded
    coarsest grid first), written by this release's encoder."""
    path = GOLDEN / "inr-image_format3_q4.ncb"
    assert container.read_header(path.read_bytes()).meta["format"] == INR_FORMAT == 3
    _pinned_pixels_match(path)


def test_format_1_file_still_decodes_and_its_hostile_forms_raise():
    """A format 1 file (written by ncodec at 42bb84a: three parameter groups, the model in the
    meta) decodes to the pixels its writer decoded."""
    path = GOLDEN / "inr-image_format1_q4.ncb"
    data = path.read_bytes()
    header = container.read_header(data)
    assert header.meta["format"] == 1 and "config" in header.meta
    _pinned_pixels_match(path)
    config = list(header.meta["config"])
    for forged in (_forged(data, config=[99] + config[1:]), _forged(data, config=[[100000] if isinstance(v, list)
                   else v for v in config]), _forged(data, config=config + [1]), _forged(data, config="big"),
                   _forged(data, network=[[5, 0, 3]]), _forged(data, network=[[30, 0, 3]] * 3)):
        with pytest.raises(BitstreamError):
            ncodec.decompress(forged)
    header_obj, chunks = container.unpack(data)
    meta = {k: v for k, v in header_obj.meta.items() if k != "config"}
    with pytest.raises(BitstreamError, match="config"):
        ncodec.decompress(container.pack(container.Header("inr-image", header_obj.fingerprint, "image",
                                                          header_obj.substreams, meta), chunks))


def test_decodes_alike_under_other_settings(coded, tmp_path):
    _, _, data = coded
    path = tmp_path / "x.ncb"
    path.write_bytes(data)
    reference = portability.to_pixels(ncodec.decompress(data).tensor)
    for setting in sorted(portability.SETTINGS):
        result = portability.decode_under([path], setting)
        assert result.failures == 0, result.errors
        assert result.max_difference([reference]) <= portability.PIXEL_TOLERANCE, setting


def test_cli_encode_decode(tmp_path):
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(_small(32, 40).permute(1, 2, 0).numpy()).save(src)
    run = lambda *a: subprocess.run([sys.executable, "-m", "ncodec", *a], capture_output=True, text=True)  # noqa: E731
    out = run("encode", str(src), str(tmp_path / "x.ncb"), "--codec", "inr-image", "--effort", "30", "--quality", "3")
    assert out.returncode == 0, out.stderr
    out = run("decode", str(tmp_path / "x.ncb"), str(tmp_path / "x.png"))
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "x.png").size == (40, 32)
    out = run("encode", str(src), str(tmp_path / "y.ncb"), "--effort", "fast")  # the default image codec
    assert out.returncode != 0 and "--effort is not an option" in out.stderr
    out = run("encode", str(src), str(tmp_path / "z.ncb"), "--codec", "inr-image", "--effort", "lots")
    assert out.returncode == 2 and "effort" in out.stderr


def test_eval_passes_the_effort(tmp_path):
    from PIL import Image

    from ncodec.eval import core

    Image.fromarray(_small(32, 40).permute(1, 2, 0).numpy()).save(tmp_path / "a.png")
    results = core.evaluate("image", [tmp_path / "a.png"], ["inr-image-light"], [2], ["webp"], [50],
                            progress=False, encode_options={"effort": 25})
    curve = results.curves[0]
    assert curve.key == "inr-image-light" and "effort 25" in curve.description
    assert len(curve.records) == 1 and curve.records[0].bpp > 0
    with pytest.raises(ValueError, match="takes no 'effort'"):
        core.evaluate("image", [tmp_path / "a.png"], ["elic-gdn-vr"], [1], [], progress=False,
                      encode_options={"effort": 25})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fits_on_cuda_and_decodes_on_the_cpu():
    codec = InrImageCodec("inr-image", 7, device="cuda", progress=False)
    x = _small()
    data = codec.compress(x, effort=200)
    decoded = ncodec.decompress(data).tensor
    assert decoded.shape == x.shape and decoded.device.type == "cpu"
    assert float((decoded - x.float() / 255).pow(2).mean()) < 0.02
