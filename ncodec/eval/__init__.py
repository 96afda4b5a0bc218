"""Evaluation: quality metrics, classical baselines, BD-rate, RD plots and ``ncodec eval``.

- :mod:`ncodec.eval.metrics`: PSNR-RGB, MS-SSIM, bpp (CompressAI's conventions).
- :mod:`ncodec.eval.baselines`: JPEG, WebP, AVIF, JPEG 2000 (Pillow), JPEG XL (imagecodecs).
- :mod:`ncodec.eval.bdrate`: Bjøntegaard delta rate and PSNR (PCHIP).
- :mod:`ncodec.eval.plots`: rate-distortion plots (PNG).
- :mod:`ncodec.eval.harness`: :func:`~ncodec.eval.harness.evaluate` and the written report.
- :mod:`ncodec.eval.command`: the ``ncodec eval`` subcommand.
"""
