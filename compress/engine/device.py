"""Device and mixed-precision resolution (``--device auto|cpu|cuda``, ``amp``)."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from compress.errors import DeviceError, UserInputError


def resolve_device(name: str) -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} asked for CUDA but no CUDA GPU is visible here; use --device cpu or auto.")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible.")
        return dev
    raise UserInputError(f"--device must be auto, cpu, cuda or cuda:N, got '{name}'.")


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


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
