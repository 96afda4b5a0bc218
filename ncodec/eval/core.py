"""The harness core: run learned codecs and classical baselines over inputs, for any modality.

:func:`evaluate` codes every input at every setting of every codec and baseline and keeps one
record per (codec, setting, input), grouped in :class:`Curve` s; :class:`Results` holds them.
Everything that depends on what the inputs are comes from the modality's
:class:`~ncodec.eval.plugin.EvalPlugin`: reading, settings, coding, metrics, baselines. Here
is only what every modality shares: loading codecs by name at each setting, an untimed
warm-up before each codec's timed runs, wall-clock timing (CUDA synchronised), the progress
bar, per-setting means, Bjøntegaard rows and the tables of means.

Records come out in a fixed order: the learned codecs as given, then the baselines as given;
settings ascending; inputs in the order given.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence, Union

import numpy as np

from ncodec.eval.plugin import BDColumn, Coded, EvalPlugin, SummaryColumn, get_eval_plugin
from ncodec.eval.results import Curve, Record, Results

__all__ = ["bd_rows", "bd_table", "evaluate", "markdown_table", "summary_header",
           "summary_markdown", "summary_rows", "summary_text", "text_table"]

CodecSpec = Union[str, os.PathLike, Any]
"""A learned codec: a registry name, a weights path, or a codec object."""


# --------------------------------------------------------------------------- learned codecs

def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _match(key: str, plugin: EvalPlugin, have: Sequence[float], wanted: Optional[Sequence[float]]) -> list[float]:
    """The settings to run: ``wanted`` (each matched to one the codec has), or all it has."""
    if not wanted:
        if not have:
            raise ValueError(f"{key} lists no {plugin.settings_noun}: give them ({plugin.setting_flag})")
        return sorted(set(have))
    out, bad = set(), []
    for w in wanted:
        same = [h for h in have if math.isclose(w, h, rel_tol=1e-6)]
        if have and not same:
            bad.append(w)
        out.add(same[0] if same else float(w))
    if bad:
        raise ValueError(f"{key} has {plugin.settings_noun} {list(have)}{plugin.settings_unit}, not {bad}")
    return sorted(out)


def _learned(plugin: EvalPlugin, spec: CodecSpec, wanted: Optional[Sequence[float]],
             device: str, options: Mapping[str, Any]) -> tuple[Curve, Callable[[float], Any]]:
    """A codec's (empty) curve and ``setting -> codec object`` (the last one kept loaded)."""
    import ncodec

    if not isinstance(spec, (str, os.PathLike)):
        key = str(getattr(spec, "name", type(spec).__name__))
        curve = Curve(key, f"ncodec {key}", f"ncodec codec object {key}; {plugin.rate_key} from whole files", True,
                      _match(key, plugin, plugin.object_settings(spec), wanted))
        return curve, lambda setting: spec
    from ncodec.codecs import registry

    info = registry.describe(spec)
    if info.modality != plugin.modality:
        raise ValueError(f"codec {os.fspath(spec)!r} is {_article(info.modality)} {info.modality} codec; "
                         f"{plugin.modality} inputs need {_article(plugin.modality)} {plugin.modality} codec")
    # A weights path's stem names its files: a path is no file name.
    key = os.fspath(spec) if not registry.is_weights_path(spec) else Path(spec).name.removesuffix(".safetensors")
    desc = (f"ncodec {ncodec.__version__} {info.name}, weights: {info.weights}; device {device}; "
            f"{plugin.rate_key} from whole files (container included)"
            + "".join(f"; {k} {v}" for k, v in options.items()))
    curve = Curve(key, f"ncodec {key}", desc, True, _match(key, plugin, plugin.codec_settings(info), wanted))
    loaded: dict[int, Any] = {}

    def codec_at(setting: float) -> Any:
        quality = plugin.codec_quality(info, setting)
        if quality not in loaded:
            loaded.clear()  # one model in memory at a time
            loaded[quality] = ncodec.load(spec, quality=quality, device=device)
            unknown = sorted(set(options) - set(getattr(loaded[quality], "encode_options", ())))
            if unknown:
                raise ValueError(f"{key} takes no {unknown[0]!r} option (its encode options: "
                                 f"{', '.join(loaded[quality].encode_options) or 'none'})")
        return loaded[quality]

    return curve, codec_at


