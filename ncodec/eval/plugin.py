"""Eval plug-ins: what the harness needs to know of one modality, and their registry.

The harness core (:mod:`ncodec.eval.core`) runs codecs over inputs and writes reports without
knowing what the inputs are. An :class:`EvalPlugin` supplies the rest for one modality (a name
registered in :mod:`ncodec.io.modality`): how to read an input file, a codec's settings (image
qualities, audio bitrates), how to code one input at a setting, the metrics of (original,
decoded) and which of them the BD-rate and the plot use, the classical baselines, and the
report's file names and columns. ``ncodec eval`` picks the plug-in of its inputs' modality
(:func:`ncodec.io.modality.modality_for_path`, then :func:`get_eval_plugin`).

Plug-ins register by modality name (:func:`register_eval_plugin`). On first lookup the module
``ncodec.eval.<modality>`` of every registered modality is imported (ncodec's own:
:mod:`ncodec.eval.image`, :mod:`ncodec.eval.audio`), and every module named by an
``ncodec.eval`` entry point of an installed distribution
(:func:`ncodec.io.modality.load_modality_modules`): nothing lists them. A test or a script
may register one directly.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, Protocol, Sequence

if TYPE_CHECKING:
    from ncodec.codecs.base import Codec, Decoded
    from ncodec.codecs.registry import CodecInfo
    from ncodec.eval.results import Curve, Results

__all__ = ["BDColumn", "BaselineCoder", "Coded", "EvalPlugin", "Panel", "SummaryColumn", "eval_plugins",
           "get_eval_plugin", "parse_names", "register_eval_plugin", "unregister_eval_plugin"]


@dataclass(frozen=True)
class Coded:
    """One input coded and decoded at one setting.

    Attributes:
        data: the whole file's bytes (container and headers included: what a user stores).
        decoded: the decoded media, in the form the plug-in's metrics take (the input's form).
        encode_seconds, decode_seconds: wall-clock seconds of each call.
        payload_bytes: the codec's packets alone, where a baseline's container says (else None).
    """

    data: bytes
    decoded: Any
    encode_seconds: float
    decode_seconds: float
    payload_bytes: Optional[int] = None


class BaselineCoder(Protocol):
    """A classical codec as the core runs it (plug-ins adapt their baseline classes to this)."""

    name: str   # output key ("jpeg", "opus")
    label: str  # display name ("JPEG", "Opus")

    def describe(self) -> str:
        """Library, version and settings, for the report."""

    def run(self, media: Any, setting: float) -> Coded:
        """Encode then decode ``media`` at ``setting``, timing each call."""


@dataclass(frozen=True)
class SummaryColumn:
    """A column of the tables of per-setting means (printed summary and markdown).

    Attributes:
        header: column title ("PSNR dB").
        key: the summary key it shows ("psnr-rgb").
        spec: format spec of a value (".2f").
        scale: factor applied before formatting (1e3 for seconds shown in ms).
    """

    header: str
    key: str
    spec: str = ".3f"
    scale: float = 1.0


@dataclass(frozen=True)
class BDColumn:
    """One Bjøntegaard figure of a learned codec against a baseline.

    Attributes:
        name: key in :func:`ncodec.eval.core.bd_rows`' rows ("bd_rate_psnr").
        label: table header ("BD-rate (PSNR-RGB)").
        metric: summary key of the quality ("psnr-rgb"; higher is better).
        short: name in the printed summary ("PSNR").
        delta: "rate" for BD-rate in %, "quality" for BD-quality in the metric's unit.
        unit: printed after the value (" %", " dB").
        to_scale: maps each mean before fitting (MS-SSIM to dB), or None.
        skip_missing: drop points without a finite value (and repeated rates) and fit the rest;
            otherwise a missing value makes the figure ``missing``.
        missing: the text given when a value is missing and not skipped.
    """

    name: str
    label: str
    metric: str
    short: str
    delta: str = "rate"
    unit: str = " %"
    to_scale: Optional[Callable[[float], float]] = None
    skip_missing: bool = False
    missing: str = "n/a: missing values"


@dataclass(frozen=True)
class Panel:
    """A panel of ``rd.png``: a summary key against the rate.

    Attributes:
        key: summary key drawn ("pesq").
        label: y-axis label ("PESQ-WB (MOS-LQO)").
        to_scale: maps each value before drawing (MS-SSIM to dB), or None.
        empty: text shown when no curve has a point.
    """

    key: str
    label: str
    to_scale: Optional[Callable[[float], float]] = None
    empty: str = "no values"


class EvalPlugin(ABC):
    """What ``ncodec eval`` needs to know of one modality.

    Class attributes (the report's and the CLI's vocabulary):
        modality: the registered modality it evaluates ("image").
        input_noun: one input, singular ("image", "audio file").
        setting_flag: the ``ncodec eval`` option that gives the codec's settings
            ("--qualities" or "--bitrates").
        baseline_setting_flag: the option that gives the baselines' settings, or None when the
            baselines sweep their own ("--baseline-bitrates").
        setting_label: a setting's column title ("quality", "target kbps").
        setting_text: format of one setting in progress bars ("q={:g}", "{:g} kbps").
        settings_noun: the settings in messages ("qualities", "bitrates").
        settings_unit: their unit in messages ("", " kbps").
        settings_key: the JSON key of a curve's settings ("qualities", "target_kbps").
        rate_key: the summary key of the rate ("bpp", "kbps").
        rate_label: the plot's x-axis label ("Bit-rate [bpp]").
        default_baselines: baselines run when none are named.
        default_threads: torch CPU threads while coding when none are given (None: leave as is).
        records_file: name of the per-record CSV ("per_file.csv").
        summary_columns, bd_columns, plot_panels: what the tables, BD-rates and plot show.
    """

    modality: ClassVar[str]
    input_noun: ClassVar[str] = "file"
    setting_flag: ClassVar[str] = "--qualities"
    baseline_setting_flag: ClassVar[Optional[str]] = None
    setting_label: ClassVar[str] = "quality"
    setting_text: ClassVar[str] = "q={:g}"
    settings_noun: ClassVar[str] = "qualities"
    settings_unit: ClassVar[str] = ""
    settings_key: ClassVar[str] = "qualities"
    rate_key: ClassVar[str]
    rate_label: ClassVar[str] = "rate"
    default_baselines: ClassVar[tuple[str, ...]] = ()
    default_threads: ClassVar[Optional[int]] = None
    records_file: ClassVar[str] = "per_file.csv"
    summary_columns: ClassVar[tuple[SummaryColumn, ...]] = ()
    bd_columns: ClassVar[tuple[BDColumn, ...]] = ()
    plot_panels: ClassVar[tuple[Panel, ...]] = ()

    def with_options(self, **options: Any) -> "EvalPlugin":
        """This plug-in configured by its modality's ``ncodec eval`` options (video: ``frames``,
        ``gop``), as a copy; a plug-in without options refuses any (ValueError naming it)."""
        if options:
            raise ValueError(f"--{sorted(options)[0]} is not an option of {self.modality} evaluation")
        return self

    # ------------------------------------------------------------------ inputs

    @abstractmethod
    def read(self, path: Path) -> Any:
        """The media of one input file, as :meth:`encode` and the baselines take it;
        ValueError naming the file if it cannot be read."""

    def warm_up_media(self, media: Any) -> Any:
        """A small input coded untimed before the timed runs of a codec or baseline (so that
        lazy set-up is not timed on the first input); by default the input itself."""
        return media

    # ------------------------------------------------------------------ codecs

    def codec_settings(self, info: "CodecInfo") -> list[float]:
        """Every setting of a registered codec, ascending (default: its qualities)."""
        return sorted(info.qualities)

    def object_settings(self, codec: Any) -> list[float]:
        """Every setting of a codec object given instead of a name (default: its quality)."""
        return [codec.quality]

    def codec_quality(self, info: "CodecInfo", setting: float) -> int:
        """The quality to load for ``setting`` (default: the setting is the quality)."""
        return int(setting)

    def encode(self, codec: "Codec", media: Any, setting: float, **options: Any) -> bytes:
        """One input coded at ``setting`` into an ncodec file (default: ``codec.compress(media,
        **options)``; ``options``: the codec's encode options, e.g. an overfitted codec's effort)."""
        return codec.compress(media, **options)

    def decode(self, codec: "Codec", data: bytes) -> "Decoded":
        """A file decoded (default: ``codec.decompress(data)``)."""
        return codec.decompress(data)

    @abstractmethod
    def decoded_media(self, decoded: "Decoded", media: Any, key: str, path: Path) -> Any:
        """What ``codec`` decoded, as the metrics take it beside ``media`` (on the CPU, the
        input's shape); RuntimeError naming ``key`` and ``path`` if it cannot match."""

    # ------------------------------------------------------------------ measuring

    @abstractmethod
    def record(self, key: str, setting: float, path: Path, media: Any, coded: Coded) -> Any:
        """The record of one coded input: an instance of a dataclass derived from
        :class:`ncodec.eval.results.Record` (its fields are the CSV's columns), with the metrics
        of (``media``, ``coded.decoded``)."""

    # ------------------------------------------------------------------ baselines

    def baseline_names(self) -> Sequence[str]:
        """Every baseline this plug-in offers."""
        return ()

    def parse_baselines(self, text: str | Sequence[str]) -> list[str]:
        """``"a,b"`` (or a list) -> baseline names; ``"none"`` or empty -> ``[]``; unknown
        names raise ValueError."""
        return parse_names(text, list(self.baseline_names()), f"{self.modality} baseline")

    def baseline(self, name: str) -> BaselineCoder:
        """The baseline ``name``, checked usable here (ValueError naming what is missing)."""
        known = ", ".join(self.baseline_names()) or "none"
        raise ValueError(f"unknown {self.modality} baseline {name!r}; known: {known}")

    def baseline_settings(self, baseline: BaselineCoder, wanted: Optional[Sequence[float]],
                          codec_wanted: Optional[Sequence[float]], learned: Sequence[float]) -> list[float]:
        """The settings a baseline runs at: ``wanted`` (given for the baselines), else
        its own sweep (a ``qualities`` attribute), else the codecs' settings."""
        if wanted:
            return sorted({float(v) for v in wanted})
        own = getattr(baseline, "qualities", None)
        if own:
            return list(own)
        if codec_wanted or learned:
            return sorted({float(v) for v in (codec_wanted or learned)})
        raise ValueError(f"baseline {baseline.name}: no settings to run it at")

    # ------------------------------------------------------------------ report

    def curve_json(self, curve: "Curve") -> dict[str, Any]:
        """The ``<key>.json`` document of a curve: name, description, per-setting means
        (non-finite values as null) and its settings under :attr:`settings_key`."""
        results = {k: [v if math.isfinite(v) else None for v in vals] for k, vals in curve.summary().items()}
        return {"name": curve.name, "description": curve.description, "results": results,
                self.settings_key: list(curve.settings)}

    def markdown(self, results: "Results") -> Optional[dict[str, str]]:
        """``{file name: text}`` of the report's markdown files, or None for the standard
        ``summary.md`` (the table of means and the BD-rates, written by the report)."""
        return None


def parse_names(text: str | Sequence[str], known: Sequence[str], what: str = "baseline") -> list[str]:
    """``"a,b"`` (or a list) -> ``["a", "b"]`` (lower-cased); ``"none"`` or empty -> ``[]``.
    Names not in ``known`` raise ValueError naming ``what``; duplicates are dropped, the order kept."""
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip().lower() for n in names if n.strip()]
    if names == ["none"]:
        return []
    for n in names:
        if n not in known:
            raise ValueError(f"unknown {what} {n!r}; known: {', '.join(known)} (or none)")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------- registry

