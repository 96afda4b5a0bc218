"""The small shared parts of the codec interface: header meta schemas, chunk-head varints,
the modality registry and the rate ladder of CodecInfo."""

from __future__ import annotations

import pytest

from ncodec.codecs import container
from ncodec.codecs.meta import MetaField, check_meta
from ncodec.codecs.registry import CodecInfo
from ncodec.errors import BitstreamError
from ncodec.io.modality import Modality, get_modality, modality_for_path, register_modality, unregister_modality

SCHEMA = {"width": MetaField(int, lo=1, hi=65536), "color": MetaField(str, choices=("gray", "rgb"), required=False),
          "rate": MetaField(float, lo=0), "shape": MetaField(object)}


@pytest.mark.parametrize("meta, message", [
    ([], "not a JSON object"),
    ({"rate": 1.0, "shape": []}, "lacks 'width'"),
    ({"width": 0, "rate": 1.0, "shape": []}, r"invalid width: 0 \(expected an integer in 1..65536\)"),
    ({"width": True, "rate": 1.0, "shape": []}, "invalid width: True"),      # a bool is not an int
    ({"width": 2.0, "rate": 1.0, "shape": []}, "invalid width: 2.0"),        # nor a float
    ({"width": 2, "rate": "1", "shape": []}, "invalid rate"),
    ({"width": 2, "rate": -1, "shape": []}, "invalid rate: -1"),
    ({"width": 2, "rate": 1, "shape": [], "color": "cmyk"}, r"invalid color: 'cmyk' \(expected one of 'gray', 'rgb'\)"),
    ({"width": 2, "rate": 1, "shape": [], "color": None}, "invalid color: None"),  # optional: absent, not null
])
def test_meta_schemas_refuse_with_the_field_named(meta, message):
    with pytest.raises(BitstreamError, match=message):
        check_meta(meta, SCHEMA, "test")


def test_meta_schemas_accept_and_return_the_meta():
    meta = {"width": 7, "rate": 3, "shape": {"any": ["json"]}, "extra": "kept"}
    assert check_meta(meta, SCHEMA, "test") is meta


@pytest.mark.parametrize("values", [[], [0], [127, 128, 2**63, 2**64 - 1]])
def test_chunk_heads_round_trip(values):
    data = container.pack_ints(values)
    assert container.unpack_ints(data, len(values), "head") == values


@pytest.mark.parametrize("data, count, message", [
    (b"\x05\x06", 1, "1 trailing bytes"),
    (b"\x85", 1, "ends inside a varint"),
    (b"\x80\x00", 1, "not minimally encoded"),
    (b"\xff" * 10 + b"\x01", 1, "longer than 10 bytes"),
    (b"\xff" * 9 + b"\x02", 1, "exceeds 2\\^64-1"),
    (b"", 1, "ends inside a varint"),
])
def test_chunk_heads_refuse_malformed_bytes(data, count, message):
    with pytest.raises(BitstreamError, match=message):
        container.unpack_ints(data, count, "head")


def test_varints_refuse_values_outside_their_range():
    for value in (-1, 2**64):
        with pytest.raises(ValueError):
            container.write_varint(value)


def test_modalities_register_and_do_not_claim_each_others_files():
    pictures = Modality("pictures", (".pic",), (".pic",), "bpp", rate_basis=lambda meta: meta["pixels"])
    register_modality(pictures)
    try:
        assert modality_for_path("a/b.PIC") is pictures and get_modality("pictures") is pictures
        assert pictures.measured_rate({"pixels": 1000}, 100) == {"bpp": 0.8}
        assert pictures.measured_rate({"pixels": 0}, 100) == {} and pictures.measured_rate([], 100) == {}
        with pytest.raises(ValueError, match="claims input suffixes of 'image'"):
            register_modality(Modality("thief", (".png",), (".png",), "bpp", rate_basis=len))
    finally:
        unregister_modality("pictures")
    assert modality_for_path("b.pic") is None
    # A video container is video's; audio reads its audio track when an audio codec is named.
    assert modality_for_path("clip.mp4").name == "video" and ".mp4" in get_modality("audio").also_reads
    assert modality_for_path("photo.webp").name == "image"


def test_codec_info_checks_its_rate_ladder_and_family():
    info = CodecInfo("c", "image", (1, 2), 2, False, "d", "w", rate_unit="bpp", rates={1: 0.25, 2: 0.5})
    assert info.rate_ladder() == "1:0.25 2:0.5 (bpp)" and info.family == "amortized"
    with pytest.raises(ValueError, match="family"):
        CodecInfo("c", "image", (1,), 1, False, "d", "w", family="fitted")
    with pytest.raises(ValueError, match="unit"):
        CodecInfo("c", "image", (1,), 1, False, "d", "w", rates={1: 0.3})
    with pytest.raises(ValueError, match="default quality"):
        CodecInfo("c", "image", (1,), 2, False, "d", "w")


def test_files_of_earlier_shipped_weights_still_decode(tmp_path, monkeypatch):
    """Retrained weights replace a codec's shipped file; the earlier file moves to
    ncodec/weights/previous/<arch>@<fingerprint>.safetensors, and files it wrote still decode."""
    import torch

    import ncodec
    from ncodec.codecs import shipped
    from ncodec.errors import BitstreamError
    from ncodec.models import image as image_models
    from ncodec.models.weights import export_weights

    arch = "bmshj2018-factorized"
    torch.manual_seed(123)  # other weights than the registry's seeded ones
    model = image_models.build_image_model(arch, **image_models.ARCHITECTURES[arch].channels(1))
    earlier = tmp_path / "earlier.safetensors"
    export_weights(model, earlier, arch=arch, quality=1)
    old = ncodec.load(str(earlier), 1)
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    data = old.compress(image)
    assert old.fingerprint != ncodec.load(arch, 1, untrained=True).fingerprint
    with pytest.raises(BitstreamError, match="fingerprint"):
        ncodec.decompress(data)
    monkeypatch.setattr(shipped, "PREVIOUS_DIR", tmp_path)
    (tmp_path / f"{arch}@{old.fingerprint}.safetensors").write_bytes(earlier.read_bytes())
    assert torch.equal(ncodec.decompress(data).tensor, old.decompress(data).tensor)
    assert shipped.previous_weights(arch, "../" + old.fingerprint[3:]) is None  # no path from a header


def test_decoded_stands_in_for_its_tensor():
    """Code written when decompress returned the tensor keeps working on a Decoded."""
    import numpy as np
    import torch

    from ncodec.codecs.base import Decoded
    from ncodec.eval.portability import to_pixels

    x = torch.rand(3, 4, 5)
    decoded = Decoded(x, "image")
    assert decoded.shape == x.shape and decoded.float().dtype == torch.float32
    assert torch.equal(decoded, x) and torch.equal((decoded.clamp(0, 1) * 255).round(), (x * 255).round())
    assert np.array_equal(np.asarray(decoded), x.numpy()) and np.array_equal(to_pixels(decoded), to_pixels(x))
    with pytest.raises(AttributeError):
        decoded.no_such_attribute
    with pytest.raises(TypeError):
        _wav, _rate = decoded  # not the audio pair of 0.1
