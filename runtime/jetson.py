"""Running on a Jetson: detection, nvpmodel power mode, tegrastats power rails, energy per inference.

``tegrastats`` prints one line per interval with per-rail power (``VDD_GPU_SOC 2389mW/2389mW`` on
JetPack 5/6, ``POM_5V_GPU 0/0`` on JetPack 4: current/average mW) and the GPU load and clock
(``GR3D_FREQ 45%@[1300,1300]`` or ``GR3D_FREQ 0%@921``). Commands are argument lists; nothing goes
through a shell.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.errors import DeviceError

_RAIL = re.compile(r"\b((?:VDDQ|VDD|POM|VIN)_[A-Z0-9_]+)\s+(\d+)(?:mW)?/(\d+)(?:mW)?")
_GR3D = re.compile(r"GR3D_FREQ\s+(\d+)%(?:@\[?([\d,]+)\]?)?")
_EMC = re.compile(r"EMC_FREQ\s+(\d+)%(?:@(\d+))?")
#: rails that measure the whole module input; otherwise all rails are summed (and the result says so)
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")


@dataclass(frozen=True)
class TegraSample:
    """One tegrastats line: rails in mW (instantaneous), GPU load %, GPU clock MHz (first GPC)."""

    rails_mw: dict[str, int]
    gpu_load_pct: int | None
    gpu_mhz: int | None
    emc_mhz: int | None = None

    def total_mw(self) -> tuple[float, str]:
        """Module power and how it was obtained (a total-input rail, or the sum of all rails)."""
        for name in TOTAL_RAILS:
            if name in self.rails_mw:
                return float(self.rails_mw[name]), name
        return float(sum(self.rails_mw.values())), "sum of " + "+".join(sorted(self.rails_mw))


def parse_tegrastats_line(line: str) -> TegraSample | None:
    """Parse one tegrastats line; None for lines without power rails (e.g. a header)."""
    rails = {m.group(1): int(m.group(2)) for m in _RAIL.finditer(line)}
    if not rails:
        return None
    g = _GR3D.search(line)
    load = int(g.group(1)) if g else None
    mhz = int(g.group(2).split(",")[0]) if g and g.group(2) else None
    e = _EMC.search(line)
    return TegraSample(rails, load, mhz, int(e.group(2)) if e and e.group(2) else None)


def parse_tegrastats(text: str) -> list[TegraSample]:
    return [s for s in (parse_tegrastats_line(line) for line in text.splitlines()) if s is not None]


@dataclass(frozen=True)
class PowerSummary:
    """Mean power over samples taken while the model ran, and energy per image."""

    samples: int
    mean_total_mw: float
    total_from: str
    mean_rails_mw: dict[str, float]
    mean_gpu_load_pct: float | None
    max_gpu_mhz: int | None
    energy_per_inference_mj: float | None  # millijoules per image
    idle_total_mw: float | None = None
    energy_above_idle_mj: float | None = None
    reader: str = "tegrastats"


def summarize_power(samples: list[TegraSample], latency_ms: float | None = None, batch: int = 1,
                    idle: list[TegraSample] | None = None, reader: str = "tegrastats") -> PowerSummary:
    """Energy per image = mean module power × batch latency / batch (mW × ms = µJ → reported in mJ)."""
    if not samples:
        raise DeviceError("no tegrastats samples were collected while the model ran; run longer (--iters) "
                          "or lower the tegrastats interval.")
    totals = [s.total_mw() for s in samples]
    mean_total = sum(t for t, _ in totals) / len(totals)
    rails: dict[str, list[int]] = {}
    for s in samples:
        for k, v in s.rails_mw.items():
            rails.setdefault(k, []).append(v)
    loads = [s.gpu_load_pct for s in samples if s.gpu_load_pct is not None]
    mhz = [s.gpu_mhz for s in samples if s.gpu_mhz is not None]
    energy = mean_total * latency_ms / batch / 1000.0 if latency_ms else None
    idle_mw = sum(s.total_mw()[0] for s in idle) / len(idle) if idle else None
    above = (mean_total - idle_mw) * latency_ms / batch / 1000.0 if (idle_mw is not None and latency_ms) else None
    return PowerSummary(len(samples), mean_total, totals[0][1], {k: sum(v) / len(v) for k, v in rails.items()},
                        sum(loads) / len(loads) if loads else None, max(mhz) if mhz else None, energy,
                        idle_mw, above, reader)


@dataclass(frozen=True)
class JetsonInfo:
    """What the device tree and L4T say; the matching device profile is found by ``profiles.device.match_profile``."""

    model: str
    l4t_release: str | None
    memory_gb: float | None


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None


def parse_l4t_release(text: str) -> str | None:
    """``# R35 (release), REVISION: 3.1, ...`` → ``35.3.1``."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def detect_jetson(root: str | Path = "/") -> JetsonInfo | None:
    """A ``JetsonInfo`` when this machine is a Jetson (device tree / nv_tegra_release), else None."""
    root = Path(root)
    model = _read(root / "proc/device-tree/model")
    release = _read(root / "etc/nv_tegra_release")
    if not release and not (model and ("jetson" in model.lower() or "tegra" in model.lower() or "orin" in model.lower())):
        return None
    mem_gb = None
    meminfo = _read(root / "proc/meminfo")
    if meminfo:
        m = re.search(r"MemTotal:\s+(\d+)\s*kB", meminfo)
        mem_gb = int(m.group(1)) / 1024 ** 2 if m else None
    model = model or "unknown Jetson"
    return JetsonInfo(model, parse_l4t_release(release or ""), mem_gb)


def parse_nvpmodel_query(text: str) -> dict[str, Any]:
    """``nvpmodel -q`` → {"name": "MAXN", "id": 0}."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    ids = re.findall(r"^\s*(\d+)\s*$", text, flags=re.M)
    return {"name": m.group(1) if m else None, "id": int(ids[0]) if ids else None}


def query_power_mode(timeout: float = 10.0) -> dict[str, Any]:
    """The current nvpmodel mode on this Jetson."""
    exe = shutil.which("nvpmodel")
    if exe is None:
        raise DeviceError("nvpmodel is not on PATH: this is not a Jetson, or JetPack's tools are not installed.")
    out = subprocess.run([exe, "-q"], capture_output=True, text=True, timeout=timeout, check=False)
    return parse_nvpmodel_query(out.stdout + out.stderr)


def tegrastats_command(interval_ms: int = 100) -> list[str]:
    return ["tegrastats", "--interval", str(int(interval_ms))]


class TegrastatsMonitor:
    """Collect tegrastats lines in a background thread while a block runs (``with`` statement)."""

    def __init__(self, interval_ms: int = 100) -> None:
        self.interval_ms = interval_ms
        self.lines: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "TegrastatsMonitor":
        if shutil.which("tegrastats") is None:
            raise DeviceError("tegrastats is not on PATH; power can only be read on a Jetson.")
        self._proc = subprocess.Popen(tegrastats_command(self.interval_ms), stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        return self

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line)

    def __exit__(self, *exc: Any) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def samples(self) -> list[TegraSample]:
        return parse_tegrastats("".join(self.lines))


