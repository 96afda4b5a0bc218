"""Run learned audio codecs and the classical audio baselines over a set of files, and write
the results.

:func:`evaluate_audio` codes every file at every bitrate of every codec and measures, per
file: the real rate from the whole file's bytes (``8 * bytes / seconds / 1000`` kbps,
container and headers included), PESQ-WB, STOI, SI-SDR, the multi-scale mel distance (see
:mod:`ncodec.eval.audio_metrics`), and the encode and decode wall-clock times with torch on
``threads`` CPU threads, also as real-time factors (audio seconds per second of work: 10
means ten times faster than real time). :func:`write_audio_report` writes into one folder:

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

Files are read whole (:func:`ncodec.io.read_audio`) and held in memory for the run. Learned
codecs get each file at its own sample rate; what they decode is resampled back to it if
needed and fitted to its length (cropped, or zero-padded: missing audio counts as lost).
Records come out in a fixed order: the codecs as given, then the baselines as given;
bitrates ascending; files in the order given.
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence, Union

import numpy as np
import torch

from ncodec.eval import audio_metrics
from ncodec.eval.audio_baselines import AUDIO_BASELINES, AudioBaseline, get_audio_baseline
from ncodec.eval.harness import csv_text, record_report, report_dir

__all__ = ["DEFAULT_AUDIO_BITRATES", "SUMMARY_HEADER", "AudioCodec", "AudioCurve", "AudioRecord", "AudioResults",
           "bd_rows", "evaluate_audio", "plot_audio_rd", "summary_markdown", "summary_rows", "write_audio_report"]

DEFAULT_AUDIO_BITRATES = (1.5, 3.0, 6.0, 12.0)  # kbps, when no codec says which
MEAN_KEYS = ("kbps", "payload_kbps", "pesq", "stoi", "si_sdr", "mel_distance", "encode_seconds", "decode_seconds")
RESULT_KEYS = MEAN_KEYS + ("rtf_encode", "rtf_decode")


class AudioCodec(Protocol):
    """What the harness needs of a learned audio codec (``ncodec.load(name)``)."""

    bitrates: tuple[float, ...]  # kbps
    sample_rate: int

    def compress(self, wav: torch.Tensor, sample_rate: int, *, bitrate: float) -> bytes: ...

    def decompress(self, data: bytes) -> tuple[torch.Tensor, int]: ...


@dataclass(frozen=True)
class AudioRecord:
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


@dataclass
class AudioCurve:
    """The records of one codec over its target bitrates.

    Attributes:
        key: output file stem: the ncodec codec name, or the baseline's name ("opus").
        name: display name ("ncodec NAME", "Opus").
        description: library, version and settings.
        learned: True for an ncodec codec, False for a baseline.
        bitrates: target bitrates in kbps, ascending.
        records: every (bitrate, file) record, bitrates ascending then files in order.
    """

    key: str
    name: str
    description: str
    learned: bool
    bitrates: list[float]
    records: list[AudioRecord] = field(default_factory=list)

    def summary(self) -> dict[str, list[float]]:
        """Per target bitrate: means over the files (NaN if some file has no finite value),
        and the real-time factors over the files' total audio and time."""
        out: dict[str, list[float]] = {k: [] for k in RESULT_KEYS}
        for b in self.bitrates:
            rows = [r for r in self.records if r.target_kbps == b]
            if not rows:
                raise ValueError(f"{self.key}: no records at {b:g} kbps")
            for key in MEAN_KEYS:
                values = [getattr(r, key) for r in rows]
                # A mean over only some files would pair with a rate over all of them.
                out[key].append(float(np.mean(values)) if all(math.isfinite(v) for v in values) else math.nan)
            seconds = sum(r.seconds for r in rows)
            out["rtf_encode"].append(_ratio(seconds, sum(r.encode_seconds for r in rows)))
            out["rtf_decode"].append(_ratio(seconds, sum(r.decode_seconds for r in rows)))
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``<key>.json`` document (non-finite values as None)."""
        results = {k: [v if math.isfinite(v) else None for v in vals] for k, vals in self.summary().items()}
        return {"name": self.name, "description": self.description, "target_kbps": list(self.bitrates),
                "results": results}


@dataclass
class AudioResults:
    """Everything :func:`evaluate_audio` measured: the learned codecs' curves, then the baselines'."""

    files: list[Path]
    curves: list[AudioCurve]
    threads: int

    @property
    def codecs(self) -> list[AudioCurve]:
        return [c for c in self.curves if c.learned]

    @property
    def baselines(self) -> list[AudioCurve]:
        return [c for c in self.curves if not c.learned]

    @property
    def records(self) -> list[AudioRecord]:
        return [r for c in self.curves for r in c.records]


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.inf


def _kbps(num_bytes: int, seconds: float) -> float:
    return 8.0 * num_bytes / seconds / 1000.0


def _fit(x: torch.Tensor, length: int) -> torch.Tensor:
    """Cropped, or zero-padded at the end, to ``length`` samples."""
    if x.shape[1] >= length:
        return x[:, :length]
    return torch.nn.functional.pad(x, (0, length - x.shape[1]))


def _measure(path: Path, key: str, x: torch.Tensor, y: torch.Tensor, sr: int) -> dict[str, float]:
    """The four quality metrics; one undefined for this file is NaN, with a warning saying why."""
    calls = {"pesq": lambda: audio_metrics.pesq_wb(x, y, sr), "stoi": lambda: audio_metrics.stoi(x, y, sr),
             "si_sdr": lambda: audio_metrics.si_sdr(x, y), "mel_distance": lambda: audio_metrics.mel_distance(x, y, sr)}
    out = {}
    for name, call in calls.items():
        try:
            out[name] = call()
        except ValueError as exc:
            warnings.warn(f"{path} ({key}): no {name}: {exc}", RuntimeWarning, stacklevel=2)
            out[name] = math.nan
    return out


def _record(path: Path, key: str, target: float, x: torch.Tensor, sr: int, y: torch.Tensor, data: bytes,
            payload: Optional[int], enc: float, dec: float) -> AudioRecord:
    seconds = x.shape[1] / sr
    return AudioRecord(file=str(path), codec=key, target_kbps=float(target), seconds=seconds, sample_rate=sr,
                       channels=x.shape[0], bytes=len(data), kbps=_kbps(len(data), seconds),
                       payload_kbps=math.nan if payload is None else _kbps(payload, seconds),
                       **_measure(path, key, x, y, sr), encode_seconds=enc, decode_seconds=dec,
                       rtf_encode=_ratio(seconds, enc), rtf_decode=_ratio(seconds, dec))


def _sync(device: torch.device) -> None:
    # CUDA kernels run asynchronously: wait for them so the timer measures the work.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CodecSpec = Union[str, AudioCodec]


def _load_codec(spec: CodecSpec, device: str) -> tuple[str, AudioCodec, str]:
    """(key, codec object, description) of a registry name or a codec object."""
    import ncodec

    if not isinstance(spec, str):
        name = str(getattr(spec, "name", type(spec).__name__))
        return name, spec, f"ncodec codec object {name}; kbps from whole files"
    from ncodec.codecs import registry

    info = registry.describe(spec)
    if info.modality != "audio":
        raise ValueError(f"codec {spec!r} is an {info.modality} codec; audio eval takes audio codecs")
    codec = ncodec.load(spec, device=device)
    desc = (f"ncodec {ncodec.__version__} {spec}, weights: {info.weights}; device {device}; "
            "kbps from whole files (container included)")
    return spec, codec, desc


def _codec_bitrates(key: str, codec: AudioCodec, wanted: Optional[Sequence[float]]) -> list[float]:
    have = [float(b) for b in getattr(codec, "bitrates", ())]
    if not wanted:
        if not have:
            raise ValueError(f"{key} lists no bitrates: give them (--bitrates)")
        return sorted(set(have))
    bad = [b for b in wanted if have and not any(math.isclose(b, h, rel_tol=1e-6) for h in have)]
    if bad:
        raise ValueError(f"{key} has bitrates {have} kbps, not {bad}")
    return sorted({float(b) for b in wanted})


def _run_codec(curve: AudioCurve, codec: AudioCodec, files: list[tuple[Path, torch.Tensor, int]],
               device: str, bar: Any) -> None:
    dev = torch.device(device)
    _, x0, sr0 = files[0]
    # One second first, so lazy set-up (kernels, tables) is not timed on file 1.
    codec.decompress(codec.compress(x0[:, :sr0], sr0, bitrate=curve.bitrates[0]))
    for b in curve.bitrates:
        for path, x, sr in files:
            bar.set_postfix_str(f"{curve.key} {b:g} kbps", refresh=False)
            _sync(dev)
            start = time.perf_counter()
            data = codec.compress(x, sr, bitrate=b)
            enc = time.perf_counter() - start
            start = time.perf_counter()
            y, rate = codec.decompress(data)
            _sync(dev)
            dec = time.perf_counter() - start
            y = torch.as_tensor(y).detach().float().cpu()
            y = y.unsqueeze(0) if y.dim() == 1 else y
            if y.dim() != 2 or y.shape[0] != x.shape[0]:
                raise RuntimeError(f"{curve.key} decoded {tuple(y.shape)} from {path}, expected {x.shape[0]} channels")
            if int(rate) != sr:
                import torchaudio.functional as AF

                y = AF.resample(y, int(rate), sr)
            curve.records.append(_record(path, curve.key, b, x, sr, _fit(y, x.shape[1]), bytes(data), None, enc, dec))
            bar.update(1)


def _run_baseline(curve: AudioCurve, baseline: AudioBaseline, files: list[tuple[Path, torch.Tensor, int]],
                  bar: Any) -> None:
    _, x0, sr0 = files[0]
    baseline.run(x0[:, :sr0], sr0, curve.bitrates[0])  # untimed warm-up
    for b in curve.bitrates:
        for path, x, sr in files:
            bar.set_postfix_str(f"{curve.key} {b:g} kbps", refresh=False)
            coded = baseline.run(x, sr, b)
            curve.records.append(_record(path, curve.key, b, x, sr, coded.decoded, coded.data, coded.payload_bytes,
                                         coded.encoding_time, coded.decoding_time))
            bar.update(1)


def evaluate_audio(files: Sequence[str | Path], codec_names: Optional[CodecSpec | Sequence[CodecSpec]],
                   bitrates: Optional[Sequence[float]] = None, baselines: Sequence[str] = AUDIO_BASELINES,
                   baseline_bitrates: Optional[Sequence[float]] = None, threads: int = 2, *,
                   device: str = "cpu", progress: Optional[bool] = None) -> AudioResults:
    """Code every file with each learned codec at each bitrate and with each baseline at each
    baseline bitrate, and measure each result.

    Args:
        files: audio files (see :func:`ncodec.io.read_audio`), coded in this order.
        codec_names: ncodec audio codec(s) by registry name, or codec objects with the
            :class:`AudioCodec` interface; None or empty to run only the baselines.
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
    from ncodec.io import read_audio

    paths = [Path(p) for p in files]
    if not paths:
        raise ValueError("no audio files to evaluate")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    coders = [get_audio_baseline(name) for name in dict.fromkeys(baselines)]
    specs = [codec_names] if isinstance(codec_names, str) or (codec_names is not None and not isinstance(
        codec_names, (list, tuple))) else list(codec_names or ())
    learned: list[tuple[AudioCurve, AudioCodec]] = []
    for spec in specs:
        key, codec, desc = _load_codec(spec, device)
        if any(c.key == key for c, _ in learned):
            continue
        learned.append((AudioCurve(key=key, name=f"ncodec {key}", description=desc, learned=True,
                                   bitrates=_codec_bitrates(key, codec, bitrates)), codec))
    if baseline_bitrates:
        base_rates = sorted({float(b) for b in baseline_bitrates})
    elif bitrates:
        base_rates = sorted({float(b) for b in bitrates})
    else:
        base_rates = sorted({b for c, _ in learned for b in c.bitrates}) or list(DEFAULT_AUDIO_BITRATES)
    if any(not b > 0 for b in base_rates):
        raise ValueError(f"bitrates must be positive, got {base_rates}")
    curves = [c for c, _ in learned] + [
        AudioCurve(key=b.name, name=b.label, description=b.describe(), learned=False, bitrates=list(base_rates))
        for b in coders]
    if not curves:
        raise ValueError("nothing to evaluate: no codec and no baselines")
    loaded = []
    for p in paths:  # all read first: a bad file fails before any work
        x, sr = read_audio(p)
        loaded.append((p, x, sr))

    from tqdm import tqdm

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        total = len(loaded) * sum(len(c.bitrates) for c in curves)
        with tqdm(total=total, desc="eval", unit="run", file=sys.stderr,
                  disable=None if progress is None else not progress) as bar:
            for curve, codec in learned:
                _run_codec(curve, codec, loaded, device, bar)
            for curve in curves[len(learned):]:
                _run_baseline(curve, next(b for b in coders if b.name == curve.key), loaded, bar)
    finally:
        torch.set_num_threads(previous)
    return AudioResults(files=paths, curves=curves, threads=threads)