def _sync(device: Any) -> None:
    # CUDA kernels run asynchronously: wait for them so the timer measures the work.
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _run_learned(plugin: EvalPlugin, curve: Curve, codec_at: Callable[[float], Any],
                 items: list[tuple[Path, Any]], device: str, bar: Any, options: Mapping[str, Any]) -> None:
    warmed: Any = None
    for s in curve.settings:
        codec = codec_at(s)
        if codec is not warmed:  # lazy set-up (kernels, tables) is not timed on input 1
            plugin.decode(codec, plugin.encode(codec, plugin.warm_up_media(items[0][1]), s, **options))
            warmed = codec
        for path, media in items:
            bar.set_postfix_str(f"{curve.key} {plugin.setting_text.format(s)}", refresh=False)
            _sync(device)
            start = time.perf_counter()
            data = plugin.encode(codec, media, s, **options)
            enc = time.perf_counter() - start
            start = time.perf_counter()
            decoded = plugin.decode(codec, data)
            _sync(device)
            dec = time.perf_counter() - start
            coded = Coded(bytes(data), plugin.decoded_media(decoded, media, curve.key, path), enc, dec)
            curve.records.append(plugin.record(curve.key, s, path, media, coded))
            bar.update(1)
    del warmed


def _run_baseline(plugin: EvalPlugin, curve: Curve, baseline: Any, items: list[tuple[Path, Any]], bar: Any) -> None:
    baseline.run(plugin.warm_up_media(items[0][1]), curve.settings[0])  # untimed warm-up
    for s in curve.settings:
        for path, media in items:
            bar.set_postfix_str(f"{curve.key} {plugin.setting_text.format(s)}", refresh=False)
            curve.records.append(plugin.record(curve.key, s, path, media, baseline.run(media, s)))
            bar.update(1)


def _specs(codecs: Optional[CodecSpec | Sequence[CodecSpec]]) -> list[CodecSpec]:
    if codecs is None:
        return []
    if isinstance(codecs, (str, os.PathLike)) or not isinstance(codecs, (list, tuple)):
        return [codecs]
    return list(codecs)


