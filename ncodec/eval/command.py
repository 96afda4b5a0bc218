"""The ``ncodec eval`` subcommand: rate-distortion of learned codecs against classical ones.

``ncodec eval DIR [DIR|FILE ...] --codec NAME --out OUT`` codes the inputs (sorted; ``--limit
N`` keeps the first N) with the codec at each of its settings and with each baseline, prints
a summary, and writes the report (:mod:`ncodec.eval.report`). The inputs' modality is read
from their suffixes (:func:`ncodec.io.modality.modality_for_path`) and its eval plug-in
(:func:`ncodec.eval.plugin.get_eval_plugin`) does the rest: images take ``--qualities`` and
sweep JPEG, WebP, AVIF, JPEG 2000 and JPEG XL over their own settings; audio takes
``--bitrates`` (kbps) and ``--baseline-bitrates`` for Opus and MP3. One run takes one kind of
input.

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
from ncodec.argtypes import effort as effort_type
from ncodec.argtypes import positive_float, positive_int

if TYPE_CHECKING:
    from ncodec.eval.plugin import EvalPlugin

__all__ = ["SETTING_FLAGS", "add_eval_parser", "collect_inputs", "run_eval"]

SETTING_FLAGS = {"--qualities": "qualities", "--bitrates": "bitrates", "--baseline-bitrates": "baseline_bitrates"}
"""The setting options of ``ncodec eval`` and their argparse names; a plug-in declares which
of them it takes (:attr:`EvalPlugin.setting_flag`, :attr:`EvalPlugin.baseline_setting_flag`)."""


def _plugins() -> list["EvalPlugin"]:
    from ncodec.codecs.registry import load_codec_modules
    from ncodec.eval.plugin import eval_plugins

    load_codec_modules()  # codec modules register their modalities
    return eval_plugins()


def collect_inputs(inputs: Sequence[str | Path], limit: Optional[int] = None) -> tuple[str, list[Path]]:
    """(modality, files) of the inputs: files as given and the files of folders (not
    recursive) whose modality has an eval plug-in, without duplicates, sorted by path; the
    first ``limit`` of them if given.

    Raises:
        ValueError: a missing path, a folder with no such file, a file no plug-in reads, or
            inputs of two modalities.
    """
    from ncodec.io.modality import DEFAULT_MODALITY, get_modality, modality_for_path

    # In a fixed order (the default modality first), whatever order the plug-ins were imported in.
    plugins = sorted(_plugins(), key=lambda p: (p.modality != DEFAULT_MODALITY, p.modality))
    names = [p.modality for p in plugins]

    def kind(path: Path) -> Optional[str]:
        modality = modality_for_path(path)
        return modality.name if modality is not None and modality.name in names else None

    found: dict[Path, str] = {}
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            inside = {p: k for p in path.iterdir() if p.is_file() and (k := kind(p)) is not None}
            if not inside:
                suffixes = [s for m in names for s in get_modality(m).input_suffixes]
                raise ValueError(f"{path}: no {'/'.join(suffixes)} files in this directory")
            found.update(inside)
        elif path.is_file():
            k = kind(path)
            if k is None:
                raise ValueError(f"{path}: not a file ncodec eval reads (it evaluates {', '.join(names)} inputs)")
            found[path] = k
        else:
            raise ValueError(f"{path}: no such file or directory")
    if not found:
        raise ValueError("no inputs given")
    kinds = [p.input_noun for p in plugins if p.modality in set(found.values())]
    if len(kinds) > 1:
        raise ValueError(f"the inputs hold both {kinds[0]}s and {kinds[1]}s; evaluate one kind at a time")
    ordered = sorted(found)
    return found[ordered[0]], ordered[:limit] if limit else ordered


def _settings(args: argparse.Namespace, plugin: "EvalPlugin", plugins: Sequence["EvalPlugin"]) -> tuple:
    """(codec settings, baseline settings) from the flags the plug-in takes; a setting flag
    it does not take is a ValueError naming the inputs that do."""
    own = (plugin.setting_flag, plugin.baseline_setting_flag)
    for flag, dest in SETTING_FLAGS.items():
        if getattr(args, dest, None) and flag not in own:
            takers = [p.modality for p in plugins if flag in (p.setting_flag, p.baseline_setting_flag)]
            raise ValueError(f"{flag} is for {' and '.join(takers) or 'no'} inputs, not {plugin.modality} ones; "
                             f"{plugin.modality} codecs take {plugin.setting_flag}")
    baseline = getattr(args, SETTING_FLAGS[plugin.baseline_setting_flag]) if plugin.baseline_setting_flag else None
    return getattr(args, SETTING_FLAGS[plugin.setting_flag]), baseline


def _codecs(args: argparse.Namespace, plugin: "EvalPlugin", baselines: list[str]) -> list[str]:
    """--codec's names, else the modality's default codec (none: the baselines alone)."""
    from ncodec.codecs import registry

    if args.codec:
        return [c.strip() for c in args.codec.split(",") if c.strip()]
    try:
        return [registry.default_codec(plugin.modality)]
    except ValueError:
        if not baselines:
            raise ValueError(f"this ncodec has no default {plugin.modality} codec: give --codec NAME") from None
        print(f"ncodec eval: this ncodec has no default {plugin.modality} codec; running the baselines only "
              "(--codec NAME to evaluate one)", file=sys.stderr)
        return []


def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``ncodec eval``: find the inputs' plug-in, check every option and --out,
    evaluate, write the report, print the summary and the paths."""
    from ncodec.eval import core
    from ncodec.eval.plugin import get_eval_plugin
    from ncodec.eval.report import prepare_report_dir, write_report

    modality, files = collect_inputs(args.inputs, args.limit)
    plugin = get_eval_plugin(modality).with_options(
        **{k: getattr(args, k) for k in ("frames", "gop") if getattr(args, k, None) is not None})
    settings, baseline_settings = _settings(args, plugin, _plugins())
    baselines = plugin.parse_baselines(",".join(plugin.default_baselines) if args.baselines is None else args.baselines)
    codecs = _codecs(args, plugin, baselines)
    prepare_report_dir(args.out, force=args.force)  # before any work: never overwrite a report by surprise
    options = {k: getattr(args, k) for k in ("effort", "seconds") if getattr(args, k) is not None}
    results = core.evaluate(plugin, files, codecs, settings, baselines, baseline_settings, device=args.device,
                            threads=args.threads, progress=False if args.no_progress else None,
                            encode_options=options)
    paths = write_report(results, args.out, plugin)
    print(core.summary_text(results, plugin))
    print()
    print(f"{len(files)} {plugin.input_noun}(s); results written to {Path(args.out)}:")
    for path in paths.values():
        print(f"  {path}")
    return 0


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


