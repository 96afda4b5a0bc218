"""The ``ncodec`` command line.

Subcommands: ``encode``, ``decode``, ``info``, ``models``, ``demo``, ``train``
(ncodec.train.command) and ``eval`` (ncodec.eval.command). Each subcommand is an ``_add_<name>`` function that registers its parser and sets
``handler`` to a ``_cmd_<name>(args) -> int`` function.

Errors that come from the user's input or environment (a bad stream, a bad value, a file
that cannot be read or written) print one line on stderr and exit with status 1; no
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import ncodec
from ncodec.argtypes import device as device_type
from ncodec.argtypes import positive_int
from ncodec.errors import BitstreamError

PROG = "ncodec"


def _cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo, print its report, optionally write the figures as JSON."""
    from ncodec import demo  # imported here so `ncodec --version` stays fast

    report = demo.run_demo(threads=args.threads, progress=False if args.no_progress else None)
    print(demo.format_report(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_dict(), f, indent=2)
            f.write("\n")
        print(f"Figures written to {args.json}")
    return 0


def _add_demo(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "demo",
        help="losslessly code the bundled images and speech with ncodec's range coder",
        description=(
            "Losslessly code the bundled real images (PNG) and speech (FLAC) with ncodec's range "
            "coder, verify every round trip bit for bit, and print sizes, ratios and coder speed."
        ),
    )
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="coder threads (default: all CPUs this process may use)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the figures to PATH as JSON")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (by default shown only when stderr is a terminal)")
    p.set_defaults(handler=_cmd_demo)


# --------------------------------------------------------------------------- encode / decode


