"""Mixed precision and memory format for training; which device exists is core (:mod:`compress.hardware`).

``amp auto``: bf16 on CUDA GPUs that support it, fp16 with a GradScaler on older ones; on a CPU, bf16
only where it is native (AVX-512-BF16 / AMX on x86, BF16 on ARM) — elsewhere bf16 emulation is slower
than fp32, so the CPU trains in fp32. Explicit ``bf16`` on CPU is honoured; ``fp16`` is CUDA only.
"""
from __future__ import annotations

import torch
from torch import nn

from compress.errors import UserInputError
from compress.hardware import autocast, cpu_info, resolve_device

__all__ = ["amp_dtype", "autocast", "channels_last", "resolve_device"]


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` (auto | off | bf16 | fp16) on ``device``, or None for full precision."""
    if amp == "off":
        return None
    if device.type != "cuda":
        if amp == "fp16":
            raise UserInputError("amp 'fp16' needs a CUDA device; on CPU use bf16, auto or off.")
        if amp == "bf16":
            return torch.bfloat16
        return torch.bfloat16 if cpu_info().native_bf16 else None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def channels_last(memory_format: str, device: torch.device, amp: torch.dtype | None, model: nn.Module) -> bool:
    """Whether to train in NHWC: convolutional nets on CUDA, and on CPUs with AMX under bf16 autocast
    (oneDNN's AMX kernels want NHWC); elsewhere on CPU NHWC was measured slower (bench/history/diary.md,
    AVX-512 without AMX). ``channels_last`` / ``contiguous`` decide explicitly."""
    if memory_format not in ("auto", "channels_last", "contiguous"):
        raise UserInputError(f"memory_format must be auto, channels_last or contiguous, got '{memory_format}'.")
    if memory_format != "auto":
        return memory_format == "channels_last"
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return has_conv and (device.type == "cuda" or (amp == torch.bfloat16 and cpu_info().amx))
