"""Fit the estimator's factors on published Jetson latencies, with device- and family-level cross-validation.

Data: ``profiles/calibration/published.csv`` (device, power mode, model, family, precision, batch,
input size, measured ms, what was timed, TensorRT version, source; see SOURCES.md beside it).
Layer analyses: torchvision models are analysed on the meta device; other models are read from
``profiles/calibration/models/`` (written by ``bench/calibration_models.py``).

The fifteen factors of ``Efficiency`` (``Efficiency.FITTED``) are fitted by robust (soft-L1) least
squares on ``log(estimated / measured)`` (with a weak pull towards the defaults so factors no point
constrains stay put). Leave-one-device-out and leave-one-family-out refits predict every point from a fit that
never saw its device (family); the 10th–90th percentile of the leave-one-device-out ratios is the
error band every estimate prints, widened per module by ``profiles.estimator.bands``.
``python -m profiles.calibration`` writes ``efficiency.csv``, ``bands.csv`` and ``fit_report.md``.
"""
from __future__ import annotations

import csv
import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from compress.errors import UserInputError
from compress.io import write_text_atomic
from profiles.counting.analysis import LayerStats, ModelAnalysis
from profiles.estimator.bands import BANDS_FILE, bands_csv, calibration_module, load_module_bands, module_bands, ratio_band
from profiles.device import DeviceProfile, load_device_profile
from profiles.calibration.fit_report import Calibration, PointError, fit_report_markdown, summary
from profiles.estimator.estimate import (CALIBRATION_DIR, EFFICIENCY_FILE, TIMINGS, Efficiency, KernelArrays, estimate_latency,
                               fused_attention_for, host_overhead_ms)

PUBLISHED_FILE = CALIBRATION_DIR / "published.csv"
MODELS_DIR = CALIBRATION_DIR / "models"
FIT_BOUNDS = {"conv": (1e-3, 1.0), "pointwise": (1e-3, 1.0), "depthwise": (1e-4, 1.0), "grouped": (1e-4, 1.0),
              "fc": (1e-4, 1.0), "int8": (0.05, 1.0), "fp32": (0.05, 1.0), "memory": (0.02, 1.0),
              "kernel_cycles": (10.0, 1e5), "kernel_cycles_trt7": (10.0, 1e6), "host_sync_us": (1.0, 1e5),
              "host_copy_us": (1.0, 100.0), "copy": (1e-3, 1.0),
              "volta": (1e-2, 1.0), "ampere": (1e-2, 1.0)}  # (low, high) of every fitted factor
# host_copy rows are trtexec's "Latency" (CUDA-event-timed H2D + compute + D2H, no Python in it), so their
# fixed part is the gaps between those events: tens of µs, not the milliseconds an unbounded fit moved into
# it when the devices that pin it were held out (2.3 ms with AGX Orin held out; SOURCES.md)
# soft-L1: a residual beyond ~0.2 in log units (~22 %, about how far two sources timing one model and
# module disagree) counts linearly, not squared, so rows no kernel model explains (torch2trt's AGX Xavier
# DenseNets at 2-3x the fit) pull every factor less; held-out Xavier NX 59.6 -> 45.5 % (bench/history/diary.md §15)
FIT_LOSS, FIT_F_SCALE = "soft_l1", 0.2
PRIOR_WEIGHT = 0.05  # per factor, in log units: negligible wherever points constrain a factor


@dataclass(frozen=True)
class PublishedPoint:
    device: str
    power_mode: str
    model: str
    family: str
    precision: str
    batch: int
    input_size: int
    latency_ms: float
    timing: str  # gpu_compute | host_sync | host_copy
    tensorrt: str
    source: str

    @property
    def module(self) -> str:
        """The physical module (a developer kit and its module are one device for cross-validation)."""
        return calibration_module(self.device)


def load_published(path: str | Path = PUBLISHED_FILE) -> list[PublishedPoint]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    try:
        points = [PublishedPoint(r["device"], r["power_mode"], r["model"], r["family"], r["precision"], int(r["batch"]),
                                 int(r["input_size"]), float(r["latency_ms"]), r["timing"], r["tensorrt"], r["source"])
                  for r in rows]
    except (KeyError, ValueError) as exc:
        raise UserInputError(f"{path}: row does not match the published-latency format ({exc}).") from exc
    bad = sorted({p.timing for p in points} - set(TIMINGS))
    if bad:
        raise UserInputError(f"{path}: unknown timing {', '.join(bad)}; use one of {', '.join(TIMINGS)}.")
    return points