def _expand(inputs: Sequence[str], suffixes: Sequence[str]) -> list[Path]:
    """Input files, with directories replaced by their files of the given suffixes (sorted)."""
    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes and p.is_file())
            if not found:
                raise ValueError(f"{path}: no {'/'.join(suffixes)} files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return files


STDIO = Path("-")
"""``-`` as INPUT or OUTPUT: standard input or output (one file only)."""


def _wants_directory(output: str) -> bool:
    return output.endswith(("/", "\\")) or Path(output).is_dir()


def _plan(inputs: Sequence[str], output: str, in_suffixes: Sequence[str], out_suffix: str,
          force: bool = False) -> list[tuple[Path, Path]]:
    """(source, destination) pairs: one file to one file, or many into the OUTPUT directory.

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
        jobs = [(f, out / (f.stem + out_suffix)) for f in files]
        names = [dst for _, dst in jobs]
        if len(set(names)) != len(names):
            raise ValueError("two inputs would write the same output name; give them distinct names")
    for src, dst in jobs:
        if src != STDIO and dst.exists() and dst.resolve() == src.resolve():
            raise ValueError(f"{src}: output would overwrite the input")
        check_output(dst, force=force)
    return jobs


def _run_jobs(jobs: list[tuple[Path, Path]], work: Callable[[Path, Path], dict], what: str,
             progress: bool = True) -> int:
    """Runs ``work(src, dst) -> stats`` for every job, with a progress bar when there are
    several. Each failure is reported on one line that names the input; in a batch the rest
    go on, then a summary line is printed. Returns the exit status: 0, or 1 if any job failed.

    ``stats`` may hold ``bytes_in``, ``bytes_out``, ``pixels`` (images) and ``seconds``
    (audio) for the summary's bpp / kbps.
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
    totals = {"bytes_in": 0, "bytes_out": 0, "pixels": 0, "seconds": 0.0}
    failed = 0
    bar = tqdm(jobs, desc=what, unit="file", file=sys.stderr, disable=not (progress and sys.stderr.isatty()))
    for src, dst in bar:
        try:
            stats = work(src, dst) or {}
        except (BitstreamError, ValueError, OSError) as exc:
            failed += 1
            report(src, exc, lambda text: bar.write(text, file=sys.stderr))
            continue
        for key in totals:
            totals[key] += stats.get(key, 0)
    done = len(jobs) - failed
    rates = []
    if totals["pixels"]:
        rates.append(f"{8 * totals['bytes_out'] / totals['pixels']:.3f} bpp" if what == "encode"
                     else f"{8 * totals['bytes_in'] / totals['pixels']:.3f} bpp")
    if totals["seconds"]:
        coded = totals["bytes_out"] if what == "encode" else totals["bytes_in"]
        rates.append(f"{8 * coded / 1000 / totals['seconds']:.2f} kbps")
    print(f"{what}: {done} of {len(jobs)} files done" + (f", {failed} failed" if failed else "")
          + f"; {totals['bytes_in']:,} bytes in, {totals['bytes_out']:,} bytes out"
          + (f", {', '.join(rates)}" if rates else "") + f"; {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 1 if failed else 0


def _codec_for(args: argparse.Namespace, modality: str, cache: dict):
    """The codec that codes ``modality`` inputs: ``--codec`` if it is one of that modality,
    else the modality's default (one instance per modality and run)."""
    import ncodec
    from ncodec.codecs import registry

    if modality not in cache:
        if args.codec is not None and not registry.is_weights_path(args.codec):
            info = registry.codec_info(args.codec)
            if info.modality != modality:
                raise ValueError(f"codec {args.codec} codes {info.modality}, this input is {modality}")
        cache[modality] = ncodec.load(args.codec, args.quality, device=args.device, modality=modality)
    return cache[modality]


def _read_input(src: Path) -> bytes:
    return sys.stdin.buffer.read() if src == STDIO else src.read_bytes()


def _write_output(dst: Path, data: bytes, force: bool) -> None:
    from ncodec.io import write_atomic

    if dst == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_atomic(dst, data, force=force)


def measured_rate(meta: object, size: int) -> dict:
    """The rate a file really costs, from its size and its header: ``{"kbps": ...}`` for
    audio (needs ``samples`` and ``sample_rate``), ``{"bpp": ...}`` for images; ``{}`` when
    the header does not say enough."""
    if not isinstance(meta, dict):
        return {}
    samples, rate = meta.get("samples"), meta.get("sample_rate")
    if type(samples) is int and type(rate) is int and samples > 0 and rate > 0:
        return {"kbps": round(8 * size / 1000 / (samples / rate), 3)}
    width, height = meta.get("width"), meta.get("height")
    if type(width) is int and type(height) is int and width > 0 and height > 0:
        return {"bpp": round(8 * size / (width * height), 4)}
    return {}


def _speech_warning(codec, src: Path) -> Optional[str]:
    """A warning when a 16 kHz speech codec is given wideband or multichannel audio (music,
    most likely): what it will lose, in one line; None otherwise."""
    from ncodec.io import audio_info

    if codec.sample_rate > 16000:
        return None
    channels, _, rate = audio_info(src)
    if rate <= 2 * codec.sample_rate and channels == 1:
        return None
    return (f"{PROG}: warning: {src}: {codec.name} is a {codec.sample_rate // 1000} kHz speech codec; this "
            f"{rate} Hz, {channels}-channel input (music?) loses everything above {codec.sample_rate // 2000} kHz, "
            f"and each channel costs the bitrate again")


def _cmd_encode(args: argparse.Namespace) -> int:
    import io

    from ncodec.io import AUDIO_SUFFIXES, AUDIO_TRACK_SUFFIXES, IMAGE_SUFFIXES, read_image

    jobs = _plan(args.paths[:-1], args.paths[-1], IMAGE_SUFFIXES + AUDIO_SUFFIXES, ".ncb", force=args.force)
    codecs: dict = {}

    def encode(src: Path, dst: Path) -> dict:
        if src != STDIO and src.suffix.lower() in AUDIO_SUFFIXES + AUDIO_TRACK_SUFFIXES:
            if dst == STDIO:
                raise ValueError(f"{src}: audio is coded to a file (bounded memory); name the output")
            codec = _codec_for(args, "audio", codecs)
            summary = codec.encode_file(src, dst, bitrate=args.bitrate, force=args.force)
            warning = _speech_warning(codec, src)  # after: a file that cannot be coded gets its error alone
            if warning:
                print(warning, file=sys.stderr)
            seconds = summary["samples"] / summary["sample_rate"]
            if len(jobs) == 1:
                print(f"{dst}: {8 * summary['bytes'] / 1000 / seconds:.2f} kbps measured ({summary['channels']} "
                      f"channel(s) at {summary['bitrate']:g} kbps nominal each), {seconds:.1f} s", file=sys.stderr)
            return {"bytes_in": src.stat().st_size, "bytes_out": summary["bytes"], "seconds": seconds}
        if args.bitrate is not None:
            raise ValueError(f"{src}: --bitrate is for audio; images take --quality")
        raw = _read_input(src)
        image = read_image(io.BytesIO(raw) if src == STDIO else src)
        codec = _codec_for(args, "image", codecs)
        data = codec.compress(image)
        _write_output(dst, data, args.force)
        return {"bytes_in": len(raw), "bytes_out": len(data), "pixels": image.shape[-1] * image.shape[-2]}

    return _run_jobs(jobs, encode, "encode", progress=not args.no_progress)


def _cmd_decode(args: argparse.Namespace) -> int:
    import io

    import ncodec
    from ncodec.codecs import container
    from ncodec.io import AUDIO_OUT_SUFFIXES, check_output, image_bytes

    output = args.paths[-1]
    jobs = _plan(args.paths[:-1], output, (".ncb",), ".png", force=args.force)
    auto_named = {dst for src, dst in jobs if dst == Path(output) / (src.stem + ".png")}

    def decode(src: Path, dst: Path) -> dict:
        data = _read_input(src) if src == STDIO else None
        with (io.BytesIO(data) if data is not None else open(src, "rb")) as f:
            # Header, trailer and index first (a few small reads): a file that is not a whole
            # container (a valid header followed by junk) is refused before it is read in.
            header = container.ContainerReader(f).header
        if header.modality == "audio":
            if src == STDIO or dst == STDIO:
                raise ValueError("audio decodes from and to named files (WAV/FLAC are written in bounded "
                                 "memory), not standard input or output")
            if dst.suffix.lower() not in AUDIO_OUT_SUFFIXES:
                if dst not in auto_named:
                    raise ValueError(f"{dst}: audio decodes to {' or '.join(AUDIO_OUT_SUFFIXES)}")
                dst = dst.with_suffix(".wav")
                check_output(dst, force=args.force)
            quality = header.meta.get("quality") if isinstance(header.meta, dict) else None
            try:
                codec = ncodec.load(args.weights or header.codec, quality if type(quality) is int else None,
                                    device=args.device, modality="audio", untrained=True)
            except ValueError as exc:
                raise BitstreamError(f"{src}: made by {header.codec!r}, which this ncodec cannot load: {exc}") from None
            summary = codec.decode_file(src, dst, force=args.force)
            return {"bytes_in": src.stat().st_size, "bytes_out": dst.stat().st_size,
                    "seconds": summary["samples"] / summary["sample_rate"]}
        data = data if data is not None else src.read_bytes()
        x_hat = ncodec.decompress(data, device=args.device, weights=args.weights)
        out = image_bytes(x_hat, ".png" if dst == STDIO else (dst.suffix or ".png"))
        _write_output(dst, out, args.force)
        return {"bytes_in": len(data), "bytes_out": len(out), "pixels": x_hat.shape[-1] * x_hat.shape[-2]}

    return _run_jobs(jobs, decode, "decode", progress=not args.no_progress)


def _add_encode(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("encode", help="compress images (PNG, JPEG) and audio (WAV, FLAC, OGG, MP3) to .ncb files",
                       description="Compress INPUT (a file, several files or directories) to OUTPUT "
                                   "(a file, or a directory ending in '/' or existing for several inputs; "
                                   "'-' is standard input/output for one image). Outputs are checked before "
                                   "any work; a batch goes on past bad files and ends with a summary.")
    p.add_argument("paths", nargs="+", metavar="INPUT... OUTPUT")
    p.add_argument("--codec", default=None,
                   help="codec name (see `ncodec models`), or a weights file / run folder from `ncodec train` "
                        "(default: the modality's default)")
    p.add_argument("--quality", type=positive_int, default=None, help="quality level (default: the codec's)")
    p.add_argument("--bitrate", type=float, default=None, metavar="KBPS",
                   help="audio: nominal bitrate in kbps per channel, one the codec offers (see `ncodec models`); "
                        "each channel is coded on its own, so a stereo file costs about twice; the measured "
                        "rate is printed after coding")
    p.add_argument("--device", type=device_type, default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing output files (only regular files: never links, FIFOs or devices)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (by default shown for batches when stderr is a terminal)")
    p.set_defaults(handler=_cmd_encode)


def _add_decode(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("decode", help="decompress .ncb files to PNG/JPEG (images) or WAV/FLAC (audio)",
                       description="Decompress INPUT (a .ncb file, several, or directories) to OUTPUT "
                                   "(a file, or a directory ending in '/' or existing for several inputs; "
                                   "'-' is standard input/output for one image file).")
    p.add_argument("paths", nargs="+", metavar="INPUT... OUTPUT")
    p.add_argument("--weights", default=None, metavar="PATH",
                   help="the weights file or run folder that made the files, if not a shipped codec")
    p.add_argument("--device", type=device_type, default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing output files (only regular files: never links, FIFOs or devices)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (by default shown for batches when stderr is a terminal)")
    p.set_defaults(handler=_cmd_decode)


# --------------------------------------------------------------------------- info / models

def _cmd_info(args: argparse.Namespace) -> int:
    from ncodec.codecs.container import ContainerReader

    with open(args.file, "rb") as f:
        summary = ContainerReader(f).summary()
    summary.update(measured_rate(summary["meta"], summary["file_size"]))
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


def _cmd_models(args: argparse.Namespace) -> int:
    def rates(info) -> str:
        # Nominal rates: bpp measured on the validation images at export, per quality;
        # audio: the bitrates (kbps) the qualities select.
        if info.modality == "audio":
            from ncodec.models.audio import ARCHITECTURES

            return " ".join(f"{q}:{b:g}kbps" for q, b in enumerate(ARCHITECTURES[info.name].bitrates, 1))
        return " ".join(f"{q}:{info.nominal_bpp[q]:.2f}" for q in info.qualities if q in info.nominal_bpp) or "-"

    def table(headers: tuple, rows: list) -> None:
        widths = [max(len(str(r[k])) for r in [headers, *rows]) for k in range(len(headers))]
        for row in [headers, tuple("-" * w for w in widths), *rows]:
            print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())

    codecs = ncodec.list_codecs()
    table(("codec", "modality", "qualities", "nominal rate (quality:rate)", "weights", "description"),
          [(i.name + (" (default)" if i.default else ""), i.modality,
            f"{min(i.qualities)}-{max(i.qualities)} (default {i.default_quality})", rates(i), i.weights,
            i.description) for i in codecs if i.trained])
    untrained = [i for i in codecs if not i.trained]
    if untrained:
        print()
        print("Architectures without trained weights here: load your own weights into them "
              "(--codec WEIGHTS, ncodec.load(path)); they are not codecs to pick by name.")
        table(("architecture", "modality", "qualities", "description"),
              [(i.name, i.modality, f"{min(i.qualities)}-{max(i.qualities)}", i.description) for i in untrained])
    return 0


def _add_models(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("models", help="list the shipped codecs and their qualities")
    p.set_defaults(handler=_cmd_models)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="ncodec: learned image, audio and video codecs over one exact, fast, safe bitstream."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {ncodec.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Both are light to import (no torch); torch loads when they run.
    from ncodec.eval.command import add_eval_parser
    from ncodec.train.command import add_train_parser

    for add in (_add_encode, _add_decode, _add_info, _add_models, _add_demo, add_train_parser, add_eval_parser):
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
