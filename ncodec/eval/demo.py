"""``ncodec demo``: the shipped learned codecs on the bundled photos and speech, beside
classical codecs, through the eval harness.

- Images: the default image codec at :data:`IMAGE_QUALITIES` on the two bundled 512x512 photos
  (``ncodec/data/images``), beside JPEG, WebP and AVIF at the settings in
  :data:`IMAGE_BASELINES` (chosen to span the codec's bpp): bpp of whole files, PSNR-RGB,
  MS-SSIM, BD-rate.
- Audio: the default audio codec at each of its bitrates on the two bundled LibriSpeech
  utterances (``ncodec/data/audio``), beside Opus at :data:`OPUS_KBPS`: kbps of whole files,
  PESQ-WB, STOI, BD-rate on PESQ-WB.

It prints a short table per modality; with ``--out DIR`` it writes the two full reports of
``ncodec eval`` into ``DIR/image`` and ``DIR/audio``.
"""

from __future__ import annotations

import argparse
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ncodec.argtypes import positive_int
from ncodec.eval.plugin import SummaryColumn

if TYPE_CHECKING:
    from ncodec.eval.results import Results

__all__ = ["AUDIO_COLUMNS", "IMAGE_BASELINES", "IMAGE_COLUMNS", "IMAGE_QUALITIES", "OPUS_KBPS",
           "add_demo_parser", "format_demo", "run_demo"]

IMAGE_QUALITIES = (1, 3, 5)
"""Qualities of the default image codec (its lowest, middle and highest)."""
IMAGE_BASELINES = {"jpeg": (5, 10, 20, 30, 50), "webp": (0, 10, 25, 50, 75), "avif": (10, 25, 40, 55, 70)}
"""Each baseline's own quality settings: they cover the learned codec's bpp (about 0.15 to 0.5)."""
OPUS_KBPS = (1.5, 3.0, 6.0, 12.0)
"""Opus targets in kbps: the learned codec's bitrates and one above (below about 5 kbps libopus
sends what it can, which shows where it stops being intelligible)."""
IMAGE_COLUMNS = (SummaryColumn("bpp", "bpp", ".3f"), SummaryColumn("PSNR dB", "psnr-rgb", ".2f"),
                 SummaryColumn("MS-SSIM", "ms-ssim-rgb", ".4f"))
AUDIO_COLUMNS = (SummaryColumn("kbps", "kbps", ".2f"), SummaryColumn("PESQ-WB", "pesq", ".2f"),
                 SummaryColumn("STOI", "stoi", ".3f"))
"""The columns of the printed tables."""


def run_demo(out: Optional[str | Path] = None, *, force: bool = False, threads: Optional[int] = None,
             progress: Optional[bool] = None) -> dict[str, "Results"]:
    """Evaluate the default image and audio codecs on the bundled media (see the module doc).

    Args:
        out: a folder for the two reports (``out/image``, ``out/audio``), or None.
        force: replace reports already in those folders (as ``ncodec eval --force``).
        threads: torch CPU threads while coding (None: 2 for audio, torch's default for images).
        progress: progress bars on stderr; None shows them only on a terminal.

    Returns:
        ``{"image": Results, "audio": Results}``.
    """
    from ncodec.eval.report import prepare_report_dir, write_report

    folders = {"image": Path(out) / "image", "audio": Path(out) / "audio"} if out is not None else {}
    for folder in folders.values():
        prepare_report_dir(folder, force=force)  # before any work (and torch): never overwrite a report by surprise
    from ncodec.codecs import registry
    from ncodec.eval import core
    from ncodec.eval.audio import PLUGIN as AUDIO
    from ncodec.eval.image import PLUGIN as IMAGE

    with resources.as_file(resources.files("ncodec") / "data") as data:
        photos = sorted((data / "images").glob("*.png"))
        speech = sorted((data / "audio").glob("*.flac"))
        results = {
            "image": core.evaluate(IMAGE, photos, registry.default_codec("image"), IMAGE_QUALITIES,
                                   list(IMAGE_BASELINES), IMAGE_BASELINES, threads=threads, progress=progress),
            "audio": core.evaluate(AUDIO, speech, registry.default_codec("audio"), None, ["opus"], OPUS_KBPS,
                                   threads=threads, progress=progress),
        }
    for kind, folder in folders.items():
        write_report(results[kind], folder, IMAGE if kind == "image" else AUDIO)
    return results


def format_demo(results: dict[str, "Results"], seconds: Optional[float] = None) -> str:
    """The printed tables: per modality the means per codec and setting, then the BD-rates."""
    from ncodec.eval import core
    from ncodec.eval.audio import PLUGIN as AUDIO
    from ncodec.eval.image import PLUGIN as IMAGE

    image, audio = results["image"], results["audio"]
    first = image.records[0]
    lines = [f"Images: {len(image.inputs)} bundled photos ({first.width}x{first.height} px), bpp of whole files",
             core.summary_text(image, IMAGE, IMAGE_COLUMNS), "",
             f"Speech: {len(audio.inputs)} bundled LibriSpeech utterances (16 kHz), kbps of whole files",
             core.summary_text(audio, AUDIO, AUDIO_COLUMNS)]
    if seconds is not None:
        lines += ["", f"{seconds:.1f} s in all (coding, decoding and scoring); `ncodec eval` runs the same on "
                      "your own files."]
    return "\n".join(lines)


def _cmd_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    results = run_demo(args.out, force=args.force, threads=args.threads,
                       progress=False if args.no_progress else None)
    print(format_demo(results, time.perf_counter() - start))
    if args.out is not None:
        print(f"\nReports written to {Path(args.out) / 'image'} and {Path(args.out) / 'audio'}")
    return 0


def add_demo_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """Register the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo", help="the shipped image and speech codecs on the bundled media, beside JPEG, WebP, AVIF and Opus",
        description=("Code the bundled photos with the default image codec at three qualities and with JPEG, "
                     "WebP and AVIF, and the bundled speech with the default audio codec at its bitrates and "
                     "with Opus; print rate, PSNR / PESQ-WB and STOI, and the BD-rates. --out writes the full "
                     "reports of `ncodec eval`."))
    p.add_argument("--out", default=None, metavar="DIR",
                   help="also write the reports of `ncodec eval` into DIR/image and DIR/audio")
    p.add_argument("--force", action="store_true", help="replace reports already in DIR/image and DIR/audio")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch CPU threads while coding (default: 2 for audio, torch's own for images)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (by default shown only when stderr is a terminal)")
    p.set_defaults(handler=_cmd_demo)
    return p
