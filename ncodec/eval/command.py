"""The ``ncodec eval`` subcommand: rate-distortion of a learned codec against classical ones.

``ncodec eval DIR [DIR|FILE ...] --codec NAME --qualities 1,2,3 --baselines jpeg,webp --out OUT``
codes the images (sorted; ``--limit N`` keeps the first N) with the codec and each baseline,
prints a summary, and writes the files described in :mod:`ncodec.eval.harness`.

Audio inputs (``.wav .flac .ogg .mp3 .opus .m4a``) take the audio path instead:
``ncodec eval DIR --codec NAME --bitrates 1.5,3,6 --baselines opus,mp3 --out OUT`` runs
:func:`ncodec.eval.audio_harness.evaluate_audio` (PESQ-WB, STOI, SI-SDR, mel distance, kbps from
whole files, real-time factors on ``--threads`` CPU threads). One run takes one kind of input.

Use lossless sources (PNG, e.g. Kodak or CLIC): re-encoding a JPEG source with JPEG at a
similar quality nearly reproduces it, which flatters the JPEG baseline and can bend its curve.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from ncodec.argtypes import device as device_type
from ncodec.argtypes import positive_int
from ncodec.eval.baselines import DEFAULT_BASELINES, parse_baselines

if TYPE_CHECKING:
    from ncodec.eval.audio_harness import AudioResults
    from ncodec.eval.harness import EvalResults

__all__ = ["IMAGE_SUFFIXES", "add_eval_parser", "collect_images", "collect_inputs", "format_audio_summary",
           "format_summary", "run_eval"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def collect_images(inputs: Sequence[str | Path], limit: Optional[int] = None) -> list[Path]:
    """Image files from files and folders (a folder's PNG/JPEG/WebP files, not recursive),
    without duplicates, sorted by path; the first ``limit`` of them if given."""
    files: set[Path] = set()
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = {p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
            if not found:
                raise ValueError(f"{path}: no {'/'.join(IMAGE_SUFFIXES)} files in this directory")
            files |= found
        elif path.is_file():
            files.add(path)
        else:
            raise ValueError(f"{path}: no such file or directory")
    if not files:
        raise ValueError("no images given")
    ordered = sorted(files)
    return ordered[:limit] if limit else ordered


def _audio_suffixes() -> tuple[str, ...]:
    from ncodec.io import AUDIO_SUFFIXES

    return AUDIO_SUFFIXES


def collect_inputs(inputs: Sequence[str | Path], limit: Optional[int] = None) -> tuple[str, list[Path]]:
    """("audio", audio files) when the inputs hold audio files (by suffix), else ("image",
    :func:`collect_images`). Audio files are gathered as images are (folders not recursive,
    sorted, the first ``limit``); a run mixing audio with images or other files raises
    ValueError."""
    audio_suffixes = _audio_suffixes()
    audio: set[Path] = set()
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            audio |= {p for p in path.iterdir() if p.suffix.lower() in audio_suffixes and p.is_file()}
        elif path.is_file() and path.suffix.lower() in audio_suffixes:
            audio.add(path)
    if not audio:
        return "image", collect_images(inputs, limit)
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            if any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in path.iterdir()):
                raise ValueError(f"{path}: holds both images and audio files; evaluate one kind at a time")
            if not any(p.suffix.lower() in audio_suffixes and p.is_file() for p in path.iterdir()):
                raise ValueError(f"{path}: no {'/'.join(audio_suffixes)} files in this directory")
        elif not path.is_file():
            raise ValueError(f"{path}: no such file or directory")
        elif path.suffix.lower() not in audio_suffixes:
            raise ValueError(f"{path}: not an audio file ({'/'.join(audio_suffixes)}), and the other inputs are audio")
    ordered = sorted(audio)
    return "audio", ordered[:limit] if limit else ordered


def _kbps_list(text: str) -> list[float]:
    """argparse type: "1.5,3,6" -> [1.5, 3.0, 6.0] (kbps, positive)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated bitrates in kbps, got {text!r}") from None
    if not values or not all(v > 0 and math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected positive bitrates in kbps, got {text!r}")
    return values


def _qualities(text: str) -> list[int]:
    """argparse type: "1,2,3" -> [1, 2, 3]."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one quality")
    return values


def _num(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def _bd_text(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:+.2f} %"


def format_summary(results: "EvalResults") -> str:
    """A plain-text table: per codec and setting, mean bpp, PSNR, MS-SSIM and times (ms);
    then the BD-rates of the learned codec against each baseline."""
    from ncodec.eval.harness import bd_rows

    header = ("codec", "setting", "bpp", "PSNR dB", "MS-SSIM", "enc ms", "dec ms")
    rows = []
    for curve in results.curves:
        s = curve.summary()
        for i, q in enumerate(curve.qualities):
            rows.append((curve.name, f"{q:g}", _num(s["bpp"][i], ".4f"), _num(s["psnr-rgb"][i], ".2f"),
                         _num(s["ms-ssim-rgb"][i], ".4f"), _num(1e3 * s["encoding_time"][i], ".1f"),
                         _num(1e3 * s["decoding_time"][i], ".1f")))
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    lines = ["  ".join(v.ljust(w) if k < 2 else v.rjust(w) for k, (v, w) in enumerate(zip(r, widths))).rstrip()
             for r in [header, *rows]]
    bd = bd_rows(results)
    for codec in results.codecs:
        lines.append("")
        lines.append(f"BD-rate of {codec.name} (negative = fewer bits):")
        for row in (r for r in bd if r["codec"] == codec.key):
            lines.append(f"  vs {row['name']}: PSNR {_bd_text(row['bd_rate_psnr'])}; "
                         f"MS-SSIM {_bd_text(row['bd_rate_ms_ssim'])}")
    return "\n".join(lines)


def format_audio_summary(results: "AudioResults") -> str:
    """A plain-text table: per codec and target bitrate, mean kbps, PESQ-WB, STOI, SI-SDR,
    mel distance and real-time factors; then the BD-rates on PESQ-WB."""
    from ncodec.eval.audio_harness import SUMMARY_HEADER, bd_rows, summary_rows

    rows = summary_rows(results)
    widths = [max(len(r[k]) for r in [SUMMARY_HEADER, *rows]) for k in range(len(SUMMARY_HEADER))]
    lines = ["  ".join(v.ljust(w) if k < 1 else v.rjust(w) for k, (v, w) in enumerate(zip(r, widths))).rstrip()
             for r in [SUMMARY_HEADER, *rows]]
    for codec in results.codecs:
        lines.append("")
        lines.append(f"BD-rate of {codec.name} on PESQ-WB (negative = fewer bits):")
        for row in (r for r in bd_rows(results) if r["codec"] == codec.key):
            lines.append(f"  vs {row['name']}: {_bd_text(row['bd_rate_pesq'])}")
    return "\n".join(lines)


def _run_audio_eval(args: argparse.Namespace, files: list[Path]) -> int:
    from ncodec.codecs import registry
    from ncodec.eval.audio_baselines import AUDIO_BASELINES, parse_audio_baselines
    from ncodec.eval.audio_harness import evaluate_audio, write_audio_report
    from ncodec.eval.harness import prepare_report_dir

    if args.qualities:
        raise ValueError("--qualities is for image codecs; audio codecs take --bitrates (kbps)")
    baselines = parse_audio_baselines(",".join(AUDIO_BASELINES) if args.baselines is None else args.baselines)
    if args.codec:
        codecs = [c.strip() for c in args.codec.split(",") if c.strip()]
    else:
        try:
            codecs = [registry.default_codec("audio")]
        except ValueError:
            if not baselines:
                raise ValueError("this ncodec has no default audio codec: give --codec NAME") from None
            print("ncodec eval: this ncodec has no default audio codec; running the baselines only "
                  "(--codec NAME to evaluate one)", file=sys.stderr)
            codecs = []
    prepare_report_dir(args.out, force=args.force)  # before any work: never overwrite a report by surprise
    results = evaluate_audio(files, codecs, args.bitrates, baselines, args.baseline_bitrates, threads=args.threads,
                             device=args.device, progress=False if args.no_progress else None)
    paths = write_audio_report(results, args.out)
    print(format_audio_summary(results))
    print()
    print(f"{len(files)} audio file(s); results written to {Path(args.out)}:")
    for path in paths.values():
        print(f"  {path}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``ncodec eval``: evaluate, write the report, print the summary and paths.
    Audio inputs go to the audio harness; everything else is read as images."""
    from ncodec.codecs import registry
    from ncodec.eval.harness import evaluate, prepare_report_dir, write_report

    modality, images = collect_inputs(args.inputs, args.limit)
    if modality == "audio":
        return _run_audio_eval(args, images)
    if args.bitrates or args.baseline_bitrates:
        raise ValueError("--bitrates and --baseline-bitrates are for audio inputs; image codecs take --qualities")
    baselines = parse_baselines(",".join(DEFAULT_BASELINES) if args.baselines is None else args.baselines)
    codecs = [c.strip() for c in args.codec.split(",") if c.strip()] if args.codec else \
        [registry.default_codec("image")]
    prepare_report_dir(args.out, force=args.force)  # before any work: never overwrite a report by surprise
    results = evaluate(images, codecs, args.qualities, baselines, device=args.device,
                       progress=False if args.no_progress else None)
    paths = write_report(results, args.out)
    print(format_summary(results))
    print()
    print(f"{len(images)} image(s); results written to {Path(args.out)}:")
    for path in paths.values():
        print(f"  {path}")
    return 0


def add_eval_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """Register the ``eval`` subcommand (its handler is :func:`run_eval`)."""
    p = subparsers.add_parser(
        "eval", help="rate-distortion of a codec against JPEG, WebP, AVIF, JPEG 2000, JPEG XL (audio: Opus, MP3)",
        description=("Code images with an ncodec codec at several qualities and with classical codecs "
                     "over their quality settings; report bpp (whole files), PSNR-RGB, MS-SSIM and "
                     "times per image and on average. Writes CompressAI-style JSON per codec, "
                     "per_image.csv, rd.png and bdrate.md to --out. Prefer lossless (PNG) sources: JPEG "
                     "sources flatter the JPEG baseline. Audio inputs (WAV, FLAC, Ogg, MP3, Opus, M4A) are "
                     "coded at --bitrates and against Opus and MP3 at --baseline-bitrates; the report gives "
                     "kbps (whole files), PESQ-WB, STOI, SI-SDR, mel distance and real-time factors."))
    p.add_argument("inputs", nargs="+", metavar="DIR",
                   help="folder(s) of PNG/JPEG/WebP images or of audio files, or such files (one kind per run)")
    p.add_argument("--codec", default=None, metavar="NAME[,NAME...]",
                   help="ncodec codec(s), comma-separated (default: the default image or audio codec)")
    p.add_argument("--qualities", type=_qualities, default=None, metavar="Q,Q,...",
                   help="images: the codec's qualities (default: all of them)")
    p.add_argument("--bitrates", type=_kbps_list, default=None, metavar="KBPS,...",
                   help="audio: the codec's bitrates in kbps, e.g. 1.5,3,6 (default: all of them)")
    p.add_argument("--baseline-bitrates", type=_kbps_list, default=None, metavar="KBPS,...",
                   help="audio: the baselines' target bitrates in kbps (default: --bitrates, else the codec's; "
                        "with no codec 1.5,3,6,12)")
    p.add_argument("--baselines", default=None, metavar="NAME,...",
                   help=f"classical codecs, comma-separated, or none (default: {','.join(DEFAULT_BASELINES)} "
                        "for images, opus,mp3 for audio)")
    p.add_argument("--out", default="ncodec-eval", metavar="DIR",
                   help="output folder, new or empty (default: ./ncodec-eval)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty --out: the files of the report there are replaced, stale ones "
                        "removed, nothing else touched")
    p.add_argument("--device", type=device_type, default="cpu", help="where the codec runs: cpu or cuda (default: cpu)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the first N files (sorted)")
    p.add_argument("--threads", type=positive_int, default=2, metavar="N",
                   help="audio: torch CPU threads while coding and timing (default: 2)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (by default shown only when stderr is a terminal)")
    p.set_defaults(handler=run_eval)
    return p
