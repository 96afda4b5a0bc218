"""Forged files that pass every CRC: JSON headers with other values and types, and payloads
changed with their CRCs recomputed. The CLI answers each with exit 0 or a one-line error
(never a traceback), and the Python decoder returns finite pixels or raises BitstreamError
(never NaN)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch

import ncodec
from ncodec.cli import main
from ncodec.codecs import container
from ncodec.io import read_image

from test_cli import PHOTO

ODD_VALUES = [True, False, None, -1, 0, 1, 3, 2**40, -(2**63), 1.5, float("1e300"), "3", "", [], [1], [[1]],
              {"a": 1}, [3, 4], [1 << 20, 1 << 20], "rgb", "gray", 65536, 65537]
KEYS = ["width", "height", "channels", "quality", "latent_shape", "format", "bit_depth", "color"]


def _originals() -> list[tuple[container.Header, list]]:
    x = read_image(PHOTO)[:, :64, :96]
    out = []
    for name, kw in (("mbt2018-mean-vr", {}), ("elic-gdn-vr", {}), ("mbt2018-mean", {"untrained": True}),
                     ("bmshj2018-factorized", {"untrained": True})):
        header, chunks = container.unpack(ncodec.load(name, 1, **kw).compress(x))
        out.append((header, chunks))
    return out


def _forged_headers(rng: random.Random, originals, count: int):
    for _ in range(count):
        header, chunks = rng.choice(originals)
        meta = dict(header.meta)
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(KEYS)
            if rng.random() < 0.15:
                meta.pop(key, None)
            else:
                meta[key] = rng.choice(ODD_VALUES)
        fields = {"meta": meta}
        if rng.random() < 0.1:
            fields["modality"] = rng.choice(["audio", "video"])
        if rng.random() < 0.1:
            fields["codec"] = rng.choice(["speech-rvq-16k", "elic-gdn-vr", "mbt2018-mean-vr", "nope"])
        try:
            yield container.pack(replace(header, **fields), chunks)
        except ValueError:  # a header the container itself cannot hold (e.g. 1e300 is fine, NaN not)
            continue


def _forged_payloads(rng: random.Random, originals, count: int):
    for _ in range(count):
        header, chunks = rng.choice(originals)
        streams = [bytearray(s) for s in chunks[0]]
        s = rng.choice(streams)
        for _ in range(rng.randint(1, 4)):
            if s and rng.random() < 0.8:
                s[rng.randrange(len(s))] = rng.randrange(256)
            else:
                s.insert(rng.randrange(len(s) + 1), rng.randrange(256))
        yield container.pack(header, [[bytes(v) for v in streams]])


@pytest.mark.parametrize("kind", ["headers", "payloads"])
def test_forged_files_never_give_tracebacks_or_nan(kind, tmp_path, capsys):
    rng = random.Random(11 if kind == "headers" else 12)
    originals = _originals()
    make = _forged_headers if kind == "headers" else _forged_payloads
    counts = {"decoded": 0, "refused": 0}
    path, out = tmp_path / "forged.ncb", tmp_path / "out.png"
    for i, data in enumerate(make(rng, originals, 300)):
        try:
            x = ncodec.decompress(data).tensor
        except ncodec.BitstreamError:
            counts["refused"] += 1
        else:
            assert torch.is_tensor(x) and torch.isfinite(x).all(), f"case {i}: non-finite output"
            counts["decoded"] += 1
        path.write_bytes(data)
        rc = main(["decode", str(path), str(out), "--force"])  # raises on anything but a one-line error
        err = capsys.readouterr().err.strip().splitlines()
        assert rc in (0, 1) and (rc == 0 or (len(err) == 1 and err[0].startswith("ncodec: error:"))), (i, err)
    assert counts["refused"] > 0 and sum(counts.values()) > 250
