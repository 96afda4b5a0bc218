"""The ``ncodec`` command line.

Subcommands (this release): ``demo``. Later releases add ``encode``, ``decode``, ``info``,
``models``, ``eval`` and ``train``: each subcommand is a ``_add_<name>`` function that
registers its parser and sets ``handler`` to a ``_cmd_<name>(args) -> int`` function.

Errors that come from the user's input or environment (a bad stream, a bad value, a file
that cannot be read or written) print one line on stderr and exit with status 1; no
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

import ncodec
from ncodec.errors import BitstreamError

PROG = "ncodec"


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


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
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="coder threads (default: all CPUs this process may use)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the figures to PATH as JSON")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (by default shown only when stderr is a terminal)")
    p.set_defaults(handler=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="ncodec: learned image, audio and video codecs over one exact, fast, safe bitstream."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {ncodec.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(sub)
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
