"""One formatter per kind of number in reports and tables, so the same value reads the same everywhere.

Missing values print as ``–``. Accuracies are fractions in, percent out; latencies are milliseconds at three
significant digits, their bands too.
"""
from __future__ import annotations

from typing import Any, Mapping

MISSING = "–"


def pct(frac: float | None, digits: int = 2) -> str:
    """An accuracy given as a fraction, in percent: 0.8455 → ``84.55``."""
    return MISSING if frac is None else f"{100 * frac:.{digits}f}"


def num(v: float | None, scale: float = 1.0, digits: int = 3) -> str:
    """``v / scale`` with ``digits`` decimals: MACs in G (scale 1e9), bytes in MB (2**20), kappa (digits 4)."""
    return MISSING if v is None else f"{v / scale:.{digits}f}"


def ms(v: float | None) -> str:
    """A latency in ms, three significant digits."""
    return MISSING if v is None else f"{v:.3g}"


def band(low: float | None, high: float | None) -> str:
    """An estimate's 80 % band in ms: ``0.61–0.83``."""
    return MISSING if low is None or high is None else f"{low:.3g}–{high:.3g}"


def estimate(e: Mapping[str, Any] | None) -> str:
    """A device estimate (``ms``, ``low_ms``, ``high_ms``) as ``0.704 (0.61–0.83)``."""
    return MISSING if not e else f"{ms(e['ms'])} ({band(e['low_ms'], e['high_ms'])})"


def points(delta: float | None) -> str:
    """A difference of two accuracies (fractions) in points, signed: ``+0.55``."""
    return MISSING if delta is None else f"{100 * delta:+.2f}"