def save_model_analysis(name: str, size: int, analysis: ModelAnalysis, out_dir: Path = MODELS_DIR) -> Path:
    """Store the layer counts of ``name`` at ``size`` px (no weights) for the fit."""
    fields = ("name", "op_type", "op_class", "output_shape", "params", "macs", "other_ops", "input_elems",
              "output_elems", "bytes_per_element", "kernel", "groups")
    record = {"model": name, "input_shape": list(analysis.input_shape), "params": analysis.params,
              "macs": analysis.macs, "source": analysis.source, "fields": fields,
              "layers": [[getattr(la, f) for f in fields] for la in analysis.layers]}
    path = Path(out_dir) / f"{name}@{size}.json.gz"
    path.write_bytes(gzip.compress(json.dumps(record, separators=(",", ":")).encode(), mtime=0))
    return path


def load_model_analysis(path: Path) -> ModelAnalysis:
    record = json.loads(gzip.decompress(path.read_bytes()))
    layers = tuple(LayerStats(**{**dict(zip(record["fields"], row)), "output_shape": tuple(row[3])})
                   for row in record["layers"])
    return ModelAnalysis(source=record["source"], input_shape=tuple(record["input_shape"]), params=record["params"],
                         params_deploy=record["params"], macs=record["macs"],
                         other_ops=sum(la.other_ops for la in layers), peak_activation_bytes=0, layers=layers)


def model_analysis(name: str, batch: int = 1, size: int = 224) -> ModelAnalysis:
    """A stored analysis (``models/<name>@<size>.json.gz``) or a torchvision model on the meta device."""
    stored = MODELS_DIR / f"{name}@{size}.json.gz"
    if stored.is_file():
        if batch != 1:
            raise UserInputError(f"the stored analysis of {name} is for batch 1, not {batch}.")
        return load_model_analysis(stored)
    import torch
    import torchvision

    from profiles.counting.torch_count import analyze_torch

    builder = getattr(torchvision.models, name, None)
    if builder is None:
        raise UserInputError(f"no analysis for '{name}': not a torchvision model and no {stored.name} in {MODELS_DIR} "
                             "(write it with bench/calibration_models.py).")
    with torch.device("meta"):
        model = builder()
    return analyze_torch(model, (batch, 3, size, size))


def predict_point(p: PublishedPoint, analysis: ModelAnalysis, device: DeviceProfile, eff: Efficiency,
                  kernels: KernelArrays | None = None) -> float:
    """What the model says the point's measurement should read (GPU compute + what its timer adds)."""
    # JetPack 4's TensorRT (7.x–8.2) has its own per-kernel cost; a point that does not say which TensorRT
    # timed it gets the newest its device runs (a Nano's rows are JetPack 4 whatever their source omits)
    gpu = estimate_latency(analysis, device, p.precision, p.power_mode, eff, kernels=kernels, detail=False,
                           tensorrt=p.tensorrt).latency_ms
    return gpu + host_overhead_ms(p.timing, device, p.power_mode, analysis, eff)


def _key(p: PublishedPoint) -> tuple[str, int, int]:
    return (p.model, p.batch, p.input_size)


def point_kernels(points: list[PublishedPoint], analyses: dict,
                  devices: dict[str, DeviceProfile]) -> list[KernelArrays]:
    """Each point's kernels, grouped once per model and attention rule (its device, precision, TensorRT)."""
    cache: dict[tuple, KernelArrays] = {}
    out = []
    for p in points:
        key = (_key(p), fused_attention_for(devices[p.device], p.precision, p.tensorrt))
        if key not in cache:
            cache[key] = KernelArrays.of(analyses[key[0]], key[1])
        out.append(cache[key])
    return out


