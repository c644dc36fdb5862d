"""Per-kernel latency ESTIMATE of a TensorRT engine on a device profile (never a measurement).

The model's layers are grouped into the kernels TensorRT launches (``profiles.estimator.kernels``). Each costs

    t = max(2·MACs / (peak · e[class] · e[arch] · e[precision]),  bytes / (bandwidth · e_memory)) + cycles / f_gpu

where ``peak`` is the power mode's dense peak for the precision (active SMs × GPU clock; FP32 on
Ampere means TF32 tensor cores, which TensorRT enables by default), ``e[class]`` the fitted fraction
of it that conv / 1×1 / depthwise / grouped / matmul kernels reach on GPUs without tensor cores,
``e[arch]`` how much of that Volta's or Ampere's tensor cores keep, ``e[precision]`` the INT8 or
FP32 fraction relative to FP16's, ``bandwidth`` the mode's memory bandwidth and ``cycles`` a fixed
per-kernel cost (launch, ramp-up, tail) in GPU clock cycles, so it shrinks with the clock. The sum is
what ``trtexec`` reports as GPU compute time; timing done from the host adds a fixed overhead (scaled
by the CPU clock) and, when the input is copied, the copy. The factors are fitted on published
measurements (``profiles/calibration``); every estimate carries the 80 % error band that
leave-one-device-out cross-validation left.
"""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from compress.errors import UserInputError
from profiles.counting.analysis import DTYPE_BYTES, ModelAnalysis
from profiles.estimator.bands import error_band, load_module_bands
from profiles.device import DeviceProfile
from profiles.estimator.kernels import COMPUTE_CLASSES, attention_fuses, kernels_of, tensorrt_version

CALIBRATION_DIR = Path(__file__).parents[1] / "calibration"
EFFICIENCY_FILE = CALIBRATION_DIR / "efficiency.csv"
TIMINGS = ("gpu_compute", "host_sync", "host_copy")  # what a published latency timed
REFERENCE_CPU_MHZ = 2000.0
JETPACK5_TENSORRT = (8, 4)  # the first TensorRT of JetPack 5 (5.0.1); JetPack 4 ends at 8.2
_JP5 = ".".join(map(str, JETPACK5_TENSORRT))


@dataclass(frozen=True)
class Efficiency:
    """Fitted factors: fractions of peak / bandwidth, fixed costs, and the error band of estimates."""

    conv: float = 0.5
    pointwise: float = 0.4
    depthwise: float = 0.05
    grouped: float = 0.1
    fc: float = 0.3
    int8: float = 0.6  # INT8's fraction of its (2× FP16) peak, relative to FP16's fraction
    fp32: float = 0.8  # FP32/TF32's fraction of its peak, relative to FP16's
    memory: float = 0.6
    kernel_cycles: float = 3000.0  # TensorRT 8.4+ (JetPack 5/6)
    kernel_cycles_trt7: float = 5000.0  # TensorRT before 8.4 (JetPack 4: 7.x–8.2, all a Nano or TX2 can run)
    host_sync_us: float = 100.0  # per inference, at a 2 GHz CPU
    host_copy_us: float = 20.0  # trtexec's Latency beyond its H2D and D2H copies (event gaps)
    copy: float = 0.1  # fraction of memory bandwidth reached by host<->device copies
    volta: float = 1.0  # compute fractions on Volta tensor cores, relative to CUDA-core GPUs (Maxwell, Pascal)
    ampere: float = 1.0  # the same on Ampere (and later) tensor cores
    band_low: float = 0.75  # 80 % of measured/estimated ratios fell in [band_low, band_high]
    band_high: float = 1.33
    source: str = "uncalibrated defaults"

    FITTED = ("conv", "pointwise", "depthwise", "grouped", "fc", "int8", "fp32", "memory", "kernel_cycles",
              "kernel_cycles_trt7", "host_sync_us", "host_copy_us", "copy", "volta", "ampere")

    def vector(self) -> list[float]:
        return [float(getattr(self, k)) for k in self.FITTED]

    def with_vector(self, values: list[float], source: str | None = None) -> "Efficiency":
        return Efficiency(**{**asdict(self), **dict(zip(self.FITTED, map(float, values))),
                             **({"source": source} if source else {})})


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    op_class: str
    compute_ms: float
    memory_ms: float
    bound: str  # compute | memory


