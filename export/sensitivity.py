"""Keeping the fewest layers in float that bring the INT8 accuracy drop within a budget.

1. Quantise every weighted layer; measure OA on the validation images. Within budget: done.
2. Sensitivity: for each weighted layer, quantise all but that one and measure the OA it gives back.
3. Greedy fallback: keep layers in float in order of sensitivity (ties: graph order, so the choice is
   deterministic), re-measuring OA and ONNX Runtime CPU latency after each, until the drop is within
   the budget — or until ``max_float`` layers are float, then the budget is reported unreachable
   with the best result found.

Calibration runs once (the ranges are cached), so every trial only re-quantises.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from export.int8 import Int8Flavour, QuantizeInfo, quantize_int8, scored_as_written, weighted_nodes
from export.verify import latency_feed, run_batched


@dataclass
class FallbackStep:
    """One trial: which layers were float, the OA (%) and drop (points) on the validation images, latency (ms)."""

    float_nodes: list[str]
    accuracy: float
    drop: float
    latency_ms: float | None = None
    added: str | None = None


@dataclass
class FallbackReport:
    budget: float
    reference_accuracy: float
    images: int
    steps: list[FallbackStep]
    sensitivity: dict[str, float] = field(default_factory=dict)  # layer → OA points regained when float
    met: bool = True
    chosen: FallbackStep | None = None
    fp32_latency_ms: float | None = None
    note: str = ""


def accuracy(model: str | Path, x: np.ndarray, y: np.ndarray, batch: int, dynamic: bool, threads: int | None,
             as_written: bool = False) -> float:
    from runtime.onnxrt import OnnxrtRunner

    with OnnxrtRunner(model, providers="cpu", threads=threads, fuse=not as_written) as r:
        out = run_batched(r, x, batch, dynamic)
    return float((out.argmax(1) == y).mean() * 100.0)


def latency(model: str | Path, feed: np.ndarray, threads: int | None, repeats: int = 30) -> float:
    from runtime.onnxrt import OnnxrtRunner

    with OnnxrtRunner(model, providers="cpu", threads=threads) as r:
        for i in range(5):
            r.infer({"input": feed}, check_inputs=i == 0)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            r.infer({"input": feed}, check_inputs=False)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def fallback_to_budget(fp32: str | Path, out: str | Path, flavour: Int8Flavour, method: str,
                       calib: np.ndarray | None, cache: str | Path, val_x: np.ndarray, val_y: np.ndarray, *,
                       budget: float, batch: int, dynamic: bool, exclude: Sequence[str] = (),
                       max_float: float = 0.5, threads: int | None = None,
                       progress: Callable[[str], None] | None = None) -> tuple[QuantizeInfo, FallbackReport]:
    """Quantise ``fp32`` into ``out`` keeping the fewest weighted layers float for ``drop ≤ budget`` points."""
    out = Path(out)
    trial = out.with_name(out.stem + ".trial.onnx")
    nodes = weighted_nodes(fp32)
    feed = latency_feed(val_x, batch)
    ref = accuracy(fp32, val_x, val_y, batch, dynamic, threads)
    report = FallbackReport(budget=budget, reference_accuracy=ref, images=len(val_x), steps=[],
                            fp32_latency_ms=latency(fp32, feed, threads))

    def run(float_nodes: list[str], path: Path, timed: bool = False) -> tuple[QuantizeInfo, FallbackStep]:
        info = quantize_int8(fp32, path, calib, method, flavour, batch=batch, float_nodes=float_nodes,
                             calibration_cache=cache)
        acc = accuracy(path, val_x, val_y, batch, dynamic, threads, scored_as_written(flavour.name))
        return info, FallbackStep(list(float_nodes), acc, ref - acc, latency(path, feed, threads) if timed else None)

    base = [n for n in nodes if n in set(exclude)]
    info, step = run(base, out, timed=True)
    report.steps.append(step)
    if step.drop <= budget:
        report.chosen = step
        return info, report
    candidates = [n for n in nodes if n not in base]
    for i, node in enumerate(candidates):
        if progress:
            progress(f"sensitivity {i + 1}/{len(candidates)}")
        report.sensitivity[node] = run(base + [node], trial)[1].accuracy - step.accuracy
    order = sorted(candidates, key=lambda n: (-report.sensitivity[n], nodes.index(n)))
    limit = max(1, int(max_float * len(nodes)))
    best_info, best = info, step
    chosen = list(base)
    for node in order:
        if len(chosen) >= limit:
            break
        chosen.append(node)
        info, step = run(chosen, trial, timed=True)
        step.added = node
        report.steps.append(step)
        if step.accuracy > best.accuracy:
            best = step
            trial.replace(out)
            best_info = info
            best_info.path = out
        if step.drop <= budget:
            break
    trial.unlink(missing_ok=True)
    report.chosen = best
    report.met = best.drop <= budget
    if not report.met:
        report.note = (f"the {budget:g}-pt budget was not met with up to {limit} of {len(nodes)} layers in float; best "
                       f"found: {best.accuracy:.2f} % OA (drop {best.drop:.2f} pt) with {len(best.float_nodes)} float")
    return best_info, report
