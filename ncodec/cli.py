"""The ``ncodec`` command line.

Subcommands: ``encode``, ``decode``, ``info``, ``models`` (here), ``train``
(ncodec.train.command), ``eval`` (ncodec.eval.command) and ``demo`` (ncodec.eval.demo). Each
registers its parser with an ``add_...(subparsers)`` function and sets ``handler`` to a
function ``(args) -> int``. None of them knows a modality: inputs go to the modality their
suffix names (:mod:`ncodec.io.modality`), files to the codec their header names
(:func:`ncodec.codecs.registry.codec_for_header`), and both through the
:class:`ncodec.codecs.base.Codec` interface.

Errors that come from the user's input or environment (a bad stream, a bad value, a file
that cannot be read or written) print one line on stderr and exit with status 1; no
traceback.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import ncodec
from ncodec.argtypes import device as device_type
from ncodec.argtypes import effort as effort_type
from ncodec.argtypes import nonnegative_int, positive_float, positive_int
from ncodec.errors import BitstreamError

PROG = "ncodec"


# --------------------------------------------------------------------------- encode / decode


STDIO = Path("-")
"""``-`` as INPUT or OUTPUT: standard input or output (one file only)."""


def _expand(inputs: Sequence[str], suffixes: Callable[[], Sequence[str]]) -> list[Path]:
    """Input files, with directories replaced by their files of the given suffixes (sorted;
    ``suffixes`` is called only when there is a directory)."""
    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            wanted = tuple(suffixes())
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in wanted and p.is_file())
            if not found:
                raise ValueError(f"{path}: no {'/'.join(wanted)} files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return files


def _wants_directory(output: str) -> bool:
    return output.endswith(("/", "\\")) or Path(output).is_dir()


def _plan(inputs: Sequence[str], output: str, in_suffixes: Callable[[], Sequence[str]],
          out_suffix: Callable[[Path], str], force: bool = False) -> list[tuple[Path, Path]]:
    """(source, destination) pairs: one file to one file, or many into the OUTPUT directory
    (named ``stem + out_suffix(source)``).

    Every destination is checked before any work starts (:func:`ncodec.io.check_output`):
    an existing file needs ``force``, and nothing but a regular file is ever replaced. An
    output directory is used (and made) only when asked for: OUTPUT ends with ``/`` or is an
    existing directory. ``-`` stands for standard input / output, for a single file.
    """
    from ncodec.io import check_output

    if not inputs:
        raise ValueError("give one or more INPUT paths and then the OUTPUT path")
    if "-" in inputs and len(inputs) > 1:
        raise ValueError("'-' (standard input) stands for one input file; give it alone")
    files = [STDIO] if list(inputs) == ["-"] else _expand(inputs, in_suffixes)
    single = len(inputs) == 1 and len(files) == 1 and not Path(inputs[0]).is_dir()
    if output == "-":
        if not single:
            raise ValueError("'-' (standard output) takes one input file, not several or a directory")
        return [(files[0], STDIO)]
    out = Path(output)
    if single and not _wants_directory(output):
        jobs = [(files[0], out)]
    else:
        if not _wants_directory(output):
            raise ValueError(f"{output}: several inputs need an output directory: end OUTPUT with '/' "
                             "(it is made) or name an existing directory")
        if files == [STDIO]:
            raise ValueError("'-' (standard input) has no name to derive an output file name from; name the output")
        jobs = [(f, out / (f.stem + out_suffix(f))) for f in files]
        names = [dst for _, dst in jobs]
        if len(set(names)) != len(names):
            raise ValueError("two inputs would write the same output name; give them distinct names")
    for src, dst in jobs:
        if src != STDIO and dst.exists() and dst.resolve() == src.resolve():
            raise ValueError(f"{src}: output would overwrite the input")
        check_output(dst, force=force)
    return jobs


def _rates(totals: dict[str, list[float]]) -> list[str]:
    """``{unit: [coded bytes, basis, divisor]}`` as ``"0.412 bpp"`` strings."""
    return [f"{8 * coded / divisor / basis:.3f} {unit}" for unit, (coded, basis, divisor) in totals.items() if basis]


def _run_jobs(jobs: list[tuple[Path, Path]], work: Callable[[Path, Path], dict], what: str,
              progress: bool = True) -> int:
    """Runs ``work(src, dst) -> stats`` for every job, with a progress bar when there are
    several. Each failure is reported on one line that names the input; in a batch the rest
    go on, then a summary line is printed. Returns the exit status: 0, or 1 if any job failed.

    ``stats``: ``bytes_in``, ``bytes_out``, ``coded`` (the .ncb file's bytes), ``meta`` (its
    header's) and ``modality`` (a :class:`ncodec.io.modality.Modality`), for the summary's rates.
    """
    import time

    from tqdm import tqdm

    def report(src: Path, exc: Exception, write=None) -> None:
        message = str(exc)
        name = "standard input" if src == STDIO else str(src)
        line = f"{PROG}: error: {message if name in message else f'{name}: {message}'}"
        (write or (lambda text: print(text, file=sys.stderr)))(line)

    if len(jobs) == 1:
        try:
            work(*jobs[0])
        except (BitstreamError, ValueError, OSError) as exc:
            report(jobs[0][0], exc)
            return 1
        return 0
    start = time.perf_counter()
    bytes_in = bytes_out = failed = 0
    per_unit: dict[str, list[float]] = {}
    bar = tqdm(jobs, desc=what, unit="file", file=sys.stderr, disable=not (progress and sys.stderr.isatty()))
    for src, dst in bar:
        try:
            stats = work(src, dst) or {}
        except (BitstreamError, ValueError, OSError) as exc:
            failed += 1
            report(src, exc, lambda text: bar.write(text, file=sys.stderr))
            continue
        bytes_in += stats.get("bytes_in", 0)
        bytes_out += stats.get("bytes_out", 0)
        modality = stats.get("modality")
        basis = modality.basis(stats.get("meta")) if modality is not None else None
        if basis:
            total = per_unit.setdefault(modality.rate_unit, [0, 0.0, modality.rate_divisor])
            total[0] += stats.get("coded", 0)
            total[1] += basis
    rates = _rates(per_unit)
    print(f"{what}: {len(jobs) - failed} of {len(jobs)} files done" + (f", {failed} failed" if failed else "")
          + f"; {bytes_in:,} bytes in, {bytes_out:,} bytes out" + (f", {', '.join(rates)}" if rates else "")
          + f"; {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 1 if failed else 0


def _modality(name: str):
    """The registered modality ``name`` (a plug-in's is known once its codec modules load)."""
    from ncodec.io.modality import get_modality

    try:
        return get_modality(name)
    except ValueError:
        from ncodec.codecs.registry import load_codec_modules

        load_codec_modules()
        return get_modality(name)


def _input_modality(src: Path, args: argparse.Namespace):
    """The modality of an input file: that of ``--codec`` if it reads this kind of file (an
    audio codec given a video's audio track), else by the file's suffix; standard input: that
    of ``--codec`` (or of the default codec)."""
    from ncodec.io.modality import modality_for_path, modalities

    if src == STDIO or args.codec is not None:
        from ncodec.codecs import registry

        wanted = _modality(registry.describe(args.codec or registry.default_codec()).modality)
        if src == STDIO or wanted.accepts(src) or src.suffix.lower() in wanted.also_reads:
            return wanted
    found = modality_for_path(src)
    if found is None:
        from ncodec.codecs.registry import load_codec_modules

        load_codec_modules()  # plug-ins register their modalities with their codecs
        found = modality_for_path(src)
    if found is None:
        known = sorted({s for m in modalities() for s in m.input_suffixes})
        raise ValueError(f"{src}: not a kind of file ncodec codes (by its suffix: {' '.join(known)})")
    return found


def _input_suffixes() -> list[str]:
    from ncodec.codecs.registry import load_codec_modules
    from ncodec.io.modality import modalities

    load_codec_modules()
    return [s for m in modalities() for s in m.input_suffixes]


def _codec_for(args: argparse.Namespace, modality, cache: dict):
    """The codec that codes ``modality``'s inputs: ``--codec`` if it is one of that modality,
    else the modality's default (one instance per modality and run)."""
    from ncodec.codecs import registry

    if modality.name not in cache:
        if args.codec is not None and not registry.is_weights_path(args.codec):
            info = registry.codec_info(args.codec)
            if info.modality != modality.name:
                raise ValueError(f"codec {args.codec} codes {info.modality}, this input is {modality.name}")
        cache[modality.name] = ncodec.load(args.codec, args.quality, device=args.device, modality=modality.name)
    return cache[modality.name]


def _stdio(path: Path, modality, write: bool):
    """Standard input / output for ``-``, else the path; a streams-only modality refuses ``-``."""
    if path != STDIO:
        return path
    if modality.streams_only:
        raise ValueError(f"{modality.name} is coded from and to named files (in bounded memory), not standard "
                         "input or output; name the files")
    return sys.stdout.buffer if write else io.BytesIO(sys.stdin.buffer.read())


def _cmd_encode(args: argparse.Namespace) -> int:
    jobs = _plan(args.paths[:-1], args.paths[-1], _input_suffixes, lambda _: ".ncb", force=args.force)
    codecs: dict = {}

    def encode(src: Path, dst: Path) -> dict:
        modality = _input_modality(src, args)
        codec = _codec_for(args, modality, codecs)
        options = {k: getattr(args, k) for k in ("bitrate", "entropy", "effort", "seconds", "gop")
                   if getattr(args, k) is not None}
        unknown = sorted(set(options) - set(codec.encode_options))
        if unknown:
            raise ValueError(f"--{unknown[0]} is not an option of {codec.name} ({modality.name}); "
                             f"it takes --quality" + "".join(f", --{o}" for o in codec.encode_options))
        stats = codec.encode_file(_stdio(src, modality, False), _stdio(dst, modality, True), force=args.force,
                                  **options)
        for warning in codec.input_warnings(src):  # after: a file that cannot be coded gets its error alone
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        if len(jobs) == 1 and dst != STDIO:
            print(f"{dst}: {codec.describe_file(stats['meta'], stats['bytes_out'])}", file=sys.stderr)
        return {**stats, "coded": stats["bytes_out"], "modality": modality}

    return _run_jobs(jobs, encode, "encode", progress=not args.no_progress)


def _decoded_suffix(src: Path) -> str:
    """The default output type for ncodec file ``src``: its modality's first output suffix
    (the default modality's for a file whose header cannot be read: it will fail anyway)."""
    from ncodec.codecs import container
    from ncodec.io.modality import DEFAULT_MODALITY

    try:
        with open(src, "rb") as f:
            name = container.read_header(f).modality
        return _modality(name).output_suffixes[0]
    except (BitstreamError, ValueError, OSError):
        return _modality(DEFAULT_MODALITY).output_suffixes[0]


def _cmd_decode(args: argparse.Namespace) -> int:
    from ncodec.codecs import container, registry

    jobs = _plan(args.paths[:-1], args.paths[-1], lambda: (".ncb",), _decoded_suffix, force=args.force)

    def decode(src: Path, dst: Path) -> dict:
        data = sys.stdin.buffer.read() if src == STDIO else None
        with (io.BytesIO(data) if data is not None else open(src, "rb")) as f:
            # Header, trailer and index first (a few small reads): a file that is not a whole
            # container (a valid header followed by junk) is refused before it is read in,
            # unless its codec decodes the whole chunks of a truncated file (video's GOPs).
            try:
                header, damage = container.ContainerReader(f).header, None
            except BitstreamError as exc:
                f.seek(0)
                header, damage = container.read_header(f), exc
        modality = _modality(header.modality)
        suffix = modality.output_suffixes[0] if dst == STDIO else dst.suffix.lower()
        if suffix not in modality.output_suffixes:
            raise ValueError(f"{dst}: {modality.name} decodes to {' or '.join(modality.output_suffixes)}")
        source = io.BytesIO(data) if data is not None else _stdio(src, modality, False)
        codec = registry.codec_for_header(header, device=args.device, weights=args.weights)
        if damage is not None and not codec.salvages_truncated:
            raise damage
        options = {k: getattr(args, k) for k in ("start_gop",) if getattr(args, k) is not None}
        unknown = sorted(set(options) - set(codec.decode_options))
        if unknown:
            raise ValueError(f"--{unknown[0].replace('_', '-')} is not an option of {codec.name} ({modality.name})")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stats = codec.decode_file(source, _stdio(dst, modality, True), force=args.force, suffix=suffix,
                                      **options)
        for warning in caught:
            print(f"{PROG}: warning: {src}: {warning.message}", file=sys.stderr)
        return {**stats, "coded": stats["bytes_in"], "modality": modality}

    return _run_jobs(jobs, decode, "decode", progress=not args.no_progress)


def _add_file_options(p: argparse.ArgumentParser) -> None:
    """The options encode and decode share: device, overwriting, progress."""
    p.add_argument("--device", type=device_type, default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing output files (only regular files: never links, FIFOs or devices)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (by default shown for batches when stderr is a terminal)")


def _add_encode(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("encode", help="compress images (PNG, JPEG, WebP) and audio (WAV, FLAC, OGG, MP3) to .ncb files",
                       description="Compress INPUT (a file, several files or directories) to OUTPUT "
                                   "(a file, or a directory ending in '/' or existing for several inputs; "
                                   "'-' is standard input/output for one image). The codec is picked by the "
                                   "input's kind (its suffix), or given. Outputs are checked before any work; "
                                   "a batch goes on past bad files and ends with a summary.")
    p.add_argument("paths", nargs="+", metavar="INPUT... OUTPUT")
    p.add_argument("--codec", default=None,
                   help="codec name (see `ncodec models`), or a weights file / run folder from `ncodec train` "
                        "(default: the modality's default)")
    p.add_argument("--quality", type=positive_int, default=None, help="quality level (default: the codec's)")
    p.add_argument("--bitrate", type=float, default=None, metavar="KBPS",
                   help="audio: nominal bitrate in kbps per channel, one the codec offers (see `ncodec models`); "
                        "each channel is coded on its own, so a stereo file costs about twice; the measured "
                        "rate is printed after coding")
    p.add_argument("--entropy", choices=("context", "static"), default=None,
                   help="audio: code the tokens with the codec's token context model (its default: smaller "
                        "files, slower coding) or with its static per-codebook tables (faster)")
    p.add_argument("--effort", type=effort_type, default=None, metavar="EFFORT",
                   help="overfitted codecs (inr-image): how long the per-image fit runs, fast, medium, slow, "
                        "slowest, or a number of iterations (default: medium)")
    p.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                   help="overfitted codecs: stop the per-image fit after S seconds (its schedule follows the time)")
    p.add_argument("--gop", type=positive_int, default=None, metavar="N",
                   help="video: frames per GOP, the unit of random access (default 32)")
    _add_file_options(p)
    p.set_defaults(handler=_cmd_encode)


def _add_decode(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("decode", help="decompress .ncb files to PNG/JPEG/WebP (images) or WAV/FLAC (audio)",
                       description="Decompress INPUT (a .ncb file, several, or directories) to OUTPUT "
                                   "(a file, or a directory ending in '/' or existing for several inputs; "
                                   "'-' is standard input/output for one image file). The codec and the "
                                   "output's default type come from each file's header.")
    p.add_argument("paths", nargs="+", metavar="INPUT... OUTPUT")
    p.add_argument("--weights", default=None, metavar="PATH",
                   help="the weights file or run folder that made the files, if not a shipped codec")
    p.add_argument("--start-gop", type=nonnegative_int, default=None, metavar="K",
                   help="video: decode from GOP K on (random access; GOP 0 is the first)")
    _add_file_options(p)
    p.set_defaults(handler=_cmd_decode)


# --------------------------------------------------------------------------- info / models

def measured_rate(modality: str, meta: object, size: int) -> dict:
    """The rate a file really costs, from its size and its header (``{"bpp": ...}``,
    ``{"kbps": ...}``: the modality's unit); ``{}`` when the header does not say enough."""
    try:
        return _modality(modality).measured_rate(meta, size)
    except ValueError:  # a modality this ncodec does not know
        return {}


def _cmd_info(args: argparse.Namespace) -> int:
    from ncodec.codecs.container import ContainerReader

    with open(args.file, "rb") as f:
        summary = ContainerReader(f).summary()
    summary.update(measured_rate(summary["modality"], summary["meta"], summary["file_size"]))
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    for key, value in summary.items():
        print(f"{key:>16}: {json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value}")
    return 0


def _add_info(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("info", help="show a .ncb file's header and sizes")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_info)


def _table(headers: tuple, rows: list) -> None:
    widths = [max(len(str(r[k])) for r in [headers, *rows]) for k in range(len(headers))]
    for row in [headers, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())


def _cmd_models(args: argparse.Namespace) -> int:
    codecs = ncodec.list_codecs()
    # Rate ladders: validation rates measured at export (images), nominal bitrates (audio).
    _table(("codec", "modality", "family", "qualities", "rate per quality", "weights", "description"),
           [(i.name + (" (default)" if i.default else ""), i.modality, i.family,
             f"{min(i.qualities)}-{max(i.qualities)} (default {i.default_quality})", i.rate_ladder(), i.weights,
             i.description) for i in codecs if i.trained])
    untrained = [i for i in codecs if not i.trained]
    if untrained:
        print()
        print("Architectures without trained weights here: load your own weights into them "
              "(--codec WEIGHTS, ncodec.load(path)); they are not codecs to pick by name.")
        _table(("architecture", "modality", "qualities", "description"),
               [(i.name, i.modality, f"{min(i.qualities)}-{max(i.qualities)}", i.description) for i in untrained])
    return 0


def _add_models(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("models", help="list the shipped codecs, their qualities and rates")
    p.set_defaults(handler=_cmd_models)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="ncodec: learned image, audio and video codecs over one exact, fast, safe bitstream."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {ncodec.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # All are light to import (no torch); torch loads when they run.
    from ncodec.eval.command import add_eval_parser
    from ncodec.eval.demo import add_demo_parser
    from ncodec.train.command import add_train_parser

    for add in (_add_encode, _add_decode, _add_info, _add_models, add_demo_parser, add_train_parser, add_eval_parser):
        add(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``ncodec`` console script; returns the exit status."""
    # Before torch loads (it loads lazily): OpenMP threads that spin while they wait collapse
    # when another process shares the CPU (a 20 ms stream push took 1.25 s instead of 49 ms).
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except (BitstreamError, ValueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
