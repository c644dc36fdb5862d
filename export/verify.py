"""Parity of exported models against PyTorch on real samples (``parity.json`` and its table).

Element rule (Polygraphy's): an element fails only when it exceeds BOTH the absolute and the
relative tolerance, ``|a - r| > atol and |a - r| / |r| > rtol`` with ``r`` the PyTorch output.
FP32 passes when no element fails. FP16 rounds every activation to 11 significant bits, so its
absolute error follows the size of the network's outputs, not of each logit: its ``atol`` is a share
of the largest ``|r|``, and a classifier must also keep its top-1 predictions and its accuracy
(agreement and drop limits) — a near-zero logit that moved by 0.02 is not a loss a user would see.
INT8 is judged on predictions only, since quantisation moves every logit a little by design: on labelled
samples by the accuracy drop (a low-margin prediction that flips between two wrong classes, or from wrong
to right, costs a user nothing), on unlabelled ones by top-1 agreement (a drop needs a changed prediction,
so agreement ≥ 1 − B/100 bounds the drop by B points); mean cosine for embeddings. A failed row says why
in ``why``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from compress.errors import UserInputError
from runtime.base import Runner
from runtime.trtexec import PRECISIONS



@dataclass(frozen=True)
class ParityCriteria:
    """Pass/fail thresholds per precision (all overridable from the CLI)."""

    atol: dict[str, float] = field(default_factory=lambda: {"fp32": 1e-4, "fp16": 1e-2, "int8": 1e-1})
    rtol: dict[str, float] = field(default_factory=lambda: {"fp32": 1e-4, "fp16": 1e-2, "int8": 1e-1})
    int8_min_top1_agreement: float = 0.99  # fraction of samples whose top-1 matches PyTorch (unlabelled samples)
    int8_agreement_with_labels: bool = False  # also judge agreement when labels give the drop (--min-top1-agreement)
    int8_max_accuracy_drop: float = 1.0  # percentage points of OA
    int8_min_cosine: float = 0.99  # embeddings: mean cosine similarity to PyTorch
    fp16_min_top1_agreement: float = 0.99
    fp16_max_accuracy_drop: float = 0.5  # percentage points of OA

    def for_int8_budget(self, budget: float | None) -> "ParityCriteria":
        """The INT8 rule an ``--int8-budget`` of ``budget`` points means: an OA drop ≤ budget on labelled
        samples, top-1 agreement ≥ 1 − budget/100 on unlabelled ones (unchanged without a budget)."""
        if budget is None:
            return self
        return replace(self, int8_min_top1_agreement=1.0 - budget / 100.0, int8_max_accuracy_drop=budget)

    def with_overrides(self, atol: dict[str, float] | None = None, rtol: dict[str, float] | None = None,
                       **others: float) -> "ParityCriteria":
        for table in (atol or {}, rtol or {}):
            for prec, val in table.items():
                if prec not in PRECISIONS or val < 0:
                    raise UserInputError(f"tolerance '{prec}={val}' is invalid: precision must be one of "
                                         f"{', '.join(PRECISIONS)} and the value >= 0.")
        return replace(self, atol={**self.atol, **(atol or {})}, rtol={**self.rtol, **(rtol or {})},
                       **{k: v for k, v in others.items() if v is not None})


@dataclass
class ErrorStats:
    """Elementwise error of one output against the reference."""

    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float
    num_failed: int
    num_elements: int

    @property
    def passed(self) -> bool:
        return self.num_failed == 0


def compare_arrays(ref: np.ndarray, out: np.ndarray, atol: float, rtol: float) -> ErrorStats:
    """Polygraphy's rule: an element fails when ``abs > atol`` AND ``rel > rtol`` (rel w.r.t. ``ref``)."""
    if ref.shape != out.shape:
        raise UserInputError(f"output shapes differ: reference {ref.shape} vs candidate {out.shape}.")
    r, o = ref.astype(np.float64), out.astype(np.float64)
    absd = np.abs(o - r)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(absd == 0, 0.0, absd / np.abs(r))  # 0/0 → 0; x/0 → inf
    failed = (absd > atol) & (rel > rtol)
    finite_rel = rel[np.isfinite(rel)]
    return ErrorStats(max_abs=float(absd.max(initial=0.0)), mean_abs=float(absd.mean()) if absd.size else 0.0,
                      max_rel=float(rel.max(initial=0.0)),
                      mean_rel=float(finite_rel.mean()) if finite_rel.size else 0.0,
                      num_failed=int(failed.sum()), num_elements=int(absd.size))


