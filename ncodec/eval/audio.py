"""The audio plug-in of the eval harness: learned audio codecs against Opus and MP3.

Per file and target bitrate it measures the real rate from the whole file's bytes (``8 *
bytes / seconds / 1000`` kbps, container and headers included), PESQ-WB, STOI, SI-SDR, the
multi-scale mel distance (:mod:`ncodec.eval.audio_metrics`), and the encode and decode
wall-clock times, also as real-time factors (audio seconds per second of work: 10 means ten
times faster than real time; torch on 2 CPU threads unless told otherwise). A codec's
settings are its bitrates in kbps (``CodecInfo.rates``); one model codes every bitrate.

Files are read whole (:func:`ncodec.io.read_audio`). Learned codecs get each file at its own
sample rate; what they decode is resampled back to it if needed and fitted to its length
(cropped, or zero-padded: missing audio counts as lost). The report holds:

- ``<key>.json`` per codec (the ncodec codec's name, ``opus``, ``mp3``)::

      {"name": str, "description": str, "target_kbps": [kbps per entry],
       "results": {"kbps": [...], "payload_kbps": [...], "pesq": [...], "stoi": [...],
                   "si_sdr": [dB], "mel_distance": [...], "encode_seconds": [s],
                   "decode_seconds": [s], "rtf_encode": [x], "rtf_decode": [x]}}

  One entry per target bitrate (ascending): the mean over the files, except the real-time
  factors, which are total audio seconds over total seconds of work. A mean is null when
  some file has no finite value (PESQ or STOI on a file without speech, SI-SDR of an exact
  copy: inf). ``payload_kbps`` counts the baselines' codec packets alone (null for ncodec
  codecs, whose file is the payload plus a few header bytes).
- ``per_file.csv``: one row per (codec, target bitrate, file).
- ``summary.md``: the table of means, then the BD-rate of each ncodec codec against each
  baseline on PESQ-WB (rates from whole files).
- ``rd.png``: PESQ-WB and STOI against kbps, one line per codec.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Sequence

import numpy as np

from ncodec.eval.audio_baselines import AUDIO_BASELINES, get_audio_baseline
from ncodec.eval import core, report
from ncodec.eval.core import summary_markdown
from ncodec.eval.results import Record, Results
from ncodec.eval.plugin import BDColumn, Coded, EvalPlugin, Panel, SummaryColumn, register_eval_plugin

if TYPE_CHECKING:
    import torch

    from ncodec.codecs.base import Codec, Decoded
    from ncodec.codecs.registry import CodecInfo

__all__ = ["DEFAULT_AUDIO_BITRATES", "AudioPlugin", "AudioRecord", "Clip", "bd_rows", "evaluate", "write_report"]

DEFAULT_AUDIO_BITRATES = (1.5, 3.0, 6.0, 12.0)  # kbps, for baselines when no codec says which
MEAN_KEYS = ("kbps", "payload_kbps", "pesq", "stoi", "si_sdr", "mel_distance", "encode_seconds", "decode_seconds")


class Clip(NamedTuple):
    """An audio input: float32 ``[C, T]`` in about [-1, 1] at ``sample_rate`` Hz."""

    wav: "torch.Tensor"
    sample_rate: int


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.inf


def _kbps(num_bytes: int, seconds: float) -> float:
    return 8.0 * num_bytes / seconds / 1000.0


@dataclass(frozen=True)
class AudioRecord(Record):
    """One file coded at one target bitrate. Rates in kbps (1000 bit/s), times in seconds,
    real-time factors as audio seconds per second of work; a metric that is undefined for
    the file (see :mod:`ncodec.eval.audio_metrics`) is NaN."""

    file: str
    codec: str
    target_kbps: float
    seconds: float
    sample_rate: int
    channels: int
    bytes: int
    kbps: float
    payload_kbps: float
    pesq: float
    stoi: float
    si_sdr: float
    mel_distance: float
    encode_seconds: float
    decode_seconds: float
    rtf_encode: float
    rtf_decode: float

    setting_field = "target_kbps"

    @classmethod
    def summarize(cls, rows: Sequence["AudioRecord"]) -> dict[str, float]:
        """Means over the files (NaN if some file has no finite value), and the real-time
        factors over the files' total audio and time."""
        out = {}
        for key in MEAN_KEYS:
            values = [getattr(r, key) for r in rows]
            out[key] = float(np.mean(values)) if all(math.isfinite(v) for v in values) else math.nan
        seconds = sum(r.seconds for r in rows)
        out["rtf_encode"] = _ratio(seconds, sum(r.encode_seconds for r in rows))
        out["rtf_decode"] = _ratio(seconds, sum(r.decode_seconds for r in rows))
        return out


