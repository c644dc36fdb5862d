"""Device profiles: data files (``profiles/devices/*.yaml``) loaded into a frozen ``DeviceProfile``.

Every scalar is written ``{value: ..., source: "..."}`` so a report can say where a number came from.
Power modes switch SMs off as well as capping clocks, so peaks and bandwidth are scaled per mode:
``peak(mode) = peak_max × active_sms / sm_count × gpu_mhz / gpu_max_mhz`` and
``bandwidth(mode) = bandwidth_max × emc_mhz / emc_max_mhz``.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.errors import UserInputError
from runtime.trtexec import PRECISIONS

DEVICES_DIR = Path(__file__).parent / "devices"
_SOURCED = ("architecture", "compute_capability", "sm_count", "cuda_cores", "tensor_cores", "gpu_max_mhz",
            "peak_fp32_tflops", "peak_fp16_tflops", "peak_int8_tops", "memory_gb", "memory_bandwidth_gbs",
            "memory_max_mhz", "dla_cores", "jetpack", "tensorrt", "cpu_max_mhz")
# unit and range of every sourced scalar: (kind, minimum); kind "text" for names and versions
_UNITS = {"architecture": ("text", None), "jetpack": ("text", None), "tensorrt": ("text", None),
          "compute_capability": ("version", 1.0), "sm_count": ("count", 1), "cuda_cores": ("count", 0),
          "tensor_cores": ("count", 0), "dla_cores": ("count", 0), "gpu_max_mhz": ("number", 1.0),
          "cpu_max_mhz": ("number", 1.0), "memory_max_mhz": ("number", 1.0), "peak_fp32_tflops": ("number", 1e-6),
          "peak_fp16_tflops": ("number", 1e-6), "peak_int8_tops": ("number", 1e-6), "memory_gb": ("number", 1e-3),
          "memory_bandwidth_gbs": ("number", 1e-3)}
KINDS = ("jetson", "gpu", "cpu")


def _checked(key: str, value: Any, source: str) -> Any:
    """``value`` of ``key`` if it has the key's type and range (None where the key may be unknown)."""
    import math

    kind, low = _UNITS[key]
    if value is None and key != "memory_bandwidth_gbs":
        return None
    if kind == "text":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserInputError(f"{source}: '{key}' must be text, got {value!r}.")
    if kind == "version":  # written "8.7" or 8.7; read as a number by the estimator
        try:
            ok = not isinstance(value, bool) and math.isfinite(float(value)) and float(value) >= low
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserInputError(f"{source}: '{key}' must be a version number such as 8.7, got {value!r}.")
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < low or (kind == "count" and value != int(value)):
        what = "a whole number" if kind == "count" else "a finite number"
        raise UserInputError(f"{source}: '{key}' must be {what} ≥ {low:g}, got {value!r}.")
    return int(value) if kind == "count" else float(value)


