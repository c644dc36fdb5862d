"""A per-device correction of latency ESTIMATES from the user's own measurements (issue 34).

What one measurement can fix, measured on the published points (``python bench/one_point.py``; each point
predicted by the fit that never saw its module, then each point of a setup in turn the one measurement):
anchored on a model of the **same family**, the estimates of the others move from a ~17 % to an 8.3 %
median error (58 % of pairs within 10 %); anchored on another family, 16.7 % — no better than none, since
what is left after leave-one-device-out is mostly per-architecture, not per-board. So the correction is a
scale per precision **and architecture**: the geometric mean of measured ÷ estimated over the user's points
of that architecture and precision, applied to later estimates of that architecture on that device profile
only (the teacher measured → its pruned students estimated: the student search's case), labelled
"ESTIMATE (calibrated on N measurements of ARCH on this device)" with the band one same-family measurement
earned on the published data, widened to the points' own residuals. Other architectures keep the plain
estimate, and say why. A fixed cost per inference was not fitted: with one to five points it is not
identified apart from the scale.

Corrections are stored per device profile in a JSON file (``$COMPRESS_CALIBRATION``, else
``~/.config/compress-edge/calibration.json``). The measurements file is a CSV with the columns
``MEASUREMENT_COLUMNS``: ``model`` (a zoo name, a checkpoint folder or an ``.onnx`` file), ``input_size``
(px), ``precision``, ``batch``, ``power_mode`` (a mode of the device profile, or empty for its default),
``tensorrt`` (e.g. 8.6.2, or empty), ``measured_ms`` and ``timed`` (``gpu_compute``: trtexec's GPU Compute
Time; ``host_sync``: a host timer around a synchronised run; ``host_copy``: trtexec's Latency, copies
included).
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from compress.errors import UserInputError
from runtime.trtexec import PRECISIONS

MEASUREMENT_COLUMNS = ("model", "input_size", "precision", "batch", "power_mode", "tensorrt", "measured_ms", "timed")
STORE_ENV = "COMPRESS_CALIBRATION"
# 10th-90th percentile of measured / corrected estimate over the same-family anchor/other pairs of the
# published setups, the anchor one measurement: `python bench/one_point.py` (bench/history/diary.md §Issue 34)
ONE_POINT_BAND = (0.834, 1.199)


@dataclass(frozen=True)
class Measurement:
    """One row of a measurements file."""

    model: str
    input_size: int
    precision: str
    batch: int
    power_mode: str | None
    tensorrt: str | None
    measured_ms: float
    timed: str


@dataclass(frozen=True)
class DeviceCorrection:
    """The stored correction of one device profile: ``scales[precision][architecture]`` multiplies the
    estimates of that architecture in that precision."""

    device: str
    scales: dict[str, dict[str, float]]
    points: dict[str, dict[str, int]]  # measurements behind each scale
    band: dict[str, dict[str, tuple[float, float]]]  # measured / corrected estimate
    rows: list[dict[str, Any]] = field(default_factory=list)  # each measurement with its estimate and ratio
    fitted: str = ""

    def find(self, precision: str, architecture: str) -> tuple[float, int, tuple[float, float]] | None:
        """``(scale, points, band)`` for ``architecture`` in ``precision``, or None."""
        k = self.scales.get(precision, {}).get(architecture)
        return None if k is None else (k, self.points[precision][architecture], self.band[precision][architecture])


def store_path(path: str | Path | None = None) -> Path:
    """The correction store: ``path``, else ``$COMPRESS_CALIBRATION``, else ``~/.config/compress-edge/calibration.json``."""
    if path:
        return Path(path)
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV])
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "compress-edge" / "calibration.json"


def read_measurements(path: str | Path, precisions: Iterable[str], timings: Iterable[str]) -> list[Measurement]:
    """The rows of a measurements CSV, every problem one line naming the row and how to fix it."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"--calibrate '{path}' does not exist; write a CSV with the columns "
                             f"{', '.join(MEASUREMENT_COLUMNS)} (compress profile --help).")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MEASUREMENT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserInputError(f"{path}: missing column(s) {', '.join(missing)}; the header must be "
                                 f"{','.join(MEASUREMENT_COLUMNS)}.")
        rows = list(reader)
    if not rows:
        raise UserInputError(f"{path}: no measurements below the header; add one row per measured model.")
    precisions, timings = tuple(precisions), tuple(timings)
    out = []
    for i, r in enumerate(rows, start=2):
        where = f"{path} line {i}"
        try:
            size, batch, ms = int(r["input_size"]), int(r["batch"]), float(r["measured_ms"])
        except (TypeError, ValueError):
            raise UserInputError(f"{where}: input_size and batch must be whole numbers and measured_ms a number "
                                 f"(got {r['input_size']!r}, {r['batch']!r}, {r['measured_ms']!r}).") from None
        if not (ms > 0 and math.isfinite(ms)) or size < 1 or batch < 1:
            raise UserInputError(f"{where}: measured_ms must be a positive time in ms and input_size, batch ≥ 1 "
                                 f"(got {ms:g} ms, {size} px, batch {batch}).")
        if r["precision"] not in precisions:
            raise UserInputError(f"{where}: precision '{r['precision']}' is not one of {', '.join(precisions)}.")
        if r["timed"] not in timings:
            raise UserInputError(f"{where}: timed '{r['timed']}' is not one of {', '.join(timings)} (gpu_compute: "
                                 "trtexec's GPU Compute Time; host_copy: trtexec's Latency).")
        if not (r["model"] or "").strip():
            raise UserInputError(f"{where}: the model is empty; give a zoo name, a checkpoint folder or an .onnx file.")
        out.append(Measurement(r["model"].strip(), size, r["precision"], batch, (r["power_mode"] or "").strip() or None,
                               (r["tensorrt"] or "").strip() or None, ms, r["timed"]))
    return out