def evaluate(plugin: EvalPlugin | str, inputs: Sequence[str | Path],
             codecs: Optional[CodecSpec | Sequence[CodecSpec]] = None, settings: Optional[Sequence[float]] = None,
             baselines: Optional[Sequence[str]] = None,
             baseline_settings: Optional[Sequence[float] | Mapping[str, Sequence[float]]] = None, *,
             device: str = "cpu", threads: Optional[int] = None, progress: Optional[bool] = None,
             encode_options: Optional[Mapping[str, Any]] = None) -> Results:
    """Code every input with each learned codec at each setting and with each baseline at
    each of its settings, and measure each result with the plug-in's metrics.

    Args:
        plugin: the modality's plug-in, or its modality name.
        inputs: input files, coded in this order (all read before any coding).
        codecs: learned codec(s): registry names, weights paths or codec objects; None or
            empty to run only the baselines.
        settings: the codecs' settings (qualities, kbps, ...); None or empty for all they have.
        baselines: baseline names; None for the plug-in's defaults.
        baseline_settings: the baselines' settings, one list for all or ``{name: list}``;
            None for the plug-in's choice (:meth:`EvalPlugin.baseline_settings`).
        device: where the learned codecs run ("cpu", "cuda"); baselines run on the CPU.
        threads: torch CPU threads while coding (timings depend on it), restored after;
            None for the plug-in's default.
        progress: a progress bar on stderr; None shows it only on a terminal.
        encode_options: keyword options for every learned codec's ``compress`` (each must be
            among its ``encode_options``, e.g. ``{"effort": "fast"}`` for ``inr-image``).

    Raises:
        ValueError: no inputs, an unreadable input, an unknown or other-modality codec, a
            setting it does not have, or an unknown or unusable baseline (all checked before
            any coding).
    """
    plugin = get_eval_plugin(plugin) if isinstance(plugin, str) else plugin
    paths = [Path(p) for p in inputs]
    if not paths:
        raise ValueError(f"no {plugin.input_noun}s to evaluate")
    threads = plugin.default_threads if threads is None else threads
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    names = plugin.default_baselines if baselines is None else baselines
    coders = [plugin.baseline(name) for name in dict.fromkeys(names)]
    learned: list[tuple[Curve, Callable[[float], Any]]] = []
    for spec in _specs(codecs):
        curve, codec_at = _learned(plugin, spec, settings, device, dict(encode_options or {}))
        if all(c.key != curve.key for c, _ in learned):
            learned.append((curve, codec_at))
    ran = sorted({s for c, _ in learned for s in c.settings})
    curves = [c for c, _ in learned]
    for b in coders:
        wanted = baseline_settings.get(b.name) if isinstance(baseline_settings, Mapping) else baseline_settings
        curves.append(Curve(b.name, b.label, b.describe(), False, plugin.baseline_settings(b, wanted, settings, ran)))
    if not curves:
        raise ValueError("nothing to evaluate: no codec and no baselines")
    items = [(p, plugin.read(p)) for p in paths]  # all read first: a bad file fails before any work

    import torch
    from tqdm import tqdm

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        total = len(items) * sum(len(c.settings) for c in curves)
        with tqdm(total=total, desc="eval", unit="run", file=sys.stderr,
                  disable=None if progress is None else not progress) as bar:
            for curve, codec_at in learned:
                _run_learned(plugin, curve, codec_at, items, device, bar, dict(encode_options or {}))
            for curve, coder in zip(curves[len(learned):], coders):
                _run_baseline(plugin, curve, coder, items, bar)
    finally:
        torch.set_num_threads(previous)
    return Results(inputs=paths, curves=curves, threads=threads, modality=plugin.modality)


# --------------------------------------------------------------------------- BD-rate

def _points(curve: Curve, rate_key: str, column: BDColumn) -> tuple[list[float], list[float]] | str:
    """(rates, qualities) of a curve for one BD figure, or why there are none."""
    s = curve.summary()
    rates = s[rate_key]
    values = [column.to_scale(v) if column.to_scale and not math.isnan(v) else v for v in s[column.metric]]
    if not column.skip_missing:
        if any(math.isnan(v) for v in s[column.metric] + rates):
            return column.missing
        return rates, values
    points: dict[float, float] = {}
    for r, q in zip(rates, values):
        if math.isfinite(r) and math.isfinite(q):
            points.setdefault(round(r, 9), q)  # a setting below a codec's floor repeats a file
    ordered = sorted(points.items())
    return [p[0] for p in ordered], [p[1] for p in ordered]


def _bd(column: BDColumn, rate_key: str, anchor: Curve, test: Curve) -> float | str:
    from ncodec.eval.bdrate import bd_psnr, bd_rate

    a, t = _points(anchor, rate_key, column), _points(test, rate_key, column)
    if isinstance(a, str) or isinstance(t, str):
        return a if isinstance(a, str) else t
    try:
        return (bd_rate if column.delta == "rate" else bd_psnr)(a[0], a[1], t[0], t[1])
    except ValueError as exc:
        return f"n/a: {exc}"


def bd_rows(results: Results, plugin: EvalPlugin) -> list[dict[str, Any]]:
    """Per learned codec and baseline: ``codec``, ``codec_name``, ``baseline``, ``name`` and
    each of the plug-in's BD figures (a float, or a string saying why it is missing)."""
    rows = []
    for codec in results.codecs:
        for base in results.baselines:
            row: dict[str, Any] = {"codec": codec.key, "codec_name": codec.name, "baseline": base.key,
                                   "name": base.name}
            for column in plugin.bd_columns:
                row[column.name] = _bd(column, plugin.rate_key, base, codec)
            rows.append(row)
    return rows