@dataclass(frozen=True)
class LatencyEstimate:
    """An ESTIMATE of GPU compute time for one batch on a device profile, with its error band."""

    kind: str  # always "estimate"
    device: str
    power_mode: str
    precision: str
    batch: int
    latency_ms: float
    low_ms: float
    high_ms: float
    throughput_ips: float
    compute_bound_layers: int
    memory_bound_layers: int
    kernels: int
    peak_ops: float
    bandwidth_bytes_s: float
    efficiency: dict[str, Any]
    assumptions: tuple[str, ...]
    layers: tuple[LayerEstimate, ...] = ()

    @property
    def band(self) -> str:
        return f"{self.low_ms:.3g}–{self.high_ms:.3g} ms"

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "layers"}
        out["assumptions"] = list(self.assumptions)
        if per_layer:
            out["layers"] = [la.__dict__ for la in self.layers]
        return out


def load_efficiency(path: str | Path = EFFICIENCY_FILE) -> Efficiency:
    """The factors stored by ``python -m profiles.calibration`` (defaults if never fitted)."""
    path = Path(path)
    if not path.is_file():
        return Efficiency()
    with open(path, newline="", encoding="utf-8") as fh:
        rows = {r["key"]: r["value"] for r in csv.DictReader(fh)}
    known = {f.name for f in fields(Efficiency)}
    try:
        values = {k: (v if k == "source" else float(v)) for k, v in rows.items() if k in known}
    except ValueError as exc:
        raise UserInputError(f"{path} is not a valid efficiency table ({exc}); re-run the calibration.") from exc
    return Efficiency(**values)


def tensor_cores(device: DeviceProfile, precision: str) -> str | None:
    """``volta`` / ``ampere`` (Ampere and later) when ``precision`` runs on tensor cores, None on CUDA cores
    (Maxwell, Pascal; FP32 on Volta; profiles without a compute capability)."""
    cc = float(device.values.get("compute_capability") or 0)
    if cc >= 8.0:
        return "ampere"  # FP32 included: TF32
    return "volta" if cc >= 7.0 and precision != "fp32" else None


def precision_peak(device: DeviceProfile, precision: str, mode: str | int | None) -> float | None:
    """Dense peak ops/s; FP32 on Ampere and later runs on TF32 tensor cores (half the FP16 rate)."""
    if precision == "fp32" and tensor_cores(device, precision) == "ampere":
        fp16 = device.peak_ops("fp16", mode)
        return None if fp16 is None else fp16 / 2
    return device.peak_ops(precision, mode)