def fit_scales(triples: Iterable[tuple[str, float, float]]) -> tuple[dict[str, float], dict[str, int]]:
    """``(scales, points)`` from ``(key, measured_ms, estimated_ms)``: the geometric mean of measured ÷
    estimated per key."""
    logs: dict[str, list[float]] = {}
    for key, measured, estimated in triples:
        logs.setdefault(key, []).append(math.log(measured / estimated))
    return ({k: math.exp(sum(v) / len(v)) for k, v in logs.items()}, {k: len(v) for k, v in logs.items()})


def fit_correction(device: str, rows: list[Measurement],
                   estimate: Callable[[Measurement], tuple[float, str]]) -> DeviceCorrection:
    """The correction ``rows`` (measured on ``device``) imply; ``estimate(row)`` is ``(the uncorrected
    prediction of what the row's timer read in ms, the row's architecture)``."""
    table = []
    for r in rows:
        e, arch = estimate(r)
        table.append({**asdict(r), "architecture": arch, "estimated_ms": round(e, 6), "ratio": round(r.measured_ms / e, 4)})
    return correction_from_rows(device, table)


def correction_from_rows(device: str, table: list[dict[str, Any]]) -> DeviceCorrection:
    """The correction of ``table`` (rows with ``precision``, ``architecture``, ``measured_ms`` and
    ``estimated_ms``): a geometric-mean scale per precision and architecture, its band and point count."""
    scales: dict[str, dict[str, float]] = {}
    points: dict[str, dict[str, int]] = {}
    band: dict[str, dict[str, tuple[float, float]]] = {}
    for p in sorted({r["precision"] for r in table}):
        mine = [r for r in table if r["precision"] == p]
        k, n = fit_scales((r["architecture"], r["measured_ms"], r["estimated_ms"]) for r in mine)
        scales[p], points[p] = {a: round(v, 6) for a, v in k.items()}, n
        band[p] = {}
        for a in k:
            resid = [r["measured_ms"] / (k[a] * r["estimated_ms"]) for r in mine if r["architecture"] == a]
            band[p][a] = (round(min(ONE_POINT_BAND[0], *resid), 4), round(max(ONE_POINT_BAND[1], *resid), 4))
    return DeviceCorrection(device, scales, points, band, table,
                            _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def add_measurement(device: str, row: dict[str, Any], store: str | Path | None = None) -> tuple[DeviceCorrection, Path]:
    """Add one measured row (as ``correction_from_rows`` reads them, e.g. from ``compress profile --remote``)
    to ``device``'s stored rows — replacing an earlier one of the same model and setup — refit and store."""
    same = ("model", "input_size", "precision", "batch", "power_mode", "tensorrt", "timed")
    old = stored_correction(device, store)
    rows = [r for r in (old.rows if old else []) if any(r.get(k) != row.get(k) for k in same)]
    corr = correction_from_rows(device, [*rows, row])
    return corr, save_correction(corr, store)


def load_store(path: str | Path | None = None) -> dict[str, DeviceCorrection]:
    """Every stored correction by device name ({} when there is no store)."""
    p = store_path(path)
    if not p.is_file():
        return {}
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
        return {name: DeviceCorrection(**{**d, "band": {p: {a: tuple(v) for a, v in by.items()}
                                                         for p, by in d["band"].items()}})
                for name, d in raw.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UserInputError(f"the calibration store {p} is not readable ({exc}); fix it or delete it and run "
                             "`compress profile --calibrate FILE --target DEV` again.") from None


def save_correction(corr: DeviceCorrection, path: str | Path | None = None) -> Path:
    """Store ``corr`` (replacing that device's earlier correction, keeping the others); atomic."""
    from compress.io import write_text_atomic

    p = store_path(path)
    store = load_store(p)
    store[corr.device] = corr
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(p, json.dumps({k: asdict(v) for k, v in sorted(store.items())}, indent=1) + "\n")
    return p


def stored_correction(device: str, path: str | Path | None = None) -> DeviceCorrection | None:
    """The correction stored for exactly this device profile, if any."""
    return load_store(path).get(device)


def corrected(estimate: dict[str, Any], corr: DeviceCorrection | None, architecture: str) -> dict[str, Any]:
    """An estimate's dict (``LatencyEstimate.to_dict``) with the device's correction for ``architecture``
    applied to its latency, band and throughput, labelled; without one for it, a note says why not."""
    p = estimate.get("precision", "")
    found = corr.find(p, architecture) if corr is not None else None
    if found is None:
        if corr is None:
            return estimate
        why = (f"not calibrated: this device's stored measurements ({', '.join(sorted({r['architecture'] for r in corr.rows}))}) "
               f"include no {architecture} in {p}; a measurement of another architecture does not make its estimate "
               "better (bench/one_point.py)")
        return {**estimate, "assumptions": [*estimate.get("assumptions", []), why]}
    k, n, (lo, hi) = found
    ms = estimate["latency_ms"] * k
    label = f"ESTIMATE (calibrated on {n} measurement{'s' * (n != 1)} of {architecture} on this device)"
    return {**estimate, "latency_ms": ms, "low_ms": ms * lo, "high_ms": ms * hi,
            "throughput_ips": estimate["throughput_ips"] / k, "label": label,
            "calibration": {"scale": k, "points": n, "band": [lo, hi], "architecture": architecture,
                            "fitted": corr.fitted},
            "assumptions": [*estimate.get("assumptions", []),
                            f"{label}: × {k:.3f} (measured ÷ estimated, geometric mean), band {lo:.2f}–{hi:.2f}× from "
                            "one same-architecture measurement on published data and the points' residuals"]}


def calibrate_device(measurements: str | Path, target: str, store: str | Path | None = None
                     ) -> tuple[DeviceCorrection, Path]:
    """Fit the correction for device profile ``target`` from a measurements CSV and store it; returns it and
    where it was stored. Every row is checked (columns, times, precision, power mode, model) before any fit."""
    from profiles.counting.analysis import DTYPE_BYTES
    from profiles.device import load_device_profile
    from profiles.estimator.estimate import TIMINGS, estimate_latency, host_overhead_ms, load_efficiency
    from profiles.models import analyze_model, architecture_of, resolve_profiled_model

    device = load_device_profile(target.partition("@")[0])
    rows = read_measurements(measurements, [p for p in PRECISIONS if p in DTYPE_BYTES], TIMINGS)
    resolved = []
    for i, r in enumerate(rows, start=2):
        try:
            device.mode(r.power_mode)
            t = resolve_profiled_model(r.model, input_size=r.input_size)
            a = analyze_model(t, r.batch)
        except UserInputError as exc:
            raise UserInputError(f"{measurements} line {i}: {exc}") from None
        if a is None:
            raise UserInputError(f"{measurements} line {i}: '{r.model}' has no graph to estimate from (an engine "
                                 "without its ONNX); name the .onnx file or the checkpoint instead.")
        resolved.append((a, architecture_of(t)))
    eff = load_efficiency()
    by_row = {id(r): ra for r, ra in zip(rows, resolved)}

    def estimate(r: Measurement) -> tuple[float, str]:
        a, arch = by_row[id(r)]
        gpu = estimate_latency(a, device, r.precision, r.power_mode, detail=False, tensorrt=r.tensorrt).latency_ms
        return gpu + host_overhead_ms(r.timed, device, r.power_mode, a, eff), arch

    corr = fit_correction(device.name, rows, estimate)
    return corr, save_correction(corr, store)