def _measure(path: Path, key: str, x: "torch.Tensor", y: "torch.Tensor", sr: int) -> dict[str, float]:
    """The four quality metrics; one undefined for this file is NaN, with a warning saying why."""
    from ncodec.eval import audio_metrics as am

    calls = {"pesq": lambda: am.pesq_wb(x, y, sr), "stoi": lambda: am.stoi(x, y, sr),
             "si_sdr": lambda: am.si_sdr(x, y), "mel_distance": lambda: am.mel_distance(x, y, sr)}
    out = {}
    for name, call in calls.items():
        try:
            out[name] = call()
        except ValueError as exc:
            warnings.warn(f"{path} ({key}): no {name}: {exc}", RuntimeWarning, stacklevel=2)
            out[name] = math.nan
    return out


class _Baseline:
    """A classical audio codec (:mod:`ncodec.eval.audio_baselines`) on :class:`Clip` s."""

    def __init__(self, name: str):
        self.baseline = get_audio_baseline(name)
        self.name, self.label = self.baseline.name, self.baseline.label

    def describe(self) -> str:
        return self.baseline.describe()

    def run(self, media: Clip, setting: float) -> Coded:
        coded = self.baseline.run(media.wav, media.sample_rate, setting)
        return Coded(coded.data, coded.decoded, coded.encoding_time, coded.decoding_time, coded.payload_bytes)