# --------------------------------------------------------------------------- tables

SUMMARY_HEADER = ("codec", "target kbps", "kbps", "PESQ-WB", "STOI", "SI-SDR dB", "mel dist", "enc xRT", "dec xRT")


def _num(value: float, spec: str) -> str:
    return "-" if not math.isfinite(value) else format(value, spec)


def summary_rows(results: AudioResults) -> list[tuple[str, ...]]:
    """Rows under :data:`SUMMARY_HEADER`: per codec and target bitrate, the means as text."""
    rows = []
    for curve in results.curves:
        s = curve.summary()
        for i, b in enumerate(curve.bitrates):
            rows.append((curve.name, f"{b:g}", _num(s["kbps"][i], ".2f"), _num(s["pesq"][i], ".3f"),
                         _num(s["stoi"][i], ".3f"), _num(s["si_sdr"][i], ".2f"), _num(s["mel_distance"][i], ".3f"),
                         _num(s["rtf_encode"][i], ".1f"), _num(s["rtf_decode"][i], ".1f")))
    return rows


def _rd_points(curve: AudioCurve, key: str) -> tuple[list[float], list[float]]:
    """(kbps, metric) means with finite values, one point per distinct rate (targets below
    a codec's floor give the same file twice)."""
    s = curve.summary()
    points = {}
    for r, q in zip(s["kbps"], s[key]):
        if math.isfinite(r) and math.isfinite(q):
            points.setdefault(round(r, 9), q)
    ordered = sorted(points.items())
    return [p[0] for p in ordered], [p[1] for p in ordered]


