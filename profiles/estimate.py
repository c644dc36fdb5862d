"""Per-layer roofline latency ESTIMATE for a device profile (never a measurement).

For each kernel-launching layer (conv, depthwise/grouped conv, linear, pool):
``t = max(2·MACs / (peak[precision] · eff_op), bytes / (bandwidth · eff_mem)) + launch_overhead``,
and the whole inference adds a fixed ``per_inference`` overhead (enqueue + synchronise).
Assumptions (stated in every result): BatchNorm, activations and residual adds are fused into the
conv before them by TensorRT, so they cost no extra kernel or memory pass; bytes are activations in +
weights + activations out at the precision's element size; the efficiency factors were fitted on
published FP16 batch-1 TensorRT latencies (``profiles/calibration``) and are reused for FP32/INT8.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.errors import UserInputError
from profiles.analysis import DTYPE_BYTES, ModelAnalysis
from profiles.device import DeviceProfile

CALIBRATION_DIR = Path(__file__).parent / "calibration"
EFFICIENCY_FILE = CALIBRATION_DIR / "efficiency.csv"
KERNEL_CLASSES = ("conv", "dwconv", "linear", "pool")


@dataclass(frozen=True)
class Efficiency:
    """Fractions of peak reached, and fixed overheads in microseconds."""

    conv: float = 0.5
    dwconv: float = 0.1
    memory: float = 0.6
    launch_us: float = 5.0
    per_inference_us: float = 50.0
    source: str = "uncalibrated defaults"

    def as_vector(self) -> list[float]:
        return [self.conv, self.dwconv, self.memory, self.launch_us, self.per_inference_us]


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    op_class: str
    compute_ms: float
    memory_ms: float
    bound: str  # compute | memory


@dataclass(frozen=True)
class LatencyEstimate:
    """An ESTIMATE of batch latency on a device profile, with the assumptions that produced it."""

    kind: str  # always "estimate"
    device: str
    power_mode: str
    precision: str
    batch: int
    latency_ms: float
    throughput_ips: float
    compute_bound_layers: int
    memory_bound_layers: int
    kernels: int
    peak_ops: float
    bandwidth_bytes_s: float
    efficiency: dict[str, Any]
    assumptions: tuple[str, ...]
    layers: tuple[LayerEstimate, ...] = ()

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "layers"}
        out["assumptions"] = list(self.assumptions)
        if per_layer:
            out["layers"] = [la.__dict__ for la in self.layers]
        return out


def load_efficiency(path: str | Path = EFFICIENCY_FILE) -> Efficiency:
    """The fitted factors stored by ``profiles.calibration.calibrate`` (defaults if never fitted)."""
    path = Path(path)
    if not path.is_file():
        return Efficiency()
    with open(path, newline="", encoding="utf-8") as fh:
        rows = {r["key"]: r for r in csv.DictReader(fh)}
    try:
        vals = {k: float(rows[k]["value"]) for k in ("conv", "dwconv", "memory", "launch_us", "per_inference_us")}
    except (KeyError, ValueError) as exc:
        raise UserInputError(f"{path} is not a valid efficiency table ({exc}); re-run the calibration.") from exc
    return Efficiency(**vals, source=rows.get("source", {}).get("value", str(path)))


def layer_times(macs: float, nbytes: float, op_class: str, peak: float, bw: float, eff: Efficiency) -> tuple[float, float]:
    """(compute seconds, memory seconds) of one kernel."""
    e_op = eff.dwconv if op_class == "dwconv" else eff.conv
    compute = (2.0 * macs) / (peak * e_op) if macs else 0.0
    memory = nbytes / (bw * eff.memory)
    return compute, memory


def estimate_latency(analysis: ModelAnalysis, device: DeviceProfile, precision: str = "fp16",
                     power_mode: str | int | None = None, efficiency: Efficiency | None = None) -> LatencyEstimate:
    """Roofline estimate for ``analysis`` (its batch) on ``device`` in ``power_mode``."""
    eff = efficiency or load_efficiency()
    if precision not in DTYPE_BYTES:
        raise UserInputError(f"Unknown precision '{precision}'. Known: {', '.join(DTYPE_BYTES)}.")
    peak = device.peak_ops(precision, power_mode)
    if peak is None:
        raise UserInputError(f"{device.display_name} has no {precision.upper()} peak in its profile "
                             f"({device.sources.get(f'peak_{precision}_' + ('tops' if precision == 'int8' else 'tflops'))}); "
                             "pick another --precision.")
    mode = device.mode(power_mode)
    bw = device.bandwidth(power_mode)
    elem = DTYPE_BYTES[precision]
    total, per_layer, nc, nm = 0.0, [], 0, 0
    for la in analysis.layers:
        if la.op_class not in KERNEL_CLASSES:
            continue
        nbytes = (la.input_elems + la.params + la.output_elems) * elem
        c, m = layer_times(la.macs, nbytes, la.op_class, peak, bw, eff)
        bound = "compute" if c >= m else "memory"
        nc, nm = nc + (bound == "compute"), nm + (bound == "memory")
        total += max(c, m) + eff.launch_us * 1e-6
        per_layer.append(LayerEstimate(la.name, la.op_class, c * 1e3, m * 1e3, bound))
    total += eff.per_inference_us * 1e-6
    assumptions = (
        f"ESTIMATE from a per-layer roofline, not a measurement: {device.display_name}, power mode {mode.name} "
        f"({mode.active_sms} SMs at <= {mode.gpu_max_mhz:g} MHz), peak {peak / 1e12:.2f} T{precision.upper()} ops/s, "
        f"bandwidth {bw / 1e9:.1f} GB/s",
        "BatchNorm, activations and residual adds are assumed fused into the preceding conv (TensorRT)",
        f"efficiency factors: {eff.source}",
        "factors were fitted on FP16 batch-1 data; FP32/INT8 and batch > 1 reuse them (less certain)",
    )
    batch = max(analysis.batch, 1)
    return LatencyEstimate(
        kind="estimate", device=device.name, power_mode=mode.name, precision=precision, batch=batch,
        latency_ms=total * 1e3, throughput_ips=batch / total, compute_bound_layers=nc, memory_bound_layers=nm,
        kernels=len(per_layer), peak_ops=peak, bandwidth_bytes_s=bw,
        efficiency={k: v for k, v in eff.__dict__.items()}, assumptions=assumptions, layers=tuple(per_layer))
