"""Entropy coding: the range coder's Python API, CDF tables, entropy stages and models.

Every ncodec codec turns its symbols into bytes through an entropy stage
(:mod:`ncodec.entropy.stage`: Gaussian, factorized, categorical; :mod:`ncodec.entropy.laplace`;
:mod:`ncodec.entropy.logits`: per-symbol fixed-point logits),
which drives the range coder (:mod:`ncodec.entropy.coder`: the table convention and the
stream's guarantees).
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
from ncodec.entropy.laplace import LaplaceStage, laplace_scales, laplace_table
from ncodec.entropy.logits import LogitStage, logits_to_cdfs
from ncodec.entropy.stage import (
    CategoricalStage,
    CdfTable,
    EntropyStage,
    FactorizedStage,
    GaussianStage,
    StageReader,
    StageWriter,
    gaussian_table,
)

__all__ = [
    "CategoricalStage",
    "CdfTable",
    "DEFAULT_LANE_SIZE",
    "EntropyStage",
    "FactorizedStage",
    "GaussianStage",
    "LaplaceStage",
    "LogitStage",
    "PRECISION",
    "STREAM_VERSION",
    "RangeDecoder",
    "RangeEncoder",
    "StageReader",
    "StageWriter",
    "decode",
    "decode_with_cdfs",
    "encode",
    "encode_with_cdfs",
    "gaussian_table",
    "laplace_scales",
    "laplace_table",
    "logits_to_cdfs",
    "pmf_to_quantized_cdf",
]