@dataclass(frozen=True)
class KernelArrays:
    """A model's kernels as arrays (one entry per kernel), computed once per analysis."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    macs: Any  # np.ndarray float64
    elements: Any
    compute_class: Any  # index into COMPUTE_CLASSES, -1 for memory-only kernels

    @staticmethod
    def of(analysis: ModelAnalysis, fused_attention: bool = False) -> "KernelArrays":
        import numpy as np

        ks = kernels_of(analysis, fused_attention)
        return KernelArrays(tuple(k.name for k in ks), tuple(k.kind for k in ks),
                            np.array([k.macs for k in ks], dtype=np.float64),
                            np.array([k.elements for k in ks], dtype=np.float64),
                            np.array([COMPUTE_CLASSES.index(k.kind) if k.kind in COMPUTE_CLASSES else -1 for k in ks]))


def legacy_tensorrt(version: str | None) -> bool | None:
    """True for JetPack 4's TensorRT (before 8.4: 7.x–8.2), False for 8.4+ (JetPack 5/6); None when
    ``version`` says neither.

    Reads ``8.2.1``, ``7 (JetPack 4.x, …)``, ``10.3 (JetPack 6.2)`` or ``JetPack 6 (TensorRT 10.x)``."""
    parsed = tensorrt_version(version)
    return None if parsed is None else parsed < JETPACK5_TENSORRT


def device_tensorrt(device: DeviceProfile, tensorrt: str | None = None) -> tuple[int, int] | None:
    """The TensorRT an estimate is for: ``tensorrt`` when readable, else the newest the device runs."""
    return tensorrt_version(tensorrt) or tensorrt_version(str(device.values.get("tensorrt") or ""))


def kernel_cycles_for(eff: Efficiency, device: DeviceProfile, tensorrt: str | None = None) -> float:
    """The per-kernel cycles of ``tensorrt`` (None or unreadable → the newest TensorRT the device runs)."""
    version = device_tensorrt(device, tensorrt)
    return eff.kernel_cycles_trt7 if version is not None and version < JETPACK5_TENSORRT else eff.kernel_cycles


def fused_attention_for(device: DeviceProfile, precision: str, tensorrt: str | None = None) -> bool:
    """Whether the engine's softmax attention is one kernel (``profiles.estimator.kernels.attention_fuses``)."""
    cc = float(device.values.get("compute_capability") or 0)
    return attention_fuses(cc, precision, device_tensorrt(device, tensorrt))


def _arch_text(eff: Efficiency, arch: str | None) -> str:
    if arch is None:
        return "CUDA cores"
    return f"{arch.capitalize()} tensor cores at {getattr(eff, arch):.2f} x the CUDA-core fractions"


def kernel_seconds(ka: KernelArrays, peak: float, bw: float, elem: int, gpu_mhz: float, precision: str,
                   eff: Efficiency, cycles: float | None = None, arch: str | None = None) -> tuple[Any, Any, float]:
    """(compute s, memory s) per kernel and the fixed seconds every kernel adds; ``arch`` from
    ``tensor_cores``."""
    import numpy as np

    scale = eff.int8 if precision == "int8" else eff.fp32 if precision == "fp32" else 1.0
    scale *= getattr(eff, arch) if arch else 1.0
    fraction = np.array([getattr(eff, c) for c in COMPUTE_CLASSES] + [1.0])[ka.compute_class] * scale
    compute = np.where(ka.compute_class >= 0, 2.0 * ka.macs / (peak * fraction), 0.0)
    memory = ka.elements * elem / (bw * eff.memory)
    return compute, memory, (eff.kernel_cycles if cycles is None else cycles) / (gpu_mhz * 1e6)


def host_overhead_ms(timing: str, device: DeviceProfile, mode: str | int | None, analysis: ModelAnalysis,
                     eff: Efficiency) -> float:
    """What a host-side timer adds to GPU compute time: a CPU-bound fixed cost (and the input copy)."""
    if timing == "gpu_compute":
        return 0.0
    if timing not in TIMINGS:
        raise UserInputError(f"unknown timing '{timing}'; use one of {', '.join(TIMINGS)}.")
    cpu = float(device.mode(mode).cpu_max_mhz or device.values.get("cpu_max_mhz") or REFERENCE_CPU_MHZ)
    fixed = (eff.host_sync_us if timing == "host_sync" else eff.host_copy_us) * REFERENCE_CPU_MHZ / cpu * 1e-3
    if timing == "host_copy":
        first, last = analysis.layers[0], analysis.layers[-1]
        copied = (first.input_elems + last.output_elems) * 4  # fp32 input in, output back
        fixed += copied / (device.bandwidth(mode) * eff.copy) * 1e3
    return fixed


