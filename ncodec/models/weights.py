"""Model weights as safetensors files, for every modality: export and load, no pickles.

A weights file holds a model's ``state_dict`` (float parameters in fp16 or fp32, buffers
exact: entropy tables, code counts, fixed-point gains) and string metadata: ``format`` (which
kind of model, e.g. ``ncodec-image-weights-v1``), ``arch`` (its architecture), ``training``
(JSON: how it was trained) and what its format adds (an image model's quality, N and M).
Loading never rebuilds what was exported, so tables and fingerprints are the same on every
machine and device.

Each model family describes its files once, as a :class:`WeightsFormat` registered by its
module (:mod:`ncodec.models.image`, :mod:`ncodec.models.audio`); :func:`export_weights`,
:func:`read_metadata` and :func:`load_weights` serve every format. A file of format
``ncodec-<kind>-weights-v<n>`` whose module is not imported yet is served by importing
``ncodec.models.<kind>``.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

__all__ = ["WeightsFormat", "export_weights", "load_weights", "read_any_metadata", "read_metadata",
           "register_weights_format", "round_half"]

FORMAT = "ncodec-image-weights-v1"
"""Image models' format (kept as a name: files carry it)."""
AUDIO_FORMAT = "ncodec-audio-weights-v1"
"""Audio models' format."""


def _nothing(*_args: Any) -> None:
    return None


@dataclass(frozen=True)
class WeightsFormat:
    """How one family of models is stored.

    Attributes:
        name: the metadata ``format`` value.
        architectures: the ``arch`` names it stores (to pick the format at export).
        build: ``metadata -> model``: an untrained model of the file's architecture and size.
        metadata: ``(arch, quality) -> extra metadata`` written at export (strings), e.g. N, M.
        before_export: ``model -> None``, run on the fp16-rounded model before its state is
            taken (e.g. rebuilding entropy tables from the rounded parameters).
        skip: suffixes of state keys that are training state, not written.
        complete: ``(model, state) -> filled keys``: fills ``state`` (as read) with what the
            file does not store (the skipped keys, or buffers added since), before it is loaded.
        after_load: ``(model, filled_keys) -> None``, run after loading.
    """

    name: str
    architectures: Callable[[], Mapping[str, Any]]
    build: Callable[[dict[str, str]], nn.Module]
    metadata: Callable[[str, Optional[int]], dict[str, str]] = lambda arch, quality: {}
    before_export: Callable[[nn.Module], None] = _nothing
    skip: tuple[str, ...] = ()
    complete: Callable[[nn.Module, dict[str, torch.Tensor]], list[str]] = lambda model, state: []
    after_load: Callable[[nn.Module, list[str]], None] = _nothing


_FORMATS: dict[str, WeightsFormat] = {}
_FORMAT_NAME = re.compile(r"ncodec-([a-z][a-z0-9_]*)-weights-v\d+")


def register_weights_format(fmt: WeightsFormat) -> None:
    """Let :func:`export_weights` / :func:`load_weights` serve models of ``fmt``."""
    _FORMATS[fmt.name] = fmt


def _format(name: str, path: str | Path) -> WeightsFormat:
    if name not in _FORMATS:
        match = _FORMAT_NAME.fullmatch(name or "")
        if match:  # its family's module registers it when imported
            try:
                importlib.import_module(f"ncodec.models.{match.group(1)}")
            except ImportError:
                pass
    if name not in _FORMATS:
        raise ValueError(f"{path}: not an ncodec weights file this ncodec reads (format {name!r})")
    return _FORMATS[name]


def round_half(model: nn.Module) -> None:
    """Round ``model``'s float parameters to fp16 values in place (what an fp16 export keeps)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.copy_(p.half().float())


def _state(model: nn.Module, half: bool, skip: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """``model``'s state for a weights file: trained float parameters in fp16 when ``half``,
    buffers exact; keys ending in ``skip`` left out."""
    parameters = {name for name, _ in model.named_parameters()}
    state = {}
    for key, value in model.state_dict().items():
        if skip and key.endswith(skip):
            continue
        value = value.detach().contiguous()
        if half and key in parameters and value.is_floating_point():
            value = value.half()
        state[key] = value.clone()
    return state


def export_weights(model: nn.Module, path: str | Path, *, arch: str, quality: Optional[int] = None,
                   info: Mapping[str, Any] | None = None, half: bool = True) -> dict[str, str]:
    """Write ``model`` (of architecture ``arch``; ``quality`` for families that record it) to
    ``path``, a ``.safetensors`` file written atomically.

    Float parameters are rounded to fp16 when ``half`` (in ``model`` too, so the model you
    keep is the one you ship; buffers keep their dtype: they hold exact constants, e.g. a
    likelihood bound of 1e-9 that fp16 would round to 0), then the format's
    ``before_export`` runs. ``info`` (JSON-serialisable: λ, steps, data, hardware) goes into
    the metadata under ``"training"``. Returns the metadata.

    Raises:
        ValueError: ``arch`` is not an architecture of a registered format.
    """
    fmt = next((f for f in _FORMATS.values() if arch in f.architectures()), None)
    if fmt is None:
        raise ValueError(f"unknown architecture {arch!r}")
    model = model.cpu().eval()
    if half:
        round_half(model)
    fmt.before_export(model)
    meta = {"format": fmt.name, "arch": arch, **fmt.metadata(arch, quality),
            "training": json.dumps(dict(info or {}), sort_keys=True)}
    from ncodec.io import atomic_output

    with atomic_output(path, force=True) as tmp:
        save_file(_state(model, half, fmt.skip), str(tmp), metadata=meta)
    return meta


def _metadata(path: str | Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise ValueError(f"{path}: not a safetensors weights file ({exc})") from None


def read_any_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of any ncodec weights file (ValueError if it is not one)."""
    meta = _metadata(path)
    if not str(meta.get("format", "")).startswith("ncodec-"):
        raise ValueError(f"{path}: not an ncodec weights file (format {meta.get('format')!r})")
    return meta


def read_metadata(path: str | Path, fmt: Optional[str] = FORMAT) -> dict[str, str]:
    """The metadata of a weights file of format ``fmt`` (None: any ncodec format); ValueError
    if it is not one."""
    meta = read_any_metadata(path)
    if fmt is not None and meta.get("format") != fmt:
        raise ValueError(f"{path}: not an ncodec {fmt} weights file (format {meta.get('format')!r})")
    return meta


def load_weights(path: str | Path, *, arch: str | None = None, quality: int | None = None) -> nn.Module:
    """The model stored in ``path``, whatever its format: fp32, eval mode, ready to code.

    ``arch`` / ``quality``, when given, must match the file's metadata (ValueError).
    """
    meta = read_any_metadata(path)
    fmt = _format(meta["format"], path)
    if arch is not None and meta.get("arch") != arch:
        raise ValueError(f"{path}: weights are for {meta.get('arch')!r}, not {arch!r}")
    if quality is not None and int(meta.get("quality", -1)) != quality:
        raise ValueError(f"{path}: weights are for quality {meta.get('quality')}, not {quality}")
    model = fmt.build(meta)
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    filled = fmt.complete(model, state)
    model.load_state_dict(state)  # CompressAI's resizes the (initially empty) CDF-table buffers
    fmt.after_load(model, filled)
    return model.eval()
