"""Latency MEASURED on the user's own Jetson for the student search (``--remote user@jetson``).

An estimate can be 1.5× off on a module it was not fitted to (issue 34) and the search needs the order of
candidates right near the budget. With a reachable device the search (:mod:`compress.jobs.student_search`)

1. measures the teacher there (trtexec's GPU compute time, median, batch 1, in the budget's precision —
   what the estimate models) and, without ``--latency-ms``, takes half of it as the budget;
2. corrects every estimate by measured ÷ estimated for the teacher (one-point calibration), so width,
   depth and resolution are cut towards the right point;
3. measures each candidate that the corrected estimate puts within the budget; a candidate is within the
   budget only when its measurement is.

The teacher's latency does not depend on its weights, so step 1 runs on the untrained network before any
training: an unreachable host, a missing trtexec or a failed engine build stop the run at once.
"""
from __future__ import annotations

import copy
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from compress.errors import UserInputError
from export.opsets import DEFAULT_OPSET


def timing_onnx(model: nn.Module, shape: tuple[int, ...], path: str | Path | None = None) -> bytes:
    """``model`` as a plain ONNX graph for timing (input ``input``, fixed ``shape``, opset 17); written to
    ``path`` when given. The weights are the model's: latency does not depend on them, file size does."""
    import io

    buf = io.BytesIO()
    torch.onnx.export(copy.deepcopy(model).eval().cpu(), (torch.zeros(shape),), buf, input_names=["input"],
                      output_names=["logits"], opset_version=DEFAULT_OPSET, dynamo=False)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(buf.getvalue())
    return buf.getvalue()


def check_remote(host: str) -> str:
    """``host`` checked as an SSH destination (one line when it is not one); returns it."""
    from runtime.ssh import check_host

    check_host(host)
    return host


@dataclass(frozen=True)
class Measurement:
    """One model measured on the device: GPU compute median (ms, batch 1) and the power mode it ran in."""

    ms: float
    power_mode: str | None
    what: str = "trtexec GPU compute time, median"


@dataclass
class DeviceMeter:
    """Measures models on ``host`` with trtexec at ``precision``; ONNX files go to ``folder``."""

    host: str
    precision: str
    folder: Path
    iterations: int = 200
    run: Callable[..., subprocess.CompletedProcess] | None = None  # None: subprocess.run, looked up per call

    def __call__(self, model: nn.Module, shape: tuple[int, ...], name: str) -> Measurement:
        from runtime.remote import profile_remote

        path = self.folder / f"{name.replace(':', '_').replace('+', '_')}.onnx"
        timing_onnx(model, shape, path)
        res = profile_remote(self.host, path, self.precision, "input", shape, iterations=self.iterations,
                             run=self.run or subprocess.run)
        gpu = res.trtexec.gpu_compute
        ms = gpu.get("median", gpu.get("mean")) if gpu else None
        if ms is None:  # an older trtexec without the GPU compute line: the whole query, copies included
            ms, what = res.trtexec.latency.get("median", res.trtexec.latency["mean"]), "trtexec latency, median"
            return Measurement(round(float(ms), 4), res.power_mode.get("name"), what)
        return Measurement(round(float(ms), 4), res.power_mode.get("name"))


def correction(measured_ms: float, estimated_ms: float) -> float:
    """Measured ÷ estimated for the teacher: the factor every estimate of this device is multiplied by."""
    if not measured_ms > 0 or not estimated_ms > 0:
        raise UserInputError(f"the device measured the teacher at {measured_ms:g} ms against an estimate of "
                             f"{estimated_ms:g} ms; a latency must be positive — check trtexec's output on the device.")
    return measured_ms / estimated_ms


def mode_note(measured_mode: str | None, wanted_mode: str | None) -> str:
    """A warning when the device ran in another power mode than the target names ('' when they agree or
    either is unknown): nvpmodel names differ by board, so only a plain mismatch of names is reported."""
    if not measured_mode or not wanted_mode:
        return ""
    norm = lambda s: s.upper().replace("MODE_", "").replace("_", "")  # noqa: E731
    if norm(measured_mode) == norm(wanted_mode):
        return ""
    return f"the device ran in power mode {measured_mode}, the target names {wanted_mode}"


def measured_info(m: Measurement, host: str, precision: str) -> dict[str, Any]:
    """What a candidate's (or the teacher's) record keeps of a measurement."""
    return {"measured_ms": m.ms, "measured_precision": precision, "measured_on": host, "measured_what": m.what,
            "measured_mode": m.power_mode}
