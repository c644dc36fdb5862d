"""Fit the roofline's efficiency factors on published measured Jetson latencies.

Data: ``profiles/calibration/published.csv`` (each row: device, power mode, torchvision model,
precision, batch, measured latency, its ``split`` = calibration | test, and its source; see
SOURCES.md there). The five factors of ``Efficiency`` are fitted by least squares on
``log(predicted) − log(measured)`` over the calibration rows only; the test rows are reported as
held-out error. ``calibrate()`` writes ``efficiency.csv`` and ``fit_report.md`` next to the data.
"""
from __future__ import annotations

import csv
import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from compress.errors import UserInputError
from compress.io import write_text_atomic
from profiles.analysis import ModelAnalysis
from profiles.device import load_device_profile
from profiles.estimate import CALIBRATION_DIR, EFFICIENCY_FILE, Efficiency, estimate_latency

PUBLISHED_FILE = CALIBRATION_DIR / "published.csv"


@dataclass(frozen=True)
class PublishedPoint:
    device: str
    power_mode: str
    model: str
    precision: str
    batch: int
    input_size: int
    latency_ms: float
    split: str
    source: str


@dataclass(frozen=True)
class PointError:
    point: PublishedPoint
    predicted_ms: float

    @property
    def ratio(self) -> float:
        return self.predicted_ms / self.point.latency_ms


