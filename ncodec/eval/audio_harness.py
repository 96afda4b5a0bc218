"""Audio evaluation from Python: thin entry points into the harness core with the audio plug-in.

:func:`evaluate_audio` codes audio files with learned codecs and with Opus and MP3
(:mod:`ncodec.eval.audio` says what is measured and what the report holds);
:func:`write_audio_report` writes the report. The machinery is :mod:`ncodec.eval.core` and
:mod:`ncodec.eval.report`, shared with every modality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from ncodec.eval import core, report
from ncodec.eval.audio import DEFAULT_AUDIO_BITRATES, PLUGIN, AudioRecord
from ncodec.eval.audio_baselines import AUDIO_BASELINES
from ncodec.eval.results import Curve, Results

__all__ = ["DEFAULT_AUDIO_BITRATES", "AudioCurve", "AudioRecord", "AudioResults", "bd_rows", "evaluate_audio",
           "summary_markdown", "write_audio_report"]

AudioCurve = Curve
AudioResults = Results


def evaluate_audio(files: Sequence[str | Path], codec_names: Any, bitrates: Optional[Sequence[float]] = None,
                   baselines: Sequence[str] = AUDIO_BASELINES, baseline_bitrates: Optional[Sequence[float]] = None,
                   threads: int = 2, *, device: str = "cpu", progress: Optional[bool] = None) -> Results:
    """Code every file with each learned codec at each bitrate and with each baseline at each
    baseline bitrate, and measure each result.

    Args:
        files: audio files (see :func:`ncodec.io.read_audio`), coded in this order.
        codec_names: ncodec audio codec(s) by registry name or weights path, or codec
            objects (``compress(wav, sample_rate, bitrate=kbps)``, ``decompress(data) ->
            Decoded``, ``bitrates``); None or empty to run only the baselines.
        bitrates: the codecs' target bitrates in kbps; None or empty for all each codec has.
        baselines: baseline names (:data:`ncodec.eval.audio_baselines.AUDIO_BASELINES`).
        baseline_bitrates: the baselines' targets in kbps; None for ``bitrates``, or, if
            that is None too, the codecs' bitrates (else :data:`DEFAULT_AUDIO_BITRATES`).
        threads: torch CPU threads while coding (timings depend on it); restored after.
        device: where the learned codecs run ("cpu", "cuda"); baselines run on the CPU.
        progress: a progress bar on stderr; None shows it only on a terminal.

    Raises:
        ValueError: no files, an unreadable file, an unknown or non-audio codec, a bitrate
            the codec does not have, or an unknown baseline (checked before any coding).
    """
    return core.evaluate(PLUGIN, files, codec_names, bitrates, list(baselines), baseline_bitrates, device=device,
                         threads=threads, progress=progress)


def write_audio_report(results: Results, out_dir: str | Path) -> dict[str, Path]:
    """Write the JSON files, ``per_file.csv``, ``summary.md`` and ``rd.png`` into ``out_dir``
    (created if needed; files of the same names are replaced). Returns {what: path}, with
    one "json:<key>" entry per codec."""
    return report.write_report(results, out_dir, PLUGIN)


def summary_markdown(results: Results) -> str:
    """The ``summary.md`` text: the table of means and the BD-rates on PESQ-WB."""
    return PLUGIN.markdown(results)["summary.md"]


def bd_rows(results: Results) -> list[dict]:
    """Per learned codec and baseline: the BD-rate (%) on PESQ-WB (``bd_rate_pesq``), a
    float, or a string saying why it is missing."""
    return core.bd_rows(results, PLUGIN)
