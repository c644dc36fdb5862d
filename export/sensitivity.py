"""Keeping the fewest layers in float that bring the INT8 file within a budget of accuracy points.

The budget is judged where it means something, on ``images`` (up to 1,000 validation and training images,
so one image is 0.1 pt) against the FP32 model: within budget when at most B % of them change their top-1
(a drop needs a changed prediction, so this bounds the accuracy loss on those images with no labels), or,
when their labels are given, when the paired accuracy drop is at most B points (reported with its 95 %
interval). The second rule matters for models with many low-margin predictions, where INT8 flips several
percent of them between classes at no cost in accuracy and no layer kept in float stops it: judging by
agreement alone would keep half the network in float and pay its latency for nothing. Training images
are memorised better than unseen ones, so their flips fall more often on correct predictions and the
drop measured on them errs on the safe side.

1. Quantise every weighted layer; measure. Then the cross-layer-equalised source (``equalised``), quantised
   the same way, and each cheap fix (``fixes``: AdaRound, bias correction), applied to that file, measured on
   the same images; each is kept when it judges strictly better (fewer changed top-1 predictions, unless
   labelled and the OA drop differs beyond chance: ``better``), never otherwise. Within budget: done.
2. Sensitivity: for each weighted layer, quantise all but that one and measure the disagreement it removes.
3. Greedy fallback: keep layers in float in order of sensitivity (ties: graph order, so the choice is
   deterministic), re-measuring after each, with ONNX Runtime CPU latency, until within the budget — or
   until ``max_float`` of the layers are float; then the budget is reported unreachable with the best found.
   The fixes kept in step 1 are applied to every one of these trials (not to the sensitivity sweep, whose
   ranking they would barely change at one correction pass per layer).

Calibration runs once (the ranges are cached), so every trial only re-quantises.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from export.int8 import Int8Flavour, QuantizeInfo, quantize_int8, scored_as_written, weighted_nodes
from export.verify import latency_feed, run_batched


@dataclass
class FallbackStep:
    """One trial: the float layers; the share of ``images`` (%) whose top-1 differs from FP32; with their
    labels the OA (%) and its drop (points) with a 95 % interval; ONNX Runtime CPU latency (ms)."""

    float_nodes: list[str]
    disagreement: float
    accuracy: float | None = None
    drop: float | None = None
    drop_interval: tuple[float, float] | None = None
    latency_ms: float | None = None
    added: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)  # fix name → what it did to this trial's file


@dataclass
class FallbackReport:
    budget: float
    images: int  # judged for agreement
    labelled: int  # of them with labels, for the accuracy drop (0: none)
    reference_accuracy: float | None
    steps: list[FallbackStep]
    sensitivity: dict[str, float] = field(default_factory=dict)  # layer → disagreement points removed when float
    met: bool = True
    chosen: FallbackStep | None = None
    fp32_latency_ms: float | None = None
    note: str = ""
    fixes: dict[str, FallbackStep] = field(default_factory=dict)  # fix name → its trial on the all-INT8 file
    applied: list[str] = field(default_factory=list)  # the fixes kept (judged better than without)


# (name, fix(path, source): applied in place to a quantised file of the FP32 ``source``; returns what it did)
Fix = tuple[str, Callable[[Path, Path], Any]]
CLE = "CLE"  # the fix that changes the FP32 source (export/cle.py) rather than the quantised file


def better(a: FallbackStep, b: FallbackStep, budget: float, images: int) -> bool:
    """Whether trial ``a`` is strictly better than ``b`` on the same ``images``: within budget first; then a
    smaller OA drop, when labelled and the difference is more than chance; else fewer top-1 changed.

    A fix aims at fidelity to FP32, and the changed predictions measure it with every flip, while the drop
    nets flips to and from the right class: on 1,000 images a difference of one or two images in the drop is
    a coin toss (measured on AID: the drop chose a plain file losing 0.41 pt on the test split over a
    bias-corrected one losing 0.00, by 1 image in 1,000). Each image whose correctness differs between the two
    files is one of theirs that changed, so under no real difference the net count has a variance of at most
    ``changed(a) + changed(b)``; a drop counts only beyond 1.96 of its square root."""
    def key(s: FallbackStep) -> tuple:
        return within(s, budget), -s.disagreement
    if a.drop is not None and b.drop is not None:
        net = (b.drop - a.drop) * images / 100.0  # images a gets right that b gets wrong, net
        changed = (a.disagreement + b.disagreement) * images / 100.0
        if within(a, budget) == within(b, budget) and abs(net) > 1.96 * math.sqrt(changed):
            return net > 0
    return key(a) > key(b)


def top1(model: str | Path, x: np.ndarray, batch: int, dynamic: bool, threads: int | None,
         as_written: bool = False) -> np.ndarray:
    """Top-1 class of each image ``[N]`` in ONNX Runtime CPU (``as_written``: the graph unfused)."""
    from runtime.onnxrt import OnnxrtRunner

    with OnnxrtRunner(model, providers="cpu", threads=threads, fuse=not as_written) as r:
        return run_batched(r, x, batch, dynamic).argmax(1)


def paired_drop(ref_correct: np.ndarray, correct: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Accuracy drop in points (reference − candidate) on the same images, with a 95 % normal interval of
    the paired per-image differences (exact 0 ± 0 when no prediction's correctness changed)."""
    d = ref_correct.astype(np.float64) - correct.astype(np.float64)
    mean = float(d.mean()) * 100.0
    half = 1.96 * float(d.std(ddof=1)) / math.sqrt(len(d)) * 100.0 if len(d) > 1 else 100.0
    return mean, (mean - half, mean + half)


