"""What this machine is (core): the torch device to use, and the CPU's model and instruction-set features.

CPU-dependent choices (INT8 ``reduce_range``, bf16 autocast) are made from the features detected at
run time, never assumed: the build machines and users' CPUs differ (AVX2 only, AVX-512 VNNI,
AVX-512-BF16, AMX; ARM dot-product / i8mm / bf16). ``parse_cpuinfo`` reads the text of
``/proc/cpuinfo`` so the decisions are testable with fixtures.
"""
from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from compress.errors import DeviceError, UserInputError

_INT8_DOT_X86 = ("avx512_vnni", "avx_vnni", "amx_int8")  # u8×s8 dot products without int16 saturation
_BF16_X86 = ("avx512_bf16", "amx_bf16")
_INT8_DOT_ARM = ("asimddp", "i8mm")
_BF16_ARM = ("bf16", "svebf16")


@dataclass(frozen=True)
class CpuInfo:
    """The host CPU: model name, ISA (``x86_64`` | ``aarch64`` | …), feature flags, logical cores, clock (MHz)."""

    model: str
    isa: str
    flags: frozenset[str]
    cores: int
    mhz: float | None = None

    @property
    def is_x86(self) -> bool:
        return self.isa in ("x86_64", "amd64", "i686", "i386")

    @property
    def int8_dot(self) -> bool:
        """Native 8-bit dot-product instructions (VNNI / AMX on x86, dotprod / i8mm on ARM)."""
        wanted = _INT8_DOT_X86 if self.is_x86 else _INT8_DOT_ARM
        return any(f in self.flags for f in wanted)

    @property
    def int8_saturates(self) -> bool:
        """ONNX Runtime's u8·s8 kernels sum pairs of products in saturating int16 here (x86 ``vpmaddubsw``
        without VNNI/AMX): 8-bit weights can clip; 7-bit weights (``reduce_range``) cannot."""
        return self.is_x86 and not self.int8_dot

    @property
    def native_bf16(self) -> bool:
        """bf16 arithmetic in hardware (AVX-512-BF16 / AMX-BF16 on x86, BF16 / SVE-BF16 on ARM)."""
        wanted = _BF16_X86 if self.is_x86 else _BF16_ARM
        return any(f in self.flags for f in wanted)

    @property
    def amx(self) -> bool:
        return "amx_tile" in self.flags

    @property
    def simd(self) -> str:
        for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("sve", "SVE"), ("asimd", "NEON")):
            if flag in self.flags:
                return name
        return "SSE" if self.is_x86 else "scalar"

    def describe(self) -> str:
        """One line for reports: model, cores and the flags that decide INT8/bf16 speed."""
        keys = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                            "amx_bf16", "asimddp", "i8mm", "bf16") if f in self.flags]
        return f"{self.model} ({self.cores} cores; {', '.join(keys) or 'no VNNI/BF16/AMX flags'})"


def parse_cpuinfo(text: str, isa: str | None = None, cores: int | None = None) -> CpuInfo:
    """Parse the text of ``/proc/cpuinfo`` (x86 ``flags`` or ARM ``Features`` lines; the first CPU counts)."""
    model, flags, mhz, n = "", "", None, 0
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip().lower(), val.strip()
        if key == "processor":
            n += 1
        elif key in ("model name", "hardware", "cpu model") and not model:
            model = val
        elif key in ("flags", "features") and not flags:
            flags = val
        elif key == "cpu mhz" and mhz is None:
            try:
                mhz = float(val)
            except ValueError:
                pass
    return CpuInfo(model=model or platform.processor() or "unknown CPU", isa=isa or platform.machine().lower(),
                   flags=frozenset(flags.lower().split()), cores=cores or n or os.cpu_count() or 1, mhz=mhz)


@functools.lru_cache(maxsize=1)
def cpu_info(path: str = "/proc/cpuinfo") -> CpuInfo:
    """This machine's CPU (cached); an unreadable ``/proc/cpuinfo`` (macOS, Windows) gives no flags."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text, cores=os.cpu_count())


def resolve_device(name: str):
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` → a ``torch.device`` that exists here."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} asked for CUDA but no CUDA GPU is visible here; use --device cpu or auto.")
        try:
            dev = torch.device(name)
        except RuntimeError as exc:
            raise UserInputError(f"--device '{name}' is not a CUDA device; use cuda or cuda:N.") from exc
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible.")
        return dev
    raise UserInputError(f"--device must be auto, cpu, cuda or cuda:N, got '{name}'.")


def autocast(device, dtype):
    """``torch.autocast`` for ``dtype`` on ``device``; a no-op context when ``dtype`` is None (full precision)."""
    from contextlib import nullcontext

    import torch

    return nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)