ENTRY_POINT_GROUP = "ncodec.eval"
"""Installed distributions may name modules that register eval plug-ins under this group."""
_PLUGINS: dict[str, EvalPlugin] = {}
_LOADED = False


def register_eval_plugin(plugin: EvalPlugin) -> None:
    """Make ``ncodec eval`` evaluate inputs of ``plugin.modality`` with ``plugin``.

    Raises:
        ValueError: another plug-in (of another class) is registered for that modality.
    """
    old = _PLUGINS.get(plugin.modality)
    if old is not None and type(old) is not type(plugin):
        raise ValueError(f"an eval plug-in for {plugin.modality!r} is registered twice")
    _PLUGINS[plugin.modality] = plugin


def unregister_eval_plugin(modality: str) -> None:
    """Remove the plug-in of ``modality`` (tests and scripts that registered one)."""
    _PLUGINS.pop(modality, None)


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from ncodec.io.modality import load_modality_modules

    try:
        load_modality_modules(__package__, ENTRY_POINT_GROUP)  # each module registers its plug-in
    except BaseException:
        _LOADED = False  # a later call tries again and raises the same error
        raise


def eval_plugins() -> list[EvalPlugin]:
    """Every registered plug-in, in the order registered (the default modality's first)."""
    _load()
    return list(_PLUGINS.values())


def get_eval_plugin(modality: str) -> EvalPlugin:
    """The plug-in of ``modality``; ValueError naming the known ones if there is none."""
    _load()
    if modality not in _PLUGINS:
        raise ValueError(f"ncodec eval has no plug-in for {modality} inputs; it evaluates "
                         f"{', '.join(_PLUGINS) or 'nothing'}")
    return _PLUGINS[modality]
