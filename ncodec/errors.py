"""Exceptions raised by ncodec."""


class BitstreamError(ValueError):
    """A stream or file is malformed, truncated, corrupted, or not for this model.

    Raised by the entropy coder (including its symbol check: a decoder whose entropy
    parameters differ from the encoder's), the container parser and the codecs' header
    checks, instead of producing garbage. It subclasses ValueError so that code catching
    bad input in general catches it too.
    """
