"""Image files are forever: golden files of every image format version this release knows.

``tests/data/golden/images`` holds a 64x64 crop of a bundled photo coded by ncodec 0.1
(image format 1) and by this release (format 2), with the pixels their writer decoded:

* format 2 files decode to their pinned pixels within ``PIXEL_TOLERANCE`` (exact entropy
  parameters; only the float synthesis may round differently on another machine);
* format 1 files of codecs with float entropy parameters are refused with a message naming
  the ncodec version that wrote them; the factorized prior's (fixed tables) still decode.

The elic-gdn-vr / mbt2018-mean-vr files name the shipped weights' fingerprint: new weights
are a new model, whose decoder refuses these files (test_image_codec covers that), so such
files are re-made with the weights, never to make a decode test pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ncodec
from ncodec.codecs import container
from ncodec.codecs.image import IMAGE_FORMAT
from ncodec.eval.portability import PIXEL_TOLERANCE, to_pixels

GOLDEN = Path(__file__).resolve().parent / "data" / "golden" / "images"
V2 = sorted(GOLDEN.glob("image_v2_*.ncb"))


def _pinned(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path.with_suffix(".png")).convert("RGB")).transpose(2, 0, 1)


def test_golden_files_exist():
    assert IMAGE_FORMAT == 2
    assert {p.name.split("_")[2] for p in V2} == {"elic-gdn-vr", "mbt2018-mean-vr", "mbt2018-mean"}


@pytest.mark.parametrize("path", V2, ids=lambda p: p.stem)
def test_format_2_files_decode_to_their_pixels(path):
    data = path.read_bytes()
    assert container.read_header(data).meta["format"] == 2
    pixels = to_pixels(ncodec.decompress(data).tensor)
    pinned = _pinned(path)
    assert pixels.shape == pinned.shape == (3, 64, 64)
    assert int(np.abs(pixels.astype(np.int16) - pinned.astype(np.int16)).max()) <= PIXEL_TOLERANCE


def test_format_1_file_with_float_parameters_is_refused_with_its_writer():
    data = (GOLDEN / "image_v1_elic-gdn-vr_q2.ncb").read_bytes()
    assert "format" not in container.read_header(data).meta
    with pytest.raises(ncodec.BitstreamError, match=r"image format 1, written by ncodec 0\.1"):
        ncodec.decompress(data)


def test_format_1_factorized_file_still_decodes():
    path = GOLDEN / "image_v1_bmshj2018-factorized_q1.ncb"
    pixels = to_pixels(ncodec.decompress(path.read_bytes()).tensor)
    assert int(np.abs(pixels.astype(np.int16) - _pinned(path).astype(np.int16)).max()) <= PIXEL_TOLERANCE


def test_unknown_format_is_refused():
    header, chunks = container.unpack(V2[0].read_bytes())
    meta = {**header.meta, "format": 3}
    forged = container.pack(container.Header(header.codec, header.fingerprint, header.modality, header.substreams,
                                             meta), chunks)
    with pytest.raises(ncodec.BitstreamError, match="format 3 .*newer ncodec"):
        ncodec.decompress(forged)
