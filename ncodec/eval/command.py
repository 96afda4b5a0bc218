"""The ``ncodec eval`` subcommand: rate-distortion of a learned codec against classical ones.

``ncodec eval DIR [DIR|FILE ...] --codec NAME --qualities 1,2,3 --baselines jpeg,webp --out OUT``
codes the images (sorted; ``--limit N`` keeps the first N) with the codec and each baseline,
prints a summary, and writes the files described in :mod:`ncodec.eval.harness`.

Use lossless sources (PNG, e.g. Kodak or CLIC): re-encoding a JPEG source with JPEG at a
similar quality nearly reproduces it, which flatters the JPEG baseline and can bend its curve.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from ncodec.argtypes import device as device_type
from ncodec.argtypes import positive_int
from ncodec.eval.baselines import DEFAULT_BASELINES, parse_baselines

if TYPE_CHECKING:
    from ncodec.eval.harness import EvalResults

__all__ = ["IMAGE_SUFFIXES", "add_eval_parser", "collect_images", "format_summary", "run_eval"]

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


def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``ncodec eval``: evaluate, write the report, print the summary and paths."""
    from ncodec.codecs import registry
    from ncodec.eval.harness import evaluate, write_report

    images = collect_images(args.inputs, args.limit)
    baselines = parse_baselines(args.baselines)
    codecs = [c.strip() for c in args.codec.split(",") if c.strip()] if args.codec else \
        [registry.default_codec("image")]
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
        "eval", help="rate-distortion of a codec against JPEG, WebP, AVIF, JPEG 2000, JPEG XL",
        description=("Code images with an ncodec codec at several qualities and with classical codecs "
                     "over their quality settings; report bpp (whole files), PSNR-RGB, MS-SSIM and "
                     "times per image and on average. Writes CompressAI-style JSON per codec, "
                     "per_image.csv, rd.png and bdrate.md to --out. Prefer lossless (PNG) sources: JPEG "
                     "sources flatter the JPEG baseline."))
    p.add_argument("inputs", nargs="+", metavar="DIR", help="folder(s) of PNG/JPEG/WebP images, or image files")
    p.add_argument("--codec", default=None, metavar="NAME[,NAME...]",
                   help="ncodec codec(s), comma-separated (default: the default image codec)")
    p.add_argument("--qualities", type=_qualities, default=None, metavar="Q,Q,...",
                   help="the codec's qualities (default: all of them)")
    p.add_argument("--baselines", default=",".join(DEFAULT_BASELINES), metavar="NAME,...",
                   help=f"classical codecs, comma-separated, or none (default: {','.join(DEFAULT_BASELINES)})")
    p.add_argument("--out", default="ncodec-eval", metavar="DIR", help="output folder (default: ./ncodec-eval)")
    p.add_argument("--device", type=device_type, default="cpu", help="where the codec runs: cpu or cuda (default: cpu)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the first N images (sorted)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (by default shown only when stderr is a terminal)")
    p.set_defaults(handler=run_eval)
    return p
