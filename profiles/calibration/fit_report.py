"""Calibration results (per-point errors, their summary) and ``fit_report.md``: the fitted factors,
cross-validated errors by device / precision / family, every point."""
from __future__ import annotations

import datetime as _dt
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

_FACTORS = (("conv", "k×k conv, fraction of the dense peak (the CUDA-core peak on Maxwell / Pascal)"),
            ("pointwise", "1×1 conv"), ("depthwise", "depthwise conv"), ("grouped", "grouped conv"),
            ("fc", "matmul / fully connected"),
            ("int8", "INT8 fraction of its (2× FP16) peak, relative to the FP16 fraction"),
            ("fp32", "FP32 (TF32 on Ampere) fraction, relative to the FP16 fraction"),
            ("memory", "fraction of memory bandwidth"),
            ("kernel_cycles", "fixed GPU cycles per kernel (launch, ramp-up, tail), TensorRT 8.4+ (JetPack 5/6)"),
            ("kernel_cycles_trt7", "the same before TensorRT 8.4 (JetPack 4: 7.x–8.2; Nano and TX2 estimates, the torch2trt tables)"),
            ("host_sync_us", "host-timed overhead per inference at a 2 GHz CPU (µs)"),
            ("host_copy_us", "fixed part of trtexec's Latency (H2D + compute + D2H) beyond the copies (µs)"),
            ("copy", "fraction of bandwidth reached by the input/output copy"),
            ("volta", "compute fractions on Volta tensor cores (Xavier; FP16 and INT8), relative to CUDA-core GPUs"),
            ("ampere", "the same on Ampere tensor cores (Orin; FP16, INT8 and TF32)"))


@dataclass(frozen=True)
class PointError:
    point: Any  # profiles.calibration.fit.PublishedPoint
    predicted_ms: float

    @property
    def ratio(self) -> float:
        return self.predicted_ms / self.point.latency_ms


def summary(errors: list[PointError]) -> dict[str, float]:
    """Median / max |relative error| and geometric-mean ratio."""
    if not errors:
        return {"n": 0}
    rel = sorted(abs(e.ratio - 1.0) for e in errors)
    gm = math.exp(sum(math.log(e.ratio) for e in errors) / len(errors))
    return {"n": len(errors), "median_abs_rel_error": rel[len(rel) // 2], "max_abs_rel_error": rel[-1],
            "geomean_ratio": gm}


@dataclass(frozen=True)
class Calibration:
    efficiency: Any  # profiles.estimator.estimate.Efficiency
    fitted: list[PointError]
    by_device: list[PointError]
    by_family: list[PointError]
    bands: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # per module, profiles.estimator.bands
    macs: dict[tuple[str, int, int], int] = field(default_factory=dict)  # (model, batch, px) → MACs


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _table(errors: list[PointError], by: Callable[[PointError], str], title: str) -> list[str]:
    groups: dict[str, list[PointError]] = defaultdict(list)
    for e in errors:
        groups[by(e)].append(e)
    lines = [f"| {title} | points | median abs error | max abs error | geo-mean est./meas. |", "| --- | ---: | ---: | ---: | ---: |"]
    for g in sorted(groups):
        s = summary(groups[g])
        lines.append(f"| {g} | {s['n']} | {_pct(s['median_abs_rel_error'])} | {_pct(s['max_abs_rel_error'])} | "
                     f"{s['geomean_ratio']:.2f} |")
    return lines


def fit_report_markdown(cal: Calibration) -> str:
    e = cal.efficiency
    lines = ["# Latency estimator calibration report", "",
             f"Written {_dt.date.today().isoformat()} by `python -m profiles.calibration` from `published.csv` "
             "(sources in SOURCES.md). Cross-validated rows come from fits that never saw the held-out device "
             "(module) or model family.", "",
             "| factor | value | meaning |", "| --- | ---: | --- |"]
    lines += [f"| {k} | {getattr(e, k):.4g} | {text} |" for k, text in _FACTORS]
    lines += ["", f"Error band printed with every estimate (10th–90th percentile of measured / estimated, "
              f"leave-one-device-out): **{e.band_low:.2f}× – {e.band_high:.2f}×**, widened to a module's own "
              "where it has one (below; `bands.csv`).", "", "## Summary", "",
              "| evaluation | points | median abs error | max abs error | geo-mean est./meas. |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for name, errs in (("fit on all points", cal.fitted), ("leave one device out", cal.by_device),
                       ("leave one family out", cal.by_family)):
        s = summary(errs)
        lines.append(f"| {name} | {s['n']} | {_pct(s['median_abs_rel_error'])} | {_pct(s['max_abs_rel_error'])} | "
                     f"{s['geomean_ratio']:.2f} |")
    lines += ["", "## Leave one device out", ""] + _table(cal.by_device, lambda x: x.point.module, "held-out device")
    if cal.bands:
        lines += ["", "| module | held-out points | its 80 % band | band printed with its estimates |",
                  "| --- | ---: | ---: | ---: |"]
        lines += [f"| {m} | {n} | {lo:.2f}× – {hi:.2f}× | {min(lo, e.band_low):.2f}× – {max(hi, e.band_high):.2f}× |"
                  for m, (lo, hi, n) in cal.bands.items()]
    lines += [""] + _table(cal.by_device, lambda x: x.point.precision, "precision")
    lines += [""] + _table(cal.by_device, lambda x: f"{x.point.module} {x.point.precision}", "device × precision")
    lines += ["", "## Leave one family out", ""] + _table(cal.by_family, lambda x: x.point.family, "held-out family")
    if cal.macs:
        from profiles.estimator.ranking import MIN_MODELS, rank_markdown, rank_rows

        def macs_of(p):
            return cal.macs[(p.model, p.batch, p.input_size)]

        lines += ["", "## Ranking: Kendall's τ among the models of one table", "",
                  "Selecting a student for a device needs the order of the estimates right. τ-b of estimated "
                  "against published latency among the models each source measured together, with the "
                  "leave-one-device-out estimates (fits that never saw the device); tables of ≥ 5 models, "
                  f"those with ≥ {MIN_MODELS} models in bold. τ MACs is the order a MACs budget assumes.", ""]
        lines += rank_markdown(rank_rows(cal.by_device, macs_of, 5), "table (leave one device out)")
        lines += ["", "The same with the fit on all points:", ""]
        lines += rank_markdown(rank_rows(cal.fitted, macs_of, 5), "table (fit on all points)")
    lines += ["", "## Every point", "",
              "| device | mode | model | px | precision | timed | measured ms | fit ms | device-out ms | family-out ms |",
              "| --- | --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: |"]
    dev = {id(x.point): x for x in cal.by_device}
    fam = {id(x.point): x for x in cal.by_family}
    for f in cal.fitted:
        p = f.point
        lines.append(f"| {p.device} | {p.power_mode} | {p.model} | {p.input_size} | {p.precision} | {p.timing} | "
                     f"{p.latency_ms:g} | {f.predicted_ms:.3g} | {dev[id(p)].predicted_ms:.3g} | "
                     f"{fam[id(p)].predicted_ms:.3g} |")
    return "\n".join(lines) + "\n"