@dataclass
class ParityRow:
    """One runner's outputs compared with PyTorch."""

    name: str
    precision: str
    backend: dict[str, Any]
    max_abs: float | None = None
    mean_abs: float | None = None
    max_rel: float | None = None
    mean_rel: float | None = None
    failed_elements: int | None = None
    top1_agreement: float | None = None  # classification only
    mean_cosine: float | None = None  # embedding only
    accuracy: float | None = None  # OA in %, when labels are known
    accuracy_drop: float | None = None  # reference OA − this OA, percentage points
    latency_ms: float | None = None  # median of repeated calls on one batch
    speedup_vs_fp32: float | None = None  # ONNX Runtime FP32 latency / this latency
    passed: bool = True
    rule: str = ""
    why: str = ""  # what a failed row lost, in words
    file: str | None = None  # the exported file this row measured (profile matches accuracy by it)


@dataclass
class ParityReport:
    """All rows plus what they were measured on; ``passed`` is the AND over candidate rows."""

    rows: list[ParityRow]
    num_samples: int
    sample_source: str
    task: str
    batch: int
    criteria: ParityCriteria
    passed: bool = True

    def row(self, name: str) -> ParityRow:
        return next(r for r in self.rows if r.name == name)

    def failures(self) -> str:
        """The failed rows and what each lost: ``name (why); ...``."""
        return "; ".join(f"{r.name} ({r.why})" if r.why else r.name for r in self.rows if not r.passed)


def run_batched(runner: Runner, x: np.ndarray, batch: int, dynamic: bool, input_name: str = "input") -> np.ndarray:
    """Run ``x`` through ``runner`` in chunks of ``batch``; a static graph gets its last chunk zero-padded."""
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        n = len(chunk)
        if not dynamic and n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
        res = runner.infer({input_name: chunk})
        outs.append(next(iter(res.values()))[:n])
    return np.concatenate(outs)


def latency_feed(x: np.ndarray, batch: int) -> np.ndarray:
    """One full batch ``[batch, ...]`` to time with: the first ``batch`` samples of ``x`` (``[N, ...]``, N ≥ 1),
    the last one repeated when ``x`` holds fewer."""
    feed = x[:batch]
    if len(feed) < batch:
        feed = np.concatenate([feed, np.repeat(feed[-1:], batch - len(feed), axis=0)])
    return feed


def median_latency_ms(runner: Runner, feed: np.ndarray, repeats: int = 10, warmup: int = 2,
                      input_name: str = "input") -> float:
    """Median wall time of ``infer`` (host in → host out) over ``repeats`` calls after ``warmup``
    (:func:`runtime.latency.measure_latency`, the one timing loop)."""
    from runtime.latency import measure_latency

    return measure_latency(runner, {input_name: feed}, warmup, repeats).p50_ms


def _accuracy(pred: np.ndarray, labels: np.ndarray | None) -> float | None:
    return None if labels is None else float((pred == labels).mean() * 100.0)


def _judge_predictions(row: ParityRow, min_agreement: float, max_drop: float, labelled: bool) -> list[str]:
    """Rule text for top-1 agreement (and the OA drop when labelled); returns what was lost."""
    row.rule = f"top-1 agreement >= {min_agreement:.2%}" + (f", OA drop <= {max_drop} pt" if labelled else "")
    lost = []
    if row.top1_agreement < min_agreement:
        lost.append(f"top-1 agreement {row.top1_agreement:.2%} < {min_agreement:.2%}")
    if row.accuracy_drop is not None and row.accuracy_drop > max_drop:
        lost.append(f"OA {row.accuracy_drop:+.2f} pt lower > {max_drop} pt")
    return lost