def within(step: FallbackStep, budget: float) -> bool:
    """At most ``budget`` % of top-1 changed, or (labelled) an accuracy drop of at most ``budget`` points."""
    return step.disagreement <= budget or (step.drop is not None and step.drop <= budget)


def latency(model: str | Path, feed: np.ndarray, threads: int | None, repeats: int = 30) -> float:
    """Median ms of ``model`` on ``feed`` with ONNX Runtime on this CPU."""
    from runtime.latency import measure_latency
    from runtime.onnxrt import OnnxrtRunner

    return measure_latency(OnnxrtRunner(model, providers="cpu", threads=threads), {"input": feed}, 5, repeats).p50_ms


def describe_fixes(report: FallbackReport) -> list[str]:
    """One line per fix tried: kept or not, and what it changed on the judged images against the plain file."""
    plain = report.steps[0]

    def said(st: FallbackStep) -> str:
        drop = "" if st.drop is None else f", OA drop {st.drop:+.2f} pt"
        return f"{st.disagreement:.2f} % of top-1 changed{drop}"

    return [f"{name} {'kept' if name in report.applied else 'not kept'}: {said(st)} against {said(plain)} without it"
            for name, st in report.fixes.items()]


def fallback_to_budget(fp32: str | Path, out: str | Path, flavour: Int8Flavour, method: str,
                       calib: np.ndarray | None, cache: str | Path, images: np.ndarray,
                       labels: np.ndarray | None = None, *, budget: float, batch: int, dynamic: bool,
                       exclude: Sequence[str] = (), max_float: float = 0.5, threads: int | None = None,
                       fixes: Sequence[Fix] = (), forced: Sequence[str] = (), equalised: tuple[Path, Any] | None = None,
                       progress: Callable[[str], None] | None = None) -> tuple[QuantizeInfo, FallbackReport]:
    """Quantise ``fp32`` into ``out`` keeping the fewest weighted layers float for the budget (points):
    ``images`` ``[N, C, H, W]`` judge agreement, their ``labels`` ``[N]`` (when known) the accuracy drop;
    ``fixes`` are tried on the all-INT8 file first, in order, and kept when they judge better (those named in
    ``forced`` are kept whatever they judge: the user asked for them). ``equalised`` (the cross-layer-
    equalised copy of ``fp32`` and what equalisation did) is tried first, as the fix ``CLE``: kept, every
    later file is quantised from it, still judged against ``fp32``."""
    out = Path(out)
    trial = out.with_name(out.stem + ".trial.onnx")
    nodes = weighted_nodes(fp32)
    x = images
    ref = top1(fp32, x, batch, dynamic, threads)
    ref_ok = None if labels is None else ref == labels
    report = FallbackReport(budget=budget, images=len(x), labelled=0 if labels is None else len(labels),
                            reference_accuracy=None if ref_ok is None else float(ref_ok.mean() * 100.0), steps=[],
                            fp32_latency_ms=latency(fp32, latency_feed(x, batch), threads))
    source, source_cache, source_did = Path(fp32), cache, {}

    def run(float_nodes: list[str], path: Path, timed: bool = False,
            apply: Sequence[Fix] = ()) -> tuple[QuantizeInfo, FallbackStep]:
        info = quantize_int8(source, path, calib, method, flavour, batch=batch, float_nodes=float_nodes,
                             calibration_cache=source_cache)
        done = dict(source_did)
        for name, fix in apply:
            if progress:
                progress(name)
            done[name] = fix(path, source)
        pred = top1(path, x, batch, dynamic, threads, scored_as_written(flavour.name))
        step = FallbackStep(list(float_nodes), float((pred != ref).mean() * 100.0),
                            latency_ms=latency(path, latency_feed(x, batch), threads) if timed else None, fixed=done)
        if ref_ok is not None:
            ok = pred == labels
            step.accuracy = float(ok.mean() * 100.0)
            step.drop, step.drop_interval = paired_drop(ref_ok, ok)
        return info, step

    base = [n for n in nodes if n in set(exclude)]
    info, step = run(base, out, timed=True)
    report.steps.append(step)
    kept: list[Fix] = []
    kept_cle = False
    if equalised is not None:  # the equalised source (its own calibration: its ranges differ per channel)
        plain = (source, source_cache, source_did)
        source, source_cache, source_did = equalised[0], Path(cache).with_name("." + Path(cache).stem + "_cle.json"), \
            {CLE: equalised[1]}
        e_info, e_step = run(base, trial, timed=True)
        e_step.added = CLE
        report.fixes[CLE] = e_step
        if CLE in forced or better(e_step, step, budget, len(x)):
            info, step = e_info, e_step
            trial.replace(out)
            info.path = out
            report.steps.append(step)
            kept_cle = True
        else:
            source, source_cache, source_did = plain
    for fix in fixes:
        f_info, f_step = run(base, trial, timed=True, apply=[*kept, fix])
        f_step.added = fix[0]
        report.fixes[fix[0]] = f_step
        if fix[0] in forced or better(f_step, step, budget, len(x)):
            kept.append(fix)
            info, step = f_info, f_step
            trial.replace(out)
            info.path = out
            report.steps.append(step)
    report.applied = [CLE] * kept_cle + [name for name, _ in kept]
    if within(step, budget):
        trial.unlink(missing_ok=True)
        report.chosen = step
        return info, report
    candidates = [n for n in nodes if n not in base]
    for i, node in enumerate(candidates):
        if progress:
            progress(f"sensitivity {i + 1}/{len(candidates)}")
        report.sensitivity[node] = step.disagreement - run(base + [node], trial)[1].disagreement
    order = sorted(candidates, key=lambda n: (-report.sensitivity[n], nodes.index(n)))
    limit = max(1, int(max_float * len(nodes)))
    best_info, best = info, step
    chosen = list(base)
    for node in order:
        if len(chosen) >= limit:
            break
        chosen.append(node)
        info, step = run(chosen, trial, timed=True, apply=kept)
        step.added = node
        report.steps.append(step)
        if (within(step, budget), -step.disagreement) > (within(best, budget), -best.disagreement):
            best = step
            trial.replace(out)
            best_info = info
            best_info.path = out
        if within(step, budget):
            break
    trial.unlink(missing_ok=True)
    report.chosen = best
    report.met = within(best, budget)
    if not report.met:
        drop = "" if best.drop is None else f", OA drop {best.drop:.2f} pt"
        report.note = (f"the {budget:g}-pt budget was not met with up to {limit} of {len(nodes)} layers in float; best "
                       f"found: {best.disagreement:.2f} % of {len(x)} images change their top-1{drop}, with "
                       f"{len(best.float_nodes)} float")
    return best_info, report
