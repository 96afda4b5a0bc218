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


def _plan(inputs: Sequence[str], output: str, in_suffixes: Sequence[str], out_suffix: str) -> list[tuple[Path, Path]]:
    """(source, destination) pairs: one file to one file, or many into the OUTPUT directory."""
    if not inputs:
        raise ValueError("give one or more INPUT paths and then the OUTPUT path")
    files = _expand(inputs, in_suffixes)
    out = Path(output)
    single = len(inputs) == 1 and len(files) == 1 and not Path(inputs[0]).is_dir()
    if single and not out.is_dir() and not output.endswith(("/", "\\")):
        jobs = [(files[0], out)]
    else:
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: several inputs need an output directory, this is a file")
        jobs = [(f, out / (f.stem + out_suffix)) for f in files]
        names = [dst for _, dst in jobs]
        if len(set(names)) != len(names):
            raise ValueError("two inputs would write the same output name; give them distinct names")
    for src, dst in jobs:
        if dst.resolve() == src.resolve():
            raise ValueError(f"{src}: output would overwrite the input")
    return jobs


def _run_jobs(jobs: list[tuple[Path, Path]], work: Callable[[Path, Path], None], what: str) -> None:
    """Runs work(src, dst) for every job, with a progress bar when there are several."""
    from tqdm import tqdm

    for src, dst in tqdm(jobs, desc=what, unit="file", disable=len(jobs) < 2, file=sys.stderr):
        work(src, dst)


def _codec_for(args: argparse.Namespace, modality: str, cache: dict):
    """The codec that codes ``modality`` inputs: ``--codec`` if it is one of that modality,
    else the modality's default (one instance per modality and run)."""
    import ncodec
    from ncodec.codecs import registry

    if modality not in cache:
        name = None
        if args.codec is not None:
            info = registry.codec_info(args.codec)
            if info.modality != modality:
                raise ValueError(f"codec {args.codec} codes {info.modality}, this input is {modality}")
            name = args.codec
        cache[modality] = ncodec.load(name, args.quality, device=args.device, modality=modality)
    return cache[modality]


def _cmd_encode(args: argparse.Namespace) -> int:
    from ncodec.io import AUDIO_SUFFIXES, IMAGE_SUFFIXES, read_image, write_atomic

    jobs = _plan(args.paths[:-1], args.paths[-1], IMAGE_SUFFIXES + AUDIO_SUFFIXES, ".ncb")
    codecs: dict = {}

    def encode(src: Path, dst: Path) -> None:
        if src.suffix.lower() in AUDIO_SUFFIXES:
            codec = _codec_for(args, "audio", codecs)
            codec.encode_file(src, dst, bitrate=args.bitrate, force=args.force)
            return
        if args.bitrate is not None:
            raise ValueError(f"{src}: --bitrate is for audio; images take --quality")
        codec = _codec_for(args, "image", codecs)
        write_atomic(dst, codec.compress(read_image(src)), force=args.force)

    _run_jobs(jobs, encode, "encode")
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    import ncodec
    from ncodec.codecs import container
    from ncodec.io import AUDIO_OUT_SUFFIXES, image_bytes, write_atomic

    output = args.paths[-1]
    jobs = _plan(args.paths[:-1], output, (".ncb",), ".png")
    auto_named = {dst for src, dst in jobs if dst == Path(output) / (src.stem + ".png")}

    def decode(src: Path, dst: Path) -> None:
        with open(src, "rb") as f:
            header = container.read_header(f)
        if header.modality == "audio":
            if dst.suffix.lower() not in AUDIO_OUT_SUFFIXES:
                if dst not in auto_named:
                    raise ValueError(f"{dst}: audio decodes to {' or '.join(AUDIO_OUT_SUFFIXES)}")
                dst = dst.with_suffix(".wav")
            quality = header.meta.get("quality") if isinstance(header.meta, dict) else None
            try:
                codec = ncodec.load(header.codec, quality if isinstance(quality, int) else None, device=args.device)
            except ValueError as exc:
                raise BitstreamError(f"{src}: made by {header.codec!r}, which this ncodec cannot load: {exc}") from None
            codec.decode_file(src, dst, force=args.force)
            return
        x_hat = ncodec.decompress(src.read_bytes(), device=args.device)
        write_atomic(dst, image_bytes(x_hat, dst.suffix or ".png"), force=args.force)

    _run_jobs(jobs, decode, "decode")
    return 0


def _add_encode(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("encode", help="compress images (PNG, JPEG) and audio (WAV, FLAC, OGG, MP3) to .ncb files",
                       description="Compress INPUT (a file, several files or directories) to OUTPUT "
                                   "(a file, or a directory for several inputs).")
    p.add_argument("paths", nargs="+", metavar="INPUT... OUTPUT")
    p.add_argument("--codec", default=None, help="codec name (see `ncodec models`; default: the modality's default)")
    p.add_argument("--quality", type=positive_int, default=None, help="quality level (default: the codec's)")
    p.add_argument("--bitrate", type=float, default=None, metavar="KBPS",
                   help="audio: nominal bitrate in kbps, one the codec offers (see `ncodec models`)")
    p.add_argument("--device", type=device_type, default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=_cmd_encode)


def _add_decode(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("decode", help="decompress .ncb files to PNG/JPEG (images) or WAV/FLAC (audio)",
                       description="Decompress INPUT (a .ncb file, several, or directories) to OUTPUT.")
    p.add_argument("paths", nargs="+", metavar="INPUT... OUTPUT")
    p.add_argument("--device", type=device_type, default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=_cmd_decode)


# --------------------------------------------------------------------------- info / models

def _cmd_info(args: argparse.Namespace) -> int:
    from ncodec.codecs.container import ContainerReader

    with open(args.file, "rb") as f:
        summary = ContainerReader(f).summary()
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

    rows = [(i.name + (" (default)" if i.default else ""), i.modality,
             f"{min(i.qualities)}-{max(i.qualities)} (default {i.default_quality})", rates(i), i.weights,
             i.description)
            for i in ncodec.list_codecs()]
    headers = ("codec", "modality", "qualities", "nominal rate (quality:rate)", "weights", "description")
    widths = [max(len(str(r[k])) for r in [headers, *rows]) for k in range(len(headers))]
    for row in [headers, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
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
