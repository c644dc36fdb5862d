"""After one measurement of a module, how close are the estimates of its other models? (issue 34, item 2)

    python bench/one_point.py [--json bench/out/one_point.json]

Every published point is predicted by the fit that never saw its module (leave-one-device-out, as the
estimator ships to a user whose Jetson it never saw). Then, within each *setup* a user measures in (module,
precision, what was timed, TensorRT, power mode), each point in turn is the user's one measurement: the
correction measured ÷ estimated (``profiles.calibration.correction.fit_scales``) multiplies the estimates of the
setup's other points. The table gives, per module and precision, the median |error| before (no
measurement) and after one (over every anchor/other pair), and the share of pairs within 10 %. The
pooled 10th–90th percentiles of measured ÷ corrected give the band a one-point calibration prints.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def setup_of(p) -> tuple:
    return (p.module, p.precision, p.timing, p.tensorrt, p.power_mode)


def one_point_pairs(errors) -> tuple[dict, list[float]]:
    """``({(module, precision): {"before", "after", "family": [|error|…]}}, measured/corrected ratios of every
    pair, of the same-family pairs)``."""
    from profiles.calibration.correction import fit_scales

    setups = defaultdict(list)
    for e in errors:
        setups[setup_of(e.point)].append(e)
    out: dict = defaultdict(lambda: {"before": [], "after": [], "family": [], "setups": 0})
    pooled: list[float] = []
    family_ratios: list[float] = []
    for key, es in setups.items():
        cell = out[key[:2]]
        cell["before"] += [abs(e.predicted_ms / e.point.latency_ms - 1) for e in es]
        if len(es) < 2:
            continue
        cell["setups"] += 1
        for anchor in es:
            scale = fit_scales([(anchor.point.precision, anchor.point.latency_ms, anchor.predicted_ms)])[0]
            k = scale[anchor.point.precision]
            for e in es:
                if e is not anchor:
                    cell["after"].append(abs(k * e.predicted_ms / e.point.latency_ms - 1))
                    pooled.append(e.point.latency_ms / (k * e.predicted_ms))
                    if e.point.family == anchor.point.family:  # e.g. the teacher measured, its pruned students
                        cell["family"].append(abs(k * e.predicted_ms / e.point.latency_ms - 1))
                        family_ratios.append(e.point.latency_ms / (k * e.predicted_ms))
    return dict(out), pooled, family_ratios


def main(argv: list[str] | None = None) -> int:
    from profiles.estimator.bands import ratio_band
    from profiles.calibration.fit import calibrate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    cal = calibrate(write=False)
    cells, pooled, family_ratios = one_point_pairs(cal.by_device)
    rows = []
    print("| module | precision | points | setups with ≥ 2 | median abs. error before | after one measurement | pairs "
          "within 10 % | after one of the same family |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (module, precision), c in sorted(cells.items()):
        if len(c["before"]) < 5 or not c["after"]:
            continue
        after = statistics.median(c["after"])
        within = sum(a <= 0.10 for a in c["after"]) / len(c["after"])
        before = statistics.median(c["before"])
        fam = statistics.median(c["family"]) if c["family"] else None
        rows.append({"module": module, "precision": precision, "points": len(c["before"]), "before": before,
                     "after": after, "within_10pct": within, "pairs": len(c["after"]), "same_family": fam,
                     "family_pairs": len(c["family"])})
        print(f"| {module} | {precision} | {len(c['before'])} | {c['setups']} | {100 * before:.1f} % | "
              f"{100 * after:.1f} % | {100 * within:.0f} % of {len(c['after'])} | "
              + (f"{100 * fam:.1f} % ({len(c['family'])} pairs) |" if fam is not None else "— |"))
    every_before = [b for c in cells.values() for b in c["before"]]
    every_after = [a for c in cells.values() for a in c["after"]]
    every_family = [a for c in cells.values() for a in c["family"]]
    low, high = ratio_band(pooled)
    f_low, f_high = ratio_band(family_ratios)
    print(f"\nall points: before {100 * statistics.median(every_before):.1f} % ({len(every_before)} points), after one "
          f"measurement {100 * statistics.median(every_after):.1f} % ({len(every_after)} pairs), of the same family "
          f"{100 * statistics.median(every_family):.1f} % ({len(every_family)} pairs, "
          f"{100 * sum(a <= 0.1 for a in every_family) / len(every_family):.0f} % within 10 %); "
          f"80 % band after one measurement {low:.3f}× – {high:.3f}×, of the same family {f_low:.3f}× – {f_high:.3f}×")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "band": [low, high], "family_band": [f_low, f_high]},
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