def _bd_text(value: float | str, unit: str) -> str:
    return value.replace("|", "/") if isinstance(value, str) else f"{value:+.2f}{unit}"


def bd_table(results: Results, plugin: EvalPlugin) -> list[str]:
    """Markdown lines: a row per (learned codec, baseline) with the plug-in's BD figures."""
    header = ["codec", "baseline", *[c.label for c in plugin.bd_columns]]
    rows = [[r["codec_name"], r["name"], *[_bd_text(r[c.name], c.unit) for c in plugin.bd_columns]]
            for r in bd_rows(results, plugin)]
    return markdown_table(header, rows)


# --------------------------------------------------------------------------- tables

def _num(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def summary_rows(results: Results, plugin: EvalPlugin,
                 columns: Optional[Sequence[SummaryColumn]] = None) -> list[tuple[str, ...]]:
    """Per curve and setting: name, setting and the ``columns`` (default: the plug-in's
    summary columns), as text."""
    rows = []
    for curve in results.curves:
        s = curve.summary()
        for i, setting in enumerate(curve.settings):
            rows.append((curve.name, f"{setting:g}",
                         *[_num(c.scale * s[c.key][i], c.spec) for c in columns or plugin.summary_columns]))
    return rows


def summary_header(plugin: EvalPlugin, columns: Optional[Sequence[SummaryColumn]] = None) -> tuple[str, ...]:
    """The header of :func:`summary_rows`."""
    return ("codec", plugin.setting_label, *[c.header for c in columns or plugin.summary_columns])


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> list[str]:
    """Aligned plain-text lines; the first ``left`` columns left-aligned, the others right."""
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    return ["  ".join(v.ljust(w) if k < left else v.rjust(w) for k, (v, w) in enumerate(zip(r, widths))).rstrip()
            for r in [header, *rows]]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Markdown table lines."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(row) + " |" for row in rows]


def summary_text(results: Results, plugin: EvalPlugin, columns: Optional[Sequence[SummaryColumn]] = None) -> str:
    """The printed summary: per codec and setting the means (``columns``, default the
    plug-in's), then each learned codec's BD-rates against each baseline."""
    lines = text_table(summary_header(plugin, columns), summary_rows(results, plugin, columns))
    rate_columns = [c for c in plugin.bd_columns if c.delta == "rate"]
    rows = bd_rows(results, plugin)
    for codec in results.codecs if rate_columns and results.baselines else ():
        lines += ["", f"BD-rate of {codec.name} (negative = fewer bits):"]
        for row in (r for r in rows if r["codec"] == codec.key):
            lines.append(f"  vs {row['name']}: " + "; ".join(f"{c.short} {_bd_text(row[c.name], c.unit)}"
                                                             for c in rate_columns))
    return "\n".join(lines)


def summary_markdown(results: Results, plugin: EvalPlugin, title: Optional[str] = None, note: str = "") -> str:
    """A ``summary.md``: the table of means, then the BD figures (when there is a codec and a
    baseline); ``note`` is a paragraph under the title."""
    n = len(results.inputs)
    lines = [title or f"# {plugin.modality.capitalize()} rate-distortion: {n} {plugin.input_noun}(s)", ""]
    if note:
        lines += [note, ""]
    lines += markdown_table(summary_header(plugin), summary_rows(results, plugin))
    lines += ["", f"## BD-rate ({', '.join(c.short for c in plugin.bd_columns)})", ""]
    if not results.codecs or not results.baselines or not plugin.bd_columns:
        lines.append("No learned codec and baseline pair in this run: nothing to compare.")
    else:
        lines += ["BD-rate < 0: the learned codec needs fewer bits for the same quality (PCHIP over log-rate, "
                  "on the quality interval both curves cover).", ""]
        lines += bd_table(results, plugin)
    return "\n".join(lines) + "\n"
