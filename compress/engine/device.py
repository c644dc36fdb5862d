"""Mixed precision for training (``amp``); which device exists is core (:mod:`compress.hardware`)."""
from __future__ import annotations

import torch

from compress.errors import UserInputError
from compress.hardware import autocast, resolve_device

__all__ = ["amp_dtype", "autocast", "resolve_device"]


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full precision. AMP is a CUDA feature here; CPU trains in FP32."""
    if device.type != "cuda" or amp == "off":
        if amp in ("bf16", "fp16") and device.type != "cuda":
            raise UserInputError(f"amp '{amp}' needs a CUDA device; on CPU use amp: off (or auto).")
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16