def _judge_int8_classification(row: ParityRow, criteria: ParityCriteria, labelled: bool) -> None:
    if labelled and not criteria.int8_agreement_with_labels:
        drop = criteria.int8_max_accuracy_drop
        row.rule = f"OA drop <= {drop} pt (top-1 agreement reported, not judged)"
        lost = [] if row.accuracy_drop is None or row.accuracy_drop <= drop else [
            f"OA {row.accuracy_drop:+.2f} pt lower > {drop} pt"]
    else:
        lost = _judge_predictions(row, criteria.int8_min_top1_agreement, criteria.int8_max_accuracy_drop, labelled)
    row.passed, row.why = not lost, "; ".join(lost)


def _judge_elements(row: ParityRow, st: ErrorStats, atol: float, rtol: float, scale: float | None) -> list[str]:
    """The element rule; ``scale`` (FP16): ``atol`` is a share of the largest |reference| output."""
    eff = atol if scale is None else atol * scale
    row.rule = (f"no element with abs > {eff:.3g}" + ("" if scale is None else f" ({atol:g} x max|ref| {scale:.3g})")
                + f" and rel > {rtol:g}")
    return [] if st.passed else [f"{st.num_failed} of {st.num_elements} outputs off by more than abs {eff:.3g} and "
                                 f"rel {rtol:g} (max abs {st.max_abs:.3g})"]


def rejudge(report: ParityReport, criteria: ParityCriteria) -> ParityReport:
    """``report`` with its INT8 classification rows judged again under ``criteria`` (no model is rerun)."""
    rows = [replace(r) for r in report.rows]
    if report.task == "classify":
        for r in rows[1:]:
            if r.precision == "int8":
                _judge_int8_classification(r, criteria, r.accuracy is not None)
    return replace(report, rows=rows, criteria=criteria, passed=all(r.passed for r in rows))


@dataclass(frozen=True)
class RunOutput:
    """One runner's outputs on the parity samples (``[N, classes]`` or ``[N, dim]``, float32) and its median
    latency on one batch (ms, host in → host out)."""

    outputs: np.ndarray
    latency_ms: float
    backend: dict[str, Any]


def run_parity(runner: Runner, inputs: np.ndarray, batch: int, dynamic: bool, feed: np.ndarray,
               repeats: int = 10) -> RunOutput:
    """Run: ``inputs`` through ``runner`` (activated and deactivated here), then time it on ``feed``."""
    with runner:
        out = run_batched(runner, inputs, batch, dynamic).astype(np.float32)
        ms = median_latency_ms(runner, feed, repeats)
        return RunOutput(out, ms, runner.describe())


def compare_run(name: str, precision: str, ref: np.ndarray, run: RunOutput, labels: np.ndarray | None,
                task: str) -> ParityRow:
    """Compare: the numbers of one candidate against the reference outputs — element errors, top-1 agreement,
    OA and its drop (``labels``) for a classifier, mean cosine for an embedder. No verdict: see :func:`judge_row`."""
    st = compare_arrays(ref, run.outputs, float("inf"), float("inf"))
    row = ParityRow(name=name, precision=precision, backend=run.backend, max_abs=st.max_abs, mean_abs=st.mean_abs,
                    max_rel=st.max_rel, mean_rel=st.mean_rel, latency_ms=run.latency_ms)
    if task == "classify":
        ref_pred, pred = ref.argmax(1), run.outputs.argmax(1)
        row.top1_agreement = float((pred == ref_pred).mean())
        row.accuracy = _accuracy(pred, labels)
        ref_acc = _accuracy(ref_pred, labels)
        row.accuracy_drop = None if ref_acc is None else ref_acc - row.accuracy
    else:
        num = (ref * run.outputs).sum(1)
        den = np.linalg.norm(ref, axis=1) * np.linalg.norm(run.outputs, axis=1) + 1e-12
        row.mean_cosine = float((num / den).mean())
    return row


