"""The pipeline's results as rows, one per model × precision, read from the steps' typed outputs.

A row is a plain dict (it is also what ``compress pipeline --json`` prints): ``model``, ``method``,
``precision`` (the label, with ``— PARITY FAILED (row)`` when parity failed), ``flavour``, ``parity_failed``,
``oa`` / ``kappa`` (fractions), ``params_m``, ``macs``, ``file``, ``file_bytes``, ``host_ms``, ``peak_act_bytes``,
``int8_fixes``, ``estimates`` (device → ``{ms, low_ms, high_ms, power_mode}``), ``dir``, ``run_dir``.
The renderer (:mod:`compress.jobs.pipeline_report`) and the recommendation read rows, never step records.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from compress.jobs.formats import points
from compress.jobs.pipeline_outputs import (ExportOutputs, PipelineView, ProfileOutputs, ProfileRow, StudentOutputs,
                                            TeacherOutputs)
from compress.jobs.recommend import Recommendation, recommend


Row = dict[str, Any]


def _checkpoint_row(model: str, method: str, r: Row, folder: str) -> Row:
    return {"model": model, "method": method, "precision": "fp32 (checkpoint)", "oa": r["test_oa"],
            "kappa": r["test_kappa"], "params_m": r["params_m"], "dir": folder, "estimates": {}}


def collect_rows(p: PipelineView) -> tuple[list[Row], list[str]]:
    """One row per model × precision: the teacher and baselines (their checkpoints), every exported file; and
    the device specs the rows' estimates are for."""
    targets = list(p.recipe.profile.targets)
    prof = p.outputs("profile")
    assert isinstance(prof, ProfileOutputs)
    teacher = p.outputs("teacher")
    assert isinstance(teacher, TeacherOutputs)
    students = {s.name: p.outputs(s.name) for s in p.steps if s.kind == "student"}
    teacher_row = teacher.row or next((o.teacher_row for o in students.values()
                                       if isinstance(o, StudentOutputs) and o.teacher_row), None)
    exported = {s.name.split(":", 1)[1] for s in p.steps if s.kind == "export"}
    rows: list[Row] = []
    if teacher_row and "teacher" not in exported:
        rows.append(_checkpoint_row("teacher", teacher_row["method"], teacher_row,
                                    str(Path(teacher_row["checkpoint"]).parents[1])))
    for s in p.steps:
        if s.kind == "baseline":
            rows.append(_checkpoint_row(s.name, "ce (no teacher)", p.outputs(s.name).row, str(p.run / s.folder)))
        elif s.kind == "student" and (r := students[s.name].baseline_row):
            rows.append(_checkpoint_row(f"baseline:{s.name.split(':', 1)[1]}", "ce (no teacher)", r,
                                        str(Path(r["checkpoint"]).parents[1])))
    for name in [st.name for st in p.recipe.students] + ["teacher"]:  # the recipe's order, the teacher last
        step = f"export:{name}" if f"export:{name}" in p.records else f"student:{name}"
        if step not in p.records:
            continue
        out = p.outputs(step)
        assert isinstance(out, (ExportOutputs, StudentOutputs))
        method = students[f"student:{name}"].method if name != "teacher" else "ce"
        for f in out.files:
            pr = prof.files.get(f.file, ProfileRow())
            rows.append({"model": name, "method": method,
                         "precision": f.label + (f" — PARITY FAILED ({f.parity_failed})" if f.parity_failed else ""),
                         "flavour": f.flavour, "parity_failed": f.parity_failed, "oa": f.oa, "kappa": f.kappa,
                         "params_m": None if pr.params is None else pr.params / 1e6, "macs": pr.macs, "file": f.file,
                         "file_bytes": pr.file_bytes, "host_ms": pr.host_ms, "peak_act_bytes": pr.peak_act_bytes,
                         "int8_fixes": f.int8_fixes,
                         "estimates": {t: dataclasses.asdict(e) for t, e in pr.estimates.items()},
                         "dir": str(Path(f.file).parent),
                         "run_dir": str(p.run / (f"students/{name}" if name != "teacher" else "teacher"))})
    return rows, targets


def n_test_images(p: PipelineView) -> int | None:
    """How many test images the rows' accuracies were measured on (the teacher's split), if readable."""
    from compress.io import read_json

    split = p.outputs("teacher").split
    try:
        return len(read_json(split)["test"]) if split else None
    except (KeyError, OSError, ValueError, TypeError):
        return None


def recommendations(p: PipelineView, rows: list[Row], targets: list[str]) -> list[Recommendation]:
    """What to ship per device (:mod:`compress.jobs.recommend`) for the recipe's budget."""
    return recommend(rows, targets, p.recipe.profile.budget, n_test_images(p))


def teacher_reference(rows: list[Row]) -> Row | None:
    """The row every other is compared with: the teacher's FP32 file, else its checkpoint row."""
    mine = [r for r in rows if r["model"] == "teacher"]
    return next((r for r in mine if r.get("file") and r["precision"].startswith("fp32")), mine[0] if mine else None)


def versus(r: Row, ref: Row | None, targets: list[str]) -> dict[str, str]:
    """Cells comparing row ``r`` with the teacher's reference row: ``oa`` (Δ points), ``size`` (share of its file,
    else of its parameters), ``host`` and each target (" ×N": N times faster); '–' where either side lacks it."""
    out = {"oa": "–", "size": "–"}
    if ref is None:
        return out
    if r.get("oa") is not None and ref.get("oa") is not None:
        out["oa"] = points(r["oa"] - ref["oa"])
    for key in ("file_bytes", "params_m"):
        if r.get(key) and ref.get(key):
            out["size"] = f"{r[key] / ref[key]:.0%}" + (" of params" if key == "params_m" else "")
            break
    speed = {"host": (r.get("host_ms"), ref.get("host_ms"))}
    speed.update({t: ((r["estimates"].get(t) or {}).get("ms"), (ref["estimates"].get(t) or {}).get("ms")) for t in targets})
    for k, (mine, theirs) in speed.items():
        if mine and theirs:
            out[k] = f" ×{theirs / mine:.2f}"
    return out