def estimate_latency(analysis: ModelAnalysis, device: DeviceProfile, precision: str = "fp16",
                     power_mode: str | int | None = None, efficiency: Efficiency | None = None, *,
                     kernels: KernelArrays | None = None, detail: bool = True,
                     tensorrt: str | None = None) -> LatencyEstimate:
    """GPU compute time ESTIMATE for ``analysis`` (its batch) on ``device`` in ``power_mode`` with ``tensorrt``
    (None → the newest the device runs: its profile's ``tensorrt``); ``kernels`` (from
    ``KernelArrays.of(analysis, fused_attention_for(device, precision, tensorrt))``) skips the kernel grouping
    when called in a loop. With the stored
    calibration (``efficiency`` None) the band is widened to the module's own (``profiles.estimator.bands``)."""
    stored = efficiency is None
    eff = efficiency or load_efficiency()
    if precision not in DTYPE_BYTES:
        raise UserInputError(f"Unknown precision '{precision}'. Known: {', '.join(DTYPE_BYTES)}.")
    peak = precision_peak(device, precision, power_mode)
    if peak is None:
        unit = "tops" if precision == "int8" else "tflops"
        raise UserInputError(f"{device.display_name} has no {precision.upper()} peak in its profile "
                             f"({device.sources.get(f'peak_{precision}_{unit}')}); pick another --precision.")
    mode = device.mode(power_mode)
    bw = device.bandwidth(power_mode)
    mhz = min(mode.gpu_max_mhz, float(device.values.get("gpu_max_mhz") or mode.gpu_max_mhz))
    fused = fused_attention_for(device, precision, tensorrt)
    ka = kernels if kernels is not None else KernelArrays.of(analysis, fused)
    cycles = kernel_cycles_for(eff, device, tensorrt)
    arch = tensor_cores(device, precision)
    c, m, fixed = kernel_seconds(ka, peak, bw, DTYPE_BYTES[precision], mhz, precision, eff, cycles, arch)
    compute_bound = c >= m
    total = float((c * compute_bound + m * ~compute_bound).sum() + fixed * len(ka.kinds))
    nc, nm = int(compute_bound.sum()), int((~compute_bound).sum())
    per_layer = [LayerEstimate(n, k, ci * 1e3, mi * 1e3, "compute" if b else "memory")
                 for n, k, ci, mi, b in zip(ka.names, ka.kinds, c, m, compute_bound)] if detail else []
    ms = total * 1e3
    low, high, why = error_band(eff.band_low, eff.band_high, device.name, load_module_bands() if stored else {})
    assumptions = (
        f"ESTIMATE of TensorRT GPU compute time, not a measurement: {device.display_name}, power mode {mode.name} "
        f"({mode.active_sms} SMs at <= {mhz:g} MHz), peak {peak / 1e12:.2f} T{precision.upper()} ops/s"
        f"{' (TF32 tensor cores)' if precision == 'fp32' and peak != device.peak_ops('fp32', power_mode) else ''}, "
        f"{_arch_text(eff, arch)}, bandwidth {bw / 1e9:.1f} GB/s, {cycles:.0f} GPU cycles per kernel "
        f"(TensorRT {f'before {_JP5}' if cycles == eff.kernel_cycles_trt7 else f'{_JP5}+'})",
        f"80 % error band {low:.2f}–{high:.2f} × the estimate ({why}; leave-one-device-out "
        "cross-validation on published measurements, profiles/calibration/fit_report.md)",
        "BatchNorm, activations and residual adds fused into the kernel before them (TensorRT); "
        "squeeze-excitation scales, resizes, softmax and norms cost a memory pass each; softmax attention "
        + ("is one kernel (TensorRT 8.6+, SM 7.5+, FP16)" if fused else
           "runs as separate MatMul and Softmax kernels (fused only by TensorRT 8.6+ on SM 7.5+ in FP16)"),
        f"efficiency factors: {eff.source}",
        "host-side costs (input copy, enqueue, Python) are not included",
    )
    batch = max(analysis.batch, 1)
    return LatencyEstimate(
        kind="estimate", device=device.name, power_mode=mode.name, precision=precision, batch=batch,
        latency_ms=ms, low_ms=ms * low, high_ms=ms * high, throughput_ips=batch / total,
        compute_bound_layers=nc, memory_bound_layers=nm, kernels=len(ka.kinds), peak_ops=peak,
        bandwidth_bytes_s=bw, efficiency=asdict(eff), assumptions=assumptions, layers=tuple(per_layer))