def fit_efficiency(points: list[PublishedPoint], analyses: dict, devices: dict[str, DeviceProfile] | None = None,
                   start: Efficiency | None = None, source: str = "fitted",
                   bounds: dict[str, tuple[float, float]] | None = None, loss: str = FIT_LOSS,
                   f_scale: float = FIT_F_SCALE) -> Efficiency:
    """Robust least squares in log space over ``points`` (``analyses`` keyed by (model, batch, size)); ``bounds``
    overrides entries of ``FIT_BOUNDS``; ``loss`` / ``f_scale`` (log units) are scipy's (``"linear"``:
    plain least squares)."""
    import numpy as np
    from scipy.optimize import least_squares

    if len(points) < 5:
        raise UserInputError(f"need at least 5 published points to fit, got {len(points)}.")
    start = start or Efficiency()
    devices = devices or {p.device: load_device_profile(p.device) for p in points}
    x0 = np.log(start.vector())
    limits = {**FIT_BOUNDS, **(bounds or {})}
    lo = np.log([limits[k][0] for k in Efficiency.FITTED])
    hi = np.log([limits[k][1] for k in Efficiency.FITTED])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    kernels = point_kernels(points, analyses, devices)

    def residuals(theta):
        eff = start.with_vector(list(np.exp(theta)))
        r = [math.log(predict_point(p, analyses[_key(p)], devices[p.device], eff, ka) / p.latency_ms)
             for p, ka in zip(points, kernels)]
        return np.concatenate([r, PRIOR_WEIGHT * (theta - x0)])

    res = least_squares(residuals, x0, bounds=(lo, hi), loss=loss, f_scale=f_scale)
    return start.with_vector(list(np.exp(res.x)), source)


def cross_validate(points: list[PublishedPoint], analyses: dict, group: Callable[[PublishedPoint], str],
                   devices: dict[str, DeviceProfile], start: Efficiency,
                   bounds: dict[str, tuple[float, float]] | None = None, **fit: object) -> list[PointError]:
    """Every point predicted by a fit on the points of the other groups (``fit``: more ``fit_efficiency``
    arguments)."""
    out: list[PointError] = []
    for g in sorted({group(p) for p in points}):
        train = [p for p in points if group(p) != g]
        eff = fit_efficiency(train, analyses, devices, start, bounds=bounds, **fit)
        out += [PointError(p, predict_point(p, analyses[_key(p)], devices[p.device], eff))
                for p in points if group(p) == g]
    return out


def band(errors: list[PointError], coverage: float = 0.8) -> tuple[float, float]:
    """[low, high] multipliers of an estimate holding ``coverage`` of measured/estimated ratios."""
    return ratio_band((e.point.latency_ms / e.predicted_ms for e in errors), coverage)


def calibrate(write: bool = True, progress: Callable[[str], None] | None = None) -> Calibration:
    """Analyse every published model, fit on all points, cross-validate, store the factors and report."""
    points = load_published()
    analyses: dict = {}
    for p in points:
        if _key(p) not in analyses:
            if progress:
                progress(p.model)
            analyses[_key(p)] = model_analysis(p.model, p.batch, p.input_size)
    devices = {p.device: load_device_profile(p.device) for p in points}
    start = Efficiency()
    by_device = cross_validate(points, analyses, lambda p: p.module, devices, start)
    by_family = cross_validate(points, analyses, lambda p: p.family, devices, start)
    low, high = band(by_device)
    source = (f"robust (soft-L1) least-squares fit (log space) on {len(points)} published TensorRT latencies of "
              f"{len({p.module for p in points})} Jetson modules, profiles/calibration/")
    eff = fit_efficiency(points, analyses, devices, start, source)
    eff = Efficiency(**{**eff.__dict__, "band_low": low, "band_high": high})
    fitted = [PointError(p, predict_point(p, analyses[_key(p)], devices[p.device], eff)) for p in points]
    bands = module_bands((e.point.module, e.point.latency_ms / e.predicted_ms) for e in by_device)
    cal = Calibration(eff, fitted, by_device, by_family, bands, {k: a.macs for k, a in analyses.items()})
    if write:
        rows = ["key,value"] + [f"{k},{getattr(eff, k):.6g}" for k in (*Efficiency.FITTED, "band_low", "band_high")]
        rows.append(f'source,"{eff.source}"')
        write_text_atomic(EFFICIENCY_FILE, "\n".join(rows) + "\n")
        write_text_atomic(BANDS_FILE, bands_csv(bands))
        load_module_bands.cache_clear()
        write_text_atomic(CALIBRATION_DIR / "fit_report.md", fit_report_markdown(cal))
    return cal


def main() -> None:
    """``python -m profiles.calibration``: refit on ``published.csv`` and write the fit's files."""
    result = calibrate(write=True, progress=lambda m: print(f"analysing {m}", flush=True))
    s = summary(result.by_device)
    print(f"leave-one-device-out median |error| {100 * s['median_abs_rel_error']:.1f} % over {s['n']} points; "
          f"see {CALIBRATION_DIR / 'fit_report.md'}")


if __name__ == "__main__":  # python -m profiles.calibration.fit
    main()
