"""Evaluation: one harness for every modality, with a plug-in per modality, and ``ncodec eval``.

The core (modality-agnostic):

- :mod:`ncodec.eval.plugin`: :class:`~ncodec.eval.plugin.EvalPlugin`, what a modality supplies,
  and the plug-in registry (:func:`~ncodec.eval.plugin.register_eval_plugin`).
- :mod:`ncodec.eval.core`: :func:`~ncodec.eval.core.evaluate` (curves of records over settings,
  timing, warm-up, progress), per-setting means, BD-rate rows, summary tables.
- :mod:`ncodec.eval.report`: the report folder, its manifest, JSON/CSV/plot/markdown files.
- :mod:`ncodec.eval.plots`: rate-distortion plots (PNG).
- :mod:`ncodec.eval.bdrate`: Bjøntegaard delta rate and quality (PCHIP).
- :mod:`ncodec.eval.command`: the ``ncodec eval`` subcommand; :mod:`ncodec.eval.demo`: ``ncodec demo``.

The plug-ins and what they use:

- :mod:`ncodec.eval.image`: images; :mod:`ncodec.eval.image_metrics` (PSNR-RGB, MS-SSIM, bpp)
  and :mod:`ncodec.eval.image_baselines` (JPEG, WebP, AVIF, JPEG 2000, JPEG XL).
- :mod:`ncodec.eval.audio`: audio; :mod:`ncodec.eval.audio_metrics` (PESQ-WB, STOI, SI-SDR, mel
  distance) and :mod:`ncodec.eval.audio_baselines` (Opus, MP3).
- Each plug-in module also gives the Python entry points ``evaluate`` and ``write_report``
  (``ncodec.eval.image.evaluate(...)``, ``ncodec.eval.audio.evaluate(...)``).

:mod:`ncodec.eval.portability` checks that files decode alike under other CPU settings.
"""
