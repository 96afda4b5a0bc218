"""What an evaluation measured: records of one input at one setting, curves of a codec over
its settings, and the results of a run (the data the harness core produces and the plug-ins
and the report read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Sequence

import numpy as np

__all__ = ["Curve", "Record", "Results"]


class Record:
    """Base of the plug-ins' record dataclasses: one input coded at one setting.

    A subclass is a frozen dataclass whose fields are the per-record CSV's columns. It names
    the field that holds the setting (``setting_field``) and the means of a setting
    (``means``: summary key -> field); :meth:`summarize` may add more (ratios).
    """

    setting_field: ClassVar[str] = "quality"
    means: ClassVar[Mapping[str, str]] = {}

    @property
    def setting(self) -> float:
        """The setting this record was coded at."""
        return getattr(self, self.setting_field)

    @classmethod
    def summarize(cls, rows: Sequence["Record"]) -> dict[str, float]:
        """Means over the inputs of one setting; a key whose values are not all finite is
        NaN or inf as numpy's mean gives it (a mean over some inputs would pair with a rate
        over all of them)."""
        return {key: float(np.mean([getattr(r, name) for r in rows])) for key, name in cls.means.items()}


@dataclass
class Curve:
    """The records of one codec over its settings.

    Attributes:
        key: output file stem: the codec's name, or the baseline's ("jpeg").
        name: display name ("ncodec elic-gdn-vr", "JPEG").
        description: library, version and settings.
        learned: True for an ncodec codec, False for a baseline.
        settings: ascending.
        records: every (setting, input) record, settings ascending then inputs in order.
    """

    key: str
    name: str
    description: str
    learned: bool
    settings: list[float]
    records: list[Any] = field(default_factory=list)

    def summary(self) -> dict[str, list[float]]:
        """Per setting, the means over the inputs (the record type's :meth:`Record.summarize`)."""
        out: dict[str, list[float]] = {}
        for s in self.settings:
            rows = [r for r in self.records if r.setting == s]
            if not rows:
                raise ValueError(f"{self.key}: no records at setting {s:g}")
            for key, value in type(rows[0]).summarize(rows).items():
                out.setdefault(key, []).append(value)
        return out


@dataclass
class Results:
    """Everything :func:`evaluate` measured: the learned codecs' curves, then the baselines'.

    Attributes:
        inputs: the input files, in order.
        curves: one per codec and baseline.
        threads: torch CPU threads while coding (None: left as it was).
        modality: the plug-in's modality.
    """

    inputs: list[Path]
    curves: list[Curve]
    threads: Optional[int] = None
    modality: str = ""

    @property
    def codec(self) -> Optional[Curve]:
        """The (first) learned codec's curve (None if the run had none)."""
        return next((c for c in self.curves if c.learned), None)

    @property
    def codecs(self) -> list[Curve]:
        return [c for c in self.curves if c.learned]

    @property
    def baselines(self) -> list[Curve]:
        return [c for c in self.curves if not c.learned]

    @property
    def records(self) -> list[Any]:
        return [r for c in self.curves for r in c.records]
