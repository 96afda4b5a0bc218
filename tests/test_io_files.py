"""ncodec.io's shared pieces: the one atomic writer, the one image suffix list, read_rgb."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ncodec.io import IMAGE_SUFFIXES, _umask, atomic_output, read_image, read_rgb, write_atomic

ROOT = Path(__file__).resolve().parents[1]
PHOTO = sorted((ROOT / "ncodec" / "data" / "images").glob("*.png"))[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_atomic_output_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "out.bin"  # a missing folder is made
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.bin.") and tmp.exists()
        assert not target.exists()  # nothing at the target until the body is done
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and _leftovers(target.parent) == []
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not mkstemp's 0600
    with pytest.raises(FileExistsError, match="--force"):
        with atomic_output(target):
            pytest.fail("the body must not run when the target exists and force is not set")
    with atomic_output(target, force=True) as tmp:
        tmp.write_bytes(b"newer")
    assert target.read_bytes() == b"newer"


def test_atomic_output_keeps_the_target_when_the_body_raises(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="body failed"):
        with atomic_output(target, force=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("body failed")
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):  # an interrupt cleans up as well
        with atomic_output(tmp_path / "other.bin") as tmp:
            raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_atomic_output_checks_again_before_the_rename(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(FileExistsError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"mine")
            target.write_bytes(b"someone else's")  # appeared while we wrote
    assert target.read_bytes() == b"someone else's" and _leftovers(tmp_path) == []
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    with pytest.raises(ValueError, match="symbolic link"):
        write_atomic(link, b"x", force=True)
    assert target.read_bytes() == b"someone else's" and link.is_symlink()


def test_write_atomic(tmp_path):
    write_atomic(tmp_path / "a.bin", b"abc")
    assert (tmp_path / "a.bin").read_bytes() == b"abc" and _leftovers(tmp_path) == []


def test_one_image_suffix_list():
    assert IMAGE_SUFFIXES == (".png", ".jpg", ".jpeg", ".webp")
    from ncodec.train import image_data

    assert image_data.IMAGE_SUFFIXES is IMAGE_SUFFIXES


def test_read_rgb(tmp_path):
    rgb = read_rgb(PHOTO)
    assert rgb.dtype == torch.uint8 and rgb.shape[0] == 3 and torch.equal(rgb, read_image(PHOTO))
    gray_path = tmp_path / "gray.png"
    Image.open(PHOTO).convert("L").save(gray_path)
    gray = read_image(gray_path)
    assert gray.shape[0] == 1
    three = read_rgb(gray_path)
    assert three.shape == (3, *gray.shape[1:]) and all(torch.equal(c, gray[0]) for c in three)
    alpha = tmp_path / "alpha.png"
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(alpha)
    with pytest.raises(ValueError, match="alpha"):
        read_rgb(alpha)
