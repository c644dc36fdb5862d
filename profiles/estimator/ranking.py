"""Does the latency estimate put models in the right order on one device? Kendall's τ-b of estimated
against published latency among the models measured together (same device, power mode, precision, input
size, batch, timer and TensorRT), beside the τ that MACs alone would give.

Choosing a student for a device needs the order right more than the absolute value: a candidate ranked
faster than it is wins a search it should lose.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

MIN_MODELS = 8  # the bar: a device table with at least this many models is judged


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b of two equally long sequences (ties in either count as neither concordant nor
    discordant; τ-b corrects the denominator for them). NaN when either has no two distinct values."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau_b: {len(x)} values against {len(y)}")
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denom if denom else float("nan")


@dataclass(frozen=True)
class RankRow:
    group: str  # "device mode precision px timer"
    models: int
    tau_estimate: float  # τ of the estimates under test against the published latencies
    tau_macs: float  # τ of MACs against the published latencies (what a MACs budget assumes)
    swapped: tuple[tuple[str, str], ...]  # pairs the estimate orders the wrong way (faster listed first)


def group_key(point: Any) -> str:
    """The measurements one table of one source compares: same device, mode, precision, size, timer."""
    return (f"{point.device} {point.power_mode} {point.precision} {point.input_size}px b{point.batch} "
            f"{point.timing}, TensorRT {point.tensorrt}")


def rank_rows(errors: Iterable[Any], macs_of: Callable[[Any], float], min_models: int = 3) -> list[RankRow]:
    """One row per group of at least ``min_models`` points (``errors``: ``PointError``s, whose ``point``
    is a published measurement and ``predicted_ms`` the estimate), sorted by group."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for e in errors:
        groups[group_key(e.point)].append(e)
    rows = []
    for g in sorted(groups):
        es = groups[g]
        if len(es) < min_models:
            continue
        measured = [e.point.latency_ms for e in es]
        swapped = tuple(sorted((a.point.model, b.point.model) for a in es for b in es
                               if a.point.latency_ms < b.point.latency_ms and a.predicted_ms > b.predicted_ms))
        rows.append(RankRow(g, len(es), kendall_tau_b([e.predicted_ms for e in es], measured),
                            kendall_tau_b([float(macs_of(e.point)) for e in es], measured), swapped))
    return rows


def rank_markdown(rows: list[RankRow], title: str) -> list[str]:
    """The τ table (groups with at least ``MIN_MODELS`` models in bold)."""
    lines = [f"| {title} | models | τ estimate | τ MACs | pairs the estimate swaps (measured faster first) |",
             "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        name = f"**{r.group}**" if r.models >= MIN_MODELS else r.group
        pairs = ", ".join(f"{a} < {b}" for a, b in r.swapped[:6]) + (" …" if len(r.swapped) > 6 else "")
        lines.append(f"| {name} | {r.models} | {r.tau_estimate:.2f} | {r.tau_macs:.2f} | {pairs or '–'} |")
    return lines
