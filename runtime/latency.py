"""``measure_latency``: one way to time every runner (warm-up, synchronise, N timed runs, percentiles).

Each timed run is one ``runner.infer(feeds)`` call followed by ``runner.synchronize()``, measured
with ``time.perf_counter_ns``. Feeds are host numpy arrays, so host→device and device→host copies
ARE included (what a deployed application pays); ``h2d_included`` records that in every result.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compress.errors import UserInputError
from runtime.base import Runner


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one batch in milliseconds, throughput in images/s, and how it was measured."""

    kind: str  # always "measured"
    batch: int
    warmup: int
    iters: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    throughput_ips: float
    h2d_included: bool
    runner: dict[str, Any] = field(default_factory=dict)  # backend, precision, threads, device name

    @property
    def backend(self) -> str:
        return str(self.runner.get("backend", "?"))


def summarize(samples_ms: list[float] | np.ndarray, batch: int, warmup: int, runner: dict[str, Any],
              h2d_included: bool = True) -> LatencyStats:
    """Statistics of per-call times (ms); throughput = batch / mean latency."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    if arr.size == 0:
        raise UserInputError("no timed runs: pass iters >= 1.")
    mean = float(arr.mean())
    return LatencyStats(
        kind="measured", batch=int(batch), warmup=int(warmup), iters=int(arr.size), mean_ms=mean,
        std_ms=float(arr.std(ddof=1)) if arr.size > 1 else 0.0, min_ms=float(arr.min()),
        p50_ms=float(np.percentile(arr, 50)), p90_ms=float(np.percentile(arr, 90)),
        p99_ms=float(np.percentile(arr, 99)), max_ms=float(arr.max()),
        throughput_ips=float(batch * 1000.0 / mean) if mean > 0 else float("inf"),
        h2d_included=h2d_included, runner=dict(runner))


def device_name(runner_info: dict[str, Any]) -> str:
    """A human name for the device a runner used (CPU model or CUDA device name)."""
    dev = str(runner_info.get("device", "cpu"))
    if dev.startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                idx = int(dev.split(":")[1]) if ":" in dev else 0
                return torch.cuda.get_device_name(idx)
        except (ImportError, RuntimeError, ValueError):
            pass
        return dev
    from compress.hardware import cpu_info

    cpu = cpu_info()
    return f"host CPU ({cpu.model}, {cpu.cores} cores)"


def measure_latency(runner: Runner, feeds: dict[str, np.ndarray], warmup: int = 10, iters: int = 50,
                    batch: int | None = None) -> LatencyStats:
    """Time ``iters`` synchronised inferences after ``warmup`` untimed ones. The runner may be inactive
    (it is activated for the measurement and deactivated after) or already active (left active)."""
    if warmup < 0 or iters < 1:
        raise UserInputError(f"warmup must be >= 0 and iters >= 1 (got warmup={warmup}, iters={iters}).")
    if not feeds:
        raise UserInputError("feeds is empty: pass one array per model input.")
    if batch is None:
        batch = int(next(iter(feeds.values())).shape[0])
    owned = not runner.is_active
    if owned:
        runner.activate()
    try:
        for i in range(warmup):  # the first call checks the feeds; every later one skips the checks
            runner.infer(feeds, check_inputs=i == 0)
        runner.synchronize()
        samples = np.empty(iters, dtype=np.float64)
        for i in range(iters):
            t0 = time.perf_counter_ns()
            runner.infer(feeds, check_inputs=warmup == 0 and i == 0)
            runner.synchronize()
            samples[i] = (time.perf_counter_ns() - t0) / 1e6
        info = dict(runner.describe())
    finally:
        if owned:
            runner.deactivate()
    info.setdefault("device", "cpu")
    info["device_name"] = device_name(info)
    return summarize(samples, batch, warmup, info, h2d_included=True)
