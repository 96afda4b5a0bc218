"""Model fingerprints: what a file's header names so that a decoder can tell it has the
model the file was made with."""

from __future__ import annotations

import hashlib
from typing import Mapping

import torch
from torch import Tensor

__all__ = ["state_fingerprint", "weights_version"]


def state_fingerprint(state: Mapping[str, Tensor]) -> str:
    """32 hex characters: SHA-256, truncated to 128 bits, over ``state``'s entries in sorted key
    order (name, dtype, shape, raw little-endian bytes)."""
    digest = hashlib.sha256(b"ncodec-model-fingerprint-v1\0")
    for key, value in sorted(state.items()):
        t = value.detach().to("cpu").contiguous()
        header = f"{key}\0{str(t.dtype).removeprefix('torch.')}\0{','.join(map(str, t.shape))}\0"
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        digest.update(header.encode())
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()[:32]


def weights_version(module: torch.nn.Module) -> tuple:
    """Identity and in-place version of every parameter and buffer of ``module``: changes
    when a weight is replaced, reloaded (``load_state_dict``) or modified in place (for
    caches of copies derived from the weights)."""
    key = []
    for t in list(module.parameters()) + list(module.buffers()):
        try:
            version = t._version
        except RuntimeError:  # inference tensors keep no version counter
            version = None
        key.append((id(t), t.data_ptr(), version))
    return tuple(key)