@dataclass(frozen=True)
class FitResult:
    efficiency: Efficiency
    errors: tuple[PointError, ...]

    def summary(self, split: str) -> dict[str, float]:
        """Median and max |relative error| and geometric-mean ratio over one split."""
        errs = [e for e in self.errors if e.point.split == split]
        if not errs:
            return {"n": 0}
        rel = sorted(abs(e.ratio - 1.0) for e in errs)
        gm = math.exp(sum(math.log(e.ratio) for e in errs) / len(errs))
        return {"n": len(errs), "median_abs_rel_error": rel[len(rel) // 2], "max_abs_rel_error": rel[-1],
                "geomean_ratio": gm}


def load_published(path: str | Path = PUBLISHED_FILE) -> list[PublishedPoint]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [PublishedPoint(r["device"], r["power_mode"], r["model"], r["precision"], int(r["batch"]),
                           int(r["input_size"]), float(r["latency_ms"]), r["split"], r["source"]) for r in rows]


def torchvision_analysis(name: str, batch: int = 1, size: int = 224) -> ModelAnalysis:
    """Analyse a torchvision architecture on the meta device (no weights, no compute)."""
    import torch
    import torchvision

    from profiles.torch_count import analyze_torch

    builder = getattr(torchvision.models, name, None)
    if builder is None:
        raise UserInputError(f"torchvision has no model '{name}'.")
    with torch.device("meta"):
        model = builder()
    return analyze_torch(model, (batch, 3, size, size))


def predict(points: list[PublishedPoint], analyses: dict[str, ModelAnalysis], eff: Efficiency) -> list[PointError]:
    out = []
    for p in points:
        dev = load_device_profile(p.device)
        est = estimate_latency(analyses[p.model], dev, p.precision, p.power_mode, eff)
        out.append(PointError(p, est.latency_ms))
    return out


def fit_efficiency(points: list[PublishedPoint], analyses: dict[str, ModelAnalysis],
                   source: str = "fitted") -> FitResult:
    """Least squares in log space on the ``calibration`` rows; every row gets a prediction."""
    import numpy as np
    from scipy.optimize import least_squares

    calib = [p for p in points if p.split == "calibration"]
    if len(calib) < 5:
        raise UserInputError(f"need at least 5 calibration points to fit 5 factors, got {len(calib)}.")
    devices = {p.device: load_device_profile(p.device) for p in points}

    def make(theta: "np.ndarray") -> Efficiency:
        c, d, m, lu, pu = np.exp(theta)
        return Efficiency(float(c), float(d), float(m), float(lu), float(pu), source)

    def residuals(theta: "np.ndarray") -> "np.ndarray":
        eff = make(theta)
        return np.array([math.log(estimate_latency(analyses[p.model], devices[p.device], p.precision, p.power_mode,
                                                   eff).latency_ms / p.latency_ms) for p in calib])

    x0 = np.log(np.array(Efficiency().as_vector()))
    lo = np.log([1e-3, 1e-4, 1e-3, 1e-2, 1e-1])
    hi = np.log([1.0, 1.0, 1.0, 1e3, 1e5])
    res = least_squares(residuals, x0, bounds=(lo, hi))
    eff = make(res.x)
    return FitResult(eff, tuple(predict(points, analyses, eff)))


def fit_report_markdown(fit: FitResult) -> str:
    e = fit.efficiency
    lines = ["# Roofline calibration report", "",
             f"Fitted {_dt.date.today().isoformat()} by `profiles.calibration.calibrate()` on the `calibration` rows of "
             "`published.csv`; `test` rows were never used in the fit.", "",
             "| factor | value |", "| --- | --- |",
             f"| conv / linear efficiency (fraction of dense peak) | {e.conv:.3f} |",
             f"| depthwise / grouped conv efficiency | {e.dwconv:.4f} |",
             f"| memory efficiency (fraction of bandwidth) | {e.memory:.3f} |",
             f"| launch overhead per kernel (us) | {e.launch_us:.2f} |",
             f"| fixed overhead per inference (us) | {e.per_inference_us:.1f} |", ""]
    for split in ("calibration", "test"):
        s = fit.summary(split)
        if s.get("n"):
            lines.append(f"- **{split}** ({s['n']} points): median |error| {100 * s['median_abs_rel_error']:.1f} %, "
                         f"max |error| {100 * s['max_abs_rel_error']:.1f} %, geometric-mean predicted/measured "
                         f"{s['geomean_ratio']:.2f}")
    lines += ["", "| device | model | split | measured ms | estimated ms | estimated / measured |",
              "| --- | --- | --- | ---: | ---: | ---: |"]
    for err in fit.errors:
        p = err.point
        lines.append(f"| {p.device} | {p.model} | {p.split} | {p.latency_ms:g} | {err.predicted_ms:.2f} | {err.ratio:.2f} |")
    return "\n".join(lines) + "\n"


def write_efficiency(eff: Efficiency, fit: FitResult, path: str | Path = EFFICIENCY_FILE) -> Path:
    cal, test = fit.summary("calibration"), fit.summary("test")
    rows = [("key", "value"), ("conv", f"{eff.conv:.6g}"), ("dwconv", f"{eff.dwconv:.6g}"), ("memory", f"{eff.memory:.6g}"),
            ("launch_us", f"{eff.launch_us:.6g}"), ("per_inference_us", f"{eff.per_inference_us:.6g}"),
            ("source", eff.source),
            ("calibration_median_abs_rel_error", f"{cal.get('median_abs_rel_error', float('nan')):.4f}"),
            ("test_median_abs_rel_error", f"{test.get('median_abs_rel_error', float('nan')):.4f}")]
    text = "\n".join(",".join(f'"{c}"' if "," in c else c for c in r) for r in rows) + "\n"
    return write_text_atomic(path, text)


def calibrate(write: bool = True, progress: Callable[[str], None] | None = None) -> FitResult:
    """Analyse every published model, fit, and (optionally) store the factors and the report."""
    points = load_published()
    analyses: dict[str, ModelAnalysis] = {}
    for p in points:
        if p.model not in analyses:
            if progress:
                progress(p.model)
            analyses[p.model] = torchvision_analysis(p.model, p.batch, p.input_size)
    source = (f"least-squares fit (log space) on {sum(p.split == 'calibration' for p in points)} published FP16 "
              "batch-1 TensorRT latencies (torch2trt Jetson Nano / AGX Xavier tables), profiles/calibration/")
    fit = fit_efficiency(points, analyses, source)
    if write:
        write_efficiency(fit.efficiency, fit)
        write_text_atomic(CALIBRATION_DIR / "fit_report.md", fit_report_markdown(fit))
    return fit


if __name__ == "__main__":  # python -m profiles.calibration
    result = calibrate(write=True)
    print(fit_report_markdown(result))
