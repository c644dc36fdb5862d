"""Which file to ship on each device: the pipeline report's opening lines (issue 31, item 2).

Per device — every estimated device profile of the recipe and the host the files were measured on — the
most accurate exported file whose latency (ESTIMATED for a profile, measured on the host) and memory
(file + peak activations) meet the recipe's ``profile.budget``; files whose test accuracies are within one
standard error of a difference of the best (``keeps``, on the test split's size) are equal by the evidence,
and the fastest of them wins. A Jetson runs TensorRT, so the CPU-flavour INT8 file (ONNX Runtime's
asymmetric uint8) is a candidate on the host only.
When none meets the budget, the fastest file, and the line says so. Without a budget for a device, the
most accurate file, and the line says that no limit was given. Files that failed their parity check and
checkpoint-only rows (no file to ship) are never recommended.

``profile.budget`` is ``{latency_ms: MS, memory_mb: MB}`` for every device, or per device
``{DEVICE: {latency_ms, memory_mb}}`` with DEVICE a recipe target (``NAME@MODE`` as written) or ``host``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compress.engine.loop import keeps
from compress.errors import UserInputError
from compress.io import to_jsonable
from compress.jobs import formats as fmt

LIMITS = ("latency_ms", "memory_mb")
HOST = "host"


@dataclass(frozen=True)
class Recommendation:
    """What to ship on ``device`` and why (latency in ms per image at batch 1, memory in MiB)."""

    device: str
    model: str | None
    precision: str | None
    oa: float | None
    latency_ms: float | None
    band_ms: tuple[float, float] | None  # the estimate's 80 % band; None when measured
    memory_mb: float | None
    meets: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    def line(self) -> str:
        if self.model is None:
            return f"{self.device}: nothing to recommend ({self.why})."
        how = "measured" if self.band_ms is None else f"ESTIMATED, {fmt.band(*self.band_ms)}"
        mem = f", {self.memory_mb:.1f} MiB" if self.memory_mb is not None else ""
        return (f"{self.device}: ship {self.model} {self.precision} — {fmt.pct(self.oa)} % OA, {fmt.ms(self.latency_ms)} ms "
                f"({how}){mem}; {self.why}.")


def check_budget(budget: dict[str, Any] | None, devices: list[str]) -> None:
    """One line for a budget that names an unknown device or limit, or a limit that is not a positive number."""
    if not budget:
        return
    per_device = not (set(budget) <= set(LIMITS))
    for device, limits in (budget.items() if per_device else [("every device", budget)]):
        if per_device and device not in (*devices, HOST):
            raise UserInputError(f"profile.budget: '{device}' is not a device of this recipe; use one of "
                                 f"{', '.join([*devices, HOST])}, or give {{latency_ms, memory_mb}} for all of them.")
        if not isinstance(limits, dict) or not limits or set(limits) - set(LIMITS):
            raise UserInputError(f"profile.budget for {device}: give latency_ms and/or memory_mb, e.g. "
                                 "{latency_ms: 2.0, memory_mb: 50}.")
        for k, v in limits.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                raise UserInputError(f"profile.budget for {device}: {k} must be a positive number, got {v!r}.")


def limits_for(budget: dict[str, Any] | None, device: str) -> dict[str, float]:
    if not budget:
        return {}
    if set(budget) <= set(LIMITS):
        return dict(budget)
    return dict(budget.get(device) or {})


def _latency(r: dict[str, Any], device: str) -> tuple[float | None, tuple[float, float] | None]:
    if device == HOST:
        return r.get("host_ms"), None
    e = (r.get("estimates") or {}).get(device)
    return (e["ms"], (e["low_ms"], e["high_ms"])) if e else (None, None)


def memory_mb(r: dict[str, Any]) -> float | None:
    """File plus peak activations (MiB), what the device must hold to run the file at batch 1."""
    if r.get("file_bytes") is None:
        return None
    return (r["file_bytes"] + (r.get("peak_act_bytes") or 0)) / 2**20


def recommend(rows: list[dict[str, Any]], devices: list[str], budget: dict[str, Any] | None,
              n_test: int | None = None) -> list[Recommendation]:
    """One recommendation per device in ``devices`` (and the host when rows were measured there); ``n_test``
    is the number of test images the accuracies were measured on (None: strictly the most accurate)."""
    ship = [r for r in rows if r.get("file") and r.get("oa") is not None and not r.get("parity_failed")]
    out = []
    for device in [*devices, *([HOST] if any(r.get("host_ms") for r in ship) else [])]:
        limits = limits_for(budget, device)
        runs_here = [r for r in ship if device == HOST or r.get("flavour") != "cpu"]  # ORT's flavour: not TensorRT
        timed = [(r, *_latency(r, device)) for r in runs_here]
        timed = [(r, ms, band) for r, ms, band in timed if ms is not None]
        if not timed:
            out.append(Recommendation(device, None, None, None, None, None, None, False, "no file has a latency here"))
            continue

        def over(r: dict[str, Any], ms: float) -> list[str]:
            why = []
            if "latency_ms" in limits and ms > limits["latency_ms"]:
                why.append(f"latency {ms:.3g} > {limits['latency_ms']:g} ms")
            mem = memory_mb(r)
            if "memory_mb" in limits and (mem is None or mem > limits["memory_mb"]):
                why.append(f"memory {'unknown' if mem is None else f'{mem:.1f} MiB'} > {limits['memory_mb']:g} MiB")
            return why

        fits = [(r, ms, band) for r, ms, band in timed if not over(r, ms)]
        if fits:
            top = max(x[0]["oa"] for x in fits)
            tied = [x for x in fits if (keeps(x[0]["oa"], top, n_test) if n_test else x[0]["oa"] == top)]
            r, ms, band = min(tied, key=lambda x: (x[1], -x[0]["oa"]))
            better = [(b, over(b, bms)) for b, bms, _ in timed if b["oa"] > top]
            noise = (f"the fastest of {len(tied)} files within one SE of the most accurate ({100 * top:.2f} % on "
                     f"{n_test} test images)" if len(tied) > 1 else "the most accurate file")
            if not limits:
                why = f"{noise}; no limit given (profile.budget sets latency_ms / memory_mb)"
            elif better:
                b, reasons = max(better, key=lambda x: x[0]["oa"])
                why = (f"{noise} within the budget; {b['model']} {b['precision']} ({100 * b['oa']:.2f} %) "
                       f"is over it: {', '.join(reasons)}")
            else:
                why = f"{noise}, and within the budget ({_limits_text(limits)})"
            out.append(Recommendation(device, r["model"], r["precision"], r["oa"], ms, band, memory_mb(r), True, why))
        else:
            r, ms, band = min(timed, key=lambda x: (x[1], -x[0]["oa"]))
            out.append(Recommendation(device, r["model"], r["precision"], r["oa"], ms, band, memory_mb(r), False,
                                      f"NO file meets the budget ({_limits_text(limits)}); this is the fastest: "
                                      f"{', '.join(over(r, ms))}"))
    return out


def _limits_text(limits: dict[str, float]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} ≤ {v:g}" for k, v in limits.items())
