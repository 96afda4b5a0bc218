"""Modalities: what kinds of media ncodec codes, and what the shared tools need to know of each.

A :class:`Modality` says which input files belong to it (by suffix), which files its decoder
writes, and how to state a file's real rate from its header. The CLI (``encode``, ``decode``,
``info``), :mod:`ncodec.eval` and :func:`ncodec.decompress` read modalities here instead of
branching on their names: a new modality registers itself (:func:`register_modality`) from its
own io module (``ncodec/io/<modality>.py``, imported on first use, like every module of this
package) or from a plug-in's codec module, and every shared tool serves it.

Light by design: nothing here (nor in the modality io modules' declarations) imports torch,
so ``ncodec info`` and argument checks stay fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

__all__ = ["DEFAULT_MODALITY", "load_modality_modules", "Modality", "get_modality", "modalities", "modality_for_path", "register_modality", "unregister_modality"]


@dataclass(frozen=True)
class Modality:
    """A kind of media.

    Attributes:
        name: the header's ``modality`` value (``"image"``, ``"audio"``).
        input_suffixes: lower-case suffixes of the files ``ncodec encode`` / ``eval`` take.
        output_suffixes: suffixes its decoder writes; the first is the default.
        rate_unit: the unit of its rates (``"bpp"``, ``"kbps"``).
        rate_basis: ``meta -> amount`` that a file's bits are divided by for its rate (pixels
            for bpp, seconds for kbps), from the header's meta; None when it does not say.
        rate_divisor: bits per unit of the rate's numerator (1 for bpp, 1000 for kbps).
        streams_only: its files are coded from and to named files only (no stdin/stdout),
            e.g. audio, which is coded in bounded memory.
        also_reads: suffixes it can read but does not claim (an audio track in a video
            file): used when no modality claims the suffix in its ``input_suffixes``.
    """

    name: str
    input_suffixes: tuple[str, ...]
    output_suffixes: tuple[str, ...]
    rate_unit: str
    rate_basis: Callable[[dict], Optional[float]]
    rate_divisor: float = 1.0
    streams_only: bool = False
    also_reads: tuple[str, ...] = ()

    def accepts(self, path: str | os.PathLike) -> bool:
        """Whether a file of this name is an input of this modality (by its suffix)."""
        return Path(path).suffix.lower() in self.input_suffixes

    def basis(self, meta: object) -> Optional[float]:
        """:attr:`rate_basis` of a header's meta, or None (also for a meta that is not an
        object or a basis that is not a positive number)."""
        try:
            amount = self.rate_basis(meta) if isinstance(meta, dict) else None
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
        return float(amount) if isinstance(amount, (int, float)) and amount > 0 else None

    def measured_rate(self, meta: object, size: int) -> dict[str, float]:
        """``{rate_unit: rate}`` that a file of ``size`` bytes really costs (container
        included); ``{}`` when its meta does not say enough."""
        amount = self.basis(meta)
        if amount is None:
            return {}
        return {self.rate_unit: round(8 * size / self.rate_divisor / amount, 4)}


DEFAULT_MODALITY = "image"
"""The modality of ``ncodec.load()`` with no name or modality, and of unnamed inputs."""
_MODALITIES: dict[str, Modality] = {}


def register_modality(modality: Modality) -> None:
    """Add a modality: the CLI, ``ncodec eval`` and :func:`ncodec.decompress` serve it from then on."""
    if modality.name in _MODALITIES and _MODALITIES[modality.name] != modality:
        raise ValueError(f"modality {modality.name!r} is registered twice")
    clash = [m.name for m in _MODALITIES.values() if m.name != modality.name
             and set(m.input_suffixes) & set(modality.input_suffixes)]
    if clash:
        raise ValueError(f"modality {modality.name!r} claims input suffixes of {clash[0]!r}")
    _MODALITIES[modality.name] = modality


def unregister_modality(name: str) -> None:
    """Remove a modality added by :func:`register_modality` (tests and plug-ins)."""
    _MODALITIES.pop(name, None)


_LOADED = False


def _ensure_loaded() -> None:
    # Each ncodec.io module of a modality registers it when imported: import them all, once.
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):  # this package's modules
        importlib.import_module(f"{__package__}.{module.name}")


def modalities() -> list[Modality]:
    """Every registered modality, by name."""
    _ensure_loaded()
    return sorted(_MODALITIES.values(), key=lambda m: m.name)


def get_modality(name: str) -> Modality:
    """The modality ``name``; ValueError naming the known ones if there is none (a plug-in's
    modality is known once its codec module is imported, e.g. by the codec registry)."""
    _ensure_loaded()
    if name not in _MODALITIES:
        raise ValueError(f"unknown modality {name!r}; known: {', '.join(sorted(_MODALITIES))}")
    return _MODALITIES[name]


def modality_for_path(path: str | os.PathLike) -> Optional[Modality]:
    """The modality whose inputs have this file's suffix (else one that also reads it), or None."""
    known = modalities()
    suffix = Path(path).suffix.lower()
    return next((m for m in known if m.accepts(path)), None) or next((m for m in known if suffix in m.also_reads), None)


def load_modality_modules(package: str, entry_point_group: Optional[str] = None) -> list[str]:
    """Import ``<package>.<modality>`` for every registered modality that has one (the default
    modality first, then by name), and every module an installed distribution names under
    ``entry_point_group``: how a layer (``ncodec.train``, ``ncodec.eval``) finds its
    per-modality modules without listing them. Returns the modules imported.

    Raises:
        ImportError: a module that exists fails to import (a missing one is skipped).
    """
    import importlib
    import importlib.util

    names = sorted((m.name for m in modalities()), key=lambda n: (n != DEFAULT_MODALITY, n))
    loaded = []
    for name in names:
        module = f"{package}.{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
            loaded.append(module)
    if entry_point_group:
        from importlib.metadata import entry_points

        for point in entry_points(group=entry_point_group):
            importlib.import_module(point.value)
            loaded.append(point.value)
    return loaded
