"""The `ncodec` command line: encode / decode / info / models on real images."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from PIL import Image

from ncodec.cli import main
from ncodec.io import _umask

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "data", "images")
PHOTO = os.path.join(IMAGES, "1025469_crop.jpg")
GRAY = os.path.join(IMAGES, "962312_gray_crop.png")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncodec", *args], capture_output=True, text=True, timeout=300)


def test_encode_decode_info_round_trip(tmp_path, capsys):
    ncb, png = tmp_path / "photo.ncb", tmp_path / "back.png"
    assert main(["encode", PHOTO, str(ncb), "--quality", "1"]) == 0
    assert main(["decode", str(ncb), str(png)]) == 0
    with Image.open(PHOTO) as a, Image.open(png) as b:
        assert a.size == b.size and b.mode == "RGB"
    capsys.readouterr()
    assert main(["info", str(ncb), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["file_size"] == os.path.getsize(ncb)
    assert info["codec"] == "elic-gdn-vr" and info["meta"]["quality"] == 1  # the default image codec
    assert sum(info["substream_bytes"].values()) + info["overhead_bytes"] == info["file_size"]
    assert oct(os.stat(ncb).st_mode & 0o777) == oct(0o666 & ~_umask())


def test_grayscale_png_stays_grayscale(tmp_path):
    ncb, png = tmp_path / "g.ncb", tmp_path / "g.png"
    assert main(["encode", GRAY, str(ncb), "--codec", "mbt2018-mean-vr", "--quality", "1"]) == 0
    assert main(["decode", str(ncb), str(png)]) == 0
    with Image.open(png) as im:
        assert im.mode == "L"


def test_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "exists.ncb"
    out.write_bytes(b"keep me")
    proc = run("encode", PHOTO, str(out), "--quality", "1")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "--force" in proc.stderr
    assert out.read_bytes() == b"keep me"
    assert main(["encode", PHOTO, str(out), "--quality", "1", "--force"]) == 0
    assert out.read_bytes()[:4] == b"\x89NCB"


def test_failed_decode_leaves_no_output(tmp_path):
    good = tmp_path / "good.ncb"
    assert main(["encode", PHOTO, str(good), "--quality", "1"]) == 0
    bad = tmp_path / "bad.ncb"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    proc = run("decode", str(bad), str(tmp_path / "out.png"))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["bad.ncb", "good.ncb"]  # no output, no temp file


def test_directories_with_progress(tmp_path):
    src = tmp_path / "in"
    shutil.copytree(IMAGES, src)
    assert main(["encode", str(src), str(tmp_path / "coded") + "/", "--quality", "1",
                 "--codec", "mbt2018-mean-vr"]) == 0
    coded = sorted(os.listdir(tmp_path / "coded"))
    assert coded == sorted(os.path.splitext(f)[0] + ".ncb" for f in os.listdir(src) if f.endswith((".png", ".jpg")))
    assert main(["decode", str(tmp_path / "coded"), str(tmp_path / "decoded") + "/"]) == 0
    assert len(os.listdir(tmp_path / "decoded")) == len(coded)


def test_errors_are_one_line_with_nonzero_exit(tmp_path):
    for args in (["encode", str(tmp_path / "missing.png"), str(tmp_path / "x.ncb")],
                 ["encode", PHOTO, str(tmp_path / "x.ncb"), "--codec", "nope"],
                 ["decode", PHOTO, str(tmp_path / "x.png")],
                 ["info", PHOTO]):
        proc = run(*args)
        assert proc.returncode != 0, args
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("ncodec: error:"), proc.stderr


def test_models_lists_codecs(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "elic2022",
                 "mbt2018-mean-vr", "elic-gdn-vr (default)"):
        assert name in out
    # Trained codecs list their nominal rates (quality:bpp), untrained ones a dash.
    trained = [line for line in out.splitlines() if line.startswith("elic-gdn-vr")][0]
    assert "trained" in trained and "1:0." in trained and "5:" in trained


# ----------------------------------------------------------------- data safety


def _special_files(folder):
    """(a regular file holding b"keep me", a symlink to it, a FIFO) in ``folder``."""
    target = folder / "target.png"
    target.write_bytes(b"keep me")
    link = folder / "link.png"
    link.symlink_to(target)
    fifo = folder / "fifo.png"
    os.mkfifo(fifo)
    return target, link, fifo


def test_check_output_refuses_everything_but_regular_files(tmp_path):
    import pytest

    from ncodec.io import check_output

    target, link, fifo = _special_files(tmp_path)
    for path, kind in ((link, "symbolic link"), (fifo, "FIFO"), (tmp_path, "directory"), ("/dev/null", "character device")):
        for force in (False, True):
            with pytest.raises(ValueError, match=kind):
                check_output(path, force=force)
    with pytest.raises(FileExistsError, match="--force"):
        check_output(target)
    check_output(target, force=True)
    check_output(tmp_path / "new.png")


def test_force_never_replaces_links_or_fifos(tmp_path):
    ncb = tmp_path / "photo.ncb"
    assert main(["encode", PHOTO, str(ncb), "--quality", "1"]) == 0
    victim, link, fifo = _special_files(tmp_path)
    for out in (link, fifo):
        proc = run("decode", str(ncb), str(out), "--force")
        assert proc.returncode == 1 and "never replaces" in proc.stderr and "Traceback" not in proc.stderr
    assert link.is_symlink() and victim.read_bytes() == b"keep me"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_outputs_are_checked_before_any_work(tmp_path, monkeypatch, capsys):
    import ncodec

    def no_work(*_args, **_kwargs):
        raise AssertionError("a codec was loaded before the outputs were checked")

    monkeypatch.setattr(ncodec, "load", no_work)
    monkeypatch.setattr(ncodec, "decompress", no_work)
    exists = tmp_path / "exists.ncb"
    exists.write_bytes(b"keep me")
    assert main(["encode", PHOTO, str(exists)]) == 1
    assert "--force" in capsys.readouterr().err
    out = tmp_path / "out"
    out.mkdir()
    (out / "1025469_crop.ncb").write_bytes(b"keep me")  # the second of the batch's outputs
    assert main(["encode", GRAY, PHOTO, str(out)]) == 1
    assert "--force" in capsys.readouterr().err and sorted(os.listdir(out)) == ["1025469_crop.ncb"]


def test_several_inputs_need_a_directory_that_was_asked_for(tmp_path, capsys):
    assert main(["encode", PHOTO, GRAY, str(tmp_path / "x.ncb")]) == 1
    assert "output directory" in capsys.readouterr().err
    assert not (tmp_path / "x.ncb").exists()
    assert main(["encode", PHOTO, GRAY, str(tmp_path / "x") + "/", "--codec", "mbt2018-mean-vr",
                 "--quality", "1"]) == 0
    assert sorted(os.listdir(tmp_path / "x")) == ["1025469_crop.ncb", "962312_gray_crop.ncb"]


def test_a_batch_goes_on_past_bad_files_and_sums_up(tmp_path, capsys):
    coded = tmp_path / "coded"
    assert main(["encode", PHOTO, GRAY, str(coded) + "/", "--codec", "mbt2018-mean-vr", "--quality", "1"]) == 0
    assert "2 of 2 files done" in capsys.readouterr().err
    (coded / "0_broken.ncb").write_bytes(b"not an ncodec file")
    assert main(["decode", str(coded), str(tmp_path / "decoded") + "/"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("ncodec: error:") and "0_broken.ncb" in err[0]
    assert "decode: 2 of 3 files done, 1 failed" in err[-1] and "bpp" in err[-1]
    assert sorted(os.listdir(tmp_path / "decoded")) == ["1025469_crop.png", "962312_gray_crop.png"]


def test_dash_is_standard_input_and_output(tmp_path):
    with open(PHOTO, "rb") as f:
        enc = subprocess.run([sys.executable, "-m", "ncodec", "encode", "-", "-", "--quality", "1"], stdin=f,
                             capture_output=True, timeout=300)
    assert enc.returncode == 0 and enc.stdout[:4] == b"\x89NCB", enc.stderr
    dec = subprocess.run([sys.executable, "-m", "ncodec", "decode", "-", "-"], input=enc.stdout,
                         capture_output=True, timeout=300)
    assert dec.returncode == 0 and dec.stdout[:8] == b"\x89PNG\r\n\x1a\n", dec.stderr
    with Image.open(PHOTO) as a:
        assert Image.open(__import__("io").BytesIO(dec.stdout)).size == a.size


def test_trailing_junk_is_refused_without_reading_it(tmp_path):
    """A valid header followed by 256 MiB of zeros: refused from its header, trailer and index,
    in one line, without reading the file in (peak memory stays far below its size)."""
    ncb = tmp_path / "x.ncb"
    assert main(["encode", PHOTO, str(ncb), "--quality", "1"]) == 0
    from ncodec.codecs import container

    header_end = len(container.pack(container.read_header(ncb.read_bytes()), []))  # header + empty index + trailer
    code = ("import resource, sys; from ncodec.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    peaks = []
    for size in (1 << 20, 256 << 20):
        junk = tmp_path / f"junk{size}.ncb"
        with open(junk, "wb") as f:
            f.write(ncb.read_bytes()[: header_end - 20])
            f.truncate(size)
        proc = subprocess.run([sys.executable, "-c", code, "decode", str(junk), str(tmp_path / "out.png")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "trailer" in proc.stderr
        peaks.append(int(proc.stdout.split()[-1]))  # KiB
    assert peaks[1] - peaks[0] < 32 * 1024  # 255 MiB more file, not 255 MiB more memory


def test_failing_calls_and_info_do_not_load_torch(tmp_path):
    """Arguments and paths are checked before torch (and any weights) load: a failing call
    or `ncodec info` costs a fraction of a second, not the seconds of a torch import."""
    ncb = tmp_path / "x.ncb"
    assert main(["encode", PHOTO, str(ncb), "--quality", "1"]) == 0
    exists = tmp_path / "exists.ncb"
    exists.write_bytes(b"keep")
    code = ("import sys; from ncodec.cli import main; rc = main(sys.argv[1:]); "
            "print('torch loaded:', 'torch' in sys.modules, file=sys.stderr)")
    for args in (["encode", str(tmp_path / "missing.png"), str(tmp_path / "y.ncb")],
                 ["encode", PHOTO, str(exists)],
                 ["encode", PHOTO, PHOTO, str(tmp_path / "not-a-dir.ncb")],
                 ["info", str(ncb)]):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert proc.stderr.strip().splitlines()[-1] == "torch loaded: False", (args, proc.stderr)


def test_the_audio_track_of_an_mp4_is_coded(tmp_path):
    import av
    import numpy as np

    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        t = np.arange(16000, dtype=np.float32) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    ncb = tmp_path / "clip.ncb"
    # An .mp4 is video's by its suffix; an audio codec named takes its audio track.
    assert main(["encode", str(video), str(ncb), "--no-progress", "--codec", "speech-rvq-16k"]) == 0
    from ncodec.codecs import container

    assert container.read_header(ncb.read_bytes()).modality == "audio"


def test_audio_encode_reports_the_measured_rate_and_warns_about_music(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    t = np.arange(44100) / 44100
    music = tmp_path / "music.wav"
    sf.write(music, np.stack([0.2 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)], 1)
             .astype(np.float32), 44100)
    ncb = tmp_path / "music.ncb"
    assert main(["encode", str(music), str(ncb), "--bitrate", "6"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "16 kHz speech codec" in err and "44100 Hz, 2-channel" in err
    measured = float(err.split(" kbps measured")[0].split()[-1])
    assert "2 channel(s) at 6 kbps nominal each" in err
    assert main(["info", str(ncb), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["meta"]["bitrate"] == 6.0 and info["kbps"] == pytest.approx(measured, abs=0.01) and info["kbps"] > 9
    speech = tmp_path / "speech.wav"
    sf.write(speech, (0.2 * np.sin(2 * np.pi * 200 * np.arange(16000) / 16000)).astype(np.float32), 16000)
    assert main(["encode", str(speech), str(tmp_path / "speech.ncb")]) == 0
    assert "warning" not in capsys.readouterr().err