class AudioPlugin(EvalPlugin):
    """Audio: :class:`Clip` in, kbps, PESQ-WB, STOI, SI-SDR and mel distance out."""

    modality = "audio"
    input_noun = "audio file"
    setting_flag = "--bitrates"
    baseline_setting_flag = "--baseline-bitrates"
    setting_label = "target kbps"
    setting_text = "{:g} kbps"
    settings_noun = "bitrates"
    settings_unit = " kbps"
    settings_key = "target_kbps"
    rate_key = "kbps"
    rate_label = "Bit-rate [kbps]"
    default_baselines = AUDIO_BASELINES
    default_threads = 2
    records_file = "per_file.csv"
    summary_columns = (SummaryColumn("kbps", "kbps", ".2f"), SummaryColumn("PESQ-WB", "pesq", ".3f"),
                       SummaryColumn("STOI", "stoi", ".3f"), SummaryColumn("SI-SDR dB", "si_sdr", ".2f"),
                       SummaryColumn("mel dist", "mel_distance", ".3f"),
                       SummaryColumn("enc xRT", "rtf_encode", ".1f"), SummaryColumn("dec xRT", "rtf_decode", ".1f"))
    bd_columns = (BDColumn("bd_rate_pesq", "BD-rate (PESQ-WB)", "pesq", "PESQ-WB", skip_missing=True),)
    plot_panels = (Panel("pesq", "PESQ-WB (MOS-LQO)"), Panel("stoi", "STOI"))

    def read(self, path: Path) -> Clip:
        from ncodec.io import read_audio

        return Clip(*read_audio(path))

    def warm_up_media(self, media: Clip) -> Clip:
        return Clip(media.wav[:, :media.sample_rate], media.sample_rate)  # one second

    def codec_settings(self, info: "CodecInfo") -> list[float]:
        return sorted(float(b) for b in info.rates.values())

    def object_settings(self, codec: Any) -> list[float]:
        return [float(b) for b in getattr(codec, "bitrates", ())]

    def codec_quality(self, info: "CodecInfo", setting: float) -> int:
        return info.default_quality  # one model codes every bitrate: load it once

    def encode(self, codec: "Codec", media: Clip, setting: float, **options: Any) -> bytes:
        return codec.compress(media.wav, media.sample_rate, bitrate=setting, **options)

    def decoded_media(self, decoded: "Decoded", media: Clip, key: str, path: Path) -> "torch.Tensor":
        import torch

        x, sr = media
        y = decoded.tensor.detach().float().cpu()
        y = y.unsqueeze(0) if y.dim() == 1 else y
        if y.dim() != 2 or y.shape[0] != x.shape[0]:
            raise RuntimeError(f"{key} decoded {tuple(y.shape)} from {path}, expected {x.shape[0]} channels")
        rate = int(decoded.sample_rate or sr)
        if rate != sr:
            import torchaudio.functional as AF

            y = AF.resample(y, rate, sr)
        n = x.shape[1]
        return y[:, :n] if y.shape[1] >= n else torch.nn.functional.pad(y, (0, n - y.shape[1]))

    def record(self, key: str, setting: float, path: Path, media: Clip, coded: Coded) -> AudioRecord:
        x, sr = media
        seconds = x.shape[1] / sr
        payload = coded.payload_bytes
        return AudioRecord(file=str(path), codec=key, target_kbps=float(setting), seconds=seconds, sample_rate=sr,
                           channels=x.shape[0], bytes=len(coded.data), kbps=_kbps(len(coded.data), seconds),
                           payload_kbps=math.nan if payload is None else _kbps(payload, seconds),
                           **_measure(path, key, x, coded.decoded, sr), encode_seconds=coded.encode_seconds,
                           decode_seconds=coded.decode_seconds, rtf_encode=_ratio(seconds, coded.encode_seconds),
                           rtf_decode=_ratio(seconds, coded.decode_seconds))

    def baseline_names(self) -> Sequence[str]:
        return AUDIO_BASELINES

    def parse_baselines(self, text: str | Sequence[str]) -> list[str]:
        from ncodec.eval.audio_baselines import parse_audio_baselines

        return parse_audio_baselines(text)

    def baseline(self, name: str) -> _Baseline:
        return _Baseline(name)

    def baseline_settings(self, baseline: Any, wanted: Optional[Sequence[float]],
                          codec_wanted: Optional[Sequence[float]], learned: Sequence[float]) -> list[float]:
        """``wanted`` (--baseline-bitrates), else the codecs' requested bitrates, else the
        bitrates they ran at, else :data:`DEFAULT_AUDIO_BITRATES`."""
        rates = sorted({float(b) for b in (wanted or codec_wanted or learned or DEFAULT_AUDIO_BITRATES)})
        if any(not b > 0 for b in rates):
            raise ValueError(f"bitrates must be positive, got {rates}")
        return rates

    def markdown(self, results: Results) -> dict[str, str]:
        note = (f"Means over the files per target bitrate; kbps from whole files (container included); "
                f"real-time factors (xRT: audio seconds per second of work) with torch on {results.threads} "
                f"thread(s).")
        title = f"# Audio rate-distortion: {len(results.inputs)} file(s)"
        return {"summary.md": summary_markdown(results, self, title=title, note=note)}


PLUGIN = AudioPlugin()
register_eval_plugin(PLUGIN)


# --------------------------------------------------------------------------- from Python

def evaluate(files: Sequence[str | Path], codec_names: Any, bitrates: Optional[Sequence[float]] = None,
             baselines: Sequence[str] = AUDIO_BASELINES, baseline_bitrates: Optional[Sequence[float]] = None,
             threads: int = 2, *, device: str = "cpu", progress: Optional[bool] = None) -> Results:
    """Code every file with each learned codec at each bitrate and with each baseline at each
    baseline bitrate, and measure each result (``ncodec eval`` from Python).

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


def write_report(results: Results, out_dir: str | Path) -> dict[str, Path]:
    """Write the JSON files, ``per_file.csv``, ``summary.md`` and ``rd.png`` into ``out_dir``
    (created if needed; files of the same names are replaced). Returns {what: path}, with
    one "json:<key>" entry per codec."""
    return report.write_report(results, out_dir, PLUGIN)


def bd_rows(results: Results) -> list[dict]:
    """Per learned codec and baseline: the BD-rate (%) on PESQ-WB (``bd_rate_pesq``), a
    float, or a string saying why it is missing."""
    return core.bd_rows(results, PLUGIN)
