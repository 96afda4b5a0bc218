"""Model weights as safetensors files (image and audio models): save (export) and load, no pickles.

A weights file holds the model's whole ``state_dict``: float parameters in fp16 (or fp32)
and the entropy models' integer CDF tables exactly as ``update()`` built them from those
same fp16-rounded parameters. Loading therefore never rebuilds tables, so the tables (and
the model fingerprint) are the same on every machine and device. Metadata (strings) give
the architecture, quality, N, M and how the weights were trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

__all__ = ["export_weights", "load_weights", "read_metadata"]

FORMAT = "ncodec-image-weights-v1"


def _half_state(model: nn.Module, half: bool, skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
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


def _save(state: dict[str, torch.Tensor], path: str | Path, meta: dict[str, str]) -> None:
    """Write a safetensors file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def _metadata(path: str | Path, fmt: str, what: str) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise ValueError(f"{path}: not a safetensors weights file ({exc})") from None
    if meta.get("format") != fmt:
        raise ValueError(f"{path}: not an ncodec {what} weights file (format {meta.get('format')!r})")
    return meta


def _read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of ``path``, floats as fp32."""
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def export_weights(model: nn.Module, path: str | Path, *, arch: str, quality: int,
                   info: Mapping[str, Any] | None = None, half: bool = True) -> dict[str, str]:
    """Write ``model``'s weights to ``path`` (a ``.safetensors`` file).

    Float parameters are rounded to fp16 when ``half`` (in ``model`` too, so the model you
    keep is the one you ship), then ``update(force=True)`` rebuilds the CDF tables from the
    rounded values and everything is saved; buffers (bounds, tables) keep their dtype. ``info`` (JSON-serialisable: λ, steps, data,
    hardware) goes into the metadata under ``"training"``. Returns the metadata.
    """
    from ncodec.models import image as image_models  # audio weights need no image stack

    if arch not in image_models.ARCHITECTURES:
        raise ValueError(f"unknown image architecture {arch!r}")
    model = model.cpu().eval()
    # Only trained parameters go to fp16: buffers hold exact constants (the likelihood bound
    # 1e-9 would round to 0 in fp16, the scale bound 0.11 to 0.10999, the scale table).
    if half:
        round_half(model)
    model.update(force=True)
    sizes = image_models.ARCHITECTURES[arch].channels(quality)
    state = _half_state(model, half)
    meta = {"format": FORMAT, "arch": arch, "quality": str(int(quality)), "N": str(sizes["N"]),
            "M": str(sizes["M"]), "training": json.dumps(dict(info or {}), sort_keys=True)}
    _save(state, path, meta)
    return meta


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a weights file (ValueError if it is not one)."""
    return _metadata(path, FORMAT, "image")


def load_weights(path: str | Path, *, arch: str | None = None, quality: int | None = None) -> nn.Module:
    """The model stored in ``path``, in fp32 eval mode with its CDF tables, ready to code.

    ``arch`` / ``quality``, when given, must match the file's metadata (ValueError).
    """
    meta = read_metadata(path)
    if arch is not None and meta["arch"] != arch:
        raise ValueError(f"{path}: weights are for {meta['arch']!r}, not {arch!r}")
    if quality is not None and int(meta["quality"]) != quality:
        raise ValueError(f"{path}: weights are for quality {meta['quality']}, not {quality}")
    from ncodec.models import image as image_models

    model = image_models.build_image_model(meta["arch"], N=int(meta["N"]), M=int(meta["M"]))
    state = _read_state(path)
    # Files exported before ncodec 0.2 lack the fixed-point gains of variable-rate models:
    # derive them here (from this machine's exp(); re-export the file to pin them).
    late = [k for k in ("exact_gain", "exact_ungain") if k in model.state_dict() and k not in state]
    state.update({k: model.state_dict()[k] for k in late})
    # CompressAI's load_state_dict resizes the (initially empty) CDF-table buffers.
    model.load_state_dict(state)
    if late:
        model.update_exact_gains()
    return model.eval()


# ----------------------------------------------------------------------------- audio

AUDIO_FORMAT = "ncodec-audio-weights-v1"


def round_half(model: nn.Module) -> None:
    """Round ``model``'s float parameters to fp16 values in place (what an fp16 export keeps)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.copy_(p.half().float())


def export_audio_weights(model: nn.Module, path: str | Path, *, arch: str,
                         info: Mapping[str, Any] | None = None, half: bool = True) -> dict[str, str]:
    """Write an :class:`~ncodec.models.audio.AudioCodecModel` to ``path`` (safetensors).

    Parameters go to fp16 when ``half`` (rounded in ``model`` too); buffers (EMA codebooks,
    code counts) keep their dtype. Weight-norm parametrizations are stored as they are
    (``original0`` / ``original1``). ``info`` goes into the metadata under ``"training"``.
    """
    from ncodec.models import audio as audio_models

    if arch not in audio_models.ARCHITECTURES:
        raise ValueError(f"unknown audio architecture {arch!r}")
    model = model.cpu().eval()
    if half:
        round_half(model)
    # The EMA sums are training state (= codebook * cluster_size): rebuilt on load.
    state = _half_state(model, half, skip=(".embed_sum",))
    meta = {"format": AUDIO_FORMAT, "arch": arch, "training": json.dumps(dict(info or {}), sort_keys=True)}
    _save(state, path, meta)
    return meta


def read_audio_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an audio weights file (ValueError if it is not one)."""
    return _metadata(path, AUDIO_FORMAT, "audio")


def load_audio_weights(path: str | Path, *, arch: str | None = None) -> nn.Module:
    """The :class:`~ncodec.models.audio.AudioCodecModel` in ``path``, fp32, eval mode."""
    from ncodec.models import audio as audio_models

    meta = read_audio_metadata(path)
    if arch is not None and meta["arch"] != arch:
        raise ValueError(f"{path}: weights are for {meta['arch']!r}, not {arch!r}")
    model = audio_models.build_audio_model(meta["arch"])
    state = _read_state(path)
    for key in model.state_dict():
        if key.endswith(".embed_sum"):
            prefix = key[: -len("embed_sum")]
            state[key] = state[prefix + "codebook"] * state[prefix + "cluster_size"].unsqueeze(1)
    model.load_state_dict(state)
    return model.eval()
