"""Build of ncodec's C++ extensions (ext/): the range coder as ncodec._coder, and the inr-image
fit's fused rate term as ncodec._inr_fit.

The coder core is header-only (ext/range_coder.h) so the CUDA build of a later release can
include the same arithmetic; this file only compiles the CPU bindings.
"""
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

setup(
    ext_modules=[
        CppExtension(
            name="ncodec._coder",
            sources=["ext/coder.cpp"],
            depends=["ext/range_coder.h", "ext/stream_format.h"],
            # No -march=native: wheels must run on any x86-64; no FP contraction so CDF
            # quantisation rounds identically on every machine.
            extra_compile_args=["-O3", "-ffp-contract=off"],
        ),
        CppExtension(
            name="ncodec._inr_fit",
            sources=["ext/inr_fit.cpp"],
            # The inr-image fit's rate term (encoder only: no symbol's probability comes from
            # it), so FMA contraction is allowed; one clone per x86 level, picked at load time.
            extra_compile_args=["-O3"],
        ),
    ],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
