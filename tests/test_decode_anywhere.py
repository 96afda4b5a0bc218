"""Files decode anywhere: encode here, decode under other thread counts and instruction sets.

For every trained image codec and quality, photos are encoded in this process (all threads,
the best instruction set this CPU has), then decoded in subprocesses with one thread, with
oneDNN/ATen capped at AVX2, and at SSE4.1 / ATen's default (no vector extensions). Every
decode must succeed and give pixels within ``PIXEL_TOLERANCE`` of this process's decode:
entropy parameters are exact, only the float synthesis rounds differently. (Before exact
parameters, 55 of 90 such decodes failed.) The CUDA test runs where a GPU is present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ncodec
from ncodec.codecs.image import shipped_weights
from ncodec.eval import portability
from ncodec.io import read_image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = sorted((ROOT / "ncodec" / "data" / "images").glob("*.png"))
TRAINED = [name for name in ("elic-gdn-vr", "mbt2018-mean-vr") if shipped_weights(name)]
QUALITIES = (1, 2, 3, 4, 5)


def _crops() -> list[torch.Tensor]:
    # 200x264: not a multiple of 64, so padding and cropping are exercised too.
    return [read_image(p)[:, 40:240, 100:364] for p in PHOTOS]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """(paths, reference uint8 pixels decoded in this process) of every codec x quality x photo."""
    folder = tmp_path_factory.mktemp("anywhere")
    paths, reference = [], []
    for name in TRAINED:
        for quality in QUALITIES:
            codec = ncodec.load(name, quality)
            for i, x in enumerate(_crops()):
                data = codec.compress(x)
                path = folder / f"{name}-q{quality}-{i}.ncb"
                path.write_bytes(data)
                paths.append(path)
                reference.append(portability.to_pixels(ncodec.decompress(data).tensor))
    return paths, reference


def test_there_is_something_to_check():
    assert TRAINED == ["elic-gdn-vr", "mbt2018-mean-vr"] and len(PHOTOS) >= 2


@pytest.mark.parametrize("setting", sorted(portability.SETTINGS))
def test_decodes_under_other_settings(encoded, setting, record_property):
    paths, reference = encoded
    result = portability.decode_under(paths, setting)
    aten = portability.SETTINGS[setting].get("ATEN_CPU_CAPABILITY")
    if aten is not None:  # the setting really took effect in the decoder process
        assert result.capability == portability.EXPECTED_CAPABILITY[aten]
    assert result.failures == 0, [e for e in result.errors if e]
    worst = result.max_difference(reference)
    record_property("max pixel difference", worst)
    record_property("differing samples", result.differing_pixels(reference))
    assert worst <= portability.PIXEL_TOLERANCE


def test_exact_parameters_do_not_depend_on_threads():
    """In-process: the entropy parameters of a decode are bit-identical at 1 and 2 threads."""
    codec = ncodec.load("elic-gdn-vr", 3)
    model = codec.model
    x = _crops()[0].float()[None, :, :192, :256] / 255
    with torch.inference_mode():
        z_hat = model.entropy_bottleneck.decompress(model.entropy_bottleneck.compress(model.h_a(model.g_a(x))),
                                                    (3, 4))
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one = model._code_y(None, z_hat, 3, model._code_y(model.g_a(x), z_hat, 3, None)[1])[0]
            torch.set_num_threads(2)
            two = model._code_y(None, z_hat, 3, model._code_y(model.g_a(x), z_hat, 3, None)[1])[0]
        finally:
            torch.set_num_threads(threads)
    assert torch.equal(one, two)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", TRAINED)
def test_cpu_and_cuda_decode_each_others_files(name):
    x = _crops()[1]
    for quality in (1, 5):
        cpu, gpu = ncodec.load(name, quality), ncodec.load(name, quality, device="cuda")
        from_cpu, from_gpu = cpu.compress(x), gpu.compress(x)
        for data in (from_cpu, from_gpu):
            a = portability.to_pixels(cpu.decompress(data).tensor)
            b = portability.to_pixels(gpu.decompress(data).tensor)
            assert int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) <= portability.PIXEL_TOLERANCE
