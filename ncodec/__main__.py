"""``python -m ncodec``: the same command line as the ``ncodec`` console script."""

from ncodec.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