def bd_rows(results: AudioResults) -> list[dict[str, Any]]:
    """Per learned codec and baseline: the BD-rate (%) of the codec against the baseline on
    PESQ-WB, a float, or a string saying why it is missing."""
    from ncodec.eval.bdrate import bd_rate

    rows = []
    for codec in results.codecs:
        rate_t, q_t = _rd_points(codec, "pesq")
        for base in results.baselines:
            rate_a, q_a = _rd_points(base, "pesq")
            try:
                value: float | str = bd_rate(rate_a, q_a, rate_t, q_t)
            except ValueError as exc:
                value = f"n/a: {exc}"
            rows.append({"codec": codec.key, "codec_name": codec.name, "baseline": base.key, "name": base.name,
                         "bd_rate_pesq": value})
    return rows


def summary_markdown(results: AudioResults) -> str:
    """The ``summary.md`` text: the table of means and the BD-rates on PESQ-WB."""
    lines = [f"# Audio rate-distortion: {len(results.files)} file(s)", "",
             f"Means over the files per target bitrate; kbps from whole files (container included); "
             f"real-time factors (xRT: audio seconds per second of work) with torch on {results.threads} thread(s).",
             "", "| " + " | ".join(SUMMARY_HEADER) + " |", "|" + "---|" * len(SUMMARY_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(results)]
    lines += ["", "## BD-rate on PESQ-WB", ""]
    if not results.codecs or not results.baselines:
        lines.append("No learned codec and baseline pair in this run: nothing to compare.")
    else:
        lines += ["BD-rate < 0: the learned codec needs fewer bits for the same PESQ-WB (PCHIP over log-rate, on "
                  "the PESQ interval both curves cover).", "",
                  "| codec | baseline | BD-rate (PESQ-WB) |", "|---|---|---|"]
        for row in bd_rows(results):
            v = row["bd_rate_pesq"]
            lines.append(f"| {row['codec_name']} | {row['name']} | "
                         f"{v.replace('|', '/') if isinstance(v, str) else f'{v:+.2f} %'} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- writing

def plot_audio_rd(results: AudioResults) -> bytes:
    """A PNG (bytes): PESQ-WB and STOI against kbps, one line per codec (baselines dashed).
    Drawn on matplotlib's Agg canvas directly, as :func:`ncodec.eval.plots.plot_rd`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5), dpi=120)
    FigureCanvasAgg(fig)
    for i, (key, label) in enumerate((("pesq", "PESQ-WB (MOS-LQO)"), ("stoi", "STOI"))):
        ax = fig.add_subplot(1, 2, i + 1)
        drawn = 0
        for curve in results.curves:
            xs, ys = _rd_points(curve, key)
            if xs:
                ax.plot(xs, ys, marker=".", linewidth=1.0, linestyle="-" if curve.learned else "--", label=curve.name)
                drawn += 1
        ax.set_xlabel("Bit-rate [kbps]")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.4)
        if drawn:
            ax.legend(loc="lower right", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"{', '.join(c.name for c in results.codecs) or 'baselines'} - {len(results.files)} file(s)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_audio_report(results: AudioResults, out_dir: str | Path) -> dict[str, Path]:
    """Write the JSON files, ``per_file.csv``, ``summary.md`` and ``rd.png`` into ``out_dir``
    (created if needed; files of the same names are replaced). Returns {what: path}, with
    one "json:<key>" entry per codec."""
    from ncodec.io import write_atomic

    out = report_dir(out_dir)
    paths: dict[str, Path] = {}
    for curve in results.curves:
        path = out / f"{curve.key}.json"
        write_atomic(path, (json.dumps(curve.to_json(), indent=2, allow_nan=False) + "\n").encode(), force=True)
        paths[f"json:{curve.key}"] = path
    paths["per_file"] = out / "per_file.csv"
    write_atomic(paths["per_file"], csv_text(results.records).encode(), force=True)
    paths["summary"] = out / "summary.md"
    write_atomic(paths["summary"], summary_markdown(results).encode(), force=True)
    paths["rd"] = out / "rd.png"
    write_atomic(paths["rd"], plot_audio_rd(results), force=True)
    record_report(out, paths)
    return paths