def add_eval_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """Register the ``eval`` subcommand (its handler is :func:`run_eval`)."""
    p = subparsers.add_parser(
        "eval", help="rate-distortion of a codec against JPEG, WebP, AVIF, JPEG 2000, JPEG XL (audio: Opus, MP3)",
        description=("Code inputs with an ncodec codec at several settings and with classical codecs over "
                     "theirs; report the rate (whole files), quality metrics and times per input and on "
                     "average, BD-rates, an RD plot, JSON per codec and a CSV per input. Images (PNG, JPEG, "
                     "WebP) take --qualities and give bpp, PSNR-RGB and MS-SSIM against JPEG, WebP, AVIF, "
                     "JPEG 2000 and JPEG XL; prefer lossless (PNG) sources: JPEG sources flatter the JPEG "
                     "baseline. Audio (WAV, FLAC, Ogg, MP3, Opus, M4A) takes --bitrates and "
                     "--baseline-bitrates and gives kbps, PESQ-WB, STOI, SI-SDR, mel distance and real-time "
                     "factors against Opus and MP3."))
    p.add_argument("inputs", nargs="+", metavar="DIR",
                   help="folder(s) of images or of audio files, or such files (one kind per run)")
    p.add_argument("--codec", default=None, metavar="NAME[,NAME...]",
                   help="ncodec codec(s), comma-separated (default: the inputs' modality's default codec)")
    p.add_argument("--qualities", type=_qualities, default=None, metavar="Q,Q,...",
                   help="images (and modalities that take qualities): the codec's qualities (default: all)")
    p.add_argument("--bitrates", type=_kbps_list, default=None, metavar="KBPS,...",
                   help="audio: the codec's bitrates in kbps, e.g. 1.5,3,6 (default: all of them)")
    p.add_argument("--baseline-bitrates", type=_kbps_list, default=None, metavar="KBPS,...",
                   help="audio: the baselines' target bitrates in kbps (default: --bitrates, else the codec's; "
                        "with no codec 1.5,3,6,12)")
    p.add_argument("--baselines", default=None, metavar="NAME,...",
                   help="classical codecs, comma-separated, or none (default: jpeg,webp,avif,jpeg2000,jpegxl "
                        "for images, opus,mp3 for audio)")
    p.add_argument("--out", default="ncodec-eval", metavar="DIR",
                   help="output folder, new or empty (default: ./ncodec-eval)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty --out: the files of the report there are replaced, stale ones "
                        "removed, nothing else touched")
    p.add_argument("--device", type=device_type, default="cpu", help="where the codec runs: cpu or cuda (default: cpu)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the first N files (sorted)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch CPU threads while coding and timing (default: 2 for audio, torch's own for images)")
    p.add_argument("--effort", type=effort_type, default=None, metavar="EFFORT",
                   help="overfitted codecs (inr-image): fit effort, fast, medium, slow, slowest or a number of "
                        "iterations (default: the codec's)")
    p.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                   help="overfitted codecs: cap each image's fit at S seconds")
    p.add_argument("--frames", type=positive_int, default=None, metavar="N",
                   help="video: code the first N frames of each clip (default: all)")
    p.add_argument("--gop", type=positive_int, default=None, metavar="N",
                   help="video: frames per GOP for every codec, baselines included (default 32)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (by default shown only when stderr is a terminal)")
    p.set_defaults(handler=run_eval)
    return p