def _positive(m: dict, key: str, i: int, source: str, optional: bool = False) -> float | None:
    import math

    value = m.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UserInputError(f"{source}: power mode {i} ('{m.get('name')}'): {key} must be a finite number > 0, "
                             f"got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class PowerMode:
    """One nvpmodel mode: how many SMs stay on and the GPU / memory (EMC) clock caps."""

    name: str
    id: int
    active_sms: int
    gpu_max_mhz: float
    emc_max_mhz: float | None
    source: str
    cpu_max_mhz: float | None = None  # CPU clock cap of the mode, when the profile gives one


@dataclass(frozen=True)
class DeviceProfile:
    """A target device. ``values`` holds the sourced scalars (see ``_SOURCED``), ``sources`` their origin."""

    name: str
    display_name: str
    kind: str  # jetson | gpu | cpu
    values: dict[str, Any]
    sources: dict[str, str]
    power_modes: tuple[PowerMode, ...]
    default_power_mode: str
    match: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    path: str | None = None

    def __getattr__(self, item: str) -> Any:
        values = object.__getattribute__(self, "values")
        if item in values:
            return values[item]
        raise AttributeError(item)

    def mode(self, name: str | int | None = None) -> PowerMode:
        """The named (or numbered) power mode; ``None`` gives the default one."""
        key = self.default_power_mode if name is None else str(name)
        for m in self.power_modes:
            if m.name.lower() == key.lower() or str(m.id) == key:
                return m
        raise UserInputError(f"Device '{self.name}' has no power mode '{name}'. "
                             f"Known: {', '.join(f'{m.id}={m.name}' for m in self.power_modes)}.")

    def peak_ops(self, precision: str, mode: str | int | None = None) -> float | None:
        """Dense peak in ops/s (FLOP/s; INT8 ops/s) for ``precision`` in a power mode, or None if unsupported."""
        if precision not in PRECISIONS:
            raise UserInputError(f"Unknown precision '{precision}'. Known: {', '.join(PRECISIONS)}.")
        unit = "tops" if precision == "int8" else "tflops"
        peak = self.values.get(f"peak_{precision}_{unit}")
        if peak is None:
            return None
        m = self.mode(mode)
        sms, mhz = self.values.get("sm_count") or m.active_sms, self.values.get("gpu_max_mhz") or m.gpu_max_mhz
        return float(peak) * 1e12 * (m.active_sms / sms) * (min(m.gpu_max_mhz, mhz) / mhz)

    def bandwidth(self, mode: str | int | None = None) -> float:
        """Memory bandwidth in bytes/s in a power mode (EMC cap scales the device maximum)."""
        m = self.mode(mode)
        bw = float(self.values["memory_bandwidth_gbs"]) * 1e9
        emc_max = self.values.get("memory_max_mhz")
        if m.emc_max_mhz is None or not emc_max:
            return bw
        return bw * min(m.emc_max_mhz, emc_max) / emc_max

    def summary(self) -> dict[str, Any]:
        """A JSON-able record (values, their sources, power modes)."""
        return {"name": self.name, "display_name": self.display_name, "kind": self.kind,
                "values": dict(self.values), "sources": dict(self.sources),
                "power_modes": [m.__dict__ for m in self.power_modes], "default_power_mode": self.default_power_mode,
                "notes": list(self.notes), "path": self.path}


def parse_device_profile(data: dict[str, Any], source: str) -> DeviceProfile:
    """Validate one YAML mapping; every value must carry a source."""
    if not isinstance(data, dict):
        raise UserInputError(f"{source}: a device profile must be a mapping.")
    missing = [k for k in ("name", "kind", "memory_bandwidth_gbs", "power_modes") if k not in data]
    if missing:
        raise UserInputError(f"{source}: missing key(s) {', '.join(missing)}; see profiles/devices/*.yaml for the format.")
    unknown = sorted(set(data) - set(_SOURCED) - {"name", "display_name", "kind", "match", "power_modes",
                                                  "default_power_mode", "notes"})
    if unknown:
        raise UserInputError(f"{source}: unknown key(s) {', '.join(unknown)}. Valid: {', '.join(_SOURCED)}, name, "
                             "display_name, kind, match, power_modes, default_power_mode, notes.")
    values, sources = {}, {}
    for key in _SOURCED:
        if key not in data:
            values[key], sources[key] = None, "not given"
            continue
        item = data[key]
        if not isinstance(item, dict) or "value" not in item or not item.get("source"):
            raise UserInputError(f"{source}: '{key}' must be written as {{value: ..., source: \"where it comes from\"}}.")
        values[key], sources[key] = _checked(key, item["value"], source), str(item["source"])
    if str(data["kind"]) not in KINDS:
        raise UserInputError(f"{source}: kind must be one of {', '.join(KINDS)}, got {data['kind']!r}.")
    for key in ("match", "notes"):
        if data.get(key) is not None and (not isinstance(data[key], list)
                                          or not all(isinstance(v, str) for v in data[key])):
            raise UserInputError(f"{source}: '{key}' must be a list of text lines, got {data[key]!r}.")
    if not isinstance(data["power_modes"], list):
        raise UserInputError(f"{source}: power_modes must be a list of modes, got {data['power_modes']!r}.")
    modes = []
    for i, m in enumerate(data["power_modes"]):
        if not isinstance(m, dict) or not m.get("name") or not m.get("source"):
            raise UserInputError(f"{source}: power mode {i} needs name, active_sms, gpu_max_mhz, emc_max_mhz and "
                                 "source.")
        sms = m.get("active_sms")
        if isinstance(sms, bool) or not isinstance(sms, int) or sms < 1:
            raise UserInputError(f"{source}: power mode {i} ('{m['name']}'): active_sms must be a whole number ≥ 1, "
                                 f"got {sms!r}.")
        modes.append(PowerMode(name=str(m["name"]), id=int(m.get("id", i)) if isinstance(m.get("id", i), int) else i,
                               active_sms=sms, gpu_max_mhz=_positive(m, "gpu_max_mhz", i, source),
                               emc_max_mhz=_positive(m, "emc_max_mhz", i, source, optional=True),
                               source=str(m["source"]), cpu_max_mhz=_positive(m, "cpu_max_mhz", i, source,
                                                                            optional=True)))
    if not modes:
        raise UserInputError(f"{source}: at least one power mode is needed.")
    default = str(data.get("default_power_mode") or modes[0].name)
    if not any(m.name.lower() == default.lower() or str(m.id) == default for m in modes):
        raise UserInputError(f"{source}: default_power_mode '{default}' is none of its power modes "
                             f"({', '.join(m.name for m in modes)}).")
    prof = DeviceProfile(name=str(data["name"]), display_name=str(data.get("display_name") or data["name"]),
                         kind=str(data["kind"]), values=values, sources=sources, power_modes=tuple(modes),
                         default_power_mode=default, match=tuple(data.get("match") or ()),
                         notes=tuple(data.get("notes") or ()), path=source)
    prof.mode(None)  # the default must exist
    return prof


def _load_file(path: Path) -> DeviceProfile:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserInputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}).") from exc
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path}: not UTF-8 text (byte {exc.start}); save the profile as UTF-8.") from None
    return parse_device_profile(data, str(path))


