"""ncodec: learned image, audio and video codecs over one exact, fast and safe bitstream."""

__version__ = "0.1.0"

from ncodec.errors import BitstreamError  # noqa: E402

__all__ = ["BitstreamError", "__version__"]