def judge_row(row: ParityRow, criteria: ParityCriteria, task: str, labelled: bool, ref: np.ndarray,
              out: np.ndarray) -> None:
    """Judge: set ``row``'s rule, verdict and what it lost under ``criteria`` — INT8 by predictions (classifier)
    or cosine (embedder); FP32/FP16 by the element rule (FP16's ``atol`` a share of the largest |reference|),
    FP16 classifiers by their predictions too."""
    classify = task == "classify"
    atol, rtol = criteria.atol[row.precision], criteria.rtol[row.precision]
    scale = (float(np.abs(ref).max(initial=0.0)) or 1.0) if row.precision == "fp16" else None
    st = compare_arrays(ref, out, atol if scale is None else atol * scale, rtol)
    row.failed_elements = st.num_failed  # reported for every row, judged for float ones
    if row.precision == "int8":
        if classify:
            _judge_int8_classification(row, criteria, labelled)
        else:
            row.rule = f"mean cosine >= {criteria.int8_min_cosine}"
            row.passed = row.mean_cosine >= criteria.int8_min_cosine
            row.why = "" if row.passed else f"mean cosine {row.mean_cosine:.4f} < {criteria.int8_min_cosine}"
        return
    lost = _judge_elements(row, st, atol, rtol, scale)
    if row.precision == "fp16" and classify:
        rule = row.rule
        lost += _judge_predictions(row, criteria.fp16_min_top1_agreement, criteria.fp16_max_accuracy_drop, labelled)
        row.rule = f"{rule}, {row.rule}"
    row.passed, row.why = not lost, "; ".join(lost)


def check_parity(reference: Runner, candidates: Sequence[tuple[str, Runner, str]], inputs: np.ndarray,
                 labels: np.ndarray | None, task: str, batch: int, dynamic: bool,
                 criteria: ParityCriteria | None = None, sample_source: str = "", repeats: int = 10,
                 outputs: dict[str, np.ndarray] | None = None) -> ParityReport:
    """Compare every ``(name, runner, precision)`` with ``reference`` on ``inputs`` (``[N, ...]``): run
    (:func:`run_parity`), compare (:func:`compare_run`), judge (:func:`judge_row`). Latency is timed on one
    batch of ``inputs``. ``outputs``, when given, receives each candidate's output array under its name.
    """
    criteria = criteria or ParityCriteria()
    if len(inputs) == 0:
        raise UserInputError("parity needs at least one sample; the sample set is empty.")
    if labels is not None and len(labels) != len(inputs):
        raise UserInputError(f"{len(labels)} labels for {len(inputs)} samples.")
    feed = latency_feed(inputs, batch)
    base = run_parity(reference, inputs, batch, dynamic, feed, repeats)
    ref = base.outputs
    classify = task == "classify"
    rows = [ParityRow(name="pytorch", precision="fp32", backend=base.backend,
                      accuracy=_accuracy(ref.argmax(1), labels) if classify else None,
                      top1_agreement=1.0 if classify else None, latency_ms=base.latency_ms, rule="reference")]
    fp32_ms = None
    for name, runner, precision in candidates:
        run = run_parity(runner, inputs, batch, dynamic, feed, repeats)
        if outputs is not None:
            outputs[name] = run.outputs
        row = compare_run(name, precision, ref, run, labels, task)
        judge_row(row, criteria, task, labels is not None, ref, run.outputs)
        if precision == "fp32" and run.backend.get("backend") == "onnxrt" and fp32_ms is None:
            fp32_ms = run.latency_ms
        rows.append(row)
    if fp32_ms:
        for row in rows:
            if row.latency_ms:
                row.speedup_vs_fp32 = fp32_ms / row.latency_ms
    return ParityReport(rows=rows, num_samples=len(inputs), sample_source=sample_source, task=task, batch=batch,
                        criteria=criteria, passed=all(r.passed for r in rows))