# FP32 FLOP per cycle per core: 2 FMA units × lanes × 2 (AVX-512 16 lanes, AVX2 8, NEON 4; SVE taken as NEON)
FP32_FLOP_PER_CYCLE = {"AVX-512": 64, "AVX2": 32, "SVE": 16, "NEON": 16}


def host_cpu_profile() -> DeviceProfile:
    """This machine's CPU (:func:`compress.hardware.cpu_info`: x86 ``flags`` or ARM ``Features``); no peak is
    claimed unless the clock is known."""
    from compress.hardware import cpu_info

    cpu = cpu_info()
    model, mhz, cores = cpu.model or platform.processor() or "unknown CPU", cpu.mhz, cpu.cores
    simd = FP32_FLOP_PER_CYCLE.get(cpu.simd, 8)
    peak = cores * mhz * 1e6 * simd / 1e12 if mhz else None
    src = "read from /proc/cpuinfo and os.cpu_count() on this machine"
    values = {k: None for k in _SOURCED}
    values.update(architecture=model, cuda_cores=0, sm_count=None, peak_fp32_tflops=peak,
                  memory_bandwidth_gbs=20.0, dla_cores=0)
    sources = {k: "not applicable to a CPU" for k in _SOURCED}
    sources.update(architecture=src, peak_fp32_tflops=(f"derived: {cores} cores x {mhz} MHz x {simd} FP32 FLOP/cycle "
                                                        "(2 FMA units x SIMD width) — a theoretical bound" if peak else "clock unknown"),
                   memory_bandwidth_gbs="assumption: 20 GB/s (one DDR4 channel); not measured")
    mode = PowerMode(name="default", id=0, active_sms=1, gpu_max_mhz=float(mhz or 1), emc_max_mhz=None, source=src)
    return DeviceProfile(name="host-cpu", display_name=f"host CPU ({model}, {cores} cores)", kind="cpu", values=values,
                         sources=sources, power_modes=(mode,), default_power_mode="default",
                         notes=("built from this machine at run time",))


def list_device_profiles() -> list[DeviceProfile]:
    """Every shipped profile plus the host CPU, sorted by name."""
    profs = [_load_file(p) for p in sorted(DEVICES_DIR.glob("*.yaml"))]
    return sorted(profs, key=lambda p: p.name) + [host_cpu_profile()]


def load_device_profile(name_or_path: str | Path) -> DeviceProfile:
    """A shipped profile by name (``jetson-orin-nano-8gb``) or a unique prefix of one (``jetson-agx-x``),
    ``host-cpu``, or a user YAML file path."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise UserInputError(f"Device profile file '{path}' does not exist.")
        return _load_file(path)
    if text.strip().lower() in ("host-cpu", "host_cpu"):
        return host_cpu_profile()
    key = text.strip().lower().replace("_", "-")
    path = DEVICES_DIR / f"{key}.yaml"
    if path.is_file():
        return _load_file(path)
    known = sorted(p.stem for p in DEVICES_DIR.glob("*.yaml")) + ["host-cpu"]
    matches = [k for k in known if k.startswith(key)]
    if len(matches) == 1:
        return load_device_profile(matches[0])
    if matches:
        raise UserInputError(f"Device profile '{name_or_path}' is ambiguous: it starts {len(matches)} names "
                             f"({', '.join(matches)}); give more of the name.")
    raise UserInputError(f"Unknown device profile '{name_or_path}'. Known: {', '.join(known)}; "
                         "or pass a path to your own .yaml (see profiles/devices/ for the format).")


def match_profile(model: str, memory_gb: float | None) -> str | None:
    """The shipped device profile whose ``match`` strings all occur in the device-tree model;
    ties (32 vs 64 GB, 4 vs 8 GB) are broken by the memory size."""
    cands = [p for p in list_device_profiles() if p.kind == "jetson" and p.match and p.match[0].lower() in model.lower()]
    if not cands:
        return None
    full = [p for p in cands if all(s.lower() in model.lower() for s in p.match)]
    if len(full) == 1:
        return full[0].name
    pool = full or cands
    if memory_gb is None:
        return pool[0].name
    return min(pool, key=lambda p: abs(float(p.values.get("memory_gb") or 0) - memory_gb)).name
