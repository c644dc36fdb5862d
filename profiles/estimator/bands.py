"""Error bands of Jetson latency estimates: where measured latencies fell around the estimate.

Leave-one-device-out cross-validation (``profiles.calibration``) predicts every published point from a
fit that never saw its module, so each point gives one ratio measured / estimated. The band printed with
an estimate is the 10th–90th percentile of all those ratios, widened to the percentiles of the module's
own ratios where that module has at least ``MIN_POINTS`` of them: a module the fit explains badly (Xavier
NX) prints the wider band it earned, and no module prints a narrower band than the overall one (a few
points cannot show that a module is easier). Modules without published points get the overall band.
``python -m profiles.calibration`` writes the per-module bands to ``calibration/bands.csv``.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from compress.errors import UserInputError

BANDS_FILE = Path(__file__).parents[1] / "calibration" / "bands.csv"
COVERAGE = 0.8  # share of measured / estimated ratios a band holds
MIN_POINTS = 5  # held-out points a module needs before its own band counts
# a developer kit and the module inside it are one device for cross-validation and for bands
DEVKIT_MODULES = {"jetson-orin-nano-super-devkit": "jetson-orin-nano-8gb"}


def calibration_module(device: str) -> str:
    """The physical module a device profile stands for (developer kits map to their module)."""
    return DEVKIT_MODULES.get(device, device)


def ratio_band(ratios: Iterable[float], coverage: float = COVERAGE) -> tuple[float, float]:
    """[low, high] multipliers holding ``coverage`` of ``ratios`` (nearest-rank percentiles)."""
    r = sorted(ratios)
    if not r:
        raise UserInputError("an error band needs at least one measured / estimated ratio.")
    i = int(round((1 - coverage) / 2 * (len(r) - 1)))
    return r[i], r[len(r) - 1 - i]


def module_bands(pairs: Iterable[tuple[str, float]],
                 min_points: int = MIN_POINTS) -> dict[str, tuple[float, float, int]]:
    """``{module: (low, high, points)}`` from ``(module, measured / estimated)`` pairs; modules with fewer
    than ``min_points`` pairs are left out."""
    by: dict[str, list[float]] = {}
    for module, ratio in pairs:
        by.setdefault(module, []).append(ratio)
    return {m: (*ratio_band(r), len(r)) for m, r in sorted(by.items()) if len(r) >= min_points}


def bands_csv(bands: dict[str, tuple[float, float, int]]) -> str:
    rows = ["module,low,high,points"] + [f"{m},{lo:.6g},{hi:.6g},{n}" for m, (lo, hi, n) in bands.items()]
    return "\n".join(rows) + "\n"


@lru_cache(maxsize=4)
def load_module_bands(path: Path = BANDS_FILE) -> dict[str, tuple[float, float, int]]:
    """The per-module bands the last calibration stored ({} when there are none)."""
    if not Path(path).is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return {r["module"]: (float(r["low"]), float(r["high"]), int(r["points"])) for r in csv.DictReader(fh)}
    except (KeyError, ValueError) as exc:
        raise UserInputError(f"{path} is not a valid band table ({exc}); re-run `python -m profiles.calibration`.") \
            from exc


def error_band(low: float, high: float, device: str,
               bands: dict[str, tuple[float, float, int]]) -> tuple[float, float, str]:
    """(low, high, why): the overall band ``low``–``high`` widened to ``device``'s module band in ``bands``."""
    module = calibration_module(device)
    if module not in bands:
        return low, high, f"fewer than {MIN_POINTS} published points on this module: the all-modules band"
    m_lo, m_hi, n = bands[module]
    return (min(low, m_lo), max(high, m_hi),
            f"{module} held out: {n} published points at {m_lo:.2f}–{m_hi:.2f}×, all modules {low:.2f}–{high:.2f}×")
