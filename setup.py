"""Build of ncodec's C++ range coder (ext/) as the extension module ncodec._coder.

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
        )
    ],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
