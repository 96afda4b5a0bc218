"""Entropy coding: the range coder's Python API, CDF tables, and (later) entropy models.

Every ncodec codec turns its symbols into bytes through these functions; see
:mod:`ncodec.entropy.coder` for the table convention and the guarantees.
"""

from ncodec.entropy.coder import (
    DEFAULT_LANE_SIZE,
    PRECISION,
    STREAM_VERSION,
    RangeDecoder,
    RangeEncoder,
    decode,
    decode_with_cdfs,
    encode,
    encode_with_cdfs,
    pmf_to_quantized_cdf,
)

__all__ = [
    "DEFAULT_LANE_SIZE",
    "PRECISION",
    "STREAM_VERSION",
    "RangeDecoder",
    "RangeEncoder",
    "decode",
    "decode_with_cdfs",
    "encode",
    "encode_with_cdfs",
    "pmf_to_quantized_cdf",
]
