"""Exceptions raised by ncodec."""


class BitstreamError(ValueError):
    """A stream or file is malformed, truncated, corrupted, or not for this model.

    Raised by the entropy coder and (later) the container parser instead of producing
    garbage. It subclasses ValueError so that code catching bad input in general catches
    it too.
    """
